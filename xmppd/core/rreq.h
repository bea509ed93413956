/* rreq.h: this node's requests to Raft, as a pure state machine: replicated
 * writes (a local submit, an admin write, or one a peer forwarded to this
 * leader), membership changes and leadership transfers, from the call until
 * Raft settles them (docs/cluster.md "Requests to the leader";
 * docs/architecture.md "One convention").  io/rnode.c is its edge: it owns
 * raft/ and steps it with what an update proposes.
 *
 * Events in (rreq_step): a submit, a change, a transfer (from this node), a
 * pump (hand the next waiting request on), the outcome of a proposal
 * (raft_step's answer, the entry's index), an applied entry, a committed
 * configuration, a restored snapshot, a leader change, a forward's answer
 * or its failure to start, a tick with now, a stop.  An update out: the one
 * action to carry out next (an entry, change or transfer to propose to
 * Raft, or a write to forward to the leader), requests answered (with
 * their XE_ code and one line for the operator), and the next deadline.
 *
 * A follower forwards a write to the leader with a request id stamped into
 * it (repl.h, version 3: this node, its boot, the next seq, and the lowest
 * seq of its requests still waiting, which it may still send again; version
 * 2 while some member may not read version 3, rreq_set_sessions), and
 * forwards it again when the leader changes before the answer, or the
 * answer says the write may not have reached a working leader, while its
 * deadline allows: the id makes a second copy in the log a no-op.  It
 * stamps a write only while that seq is within CL_WINDOW of the lowest
 * seq still waiting (the Raft thesis §6.3: the state machine's session of
 * this node then stays bounded); later writes wait their turn.  A write
 * that already carries an id (a peer's, passed on) keeps it.  LOGIN and
 * PRES_LAST get version 2 ids (outside the window), on the leader too, so
 * that every such entry names its origin.  XE_EXPIRED
 * from the leader (a copy below the session's mark) is answered as a
 * refusal: nothing was changed.
 *
 * Bounded: at most opts.max_pending requests and opts.max_bytes of their
 * commands wait at once; more are answered XE_LIMIT at once.  Every request
 * is answered exactly once, by its deadline at the latest (XE_TIMEOUT or
 * XE_NOLEADER with what is known of its fate); a request that cannot be
 * queued for want of memory is answered XE_NOMEM.  Pure: no I/O, no clock
 * (now comes in the events), no randomness (opts.seq_start). */
#ifndef XMPPD_RREQ_H
#define XMPPD_RREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RREQ_MAX_PENDING 4096       /* default opts.max_pending */
#define RREQ_MAX_BYTES (64u << 20)  /* default opts.max_bytes */
#define RREQ_SUBMIT_TIMEOUT_MS 5000 /* a submit or transfer with timeout 0 */
#define RREQ_CHANGE_TIMEOUT_MS 30000
/* A forwarded write whose forward failed while the leader stays the same
 * is sent again after RREQ_FWD_RETRY_MS, never with less than
 * RREQ_FWD_MIN_LEFT_MS of its deadline left. */
#define RREQ_FWD_RETRY_MS 100
#define RREQ_FWD_MIN_LEFT_MS 20
#define RREQ_ADDR_MAX 96 /* a member's "host:port" with its NUL (RAFT_ADDR_MAX) */
#define RREQ_MSG_MAX 256

struct rreq_opts {
    uint64_t node_id;   /* this node, non-zero */
    uint64_t seq_start; /* request ids stamped into forwarded writes start
                           after this (below 2^63) */
    uint64_t boot;      /* this start of the node: random, non-zero (0: stamp
                           version 2 ids, without a session) */
    bool can_forward;   /* a follower may forward writes to the leader */
    size_t max_pending; /* 0: RREQ_MAX_PENDING */
    size_t max_bytes;   /* 0: RREQ_MAX_BYTES */
};

struct rreq;

/* rreq_new makes an empty queue with opts o (borrowed, copied).  Nobody
 * leads until an RREQ_EV_LEADER says so.  0, XE_INVAL (node_id 0) or
 * XE_NOMEM. */
int rreq_new(const struct rreq_opts *o, struct rreq **out);

/* rreq_free frees q and every request still in it, without answering them:
 * step RREQ_EV_STOP first so that each caller hears.  NULL is ignored. */
void rreq_free(struct rreq *q);

/* rreq_set_sessions: ok when every member of the cluster reads version 3
 * request ids (a session, repl.h; the edge decides it with
 * srv_sessions_ok).  Until then (false after rreq_new) a forwarded write
 * gets a version 2 id even with opts.boot: a member of an older build
 * stops applying at the first version 3 entry (XE_UNSUPPORTED), so in a
 * rolling upgrade one write would stop every old member.  A write
 * stamped already keeps its id; a write waiting for the window is
 * stamped at its next turn with what the gate says then. */
void rreq_set_sessions(struct rreq *q, bool ok);

/* Membership changes (thesis §4.2.1): the kinds of a change request.  An
 * action proposes ADD (a non-voter), REMOVE, REPLACE or PROMOTE only. */
enum rreq_change_kind {
    RREQ_CHANGE_ADD = 1,          /* add a non-voter, then promote it */
    RREQ_CHANGE_REMOVE = 2,       /* remove; done when committed */
    RREQ_CHANGE_REPLACE = 3,      /* remove old_id, add id; then promote it */
    RREQ_CHANGE_ADD_NONVOTER = 4, /* add a non-voter; done when committed */
    RREQ_CHANGE_PROMOTE = 5,      /* promote once caught up */
};

/* Why a proposed change was refused as a duplicate (RREQ_EV_PROPOSED). */
enum rreq_dup { RREQ_DUP_NONE = 0, RREQ_DUP_ID, RREQ_DUP_ADDR };

enum rreq_event_type {
    RREQ_EV_SUBMIT = 1, /* a replicated write (an encoded cl command) */
    RREQ_EV_CHANGE,     /* a membership change (leader only) */
    RREQ_EV_TRANSFER,   /* hand leadership on (leader only) */
    RREQ_EV_PUMP,       /* give the next action, if any (after every call) */
    RREQ_EV_PROPOSED,   /* raft_step's answer to the update's proposal */
    RREQ_EV_APPLIED,    /* an entry committed and was applied here */
    RREQ_EV_CONFIG,     /* the committed configuration's voters */
    RREQ_EV_RESTORED,   /* a snapshot replaced the state */
    RREQ_EV_LEADER,     /* the known leader (0: none) */
    RREQ_EV_FWD_RESULT, /* the leader's answer to a forward, or its failure */
    RREQ_EV_FWD_FAILED, /* a forward of an update could not be started */
    RREQ_EV_TICK,       /* time passed */
    RREQ_EV_STOP,       /* answer every request with rc, msg, and later ones */
};

struct rreq_event {
    enum rreq_event_type type;
    uint64_t now; /* monotonic ms, never decreasing; every event */
    union {
        struct {
            const void *cmd; /* borrowed, copied; must decode (cl_cmd_decode) */
            size_t len;
            uint64_t timeout_ms; /* 0: RREQ_SUBMIT_TIMEOUT_MS */
            void *ctx;           /* the caller's; given back in its answer */
        } submit;
        struct {
            enum rreq_change_kind kind;
            uint64_t id;
            const char *address; /* ADD, REPLACE, ADD_NONVOTER; borrowed */
            uint64_t old_id;     /* REPLACE */
            uint64_t timeout_ms; /* 0: RREQ_CHANGE_TIMEOUT_MS */
            void *ctx;
        } change;
        struct {
            uint64_t to;         /* a voter, or 0: the most up-to-date one */
            uint64_t timeout_ms; /* 0: RREQ_SUBMIT_TIMEOUT_MS */
            void *ctx;
        } transfer;
        struct {
            uint64_t id;          /* the action's request */
            int rc;               /* 0, XE_BUSY (try again later) or the refusal */
            uint64_t index, term; /* rc 0, entries: where it was appended */
            enum rreq_dup dup;    /* a change refused as XE_EXISTS: why */
            uint64_t holder;      /* RREQ_DUP_ADDR: the member at the address */
            const char *detail;   /* Raft's words for rc (borrowed) or NULL */
        } proposed;
        struct {
            uint64_t index, term;
            int rc; /* cl_apply's result (0 for a configuration entry) */
        } applied;
        struct {
            uint64_t index;         /* RESTORED: the snapshot's last index */
            const uint64_t *voters; /* the committed voters (borrowed) */
            size_t n;
        } config; /* RREQ_EV_CONFIG and RREQ_EV_RESTORED */
        struct {
            uint64_t id;      /* 0: none known */
            const char *addr; /* its address (borrowed) or NULL */
        } leader;
        struct {
            uint64_t id, seq; /* the FORWARD action's */
            int rc;
            const char *msg; /* the leader's line (borrowed) or NULL */
        } fwd;
        struct {
            int rc;
            const char *msg; /* borrowed, copied */
        } stop;
    } u;
};

enum rreq_action_type {
    RREQ_ACT_NONE = 0,
    RREQ_ACT_SUBMIT,   /* propose data as a normal entry (RAFT_EV_SUBMIT) */
    RREQ_ACT_CHANGE,   /* propose change (RAFT_EV_CHANGE) */
    RREQ_ACT_TRANSFER, /* transfer leadership to node (RAFT_EV_TRANSFER) */
    RREQ_ACT_FORWARD,  /* forward data to the leader `to` */
};

/* The action of an update.  Step RREQ_EV_PROPOSED with id for the three
 * proposals (between raft_step and carrying out its update, so that an
 * entry applied at once finds its request); for a forward, RREQ_EV_FWD_FAILED
 * when it could not be started, else RREQ_EV_FWD_RESULT once answered.
 * data and address are valid until the next rreq_step. */
struct rreq_action {
    enum rreq_action_type type;
    uint64_t id;
    const void *data; /* SUBMIT, FORWARD: the encoded command */
    size_t len;
    enum rreq_change_kind change; /* CHANGE: ADD, REMOVE, REPLACE or PROMOTE */
    uint64_t node;                /* CHANGE: the member; TRANSFER: the target */
    uint64_t old_id;              /* CHANGE REPLACE */
    const char *address;          /* CHANGE ADD, REPLACE */
    uint64_t to;                  /* FORWARD: the leader */
    uint64_t seq;                 /* FORWARD: names this forward */
    uint64_t timeout_ms;          /* FORWARD: what is left of the deadline */
};

/* A request answered.  Owned by the caller once in an update: call back
 * with rc and msg, then free with rreq_done_free (independent of the
 * queue: it may outlive it). */
struct rreq_done {
    struct rreq_done *next;
    void *ctx;
    int rc;                 /* 0 or a negative XE_ code (a submit: cl_apply's) */
    char msg[RREQ_MSG_MAX]; /* "" or one line for the operator */
};

struct rreq_update {
    /* SUBMIT, CHANGE, TRANSFER only: the request's id, or 0 and the answer
     * given at once (rc < 0, msg valid until the next step). */
    uint64_t id;
    int rc;
    const char *msg;
    /* the action to carry out (type RREQ_ACT_NONE: none) */
    struct rreq_action act;
    /* then answer these, in order (owned by the caller) */
    struct rreq_done *done;
    /* step an RREQ_EV_TICK at or after this (0: nothing waits) */
    uint64_t deadline;
};

/* rreq_step feeds ev (borrowed for the call) to q and fills *u (the
 * caller's storage; a nested step needs its own).  0, or XE_INVAL (an
 * unknown event, or a change kind that is none of the above). */
int rreq_step(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u);

/* rreq_done_free frees d (from an update).  NULL is ignored. */
void rreq_done_free(struct rreq_done *d);

struct rreq_stats {
    uint64_t submitted; /* submits stepped */
    uint64_t committed; /* submits answered after their entry applied */
    uint64_t failed;    /* submits answered otherwise */
    uint64_t forwarded; /* submits forwarded to a leader */
    size_t pending;     /* requests waiting now */
    size_t bytes;       /* their commands */
};

/* rreq_get_stats fills *out. */
void rreq_get_stats(const struct rreq *q, struct rreq_stats *out);

#endif
