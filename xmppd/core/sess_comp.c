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
    struct sess_comp *s = calloc(1, sizeof *s);

    if (s == NULL)
        return XE_NOMEM;
    if (sess__init(&s->base, SESS_KIND_COMP, srv, conn, peer, now_ms) < 0) {
        free(s);
        return XE_NOMEM;
    }
    s->step = SESS_COMP_WAIT_HEADER;
    *out = s;
    return 0;
}

void sess_comp_free(struct sess_comp *s)
{
    if (s == NULL)
        return;
    sess__fini(&s->base);
    free(s->name);
    free(s->domain);
    free(s);
}

/* sc_write sends bytes and notes the time; a failed send closes s. */
static int sc_write(struct sess_comp *s, const char *data, size_t len)
{
    return sess__write(&s->base, data, len);
}

/* sess_comp__header appends our stream header (XEP-0114 §3, RFC 6120 §4.7).
 * from is a validated domain (the component's, or ours before we know it),
 * so it needs no escaping; the id is hex. */
int sess_comp__header(struct sess_comp *s, struct buf *b)
{
    const char *from = s->domain != NULL ? s->domain : s->base.srv->domain;

    s->base.header_sent = true;
    return buf_printf(b,
                      "<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' "
                      "from='%s' id='%s'>",
                      STZ_NS_STREAMS, STZ_NS_COMPONENT, from, s->base.stream_id);
}

static void sess_comp_fail(struct sess_comp *s, enum xs_cond cond, const char *why)
{
    sess_fail(&s->base, cond, why);
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
    struct srv *srv = s->base.srv;
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
    if (sess_comp__header(s, b) < 0)
        goto nomem;
    s->step = SESS_COMP_WAIT_HANDSHAKE;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " component stream to %s from %s", s->base.conn,
            s->domain, s->base.peer);
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
    struct srv *srv = s->base.srv;
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
    if (sc_expected(s->base.stream_id, cb ? cb->secret : nothing, cb ? cb->len : 0,
                    want) < 0) {
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
                s->base.conn, s->domain, s->base.peer,
                n == SC_DIGEST_HEX ? why : "malformed handshake");
        sess__fail_quiet(&s->base, XS_COND_NOT_AUTHORIZED);
        return;
    }
    if (!srv_cluster__room(srv, s->domain)) {
        /* As for clients (sess_c2s.c c2s_bind): past the names the
         * leader's table takes from one node the bridge would be
         * unreachable; RFC 6120 §4.9.3.17, it may connect to another
         * node. */
        SRV_LOG(srv, LOG_WARN,
                "c%" PRIu64 " component %s refused from %s: this node holds the most "
                "sessions the cluster's routing table takes from one node",
                s->base.conn, s->domain, s->base.peer);
        sess__fail_quiet(&s->base, XS_COND_RESOURCE_CONSTRAINT);
        return;
    }
    if (srv__authenticated(srv, s) < 0) {
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    /* In cluster mode the leader's table may hold a newer session of this
     * name: srv__authenticated then closed s with conflict (RFC 6120
     * §4.9.3.3) from inside fwd, and s stays closed. */
    if (sess__enter(&s->base) < 0)
        return;
    /* Authenticated: the stanzas of a call bridge may be large now. */
    xs_set_limits(s->base.xs, &srv->cfg.limits);
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " component %s authenticated from %s",
            s->base.conn, s->domain, s->base.peer);
    sc_write(s, "<handshake/>", strlen("<handshake/>"));
}

/* sc_stanza checks the addresses of a stanza from a READY component and
 * hands it to the router (takes el). */
static void sc_stanza(struct sess_comp *s, struct stz *el)
{
    struct srv *srv = s->base.srv;
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
    /* The component's own domain, byte for byte (most stanzas): that is a
     * prepared JID already (s->domain is), within the domain by itself;
     * only the check that no other component holds it is left.  Any other
     * form, the same domain unprepared included, is prepared first (RFC
     * 7622 §3.2) and compared then. */
    if (strcmp(from, s->domain) == 0) {
        if (rt_find(srv->rt, s->domain) != s) {
            stz_free(el);
            sess_comp_fail(s, XS_COND_INVALID_FROM, "from outside the component domain");
            return;
        }
    } else {
        rc = jid_parse(from, &j);
        if (rc == XE_NOMEM) {
            stz_free(el);
            sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
            return;
        }
        /* RFC 6120 §4.9.3.9 invalid-from: a component sends only from its
         * own domain or a subdomain of it, and not from a subdomain that
         * another component holds. */
        if (rc < 0 || !jid_domain_within(j.domain, s->domain) ||
            rt_find(srv->rt, j.domain) != s) {
            jid_clear(&j);
            stz_free(el);
            sess_comp_fail(s, XS_COND_INVALID_FROM, "from outside the component domain");
            return;
        }
        jid_clear(&j);
    }
    if (rt_iq_invalid(el)) {
        /* RFC 6120 §8.2.3, §8.3.3.1: neither routed nor dropped unanswered. */
        struct stz *r = stz_error_reply(el, "modify", "bad-request", NULL);
        SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " iq without a valid type or id refused",
                s->base.conn);
        if (r != NULL)
            sess_deliver(&s->base, r);
        stz_free(r);
        stz_free(el);
        return;
    }
    srv__route(srv, &s->base, el);
}

/* sc_element dispatches one top-level element (takes el). */
static void sc_element(struct sess_comp *s, struct stz *el)
{
    const char *ns = el->ns != NULL ? el->ns : "";

    if (strcmp(ns, STZ_NS_STREAMS) == 0 && strcmp(el->name, "error") == 0) {
        stz_free(el);
        sess__end(&s->base, "stream error from peer");
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
    if (s->base.state == SESS_OPENING) {
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

    if (xs_feed(s->base.xs, data, len) < 0) {
        sess_comp_fail(s, XS_COND_INTERNAL_SERVER_ERROR, "framer failed");
        return;
    }
    while (s->base.state != SESS_CLOSED && xs_next(s->base.xs, &ev)) {
        switch (ev.kind) {
        case XS_EV_OPEN:
            if (s->step == SESS_COMP_WAIT_HEADER)
                sc_open(s, ev.el);
            stz_free(ev.el);
            break;
        case XS_EV_ELEM:
            sc_element(s, ev.el);
            break;
        case XS_EV_CLOSE:
            sess__end(&s->base, "stream closed by peer");
            break;
        case XS_EV_ERROR:
            sess_comp_fail(s, ev.cond, ev.text != NULL ? ev.text : "framer error");
            break;
        }
    }
}
