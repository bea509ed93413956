/* fwd_act.c: the update fwd lists for its caller (fwd_take, fwd.h):
 * deliveries and conflicts, in order, handed over as one list that stays
 * valid while the caller carries it out and calls fwd again, and the
 * outcomes of its deliveries, known once the caller is back for the next
 * take (fwd_undelivered, fwd__settle).
 *
 * Two lists take turns: fwd lists into one; fwd_take hands it over and
 * starts the other anew, keeping both allocations, so that in steady
 * state listing an action allocates nothing and a take moves no memory
 * (the holder of a forwarded stanza lists and takes one per stanza). */
#include "fwd_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "never.h"

/* acts_grow makes room for one more act in l.  0/XE_NOMEM. */
static int acts_grow(struct fwd_acts *l)
{
    size_t cap = l->cap != 0 ? 2 * l->cap : 16;
    struct fwd_act *a = realloc(l->a, cap * sizeof *a);
    struct fwd_note *note;

    if (a == NULL)
        return XE_NOMEM;
    l->a = a;
    note = realloc(l->note, cap * sizeof *note);
    if (note == NULL)
        return XE_NOMEM;
    l->note = note;
    l->cap = cap;
    return 0;
}

/* acts_slot returns a new act at the end of l (the caller fills all of
 * it and note[n]), or NULL (no memory). */
static inline struct fwd_act *acts_slot(struct fwd_acts *l)
{
    if (l->n == l->cap && acts_grow(l) < 0)
        return NULL;
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
                     const char *xml, size_t len, bool copy, enum fwd_src src,
                     uint32_t peer, uint64_t inc, uint64_t seq)
{
    struct fwd_acts *l = &f->lists[f->cur];
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
        l->nown++;
    }
    l->note[l->n] = (struct fwd_note){
        .own = copy, .src = (uint8_t)src, .peer = peer, .inc = inc, .seq = seq};
    l->nheld += src == FWD_SRC_HELD;
    l->n++;
    return 0;
}

int fwd__act_conflict(struct fwd *f, const char *name, uint64_t sid)
{
    struct fwd_acts *l = &f->lists[f->cur];
    struct fwd_act *a = acts_slot(l);
    uintptr_t o_name;

    if (a == NULL || arena_put(&l->arena, name, strlen(name), &o_name) < 0)
        return XE_NOMEM;
    *a = (struct fwd_act){
        .kind = FWD_ACT_CONFLICT, .name = (const char *)o_name, .sid = sid};
    l->note[l->n] = (struct fwd_note){.own = true};
    l->nown++;
    l->n++;
    return 0;
}

/* own_ptr turns an arena offset stored in a pointer field into the
 * pointer. */
static const char *own_ptr(const struct buf *b, const char *off)
{
    return b->data + (uintptr_t)off;
}

void fwd_undelivered(struct fwd *f, const struct fwd_act *a)
{
    struct fwd_acts *t = &f->lists[f->cur ^ 1];
    uintptr_t at = (uintptr_t)a, lo = (uintptr_t)t->a;
    size_t i;

    /* Only an act of the update the caller holds (handed, not settled). */
    if (XD_NEVER(!f->handed || at < lo || at >= lo + t->n * sizeof *t->a))
        return;
    i = (size_t)(a - t->a);
    if (XD_NEVER(a->kind != FWD_ACT_DELIVER) || t->note[i].undelivered)
        return;
    t->note[i].undelivered = true;
    t->nundel++;
}

void fwd_take(struct fwd *f, struct fwd_update *u)
{
    struct fwd_acts *t = &f->lists[f->cur], *next;

    /* The caller is back: the update it took last is carried out, so
     * the outcome of each of its deliveries is known now, not before
     * (a FWD is acknowledged only after this). */
    if (f->handed) {
        f->handed = false;
        struct fwd_acts *h = &f->lists[f->cur ^ 1];
        /* Most updates hold neither a FWD nor a delivery that failed:
         * error replies and local deliveries that went through need
         * nothing. */
        if (h->nheld > 0 || h->nundel > 0)
            fwd__settle(f, h);
    }
    /* Most takes find nothing (the caller takes after every call, and
     * until a take is empty). */
    if (t->n == 0) {
        u->acts = NULL;
        u->n = 0;
        return;
    }
    f->cur ^= 1;
    next = &f->lists[f->cur];
    next->n = next->nown = next->nheld = next->nundel = 0;
    next->arena.len = 0;
    /* The arena of t no longer grows: offsets become pointers. */
    for (size_t i = 0; t->nown > 0 && i < t->n; i++) {
        struct fwd_act *a = &t->a[i];
        if (!t->note[i].own)
            continue;
        if (a->kind == FWD_ACT_DELIVER) {
            a->from = own_ptr(&t->arena, a->from);
            a->to = own_ptr(&t->arena, a->to);
            a->xml = own_ptr(&t->arena, a->xml);
        } else {
            a->name = own_ptr(&t->arena, a->name);
        }
    }
    u->acts = t->a;
    u->n = t->n;
    f->handed = true;
}

static void acts_free(struct fwd_acts *l)
{
    free(l->a);
    free(l->note);
    buf_free(&l->arena);
    memset(l, 0, sizeof *l);
}

void fwd__acts_free(struct fwd *f)
{
    acts_free(&f->lists[0]);
    acts_free(&f->lists[1]);
}
