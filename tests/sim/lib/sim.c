/* sim.c: the simulated cluster (sim.h): nodes, their in-memory disks, the
 * network and the event loop. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "store.h"

enum { EV_MSG, EV_PERSISTED, EV_SNAPSHOT };

struct sim_event {
    uint64_t at, seq;
    int kind;
    unsigned from, to; /* slots */
    unsigned inc;      /* EV_PERSISTED, EV_SNAPSHOT: incarnation of to */
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

/* ---- in-memory disk -------------------------------------------------------- */

static void disk_free(struct sim_disk *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->ents[i].data.base);
    free(d->ents);
    free(d->chain);
    free(d->snap.data.base);
    memset(d, 0, sizeof *d);
}

static uint64_t disk_last(const struct sim_disk *d)
{
    if (d->n > 0)
        return d->first + d->n - 1;
    return d->has_snap ? d->snap.index : 0;
}

/* disk_chain_at sets *chain to the prefix chain at index; false if unknown. */
static bool disk_chain_at(const struct sim_disk *d, uint64_t index, uint64_t *chain)
{
    if (index == 0) {
        *chain = 0;
        return true;
    }
    if (d->n > 0 && index >= d->first && index < d->first + d->n) {
        *chain = d->chain[index - d->first];
        return true;
    }
    if (d->has_snap && index == d->snap.index) {
        *chain = d->snap_chain;
        return true;
    }
    return false;
}

static void disk_truncate(struct sim_disk *d, uint64_t from)
{
    while (d->n > 0 && d->first + d->n - 1 >= from) {
        d->n--;
        free(d->ents[d->n].data.base);
    }
}

static void disk_drop_prefix(struct sim_disk *d, uint64_t upto)
{
    size_t k = 0;

    while (k < d->n && d->first + k <= upto)
        free(d->ents[k++].data.base);
    if (k == 0)
        return;
    memmove(d->ents, d->ents + k, (d->n - k) * sizeof *d->ents);
    memmove(d->chain, d->chain + k, (d->n - k) * sizeof *d->chain);
    d->n -= k;
    d->first += k;
}

static void disk_append(struct sim *s, struct sim_node *nd, const struct raft_entry *e)
{
    struct sim_disk *d = &nd->disk;
    uint64_t prev;

    if (d->n > 0 && e->index < d->first + d->n)
        disk_truncate(d, e->index); /* overwrite: the conflict rule */
    if (d->n > 0 && e->index != d->first + d->n) {
        if (d->has_snap && e->index == d->snap.index + 1 && e->index > d->first + d->n) {
            disk_truncate(d, 0); /* stale entries behind a newer snapshot */
        } else {
            sim_check_fail(&s->check,
                           "n%" PRIx64 " asked to persist entry %" PRIu64
                           " that does not follow its log (last %" PRIu64 ")",
                           nd->id, e->index, d->first + d->n - 1);
            return;
        }
    }
    if (!disk_chain_at(d, e->index - 1, &prev)) {
        sim_check_fail(&s->check,
                       "n%" PRIx64 " asked to persist entry %" PRIu64
                       " with no entry or snapshot before it",
                       nd->id, e->index);
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        d->ents = realloc(d->ents, d->cap * sizeof *d->ents);
        d->chain = realloc(d->chain, d->cap * sizeof *d->chain);
        if (d->ents == NULL || d->chain == NULL)
            abort();
    }
    if (d->n == 0)
        d->first = e->index;
    d->ents[d->n] = *e;
    d->ents[d->n].data.base = xmemdup(e->data.base, e->data.len);
    d->chain[d->n] = sim_chain(prev, e);
    sim_check_persisted(&s->check, nd->id, e->index, e->term, d->chain[d->n]);
    d->n++;
}

/* Snapshot data of the simulated application: applied index and chain. */
static void snap_data_put(unsigned char out[16], uint64_t index, uint64_t chain)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(index >> (8 * i));
        out[8 + i] = (unsigned char)(chain >> (8 * i));
    }
}

static bool snap_data_get(const struct raft_buffer *b, uint64_t *index, uint64_t *chain)
{
    const unsigned char *p = b->base;

    if (b->len != 16)
        return false;
    *index = *chain = 0;
    for (int i = 7; i >= 0; i--) {
        *index = (*index << 8) | p[i];
        *chain = (*chain << 8) | p[8 + i];
    }
    return true;
}

/* persist carries out up to ops of the update's persist steps, in raft.h's
 * order: term+vote, snapshot, truncate+append, compact. */
static void persist(struct sim *s, struct sim_node *nd, const struct raft_update *u,
                    int ops)
{
    struct sim_disk *d = &nd->disk;
    uint64_t idx, chain;

    if (ops-- > 0 && u->persist_term_vote) {
        d->term = u->term;
        d->vote = u->vote;
    }
    if (ops-- > 0 && u->snapshot != NULL) {
        if (!snap_data_get(&u->snapshot->data, &idx, &chain) ||
            idx != u->snapshot->index) {
            sim_check_fail(&s->check,
                           "n%" PRIx64 " persisted a snapshot with foreign data", nd->id);
            return;
        }
        free(d->snap.data.base);
        d->snap = *u->snapshot;
        d->snap.data.base = xmemdup(u->snapshot->data.base, u->snapshot->data.len);
        d->has_snap = true;
        d->snap_chain = chain;
        /* A snapshot holds applied state only: it must agree with what was
         * applied at its index anywhere. */
        sim_check_applied(&s->check, nd->id, idx, chain);
    }
    if (ops-- > 0) {
        if (u->truncate_from != 0)
            disk_truncate(d, u->truncate_from);
        for (unsigned i = 0; i < u->n_entries; i++)
            disk_append(s, nd, &u->entries[i]);
    }
    if (ops-- > 0 && u->compact_to != 0)
        disk_drop_prefix(d,
                         u->compact_to < d->snap.index ? u->compact_to : d->snap.index);
}

/* store_mirror carries out the same first ops persist steps on the real
 * store. */
static void store_mirror(struct sim *s, struct sim_node *nd, const struct raft_update *u,
                         int ops)
{
    struct raft_update part;
    int rc;

    if (nd->st == NULL)
        return;
    memset(&part, 0, sizeof part);
    if (ops >= 1) {
        part.persist_term_vote = u->persist_term_vote;
        part.term = u->term;
        part.vote = u->vote;
    }
    if (ops >= 2)
        part.snapshot = u->snapshot;
    if (ops >= 3) {
        part.truncate_from = u->truncate_from;
        part.entries = u->entries;
        part.n_entries = u->n_entries;
    }
    if (ops >= 4)
        part.compact_to = u->compact_to;
    rc = store_persist(nd->st, &part);
    if (rc != 0)
        sim_check_fail(&s->check, "n%" PRIx64 " store_persist failed: %s", nd->id,
                       raft_errname(rc));
}

/* An fsync that does nothing: the simulation crashes processes, not
 * machines, and what was written survives a process crash. */
static int nosync(int fd)
{
    (void)fd;
    return 0;
}

static struct store_sys sim_store_sys;

/* store_reopen (re)opens the node's real store and checks that what it
 * loads equals the in-memory model of its disk. */
static int store_reopen(struct sim *s, struct sim_node *nd, struct store_loaded *l)
{
    char path[512];
    const struct sim_disk *d = &nd->disk;
    size_t skip = 0;
    int rc;

    sim_store_sys = store_sys_posix;
    sim_store_sys.fsync = nosync;
    store_close(nd->st);
    nd->st = NULL;
    snprintf(path, sizeof path, "%s/n%" PRIx64, s->store_dir, nd->id);
    rc = store_open(path, &sim_store_sys, &nd->st, l);
    if (rc != 0) {
        sim_check_fail(&s->check, "n%" PRIx64 " store_open failed: %s", nd->id,
                       raft_errname(rc));
        return rc;
    }
    while (d->has_snap && skip < d->n && d->first + skip <= d->snap.index)
        skip++;
    if (l->term != d->term || l->vote != d->vote)
        sim_check_fail(&s->check,
                       "n%" PRIx64 " store loaded term/vote %" PRIu64 "/%" PRIx64
                       ", model %" PRIu64 "/%" PRIx64,
                       nd->id, l->term, l->vote, d->term, d->vote);
    if ((l->snapshot != NULL) != d->has_snap ||
        (d->has_snap &&
         (l->snapshot->index != d->snap.index || l->snapshot->term != d->snap.term ||
          l->snapshot->config_index != d->snap.config_index ||
          l->snapshot->data.len != d->snap.data.len ||
          memcmp(l->snapshot->data.base, d->snap.data.base, d->snap.data.len) != 0)))
        sim_check_fail(&s->check, "n%" PRIx64 " store loaded a different snapshot",
                       nd->id);
    if (l->n_entries != d->n - skip) {
        sim_check_fail(&s->check,
                       "n%" PRIx64
                       " store loaded %u entries, the model has %zu after the "
                       "snapshot",
                       nd->id, l->n_entries, d->n - skip);
        return 0;
    }
    for (unsigned i = 0; i < l->n_entries; i++) {
        const struct raft_entry *a = &l->entries[i], *b = &d->ents[skip + i];
        if (a->index != b->index || a->term != b->term || a->type != b->type ||
            a->data.len != b->data.len ||
            (a->data.len && memcmp(a->data.base, b->data.base, a->data.len) != 0)) {
            sim_check_fail(&s->check,
                           "n%" PRIx64 " store loaded a different entry %" PRIu64, nd->id,
                           b->index);
            break;
        }
    }
    return 0;
}

/* ---- nodes ------------------------------------------------------------------ */

static int node_step(struct sim *s, unsigned slot, struct raft_event *ev);

static void node_start(struct sim *s, unsigned slot)
{
    struct sim_node *nd = &s->nodes[slot];
    struct raft_options o = s->opts;
    struct raft_event ev;
    const struct sim_disk *d = &nd->disk;
    size_t skip = 0;

    if (s->sabotage == SIM_SAB_FORGET_VOTE)
        nd->disk.vote = 0;
    if (s->sabotage == SIM_SAB_LOSE_ENTRIES && nd->disk.n > 1)
        disk_truncate(&nd->disk, nd->disk.first + nd->disk.n - 1);
    o.id = nd->id;
    o.cluster_id = s->cluster_id;
    o.seed = s->seed * 1000003u + nd->id * 7919u + nd->incarnation;
    if (raft_new(&o, &nd->r) != 0)
        abort();
    nd->applied = 0;
    nd->app_chain = 0;
    nd->snap_at = d->has_snap ? d->snap.index : 0;
    nd->role = RAFT_FOLLOWER;
    nd->leader = 0;
    nd->deadline = 0;
    memset(&ev, 0, sizeof ev);
    if (s->store_dir != NULL) {
        struct store_loaded l;
        if (store_reopen(s, nd, &l) != 0)
            return;
        store_loaded_start(&l, &ev);
        node_step(s, slot, &ev);
        store_loaded_free(&l);
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
    node_step(s, slot, &ev);
}

void sim_crash(struct sim *s, unsigned slot, uint64_t restart_at)
{
    struct sim_node *nd = &s->nodes[slot];

    if (nd->r == NULL)
        return;
    raft_free(nd->r);
    nd->r = NULL;
    store_close(nd->st);
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
              nd->disk.term, disk_last(&nd->disk));
    node_start(s, slot);
}

static int slot_of_id(const struct sim *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->nodes[i].used && s->nodes[i].id == id)
            return (int)i;
    return -1;
}

static void send_one(struct sim *s, unsigned from, const struct raft_message *m)
{
    int to = slot_of_id(s, m->to);
    size_t len = codec_encoded_size(m), got = 0;
    unsigned char *buf;
    struct sim_event *e;
    int copies = 1;

    if (len == 0) {
        sim_check_fail(&s->check, "n%" PRIx64 " sent a message the codec cannot encode",
                       s->nodes[from].id);
        return;
    }
    if (to < 0)
        return;
    if (s->cut[from][to]) {
        s->faults[SIM_F_CUT]++;
        return;
    }
    if (s->drop_pct && sim_rand(s, 100) < s->drop_pct) {
        s->faults[SIM_F_DROP]++;
        return;
    }
    if (s->dup_pct && sim_rand(s, 100) < s->dup_pct) {
        s->faults[SIM_F_DUP]++;
        copies = 2;
    }
    buf = xmalloc(len);
    if (codec_encode(m, buf, len, &got) != 0 || got != len) {
        sim_check_fail(&s->check, "codec_encode failed on a core message");
        free(buf);
        return;
    }
    for (int c = 0; c < copies; c++) {
        e = calloc(1, sizeof *e);
        if (e == NULL)
            abort();
        e->kind = EV_MSG;
        e->from = from;
        e->to = (unsigned)to;
        e->at = s->now + s->latency_ms + (s->jitter_ms ? sim_rand(s, s->jitter_ms) : 0);
        e->bytes = c == 0 ? buf : xmemdup(buf, len);
        e->len = len;
        heap_push(s, e);
    }
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
        if (!snap_data_get(&u->restore->data, &idx, &chain) || idx != u->restore->index) {
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
    if (!disk_chain_at(&nd->disk, top, &have) || have != want)
        sim_check_fail(&s->check,
                       "leader completeness: n%" PRIx64 " leads term %" PRIu64
                       " without the entry applied at %" PRIu64,
                       nd->id, term, top);
}

/* The points of a step where a node may crash (sim.h). */
enum crash_point { CP_NONE, CP_BEFORE, CP_MID, CP_PERSISTED, CP_SENT };

/* node_step steps the node in slot and carries out the update (maybe
 * crashing somewhere in it); returns raft_step's code. */
static int node_step(struct sim *s, unsigned slot, struct raft_event *ev)
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

    if (u.role == RAFT_LEADER &&
        (nd->role != RAFT_LEADER || nd->term != u.current_term)) {
        check_new_leader(s, nd, u.current_term);
        s->last_leader_change = s->now;
        sim_trace(s, "n%" PRIx64 " is leader of term %" PRIu64, nd->id, u.current_term);
    } else if (u.role != nd->role || u.current_term != nd->term) {
        sim_trace(s, "n%" PRIx64 " %s term %" PRIu64, nd->id, raft_role_name(u.role),
                  u.current_term);
    }
    nd->role = u.role;
    nd->term = u.current_term;
    nd->leader = u.leader_id;
    nd->commit = u.commit_index;
    if (u.role == RAFT_LEADER && u.config != NULL)
        s->config = *u.config;

    /* 1. persist */
    if (cp == CP_BEFORE) {
        if (s->sabotage == SIM_SAB_SEND_EARLY)
            for (unsigned k = 0; k < u.n_messages; k++)
                send_one(s, slot, &u.messages[k]);
        s->faults[SIM_F_CRASH_BEFORE]++;
        sim_crash(s, slot, s->now + 1 + sim_rand(s, s->restart_max_ms));
        return rc;
    }
    if (cp == CP_MID) {
        int ops = 1 + (int)sim_rand(s, 3);
        persist(s, nd, &u, ops);
        store_mirror(s, nd, &u, ops);
        s->faults[SIM_F_CRASH_MID]++;
        sim_crash(s, slot, s->now + 1 + sim_rand(s, s->restart_max_ms));
        return rc;
    }
    persist(s, nd, &u, 4);
    store_mirror(s, nd, &u, 4);
    if (cp == CP_PERSISTED) {
        /* Durable, but nothing of this step left the node. */
        s->faults[SIM_F_CRASH_PERSIST]++;
        sim_crash(s, slot, s->now + 1 + sim_rand(s, s->restart_max_ms));
        return rc;
    }
    /* 2. send */
    for (unsigned k = 0; k < u.n_messages; k++)
        send_one(s, slot, &u.messages[k]);
    if (cp == CP_SENT) {
        s->faults[SIM_F_CRASH_SENT]++;
        sim_crash(s, slot, s->now + 1 + sim_rand(s, s->restart_max_ms));
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
        ev.type = RAFT_EV_RECEIVE;
        ev.u.receive.msg = &cm.msg;
        node_step(s, e->to, &ev);
        codec_msg_free(&cm);
        break;
    case EV_PERSISTED:
        if (nd->r == NULL || nd->incarnation != e->inc)
            break;
        ev.type = RAFT_EV_PERSISTED;
        ev.u.persisted.index = e->index;
        ev.u.persisted.term = e->term;
        node_step(s, e->to, &ev);
        break;
    case EV_SNAPSHOT:
        if (nd->r == NULL || nd->incarnation != e->inc || nd->applied != e->index)
            break;
        snap_data_put(data, e->index, e->term);
        ev.type = RAFT_EV_SNAPSHOT;
        ev.u.snapshot.index = e->index;
        ev.u.snapshot.data.base = data;
        ev.u.snapshot.data.len = sizeof data;
        s->faults[SIM_F_SNAPSHOT]++;
        node_step(s, e->to, &ev);
        break;
    }
}

/* store_boot writes the bootstrap state (term 1, entry boot) through the
 * node's real store. */
static void store_boot(struct sim *s, struct sim_node *nd, const struct raft_entry *boot)
{
    struct store_loaded l;
    struct sim_disk saved = nd->disk;

    memset(&nd->disk, 0, sizeof nd->disk); /* the store starts empty */
    if (store_reopen(s, nd, &l) == 0) {
        store_loaded_free(&l);
        if (store_save_meta(nd->st, 1, 0) != 0 || store_append(nd->st, boot, 1) != 0)
            sim_check_fail(&s->check, "bootstrap through the store failed");
    }
    nd->disk = saved;
}

/* ---- setup ------------------------------------------------------------------- */

static unsigned new_node(struct sim *s, uint64_t id, const char *address)
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
        unsigned slot = new_node(s, cfg.members[i].id, cfg.members[i].address);
        s->nodes[slot].disk.term = 1;
        disk_append(s, &s->nodes[slot], &boot);
        if (store_dir != NULL)
            store_boot(s, &s->nodes[slot], &boot);
    }
    for (unsigned i = 0; i < n; i++)
        node_start(s, i);
}

void sim_free(struct sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        raft_free(s->nodes[i].r);
        store_close(s->nodes[i].st);
        disk_free(&s->nodes[i].disk);
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
            node_step(s, who, &ev);
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
    struct raft_event ev;

    for (unsigned i = 0; i < s->n; i++) {
        if (i == slot || s->nodes[i].r == NULL)
            continue;
        memset(&ev, 0, sizeof ev);
        ev.type = RAFT_EV_PEER_DOWN;
        ev.u.peer_down.id = s->nodes[slot].id;
        node_step(s, i, &ev);
    }
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

static int leader_step(struct sim *s, struct raft_event *ev)
{
    int l = sim_leader(s);

    if (l < 0)
        return RAFT_ENOTLEADER;
    return node_step(s, (unsigned)l, ev);
}

int sim_submit(struct sim *s)
{
    struct raft_event ev;
    char data[32];

    memset(&ev, 0, sizeof ev);
    snprintf(data, sizeof data, "e%" PRIu64, s->submitted++);
    ev.type = RAFT_EV_SUBMIT;
    ev.u.submit.type = RAFT_ENTRY_NORMAL;
    ev.u.submit.data.base = data;
    ev.u.submit.data.len = strlen(data);
    return leader_step(s, &ev);
}

int sim_add(struct sim *s)
{
    struct raft_event ev;
    char addr[RAFT_ADDR_MAX];
    uint64_t id;
    int rc;

    if (s->n >= SIM_MAX_NODES)
        return RAFT_ETOOMANY;
    id = s->next_id;
    snprintf(addr, sizeof addr, "10.0.0.%" PRIu64 ":5224", id);
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_ADD;
    ev.u.change.id = id;
    ev.u.change.address = addr;
    rc = leader_step(s, &ev);
    if (rc != 0)
        return rc;
    s->next_id++;
    node_start(s, new_node(s, id, addr));
    s->faults[SIM_F_ADD]++;
    sim_trace(s, "n%" PRIx64 " added as non-voter", id);
    return 0;
}

int sim_promote(struct sim *s, uint64_t id)
{
    struct raft_event ev;

    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_PROMOTE;
    ev.u.change.id = id;
    /* A promote is accepted at once and appended later (raft.h). */
    return leader_step(s, &ev);
}

int sim_remove(struct sim *s, uint64_t id)
{
    struct raft_event ev;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_REMOVE;
    ev.u.change.id = id;
    rc = leader_step(s, &ev);
    if (rc == 0) {
        s->faults[SIM_F_REMOVE]++;
        sim_trace(s, "n%" PRIx64 " removal requested", id);
    }
    return rc;
}

int sim_replace(struct sim *s, unsigned old_slot)
{
    struct sim_node *old = &s->nodes[old_slot];
    struct raft_event ev;
    char addr[RAFT_ADDR_MAX];
    uint64_t id;
    int rc;

    if (s->n >= SIM_MAX_NODES)
        return RAFT_ETOOMANY;
    id = s->next_id;
    snprintf(addr, sizeof addr, "%s", old->address);
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_REPLACE;
    ev.u.change.id = id;
    ev.u.change.address = addr;
    ev.u.change.old_id = old->id;
    rc = leader_step(s, &ev);
    if (rc != 0)
        return rc;
    /* The machine was reset: the old identity is gone for good. */
    sim_crash(s, old_slot, 0);
    old->removed = true;
    s->next_id++;
    node_start(s, new_node(s, id, addr));
    s->faults[SIM_F_REPLACE]++;
    sim_trace(s, "n%" PRIx64 " replaces n%" PRIx64 " at %s", id, old->id, addr);
    return 0;
}

int sim_transfer(struct sim *s, uint64_t id)
{
    struct raft_event ev;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_TRANSFER;
    ev.u.transfer.to = id;
    rc = leader_step(s, &ev);
    if (rc == 0)
        s->faults[SIM_F_TRANSFER]++;
    return rc;
}

bool sim_is_member(const struct sim *s, uint64_t id)
{
    for (unsigned i = 0; i < s->config.n; i++)
        if (s->config.members[i].id == id)
            return true;
    return false;
}

void sim_stop_removed(struct sim *s)
{
    int l = sim_leader(s);
    const struct raft_config *c;

    if (l < 0)
        return;
    c = raft_config_committed(s->nodes[l].r);
    for (unsigned i = 0; i < s->n; i++) {
        struct sim_node *nd = &s->nodes[i];
        if (!nd->used || nd->removed || raft_config_find(c, nd->id) != NULL)
            continue;
        /* Only nodes that were members once: a node still joining is not in
         * the committed configuration yet either. */
        if (raft_config_find(&s->config, nd->id) != NULL)
            continue;
        nd->removed = true;
        sim_crash(s, i, 0);
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
                   disk_last(&nd->disk));
            continue;
        }
        raft_status(nd->r, &st);
        c = raft_config_get(nd->r);
        printf("  n%" PRIx64 " %s term %" PRIu64 " vote %" PRIx64 " leader %" PRIx64
               " commit %" PRIu64 " applied %" PRIu64 " last %" PRIu64 " snap %" PRIu64
               " config:",
               nd->id, raft_role_name(st.role), st.term, st.vote, st.leader_id,
               st.commit_index, st.applied_index, st.last_index, st.snapshot_index);
        for (unsigned k = 0; k < c->n; k++)
            printf(" n%" PRIx64 "%s", c->members[k].id,
                   c->members[k].role == RAFT_VOTER ? "" : "(nv)");
        printf("\n");
    }
}
