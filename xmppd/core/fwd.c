/* fwd.c: forwarding (contract in fwd.h, guarantee in docs/cluster.md
 * "Forwarding"): the origin's queues and outcomes, the receiving node's
 * deliveries and owed ACKs, inputs, membership and timers.  The routing
 * table, reports and the leader's side live in fwd_route.c. */
#include "fwd_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jid.h"
#include "never.h"
#include "rt.h"
#include "stz.h"
#include "xs.h"

void fwd_config_default(struct fwd_config *c)
{
    memset(c, 0, sizeof *c);
    c->queue_max = 4096;
    c->queue_bytes = 64u << 20;
    c->inflight_max = 4096;
    c->hold_ms = 5000;
    c->warmup_ms = 2000;
    c->names_max = 4096;
}

int fwd_new(const struct fwd_config *cfg, const struct fwd_env *env, struct fwd **out)
{
    struct fwd_config def;
    struct fwd *f;

    fwd_config_default(&def);
    if (cfg->node_id == 0 || cfg->incarnation == 0 ||
        cfg->inflight_max > PFRAME_MAX_LIST || env->send == NULL || env->find == NULL)
        return XE_INVAL;
    f = calloc(1, sizeof *f);
    if (f == NULL)
        return XE_NOMEM;
    f->cfg = *cfg;
#define FWD_DEFAULT(field)                                                               \
    if (f->cfg.field == 0)                                                               \
    f->cfg.field = def.field
    FWD_DEFAULT(queue_max);
    FWD_DEFAULT(queue_bytes);
    FWD_DEFAULT(inflight_max);
    FWD_DEFAULT(hold_ms);
    FWD_DEFAULT(warmup_ms);
    FWD_DEFAULT(names_max);
#undef FWD_DEFAULT
    f->name = strdup(cfg->name != NULL ? cfg->name : "-");
    if (f->name == NULL) {
        free(f);
        return XE_NOMEM;
    }
    f->cfg.name = f->name;
    f->env = *env;
    f->next_seq = 1;
    *out = f;
    return 0;
}

static void ent_free(struct fwd_ent *e)
{
    free(e); /* strings included */
}

static void q_push(struct fwd_q *q, struct fwd_ent *e)
{
    e->next = NULL;
    if (q->tail != NULL)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
    q->bytes += e->len;
}

/* q_unlink removes e, whose predecessor is prev (NULL: e is the head). */
static void q_unlink(struct fwd_q *q, struct fwd_ent *prev, struct fwd_ent *e)
{
    if (prev != NULL)
        prev->next = e->next;
    else
        q->head = e->next;
    if (q->tail == e)
        q->tail = prev;
    q->n--;
    q->bytes -= e->len;
    e->next = NULL;
}

static void q_clear(struct fwd_q *q)
{
    while (q->head != NULL) {
        struct fwd_ent *e = q->head;
        q_unlink(q, NULL, e);
        ent_free(e);
    }
}

static void rset_clear(struct fwd_rset *s)
{
    free(s->r);
    memset(s, 0, sizeof *s);
}

void fwd_free(struct fwd *f)
{
    if (f == NULL)
        return;
    q_clear(&f->unsent);
    for (size_t i = 0; i < f->npeers; i++) {
        q_clear(&f->peers[i].inflight);
        rset_clear(&f->peers[i].owe_d);
        rset_clear(&f->peers[i].owe_b);
    }
    for (size_t i = 0; i < f->nlocals; i++)
        free(f->locals[i].name);
    for (size_t i = 0; i < f->nearly; i++)
        buf_free(&f->early[i]);
    fwd__table_free(&f->table);
    fwd__heard_free(f);
    fwd__acts_free(f);
    free(f->peers);
    free(f->locals);
    free(f->name);
    free(f);
}

/* ---- peers -------------------------------------------------------------- */

struct fwd_peer *fwd__peer(struct fwd *f, uint64_t id, bool create)
{
    struct fwd_peer *p;

    for (size_t i = 0; i < f->npeers; i++)
        if (f->peers[i].id == id)
            return &f->peers[i];
    if (!create || id == 0)
        return NULL;
    if (f->npeers == f->peers_cap) {
        size_t cap = f->peers_cap ? f->peers_cap * 2 : 8;
        p = realloc(f->peers, cap * sizeof *p);
        if (p == NULL)
            return NULL;
        f->peers = p;
        f->peers_cap = cap;
    }
    p = &f->peers[f->npeers++];
    memset(p, 0, sizeof *p);
    p->id = id;
    return p;
}

bool fwd__is_member(const struct fwd *f, uint64_t id)
{
    if (id == f->cfg.node_id)
        return true;
    for (size_t i = 0; i < f->npeers; i++)
        if (f->peers[i].id == id)
            return f->peers[i].member;
    return false;
}

/* ---- origin: answering the sender --------------------------------------- */

/* answer_to gives the sender (from, a local session) of the stanza seq
 * (xml, len bytes, to 'to') the error reply type/cond (RFC 6120 §8.3),
 * unless the stanza may not be answered (§8.3.1: no error to an error;
 * presence and iq results are dropped, RFC 6121 §4.3). */
static void answer_to(struct fwd *f, uint64_t seq, const char *from, const char *to,
                      const char *xml, size_t len, const char *type, const char *cond)
{
    static const char head[] =
        "<stream:stream xmlns='" STZ_NS_COMPONENT "' xmlns:stream='" STZ_NS_STREAMS "'>";
    struct xs *xs = NULL;
    struct xs_event ev = {0}, elem = {0};
    struct stz *reply = NULL;
    struct buf out = {0};
    struct xs_limits lim;
    bool sent = false;
    void *dest;

    /* The stanza passed the sender's framer; a frame can carry more than
     * its default limit, so parse with the frame's. */
    xs_limits_default(&lim);
    lim.max_stanza_bytes = PFRAME_MAX_BODY;
    if (xs_new(&lim, &xs) < 0)
        goto done;
    if (xs_feed(xs, head, sizeof head - 1) < 0 || xs_feed(xs, xml, len) < 0)
        goto done;
    while (xs_next(xs, &ev)) {
        if (ev.kind == XS_EV_ELEM && elem.el == NULL)
            elem = ev;
        else
            stz_free(ev.el);
    }
    if (elem.el == NULL || !rt_may_bounce(elem.el))
        goto done;
    reply = stz_error_reply(elem.el, type, cond, NULL);
    if (reply == NULL || stz_serialize(reply, STZ_NS_COMPONENT, &out) < 0)
        goto done;
    dest = f->env.find(f->env.ud, from);
    sent = dest != NULL && fwd__act_deliver(f, dest, to, from, out.data, out.len, true,
                                            FWD_SRC_REPLY, 0, 0, seq) == 0;
    if (sent)
        f->st.errors++;
done:
    FLOG(f, LOG_DEBUG, "stanza %" PRIu64 " to %s: %s%s", seq, to, cond,
         sent ? " (sender told)" : "");
    buf_free(&out);
    stz_free(reply);
    stz_free(elem.el);
    xs_free(xs);
}

/* answer gives the sender of e the error reply type/cond (answer_to). */
static void answer(struct fwd *f, const struct fwd_ent *e, const char *type,
                   const char *cond)
{
    answer_to(f, e->seq, e->from, e->to, e->xml, e->len, type, cond);
}

/* ---- origin: handing stanzas to channels -------------------------------- */

/* route_of returns the node the table puts e's destination on, or 0: a
 * client's full JID (a name of its own) first, then the domain. */
static uint64_t route_of(const struct fwd *f, const struct fwd_ent *e)
{
    uint64_t node = 0;

    if (e->full != NULL) {
        const struct fwd_route *r = fwd__table_find(&f->table, e->full);
        node = r != NULL ? r->node : 0;
    }
    if (node == 0 && e->domain != NULL)
        node = fwd_route_lookup(f, e->domain);
    /* Only what the table cannot route looks at the names heard (a JID
     * within a component's domain never gets here). */
    if (node == 0 && e->full != NULL)
        node = fwd__heard_node(f, e->full);
    if (node == 0 && e->domain != NULL)
        node = fwd__heard_node(f, e->domain);
    return node;
}

enum { TRY_KEEP, TRY_DONE };

/* try_hand hands waiting stanza e to the node holding its destination, or
 * gives it its outcome here.  TRY_KEEP: it waits (the name is unknown while
 * the table is not whole or there is no leader; that node's link is down,
 * its channel full, or its in-flight queue at inflight_max); TRY_DONE: e
 * left the unsent queue (the caller unlinks it: it goes on an inflight
 * queue, or it had its outcome here and is freed). */
static int try_hand(struct fwd *f, struct fwd_ent *e, bool *moved)
{
    uint64_t node = route_of(f, e);
    struct fwd_peer *p;
    struct pframe fr = {.type = PFRAME_FWD};
    void *dest;

    *moved = false;
    if (node == 0 && (!f->complete || f->leader == 0))
        return TRY_KEEP; /* a leader's table will say (hold_ms at most); with
                            no leader, a session that just moved cannot be
                            in any table yet */
    if (node == f->cfg.node_id && (dest = f->env.find(f->env.ud, e->to)) != NULL)
        /* A session of ours took the name meanwhile (no memory to list
         * it: it waits, at most hold_ms).  The delivery copies the stanza:
         * should the caller find the session gone, it is answered from
         * that copy (fwd__settle). */
        return fwd__act_deliver(f, dest, e->from, e->to, e->xml, e->len, true,
                                FWD_SRC_OURS, 0, 0, e->seq) == 0
                   ? TRY_DONE
                   : TRY_KEEP;
    if (node == 0 || node == f->cfg.node_id || !fwd__is_member(f, node)) {
        /* RFC 6120 §8.3.3.19: no node of the cluster holds the name. */
        f->st.unroutable++;
        answer(f, e, "cancel", "service-unavailable");
        return TRY_DONE;
    }
    p = fwd__peer(f, node, true);
    if (p == NULL || !p->link_up || p->blocked || p->inflight.n >= f->cfg.inflight_max)
        return TRY_KEEP;
    fr.u.fwd = (struct pframe_fwd){
        f->cfg.node_id,
        f->cfg.incarnation,
        e->seq,
        p->inflight.head != NULL && p->inflight.head->seq < e->seq ? p->inflight.head->seq
                                                                   : e->seq,
        e->from,
        e->to,
        e->xml,
        e->len};
    if (f->env.send(f->env.ud, node, &fr) < 0) {
        f->st.send_failures++;
        p->blocked = true; /* the rest for it waits for fwd_pump, in order */
        return TRY_KEEP;
    }
    FLOG(f, LOG_TRACE, "stanza %" PRIu64 " to %s handed to %" PRIx64, e->seq, e->to,
         node);
    f->st.sent++;
    e->node = node;
    *moved = true;
    return TRY_DONE;
}

/* fwd__pump hands waiting stanzas over in seq order.  A stanza waits while
 * the node it goes to refuses (p->blocked), so later stanzas to that node
 * wait behind it and order holds; stanzas to other nodes go on. */
void fwd__pump(struct fwd *f)
{
    struct fwd_ent *prev = NULL, *e;

    for (size_t i = 0; i < f->npeers; i++)
        f->peers[i].blocked = false;
    e = f->unsent.head;
    while (e != NULL) {
        struct fwd_ent *next = e->next;
        bool moved;

        if (try_hand(f, e, &moved) == TRY_KEEP) {
            prev = e;
        } else {
            q_unlink(&f->unsent, prev, e);
            if (moved)
                q_push(&fwd__peer(f, e->node, false)->inflight, e);
            else
                ent_free(e);
        }
        e = next;
    }
}

int fwd_send(struct fwd *f, const char *from, const char *to, const char *xml, size_t len,
             uint64_t now_ms)
{
    struct fwd_ent *e;
    struct jid j = {0};
    struct buf full = {0};
    size_t flen, tlen, dlen;
    char *p;
    int rc;

    f->now = now_ms;
    if (from == NULL || to == NULL || xml == NULL || len == 0 ||
        strlen(from) > PFRAME_MAX_JID || strlen(to) > PFRAME_MAX_JID ||
        memchr(xml, 0, len) != NULL)
        return XE_INVAL;
    if (f->unsent.n >= f->cfg.queue_max || f->unsent.bytes + len > f->cfg.queue_bytes) {
        f->st.rejected++;
        return XE_BUSY;
    }
    /* The destination is parsed once here, not on every pump (route_of). */
    rc = jid_parse(to, &j);
    if (rc == XE_NOMEM)
        return rc;
    if (rc == 0 && j.local != NULL && j.resource != NULL && jid_format(&j, &full) < 0) {
        jid_clear(&j);
        return XE_NOMEM;
    }
    flen = strlen(from) + 1;
    tlen = strlen(to) + 1;
    dlen = j.domain != NULL ? strlen(j.domain) + 1 : 0;
    e = malloc(sizeof *e + flen + tlen + len + 1 + dlen + (full.len ? full.len + 1 : 0));
    if (e == NULL) {
        jid_clear(&j);
        buf_free(&full);
        return XE_NOMEM;
    }
    memset(e, 0, sizeof *e);
    p = (char *)(e + 1);
    e->from = memcpy(p, from, flen);
    p += flen;
    e->to = memcpy(p, to, tlen);
    p += tlen;
    e->xml = memcpy(p, xml, len);
    e->xml[len] = '\0';
    p += len + 1;
    if (dlen > 0) {
        e->domain = memcpy(p, j.domain, dlen);
        p += dlen;
    }
    if (full.len > 0) {
        memcpy(p, full.data, full.len);
        p[full.len] = '\0';
        e->full = p;
    }
    jid_clear(&j);
    buf_free(&full);
    e->len = len;
    e->seq = f->next_seq++;
    e->queued_ms = now_ms;
    q_push(&f->unsent, e);
    f->st.forwarded++;
    fwd__pump(f);
    return 0;
}

/* ---- origin: outcomes ---------------------------------------------------- */

static bool in_ranges(const struct pframe_range *r, size_t n, uint64_t seq)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].last < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && r[lo].first <= seq;
}

static uint64_t ranges_max(const struct pframe_range *r, size_t n)
{
    return n > 0 ? r[n - 1].last : 0;
}

/* handle_ack takes node's outcomes of our stanzas it owns. */
static void handle_ack(struct fwd *f, uint64_t node, const struct pframe_ack *a)
{
    struct fwd_peer *p = fwd__peer(f, node, false);
    struct fwd_ent *prev = NULL, *e;
    uint64_t top = ranges_max(a->ranges, a->nranges);

    if (a->origin_incarnation != f->cfg.incarnation || p == NULL)
        return; /* for an earlier process of ours */
    if (ranges_max(a->bounced, a->nbounced) > top)
        top = ranges_max(a->bounced, a->nbounced);
    /* The holder gives outcomes in the order it got the stanzas, which is
     * the order of the inflight queue (not always seq order: a waiting
     * stanza whose route changed goes after later ones), so the ones this
     * ACK covers are at the front, up to its highest seq. */
    e = p->inflight.head;
    while (e != NULL && e->seq <= top) {
        struct fwd_ent *next = e->next;
        bool ok = in_ranges(a->ranges, a->nranges, e->seq);
        bool no = !ok && in_ranges(a->bounced, a->nbounced, e->seq);

        if (ok || no) {
            q_unlink(&p->inflight, prev, e);
            if (ok) {
                f->st.acked++;
            } else {
                /* The holder had no session of the name: not delivered,
                 * and never will be (it owned the only copy). */
                f->st.refused++;
                answer(f, e, "cancel", "service-unavailable");
            }
            ent_free(e);
        } else {
            prev = e;
        }
        e = next;
    }
}

/* drop_inflight forgets the stanzas node owns: it restarted or left, so
 * their outcome is unknown (its sessions ended with it). */
static void drop_inflight(struct fwd *f, struct fwd_peer *p, const char *why)
{
    if (p->inflight.n == 0)
        return;
    FLOG(f, LOG_INFO, "%zu stanzas handed to node %" PRIx64 " lost (%s)", p->inflight.n,
         p->id, why);
    f->st.lost += p->inflight.n;
    q_clear(&p->inflight);
}

/* ---- receiving node: outcomes and owed ACKs ------------------------------ */

/* rset_add merges seq into s's ascending, disjoint ranges (seqs mostly
 * come in ascending order: the origin hands them over in seq order, except
 * when a waiting stanza's route changed).  0, XE_LIMIT (PFRAME_MAX_LIST
 * ranges: more than an honest origin has in flight) or XE_NOMEM. */
static int rset_add(struct fwd_rset *s, uint64_t seq)
{
    size_t i = s->n;

    while (i > 0 && s->r[i - 1].first > seq)
        i--;
    /* now every range before i starts at or below seq */
    if (i > 0 && s->r[i - 1].last >= seq)
        return 0; /* already owed */
    if (i > 0 && s->r[i - 1].last + 1 == seq) {
        s->r[i - 1].last = seq;
        if (i < s->n && s->r[i].first == seq + 1) {
            s->r[i - 1].last = s->r[i].last;
            memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof *s->r);
            s->n--;
        }
        return 0;
    }
    if (i < s->n && s->r[i].first == seq + 1) {
        s->r[i].first = seq;
        return 0;
    }
    if (s->n == PFRAME_MAX_LIST)
        return XE_LIMIT;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        struct pframe_range *r = realloc(s->r, cap * sizeof *r);
        if (r == NULL)
            return XE_NOMEM;
        s->r = r;
        s->cap = cap;
    }
    memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof *s->r);
    s->r[i] = (struct pframe_range){seq, seq};
    s->n++;
    return 0;
}

/* flush_owed sends what p is owed as one ACK; true when nothing is left. */
static bool flush_owed(struct fwd *f, struct fwd_peer *p)
{
    struct pframe fr = {.type = PFRAME_ACK};

    if (p->owe_d.n + p->owe_b.n == 0)
        return true;
    fr.u.ack =
        (struct pframe_ack){p->owe_inc, p->owe_d.r, p->owe_d.n, p->owe_b.r, p->owe_b.n};
    if (f->env.send(f->env.ud, p->id, &fr) < 0) {
        f->st.acks_deferred++;
        return false; /* kept, merged, sent by fwd_pump */
    }
    p->owe_d.n = p->owe_b.n = 0;
    return true;
}

/* owe records that origin p (incarnation inc) is owed the outcome of its
 * stanza seq: delivered here (ok) or bounced.  0, XE_PROTO (more ranges
 * than an honest origin has in flight: counted) or XE_NOMEM. */
static inline int owe(struct fwd *f, struct fwd_peer *p, uint64_t inc, uint64_t seq,
                      bool ok)
{
    int rc;

    if (p->owe_inc != inc)
        return 0; /* that process of the origin restarted since: moot */
    if (ok)
        f->st.delivered++;
    else
        f->st.bounced++;
    rc = rset_add(ok ? &p->owe_d : &p->owe_b, seq);
    if (rc < 0) {
        FLOG(f, LOG_WARN, "outcome of stanza %" PRIx64 "/%" PRIu64 " not owed (%s)",
             p->id, seq, xe_strerror(rc));
        return rc == XE_LIMIT ? XE_PROTO : rc;
    }
    /* Owed, not sent yet: the edge sends every owed outcome as one ACK per
     * peer at the end of its input batch (fwd_flush). */
    f->owed = true;
    return 0;
}

/* handle_fwd gives a stanza from origin node its one outcome here: bounced
 * now when no session of ours holds its name, or listed for delivery, its
 * outcome owed once the caller has carried it out (fwd__settle). */
static int handle_fwd(struct fwd *f, uint64_t node, const struct pframe_fwd *fw)
{
    struct fwd_peer *p;
    void *dest;

    if (fw->origin != node)
        return XE_PROTO;
    p = fwd__peer(f, node, true);
    if (p == NULL)
        return XE_NOMEM;
    if (p->owe_inc != fw->incarnation) {
        /* The origin restarted (its channel reset dropped what we owed the
         * old process already, unless the reset is still to come). */
        p->owe_d.n = p->owe_b.n = 0;
        p->owe_inc = fw->incarnation;
    }
    /* A reply to fw->from may come before the table has it (fwd_heard.c). */
    fwd__heard_note(f, fw->from, node);
    /* The bytes stay the frame's: the caller takes the update before it
     * releases the frame (fwd_take).  No memory to list the delivery: it
     * is refused, so that it still has one outcome (the origin answers
     * its sender). */
    dest = f->env.find(f->env.ud, fw->to);
    if (dest != NULL && fwd__act_deliver(f, dest, fw->from, fw->to, fw->xml, fw->xml_len,
                                         false, FWD_SRC_HELD, (uint32_t)(p - f->peers),
                                         fw->incarnation, fw->seq) == 0) {
        FLOG(f, LOG_TRACE, "stanza %" PRIx64 "/%" PRIu64 " to %s listed", node, fw->seq,
             fw->to);
        return 0;
    }
    FLOG(f, LOG_TRACE, "stanza %" PRIx64 "/%" PRIu64 " to %s refused: no session here",
         node, fw->seq, fw->to);
    return owe(f, p, fw->incarnation, fw->seq, false);
}

/* settle_one gives delivery a (note n), carried out, its outcome. */
static void settle_one(struct fwd *f, const struct fwd_act *a, const struct fwd_note *n)
{
    if (n->undelivered)
        f->st.undelivered++;
    switch (n->src) {
    case FWD_SRC_HELD:
        /* The session that fwd found for it was gone when the caller came
         * to it (closed by an earlier act of the update: a conflict, a
         * failed write), or its connection refused the bytes: not
         * delivered, so the origin answers its sender; never an ACK for a
         * stanza dropped (DESIGN "Forwarding": one outcome). */
        if (owe(f, &f->peers[n->peer], n->inc, n->seq, !n->undelivered) == XE_PROTO)
            f->st.protocol_errors++;
        break;
    case FWD_SRC_OURS:
        /* RFC 6120 §8.3.3.19: the session of the name is gone; it was
         * never written, so an error is its one outcome. */
        FLOG(f, LOG_DEBUG, "stanza %" PRIu64 " to %s: its session here is gone", n->seq,
             a->to);
        answer_to(f, n->seq, a->from, a->to, a->xml, a->len, "cancel",
                  "service-unavailable");
        break;
    default:
        /* An error reply whose sender is gone: no error to an error
         * (RFC 6120 §8.3.1). */
        break;
    }
}

void fwd__settle(struct fwd *f, const struct fwd_acts *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct fwd_note *n = &t->note[i];
        if (t->a[i].kind == FWD_ACT_DELIVER && (n->src == FWD_SRC_HELD || n->undelivered))
            settle_one(f, &t->a[i], n);
    }
}

void fwd_flush(struct fwd *f, uint64_t now_ms)
{
    f->now = now_ms;
    if (!f->owed)
        return;
    f->owed = false;
    /* What a full channel refuses stays owed and goes out on fwd_pump (the
     * edge pumps on every CHAN_ACK). */
    for (size_t i = 0; i < f->npeers; i++)
        flush_owed(f, &f->peers[i]);
}

/* ---- inputs --------------------------------------------------------------- */

int fwd_input(struct fwd *f, uint64_t node, const struct pframe *fr, uint64_t now_ms)
{
    int rc = 0;

    /* The edge passes frames of authenticated peer links (plink), never
     * its own. */
    if (XD_NEVER(fr == NULL || node == 0 || node == f->cfg.node_id))
        return XE_INVAL;
    f->now = now_ms;
    switch (fr->type) {
    case PFRAME_FWD:
        rc = handle_fwd(f, node, &fr->u.fwd);
        break;
    case PFRAME_DELIVER:
        rc = XE_PROTO; /* the leader no longer relays stanzas */
        break;
    case PFRAME_ACK:
        handle_ack(f, node, &fr->u.ack);
        break;
    case PFRAME_SESSIONS:
        rc = fwd__handle_sessions(f, node, &fr->u.sessions);
        break;
    case PFRAME_ROUTES:
        rc = fwd__handle_routes(f, node, &fr->u.routes);
        break;
    case PFRAME_CONFLICT:
        /* From a leader of any term (this node may not know the newest
         * yet); it names one session by sid, so a stale one is harmless. */
        if (!fwd__is_member(f, node))
            rc = XE_PROTO;
        else
            rc = fwd__act_conflict(f, fr->u.conflict.name, fr->u.conflict.sid);
        break;
    default:
        return XE_INVAL;
    }
    if (rc == XE_PROTO) {
        f->st.protocol_errors++;
        FLOG(f, LOG_WARN, "bad %s from node %" PRIx64, pframe_type_name(fr->type), node);
    }
    fwd__pump(f);
    return rc;
}

/* ---- membership, leadership, resets --------------------------------------- */

/* forget_peer drops what is tied to a node that restarted or left. */
static void forget_peer(struct fwd *f, struct fwd_peer *p, const char *why)
{
    drop_inflight(f, p, why);
    p->owe_d.n = p->owe_b.n = 0;
    p->reported = p->synced = p->want_full = false;
    if (f->leader == f->cfg.node_id)
        fwd__forget_node(f, p->id);
}

int fwd_set_members(struct fwd *f, const uint64_t *ids, size_t n, uint64_t now_ms)
{
    if (XD_NEVER(ids == NULL && n > 0))
        return XE_INVAL;
    f->now = now_ms;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != f->cfg.node_id && fwd__peer(f, ids[i], true) == NULL)
            return XE_NOMEM;
    for (size_t i = 0; i < f->npeers; i++) {
        struct fwd_peer *p = &f->peers[i];
        bool member = false;

        for (size_t k = 0; k < n; k++)
            member = member || ids[k] == p->id;
        if (p->member && !member)
            forget_peer(f, p, "left the cluster");
        p->member = member;
    }
    fwd__pump(f); /* stanzas to names of a node that left now bounce */
    return 0;
}

int fwd_set_leader(struct fwd *f, uint64_t leader, uint64_t term, uint64_t now_ms)
{
    f->now = now_ms;
    if (leader == f->leader && term == f->term)
        return 0;
    FLOG(f, LOG_INFO, "leader %" PRIx64 " -> %" PRIx64 " (term %" PRIu64 ")", f->leader,
         leader, term);
    f->leader = leader;
    f->term = term;
    if (leader == f->cfg.node_id)
        fwd__lead(f);
    if (leader != 0) {
        f->need_full = true;
        if (fwd__send_full_report(f) < 0)
            return XE_NOMEM;
    }
    fwd__apply_early(f);
    fwd__pump(f);
    return 0;
}

void fwd_peer_reset(struct fwd *f, uint64_t node, uint64_t now_ms)
{
    struct fwd_peer *p;

    if (XD_NEVER(node == 0 || node == f->cfg.node_id))
        return; /* there is no channel to oneself */
    p = fwd__peer(f, node, false);
    f->now = now_ms;
    if (p != NULL)
        forget_peer(f, p, "its channel was reset");
    if (node == f->leader && node != f->cfg.node_id) {
        f->need_full = true; /* the new leader process has none of ours */
        fwd__send_full_report(f);
    }
    fwd__pump(f);
}

void fwd_peer_link(struct fwd *f, uint64_t node, bool up, uint64_t now_ms)
{
    struct fwd_peer *p;

    if (XD_NEVER(node == 0 || node == f->cfg.node_id))
        return; /* there is no link to oneself */
    p = fwd__peer(f, node, true);
    f->now = now_ms;
    if (p == NULL)
        return;
    p->link_up = up;
    if (up) {
        flush_owed(f, p);
        fwd__pump(f);
    }
}

void fwd_pump(struct fwd *f, uint64_t now_ms)
{
    f->now = now_ms;
    /* Acknowledgements first: they never wait behind data. */
    for (size_t i = 0; i < f->npeers; i++)
        flush_owed(f, &f->peers[i]);
    if (f->need_full && f->leader != 0 && f->leader != f->cfg.node_id)
        fwd__send_full_report(f);
    fwd__leader_pump(f);
    fwd__pump(f);
}

void fwd_tick(struct fwd *f, uint64_t now_ms)
{
    f->now = now_ms;
    fwd__leader_tick(f);
    /* The unsent queue is in fwd_send order, so in queued_ms order. */
    while (f->unsent.head != NULL &&
           now_ms - f->unsent.head->queued_ms >= f->cfg.hold_ms) {
        struct fwd_ent *e = f->unsent.head;

        q_unlink(&f->unsent, NULL, e);
        /* RFC 6120 §8.3.3.18: never handed to any node, so never delivered;
         * the sender may try again. */
        f->st.expired++;
        answer(f, e, "wait", "resource-constraint"); /* logs it */
        ent_free(e);
    }
    fwd_pump(f, now_ms);
}

uint64_t fwd_next_deadline(const struct fwd *f)
{
    uint64_t d = FWD_NO_DEADLINE;

    if (f->warm_until != 0)
        d = f->warm_until;
    if (f->unsent.head != NULL && f->unsent.head->queued_ms + f->cfg.hold_ms < d)
        d = f->unsent.head->queued_ms + f->cfg.hold_ms;
    return d;
}

bool fwd_waiting_for(const struct fwd *f, const char *to)
{
    struct jid a = {0};
    bool same = false;

    if (f->unsent.n == 0 || jid_parse(to, &a) < 0)
        return false;
    for (const struct fwd_ent *e = f->unsent.head; e != NULL && !same; e = e->next)
        same = e->domain != NULL && strcmp(a.domain, e->domain) == 0;
    jid_clear(&a);
    return same;
}

bool fwd_routes_complete(const struct fwd *f)
{
    return f->complete;
}

void fwd_get_stats(const struct fwd *f, struct fwd_stats *out)
{
    *out = f->st;
    out->waiting = f->unsent.n;
    out->inflight = 0;
    for (size_t i = 0; i < f->npeers; i++)
        out->inflight += f->peers[i].inflight.n;
    out->routes = f->table.h.count;
}
