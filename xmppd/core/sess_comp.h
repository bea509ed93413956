/* sess_comp.h: one XEP-0114 component session (jabber:component:accept):
 * stream header, handshake and stanza checks of one connection.
 *
 * Steps: WAIT_HEADER -> (stream header, 'to' a component of our domain) ->
 * WAIT_HANDSHAKE -> (hex SHA-1 of stream id + secret) -> READY (base.state)
 * -> CLOSED.  What all sessions share (liveness, writes, stream errors, the
 * close-once rule) is in sess.h.  Output goes through srv (srv_int.h):
 * sess__write, srv__close, srv__route. */
#ifndef XMPPD_SESS_COMP_H
#define XMPPD_SESS_COMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess.h"
#include "stz.h"
#include "xs.h"

struct srv;

/* The steps of negotiation (while base.state is SESS_OPENING). */
enum sess_comp_step {
    SESS_COMP_WAIT_HEADER,
    SESS_COMP_WAIT_HANDSHAKE,
};

struct sess_comp {
    struct sess base; /* first: a struct sess * is a struct sess_comp * */
    enum sess_comp_step step;
    char *name;   /* call bridge name (first label of the 'to'), owned */
    char *domain; /* component domain (the header's 'to', prepared), owned */
};

/* sess_comp_new creates a session for connection conn from peer (copied),
 * opened at now_ms.  0/XE_NOMEM. */
int sess_comp_new(struct srv *srv, uint64_t conn, const char *peer, uint64_t now_ms,
                  struct sess_comp **out);
/* sess_comp_free frees s (not linked anywhere any more).  NULL is a no-op. */
void sess_comp_free(struct sess_comp *s);

/* sess_comp_input handles len bytes read from the connection (sess_input
 * noted the time).  May close the session. */
void sess_comp_input(struct sess_comp *s, const void *data, size_t len);

/* sess_comp__header appends our stream header (for sess.c's stream errors
 * before the header went out). */
int sess_comp__header(struct sess_comp *s, struct buf *b);

#endif
