/* fwd.h: forwarding of stanzas between the nodes of a cluster.
 *
 * Pure: no I/O, no clock (now_ms passed in), frames out through env->send.
 * One struct fwd per node (DESIGN.md "Forwarding"; docs/cluster.md
 * "Forwarding" states the guarantee and why it holds).
 *
 * One owner, one outcome.  A stanza that a local session sends to a name
 * this node does not hold is given to fwd_send and gets (node id,
 * incarnation, seq).  Its owner is this node (the origin) until it is
 * handed, once, to the channel of the node that the routing table says
 * holds the name (or, while the table lacks a name that sent this node a
 * stanza in the last hold_ms, the node it came from: a session newer than
 * the table; fwd_heard.c) (FWD over that node's pchan: exactly once and in order
 * while both processes live).  From then on that node owns it and decides
 * its one outcome: delivered to the local session, or bounced because no
 * session of its own holds the name; it tells the origin in an ACK.  A
 * stanza is never sent twice and never to a second node, so it cannot be
 * both delivered and answered with an error, nor delivered twice.  The
 * origin answers its sender:
 *  - service-unavailable when the holder bounced it, or when no node holds
 *    the name (the table is complete and lacks it);
 *  - wait/resource-constraint when it could not be handed to a channel
 *    within hold_ms (the holder's link down or its channel full, a name
 *    unknown while the table is not whole or there is no leader), or when
 *    the queue of stanzas not yet handed over is full (fwd_send XE_BUSY).
 * A stanza handed to a node whose process then ends (its channel resets)
 * or that leaves the cluster has no known outcome: the receiver's node died
 * and with it the session; it is dropped and counted (lost), never
 * answered with an error (it may have been delivered).
 *
 * The leader keeps the cluster routing table: every node reports its local
 * component sessions (SESSIONS), the leader gives each session a
 * cluster-wide order (its term in the high 32 bits, a counter below: a
 * later leader's orders are greater), so that of two sessions of one name
 * the newer wins without comparing clocks, tells the loser's node
 * (CONFLICT), and sends the table to every member (ROUTES: in full after a
 * member's full report, then changes).  Every node routes with its copy;
 * a stale copy only costs a bounce by the node that no longer holds the
 * name.  A new leader starts from its copy, replaces each member's names
 * by its full report, and after warmup_ms drops the names of members that
 * did not report.
 *
 * The stanza bytes are as serialized for a jabber:component:accept stream
 * (stz_serialize with STZ_NS_COMPONENT).
 *
 * Events in, an update out (docs/architecture.md, "one convention"): what
 * fwd decides for this node's sessions (deliver these bytes to that
 * session, close that session: a conflict) is listed, in order, and the
 * caller carries it out after the call (fwd_take), so the caller may call
 * fwd again while it does (a delivery that makes a session answer through
 * fwd_send).  A session found when a delivery was listed may be gone when
 * it is carried out (an earlier act of the update closed it: a conflict, a
 * failed write), and only the caller knows: it reports such a delivery
 * (fwd_undelivered), and fwd settles each delivery's outcome, the ACK it
 * owes or the error its sender gets, when the caller comes back for the
 * next take.  Two callbacks stay, both without effect on the caller's
 * state, so neither can re-enter fwd:
 *  - env->send: the channel's answer (taken, or XE_BUSY) decides within
 *    the call whether a stanza is in flight or waits, in order, and bounds
 *    what waits (queue_max, inflight_max); a channel encodes the frame it
 *    takes (pchan_send), so an outbox here would copy every forwarded
 *    stanza once more on the hot path.
 *  - env->find: a lookup; when it finds no session a stanza from another
 *    node is bounced within the call (the ACK owes it), else listed.
 * Log sinks are outputs only. */
#ifndef XMPPD_FWD_H
#define XMPPD_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logging.h"
#include "pframe.h"

#define FWD_NO_DEADLINE UINT64_MAX

struct fwd_config {
    uint64_t node_id;     /* this node; non-zero */
    uint64_t incarnation; /* this process (random per start); non-zero */
    const char *name;     /* short node name for logs ("n1"); copied */
    size_t queue_max;     /* stanzas not handed to a channel yet; default 4096 */
    size_t queue_bytes;   /* their bytes (xml); default 64 MiB */
    size_t inflight_max;  /* stanzas handed to one node without an outcome;
                             default 4096, at most PFRAME_MAX_LIST */
    uint64_t hold_ms;     /* a stanza waits this long for a channel or a
                             complete table; default 5000 */
    uint64_t warmup_ms;   /* a new leader waits this long for reports; 2000 */
    size_t names_max;     /* names one node may hold in the table; 4096 */
};

/* fwd_config_default fills c with the defaults (ids 0, name NULL). */
void fwd_config_default(struct fwd_config *c);

struct fwd_env {
    void *ud;
    /* send hands frame f (borrowed; the callee copies what it keeps, e.g.
     * pchan_send) to node's channel; node is never this node.  Returns 0,
     * or XE_BUSY / another negative code when the channel cannot take it
     * now (fwd keeps what it must and tries again on fwd_pump).  It must
     * not call fwd. */
    int (*send)(void *ud, uint64_t node, struct pframe *f);
    /* find returns the local session that would take a stanza to 'to' (a
     * JID, borrowed), as a handle fwd never dereferences and hands back in
     * an FWD_ACT_DELIVER, or NULL when no local session holds it.  A
     * lookup only: it must not change what it looks in nor call fwd. */
    void *(*find)(void *ud, const char *to);
    const struct log_sink *log; /* may be NULL; borrowed */
};

/* What fwd asks of its caller for this node's sessions (fwd_take). */
enum fwd_act_kind {
    /* Write xml (len bytes), a stanza from 'from' to 'to', to the session
     * dest (env->find's answer for 'to').  Its outcome is decided only
     * once the caller has carried it out: when dest cannot take it (closed
     * since fwd found it, by an earlier act of the update or by what
     * carrying one out did; its connection refused the bytes) the caller
     * says so with fwd_undelivered, and the stanza is answered with an
     * error instead (its origin is owed a bounce), never acknowledged. */
    FWD_ACT_DELIVER,
    /* Close the local session sid of name (a component domain or a
     * client's full JID) with a conflict stream error (RFC 6120 §4.9.3.3):
     * a newer session of that name exists elsewhere.  The caller ignores
     * it when its session of that name has another sid. */
    FWD_ACT_CONFLICT,
};

struct fwd_act {
    enum fwd_act_kind kind;
    void *dest;            /* DELIVER: env->find's handle */
    const char *from, *to; /* DELIVER */
    const char *xml;       /* DELIVER */
    size_t len;            /* DELIVER */
    const char *name;      /* CONFLICT */
    uint64_t sid;          /* CONFLICT */
};

/* An update: acts[0..n), in the order fwd decided them. */
struct fwd_update {
    const struct fwd_act *acts;
    size_t n;
};

struct fwd;

/* fwd_new creates the forwarding state of one node.  cfg is copied (zero
 * fields take defaults), env copied (env->log borrowed).  Returns 0, XE_INVAL
 * (zero ids, inflight_max over PFRAME_MAX_LIST, missing callbacks) or
 * XE_NOMEM. */
int fwd_new(const struct fwd_config *cfg, const struct fwd_env *env, struct fwd **out);
/* fwd_free frees everything without calling env.  NULL is a no-op. */
void fwd_free(struct fwd *f);

/* fwd_take hands the caller the actions the fwd calls since the last take
 * listed, in order (u->n 0: none; cheap), and starts a new list.  They
 * stay valid until the next fwd_take or fwd_free, so the caller may call fwd (even
 * fwd_send) while it carries them out: what those calls decide goes to
 * the next take (take again until n is 0).  The strings are fwd's, except
 * those of a delivery of a FWD frame, which point into that frame: carry
 * out the take after fwd_input before releasing the frame.  Carry each
 * update out before the next fwd call that may list more (every call but
 * the const queries and fwd_get_stats).  A take first settles the
 * outcomes of the update taken before it (fwd_undelivered): the answers
 * that settling lists (to senders of deliveries undelivered) are in it. */
void fwd_take(struct fwd *f, struct fwd_update *u);

/* fwd_undelivered tells fwd that the caller could not carry out a (an
 * FWD_ACT_DELIVER of the update it took last, borrowed): no live session
 * took the bytes.  Call it while carrying that update out, before the
 * next fwd_take.  The next fwd_take gives each delivery of that update its
 * outcome, as known then: a stanza from another node is owed to its origin
 * as delivered, or as bounced when undelivered (the origin answers its
 * sender service-unavailable, RFC 6120 §8.3.3.19); a stanza of a local
 * sender that was undelivered is answered here the same way (the answer
 * is in that take); an error reply undelivered is dropped (§8.3.1).  So a
 * FWD is acknowledged only after its delivery was carried out: take until
 * n is 0 before fwd_flush. */
void fwd_undelivered(struct fwd *f, const struct fwd_act *a);

/* fwd_set_members gives the cluster's voting members (node ids, borrowed,
 * copied), this node included or not.  Stanzas handed to a node that is no
 * longer a member are dropped (lost), ACKs owed to it forgotten, and a
 * leader removes its names.  0/XE_NOMEM. */
int fwd_set_members(struct fwd *f, const uint64_t *ids, size_t n, uint64_t now_ms);

/* fwd_set_leader tells fwd who leads now and in which Raft term (leader 0:
 * none).  On a change a full SESSIONS report goes to the new leader; the
 * node that wins starts its table from its copy and the warmup.  Forwarding
 * does not wait for a leader: stanzas keep flowing with the copy of the
 * table.  0/XE_NOMEM. */
int fwd_set_leader(struct fwd *f, uint64_t leader, uint64_t term, uint64_t now_ms);

/* fwd_local_add records that the local session sid (non-zero, unique on
 * this node) now holds component domain name (prepared; copied) and
 * reports it to the leader; fwd_local_del removes it (only if sid
 * matches).  0/XE_INVAL/XE_NOMEM. */
int fwd_local_add(struct fwd *f, const char *name, uint64_t sid, uint64_t now_ms);
int fwd_local_del(struct fwd *f, const char *name, uint64_t sid, uint64_t now_ms);

/* fwd_local_add_attr is fwd_local_add with the entry's attributes (attr
 * borrowed, copied: kind, PFRAME_ATTR_AVAILABLE, priority; a client is
 * reported by its canonical full JID).  fwd_local_set_attr changes the
 * attributes of the local session sid of name (a presence change) and
 * reports them to the leader as an update: the entry keeps its order (an
 * update never makes a session newer, so it cannot win a conflict it lost);
 * a no-op when sid does not hold name here or nothing changed.  Both:
 * 0/XE_INVAL (a kind or flag out of range, PFRAME_ATTR_UPDATE given)/
 * XE_NOMEM. */
/* fwd_local_room tells whether this node may take one more session of
 * name: it holds name already (a replacement), or it holds fewer than
 * names_max names, the most the leader's table takes from one node (more
 * would be refused there and go unrouted). */
bool fwd_local_room(const struct fwd *f, const char *name);
int fwd_local_add_attr(struct fwd *f, const char *name, uint64_t sid,
                       const struct pframe_attr *attr, uint64_t now_ms);
int fwd_local_set_attr(struct fwd *f, const char *name, uint64_t sid,
                       const struct pframe_attr *attr, uint64_t now_ms);

/* fwd_send forwards a stanza a local session sent (from, to: its checked
 * JIDs; xml: len bytes; all borrowed, copied) to a destination that no
 * local session holds.  Returns 0 (accepted: exactly one outcome follows,
 * see above), XE_BUSY (the queue is full: answer wait/resource-constraint),
 * XE_INVAL or XE_NOMEM.  Error replies to the sender come later as
 * FWD_ACT_DELIVER (fwd_take). */
int fwd_send(struct fwd *f, const char *from, const char *to, const char *xml, size_t len,
             uint64_t now_ms);

/* fwd_input takes a frame (borrowed) received from node over the peer link
 * after pchan delivered it: FWD, ACK, SESSIONS, ROUTES or CONFLICT.  The
 * outcome of a FWD is owed to its origin, not sent: the caller calls
 * fwd_flush once it has given fwd the frames it has now (the end of a read
 * of the peer link, before that loop turn ends).
 * Returns 0, XE_INVAL (another type: not fwd's), XE_PROTO (the frame breaks
 * the protocol: DELIVER, a FWD whose origin is not the sender, an ACK for a
 * stanza never sent to that node, a report about another node, a node over
 * names_max; counted, nothing done) or XE_NOMEM. */
int fwd_input(struct fwd *f, uint64_t node, const struct pframe *fr, uint64_t now_ms);

/* fwd_flush sends what this node owes each origin for the FWDs fwd_input
 * took since the last flush and whose deliveries the caller carried out
 * (fwd_undelivered), as one ACK frame per origin (merged seq
 * ranges, at most PFRAME_MAX_LIST: an honest origin has at most
 * inflight_max stanzas in flight).  An ACK the channel refuses stays owed
 * and goes out on fwd_pump.  fwd_pump, fwd_tick and a link coming up
 * flush too.  Cheap when nothing is owed. */
void fwd_flush(struct fwd *f, uint64_t now_ms);

/* fwd_peer_reset tells fwd that the channel to node was reset (pchan
 * PCHAN_RESET: a process at either end restarted): stanzas handed to it
 * are lost, ACKs owed to it forgotten, and a leader forgets its names until
 * it reports again. */
void fwd_peer_reset(struct fwd *f, uint64_t node, uint64_t now_ms);

/* fwd_peer_link tells fwd that the connection to node came up or went
 * down.  A stanza is handed only to a node with a live connection: while
 * the link is down (the node crashed, or is cut off) stanzas for it wait
 * (at most hold_ms), so that they go to the node the name moves to rather
 * than into a channel whose other end may never read them.  Nodes start
 * down. */
void fwd_peer_link(struct fwd *f, uint64_t node, bool up, uint64_t now_ms);

/* fwd_pump retries what a full channel refused (call it when a channel has
 * room again).  fwd_tick runs what is due at now_ms (hold_ms expiries, the
 * end of the warmup); fwd_next_deadline says when fwd_tick should next run
 * (always later than the last tick's now_ms, or FWD_NO_DEADLINE). */
void fwd_pump(struct fwd *f, uint64_t now_ms);
void fwd_tick(struct fwd *f, uint64_t now_ms);
uint64_t fwd_next_deadline(const struct fwd *f);

/* fwd_waiting_for tells whether a stanza to the domain of JID to waits
 * here to be handed over: then a stanza to it that a local session could
 * take must go through fwd_send too, or it would overtake them (the name
 * moved here while they waited). */
bool fwd_waiting_for(const struct fwd *f, const char *to);

/* fwd_route_lookup returns the node holding domain (or the longest name it
 * is within) in this node's copy of the routing table, or 0. */
uint64_t fwd_route_lookup(const struct fwd *f, const char *domain);

/* fwd_route_has tells whether name (exactly, no domain matching) is in
 * this node's copy of the table, or was heard from another node in the
 * last hold_ms while the table lacked it (a FWD from it: its session is
 * newer than the table here). */
bool fwd_route_has(const struct fwd *f, const char *name);

/* fwd_each_route calls fn for every name in this node's copy of the table
 * (name borrowed for the call) with its node and order.  fn must not call
 * fwd. */
void fwd_each_route(const struct fwd *f,
                    void (*fn)(void *ud, const char *name, uint64_t node, uint64_t ord),
                    void *ud);

/* fwd_each_entry calls fn for every entry of this node's copy of the
 * table (e borrowed for the call: name, node, sid, order, attributes).
 * fn must not call fwd.  O(table).
 * fwd_each_of_bare does the same for the entries of full JIDs of bare JID
 * bare (canonical, no '/'), in no particular order: O(resources of bare),
 * since the table hashes the bare part of a name. */
void fwd_each_of_bare(const struct fwd *f, const char *bare,
                      void (*fn)(void *ud, const struct pframe_route *e), void *ud);
void fwd_each_entry(const struct fwd *f,
                    void (*fn)(void *ud, const struct pframe_route *e), void *ud);

/* fwd_routes_complete tells whether this node has the whole table (a
 * leader's full ROUTES, or it leads). */
bool fwd_routes_complete(const struct fwd *f);

struct fwd_stats {
    uint64_t forwarded;     /* stanzas accepted by fwd_send */
    uint64_t rejected;      /* fwd_send refused: queue full */
    uint64_t sent;          /* stanzas handed to a node's channel */
    uint64_t acked;         /* of those, delivered there */
    uint64_t refused;       /* of those, bounced there (no session) */
    uint64_t lost;          /* of those, dropped: that node restarted or left */
    uint64_t unroutable;    /* answered here: no node holds the name */
    uint64_t expired;       /* answered here: no channel took it in hold_ms */
    uint64_t delivered;     /* stanzas from other nodes delivered here */
    uint64_t bounced;       /* stanzas from other nodes refused here */
    uint64_t undelivered;   /* deliveries the caller could not carry out
                               (fwd_undelivered): answered, not delivered */
    uint64_t errors;        /* error replies given to local senders */
    uint64_t send_failures; /* env->send refusals */
    uint64_t acks_deferred; /* ACK frames a full channel refused (kept) */
    uint64_t protocol_errors;
    uint64_t conflicts; /* CONFLICTs decided as leader */
    uint64_t waiting;   /* now: stanzas not handed over yet */
    uint64_t inflight;  /* now: handed over, no outcome yet */
    size_t routes;      /* names in this node's table */
};

void fwd_get_stats(const struct fwd *f, struct fwd_stats *out);

#endif
