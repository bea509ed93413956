/* sess_comp.c: the XEP-0114 component session state machine. */
#include "sess_comp.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "err.h"
#include "jid.h"
#include "srv_int.h"

#define SC_DIGEST_HEX 40 /* hex SHA-1 */

int sess_comp_new(struct srv *srv, uint64_t conn, const char *peer, uint64_t now_ms,
                  struct sess_comp **out)
{
    unsigned char id[16]; /* XEP-0114 §3: the stream id; 128 bits */
    struct sess_comp *s = calloc(1, sizeof *s);

    if (s == NULL)
        goto err;
    s->peer = strdup(peer != NULL ? peer : "?");
    if (s->peer == NULL)
        goto err_s;
    /* Small until the handshake succeeded (issue 8, defect 9). */
    if (xs_new(&srv->preauth, &s->xs) < 0)
        goto err_peer;
    srv->env.random(srv->env.ud, id, sizeof id);
    sodium_bin2hex(s->stream_id, sizeof s->stream_id, id, sizeof id);
    s->srv = srv;
    s->conn = conn;
    s->state = SESS_COMP_WAIT_HEADER;
    s->opened_ms = s->last_in_ms = s->last_out_ms = now_ms;
    *out = s;
    return 0;

err_peer:
    free(s->peer);
err_s:
    free(s);
err:
    return XE_NOMEM;
}

void sess_comp_free(struct sess_comp *s)
{
    if (s == NULL)
        return;
    xs_free(s->xs);
    free(s->name);
    free(s->domain);
    free(s->peer);
    free(s);
}

int sess_comp__enter(struct sess_comp *s, enum sess_comp_state to)
{
    assert(to != SESS_COMP_CLOSED && to != SESS_COMP_WAIT_HEADER);
    if (s->state == SESS_COMP_CLOSED)
        return XE_CLOSED;
    assert(to > s->state);
    s->state = to;
    return 0;
}

/* sc_write sends bytes and notes the time; a failed send closes s. */
static int sc_write(struct sess_comp *s, const char *data, size_t len)
{
    int rc;

    if (s->state == SESS_COMP_CLOSED)
        return XE_CLOSED;
    rc = srv__send(s->srv, s, data, len);
    if (rc == 0)
        s->last_out_ms = s->srv->now_ms;
    return rc;
}

/* sc_header appends our stream header (XEP-0114 §3, RFC 6120 §4.7).  from is
 * a validated domain (the component's, or ours before we know it), so it
 * needs no escaping; the id is hex. */
static int sc_header(struct sess_comp *s, struct buf *b)
{
    const char *from = s->domain != NULL ? s->domain : s->srv->domain;

    s->header_sent = true;
    return buf_printf(b,
                      "<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' "
                      "from='%s' id='%s'>",
                      STZ_NS_STREAMS, STZ_NS_COMPONENT, from, s->stream_id);
}

/* sc_fail sends stream error cond and closes; log says whether to write
 * the stream-error log line (false when the caller already logged the
 * event in its own words). */
static void sc_fail(struct sess_comp *s, enum xs_cond cond, const char *why, bool log)
{
    struct srv *srv = s->srv;
    struct buf *b = &srv->out;

    if (s->state == SESS_COMP_CLOSED)
        return;
    buf_reset(b);
    if ((!s->header_sent && sc_header(s, b) < 0) || xs_write_error(b, cond, NULL) < 0) {
        buf_reset(b);
        buf_puts(b, "</stream:stream>");
    }
    srv->stats.stream_errors++;
    if (log)
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " stream error %s: %s (component %s, peer %s)",
                s->conn, xs_cond_name(cond), why, s->domain ? s->domain : "-", s->peer);
    if (sc_write(s, b->data, b->len) < 0)
        return; /* already closed */
    srv__close(srv, s);
}

void sess_comp_fail(struct sess_comp *s, enum xs_cond cond, const char *why)
{
    sc_fail(s, cond, why, true);
}

/* sc_end answers the peer's </stream:stream> (or its stream error) with ours
 * and closes, RFC 6120 §4.4. */
static void sc_end(struct sess_comp *s, const char *why)
{
    struct buf *b = &s->srv->out;

    buf_reset(b);
    if ((!s->header_sent && sc_header(s, b) < 0) || buf_puts(b, "</stream:stream>") < 0) {
        srv__close(s->srv, s);
        return;
    }
    SRV_LOG(s->srv, LOG_INFO, "c%" PRIu64 " %s (component %s, peer %s)", s->conn, why,
            s->domain ? s->domain : "-", s->peer);
    if (sc_write(s, b->data, b->len) == 0)
        srv__close(s->srv, s);
}

static bool sc_label_ok(const char *p, size_t n)
{
    if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* sc_open checks the stream header: 'to' must be <name>.<our domain>, with
 * name one label (XEP-0114 §3; a call bridge cb1 is cb1.<domain>). */
static void sc_open(struct sess_comp *s, struct stz *el)
{
    struct srv *srv = s->srv;
    const char *to = stz_attr(el, "to"), *xmlns = stz_attr(el, "xmlns");
    size_t dlen = strlen(srv->domain), tlen, nlen;
    struct jid j = {0};
    struct buf *b = &srv->out;

    /* RFC 6120 §4.9.3.10: the content namespace (the default namespace the
     * root declares, reported by xs as the pseudo attribute xmlns) must be
     * jabber:component:accept. */
    if (xmlns == NULL || strcmp(xmlns, STZ_NS_COMPONENT) != 0) {
        sess_comp_fail(s, XS_COND_INVALID_NAMESPACE, "content namespace");
        return;
    }
    /* RFC 6120 §4.9.3.6 host-unknown: 'to' names nothing we serve. */
    if (to == NULL || jid_parse(to, &j) < 0 || j.local != NULL || j.resource != NULL)
        goto unknown;
    tlen = strlen(j.domain);
    if (tlen <= dlen + 1 || j.domain[tlen - dlen - 1] != '.' ||
        strcmp(j.domain + tlen - dlen, srv->domain) != 0)
        goto unknown;
    nlen = tlen - dlen - 1;
    if (!sc_label_ok(j.domain, nlen))
        goto unknown;
    s->name = strndup(j.domain, nlen);
    if (s->name == NULL)
        goto nomem;
    s->domain = j.domain;
    j.domain = NULL;
    jid_clear(&j);
    buf_reset(b);
    if (sc_header(s, b) < 0)
        goto nomem;
    if (sess_comp__enter(s, SESS_COMP_WAIT_HANDSHAKE) < 0)
        return;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " component stream to %s from %s", s->conn,
            s->domain, s->peer);
    sc_write(s, b->data, b->len);
    return;

unknown:
    jid_clear(&j);
    sess_comp_fail(s, XS_COND_HOST_UNKNOWN, "stream to an unknown host");
    return;
nomem:
    jid_clear(&j);
    sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
    return;
}

/* sc_expected computes hex(SHA-1(stream id + secret)), XEP-0114 §3. */
static int sc_expected(const char *id, const unsigned char *secret, size_t len,
                       char hex[SC_DIGEST_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (ctx == NULL)
        return XE_NOMEM;
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
         EVP_DigestUpdate(ctx, id, strlen(id)) && EVP_DigestUpdate(ctx, secret, len) &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == SC_DIGEST_HEX / 2;
    EVP_MD_CTX_free(ctx);
    if (ok)
        sodium_bin2hex(hex, SC_DIGEST_HEX + 1, md, SC_DIGEST_HEX / 2);
    sodium_memzero(md, sizeof md);
    return ok ? 0 : XE_NOMEM;
}

/* sc_handshake checks <handshake>digest</handshake>: constant-time compare;
 * failure (wrong secret or unknown call bridge, told apart only in the log)
 * is not-authorized, RFC 6120 §4.9.3.12. */
static void sc_handshake(struct sess_comp *s, const struct stz *el)
{
    static const unsigned char nothing[1] = {0};
    struct srv *srv = s->srv;
    const struct srv_cb *cb = srv__find_cb(srv, s->name);
    char want[SC_DIGEST_HEX + 1], got[SC_DIGEST_HEX];
    char *text = stz_text(el), *p;
    size_t n;
    bool match = false;
    const char *why = cb ? "wrong secret" : "unknown call bridge";

    if (text == NULL) {
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    p = text;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    n = strlen(p);
    while (n > 0 &&
           (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (sc_expected(s->stream_id, cb ? cb->secret : nothing, cb ? cb->len : 0, want) <
        0) {
        free(text);
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "digest failed");
        return;
    }
    if (n == SC_DIGEST_HEX) {
        for (size_t i = 0; i < n; i++)
            got[i] = (p[i] >= 'A' && p[i] <= 'F') ? (char)(p[i] - 'A' + 'a') : p[i];
        match = sodium_memcmp(got, want, SC_DIGEST_HEX) == 0;
    }
    sodium_memzero(want, sizeof want);
    sodium_memzero(got, sizeof got);
    sodium_memzero(text, strlen(text));
    free(text);
    if (!match || cb == NULL) {
        srv->stats.auth_failures++;
        SRV_LOG(srv, LOG_INFO,
                "c%" PRIu64
                " component %s authentication failed from %s: %s (not-authorized)",
                s->conn, s->domain, s->peer,
                n == SC_DIGEST_HEX ? why : "malformed handshake");
        sc_fail(s, XS_COND_NOT_AUTHORIZED, "handshake refused", false);
        return;
    }
    if (srv__authenticated(srv, s) < 0) {
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    /* In cluster mode the leader's table may hold a newer session of this
     * name: srv__authenticated then closed s with conflict (RFC 6120
     * §4.9.3.3) from inside fwd, and s stays closed. */
    if (sess_comp__enter(s, SESS_COMP_READY) < 0)
        return;
    /* Authenticated: the stanzas of a call bridge may be large now. */
    xs_set_limits(s->xs, &srv->cfg.limits);
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " component %s authenticated from %s", s->conn,
            s->domain, s->peer);
    sc_write(s, "<handshake/>", strlen("<handshake/>"));
}

/* sc_stanza checks the addresses of a stanza from a READY component and
 * hands it to the router (takes el). */
static void sc_stanza(struct sess_comp *s, struct stz *el)
{
    struct srv *srv = s->srv;
    const char *from = stz_attr(el, "from"), *to = stz_attr(el, "to");
    struct jid j = {0};
    int rc;

    /* XEP-0114 §3: stanzas from a component carry 'from' and 'to', as on a
     * server-to-server stream; RFC 6120 §4.9.3.14: else improper-addressing. */
    if (from == NULL || *from == '\0' || to == NULL || *to == '\0') {
        stz_free(el);
        sess_comp_fail(s, XS_COND_IMPROPER_ADDRESSING, "stanza without from or to");
        return;
    }
    rc = jid_parse(from, &j);
    if (rc == XE_NOMEM) {
        stz_free(el);
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    /* RFC 6120 §4.9.3.9 invalid-from: a component sends only from its own
     * domain or a subdomain of it, and not from a subdomain that another
     * component holds. */
    if (rc < 0 || !jid_domain_within(j.domain, s->domain) ||
        rt_find(srv->rt, j.domain) != s) {
        jid_clear(&j);
        stz_free(el);
        sess_comp_fail(s, XS_COND_INVALID_FROM, "from outside the component domain");
        return;
    }
    jid_clear(&j);
    srv__route(srv, s, el);
}

/* sc_element dispatches one top-level element (takes el). */
static void sc_element(struct sess_comp *s, struct stz *el)
{
    const char *ns = el->ns != NULL ? el->ns : "";

    if (strcmp(ns, STZ_NS_STREAMS) == 0 && strcmp(el->name, "error") == 0) {
        stz_free(el);
        sc_end(s, "stream error from peer");
        return;
    }
    if (strcmp(ns, STZ_NS_COMPONENT) != 0) {
        bool wrong_default = *ns == '\0' || strcmp(ns, STZ_NS_CLIENT) == 0 ||
                             strcmp(ns, STZ_NS_SERVER) == 0;
        stz_free(el);
        /* RFC 6120 §4.9.3.10: a stream in another content namespace. */
        if (wrong_default) {
            sess_comp_fail(s, XS_COND_INVALID_NAMESPACE, "content namespace");
            return;
        }
        sess_comp_fail(s, XS_COND_UNSUPPORTED_STANZA_TYPE, "unknown element");
        return;
    }
    if (s->state == SESS_COMP_WAIT_HANDSHAKE) {
        if (strcmp(el->name, "handshake") == 0)
            sc_handshake(s, el);
        else
            sess_comp_fail(s, XS_COND_NOT_AUTHORIZED, "stanza before handshake");
        stz_free(el);
        return;
    }
    if (!stz_is_stanza(el, STZ_NS_COMPONENT)) {
        stz_free(el);
        sess_comp_fail(s, XS_COND_UNSUPPORTED_STANZA_TYPE, "not a stanza");
        return;
    }
    sc_stanza(s, el);
}

void sess_comp_input(struct sess_comp *s, const void *data, size_t len)
{
    struct xs_event ev;

    if (s->state == SESS_COMP_CLOSED)
        return;
    s->last_in_ms = s->srv->now_ms;
    s->ping_pending = false;
    if (xs_feed(s->xs, data, len) < 0) {
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "framer failed");
        return;
    }
    while (s->state != SESS_COMP_CLOSED && xs_next(s->xs, &ev)) {
        switch (ev.kind) {
        case XS_EV_OPEN:
            if (s->state == SESS_COMP_WAIT_HEADER)
                sc_open(s, ev.el);
            stz_free(ev.el);
            break;
        case XS_EV_ELEM:
            sc_element(s, ev.el);
            break;
        case XS_EV_CLOSE:
            sc_end(s, "stream closed by peer");
            break;
        case XS_EV_ERROR:
            sess_comp_fail(s, ev.cond, ev.text != NULL ? ev.text : "framer error");
            break;
        }
    }
}

int sess_comp_deliver(struct sess_comp *s, const struct stz *st)
{
    struct buf *b = &s->srv->out;

    if (s->state != SESS_COMP_READY)
        return XE_STATE;
    buf_reset(b);
    if (stz_serialize(st, STZ_NS_COMPONENT, b) < 0)
        return XE_NOMEM;
    return sc_write(s, b->data, b->len);
}

int sess_comp_deliver_raw(struct sess_comp *s, const char *xml, size_t len)
{
    if (s->state != SESS_COMP_READY)
        return XE_STATE;
    return sc_write(s, xml, len);
}

/* sc_ping probes a silent component, XEP-0199 §4.1 (server-to-client form). */
static void sc_ping(struct sess_comp *s)
{
    struct srv *srv = s->srv;
    char id[32];
    struct stz *iq;

    snprintf(id, sizeof id, "ping-%" PRIu64, ++srv->ping_seq);
    iq = rt_make_ping(srv->domain, s->domain, id);
    if (iq == NULL)
        return;
    s->ping_pending = true;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " component %s idle, ping", s->conn, s->domain);
    sess_comp_deliver(s, iq);
    stz_free(iq);
}

void sess_comp_tick(struct sess_comp *s)
{
    const struct srv_config *cfg = &s->srv->cfg;
    uint64_t now = s->srv->now_ms, ka = cfg->keepalive_ms;

    if (s->state == SESS_COMP_CLOSED)
        return;
    if (s->state != SESS_COMP_READY) {
        if (cfg->auth_timeout_ms != 0 && now - s->opened_ms >= cfg->auth_timeout_ms)
            sess_comp_fail(s, XS_COND_CONNECTION_TIMEOUT, "authentication timeout");
        return;
    }
    if (ka == 0)
        return;
    /* RFC 6120 §4.6.1 and the issue: silent for three intervals, closed. */
    if (now - s->last_in_ms >= 3 * ka) {
        sess_comp_fail(s, XS_COND_CONNECTION_TIMEOUT, "idle");
        return;
    }
    if (!s->ping_pending && now - s->last_in_ms >= ka)
        sc_ping(s);
    /* RFC 6120 §4.6.1: a single space keeps an idle outbound stream alive. */
    if (s->state == SESS_COMP_READY && now - s->last_out_ms >= ka)
        sc_write(s, " ", 1);
}

uint64_t sess_comp_deadline(const struct sess_comp *s)
{
    const struct srv_config *cfg = &s->srv->cfg;
    uint64_t ka = cfg->keepalive_ms, d;

    if (s->state == SESS_COMP_CLOSED)
        return UINT64_MAX;
    if (s->state != SESS_COMP_READY)
        return cfg->auth_timeout_ms ? s->opened_ms + cfg->auth_timeout_ms : UINT64_MAX;
    if (ka == 0)
        return UINT64_MAX;
    d = s->last_in_ms + 3 * ka;
    if (!s->ping_pending && s->last_in_ms + ka < d)
        d = s->last_in_ms + ka;
    if (s->last_out_ms + ka < d)
        d = s->last_out_ms + ka;
    return d;
}
