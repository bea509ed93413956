/* repl_codec.c: the byte encoding of cl commands (the Raft log entries) and
 * of snapshots of the state (contract in repl.h; format in
 * docs/replicated-state.md). */
#include "repl_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "bytecur.h"
#include "roster.h"

/* ---- strings (the reader and writer are bytecur.h) ---- */

/* rd_str reads len bytes into a NUL-terminated string of at most max bytes;
 * a NUL inside or an oversize length is XE_CORRUPT. */
static int rd_str(struct rd *r, size_t len, char *dst, size_t max)
{
    const unsigned char *p;

    if (len > max)
        return XE_CORRUPT;
    p = rd_bytes(r, len);
    if (p == NULL)
        return XE_CORRUPT;
    if (memchr(p, '\0', len) != NULL)
        return XE_CORRUPT;
    memcpy(dst, p, len);
    dst[len] = '\0';
    return 0;
}

/* ---- user credentials, shared by USER_SET and snapshots ---- */

static size_t key_len(bool sha1)
{
    return sha1 ? CL_KEY_SHA1 : CL_KEY_SHA256;
}

static void wr_scram(struct wr *w, const struct cl_scram *s, bool sha1)
{
    wr_uint(w, s->salt_len, 1);
    wr_bytes(w, s->salt, s->salt_len);
    wr_uint(w, s->iterations, 4);
    wr_bytes(w, s->stored_key, key_len(sha1));
    wr_bytes(w, s->server_key, key_len(sha1));
}

/* The bits of a user record's mechs byte. */
#define MECH_SHA256 1u
#define MECH_SHA1 2u
#define MECH_CREATED 4u /* not a mechanism: a u64 created follows the byte */

/* wr_user writes u16 len | user | u8 mechs | [u64 created] | mechs, with
 * name as the user.  created 0 is left out: the record is then byte for
 * byte what it was before the field existed. */
static void wr_user(struct wr *w, const char *name, const struct cl_user *u)
{
    size_t n = strlen(name);

    wr_uint(w, n, 2);
    wr_bytes(w, name, n);
    wr_uint(w,
            MECH_SHA256 | (u->sha1.present ? MECH_SHA1 : 0u) |
                (u->created != 0 ? MECH_CREATED : 0u),
            1);
    if (u->created != 0)
        wr_uint(w, u->created, 8);
    wr_scram(w, &u->sha256, false);
    if (u->sha1.present)
        wr_scram(w, &u->sha1, true);
}

static int rd_scram(struct rd *r, struct cl_scram *s, bool sha1)
{
    size_t klen = key_len(sha1);
    const unsigned char *p;

    s->present = true;
    s->salt_len = (size_t)rd_uint(r, 1);
    if (s->salt_len > CL_SALT_MAX)
        return XE_CORRUPT;
    p = rd_bytes(r, s->salt_len);
    if (p != NULL)
        memcpy(s->salt, p, s->salt_len);
    s->iterations = (uint32_t)rd_uint(r, 4);
    p = rd_bytes(r, klen);
    if (p != NULL)
        memcpy(s->stored_key, p, klen);
    p = rd_bytes(r, klen);
    if (p != NULL)
        memcpy(s->server_key, p, klen);
    return r->bad ? XE_CORRUPT : 0;
}

/* rd_user reads what wr_user wrote into *u (cleared first). */
static int rd_user(struct rd *r, struct cl_user *u)
{
    size_t n;
    unsigned mechs;
    int rc;

    memset(u, 0, sizeof *u);
    n = (size_t)rd_uint(r, 2);
    if (r->bad)
        return XE_CORRUPT;
    rc = rd_str(r, n, u->name, CL_USER_MAX);
    if (rc < 0)
        return rc;
    mechs = (unsigned)rd_uint(r, 1);
    if (r->bad || (mechs & ~(MECH_SHA256 | MECH_SHA1 | MECH_CREATED)) != 0 ||
        (mechs & MECH_SHA256) == 0)
        return XE_CORRUPT;
    if (mechs & MECH_CREATED) {
        u->created = rd_uint(r, 8);
        /* 0 is written by leaving the bit out: one encoding per value. */
        if (!r->bad && u->created == 0)
            return XE_CORRUPT;
    }
    rc = rd_scram(r, &u->sha256, false);
    if (rc == 0 && (mechs & MECH_SHA1))
        rc = rd_scram(r, &u->sha1, true);
    if (rc < 0)
        return rc;
    if (!cl__creds_valid(u))
        return XE_INVAL;
    return cl_user_check(u->name);
}

/* ---- commands ---- */

const char *cl_cmd_type_name(int type)
{
    switch (type) {
    case CL_CMD_INIT:
        return "init";
    case CL_CMD_SET_DOMAIN:
        return "set-domain";
    case CL_CMD_CB_SET:
        return "callbridge-set";
    case CL_CMD_CB_DEL:
        return "callbridge-del";
    case CL_CMD_USER_SET:
        return "user-set";
    case CL_CMD_USER_DEL:
        return "user-del";
    case CL_CMD_USER_ITER:
        return "user-iterations";
    case CL_CMD_ROSTER_SET:
        return "roster-set";
    case CL_CMD_ROSTER_DEL:
        return "roster-del";
    case CL_CMD_LOGIN:
        return "login";
    case CL_CMD_PRES_LAST:
        return "presence-last";
    }
    return "unknown";
}

static void cmd_clear(struct cl_cmd *c, enum cl_cmd_type type)
{
    memset(c, 0, sizeof *c);
    c->type = type;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    /* An over-long source becomes "" so that validation fails on it rather
     * than accepting a prefix. */
    size_t n = src == NULL ? 0 : strlen(src);

    if (n >= cap) {
        dst[0] = '\0'; /* empty: fails validation on purpose */
        return;
    }
    memcpy(dst, src == NULL ? "" : src, n + 1);
}

void cl_cmd_init(struct cl_cmd *c, uint64_t cluster_id)
{
    cmd_clear(c, CL_CMD_INIT);
    c->cluster_id = cluster_id;
}

void cl_cmd_set_domain(struct cl_cmd *c, const char *domain)
{
    cmd_clear(c, CL_CMD_SET_DOMAIN);
    copy_str(c->domain, sizeof c->domain, domain);
}

void cl_cmd_cb_set(struct cl_cmd *c, const char *name, const unsigned char *secret,
                   size_t secret_len, bool add)
{
    cmd_clear(c, CL_CMD_CB_SET);
    copy_str(c->name, sizeof c->name, name);
    c->secret = secret;
    c->secret_len = secret_len;
    c->flags = add ? CL_CMD_ADD : 0;
}

void cl_cmd_cb_set_at(struct cl_cmd *c, const char *name, const unsigned char *secret,
                      size_t secret_len, bool add, uint64_t set_at)
{
    cl_cmd_cb_set(c, name, secret, secret_len, add);
    if (set_at != 0) {
        c->flags |= CL_CMD_SET_AT;
        c->set_at = set_at;
    }
}

void cl_cmd_cb_del(struct cl_cmd *c, const char *name)
{
    cmd_clear(c, CL_CMD_CB_DEL);
    copy_str(c->name, sizeof c->name, name);
}

void cl_cmd_user_set(struct cl_cmd *c, const char *user, const struct cl_user *creds,
                     bool add)
{
    cmd_clear(c, CL_CMD_USER_SET);
    copy_str(c->name, sizeof c->name, user);
    c->user = creds;
    c->flags = add ? CL_CMD_ADD : 0;
}

void cl_cmd_user_passwd(struct cl_cmd *c, const char *user, const struct cl_user *creds)
{
    cl_cmd_user_set(c, user, creds, false);
    c->flags = CL_CMD_REPLACE;
}

void cl_cmd_user_del(struct cl_cmd *c, const char *user)
{
    cmd_clear(c, CL_CMD_USER_DEL);
    copy_str(c->name, sizeof c->name, user);
}

void cl_cmd_user_iter(struct cl_cmd *c, uint32_t iterations)
{
    cmd_clear(c, CL_CMD_USER_ITER);
    c->iterations = iterations;
}

void cl_cmd_login(struct cl_cmd *c, enum cl_login_what what, const char *name,
                  bool failed)
{
    cmd_clear(c, CL_CMD_LOGIN);
    copy_str(c->name, sizeof c->name, name);
    c->login_what = (uint8_t)what;
    c->login_failed = failed;
}

void cl_cmd_pres_last(struct cl_cmd *c, const char *user, const char *resource,
                      const char *status, uint64_t wall_ms)
{
    cmd_clear(c, CL_CMD_PRES_LAST);
    copy_str(c->name, sizeof c->name, user);
    copy_str(c->pres_resource, sizeof c->pres_resource, resource);
    copy_str(c->pres_status, sizeof c->pres_status, status);
    c->pres_wall_ms = wall_ms;
}

/* login_addr_valid: an address as srv's throttle keys it (addr_host_of:
 * IPv4, IPv6 without brackets, or a name): 1..CL_LOGIN_ADDR_MAX bytes of
 * letters, digits, '.', ':', '-' and '%' (a zone). */
static bool login_addr_valid(const char *a)
{
    size_t n = strlen(a);

    if (n == 0 || n > CL_LOGIN_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)a[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == ':' || ch == '-' ||
              ch == '%'))
            return false;
    }
    return true;
}

/* cmd_check validates a command's fields (encode and decode share it). */
static int cmd_check(const struct cl_cmd *c)
{
    unsigned allowed = c->type == CL_CMD_CB_SET     ? CL_CMD_ADD | CL_CMD_SET_AT
                       : c->type == CL_CMD_USER_SET ? CL_CMD_ADD | CL_CMD_REPLACE
                                                    : 0;

    if ((c->flags & ~allowed) != 0 ||
        (c->flags & (CL_CMD_ADD | CL_CMD_REPLACE)) == (CL_CMD_ADD | CL_CMD_REPLACE))
        return XE_INVAL;
    switch (c->type) {
    case CL_CMD_INIT:
        return c->cluster_id != 0 ? 0 : XE_INVAL;
    case CL_CMD_SET_DOMAIN:
        return cl_domain_valid(c->domain) ? 0 : XE_INVAL;
    case CL_CMD_CB_SET:
        if (c->secret == NULL || c->secret_len == 0 || c->secret_len > CL_SECRET_MAX)
            return XE_INVAL;
        /* One encoding of "unknown": no flag, no time. */
        if (((c->flags & CL_CMD_SET_AT) != 0) != (c->set_at != 0))
            return XE_INVAL;
        /* fall through */
    case CL_CMD_CB_DEL:
        return cl_name_valid(c->name) ? 0 : XE_INVAL;
    case CL_CMD_USER_SET:
        if (!cl__creds_valid(c->user))
            return XE_INVAL;
        /* fall through */
    case CL_CMD_USER_DEL:
        return cl_user_check(c->name);
    case CL_CMD_USER_ITER:
        /* RFC 7677 §4: at least 4096. */
        return c->iterations >= CL_ITER_MIN && c->iterations <= CL_ITER_MAX ? 0
                                                                            : XE_INVAL;
    case CL_CMD_ROSTER_SET:
    case CL_CMD_ROSTER_DEL:
        return XE_INVAL; /* encoded by roster_cmd_encode, never here */
    case CL_CMD_PRES_LAST:
        if (c->pres_resource[0] == '\0')
            return XE_INVAL;
        return cl_user_check(c->name);
    case CL_CMD_LOGIN:
        if (c->login_what == CL_LOGIN_ADDRESS)
            return login_addr_valid(c->name) ? 0 : XE_INVAL;
        return c->login_what == CL_LOGIN_ACCOUNT ? cl_user_check(c->name) : XE_INVAL;
    }
    return XE_INVAL;
}

/* ---- the header: version and request id (repl.h) ---- */

void cl_req_write(struct wr *w, const struct cl_req *id)
{
    if (id->origin == 0) {
        wr_uint(w, CL_CMD_VERSION, 1);
        return;
    }
    wr_uint(w, id->boot != 0 ? CL_CMD_VERSION_SESSION : CL_CMD_VERSION_ID, 1);
    wr_uint(w, id->origin, 8);
    if (id->boot != 0)
        wr_uint(w, id->boot, 8);
    wr_uint(w, id->seq, 8);
    if (id->boot != 0)
        wr_uint(w, id->first, 8);
}

/* req_valid: the rules of an id (repl.h); origin 0 is none. */
static bool req_valid(const struct cl_req *id)
{
    if (id->origin == 0)
        return id->boot == 0 && id->seq == 0 && id->first == 0;
    /* The origin keeps its requests within CL_WINDOW of its first
     * outstanding one, so that a session is bounded. */
    return id->boot == 0 ? id->first == 0
                         : id->first <= id->seq && id->seq - id->first < CL_WINDOW;
}

int cl_req_read(struct rd *r, struct cl_req *id)
{
    unsigned version = (unsigned)rd_uint(r, 1);

    memset(id, 0, sizeof *id);
    if (version == CL_CMD_VERSION_ID || version == CL_CMD_VERSION_SESSION) {
        id->origin = rd_uint(r, 8);
        if (version == CL_CMD_VERSION_SESSION)
            id->boot = rd_uint(r, 8);
        id->seq = rd_uint(r, 8);
        if (version == CL_CMD_VERSION_SESSION)
            id->first = rd_uint(r, 8);
        if (!r->bad &&
            (id->origin == 0 || (version == CL_CMD_VERSION_SESSION && id->boot == 0) ||
             !req_valid(id)))
            return XE_CORRUPT;
    }
    if (r->bad || version == 0)
        return XE_CORRUPT;
    return version > CL_CMD_VERSION_SESSION ? XE_UNSUPPORTED : (int)version;
}

static void cmd_write(struct wr *w, const void *obj)
{
    const struct cl_cmd *c = obj;
    struct cl_req id = {c->req_origin, c->req_boot, c->req_seq, c->req_first};
    size_t n;

    cl_req_write(w, &id);
    wr_uint(w, (uint64_t)c->type, 1);
    wr_uint(w, c->flags, 1);
    switch (c->type) {
    case CL_CMD_INIT:
        wr_uint(w, c->cluster_id, 8);
        break;
    case CL_CMD_SET_DOMAIN:
        n = strlen(c->domain);
        wr_uint(w, n, 2);
        wr_bytes(w, c->domain, n);
        break;
    case CL_CMD_CB_SET:
    case CL_CMD_CB_DEL:
        n = strlen(c->name);
        wr_uint(w, n, 1);
        wr_bytes(w, c->name, n);
        if (c->type == CL_CMD_CB_SET) {
            wr_uint(w, c->secret_len, 2);
            wr_bytes(w, c->secret, c->secret_len);
            if (c->flags & CL_CMD_SET_AT)
                wr_uint(w, c->set_at, 8);
        }
        break;
    case CL_CMD_USER_SET:
        wr_user(w, c->name, c->user);
        break;
    case CL_CMD_USER_DEL:
        n = strlen(c->name);
        wr_uint(w, n, 2);
        wr_bytes(w, c->name, n);
        break;
    case CL_CMD_USER_ITER:
        wr_uint(w, c->iterations, 4);
        break;
    case CL_CMD_PRES_LAST:
        n = strlen(c->name);
        wr_uint(w, n, 2);
        wr_bytes(w, c->name, n);
        n = strlen(c->pres_resource);
        wr_uint(w, n, 2);
        wr_bytes(w, c->pres_resource, n);
        wr_uint(w, c->pres_wall_ms, 8);
        n = strlen(c->pres_status);
        wr_uint(w, n, 2);
        wr_bytes(w, c->pres_status, n);
        break;
    case CL_CMD_LOGIN:
        n = strlen(c->name);
        wr_uint(w, c->login_what, 1);
        wr_uint(w, c->login_failed ? 1 : 0, 1);
        wr_uint(w, n, 2);
        wr_bytes(w, c->name, n);
        break;
    case CL_CMD_ROSTER_SET:
    case CL_CMD_ROSTER_DEL:
        break; /* cmd_check refused it */
    }
}

int cl_cmd_encode(const struct cl_cmd *c, unsigned char **out, size_t *len)
{
    struct cl_req id = {c->req_origin, c->req_boot, c->req_seq, c->req_first};
    int rc;

    *out = NULL;
    *len = 0;
    if (!req_valid(&id))
        return XE_INVAL;
    rc = cmd_check(c);
    if (rc < 0)
        return rc;
    return wr_encode(cmd_write, c, out, len);
}

/* decode_roster validates a roster command with roster_cmd_decode and
 * keeps its header in *c (repl.h: cl_cmd_decode). */
static int decode_roster(const void *buf, size_t len, struct cl_cmd *c)
{
    struct roster_cmd *rc = calloc(1, sizeof *rc);
    int err;

    if (rc == NULL)
        return XE_NOMEM;
    err = roster_cmd_decode(buf, len, rc);
    if (err == 0) {
        c->type = (enum cl_cmd_type)rc->type;
        c->flags = rc->has_base ? ROSTER_CMD_IF : 0;
        c->req_origin = rc->req_origin;
        c->req_seq = rc->req_seq;
        c->req_boot = rc->req_boot;
        c->req_first = rc->req_first;
        memcpy(c->name, rc->user, sizeof c->name);
    }
    roster_cmd_clear(rc);
    free(rc);
    return err;
}

static bool is_roster_cmd(const void *buf, size_t len)
{
    int t = roster_cmd_type_of(buf, len);

    return t == CL_CMD_ROSTER_SET || t == CL_CMD_ROSTER_DEL;
}

int cl_cmd_decode(const void *buf, size_t len, struct cl_cmd *c)
{
    struct rd r = {.p = buf, .left = len};
    struct cl_req id;
    unsigned type;
    size_t n;
    int rc = 0, version;

    memset(c, 0, sizeof *c);
    if (buf == NULL)
        return XE_CORRUPT;
    if (is_roster_cmd(buf, len))
        return decode_roster(buf, len, c);
    version = cl_req_read(&r, &id);
    c->req_origin = id.origin;
    c->req_boot = id.boot;
    c->req_seq = id.seq;
    c->req_first = id.first;
    type = (unsigned)rd_uint(&r, 1);
    c->flags = (unsigned)rd_uint(&r, 1);
    if (r.bad)
        return XE_CORRUPT;
    /* A format this build does not know was written by a newer xmppd: not
     * corruption (entries are checked by the store and the peer link), but
     * nothing this node can apply (the driver stops). */
    if (version < 0)
        return version;
    if ((c->flags & ~(unsigned)(CL_CMD_ADD | CL_CMD_REPLACE | CL_CMD_SET_AT)) != 0 ||
        ((c->flags & CL_CMD_SET_AT) && type != CL_CMD_CB_SET))
        return XE_CORRUPT;
    c->type = (enum cl_cmd_type)type;
    switch (type) {
    case CL_CMD_INIT:
        c->cluster_id = rd_uint(&r, 8);
        break;
    case CL_CMD_SET_DOMAIN:
        n = (size_t)rd_uint(&r, 2);
        rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->domain, CL_DOMAIN_MAX);
        break;
    case CL_CMD_CB_SET:
    case CL_CMD_CB_DEL:
        n = (size_t)rd_uint(&r, 1);
        rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->name, CL_NAME_MAX);
        if (rc == 0 && type == CL_CMD_CB_SET) {
            c->secret_len = (size_t)rd_uint(&r, 2);
            if (c->secret_len > CL_SECRET_MAX)
                return XE_CORRUPT;
            c->secret = rd_bytes(&r, c->secret_len);
            if (c->flags & CL_CMD_SET_AT) {
                c->set_at = rd_uint(&r, 8);
                if (!r.bad && c->set_at == 0)
                    return XE_CORRUPT; /* "unknown" is written without the flag */
            }
        }
        break;
    case CL_CMD_USER_SET:
        rc = rd_user(&r, &c->decoded_user);
        if (rc == 0) {
            memcpy(c->name, c->decoded_user.name, sizeof c->name);
            c->user = &c->decoded_user;
        }
        break;
    case CL_CMD_USER_DEL:
        n = (size_t)rd_uint(&r, 2);
        rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->name, CL_USER_MAX);
        break;
    case CL_CMD_USER_ITER:
        c->iterations = (uint32_t)rd_uint(&r, 4);
        break;
    case CL_CMD_PRES_LAST:
        n = (size_t)rd_uint(&r, 2);
        rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->name, CL_USER_MAX);
        if (rc == 0) {
            n = (size_t)rd_uint(&r, 2);
            rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->pres_resource, CL_RESOURCE_MAX);
        }
        if (rc == 0) {
            c->pres_wall_ms = rd_uint(&r, 8);
            n = (size_t)rd_uint(&r, 2);
            if (!r.bad && n == 0)
                c->pres_status[0] = '\0';
            else
                rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->pres_status, CL_STATUS_MAX);
        }
        break;
    case CL_CMD_LOGIN: {
        unsigned failed;
        c->login_what = (uint8_t)rd_uint(&r, 1);
        failed = (unsigned)rd_uint(&r, 1);
        if (!r.bad && failed > 1)
            return XE_CORRUPT;
        c->login_failed = failed == 1;
        n = (size_t)rd_uint(&r, 2);
        rc = r.bad ? XE_CORRUPT : rd_str(&r, n, c->name, CL_USER_MAX);
        break;
    }
    default:
        return XE_UNSUPPORTED; /* a kind of entry a newer xmppd writes */
    }
    if (rc < 0)
        return rc;
    if (r.bad || r.left != 0)
        return XE_CORRUPT;
    return cmd_check(c);
}

int cl_cmd_with_request(const void *buf, size_t len, uint64_t origin, uint64_t seq,
                        unsigned char **out, size_t *outlen)
{
    struct cl_req id = {.origin = origin, .seq = seq};

    return cl_cmd_with_req(buf, len, &id, out, outlen);
}

int cl_cmd_req(const void *buf, size_t len, struct cl_req *id, enum cl_cmd_type *type)
{
    struct cl_cmd *c = malloc(sizeof *c);
    int rc;

    memset(id, 0, sizeof *id);
    if (c == NULL)
        return XE_NOMEM;
    rc = cl_cmd_decode(buf, len, c);
    if (rc == 0)
        *id = (struct cl_req){c->req_origin, c->req_boot, c->req_seq, c->req_first};
    if (rc == 0 && type != NULL)
        *type = c->type;
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
}

int cl_cmd_with_req(const void *buf, size_t len, const struct cl_req *id,
                    unsigned char **out, size_t *outlen)
{
    struct cl_cmd *c;
    int rc;

    *out = NULL;
    *outlen = 0;
    if (id->origin == 0 || !req_valid(id))
        return XE_INVAL;
    if (buf != NULL && is_roster_cmd(buf, len)) {
        struct roster_cmd *r = calloc(1, sizeof *r);
        if (r == NULL)
            return XE_NOMEM;
        rc = roster_cmd_decode(buf, len, r);
        if (rc == 0) {
            r->req_origin = id->origin;
            r->req_boot = id->boot;
            r->req_seq = id->seq;
            r->req_first = id->first;
            rc = roster_cmd_encode(r, out, outlen);
        }
        roster_cmd_clear(r);
        free(r);
        return rc;
    }
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    rc = cl_cmd_decode(buf, len, c);
    if (rc == 0) {
        c->req_origin = id->origin;
        c->req_boot = id->boot;
        c->req_seq = id->seq;
        c->req_first = id->first;
        rc = cl_cmd_encode(c, out, outlen);
    }
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
}

void cl_buf_free(void *p, size_t len)
{
    if (p == NULL)
        return;
    sodium_memzero(p, len);
    free(p);
}

/* ---- snapshots ---- */

/* snap_version: the oldest version that holds everything in s, so that a
 * state without the newer parts reads on older nodes. */
static unsigned snap_version(const struct cl_state *s)
{
    for (size_t i = 0; i < s->n_cb; i++)
        if (s->cb[i]->set_at != 0)
            return CL_SNAP_VERSION_CB_TIME;
    if (s->n_sess > 0)
        return CL_SNAP_VERSION_SESSIONS;
    if (roster_db_user_count(s->rosters) > 0)
        return CL_SNAP_VERSION_ROSTER;
    if (s->user_iter != 0)
        return CL_SNAP_VERSION_ITER;
    return s->seen.n > 0 ? CL_SNAP_VERSION_ID : CL_SNAP_VERSION;
}

/* snap_write writes s; ros/ros_len is its roster snapshot (version 4). */
static void snap_write(struct wr *w, const struct cl_state *s, const unsigned char *ros,
                       size_t ros_len)
{
    size_t n = strlen(s->domain);
    unsigned version = snap_version(s);

    wr_uint(w, version, 1);
    wr_uint(w, s->cluster_id, 8);
    wr_uint(w, n, 2);
    wr_bytes(w, s->domain, n);
    wr_uint(w, s->n_cb, 4);
    for (size_t i = 0; i < s->n_cb; i++) {
        const struct cl_callbridge *cb = s->cb[i];
        n = strlen(cb->name);
        wr_uint(w, n, 1);
        wr_bytes(w, cb->name, n);
        wr_uint(w, cb->secret_len, 2);
        wr_bytes(w, cb->secret, cb->secret_len);
    }
    wr_uint(w, s->n_users, 4);
    for (size_t i = 0; i < s->n_users; i++)
        wr_user(w, s->users[i]->name, s->users[i]);
    if (version == CL_SNAP_VERSION)
        return;
    wr_uint(w, s->seen.n, 4);
    for (size_t i = 0; i < s->seen.n; i++) {
        const struct cl_seen *e = &s->seen.e[(s->seen.head + i) % s->seen.n];
        wr_uint(w, e->origin, 8);
        wr_uint(w, e->seq, 8);
        wr_uint(w, (uint32_t)e->rc, 4);
    }
    if (version == CL_SNAP_VERSION_ID)
        return;
    wr_uint(w, s->user_iter, 4);
    if (version == CL_SNAP_VERSION_ITER)
        return;
    wr_uint(w, ros_len, 4);
    wr_bytes(w, ros, ros_len);
    if (version == CL_SNAP_VERSION_ROSTER)
        return;
    wr_uint(w, s->n_sess, 4);
    for (size_t i = 0; i < s->n_sess; i++) {
        const struct cl_session *e = &s->sess[i];
        wr_uint(w, e->origin, 8);
        wr_uint(w, e->boot, 8);
        wr_uint(w, e->mark, 8);
        wr_uint(w, e->n, 4);
        for (size_t k = 0; k < e->n; k++) {
            wr_uint(w, e->r[k].seq, 8);
            wr_uint(w, (uint32_t)e->r[k].rc, 4);
        }
    }
    if (version == CL_SNAP_VERSION_SESSIONS)
        return;
    for (size_t i = 0; i < s->n_cb; i++)
        wr_uint(w, s->cb[i]->set_at, 8);
}

/* snap_read_seen reads the request ids; version 2 has at least one (it is
 * written only then), version 3 may have none. */
static int snap_read_seen(struct rd *r, struct cl_state *s, bool may_be_empty)
{
    uint64_t n = rd_uint(r, 4);

    if (r->bad || (n == 0 && !may_be_empty) || n > CL_SEEN_MAX || n > r->left / 20)
        return XE_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t origin = rd_uint(r, 8), seq = rd_uint(r, 8);
        int rc = (int)(int32_t)(uint32_t)rd_uint(r, 4);
        if (r->bad || origin == 0 || rc > 0)
            return XE_CORRUPT;
        cl__seen_add(&s->seen, &(struct cl_req){.origin = origin, .seq = seq}, rc);
    }
    return 0;
}

int cl_snapshot_encode(const struct cl_state *s, unsigned char **out, size_t *len)
{
    struct wr w = {0};
    unsigned char *ros = NULL;
    size_t ros_len = 0;

    *out = NULL;
    *len = 0;
    if (snap_version(s) >= CL_SNAP_VERSION_ROSTER &&
        roster_db_user_count(s->rosters) > 0 &&
        roster_db_snapshot_encode(s->rosters, &ros, &ros_len) < 0)
        return XE_NOMEM;
    snap_write(&w, s, ros, ros_len);
    w.p = malloc(w.len);
    if (w.p == NULL) {
        free(ros);
        return XE_NOMEM;
    }
    w.len = 0;
    snap_write(&w, s, ros, ros_len);
    free(ros);
    *out = w.p;
    *len = w.len;
    return 0;
}

/* snap_read_rosters reads version 4's u32 len | roster snapshot into s; the
 * section is written only for a non-empty store (one encoding per state);
 * version 5 writes len 0 for none. */
static int snap_read_rosters(struct rd *r, struct cl_state *s, bool may_be_empty)
{
    size_t n = (size_t)rd_uint(r, 4);
    const unsigned char *p = rd_bytes(r, n);
    struct roster_db *db;
    int rc;

    if (p == NULL)
        return XE_CORRUPT;
    if (n == 0 && may_be_empty)
        return 0;
    rc = roster_db_snapshot_decode(p, n, &db);
    if (rc < 0)
        return rc;
    if (roster_db_user_count(db) == 0) {
        roster_db_free(db);
        return XE_CORRUPT;
    }
    roster_db_free(s->rosters);
    s->rosters = db;
    return 0;
}

/* snap_read_sessions reads version 5's sessions: at least one (written
 * only then; version 6 may have none), each with its results ascending within [mark, mark
 * + CL_WINDOW), every (origin, boot) once. */
static int snap_read_sessions(struct rd *r, struct cl_state *s, bool may_be_empty)
{
    uint64_t n = rd_uint(r, 4);

    if (r->bad || (n == 0 && !may_be_empty) || n > CL_SESSIONS_MAX)
        return XE_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t origin = rd_uint(r, 8), boot = rd_uint(r, 8), mark = rd_uint(r, 8);
        uint64_t k = rd_uint(r, 4);
        struct cl_session *e;
        int rc;

        if (r->bad || origin == 0 || boot == 0 || k > CL_WINDOW || k > r->left / 12)
            return XE_CORRUPT;
        for (size_t j = 0; j < s->n_sess; j++)
            if (s->sess[j].origin == origin && s->sess[j].boot == boot)
                return XE_CORRUPT;
        rc = cl__sess_add(s, origin, boot, mark, (size_t)k, &e);
        if (rc < 0)
            return rc;
        for (uint64_t j = 0; j < k; j++) {
            uint64_t seq = rd_uint(r, 8);
            int res = (int)(int32_t)(uint32_t)rd_uint(r, 4);
            if (r->bad || res > 0 || seq < mark || seq - mark >= CL_WINDOW ||
                (e->n > 0 && e->r[e->n - 1].seq >= seq))
                return XE_CORRUPT;
            e->r[e->n++] = (struct cl_result){.seq = seq, .rc = res};
        }
    }
    return 0;
}

static int snap_read_cbs(struct rd *r, struct cl_state *s)
{
    uint64_t n = rd_uint(r, 4);
    char name[CL_NAME_MAX + 1];

    /* Each entry takes at least 5 bytes: a count beyond what remains is a
     * lie, and must not drive a huge allocation. */
    if (r->bad || n > r->left / 5)
        return XE_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        size_t nlen = (size_t)rd_uint(r, 1), slen;
        const unsigned char *secret;
        struct cl_callbridge *cb;
        int rc = r->bad ? XE_CORRUPT : rd_str(r, nlen, name, CL_NAME_MAX);

        if (rc < 0)
            return rc;
        slen = (size_t)rd_uint(r, 2);
        secret = rd_bytes(r, slen);
        if (r->bad)
            return XE_CORRUPT;
        if (!cl_name_valid(name) || slen == 0 || slen > CL_SECRET_MAX)
            return XE_INVAL;
        if (s->n_cb > 0 && strcmp(s->cb[s->n_cb - 1]->name, name) >= 0)
            return XE_CORRUPT; /* sorted and unique */
        if (cl__grow((void ***)&s->cb, s->n_cb, &s->cap_cb) < 0)
            return XE_NOMEM;
        cb = cl__cb_new(name, secret, slen);
        if (cb == NULL)
            return XE_NOMEM;
        s->cb[s->n_cb++] = cb;
    }
    return 0;
}

static int snap_read_users(struct rd *r, struct cl_state *s)
{
    uint64_t n = rd_uint(r, 4);

    if (r->bad || n > r->left / 4)
        return XE_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        struct cl_user *u = malloc(sizeof *u);
        int rc;

        if (u == NULL)
            return XE_NOMEM;
        rc = rd_user(r, u);
        if (rc == 0 && s->n_users > 0 &&
            strcmp(s->users[s->n_users - 1]->name, u->name) >= 0)
            rc = XE_CORRUPT;
        if (rc == 0 && cl__grow((void ***)&s->users, s->n_users, &s->cap_users) < 0)
            rc = XE_NOMEM;
        if (rc < 0) {
            cl__user_free(u);
            return rc;
        }
        s->users[s->n_users++] = u;
    }
    return 0;
}

int cl_snapshot_decode(const void *buf, size_t len, struct cl_state **out)
{
    struct rd r = {.p = buf, .left = len};
    struct cl_state *s = NULL;
    size_t n;
    unsigned version;
    int rc;

    *out = NULL;
    if (buf == NULL)
        return XE_CORRUPT;
    rc = cl_state_new(&s);
    if (rc < 0)
        return rc;
    version = (unsigned)rd_uint(&r, 1);
    if (r.bad || version < CL_SNAP_VERSION || version > CL_SNAP_VERSION_CB_TIME) {
        /* A newer version was written by a newer xmppd: the driver stops
         * rather than run without the state. */
        rc = !r.bad && version > CL_SNAP_VERSION_CB_TIME ? XE_UNSUPPORTED : XE_CORRUPT;
        goto fail;
    }
    s->cluster_id = rd_uint(&r, 8);
    n = (size_t)rd_uint(&r, 2);
    rc = r.bad ? XE_CORRUPT : rd_str(&r, n, s->domain, CL_DOMAIN_MAX);
    if (rc == 0 && s->domain[0] != '\0' && !cl_domain_valid(s->domain))
        rc = XE_INVAL;
    if (rc == 0)
        rc = snap_read_cbs(&r, s);
    if (rc == 0)
        rc = snap_read_users(&r, s);
    if (rc == 0 && version >= CL_SNAP_VERSION_ID)
        rc = snap_read_seen(&r, s, version >= CL_SNAP_VERSION_ITER);
    if (rc == 0 && version >= CL_SNAP_VERSION_ITER) {
        s->user_iter = (uint32_t)rd_uint(&r, 4);
        /* version 4 and later write 0 for "never set" */
        if (!r.bad && !(version >= CL_SNAP_VERSION_ROSTER && s->user_iter == 0) &&
            (s->user_iter < CL_ITER_MIN || s->user_iter > CL_ITER_MAX))
            rc = XE_INVAL;
    }
    if (rc == 0 && version >= CL_SNAP_VERSION_ROSTER)
        rc = snap_read_rosters(&r, s, version >= CL_SNAP_VERSION_SESSIONS);
    if (rc == 0 && version >= CL_SNAP_VERSION_SESSIONS)
        rc = snap_read_sessions(&r, s, version >= CL_SNAP_VERSION_CB_TIME);
    if (rc == 0 && version >= CL_SNAP_VERSION_CB_TIME) {
        bool any = false;
        for (size_t i = 0; i < s->n_cb; i++) {
            s->cb[i]->set_at = rd_uint(&r, 8);
            any = any || s->cb[i]->set_at != 0;
        }
        if (!r.bad && !any)
            rc = XE_CORRUPT; /* version 6 is written only with a time */
    }
    if (rc == 0 && (r.bad || r.left != 0))
        rc = XE_CORRUPT;
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;

fail:
    cl_state_free(s);
    return rc;
}
