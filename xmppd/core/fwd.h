/* fwd.h: end-to-end forwarding of stanzas through the cluster leader.
 *
 * Pure: no I/O, no clock (now_ms passed in), frames out through env->send.
 * One struct fwd per node plays three roles (DESIGN.md "Forwarding",
 * issue 5 item 4; docs/cluster.md explains the protocol and why it keeps
 * order):
 *
 *  - origin: every stanza a local session sends to a destination that is
 *    not local gets (node id, incarnation, seq) and stays in the unacked
 *    table until the delivering node ACKs it.  It is sent to the leader as
 *    FWD, in seq order; on a leader change (and after resend_ms without an
 *    ACK) every unacked stanza is sent again, in seq order, to the current
 *    leader.  With no leader, stanzas wait in the same bounded table; when
 *    it is full fwd_send returns XE_BUSY and the caller answers the sender
 *    with stz_error_reply(st, "wait", "resource-constraint", NULL).
 *  - leader: keeps the cluster routing table (component domain -> node,
 *    fed by SESSIONS reports; the newest session of a name wins and the
 *    loser is sent CONFLICT) and routes each FWD: deliver here, DELIVER to
 *    the holding node, or bounce service-unavailable to the sender.  A new
 *    leader holds stanzas to names it does not know yet for warmup_ms or
 *    until every member sent its full report.
 *  - delivering node: drops duplicates exactly, with a window per origin
 *    incarnation that the low-water mark in each frame slides, hands the
 *    stanza to the local session (env->deliver), and ACKs the origin.  An
 *    ACK the origin's channel refuses is kept (merged ranges, one entry per
 *    origin incarnation) and sent as one coalesced frame by the next
 *    fwd_pump or fwd_input: a full channel delays ACKs, never drops them.
 *
 * Bounces are new stanzas originated by the node that bounces (same path,
 * same guarantees).  The stanza bytes are as serialized for a
 * jabber:component:accept stream (stz_serialize with STZ_NS_COMPONENT).
 *
 * Re-entrancy: env callbacks are called from inside fwd_* calls and must not
 * call back into fwd. */
#ifndef XMPPD_FWD_H
#define XMPPD_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "pframe.h"

#define FWD_NO_DEADLINE UINT64_MAX
/* Seqs one dedup window spans past the origin's low-water mark; the origin's
 * queue_max is at most this, so an honest origin never exceeds it. */
#define FWD_WINDOW 16384

struct fwd_config {
    uint64_t node_id;     /* this node; non-zero */
    uint64_t incarnation; /* this process (random per start); non-zero */
    const char *name;     /* short node name for logs ("n1"); copied */
    size_t queue_max;     /* unacked stanzas kept (also while no leader);
                             default 4096, at most FWD_WINDOW */
    uint64_t resend_ms;   /* resend unacked stanzas after this; default 3000 */
    uint64_t warmup_ms;   /* a new leader holds unknown names; default 2000 */
    size_t hold_max;      /* stanzas a new leader holds; default 4096 */
    size_t max_windows;   /* dedup windows kept (LRU); default 256 */
};

/* fwd_config_default fills c with the defaults (ids 0, name NULL). */
void fwd_config_default(struct fwd_config *c);

struct fwd_env {
    void *ud;
    /* send hands frame f (borrowed; the callee copies what it keeps, e.g.
     * pchan_send) to node's channel; node is never this node.  Returns 0,
     * or XE_BUSY / another negative code when the channel cannot take it
     * now (fwd keeps what it must and tries again; see fwd_pump). */
    int (*send)(void *ud, uint64_t node, struct pframe *f);
    /* deliver writes the stanza xml (len bytes, borrowed) from 'from' to the
     * local session holding 'to'.  Returns 0, or XE_NOTFOUND when no local
     * session holds it (fwd then bounces service-unavailable). */
    int (*deliver)(void *ud, const char *from, const char *to, const char *xml,
                   size_t len);
    /* conflict asks to close the local session of component name that
     * authenticated at since with a conflict stream error (RFC 6120
     * §4.9.3.3): a newer session of that name exists elsewhere.  The caller
     * ignores it when its session of that name has another since. */
    void (*conflict)(void *ud, const char *name, uint64_t since);
    const struct log_sink *log; /* may be NULL; borrowed */
};

struct fwd;

/* fwd_new creates the forwarding state of one node.  cfg is copied (zero
 * fields take defaults), env copied (env->log borrowed).  Returns 0, XE_INVAL
 * (zero ids, queue_max over FWD_WINDOW, missing callbacks) or XE_NOMEM. */
int fwd_new(const struct fwd_config *cfg, const struct fwd_env *env, struct fwd **out);
/* fwd_free frees everything without calling env.  NULL is a no-op. */
void fwd_free(struct fwd *f);

/* fwd_set_members gives the cluster's voting members (node ids, borrowed,
 * copied), this node included or not.  A new leader waits for a full
 * SESSIONS report from each of them (or warmup_ms) before it bounces a
 * stanza to an unknown name.  0/XE_NOMEM. */
int fwd_set_members(struct fwd *f, const uint64_t *ids, size_t n);

/* fwd_set_leader tells fwd who leads now and in which Raft term (leader 0:
 * no leader, e.g. during an election or on a minority side).  On a change
 * of either (the same node elected again in a new term counts: it may have
 * dropped stanzas while it was not leading, and its routing table starts
 * empty), every unacked stanza is replayed to the leader in seq order, with
 * a full SESSIONS report before it; becoming leader starts an empty routing
 * table and the warmup.  The node that wins an election must learn it here
 * before the first Raft message of its term leaves (FWDs that reach a node
 * before it knows it leads are dropped and only come back with the origin's
 * resend).  0/XE_NOMEM. */
int fwd_set_leader(struct fwd *f, uint64_t leader, uint64_t term, uint64_t now_ms);

/* fwd_local_add records that a local session now holds component domain
 * name (prepared; copied), authenticated at since (wall-clock ms, for the
 * cluster-wide "newest session wins"), and reports it to the leader.
 * fwd_local_del removes it (only if since matches).  0/XE_INVAL/XE_NOMEM. */
int fwd_local_add(struct fwd *f, const char *name, uint64_t since, uint64_t now_ms);
int fwd_local_del(struct fwd *f, const char *name, uint64_t since, uint64_t now_ms);

/* fwd_send forwards a stanza a local session sent (from, to: its checked
 * JIDs; xml: len bytes; all borrowed, copied) to a destination that is not
 * local.  Returns 0 (accepted: it will be delivered once, or bounced),
 * XE_BUSY (the queue is full: answer wait/resource-constraint), XE_INVAL
 * or XE_NOMEM. */
int fwd_send(struct fwd *f, const char *from, const char *to, const char *xml, size_t len,
             uint64_t now_ms);

/* fwd_input takes a frame (borrowed) received from node over the peer link
 * after pchan delivered it: FWD, DELIVER, ACK, SESSIONS or CONFLICT.
 * Returns 0, XE_INVAL (another type: not fwd's), XE_PROTO (the frame breaks
 * the protocol: a FWD whose origin is not the sender, a seq beyond the
 * window, a SESSIONS report for another node; counted, nothing done) or
 * XE_NOMEM. */
int fwd_input(struct fwd *f, uint64_t node, const struct pframe *fr, uint64_t now_ms);

/* fwd_peer_reset tells fwd that the channel to node was reset (pchan
 * PCHAN_RESET: the peer restarted or lost our stream), so frames to it may
 * have been lost: unacked stanzas are replayed if node is the leader, a
 * full report follows, and a leader forgets the names node held. */
void fwd_peer_reset(struct fwd *f, uint64_t node, uint64_t now_ms);

/* fwd_pump retries what a full channel refused (call it when a channel has
 * room again).  fwd_tick runs timers due at now_ms (resend, warmup end);
 * fwd_next_deadline says when fwd_tick should next run. */
void fwd_pump(struct fwd *f, uint64_t now_ms);
void fwd_tick(struct fwd *f, uint64_t now_ms);
uint64_t fwd_next_deadline(const struct fwd *f);

/* fwd_route_lookup returns the node holding domain (or the longest name it
 * is within) in the leader's routing table, or 0.  For status and tests. */
uint64_t fwd_route_lookup(const struct fwd *f, const char *domain);

struct fwd_stats {
    uint64_t forwarded;     /* stanzas accepted by fwd_send */
    uint64_t queued;        /* of those, accepted while there was no leader */
    uint64_t rejected;      /* fwd_send refused: queue full */
    uint64_t waiting;       /* unacked stanzas now */
    uint64_t delivered;     /* stanzas delivered to local sessions */
    uint64_t routed;        /* FWD routed by this node as leader */
    uint64_t bounced;       /* error replies originated here */
    uint64_t replayed;      /* stanzas sent again (leader change, timeout) */
    uint64_t duplicates;    /* duplicate deliveries dropped */
    uint64_t held;          /* stanzas a new leader held for reports */
    uint64_t misrouted;     /* FWD dropped: received while not leader, or
                               behind such a drop until the origin replays */
    uint64_t send_failures; /* env->send refusals */
    uint64_t acks_pending;  /* seqs owed an ACK that no channel took yet */
    uint64_t acks_deferred; /* ACKs a full channel refused (kept, sent later) */
    uint64_t acks_dropped;  /* ACKs dropped: pending table full (resend heals) */
    uint64_t protocol_errors;
    uint64_t conflicts; /* CONFLICTs decided as leader */
    size_t routes;      /* names in the leader's table */
};

void fwd_get_stats(const struct fwd *f, struct fwd_stats *out);

#endif
