/* fwd_int.h: the inside of struct fwd, shared by fwd.c (origin, delivering
 * node, inputs and timers) and fwd_route.c (the leader's routing table,
 * session reports and held stanzas).  Not part of the API: callers use
 * fwd.h only. */
#ifndef XMPPD_FWD_INT_H
#define XMPPD_FWD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "fwd.h"

/* An unacked stanza of this origin. */
struct fwd_ent {
    uint64_t seq;
    char *from, *to, *xml;
    size_t len;
    bool acked;
    bool sent;        /* sent at least once (a later send is a replay) */
    uint64_t sent_ms; /* last send */
};

/* Exact dedup for one origin incarnation: bit s % FWD_WINDOW for seqs in
 * [base, base + FWD_WINDOW); every seq below base had its outcome. */
struct fwd_win {
    uint64_t origin, inc;
    uint64_t base;
    uint64_t used; /* LRU stamp */
    uint64_t gap;  /* highest FWD seq dropped here unrouted; 0: none */
    uint64_t bits[FWD_WINDOW / 64];
};

/* ACKs owed to one origin incarnation that its channel has not taken yet
 * (full): ascending, disjoint, merged ranges of seqs, sent as one ACK frame
 * as soon as the channel has room (docs/cluster.md "Limits"). */
#define FWD_ACK_RANGES 1024
struct fwd_pack {
    uint64_t origin, inc;
    uint64_t used; /* LRU stamp (win_clock) */
    struct pframe_range *r;
    size_t n, cap;
};

struct fwd_route {
    char *name;
    uint64_t node;
    uint64_t since;
};

struct fwd_local {
    char *name;
    uint64_t since;
};

/* A stanza the new leader holds until the names are reported. */
struct fwd_held {
    uint64_t node; /* who sent the FWD (origin) */
    struct fwd_ent e;
    uint64_t origin, inc, low_water;
};

struct fwd_member {
    uint64_t id;
    bool reported; /* sent its full report to this leader */
};

/* Reports that came before this node knew it leads their term (the node
 * that sent one learnt of the election first): kept encoded, applied when
 * this node takes the lead in that term. */
#define FWD_MAX_EARLY 64

struct fwd {
    struct fwd_config cfg;
    char *name;
    struct fwd_env env;
    uint64_t now;

    /* origin */
    struct fwd_ent *ring; /* queue_max slots; seqs front..next_seq-1 */
    size_t head, count;
    uint64_t front_seq, next_seq, cursor; /* cursor: next seq to send */
    uint64_t leader;
    uint64_t term; /* the term leader was learnt in */
    bool pumping;
    bool need_full; /* the leader needs a full SESSIONS report */
    uint64_t generation;
    struct fwd_local *locals;
    size_t nlocals, locals_cap;

    /* delivering */
    struct fwd_win **wins;
    size_t nwins;
    uint64_t win_clock;
    struct fwd_pack *acks; /* max_windows slots: one per origin incarnation */
    size_t nacks;

    /* leader */
    struct fwd_route *routes;
    size_t nroutes, routes_cap;
    struct fwd_member *members;
    size_t nmembers;
    uint64_t warm_until; /* 0 when warm */
    struct fwd_held *held;
    size_t nheld;
    struct buf early[FWD_MAX_EARLY];
    size_t nearly;

    struct fwd_stats st;
};

#define FLOG(f, lvl, fmt, ...)                                                           \
    LOG((f)->env.log, lvl, "%s fwd " fmt, (f)->name, __VA_ARGS__)
/* fwd__ent_clear frees e's strings and zeroes it. */
void fwd__ent_clear(struct fwd_ent *e);

/* fwd__outcome_here gives fw its outcome on this node once per (origin,
 * incarnation, seq): delivered to the local session (cond NULL; a bounce
 * service-unavailable when none holds it) or bounced with type/cond; then
 * ACKs the origin.  A duplicate is only ACKed again.  0, or XE_PROTO for a
 * seq beyond the window (counted). */
int fwd__outcome_here(struct fwd *f, const struct pframe_fwd *fw, const char *type,
                      const char *cond);

/* Leader side (fwd_route.c). */

/* fwd__routes_clear empties the routing table. */
void fwd__routes_clear(struct fwd *f);
/* fwd__table_add records that node holds name since `since`; the newer of
 * two sessions of one name wins and the other's node is sent CONFLICT.
 * fwd__table_del removes name if node holds it with that since.
 * fwd__table_forget_node removes every name of node. */
void fwd__table_add(struct fwd *f, uint64_t node, const char *name, uint64_t since);
void fwd__table_del(struct fwd *f, uint64_t node, const char *name, uint64_t since);
void fwd__table_forget_node(struct fwd *f, uint64_t node);
/* fwd__warming tells whether this new leader still holds unknown names. */
bool fwd__warming(const struct fwd *f);
/* fwd__handle_sessions applies a SESSIONS report from node (kept for later
 * when it is meant for a leadership this node has not learnt yet).
 * 0/XE_PROTO (the report is about another node). */
int fwd__handle_sessions(struct fwd *f, uint64_t node, const struct pframe_sessions *s);
/* fwd__apply_early applies kept reports meant for the current leadership
 * and drops those that can no longer be. */
void fwd__apply_early(struct fwd *f);
/* fwd__route_fwd routes a FWD received from from_node (or this node's own,
 * looped back) as leader: deliver here, DELIVER, hold or bounce. */
void fwd__route_fwd(struct fwd *f, uint64_t from_node, const struct pframe_fwd *fw);
/* fwd__recheck_held routes held stanzas whose names are now known, and all
 * of them once the warmup is over. */
void fwd__recheck_held(struct fwd *f);

#endif
