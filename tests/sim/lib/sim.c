/* sim.c: the simulated cluster (sim.h): nodes, their in-memory disks, the
 * network and the event loop. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_codec.h"
#include "pfs.h"
#include "sim_int.h"

enum { EV_MSG, EV_PERSISTED, EV_SNAPSHOT, EV_PEER_DOWN, EV_DISK };

/* An update waiting for the node's disk (sim.h, async_persist): copies of
 * its persist operations and its encoded messages. */
struct sim_job {
    struct sim_job *next;
    struct raft_update u; /* persist part only; pointers into this job */
    struct raft_snapshot snap;
    struct raft_entry *ents;
    struct sim_job_msg {
        uint64_t to;
        unsigned char *bytes;
        size_t len;
    } * msgs;
    unsigned n_msgs;
};

struct sim_event {
    uint64_t at, seq;
    int kind;
    unsigned from, to; /* slots */
    unsigned inc;      /* EV_PERSISTED, EV_SNAPSHOT: incarnation of to */
    bool forged;       /* EV_MSG: from "another cluster" (must be ignored) */
    uint64_t index, term;
    unsigned char *bytes; /* EV_MSG: the encoded message, owned */
    size_t len;
};

static const char *fault_names[SIM_F_COUNT] = {
    "drop",
    "dup",
    "cut-link loss",
    "crash",
    "crash-before-persist",
    "crash-mid-persist",
    "crash-persist-send",
    "crash-after-send",
    "restart",
    "partition-symmetric",
    "partition-one-way",
    "partition-bridge",
    "isolate",
    "heal",
    "member-add",
    "member-remove",
    "member-replace",
    "transfer",
    "snapshot",
    "foreign-cluster",
    "crash-quick-restart",
    "spurious-peer-down",
    "power-loss",
    "long-delay",
    "standby-on",
    "standby-off",
};

const char *sim_fault_name(enum sim_fault f)
{
    return f < SIM_F_COUNT ? fault_names[f] : "?";
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort(); /* test harness: out of memory is fatal */
    return p;
}

static void *xmemdup(const void *p, size_t n)
{
    void *q;

    if (n == 0)
        return NULL;
    q = xmalloc(n);
    memcpy(q, p, n);
    return q;
}

uint64_t sim_rand(struct sim *s, uint64_t n)
{
    /* splitmix64 */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return n ? z % n : 0;
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    if (!s->verbose)
        return;
    printf("%8" PRIu64 " ", s->now);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ---- event heap (by time, then sequence) ----------------------------------- */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct sim_event *e)
{
    size_t i;

    e->seq = s->seq++;
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
        s->heap = realloc(s->heap, s->cap_heap * sizeof *s->heap);
        if (s->heap == NULL)
            abort();
    }
    i = s->n_heap++;
    while (i > 0 && ev_before(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static struct sim_event *heap_pop(struct sim *s)
{
    struct sim_event *top = s->heap[0], *last = s->heap[--s->n_heap];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct sim_event *best = last;
        if (l < s->n_heap && ev_before(s->heap[l], best)) {
            m = l;
            best = s->heap[l];
        }
        if (r < s->n_heap && ev_before(s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n_heap > 0)
        s->heap[i] = last;
    return top;
}

static void ev_free(struct sim_event *e)
{
    free(e->bytes);
    free(e);
}

/* ---- nodes ------------------------------------------------------------------ */

/* step_standby steps RAFT_EV_STANDBY with the driver's setting into the
 * running node in slot (unless the sabotage loses it). */
static void step_standby(struct sim *s, unsigned slot)
{
    struct sim_node *nd = &s->nodes[slot];
    struct raft_event ev;

    if (nd->r == NULL || s->sabotage == SIM_SAB_STANDBY_LOST)
        return;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_STANDBY;
    ev.u.standby.on = nd->standby;
    nd->standby_since = s->now;
    sim__node_step(s, slot, &ev);
}

/* start_standby: a driver that drains a node tells its core again after
 * each start (io/node.c), so the standby outlives a crash. */
static void start_standby(struct sim *s, unsigned slot)
{
    struct sim_node *nd = &s->nodes[slot];

    nd->standby_since = s->now;
    nd->heard_leader_at = 0;
    if (nd->standby)
        step_standby(s, slot);
}

void sim_standby(struct sim *s, unsigned slot, bool on)
{
    struct sim_node *nd = &s->nodes[slot];

    if (!nd->used || nd->removed || nd->standby == on)
        return;
    nd->standby = on;
    s->faults[on ? SIM_F_STANDBY : SIM_F_STANDBY_OFF]++;
    sim_trace(s, "n%" PRIx64 " %s standby%s", nd->id, on ? "on" : "off",
              nd->r == NULL ? " (at its restart)" : "");
    nd->standby_since = s->now;
    step_standby(s, slot);
}

void sim__node_start(struct sim *s, unsigned slot)
{
    struct sim_node *nd = &s->nodes[slot];
    struct raft_options o = s->opts;
    struct raft_event ev;
    const struct sim_disk *d = &nd->disk;
    size_t skip = 0;

    if (s->sabotage == SIM_SAB_FORGET_VOTE)
        nd->disk.vote = 0;
    if (s->sabotage == SIM_SAB_LOSE_ENTRIES && nd->disk.n > 1)
        sim__disk_truncate(&nd->disk, nd->disk.first + nd->disk.n - 1);
    o.id = nd->id;
    o.cluster_id = s->cluster_id;
    o.seed = s->seed * 1000003u + nd->id * 7919u + nd->incarnation;
    if (raft_new(&o, &nd->r) != 0)
        abort();
    nd->applied = 0;
    nd->app_chain = 0;
    nd->commit = 0;
    nd->leader_reported_down = false;
    nd->fast_path_seen = 0;
    raft_config_init(&nd->last_config);
    nd->snap_at = d->has_snap ? d->snap.index : 0;
    nd->role = RAFT_FOLLOWER;
    nd->leader = 0;
    nd->deadline = 0;
    memset(&ev, 0, sizeof ev);
    if (s->store_dir != NULL) {
        struct store_loaded l;
        if (sim__store_reopen(s, nd, &l) != 0)
            return;
        store_loaded_start(&l, &ev);
        sim__node_step(s, slot, &ev);
        store_loaded_free(&l);
        start_standby(s, slot);
        return;
    }
    ev.type = RAFT_EV_START;
    ev.u.start.term = d->term;
    ev.u.start.vote = d->vote;
    ev.u.start.snapshot = d->has_snap ? &d->snap : NULL;
    while (d->has_snap && skip < d->n && d->first + skip <= d->snap.index)
        skip++;
    ev.u.start.entries = d->ents + skip;
    ev.u.start.n_entries = (unsigned)(d->n - skip);
    sim__node_step(s, slot, &ev);
    start_standby(s, slot);
}

static void job_free(struct sim_job *j)
{
    free(j->snap.data.base);
    for (unsigned i = 0; i < j->u.n_entries; i++)
        free(j->ents[i].data.base);
    free(j->ents);
    for (unsigned i = 0; i < j->n_msgs; i++)
        free(j->msgs[i].bytes);
    free(j->msgs);
    free(j);
}

/* jobs_free drops what the node's disk had not done yet: a crash loses it. */
static void jobs_free(struct sim_node *nd)
{
    while (nd->jobs != NULL) {
        struct sim_job *j = nd->jobs;
        nd->jobs = j->next;
        job_free(j);
    }
    nd->jobs_tail = NULL;
    nd->disk_free_at = 0;
}

void sim_crash(struct sim *s, unsigned slot, uint64_t restart_at)
{
    struct sim_node *nd = &s->nodes[slot];

    if (nd->r == NULL)
        return;
    raft_free(nd->r);
    nd->r = NULL;
    jobs_free(nd);
    store_close(nd->st);
    if (nd->st != NULL && s->store_pfs && sim_rand(s, 2) == 0) {
        char dir[64];
        snprintf(dir, sizeof dir, "/pfs/n%" PRIx64, nd->id);
        pfs_power_loss(dir);
        s->faults[SIM_F_POWER_LOSS]++;
    }
    nd->st = NULL;
    nd->incarnation++;
    nd->role = RAFT_FOLLOWER;
    nd->leader = 0;
    nd->deadline = 0;
    nd->restart_at = restart_at;
    sim_trace(s, "n%" PRIx64 " crashed%s", nd->id, restart_at ? "" : " for good");
}

void sim_restart(struct sim *s, unsigned slot)
{
    struct sim_node *nd = &s->nodes[slot];

    if (nd->r != NULL || !nd->used || nd->removed)
        return;
    nd->restart_at = 0;
    s->faults[SIM_F_RESTART]++;
    sim_trace(s, "n%" PRIx64 " restarts (term %" PRIu64 ", log to %" PRIu64 ")", nd->id,
              nd->disk.term, sim__disk_last(&nd->disk));
    sim__node_start(s, slot);
}

int sim__slot_of_id(const struct sim *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->nodes[i].used && s->nodes[i].id == id)
            return (int)i;
    return -1;
}

/* send_forged queues a copy of the message in model (an encoding) as if it
 * came from another cluster 1000 terms ahead: the codec puts the cluster id
 * at bytes 2-9 and the term at 26-33 (raft_codec.h). */
static void send_forged(struct sim *s, unsigned from, unsigned to,
                        const struct sim_event *model)
{
    struct sim_event *e = calloc(1, sizeof *e);
    uint64_t term = 0;

    if (e == NULL)
        abort();
    *e = *model;
    e->bytes = xmemdup(model->bytes, model->len);
    e->forged = true;
    e->from = from;
    e->to = to;
    for (int i = 0; i < 8; i++) {
        e->bytes[2 + i] ^= 0x5a;
        term |= (uint64_t)e->bytes[26 + i] << (8 * i);
    }
    term += 1000;
    for (int i = 0; i < 8; i++)
        e->bytes[26 + i] = (unsigned char)(term >> (8 * i));
    s->faults[SIM_F_FOREIGN]++;
    heap_push(s, e);
}

/* check_backed: the send rule seen from the disk.  What a message says
 * about its sender's durable state must already be on its (model) disk: a
 * granted vote and a vote request are recorded there, and an append
 * acknowledgement names only entries it holds.  A core that forgets to ask
 * for a persist is caught here on the spot, not only when a crash happens
 * to expose it. */
static void check_backed(struct sim *s, const struct sim_node *nd,
                         const struct raft_message *m)
{
    const struct sim_disk *d = &nd->disk;
    bool pre = (m->type == RAFT_MSG_VOTE && m->u.vote.pre_vote) ||
               (m->type == RAFT_MSG_VOTE_RESULT && m->u.vote_result.pre_vote);

    if (!pre && m->term > d->term)
        sim_check_fail(&s->check,
                       "n%" PRIx64 " sent a %s in term %" PRIu64 " with term %" PRIu64
                       " on its disk",
                       nd->id, raft_msg_type_name(m->type), m->term, d->term);
    else if (m->type == RAFT_MSG_VOTE_RESULT && !pre && m->u.vote_result.granted &&
             (d->term != m->term || d->vote != m->to))
        sim_check_fail(&s->check,
                       "n%" PRIx64 " granted n%" PRIx64 " its vote in term %" PRIu64
                       " but its disk holds term %" PRIu64 " vote n%" PRIx64,
                       nd->id, m->to, m->term, d->term, d->vote);
    else if (m->type == RAFT_MSG_VOTE && !pre &&
             (d->term != m->term || d->vote != nd->id))
        sim_check_fail(&s->check,
                       "n%" PRIx64 " asked for votes in term %" PRIu64
                       " without its own vote on disk",
                       nd->id, m->term);
    else if (m->type == RAFT_MSG_APPEND_RESULT && !m->u.append_result.rejected &&
             m->u.append_result.last_index > sim__disk_last(d))
        sim_check_fail(&s->check,
                       "n%" PRIx64 " acknowledged index %" PRIu64
                       " with its disk ending at %" PRIu64,
                       nd->id, m->u.append_result.last_index, sim__disk_last(d));
}

/* encode_msg returns m encoded (owned), or NULL after recording why. */
static unsigned char *encode_msg(struct sim *s, unsigned from,
                                 const struct raft_message *m, size_t *len)
{
    size_t got = 0;
    unsigned char *buf;

    *len = codec_encoded_size(m);
    if (*len == 0) {
        sim_check_fail(&s->check, "n%" PRIx64 " sent a message the codec cannot encode",
                       s->nodes[from].id);
        return NULL;
    }
    buf = xmalloc(*len);
    if (codec_encode(m, buf, *len, &got) != 0 || got != *len) {
        sim_check_fail(&s->check, "codec_encode failed on a core message");
        free(buf);
        return NULL;
    }
    return buf;
}

/* send_bytes puts an encoded message (taken) on the network. */
static void send_bytes(struct sim *s, unsigned from, uint64_t to_id, unsigned char *buf,
                       size_t len)
{
    int to = sim__slot_of_id(s, to_id);
    struct sim_event *e = NULL;
    int copies = 1;

    if (to < 0) {
        free(buf);
        return;
    }
    if (s->cut[from][to]) {
        s->faults[SIM_F_CUT]++;
        free(buf);
        return;
    }
    if (s->drop_pct && sim_rand(s, 100) < s->drop_pct) {
        s->faults[SIM_F_DROP]++;
        free(buf);
        return;
    }
    if (s->dup_pct && sim_rand(s, 100) < s->dup_pct) {
        s->faults[SIM_F_DUP]++;
        copies = 2;
    }
    for (int c = 0; c < copies; c++) {
        e = calloc(1, sizeof *e);
        if (e == NULL)
            abort();
        e->kind = EV_MSG;
        e->from = from;
        e->to = (unsigned)to;
        e->at = s->now + s->latency_ms + (s->jitter_ms ? sim_rand(s, s->jitter_ms) : 0);
        if (s->long_delay_permille && sim_rand(s, 1000) < s->long_delay_permille) {
            e->at += sim_rand(s, s->long_delay_ms + 1);
            s->faults[SIM_F_LONG_DELAY]++;
        }
        e->bytes = c == 0 ? buf : xmemdup(buf, len);
        e->len = len;
        heap_push(s, e);
    }
    if (s->foreign_permille && sim_rand(s, 1000) < s->foreign_permille)
        send_forged(s, from, (unsigned)to, e);
}

static void send_one(struct sim *s, unsigned from, const struct raft_message *m)
{
    size_t len;
    unsigned char *buf;

    check_backed(s, &s->nodes[from], m);
    buf = encode_msg(s, from, m, &len);
    if (buf != NULL)
        send_bytes(s, from, m->to, buf, len);
}

static void queue_local(struct sim *s, unsigned slot, int kind, uint64_t at,
                        uint64_t index, uint64_t term);

/* job_new copies what u asks to persist and its messages (encoded). */
static struct sim_job *job_new(struct sim *s, unsigned slot, const struct raft_update *u)
{
    struct sim_job *j = calloc(1, sizeof *j);

    if (j == NULL)
        abort();
    j->u.persist_term_vote = u->persist_term_vote;
    j->u.term = u->term;
    j->u.vote = u->vote;
    j->u.truncate_from = u->truncate_from;
    j->u.compact_to = u->compact_to;
    if (u->snapshot != NULL) {
        j->snap = *u->snapshot;
        j->snap.data.base = xmemdup(u->snapshot->data.base, u->snapshot->data.len);
        j->u.snapshot = &j->snap;
    }
    if (u->n_entries > 0) {
        j->ents = xmalloc(u->n_entries * sizeof *j->ents);
        for (unsigned i = 0; i < u->n_entries; i++) {
            j->ents[i] = u->entries[i];
            j->ents[i].data.base =
                xmemdup(u->entries[i].data.base, u->entries[i].data.len);
        }
        j->u.entries = j->ents;
        j->u.n_entries = u->n_entries;
    }
    if (u->n_messages > 0) {
        j->msgs = xmalloc(u->n_messages * sizeof *j->msgs);
        for (unsigned i = 0; i < u->n_messages; i++) {
            j->msgs[j->n_msgs].to = u->messages[i].to;
            j->msgs[j->n_msgs].bytes =
                encode_msg(s, slot, &u->messages[i], &j->msgs[j->n_msgs].len);
            if (j->msgs[j->n_msgs].bytes != NULL)
                j->n_msgs++;
        }
    }
    return j;
}

/* disk_done carries out the oldest job of the node in slot: its persist
 * operations, then its messages, then (later) the durability notice. */
static void disk_done(struct sim *s, unsigned slot)
{
    struct sim_node *nd = &s->nodes[slot];
    struct sim_job *j = nd->jobs;
    struct codec_msg cm;

    if (j == NULL)
        return;
    nd->jobs = j->next;
    if (nd->jobs == NULL)
        nd->jobs_tail = NULL;
    sim__persist(s, nd, &j->u, 4);
    sim__store_mirror(s, nd, &j->u, 4);
    for (unsigned i = 0; i < j->n_msgs; i++) {
        if (codec_decode(j->msgs[i].bytes, j->msgs[i].len, &cm) == 0) {
            check_backed(s, nd, &cm.msg);
            codec_msg_free(&cm);
        }
        send_bytes(s, slot, j->msgs[i].to, j->msgs[i].bytes, j->msgs[i].len);
        j->msgs[i].bytes = NULL;
    }
    if (j->u.n_entries > 0)
        queue_local(s, slot, EV_PERSISTED, s->now + sim_rand(s, s->disk_ms + 1),
                    j->ents[j->u.n_entries - 1].index, j->ents[j->u.n_entries - 1].term);
    job_free(j);
}

static void queue_local(struct sim *s, unsigned slot, int kind, uint64_t at,
                        uint64_t index, uint64_t term)
{
    struct sim_event *e = calloc(1, sizeof *e);

    if (e == NULL)
        abort();
    e->kind = kind;
    e->to = slot;
    e->inc = s->nodes[slot].incarnation;
    e->at = at;
    e->index = index;
    e->term = term;
    heap_push(s, e);
}

static void apply(struct sim *s, struct sim_node *nd, const struct raft_update *u)
{
    uint64_t idx, chain;

    if (u->restore != NULL) {
        if (!sim__snap_data_get(&u->restore->data, &idx, &chain) ||
            idx != u->restore->index) {
            sim_check_fail(&s->check,
                           "n%" PRIx64 " restored a snapshot with foreign data", nd->id);
            return;
        }
        if (idx < nd->applied)
            sim_check_fail(&s->check,
                           "n%" PRIx64 " restored snapshot %" PRIu64
                           " behind applied %" PRIu64,
                           nd->id, idx, nd->applied);
        nd->applied = idx;
        nd->app_chain = chain;
        sim_check_applied(&s->check, nd->id, idx, chain);
    }
    for (unsigned k = 0; k < u->n_committed; k++) {
        const struct raft_entry *e = &u->committed[k];
        if (e->index != nd->applied + 1) {
            sim_check_fail(&s->check,
                           "state machine safety: n%" PRIx64 " applied index %" PRIu64
                           " after %" PRIu64,
                           nd->id, e->index, nd->applied);
            return;
        }
        nd->app_chain = sim_chain(nd->app_chain, e);
        nd->applied = e->index;
        sim_check_applied(&s->check, nd->id, e->index, nd->app_chain);
    }
}

/* check_new_leader: leader completeness (paper §5.4) for a node that just
 * became leader: its persisted log holds the highest entry applied anywhere,
 * with the same prefix. */
static void check_new_leader(struct sim *s, struct sim_node *nd, uint64_t term)
{
    uint64_t want, have, top = sim_check_applied_max(&s->check, &want);

    sim_check_leader(&s->check, nd->id, term);
    if (top == 0 || (nd->disk.has_snap && nd->disk.snap.index >= top))
        return;
    if (!sim__disk_chain_at(&nd->disk, top, &have) || have != want)
        sim_check_fail(&s->check,
                       "leader completeness: n%" PRIx64 " leads term %" PRIu64
                       " without the entry applied at %" PRIu64,
                       nd->id, term, top);
}

/* check_progress: oracles on a node's own bookkeeping.
 * - A leader's nextIndex of every peer stays above its matchIndex.
 * - A non-voter becomes a voter in a configuration that its leader appends
 *   only once it holds the leader's log (thesis §4.2.1, catch-up).
 * - The crash fast path (a pre-vote counted in fast_path_elections) starts
 *   only after the transport reported this node's leader down.
 * - In synchronous persistence, the configuration in force is the last one
 *   in the node's log on disk, or its snapshot's (thesis §4.1): one whose
 *   entry was truncated is not. */
static void check_progress(struct sim *s, struct sim_node *nd,
                           const struct raft_update *u)
{
    struct raft_progress p;
    struct raft_status st;

    if (u->role == RAFT_LEADER && u->config != NULL) {
        raft_status(nd->r, &st);
        for (unsigned i = 0; i < u->config->n; i++) {
            const struct raft_member *m = &u->config->members[i];
            const struct raft_member *was;
            if (m->id == nd->id || raft_progress(nd->r, m->id, &p) != 0)
                continue;
            if (p.next_index <= p.match_index)
                sim_check_fail(&s->check,
                               "leader n%" PRIx64 ": next %" PRIu64 " of n%" PRIx64
                               " not above its match %" PRIu64,
                               nd->id, p.next_index, m->id, p.match_index);
            was = raft_config_find(&nd->last_config, m->id);
            if (u->config_changed && nd->role == RAFT_LEADER && m->role == RAFT_VOTER &&
                was != NULL && was->role == RAFT_NONVOTER &&
                p.match_index + 1 < st.last_index)
                sim_check_fail(&s->check,
                               "leader n%" PRIx64 " promoted n%" PRIx64 " at %" PRIu64
                               " while it held only up to %" PRIu64,
                               nd->id, m->id, st.last_index, p.match_index);
        }
    }
    if (u->leader_id != 0 && u->leader_id != nd->leader)
        nd->leader_reported_down = false;
    if (u->counters != NULL && u->counters->fast_path_elections > nd->fast_path_seen) {
        if (!nd->leader_reported_down)
            sim_check_fail(&s->check,
                           "n%" PRIx64 " took the crash fast path with no report that "
                           "its leader n%" PRIx64 " was down",
                           nd->id, nd->leader);
        nd->fast_path_seen = u->counters->fast_path_elections;
    }
    if (u->config_changed && u->config != NULL)
        nd->last_config = *u->config;
}

/* check_standby holds a voter on standby (sim_standby) to raft.h's
 * RAFT_EV_STANDBY rule: on its timer it campaigns only once
 * RAFT_STANDBY_TIMEOUTS election timeouts in a row passed without a
 * leader, each at least election_min_ms long (the first may be cut short:
 * the timer ran before the standby), and TimeoutNow never makes it
 * campaign.  The start of a lone voter, which leads itself at once, is no
 * campaign of the timer. */
static void check_standby(struct sim *s, struct sim_node *nd, const struct raft_event *ev,
                          const struct raft_update *u)
{
    uint64_t campaigns = nd->campaigns_seen, since;

    if (u->counters != NULL)
        nd->campaigns_seen = u->counters->elections + u->counters->pre_elections;
    if (!nd->standby || ev->type == RAFT_EV_START || nd->campaigns_seen <= campaigns)
        return;
    if (ev->type == RAFT_EV_RECEIVE && ev->u.receive.msg->type == RAFT_MSG_TIMEOUT_NOW) {
        sim_check_fail(&s->check,
                       "standby: n%" PRIx64 " campaigned on TimeoutNow while on standby",
                       nd->id);
        return;
    }
    if (ev->type != RAFT_EV_TICK)
        return; /* a pre-vote won goes on to the real vote */
    since =
        nd->standby_since > nd->heard_leader_at ? nd->standby_since : nd->heard_leader_at;
    if (s->now - since < (uint64_t)(RAFT_STANDBY_TIMEOUTS - 1) * s->opts.election_min_ms)
        sim_check_fail(&s->check,
                       "standby: n%" PRIx64 " campaigned %" PRIu64
                       " ms after its standby or its leader's last append, before %u "
                       "election timeouts",
                       nd->id, s->now - since, RAFT_STANDBY_TIMEOUTS);
}

/* note_status records the role, term and leader of an update, checks a new
 * leader and keeps the leader's configuration as the cluster's. */
static void note_status(struct sim *s, struct sim_node *nd, const struct raft_update *u)
{
    if (u->role == RAFT_LEADER &&
        (nd->role != RAFT_LEADER || nd->term != u->current_term)) {
        check_new_leader(s, nd, u->current_term);
        s->last_leader_change = s->now;
        sim_trace(s, "n%" PRIx64 " is leader of term %" PRIu64, nd->id, u->current_term);
    } else if (u->role != nd->role || u->current_term != nd->term) {
        sim_trace(s, "n%" PRIx64 " %s term %" PRIu64, nd->id, raft_role_name(u->role),
                  u->current_term);
    }
    if (u->commit_index < nd->commit)
        sim_check_fail(&s->check,
                       "n%" PRIx64 " commit index went back from %" PRIu64 " to %" PRIu64,
                       nd->id, nd->commit, u->commit_index);
    check_progress(s, nd, u);
    nd->role = u->role;
    nd->term = u->current_term;
    nd->leader = u->leader_id;
    nd->commit = u->commit_index;
    if (u->role == RAFT_LEADER && u->config != NULL)
        s->config = *u->config;
}

/* crash_in_step crashes the node inside a step (kind: at which point). */
static void crash_in_step(struct sim *s, unsigned slot, enum sim_fault kind)
{
    s->faults[kind]++;
    sim_crash(s, slot,
              s->now + 1 +
                  sim_rand(s, kind == SIM_F_CRASH_QUICK ? 5 : s->restart_max_ms));
}

/* check_commit: the commit oracle, from the disks rather than from what
 * anyone applied.  When a leader's commit index moves to q, the entry at q
 * (the leader's, in its term) must be durable on a majority of the voters
 * of its configuration: on their disks, now. */
static void check_commit(struct sim *s, const struct sim_node *ld, uint64_t old_commit,
                         const struct raft_update *u)
{
    uint64_t q = u->commit_index, want, have;
    unsigned voters = 0, hold = 0;

    if (u->role != RAFT_LEADER || q <= old_commit || u->config == NULL)
        return;
    /* A commit index that a restart took from the snapshot is not a count. */
    if (ld->disk.has_snap && q <= ld->disk.snap.index)
        return;
    /* §5.4.2: a leader commits by counting only entries of its term (the
     * earlier ones follow); figure 8 shows what goes wrong otherwise. */
    if (ld->disk.n > 0 && q >= ld->disk.first && q < ld->disk.first + ld->disk.n &&
        ld->disk.ents[q - ld->disk.first].term != u->current_term)
        sim_check_fail(
            &s->check,
            "leader n%" PRIx64 " of term %" PRIu64 " moved its commit index to "
            "%" PRIu64 ", an entry of term %" PRIu64,
            ld->id, u->current_term, q, ld->disk.ents[q - ld->disk.first].term);
    if (!sim__disk_chain_at(&ld->disk, q, &want)) {
        if (!(ld->disk.has_snap && ld->disk.snap.index >= q))
            sim_check_fail(&s->check,
                           "leader n%" PRIx64 " committed %" PRIu64
                           " that its own disk does not hold",
                           ld->id, q);
        return;
    }
    for (unsigned i = 0; i < u->config->n; i++) {
        const struct raft_member *m = &u->config->members[i];
        int k = sim__slot_of_id(s, m->id);
        if (m->role != RAFT_VOTER)
            continue;
        voters++;
        if (k < 0)
            continue;
        const struct sim_disk *d = &s->nodes[k].disk;
        if ((sim__disk_chain_at(d, q, &have) && have == want) ||
            (d->has_snap && d->snap.index > q))
            hold++;
    }
    if (hold < voters / 2 + 1)
        sim_check_fail(&s->check,
                       "leader n%" PRIx64 " committed %" PRIu64 " (term %" PRIu64
                       ") held durably by %u of %u voters",
                       ld->id, q, u->current_term, hold, voters);
}

static bool config_equal(const struct raft_config *a, const struct raft_config *b)
{
    if (a->n != b->n)
        return false;
    for (unsigned i = 0; i < a->n; i++)
        if (a->members[i].id != b->members[i].id ||
            a->members[i].role != b->members[i].role ||
            strcmp(a->members[i].address, b->members[i].address) != 0)
            return false;
    return true;
}

/* The points of a step where a node may crash (sim.h). */
enum crash_point { CP_NONE, CP_BEFORE, CP_MID, CP_PERSISTED, CP_SENT };

/* node_step steps the node in slot and carries out the update (maybe
 * crashing somewhere in it); returns raft_step's code. */
int sim__node_step(struct sim *s, unsigned slot, struct raft_event *ev)
{
    struct sim_node *nd = &s->nodes[slot];
    struct raft_update u;
    enum crash_point cp = CP_NONE;
    int rc;

    if (nd->r == NULL)
        return RAFT_ESTATE;
    ev->now = s->now;
    rc = raft_step(nd->r, ev, &u);
    if (ev->type == RAFT_EV_START && rc != 0) {
        sim_check_fail(&s->check, "n%" PRIx64 " could not start from its storage: %s",
                       nd->id, raft_errname(rc));
        return rc;
    }
    if (s->step_crash_permille && ev->type != RAFT_EV_START &&
        sim_rand(s, 1000) < s->step_crash_permille)
        cp = (enum crash_point)(1 + sim_rand(s, 4));
    if (s->sabotage == SIM_SAB_FORGET_VOTE && u.persist_term_vote && u.vote != 0 &&
        u.vote != nd->id && sim_rand(s, 2) == 0)
        cp = CP_SENT; /* crash just after granting a vote: it is forgotten */

    uint64_t old_commit = nd->commit;
    check_standby(s, nd, ev, &u);
    note_status(s, nd, &u);

    bool persists = u.persist_term_vote || u.snapshot != NULL || u.truncate_from != 0 ||
                    u.n_entries > 0 || u.compact_to != 0;
    if (s->async_persist && ev->type != RAFT_EV_START && (persists || nd->jobs != NULL) &&
        s->sabotage == SIM_SAB_NONE) {
        if (cp != CP_NONE) {
            /* The disk had not done this update (nor what waits before
             * it): a crash loses them all. */
            crash_in_step(s, slot, SIM_F_CRASH_BEFORE);
            return rc;
        }
        struct sim_job *j = job_new(s, slot, &u);
        uint64_t at = nd->disk_free_at > s->now ? nd->disk_free_at : s->now;
        at += 1 + sim_rand(s, s->disk_ms);
        nd->disk_free_at = at;
        if (nd->jobs_tail != NULL)
            nd->jobs_tail->next = j;
        else
            nd->jobs = j;
        nd->jobs_tail = j;
        queue_local(s, slot, EV_DISK, at, 0, 0);
        check_commit(s, nd, old_commit, &u);
        apply(s, nd, &u);
        nd->deadline = u.deadline;
        if (s->snapshot_every && nd->applied >= nd->snap_at + s->snapshot_every) {
            nd->snap_at = nd->applied;
            queue_local(s, slot, EV_SNAPSHOT, s->now, nd->applied, nd->app_chain);
        }
        return rc;
    }

    /* 1. persist */
    if (cp == CP_BEFORE) {
        if (s->sabotage == SIM_SAB_SEND_EARLY)
            for (unsigned k = 0; k < u.n_messages; k++)
                send_one(s, slot, &u.messages[k]);
        crash_in_step(s, slot, SIM_F_CRASH_BEFORE);
        return rc;
    }
    if (cp == CP_MID) {
        int ops = 1 + (int)sim_rand(s, 3);
        sim__persist(s, nd, &u, ops);
        sim__store_mirror(s, nd, &u, ops);
        crash_in_step(s, slot, SIM_F_CRASH_MID);
        return rc;
    }
    sim__persist(s, nd, &u, 4);
    sim__store_mirror(s, nd, &u, 4);
    check_commit(s, nd, old_commit, &u);
    if (u.config != NULL && !config_equal(u.config, &nd->disk.cfg))
        sim_check_fail(&s->check,
                       "n%" PRIx64 ": the configuration in force is not the last "
                       "one in its log",
                       nd->id);
    if (cp == CP_PERSISTED) {
        /* Durable, but nothing of this step left the node. */
        crash_in_step(s, slot, SIM_F_CRASH_PERSIST);
        return rc;
    }
    /* 2. send */
    for (unsigned k = 0; k < u.n_messages; k++)
        send_one(s, slot, &u.messages[k]);
    if (cp == CP_SENT) {
        crash_in_step(s, slot, SIM_F_CRASH_SENT);
        return rc;
    }
    if (u.n_messages > 0 && s->quick_crash_permille &&
        sim_rand(s, 1000) < s->quick_crash_permille) {
        /* What it just sent rests on what it just persisted: restart
         * within milliseconds, inside the same election. */
        crash_in_step(s, slot, SIM_F_CRASH_QUICK);
        return rc;
    }
    /* 3. apply */
    apply(s, nd, &u);
    /* 4. timer */
    nd->deadline = u.deadline;
    /* 5. durability notice, after a small disk delay */
    if (u.n_entries > 0)
        queue_local(s, slot, EV_PERSISTED, s->now + sim_rand(s, 3),
                    u.entries[u.n_entries - 1].index, u.entries[u.n_entries - 1].term);
    if (s->snapshot_every && nd->applied >= nd->snap_at + s->snapshot_every) {
        nd->snap_at = nd->applied;
        queue_local(s, slot, EV_SNAPSHOT, s->now, nd->applied, nd->app_chain);
    }
    return rc;
}

/* trace_msg prints a delivered message when verbose: elections and
 * rejections in full, routine replication not at all. */
static void trace_msg(struct sim *s, const struct raft_message *m)
{
    if (!s->verbose)
        return;
    switch (m->type) {
    case RAFT_MSG_VOTE:
        sim_trace(s,
                  "  n%" PRIx64 " -> n%" PRIx64 " %svote term %" PRIu64 " last %" PRIu64
                  "/%" PRIu64 "%s",
                  m->from, m->to, m->u.vote.pre_vote ? "pre-" : "", m->term,
                  m->u.vote.last_index, m->u.vote.last_term,
                  m->u.vote.transfer ? " (transfer)" : "");
        break;
    case RAFT_MSG_VOTE_RESULT:
        sim_trace(s, "  n%" PRIx64 " -> n%" PRIx64 " %svote %s term %" PRIu64, m->from,
                  m->to, m->u.vote_result.pre_vote ? "pre-" : "",
                  m->u.vote_result.granted ? "granted" : "refused", m->term);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        sim_trace(s, "  n%" PRIx64 " -> n%" PRIx64 " timeout-now term %" PRIu64, m->from,
                  m->to, m->term);
        break;
    case RAFT_MSG_SNAPSHOT:
        sim_trace(s, "  n%" PRIx64 " -> n%" PRIx64 " snapshot %" PRIu64 "/%" PRIu64,
                  m->from, m->to, m->u.snapshot.snapshot.index,
                  m->u.snapshot.snapshot.term);
        break;
    case RAFT_MSG_APPEND_RESULT:
        if (m->u.append_result.rejected)
            sim_trace(s,
                      "  n%" PRIx64 " -> n%" PRIx64 " append rejected at %" PRIu64
                      " (last %" PRIu64 ")",
                      m->from, m->to, m->u.append_result.reject_index,
                      m->u.append_result.last_index);
        break;
    default:
        break;
    }
}

static void process(struct sim *s, struct sim_event *e)
{
    struct sim_node *nd = &s->nodes[e->to];
    struct raft_event ev;
    struct codec_msg cm;
    unsigned char data[16];
    int rc;

    memset(&ev, 0, sizeof ev);
    switch (e->kind) {
    case EV_MSG:
        if (nd->r == NULL)
            break;
        if (s->cut[e->from][e->to]) {
            s->faults[SIM_F_CUT]++;
            break;
        }
        rc = codec_decode(e->bytes, e->len, &cm);
        if (rc != 0) {
            sim_check_fail(&s->check, "codec could not decode a core message: %s",
                           raft_errname(rc));
            break;
        }
        s->delivered++;
        trace_msg(s, &cm.msg);
        ev.type = RAFT_EV_RECEIVE;
        ev.u.receive.msg = &cm.msg;
        if (e->forged) {
            struct raft_status before, after;
            raft_status(nd->r, &before);
            sim__node_step(s, e->to, &ev);
            if (nd->r != NULL) {
                raft_status(nd->r, &after);
                if (after.term != before.term || after.last_index != before.last_index)
                    sim_check_fail(&s->check,
                                   "n%" PRIx64 " acted on a message from another cluster",
                                   nd->id);
            }
        } else {
            sim__node_step(s, e->to, &ev);
            /* The core restarts its count of skipped timeouts when it
             * takes its leader's append or snapshot (check_standby); one
             * of an older term is refused unheard (seed 70016420). */
            if (nd->r != NULL && nd->role == RAFT_FOLLOWER && nd->leader == cm.msg.from &&
                cm.msg.term == nd->term &&
                (cm.msg.type == RAFT_MSG_APPEND || cm.msg.type == RAFT_MSG_SNAPSHOT))
                nd->heard_leader_at = s->now;
        }
        codec_msg_free(&cm);
        break;
    case EV_PERSISTED:
        if (nd->r == NULL || nd->incarnation != e->inc)
            break;
        ev.type = RAFT_EV_PERSISTED;
        ev.u.persisted.index = e->index;
        ev.u.persisted.term = e->term;
        sim__node_step(s, e->to, &ev);
        break;
    case EV_DISK:
        if (nd->r == NULL || nd->incarnation != e->inc)
            break;
        disk_done(s, e->to);
        break;
    case EV_PEER_DOWN:
        if (nd->r == NULL || nd->incarnation != e->inc)
            break;
        if (e->index != 0 && e->index == nd->leader)
            nd->leader_reported_down = true;
        ev.type = RAFT_EV_PEER_DOWN;
        ev.u.peer_down.id = e->index;
        sim__node_step(s, e->to, &ev);
        break;
    case EV_SNAPSHOT:
        if (nd->r == NULL || nd->incarnation != e->inc || nd->applied != e->index)
            break;
        sim__snap_data_put(data, e->index, e->term);
        ev.type = RAFT_EV_SNAPSHOT;
        ev.u.snapshot.index = e->index;
        ev.u.snapshot.data.base = data;
        ev.u.snapshot.data.len = sizeof data;
        s->faults[SIM_F_SNAPSHOT]++;
        sim__node_step(s, e->to, &ev);
        break;
    }
}

/* ---- setup ------------------------------------------------------------------- */

unsigned sim__new_node(struct sim *s, uint64_t id, const char *address)
{
    unsigned slot = s->n++;
    struct sim_node *nd = &s->nodes[slot];

    memset(nd, 0, sizeof *nd);
    nd->used = true;
    nd->id = id;
    snprintf(nd->address, sizeof nd->address, "%s", address);
    return slot;
}

void sim_init(struct sim *s, uint64_t seed, unsigned n, const struct raft_options *o,
              bool verbose, const char *store_dir)
{
    struct raft_config cfg;
    unsigned char enc[RAFT_CONFIG_ENCODED_MAX];
    struct raft_entry boot;
    size_t len = 0;
    char addr[RAFT_ADDR_MAX];

    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->rng = seed ^ 0x5851f42d4c957f2dull;
    s->cluster_id = 0xC0FFEE0000000000ull | (seed & 0xffff);
    s->opts = *o;
    s->verbose = verbose;
    s->store_dir = store_dir;
    s->store_pfs = store_dir != NULL && strcmp(store_dir, SIM_STORE_PFS) == 0;
    if (s->store_pfs)
        pfs_reset(seed);
    s->latency_ms = 1;
    s->restart_max_ms = 2000;
    sim_check_init(&s->check);
    raft_config_init(&cfg);
    for (unsigned i = 0; i < n; i++) {
        snprintf(addr, sizeof addr, "10.0.0.%u:5224", i + 1);
        raft_config_add(&cfg, i + 1, addr, RAFT_VOTER);
    }
    s->next_id = n + 1;
    raft_config_encode(&cfg, enc, sizeof enc, &len);
    boot.index = 1;
    boot.term = 1;
    boot.type = RAFT_ENTRY_CONFIG;
    boot.data.base = enc;
    boot.data.len = len;
    s->config = cfg;
    for (unsigned i = 0; i < n; i++) {
        unsigned slot = sim__new_node(s, cfg.members[i].id, cfg.members[i].address);
        s->nodes[slot].disk.term = 1;
        sim__disk_append(s, &s->nodes[slot], &boot);
        if (store_dir != NULL)
            sim__store_boot(s, &s->nodes[slot], &boot);
    }
    for (unsigned i = 0; i < n; i++)
        sim__node_start(s, i);
}

void sim_free(struct sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        raft_free(s->nodes[i].r);
        jobs_free(&s->nodes[i]);
        store_close(s->nodes[i].st);
        sim__disk_free(&s->nodes[i].disk);
    }
    for (size_t i = 0; i < s->n_heap; i++)
        ev_free(s->heap[i]);
    free(s->heap);
    sim_check_free(&s->check);
}

/* ---- the loop ------------------------------------------------------------------- */

void sim_run_until(struct sim *s, uint64_t t)
{
    unsigned same_time = 0;
    uint64_t last = s->now;

    while (!sim_check_failed(&s->check)) {
        uint64_t next = UINT64_MAX;
        int kind = -1; /* 0 heap, 1 timer, 2 restart */
        unsigned who = 0;

        if (s->n_heap > 0) {
            next = s->heap[0]->at;
            kind = 0;
        }
        for (unsigned i = 0; i < s->n; i++) {
            const struct sim_node *nd = &s->nodes[i];
            if (nd->r != NULL && nd->deadline != 0 && nd->deadline < next) {
                next = nd->deadline;
                kind = 1;
                who = i;
            } else if (nd->r == NULL && nd->restart_at != 0 && nd->restart_at < next) {
                next = nd->restart_at;
                kind = 2;
                who = i;
            }
        }
        if (kind < 0 || next > t)
            break;
        if (next > s->now)
            s->now = next;
        if (s->now == last) {
            /* A core that keeps asking to be ticked at the same instant
             * would stall real time too. */
            if (++same_time > 100000) {
                sim_check_fail(&s->check, "no progress: events loop at time %" PRIu64,
                               s->now);
                break;
            }
        } else {
            same_time = 0;
            last = s->now;
        }
        if (kind == 0) {
            struct sim_event *e = heap_pop(s);
            process(s, e);
            ev_free(e);
        } else if (kind == 1) {
            struct raft_event ev;
            memset(&ev, 0, sizeof ev);
            ev.type = RAFT_EV_TICK;
            s->nodes[who].deadline = 0;
            if (s->sabotage == SIM_SAB_STANDBY_STUCK && s->nodes[who].standby)
                step_standby(s, who);
            if (s->nodes[who].r != NULL)
                sim__node_step(s, who, &ev);
        } else {
            sim_restart(s, who);
            s->nodes[who].restart_at = 0;
        }
    }
    if (s->now < t && !sim_check_failed(&s->check))
        s->now = t;
}

int sim_leader(const struct sim *s)
{
    int best = -1;

    for (unsigned i = 0; i < s->n; i++) {
        const struct sim_node *nd = &s->nodes[i];
        if (nd->r != NULL && nd->role == RAFT_LEADER &&
            (best < 0 || nd->term > s->nodes[best].term))
            best = (int)i;
    }
    return best;
}

void sim_peer_down(struct sim *s, unsigned slot)
{
    for (unsigned i = 0; i < s->n; i++) {
        uint64_t at = s->now;
        if (i == slot || s->nodes[i].r == NULL)
            continue;
        /* A stream delivers what the dead peer sent before it reports the
         * close: the report follows the last message in flight. */
        for (size_t k = 0; k < s->n_heap; k++) {
            const struct sim_event *e = s->heap[k];
            if (e->kind == EV_MSG && e->from == slot && e->to == i && e->at > at)
                at = e->at;
        }
        queue_local(s, i, EV_PEER_DOWN, at, s->nodes[slot].id, 0);
    }
}

void sim_spurious_peer_down(struct sim *s, unsigned slot, unsigned peer)
{
    if (slot == peer || s->nodes[slot].r == NULL)
        return;
    s->faults[SIM_F_SPURIOUS_DOWN]++;
    queue_local(s, slot, EV_PEER_DOWN, s->now, s->nodes[peer].id, 0);
}

void sim_heal(struct sim *s)
{
    memset(s->cut, 0, sizeof s->cut);
    s->faults[SIM_F_HEAL]++;
    sim_trace(s, "network healed");
}

void sim_isolate(struct sim *s, unsigned slot)
{
    for (unsigned i = 0; i < SIM_MAX_NODES; i++) {
        if (i == slot)
            continue;
        s->cut[slot][i] = true;
        s->cut[i][slot] = true;
    }
}

bool sim_converged(const struct sim *s)
{
    int l = sim_leader(s);
    const struct sim_node *ld;
    struct raft_status st;

    if (l < 0)
        return false;
    ld = &s->nodes[l];
    raft_status(ld->r, &st);
    /* The leader's own entries (its term's first one included) are
     * committed and applied. */
    if (ld->applied < ld->commit || ld->commit == 0 || st.commit_index < st.last_index)
        return false;
    for (unsigned i = 0; i < s->n; i++) {
        const struct sim_node *nd = &s->nodes[i];
        if (!nd->used || nd->removed || !sim_is_member(s, nd->id))
            continue;
        if (nd->r == NULL || nd->applied < ld->commit)
            return false;
    }
    return true;
}

void sim_dump(struct sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        const struct sim_node *nd = &s->nodes[i];
        struct raft_status st;
        const struct raft_config *c;
        if (!nd->used)
            continue;
        if (nd->r == NULL) {
            printf("  n%" PRIx64 " down%s, disk term %" PRIu64 " vote %" PRIx64
                   " last %" PRIu64 "\n",
                   nd->id, nd->removed ? " (removed)" : "", nd->disk.term, nd->disk.vote,
                   sim__disk_last(&nd->disk));
            continue;
        }
        raft_status(nd->r, &st);
        c = raft_get_config(nd->r);
        printf("  n%" PRIx64 " %s term %" PRIu64 " vote %" PRIx64 " leader %" PRIx64
               " commit %" PRIu64 " applied %" PRIu64 " last %" PRIu64 " snap %" PRIu64
               " config:",
               nd->id, raft_role_name(st.role), st.term, st.vote, st.leader_id,
               st.commit_index, st.applied_index, st.last_index, st.snapshot_index);
        {
            const struct raft_counters *ct = raft_get_counters(nd->r);
            printf(" [in-lease %" PRIu64 " stale %" PRIu64 " non-member %" PRIu64
                   " fast-path %" PRIu64 "]",
                   ct->ignored_in_lease, ct->dropped_stale, ct->dropped_non_member,
                   ct->fast_path_elections);
        }
        for (unsigned k = 0; k < c->n; k++)
            printf(" n%" PRIx64 "%s", c->members[k].id,
                   c->members[k].role == RAFT_VOTER ? "" : "(nv)");
        printf("\n");
    }
}
