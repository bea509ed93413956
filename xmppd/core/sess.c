/* sess.c: the rules every session shares (sess.h), and the dispatch to the
 * kind-specific steps of sess_comp.c and sess_c2s.c. */
#include "sess.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "never.h"
#include "rt.h"
#include "sess_c2s.h"
#include "sess_comp.h"
#include "srv_int.h"
#include "ws.h"

int sess__init(struct sess *s, enum sess_kind kind, struct srv *srv, uint64_t conn,
               const char *peer, uint64_t now_ms)
{
    s->peer = strdup(peer != NULL ? peer : "?");
    if (s->peer == NULL)
        return XE_NOMEM;
    /* Small until authenticated. */
    /* One hash salt for every parser of this stream (xs.c "Hash salt"):
     * SipHash of the connection id under the node's secret key (drawn
     * through the edge at srv_new), so the core reads no randomness here;
     * non-zero, 0 being "expat's own". */
    unsigned char h[crypto_shorthash_BYTES], in[10] = {'x', 's'};
    unsigned long salt = 0;
    for (int i = 0; i < 8; i++)
        in[2 + i] = (unsigned char)(conn >> (8 * i));
    crypto_shorthash(h, in, sizeof in, srv->fake_key);
    memcpy(&salt, h, sizeof salt < sizeof h ? sizeof salt : sizeof h);
    if (xs_new_salted(&srv->preauth, salt | 1, &s->xs) < 0) {
        free(s->peer);
        s->peer = NULL;
        return XE_NOMEM;
    }
    s->kind = kind;
    s->srv = srv;
    s->conn = conn;
    s->state = SESS_OPENING;
    s->opened_ms = s->last_in_ms = s->last_out_ms = now_ms;
    sess__new_stream_id(s);
    return 0;
}

void sess__new_stream_id(struct sess *s)
{
    unsigned char id[16]; /* XEP-0114 §3, RFC 6120 §4.7.3: 128 bits */

    s->srv->env.random(s->srv->env.ud, id, sizeof id);
    sodium_bin2hex(s->stream_id, sizeof s->stream_id, id, sizeof id);
}

void sess__fini(struct sess *s)
{
    xs_free(s->xs);
    ws_free(s->ws);
    free(s->peer);
}

void sess_free(struct sess *s)
{
    if (s == NULL)
        return;
    switch (s->kind) {
    case SESS_KIND_COMP:
        sess_comp_free((struct sess_comp *)s);
        break;
    case SESS_KIND_C2S:
        sess_c2s_free((struct sess_c2s *)s);
        break;
    }
}

int sess__enter(struct sess *s)
{
    if (s->state == SESS_CLOSED)
        return XE_CLOSED;
    /* Only an authentication enters, once (sess_comp.c, sess_c2s_sasl.c). */
    if (XD_NEVER(s->state != SESS_OPENING))
        return XE_STATE;
    s->state = SESS_READY;
    return 0;
}

int sess__write(struct sess *s, const char *data, size_t len)
{
    int rc;

    if (s->state == SESS_CLOSED)
        return XE_CLOSED;
    rc = srv__send(s->srv, s, data, len);
    if (rc == 0)
        s->last_out_ms = s->srv->now_ms;
    return rc;
}

const char *sess__ns(const struct sess *s)
{
    return s->kind == SESS_KIND_C2S ? STZ_NS_CLIENT : STZ_NS_COMPONENT;
}

const char *sess__who(const struct sess *s)
{
    static char who[1100];

    if (s->kind == SESS_KIND_COMP) {
        const struct sess_comp *c = (const struct sess_comp *)s;
        snprintf(who, sizeof who, "component %s", c->domain ? c->domain : "-");
    } else {
        const struct sess_c2s *c = (const struct sess_c2s *)s;
        snprintf(who, sizeof who, "client %s",
                 c->jid != NULL                 ? c->jid
                 : c->authed && c->user != NULL ? c->user
                                                : "-");
    }
    return who;
}

/* sess_header appends the kind's stream header and marks it sent. */
static int sess_header(struct sess *s, struct buf *b)
{
    if (s->kind == SESS_KIND_COMP)
        return sess_comp__header((struct sess_comp *)s, b);
    return sess_c2s__header((struct sess_c2s *)s, b);
}

static void sess_fail_(struct sess *s, enum xs_cond cond, const char *text,
                       const char *why, bool log)
{
    struct srv *srv = s->srv;
    struct buf *b = &srv->out;

    if (s->state == SESS_CLOSED)
        return;
    buf_reset(b);
    if ((!s->header_sent && sess_header(s, b) < 0) || xs_write_error(b, cond, text) < 0) {
        buf_reset(b);
        buf_puts(b, "</stream:stream>");
    }
    srv->stats.stream_errors++;
    if (log)
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " stream error %s: %s (%s, peer %s)", s->conn,
                xs_cond_name(cond), why, sess__who(s), s->peer);
    if (sess__write(s, b->data, b->len) < 0)
        return; /* already closed */
    srv__close(srv, s);
}

void sess_fail(struct sess *s, enum xs_cond cond, const char *why)
{
    sess_fail_(s, cond, NULL, why, true);
}

void sess__fail_text(struct sess *s, enum xs_cond cond, const char *text, const char *why)
{
    sess_fail_(s, cond, text, why, true);
}

void sess__redirect(struct sess *s, const char *host, const char *why)
{
    struct srv *srv = s->srv;
    struct buf *b = &srv->out;
    struct stz *e;
    int rc;

    if (s->state == SESS_CLOSED)
        return;
    /* RFC 6120 §4.9.3.19: the condition element's content is the host
     * (and port) the entity is to connect to instead; the stream is
     * closed after the error (§4.9.1.1). */
    buf_reset(b);
    e = stz_new(xs_cond_name(XS_COND_SEE_OTHER_HOST), STZ_NS_XSTREAMS);
    rc = e != NULL ? stz_add_text(e, host, strlen(host)) : XE_NOMEM;
    if (rc == 0 && !s->header_sent)
        rc = sess_header(s, b);
    if (rc == 0)
        rc = buf_puts(b, "<stream:error>");
    if (rc == 0)
        rc = stz_serialize(e, "", b);
    if (rc == 0)
        rc = buf_puts(b, "</stream:error></stream:stream>");
    stz_free(e);
    if (rc < 0) {
        sess_fail(s, XS_COND_SYSTEM_SHUTDOWN, why);
        return;
    }
    srv->stats.stream_errors++;
    SRV_LOG(srv, LOG_INFO,
            "c%" PRIu64 " stream error see-other-host %s: %s (%s, peer %s)", s->conn,
            host, why, sess__who(s), s->peer);
    if (sess__write(s, b->data, b->len) < 0)
        return;
    srv__close(srv, s);
}

void sess__fail_quiet(struct sess *s, enum xs_cond cond)
{
    sess_fail_(s, cond, NULL, NULL, false);
}

void sess__end(struct sess *s, const char *why)
{
    struct buf *b = &s->srv->out;

    buf_reset(b);
    if ((!s->header_sent && sess_header(s, b) < 0) ||
        buf_puts(b, "</stream:stream>") < 0) {
        srv__close(s->srv, s);
        return;
    }
    SRV_LOG(s->srv, LOG_INFO, "c%" PRIu64 " %s (%s, peer %s)", s->conn, why, sess__who(s),
            s->peer);
    if (sess__write(s, b->data, b->len) == 0)
        srv__close(s->srv, s);
}

void sess_input(struct sess *s, const void *data, size_t len)
{
    if (s->state == SESS_CLOSED || XD_NEVER(data == NULL && len > 0))
        return;
    s->last_in_ms = s->srv->now_ms;
    s->ping_pending = false;
    if (s->kind == SESS_KIND_COMP)
        sess_comp_input((struct sess_comp *)s, data, len);
    else
        sess_c2s_input((struct sess_c2s *)s, data, len);
}

int sess_deliver(struct sess *s, const struct stz *st)
{
    struct buf *b = &s->srv->out;

    if (s->state != SESS_READY)
        return XE_STATE;
    buf_reset(b);
    if (stz_serialize(st, sess__ns(s), b) < 0)
        return XE_NOMEM;
    return sess__write(s, b->data, b->len);
}

int sess_deliver_raw(struct sess *s, const char *xml, size_t len)
{
    if (s->state != SESS_READY)
        return XE_STATE;
    return sess__write(s, xml, len);
}

/* sess_ping probes a silent peer, XEP-0199 §4.1 (server-to-client form):
 * the component's domain, or the client's full JID. */
static void sess_ping(struct sess *s)
{
    struct srv *srv = s->srv;
    const char *to = s->kind == SESS_KIND_COMP ? ((struct sess_comp *)s)->domain
                                               : ((struct sess_c2s *)s)->jid;
    char id[32];
    struct stz *iq;

    snprintf(id, sizeof id, "ping-%" PRIu64, ++srv->ping_seq);
    iq = rt_make_ping(srv->domain, to, id);
    if (iq == NULL)
        return;
    s->ping_pending = true;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " %s idle, ping", s->conn, sess__who(s));
    sess_deliver(s, iq);
    stz_free(iq);
}

void sess_tick(struct sess *s)
{
    const struct srv_config *cfg = &s->srv->cfg;
    uint64_t now = s->srv->now_ms, ka = cfg->keepalive_ms;

    if (s->state == SESS_CLOSED)
        return;
    if (s->kind == SESS_KIND_C2S)
        sess_c2s__tick((struct sess_c2s *)s);
    if (s->state == SESS_CLOSED)
        return;
    if (s->state != SESS_READY) {
        if (cfg->auth_timeout_ms != 0 && now - s->opened_ms >= cfg->auth_timeout_ms)
            sess_fail(s, XS_COND_CONNECTION_TIMEOUT, "authentication timeout");
        return;
    }
    if (ka == 0)
        return;
    /* RFC 6120 §4.6.1: silent for three intervals, closed. */
    if (now - s->last_in_ms >= 3 * ka) {
        sess_fail(s, XS_COND_CONNECTION_TIMEOUT, "idle");
        return;
    }
    if (!s->ping_pending && now - s->last_in_ms >= ka)
        sess_ping(s);
    /* RFC 6120 §4.6.1: a single space keeps an idle outbound stream alive. */
    if (s->state == SESS_READY && now - s->last_out_ms >= ka)
        sess__write(s, " ", 1);
}

uint64_t sess_deadline(const struct sess *s)
{
    const struct srv_config *cfg = &s->srv->cfg;
    uint64_t ka = cfg->keepalive_ms, d;

    if (s->state == SESS_CLOSED)
        return UINT64_MAX;
    if (s->state != SESS_READY) {
        d = cfg->auth_timeout_ms ? s->opened_ms + cfg->auth_timeout_ms : UINT64_MAX;
        if (s->kind == SESS_KIND_C2S && sess_c2s__deadline((const void *)s) < d)
            d = sess_c2s__deadline((const void *)s);
        return d;
    }
    /* A client paused by the shaper is resumed at its time. */
    d = s->kind == SESS_KIND_C2S ? sess_c2s__deadline((const void *)s) : UINT64_MAX;
    if (ka == 0)
        return d;
    if (s->last_in_ms + 3 * ka < d)
        d = s->last_in_ms + 3 * ka;
    if (!s->ping_pending && s->last_in_ms + ka < d)
        d = s->last_in_ms + ka;
    if (s->last_out_ms + ka < d)
        d = s->last_out_ms + ka;
    return d;
}
