/* cluster_join.c: switching this node's store to another cluster: joining
 * one through a member (contact, ask, switch, wait to be a voter) and
 * rebuilding a one-member cluster with the old data (contract in
 * cluster.h; docs/cluster.md). */
#include "cluster_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "addr.h"
#include "repl.h"
#include "err.h"
#include "node.h"
#include "node_int.h"
#include "peer.h"
#include "pframe.h"
#include "raft.h"
#include "rnode.h"
#include "node_state.h"

/* ---- join ---- */

/* forget_token wipes and frees the join token of the join under way. */
static void forget_token(struct cluster *c)
{
    if (c->join.token != NULL)
        sodium_free(c->join.token); /* (sodium_free wipes it) */
    c->join.token = NULL;
}

static void send_join(struct node *n, uint64_t id);
static void switch_store(struct node *n);

void cluster__join_step(struct node *n, struct cjoin_event *ev)
{
    struct cluster *c = n->cluster;
    struct cjoin_update u;
    cluster_cb cb;
    void *arg;

    if (c == NULL)
        return;
    ev->now = cluster__now_ms(n);
    if (cjoin_step(&c->join.core, ev, &u) < 0)
        return;
    if (u.send_to != 0)
        send_join(n, u.send_to);
    if (u.switch_store) {
        LOG(&n->log, LOG_INFO, "%s join accepted: cluster %016" PRIx64, n->name,
            u.cluster_id);
        switch_store(n);
    }
    if (u.finished) {
        cb = c->join.cb;
        arg = c->join.arg;
        forget_token(c);
        c->join.cb = NULL;
        if (c->pm != NULL)
            peer_drop_contacts(c->pm);
        if (cb != NULL)
            cb(arg, u.rc, u.msg[0] != '\0' ? u.msg : NULL, NULL, 0);
    }
}

static void join_answer(void *arg, int rc, const char *msg, const void *data, size_t len)
{
    struct node *n = arg;
    struct cjoin_event ev = {.type = CJOIN_EV_ANSWER};

    ev.u.answer.rc = rc;
    ev.u.answer.msg = msg;
    ev.u.answer.data = data;
    ev.u.answer.len = len;
    cluster__join_step(n, &ev);
}

static void send_join(struct node *n, uint64_t id)
{
    struct cluster *c = n->cluster;
    struct pframe_req req = {.kind = PFRAME_REQ_JOIN};
    uint64_t now = cluster__now_ms(n);

    req.u.join.node_id = n->st.node_id;
    req.u.join.replace = c->join.replace;
    cluster_self_addr(n, req.u.join.addr, sizeof req.u.join.addr);
    /* The admin's consent (docs/cluster.md "Join"): the member checks the
     * token and passes the request on without it. */
    if (c->join.token != NULL) {
        req.u.join.token = c->join.token;
        req.u.join.token_len = CLUSTER_TOKEN_BYTES;
    }
    /* Fixed to the contact: the joining node knows no leader.  An answer
     * at once (the queue is full, out of memory, the link closed) comes
     * through join_answer like any other. */
    cluster__request(n, &req, id,
                     c->join.core.deadline > now ? c->join.core.deadline - now : 1,
                     join_answer, n);
}

/* switch_store: the join was accepted: this node leaves its old peer link
 * (and the requests on it) and, once that is closed, replaces its store. */
static void switch_store(struct node *n)
{
    struct cluster *c = n->cluster;
    struct peer_mgr *old = c->pm;
    struct creq_event ev = {.type = CREQ_EV_STOP};

    c->pm = NULL;
    ev.u.stop.rc = XE_CLOSED;
    ev.u.stop.msg = "the node is joining another cluster";
    cluster__rq_step(n, &ev, NULL);
    peer_mgr_close(old, cluster__after_old_peers_closed, n);
}

void cluster__after_old_peers_closed(void *arg)
{
    struct node *n = arg;
    struct cluster *c = n->cluster;
    struct cjoin_event ev = {.type = CJOIN_EV_SWITCHED};
    char why[512];
    int rc;

    if (c == NULL || c->join.core.phase != CJOIN_SWITCHING)
        return;
    rc = node__replace_store(n, RNODE_JOIN, c->join.core.cluster_id, why, sizeof why);
    if (rc == 0)
        rc = cluster__open_peers(n, c->join.core.cluster_id, why, sizeof why);
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s join: %s", n->name, why);
    } else {
        LOG(&n->log, LOG_INFO,
            "%s joined cluster %016" PRIx64
            " with an empty store; waiting for the leader",
            n->name, c->join.core.cluster_id);
    }
    ev.u.switched.rc = rc;
    ev.u.switched.why = why;
    cluster__join_step(n, &ev);
    if (rc == 0)
        cluster_srv_attach(n);
}

/* take_new_id gives a removed node a new node id before it joins again:
 * the cluster's log removes its old id, and a node that catches up under
 * that id would apply its own removal and take part in nothing (raft.h,
 * raft_update.removed); a new id also keeps the members from ever listing
 * it twice.  Saved at once; the peer link's HELLOs carry it from now on.
 * 0, or XE_IO with why. */
static int take_new_id(struct node *n, char *why, size_t whylen)
{
    uint64_t old = n->st.node_id;
    char err[256], a[17], b[17];

    node_state_new_id(&n->st);
    if (node_local_save(n, err, sizeof err) < 0) {
        n->st.node_id = old;
        snprintf(why, whylen, "cannot save a new node id for the join: %s", err);
        return XE_IO;
    }
    peer_set_node_id(n->cluster->pm, n->st.node_id);
    node_state_node_id_hex(old, a);
    node_state_node_id_hex(n->st.node_id, b);
    LOG(&n->log, LOG_INFO, "%s this node was removed as node %s; it joins as node %s",
        n->name, a, b);
    return 0;
}

void cluster_join(struct node *n, const char *addr, const char *token_hex, bool replace,
                  uint64_t timeout_ms, cluster_cb cb, void *arg)
{
    unsigned char *token;
    size_t tlen = 0;
    struct cluster *c = n->cluster;
    const struct raft_config *cfg = rnode_config(n->rn);
    char host[PFRAME_MAX_ADDR + 1], norm[PFRAME_MAX_ADDR + 1], self[PFRAME_MAX_ADDR + 1],
        msg[300];
    struct rnode_status st;
    struct cjoin_event ev = {.type = CJOIN_EV_START};
    struct cjoin_admit adm;
    int port, rc;

    (void)timeout_ms;
    if (c == NULL || c->pm == NULL) {
        cb(arg, XE_STATE,
           "clustering is not enabled on this node: run xmpp cluster enable", NULL, 0);
        return;
    }
    if (peer_parse_addr(addr, host, sizeof host, &port) < 0) {
        cb(arg, XE_INVAL, "bad address (host, host:port or [IPv6]:port)", NULL, 0);
        return;
    }
    addr_join(host, (unsigned)port, norm, sizeof norm);
    cluster_self_addr(n, self, sizeof self);
    rnode_get_status(n->rn, &st);
    adm.addr = norm;
    adm.self_addr = self;
    adm.cluster_id = st.cluster_id;
    adm.members = cfg->n;
    adm.self_member = raft_config_find(cfg, n->st.node_id) != NULL;
    adm.addr_member = raft_config_find_address(cfg, norm) != NULL;
    adm.removed = c->rm.removed;
    rc = cjoin_admit(&c->join.core, &adm, msg, sizeof msg);
    if (rc != 0) {
        cb(arg, rc > 0 ? 0 : rc, msg, NULL, 0);
        return;
    }
    token = sodium_malloc(CLUSTER_TOKEN_BYTES);
    if (token == NULL) {
        cb(arg, XE_NOMEM,
           "out of memory on this node (secure memory for the join token): nothing was "
           "changed",
           NULL, 0);
        return;
    }
    if (token_hex == NULL || strlen(token_hex) != CLUSTER_TOKEN_HEX ||
        sodium_hex2bin(token, CLUSTER_TOKEN_BYTES, token_hex, CLUSTER_TOKEN_HEX, NULL,
                       &tlen, NULL) != 0 ||
        tlen != CLUSTER_TOKEN_BYTES) {
        char need[500];
        sodium_free(token);
        snprintf(need, sizeof need,
                 "a join token is needed (%d hex digits): run xmpp cluster invite on the "
                 "member at %.100s, then xmpp cluster join %.100s <token>",
                 CLUSTER_TOKEN_HEX, norm, addr);
        cb(arg, XE_INVAL, need, NULL, 0);
        return;
    }
    if (c->rm.removed && take_new_id(n, msg, sizeof msg) < 0) {
        sodium_free(token);
        cb(arg, XE_IO, msg, NULL, 0);
        return;
    }
    if (peer_contact(c->pm, norm) < 0) {
        sodium_free(token);
        cb(arg, XE_INVAL, "bad address", NULL, 0);
        return;
    }
    c->join.token = token;
    c->join.replace = replace;
    c->join.cb = cb;
    c->join.arg = arg;
    ev.u.start.addr = norm;
    cluster__join_step(n, &ev);
}

/* ---- rebuild: a new one-member store with the old data ---- */

struct rebuild {
    struct node *n;
    unsigned pending;
    int rc;
    char msg[300];
    cluster_cb cb;
    void *arg;
};

static void rebuild_step(void *arg, int rc, const char *msg)
{
    struct rebuild *r = arg;

    if (rc < 0 && r->rc == 0) {
        r->rc = rc;
        snprintf(r->msg, sizeof r->msg, "%s", msg != NULL ? msg : xe_strerror(rc));
    }
    if (--r->pending > 0)
        return;
    r->cb(r->arg, r->rc, r->rc < 0 ? r->msg : NULL, NULL, 0);
    free(r);
}

static void rebuild_submit(struct rebuild *r, const struct cl_cmd *cmd)
{
    unsigned char *buf;
    size_t len;

    r->pending++;
    if (cl_cmd_encode(cmd, &buf, &len) < 0) {
        rebuild_step(r, XE_INVAL, "a replicated value could not be copied");
        return;
    }
    rnode_submit(r->n->rn, buf, len, REBUILD_TIMEOUT_MS, rebuild_step, r);
    cl_buf_free(buf, len);
}

/* rebuild_run is cluster_rebuild on the next loop turn: it closes the Raft
 * driver, which rnode.h forbids from inside an rnode hook or callback (a
 * leader leaving answers its own REMOVE from one). */
static void rebuild_run(struct node *n, void *arg, bool cancelled)
{
    struct rebuild *r = arg;
    struct cl_cmd *cmd = NULL;
    struct cl_state *copy = NULL;
    unsigned char *snap = NULL;
    size_t slen = 0;
    char why[512];
    int rc;

    if (cancelled || n->rn == NULL) {
        r->cb(r->arg, XE_CLOSED, "the node is stopping", NULL, 0);
        free(r);
        return;
    }
    cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL) {
        r->cb(r->arg, XE_NOMEM, NULL, NULL, 0);
        free(r);
        return;
    }
    rc = cl_snapshot_encode(rnode_state(n->rn), &snap, &slen);
    if (rc == 0)
        rc = cl_snapshot_decode(snap, slen, &copy);
    if (snap != NULL)
        cl_buf_free(snap, slen);
    if (rc < 0) {
        free(cmd);
        r->cb(r->arg, rc, "cannot copy the replicated state", NULL, 0);
        free(r);
        return;
    }
    rc = node__replace_store(n, RNODE_BOOTSTRAP, 0, why, sizeof why);
    if (rc < 0 || n->rn == NULL) {
        cl_state_free(copy);
        free(cmd);
        r->cb(r->arg, rc < 0 ? rc : XE_CLOSED, rc < 0 ? why : "the node is stopping",
              NULL, 0);
        free(r);
        return;
    }
    r->pending = 1; /* held until everything is submitted */
    if (cl_domain(copy)[0] != '\0') {
        cl_cmd_set_domain(cmd, cl_domain(copy));
        rebuild_submit(r, cmd);
    }
    for (size_t i = 0; i < cl_callbridge_count(copy); i++) {
        const struct cl_callbridge *b = cl_callbridge_at(copy, i);
        /* The time its secret was set goes along (repl.h set_at) when the
         * new store's members read it: here, this node alone. */
        cl_cmd_cb_set_at(cmd, b->name, b->secret, b->secret_len, false,
                         rnode_sessions_on(n->rn) ? b->set_at : 0);
        rebuild_submit(r, cmd);
    }
    for (size_t i = 0; i < cl_user_count(copy); i++) {
        const struct cl_user *u = cl_user_at(copy, i);
        cl_cmd_user_set(cmd, u->name, u, false);
        rebuild_submit(r, cmd);
    }
    if (cl_user_iterations(copy) != CL_ITER_DEFAULT) {
        cl_cmd_user_iter(cmd, cl_user_iterations(copy));
        rebuild_submit(r, cmd);
    }
    cl_state_free(copy);
    memset(cmd, 0, sizeof *cmd);
    free(cmd);
    rebuild_step(r, 0, NULL);
}

void cluster_rebuild(struct node *n, cluster_cb cb, void *arg)
{
    struct rebuild *r = calloc(1, sizeof *r);

    if (r == NULL) {
        cb(arg, XE_NOMEM, NULL, NULL, 0);
        return;
    }
    r->n = n;
    r->cb = cb;
    r->arg = arg;
    node_later(n, rebuild_run, r);
}
