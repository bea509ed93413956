/* xs.h: the XML stream framer (RFC 6120 §4): bytes in, stream events out.
 *
 * An incremental expat parser that turns a byte stream, in any chunking (one
 * byte at a time works), into: the stream header, complete top-level
 * elements (stanzas and stream-level elements, as struct stz trees), the
 * stream close, or one error.  It owns no socket: the session feeds it bytes
 * and pulls events.
 *
 * Restrictions (RFC 6120 §11.1): no DTD, no entity declarations or
 * references beyond the five predefined ones, no processing instructions, no
 * comments: each yields XS_COND_RESTRICTED_XML; a billion-laughs or XXE
 * document therefore fails on its DOCTYPE before it can grow anything.  The
 * stream root must be {http://etherx.jabber.org/streams}stream
 * (XS_COND_INVALID_NAMESPACE otherwise).  Limits give XS_COND_POLICY_VIOLATION
 * and are checked while parsing, so memory stays bounded by them: the bytes
 * of one unit (max_stanza_bytes), and the memory of the stream
 * (max_mem_bytes): expat's allocations plus the element trees the framer
 * built and the receiver has not pulled yet, counted as each element,
 * attribute and piece of text is added (a stanza of many tiny children,
 * <a/><a/>..., costs some 40 times its bytes as a tree).
 *
 * Lifetime: after an XS_EV_ERROR or XS_EV_CLOSE event no further events come
 * and xs_feed returns XE_STATE. */
#ifndef XMPPD_XS_H
#define XMPPD_XS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "stz.h"

/* Stream error conditions, RFC 6120 §4.9.3. */
#define XS_CONDS(X)                                                                      \
    X(XS_COND_BAD_FORMAT, "bad-format")                                                  \
    X(XS_COND_BAD_NAMESPACE_PREFIX, "bad-namespace-prefix")                              \
    X(XS_COND_CONFLICT, "conflict")                                                      \
    X(XS_COND_CONNECTION_TIMEOUT, "connection-timeout")                                  \
    X(XS_COND_HOST_GONE, "host-gone")                                                    \
    X(XS_COND_HOST_UNKNOWN, "host-unknown")                                              \
    X(XS_COND_IMPROPER_ADDRESSING, "improper-addressing")                                \
    X(XS_COND_INTERNAL_SERVER_ERROR, "internal-server-error")                            \
    X(XS_COND_INVALID_FROM, "invalid-from")                                              \
    X(XS_COND_INVALID_NAMESPACE, "invalid-namespace")                                    \
    X(XS_COND_INVALID_XML, "invalid-xml")                                                \
    X(XS_COND_NOT_AUTHORIZED, "not-authorized")                                          \
    X(XS_COND_NOT_WELL_FORMED, "not-well-formed")                                        \
    X(XS_COND_POLICY_VIOLATION, "policy-violation")                                      \
    X(XS_COND_REMOTE_CONNECTION_FAILED, "remote-connection-failed")                      \
    X(XS_COND_RESET, "reset")                                                            \
    X(XS_COND_RESOURCE_CONSTRAINT, "resource-constraint")                                \
    X(XS_COND_RESTRICTED_XML, "restricted-xml")                                          \
    X(XS_COND_SEE_OTHER_HOST, "see-other-host")                                          \
    X(XS_COND_SYSTEM_SHUTDOWN, "system-shutdown")                                        \
    X(XS_COND_UNDEFINED_CONDITION, "undefined-condition")                                \
    X(XS_COND_UNSUPPORTED_ENCODING, "unsupported-encoding")                              \
    X(XS_COND_UNSUPPORTED_FEATURE, "unsupported-feature")                                \
    X(XS_COND_UNSUPPORTED_STANZA_TYPE, "unsupported-stanza-type")                        \
    X(XS_COND_UNSUPPORTED_VERSION, "unsupported-version")

enum xs_cond {
#define XS_COND_ENUM_(name, str) name,
    XS_CONDS(XS_COND_ENUM_)
#undef XS_COND_ENUM_
        XS_COND_COUNT
};

/* xs_cond_name returns the element name of cond ("not-well-formed"). */
const char *xs_cond_name(enum xs_cond cond);

struct xs_limits {
    size_t max_stanza_bytes; /* raw bytes of one top-level element; default 256 KiB */
    unsigned max_depth;      /* element nesting below the stream root; default 32 */
    unsigned max_attrs;      /* attributes (incl. xmlns) on one element; default 64 */
    size_t max_mem_bytes;    /* expat's memory plus unpulled trees; 0: the
                                default XS_MEM_CAP(max_stanza_bytes) */
};

/* The default memory cap of a stream: a tree of ordinary stanzas costs up to
 * about 10 times their bytes, expat's buffer up to twice a stanza, and
 * expat itself some 16 KiB. */
#define XS_MEM_CAP(max_stanza) ((max_stanza)*16 + (size_t)64 * 1024)

/* xs_limits_default fills l with the defaults above (max_mem_bytes 0). */
void xs_limits_default(struct xs_limits *l);

/* The stream header, its XML declaration and any whitespace before it may
 * take at most this many bytes (or max_stanza_bytes if smaller). */
#define XS_MAX_HEADER_BYTES 8192

/* XS_EV_OPEN: el is the root element as received: name "stream", ns
 * STZ_NS_STREAMS, its attributes (to, from, id, version, unqualified;
 * xml:lang as ns STZ_NS_XML, name "lang") and no children.  The content
 * namespace, i.e. the default namespace the root declares (xmlns='...', e.g.
 * jabber:component:accept; RFC 6120 §4.8.2), is added as the pseudo
 * attribute "xmlns": stz_attr(el, "xmlns") is that URI, or NULL when the root
 * declares no default namespace ("" for xmlns='').  Namespace processing
 * never reports real xmlns attributes, so the name cannot clash, and
 * stz_serialize never writes unqualified attributes named xmlns or xmlns:*.
 * Prefixed declarations on the root (xmlns:stream, xmlns:db) are not
 * reported.
 *
 * Character data between top-level elements: whitespace is allowed (RFC 6120
 * §11.7, keep-alives); anything else is XS_COND_BAD_FORMAT (§4.9.3.1).  The
 * one place where chunking shows: such text directly followed by malformed
 * XML (e.g. "junk]]>") ends as bad-format or as the XML error, depending on
 * whether expat reported the text before it met the error.
 * Undefined entity references are XS_COND_RESTRICTED_XML, an encoding other
 * than UTF-8 in the XML declaration XS_COND_UNSUPPORTED_ENCODING (§11.6),
 * other XML and namespace errors (invalid UTF-8, unbound prefixes)
 * XS_COND_NOT_WELL_FORMED, out of memory XS_COND_RESOURCE_CONSTRAINT. */
enum xs_event_kind {
    XS_EV_OPEN,  /* stream header; el = the <stream:stream> element, no children */
    XS_EV_ELEM,  /* a complete top-level element (stanza or stream-level) */
    XS_EV_CLOSE, /* </stream:stream> received */
    XS_EV_ERROR, /* cond/text say why; the stream must be closed */
};

struct xs_event {
    enum xs_event_kind kind;
    struct stz *el;    /* OPEN, ELEM: owned by the receiver of the event */
    enum xs_cond cond; /* ERROR */
    const char *text;  /* ERROR: static human-readable detail, may be NULL */
};

struct xs;

/* xs_new creates a framer with limits (NULL for defaults; zero fields also
 * take their default).  0/XE_NOMEM. */
int xs_new(const struct xs_limits *limits, struct xs **out);
/* xs_new_salted does the same with salt as expat's hash salt for every
 * parser of the stream (XML_SetHashSalt; 0: expat draws its own for each
 * parser, a system call each). */
int xs_new_salted(const struct xs_limits *limits, unsigned long salt, struct xs **out);
/* xs_free frees the framer and any queued, unpulled events. */
void xs_free(struct xs *xs);

/* xs_feed parses len bytes and queues the events they complete.  Returns 0,
 * or XE_STATE after the stream ended or failed.  Errors in the input are not
 * return codes: they arrive as an XS_EV_ERROR event after any events that
 * the preceding bytes completed. */
int xs_feed(struct xs *xs, const void *data, size_t len);

/* xs_next pops the next queued event into *ev; false when none is queued. */
bool xs_next(struct xs *xs, struct xs_event *ev);

/* xs_set_limits replaces the framer's limits mid-stream (a session raises
 * them once its peer authenticated; zero fields take their defaults, as in
 * xs_new), at once: call it between top-level elements (the byte limit
 * counts from the start of the element being received).  Lowering
 * max_mem_bytes below what is held fails the stream at the next
 * allocation. */
void xs_set_limits(struct xs *xs, const struct xs_limits *limits);

/* xs_set_eager makes the framer build every top-level element's tree in
 * full (eager true) instead of lazily (the default, xs.c: only the top
 * element of a stanza whose bytes are kept, its children on first access,
 * stz.h).  For tests that compare the two; takes effect from the next
 * top-level element. */
void xs_set_eager(struct xs *xs, bool eager);

/* xs_reset starts a fresh stream on the same framer, dropping any parser
 * state and queued events (RFC 6120 §4.3.3: the stream restarts after
 * STARTTLS and SASL success).  0/XE_NOMEM. */
int xs_reset(struct xs *xs);

/* xs_parser_mem returns the bytes expat currently holds for this framer and
 * the most it held since xs_new or the last xs_reset (for tests and stats).
 * xs_tree_mem returns the bytes of the element trees built and not pulled
 * yet (stz_node_mem of every node), and the most since xs_new or
 * xs_reset.  Their sum is capped by max_mem_bytes: beyond it the stream
 * fails with policy-violation (RFC 6120 §4.9.3.14). */
void xs_parser_mem(const struct xs *xs, size_t *cur, size_t *peak);
void xs_tree_mem(const struct xs *xs, size_t *cur, size_t *peak);

/* xs_write_error appends a stream error, per RFC 6120 §4.9:
 * <stream:error><cond xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>
 * [<text ...>text</text>]</stream:error>, followed by </stream:stream>.  The
 * caller then closes the connection.  text may be NULL. */
int xs_write_error(struct buf *out, enum xs_cond cond, const char *text);

#endif
