/* srv.c: the node core: connection table, call-bridge secrets, timers and
 * the glue between sessions of both kinds (sess.c, sess_comp.c,
 * sess_c2s.c), the router (rt.c) and account routing (srv_c2s.c). */
#include "srv.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "jid.h"
#include "precis.h"
#include "sess_c2s.h"
#include "sess_comp.h"
#include "srv_int.h"

void srv_config_default(struct srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->node_name = "n1";
    c->keepalive_ms = 60000;
    c->auth_timeout_ms = 10000;
    xs_limits_default(&c->limits);
    c->preauth_stanza_bytes = SRV_DEFAULT_PREAUTH_STANZA_BYTES;
    c->c2s_tls_required = true;
    c->sasl_plain = false;
    c->login_delay_ms = 500;
    c->login_delay_max_ms = 8000;
    c->login_block_after = 10;
    c->login_block_ms = 300000;
    c->c2s_max_sessions = 10;
    c->c2s_rate = 65536;
    c->c2s_burst = 262144;
    c->c2s_preauth_rate = 8192;
    c->c2s_preauth_burst = 16384;
    c->version = NULL;
}

/* ---- connection table ---- */

static uint64_t sess_hash(const struct hlink *l)
{
    return htab_hash_u64(SRV_SESS(l)->conn);
}

static struct sess *srv_find(const struct srv *srv, uint64_t conn)
{
    for (struct hlink *l = htab_head(&srv->conns, htab_hash_u64(conn)); l != NULL;
         l = l->next)
        if (SRV_SESS(l)->conn == conn)
            return SRV_SESS(l);
    return NULL;
}

static void srv_unlink(struct srv *srv, struct sess *s)
{
    htab_del(&srv->conns, &s->hlink, htab_hash_u64(s->conn));
}

void srv__reap(struct srv *srv)
{
    while (srv->dead != NULL) {
        struct sess *s = srv->dead;
        srv->dead = s->dnext;
        assert(s->state == SESS_CLOSED);
        srv_cluster__gone(srv, s);
        if (s->kind == SESS_KIND_C2S)
            srv__c2s_gone(srv, (struct sess_c2s *)s);
        sess_free(s);
    }
}

/* srv_each calls fn on every open session; fn may close the session it is
 * given (and only that one). */
static void srv_each(struct srv *srv, void (*fn)(struct srv *, struct sess *))
{
    for (size_t i = 0; i < srv->conns.nb; i++) {
        struct hlink *l = srv->conns.b[i], *next;
        for (; l != NULL; l = next) {
            next = l->next;
            fn(srv, SRV_SESS(l));
        }
    }
}

void srv__each(struct srv *srv, void (*fn)(struct srv *, struct sess *))
{
    srv_each(srv, fn);
}

/* ---- lifetime ---- */

int srv_new(const struct srv_config *cfg, const struct srv_env *env, struct srv **out)
{
    struct xs_limits def;
    struct jid j = {0};
    struct srv *srv;

    if (cfg == NULL || cfg->domain == NULL || env == NULL || env->send == NULL ||
        env->close == NULL || env->random == NULL)
        return XE_INVAL;
    if (jid_parse(cfg->domain, &j) < 0 || j.local != NULL || j.resource != NULL) {
        jid_clear(&j);
        return XE_INVAL;
    }
    if (sodium_init() < 0)
        goto err_jid;
    srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        goto err_jid;
    srv->cfg = *cfg;
    srv->env = *env;
    srv->domain = j.domain;
    j.domain = NULL;
    srv->node_name = strdup(cfg->node_name != NULL ? cfg->node_name : "n?");
    if (srv->node_name == NULL)
        goto err_srv;
    srv->cfg.domain = srv->domain;
    srv->cfg.node_name = srv->node_name;
    xs_limits_default(&def);
    if (srv->cfg.limits.max_stanza_bytes == 0)
        srv->cfg.limits.max_stanza_bytes = def.max_stanza_bytes;
    if (srv->cfg.limits.max_depth == 0)
        srv->cfg.limits.max_depth = def.max_depth;
    if (srv->cfg.limits.max_attrs == 0)
        srv->cfg.limits.max_attrs = def.max_attrs;
    if (srv->cfg.preauth_stanza_bytes == 0)
        srv->cfg.preauth_stanza_bytes = SRV_DEFAULT_PREAUTH_STANZA_BYTES;
    if (srv->cfg.preauth_stanza_bytes > srv->cfg.limits.max_stanza_bytes)
        srv->cfg.preauth_stanza_bytes = srv->cfg.limits.max_stanza_bytes;
    /* Before authentication: a small stanza, and the memory cap that
     * follows from it unless the configured cap is smaller still. */
    srv->preauth = srv->cfg.limits;
    srv->preauth.max_stanza_bytes = srv->cfg.preauth_stanza_bytes;
    srv->preauth.max_mem_bytes = XS_MEM_CAP(srv->preauth.max_stanza_bytes);
    if (srv->cfg.limits.max_mem_bytes != 0 &&
        srv->cfg.limits.max_mem_bytes < srv->preauth.max_mem_bytes)
        srv->preauth.max_mem_bytes = srv->cfg.limits.max_mem_bytes;
    if (rt_new(srv->domain, &srv->rt) < 0)
        goto err_name;
    /* The version string lives in rt (copied); srv keeps no pointer to
     * the caller's. */
    if (rt_set_version(srv->rt, cfg->version) < 0)
        goto err_rt;
    srv->cfg.version = NULL;
    if (htab_init(&srv->conns, 64) < 0)
        goto err_rt;
    /* scram.h: unknown users get a salt made from this key, so that the
     * answer does not tell which accounts exist. */
    srv->fake_key = sodium_malloc(32);
    if (srv->fake_key == NULL)
        goto err_conns;
    srv->env.random(srv->env.ud, srv->fake_key, 32);
    /* Without it (out of memory) each login fetches its algorithms. */
    (void)scram_algs_new(&srv->scram_algs);
    srv->hint = SRV_NO_DEADLINE;
    ws_config_default(&srv->ws_default);
    srv->ws_cfg = srv->ws_base = &srv->ws_default;
    jid_clear(&j);
    *out = srv;
    return 0;

err_conns:
    htab_fini(&srv->conns);
err_rt:
    rt_free(srv->rt);
err_name:
    free(srv->node_name);
err_srv:
    free(srv->domain);
    free(srv);
err_jid:
    jid_clear(&j);
    return XE_NOMEM;
}

static void srv_cb_free(struct srv_cb *cb)
{
    sodium_free(cb->secret); /* zeroes the guarded pages before release */
    free(cb->name);
    free(cb);
}

static void srv_drop_session(struct srv *srv, struct sess *s)
{
    srv_unlink(srv, s);
    if (s->kind == SESS_KIND_C2S)
        srv__c2s_unbind(srv, (struct sess_c2s *)s);
    sess_free(s);
}

/* srv_subs_free frees the commands of l and l's array. */
static void srv_subs_free(struct srv_subs *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((void *)l->a[i].cmd);
    free(l->a);
    memset(l, 0, sizeof *l);
}

void srv_free(struct srv *srv)
{
    if (srv == NULL)
        return;
    srv_cluster__free(srv);
    srv_each(srv, srv_drop_session);
    while (srv->dead != NULL) {
        struct sess *s = srv->dead;
        srv->dead = s->dnext;
        sess_free(s);
    }
    srv__c2s_free(srv);
    srv__ws_free(srv);
    srv__thr_free(srv);
    srv__lastpres_free(srv);
    srv__drain_free(srv);
    sodium_free(srv->fake_key);
    scram_algs_free(srv->scram_algs);
    while (srv->cbs != NULL) {
        struct srv_cb *cb = srv->cbs;
        srv->cbs = cb->next;
        srv_cb_free(cb);
    }
    htab_fini(&srv->conns);
    rt_free(srv->rt);
    srv_subs_free(&srv->subs);
    srv_subs_free(&srv->taken);
    buf_free(&srv->out);
    free(srv->node_name);
    free(srv->domain);
    free(srv);
}

/* ---- call bridges ---- */

const struct srv_cb *srv__find_cb(const struct srv *srv, const char *name)
{
    for (const struct srv_cb *cb = srv->cbs; cb != NULL; cb = cb->next)
        if (strcmp(cb->name, name) == 0)
            return cb;
    return NULL;
}

/* srv_cb_name prepares a call-bridge name: one LDH label, lower-cased. */
static int srv_cb_name(const char *name, char out[64])
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n > 63 || name[0] == '-' || name[n - 1] == '-')
        return XE_INVAL;
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (i < n && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return XE_INVAL;
        out[i] = c;
    }
    return 0;
}

/* srv_cb_session returns the READY session of call bridge name, or NULL. */
static struct sess_comp *srv_cb_session(struct srv *srv, const char *name)
{
    struct buf d = {0};
    struct sess_comp *s = NULL;

    if (buf_printf(&d, "%s.%s", name, srv->domain) == 0) {
        s = rt_find(srv->rt, d.data);
        if (s != NULL && strcmp(s->domain, d.data) != 0)
            s = NULL;
    }
    buf_free(&d);
    return s;
}

int srv_set_callbridge(struct srv *srv, const char *name, const unsigned char *secret,
                       size_t len)
{
    char n[64];
    struct srv_cb *cb;
    struct sess_comp *s;
    unsigned char *copy;

    if (srv_cb_name(name, n) < 0 || secret == NULL || len == 0)
        return XE_INVAL;
    cb = (struct srv_cb *)srv__find_cb(srv, n);
    /* Same secret again (a reload): nothing changes, no session is closed. */
    if (cb != NULL && cb->len == len && sodium_memcmp(cb->secret, secret, len) == 0)
        return 0;
    copy = sodium_malloc(len);
    if (copy == NULL)
        return XE_NOMEM;
    memcpy(copy, secret, len);
    if (cb == NULL) {
        cb = calloc(1, sizeof *cb);
        if (cb == NULL || (cb->name = strdup(n)) == NULL) {
            free(cb);
            sodium_free(copy);
            return XE_NOMEM;
        }
        cb->secret = copy;
        cb->len = len;
        cb->next = srv->cbs;
        srv->cbs = cb;
        SRV_LOG(srv, LOG_DEBUG, "call bridge %s added", n);
        return 0;
    }
    sodium_free(cb->secret);
    cb->secret = copy;
    cb->len = len;
    SRV_LOG(srv, LOG_DEBUG, "call bridge %s secret changed", n);
    s = srv_cb_session(srv, n);
    if (s != NULL)
        sess_fail(&s->base, XS_COND_NOT_AUTHORIZED, "secret changed");
    srv__reap(srv);
    return 0;
}

bool srv_callbridge_connected(const struct srv *srv, const char *name)
{
    char n[64];

    if (srv_cb_name(name, n) < 0)
        return false;
    return srv_cb_session((struct srv *)srv, n) != NULL;
}

int srv_del_callbridge(struct srv *srv, const char *name)
{
    char n[64];
    struct srv_cb **p;
    struct sess_comp *s;

    if (srv_cb_name(name, n) < 0)
        return XE_NOTFOUND;
    for (p = &srv->cbs; *p != NULL && strcmp((*p)->name, n) != 0; p = &(*p)->next)
        ;
    if (*p == NULL)
        return XE_NOTFOUND;
    {
        struct srv_cb *cb = *p;
        *p = cb->next;
        srv_cb_free(cb);
    }
    SRV_LOG(srv, LOG_DEBUG, "call bridge %s deleted", n);
    /* RFC 6120 §4.9.3.5 host-gone: the domain is no longer served. */
    s = srv_cb_session(srv, n);
    if (s != NULL)
        sess_fail(&s->base, XS_COND_HOST_GONE, "call bridge deleted");
    srv__reap(srv);
    return 0;
}

/* ---- the update (srv.h "Events in, an update out") ---- */

int srv__submit(struct srv *srv, void *cmd, size_t len, uint64_t token)
{
    struct srv_subs *l = &srv->subs;

    if (!srv->cfg.roster_writes) {
        free(cmd);
        return XE_STATE;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? 2 * l->cap : 4;
        struct srv_submit *a = realloc(l->a, cap * sizeof *a);
        if (a == NULL) {
            free(cmd);
            return XE_NOMEM;
        }
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n++] = (struct srv_submit){cmd, len, token};
    return 0;
}

void srv_take(struct srv *srv, struct srv_update *u)
{
    struct srv_subs t = srv->taken;

    if (srv->subs.n == 0 && t.n == 0) { /* most calls list nothing */
        u->submits = NULL;
        u->nsubmits = 0;
        return;
    }
    /* What the edge took last is carried out: its commands go. */
    for (size_t i = 0; i < t.n; i++)
        free((void *)t.a[i].cmd);
    t.n = 0;
    srv->taken = srv->subs;
    srv->subs = t;
    u->submits = srv->taken.a;
    u->nsubmits = srv->taken.n;
}

/* ---- services for the sessions (srv_int.h) ---- */

int srv__send(struct srv *srv, struct sess *s, const char *data, size_t len)
{
    int rc = s->ws != NULL ? srv__ws_send(srv, s, data, len)
                           : srv->env.send(srv->env.ud, s->conn, data, len);

    if (rc < 0) {
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " send failed (%s), closing", s->conn,
                xe_strerror(rc));
        srv__close(srv, s);
    }
    return rc;
}

/* srv_close is the one way a session ends: CLOSED (terminal: sess__enter
 * refuses to leave it), out of the connection table and the router or the
 * account table, onto the dead list, exactly once.  tell_edge says whether
 * the edge must be asked to close the connection (not when the edge
 * reported it gone). */
static void srv_close(struct srv *srv, struct sess *s, bool tell_edge)
{
    if (s->state == SESS_CLOSED)
        return;
    s->state = SESS_CLOSED;
    if (s->kind == SESS_KIND_C2S) {
        /* A paused connection reads again: its close (the closing
         * handshake of a WebSocket, the EOF of a drain) needs it. */
        struct sess_c2s *c = (struct sess_c2s *)s;
        if (tell_edge)
            srv__shape_resume(srv, c);
        else if (c->paused) {
            c->paused = false;
            srv->npaused--;
        }
    }
    if (s->ws != NULL)
        srv__ws_release(srv, s, tell_edge); /* the WebSocket closes on its own */
    else if (tell_edge)
        srv->env.close(srv->env.ud, s->conn);
    srv_unlink(srv, s);
    if (s->kind == SESS_KIND_COMP) {
        struct sess_comp *c = (struct sess_comp *)s;
        if (c->domain != NULL)
            rt_del(srv->rt, c->domain, c);
    } else {
        srv__c2s_unbind(srv, (struct sess_c2s *)s);
    }
    s->dnext = srv->dead;
    srv->dead = s;
}

void srv__close(struct srv *srv, struct sess *s)
{
    srv_close(srv, s, true);
}

int srv__authenticated(struct srv *srv, struct sess_comp *s)
{
    void *old = NULL;
    int rc = rt_add(srv->rt, s->domain, s, &old);

    if (rc < 0)
        return rc;
    if (old != NULL) {
        char why[64];
        /* DESIGN: a call bridge reconnects while its old TCP session still
         * looks alive; the new session wins, the old one gets conflict
         * (RFC 6120 §4.9.3.3). */
        snprintf(why, sizeof why, "replaced by c%" PRIu64, s->base.conn);
        sess_fail(&((struct sess_comp *)old)->base, XS_COND_CONFLICT, why);
    }
    return srv_cluster__authenticated(srv, s);
}

/* srv_account_addr tells whether j (parsed 'to'; XE_INVAL from jid_parse
 * in rc when it did not parse) is an account's address (a JID with a
 * localpart in our domain, RFC 6121 §8.5), its localpart then prepared.
 * The caller clears j in every case.  XE_NOMEM when out of memory. */
static int srv_account_addr(struct srv *srv, int rc, struct jid *j)
{
    if (rc == XE_NOMEM)
        return rc;
    if (rc == 0 && j->local != NULL && strcmp(j->domain, srv->domain) == 0) {
        char prep[1024];
        /* Accounts are kept prepared (RFC 7622 §3.3, PRECIS
         * UsernameCaseMapped); jid_parse maps ASCII only. */
        if (precis_username(j->local, strlen(j->local), prep, sizeof prep) == 0 &&
            strcmp(prep, j->local) != 0) {
            char *d = strdup(prep);
            if (d == NULL)
                return XE_NOMEM;
            free(j->local);
            j->local = d;
        }
        return 1;
    }
    return 0;
}

void srv__nomem_reply(struct srv *srv, struct sess *from, const struct stz *st)
{
    struct stz *r = NULL;

    if (rt_may_bounce(st))
        r = stz_error_reply(st, "wait", "resource-constraint", NULL);

    SRV_LOG(srv, LOG_WARN, "c%" PRIu64 " out of memory handling a %s, %s", from->conn,
            st->name, r != NULL ? "answered resource-constraint" : "dropped");
    if (r != NULL)
        sess_deliver(from, r);
    stz_free(r);
}

void srv__route(struct srv *srv, struct sess *from, struct stz *st)
{
    const char *to = stz_attr(st, "to");
    struct rt_route r;
    struct jid j = {0};
    int rc, jrc;

    if (LOG_ON(srv->env.log, LOG_TRACE)) {
        struct buf t = {0};
        if (stz_serialize(st, sess__ns(from), &t) == 0)
            SRV_LOG(srv, LOG_TRACE, "c%" PRIu64 " in: %s", from->conn, t.data);
        buf_free(&t);
    }
    /* RFC 6120 §10.3: a client's stanza without 'to' is handled on behalf
     * of its account (components always address theirs, XEP-0114 §3). */
    if (to == NULL && from->kind == SESS_KIND_C2S) {
        srv__c2s_own(srv, (struct sess_c2s *)from, st);
        return;
    }
    /* 'to' is parsed once here for both decisions below. */
    jrc = to != NULL ? jid_parse(to, &j) : XE_INVAL;
    rc = to != NULL ? srv_account_addr(srv, jrc, &j) : 0;
    if (rc == 1) {
        srv__c2s_route(srv, from, &j, st);
        jid_clear(&j);
        return;
    }
    if (rc < 0 || rt_decide_jid(srv->rt, st, jrc, &j, &r) < 0) {
        jid_clear(&j);
        srv__nomem_reply(srv, from, st);
        stz_free(st);
        return;
    }
    jid_clear(&j);
    if (srv->cl != NULL &&
        (r.remote || (r.verdict == RT_DELIVER && srv_cluster__waiting(srv, st)))) {
        /* Cluster mode: another node may hold the name (docs/cluster.md
         * "Routing in the node core"); or stanzas to a name that moved
         * here still wait in fwd, and this one must not overtake them. */
        stz_free(r.reply);
        srv_cluster__forward(srv, from, st, NULL);
        stz_free(st);
        return;
    }
    switch (r.verdict) {
    case RT_DELIVER:
        if (sess_deliver((struct sess *)r.sess, st) == 0)
            srv->stats.routed++;
        break;
    case RT_REPLY:
        if (r.bounce) {
            srv->stats.bounced++;
            SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " %s to %s bounced: %s", from->conn,
                    st->name, stz_attr(st, "to"), r.why);
        }
        sess_deliver(from, r.reply);
        stz_free(r.reply);
        break;
    case RT_DROP:
        SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " %s to %s dropped: %s", from->conn, st->name,
                stz_attr(st, "to"), r.why);
        break;
    }
    stz_free(st);
}

void srv__touch(struct srv *srv, const struct sess *s)
{
    uint64_t d = sess_deadline(s);

    if (s->ws != NULL && ws_deadline(s->ws) < d)
        d = ws_deadline(s->ws);

    if (d < srv->hint)
        srv->hint = d;
}

int srv_set_client_limits(struct srv *srv, const struct srv_config *cfg)
{
    if (rt_set_version(srv->rt, cfg->version) < 0)
        return XE_NOMEM;
    srv->cfg.c2s_max_sessions = cfg->c2s_max_sessions;
    srv->cfg.c2s_rate = cfg->c2s_rate;
    srv->cfg.c2s_burst = cfg->c2s_burst;
    srv->cfg.c2s_preauth_rate = cfg->c2s_preauth_rate;
    srv->cfg.c2s_preauth_burst = cfg->c2s_preauth_burst;
    return 0;
}

/* ---- the byte-rate shaper ---- */

void srv__shape(struct srv *srv, struct sess_c2s *c, size_t len)
{
    const struct srv_config *cfg = &srv->cfg;
    uint64_t until;

    if (srv->env.pause_read == NULL)
        return;
    /* Stricter before authentication: a login takes a few kilobytes. */
    until = c->authed
                ? shaper_take(&c->shaper, cfg->c2s_rate, cfg->c2s_burst, len, srv->now_ms)
                : shaper_take(&c->shaper, cfg->c2s_preauth_rate, cfg->c2s_preauth_burst,
                              len, srv->now_ms);
    if (until == 0)
        return;
    if (until > c->paused_until || !c->paused)
        c->paused_until = until;
    if (c->paused)
        return;
    c->paused = true;
    srv->npaused++;
    srv->stats.shaper_pauses++;
    SRV_LOG(srv, LOG_DEBUG,
            "c%" PRIu64 " %s from %s over its byte rate: not read for %" PRIu64 " ms",
            c->base.conn, sess__who(&c->base), c->base.peer, until - srv->now_ms);
    srv->env.pause_read(srv->env.ud, c->base.conn, true);
}

void srv__shape_resume(struct srv *srv, struct sess_c2s *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    srv->npaused--;
    /* The time it was not read is not silence of the client's
     * (keep-alive, RFC 6120 §4.6.1). */
    if (c->base.last_in_ms < srv->now_ms)
        c->base.last_in_ms = srv->now_ms;
    srv->env.pause_read(srv->env.ud, c->base.conn, false);
}

/* ---- events from the edge ---- */

/* srv_clock takes the time handed in; it never goes back, so a caller's
 * stale now_ms cannot make an idle interval wrap around. */
static void srv_clock(struct srv *srv, uint64_t now_ms)
{
    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
}

int srv_conn_open(struct srv *srv, uint64_t conn, enum srv_listener kind,
                  const char *peer, uint64_t now_ms)
{
    struct sess *s;
    int rc;

    srv_clock(srv, now_ms);
    if (kind != SRV_LISTENER_COMPONENT && kind != SRV_LISTENER_CLIENT &&
        kind != SRV_LISTENER_WEBSOCKET && kind != SRV_LISTENER_WEBSOCKET_TLS)
        return XE_UNSUPPORTED;
    if (srv_find(srv, conn) != NULL)
        return XE_EXISTS;
    srv__ws_parked_gone(srv, conn); /* a reused id: the old one is over */
    if (kind == SRV_LISTENER_COMPONENT)
        rc = sess_comp_new(srv, conn, peer, srv->now_ms, (struct sess_comp **)&s);
    else if (kind == SRV_LISTENER_CLIENT)
        rc = sess_c2s_new(srv, conn, peer, srv->now_ms, (struct sess_c2s **)&s);
    else
        rc = srv__ws_open(srv, conn, peer, &s);
    if (rc < 0)
        return rc;
    htab_add(&srv->conns, &s->hlink, htab_hash_u64(conn), sess_hash);
    srv__touch(srv, s);
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " %s connection from %s", conn,
            kind == SRV_LISTENER_COMPONENT   ? "component"
            : kind == SRV_LISTENER_CLIENT    ? "client"
            : kind == SRV_LISTENER_WEBSOCKET ? "websocket"
                                             : "websocket tls",
            s->peer);
    return 0;
}

bool srv_make_room(struct srv *srv, uint64_t now_ms)
{
    struct sess *oldest = NULL;

    srv_clock(srv, now_ms);
    /* A walk over the table: it runs only at the limit, once per accept. */
    for (size_t i = 0; i < srv->conns.nb; i++) {
        for (struct hlink *l = srv->conns.b[i]; l != NULL; l = l->next) {
            struct sess *s = SRV_SESS(l);
            if (s->state != SESS_OPENING)
                continue;
            if (oldest == NULL || s->opened_ms < oldest->opened_ms ||
                (s->opened_ms == oldest->opened_ms && s->conn < oldest->conn))
                oldest = s;
        }
    }
    if (oldest == NULL)
        return false;
    sess_fail(oldest, XS_COND_RESOURCE_CONSTRAINT,
              "closed to make room: max-connections reached");
    return true;
}

void srv_conn_input(struct srv *srv, uint64_t conn, const void *data, size_t len,
                    uint64_t now_ms)
{
    struct sess *s;

    srv_clock(srv, now_ms);
    s = srv_find(srv, conn);
    if (s == NULL) {
        srv__ws_parked_input(srv, conn, data, len);
        return;
    }
    if (s->ws != NULL)
        srv__ws_input(srv, s, data, len);
    else if (!srv__drain_opening(srv, s)) /* draining: sent elsewhere */
        sess_input(s, data, len);
    if (s->kind == SESS_KIND_C2S && s->state != SESS_CLOSED)
        srv__shape(srv, (struct sess_c2s *)s, len);
    if (s->state != SESS_CLOSED)
        srv__touch(srv, s);
    srv__reap(srv);
}

void srv_conn_secured(struct srv *srv, uint64_t conn, const struct srv_tls_info *info,
                      uint64_t now_ms)
{
    struct sess *s;

    srv_clock(srv, now_ms);
    s = srv_find(srv, conn);
    if (s == NULL || s->kind != SESS_KIND_C2S || info == NULL)
        return;
    sess_c2s_secured((struct sess_c2s *)s, info);
    if (s->state != SESS_CLOSED)
        srv__touch(srv, s);
    srv__reap(srv);
}

void srv_conn_closed(struct srv *srv, uint64_t conn, uint64_t now_ms)
{
    struct sess *s;

    srv_clock(srv, now_ms);
    s = srv_find(srv, conn);
    if (s == NULL) {
        srv__ws_parked_gone(srv, conn);
        return;
    }
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " connection closed (%s, peer %s)", conn,
            sess__who(s), s->peer);
    srv_close(srv, s, false);
    srv__reap(srv);
}

static void srv_tick_one(struct srv *srv, struct sess *s)
{
    if (s->ws != NULL)
        srv__ws_tick_one(srv, s);
    sess_tick(s);
}

static void srv_touch_one(struct srv *srv, struct sess *s)
{
    srv__touch(srv, s);
}

void srv_tick(struct srv *srv, uint64_t now_ms)
{
    srv_clock(srv, now_ms);
    srv_each(srv, srv_tick_one);
    srv__thr_sweep(srv);
    srv__ws_tick(srv);
    srv_cluster__tick(srv);
    srv->hint = SRV_NO_DEADLINE;
    srv_each(srv, srv_touch_one);
    srv__reap(srv);
}

uint64_t srv_next_deadline(const struct srv *srv)
{
    uint64_t d = srv_cluster__deadline(srv), w = srv__ws_deadline(srv);

    if (w < d)
        d = w;
    return d < srv->hint ? d : srv->hint;
}

static void srv_shutdown_one(struct srv *srv, struct sess *s)
{
    sess_fail(s, XS_COND_SYSTEM_SHUTDOWN, "shutdown");
}

void srv_shutdown(struct srv *srv)
{
    SRV_LOG(srv, LOG_INFO, "shutdown: closing %zu streams", srv->conns.count);
    srv_each(srv, srv_shutdown_one);
    srv->hint = SRV_NO_DEADLINE;
    srv__reap(srv);
}

void srv_get_stats(const struct srv *srv, struct srv_stats *out)
{
    *out = srv->stats;
    out->conns = srv->conns.count;
    out->components = rt_count(srv->rt);
    out->clients = srv->nclients;
    out->blocked = srv__thr_blocked(srv);
    out->logins_minute = minute_sum(&srv->logins_minute, srv->now_ms);
    out->login_failures_minute = minute_sum(&srv->failures_minute, srv->now_ms);
    out->paused = srv->npaused;
    out->throttled = srv->thr.count;
    out->ws_pending = srv->ws_pending;
    out->ws_conns = srv__ws_parked_count(srv);
    out->ws_clients = 0;
    for (size_t i = 0; i < srv->conns.nb; i++)
        for (const struct hlink *l = srv->conns.b[i]; l != NULL; l = l->next)
            if (SRV_SESS(l)->ws != NULL) {
                out->ws_conns++;
                out->ws_clients += SRV_SESS(l)->state == SESS_READY;
            }
}

void srv_set_ws_config(struct srv *srv, const struct ws_config *cfg)
{
    srv->ws_base = cfg != NULL ? cfg : &srv->ws_default;
    srv__ws_sync(srv);
}
