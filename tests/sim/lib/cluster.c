/* cluster.c: the in-memory cluster for raft tests (see cluster.h). */
#include "cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void tracef(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tracef(struct cluster *c, const char *fmt, ...)
{
    if (c->trace == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->trace(c->trace_ud, line);
}

static void violate(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violate(struct cluster *c, const char *fmt, ...)
{
    if (c->violation[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->violation, sizeof c->violation, fmt, ap);
    va_end(ap);
    tracef(c, "VIOLATION: %s", c->violation);
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t entry_hash(const struct raft_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = hash_bytes(h, &e->term, sizeof e->term);
    h = hash_bytes(h, &e->type, sizeof e->type);
    return hash_bytes(h, e->data.base, e->data.len);
}

static void *xmemdup(const void *p, size_t n)
{
    if (n == 0)
        return NULL;
    void *q = malloc(n);
    if (q == NULL)
        abort(); /* test harness: out of memory is fatal */
    memcpy(q, p, n);
    return q;
}

/* ---- messages ------------------------------------------------------------ */

static void msg_copy(struct raft_message *dst, const struct raft_message *src)
{
    *dst = *src;
    if (src->type == RAFT_MSG_APPEND && src->u.append.n_entries > 0) {
        unsigned n = src->u.append.n_entries;
        struct raft_entry *e = xmemdup(src->u.append.entries, n * sizeof *e);
        for (unsigned i = 0; i < n; i++)
            e[i].data.base = xmemdup(e[i].data.base, e[i].data.len);
        dst->u.append.entries = e;
    } else if (src->type == RAFT_MSG_APPEND) {
        dst->u.append.entries = NULL;
    }
    if (src->type == RAFT_MSG_SNAPSHOT) {
        struct raft_buffer *d = &dst->u.snapshot.snapshot.data;
        d->base = xmemdup(d->base, d->len);
    }
}

static void msg_free(struct raft_message *m)
{
    if (m->type == RAFT_MSG_APPEND && m->u.append.entries != NULL) {
        struct raft_entry *e = (struct raft_entry *)m->u.append.entries;
        for (unsigned i = 0; i < m->u.append.n_entries; i++)
            free(e[i].data.base);
        free(e);
    }
    if (m->type == RAFT_MSG_SNAPSHOT)
        free(m->u.snapshot.snapshot.data.base);
}

static void queue_push(struct cluster *c, const struct raft_message *m, uint64_t at)
{
    if (c->nq == c->capq) {
        c->capq = c->capq ? c->capq * 2 : 64;
        c->q = realloc(c->q, c->capq * sizeof *c->q);
        if (c->q == NULL)
            abort();
    }
    struct cl_msg *q = &c->q[c->nq++];
    q->at = at;
    q->seq = c->seq++;
    msg_copy(&q->m, m);
}

static size_t queue_min(const struct cluster *c)
{
    size_t best = 0;
    for (size_t i = 1; i < c->nq; i++)
        if (c->q[i].at < c->q[best].at ||
            (c->q[i].at == c->q[best].at && c->q[i].seq < c->q[best].seq))
            best = i;
    return best;
}

void cl_describe_msg(const struct raft_message *m, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "n%" PRIu64 "->n%" PRIu64 " %s term=%" PRIu64, m->from,
                     m->to, raft_msg_type_name(m->type), m->term);
    if (n < 0 || (size_t)n >= cap)
        return;
    buf += n;
    cap -= (size_t)n;
    switch (m->type) {
    case RAFT_MSG_APPEND: {
        const struct raft_msg_append *a = &m->u.append;
        n = snprintf(buf, cap, " prev=%" PRIu64 "/%" PRIu64 " commit=%" PRIu64,
                     a->prev_index, a->prev_term, a->commit);
        if (a->n_entries > 0 && n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, " entries=%" PRIu64 "..%" PRIu64,
                     a->prev_index + 1, a->prev_index + a->n_entries);
        break;
    }
    case RAFT_MSG_APPEND_RESULT: {
        const struct raft_msg_append_result *a = &m->u.append_result;
        if (a->rejected)
            snprintf(buf, cap,
                     " REJECT at=%" PRIu64 " last=%" PRIu64 " hint=%" PRIu64 "/%" PRIu64,
                     a->reject_index, a->last_index, a->conflict_index, a->conflict_term);
        else
            snprintf(buf, cap, " ok last=%" PRIu64, a->last_index);
        break;
    }
    case RAFT_MSG_VOTE:
        snprintf(buf, cap, "%s%s last=%" PRIu64 "/%" PRIu64,
                 m->u.vote.pre_vote ? " pre" : "", m->u.vote.transfer ? " transfer" : "",
                 m->u.vote.last_index, m->u.vote.last_term);
        break;
    case RAFT_MSG_VOTE_RESULT:
        snprintf(buf, cap, "%s %s", m->u.vote_result.pre_vote ? " pre" : "",
                 m->u.vote_result.granted ? "granted" : "rejected");
        break;
    case RAFT_MSG_SNAPSHOT:
        snprintf(buf, cap, " index=%" PRIu64 "/%" PRIu64, m->u.snapshot.snapshot.index,
                 m->u.snapshot.snapshot.term);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
}

/* ---- storage ------------------------------------------------------------- */

static void store_truncate(struct cl_store *s, uint64_t from)
{
    while (s->n > 0 && s->ents[s->n - 1].index >= from) {
        s->n--;
        free(s->ents[s->n].data.base);
    }
}

static void store_compact(struct cl_store *s, uint64_t to)
{
    size_t k = 0;
    while (k < s->n && s->ents[k].index <= to)
        free(s->ents[k++].data.base);
    memmove(s->ents, s->ents + k, (s->n - k) * sizeof *s->ents);
    s->n -= k;
}

static void store_append(struct cl_store *s, const struct raft_entry *e)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->ents = realloc(s->ents, s->cap * sizeof *s->ents);
        if (s->ents == NULL)
            abort();
    }
    struct raft_entry *d = &s->ents[s->n++];
    *d = *e;
    d->data.base = xmemdup(e->data.base, e->data.len);
}

static void store_free(struct cl_store *s)
{
    store_truncate(s, 0);
    free(s->ents);
    free(s->snap.data.base);
    memset(s, 0, sizeof *s);
}

static const struct raft_entry *store_get(const struct cl_store *s, uint64_t index)
{
    if (s->n == 0 || index < s->ents[0].index || index > s->ents[s->n - 1].index)
        return NULL;
    return &s->ents[index - s->ents[0].index];
}

/* Persist, in the order raft.h prescribes: term+vote, snapshot, truncate,
 * append, compact. */
static void persist(struct cl_node *nd, const struct raft_update *u)
{
    struct cl_store *s = &nd->store;
    if (u->persist_term_vote) {
        s->term = u->term;
        s->vote = u->vote;
    }
    if (u->snapshot != NULL) {
        free(s->snap.data.base);
        s->snap = *u->snapshot;
        s->snap.data.base = xmemdup(u->snapshot->data.base, u->snapshot->data.len);
    }
    if (u->truncate_from != 0)
        store_truncate(s, u->truncate_from);
    for (unsigned i = 0; i < u->n_entries; i++)
        store_append(s, &u->entries[i]);
    if (u->compact_to != 0)
        store_compact(s, u->compact_to);
}

/* ---- invariants ---------------------------------------------------------- */

static void grow_terms(struct cluster *c, uint64_t term)
{
    if (term < c->n_terms)
        return;
    size_t n = term + 64;
    c->leader_of_term = realloc(c->leader_of_term, n * sizeof(uint64_t));
    c->commit_of_term = realloc(c->commit_of_term, n * sizeof(uint64_t));
    if (c->leader_of_term == NULL || c->commit_of_term == NULL)
        abort();
    memset(c->leader_of_term + c->n_terms, 0, (n - c->n_terms) * sizeof(uint64_t));
    memset(c->commit_of_term + c->n_terms, 0, (n - c->n_terms) * sizeof(uint64_t));
    c->n_terms = n;
}

static void note_leader(struct cluster *c, struct cl_node *nd, uint64_t term,
                        bool elected, uint64_t commit)
{
    grow_terms(c, term);
    uint64_t *l = &c->leader_of_term[term];
    if (*l != 0 && *l != nd->id)
        violate(c,
                "election safety: n%" PRIu64 " and n%" PRIu64 " both led term %" PRIu64,
                *l, nd->id, term);
    if (*l == 0)
        c->elections_won++;
    *l = nd->id;
    if (commit > c->commit_of_term[term])
        c->commit_of_term[term] = commit;
    if (!elected)
        return;
    /* Leader completeness: whatever a leader of an earlier term committed is
     * in the new leader's log (by Log Matching, checking each index). */
    uint64_t upto = 0;
    for (uint64_t t = 0; t < term; t++)
        if (c->commit_of_term[t] > upto)
            upto = c->commit_of_term[t];
    for (uint64_t index = nd->store.snap.index + 1; index <= upto; index++) {
        if (index > c->n_applied || c->applied[index - 1].term == 0)
            continue;
        const struct raft_entry *e = store_get(&nd->store, index);
        if (e == NULL || e->term != c->applied[index - 1].term)
            violate(c,
                    "leader completeness: n%" PRIu64 " leads term %" PRIu64
                    " without committed entry %" PRIu64,
                    nd->id, term, index);
    }
}

static void note_applied(struct cluster *c, struct cl_node *nd,
                         const struct raft_entry *e)
{
    if (e->index != nd->applied + 1)
        violate(c, "n%" PRIu64 " applied %" PRIu64 " after %" PRIu64, nd->id, e->index,
                nd->applied);
    nd->applied = e->index;
    uint64_t h = entry_hash(e);
    nd->app_hash = hash_bytes(nd->app_hash, &h, sizeof h);
    if (e->index > c->n_applied) {
        size_t n = e->index + 256;
        c->applied = realloc(c->applied, n * sizeof *c->applied);
        if (c->applied == NULL)
            abort();
        memset(c->applied + c->n_applied, 0, (n - c->n_applied) * sizeof *c->applied);
        c->n_applied = n;
    }
    struct cl_applied *a = &c->applied[e->index - 1];
    if (a->term == 0) {
        a->term = e->term;
        a->hash = h;
    } else if (a->term != e->term || a->hash != h) {
        violate(c,
                "state machine safety: n%" PRIu64 " applied a different entry %" PRIu64,
                nd->id, e->index);
    }
}

void cl_check_logs(struct cluster *c)
{
    for (unsigned a = 0; a < c->n; a++) {
        for (unsigned b = a + 1; b < c->n; b++) {
            const struct cl_store *x = &c->nodes[a].store, *y = &c->nodes[b].store;
            if (x->n == 0 || y->n == 0)
                continue;
            /* Log Matching: if both hold an entry with the same index and
             * term, the logs are identical up to it. */
            bool matched = false;
            for (size_t i = x->n; i-- > 0;) {
                const struct raft_entry *ex = &x->ents[i];
                const struct raft_entry *ey = store_get(y, ex->index);
                if (ey == NULL)
                    continue;
                if (!matched && ey->term == ex->term)
                    matched = true;
                if (matched &&
                    (ey->term != ex->term || entry_hash(ex) != entry_hash(ey))) {
                    violate(c, "log matching: n%" PRIu64 " and n%" PRIu64 " at %" PRIu64,
                            c->nodes[a].id, c->nodes[b].id, ex->index);
                    return;
                }
            }
        }
    }
}

bool cl_ok(const struct cluster *c)
{
    return c->violation[0] == '\0';
}

/* ---- stepping ------------------------------------------------------------ */

static void trace_status(struct cluster *c, struct cl_node *nd,
                         const struct raft_update *u)
{
    if (!u->role_changed && !u->term_changed && !u->leader_changed)
        return;
    if (u->leader_id != 0)
        tracef(c, "n%" PRIu64 ": %s term=%" PRIu64 " leader=n%" PRIu64, nd->id,
               raft_role_name(u->role), u->current_term, u->leader_id);
    else
        tracef(c, "n%" PRIu64 ": %s term=%" PRIu64 " leader=none", nd->id,
               raft_role_name(u->role), u->current_term);
}

int cl_step(struct cluster *c, unsigned i, struct raft_event *ev)
{
    struct cl_node *nd = &c->nodes[i];
    if (nd->r == NULL)
        return RAFT_ESTATE;
    ev->now = c->now;
    struct raft_update u;
    enum raft_role was = nd->role;
    uint64_t was_term = nd->term;
    int rc = raft_step(nd->r, ev, &u);
    /* Leader Append-Only (figure 3): a leader never deletes its entries. */
    if (was == RAFT_LEADER && u.current_term == was_term &&
        (u.truncate_from != 0 || u.snapshot != NULL) && ev->type != RAFT_EV_SNAPSHOT)
        violate(c, "leader append-only: n%" PRIu64 " truncated its log", nd->id);

    /* 1. persist (synchronously: durable at once) */
    persist(nd, &u);
    /* status and invariants */
    trace_status(c, nd, &u);
    nd->role = u.role;
    nd->term = u.current_term;
    nd->leader = u.leader_id;
    if (u.role == RAFT_LEADER)
        note_leader(c, nd, u.current_term, u.role_changed, u.commit_index);
    /* 3. apply */
    if (u.restore != NULL) {
        nd->applied = u.restore->index;
        nd->app_hash = hash_bytes(0, u.restore->data.base, u.restore->data.len);
    }
    for (unsigned k = 0; k < u.n_committed; k++)
        note_applied(c, nd, &u.committed[k]);
    /* 2. send: only now that step 1 is durable */
    for (unsigned k = 0; k < u.n_messages; k++) {
        const struct raft_message *m = &u.messages[k];
        uint64_t at = c->now + c->latency_ms;
        if (c->jitter_ms > 0)
            at += rng_next(&c->rng) % c->jitter_ms;
        queue_push(c, m, at);
        if (c->dup_pct > 0 && rng_next(&c->rng) % 100 < c->dup_pct)
            queue_push(c, m, at + rng_next(&c->rng) % (c->jitter_ms + 5));
    }
    nd->deadline = u.deadline;
    /* 5. report durability of the appended entries */
    if (u.n_entries > 0) {
        struct raft_event pe = {.type = RAFT_EV_PERSISTED};
        pe.u.persisted.index = u.entries[u.n_entries - 1].index;
        pe.u.persisted.term = u.entries[u.n_entries - 1].term;
        cl_step(c, i, &pe);
    }
    return rc;
}

static int start_node(struct cluster *c, unsigned i)
{
    struct cl_node *nd = &c->nodes[i];
    int rc = raft_new(&nd->opts, &nd->r);
    if (rc != 0)
        return rc;
    nd->applied = 0;
    nd->app_hash = 0;
    nd->role = RAFT_FOLLOWER;
    nd->leader = 0;
    struct raft_event ev = {.type = RAFT_EV_START};
    ev.u.start.term = nd->store.term;
    ev.u.start.vote = nd->store.vote;
    ev.u.start.snapshot = nd->store.snap.index > 0 ? &nd->store.snap : NULL;
    ev.u.start.entries = nd->store.ents;
    ev.u.start.n_entries = (unsigned)nd->store.n;
    return cl_step(c, i, &ev);
}

static void node_setup(struct cluster *c, unsigned i, uint64_t id, const char *address)
{
    struct cl_node *nd = &c->nodes[i];
    memset(nd, 0, sizeof *nd);
    nd->id = id;
    snprintf(nd->address, sizeof nd->address, "%s", address);
    nd->opts = c->tmpl;
    nd->opts.id = id;
    nd->opts.cluster_id = c->cluster_id;
}

int cl_init(struct cluster *c, unsigned n, uint64_t seed, const struct raft_options *o)
{
    memset(c, 0, sizeof *c);
    if (n == 0 || n > CL_MAX_NODES)
        return RAFT_EINVAL;
    if (o != NULL)
        c->tmpl = *o;
    else
        raft_options_default(&c->tmpl);
    c->tmpl.seed = seed;
    c->cluster_id = 0xc1u;
    c->latency_ms = 1;
    c->rng = seed * 0x9e3779b97f4a7c15ull + 1;
    c->n = n;

    struct raft_config cfg;
    raft_config_init(&cfg);
    for (unsigned i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "10.0.0.%u:5224", i + 1);
        node_setup(c, i, i + 1, addr);
        raft_config_add(&cfg, i + 1, addr, RAFT_VOTER);
    }
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    int rc = raft_config_encode(&cfg, buf, sizeof buf, &len);
    if (rc != 0)
        return rc;
    struct raft_entry boot = {.index = 1, .term = 1, .type = RAFT_ENTRY_CONFIG};
    boot.data.base = buf;
    boot.data.len = len;
    for (unsigned i = 0; i < n; i++) {
        c->nodes[i].store.term = 1;
        store_append(&c->nodes[i].store, &boot);
    }
    for (unsigned i = 0; i < n; i++)
        if ((rc = start_node(c, i)) != 0)
            return rc;
    return 0;
}

void cl_free(struct cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        raft_free(c->nodes[i].r);
        store_free(&c->nodes[i].store);
    }
    for (size_t k = 0; k < c->nq; k++)
        msg_free(&c->q[k].m);
    free(c->q);
    free(c->leader_of_term);
    free(c->commit_of_term);
    free(c->applied);
    memset(c, 0, sizeof *c);
}

int cl_add_node(struct cluster *c, uint64_t id, const char *address)
{
    if (c->n >= CL_MAX_NODES)
        return RAFT_ETOOMANY;
    unsigned i = c->n++;
    node_setup(c, i, id, address);
    int rc = start_node(c, i);
    return rc != 0 ? rc : (int)i;
}

int cl_slot(const struct cluster *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->nodes[i].id == id)
            return (int)i;
    return -1;
}

void cl_crash(struct cluster *c, unsigned i)
{
    struct cl_node *nd = &c->nodes[i];
    raft_free(nd->r);
    nd->r = NULL;
    nd->deadline = 0;
    nd->role = RAFT_STOPPED;
    tracef(c, "n%" PRIu64 ": crashed", nd->id);
}

int cl_restart(struct cluster *c, unsigned i)
{
    if (c->nodes[i].r != NULL)
        cl_crash(c, i);
    tracef(c, "n%" PRIu64 ": restarted", c->nodes[i].id);
    return start_node(c, i);
}

/* ---- network and time ---------------------------------------------------- */

static void deliver(struct cluster *c, size_t k)
{
    struct cl_msg q = c->q[k];
    c->q[k] = c->q[--c->nq];
    char desc[256];
    int to = cl_slot(c, q.m.to);
    int from = cl_slot(c, q.m.from);
    bool drop = to < 0 || c->nodes[to].r == NULL || (from >= 0 && c->cut[from][to]) ||
                (c->drop_pct > 0 && rng_next(&c->rng) % 100 < c->drop_pct);
    if (c->trace_msgs) {
        cl_describe_msg(&q.m, desc, sizeof desc);
        tracef(c, "%s%s", desc, drop ? " DROPPED" : "");
    }
    if (drop) {
        c->dropped++;
    } else {
        c->delivered++;
        struct raft_event ev = {.type = RAFT_EV_RECEIVE};
        ev.u.receive.msg = &q.m;
        int rc = cl_step(c, (unsigned)to, &ev);
        if (rc != 0)
            tracef(c, "n%" PRIu64 ": receive: %s", c->nodes[to].id, raft_errname(rc));
    }
    msg_free(&q.m);
}

bool cl_deliver_one(struct cluster *c)
{
    if (c->nq == 0)
        return false;
    deliver(c, queue_min(c));
    return true;
}

bool cl_stabilize(struct cluster *c, unsigned max)
{
    for (unsigned k = 0; k < max; k++)
        if (!cl_deliver_one(c))
            return true;
    return c->nq == 0;
}

static void tick(struct cluster *c, unsigned i)
{
    struct raft_event ev = {.type = RAFT_EV_TICK};
    cl_step(c, i, &ev);
    struct cl_node *nd = &c->nodes[i];
    if (nd->deadline != 0 && nd->deadline <= c->now)
        nd->deadline = c->now + 1; /* never spin on a stale deadline */
}

void cl_run(struct cluster *c, uint64_t ms)
{
    uint64_t end = c->now + ms;
    for (;;) {
        uint64_t t = UINT64_MAX;
        size_t qk = 0;
        int node = -1;
        if (c->nq > 0) {
            qk = queue_min(c);
            t = c->q[qk].at;
        }
        for (unsigned i = 0; i < c->n; i++) {
            const struct cl_node *nd = &c->nodes[i];
            if (nd->r != NULL && nd->deadline != 0 && nd->deadline < t) {
                t = nd->deadline;
                node = (int)i;
            }
        }
        if (t > end)
            break;
        if (t > c->now)
            c->now = t;
        if (node >= 0)
            tick(c, (unsigned)node);
        else
            deliver(c, qk);
    }
    c->now = end;
}

void cl_fire_timer(struct cluster *c, unsigned i)
{
    struct cl_node *nd = &c->nodes[i];
    if (nd->r == NULL)
        return;
    if (nd->deadline > c->now)
        c->now = nd->deadline;
    tick(c, i);
}

void cl_isolate(struct cluster *c, unsigned i)
{
    for (unsigned j = 0; j < CL_MAX_NODES; j++) {
        if (j == i)
            continue;
        c->cut[i][j] = c->cut[j][i] = true;
    }
}

void cl_heal(struct cluster *c)
{
    memset(c->cut, 0, sizeof c->cut);
}

void cl_cut(struct cluster *c, unsigned from, unsigned to, bool cut)
{
    c->cut[from][to] = cut;
}

int cl_leader(const struct cluster *c)
{
    int best = -1;
    for (unsigned i = 0; i < c->n; i++) {
        const struct cl_node *nd = &c->nodes[i];
        if (nd->r != NULL && nd->role == RAFT_LEADER &&
            (best < 0 || nd->term > c->nodes[best].term))
            best = (int)i;
    }
    return best;
}

int cl_submit(struct cluster *c, unsigned i, const char *data, uint64_t *index)
{
    struct raft_event ev = {.type = RAFT_EV_SUBMIT};
    ev.u.submit.type = RAFT_ENTRY_NORMAL;
    ev.u.submit.data.base = (void *)data;
    ev.u.submit.data.len = strlen(data);
    if (c->nodes[i].r == NULL)
        return RAFT_ESTATE;
    int rc = cl_step(c, i, &ev);
    if (index != NULL) {
        struct raft_status st;
        raft_status(c->nodes[i].r, &st);
        *index = rc == 0 ? st.last_index : 0;
    }
    return rc;
}

void cl_inject(struct cluster *c, const struct raft_message *msg)
{
    queue_push(c, msg, c->now);
}
