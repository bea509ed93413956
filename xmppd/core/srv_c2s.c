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

#include "repl.h"
#include "err.h"
#include "jid.h"
#include "pframe.h"
#include "roster.h"
#include "rt.h"
#include "sess_c2s.h"
#include "srv_int.h"

#define NS_ROSTER "jabber:iq:roster"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"

/* An account with bound sessions on this node. */
struct srv_acct {
    char *name;             /* prepared localpart, owned */
    struct sess_c2s *first; /* bound sessions, in bind order (anext) */
    struct hlink link;      /* in srv->accts */
};

#define ACCT_OF(l) HTAB_ENTRY(l, struct srv_acct, link)

static void rops_free(struct srv *srv);

static uint64_t acct_hash(const struct hlink *l)
{
    return htab_hash_str(ACCT_OF(l)->name);
}

static void acct_free(struct hlink *l)
{
    free(ACCT_OF(l)->name);
    free(ACCT_OF(l));
}

static struct srv_acct *acct_find(const struct srv *srv, const char *name)
{
    for (struct hlink *l = htab_head(&srv->accts, htab_hash_str(name)); l != NULL;
         l = l->next)
        if (strcmp(ACCT_OF(l)->name, name) == 0)
            return ACCT_OF(l);
    return NULL;
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

size_t srv__c2s_sessions(const struct srv *srv, const char *user, const char *resource)
{
    const struct srv_acct *a = acct_find(srv, user);
    struct buf skip = {0};
    size_t n = 0;

    for (const struct sess_c2s *c = a != NULL ? a->first : NULL; c != NULL; c = c->anext)
        n += strcmp(c->resource, resource) != 0;
    if (buf_printf(&skip, "%s@%s/%s", user, srv->domain, resource) == 0)
        n += srv_cluster__remote_sessions(srv, user, skip.data);
    buf_free(&skip);
    return n;
}

int srv__bind(struct srv *srv, struct sess_c2s *c)
{
    struct srv_acct *a;
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
    if (srv->accts.nb == 0 && htab_init(&srv->accts, 64) < 0)
        return XE_NOMEM;
    a = acct_find(srv, c->user);
    if (a == NULL) {
        a = calloc(1, sizeof *a);
        if (a == NULL || (a->name = strdup(c->user)) == NULL) {
            free(a);
            return XE_NOMEM;
        }
        htab_add(&srv->accts, &a->link, htab_hash_str(a->name), acct_hash);
    }
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
    struct srv_acct *a = c->acct;
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
    htab_del(&srv->accts, &a->link, htab_hash_str(a->name));
    free(a->name);
    free(a);
}

void srv__c2s_free(struct srv *srv)
{
    rops_free(srv);
    htab_release(&srv->accts, acct_free);
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

/* ---- rosters and subscriptions (RFC 6121 §2, §3; docs/clients.md) ----
 *
 * Every roster change is a decision of roster.h made on this node's
 * replica (cl_rosters of the borrowed cl_state), written through
 * the edge (srv_take) as one compare-and-set command; its actions run once
 * srv_submit_done says it is applied (XE_STATE: decided again on the new
 * state).  Pushes are not actions here: every node pushes to its own
 * resources when the entry is applied (srv_roster_changed).  A stanza
 * between two accounts of the domain is decided twice where it is sent:
 * the outbound side in the sender's roster, then the inbound side in the
 * contact's roster (both rosters are replicated, so any node may write
 * either); the contact's resources get the stanza as delivered. */

/* A roster write under way. */
struct srv_rop {
    uint64_t token;
    char *user;     /* the roster's owner (prepared localpart) */
    char *resource; /* roster iq: the asking resource (answered at the end) */
    char *iq_id;    /* roster iq: its id (NULL: none) */
    bool is_iq;
    struct roster_set_req req; /* roster iq: the parsed set (owned) */
    char *contact;             /* subscription: the contact's bare JID */
    enum roster_dir dir;
    enum roster_pres type;
    struct stz *st;     /* subscription: the stanza (IN: as delivered), owned */
    struct buf request; /* IN subscribe: the serialized request */
    struct roster_decision d;
    unsigned tries;
    struct srv_rop *next;
};

static void rop_free(struct srv_rop *op)
{
    if (op == NULL)
        return;
    free(op->user);
    free(op->resource);
    free(op->iq_id);
    roster_item_clear(&op->req.item);
    free(op->contact);
    stz_free(op->st);
    buf_free(&op->request);
    roster_decision_clear(&op->d);
    free(op);
}

static void rops_free(struct srv *srv)
{
    while (srv->rops != NULL) {
        struct srv_rop *op = srv->rops;
        srv->rops = op->next;
        rop_free(op);
    }
}

static const struct roster *roster_of(const struct srv *srv, const char *user)
{
    return srv->accounts != NULL ? roster_db_get(cl_rosters(srv->accounts), user) : NULL;
}

static bool is_account(const struct srv *srv, const char *user)
{
    return srv->accounts != NULL && cl_user_find(srv->accounts, user) != NULL;
}

static bool pres_type_of(const char *type, enum roster_pres *out)
{
    static const char *const names[] = {"subscribe", "subscribed", "unsubscribe",
                                        "unsubscribed"};

    for (int i = 0; i < 4; i++)
        if (is(type, names[i])) {
            *out = (enum roster_pres)i;
            return true;
        }
    return false;
}

/* bare_of writes the bare JID of full JID s (NULL when s is not one). */
static char *bare_of(const char *s)
{
    struct jid j = {0};
    char *out = NULL;

    if (s == NULL || jid_parse(s, &j) < 0)
        return NULL;
    if (j.local != NULL) {
        size_t n = strlen(j.local) + strlen(j.domain) + 2;
        out = malloc(n);
        if (out != NULL)
            snprintf(out, n, "%s@%s", j.local, j.domain);
    } else {
        out = strdup(j.domain);
    }
    jid_clear(&j);
    return out;
}

/* pres_new makes <presence from to [type]/> (NULL: no memory). */
static struct stz *pres_new(const char *from, const char *to, const char *type)
{
    struct stz *st = stz_new("presence", STZ_NS_CLIENT);

    if (st == NULL || stz_set_attr(st, "from", from) < 0 ||
        stz_set_attr(st, "to", to) < 0 ||
        (type != NULL && stz_set_attr(st, "type", type) < 0)) {
        stz_free(st);
        return NULL;
    }
    return st;
}

/* any_session returns a READY session of user on this node, or NULL. */
static struct sess_c2s *any_session(const struct srv *srv, const char *user)
{
    const struct srv_acct *a = acct_find(srv, user);

    for (struct sess_c2s *r = a != NULL ? a->first : NULL; r != NULL; r = r->anext)
        if (r->base.state == SESS_READY)
            return r;
    return NULL;
}

static void rop_start(struct srv *srv, struct srv_rop *op);
static void sub_start(struct srv *srv, const char *user, const char *contact,
                      enum roster_dir dir, enum roster_pres type, const struct stz *st);

/* ---- the user's resources on other nodes (cluster mode) ---- */

/* A client entry of the routing table on another node, copied out of the
 * table (fwd's callbacks must not call fwd, and forwarding does). */
struct c2s_remote {
    char *jid; /* full JID, owned */
    uint64_t node;
    bool available;
    int priority;
};

struct c2s_remotes {
    struct c2s_remote *r;
    size_t n, cap;
};

static void remotes_add(void *ud, const struct pframe_route *e)
{
    struct c2s_remotes *rs = ud;

    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 4;
        struct c2s_remote *r = realloc(rs->r, cap * sizeof *r);
        if (r == NULL)
            return; /* out of memory: that resource misses this stanza */
        rs->r = r;
        rs->cap = cap;
    }
    rs->r[rs->n].jid = strdup(e->name);
    if (rs->r[rs->n].jid == NULL)
        return;
    rs->r[rs->n].node = e->node;
    rs->r[rs->n].available = (e->attr.flags & PFRAME_ATTR_AVAILABLE) != 0;
    rs->r[rs->n].priority = e->attr.priority;
    rs->n++;
}

/* remotes_of fills rs with user's client sessions on other nodes, from
 * this node's copy of the routing table (empty when not in cluster mode). */
static void remotes_of(const struct srv *srv, const char *user, struct c2s_remotes *rs)
{
    memset(rs, 0, sizeof *rs);
    srv_cluster__each_remote(srv, user, remotes_add, rs);
}

static void remotes_free(struct c2s_remotes *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->r[i].jid);
    free(rs->r);
    memset(rs, 0, sizeof *rs);
}

/* deliver_to_user: st (borrowed) to every available resource of user,
 * here and, in cluster mode, on the other nodes (RFC 6121 §8.5.2.1.2,
 * §4.2.2 / §3 stanzas from a contact): one fwd_send per remote resource,
 * to its full JID with the stanza unchanged, so each copy keeps fwd's
 * guarantees. */
static void deliver_to_user(struct srv *srv, struct sess *from, const char *user,
                            struct stz *st)
{
    struct srv_acct *a = acct_find(srv, user);
    struct c2s_remotes rs;

    for (struct sess_c2s *r = a != NULL ? a->first : NULL, *next; r != NULL; r = next) {
        next = r->anext;
        if (r->available && r->base.state == SESS_READY)
            c2s_send(srv, r, st, NULL);
    }
    for (size_t i = 0; from == NULL && i < srv->conns.nb; i++)
        if (srv->conns.b[i] != NULL)
            from = SRV_SESS(srv->conns.b[i]); /* for fwd's log lines only */
    if (srv->cl == NULL || from == NULL)
        return;
    remotes_of(srv, user, &rs);
    for (size_t i = 0; i < rs.n; i++)
        if (rs.r[i].available)
            srv_cluster__forward(srv, from, st, rs.r[i].jid);
    remotes_free(&rs);
}

/* send_presences: the presence of each available resource of user here
 * (unavailable when unavail) to contact (§3.1.5, §3.2.2, §3.3.3); returns
 * how many resources it sent for. */
static size_t send_presences(struct srv *srv, const char *user, const char *contact,
                             bool unavail)
{
    struct srv_acct *a = acct_find(srv, user);
    size_t n = 0;

    for (struct sess_c2s *r = a != NULL ? a->first : NULL, *next; r != NULL; r = next) {
        struct stz *p;
        next = r->anext;
        if (!r->available || r->base.state != SESS_READY)
            continue;
        p = unavail ? pres_new(r->jid, contact, "unavailable") : stz_copy(r->pres);
        if (p == NULL || stz_set_attr(p, "from", r->jid) < 0 ||
            stz_set_attr(p, "to", contact) < 0) {
            stz_free(p);
            continue;
        }
        srv__route(srv, &r->base, p);
        n++;
    }
    return n;
}

/* log_sess: a session of this node for srv__route's log lines when a
 * replicated roster decision, not a session, sends a stanza; NULL when
 * the node has none. */
static struct sess *log_sess(const struct srv *srv)
{
    for (size_t i = 0; i < srv->conns.nb; i++)
        if (srv->conns.b[i] != NULL)
            return SRV_SESS(srv->conns.b[i]);
    return NULL;
}

/* send_remote_unavailable: in cluster mode, unavailable presence from each
 * available resource of user on the other nodes to contact (§3.2.2,
 * §3.3.3: from all of the user's available resources).  The decision is
 * carried out on the node where the subscription stanza came in, which
 * may hold none of user's resources; send_presences covers the local ones.
 * (The available presence of §3.1.5 is not made up here: only the node of
 * a resource holds it.) */
static void send_remote_unavailable(struct srv *srv, const char *user,
                                    const char *contact)
{
    struct sess *from = log_sess(srv);
    struct c2s_remotes rs;

    if (srv->cl == NULL || from == NULL)
        return;
    remotes_of(srv, user, &rs);
    for (size_t i = 0; i < rs.n; i++) {
        struct stz *p;
        if (!rs.r[i].available ||
            (p = pres_new(rs.r[i].jid, contact, "unavailable")) == NULL)
            continue;
        srv__route(srv, from, p);
    }
    remotes_free(&rs);
}

/* send_remote_probes: in cluster mode, for the user's available
 * resources on other nodes, a probe from contact to one of them per node
 * (§3.1.5: the contact learns the presence of all of the user's available
 * resources).  Only a resource's own node holds its presence: that node
 * answers the probe for its sessions (srv__c2s_cluster_probe, deciding
 * with its copy of the roster), as for a login's probe (§4.3). */
static void send_remote_probes(struct srv *srv, const char *user, const char *contact)
{
    struct sess *from = log_sess(srv);
    struct c2s_remotes rs;

    if (srv->cl == NULL || from == NULL)
        return;
    remotes_of(srv, user, &rs);
    for (size_t i = 0; i < rs.n; i++) {
        bool skip = !rs.r[i].available;
        struct stz *p;
        for (size_t k = 0; !skip && k < i; k++)
            skip = rs.r[k].available && rs.r[k].node == rs.r[i].node;
        if (skip || (p = pres_new(contact, rs.r[i].jid, "probe")) == NULL)
            continue;
        srv_cluster__forward(srv, from, p, rs.r[i].jid);
        stz_free(p);
    }
    remotes_free(&rs);
}

/* route_sub: the user's subscription stanza of type t to contact, 'from'
 * the user's bare JID (§3.1.2): an account of our domain gets the inbound
 * decision at once; anyone else gets the stanza routed. */
static void route_sub(struct srv *srv, const char *user, const char *contact,
                      enum roster_pres t, const struct stz *orig)
{
    char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];
    struct jid j = {0};
    struct stz *st;

    snprintf(bare, sizeof bare, "%s@%s", user, srv->domain);
    st = orig != NULL ? stz_copy(orig) : pres_new(bare, contact, roster_pres_name(t));
    if (st == NULL || stz_set_attr(st, "from", bare) < 0 ||
        stz_set_attr(st, "to", contact) < 0 ||
        stz_set_attr(st, "type", roster_pres_name(t)) < 0) {
        stz_free(st);
        return;
    }
    if (jid_parse(contact, &j) == 0 && j.local != NULL &&
        strcmp(j.domain, srv->domain) == 0) {
        if (is_account(srv, j.local))
            sub_start(srv, j.local, bare, ROSTER_IN, t, st);
        stz_free(st); /* §8.5.1: presence to no account is dropped */
    } else {
        struct sess_c2s *c = any_session(srv, user);
        if (c != NULL)
            srv__route(srv, &c->base, st);
        else
            stz_free(st);
    }
    jid_clear(&j);
}

/* rop_act carries out the actions of op's applied decision. */
static void rop_act(struct srv *srv, struct srv_rop *op)
{
    const char *contact = op->is_iq ? op->d.item.jid : op->contact;

    if (op->is_iq) {
        struct sess_c2s *c = srv__c2s_find(srv, op->user, op->resource);
        struct stz *r = stz_new("iq", STZ_NS_CLIENT);
        /* §2.3.2, §2.5.2: the result to the resource that asked. */
        if (c != NULL && r != NULL && stz_set_attr(r, "type", "result") == 0 &&
            (op->iq_id == NULL || stz_set_attr(r, "id", op->iq_id) == 0) &&
            stz_set_attr(r, "to", c->jid) == 0 && c->base.state == SESS_READY)
            sess_deliver(&c->base, r);
        stz_free(r);
    }
    for (size_t i = 0; i < op->d.n_act; i++) {
        const struct roster_action *a = &op->d.act[i];
        switch (a->kind) {
        case ROSTER_ACT_ROUTE:
            route_sub(srv, op->user, contact, a->type,
                      !op->is_iq && op->dir == ROSTER_OUT && op->type == a->type ? op->st
                                                                                 : NULL);
            break;
        case ROSTER_ACT_DELIVER:
            if (op->st != NULL)
                deliver_to_user(srv, NULL, op->user, op->st);
            break;
        case ROSTER_ACT_SEND_PRESENCE:
        case ROSTER_ACT_SEND_UNAVAILABLE:
            send_presences(srv, op->user, contact,
                           a->kind == ROSTER_ACT_SEND_UNAVAILABLE);
            if (a->kind == ROSTER_ACT_SEND_UNAVAILABLE)
                send_remote_unavailable(srv, op->user, contact);
            else
                send_remote_probes(srv, op->user, contact);
            break;
        case ROSTER_ACT_AUTO_REPLY: {
            /* §3.1.3: an inbound "subscribed" in the contact's roster. */
            char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];
            struct jid j = {0};
            struct stz *st;
            snprintf(bare, sizeof bare, "%s@%s", op->user, srv->domain);
            st = pres_new(bare, contact, "subscribed");
            if (st != NULL && jid_parse(contact, &j) == 0 && j.local != NULL &&
                strcmp(j.domain, srv->domain) == 0 && is_account(srv, j.local))
                sub_start(srv, j.local, bare, ROSTER_IN, ROSTER_PRES_SUBSCRIBED, st);
            else if (st != NULL && any_session(srv, op->user) != NULL)
                srv__route(srv, &any_session(srv, op->user)->base, stz_copy(st));
            stz_free(st);
            jid_clear(&j);
            break;
        }
        case ROSTER_ACT_PUSH:          /* srv_roster_changed, on every node */
        case ROSTER_ACT_STORE_REQUEST: /* in the item written */
        case ROSTER_ACT_DROP:
            break;
        }
    }
}

/* rop_fail ends op without its write: a roster iq gets an error. */
static void rop_fail(struct srv *srv, struct srv_rop *op, const char *type,
                     const char *cond)
{
    struct sess_c2s *c = op->is_iq ? srv__c2s_find(srv, op->user, op->resource) : NULL;
    struct stz *r = c != NULL ? stz_new("iq", STZ_NS_CLIENT) : NULL;
    struct stz *e;

    if (r != NULL && stz_set_attr(r, "type", "error") == 0 &&
        (op->iq_id == NULL || stz_set_attr(r, "id", op->iq_id) == 0) &&
        stz_set_attr(r, "to", c->jid) == 0 && (e = stz_add_child(r, "error", NULL)) &&
        stz_set_attr(e, "type", type) == 0 &&
        stz_add_child(e, cond, "urn:ietf:params:xml:ns:xmpp-stanzas") != NULL &&
        c->base.state == SESS_READY)
        sess_deliver(&c->base, r);
    stz_free(r);
    rop_free(op);
}

/* rop_start decides op on the roster as this node has it now and submits
 * the write (or, with nothing to write, acts at once).  Takes op. */
static void rop_start(struct srv *srv, struct srv_rop *op)
{
    const struct roster *r = roster_of(srv, op->user);
    const char *cond = "internal-server-error";
    struct roster_cmd cmd;
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    roster_decision_clear(&op->d);
    if (op->is_iq)
        rc = roster_set_decide(r, &op->req, &op->d, &cond);
    else
        rc = roster_sub_decide(r, op->contact, op->dir, op->type,
                               op->request.len ? op->request.data : NULL, op->request.len,
                               &op->d);
    if (rc < 0) {
        rop_fail(srv, op, rc == XE_PROTO ? "modify" : "wait",
                 rc == XE_PROTO ? cond : "resource-constraint");
        return;
    }
    if (op->d.write == ROSTER_WRITE_NONE) {
        rop_act(srv, op);
        rop_free(op);
        return;
    }
    rc = roster_cmd_from_decision(&cmd, op->user, &op->d);
    if (rc == 0)
        rc = roster_cmd_encode(&cmd, &buf, &len);
    op->token = ++srv->rop_token;
    if (rc == 0) {
        rc = srv__submit(srv, buf, len, op->token); /* takes buf */
        buf = NULL;
    }
    free(buf);
    if (rc < 0) {
        SRV_LOG(srv, LOG_INFO, "roster write for %s not submitted: %s", op->user,
                xe_strerror(rc));
        rop_fail(srv, op, "wait", "internal-server-error");
        return;
    }
    op->next = srv->rops;
    srv->rops = op;
}

/* sub_start decides a subscription stanza (st borrowed) of type about
 * contact in user's roster. */
static void sub_start(struct srv *srv, const char *user, const char *contact,
                      enum roster_dir dir, enum roster_pres type, const struct stz *st)
{
    struct srv_rop *op = calloc(1, sizeof *op);

    if (op == NULL || (op->user = strdup(user)) == NULL ||
        (op->contact = strdup(contact)) == NULL || (op->st = stz_copy(st)) == NULL ||
        (dir == ROSTER_IN && type == ROSTER_PRES_SUBSCRIBE &&
         stz_serialize(st, STZ_NS_CLIENT, &op->request) < 0)) {
        rop_free(op);
        return;
    }
    op->dir = dir;
    op->type = type;
    rop_start(srv, op);
}

void srv_submit_done(struct srv *srv, uint64_t token, int rc, uint64_t now_ms)
{
    struct srv_rop **p = &srv->rops, *op;

    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
    while (*p != NULL && (*p)->token != token)
        p = &(*p)->next;
    if ((op = *p) == NULL) {
        (void)srv__thr_submit_done(srv, token, rc);
        return;
    }
    *p = op->next;
    if (rc == 0) {
        rop_act(srv, op);
        rop_free(op);
    } else if (rc == XE_STATE && ++op->tries < SRV_ROSTER_RETRIES) {
        /* Decided on an entry another write changed (docs/roster.md
         * "Writes are compare-and-set"): decide again. */
        rop_start(srv, op);
    } else {
        SRV_LOG(srv, LOG_INFO, "roster write for %s failed: %s", op->user,
                xe_strerror(rc));
        rop_fail(srv, op, "wait",
                 rc == XE_LIMIT ? "not-allowed" : "internal-server-error");
    }
    srv__reap(srv);
}

void srv_roster_changed(struct srv *srv, const char *user, const char *contact,
                        uint64_t now_ms)
{
    const struct roster_item *it = roster_find(roster_of(srv, user), contact);
    struct roster_item gone = {.jid = (char *)contact, .listed = true};
    struct srv_acct *a = acct_find(srv, user);
    struct stz *iq, *q, *item;
    char id[32];

    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
    if (a == NULL || (it != NULL && !it->listed))
        return; /* a pending-only entry is never shown (A.1) */
    /* §2.1.6: a push of the item, or of subscription='remove' when it is
     * gone or no longer listed (§2.5.2). */
    iq = stz_new("iq", STZ_NS_CLIENT);
    q = iq != NULL ? stz_add_child(iq, "query", NS_ROSTER) : NULL;
    item = q != NULL ? roster_item_stz(it != NULL ? it : &gone, it == NULL || !it->listed)
                     : NULL;
    snprintf(id, sizeof id, "push%" PRIu64, ++srv->ping_seq);
    if (item == NULL || stz_set_attr(iq, "type", "set") < 0 ||
        stz_set_attr(iq, "id", id) < 0) {
        stz_free(item);
        stz_free(iq);
        return;
    }
    stz_append(q, item);
    for (struct sess_c2s *r = a->first, *next; r != NULL; r = next) {
        next = r->anext;
        if (r->base.state == SESS_READY)
            c2s_send(srv, r, iq, r->jid);
    }
    stz_free(iq);
    srv__reap(srv);
}

/* roster_presence_out: c's broadcast presence st (borrowed, 'from' set) goes
 * to the contacts with subscription from/both (RFC 6121 §4.2.2, §4.4.2,
 * §4.5.2). */
static void roster_presence_out(struct srv *srv, struct sess_c2s *c, const struct stz *st)
{
    const struct roster_item **sel = NULL;
    size_t n = 0;

    if (roster_select(roster_of(srv, c->user), ROSTER_SEL_BROADCAST, &sel, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct stz *p = stz_copy(st);
        if (p == NULL || stz_set_attr(p, "to", sel[i]->jid) < 0) {
            stz_free(p);
            continue;
        }
        srv__route(srv, &c->base, p);
    }
    free(sel);
}

/* roster_login: c's initial presence: probes to the contacts it is
 * subscribed to (§4.3.1, from c's full JID so answers come to c) and the
 * pending inbound requests delivered again (§3.1.3). */
static void roster_login(struct srv *srv, struct sess_c2s *c)
{
    const struct roster *ro = roster_of(srv, c->user);
    const struct roster_item **sel = NULL;
    size_t n = 0;

    if (roster_select(ro, ROSTER_SEL_PROBE, &sel, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct stz *p = pres_new(c->jid, sel[i]->jid, "probe");
            if (p != NULL)
                srv__route(srv, &c->base, p);
        }
        free(sel);
    }
    sel = NULL;
    if (roster_select(ro, ROSTER_SEL_PENDING, &sel, &n) == 0) {
        for (size_t i = 0; i < n && c->base.state == SESS_READY; i++) {
            char to[CL_USER_MAX + CL_DOMAIN_MAX + 2];
            struct stz *p;
            if (sel[i]->request != NULL) {
                sess_deliver_raw(&c->base, (const char *)sel[i]->request,
                                 sel[i]->request_len);
                continue;
            }
            snprintf(to, sizeof to, "%s@%s", c->user, srv->domain);
            p = pres_new(sel[i]->jid, to, "subscribe");
            if (p != NULL)
                sess_deliver(&c->base, p);
            stz_free(p);
        }
        free(sel);
    }
}

/* probe_offline answers a probe from to (a full or bare JID) for user,
 * who has no available resource on any node: RFC 6121 §4.3.2, the server
 * SHOULD reply with presence of type unavailable: the last unavailable
 * presence it keeps of the user (from the full JID that sent it, with its
 * status and a XEP-0203 delay: srv_lastpres.c), else one from the user's
 * bare JID. */
static void probe_offline(struct srv *srv, struct sess *from, const char *user,
                          const char *to)
{
    char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];
    struct stz *p = srv__lastpres_reply(srv, user, to);

    if (p != NULL) {
        srv__route(srv, from, p);
        return;
    }
    snprintf(bare, sizeof bare, "%s@%s", user, srv->domain);
    p = pres_new(bare, to, "unavailable");
    if (p != NULL)
        srv__route(srv, from, p);
}

/* roster_probe: a probe st (borrowed) for user (§4.3.2): answered from the
 * presence of user's sessions on this node. */
static void roster_probe(struct srv *srv, struct sess *from, const char *user,
                         const struct stz *st)
{
    char *prober = bare_of(stz_attr(st, "from"));
    const char *to = stz_attr(st, "from");

    if (prober == NULL)
        return;
    if (roster_probe_decide(roster_of(srv, user), prober) == ROSTER_PROBE_PRESENCE) {
        struct c2s_remotes rs;
        bool any = send_presences(srv, user, to, false) > 0;
        /* In cluster mode each other node holding available sessions of
         * user answers for them (srv__c2s_cluster_probe): the probe goes
         * once to each such node, addressed to one of its sessions. */
        remotes_of(srv, user, &rs);
        for (size_t i = 0; i < rs.n; i++) {
            bool sent = !rs.r[i].available;
            for (size_t k = 0; !sent && k < i; k++)
                sent = rs.r[k].available && rs.r[k].node == rs.r[i].node;
            if (!sent)
                srv_cluster__forward(srv, from, st, rs.r[i].jid);
            any = any || rs.r[i].available;
        }
        remotes_free(&rs);
        if (!any)
            probe_offline(srv, from, user, to);
    } else {
        char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];
        struct stz *p;
        snprintf(bare, sizeof bare, "%s@%s", user, srv->domain);
        p = pres_new(bare, prober, "unsubscribed");
        if (p != NULL)
            srv__route(srv, from, p);
    }
    free(prober);
}

/* tag_type_is tells whether the start tag at xml (len bytes; well-formed,
 * as the origin's reader checked it) has attribute type with value v: the
 * attributes are read one by one (XML 1.0 §3.1: S? '=' S?, either quote),
 * since a forwarded stanza may travel as the bytes its sender wrote. */
static bool tag_type_is(const char *xml, size_t len, const char *v)
{
    size_t i = 1, vlen = strlen(v);

    while (i < len && !strchr(" \t\r\n/>", xml[i]))
        i++; /* the element name */
    for (;;) {
        size_t name, name_len, val;
        char q;
        while (i < len && strchr(" \t\r\n", xml[i]))
            i++;
        if (i >= len || xml[i] == '/' || xml[i] == '>')
            return false;
        for (name = i; i < len && !strchr(" \t\r\n=", xml[i]); i++)
            ;
        name_len = i - name;
        while (i < len && xml[i] != '\'' && xml[i] != '"')
            i++; /* S? '=' S? */
        if (i >= len)
            return false;
        q = xml[i++];
        for (val = i; i < len && xml[i] != q; i++)
            ;
        if (i >= len)
            return false;
        if (name_len == 4 && memcmp(xml + name, "type", 4) == 0)
            return i - val == vlen && memcmp(xml + val, v, vlen) == 0;
        i++;
    }
}

bool srv__c2s_cluster_probe(struct srv *srv, struct sess *s, const char *from,
                            const char *xml, size_t len)
{
    struct sess_c2s *c = (struct sess_c2s *)s;
    bool is_probe;

    if (s->kind != SESS_KIND_C2S || len < 10 || memcmp(xml, "<presence", 9) != 0 ||
        !strchr(" \t\r\n/>", xml[9]))
        return false;
    is_probe = tag_type_is(xml, len, "probe");
    if (!is_probe || from == NULL)
        return is_probe;
    /* §4.3.2, decided again here (the rosters are replicated): the
     * presence of the user's sessions on this node.  A probe from the
     * user's own new resource on another node (c2s_broadcast_remote) is
     * answered too: §4.2.2, it learns about the user's other resources. */
    {
        char *prober = bare_of(from), *own = bare_of(c->jid);
        if (prober != NULL && ((own != NULL && strcmp(prober, own) == 0) ||
                               roster_probe_decide(roster_of(srv, c->user), prober) ==
                                   ROSTER_PROBE_PRESENCE))
            send_presences(srv, c->user, from, false);
        free(own);
        free(prober);
    }
    return true;
}

/* account_disco_info answers a disco#info get (XEP-0030 §3.1) that one of
 * an account's own resources sends to the account's bare JID: the server
 * answers for the account (RFC 6121 §8.5.2.1.3) with the identity
 * account/registered (XEP-0030 registry) and the one feature it has
 * there.  Clients ask this at login to learn what the account offers
 * (PEP, MAM: nothing here); other requesters still get
 * service-unavailable (RFC 6121 §8.5.1: what is shown of an account to
 * others is the user's business). */
static void account_disco_info(struct srv *srv, struct sess *from, const char *user,
                               const struct stz *st)
{
    struct stz *r = stz_new("iq", STZ_NS_CLIENT), *q = NULL, *el;
    char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];

    snprintf(bare, sizeof bare, "%s@%s", user, srv->domain);
    if (r == NULL || stz_set_attr(r, "type", "result") < 0 ||
        (stz_attr(st, "id") && stz_set_attr(r, "id", stz_attr(st, "id")) < 0) ||
        stz_set_attr(r, "from", bare) < 0 ||
        stz_set_attr(r, "to", stz_attr(st, "from")) < 0 ||
        (q = stz_add_child(r, "query", NS_DISCO_INFO)) == NULL ||
        (el = stz_add_child(q, "identity", NULL)) == NULL ||
        stz_set_attr(el, "category", "account") < 0 ||
        stz_set_attr(el, "type", "registered") < 0 ||
        (el = stz_add_child(q, "feature", NULL)) == NULL ||
        stz_set_attr(el, "var", NS_DISCO_INFO) < 0) {
        stz_free(r);
        srv__nomem_reply(srv, from, st); /* not silence (tests/oom) */
        return;
    }
    sess_deliver(from, r);
    stz_free(r);
}

/* roster_iq answers a roster iq (RFC 6121 §2) that c's own account sent:
 * a get with the roster (§2.1.3), a set or remove through the log. */
static void roster_iq(struct srv *srv, struct sess *from, const struct stz *st)
{
    struct sess_c2s *c = (struct sess_c2s *)from;
    struct stz *query = stz_first_element(st);
    char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];
    const char *cond = "internal-server-error";
    struct srv_rop *op;
    struct stz *r;

    if (is(stz_attr(st, "type"), "get")) {
        r = stz_new("iq", STZ_NS_CLIENT);
        struct stz *q = roster_query_stz(roster_of(srv, c->user));
        if (r == NULL || q == NULL || stz_set_attr(r, "type", "result") < 0 ||
            (stz_attr(st, "id") && stz_set_attr(r, "id", stz_attr(st, "id")) < 0) ||
            stz_set_attr(r, "to", stz_attr(st, "from")) < 0) {
            stz_free(q);
            stz_free(r);
            srv__nomem_reply(srv, from, st);
            return;
        }
        stz_append(r, q);
        sess_deliver(from, r);
        stz_free(r);
        return;
    }
    if (!is(stz_attr(st, "type"), "set")) {
        c2s_bounce(srv, from, st, "bad-request", "roster iq");
        return;
    }
    snprintf(bare, sizeof bare, "%s@%s", c->user, srv->domain);
    op = calloc(1, sizeof *op);
    if (op == NULL || (op->user = strdup(c->user)) == NULL ||
        (op->resource = strdup(c->resource)) == NULL ||
        (stz_attr(st, "id") != NULL &&
         (op->iq_id = strdup(stz_attr(st, "id"))) == NULL)) {
        rop_free(op);
        srv__nomem_reply(srv, from, st);
        return;
    }
    op->is_iq = true;
    if (roster_parse_set(query, bare, &op->req, &cond) < 0) {
        rop_fail(srv, op, "modify", cond);
        return;
    }
    rop_start(srv, op);
}

/* roster_presence_in: a subscription stanza or probe st (taken) for user,
 * from outside the domain's accounts (a component) or not stamped by us:
 * the inbound side (§3) in user's roster; a probe per §4.3.2. */
static void roster_presence_in(struct srv *srv, struct sess *from, const char *user,
                               struct stz *st)
{
    enum roster_pres t;
    char *contact = bare_of(stz_attr(st, "from"));

    if (contact != NULL && is(stz_attr(st, "type"), "probe"))
        roster_probe(srv, from, user, st);
    else if (contact != NULL && pres_type_of(stz_attr(st, "type"), &t))
        sub_start(srv, user, contact, ROSTER_IN, t, st);
    free(contact);
    stz_free(st);
}

/* c2s_sub_out: client c sends subscription stanza st (taken) to account
 * address to: the outbound decision in c's roster (§3). */
static void c2s_sub_out(struct srv *srv, struct sess_c2s *c, const struct jid *to,
                        struct stz *st)
{
    char contact[CL_USER_MAX + CL_DOMAIN_MAX + 2];
    enum roster_pres t;

    snprintf(contact, sizeof contact, "%s@%s", to->local, to->domain);
    if (strcmp(to->local, c->user) == 0 || !pres_type_of(stz_attr(st, "type"), &t)) {
        stz_free(st); /* one is always subscribed to oneself, §4.2.2 */
        return;
    }
    sub_start(srv, c->user, contact, ROSTER_OUT, t, st);
    stz_free(st);
}

/* ---- presence of our own clients (RFC 6121 §4) ---- */

/* directed_covered tells whether the unavailable broadcast already reaches
 * to: the user's own resources (§4.5.2), and contacts subscribed to the
 * user's presence ("from" or "both", §4.6.2 case 1), which get it by the
 * roster. */
static bool directed_covered(struct srv *srv, const struct sess_c2s *c,
                             const struct jid *to)
{
    char bare[CL_USER_MAX + CL_DOMAIN_MAX + 2];

    if (to->local == NULL)
        return false; /* a domain (a call bridge): never in a roster here */
    if ((size_t)snprintf(bare, sizeof bare, "%s@%s", to->local, to->domain) >=
        sizeof bare)
        return false;
    if (strcmp(to->local, c->user) == 0 && strcmp(to->domain, srv->domain) == 0)
        return true;
    return roster_probe_decide(roster_of(srv, c->user), bare) == ROSTER_PROBE_PRESENCE;
}

/* directed_add remembers address b (canonical, borrowed) for c, within
 * SESS_C2S_DIRECTED_MAX; past the bound (or out of memory) the address is
 * not remembered and the log says so: it then gets no unavailable from
 * this session. */
static void directed_add(struct srv *srv, struct sess_c2s *c, const struct buf *b)
{
    char *d = NULL;

    if (c->ndirected == c->directed_cap && c->directed_cap < SESS_C2S_DIRECTED_MAX) {
        unsigned cap = c->directed_cap ? c->directed_cap * 2 : 4;
        char **nd = realloc(c->directed, cap * sizeof *nd);
        if (nd != NULL) {
            c->directed = nd;
            c->directed_cap = cap;
        }
    }
    if (c->ndirected < c->directed_cap)
        d = strdup(b->data);
    if (d == NULL) {
        SRV_LOG(srv, LOG_INFO,
                "c%" PRIu64 " %s: directed presence to %s not remembered (%u already, "
                "or no memory): it will get no unavailable presence",
                c->base.conn, c->jid, b->data, c->ndirected);
        return;
    }
    c->directed[c->ndirected++] = d;
}

/* directed_unavailable sends unavailable presence st (borrowed, 'from'
 * set) to every address c gave directed presence (RFC 6121 §4.6.3, with
 * §4.5.2 for a lost connection), and forgets them. */
static void directed_unavailable(struct srv *srv, struct sess_c2s *c,
                                 const struct stz *st)
{
    char **d = c->directed;
    unsigned n = c->ndirected;

    c->directed = NULL; /* routing below must not see the list */
    c->ndirected = c->directed_cap = 0;
    for (unsigned i = 0; i < n; i++) {
        struct stz *p = stz_copy(st);
        if (p != NULL && stz_set_attr(p, "to", d[i]) == 0)
            srv__route(srv, &c->base, p);
        else
            stz_free(p);
        free(d[i]);
    }
    free(d);
}

void srv__c2s_directed(struct srv *srv, struct sess_c2s *c, const struct stz *st)
{
    const char *type = stz_attr(st, "type"), *to_s = stz_attr(st, "to");
    struct jid to = {0};
    struct buf b = {0};
    unsigned i;

    if (strcmp(st->name, "presence") != 0 || to_s == NULL ||
        (type != NULL && !is(type, "unavailable")) || c->jid == NULL)
        return;
    if (jid_parse(to_s, &to) < 0 || jid_format(&to, &b) < 0 || b.data == NULL) {
        jid_clear(&to);
        buf_free(&b);
        return; /* an address that does not parse is bounced by routing */
    }
    for (i = 0; i < c->ndirected && strcmp(c->directed[i], b.data) != 0; i++)
        ;
    if (type != NULL) {
        /* §4.6.3: directed unavailable; nothing more owed to that address */
        if (i < c->ndirected) {
            free(c->directed[i]);
            c->directed[i] = c->directed[--c->ndirected];
        }
    } else if (i == c->ndirected && !directed_covered(srv, c, &to)) {
        directed_add(srv, c, &b);
    }
    jid_clear(&to);
    buf_free(&b);
}

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

/* c2s_broadcast_remote sends presence st (borrowed, 'from' set) of c to
 * the user's available resources on other nodes, each by its full JID
 * (RFC 6121 §4.2.2, §4.4.2, §4.5.2 across the cluster); st's 'to' is left
 * set.  With probe, instead, a probe from c to one available resource of
 * each other node: that node answers with the presence of the user's
 * sessions there (§4.2.2: the new resource learns about the others). */
static void c2s_broadcast_remote(struct srv *srv, struct sess_c2s *c, struct stz *st,
                                 bool probe)
{
    struct c2s_remotes rs;

    remotes_of(srv, c->user, &rs);
    for (size_t i = 0; i < rs.n; i++) {
        bool skip = !rs.r[i].available;
        for (size_t k = 0; probe && !skip && k < i; k++)
            skip = rs.r[k].available && rs.r[k].node == rs.r[i].node;
        if (skip)
            continue;
        if (probe) {
            struct stz *p = pres_new(c->jid, rs.r[i].jid, "probe");
            if (p != NULL)
                srv_cluster__forward(srv, &c->base, p, rs.r[i].jid);
            stz_free(p);
        } else if (stz_set_attr(st, "to", rs.r[i].jid) == 0) {
            srv_cluster__forward(srv, &c->base, st, rs.r[i].jid);
        }
    }
    remotes_free(&rs);
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
        srv_cluster__presence(srv, c); /* the table entry, cluster-wide */
        stz_free(c->pres);
        c->pres = stz_copy(st);
        /* §4.2.2: to all of the user's available resources, including the
         * one that sent it. */
        c2s_broadcast(srv, c->acct, st, NULL);
        c2s_broadcast_remote(srv, c, st, false);
        /* §4.2.2, §4.4.2: the new resource learns about the others (stop
         * if writing to it failed: it is closed and unbound). */
        for (struct sess_c2s *r = initial && c->acct ? c->acct->first : NULL;
             r != NULL && c->base.state == SESS_READY; r = r->anext)
            if (r != c && r->available && r->pres != NULL)
                c2s_send(srv, c, r->pres, c->jid);
        if (initial && c->base.state == SESS_READY)
            c2s_broadcast_remote(srv, c, NULL, true);
        stz_del_attr(st, "to");
        roster_presence_out(srv, c, st);
        /* §4.3.1 probes, §3.1.3 pending requests */
        if (initial && c->base.state == SESS_READY)
            roster_login(srv, c);
        stz_free(st);
        return;
    } else if (c->available) {
        c->available = false;
        srv_cluster__presence(srv, c);
        stz_free(c->pres);
        c->pres = NULL;
        srv__lastpres_left(srv, c->user, c->resource, st); /* §4.3.2 */
        /* §4.5.2: unavailable to the other available resources. */
        c2s_broadcast(srv, c->acct, st, c);
        c2s_broadcast_remote(srv, c, st, false);
    }
    stz_del_attr(st, "to");
    roster_presence_out(srv, c, st);
    if (c->base.state == SESS_READY)
        directed_unavailable(srv, c, st); /* §4.6.3 */
    stz_free(st);
}

void srv__c2s_gone(struct srv *srv, struct sess_c2s *c)
{
    struct stz *st;

    if ((!c->available && c->ndirected == 0) || c->jid == NULL)
        return;
    /* RFC 6121 §4.5.2 (a lost connection included): the server sends
     * unavailable presence on the client's behalf, to the subscribers and
     * to those the session gave directed presence (§4.6.3). */
    st = stz_new("presence", STZ_NS_CLIENT);
    if (st == NULL || stz_set_attr(st, "from", c->jid) < 0 ||
        stz_set_attr(st, "type", "unavailable") < 0) {
        stz_free(st);
        return;
    }
    if (c->available) {
        c->available = false;
        srv__lastpres_left(srv, c->user, c->resource, NULL); /* §4.3.2 */
        c2s_broadcast(srv, acct_find(srv, c->user), st, c);
        c2s_broadcast_remote(srv, c, st, false);
        stz_del_attr(st, "to");
        roster_presence_out(srv, c, st);
    }
    stz_del_attr(st, "to");
    directed_unavailable(srv, c, st);
    stz_free(st);
}

/* ---- iq handled on behalf of an account (RFC 6121 §8.5.1, §8.5.2.1.3) */

static void c2s_account_iq(struct srv *srv, struct sess *from, const struct jid *to,
                           struct stz *st)
{
    struct stz *p;
    const struct sess_c2s *c = from->kind == SESS_KIND_C2S ? (void *)from : NULL;

    if (!rt_may_bounce(st)) {
        stz_free(st); /* results and errors to an account end here */
        return;
    }
    /* The server looks inside: the children of a lazily parsed stanza are
     * built now, out of memory told apart from no payload (stz.h). */
    if (stz_expand(st) != 0) {
        srv__nomem_reply(srv, from, st);
        stz_free(st);
        return;
    }
    p = stz_first_element(st);
    if (p == NULL || stz_next_element(p) != NULL) {
        /* RFC 6120 §8.2.3: exactly one payload. */
        struct stz *r = stz_error_reply(st, "modify", "bad-request", NULL);
        if (r != NULL)
            sess_deliver(from, r);
        stz_free(r);
    } else if (is(p->ns, NS_ROSTER) && c != NULL && strcmp(c->user, to->local) == 0) {
        roster_iq(srv, from, st);
    } else if (is(p->ns, NS_DISCO_INFO) && strcmp(p->name, "query") == 0 &&
               stz_attr(p, "node") == NULL && is(stz_attr(st, "type"), "get") &&
               c != NULL && strcmp(c->user, to->local) == 0) {
        account_disco_info(srv, from, c->user, st);
    } else {
        /* RFC 6121 §8.5.1: what the server does
         * not answer itself for an account is service-unavailable. */
        c2s_bounce(srv, from, st, "service-unavailable", "iq to an account");
    }
    stz_free(st);
}

/* ---- routing to accounts (RFC 6121 §8.5) ---- */

/* c2s_to_bare routes st (taken) to the bare JID of an account. */
static void c2s_to_bare(struct srv *srv, struct sess *from, const struct jid *to,
                        struct stz *st)
{
    struct srv_acct *a = acct_find(srv, to->local);
    const char *type = stz_attr(st, "type");
    struct c2s_remotes rs;
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
            /* §8.5.2.1.2: to every available resource (in cluster mode
             * also on another node). */
            deliver_to_user(srv, from, to->local, st);
            stz_free(st);
        } else if (is(type, "error")) {
            stz_free(st);
        } else {
            roster_presence_in(srv, from, to->local, st);
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
    /* In cluster mode over the whole cluster: the local sessions and the
     * user's entries in the routing table. */
    remotes_of(srv, to->local, &rs);
    for (struct sess_c2s *r = a != NULL ? a->first : NULL; r != NULL; r = r->anext)
        if (r->available && r->priority > best)
            best = r->priority;
    for (size_t i = 0; i < rs.n; i++)
        if (rs.r[i].available && rs.r[i].priority > best)
            best = rs.r[i].priority;
    if (best < 0) {
        /* §8.5.2.2.1: no available resource, no offline storage here;
         * a headline is silently ignored, the others bounced. */
        if (is(type, "headline"))
            SRV_LOG(srv, LOG_DEBUG,
                    "c%" PRIu64 " headline to %s dropped: account offline", from->conn,
                    stz_attr(st, "to"));
        else
            c2s_bounce(srv, from, st, "service-unavailable", "account offline");
        remotes_free(&rs);
        stz_free(st);
        return;
    }
    for (struct sess_c2s *r = a != NULL ? a->first : NULL, *next; r != NULL; r = next) {
        next = r->anext;
        if (r->available && r->priority >= 0 &&
            (r->priority == best || is(type, "headline")))
            c2s_send(srv, r, st, NULL);
    }
    /* each remote one by its own fwd_send: to that full JID, the stanza
     * unchanged (exactly once and in order per sender and receiver) */
    for (size_t i = 0; i < rs.n; i++)
        if (rs.r[i].available && rs.r[i].priority >= 0 &&
            (rs.r[i].priority == best || is(type, "headline")))
            srv_cluster__forward(srv, from, st, rs.r[i].jid);
    remotes_free(&rs);
    stz_free(st);
}

/* c2s_nowhere: cluster mode, a chat, normal or headline message to full
 * JID to that no node holds (the table is whole and lacks it, and nothing
 * waits for it): handled as on one node (RFC 6121 §8.5.3.2.1): chat and
 * normal by the bare JID, a headline silently ignored (fwd would answer
 * it with service-unavailable). */
static bool c2s_nowhere(const struct srv *srv, const struct jid *to, const struct stz *st)
{
    const char *type = stz_attr(st, "type");
    char full[CL_USER_MAX + CL_DOMAIN_MAX + 1100];

    if (strcmp(st->name, "message") != 0 ||
        !(type == NULL || is(type, "normal") || is(type, "chat") ||
          is(type, "headline")) ||
        srv__c2s_find(srv, to->local, to->resource) != NULL ||
        srv_cluster__waiting(srv, st) || !srv_cluster__complete(srv))
        return false;
    if ((size_t)snprintf(full, sizeof full, "%s@%s/%s", to->local, to->domain,
                         to->resource) >= sizeof full)
        return false;
    return !srv_cluster__held(srv, full);
}

void srv__c2s_route(struct srv *srv, struct sess *from, const struct jid *to,
                    struct stz *st)
{
    const char *type = stz_attr(st, "type");
    struct sess_c2s *r;

    if (strcmp(st->name, "presence") == 0 && from->kind == SESS_KIND_C2S &&
        rt_subscription_type(type)) {
        /* §3: the client's own subscription stanza, to a bare or full JID
         * (§3.1.1: the server stamps and routes the bare JID). */
        c2s_sub_out(srv, (struct sess_c2s *)from, to, st);
        return;
    }
    if (strcmp(st->name, "presence") == 0 && is(type, "probe") &&
        is_account(srv, to->local)) {
        roster_presence_in(srv, from, to->local, st); /* §4.3.2 */
        return;
    }
    if (to->resource == NULL) {
        c2s_to_bare(srv, from, to, st);
        return;
    }
    r = srv__c2s_find(srv, to->local, to->resource);
    if (srv->cl != NULL && (r == NULL || srv_cluster__waiting(srv, st)) &&
        !c2s_nowhere(srv, to, st)) {
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
    if (strcmp(st->name, "presence") == 0 && rt_subscription_type(type)) {
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
    for (size_t i = 0; user != NULL && i < srv->conns.nb; i++) {
        struct hlink *l = srv->conns.b[i], *next;
        for (; l != NULL; l = next) {
            struct sess *s = SRV_SESS(l);
            struct sess_c2s *c = (struct sess_c2s *)s;
            next = l->next;
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
    if (user != NULL)
        srv__lastpres_forget(srv, user); /* after the closes above kept one */
}
