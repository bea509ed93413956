/* cluster_req.c: admin requests carried to the leader (ours, and those we
 * relay), and the leader serving them: writes, join and remove as Raft
 * membership changes (contract in cluster.h; docs/cluster.md). */
#include "cluster_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cremove.h"
#include "cserve.h"
#include "err.h"
#include "node.h"
#include "node_int.h"
#include "peer.h"
#include "pframe.h"
#include "raft.h"
#include "rnode.h"
#include "node_state.h"

/* ---- requests to the leader: the queue (core/creq.c) and its edge ---- */

static void carry_out(struct node *n, struct cluster *c, struct creq_update *u);

int cluster__rq_step(struct node *n, struct creq_event *ev, struct creq_update *u)
{
    struct cluster *c = n->cluster;
    struct creq_update own;
    int rc;

    if (c == NULL || c->rq == NULL)
        return XE_STATE;
    if (u == NULL)
        u = &own;
    ev->now = cluster__now_ms(n);
    ev->wall = cluster__wall_ms(NULL);
    rc = creq_step(c->rq, ev, u);
    if (rc < 0)
        return rc;
    carry_out(n, c, u);
    return 0;
}

/* send_one sends one SUBMIT of an update. */
static int send_one(struct cluster *c, const struct creq_send *s)
{
    struct pframe f;

    memset(&f, 0, sizeof f);
    f.type = PFRAME_SUBMIT;
    f.u.submit.request_id = s->request_id;
    f.u.submit.data = s->data;
    f.u.submit.len = s->len;
    return c->pm != NULL ? peer_send(c->pm, s->to, &f) : XE_CLOSED;
}

/* finish_done answers (or serves here) one request that left the queue,
 * and frees it and its caller's record. */
static void finish_done(struct node *n, struct creq_done *d)
{
    struct cluster_rctx *x = d->ctx;
    struct pframe_req req;

    if (d->serve && pframe_req_decode(d->req, d->req_len, &req) == 0)
        cluster__serve(n, &req, d->expires, x->cb, x->arg);
    else if (d->serve)
        x->cb(x->arg, XE_PROTO, "malformed request", NULL, 0);
    else if (x->rcb != NULL)
        x->rcb(x->rarg, d->rc, d->msg);
    else
        x->cb(x->arg, d->rc, d->msg, d->data, d->len);
    free(x);
    creq_done_free(d);
}

/* carry_out: the sends first (peer_send never calls back into the
 * cluster), then the failed sends stepped back, then the answers, whose
 * callbacks may step the queue again or stop clustering: the done records
 * are the caller's, independent of the queue. */
static void carry_out(struct node *n, struct cluster *c, struct creq_update *u)
{
    uint64_t failed[CREQ_MAX_PENDING + 1];
    int why[CREQ_MAX_PENDING + 1];
    unsigned nf = 0;
    struct creq_done *done = u->done;

    u->done = NULL;
    for (unsigned i = 0; i < u->n_sends; i++) {
        int rc = send_one(c, &u->sends[i]);
        if (rc == 0) {
            c->cnt.requests_sent++;
        } else {
            failed[nf] = u->sends[i].request_id;
            why[nf++] = rc;
        }
    }
    /* A SUBMIT's own failed send is the caller's to step (rn_forward
     * cancels instead); every other is stepped back here. */
    for (unsigned i = 0; i < nf && n->cluster == c; i++) {
        struct creq_event ev = {.type = CREQ_EV_SEND_FAILED};
        if (failed[i] == u->request_id) {
            u->rc = why[i]; /* the SUBMIT's own: its caller decides */
            continue;
        }
        ev.u.send_failed.request_id = failed[i];
        ev.u.send_failed.rc = why[i];
        cluster__rq_step(n, &ev, NULL);
    }
    while (done != NULL) {
        struct creq_done *next = done->next;
        finish_done(n, done);
        done = next;
    }
}

void cluster__rq_leader(struct node *n)
{
    struct cluster *c = n->cluster;
    struct creq_event ev = {.type = CREQ_EV_LEADER};

    if (c == NULL || c->rq == NULL || n->rn == NULL)
        return;
    ev.u.leader.leader_id = c->leader_id;
    ev.u.leader.leading = rnode_is_leader(n->rn);
    cluster__rq_step(n, &ev, NULL);
}

void cluster__request(struct node *n, const struct pframe_req *req, uint64_t to,
                      uint64_t timeout_ms, cluster_cb cb, void *arg)
{
    struct cluster *c = n->cluster;
    struct creq_event ev = {.type = CREQ_EV_SUBMIT};
    struct creq_update u;
    struct cluster_rctx *x;
    int rc;

    if (c == NULL || c->pm == NULL || c->rq == NULL) {
        struct cserve_alone_in in = {.to = to, .timeout_ms = timeout_ms};
        struct cserve_alone_out out;
        in.leading = n->rn != NULL && rnode_is_leader(n->rn);
        in.wall = cluster__wall_ms(NULL);
        cserve_alone(&in, &out);
        if (out.verdict == CSERVE_ALONE_SERVE)
            cluster__serve(n, req, out.expires, cb, arg);
        else
            cb(arg, out.rc, out.msg, NULL, 0);
        return;
    }
    x = calloc(1, sizeof *x);
    if (x == NULL) {
        cb(arg, XE_NOMEM,
           "out of memory on this node: the request was not sent; nothing "
           "was changed",
           NULL, 0);
        return;
    }
    x->cb = cb;
    x->arg = arg;
    cluster__rq_leader(n);
    ev.u.submit.req = req;
    ev.u.submit.timeout_ms = timeout_ms;
    ev.u.submit.to = to;
    ev.u.submit.ctx = x;
    rc = cluster__rq_step(n, &ev, &u);
    if (rc < 0 || (u.request_id == 0 && !u.serve_now)) {
        free(x);
        cb(arg, rc < 0 ? rc : u.rc, rc < 0 ? "malformed request" : u.msg, NULL, 0);
        return;
    }
    if (u.serve_now) {
        free(x);
        cluster__serve(n, req, u.expires, cb, arg);
        return;
    }
    if (u.rc < 0 && n->cluster == c) {
        /* Its send failed: the queue decides (ask again, or answer). */
        struct creq_event f = {.type = CREQ_EV_SEND_FAILED};
        f.u.send_failed.request_id = u.request_id;
        f.u.send_failed.rc = u.rc;
        cluster__rq_step(n, &f, NULL);
    }
}

void cluster_remove(struct node *n, uint64_t node_id, uint64_t timeout_ms, cluster_cb cb,
                    void *arg)
{
    struct pframe_req req = {.kind = PFRAME_REQ_REMOVE};

    req.u.node_id = node_id;
    cluster__request(n, &req, 0, timeout_ms, cb, arg);
}

/* ---- serving requests (leader, or passing them on) ---- */

void cluster__reply_peer(void *arg, int rc, const char *msg, const void *data, size_t len)
{
    struct sreply *r = arg;
    struct cluster *c = r->n->cluster;
    struct pframe f;

    memset(&f, 0, sizeof f);
    f.type = PFRAME_SUBMIT_RESULT;
    f.u.result.request_id = r->rid;
    f.u.result.rc = rc;
    f.u.result.message = msg != NULL ? msg : (rc < 0 ? xe_strerror(rc) : "");
    f.u.result.data = data;
    f.u.result.len = len;
    if (c != NULL)
        cinvite_settle(&c->invites, r->invite, rc == 0);
    if (c != NULL && c->pm != NULL) {
        c->cnt.requests_served++;
        if (peer_send(c->pm, r->peer, &f) < 0)
            LOG(&r->n->log, LOG_WARN,
                "%s cannot answer request %" PRIu64 " of %016" PRIx64, r->n->name, r->rid,
                r->peer);
    }
    free(r);
}

struct subw {
    cluster_cb cb;
    void *arg;
};

static void submit_done(void *arg, int rc, const char *msg)
{
    struct subw *w = arg;

    w->cb(w->arg, rc, msg, NULL, 0);
    free(w);
}

/* A membership change: refusals come at once (in_call), the rest later. */
struct chg {
    struct node *n;
    bool in_call, called, answer_at_end;
    int rc;
    char msg[300];
    uint64_t id;
    struct cremove_change rm; /* whom it removes (told once done: cremove) */
    cluster_cb cb;
    void *arg;
    unsigned char cid[8];
};

/* note_removed tells member id that it is out (see CLUSTER_NOTE_REMOVED);
 * its link lingers for this (peer.c). */
static void note_removed(struct node *n, uint64_t id, uint64_t cluster_id)
{
    struct pframe_req r = {.kind = PFRAME_REQ_NOTE_REMOVED, .expires = UINT64_MAX};
    struct buf data;
    struct pframe f;

    if (n->cluster == NULL || n->cluster->pm == NULL)
        return;
    r.u.cluster_id = cluster_id;
    memset(&data, 0, sizeof data);
    if (pframe_req_encode(&r, &data) < 0) {
        LOG(&n->log, LOG_WARN, "%s out of memory: a removed member is not told so",
            n->name);
        return;
    }
    memset(&f, 0, sizeof f);
    f.type = PFRAME_SUBMIT;
    f.u.submit.request_id = 0;
    f.u.submit.data = data.data;
    f.u.submit.len = data.len;
    peer_send(n->cluster->pm, id, &f);
    buf_free(&data);
}

static void chg_done(void *arg, int rc, const char *msg)
{
    struct chg *g = arg;
    char id[17];
    uint64_t tell;

    if (g->in_call) {
        g->called = true;
        g->rc = rc;
        snprintf(g->msg, sizeof g->msg, "%s", msg != NULL ? msg : xe_strerror(rc));
        return;
    }
    node_state_node_id_hex(g->id, id);
    if (g->n->rn != NULL) /* the node is still there */
        LOG(&g->n->log, rc < 0 ? LOG_WARN : LOG_INFO,
            "%s membership change for node %s: %s", g->n->name, id,
            rc < 0 ? (msg != NULL ? msg : xe_strerror(rc)) : "done");
    tell = cremove_change_done(&g->rm, rc, g->n->st.node_id, g->n->rn != NULL);
    if (tell != 0)
        note_removed(g->n, tell, pframe_u64_get(g->cid));
    if (g->answer_at_end)
        g->cb(g->arg, rc, rc < 0 ? (msg != NULL ? msg : xe_strerror(rc)) : NULL, NULL, 0);
    free(g);
}

static void start_change(struct node *n, const struct rnode_change *ch,
                         bool answer_at_end, cluster_cb cb, void *arg, const char *okmsg)
{
    struct chg *g = calloc(1, sizeof *g);
    struct rnode_status st;

    if (g == NULL) {
        cb(arg, XE_NOMEM, NULL, NULL, 0);
        return;
    }
    g->n = n;
    g->id = ch->id;
    g->cb = cb;
    g->arg = arg;
    g->answer_at_end = answer_at_end;
    g->rm.kind = ch->kind == RNODE_CHANGE_REMOVE    ? CREMOVE_CHANGE_REMOVE
                 : ch->kind == RNODE_CHANGE_REPLACE ? CREMOVE_CHANGE_REPLACE
                                                    : CREMOVE_CHANGE_OTHER;
    g->rm.id = ch->id;
    g->rm.old_id = ch->old_id;
    rnode_get_status(n->rn, &st);
    pframe_u64_put(g->cid, st.cluster_id);
    g->in_call = true;
    rnode_change(n->rn, ch, chg_done, g);
    g->in_call = false;
    if (g->called) {
        cb(arg, g->rc, g->msg, NULL, 0);
        free(g);
        return;
    }
    if (!answer_at_end)
        cb(arg, 0, okmsg, g->cid, sizeof g->cid); /* g lives until chg_done */
}

/* do_join carries out the leader's decision on a join request j
 * (core/cjoin.c cjoin_decide). */
static void do_join(struct node *n, const struct pframe_join *j, cluster_cb cb, void *arg)
{
    const struct raft_config *cfg = rnode_config(n->rn);
    struct cjoin_member m[RAFT_MAX_MEMBERS];
    struct rnode_change ch = {.id = j->node_id, .address = j->addr};
    enum cjoin_verdict v;
    struct rnode_status st;
    unsigned char cid[8];
    char hid[17], hold[17], msg[700];
    uint64_t old_id;
    int rc;

    for (unsigned i = 0; i < cfg->n; i++) {
        m[i].id = cfg->members[i].id;
        m[i].addr = cfg->members[i].address;
        m[i].voter = cfg->members[i].role != RAFT_NONVOTER;
    }
    rc = cjoin_decide(m, cfg->n, n->st.node_id, j, &v, &old_id, msg, sizeof msg);
    rnode_get_status(n->rn, &st);
    pframe_u64_put(cid, st.cluster_id);
    node_state_node_id_hex(j->node_id, hid);
    switch (v) {
    case CJOIN_ALREADY:
        cb(arg, 0, msg, cid, sizeof cid);
        return;
    case CJOIN_PROMOTE:
        ch.kind = RNODE_CHANGE_PROMOTE;
        break;
    case CJOIN_REPLACE:
        node_state_node_id_hex(old_id, hold);
        LOG(&n->log, LOG_INFO, "%s join: node %s replaces member %s at %s", n->name, hid,
            hold, j->addr);
        ch.kind = RNODE_CHANGE_REPLACE;
        ch.old_id = old_id;
        break;
    case CJOIN_ADD:
        LOG(&n->log, LOG_INFO, "%s join: adding node %s at %s", n->name, hid, j->addr);
        ch.kind = RNODE_CHANGE_ADD;
        break;
    default:
        cb(arg, rc < 0 ? rc : XE_STATE, msg, NULL, 0);
        return;
    }
    start_change(n, &ch, false, cb, arg, msg);
}

/* do_remove removes member id (cserve_decide found it a member). */
static void do_remove(struct node *n, uint64_t id, cluster_cb cb, void *arg)
{
    struct rnode_change ch = {.kind = RNODE_CHANGE_REMOVE, .id = id};
    char hid[17];

    node_state_node_id_hex(id, hid);
    LOG(&n->log, LOG_INFO, "%s removing member %s", n->name, hid);
    start_change(n, &ch, true, cb, arg, NULL);
}

void cluster__serve(struct node *n, const struct pframe_req *req, uint64_t expires,
                    cluster_cb cb, void *arg)
{
    struct cserve_in in = {.req = req, .expires = expires};
    uint64_t members[RAFT_MAX_MEMBERS];
    struct cserve_out out;

    in.wall = cluster__wall_ms(NULL);
    in.running = n->rn != NULL;
    if (n->rn != NULL) {
        const struct raft_config *cfg = rnode_config(n->rn);
        for (unsigned i = 0; i < cfg->n; i++)
            members[i] = cfg->members[i].id;
        in.members = members;
        in.n_members = cfg->n;
        in.leading = rnode_is_leader(n->rn);
    }
    cserve_decide(&in, &out);
    switch (out.verdict) {
    case CSERVE_SUBMIT: {
        struct subw *w = malloc(sizeof *w);
        if (w == NULL) {
            cb(arg, XE_NOMEM, "out of memory on the leader: nothing was changed", NULL,
               0);
            return;
        }
        w->cb = cb;
        w->arg = arg;
        rnode_submit(n->rn, req->u.cmd.data, req->u.cmd.len, out.left_ms, submit_done, w);
        return;
    }
    case CSERVE_PASS_ON:
        cluster__request(n, req, 0, out.left_ms, cb, arg);
        return;
    case CSERVE_JOIN:
        do_join(n, &req->u.join, cb, arg);
        return;
    case CSERVE_REMOVE:
        do_remove(n, req->u.node_id, cb, arg);
        return;
    case CSERVE_REFUSE:
        cb(arg, out.rc, out.msg, NULL, 0);
        return;
    }
}
