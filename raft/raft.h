/* raft.h: the consensus core, a pure state machine behind one call.
 *
 * The core never touches a socket, a file, a clock or global state.  The
 * driver (the daemon's io layer, or a test harness) feeds it events with
 * raft_step() and carries out the update that each step returns:
 *
 *     struct raft_update upd;
 *     rc = raft_step(r, &ev, &upd);       // ev.now = monotonic ms
 *     1. persist, in this order: term+vote, snapshot, truncate, append
 *     2. only once step 1 is durable (fsynced): send upd.messages
 *     3. restore upd.restore (if any), then apply upd.committed in order
 *     4. call raft_step again with a RAFT_EV_TICK at or after upd.deadline
 *     5. when the appended entries are durable, step RAFT_EV_PERSISTED
 *
 * THE SEND RULE: messages of an update must not leave the node before every
 * persist operation requested by that update and by all earlier updates is
 * durable.  Persist operations must be carried out in update order.  A crash
 * between persist and send is safe; sending before persisting is not (a vote
 * or an acknowledgement would be forgotten).  The driver may persist
 * asynchronously and keep stepping other events meanwhile, as long as it
 * queues the messages behind the persistence.
 *
 * OWNERSHIP: everything an event points to is borrowed for the duration of
 * raft_step (the core copies what it keeps).  Everything an update points to
 * is owned by the core and valid until the next raft_step or raft_free on the
 * same instance; the driver copies what it keeps longer.
 *
 * Sources of the rules cited in the core sources: the Raft paper (Ongaro & Ousterhout
 * 2014, figure 2 and section 5) and the thesis (Ongaro 2014): section 4.2.1
 * (single-server membership changes), 4.2.3 (disruptive servers), 3.10
 * (leadership transfer), 5 (log compaction), 6.2 (CheckQuorum), 9.6 (PreVote).
 *
 * Single-threaded: one instance must not be stepped from two threads at once.
 * Distinct instances share nothing. */
#ifndef RAFT_H
#define RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: 0 or negative; raft_strerror() has a message for each. */
#define RAFT_ERRORS(X)                                                                   \
    X(RAFT_ENOMEM, -1, "out of memory")                                                  \
    X(RAFT_EINVAL, -2, "invalid argument")                                               \
    X(RAFT_ENOTLEADER, -3, "this node is not the leader")                                \
    X(RAFT_EBUSY, -4, "a configuration change or leadership transfer is pending")        \
    X(RAFT_EDUPID, -5, "a member with this node id already exists")                      \
    X(RAFT_EDUPADDR, -6, "a member with this address already exists")                    \
    X(RAFT_ENOTFOUND, -7, "no member with this node id")                                 \
    X(RAFT_ETOOMANY, -8, "too many members")                                             \
    X(RAFT_ENOTVOTER, -9, "the member is not a voter")                                   \
    X(RAFT_ESTATE, -10, "not allowed in the current state")                              \
    X(RAFT_ECORRUPT, -11, "corrupt or malformed data")                                   \
    X(RAFT_EIO, -12, "storage input/output error")                                       \
    X(RAFT_ENOSPC, -13, "no space left on storage")                                      \
    X(RAFT_EPROTO, -14, "malformed or unexpected message")                               \
    X(RAFT_ETOOBIG, -15, "too big")                                                      \
    X(RAFT_ECLUSTER, -16, "message from another cluster")                                \
    X(RAFT_ESTOPPED, -17, "the node stopped after a storage failure")                    \
    X(RAFT_EADDR, -18, "invalid address")                                                \
    X(RAFT_ESAMEID, -19, "a replacing member needs a new node id")

enum raft_code {
    RAFT_OK = 0,
#define RAFT_ENUM_(name, value, msg) name = value,
    RAFT_ERRORS(RAFT_ENUM_)
#undef RAFT_ENUM_
};

/* raft_strerror returns a static message for code; unknown codes get
 * "unknown error".  raft_errname returns "RAFT_EBUSY" etc. */
const char *raft_strerror(int code);
const char *raft_errname(int code);

/* ---- Identity and configuration ------------------------------------------ */

/* Limits of a configuration.  A configuration is a plain value (no pointers),
 * so it can be copied with '=' and embedded in messages and snapshots. */
#define RAFT_MAX_MEMBERS 16
#define RAFT_ADDR_MAX 96 /* including the NUL */

enum raft_member_role {
    RAFT_VOTER = 1,    /* counts toward quorums, may become leader */
    RAFT_NONVOTER = 2, /* receives the log, never votes, never campaigns */
};

struct raft_member {
    uint64_t id;                 /* non-zero, random, never reused */
    char address[RAFT_ADDR_MAX]; /* "host:port", NUL-terminated, non-empty */
    enum raft_member_role role;
};

struct raft_config {
    unsigned n; /* members[0..n) are in use */
    struct raft_member members[RAFT_MAX_MEMBERS];
};

/* raft_config_init makes c empty. */
void raft_config_init(struct raft_config *c);

/* raft_config_add appends a member.  Returns RAFT_EINVAL (id 0, bad role),
 * RAFT_EADDR (empty or too long address), RAFT_EDUPID, RAFT_EDUPADDR or
 * RAFT_ETOOMANY; c is unchanged on error.  address is borrowed (copied). */
int raft_config_add(struct raft_config *c, uint64_t id, const char *address,
                    enum raft_member_role role);

/* raft_config_remove removes member id; RAFT_ENOTFOUND if absent. */
int raft_config_remove(struct raft_config *c, uint64_t id);

/* raft_config_find returns the member with id, or NULL (pointer into c). */
const struct raft_member *raft_config_find(const struct raft_config *c, uint64_t id);

/* raft_config_find_address returns the member holding address, or NULL. */
const struct raft_member *raft_config_find_address(const struct raft_config *c,
                                                   const char *address);

/* raft_config_validate checks every rule of raft_config_add over the whole
 * configuration: RAFT_EDUPID and RAFT_EDUPADDR are distinct so a caller can
 * tell "this node is already a member" from "this address is taken". */
int raft_config_validate(const struct raft_config *c);

/* raft_config_voters returns the number of voters in c. */
unsigned raft_config_voters(const struct raft_config *c);

/* raft_config_encode writes c in the core's portable format (little-endian,
 * versioned) into buf of cap bytes and sets *len.  RAFT_ETOOBIG if cap is too
 * small; RAFT_CONFIG_ENCODED_MAX is always enough.  This is the data of a
 * RAFT_ENTRY_CONFIG entry; drivers use it to write the bootstrap entry. */
#define RAFT_CONFIG_ENCODED_MAX (8 + RAFT_MAX_MEMBERS * (8 + 1 + 1 + RAFT_ADDR_MAX))
int raft_config_encode(const struct raft_config *c, void *buf, size_t cap, size_t *len);

/* raft_config_decode parses what raft_config_encode wrote and validates it:
 * RAFT_ECORRUPT on malformed input (an address with a NUL inside included),
 * or a raft_config_validate code.  *c is written only on success. */
int raft_config_decode(const void *buf, size_t len, struct raft_config *c);

/* ---- Log entries and snapshots ------------------------------------------- */

struct raft_buffer {
    void *base; /* NULL when len == 0 */
    size_t len;
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1,  /* application data */
    RAFT_ENTRY_CONFIG = 2,  /* data is an encoded struct raft_config */
    RAFT_ENTRY_BARRIER = 3, /* no data; a new leader appends one (§5.4.2) */
};

struct raft_entry {
    uint64_t index; /* position in the log, from 1 */
    uint64_t term;  /* term of the leader that created it */
    enum raft_entry_type type;
    struct raft_buffer data; /* ownership: see the file comment */
};

/* A snapshot: the application's state up to and including index, plus the
 * configuration in force at index (thesis chapter 5). */
struct raft_snapshot {
    uint64_t index;            /* last entry covered */
    uint64_t term;             /* term of that entry */
    struct raft_config config; /* latest configuration at or before index */
    uint64_t config_index;     /* index of the entry that held config */
    struct raft_buffer data;   /* opaque application state */
};

/* ---- Messages ------------------------------------------------------------ */

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,        /* AppendEntries; no entries = heartbeat */
    RAFT_MSG_APPEND_RESULT = 2, /* reply to RAFT_MSG_APPEND or _SNAPSHOT */
    RAFT_MSG_VOTE = 3,          /* RequestVote, or PreVote if pre_vote */
    RAFT_MSG_VOTE_RESULT = 4,
    RAFT_MSG_SNAPSHOT = 5,    /* InstallSnapshot, whole snapshot in one message */
    RAFT_MSG_TIMEOUT_NOW = 6, /* leadership transfer: campaign now (§3.10) */
};

struct raft_msg_append {
    uint64_t prev_index; /* index of the entry before entries[0] */
    uint64_t prev_term;  /* its term (0 when prev_index is 0) */
    uint64_t commit;     /* leader's commit index */
    const struct raft_entry *entries;
    unsigned n_entries;
};

struct raft_msg_append_result {
    bool rejected;           /* consistency check failed (or stale term) */
    uint64_t last_index;     /* success: highest index known to match the leader;
                                rejected: the follower's last log index */
    uint64_t reject_index;   /* rejected: the prev_index that failed */
    uint64_t conflict_term;  /* rejected: term at reject_index in the follower's
                                log, 0 if its log is shorter (fast back-off) */
    uint64_t conflict_index; /* rejected: first index of conflict_term in the
                                follower's log, or its last index + 1 */
};

struct raft_msg_vote {
    uint64_t last_index; /* candidate's last log index */
    uint64_t last_term;  /* and its term */
    bool pre_vote;       /* PreVote (thesis §9.6): term is the candidate's term
                            + 1, and nobody changes term or vote */
    bool transfer;       /* sent because of TimeoutNow: bypasses stickiness */
};

struct raft_msg_vote_result {
    bool granted;
    bool pre_vote; /* answers a pre-vote */
};

struct raft_msg_snapshot {
    struct raft_snapshot snapshot; /* data borrowed as described above */
};

struct raft_message {
    enum raft_msg_type type;
    uint64_t cluster_id; /* a message from another cluster is dropped */
    uint64_t from;       /* sender's node id */
    uint64_t to;         /* receiver's node id */
    uint64_t term;       /* sender's current term (see pre_vote) */
    union {
        struct raft_msg_append append;
        struct raft_msg_append_result append_result;
        struct raft_msg_vote vote;
        struct raft_msg_vote_result vote_result;
        struct raft_msg_snapshot snapshot;
    } u;
};

/* raft_msg_type_name returns "append", "append_result", ... */
const char *raft_msg_type_name(enum raft_msg_type t);

/* ---- Instance ------------------------------------------------------------ */

enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRECANDIDATE = 2, /* collecting pre-votes, term unchanged */
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
    RAFT_STOPPED = 5, /* after RAFT_EV_STOP: takes part in nothing */
};

/* raft_role_name returns "follower", "precandidate", ... */
const char *raft_role_name(enum raft_role role);

struct raft_options {
    uint64_t id;              /* this node's id (non-zero) */
    uint64_t cluster_id;      /* carried in and checked on every message */
    uint64_t seed;            /* PRNG seed for election timeouts (mixed with id) */
    unsigned heartbeat_ms;    /* leader sends Append at least this often */
    unsigned election_min_ms; /* election timeout drawn from [min, max) */
    unsigned election_max_ms;
    bool pre_vote; /* thesis §9.6 */
    /* thesis §6.2: a leader steps down without a quorum; also turns on
       leader stickiness (thesis §4.2.3): a node that heard from a live
       leader within election_min_ms ignores vote requests */
    bool check_quorum;
    unsigned max_append_entries; /* entries per Append message */
    uint64_t snapshot_trailing;  /* entries kept in the log behind a snapshot */
};

/* raft_options_default fills o with the default profile: heartbeat 100 ms,
 * election timeout [1000, 2000) ms, pre_vote and check_quorum on, 64 entries
 * per Append, 128 trailing entries.  id and cluster_id are set to 0 and must
 * be filled in by the caller. */
void raft_options_default(struct raft_options *o);

/* raft_options_fast_lan switches o to the fast-LAN profile: heartbeat 50 ms,
 * election timeout [300, 600) ms.  For links with sub-millisecond RTT and a
 * stable scheduler; the default profile tolerates GC-free pauses of ~1 s. */
void raft_options_fast_lan(struct raft_options *o);

struct raft;

/* raft_new allocates an instance; o is borrowed (copied).  The instance does
 * nothing until it is stepped with RAFT_EV_START.  RAFT_EINVAL for a zero id
 * or inconsistent timeouts (need 0 < heartbeat < election_min < election_max),
 * RAFT_ENOMEM.  *out is owned by the caller; release with raft_free. */
int raft_new(const struct raft_options *o, struct raft **out);

/* raft_free releases r and everything it owns (NULL is a no-op). */
void raft_free(struct raft *r);

/* ---- Events -------------------------------------------------------------- */

enum raft_event_type {
    /* START: the first event, with the state loaded from storage.
     * Bootstrap of a new cluster: the first node stores term 1 and one
     * RAFT_ENTRY_CONFIG entry (index 1, term 1, raft_config_encode of a
     * configuration holding itself as voter), then starts; a lone voter
     * elects itself at once.  A joining node starts empty (term 0, no
     * entries) and waits for the leader, after someone stepped a
     * RAFT_CHANGE_ADD on the leader. */
    RAFT_EV_START = 1,
    RAFT_EV_RECEIVE = 2,   /* a message arrived from a peer */
    RAFT_EV_PERSISTED = 3, /* entries up to index are durable */
    RAFT_EV_TICK = 4,      /* time passed (deadline reached or any time) */
    RAFT_EV_SUBMIT = 5,    /* leader: append application data */
    RAFT_EV_TRANSFER = 6,  /* leader: hand leadership to another voter */
    RAFT_EV_CHANGE = 7,    /* leader: single-server membership change */
    RAFT_EV_SNAPSHOT = 8,  /* the application took a snapshot */
    RAFT_EV_PEER_DOWN = 9, /* transport: peer's link closed or refused;
                              one signal: a follower whose leader it is
                              and that then misses a heartbeat too drops
                              its lease and (PreVote only) pre-votes,
                              jittered to avoid split votes; hearing the
                              leader withdraws the report */
    RAFT_EV_STOP = 10,     /* storage failed: stop taking part */
    RAFT_EV_STANDBY = 11,  /* this voter stops (or resumes) campaigning:
                              see struct raft_event's standby */
};

enum raft_change_kind {
    RAFT_CHANGE_ADD = 1,     /* add id/address as a non-voter */
    RAFT_CHANGE_PROMOTE = 2, /* make non-voter id a voter once caught up */
    RAFT_CHANGE_REMOVE = 3,  /* remove id (voter or not; may be the leader) */
    RAFT_CHANGE_REPLACE = 4, /* remove old_id and add id/address as a
                                non-voter, in one entry (a reset node that
                                rejoins from the same address) */
};

/* RAFT_EV_STANDBY: the election timeouts in a row, without a leader heard,
 * after which a voter on standby campaigns all the same.  A voter not on
 * standby campaigns after one, so any such voter that can win does so
 * first (with PreVote and a split vote or two to spare). */
#define RAFT_STANDBY_TIMEOUTS 4

struct raft_event {
    enum raft_event_type type;
    uint64_t now; /* monotonic time in ms, never decreasing; every event */
    union {
        struct {
            uint64_t term; /* persisted current term (0 if none) */
            uint64_t vote; /* persisted vote in term (0 if none) */
            /* persisted snapshot, or NULL; its data is handed back in
               upd.restore so the application loads it */
            const struct raft_snapshot *snapshot;
            /* persisted entries following the snapshot (or from index 1),
               contiguous and increasing */
            const struct raft_entry *entries;
            unsigned n_entries;
        } start;
        struct {
            const struct raft_message *msg;
        } receive;
        struct {
            uint64_t index; /* last durable index */
            uint64_t term;  /* term of that entry (stale reports ignored) */
        } persisted;
        struct {
            enum raft_entry_type type; /* RAFT_ENTRY_NORMAL or _BARRIER */
            struct raft_buffer data;
        } submit;
        struct {
            uint64_t to; /* target voter, or 0: the most up-to-date one */
        } transfer;
        struct {
            enum raft_change_kind kind;
            uint64_t id;
            const char *address; /* ADD and REPLACE */
            uint64_t old_id;     /* REPLACE */
        } change;
        struct {
            uint64_t index; /* state covers entries up to index (<= applied) */
            struct raft_buffer data;
        } snapshot;
        struct {
            uint64_t id;
        } peer_down;
        struct {
            int reason; /* a RAFT_E code, informational */
        } stop;
        /* A voter on standby (a drained node, docs/cluster.md "Draining a
         * node") still votes, replicates and counts in every quorum, but
         * does not seek leadership while another voter can take it: its
         * election timeout and the crash fast path start no campaign and
         * a TimeoutNow is ignored (the leader's transfer with to 0 then
         * tries the next voter).  Only after RAFT_STANDBY_TIMEOUTS
         * election timeouts in a row without hearing any leader does it
         * campaign, so that a majority whose other live voters are all on
         * standby too is not left without a leader (availability first:
         * the standby is a preference, not a safety rule).  A leader put
         * on standby stays leader: the driver transfers leadership. */
        struct {
            bool on;
        } standby;
    } u;
};

/* ---- Update -------------------------------------------------------------- */

struct raft_counters {
    uint64_t msgs_received;
    uint64_t msgs_sent;
    uint64_t dropped_cluster;    /* wrong cluster id */
    uint64_t dropped_misrouted;  /* to != our id */
    uint64_t dropped_non_member; /* messages from non-voters dropped, including
                                    their vote requests ignored by stickiness
                                    or for a stale log */
    uint64_t dropped_stale;      /* lower-term messages, and append replies
                                    beyond our log (answering nothing sent) */
    uint64_t ignored_in_lease;   /* members' vote requests ignored (stickiness) */
    uint64_t elections;          /* campaigns started (real votes) */
    uint64_t pre_elections;      /* pre-vote rounds started */
    uint64_t leader_changes;     /* times leader_id changed */
    uint64_t check_quorum_stepdowns;
    uint64_t snapshots_sent;
    uint64_t snapshots_installed;
    uint64_t transfers;           /* TimeoutNow sent */
    uint64_t fast_path_elections; /* pre-votes started by RAFT_EV_PEER_DOWN */
    uint64_t standby_deferred;    /* election timeouts not campaigned (standby) */
    uint64_t standby_timeout_now; /* TimeoutNow ignored (standby) */
    uint64_t standby_campaigns;   /* campaigns on standby: no leader for
                                     RAFT_STANDBY_TIMEOUTS timeouts */
};

struct raft_update {
    /* 1. persist, in this order, all before any message is sent */
    bool persist_term_vote; /* write term and vote (one atomic record) */
    uint64_t term;
    uint64_t vote;
    /* store this snapshot (metadata, config and data), replacing the
       previous one; stored entries are deleted only as truncate_from and
       compact_to say (an installed snapshot comes with truncate_from 1) */
    const struct raft_snapshot *snapshot;
    uint64_t truncate_from;           /* 0, or delete stored entries >= this index */
    const struct raft_entry *entries; /* then append these (contiguous) */
    unsigned n_entries;
    uint64_t compact_to; /* 0, or entries <= this may be deleted (optional) */

    /* 2. send (after 1 is durable); each message names its receiver */
    const struct raft_message *messages;
    unsigned n_messages;

    /* 3. apply: restore first (if set), then the entries, in order */
    const struct raft_snapshot *restore;
    const struct raft_entry *committed;
    unsigned n_committed;
    uint64_t commit_index;

    /* 4. step a RAFT_EV_TICK at or after this time (ms, same clock as now);
       0 when no timer is needed (stopped) */
    uint64_t deadline;

    /* Status, always filled; *_changed say what moved during this step. */
    bool role_changed;
    bool leader_changed;
    bool term_changed;
    bool config_changed; /* the latest (maybe uncommitted) config changed */
    enum raft_role role;
    uint64_t leader_id; /* 0 when unknown */
    uint64_t current_term;
    const struct raft_config *config; /* latest configuration */
    /* This node was a member and a committed configuration no longer holds
     * it: it was removed (or replaced) and takes part in nothing any more
     * (it never campaigns, and its votes and answers count nowhere).  Set
     * from the step that applies that configuration on; never cleared (ids
     * are never reused).  The driver may shut the node down, or reset it
     * and join again under a new id.  removed_changed: set in that step. */
    bool removed;
    bool removed_changed;

    /* RAFT_EV_SUBMIT / RAFT_EV_CHANGE: index given to the new entry.  The
       entry is durable in the cluster once it appears in committed with the
       same index and term. */
    uint64_t index;
    uint64_t index_term;

    const struct raft_counters *counters;
};

/* raft_step feeds one event to r and fills *upd (which need not be
 * initialised).  ev and everything it points to are borrowed.
 *
 * Returns 0, or an error that concerns the event only (r stays consistent and
 * upd is still valid and must still be carried out):
 *   RAFT_EV_START: RAFT_ESTATE if already started, RAFT_ECORRUPT if the
 *     entries are not contiguous or a config entry does not decode;
 *   any other event before START: RAFT_ESTATE; after STOP: RAFT_ESTOPPED;
 *   RAFT_EV_RECEIVE: 0 even when the message is dropped (see counters),
 *     RAFT_EPROTO for a structurally invalid message;
 *   RAFT_EV_SUBMIT / _CHANGE / _TRANSFER: RAFT_ENOTLEADER, RAFT_EBUSY (a
 *     change not yet committed, a leader whose first entry of its term is not
 *     committed yet, or a transfer in progress); CHANGE: RAFT_EDUPID,
 *     RAFT_EDUPADDR, RAFT_ENOTFOUND, RAFT_ETOOMANY, RAFT_EADDR, RAFT_EINVAL
 *     (promote of a voter, a change that leaves no voter); TRANSFER: RAFT_ENOTFOUND
 * (unknown or removed target), RAFT_ENOTVOTER, RAFT_EINVAL (self); RAFT_EV_SNAPSHOT:
 * RAFT_EINVAL if index is beyond the applied index or not beyond the current snapshot;
 *   RAFT_ENOMEM anywhere (the event had no effect).
 *
 * A PROMOTE is accepted at once but its configuration entry is appended only
 * when the non-voter has caught up (its match index reached the leader's last
 * index); watch the committed config entries for completion. */
int raft_step(struct raft *r, const struct raft_event *ev, struct raft_update *upd);

/* ---- Queries (cheap, from local state; valid any time after raft_new) ---- */

struct raft_status {
    enum raft_role role;
    uint64_t id;
    uint64_t term;
    uint64_t vote;
    uint64_t leader_id;
    uint64_t commit_index;
    uint64_t applied_index; /* highest index handed out in upd.committed */
    uint64_t last_index;
    uint64_t persisted_index;
    uint64_t snapshot_index;
    uint64_t last_leader_contact; /* ms (event clock) when the leader was last
                                     heard, 0 if never */
    bool removed;                 /* see raft_update.removed */
};

/* raft_status fills *out (caller's memory) from r's local state; any time
 * after raft_new, also before START and after STOP. */
void raft_status(const struct raft *r, struct raft_status *out);

/* raft_get_config returns the latest configuration (borrowed, valid until the
 * next raft_step).  raft_config_committed the latest committed one. */
const struct raft_config *raft_get_config(const struct raft *r);
const struct raft_config *raft_config_committed(const struct raft *r);

struct raft_progress {
    uint64_t match_index;  /* highest index known replicated on the peer */
    uint64_t next_index;   /* next index to send */
    uint64_t last_contact; /* ms when last heard from the peer, 0 if never */
    bool probing;          /* last Append was rejected / not yet matched */
};

/* raft_progress fills *out for peer id; the leader only.  RAFT_ENOTLEADER or
 * RAFT_ENOTFOUND. */
int raft_progress(const struct raft *r, uint64_t id, struct raft_progress *out);

/* raft_get_counters returns r's counters (borrowed from r, valid until
 * raft_free; they keep counting as r is stepped). */
const struct raft_counters *raft_get_counters(const struct raft *r);

#endif
