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

void cluster__join_finish(struct cluster *c, int rc, const char *msg)
{
    struct cjoin j = c->join;

    forget_token(c);
    c->join.phase = JOIN_NONE;
    if (c->pm != NULL)
        peer_drop_contacts(c->pm);
    if (j.cb != NULL)
        j.cb(j.arg, rc, msg, NULL, 0);
}

static void join_answer(void *arg, int rc, const char *msg, const void *data, size_t len)
{
    struct node *n = arg;
    struct cluster *c = n->cluster;

    if (c == NULL || c->join.phase != JOIN_ASKED)
        return;
    if (rc == XE_BUSY && cluster__now_ms(n) + 300 < c->join.deadline) {
        /* Another membership change is under way (thesis §4.1: one at a
         * time): ask again shortly. */
        c->join.phase = JOIN_RETRY;
        c->join.retry_at = cluster__now_ms(n) + 200;
        return;
    }
    if (rc < 0) {
        cluster__join_finish(c, rc, msg);
        return;
    }
    if (len != 8) {
        cluster__join_finish(c, XE_PROTO, "the member answered without a cluster id");
        return;
    }
    c->join.cluster_id = cluster__get64(data);
    c->join.phase = JOIN_SWITCH; /* on the next tick, outside the peer link's call */
    LOG(&n->log, LOG_INFO, "%s join accepted (%s): cluster %016" PRIx64, n->name,
        msg != NULL ? msg : "ok", c->join.cluster_id);
}

int cluster__join_check(const char *hello_addr, const unsigned char *b, size_t len,
                        char *why, size_t whylen)
{
    char addr[PFRAME_MAX_ADDR + 1];
    uint64_t id;
    bool replace;

    if (cluster__join_parse(b, len, &id, &replace, addr) < 0) {
        snprintf(why, whylen, "malformed join request");
        return XE_PROTO;
    }
    /* peer.c bound the HELLO's address to the certificate; the address the
     * request would add to the configuration must be that one. */
    if (!peer_addr_same(addr, hello_addr)) {
        snprintf(why, whylen,
                 "the join request names address %.64s, but the node's HELLO (checked "
                 "against its certificate) claimed %.64s: join with the address the "
                 "certificate names",
                 addr, hello_addr);
        return XE_AUTH;
    }
    return 0;
}

/* cluster__contact_failed ends a join early when the member cannot be reached the
 * same way a few times in a row (instead of the 10 s contact timeout). */
void cluster__contact_failed(struct node *n, const char *addr, int err, bool refused)
{
    struct cluster *c = n->cluster;
    char msg[300];

    if (err == UV_EPROTONOSUPPORT) {
        /* The port answers in XMPP or HTTP (peer.c foreign): once is
         * enough, it will not change. */
        char why[200];
        peer_last_error(c->pm, addr, why, sizeof why);
        snprintf(
            msg, sizeof msg, "%s; join at the member's peer address instead (port %d)",
            why[0] != '\0' ? why : "that port does not speak the cluster peer protocol",
            PEER_DEFAULT_PORT);
        cluster__join_finish(c, XE_PROTO, msg);
    } else if (err == UV_EPROTO && ++c->join.tls_failed >= 2) {
        snprintf(msg, sizeof msg,
                 "the TLS handshake with %s failed: a certificate is not trusted "
                 "(check xmpp cluster trust on both nodes; the daemons' logs say which)",
                 addr);
        cluster__join_finish(c, XE_TLS, msg);
    } else if (refused && ++c->join.refused >= 3 &&
               cluster__now_ms(n) + CONTACT_TIMEOUT_MS >= c->join.deadline + 3000) {
        /* (refused for 3 s: a member that is just starting gets time) */
        snprintf(msg, sizeof msg,
                 "nothing listens on %s: run xmpp cluster enable there, or check the "
                 "address",
                 addr);
        cluster__join_finish(c, XE_CLOSED, msg);
    } else if (err == 0 && ++c->join.closed >= 3) {
        snprintf(msg, sizeof msg,
                 "%s refused this node on the peer link (another cluster, or a node id "
                 "it does not allow: its log says why)",
                 addr);
        cluster__join_finish(c, XE_PERM, msg);
    }
}

void cluster__send_join(struct node *n, uint64_t id)
{
    struct cluster *c = n->cluster;
    char self[PFRAME_MAX_ADDR + 1];
    unsigned char body[13 + PFRAME_MAX_ADDR + 1 + CLUSTER_TOKEN_BYTES];
    size_t alen, len;
    struct creq *q;

    c->join.contact_id = id;
    cluster_self_addr(n, self, sizeof self);
    alen = strlen(self);
    cluster__put64(body, n->st.node_id);
    body[8] = c->join.replace ? 1 : 0;
    body[9] = 0;
    body[10] = 0;
    body[11] = (unsigned char)(alen >> 8);
    body[12] = (unsigned char)alen;
    memcpy(body + 13, self, alen);
    len = 13 + alen;
    /* The admin's consent (docs/cluster.md "Join"): the member checks the
     * token and passes the request on without it. */
    if (c->join.token != NULL) {
        body[len++] = CLUSTER_TOKEN_BYTES;
        memcpy(body + len, c->join.token, CLUSTER_TOKEN_BYTES);
        len += CLUSTER_TOKEN_BYTES;
    }
    q = cluster__req_new(c, CLUSTER_REQ_JOIN, body, len,
                         c->join.deadline - cluster__now_ms(n));
    sodium_memzero(body, sizeof body);
    if (q == NULL) {
        cluster__join_finish(c, XE_NOMEM, NULL);
        return;
    }
    q->fixed = true;
    q->cb = join_answer;
    q->arg = n;
    c->join.phase = JOIN_ASKED;
    if (cluster__req_send(c, q, id) < 0)
        cluster__req_finish(c, q, XE_CLOSED, "the link to the member closed", NULL, 0);
}

void cluster__after_old_peers_closed(void *arg)
{
    struct node *n = arg;
    struct cluster *c = n->cluster;
    char why[512];
    int rc;

    if (c == NULL || c->join.phase != JOIN_SWITCHING)
        return;
    rc = node__replace_store(n, RNODE_JOIN, c->join.cluster_id, why, sizeof why);
    if (rc == 0)
        rc = cluster__open_peers(n, c->join.cluster_id, why, sizeof why);
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s join: %s", n->name, why);
        cluster__join_finish(c, rc, why);
        return;
    }
    LOG(&n->log, LOG_INFO,
        "%s joined cluster %016" PRIx64 " with an empty store; waiting for the leader",
        n->name, c->join.cluster_id);
    c->join.phase = JOIN_SYNC;
    c->join.deadline = cluster__now_ms(n) + SYNC_TIMEOUT_MS;
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

    state_new_id(&n->st);
    if (node_local_save(n, err, sizeof err) < 0) {
        n->st.node_id = old;
        snprintf(why, whylen, "cannot save a new node id for the join: %s", err);
        return XE_IO;
    }
    peer_set_node_id(n->cluster->pm, n->st.node_id);
    state_node_id_hex(old, a);
    state_node_id_hex(n->st.node_id, b);
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
    int port;

    (void)timeout_ms;
    if (c == NULL || c->pm == NULL) {
        cb(arg, XE_STATE,
           "clustering is not enabled on this node: run xmpp cluster enable", NULL, 0);
        return;
    }
    if (c->join.phase != JOIN_NONE) {
        cb(arg, XE_BUSY, "a join is already in progress", NULL, 0);
        return;
    }
    if (peer_parse_addr(addr, host, sizeof host, &port) < 0) {
        cb(arg, XE_INVAL, "bad address (host, host:port or [IPv6]:port)", NULL, 0);
        return;
    }
    snprintf(norm, sizeof norm, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    cluster_self_addr(n, self, sizeof self);
    if (strcmp(norm, self) == 0) {
        cb(arg, XE_INVAL, "that is this node's own address: join another member", NULL,
           0);
        return;
    }
    rnode_status_get(n->rn, &st);
    if (cfg->n > 1 && !c->removed) {
        if (raft_config_find_address(cfg, norm) != NULL &&
            raft_config_find(cfg, n->st.node_id) != NULL) {
            cb(arg, 0, "already a member of that cluster", NULL, 0);
            return;
        }
        snprintf(msg, sizeof msg,
                 "this node is a member of cluster %016" PRIx64
                 " with %u members; leave it first with xmpp cluster disable",
                 st.cluster_id, cfg->n);
        cb(arg, XE_STATE, msg, NULL, 0);
        return;
    }
    token = sodium_malloc(CLUSTER_TOKEN_BYTES);
    if (token == NULL) {
        cb(arg, XE_NOMEM, NULL, NULL, 0);
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
    if (c->removed && take_new_id(n, msg, sizeof msg) < 0) {
        sodium_free(token);
        cb(arg, XE_IO, msg, NULL, 0);
        return;
    }
    if (peer_contact(c->pm, norm) < 0) {
        sodium_free(token);
        cb(arg, XE_INVAL, "bad address", NULL, 0);
        return;
    }
    memset(&c->join, 0, sizeof c->join);
    c->join.token = token;
    c->join.phase = JOIN_CONTACT;
    snprintf(c->join.addr, sizeof c->join.addr, "%s", norm);
    c->join.replace = replace;
    c->join.deadline = cluster__now_ms(n) + CONTACT_TIMEOUT_MS;
    c->join.cb = cb;
    c->join.arg = arg;
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
        cl_cmd_cb_set(cmd, b->name, b->secret, b->secret_len, false);
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
    node__later(n, rebuild_run, r);
}
