/* cmds_user.c: `xmpp user ...` on the daemon side: check and prepare the
 * name and password, make SCRAM credentials off the loop, submit through
 * Raft, answer once applied (contract in cmds_user.h). */
#include "cmds_user.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <uv.h>

#include "repl.h"
#include "ctl_socket.h"
#include "err.h"
#include "logging.h"
#include "node.h"
#include "pframe.h"
#include "precis.h"
#include "raft.h"
#include "rnode.h"
#include "scram.h"
#include "srv.h"

#define SUBMIT_TIMEOUT_MS 5000

enum what { W_ADD, W_PASSWD, W_DEL, W_ITER };

/* One request from the handler to its answer.  In sodium_malloc memory: it
 * holds the password until the credentials are made, then the keys. */
struct req {
    uv_work_t work; /* the thread-pool job (first: any alignment is fine) */
    struct node *n;
    struct ctl_deferred *d;
    json_t *result; /* the answer on success (owned) */
    enum what what;
    int rc;              /* the derivation's result */
    uint32_t iterations; /* W_ADD, W_PASSWD: for the credentials; W_ITER */
    char name[CL_USER_MAX + 1];
    size_t pw_len;
    char password[CMDS_PASSWORD_MAX + 1];
    struct cl_user creds;
    struct cl_cmd cmd;
};

static struct req *req_new(struct node *n, enum what what)
{
    /* sodium_malloc aligns only sizes that are a multiple of the alignment
     * (its documentation): round up. */
    size_t size = (sizeof(struct req) + 63) & ~(size_t)63;
    struct req *r = sodium_malloc(size);

    if (r == NULL)
        return NULL;
    memset(r, 0, size);
    r->n = n;
    r->what = what;
    return r;
}

/* req_free wipes (sodium_free does) and frees r; its result, if still
 * held, is released. */
static void req_free(struct req *r)
{
    json_decref(r->result);
    sodium_free(r);
}

/* ---- preparation ---- */

/* prepare_name writes the account name as stored and as a login looks it
 * up into out (CL_USER_MAX + 1 bytes): RFC 7622 §3.3.1, a localpart is
 * prepared with the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3),
 * precis_username.  What the admin typed is checked first, so that the
 * error names the character. */
static int prepare_name(const char *in, char *out, struct ctl_error *err)
{
    char why[256];
    int rc;

    if (in == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"name\" must be a string");
    if (!cl_user_explain(in, why, sizeof why))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "%s", why);
    rc = precis_username(in, strlen(in), out, CL_USER_MAX + 1);
    if (rc == XE_LIMIT)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "user name \"%.60s\" is over %d bytes once prepared (RFC "
                             "7622 §3.3); choose a shorter one",
                             in, CL_USER_MAX);
    if (rc < 0 || !cl_user_valid(out))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "user name \"%.60s\" is not allowed by PRECIS (RFC 8265 "
                             "§3.3: letters, digits, punctuation; no spaces, symbols "
                             "outside the identifier class, or mixed directions); choose "
                             "another",
                             in);
    return 0;
}

/* take_password checks the request's password, prepares it with the PRECIS
 * OpaqueString profile (RFC 8265 §4.2: non-ASCII spaces to U+0020, NFC, no
 * control characters) as RFC 7677 and RFC 5802 §5.1 ask of SCRAM
 * passwords, and writes it into r. */
static int take_password(json_t *args, struct req *r, struct ctl_error *err)
{
    json_t *pw = json_object_get(args, "password");
    size_t n;
    int rc;

    if (!json_is_string(pw))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"password\" must be a string");
    n = json_string_length(pw);
    if (n == 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the password is empty; give one, or use --generate");
    if (n > CMDS_PASSWORD_MAX)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the password is %zu bytes; at most %d", n,
                             CMDS_PASSWORD_MAX);
    rc = precis_opaque(json_string_value(pw), n, r->password, sizeof r->password);
    if (rc == XE_LIMIT)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the password is over %d bytes once prepared; choose a "
                             "shorter one",
                             CMDS_PASSWORD_MAX);
    if (rc < 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the password has characters that RFC 8265 §4.2 does not "
                             "allow (control or unassigned characters); choose another");
    r->pw_len = strlen(r->password);
    return 0;
}

/* ---- answers ---- */

static void explain(const struct req *r, int rc, const char *msg, struct ctl_error *e)
{
    switch (rc) {
    case XE_EXISTS:
        ctl_error_set(e, "exists",
                      "user %.100s already exists; set a new password with: xmpp user "
                      "passwd %.100s",
                      r->name, r->name);
        return;
    case XE_NOTFOUND:
        ctl_error_set(e, "not-found", "no user %.100s; see xmpp user list", r->name);
        return;
    case XE_NOLEADER:
        ctl_error_set(e, "no-leader",
                      "no cluster leader: nothing was changed; try again when xmpp "
                      "cluster status shows a leader%s%.100s%s",
                      msg != NULL && msg[0] != '\0' ? " (" : "", msg != NULL ? msg : "",
                      msg != NULL && msg[0] != '\0' ? ")" : "");
        return;
    case XE_TIMEOUT:
        ctl_error_set(e, "timeout",
                      "the change was not confirmed within %d s: it may still be "
                      "applied; check with xmpp user list (and xmpp cluster status)",
                      SUBMIT_TIMEOUT_MS / 1000);
        return;
    case XE_CLOSED:
        ctl_error_set(e, "state",
                      "the change was cancelled: the daemon is stopping or the node was "
                      "reset; check with xmpp user list and try again");
        return;
    case XE_IO:
        ctl_error_set(e, "io",
                      "the replicated store failed, this node stopped taking writes: "
                      "%.120s; see the daemon's log",
                      msg != NULL ? msg : "storage error");
        return;
    default:
        ctl_error_set(e, ctl_error_code_for(rc), "%s",
                      msg != NULL ? msg : xe_strerror(rc));
        return;
    }
}

/* finish answers r's request (rc 0: with its result) and frees r. */
static void finish(struct req *r, int rc, const char *msg)
{
    static const char *const done[] = {"added", "password changed", "deleted", ""};
    struct ctl_error e;

    memset(&e, 0, sizeof e);
    if (rc < 0) {
        explain(r, rc, msg, &e);
    } else if (r->what == W_ITER) {
        LOG(node_log(r->n), LOG_INFO, "%s user iterations set to %u", node_name(r->n),
            (unsigned)r->iterations);
    } else {
        LOG(node_log(r->n), LOG_INFO, "%s user %s %s", node_name(r->n), r->name,
            done[r->what]);
    }
    ctl_deferred_finish(r->d, rc < 0 ? rc : 0, rc < 0 ? NULL : r->result, &e);
    if (rc >= 0)
        r->result = NULL; /* taken */
    req_free(r);
}

static void on_applied(void *arg, int rc, const char *msg)
{
    finish(arg, rc, msg);
}

/* submit encodes r->cmd and proposes it; the answer comes in on_applied. */
static void submit(struct req *r)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    if (node_stopping(r->n) || node_rnode(r->n) == NULL) {
        finish(r, XE_CLOSED, NULL);
        return;
    }
    rc = cl_cmd_encode(&r->cmd, &buf, &len);
    sodium_memzero(&r->cmd, sizeof r->cmd);
    sodium_memzero(&r->creds, sizeof r->creds);
    if (rc < 0) {
        finish(r, rc, rc == XE_INVAL ? "the value is not acceptable" : NULL);
        return;
    }
    rnode_submit(node_rnode(r->n), buf, len, SUBMIT_TIMEOUT_MS, on_applied, r);
    cl_buf_free(buf, len);
}

/* ---- credentials, on the thread pool ---- */

/* make_scram fills one mechanism's credentials: a fresh random salt and
 * the keys (RFC 5802 §3). */
static int make_scram(struct req *r, enum scram_hash h, struct cl_scram *s)
{
    s->present = true;
    s->salt_len = CMDS_SALT_BYTES;
    randombytes_buf(s->salt, s->salt_len);
    s->iterations = r->iterations;
    return scram_derive(h, r->password, r->pw_len, s->salt, s->salt_len, s->iterations,
                        s->stored_key, s->server_key);
}

/* derive runs on a thread-pool thread: it touches only r (no loop, no node). */
static void derive(uv_work_t *w)
{
    struct req *r = (struct req *)w;

    r->rc = make_scram(r, SCRAM_SHA256, &r->creds.sha256);
    if (r->rc == 0)
        r->rc = make_scram(r, SCRAM_SHA1, &r->creds.sha1);
    /* The password is not needed any more. */
    sodium_memzero(r->password, sizeof r->password);
    r->pw_len = 0;
}

/* derived runs on the loop once derive is done: propose the account. */
static void derived(uv_work_t *w, int status)
{
    struct req *r = (struct req *)w;

    if (status < 0 || r->rc < 0) {
        finish(r, status < 0 ? XE_CLOSED : r->rc,
               status < 0 ? NULL : "the credentials could not be made");
        return;
    }
    /* The time of the request, made here and carried in the entry: every
     * node stores this value (repl.h, USER_SET). */
    r->creds.created = (uint64_t)time(NULL);
    if (r->what == W_ADD) {
        json_object_set_new(r->result, "created", ctl_time((int64_t)r->creds.created));
        cl_cmd_user_set(&r->cmd, r->name, &r->creds, true);
    } else {
        cl_cmd_user_passwd(&r->cmd, r->name, &r->creds);
    }
    submit(r);
}

/* ---- handlers ---- */

static json_t *jid_json(const struct cl_state *cs, const char *name)
{
    char jid[CL_USER_MAX + CL_DOMAIN_MAX + 2];

    snprintf(jid, sizeof jid, "%s@%s", name, cl_domain(cs)[0] ? cl_domain(cs) : "-");
    return json_string(jid);
}

/* user_set is add (W_ADD) and passwd (W_PASSWD). */
static int user_set(struct node *n, enum what what, json_t *args, struct ctl_error *err)
{
    static const char *const keys[] = {"name", "password", NULL};
    const struct cl_state *cs = rnode_state(node_rnode(n));
    struct req *r;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    r = req_new(n, what);
    if (r == NULL)
        return XE_NOMEM;
    rc = prepare_name(ctl_arg_str(args, "name"), r->name, err);
    if (rc == 0)
        rc = take_password(args, r, err);
    /* Known here already: refuse before the work (cl_apply stays the
     * authority for a name added or removed meanwhile on another node). */
    if (rc == 0 && what == W_ADD && cl_user_find(cs, r->name) != NULL) {
        explain(r, XE_EXISTS, NULL, err);
        rc = XE_EXISTS;
    }
    if (rc == 0 && what == W_PASSWD && cl_user_find(cs, r->name) == NULL) {
        explain(r, XE_NOTFOUND, NULL, err);
        rc = XE_NOTFOUND;
    }
    if (rc < 0) {
        req_free(r);
        return rc;
    }
    r->iterations = cl_user_iterations(cs);
    r->result = json_pack("{s:s, s:o, s:I}", "name", r->name, "jid",
                          jid_json(cs, r->name), "iterations", (json_int_t)r->iterations);
    r->d = r->result != NULL ? ctl_socket_defer(node_ctl(n)) : NULL;
    if (r->d == NULL) {
        req_free(r);
        return XE_NOMEM;
    }
    rc = uv_queue_work(node_loop(n), &r->work, derive, derived);
    if (rc < 0) {
        finish(r, XE_NOMEM, "cannot start making the credentials");
        return CTL_DEFERRED;
    }
    return CTL_DEFERRED;
}

int cmds_user_add(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    return user_set(ud, W_ADD, args, err);
}

int cmds_user_passwd(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    return user_set(ud, W_PASSWD, args, err);
}

int cmds_user_del(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"name", NULL};
    struct node *n = ud;
    struct req *r;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    r = req_new(n, W_DEL);
    if (r == NULL)
        return XE_NOMEM;
    rc = prepare_name(ctl_arg_str(args, "name"), r->name, err);
    if (rc == 0 && cl_user_find(rnode_state(node_rnode(n)), r->name) == NULL) {
        explain(r, XE_NOTFOUND, NULL, err);
        rc = XE_NOTFOUND;
    }
    if (rc == 0) {
        r->result = json_pack("{s:s}", "name", r->name);
        r->d = r->result != NULL ? ctl_socket_defer(node_ctl(n)) : NULL;
        rc = r->d != NULL ? 0 : XE_NOMEM;
    }
    if (rc < 0) {
        req_free(r);
        return rc;
    }
    cl_cmd_user_del(&r->cmd, r->name);
    submit(r);
    return CTL_DEFERRED;
}

/* The client sessions of the routing table, by user
 * (sessions online and the node of each). */
struct by_user {
    json_t *users; /* name -> array of sessions */
    const struct raft_config *cfg;
};

static void session_one(void *ud, const struct pframe_route *e)
{
    struct by_user *b = ud;
    const char *at = strchr(e->name, '@'), *slash = at ? strchr(at, '/') : NULL;
    const char *addr = NULL;
    char user[CL_USER_MAX + 1], id[17];
    json_t *l;

    if (e->attr.kind == PFRAME_KIND_COMPONENT || at == NULL || slash == NULL ||
        (size_t)(at - e->name) > CL_USER_MAX)
        return;
    memcpy(user, e->name, (size_t)(at - e->name));
    user[at - e->name] = '\0';
    for (unsigned i = 0; b->cfg != NULL && i < b->cfg->n; i++)
        if (b->cfg->members[i].id == e->node)
            addr = b->cfg->members[i].address;
    snprintf(id, sizeof id, "%016" PRIx64, e->node);
    l = json_object_get(b->users, user);
    if (l == NULL) {
        l = json_array();
        if (l == NULL || json_object_set_new(b->users, user, l) < 0)
            return;
    }
    json_array_append_new(
        l, json_pack("{s:s, s:s, s:s, s:s?, s:s, s:b, s:i}", "jid", e->name, "resource",
                     slash + 1, "node_id", id, "node", addr, "transport",
                     e->attr.kind == PFRAME_KIND_C2S_WS ? "websocket" : "tcp",
                     "available", (e->attr.flags & PFRAME_ATTR_AVAILABLE) != 0,
                     "priority", (int)e->attr.priority));
}

int cmds_user_list(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    const struct cl_state *cs = rnode_state(node_rnode(n));
    struct by_user b = {0};
    json_t *a;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    b.users = json_object();
    b.cfg = node_rnode(n) != NULL ? rnode_config(node_rnode(n)) : NULL;
    /* From this node's copy of the routing table: every node's sessions
     * (in cluster mode; xmppd always runs it once XMPP is enabled). */
    if (b.users != NULL && node_srv(n) != NULL)
        srv_cluster_each_entry(node_srv(n), session_one, &b);
    a = json_array();
    for (size_t i = 0; a != NULL && i < cl_user_count(cs); i++) {
        const struct cl_user *u = cl_user_at(cs, i);

        json_t *l = json_object_get(b.users, u->name);
        json_array_append_new(a, json_pack("{s:s, s:o, s:o, s:I, s:o}", "name", u->name,
                                           "jid", jid_json(cs, u->name), "created",
                                           ctl_time((int64_t)u->created), "online",
                                           (json_int_t)json_array_size(l), "sessions",
                                           l != NULL ? json_incref(l) : json_array()));
    }
    json_decref(b.users);
    *result = json_pack("{s:o, s:I}", "users", a, "iterations",
                        (json_int_t)cl_user_iterations(cs));
    return *result != NULL ? 0 : XE_NOMEM;
}

int cmds_user_iterations(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"iterations", NULL};
    json_t *it = json_object_get(args, "iterations");
    struct node *n = ud;
    struct req *r;
    json_int_t v;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (it == NULL) {
        *result = json_pack("{s:I, s:I}", "iterations",
                            (json_int_t)cl_user_iterations(rnode_state(node_rnode(n))),
                            "default", (json_int_t)CL_ITER_DEFAULT);
        return *result != NULL ? 0 : XE_NOMEM;
    }
    v = json_is_integer(it) ? json_integer_value(it) : -1;
    /* RFC 7677 §4: at least 4096. */
    if (v < CL_ITER_MIN || v > CL_ITER_MAX)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the iteration count must be a number from %d (RFC 7677 "
                             "§4) to %d",
                             CL_ITER_MIN, CL_ITER_MAX);
    r = req_new(n, W_ITER);
    if (r == NULL)
        return XE_NOMEM;
    r->iterations = (uint32_t)v;
    r->result = json_pack("{s:I}", "iterations", v);
    r->d = r->result != NULL ? ctl_socket_defer(node_ctl(n)) : NULL;
    if (r->d == NULL) {
        req_free(r);
        return XE_NOMEM;
    }
    cl_cmd_user_iter(&r->cmd, r->iterations);
    submit(r);
    return CTL_DEFERRED;
}

void cmds_user_status(struct node *n, json_t *status)
{
    json_object_set_new(
        status, "accounts",
        json_integer((json_int_t)cl_user_count(rnode_state(node_rnode(n)))));
}
