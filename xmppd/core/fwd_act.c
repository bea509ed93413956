/* fwd_act.c: the update fwd lists for its caller (fwd_take, fwd.h):
 * deliveries and conflicts, in order, handed over as one list that stays
 * valid while the caller carries it out and calls fwd again.
 *
 * Two lists swap: fwd lists into f->acts; fwd_take moves it to f->taken
 * and starts f->acts anew, keeping both allocations, so that in steady
 * state listing an action allocates nothing. */
#include "fwd_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* acts_slot returns a new act at the end of l (the caller fills all of
 * it), or NULL (no memory). */
static struct fwd_act *acts_slot(struct fwd_acts *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? 2 * l->cap : 16;
        struct fwd_act *a = realloc(l->a, cap * sizeof *a);
        bool *own;

        if (a == NULL)
            return NULL;
        l->a = a;
        own = realloc(l->own, cap * sizeof *own);
        if (own == NULL)
            return NULL;
        l->own = own;
        l->cap = cap;
    }
    l->own[l->n] = false;
    return &l->a[l->n];
}

/* arena_put copies len bytes of s and a NUL to the arena; *off gets where.
 * 0/XE_NOMEM. */
static int arena_put(struct buf *b, const char *s, size_t len, uintptr_t *off)
{
    char nul = '\0';

    *off = b->len;
    if (buf_reserve(b, len + 1) < 0)
        return XE_NOMEM;
    buf_append(b, s, len);
    buf_append(b, &nul, 1);
    return 0;
}

int fwd__act_deliver(struct fwd *f, void *dest, const char *from, const char *to,
                     const char *xml, size_t len, bool copy)
{
    struct fwd_acts *l = &f->acts;
    struct fwd_act *a = acts_slot(l);
    size_t mark = l->arena.len;
    uintptr_t o_from, o_to, o_xml;

    if (a == NULL)
        return XE_NOMEM;
    *a = (struct fwd_act){.kind = FWD_ACT_DELIVER, .dest = dest, .len = len};
    if (!copy) {
        a->from = from;
        a->to = to;
        a->xml = xml;
    } else {
        if (arena_put(&l->arena, from, strlen(from), &o_from) < 0 ||
            arena_put(&l->arena, to, strlen(to), &o_to) < 0 ||
            arena_put(&l->arena, xml, len, &o_xml) < 0) {
            l->arena.len = mark;
            return XE_NOMEM;
        }
        a->from = (const char *)o_from;
        a->to = (const char *)o_to;
        a->xml = (const char *)o_xml;
        l->own[l->n] = true;
    }
    l->n++;
    return 0;
}

int fwd__act_conflict(struct fwd *f, const char *name, uint64_t sid)
{
    struct fwd_acts *l = &f->acts;
    struct fwd_act *a = acts_slot(l);
    uintptr_t o_name;

    if (a == NULL || arena_put(&l->arena, name, strlen(name), &o_name) < 0)
        return XE_NOMEM;
    *a = (struct fwd_act){
        .kind = FWD_ACT_CONFLICT, .name = (const char *)o_name, .sid = sid};
    l->own[l->n] = true;
    l->n++;
    return 0;
}

/* own_ptr turns an arena offset stored in a pointer field into the
 * pointer. */
static const char *own_ptr(const struct buf *b, const char *off)
{
    return b->data + (uintptr_t)off;
}

void fwd_take(struct fwd *f, struct fwd_update *u)
{
    struct fwd_acts t;

    /* Most takes find nothing (the caller takes after every call, and
     * until a take is empty): nothing to swap. */
    if (f->acts.n == 0) {
        u->acts = NULL;
        u->n = 0;
        return;
    }
    t = f->taken;
    f->taken = f->acts;
    f->acts = t;
    f->acts.n = 0;
    buf_reset(&f->acts.arena);
    /* The arena no longer grows: offsets become pointers. */
    for (size_t i = 0; i < f->taken.n; i++) {
        struct fwd_act *a = &f->taken.a[i];
        if (!f->taken.own[i])
            continue;
        if (a->kind == FWD_ACT_DELIVER) {
            a->from = own_ptr(&f->taken.arena, a->from);
            a->to = own_ptr(&f->taken.arena, a->to);
            a->xml = own_ptr(&f->taken.arena, a->xml);
        } else {
            a->name = own_ptr(&f->taken.arena, a->name);
        }
    }
    u->acts = f->taken.a;
    u->n = f->taken.n;
}

static void acts_free(struct fwd_acts *l)
{
    free(l->a);
    free(l->own);
    buf_free(&l->arena);
    memset(l, 0, sizeof *l);
}

void fwd__acts_free(struct fwd *f)
{
    acts_free(&f->acts);
    acts_free(&f->taken);
}
