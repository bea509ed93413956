/* internal.h: the instance layout and the functions shared by the core's
 * source files (raft.c: stepping and status; election.c: votes, PreVote,
 * transfer; replication.c: appends, commit, snapshots, membership; log.c: the
 * in-memory log).  Not part of the API. */
#ifndef RAFT_INTERNAL_H
#define RAFT_INTERNAL_H

#include <assert.h>

#include "raft.h"

/* RAFT_NEVER(cond) is true when cond is, for a case that only a bug of the
 * driver (never a peer's message) can bring about; the code after it takes
 * the safe branch.  With NDEBUG undefined a true cond also fails an assert.
 * The library is built with -UNDEBUG (CMakeLists.txt), so that, like the role
 * preconditions (plain asserts at the top of the functions), it stops a
 * buggy driver in every build; a build that would rather refuse the event
 * defines NDEBUG.  xmppd's core has the same macro as XD_NEVER (never.h). */
#ifdef NDEBUG
#define RAFT_NEVER(cond) __builtin_expect(!!(cond), 0)
#else
#define RAFT_NEVER(cond) ((cond) ? (assert(!"RAFT_NEVER: " #cond), 1) : 0)
#endif

/* The in-memory log: e[0] holds index offset + 1.  Entry data is owned. */
struct raft__log {
    struct raft_entry *e;
    size_t n;
    size_t cap;
    uint64_t offset;      /* index before e[0]: compacted up to here */
    uint64_t offset_term; /* term of the entry at offset (0 if offset 0) */
};

/* Leader's view of one peer, and a candidate's tally of its vote. */
struct raft__peer {
    uint64_t id;
    uint64_t next;
    uint64_t match;
    uint64_t last_contact;
    uint64_t snapshot_sent_at;
    bool probing;
    bool active; /* heard from since the last CheckQuorum round */
    /* Leader: a member that a configuration we appended removed.  It still
     * gets appends (so it learns of its removal, and when that commits) but
     * counts nowhere; dropped depart_after the removal is committed. */
    bool departing;
    uint64_t depart_index; /* the configuration entry that removed it */
    uint64_t depart_after; /* 0 until the removal commits */
    bool voted;            /* answered our (pre-)vote */
    bool transfer_tried;   /* a transfer to any voter tried this one */
    bool granted;
};

struct raft {
    struct raft_options o;
    bool started;
    enum raft_role role;
    uint64_t term;
    uint64_t vote;
    uint64_t leader_id;
    uint64_t now;

    struct raft__log log;
    uint64_t commit;
    uint64_t applied;
    uint64_t persisted;

    struct raft_config config; /* latest, applies as soon as appended */
    uint64_t config_index;
    struct raft_config config_c; /* latest committed (applied) */

    struct raft_snapshot snap; /* data owned; index 0 when none */

    uint64_t election_deadline;
    uint64_t heartbeat_deadline;
    uint64_t quorum_deadline;
    uint64_t leader_contact;
    /* Crash fast path: the leader whose link the transport reported down
     * (0: none since we last heard a leader), and when to check for the
     * second signal, a missed heartbeat (0: no check pending). */
    uint64_t down_leader;
    uint64_t fast_deadline;

    /* members but us, then departing members (room for as many) */
    struct raft__peer peers[2 * RAFT_MAX_MEMBERS];
    unsigned n_peers;
    uint64_t term_start; /* leader: index of its first entry of the term */
    uint64_t transfer_to;
    uint64_t transfer_deadline;
    uint64_t promote_id;
    uint64_t promote_deadline;
    /* RAFT_EV_STANDBY: on standby, and the election timeouts that fired
     * in a row since a leader was last heard (reset by hearing one). */
    bool standby;
    unsigned standby_skips;
    /* Leader, transfer to "any" (to 0): the voters tried so far are
     * marked transfer_tried in peers; the next is tried on expiry. */
    bool transfer_any;
    bool was_member; /* a committed configuration held this node */
    bool removed;    /* and a later committed one does not (raft.h) */

    uint64_t rng;
    struct raft_counters counters;

    /* What the current step produced (reset at each raft_step). */
    struct raft_message *out;
    unsigned n_out;
    unsigned cap_out;
    bool st_term_vote;
    bool st_snapshot;
    bool st_restore;
    uint64_t st_truncate;
    uint64_t st_append_from;
    uint64_t st_compact;
    enum raft_role st_role;
    uint64_t st_leader;
    uint64_t st_term;
    bool st_config;
    bool st_removed;
    int st_err; /* first allocation failure while producing output */
};

/* log.c */
void raft__log_init(struct raft__log *l);
void raft__log_free(struct raft__log *l);
uint64_t raft__log_last(const struct raft__log *l);
uint64_t raft__log_last_term(const struct raft__log *l);
/* raft__log_term: the term at index, 0 if outside [offset, last]. */
uint64_t raft__log_term(const struct raft__log *l, uint64_t index);
/* raft__log_get: the entry at index (pointer into the log), or NULL. */
struct raft_entry *raft__log_get(const struct raft__log *l, uint64_t index);
/* raft__log_append copies e (and its data) to index last + 1. */
int raft__log_append(struct raft__log *l, uint64_t term, enum raft_entry_type type,
                     const struct raft_buffer *data);
void raft__log_truncate(struct raft__log *l, uint64_t from);
void raft__log_compact(struct raft__log *l, uint64_t to);
void raft__log_reset(struct raft__log *l, uint64_t index, uint64_t term);

/* raft.c */
uint64_t raft__random_timeout(struct raft *r);
uint64_t raft__random_below(struct raft *r, uint64_t n);
void raft__reset_election_timer(struct raft *r);
struct raft_message *raft__send(struct raft *r, enum raft_msg_type type, uint64_t to);
void raft__set_term(struct raft *r, uint64_t term);
void raft__become_follower(struct raft *r, uint64_t term, uint64_t leader);
void raft__set_leader(struct raft *r, uint64_t leader);
bool raft__is_voter(const struct raft *r, uint64_t id);
unsigned raft__quorum(const struct raft *r);
struct raft__peer *raft__peer(struct raft *r, uint64_t id);
void raft__peers_sync(struct raft *r);
void raft__config_recompute(struct raft *r);
void raft__config_committed(struct raft *r);
bool raft__departing(const struct raft *r, uint64_t id);

/* election.c */
void raft__campaign(struct raft *r, bool pre_vote, bool transfer);
void raft__recv_vote(struct raft *r, const struct raft_message *m);
void raft__recv_vote_result(struct raft *r, const struct raft_message *m);
void raft__recv_timeout_now(struct raft *r, const struct raft_message *m);
int raft__transfer(struct raft *r, uint64_t to);
void raft__transfer_progress(struct raft *r, struct raft__peer *p);
void raft__peer_down(struct raft *r, uint64_t id);
bool raft__fast_path_tick(struct raft *r);
/* raft__transfer_expired: the leader's transfer target did not take over in
 * time; a transfer to any voter tries the next one, else it is given up. */
void raft__transfer_expired(struct raft *r);
/* raft__standby: RAFT_EV_STANDBY. */
void raft__standby(struct raft *r, bool on);
bool raft__in_lease(const struct raft *r);
bool raft__vote_ignored(struct raft *r, const struct raft_message *m);

/* replication.c */
void raft__become_leader(struct raft *r);
void raft__send_append(struct raft *r, struct raft__peer *p);
void raft__broadcast(struct raft *r, bool heartbeat);
void raft__recv_append(struct raft *r, const struct raft_message *m);
void raft__recv_snapshot(struct raft *r, const struct raft_message *m);
void raft__recv_append_result(struct raft *r, const struct raft_message *m);
void raft__maybe_commit(struct raft *r);
int raft__submit(struct raft *r, enum raft_entry_type type, const struct raft_buffer *d,
                 uint64_t *index);
int raft__change(struct raft *r, const struct raft_event *ev, uint64_t *index);
void raft__promote_progress(struct raft *r, struct raft__peer *p);
int raft__take_snapshot(struct raft *r, uint64_t index, const struct raft_buffer *d);
void raft__leader_tick(struct raft *r);
void raft__departing_tick(struct raft *r);

#endif
