/* sim_check.c: global tracking of Raft's safety properties (sim_check.h). */
#include "sim_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        abort(); /* test harness: out of memory is fatal */
    return q;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

uint64_t sim_chain(uint64_t prev, const struct raft_entry *e)
{
    uint64_t h = mix(prev, e->index);
    const unsigned char *b = e->data.base;

    h = mix(h, e->term);
    h = mix(h, (uint64_t)e->type);
    for (size_t i = 0; i < e->data.len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    h = mix(h, e->data.len);
    return h ? h : 1; /* 0 means "unknown" in the tables */
}

void sim_check_init(struct sim_check *c)
{
    memset(c, 0, sizeof *c);
}

void sim_check_free(struct sim_check *c)
{
    free(c->leader_of_term);
    free(c->applied);
    free(c->tab);
    memset(c, 0, sizeof *c);
}

bool sim_check_failed(const struct sim_check *c)
{
    return c->violation[0] != '\0';
}

void sim_check_fail(struct sim_check *c, const char *fmt, ...)
{
    va_list ap;

    if (c->violation[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(c->violation, sizeof c->violation, fmt, ap);
    va_end(ap);
}

void sim_check_leader(struct sim_check *c, uint64_t id, uint64_t term)
{
    if (term >= c->n_terms) {
        size_t n = (size_t)term * 2 + 16;
        c->leader_of_term = xrealloc(c->leader_of_term, n * sizeof *c->leader_of_term);
        memset(c->leader_of_term + c->n_terms, 0,
               (n - c->n_terms) * sizeof *c->leader_of_term);
        c->n_terms = n;
    }
    if (c->leader_of_term[term] == 0) {
        c->leader_of_term[term] = id;
        c->elections++;
    } else if (c->leader_of_term[term] != id) {
        sim_check_fail(
            c, "election safety: n%" PRIx64 " and n%" PRIx64 " both led term %" PRIu64,
            c->leader_of_term[term], id, term);
    }
}

static size_t slot_of(uint64_t index, uint64_t term, size_t cap)
{
    return (size_t)(mix(index, term) & (cap - 1));
}

static void tab_grow(struct sim_check *c)
{
    struct sim_check_slot *old = c->tab;
    size_t old_cap = c->tab_cap;

    c->tab_cap = old_cap ? old_cap * 2 : 1024;
    c->tab = calloc(c->tab_cap, sizeof *c->tab);
    if (c->tab == NULL)
        abort();
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index == 0)
            continue;
        size_t s = slot_of(old[i].index, old[i].term, c->tab_cap);
        while (c->tab[s].index != 0)
            s = (s + 1) & (c->tab_cap - 1);
        c->tab[s] = old[i];
    }
    free(old);
}

void sim_check_persisted(struct sim_check *c, uint64_t id, uint64_t index, uint64_t term,
                         uint64_t chain)
{
    size_t s;

    if (c->tab_n * 2 >= c->tab_cap)
        tab_grow(c);
    s = slot_of(index, term, c->tab_cap);
    while (c->tab[s].index != 0) {
        if (c->tab[s].index == index && c->tab[s].term == term) {
            if (c->tab[s].chain != chain)
                sim_check_fail(c,
                               "log matching: n%" PRIx64 " persisted index %" PRIu64
                               " term %" PRIu64
                               " with a prefix that differs from another "
                               "node's",
                               id, index, term);
            return;
        }
        s = (s + 1) & (c->tab_cap - 1);
    }
    c->tab[s].index = index;
    c->tab[s].term = term;
    c->tab[s].chain = chain;
    c->tab_n++;
}

void sim_check_applied(struct sim_check *c, uint64_t id, uint64_t index, uint64_t chain)
{
    if (index == 0)
        return;
    if (index > c->cap_applied) {
        size_t n = (size_t)index * 2 + 64;
        c->applied = xrealloc(c->applied, n * sizeof *c->applied);
        memset(c->applied + c->cap_applied, 0, (n - c->cap_applied) * sizeof *c->applied);
        c->cap_applied = n;
    }
    if (c->applied[index - 1] == 0) {
        c->applied[index - 1] = chain;
    } else if (c->applied[index - 1] != chain) {
        sim_check_fail(c,
                       "state machine safety: n%" PRIx64 " applied a different entry at "
                       "index %" PRIu64,
                       id, index);
    }
    if (index > c->n_applied)
        c->n_applied = (size_t)index;
}

uint64_t sim_check_applied_max(const struct sim_check *c, uint64_t *chain)
{
    *chain = c->n_applied ? c->applied[c->n_applied - 1] : 0;
    return c->n_applied;
}

uint64_t sim_check_applied_chain(const struct sim_check *c, uint64_t index)
{
    if (index == 0 || index > c->n_applied)
        return 0;
    return c->applied[index - 1];
}
