/* sess_c2s.h: one RFC 6120 client session (jabber:client): stream
 * negotiation in order (stream header, STARTTLS, SASL, resource binding,
 * the RFC 3921 session iq), then the client's stanzas with their 'from'
 * stamped and handed to srv's router.
 *
 * Steps (while base.state is SESS_OPENING; READY once bound):
 *   WAIT_HEADER -(header: 'to' our domain, version 1.0)-> NEGOTIATE
 *   NEGOTIATE -(<starttls/>: <proceed/>, env->starttls)-> WAIT_TLS
 *   WAIT_TLS -(srv_conn_secured: stream restart)-> WAIT_HEADER
 *   NEGOTIATE -(<auth/> SCRAM)-> SASL -(<response/>)-> success: restart ->
 *      WAIT_HEADER (authenticated), or failure -> NEGOTIATE
 *   NEGOTIATE (authenticated) -(bind iq)-> READY
 * What all sessions share (liveness, writes, stream errors, close once) is
 * in sess.h. */
#ifndef XMPPD_SESS_C2S_H
#define XMPPD_SESS_C2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scram.h"
#include "sess.h"
#include "shaper.h"
#include "srv.h"

#define C2S_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define C2S_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define C2S_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define C2S_NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define C2S_NS_SASL_CB "urn:xmpp:sasl-cb:0"

enum sess_c2s_step {
    SESS_C2S_WAIT_HEADER, /* a (new) stream header */
    SESS_C2S_NEGOTIATE,   /* features sent: starttls, auth, bind expected */
    SESS_C2S_WAIT_TLS,    /* <proceed/> sent: waiting for srv_conn_secured */
    SESS_C2S_SASL,        /* inside an exchange: <response/> or <abort/> */
};

#define SESS_C2S_MECHS_MAX 6 /* 4 SCRAM, PLAIN, the NULL */

struct srv_acct;

/* SESS_C2S_DIRECTED_MAX bounds the directed-presence addresses one session
 * remembers (sess_c2s directed). */
#define SESS_C2S_DIRECTED_MAX 32

struct sess_c2s {
    struct sess base; /* first: a struct sess * is a struct sess_c2s * */
    enum sess_c2s_step step;
    bool secured;            /* TLS is up */
    struct srv_tls_info tls; /* as srv_conn_secured gave it */
    bool authed;             /* SASL succeeded (user set) */
    unsigned auth_failures;  /* failed SASL attempts on this connection */
    char *user;              /* prepared username: being tried, then
                                authenticated; owned; NULL before */
    bool user_known;         /* the account being tried exists (log only) */
    char *resource;          /* bound resourcepart, owned */
    char *jid;               /* full JID once bound, owned */
    const char *mech;        /* mechanism in use (static) */
    bool sasl_need_first;    /* SCRAM: empty challenge sent, the client's
                                first message comes as <response/> */
    /* a SASL failure answer held back (login throttling), owned: sent at
     * held_until; input is parsed but not acted on meanwhile */
    char *held;
    uint64_t held_until;
    struct scram_server *scram;            /* owned during an exchange */
    const char *mechs[SESS_C2S_MECHS_MAX]; /* offered now, NULL-ended */
    const char *cb_types[3];               /* offered now, NULL-ended */
    bool cb_type_refused;                  /* a -PLUS attempt named a type not offered
                                              (scram.h y_ok) */
    struct scram_cb cb;                    /* points into the above */
    /* RFC 6121 presence, from the client's broadcast presence */
    bool available;
    int priority;     /* -128..127 (RFC 6121 §4.7.2.3) */
    struct stz *pres; /* the last available presence broadcast, owned */
    /* RFC 6121 §4.6: the addresses (canonical JIDs, owned) that got
     * directed available presence from this session and no unavailable
     * since; they get unavailable when the session does (§4.6.3).  At most
     * SESS_C2S_DIRECTED_MAX. */
    char **directed;
    unsigned ndirected, directed_cap;
    /* the byte-rate shaper (srv.c srv__shape): paused until paused_until */
    struct shaper shaper;
    bool paused;
    uint64_t paused_until;
    /* the 'from' of the client's stream header, prepared, for the 'to' of
     * ours (RFC 6120 §4.7.2); owned, NULL when it gave none */
    char *peer_jid;
    /* srv's account table (srv_c2s.c) */
    struct srv_acct *acct; /* NULL while not bound */
    struct sess_c2s *anext;
};

/* sess_c2s_new creates a client session for connection conn from peer
 * (copied), opened at now_ms.  0/XE_NOMEM. */
int sess_c2s_new(struct srv *srv, uint64_t conn, const char *peer, uint64_t now_ms,
                 struct sess_c2s **out);
/* sess_c2s_free frees c (not linked anywhere any more; wipes the SASL
 * state).  NULL is a no-op. */
void sess_c2s_free(struct sess_c2s *c);

/* sess_c2s_input handles len bytes read from the connection (sess_input
 * noted the time).  May close the session. */
void sess_c2s_input(struct sess_c2s *c, const void *data, size_t len);

/* sess_c2s_secured: TLS is up (info copied).  After <proceed/> the stream
 * restarts (RFC 6120 §5.4.3.3); before the first header (direct TLS) it
 * only marks the connection secured. */
void sess_c2s_secured(struct sess_c2s *c, const struct srv_tls_info *info);

/* sess_c2s__tick sends a held SASL failure when its time came, then acts
 * on what arrived meanwhile, and resumes reading a connection the shaper
 * paused when its time came; sess_c2s__deadline is the earlier of those
 * times or UINT64_MAX. */
void sess_c2s__tick(struct sess_c2s *c);
uint64_t sess_c2s__deadline(const struct sess_c2s *c);

/* sess_c2s__header appends our stream header (for sess.c's stream errors
 * before the header went out). */
int sess_c2s__header(struct sess_c2s *c, struct buf *b);

#endif
