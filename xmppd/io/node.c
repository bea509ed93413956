/* node.c: one xmppd node: node-local state, the Raft driver, the control
 * socket, the xmppd.conf import, signals and the node's lifecycle (contract
 * in node.h).  The XMPP side (srv core, listeners, TLS) is node_xmpp.c. */
#include "node.h"
#include "node_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "repl.h"
#include "cluster.h"
#include "cmds.h"
#include "conffile_parse.h"
#include "conffile.h"
#include "conn.h"
#include "ctl_socket.h"
#include "dirlock.h"
#include "err.h"
#include "logsink.h"
#include "node_metrics.h"
#include "pki.h"
#include "rnode.h"
#include "service.h"
#include "srv.h"
#include "node_state.h"
#include "tls.h"

#define DEFAULT_PEER_ADDR "127.0.0.1:5224"
#define IMPORT_TIMEOUT_MS 10000

/* ---- rnode hooks: committed writes take effect ---- */

static void rn_applied(void *ud, const struct cl_effects *eff)
{
    struct node *n = ud;
    struct srv *srv = n->x != NULL ? n->x->srv : NULL;
    int rc = 0;

    switch (eff->kind) {
    case CL_EFF_DOMAIN:
        LOG(&n->log, LOG_INFO, "%s domain set to %s", n->name,
            cl_domain(rnode_state(n->rn)));
        node__restart_xmpp(n, "the domain changed");
        return;
    case CL_EFF_CB_ADDED:
    case CL_EFF_CB_SECRET:
        LOG(&n->log, LOG_INFO, "%s call bridge %s %s", n->name, eff->name,
            eff->kind == CL_EFF_CB_ADDED ? "added" : "secret changed");
        /* srv closes a session whose secret changed. */
        if (srv != NULL && eff->cb != NULL)
            rc = srv_set_callbridge(srv, eff->cb->name, eff->cb->secret,
                                    eff->cb->secret_len);
        break;
    case CL_EFF_CB_DELETED:
        LOG(&n->log, LOG_INFO, "%s call bridge %s removed", n->name, eff->name);
        if (srv != NULL) {
            rc = srv_del_callbridge(srv, eff->name);
            if (rc == XE_NOTFOUND)
                rc = 0;
        }
        break;
    case CL_EFF_USER_ADDED:
    case CL_EFF_USER_CHANGED:
        /* srv reads the accounts from the state at each login. */
        LOG(&n->log, LOG_INFO, "%s user %s %s", n->name, eff->name,
            eff->kind == CL_EFF_USER_ADDED ? "added" : "credentials changed");
        return;
    case CL_EFF_USER_DELETED:
        /* Every node closes the sessions it holds as it applies the entry:
         * the account's sessions end everywhere. */
        LOG(&n->log, LOG_INFO, "%s user %s removed", n->name, eff->name);
        if (srv != NULL)
            srv_user_deleted(srv, eff->name);
        break;
    case CL_EFF_ROSTER:
        /* Every node pushes the entry to the user's resources it holds
         * (RFC 6121 §2.1.6). */
        if (srv != NULL)
            srv_roster_changed(srv, eff->name, eff->roster_jid, uv_now(&n->loop));
        break;
    case CL_EFF_PRES_LAST:
        /* Every node keeps the user's last unavailable presence for the
         * probes it answers (RFC 6121 §4.3.2). */
        if (srv != NULL)
            srv_lastpres_applied(srv, eff->name, eff->pres_resource, eff->pres_status,
                                 eff->pres_wall_ms);
        break;
    case CL_EFF_LOGIN:
        /* Every node counts a failed login of any node in its throttle
         * (docs/clients.md "Throttling across the cluster"). */
        if (srv != NULL)
            srv_login_applied(srv, eff->origin, eff->login_what, eff->name,
                              eff->login_failed, uv_now(&n->loop));
        break;
    default:
        return;
    }
    if (rc < 0)
        LOG(&n->log, LOG_ERROR, "%s call bridge %s not applied to the XMPP core: %s",
            n->name, eff->name, xe_strerror(rc));
    node__after_srv(n);
}

static void rn_restored(void *ud)
{
    struct node *n = ud;

    /* The state srv borrowed is freed: point it at the new one before srv
     * is shut down (closing sessions may route to accounts). */
    if (n->x != NULL && n->x->srv != NULL)
        srv_set_accounts(n->x->srv, rnode_state(n->rn));
    node__restart_xmpp(n, "the replicated state was replaced by a snapshot");
}

static void rn_failed(void *ud, int rc, const char *msg)
{
    struct node *n = ud;

    char status[400];

    node_metrics_storage_error(n);
    LOG(&n->log, LOG_ERROR, "%s replicated store stopped: %s", n->name,
        msg != NULL ? msg : xe_strerror(rc));
    snprintf(status, sizeof status,
             "replicated store stopped: %.300s; restart xmppd once the cause is fixed "
             "(xmpp health)",
             msg != NULL ? msg : xe_strerror(rc));
    service_notify_status(status);
}

static int open_rnode(struct node *n, enum rnode_start start, uint64_t cluster_id,
                      char *err, size_t errlen)
{
    struct rnode_opts o;
    struct rnode_hooks h = {
        .ud = n, .applied = rn_applied, .restored = rn_restored, .failed = rn_failed};
    char peer[96];
    int rc;

    /* The peer link (io/cluster.c) carries Raft's messages and forwarded
     * writes; without clustering its hooks drop them. */
    cluster_rnode_hooks(&h);
    rnode_opts_default(&o);
    if (n->st.peer.port != 0)
        conf_format_listen(&n->st.peer, peer, sizeof peer);
    else
        snprintf(peer, sizeof peer, "%s", DEFAULT_PEER_ADDR);
    o.dir = n->raft_dir;
    o.name = n->name;
    o.node_id = n->st.node_id;
    o.peer_addr = peer;
    o.start = start;
    o.cluster_id = cluster_id;
    o.fast_lan = n->st.raft_fast_lan;
    rc = rnode_open(&n->loop, &o, &h, &n->log, &n->rn, err, errlen);
    /* A drained node stays off the ballot in every store it opens. */
    if (rc == 0 && n->draining)
        rnode_standby(n->rn, true);
    return rc;
}

/* ---- xmppd.conf import ---- */

struct import_req {
    struct node *n;
    char what[96];
};

static void import_done(void *arg, int rc, const char *msg)
{
    struct import_req *r = arg;
    struct node *n = r->n;

    n->import_pending--;
    if (rc < 0 && rc != XE_NOTFOUND && rc != XE_EXISTS) {
        if (n->import_rc == 0) {
            n->import_rc = rc;
            snprintf(n->import_err, sizeof n->import_err, "%s: %s: %s", n->conf_path,
                     r->what, msg != NULL ? msg : xe_strerror(rc));
        }
        LOG(&n->log, LOG_ERROR, "%s import: %s failed: %s", n->name, r->what,
            msg != NULL ? msg : xe_strerror(rc));
    }
    free(r);
    /* After a SIGHUP import: serve once the configuration is in place. */
    if (n->import_pending == 0 && !n->import_busy && !n->stopping && n->x == NULL &&
        n->st.xmpp_enabled && n->rn != NULL) {
        char why[512];
        if (node_xmpp_start(n, why, sizeof why) < 0) {
            snprintf(n->last_error, sizeof n->last_error, "%s", why);
            LOG(&n->log, LOG_ERROR, "%s XMPP not started: %s", n->name, why);
        }
    }
}

static void import_submit(struct node *n, const struct cl_cmd *c, const char *what)
{
    struct import_req *r = calloc(1, sizeof *r);
    unsigned char *buf;
    size_t len;
    int rc;

    if (r == NULL) {
        n->import_rc = XE_NOMEM;
        return;
    }
    r->n = n;
    snprintf(r->what, sizeof r->what, "%s", what);
    rc = cl_cmd_encode(c, &buf, &len);
    if (rc < 0) {
        n->import_pending++;
        import_done(r, rc, "cannot be encoded");
        return;
    }
    n->import_pending++;
    rnode_submit(n->rn, buf, len, IMPORT_TIMEOUT_MS, import_done, r);
    cl_buf_free(buf, len);
}

static bool same_listen(const struct node_state *st, const struct conf *c)
{
    if (st->n_listen != c->n_listen)
        return false;
    for (size_t i = 0; i < c->n_listen; i++) {
        if (st->listen[i].port != c->listen[i].port ||
            strcmp(st->listen[i].host, c->listen[i].host) != 0)
            return false;
    }
    return true;
}

/* import_local applies c's node-local directives (listeners, timers,
 * certificates) to node.state, marks XMPP enabled and saves.  *restart is
 * set when a running XMPP side must restart to follow. */
static int import_local(struct node *n, const struct conf *c, bool *restart, char *err,
                        size_t errlen)
{
    struct node_state fresh = n->st;

    if (c->n_listen > NODE_STATE_MAX_LISTEN) {
        snprintf(err, errlen, "%s: more than %d component-listen lines", n->conf_path,
                 NODE_STATE_MAX_LISTEN);
        return XE_LIMIT;
    }
    *restart = !same_listen(&n->st, c) || n->st.keepalive_s != c->keepalive_s ||
               n->st.auth_timeout_s != c->auth_timeout_s ||
               n->st.max_conns != c->max_conns ||
               n->st.max_conns_per_addr != c->max_conns_per_addr ||
               n->st.preauth_stanza_bytes != c->preauth_stanza_bytes;
    memcpy(fresh.listen, c->listen, c->n_listen * sizeof c->listen[0]);
    fresh.n_listen = c->n_listen;
    fresh.keepalive_s = c->keepalive_s;
    fresh.auth_timeout_s = c->auth_timeout_s;
    fresh.max_conns = c->max_conns;
    fresh.max_conns_per_addr = c->max_conns_per_addr;
    fresh.preauth_stanza_bytes = c->preauth_stanza_bytes;
    /* A certs line brings component-tls with it (core/conffile_parse.h, docs/tls.md);
     * without one, certificates set with `xmpp certs` stay. */
    if (c->key != NULL) {
        snprintf(fresh.key, sizeof fresh.key, "%s", c->key);
        snprintf(fresh.cert, sizeof fresh.cert, "%s", c->cert);
        snprintf(fresh.bundle, sizeof fresh.bundle, "%s", c->bundle ? c->bundle : "");
        fresh.tls = c->component_tls == CONF_TLS_REQUIRED ? NODE_STATE_TLS_REQUIRED
                    : c->component_tls == CONF_TLS_OFF    ? NODE_STATE_TLS_OFF
                                                          : NODE_STATE_TLS_OPTIONAL;
        *restart = *restart || fresh.tls != n->st.tls ||
                   strcmp(fresh.key, n->st.key) != 0 ||
                   strcmp(fresh.cert, n->st.cert) != 0 ||
                   strcmp(fresh.bundle, n->st.bundle) != 0;
    }
    fresh.xmpp_enabled = true;
    if (memcmp(&fresh, &n->st, sizeof fresh) == 0)
        return 0;
    n->st = fresh;
    return node_local_save(n, err, errlen);
}

/* replicated_empty: true while the replicated state holds nothing yet (no
 * domain, call bridge or account): the only time xmppd.conf may fill it. */
static bool replicated_empty(const struct cl_state *cs)
{
    return cl_domain(cs)[0] == '\0' && cl_callbridge_count(cs) == 0 &&
           cl_user_count(cs) == 0;
}

/* refusal_add appends "; what" (or "what" first) to buf, marking a cut with
 * "..." when buf is full. */
static void refusal_add(char *buf, size_t len, const char *what)
{
    size_t used = strlen(buf);

    if (used + 3 >= len)
        return;
    snprintf(buf + used, len - used, "%s%s", used > 0 ? "; " : "", what);
    if (strlen(buf) + 1 >= len)
        memcpy(buf + len - 4, "...", 4);
}

/* warn_refused logs, at warn and in one line, every replicated entry in
 * which c differs from the replicated state that the import leaves alone
 * (the state is not empty: the shell and the cluster own it).  Nothing when
 * the file agrees with the state.  Secrets are never logged. */
static void warn_refused(struct node *n, const struct conf *c)
{
    const struct cl_state *cs = rnode_state(n->rn);
    char list[768] = "", what[160];

    if (strcmp(cl_domain(cs), c->domain) != 0) {
        snprintf(what, sizeof what, "domain %s kept (the file says %s)", cl_domain(cs),
                 c->domain);
        refusal_add(list, sizeof list, what);
    }
    for (size_t i = 0; i < c->n_cb; i++) {
        const struct conf_callbridge *cb = &c->cb[i];
        const struct cl_callbridge *old = cl_callbridge_find(cs, cb->name);

        if (old == NULL)
            snprintf(what, sizeof what, "call bridge %s not added", cb->name);
        else if (old->secret_len != cb->secret_len ||
                 sodium_memcmp(old->secret, cb->secret, cb->secret_len) != 0)
            snprintf(what, sizeof what, "call bridge %s secret not changed", cb->name);
        else
            continue;
        refusal_add(list, sizeof list, what);
    }
    for (size_t i = 0; i < cl_callbridge_count(cs); i++) {
        const char *name = cl_callbridge_at(cs, i)->name;

        if (conf_find_callbridge(c, name) == NULL) {
            snprintf(what, sizeof what, "call bridge %s not removed", name);
            refusal_add(list, sizeof list, what);
        }
    }
    if (list[0] == '\0')
        return;
    LOG(&n->log, LOG_WARN,
        "%s %s: not imported, this node already has replicated state (the file only "
        "bootstraps an empty node; change the domain and call bridges with `xmpp domain` "
        "and `xmpp callbridge`): %s",
        n->name, n->conf_path, list);
}

/* import_replicated bootstraps the replicated state from c: the domain and
 * call bridges go through Raft, but only while that state is empty.  Once
 * it holds anything, it belongs to the shell and the cluster: the file never
 * deletes or replaces a replicated entry, and what it would change is
 * logged at warn (warn_refused). */
static int import_replicated(struct node *n, const struct conf *c, char *err,
                             size_t errlen)
{
    struct cl_cmd *cmd;
    char what[96];

    n->import_rc = 0;
    n->import_err[0] = '\0';
    if (!replicated_empty(rnode_state(n->rn))) {
        warn_refused(n, c);
        return 0;
    }
    cmd = malloc(sizeof *cmd);
    if (cmd == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    cl_cmd_set_domain(cmd, c->domain);
    import_submit(n, cmd, "domain");
    for (size_t i = 0; i < c->n_cb; i++) {
        const struct conf_callbridge *cb = &c->cb[i];

        cl_cmd_cb_set(cmd, cb->name, cb->secret, cb->secret_len, false);
        snprintf(what, sizeof what, "call bridge %s", cb->name);
        import_submit(n, cmd, what);
        sodium_memzero(cmd, sizeof *cmd);
    }
    free(cmd);
    return 0;
}

/* import_conf applies c: local directives to node.state, the domain and
 * call bridges through Raft (see import_local, import_replicated). */
static int import_conf(struct node *n, const struct conf *c, bool *restart, char *err,
                       size_t errlen)
{
    int rc = import_local(n, c, restart, err, errlen);

    return rc < 0 ? rc : import_replicated(n, c, err, errlen);
}

/* load_conf reads xmppd.conf if it exists: 1 with *c filled, 0 when there
 * is none, or an error with err. */
static int load_conf(struct node *n, struct conf *c, char *err, size_t errlen)
{
    int rc;

    if (access(n->conf_path, F_OK) != 0 && errno == ENOENT)
        return 0;
    rc = conffile_load(n->conf_path, c, err, errlen);
    return rc < 0 ? rc : 1;
}

/* ---- signals ---- */

static void close_own_handles(struct node *n)
{
    if (!n->handles_ready)
        return;
    n->handles_ready = false;
    uv_close((uv_handle_t *)&n->timer, NULL);
    uv_close((uv_handle_t *)&n->reaper, NULL);
    uv_close((uv_handle_t *)&n->later, NULL);
    uv_close((uv_handle_t *)&n->watchdog, NULL);
    uv_close((uv_handle_t *)&n->handover, NULL);
    uv_close((uv_handle_t *)&n->sig_term, NULL);
    uv_close((uv_handle_t *)&n->sig_int, NULL);
    uv_close((uv_handle_t *)&n->sig_hup, NULL);
}

static void on_reap(uv_timer_t *t)
{
    struct node *n = t->data;
    struct xside **pp = &n->retired;

    while (*pp != NULL) {
        struct xside *x = *pp;
        if (!x->drained) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        conn_mgr_free(x->cm);
        tls_ctx_free(x->tls);
        free(x);
    }
    if (n->stopping && n->retired == NULL && n->ctl_closed) {
        LOG(&n->log, LOG_INFO, "%s all connections closed", n->name);
        close_own_handles(n);
    }
}

void node__reap_soon(struct node *n)
{
    if (n->handles_ready)
        uv_timer_start(&n->reaper, on_reap, 0, 0);
}

static void on_ctl_closed(void *arg)
{
    struct node *n = arg;

    n->ctl_closed = true;
    node__reap_soon(n);
}

/* ---- work deferred to the next loop turn ---- */

struct node_later {
    node_later_fn fn;
    void *arg;
    struct node_later *next;
};

/* run_laters runs the work queued so far, in order; work that fn queues
 * runs on the next turn (node_later re-arms the timer), or at once when
 * cancelled (stopping). */
static void run_laters(struct node *n, bool cancelled)
{
    do {
        struct node_later *l = n->laters;
        n->laters = NULL;
        n->laters_tail = &n->laters;
        while (l != NULL) {
            struct node_later *next = l->next;
            l->fn(n, l->arg, cancelled || n->stopping);
            free(l);
            l = next;
        }
    } while (cancelled && n->laters != NULL);
}

static void on_later(uv_timer_t *t)
{
    run_laters(t->data, false);
}

void node_later(struct node *n, node_later_fn fn, void *arg)
{
    struct node_later *l;

    if (n->stopping || !n->handles_ready || (l = calloc(1, sizeof *l)) == NULL) {
        fn(n, arg, true);
        return;
    }
    l->fn = fn;
    l->arg = arg;
    *n->laters_tail = l;
    n->laters_tail = &l->next;
    uv_timer_start(&n->later, on_later, 0, 0);
}

/* begin_stop starts a clean shutdown: XMPP sessions, the control socket,
 * the Raft driver; the loop ends once everything has closed. */
static void begin_stop(struct node *n)
{
    n->stopping = true;
    /* Deferred store work is answered (cancelled) before the Raft driver
     * and the control socket close. */
    run_laters(n, true);
    node_metrics_stop(n);
    node_xmpp_stop(n);
    cluster_stop(n);
    if (n->ctl != NULL) {
        ctl_socket_close(n->ctl, on_ctl_closed, n);
        n->ctl = NULL;
    } else {
        n->ctl_closed = true;
    }
    if (n->rn != NULL) {
        rnode_close(n->rn);
        n->rn = NULL;
    }
    node__reap_soon(n);
    if (!n->handles_ready)
        return;
    uv_timer_stop(&n->timer);
    uv_timer_stop(&n->handover);
}

void node__stop(struct node *n)
{
    if (!n->stopping)
        begin_stop(n);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct node *n = s->data;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";

    if (n->stopping) {
        LOG(&n->log, LOG_INFO, "%s %s again: still closing connections", n->name, name);
        return;
    }
    if (n->stop_transfer) {
        LOG(&n->log, LOG_INFO, "%s %s again: stopping without waiting for the transfer",
            n->name, name);
        begin_stop(n);
        return;
    }
    LOG(&n->log, LOG_INFO, "%s %s: shutting down", n->name, name);
    service_notify_stopping();
    /* In a cluster: leadership and sessions go to other members first. */
    if (node__stop_drain(n))
        return;
    begin_stop(n);
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct node *n = s->data;
    struct conf c;
    char err[512];
    bool restart = false;
    int rc;

    if (n->stopping)
        return;
    LOG(&n->log, LOG_INFO, "%s SIGHUP: reloading %s", n->name, n->conf_path);
    rc = load_conf(n, &c, err, sizeof err);
    if (rc == 0) {
        LOG(&n->log, LOG_INFO, "%s reload: no %s; nothing to import", n->name,
            n->conf_path);
        return;
    }
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s reload failed, keeping the old configuration: %s",
            n->name, err);
        return;
    }
    n->import_busy = true;
    rc = import_conf(n, &c, &restart, err, sizeof err);
    n->import_busy = false;
    conf_free(&c);
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s reload failed: %s", n->name, err);
        return;
    }
    if (restart)
        node__restart_xmpp(n, "listeners, timers or certificates changed in xmppd.conf");
    /* Not serving yet: start once every submitted write is applied (now, or
     * from the last import_done). */
    if (n->x == NULL && n->st.xmpp_enabled && n->import_pending == 0 &&
        node_xmpp_start(n, err, sizeof err) < 0) {
        snprintf(n->last_error, sizeof n->last_error, "%s", err);
        LOG(&n->log, LOG_ERROR, "%s XMPP not started: %s", n->name, err);
    }
}

/* ---- accessors for the control handlers ---- */

struct node_state *node_local(struct node *n)
{
    return &n->st;
}

int node_local_save(struct node *n, char *err, size_t errlen)
{
    struct node_state disk;
    char lerr[256];
    int rc;

    rc = node_state_save(n->dir, &n->st, NULL, err, errlen);
    if (rc < 0 && node_state_load(n->dir, &disk, lerr, sizeof lerr) == 0)
        n->st = disk;
    return rc;
}

struct rnode *node_rnode(struct node *n)
{
    return n->rn;
}

struct ctl_socket *node_ctl(struct node *n)
{
    return n->ctl;
}

const char *node_pki_dir(const struct node *n)
{
    return n->pki_dir;
}

/* rm_tree removes dir and everything in it (the Raft store: plain files). */
static int rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    int rc = 0;

    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0 && errno == EISDIR)
            rc |= rm_tree(p);
    }
    closedir(d);
    return rmdir(dir) | rc;
}

int node_reset(struct node *n, char *why, size_t whylen)
{
    struct node_state fresh;
    char old[4096];
    int rc;

    node_xmpp_stop(n);
    cluster_stop(n);
    /* The new id is not a member of the old store's configuration: the
     * node starts again as a new one-member cluster (a clustered node that
     * was reset must be added again, DESIGN "Identity").  Order for crashes:
     * the store is renamed away first (atomic), then the new node.state is
     * saved; a restart in between bootstraps a new store, and a leftover
     * raft.old is removed at start. */
    rnode_close(n->rn);
    n->rn = NULL;
    snprintf(old, sizeof old, "%s.old", n->raft_dir);
    rm_tree(old);
    if (rename(n->raft_dir, old) != 0 && errno != ENOENT) {
        snprintf(why, whylen, "cannot move %s away: %s", n->raft_dir, strerror(errno));
        rc = XE_IO;
    } else {
        node_state_defaults(&fresh);
        n->st = fresh;
        n->draining = false;
        rc = node_local_save(n, why, whylen);
    }
    if (rc == 0) {
        rm_tree(old);
        rc = open_rnode(n, RNODE_BOOTSTRAP, 0, why, whylen);
    }
    if (rc < 0 && n->rn == NULL &&
        open_rnode(n, RNODE_BOOTSTRAP, 0, old, sizeof old) < 0) {
        /* Without a replicated store the node cannot answer: stop. */
        LOG(&n->log, LOG_ERROR,
            "%s reset: %s; cannot reopen the replicated store, "
            "stopping",
            n->name, why);
        begin_stop(n);
        return rc;
    }
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s reset: %s", n->name, why);
        return rc;
    }
    LOG(&n->log, LOG_INFO, "%s reset: new node id %016" PRIx64 ", XMPP disabled", n->name,
        n->st.node_id);
    node_metrics_apply(n, why, whylen); /* the default: off */
    return 0;
}

int node__replace_store(struct node *n, int start, uint64_t cluster_id, char *why,
                        size_t whylen)
{
    char old[4096];
    int rc;

    /* srv borrows the state rnode_close frees: no accounts until the XMPP
     * side restarts below with the new store's. */
    if (n->x != NULL && n->x->srv != NULL)
        srv_set_accounts(n->x->srv, NULL);
    rnode_close(n->rn);
    n->rn = NULL;
    snprintf(old, sizeof old, "%s.old", n->raft_dir);
    rm_tree(old);
    if (rename(n->raft_dir, old) != 0 && errno != ENOENT) {
        snprintf(why, whylen, "cannot move %s away: %s", n->raft_dir, strerror(errno));
        rc = XE_IO;
    } else {
        rm_tree(old);
        rc = open_rnode(n, (enum rnode_start)start, cluster_id, why, whylen);
    }
    if (rc < 0 && open_rnode(n, RNODE_BOOTSTRAP, 0, old, sizeof old) < 0) {
        LOG(&n->log, LOG_ERROR, "%s cannot open a replicated store (%s), stopping",
            n->name, why);
        begin_stop(n);
        return rc;
    }
    if (rc == 0)
        LOG(&n->log, LOG_INFO, "%s replicated store replaced (%s)", n->name,
            start == RNODE_JOIN ? "joining" : "new one-member cluster");
    cluster_store_replaced(n);
    node__restart_xmpp(n, "the replicated store was replaced");
    return rc;
}

/* ---- lifecycle ---- */

/* on_watchdog tells systemd the daemon is alive (WatchdogSec=, docs/admin.md
 * "The service").  Alive means the event loop turns: this timer runs on
 * it, so a loop stuck in a call, a deadlock or a stopped process sends
 * nothing and systemd restarts xmppd.  It does not mean healthy in the
 * sense of xmpp health: a replicated store stopped after a storage failure
 * keeps the pings going (STATUS= and xmpp health say what to do), because
 * a restart does not make room on a full disk, and a watchdog that killed
 * the node each interval would drop every session of it each time. */
static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    service_notify_watchdog();
}

static int start_handles(struct node *n)
{
    uint64_t wd_ms;
    int rc;

    uv_timer_init(&n->loop, &n->timer);
    uv_timer_init(&n->loop, &n->reaper);
    uv_timer_init(&n->loop, &n->later);
    uv_timer_init(&n->loop, &n->watchdog);
    uv_timer_init(&n->loop, &n->handover);
    n->handover.data = n;
    wd_ms = service_watchdog_ms();
    if (wd_ms > 0) {
        uv_timer_start(&n->watchdog, on_watchdog, wd_ms, wd_ms);
        /* Not a reason to keep the loop alive at the stop. */
        uv_unref((uv_handle_t *)&n->watchdog);
    }
    uv_signal_init(&n->loop, &n->sig_term);
    uv_signal_init(&n->loop, &n->sig_int);
    uv_signal_init(&n->loop, &n->sig_hup);
    n->timer.data = n->reaper.data = n->later.data = n;
    n->laters_tail = &n->laters;
    n->sig_term.data = n->sig_int.data = n->sig_hup.data = n;
    n->handles_ready = true;
    rc = uv_signal_start(&n->sig_term, on_stop_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&n->sig_int, on_stop_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&n->sig_hup, on_hup, SIGHUP);
    return rc;
}

static char *join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);

    if (p != NULL)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return XE_IO;
    }
    return 0;
}

/* load_state reads node.state, or makes it at first start.  A missing file
 * beside a Raft store is not a first start: refuse rather than guess. */
static int load_state(struct node *n, char *err, size_t errlen)
{
    struct stat sb;
    char id[17];
    int rc;

    rc = node_state_load(n->dir, &n->st, err, errlen);
    if (rc != XE_NOTFOUND)
        return rc;
    if (stat(n->raft_dir, &sb) == 0) {
        snprintf(err, errlen,
                 "%s/%s is missing but %s holds this node's replicated state: restore "
                 "%s from a backup, or remove %s to start this node afresh",
                 n->dir, NODE_STATE_FILE, n->raft_dir, NODE_STATE_FILE, n->raft_dir);
        return XE_CORRUPT;
    }
    node_state_defaults(&n->st);
    rc = node_state_save(n->dir, &n->st, NULL, err, errlen);
    if (rc < 0)
        return rc;
    node_state_node_id_hex(n->st.node_id, id);
    LOG(&n->log, LOG_INFO, "%s new node: id %s, state in %s", n->name, id, n->dir);
    return 0;
}

/* run_import imports xmppd.conf at start and waits until every write it
 * submitted is applied. */
static int run_import(struct node *n, char *err, size_t errlen)
{
    struct conf c;
    bool restart;
    int rc;

    rc = load_conf(n, &c, err, errlen);
    if (rc <= 0)
        return rc;
    n->import_busy = true;
    rc = import_conf(n, &c, &restart, err, errlen);
    conf_free(&c);
    while (rc == 0 && n->import_pending > 0)
        uv_run(&n->loop, UV_RUN_ONCE);
    n->import_busy = false;
    if (rc < 0)
        return rc;
    if (n->import_rc < 0) {
        snprintf(err, errlen, "%s", n->import_err);
        return n->import_rc;
    }
    return 1;
}

/* open_files sets the paths under the state dir, creates it and pki/, and
 * loads (or makes) node.state. */
static int open_files(struct node *n, const char *dir, char *err, size_t errlen)
{
    int rc;

    n->dir = strdup(dir);
    n->conf_path = join(dir, CONFFILE_NAME);
    n->pki_dir = join(dir, "pki");
    n->raft_dir = join(dir, "raft");
    n->sock_path = join(dir, "control.sock");
    if (n->dir == NULL || n->conf_path == NULL || n->pki_dir == NULL ||
        n->raft_dir == NULL || n->sock_path == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    rc = make_dir(n->dir, err, errlen);
    /* Before anything reads the directory: one daemon per state. */
    if (rc == 0)
        rc = dirlock_take(n->dir, &n->lock_fd, err, errlen);
    if (rc == 0)
        rc = make_dir(n->pki_dir, err, errlen);
    if (rc == 0)
        rc = load_state(n, err, errlen);
    if (rc == 0)
        n->draining = n->st.draining;
    if (rc == 0) {
        /* What an interrupted xmpp reset left behind. */
        char old[4096];
        snprintf(old, sizeof old, "%s.old", n->raft_dir);
        rm_tree(old);
    }
    return rc;
}

static int open_loop(struct node *n, char *err, size_t errlen)
{
    int rc = uv_loop_init(&n->loop);

    if (rc < 0) {
        snprintf(err, errlen, "cannot create the event loop: %s", uv_strerror(rc));
        return XE_IO;
    }
    n->loop_ready = true;
    n->started_ms = uv_now(&n->loop);
    rc = start_handles(n);
    if (rc < 0) {
        snprintf(err, errlen, "cannot install signal handlers: %s", uv_strerror(rc));
        return XE_IO;
    }
    /* A peer that goes away mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* open_services opens the Raft store, imports xmppd.conf, starts the
 * control socket and, when enabled, XMPP. */
static int open_services(struct node *n, char *err, size_t errlen)
{
    struct ctl_socket_config ccfg = {.path = n->sock_path,
                                     .table = cmds_table,
                                     .ncommands = cmds_count,
                                     .ud = n,
                                     .log = &n->log};
    char why[512];
    int rc, imported;

    rc = open_rnode(n, RNODE_BOOTSTRAP, 0, err, errlen);
    if (rc < 0)
        return rc;
    imported = run_import(n, err, errlen);
    if (imported < 0)
        return imported;
    rc = ctl_socket_start(&n->loop, &ccfg, &n->ctl, err, errlen);
    if (rc < 0)
        return rc;
    /* A metrics address that cannot be used is logged; the node serves on. */
    if (node_metrics_apply(n, why, sizeof why) < 0)
        LOG(&n->log, LOG_ERROR, "%s metrics endpoint not started: %s", n->name, why);
    /* The peer link: a node that cannot open it keeps running alone (its
     * admin sees why in the log and in xmpp cluster status). */
    if (n->st.cluster_enabled && cluster_start(n, why, sizeof why) < 0) {
        snprintf(n->last_error, sizeof n->last_error, "cluster: %.400s", why);
        LOG(&n->log, LOG_ERROR, "%s cluster peer link not started: %s", n->name, why);
    }
    if (!n->st.xmpp_enabled)
        return 0;
    rc = node_xmpp_start(n, why, sizeof why);
    /* With xmppd.conf the old behaviour holds: a node that cannot serve what
     * its file says does not start.  Enabled through the shell, the node
     * keeps its management plane up so the admin can fix it. */
    if (rc < 0 && imported) {
        snprintf(err, errlen, "%s", why);
        return rc;
    }
    if (rc == XE_BUSY) /* a cluster member waiting for the replicated domain */
        LOG(&n->log, LOG_INFO, "%s XMPP: %s", n->name, why);
    else if (rc < 0) {
        snprintf(n->last_error, sizeof n->last_error, "%s", why);
        LOG(&n->log, LOG_ERROR, "%s XMPP is enabled but cannot start: %s", n->name, why);
    }
    return 0;
}

int node_start(const struct node_opts *opts, struct node **out, char *err, size_t errlen)
{
    const struct cl_state *cs;
    struct node *n;
    int rc;

    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return XE_IO;
    }
    n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    n->lock_fd = -1;
    logsink_stderr(&n->log, opts->level, (enum logsink_mode)opts->log_mode);
    snprintf(n->name, sizeof n->name, "%s", opts->name);
    rc = open_files(n, opts->state_dir, err, errlen);
    if (rc == 0)
        rc = open_loop(n, err, errlen);
    if (rc == 0)
        rc = open_services(n, err, errlen);
    if (rc < 0) {
        node_free(n);
        return rc;
    }
    cs = rnode_state(n->rn);
    LOG(&n->log, LOG_INFO,
        "%s started: XMPP %s, domain %s, %zu call bridge(s), control %s", n->name,
        n->x != NULL ? "enabled" : "disabled",
        cl_domain(cs)[0] != '\0' ? cl_domain(cs) : "(none)", cl_callbridge_count(cs),
        n->sock_path);
    *out = n;
    return 0;
}

int node_run(struct node *n)
{
    uv_run(&n->loop, UV_RUN_DEFAULT);
    LOG(&n->log, LOG_INFO, "%s stopped", n->name);
    return 0;
}

void node_free(struct node *n)
{
    if (n == NULL)
        return;
    if (n->loop_ready) {
        if (!n->stopping)
            begin_stop(n);
        if (n->handles_ready && n->retired == NULL && n->ctl_closed)
            close_own_handles(n);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        uv_loop_close(&n->loop);
    }
    free(n->dir);
    free(n->conf_path);
    free(n->pki_dir);
    free(n->raft_dir);
    free(n->sock_path);
    /* Last: the directory is free once nothing of this node touches it. */
    dirlock_release(n->lock_fd);
    sodium_memzero(&n->st, sizeof n->st);
    free(n);
}
