/* sim.h: a deterministic simulated Raft cluster for randomized fault runs.
 *
 * Nodes run the real core (raft.h) on a virtual clock.  Messages travel as
 * bytes through the real codec (raft_codec.h) over a network with latency,
 * jitter (so reordering), loss, duplication and per-direction link cuts
 * (symmetric, one-way and bridge partitions are patterns of cuts).  Each
 * node's stable storage is in memory and follows raft.h's persist order; a
 * node can crash at any point of a step (before persisting, in the middle of
 * the persist sequence, between persisting and sending, after sending) and
 * restart from what it persisted.  Every step is checked against the safety
 * properties of sim_check.h.
 *
 * Everything is a function of the seed: the same seed replays the same run.
 * The fault schedule itself lives in the test (test_sim.c); this module
 * offers the primitives. */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"
#include "sim_check.h"
#include "raft_store.h"

#define SIM_MAX_NODES 12

/* Fault kinds, counted in struct sim.faults. */
enum sim_fault {
    SIM_F_DROP,          /* a message lost at random */
    SIM_F_DUP,           /* a message delivered twice */
    SIM_F_CUT,           /* a message lost on a cut link */
    SIM_F_CRASH,         /* node crashed between steps */
    SIM_F_CRASH_BEFORE,  /* crashed in a step before persisting */
    SIM_F_CRASH_MID,     /* crashed in the middle of the persist sequence */
    SIM_F_CRASH_PERSIST, /* crashed after persisting, before sending */
    SIM_F_CRASH_SENT,    /* crashed after sending, before applying */
    SIM_F_RESTART,       /* node restarted from its storage */
    SIM_F_PART_SYM,      /* symmetric partition into two sides */
    SIM_F_PART_ONEWAY,   /* one direction of one link cut */
    SIM_F_PART_BRIDGE,   /* two sides that only one node hears both of */
    SIM_F_ISOLATE,       /* one node cut off both ways */
    SIM_F_HEAL,          /* all links restored */
    SIM_F_ADD,           /* membership: non-voter added (then promoted) */
    SIM_F_REMOVE,        /* membership: member removed */
    SIM_F_REPLACE,       /* membership: reset node rejoins from same address */
    SIM_F_TRANSFER,      /* leadership transfer requested */
    SIM_F_SNAPSHOT,      /* a node took a snapshot */
    SIM_F_FOREIGN,       /* a message of another cluster (higher term) */
    SIM_F_CRASH_QUICK,   /* crashed after sending, restarted within 5 ms */
    SIM_F_SPURIOUS_DOWN, /* PEER_DOWN reported about a live node */
    SIM_F_POWER_LOSS,    /* a crash that was a power loss (pfs store runs) */
    SIM_F_LONG_DELAY,    /* a message held back across several terms */
    SIM_F_STANDBY,       /* a voter put on standby (RAFT_EV_STANDBY) */
    SIM_F_STANDBY_OFF,   /* a voter taken off standby */
    SIM_F_COUNT
};

/* sim_fault_name returns "drop", "dup", ... */
const char *sim_fault_name(enum sim_fault f);

/* Deliberate bugs in the harness, to prove that the checks catch them
 * (test_sim.c runs them and expects a violation). */
enum sim_sabotage {
    SIM_SAB_NONE,
    SIM_SAB_FORGET_VOTE,   /* a restarted node forgets its vote */
    SIM_SAB_SEND_EARLY,    /* a node crashing before it persisted has already
                              sent the update's messages (breaks the send rule) */
    SIM_SAB_LOSE_ENTRIES,  /* a restarted node loses its last persisted entry */
    SIM_SAB_STANDBY_STUCK, /* the driver steps RAFT_EV_STANDBY again before
                              each timer tick: the skipped timeouts never add
                              up, so a standby voter never campaigns */
    SIM_SAB_STANDBY_LOST,  /* the driver never tells the core about standby:
                              a standby voter campaigns at its first timeout */
};

struct sim_disk {
    uint64_t term, vote;
    bool has_snap;
    struct raft_snapshot snap; /* data owned */
    uint64_t snap_chain;       /* chain at snap.index */
    uint64_t first;            /* index of ents[0] */
    struct raft_entry *ents;   /* data owned */
    uint64_t *chain;           /* chain per entry */
    size_t n, cap;
    /* the configuration in force: the last config entry on disk, or the
       snapshot's (thesis §4.1: in force once in the log) */
    struct raft_config cfg;
};

struct sim_job;

struct sim_node {
    bool used;    /* slot holds a node (running or crashed) */
    bool removed; /* removed from the configuration; will be stopped */
    uint64_t id;
    char address[RAFT_ADDR_MAX];
    struct raft *r;   /* NULL while crashed */
    struct store *st; /* the real file store, when the run uses one */
    unsigned incarnation;
    struct sim_disk disk;
    uint64_t deadline;
    uint64_t restart_at; /* while crashed: when to restart, 0 = not planned */
    /* the application: applied index and chain hash of what it applied */
    uint64_t applied, app_chain;
    uint64_t snap_at; /* applied index of the last snapshot taken */
    /* the transport reported this node's leader down (and no other
       leader was heard since); fast-path pre-votes seen so far */
    bool leader_reported_down;
    uint64_t fast_path_seen;
    struct raft_config last_config; /* as of the last update that changed it */
    /* asynchronous persistence: updates whose persistence (and so whose
       messages) wait for the disk, oldest first, and when it is free */
    struct sim_job *jobs, *jobs_tail;
    uint64_t disk_free_at;
    /* RAFT_EV_STANDBY, the driver's setting (a drained node): it outlives
       a crash and is stepped again after each start; when it was last
       stepped, and when this node last took a leader's append or snapshot
       (each restarts the core's count of skipped timeouts) */
    bool standby;
    uint64_t standby_since, heard_leader_at;
    uint64_t campaigns_seen; /* elections + pre_elections, last update */
    /* as of the last update */
    enum raft_role role;
    uint64_t term, leader, commit;
};

struct sim_event; /* queued message or local notification */
struct sim_job;   /* an update waiting for the disk (async_persist) */

struct sim {
    uint64_t seed;
    uint64_t rng;
    uint64_t now;
    uint64_t cluster_id;
    struct raft_options opts; /* template: id and seed set per node */
    unsigned n;               /* slots in use (nodes ever created) */
    struct sim_node nodes[SIM_MAX_NODES];
    uint64_t next_id;

    /* network */
    struct sim_event **heap;
    size_t n_heap, cap_heap;
    uint64_t seq;
    unsigned latency_ms, jitter_ms;
    unsigned drop_pct, dup_pct;   /* per message, percent */
    unsigned foreign_permille;    /* per message: also deliver a copy from another
                                     cluster, 1000 terms ahead */
    unsigned long_delay_permille; /* per message: held back up to
                                     long_delay_ms (several terms) */
    unsigned long_delay_ms;
    bool cut[SIM_MAX_NODES][SIM_MAX_NODES]; /* cut[a][b]: a -> b lost */
    unsigned step_crash_permille;           /* crash inside a step */
    unsigned quick_crash_permille;          /* per step that sent: crash
                                               after sending, restart within
                                               milliseconds of the persist */
    unsigned restart_max_ms;                /* restart within this after one */
    /* Asynchronous persistence (raft.h allows it): each update's persist
       operations complete on the node's disk 1..disk_ms later, in update
       order; its messages leave only then, behind every earlier update's
       persistence; RAFT_EV_PERSISTED follows 0..disk_ms after that, so
       reports come late and out of order with the sends.  Committed
       entries are applied at once. */
    bool async_persist;
    unsigned disk_ms;
    unsigned snapshot_every; /* applied entries per snapshot */

    /* the latest configuration a leader reported */
    struct raft_config config;
    uint64_t config_index_seen;

    struct sim_check check;
    uint64_t faults[SIM_F_COUNT];
    uint64_t delivered, submitted;
    uint64_t last_leader_change; /* time a node last became leader */
    bool verbose;
    enum sim_sabotage sabotage;
    /* When set, every node also persists through the real file store
     * (raft/raft_store.h) in a directory under store_dir, restarts from what
     * store_open loads, and the load must equal the in-memory model. */
    const char *store_dir;
    bool store_pfs; /* store_dir was SIM_STORE_PFS */
};

/* store_dir for sim_init: the real store on the power-loss model of the
 * file system (lib/pfs.h) instead of real files; half the crashes of such
 * a run are power losses of the node's machine, after which the store
 * must still load exactly what the model says was persisted. */
#define SIM_STORE_PFS "(pfs)"

/* sim_init builds a cluster of n voters (ids from 1) bootstrapped with one
 * configuration entry, all started at time 0; o is the options template
 * (id, cluster_id and seed are filled in).  store_dir (borrowed, may be
 * NULL) is an existing directory for real file stores (struct sim). */
void sim_init(struct sim *s, uint64_t seed, unsigned n, const struct raft_options *o,
              bool verbose, const char *store_dir);
void sim_free(struct sim *s);

/* sim_rand returns a number in [0, n) from the run's generator (n > 0). */
uint64_t sim_rand(struct sim *s, uint64_t n);

/* sim_run_until advances the virtual clock to t, delivering messages,
 * notifications and timers in time order and restarting crashed nodes whose
 * restart time came.  Stops early at a violation. */
void sim_run_until(struct sim *s, uint64_t t);

/* sim_leader returns the slot of the live leader with the highest term, or
 * -1. */
int sim_leader(const struct sim *s);

/* Node life. */
void sim_crash(struct sim *s, unsigned slot, uint64_t restart_at);
void sim_restart(struct sim *s, unsigned slot);

/* sim_peer_down tells every live node that slot's links closed (what the
 * transport reports when a peer's process dies). */
void sim_peer_down(struct sim *s, unsigned slot);

/* sim_spurious_peer_down tells the node in slot that peer's link closed,
 * though peer may be alive (a firewall REJECT, a flapping link). */
void sim_spurious_peer_down(struct sim *s, unsigned slot, unsigned peer);

/* Network. */
void sim_heal(struct sim *s);
void sim_isolate(struct sim *s, unsigned slot);

/* sim_submit submits one application entry at the leader, if any; returns
 * the raft_step code (RAFT_ENOTLEADER when there is no leader). */
int sim_submit(struct sim *s);

/* sim_change asks the leader for a membership change; returns raft_step's
 * code.  ADD and REPLACE create a new node (new id) in a free slot; REPLACE
 * takes over the address of old_slot, which is crashed for good first (a
 * reset machine). */
int sim_add(struct sim *s);
int sim_promote(struct sim *s, uint64_t id);
int sim_remove(struct sim *s, uint64_t id);
int sim_replace(struct sim *s, unsigned old_slot);

/* sim_standby puts the voter in slot on standby (on) or takes it off, as a
 * drain does (RAFT_EV_STANDBY); a crashed node gets it at its restart.
 * While on, the step checks hold it to raft.h's rule: it campaigns on its
 * timer only after RAFT_STANDBY_TIMEOUTS election timeouts without a
 * leader, never on TimeoutNow. */
void sim_standby(struct sim *s, unsigned slot, bool on);

/* sim_transfer asks the leader to hand over to voter id (0: any). */
int sim_transfer(struct sim *s, uint64_t id);

/* sim_stop_removed crashes, for good, nodes no longer in the committed
 * configuration of the leader. */
void sim_stop_removed(struct sim *s);

/* sim_is_member returns true when id is in s->config. */
bool sim_is_member(const struct sim *s, uint64_t id);

/* sim_converged returns true when a leader exists and every live member has
 * applied up to the leader's commit index. */
bool sim_converged(const struct sim *s);

/* sim_dump prints every node's status and configuration to stdout. */
void sim_dump(struct sim *s);

/* sim_trace prints a line when verbose. */
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
