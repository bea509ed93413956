/* fwd.c: end-to-end forwarding through the leader (contract in fwd.h,
 * protocol and order argument in docs/cluster.md "Forwarding").
 *
 * Over 600 lines because the three roles share the dedup windows, the
 * bounce path and the loopback when this node is the leader; splitting them
 * would expose those internals across files. */
#include "fwd.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jid.h"
#include "stz.h"
#include "xs.h"

/* An unacked stanza of this origin. */
struct fwd_ent {
    uint64_t seq;
    char *from, *to, *xml;
    size_t len;
    bool acked;
    bool sent;        /* sent at least once (a later send is a replay) */
    uint64_t sent_ms; /* last send */
};

/* Exact dedup for one origin incarnation: bit s % FWD_WINDOW for seqs in
 * [base, base + FWD_WINDOW); every seq below base had its outcome. */
struct fwd_win {
    uint64_t origin, inc;
    uint64_t base;
    uint64_t used; /* LRU stamp */
    uint64_t gap;  /* highest FWD seq dropped here unrouted; 0: none */
    uint64_t bits[FWD_WINDOW / 64];
};

struct fwd_route {
    char *name;
    uint64_t node;
    uint64_t since;
};

struct fwd_local {
    char *name;
    uint64_t since;
};

/* A stanza the new leader holds until the names are reported. */
struct fwd_held {
    uint64_t node; /* who sent the FWD (origin) */
    struct fwd_ent e;
    uint64_t origin, inc, low_water;
};

struct fwd_member {
    uint64_t id;
    bool reported; /* sent its full report to this leader */
};

/* Reports that came before this node knew it leads their term (the node
 * that sent one learnt of the election first): kept encoded, applied when
 * this node takes the lead in that term. */
#define FWD_MAX_EARLY 64

struct fwd {
    struct fwd_config cfg;
    char *name;
    struct fwd_env env;
    uint64_t now;

    /* origin */
    struct fwd_ent *ring; /* queue_max slots; seqs front..next_seq-1 */
    size_t head, count;
    uint64_t front_seq, next_seq, cursor; /* cursor: next seq to send */
    uint64_t leader;
    uint64_t term; /* the term leader was learnt in */
    bool pumping;
    bool need_full; /* the leader needs a full SESSIONS report */
    uint64_t generation;
    struct fwd_local *locals;
    size_t nlocals, locals_cap;

    /* delivering */
    struct fwd_win **wins;
    size_t nwins;
    uint64_t win_clock;

    /* leader */
    struct fwd_route *routes;
    size_t nroutes, routes_cap;
    struct fwd_member *members;
    size_t nmembers;
    uint64_t warm_until; /* 0 when warm */
    struct fwd_held *held;
    size_t nheld;
    struct buf early[FWD_MAX_EARLY];
    size_t nearly;

    struct fwd_stats st;
};

#define FLOG(f, lvl, fmt, ...)                                                           \
    LOG((f)->env.log, lvl, "%s fwd " fmt, (f)->name, __VA_ARGS__)

void fwd_config_default(struct fwd_config *c)
{
    memset(c, 0, sizeof *c);
    c->queue_max = 4096;
    c->resend_ms = 3000;
    c->warmup_ms = 2000;
    c->hold_max = 4096;
    c->max_windows = 256;
}

int fwd_new(const struct fwd_config *cfg, const struct fwd_env *env, struct fwd **out)
{
    struct fwd_config def;
    struct fwd *f;

    fwd_config_default(&def);
    if (cfg->node_id == 0 || cfg->incarnation == 0 || cfg->queue_max > FWD_WINDOW ||
        env->send == NULL || env->deliver == NULL || env->conflict == NULL)
        return XE_INVAL;
    f = calloc(1, sizeof *f);
    if (f == NULL)
        goto err;
    f->cfg = *cfg;
    if (f->cfg.queue_max == 0)
        f->cfg.queue_max = def.queue_max;
    if (f->cfg.resend_ms == 0)
        f->cfg.resend_ms = def.resend_ms;
    if (f->cfg.warmup_ms == 0)
        f->cfg.warmup_ms = def.warmup_ms;
    if (f->cfg.hold_max == 0)
        f->cfg.hold_max = def.hold_max;
    if (f->cfg.max_windows == 0)
        f->cfg.max_windows = def.max_windows;
    f->name = strdup(cfg->name != NULL ? cfg->name : "-");
    if (f->name == NULL)
        goto err_f;
    f->cfg.name = f->name;
    f->ring = calloc(f->cfg.queue_max, sizeof *f->ring);
    if (f->ring == NULL)
        goto err_name;
    f->wins = calloc(f->cfg.max_windows, sizeof *f->wins);
    if (f->wins == NULL)
        goto err_ring;
    f->held = calloc(f->cfg.hold_max, sizeof *f->held);
    if (f->held == NULL)
        goto err_wins;
    f->env = *env;
    f->front_seq = f->next_seq = f->cursor = 1;
    *out = f;
    return 0;

err_wins:
    free(f->wins);
err_ring:
    free(f->ring);
err_name:
    free(f->name);
err_f:
    free(f);
err:
    return XE_NOMEM;
}

static void ent_clear(struct fwd_ent *e)
{
    free(e->from);
    free(e->to);
    free(e->xml);
    memset(e, 0, sizeof *e);
}

static void routes_clear(struct fwd *f)
{
    for (size_t i = 0; i < f->nroutes; i++)
        free(f->routes[i].name);
    f->nroutes = 0;
}

void fwd_free(struct fwd *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->count; i++)
        ent_clear(&f->ring[(f->head + i) % f->cfg.queue_max]);
    for (size_t i = 0; i < f->nwins; i++)
        free(f->wins[i]);
    for (size_t i = 0; i < f->nheld; i++)
        ent_clear(&f->held[i].e);
    for (size_t i = 0; i < f->nlocals; i++)
        free(f->locals[i].name);
    routes_clear(f);
    for (size_t i = 0; i < f->nearly; i++)
        buf_free(&f->early[i]);
    free(f->routes);
    free(f->locals);
    free(f->members);
    free(f->held);
    free(f->wins);
    free(f->ring);
    free(f->name);
    free(f);
}

/* ---- origin: the unacked table ----------------------------------------- */

static struct fwd_ent *ent_at(struct fwd *f, uint64_t seq)
{
    if (seq < f->front_seq || seq >= f->next_seq)
        return NULL;
    return &f->ring[(f->head + (size_t)(seq - f->front_seq)) % f->cfg.queue_max];
}

/* pop_acked drops acked stanzas from the front: the low-water mark rises. */
static void pop_acked(struct fwd *f)
{
    while (f->count > 0 && f->ring[f->head].acked) {
        ent_clear(&f->ring[f->head]);
        f->head = (f->head + 1) % f->cfg.queue_max;
        f->count--;
        f->front_seq++;
    }
    if (f->cursor < f->front_seq)
        f->cursor = f->front_seq;
}

static void handle_ack(struct fwd *f, uint64_t inc, const struct pframe_range *r,
                       size_t n)
{
    if (inc != f->cfg.incarnation)
        return; /* for an earlier process of ours */
    for (size_t i = 0; i < n; i++) {
        uint64_t lo = r[i].first < f->front_seq ? f->front_seq : r[i].first;
        uint64_t hi = r[i].last >= f->next_seq ? f->next_seq - 1 : r[i].last;
        for (uint64_t s = lo; s <= hi && hi != 0; s++) {
            struct fwd_ent *e = ent_at(f, s);
            if (e != NULL && !e->acked) {
                FLOG(f, LOG_TRACE, "acked %" PRIu64, s);
                e->acked = true;
                free(e->xml);
                e->xml = NULL;
            }
        }
    }
    pop_acked(f);
}

static void route_fwd(struct fwd *f, uint64_t from_node, const struct pframe_fwd *fw);

/* pump sends unsent stanzas, from the cursor, in seq order, to the leader;
 * it stops at the first refusal so that order is kept. */
static void pump(struct fwd *f)
{
    if (f->pumping)
        return; /* a nested originate: the outer loop picks it up */
    f->pumping = true;
    while (f->leader != 0 && f->cursor < f->next_seq) {
        struct fwd_ent *e = ent_at(f, f->cursor);
        struct pframe fr = {.type = PFRAME_FWD};
        uint64_t seq = f->cursor;

        if (e == NULL || e->acked) {
            f->cursor++;
            continue;
        }
        fr.u.fwd = (struct pframe_fwd){
            f->cfg.node_id, f->cfg.incarnation, seq, f->front_seq, e->from, e->to, e->xml,
            e->len};
        FLOG(f, LOG_TRACE, "send %" PRIu64 " to %" PRIx64 "%s", seq, f->leader,
             e->sent ? " (again)" : "");
        if (e->sent)
            f->st.replayed++;
        e->sent = true;
        e->sent_ms = f->now;
        f->cursor++;
        if (f->leader == f->cfg.node_id) {
            route_fwd(f, f->cfg.node_id, &fr.u.fwd); /* may ack e: no use after */
        } else if (f->env.send(f->env.ud, f->leader, &fr) < 0) {
            f->st.send_failures++;
            f->cursor = seq;
            e = ent_at(f, seq);
            if (e != NULL)
                e->sent_ms = f->now;
            break;
        }
    }
    f->pumping = false;
}

/* originate puts a stanza into the unacked table and pumps. */
static int originate(struct fwd *f, const char *from, const char *to, const char *xml,
                     size_t len)
{
    struct fwd_ent *e;

    if (f->count == f->cfg.queue_max) {
        f->st.rejected++;
        return XE_BUSY;
    }
    e = &f->ring[(f->head + f->count) % f->cfg.queue_max];
    memset(e, 0, sizeof *e);
    e->from = strdup(from);
    e->to = strdup(to);
    e->xml = malloc(len + 1);
    if (e->from == NULL || e->to == NULL || e->xml == NULL) {
        ent_clear(e);
        return XE_NOMEM;
    }
    memcpy(e->xml, xml, len);
    e->xml[len] = '\0';
    e->len = len;
    e->seq = f->next_seq++;
    f->count++;
    if (f->leader == 0)
        f->st.queued++;
    pump(f);
    return 0;
}

int fwd_send(struct fwd *f, const char *from, const char *to, const char *xml, size_t len,
             uint64_t now_ms)
{
    int rc;

    f->now = now_ms;
    if (from == NULL || to == NULL || xml == NULL || len == 0 ||
        strlen(from) > PFRAME_MAX_JID || strlen(to) > PFRAME_MAX_JID ||
        memchr(xml, 0, len) != NULL)
        return XE_INVAL;
    rc = originate(f, from, to, xml, len);
    if (rc == 0)
        f->st.forwarded++;
    return rc;
}

/* ---- sessions reports (node side) -------------------------------------- */

static int report(struct fwd *f, bool full, const struct pframe_sess *add, size_t nadd,
                  const struct pframe_sess *del, size_t ndel);

static int send_full_report(struct fwd *f)
{
    struct pframe_sess *l = NULL;
    int rc;

    if (f->nlocals > 0) {
        l = calloc(f->nlocals, sizeof *l);
        if (l == NULL)
            return XE_NOMEM;
    }
    for (size_t i = 0; i < f->nlocals; i++)
        l[i] = (struct pframe_sess){f->locals[i].name, f->locals[i].since};
    rc = report(f, true, l, f->nlocals, NULL, 0);
    free(l);
    return rc;
}

static void table_add(struct fwd *f, uint64_t node, const char *name, uint64_t since);
static void table_del(struct fwd *f, uint64_t node, const char *name, uint64_t since);

/* report sends a SESSIONS report to the leader (or applies it here when this
 * node leads).  A refused incremental report turns into a full one later. */
static int report(struct fwd *f, bool full, const struct pframe_sess *add, size_t nadd,
                  const struct pframe_sess *del, size_t ndel)
{
    struct pframe fr = {.type = PFRAME_SESSIONS};

    if (f->leader == 0)
        return 0;
    if (f->leader == f->cfg.node_id) {
        for (size_t i = 0; i < ndel; i++)
            table_del(f, f->cfg.node_id, del[i].name, del[i].since);
        for (size_t i = 0; i < nadd; i++)
            table_add(f, f->cfg.node_id, add[i].name, add[i].since);
        return 0;
    }
    if (f->need_full && !full)
        return send_full_report(f);
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

static struct fwd_local *local_find(struct fwd *f, const char *name)
{
    for (size_t i = 0; i < f->nlocals; i++)
        if (strcmp(f->locals[i].name, name) == 0)
            return &f->locals[i];
    return NULL;
}

int fwd_local_add(struct fwd *f, const char *name, uint64_t since, uint64_t now_ms)
{
    struct fwd_local *l;
    struct pframe_sess s = {name, since};

    f->now = now_ms;
    if (name == NULL || !jid_domain_valid(name))
        return XE_INVAL;
    l = local_find(f, name);
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
    l->since = since;
    return report(f, false, &s, 1, NULL, 0);
}

int fwd_local_del(struct fwd *f, const char *name, uint64_t since, uint64_t now_ms)
{
    struct fwd_local *l;
    struct pframe_sess s = {name, since};

    f->now = now_ms;
    if (name == NULL)
        return XE_INVAL;
    l = local_find(f, name);
    if (l == NULL || l->since != since)
        return 0;
    free(l->name);
    *l = f->locals[--f->nlocals];
    return report(f, false, NULL, 0, &s, 1);
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

static void table_add(struct fwd *f, uint64_t node, const char *name, uint64_t since)
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

static void table_del(struct fwd *f, uint64_t node, const char *name, uint64_t since)
{
    struct fwd_route *r = route_find(f, name);

    /* A replaced session removing itself later leaves the winner alone. */
    if (r == NULL || r->node != node || r->since != since)
        return;
    free(r->name);
    *r = f->routes[--f->nroutes];
}

static void table_forget_node(struct fwd *f, uint64_t node)
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

static bool warming(const struct fwd *f)
{
    if (f->warm_until == 0 || f->now >= f->warm_until)
        return false;
    for (size_t i = 0; i < f->nmembers; i++)
        if (!f->members[i].reported && f->members[i].id != f->cfg.node_id)
            return true;
    return false;
}

static void recheck_held(struct fwd *f);

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

static int handle_sessions(struct fwd *f, uint64_t node, const struct pframe_sessions *s)
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
        table_forget_node(f, node);
        for (size_t i = 0; i < f->nmembers; i++)
            if (f->members[i].id == node)
                f->members[i].reported = true;
    }
    for (size_t i = 0; i < s->ndel; i++)
        table_del(f, node, s->del[i].name, s->del[i].since);
    for (size_t i = 0; i < s->nadd; i++)
        table_add(f, node, s->add[i].name, s->add[i].since);
    recheck_held(f);
    return 0;
}

/* ---- delivering: dedup windows ------------------------------------------ */

static struct fwd_win *win_get(struct fwd *f, uint64_t origin, uint64_t inc)
{
    struct fwd_win *w = NULL;
    size_t lru = 0;

    for (size_t i = 0; i < f->nwins; i++) {
        if (f->wins[i]->origin == origin && f->wins[i]->inc == inc) {
            w = f->wins[i];
            break;
        }
        if (f->wins[i]->used < f->wins[lru]->used)
            lru = i;
    }
    if (w == NULL) {
        if (f->nwins < f->cfg.max_windows) {
            w = calloc(1, sizeof *w);
            if (w == NULL)
                return NULL;
            f->wins[f->nwins++] = w;
        } else {
            /* Evict the least recently used origin incarnation: only a
             * cluster with more live incarnations than max_windows gets
             * here, and only a stale replay from the evicted one could then
             * be delivered twice. */
            w = f->wins[lru];
            memset(w, 0, sizeof *w);
        }
        w->origin = origin;
        w->inc = inc;
        w->base = 1;
    }
    w->used = ++f->win_clock;
    return w;
}

/* win_slide moves the window's base up to low_water, clearing the bits of
 * the seqs it leaves (the origin has their outcome: it will not send them
 * again). */
static void win_slide(struct fwd_win *w, uint64_t low_water)
{
    if (low_water <= w->base)
        return;
    if (low_water - w->base >= FWD_WINDOW) {
        memset(w->bits, 0, sizeof w->bits);
    } else {
        for (uint64_t s = w->base; s < low_water; s++)
            w->bits[(s % FWD_WINDOW) / 64] &= ~(1ULL << (s % 64));
    }
    w->base = low_water;
}

enum { WIN_NEW, WIN_DUP, WIN_BAD };

/* win_claim records the outcome of (origin, inc, seq) here; WIN_DUP when it
 * already had one. */
static int win_claim(struct fwd *f, const struct pframe_fwd *fw)
{
    struct fwd_win *w = win_get(f, fw->origin, fw->incarnation);
    uint64_t s = fw->seq;

    if (w == NULL)
        return WIN_BAD;
    win_slide(w, fw->low_water);
    if (s < w->base)
        return WIN_DUP;
    if (s - w->base >= FWD_WINDOW)
        return WIN_BAD;
    if (w->bits[(s % FWD_WINDOW) / 64] & (1ULL << (s % 64)))
        return WIN_DUP;
    w->bits[(s % FWD_WINDOW) / 64] |= 1ULL << (s % 64);
    return WIN_NEW;
}

/* mark_gap records that FWD seq was dropped here without an outcome (it
 * came while this node did not lead, or was held when leadership ended).
 * Later FWDs of that origin must not overtake it, so they are dropped too
 * (gap keeps the highest dropped seq) until the origin replays. */
static void mark_gap(struct fwd_win *w, uint64_t seq)
{
    if (seq > w->gap)
        w->gap = seq;
}

/* fwd_gate tells whether FWD fw may be routed now (see mark_gap); when
 * drop is set (not leading) it is dropped and marks the gap.  The gap ends
 * with a frame whose seq is its low-water mark (everything before it has an
 * outcome, and the origin sends the rest in order: this is how a replay or
 * a resend begins) or whose low-water mark is past every dropped seq. */
static bool fwd_gate(struct fwd *f, const struct pframe_fwd *fw, bool drop)
{
    struct fwd_win *w = win_get(f, fw->origin, fw->incarnation);

    if (w == NULL)
        return !drop;
    if (w->gap != 0 && (fw->seq == fw->low_water || fw->low_water > w->gap))
        w->gap = 0;
    if (drop || w->gap != 0) {
        mark_gap(w, fw->seq);
        return false;
    }
    return true;
}

static void send_ack(struct fwd *f, const struct pframe_fwd *fw)
{
    struct pframe_range r = {fw->seq, fw->seq};
    struct pframe fr = {.type = PFRAME_ACK};

    if (fw->origin == f->cfg.node_id) {
        handle_ack(f, fw->incarnation, &r, 1);
        return;
    }
    fr.u.ack = (struct pframe_ack){fw->incarnation, &r, 1};
    /* A lost ACK is safe: the origin resends, we drop it as a duplicate
     * and ACK again. */
    if (f->env.send(f->env.ud, fw->origin, &fr) < 0)
        f->st.send_failures++;
}

/* may_bounce: RFC 6120 §8.3.1 (no error in reply to an error) and §10.4.3
 * (presence to an unavailable entity is dropped, not answered). */
static bool may_bounce(const struct stz *st)
{
    const char *type = stz_attr(st, "type");

    if (strcmp(st->name, "iq") == 0)
        return type != NULL && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
    if (strcmp(st->name, "message") == 0)
        return type == NULL || strcmp(type, "error") != 0;
    return false;
}

/* bounce originates the error reply to fw's stanza from this node. */
static void bounce(struct fwd *f, const struct pframe_fwd *fw, const char *type,
                   const char *cond)
{
    static const char head[] =
        "<stream:stream xmlns='" STZ_NS_COMPONENT "' xmlns:stream='" STZ_NS_STREAMS "'>";
    struct xs *xs = NULL;
    struct xs_event ev = {0}, elem = {0};
    struct stz *reply = NULL;
    struct buf out = {0};

    if (xs_new(NULL, &xs) < 0)
        goto done;
    if (xs_feed(xs, head, sizeof head - 1) < 0 || xs_feed(xs, fw->xml, fw->xml_len) < 0)
        goto done;
    while (xs_next(xs, &ev)) {
        if (ev.kind == XS_EV_ELEM && elem.el == NULL)
            elem = ev;
        else
            stz_free(ev.el);
    }
    if (elem.el == NULL || !may_bounce(elem.el))
        goto done;
    reply = stz_error_reply(elem.el, type, cond, NULL);
    if (reply == NULL || stz_serialize(reply, STZ_NS_COMPONENT, &out) < 0)
        goto done;
    if (originate(f, fw->to, fw->from, out.data, out.len) == 0)
        f->st.bounced++;
done:
    FLOG(f, LOG_DEBUG, "stanza %" PRIx64 "/%" PRIu64 " to %s: %s%s", fw->origin, fw->seq,
         fw->to, cond, f->st.bounced > 0 && reply != NULL ? " (bounced)" : "");
    buf_free(&out);
    stz_free(reply);
    stz_free(elem.el);
    xs_free(xs);
}

/* outcome_here delivers fw to a local session (or bounces it when none
 * holds it, or with cond set) once per (origin, incarnation, seq), and ACKs
 * the origin. */
static int outcome_here(struct fwd *f, const struct pframe_fwd *fw, const char *type,
                        const char *cond)
{
    FLOG(f, LOG_TRACE, "outcome %" PRIx64 "/%" PRIu64 " to %s %s", fw->origin, fw->seq,
         fw->to, cond != NULL ? cond : "deliver");
    switch (win_claim(f, fw)) {
    case WIN_DUP:
        f->st.duplicates++;
        send_ack(f, fw);
        return 0;
    case WIN_BAD:
        f->st.protocol_errors++;
        return XE_PROTO;
    }
    if (cond == NULL) {
        if (f->env.deliver(f->env.ud, fw->from, fw->to, fw->xml, fw->xml_len) == 0)
            f->st.delivered++;
        else
            bounce(f, fw, "cancel", "service-unavailable");
    } else {
        bounce(f, fw, type, cond);
    }
    send_ack(f, fw);
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
        ent_clear(&h->e);
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

static void route_fwd(struct fwd *f, uint64_t from_node, const struct pframe_fwd *fw)
{
    struct jid j = {0};
    uint64_t node = 0;
    struct pframe fr = {.type = PFRAME_DELIVER};

    f->st.routed++;
    if (jid_parse(fw->to, &j) == 0)
        node = fwd_route_lookup(f, j.domain);
    jid_clear(&j);
    FLOG(f, LOG_TRACE, "route %" PRIx64 "/%" PRIu64 " to %s: node %" PRIx64 "%s",
         fw->origin, fw->seq, fw->to, node, node == 0 && warming(f) ? " (hold)" : "");
    if (node == 0) {
        if (!warming(f))
            outcome_here(f, fw, "cancel", "service-unavailable");
        else if (!hold(f, from_node, fw))
            outcome_here(f, fw, "wait", "resource-constraint");
        return;
    }
    if (node == f->cfg.node_id) {
        outcome_here(f, fw, NULL, NULL);
        return;
    }
    fr.u.fwd = *fw;
    if (f->env.send(f->env.ud, node, &fr) < 0) {
        f->st.send_failures++;
        /* Our own stanza (a session here, or a bounce we made) stays in our
         * unacked table and goes again after resend_ms.  Another origin's:
         * tell the sender now rather than drop it silently. */
        if (fw->origin != f->cfg.node_id || fw->incarnation != f->cfg.incarnation)
            outcome_here(f, fw, "wait", "resource-constraint");
    }
}

static void recheck_held(struct fwd *f)
{
    size_t n = f->nheld;
    struct fwd_held *h;
    bool warm = warming(f);

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
        route_fwd(f, h[i].node, &fw);
        ent_clear(&h[i].e);
    }
    free(h);
}

/* ---- inputs, leadership, timers ----------------------------------------- */

int fwd_input(struct fwd *f, uint64_t node, const struct pframe *fr, uint64_t now_ms)
{
    int rc = 0;

    f->now = now_ms;
    switch (fr->type) {
    case PFRAME_FWD:
        if (fr->u.fwd.origin != node) {
            rc = XE_PROTO;
            break;
        }
        if (!fwd_gate(f, &fr->u.fwd, f->leader != f->cfg.node_id)) {
            f->st.misrouted++; /* the origin replays it to the real leader */
            FLOG(f, LOG_TRACE, "FWD %" PRIx64 "/%" PRIu64 " dropped (%s)", node,
                 fr->u.fwd.seq,
                 f->leader != f->cfg.node_id ? "not leader" : "behind a gap");
            break;
        }
        route_fwd(f, node, &fr->u.fwd);
        break;
    case PFRAME_DELIVER:
        rc = outcome_here(f, &fr->u.fwd, NULL, NULL);
        break;
    case PFRAME_ACK:
        handle_ack(f, fr->u.ack.origin_incarnation, fr->u.ack.ranges, fr->u.ack.nranges);
        break;
    case PFRAME_SESSIONS:
        rc = handle_sessions(f, node, &fr->u.sessions);
        break;
    case PFRAME_CONFLICT:
        f->env.conflict(f->env.ud, fr->u.conflict.name, fr->u.conflict.since);
        break;
    default:
        return XE_INVAL;
    }
    if (rc == XE_PROTO) {
        f->st.protocol_errors++;
        FLOG(f, LOG_WARN, "bad %s from node %" PRIx64, pframe_type_name(fr->type), node);
    }
    pump(f);
    return rc;
}

int fwd_set_members(struct fwd *f, const uint64_t *ids, size_t n)
{
    struct fwd_member *m = calloc(n > 0 ? n : 1, sizeof *m);

    if (m == NULL)
        return XE_NOMEM;
    for (size_t i = 0; i < n; i++) {
        m[i].id = ids[i];
        for (size_t k = 0; k < f->nmembers; k++)
            if (f->members[k].id == ids[i])
                m[i].reported = f->members[k].reported;
    }
    free(f->members);
    f->members = m;
    f->nmembers = n;
    return 0;
}

/* replay_all makes every unacked stanza go out again from the front. */
static void replay_all(struct fwd *f)
{
    f->cursor = f->front_seq;
}

/* apply_early applies the kept reports meant for this leadership and drops
 * those that can no longer be. */
static void apply_early(struct fwd *f)
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
                handle_sessions(f, fr.u.sessions.node_id, &fr.u.sessions);
            pframe_release(&fr);
        }
        if (later)
            f->early[keep++] = *b;
        else
            buf_free(b);
    }
    f->nearly = keep;
}

int fwd_set_leader(struct fwd *f, uint64_t leader, uint64_t term, uint64_t now_ms)
{
    f->now = now_ms;
    if (leader == f->leader && term == f->term)
        return 0;
    f->term = term;
    FLOG(f, LOG_INFO, "leader %" PRIx64 " -> %" PRIx64 ", %zu unacked to replay",
         f->leader, leader, f->count);
    if (f->leader == f->cfg.node_id) {
        /* No longer leading (or leading again in a new term): held stanzas
         * are dropped unacked; their origins replay them. */
        for (size_t i = 0; i < f->nheld; i++) {
            struct fwd_win *w = win_get(f, f->held[i].origin, f->held[i].inc);
            if (w != NULL)
                mark_gap(w, f->held[i].e.seq);
            ent_clear(&f->held[i].e);
        }
        f->nheld = 0;
        routes_clear(f);
    }
    f->leader = leader;
    replay_all(f);
    if (leader == f->cfg.node_id) {
        routes_clear(f);
        for (size_t i = 0; i < f->nmembers; i++)
            f->members[i].reported = false;
        f->warm_until = now_ms + f->cfg.warmup_ms;
        if (f->warm_until == 0)
            f->warm_until = 1;
    }
    if (leader != 0) {
        f->need_full = true;
        if (send_full_report(f) < 0)
            return XE_NOMEM;
    }
    apply_early(f);
    pump(f);
    return 0;
}

void fwd_peer_reset(struct fwd *f, uint64_t node, uint64_t now_ms)
{
    f->now = now_ms;
    if (node == f->leader && node != f->cfg.node_id) {
        replay_all(f);
        f->need_full = true;
        send_full_report(f);
    }
    if (f->leader == f->cfg.node_id) {
        table_forget_node(f, node);
        for (size_t i = 0; i < f->nmembers; i++)
            if (f->members[i].id == node)
                f->members[i].reported = false;
    }
    pump(f);
}

void fwd_pump(struct fwd *f, uint64_t now_ms)
{
    f->now = now_ms;
    if (f->need_full && f->leader != 0 && f->leader != f->cfg.node_id)
        send_full_report(f);
    pump(f);
}

void fwd_tick(struct fwd *f, uint64_t now_ms)
{
    struct fwd_ent *e;

    f->now = now_ms;
    if (f->nheld > 0 && !warming(f))
        recheck_held(f);
    if (f->warm_until != 0 && now_ms >= f->warm_until)
        f->warm_until = 0;
    e = ent_at(f, f->front_seq);
    if (f->leader != 0 && e != NULL && e->sent && f->cursor > e->seq &&
        now_ms - e->sent_ms >= f->cfg.resend_ms) {
        /* No ACK for resend_ms: the leader may have lost it (a full channel
         * toward the origin, a reset it did not see).  Duplicates are
         * dropped by the delivering node. */
        FLOG(f, LOG_DEBUG, "no ack for seq %" PRIu64 " in %" PRIu64 " ms, resending %zu",
             e->seq, now_ms - e->sent_ms, f->count);
        replay_all(f);
    }
    fwd_pump(f, now_ms);
}

uint64_t fwd_next_deadline(const struct fwd *f)
{
    uint64_t d = FWD_NO_DEADLINE;
    struct fwd_ent *e = ent_at((struct fwd *)f, f->front_seq);

    if (f->warm_until != 0)
        d = f->warm_until;
    if (f->leader != 0 && e != NULL && e->sent && e->sent_ms + f->cfg.resend_ms < d)
        d = e->sent_ms + f->cfg.resend_ms;
    return d;
}

void fwd_get_stats(const struct fwd *f, struct fwd_stats *out)
{
    *out = f->st;
    out->waiting = f->count;
    out->routes = f->nroutes;
}
