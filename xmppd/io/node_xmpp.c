/* node_xmpp.c: the XMPP side of a node: the srv core, the connection
 * manager and the TLS context of one generation, started by xmpp enable and
 * stopped by xmpp disable (contract in node.h; structure in node_int.h).
 *
 * Each start makes a new generation (struct xside); a stop shuts its
 * sessions and listeners down and moves it to the retired list, where it
 * waits until its connections have drained and is freed by the node's
 * reaper on a later loop turn (nothing is freed inside its own callback).
 * Connection ids are unique per manager only, so every hook is bound to its
 * generation. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "repl.h"
#include "cluster.h"
#include "conffile_parse.h"
#include "conn.h"
#include "err.h"
#include "node_int.h"
#include "pki.h"
#include "rnode.h"
#include "srv.h"
#include "node_state.h"
#include "tls.h"

/* Descriptors kept out of max-connections for everything else. */
#define NODE_FD_RESERVE 128

/* ---- srv_env: what srv asks of the edge ---- */

static int env_send(void *ud, uint64_t conn, const char *data, size_t len)
{
    struct xside *x = ud;

    return conn_send(x->cm, conn, data, len);
}

static void env_close(void *ud, uint64_t conn)
{
    struct xside *x = ud;

    conn_close(x->cm, conn);
}

/* env_random serves small draws from a pool that one randombytes_buf
 * call (one getrandom system call) fills, instead of one call per draw:
 * a login draws six times (stream ids, the streams' expat salts, the
 * SCRAM nonce, the resource).  Bytes are wiped from the pool as they are
 * handed out, so the pool never holds a value already used; draws larger
 * than the pool go straight to libsodium.  One loop thread calls it. */
#define RND_POOL 512
static unsigned char rnd_pool[RND_POOL];
static size_t rnd_left; /* unused bytes at the end of rnd_pool */

static void env_random(void *ud, void *buf, size_t len)
{
    unsigned char *out = buf;

    if (len > RND_POOL / 4) {
        randombytes_buf(buf, len);
        return;
    }
    if (rnd_left < len) {
        randombytes_buf(rnd_pool, RND_POOL);
        rnd_left = RND_POOL;
    }
    memcpy(out, rnd_pool + RND_POOL - rnd_left, len);
    sodium_memzero(rnd_pool + RND_POOL - rnd_left, len);
    rnd_left -= len;
}

/* env_wall_ms: the wall clock, ms since the epoch (XEP-0203 stamps). */
static uint64_t env_wall_ms(void *ud)
{
    struct timespec ts;

    (void)ud;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* env_starttls: srv queued <proceed/> on a client connection (RFC 6120
 * §5.4.3.3); the handshake runs on the node's server context, the same
 * certificate and chain as for components.  XE_STATE without one. */
static int env_starttls(void *ud, uint64_t conn)
{
    struct xside *x = ud;

    if (x->tls == NULL)
        return XE_STATE;
    return conn_starttls(x->cm, conn, x->tls);
}

/* env_pause_read: the byte-rate shaper stops or restarts reading a
 * client connection (srv resumes it at its own deadline). */
static void env_pause_read(void *ud, uint64_t conn, bool paused)
{
    struct xside *x = ud;

    conn_pause_read(x->cm, conn, paused);
}

/* ---- roster writes srv lists (srv_update.submits), to the Raft log ---- */

#define ROSTER_SUBMIT_TIMEOUT_MS 10000

/* A write srv listed: srv_submit_done goes to the srv that made it, and
 * only if it still runs (a restart makes a new one). */
struct xsubmit {
    struct node *n;
    struct srv *srv;
    uint64_t token;
};

/* submit_done: the write is applied or failed, now (refused at once,
 * inside rnode_submit) or later: either way outside srv, which may be
 * called. */
static void submit_done(void *arg, int rc, const char *msg)
{
    struct xsubmit *w = arg;
    struct node *n = w->n;

    (void)msg;
    if (n->x != NULL && n->x->srv == w->srv) {
        srv_submit_done(w->srv, w->token, rc, uv_now(&n->loop));
        node__after_srv(n);
    }
    free(w);
}

/* submit hands one listed roster write to rnode_submit (on a follower,
 * forwarded to the leader). */
static void submit(struct node *n, const struct srv_submit *s)
{
    struct xsubmit *w = calloc(1, sizeof *w);

    if (w == NULL) {
        srv_submit_done(n->x->srv, s->token, XE_NOMEM, uv_now(&n->loop));
        return;
    }
    w->n = n;
    w->srv = n->x->srv;
    w->token = s->token;
    rnode_submit(n->rn, s->cmd, s->len, ROSTER_SUBMIT_TIMEOUT_MS, submit_done, w);
}

/* carry_out takes what srv listed and carries it out, until srv lists
 * nothing more.  A call made meanwhile (a write refused at once) lists
 * into the next take, which this loop makes. */
static void carry_out(struct node *n)
{
    struct xside *x = n->x;
    struct srv_update u;

    if (x->carrying)
        return;
    x->carrying = true;
    do {
        srv_take(x->srv, &u);
        for (size_t i = 0; i < u.nsubmits && n->x == x; i++)
            submit(n, &u.submits[i]);
    } while (u.nsubmits > 0 && n->x == x);
    x->carrying = false;
}

/* ---- after every srv call ---- */

static void on_timer(uv_timer_t *t)
{
    struct node *n = t->data;

    if (n->stopping || n->x == NULL)
        return;
    srv_tick(n->x->srv, uv_now(&n->loop));
    node__after_srv(n);
}

/* after_srv carries out srv's update, writes what srv queued and re-arms
 * the timer to srv's next deadline.  Called after every srv_* call made
 * from a libuv callback. */
void node__after_srv(struct node *n)
{
    uint64_t due, now;

    if (n->x == NULL) {
        uv_timer_stop(&n->timer);
        return;
    }
    carry_out(n);
    if (n->x == NULL) {
        uv_timer_stop(&n->timer);
        return;
    }
    conn_mgr_flush(n->x->cm);
    due = srv_next_deadline(n->x->srv);
    if (due == SRV_NO_DEADLINE) {
        uv_timer_stop(&n->timer);
        return;
    }
    now = uv_now(&n->loop);
    /* Never 0: a deadline that a tick did not move (a bug in a core) must
     * not spin the loop at 100 % CPU; 1 ms keeps it
     * working and visible. */
    uv_timer_start(&n->timer, on_timer, due > now ? due - now : 1, 0);
}

/* ---- conn_hooks, bound to one generation ---- */

static int hook_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct xside *x = ud;
    struct node *n = x->n;
    int rc;

    if (x != n->x || n->stopping)
        return XE_STATE;
    rc = srv_conn_open(x->srv, id, (enum srv_listener)tag, peer, uv_now(&n->loop));
    node__after_srv(n);
    return rc;
}

static void hook_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct xside *x = ud;

    if (x != x->n->x)
        return;
    srv_conn_input(x->srv, id, bytes, len, uv_now(&x->n->loop));
    node__after_srv(x->n);
}

static void hook_gone(void *ud, uint64_t id, int err)
{
    struct xside *x = ud;

    if (x != x->n->x)
        return;
    srv_conn_closed(x->srv, id, uv_now(&x->n->loop));
    node__after_srv(x->n);
}

/* hook_secured: TLS is up on id.  A client session hears of it with its
 * channel-binding data (SCRAM-*-PLUS); components need nothing. */
static void hook_secured(void *ud, uint64_t id)
{
    struct xside *x = ud;
    struct srv_tls_info info;

    if (x != x->n->x || (conn_tag(x->cm, id) != SRV_LISTENER_CLIENT &&
                         conn_tag(x->cm, id) != SRV_LISTENER_WEBSOCKET_TLS))
        return;
    if (conn_tls_binding(x->cm, id, &info) < 0)
        memset(&info, 0, sizeof info); /* no binding data: -PLUS not offered */
    srv_conn_secured(x->srv, id, &info, uv_now(&x->n->loop));
    sodium_memzero(&info, sizeof info);
    node__after_srv(x->n);
}

/* hook_room: max-connections is reached with a new connection waiting;
 * srv closes its oldest session that has not logged in to make room. */
static bool hook_room(void *ud)
{
    struct xside *x = ud;
    bool made;

    if (x != x->n->x || x->srv == NULL)
        return false;
    made = srv_make_room(x->srv, uv_now(&x->n->loop));
    node__after_srv(x->n);
    return made;
}

static void hook_drained(void *ud)
{
    struct xside *x = ud;

    x->drained = true;
    node__reap_soon(x->n);
}

/* ---- the XMPP side ---- */

static void retire(struct node *n, struct xside *x)
{
    if (x->srv != NULL) {
        srv_free(x->srv);
        x->srv = NULL;
    }
    x->next = n->retired;
    n->retired = x;
    if (x->cm != NULL)
        conn_mgr_shutdown(x->cm); /* hook_drained follows */
    else
        x->drained = true;
    node__reap_soon(n);
}

void node_xmpp_stop(struct node *n)
{
    struct xside *x = n->x;

    if (x == NULL)
        return;
    /* RFC 6120 §4.4: every stream gets </stream:stream> before its socket
     * closes; srv writes it, the connection manager flushes it. */
    srv_shutdown(x->srv);
    conn_mgr_flush(x->cm);
    n->x = NULL;
    uv_timer_stop(&n->timer);
    retire(n, x);
    LOG(&n->log, LOG_INFO, "%s XMPP stopped", n->name);
}

bool node_xmpp_running(const struct node *n)
{
    return n->x != NULL;
}

bool node_addr_local(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, rc, e;

    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        sl = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        sl = sizeof(struct sockaddr_in6);
    } else {
        return false;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    /* Port 0: nothing is taken; only "is this address here" is asked. */
    rc = bind(fd, (struct sockaddr *)&ss, sl);
    e = errno;
    close(fd);
    return rc == 0 || e != EADDRNOTAVAIL;
}

int node_file_path(const struct node *n, const char *name, char *out, size_t len)
{
    int w;

    if (name[0] == '/') {
        w = snprintf(out, len, "%s", name);
        return w < 0 || (size_t)w >= len ? XE_INVAL : 0;
    }
    return pki_path(n->pki_dir, name, out, len);
}

/* effective_listen: the configured listeners, or 0.0.0.0:5223. */
static size_t effective_listen(const struct node *n, const struct conf_listen **out)
{
    static const struct conf_listen def = {.host = CONF_DEFAULT_LISTEN_HOST,
                                           .port = CONF_DEFAULT_PORT};

    if (n->st.n_listen == 0) {
        *out = &def;
        return 1;
    }
    *out = n->st.listen;
    return n->st.n_listen;
}

/* cert_paths resolves key, cert and bundle; false when a name is bad. */
static bool cert_paths(const struct node *n, char *kp, char *cp, char *bp, size_t len)
{
    bp[0] = '\0';
    return node_file_path(n, n->st.key, kp, len) == 0 &&
           node_file_path(n, n->st.cert, cp, len) == 0 &&
           (n->st.bundle[0] == '\0' || node_file_path(n, n->st.bundle, bp, len) == 0);
}

int node_xmpp_check(struct node *n, char *why, size_t whylen)
{
    const struct conf_listen *l;
    size_t nl = effective_listen(n, &l);
    char kp[1024], cp[1024], bp[1024], addr[96], pwhy[400];
    int rc;

    if (cl_domain(rnode_state(n->rn))[0] == '\0') {
        /* A member of a multi-node cluster gets the domain from the
         * replicated state: at restart it has not caught up yet, and
         * rn_applied starts XMPP once the domain arrives. */
        if (n->st.cluster_enabled && rnode_config(n->rn)->n > 1) {
            snprintf(why, whylen,
                     "waiting for the replicated configuration (domain) from the "
                     "cluster");
            return XE_BUSY;
        }
        snprintf(why, whylen,
                 "no XMPP domain is set; set one with: xmpp domain <domain>");
        return XE_STATE;
    }
    if (n->st.cert[0] == '\0' && n->st.tls == NODE_STATE_TLS_REQUIRED) {
        snprintf(why, whylen,
                 "TLS is required but no certificate is set; set one with: xmpp certs "
                 "<key> <cert> [<bundle>]");
        return XE_STATE;
    }
    if (n->st.cert[0] != '\0') {
        if (!cert_paths(n, kp, cp, bp, sizeof kp)) {
            snprintf(why, whylen,
                     "bad certificate file names; set them again with: "
                     "xmpp certs <key> <cert> [<bundle>]");
            return XE_STATE;
        }
        rc = pki_check_certs(kp, cp, bp[0] != '\0' ? bp : NULL, 0, pwhy, sizeof pwhy);
        if (rc < 0) {
            /* Say what to do next, unless pwhy already does.  A key file
             * others can read (XE_PERM) is fixed by its mode alone: the
             * files are set and are read again on the next try. */
            const char *hint = " (then xmpp certs <key> <cert> [<bundle>])";
            if (rc == XE_PERM)
                hint = " (the files need not be set again: fix the mode, then try again)";
            else if (strstr(pwhy, "xmpp certs") != NULL)
                hint = "";
            snprintf(why, whylen, "%s%s", pwhy, hint);
            return rc;
        }
    }
    for (size_t i = 0; i < nl; i++) {
        if (!node_addr_local(l[i].host)) {
            conf_format_listen(&l[i], addr, sizeof addr);
            snprintf(why, whylen,
                     "listen address %s is not an address of this host; change it with: "
                     "xmpp listen <addr|iface>...",
                     addr);
            return XE_STATE;
        }
    }
    return 0;
}

static int sync_callbridges(struct node *n, struct srv *srv, char *why, size_t whylen)
{
    const struct cl_state *cs = rnode_state(n->rn);

    for (size_t i = 0; i < cl_callbridge_count(cs); i++) {
        const struct cl_callbridge *cb = cl_callbridge_at(cs, i);
        int rc = srv_set_callbridge(srv, cb->name, cb->secret, cb->secret_len);
        if (rc < 0) {
            snprintf(why, whylen, "call bridge %s: %s", cb->name, xe_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static enum tls_mode tls_mode_of(enum node_state_tls t)
{
    switch (t) {
    case NODE_STATE_TLS_OFF:
        return TLS_MODE_OFF;
    case NODE_STATE_TLS_REQUIRED:
        return TLS_MODE_REQUIRED;
    case NODE_STATE_TLS_OPTIONAL:
        break;
    }
    return TLS_MODE_OPTIONAL;
}

/* client_limits fills the client limits of cfg from node state
 * (docs/admin.md "Clients"): sessions per account; the rate r with
 * bursts of 4 s of it, and before login r/8 (at least 1 KiB/s, at most r)
 * with bursts of 16 KiB (at most the burst): a login takes a few KiB;
 * the software version when on. */
static void client_limits(const struct node *n, struct srv_config *cfg)
{
    uint64_t r = n->st.client_rate;

    cfg->c2s_max_sessions = n->st.client_max_sessions;
    cfg->c2s_rate = r;
    cfg->c2s_burst = 4 * r;
    cfg->c2s_preauth_rate = r / 8 < 1024 ? (r < 1024 ? r : 1024) : r / 8;
    cfg->c2s_preauth_burst = cfg->c2s_burst < 16384 ? cfg->c2s_burst : 16384;
    cfg->version = n->st.client_version ? XMPPD_VERSION : NULL;
}

int node_xmpp_client_limits(struct node *n)
{
    struct srv_config cfg;

    if (n->x == NULL)
        return 0;
    srv_config_default(&cfg);
    client_limits(n, &cfg);
    return srv_set_client_limits(n->x->srv, &cfg);
}

/* new_core makes x's srv with the replicated domain and call bridges. */
static int new_core(struct node *n, struct xside *x, char *why, size_t whylen)
{
    struct srv_config cfg;
    struct srv_env env = {.ud = x,
                          .send = env_send,
                          .close = env_close,
                          .random = env_random,
                          .wall_ms = env_wall_ms,
                          .log = &n->log,
                          .starttls = env_starttls,
                          .pause_read = env_pause_read};
    int rc;

    srv_config_default(&cfg);
    cfg.domain = cl_domain(rnode_state(n->rn));
    cfg.node_name = n->name;
    cfg.keepalive_ms = (uint64_t)n->st.keepalive_s * 1000;
    cfg.auth_timeout_ms = (uint64_t)n->st.auth_timeout_s * 1000;
    cfg.preauth_stanza_bytes = n->st.preauth_stanza_bytes;
    cfg.c2s_tls_required = n->st.client_tls != NODE_STATE_TLS_OPTIONAL;
    cfg.sasl_plain = n->st.sasl_plain;
    cfg.roster_writes = true; /* carry_out gives them to rnode_submit */
    client_limits(n, &cfg);
    rc = srv_new(&cfg, &env, &x->srv);
    if (rc < 0) {
        snprintf(why, whylen, "cannot start the XMPP core: %s", xe_strerror(rc));
        return rc;
    }
    /* Client accounts: read from the replicated state, borrowed until the
     * state is replaced (rn_restored, node__replace_store restart srv). */
    srv_set_accounts(x->srv, rnode_state(n->rn));
    return sync_callbridges(n, x->srv, why, whylen);
}

/* new_tls makes x's server TLS context when certificates are set and
 * something uses it: the component listeners (TLS not off) or STARTTLS on
 * the client listener. */
static int new_tls(struct node *n, struct xside *x, char *why, size_t whylen)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER};
    char kp[1024], cp[1024], bp[1024];

    if (n->st.cert[0] == '\0' ||
        (n->st.tls == NODE_STATE_TLS_OFF && n->st.client_port == 0 &&
         n->st.client_tls_port == 0 && n->st.wss_port == 0))
        return 0;
    if (!cert_paths(n, kp, cp, bp, sizeof kp)) {
        snprintf(why, whylen, "bad certificate file names");
        return XE_INVAL;
    }
    o.key_path = kp;
    o.cert_path = cp;
    o.bundle_path = bp[0] != '\0' ? bp : NULL;
    return tls_ctx_new(&o, &x->tls, why, whylen);
}

/* max_conns is the configured limit on XMPP connections, held below the
 * descriptors the process may open (RLIMIT_NOFILE) less a reserve for the
 * peer links, the control socket and files: a flood of connections must
 * find the limit before it finds EMFILE. */
static unsigned max_conns(const struct node *n)
{
    struct rlimit rl;
    unsigned max = n->st.max_conns;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)max + NODE_FD_RESERVE)
        max = rl.rlim_cur > 2 * NODE_FD_RESERVE
                  ? (unsigned)(rl.rlim_cur - NODE_FD_RESERVE)
                  : (unsigned)(rl.rlim_cur / 2);
    if (max < n->st.max_conns)
        LOG(&n->log, LOG_INFO,
            "%s max-connections %u held to %u by the descriptor limit (ulimit -n %llu)",
            n->name, n->st.max_conns, max, (unsigned long long)rl.rlim_cur);
    return max;
}

/* client_listeners opens the client listener (RFC 6120 c2s, plaintext
 * with STARTTLS) on the port of client-port at every listen address, and
 * with client-tls-port a direct-TLS one (XEP-0368: TLS from the first
 * byte; srv hears srv_conn_secured before any data).  The same TLS
 * context as everything else.
 * Unlike the component listeners, a failure does not stop XMPP: call
 * bridges keep being served, and the reason is logged and kept in
 * x->client_error for xmpp status.  Without a certificate while TLS is
 * required for clients nobody could log in, so nothing listens. */
static void client_listeners(struct node *n, struct xside *x, const struct conf_listen *l,
                             size_t nl)
{
    /* STARTTLS needs the TLS context unless TLS is optional for clients;
     * direct TLS always does. */
    bool plain = n->st.client_port != 0 &&
                 (x->tls != NULL || n->st.client_tls == NODE_STATE_TLS_OPTIONAL);
    bool direct = n->st.client_tls_port != 0 && x->tls != NULL;
    char why[256];

    x->client_error[0] = '\0';
    if ((n->st.client_port != 0 && !plain) || (n->st.client_tls_port != 0 && !direct))
        snprintf(x->client_error, sizeof x->client_error,
                 "%s needs a certificate and none is set (xmpp certs <key> <cert> "
                 "[<bundle>])",
                 n->st.client_port != 0 && !plain ? "TLS required for clients"
                                                  : "the direct-TLS client port");
    for (size_t i = 0; i < nl; i++) {
        int rc = 0;
        if (plain)
            rc = conn_listen(x->cm, l[i].host, (int)n->st.client_port,
                             SRV_LISTENER_CLIENT, why, sizeof why);
        if (rc == 0 && direct)
            rc = conn_listen_tls(x->cm, l[i].host, (int)n->st.client_tls_port,
                                 SRV_LISTENER_CLIENT, x->tls, TLS_MODE_REQUIRED, why,
                                 sizeof why);
        if (rc < 0) {
            snprintf(x->client_error, sizeof x->client_error, "%s", why);
            break;
        }
        x->client_listening += plain || direct;
    }
    if (x->client_error[0] != '\0')
        LOG(&n->log, LOG_ERROR, "%s client listener: %s", n->name, x->client_error);
}

/* new_listeners makes x's connection manager and its listeners. */
static int new_listeners(struct node *n, struct xside *x, char *why, size_t whylen)
{
    const struct conf_listen *l;
    size_t nl = effective_listen(n, &l);
    struct conn_hooks hooks = {.ud = x,
                               .opened = hook_opened,
                               .data = hook_data,
                               .gone = hook_gone,
                               .secured = hook_secured,
                               .drained = hook_drained,
                               .room = hook_room};
    int rc;

    rc = conn_mgr_new(&n->loop, &hooks, &n->log, n->name, 0, &x->cm);
    if (rc < 0) {
        snprintf(why, whylen, "out of memory");
        return rc;
    }
    conn_mgr_set_limits(x->cm,
                        &(struct conn_limits){max_conns(n), n->st.max_conns_per_addr});
    for (size_t i = 0; i < nl && rc == 0; i++) {
        if (x->tls != NULL)
            rc = conn_listen_tls(x->cm, l[i].host, l[i].port, SRV_LISTENER_COMPONENT,
                                 x->tls, tls_mode_of(n->st.tls), why, whylen);
        else
            rc = conn_listen(x->cm, l[i].host, l[i].port, SRV_LISTENER_COMPONENT, why,
                             whylen);
    }
    if (rc == 0)
        client_listeners(n, x, l, nl);
    if (rc == 0)
        node__ws_start(n, x, l, nl);
    return rc;
}

int node_xmpp_start(struct node *n, char *why, size_t whylen)
{
    const struct conf_listen *l;
    struct xside *x;
    int rc;

    if (n->x != NULL)
        return 0;
    if (n->stopping) {
        snprintf(why, whylen, "the daemon is shutting down");
        return XE_STATE;
    }
    if (cluster_removed(n)) {
        snprintf(why, whylen,
                 "this node was removed from its cluster: join again (xmpp cluster join "
                 "<member> <token>) or go alone (xmpp cluster disable)");
        return XE_STATE;
    }
    rc = node_xmpp_check(n, why, whylen);
    if (rc < 0)
        return rc;
    x = calloc(1, sizeof *x);
    if (x == NULL) {
        snprintf(why, whylen, "out of memory");
        return XE_NOMEM;
    }
    x->n = n;
    rc = new_core(n, x, why, whylen);
    if (rc == 0)
        rc = new_tls(n, x, why, whylen);
    if (rc == 0)
        rc = new_listeners(n, x, why, whylen);
    if (rc < 0) {
        retire(n, x);
        return rc;
    }
    n->x = x;
    /* In a cluster, srv forwards through the leader (io/cluster.c). */
    cluster_srv_attach(n);
    if (n->draining && node__drain_apply(n, x, why, whylen) < 0)
        LOG(&n->log, LOG_WARN, "%s draining, but %s", n->name, why);
    n->last_error[0] = '\0';
    LOG(&n->log, LOG_INFO,
        "%s XMPP started: domain %s, %zu call bridge(s), %zu listener(s), TLS %s",
        n->name, cl_domain(rnode_state(n->rn)), cl_callbridge_count(rnode_state(n->rn)),
        effective_listen(n, &l), x->tls != NULL ? node_state_tls_name(n->st.tls) : "off");
    node__after_srv(n);
    return 0;
}

void node__restart_xmpp(struct node *n, const char *reason)
{
    char why[512];

    if (n->x == NULL) {
        /* Enabled but not serving, e.g. a cluster member restarted before
         * the leader told it the commit index (no domain applied yet):
         * start now that the state changed. */
        if (n->st.xmpp_enabled && !n->stopping && n->rn != NULL && !n->import_busy &&
            n->import_pending == 0 && node_xmpp_start(n, why, sizeof why) < 0)
            snprintf(n->last_error, sizeof n->last_error, "%s", why);
        return;
    }
    LOG(&n->log, LOG_INFO, "%s restarting XMPP: %s", n->name, reason);
    node_xmpp_stop(n);
    if (node_xmpp_start(n, why, sizeof why) < 0) {
        snprintf(n->last_error, sizeof n->last_error, "%s", why);
        LOG(&n->log, LOG_ERROR, "%s XMPP not restarted: %s", n->name, why);
    }
}

void node_get_info(const struct node *n, struct node_info *out)
{
    struct srv_stats s;

    memset(out, 0, sizeof *out);
    out->uptime_s = (uv_now((uv_loop_t *)&n->loop) - n->started_ms) / 1000;
    out->last_error = n->last_error;
    out->client_error = "";
    out->ws_error = "";
    if (n->x != NULL) {
        out->client_listeners = n->x->client_listening;
        out->client_error = n->x->client_error;
        srv_get_stats(n->x->srv, &s);
        out->components = s.components;
        out->clients = s.clients;
        out->ws_clients = s.ws_clients;
        out->ws_conns = s.ws_conns;
        out->ws_listeners = n->x->ws_listening;
        out->ws_error = n->x->ws_error;
        out->ws_urls = srv_ws_urls(n->x->srv, &out->nws_urls);
        out->conns = s.conns;
        out->stats = s;
        out->nblocked = srv_get_blocked(n->x->srv, out->blocked, NODE_INFO_BLOCKED);
    }
}

bool node_callbridge_connected(const struct node *n, const char *name)
{
    if (n->x == NULL)
        return false;
    return srv_callbridge_connected(n->x->srv, name);
}
