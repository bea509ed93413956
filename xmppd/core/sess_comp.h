/* sess_comp.h: one XEP-0114 component session (jabber:component:accept):
 * stream header, handshake, stanza checks and liveness of one connection.
 *
 * States: WAIT_HEADER -> (stream header, 'to' a component of our domain) ->
 * WAIT_HANDSHAKE -> (hex SHA-1 of stream id + secret) -> READY -> CLOSED.
 * Output goes through srv (srv_int.h): srv__send, srv__close, srv__route.
 *
 * Close once, by construction (issue 8, defect 1): the state only moves
 * forward, and CLOSED is terminal.  sess_comp__enter is the only way to the
 * three live states and refuses to leave CLOSED; srv__close is the only way
 * to CLOSED and to srv's dead list, and does nothing for a closed session.
 * Every step that may close s (a write, a stream error, authentication,
 * which in cluster mode may close s with conflict from inside fwd) is
 * followed by a check of the state, never by an unconditional assignment. */
#ifndef XMPPD_SESS_COMP_H
#define XMPPD_SESS_COMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stz.h"
#include "xs.h"

struct srv;

enum sess_comp_state {
    SESS_COMP_WAIT_HEADER,
    SESS_COMP_WAIT_HANDSHAKE,
    SESS_COMP_READY,
    SESS_COMP_CLOSED,
};

struct sess_comp {
    struct srv *srv; /* borrowed back-pointer */
    uint64_t conn;
    char *peer; /* remote address for logs, owned */
    /* written only by sess_comp__enter and srv__close (top of the file) */
    enum sess_comp_state state;
    bool header_sent;   /* our stream header went out */
    struct xs *xs;      /* owned framer */
    char stream_id[33]; /* 128 random bits, hex */
    char *name;         /* call bridge name (first label of the 'to'), owned */
    char *domain;       /* component domain (the header's 'to', prepared), owned */
    uint64_t opened_ms;
    uint64_t last_in_ms;     /* last bytes received */
    uint64_t last_out_ms;    /* last bytes sent */
    bool ping_pending;       /* a server ping went out since the last input */
    uint64_t sid;            /* cluster mode: this node's id of the session,
                                as reported to the leader; 0: not reported */
    struct sess_comp *hnext; /* srv's connection-table chain */
    struct sess_comp *dnext; /* srv's dead list */
};

/* sess_comp_new creates a session for connection conn from peer (copied),
 * opened at now_ms.  0/XE_NOMEM. */
int sess_comp_new(struct srv *srv, uint64_t conn, const char *peer, uint64_t now_ms,
                  struct sess_comp **out);
/* sess_comp_free frees s (not linked anywhere any more).  NULL is a no-op. */
void sess_comp_free(struct sess_comp *s);

/* sess_comp__enter moves s forward to the live state to (WAIT_HANDSHAKE or
 * READY; never CLOSED: only srv__close closes).  Returns 0, or XE_CLOSED
 * when s was closed meanwhile (it stays closed; the caller stops using it
 * for output). */
int sess_comp__enter(struct sess_comp *s, enum sess_comp_state to);

/* sess_comp_input feeds len bytes read from the connection at srv->now_ms.
 * May close the session (state CLOSED). */
void sess_comp_input(struct sess_comp *s, const void *data, size_t len);

/* sess_comp_tick runs s's timers at srv->now_ms: auth timeout, server ping,
 * whitespace keep-alive, idle close. */
void sess_comp_tick(struct sess_comp *s);

/* sess_comp_deadline returns when sess_comp_tick next has work, or
 * UINT64_MAX. */
uint64_t sess_comp_deadline(const struct sess_comp *s);

/* sess_comp_deliver writes stanza st (borrowed) to a READY session,
 * serialised for the component namespace.  0 or a negative code (the
 * session was closed). */
int sess_comp_deliver(struct sess_comp *s, const struct stz *st);

/* sess_comp_deliver_raw writes len bytes (borrowed: one stanza already
 * serialised for the component namespace, e.g. forwarded from another node)
 * to a READY session.  0 or a negative code (not READY, or closed). */
int sess_comp_deliver_raw(struct sess_comp *s, const char *xml, size_t len);

/* sess_comp_fail sends stream error cond (after our header if it was not
 * sent yet, RFC 6120 §4.9.1.2), then closes the session.  why (borrowed)
 * goes to the log only. */
void sess_comp_fail(struct sess_comp *s, enum xs_cond cond, const char *why);

#endif
