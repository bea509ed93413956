/* sess_c2s.c: the RFC 6120 client session: stream headers and features,
 * STARTTLS, resource binding, the session iq and the stanzas of a bound
 * client.  SASL is in sess_c2s_sasl.c. */
#include "sess_c2s.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "jid.h"
#include "precis.h"
#include "repl.h"
#include "sess_c2s_int.h"
#include "srv_int.h"

int sess_c2s_new(struct srv *srv, uint64_t conn, const char *peer, uint64_t now_ms,
                 struct sess_c2s **out)
{
    struct sess_c2s *c = calloc(1, sizeof *c);

    if (c == NULL)
        return XE_NOMEM;
    if (sess__init(&c->base, SESS_KIND_C2S, srv, conn, peer, now_ms) < 0) {
        free(c);
        return XE_NOMEM;
    }
    c->step = SESS_C2S_WAIT_HEADER;
    *out = c;
    return 0;
}

void sess_c2s_free(struct sess_c2s *c)
{
    if (c == NULL)
        return;
    c2s__sasl_clear(c);
    free(c->held);
    sess__fini(&c->base);
    stz_free(c->pres);
    for (unsigned i = 0; i < c->ndirected; i++)
        free(c->directed[i]);
    free(c->directed);
    free(c->user);
    free(c->resource);
    free(c->jid);
    free(c->peer_jid);
    free(c);
}

int c2s__write(struct sess_c2s *c, const char *data, size_t len)
{
    return sess__write(&c->base, data, len);
}

int c2s__write_stz(struct sess_c2s *c, const struct stz *st)
{
    struct buf *b = &c->base.srv->out;

    buf_reset(b);
    if (stz_serialize(st, STZ_NS_CLIENT, b) < 0)
        return XE_NOMEM;
    return c2s__write(c, b->data, b->len);
}

/* attr_escaped appends v escaped for an attribute value in single quotes
 * (a resourcepart may hold any of these characters). */
static int attr_escaped(struct buf *b, const char *v)
{
    int rc = 0;

    for (; rc == 0 && *v != '\0'; v++)
        switch (*v) {
        case '&':
            rc = buf_puts(b, "&amp;");
            break;
        case '<':
            rc = buf_puts(b, "&lt;");
            break;
        case '>':
            rc = buf_puts(b, "&gt;");
            break;
        case '\'':
            rc = buf_puts(b, "&apos;");
            break;
        case '"':
            rc = buf_puts(b, "&quot;");
            break;
        default:
            rc = buf_append(b, v, 1);
        }
    return rc;
}

/* RFC 6120 §4.7: from is our domain (prepared, needs no escaping), the id
 * is hex; version 1.0 (§4.7.5).  §4.7.2: when the client's header had a
 * 'from', ours has a 'to' with it (SHOULD; the client's JID as we
 * prepared it). */
int sess_c2s__header(struct sess_c2s *c, struct buf *b)
{
    int rc;

    c->base.header_sent = true;
    rc = buf_printf(b,
                    "<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' "
                    "from='%s' ",
                    STZ_NS_STREAMS, STZ_NS_CLIENT, c->base.srv->domain);
    if (rc == 0 && c->peer_jid != NULL)
        rc = buf_puts(b, "to='") || attr_escaped(b, c->peer_jid) || buf_puts(b, "' ")
                 ? XE_NOMEM
                 : 0;
    if (rc == 0)
        rc = buf_printf(b, "id='%s' version='1.0' xml:lang='en'>", c->base.stream_id);
    return rc;
}

/* c2s_peer_jid keeps the 'from' of the client's header (RFC 6120 §4.7.1:
 * its JID, usually bare), prepared, for the 'to' of ours; one that is not
 * a JID is left out (§4.7.2 asks for 'to' only for a valid 'from'). */
static int c2s_peer_jid(struct sess_c2s *c, const char *from)
{
    struct jid j = {0};
    struct buf f = {0};
    int rc = 0;

    free(c->peer_jid);
    c->peer_jid = NULL;
    if (from == NULL || jid_parse(from, &j) < 0)
        return 0;
    if (jid_format(&j, &f) < 0 || (c->peer_jid = buf_steal(&f)) == NULL)
        rc = XE_NOMEM;
    jid_clear(&j);
    buf_free(&f);
    return rc;
}

/* c2s_restart starts a new stream on the same connection (RFC 6120
 * §4.3.3): after TLS and after SASL success.  Whatever the framer held is
 * dropped: bytes sent before the restart are not part of the new stream
 * (and, before TLS, not protected by it). */
static int c2s_restart(struct sess_c2s *c)
{
    if (xs_reset(c->base.xs) < 0)
        return XE_NOMEM;
    c->base.header_sent = false;
    sess__new_stream_id(&c->base);
    c->step = SESS_C2S_WAIT_HEADER;
    return 0;
}

/* c2s_tls_offered tells whether STARTTLS is offered (not yet secured, and
 * the edge can do it; never inside a WebSocket, whose TLS is wss,
 * RFC 7395 §3.9). */
static bool c2s_tls_offered(const struct sess_c2s *c)
{
    return !c->secured && c->base.srv->env.starttls != NULL && c->base.ws == NULL;
}

/* c2s_features appends <stream:features> for the current stream (RFC 6120
 * §4.3.2): STARTTLS first (only it while TLS is required, §5.3.1), then
 * the SASL mechanisms and the XEP-0440 channel-binding types, and once
 * authenticated resource binding (§7) and the RFC 3921 session, optional
 * (draft-cridland-xmpp-session-01). */
static int c2s_features(struct sess_c2s *c, struct buf *b)
{
    struct srv *srv = c->base.srv;
    bool tls_first = !c->secured && srv->cfg.c2s_tls_required;
    int rc = buf_puts(b, "<stream:features>");

    if (rc == 0 && c2s_tls_offered(c))
        rc = buf_printf(b, "<starttls xmlns='%s'%s", C2S_NS_TLS,
                        srv->cfg.c2s_tls_required ? "><required/></starttls>" : "/>");
    if (rc == 0 && !c->authed && !tls_first)
        rc = c2s__sasl_features(c, b);
    if (rc == 0 && c->authed)
        rc = buf_printf(b, "<bind xmlns='%s'/><session xmlns='%s'><optional/></session>",
                        C2S_NS_BIND, C2S_NS_SESSION);
    if (rc == 0)
        rc = buf_puts(b, "</stream:features>");
    return rc;
}

/* c2s_open checks a stream header (RFC 6120 §4.7) and answers with ours and
 * the features. */
static void c2s_open(struct sess_c2s *c, const struct stz *el)
{
    struct srv *srv = c->base.srv;
    const char *to = stz_attr(el, "to"), *xmlns = stz_attr(el, "xmlns");
    const char *ver = stz_attr(el, "version");
    struct jid j = {0};
    struct buf *b = &srv->out;
    bool ours;

    if (c2s_peer_jid(c, stz_attr(el, "from")) < 0) {
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    /* §4.9.3.10: the content namespace must be jabber:client. */
    if (xmlns == NULL || strcmp(xmlns, STZ_NS_CLIENT) != 0) {
        sess_fail(&c->base, XS_COND_INVALID_NAMESPACE, "content namespace");
        return;
    }
    /* §4.9.3.6 host-unknown: 'to' is not the domain we serve. */
    ours = to != NULL && jid_parse(to, &j) == 0 && j.local == NULL &&
           j.resource == NULL && strcmp(j.domain, srv->domain) == 0;
    jid_clear(&j);
    if (!ours) {
        sess_fail(&c->base, XS_COND_HOST_UNKNOWN, "stream to an unknown host");
        return;
    }
    /* §4.7.5: no version (pre-1.0) or another major version: we negotiate
     * only XMPP 1.0 (§4.9.3.25). */
    if (ver == NULL || strncmp(ver, "1.", 2) != 0) {
        sess_fail(&c->base, XS_COND_UNSUPPORTED_VERSION, "stream version");
        return;
    }
    buf_reset(b);
    if (sess_c2s__header(c, b) < 0 || c2s_features(c, b) < 0) {
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    c->step = SESS_C2S_NEGOTIATE;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " client stream from %s (%s, %s)", c->base.conn,
            c->base.peer, c->secured ? "tls" : "plain", c->authed ? c->user : "no auth");
    c2s__write(c, b->data, b->len);
}

/* c2s_starttls answers <starttls/> (RFC 6120 §5.4.2): <proceed/>, then the
 * edge starts TLS; a listener without TLS, or STARTTLS not offered, gets
 * <failure/> and the stream closes (§5.4.2.2). */
static void c2s_starttls(struct sess_c2s *c)
{
    struct srv *srv = c->base.srv;
    static const char proceed[] = "<proceed xmlns='" C2S_NS_TLS "'/>";
    static const char failure[] = "<failure xmlns='" C2S_NS_TLS "'/></stream:stream>";

    if (c2s_tls_offered(c) && c2s__write(c, proceed, strlen(proceed)) == 0) {
        c->step = SESS_C2S_WAIT_TLS;
        if (xs_reset(c->base.xs) < 0) {
            sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
            return;
        }
        if (srv->env.starttls(srv->env.ud, c->base.conn) == 0) {
            SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " client starttls", c->base.conn);
            return;
        }
    }
    if (c->base.state == SESS_CLOSED)
        return;
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " client starttls failed (peer %s)", c->base.conn,
            c->base.peer);
    if (c2s__write(c, failure, strlen(failure)) == 0)
        srv__close(srv, &c->base);
}

void sess_c2s_secured(struct sess_c2s *c, const struct srv_tls_info *info)
{
    struct srv *srv = c->base.srv;

    if (c->base.state == SESS_CLOSED || c->secured)
        return;
    if (c->step == SESS_C2S_WAIT_TLS ||
        (c->step == SESS_C2S_WAIT_HEADER && !c->base.header_sent)) {
        c->tls = *info;
        c->secured = true;
        SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " client TLS up (%s)", c->base.conn,
                info->tls13 ? "1.3" : "1.2 or older");
        if (c->step == SESS_C2S_WAIT_TLS && c2s_restart(c) < 0)
            sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    SRV_LOG(srv, LOG_WARN, "c%" PRIu64 " TLS reported secured out of order, ignored",
            c->base.conn);
}

void c2s__sasl_success(struct sess_c2s *c)
{
    struct srv *srv = c->base.srv;

    c->authed = true;
    srv->stats.logins++;
    minute_add(&srv->logins_minute, srv->now_ms, 1);
    srv__thr_success(srv, c->base.peer, c->user);
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " client %s logged in from %s (%s)", c->base.conn,
            c->user, c->base.peer, c->mech);
    /* Authenticated: stanzas may be as large as configured now. */
    xs_set_limits(c->base.xs, &srv->cfg.limits);
    if (c2s_restart(c) < 0)
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
}

struct stz *c2s__iq_result(const struct stz *req, const char *from, const char *to)
{
    struct stz *iq = stz_new("iq", STZ_NS_CLIENT);
    const char *id = stz_attr(req, "id");

    if (iq == NULL)
        return NULL;
    if (stz_set_attr(iq, "type", "result") < 0 ||
        (id != NULL && stz_set_attr(iq, "id", id) < 0) ||
        (from != NULL && stz_set_attr(iq, "from", from) < 0) ||
        (to != NULL && stz_set_attr(iq, "to", to) < 0)) {
        stz_free(iq);
        return NULL;
    }
    return iq;
}

/* c2s_iq_error answers iq with a stanza error (RFC 6120 §8.3). */
static void c2s_iq_error(struct sess_c2s *c, const struct stz *iq, const char *type,
                         const char *cond)
{
    struct stz *r = stz_error_reply(iq, type, cond, NULL);

    if (r == NULL) {
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    c2s__write_stz(c, r);
    stz_free(r);
}

/* c2s_resource sets c->resource: the client's (prepared as a JID's
 * resourcepart, RFC 7622 §3.4: PRECIS OpaqueString) or, when it gave none,
 * a server-made one of 64 random bits (RFC 6120 §7.6).  XE_INVAL: the
 * client's cannot be used. */
static int c2s_resource(struct sess_c2s *c, const struct stz *bind)
{
    struct srv *srv = c->base.srv;
    struct stz *r = stz_child(bind, "resource", C2S_NS_BIND);
    char *text = r != NULL ? stz_text(r) : NULL;
    struct buf full = {0};
    struct jid j = {0};
    int rc = 0;

    if (r != NULL && text == NULL)
        return XE_NOMEM;
    if (text != NULL && *text != '\0') {
        char prep[1024];
        rc = precis_opaque(text, strlen(text), prep, sizeof prep);
        free(text);
        if (rc < 0)
            return XE_INVAL;
        if ((text = strdup(prep)) == NULL)
            return XE_NOMEM;
    }
    if (text == NULL || *text == '\0') {
        unsigned char rnd[8];
        free(text);
        text = malloc(2 * sizeof rnd + 1);
        if (text == NULL)
            return XE_NOMEM;
        srv->env.random(srv->env.ud, rnd, sizeof rnd);
        sodium_bin2hex(text, 2 * sizeof rnd + 1, rnd, sizeof rnd);
    }
    if (buf_printf(&full, "%s@%s/%s", c->user, srv->domain, text) < 0)
        rc = XE_NOMEM;
    else
        rc = jid_parse(full.data, &j);
    if (rc == 0 && (c->resource = strdup(j.resource)) == NULL)
        rc = XE_NOMEM;
    buf_reset(&full);
    if (rc == 0 && (jid_format(&j, &full) < 0 || (c->jid = buf_steal(&full)) == NULL))
        rc = XE_NOMEM;
    jid_clear(&j);
    buf_free(&full);
    free(text);
    return rc;
}

/* c2s_bind_refuse answers bind iq with resource-constraint (RFC 6120
 * §7.6.2.1, §8.3.3.18) and forgets the resource tried.  The stream stays:
 * the client may close another session, or try another node, and bind
 * again. */
static void c2s_bind_refuse(struct sess_c2s *c, const struct stz *iq)
{
    c->base.srv->stats.sessions_refused++;
    free(c->resource);
    free(c->jid);
    c->resource = c->jid = NULL;
    c2s_iq_error(c, iq, "wait", "resource-constraint");
}

/* c2s_bind binds a resource (RFC 6120 §7): a second session of the same
 * full JID is closed with conflict (§7.7.2.2, the new one wins). */
static void c2s_bind(struct sess_c2s *c, const struct stz *iq, const struct stz *bind)
{
    struct srv *srv = c->base.srv;
    struct stz *r, *b, *j;
    int rc = c2s_resource(c, bind);
    size_t n;

    if (rc == XE_INVAL) {
        /* §7.7.2.1: the resourcepart cannot be prepared. */
        c2s_iq_error(c, iq, "modify", "bad-request");
        return;
    }
    if (rc == 0 && !srv_cluster__room(srv, c->jid)) {
        /* The leader's routing table takes a bounded number of names
         * from each node; a session past it would be unreachable from
         * the other nodes.  The client may try another node (another SRV
         * target). */
        SRV_LOG(srv, LOG_WARN,
                "c%" PRIu64 " client %s bind refused from %s: this node holds the most "
                "sessions the cluster's routing table takes from one node",
                c->base.conn, c->jid, c->base.peer);
        c2s_bind_refuse(c, iq);
        return;
    }
    if (rc == 0 && srv->cfg.c2s_max_sessions != 0 &&
        (n = srv__c2s_sessions(srv, c->user, c->resource)) >= srv->cfg.c2s_max_sessions) {
        /* §7.6.2.1: the account reached its limit of simultaneous
         * resources (a bind of a full JID it holds replaces that one and
         * is not counted as new). */
        SRV_LOG(srv, LOG_INFO,
                "c%" PRIu64 " client %s bind refused from %s: %zu sessions, the limit "
                "(xmpp client max-sessions)",
                c->base.conn, c->jid, c->base.peer, n);
        c2s_bind_refuse(c, iq);
        return;
    }
    if (rc < 0 || srv__bind(srv, c) < 0) {
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    if (sess__enter(&c->base) < 0)
        return;
    SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " client %s bound from %s", c->base.conn, c->jid,
            c->base.peer);
    r = c2s__iq_result(iq, NULL, NULL);
    b = r != NULL ? stz_add_child(r, "bind", C2S_NS_BIND) : NULL;
    j = b != NULL ? stz_add_child(b, "jid", NULL) : NULL;
    if (j == NULL || stz_add_text(j, c->jid, strlen(c->jid)) < 0) {
        stz_free(r);
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    c2s__write_stz(c, r);
    stz_free(r);
}

/* c2s_iq_payload returns the payload of an iq set with exactly one child
 * named name in ns, or NULL. */
static const struct stz *c2s_iq_payload(const struct stz *st, const char *name,
                                        const char *ns)
{
    const char *type = stz_attr(st, "type");
    struct stz *p;

    /* (the attributes first: only an iq set's children are looked at) */
    if (strcmp(st->name, "iq") != 0 || type == NULL || strcmp(type, "set") != 0)
        return NULL;
    p = stz_first_element(st);
    if (p == NULL || stz_next_element(p) != NULL || strcmp(p->name, name) != 0 ||
        strcmp(p->ns, ns) != 0)
        return NULL;
    return p;
}

/* c2s_to_server tells whether st has no 'to' or is addressed to our
 * domain. */
static bool c2s_to_server(const struct sess_c2s *c, const struct stz *st)
{
    const char *to = stz_attr(st, "to");

    return to == NULL || strcmp(to, c->base.srv->domain) == 0;
}

/* c2s_stanza handles a stanza of an authenticated client (takes st). */
static void c2s_stanza(struct sess_c2s *c, struct stz *st)
{
    struct srv *srv = c->base.srv;
    const struct stz *p;
    char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];
    bool sub;

    /* A stanza to the server (bind, session, presence, RFC 6120 §10.3) is
     * looked into: the children of a lazily parsed one are built now, so
     * that out of memory is not taken for a missing child (stz.h); others
     * are routed on their top element alone. */
    if (c2s_to_server(c, st) && stz_expand(st) != 0) {
        if (c->base.state == SESS_READY)
            srv__nomem_reply(srv, &c->base, st);
        else /* nothing is delivered before bind: the stream tells */
            sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        stz_free(st);
        return;
    }
    if (c2s_to_server(c, st) && (p = c2s_iq_payload(st, "bind", C2S_NS_BIND)) != NULL) {
        if (c->base.state == SESS_READY)
            /* One resource per stream here: a second bind is refused
             * (RFC 6120 §8.3.3.10 not-allowed). */
            c2s_iq_error(c, st, "cancel", "not-allowed");
        else
            c2s_bind(c, st, p);
        stz_free(st);
        return;
    }
    if (c->base.state != SESS_READY) {
        /* §7.1: no stanzas before a resource is bound (§4.9.3.12). */
        stz_free(st);
        sess_fail(&c->base, XS_COND_NOT_AUTHORIZED, "stanza before bind");
        return;
    }
    if (c2s_to_server(c, st) && c2s_iq_payload(st, "session", C2S_NS_SESSION) != NULL) {
        /* RFC 3921 §3: establishing a session is a no-op now; an empty
         * result from the server. */
        struct stz *r = c2s__iq_result(st, srv->domain, NULL);
        if (r != NULL)
            c2s__write_stz(c, r);
        stz_free(r);
        stz_free(st);
        return;
    }
    /* RFC 6120 §8.1.2.1: the server stamps 'from' with the full JID,
     * whatever the client put there; a subscription stanza with the bare
     * JID (RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2), whatever it goes to:
     * an account's roster code stamps its own, a call bridge gets this. */
    sub = strcmp(st->name, "presence") == 0 && rt_subscription_type(stz_attr(st, "type"));
    if (sub)
        snprintf(bare, sizeof bare, "%.*s", (int)strcspn(c->jid, "/"), c->jid);
    if (stz_stamp_attr(st, "from", sub ? bare : c->jid) < 0) {
        stz_free(st);
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    if (rt_iq_invalid(st)) {
        /* Neither routed (no client could answer it) nor dropped unanswered:
         * bad-request (RFC 6120 §8.3.3.1: "an IQ stanza that includes an
         * unrecognized value of the 'type' attribute"). */
        SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " iq without a valid type or id refused",
                c->base.conn);
        c2s_iq_error(c, st, "modify", "bad-request");
        stz_free(st);
        return;
    }
    srv__c2s_directed(srv, c, st); /* RFC 6121 §4.6 bookkeeping */
    srv__route(srv, &c->base, st);
}

/* c2s_element dispatches one top-level element (takes el). */
static void c2s_element(struct sess_c2s *c, struct stz *el)
{
    const char *ns = el->ns != NULL ? el->ns : "";

    if (strcmp(ns, STZ_NS_STREAMS) == 0 && strcmp(el->name, "error") == 0) {
        stz_free(el);
        sess__end(&c->base, "stream error from peer");
        return;
    }
    if (strcmp(ns, C2S_NS_TLS) == 0 && strcmp(el->name, "starttls") == 0 &&
        c->step == SESS_C2S_NEGOTIATE && !c->authed) {
        stz_free(el);
        c2s_starttls(c);
        return;
    }
    if (strcmp(ns, C2S_NS_SASL) == 0 && !c->authed) {
        c2s__sasl_element(c, el);
        stz_free(el);
        return;
    }
    if (strcmp(ns, STZ_NS_CLIENT) == 0 && stz_is_stanza(el, STZ_NS_CLIENT)) {
        if (!c->authed || c->step == SESS_C2S_SASL) {
            /* RFC 6120 §4.9.3.12: stanzas before authentication. */
            stz_free(el);
            sess_fail(&c->base, XS_COND_NOT_AUTHORIZED, "stanza before authentication");
            return;
        }
        c2s_stanza(c, el);
        return;
    }
    {
        bool wrong_default = *ns == '\0' || strcmp(ns, STZ_NS_COMPONENT) == 0 ||
                             strcmp(ns, STZ_NS_SERVER) == 0;
        stz_free(el);
        /* §4.9.3.10: another content namespace; §4.9.3.24: an element
         * that has no place here. */
        sess_fail(&c->base,
                  wrong_default ? XS_COND_INVALID_NAMESPACE
                                : XS_COND_UNSUPPORTED_STANZA_TYPE,
                  wrong_default ? "content namespace" : "unexpected element");
    }
}

/* c2s_pump acts on the framer's events until none is left, the session
 * closed, TLS must start or a failure answer is held back. */
static void c2s_pump(struct sess_c2s *c)
{
    struct xs_event ev;

    while (c->base.state != SESS_CLOSED && c->step != SESS_C2S_WAIT_TLS &&
           c->held == NULL && xs_next(c->base.xs, &ev)) {
        switch (ev.kind) {
        case XS_EV_OPEN:
            if (c->step == SESS_C2S_WAIT_HEADER)
                c2s_open(c, ev.el);
            stz_free(ev.el);
            break;
        case XS_EV_ELEM:
            c2s_element(c, ev.el);
            break;
        case XS_EV_CLOSE:
            sess__end(&c->base, "stream closed by peer");
            break;
        case XS_EV_ERROR:
            sess_fail(&c->base, ev.cond, ev.text != NULL ? ev.text : "framer error");
            break;
        }
    }
}

void sess_c2s__tick(struct sess_c2s *c)
{
    struct srv *srv = c->base.srv;

    if (c->paused && srv->now_ms >= c->paused_until)
        srv__shape_resume(srv, c);
    if (c->held == NULL || srv->now_ms < c->held_until)
        return;
    c2s__sasl_release(c);
    c2s_pump(c);
}

uint64_t sess_c2s__deadline(const struct sess_c2s *c)
{
    uint64_t d = c->held != NULL ? c->held_until : UINT64_MAX;

    return c->paused && c->paused_until < d ? c->paused_until : d;
}

void sess_c2s_input(struct sess_c2s *c, const void *data, size_t len)
{
    /* After <proceed/> nothing may come before the TLS handshake (RFC 6120
     * §5.4.3.3); the edge reads TLS from here on, so bytes now were sent
     * in the clear: dropped, never parsed into the protected stream. */
    if (c->step == SESS_C2S_WAIT_TLS) {
        SRV_LOG(c->base.srv, LOG_DEBUG, "c%" PRIu64 " %zu bytes before TLS dropped",
                c->base.conn, len);
        return;
    }
    if (xs_feed(c->base.xs, data, len) < 0) {
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "framer failed");
        return;
    }
    /* While a failure answer is held back the input waits in the framer
     * (bounded by its pre-auth memory cap): pipelining attempts gains a
     * client nothing. */
    c2s_pump(c);
}
