/* fwd.c: end-to-end forwarding (contract in fwd.h, protocol and the order
 * argument in docs/cluster.md "Forwarding"): the origin's unacked table and
 * replay, session reports to the leader, the delivering node's dedup
 * windows and bounces, inputs and timers.  The leader's routing lives in
 * fwd_route.c. */
#include "fwd_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jid.h"
#include "stz.h"
#include "xs.h"

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
    f->acks = calloc(f->cfg.max_windows, sizeof *f->acks);
    if (f->acks == NULL)
        goto err_wins;
    f->held = calloc(f->cfg.hold_max, sizeof *f->held);
    if (f->held == NULL)
        goto err_acks;
    f->env = *env;
    f->front_seq = f->next_seq = f->cursor = 1;
    *out = f;
    return 0;

err_acks:
    free(f->acks);
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

void fwd__ent_clear(struct fwd_ent *e)
{
    free(e->from);
    free(e->to);
    free(e->xml);
    memset(e, 0, sizeof *e);
}

void fwd_free(struct fwd *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->count; i++)
        fwd__ent_clear(&f->ring[(f->head + i) % f->cfg.queue_max]);
    for (size_t i = 0; i < f->nwins; i++)
        free(f->wins[i]);
    for (size_t i = 0; i < f->nheld; i++)
        fwd__ent_clear(&f->held[i].e);
    for (size_t i = 0; i < f->nacks; i++)
        free(f->acks[i].r);
    free(f->acks);
    for (size_t i = 0; i < f->nlocals; i++)
        free(f->locals[i].name);
    fwd__routes_clear(f);
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
        fwd__ent_clear(&f->ring[f->head]);
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
        if (f->leader != f->cfg.node_id && f->env.send(f->env.ud, f->leader, &fr) < 0) {
            f->st.send_failures++;
            break; /* the cursor stays: fwd_pump or the resend timer retries */
        }
        FLOG(f, LOG_TRACE, "sent %" PRIu64 " to %" PRIx64 "%s", seq, f->leader,
             e->sent ? " (again)" : "");
        if (e->sent)
            f->st.replayed++;
        e->sent = true;
        e->sent_ms = f->now;
        f->cursor++;
        if (f->leader == f->cfg.node_id)
            fwd__route_fwd(f, f->cfg.node_id, &fr.u.fwd); /* may ack e: no use after */
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
        fwd__ent_clear(e);
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
            fwd__table_del(f, f->cfg.node_id, del[i].name, del[i].since);
        for (size_t i = 0; i < nadd; i++)
            fwd__table_add(f, f->cfg.node_id, add[i].name, add[i].since);
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

/* ---- delivering: pending ACKs ------------------------------------------- */

static uint64_t range_seqs(const struct pframe_range *r, size_t n)
{
    uint64_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += r[i].last - r[i].first + 1;
    return k;
}

/* pack_drop removes pending entry i (its ACKs are lost: the origin's resend
 * recovers them, as before this table existed). */
static void pack_drop(struct fwd *f, size_t i, bool lost)
{
    if (lost)
        f->st.acks_dropped += range_seqs(f->acks[i].r, f->acks[i].n);
    free(f->acks[i].r);
    f->acks[i] = f->acks[--f->nacks];
    memset(&f->acks[f->nacks], 0, sizeof f->acks[f->nacks]);
}

/* pack_get finds (or makes, evicting the least recently used when all
 * max_windows slots are taken) the pending entry of (origin, inc). */
static struct fwd_pack *pack_get(struct fwd *f, uint64_t origin, uint64_t inc)
{
    size_t lru = 0;

    for (size_t i = 0; i < f->nacks; i++) {
        if (f->acks[i].origin == origin && f->acks[i].inc == inc) {
            f->acks[i].used = ++f->win_clock;
            return &f->acks[i];
        }
        if (f->acks[i].used < f->acks[lru].used)
            lru = i;
    }
    if (f->nacks == f->cfg.max_windows)
        pack_drop(f, lru, true);
    f->acks[f->nacks] = (struct fwd_pack){origin, inc, ++f->win_clock, NULL, 0, 0};
    return &f->acks[f->nacks++];
}

/* pack_add merges seq into p's ascending, disjoint ranges.  At
 * FWD_ACK_RANGES ranges the lowest is dropped (the origin resends it). */
static int pack_add(struct fwd *f, struct fwd_pack *p, uint64_t seq)
{
    size_t i = p->n;

    while (i > 0 && p->r[i - 1].last >= seq)
        i--;
    if (i < p->n && p->r[i].first <= seq)
        return 0; /* already owed */
    if (i > 0 && p->r[i - 1].last + 1 == seq) {
        p->r[i - 1].last = seq;
        if (i < p->n && p->r[i].first == seq + 1) {
            p->r[i - 1].last = p->r[i].last;
            memmove(&p->r[i], &p->r[i + 1], (p->n - i - 1) * sizeof *p->r);
            p->n--;
        }
        return 0;
    }
    if (i < p->n && p->r[i].first == seq + 1) {
        p->r[i].first = seq;
        return 0;
    }
    if (p->n == FWD_ACK_RANGES) {
        f->st.acks_dropped++;
        if (i == 0)
            return 0; /* the new one is the lowest */
        f->st.acks_dropped += range_seqs(&p->r[0], 1) - 1;
        memmove(&p->r[0], &p->r[1], (p->n - 1) * sizeof *p->r);
        p->n--;
        i--;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        struct pframe_range *r = realloc(p->r, cap * sizeof *r);
        if (r == NULL)
            return XE_NOMEM;
        p->r = r;
        p->cap = cap;
    }
    memmove(&p->r[i + 1], &p->r[i], (p->n - i) * sizeof *p->r);
    p->r[i] = (struct pframe_range){seq, seq};
    p->n++;
    return 0;
}

/* pack_flush sends entry i's ranges as one ACK frame; true when the channel
 * took it (the entry is then removed). */
static bool pack_flush(struct fwd *f, size_t i)
{
    struct fwd_pack *p = &f->acks[i];
    struct pframe fr = {.type = PFRAME_ACK};

    if (p->n == 0) {
        pack_drop(f, i, false);
        return true;
    }
    fr.u.ack = (struct pframe_ack){p->inc, p->r, p->n};
    if (f->env.send(f->env.ud, p->origin, &fr) < 0)
        return false;
    pack_drop(f, i, false);
    return true;
}

/* flush_acks sends every pending ACK whose channel has room now (fwd_pump:
 * the edge calls it when a CHAN_ACK frees room on any channel). */
static void flush_acks(struct fwd *f)
{
    size_t i = 0;

    while (i < f->nacks)
        if (!pack_flush(f, i))
            i++;
}

/* send_ack owes fw's origin an ACK and sends every ACK owed to that origin
 * incarnation in one frame if its channel takes it; if not they wait for
 * fwd_pump, merged (never dropped for a full channel: dropping them stalled
 * the origin's queue until resend_ms). */
static void send_ack(struct fwd *f, const struct pframe_fwd *fw)
{
    struct pframe_range r = {fw->seq, fw->seq};
    struct pframe fr = {.type = PFRAME_ACK};
    struct fwd_pack *p;

    if (fw->origin == f->cfg.node_id) {
        handle_ack(f, fw->incarnation, &r, 1);
        return;
    }
    p = pack_get(f, fw->origin, fw->incarnation);
    if (pack_add(f, p, fw->seq) == 0) {
        if (!pack_flush(f, (size_t)(p - f->acks)))
            f->st.acks_deferred++;
        return;
    }
    /* No memory for the pending ranges: the old way, one frame, and a lost
     * ACK heals by the origin's resend (the duplicate is dropped, ACKed). */
    fr.u.ack = (struct pframe_ack){fw->incarnation, &r, 1};
    if (f->env.send(f->env.ud, fw->origin, &fr) < 0) {
        f->st.send_failures++;
        f->st.acks_dropped++;
    }
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

/* fwd__outcome_here delivers fw to a local session (or bounces it when none
 * holds it, or with cond set) once per (origin, incarnation, seq), and ACKs
 * the origin. */
int fwd__outcome_here(struct fwd *f, const struct pframe_fwd *fw, const char *type,
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
        fwd__route_fwd(f, node, &fr->u.fwd);
        break;
    case PFRAME_DELIVER:
        rc = fwd__outcome_here(f, &fr->u.fwd, NULL, NULL);
        break;
    case PFRAME_ACK:
        handle_ack(f, fr->u.ack.origin_incarnation, fr->u.ack.ranges, fr->u.ack.nranges);
        break;
    case PFRAME_SESSIONS:
        rc = fwd__handle_sessions(f, node, &fr->u.sessions);
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
            fwd__ent_clear(&f->held[i].e);
        }
        f->nheld = 0;
        fwd__routes_clear(f);
    }
    f->leader = leader;
    replay_all(f);
    if (leader == f->cfg.node_id) {
        fwd__routes_clear(f);
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
    fwd__apply_early(f);
    pump(f);
    return 0;
}

void fwd_peer_reset(struct fwd *f, uint64_t node, uint64_t now_ms)
{
    f->now = now_ms;
    flush_acks(f); /* the reset channel is empty: owed ACKs fit */
    if (node == f->leader && node != f->cfg.node_id) {
        replay_all(f);
        f->need_full = true;
        send_full_report(f);
    }
    if (f->leader == f->cfg.node_id) {
        fwd__table_forget_node(f, node);
        for (size_t i = 0; i < f->nmembers; i++)
            if (f->members[i].id == node)
                f->members[i].reported = false;
    }
    pump(f);
}

void fwd_pump(struct fwd *f, uint64_t now_ms)
{
    f->now = now_ms;
    flush_acks(f); /* first: acknowledgements never wait behind data */
    if (f->need_full && f->leader != 0 && f->leader != f->cfg.node_id)
        send_full_report(f);
    pump(f);
}

void fwd_tick(struct fwd *f, uint64_t now_ms)
{
    struct fwd_ent *e;

    f->now = now_ms;
    if (f->nheld > 0 && !fwd__warming(f))
        fwd__recheck_held(f);
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
    out->acks_pending = 0;
    for (size_t i = 0; i < f->nacks; i++)
        out->acks_pending += range_seqs(f->acks[i].r, f->acks[i].n);
    out->routes = f->nroutes;
}
