/* srv_cluster.c: the node core in cluster mode: srv's glue to fwd (fwd.h).
 *
 * Stanzas to names this node does not hold go to fwd_send; stanzas fwd
 * delivers go byte for byte to the local session (error replies fwd makes
 * for our senders too); component sessions are reported to the leader
 * with their sid; a newer session elsewhere closes ours (docs/cluster.md
 * "Routing in the node core").
 *
 * fwd lists what it decides for our sessions (deliveries, conflicts) and
 * cl_run carries it out after every fwd call, outside fwd: a delivery may
 * make a session answer through fwd_send (a probe).  fwd's env.find is a
 * lookup of the session that holds a JID; sessions closed meanwhile go to
 * srv's dead list and are freed only when it is reaped, after cl_run, so
 * a listed session is never freed under it.  A delivery whose session
 * closed meanwhile (an earlier act closed it) or whose write failed is
 * reported to fwd (fwd_undelivered), which answers it with an error
 * instead of acknowledging it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fwd.h"
#include "jid.h"
#include "pframe.h"
#include "sess_c2s.h"
#include "sess_comp.h"
#include "srv.h"
#include "srv_int.h"

struct srv_cluster {
    struct fwd *fwd;
    struct srv_cluster_env env;
    uint64_t node_id;
    uint64_t leader, term;
    size_t members;            /* voting members (srv_cluster_set_members) */
    bool soft_entries;         /* srv_cluster_set_soft_entries */
    uint64_t last_sid;         /* sids increase per srv_cluster, from 1 */
    uint64_t conflicts_closed; /* local sessions closed by a CONFLICT */
    struct buf xml;            /* scratch: the stanza being forwarded */
    /* Refusals for a full queue come by thousands a second under load: the
     * first is logged, then one summary line a second with the count. */
    uint64_t busy_logged_ms; /* when the last busy line was written; 0: never */
    uint64_t busy_quiet;     /* refusals since then, not logged one by one */
    bool running;            /* cl_run is carrying out an update */
};

#define CL_BUSY_LOG_MS 1000

/* cl_busy_summary writes the count of refusals not logged since the last
 * line, if any. */
static void cl_busy_summary(struct srv *srv)
{
    struct srv_cluster *cl = srv->cl;

    if (cl->busy_quiet == 0)
        return;
    SRV_LOG(srv, LOG_INFO,
            "%" PRIu64
            " more stanzas not forwarded (resource busy, try again) in %" PRIu64 " ms",
            cl->busy_quiet, srv->now_ms - cl->busy_logged_ms);
    cl->busy_quiet = 0;
    cl->busy_logged_ms = srv->now_ms;
}

/* ---- fwd callbacks ---- */

static void cl_run(struct srv *srv);

static int cl_send(void *ud, uint64_t node, struct pframe *f)
{
    struct srv *srv = ud;

    return srv->cl->env.peer_send(srv->cl->env.ud, node, f);
}

/* cl_session returns the READY local session that holds to (a JID): the
 * client of that full JID in our domain, else the component whose domain
 * holds it (longest match, as rt_decide), or NULL. */
static struct sess *cl_session(struct srv *srv, const char *to)
{
    struct jid j = {0};
    struct sess *s = NULL;
    struct sess_comp *c;

    /* Most stanzas from a peer go to a component's own domain, written as
     * the table holds it: equal to a prepared domain held here, so it is a
     * valid JID already and needs no parse (the parse was a fifth
     * of the holder's work).  Anything else (a localpart, a resource, a
     * subdomain, another spelling) takes the full path below. */
    if (to != NULL && strpbrk(to, "@/") == NULL && (c = rt_find(srv->rt, to)) != NULL &&
        c->domain != NULL && strcmp(c->domain, to) == 0)
        return c->base.state == SESS_READY ? &c->base : NULL;
    if (to != NULL && jid_parse(to, &j) == 0) {
        if (j.local != NULL && j.resource != NULL && strcmp(j.domain, srv->domain) == 0)
            s = (struct sess *)srv__c2s_find(srv, j.local, j.resource);
        else
            s = rt_find(srv->rt, j.domain);
    }
    jid_clear(&j);
    if (s != NULL && s->state != SESS_READY)
        s = NULL;
    return s;
}

static void *cl_find(void *ud, const char *to)
{
    struct srv *srv = ud;
    struct sess *s = cl_session(srv, to);

    if (s == NULL)
        SRV_LOG(srv, LOG_DEBUG, "cluster stanza to %s: no local session", to);
    return s;
}

/* cl_deliver writes a stanza fwd delivers to s, cl_find's answer (not
 * freed before cl_run ends: cl_reap).  Returns whether s took it. */
static bool cl_deliver(struct srv *srv, struct sess *s, const char *from, const char *xml,
                       size_t len)
{
    /* Closed since fwd found it (an earlier act of the update: a
     * conflict, a replacement, a failed write): not delivered. */
    if (s->state != SESS_READY)
        return false;
    /* A probe for a client is answered by the server (RFC 6121 §4.3.2). */
    if (srv__c2s_cluster_probe(srv, s, from, xml, len))
        return true;
    /* A failed write closes the session, as for a local delivery; the
     * bytes were not queued, so the stanza was not delivered. */
    if (sess_deliver_raw(s, xml, len) < 0)
        return false;
    srv->stats.routed++;
    return true;
}

/* cl_conflict_client closes the local client of full JID name if its sid
 * is sid (a newer session of that full JID on another node: RFC 6120
 * §7.7.2.2, the new one wins cluster-wide). */
static void cl_conflict_client(struct srv *srv, const char *name, uint64_t sid)
{
    struct jid j = {0};
    struct sess_c2s *c = NULL;

    if (jid_parse(name, &j) == 0 && j.local != NULL && j.resource != NULL)
        c = srv__c2s_find(srv, j.local, j.resource);
    jid_clear(&j);
    if (c == NULL || c->base.sid != sid || c->base.state != SESS_READY) {
        SRV_LOG(srv, LOG_DEBUG, "cluster conflict for %s (sid %" PRIu64 ") ignored", name,
                sid);
        return;
    }
    SRV_LOG(srv, LOG_INFO,
            "c%" PRIu64 " client %s replaced by a newer session on another node",
            c->base.conn, name);
    srv->cl->conflicts_closed++;
    sess_fail(&c->base, XS_COND_CONFLICT, "newer session on another node");
}

static void cl_conflict(struct srv *srv, const char *name, uint64_t sid)
{
    struct sess_comp *s;

    if (strchr(name, '@') != NULL) {
        cl_conflict_client(srv, name, sid);
        return;
    }
    s = rt_find(srv->rt, name);

    /* Only the session the leader judged older, and only while it is open
     * (the CONFLICT frame and the table may both say it). */
    if (s == NULL || s->domain == NULL || strcmp(s->domain, name) != 0 ||
        s->base.sid != sid || s->base.state != SESS_READY) {
        SRV_LOG(srv, LOG_DEBUG, "cluster conflict for %s (sid %" PRIu64 ") ignored", name,
                sid);
        return;
    }
    SRV_LOG(srv, LOG_INFO,
            "c%" PRIu64 " component %s replaced by a newer session on another node",
            s->base.conn, name);
    srv->cl->conflicts_closed++;
    /* RFC 6120 §4.9.3.3: the name now lives elsewhere; the new session
     * wins (DESIGN: a name lives once in the cluster). */
    sess_fail(&s->base, XS_COND_CONFLICT, "newer session on another node");
}

/* cl_run carries out what fwd listed, in order, until it lists nothing
 * more, telling fwd which deliveries did not reach a session (their
 * outcome is settled by the next take).  Called after every fwd call; a
 * call made while it runs (a delivery's answer through fwd_send) leaves
 * its actions to the loop. */
static void cl_run(struct srv *srv)
{
    struct srv_cluster *cl = srv->cl;
    struct fwd_update u;

    if (cl == NULL || cl->running)
        return;
    cl->running = true;
    do {
        fwd_take(cl->fwd, &u);
        for (size_t i = 0; i < u.n; i++) {
            const struct fwd_act *a = &u.acts[i];
            if (a->kind != FWD_ACT_DELIVER)
                cl_conflict(srv, a->name, a->sid);
            else if (!cl_deliver(srv, a->dest, a->from, a->xml, a->len))
                fwd_undelivered(cl->fwd, a);
        }
    } while (u.n > 0);
    cl->running = false;
}

/* ---- lifetime ---- */

/* cl_report gives s its sid and reports it.  Which of two sessions of a
 * name is newer is decided by the leader's order, never by clocks (a node
 * whose clock ran 60 s ahead won every conflict). */
static int cl_report(struct srv *srv, struct sess_comp *s)
{
    int rc;

    s->base.sid = ++srv->cl->last_sid;
    rc = fwd_local_add(srv->cl->fwd, s->domain, s->base.sid, srv->now_ms);
    cl_run(srv);
    return rc;
}

int srv_cluster_start(struct srv *srv, const struct fwd_config *cfg,
                      const struct srv_cluster_env *env, uint64_t now_ms)
{
    struct fwd_config c;
    struct fwd_env fe = {0};
    struct srv_cluster *cl;
    int rc;

    if (srv->cl != NULL)
        return XE_EXISTS;
    if (cfg == NULL || env == NULL || env->peer_send == NULL)
        return XE_INVAL;
    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
    cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return XE_NOMEM;
    c = *cfg;
    if (c.name == NULL)
        c.name = srv->node_name;
    /* A fresh incarnation per start: seqs restart at 1, and receivers would
     * take them for duplicates of the previous fwd's (docs/cluster.md). */
    while (c.incarnation == 0)
        srv->env.random(srv->env.ud, &c.incarnation, sizeof c.incarnation);
    fe.ud = srv;
    fe.send = cl_send;
    fe.find = cl_find;
    fe.log = srv->env.log;
    rc = fwd_new(&c, &fe, &cl->fwd);
    if (rc < 0) {
        free(cl);
        return rc;
    }
    cl->env = *env;
    cl->node_id = c.node_id;
    /* sids start at a random point per start, so that a CONFLICT meant for
     * a session of an earlier start never names one of this start. */
    cl->last_sid = (c.incarnation >> 32) << 16;
    srv->cl = cl;
    rt_set_clustered(srv->rt, true); /* srv__route forwards what is remote */
    /* Sessions that authenticated (components) or bound (clients) before:
     * report them now. */
    for (size_t i = 0; i < srv->conns.nb; i++)
        for (struct hlink *l = srv->conns.b[i]; l != NULL; l = l->next) {
            struct sess *b = SRV_SESS(l);
            struct sess_comp *s = (struct sess_comp *)b;
            if (b->kind == SESS_KIND_COMP && b->state == SESS_READY &&
                s->domain != NULL && rt_find(srv->rt, s->domain) == s &&
                cl_report(srv, s) == XE_NOMEM) {
                srv_cluster_stop(srv);
                return XE_NOMEM;
            }
            if (b->kind == SESS_KIND_C2S && b->state == SESS_READY &&
                srv_cluster__bound(srv, (struct sess_c2s *)b) == XE_NOMEM) {
                srv_cluster_stop(srv);
                return XE_NOMEM;
            }
        }
    SRV_LOG(srv, LOG_INFO, "cluster mode: node %" PRIx64, c.node_id);
    return 0;
}

void srv_cluster__free(struct srv *srv)
{
    if (srv->cl == NULL)
        return;
    rt_set_clustered(srv->rt, false);
    fwd_free(srv->cl->fwd);
    buf_free(&srv->cl->xml);
    free(srv->cl);
    srv->cl = NULL;
}

void srv_cluster_stop(struct srv *srv)
{
    if (srv->cl == NULL)
        return;
    srv_cluster__free(srv);
    for (size_t i = 0; i < srv->conns.nb; i++)
        for (struct hlink *l = srv->conns.b[i]; l != NULL; l = l->next)
            SRV_SESS(l)->sid = 0;
    for (struct sess *s = srv->dead; s != NULL; s = s->dnext)
        s->sid = 0;
    SRV_LOG(srv, LOG_INFO, "%s", "cluster mode stopped");
}

bool srv_cluster_started(const struct srv *srv)
{
    return srv->cl != NULL;
}

/* ---- hooks for srv.c ---- */

int srv_cluster__authenticated(struct srv *srv, struct sess_comp *s)
{
    if (srv->cl == NULL)
        return 0;
    return cl_report(srv, s);
}

/* cl_attr: client c's table attributes.  Bare-JID routing needs every
 * resource's availability and priority (RFC 6121 §8.5.2.1.1) on every
 * node. */
static struct pframe_attr cl_attr(const struct sess_c2s *c)
{
    struct pframe_attr a = {0};

    a.kind = c->base.ws != NULL ? PFRAME_KIND_C2S_WS : PFRAME_KIND_C2S_TCP;
    a.flags = c->available ? PFRAME_ATTR_AVAILABLE : 0;
    a.priority = (int8_t)c->priority;
    return a;
}

int srv_cluster__bound(struct srv *srv, struct sess_c2s *c)
{
    if (srv->cl == NULL)
        return 0;
    /* A client is reported by its full JID, a name of its own in the
     * leader's table. */
    struct pframe_attr a = cl_attr(c);

    int rc;

    c->base.sid = ++srv->cl->last_sid;
    rc = fwd_local_add_attr(srv->cl->fwd, c->jid, c->base.sid, &a, srv->now_ms);
    cl_run(srv);
    return rc;
}

void srv_cluster__presence(struct srv *srv, struct sess_c2s *c)
{
    struct pframe_attr a;

    if (srv->cl == NULL || c->base.sid == 0 || c->jid == NULL)
        return;
    a = cl_attr(c);
    fwd_local_set_attr(srv->cl->fwd, c->jid, c->base.sid, &a, srv->now_ms);
    cl_run(srv);
}

void srv_cluster__gone(struct srv *srv, struct sess *b)
{
    const char *name = b->kind == SESS_KIND_COMP ? ((struct sess_comp *)b)->domain
                                                 : ((struct sess_c2s *)b)->jid;

    if (srv->cl == NULL || b->sid == 0 || name == NULL)
        return;
    /* fwd ignores it when the name is held by a newer session of ours. */
    fwd_local_del(srv->cl->fwd, name, b->sid, srv->now_ms);
    b->sid = 0;
    cl_run(srv);
}

void srv_cluster__forward(struct srv *srv, struct sess *from, const struct stz *st,
                          const char *via)
{
    struct buf *x = &srv->cl->xml; /* fwd copies it; used before cl_run */
    const char *sfrom = stz_attr(st, "from"), *to = via ? via : stz_attr(st, "to");
    struct stz *reply;
    int rc;

    buf_reset(x);
    rc = stz_serialize(st, STZ_NS_COMPONENT, x);
    if (rc == 0)
        rc = fwd_send(srv->cl->fwd, sfrom, to, x->data, x->len, srv->now_ms);
    cl_run(srv);
    if (rc == 0) {
        SRV_LOG(srv, LOG_TRACE, "c%" PRIu64 " %s to %s forwarded", from->conn, st->name,
                to);
        return;
    }
    if (rc != XE_BUSY) {
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " %s to %s not forwarded (%s)", from->conn,
                st->name, to, xe_strerror(rc));
    } else if (srv->cl->busy_logged_ms == 0 ||
               srv->now_ms - srv->cl->busy_logged_ms >= CL_BUSY_LOG_MS) {
        cl_busy_summary(srv);
        SRV_LOG(srv, LOG_INFO, "c%" PRIu64 " %s to %s not forwarded (%s)", from->conn,
                st->name, to, xe_strerror(rc));
        srv->cl->busy_logged_ms = srv->now_ms != 0 ? srv->now_ms : 1;
    } else {
        srv->cl->busy_quiet++;
    }
    /* Never an error to an error, presence or iq result (RFC 6120 §8.3.1,
     * RFC 6121). */
    if (!rt_may_bounce(st))
        return;
    if (rc == XE_BUSY || rc == XE_NOMEM)
        /* §8.3.3.18: the queue is full (or memory short): wait, retry. */
        reply = stz_error_reply(st, "wait", "resource-constraint", NULL);
    else
        /* §8.3.3.11: fwd refused the stanza itself (cannot happen with the
         * framer's limits below the frame bound). */
        reply = stz_error_reply(st, "cancel", "internal-server-error", NULL);
    if (reply == NULL)
        return;
    srv->stats.bounced++;
    sess_deliver(from, reply);
    stz_free(reply);
}

struct cl_remote {
    uint64_t self;
    void (*fn)(void *ud, const struct pframe_route *e);
    void *ud;
};

static void cl_remote_one(void *ud, const struct pframe_route *e)
{
    struct cl_remote *r = ud;

    if (e->node != r->self && e->attr.kind != PFRAME_KIND_COMPONENT)
        r->fn(r->ud, e);
}

/* cl_bare writes account user's bare JID into b (cleared first); false
 * when out of memory. */
static bool cl_bare(const struct srv *srv, const char *user, struct buf *b)
{
    buf_reset(b);
    return buf_printf(b, "%s@%s", user, srv->domain) == 0;
}

void srv_cluster__each_remote(const struct srv *srv, const char *user,
                              void (*fn)(void *ud, const struct pframe_route *e),
                              void *ud)
{
    struct buf bare = {0};
    struct cl_remote r;

    if (srv->cl != NULL && cl_bare(srv, user, &bare)) {
        r = (struct cl_remote){srv->cl->node_id, fn, ud};
        /* O(the user's resources): the table hashes the bare part */
        fwd_each_of_bare(srv->cl->fwd, bare.data, cl_remote_one, &r);
    }
    buf_free(&bare);
}

bool srv_cluster__shared(const struct srv *srv)
{
    return srv->cl != NULL && srv->cl->members > 1 && srv->cl->soft_entries;
}

uint64_t srv_cluster__self(const struct srv *srv)
{
    return srv->cl != NULL ? srv->cl->node_id : 0;
}

void srv_cluster_set_soft_entries(struct srv *srv, bool ok)
{
    if (srv->cl != NULL)
        srv->cl->soft_entries = ok;
}

/* members_read: whether every member of ids other than self has a link
 * in links at version or above: up, or (known_down) down after it was up
 * last at that version. */
static bool members_read(uint64_t self, const uint64_t *ids, size_t n,
                         const struct srv_member_link *links, size_t nlinks,
                         unsigned version, bool known_down)
{
    for (size_t i = 0; i < n; i++) {
        size_t k;
        if (ids[i] == self)
            continue;
        for (k = 0; k < nlinks && links[k].id != ids[i]; k++)
            ;
        if (k == nlinks)
            return false;
        if (links[k].up ? links[k].version < version
                        : !known_down || links[k].last < version)
            return false;
    }
    return true;
}

bool srv_soft_entries_ok(uint64_t self, const uint64_t *ids, size_t n,
                         const struct srv_member_link *links, size_t nlinks)
{
    return members_read(self, ids, n, links, nlinks, PFRAME_VERSION_SOFT_ENTRIES, false);
}

bool srv_sessions_ok(uint64_t self, unsigned self_vmax, const uint64_t *ids, size_t n,
                     const struct srv_member_link *links, size_t nlinks)
{
    return self_vmax >= PFRAME_VERSION_SESSIONS &&
           members_read(self, ids, n, links, nlinks, PFRAME_VERSION_SESSIONS, true);
}

bool srv_cluster__held(const struct srv *srv, const char *name)
{
    return srv->cl != NULL && fwd_route_has(srv->cl->fwd, name);
}

bool srv_cluster__room(const struct srv *srv, const char *name)
{
    return srv->cl == NULL || fwd_local_room(srv->cl->fwd, name);
}

bool srv_cluster__complete(const struct srv *srv)
{
    return srv->cl != NULL && fwd_routes_complete(srv->cl->fwd);
}

struct cl_nsess {
    uint64_t self;
    const char *skip; /* a full JID not to count, or NULL */
    size_t n;
};

static void cl_nsess_one(void *ud, const struct pframe_route *e)
{
    struct cl_nsess *c = ud;

    if (e->node != c->self && (c->skip == NULL || strcmp(e->name, c->skip) != 0))
        c->n++;
}

size_t srv_cluster__remote_sessions(const struct srv *srv, const char *user,
                                    const char *skip)
{
    struct buf bare = {0};
    struct cl_nsess c = {0, skip, 0};

    if (srv->cl != NULL && cl_bare(srv, user, &bare)) {
        c.self = srv->cl->node_id;
        fwd_each_of_bare(srv->cl->fwd, bare.data, cl_nsess_one, &c);
    }
    buf_free(&bare);
    return c.n;
}

bool srv_cluster__waiting(const struct srv *srv, const struct stz *st)
{
    const char *to = stz_attr(st, "to");

    return srv->cl != NULL && to != NULL && fwd_waiting_for(srv->cl->fwd, to);
}

void srv_cluster__tick(struct srv *srv)
{
    if (srv->cl == NULL)
        return;
    if (srv->cl->busy_quiet > 0 &&
        srv->now_ms - srv->cl->busy_logged_ms >= CL_BUSY_LOG_MS)
        cl_busy_summary(srv);
    fwd_tick(srv->cl->fwd, srv->now_ms);
    cl_run(srv);
}

uint64_t srv_cluster__deadline(const struct srv *srv)
{
    uint64_t d;

    if (srv->cl == NULL)
        return SRV_NO_DEADLINE;
    d = fwd_next_deadline(srv->cl->fwd);
    if (srv->cl->busy_quiet > 0 && srv->cl->busy_logged_ms + CL_BUSY_LOG_MS < d)
        d = srv->cl->busy_logged_ms + CL_BUSY_LOG_MS; /* the summary line */
    return d == FWD_NO_DEADLINE ? SRV_NO_DEADLINE : d;
}

/* ---- events from the node ---- */

/* cl_clock takes the time handed in; it never goes back. */
static void cl_clock(struct srv *srv, uint64_t now_ms)
{
    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
}

/* cl_reap carries out what the fwd call listed, then frees sessions
 * closed during the call (their fwd_local_del runs here, outside fwd). */
static void cl_reap(struct srv *srv)
{
    cl_run(srv);
    srv__reap(srv);
}

int srv_cluster_set_leader(struct srv *srv, uint64_t leader, uint64_t term,
                           uint64_t now_ms)
{
    int rc;

    if (srv->cl == NULL)
        return XE_STATE;
    cl_clock(srv, now_ms);
    if (leader != srv->cl->leader || term != srv->cl->term)
        SRV_LOG(srv, LOG_INFO, "cluster leader %" PRIx64 " term %" PRIu64, leader, term);
    srv->cl->leader = leader;
    srv->cl->term = term;
    rc = fwd_set_leader(srv->cl->fwd, leader, term, srv->now_ms);
    cl_reap(srv);
    return rc;
}

int srv_cluster_set_members(struct srv *srv, const uint64_t *ids, size_t n,
                            uint64_t now_ms)
{
    int rc;

    if (srv->cl == NULL)
        return XE_STATE;
    cl_clock(srv, now_ms);
    srv->cl->members = n;
    rc = fwd_set_members(srv->cl->fwd, ids, n, srv->now_ms);
    cl_reap(srv);
    return rc;
}

int srv_cluster_input(struct srv *srv, uint64_t node, const struct pframe *f,
                      uint64_t now_ms)
{
    int rc;

    if (srv->cl == NULL)
        return XE_STATE;
    cl_clock(srv, now_ms);
    rc = fwd_input(srv->cl->fwd, node, f, srv->now_ms);
    cl_reap(srv);
    return rc;
}

void srv_cluster_flush(struct srv *srv, uint64_t now_ms)
{
    if (srv->cl == NULL)
        return;
    cl_clock(srv, now_ms);
    fwd_flush(srv->cl->fwd, srv->now_ms);
    cl_reap(srv);
}

void srv_cluster_peer_reset(struct srv *srv, uint64_t node, uint64_t now_ms)
{
    if (srv->cl == NULL)
        return;
    cl_clock(srv, now_ms);
    fwd_peer_reset(srv->cl->fwd, node, srv->now_ms);
    cl_reap(srv);
}

void srv_cluster_peer_link(struct srv *srv, uint64_t node, bool up, uint64_t now_ms)
{
    if (srv->cl == NULL)
        return;
    cl_clock(srv, now_ms);
    fwd_peer_link(srv->cl->fwd, node, up, srv->now_ms);
    cl_reap(srv);
}

void srv_cluster_pump(struct srv *srv, uint64_t now_ms)
{
    if (srv->cl == NULL)
        return;
    cl_clock(srv, now_ms);
    fwd_pump(srv->cl->fwd, srv->now_ms);
    cl_reap(srv);
}

/* ---- status ---- */

void srv_cluster_get_stats(const struct srv *srv, struct srv_cluster_stats *out)
{
    struct fwd_stats fs;

    memset(out, 0, sizeof *out);
    if (srv->cl == NULL)
        return;
    fwd_get_stats(srv->cl->fwd, &fs);
    out->started = true;
    out->node_id = srv->cl->node_id;
    out->leader = srv->cl->leader;
    out->term = srv->cl->term;
    out->forwarded = fs.forwarded;
    out->rejected = fs.rejected;
    out->waiting = fs.waiting;
    out->inflight = fs.inflight;
    out->acked = fs.acked;
    out->refused = fs.refused;
    out->unroutable = fs.unroutable;
    out->expired = fs.expired;
    out->lost = fs.lost;
    out->errors = fs.errors;
    out->delivered = fs.delivered;
    out->bounced = fs.bounced;
    out->conflicts_closed = srv->cl->conflicts_closed;
    out->protocol_errors = fs.protocol_errors;
    out->routes = fs.routes;
    out->complete = fwd_routes_complete(srv->cl->fwd);
}

struct cl_count {
    uint64_t node;
    size_t n;
};

static void cl_count_one(void *ud, const struct pframe_route *e)
{
    struct cl_count *c = ud;

    /* components only: clients are in the table too */
    if (e->node == c->node && e->attr.kind == PFRAME_KIND_COMPONENT)
        c->n++;
}

size_t srv_cluster_components(const struct srv *srv, uint64_t node)
{
    struct cl_count c = {node, 0};

    if (srv->cl != NULL)
        fwd_each_entry(srv->cl->fwd, cl_count_one, &c);
    return c.n;
}

void srv_cluster_each_route(const struct srv *srv,
                            void (*fn)(void *ud, const char *name, uint64_t node,
                                       uint64_t ord),
                            void *ud)
{
    if (srv->cl != NULL)
        fwd_each_route(srv->cl->fwd, fn, ud);
}

void srv_cluster_each_entry(const struct srv *srv,
                            void (*fn)(void *ud, const struct pframe_route *e), void *ud)
{
    if (srv->cl != NULL)
        fwd_each_entry(srv->cl->fwd, fn, ud);
}
