/* cluster.c: the peer link wired to the Raft driver and to the XMPP core's
 * forwarding: the hooks both ways, start, stop and the tick (contract in
 * cluster.h; requests in cluster_req.c, join and rebuild in cluster_join.c;
 * removal decided by core/cremove.c; docs/cluster.md). */
#include "cluster_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "raft_codec.h"
#include "conffile_parse.h"
#include "cserve.h"
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
    return n->cluster != NULL && n->cluster->rm.removed;
}

void cluster_store_replaced(struct node *n)
{
    struct cremove_event ev = {.type = CREMOVE_EV_REPLACED};
    struct cremove_update u;

    if (n->cluster != NULL)
        cremove_step(&n->cluster->rm, &ev, &u);
}

/* stop_serving_later: a removed node stops serving XMPP
 * (its call bridges' stanzas would go nowhere); deferred so that it never
 * runs inside an rnode or peer-link callback. */
static void stop_serving_later(struct node *n, void *arg, bool cancelled)
{
    (void)arg;
    if (!cancelled && cluster_removed(n))
        node_xmpp_stop(n);
}

_Static_assert(CREMOVE_MAX_MEMBERS >= RAFT_MAX_MEMBERS, "cremove holds a configuration");

/* removed_now: this node learned that it is no longer a member of its
 * cluster (how: who said so; core/cremove.c decided, once).  It says so in
 * the log and in every status (State: REMOVED), stops serving XMPP and
 * stops dialling the members (they would refuse it every time); `xmpp
 * cluster join` or `xmpp cluster disable` is the way on (docs/cluster.md
 * "Removal"). */
static void removed_now(struct node *n, const char *how)
{
    struct cluster *c = n->cluster;
    struct rnode_status st;

    rnode_get_status(n->rn, &st);
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
    node_later(n, stop_serving_later, NULL);
}

/* A configuration as cremove reads it. */
struct rm_view {
    struct cremove_view v;
    uint64_t ids[RAFT_MAX_MEMBERS];
    const char *addrs[RAFT_MAX_MEMBERS];
};

static void rm_view(struct node *n, const struct raft_config *cfg, struct rm_view *out)
{
    struct rnode_status st;

    rnode_get_status(n->rn, &st);
    out->v.cluster_id = st.cluster_id;
    out->v.n = cfg->n;
    for (unsigned i = 0; i < cfg->n; i++) {
        out->ids[i] = cfg->members[i].id;
        out->addrs[i] = cfg->members[i].address;
    }
    out->v.ids = out->ids;
    out->v.addrs = out->addrs;
}

/* rm_step steps ev into the removal state of n (the view: the latest
 * configuration) and carries out the update. */
static void rm_step(struct node *n, struct cremove_event *ev)
{
    struct cluster *c = n->cluster;
    struct cremove_update u;
    struct rm_view v;

    if (c == NULL || n->rn == NULL)
        return;
    rm_view(n, rnode_config(n->rn), &v);
    ev->view = &v.v;
    if (cremove_step(&c->rm, ev, &u) == 0 && u.became_removed)
        removed_now(n, u.how);
}

/* note_gone tells cremove the committed configuration, so that the
 * members that left it are known (a HELLO from one of them is answered
 * "you were removed"). */
static void note_gone(struct node *n)
{
    struct cremove_event ev = {.type = CREMOVE_EV_COMMITTED};
    struct rm_view v;

    if (n->cluster == NULL || n->rn == NULL)
        return;
    rm_view(n, rnode_config_committed(n->rn), &v);
    ev.u.committed.ids = v.ids;
    ev.u.committed.n = v.v.n;
    rm_step(n, &ev);
}

bool cluster_running(const struct node *n)
{
    return n->cluster != NULL && n->cluster->pm != NULL;
}

struct peer_mgr *cluster_peers(const struct node *n)
{
    return n->cluster != NULL ? n->cluster->pm : NULL;
}

void cluster_get_counters(const struct node *n, struct cluster_counters *out)
{
    if (n->cluster != NULL)
        *out = n->cluster->cnt;
    else
        memset(out, 0, sizeof *out);
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

/* entry_gates_follow: the two gates on what this node may write to the
 * log, from each other member's link and its frame version, at every
 * membership or link change: srv the soft-entry gate (srv_soft_entries_ok),
 * rnode the sessions gate (srv_sessions_ok). */
static void entry_gates_follow(struct node *n, struct srv *srv)
{
    const struct raft_config *cfg = rnode_config(n->rn);
    uint64_t ids[RAFT_MAX_MEMBERS];
    struct srv_member_link links[RAFT_MAX_MEMBERS];
    size_t k = 0, nl = 0;
    uint8_t vmin, vmax;
    bool linked = n->cluster != NULL && n->cluster->pm != NULL;

    for (unsigned i = 0; i < cfg->n && k < RAFT_MAX_MEMBERS; i++) {
        struct peer_info pi;
        uint64_t id = cfg->members[i].id;
        ids[k++] = id;
        if (linked && id != n->st.node_id && peer_get(n->cluster->pm, id, &pi) == 0)
            links[nl++] =
                (struct srv_member_link){id, pi.up, pi.version, pi.last_version};
    }
    /* Without the peer link: no soft entries; sessions (and what came
     * with them) only while this node is the only member. */
    srv_cluster_set_soft_entries(
        srv, linked && srv_soft_entries_ok(n->st.node_id, ids, k, links, nl));
    peer_versions(&vmin, &vmax);
    rnode_sessions(n->rn, srv_sessions_ok(n->st.node_id, vmax, ids, k, links, nl));
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
    rnode_get_status(n->rn, &st);
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
    entry_gates_follow(n, srv);
    srv_cluster_set_leader(srv, st.leader_id, st.term, uv_now(&n->loop));
    node__ws_links(n, n->x); /* host-meta follows the members */
    node__drain_refresh(n);  /* so do the drain's targets */
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
    if (n->cluster->rm.removed)
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
    struct pframe_req req = {.kind = PFRAME_REQ_CMD};
    struct creq_event ev = {.type = CREQ_EV_SUBMIT};
    struct creq_update u;
    struct cluster_rctx *x;
    int rc;

    (void)leader_addr;
    if (c == NULL || c->pm == NULL || c->rq == NULL)
        return XE_NOLEADER;
    x = calloc(1, sizeof *x);
    if (x == NULL)
        return XE_NOMEM;
    x->rcb = cb;
    x->rarg = arg;
    req.u.cmd.data = cmd;
    req.u.cmd.len = len;
    ev.u.submit.req = &req;
    ev.u.submit.timeout_ms = timeout_ms;
    ev.u.submit.to = leader_id; /* Raft's leader: rnode redirects itself */
    ev.u.submit.ctx = x;
    rc = cluster__rq_step(n, &ev, &u);
    if (rc == 0 && u.request_id == 0)
        rc = u.rc;
    if (rc == 0 && u.rc < 0 && n->cluster == c) {
        /* Not sent: rnode hears it from the return code, not the queue. */
        struct creq_event cancel = {.type = CREQ_EV_CANCEL};
        cancel.u.cancel.request_id = u.request_id;
        cluster__rq_step(n, &cancel, NULL);
        rc = u.rc;
    }
    if (rc < 0) {
        free(x);
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
    rnode_get_status(n->rn, &st);
    if (st.leader_id != c->leader_id || st.term != c->term) {
        if (st.leader_id != c->leader_id) {
            c->cnt.leader_changes++;
            c->down_reported = 0;
        }
        c->leader_id = st.leader_id;
        c->term = st.term;
    }
    cluster__rq_leader(n);
    if (st.removed) {
        struct cremove_event ev = {.type = CREMOVE_EV_LOG};
        rm_step(n, &ev);
    }
    note_gone(n);
    if (c->pm == NULL)
        return;
    peer_set_cluster_id(c->pm, st.cluster_id);
    if (!c->rm.removed)
        sync_members(n);
    srv_follow(n);
    {
        const struct raft_member *me =
            raft_config_find(rnode_config(n->rn), n->st.node_id);
        struct cjoin_event ev = {.type = CJOIN_EV_VOTER};
        if (me != NULL && me->role == RAFT_VOTER)
            cluster__join_step(n, &ev);
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
    enum cremove_hello verdict;
    struct rm_view v;
    char id[17];
    int rc;

    if (contact)
        return 0; /* the node we asked to join: its cluster is the one we want */
    if (n->rn == NULL || n->cluster == NULL) {
        snprintf(why, whylen, "this node is stopping");
        return XE_STATE;
    }
    note_gone(n);
    rm_view(n, rnode_config(n->rn), &v);
    rc = cremove_hello(&n->cluster->rm, &v.v, h, &verdict, why, whylen);
    node_state_node_id_hex(h->node_id, id);
    if (verdict == CREMOVE_HELLO_JOINER)
        LOG(&n->log, LOG_INFO, "%s node %s at %s asks to join", n->name, id, h->addr);
    else if (verdict == CREMOVE_HELLO_SUCCESSOR)
        LOG(&n->log, LOG_INFO,
            "%s node %s at %s is not in this node's configuration yet: taking the log "
            "from it (the member at that address was replaced?)",
            n->name, id, h->addr);
    return rc;
}

/* pk_refused: a member we dialled refused our HELLO and said why.  A
 * member of our own cluster that says we were removed is believed: it is
 * in our configuration and its certificate was checked for its address. */
static void pk_refused(void *ud, uint64_t id, const struct pframe_refuse *r)
{
    struct node *n = ud;
    struct cjoin_event ev = {.type = CJOIN_EV_REFUSED};
    struct cremove_event rev = {.type = CREMOVE_EV_REFUSED};

    if (n->cluster == NULL || n->rn == NULL)
        return;
    /* Our join contact (id 0: the dial to its address) refused us: the
     * joiner's shell hears why at once (core/cjoin.c). */
    ev.u.refused.id = id;
    ev.u.refused.reason = r->reason;
    cluster__join_step(n, &ev);
    /* A member that says we were removed (core/cremove.c decides whom to
     * believe). */
    rev.u.refused.from = id;
    rev.u.refused.r = r;
    rm_step(n, &rev);
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

/* answer_peer answers request rid of peer from with rc and msg at once,
 * without a struct sreply: a refusal, or out of memory for one (never
 * drop a request silently, so that its sender is not left
 * waiting for a timeout that names the wrong cause). */
static void answer_peer(struct node *n, uint64_t from, uint64_t rid, int rc,
                        const char *msg)
{
    struct pframe f;

    memset(&f, 0, sizeof f);
    f.type = PFRAME_SUBMIT_RESULT;
    f.u.result.request_id = rid;
    f.u.result.rc = rc;
    f.u.result.message = msg;
    if (n->cluster == NULL || n->cluster->pm == NULL)
        return;
    n->cluster->cnt.requests_served++;
    if (peer_send(n->cluster->pm, from, &f) < 0)
        LOG(&n->log, LOG_WARN, "%s cannot answer request %" PRIu64 " of %016" PRIx64,
            n->name, rid, from);
}

/* refuse_join_addr answers a joining node's request j with a refusal when
 * the address it asks to join at is not the one its HELLO claimed (and its
 * certificate names): otherwise a node could be added at an address it
 * cannot prove (docs/cluster.md, "Identity and membership").  0 when the
 * addresses agree; < 0 when the request was answered here. */
static int refuse_join_addr(struct node *n, uint64_t from, uint64_t rid,
                            const struct pframe_join *j)
{
    struct peer_info pi;
    char id[17], why[300];
    int rc;

    if (peer_get(n->cluster->pm, from, &pi) < 0)
        snprintf(pi.addr, sizeof pi.addr, "(no link)");
    rc = cjoin_check_addr(pi.addr, j, why, sizeof why);
    if (rc == 0)
        return 0;
    node_state_node_id_hex(from, id);
    LOG(&n->log, LOG_WARN, "%s join request from node %s refused: %s", n->name, id, why);
    answer_peer(n, from, rid, rc, why);
    return rc;
}

/* serve_guest_join serves a joining node's request req (the only frame
 * its link may carry, peer.c and plink), answered through r (taken): the
 * join token in it must be one this member made and still holds (cluster
 * invite; docs/cluster.md "Join"); it is held while the request is under
 * way and used up if the join succeeds.  The request goes on to the
 * leader without the token. */
static void serve_guest_join(struct node *n, uint64_t from, struct pframe_req *req,
                             struct sreply *r, uint64_t expires)
{
    char id[17], self[PFRAME_MAX_ADDR + 1], why[1000];
    int slot;

    node_state_node_id_hex(from, id);
    slot = cinvite_take(&n->cluster->invites, req->u.join.token, req->u.join.token_len,
                        cluster__now_ms(n));
    if (slot < 0) {
        cluster_self_addr(n, self, sizeof self);
        LOG(&n->log, LOG_WARN,
            "%s join request from node %s refused: %s join token (run xmpp cluster "
            "invite here)",
            n->name, id, req->u.join.token_len == 0 ? "no" : "not a valid");
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
    req->u.join.token = NULL;
    req->u.join.token_len = 0;
    cluster__serve(n, req, expires, cluster__reply_peer, r);
}

/* pk_submit serves a peer's SUBMIT f (guest: from a node asking to join). */
static int pk_submit(struct node *n, uint64_t from, bool guest, const struct pframe *f)
{
    struct cluster *c = n->cluster;
    uint64_t rid = f->u.submit.request_id;
    struct pframe_req req;
    struct sreply *r;
    struct peer_info pi;
    struct cserve_peer_in in = {.req = &req, .from = from, .guest = guest};
    struct cserve_peer_out out;

    if (pframe_req_decode(f->u.submit.data, f->u.submit.len, &req) < 0)
        return XE_PROTO;
    if (c->pm != NULL && peer_get(c->pm, from, &pi) == 0) {
        in.clock_known = pi.clock_known;
        in.clock_offset_ms = pi.clock_offset_ms;
    }
    cserve_peer(&in, &out);
    if (out.verdict == CSERVE_PEER_PROTO)
        return XE_PROTO;
    if (out.verdict == CSERVE_PEER_NOTE) {
        struct cremove_event ev = {.type = CREMOVE_EV_NOTE};
        ev.u.note.from = from;
        ev.u.note.cluster_id = req.u.cluster_id;
        rm_step(n, &ev);
        return 0;
    }
    if (out.verdict == CSERVE_PEER_GUEST_JOIN &&
        refuse_join_addr(n, from, rid, &req.u.join) < 0)
        return 0;
    r = malloc(sizeof *r);
    if (r == NULL) {
        answer_peer(n, from, rid, XE_NOMEM,
                    "out of memory on the member that received the request: nothing "
                    "was changed");
        return 0;
    }
    r->n = n;
    r->peer = from;
    r->rid = rid;
    r->invite = -1;
    if (out.verdict == CSERVE_PEER_GUEST_JOIN)
        serve_guest_join(n, from, &req, r, out.expires);
    else
        cluster__serve(n, &req, out.expires, cluster__reply_peer, r);
    return 0;
}

static int pk_frame(void *ud, uint64_t from, bool guest, const struct pframe *f)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;

    if (c == NULL)
        return 0;
    if (f->type == PFRAME_SUBMIT)
        return pk_submit(n, from, guest, f);
    if (f->type == PFRAME_SUBMIT_RESULT) {
        struct creq_event ev = {.type = CREQ_EV_RESULT};
        ev.u.result.from = from;
        ev.u.result.request_id = f->u.result.request_id;
        ev.u.result.rc = f->u.result.rc;
        ev.u.result.msg = f->u.result.message;
        ev.u.result.data = f->u.result.data;
        ev.u.result.len = f->u.result.len;
        cluster__rq_step(n, &ev, NULL);
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

/* join_dial names how a dial failed, for the join under way (err: the
 * libuv error; refused: the connection was refused). */
static enum cjoin_dial join_dial(int err, bool refused)
{
    if (err == UV_EPROTONOSUPPORT)
        return CJOIN_DIAL_FOREIGN; /* peer.c: the port answers in XMPP or HTTP */
    if (err == UV_EPROTO)
        return CJOIN_DIAL_TLS;
    if (refused)
        return CJOIN_DIAL_REFUSED;
    return err == 0 ? CJOIN_DIAL_CLOSED : CJOIN_DIAL_OTHER;
}

static void pk_link(void *ud, uint64_t id, const char *addr, bool up, int err,
                    bool refused)
{
    struct node *n = ud;
    struct cluster *c = n->cluster;

    if (c == NULL)
        return;
    /* The join contact's link (up, or a failed dial) is the join's. */
    if (c->join.core.phase == CJOIN_CONTACT && strcmp(addr, c->join.core.addr) == 0 &&
        (up || id == 0)) {
        struct cjoin_event ev = {.type = CJOIN_EV_LINK};
        char why[200] = "";
        ev.u.link.addr = addr;
        ev.u.link.id = id;
        ev.u.link.up = up;
        ev.u.link.dial = join_dial(err, refused);
        if (!up && err == UV_EPROTONOSUPPORT && c->pm != NULL)
            peer_last_error(c->pm, addr, why, sizeof why);
        ev.u.link.why = why;
        cluster__join_step(n, &ev);
        return;
    }
    if (id != 0 && xsrv(n) != NULL) {
        srv_cluster_peer_link(xsrv(n), id, up, uv_now(&n->loop));
        if (n->rn != NULL)
            entry_gates_follow(n, xsrv(n));
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
        node_state_node_id_hex(id, hid);
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
    {
        struct creq_event ev = {.type = CREQ_EV_RESET};
        ev.u.reset.peer = id;
        cluster__rq_step(n, &ev, NULL);
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

/* stop_requests answers every request in the queue with XE_CLOSED and
 * msg (static). */
static void stop_requests(struct node *n, const char *msg)
{
    struct creq_event ev = {.type = CREQ_EV_STOP};

    ev.u.stop.rc = XE_CLOSED;
    ev.u.stop.msg = msg;
    cluster__rq_step(n, &ev, NULL);
}

static void on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    struct cluster *c = n->cluster;

    if (c == NULL)
        return;
    {
        struct cjoin_event ev = {.type = CJOIN_EV_TICK};
        cluster__join_step(n, &ev);
    }
    if (n->cluster == c) {
        struct creq_event ev = {.type = CREQ_EV_TICK};
        cluster__rq_leader(n);
        cluster__rq_step(n, &ev, NULL);
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
    if (creq_new(NULL, &c->rq) < 0) {
        free(c);
        snprintf(why, whylen, "out of memory");
        return XE_NOMEM;
    }
    n->cluster = c;
    rnode_get_status(n->rn, &st);
    c->leader_id = st.leader_id;
    c->term = st.term;
    rc = cluster__open_peers(n, st.cluster_id, why, whylen);
    if (rc < 0) {
        n->cluster = NULL;
        creq_free(c->rq);
        free(c);
        return rc;
    }
    uv_timer_init(&n->loop, &c->timer);
    c->timer.data = n;
    uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
    cluster__rq_leader(n);
    cluster_srv_attach(n);
    return 0;
}

static void free_cluster(uv_handle_t *h)
{
    struct cluster *c = h->data;

    creq_free(c->rq);
    free(c);
}

void cluster_stop(struct node *n)
{
    struct cluster *c = n->cluster;

    if (c == NULL)
        return;
    srv_detach(n);
    stop_requests(n, "clustering stopped on this node");
    {
        struct cjoin_event ev = {.type = CJOIN_EV_STOP};
        ev.u.stop.rc = XE_CLOSED;
        ev.u.stop.msg = "clustering stopped on this node";
        cluster__join_step(n, &ev);
    }
    peer_mgr_close(c->pm, NULL, NULL);
    c->pm = NULL;
    n->cluster = NULL;
    uv_timer_stop(&c->timer);
    c->timer.data = c;
    uv_close((uv_handle_t *)&c->timer, free_cluster);
}
