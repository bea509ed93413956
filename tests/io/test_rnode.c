/* test_rnode.c: the Raft driver (xmppd/io/rnode.c) on a real loop and a
 * temporary directory: bootstrap of a one-member cluster, submits that commit
 * and apply, effects reported, restart from the directory, snapshots, a
 * failing store, timeouts, and a three-node cluster over an in-process
 * transport (membership change, replication, follower refusal, forwarding
 * hook). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "raft_codec.h"
#include "err.h"
#include "iofix.h"
#include "rnode.h"
#include "raft_store.h"
#include "testlib.h"

static char base[64];
static int dir_seq;

static void cleanup(void)
{
    iofix_rmdir(base);
}

static void setup_once(void)
{
    if (base[0] != '\0')
        return;
    if (sodium_init() < 0)
        abort();
    snprintf(base, sizeof base, "/tmp/xmppd-rnode-XXXXXX");
    if (mkdtemp(base) == NULL)
        abort();
    atexit(cleanup);
}

/* new_dir makes a fresh store directory path under base (made on first
 * use, so that a single case can run alone). */
static void new_dir(char *out, size_t cap)
{
    setup_once();
    snprintf(out, cap, "%s/n%d", base, ++dir_seq);
    mkdir(out, 0700);
    strncat(out, "/raft", cap - strlen(out) - 1);
}

/* ---- loop helpers ---- */

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* run_until runs loop until *flag or ms pass; returns *flag. */
static bool run_until(uv_loop_t *loop, const bool *flag, uint64_t ms)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

/* wait_ms runs loop for ms. */
static void wait_ms(uv_loop_t *loop, uint64_t ms)
{
    bool never = false;

    run_until(loop, &never, ms);
}

/* finish_loop runs the close callbacks left and closes loop. */
static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(loop), 0);
}

/* ---- a recorder for hooks and callbacks ---- */

struct rec {
    int n_applied;
    struct {
        enum cl_effect_kind kind;
        char name[64];
    } eff[64];
    int n_failed;
    int failed_rc;
    int n_status;
};

static void h_applied(void *ud, const struct cl_effects *eff)
{
    struct rec *r = ud;

    if (r->n_applied < 64) {
        r->eff[r->n_applied].kind = eff->kind;
        snprintf(r->eff[r->n_applied].name, 64, "%.63s", eff->name);
    }
    r->n_applied++;
}

static void h_failed(void *ud, int rc, const char *msg)
{
    struct rec *r = ud;

    (void)msg;
    r->n_failed++;
    r->failed_rc = rc;
}

static void h_status(void *ud)
{
    ((struct rec *)ud)->n_status++;
}

struct done {
    bool called;
    int times;
    int rc;
    char msg[256];
};

static void on_done(void *arg, int rc, const char *msg)
{
    struct done *d = arg;

    d->called = true;
    d->times++;
    d->rc = rc;
    snprintf(d->msg, sizeof d->msg, "%s", msg != NULL ? msg : "");
}

/* A callback that puts its own rnode on standby (rnode.h: allowed from a
 * callback, stepped once the current step is done). */
struct standby_done {
    struct done d;
    struct rnode *rn;
};

static void on_done_standby(void *arg, int rc, const char *msg)
{
    struct standby_done *s = arg;

    on_done(&s->d, rc, msg);
    rnode_standby(s->rn, true);
}

/* ---- commands ---- */

static struct cl_cmd cmd;

/* submit_wait encodes cmd, submits it and runs the loop until answered. */
static int submit_wait(uv_loop_t *loop, struct rnode *rn, uint64_t timeout_ms)
{
    struct done d = {0};
    unsigned char *buf;
    size_t len;

    if (cl_cmd_encode(&cmd, &buf, &len) != 0) {
        TL_FAIL_("encode failed");
        return -999;
    }
    rnode_submit(rn, buf, len, timeout_ms, on_done, &d);
    cl_buf_free(buf, len);
    if (!run_until(loop, &d.called, timeout_ms + 2000)) {
        TL_FAIL_("submit never answered");
        return -998;
    }
    if (d.times != 1)
        TL_FAIL_("callback called %d times", d.times);
    return d.rc;
}

static int open_node(uv_loop_t *loop, const char *dir, uint64_t id, const char *addr,
                     struct rec *r, const struct store_sys *sys, uint64_t snap_every,
                     struct rnode **out)
{
    struct rnode_opts o;
    struct rnode_hooks h = {
        .ud = r, .applied = h_applied, .failed = h_failed, .status = h_status};
    char err[256] = "";
    int rc;

    rnode_opts_default(&o);
    o.dir = dir;
    o.name = "t";
    o.node_id = id;
    o.peer_addr = addr;
    o.sys = sys;
    if (snap_every != 0)
        o.snapshot_every = snap_every;
    rc = rnode_open(loop, &o, &h, NULL, out, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  rnode_open: %s\n", err);
    return rc;
}

/* ---- cases ---- */

static void test_bootstrap_submit_restart(void)
{
    uv_loop_t loop;
    char dir[128];
    struct rnode *rn;
    struct rec r = {0};
    struct rnode_status st;
    const struct raft_config *cfg;
    uint64_t cid;
    unsigned char bad[3] = {9, 9, 9};
    struct done d = {0};

    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(open_node(&loop, dir, 0xA1, "127.0.0.1:5224", &r, NULL, 0, &rn) == 0);
    /* a lone voter leads itself and commits INIT inside rnode_open */
    cid = cl_cluster_id(rnode_state(rn));
    CHECK(cid != 0);
    CHECK(rnode_is_leader(rn));
    CHECK_INT(r.n_applied, 0); /* no hooks from inside rnode_open */
    rnode_get_status(rn, &st);
    CHECK_INT(st.role, RAFT_LEADER);
    CHECK(st.leader_id == 0xA1);
    CHECK_STR(st.leader_addr, "127.0.0.1:5224");
    CHECK(st.cluster_id == cid);
    CHECK_STR(st.last_change_reason, "startup");
    CHECK(st.last_change_time != 0);
    cfg = rnode_config(rn);
    REQUIRE(cfg->n == 1);
    CHECK(cfg->members[0].id == 0xA1 && cfg->members[0].role == RAFT_VOTER);

    cl_cmd_set_domain(&cmd, "example.com");
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"s3cret", 6, true);
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    CHECK_INT(submit_wait(&loop, rn, 30000), XE_EXISTS);
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"n3w", 3, false);
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    cl_cmd_cb_set(&cmd, "cb2", (const unsigned char *)"x", 1, true);
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    cl_cmd_cb_del(&cmd, "cb2");
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    CHECK_INT(submit_wait(&loop, rn, 30000), XE_NOTFOUND);
    REQUIRE(r.n_applied == 7);
    CHECK_INT(r.eff[0].kind, CL_EFF_DOMAIN);
    CHECK_INT(r.eff[1].kind, CL_EFF_CB_ADDED);
    CHECK_STR(r.eff[1].name, "cb1");
    CHECK_INT(r.eff[2].kind, CL_EFF_NONE);
    CHECK_INT(r.eff[3].kind, CL_EFF_CB_SECRET);
    CHECK_INT(r.eff[5].kind, CL_EFF_CB_DELETED);
    CHECK_INT(r.eff[6].kind, CL_EFF_NONE);
    CHECK_STR(cl_domain(rnode_state(rn)), "example.com");

    /* garbage never reaches the log */
    rnode_submit(rn, bad, sizeof bad, 30000, on_done, &d);
    CHECK(run_until(&loop, &d.called, 60000));
    CHECK_INT(d.rc, XE_INVAL);
    CHECK_INT(r.n_applied, 7);
    rnode_get_status(rn, &st);
    CHECK_INT(st.submitted, 8);
    CHECK_INT(st.committed, 7);
    CHECK_INT(st.pending, 0);
    rnode_close(rn);
    finish_loop(&loop);

    /* restart from the directory: the same state */
    REQUIRE(uv_loop_init(&loop) == 0);
    memset(&r, 0, sizeof r);
    REQUIRE(open_node(&loop, dir, 0xA1, "127.0.0.1:5224", &r, NULL, 0, &rn) == 0);
    CHECK(cl_cluster_id(rnode_state(rn)) == cid);
    CHECK_STR(cl_domain(rnode_state(rn)), "example.com");
    CHECK_INT(cl_callbridge_count(rnode_state(rn)), 1);
    {
        const struct cl_callbridge *cb = cl_callbridge_find(rnode_state(rn), "cb1");
        REQUIRE(cb != NULL);
        CHECK(cb->secret_len == 3 && memcmp(cb->secret, "n3w", 3) == 0);
    }
    CHECK(rnode_is_leader(rn));
    cl_cmd_cb_set(&cmd, "cb3", (const unsigned char *)"y", 1, true);
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    CHECK_INT(r.n_applied, 1);
    rnode_close(rn);
    finish_loop(&loop);
}

static void test_snapshots(void)
{
    uv_loop_t loop;
    char dir[128], name[16];
    struct rnode *rn;
    struct rec r = {0};
    struct rnode_status st;

    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(open_node(&loop, dir, 0xB2, "127.0.0.2:5224", &r, NULL, 8, &rn) == 0);
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof name, "cb%d", i);
        cl_cmd_cb_set(&cmd, name, (const unsigned char *)name, strlen(name), true);
        CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    }
    cl_cmd_cb_del(&cmd, "cb7");
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    rnode_get_status(rn, &st);
    CHECK(st.snapshots >= 3);
    CHECK(st.snapshot_index > 8);
    rnode_close(rn);
    finish_loop(&loop);

    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(open_node(&loop, dir, 0xB2, "127.0.0.2:5224", &r, NULL, 8, &rn) == 0);
    CHECK_INT(cl_callbridge_count(rnode_state(rn)), 29);
    CHECK(cl_callbridge_find(rnode_state(rn), "cb7") == NULL);
    CHECK(cl_callbridge_find(rnode_state(rn), "cb29") != NULL);
    CHECK(cl_cluster_id(rnode_state(rn)) != 0);
    rnode_get_status(rn, &st);
    CHECK(st.snapshot_index > 0);
    rnode_close(rn);
    finish_loop(&loop);
}

/* A store whose fsync fails once fail_fsync is set. */
static bool fail_fsync;

static int bad_fsync(int fd)
{
    if (fail_fsync) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static void test_failing_store(void)
{
    uv_loop_t loop;
    char dir[128];
    struct rnode *rn;
    struct rec r = {0};
    struct store_sys sys = store_sys_posix;
    struct rnode_status st;
    struct done d = {0};
    unsigned char *buf;
    size_t len;

    sys.fsync = bad_fsync;
    fail_fsync = false;
    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(open_node(&loop, dir, 0xC3, "127.0.0.3:5224", &r, &sys, 0, &rn) == 0);
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"a", 1, true);
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);

    fail_fsync = true;
    cl_cmd_cb_set(&cmd, "cb2", (const unsigned char *)"b", 1, true);
    CHECK_INT(submit_wait(&loop, rn, 30000), XE_IO);
    CHECK_INT(r.n_failed, 1);
    CHECK_INT(r.failed_rc, XE_IO);
    CHECK(cl_callbridge_find(rnode_state(rn), "cb2") == NULL);
    rnode_get_status(rn, &st);
    CHECK_INT(st.role, RAFT_STOPPED);
    CHECK_INT(st.stop_error, XE_IO);
    CHECK(strstr(st.stop_reason, "storage failed") != NULL);
    CHECK(!rnode_is_leader(rn));

    /* later submits fail at once, even once the disk is fine again */
    fail_fsync = false;
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    rnode_submit(rn, buf, len, 30000, on_done, &d);
    cl_buf_free(buf, len);
    CHECK(d.called);
    CHECK_INT(d.rc, XE_IO);
    CHECK(strstr(d.msg, "storage failed") != NULL);
    rnode_close(rn);
    finish_loop(&loop);

    /* a store that fails from the start: rnode_open refuses, says why */
    fail_fsync = true;
    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    rn = NULL;
    CHECK_INT(open_node(&loop, dir, 0xC3, "127.0.0.3:5224", &r, &sys, 0, &rn), XE_IO);
    CHECK(rn == NULL);
    fail_fsync = false;
    finish_loop(&loop);
}

/* A callback that submits again: the nested submit is queued while the
 * first is being settled, then committed; during rnode_close it is refused
 * with XE_CLOSED. */
struct chain {
    struct rnode *rn;
    unsigned char *buf;
    size_t len;
    struct done first, second;
};

static void on_first(void *arg, int rc, const char *msg)
{
    struct chain *c = arg;

    on_done(&c->first, rc, msg);
    rnode_submit(c->rn, c->buf, c->len, 30000, on_done, &c->second);
}

static void test_no_leader_timeout(void)
{
    uv_loop_t loop;
    char dir[128], err[256];
    struct rnode *rn;
    struct rnode_opts o;
    struct done d = {0};
    unsigned char *buf;
    size_t len;
    uint64_t t0;

    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    rnode_opts_default(&o);
    o.dir = dir;
    o.node_id = 0xD4;
    o.peer_addr = "127.0.0.4:5224";
    o.start = RNODE_JOIN;
    /* an empty store to join needs the cluster id */
    CHECK_INT(rnode_open(&loop, &o, NULL, NULL, &rn, err, sizeof err), XE_INVAL);
    CHECK(strstr(err, "cluster id") != NULL);
    o.cluster_id = 77;
    REQUIRE(rnode_open(&loop, &o, NULL, NULL, &rn, err, sizeof err) == 0);
    CHECK(!rnode_is_leader(rn));
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"a", 1, true);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    rnode_submit(rn, buf, len, 100, on_done, &d);
    cl_buf_free(buf, len);
    CHECK(!d.called);
    CHECK(run_until(&loop, &d.called, 60000));
    CHECK_INT(d.rc, XE_NOLEADER);
    CHECK(uv_now(&loop) - t0 >= 100);
    CHECK(strstr(d.msg, "no cluster leader") != NULL);

    /* close answers what is still pending, and refuses what its callbacks
     * submit */
    {
        static struct chain c;
        memset(&c, 0, sizeof c);
        c.rn = rn;
        REQUIRE(cl_cmd_encode(&cmd, &c.buf, &c.len) == 0);
        rnode_submit(rn, c.buf, c.len, 10000, on_first, &c);
        CHECK(!c.first.called);
        rnode_close(rn);
        CHECK(c.first.called && c.first.times == 1);
        CHECK_INT(c.first.rc, XE_CLOSED);
        CHECK(c.second.called && c.second.times == 1);
        CHECK_INT(c.second.rc, XE_CLOSED);
        cl_buf_free(c.buf, c.len);
    }
    finish_loop(&loop);
}

static void test_reentrant(void)
{
    uv_loop_t loop;
    char dir[128];
    struct rec r = {0};
    static struct chain c;
    unsigned char *b1;
    size_t l1;

    memset(&c, 0, sizeof c);
    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(open_node(&loop, dir, 0xE5, "127.0.0.5:5224", &r, NULL, 0, &c.rn) == 0);
    cl_cmd_cb_set(&cmd, "first", (const unsigned char *)"1", 1, true);
    REQUIRE(cl_cmd_encode(&cmd, &b1, &l1) == 0);
    cl_cmd_cb_set(&cmd, "second", (const unsigned char *)"2", 1, true);
    REQUIRE(cl_cmd_encode(&cmd, &c.buf, &c.len) == 0);
    rnode_submit(c.rn, b1, l1, 30000, on_first, &c);
    CHECK(run_until(&loop, &c.second.called, 60000));
    CHECK_INT(c.first.rc, 0);
    CHECK_INT(c.second.rc, 0);
    CHECK_INT(c.second.times, 1);
    CHECK(cl_callbridge_find(rnode_state(c.rn), "second") != NULL);

    rnode_close(c.rn);
    finish_loop(&loop);
    cl_buf_free(b1, l1);
    cl_buf_free(c.buf, c.len);
}

/* ---- three nodes over an in-process transport ---- */

#define NN 3

struct net;

struct tnode {
    struct net *net;
    int idx;
    uint64_t id;
    char addr[32];
    char dir[128];
    struct rnode *rn;
    struct rec rec;
    bool down; /* messages to it are dropped */
};

struct qmsg {
    struct qmsg *next;
    int to;
    uint64_t from;
    unsigned char *buf;
    size_t len;
};

struct net {
    uv_loop_t loop;
    uv_idle_t idle;
    struct tnode n[NN];
    struct qmsg *head, **tail;
    bool forward;
    int forwarded;
};

static void deliver(uv_idle_t *h);

static int t_send(void *ud, uint64_t to_id, const char *to_addr,
                  const struct raft_message *m)
{
    struct tnode *self = ud;
    struct net *net = self->net;
    struct qmsg *q;
    size_t need = codec_encoded_size(m);
    int to = -1;

    for (int i = 0; i < NN; i++)
        if (net->n[i].id == to_id)
            to = i;
    /* to_addr is "" while a joining node does not know the configuration
     * yet: the peer link answers on the link the request came from. */
    if (to < 0 || (to_addr[0] != '\0' && strcmp(to_addr, net->n[to].addr) != 0))
        TL_FAIL_("send to %" PRIx64 " at '%s': unknown", to_id, to_addr);
    if (to < 0 || need == 0)
        return XE_INVAL;
    /* encode: the message is borrowed, and the peer link will do the same */
    q = calloc(1, sizeof *q);
    q->buf = malloc(need);
    q->to = to;
    q->from = self->id;
    if (codec_encode(m, q->buf, need, &q->len) != 0) {
        TL_FAIL_("codec_encode failed");
        free(q->buf);
        free(q);
        return XE_INVAL;
    }
    *net->tail = q;
    net->tail = &q->next;
    uv_idle_start(&net->idle, deliver);
    return 0;
}

static void deliver(uv_idle_t *h)
{
    struct net *net = h->data;
    struct qmsg *q = net->head;

    if (q == NULL) {
        uv_idle_stop(h);
        return;
    }
    net->head = q->next;
    if (net->head == NULL)
        net->tail = &net->head;
    if (!net->n[q->to].down && net->n[q->to].rn != NULL) {
        struct codec_msg cm;
        if (codec_decode(q->buf, q->len, &cm) == 0) {
            CHECK_INT(rnode_receive(net->n[q->to].rn, q->from, &cm.msg), 0);
            codec_msg_free(&cm);
        } else {
            TL_FAIL_("codec_decode failed");
        }
    }
    free(q->buf);
    free(q);
}

/* t_forward stands in for the peer link: submits on the leader directly. */
static int t_forward(void *ud, uint64_t leader_id, const char *leader_addr, const void *c,
                     size_t len, uint64_t timeout_ms, rnode_done_cb cb, void *arg)
{
    struct tnode *self = ud;
    struct net *net = self->net;

    (void)leader_addr;
    if (!net->forward)
        return XE_UNSUPPORTED;
    for (int i = 0; i < NN; i++) {
        if (net->n[i].id == leader_id && net->n[i].rn != NULL) {
            net->forwarded++;
            rnode_submit(net->n[i].rn, c, len, timeout_ms, cb, arg);
            return 0;
        }
    }
    return XE_NOLEADER;
}

static int open_tnode(struct net *net, int i, enum rnode_start start, uint64_t cluster_id)
{
    struct tnode *t = &net->n[i];
    struct rnode_opts o;
    struct rnode_hooks h = {.ud = t, .send = t_send, .forward_submit = t_forward};
    char err[256] = "";
    int rc;

    (void)h_applied;
    rnode_opts_default(&o);
    o.dir = t->dir;
    o.name = t->addr;
    o.node_id = t->id;
    o.peer_addr = t->addr;
    o.start = start;
    o.cluster_id = cluster_id;
    o.fast_lan = true;
    rc = rnode_open(&net->loop, &o, &h, NULL, &t->rn, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  rnode_open: %s\n", err);
    return rc;
}

static void change_wait(struct net *net, int on, enum rnode_change_kind kind, int who,
                        int want)
{
    struct rnode_change c = {.kind = kind,
                             .id = net->n[who].id,
                             .address = net->n[who].addr,
                             .timeout_ms = 30000};
    struct done d = {0};

    rnode_change(net->n[on].rn, &c, on_done, &d);
    CHECK(run_until(&net->loop, &d.called, 60000));
    if (d.rc != want)
        TL_FAIL_("change kind %d of node %d: %s (%s), want %s", kind, who, xe_name(d.rc),
                 d.msg, xe_name(want));
}

static void test_three_nodes(void)
{
    static struct net net; /* big: static */
    uint64_t cid;
    struct done d = {0};
    unsigned char *buf;
    size_t len;
    const struct raft_config *cfg;

    memset(&net, 0, sizeof net);
    net.tail = &net.head;
    REQUIRE(uv_loop_init(&net.loop) == 0);
    uv_idle_init(&net.loop, &net.idle);
    net.idle.data = &net;
    for (int i = 0; i < NN; i++) {
        net.n[i].net = &net;
        net.n[i].idx = i;
        net.n[i].id = 0x100 + (uint64_t)i;
        snprintf(net.n[i].addr, sizeof net.n[i].addr, "127.0.0.%d:5224", i + 1);
        new_dir(net.n[i].dir, sizeof net.n[i].dir);
    }
    REQUIRE(open_tnode(&net, 0, RNODE_BOOTSTRAP, 0) == 0);
    cid = cl_cluster_id(rnode_state(net.n[0].rn));
    REQUIRE(open_tnode(&net, 1, RNODE_JOIN, cid) == 0);
    REQUIRE(open_tnode(&net, 2, RNODE_JOIN, cid) == 0);

    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"one", 3, true);
    CHECK_INT(submit_wait(&net.loop, net.n[0].rn, 30000), 0);

    change_wait(&net, 0, RNODE_CHANGE_ADD, 1, 0);
    change_wait(&net, 0, RNODE_CHANGE_ADD, 2, 0);
    /* the same address under another id is refused, naming the holder */
    {
        struct rnode_change c = {
            .kind = RNODE_CHANGE_ADD, .id = 0x999, .address = net.n[1].addr};
        memset(&d, 0, sizeof d);
        rnode_change(net.n[0].rn, &c, on_done, &d);
        CHECK(run_until(&net.loop, &d.called, 60000));
        CHECK_INT(d.rc, XE_EXISTS);
        CHECK(strstr(d.msg, "0000000000000101") != NULL);
    }
    cfg = rnode_config(net.n[0].rn);
    CHECK_INT(cfg->n, 3);
    CHECK_INT(raft_config_voters(cfg), 3);

    /* a write on the leader reaches every node */
    cl_cmd_cb_set(&cmd, "cb2", (const unsigned char *)"two", 3, true);
    CHECK_INT(submit_wait(&net.loop, net.n[0].rn, 30000), 0);
    {
        bool all = false;
        for (int round = 0; round < 1500 && !all; round++) {
            all = true;
            for (int i = 0; i < NN; i++)
                all &= cl_callbridge_find(rnode_state(net.n[i].rn), "cb2") != NULL;
            if (!all)
                wait_ms(&net.loop, 20);
        }
        CHECK(all);
        for (int i = 1; i < NN; i++)
            CHECK(cl_cluster_id(rnode_state(net.n[i].rn)) == cid);
    }

    /* a follower without forwarding refuses, naming the leader */
    cl_cmd_cb_set(&cmd, "cb3", (const unsigned char *)"three", 5, true);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    memset(&d, 0, sizeof d);
    rnode_submit(net.n[1].rn, buf, len, 30000, on_done, &d);
    CHECK(run_until(&net.loop, &d.called, 60000));
    CHECK_INT(d.rc, XE_UNSUPPORTED);
    /* with forwarding, the leader commits it */
    net.forward = true;
    memset(&d, 0, sizeof d);
    rnode_submit(net.n[1].rn, buf, len, 30000, on_done, &d);
    CHECK(run_until(&net.loop, &d.called, 60000));
    CHECK_INT(d.rc, 0);
    CHECK_INT(net.forwarded, 1);
    cl_buf_free(buf, len);

    /* leadership transfer */
    memset(&d, 0, sizeof d);
    rnode_transfer(net.n[0].rn, net.n[2].id, 30000, on_done, &d);
    CHECK(run_until(&net.loop, &d.called, 60000));
    CHECK_INT(d.rc, 0);
    {
        bool led = false;
        for (int round = 0; round < 1500 && !led; round++) {
            led = rnode_is_leader(net.n[2].rn);
            if (!led)
                wait_ms(&net.loop, 20);
        }
        CHECK(led);
    }
    {
        struct rnode_status st;
        rnode_get_status(net.n[0].rn, &st);
        CHECK(st.leader_id == net.n[2].id);
        CHECK_STR(st.leader_addr, net.n[2].addr);
        CHECK_STR(st.last_change_reason, "leadership transfer");
        /* the new leader and the third member say so too */
        rnode_get_status(net.n[2].rn, &st);
        CHECK_STR(st.last_change_reason, "leadership transfer");
        CHECK(st.last_change_new_term > st.last_change_old_term);
        for (int round = 0; round < 1500; round++) {
            rnode_get_status(net.n[1].rn, &st);
            if (st.leader_id == net.n[2].id)
                break;
            wait_ms(&net.loop, 20);
        }
        CHECK(st.leader_id == net.n[2].id);
        CHECK_STR(st.last_change_reason, "leadership transfer");
    }
    /* Standby (a drained node): n1 goes on standby from inside one of its
     * own callbacks; a transfer to any voter from n2 then passes n1 over
     * (it ignores TimeoutNow) and ends on n0.  Three times, since without
     * standby n1 and n0 are equally likely targets. */
    {
        static struct standby_done sd;
        memset(&sd, 0, sizeof sd);
        sd.rn = net.n[1].rn;
        cl_cmd_cb_set(&cmd, "cb4", (const unsigned char *)"four", 4, true);
        REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
        rnode_submit(net.n[1].rn, buf, len, 30000, on_done_standby, &sd);
        CHECK(run_until(&net.loop, &sd.d.called, 60000));
        CHECK_INT(sd.d.rc, 0);
        cl_buf_free(buf, len);
        for (int round = 0, from = 2; round < 3; round++) {
            int to = -1;
            memset(&d, 0, sizeof d);
            rnode_transfer(net.n[from].rn, 0, 30000, on_done, &d);
            CHECK(run_until(&net.loop, &d.called, 60000));
            CHECK_INT(d.rc, 0);
            for (int w = 0; w < 1500 && to < 0; w++) {
                for (int i = 0; i < NN; i++)
                    if (i != from && rnode_is_leader(net.n[i].rn))
                        to = i;
                if (to < 0)
                    wait_ms(&net.loop, 20);
            }
            CHECK(to >= 0 && to != 1);
            if (to < 0 || to == 1)
                break;
            from = to;
        }
        /* back to n2 for what follows */
        for (int i = 0; i < NN; i++) {
            if (i == 2 || !rnode_is_leader(net.n[i].rn))
                continue;
            memset(&d, 0, sizeof d);
            rnode_transfer(net.n[i].rn, net.n[2].id, 30000, on_done, &d);
            CHECK(run_until(&net.loop, &d.called, 60000));
            CHECK_INT(d.rc, 0);
        }
        for (int round = 0; round < 1500 && !rnode_is_leader(net.n[2].rn); round++)
            wait_ms(&net.loop, 20);
        REQUIRE(rnode_is_leader(net.n[2].rn));
    }
    /* remove a member from the new leader */
    change_wait(&net, 2, RNODE_CHANGE_REMOVE, 1, 0);
    CHECK_INT(rnode_config(net.n[2].rn)->n, 2);

    for (int i = 0; i < NN; i++) {
        rnode_close(net.n[i].rn);
        net.n[i].rn = NULL;
    }
    while (net.head != NULL)
        deliver(&net.idle);
    uv_close((uv_handle_t *)&net.idle, NULL);
    finish_loop(&net.loop);
}

/* An entry written by a newer xmppd (a command version
 * this build does not know) stops the applier with the reason, and the log
 * keeps the entry for the upgraded build. */
static void test_newer_entry_stops(void)
{
    uv_loop_t loop;
    char dir[128];
    struct rnode *rn;
    struct rec r = {0};
    struct store *sto;
    struct store_loaded ld;
    static unsigned char v9[] = {9, 4, 0, 2, 'c', 'b'}; /* CB_DEL "cb", version 9 */
    struct raft_entry e;
    uint64_t last;

    new_dir(dir, sizeof dir);
    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(open_node(&loop, dir, 0xA1, "127.0.0.1:5224", &r, NULL, 0, &rn) == 0);
    cl_cmd_set_domain(&cmd, "example.com");
    CHECK_INT(submit_wait(&loop, rn, 30000), 0);
    rnode_close(rn);
    finish_loop(&loop);

    /* a newer leader's entry, appended to the log as replication would */
    REQUIRE(store_open(dir, NULL, &sto, &ld) == 0);
    REQUIRE(ld.n_entries > 0);
    last = ld.entries[ld.n_entries - 1].index;
    e.index = last + 1;
    e.term = ld.term;
    e.type = RAFT_ENTRY_NORMAL;
    e.data.base = v9;
    e.data.len = sizeof v9;
    REQUIRE(store_append(sto, &e, 1) == 0);
    store_loaded_free(&ld);
    store_close(sto);

    /* A single voter commits its whole log at start: the node refuses to
     * start, with the reason (a member that learns the commit from its
     * leader stops the same way while running: STOPPED in its status) */
    REQUIRE(uv_loop_init(&loop) == 0);
    memset(&r, 0, sizeof r);
    {
        struct rnode_opts o;
        struct rnode_hooks h = {.ud = &r, .applied = h_applied, .failed = h_failed};
        char err[256] = "";
        rnode_opts_default(&o);
        o.dir = dir;
        o.name = "t";
        o.node_id = 0xA1;
        o.peer_addr = "127.0.0.1:5224";
        CHECK(rnode_open(&loop, &o, &h, NULL, &rn, err, sizeof err) < 0);
        CHECK(strstr(err, "written by a newer xmppd") != NULL);
        CHECK(strstr(err, "upgrade this node") != NULL);
    }
    finish_loop(&loop);

    /* the log still holds it */
    REQUIRE(store_open(dir, NULL, &sto, &ld) == 0);
    REQUIRE(ld.n_entries > 0);
    {
        int found = 0;
        for (unsigned i = 0; i < ld.n_entries; i++)
            found += ld.entries[i].data.len == sizeof v9 &&
                     memcmp(ld.entries[i].data.base, v9, sizeof v9) == 0;
        CHECK_INT(found, 1);
    }
    store_loaded_free(&ld);
    store_close(sto);
}

TL_MAIN(T(test_bootstrap_submit_restart), T(test_snapshots), T(test_failing_store),
        T(test_no_leader_timeout), T(test_reentrant), T(test_three_nodes),
        T(test_newer_entry_stops))
