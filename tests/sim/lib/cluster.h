/* cluster.h: an in-memory Raft cluster on a virtual clock, for tests.
 *
 * N raft instances, a network that delivers deep-copied messages after a
 * latency and can drop them (cut links, partitions, random loss), persistence
 * in memory that is carried out synchronously before an update's messages
 * are queued (the send rule of raft.h), crash and restart that keep only what
 * was persisted, and invariant checks after every step:
 *   election safety     at most one leader per term;
 *   state machine safety every node applies the same entry at each index;
 *   leader completeness a new leader holds every entry applied anywhere;
 *   leader append-only  a leader never truncates its log in its term;
 *   log matching        (cl_check_logs) same index and term => same prefix.
 * A violation is recorded in c->violation (first one wins) and reported by
 * cl_ok(); tests check it.
 *
 * Nodes are addressed by their slot (0-based) in the API; raft ids of the
 * bootstrap nodes are slot + 1 and addresses "10.0.0.<id>:5224".
 *
 * Everything here is deterministic for a given seed. */
#ifndef SIM_CLUSTER_H
#define SIM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

#define CL_MAX_NODES 16

/* The in-memory stable storage of one node. */
struct cl_store {
    uint64_t term;
    uint64_t vote;
    struct raft_snapshot snap; /* index 0 when none; data owned */
    struct raft_entry *ents;   /* contiguous; data owned */
    size_t n;
    size_t cap;
};

struct cl_node {
    uint64_t id;
    char address[RAFT_ADDR_MAX];
    struct raft_options opts;
    struct raft *r; /* NULL while crashed */
    struct cl_store store;
    uint64_t deadline;
    /* application state: number of entries applied and a running hash */
    uint64_t applied;
    uint64_t app_hash;
    enum raft_role role; /* as of the last update, for tracing */
    uint64_t term;
    uint64_t leader;
};

struct cl_msg {
    uint64_t at;           /* delivery time */
    uint64_t seq;          /* tie-break: send order */
    struct raft_message m; /* deep copy: entries and data owned */
};

/* Applied-entry record, for state machine safety. */
struct cl_applied {
    uint64_t term;
    uint64_t hash;
};

/* trace receives one line (no newline) per thing that happened. */
typedef void (*cl_trace_fn)(void *ud, const char *line);

struct cluster {
    uint64_t now;
    uint64_t cluster_id;
    unsigned n;
    struct cl_node nodes[CL_MAX_NODES];
    struct raft_options tmpl; /* options for new nodes (id filled in) */

    /* network */
    struct cl_msg *q;
    size_t nq;
    size_t capq;
    uint64_t seq;
    unsigned latency_ms;                  /* fixed part */
    unsigned jitter_ms;                   /* random extra in [0, jitter) */
    unsigned drop_pct;                    /* random loss in percent */
    unsigned dup_pct;                     /* random duplication in percent */
    bool cut[CL_MAX_NODES][CL_MAX_NODES]; /* cut[a][b]: a -> b dropped */
    uint64_t rng;

    /* invariants */
    uint64_t *leader_of_term; /* indexed by term */
    uint64_t *commit_of_term; /* highest index committed by that leader */
    size_t n_terms;
    struct cl_applied *applied; /* indexed by log index - 1 */
    size_t n_applied;
    char violation[256];

    /* stats */
    uint64_t delivered;
    uint64_t dropped;
    uint64_t elections_won;

    cl_trace_fn trace;
    void *trace_ud;
    bool trace_msgs;
};

/* cl_init builds a cluster of n voters bootstrapped with one configuration
 * entry (index 1, term 1), started at time 0.  o is the options template
 * (id, cluster_id and seed are filled per node; o may be NULL for the
 * default profile).  Returns 0 or a RAFT_E code. */
int cl_init(struct cluster *c, unsigned n, uint64_t seed, const struct raft_options *o);

/* cl_free releases everything. */
void cl_free(struct cluster *c);

/* cl_add_node creates a node with empty storage (a joining node, or a node
 * reset with a new id) and starts it; returns its slot or a RAFT_E code. */
int cl_add_node(struct cluster *c, uint64_t id, const char *address);

/* cl_slot returns the slot of raft id, or -1. */
int cl_slot(const struct cluster *c, uint64_t id);

/* cl_step feeds ev to the node in slot i (ev->now is set to c->now) and
 * carries out the update; returns raft_step's code. */
int cl_step(struct cluster *c, unsigned i, struct raft_event *ev);

/* cl_crash drops the instance (keeps the store); cl_restart starts a new one
 * from the store. */
void cl_crash(struct cluster *c, unsigned i);
int cl_restart(struct cluster *c, unsigned i);

/* cl_deliver_one delivers the earliest queued message now (ignoring its
 * delivery time); false when the queue is empty. */
bool cl_deliver_one(struct cluster *c);

/* cl_stabilize delivers messages until none is left, without advancing the
 * clock or firing timers (max bounds the count; returns false if hit). */
bool cl_stabilize(struct cluster *c, unsigned max);

/* cl_run advances the clock by ms, delivering messages when due and ticking
 * nodes at their deadlines, in time order. */
void cl_run(struct cluster *c, uint64_t ms);

/* cl_fire_timer sets the clock to the node's deadline (if later) and ticks
 * it, as if its timer fired; other nodes are not ticked. */
void cl_fire_timer(struct cluster *c, unsigned i);

/* Network faults. */
void cl_isolate(struct cluster *c, unsigned i);
void cl_heal(struct cluster *c);
void cl_cut(struct cluster *c, unsigned from, unsigned to, bool cut);

/* cl_leader returns the slot of a node that is leader in the highest term
 * among live leaders, or -1. */
int cl_leader(const struct cluster *c);

/* cl_submit submits data at slot i; *index (may be NULL) gets its index. */
int cl_submit(struct cluster *c, unsigned i, const char *data, uint64_t *index);

/* cl_check_logs checks log matching over all stores (records a violation). */
void cl_check_logs(struct cluster *c);

/* cl_ok returns true while no invariant was violated. */
bool cl_ok(const struct cluster *c);

/* cl_inject queues msg (deep-copied) for delivery now, from outside. */
void cl_inject(struct cluster *c, const struct raft_message *msg);

/* cl_describe_msg formats m in one line into buf. */
void cl_describe_msg(const struct raft_message *m, char *buf, size_t cap);

#endif
