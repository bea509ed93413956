/* test_fwd.c: end-to-end forwarding on an in-memory cluster: normal
 * forwarding, leader crash with replay and no duplicate, the no-leader
 * queue and its overflow, session takeover, bounces, order across leader
 * changes, and seeded randomized runs checking exactly-once in-order
 * delivery between surviving nodes.
 *
 * The "network" is a FIFO per directed pair of nodes carrying pframe
 * encodings (what pchan gives fwd: each link in order, nothing lost while
 * both processes live).  A crash loses the frames to and from the node. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fwd.h"
#include "pchan.h"
#include "pframe.h"
#include "testlib.h"

#define NMAX 5
#define MAXGOT 8192

struct q {
    struct buf *items;
    size_t head, n, cap;
};

struct got {
    char from[64], to[64];
    int id;
    bool error; /* an error stanza (a bounce) */
};

struct node {
    int idx;
    uint64_t id;
    uint64_t inc;
    bool alive;
    struct fwd *f;
    struct got got[MAXGOT];
    size_t ngot;
    char conflict_name[64];
    uint64_t conflict_since;
    int conflicts;
    char locals[4][64]; /* component names held here */
    int nlocals;
    bool busy_to[NMAX + 1]; /* send to that node refused */
};

static struct node nodes[NMAX + 1]; /* 1-based */
static int nnodes;
static struct q net[NMAX + 1][NMAX + 1];
static uint64_t now;
static uint64_t inc_counter = 100;
static bool trace;

static void trace_write(void *ud, enum log_level level, const char *line)
{
    fprintf(stderr, "  [%s] %s\n", log_level_name(level), line);
}

static struct log_sink trace_sink = {LOG_TRACE, trace_write, NULL};

static void q_push(struct q *q, const struct buf *b)
{
    if (q->head + q->n == q->cap) {
        if (q->head > 0) {
            memmove(q->items, q->items + q->head, q->n * sizeof *q->items);
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 64;
            q->items = realloc(q->items, q->cap * sizeof *q->items);
        }
    }
    q->items[q->head + q->n++] = *b;
}

static void q_clear(struct q *q)
{
    for (size_t i = 0; i < q->n; i++)
        buf_free(&q->items[q->head + i]);
    q->head = q->n = 0;
}

static void q_free(struct q *q)
{
    q_clear(q);
    free(q->items);
    memset(q, 0, sizeof *q);
}

static int idx_of(uint64_t id)
{
    for (int i = 1; i <= nnodes; i++)
        if (nodes[i].id == id)
            return i;
    return 0;
}

/* With use_pchan, links are real pchans over byte wires (xmpp/plink.h and
 * the pchan section below). */
#define PLINK_NMAX NMAX
#include "xmpp/plink.h"

static uint64_t plink_id(int i)
{
    return nodes[i].id;
}

static bool plink_alive(int i)
{
    return nodes[i].alive;
}

static void plink_reset(int j, int i)
{
    fwd_peer_reset(nodes[j].f, nodes[i].id, now);
}

static int plink_input(int j, int i, const struct pframe *fr)
{
    return fwd_input(nodes[j].f, nodes[i].id, fr, now);
}

static void plink_pump(int j)
{
    fwd_pump(nodes[j].f, now);
}

static bool use_pchan;

static int env_send(void *ud, uint64_t to, struct pframe *f)
{
    struct node *n = ud;
    int t = idx_of(to);
    struct buf b = {0};

    if (t == 0 || n->busy_to[t])
        return XE_BUSY;
    if (use_pchan)
        return pchan_send(pl[n->idx][t].ch, f, &pl[n->idx][t].out);
    f->chan_seq = 1; /* pchan numbers it; any non-zero value encodes */
    if (pframe_encode(f, &b) != 0)
        abort();
    q_push(&net[n->idx][t], &b);
    return 0;
}

static int env_deliver(void *ud, const char *from, const char *to, const char *xml,
                       size_t len)
{
    struct node *n = ud;
    const char *at = strchr(to, '@');
    const char *dom = at ? at + 1 : to;
    bool held = false;
    struct got *g;

    for (int i = 0; i < n->nlocals; i++)
        if (strcmp(n->locals[i], dom) == 0)
            held = true;
    if (!held)
        return XE_NOTFOUND;
    if (n->ngot == MAXGOT)
        abort();
    g = &n->got[n->ngot++];
    snprintf(g->from, sizeof g->from, "%s", from);
    snprintf(g->to, sizeof g->to, "%s", to);
    const char *p = strstr(xml, " id='");
    g->id = p ? atoi(p + 5) : -1;
    g->error = strstr(xml, "type='error'") != NULL;
    if (trace)
        fprintf(stderr, "deliver n%d %s -> %s id %d\n", n->idx, from, to, g->id);
    (void)len;
    return 0;
}

static void env_conflict(void *ud, const char *name, uint64_t since)
{
    struct node *n = ud;

    snprintf(n->conflict_name, sizeof n->conflict_name, "%s", name);
    n->conflict_since = since;
    n->conflicts++;
}

static void node_start(int i, const struct fwd_config *base)
{
    struct node *n = &nodes[i];
    struct fwd_config cfg = *base;
    struct fwd_env env = {n, env_send, env_deliver, env_conflict,
                          trace ? &trace_sink : NULL};
    char name[16];
    uint64_t ids[NMAX];

    memset(n, 0, sizeof *n);
    n->idx = i;
    n->id = 0x1000 + (uint64_t)i;
    n->inc = ++inc_counter;
    n->alive = true;
    cfg.node_id = n->id;
    cfg.incarnation = n->inc;
    snprintf(name, sizeof name, "n%d", i);
    cfg.name = name;
    if (fwd_new(&cfg, &env, &n->f) != 0)
        abort();
    for (int k = 0; k < nnodes; k++)
        ids[k] = 0x1000 + (uint64_t)k + 1;
    fwd_set_members(n->f, ids, (size_t)nnodes);
    for (int j = 1; use_pchan && j <= nnodes; j++)
        pl_open(i, j, n->inc);
}

static void cluster_start(int n, const struct fwd_config *cfg)
{
    struct fwd_config def;

    if (cfg == NULL) {
        fwd_config_default(&def);
        cfg = &def;
    }
    nnodes = n;
    now = 1000;
    proto_errors = 0;
    for (int i = 1; i <= n; i++)
        node_start(i, cfg);
}

static void cluster_stop(void)
{
    for (int i = 1; i <= nnodes; i++) {
        fwd_free(nodes[i].f);
        nodes[i].f = NULL;
        for (int k = 1; k <= nnodes; k++)
            q_free(&net[i][k]);
    }
}

/* deliver_one moves the first frame of link a->b; false when empty. */
static bool deliver_one(int a, int b)
{
    struct q *q = &net[a][b];
    struct buf item;
    struct pframe fr;

    if (q->n == 0)
        return false;
    item = q->items[q->head++];
    q->n--;
    if (pframe_decode(item.data + 4, item.len - 4, &fr) != 0)
        abort();
    if (nodes[b].alive && fwd_input(nodes[b].f, nodes[a].id, &fr, now) == XE_PROTO)
        proto_errors++;
    pframe_release(&fr);
    buf_free(&item);
    return true;
}

static void run(void)
{
    bool any = true;

    while (any) {
        any = false;
        for (int a = 1; a <= nnodes; a++)
            for (int b = 1; b <= nnodes; b++)
                any |= deliver_one(a, b);
    }
}

static uint64_t term;

static void set_leader_all(int leader)
{
    term++;
    for (int i = 1; i <= nnodes; i++)
        if (nodes[i].alive)
            fwd_set_leader(nodes[i].f, leader ? nodes[leader].id : 0, term, now);
}

static void add_local(int i, const char *name, uint64_t since)
{
    struct node *n = &nodes[i];

    snprintf(n->locals[n->nlocals++], 64, "%s", name);
    CHECK_INT(fwd_local_add(n->f, name, since, now), 0);
}

static int send_msg(int i, const char *from, const char *to, int id)
{
    char xml[256];
    int len = snprintf(xml, sizeof xml,
                       "<message from='%s' to='%s' id='%d'><body>%d</body></message>",
                       from, to, id, id);
    return fwd_send(nodes[i].f, from, to, xml, (size_t)len, now);
}

/* in_order: node i received ids 1..n from 'from', once each, in order. */
static bool in_order(int i, const char *from, int n)
{
    int next = 1;

    for (size_t k = 0; k < nodes[i].ngot; k++) {
        const struct got *g = &nodes[i].got[k];
        if (strcmp(g->from, from) != 0)
            continue;
        if (g->error || g->id != next) {
            fprintf(stderr, "node %d from %s: got id %d (error %d), expected %d\n", i,
                    from, g->id, g->error, next);
            return false;
        }
        next++;
    }
    if (next != n + 1)
        fprintf(stderr, "node %d from %s: got %d of %d\n", i, from, next - 1, n);
    return next == n + 1;
}

static uint64_t waiting(int i)
{
    struct fwd_stats st;

    fwd_get_stats(nodes[i].f, &st);
    return st.waiting;
}

static void test_normal_forwarding(void)
{
    struct fwd_stats st;

    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    add_local(2, "cb2.example.com", 11);
    add_local(3, "cb3.example.com", 12);
    run();
    CHECK_INT(fwd_route_lookup(nodes[2].f, "cb1.example.com"), nodes[1].id);
    CHECK_INT(fwd_route_lookup(nodes[2].f, "room.cb3.example.com"), nodes[3].id);
    CHECK_INT(fwd_route_lookup(nodes[2].f, "xcb3.example.com"), 0);
    for (int k = 1; k <= 100; k++) {
        CHECK_INT(send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k), 0);
        CHECK_INT(send_msg(2, "c@cb2.example.com", "d@cb1.example.com", k), 0);
        CHECK_INT(send_msg(3, "e@cb3.example.com", "e@cb3.example.com", k), 0);
        if (k % 7 == 0)
            run();
    }
    run();
    CHECK(in_order(3, "a@cb1.example.com", 100));
    CHECK(in_order(1, "c@cb2.example.com", 100)); /* from the leader */
    CHECK(in_order(3, "e@cb3.example.com", 100)); /* to itself, through the leader */
    for (int i = 1; i <= 3; i++)
        CHECK_INT(waiting(i), 0);
    fwd_get_stats(nodes[2].f, &st);
    CHECK_INT(st.routed, 300);
    CHECK_INT(st.routes, 3);
    fwd_get_stats(nodes[1].f, &st);
    CHECK_INT(st.forwarded, 100);
    CHECK_INT(st.delivered, 100);
    CHECK_INT(st.duplicates + st.bounced + st.replayed, 0);
    CHECK_INT(proto_errors, 0);
    cluster_stop();
}

static void crash(int i)
{
    nodes[i].alive = false;
    for (int k = 1; k <= nnodes; k++) {
        q_clear(&net[i][k]);
        q_clear(&net[k][i]);
    }
}

/* The leader dies with stanzas in flight: some delivered, some acked, some
 * neither.  Everything unacked is replayed to the new leader; nothing is
 * delivered twice and order holds. */
static void test_leader_crash_replay(void)
{
    struct fwd_stats st;

    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    add_local(3, "cb3.example.com", 12);
    run();
    for (int k = 1; k <= 50; k++)
        send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k);
    /* The leader routes 30, node 3 delivers 20 and its ACKs for 10 reach
     * node 1. */
    for (int k = 0; k < 30; k++)
        deliver_one(1, 2);
    for (int k = 0; k < 20; k++)
        deliver_one(2, 3);
    for (int k = 0; k < 10; k++)
        deliver_one(3, 1);
    CHECK_INT(waiting(1), 40);
    crash(2);
    set_leader_all(3);
    for (int k = 51; k <= 60; k++)
        send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k);
    run();
    CHECK(in_order(3, "a@cb1.example.com", 60));
    CHECK_INT(waiting(1), 0);
    fwd_get_stats(nodes[1].f, &st);
    CHECK_INT(st.replayed, 40);
    fwd_get_stats(nodes[3].f, &st);
    CHECK_INT(st.duplicates, 10); /* delivered via the old leader, not acked */
    CHECK_INT(st.delivered, 60);
    CHECK_INT(proto_errors, 0);
    fwd_free(nodes[2].f);
    nodes[2].f = NULL;
    cluster_stop();
}

/* A deposed leader that is still alive keeps pushing what it had: stale
 * copies race with the replay through the new leader. */
static void test_deposed_leader_races_replay(void)
{
    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    add_local(3, "cb3.example.com", 12);
    run();
    for (int k = 1; k <= 20; k++)
        send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k);
    for (int k = 0; k < 20; k++)
        deliver_one(1, 2); /* node 2 sent 20 DELIVERs, none arrived yet */
    term++;
    fwd_set_leader(nodes[1].f, nodes[3].id, term, now);
    fwd_set_leader(nodes[3].f, nodes[3].id, term, now);
    /* Node 3 as new leader gets node 1's report and replays first. */
    for (int k = 21; k <= 25; k++)
        send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k);
    while (deliver_one(1, 3) || deliver_one(3, 1) || deliver_one(3, 3))
        ;
    fwd_set_leader(nodes[2].f, nodes[3].id, term, now);
    run(); /* now the stale DELIVERs from node 2 arrive */
    CHECK(in_order(3, "a@cb1.example.com", 25));
    CHECK_INT(waiting(1), 0);
    CHECK_INT(proto_errors, 0);
    cluster_stop();
}

static void test_no_leader_queue_and_overflow(void)
{
    struct fwd_config cfg;
    struct fwd_stats st;

    fwd_config_default(&cfg);
    cfg.queue_max = 16;
    cluster_start(3, &cfg);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    add_local(3, "cb3.example.com", 12);
    run();
    set_leader_all(0);
    for (int k = 1; k <= 16; k++)
        CHECK_INT(send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k), 0);
    CHECK_INT(send_msg(1, "a@cb1.example.com", "b@cb3.example.com", 17), XE_BUSY);
    run();
    CHECK_INT(nodes[3].ngot, 0);
    fwd_get_stats(nodes[1].f, &st);
    CHECK_INT(st.queued, 16);
    CHECK_INT(st.rejected, 1);
    CHECK_INT(st.waiting, 16);
    set_leader_all(3); /* a new leader: the queue drains */
    run();
    CHECK(in_order(3, "a@cb1.example.com", 16));
    CHECK_INT(waiting(1), 0);
    CHECK_INT(send_msg(1, "a@cb1.example.com", "b@cb3.example.com", 17), 0);
    run();
    CHECK(in_order(3, "a@cb1.example.com", 17));
    cluster_stop();
}

/* A call bridge reconnects to another node: the newer session wins
 * cluster-wide and the older one is told to close (conflict). */
static void test_session_takeover(void)
{
    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 100);
    add_local(3, "cb3.example.com", 100);
    run();
    add_local(3, "cb1.example.com", 200);
    run();
    CHECK_INT(nodes[1].conflicts, 1);
    CHECK_STR(nodes[1].conflict_name, "cb1.example.com");
    CHECK_INT(nodes[1].conflict_since, 100);
    CHECK_INT(fwd_route_lookup(nodes[2].f, "cb1.example.com"), nodes[3].id);
    /* The old session goes; its removal does not remove the winner. */
    nodes[1].nlocals = 0;
    CHECK_INT(fwd_local_del(nodes[1].f, "cb1.example.com", 100, now), 0);
    run();
    CHECK_INT(fwd_route_lookup(nodes[2].f, "cb1.example.com"), nodes[3].id);

    /* The newer session wins even when its report arrives first. */
    add_local(1, "cb9.example.com", 300);
    add_local(3, "cb9.example.com", 250); /* older, reported later */
    run();
    CHECK_INT(fwd_route_lookup(nodes[2].f, "cb9.example.com"), nodes[1].id);
    CHECK_INT(nodes[3].conflicts, 1);
    CHECK_STR(nodes[3].conflict_name, "cb9.example.com");

    /* A new leader learning both from full reports decides the same. */
    set_leader_all(3);
    run();
    CHECK_INT(fwd_route_lookup(nodes[3].f, "cb9.example.com"), nodes[1].id);
    CHECK_INT(fwd_route_lookup(nodes[3].f, "cb1.example.com"), nodes[3].id);
    CHECK_INT(nodes[3].conflicts, 2);
    CHECK_INT(nodes[3].conflict_since, 250);
    CHECK_INT(proto_errors, 0);
    cluster_stop();
}

static void test_bounce_unknown(void)
{
    struct fwd_stats st;

    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    run(); /* every member reported: the leader is warm */
    CHECK_INT(send_msg(1, "a@cb1.example.com", "b@nobody.example.com", 7), 0);
    run();
    REQUIRE(nodes[1].ngot == 1);
    CHECK(nodes[1].got[0].error);
    CHECK_STR(nodes[1].got[0].from, "b@nobody.example.com");
    CHECK_STR(nodes[1].got[0].to, "a@cb1.example.com");
    CHECK_INT(waiting(1), 0);
    CHECK_INT(waiting(2), 0);
    fwd_get_stats(nodes[2].f, &st);
    CHECK_INT(st.bounced, 1);

    /* An error is never answered with an error (RFC 6120 §8.3.1). */
    char xml[] = "<message from='a@cb1.example.com' to='b@nobody.example.com' "
                 "type='error' id='8'/>";
    CHECK_INT(fwd_send(nodes[1].f, "a@cb1.example.com", "b@nobody.example.com", xml,
                       strlen(xml), now),
              0);
    run();
    CHECK_INT(nodes[1].ngot, 1);
    CHECK_INT(waiting(1), 0);

    /* A session gone by the time the DELIVER arrives: the delivering node
     * bounces. */
    add_local(3, "cb3.example.com", 10);
    run();
    nodes[3].nlocals = 0; /* gone, not yet reported */
    send_msg(1, "a@cb1.example.com", "b@cb3.example.com", 9);
    run();
    CHECK_INT(nodes[1].ngot, 2);
    CHECK(nodes[1].got[1].error);
    CHECK_INT(nodes[1].got[1].id, 9);
    cluster_stop();
}

/* A new leader holds a stanza to a name whose node has not reported yet,
 * then routes it when the report comes; after the warmup it bounces. */
static void test_new_leader_holds_until_reports(void)
{
    struct fwd_stats st;

    cluster_start(3, NULL);
    add_local(1, "cb1.example.com", 10);
    add_local(3, "cb3.example.com", 10);
    term++;
    fwd_set_leader(nodes[2].f, nodes[2].id, term, now);
    fwd_set_leader(nodes[1].f, nodes[2].id, term, now);
    send_msg(1, "a@cb1.example.com", "b@cb3.example.com", 1);
    run();
    CHECK_INT(nodes[3].ngot, 0);
    fwd_get_stats(nodes[2].f, &st);
    CHECK_INT(st.held, 1);
    fwd_set_leader(nodes[3].f, nodes[2].id, term, now); /* node 3 reports */
    run();
    CHECK(in_order(3, "a@cb1.example.com", 1));

    /* Warm now; a name nobody has bounces at once. */
    send_msg(1, "a@cb1.example.com", "b@cb7.example.com", 2);
    run();
    CHECK_INT(nodes[1].ngot, 1);

    /* Held past the warmup: bounced by fwd_tick. */
    term++;
    fwd_set_leader(nodes[2].f, nodes[2].id, term, now);
    fwd_set_leader(nodes[1].f, nodes[2].id, term, now); /* node 3 not yet */
    send_msg(1, "a@cb1.example.com", "b@cb8.example.com", 3);
    run();
    CHECK_INT(nodes[1].ngot, 1);
    CHECK(fwd_next_deadline(nodes[2].f) <= now + 2000);
    now += 2000;
    fwd_tick(nodes[2].f, now);
    run();
    CHECK_INT(nodes[1].ngot, 2);
    CHECK(nodes[1].got[1].error);
    cluster_stop();
}

/* A full channel toward the holder: the sender gets wait/resource-constraint
 * instead of a silent drop; a full channel toward the leader: the origin
 * keeps the stanza and pumps it later. */
static void test_busy_channels(void)
{
    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    add_local(3, "cb3.example.com", 10);
    run();
    nodes[2].busy_to[3] = true;
    send_msg(1, "a@cb1.example.com", "b@cb3.example.com", 1);
    run();
    REQUIRE(nodes[1].ngot == 1);
    CHECK(nodes[1].got[0].error);
    nodes[2].busy_to[3] = false;

    nodes[1].busy_to[2] = true;
    for (int k = 2; k <= 5; k++)
        CHECK_INT(send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k), 0);
    run();
    CHECK_INT(nodes[3].ngot, 0);
    nodes[1].busy_to[2] = false;
    fwd_pump(nodes[1].f, now);
    run();
    CHECK_INT(nodes[3].ngot, 4);
    CHECK_INT(nodes[3].got[0].id, 2);
    CHECK_INT(nodes[3].got[3].id, 5);
    CHECK_INT(waiting(1), 0);
    cluster_stop();
}

/* An ACK refused by a full channel at the delivering node is kept, not
 * dropped: it goes out on the next fwd_pump (the edge pumps when a CHAN_ACK
 * frees room), with no resend and no duplicate. */
static void test_refused_ack_kept(void)
{
    struct fwd_stats st;

    cluster_start(3, NULL);
    set_leader_all(2);
    add_local(1, "cb1.example.com", 10);
    add_local(3, "cb3.example.com", 10);
    run();
    nodes[3].busy_to[1] = true;
    for (int k = 1; k <= 5; k++)
        send_msg(1, "a@cb1.example.com", "b@cb3.example.com", k);
    run();
    CHECK_INT(waiting(1), 5);
    fwd_get_stats(nodes[3].f, &st);
    CHECK_INT(st.acks_pending, 5);
    CHECK_INT(st.acks_dropped, 0);
    nodes[3].busy_to[1] = false;
    CHECK_INT(net[3][1].n, 0);
    fwd_pump(nodes[3].f, now);
    CHECK_INT(net[3][1].n, 1); /* one frame for the five */
    run();
    CHECK_INT(waiting(1), 0);
    CHECK(in_order(3, "a@cb1.example.com", 5));
    fwd_get_stats(nodes[3].f, &st);
    CHECK_INT(st.duplicates, 0);
    CHECK_INT(st.acks_pending, 0);
    fwd_get_stats(nodes[1].f, &st);
    CHECK_INT(st.replayed, 0);
    cluster_stop();
}

static void test_protocol_errors(void)
{
    struct pframe fr = {.type = PFRAME_FWD};

    cluster_start(3, NULL);
    set_leader_all(2);
    fr.chan_seq = 1;
    fr.u.fwd =
        (struct pframe_fwd){nodes[3].id, 5, 1, 1, "a@x.y", "b@x.y", "<message/>", 10};
    CHECK_INT(fwd_input(nodes[2].f, nodes[1].id, &fr, now), XE_PROTO); /* origin lies */
    fr.type = PFRAME_DELIVER;
    fr.u.fwd.seq = FWD_WINDOW + 5; /* beyond the window */
    CHECK_INT(fwd_input(nodes[1].f, nodes[2].id, &fr, now), XE_PROTO);
    fr.type = PFRAME_SESSIONS;
    fr.u.sessions = (struct pframe_sessions){nodes[3].id, 1, 1, true, NULL, 0, NULL, 0};
    CHECK_INT(fwd_input(nodes[2].f, nodes[1].id, &fr, now), XE_PROTO);
    fr.type = PFRAME_PING;
    CHECK_INT(fwd_input(nodes[2].f, nodes[1].id, &fr, now), XE_INVAL);
    CHECK_INT(fwd_send(nodes[1].f, "a@x.y", "b@x.y", "<a/>\0", 5, now), XE_INVAL);
    cluster_stop();
}

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Seeded runs on 5 nodes: components on nodes 1 and 2 exchange numbered
 * messages (and each sends to itself) while leadership moves at random
 * (also to no leader), links deliver in random interleavings, and nodes 3-5
 * crash and restart.  Nodes 1 and 2 survive: every message between them
 * must arrive exactly once, in order, with no bounce.
 * One function past 80 lines on purpose: the loop is one random choice per
 * step among the fault kinds, all sharing the run's counters (sent, next
 * expected), and reads best as the list of those kinds in one place. */
static void run_random(uint64_t seed, bool *ok)
{
    const char *snd[3] = {NULL, "u@cb1.example.com", "v@cb2.example.com"};
    const char *dst[3] = {NULL, "v@cb2.example.com", "u@cb1.example.com"};
    int sent[3] = {0}, self_sent[3] = {0}, per = 150;
    struct fwd_config cfg;
    int leader;

    rng = seed * 0x9e3779b97f4a7c15ULL + 1;
    leader = 1 + (int)(rnd() % 5);
    fwd_config_default(&cfg);
    cluster_start(5, &cfg);
    add_local(1, "cb1.example.com", 10);
    add_local(2, "cb2.example.com", 10);
    set_leader_all(leader);
    for (int step = 0; step < 3000; step++) {
        uint64_t r = rnd() % 100;
        now += 1 + rnd() % 3;
        if (r < 20) {
            int s = 1 + (int)(rnd() % 2);
            if (sent[s] < per && send_msg(s, snd[s], dst[s], sent[s] + 1) == 0)
                sent[s]++;
        } else if (r < 24) {
            int s = 1 + (int)(rnd() % 2);
            if (self_sent[s] < per && send_msg(s, snd[s], snd[s], self_sent[s] + 1) == 0)
                self_sent[s]++;
        } else if (r < 90) {
            int a = 1 + (int)(rnd() % 5), b = 1 + (int)(rnd() % 5);
            deliver_one(a, b);
        } else if (r < 95) {
            /* Leadership moves; nodes learn it one by one. */
            int nl = (int)(rnd() % 6); /* 0: no leader */
            if (nl != 0 && !nodes[nl].alive)
                nl = 0;
            term++;
            for (int i = 1; i <= 5; i++)
                if (nodes[i].alive && rnd() % 4 != 0) {
                    if (trace)
                        fprintf(stderr, "n%d learns leader n%d term %" PRIu64 "\n", i, nl,
                                term);
                    fwd_set_leader(nodes[i].f, nl ? nodes[nl].id : 0, term, now);
                }
            leader = nl;
        } else if (r < 97) {
            /* Crash a node among 3..5, and later restart it. */
            int c = 3 + (int)(rnd() % 3);
            if (trace)
                fprintf(stderr, "%s n%d\n", nodes[c].alive ? "crash" : "restart", c);
            if (nodes[c].alive) {
                crash(c);
                fwd_free(nodes[c].f);
                nodes[c].f = NULL;
                if (leader == c)
                    leader = 0;
            } else {
                /* What was sent to the dead process is gone with it (pchan
                 * discards it when the new incarnation says HELLO). */
                crash(c);
                node_start(c, &cfg);
                for (int i = 1; i <= 5; i++)
                    if (i != c && nodes[i].alive)
                        fwd_peer_reset(nodes[i].f, nodes[c].id, now);
                if (leader != 0)
                    fwd_set_leader(nodes[c].f, nodes[leader].id, term, now);
            }
        } else {
            for (int i = 1; i <= 5; i++)
                if (nodes[i].alive)
                    fwd_tick(nodes[i].f, now);
        }
    }
    /* Heal: a live leader everyone knows, time for resends. */
    if (leader == 0 || !nodes[leader].alive)
        leader = 1 + (int)(rnd() % 2);
    term++;
    for (int i = 1; i <= 5; i++)
        if (nodes[i].alive)
            fwd_set_leader(nodes[i].f, nodes[leader].id, term, now);
    for (int s = 1; s <= 2; s++) {
        while (sent[s] < per && send_msg(s, snd[s], dst[s], sent[s] + 1) == 0)
            sent[s]++;
        while (self_sent[s] < per && send_msg(s, snd[s], snd[s], self_sent[s] + 1) == 0)
            self_sent[s]++;
    }
    for (int round = 0; round < 6; round++) {
        run();
        now += 3000;
        for (int i = 1; i <= 5; i++)
            if (nodes[i].alive)
                fwd_tick(nodes[i].f, now);
    }
    run();
    *ok = in_order(2, snd[1], per) && in_order(1, snd[2], per) &&
          in_order(1, snd[1], per) && in_order(2, snd[2], per) && waiting(1) == 0 &&
          waiting(2) == 0 && proto_errors == 0;
    if (!*ok)
        for (int i = 1; i <= 5; i++) {
            struct fwd_stats st;
            if (!nodes[i].alive)
                continue;
            fwd_get_stats(nodes[i].f, &st);
            fprintf(stderr,
                    "  n%d%s waiting %" PRIu64 " fwd %" PRIu64 " deliv %" PRIu64
                    " routed %" PRIu64 " bounced %" PRIu64 " replayed %" PRIu64
                    " dups %" PRIu64 " held %" PRIu64 " misrouted %" PRIu64
                    " sendfail %" PRIu64 " routes %zu next %" PRIx64 "\n",
                    i, i == leader ? "*" : "", st.waiting, st.forwarded, st.delivered,
                    st.routed, st.bounced, st.replayed, st.duplicates, st.held,
                    st.misrouted, st.send_failures, st.routes,
                    fwd_next_deadline(nodes[i].f));
        }
    for (int i = 1; i <= 5; i++)
        if (!nodes[i].alive) {
            nodes[i].alive = true; /* so that cluster_stop frees queues */
        }
    cluster_stop();
}

/* ---- the same over real channels: pframe bytes, pchan, link drops ---- */

static void pl_tick(void)
{
    for (int i = 1; i <= nnodes; i++) {
        if (!nodes[i].alive)
            continue;
        for (int j = 1; j <= nnodes; j++)
            if (j != i)
                pchan_tick(pl[i][j].ch, now, &pl[i][j].out);
        fwd_tick(nodes[i].f, now);
    }
}

static void pl_settle(void)
{
    for (int round = 0; round < 8; round++) {
        bool any = true;
        while (any) {
            any = false;
            for (int i = 1; i <= nnodes; i++)
                for (int j = 1; j <= nnodes; j++)
                    if (i != j)
                        any |= pl_move(i, j, SIZE_MAX);
        }
        now += 1000;
        pl_tick();
    }
}

/* Three nodes over pchans: components on nodes 1 and 2 exchange numbered
 * messages; links drop and reconnect mid-frame, leadership moves (the new
 * leader learns first), node 3 restarts (a channel reset for its peers).
 * Exactly once, in order, no bounce.  Past 80 lines like run_random, for
 * the same reason. */
static struct pchan_stats pstats;
static struct fwd_stats fstats;

static void run_random_pchan(uint64_t seed, bool *ok)
{
    const char *snd[3] = {NULL, "u@cb1.example.com", "v@cb2.example.com"};
    const char *dst[3] = {NULL, "v@cb2.example.com", "u@cb1.example.com"};
    int sent[3] = {0}, per = 120, leader;
    struct fwd_config cfg;

    rng = seed * 0x2545f4914f6cdd1dULL + 7;
    use_pchan = true;
    fwd_config_default(&cfg);
    cluster_start(3, &cfg);
    for (int i = 1; i <= 3; i++)
        for (int j = i + 1; j <= 3; j++)
            pl_connect(i, j);
    add_local(1, "cb1.example.com", 10);
    add_local(2, "cb2.example.com", 10);
    leader = 1 + (int)(rnd() % 3);
    set_leader_all(leader);
    for (int step = 0; step < 2500; step++) {
        uint64_t r = rnd() % 100;
        now += 1 + rnd() % 4;
        if (r < 22) {
            int s = 1 + (int)(rnd() % 2);
            if (sent[s] < per && send_msg(s, snd[s], dst[s], sent[s] + 1) == 0)
                sent[s]++;
        } else if (r < 88) {
            int a = 1 + (int)(rnd() % 3), b = 1 + (int)(rnd() % 3);
            if (a != b)
                pl_move(a, b, 1 + rnd() % 200);
        } else if (r < 92) {
            int a = 1 + (int)(rnd() % 3), b = 1 + (int)(rnd() % 3);
            if (a != b && nodes[a].alive && nodes[b].alive)
                pl_connect(a, b); /* drop, whatever was in flight, and redial */
        } else if (r < 95) {
            int nl = 1 + (int)(rnd() % 3);
            if (!nodes[nl].alive)
                continue;
            term++;
            fwd_set_leader(nodes[nl].f, nodes[nl].id, term, now);
            for (int i = 1; i <= 3; i++)
                if (i != nl && nodes[i].alive && rnd() % 3 != 0)
                    fwd_set_leader(nodes[i].f, nodes[nl].id, term, now);
            leader = nl;
        } else if (r < 96) {
            /* Node 3 restarts: its peers' channels reset on reconnect. */
            fwd_free(nodes[3].f);
            nodes[3].f = NULL;
            node_start(3, &cfg);
            pl_connect(1, 3);
            pl_connect(2, 3);
            if (leader == 3)
                leader = 0;
        } else {
            pl_tick();
        }
    }
    if (leader == 0)
        leader = 1 + (int)(rnd() % 2);
    set_leader_all(leader);
    for (int i = 1; i <= 3; i++)
        for (int j = i + 1; j <= 3; j++)
            pl_connect(i, j);
    for (int s = 1; s <= 2; s++)
        while (sent[s] < per && send_msg(s, snd[s], dst[s], sent[s] + 1) == 0)
            sent[s]++;
    pl_settle();
    for (int i = 1; i <= 3; i++)
        for (int j = 1; j <= 3; j++) {
            struct pchan_stats st;
            if (i == j)
                continue;
            pchan_get_stats(pl[i][j].ch, &st);
            pstats.resent += st.resent;
            pstats.resets += st.resets;
            pstats.duplicates += st.duplicates;
            pstats.busy += st.busy;
        }
    for (int i = 1; i <= 3; i++) {
        struct fwd_stats st;
        fwd_get_stats(nodes[i].f, &st);
        fstats.replayed += st.replayed;
        fstats.duplicates += st.duplicates;
        fstats.misrouted += st.misrouted;
        fstats.held += st.held;
    }
    *ok = in_order(2, snd[1], per) && in_order(1, snd[2], per) && waiting(1) == 0 &&
          waiting(2) == 0 && proto_errors == 0;
    cluster_stop();
    pl_free_all();
    use_pchan = false;
}

/* The bench's stall: a sustained flood from a component on follower 2 to
 * one on follower 3 (leader 1) over real channels with small buffers, the
 * CHAN_ACKs of node 3's channel to 2 coming back late (moved every 16 ms),
 * so that channel fills with ACKs.  Those ACKs used to be dropped: node 2's
 * queue filled, every new stanza was refused (wait/resource-constraint)
 * until the resend after resend_ms, then all resent as duplicates.  Now
 * they wait, merged, for the channel: in virtual time well under
 * resend_ms, nothing refused, nothing resent. */
static void test_flood_acks_never_stall(void)
{
    const int total = 3000;
    struct pchan_config pc;
    struct fwd_config cfg;
    struct fwd_stats st;
    int sent = 0, refused = 0;
    uint64_t t0;

    pchan_config_default(&pc);
    pc.max_frames = 64;
    pl_cfg = &pc;
    use_pchan = true;
    fwd_config_default(&cfg);
    cfg.queue_max = 512;
    cluster_start(3, &cfg);
    for (int i = 1; i <= 3; i++)
        for (int j = i + 1; j <= 3; j++)
            pl_connect(i, j);
    add_local(2, "cb2.example.com", 10);
    add_local(3, "cb3.example.com", 10);
    set_leader_all(1);
    pl_settle();
    t0 = now;
    for (int step = 0; (sent < total || waiting(2) > 0) && now - t0 < 2 * 3000; step++) {
        for (int k = 0; k < 8 && sent < total; k++) {
            int rc = send_msg(2, "u@cb2.example.com", "v@cb3.example.com", sent + 1);
            if (rc == XE_BUSY) {
                refused++;
                break;
            }
            CHECK_INT(rc, 0);
            sent++;
        }
        for (int i = 1; i <= 3; i++)
            for (int j = 1; j <= 3; j++)
                if (i != j && (i != 2 || j != 3 || step % 16 == 0))
                    pl_move(i, j, SIZE_MAX);
        now++;
        pl_tick();
    }
    CHECK_INT(refused, 0);
    CHECK_INT(waiting(2), 0);
    CHECK(now - t0 < cfg.resend_ms);
    CHECK(in_order(3, "u@cb2.example.com", total));
    fwd_get_stats(nodes[2].f, &st);
    CHECK_INT(st.replayed, 0);
    CHECK_INT(st.rejected, 0);
    fwd_get_stats(nodes[3].f, &st);
    CHECK_INT(st.duplicates, 0);
    CHECK_INT(st.acks_dropped, 0);
    CHECK(st.acks_deferred > 0); /* the channel did fill */
    CHECK_INT(proto_errors, 0);
    cluster_stop();
    pl_free_all();
    pl_cfg = NULL;
    use_pchan = false;
}

static void test_random_over_pchan(void)
{
    int failed = 0;

    for (uint64_t seed = 1; seed <= 200; seed++) {
        bool ok = false;
        run_random_pchan(seed, &ok);
        if (!ok) {
            fprintf(stderr, "pchan seed %" PRIu64 " failed\n", seed);
            if (++failed > 5)
                break;
        }
        CHECK(ok);
    }
    /* The runs must exercise what they claim to. */
    CHECK(pstats.resent > 0 && pstats.resets > 0 && fstats.replayed > 0);
    CHECK(fstats.duplicates > 0 && fstats.misrouted > 0);
    if (getenv("FWD_STATS") != NULL)
        fprintf(stderr,
                "pchan resent %" PRIu64 " resets %" PRIu64 " dups %" PRIu64
                " busy %" PRIu64 "; fwd replayed %" PRIu64 " dups %" PRIu64
                " misrouted %" PRIu64 " held %" PRIu64 "\n",
                pstats.resent, pstats.resets, pstats.duplicates, pstats.busy,
                fstats.replayed, fstats.duplicates, fstats.misrouted, fstats.held);
}

static void test_random_exactly_once_in_order(void)
{
    int failed = 0;
    const char *only = getenv("FWD_SEED");
    uint64_t first = only ? strtoull(only, NULL, 10) : 1;

    trace = only != NULL;
    for (uint64_t seed = first; seed <= (only ? first : 500); seed++) {
        bool ok = false;
        run_random(seed, &ok);
        if (!ok) {
            fprintf(stderr, "seed %" PRIu64 " failed\n", seed);
            if (++failed > 5)
                break;
        }
        CHECK(ok);
    }
}

TL_MAIN(T(test_normal_forwarding), T(test_leader_crash_replay),
        T(test_deposed_leader_races_replay), T(test_no_leader_queue_and_overflow),
        T(test_session_takeover), T(test_bounce_unknown),
        T(test_new_leader_holds_until_reports), T(test_busy_channels),
        T(test_refused_ack_kept), T(test_protocol_errors),
        T(test_random_exactly_once_in_order), T(test_random_over_pchan),
        T(test_flood_acks_never_stall))
