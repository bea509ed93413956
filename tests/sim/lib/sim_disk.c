/* sim_disk.c: the simulated nodes' stable storage: an in-memory model that
 * follows raft.h's persist order and feeds the log-matching check, and,
 * when the run asks for it, the real file store (raft/raft_store.h) kept in step
 * with the model and checked against it at every restart. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfs.h"
#include "sim_int.h"

static void *xmemdup(const void *p, size_t n)
{
    void *q;

    if (n == 0)
        return NULL;
    q = malloc(n);
    if (q == NULL)
        abort(); /* test harness: out of memory is fatal */
    memcpy(q, p, n);
    return q;
}

/* ---- in-memory disk -------------------------------------------------------- */

void sim__disk_free(struct sim_disk *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->ents[i].data.base);
    free(d->ents);
    free(d->chain);
    free(d->snap.data.base);
    memset(d, 0, sizeof *d);
}

uint64_t sim__disk_last(const struct sim_disk *d)
{
    if (d->n > 0)
        return d->first + d->n - 1;
    return d->has_snap ? d->snap.index : 0;
}

/* disk_chain_at sets *chain to the prefix chain at index; false if unknown. */
bool sim__disk_chain_at(const struct sim_disk *d, uint64_t index, uint64_t *chain)
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

/* disk_config_recompute sets d->cfg from the last config entry on disk,
 * or from the snapshot. */
static void disk_config_recompute(struct sim_disk *d)
{
    for (size_t i = d->n; i > 0; i--) {
        const struct raft_entry *e = &d->ents[i - 1];
        if (d->has_snap && e->index <= d->snap.index)
            break; /* covered by the snapshot (stale ones included) */
        if (e->type == RAFT_ENTRY_CONFIG &&
            raft_config_decode(e->data.base, e->data.len, &d->cfg) == 0)
            return;
    }
    if (d->has_snap)
        d->cfg = d->snap.config;
    else
        raft_config_init(&d->cfg);
}

void sim__disk_truncate(struct sim_disk *d, uint64_t from)
{
    bool config = false;

    while (d->n > 0 && d->first + d->n - 1 >= from) {
        d->n--;
        config |= d->ents[d->n].type == RAFT_ENTRY_CONFIG;
        free(d->ents[d->n].data.base);
    }
    if (config)
        disk_config_recompute(d);
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

void sim__disk_append(struct sim *s, struct sim_node *nd, const struct raft_entry *e)
{
    struct sim_disk *d = &nd->disk;
    uint64_t prev;

    if (d->n > 0 && e->index < d->first + d->n)
        sim__disk_truncate(d, e->index); /* overwrite: the conflict rule */
    if (d->n > 0 && e->index != d->first + d->n) {
        if (d->has_snap && e->index == d->snap.index + 1 && e->index > d->first + d->n) {
            sim__disk_truncate(d, 0); /* stale entries behind a newer snapshot */
        } else {
            sim_check_fail(&s->check,
                           "n%" PRIx64 " asked to persist entry %" PRIu64
                           " that does not follow its log (last %" PRIu64 ")",
                           nd->id, e->index, d->first + d->n - 1);
            return;
        }
    }
    if (!sim__disk_chain_at(d, e->index - 1, &prev)) {
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
    if (e->type == RAFT_ENTRY_CONFIG && !(d->has_snap && e->index <= d->snap.index))
        raft_config_decode(e->data.base, e->data.len, &d->cfg);
}

/* Snapshot data of the simulated application: applied index and chain. */
void sim__snap_data_put(unsigned char out[16], uint64_t index, uint64_t chain)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(index >> (8 * i));
        out[8 + i] = (unsigned char)(chain >> (8 * i));
    }
}

bool sim__snap_data_get(const struct raft_buffer *b, uint64_t *index, uint64_t *chain)
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
void sim__persist(struct sim *s, struct sim_node *nd, const struct raft_update *u,
                  int ops)
{
    struct sim_disk *d = &nd->disk;
    uint64_t idx, chain;

    if (ops-- > 0 && u->persist_term_vote) {
        /* One vote per term, and terms never go back (figure 2). */
        if (u->term < d->term ||
            (u->term == d->term && d->vote != 0 && u->vote != d->vote))
            sim_check_fail(&s->check,
                           "n%" PRIx64 " persisted term %" PRIu64 " vote n%" PRIx64
                           " over term %" PRIu64 " vote n%" PRIx64,
                           nd->id, u->term, u->vote, d->term, d->vote);
        d->term = u->term;
        d->vote = u->vote;
    }
    if (ops-- > 0 && u->snapshot != NULL) {
        if (!sim__snap_data_get(&u->snapshot->data, &idx, &chain) ||
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
        disk_config_recompute(d);
        /* A snapshot holds applied state only: it must agree with what was
         * applied at its index anywhere. */
        sim_check_applied(&s->check, nd->id, idx, chain);
    }
    if (ops-- > 0) {
        if (u->truncate_from != 0)
            sim__disk_truncate(d, u->truncate_from);
        for (unsigned i = 0; i < u->n_entries; i++)
            sim__disk_append(s, nd, &u->entries[i]);
    }
    if (ops-- > 0 && u->compact_to != 0)
        disk_drop_prefix(d,
                         u->compact_to < d->snap.index ? u->compact_to : d->snap.index);
}

/* store_mirror carries out the same first ops persist steps on the real
 * store. */
void sim__store_mirror(struct sim *s, struct sim_node *nd, const struct raft_update *u,
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
int sim__store_reopen(struct sim *s, struct sim_node *nd, struct store_loaded *l)
{
    char path[512];
    const struct sim_disk *d = &nd->disk;
    size_t skip = 0;
    int rc;

    sim_store_sys = store_sys_posix;
    sim_store_sys.fsync = nosync;
    store_close(nd->st);
    nd->st = NULL;
    if (s->store_pfs) {
        /* The power-loss model: fsync is real there. */
        snprintf(path, sizeof path, "/pfs/n%" PRIx64, nd->id);
        rc = store_open(path, &pfs_sys, &nd->st, l);
    } else {
        snprintf(path, sizeof path, "%s/n%" PRIx64, s->store_dir, nd->id);
        rc = store_open(path, &sim_store_sys, &nd->st, l);
    }
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

/* store_boot writes the bootstrap state (term 1, entry boot) through the
 * node's real store. */
void sim__store_boot(struct sim *s, struct sim_node *nd, const struct raft_entry *boot)
{
    struct store_loaded l;
    struct sim_disk saved = nd->disk;

    memset(&nd->disk, 0, sizeof nd->disk); /* the store starts empty */
    if (sim__store_reopen(s, nd, &l) == 0) {
        store_loaded_free(&l);
        if (store_save_meta(nd->st, 1, 0) != 0 || store_append(nd->st, boot, 1) != 0)
            sim_check_fail(&s->check, "bootstrap through the store failed");
    }
    nd->disk = saved;
}
