/* fwd_route.c: the leader's side of forwarding: the cluster routing table
 * fed by SESSIONS reports (newest session of a name wins, the loser is sent
 * CONFLICT), reports that came early, the warmup hold, and the routing of
 * each FWD (contract in fwd.h, protocol in docs/cluster.md). */
#include "fwd_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jid.h"

void fwd__routes_clear(struct fwd *f)
{
    for (size_t i = 0; i < f->nroutes; i++)
        free(f->routes[i].name);
    f->nroutes = 0;
}

/* ---- leader: routing table --------------------------------------------- */

static struct fwd_route *route_find(const struct fwd *f, const char *name)
{
    for (size_t i = 0; i < f->nroutes; i++)
        if (strcmp(f->routes[i].name, name) == 0)
            return &f->routes[i];
    return NULL;
}

uint64_t fwd_route_lookup(const struct fwd *f, const char *domain)
{
    const struct fwd_route *best = NULL;

    /* Longest name that domain is within (a.cb1.x goes to cb1.x), as
     * rt_find does on one node.  Linear: a cluster has tens to a few
     * thousand component names; a label-wise hash is the next step. */
    for (size_t i = 0; i < f->nroutes; i++)
        if (jid_domain_within(domain, f->routes[i].name) &&
            (best == NULL || strlen(f->routes[i].name) > strlen(best->name)))
            best = &f->routes[i];
    return best != NULL ? best->node : 0;
}

static void tell_conflict(struct fwd *f, uint64_t node, const char *name, uint64_t since)
{
    struct pframe fr = {.type = PFRAME_CONFLICT};

    f->st.conflicts++;
    FLOG(f, LOG_INFO, "%s: newer session elsewhere, node %" PRIx64 " closes its own",
         name, node);
    if (node == f->cfg.node_id) {
        f->env.conflict(f->env.ud, name, since);
        return;
    }
    fr.u.conflict = (struct pframe_conflict){name, since};
    if (f->env.send(f->env.ud, node, &fr) < 0)
        f->st.send_failures++;
}

/* newer: (since, node) ordered; the newest session of a name wins.  Since is
 * wall-clock time of the authentication on the node that took it: the only
 * order two nodes' sessions share when reports reach a new leader in any
 * order (clock skew between nodes only matters within the skew). */
static bool newer(uint64_t s1, uint64_t n1, uint64_t s2, uint64_t n2)
{
    return s1 > s2 || (s1 == s2 && n1 > n2);
}

void fwd__table_add(struct fwd *f, uint64_t node, const char *name, uint64_t since)
{
    struct fwd_route *r = route_find(f, name);

    if (r != NULL) {
        if (r->node == node) {
            r->since = since;
            return;
        }
        if (!newer(since, node, r->since, r->node)) {
            tell_conflict(f, node, name, since);
            return;
        }
        tell_conflict(f, r->node, name, r->since);
        r->node = node;
        r->since = since;
        return;
    }
    if (f->nroutes == f->routes_cap) {
        size_t cap = f->routes_cap ? f->routes_cap * 2 : 16;
        struct fwd_route *n = realloc(f->routes, cap * sizeof *n);
        if (n == NULL)
            return; /* the name stays unknown: stanzas to it bounce */
        f->routes = n;
        f->routes_cap = cap;
    }
    r = &f->routes[f->nroutes];
    r->name = strdup(name);
    if (r->name == NULL)
        return;
    r->node = node;
    r->since = since;
    f->nroutes++;
}

void fwd__table_del(struct fwd *f, uint64_t node, const char *name, uint64_t since)
{
    struct fwd_route *r = route_find(f, name);

    /* A replaced session removing itself later leaves the winner alone. */
    if (r == NULL || r->node != node || r->since != since)
        return;
    free(r->name);
    *r = f->routes[--f->nroutes];
}

void fwd__table_forget_node(struct fwd *f, uint64_t node)
{
    for (size_t i = 0; i < f->nroutes;) {
        if (f->routes[i].node == node) {
            free(f->routes[i].name);
            f->routes[i] = f->routes[--f->nroutes];
        } else {
            i++;
        }
    }
}

bool fwd__warming(const struct fwd *f)
{
    if (f->warm_until == 0 || f->now >= f->warm_until)
        return false;
    for (size_t i = 0; i < f->nmembers; i++)
        if (!f->members[i].reported && f->members[i].id != f->cfg.node_id)
            return true;
    return false;
}

static void keep_early(struct fwd *f, const struct pframe_sessions *s)
{
    struct pframe fr = {.type = PFRAME_SESSIONS, .chan_seq = 1};
    struct buf b = {0};

    fr.u.sessions = *s;
    if (pframe_encode(&fr, &b) < 0)
        return;
    if (f->nearly == FWD_MAX_EARLY) {
        /* The oldest goes; its node's names wait for the warmup end. */
        buf_free(&f->early[0]);
        memmove(f->early, f->early + 1, (FWD_MAX_EARLY - 1) * sizeof *f->early);
        f->nearly--;
    }
    f->early[f->nearly++] = b;
}

int fwd__handle_sessions(struct fwd *f, uint64_t node, const struct pframe_sessions *s)
{
    if (s->node_id != node)
        return XE_PROTO;
    if (f->leader != f->cfg.node_id) {
        /* Not leading (yet): a report for a later term, or for this term
         * while its leader is unknown here, may be for us. */
        if (s->term > f->term || (s->term == f->term && f->leader == 0))
            keep_early(f, s);
        return 0;
    }
    if (s->term != f->term)
        return 0; /* meant for another leadership: the node reports again */
    if (s->full) {
        fwd__table_forget_node(f, node);
        for (size_t i = 0; i < f->nmembers; i++)
            if (f->members[i].id == node)
                f->members[i].reported = true;
    }
    for (size_t i = 0; i < s->ndel; i++)
        fwd__table_del(f, node, s->del[i].name, s->del[i].since);
    for (size_t i = 0; i < s->nadd; i++)
        fwd__table_add(f, node, s->add[i].name, s->add[i].since);
    fwd__recheck_held(f);
    return 0;
}

/* ---- leader: routing ----------------------------------------------------- */

static bool hold(struct fwd *f, uint64_t from_node, const struct pframe_fwd *fw)
{
    struct fwd_held *h;

    if (f->nheld == f->cfg.hold_max)
        return false;
    h = &f->held[f->nheld];
    memset(h, 0, sizeof *h);
    h->e.from = strdup(fw->from);
    h->e.to = strdup(fw->to);
    h->e.xml = malloc(fw->xml_len + 1);
    if (h->e.from == NULL || h->e.to == NULL || h->e.xml == NULL) {
        fwd__ent_clear(&h->e);
        return false;
    }
    memcpy(h->e.xml, fw->xml, fw->xml_len);
    h->e.xml[fw->xml_len] = '\0';
    h->e.len = fw->xml_len;
    h->e.seq = fw->seq;
    h->node = from_node;
    h->origin = fw->origin;
    h->inc = fw->incarnation;
    h->low_water = fw->low_water;
    f->nheld++;
    f->st.held++;
    return true;
}

void fwd__route_fwd(struct fwd *f, uint64_t from_node, const struct pframe_fwd *fw)
{
    struct jid j = {0};
    uint64_t node = 0;
    struct pframe fr = {.type = PFRAME_DELIVER};

    f->st.routed++;
    if (jid_parse(fw->to, &j) == 0)
        node = fwd_route_lookup(f, j.domain);
    jid_clear(&j);
    FLOG(f, LOG_TRACE, "route %" PRIx64 "/%" PRIu64 " to %s: node %" PRIx64 "%s",
         fw->origin, fw->seq, fw->to, node,
         node == 0 && fwd__warming(f) ? " (hold)" : "");
    if (node == 0) {
        if (!fwd__warming(f))
            fwd__outcome_here(f, fw, "cancel", "service-unavailable");
        else if (!hold(f, from_node, fw))
            fwd__outcome_here(f, fw, "wait", "resource-constraint");
        return;
    }
    if (node == f->cfg.node_id) {
        fwd__outcome_here(f, fw, NULL, NULL);
        return;
    }
    fr.u.fwd = *fw;
    if (f->env.send(f->env.ud, node, &fr) < 0) {
        f->st.send_failures++;
        /* Our own stanza (a session here, or a bounce we made) stays in our
         * unacked table and goes again after resend_ms.  Another origin's:
         * tell the sender now rather than drop it silently. */
        if (fw->origin != f->cfg.node_id || fw->incarnation != f->cfg.incarnation)
            fwd__outcome_here(f, fw, "wait", "resource-constraint");
    }
}

void fwd__recheck_held(struct fwd *f)
{
    size_t n = f->nheld;
    struct fwd_held *h;
    bool warm = fwd__warming(f);

    if (n == 0)
        return;
    /* Take the list out first: routing may hold or bounce (and so append)
     * while we walk it. */
    h = malloc(n * sizeof *h);
    if (h == NULL)
        return; /* try again on the next report or tick */
    memcpy(h, f->held, n * sizeof *h);
    f->nheld = 0;
    for (size_t i = 0; i < n; i++) {
        struct pframe_fwd fw = {h[i].origin, h[i].inc,  h[i].e.seq, h[i].low_water,
                                h[i].e.from, h[i].e.to, h[i].e.xml, h[i].e.len};
        struct jid j = {0};
        uint64_t node = 0;

        if (jid_parse(fw.to, &j) == 0)
            node = fwd_route_lookup(f, j.domain);
        jid_clear(&j);
        if (node == 0 && warm && f->nheld < f->cfg.hold_max) {
            f->held[f->nheld++] = h[i]; /* still unknown: keep, in order */
            continue;
        }
        fwd__route_fwd(f, h[i].node, &fw);
        fwd__ent_clear(&h[i].e);
    }
    free(h);
}

/* fwd__apply_early applies the kept reports meant for this leadership and drops
 * those that can no longer be. */
void fwd__apply_early(struct fwd *f)
{
    size_t keep = 0;

    for (size_t i = 0; i < f->nearly; i++) {
        struct pframe fr;
        struct buf *b = &f->early[i];
        bool mine = false, later = false;

        if (pframe_decode(b->data + PFRAME_LEN_SIZE, b->len - PFRAME_LEN_SIZE, &fr) ==
            0) {
            mine = f->leader == f->cfg.node_id && fr.u.sessions.term == f->term;
            later = fr.u.sessions.term > f->term ||
                    (fr.u.sessions.term == f->term && f->leader == 0);
            if (mine)
                fwd__handle_sessions(f, fr.u.sessions.node_id, &fr.u.sessions);
            pframe_release(&fr);
        }
        if (later)
            f->early[keep++] = *b;
        else
            buf_free(b);
    }
    f->nearly = keep;
}
