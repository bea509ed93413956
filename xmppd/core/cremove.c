/* cremove.c: removal from the cluster (contract in cremove.h;
 * docs/cluster.md "Removal"). */
#include "cremove.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "never.h"

static bool in_view(const struct cremove_view *v, uint64_t id)
{
    for (unsigned i = 0; i < v->n; i++)
        if (v->ids[i] == id)
            return true;
    return false;
}

static bool addr_in_view(const struct cremove_view *v, const char *addr)
{
    for (unsigned i = 0; i < v->n; i++)
        if (v->addrs[i] != NULL && strcmp(v->addrs[i], addr) == 0)
            return true;
    return false;
}

bool cremove_gone(const struct cremove *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_gone; i++)
        if (r->gone[i] == id)
            return true;
    return false;
}

/* committed records the members that left the committed configuration
 * since the last look (only committed removals: an uncommitted one may
 * still be undone). */
static void committed(struct cremove *r, const uint64_t *ids, unsigned n)
{
    if (n == 0)
        return;
    for (unsigned i = 0; r->seen_valid && i < r->n_seen; i++) {
        bool still = false;
        for (unsigned k = 0; k < n; k++)
            still = still || ids[k] == r->seen[i];
        if (still || cremove_gone(r, r->seen[i]))
            continue;
        if (r->n_gone == CREMOVE_GONE_MAX) {
            memmove(r->gone, r->gone + 1, (CREMOVE_GONE_MAX - 1) * sizeof r->gone[0]);
            r->n_gone--;
        }
        r->gone[r->n_gone++] = r->seen[i];
    }
    r->n_seen = 0;
    for (unsigned i = 0; i < n && i < CREMOVE_MAX_MEMBERS; i++)
        r->seen[r->n_seen++] = ids[i];
    r->seen_valid = true;
}

static void set_removed(struct cremove *r, struct cremove_update *u, const char *how)
{
    if (r->removed)
        return;
    r->removed = true;
    u->became_removed = true;
    snprintf(u->how, sizeof u->how, "%s", how);
}

/* refused: a member we dialled refused our HELLO saying we were removed.
 * It is believed when it is in our configuration (peer.c checked its
 * certificate for its address) and of our cluster. */
static void refused(struct cremove *r, const struct cremove_event *ev,
                    struct cremove_update *u)
{
    const struct pframe_refuse *f = ev->u.refused.r;
    char how[64];

    if (f == NULL || ev->u.refused.from == 0 || f->code != PFRAME_REFUSE_REMOVED ||
        f->cluster_id != ev->view->cluster_id || !in_view(ev->view, ev->u.refused.from))
        return;
    snprintf(how, sizeof how, "member %016" PRIx64 " said so", ev->u.refused.from);
    set_removed(r, u, how);
}

int cremove_step(struct cremove *r, const struct cremove_event *ev,
                 struct cremove_update *u)
{
    memset(u, 0, sizeof *u);
    /* Every event but REPLACED comes with the node's view (cremove.h). */
    if (XD_NEVER(ev->type != CREMOVE_EV_REPLACED && ev->view == NULL))
        return XE_INVAL;
    switch (ev->type) {
    case CREMOVE_EV_COMMITTED:
        committed(r, ev->u.committed.ids, ev->u.committed.n);
        break;
    case CREMOVE_EV_LOG:
        set_removed(r, u, "its log removes it");
        break;
    case CREMOVE_EV_REFUSED:
        refused(r, ev, u);
        break;
    case CREMOVE_EV_NOTE:
        /* (NOTE_REMOVED is sent only by the leader that removed us, on a
         * member link: a guest's is a protocol error the edge refuses.) */
        if (!ev->u.note.guest && ev->u.note.cluster_id == ev->view->cluster_id)
            set_removed(r, u, "a member said so");
        break;
    case CREMOVE_EV_REPLACED:
        r->removed = false;
        break;
    default:
        (void)XD_NEVER(true); /* a type cremove.h does not name */
        return XE_INVAL;
    }
    return 0;
}

int cremove_hello(const struct cremove *r, const struct cremove_view *v,
                  const struct pframe_hello *h, enum cremove_hello *out, char *why,
                  size_t whylen)
{
    if (h->cluster_id == 0) {
        *out = CREMOVE_HELLO_JOINER;
        return 0;
    }
    if (h->cluster_id != v->cluster_id) {
        *out = CREMOVE_HELLO_OTHER;
        snprintf(why, whylen,
                 "node %016" PRIx64 " at %s belongs to cluster %016" PRIx64
                 ", this node to cluster %016" PRIx64,
                 h->node_id, h->addr, h->cluster_id, v->cluster_id);
        return XE_PERM;
    }
    *out = CREMOVE_HELLO_MEMBER;
    if (v->n == 0 || in_view(v, h->node_id))
        return 0;
    if (!cremove_gone(r, h->node_id) && addr_in_view(v, h->addr)) {
        /* A new id at a member's address, in our cluster: the member there
         * was replaced while our configuration fell behind (plink.h,
         * SUCCESSOR: its link carries the log only until we know it). */
        *out = CREMOVE_HELLO_SUCCESSOR;
        return 0;
    }
    if (cremove_gone(r, h->node_id)) {
        *out = CREMOVE_HELLO_REMOVED;
        snprintf(why, whylen,
                 "node %016" PRIx64 " at %s was removed from cluster %016" PRIx64
                 ": it may join again with a token (xmpp cluster invite)",
                 h->node_id, h->addr, v->cluster_id);
        return XE_NOTFOUND;
    }
    *out = CREMOVE_HELLO_STRANGER;
    snprintf(why, whylen,
             "node %016" PRIx64 " at %s is not a member of cluster %016" PRIx64
             " (removed, or not added yet)",
             h->node_id, h->addr, v->cluster_id);
    return XE_PERM;
}

uint64_t cremove_change_done(const struct cremove_change *ch, int rc, uint64_t self,
                             bool running)
{
    uint64_t gone = ch->kind == CREMOVE_CHANGE_REMOVE    ? ch->id
                    : ch->kind == CREMOVE_CHANGE_REPLACE ? ch->old_id
                                                         : 0;

    /* An uncommitted change may not have removed it; a stopped node has no
     * links to tell it on. */
    if (rc != 0 || !running || gone == self)
        return 0;
    return gone;
}
