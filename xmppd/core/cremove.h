/* cremove.h: removal from the cluster, as a pure state machine: which
 * members left this node's cluster (so that their HELLOs are answered "you
 * were removed"), and whether this node itself was removed (docs/cluster.md
 * "Removal"; the convention of creq.h: events in, an update out).
 *
 * A removed node must learn it: Raft stops replicating
 * to a removed member (thesis §4.2.2), so it hears it from its own log if
 * the entry reached it, from the leader's note (NOTE_REMOVED) right after
 * the change, or from any member it dials (a REFUSE with code REMOVED).  It
 * then says so once (the update's became_removed: the edge logs it, shows
 * `State: REMOVED` with the way back, stops serving XMPP (defect 2: its
 * sessions' stanzas would go nowhere) and stops dialling the members), and
 * stays so until its store is replaced (a join, or going alone).
 *
 * Pure: no I/O, no clock. */
#ifndef XMPPD_CREMOVE_H
#define XMPPD_CREMOVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pframe.h"

#define CREMOVE_MAX_MEMBERS 16 /* raft.h RAFT_MAX_MEMBERS */
#define CREMOVE_GONE_MAX 64    /* removed members remembered (the latest) */

struct cremove {
    bool removed; /* this node was removed from its cluster */
    /* Members this node saw leave the committed configuration since it
     * started (a ring of the latest CREMOVE_GONE_MAX).  seen: the
     * committed configuration's ids when last looked at. */
    uint64_t seen[CREMOVE_MAX_MEMBERS];
    unsigned n_seen;
    bool seen_valid;
    uint64_t gone[CREMOVE_GONE_MAX];
    unsigned n_gone;
};

/* What this node knows of its cluster when an event comes. */
struct cremove_view {
    uint64_t cluster_id; /* this node's cluster */
    /* the latest configuration (maybe uncommitted): ids and addresses
     * (borrowed) */
    const uint64_t *ids;
    const char *const *addrs;
    unsigned n;
};

enum cremove_event_type {
    CREMOVE_EV_COMMITTED = 1, /* the committed configuration (ids) now */
    CREMOVE_EV_LOG,           /* this node's log removes it (Raft says) */
    CREMOVE_EV_REFUSED,       /* a peer we dialled refused our HELLO */
    CREMOVE_EV_NOTE,          /* a member sent NOTE_REMOVED */
    CREMOVE_EV_REPLACED,      /* the store was replaced: not removed */
};

struct cremove_event {
    enum cremove_event_type type;
    const struct cremove_view *view; /* every event but REPLACED */
    union {
        struct {
            const uint64_t *ids; /* the committed configuration's members */
            unsigned n;
        } committed;
        struct {
            uint64_t from; /* the refusing peer's id (0: not known) */
            const struct pframe_refuse *r;
        } refused;
        struct {
            uint64_t from;
            bool guest; /* from a node asking to join: not believed */
            uint64_t cluster_id;
        } note;
    } u;
};

struct cremove_update {
    bool became_removed; /* now, once: log, status, stop serving, stop dialling */
    char how[80];        /* who said so, for the log */
};

/* cremove_step feeds ev (borrowed) to r and fills *u (caller's storage).
 * 0 or XE_INVAL (an unknown event, a missing view). */
int cremove_step(struct cremove *r, const struct cremove_event *ev,
                 struct cremove_update *u);

/* cremove_gone: id left this cluster's committed configuration while this
 * node watched. */
bool cremove_gone(const struct cremove *r, uint64_t id);

/* How this node answers a HELLO. */
enum cremove_hello {
    CREMOVE_HELLO_MEMBER = 0, /* a member (or no configuration yet) */
    CREMOVE_HELLO_JOINER,     /* cluster id 0: a node asking to join */
    CREMOVE_HELLO_SUCCESSOR,  /* a new id at a member's address: take the log */
    CREMOVE_HELLO_OTHER,      /* refused: another cluster */
    CREMOVE_HELLO_REMOVED,    /* refused: it was removed (REFUSE code REMOVED) */
    CREMOVE_HELLO_STRANGER,   /* refused: not a member */
};

/* cremove_hello decides the HELLO h (borrowed) of a peer that dialled this
 * node, given what v says: *out the verdict, why its reason for the peer
 * (refusals).  0 (accepted), XE_PERM (another cluster, not a member) or
 * XE_NOTFOUND (removed: plink sends a REFUSE with code REMOVED). */
int cremove_hello(const struct cremove *r, const struct cremove_view *v,
                  const struct pframe_hello *h, enum cremove_hello *out, char *why,
                  size_t whylen);

/* A membership change this leader made, for cremove_change_done. */
enum cremove_change_kind {
    CREMOVE_CHANGE_OTHER = 0, /* add or promote: removes no one */
    CREMOVE_CHANGE_REMOVE,    /* removes member id */
    CREMOVE_CHANGE_REPLACE,   /* removes member old_id (id takes its place) */
};

struct cremove_change {
    enum cremove_change_kind kind;
    uint64_t id;     /* the member removed (REMOVE) or added (REPLACE) */
    uint64_t old_id; /* REPLACE: the member it removes */
};

/* cremove_change_done decides, when the change ch (borrowed) this leader
 * (self) made ends with rc, whom to tell that it was removed (a
 * NOTE_REMOVED to it: Raft stops replicating to a
 * removed member, thesis §4.2.2, so it may never read its removal): the
 * member the change removed, once the change committed (rc 0), while this
 * node still runs (running), and never this node itself (it reads its own
 * log).  Returns that member's id, or 0: tell no one. */
uint64_t cremove_change_done(const struct cremove_change *ch, int rc, uint64_t self,
                             bool running);

#endif
