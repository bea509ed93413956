/* cl.c: the replicated cluster state, its commands and snapshots (contract
 * in cl.h; format in docs/replicated-state.md). */
#include "cl.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "jid.h"

struct cl_state {
    uint64_t cluster_id;
    char domain[CL_DOMAIN_MAX + 1];
    struct cl_callbridge **cb; /* sorted by name; each malloc'd */
    size_t n_cb, cap_cb;
    struct cl_user **users; /* sorted by name; each malloc'd, wiped on free */
    size_t n_users, cap_users;
    /* results of the last request ids applied: a ring, seen[seen_head] is
     * the oldest once n_seen == CL_SEEN_MAX */
    struct cl_seen {
        uint64_t origin, seq;
        int rc;
    } seen[CL_SEEN_MAX];
    size_t n_seen, seen_head;
};

/* ---- validation ---- */

bool cl_name_valid(const char *name)
{
    size_t n = 0;

    if (name == NULL)
        return false;
    for (const char *p = name; *p != '\0'; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return n >= 1 && n <= CL_NAME_MAX;
}

bool cl_domain_valid(const char *domain)
{
    return domain != NULL && domain[0] != '\0' && strlen(domain) <= CL_DOMAIN_MAX &&
           jid_domain_valid(domain);
}

bool cl_user_valid(const char *user)
{
    size_t n = 0;

    if (user == NULL)
        return false;
    for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++, n++) {
        /* RFC 7622 §3.3.1: these never appear in a localpart. */
        if (*p <= 0x20 || *p == 0x7f || strchr("\"&'/:<>@", *p) != NULL)
            return false;
    }
    return n >= 1 && n <= CL_USER_MAX;
}

static size_t key_len(bool sha1)
{
    return sha1 ? CL_KEY_SHA1 : CL_KEY_SHA256;
}

static bool scram_valid(const struct cl_scram *s)
{
    return s->salt_len >= CL_SALT_MIN && s->salt_len <= CL_SALT_MAX &&
           s->iterations >= CL_ITER_MIN && s->iterations <= CL_ITER_MAX;
}

static bool creds_valid(const struct cl_user *u)
{
    return u != NULL && u->sha256.present && scram_valid(&u->sha256) &&
           (!u->sha1.present || scram_valid(&u->sha1));
}

/* ---- state ---- */

int cl_state_new(struct cl_state **out)
{
    *out = calloc(1, sizeof **out);
    return *out == NULL ? XE_NOMEM : 0;
}

static void cb_free(struct cl_callbridge *cb)
{
    if (cb == NULL)
        return;
    sodium_free(cb->secret); /* sodium_free wipes */
    free(cb);
}

static void user_free(struct cl_user *u)
{
    if (u == NULL)
        return;
    sodium_memzero(u, sizeof *u);
    free(u);
}

void cl_state_free(struct cl_state *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_cb; i++)
        cb_free(s->cb[i]);
    for (size_t i = 0; i < s->n_users; i++)
        user_free(s->users[i]);
    free(s->cb);
    free(s->users);
    free(s);
}

uint64_t cl_cluster_id(const struct cl_state *s)
{
    return s->cluster_id;
}

const char *cl_domain(const struct cl_state *s)
{
    return s->domain;
}

size_t cl_callbridge_count(const struct cl_state *s)
{
    return s->n_cb;
}

const struct cl_callbridge *cl_callbridge_at(const struct cl_state *s, size_t i)
{
    return i < s->n_cb ? s->cb[i] : NULL;
}

size_t cl_user_count(const struct cl_state *s)
{
    return s->n_users;
}

const struct cl_user *cl_user_at(const struct cl_state *s, size_t i)
{
    return i < s->n_users ? s->users[i] : NULL;
}

/* find_name binary-searches arr, n entries sorted by name, each a struct
 * whose first member is its char name[] (so the entry pointer converts to
 * the name, C11 6.7.2.1p15): returns the position of name, or where it
 * would go (*found false).  Call bridges and users share it. */
static size_t find_name(void *const *arr, size_t n, const char *name, bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp((const char *)arr[mid], name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

_Static_assert(offsetof(struct cl_callbridge, name) == 0, "find_name reads name first");
_Static_assert(offsetof(struct cl_user, name) == 0, "find_name reads name first");

static size_t find_cb(const struct cl_state *s, const char *name, bool *found)
{
    return find_name((void *const *)s->cb, s->n_cb, name, found);
}

static size_t find_user(const struct cl_state *s, const char *name, bool *found)
{
    return find_name((void *const *)s->users, s->n_users, name, found);
}

const struct cl_callbridge *cl_callbridge_find(const struct cl_state *s, const char *name)
{
    bool found;
    size_t i = find_cb(s, name, &found);

    return found ? s->cb[i] : NULL;
}

const struct cl_user *cl_user_find(const struct cl_state *s, const char *name)
{
    bool found;
    size_t i = find_user(s, name, &found);

    return found ? s->users[i] : NULL;
}

/* grow makes room for one more pointer in *arr (cap *cap); XE_NOMEM leaves
 * everything as it was. */
static int grow(void ***arr, size_t n, size_t *cap)
{
    void **na;
    size_t ncap;

    if (n < *cap)
        return 0;
    ncap = *cap == 0 ? 8 : *cap * 2;
    na = realloc(*arr, ncap * sizeof *na);
    if (na == NULL)
        return XE_NOMEM;
    *arr = na;
    *cap = ncap;
    return 0;
}

static void insert_at(void **arr, size_t *n, size_t pos, void *item)
{
    memmove(&arr[pos + 1], &arr[pos], (*n - pos) * sizeof *arr);
    arr[pos] = item;
    (*n)++;
}

static void remove_at(void **arr, size_t *n, size_t pos)
{
    memmove(&arr[pos], &arr[pos + 1], (*n - pos - 1) * sizeof *arr);
    (*n)--;
}

/* cb_new makes a call-bridge entry with a copy of secret in sodium memory. */
static struct cl_callbridge *cb_new(const char *name, const unsigned char *secret,
                                    size_t len)
{
    struct cl_callbridge *cb = calloc(1, sizeof *cb);

    if (cb == NULL)
        return NULL;
    cb->secret = sodium_malloc(len);
    if (cb->secret == NULL) {
        free(cb);
        return NULL;
    }
    memcpy(cb->secret, secret, len);
    cb->secret_len = len;
    snprintf(cb->name, sizeof cb->name, "%s", name);
    return cb;
}

/* ---- byte reader and writer ---- */

struct rd {
    const unsigned char *p;
    size_t left;
    bool bad; /* ran past the end */
};

static const unsigned char *rd_bytes(struct rd *r, size_t n)
{
    const unsigned char *p;

    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t rd_uint(struct rd *r, unsigned size)
{
    const unsigned char *p = rd_bytes(r, size);
    uint64_t v = 0;

    if (p == NULL)
        return 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

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

struct wr {
    unsigned char *p; /* NULL: only count */
    size_t len;
};

static void wr_bytes(struct wr *w, const void *src, size_t n)
{
    if (w->p != NULL && n > 0)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void wr_uint(struct wr *w, uint64_t v, unsigned size)
{
    unsigned char b[8];

    for (unsigned i = 0; i < size; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    wr_bytes(w, b, size);
}

/* ---- user credentials, shared by USER_SET and snapshots ---- */

static void wr_scram(struct wr *w, const struct cl_scram *s, bool sha1)
{
    wr_uint(w, s->salt_len, 1);
    wr_bytes(w, s->salt, s->salt_len);
    wr_uint(w, s->iterations, 4);
    wr_bytes(w, s->stored_key, key_len(sha1));
    wr_bytes(w, s->server_key, key_len(sha1));
}

/* wr_user writes u16 len | user | u8 mechs | mechs, with name as the user. */
static void wr_user(struct wr *w, const char *name, const struct cl_user *u)
{
    size_t n = strlen(name);

    wr_uint(w, n, 2);
    wr_bytes(w, name, n);
    wr_uint(w, 1u | (u->sha1.present ? 2u : 0u), 1);
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
    if (r->bad || (mechs & ~3u) != 0 || (mechs & 1u) == 0)
        return XE_CORRUPT;
    rc = rd_scram(r, &u->sha256, false);
    if (rc == 0 && (mechs & 2u))
        rc = rd_scram(r, &u->sha1, true);
    if (rc < 0)
        return rc;
    if (!cl_user_valid(u->name) || !creds_valid(u))
        return XE_INVAL;
    return 0;
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

void cl_cmd_user_del(struct cl_cmd *c, const char *user)
{
    cmd_clear(c, CL_CMD_USER_DEL);
    copy_str(c->name, sizeof c->name, user);
}

/* cmd_check validates a command's fields (encode and decode share it). */
static int cmd_check(const struct cl_cmd *c)
{
    unsigned allowed =
        (c->type == CL_CMD_CB_SET || c->type == CL_CMD_USER_SET) ? CL_CMD_ADD : 0;

    if ((c->flags & ~allowed) != 0)
        return XE_INVAL;
    switch (c->type) {
    case CL_CMD_INIT:
        return c->cluster_id != 0 ? 0 : XE_INVAL;
    case CL_CMD_SET_DOMAIN:
        return cl_domain_valid(c->domain) ? 0 : XE_INVAL;
    case CL_CMD_CB_SET:
        if (c->secret == NULL || c->secret_len == 0 || c->secret_len > CL_SECRET_MAX)
            return XE_INVAL;
        /* fall through */
    case CL_CMD_CB_DEL:
        return cl_name_valid(c->name) ? 0 : XE_INVAL;
    case CL_CMD_USER_SET:
        if (!creds_valid(c->user))
            return XE_INVAL;
        /* fall through */
    case CL_CMD_USER_DEL:
        return cl_user_valid(c->name) ? 0 : XE_INVAL;
    }
    return XE_INVAL;
}

static void cmd_write(struct wr *w, const struct cl_cmd *c)
{
    size_t n;

    if (c->req_origin != 0) {
        wr_uint(w, CL_CMD_VERSION_ID, 1);
        wr_uint(w, c->req_origin, 8);
        wr_uint(w, c->req_seq, 8);
    } else {
        wr_uint(w, CL_CMD_VERSION, 1);
    }
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
    }
}

int cl_cmd_encode(const struct cl_cmd *c, unsigned char **out, size_t *len)
{
    struct wr w = {0};
    int rc;

    *out = NULL;
    *len = 0;
    rc = cmd_check(c);
    if (rc < 0)
        return rc;
    cmd_write(&w, c);
    w.p = malloc(w.len);
    if (w.p == NULL)
        return XE_NOMEM;
    w.len = 0;
    cmd_write(&w, c);
    *out = w.p;
    *len = w.len;
    return 0;
}

int cl_cmd_decode(const void *buf, size_t len, struct cl_cmd *c)
{
    struct rd r = {.p = buf, .left = len};
    unsigned version, type;
    size_t n;
    int rc = 0;

    memset(c, 0, sizeof *c);
    if (buf == NULL)
        return XE_CORRUPT;
    version = (unsigned)rd_uint(&r, 1);
    if (version == CL_CMD_VERSION_ID) {
        c->req_origin = rd_uint(&r, 8);
        c->req_seq = rd_uint(&r, 8);
        if (!r.bad && c->req_origin == 0)
            return XE_CORRUPT;
    }
    type = (unsigned)rd_uint(&r, 1);
    c->flags = (unsigned)rd_uint(&r, 1);
    if (r.bad || (version != CL_CMD_VERSION && version != CL_CMD_VERSION_ID))
        return XE_CORRUPT;
    if ((c->flags & ~(unsigned)CL_CMD_ADD) != 0)
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
    default:
        return XE_CORRUPT;
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
    struct cl_cmd *c;
    int rc;

    *out = NULL;
    *outlen = 0;
    if (origin == 0)
        return XE_INVAL;
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    rc = cl_cmd_decode(buf, len, c);
    if (rc == 0) {
        c->req_origin = origin;
        c->req_seq = seq;
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

/* ---- apply ---- */

const char *cl_effect_name(enum cl_effect_kind k)
{
    switch (k) {
    case CL_EFF_NONE:
        return "none";
    case CL_EFF_INIT:
        return "init";
    case CL_EFF_DOMAIN:
        return "domain";
    case CL_EFF_CB_ADDED:
        return "callbridge-added";
    case CL_EFF_CB_SECRET:
        return "callbridge-secret-changed";
    case CL_EFF_CB_DELETED:
        return "callbridge-deleted";
    case CL_EFF_USER_ADDED:
        return "user-added";
    case CL_EFF_USER_CHANGED:
        return "user-changed";
    case CL_EFF_USER_DELETED:
        return "user-deleted";
    }
    return "unknown";
}

static int apply_cb_set(struct cl_state *s, const struct cl_cmd *c,
                        struct cl_effects *eff)
{
    bool found;
    size_t pos = find_cb(s, c->name, &found);
    struct cl_callbridge *nb;

    if (found && (c->flags & CL_CMD_ADD))
        return XE_EXISTS;
    if (found && s->cb[pos]->secret_len == c->secret_len &&
        sodium_memcmp(s->cb[pos]->secret, c->secret, c->secret_len) == 0) {
        eff->cb = s->cb[pos];
        return 0; /* the same secret again: nothing changes */
    }
    if (!found && grow((void ***)&s->cb, s->n_cb, &s->cap_cb) < 0)
        return XE_NOMEM;
    nb = cb_new(c->name, c->secret, c->secret_len);
    if (nb == NULL)
        return XE_NOMEM;
    if (found) {
        cb_free(s->cb[pos]);
        s->cb[pos] = nb;
        eff->kind = CL_EFF_CB_SECRET;
    } else {
        insert_at((void **)s->cb, &s->n_cb, pos, nb);
        eff->kind = CL_EFF_CB_ADDED;
    }
    eff->cb = nb;
    return 0;
}

static int apply_user_set(struct cl_state *s, const struct cl_cmd *c,
                          struct cl_effects *eff)
{
    bool found;
    size_t pos = find_user(s, c->name, &found);
    struct cl_user *nu;

    if (found && (c->flags & CL_CMD_ADD))
        return XE_EXISTS;
    if (!found && grow((void ***)&s->users, s->n_users, &s->cap_users) < 0)
        return XE_NOMEM;
    nu = malloc(sizeof *nu);
    if (nu == NULL)
        return XE_NOMEM;
    *nu = *c->user;
    memcpy(nu->name, c->name, sizeof nu->name);
    if (found) {
        user_free(s->users[pos]);
        s->users[pos] = nu;
        eff->kind = CL_EFF_USER_CHANGED;
    } else {
        insert_at((void **)s->users, &s->n_users, pos, nu);
        eff->kind = CL_EFF_USER_ADDED;
    }
    eff->user = nu;
    return 0;
}

static int apply_cmd(struct cl_state *s, const struct cl_cmd *c, struct cl_effects *eff)
{
    bool found;
    size_t pos;

    switch (c->type) {
    case CL_CMD_INIT:
        if (s->cluster_id != 0)
            return XE_EXISTS;
        s->cluster_id = c->cluster_id;
        eff->kind = CL_EFF_INIT;
        return 0;
    case CL_CMD_SET_DOMAIN:
        if (strcmp(s->domain, c->domain) == 0)
            return 0;
        memcpy(eff->old_domain, s->domain, sizeof eff->old_domain);
        memcpy(s->domain, c->domain, sizeof s->domain);
        eff->kind = CL_EFF_DOMAIN;
        return 0;
    case CL_CMD_CB_SET:
        return apply_cb_set(s, c, eff);
    case CL_CMD_CB_DEL:
        pos = find_cb(s, c->name, &found);
        if (!found)
            return XE_NOTFOUND;
        cb_free(s->cb[pos]);
        remove_at((void **)s->cb, &s->n_cb, pos);
        eff->kind = CL_EFF_CB_DELETED;
        return 0;
    case CL_CMD_USER_SET:
        return apply_user_set(s, c, eff);
    case CL_CMD_USER_DEL:
        pos = find_user(s, c->name, &found);
        if (!found)
            return XE_NOTFOUND;
        user_free(s->users[pos]);
        remove_at((void **)s->users, &s->n_users, pos);
        eff->kind = CL_EFF_USER_DELETED;
        return 0;
    }
    return XE_CORRUPT;
}

/* seen_find returns the remembered result slot of (origin, seq), or NULL. */
static const struct cl_seen *seen_find(const struct cl_state *s, uint64_t origin,
                                       uint64_t seq)
{
    for (size_t i = 0; i < s->n_seen; i++)
        if (s->seen[i].origin == origin && s->seen[i].seq == seq)
            return &s->seen[i];
    return NULL;
}

/* seen_add remembers a result, dropping the oldest when full (the order is
 * the apply order, so every node drops the same one). */
static void seen_add(struct cl_state *s, uint64_t origin, uint64_t seq, int rc)
{
    struct cl_seen e = {.origin = origin, .seq = seq, .rc = rc};

    if (s->n_seen < CL_SEEN_MAX) {
        s->seen[s->n_seen++] = e;
        return;
    }
    s->seen[s->seen_head] = e;
    s->seen_head = (s->seen_head + 1) % CL_SEEN_MAX;
}

int cl_apply(struct cl_state *s, const void *data, size_t len, struct cl_effects *eff)
{
    const struct cl_seen *dup;
    struct cl_effects local;
    struct cl_cmd *c;
    int rc;

    if (eff == NULL)
        eff = &local;
    memset(eff, 0, sizeof *eff);
    /* struct cl_cmd is a few KB: keep it off small stacks. */
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    rc = cl_cmd_decode(data, len, c);
    if (rc < 0)
        goto out;
    eff->type = c->type;
    if (c->type != CL_CMD_INIT && c->type != CL_CMD_SET_DOMAIN)
        memcpy(eff->name, c->name, sizeof eff->name);
    /* A request sent again (to a new leader after a leader change) is
     * applied once: the copy answers the first result. */
    dup = c->req_origin != 0 ? seen_find(s, c->req_origin, c->req_seq) : NULL;
    if (dup != NULL) {
        rc = dup->rc;
        eff->kind = CL_EFF_NONE;
        eff->cb = NULL;
        eff->user = NULL;
        goto done;
    }
    rc = apply_cmd(s, c, eff);
    /* XE_NOMEM is not deterministic: the driver stops, nothing to keep. */
    if (c->req_origin != 0 && rc != XE_NOMEM)
        seen_add(s, c->req_origin, c->req_seq, rc);
out:
    if (rc < 0) {
        eff->kind = CL_EFF_NONE;
        eff->cb = NULL;
        eff->user = NULL;
    }
done:
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
}

/* ---- snapshots ---- */

static void snap_write(struct wr *w, const struct cl_state *s)
{
    size_t n = strlen(s->domain);

    wr_uint(w, s->n_seen > 0 ? CL_SNAP_VERSION_ID : CL_SNAP_VERSION, 1);
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
    if (s->n_seen == 0)
        return;
    wr_uint(w, s->n_seen, 4);
    for (size_t i = 0; i < s->n_seen; i++) {
        const struct cl_seen *e = &s->seen[(s->seen_head + i) % s->n_seen];
        wr_uint(w, e->origin, 8);
        wr_uint(w, e->seq, 8);
        wr_uint(w, (uint32_t)e->rc, 4);
    }
}

static int snap_read_seen(struct rd *r, struct cl_state *s)
{
    uint64_t n = rd_uint(r, 4);

    if (r->bad || n == 0 || n > CL_SEEN_MAX || n > r->left / 20)
        return XE_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t origin = rd_uint(r, 8), seq = rd_uint(r, 8);
        int rc = (int)(int32_t)(uint32_t)rd_uint(r, 4);
        if (r->bad || origin == 0 || rc > 0)
            return XE_CORRUPT;
        seen_add(s, origin, seq, rc);
    }
    return 0;
}

int cl_snapshot_encode(const struct cl_state *s, unsigned char **out, size_t *len)
{
    struct wr w = {0};

    *out = NULL;
    *len = 0;
    snap_write(&w, s);
    w.p = malloc(w.len);
    if (w.p == NULL)
        return XE_NOMEM;
    w.len = 0;
    snap_write(&w, s);
    *out = w.p;
    *len = w.len;
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
        if (grow((void ***)&s->cb, s->n_cb, &s->cap_cb) < 0)
            return XE_NOMEM;
        cb = cb_new(name, secret, slen);
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
        if (rc == 0 && grow((void ***)&s->users, s->n_users, &s->cap_users) < 0)
            rc = XE_NOMEM;
        if (rc < 0) {
            user_free(u);
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
    if (r.bad || (version != CL_SNAP_VERSION && version != CL_SNAP_VERSION_ID)) {
        rc = XE_CORRUPT;
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
    if (rc == 0 && version == CL_SNAP_VERSION_ID)
        rc = snap_read_seen(&r, s);
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
