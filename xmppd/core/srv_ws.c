/* srv_ws.c: the WebSocket transport of client sessions (RFC 7395;
 * docs/websocket.md "The seam").  A connection of a WebSocket listener
 * is a client session (sess_c2s) whose struct sess holds a ws_conn: bytes
 * from the edge go through ws_input, the stream bytes it yields to the
 * session, the session's writes through ws_send, and the wire bytes of
 * every step to the edge.  The session's rules (login, keep-alive, close
 * once) are the ones of 5222; this file only carries bytes and the
 * WebSocket's own life: the upgrade, pongs as liveness, and the closing
 * handshake, which outlives the session (a "parked" ws_conn, freed when
 * the handshake ends or the edge reports the connection gone). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "err.h"
#include "sess_c2s.h"
#include "srv_int.h"
#include "ws.h"

/* A WebSocket whose session is closed, finishing its closing handshake. */
struct srv_wsp {
    uint64_t conn;
    struct ws_conn *ws; /* owned */
    struct srv_wsp *next;
};

/* peer_ip copies the address part of peer ("10.0.0.1:5", "[::1]:5") into
 * out: ws_new wants an IP address (X-Forwarded-For, trusted proxies). */
static void peer_ip(const char *peer, char *out, size_t cap)
{
    if (addr_host_of(peer, out, cap) < 0)
        snprintf(out, cap, "%s", peer);
}

/* max_pending: the bound on WebSocket connections before their HTTP
 * response (pending upgrades are bounded). */
static uint64_t max_pending(const struct srv *srv)
{
    return srv->ws_cfg->max_pending != 0 ? srv->ws_cfg->max_pending : 256;
}

/* settle stops counting s as pending once its response went out (or its
 * ws_conn is gone). */
static void settle(struct srv *srv, struct sess *s)
{
    struct ws_stats st;

    if (!s->ws_pending)
        return;
    if (s->ws != NULL) {
        ws_get_stats(s->ws, &st);
        if (st.http_status == 0 && ws_state(s->ws) == WS_HTTP)
            return;
    }
    s->ws_pending = false;
    srv->ws_pending--;
}

int srv__ws_open(struct srv *srv, uint64_t conn, const char *peer, struct sess **out)
{
    struct sess_c2s *c;
    char ip[64];
    int rc;

    rc = sess_c2s_new(srv, conn, peer, srv->now_ms, &c);
    if (rc < 0)
        return rc;
    peer_ip(c->base.peer, ip, sizeof ip);
    rc = ws_new(srv->ws_cfg, ip, srv->now_ms, &c->base.ws);
    if (rc < 0) {
        sess_c2s_free(c);
        return rc;
    }
    /* Over the bound the connection is refused (503) on its first bytes:
     * not here, where a wss connection has no TLS yet.  Until then the
     * handshake timeout bounds it. */
    if (srv->ws_pending < max_pending(srv)) {
        c->base.ws_pending = true;
        srv->ws_pending++;
    }
    *out = &c->base;
    return 0;
}

/* wire hands the bytes of a step to the edge.  0 or the edge's code. */
static int wire(struct srv *srv, uint64_t conn, const struct ws_update *up)
{
    if (up->wire_len == 0)
        return 0;
    return srv->env.send(srv->env.ud, conn, up->wire, up->wire_len);
}

/* upgraded: the 101 went out.  The client's address may come from
 * X-Forwarded-For (ws_client_addr): it replaces the peer for logs and
 * login throttling.  A client on plain ws while TLS is required for
 * clients is refused: there is no STARTTLS inside a WebSocket (TLS is the
 * WebSocket's own, RFC 7395 §3.9), so the stream would offer nothing. */
static void upgraded(struct srv *srv, struct sess *s)
{
    struct sess_c2s *c = (struct sess_c2s *)s;
    const char *addr = ws_client_addr(s->ws);
    char ip[64];

    peer_ip(s->peer, ip, sizeof ip);
    if (strcmp(addr, ip) != 0) {
        char *p = strdup(addr);
        if (p != NULL) {
            free(s->peer);
            s->peer = p;
        }
    }
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " websocket upgraded (%s, peer %s)", s->conn,
            c->secured ? "wss" : "ws", s->peer);
    if (!c->secured && srv->cfg.c2s_tls_required)
        sess__fail_text(s, XS_COND_POLICY_VIOLATION,
                        "TLS is required: connect with wss://", "plain ws, TLS required");
}

/* apply carries out one step of s's ws_conn (docs/websocket.md, the driver
 * loop).  up's pointers die at the next call on the ws_conn, which feeding
 * the session may make (its answers go through ws_send): the stream bytes
 * are copied first. */
static void apply(struct srv *srv, struct sess *s, const struct ws_update *up)
{
    bool up_upgraded = up->upgraded, up_error = up->stream_error, up_close = up->close;
    enum xs_cond cond = up->cond;
    const char *why = up->why;

    if (wire(srv, s->conn, up) < 0) {
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " websocket send failed, closing", s->conn);
        srv__close(srv, s);
        return;
    }
    buf_reset(&srv->ws_in);
    if (up->stream_len > 0 && buf_append(&srv->ws_in, up->stream, up->stream_len) < 0) {
        sess_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    /* Written and copied: an idle connection keeps no step buffers. */
    ws_done(s->ws);
    if (up_upgraded && srv->drain != NULL) {
        /* Draining: the upgrade is answered, then the client is sent to
         * another member (RFC 7395 §3.6.1) before any stream starts. */
        srv__drain_opening(srv, s);
        return;
    }
    if (up_upgraded)
        upgraded(srv, s);
    /* Nothing that feeding the session does comes back here (its writes
     * go through srv__ws_send), so ws_in is not overwritten meanwhile. */
    if (srv->ws_in.len > 0 && s->state != SESS_CLOSED)
        sess_input(s, srv->ws_in.data, srv->ws_in.len);
    if (up_error && s->state != SESS_CLOSED)
        sess_fail(s, cond, why != NULL ? why : "websocket framing");
    if (up_close && s->state != SESS_CLOSED) {
        /* The WebSocket is over (the client closed, or a refusal or a
         * protocol failure): the connection is lost for the session. */
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " websocket closed: %s (%s, peer %s)", s->conn,
                why != NULL ? why : "closed", sess__who(s), s->peer);
        srv__close(srv, s);
    }
}

void srv__ws_input(struct srv *srv, struct sess *s, const void *data, size_t len)
{
    struct ws_update up;

    if (s->state == SESS_CLOSED)
        return;
    if (!s->ws_pending && ws_state(s->ws) == WS_HTTP) {
        struct ws_stats st;
        ws_get_stats(s->ws, &st);
        if (st.http_status == 0 && srv->ws_pending < max_pending(srv)) {
            s->ws_pending = true; /* room was made since it connected */
            srv->ws_pending++;
        } else if (st.http_status == 0) {
            srv->stats.ws_busy++;
            SRV_LOG(srv, LOG_INFO,
                    "c%" PRIu64 " websocket refused: %" PRIu64
                    " connections pending (peer %s)",
                    s->conn, srv->ws_pending, s->peer);
            if (ws_busy(s->ws, srv->now_ms, &up) < 0) {
                srv__close(srv, s);
                return;
            }
            apply(srv, s, &up);
            return;
        }
    }
    if (ws_input(s->ws, data, len, srv->now_ms, &up) < 0) {
        srv__close(srv, s);
        return;
    }
    settle(srv, s);
    /* The keep-alive rule (sess_tick) counts any frame as a sign of life,
     * the pong to our keep-alive ping (RFC 7395 §3.8) included. */
    s->last_in_ms = srv->now_ms;
    s->ping_pending = false;
    apply(srv, s, &up);
}

int srv__ws_send(struct srv *srv, struct sess *s, const char *data, size_t len)
{
    struct ws_update up;
    int rc = ws_send(s->ws, data, len, srv->now_ms, &up);

    if (rc < 0)
        return rc;
    rc = wire(srv, s->conn, &up);
    if (rc == 0 && up.close)
        rc = XE_CLOSED;
    ws_done(s->ws);
    return rc;
}

void srv__ws_tick_one(struct srv *srv, struct sess *s)
{
    struct ws_update up;

    if (s->state == SESS_CLOSED || ws_deadline(s->ws) > srv->now_ms)
        return;
    if (ws_tick(s->ws, srv->now_ms, &up) < 0)
        return;
    settle(srv, s);
    apply(srv, s, &up);
}

void srv__ws_redirect(struct srv *srv, struct sess *s, const char *uri)
{
    struct ws_update up;

    if (s->state == SESS_CLOSED)
        return;
    if (ws_redirect(s->ws, uri, srv->now_ms, &up) < 0 || wire(srv, s->conn, &up) < 0) {
        srv__close(srv, s);
        return;
    }
    settle(srv, s);
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " websocket see-other-uri %s (%s, peer %s)",
            s->conn, uri, sess__who(s), s->peer);
    /* The <close/> is out: the session writes nothing more and its close
     * continues the WebSocket's closing handshake (srv__ws_release). */
    srv__close(srv, s);
}

/* park keeps ws (taken) until its closing handshake ends. */
static void park(struct srv *srv, uint64_t conn, struct ws_conn *ws)
{
    struct srv_wsp *p = malloc(sizeof *p);

    if (p == NULL) {
        srv->env.close(srv->env.ud, conn);
        ws_free(ws);
        return;
    }
    p->conn = conn;
    p->ws = ws;
    p->next = srv->parked;
    srv->parked = p;
}

void srv__ws_release(struct srv *srv, struct sess *s, bool tell_edge)
{
    struct ws_conn *ws = s->ws;
    struct ws_update up;

    s->ws = NULL;
    settle(srv, s);
    if (!tell_edge) {
        ws_free(ws);
        return;
    }
    /* RFC 7395 §3.6: <close/> (unless the session wrote it), then the
     * WebSocket closing handshake, each wait bounded (close_timeout_ms). */
    if (ws_state(ws) == WS_CLOSED || ws_close(ws, 1000, NULL, srv->now_ms, &up) < 0 ||
        wire(srv, s->conn, &up) < 0 || up.close || ws_state(ws) == WS_CLOSED) {
        srv->env.close(srv->env.ud, s->conn);
        ws_free(ws);
        return;
    }
    park(srv, s->conn, ws);
}

/* parked_find returns the link to conn's parked WebSocket, or to NULL. */
static struct srv_wsp **parked_find(struct srv *srv, uint64_t conn)
{
    struct srv_wsp **p = &srv->parked;

    while (*p != NULL && (*p)->conn != conn)
        p = &(*p)->next;
    return p;
}

/* parked_step writes a parked WebSocket's step and ends it when over. */
static void parked_step(struct srv *srv, struct srv_wsp **p, int rc,
                        const struct ws_update *up)
{
    struct srv_wsp *w = *p;

    if (rc < 0 || wire(srv, w->conn, up) < 0 || up->close) {
        srv->env.close(srv->env.ud, w->conn);
        *p = w->next;
        ws_free(w->ws);
        free(w);
    }
}

void srv__ws_parked_input(struct srv *srv, uint64_t conn, const void *data, size_t len)
{
    struct srv_wsp **p = parked_find(srv, conn);
    struct ws_update up;

    /* What the client still says (its <close/>, its close frame) only
     * moves the handshake; stream bytes have no session any more. */
    if (*p != NULL)
        parked_step(srv, p, ws_input((*p)->ws, data, len, srv->now_ms, &up), &up);
}

void srv__ws_parked_gone(struct srv *srv, uint64_t conn)
{
    struct srv_wsp **p = parked_find(srv, conn), *w = *p;

    if (w != NULL) {
        *p = w->next;
        ws_free(w->ws);
        free(w);
    }
}

void srv__ws_tick(struct srv *srv)
{
    struct srv_wsp **p = &srv->parked;
    struct ws_update up;

    while (*p != NULL) {
        struct srv_wsp *w = *p;
        if (ws_deadline(w->ws) <= srv->now_ms)
            parked_step(srv, p, ws_tick(w->ws, srv->now_ms, &up), &up);
        if (*p == w)
            p = &w->next;
    }
}

uint64_t srv__ws_deadline(const struct srv *srv)
{
    uint64_t d = SRV_NO_DEADLINE;

    for (const struct srv_wsp *w = srv->parked; w != NULL; w = w->next)
        if (ws_deadline(w->ws) < d)
            d = ws_deadline(w->ws);
    return d;
}

size_t srv__ws_parked_count(const struct srv *srv)
{
    size_t n = 0;

    for (const struct srv_wsp *w = srv->parked; w != NULL; w = w->next)
        n++;
    return n;
}

void srv__ws_free(struct srv *srv)
{
    while (srv->parked != NULL) {
        struct srv_wsp *w = srv->parked;
        srv->parked = w->next;
        ws_free(w->ws);
        free(w);
    }
    buf_free(&srv->ws_in);
    srv__ws_links_free(srv);
}
