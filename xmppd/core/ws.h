/* ws.h: one connection of the WebSocket listener: its HTTP/1.1
 * request, the WebSocket upgrade (RFC 6455), WebSocket frames, XEP-0156
 * discovery, and the RFC 7395 framing adapter that lets the client session
 * behind it read and write an ordinary RFC 6120 stream.
 *
 * Pure: no socket, no clock, no libuv.  HTTP requests are parsed with
 * http_parser (libhttp-parser) and frames with wslay's event API, both over
 * the module's own buffers.  Bytes and time go in, an update comes out.
 *
 * THE SHAPE (raft_step's, raft/raft.h): every call that can make progress
 * (ws_input, ws_send, ws_ping, ws_close, ws_redirect, ws_tick) fills one
 * struct ws_update: the bytes to write to the connection, the stream bytes
 * for the session, and what happened.  One update per step rather than an
 * output buffer plus callbacks, because a step here produces two byte
 * streams (wire and session) and events whose order matters (feed the
 * stream bytes, then act on stream_error, then on close); an update carries
 * them together and nothing calls back into the caller, so nothing can
 * re-enter the module.  The update's pointers are owned by the ws_conn and
 * valid until the next call on it (or ws_free); the caller writes or copies
 * them first.  The driver loop:
 *
 *     struct ws_update up;
 *     ws_input(ws, data, len, now_ms, &up);
 *     1. write up.wire to the connection (always, even with up.close)
 *     2. if up.upgraded: create the client session (address: ws_client_addr)
 *     3. feed up.stream to the session (sess_input)
 *     4. if up.stream_error: fail the session with up.cond (its stream error
 *        comes back through ws_send, then its close through ws_close)
 *     5. if up.close: the connection is over: close the socket after the
 *        write, end the session as "connection lost" (if still open), free ws
 *     6. call ws_tick at or after up.deadline (ws_deadline)
 *     (and ws_done once up.wire and up.stream are written or copied)
 *
 * HTTP (RFC 9110/9112): one request per connection.  Every response other
 * than 101 carries Connection: close and the module closes after it (no
 * keep-alive: discovery is one GET per page load, and one request per
 * connection keeps the state machine and its limits simple).  Bounded:
 * request target (414), header bytes and header count (431, RFC 6585 §5),
 * time to a complete request (408).  GET/HEAD /.well-known/host-meta and
 * host-meta.json (XEP-0156 §3, with Access-Control-Allow-Origin: * so pages
 * on other origins can read them), the upgrade on the configured path, 404
 * for other paths, 405 for other methods, 400 for malformed requests; each
 * error with a one-line text body saying what was wrong.
 *
 * Upgrade (RFC 6455 §4.2): GET, HTTP/1.1, Host, Upgrade: websocket,
 * Connection: Upgrade, a Sec-WebSocket-Key of 16 bytes in base64 (400
 * otherwise), Sec-WebSocket-Version 13 (426 with Sec-WebSocket-Version: 13
 * otherwise, §4.4), subprotocol xmpp (RFC 7395 §3.1; 400 without it), an
 * Origin on the allow-list if there is one (403), no request body (400).
 * X-Forwarded-For is believed only when the TCP peer is a trusted proxy.
 *
 * Frames (wslay): client frames must be masked (RFC 6455 §5.1; else close
 * 1002); text messages only (binary: close 1003); fragments reassembled up
 * to max_message_bytes (beyond: close 1009); invalid UTF-8: close 1007; ping
 * answered with pong; the close handshake in both directions.
 *
 * RFC 7395 adapter, inbound: each text message must be one XML element,
 * parsable on its own (§3.3.3): <open/> becomes a stream header, <close/>
 * </stream:stream>, any other element passes unchanged (minus an XML
 * declaration or surrounding whitespace).  Outbound: what the session
 * writes (stream header, elements, </stream:stream>, in any chunking) is
 * split at element boundaries and sent one text message per element, each
 * made standalone (its namespace declared on it). */
#ifndef XMPPD_WS_H
#define XMPPD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xs.h"

#define WS_NO_DEADLINE UINT64_MAX
#define WS_NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define WS_REL_WEBSOCKET "urn:xmpp:alt-connections:websocket"

/* Limits and policy of a listener, shared by all its connections.  The
 * string arrays are borrowed, as is the struct itself: it must outlive the
 * connections made with it, and the caller may change urls between calls
 * (read at each discovery request).  Zero fields take the defaults. */
struct ws_config {
    const char *path;              /* WebSocket resource; default "/xmpp-websocket" */
    size_t max_request_line;       /* bytes of the request target; default 2048 (414) */
    size_t max_header_bytes;       /* request line, header fields and the blank line;
                                      default 8192 (431) */
    unsigned max_headers;          /* header fields; default 64 (431) */
    uint64_t handshake_timeout_ms; /* accept to a complete request; default 10000 (408) */
    uint64_t close_timeout_ms;     /* each wait of a closing handshake; default 5000 */
    size_t max_message_bytes;      /* one reassembled message: the stanza limit; default
                                      262144, xs's max_stanza_bytes (1009) */
    size_t max_out_bytes;          /* one element the session writes; default 1 MiB */
    size_t max_pending;            /* connections of the node before their HTTP
                                      response; default 256 (503); read by srv,
                                      which counts them (ws_busy) */
    const char *const *origins;    /* allowed Origin values (exact, ASCII case-
                                      insensitive; "*" any); none: any origin */
    size_t norigins;
    const char *const *trusted_proxies; /* IP addresses or CIDR ranges ("10.0.0.0/8",
                                           "2001:db8::/32") whose X-Forwarded-For
                                           counts (ws_proxy_valid) */
    size_t nproxies;
    const char *const *urls; /* host-meta: ws:// and wss:// URLs of the cluster's nodes */
    size_t nurls;
};

/* ws_proxy_valid tells whether spec may be an entry of trusted_proxies:
 * an IPv4 or IPv6 address, or a CIDR range of either (RFC 4632 §3.1). */
bool ws_proxy_valid(const char *spec);

/* ws_config_default fills c with the defaults above (no origins, proxies or
 * urls). */
void ws_config_default(struct ws_config *c);

enum ws_state {
    WS_HTTP,    /* reading the request */
    WS_OPEN,    /* upgraded: frames flow */
    WS_CLOSING, /* our close is under way (XMPP <close/>, then WebSocket close) */
    WS_CLOSED,  /* over: the caller closes the connection and frees ws */
};

/* What one step produced; see THE SHAPE above.  Owned by the ws_conn, valid
 * until the next call on it. */
struct ws_update {
    const char *wire; /* bytes to write to the connection, in order */
    size_t wire_len;
    const char *stream; /* RFC 6120 stream bytes for the session, in order */
    size_t stream_len;
    bool upgraded;     /* this step accepted the upgrade (101 is in wire) */
    bool stream_error; /* a message broke RFC 7395 framing: fail the session */
    enum xs_cond cond; /* with this condition (stream_error) */
    bool pong;         /* the peer answered our ping */
    bool close;        /* the connection is over (WS_CLOSED): write wire, close */
    const char *why;   /* static text for the log: why refused, failed or closed */
    uint64_t deadline; /* call ws_tick at or after this; WS_NO_DEADLINE */
};

struct ws_conn;

/* ws_new makes the state of a connection accepted at now_ms from peer_ip
 * (the TCP peer's address, without port; copied).  cfg is borrowed (see
 * struct ws_config).  0, XE_INVAL (peer_ip NULL) or XE_NOMEM. */
int ws_new(const struct ws_config *cfg, const char *peer_ip, uint64_t now_ms,
           struct ws_conn **out);
/* ws_free frees ws and everything it owns.  NULL is a no-op. */
void ws_free(struct ws_conn *ws);

/* ws_input takes len bytes read from the connection (borrowed).  Returns 0
 * (what happened is in *up, including refusals of bad input), XE_NOMEM, or
 * XE_STATE once ws is CLOSED (bytes ignored). */
int ws_input(struct ws_conn *ws, const void *data, size_t len, uint64_t now_ms,
             struct ws_update *up);

/* ws_send takes len bytes the session wrote to its RFC 6120 stream
 * (borrowed; any chunking: a header, elements, whitespace, the close tag)
 * and sends each complete element as one text message: the header as
 * <open/> (same from, id, version, xml:lang; RFC 7395 §3.4), elements made
 * standalone (§3.3.3), </stream:stream> as <close/> (§3.6), a stream error
 * then <close/> (§3.5).  A write that is only whitespace (a keep-alive,
 * which RFC 7395 §3.8 rules out) becomes a WebSocket ping.  Returns 0,
 * XE_STATE (not upgraded), XE_CLOSED (our <close/> or the WebSocket close
 * was sent: the session must stop writing), XE_XML (the session wrote
 * something that is not a stream: a bug; the caller closes) or XE_NOMEM. */
int ws_send(struct ws_conn *ws, const void *data, size_t len, uint64_t now_ms,
            struct ws_update *up);

/* ws_ping sends a WebSocket ping (keep-alive; the caller decides when).
 * Returns 0; XE_TIMEOUT when the previous ping has had no pong (nothing
 * sent: the peer is gone by the caller's rule); XE_STATE when not OPEN;
 * XE_NOMEM. */
int ws_ping(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up);

/* ws_close ends the connection from our side (the session is closed, or the
 * listener shuts down): RFC 7395 §3.6, the XMPP <close/> first if the
 * stream is open and ours is not sent yet, the peer's <close/> awaited
 * (bounded), then the WebSocket close with code (1000 normal, 1001 going
 * away, 1008 policy, 1011 internal; RFC 6455 §7.4.1) and reason (borrowed,
 * may be NULL; at most 123 bytes are sent), and the peer's close frame
 * awaited (bounded).  up->close comes when all is done.  Before the upgrade
 * it closes at once.  0, or XE_NOMEM; a second call does nothing. */
int ws_close(struct ws_conn *ws, uint16_t code, const char *reason, uint64_t now_ms,
             struct ws_update *up);

/* ws_redirect moves the client to another endpoint when this node drains:
 * <close see-other-uri='uri'/> (RFC 7395 §3.6.1; uri borrowed, e.g. another
 * node's wss URL; the client must not accept one of lower security), then
 * as ws_close(1001).  The session must not write any more (ws_send returns
 * XE_CLOSED): the caller closes it without its own stream close.  Before
 * the upgrade: 503 and close.  0, XE_INVAL (uri NULL or empty) or
 * XE_NOMEM. */
int ws_redirect(struct ws_conn *ws, const char *uri, uint64_t now_ms,
                struct ws_update *up);

/* ws_busy refuses a connection before (or while) its request is read
 * because too many are pending (the caller counts them, max_pending):
 * 503 with Retry-After and close.  0, XE_STATE (past the request) or
 * XE_NOMEM. */
int ws_busy(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up);

/* ws_tick runs the timers at now_ms: handshake timeout (408), the waits of
 * a closing handshake.  0 or XE_NOMEM. */
int ws_tick(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up);

/* ws_done says the caller has written or copied the last update's bytes:
 * the buffers behind them are freed (the next step makes new ones), so an
 * idle connection keeps none.  Optional: without it they are reused by
 * the next step.  The last update's pointers are invalid afterwards. */
void ws_done(struct ws_conn *ws);

/* ws_deadline returns when ws_tick next has work, or WS_NO_DEADLINE. */
uint64_t ws_deadline(const struct ws_conn *ws);

/* ws_state returns where the connection is. */
enum ws_state ws_state(const struct ws_conn *ws);

/* ws_client_addr returns the client's address (borrowed, valid while ws
 * lives): the TCP peer, or, when the peer is a trusted proxy and the
 * request carried a valid X-Forwarded-For, the nearest address in it that
 * is not a trusted proxy.  Known once the request's headers are read; the
 * peer's before.  For the log and for login throttling. */
const char *ws_client_addr(const struct ws_conn *ws);

struct ws_stats {
    unsigned http_status;       /* the response sent (101, 200, 4xx); 0: none yet */
    uint64_t msgs_in, msgs_out; /* text messages received and sent */
    uint64_t bytes_in, bytes_out;
    uint16_t close_sent;     /* WebSocket close code sent; 0: none */
    uint16_t close_received; /* close code received (1005: none in it); 0: none */
    bool parked;             /* idle: no frame state held (wslay freed) */
    uint64_t parks;          /* times the frame state was freed when idle */
};

void ws_get_stats(const struct ws_conn *ws, struct ws_stats *out);

#endif
