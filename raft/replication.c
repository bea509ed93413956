/* replication.c: the leader's side and the follower's side of log
 * replication (§5.3), the commit rule (§5.4.2), snapshots and InstallSnapshot
 * (thesis chapter 5), single-server membership changes (thesis §4.2.1) and
 * the leader's timers (heartbeat, CheckQuorum thesis §6.2). */
#include "internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void mark_appended(struct raft *r, uint64_t index)
{
    if (r->st_append_from == 0 || index < r->st_append_from)
        r->st_append_from = index;
}

static void mark_truncated(struct raft *r, uint64_t from)
{
    if (r->st_truncate == 0 || from < r->st_truncate)
        r->st_truncate = from;
    if (r->st_append_from >= from)
        r->st_append_from = 0;
    if (r->persisted >= from)
        r->persisted = from - 1;
}

static int append_local(struct raft *r, uint64_t term, enum raft_entry_type type,
                        const struct raft_buffer *data)
{
    int rc = raft__log_append(&r->log, term, type, data);
    if (rc != 0)
        return rc;
    uint64_t index = raft__log_last(&r->log);
    mark_appended(r, index);
    if (type == RAFT_ENTRY_CONFIG) {
        /* A configuration takes effect as soon as it is in the log (thesis
         * §4.1), committed or not. */
        struct raft_config c;
        if (raft_config_decode(data->base, data->len, &c) == 0) {
            r->config = c;
            r->config_index = index;
            r->st_config = true;
        }
    }
    return 0;
}

void raft__become_leader(struct raft *r)
{
    assert(r->role == RAFT_CANDIDATE && r->vote == r->o.id);
    r->role = RAFT_LEADER;
    raft__set_leader(r, r->o.id);
    raft__peers_sync(r);
    uint64_t last = raft__log_last(&r->log);
    for (unsigned i = 0; i < r->n_peers; i++) {
        struct raft__peer *p = &r->peers[i];
        p->next = last + 1;
        p->match = 0;
        p->probing = true;
        /* Thesis §6.2: the first CheckQuorum window counts only the peers
         * heard from in it, like every later one; counting every peer as
         * active would let a leader that hears nobody last two timeouts. */
        p->active = false;
        p->snapshot_sent_at = 0;
    }
    r->transfer_to = 0;
    r->promote_id = 0;
    r->heartbeat_deadline = r->now + r->o.heartbeat_ms;
    r->quorum_deadline = r->now + r->o.election_min_ms;
    /* §5.4.2 / §8: a new leader commits an entry of its own term at once;
     * this barrier also lets earlier entries commit. */
    if (append_local(r, r->term, RAFT_ENTRY_BARRIER, NULL) != 0)
        r->st_err = RAFT_ENOMEM;
    r->term_start = raft__log_last(&r->log);
    raft__broadcast(r, true);
    raft__maybe_commit(r);
}

static void send_snapshot(struct raft *r, struct raft__peer *p)
{
    assert(r->role == RAFT_LEADER);
    if (r->snap.index == 0)
        return;
    /* Resend at most once per minimum election timeout. */
    if (p->snapshot_sent_at != 0 && r->now - p->snapshot_sent_at < r->o.election_min_ms)
        return;
    struct raft_message *m = raft__send(r, RAFT_MSG_SNAPSHOT, p->id);
    if (m == NULL)
        return;
    p->snapshot_sent_at = r->now;
    p->next = r->snap.index + 1;
    p->probing = true;
    r->counters.snapshots_sent++;
}

void raft__send_append(struct raft *r, struct raft__peer *p)
{
    assert(r->role == RAFT_LEADER && p->next > 0);
    if (p->next <= r->log.offset) {
        send_snapshot(r, p); /* the entries it needs were compacted */
        return;
    }
    uint64_t last = raft__log_last(&r->log);
    uint64_t prev = p->next - 1;
    uint64_t n = last - prev;
    if (n > r->o.max_append_entries)
        n = r->o.max_append_entries;
    struct raft_message *m = raft__send(r, RAFT_MSG_APPEND, p->id);
    if (m == NULL)
        return;
    m->u.append.prev_index = prev;
    m->u.append.prev_term = raft__log_term(&r->log, prev);
    m->u.append.commit = r->commit;
    m->u.append.n_entries = (unsigned)n; /* pointer resolved by finish() */
    /* Pipelining: once the follower matched, send the next entries without
     * waiting; a probing follower gets one message per round. */
    if (!p->probing)
        p->next = prev + n + 1;
}

/* raft__broadcast sends to every peer: heartbeat = everything not yet
 * acknowledged (this is also the retransmission), otherwise only peers that
 * are replicating and have unsent entries. */
void raft__broadcast(struct raft *r, bool heartbeat)
{
    assert(r->role == RAFT_LEADER);
    uint64_t last = raft__log_last(&r->log);
    for (unsigned i = 0; i < r->n_peers; i++) {
        struct raft__peer *p = &r->peers[i];
        if (heartbeat) {
            if (!p->probing)
                p->next = p->match + 1;
            raft__send_append(r, p);
        } else if (!p->probing && p->next <= last) {
            raft__send_append(r, p);
        }
    }
}

static void reply_append(struct raft *r, uint64_t to, bool rejected, uint64_t last,
                         uint64_t reject_index)
{
    struct raft_message *o = raft__send(r, RAFT_MSG_APPEND_RESULT, to);
    if (o == NULL)
        return;
    o->u.append_result.rejected = rejected;
    o->u.append_result.last_index = last;
    o->u.append_result.reject_index = reject_index;
    if (!rejected)
        return;
    /* Fast back-off hint (§5.3, last paragraphs): the term we hold at the
     * rejected index and where that term starts in our log. */
    uint64_t my_last = raft__log_last(&r->log);
    if (reject_index > my_last) {
        o->u.append_result.conflict_term = 0;
        o->u.append_result.conflict_index = my_last + 1;
        return;
    }
    uint64_t t = raft__log_term(&r->log, reject_index);
    uint64_t i = reject_index;
    while (i > r->log.offset + 1 && raft__log_term(&r->log, i - 1) == t)
        i--;
    o->u.append_result.conflict_term = t;
    o->u.append_result.conflict_index = i;
}

static void heard_from_leader(struct raft *r, uint64_t leader)
{
    assert(r->role != RAFT_LEADER && r->role != RAFT_STOPPED);
    if (r->role != RAFT_FOLLOWER)
        raft__become_follower(r, r->term, leader);
    raft__set_leader(r, leader);
    r->leader_contact = r->now;
    /* The leader is alive: a down report about it is withdrawn. */
    r->down_leader = 0;
    r->fast_deadline = 0;
    r->standby_skips = 0;
    raft__reset_election_timer(r);
}

void raft__recv_append(struct raft *r, const struct raft_message *m)
{
    assert(r->started && r->role != RAFT_STOPPED);
    const struct raft_msg_append *a = &m->u.append;
    if (r->role == RAFT_LEADER) {
        /* Two leaders in one term cannot happen with honest peers. */
        r->counters.dropped_stale++;
        return;
    }
    heard_from_leader(r, m->from);

    uint64_t prev = a->prev_index, prev_term = a->prev_term;
    const struct raft_entry *ents = a->entries;
    uint64_t n = a->n_entries;
    uint64_t match_end = prev + n;
    if (prev < r->log.offset) {
        /* Entries up to our offset are committed, hence identical (Log
         * Matching): skip them. */
        uint64_t skip = r->log.offset - prev;
        if (skip >= n) {
            reply_append(r, m->from, false, match_end, 0);
            return;
        }
        ents += skip;
        n -= skip;
        prev = r->log.offset;
        prev_term = r->log.offset_term;
    }
    /* Figure 2, AppendEntries 2: reject unless we hold prev with its term. */
    if (prev > raft__log_last(&r->log) || raft__log_term(&r->log, prev) != prev_term) {
        reply_append(r, m->from, true, raft__log_last(&r->log), prev);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        const struct raft_entry *e = &ents[i];
        uint64_t idx = prev + 1 + i;
        if (idx <= raft__log_last(&r->log)) {
            if (raft__log_term(&r->log, idx) == e->term)
                continue; /* already have it (3: keep matching entries) */
            if (idx <= r->commit) {
                /* A leader never asks to overwrite committed entries. */
                r->counters.dropped_stale++;
                return;
            }
            /* 3: a conflicting entry and all that follow are deleted. */
            raft__log_truncate(&r->log, idx);
            mark_truncated(r, idx);
            if (r->config_index >= idx)
                raft__config_recompute(r);
        }
        /* 4: append new entries. */
        if (append_local(r, e->term, e->type, &e->data) != 0) {
            r->st_err = RAFT_ENOMEM;
            return;
        }
    }
    /* 5: commit up to min(leaderCommit, index of last new entry). */
    uint64_t c = a->commit < match_end ? a->commit : match_end;
    if (c > raft__log_last(&r->log))
        c = raft__log_last(&r->log);
    if (c > r->commit)
        r->commit = c;
    reply_append(r, m->from, false, match_end, 0);
}

void raft__recv_snapshot(struct raft *r, const struct raft_message *m)
{
    assert(r->started && r->role != RAFT_STOPPED);
    const struct raft_snapshot *s = &m->u.snapshot.snapshot;
    if (r->role == RAFT_LEADER) {
        r->counters.dropped_stale++;
        return;
    }
    heard_from_leader(r, m->from);
    if (s->index <= r->commit) {
        reply_append(r, m->from, false, r->commit, 0);
        return;
    }
    if (raft__log_term(&r->log, s->index) == s->term) {
        /* We hold the entry: the snapshot's prefix is ours, just commit. */
        r->commit = s->index;
        reply_append(r, m->from, false, s->index, 0);
        return;
    }
    void *data = NULL;
    if (s->data.len > 0) {
        data = malloc(s->data.len);
        if (data == NULL) {
            r->st_err = RAFT_ENOMEM;
            return;
        }
        memcpy(data, s->data.base, s->data.len);
    }
    free(r->snap.data.base);
    r->snap = *s;
    r->snap.data.base = data;
    raft__log_reset(&r->log, s->index, s->term);
    mark_truncated(r, 1);
    r->persisted = s->index;
    r->commit = r->applied = s->index;
    r->config = s->config;
    r->config_index = s->config_index;
    r->config_c = s->config;
    raft__config_committed(r);
    r->st_config = true;
    r->st_snapshot = true;
    r->st_restore = true;
    r->counters.snapshots_installed++;
    reply_append(r, m->from, false, s->index, 0);
}

void raft__recv_append_result(struct raft *r, const struct raft_message *m)
{
    assert(r->started && r->role != RAFT_STOPPED);
    const struct raft_msg_append_result *a = &m->u.append_result;
    if (r->role != RAFT_LEADER)
        return;
    struct raft__peer *p = raft__peer(r, m->from);
    if (p == NULL)
        return;
    p->last_contact = r->now;
    p->active = true;
    uint64_t last = raft__log_last(&r->log);
    /* Figure 2: a rejection names the prevLogIndex of an Append we sent in
     * this term, a success the last index it matched, so either is at most
     * our last index (a rejection's last_index is the follower's own, and
     * may be larger).  A larger one answers nothing we sent; taken as it
     * is, it would move nextIndex past the log, and the next Append would
     * name entries we do not have. */
    if (a->rejected ? a->reject_index > last : a->last_index > last) {
        r->counters.dropped_stale++;
        return;
    }
    if (a->rejected) {
        if (a->reject_index < p->match || a->reject_index == 0)
            return; /* stale */
        uint64_t next = a->conflict_index;
        if (a->conflict_term != 0) {
            uint64_t i = a->reject_index < last ? a->reject_index : last;
            while (i > r->log.offset && raft__log_term(&r->log, i) > a->conflict_term)
                i--;
            if (i > r->log.offset && raft__log_term(&r->log, i) == a->conflict_term)
                next = i + 1;
        }
        if (next > a->reject_index)
            next = a->reject_index;
        if (next <= p->match)
            next = p->match + 1;
        if (next == 0)
            next = 1;
        p->next = next;
        p->probing = true;
        raft__send_append(r, p);
        return;
    }
    if (a->last_index > p->match || p->probing) {
        if (a->last_index > p->match)
            p->match = a->last_index;
        if (p->next <= p->match)
            p->next = p->match + 1;
        p->probing = false;
        raft__maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
        raft__transfer_progress(r, p);
        raft__promote_progress(r, p);
    }
    if (p->next <= last)
        raft__send_append(r, p);
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void raft__maybe_commit(struct raft *r)
{
    assert(r->role == RAFT_LEADER);
    uint64_t m[RAFT_MAX_MEMBERS];
    unsigned n = 0;
    /* Our own log counts only once durable (persist before "send"). */
    if (raft__is_voter(r, r->o.id))
        m[n++] = r->persisted;
    for (unsigned i = 0; i < r->n_peers; i++)
        if (raft__is_voter(r, r->peers[i].id))
            m[n++] = r->peers[i].match;
    if (n == 0)
        return;
    qsort(m, n, sizeof m[0], cmp_desc);
    uint64_t q = m[n / 2];
    /* §5.4.2: only entries of the current term commit by counting. */
    if (q > r->commit && raft__log_term(&r->log, q) == r->term) {
        r->commit = q;
        raft__broadcast(r, false);
        /* Tell followers the new commit index without waiting a beat. */
        for (unsigned i = 0; i < r->n_peers; i++) {
            struct raft__peer *p = &r->peers[i];
            if (!p->probing && p->next > raft__log_last(&r->log))
                raft__send_append(r, p);
        }
        /* A leader that removed itself steps down once that is committed
         * (thesis §4.2.2). */
        if (r->config_index <= r->commit && !raft__is_voter(r, r->o.id))
            raft__become_follower(r, r->term, 0);
    }
}

int raft__submit(struct raft *r, enum raft_entry_type type, const struct raft_buffer *d,
                 uint64_t *index)
{
    assert(r->started && r->role != RAFT_STOPPED);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (type != RAFT_ENTRY_NORMAL && type != RAFT_ENTRY_BARRIER)
        return RAFT_EINVAL;
    if (r->transfer_to != 0)
        return RAFT_EBUSY;
    int rc = append_local(r, r->term, type, d);
    if (rc != 0)
        return rc;
    *index = raft__log_last(&r->log);
    raft__broadcast(r, false);
    return 0;
}

static int append_config(struct raft *r, const struct raft_config *c, uint64_t *index)
{
    assert(r->role == RAFT_LEADER && r->transfer_to == 0);
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    int rc = raft_config_encode(c, buf, sizeof buf, &len);
    if (rc != 0)
        return rc;
    struct raft_buffer b = {buf, len};
    rc = append_local(r, r->term, RAFT_ENTRY_CONFIG, &b);
    if (rc != 0)
        return rc;
    raft__peers_sync(r);
    *index = raft__log_last(&r->log);
    raft__broadcast(r, false);
    /* New peers start probing; send them their first append now. */
    for (unsigned i = 0; i < r->n_peers; i++)
        if (r->peers[i].probing && r->peers[i].match == 0)
            raft__send_append(r, &r->peers[i]);
    return 0;
}

int raft__change(struct raft *r, const struct raft_event *ev, uint64_t *index)
{
    assert(r->started && r->role != RAFT_STOPPED);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    /* Thesis §4.2.1: one change at a time, and (the fix from the raft-dev
     * list, 2015) not before the leader committed an entry of its term. */
    if (r->transfer_to != 0 || r->promote_id != 0 || r->config_index > r->commit ||
        r->commit < r->term_start)
        return RAFT_EBUSY;
    struct raft_config c = r->config;
    uint64_t id = ev->u.change.id;
    int rc;
    switch (ev->u.change.kind) {
    case RAFT_CHANGE_ADD:
        /* New members join as non-voters and catch up before they vote. */
        return (rc = raft_config_add(&c, id, ev->u.change.address, RAFT_NONVOTER))
                   ? rc
                   : append_config(r, &c, index);
    case RAFT_CHANGE_REPLACE:
        /* The new member must be a new identity: under the old id the
         * leader would keep the old progress (match), the back-off never
         * goes below it, and the reset node would never catch up. */
        if (id == ev->u.change.old_id)
            return RAFT_ESAMEID;
        if ((rc = raft_config_remove(&c, ev->u.change.old_id)) != 0)
            return rc;
        if ((rc = raft_config_add(&c, id, ev->u.change.address, RAFT_NONVOTER)) != 0)
            return rc;
        if (raft_config_voters(&c) == 0)
            return RAFT_EINVAL;
        return append_config(r, &c, index);
    case RAFT_CHANGE_REMOVE:
        if ((rc = raft_config_remove(&c, id)) != 0)
            return rc;
        if (raft_config_voters(&c) == 0)
            return RAFT_EINVAL;
        if (r->transfer_to == id)
            r->transfer_to = 0;
        return append_config(r, &c, index);
    case RAFT_CHANGE_PROMOTE: {
        const struct raft_member *mb = raft_config_find(&c, id);
        if (mb == NULL)
            return RAFT_ENOTFOUND;
        if (mb->role == RAFT_VOTER)
            return RAFT_EINVAL;
        struct raft__peer *p = raft__peer(r, id);
        if (p == NULL)
            return RAFT_ENOTFOUND;
        r->promote_id = id;
        r->promote_deadline = r->now + 4 * (uint64_t)r->o.election_max_ms;
        if (p->match >= raft__log_last(&r->log)) {
            raft__promote_progress(r, p);
            *index = r->config_index;
        }
        return 0;
    }
    }
    return RAFT_EINVAL;
}

void raft__promote_progress(struct raft *r, struct raft__peer *p)
{
    assert(r->role == RAFT_LEADER);
    /* Nothing is appended while a transfer is pending (thesis §3.10): the
     * promotion waits for the transfer to end or give up. */
    if (r->promote_id != p->id || p->match < raft__log_last(&r->log) ||
        r->transfer_to != 0)
        return;
    struct raft_config c = r->config;
    for (unsigned i = 0; i < c.n; i++)
        if (c.members[i].id == p->id)
            c.members[i].role = RAFT_VOTER;
    r->promote_id = 0;
    uint64_t index;
    if (append_config(r, &c, &index) != 0)
        r->st_err = RAFT_ENOMEM;
}

int raft__take_snapshot(struct raft *r, uint64_t index, const struct raft_buffer *d)
{
    assert(r->started && r->role != RAFT_STOPPED);
    if (index > r->applied || index <= r->snap.index || index <= r->log.offset)
        return RAFT_EINVAL;
    /* The configuration at index: the last config entry at or before it, or
     * the previous snapshot's. */
    struct raft_config c = r->snap.config;
    uint64_t ci = r->snap.config_index;
    for (uint64_t i = index; i > r->log.offset; i--) {
        const struct raft_entry *e = raft__log_get(&r->log, i);
        if (e->type == RAFT_ENTRY_CONFIG &&
            raft_config_decode(e->data.base, e->data.len, &c) == 0) {
            ci = i;
            break;
        }
    }
    void *data = NULL;
    if (d->len > 0) {
        data = malloc(d->len);
        if (data == NULL)
            return RAFT_ENOMEM;
        memcpy(data, d->base, d->len);
    }
    free(r->snap.data.base);
    r->snap.index = index;
    r->snap.term = raft__log_term(&r->log, index);
    r->snap.config = c;
    r->snap.config_index = ci;
    r->snap.data.base = data;
    r->snap.data.len = d->len;
    r->st_snapshot = true;
    /* Keep some entries behind the snapshot so slightly lagging followers
     * get entries instead of the whole snapshot. */
    if (index > r->o.snapshot_trailing) {
        uint64_t to = index - r->o.snapshot_trailing;
        if (to > r->log.offset) {
            raft__log_compact(&r->log, to);
            r->st_compact = to;
        }
    }
    return 0;
}

void raft__leader_tick(struct raft *r)
{
    assert(r->role == RAFT_LEADER);
    if (r->o.check_quorum && r->now >= r->quorum_deadline) {
        /* Thesis §6.2: step down unless a majority was heard from during the
         * last election timeout. */
        unsigned active = raft__is_voter(r, r->o.id) ? 1 : 0;
        for (unsigned i = 0; i < r->n_peers; i++) {
            struct raft__peer *p = &r->peers[i];
            if (p->active && raft__is_voter(r, p->id))
                active++;
            p->active = false;
        }
        r->quorum_deadline = r->now + r->o.election_min_ms;
        if (active < raft__quorum(r)) {
            r->counters.check_quorum_stepdowns++;
            raft__become_follower(r, r->term, 0);
            return;
        }
    }
    if (r->transfer_to != 0 && r->now >= r->transfer_deadline) {
        raft__transfer_expired(r);
        /* A promotion that waited for the transfer goes on now. */
        struct raft__peer *p = r->transfer_to == 0 ? raft__peer(r, r->promote_id) : NULL;
        if (p != NULL)
            raft__promote_progress(r, p);
    }
    if (r->promote_id != 0 && r->now >= r->promote_deadline)
        r->promote_id = 0; /* the non-voter did not catch up */
    if (r->now >= r->heartbeat_deadline) {
        r->heartbeat_deadline = r->now + r->o.heartbeat_ms;
        raft__departing_tick(r);
        raft__broadcast(r, true);
    }
}

/* raft__departing_tick drops the departing peers whose removal committed
 * an election timeout ago: the heartbeats of that time told them the
 * commit (best effort: a removed node that missed them still never
 * campaigns, as its log holds the entry that removed it). */
void raft__departing_tick(struct raft *r)
{
    assert(r->role == RAFT_LEADER);
    unsigned k = 0;
    for (unsigned i = 0; i < r->n_peers; i++) {
        struct raft__peer *p = &r->peers[i];
        if (p->departing && r->commit >= p->depart_index) {
            if (p->depart_after == 0)
                p->depart_after = r->now + r->o.election_min_ms;
            else if (r->now >= p->depart_after)
                continue;
        }
        r->peers[k++] = *p;
    }
    r->n_peers = k;
}
