/* fwd_int.h: the inside of struct fwd, shared by fwd.c (origin, receiving
 * node, inputs and timers) and fwd_route.c (the routing table, session
 * reports and the leader's side).  Not part of the API: callers use fwd.h
 * only. */
#ifndef XMPPD_FWD_INT_H
#define XMPPD_FWD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "fwd.h"
#include "htab.h"

/* A stanza of this origin without an outcome yet: waiting (node 0, on the
 * unsent queue) or handed to node's channel (on that peer's inflight
 * queue).  It is on exactly one queue. */
struct fwd_ent {
    uint64_t seq;
    /* All in the one allocation of the entry (fwd_send): a stanza costs one
     * malloc and one free. */
    char *from, *to, *xml;
    size_t len;
    const char *domain; /* to's domain, prepared; NULL: to is not a JID */
    const char *full;   /* to as a full JID (a client's name), or NULL */
    uint64_t queued_ms; /* when fwd_send took it */
    uint64_t node;      /* 0 until handed to a channel */
    struct fwd_ent *next;
};

/* A FIFO of entries, bounded by the caller in count and bytes. */
struct fwd_q {
    struct fwd_ent *head, *tail;
    size_t n, bytes;
};

/* Ascending, disjoint seq ranges (owed ACKs). */
struct fwd_rset {
    struct pframe_range *r;
    size_t n, cap;
};

/* What this node knows of another node (or of itself, for the leader's
 * name counts). */
struct fwd_peer {
    uint64_t id;
    bool member;
    bool link_up;          /* a connection to it is up (fwd_peer_link) */
    struct fwd_q inflight; /* our stanzas it owns now, in hand-over order */
    bool blocked;          /* its channel refused a FWD in this pump pass */
    /* ACKs owed to it as an origin (incarnation owe_inc), sent as one
     * frame when its channel takes it. */
    uint64_t owe_inc;
    struct fwd_rset owe_d, owe_b;
    /* leader */
    size_t names;   /* names it holds in the table */
    bool reported;  /* sent its full report to this leadership */
    bool synced;    /* was sent the whole table by this leadership */
    bool want_full; /* a ROUTES it should have got was refused */
};

/* The routing table (a leader's, or a member's copy of it): htab.h's
 * table, chained on the hash of the bare part of the name. */
struct fwd_route {
    struct hlink link; /* in fwd_table.h */
    char *name;
    uint64_t node, sid, ord;
    struct pframe_attr attr; /* kind, availability, priority (no UPDATE) */
    uint64_t gen;            /* the table's gen when last set */
    bool keep;               /* scratch of bulk removals (drop_unkept): stays */
};

/* A member's copy is replaced by a leader's whole table without being
 * emptied first: RESET starts a new gen, entries sent get it, and COMPLETE
 * drops the entries of earlier gens; until then the old entries still
 * route (a stale one costs a bounce, an empty table would cost every
 * stanza: leaders can change faster than a table is sent). */
struct fwd_table {
    struct htab h; /* of fwd_route.link; no buckets before the first entry */
    uint64_t gen;
    bool resync; /* a RESET came, its COMPLETE has not */
};

struct fwd_local {
    char *name;
    uint64_t sid, ord; /* ord 0: no leader has ordered it yet */
    struct pframe_attr attr;
};

/* A batch of table changes, sent to members as one ROUTES delta.  The
 * names are owned. */
struct fwd_delta {
    struct pframe_route *add, *del;
    size_t nadd, ndel, cadd, cdel;
};

/* Reports that came before this node knew it leads their term: kept
 * encoded, applied when it does. */
#define FWD_MAX_EARLY 64

/* A name this node heard from another node before the table had it: the
 * origin of a FWD from that name (fwd_heard.c). */
#define FWD_HEARD_MAX 256
struct fwd_heard {
    char *name; /* owned; NULL: free slot */
    uint64_t node;
    uint64_t until; /* forgotten at this time (now + hold_ms) */
};

/* Whose stanza a listed delivery carries, so that it gets its outcome
 * once the caller has carried it out (fwd__settle). */
enum fwd_src {
    FWD_SRC_REPLY, /* an error reply fwd made for a local sender */
    FWD_SRC_OURS,  /* a stanza of a local sender, delivered here */
    FWD_SRC_HELD,  /* a FWD from origin node: its outcome is owed there */
};

/* What fwd keeps of an act beside it (fwd_act.c). */
struct fwd_note {
    bool own;         /* its strings are arena offsets until taken */
    bool undelivered; /* the caller said so (fwd_undelivered) */
    uint8_t src;      /* DELIVER: enum fwd_src */
    uint32_t peer;    /* HELD: the origin, its index in f->peers (stable:
                         records are only added) */
    uint64_t inc;     /* HELD: the origin's incarnation */
    uint64_t seq;     /* HELD: the origin's seq; OURS: ours (for logs) */
};

/* A list of actions (fwd_act.c).  Strings fwd copies go to arena; while
 * listed, such an act holds offsets into it (note[i].own), made pointers
 * when the list is taken. */
struct fwd_acts {
    struct fwd_act *a;
    struct fwd_note *note;
    size_t n, cap;
    size_t nown;   /* acts with note[i].own */
    size_t nheld;  /* DELIVERs of FWDs (FWD_SRC_HELD): owed at settle */
    size_t nundel; /* acts marked undelivered */
    struct buf arena;
};

struct fwd {
    struct fwd_config cfg;
    char *name;
    struct fwd_env env;
    uint64_t now;
    /* lists[cur]: the update being listed; the other one: the update the
     * caller took last (valid until the next take).  handed: that one
     * has not been settled yet (fwd__settle at the next take). */
    struct fwd_acts lists[2];
    unsigned cur;
    bool handed;

    /* origin */
    uint64_t next_seq;
    struct fwd_q unsent;
    bool owed; /* a FWD was given its outcome since the last fwd_flush */
    struct fwd_peer *peers;
    size_t npeers, peers_cap;

    /* membership and leadership */
    uint64_t leader, term;
    bool need_full; /* the leader needs a full SESSIONS report */
    uint64_t generation;
    struct fwd_local *locals;
    size_t nlocals, locals_cap;

    /* the table */
    struct fwd_table table;
    bool complete;
    struct fwd_heard heard[FWD_HEARD_MAX]; /* a ring: the oldest is replaced */
    size_t heard_next, heard_n;            /* next slot to fill; slots in use */

    /* leader */
    uint64_t next_ord;
    uint64_t warm_until; /* 0 when warm */
    struct buf early[FWD_MAX_EARLY];
    size_t nearly;

    struct fwd_stats st;
};

#define FLOG(f, lvl, fmt, ...)                                                           \
    LOG((f)->env.log, lvl, "%s fwd " fmt, (f)->name, __VA_ARGS__)

/* fwd__peer returns the record of node id, made on first use (create) or
 * NULL (not known, or no memory). */
struct fwd_peer *fwd__peer(struct fwd *f, uint64_t id, bool create);
/* fwd__is_member tells whether id is a voting member now (this node is
 * always one to itself). */
bool fwd__is_member(const struct fwd *f, uint64_t id);
/* Actions (fwd_act.c).  fwd__act_deliver lists a delivery to dest (an
 * env->find handle), copying the strings (copy) or borrowing them (a FWD
 * frame's, valid until the caller takes the update); src says whose
 * stanza it is (peer, inc, seq: see struct fwd_note);
 * fwd__act_conflict lists a conflict for name (copied).  0/XE_NOMEM
 * (nothing listed).  fwd__acts_free frees both lists. */
int fwd__act_deliver(struct fwd *f, void *dest, const char *from, const char *to,
                     const char *xml, size_t len, bool copy, enum fwd_src src,
                     uint32_t peer, uint64_t inc, uint64_t seq);
int fwd__act_conflict(struct fwd *f, const char *name, uint64_t sid);
void fwd__acts_free(struct fwd *f);
/* fwd__settle gives each delivery of t, the update the caller carried
 * out, its outcome now that it is known: a FWD's is owed to its origin
 * (delivered, or bounced when the caller said it was undelivered), a
 * stanza of ours not delivered is answered to its sender (fwd.c).  What
 * it lists goes to the list being listed, not t. */
void fwd__settle(struct fwd *f, const struct fwd_acts *t);

/* fwd__pump hands waiting stanzas to channels (fwd.c). */
void fwd__pump(struct fwd *f);
/* fwd__local_find returns this node's session record of name, or NULL. */
struct fwd_local *fwd__local_find(const struct fwd *f, const char *name);

/* Names heard before the table had them (fwd_heard.c).  A stanza from a
 * session that has just bound on another node arrives straight from that
 * node (FWD), while the session's entry goes through the leader (SESSIONS,
 * then ROUTES) and may come later: an immediate reply to it would find no
 * route and bounce.  fwd__heard_note remembers, for hold_ms, that name
 * (a FWD's sender) is on node when the table lacks it; fwd__heard_node
 * returns that node for name, or 0 (forgotten, expired, or the table has
 * it now and decides).  fwd__heard_free frees the ring. */
void fwd__heard_note(struct fwd *f, const char *name, uint64_t node);
uint64_t fwd__heard_node(const struct fwd *f, const char *name);
void fwd__heard_free(struct fwd *f);

/* Table (fwd_route.c). */
void fwd__table_free(struct fwd_table *t);
struct fwd_route *fwd__table_find(const struct fwd_table *t, const char *name);
/* fwd__route_set puts name -> (node, sid, ord, attr) into this node's table and
 * applies what it means here: the order of one of our sessions, or a
 * conflict for an older one.  fwd__route_del removes name if node holds
 * it.  0/XE_NOMEM. */
int fwd__route_set(struct fwd *f, const char *name, uint64_t node, uint64_t sid,
                   uint64_t ord, const struct pframe_attr *attr);
void fwd__route_del(struct fwd *f, const char *name, uint64_t node);

/* Reports and ROUTES (fwd_route.c). */
/* fwd__send_full_report sends every local session to the leader (or, on
 * the leader, applies them). */
int fwd__send_full_report(struct fwd *f);
/* fwd__report_one reports one added or removed local session, or (attr
 * with PFRAME_ATTR_UPDATE) new attributes of one. */
int fwd__report_one(struct fwd *f, const char *name, uint64_t sid, uint64_t ord,
                    const struct pframe_attr *attr, bool add);
/* fwd__handle_sessions applies a SESSIONS report from node as leader (kept
 * for later when it is meant for a leadership this node has not learnt
 * yet).  0/XE_PROTO. */
int fwd__handle_sessions(struct fwd *f, uint64_t node, const struct pframe_sessions *s);
/* fwd__handle_routes applies the leader's ROUTES.  0/XE_PROTO. */
int fwd__handle_routes(struct fwd *f, uint64_t node, const struct pframe_routes *r);
/* fwd__lead starts this node's leadership of term (table from its copy,
 * warmup); fwd__apply_early applies kept reports meant for it. */
void fwd__lead(struct fwd *f);
void fwd__apply_early(struct fwd *f);
/* fwd__forget_node removes every name of node from the table (leader:
 * and tells the members). */
void fwd__forget_node(struct fwd *f, uint64_t node);
/* fwd__leader_pump resends whole tables that channels refused;
 * fwd__leader_tick ends the warmup. */
void fwd__leader_pump(struct fwd *f);
void fwd__leader_tick(struct fwd *f);

#endif
