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
    if (f->heard_n == 0)
        return NULL; /* the common case: nothing ever needed a note */
    for (size_t i = 0; i < FWD_HEARD_MAX; i++) {
        const struct fwd_heard *h = &f->heard[i];
        if (h->name != NULL && strcmp(h->name, name) == 0)
            return (struct fwd_heard *)h;
    }
    return NULL;
}

/* routable: the table already routes name, itself or by its domain (a
 * component's users, user@cb.example.com/r, route by cb.example.com). */
static bool routable(const struct fwd *f, const char *name)
{
    const char *d = strchr(name, '@'), *slash;
    char dom[PFRAME_MAX_NAME + 1];
    size_t n;

    if (fwd__table_find(&f->table, name) != NULL)
        return true;
    d = d != NULL ? d + 1 : name;
    slash = strchr(d, '/');
    n = slash != NULL ? (size_t)(slash - d) : strlen(d);
    if (n == 0 || n >= sizeof dom)
        return false;
    memcpy(dom, d, n);
    dom[n] = '\0';
    return fwd_route_lookup(f, dom) != 0;
}

void fwd__heard_note(struct fwd *f, const char *name, uint64_t node)
{
    struct fwd_heard *h;
    char *copy;

    if (name == NULL || *name == '\0' || node == 0 || routable(f, name))
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
    if (h->name == NULL)
        f->heard_n++;
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
    f->heard_n = 0;
}
