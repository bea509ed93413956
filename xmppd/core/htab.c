/* htab.c: the intrusive chained hash table (contract in htab.h). */
#include "htab.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int htab_init(struct htab *t, size_t nb)
{
    t->count = 0;
    t->b = calloc(nb, sizeof *t->b);
    t->nb = t->b != NULL ? nb : 0;
    return t->b != NULL ? 0 : XE_NOMEM;
}

void htab_fini(struct htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = 0;
    t->count = 0;
}

void htab_release(struct htab *t, void (*release)(struct hlink *l))
{
    for (size_t i = 0; release != NULL && i < t->nb; i++) {
        struct hlink *l = t->b[i], *next;
        for (; l != NULL; l = next) {
            next = l->next;
            release(l);
        }
    }
    htab_fini(t);
}

static struct hlink **slot(const struct htab *t, uint64_t h)
{
    return &t->b[(size_t)h & (t->nb - 1)];
}

struct hlink *htab_head(const struct htab *t, uint64_t h)
{
    return t->nb > 0 ? *slot(t, h) : NULL;
}

/* grow doubles the buckets; without memory the chains just stay longer.
 * Each entry goes to the front of its new chain, walking the old ones in
 * order (the order the old copies in rt.c and srv.c had). */
static void grow(struct htab *t, htab_hash_fn hash)
{
    size_t n = t->nb * 2;
    struct hlink **b = calloc(n, sizeof *b);

    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        struct hlink *l = t->b[i], *next;
        for (; l != NULL; l = next) {
            size_t k = (size_t)hash(l) & (n - 1);
            next = l->next;
            l->next = b[k];
            b[k] = l;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = n;
}

void htab_add(struct htab *t, struct hlink *l, uint64_t h, htab_hash_fn hash)
{
    struct hlink **p;

    if (t->nb == 0)
        return; /* htab_init failed: the caller saw XE_NOMEM */
    p = slot(t, h);
    while (*p != NULL)
        p = &(*p)->next;
    l->next = NULL;
    *p = l;
    if (++t->count > t->nb)
        grow(t, hash);
}

bool htab_del(struct htab *t, struct hlink *l, uint64_t h)
{
    struct hlink **p;

    if (t->nb == 0)
        return false;
    for (p = slot(t, h); *p != NULL; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            l->next = NULL;
            t->count--;
            return true;
        }
    }
    return false;
}

uint64_t htab_hash_u64(uint64_t key)
{
    return key * 0x9E3779B97F4A7C15ULL;
}

uint64_t htab_hash_more(uint64_t h, const void *p, size_t len)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

uint64_t htab_hash_mem(const void *p, size_t len)
{
    return htab_hash_more(HTAB_HASH_INIT, p, len);
}

uint64_t htab_hash_str(const char *s)
{
    return htab_hash_mem(s, strlen(s));
}
