/* fwd_heard.c: the names a node heard from before its table had them
 * (contract in fwd_int.h).  A bounded ring of FWD_HEARD_MAX names, each
 * kept hold_ms: a wrong or stale entry costs what a stale table does, a
 * bounce by the node that does not hold the name (fwd.h), never a second
 * outcome, since the stanza still goes to exactly one node. */
#include <stdlib.h>
#include <string.h>

#include "fwd_int.h"

static struct fwd_heard *heard_find(const struct fwd *f, const char *name)
{
    for (size_t i = 0; i < FWD_HEARD_MAX; i++) {
        const struct fwd_heard *h = &f->heard[i];
        if (h->name != NULL && strcmp(h->name, name) == 0)
            return (struct fwd_heard *)h;
    }
    return NULL;
}

void fwd__heard_note(struct fwd *f, const char *name, uint64_t node)
{
    struct fwd_heard *h;
    char *copy;

    if (name == NULL || *name == '\0' || node == 0 ||
        fwd__table_find(&f->table, name) != NULL)
        return;
    h = heard_find(f, name);
    if (h != NULL) {
        h->node = node;
        h->until = f->now + f->cfg.hold_ms;
        return;
    }
    copy = strdup(name);
    if (copy == NULL)
        return; /* only a hint: without it a reply may bounce, as before */
    h = &f->heard[f->heard_next];
    f->heard_next = (f->heard_next + 1) % FWD_HEARD_MAX;
    free(h->name);
    *h = (struct fwd_heard){copy, node, f->now + f->cfg.hold_ms};
}

uint64_t fwd__heard_node(const struct fwd *f, const char *name)
{
    const struct fwd_heard *h;

    if (name == NULL || fwd__table_find(&f->table, name) != NULL)
        return 0;
    h = heard_find(f, name);
    return h != NULL && f->now < h->until && fwd__is_member(f, h->node) ? h->node : 0;
}

void fwd__heard_free(struct fwd *f)
{
    for (size_t i = 0; i < FWD_HEARD_MAX; i++) {
        free(f->heard[i].name);
        f->heard[i].name = NULL;
    }
}
