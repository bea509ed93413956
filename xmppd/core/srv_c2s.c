/* srv_c2s.c: the node core's side of clients: bound sessions per account,
 * presence of each session, and the routing of stanzas addressed to
 * accounts of our domain (RFC 6121 §8.5), on one node.
 *
 * The roster and subscriptions are another module's (roster.h); the seam
 * is the three roster_* functions below: today they share presence only
 * among the user's own resources, answer roster gets with an empty roster
 * and deliver subscription stanzas as they are.  roster.h's decisions
 * (roster_set_decide, roster_sub_decide) plug in there once srv can submit
 * their writes to the Raft log and carry out the actions after the apply
 * (a new srv_env callback and an apply event; not built yet). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "err.h"
#include "jid.h"
#include "rt.h"
#include "sess_c2s.h"
#include "srv_int.h"

#define NS_ROSTER "jabber:iq:roster"

/* An account with bound sessions on this node. */
struct srv_acct {
    char *name;             /* prepared localpart, owned */
    struct sess_c2s *first; /* bound sessions, in bind order (anext) */
    struct srv_acct *next;  /* hash chain */
};

static size_t acct_hash(const char *s, size_t n)
{
    size_t h = 14695981039346656037ULL & SIZE_MAX;

    while (*s)
        h = (h ^ (unsigned char)*s++) * (size_t)1099511628211ULL;
    return h % n;
}

static struct srv_acct **acct_slot(const struct srv *srv, const char *name)
{
    struct srv_acct **p = &srv->accts[acct_hash(name, srv->nacct_buckets)];

    while (*p != NULL && strcmp((*p)->name, name) != 0)
        p = &(*p)->next;
    return p;
}

static struct srv_acct *acct_find(const struct srv *srv, const char *name)
{
    return srv->accts != NULL ? *acct_slot(srv, name) : NULL;
}

struct sess_c2s *srv__c2s_find(const struct srv *srv, const char *user,
                               const char *resource)
{
    const struct srv_acct *a = acct_find(srv, user);

    for (struct sess_c2s *c = a != NULL ? a->first : NULL; c != NULL; c = c->anext)
        if (strcmp(c->resource, resource) == 0)
            return c;
    return NULL;
}

int srv__bind(struct srv *srv, struct sess_c2s *c)
{
    struct srv_acct **p, *a;
    struct sess_c2s *old, **tail;

    /* First: closing the old one unbinds it and may free its account. */
    old = srv__c2s_find(srv, c->user, c->resource);
    if (old != NULL) {
        char why[64];
        /* RFC 6120 §7.7.2.2: a second session of a full JID replaces the
         * first, which gets conflict (§4.9.3.3); its unbind happens as it
         * closes. */
        snprintf(why, sizeof why, "replaced by c%" PRIu64, c->base.conn);
        sess_fail(&old->base, XS_COND_CONFLICT, why);
    }
    if (srv->accts == NULL) {
        srv->nacct_buckets = 64;
        srv->accts = calloc(srv->nacct_buckets, sizeof *srv->accts);
        if (srv->accts == NULL)
            return XE_NOMEM;
    }
    p = acct_slot(srv, c->user);
    if (*p == NULL) {
        a = calloc(1, sizeof *a);
        if (a == NULL || (a->name = strdup(c->user)) == NULL) {
            free(a);
            return XE_NOMEM;
        }
        *p = a;
    }
    a = *p;
    for (tail = &a->first; *tail != NULL; tail = &(*tail)->anext)
        ;
    *tail = c;
    c->anext = NULL;
    c->acct = a;
    srv->nclients++;
    return srv_cluster__bound(srv, c);
}

void srv__c2s_unbind(struct srv *srv, struct sess_c2s *c)
{
    struct srv_acct *a = c->acct, **p;
    struct sess_c2s **q;

    if (a == NULL)
        return;
    for (q = &a->first; *q != NULL && *q != c; q = &(*q)->anext)
        ;
    if (*q == c)
        *q = c->anext;
    c->anext = NULL;
    c->acct = NULL;
    srv->nclients--;
    if (a->first != NULL)
        return;
    p = acct_slot(srv, a->name);
    *p = a->next;
    free(a->name);
    free(a);
}

void srv__c2s_free(struct srv *srv)
{
    for (size_t i = 0; srv->accts != NULL && i < srv->nacct_buckets; i++) {
        struct srv_acct *a = srv->accts[i], *next;
        for (; a != NULL; a = next) {
            next = a->next;
            free(a->name);
            free(a);
        }
    }
    free(srv->accts);
    srv->accts = NULL;
}

/* ---- delivery helpers ---- */

/* c2s_send writes st (borrowed) to client r with 'to' set to to (NULL:
 * as it is). */
static void c2s_send(struct srv *srv, struct sess_c2s *r, struct stz *st, const char *to)
{
    if (to != NULL && stz_set_attr(st, "to", to) < 0)
        return;
    if (sess_deliver(&r->base, st) == 0)
        srv->stats.routed++;
}

/* c2s_bounce answers st (borrowed) to its sender with a stanza error, when
 * st may be answered with one (RFC 6120 §8.3.1); else drops it. */
static void c2s_bounce(struct srv *srv, struct sess *from, const struct stz *st,
                       const char *cond, const char *why)
{
    struct stz *r;

    if (!rt_may_bounce(st)) {
        SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " %s to %s dropped: %s", from->conn, st->name,
                stz_attr(st, "to"), why);
        return;
    }
    r = stz_error_reply(st, "cancel", cond, NULL);
    if (r == NULL)
        return;
    srv->stats.bounced++;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " %s to %s bounced: %s", from->conn, st->name,
            stz_attr(st, "to"), why);
    sess_deliver(from, r);
    stz_free(r);
}

static bool is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

static bool is_subscription(const char *type)
{
    return is(type, "subscribe") || is(type, "subscribed") || is(type, "unsubscribe") ||
           is(type, "unsubscribed");
}

/* ---- the roster seam (branch roster plugs in here) ---- */

/* roster_presence_out: c's broadcast presence st (borrowed, 'from' set) is
 * also for the contacts with a subscription (RFC 6121 §4.2.2, §4.4.2,
 * §4.5.2).  No roster yet: nobody else. */
static void roster_presence_out(struct srv *srv, struct sess_c2s *c, const struct stz *st)
{
    (void)srv;
    (void)c;
    (void)st;
}

/* roster_iq answers a roster iq (RFC 6121 §2) that c's own account sent:
 * an empty roster for a get; sets are not implemented yet. */
static void roster_iq(struct srv *srv, struct sess *from, const struct stz *st)
{
    struct stz *r;

    if (!is(stz_attr(st, "type"), "get")) {
        c2s_bounce(srv, from, st, "feature-not-implemented", "roster set");
        return;
    }
    r = stz_new("iq", STZ_NS_CLIENT);
    if (r == NULL || stz_set_attr(r, "type", "result") < 0 ||
        (stz_attr(st, "id") && stz_set_attr(r, "id", stz_attr(st, "id")) < 0) ||
        stz_set_attr(r, "to", stz_attr(st, "from")) < 0 ||
        stz_add_child(r, "query", NS_ROSTER) == NULL) {
        stz_free(r);
        return;
    }
    sess_deliver(from, r);
    stz_free(r);
}

/* roster_presence_in: a subscription stanza or probe st (taken) for the
 * account a (may be NULL: offline) of user.  RFC 6121 §3 and §4.3 leave
 * these to the roster; until then subscription stanzas go to the
 * available resources as they are, probes are dropped (no subscription,
 * no presence to tell). */
static void roster_presence_in(struct srv *srv, struct srv_acct *a, struct stz *st)
{
    if (a != NULL && is_subscription(stz_attr(st, "type")))
        for (struct sess_c2s *r = a->first, *next; r != NULL; r = next) {
            next = r->anext; /* a failed write unlinks r */
            if (r->available && r->priority >= 0)
                c2s_send(srv, r, st, NULL);
        }
    stz_free(st);
}

/* ---- presence of our own clients (RFC 6121 §4) ---- */

/* c2s_priority reads <priority/> (RFC 6121 §4.7.2.3: -128..127, default
 * 0). */
static int c2s_priority(const struct stz *st)
{
    struct stz *p = stz_child(st, "priority", NULL);
    char *t = p != NULL ? stz_text(p) : NULL, *end = NULL;
    long v = t != NULL ? strtol(t, &end, 10) : 0;

    if (t == NULL || end == t || *end != '\0' || v < -128 || v > 127)
        v = 0;
    free(t);
    return (int)v;
}

/* c2s_broadcast sends presence st (borrowed, 'from' set) to the available
 * resources of a, each addressed by its full JID, skipping skip. */
static void c2s_broadcast(struct srv *srv, struct srv_acct *a, struct stz *st,
                          const struct sess_c2s *skip)
{
    for (struct sess_c2s *r = a != NULL ? a->first : NULL, *next; r != NULL; r = next) {
        next = r->anext; /* a failed write unlinks r (and only r) */
        if (r != skip && r->available && r->base.state == SESS_READY)
            c2s_send(srv, r, st, r->jid);
    }
}

/* c2s_presence handles presence without 'to' from c (takes st): RFC 6121
 * §4.2 initial presence, §4.4 updates, §4.5 unavailable. */
static void c2s_presence(struct srv *srv, struct sess_c2s *c, struct stz *st)
{
    const char *type = stz_attr(st, "type");
    bool initial = !c->available;

    if (type != NULL && !is(type, "unavailable")) {
        stz_free(st); /* probes and subscriptions need an address */
        return;
    }
    if (type == NULL) {
        c->available = true;
        c->priority = c2s_priority(st);
        stz_free(c->pres);
        c->pres = stz_copy(st);
        /* §4.2.2: to all of the user's available resources, including the
         * one that sent it. */
        c2s_broadcast(srv, c->acct, st, NULL);
        /* §4.2.2, §4.4.2: the new resource learns about the others (stop
         * if writing to it failed: it is closed and unbound). */
        for (struct sess_c2s *r = initial && c->acct ? c->acct->first : NULL;
             r != NULL && c->base.state == SESS_READY; r = r->anext)
            if (r != c && r->available && r->pres != NULL)
                c2s_send(srv, c, r->pres, c->jid);
    } else if (c->available) {
        c->available = false;
        stz_free(c->pres);
        c->pres = NULL;
        /* §4.5.2: unavailable to the other available resources. */
        c2s_broadcast(srv, c->acct, st, c);
    }
    stz_del_attr(st, "to");
    roster_presence_out(srv, c, st);
    stz_free(st);
}

void srv__c2s_gone(struct srv *srv, struct sess_c2s *c)
{
    struct stz *st;

    if (!c->available || c->jid == NULL)
        return;
    c->available = false;
    /* RFC 6121 §4.5.2 (and §4.6.? for a lost connection): the server
     * sends unavailable presence on the client's behalf. */
    st = stz_new("presence", STZ_NS_CLIENT);
    if (st == NULL || stz_set_attr(st, "from", c->jid) < 0 ||
        stz_set_attr(st, "type", "unavailable") < 0) {
        stz_free(st);
        return;
    }
    c2s_broadcast(srv, acct_find(srv, c->user), st, c);
    stz_del_attr(st, "to");
    roster_presence_out(srv, c, st);
    stz_free(st);
}

/* ---- iq handled on behalf of an account (RFC 6121 §8.5.1, §8.5.2.1.3) */

static void c2s_account_iq(struct srv *srv, struct sess *from, const struct jid *to,
                           struct stz *st)
{
    struct stz *p = stz_first_element(st);
    const struct sess_c2s *c = from->kind == SESS_KIND_C2S ? (void *)from : NULL;

    if (!rt_may_bounce(st)) {
        stz_free(st); /* results and errors to an account end here */
        return;
    }
    if (p == NULL || stz_next_element(p) != NULL) {
        /* RFC 6120 §8.2.3: exactly one payload. */
        struct stz *r = stz_error_reply(st, "modify", "bad-request", NULL);
        if (r != NULL)
            sess_deliver(from, r);
        stz_free(r);
    } else if (is(p->ns, NS_ROSTER) && c != NULL && strcmp(c->user, to->local) == 0) {
        roster_iq(srv, from, st);
    } else {
        /* The issue (item 6) and RFC 6121 §8.5.1: what the server does
         * not answer itself for an account is service-unavailable. */
        c2s_bounce(srv, from, st, "service-unavailable", "iq to an account");
    }
    stz_free(st);
}

/* ---- routing to accounts (RFC 6121 §8.5) ---- */

/* c2s_to_remote: cluster mode, a message to the bare JID of an account
 * with no available resource here: it goes, unchanged, to one session of
 * the account on another node (the smallest full JID in the routing
 * table: the table knows neither availability nor priority, so this is
 * not yet RFC 6121 §8.5.2.1.1 across nodes).  Takes st when it returns
 * true. */
static bool c2s_to_remote(struct srv *srv, struct sess *from, const struct jid *to,
                          struct stz *st)
{
    struct buf via = {0};

    if (srv->cl == NULL || !srv_cluster__remote_resource(srv, to->local, &via)) {
        buf_free(&via);
        return false;
    }
    srv_cluster__forward(srv, from, st, via.data);
    buf_free(&via);
    stz_free(st);
    return true;
}

/* c2s_to_bare routes st (taken) to the bare JID of an account. */
static void c2s_to_bare(struct srv *srv, struct sess *from, const struct jid *to,
                        struct stz *st)
{
    struct srv_acct *a = acct_find(srv, to->local);
    const char *type = stz_attr(st, "type");
    int best = -1;

    if (a == NULL &&
        (srv->accounts == NULL || cl_user_find(srv->accounts, to->local) == NULL)) {
        /* §8.5.1: no such account: message and iq service-unavailable,
         * presence dropped. */
        c2s_bounce(srv, from, st, "service-unavailable", "no such account");
        stz_free(st);
        return;
    }
    if (strcmp(st->name, "iq") == 0) {
        c2s_account_iq(srv, from, to, st);
        return;
    }
    if (strcmp(st->name, "presence") == 0) {
        if (type == NULL || is(type, "unavailable")) {
            /* §8.5.2.1.2: to every available resource. */
            for (struct sess_c2s *r = a != NULL ? a->first : NULL, *next; r != NULL;
                 r = next) {
                next = r->anext;
                if (r->available)
                    c2s_send(srv, r, st, NULL);
            }
            stz_free(st);
        } else if (is(type, "error")) {
            stz_free(st);
        } else {
            roster_presence_in(srv, a, st);
        }
        return;
    }
    /* message, §8.5.2.1.1: groupchat is refused, errors dropped; others go
     * to the available resources of the highest non-negative priority
     * (headline to all non-negative ones). */
    if (is(type, "groupchat") || is(type, "error")) {
        c2s_bounce(srv, from, st, "service-unavailable", "groupchat to a bare JID");
        stz_free(st);
        return;
    }
    for (struct sess_c2s *r = a != NULL ? a->first : NULL; r != NULL; r = r->anext)
        if (r->available && r->priority > best)
            best = r->priority;
    if (best < 0 && c2s_to_remote(srv, from, to, st))
        return;
    if (best < 0) {
        /* §8.5.2.2.1: no available resource, no offline storage here. */
        c2s_bounce(srv, from, st, "service-unavailable", "account offline");
        stz_free(st);
        return;
    }
    for (struct sess_c2s *r = a->first, *next; r != NULL; r = next) {
        next = r->anext;
        if (r->available && r->priority >= 0 &&
            (r->priority == best || is(type, "headline")))
            c2s_send(srv, r, st, NULL);
    }
    stz_free(st);
}

void srv__c2s_route(struct srv *srv, struct sess *from, const struct jid *to,
                    struct stz *st)
{
    const char *type = stz_attr(st, "type");
    struct sess_c2s *r;

    if (to->resource == NULL) {
        c2s_to_bare(srv, from, to, st);
        return;
    }
    r = srv__c2s_find(srv, to->local, to->resource);
    if (srv->cl != NULL && (r == NULL || srv_cluster__waiting(srv, st))) {
        /* Cluster mode: the full JID may be bound on another node (fwd
         * routes it by the leader's table, or answers service-unavailable
         * when no node holds it); stanzas still waiting for it keep their
         * order. */
        srv_cluster__forward(srv, from, st, NULL);
        stz_free(st);
        return;
    }
    if (r != NULL && r->base.state == SESS_READY) {
        /* §8.5.3.1: a connected resource gets it. */
        c2s_send(srv, r, st, NULL);
        stz_free(st);
        return;
    }
    /* §8.5.3.2: no such resource. */
    if (strcmp(st->name, "message") == 0 &&
        (type == NULL || is(type, "normal") || is(type, "chat"))) {
        struct jid bare = {to->local, to->domain, NULL};
        c2s_to_bare(srv, from, &bare, st); /* §8.5.3.2.1 */
        return;
    }
    if (strcmp(st->name, "presence") == 0 && is_subscription(type)) {
        struct jid bare = {to->local, to->domain, NULL};
        c2s_to_bare(srv, from, &bare, st); /* §8.5.3.2.3 */
        return;
    }
    if (strcmp(st->name, "message") != 0 || is(type, "groupchat"))
        c2s_bounce(srv, from, st, "service-unavailable", "no such resource");
    stz_free(st); /* headline and error messages, other presence: dropped */
}

void srv__c2s_own(struct srv *srv, struct sess_c2s *c, struct stz *st)
{
    struct jid bare = {c->user, srv->domain, NULL};

    if (strcmp(st->name, "presence") == 0) {
        c2s_presence(srv, c, st);
        return;
    }
    /* RFC 6120 §10.3.1 (message) and §10.3.3 (iq): as if to the bare JID
     * of the sender's account. */
    if (strcmp(st->name, "iq") == 0) {
        c2s_account_iq(srv, &c->base, &bare, st);
        return;
    }
    c2s_to_bare(srv, &c->base, &bare, st);
}

/* ---- API (srv.h) ---- */

void srv_set_accounts(struct srv *srv, const struct cl_state *cl)
{
    srv->accounts = cl;
}

void srv_user_deleted(struct srv *srv, const char *user)
{
    size_t n = 0;

    /* Every session logged in as user, bound or not yet.  A close only
     * unlinks the session it closes (presence goes out when reaped), so
     * the next one is taken first. */
    for (size_t i = 0; user != NULL && i < srv->nbuckets; i++) {
        struct sess *s = srv->conns[i], *next;
        for (; s != NULL; s = next) {
            struct sess_c2s *c = (struct sess_c2s *)s;
            next = s->hnext;
            if (s->kind != SESS_KIND_C2S || !c->authed || strcmp(c->user, user) != 0)
                continue;
            /* RFC 6120 §4.9.3.12 not-authorized: the account that
             * authorized the stream is gone. */
            sess_fail(s, XS_COND_NOT_AUTHORIZED, "account deleted");
            n++;
        }
    }
    if (n > 0)
        SRV_LOG(srv, LOG_INFO, "account %s deleted: %zu sessions closed", user, n);
    srv__reap(srv);
}
