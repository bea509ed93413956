/* rreq.c: this node's requests to Raft, as a pure state machine (contract
 * in rreq.h; docs/cluster.md "Requests to the leader"). */
#include "rreq.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "never.h"
#include "repl.h"

enum kind { K_SUBMIT, K_CHANGE, K_TRANSFER };

enum state {
    S_WAITING,         /* not handed on yet (no leader, busy, retry later) */
    S_PROPOSING,       /* in an update's action, until RREQ_EV_PROPOSED */
    S_APPENDED,        /* in the log at (index, term), waiting for commit */
    S_PROMOTE_PENDING, /* ADD / REPLACE: the non-voter committed */
    S_PROMOTING,       /* waiting for a committed config with node a voter */
    S_TRANSFERRING,    /* waiting for another leader */
    S_FORWARDED,       /* a write with the leader fwd_to (forward fwd_seq) */
};

/* One request.  done comes first: a done record handed to the caller is
 * the whole request, and rreq_done_free frees it. */
struct req {
    struct rreq_done done;
    struct req *next;
    uint64_t id;
    enum kind kind;
    enum state state, prev; /* prev: PROPOSING's, back on XE_BUSY */
    unsigned char *cmd;     /* a write's command (may hold a secret) */
    size_t len;
    enum rreq_change_kind chg;
    uint64_t node, old_id; /* a change's member; a transfer's target */
    char addr[RREQ_ADDR_MAX];
    uint64_t index, term;
    bool committed; /* settled by its own entry */
    bool stamped;   /* cmd carries a request id (repl.h) */
    bool own;       /* ... stamped here (seq is ours, within the window) */
    bool soft;      /* LOGIN, PRES_LAST: a version 2 id, outside the window */
    uint64_t seq;   /* own: the id's seq */
    bool forwarded; /* a forward was started at least once */
    bool fwd_first; /* the forward in flight is the first */
    uint64_t fwd_to, fwd_seq, fwd_retry_at;
    uint64_t timeout_ms, deadline; /* monotonic ms */
    uint64_t round;                /* the pump round it was last seen in */
};

struct rreq {
    struct rreq_opts o;
    uint64_t next_id, req_seq, fwd_seq;
    uint64_t leader_id;
    char leader_addr[RREQ_ADDR_MAX];
    struct req *reqs; /* oldest first */
    /* the pump: a round hands on each waiting request once; another round
     * follows while the last one moved anything (an answer may unblock an
     * earlier request), at most MAX_ROUNDS */
    uint64_t round;
    unsigned rounds;
    bool moved;
    bool sessions; /* rreq_set_sessions: stamp version 3 ids */
    bool stopped;
    int stop_rc;
    char stop_msg[RREQ_MSG_MAX];
    struct rreq_stats st;
};

#define MAX_ROUNDS 64

int rreq_new(const struct rreq_opts *o, struct rreq **out)
{
    struct rreq *q;

    *out = NULL;
    if (o == NULL || o->node_id == 0)
        return XE_INVAL;
    q = calloc(1, sizeof *q);
    if (q == NULL)
        return XE_NOMEM;
    q->o = *o;
    if (q->o.max_pending == 0)
        q->o.max_pending = RREQ_MAX_PENDING;
    if (q->o.max_bytes == 0)
        q->o.max_bytes = RREQ_MAX_BYTES;
    q->req_seq = o->seq_start;
    q->round = 1;
    *out = q;
    return 0;
}

static void req_free(struct req *r)
{
    cl_buf_free(r->cmd, r->len);
    free(r);
}

void rreq_set_sessions(struct rreq *q, bool ok)
{
    q->sessions = ok;
}

void rreq_free(struct rreq *q)
{
    if (q == NULL)
        return;
    while (q->reqs != NULL) {
        struct req *r = q->reqs;
        q->reqs = r->next;
        req_free(r);
    }
    free(q);
}

void rreq_done_free(struct rreq_done *d)
{
    if (d != NULL)
        req_free((struct req *)d);
}

void rreq_get_stats(const struct rreq *q, struct rreq_stats *out)
{
    *out = q->st;
}

/* ---- the update ---- */

static struct req *find(struct rreq *q, uint64_t id)
{
    for (struct req *r = q->reqs; r != NULL; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void answer(struct rreq *q, struct req *r, struct rreq_update *u, int rc,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* answer takes r out of q with rc and a line, and appends it to u's done
 * list. */
static void answer(struct rreq *q, struct req *r, struct rreq_update *u, int rc,
                   const char *fmt, ...)
{
    struct rreq_done **tail = &u->done;
    va_list ap;

    for (struct req **pp = &q->reqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    r->next = NULL;
    q->st.pending--;
    q->st.bytes -= r->len;
    if (r->kind == K_SUBMIT) {
        if (r->committed)
            q->st.committed++;
        else
            q->st.failed++;
    }
    q->moved = true;
    r->done.rc = rc;
    r->done.msg[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(r->done.msg, sizeof r->done.msg, fmt, ap);
        va_end(ap);
    }
    r->done.next = NULL;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = &r->done;
}

static uint64_t next_deadline(const struct rreq *q, uint64_t now)
{
    uint64_t due = 0;

    for (const struct req *r = q->reqs; r != NULL; r = r->next) {
        if (due == 0 || r->deadline < due)
            due = r->deadline;
        /* A forward to send again to the same leader. */
        if (r->state == S_WAITING && r->forwarded && r->fwd_retry_at > now &&
            r->fwd_retry_at < due)
            due = r->fwd_retry_at;
    }
    return due;
}

/* ---- requests from this node ---- */

/* admit says whether one more request of len bytes may wait; else it sets
 * the update's answer. */
static bool admit(struct rreq *q, size_t len, struct rreq_update *u)
{
    if (q->stopped) {
        u->rc = q->stop_rc;
        u->msg = q->stop_msg;
    } else if (q->st.pending >= q->o.max_pending) {
        u->rc = XE_LIMIT;
        u->msg = "too many replicated writes and membership changes wait on this node; "
                 "nothing was changed: try again once they are done";
    } else if (q->st.bytes + len > q->o.max_bytes) {
        u->rc = XE_LIMIT;
        u->msg = "the replicated writes waiting on this node are too large; nothing was "
                 "changed: try again once they are done";
    } else {
        return true;
    }
    return false;
}

static struct req *enqueue(struct rreq *q, const struct rreq_event *ev, enum kind kind,
                           uint64_t timeout_ms, void *ctx, struct rreq_update *u)
{
    struct req *r = calloc(1, sizeof *r), **tail;

    if (r == NULL) {
        u->rc = XE_NOMEM;
        u->msg = "out of memory on this node; nothing was changed";
        return NULL;
    }
    r->id = ++q->next_id;
    r->kind = kind;
    r->state = S_WAITING;
    r->timeout_ms = timeout_ms;
    r->deadline = ev->now + timeout_ms;
    r->done.ctx = ctx;
    for (tail = &q->reqs; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = r;
    q->st.pending++;
    u->id = r->id;
    return r;
}

static void submit(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    uint64_t timeout =
        ev->u.submit.timeout_ms != 0 ? ev->u.submit.timeout_ms : RREQ_SUBMIT_TIMEOUT_MS;
    enum cl_cmd_type type = 0;
    struct cl_req id;
    unsigned char *copy;
    struct req *r;
    bool stamped;
    int rc;

    q->st.submitted++;
    if (!admit(q, ev->u.submit.len, u))
        goto refused;
    /* Nothing that does not decode reaches the log. */
    rc = cl_cmd_req(ev->u.submit.cmd, ev->u.submit.len, &id, &type);
    stamped = id.origin != 0;
    if (rc < 0) {
        u->rc = rc == XE_NOMEM ? XE_NOMEM : XE_INVAL;
        u->msg = rc == XE_NOMEM ? "out of memory on this node; nothing was changed"
                                : "malformed command";
        goto refused;
    }
    copy = malloc(ev->u.submit.len != 0 ? ev->u.submit.len : 1);
    r = copy != NULL ? enqueue(q, ev, K_SUBMIT, timeout, ev->u.submit.ctx, u) : NULL;
    if (r == NULL) {
        free(copy);
        u->rc = XE_NOMEM;
        u->msg = "out of memory on this node; nothing was changed";
        goto refused;
    }
    memcpy(copy, ev->u.submit.cmd, ev->u.submit.len);
    r->cmd = copy;
    r->len = ev->u.submit.len;
    /* A write forwarded to us keeps its origin's id if we pass it on. */
    r->stamped = stamped;
    r->soft = type == CL_CMD_LOGIN || type == CL_CMD_PRES_LAST;
    q->st.bytes += r->len;
    return;
refused:
    q->st.failed++;
}

static void change(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    uint64_t timeout =
        ev->u.change.timeout_ms != 0 ? ev->u.change.timeout_ms : RREQ_CHANGE_TIMEOUT_MS;
    struct req *r;

    if (ev->u.change.kind < RREQ_CHANGE_ADD || ev->u.change.kind > RREQ_CHANGE_PROMOTE) {
        u->rc = XE_INVAL;
        u->msg = "unknown membership change";
        return;
    }
    if (!admit(q, 0, u))
        return;
    r = enqueue(q, ev, K_CHANGE, timeout, ev->u.change.ctx, u);
    if (r == NULL)
        return;
    r->chg = ev->u.change.kind;
    r->node = ev->u.change.id;
    r->old_id = ev->u.change.old_id;
    if (ev->u.change.address != NULL)
        snprintf(r->addr, sizeof r->addr, "%s", ev->u.change.address);
}

static void transfer(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    uint64_t timeout = ev->u.transfer.timeout_ms != 0 ? ev->u.transfer.timeout_ms
                                                      : RREQ_SUBMIT_TIMEOUT_MS;
    struct req *r;

    if (!admit(q, 0, u))
        return;
    r = enqueue(q, ev, K_TRANSFER, timeout, ev->u.transfer.ctx, u);
    if (r != NULL)
        r->node = ev->u.transfer.to;
}

/* ---- the pump: hand waiting requests on ---- */

/* first_waiting: the lowest seq of this node's stamped requests still
 * waiting (they may be sent again), or `next` when none. */
static uint64_t first_waiting(const struct rreq *q, uint64_t next)
{
    uint64_t first = next;

    for (const struct req *r = q->reqs; r != NULL; r = r->next)
        if (r->own && r->seq < first)
            first = r->seq;
    return first;
}

/* stamp puts this node's request id into write r, once: version 3 (a
 * session, repl.h) within the window while every member reads it
 * (rreq_set_sessions), else version 2 (the old ring, which every build
 * since ids reads), and version 2 for LOGIN and PRES_LAST always (their
 * own ring; builds that read LOGIN entries but no sessions apply them:
 * the soft-entry gate's promise).  1 stamped (or
 * stamped before), 0 it waits for the window, or an error (r answered). */
static int stamp(struct rreq *q, struct req *r, struct rreq_update *u)
{
    struct cl_req id = {.origin = q->o.node_id, .seq = q->req_seq + 1};
    unsigned char *b;
    size_t l;
    int rc;

    if (r->stamped)
        return 1;
    if (q->o.boot != 0 && q->sessions && !r->soft) {
        /* The session's bound (repl.h CL_WINDOW): a write waits while an
         * older one of ours could still be sent again that far back. */
        id.boot = q->o.boot;
        id.first = first_waiting(q, id.seq);
        if (id.seq - id.first >= CL_WINDOW)
            return 0;
    }
    rc = cl_cmd_with_req(r->cmd, r->len, &id, &b, &l);
    if (rc < 0) {
        answer(q, r, u, rc, "cannot stamp the write with its request id: %s",
               xe_strerror(rc));
        return rc;
    }
    q->st.bytes = q->st.bytes - r->len + l;
    cl_buf_free(r->cmd, r->len);
    r->cmd = b;
    r->len = l;
    r->stamped = true;
    r->own = id.boot != 0;
    r->seq = ++q->req_seq;
    return 1;
}

/* forward hands write r to the leader: the first time with a request id
 * stamped into it, so that a second copy in the log is a no-op.  Returns
 * whether r moved (forwarded or answered). */
static bool forward(struct rreq *q, struct req *r, uint64_t now, struct rreq_update *u)
{
    int rc;

    if (r->forwarded && q->leader_id == r->fwd_to && now < r->fwd_retry_at)
        return false;
    rc = stamp(q, r, u);
    if (rc <= 0)
        return rc < 0;
    r->fwd_first = !r->forwarded;
    if (r->fwd_first)
        q->st.forwarded++;
    r->forwarded = true;
    r->state = S_FORWARDED;
    r->fwd_to = q->leader_id;
    r->fwd_seq = ++q->fwd_seq;
    u->act.type = RREQ_ACT_FORWARD;
    u->act.id = r->id;
    u->act.data = r->cmd;
    u->act.len = r->len;
    u->act.to = r->fwd_to;
    u->act.seq = r->fwd_seq;
    u->act.timeout_ms = r->deadline > now ? r->deadline - now : 1;
    return true;
}

/* hand_on gives waiting request r its next step: an action, an answer, or
 * nothing (it waits).  Returns whether it moved. */
static bool hand_on(struct rreq *q, struct req *r, uint64_t now, struct rreq_update *u)
{
    bool leading = q->leader_id == q->o.node_id;

    r->round = q->round;
    switch (r->kind) {
    case K_SUBMIT:
        if (q->leader_id == 0)
            return false; /* wait for a leader, up to the deadline */
        if (!leading && !q->o.can_forward) {
            answer(q, r, u, XE_NOLEADER,
                   "this node is a follower; the leader is node %016" PRIx64
                   " at %s, and forwarding is not available",
                   q->leader_id, q->leader_addr);
            return true;
        }
        if (!leading)
            return forward(q, r, now, u);
        /* LOGIN and PRES_LAST carry their origin on the leader too, so
         * that each node knows its own entries (srv_login_applied). */
        if (r->soft && stamp(q, r, u) < 0)
            return true;
        u->act.type = RREQ_ACT_SUBMIT;
        u->act.data = r->cmd;
        u->act.len = r->len;
        break;
    case K_CHANGE:
        if (!leading) {
            answer(q, r, u, XE_NOLEADER,
                   "membership changes are made on the leader (node %016" PRIx64 ")",
                   q->leader_id);
            return true;
        }
        u->act.type = RREQ_ACT_CHANGE;
        u->act.node = r->node;
        u->act.old_id = r->old_id;
        u->act.address = r->addr;
        if (r->state == S_PROMOTE_PENDING || r->chg == RREQ_CHANGE_PROMOTE)
            u->act.change = RREQ_CHANGE_PROMOTE;
        else if (r->chg == RREQ_CHANGE_ADD_NONVOTER)
            u->act.change = RREQ_CHANGE_ADD;
        else
            u->act.change = r->chg;
        break;
    case K_TRANSFER:
        if (!leading) {
            answer(q, r, u, XE_NOLEADER, "this node is not the leader");
            return true;
        }
        u->act.type = RREQ_ACT_TRANSFER;
        u->act.node = r->node;
        break;
    }
    u->act.id = r->id;
    r->prev = r->state;
    r->state = S_PROPOSING;
    return true;
}

static void pump(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    for (;;) {
        for (struct req *r = q->reqs; r != NULL; r = r->next) {
            if ((r->state != S_WAITING && r->state != S_PROMOTE_PENDING) ||
                r->round == q->round)
                continue;
            if (hand_on(q, r, ev->now, u))
                return;
        }
        if (!q->moved || ++q->rounds >= MAX_ROUNDS)
            break;
        q->moved = false;
        q->round++;
    }
    /* Nothing more: the next pump starts afresh. */
    q->moved = false;
    q->rounds = 0;
    q->round++;
}

/* ---- what Raft and the leader said ---- */

static void proposed(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    struct req *r = find(q, ev->u.proposed.id);
    int rc = ev->u.proposed.rc;
    const char *why =
        ev->u.proposed.detail != NULL ? ev->u.proposed.detail : xe_strerror(rc);

    if (r == NULL || r->state != S_PROPOSING)
        return;
    if (rc == XE_BUSY) {
        /* Raft takes one at a time (a fresh leader's first entry, a change
         * in progress, thesis §4.1): the next round asks again. */
        r->state = r->prev;
        return;
    }
    q->moved = true;
    if (rc < 0) {
        r->state = r->prev;
        if (r->kind == K_SUBMIT)
            answer(q, r, u, rc, "the write was refused: %s", why);
        else if (r->kind == K_TRANSFER)
            answer(q, r, u, rc, "leadership transfer refused: %s", why);
        else if (ev->u.proposed.dup == RREQ_DUP_ADDR)
            answer(q, r, u, XE_EXISTS,
                   "address %s is held by member %016" PRIx64
                   "; remove it first (xmpp cluster remove %016" PRIx64
                   ") or use --replace",
                   r->addr, ev->u.proposed.holder, ev->u.proposed.holder);
        else if (ev->u.proposed.dup == RREQ_DUP_ID)
            answer(q, r, u, XE_EXISTS, "node %016" PRIx64 " is already a member",
                   r->node);
        else
            answer(q, r, u, rc, "membership change refused: %s", why);
        return;
    }
    if (r->kind == K_TRANSFER) {
        r->state = S_TRANSFERRING;
    } else if (r->kind == K_CHANGE &&
               (r->prev == S_PROMOTE_PENDING || r->chg == RREQ_CHANGE_PROMOTE)) {
        r->state = S_PROMOTING;
    } else {
        r->state = S_APPENDED;
        r->index = ev->u.proposed.index;
        r->term = ev->u.proposed.term;
    }
}

/* applied settles the requests waiting for the entry at index. */
static void applied(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->state != S_APPENDED || r->index != ev->u.applied.index)
            continue;
        if (r->term != ev->u.applied.term) {
            /* Another leader's entry took this position: ours is gone
             * (Raft paper §5.3, log matching); it was never committed. */
            answer(q, r, u, XE_NOLEADER,
                   "leadership was lost before the write committed; it was not applied");
        } else if (r->kind == K_CHANGE &&
                   (r->chg == RREQ_CHANGE_ADD || r->chg == RREQ_CHANGE_REPLACE)) {
            /* The non-voter is in: promote it once it caught up (thesis
             * §4.2.1). */
            r->state = S_PROMOTE_PENDING;
            q->moved = true;
        } else {
            r->committed = true;
            answer(q, r, u, ev->u.applied.rc, NULL);
        }
    }
}

static void promoted(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->state != S_PROMOTING)
            continue;
        for (size_t i = 0; i < ev->u.config.n; i++) {
            if (ev->u.config.voters[i] == r->node) {
                answer(q, r, u, 0, NULL);
                break;
            }
        }
    }
}

static void restored(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->state == S_APPENDED && r->index <= ev->u.config.index)
            answer(
                q, r, u, XE_TIMEOUT,
                "the state was replaced by a snapshot: the write's outcome is unknown");
    }
    promoted(q, ev, u);
}

static void leader(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    uint64_t id = ev->u.leader.id;

    q->leader_id = id;
    snprintf(q->leader_addr, sizeof q->leader_addr, "%s",
             ev->u.leader.addr != NULL ? ev->u.leader.addr : "");
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        /* A transfer is done once someone else leads (thesis §3.10). */
        if (r->state == S_TRANSFERRING && id != 0 && id != q->o.node_id)
            answer(q, r, u, 0, NULL);
        /* A forwarded write follows a leader change: sent again to the new
         * leader (its request id makes a second copy a no-op); the old
         * leader's answer is then ignored. */
        if (r->state == S_FORWARDED && id != 0 && id != r->fwd_to) {
            r->state = S_WAITING;
            r->fwd_retry_at = 0;
        }
    }
}

/* retryable: the forward's answer says the write did not reach (or was not
 * confirmed by) a working leader: a new leader may take it. */
static bool retryable(int rc)
{
    return rc == XE_NOLEADER || rc == XE_CLOSED || rc == XE_TIMEOUT || rc == XE_IO ||
           rc == XE_BUSY;
}

static struct req *forward_of(struct rreq *q, const struct rreq_event *ev)
{
    struct req *r = find(q, ev->u.fwd.id);

    /* Finished, or sent again elsewhere since: a late answer. */
    if (r == NULL || r->state != S_FORWARDED || r->fwd_seq != ev->u.fwd.seq)
        return NULL;
    return r;
}

static void fwd_result(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    struct req *r = forward_of(q, ev);
    int rc = ev->u.fwd.rc;
    const char *msg = ev->u.fwd.msg;

    if (r == NULL)
        return;
    if (retryable(rc) && ev->now + RREQ_FWD_MIN_LEFT_MS < r->deadline) {
        r->state = S_WAITING;
        r->fwd_retry_at = ev->now + RREQ_FWD_RETRY_MS;
        return;
    }
    if (rc == XE_EXPIRED) {
        /* Our session's mark passed this write (repl.h): not applied. */
        answer(q, r, u, rc,
               "the write was refused as a late copy of an earlier request; nothing "
               "was changed: try again");
        return;
    }
    /* The leader applied it: cl_apply's result. */
    r->committed = rc >= 0 || rc == XE_EXISTS || rc == XE_NOTFOUND;
    if (msg != NULL && msg[0] != '\0')
        answer(q, r, u, rc, "%s", msg);
    else
        answer(q, r, u, rc, NULL);
}

static void fwd_failed(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    struct req *r = forward_of(q, ev);

    if (r == NULL)
        return;
    if (r->fwd_first) {
        r->forwarded = false;
        q->st.forwarded--;
        answer(q, r, u, ev->u.fwd.rc, "cannot forward the write to the leader");
        return;
    }
    /* Sent before, and no link to the new leader yet (just elected?): try
     * again soon, within the deadline. */
    r->state = S_WAITING;
    r->fwd_retry_at = ev->now + RREQ_FWD_RETRY_MS;
}

/* tick answers the requests whose deadline passed, with what is known of
 * their fate. */
static void tick(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        if (ev->now < r->deadline)
            continue;
        if (r->kind == K_SUBMIT && r->forwarded)
            answer(q, r, u, XE_TIMEOUT,
                   "not confirmed within %" PRIu64 " ms (it may still be applied)",
                   r->timeout_ms);
        else if (r->state == S_WAITING && q->leader_id == 0)
            answer(q, r, u, XE_NOLEADER, "no cluster leader within %" PRIu64 " ms",
                   r->timeout_ms);
        else if (r->state == S_APPENDED && r->kind == K_SUBMIT)
            answer(q, r, u, XE_TIMEOUT,
                   "not committed within %" PRIu64 " ms (it may still commit)",
                   r->timeout_ms);
        else
            answer(q, r, u, XE_TIMEOUT, "not done within %" PRIu64 " ms", r->timeout_ms);
    }
}

static void stop(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    q->stopped = true;
    q->stop_rc = ev->u.stop.rc < 0 ? ev->u.stop.rc : XE_CLOSED;
    snprintf(q->stop_msg, sizeof q->stop_msg, "%s",
             ev->u.stop.msg != NULL ? ev->u.stop.msg : xe_strerror(q->stop_rc));
    while (q->reqs != NULL)
        answer(q, q->reqs, u, q->stop_rc, "%s", q->stop_msg);
}

int rreq_step(struct rreq *q, const struct rreq_event *ev, struct rreq_update *u)
{
    memset(u, 0, sizeof *u);
    switch (ev->type) {
    case RREQ_EV_SUBMIT:
        submit(q, ev, u);
        break;
    case RREQ_EV_CHANGE:
        change(q, ev, u);
        break;
    case RREQ_EV_TRANSFER:
        transfer(q, ev, u);
        break;
    case RREQ_EV_PUMP:
        pump(q, ev, u);
        break;
    case RREQ_EV_PROPOSED:
        proposed(q, ev, u);
        break;
    case RREQ_EV_APPLIED:
        applied(q, ev, u);
        break;
    case RREQ_EV_CONFIG:
        promoted(q, ev, u);
        break;
    case RREQ_EV_RESTORED:
        restored(q, ev, u);
        break;
    case RREQ_EV_LEADER:
        leader(q, ev, u);
        break;
    case RREQ_EV_FWD_RESULT:
        fwd_result(q, ev, u);
        break;
    case RREQ_EV_FWD_FAILED:
        fwd_failed(q, ev, u);
        break;
    case RREQ_EV_TICK:
        tick(q, ev, u);
        break;
    case RREQ_EV_STOP:
        stop(q, ev, u);
        break;
    default:
        (void)XD_NEVER(true); /* a type rreq.h does not name */
        u->deadline = next_deadline(q, ev->now);
        return XE_INVAL;
    }
    u->deadline = next_deadline(q, ev->now);
    return 0;
}
