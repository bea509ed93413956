/* rnode.c: the Raft driver on libuv (contract in rnode.h).
 *
 * One struct raft, one raft_store, one cl_state, one uv_timer.  Every event
 * goes through drive(): raft_step, then the update is carried out in the
 * order raft.h demands (persist, send, restore/apply), then a PERSISTED event
 * is stepped for appended entries, and so on until nothing is left.
 *
 * Persistence is synchronous on the loop thread: store_persist returns only
 * once the data is fsynced.  That blocks the loop for the fsync (a few ms on
 * an SSD) on every append; acceptable for configuration writes, which are
 * rare.  An asynchronous store would queue messages behind the write (the
 * send rule of raft.h) and is a later improvement.
 *
 * Requests (submits, changes, transfers) live in one list, in arrival order.
 * They are completed (callback called) from inside steps, but only freed in
 * reap(), at the end of the outermost rnode call, so that a callback may
 * queue new requests without breaking an iteration.
 *
 * The file is past the house's 1,000 lines: the step loop, the request
 * bookkeeping and the status share the same re-entrancy flags (in_step,
 * kicking, closing) and the same invariants, which are easier to check in
 * one place than across a private header. */
#include "rnode.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"

#define SUBMIT_TIMEOUT_DEFAULT 5000
#define CHANGE_TIMEOUT_DEFAULT 30000
/* A forwarded write whose leader went away waits for a new leader; when the
 * forward itself failed and the leader is still the same, it is sent again
 * after FWD_RETRY_MS.  Not sent again with less than FWD_MIN_LEFT_MS left. */
#define FWD_RETRY_MS 100
#define FWD_MIN_LEFT_MS 20

enum req_kind { REQ_SUBMIT, REQ_CHANGE, REQ_TRANSFER };

enum req_state {
    REQ_WAITING,         /* not yet handed to Raft (no leader, busy, queued) */
    REQ_APPENDED,        /* in the log at (index, term), waiting for commit */
    REQ_PROMOTE_PENDING, /* ADD / REPLACE: non-voter committed, promote next */
    REQ_PROMOTING,       /* waiting for a committed config with id a voter */
    REQ_TRANSFERRING,    /* waiting for another leader */
    REQ_FORWARDED,       /* REQ_SUBMIT with hooks.forward_submit (ticket) */
    REQ_DONE,            /* callback called; freed by reap() */
};

struct req;

/* fwd_ticket: the arg of one forward_submit call.  It outlives the request
 * (q set to NULL when the request is finished or sent again elsewhere) and
 * the rnode (rn set to NULL by rnode_close); the forwarder's callback
 * frees it. */
struct fwd_ticket {
    struct rnode *rn;
    struct req *q;
    struct fwd_ticket *next; /* rn->tickets */
};

struct req {
    struct req *next;
    enum req_kind kind;
    enum req_state state;
    unsigned char *cmd; /* REQ_SUBMIT: owned copy (may hold a secret) */
    size_t len;
    struct rnode_change chg; /* REQ_CHANGE; chg.address points at addr */
    char addr[RAFT_ADDR_MAX];
    uint64_t to; /* REQ_TRANSFER */
    uint64_t index, term;
    bool committed; /* settled by its own committed entry */
    /* REQ_SUBMIT on a follower: cmd carries a request id (cl.h, version 2)
     * once forwarded, so that sending it again to a new leader applies it
     * once. */
    bool forwarded;            /* handed to forward_submit at least once */
    uint64_t fwd_to;           /* the leader it was last forwarded to */
    uint64_t fwd_retry_at;     /* loop ms: not before, to the same leader */
    struct fwd_ticket *ticket; /* REQ_FORWARDED: the forward in flight */
    uint64_t timeout_ms;
    uint64_t deadline; /* loop ms */
    rnode_done_cb cb;
    void *arg;
};

struct rnode {
    uv_loop_t *loop;
    uv_timer_t timer;
    const struct log_sink *log;
    char name[32];
    struct rnode_hooks hooks;
    uint64_t node_id;
    uint64_t cluster_id;
    char peer_addr[RAFT_ADDR_MAX];
    uint64_t snapshot_every;
    bool fast_lan; /* the timing profile (ro below), for rnode_status */
    unsigned heartbeat_ms, election_min_ms, election_max_ms;

    struct raft *raft;
    struct store *store;
    struct cl_state *cl;
    uint64_t raft_deadline; /* 0: none */

    bool opening; /* inside rnode_open: hooks applied/restored/status quiet */
    bool in_step; /* inside drive(): new requests wait */
    /* rnode_standby from a hook or callback: stepped by kick() */
    bool standby_pending, standby_want;
    bool kicking; /* inside kick(): nested calls only queue */
    bool closing; /* rnode_close was called: new requests get XE_CLOSED */
    bool stop_pending;
    bool stopped;
    int stop_error;
    char stop_reason[160];

    struct req *reqs, **reqs_tail;
    struct fwd_ticket *tickets; /* forwards in flight (rnode_close detaches) */
    uint64_t req_seq;           /* last request id seq (random start) */

    /* status */
    enum raft_role role;
    uint64_t term, leader_id;
    uint64_t known_leader_term; /* term when a leader was last known */
    bool had_leader;
    const char *pending_reason; /* why the leader went away */
    const char *step_hint;      /* what the event being stepped says (drive) */
    uint64_t transfer_sent_ms;  /* loop ms this leader last sent TimeoutNow */
    time_t ch_time;
    uint64_t ch_old_term, ch_new_term;
    char ch_reason[64];
    struct raft_counters last_counters;
    uint64_t applied_index, snapshot_index;
    uint64_t n_submitted, n_committed, n_failed, n_forwarded, n_snapshots;
};

static void kick(struct rnode *rn);
static void step_standby(struct rnode *rn);

int rnode_xe(int raft_rc)
{
    switch (raft_rc) {
    case 0:
        return 0;
    case RAFT_ENOMEM:
        return XE_NOMEM;
    case RAFT_ENOTLEADER:
        return XE_NOLEADER;
    case RAFT_EBUSY:
        return XE_BUSY;
    case RAFT_EDUPID:
    case RAFT_EDUPADDR:
        return XE_EXISTS;
    case RAFT_ENOTFOUND:
        return XE_NOTFOUND;
    case RAFT_ETOOMANY:
    case RAFT_ETOOBIG:
        return XE_LIMIT;
    case RAFT_ECORRUPT:
        return XE_CORRUPT;
    case RAFT_EIO:
    case RAFT_ENOSPC:
    case RAFT_ESTOPPED:
        return XE_IO;
    case RAFT_EPROTO:
    case RAFT_ECLUSTER:
        return XE_PROTO;
    case RAFT_ESTATE:
        return XE_STATE;
    default:
        return XE_INVAL;
    }
}

void rnode_opts_default(struct rnode_opts *o)
{
    memset(o, 0, sizeof *o);
    o->start = RNODE_BOOTSTRAP;
    o->snapshot_every = 1024;
}

/* ---- requests ---- */

static struct req *req_new(struct rnode *rn, enum req_kind kind, uint64_t timeout_ms,
                           rnode_done_cb cb, void *arg)
{
    struct req *q = calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->kind = kind;
    q->state = REQ_WAITING;
    q->timeout_ms = timeout_ms;
    q->deadline = uv_now(rn->loop) + timeout_ms;
    q->cb = cb;
    q->arg = arg;
    *rn->reqs_tail = q;
    rn->reqs_tail = &q->next;
    return q;
}

/* finish reports rc for q (once) and marks it for reap(). */
static void finish(struct rnode *rn, struct req *q, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(struct rnode *rn, struct req *q, int rc, const char *fmt, ...)
{
    char msg[256] = "";
    va_list ap;

    if (q->state == REQ_DONE)
        return;
    q->state = REQ_DONE;
    if (q->ticket != NULL) {
        q->ticket->q = NULL; /* a late answer is ignored */
        q->ticket = NULL;
    }
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (q->kind == REQ_SUBMIT) {
        if (q->committed)
            rn->n_committed++;
        else
            rn->n_failed++;
    }
    if (rc < 0 && msg[0] != '\0')
        LOG(rn->log, LOG_DEBUG, "%s raft request failed: %s: %s", rn->name, xe_name(rc),
            msg);
    if (q->cb != NULL)
        q->cb(q->arg, rc, msg[0] != '\0' ? msg : NULL);
}

static void reap(struct rnode *rn)
{
    struct req **pp = &rn->reqs;

    while (*pp != NULL) {
        struct req *q = *pp;
        if (q->state != REQ_DONE) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        cl_buf_free(q->cmd, q->len);
        free(q);
    }
    rn->reqs_tail = pp;
}

static void fail_all(struct rnode *rn, int rc, const char *why)
{
    for (struct req *q = rn->reqs; q != NULL; q = q->next)
        finish(rn, q, rc, "%s", why);
}

/* ---- status ---- */

static const char *member_addr(const struct rnode *rn, uint64_t id)
{
    const struct raft_member *m = raft_config_find(raft_config_get(rn->raft), id);

    if (m == NULL)
        m = raft_config_find(raft_config_committed(rn->raft), id);
    return m != NULL ? m->address : "";
}

/* Reasons for a leader change (xmpp cluster status, "Last leader change"). */
#define WHY_STARTUP "startup"
#define WHY_TIMEOUT "leader lost (election timeout)"
#define WHY_LINK "leader's link closed"
#define WHY_CHECK_QUORUM "check-quorum step-down (no majority heard)"
#define WHY_STEPPED_DOWN "this node stepped down (a higher term was seen)"
#define WHY_LEFT "the leader left the configuration"
#define WHY_NEW_LEADER "new leader"
#define WHY_STOPPED "this node stopped"

/* Compared by address in loss_reason. */
static const char WHY_TRANSFER[] = "leadership transfer";

/* A transfer this leader started explains its losing the lead for a while
 * after the TimeoutNow (thesis §3.10: the target campaigns at once). */
#define TRANSFER_WINDOW_MS 10000

/* event_hint says what an event about to be stepped tells about a leader
 * change it may cause (NULL: nothing); see loss_reason. */
static const char *event_hint(const struct rnode *rn, const struct raft_event *ev)
{
    const struct raft_message *m;

    if (ev->type == RAFT_EV_STOP)
        return WHY_STOPPED;
    if (ev->type != RAFT_EV_RECEIVE || ev->u.receive.msg == NULL)
        return NULL;
    m = ev->u.receive.msg;
    /* The target of a transfer campaigns on TimeoutNow; the others vote
     * for it on a vote request flagged transfer (thesis §3.10). */
    if (m->type == RAFT_MSG_TIMEOUT_NOW)
        return WHY_TRANSFER;
    if (m->type == RAFT_MSG_VOTE && m->u.vote.transfer && !m->u.vote.pre_vote)
        return WHY_TRANSFER;
    if (m->term <= rn->term)
        return NULL;
    if (rn->role == RAFT_LEADER)
        return WHY_STEPPED_DOWN;
    /* A member's election (not a transfer): this follower grants votes
     * only once it has not heard from the leader for an election timeout
     * either (stickiness, thesis §4.2.3). */
    if (m->type == RAFT_MSG_VOTE && !m->u.vote.pre_vote)
        return WHY_TIMEOUT;
    if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT)
        return WHY_NEW_LEADER; /* the election happened without this node */
    return NULL;
}

/* loss_reason says why the leader this node knew (rn->leader_id, not 0)
 * went away in upd.  The first that applies: the core's counters
 * (CheckQuorum, the peer-down fast path), a transfer (this leader sent
 * TimeoutNow, or the event says so), the old leader gone from the
 * configuration (it removed itself, thesis §4.2.2), the event (a higher
 * term), this leader stepping down, and else the election timeout. */
static const char *loss_reason(struct rnode *rn, const struct raft_update *upd)
{
    const struct raft_counters *c = upd->counters;
    const struct raft_counters *o = &rn->last_counters;
    bool was_leader = rn->leader_id == rn->node_id;
    const struct raft_config *cfg = raft_config_get(rn->raft);

    if (c != NULL && c->check_quorum_stepdowns > o->check_quorum_stepdowns)
        return WHY_CHECK_QUORUM;
    if (c != NULL && c->fast_path_elections > o->fast_path_elections)
        return WHY_LINK;
    if (was_leader && rn->transfer_sent_ms != 0 &&
        uv_now(rn->loop) < rn->transfer_sent_ms + TRANSFER_WINDOW_MS)
        return WHY_TRANSFER;
    if (rn->step_hint == WHY_TRANSFER)
        return WHY_TRANSFER;
    if (cfg != NULL && raft_config_find(cfg, rn->leader_id) == NULL)
        return WHY_LEFT;
    if (rn->step_hint != NULL)
        return rn->step_hint;
    if (was_leader)
        return WHY_STEPPED_DOWN;
    return WHY_TIMEOUT;
}

/* note_status records role, term and leader changes and their reasons, from
 * the update's flags, the core's counters and the event stepped. */
static void note_status(struct rnode *rn, const struct raft_update *upd)
{
    const struct raft_counters *c = upd->counters;
    bool changed = upd->role_changed || upd->leader_changed || upd->term_changed ||
                   upd->config_changed || upd->removed_changed;

    if (c != NULL && c->transfers > rn->last_counters.transfers)
        rn->transfer_sent_ms = uv_now(rn->loop);
    /* The known leader went away (to none, or straight to another). */
    if (upd->leader_changed && rn->leader_id != 0 && rn->had_leader)
        rn->pending_reason = loss_reason(rn, upd);
    if (upd->leader_changed && upd->leader_id != 0) {
        rn->ch_time = time(NULL);
        rn->ch_old_term = rn->known_leader_term;
        rn->ch_new_term = upd->current_term;
        snprintf(rn->ch_reason, sizeof rn->ch_reason, "%s",
                 !rn->had_leader              ? WHY_STARTUP
                 : rn->pending_reason != NULL ? rn->pending_reason
                                              : WHY_NEW_LEADER);
        rn->pending_reason = NULL;
        rn->had_leader = true;
        rn->known_leader_term = upd->current_term;
        if (upd->leader_id == rn->node_id)
            rn->transfer_sent_ms = 0;
        LOG(rn->log, LOG_INFO,
            "%s raft leader is node %016" PRIx64 "%s, term %" PRIu64 " (%s)", rn->name,
            upd->leader_id, upd->leader_id == rn->node_id ? " (this node)" : "",
            upd->current_term, rn->ch_reason);
    } else if (upd->leader_changed) {
        LOG(rn->log, LOG_INFO, "%s raft no leader in term %" PRIu64 " (%s)", rn->name,
            upd->current_term,
            rn->pending_reason != NULL ? rn->pending_reason : "none known yet");
    }
    if (upd->role_changed)
        LOG(rn->log, LOG_DEBUG, "%s raft role %s, term %" PRIu64, rn->name,
            raft_role_name(upd->role), upd->current_term);
    rn->role = upd->role;
    rn->term = upd->current_term;
    rn->leader_id = upd->leader_id;
    if (c != NULL)
        rn->last_counters = *c;
    /* A transfer is done once someone else leads. */
    if (upd->leader_id != 0 && upd->leader_id != rn->node_id) {
        for (struct req *q = rn->reqs; q != NULL; q = q->next)
            if (q->kind == REQ_TRANSFER && q->state == REQ_TRANSFERRING)
                finish(rn, q, 0, NULL);
    }
    if (changed && !rn->opening && rn->hooks.status != NULL)
        rn->hooks.status(rn->hooks.ud);
}

/* ---- carrying out an update ---- */

static void stop_with(struct rnode *rn, int xe, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* stop_with records why the node must stop; drive() steps RAFT_EV_STOP as
 * soon as the current update is abandoned. */
static void stop_with(struct rnode *rn, int xe, const char *fmt, ...)
{
    va_list ap;

    if (rn->stop_pending || rn->stopped)
        return;
    rn->stop_pending = true;
    rn->stop_error = xe;
    va_start(ap, fmt);
    vsnprintf(rn->stop_reason, sizeof rn->stop_reason, fmt, ap);
    va_end(ap);
    LOG(rn->log, LOG_ERROR, "%s raft stopped: %s", rn->name, rn->stop_reason);
}

/* complete_index settles the requests waiting for log position index, which
 * now holds an entry of term (committed).  rc is the apply result. */
static void complete_index(struct rnode *rn, uint64_t index, uint64_t term, int rc)
{
    for (struct req *q = rn->reqs; q != NULL; q = q->next) {
        if (q->state != REQ_APPENDED || q->index != index)
            continue;
        if (q->term != term) {
            /* Another leader's entry took this position: ours is gone
             * (Raft paper §5.3, log matching); it was never committed. */
            finish(rn, q, XE_NOLEADER,
                   "leadership was lost before the write committed; it was not applied");
            continue;
        }
        if (q->kind == REQ_CHANGE &&
            (q->chg.kind == RNODE_CHANGE_ADD || q->chg.kind == RNODE_CHANGE_REPLACE)) {
            q->state = REQ_PROMOTE_PENDING;
            continue;
        }
        q->committed = true;
        finish(rn, q, rc, NULL);
    }
}

/* check_promoted finishes promotions that a committed configuration made. */
static void check_promoted(struct rnode *rn, const struct raft_config *c)
{
    for (struct req *q = rn->reqs; q != NULL; q = q->next) {
        const struct raft_member *m;
        if (q->kind != REQ_CHANGE || q->state != REQ_PROMOTING)
            continue;
        m = raft_config_find(c, q->chg.id);
        if (m != NULL && m->role == RAFT_VOTER)
            finish(rn, q, 0, NULL);
    }
}

static void apply_entry(struct rnode *rn, const struct raft_entry *e)
{
    struct cl_effects eff;
    struct raft_config cfg;
    int rc = 0;

    if (e->type == RAFT_ENTRY_NORMAL) {
        rc = cl_apply(rn->cl, e->data.base, e->data.len, &eff);
        if (rc == XE_NOMEM) {
            /* Not deterministic: the other nodes applied it.  Going on would
             * make this node's state differ from theirs. */
            stop_with(rn, XE_NOMEM, "out of memory applying entry %" PRIu64, e->index);
            return;
        }
        if (rc == XE_UNSUPPORTED) {
            /* Written by a newer xmppd: nodes that can read it apply it, so
             * skipping it would make this replica differ (issue 13 item 12). */
            stop_with(rn, XE_UNSUPPORTED,
                      "entry %" PRIu64 " was written by a newer xmppd (a format this "
                      "build cannot read): upgrade this node; it applies nothing until "
                      "then",
                      e->index);
            return;
        }
        LOG(rn->log, LOG_DEBUG, "%s raft applied %" PRIu64 " %s %s: %s", rn->name,
            e->index, cl_cmd_type_name(eff.type), eff.name, rc == 0 ? "ok" : xe_name(rc));
        if (!rn->opening && rn->hooks.applied != NULL)
            rn->hooks.applied(rn->hooks.ud, &eff);
    } else if (e->type == RAFT_ENTRY_CONFIG) {
        if (raft_config_decode(e->data.base, e->data.len, &cfg) == 0)
            check_promoted(rn, &cfg);
    }
    rn->applied_index = e->index;
    complete_index(rn, e->index, e->term, rc);
}

static void restore(struct rnode *rn, const struct raft_snapshot *s)
{
    struct cl_state *fresh;
    int rc = cl_snapshot_decode(s->data.base, s->data.len, &fresh);

    if (rc == XE_UNSUPPORTED) {
        /* As for an entry (apply_entry): the log and the snapshot stay, and
         * the upgraded build reads them. */
        stop_with(rn, XE_UNSUPPORTED,
                  "the snapshot at index %" PRIu64 " was written by a newer xmppd (a "
                  "format this build cannot read): upgrade this node; it applies nothing "
                  "until then",
                  s->index);
        return;
    }
    if (rc < 0) {
        stop_with(rn, rc == XE_NOMEM ? XE_NOMEM : XE_CORRUPT,
                  "snapshot at index %" PRIu64 " does not decode: %s", s->index,
                  xe_strerror(rc));
        return;
    }
    cl_state_free(rn->cl);
    rn->cl = fresh;
    rn->applied_index = rn->snapshot_index = s->index;
    for (struct req *q = rn->reqs; q != NULL; q = q->next)
        if (q->state == REQ_APPENDED && q->index <= s->index)
            finish(
                rn, q, XE_TIMEOUT,
                "the state was replaced by a snapshot: the write's outcome is unknown");
    check_promoted(rn, &s->config);
    LOG(rn->log, LOG_INFO, "%s raft restored snapshot at index %" PRIu64, rn->name,
        s->index);
    if (!rn->opening && rn->hooks.restored != NULL)
        rn->hooks.restored(rn->hooks.ud);
}

static void send_all(struct rnode *rn, const struct raft_update *upd)
{
    for (unsigned i = 0; i < upd->n_messages; i++) {
        const struct raft_message *m = &upd->messages[i];
        int rc;
        if (rn->hooks.send == NULL)
            continue;
        rc = rn->hooks.send(rn->hooks.ud, m->to, member_addr(rn, m->to), m);
        if (rc < 0)
            LOG(rn->log, LOG_TRACE, "%s raft %s to %016" PRIx64 " dropped: %s", rn->name,
                raft_msg_type_name(m->type), m->to, xe_strerror(rc));
    }
}

/* carry_out does steps 1-3 of raft.h for upd.  Sets *p_index / *p_term to
 * the last appended entry (0 if none) for the PERSISTED event. */
static void carry_out(struct rnode *rn, const struct raft_update *upd, uint64_t *p_index,
                      uint64_t *p_term)
{
    int rc;

    *p_index = *p_term = 0;
    rn->raft_deadline = upd->deadline;
    if (!rn->stopped) {
        rc = store_persist(rn->store, upd);
        if (rc != 0) {
            /* Never send or apply what may not be on disk. */
            stop_with(rn, XE_IO,
                      "storage failed (%s): stopped taking part in the cluster",
                      raft_strerror(rc));
            note_status(rn, upd);
            return;
        }
    }
    send_all(rn, upd);
    if (upd->restore != NULL)
        restore(rn, upd->restore);
    for (unsigned i = 0; i < upd->n_committed && !rn->stop_pending; i++)
        apply_entry(rn, &upd->committed[i]);
    note_status(rn, upd);
    if (upd->n_entries > 0) {
        *p_index = upd->entries[upd->n_entries - 1].index;
        *p_term = upd->entries[upd->n_entries - 1].term;
    }
}

/* drive steps ev and then every PERSISTED event that follows, carrying out
 * each update.  Returns the first raft_step's result.  When q is not NULL and
 * the first step gave a new entry an index, q records (index, term) before
 * anything is applied, so that a commit within this same drive (a lone
 * voter) finds it. */
static int drive(struct rnode *rn, struct raft_event *ev, struct req *q)
{
    struct raft_update upd;
    struct raft_event next;
    uint64_t p_index, p_term;
    int rc, first = 1, ret = 0;
    bool was_in_step = rn->in_step;
    const char *was_hint = rn->step_hint;

    rn->in_step = true;
    for (;;) {
        ev->now = uv_now(rn->loop);
        rn->step_hint = first ? event_hint(rn, ev) : NULL;
        rc = raft_step(rn->raft, ev, &upd);
        if (first) {
            ret = rc;
            if (q != NULL && rc == 0 && upd.index != 0) {
                q->index = upd.index;
                q->term = upd.index_term;
            }
            first = 0;
        }
        carry_out(rn, &upd, &p_index, &p_term);
        if (rn->stop_pending && !rn->stopped) {
            memset(&next, 0, sizeof next);
            next.type = RAFT_EV_STOP;
            next.u.stop.reason = RAFT_EIO;
            next.now = uv_now(rn->loop);
            rn->stopped = true;
            rn->step_hint = WHY_STOPPED;
            raft_step(rn->raft, &next, &upd);
            rn->raft_deadline = 0;
            note_status(rn, &upd);
            fail_all(rn, XE_IO, rn->stop_reason);
            if (rn->hooks.failed != NULL && !rn->opening)
                rn->hooks.failed(rn->hooks.ud, rn->stop_error, rn->stop_reason);
            break;
        }
        if (p_index == 0 || rn->stopped)
            break;
        memset(&next, 0, sizeof next);
        next.type = RAFT_EV_PERSISTED;
        next.u.persisted.index = p_index;
        next.u.persisted.term = p_term;
        ev = &next;
    }
    rn->step_hint = was_hint;
    rn->in_step = was_in_step;
    return ret;
}

/* ---- requests into Raft ---- */

static void fwd_done(void *arg, int rc, const char *msg);

/* fwd_retryable: the forward's answer says the write did not reach (or was
 * not confirmed by) a working leader: a new leader may take it (rnode.h,
 * rnode_done_cb). */
static bool fwd_retryable(int rc)
{
    return rc == XE_NOLEADER || rc == XE_CLOSED || rc == XE_TIMEOUT || rc == XE_IO ||
           rc == XE_BUSY;
}

/* forward hands q (REQ_SUBMIT, this node a follower knowing the leader) to
 * hooks.forward_submit with a ticket, the first time with a request id
 * stamped into its command.  Returns whether q moved (forwarded or
 * finished); false when it waits to be sent again. */
static bool forward(struct rnode *rn, struct req *q)
{
    uint64_t now = uv_now(rn->loop), leader = rn->leader_id;
    struct fwd_ticket *t;
    unsigned char *b;
    size_t l;
    int rc;

    if (q->forwarded && leader == q->fwd_to && now < q->fwd_retry_at)
        return false;
    if (!q->forwarded) {
        rc = cl_cmd_with_request(q->cmd, q->len, rn->node_id, ++rn->req_seq, &b, &l);
        if (rc < 0) {
            finish(rn, q, rc, "cannot forward the write to the leader: %s",
                   xe_strerror(rc));
            return true;
        }
        cl_buf_free(q->cmd, q->len);
        q->cmd = b;
        q->len = l;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        finish(rn, q, XE_NOMEM, "out of memory");
        return true;
    }
    t->rn = rn;
    t->q = q;
    t->next = rn->tickets;
    rn->tickets = t;
    q->ticket = t;
    q->state = REQ_FORWARDED;
    q->fwd_to = leader;
    rc = rn->hooks.forward_submit(rn->hooks.ud, leader, member_addr(rn, leader), q->cmd,
                                  q->len, q->deadline > now ? q->deadline - now : 1,
                                  fwd_done, t);
    if (rc == 0) {
        if (!q->forwarded)
            rn->n_forwarded++;
        q->forwarded = true;
        return true;
    }
    /* Not sent: the callback will not come. */
    for (struct fwd_ticket **pp = &rn->tickets; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    free(t);
    q->ticket = NULL;
    q->state = REQ_WAITING;
    if (!q->forwarded) {
        finish(rn, q, rc, "cannot forward the write to the leader");
        return true;
    }
    /* Sent before, and no link to the new leader yet (just elected?): try
     * again soon, within the deadline. */
    q->fwd_retry_at = now + FWD_RETRY_MS;
    return false;
}

/* fwd_done is forward_submit's callback: the leader's answer, or a failure
 * of the forward.  A write that may not have reached a working leader is
 * sent again (to the new leader once one is known) while its deadline
 * allows: its request id makes a second copy in the log a no-op (cl.h). */
static void fwd_done(void *arg, int rc, const char *msg)
{
    struct fwd_ticket *t = arg;
    struct rnode *rn = t->rn;
    struct req *q = t->q;
    bool was_kicking;
    uint64_t now;

    if (rn != NULL) {
        for (struct fwd_ticket **pp = &rn->tickets; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        }
    }
    free(t);
    if (rn == NULL || q == NULL)
        return; /* closed, finished, or sent again elsewhere */
    q->ticket = NULL;
    now = uv_now(rn->loop);
    was_kicking = rn->kicking;
    rn->kicking = true; /* nested rnode calls from the callback only queue */
    if (fwd_retryable(rc) && !rn->closing && !rn->stopped &&
        now + FWD_MIN_LEFT_MS < q->deadline) {
        LOG(rn->log, LOG_DEBUG,
            "%s raft forwarded write to node %016" PRIx64 " not confirmed (%s: %s); "
            "sending it again once a leader is known",
            rn->name, q->fwd_to, xe_name(rc), msg != NULL ? msg : "");
        q->state = REQ_WAITING;
        q->fwd_retry_at = now + FWD_RETRY_MS;
    } else {
        /* The leader applied it: cl_apply's result (rnode.h). */
        q->committed = rc >= 0 || rc == XE_EXISTS || rc == XE_NOTFOUND;
        if (msg != NULL && msg[0] != '\0')
            finish(rn, q, rc, "%s", msg);
        else
            finish(rn, q, rc, NULL);
    }
    rn->kicking = was_kicking;
    kick(rn);
}

static bool try_submit(struct rnode *rn, struct req *q)
{
    struct raft_event ev;
    int rc;

    if (rn->leader_id == 0)
        return false; /* wait for a leader, up to the deadline */
    if (rn->leader_id != rn->node_id) {
        if (rn->hooks.forward_submit == NULL) {
            finish(rn, q, XE_NOLEADER,
                   "this node is a follower; the leader is node %016" PRIx64
                   " at %s, and forwarding is not available",
                   rn->leader_id, member_addr(rn, rn->leader_id));
            return true;
        }
        return forward(rn, q);
    }
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_SUBMIT;
    ev.u.submit.type = RAFT_ENTRY_NORMAL;
    ev.u.submit.data.base = q->cmd;
    ev.u.submit.data.len = q->len;
    q->state = REQ_APPENDED;
    q->index = q->term = 0;
    rc = drive(rn, &ev, q);
    if (rc == RAFT_EBUSY) {
        q->state = REQ_WAITING;
        return false;
    }
    if (rc != 0) {
        q->state = REQ_WAITING;
        finish(rn, q, rnode_xe(rc), "the write was refused: %s", raft_strerror(rc));
    }
    return true;
}

static void change_refused(struct rnode *rn, struct req *q, int rc)
{
    const struct raft_member *m;

    if (rc == RAFT_EDUPADDR) {
        m = raft_config_find_address(raft_config_get(rn->raft), q->addr);
        finish(rn, q, XE_EXISTS,
               "address %s is held by member %016" PRIx64
               "; remove it first (xmpp cluster remove %016" PRIx64 ") or use --replace",
               q->addr, m != NULL ? m->id : 0, m != NULL ? m->id : 0);
        return;
    }
    if (rc == RAFT_EDUPID) {
        finish(rn, q, XE_EXISTS, "node %016" PRIx64 " is already a member", q->chg.id);
        return;
    }
    finish(rn, q, rnode_xe(rc), "membership change refused: %s", raft_strerror(rc));
}

static bool try_change(struct rnode *rn, struct req *q)
{
    struct raft_event ev;
    enum req_state prev = q->state;
    int rc;

    if (rn->leader_id != rn->node_id) {
        finish(rn, q, XE_NOLEADER,
               "membership changes are made on the leader (node %016" PRIx64 ")",
               rn->leader_id);
        return true;
    }
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.id = q->chg.id;
    ev.u.change.address = q->addr;
    ev.u.change.old_id = q->chg.old_id;
    if (prev == REQ_PROMOTE_PENDING) {
        ev.u.change.kind = RAFT_CHANGE_PROMOTE;
    } else {
        switch (q->chg.kind) {
        case RNODE_CHANGE_ADD:
        case RNODE_CHANGE_ADD_NONVOTER:
            ev.u.change.kind = RAFT_CHANGE_ADD;
            break;
        case RNODE_CHANGE_REMOVE:
            ev.u.change.kind = RAFT_CHANGE_REMOVE;
            break;
        case RNODE_CHANGE_REPLACE:
            ev.u.change.kind = RAFT_CHANGE_REPLACE;
            break;
        case RNODE_CHANGE_PROMOTE:
            ev.u.change.kind = RAFT_CHANGE_PROMOTE;
            break;
        default:
            finish(rn, q, XE_INVAL, "unknown membership change");
            return true;
        }
    }
    if (ev.u.change.kind == RAFT_CHANGE_PROMOTE) {
        q->state = REQ_PROMOTING;
    } else {
        q->state = REQ_APPENDED;
        q->index = q->term = 0;
    }
    rc = drive(rn, &ev, q->state == REQ_APPENDED ? q : NULL);
    if (rc == RAFT_EBUSY) {
        q->state = prev;
        return false;
    }
    if (rc != 0) {
        change_refused(rn, q, rc);
        return true;
    }
    if (q->state == REQ_PROMOTING)
        check_promoted(rn, raft_config_committed(rn->raft));
    return true;
}

static bool try_transfer(struct rnode *rn, struct req *q)
{
    struct raft_event ev;
    int rc;

    if (rn->leader_id != rn->node_id) {
        finish(rn, q, XE_NOLEADER, "this node is not the leader");
        return true;
    }
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_TRANSFER;
    ev.u.transfer.to = q->to;
    q->state = REQ_TRANSFERRING;
    rc = drive(rn, &ev, NULL);
    if (rc == RAFT_EBUSY) {
        q->state = REQ_WAITING;
        return false;
    }
    if (rc != 0)
        finish(rn, q, rnode_xe(rc), "leadership transfer refused: %s", raft_strerror(rc));
    return true;
}

/* progress hands waiting requests to Raft; returns whether anything moved. */
static bool progress(struct rnode *rn)
{
    bool moved = false;

    for (struct req *q = rn->reqs; q != NULL; q = q->next) {
        if (q->state == REQ_DONE)
            continue;
        if (rn->stopped) {
            finish(rn, q, XE_IO, "%s", rn->stop_reason);
            moved = true;
            continue;
        }
        /* A forwarded write follows a leader change: sent again to the new
         * leader (its request id makes a second copy a no-op). */
        if (q->state == REQ_FORWARDED && rn->leader_id != 0 &&
            rn->leader_id != q->fwd_to) {
            LOG(rn->log, LOG_DEBUG,
                "%s raft forwarded write: the leader changed from node %016" PRIx64
                " to %016" PRIx64 "; sending it again",
                rn->name, q->fwd_to, rn->leader_id);
            q->ticket->q = NULL;
            q->ticket = NULL;
            q->state = REQ_WAITING;
            q->fwd_retry_at = 0;
        }
        if (q->state != REQ_WAITING && q->state != REQ_PROMOTE_PENDING)
            continue;
        switch (q->kind) {
        case REQ_SUBMIT:
            moved |= try_submit(rn, q);
            break;
        case REQ_CHANGE:
            moved |= try_change(rn, q);
            break;
        case REQ_TRANSFER:
            moved |= try_transfer(rn, q);
            break;
        }
        /* A step's answer to one request may unblock an earlier one: the
         * outer loop in kick() goes round again. */
    }
    return moved;
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(struct rnode *rn)
{
    uint64_t due = rn->stopped ? 0 : rn->raft_deadline;
    uint64_t now = uv_now(rn->loop);

    for (struct req *q = rn->reqs; q != NULL; q = q->next) {
        if (q->state != REQ_DONE && (due == 0 || q->deadline < due))
            due = q->deadline;
        if (q->state == REQ_WAITING && q->forwarded && q->fwd_retry_at > now &&
            q->fwd_retry_at < due)
            due = q->fwd_retry_at;
    }
    if (due == 0) {
        uv_timer_stop(&rn->timer);
        return;
    }
    uv_timer_start(&rn->timer, on_timer, due > now ? due - now : 0, 0);
}

static void maybe_snapshot(struct rnode *rn)
{
    struct raft_event ev;
    unsigned char *data;
    size_t len;
    int rc;

    if (rn->stopped || rn->applied_index < rn->snapshot_index + rn->snapshot_every)
        return;
    rc = cl_snapshot_encode(rn->cl, &data, &len);
    if (rc < 0) {
        LOG(rn->log, LOG_WARN, "%s raft snapshot skipped: %s", rn->name, xe_strerror(rc));
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_SNAPSHOT;
    ev.u.snapshot.index = rn->applied_index;
    ev.u.snapshot.data.base = data;
    ev.u.snapshot.data.len = len;
    rc = drive(rn, &ev, NULL);
    cl_buf_free(data, len);
    if (rc == 0) {
        rn->snapshot_index = ev.u.snapshot.index;
        rn->n_snapshots++;
        LOG(rn->log, LOG_INFO, "%s raft snapshot at index %" PRIu64 " (%zu bytes)",
            rn->name, rn->snapshot_index, len);
    } else {
        LOG(rn->log, LOG_WARN, "%s raft snapshot at %" PRIu64 " refused: %s", rn->name,
            rn->applied_index, raft_strerror(rc));
    }
}

/* kick runs after every outermost call: hand waiting requests to Raft,
 * snapshot if due, free finished requests, re-arm the timer. */
static void kick(struct rnode *rn)
{
    if (rn->kicking || rn->in_step)
        return;
    rn->kicking = true;
    if (rn->standby_pending)
        step_standby(rn);
    for (int rounds = 0; rounds < 64 && progress(rn); rounds++)
        ;
    if (rn->standby_pending)
        step_standby(rn);
    maybe_snapshot(rn);
    reap(rn);
    rn->kicking = false;
    arm_timer(rn);
}

static void expire(struct rnode *rn, uint64_t now)
{
    for (struct req *q = rn->reqs; q != NULL; q = q->next) {
        if (q->state == REQ_DONE || q->deadline > now)
            continue;
        if (q->kind == REQ_SUBMIT && q->forwarded)
            finish(rn, q, XE_TIMEOUT,
                   "not confirmed within %" PRIu64 " ms (it may still be applied)",
                   q->timeout_ms);
        else if (q->state == REQ_WAITING && rn->leader_id == 0)
            finish(rn, q, XE_NOLEADER, "no cluster leader within %" PRIu64 " ms",
                   q->timeout_ms);
        else if (q->state == REQ_APPENDED && q->kind == REQ_SUBMIT)
            finish(rn, q, XE_TIMEOUT,
                   "not committed within %" PRIu64 " ms (it may still commit)",
                   q->timeout_ms);
        else
            finish(rn, q, XE_TIMEOUT, "not done within %" PRIu64 " ms", q->timeout_ms);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct rnode *rn = t->data;
    uint64_t now = uv_now(rn->loop);
    struct raft_event ev;

    if (!rn->stopped && rn->raft_deadline != 0 && now >= rn->raft_deadline) {
        memset(&ev, 0, sizeof ev);
        ev.type = RAFT_EV_TICK;
        drive(rn, &ev, NULL);
    }
    rn->kicking = true; /* nested rnode calls from callbacks only queue */
    expire(rn, now);
    rn->kicking = false;
    kick(rn);
}

/* ---- public calls ---- */

/* refused answers q at once when the node is closing or stopped. */
static bool refused(struct rnode *rn, struct req *q)
{
    if (rn->closing)
        finish(rn, q, XE_CLOSED, "the node is shutting down");
    else if (rn->stopped)
        finish(rn, q, XE_IO, "%s", rn->stop_reason);
    else
        return false;
    return true;
}

void rnode_submit(struct rnode *rn, const void *cmd, size_t len, uint64_t timeout_ms,
                  rnode_done_cb cb, void *arg)
{
    struct cl_cmd *dec;
    struct req *q;
    int rc;

    rn->n_submitted++;
    q = req_new(rn, REQ_SUBMIT, timeout_ms != 0 ? timeout_ms : SUBMIT_TIMEOUT_DEFAULT, cb,
                arg);
    if (q == NULL) {
        rn->n_failed++;
        if (cb != NULL)
            cb(arg, XE_NOMEM, "out of memory");
        return;
    }
    if (refused(rn, q))
        goto out;
    /* Nothing that does not decode reaches the log. */
    dec = malloc(sizeof *dec);
    rc = dec == NULL ? XE_NOMEM : cl_cmd_decode(cmd, len, dec);
    if (dec != NULL) {
        sodium_memzero(dec, sizeof *dec);
        free(dec);
    }
    if (rc < 0) {
        finish(rn, q, rc == XE_NOMEM ? XE_NOMEM : XE_INVAL, "malformed command");
        goto out;
    }
    q->cmd = malloc(len);
    if (q->cmd == NULL) {
        finish(rn, q, XE_NOMEM, "out of memory");
        goto out;
    }
    memcpy(q->cmd, cmd, len);
    q->len = len;
out:
    kick(rn);
}

void rnode_change(struct rnode *rn, const struct rnode_change *c, rnode_done_cb cb,
                  void *arg)
{
    struct req *q =
        req_new(rn, REQ_CHANGE,
                c->timeout_ms != 0 ? c->timeout_ms : CHANGE_TIMEOUT_DEFAULT, cb, arg);

    if (q == NULL) {
        cb(arg, XE_NOMEM, "out of memory");
        return;
    }
    q->chg = *c;
    if (c->address != NULL)
        snprintf(q->addr, sizeof q->addr, "%s", c->address);
    q->chg.address = q->addr;
    refused(rn, q);
    kick(rn);
}

void rnode_transfer(struct rnode *rn, uint64_t to, uint64_t timeout_ms, rnode_done_cb cb,
                    void *arg)
{
    struct req *q = req_new(
        rn, REQ_TRANSFER, timeout_ms != 0 ? timeout_ms : SUBMIT_TIMEOUT_DEFAULT, cb, arg);

    if (q == NULL) {
        cb(arg, XE_NOMEM, "out of memory");
        return;
    }
    q->to = to;
    refused(rn, q);
    kick(rn);
}

int rnode_receive(struct rnode *rn, uint64_t from_id, const struct raft_message *m)
{
    struct raft_event ev;
    int rc;

    if (rn->stopped)
        return XE_IO;
    if (m == NULL || m->from != from_id)
        return XE_PROTO;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_RECEIVE;
    ev.u.receive.msg = m;
    rc = drive(rn, &ev, NULL);
    kick(rn);
    if (rc == RAFT_EPROTO)
        return XE_PROTO;
    return rn->stopped ? XE_IO : 0;
}

void rnode_peer_down(struct rnode *rn, uint64_t id)
{
    struct raft_event ev;

    if (rn->stopped)
        return;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_PEER_DOWN;
    ev.u.peer_down.id = id;
    drive(rn, &ev, NULL);
    kick(rn);
}

static void step_standby(struct rnode *rn)
{
    struct raft_event ev;

    rn->standby_pending = false;
    if (rn->stopped)
        return;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_STANDBY;
    ev.u.standby.on = rn->standby_want;
    drive(rn, &ev, NULL);
}

void rnode_standby(struct rnode *rn, bool on)
{
    rn->standby_want = on;
    rn->standby_pending = true;
    /* From a hook or a callback (rnode.h, re-entrancy): kick() steps it
     * once the current step is done. */
    if (rn->in_step || rn->kicking)
        return;
    step_standby(rn);
    kick(rn);
}

const struct cl_state *rnode_state(const struct rnode *rn)
{
    return rn->cl;
}

const struct raft_config *rnode_config(const struct rnode *rn)
{
    return raft_config_get(rn->raft);
}

const struct raft_config *rnode_config_committed(const struct rnode *rn)
{
    return raft_config_committed(rn->raft);
}

bool rnode_is_leader(const struct rnode *rn)
{
    return !rn->stopped && rn->leader_id == rn->node_id;
}

void rnode_status_get(const struct rnode *rn, struct rnode_status *out)
{
    struct raft_status st;
    const struct raft_counters *c = raft_counters_get(rn->raft);

    memset(out, 0, sizeof *out);
    raft_status(rn->raft, &st);
    out->role = rn->stopped ? RAFT_STOPPED : st.role;
    out->node_id = rn->node_id;
    out->cluster_id = rn->cluster_id;
    out->fast_lan = rn->fast_lan;
    out->heartbeat_ms = rn->heartbeat_ms;
    out->election_min_ms = rn->election_min_ms;
    out->election_max_ms = rn->election_max_ms;
    out->term = st.term;
    out->leader_id = rn->stopped ? 0 : st.leader_id;
    if (out->leader_id != 0)
        snprintf(out->leader_addr, sizeof out->leader_addr, "%s",
                 member_addr(rn, out->leader_id));
    out->commit_index = st.commit_index;
    out->applied_index = rn->applied_index;
    out->last_index = st.last_index;
    out->snapshot_index = st.snapshot_index;
    out->last_leader_contact_ms = st.last_leader_contact;
    out->removed = st.removed;
    out->last_change_time = rn->ch_time;
    out->last_change_old_term = rn->ch_old_term;
    out->last_change_new_term = rn->ch_new_term;
    snprintf(out->last_change_reason, sizeof out->last_change_reason, "%s",
             rn->ch_reason);
    out->submitted = rn->n_submitted;
    out->committed = rn->n_committed;
    out->failed = rn->n_failed;
    out->forwarded = rn->n_forwarded;
    for (const struct req *q = rn->reqs; q != NULL; q = q->next)
        if (q->state != REQ_DONE)
            out->pending++;
    out->snapshots = rn->n_snapshots;
    out->stop_error = rn->stopped ? rn->stop_error : 0;
    snprintf(out->stop_reason, sizeof out->stop_reason, "%s",
             rn->stopped ? rn->stop_reason : "");
    if (c != NULL)
        out->raft = *c;
}

int rnode_peer_progress(const struct rnode *rn, uint64_t id, struct raft_progress *out)
{
    int rc = raft_progress(rn->raft, id, out);

    return rc == 0 ? 0 : rc == RAFT_ENOTLEADER ? XE_NOLEADER : XE_NOTFOUND;
}

/* ---- open and close ---- */

/* find_cluster_id reads the cluster id from the snapshot or the INIT entry
 * of a loaded store; 0 if neither says. */
static int find_cluster_id(const struct store_loaded *l, uint64_t *out)
{
    struct cl_state *s;
    struct cl_cmd *c;
    int rc;

    *out = 0;
    if (l->snapshot != NULL) {
        rc = cl_snapshot_decode(l->snapshot->data.base, l->snapshot->data.len, &s);
        if (rc < 0)
            return rc;
        *out = cl_cluster_id(s);
        cl_state_free(s);
        if (*out != 0)
            return 0;
    }
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    for (unsigned i = 0; i < l->n_entries && *out == 0; i++) {
        const struct raft_entry *e = &l->entries[i];
        if (e->type == RAFT_ENTRY_NORMAL &&
            cl_cmd_decode(e->data.base, e->data.len, c) == 0 && c->type == CL_CMD_INIT)
            *out = c->cluster_id;
    }
    sodium_memzero(c, sizeof *c);
    free(c);
    return 0;
}

/* bootstrap writes a new one-member cluster into the empty store: term 1,
 * then the configuration (index 1) and the INIT entry (index 2) in one
 * atomic append (raft.h, RAFT_EV_START).  A crash before the append leaves
 * term 1 and no entries, which is still "empty" and bootstraps again. */
static int bootstrap(struct rnode *rn, struct store_loaded *l, char *err, size_t errlen)
{
    struct raft_config cfg;
    unsigned char cbuf[RAFT_CONFIG_ENCODED_MAX];
    unsigned char *init = NULL;
    size_t clen, ilen;
    struct cl_cmd *c;
    struct raft_entry e[2];
    int rc;

    do
        randombytes_buf(&rn->cluster_id, sizeof rn->cluster_id);
    while (rn->cluster_id == 0);
    raft_config_init(&cfg);
    rc = raft_config_add(&cfg, rn->node_id, rn->peer_addr, RAFT_VOTER);
    if (rc == 0)
        rc = raft_config_encode(&cfg, cbuf, sizeof cbuf, &clen);
    if (rc != 0) {
        snprintf(err, errlen, "bad peer address '%s': %s", rn->peer_addr,
                 raft_strerror(rc));
        return XE_INVAL;
    }
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    cl_cmd_init(c, rn->cluster_id);
    rc = cl_cmd_encode(c, &init, &ilen);
    free(c);
    if (rc < 0)
        return rc;
    e[0] = (struct raft_entry){.index = 1,
                               .term = 1,
                               .type = RAFT_ENTRY_CONFIG,
                               .data = {.base = cbuf, .len = clen}};
    e[1] = (struct raft_entry){.index = 2,
                               .term = 1,
                               .type = RAFT_ENTRY_NORMAL,
                               .data = {.base = init, .len = ilen}};
    rc = store_save_meta(rn->store, 1, 0);
    if (rc == 0)
        rc = store_append(rn->store, e, 2);
    cl_buf_free(init, ilen);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the new cluster's log: %s",
                 raft_strerror(rc));
        return rnode_xe(rc);
    }
    store_loaded_free(l);
    l->term = 1;
    LOG(rn->log, LOG_INFO,
        "%s raft new one-member cluster %016" PRIx64 ", node %016" PRIx64 " at %s",
        rn->name, rn->cluster_id, rn->node_id, rn->peer_addr);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

/* open_store opens the store in opts->dir into rn->store and loads it into
 * *l (owned by the caller: store_loaded_free), bootstrapping a new cluster
 * into an empty store when opts says so, and settles rn->cluster_id.
 * 0 or a negative XE code with one line in err. */
static int open_store(struct rnode *rn, const struct rnode_opts *opts,
                      struct store_loaded *l, char *err, size_t errlen)
{
    bool empty;
    int rc;

    rc = store_open(opts->dir, opts->sys, &rn->store, l);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot open the raft store: %s%s", opts->dir,
                 raft_strerror(rc),
                 rc == RAFT_ECORRUPT
                     ? " (refusing to guess; restore a backup or remove the "
                       "node from the cluster and re-join)"
                     : "");
        return rnode_xe(rc);
    }
    empty = l->snapshot == NULL && l->n_entries == 0;
    if (empty && opts->start == RNODE_BOOTSTRAP) {
        rc = bootstrap(rn, l, err, errlen);
        if (rc < 0)
            return rc;
        store_close(rn->store);
        rn->store = NULL;
        rc = store_open(opts->dir, opts->sys, &rn->store, l);
        if (rc != 0) {
            snprintf(err, errlen, "%s: cannot reopen the raft store: %s", opts->dir,
                     raft_strerror(rc));
            return rnode_xe(rc);
        }
    } else if (empty) {
        rn->cluster_id = opts->cluster_id;
    } else {
        rc = find_cluster_id(l, &rn->cluster_id);
        if (rc == XE_UNSUPPORTED) {
            /* The state was written by a newer xmppd (a downgrade): the
             * files stay as they are for that build (issue 13 item 12). */
            snprintf(err, errlen,
                     "%s: the raft snapshot was written by a newer xmppd (a format this "
                     "build cannot read): run the newer build on it; nothing was changed",
                     opts->dir);
            return rc;
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s: the raft snapshot does not decode: %s", opts->dir,
                     xe_strerror(rc));
            return rc;
        }
        if (rn->cluster_id == 0)
            rn->cluster_id = opts->cluster_id;
    }
    if (rn->cluster_id == 0) {
        snprintf(err, errlen,
                 "%s: the cluster id is unknown (an empty store to join needs it)",
                 opts->dir);
        return XE_INVAL;
    }
    return 0;
}

/* start_raft makes rn->raft and starts it from what the store loaded (l,
 * freed here).  0 or a negative XE code with one line in err. */
static int start_raft(struct rnode *rn, const struct rnode_opts *opts,
                      struct store_loaded *l, char *err, size_t errlen)
{
    struct raft_options ro;
    struct raft_event ev;
    int rc;

    raft_options_default(&ro);
    if (opts->fast_lan)
        raft_options_fast_lan(&ro);
    ro.id = rn->node_id;
    ro.cluster_id = rn->cluster_id;
    rn->fast_lan = opts->fast_lan;
    rn->heartbeat_ms = ro.heartbeat_ms;
    rn->election_min_ms = ro.election_min_ms;
    rn->election_max_ms = ro.election_max_ms;
    LOG(rn->log, LOG_INFO, "%s raft timing: %s (heartbeat %u ms, election %u-%u ms)",
        rn->name, opts->fast_lan ? "fast-LAN" : "default", ro.heartbeat_ms,
        ro.election_min_ms, ro.election_max_ms);
    randombytes_buf(&ro.seed, sizeof ro.seed);
    rc = raft_new(&ro, &rn->raft);
    if (rc != 0) {
        snprintf(err, errlen, "raft: %s", raft_strerror(rc));
        return rnode_xe(rc);
    }
    memset(&ev, 0, sizeof ev);
    store_loaded_start(l, &ev);
    rc = drive(rn, &ev, NULL);
    store_loaded_free(l);
    if (rc == 0 && rn->stopped)
        rc = RAFT_EIO;
    if (rc != 0) {
        snprintf(err, errlen, "%s: raft cannot start from the stored state: %s",
                 opts->dir, rn->stopped ? rn->stop_reason : raft_strerror(rc));
        return rn->stopped ? rn->stop_error : rnode_xe(rc);
    }
    return 0;
}

int rnode_open(uv_loop_t *loop, const struct rnode_opts *opts,
               const struct rnode_hooks *hooks, const struct log_sink *log,
               struct rnode **out, char *err, size_t errlen)
{
    struct rnode *rn;
    struct store_loaded l;
    int rc;

    *out = NULL;
    memset(&l, 0, sizeof l);
    if (opts->dir == NULL || opts->node_id == 0 || opts->peer_addr == NULL ||
        opts->peer_addr[0] == '\0' || strlen(opts->peer_addr) >= RAFT_ADDR_MAX) {
        snprintf(err, errlen,
                 "raft: a directory, a node id and a peer address are needed");
        return XE_INVAL;
    }
    rn = calloc(1, sizeof *rn);
    if (rn == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    /* Request ids (cl.h) must not repeat those from before a restart. */
    randombytes_buf(&rn->req_seq, sizeof rn->req_seq);
    rn->loop = loop;
    rn->log = log;
    rn->reqs_tail = &rn->reqs;
    rn->node_id = opts->node_id;
    rn->snapshot_every = opts->snapshot_every != 0 ? opts->snapshot_every : 1024;
    rn->opening = true;
    snprintf(rn->name, sizeof rn->name, "%s", opts->name != NULL ? opts->name : "node");
    snprintf(rn->peer_addr, sizeof rn->peer_addr, "%s", opts->peer_addr);
    if (hooks != NULL)
        rn->hooks = *hooks;

    rc = cl_state_new(&rn->cl);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc = open_store(rn, opts, &l, err, errlen);
    if (rc < 0)
        goto fail;

    rc = start_raft(rn, opts, &l, err, errlen);
    if (rc < 0)
        goto fail;
    uv_timer_init(loop, &rn->timer);
    rn->timer.data = rn;
    /* The daemon's own handles keep the loop alive; this timer alone must
     * not (rnode_close may come after the loop ended). */
    uv_unref((uv_handle_t *)&rn->timer);
    kick(rn);
    rn->opening = false;
    LOG(rn->log, LOG_INFO,
        "%s raft started: cluster %016" PRIx64 ", term %" PRIu64 ", applied %" PRIu64
        ", %s",
        rn->name, rn->cluster_id, rn->term, rn->applied_index, raft_role_name(rn->role));
    *out = rn;
    return 0;

fail:
    store_loaded_free(&l);
    store_close(rn->store);
    cl_state_free(rn->cl);
    raft_free(rn->raft);
    free(rn);
    return rc;
}

void rnode_close(struct rnode *rn)
{
    if (rn == NULL)
        return;
    /* Not from a hook or a callback (rnode.h): the step on the stack would
     * use the Raft state freed here. */
    assert(!rn->in_step && !rn->kicking);
    /* Callbacks may submit again: those are refused at once (closing). */
    rn->closing = true;
    rn->kicking = true;
    fail_all(rn, XE_CLOSED, "the node is shutting down");
    rn->kicking = false;
    reap(rn);
    /* Forwards in flight: their callbacks come later and find nothing. */
    while (rn->tickets != NULL) {
        struct fwd_ticket *t = rn->tickets;
        rn->tickets = t->next;
        t->rn = NULL;
        t->q = NULL;
        t->next = NULL;
    }
    assert(rn->reqs == NULL);
    /* The store's files are closed now, not in the timer's close callback,
     * so that a caller may open a new store in the same place at once
     * (node reset). */
    raft_free(rn->raft);
    store_close(rn->store);
    cl_state_free(rn->cl);
    rn->raft = NULL;
    rn->store = NULL;
    rn->cl = NULL;
    uv_timer_stop(&rn->timer);
    uv_close((uv_handle_t *)&rn->timer, on_closed);
}
