/* rnode.h: the Raft driver of the daemon: raft/ (the pure core), raft/store
 * (the files in <state-dir>/raft/) and core/repl (the replicated state) on a
 * libuv loop.
 *
 * Every replicated write goes through here, also on a standalone node (a
 * one-member cluster): rnode_submit hands an encoded cl command (repl.h) to
 * Raft; the callback reports once the entry is committed and applied
 * locally, with cl_apply's result.  rnode carries out every raft update as
 * raft.h says: persist in order (fsync) through raft_store, send the messages
 * only after that, restore / apply into the cl state, report the effects
 * through hooks, re-arm one timer for upd.deadline.  What happens to a
 * request (queue, bounds, deadlines, forwarding to the leader) is decided
 * by core/rreq.c; rnode carries out its actions.
 *
 * Re-entrancy: hooks and callbacks run inside rnode calls.  From a hook or a
 * callback, rnode_submit, rnode_change and rnode_transfer may be called (they
 * are queued and started when the current step is done); rnode_receive,
 * rnode_peer_down and rnode_close must not be.
 *
 * Single-threaded: everything runs on the loop thread. */
#ifndef XMPPD_RNODE_H
#define XMPPD_RNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "repl.h"
#include "logging.h"
#include "raft.h"
#include "raft_store.h"

/* rnode_done_cb: the result of a submit, change or transfer, called exactly
 * once.  rc is:
 *   submit:  cl_apply's result (0, XE_EXISTS, XE_NOTFOUND, ...) once the
 *            entry is committed and applied on this node; or
 *            XE_NOLEADER  no leader within the timeout, this node is a
 *                         follower and no forward_submit hook is set, or
 *                         the entry was overwritten by a new leader (it
 *                         did NOT commit);
 *            XE_TIMEOUT   not known to be committed within the timeout (it
 *                         may still commit later: the caller must not say
 *                         "done", nor "failed for sure");
 *            XE_IO        storage failed: the node has stopped;
 *            XE_CLOSED    rnode_close was called first;
 *            XE_INVAL     the command does not decode (checked before
 *                         submitting, so nothing reaches the log);
 *            XE_LIMIT     too many requests, or too many bytes of them,
 *                         wait on this node (core/rreq.h bounds): nothing
 *                         was queued;
 *            XE_NOMEM.
 *   change / transfer: 0 when done (see rnode_change), else as above or
 *            XE_EXISTS (id or address already a member), XE_NOTFOUND,
 *            XE_LIMIT (too many members), XE_BUSY, XE_INVAL.
 * msg (borrowed, may be NULL) is one human line that says more. */
typedef void (*rnode_done_cb)(void *arg, int rc, const char *msg);

struct rnode_hooks {
    void *ud;

    /* applied: a committed entry was applied to the cl state; eff
     * (borrowed) says what changed (CL_EFF_NONE entries are reported too).
     * The daemon calls srv_set_callbridge for CL_EFF_CB_ADDED and
     * CL_EFF_CB_SECRET (srv closes a session whose secret changed), and
     * srv_del_callbridge for CL_EFF_CB_DELETED.  May be NULL. */
    void (*applied)(void *ud, const struct cl_effects *eff);

    /* restored: the whole state was replaced by a snapshot from the leader
     * (InstallSnapshot): re-sync everything from rnode_state().  May be
     * NULL. */
    void (*restored)(void *ud);

    /* status: role, term, leader or membership changed (read them with
     * rnode_get_status / rnode_config).  May be NULL. */
    void (*status)(void *ud);

    /* send: carry m (borrowed for the call: copy or encode it with
     * raft/raft_codec.h before returning) to member to_id at to_addr ("host:port").
     * to_addr is "" when this node does not know the receiver's address
     * (a joining node answering the leader before it has the
     * configuration): answer on the link the leader's message came in on.
     * Called only after everything the message depends on is durable.
     * Return 0 or a negative XE_ code (the message is dropped; Raft retries).
     * NULL: messages are dropped (a standalone node never sends). */
    int (*send)(void *ud, uint64_t to_id, const char *to_addr,
                const struct raft_message *m);

    /* forward_submit: this node is a follower and knows the leader: carry
     * the command (cmd, len: borrowed for the call) to leader_id at
     * leader_addr, and call cb(arg, rc, msg) exactly once with the leader's
     * answer (the same rc meanings as for rnode_submit), or XE_TIMEOUT after
     * timeout_ms.  The peer-link author implements it; the leader's side
     * calls rnode_submit.  Return 0 if the request is on its way (cb will be
     * called), or a negative XE_ code (cb is not called; rnode reports that
     * code).  NULL: submits on a follower fail with XE_NOLEADER.
     * rnode stamps a request id into cmd (repl.h, version 2) and, when the
     * leader changes before the answer, or the answer is XE_NOLEADER,
     * XE_CLOSED, XE_TIMEOUT, XE_IO or XE_BUSY with time left, calls
     * forward_submit again for the same write (to the new leader once one
     * is known, within the original deadline); an earlier call's cb may
     * still come and is then ignored.  The id makes a second copy in the
     * log a no-op that answers the first result. */
    int (*forward_submit)(void *ud, uint64_t leader_id, const char *leader_addr,
                          const void *cmd, size_t len, uint64_t timeout_ms,
                          rnode_done_cb cb, void *arg);

    /* failed: storage failed (or the state machine could not apply an
     * entry): the node stopped taking part in Raft.  msg is one line for
     * the operator.  Every pending and later submit fails with XE_IO.  May
     * be NULL. */
    void (*failed)(void *ud, int rc, const char *msg);
};

enum rnode_start {
    /* An empty store becomes a new one-member cluster: random cluster id,
     * this node as the only voter at peer_addr, the INIT entry committed.
     * A non-empty store is loaded and replayed. */
    RNODE_BOOTSTRAP = 0,
    /* An empty store stays empty (term 0, no entries) and waits for the
     * leader of cluster_id to send the log (after someone ran rnode_change
     * RNODE_CHANGE_ADD on it).  A non-empty store is loaded and replayed. */
    RNODE_JOIN = 1,
};

struct rnode_opts {
    const char *dir;       /* the store directory, <state-dir>/raft; created
                              if missing (the parent must exist); borrowed */
    const char *name;      /* node name in log lines ("n1"); borrowed */
    uint64_t node_id;      /* this node's id, non-zero */
    const char *peer_addr; /* this node's peer-link address "host:port";
                              borrowed */
    enum rnode_start start;
    uint64_t cluster_id;         /* RNODE_JOIN with an empty store: the cluster
                                    being joined; otherwise ignored (read from the
                                    snapshot or the INIT entry) */
    uint64_t snapshot_every;     /* take a snapshot when this many entries were
                                    applied since the last one (default 1024) */
    bool fast_lan;               /* raft_options_fast_lan timeouts */
    const struct store_sys *sys; /* NULL: the real system calls; tests pass
                                    failing ones (borrowed, must outlive rn) */
};

/* rnode_opts_default fills o: start RNODE_BOOTSTRAP, snapshot_every 1024,
 * fast_lan false, everything else 0 / NULL. */
void rnode_opts_default(struct rnode_opts *o);

struct rnode;

/* rnode_open opens (or creates) the store in opts->dir, loads it and starts
 * Raft on loop.  On an empty store with RNODE_BOOTSTRAP it writes term 1 and
 * the bootstrap configuration (raft.h, RAFT_EV_START), then submits the INIT
 * entry; a lone voter elects itself and commits at once, so when rnode_open
 * returns, rnode_state() holds the cluster id and everything replayed from
 * the snapshot and the log (on a multi-member cluster entries after the
 * snapshot are applied once the leader's commit index is known).
 *
 * hooks.applied / restored / status are NOT called from inside rnode_open:
 * when it returns, the daemon syncs once from rnode_state() (e.g. creates
 * srv with cl_domain() and adds every call bridge), and from then on follows
 * the hooks.  loop, opts, hooks and log are borrowed (hooks copied; log must
 * outlive rn).  On success *out is owned by the caller: release with
 * rnode_close.  The timer is uv_unref'd: it does not keep the loop alive by
 * itself.  On failure err gets one line for the operator.  Returns 0,
 * XE_INVAL (bad opts), XE_IO (storage), XE_CORRUPT (the store or the
 * snapshot does not decode: refused, never replaced), XE_NOMEM. */
int rnode_open(uv_loop_t *loop, const struct rnode_opts *opts,
               const struct rnode_hooks *hooks, const struct log_sink *log,
               struct rnode **out, char *err, size_t errlen);

/* rnode_close fails every pending request with XE_CLOSED (requests made
 * from those callbacks get XE_CLOSED too), closes the store and frees the
 * Raft and cl state at once (a new rnode may be opened on the same
 * directory right after), and frees rn itself once the loop has run the
 * timer's close callback (run the loop after this, as node_free does).  rn
 * must not be used after this call.  NULL is a no-op. */
void rnode_close(struct rnode *rn);

/* rnode_submit proposes one encoded cl command (cl_cmd_encode; borrowed,
 * copied).  cb(arg, rc, msg) is called exactly once, possibly before
 * rnode_submit returns (e.g. XE_IO on a stopped node): see rnode_done_cb.
 * Never reported done unless committed.  With no leader known the request
 * waits (up to timeout_ms) for one; on a follower it goes to
 * hooks.forward_submit; on the leader it is appended (retried while the core
 * says RAFT_EBUSY, e.g. a fresh leader's first entry is not committed yet).
 * timeout_ms 0 means 5000. */
void rnode_submit(struct rnode *rn, const void *cmd, size_t len, uint64_t timeout_ms,
                  rnode_done_cb cb, void *arg);

/* ---- Membership and leadership (leader only, else XE_NOLEADER) ---- */

enum rnode_change_kind {
    /* add id/address as a non-voter, then promote it to voter once it has
     * caught up (thesis §4.2.1, §4.2.1.1); done when the promotion commits */
    RNODE_CHANGE_ADD = 1,
    /* remove id (voter or not, may be this node); done when committed */
    RNODE_CHANGE_REMOVE = 2,
    /* remove old_id and add id/address in one entry, then promote id; for
     * a reset node rejoining from the address old_id still holds */
    RNODE_CHANGE_REPLACE = 3,
    /* only the first half of ADD: done when the non-voter entry commits */
    RNODE_CHANGE_ADD_NONVOTER = 4,
    /* promote non-voter id once caught up; done when that commits */
    RNODE_CHANGE_PROMOTE = 5,
};

struct rnode_change {
    enum rnode_change_kind kind;
    uint64_t id;         /* the member added, removed or promoted */
    const char *address; /* ADD, REPLACE, ADD_NONVOTER: "host:port"; borrowed */
    uint64_t old_id;     /* REPLACE */
    uint64_t timeout_ms; /* 0 means 30000 (promotion waits for catch-up) */
};

/* rnode_change starts a single-server membership change (RAFT_EV_CHANGE) on
 * the leader; c is borrowed.  cb is called exactly once (see the kinds for
 * when "done" is).  Refusals come at once through cb: XE_NOLEADER (not the
 * leader), XE_EXISTS (RAFT_EDUPID / RAFT_EDUPADDR; msg names the member that
 * holds the address), XE_NOTFOUND, XE_LIMIT, XE_BUSY, XE_INVAL. */
void rnode_change(struct rnode *rn, const struct rnode_change *c, rnode_done_cb cb,
                  void *arg);

/* rnode_transfer hands leadership to voter to (0: the most up-to-date
 * one), e.g. on a graceful disable (thesis §3.10).  cb: 0 once another node
 * is leader, XE_TIMEOUT after timeout_ms (0 means 5000), XE_NOLEADER if this
 * node is not the leader, XE_NOTFOUND / XE_INVAL for a bad target. */
void rnode_transfer(struct rnode *rn, uint64_t to, uint64_t timeout_ms, rnode_done_cb cb,
                    void *arg);

/* rnode_standby puts this voter on standby (on) or takes it off: it keeps
 * voting and replicating but seeks no leadership while another voter can
 * take it (RAFT_EV_STANDBY, raft.h; a drained node, docs/cluster.md
 * "Draining a node").  Not persisted: the caller steps it again after each
 * rnode_open.  A leader stays leader (the caller transfers).  May be called
 * from a hook or a callback (it is then stepped once the current step is
 * done). */
void rnode_standby(struct rnode *rn, bool on);

/* rnode_sessions: ok when every member reads version 3 request ids
 * (rreq_set_sessions; the caller decides it with srv_sessions_ok at every
 * membership or link change).  False after rnode_open. */
void rnode_sessions(struct rnode *rn, bool ok);
/* rnode_sessions_on: what rnode_sessions said last, or true while this
 * node is the only member (false for NULL): every member reads version 3
 * entries, and the formats that came with them (a CB_SET's set_at,
 * repl.h) may be written. */
bool rnode_sessions_on(const struct rnode *rn);

/* rnode_build_entries makes max (1..CL_CMD_VERSION_SESSION) the newest
 * entry version this process applies: a newer one stops the driver as a
 * build that cannot decode it does ("written by a newer xmppd: upgrade
 * this node"); below sessions a CB_SET with its time (repl.h set_at) is
 * refused as that build's decoder refuses the flag (XE_CORRUPT).  For the test builds
 * that stand in for an older xmppd in a rolling upgrade (cmake xmppd_v3, main.c
 * XMPPD_ENTRY_MAX) only; call it before rnode_open.  Process-wide. */
void rnode_build_entries(unsigned max);

/* ---- Transport (the peer link calls these) ---- */

/* rnode_receive steps a message that arrived from the peer link (m
 * borrowed, e.g. codec_decode output; from_id is the authenticated peer's
 * node id and must equal m->from).  Returns 0 (also when Raft dropped it:
 * see the counters), XE_PROTO (malformed or from_id mismatch: count it and
 * close the link), XE_IO (the node stopped). */
int rnode_receive(struct rnode *rn, uint64_t from_id, const struct raft_message *m);

/* rnode_peer_down tells Raft that the link to id closed and cannot be
 * reopened for now (RAFT_EV_PEER_DOWN: a follower whose leader it is
 * pre-votes at once instead of waiting for the election timeout). */
void rnode_peer_down(struct rnode *rn, uint64_t id);

/* ---- Local state (cheap, never blocks; answers during elections too) ---- */

/* rnode_state returns the replicated state as applied on this node
 * (borrowed, valid until the next rnode call or loop turn). */
const struct cl_state *rnode_state(const struct rnode *rn);

/* rnode_config returns the latest configuration (members with ids,
 * addresses, roles; borrowed, as for rnode_state). */
const struct raft_config *rnode_config(const struct rnode *rn);
/* rnode_config_committed returns the latest committed configuration
 * (borrowed, as for rnode_config). */
const struct raft_config *rnode_config_committed(const struct rnode *rn);

struct rnode_status {
    enum raft_role role; /* RAFT_STOPPED after a storage failure */
    uint64_t node_id;
    uint64_t cluster_id;
    uint64_t term;
    uint64_t leader_id;              /* 0 when unknown */
    char leader_addr[RAFT_ADDR_MAX]; /* "" when unknown */
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    uint64_t snapshot_index;
    uint64_t last_leader_contact_ms; /* loop clock (uv_now), 0 if never */
    /* last leader change: wall-clock time (0 if none yet), the terms before
     * and after, and a reason ("startup", "elected", "leader lost",
     * "check-quorum step-down", "leadership transfer", "leader's link
     * closed", "new leader", ...) */
    time_t last_change_time;
    uint64_t last_change_old_term;
    uint64_t last_change_new_term;
    char last_change_reason[64];
    /* writes */
    uint64_t submitted;        /* rnode_submit calls */
    uint64_t committed;        /* reported done (any cl_apply result) */
    uint64_t failed;           /* reported XE_NOLEADER, XE_TIMEOUT, XE_IO, ... */
    uint64_t forwarded;        /* handed to hooks.forward_submit */
    uint64_t pending;          /* waiting now */
    uint64_t snapshots;        /* snapshots taken here */
    int stop_error;            /* 0, or the XE_ code that stopped the node */
    char stop_reason[160];     /* "" or why the node stopped */
    struct raft_counters raft; /* the core's counters (copy) */
    /* the Raft timing profile in use (chosen at rnode_open) */
    bool fast_lan;
    unsigned heartbeat_ms, election_min_ms, election_max_ms;
    /* the core applied a configuration without this node: it was removed
     * (or replaced) and takes part in nothing any more (raft_update.removed) */
    bool removed;
};

/* rnode_get_status fills *out from local state. */
void rnode_get_status(const struct rnode *rn, struct rnode_status *out);

/* rnode_peer_progress fills *out for member id (leader only: last contact
 * and match index per follower).  XE_NOLEADER if not the leader,
 * XE_NOTFOUND if id is not a member. */
int rnode_peer_progress(const struct rnode *rn, uint64_t id, struct raft_progress *out);

/* rnode_is_leader is true when this node is the leader. */
bool rnode_is_leader(const struct rnode *rn);

/* rnode_xe maps a RAFT_E code to the XE_ code rnode reports for it. */
int rnode_xe(int raft_rc);

#endif
