/* cluster.c: the peer link wired to the Raft driver, admin requests to the
 * leader, join and rebuild (contract in cluster.h; docs/cluster.md). */
#include "cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cl.h"
#include "codec.h"
#include "conf.h"
#include "err.h"
#include "fwd.h"
#include "node.h"
#include "node_int.h"
#include "peer.h"
#include "pframe.h"
#include "raft.h"
#include "rnode.h"
#include "srv.h"
#include "state.h"

#define TICK_MS 50
#define CONTACT_TIMEOUT_MS 10000
#define SYNC_TIMEOUT_MS 30000
#define REBUILD_TIMEOUT_MS 10000

/* A request to the leader: ours (cb or rcb) or one we relay. */
struct creq {
    uint64_t rid;
    enum cluster_kind kind;
    unsigned char *body;
    size_t len;
    uint64_t deadline;
    uint64_t expires; /* wall-clock ms: the leader refuses it after this */
    uint64_t sent_to; /* 0: waiting for a leader */
    bool fixed;       /* sent to one peer (a join contact), never redirected */
    cluster_cb cb;
    void *arg;
    rnode_done_cb rcb; /* forward_submit */
    void *rarg;
    struct creq *next;
};

enum join_phase {
    JOIN_NONE = 0,
    JOIN_CONTACT, /* dialling the address given */
    JOIN_ASKED,   /* the request is with the cluster */
    JOIN_SWITCH,  /* accepted: replace the store on the next tick */
    JOIN_SWITCHING,
    JOIN_SYNC,  /* waiting to be a voter */
    JOIN_RETRY, /* the leader was busy with another change: ask again */
};

struct cjoin {
    enum join_phase phase;
    char addr[PFRAME_MAX_ADDR + 1];
    bool replace;
    uint64_t cluster_id;
    uint64_t deadline;
    uint64_t contact_id;                  /* the member we asked */
    unsigned tls_failed, refused, closed; /* failed dials to the contact */
    uint64_t retry_at;
    cluster_cb cb;
    void *arg;
};

struct cluster {
    struct node *n;
    struct peer_mgr *pm;
    uv_timer_t timer;
    uint64_t next_rid;
    struct creq *reqs;
    uint64_t leader_id, term;
    uint64_t down_reported; /* leader id reported with rnode_peer_down */
    struct cjoin join;
    struct cluster_counters cnt;
    bool removed; /* the leader said this node is no longer a member */
};

static uint64_t now_ms(struct node *n)
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

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get64(const unsigned char *p)
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

static uint64_t sv_wall_ms(void *ud)
{
    struct timespec ts;

    (void)ud;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* srv_follow gives srv Raft's leader, term and voters. */
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
    srv_cluster_set_members(srv, ids, k);
    srv_cluster_set_leader(srv, st.leader_id, st.term, uv_now(&n->loop));
    node__after_srv(n);
}

void cluster_srv_attach(struct node *n)
{
    struct srv_cluster_env env = {
        .ud = n, .peer_send = sv_peer_send, .wall_ms = sv_wall_ms};
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

/* ---- requests to the leader ---- */

static void req_finish(struct cluster *c, struct creq *q, int rc, const char *msg,
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

static int req_send(struct cluster *c, struct creq *q, uint64_t to)
{
    struct pframe f;
    unsigned char *data = malloc(q->len + 9);
    int rc;

    if (data == NULL)
        return XE_NOMEM;
    data[0] = (unsigned char)q->kind;
    put64(data + 1, q->expires);
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

static struct creq *req_new(struct cluster *c, enum cluster_kind kind, const void *body,
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
    q->deadline = now_ms(c->n) + (timeout_ms != 0 ? timeout_ms : 5000);
    q->expires = sv_wall_ms(NULL) + (timeout_ms != 0 ? timeout_ms : 5000);
    q->next = c->reqs;
    c->reqs = q;
    return q;
}

static void serve(struct node *n, enum cluster_kind kind, const void *body, size_t len,
                  uint64_t expires, cluster_cb cb, void *arg);

void cluster_request(struct node *n, enum cluster_kind kind, const void *body, size_t len,
                     uint64_t timeout_ms, cluster_cb cb, void *arg)
{
    struct cluster *c = n->cluster;
    struct creq *q;

    if (n->rn != NULL && rnode_is_leader(n->rn)) {
        serve(n, kind, body, len, sv_wall_ms(NULL) + (timeout_ms ? timeout_ms : 5000), cb,
              arg);
        return;
    }
    if (c == NULL || c->pm == NULL) {
        cb(arg, XE_STATE, "clustering is not enabled on this node (xmpp cluster enable)",
           NULL, 0);
        return;
    }
    q = req_new(c, kind, body, len, timeout_ms);
    if (q == NULL) {
        cb(arg, XE_NOMEM, NULL, NULL, 0);
        return;
    }
    q->cb = cb;
    q->arg = arg;
    if (c->leader_id != 0 && c->leader_id != n->st.node_id)
        req_send(c, q, c->leader_id);
}

/* ---- serving requests (leader, or passing them on) ---- */

struct sreply {
    struct node *n;
    uint64_t peer, rid;
};

static void reply_peer(void *arg, int rc, const char *msg, const void *data, size_t len)
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
    put64(data + 1, UINT64_MAX);
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
    put64(g->cid, st.cluster_id);
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
    put64(cid, st.cluster_id);
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
                "<addr> --replace",
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

static void serve(struct node *n, enum cluster_kind kind, const void *body, size_t len,
                  uint64_t expires, cluster_cb cb, void *arg)
{
    uint64_t wall = sv_wall_ms(NULL);
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
    if (kind == CLUSTER_REQ_JOIN && len >= 13) {
        uint32_t alen =
            (uint32_t)b[9] << 24 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 8 | b[12];
        char addr[PFRAME_MAX_ADDR + 1];
        if (alen == 0 || alen > PFRAME_MAX_ADDR || 13 + (size_t)alen != len) {
            cb(arg, XE_PROTO, "malformed join request", NULL, 0);
            return;
        }
        memcpy(addr, b + 13, alen);
        addr[alen] = '\0';
        do_join(n, get64(b), b[8] != 0, addr, cb, arg);
        return;
    }
    if (kind == CLUSTER_REQ_REMOVE && len == 8) {
        do_remove(n, get64(b), cb, arg);
        return;
    }
    cb(arg, XE_PROTO, "malformed request", NULL, 0);
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
    q = req_new(c, CLUSTER_REQ_CMD, cmd, len, timeout_ms);
    if (q == NULL)
        return XE_NOMEM;
    q->rcb = cb;
    q->rarg = arg;
    q->fixed = true;
    rc = req_send(c, q, leader_id);
    if (rc < 0) {
        c->reqs = q->next; /* q is first: req_new pushed it */
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

static void join_finish(struct cluster *c, int rc, const char *msg)
{
    struct cjoin j = c->join;

    c->join.phase = JOIN_NONE;
    if (c->pm != NULL)
        peer_drop_contacts(c->pm);
    if (j.cb != NULL)
        j.cb(j.arg, rc, msg, NULL, 0);
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
    if (c->pm == NULL)
        return;
    peer_set_cluster_id(c->pm, st.cluster_id);
    sync_members(n);
    srv_follow(n);
    if (c->join.phase == JOIN_SYNC) {
        const struct raft_member *me =
            raft_config_find(rnode_config(n->rn), n->st.node_id);
        if (me != NULL && me->role == RAFT_VOTER)
            join_finish(c, 0, NULL);
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
    snprintf(why, whylen,
             "node %s at %s is not a member of cluster %016" PRIx64
             " (removed, or not added yet)",
             id, h->addr, st.cluster_id);
    return XE_PERM;
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
        if (f->u.submit.len < 9)
            return XE_PROTO;
        expires = get64(d + 1);
        if (d[0] == CLUSTER_NOTE_REMOVED && !guest && f->u.submit.len == 17) {
            struct rnode_status st;
            if (n->rn == NULL)
                return 0;
            rnode_status_get(n->rn, &st);
            if (get64(d + 9) == st.cluster_id && !c->removed) {
                c->removed = true;
                LOG(&n->log, LOG_WARN,
                    "%s this node was removed from cluster %016" PRIx64
                    "; run xmpp cluster disable (or join again)",
                    n->name, st.cluster_id);
            }
            return 0;
        }
        if (d[0] != CLUSTER_REQ_CMD && d[0] != CLUSTER_REQ_JOIN &&
            d[0] != CLUSTER_REQ_REMOVE)
            return XE_PROTO;
        /* A joining node may ask to join, for itself only. */
        if (guest &&
            (d[0] != CLUSTER_REQ_JOIN || f->u.submit.len < 17 || get64(d + 9) != from))
            return XE_PROTO;
        r = malloc(sizeof *r);
        if (r == NULL)
            return 0;
        r->n = n;
        r->peer = from;
        r->rid = f->u.submit.request_id;
        /* A request that waited out its sender's deadline (a partition:
         * the sender already reported failure) is not applied late. */
        if (sv_wall_ms(NULL) > expires) {
            reply_peer(r, XE_TIMEOUT,
                       "the request reached the leader after its deadline and was not "
                       "applied",
                       NULL, 0);
            return 0;
        }
        serve(n, d[0], d + 9, f->u.submit.len - 9, expires, reply_peer, r);
        return 0;
    }
    if (f->type == PFRAME_SUBMIT_RESULT) {
        for (struct creq *q = c->reqs; q != NULL; q = q->next) {
            if (q->rid == f->u.result.request_id && q->sent_to == from) {
                req_finish(c, q, f->u.result.rc,
                           f->u.result.message[0] != '\0' ? f->u.result.message : NULL,
                           f->u.result.data, f->u.result.len);
                break;
            }
        }
        return 0;
    }
    /* FWD, DELIVER, ACK, SESSIONS, CONFLICT: the XMPP core's forwarding.
     * A node that does not serve XMPP has no use for them. */
    if (xsrv(n) != NULL) {
        int rc = srv_cluster_input(xsrv(n), from, f, uv_now(&n->loop));
        node__after_srv(n);
        if (rc == XE_PROTO)
            return rc;
    }
    return 0;
}

static void join_answer(void *arg, int rc, const char *msg, const void *data, size_t len)
{
    struct node *n = arg;
    struct cluster *c = n->cluster;

    if (c == NULL || c->join.phase != JOIN_ASKED)
        return;
    if (rc == XE_BUSY && now_ms(n) + 300 < c->join.deadline) {
        /* Another membership change is under way (thesis §4.1: one at a
         * time): ask again shortly. */
        c->join.phase = JOIN_RETRY;
        c->join.retry_at = now_ms(n) + 200;
        return;
    }
    if (rc < 0) {
        join_finish(c, rc, msg);
        return;
    }
    if (len != 8) {
        join_finish(c, XE_PROTO, "the member answered without a cluster id");
        return;
    }
    c->join.cluster_id = get64(data);
    c->join.phase = JOIN_SWITCH; /* on the next tick, outside the peer link's call */
    LOG(&n->log, LOG_INFO, "%s join accepted (%s): cluster %016" PRIx64, n->name,
        msg != NULL ? msg : "ok", c->join.cluster_id);
}

static void send_join(struct node *n, uint64_t id);
static void contact_failed(struct node *n, const char *addr, int err, bool refused);
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
        send_join(n, id);
        return;
    }
    if (!up && id == 0 && c->join.phase == JOIN_CONTACT &&
        strcmp(addr, c->join.addr) == 0) {
        contact_failed(n, addr, err, refused);
        return;
    }
    pk_leader_down(n, id, addr, up, refused);
}

/* contact_failed ends a join early when the member cannot be reached the
 * same way a few times in a row (instead of the 10 s contact timeout). */
static void contact_failed(struct node *n, const char *addr, int err, bool refused)
{
    struct cluster *c = n->cluster;
    char msg[300];

    if (err == UV_EPROTO && ++c->join.tls_failed >= 2) {
        snprintf(msg, sizeof msg,
                 "the TLS handshake with %s failed: a certificate is not trusted "
                 "(check xmpp cluster trust on both nodes; the daemons' logs say which)",
                 addr);
        join_finish(c, XE_TLS, msg);
    } else if (refused && ++c->join.refused >= 3 &&
               now_ms(n) + CONTACT_TIMEOUT_MS >= c->join.deadline + 3000) {
        /* (refused for 3 s: a member that is just starting gets time) */
        snprintf(msg, sizeof msg,
                 "nothing listens on %s: run xmpp cluster enable there, or check the "
                 "address",
                 addr);
        join_finish(c, XE_CLOSED, msg);
    } else if (err == 0 && ++c->join.closed >= 3) {
        snprintf(msg, sizeof msg,
                 "%s refused this node on the peer link (another cluster, or a node id "
                 "it does not allow: its log says why)",
                 addr);
        join_finish(c, XE_PERM, msg);
    }
}

static void send_join(struct node *n, uint64_t id)
{
    struct cluster *c = n->cluster;
    char self[PFRAME_MAX_ADDR + 1];
    unsigned char body[13 + PFRAME_MAX_ADDR];
    size_t alen;
    struct creq *q;

    c->join.contact_id = id;
    cluster_self_addr(n, self, sizeof self);
    alen = strlen(self);
    put64(body, n->st.node_id);
    body[8] = c->join.replace ? 1 : 0;
    body[9] = 0;
    body[10] = 0;
    body[11] = (unsigned char)(alen >> 8);
    body[12] = (unsigned char)alen;
    memcpy(body + 13, self, alen);
    q = req_new(c, CLUSTER_REQ_JOIN, body, 13 + alen, c->join.deadline - now_ms(n));
    if (q == NULL) {
        join_finish(c, XE_NOMEM, NULL);
        return;
    }
    q->fixed = true;
    q->cb = join_answer;
    q->arg = n;
    c->join.phase = JOIN_ASKED;
    if (req_send(c, q, id) < 0)
        req_finish(c, q, XE_CLOSED, "the link to the member closed", NULL, 0);
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
                req_finish(c, q, XE_TIMEOUT, "the leader restarted", NULL, 0);
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

/* ---- start, stop, tick ---- */

static int open_peers(struct node *n, uint64_t cluster_id, char *why, size_t whylen)
{
    struct cluster *c = n->cluster;
    struct peer_hooks h = {.ud = n,
                           .check_hello = pk_check,
                           .raft = pk_raft,
                           .frame = pk_frame,
                           .link = pk_link,
                           .reset = pk_reset,
                           .room = pk_room};
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

static void after_old_peers_closed(void *arg)
{
    struct node *n = arg;
    struct cluster *c = n->cluster;
    char why[512];
    int rc;

    if (c == NULL || c->join.phase != JOIN_SWITCHING)
        return;
    rc = node__replace_store(n, RNODE_JOIN, c->join.cluster_id, why, sizeof why);
    if (rc == 0)
        rc = open_peers(n, c->join.cluster_id, why, sizeof why);
    if (rc < 0) {
        LOG(&n->log, LOG_ERROR, "%s join: %s", n->name, why);
        join_finish(c, rc, why);
        return;
    }
    LOG(&n->log, LOG_INFO,
        "%s joined cluster %016" PRIx64 " with an empty store; waiting for the leader",
        n->name, c->join.cluster_id);
    c->join.phase = JOIN_SYNC;
    c->join.deadline = now_ms(n) + SYNC_TIMEOUT_MS;
    cluster_srv_attach(n);
}

static void on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    struct cluster *c = n->cluster;
    uint64_t now = now_ms(n);

    if (c == NULL)
        return;
    if (c->join.phase == JOIN_SWITCH) {
        struct peer_mgr *old = c->pm;
        c->join.phase = JOIN_SWITCHING;
        c->pm = NULL;
        for (struct creq *q = c->reqs; q != NULL;) {
            struct creq *next = q->next;
            req_finish(c, q, XE_CLOSED, "the node is joining another cluster", NULL, 0);
            q = next;
        }
        peer_mgr_close(old, after_old_peers_closed, n);
    }
    if (c->join.phase == JOIN_RETRY && now >= c->join.retry_at) {
        c->join.phase = JOIN_CONTACT;
        send_join(n, c->join.contact_id);
    }
    if (c->join.phase == JOIN_CONTACT && now >= c->join.deadline) {
        char msg[700];
        snprintf(msg, sizeof msg,
                 "could not reach %s over the peer link within %d s (is clustering "
                 "enabled there, the address right, its certificate trusted here and "
                 "ours there? see both daemons' logs)",
                 c->join.addr, CONTACT_TIMEOUT_MS / 1000);
        join_finish(c, XE_TIMEOUT, msg);
    }
    if (c->join.phase == JOIN_SYNC && now >= c->join.deadline)
        join_finish(c, XE_TIMEOUT,
                    "joined, but not yet promoted to voter within 30 s: check xmpp "
                    "cluster status on the leader");
    for (struct creq *q = c->reqs; q != NULL;) {
        struct creq *next = q->next;
        if (now >= q->deadline) {
            req_finish(
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
                req_finish(c, q, 0, NULL, NULL, 0);
                serve(n, kind, body, len, expires, cb, arg);
                free(body);
            } else {
                req_send(c, q, c->leader_id);
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
    rc = open_peers(n, st.cluster_id, why, whylen);
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
        req_finish(c, c->reqs, XE_CLOSED, "clustering stopped on this node", NULL, 0);
    if (c->join.phase != JOIN_NONE)
        join_finish(c, XE_CLOSED, "clustering stopped on this node");
    peer_mgr_close(c->pm, NULL, NULL);
    c->pm = NULL;
    n->cluster = NULL;
    uv_timer_stop(&c->timer);
    c->timer.data = c;
    uv_close((uv_handle_t *)&c->timer, free_cluster);
}

void cluster_join(struct node *n, const char *addr, bool replace, uint64_t timeout_ms,
                  cluster_cb cb, void *arg)
{
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
    if (peer_contact(c->pm, norm) < 0) {
        cb(arg, XE_INVAL, "bad address", NULL, 0);
        return;
    }
    memset(&c->join, 0, sizeof c->join);
    c->join.phase = JOIN_CONTACT;
    snprintf(c->join.addr, sizeof c->join.addr, "%s", norm);
    c->join.replace = replace;
    c->join.deadline = now_ms(n) + CONTACT_TIMEOUT_MS;
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
