/* fwd_route.c: the cluster routing table and how it is kept (contract in
 * fwd.h, protocol in docs/cluster.md "Forwarding"): every node's copy of
 * the table, its SESSIONS reports to the leader, and the leader's side:
 * ordering sessions (the newer of two sessions of a name wins, by the
 * order the leader gave them, never by clocks), telling
 * the loser (CONFLICT), and sending the table to the members (ROUTES). */
#include "fwd_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jid.h"

/* ---- the table: htab.h on the bare part of the name --------------------- */

#define TABLE_BUCKETS 64 /* at the first entry; htab doubles them */

/* ROUTE returns the entry of table link l. */
#define ROUTE(l) HTAB_ENTRY(l, struct fwd_route, link)

/* name_hash hashes the bare part of a name (up to the first '/', which no
 * localpart or domainpart contains, RFC 7622 §3): every resource of one
 * bare JID lands in one chain, so fwd_each_of_bare reads that chain only.
 * A chain holds at most one account's sessions beyond chance collisions
 * (xmpp client max-sessions bounds them). */
static uint64_t name_hash(const char *s)
{
    return htab_hash_mem(s, strcspn(s, "/"));
}

static uint64_t route_hash(const struct hlink *l)
{
    return name_hash(ROUTE(l)->name);
}

static void route_free(struct hlink *l)
{
    struct fwd_route *r = ROUTE(l);

    free(r->name);
    free(r);
}

void fwd__table_free(struct fwd_table *t)
{
    htab_release(&t->h, route_free);
    memset(t, 0, sizeof *t);
}

struct fwd_route *fwd__table_find(const struct fwd_table *t, const char *name)
{
    for (struct hlink *l = htab_head(&t->h, name_hash(name)); l != NULL; l = l->next)
        if (strcmp(ROUTE(l)->name, name) == 0)
            return ROUTE(l);
    return NULL;
}

/* table_remove unlinks and frees r, an entry of t. */
static void table_remove(struct fwd_table *t, struct fwd_route *r)
{
    if (htab_del(&t->h, &r->link, name_hash(r->name)))
        route_free(&r->link);
}

uint64_t fwd_route_lookup(const struct fwd *f, const char *domain)
{
    /* The longest name that domain is within (a.cb1.x goes to cb1.x), as
     * rt_find does on one node: try domain, then drop a label at a time. */
    for (const char *d = domain; d != NULL && *d != '\0';) {
        const struct fwd_route *r = fwd__table_find(&f->table, d);
        if (r != NULL)
            return r->node;
        d = strchr(d, '.');
        if (d != NULL)
            d++;
    }
    return 0;
}

bool fwd_route_has(const struct fwd *f, const char *name)
{
    return name != NULL &&
           (fwd__table_find(&f->table, name) != NULL || fwd__heard_node(f, name) != 0);
}

void fwd_each_route(const struct fwd *f,
                    void (*fn)(void *ud, const char *name, uint64_t node, uint64_t ord),
                    void *ud)
{
    for (size_t i = 0; i < f->table.h.nb; i++)
        for (const struct hlink *l = f->table.h.b[i]; l != NULL; l = l->next)
            fn(ud, ROUTE(l)->name, ROUTE(l)->node, ROUTE(l)->ord);
}

void fwd_each_of_bare(const struct fwd *f, const char *bare,
                      void (*fn)(void *ud, const struct pframe_route *e), void *ud)
{
    size_t len = strlen(bare);

    if (memchr(bare, '/', len) != NULL)
        return;
    for (const struct hlink *l = htab_head(&f->table.h, name_hash(bare)); l != NULL;
         l = l->next) {
        const struct fwd_route *r = ROUTE(l);
        if (strncmp(r->name, bare, len) == 0 && r->name[len] == '/') {
            struct pframe_route e = {r->name, r->node, r->sid, r->ord, r->attr};
            fn(ud, &e);
        }
    }
}

void fwd_each_entry(const struct fwd *f,
                    void (*fn)(void *ud, const struct pframe_route *e), void *ud)
{
    for (size_t i = 0; i < f->table.h.nb; i++)
        for (const struct hlink *l = f->table.h.b[i]; l != NULL; l = l->next) {
            const struct fwd_route *r = ROUTE(l);
            struct pframe_route e = {r->name, r->node, r->sid, r->ord, r->attr};
            fn(ud, &e);
        }
}

/* name_count changes node's count of names (for names_max). */
static void name_count(struct fwd *f, uint64_t node, int d)
{
    struct fwd_peer *p = fwd__peer(f, node, true);

    if (p != NULL)
        p->names = (size_t)((long long)p->names + d);
}

int fwd__route_set(struct fwd *f, const char *name, uint64_t node, uint64_t sid,
                   uint64_t ord, const struct pframe_attr *attr)
{
    struct fwd_route *r = fwd__table_find(&f->table, name);
    struct fwd_local *l = fwd__local_find(f, name);

    if (r == NULL) {
        if (f->table.h.nb == 0 && htab_init(&f->table.h, TABLE_BUCKETS) < 0)
            return XE_NOMEM;
        r = calloc(1, sizeof *r);
        if (r == NULL || (r->name = strdup(name)) == NULL) {
            free(r);
            return XE_NOMEM;
        }
        htab_add(&f->table.h, &r->link, name_hash(name), route_hash);
    } else {
        name_count(f, r->node, -1);
    }
    r->node = node;
    r->sid = sid;
    r->ord = ord;
    r->attr = *attr;
    r->attr.flags &= (uint8_t)~PFRAME_ATTR_UPDATE;
    r->gen = f->table.gen;
    name_count(f, node, +1);
    if (l == NULL)
        return 0;
    if (node == f->cfg.node_id && l->sid == sid) {
        l->ord = ord; /* a future leader learns it in our full report */
    } else if (node != f->cfg.node_id && l->ord != 0 && l->ord < ord) {
        /* A newer session of the name elsewhere (RFC 6120 §4.9.3.3).  A
         * session with no order yet is newer than anything the table holds
         * and stays: the leader decides when our report reaches it. */
        FLOG(f, LOG_INFO, "%s: newer session on node %" PRIx64, name, node);
        return fwd__act_conflict(f, name, l->sid);
    }
    return 0;
}

void fwd__route_del(struct fwd *f, const char *name, uint64_t node)
{
    struct fwd_route *r = fwd__table_find(&f->table, name);

    if (r == NULL || r->node != node)
        return;
    name_count(f, node, -1);
    table_remove(&f->table, r);
}

struct fwd_local *fwd__local_find(const struct fwd *f, const char *name)
{
    for (size_t i = 0; i < f->nlocals; i++)
        if (strcmp(f->locals[i].name, name) == 0)
            return &f->locals[i];
    return NULL;
}

/* ---- deltas -------------------------------------------------------------- */

static int delta_put(struct pframe_route **a, size_t *n, size_t *cap,
                     const struct pframe_route *e)
{
    char *name;

    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        struct pframe_route *x = realloc(*a, c * sizeof *x);
        if (x == NULL)
            return XE_NOMEM;
        *a = x;
        *cap = c;
    }
    name = strdup(e->name);
    if (name == NULL)
        return XE_NOMEM;
    (*a)[*n] = *e;
    (*a)[*n].name = name;
    (*n)++;
    return 0;
}

static void delta_free(struct fwd_delta *d)
{
    for (size_t i = 0; i < d->nadd; i++)
        free((char *)d->add[i].name);
    for (size_t i = 0; i < d->ndel; i++)
        free((char *)d->del[i].name);
    free(d->add);
    free(d->del);
    memset(d, 0, sizeof *d);
}

/* Bytes a ROUTES entry takes on the wire, and what one frame may hold. */
#define ROUTE_WIRE(name) (strlen(name) + 32)
#define ROUTES_CHUNK (PFRAME_MAX_BODY / 2)

/* send_routes sends adds and dels to node as ROUTES frames of at most
 * ROUTES_CHUNK bytes; the first carries RESET when reset, the last
 * COMPLETE when complete.  0, or the first refusal (the caller marks the
 * member for a whole table later). */
static int send_routes(struct fwd *f, uint64_t node, const struct pframe_route *add,
                       size_t nadd, const struct pframe_route *del, size_t ndel,
                       bool reset, bool complete)
{
    size_t ia = 0, id = 0;
    bool first = true;

    do {
        struct pframe fr = {.type = PFRAME_ROUTES};
        size_t bytes = 0, a0 = ia, d0 = id;
        int rc;

        while (id < ndel && id - d0 < PFRAME_MAX_LIST && bytes < ROUTES_CHUNK)
            bytes += ROUTE_WIRE(del[id++].name);
        while (ia < nadd && ia - a0 < PFRAME_MAX_LIST && bytes < ROUTES_CHUNK)
            bytes += ROUTE_WIRE(add[ia++].name);
        fr.u.routes =
            (struct pframe_routes){f->term, 0, add + a0, ia - a0, del + d0, id - d0};
        if (first && reset)
            fr.u.routes.flags |= PFRAME_ROUTES_RESET;
        if (ia == nadd && id == ndel && complete)
            fr.u.routes.flags |= PFRAME_ROUTES_COMPLETE;
        rc = f->env.send(f->env.ud, node, &fr);
        if (rc < 0) {
            f->st.send_failures++;
            return rc;
        }
        first = false;
    } while (ia < nadd || id < ndel);
    return 0;
}

/* send_table sends node the whole table (RESET ... COMPLETE). */
static void send_table(struct fwd *f, struct fwd_peer *p)
{
    struct pframe_route *all = NULL;
    size_t n = 0;

    if (f->table.h.count > 0) {
        all = calloc(f->table.h.count, sizeof *all);
        if (all == NULL) {
            p->want_full = true;
            return;
        }
    }
    for (size_t i = 0; i < f->table.h.nb; i++)
        for (const struct hlink *l = f->table.h.b[i]; l != NULL; l = l->next) {
            const struct fwd_route *r = ROUTE(l);
            all[n++] = (struct pframe_route){r->name, r->node, r->sid, r->ord, r->attr};
        }
    if (send_routes(f, p->id, all, n, NULL, 0, true, f->complete) == 0) {
        p->synced = true;
        p->want_full = false;
    } else {
        p->synced = false;
        p->want_full = true;
    }
    free(all);
}

/* broadcast sends delta d to every member that has the table (not to
 * except, which gets the whole table next). */
static void broadcast(struct fwd *f, const struct fwd_delta *d, uint64_t except)
{
    if (d->nadd + d->ndel == 0)
        return;
    for (size_t i = 0; i < f->npeers; i++) {
        struct fwd_peer *p = &f->peers[i];
        if (!p->member || !p->synced || p->id == except || p->id == f->cfg.node_id)
            continue;
        if (send_routes(f, p->id, d->add, d->nadd, d->del, d->ndel, false, false) < 0) {
            p->synced = false; /* it gets the whole table on fwd_pump */
            p->want_full = true;
        }
    }
}

/* ---- leader: ordering sessions ------------------------------------------- */

static bool leading(const struct fwd *f)
{
    return f->leader != 0 && f->leader == f->cfg.node_id;
}

/* tell_conflict asks node to close its session sid of name. */
static void tell_conflict(struct fwd *f, uint64_t node, const char *name, uint64_t sid)
{
    struct pframe fr = {.type = PFRAME_CONFLICT};

    f->st.conflicts++;
    FLOG(f, LOG_INFO, "%s: newer session elsewhere, node %" PRIx64 " closes its own",
         name, node);
    if (node == f->cfg.node_id) {
        /* No memory to list it: our copy of the table says we lost, and
         * the next ROUTES about the name asks again (fwd__route_set). */
        if (fwd__act_conflict(f, name, sid) < 0)
            FLOG(f, LOG_WARN, "%s: conflict not listed (no memory)", name);
        return;
    }
    fr.u.conflict = (struct pframe_conflict){name, sid};
    if (f->env.send(f->env.ud, node, &fr) < 0) {
        /* Its copy of the table says it lost, and it closes the session
         * when that copy arrives (fwd__route_set). */
        f->st.send_failures++;
    }
}

/* r_attr_of returns the attributes of name in the table (zero when
 * absent). */
static struct pframe_attr r_attr_of(const struct fwd *f, const char *name)
{
    const struct fwd_route *r = fwd__table_find(&f->table, name);
    struct pframe_attr none = {0};

    return r != NULL ? r->attr : none;
}

/* leader_attr gives entry r new attributes a (the UPDATE flag dropped),
 * and the members the change, with r's order unchanged. */
static void leader_attr(struct fwd *f, struct fwd_route *r, const struct pframe_attr *a,
                        struct fwd_delta *d)
{
    struct pframe_attr n = *a;
    struct pframe_route e;

    (void)f;
    n.flags &= (uint8_t)~PFRAME_ATTR_UPDATE;
    if (memcmp(&n, &r->attr, sizeof n) == 0)
        return;
    r->attr = n;
    e = (struct pframe_route){r->name, r->node, r->sid, r->ord, n};
    delta_put(&d->add, &d->nadd, &d->cadd, &e);
}

/* leader_add records that node holds name with session sid, ordered ord
 * by an earlier leadership (0: not yet).  The newer session wins.  False
 * when node holds names_max names already (counted as a protocol error). */
static bool leader_add(struct fwd *f, uint64_t node, const char *name, uint64_t sid,
                       uint64_t ord, const struct pframe_attr *attr, struct fwd_delta *d)
{
    struct fwd_route *r = fwd__table_find(&f->table, name);
    struct fwd_peer *p = fwd__peer(f, node, true);
    struct pframe_route e;

    /* Orders are given here, in arrival order; one that is not below ours
     * was not given by an earlier leadership: order it anew. */
    if ((r == NULL || r->node != node) && p != NULL && p->names >= f->cfg.names_max) {
        f->st.protocol_errors++; /* before any conflict: the holder keeps it */
        return false;
    }
    if (ord == 0 || ord >= f->next_ord)
        ord = f->next_ord++;
    if (r != NULL && r->node != node) {
        if (r->ord > ord) {
            tell_conflict(f, node, name, sid);
            return true;
        }
        tell_conflict(f, r->node, name, r->sid);
    }
    if (fwd__route_set(f, name, node, sid, ord, attr) < 0)
        return true; /* out of memory: the name stays unknown, stanzas bounce */
    e = (struct pframe_route){name, node, sid, ord, r_attr_of(f, name)};
    delta_put(&d->add, &d->nadd, &d->cadd, &e);
    return true;
}

static void leader_del(struct fwd *f, uint64_t node, const char *name, uint64_t sid,
                       struct fwd_delta *d)
{
    struct fwd_route *r = fwd__table_find(&f->table, name);
    struct pframe_route e = {name, node, sid, 0, {0}};

    /* A replaced session removing itself later leaves the winner alone. */
    if (r == NULL || r->node != node || (sid != 0 && r->sid != sid))
        return;
    e.ord = r->ord;
    e.attr = r->attr;
    delta_put(&d->del, &d->ndel, &d->cdel, &e);
    fwd__route_del(f, name, node);
}

/* mark_all sets every entry's keep flag to keep. */
static void mark_all(struct fwd *f, bool keep)
{
    for (size_t i = 0; i < f->table.h.nb; i++)
        for (struct hlink *l = f->table.h.b[i]; l != NULL; l = l->next)
            ROUTE(l)->keep = keep;
}

/* drop_unkept removes every entry of node (of any node when node is 0)
 * whose keep flag is clear, recording each removal in d.  The one way
 * entries leave in bulk: a node forgotten, a full report, a resync. */
static void drop_unkept(struct fwd *f, uint64_t node, struct fwd_delta *d)
{
    struct fwd_delta gone = {0};

    for (size_t i = 0; i < f->table.h.nb; i++)
        for (const struct hlink *l = f->table.h.b[i]; l != NULL; l = l->next) {
            const struct fwd_route *r = ROUTE(l);
            if (!r->keep && (node == 0 || r->node == node)) {
                struct pframe_route e = {r->name, r->node, r->sid, r->ord, r->attr};
                delta_put(&gone.del, &gone.ndel, &gone.cdel, &e);
            }
        }
    for (size_t i = 0; i < gone.ndel; i++)
        leader_del(f, gone.del[i].node, gone.del[i].name, 0, d);
    delta_free(&gone);
}

/* leader_forget removes every name of node (into d). */
static void leader_forget(struct fwd *f, uint64_t node, struct fwd_delta *d)
{
    mark_all(f, false);
    drop_unkept(f, node, d);
}

void fwd__forget_node(struct fwd *f, uint64_t node)
{
    struct fwd_delta d = {0};
    struct fwd_peer *p = fwd__peer(f, node, false);

    if (!leading(f))
        return;
    leader_forget(f, node, &d);
    if (p != NULL)
        p->reported = false;
    broadcast(f, &d, 0);
    delta_free(&d);
}

static void warm_end(struct fwd *f);
static bool all_reported(const struct fwd *f);

/* leader_report applies a report from node (this node's own included). */
static void leader_report(struct fwd *f, uint64_t node, bool full,
                          const struct pframe_sess *add, size_t nadd,
                          const struct pframe_sess *del, size_t ndel)
{
    struct fwd_delta d = {0};
    struct fwd_peer *p = fwd__peer(f, node, true);

    if (full && p != NULL)
        p->reported = true;
    size_t refused = 0;

    if (full) {
        /* Replace node's names: drop those the report does not hold (one
         * pass over the table and one lookup per name: a report of many
         * names costs linear time). */
        mark_all(f, false);
        for (size_t k = 0; k < nadd; k++) {
            struct fwd_route *r = fwd__table_find(&f->table, add[k].name);
            if (r != NULL && r->node == node && r->sid == add[k].sid)
                r->keep = true;
        }
        drop_unkept(f, node, &d);
    }
    for (size_t i = 0; i < ndel; i++)
        leader_del(f, node, del[i].name, del[i].sid, &d);
    for (size_t i = 0; i < nadd; i++) {
        struct fwd_route *r = fwd__table_find(&f->table, add[i].name);
        if (r != NULL && r->node == node && r->sid == add[i].sid) {
            /* Known already, with its order: only its attributes may
             * change, and the order stays (an update never makes a
             * session newer). */
            leader_attr(f, r, &add[i].attr, &d);
            continue;
        }
        if (add[i].attr.flags & PFRAME_ATTR_UPDATE)
            continue; /* of a session that no longer holds the name */
        if (!leader_add(f, node, add[i].name, add[i].sid, add[i].ord, &add[i].attr, &d))
            refused++;
    }
    if (refused > 0)
        FLOG(f, LOG_WARN,
             "node %" PRIx64 " reported %zu names over its limit of %zu: not routed "
             "(a call bridge flood, or a limit to raise)",
             node, refused, f->cfg.names_max);
    broadcast(f, &d, full ? node : 0);
    delta_free(&d);
    p = fwd__peer(f, node, false); /* again: the calls above may add peers */
    if (full && p != NULL && node != f->cfg.node_id)
        send_table(f, p);
    if (full && f->warm_until != 0 && all_reported(f))
        warm_end(f);
}

void fwd__lead(struct fwd *f)
{
    struct pframe_sess *l = NULL;

    /* Orders of this leadership are above every earlier one's. */
    f->next_ord = (f->term << 32) + 1;
    for (size_t i = 0; i < f->npeers; i++)
        f->peers[i].reported = f->peers[i].synced = f->peers[i].want_full = false;
    f->warm_until = f->now + f->cfg.warmup_ms;
    if (f->warm_until == 0)
        f->warm_until = 1;
    /* Whole once every member reported or the warmup ended (warm_end):
     * until then a name nobody reported yet waits instead of bouncing. */
    f->complete = false;
    if (f->nlocals > 0 && (l = calloc(f->nlocals, sizeof *l)) == NULL)
        return;
    for (size_t i = 0; i < f->nlocals; i++)
        l[i] = (struct pframe_sess){f->locals[i].name, f->locals[i].sid, f->locals[i].ord,
                                    f->locals[i].attr};
    leader_report(f, f->cfg.node_id, true, l, f->nlocals, NULL, 0);
    free(l);
}

/* warm_end makes this leader's table whole: a member that has not
 * reported holds nothing we can vouch for (it may have restarted or be cut
 * off; it reports when it can), and the members are told. */
static void warm_end(struct fwd *f)
{
    struct fwd_delta d = {0};
    struct pframe_route none;

    f->warm_until = 0;
    if (!leading(f))
        return;
    for (size_t i = 0; i < f->npeers; i++)
        if (!f->peers[i].reported && f->peers[i].id != f->cfg.node_id)
            leader_forget(f, f->peers[i].id, &d);
    broadcast(f, &d, 0);
    delta_free(&d);
    f->complete = true;
    for (size_t i = 0; i < f->npeers; i++) {
        struct fwd_peer *p = &f->peers[i];
        if (p->member && p->synced && p->id != f->cfg.node_id &&
            send_routes(f, p->id, &none, 0, &none, 0, false, true) < 0) {
            p->synced = false;
            p->want_full = true;
        }
    }
}

/* all_reported tells whether every other member sent its full report. */
static bool all_reported(const struct fwd *f)
{
    for (size_t i = 0; i < f->npeers; i++)
        if (f->peers[i].member && !f->peers[i].reported &&
            f->peers[i].id != f->cfg.node_id)
            return false;
    return true;
}

void fwd__leader_tick(struct fwd *f)
{
    if (f->warm_until != 0 && f->now >= f->warm_until)
        warm_end(f);
}

void fwd__leader_pump(struct fwd *f)
{
    if (!leading(f))
        return;
    for (size_t i = 0; i < f->npeers; i++)
        if (f->peers[i].want_full && f->peers[i].member && f->peers[i].reported)
            send_table(f, &f->peers[i]);
}

/* ---- reports (every node) ------------------------------------------------ */

static void keep_early(struct fwd *f, const struct pframe_sessions *s)
{
    struct pframe fr = {.type = PFRAME_SESSIONS, .chan_seq = 1};
    struct buf b = {0};

    fr.u.sessions = *s;
    if (pframe_encode(&fr, &b) < 0)
        return;
    if (f->nearly == FWD_MAX_EARLY) {
        buf_free(&f->early[0]); /* the oldest goes; its node re-reports */
        memmove(f->early, f->early + 1, (FWD_MAX_EARLY - 1) * sizeof *f->early);
        f->nearly--;
    }
    f->early[f->nearly++] = b;
}

int fwd__handle_sessions(struct fwd *f, uint64_t node, const struct pframe_sessions *s)
{
    if (s->node_id != node || !fwd__is_member(f, node))
        return XE_PROTO;
    if (!leading(f)) {
        /* A report for a later term, or for this term while its leader is
         * unknown here, may be for us: the sender learnt first. */
        if (s->term > f->term || (s->term == f->term && f->leader == 0))
            keep_early(f, s);
        return 0;
    }
    if (s->term != f->term) {
        FLOG(f, LOG_DEBUG,
             "report from %" PRIx64 " for term %" PRIu64 " ignored (term %" PRIu64 ")",
             node, s->term, f->term);
        return 0; /* meant for another leadership: the node reports again */
    }
    FLOG(f, LOG_DEBUG, "report from %" PRIx64 ": %zu held, %zu gone%s", node, s->nadd,
         s->ndel, s->full ? " (full)" : "");
    leader_report(f, node, s->full, s->add, s->nadd, s->del, s->ndel);
    return 0;
}

void fwd__apply_early(struct fwd *f)
{
    size_t keep = 0;

    for (size_t i = 0; i < f->nearly; i++) {
        struct pframe fr;
        struct buf *b = &f->early[i];
        bool later = false;

        if (pframe_decode(b->data + PFRAME_LEN_SIZE, b->len - PFRAME_LEN_SIZE, &fr) ==
            0) {
            const struct pframe_sessions *s = &fr.u.sessions;
            later = s->term > f->term || (s->term == f->term && f->leader == 0);
            if (leading(f) && s->term == f->term)
                leader_report(f, s->node_id, s->full, s->add, s->nadd, s->del, s->ndel);
            pframe_release(&fr);
        }
        if (later)
            f->early[keep++] = *b;
        else
            buf_free(b);
    }
    f->nearly = keep;
}

/* report sends a SESSIONS report to the leader (applies it when leading).
 * A refused report turns into a full one on fwd_pump. */
static int report(struct fwd *f, bool full, const struct pframe_sess *add, size_t nadd,
                  const struct pframe_sess *del, size_t ndel)
{
    struct pframe fr = {.type = PFRAME_SESSIONS};

    if (f->leader == 0)
        return 0;
    if (leading(f)) {
        leader_report(f, f->cfg.node_id, false, add, nadd, del, ndel);
        return 0;
    }
    if (f->need_full && !full)
        return fwd__send_full_report(f);
    fr.u.sessions = (struct pframe_sessions){
        f->cfg.node_id, ++f->generation, f->term, full, add, nadd, del, ndel};
    if (f->env.send(f->env.ud, f->leader, &fr) < 0) {
        f->st.send_failures++;
        f->need_full = true;
        return 0;
    }
    if (full)
        f->need_full = false;
    return 0;
}

int fwd__send_full_report(struct fwd *f)
{
    struct pframe_sess *l = NULL;
    int rc;

    if (leading(f)) {
        f->need_full = false;
        return 0; /* fwd__lead applied our sessions */
    }
    if (f->nlocals > 0 && (l = calloc(f->nlocals, sizeof *l)) == NULL)
        return XE_NOMEM;
    for (size_t i = 0; i < f->nlocals; i++)
        l[i] = (struct pframe_sess){f->locals[i].name, f->locals[i].sid, f->locals[i].ord,
                                    f->locals[i].attr};
    rc = report(f, true, l, f->nlocals, NULL, 0);
    free(l);
    return rc;
}

int fwd__report_one(struct fwd *f, const char *name, uint64_t sid, uint64_t ord,
                    const struct pframe_attr *attr, bool add)
{
    struct pframe_sess s = {name, sid, ord, *attr};

    return add ? report(f, false, &s, 1, NULL, 0) : report(f, false, NULL, 0, &s, 1);
}

/* fwd_name_valid: a component domain, or a client's full JID in its
 * canonical form (clients are reported by full JID). */
static bool fwd_name_valid(const char *name)
{
    struct jid j = {0};
    struct buf b = {0};
    bool ok;

    if (jid_domain_valid(name))
        return true;
    ok = jid_parse(name, &j) == 0 && j.local != NULL && j.resource != NULL &&
         jid_format(&j, &b) == 0 && strcmp(b.data, name) == 0;
    buf_free(&b);
    jid_clear(&j);
    return ok;
}

int fwd_local_add(struct fwd *f, const char *name, uint64_t sid, uint64_t now_ms)
{
    struct pframe_attr none = {0};

    return fwd_local_add_attr(f, name, sid, &none, now_ms);
}

bool fwd_local_room(const struct fwd *f, const char *name)
{
    return f->nlocals < f->cfg.names_max || fwd__local_find(f, name) != NULL;
}

int fwd_local_add_attr(struct fwd *f, const char *name, uint64_t sid,
                       const struct pframe_attr *attr, uint64_t now_ms)
{
    struct fwd_local *l;

    f->now = now_ms;
    if (name == NULL || sid == 0 || attr == NULL || attr->kind > PFRAME_KIND_C2S_WS ||
        (attr->flags & ~PFRAME_ATTR_AVAILABLE) != 0 || !fwd_name_valid(name))
        return XE_INVAL;
    l = fwd__local_find(f, name);
    if (l == NULL) {
        if (f->nlocals == f->locals_cap) {
            size_t cap = f->locals_cap ? f->locals_cap * 2 : 8;
            struct fwd_local *n = realloc(f->locals, cap * sizeof *n);
            if (n == NULL)
                return XE_NOMEM;
            f->locals = n;
            f->locals_cap = cap;
        }
        l = &f->locals[f->nlocals];
        l->name = strdup(name);
        if (l->name == NULL)
            return XE_NOMEM;
        f->nlocals++;
    }
    l->sid = sid;
    l->ord = 0;
    l->attr = *attr;
    fwd__report_one(f, name, sid, 0, attr, true);
    fwd__pump(f); /* stanzas waiting for this name may be ours now */
    return 0;
}

int fwd_local_del(struct fwd *f, const char *name, uint64_t sid, uint64_t now_ms)
{
    struct fwd_local *l;

    f->now = now_ms;
    if (name == NULL)
        return XE_INVAL;
    l = fwd__local_find(f, name);
    if (l == NULL || l->sid != sid)
        return 0;
    free(l->name);
    *l = f->locals[--f->nlocals];
    return fwd__report_one(f, name, sid, 0, &(struct pframe_attr){0}, false);
}

int fwd_local_set_attr(struct fwd *f, const char *name, uint64_t sid,
                       const struct pframe_attr *attr, uint64_t now_ms)
{
    struct fwd_local *l;
    struct pframe_attr u;

    f->now = now_ms;
    if (name == NULL || attr == NULL || attr->kind > PFRAME_KIND_C2S_WS ||
        (attr->flags & ~PFRAME_ATTR_AVAILABLE) != 0)
        return XE_INVAL;
    l = fwd__local_find(f, name);
    if (l == NULL || l->sid != sid)
        return 0;
    if (memcmp(&l->attr, attr, sizeof *attr) == 0)
        return 0;
    l->attr = *attr;
    /* An update, never a new session: the leader keeps the order it gave
     * (or will give on our add, which it gets first: reports keep their
     * order on the channel). */
    u = *attr;
    u.flags |= PFRAME_ATTR_UPDATE;
    return fwd__report_one(f, name, sid, l->ord, &u, true);
}

/* ---- ROUTES (members) ---------------------------------------------------- */

/* sweep_stale drops the entries the leader's whole table did not hold. */
static void sweep_stale(struct fwd *f)
{
    struct fwd_delta d = {0}; /* a member tells no one */

    for (size_t i = 0; i < f->table.h.nb; i++)
        for (struct hlink *l = f->table.h.b[i]; l != NULL; l = l->next)
            ROUTE(l)->keep = ROUTE(l)->gen == f->table.gen;
    drop_unkept(f, 0, &d);
    delta_free(&d);
    f->table.resync = false;
}

int fwd__handle_routes(struct fwd *f, uint64_t node, const struct pframe_routes *t)
{
    /* Another leadership's (an earlier one, or one this node has not
     * learnt yet: once it does, its full report brings the whole table). */
    if (t->term != f->term || f->leader == 0) {
        FLOG(f, LOG_DEBUG,
             "table from %" PRIx64 " term %" PRIu64 " ignored (term %" PRIu64
             ", leader %" PRIx64 ")",
             node, t->term, f->term, f->leader);
        return 0;
    }
    if (node != f->leader || leading(f))
        return XE_PROTO; /* only the leader sends the table, never to itself */
    FLOG(f, LOG_DEBUG, "table from %" PRIx64 " term %" PRIu64 ": %zu set, %zu gone%s%s",
         node, t->term, t->nadd, t->ndel, t->flags & PFRAME_ROUTES_RESET ? ", first" : "",
         t->flags & PFRAME_ROUTES_COMPLETE ? ", whole" : "");
    if (t->flags & PFRAME_ROUTES_RESET) {
        f->table.gen++;
        f->table.resync = true;
        f->complete = false;
    }
    for (size_t i = 0; i < t->ndel; i++)
        fwd__route_del(f, t->del[i].name, t->del[i].node);
    for (size_t i = 0; i < t->nadd; i++)
        if (fwd__route_set(f, t->add[i].name, t->add[i].node, t->add[i].sid,
                           t->add[i].ord, &t->add[i].attr) < 0)
            return XE_NOMEM;
    if (t->flags & PFRAME_ROUTES_COMPLETE) {
        if (f->table.resync)
            sweep_stale(f);
        f->complete = true;
    }
    return 0;
}
