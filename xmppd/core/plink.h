/* plink.h: the peer link's decisions, as a pure state machine
 * ("Where the fixes go"; docs/cluster.md "Connections", "Handshake").
 *
 * The edge (xmppd/io/peer.c) owns sockets, TLS, the frame codec and the
 * reliable channel; this module decides, for one connection at a time, what
 * may happen on it.  Events in: the connection opened (accepted or
 * dialled), its TLS handshake done, the peer's HELLO with its certificate's
 * names and what this node knows of the members, each frame's kind, bytes
 * received, and a tick with the monotonic time.  Out: an update of actions:
 * send our HELLO (with which cluster id), send a PING, the link is up, hand
 * a frame to its owner, or close the connection with a reason and the
 * counter it belongs to.  Also here: the identity binding of a certificate
 * to a node, which frame kinds each state allows, the dial race, the
 * pre-HELLO, dial and ping timeouts, admission limits for links that have
 * not joined, and the redial back-off.
 *
 * States of one connection:
 *
 *   TCP      accepted or dialled; TLS not done yet
 *   TLS      TLS done; waiting for the peer's HELLO (the dialler sends
 *            its HELLO first, the acceptor answers only once it keeps the
 *            connection)
 *   MEMBER   HELLOs exchanged, both ends members of one cluster: the member
 *            frame kinds (plink_allowed)
 *   GUEST    the peer's HELLO had cluster id 0: a node asking to join.  It
 *            may send a join request for itself and the link's keep-alive
 *            and channel acks, nothing else, and for PLINK guest_ms at most
 *   CONTACT  our HELLO had cluster id 0: this node asks the peer's cluster
 *            to join; the answer (SUBMIT_RESULT) is delivered, the cluster's
 *            own traffic is taken off the channel but not delivered (this
 *            node is not in that cluster yet)
 *   SUCCESSOR  accepted: a HELLO with our cluster id and an id our
 *            configuration does not know, from an address one of our
 *            members holds, backed by the certificate: that member was
 *            replaced (`join --replace`) while our configuration fell behind,
 *            and it may be the leader we must catch up from.  Raft is
 *            delivered (and checked by Raft's own rules); every other frame
 *            is taken off the channel but not delivered, so nothing but the
 *            log can come from a claim our configuration does not back.  Once
 *            the configuration names the id, the edge closes the link and a
 *            member link follows.
 *   CLOSED   closed; every later event is ignored
 *
 * A frame outside its state's set (a frame before HELLO, a second HELLO, a
 * forwarding frame on a guest link) closes the link and is counted
 * (PLINK_COUNT_FORBIDDEN; `xmpp cluster status` "Peer links").
 *
 * Pure: no I/O, no clock, no randomness (the edge passes a random number in
 * where the back-off needs one). */
#ifndef XMPPD_PLINK_H
#define XMPPD_PLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pframe.h"

/* The SUBMIT kind byte of a join request (pframe.h PFRAME_REQ_JOIN). */
#define PLINK_SUBMIT_JOIN PFRAME_REQ_JOIN
/* The peer link's port when an address has none (DESIGN.md "Ports"). */
#define PLINK_DEFAULT_PORT 5224

enum plink_state {
    PLINK_STATE_TCP = 0,
    PLINK_STATE_TLS,
    PLINK_STATE_MEMBER,
    PLINK_STATE_GUEST,
    PLINK_STATE_CONTACT,
    PLINK_STATE_SUCCESSOR,
    PLINK_STATE_CLOSED,
};

/* What a close is counted as (struct peer_stats). */
enum plink_count {
    PLINK_COUNT_NONE = 0,  /* an orderly close: not a fault of the peer */
    PLINK_COUNT_REFUSED,   /* a HELLO refused (protocol, cluster, member) */
    PLINK_COUNT_IMPOSTOR,  /* refused: the certificate does not back the claim */
    PLINK_COUNT_MALFORMED, /* undecodable bytes, or a frame its owner refused */
    PLINK_COUNT_FORBIDDEN, /* a frame kind the link's state does not allow */
    PLINK_COUNT_TIMEOUT,   /* no TLS or HELLO in time, or a guest overstayed */
};

struct plink_opts {
    uint64_t prehello_ms; /* accepted: TLS and the peer's HELLO within (5000) */
    uint64_t dial_ms;     /* dialled: up within (3000) */
    uint64_t guest_ms;    /* a guest link lives at most (60000) */
    uint64_t ping_ms;     /* PING when nothing was sent for (1000) */
    uint64_t idle_ms;     /* close an up link silent for (5000) */
    uint64_t backoff_min_ms, backoff_max_ms; /* redial back-off (50, 2000) */
    unsigned max_unjoined;                   /* accepted links not (yet) members (64) */
    unsigned max_unjoined_per_addr;          /* of them from one source address (8) */
};

/* plink_opts_default fills *o with the defaults above. */
void plink_opts_default(struct plink_opts *o);

/* One connection. */
struct plink_conn {
    enum plink_state state;
    bool outgoing;         /* dialled by this node */
    bool ask_join;         /* outgoing: dialled to ask to join (our HELLO has 0) */
    uint64_t dialled_id;   /* outgoing: the member dialled (0: a join contact) */
    uint64_t peer_id;      /* once the HELLO is accepted */
    uint64_t opened_ms;    /* the open event */
    uint64_t last_rx_ms;   /* bytes received last */
    uint64_t last_ping_ms; /* our last PING (or the link coming up) */
    uint8_t vmin, vmax;    /* frame versions this node speaks (plink_versions;
                              0: PFRAME_VERSION_MIN..PFRAME_VERSION_MAX) */
    uint8_t version;       /* the link's, chosen at HELLO (0 before) */
};

struct plink_update {
    bool send_hello;           /* write our HELLO now ... */
    uint64_t hello_cluster_id; /* ... carrying this cluster id (0: asks to join) */
    uint8_t hello_version;     /* ... or the REFUSE, at this frame version (the
                                  HELLO with c's range) */
    bool send_ping;            /* write a PING now */
    bool up;                   /* the link came up (see the state) */
    bool drop_dial;            /* close our own dial to the same peer (it lost) */
    bool drop_link;            /* close the peer's older up link (replaced) */
    bool deliver;              /* frame: hand it to its owner after the channel */
    bool close;                /* close this connection */
    /* Before closing, send a REFUSE frame (acceptor, a HELLO refused by the
     * owner's policy: the dialler passed the identity checks and may learn
     * why) with this code; the reason is why. */
    bool send_refuse;
    uint8_t refuse_code;    /* enum pframe_refuse_code */
    char refuse_why[200];   /* the REFUSE's reason if not why ("": why) */
    enum plink_count count; /* what the close counts as */
    char why[400];          /* the reason of a close, for the log */
};

/* What the edge tells plink_hello about this node and the claimed peer. */
struct plink_member {
    uint64_t id;      /* a member's node id */
    const char *addr; /* its configured peer address ("host:port"; borrowed) */
};

struct plink_view {
    uint64_t self_id;    /* this node */
    uint64_t cluster_id; /* this node's cluster (our HELLO on a member link) */
    const struct plink_member *members; /* this node's members (borrowed) */
    size_t nmembers;
    /* The peer's certificate (acceptor side; the dialler checked the name it
     * dialled in TLS): present, its subject and its subjectAltNames in
     * tls.h's form ("DNS:a, IP:b"); borrowed. */
    bool cert;
    const char *subject, *sans;
    /* About the node id the HELLO claims: */
    bool id_linked;  /* incoming: it has an up link now */
    bool id_dialled; /* incoming: this node's own dial to it is under way */
    bool id_taken;   /* outgoing contact: another peer entry has this id */
    bool ask_join;   /* incoming: this node asks the peer's cluster to join
                        (the peer is its join contact): answer with 0 */
    /* The owner's policy (the cluster id, membership: xmppd/io/cluster.c
     * pk_check), asked before: 0, or < 0 with why.  XE_NOTFOUND means the
     * claimed node was removed from this cluster: the refusal tells it so
     * (PFRAME_REFUSE_REMOVED) and it stops dialling. */
    int policy_rc;
    const char *policy_why;
};

/* plink_open starts c for a connection opened at now: accepted
 * (outgoing false), or dialled to member dialled_id, or (dialled_id 0 and
 * ask_join) to a join contact.  No actions. */
void plink_open(struct plink_conn *c, bool outgoing, uint64_t dialled_id, bool ask_join,
                uint64_t now);

/* plink_versions makes [vmin, vmax] (within PFRAME_VERSION_MIN..
 * PFRAME_VERSION_MAX) the frame versions c speaks (after plink_open, which
 * sets the codec's whole range).  0 or XE_INVAL. */
int plink_versions(struct plink_conn *c, uint8_t vmin, uint8_t vmax);

/* plink_tls_done: c's TLS handshake finished.  The dialler speaks first:
 * on an outgoing link, send_hello with cluster id 0 for a join contact, else
 * cluster_id, at c's newest version. */
void plink_tls_done(struct plink_conn *c, uint64_t cluster_id, uint64_t now,
                    struct plink_update *u);

/* plink_rx: bytes arrived on c at now (keeps an up link alive). */
void plink_rx(struct plink_conn *c, uint64_t now);

/* plink_hello decides the peer's HELLO h (borrowed) on c, in this order:
 * protocol, our own id, the dialled member's id, the identity binding
 * (acceptor: the claimed address's host among the certificate's SANs, a
 * member's id from its configured address, a member's address carrying no
 * other id unless the HELLO has cluster id 0), the frame version (the
 * highest both ranges have, pframe_version_pick; none: refused, and the
 * acceptor sends a REFUSE saying both ranges, at hello_version), the
 * owner's policy (v->policy_rc), then the dial race (acceptor: a peer whose
 * id is higher than ours while our own dial to it is under way loses: close
 * quietly; unless exactly one end speaks version 2 only, whose dial wins;
 * else drop_dial / drop_link as needed).  Accepted: up with state MEMBER,
 * GUEST or CONTACT and c->version set, and on the acceptor send_hello
 * first, at that version.  A HELLO in any
 * other state than TLS is forbidden.  v is borrowed; now is the monotonic
 * time (the keep-alive starts from it). */
void plink_hello(struct plink_conn *c, const struct plink_view *v,
                 const struct pframe_hello *h, uint64_t now, struct plink_update *u);

/* A REFUSE frame is allowed only on an outgoing link in TLS state (our
 * HELLO went out, the answer did not come yet): plink_frame closes the link
 * (counted as refused, why quoting the peer's reason) and sets deliver so
 * that the owner learns the code.  Anywhere else it is forbidden. */

/* plink_allowed tells whether a frame of type (with f, borrowed, for the
 * kind of a SUBMIT; may be NULL for other types) may arrive on a link in
 * state s from peer peer_id, and whether it is then delivered to its owner
 * (*deliver).  The table is docs/cluster.md "Handshake". */
bool plink_allowed(enum plink_state s, uint64_t peer_id, int type, const struct pframe *f,
                   bool *deliver);

/* plink_frame: a decoded frame f (borrowed) arrived on c.  Allowed: deliver
 * says whether the owner gets it (after the channel, for sequenced kinds).
 * Else close, counted FORBIDDEN.  HELLO goes to plink_hello instead. */
void plink_frame(struct plink_conn *c, const struct pframe *f, struct plink_update *u);

/* plink_tick: time passes (now, monotonic ms).  Closes a link past its
 * state's deadline (pre-HELLO: prehello_ms for an accepted link, counted
 * TIMEOUT; dial_ms for a dialled one, not counted; a guest past guest_ms,
 * TIMEOUT; an up link silent for idle_ms, not counted), else asks for a
 * PING on an up link every ping_ms. */
void plink_tick(struct plink_conn *c, const struct plink_opts *o, uint64_t now,
                struct plink_update *u);

/* plink_close marks c closed (the edge closed it, or it went away). */
void plink_close(struct plink_conn *c);

/* plink_unjoined tells whether c counts against the admission limits: an
 * accepted link that is not a member's (TCP, TLS, GUEST). */
bool plink_unjoined(const struct plink_conn *c);

/* plink_evictable tells whether c may be closed to admit a newer
 * connection (plink_admit's evict): accepted, and no HELLO yet (TCP, TLS). */
bool plink_evictable(const struct plink_conn *c);

/* plink_admit decides a new accepted connection from source address host
 * (borrowed) given the accepted links that have not joined now (total, of
 * them from_host from the same host, and evictable of them still before
 * their HELLO, plink_evictable).  0: admit it; 0 with *evict set: admit it
 * once the edge has closed the oldest evictable link, why filled for that
 * close (counted as a timeout); XE_LIMIT with why filled (the edge closes
 * the new one at once and counts it as over the limit). */
int plink_admit(const struct plink_opts *o, size_t total, size_t from_host,
                size_t evictable, const char *host, bool *evict, char *why,
                size_t whylen);

/* Redial schedule of one peer. */
struct plink_dial {
    unsigned attempts; /* failed dials since the last loss or success */
    uint64_t next_ms;  /* dial at (monotonic ms) */
    bool was_up;       /* a link was up before: a refused redial is news */
};

/* plink_backoff: the delay before attempt number attempts (0: at once),
 * backoff_min_ms doubling to backoff_max_ms, drawn from [d/2, d] with rnd
 * (any 32-bit random number). */
uint64_t plink_backoff(const struct plink_opts *o, unsigned attempts, uint32_t rnd);

/* plink_dial_failed: a dial (or a link that never came up) failed at now;
 * the next one waits plink_backoff. */
void plink_dial_failed(struct plink_dial *d, const struct plink_opts *o, uint64_t now,
                       uint32_t rnd);

/* plink_dial_lost: an up link was lost at now: redial at once. */
void plink_dial_lost(struct plink_dial *d, uint64_t now);

/* plink_dial_up: a link came up: the back-off starts again. */
void plink_dial_up(struct plink_dial *d);

/* plink_parse_addr splits a peer address ("host", "host:port", "[v6]",
 * "[v6]:port", "v6": addr.h's rule, with DNS names, at most PFRAME_MAX_ADDR
 * bytes) into host (hlen bytes) and *port (default_port when absent).  0
 * or XE_INVAL. */
int plink_parse_addr(const char *addr, int default_port, char *host, size_t hlen,
                     int *port);

/* plink_addr_same: x and y (borrowed) name the same host and port (numeric
 * hosts by value, names ASCII case folded, RFC 4343; a missing port is
 * PLINK_DEFAULT_PORT); false when either does not parse. */
bool plink_addr_same(const char *x, const char *y);

/* plink_host_same: hosts x and y (no port) are the same address or name. */
bool plink_host_same(const char *x, const char *y);

/* plink_sans_cover: the subjectAltName list sans (tls.h form) names host:
 * an IP entry for an address, a DNS entry for a name (exact, case folded; a
 * wildcard does not name a node). */
bool plink_sans_cover(const char *sans, const char *host);

/* plink_foreign_protocol names the protocol of the first bytes (len,
 * borrowed) that a peer link received, when they cannot begin a peer frame
 * (whose u32 length is far below 0x3c000000): "XMPP" for '<' (an XML
 * stream, RFC 6120 §4.2: an XMPP client, component or WebSocket port's
 * answer, or an XMPP client dialling us), "HTTP" for "HTTP/" (a status line,
 * RFC 9112 §4) or a request method (§3); NULL otherwise.  The peer link
 * then says which port the other side has. */
const char *plink_foreign_protocol(const void *bytes, size_t len);

/* plink_state_name: "tcp", "tls", "member", "guest", "contact", "closed". */
const char *plink_state_name(enum plink_state s);

#endif
