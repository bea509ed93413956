/* raft.c: the instance, raft_step's dispatch, role changes, timers, the
 * building of the update and the status queries.  The protocol rules live
 * in election.c and replication.c. */
#include "internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: a small, well-mixed PRNG; the state is per instance. */
static uint64_t rng_next(struct raft *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t raft__random_timeout(struct raft *r)
{
    uint64_t span = r->o.election_max_ms - r->o.election_min_ms;
    return r->o.election_min_ms + rng_next(r) % span;
}

uint64_t raft__random_below(struct raft *r, uint64_t n)
{
    return n > 0 ? rng_next(r) % n : 0;
}

void raft__reset_election_timer(struct raft *r)
{
    r->election_deadline = r->now + raft__random_timeout(r);
}

int raft_new(const struct raft_options *o, struct raft **out)
{
    if (o->id == 0 || o->heartbeat_ms == 0 || o->heartbeat_ms >= o->election_min_ms ||
        o->election_min_ms >= o->election_max_ms || o->max_append_entries == 0)
        return RAFT_EINVAL;
    struct raft *r = calloc(1, sizeof *r);
    if (r == NULL)
        return RAFT_ENOMEM;
    r->o = *o;
    r->role = RAFT_FOLLOWER;
    r->rng = o->seed ^ (o->id * 0x2545f4914f6cdd1dull);
    raft__log_init(&r->log);
    raft_config_init(&r->config);
    raft_config_init(&r->config_c);
    *out = r;
    return 0;
}

void raft_free(struct raft *r)
{
    if (r == NULL)
        return;
    raft__log_free(&r->log);
    free(r->snap.data.base);
    free(r->out);
    free(r);
}

/* ---- helpers shared by the protocol files -------------------------------- */

struct raft_message *raft__send(struct raft *r, enum raft_msg_type type, uint64_t to)
{
    if (r->n_out == r->cap_out) {
        unsigned cap = r->cap_out ? r->cap_out * 2 : 16;
        struct raft_message *m = realloc(r->out, cap * sizeof *m);
        if (m == NULL) {
            /* Dropping a message is always safe in Raft; note it so the step
             * can report RAFT_ENOMEM. */
            r->st_err = RAFT_ENOMEM;
            return NULL;
        }
        r->out = m;
        r->cap_out = cap;
    }
    struct raft_message *m = &r->out[r->n_out++];
    memset(m, 0, sizeof *m);
    m->type = type;
    m->cluster_id = r->o.cluster_id;
    m->from = r->o.id;
    m->to = to;
    m->term = r->term;
    r->counters.msgs_sent++;
    return m;
}

void raft__set_term(struct raft *r, uint64_t term)
{
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
        r->st_term_vote = true;
    }
}

void raft__set_leader(struct raft *r, uint64_t leader)
{
    if (r->leader_id != leader) {
        r->leader_id = leader;
        if (leader != 0)
            r->counters.leader_changes++;
    }
}

void raft__become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
    assert(r->started && r->role != RAFT_STOPPED && term >= r->term);
    raft__set_term(r, term);
    if (r->role != RAFT_FOLLOWER) {
        r->role = RAFT_FOLLOWER;
        raft__reset_election_timer(r);
    }
    r->transfer_to = 0;
    r->promote_id = 0;
    raft__set_leader(r, leader);
}

bool raft__is_voter(const struct raft *r, uint64_t id)
{
    const struct raft_member *m = raft_config_find(&r->config, id);
    return m != NULL && m->role == RAFT_VOTER;
}

unsigned raft__quorum(const struct raft *r)
{
    return raft_config_voters(&r->config) / 2 + 1;
}

struct raft__peer *raft__peer(struct raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_peers; i++)
        if (r->peers[i].id == id)
            return &r->peers[i];
    return NULL;
}

/* raft__peers_sync makes peers[] match the latest configuration (every member
 * but this node), keeping the progress of members that stay.  On a leader,
 * members that the configuration no longer holds stay on as departing peers
 * (replicated to, counted nowhere) so that they learn of their removal. */
void raft__peers_sync(struct raft *r)
{
    struct raft__peer old[2 * RAFT_MAX_MEMBERS];
    unsigned n_old = r->n_peers;
    memcpy(old, r->peers, sizeof old);
    r->n_peers = 0;
    for (unsigned i = 0; i < r->config.n; i++) {
        uint64_t id = r->config.members[i].id;
        if (id == r->o.id)
            continue;
        struct raft__peer *p = &r->peers[r->n_peers++];
        memset(p, 0, sizeof *p);
        p->id = id;
        p->next = raft__log_last(&r->log) + 1;
        p->probing = true;
        p->active = true;
        for (unsigned j = 0; j < n_old; j++)
            if (old[j].id == id)
                *p = old[j];
        p->departing = false;
    }
    if (r->role != RAFT_LEADER)
        return;
    for (unsigned j = 0; j < n_old; j++) {
        if (old[j].id == r->o.id || raft_config_find(&r->config, old[j].id) != NULL ||
            r->n_peers == sizeof r->peers / sizeof r->peers[0])
            continue;
        struct raft__peer *p = &r->peers[r->n_peers++];
        *p = old[j];
        if (!p->departing) {
            p->departing = true;
            p->depart_index = r->config_index;
            p->depart_after = 0;
        }
    }
}

bool raft__departing(const struct raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_peers; i++)
        if (r->peers[i].id == id)
            return r->peers[i].departing;
    return false;
}

/* raft__config_committed notes that config_c changed: a node that was a
 * member and is not in the committed configuration any more was removed
 * (raft.h, raft_update.removed). */
void raft__config_committed(struct raft *r)
{
    if (raft_config_find(&r->config_c, r->o.id) != NULL) {
        r->was_member = true;
    } else if (r->was_member && !r->removed) {
        r->removed = true;
        r->st_removed = true;
    }
}

/* raft__config_recompute sets the latest configuration from the last config
 * entry of the log, or from the snapshot (after a truncation or at start). */
void raft__config_recompute(struct raft *r)
{
    for (uint64_t i = raft__log_last(&r->log); i > r->log.offset; i--) {
        const struct raft_entry *e = raft__log_get(&r->log, i);
        if (e->type != RAFT_ENTRY_CONFIG)
            continue;
        struct raft_config c;
        if (raft_config_decode(e->data.base, e->data.len, &c) != 0)
            continue;
        if (r->config_index != i || memcmp(&c, &r->config, sizeof c) != 0)
            r->st_config = true;
        r->config = c;
        r->config_index = i;
        return;
    }
    if (r->config_index != r->snap.config_index)
        r->st_config = true;
    r->config = r->snap.config;
    r->config_index = r->snap.config_index;
}

/* ---- events ---------------------------------------------------------------- */

static int step_start(struct raft *r, const struct raft_event *ev)
{
    assert(!r->started && r->role == RAFT_FOLLOWER);
    const struct raft_snapshot *s = ev->u.start.snapshot;
    uint64_t base = 0;
    if (s != NULL && s->index > 0) {
        if (raft_config_validate(&s->config) != 0 || s->term == 0)
            return RAFT_ECORRUPT;
        r->snap = *s;
        r->snap.data.base = NULL;
        r->snap.data.len = 0;
        if (s->data.len > 0) {
            r->snap.data.base = malloc(s->data.len);
            if (r->snap.data.base == NULL)
                return RAFT_ENOMEM;
            memcpy(r->snap.data.base, s->data.base, s->data.len);
            r->snap.data.len = s->data.len;
        }
        raft__log_reset(&r->log, s->index, s->term);
        r->commit = r->applied = s->index;
        r->config_c = s->config;
        raft__config_committed(r);
        r->st_restore = true;
        base = s->index;
    }
    for (unsigned i = 0; i < ev->u.start.n_entries; i++) {
        const struct raft_entry *e = &ev->u.start.entries[i];
        if (e->index <= base)
            continue; /* trailing entries covered by the snapshot */
        if (e->index != raft__log_last(&r->log) + 1 ||
            e->term < raft__log_last_term(&r->log))
            return RAFT_ECORRUPT;
        int rc = raft__log_append(&r->log, e->term, e->type, &e->data);
        if (rc != 0)
            return rc;
    }
    r->term = ev->u.start.term;
    r->vote = ev->u.start.vote;
    if (r->term < raft__log_last_term(&r->log))
        return RAFT_ECORRUPT;
    r->persisted = raft__log_last(&r->log);
    raft__config_recompute(r);
    r->st_config = true;
    r->started = true;
    r->role = RAFT_FOLLOWER;
    raft__reset_election_timer(r);
    /* A lone voter need not wait for a timeout to lead itself. */
    if (raft_config_voters(&r->config) == 1 && raft__is_voter(r, r->o.id))
        raft__campaign(r, false, false);
    return 0;
}

static bool valid_message(const struct raft_message *m)
{
    if (m->from == 0)
        return false;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        return m->u.append.n_entries == 0 || m->u.append.entries != NULL;
    case RAFT_MSG_SNAPSHOT:
        return m->u.snapshot.snapshot.index > 0 &&
               raft_config_validate(&m->u.snapshot.snapshot.config) == 0;
    case RAFT_MSG_APPEND_RESULT:
    case RAFT_MSG_VOTE:
    case RAFT_MSG_VOTE_RESULT:
    case RAFT_MSG_TIMEOUT_NOW:
        return true;
    }
    return false;
}

/* Which messages a node that is not a voter of our latest configuration may
 * send us.  Appends and snapshots come from an elected leader, who may be
 * unknown to a joining node.  Vote requests are answered whoever sends them:
 * "servers process incoming RPC requests without consulting their current
 * configurations" (thesis §4.2.1), because the sender may be a voter that we
 * do not know as one yet (we missed its promotion) and that needs our vote;
 * raft__vote_ignored keeps a removed node from disrupting (§4.2.3).  Vote
 * answers and TimeoutNow count only from voters, and append answers only
 * from members, so a removed node never counts toward a quorum. */
static bool sender_allowed(const struct raft *r, const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_SNAPSHOT:
    case RAFT_MSG_VOTE:
        return true;
    case RAFT_MSG_APPEND_RESULT:
        return raft_config_find(&r->config, m->from) != NULL ||
               raft__departing(r, m->from);
    default:
        return raft__is_voter(r, m->from);
    }
}

static int step_receive(struct raft *r, const struct raft_message *m)
{
    assert(r->started && r->role != RAFT_STOPPED);
    r->counters.msgs_received++;
    if (m->cluster_id != r->o.cluster_id) {
        r->counters.dropped_cluster++;
        return 0;
    }
    if (m->to != r->o.id) {
        r->counters.dropped_misrouted++;
        return 0;
    }
    if (!valid_message(m) || m->from == r->o.id)
        return RAFT_EPROTO;
    if (!sender_allowed(r, m)) {
        r->counters.dropped_non_member++;
        return 0;
    }

    bool is_vote = m->type == RAFT_MSG_VOTE;
    if (m->term > r->term) {
        /* Stickiness, and removed nodes (election.c): some vote requests
         * neither raise our term nor get an answer. */
        if (is_vote && raft__vote_ignored(r, m))
            return 0;
        bool pre = (is_vote && m->u.vote.pre_vote) ||
                   (m->type == RAFT_MSG_VOTE_RESULT && m->u.vote_result.pre_vote &&
                    m->u.vote_result.granted);
        if (!pre) {
            uint64_t leader = 0;
            if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT)
                leader = m->from;
            raft__become_follower(r, m->term, leader);
        }
    } else if (m->term < r->term) {
        r->counters.dropped_stale++;
        /* Tell a stale leader or candidate our term so it steps down or
         * catches up (§5.1); a lower-term candidate learns it can retry. */
        if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT) {
            struct raft_message *o = raft__send(r, RAFT_MSG_APPEND_RESULT, m->from);
            if (o != NULL) {
                o->u.append_result.rejected = true;
                o->u.append_result.last_index = raft__log_last(&r->log);
            }
        } else if (is_vote) {
            struct raft_message *o = raft__send(r, RAFT_MSG_VOTE_RESULT, m->from);
            if (o != NULL)
                o->u.vote_result.pre_vote = m->u.vote.pre_vote;
        }
        return 0;
    }

    switch (m->type) {
    case RAFT_MSG_APPEND:
        raft__recv_append(r, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        raft__recv_snapshot(r, m);
        break;
    case RAFT_MSG_APPEND_RESULT:
        raft__recv_append_result(r, m);
        break;
    case RAFT_MSG_VOTE:
        raft__recv_vote(r, m);
        break;
    case RAFT_MSG_VOTE_RESULT:
        raft__recv_vote_result(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        raft__recv_timeout_now(r, m);
        break;
    }
    return 0;
}

static void step_persisted(struct raft *r, uint64_t index, uint64_t term)
{
    assert(r->started && r->role != RAFT_STOPPED);
    /* A report about entries since truncated is stale: ignore it. */
    if (index > raft__log_last(&r->log) || index < r->log.offset ||
        raft__log_term(&r->log, index) != term)
        return;
    if (index > r->persisted)
        r->persisted = index;
    if (r->role == RAFT_LEADER)
        raft__maybe_commit(r);
}

static void step_tick(struct raft *r)
{
    assert(r->started && r->role != RAFT_STOPPED);
    if (r->role == RAFT_LEADER) {
        raft__leader_tick(r);
        return;
    }
    if (raft__fast_path_tick(r))
        return;
    if (r->now < r->election_deadline)
        return;
    if (!raft__is_voter(r, r->o.id)) {
        /* Non-voters and nodes outside the configuration never campaign. */
        raft__reset_election_timer(r);
        return;
    }
    if (r->standby && ++r->standby_skips < RAFT_STANDBY_TIMEOUTS) {
        /* Leave the election to a voter that may lead (raft.h). */
        r->counters.standby_deferred++;
        raft__reset_election_timer(r);
        return;
    }
    if (r->standby)
        r->counters.standby_campaigns++;
    raft__campaign(r, r->o.pre_vote, false);
}

/* ---- the update ------------------------------------------------------------ */

static uint64_t min_nz(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

static void finish(struct raft *r, struct raft_update *u)
{
    memset(u, 0, sizeof *u);
    u->persist_term_vote = r->st_term_vote;
    u->term = r->term;
    u->vote = r->vote;
    if (r->st_snapshot)
        u->snapshot = &r->snap;
    u->truncate_from = r->st_truncate;
    u->compact_to = r->st_compact;
    uint64_t last = raft__log_last(&r->log);
    if (r->st_append_from != 0 && r->st_append_from <= last) {
        u->entries = raft__log_get(&r->log, r->st_append_from);
        u->n_entries = (unsigned)(last - r->st_append_from + 1);
    }

    /* Messages carry entries by range until now, so the log may grow during
     * the step; resolve the pointers last. */
    for (unsigned i = 0; i < r->n_out; i++) {
        struct raft_message *m = &r->out[i];
        if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries > 0)
            m->u.append.entries = raft__log_get(&r->log, m->u.append.prev_index + 1);
        if (m->type == RAFT_MSG_SNAPSHOT)
            m->u.snapshot.snapshot = r->snap;
    }
    u->messages = r->n_out > 0 ? r->out : NULL;
    u->n_messages = r->n_out;

    if (r->st_restore)
        u->restore = &r->snap;
    if (r->commit > r->applied) {
        u->committed = raft__log_get(&r->log, r->applied + 1);
        u->n_committed = (unsigned)(r->commit - r->applied);
        for (unsigned i = 0; i < u->n_committed; i++) {
            const struct raft_entry *e = &u->committed[i];
            if (e->type == RAFT_ENTRY_CONFIG &&
                raft_config_decode(e->data.base, e->data.len, &r->config_c) == 0)
                raft__config_committed(r);
        }
        r->applied = r->commit;
    }
    u->commit_index = r->commit;

    if (r->role == RAFT_LEADER) {
        uint64_t d = r->heartbeat_deadline;
        if (r->o.check_quorum)
            d = min_nz(d, r->quorum_deadline);
        if (r->transfer_to != 0)
            d = min_nz(d, r->transfer_deadline);
        if (r->promote_id != 0)
            d = min_nz(d, r->promote_deadline);
        u->deadline = d;
    } else if (r->role != RAFT_STOPPED) {
        u->deadline = min_nz(r->election_deadline, r->fast_deadline);
    }

    u->role = r->role;
    u->leader_id = r->leader_id;
    u->current_term = r->term;
    u->role_changed = r->role != r->st_role;
    u->leader_changed = r->leader_id != r->st_leader;
    u->term_changed = r->term != r->st_term;
    u->config_changed = r->st_config;
    u->config = &r->config;
    u->removed = r->removed;
    u->removed_changed = r->st_removed;
    u->counters = &r->counters;
}

int raft_step(struct raft *r, const struct raft_event *ev, struct raft_update *upd)
{
    int rc = 0;
    r->n_out = 0;
    r->st_term_vote = r->st_snapshot = r->st_restore = r->st_config = false;
    r->st_removed = false;
    r->st_truncate = r->st_append_from = r->st_compact = 0;
    r->st_role = r->role;
    r->st_leader = r->leader_id;
    r->st_term = r->term;
    r->st_err = 0;
    if (ev->now > r->now)
        r->now = ev->now;
    uint64_t index = 0;

    if (r->role == RAFT_STOPPED) {
        rc = RAFT_ESTOPPED;
        goto out;
    }
    if (!r->started && ev->type != RAFT_EV_START) {
        rc = RAFT_ESTATE;
        goto out;
    }
    switch (ev->type) {
    case RAFT_EV_START:
        rc = r->started ? RAFT_ESTATE : step_start(r, ev);
        break;
    case RAFT_EV_RECEIVE:
        if (RAFT_NEVER(ev->u.receive.msg == NULL))
            rc = RAFT_EINVAL;
        else
            rc = step_receive(r, ev->u.receive.msg);
        break;
    case RAFT_EV_PERSISTED:
        step_persisted(r, ev->u.persisted.index, ev->u.persisted.term);
        break;
    case RAFT_EV_TICK:
        step_tick(r);
        break;
    case RAFT_EV_SUBMIT:
        rc = raft__submit(r, ev->u.submit.type, &ev->u.submit.data, &index);
        break;
    case RAFT_EV_TRANSFER:
        rc = raft__transfer(r, ev->u.transfer.to);
        break;
    case RAFT_EV_CHANGE:
        rc = raft__change(r, ev, &index);
        break;
    case RAFT_EV_SNAPSHOT:
        rc = raft__take_snapshot(r, ev->u.snapshot.index, &ev->u.snapshot.data);
        break;
    case RAFT_EV_PEER_DOWN:
        raft__peer_down(r, ev->u.peer_down.id);
        break;
    case RAFT_EV_STANDBY:
        raft__standby(r, ev->u.standby.on);
        break;
    case RAFT_EV_STOP:
        r->role = RAFT_STOPPED;
        raft__set_leader(r, 0);
        r->n_out = 0;
        break;
    default:
        /* Event types are the driver's, never a peer's. */
        (void)RAFT_NEVER(true);
        rc = RAFT_EINVAL;
    }
out:
    finish(r, upd);
    if (index != 0) {
        upd->index = index;
        upd->index_term = raft__log_term(&r->log, index);
    }
    if (rc == 0 && r->st_err != 0)
        rc = r->st_err;
    return rc;
}

/* ---- queries ----------------------------------------------------------------- */

void raft_status(const struct raft *r, struct raft_status *out)
{
    memset(out, 0, sizeof *out);
    out->role = r->role;
    out->id = r->o.id;
    out->term = r->term;
    out->vote = r->vote;
    out->leader_id = r->leader_id;
    out->commit_index = r->commit;
    out->applied_index = r->applied;
    out->last_index = raft__log_last(&r->log);
    out->persisted_index = r->persisted;
    out->snapshot_index = r->snap.index;
    out->removed = r->removed;
    out->last_leader_contact = r->role == RAFT_LEADER ? r->now : r->leader_contact;
}

const struct raft_config *raft_get_config(const struct raft *r)
{
    return &r->config;
}

const struct raft_config *raft_config_committed(const struct raft *r)
{
    return &r->config_c;
}

int raft_progress(const struct raft *r, uint64_t id, struct raft_progress *out)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    for (unsigned i = 0; i < r->n_peers; i++) {
        const struct raft__peer *p = &r->peers[i];
        if (p->id == id) {
            out->match_index = p->match;
            out->next_index = p->next;
            out->last_contact = p->last_contact;
            out->probing = p->probing;
            return 0;
        }
    }
    return RAFT_ENOTFOUND;
}

const struct raft_counters *raft_get_counters(const struct raft *r)
{
    return &r->counters;
}
