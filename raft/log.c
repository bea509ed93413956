/* log.c: the core's in-memory copy of the log, with compaction.  Storage
 * keeps its own durable copy; this one serves replication and apply. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void raft__log_init(struct raft__log *l)
{
    memset(l, 0, sizeof *l);
}

static void free_range(struct raft__log *l, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        free(l->e[i].data.base);
}

void raft__log_free(struct raft__log *l)
{
    free_range(l, 0, l->n);
    free(l->e);
    raft__log_init(l);
}

uint64_t raft__log_last(const struct raft__log *l)
{
    return l->offset + l->n;
}

uint64_t raft__log_last_term(const struct raft__log *l)
{
    return l->n > 0 ? l->e[l->n - 1].term : l->offset_term;
}

uint64_t raft__log_term(const struct raft__log *l, uint64_t index)
{
    if (index == l->offset)
        return l->offset_term;
    if (index < l->offset || index > raft__log_last(l))
        return 0;
    return l->e[index - l->offset - 1].term;
}

struct raft_entry *raft__log_get(const struct raft__log *l, uint64_t index)
{
    if (index <= l->offset || index > raft__log_last(l))
        return NULL;
    return &l->e[index - l->offset - 1];
}

int raft__log_append(struct raft__log *l, uint64_t term, enum raft_entry_type type,
                     const struct raft_buffer *data)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct raft_entry *e = realloc(l->e, cap * sizeof *e);
        if (e == NULL)
            return RAFT_ENOMEM;
        l->e = e;
        l->cap = cap;
    }
    struct raft_entry *e = &l->e[l->n];
    memset(e, 0, sizeof *e);
    if (data != NULL && data->len > 0) {
        e->data.base = malloc(data->len);
        if (e->data.base == NULL)
            return RAFT_ENOMEM;
        memcpy(e->data.base, data->base, data->len);
        e->data.len = data->len;
    }
    e->index = raft__log_last(l) + 1;
    e->term = term;
    e->type = type;
    l->n++;
    return 0;
}

void raft__log_truncate(struct raft__log *l, uint64_t from)
{
    if (from <= l->offset)
        from = l->offset + 1;
    if (from > raft__log_last(l))
        return;
    size_t keep = (size_t)(from - l->offset - 1);
    free_range(l, keep, l->n);
    l->n = keep;
}

void raft__log_compact(struct raft__log *l, uint64_t to)
{
    if (to <= l->offset)
        return;
    if (to > raft__log_last(l))
        to = raft__log_last(l);
    size_t drop = (size_t)(to - l->offset);
    uint64_t term = raft__log_term(l, to);
    free_range(l, 0, drop);
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof *l->e);
    l->n -= drop;
    l->offset = to;
    l->offset_term = term;
}

void raft__log_reset(struct raft__log *l, uint64_t index, uint64_t term)
{
    free_range(l, 0, l->n);
    l->n = 0;
    l->offset = index;
    l->offset_term = term;
}
