/* cluster_req.c: admin requests carried to the leader (ours, and those we
 * relay), and the leader serving them: writes, join and remove as Raft
 * membership changes (contract in cluster.h; docs/cluster.md). */
#include "cluster_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "node.h"
#include "node_int.h"
#include "peer.h"
#include "pframe.h"
#include "raft.h"
#include "rnode.h"
#include "node_state.h"

/* ---- requests to the leader ---- */

void cluster__req_finish(struct cluster *c, struct creq *q, int rc, const char *msg,
                         const void *data, size_t len)
{
    for (struct creq **pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    }
    if (q->rcb != NULL)
        q->rcb(q->rarg, rc, msg);
    else if (q->cb != NULL)
        q->cb(q->arg, rc, msg, data, len);
    free(q->body);
    free(q);
}

int cluster__req_send(struct cluster *c, struct creq *q, uint64_t to)
{
    struct pframe f;
    unsigned char *data = malloc(q->len + 9);
    int rc;

    if (data == NULL)
        return XE_NOMEM;
    data[0] = (unsigned char)q->kind;
    cluster__put64(data + 1, q->expires);
    memcpy(data + 9, q->body, q->len);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_SUBMIT;
    f.u.submit.request_id = q->rid;
    f.u.submit.data = data;
    f.u.submit.len = q->len + 9;
    rc = c->pm != NULL ? peer_send(c->pm, to, &f) : XE_CLOSED;
    free(data);
    if (rc == 0) {
        q->sent_to = to;
        c->cnt.requests_sent++;
    }
    return rc;
}

struct creq *cluster__req_new(struct cluster *c, enum cluster_kind kind, const void *body,
                              size_t len, uint64_t timeout_ms)
{
    struct creq *q = calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->body = malloc(len + 1);
    if (q->body == NULL) {
        free(q);
        return NULL;
    }
    memcpy(q->body, body, len);
    q->len = len;
    q->kind = kind;
    q->rid = ++c->next_rid;
    q->deadline = cluster__now_ms(c->n) + (timeout_ms != 0 ? timeout_ms : 5000);
    q->expires = cluster__wall_ms(NULL) + (timeout_ms != 0 ? timeout_ms : 5000);
    q->next = c->reqs;
    c->reqs = q;
    return q;
}

void cluster_request(struct node *n, enum cluster_kind kind, const void *body, size_t len,
                     uint64_t timeout_ms, cluster_cb cb, void *arg)
{
    struct cluster *c = n->cluster;
    struct creq *q;

    if (n->rn != NULL && rnode_is_leader(n->rn)) {
        cluster__serve(n, kind, body, len,
                       cluster__wall_ms(NULL) + (timeout_ms ? timeout_ms : 5000), cb,
                       arg);
        return;
    }
    if (c == NULL || c->pm == NULL) {
        cb(arg, XE_STATE, "clustering is not enabled on this node (xmpp cluster enable)",
           NULL, 0);
        return;
    }
    q = cluster__req_new(c, kind, body, len, timeout_ms);
    if (q == NULL) {
        cb(arg, XE_NOMEM, NULL, NULL, 0);
        return;
    }
    q->cb = cb;
    q->arg = arg;
    if (c->leader_id != 0 && c->leader_id != n->st.node_id)
        cluster__req_send(c, q, c->leader_id);
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
        cluster__invite_settle(c, r->invite, rc == 0);
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
    uint64_t removed; /* a member this change removes (told once done) */
    cluster_cb cb;
    void *arg;
    unsigned char cid[8];
};

/* note_removed tells member id that it is out (see CLUSTER_NOTE_REMOVED);
 * its link lingers for this (peer.c). */
static void note_removed(struct node *n, uint64_t id, const unsigned char cid[8])
{
    unsigned char data[17];
    struct pframe f;

    if (n->cluster == NULL || n->cluster->pm == NULL || id == n->st.node_id)
        return;
    data[0] = CLUSTER_NOTE_REMOVED;
    cluster__put64(data + 1, UINT64_MAX);
    memcpy(data + 9, cid, 8);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_SUBMIT;
    f.u.submit.request_id = 0;
    f.u.submit.data = data;
    f.u.submit.len = sizeof data;
    peer_send(n->cluster->pm, id, &f);
}

static void chg_done(void *arg, int rc, const char *msg)
{
    struct chg *g = arg;
    char id[17];

    if (g->in_call) {
        g->called = true;
        g->rc = rc;
        snprintf(g->msg, sizeof g->msg, "%s", msg != NULL ? msg : xe_strerror(rc));
        return;
    }
    state_node_id_hex(g->id, id);
    if (g->n->rn != NULL) /* the node is still there */
        LOG(&g->n->log, rc < 0 ? LOG_WARN : LOG_INFO,
            "%s membership change for node %s: %s", g->n->name, id,
            rc < 0 ? (msg != NULL ? msg : xe_strerror(rc)) : "done");
    if (rc == 0 && g->removed != 0 && g->n->rn != NULL)
        note_removed(g->n, g->removed, g->cid);
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
    g->removed = ch->kind == RNODE_CHANGE_REMOVE    ? ch->id
                 : ch->kind == RNODE_CHANGE_REPLACE ? ch->old_id
                                                    : 0;
    rnode_status_get(n->rn, &st);
    cluster__put64(g->cid, st.cluster_id);
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

static void do_join(struct node *n, uint64_t id, bool replace, const char *addr,
                    cluster_cb cb, void *arg)
{
    const struct raft_config *cfg = rnode_config(n->rn);
    const struct raft_member *by_id = raft_config_find(cfg, id);
    const struct raft_member *by_addr = raft_config_find_address(cfg, addr);
    struct rnode_change ch = {.id = id, .address = addr};
    struct rnode_status st;
    unsigned char cid[8];
    char hid[17], hold[17], msg[700];

    rnode_status_get(n->rn, &st);
    cluster__put64(cid, st.cluster_id);
    state_node_id_hex(id, hid);
    if (by_id != NULL && strcmp(by_id->address, addr) == 0) {
        if (by_id->role == RAFT_NONVOTER) {
            ch.kind = RNODE_CHANGE_PROMOTE;
            start_change(n, &ch, false, cb, arg, "already a member; promotion started");
            return;
        }
        cb(arg, 0, "already a member", cid, sizeof cid);
        return;
    }
    if (by_id != NULL) {
        snprintf(msg, sizeof msg,
                 "node %s is already a member at %s; remove it first with: xmpp cluster "
                 "remove %s",
                 hid, by_id->address, hid);
        cb(arg, XE_EXISTS, msg, NULL, 0);
        return;
    }
    if (by_addr != NULL) {
        state_node_id_hex(by_addr->id, hold);
        if (!replace) {
            snprintf(
                msg, sizeof msg,
                "address %s is held by member node %s (was this node reset?); remove "
                "it with: xmpp cluster remove %s, or join with: xmpp cluster join "
                "<addr> <token> --replace",
                addr, hold, hold);
            cb(arg, XE_EXISTS, msg, NULL, 0);
            return;
        }
        if (by_addr->id == n->st.node_id) {
            snprintf(msg, sizeof msg,
                     "address %s is held by the leader itself (node %s): it cannot be "
                     "replaced",
                     addr, hold);
            cb(arg, XE_STATE, msg, NULL, 0);
            return;
        }
        LOG(&n->log, LOG_INFO, "%s join: node %s replaces member %s at %s", n->name, hid,
            hold, addr);
        ch.kind = RNODE_CHANGE_REPLACE;
        ch.old_id = by_addr->id;
        start_change(n, &ch, false, cb, arg, "replacing the stale member");
        return;
    }
    LOG(&n->log, LOG_INFO, "%s join: adding node %s at %s", n->name, hid, addr);
    ch.kind = RNODE_CHANGE_ADD;
    start_change(n, &ch, false, cb, arg, "added as a non-voter; promoted once caught up");
}

static void do_remove(struct node *n, uint64_t id, cluster_cb cb, void *arg)
{
    struct rnode_change ch = {.kind = RNODE_CHANGE_REMOVE, .id = id};
    char hid[17], msg[200];

    state_node_id_hex(id, hid);
    if (raft_config_find(rnode_config(n->rn), id) == NULL) {
        snprintf(msg, sizeof msg, "node %s is not a member; see xmpp cluster status",
                 hid);
        cb(arg, XE_NOTFOUND, msg, NULL, 0);
        return;
    }
    LOG(&n->log, LOG_INFO, "%s removing member %s", n->name, hid);
    start_change(n, &ch, true, cb, arg, NULL);
}

int cluster__join_token(const unsigned char *b, size_t len, const unsigned char **tok,
                        size_t *tlen, size_t *base)
{
    uint32_t alen;
    size_t end;

    *tok = NULL;
    *tlen = 0;
    if (len < 13)
        return XE_PROTO;
    alen = (uint32_t)b[9] << 24 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 8 | b[12];
    if (alen == 0 || alen > PFRAME_MAX_ADDR)
        return XE_PROTO;
    end = 13 + (size_t)alen;
    *base = end;
    if (end == len)
        return 0; /* no token */
    if (end > len || len - end - 1 != b[end] || b[end] == 0)
        return XE_PROTO;
    *tok = b + end + 1;
    *tlen = b[end];
    return 0;
}

int cluster__join_parse(const unsigned char *b, size_t len, uint64_t *id, bool *replace,
                        char *addr)
{
    const unsigned char *tok;
    size_t tlen, base;
    uint32_t alen;

    if (cluster__join_token(b, len, &tok, &tlen, &base) < 0)
        return XE_PROTO;
    alen = (uint32_t)(base - 13);
    memcpy(addr, b + 13, alen);
    addr[alen] = '\0';
    *id = cluster__get64(b);
    *replace = b[8] != 0;
    return 0;
}

void cluster__serve(struct node *n, enum cluster_kind kind, const void *body, size_t len,
                    uint64_t expires, cluster_cb cb, void *arg)
{
    uint64_t wall = cluster__wall_ms(NULL);
    uint64_t left = expires > wall + 100 ? expires - wall : 100;

    const unsigned char *b = body;

    if (n->rn == NULL) {
        cb(arg, XE_CLOSED, "the node is stopping", NULL, 0);
        return;
    }
    if (kind == CLUSTER_REQ_CMD) {
        struct subw *w = malloc(sizeof *w);
        if (w == NULL) {
            cb(arg, XE_NOMEM, NULL, NULL, 0);
            return;
        }
        w->cb = cb;
        w->arg = arg;
        rnode_submit(n->rn, body, len, left, submit_done, w);
        return;
    }
    if (!rnode_is_leader(n->rn)) {
        cluster_request(n, kind, body, len, left, cb, arg);
        return;
    }
    if (kind == CLUSTER_REQ_JOIN) {
        char addr[PFRAME_MAX_ADDR + 1];
        uint64_t id;
        bool replace;
        if (cluster__join_parse(b, len, &id, &replace, addr) < 0) {
            cb(arg, XE_PROTO, "malformed join request", NULL, 0);
            return;
        }
        do_join(n, id, replace, addr, cb, arg);
        return;
    }
    if (kind == CLUSTER_REQ_REMOVE && len == 8) {
        do_remove(n, cluster__get64(b), cb, arg);
        return;
    }
    cb(arg, XE_PROTO, "malformed request", NULL, 0);
}
