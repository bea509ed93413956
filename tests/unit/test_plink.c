/* test_plink.c: the peer link's decisions (xmppd/core/plink.c) as
 * transcripts: each case feeds events (a connection opened, TLS done, a
 * HELLO with the certificate's names, frames as bytes through the real
 * pframe codec, ticks of a virtual clock) and checks the actions plink
 * answered, line by line: HELLO acceptance and the identity binding, the
 * frame kinds each state allows (a guest link carries a
 * join request and nothing else), the dial race, the pre-HELLO, dial, guest
 * and ping timeouts (defect 10), admission limits and the redial back-off. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "plink.h"
#include "pframe.h"
#include "testlib.h"

#define SELF 0x10
#define CLUSTER 0xc1
#define ME_ADDR "127.0.0.1:5224"

static char tr[16384]; /* the transcript of the running case */
static struct plink_opts opts;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    size_t n = strlen(tr);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tr + n, sizeof tr - n, fmt, ap);
    va_end(ap);
}

static const char *count_name(enum plink_count c)
{
    static const char *const names[] = {"none",      "refused",   "impostor",
                                        "malformed", "forbidden", "timeout"};
    return names[c];
}

/* act appends the update's actions to the transcript line and ends it. */
static void act(const struct plink_conn *c, const struct plink_update *u)
{
    bool any = false;

    say(" ->");
    if (u->send_hello) {
        say(" hello(%llx)", (unsigned long long)u->hello_cluster_id);
        any = true;
    }
    if (u->drop_dial) {
        say(" drop-dial");
        any = true;
    }
    if (u->drop_link) {
        say(" drop-link");
        any = true;
    }
    if (u->send_hello && u->hello_version != PFRAME_VERSION_MAX)
        say(" at v%u", u->hello_version);
    if (u->up) {
        say(" up(%s)", plink_state_name(c->state));
        if (c->version != PFRAME_VERSION_MAX)
            say(" v%u", c->version);
        any = true;
    }
    if (u->send_ping) {
        say(" ping");
        any = true;
    }
    if (u->deliver) {
        say(" deliver");
        any = true;
    }
    if (u->send_refuse) {
        say(" refuse(%s)", u->refuse_code == PFRAME_REFUSE_REMOVED   ? "removed"
                           : u->refuse_code == PFRAME_REFUSE_VERSION ? "version"
                                                                     : "other");
        if (u->hello_version != PFRAME_VERSION_MAX)
            say(" at v%u", u->hello_version);
        any = true;
    }
    if (u->refuse_why[0] != '\0')
        say(" [they read: %s]", u->refuse_why);
    if (u->close) {
        say(" close(%s): %s", count_name(u->count), u->why);
        any = true;
    }
    if (!any)
        say(" -");
    say("\n");
}

/* The frame versions the peer's HELLO says it speaks (a current build's). */
static uint8_t peer_vmin = PFRAME_VERSION_MIN, peer_vmax = PFRAME_VERSION_MAX;
static bool peer_unranged; /* the peer's HELLO is session 4's (pframe.h) */

static void start(void)
{
    tr[0] = '\0';
    peer_vmin = PFRAME_VERSION_MIN;
    peer_vmax = PFRAME_VERSION_MAX;
    peer_unranged = false;
    plink_opts_default(&opts);
}

static void ev_open(struct plink_conn *c, bool out, uint64_t dialled, bool ask,
                    uint64_t now)
{
    plink_open(c, out, dialled, ask, now);
    say("%llu open %s\n", (unsigned long long)now, out ? "out" : "in");
}

static void ev_tls(struct plink_conn *c, uint64_t now)
{
    struct plink_update u;

    plink_tls_done(c, CLUSTER, now, &u);
    say("%llu tls", (unsigned long long)now);
    act(c, &u);
}

/* The members this node knows: node 2 at .2, node 3 at .3. */
static const struct plink_member members[] = {
    {SELF, ME_ADDR}, {2, "127.0.0.2:5224"}, {3, "127.0.0.3:5224"}};

static struct plink_view view(const char *sans)
{
    struct plink_view v;

    memset(&v, 0, sizeof v);
    v.self_id = SELF;
    v.cluster_id = CLUSTER;
    v.members = members;
    v.nmembers = 3;
    v.cert = sans != NULL;
    v.subject = "CN=test";
    v.sans = sans;
    return v;
}

static void ev_hello(struct plink_conn *c, const struct plink_view *v, uint64_t cluster,
                     uint64_t id, const char *addr, uint64_t now)
{
    struct pframe_hello h = {.proto = PFRAME_PROTO,
                             .cluster_id = cluster,
                             .node_id = id,
                             .incarnation = 7,
                             .addr = addr,
                             .vmin = peer_vmin,
                             .vmax = peer_vmax,
                             .unranged = peer_unranged};
    struct plink_update u;

    plink_hello(c, v, &h, now, &u);
    say("%llu hello %llx node %llx %s", (unsigned long long)now,
        (unsigned long long)cluster, (unsigned long long)id, addr);
    act(c, &u);
}

/* ev_frame encodes f to bytes, decodes them as the edge does and hands the
 * decoded frame to plink. */
static void ev_frame(struct plink_conn *c, struct pframe *f, const char *label)
{
    struct buf b = {0};
    struct pframe_dec d;
    struct pframe g;
    struct plink_update u;

    if (pframe_type_sequenced(f->type) && f->chan_seq == 0)
        f->chan_seq = 1;
    CHECK_INT(pframe_encode(f, &b), 0);
    pframe_dec_init(&d);
    CHECK_INT(pframe_dec_feed(&d, b.data, b.len), 0);
    CHECK_INT(pframe_dec_next(&d, &g), 1);
    plink_frame(c, &g, &u);
    say("frame %s", label != NULL ? label : pframe_type_name(g.type));
    act(c, &u);
    pframe_release(&g);
    pframe_dec_free(&d);
    buf_free(&b);
}

static void ev_tick(struct plink_conn *c, uint64_t now)
{
    struct plink_update u;

    plink_tick(c, &opts, now, &u);
    say("%llu tick", (unsigned long long)now);
    act(c, &u);
}

/* submit fills f as a SUBMIT of kind (a join asks for node id; a CMD
 * carries id's 8 bytes), data encoded by pframe_req_encode into a static
 * buffer (d is not used: valid until the next call). */
static void submit(struct pframe *f, unsigned char *d, int kind, uint64_t id)
{
    static struct buf data;
    unsigned char cmd[8] = {0};
    struct pframe_req r = {.kind = (uint8_t)kind, .expires = 1000};

    (void)d;
    memset(f, 0, sizeof *f);
    buf_reset(&data);
    if (kind == PFRAME_REQ_JOIN) {
        r.u.join.node_id = id;
        snprintf(r.u.join.addr, sizeof r.u.join.addr, "127.0.0.4:5224");
    } else {
        cmd[7] = (unsigned char)id;
        r.u.cmd = (struct pframe_bytes){cmd, sizeof cmd};
    }
    CHECK_INT(pframe_req_encode(&r, &data), 0);
    f->type = PFRAME_SUBMIT;
    f->u.submit.request_id = 1;
    f->u.submit.data = data.data;
    f->u.submit.len = data.len;
}

/* frame_of fills f with a valid frame of type. */
static void frame_of(struct pframe *f, int type, unsigned char *d)
{
    static const struct pframe_range r = {1, 1};
    static const struct pframe_sess s = {"cb1.example.com", 1, 0, {0}};

    memset(f, 0, sizeof *f);
    f->type = type;
    switch (type) {
    case PFRAME_FWD:
    case PFRAME_DELIVER:
        f->u.fwd = (struct pframe_fwd){
            1, 1, 1, 1, "a@example.com", "cb1.example.com", "<message/>", 10};
        break;
    case PFRAME_ACK:
        f->u.ack.origin_incarnation = 1;
        f->u.ack.ranges = &r;
        f->u.ack.nranges = 1;
        break;
    case PFRAME_SESSIONS:
        f->u.sessions.node_id = 2;
        f->u.sessions.full = true;
        f->u.sessions.add = &s;
        f->u.sessions.nadd = 1;
        break;
    case PFRAME_CONFLICT:
        f->u.conflict.name = "cb1.example.com";
        break;
    case PFRAME_SUBMIT:
        submit(f, d, 1, 2);
        break;
    case PFRAME_SUBMIT_RESULT:
        f->u.result.message = "";
        break;
    case PFRAME_RAFT:
        f->u.raft.data = "r";
        f->u.raft.len = 1;
        break;
    case PFRAME_REFUSE:
        f->u.refuse.cluster_id = CLUSTER;
        f->u.refuse.code = PFRAME_REFUSE_REMOVED;
        f->u.refuse.reason = "node 10 was removed";
        break;
    case PFRAME_HELLO:
        f->u.hello.proto = PFRAME_PROTO;
        f->u.hello.node_id = 2;
        f->u.hello.incarnation = 1;
        f->u.hello.addr = "127.0.0.2:5224";
        break;
    default:
        break;
    }
}

static void expect(const char *want)
{
    CHECK_STR(tr, want);
}

/* ---- handshake ---- */

static void test_member_acceptor(void)
{
    struct plink_conn c;
    struct plink_view v = view("DNS:node2, IP:127.0.0.2");
    struct pframe f;
    unsigned char d[32];
    static const int kinds[] = {PFRAME_CHAN_ACK,      PFRAME_PING,     PFRAME_PONG,
                                PFRAME_RAFT,          PFRAME_FWD,      PFRAME_ACK,
                                PFRAME_SESSIONS,      PFRAME_CONFLICT, PFRAME_SUBMIT,
                                PFRAME_SUBMIT_RESULT, PFRAME_ROUTES};

    start();
    ev_open(&c, false, 0, false, 100);
    ev_tls(&c, 120);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 130);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        frame_of(&f, kinds[i], d);
        ev_frame(&c, &f, NULL);
    }
    frame_of(&f, PFRAME_HELLO, d);
    ev_frame(&c, &f, NULL);
    ev_frame(&c, &f, NULL);
    expect("100 open in\n"
           "120 tls -> -\n"
           "130 hello c1 node 2 127.0.0.2:5224 -> hello(c1) up(member)\n"
           "frame CHAN_ACK -> deliver\n"
           "frame PING -> deliver\n"
           "frame PONG -> deliver\n"
           "frame RAFT -> deliver\n"
           "frame FWD -> deliver\n"
           "frame ACK -> deliver\n"
           "frame SESSIONS -> deliver\n"
           "frame CONFLICT -> deliver\n"
           "frame SUBMIT -> deliver\n"
           "frame SUBMIT_RESULT -> deliver\n"
           "frame ROUTES -> deliver\n"
           "frame HELLO -> close(forbidden): HELLO not allowed on a member link\n"
           "frame HELLO -> -\n");
    /* DELIVER was the leader's relay before forwarding went direct (frame
     * version 2): no member sends it any more. */
    start();
    ev_open(&c, false, 0, false, 100);
    ev_tls(&c, 120);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 130);
    frame_of(&f, PFRAME_DELIVER, d);
    ev_frame(&c, &f, NULL);
    expect("100 open in\n"
           "120 tls -> -\n"
           "130 hello c1 node 2 127.0.0.2:5224 -> hello(c1) up(member)\n"
           "frame DELIVER -> close(forbidden): DELIVER not allowed on a member link\n");
}

static void test_second_hello_event(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.2");

    start();
    ev_open(&c, false, 0, false, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    ev_tls(&c, 2);
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 2);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 3);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 4);
    expect("0 open in\n"
           "1 hello c1 node 2 127.0.0.2:5224 -> close(forbidden): a HELLO before TLS\n"
           "2 tls -> -\n"
           "0 open in\n"
           "2 tls -> -\n"
           "3 hello c1 node 2 127.0.0.2:5224 -> hello(c1) up(member)\n"
           "4 hello c1 node 2 127.0.0.2:5224 -> close(forbidden): a second HELLO\n");
}

static void test_dialler_speaks_first(void)
{
    struct plink_conn c;
    struct plink_view v = view(NULL); /* the dialler checked the name in TLS */

    start();
    ev_open(&c, true, 2, false, 0);
    ev_tls(&c, 5);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 6);
    ev_open(&c, true, 2, false, 10);
    ev_tls(&c, 15);
    ev_hello(&c, &v, CLUSTER, 9, "127.0.0.2:5224", 16);
    expect("0 open out\n"
           "5 tls -> hello(c1)\n"
           "6 hello c1 node 2 127.0.0.2:5224 -> up(member)\n"
           "10 open out\n"
           "15 tls -> hello(c1)\n"
           "16 hello c1 node 9 127.0.0.2:5224 -> close(refused): the address dialled is "
           "now node 0000000000000009, not member 0000000000000002 (was that node "
           "reset? see xmpp cluster status)\n");
}

static void test_hello_refusals(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.2");
    struct pframe_hello h = {.proto = PFRAME_PROTO + 1,
                             .cluster_id = CLUSTER,
                             .node_id = 2,
                             .addr = "127.0.0.2:5224"};
    struct plink_update u;

    start();
    plink_open(&c, false, 0, false, 0);
    plink_tls_done(&c, CLUSTER, 0, &u);
    plink_hello(&c, &v, &h, 1, &u);
    CHECK(u.close && u.count == PLINK_COUNT_REFUSED);
    CHECK_STR(u.why, "peer speaks protocol 3, this node 2");
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, SELF, "127.0.0.2:5224", 1);
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 0, "127.0.0.2:5224", 1);
    v.policy_rc = XE_PERM;
    v.policy_why = "node 2 belongs to cluster 99";
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, 0x99, 2, "127.0.0.2:5224", 1);
    expect(
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 10 127.0.0.2:5224 -> close(refused): the peer has this "
        "node's own id (connected to itself?)\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 0 127.0.0.2:5224 -> close(refused): the peer claims node id 0\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello 99 node 2 127.0.0.2:5224 -> refuse(other) close(refused): node 2 "
        "belongs to cluster 99\n");
}

/* The acceptor tells a dialler it refuses by policy why,
 * in a REFUSE frame, and that it was removed when the owner says so
 * (XE_NOTFOUND); a dialler takes a REFUSE only while it waits for the
 * answer to its HELLO, and hands it to its owner.  Refusals before the
 * identity checks pass (an impostor, a bad protocol) send nothing. */
static void test_refuse_tells_why(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.2");
    struct pframe f;
    unsigned char d[32];

    start();
    v.policy_rc = XE_NOTFOUND;
    v.policy_why = "node 2 was removed";
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    v.policy_rc = XE_PERM;
    v.policy_why = "node 2 is not a member";
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.9:5224", 1); /* an impostor: no refusal */
    /* the dialler's side */
    ev_open(&c, true, 2, false, 0);
    ev_tls(&c, 1);
    frame_of(&f, PFRAME_REFUSE, d);
    ev_frame(&c, &f, NULL);
    /* an acceptor never takes one, nor a dialler whose link is up */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_frame(&c, &f, NULL);
    v.policy_rc = 0;
    ev_open(&c, true, 2, false, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    ev_frame(&c, &f, NULL);
    expect("0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 2 127.0.0.2:5224 -> refuse(removed) close(refused): node 2 "
           "was removed\n"
           "0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 2 127.0.0.2:5224 -> refuse(other) close(refused): node 2 is "
           "not a member\n"
           "0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 2 127.0.0.9:5224 -> close(impostor): node 0000000000000002 "
           "claims address 127.0.0.9:5224, but its certificate (CN=test) covers only "
           "IP:127.0.0.2\n"
           "0 open out\n"
           "1 tls -> hello(c1)\n"
           "frame REFUSE -> deliver close(refused): refused by the peer: node 10 was "
           "removed\n"
           "0 open in\n"
           "0 tls -> -\n"
           "frame REFUSE -> close(forbidden): REFUSE before HELLO\n"
           "0 open out\n"
           "1 tls -> hello(c1)\n"
           "2 hello c1 node 2 127.0.0.2:5224 -> up(member)\n"
           "frame REFUSE -> close(forbidden): REFUSE not allowed on a member link\n");
}

/* The identity binding of a certificate to a node (docs/cluster.md,
 * "Identity and membership"). */
static void test_impostors(void)
{
    struct plink_conn c;
    struct plink_view none = view(NULL);
    struct plink_view two = view("DNS:node2, IP:127.0.0.2");
    struct plink_view four = view("DNS:node4, IP:127.0.0.4");
    struct plink_view wild = view("DNS:*.example.com");

    start();
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &none, CLUSTER, 4, "127.0.0.4:5224", 1);
    /* A trusted certificate for .2 claims .3's address. */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &two, CLUSTER, 3, "127.0.0.3:5224", 1);
    /* Member 2's id from another address its certificate covers. */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &four, CLUSTER, 2, "127.0.0.4:5224", 1);
    /* A new id at member 2's address, from another cluster: refused ... */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &two, 0x99, 7, "127.0.0.2:5224", 1);
    /* ... as a joining node (join --replace): the leader decides. */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &two, 0, 7, "127.0.0.2:5224", 1);
    /* A wildcard names no node. */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &wild, 0, 7, "node7.example.com:5224", 1);
    expect(
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 4 127.0.0.4:5224 -> close(impostor): node 0000000000000004 at "
        "127.0.0.4:5224 presented no certificate\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 3 127.0.0.3:5224 -> close(impostor): node 0000000000000003 "
        "claims address 127.0.0.3:5224, but its certificate (CN=test) covers only "
        "DNS:node2, IP:127.0.0.2\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 2 127.0.0.4:5224 -> close(impostor): node 0000000000000002 "
        "claims address 127.0.0.4:5224, but that member is at 127.0.0.2:5224 "
        "(certificate CN=test covers DNS:node4, IP:127.0.0.4)\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello 99 node 7 127.0.0.2:5224 -> close(impostor): node 0000000000000007 "
        "claims address 127.0.0.2:5224, which member 0000000000000002 holds "
        "(certificate CN=test covers DNS:node2, IP:127.0.0.2)\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello 0 node 7 127.0.0.2:5224 -> hello(c1) up(guest)\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello 0 node 7 node7.example.com:5224 -> close(impostor): node "
        "0000000000000007 claims address node7.example.com:5224, but its certificate "
        "(CN=test) covers only DNS:*.example.com\n");
}

/* Our configuration fell behind: member 2 at .2 was replaced by node 7
 * (join --replace committed while we were cut off), and node 7 may lead.
 * Its HELLO (our cluster, a certificate for .2) comes up as a SUCCESSOR
 * link: Raft is delivered, the rest of a member's traffic is taken off the
 * channel and dropped, and what no member link carries is forbidden (nemesis
 * seed 12: two nodes refused the leader's links for ever and never caught
 * up). */
static void test_successor(void)
{
    struct plink_conn c;
    struct plink_view two = view("DNS:node2, IP:127.0.0.2");
    struct pframe f;
    unsigned char d[32];

    start();
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &two, CLUSTER, 7, "127.0.0.2:5224", 1);
    frame_of(&f, PFRAME_RAFT, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_FWD, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_ROUTES, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_DELIVER, d);
    ev_frame(&c, &f, NULL);
    expect(
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 7 127.0.0.2:5224 -> hello(c1) up(successor)\n"
        "frame RAFT -> deliver\n"
        "frame FWD -> -\n"
        "frame ROUTES -> -\n"
        "frame DELIVER -> close(forbidden): DELIVER not allowed on a successor link\n");
}

/* Both nodes dial at once: the lower id's dial wins on both ends. */
static void test_dial_race(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.2, IP:127.0.0.3, IP:127.0.0.9");
    static const struct plink_member low[] = {{1, "127.0.0.9:5224"}};

    start();
    v.id_dialled = true; /* 2 > SELF? no: 2 < 0x10, its dial wins */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    v.members = low;
    v.nmembers = 1;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 0x20, "127.0.0.3:5224", 1);
    v.id_dialled = false;
    v.id_linked = true;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 0x20, "127.0.0.3:5224", 1);
    expect("0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 2 127.0.0.2:5224 -> hello(c1) drop-dial up(member)\n"
           "0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 20 127.0.0.3:5224 -> close(none): our own dial wins\n"
           "0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 20 127.0.0.3:5224 -> hello(c1) drop-link up(member)\n");
}

/* ---- defect 2: a guest link carries a join request and nothing else ---- */

static void test_guest_join_only(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.4");
    struct pframe f;
    unsigned char d[32];

    start();
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 10);
    ev_hello(&c, &v, 0, 4, "127.0.0.4:5224", 20);
    frame_of(&f, PFRAME_PING, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_CHAN_ACK, d);
    ev_frame(&c, &f, NULL);
    submit(&f, d, PLINK_SUBMIT_JOIN, 4);
    ev_frame(&c, &f, "SUBMIT join(4)");
    submit(&f, d, PLINK_SUBMIT_JOIN, 5);
    ev_frame(&c, &f, "SUBMIT join(5)");
    expect("0 open in\n"
           "10 tls -> -\n"
           "20 hello 0 node 4 127.0.0.4:5224 -> hello(c1) up(guest)\n"
           "frame PING -> deliver\n"
           "frame CHAN_ACK -> deliver\n"
           "frame SUBMIT join(4) -> deliver\n"
           "frame SUBMIT join(5) -> close(forbidden): SUBMIT (not a join request for "
           "itself) on the link of a node that has not joined (only its own join "
           "request is allowed)\n");
}

static void test_guest_forbidden_kinds(void)
{
    static const int kinds[] = {PFRAME_RAFT,   PFRAME_FWD,           PFRAME_DELIVER,
                                PFRAME_ACK,    PFRAME_SESSIONS,      PFRAME_CONFLICT,
                                PFRAME_SUBMIT, PFRAME_SUBMIT_RESULT, PFRAME_HELLO,
                                PFRAME_ROUTES};
    struct plink_view v = view("IP:127.0.0.4");
    unsigned char d[32];

    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        struct plink_conn c;
        struct pframe f;
        char want[400];

        start();
        plink_open(&c, false, 0, false, 0);
        ev_tls(&c, 0);
        ev_hello(&c, &v, 0, 4, "127.0.0.4:5224", 0);
        tr[0] = '\0';
        frame_of(&f, kinds[i], d);
        ev_frame(&c, &f, NULL);
        snprintf(want, sizeof want,
                 "frame %s -> close(forbidden): %s%s on the link of a node that has not "
                 "joined (only its own join request is allowed)\n",
                 pframe_type_name(kinds[i]), pframe_type_name(kinds[i]),
                 kinds[i] == PFRAME_SUBMIT ? " (not a join request for itself)" : "");
        expect(want);
        CHECK_INT(c.state, PLINK_STATE_CLOSED);
    }
    /* ROUTES (type 13) is a member kind, not a guest's. */
    {
        bool deliver;
        CHECK(plink_allowed(PLINK_STATE_MEMBER, 2, PFRAME_ROUTES, NULL, &deliver) &&
              deliver);
        CHECK(!plink_allowed(PLINK_STATE_GUEST, 2, PFRAME_ROUTES, NULL, &deliver));
        CHECK(!plink_allowed(PLINK_STATE_TLS, 2, PFRAME_PING, NULL, &deliver));
        CHECK(!plink_allowed(PLINK_STATE_MEMBER, 2, 99, NULL, &deliver));
    }
}

static void test_frame_before_hello(void)
{
    struct plink_conn c;
    struct pframe f;
    unsigned char d[32];

    start();
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 1);
    frame_of(&f, PFRAME_DELIVER, d);
    ev_frame(&c, &f, NULL);
    expect("0 open in\n"
           "1 tls -> -\n"
           "frame DELIVER -> close(forbidden): DELIVER before HELLO\n");
}

/* The joining side: our HELLO says 0; the answer is delivered, the
 * cluster's own traffic is taken but not delivered. */
static void test_contact(void)
{
    struct plink_conn c;
    struct plink_view v = view(NULL);
    struct pframe f;
    unsigned char d[32];

    start();
    ev_open(&c, true, 0, true, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    frame_of(&f, PFRAME_SUBMIT_RESULT, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_RAFT, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_FWD, d);
    ev_frame(&c, &f, NULL);
    frame_of(&f, PFRAME_HELLO, d);
    ev_frame(&c, &f, NULL);
    ev_open(&c, true, 0, true, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, 0, 2, "127.0.0.2:5224", 2);
    /* Accepted from our contact (the leader dialling a node it added):
     * we still answer 0. */
    v = view("IP:127.0.0.2");
    v.ask_join = true;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    v.id_taken = true;
    ev_open(&c, true, 0, true, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    expect(
        "0 open out\n"
        "1 tls -> hello(0)\n"
        "2 hello c1 node 2 127.0.0.2:5224 -> up(contact)\n"
        "frame SUBMIT_RESULT -> deliver\n"
        "frame RAFT -> -\n"
        "frame FWD -> -\n"
        "frame HELLO -> close(forbidden): HELLO not allowed on a contact link\n"
        "0 open out\n"
        "1 tls -> hello(0)\n"
        "2 hello 0 node 2 127.0.0.2:5224 -> close(refused): node 0000000000000002 asks "
        "to join too: neither end is in a cluster\n"
        "0 open in\n"
        "1 tls -> -\n"
        "2 hello c1 node 2 127.0.0.2:5224 -> hello(0) up(contact)\n"
        "0 open out\n"
        "1 tls -> hello(0)\n"
        "2 hello c1 node 2 127.0.0.2:5224 -> close(refused): node 0000000000000002 is "
        "already linked\n");
}

/* ---- defect 10: every pre-HELLO state times out ---- */

static void test_prehello_timeouts(void)
{
    struct plink_conn c;

    start();
    ev_open(&c, false, 0, false, 1000);
    ev_tick(&c, 5999);
    ev_tick(&c, 6000);
    ev_tick(&c, 7000);
    ev_open(&c, false, 0, false, 1000);
    ev_tls(&c, 5000);
    ev_tick(&c, 5999);
    ev_tick(&c, 6000);
    ev_open(&c, true, 2, false, 1000);
    ev_tick(&c, 3999);
    ev_tick(&c, 4000);
    expect("1000 open in\n"
           "5999 tick -> -\n"
           "6000 tick -> close(timeout): no TLS handshake within 5000 ms\n"
           "7000 tick -> -\n"
           "1000 open in\n"
           "5000 tls -> -\n"
           "5999 tick -> -\n"
           "6000 tick -> close(timeout): TLS done, but no HELLO within 5000 ms\n"
           "1000 open out\n"
           "3999 tick -> -\n"
           "4000 tick -> close(none): connect timed out (no HELLO within 3000 ms)\n");
}

static void test_ping_idle_guest(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.2, IP:127.0.0.4");

    start();
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 10);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 100);
    ev_tick(&c, 1099);
    ev_tick(&c, 1100);
    plink_rx(&c, 1500);
    say("1500 rx\n");
    ev_tick(&c, 2100);
    ev_tick(&c, 6499);
    ev_tick(&c, 6500);
    /* A guest that keeps pinging still leaves after guest_ms. */
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 10);
    ev_hello(&c, &v, 0, 4, "127.0.0.4:5224", 100);
    plink_rx(&c, 59990);
    ev_tick(&c, 59999);
    ev_tick(&c, 60000);
    expect(
        "0 open in\n"
        "10 tls -> -\n"
        "100 hello c1 node 2 127.0.0.2:5224 -> hello(c1) up(member)\n"
        "1099 tick -> -\n"
        "1100 tick -> ping\n"
        "1500 rx\n"
        "2100 tick -> ping\n"
        "6499 tick -> ping\n"
        "6500 tick -> close(none): nothing received for 5000 ms\n"
        "0 open in\n"
        "10 tls -> -\n"
        "100 hello 0 node 4 127.0.0.4:5224 -> hello(c1) up(guest)\n"
        "59999 tick -> ping\n"
        "60000 tick -> close(timeout): a node that has not joined may keep its link 60 "
        "s at most\n");
}

static void test_admit(void)
{
    char why[200];
    struct plink_conn c;
    bool evict = true;

    start();
    CHECK_INT(plink_admit(&opts, 63, 7, 63, "127.0.0.9", &evict, why, sizeof why), 0);
    CHECK(!evict);
    CHECK_INT(plink_admit(&opts, 10, 8, 10, "127.0.0.9", &evict, why, sizeof why),
              XE_LIMIT);
    CHECK_STR(why, "8 connections from 127.0.0.9 are not members' links (the limit per "
                   "address)");
    /* At the total limit with none of them before its HELLO (guests, who
     * proved a certificate): refused. */
    CHECK_INT(plink_admit(&opts, 64, 0, 0, "127.0.0.9", &evict, why, sizeof why),
              XE_LIMIT);
    CHECK_STR(why, "64 connections that are not members' links are open (the limit)");
    /* At the total limit, with links that have not sent a HELLO: the oldest
     * of them makes room, so that connections held open by anyone on the
     * network (8 addresses suffice) cannot keep the members' links out. */
    evict = false;
    CHECK_INT(plink_admit(&opts, 64, 0, 1, "127.0.0.9", &evict, why, sizeof why), 0);
    CHECK(evict);
    CHECK_STR(why, "made room for a newer connection: 64 connections that are not "
                   "members' links are open (the limit)");
    plink_open(&c, false, 0, false, 0);
    CHECK(plink_unjoined(&c));
    CHECK(plink_evictable(&c));
    plink_open(&c, true, 2, false, 0);
    CHECK(!plink_unjoined(&c));
    CHECK(!plink_evictable(&c));
}

static void test_backoff(void)
{
    struct plink_dial d = {0};

    start();
    CHECK_INT(plink_backoff(&opts, 0, 12345), 0);
    CHECK_INT(plink_backoff(&opts, 1, 0), 25);
    CHECK_INT(plink_backoff(&opts, 1, 25), 50);
    CHECK_INT(plink_backoff(&opts, 2, 0), 50);
    CHECK_INT(plink_backoff(&opts, 3, 0), 100);
    CHECK_INT(plink_backoff(&opts, 30, 0), 1000);
    CHECK_INT(plink_backoff(&opts, 30, 1000), 2000);
    CHECK_INT(plink_backoff(&opts, 30, 1001), 1000);
    plink_dial_failed(&d, &opts, 100, 0);
    CHECK_INT(d.attempts, 1);
    CHECK_INT(d.next_ms, 125);
    plink_dial_failed(&d, &opts, 200, 0);
    CHECK_INT(d.next_ms, 250);
    plink_dial_lost(&d, 300);
    CHECK_INT(d.attempts, 0);
    CHECK_INT(d.next_ms, 300);
    CHECK(d.was_up);
    plink_dial_failed(&d, &opts, 300, 0);
    plink_dial_up(&d);
    CHECK_INT(d.attempts, 0);
}

static void test_addresses(void)
{
    char host[64];
    int port;

    CHECK_INT(plink_parse_addr("10.0.0.1", 5224, host, sizeof host, &port), 0);
    CHECK_STR(host, "10.0.0.1");
    CHECK_INT(port, 5224);
    CHECK_INT(plink_parse_addr("[::1]:7", 5224, host, sizeof host, &port), 0);
    CHECK_STR(host, "::1");
    CHECK_INT(port, 7);
    CHECK_INT(plink_parse_addr("a:0", 5224, host, sizeof host, &port), XE_INVAL);
    CHECK_INT(plink_parse_addr("", 5224, host, sizeof host, &port), XE_INVAL);
    CHECK(plink_addr_same("[::1]:5224", "[0::1]"));
    CHECK(plink_addr_same("Node1:5224", "node1"));
    CHECK(!plink_addr_same("127.0.0.1:5224", "127.0.0.1:5225"));
    CHECK(plink_sans_cover("DNS:a, IP:0:0::1", "::1"));
    CHECK(plink_sans_cover("DNS:Node1, IP:1.2.3.4", "node1"));
    CHECK(!plink_sans_cover("DNS:1.2.3.4", "1.2.3.4"));
    CHECK(!plink_sans_cover("DNS:*.example.com", "a.example.com"));
    CHECK(!plink_sans_cover(NULL, "a"));
}

/* The first bytes of a link that cannot be a peer frame name the port's
 * protocol; a real frame's first byte (its length's high byte) never does. */
static void test_foreign_protocol(void)
{
    struct pframe f;
    struct buf b = {0};
    static const char tls_alert[] = {0x15, 0x03, 0x03, 0x00, 0x02};

    CHECK_STR(plink_foreign_protocol("<?xml version='1.0'?>", 21), "XMPP");
    CHECK_STR(plink_foreign_protocol("<stream:stream", 14), "XMPP");
    CHECK_STR(plink_foreign_protocol("HTTP/1.1 400 Bad Request\r\n", 26), "HTTP");
    CHECK_STR(plink_foreign_protocol("GET / HTTP/1.1\r\n", 16), "HTTP");
    CHECK(plink_foreign_protocol("HTTP", 4) == NULL); /* too short to tell */
    CHECK(plink_foreign_protocol("", 0) == NULL);
    CHECK(plink_foreign_protocol(tls_alert, sizeof tls_alert) == NULL);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_PING;
    CHECK_INT(pframe_encode(&f, &b), 0);
    CHECK(plink_foreign_protocol(b.data, b.len) == NULL);
    buf_free(&b);
}

/* Versions: the highest both speak; a version 2 peer (a
 * build from before ranges, HELLO without one) gets a version 2 link and
 * its dial wins the race; ranges that do not meet are refused with both
 * ranges on both ends. */
static void test_versions(void)
{
    struct plink_conn c, c2;
    struct plink_view v = view("IP:127.0.0.2"), v3 = view("IP:127.0.0.3");
    static const struct plink_member low[] = {{1, "127.0.0.9:5224"}};
    struct plink_update u;
    struct pframe f;
    unsigned char d[32];

    start();
    /* acceptor, peer 2..2: answered at 2 */
    peer_vmax = 2;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    /* dialler, the acceptor answered at 2 (no range: 2..2) */
    ev_open(&c, true, 2, false, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    /* dial race: node 0x20 (higher id than ours) speaks 2 only, our dial
     * to it is under way: its dial wins (it may be unable to read ours) */
    v3.members = low;
    v3.nmembers = 1;
    v3.id_dialled = true;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v3, CLUSTER, 0x20, "127.0.0.3:5224", 1);
    /* this node speaks 2 only, the peer 2..3 with a lower id: ours wins */
    peer_vmax = 3;
    v.id_dialled = true;
    ev_open(&c, false, 0, false, 0);
    REQUIRE(plink_versions(&c, 2, 2) == 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    v.id_dialled = false;
    /* and its own dial says 2 only */
    ev_open(&c, true, 2, false, 0);
    REQUIRE(plink_versions(&c, 2, 2) == 0);
    ev_tls(&c, 1);
    /* a later peer, 5..6: refused, and told at our newest */
    peer_vmin = 5;
    peer_vmax = 6;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    /* this node 3..3, a version 2 peer: refused in a REFUSE it reads */
    peer_vmin = peer_vmax = 2;
    ev_open(&c, false, 0, false, 0);
    REQUIRE(plink_versions(&c, 3, 3) == 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    /* the dialler 3..3 hears the acceptor's HELLO at 2: refuses it too */
    ev_open(&c, true, 2, false, 0);
    REQUIRE(plink_versions(&c, 3, 3) == 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    /* the dialler 5..6 refused by a 2..4 node: its own words */
    ev_open(&c, true, 2, false, 0);
    c.vmin = 5; /* (beyond this codec: set by hand) */
    c.vmax = 6;
    ev_tls(&c, 1);
    frame_of(&f, PFRAME_REFUSE, d);
    f.u.refuse.code = PFRAME_REFUSE_VERSION;
    f.u.refuse.vmin = 2;
    f.u.refuse.vmax = 4;
    f.u.refuse.reason = "peer speaks protocol versions 5..6, this node 2..4";
    ev_frame(&c, &f, NULL);
    expect(
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 2 127.0.0.2:5224 -> hello(c1) at v2 up(member) v2\n"
        "0 open out\n"
        "1 tls -> hello(c1)\n"
        "2 hello c1 node 2 127.0.0.2:5224 -> up(member) v2\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 20 127.0.0.3:5224 -> hello(c1) drop-dial at v2 up(member) v2\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 2 127.0.0.2:5224 -> close(none): our own dial wins\n"
        "0 open out\n"
        "1 tls -> hello(c1) at v2\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 2 127.0.0.2:5224 -> refuse(version) [they read: peer speaks "
        "protocol versions 2..4, this node 5..6: upgrade the older node] "
        "close(refused): peer speaks protocol versions 5..6, this node 2..4: upgrade "
        "the older node\n"
        "0 open in\n"
        "0 tls -> -\n"
        "1 hello c1 node 2 127.0.0.2:5224 -> refuse(other) at v2 [they read: peer "
        "speaks protocol versions 3..3, this node 2..2: upgrade the older node] "
        "close(refused): peer speaks protocol versions 2..2, this node 3..3: upgrade "
        "the older node\n"
        "0 open out\n"
        "1 tls -> hello(c1) at v3\n"
        "2 hello c1 node 2 127.0.0.2:5224 -> close(refused): peer speaks protocol "
        "versions 2..2, this node 3..3: upgrade the older node\n"
        "0 open out\n"
        "1 tls -> hello(c1) at v6\n"
        "frame REFUSE -> deliver close(refused): refused by the peer: peer speaks "
        "protocol versions 2..4, this node 5..6: upgrade the older node\n");
    CHECK_INT(plink_versions(&c2, 1, 3), XE_INVAL);
    CHECK_INT(plink_versions(&c2, 3, 2), XE_INVAL);
    CHECK_INT(plink_versions(&c2, 2, PFRAME_VERSION_MAX + 1), XE_INVAL);
    (void)u;
}

#define UNRANGED                                                                         \
    "the peer is an xmppd build from before peer protocol version ranges (its "          \
    "version 3 frames are not this node's): no link with it is possible; stop the "      \
    "older nodes and start them on this build (docs/cluster.md \"Rolling upgrade\")"

/* A build of session 4 (git 5d99433) wrote version 3 before HELLO had a
 * range, and its version 3 frames are not ours: no link can work with it,
 * so its HELLO is refused with a reason that says what to do, on either
 * end, and nothing is sent back that it could not read anyway (issue 13
 * item 12: refused with a clear reason, not "malformed frame" forever). */
static void test_unranged_peer(void)
{
    struct plink_conn c;
    struct plink_view v = view("IP:127.0.0.2");

    start();
    peer_vmin = peer_vmax = 3;
    peer_unranged = true;
    ev_open(&c, false, 0, false, 0);
    ev_tls(&c, 0);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 1);
    ev_open(&c, true, 2, false, 0);
    ev_tls(&c, 1);
    ev_hello(&c, &v, CLUSTER, 2, "127.0.0.2:5224", 2);
    expect("0 open in\n"
           "0 tls -> -\n"
           "1 hello c1 node 2 127.0.0.2:5224 -> close(refused): " UNRANGED "\n"
           "0 open out\n"
           "1 tls -> hello(c1)\n"
           "2 hello c1 node 2 127.0.0.2:5224 -> close(refused): " UNRANGED "\n");
}

TL_MAIN(T(test_member_acceptor), T(test_second_hello_event), T(test_dialler_speaks_first),
        T(test_hello_refusals), T(test_refuse_tells_why), T(test_impostors),
        T(test_successor), T(test_dial_race), T(test_guest_join_only),
        T(test_guest_forbidden_kinds), T(test_frame_before_hello), T(test_contact),
        T(test_prehello_timeouts), T(test_ping_idle_guest), T(test_admit),
        T(test_backoff), T(test_addresses), T(test_foreign_protocol), T(test_versions),
        T(test_unranged_peer))
