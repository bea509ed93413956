/* cluster.c: the peer link wired to the Raft driver and to the XMPP core's
 * forwarding: the hooks both ways, start, stop and the tick (contract in
 * cluster.h; requests in cluster_req.c, join and rebuild in cluster_join.c;
 * docs/cluster.md). */
#include "cluster_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "raft_codec.h"
#include "conffile_parse.h"
#include "err.h"
#include "fwd.h"
#include "node.h"
#include "node_int.h"
#include "peer.h"
#include "pframe.h"
#include "plink.h"
#include "raft.h"
#include "rnode.h"
#include "srv.h"
#include "node_state.h"

#define TICK_MS 50

/* plink lets a joining node's link carry join requests only, by this kind. */
_Static_assert(PLINK_SUBMIT_JOIN == CLUSTER_REQ_JOIN, "plink's join kind");

uint64_t cluster__now_ms(struct node *n)
{
    return uv_now(&n->loop);
}

void cluster_self_addr(const struct node *n, char *out, size_t len)
{
    if (n->st.peer.port != 0)
        conf_format_listen(&n->st.peer, out, len);
    else
        snprintf(out, len, "127.0.0.1:%d", PEER_DEFAULT_PORT);
}

bool cluster_removed(const struct node *n)
{
    return n->cluster != NULL && n->cluster->removed;
}

void cluster_store_replaced(struct node *n)
{
    if (n->cluster != NULL)
        n->cluster->removed = false;
}

/* stop_serving_later: a removed node stops serving XMPP (issue 13 item 2:
 * its call bridges' stanzas would go nowhere); deferred so that it never
 * runs inside an rnode or peer-link callback. */
static void stop_serving_later(struct node *n, void *arg, bool cancelled)
{
    (void)arg;
    if (!cancelled && cluster_removed(n))
        node_xmpp_stop(n);
}

/* set_removed: this node learned that it is no longer a member of its
 * cluster (how: who said so).  Once: it says so in the log and in every
 * status (State: REMOVED), stops serving XMPP and stops dialling the
 * members (they would refuse it every time); `xmpp cluster join` or
 * `xmpp cluster disable` is the way on (docs/cluster.md "Removal"). */
static void set_removed(struct node *n, const char *how)
{
    struct cluster *c = n->cluster;
    struct rnode_status st;

    if (c == NULL || c->removed || n->rn == NULL)
        return;
    rnode_status_get(n->rn, &st);
    c->removed = true;
    LOG(&n->log, LOG_WARN,
        "%s this node was removed from cluster %016" PRIx64
        " (%s): it stops serving XMPP; run xmpp cluster invite on a member, then xmpp "
        "cluster join <member> <token> here, or xmpp cluster disable to go alone",
        n->name, st.cluster_id, how);
    snprintf(n->last_error, sizeof n->last_error,
             "this node was removed from cluster %016" PRIx64
             ": join again (xmpp cluster join <member> <token>) or go alone (xmpp "
             "cluster disable)",
             st.cluster_id);
    if (c->pm != NULL)
        peer_set_members(c->pm, NULL, NULL, 0);
    node__later(n, stop_serving_later, NULL);
}

/* note_gone records the members that left the committed configuration
 * since the last look (seen), so that a HELLO from one of them can be
 * answered "you were removed" (only committed removals: an uncommitted
 * one may still be undone). */
static void note_gone(struct node *n)
{
    struct cluster *c = n->cluster;
    const struct raft_config *cfg;

    if (c == NULL || n->rn == NULL)
        return;
    cfg = rnode_config_committed(n->rn);
    if (cfg->n == 0)
        return;
    for (unsigned i = 0; c->seen_valid && i < c->n_seen; i++) {
        if (raft_config_find(cfg, c->seen[i]) != NULL || cluster__gone(c, c->seen[i]))
            continue;
        if (c->n_gone == CLUSTER_GONE_MAX) {
            memmove(c->gone, c->gone + 1, (CLUSTER_GONE_MAX - 1) * sizeof c->gone[0]);
            c->n_gone--;
        }
        c->gone[c->n_gone++] = c->seen[i];
    }
    c->n_seen = 0;
    for (unsigned i = 0; i < cfg->n && i < RAFT_MAX_MEMBERS; i++)
        c->seen[c->n_seen++] = cfg->members[i].id;
    c->seen_valid = true;
}

bool cluster__gone(const struct cluster *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n_gone; i++)
        if (c->gone[i] == id)
            return true;
    return false;
}

bool cluster_running(const struct node *n)
{
    return n->cluster != NULL && n->cluster->pm != NULL;
}

struct peer_mgr *cluster_peers(const struct node *n)
{
    return n->cluster != NULL ? n->cluster->pm : NULL;
}

void cluster_counters_get(const struct node *n, struct cluster_counters *out)
{
    if (n->cluster != NULL)
        *out = n->cluster->cnt;
    else
        memset(out, 0, sizeof *out);
}

void cluster__put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

uint64_t cluster__get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- the XMPP core's forwarding (srv cluster mode) ---- */

static struct srv *xsrv(struct node *n)
{
    return n->x != NULL && n->x->srv != NULL && srv_cluster_started(n->x->srv) ? n->x->srv
                                                                               : NULL;
}

static int sv_peer_send(void *ud, uint64_t node, struct pframe *f)
{
    struct node *n = ud;

    if (n->cluster == NULL || n->cluster->pm == NULL)
        return XE_CLOSED;
    return peer_send(n->cluster->pm, node, f);
}

uint64_t cluster__wall_ms(void *ud)
{
    struct timespec ts;

    (void)ud;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* srv_follow gives srv Raft's leader, term and voters, and the state of
 * each member's link (fwd hands stanzas only over live links; links that
 * came up before forwarding started are told here, later changes by
 * pk_link). */
static void srv_follow(struct node *n)
{
    struct srv *srv = xsrv(n);
    const struct raft_config *cfg;
    struct rnode_status st;
    uint64_t ids[RAFT_MAX_MEMBERS];
    size_t k = 0;

    if (srv == NULL || n->rn == NULL)
        return;
    rnode_status_get(n->rn, &st);
    cfg = rnode_config(n->rn);
    for (unsigned i = 0; i < cfg->n; i++)
        ids[k++] = cfg->members[i].id;
    srv_cluster_set_members(srv, ids, k, uv_now(&n->loop));
    for (size_t i = 0; i < k; i++) {
        struct peer_info pi;
        if (ids[i] != n->st.node_id && n->cluster != NULL && n->cluster->pm != NULL &&
            peer_get(n->cluster->pm, ids[i], &pi) == 0)
            srv_cluster_peer_link(srv, ids[i], pi.up, uv_now(&n->loop));
    }
    srv_cluster_set_leader(srv, st.leader_id, st.term, uv_now(&n->loop));
    node__ws_links(n, n->x); /* host-meta follows the members */
    node__after_srv(n);
}

void cluster_srv_attach(struct node *n)
{
    struct srv_cluster_env env = {.ud = n, .peer_send = sv_peer_send};
    struct fwd_config cfg;
    int rc;

    if (!cluster_running(n) || n->x == NULL || n->x->srv == NULL ||
        srv_cluster_started(n->x->srv))
        return;
    fwd_config_default(&cfg);
    cfg.node_id = n->st.node_id;
    cfg.name = n->name;
    rc = srv_cluster_start(n->x->srv, &cfg, &env, uv_now(&n->loop));
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s cannot start forwarding: %s", n->name,
            xe_strerror(rc));
        return;
    }
    srv_follow(n);
}

static void srv_detach(struct node *n)
{
    if (n->x != NULL && n->x->srv != NULL && srv_cluster_started(n->x->srv)) {
        srv_cluster_stop(n->x->srv);
        node__after_srv(n);
    }
}

/* ---- rnode hooks ---- */

static int rn_send(void *ud, uint64_t to_id, const char *to_addr,
                   const struct raft_message *m)
{
    struct node *n = ud;
    size_t len = codec_encoded_size(m), out;
    void *buf;
    int rc;

    if (n->cluster == NULL || n->cluster->pm == NULL)
        return XE_CLOSED;
    /* A removed node takes part in nothing (its campaigns would only make
     * the members refuse its links, and redial them). */
    if (n->cluster->removed)
        return XE_CLOSED;
    if (len == 0)
        return XE_INVAL;
    buf = malloc(len);
    if (buf == NULL)
        return XE_NOMEM;
    rc = codec_encode(m, buf, len, &out) != 0
             ? XE_INVAL
             : peer_send_raft(n->cluster->pm, to_id, to_addr, buf, out);
    free(buf);
    return rc;
}

static int rn_forward(void *ud, uint64_t leader_id, const char *leader_addr,
                      const void *cmd, size_t len, uint64_t timeout_ms, rnode_done_cb cb,
                      void *arg)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;
    struct creq *q;
    int rc;

    (void)leader_addr;
    if (c == NULL || c->pm == NULL)
        return XE_NOLEADER;
    q = cluster__req_new(c, CLUSTER_REQ_CMD, cmd, len, timeout_ms);
    if (q == NULL)
        return XE_NOMEM;
    q->rcb = cb;
    q->rarg = arg;
    q->fixed = true;
    rc = cluster__req_send(c, q, leader_id);
    if (rc < 0) {
        c->reqs = q->next; /* q is first: cluster__req_new pushed it */
        free(q->body);
        free(q);
        return rc == XE_NOTFOUND ? XE_NOLEADER : rc;
    }
    return 0;
}

static void sync_members(struct node *n)
{
    const struct raft_config *cfg = rnode_config(n->rn);
    uint64_t ids[RAFT_MAX_MEMBERS];
    const char *addrs[RAFT_MAX_MEMBERS];

    /* A joining node has no configuration until the leader's log arrives:
     * keep the links it has (the leader's among them). */
    if (cfg->n == 0)
        return;
    for (unsigned i = 0; i < cfg->n; i++) {
        ids[i] = cfg->members[i].id;
        addrs[i] = cfg->members[i].address;
    }
    peer_set_members(n->cluster->pm, ids, addrs, cfg->n);
}

static void rn_status(void *ud)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;
    struct rnode_status st;

    if (c == NULL || n->rn == NULL)
        return;
    rnode_status_get(n->rn, &st);
    if (st.leader_id != c->leader_id || st.term != c->term) {
        if (st.leader_id != c->leader_id) {
            c->cnt.leader_changes++;
            c->down_reported = 0;
        }
        c->leader_id = st.leader_id;
        c->term = st.term;
    }
    if (st.removed)
        set_removed(n, "its log removes it");
    note_gone(n);
    if (c->pm == NULL)
        return;
    peer_set_cluster_id(c->pm, st.cluster_id);
    if (!c->removed)
        sync_members(n);
    srv_follow(n);
    if (c->join.phase == JOIN_SYNC) {
        const struct raft_member *me =
            raft_config_find(rnode_config(n->rn), n->st.node_id);
        if (me != NULL && me->role == RAFT_VOTER)
            cluster__join_finish(c, 0, NULL);
    }
}

void cluster_rnode_hooks(struct rnode_hooks *h)
{
    h->send = rn_send;
    h->forward_submit = rn_forward;
    h->status = rn_status;
}

/* ---- peer hooks ---- */

static int pk_check(void *ud, const struct pframe_hello *h, bool contact, char *why,
                    size_t whylen)
{
    struct node *n = ud;
    const struct raft_config *cfg;
    struct rnode_status st;
    char id[17];

    if (contact)
        return 0; /* the node we asked to join: its cluster is the one we want */
    if (n->rn == NULL) {
        snprintf(why, whylen, "this node is stopping");
        return XE_STATE;
    }
    rnode_status_get(n->rn, &st);
    state_node_id_hex(h->node_id, id);
    if (h->cluster_id == 0) {
        LOG(&n->log, LOG_INFO, "%s node %s at %s asks to join", n->name, id, h->addr);
        return 0;
    }
    if (h->cluster_id != st.cluster_id) {
        snprintf(why, whylen,
                 "node %s at %s belongs to cluster %016" PRIx64 ", this node to cluster "
                 "%016" PRIx64,
                 id, h->addr, h->cluster_id, st.cluster_id);
        return XE_PERM;
    }
    cfg = rnode_config(n->rn);
    if (cfg->n == 0 || raft_config_find(cfg, h->node_id) != NULL)
        return 0;
    note_gone(n);
    if (!cluster__gone(n->cluster, h->node_id) &&
        raft_config_find_address(cfg, h->addr) != NULL) {
        /* A new id at a member's address, in our cluster: the member there
         * was replaced while our configuration fell behind (plink.h,
         * SUCCESSOR: its link carries the log only until we know it). */
        LOG(&n->log, LOG_INFO,
            "%s node %s at %s is not in this node's configuration yet: taking the log "
            "from it (the member at that address was replaced?)",
            n->name, id, h->addr);
        return 0;
    }
    if (cluster__gone(n->cluster, h->node_id)) {
        snprintf(why, whylen,
                 "node %s at %s was removed from cluster %016" PRIx64
                 ": it may join again with a token (xmpp cluster invite)",
                 id, h->addr, st.cluster_id);
        return XE_NOTFOUND;
    }
    snprintf(why, whylen,
             "node %s at %s is not a member of cluster %016" PRIx64
             " (removed, or not added yet)",
             id, h->addr, st.cluster_id);
    return XE_PERM;
}

/* pk_refused: a member we dialled refused our HELLO and said why.  A
 * member of our own cluster that says we were removed is believed: it is
 * in our configuration and its certificate was checked for its address. */
static void pk_refused(void *ud, uint64_t id, const struct pframe_refuse *r)
{
    struct node *n = ud;
    struct rnode_status st;
    char how[64], hex[17];

    if (n->cluster == NULL || n->rn == NULL)
        return;
    if (id == 0 && n->cluster->join.phase == JOIN_CONTACT) {
        /* Our join contact refused us: the joiner's shell hears why at
         * once, not "could not reach" after the timeout (issue 13 item 5). */
        char msg[PFRAME_MAX_MSG + 64];
        snprintf(msg, sizeof msg, "the member refused this node: %s", r->reason);
        cluster__join_finish(n->cluster, XE_PERM, msg);
        return;
    }
    if (id == 0 || r->code != PFRAME_REFUSE_REMOVED)
        return;
    rnode_status_get(n->rn, &st);
    if (r->cluster_id != st.cluster_id ||
        raft_config_find(rnode_config(n->rn), id) == NULL)
        return;
    state_node_id_hex(id, hex);
    snprintf(how, sizeof how, "member %s said so", hex);
    set_removed(n, how);
}

static int pk_raft(void *ud, uint64_t from, const void *data, size_t len)
{
    struct node *n = ud;
    struct codec_msg m;
    int rc;

    if (n->rn == NULL)
        return 0;
    if (codec_decode(data, len, &m) != 0)
        return XE_PROTO;
    rc = rnode_receive(n->rn, from, &m.msg);
    codec_msg_free(&m);
    return rc == XE_PROTO ? rc : 0;
}

/* refuse_join_addr answers a joining node's request f with a refusal when
 * the address it asks to join at is not the one its HELLO claimed (and its
 * certificate names): otherwise a node could be added at an address it
 * cannot prove (docs/cluster.md, "Identity and membership").  0 when the
 * addresses agree; < 0 when the request was answered here. */
static int refuse_join_addr(struct node *n, uint64_t from, const struct pframe *f)
{
    struct peer_info pi;
    struct sreply *r;
    char id[17], why[300];
    int rc;

    if (peer_get(n->cluster->pm, from, &pi) < 0)
        snprintf(pi.addr, sizeof pi.addr, "(no link)");
    rc = cluster__join_check(pi.addr, f->u.submit.data + 9, f->u.submit.len - 9, why,
                             sizeof why);
    if (rc == 0)
        return 0;
    state_node_id_hex(from, id);
    LOG(&n->log, LOG_WARN, "%s join request from node %s refused: %s", n->name, id, why);
    r = malloc(sizeof *r);
    if (r == NULL)
        return rc;
    r->n = n;
    r->peer = from;
    r->rid = f->u.submit.request_id;
    r->invite = -1;
    cluster__reply_peer(r, rc, why, NULL, 0);
    return rc;
}

/* serve_guest_join serves a joining node's request f (the only frame its
 * link may carry, peer.c and plink), answered through r (taken): the join
 * token in it must be one this member made and still holds (cluster
 * invite; docs/cluster.md "Join"); it is held while the request is under
 * way and used up if the join succeeds.  The request goes on to the
 * leader without the token. */
static void serve_guest_join(struct node *n, uint64_t from, const struct pframe *f,
                             struct sreply *r, uint64_t expires)
{
    const unsigned char *d = f->u.submit.data;
    const unsigned char *tok;
    size_t tlen, base;
    char id[17], self[PFRAME_MAX_ADDR + 1], why[1000];
    int slot;

    state_node_id_hex(from, id);
    if (cluster__join_token(d + 9, f->u.submit.len - 9, &tok, &tlen, &base) < 0) {
        cluster__reply_peer(r, XE_PROTO, "malformed join request", NULL, 0);
        return;
    }
    slot = cluster__invite_take(n->cluster, tok, tlen, cluster__now_ms(n));
    if (slot < 0) {
        cluster_self_addr(n, self, sizeof self);
        LOG(&n->log, LOG_WARN,
            "%s join request from node %s refused: %s join token (run xmpp cluster "
            "invite here)",
            n->name, id, tlen == 0 ? "no" : "not a valid");
        snprintf(
            why, sizeof why,
            "%s has no valid join token for this node (none given, expired, used, "
            "or made on another member): run xmpp cluster invite on %s and join with "
            "the token it prints: xmpp cluster join %s <token>",
            self, self, self);
        cluster__reply_peer(r, XE_AUTH, why, NULL, 0);
        return;
    }
    r->invite = slot;
    LOG(&n->log, LOG_INFO, "%s join request from node %s: join token accepted", n->name,
        id);
    cluster__serve(n, CLUSTER_REQ_JOIN, d + 9, base, expires, cluster__reply_peer, r);
}

static int pk_frame(void *ud, uint64_t from, bool guest, const struct pframe *f)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;

    if (c == NULL)
        return 0;
    if (f->type == PFRAME_SUBMIT) {
        const unsigned char *d = f->u.submit.data;
        struct sreply *r;
        uint64_t expires;
        struct peer_info pi;
        if (f->u.submit.len < 9)
            return XE_PROTO;
        expires = cluster__get64(d + 1);
        /* The deadline is in the sender's wall clock: read it in ours, so
         * that a clock that is off neither refuses every request (behind)
         * nor keeps stale ones (ahead). */
        if (c->pm != NULL && peer_get(c->pm, from, &pi) == 0 && pi.clock_known)
            expires = (uint64_t)((int64_t)expires - pi.clock_offset_ms);
        if (d[0] == CLUSTER_NOTE_REMOVED && !guest && f->u.submit.len == 17) {
            struct rnode_status st;
            if (n->rn == NULL)
                return 0;
            rnode_status_get(n->rn, &st);
            if (cluster__get64(d + 9) == st.cluster_id)
                set_removed(n, "a member said so");
            return 0;
        }
        if (d[0] != CLUSTER_REQ_CMD && d[0] != CLUSTER_REQ_JOIN &&
            d[0] != CLUSTER_REQ_REMOVE)
            return XE_PROTO;
        /* A joining node may ask to join, for itself only. */
        if (guest && (d[0] != CLUSTER_REQ_JOIN || f->u.submit.len < 17 ||
                      cluster__get64(d + 9) != from))
            return XE_PROTO;
        if (guest && refuse_join_addr(n, from, f) < 0)
            return 0;
        r = malloc(sizeof *r);
        if (r == NULL)
            return 0;
        r->n = n;
        r->peer = from;
        r->rid = f->u.submit.request_id;
        r->invite = -1;
        /* A request that waited out its sender's deadline (a partition:
         * the sender already reported failure) is not applied late. */
        if (cluster__wall_ms(NULL) > expires) {
            cluster__reply_peer(
                r, XE_TIMEOUT,
                "the request reached the leader after its deadline and was not "
                "applied",
                NULL, 0);
            return 0;
        }
        if (guest) {
            serve_guest_join(n, from, f, r, expires);
            return 0;
        }
        cluster__serve(n, d[0], d + 9, f->u.submit.len - 9, expires, cluster__reply_peer,
                       r);
        return 0;
    }
    if (f->type == PFRAME_SUBMIT_RESULT) {
        for (struct creq *q = c->reqs; q != NULL; q = q->next) {
            if (q->rid == f->u.result.request_id && q->sent_to == from) {
                cluster__req_finish(c, q, f->u.result.rc,
                                    f->u.result.message[0] != '\0' ? f->u.result.message
                                                                   : NULL,
                                    f->u.result.data, f->u.result.len);
                break;
            }
        }
        return 0;
    }
    /* FWD, ACK, SESSIONS, ROUTES, CONFLICT: the XMPP core's forwarding.
     * A node that does not serve XMPP (now) refuses the stanzas sent to
     * it, so that their origins answer their senders instead of waiting
     * for an outcome that never comes. */
    if (xsrv(n) != NULL) {
        /* node__after_srv (the writes to local sessions, the timer) and the
         * owed ACKs wait for the end of this read: pk_read_done. */
        int rc = srv_cluster_input(xsrv(n), from, f, uv_now(&n->loop));
        if (rc == XE_PROTO)
            return rc;
        if (rc != XE_STATE)
            return 0;
    }
    if (f->type == PFRAME_FWD && c->pm != NULL) {
        struct pframe a = {.type = PFRAME_ACK};
        struct pframe_range r = {f->u.fwd.seq, f->u.fwd.seq};
        a.u.ack = (struct pframe_ack){f->u.fwd.incarnation, NULL, 0, &r, 1};
        peer_send(c->pm, from, &a);
    }
    return 0;
}

static void pk_leader_down(struct node *n, uint64_t id, const char *addr, bool up,
                           bool refused);

static void pk_link(void *ud, uint64_t id, const char *addr, bool up, int err,
                    bool refused)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;

    (void)err;
    if (c == NULL)
        return;
    if (up && c->join.phase == JOIN_CONTACT && strcmp(addr, c->join.addr) == 0) {
        cluster__send_join(n, id);
        return;
    }
    if (!up && id == 0 && c->join.phase == JOIN_CONTACT &&
        strcmp(addr, c->join.addr) == 0) {
        cluster__contact_failed(n, addr, err, refused);
        return;
    }
    if (id != 0 && xsrv(n) != NULL) {
        srv_cluster_peer_link(xsrv(n), id, up, uv_now(&n->loop));
        node__after_srv(n);
    }
    pk_leader_down(n, id, addr, up, refused);
}

static void pk_leader_down(struct node *n, uint64_t id, const char *addr, bool up,
                           bool refused)
{
    struct cluster *c = n->cluster;

    if (!up && refused && id == c->leader_id && c->down_reported != id && n->rn != NULL &&
        !rnode_is_leader(n->rn)) {
        char hid[17];
        state_node_id_hex(id, hid);
        LOG(&n->log, LOG_INFO,
            "%s the leader %s (%s) refuses connections: its process is gone; starting "
            "an election now",
            n->name, hid, addr);
        c->down_reported = id;
        c->cnt.peer_down_reports++;
        rnode_peer_down(n->rn, id);
    }
}

static void pk_reset(void *ud, uint64_t id)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;

    if (c == NULL)
        return;
    if (xsrv(n) != NULL) {
        srv_cluster_peer_reset(xsrv(n), id, uv_now(&n->loop));
        node__after_srv(n);
    }
    /* Requests sent on the old stream are gone with it. */
    for (struct creq *q = c->reqs; q != NULL;) {
        struct creq *next = q->next;
        if (q->sent_to == id) {
            if (q->kind == CLUSTER_REQ_CMD)
                cluster__req_finish(c, q, XE_TIMEOUT, "the leader restarted", NULL, 0);
            else if (!q->fixed)
                q->sent_to = 0; /* join and remove are idempotent: ask again */
        }
        q = next;
    }
}

static void pk_room(void *ud, uint64_t id)
{
    struct node *n = ud;

    (void)id;
    if (xsrv(n) != NULL) {
        srv_cluster_pump(xsrv(n), uv_now(&n->loop));
        node__after_srv(n);
    }
}

/* pk_read_done: the frames of one read of from's link were handed to
 * srv: the ACKs they owe go out as one frame per origin, and what srv
 * queued for local sessions is written (one write per session). */
static void pk_read_done(void *ud, uint64_t from)
{
    struct node *n = ud;

    (void)from;
    if (xsrv(n) != NULL) {
        srv_cluster_flush(xsrv(n), uv_now(&n->loop));
        node__after_srv(n);
    }
}

/* pk_components: this node's component sessions, sent in every PING and
 * PONG so that each peer's status shows them (docs/cluster.md "Status
 * fields"). */
static uint32_t pk_components(void *ud)
{
    struct node *n = ud;
    struct srv_stats s;

    if (xsrv(n) == NULL)
        return 0;
    srv_get_stats(xsrv(n), &s);
    return s.components > UINT32_MAX ? UINT32_MAX : (uint32_t)s.components;
}

/* ---- start, stop, tick ---- */

int cluster__open_peers(struct node *n, uint64_t cluster_id, char *why, size_t whylen)
{
    struct cluster *c = n->cluster;
    struct peer_hooks h = {.ud = n,
                           .check_hello = pk_check,
                           .raft = pk_raft,
                           .frame = pk_frame,
                           .link = pk_link,
                           .reset = pk_reset,
                           .room = pk_room,
                           .read_done = pk_read_done,
                           .refused = pk_refused,
                           .components = pk_components};
    struct peer_opts o;
    char self[PFRAME_MAX_ADDR + 1], key[1024], cert[1024], trust[1024];
    int rc;

    if (n->st.key[0] == '\0' || n->st.cert[0] == '\0') {
        snprintf(why, whylen, "no node certificate: set it with xmpp certs <key> <cert>");
        return XE_STATE;
    }
    if (n->st.trust[0] == '\0') {
        snprintf(why, whylen,
                 "no cluster trust bundle: set it with xmpp cluster trust <bundle>");
        return XE_STATE;
    }
    if (node_file_path(n, n->st.key, key, sizeof key) < 0 ||
        node_file_path(n, n->st.cert, cert, sizeof cert) < 0 ||
        node_file_path(n, n->st.trust, trust, sizeof trust) < 0) {
        snprintf(why, whylen, "bad certificate path");
        return XE_INVAL;
    }
    cluster_self_addr(n, self, sizeof self);
    memset(&o, 0, sizeof o);
    o.name = n->name;
    o.log = &n->log;
    o.node_id = n->st.node_id;
    o.cluster_id = cluster_id;
    o.self_addr = self;
    o.listen_host = n->st.peer.port != 0 ? n->st.peer.host : "127.0.0.1";
    o.listen_port = n->st.peer.port != 0 ? n->st.peer.port : PEER_DEFAULT_PORT;
    o.key_path = key;
    o.cert_path = cert;
    o.trust_path = trust;
    rc = peer_mgr_new(&n->loop, &o, &h, &c->pm, why, whylen);
    if (rc == 0 && n->rn != NULL)
        sync_members(n);
    return rc;
}

static void on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    struct cluster *c = n->cluster;
    uint64_t now = cluster__now_ms(n);

    if (c == NULL)
        return;
    if (c->join.phase == JOIN_SWITCH) {
        struct peer_mgr *old = c->pm;
        c->join.phase = JOIN_SWITCHING;
        c->pm = NULL;
        for (struct creq *q = c->reqs; q != NULL;) {
            struct creq *next = q->next;
            cluster__req_finish(c, q, XE_CLOSED, "the node is joining another cluster",
                                NULL, 0);
            q = next;
        }
        peer_mgr_close(old, cluster__after_old_peers_closed, n);
    }
    if (c->join.phase == JOIN_RETRY && now >= c->join.retry_at) {
        c->join.phase = JOIN_CONTACT;
        cluster__send_join(n, c->join.contact_id);
    }
    if (c->join.phase == JOIN_CONTACT && now >= c->join.deadline) {
        char msg[700];
        snprintf(msg, sizeof msg,
                 "could not reach %s over the peer link within %d s (is clustering "
                 "enabled there, the address right, its certificate trusted here and "
                 "ours there? see both daemons' logs)",
                 c->join.addr, CONTACT_TIMEOUT_MS / 1000);
        cluster__join_finish(c, XE_TIMEOUT, msg);
    }
    if (c->join.phase == JOIN_SYNC && now >= c->join.deadline)
        cluster__join_finish(
            c, XE_TIMEOUT,
            "joined, but not yet promoted to voter within 30 s: check xmpp "
            "cluster status on the leader");
    for (struct creq *q = c->reqs; q != NULL;) {
        struct creq *next = q->next;
        if (now >= q->deadline) {
            cluster__req_finish(
                c, q, q->sent_to == 0 ? XE_NOLEADER : XE_TIMEOUT,
                q->sent_to == 0 ? "no cluster leader: this node cannot reach a "
                                  "majority of the cluster; nothing was changed"
                : c->leader_id != q->sent_to
                    ? "no answer from the old cluster leader, and no leader now: the "
                      "change is applied only if it reached the old leader's majority"
                    : "no answer from the cluster leader in time (unreachable?); the "
                      "change may still be applied",
                NULL, 0);
        } else if (q->sent_to == 0 && !q->fixed && c->leader_id != 0 && n->rn != NULL) {
            if (rnode_is_leader(n->rn)) {
                unsigned char *body = q->body;
                size_t len = q->len;
                enum cluster_kind kind = q->kind;
                uint64_t expires = q->expires;
                cluster_cb cb = q->cb;
                void *arg = q->arg;
                q->body = NULL;
                q->cb = NULL;
                cluster__req_finish(c, q, 0, NULL, NULL, 0);
                cluster__serve(n, kind, body, len, expires, cb, arg);
                free(body);
            } else {
                cluster__req_send(c, q, c->leader_id);
            }
        }
        q = next;
    }
}

int cluster_start(struct node *n, char *why, size_t whylen)
{
    struct cluster *c;
    struct rnode_status st;
    int rc;

    if (n->cluster != NULL)
        return 0;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
        return XE_NOMEM;
    }
    c->n = n;
    n->cluster = c;
    rnode_status_get(n->rn, &st);
    c->leader_id = st.leader_id;
    c->term = st.term;
    rc = cluster__open_peers(n, st.cluster_id, why, whylen);
    if (rc < 0) {
        n->cluster = NULL;
        free(c);
        return rc;
    }
    uv_timer_init(&n->loop, &c->timer);
    c->timer.data = n;
    uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
    cluster_srv_attach(n);
    return 0;
}

static void free_cluster(uv_handle_t *h)
{
    free(h->data);
}

void cluster_stop(struct node *n)
{
    struct cluster *c = n->cluster;

    if (c == NULL)
        return;
    srv_detach(n);
    while (c->reqs != NULL)
        cluster__req_finish(c, c->reqs, XE_CLOSED, "clustering stopped on this node",
                            NULL, 0);
    if (c->join.phase != JOIN_NONE)
        cluster__join_finish(c, XE_CLOSED, "clustering stopped on this node");
    peer_mgr_close(c->pm, NULL, NULL);
    c->pm = NULL;
    n->cluster = NULL;
    uv_timer_stop(&c->timer);
    c->timer.data = c;
    uv_close((uv_handle_t *)&c->timer, free_cluster);
}
