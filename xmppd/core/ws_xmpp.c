/* ws_xmpp.c: the RFC 7395 framing adapter, both ways, so that the client
 * session behind a WebSocket reads and writes the same RFC 6120 stream as
 * on 5222.
 *
 * Inbound, each text message is parsed on its own with expat (a parser per
 * message: nothing stays allocated between messages of an idle
 * connection): it must be one element, with nothing but whitespace (and an
 * XML declaration) around it (§3.3.3).  <open/> becomes a stream header,
 * <close/> the closing tag; any other element goes to the session as the
 * exact bytes of the element.  DTDs, comments and processing instructions
 * are refused before expat expands anything (RFC 6120 §11.1).
 *
 * Outbound, the session's bytes are split into elements by an xs framer of
 * our own (xs.h), so writes may come in any chunking; each element is sent
 * standalone: a stanza with its default namespace declared, a stream-level
 * element with the stream prefix declared on it (§3.3.3). */
#include <limits.h>
#include <string.h>

#include <expat.h>

#include "err.h"
#include "stz.h"
#include "ws_int.h"

#define WS_SEP '\x1f' /* expat's namespace separator: never in a name or URI */
#define WS_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define WS_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define WS_CLOSE_EL "<close xmlns=\"" WS_NS_FRAMING "\" />"

/* ---- inbound ----------------------------------------------------------- */

enum ws_root { WS_ROOT_NONE, WS_ROOT_OPEN, WS_ROOT_CLOSE, WS_ROOT_OTHER };

struct ws_msg {
    XML_Parser p;
    enum ws_root root;
    unsigned depth;
    XML_Index start, end; /* the root element's bytes */
    bool bad;
    enum xs_cond cond;
    const char *why;
    struct buf hdr; /* <open/> as a stream header */
    bool nomem;
};

static void ws_msg_fail(struct ws_msg *m, enum xs_cond cond, const char *why)
{
    if (!m->bad) {
        m->bad = true;
        m->cond = cond;
        m->why = why;
    }
    XML_StopParser(m->p, XML_FALSE);
}

/* ws_is tells whether expat's name "uri<SEP>local" is ns + local. */
static bool ws_is(const char *name, const char *ns, const char *local)
{
    size_t n = strlen(ns);

    return strncmp(name, ns, n) == 0 && name[n] == WS_SEP &&
           strcmp(name + n + 1, local) == 0;
}

/* ws_open_header writes the stream header equivalent to <open/> (RFC 7395
 * §3.3.2: the attributes are those of the stream header, RFC 6120 §4.7).
 * The content namespace is jabber:client: this listener serves clients. */
static int ws_open_header(struct ws_msg *m, const XML_Char **atts)
{
    static const char *const keep[] = {"to", "from", "id", "version"};
    struct buf *b = &m->hdr;
    int rc = buf_puts(b, "<stream:stream xmlns='" STZ_NS_CLIENT
                         "' xmlns:stream='" STZ_NS_STREAMS "'");

    for (size_t i = 0; atts[i] != NULL && rc == 0; i += 2) {
        const char *name = NULL;

        for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
            if (strcmp(atts[i], keep[k]) == 0)
                name = keep[k];
        if (name == NULL && ws_is(atts[i], STZ_NS_XML, "lang"))
            name = "xml:lang";
        if (name == NULL)
            continue; /* RFC 6120 §4.7: no other attributes on a stream */
        rc = buf_printf(b, " %s='", name);
        if (rc == 0)
            rc = ws__esc(b, atts[i + 1], strlen(atts[i + 1]));
        if (rc == 0)
            rc = buf_puts(b, "'");
    }
    if (rc == 0)
        rc = buf_puts(b, ">");
    return rc;
}

static void XMLCALL ws_on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct ws_msg *m = ud;

    if (m->depth++ > 0) {
        if (m->root != WS_ROOT_OTHER)
            ws_msg_fail(m, XS_COND_INVALID_XML, "<open/> and <close/> are empty");
        return;
    }
    m->start = XML_GetCurrentByteIndex(m->p);
    if (ws_is(name, WS_NS_FRAMING, "open")) {
        m->root = WS_ROOT_OPEN;
        if (ws_open_header(m, atts) < 0) {
            m->nomem = true;
            XML_StopParser(m->p, XML_FALSE);
        }
    } else if (ws_is(name, WS_NS_FRAMING, "close")) {
        m->root = WS_ROOT_CLOSE;
    } else {
        m->root = WS_ROOT_OTHER;
    }
}

static void XMLCALL ws_on_end(void *ud, const XML_Char *name)
{
    struct ws_msg *m = ud;

    if (--m->depth == 0)
        m->end = XML_GetCurrentByteIndex(m->p) + XML_GetCurrentByteCount(m->p);
}

static void XMLCALL ws_on_text(void *ud, const XML_Char *s, int len)
{
    struct ws_msg *m = ud;

    if (m->root == WS_ROOT_OTHER)
        return;
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            ws_msg_fail(m, XS_COND_INVALID_XML, "<open/> and <close/> are empty");
            return;
        }
}

/* RFC 6120 §11.1: no DTD (so no entity can be declared, let alone
 * expanded: refused at its start), no comments, no processing
 * instructions. */
static void XMLCALL ws_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                  const XML_Char *pubid, int has_internal_subset)
{
    ws_msg_fail(ud, XS_COND_RESTRICTED_XML, "DTD in a message");
}

static void XMLCALL ws_on_comment(void *ud, const XML_Char *data)
{
    ws_msg_fail(ud, XS_COND_RESTRICTED_XML, "comment in a message");
}

static void XMLCALL ws_on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    ws_msg_fail(ud, XS_COND_RESTRICTED_XML, "processing instruction in a message");
}

static void XMLCALL ws_on_entity(void *ud, const XML_Char *name, int is_param,
                                 const XML_Char *value, int vlen, const XML_Char *base,
                                 const XML_Char *sysid, const XML_Char *pubid,
                                 const XML_Char *notation)
{
    ws_msg_fail(ud, XS_COND_RESTRICTED_XML, "entity declaration in a message");
}

static bool ws_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* ws_parse_msg parses one message standalone into m. */
static int ws_parse_msg(struct ws_msg *m, const char *msg, size_t len)
{
    /* UTF-8 forced: wslay checked the text is UTF-8 (RFC 6455 §5.6), and
     * an XML declaration must not make expat read it otherwise. */
    m->p = XML_ParserCreateNS("UTF-8", WS_SEP);
    if (m->p == NULL)
        return XE_NOMEM;
    XML_SetUserData(m->p, m);
    XML_SetElementHandler(m->p, ws_on_start, ws_on_end);
    XML_SetCharacterDataHandler(m->p, ws_on_text);
    XML_SetStartDoctypeDeclHandler(m->p, ws_on_doctype);
    XML_SetEntityDeclHandler(m->p, ws_on_entity);
    XML_SetCommentHandler(m->p, ws_on_comment);
    XML_SetProcessingInstructionHandler(m->p, ws_on_pi);
    XML_SetParamEntityParsing(m->p, XML_PARAM_ENTITY_PARSING_NEVER);
    if (len > (size_t)INT_MAX) {
        ws_msg_fail(m, XS_COND_POLICY_VIOLATION, "message too large");
    } else if (XML_Parse(m->p, msg, (int)len, XML_TRUE) != XML_STATUS_OK && !m->bad &&
               !m->nomem) {
        enum XML_Error e = XML_GetErrorCode(m->p);

        m->bad = true;
        m->why = "not one well-formed XML element (RFC 7395 3.3.3)";
        m->cond = e == XML_ERROR_NO_MEMORY          ? XS_COND_RESOURCE_CONSTRAINT
                  : e == XML_ERROR_UNDEFINED_ENTITY ? XS_COND_RESTRICTED_XML
                                                    : XS_COND_NOT_WELL_FORMED;
        m->nomem = e == XML_ERROR_NO_MEMORY;
    }
    XML_ParserFree(m->p);
    m->p = NULL;
    return m->nomem ? XE_NOMEM : 0;
}

/* ws_in_close handles the client's <close/> (RFC 7395 §3.6). */
static int ws_in_close(struct ws_conn *ws)
{
    bool was_open = ws->in_open;

    ws->in_closed = true;
    ws->in_open = false;
    if (ws->closing == WS_CL_WAIT_XMPP) {
        /* It answers ours: the stream is closed, now the WebSocket. */
        ws->closing = WS_CL_NONE;
        return ws__close_frame(ws, ws->close_code);
    }
    if (ws->closing != WS_CL_NONE)
        return 0;
    if (!was_open) {
        /* A close before any stream: no session to tell, just close. */
        ws->up->why = "<close/> before <open/>";
        return ws__close_frame(ws, WSLAY_CODE_NORMAL_CLOSURE);
    }
    return buf_puts(&ws->stream, "</stream:stream>");
}

int ws__xmpp_in(struct ws_conn *ws, const char *msg, size_t len)
{
    struct ws_msg m = {0};
    int rc;

    if (ws->in_failed || ws->in_closed)
        return 0; /* the stream is over: nothing more goes to the session */
    /* A blank message carries no element; some clients send one as a
     * keep-alive, and there is nothing in it to refuse. */
    if (ws_blank(msg, len))
        return 0;
    rc = ws_parse_msg(&m, msg, len);
    if (rc < 0)
        goto out;
    /* Closing from our side: the session is gone, only the client's
     * <close/> still matters (it answers ours). */
    if (ws->closing != WS_CL_NONE && (m.bad || m.root != WS_ROOT_CLOSE))
        goto out;
    if (m.bad) {
        ws__fail_stream(ws, m.cond, m.why);
        goto out;
    }
    switch (m.root) {
    case WS_ROOT_OPEN:
        /* RFC 7395 §3.4: no second stream on a connection, except the
         * restart that RFC 6120 §4.3.3 mandates after SASL success. */
        if (ws->in_open && !ws->restart_expected) {
            ws__fail_stream(ws, XS_COND_BAD_FORMAT, "second <open/> (RFC 7395 3.4)");
            break;
        }
        ws->in_open = true;
        ws->restart_expected = false;
        rc = buf_append(&ws->stream, m.hdr.data, m.hdr.len);
        break;
    case WS_ROOT_CLOSE:
        rc = ws_in_close(ws);
        break;
    default:
        /* RFC 7395 §3.4: the first message is <open/>. */
        if (!ws->in_open) {
            ws__fail_stream(ws, XS_COND_INVALID_NAMESPACE,
                            "first message not <open/> (RFC 7395 3.4)");
            break;
        }
        rc = buf_append(&ws->stream, msg + m.start, (size_t)(m.end - m.start));
        break;
    }
out:
    buf_free(&m.hdr);
    return rc;
}

/* ---- outbound ---------------------------------------------------------- */

/* ws_put_attr appends name='value' (escaped), with a leading space. */
static int ws_put_attr(struct buf *b, const char *name, const char *v)
{
    int rc = buf_printf(b, " %s=\"", name);

    if (rc == 0)
        rc = ws__esc(b, v, strlen(v));
    return rc == 0 ? buf_puts(b, "\"") : rc;
}

/* ws_open_el writes our stream header as <open/> (RFC 7395 §3.4): from, id,
 * version and xml:lang carried over. */
static int ws_open_el(const struct stz *el, struct buf *b)
{
    static const char *const keep[] = {"from", "to", "id", "version"};
    int rc = buf_puts(b, "<open xmlns=\"" WS_NS_FRAMING "\"");

    for (size_t i = 0; i < sizeof keep / sizeof keep[0] && rc == 0; i++) {
        const char *v = stz_attr(el, keep[i]);
        if (v != NULL)
            rc = ws_put_attr(b, keep[i], v);
    }
    for (size_t i = 0; i < el->nattrs && rc == 0; i++) {
        const struct stz_attr *a = &el->attrs[i];
        if (a->ns != NULL && strcmp(a->ns, STZ_NS_XML) == 0 &&
            strcmp(a->name, "lang") == 0)
            rc = ws_put_attr(b, "xml:lang", a->value);
    }
    return rc == 0 ? buf_puts(b, " />") : rc;
}

/* ws_stream_el writes a stream-level element (stream:features,
 * stream:error) standalone: the stream prefix declared on it, as in RFC
 * 7395's examples; its children are in their own namespaces. */
static int ws_stream_el(const struct stz *el, struct buf *b)
{
    int rc = buf_printf(b, "<stream:%s xmlns:stream='" STZ_NS_STREAMS "'", el->name);

    for (size_t i = 0; i < el->nattrs && rc == 0; i++) {
        const struct stz_attr *a = &el->attrs[i];

        if (a->ns == NULL && strncmp(a->name, "xmlns", 5) != 0)
            rc = ws_put_attr(b, a->name, a->value);
        else if (a->ns != NULL && strcmp(a->ns, STZ_NS_XML) == 0 &&
                 (rc = buf_printf(b, " xml:%s=\"", a->name)) == 0 &&
                 (rc = ws__esc(b, a->value, strlen(a->value))) == 0)
            rc = buf_puts(b, "\"");
    }
    if (rc != 0)
        return rc;
    if (el->first_child == NULL)
        return buf_puts(b, "/>");
    rc = buf_puts(b, ">");
    for (const struct stz *c = el->first_child; c != NULL && rc == 0; c = c->next)
        rc = stz_serialize(c, "", b); /* no default namespace is in scope */
    return rc == 0 ? buf_printf(b, "</stream:%s>", el->name) : rc;
}

int ws__xmpp_close(struct ws_conn *ws, const char *see_other_uri)
{
    struct buf b = {0};
    int rc;

    if (ws->out_closed)
        return XE_CLOSED;
    ws->out_closed = true;
    if (see_other_uri == NULL)
        return ws__send_text(ws, WS_CLOSE_EL, strlen(WS_CLOSE_EL));
    /* RFC 7395 §3.6.1: the endpoint to move to. */
    rc = buf_puts(&b, "<close xmlns=\"" WS_NS_FRAMING "\"");
    if (rc == 0)
        rc = ws_put_attr(&b, "see-other-uri", see_other_uri);
    if (rc == 0)
        rc = buf_puts(&b, " />");
    if (rc == 0)
        rc = ws__send_text(ws, b.data, b.len);
    buf_free(&b);
    return rc;
}

/* ws_out_el sends one element the session wrote. */
static int ws_out_el(struct ws_conn *ws, const struct stz *el)
{
    struct buf b = {0};
    int rc;

    if (strcmp(el->ns, STZ_NS_STREAMS) == 0) {
        rc = ws_stream_el(el, &b);
    } else {
        /* The session wrote it inside a stream whose default namespace is
         * jabber:client; alone, it declares its namespace itself. */
        rc = stz_serialize(el, "", &b);
        /* RFC 6120 §4.3.3: after SASL success (or TLS proceed) both
         * streams restart; the client's next <open/> is the new one. */
        if ((strcmp(el->ns, WS_NS_SASL) == 0 && strcmp(el->name, "success") == 0) ||
            (strcmp(el->ns, WS_NS_TLS) == 0 && strcmp(el->name, "proceed") == 0))
            ws->restart_expected = true;
    }
    if (rc == 0)
        rc = ws__send_text(ws, b.data, b.len);
    buf_free(&b);
    return rc;
}

/* ws_starts_header tells whether a write begins a new stream (an XML
 * declaration or a stream header after optional whitespace). */
static bool ws_starts_header(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return (len - i >= 5 && memcmp(s + i, "<?xml", 5) == 0) ||
           (len - i >= 14 && memcmp(s + i, "<stream:stream", 14) == 0);
}

int ws__xmpp_out(struct ws_conn *ws, const char *data, size_t len)
{
    struct xs_event ev;
    int rc = 0;

    /* RFC 7395 §3.8: no whitespace keep-alives over WebSocket; a blank
     * write (the session's keep-alive) becomes a ping. */
    if (ws_blank(data, len))
        return len > 0 ? ws__send_ping(ws, false) : 0;
    /* The stream's end with no stream begun (a session that never wrote
     * its header): the framer would refuse it, the client needs it. */
    if (!ws->out_open && len >= 16 && ws_blank(data, len - 16) &&
        memcmp(data + len - 16, "</stream:stream>", 16) == 0)
        return ws__xmpp_close(ws, NULL);
    /* Each session write is whole elements (sess.c, sess_c2s.c), so a new
     * header (the restart after SASL success) comes at an element
     * boundary: a fresh framer reads the new stream. */
    if (ws_starts_header(data, len) && (rc = xs_reset(ws->xs_out)) < 0)
        return rc;
    if (xs_feed(ws->xs_out, data, len) < 0)
        return XE_XML;
    while (xs_next(ws->xs_out, &ev)) {
        if (rc < 0) {
            stz_free(ev.el);
            continue;
        }
        switch (ev.kind) {
        case XS_EV_OPEN: {
            struct buf b = {0};
            rc = ws_open_el(ev.el, &b);
            if (rc == 0)
                rc = ws__send_text(ws, b.data, b.len);
            if (rc == 0)
                ws->out_open = true;
            buf_free(&b);
            break;
        }
        case XS_EV_ELEM:
            rc = ws_out_el(ws, ev.el);
            break;
        case XS_EV_CLOSE:
            rc = ws__xmpp_close(ws, NULL);
            break;
        case XS_EV_ERROR:
            rc = XE_XML;
            break;
        }
        stz_free(ev.el);
    }
    return rc;
}
