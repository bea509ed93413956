/* test_pframe.c: the peer-link frame codec: round trips of every type,
 * truncations and garbage failing cleanly, chunked decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "err.h"
#include "pframe.h"

static const struct pframe_range ranges3[] = {{1, 1}, {3, 7}, {9, 1000}};
static const struct pframe_range bounced2[] = {{2, 2}, {8, 8}};
static const struct pframe_sess adds[] = {
    {"cb1.example.com", 100, 0, {0}},
    {"a@example.com/r",
     200,
     (9ULL << 32) + 4,
     {PFRAME_KIND_C2S_WS, PFRAME_ATTR_AVAILABLE | PFRAME_ATTR_UPDATE, -128}}};
static const struct pframe_sess dels[] = {
    {"old.example.com", 50, 7, {PFRAME_KIND_C2S_TCP, 0, 127}}};
static const struct pframe_route radds[] = {
    {"cb1.example.com", 0x11, 100, 5, {0}},
    {"a@example.com/r", 0x12, 200, 6, {PFRAME_KIND_C2S_TCP, PFRAME_ATTR_AVAILABLE, -1}}};
static const struct pframe_route rdels[] = {
    {"old.example.com", 0x13, 50, 2, {PFRAME_KIND_C2S_WS, 0, 5}}};
static const char raftbytes[] = {1, 2, 0, 3, 4};

/* sample fills f with a frame of type t using every field. */
static void sample(int t, struct pframe *f)
{
    memset(f, 0, sizeof *f);
    f->type = t;
    if (pframe_type_sequenced(t))
        f->chan_seq = 0x0102030405060708ULL;
    switch (t) {
    case PFRAME_HELLO:
        f->u.hello = (struct pframe_hello){
            PFRAME_PROTO,     0xc1, 0xabcdef, 0x77, "127.0.0.2:5224", 0x99, 42,
            1765000000123ULL, 2,    3,        false};
        break;
    case PFRAME_CHAN_ACK:
        f->u.recv_seq = 12345;
        break;
    case PFRAME_PING:
    case PFRAME_PONG:
        f->u.ping.nonce = UINT64_MAX;
        f->u.ping.components = 0xfffffffeu;
        break;
    case PFRAME_RAFT:
        f->u.raft.data = raftbytes;
        f->u.raft.len = sizeof raftbytes;
        break;
    case PFRAME_FWD:
    case PFRAME_DELIVER:
        f->u.fwd = (struct pframe_fwd){
            7, 8, 9, 5, "a.example.com", "b.example.com", "<message to='b.example.com'/>",
            29};
        break;
    case PFRAME_ACK:
        f->u.ack.origin_incarnation = 8;
        f->u.ack.ranges = ranges3;
        f->u.ack.nranges = 3;
        f->u.ack.bounced = bounced2;
        f->u.ack.nbounced = 2;
        break;
    case PFRAME_ROUTES:
        f->u.routes.term = 9;
        f->u.routes.flags = PFRAME_ROUTES_RESET | PFRAME_ROUTES_COMPLETE;
        f->u.routes.add = radds;
        f->u.routes.nadd = 2;
        f->u.routes.del = rdels;
        f->u.routes.ndel = 1;
        break;
    case PFRAME_SESSIONS:
        f->u.sessions.node_id = 3;
        f->u.sessions.generation = 17;
        f->u.sessions.term = 9;
        f->u.sessions.full = true;
        f->u.sessions.add = adds;
        f->u.sessions.nadd = 2;
        f->u.sessions.del = dels;
        f->u.sessions.ndel = 1;
        break;
    case PFRAME_CONFLICT:
        f->u.conflict.name = "cb1.example.com";
        f->u.conflict.sid = 1234;
        break;
    case PFRAME_REFUSE:
        f->u.refuse.cluster_id = 0xc1;
        f->u.refuse.code = PFRAME_REFUSE_REMOVED;
        f->u.refuse.reason = "node 2 was removed from cluster c1";
        break;
    case PFRAME_SUBMIT:
        f->u.submit.request_id = 5;
        f->u.submit.data = raftbytes;
        f->u.submit.len = sizeof raftbytes;
        break;
    case PFRAME_SUBMIT_RESULT:
        f->u.result.request_id = 5;
        f->u.result.rc = XE_NOLEADER;
        f->u.result.message = "no leader";
        f->u.result.data = raftbytes;
        f->u.result.len = 2;
        break;
    }
}

static int same(const struct pframe *a, const struct pframe *b)
{
    if (a->type != b->type || a->chan_seq != b->chan_seq)
        return 0;
    switch (a->type) {
    case PFRAME_HELLO:
        return a->u.hello.proto == b->u.hello.proto &&
               a->u.hello.cluster_id == b->u.hello.cluster_id &&
               a->u.hello.node_id == b->u.hello.node_id &&
               a->u.hello.incarnation == b->u.hello.incarnation &&
               strcmp(a->u.hello.addr, b->u.hello.addr) == 0 &&
               a->u.hello.seen_incarnation == b->u.hello.seen_incarnation &&
               a->u.hello.recv_seq == b->u.hello.recv_seq &&
               a->u.hello.wall_ms == b->u.hello.wall_ms &&
               a->u.hello.vmin == b->u.hello.vmin && a->u.hello.vmax == b->u.hello.vmax;
    case PFRAME_CHAN_ACK:
        return a->u.recv_seq == b->u.recv_seq;
    case PFRAME_PING:
    case PFRAME_PONG:
        return a->u.ping.nonce == b->u.ping.nonce &&
               a->u.ping.components == b->u.ping.components;
    case PFRAME_RAFT:
        return a->u.raft.len == b->u.raft.len &&
               memcmp(a->u.raft.data, b->u.raft.data, a->u.raft.len) == 0;
    case PFRAME_FWD:
    case PFRAME_DELIVER:
        return a->u.fwd.origin == b->u.fwd.origin &&
               a->u.fwd.incarnation == b->u.fwd.incarnation &&
               a->u.fwd.seq == b->u.fwd.seq && a->u.fwd.low_water == b->u.fwd.low_water &&
               strcmp(a->u.fwd.from, b->u.fwd.from) == 0 &&
               strcmp(a->u.fwd.to, b->u.fwd.to) == 0 &&
               a->u.fwd.xml_len == b->u.fwd.xml_len &&
               memcmp(a->u.fwd.xml, b->u.fwd.xml, a->u.fwd.xml_len) == 0 &&
               b->u.fwd.xml[b->u.fwd.xml_len] == '\0';
    case PFRAME_ACK:
        if (a->u.ack.origin_incarnation != b->u.ack.origin_incarnation ||
            a->u.ack.nranges != b->u.ack.nranges ||
            a->u.ack.nbounced != b->u.ack.nbounced)
            return 0;
        for (size_t i = 0; i < a->u.ack.nranges; i++)
            if (a->u.ack.ranges[i].first != b->u.ack.ranges[i].first ||
                a->u.ack.ranges[i].last != b->u.ack.ranges[i].last)
                return 0;
        for (size_t i = 0; i < a->u.ack.nbounced; i++)
            if (a->u.ack.bounced[i].first != b->u.ack.bounced[i].first ||
                a->u.ack.bounced[i].last != b->u.ack.bounced[i].last)
                return 0;
        return 1;
    case PFRAME_ROUTES: {
        const struct pframe_routes *x = &a->u.routes, *y = &b->u.routes;
        if (x->term != y->term || x->flags != y->flags || x->nadd != y->nadd ||
            x->ndel != y->ndel)
            return 0;
        for (size_t i = 0; i < x->nadd + x->ndel; i++) {
            const struct pframe_route *p =
                i < x->nadd ? &x->add[i] : &x->del[i - x->nadd];
            const struct pframe_route *q =
                i < y->nadd ? &y->add[i] : &y->del[i - y->nadd];
            if (strcmp(p->name, q->name) != 0 || p->node != q->node || p->sid != q->sid ||
                p->ord != q->ord || memcmp(&p->attr, &q->attr, sizeof p->attr) != 0)
                return 0;
        }
        return 1;
    }
    case PFRAME_SESSIONS: {
        const struct pframe_sessions *x = &a->u.sessions, *y = &b->u.sessions;
        if (x->node_id != y->node_id || x->generation != y->generation ||
            x->term != y->term || x->full != y->full || x->nadd != y->nadd ||
            x->ndel != y->ndel)
            return 0;
        for (size_t i = 0; i < x->nadd; i++)
            if (strcmp(x->add[i].name, y->add[i].name) != 0 ||
                x->add[i].sid != y->add[i].sid || x->add[i].ord != y->add[i].ord ||
                memcmp(&x->add[i].attr, &y->add[i].attr, sizeof x->add[i].attr) != 0)
                return 0;
        for (size_t i = 0; i < x->ndel; i++)
            if (strcmp(x->del[i].name, y->del[i].name) != 0 ||
                x->del[i].sid != y->del[i].sid || x->del[i].ord != y->del[i].ord ||
                memcmp(&x->del[i].attr, &y->del[i].attr, sizeof x->del[i].attr) != 0)
                return 0;
        return 1;
    }
    case PFRAME_CONFLICT:
        return strcmp(a->u.conflict.name, b->u.conflict.name) == 0 &&
               a->u.conflict.sid == b->u.conflict.sid;
    case PFRAME_REFUSE:
        return a->u.refuse.cluster_id == b->u.refuse.cluster_id &&
               a->u.refuse.code == b->u.refuse.code &&
               strcmp(a->u.refuse.reason, b->u.refuse.reason) == 0;
    case PFRAME_SUBMIT:
        return a->u.submit.request_id == b->u.submit.request_id &&
               a->u.submit.len == b->u.submit.len &&
               memcmp(a->u.submit.data, b->u.submit.data, a->u.submit.len) == 0;
    case PFRAME_SUBMIT_RESULT:
        return a->u.result.request_id == b->u.result.request_id &&
               a->u.result.rc == b->u.result.rc &&
               strcmp(a->u.result.message, b->u.result.message) == 0 &&
               a->u.result.len == b->u.result.len &&
               memcmp(a->u.result.data, b->u.result.data, a->u.result.len) == 0;
    }
    return 0;
}

static void test_round_trip_every_type(void)
{
    for (int t = PFRAME_HELLO; t <= PFRAME_REFUSE; t++) {
        struct pframe f, g;
        struct buf b = {0};
        sample(t, &f);
        CHECK_INT(pframe_encode(&f, &b), 0);
        REQUIRE(b.len > 6);
        size_t body = (size_t)(unsigned char)b.data[0] << 24 |
                      (size_t)(unsigned char)b.data[1] << 16 |
                      (size_t)(unsigned char)b.data[2] << 8 | (unsigned char)b.data[3];
        CHECK_INT(body, b.len - 4);
        CHECK_INT(b.data[4], PFRAME_VERSION);
        CHECK_INT(b.data[5], t);
        CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), 0);
        if (!same(&f, &g))
            fprintf(stderr, "type %s differs\n", pframe_type_name(t));
        CHECK(same(&f, &g));
        pframe_release(&g);
        buf_free(&b);
    }
}

static void test_empty_lists_and_bytes(void)
{
    struct pframe f = {0}, g;
    struct buf b = {0};

    f.type = PFRAME_SESSIONS;
    f.chan_seq = 1;
    f.u.sessions.node_id = 1;
    CHECK_INT(pframe_encode(&f, &b), 0);
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), 0);
    CHECK_INT(g.u.sessions.nadd, 0);
    CHECK_INT(g.u.sessions.ndel, 0);
    CHECK(!g.u.sessions.full);
    /* No pointer arithmetic on a NULL list (UBSan) */
    CHECK(g.u.sessions.add == NULL && g.u.sessions.del == NULL);
    pframe_release(&g);
    buf_reset(&b);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_ROUTES; /* the COMPLETE of an empty table */
    f.chan_seq = 1;
    f.u.routes.flags = PFRAME_ROUTES_COMPLETE;
    CHECK_INT(pframe_encode(&f, &b), 0);
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), 0);
    CHECK_INT(g.u.routes.nadd + g.u.routes.ndel, 0);
    CHECK_INT(g.u.routes.flags, PFRAME_ROUTES_COMPLETE);
    pframe_release(&g);
    buf_reset(&b);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_RAFT;
    CHECK_INT(pframe_encode(&f, &b), 0);
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), 0);
    CHECK_INT(g.u.raft.len, 0);
    pframe_release(&g);
    buf_free(&b);
}

static void test_encode_refuses_bad_frames(void)
{
    struct pframe f;
    struct buf b = {0};
    static const struct pframe_range bad1[] = {{3, 2}};
    static const struct pframe_range bad2[] = {{1, 5}, {5, 6}};
    static const struct pframe_range bad3[] = {{0, 5}};

    sample(PFRAME_FWD, &f);
    f.chan_seq = 0;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    sample(PFRAME_FWD, &f);
    f.u.fwd.low_water = 10;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    sample(PFRAME_FWD, &f);
    f.u.fwd.xml = "a\0b";
    f.u.fwd.xml_len = 3;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    sample(PFRAME_FWD, &f);
    f.u.fwd.to = NULL;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    sample(PFRAME_ACK, &f);
    f.u.ack.ranges = bad1;
    f.u.ack.nranges = 1;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    f.u.ack.ranges = bad2;
    f.u.ack.nranges = 2;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    f.u.ack.ranges = bad3;
    f.u.ack.nranges = 1;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    f.u.ack.nranges = 0;
    f.u.ack.nbounced = 0;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL); /* an ACK of nothing */
    sample(PFRAME_HELLO, &f);
    f.u.hello.incarnation = 0;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    sample(PFRAME_HELLO, &f);
    char addr[PFRAME_MAX_ADDR + 2];
    memset(addr, 'a', sizeof addr - 1);
    addr[sizeof addr - 1] = 0;
    f.u.hello.addr = addr;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    f.type = 99;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    CHECK_INT(b.len, 0);

    /* Over the body bound. */
    sample(PFRAME_RAFT, &f);
    char *big = calloc(1, PFRAME_MAX_BODY);
    REQUIRE(big != NULL);
    f.u.raft.data = big;
    f.u.raft.len = PFRAME_MAX_BODY;
    CHECK_INT(pframe_encode(&f, &b), XE_LIMIT);
    CHECK_INT(b.len, 0);
    f.u.raft.len = PFRAME_MAX_BODY - 6;
    CHECK_INT(pframe_encode(&f, &b), 0);
    CHECK_INT(b.len, PFRAME_MAX_BODY + 4);
    free(big);
    buf_free(&b);
}

/* Every proper prefix of every body fails with XE_PROTO; so does every
 * body with a trailing byte. */
static void test_every_truncation_fails(void)
{
    for (int t = PFRAME_HELLO; t <= PFRAME_REFUSE; t++) {
        struct pframe f, g;
        struct buf b = {0};
        sample(t, &f);
        REQUIRE(pframe_encode(&f, &b) == 0);
        const char *body = b.data + 4;
        size_t n = b.len - 4;
        for (size_t k = 0; k < n; k++) {
            char *copy = malloc(k + 1); /* exact size, so ASan sees over-reads */
            memcpy(copy, body, k);
            int rc = pframe_decode(copy, k, &g);
            /* a version 3 HELLO without its range is session 4's layout
             * (test_session4_hello) */
            if (t == PFRAME_HELLO && k == n - 2 && rc == 0 && g.u.hello.unranged) {
                pframe_release(&g);
                free(copy);
                continue;
            }
            if (rc != XE_PROTO)
                fprintf(stderr, "%s prefix %zu: %d\n", pframe_type_name(t), k, rc);
            CHECK_INT(rc, XE_PROTO);
            CHECK(g.owned_ == NULL);
            free(copy);
        }
        char *longer = malloc(n + 1);
        memcpy(longer, body, n);
        longer[n] = 0;
        CHECK_INT(pframe_decode(longer, n + 1, &g), XE_PROTO);
        free(longer);
        buf_free(&b);
    }
}

/* PING and PONG carry the sender's component count after the nonce
 * (u64 nonce | u32 components, big-endian): the exact bytes, and a PING of
 * the older layout (nonce only) is refused as truncated. */
static void test_ping_components_layout(void)
{
    static const unsigned char want[] = {
        0, 0, 0, 14,   PFRAME_VERSION, PFRAME_PONG, 0,    0,    0,
        0, 0, 0, 0x01, 0x02,           0x00,        0x00, 0x01, 0x2c};
    struct pframe f = {.type = PFRAME_PONG}, g;
    struct buf b = {0};

    f.u.ping.nonce = 0x0102;
    f.u.ping.components = 300;
    REQUIRE(pframe_encode(&f, &b) == 0);
    CHECK_INT(b.len, sizeof want);
    CHECK(memcmp(b.data, want, sizeof want) == 0);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.type, PFRAME_PONG);
    CHECK(g.u.ping.nonce == 0x0102);
    CHECK_INT(g.u.ping.components, 300);
    pframe_release(&g);
    /* version, type, nonce only: 10 bytes */
    CHECK_INT(pframe_decode(b.data + 4, 10, &g), XE_PROTO);
    buf_free(&b);
}

static void test_bad_fields_fail(void)
{
    struct pframe f, g;
    struct buf b = {0};

    sample(PFRAME_PING, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[4] = PFRAME_VERSION + 1; /* version */
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_UNSUPPORTED);
    b.data[4] = PFRAME_VERSION_MIN - 1; /* below what this build reads */
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_UNSUPPORTED);
    b.data[4] = PFRAME_VERSION;
    b.data[5] = 0; /* type */
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    b.data[5] = PFRAME_REFUSE + 1;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_reset(&b);

    /* A NUL inside a string, and a missing terminator. */
    sample(PFRAME_CONFLICT, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    /* 4 len, 1 ver, 1 type, 8 chan_seq, 4 str len, then the name. */
    b.data[18 + 3] = 0;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    b.data[18 + 3] = 'x';
    b.data[18 + 15] = 'z';
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_reset(&b);

    /* chan_seq 0 on a sequenced type. */
    sample(PFRAME_CONFLICT, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    memset(b.data + 6, 0, 8);
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_reset(&b);

    /* SESSIONS full flag 2. */
    sample(PFRAME_SESSIONS, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[14 + 24] = 2;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_reset(&b);

    /* ACK with overlapping ranges on the wire. */
    sample(PFRAME_ACK, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    /* second range's first (offset 14 + 8 + 4 + 16) := 1 */
    memset(b.data + 14 + 28, 0, 8);
    b.data[14 + 28 + 7] = 1;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_reset(&b);

    /* FWD with low_water > seq on the wire. */
    sample(PFRAME_FWD, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[14 + 24 + 7] = 10;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_free(&b);
}

/* The attrs of SESSIONS and ROUTES entries (version 3): their layout on
 * the wire, and unknown kinds or flags refused both ways. */
static void test_entry_attrs(void)
{
    struct pframe f = {0}, g;
    struct buf b = {0};
    struct pframe_route e = {
        "u@example.com/r", 2, 3, 4, {PFRAME_KIND_C2S_WS, PFRAME_ATTR_AVAILABLE, -5}};
    struct pframe_sess s = {"u@example.com/r", 3, 0, {PFRAME_KIND_C2S_TCP, 0, 0}};
    /* 4 len, 1 ver, 1 type, 8 chan_seq, 8 term, 1 flags, 4 nadd, 4 str len,
     * 15 name, 1 NUL, 24 (node, sid, ord): the attr at 71. */
    const size_t at = 71;

    f.type = PFRAME_ROUTES;
    f.chan_seq = 1;
    f.u.routes.add = &e;
    f.u.routes.nadd = 1;
    REQUIRE(pframe_encode(&f, &b) == 0);
    CHECK_INT(b.len, at + 3 + 4);
    CHECK_INT((unsigned char)b.data[at], PFRAME_KIND_C2S_WS);
    CHECK_INT((unsigned char)b.data[at + 1], PFRAME_ATTR_AVAILABLE);
    CHECK_INT((unsigned char)b.data[at + 2], 0xfb); /* -5 */
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.routes.add[0].attr.priority, -5);
    CHECK_INT(g.u.routes.add[0].attr.kind, PFRAME_KIND_C2S_WS);
    CHECK(g.u.routes.add[0].attr.flags == PFRAME_ATTR_AVAILABLE);
    pframe_release(&g);
    /* priority 0x80 is -128, 0x7f is 127 */
    b.data[at + 2] = (char)0x80;
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.routes.add[0].attr.priority, -128);
    pframe_release(&g);
    b.data[at + 2] = 0x7f;
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.routes.add[0].attr.priority, 127);
    pframe_release(&g);
    /* an unknown kind, an unknown flag */
    b.data[at] = 3;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    b.data[at] = PFRAME_KIND_C2S_WS;
    b.data[at + 1] = 4;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    b.data[at + 1] = (char)0x80;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    /* the attr cut off: a version-2 entry is not accepted as one */
    CHECK_INT(pframe_decode(b.data + 4, at - 4 + 4, &g), XE_PROTO);
    buf_reset(&b);
    /* the encoder refuses what the decoder refuses */
    e.attr.kind = 3;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    e.attr.kind = 0;
    e.attr.flags = 8;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    CHECK_INT(b.len, 0);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_SESSIONS;
    f.chan_seq = 1;
    f.u.sessions.node_id = 1;
    f.u.sessions.del = &s;
    f.u.sessions.ndel = 1;
    s.attr.kind = 7;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    s.attr.kind = PFRAME_KIND_C2S_TCP;
    s.attr.flags = PFRAME_ATTR_UPDATE;
    REQUIRE(pframe_encode(&f, &b) == 0);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK(g.u.sessions.del[0].attr.flags == PFRAME_ATTR_UPDATE);
    CHECK_INT(g.u.sessions.del[0].attr.kind, PFRAME_KIND_C2S_TCP);
    pframe_release(&g);
    buf_free(&b);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bodies, and valid frames with random bytes flipped: decode returns
 * 0 or a code, never crashes (run under ASan in CI). */
static void test_random_garbage(void)
{
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 20000; i++) {
        size_t n = rnd() % 96;
        unsigned char *p = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            p[k] = (unsigned char)rnd();
        if (n >= 2 && (i & 1)) {
            p[0] = PFRAME_VERSION;
            p[1] = (unsigned char)(1 + rnd() % 12);
        }
        struct pframe g;
        int rc = pframe_decode(p, n, &g);
        CHECK(rc == 0 || rc == XE_PROTO || rc == XE_UNSUPPORTED);
        pframe_release(&g);
        free(p);
    }
    for (int t = PFRAME_HELLO; t <= PFRAME_REFUSE; t++) {
        struct pframe f;
        struct buf b = {0};
        sample(t, &f);
        REQUIRE(pframe_encode(&f, &b) == 0);
        for (int i = 0; i < 2000; i++) {
            size_t n = b.len - 4;
            unsigned char *p = malloc(n);
            memcpy(p, b.data + 4, n);
            for (int k = 0; k < 1 + (int)(rnd() % 3); k++)
                p[rnd() % n] = (unsigned char)rnd();
            struct pframe g;
            int rc = pframe_decode(p, n, &g);
            CHECK(rc == 0 || rc == XE_PROTO || rc == XE_UNSUPPORTED);
            pframe_release(&g);
            free(p);
        }
        buf_free(&b);
    }
}

/* A stream of all types decodes the same in one piece, split at every
 * point, and one byte at a time. */
static void test_chunking(void)
{
    struct buf all = {0};
    int ntypes = PFRAME_REFUSE;

    for (int t = PFRAME_HELLO; t <= PFRAME_REFUSE; t++) {
        struct pframe f;
        sample(t, &f);
        REQUIRE(pframe_encode(&f, &all) == 0);
    }
    /* split == all.len + 1 means one byte at a time. */
    for (size_t split = 1; split <= all.len + 1; split++) {
        struct pframe_dec d;
        int got = 0;
        size_t pos = 0;
        pframe_dec_init(&d);
        while (pos < all.len) {
            size_t n = split > all.len ? 1 : (pos == 0 ? split : all.len - pos);
            CHECK_INT(pframe_dec_feed(&d, all.data + pos, n), 0);
            pos += n;
            struct pframe g, f;
            int rc;
            while ((rc = pframe_dec_next(&d, &g)) == 1) {
                got++;
                sample(got, &f);
                CHECK(same(&f, &g));
                pframe_release(&g);
            }
            CHECK_INT(rc, 0);
        }
        CHECK_INT(got, ntypes);
        CHECK_INT(d.frames, ntypes);
        pframe_dec_free(&d);
    }
    buf_free(&all);
}

static void test_decoder_errors_are_sticky(void)
{
    struct pframe_dec d;
    struct pframe g;
    unsigned char huge[4] = {0x00, 0x10, 0x00, 0x01}; /* 1 MiB + 1 */
    unsigned char tiny[5] = {0, 0, 0, 1, 1};

    pframe_dec_init(&d);
    CHECK_INT(pframe_dec_feed(&d, huge, 3), 0);
    CHECK_INT(pframe_dec_next(&d, &g), 0);
    CHECK_INT(pframe_dec_feed(&d, huge + 3, 1), 0);
    CHECK_INT(pframe_dec_next(&d, &g), XE_PROTO);
    CHECK_INT(pframe_dec_next(&d, &g), XE_PROTO);
    CHECK_INT(pframe_dec_feed(&d, tiny, 5), XE_PROTO);
    pframe_dec_free(&d);

    pframe_dec_init(&d);
    CHECK_INT(pframe_dec_feed(&d, tiny, 5), 0);
    CHECK_INT(pframe_dec_next(&d, &g), XE_PROTO);
    pframe_dec_free(&d);

    /* A good frame then garbage: the good one comes out first. */
    struct pframe f;
    struct buf b = {0};
    sample(PFRAME_PING, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    buf_append(&b, "\0\0\0\3\3\77\0", 7); /* version 3, type 63 */
    pframe_dec_init(&d);
    CHECK_INT(pframe_dec_feed(&d, b.data, b.len), 0);
    CHECK_INT(pframe_dec_next(&d, &g), 1);
    pframe_release(&g);
    CHECK_INT(pframe_dec_next(&d, &g), XE_PROTO);
    pframe_dec_free(&d);
    buf_free(&b);
}

/* hex renders b's bytes, for byte transcripts. */
static const char *hex(const struct buf *b)
{
    static char out[1024];
    size_t k = 0;

    for (size_t i = 0; i < b->len && k + 3 < sizeof out; i++)
        k += (size_t)snprintf(out + k, sizeof out - k, "%02x",
                              (unsigned)(unsigned char)b->data[i]);
    out[k] = '\0';
    return out;
}

/* Version 2 is the layout of session 3's nodes (git f47de8d): a HELLO
 * without a range, entries without attributes.  This build writes it byte
 * for byte and reads it back with the attributes such a node implied. */
static void test_version2_layout(void)
{
    struct pframe f, g;
    struct buf b = {0};
    struct pframe_route e[2] = {
        {"cb.x", 2, 3, 4, {PFRAME_KIND_COMPONENT, 0, 0}},
        {"u@x/r", 2, 5, 6, {PFRAME_KIND_C2S_WS, PFRAME_ATTR_AVAILABLE, 5}}};
    struct pframe_sess s[2] = {
        {"u@x/r",
         5,
         0,
         {PFRAME_KIND_C2S_TCP, PFRAME_ATTR_AVAILABLE | PFRAME_ATTR_UPDATE, 1}},
        {"cb.x", 3, 0, {0}}};

    memset(&f, 0, sizeof f);
    f.type = PFRAME_HELLO;
    f.version = 2;
    f.u.hello =
        (struct pframe_hello){2, 0xc1, 0x11, 0x22, "h:1", 0x33, 4, 5, 2, 3, false};
    REQUIRE(pframe_encode(&f, &b) == 0);
    CHECK_STR(hex(&b), "0000003c" /* len */ "02"
                       "01"
                       "0002"
                       "00000000000000c1"
                       "0000000000000011"
                       "0000000000000022"
                       "00000003"
                       "683a31"
                       "00"
                       "0000000000000033"
                       "0000000000000004"
                       "0000000000000005");
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.version, 2);
    CHECK_INT(g.u.hello.vmin, 2);
    CHECK_INT(g.u.hello.vmax, 2);
    pframe_release(&g);
    /* at 3 the range follows */
    buf_reset(&b);
    f.version = 3;
    REQUIRE(pframe_encode(&f, &b) == 0);
    CHECK_INT(b.len, 0x3c + 4 + 2);
    CHECK_INT((unsigned char)b.data[b.len - 2], 2);
    CHECK_INT((unsigned char)b.data[b.len - 1], 3);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.version, 3);
    CHECK_INT(g.u.hello.vmax, 3);
    pframe_release(&g);

    buf_reset(&b);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_ROUTES;
    f.version = 2;
    f.chan_seq = 1;
    f.u.routes.add = e;
    f.u.routes.nadd = 2;
    REQUIRE(pframe_encode(&f, &b) == 0);
    CHECK_STR(hex(&b), "0000005e"
                       "02"
                       "0d"
                       "0000000000000001"
                       "0000000000000000"
                       "00"
                       "00000002"
                       "00000004"
                       "63622e78"
                       "00"
                       "0000000000000002"
                       "0000000000000003"
                       "0000000000000004"
                       "00000005"
                       "75407"
                       "82f72"
                       "00"
                       "0000000000000002"
                       "0000000000000005"
                       "0000000000000006"
                       "00000000");
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.routes.add[0].attr.kind, PFRAME_KIND_COMPONENT);
    CHECK_INT(g.u.routes.add[1].attr.kind, PFRAME_KIND_C2S_TCP);
    CHECK_INT(g.u.routes.add[1].attr.flags, 0);
    CHECK_INT(g.u.routes.add[1].attr.priority, 0);
    pframe_release(&g);

    /* SESSIONS at 2: an attribute update is not written (a version 2 node
     * would take it for a new session) */
    buf_reset(&b);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_SESSIONS;
    f.version = 2;
    f.chan_seq = 1;
    f.u.sessions.node_id = 2;
    f.u.sessions.add = s;
    f.u.sessions.nadd = 2;
    REQUIRE(pframe_encode(&f, &b) == 0);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.sessions.nadd, 1);
    CHECK_STR(g.u.sessions.add[0].name, "cb.x");
    pframe_release(&g);
    /* a version 2 frame with an attr is malformed (trailing bytes) */
    buf_reset(&b);
    f.version = 3;
    f.u.sessions.add = s + 1;
    f.u.sessions.nadd = 1;
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[4] = 2;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    /* versions the codec does not write */
    f.version = 1;
    CHECK_INT(pframe_encode(&f, &b), XE_UNSUPPORTED);
    f.version = PFRAME_VERSION_MAX + 1;
    CHECK_INT(pframe_encode(&f, &b), XE_UNSUPPORTED);
    buf_free(&b);
}

/* A later version's HELLO and REFUSE are read (their layout is frozen from
 * 3 on, with bytes appended), every other frame of it is not. */
/* Session 4's HELLO (git 5d99433): version 3, the version 2 fields and no
 * range.  It is read as such (unranged) so that plink can refuse it with
 * the reason; any other version 3 HELLO without its whole range is
 * malformed, and so is one at a later version. */
static void test_session4_hello(void)
{
    struct pframe f, g;
    struct buf b = {0};

    memset(&f, 0, sizeof f);
    f.type = PFRAME_HELLO;
    f.version = 2;
    f.u.hello =
        (struct pframe_hello){2, 0xc1, 0x11, 0x22, "h:1", 0x33, 4, 5, 0, 0, false};
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[4] = 3; /* session 4 wrote this layout at version 3 */
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.version, 3);
    CHECK(g.u.hello.unranged);
    CHECK_INT(g.u.hello.node_id, 0x11);
    CHECK_STR(g.u.hello.addr, "h:1");
    CHECK_INT(g.u.hello.wall_ms, 5);
    pframe_release(&g);
    /* half a range */
    buf_append(&b, "\2", 1);
    b.data[3] = (char)(b.data[3] + 1);
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    /* the whole range: not unranged */
    buf_append(&b, "\3", 1);
    b.data[3] = (char)(b.data[3] + 1);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK(!g.u.hello.unranged);
    CHECK_INT(g.u.hello.vmax, 3);
    pframe_release(&g);
    /* at version 4, no range is malformed: no build wrote that */
    b.len -= 2;
    b.data[3] = (char)(b.data[3] - 2);
    b.data[4] = 4;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    buf_free(&b);
}

/* Version 4 (pframe.h) is version 3's layout: every frame type encodes
 * to the same bytes but the version byte, and decodes at 4 as at 3. */
static void test_version4_is_version3(void)
{
    for (int t = PFRAME_HELLO; t <= PFRAME_REFUSE; t++) {
        struct pframe f, g;
        struct buf b3 = {0}, b4 = {0};

        sample(t, &f);
        f.version = 3;
        REQUIRE(pframe_encode(&f, &b3) == 0);
        f.version = 4;
        REQUIRE(pframe_encode(&f, &b4) == 0);
        CHECK(b3.len == b4.len && b3.data[4] == 3 && b4.data[4] == 4);
        CHECK(b3.len > 5 && memcmp(b3.data + 5, b4.data + 5, b3.len - 5) == 0);
        CHECK_INT(pframe_decode(b4.data + 4, b4.len - 4, &g), 0);
        CHECK_INT(g.version, 4);
        CHECK_INT(g.type, t);
        pframe_release(&g);
        buf_free(&b3);
        buf_free(&b4);
    }
}

static void test_later_version_hello(void)
{
    struct pframe f, g;
    struct buf b = {0};

    sample(PFRAME_HELLO, &f);
    f.u.hello.vmin = 5;
    f.u.hello.vmax = 6;
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[4] = 6;
    buf_append(&b, "\1\2\3", 3); /* what version 6 appended */
    b.data[3] = (char)(b.data[3] + 3);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.version, 6);
    CHECK_INT(g.u.hello.vmin, 5);
    CHECK_INT(g.u.hello.vmax, 6);
    CHECK_INT(pframe_version_pick(PFRAME_VERSION_MIN, PFRAME_VERSION_MAX, g.u.hello.vmin,
                                  g.u.hello.vmax),
              0);
    pframe_release(&g);
    /* but at this codec's own versions no trailing byte */
    b.data[4] = 3;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    b.data[4] = PFRAME_VERSION_MAX;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);
    /* a range upside down */
    b.data[4] = 6;
    b.data[b.len - 5] = 7;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);

    buf_reset(&b);
    sample(PFRAME_REFUSE, &f);
    f.u.refuse.code = PFRAME_REFUSE_VERSION;
    f.u.refuse.vmin = 2;
    f.u.refuse.vmax = 3;
    REQUIRE(pframe_encode(&f, &b) == 0);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.refuse.code, PFRAME_REFUSE_VERSION);
    CHECK_INT(g.u.refuse.vmax, 3);
    pframe_release(&g);
    b.data[4] = 9;
    b.data[4 + 2 + 8] = 77; /* a code of version 9: a refusal all the same */
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.refuse.code, PFRAME_REFUSE_OTHER);
    pframe_release(&g);
    /* at 2 there is no VERSION code and no range (a version 2 node reads
     * codes 0 and 1 only) */
    buf_reset(&b);
    f.version = 2;
    CHECK_INT(pframe_encode(&f, &b), XE_INVAL);
    f.u.refuse.code = PFRAME_REFUSE_OTHER;
    REQUIRE(pframe_encode(&f, &b) == 0);
    REQUIRE(pframe_decode(b.data + 4, b.len - 4, &g) == 0);
    CHECK_INT(g.u.refuse.vmax, 0);
    pframe_release(&g);
    b.data[4 + 2 + 8] = 2;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_PROTO);

    /* any other frame at a later version is not readable */
    buf_reset(&b);
    sample(PFRAME_PING, &f);
    REQUIRE(pframe_encode(&f, &b) == 0);
    b.data[4] = 5;
    CHECK_INT(pframe_decode(b.data + 4, b.len - 4, &g), XE_UNSUPPORTED);
    buf_free(&b);

    CHECK_INT(pframe_version_pick(2, 3, 2, 2), 2);
    CHECK_INT(pframe_version_pick(2, 3, 3, 5), 3);
    CHECK_INT(pframe_version_pick(3, 3, 2, 2), 0);
    CHECK_INT(pframe_version_pick(2, 3, 2, 3), 3);
}

/* Once the link's version is chosen, a frame at another is an error. */
static void test_decoder_version(void)
{
    struct pframe f, g;
    struct buf b = {0};
    struct pframe_dec d;

    sample(PFRAME_PING, &f);
    f.version = 2;
    REQUIRE(pframe_encode(&f, &b) == 0);
    f.version = 3;
    REQUIRE(pframe_encode(&f, &b) == 0);
    pframe_dec_init(&d);
    d.version = 2;
    CHECK_INT(pframe_dec_feed(&d, b.data, b.len), 0);
    CHECK_INT(pframe_dec_next(&d, &g), 1);
    CHECK_INT(g.version, 2);
    pframe_release(&g);
    CHECK_INT(pframe_dec_next(&d, &g), XE_PROTO);
    pframe_dec_free(&d);
    buf_free(&b);
}

TL_MAIN(T(test_round_trip_every_type), T(test_empty_lists_and_bytes),
        T(test_encode_refuses_bad_frames), T(test_every_truncation_fails),
        T(test_ping_components_layout), T(test_bad_fields_fail), T(test_random_garbage),
        T(test_chunking), T(test_decoder_errors_are_sticky), T(test_entry_attrs),
        T(test_version2_layout), T(test_version4_is_version3),
        T(test_later_version_hello), T(test_decoder_version), T(test_session4_hello))
