/* peer.h: the cluster peer link: mutual TLS 1.3 connections between nodes
 * (port 5224), carrying the frames of core/pframe.h, with one reliable
 * channel (core/pchan.h) per peer across reconnects.
 *
 * One struct peer_mgr per node while clustering is enabled.  It listens on
 * the node's peer address, dials every member it knows an address for, and
 * keeps at most one connection per peer.  This file owns the sockets, TLS,
 * the frame codec and the channels; every decision about a connection is
 * core/plink.h's (docs/cluster.md "Connections", "Handshake"):
 *
 *  - Both ends dial a member they have no link to.  The dialer sends HELLO
 *    first; the acceptor answers with its own HELLO only once it keeps the
 *    connection.  When both dial at once the lower node id's dial wins.
 *  - A lost link is redialled at once, then with jittered exponential
 *    back-off (backoff_min_ms doubling to backoff_max_ms).  A redial
 *    refused by the peer's host (ECONNREFUSED: the process is gone) is
 *    reported through hooks.link with refused set, so the Raft driver can
 *    start an election at once.
 *  - PING every second on every link; a link that received nothing for
 *    idle_close_ms is closed.  PING and PONG carry the sender's local
 *    component count (hooks.components), kept in its peer_info.
 *  - An accepted connection must finish TLS and send its HELLO within
 *    prehello_ms, or it is aborted and counted (timeouts).  Accepted
 *    connections that are not members' links (before HELLO, or a joining
 *    node's) are limited in total and per source address; one over a limit
 *    is closed at once and counted (over_limit).  Warnings about bad
 *    connections are logged once a second at most, with a count of those
 *    held back.
 *  - Each link state allows its frame kinds only (plink_allowed): a
 *    joining node's link (HELLO with cluster id 0) carries its own join
 *    request and keep-alive, nothing else; anything else closes the link
 *    and is counted (forbidden).
 *  - A write the connection refuses (its queue full) closes the link and is
 *    counted (write_refused): the channel resends on the next link, and the
 *    stream never goes on with a gap.
 *
 * Both ends present the node certificate and verify the other's against
 * the trust bundle; the dialler also checks the address it dialled against
 * the certificate's subjectAltName.  The acceptor binds the HELLO to the
 * certificate (plink_hello): the claimed address's host must be one of its
 * SANs, a member's id must come from its configured address, and a
 * member's address carries no other id (except a joining node's, cluster id
 * 0); else the link is refused, logged with the claim and the SANs, and
 * counted in peer_stats.impostors.  A TLS failure is logged by conn.c with
 * the reason; a HELLO refused by policy (hooks.check_hello) is logged here.
 * Malformed frames close the link and are counted.
 *
 * Single-threaded, on the node's loop.  Hooks run from libuv callbacks; a
 * hook may call peer_send, peer_send_raft and peer_set_members. */
#ifndef XMPPD_PEER_H
#define XMPPD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "logging.h"
#include "pframe.h"

#define PEER_DEFAULT_PORT 5224

struct peer_hooks {
    void *ud;
    /* check_hello: a peer's HELLO h (borrowed) arrived; contact is true on a
     * connection made by peer_contact (the peer's cluster is not known yet).
     * Return 0 to accept, or a negative code with why filled (logged, the
     * link is closed and counted as refused, and the dialler is told why
     * in a REFUSE frame); XE_NOTFOUND says that the peer was removed from
     * this cluster (PFRAME_REFUSE_REMOVED). */
    int (*check_hello)(void *ud, const struct pframe_hello *h, bool contact, char *why,
                       size_t whylen);
    /* raft: a RAFT frame's bytes (borrowed) from authenticated member from.
     * Return < 0 to close the link (counted as malformed).  Not called for
     * links whose HELLO had cluster id 0 (a joining node). */
    int (*raft)(void *ud, uint64_t from, const void *data, size_t len);
    /* frame: a sequenced frame (FWD ... SUBMIT_RESULT) delivered in order by
     * the channel, of a kind the link's state allows (plink_allowed); guest
     * is true when the peer's HELLO had cluster id 0 (a node asking to
     * join: the frame is its join request for itself).  Return < 0 to close
     * the link (counted as malformed). */
    int (*frame)(void *ud, uint64_t from, bool guest, const struct pframe *f);
    /* link: the link to id came up or went down.  addr is the peer's
     * address (borrowed).  Down: err is the libuv code (0 for an orderly
     * close, UV_EPROTO for a failed TLS handshake) and refused is true when
     * a redial was refused (ECONNREFUSED).  A failed dial to a contact whose
     * id is not known yet is reported down with id 0. */
    void (*link)(void *ud, uint64_t id, const char *addr, bool up, int err, bool refused);
    /* reset: the channel to id was reset (the peer restarted or lost our
     * stream, PCHAN_RESET): sequenced frames sent before are gone; replay
     * what matters end to end.  May be NULL. */
    void (*reset)(void *ud, uint64_t id);
    /* room: a CHAN_ACK from id freed room in its resend buffer.  May be
     * NULL. */
    void (*room)(void *ud, uint64_t id);
    /* read_done: one read of id's link has been handed over: frame was
     * called for every sequenced frame it held (at least one), and no more
     * will come in this loop turn from that read.  The place to send what
     * those frames owe (ACKs) as one frame.  May be NULL. */
    void (*read_done)(void *ud, uint64_t id);
    /* refused: the member dialled (id; 0 for a join contact) refused our
     * HELLO and said why (r borrowed for the call; its link is closed
     * already).  May be NULL. */
    void (*refused)(void *ud, uint64_t id, const struct pframe_refuse *r);
    /* components: this node's local component sessions now, sent in every
     * PING and PONG (docs/cluster.md "Status fields").  May be NULL (0 is
     * sent). */
    uint32_t (*components)(void *ud);
};

struct peer_opts {
    const char *name; /* log prefix ("n1"); borrowed */
    const struct log_sink *log;
    uint64_t node_id;        /* this node, non-zero */
    uint64_t cluster_id;     /* sent in HELLO (0 while joining) */
    const char *self_addr;   /* this node's peer address "host:port" */
    const char *listen_host; /* numeric; NULL: no listener (tests) */
    int listen_port;
    const char *key_path, *cert_path, *trust_path; /* PEM files; borrowed */
    uint64_t backoff_min_ms;                       /* 0: 50 */
    uint64_t backoff_max_ms;                       /* 0: 2000 */
    uint64_t idle_close_ms;                        /* 0: 5000 */
    uint64_t prehello_ms;           /* accepted: TLS and HELLO within; 0: 5000 */
    unsigned max_unjoined;          /* accepted, not members' links; 0: 64 */
    unsigned max_unjoined_per_addr; /* of them from one address; 0: 8 */
    size_t max_queued;              /* bytes queued per connection; 0: conn.h's default */
};

struct peer_mgr;

/* peer_mgr_new builds the TLS contexts (TLS 1.3 only, mutual, against
 * trust_path), starts the listener and a 20 ms tick timer on loop.  opts,
 * hooks are copied (strings copied); log must outlive the manager.
 * Returns 0, or an error with err filled (bad certificates, cannot listen).
 * *out is owned: release with peer_mgr_close. */
int peer_mgr_new(uv_loop_t *loop, const struct peer_opts *opts,
                 const struct peer_hooks *hooks, struct peer_mgr **out, char *err,
                 size_t errlen);

/* peer_mgr_close closes every link and the listener; done(arg) is called
 * (from the loop) once everything is freed.  No hooks are called after this
 * call.  NULL is a no-op (done is not called). */
void peer_mgr_close(struct peer_mgr *m, void (*done)(void *arg), void *arg);

/* peer_set_cluster_id changes the cluster id sent in later HELLOs. */
void peer_set_cluster_id(struct peer_mgr *m, uint64_t cluster_id);

/* peer_set_node_id makes node_id (non-zero) this node's id in later HELLOs
 * and closes every link and dial, which were bound to the old id (a removed
 * node joining again takes a new id: raft.h, raft_update.removed). */
void peer_set_node_id(struct peer_mgr *m, uint64_t node_id);

/* peer_set_members makes ids[i] at addrs[i] (borrowed) the members this node
 * keeps links to (this node's own id is skipped).  Peers no longer listed
 * are closed, unless they are contacts. */
int peer_set_members(struct peer_mgr *m, const uint64_t *ids, const char *const *addrs,
                     size_t n);

/* peer_contact dials addr ("host[:port]") whose node id is not known yet
 * (a join).  Once its HELLO is accepted hooks.link reports it up under its
 * id.  Our HELLO on it carries cluster id 0.  0, XE_INVAL, XE_NOMEM. */
int peer_contact(struct peer_mgr *m, const char *addr);

/* peer_last_error copies the last error of the peer or contact at addr
 * (as peer_contact normalises it) into why ("" when none or unknown). */
void peer_last_error(const struct peer_mgr *m, const char *addr, char *why, size_t len);

/* peer_drop_contacts forgets every contact that is not a member. */
void peer_drop_contacts(struct peer_mgr *m);

/* peer_send numbers the sequenced frame f (borrowed; f->chan_seq is set)
 * through id's channel and writes it when the link is up (else it waits
 * in the channel for the next link).  The bytes leave before the loop next
 * waits for I/O, together with every other frame queued to that peer in
 * the same loop turn (one write).  0, XE_NOTFOUND (no such peer),
 * XE_BUSY (resend buffer full: nothing kept), XE_INVAL, XE_LIMIT, XE_NOMEM. */
int peer_send(struct peer_mgr *m, uint64_t id, struct pframe *f);

/* peer_send_raft writes one RAFT frame (data borrowed) to id at addr (""
 * when unknown: the existing link only).  An unknown peer with an address
 * is added as a non-member link.  0, XE_CLOSED (no link now: dropped, Raft
 * retries), XE_NOTFOUND, XE_LIMIT, XE_NOMEM. */
int peer_send_raft(struct peer_mgr *m, uint64_t id, const char *addr, const void *data,
                   size_t len);

/* peer_close_link closes the current link to id (if any), as a lost
 * connection: the channel keeps its frames and the link is redialled. */
void peer_close_link(struct peer_mgr *m, uint64_t id);

/* peer_has_room tells whether id's channel takes a frame of len bytes now. */
bool peer_has_room(struct peer_mgr *m, uint64_t id, size_t len);

struct peer_info {
    uint64_t id;
    char addr[PFRAME_MAX_ADDR + 1];
    bool member, contact;
    bool up;              /* a link with accepted HELLOs */
    const char *state;    /* "up", "refused" (see refusal), "connecting",
                             "down" (static) */
    uint8_t version;      /* the up link's frame version (0: none) */
    uint8_t last_version; /* the version of the last link that came up, kept
                             while down (0: none since this process started) */
    /* Why the last link with it was refused, by either end (the peer's
     * REFUSE or this node's decision), until a link comes up: "" if not. */
    char refusal[400];
    uint64_t last_contact_ms; /* loop ms of the last byte received; 0 never */
    uint64_t connects;        /* links that came up */
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t malformed, refused;
    /* The component count the peer reported in its latest PING or PONG
     * (kept when the link goes down) and the loop ms it arrived; 0: none
     * received yet. */
    uint32_t components;
    uint64_t components_ms;
    /* The peer's wall clock minus ours, from its last HELLO (ms; known
     * once a link came up). */
    int64_t clock_offset_ms;
    bool clock_known;
    char last_error[160];
    uint64_t duplicates; /* frames from it received again and dropped (pchan) */
};

/* peer_build_versions makes [vmin, vmax] (within PFRAME_VERSION_MIN..
 * PFRAME_VERSION_MAX) the frame versions this process speaks on every link
 * (main calls it for a build capped at an older version, XMPPD_PFRAME_MAX;
 * the default is the codec's whole range).  0 or XE_INVAL.  Before any
 * peer_mgr_new. */
int peer_build_versions(uint8_t vmin, uint8_t vmax);

/* peer_versions tells the versions this process speaks. */
void peer_versions(uint8_t *vmin, uint8_t *vmax);

/* peer_get fills *out for id: 0 or XE_NOTFOUND. */
int peer_get(const struct peer_mgr *m, uint64_t id, struct peer_info *out);

struct peer_stats {
    /* links_up: links that came up (HELLOs accepted both ways); accepted:
     * connections taken on the listener (at TCP accept, before TLS);
     * malformed: links closed for a bad frame; refused: HELLOs refused. */
    uint64_t links_up, malformed, refused, accepted;
    /* impostors: HELLOs refused because the claimed address is not in the
     * peer's certificate or the claimed id does not hold it (also counted
     * in refused). */
    uint64_t impostors;
    /* forbidden: links closed for a frame kind their state does not allow
     * (a frame before HELLO, a second HELLO, anything but a join request
     * from a joining node); timeouts: accepted connections closed for want
     * of TLS or HELLO in time, and joining nodes that overstayed;
     * over_limit: connections closed at accept for the limits on links that
     * have not joined; write_refused: links closed because a write was
     * refused (queue full). */
    uint64_t forbidden, timeouts, over_limit, write_refused;
};

void peer_get_stats(const struct peer_mgr *m, struct peer_stats *out);

/* peer_addr_same tells whether addresses x and y (borrowed, as
 * peer_parse_addr takes them) name the same host and port: numeric hosts
 * compared by value ("::1" is "0::1"), names ASCII case folded.
 * false when either does not parse. */
bool peer_addr_same(const char *x, const char *y);

/* peer_parse_addr splits "host", "host:port", "[v6]:port" into host (hlen
 * bytes) and *port (PEER_DEFAULT_PORT when absent).  0 or XE_INVAL. */
int peer_parse_addr(const char *addr, char *host, size_t hlen, int *port);

#endif
