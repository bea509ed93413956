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
 * Requests (submits, changes, transfers) are decided in core/rreq.c: this
 * file steps it with what Raft did (an entry applied, a leader change, a
 * snapshot) and carries out its actions (propose to Raft, forward to the
 * leader) and answers.  After every outermost call kick() pumps rreq until
 * it has nothing more to hand on.  Answers are called back from inside
 * steps; a callback may queue new requests (rreq takes them at once; the
 * pump hands them on once the current step is done).
 *
 * The file is past the house's 1,000 lines: the step loop and the status
 * share the same re-entrancy flags (in_step, kicking) and the same
 * invariants, which are easier to check in one place than across a
 * private header. */
#include "rnode.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "rreq.h"

/* rnode's change kinds are rreq's (rnode.h names them for its callers). */
_Static_assert((int)RNODE_CHANGE_ADD == (int)RREQ_CHANGE_ADD &&
                   (int)RNODE_CHANGE_REMOVE == (int)RREQ_CHANGE_REMOVE &&
                   (int)RNODE_CHANGE_REPLACE == (int)RREQ_CHANGE_REPLACE &&
                   (int)RNODE_CHANGE_ADD_NONVOTER == (int)RREQ_CHANGE_ADD_NONVOTER &&
                   (int)RNODE_CHANGE_PROMOTE == (int)RREQ_CHANGE_PROMOTE,
               "rnode and rreq change kinds");
_Static_assert(RREQ_ADDR_MAX == RAFT_ADDR_MAX, "a member's address");

/* fwd_ticket: the arg of one forward_submit call, naming the forward (id,
 * seq: rreq ignores a late answer).  It outlives the rnode (rn set to NULL
 * by rnode_close); the forwarder's callback frees it. */
struct fwd_ticket {
    struct rnode *rn;
    uint64_t id, seq;
    struct fwd_ticket *next; /* rn->tickets */
};

/* call: the caller of one request (rreq's ctx). */
struct call {
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
    bool sessions; /* rnode_sessions */
    bool kicking;  /* inside kick(): nested calls only queue */
    bool stop_pending;
    bool stopped;
    int stop_error;
    char stop_reason[160];

    struct rreq *rq;            /* the requests (core/rreq.c) */
    uint64_t rq_deadline;       /* its latest update's deadline (0: none) */
    struct fwd_ticket *tickets; /* forwards in flight (rnode_close detaches) */

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
    uint64_t n_snapshots;
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

/* ---- requests: core/rreq.c and its edge ---- */

static const char *member_addr(const struct rnode *rn, uint64_t id);

/* answer_all calls back the requests rreq answered, in order, and frees
 * them (the records are ours: a callback may step rreq again). */
static void answer_all(struct rnode *rn, struct rreq_done *d)
{
    while (d != NULL) {
        struct rreq_done *next = d->next;
        struct call *c = d->ctx;
        if (d->rc < 0 && d->msg[0] != '\0')
            LOG(rn->log, LOG_DEBUG, "%s raft request failed: %s: %s", rn->name,
                xe_name(d->rc), d->msg);
        if (c->cb != NULL)
            c->cb(c->arg, d->rc, d->msg[0] != '\0' ? d->msg : NULL);
        free(c);
        rreq_done_free(d);
        d = next;
    }
}

/* rq_step steps ev (now filled here) into rreq and answers what it
 * answered; the action, if any, is left in *u for the caller.  Returns
 * whether anything was answered. */
static bool rq_step(struct rnode *rn, struct rreq_event *ev, struct rreq_update *u)
{
    struct rreq_done *done;

    ev->now = uv_now(rn->loop);
    rreq_step(rn->rq, ev, u);
    rn->rq_deadline = u->deadline;
    done = u->done;
    u->done = NULL;
    answer_all(rn, done);
    return done != NULL;
}

/* rq_config steps ev_type (RREQ_EV_CONFIG or RREQ_EV_RESTORED at index)
 * with the voters of c. */
static void rq_config(struct rnode *rn, enum rreq_event_type type, uint64_t index,
                      const struct raft_config *c)
{
    uint64_t voters[RAFT_MAX_MEMBERS];
    struct rreq_event ev = {.type = type};
    struct rreq_update u;
    size_t n = 0;

    for (unsigned i = 0; c != NULL && i < c->n; i++)
        if (c->members[i].role == RAFT_VOTER)
            voters[n++] = c->members[i].id;
    ev.u.config.index = index;
    ev.u.config.voters = voters;
    ev.u.config.n = n;
    rq_step(rn, &ev, &u);
}

/* rq_stop answers every request with rc and why, and every later one. */
static void rq_stop(struct rnode *rn, int rc, const char *why)
{
    struct rreq_event ev = {.type = RREQ_EV_STOP};
    struct rreq_update u;

    ev.u.stop.rc = rc;
    ev.u.stop.msg = why;
    rq_step(rn, &ev, &u);
}

/* ---- status ---- */

static const char *member_addr(const struct rnode *rn, uint64_t id)
{
    const struct raft_member *m = raft_config_find(raft_get_config(rn->raft), id);

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
    const struct raft_config *cfg = raft_get_config(rn->raft);

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
    uint64_t prev_leader;

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
    prev_leader = rn->leader_id;
    rn->role = upd->role;
    rn->term = upd->current_term;
    rn->leader_id = upd->leader_id;
    if (c != NULL)
        rn->last_counters = *c;
    /* rreq follows the leader: a transfer is done once someone else leads,
     * a forwarded write goes to the new one. */
    if (upd->leader_id != prev_leader) {
        struct rreq_event ev = {.type = RREQ_EV_LEADER};
        struct rreq_update u;
        ev.u.leader.id = upd->leader_id;
        ev.u.leader.addr = member_addr(rn, upd->leader_id);
        rq_step(rn, &ev, &u);
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

/* The newest entry version this process applies (rnode_build_entries). */
static unsigned build_entry_max = CL_CMD_VERSION_SESSION;

void rnode_build_entries(unsigned max)
{
    build_entry_max = max;
}

/* old_build_reads: whether a build that reads entries up to
 * build_entry_max only decodes e (data, len): not a newer version
 * (XE_UNSUPPORTED), nor, below sessions, a CB_SET with its time, a flag
 * that build refuses (XE_CORRUPT: it applies the entry as a failure, and
 * its state differs from the others'). */
static int old_build_reads(const unsigned char *data, size_t len)
{
    struct cl_cmd *c;
    int rc = 0;

    if (build_entry_max >= CL_CMD_VERSION_SESSION || len == 0)
        return 0;
    if (data[0] > build_entry_max)
        return XE_UNSUPPORTED;
    c = malloc(sizeof *c);
    if (c == NULL)
        return 0;
    if (cl_cmd_decode(data, len, c) == 0 && c->type == CL_CMD_CB_SET &&
        (c->flags & CL_CMD_SET_AT) != 0)
        rc = XE_CORRUPT;
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
}

static void apply_entry(struct rnode *rn, const struct raft_entry *e)
{
    struct cl_effects eff;
    struct raft_config cfg;
    struct rreq_event ev = {.type = RREQ_EV_APPLIED};
    struct rreq_update u;
    int rc = 0;

    if (e->type == RAFT_ENTRY_NORMAL) {
        rc = old_build_reads(e->data.base, e->data.len);
        if (rc != 0) {
            memset(&eff, 0, sizeof eff); /* as the decoder of such a build says */
        } else {
            rc = cl_apply(rn->cl, e->data.base, e->data.len, &eff);
        }
        if (rc == XE_NOMEM) {
            /* Not deterministic: the other nodes applied it.  Going on would
             * make this node's state differ from theirs. */
            stop_with(rn, XE_NOMEM, "out of memory applying entry %" PRIu64, e->index);
            return;
        }
        if (rc == XE_UNSUPPORTED) {
            /* Written by a newer xmppd: nodes that can read it apply it, so
             * skipping it would make this replica differ. */
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
            rq_config(rn, RREQ_EV_CONFIG, 0, &cfg);
    }
    rn->applied_index = e->index;
    ev.u.applied.index = e->index;
    ev.u.applied.term = e->term;
    ev.u.applied.rc = rc;
    rq_step(rn, &ev, &u);
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
    rq_config(rn, RREQ_EV_RESTORED, s->index, &s->config);
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

/* proposed tells rreq raft_step's answer rc to its proposal prop (ev). */
static void proposed(struct rnode *rn, const struct raft_event *ev, uint64_t prop, int rc,
                     const struct raft_update *upd)
{
    struct rreq_event e = {.type = RREQ_EV_PROPOSED};
    struct rreq_update u;
    const struct raft_member *m;

    e.u.proposed.id = prop;
    e.u.proposed.rc = rnode_xe(rc);
    e.u.proposed.detail = rc != 0 ? raft_strerror(rc) : NULL;
    if (rc == 0) {
        e.u.proposed.index = upd->index;
        e.u.proposed.term = upd->index_term;
    } else if (rc == RAFT_EDUPID) {
        e.u.proposed.dup = RREQ_DUP_ID;
    } else if (rc == RAFT_EDUPADDR && ev->type == RAFT_EV_CHANGE) {
        m = raft_config_find_address(raft_get_config(rn->raft), ev->u.change.address);
        e.u.proposed.dup = RREQ_DUP_ADDR;
        e.u.proposed.holder = m != NULL ? m->id : 0;
    }
    rq_step(rn, &e, &u);
}

/* drive steps ev and then every PERSISTED event that follows, carrying out
 * each update.  Returns the first raft_step's result.  When prop is not 0,
 * ev is rreq's proposal prop: rreq hears raft_step's answer (and where the
 * entry went) before anything is applied, so that a commit within this
 * same drive (a lone voter) finds it. */
static int drive(struct rnode *rn, struct raft_event *ev, uint64_t prop)
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
            if (prop != 0)
                proposed(rn, ev, prop, rc, &upd);
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
            rq_stop(rn, XE_IO, rn->stop_reason);
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

/* ---- rreq's actions ---- */

static void fwd_done(void *arg, int rc, const char *msg);

static void ticket_unlink(struct rnode *rn, struct fwd_ticket *t)
{
    for (struct fwd_ticket **pp = &rn->tickets; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
}

/* forward hands a write to hooks.forward_submit with a ticket; a forward
 * that could not start is stepped back (rreq answers or tries again). */
static void forward(struct rnode *rn, const struct rreq_action *a)
{
    struct rreq_event ev = {.type = RREQ_EV_FWD_FAILED};
    struct rreq_update u;
    struct fwd_ticket *t = calloc(1, sizeof *t);
    int rc = XE_NOMEM;

    if (t != NULL) {
        t->rn = rn;
        t->id = a->id;
        t->seq = a->seq;
        t->next = rn->tickets;
        rn->tickets = t;
        rc = rn->hooks.forward_submit(rn->hooks.ud, a->to, member_addr(rn, a->to),
                                      a->data, a->len, a->timeout_ms, fwd_done, t);
        if (rc == 0)
            return;
        /* Not sent: the callback will not come. */
        ticket_unlink(rn, t);
        free(t);
    }
    ev.u.fwd.id = a->id;
    ev.u.fwd.seq = a->seq;
    ev.u.fwd.rc = rc;
    rq_step(rn, &ev, &u);
}

/* fwd_done is forward_submit's callback: the leader's answer, or a failure
 * of the forward; rreq decides (answer, or send again). */
static void fwd_done(void *arg, int rc, const char *msg)
{
    struct fwd_ticket *t = arg;
    struct rnode *rn = t->rn;
    struct rreq_event ev = {.type = RREQ_EV_FWD_RESULT};
    struct rreq_update u;
    bool was_kicking;

    if (rn != NULL)
        ticket_unlink(rn, t);
    ev.u.fwd.id = t->id;
    ev.u.fwd.seq = t->seq;
    ev.u.fwd.rc = rc;
    ev.u.fwd.msg = msg;
    free(t);
    if (rn == NULL)
        return; /* closed */
    was_kicking = rn->kicking;
    rn->kicking = true; /* nested rnode calls from the callback only queue */
    rq_step(rn, &ev, &u);
    rn->kicking = was_kicking;
    kick(rn);
}

/* act carries out rreq's action a: a proposal stepped into Raft (rreq
 * hears the answer inside drive), or a forward. */
static void act(struct rnode *rn, const struct rreq_action *a)
{
    struct raft_event ev;

    memset(&ev, 0, sizeof ev);
    switch (a->type) {
    case RREQ_ACT_SUBMIT:
        ev.type = RAFT_EV_SUBMIT;
        ev.u.submit.type = RAFT_ENTRY_NORMAL;
        ev.u.submit.data.base = (void *)a->data;
        ev.u.submit.data.len = a->len;
        drive(rn, &ev, a->id);
        break;
    case RREQ_ACT_CHANGE:
        ev.type = RAFT_EV_CHANGE;
        ev.u.change.kind = a->change == RREQ_CHANGE_ADD       ? RAFT_CHANGE_ADD
                           : a->change == RREQ_CHANGE_REMOVE  ? RAFT_CHANGE_REMOVE
                           : a->change == RREQ_CHANGE_REPLACE ? RAFT_CHANGE_REPLACE
                                                              : RAFT_CHANGE_PROMOTE;
        ev.u.change.id = a->node;
        ev.u.change.address = a->address;
        ev.u.change.old_id = a->old_id;
        drive(rn, &ev, a->id);
        /* A promotion may be done already (the member is a voter). */
        rq_config(rn, RREQ_EV_CONFIG, 0, raft_config_committed(rn->raft));
        break;
    case RREQ_ACT_TRANSFER:
        ev.type = RAFT_EV_TRANSFER;
        ev.u.transfer.to = a->node;
        drive(rn, &ev, a->id);
        break;
    case RREQ_ACT_FORWARD:
        forward(rn, a);
        break;
    case RREQ_ACT_NONE:
        break;
    }
}

/* pump hands waiting requests on until rreq has nothing more. */
static void pump(struct rnode *rn)
{
    for (;;) {
        struct rreq_event ev = {.type = RREQ_EV_PUMP};
        struct rreq_update u;
        bool answered = rq_step(rn, &ev, &u);
        if (u.act.type == RREQ_ACT_NONE && !answered)
            break;
        act(rn, &u.act);
    }
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(struct rnode *rn)
{
    uint64_t due = rn->stopped ? 0 : rn->raft_deadline;
    uint64_t now = uv_now(rn->loop);

    if (rn->rq_deadline != 0 && (due == 0 || rn->rq_deadline < due))
        due = rn->rq_deadline;
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
    rc = drive(rn, &ev, 0);
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

/* kick runs after every outermost call: hand waiting requests on, snapshot
 * if due, re-arm the timer. */
static void kick(struct rnode *rn)
{
    if (rn->kicking || rn->in_step)
        return;
    rn->kicking = true;
    if (rn->standby_pending)
        step_standby(rn);
    pump(rn);
    if (rn->standby_pending)
        step_standby(rn);
    maybe_snapshot(rn);
    rn->kicking = false;
    arm_timer(rn);
}

static void on_timer(uv_timer_t *t)
{
    struct rnode *rn = t->data;
    uint64_t now = uv_now(rn->loop);
    struct raft_event ev;
    struct rreq_event tick = {.type = RREQ_EV_TICK};
    struct rreq_update u;

    if (!rn->stopped && rn->raft_deadline != 0 && now >= rn->raft_deadline) {
        memset(&ev, 0, sizeof ev);
        ev.type = RAFT_EV_TICK;
        drive(rn, &ev, 0);
    }
    rn->kicking = true; /* nested rnode calls from callbacks only queue */
    rq_step(rn, &tick, &u);
    rn->kicking = false;
    kick(rn);
}

/* ---- public calls ---- */

/* request steps ev (SUBMIT, CHANGE or TRANSFER) for cb(arg); a request
 * rreq refuses at once is answered here. */
static void request(struct rnode *rn, struct rreq_event *ev, void **ctx, rnode_done_cb cb,
                    void *arg)
{
    struct call *c = malloc(sizeof *c);
    struct rreq_update u;

    if (c == NULL) {
        if (cb != NULL)
            cb(arg, XE_NOMEM, "out of memory");
        return;
    }
    c->cb = cb;
    c->arg = arg;
    *ctx = c;
    rq_step(rn, ev, &u);
    if (u.id == 0) {
        free(c);
        if (cb != NULL)
            cb(arg, u.rc, u.msg);
    }
    kick(rn);
}

void rnode_submit(struct rnode *rn, const void *cmd, size_t len, uint64_t timeout_ms,
                  rnode_done_cb cb, void *arg)
{
    struct rreq_event ev = {.type = RREQ_EV_SUBMIT};

    ev.u.submit.cmd = cmd;
    ev.u.submit.len = len;
    ev.u.submit.timeout_ms = timeout_ms;
    request(rn, &ev, &ev.u.submit.ctx, cb, arg);
}

void rnode_change(struct rnode *rn, const struct rnode_change *c, rnode_done_cb cb,
                  void *arg)
{
    struct rreq_event ev = {.type = RREQ_EV_CHANGE};

    ev.u.change.kind = (enum rreq_change_kind)c->kind;
    ev.u.change.id = c->id;
    ev.u.change.address = c->address;
    ev.u.change.old_id = c->old_id;
    ev.u.change.timeout_ms = c->timeout_ms;
    request(rn, &ev, &ev.u.change.ctx, cb, arg);
}

void rnode_transfer(struct rnode *rn, uint64_t to, uint64_t timeout_ms, rnode_done_cb cb,
                    void *arg)
{
    struct rreq_event ev = {.type = RREQ_EV_TRANSFER};

    ev.u.transfer.to = to;
    ev.u.transfer.timeout_ms = timeout_ms;
    request(rn, &ev, &ev.u.transfer.ctx, cb, arg);
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
    rc = drive(rn, &ev, 0);
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
    drive(rn, &ev, 0);
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
    drive(rn, &ev, 0);
}

void rnode_sessions(struct rnode *rn, bool ok)
{
    if (rn == NULL || rn->rq == NULL || rn->sessions == ok)
        return;
    rn->sessions = ok;
    LOG(rn->log, LOG_INFO, "%s request sessions %s: %s", rn->name, ok ? "on" : "off",
        ok ? "every member reads version 3 entries"
           : "a member may not read version 3 entries (version 2 request ids)");
    rreq_set_sessions(rn->rq, ok);
    /* A write waiting for the window goes on at once when it closes. */
    kick(rn);
}

bool rnode_sessions_on(const struct rnode *rn)
{
    const struct raft_config *c;

    if (rn == NULL)
        return false;
    if (rn->sessions)
        return true;
    /* The only member (a node never clustered, or before its first peer
     * link) reads what its own build writes. */
    c = rnode_config(rn);
    return build_entry_max >= CL_CMD_VERSION_SESSION && c != NULL && c->n == 1 &&
           c->members[0].id == rn->node_id;
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
    return raft_get_config(rn->raft);
}

const struct raft_config *rnode_config_committed(const struct rnode *rn)
{
    return raft_config_committed(rn->raft);
}

bool rnode_is_leader(const struct rnode *rn)
{
    return !rn->stopped && rn->leader_id == rn->node_id;
}

void rnode_get_status(const struct rnode *rn, struct rnode_status *out)
{
    struct raft_status st;
    struct rreq_stats rs;
    const struct raft_counters *c = raft_get_counters(rn->raft);

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
    rreq_get_stats(rn->rq, &rs);
    out->submitted = rs.submitted;
    out->committed = rs.committed;
    out->failed = rs.failed;
    out->forwarded = rs.forwarded;
    out->pending = rs.pending;
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
             * files stay as they are for that build. */
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
    rc = drive(rn, &ev, 0);
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
    rn->loop = loop;
    rn->log = log;
    rn->node_id = opts->node_id;
    rn->snapshot_every = opts->snapshot_every != 0 ? opts->snapshot_every : 1024;
    rn->opening = true;
    snprintf(rn->name, sizeof rn->name, "%s", opts->name != NULL ? opts->name : "node");
    snprintf(rn->peer_addr, sizeof rn->peer_addr, "%s", opts->peer_addr);
    if (hooks != NULL)
        rn->hooks = *hooks;

    rc = cl_state_new(&rn->cl);
    if (rc == 0) {
        struct rreq_opts ro = {.node_id = rn->node_id};
        /* Request ids (repl.h) must not repeat those from before a
         * restart: a new boot, a new session of this node's writes. */
        do
            randombytes_buf(&ro.boot, sizeof ro.boot);
        while (ro.boot == 0);
        randombytes_buf(&ro.seq_start, sizeof ro.seq_start);
        ro.seq_start >>= 2; /* rreq.h: below 2^63 */
        ro.can_forward = rn->hooks.forward_submit != NULL;
        rc = rreq_new(&ro, &rn->rq);
    }
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
    rreq_free(rn->rq);
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
    /* Callbacks may submit again: those are refused at once. */
    rn->kicking = true;
    rq_stop(rn, XE_CLOSED, "the node is shutting down");
    rn->kicking = false;
    /* Forwards in flight: their callbacks come later and find nothing. */
    while (rn->tickets != NULL) {
        struct fwd_ticket *t = rn->tickets;
        rn->tickets = t->next;
        t->rn = NULL;
        t->next = NULL;
    }
    rreq_free(rn->rq);
    rn->rq = NULL;
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
