/* sess.h: what every session of the node core shares, whatever its kind
 * (XEP-0114 component, sess_comp.h; RFC 6120 client, sess_c2s.h): the
 * connection, the framer, the stream id, the clock marks, the life cycle,
 * and the rules that are the same for all (auth timeout, keep-alive and the
 * 3-interval idle close, writes and the close after a failed one).
 *
 * Each kind embeds struct sess as its first member (base) and sets kind;
 * sess.c dispatches the few kind-specific steps (input, stream header,
 * free, ping target) with a switch on it.
 *
 * Close once, by construction: state only moves
 * forward, and CLOSED is terminal.  sess__enter is the only way to READY
 * and refuses to leave CLOSED; srv__close is the only way to CLOSED and to
 * srv's dead list, and does nothing for a closed session.  Every step that
 * may close s (a write, a stream error, authentication, which may close s
 * with conflict) is followed by a check of the state, never by an
 * unconditional assignment. */
#ifndef XMPPD_SESS_H
#define XMPPD_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "htab.h"
#include "stz.h"
#include "xs.h"

struct srv;
struct ws_conn;

enum sess_kind {
    SESS_KIND_COMP, /* struct sess_comp */
    SESS_KIND_C2S,  /* struct sess_c2s */
};

enum sess_state {
    SESS_OPENING, /* negotiating: auth timeout and pre-auth limits apply */
    SESS_READY,   /* authenticated (and, for a client, bound): routes */
    SESS_CLOSED,  /* terminal; on srv's dead list until reaped */
};

struct sess {
    enum sess_kind kind;
    struct srv *srv; /* borrowed back-pointer */
    uint64_t conn;
    char *peer; /* remote address for logs, owned */
    /* written only by sess__enter and srv__close (top of the file) */
    enum sess_state state;
    bool header_sent;   /* our stream header (of the current stream) went out */
    struct xs *xs;      /* owned framer */
    char stream_id[33]; /* 128 random bits, hex */
    uint64_t opened_ms;
    uint64_t last_in_ms;  /* last bytes received */
    uint64_t last_out_ms; /* last bytes sent */
    bool ping_pending;    /* a server ping went out since the last input */
    /* The transport: NULL on TCP; a client session of a WebSocket
     * listener owns its ws_conn here (srv_ws.c), and its writes and its
     * close go through it. */
    struct ws_conn *ws;
    bool ws_pending;    /* counted in srv's pending WebSocket connections */
    uint64_t sid;       /* cluster mode: this node's id of the session,
                           as reported to the leader; 0: not reported */
    struct hlink hlink; /* in srv's connection table */
    struct sess *dnext; /* srv's dead list */
};

/* sess__init fills the common part of a new session of kind for connection
 * conn from peer (copied), opened at now_ms: a framer with srv's pre-auth
 * limits and a fresh stream id.  0/XE_NOMEM (nothing to release then). */
int sess__init(struct sess *s, enum sess_kind kind, struct srv *srv, uint64_t conn,
               const char *peer, uint64_t now_ms);
/* sess__fini releases what sess__init made. */
void sess__fini(struct sess *s);
/* sess__new_stream_id draws a fresh stream id (RFC 6120 §4.7.3: a new one
 * for every stream, also after a restart). */
void sess__new_stream_id(struct sess *s);

/* sess_free frees s of any kind (not linked anywhere any more).  NULL is a
 * no-op. */
void sess_free(struct sess *s);

/* sess__enter moves s from OPENING to READY.  Returns 0, or XE_CLOSED when
 * s was closed meanwhile (it stays closed; the caller stops using it for
 * output). */
int sess__enter(struct sess *s);

/* sess__write sends len bytes and notes the time; a failed send closes s.
 * 0 or a negative code (closed). */
int sess__write(struct sess *s, const char *data, size_t len);

/* sess__ns returns the content namespace of s's stream (jabber:client or
 * jabber:component:accept). */
const char *sess__ns(const struct sess *s);

/* sess__who appends "component <domain>" or "client <jid>" (for log lines)
 * to a static buffer and returns it; valid until the next call. */
const char *sess__who(const struct sess *s);

/* sess_input feeds len bytes read from the connection at srv->now_ms.  May
 * close the session (state CLOSED). */
void sess_input(struct sess *s, const void *data, size_t len);

/* sess_tick runs s's timers at srv->now_ms: auth timeout, server ping,
 * whitespace keep-alive, idle close. */
void sess_tick(struct sess *s);

/* sess_deadline returns when sess_tick next has work, or UINT64_MAX. */
uint64_t sess_deadline(const struct sess *s);

/* sess_deliver writes stanza st (borrowed) to a READY session, serialised
 * for its content namespace (a stanza from a component stream written into
 * a client stream carries no xmlns: stz_serialize).  0 or a negative code
 * (not READY, or the session was closed). */
int sess_deliver(struct sess *s, const struct stz *st);

/* sess_deliver_raw writes len bytes (borrowed: one stanza already
 * serialised for s's namespace) to a READY session.  0 or a negative
 * code. */
int sess_deliver_raw(struct sess *s, const char *xml, size_t len);

/* sess_fail sends stream error cond (after our header if it was not sent
 * yet, RFC 6120 §4.9.1.2), then closes the session.  why (borrowed) goes to
 * the log only.  sess__fail_quiet does the same without the log line (the
 * caller logged the event in its own words). */
void sess_fail(struct sess *s, enum xs_cond cond, const char *why);
void sess__fail_quiet(struct sess *s, enum xs_cond cond);
/* sess__fail_text is sess_fail with text (borrowed) in the stream error's
 * <text/> (RFC 6120 §4.9.2), for refusals the client should explain. */
void sess__fail_text(struct sess *s, enum xs_cond cond, const char *text,
                     const char *why);
/* sess__redirect closes s with the stream error see-other-host whose
 * content is host (borrowed: "host:port", an IPv6 address in brackets),
 * RFC 6120 §4.9.3.19, after our header if it was not sent; why is for the
 * log. */
void sess__redirect(struct sess *s, const char *host, const char *why);

/* sess__end answers the peer's </stream:stream> (or its stream error) with
 * ours and closes, RFC 6120 §4.4; why goes to the log. */
void sess__end(struct sess *s, const char *why);

#endif
