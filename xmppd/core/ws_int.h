/* ws_int.h: what the parts of the WebSocket module share (ws.c: the
 * connection, its steps and frames; ws_http.c: the HTTP request and the
 * responses; ws_xmpp.c: the RFC 7395 adapter).  Not for other modules. */
#ifndef XMPPD_WS_INT_H
#define XMPPD_WS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <wslay/wslay.h>

#include "buf.h"
#include "ws.h"
#include "xs.h"

#define WS_ADDR_MAX 64 /* an IPv6 address in text, with room */

/* The request being read (WS_HTTP only; freed after the response). */
struct ws_req {
    http_parser hp;
    size_t consumed;   /* bytes given to the parser so far */
    unsigned nheaders; /* header fields seen */
    bool in_field;     /* the parser is in a header field name */
    bool in_value;     /* the parser is in a header value */
    bool nomem;        /* a callback ran out of memory */
    bool done;         /* on_message_complete came */
    bool body;         /* the request announced a body */
    unsigned refuse;   /* a rule broke while parsing: 400, 414 or 431 */
    const char *why;   /* static: what broke (400) */
    bool bol;          /* the last byte given to the parser ended a line */
    unsigned lines;    /* lines ended so far (the request line is the first) */
    struct buf url;    /* the request target */
    struct buf field;  /* the header field being read */
    struct buf value;  /* its value */
    struct buf host, upgrade, connection, key, version, protocol, origin, xff;
    unsigned nkey, nversion, nhost; /* how many times each came */
};

/* Where the client's bytes stand in RFC 6455 §5.2 framing, followed
 * beside wslay (whose state is opaque): between frames and outside a
 * fragmented message, wslay holds nothing that must survive (ws.c frees
 * its contexts then). */
struct ws_fscan {
    uint8_t hdr[14];       /* the header being read (2 to 14 bytes) */
    uint8_t hdr_len;       /* bytes of it seen; 0: between frames */
    uint64_t payload_left; /* payload bytes of the current frame still due */
    bool frag;             /* a data message's last frame (FIN) has not come */
};

enum ws_closing {
    WS_CL_NONE,
    WS_CL_WAIT_XMPP, /* our <close/> is out: awaiting the peer's (RFC 7395 §3.6) */
    WS_CL_WAIT_WS,   /* our close frame is out: awaiting the peer's (RFC 6455 §7) */
};

struct ws_conn {
    const struct ws_config *cfg; /* borrowed: arrays and urls */
    struct ws_config lim;        /* cfg with defaults applied (numbers, path) */
    enum ws_state state;
    char peer[WS_ADDR_MAX];   /* the TCP peer */
    char client[WS_ADDR_MAX]; /* the client, after X-Forwarded-For */
    uint64_t now_ms;          /* of the current step */
    uint64_t deadline;
    struct ws_stats stats;

    /* the update of the current step */
    struct buf wire;
    struct buf stream;
    struct ws_update *up;

    struct ws_req *req; /* WS_HTTP: owned */

    /* WebSocket (after the upgrade) */
    wslay_event_context_ptr wsl; /* owned; NULL while parked (idle) */
    struct ws_fscan fscan;       /* the client's frames, as wslay reads them */
    struct buf ctl;              /* a control frame gathered whole (ws.c) */
    const uint8_t *in;           /* input being handed to wslay */
    size_t in_len;
    bool in_recv;      /* inside wslay_event_recv: queue, do not send */
    bool ping_out;     /* a ping has had no pong yet */
    uint32_t ping_seq; /* payload of our pings */
    enum ws_closing closing;
    uint16_t close_code;
    char close_reason[124]; /* RFC 6455 §5.5: 125 bytes of payload, 2 for the code */

    /* RFC 7395 */
    bool in_open;          /* the client's stream is open */
    bool in_closed;        /* the client sent <close/> */
    bool in_failed;        /* a framing error was reported: ignore the rest */
    bool restart_expected; /* we sent SASL <success/>: a new <open/> is due */
    bool out_open;         /* our header went out as <open/> */
    bool out_closed;       /* our <close/> went out */
    struct xs *xs_out;     /* splits the session's output into elements */
};

/* ws__finish ends the connection (WS_CLOSED, up->close): nothing more is
 * read, sent or timed.  why (static) goes to up->why unless one is set. */
void ws__finish(struct ws_conn *ws, const char *why);

/* ws__addr_norm writes the canonical text of IP address in[0..len) (IPv4,
 * IPv6, bracketed IPv6; an IPv4-mapped IPv6 address as IPv4) to out.
 * false when it is not an address. */
bool ws__addr_norm(const char *in, size_t len, char out[WS_ADDR_MAX]);

/* ws__fail_stream reports an RFC 7395 framing error of the client: the
 * session is to fail with cond; further messages are ignored. */
void ws__fail_stream(struct ws_conn *ws, enum xs_cond cond, const char *why);

/* ws__http_input feeds request bytes (WS_HTTP).  On the upgrade, *used is
 * set to the bytes that belonged to the request; the rest are WebSocket
 * bytes for the caller to pass on.  0 or XE_NOMEM. */
int ws__http_input(struct ws_conn *ws, const char *data, size_t len, size_t *used);

/* ws__http_respond appends a complete response with a text body (why, one
 * line) and Connection: close, and moves ws to WS_CLOSED.  extra is more
 * header lines, each ending in CRLF, or NULL. */
int ws__http_respond(struct ws_conn *ws, unsigned status, const char *extra,
                     const char *why);

/* ws__req_free frees the request state. */
void ws__req_free(struct ws_req *r);

/* ws__upgrade switches ws to WS_OPEN after the 101 went out: wslay set up.
 * 0 or XE_NOMEM. */
int ws__upgrade(struct ws_conn *ws);

/* ws__send_text queues one text message and flushes it to the wire.
 * 0, XE_CLOSED (a close was queued or sent already) or XE_NOMEM. */
int ws__send_text(struct ws_conn *ws, const char *data, size_t len);

/* ws__send_ping sends a ping; track: a pong is awaited (ws_ping), else
 * a keep-alive whose pong is not checked.  0, XE_CLOSED or XE_NOMEM. */
int ws__send_ping(struct ws_conn *ws, bool track);

/* ws__close_frame sends our WebSocket close now (code, ws->close_reason)
 * and starts waiting for the peer's.  0 or XE_NOMEM. */
int ws__close_frame(struct ws_conn *ws, uint16_t code);

/* ws__xmpp_in takes one complete text message from the client. */
int ws__xmpp_in(struct ws_conn *ws, const char *msg, size_t len);

/* ws__xmpp_out takes the session's stream bytes; see ws_send. */
int ws__xmpp_out(struct ws_conn *ws, const char *data, size_t len);

/* ws__xmpp_close sends our <close/> (see_other_uri may be NULL) unless it
 * went out already.  0, XE_CLOSED or XE_NOMEM. */
int ws__xmpp_close(struct ws_conn *ws, const char *see_other_uri);

/* ws__esc appends s escaped for an XML attribute value or text. */
int ws__esc(struct buf *out, const char *s, size_t len);

#endif
