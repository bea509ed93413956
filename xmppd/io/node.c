/* node.c: one xmppd node: srv wired to libuv (contract in node.h). */
#include "node.h"

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "conf.h"
#include "conffile.h"
#include "conn.h"
#include "err.h"
#include "logsink.h"
#include "srv.h"

struct node {
    uv_loop_t loop;
    bool loop_ready;
    struct log_sink log;
    char name[32];
    char *conf_path; /* owned */
    struct conf conf;
    struct srv *srv;
    struct conn_mgr *cm;
    uv_timer_t timer; /* wakes srv_tick at srv_next_deadline */
    uv_signal_t sig_term, sig_int, sig_hup;
    bool handles_ready; /* timer and signals initialised */
    bool stopping;
};

/* ---- srv_env: what srv asks of the edge ---- */

static int env_send(void *ud, uint64_t conn, const char *data, size_t len)
{
    struct node *n = ud;

    return conn_send(n->cm, conn, data, len);
}

static void env_close(void *ud, uint64_t conn)
{
    struct node *n = ud;

    conn_close(n->cm, conn);
}

static void env_random(void *ud, void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

/* ---- after every srv call ---- */

static void on_timer(uv_timer_t *t);

/* after_srv writes what srv queued and re-arms the timer to srv's next
 * deadline.  Called after every srv_* call made from a libuv callback. */
static void after_srv(struct node *n)
{
    uint64_t due, now;

    conn_mgr_flush(n->cm);
    if (n->stopping)
        return;
    due = srv_next_deadline(n->srv);
    if (due == SRV_NO_DEADLINE) {
        uv_timer_stop(&n->timer);
        return;
    }
    now = uv_now(&n->loop);
    uv_timer_start(&n->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct node *n = t->data;

    if (n->stopping)
        return;
    srv_tick(n->srv, uv_now(&n->loop));
    after_srv(n);
}

/* ---- conn_hooks: what the connections tell us ---- */

static int hook_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct node *n = ud;
    int rc;

    if (n->stopping)
        return XE_STATE;
    rc = srv_conn_open(n->srv, id, (enum srv_listener)tag, peer, uv_now(&n->loop));
    after_srv(n);
    return rc;
}

static void hook_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct node *n = ud;

    srv_conn_input(n->srv, id, bytes, len, uv_now(&n->loop));
    after_srv(n);
}

static void hook_gone(void *ud, uint64_t id, int err)
{
    struct node *n = ud;

    srv_conn_closed(n->srv, id, uv_now(&n->loop));
    after_srv(n);
}

static void close_own_handles(struct node *n)
{
    if (!n->handles_ready)
        return;
    n->handles_ready = false;
    uv_close((uv_handle_t *)&n->timer, NULL);
    uv_close((uv_handle_t *)&n->sig_term, NULL);
    uv_close((uv_handle_t *)&n->sig_int, NULL);
    uv_close((uv_handle_t *)&n->sig_hup, NULL);
}

static void hook_drained(void *ud)
{
    struct node *n = ud;

    LOG(&n->log, LOG_INFO, "%s all connections closed", n->name);
    close_own_handles(n);
}

/* ---- signals ---- */

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct node *n = s->data;

    if (n->stopping) {
        LOG(&n->log, LOG_INFO, "%s %s again: still closing connections", n->name,
            signum == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
    LOG(&n->log, LOG_INFO, "%s %s: shutting down", n->name,
        signum == SIGINT ? "SIGINT" : "SIGTERM");
    /* RFC 6120 §4.4: every stream gets </stream:stream> before its socket
     * closes; srv writes it, the connection manager flushes it. */
    srv_shutdown(n->srv);
    n->stopping = true;
    uv_timer_stop(&n->timer);
    conn_mgr_flush(n->cm);
    conn_mgr_shutdown(n->cm);
}

/* apply_callbridges makes srv's call bridges those of fresh: adds, secret
 * changes and removals.  Returns the number of failures. */
static int apply_callbridges(struct node *n, const struct conf *fresh)
{
    int failures = 0;

    for (size_t i = 0; i < fresh->n_cb; i++) {
        const struct conf_callbridge *cb = &fresh->cb[i];
        const struct conf_callbridge *old = conf_find_callbridge(&n->conf, cb->name);
        const char *what;
        int rc;

        if (old != NULL && old->secret_len == cb->secret_len &&
            sodium_memcmp(old->secret, cb->secret, cb->secret_len) == 0)
            continue;
        what = old == NULL ? "added" : "secret changed";
        rc = srv_set_callbridge(n->srv, cb->name, cb->secret, cb->secret_len);
        if (rc < 0) {
            LOG(&n->log, LOG_ERROR, "%s reload: call bridge %s not applied: %s", n->name,
                cb->name, xe_strerror(rc));
            failures++;
            continue;
        }
        LOG(&n->log, LOG_INFO, "%s reload: call bridge %s %s", n->name, cb->name, what);
    }
    for (size_t i = 0; i < n->conf.n_cb; i++) {
        const char *name = n->conf.cb[i].name;
        int rc;

        if (conf_find_callbridge(fresh, name) != NULL)
            continue;
        rc = srv_del_callbridge(n->srv, name);
        if (rc < 0 && rc != XE_NOTFOUND) {
            LOG(&n->log, LOG_ERROR, "%s reload: call bridge %s not removed: %s", n->name,
                name, xe_strerror(rc));
            failures++;
            continue;
        }
        LOG(&n->log, LOG_INFO, "%s reload: call bridge %s removed", n->name, name);
    }
    return failures;
}

static bool same_listen(const struct conf *a, const struct conf *b)
{
    if (a->n_listen != b->n_listen)
        return false;
    for (size_t i = 0; i < a->n_listen; i++) {
        if (a->listen[i].port != b->listen[i].port ||
            strcmp(a->listen[i].host, b->listen[i].host) != 0)
            return false;
    }
    return true;
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct node *n = s->data;
    struct conf fresh;
    char err[512];
    struct conf_callbridge *cb;
    size_t ncb;
    int rc;

    if (n->stopping)
        return;
    LOG(&n->log, LOG_INFO, "%s SIGHUP: reloading %s", n->name, n->conf_path);
    rc = conffile_load(n->conf_path, &fresh, err, sizeof err);
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s reload failed, keeping the old configuration: %s",
            n->name, err);
        return;
    }
    /* Only call bridges change at run time (issue 2); the rest needs a
     * restart, and saying so beats silently ignoring it. */
    if (strcmp(fresh.domain, n->conf.domain) != 0 || !same_listen(&fresh, &n->conf) ||
        fresh.keepalive_s != n->conf.keepalive_s ||
        fresh.auth_timeout_s != n->conf.auth_timeout_s)
        LOG(&n->log, LOG_WARN,
            "%s reload: domain, component-listen, keepalive and auth-timeout "
            "changes take effect only after a restart",
            n->name);
    apply_callbridges(n, &fresh);
    /* Keep the new call-bridge list, the old everything else. */
    cb = n->conf.cb;
    ncb = n->conf.n_cb;
    n->conf.cb = fresh.cb;
    n->conf.n_cb = fresh.n_cb;
    fresh.cb = cb;
    fresh.n_cb = ncb;
    conf_free(&fresh);
    after_srv(n);
}

/* ---- lifecycle ---- */

static int start_handles(struct node *n)
{
    int rc;

    uv_timer_init(&n->loop, &n->timer);
    uv_signal_init(&n->loop, &n->sig_term);
    uv_signal_init(&n->loop, &n->sig_int);
    uv_signal_init(&n->loop, &n->sig_hup);
    n->timer.data = n->sig_term.data = n->sig_int.data = n->sig_hup.data = n;
    n->handles_ready = true;
    rc = uv_signal_start(&n->sig_term, on_stop_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&n->sig_int, on_stop_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&n->sig_hup, on_hup, SIGHUP);
    return rc;
}

int node_start(const struct node_opts *opts, struct node **out, char *err, size_t errlen)
{
    struct node *n;
    struct srv_config cfg;
    struct srv_env env;
    struct conn_hooks hooks;
    size_t plen;
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
    logsink_stderr(&n->log, opts->level);
    snprintf(n->name, sizeof n->name, "%s", opts->name);
    plen = strlen(opts->state_dir) + sizeof "/" CONFFILE_NAME;
    n->conf_path = malloc(plen);
    if (n->conf_path == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = XE_NOMEM;
        goto fail;
    }
    snprintf(n->conf_path, plen, "%s/%s", opts->state_dir, CONFFILE_NAME);
    rc = conffile_load(n->conf_path, &n->conf, err, errlen);
    if (rc < 0)
        goto fail;

    rc = uv_loop_init(&n->loop);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create the event loop: %s", uv_strerror(rc));
        rc = XE_IO;
        goto fail;
    }
    n->loop_ready = true;

    srv_config_default(&cfg);
    cfg.domain = n->conf.domain;
    cfg.node_name = n->name;
    cfg.keepalive_ms = (uint64_t)n->conf.keepalive_s * 1000;
    cfg.auth_timeout_ms = (uint64_t)n->conf.auth_timeout_s * 1000;
    env = (struct srv_env){.ud = n,
                           .send = env_send,
                           .close = env_close,
                           .random = env_random,
                           .log = &n->log};
    rc = srv_new(&cfg, &env, &n->srv);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot start the XMPP core: %s", n->conf_path,
                 xe_strerror(rc));
        goto fail;
    }
    for (size_t i = 0; i < n->conf.n_cb; i++) {
        const struct conf_callbridge *cb = &n->conf.cb[i];
        rc = srv_set_callbridge(n->srv, cb->name, cb->secret, cb->secret_len);
        if (rc < 0) {
            snprintf(err, errlen, "%s: call bridge %s: %s", n->conf_path, cb->name,
                     xe_strerror(rc));
            goto fail;
        }
    }

    hooks = (struct conn_hooks){.ud = n,
                                .opened = hook_opened,
                                .data = hook_data,
                                .gone = hook_gone,
                                .drained = hook_drained};
    rc = conn_mgr_new(&n->loop, &hooks, &n->log, n->name, 0, &n->cm);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc = start_handles(n);
    if (rc < 0) {
        snprintf(err, errlen, "cannot install signal handlers: %s", uv_strerror(rc));
        rc = XE_IO;
        goto fail;
    }
    for (size_t i = 0; i < n->conf.n_listen; i++) {
        const struct conf_listen *l = &n->conf.listen[i];
        rc = conn_listen(n->cm, l->host, l->port, SRV_LISTENER_COMPONENT, err, errlen);
        if (rc < 0)
            goto fail;
    }
    /* A peer that goes away mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    LOG(&n->log, LOG_INFO, "%s started: domain %s, %zu call bridge(s), config %s",
        n->name, n->conf.domain, n->conf.n_cb, n->conf_path);
    *out = n;
    return 0;

fail:
    node_free(n);
    return rc;
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
        if (n->cm != NULL) {
            n->stopping = true;
            conn_mgr_shutdown(n->cm); /* its drained hook closes our handles */
        } else {
            close_own_handles(n);
        }
        uv_run(&n->loop, UV_RUN_DEFAULT);
        uv_loop_close(&n->loop);
    }
    conn_mgr_free(n->cm);
    if (n->srv != NULL)
        srv_free(n->srv);
    conf_free(&n->conf);
    free(n->conf_path);
    free(n);
}
