/* test_pchan.c: the reliable peer channel: lossy reconnects at every point
 * of a scripted exchange and in seeded random schedules (everything is
 * delivered exactly once, in order), restarts reset the channel, a full
 * resend buffer is reported, protocol violations are errors. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pchan.h"
#include "pframe.h"
#include "testlib.h"

#define MAXMSG 4096

/* One side of the in-memory link. */
struct end {
    struct pchan *ch;
    uint64_t inc;
    struct buf wire;      /* bytes written toward the other end, in flight */
    struct pframe_dec in; /* bytes received from the other end */
    uint64_t next_id;     /* next message id this side sends */
    uint64_t got[MAXMSG]; /* ids received, in order */
    size_t ngot;
    int errors;
    enum pchan_resume how;
    int link_ups;
};

static uint64_t now;

static void end_init(struct end *e, uint64_t inc, const struct pchan_config *cfg)
{
    memset(e, 0, sizeof *e);
    e->inc = inc;
    e->next_id = 1;
    pframe_dec_init(&e->in);
    if (pchan_new(cfg, inc, &e->ch) != 0)
        abort();
}

static void end_free(struct end *e)
{
    pchan_free(e->ch);
    buf_free(&e->wire);
    pframe_dec_free(&e->in);
}

/* send_msg sends one numbered SUBMIT from e; returns pchan_send's code. */
static int send_msg(struct end *e)
{
    char payload[32];
    struct pframe f = {.type = PFRAME_SUBMIT};
    int n = snprintf(payload, sizeof payload, "m%" PRIu64, e->next_id);

    f.u.submit.request_id = e->next_id;
    f.u.submit.data = payload;
    f.u.submit.len = (size_t)n;
    int rc = pchan_send(e->ch, &f, &e->wire);
    if (rc == 0)
        e->next_id++;
    return rc;
}

static void hello(struct end *e)
{
    struct pframe f = {.type = PFRAME_HELLO};

    f.u.hello.proto = PFRAME_PROTO;
    f.u.hello.cluster_id = 1;
    f.u.hello.node_id = e->inc;
    f.u.hello.addr = "127.0.0.1:5224";
    pchan_hello(e->ch, &f.u.hello);
    if (pframe_encode(&f, &e->wire) != 0)
        abort();
}

/* handle feeds one received frame to the receiving end r. */
static void handle(struct end *r, const struct pframe *f)
{
    bool deliver;
    int rc;

    if (f->type == PFRAME_HELLO) {
        rc = pchan_link_up(r->ch, &f->u.hello, &r->wire, &r->how);
        if (rc != 0)
            r->errors++;
        r->link_ups++;
        return;
    }
    rc = pchan_recv(r->ch, f, now, &r->wire, &deliver);
    if (rc != 0) {
        r->errors++;
        return;
    }
    if (deliver && r->ngot < MAXMSG)
        r->got[r->ngot++] = f->u.submit.request_id;
}

/* pump moves up to n bytes of s's wire into r and processes the frames. */
static void pump(struct end *s, struct end *r, size_t n)
{
    struct pframe f;
    int rc;

    if (n > s->wire.len)
        n = s->wire.len;
    if (n == 0)
        return;
    if (pframe_dec_feed(&r->in, s->wire.data, n) != 0)
        abort();
    buf_consume(&s->wire, n);
    while ((rc = pframe_dec_next(&r->in, &f)) == 1) {
        handle(r, &f);
        pframe_release(&f);
    }
    if (rc < 0)
        r->errors++;
}

/* drop loses the connection and whatever was in flight. */
static void drop(struct end *a, struct end *b)
{
    pchan_link_down(a->ch);
    pchan_link_down(b->ch);
    buf_reset(&a->wire);
    buf_reset(&b->wire);
    pframe_dec_free(&a->in);
    pframe_dec_free(&b->in);
    pframe_dec_init(&a->in);
    pframe_dec_init(&b->in);
}

static void connect_(struct end *a, struct end *b)
{
    hello(a);
    hello(b);
}

static void settle(struct end *a, struct end *b)
{
    for (int i = 0; i < 8; i++) {
        pump(a, b, SIZE_MAX);
        pump(b, a, SIZE_MAX);
        now += 1000;
        pchan_tick(a->ch, now, &a->wire);
        pchan_tick(b->ch, now, &b->wire);
    }
}

/* in_order: r received exactly 1..n, once each, in order. */
static bool in_order(const struct end *r, uint64_t n)
{
    if (r->ngot != n)
        return false;
    for (size_t i = 0; i < r->ngot; i++)
        if (r->got[i] != i + 1)
            return false;
    return true;
}

static void test_plain_exchange(void)
{
    struct end a, b;
    struct pchan_stats st;

    end_init(&a, 0xa1, NULL);
    end_init(&b, 0xb1, NULL);
    for (int i = 0; i < 5; i++)
        CHECK_INT(send_msg(&a), 0); /* queued before the link is up */
    CHECK_INT(a.wire.len, 0);
    connect_(&a, &b);
    settle(&a, &b);
    CHECK_INT(a.how, PCHAN_FIRST);
    CHECK_INT(b.how, PCHAN_FIRST);
    for (int i = 0; i < 100; i++) {
        CHECK_INT(send_msg(&a), 0);
        CHECK_INT(send_msg(&b), 0);
        pump(&a, &b, SIZE_MAX);
        pump(&b, &a, SIZE_MAX);
    }
    settle(&a, &b);
    CHECK(in_order(&b, 105));
    CHECK(in_order(&a, 100));
    CHECK_INT(a.errors + b.errors, 0);
    pchan_get_stats(a.ch, &st);
    CHECK_INT(st.buffered, 0);
    CHECK_INT(st.acked_seq, 105);
    CHECK_INT(st.recv_seq, 100);
    CHECK_INT(pchan_next_deadline(a.ch), PCHAN_NO_DEADLINE);
    end_free(&a);
    end_free(&b);
}

/* A fixed exchange (20 messages each way, written and read in 7-byte
 * slices); the link is dropped after the i-th slice for every i, then
 * reconnected; a second drop follows 3 slices later. */
static void run_drop_at(size_t drop_at, size_t drop2, int *errors, bool *ok)
{
    struct end a, b;
    size_t step = 0;

    end_init(&a, 0xa2, NULL);
    end_init(&b, 0xb2, NULL);
    connect_(&a, &b);
    for (int round = 0; round < 200; round++) {
        if (a.next_id <= 20 && round % 3 == 0)
            send_msg(&a);
        if (b.next_id <= 20 && round % 4 == 0)
            send_msg(&b);
        pump(&a, &b, 7);
        pump(&b, &a, 7);
        if (round % 5 == 0) {
            now += 30;
            pchan_tick(a.ch, now, &a.wire);
            pchan_tick(b.ch, now, &b.wire);
        }
        step++;
        if (step == drop_at || step == drop2) {
            drop(&a, &b);
            connect_(&a, &b);
        }
    }
    settle(&a, &b);
    *errors = a.errors + b.errors;
    *ok = in_order(&b, 20) && in_order(&a, 20);
    struct pchan_stats sa, sb;
    pchan_get_stats(a.ch, &sa);
    pchan_get_stats(b.ch, &sb);
    *ok = *ok && sa.buffered == 0 && sb.buffered == 0 && sa.resets == 0 && sb.resets == 0;
    end_free(&a);
    end_free(&b);
}

static void test_drop_at_every_point(void)
{
    for (size_t i = 1; i <= 200; i++) {
        int errors;
        bool ok;
        run_drop_at(i, i + 3, &errors, &ok);
        if (errors != 0 || !ok)
            fprintf(stderr, "drop at %zu: errors %d ok %d\n", i, errors, ok);
        CHECK_INT(errors, 0);
        CHECK(ok);
    }
}

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Seeded random schedules: sends, partial reads, ticks and drops (also
 * while a HELLO is in flight). */
static void test_random_schedules(void)
{
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct end a, b;
        struct pchan_config cfg;
        rng = seed * 0x9e3779b97f4a7c15ULL;
        pchan_config_default(&cfg);
        cfg.ack_every = 1 + (unsigned)(rnd() % 8);
        cfg.max_frames = 8 + rnd() % 64;
        end_init(&a, 0xa3, &cfg);
        end_init(&b, 0xb3, &cfg);
        connect_(&a, &b);
        for (int i = 0; i < 600; i++) {
            switch (rnd() % 8) {
            case 0:
                if (a.next_id <= 300)
                    send_msg(&a); /* XE_BUSY is fine: resent later */
                break;
            case 1:
                if (b.next_id <= 300)
                    send_msg(&b);
                break;
            case 2:
            case 3:
                pump(&a, &b, 1 + rnd() % 64);
                break;
            case 4:
            case 5:
                pump(&b, &a, 1 + rnd() % 64);
                break;
            case 6:
                now += rnd() % 40;
                pchan_tick(a.ch, now, &a.wire);
                pchan_tick(b.ch, now, &b.wire);
                break;
            case 7:
                if (rnd() % 6 == 0) {
                    drop(&a, &b);
                    connect_(&a, &b);
                }
                break;
            }
        }
        settle(&a, &b);
        while (a.next_id <= 300 || b.next_id <= 300) {
            if (a.next_id <= 300)
                send_msg(&a);
            if (b.next_id <= 300)
                send_msg(&b);
            settle(&a, &b);
        }
        if (!in_order(&b, 300) || !in_order(&a, 300) || a.errors || b.errors) {
            fprintf(stderr, "seed %" PRIu64 " failed: a got %zu b got %zu errors %d %d\n",
                    seed, a.ngot, b.ngot, a.errors, b.errors);
            struct pchan_stats x, y;
            pchan_get_stats(a.ch, &x);
            pchan_get_stats(b.ch, &y);
            fprintf(stderr,
                    "  a: up %d next %" PRIu64 " acked %" PRIu64 " recv %" PRIu64
                    " buf %zu wire %zu | b: up %d next %" PRIu64 " acked %" PRIu64
                    " recv %" PRIu64 " buf %zu wire %zu ids %" PRIu64 " %" PRIu64 "\n",
                    pchan_is_up(a.ch), x.next_seq, x.acked_seq, x.recv_seq, x.buffered,
                    a.wire.len, pchan_is_up(b.ch), y.next_seq, y.acked_seq, y.recv_seq,
                    y.buffered, b.wire.len, a.next_id, b.next_id);
            fprintf(stderr,
                    "  sent %" PRIu64 " %" PRIu64 " resets %" PRIu64 " %" PRIu64
                    " dups %" PRIu64 " %" PRIu64 "\n",
                    x.sent, y.sent, x.resets, y.resets, x.duplicates, y.duplicates);
            for (size_t k = 0; k < b.ngot && k < 400; k++)
                if (b.got[k] != k + 1) {
                    fprintf(stderr, "  b[%zu] = %" PRIu64 "\n", k, b.got[k]);
                    break;
                }
        }
        CHECK(in_order(&b, 300));
        CHECK(in_order(&a, 300));
        CHECK_INT(a.errors + b.errors, 0);
        end_free(&a);
        end_free(&b);
    }
}

/* The peer process restarts: the survivor's link_up says RESET and its
 * unacknowledged frames are discarded; both sides start again at 1. */
static void test_incarnation_change_resets(void)
{
    struct end a, b;
    struct pchan_stats st;

    end_init(&a, 0xa4, NULL);
    end_init(&b, 0xb4, NULL);
    connect_(&a, &b);
    settle(&a, &b);
    for (int i = 0; i < 10; i++)
        send_msg(&a);
    pump(&a, &b, SIZE_MAX); /* b got them but its ack is lost with b */
    CHECK_INT(b.ngot, 10);
    drop(&a, &b);
    for (int i = 0; i < 3; i++)
        send_msg(&a); /* queued while b is down */
    end_free(&b);
    end_init(&b, 0xb5, NULL); /* b restarted */
    connect_(&a, &b);
    settle(&a, &b);
    CHECK_INT(a.how, PCHAN_RESET);
    CHECK_INT(b.how, PCHAN_FIRST);
    CHECK_INT(b.ngot, 0); /* the 13 were discarded: fwd replays end to end */
    pchan_get_stats(a.ch, &st);
    CHECK_INT(st.resets, 1);
    CHECK_INT(st.discarded, 13);
    CHECK_INT(st.next_seq, 1);
    CHECK_INT(st.peer_incarnation, 0xb5);
    a.next_id = 1;
    for (int i = 0; i < 5; i++) {
        send_msg(&a);
        send_msg(&b);
    }
    settle(&a, &b);
    CHECK(in_order(&b, 5));
    CHECK_INT(a.ngot, 5);
    CHECK_INT(a.errors + b.errors, 0);

    /* And the other way round: a restarts while b holds frames for it. */
    for (int i = 0; i < 4; i++)
        send_msg(&b);
    drop(&a, &b);
    end_free(&a);
    end_init(&a, 0xa5, NULL);
    connect_(&a, &b);
    settle(&a, &b);
    CHECK_INT(b.how, PCHAN_RESET);
    CHECK_INT(a.how, PCHAN_FIRST);
    CHECK_INT(a.ngot, 0);
    CHECK_INT(a.errors + b.errors, 0);
    end_free(&a);
    end_free(&b);
}

static void test_buffer_full(void)
{
    struct end a, b;
    struct pchan_config cfg;
    struct pchan_stats st;

    pchan_config_default(&cfg);
    cfg.max_frames = 4;
    cfg.ack_every = 100;
    end_init(&a, 0xa6, &cfg);
    end_init(&b, 0xb6, &cfg);
    for (int i = 0; i < 4; i++)
        CHECK_INT(send_msg(&a), 0);
    CHECK_INT(send_msg(&a), XE_BUSY);
    CHECK(!pchan_has_room(a.ch, 10));
    connect_(&a, &b);
    pump(&a, &b, SIZE_MAX);
    pump(&b, &a, SIZE_MAX);
    pump(&a, &b, SIZE_MAX);
    CHECK_INT(b.ngot, 4);
    CHECK_INT(send_msg(&a), XE_BUSY); /* not acknowledged yet */
    CHECK(pchan_next_deadline(b.ch) != PCHAN_NO_DEADLINE);
    now = pchan_next_deadline(b.ch);
    pchan_tick(b.ch, now, &b.wire);
    pump(&b, &a, SIZE_MAX);
    CHECK_INT(send_msg(&a), 0);
    pchan_get_stats(a.ch, &st);
    CHECK_INT(st.busy, 2);
    CHECK_INT(st.buffered, 1);

    /* The byte bound, with a single oversized frame always allowed. */
    cfg.max_frames = 100;
    cfg.max_bytes = 100;
    struct end c;
    end_init(&c, 0xc6, &cfg);
    CHECK_INT(send_msg(&c), 0);
    CHECK_INT(send_msg(&c), 0);
    int rc = 0, n = 2;
    while ((rc = send_msg(&c)) == 0)
        n++;
    CHECK_INT(rc, XE_BUSY);
    CHECK(n >= 2 && n < 5);
    end_free(&c);
    end_free(&a);
    end_free(&b);
}

static void test_protocol_violations(void)
{
    struct end a, b;
    struct pframe f = {.type = PFRAME_SUBMIT};
    bool deliver;
    struct buf out = {0};

    end_init(&a, 0xa7, NULL);
    end_init(&b, 0xb7, NULL);
    f.chan_seq = 1;
    CHECK_INT(pchan_recv(b.ch, &f, now, &out, &deliver), XE_STATE);
    connect_(&a, &b);
    settle(&a, &b);
    f.chan_seq = 2; /* gap */
    CHECK_INT(pchan_recv(b.ch, &f, now, &out, &deliver), XE_PROTO);
    CHECK(!deliver);
    f.type = PFRAME_CHAN_ACK;
    f.u.recv_seq = 1; /* never sent */
    CHECK_INT(pchan_recv(b.ch, &f, now, &out, &deliver), XE_PROTO);
    f.type = PFRAME_PING;
    CHECK_INT(pchan_recv(b.ch, &f, now, &out, &deliver), XE_INVAL);
    f.type = PFRAME_PING;
    CHECK_INT(pchan_send(a.ch, &f, &out), XE_INVAL);

    /* A resuming HELLO claiming frames never sent. */
    struct pframe_hello h;
    enum pchan_resume how;
    send_msg(&a);
    settle(&a, &b);
    drop(&a, &b);
    pchan_hello(b.ch, &h);
    h.recv_seq = 5;
    CHECK_INT(pchan_link_up(a.ch, &h, &out, &how), XE_PROTO);
    h.recv_seq = 1;
    CHECK_INT(pchan_link_up(a.ch, &h, &out, &how), 0);
    CHECK_INT(how, PCHAN_RESUMED);
    CHECK_INT(pchan_link_up(a.ch, &h, &out, &how), XE_STATE);
    h.incarnation = 0;
    pchan_link_down(a.ch);
    CHECK_INT(pchan_link_up(a.ch, &h, &out, &how), XE_PROTO);
    struct pchan *none = NULL;
    CHECK_INT(pchan_new(NULL, 0, &none), XE_INVAL);
    CHECK(none == NULL);
    buf_free(&out);
    end_free(&a);
    end_free(&b);
}

/* Frames kept before the link's version was chosen go out at that version
 * (a SESSIONS report queued at 3 reaches a version 2 peer without its
 * attributes), and so do the later ones and the CHAN_ACKs. */
static void test_version(void)
{
    struct end a;
    struct pframe f = {.type = PFRAME_SESSIONS}, g;
    struct pframe_sess s = {
        "u@x/r", 5, 0, {PFRAME_KIND_C2S_WS, PFRAME_ATTR_AVAILABLE, 3}};
    struct pframe_hello h = {.proto = PFRAME_PROTO, .incarnation = 0xb1};
    struct buf out = {0};
    enum pchan_resume how;

    end_init(&a, 0xa1, NULL);
    CHECK_INT(pchan_version(a.ch), PFRAME_VERSION);
    f.u.sessions.node_id = 1;
    f.u.sessions.add = &s;
    f.u.sessions.nadd = 1;
    CHECK_INT(pchan_send(a.ch, &f, &a.wire), 0);
    CHECK_INT(send_msg(&a), 0);
    CHECK_INT(pchan_set_version(a.ch, 1), XE_INVAL);
    CHECK_INT(pchan_set_version(a.ch, 2), 0);
    CHECK_INT(pchan_version(a.ch), 2);
    CHECK_INT(pchan_link_up(a.ch, &h, &out, &how), 0);
    CHECK_INT(send_msg(&a), 0);
    pframe_dec_feed(&a.in, out.data, out.len);
    pframe_dec_feed(&a.in, a.wire.data, a.wire.len);
    a.in.version = 2;
    REQUIRE(pframe_dec_next(&a.in, &g) == 1);
    CHECK_INT(g.version, 2);
    CHECK_INT(g.type, PFRAME_SESSIONS);
    CHECK_INT(g.u.sessions.add[0].attr.kind, PFRAME_KIND_C2S_TCP); /* as v2 implies */
    CHECK_INT(g.u.sessions.add[0].attr.flags, 0);
    pframe_release(&g);
    for (int i = 0; i < 2; i++) {
        REQUIRE(pframe_dec_next(&a.in, &g) == 1);
        CHECK_INT(g.type, PFRAME_SUBMIT);
        CHECK_INT(g.chan_seq, (uint64_t)i + 2);
        pframe_release(&g);
    }
    CHECK_INT(pframe_dec_next(&a.in, &g), 0);
    buf_free(&out);
    end_free(&a);
}

TL_MAIN(T(test_version), T(test_plain_exchange), T(test_drop_at_every_point),
        T(test_random_schedules), T(test_incarnation_change_resets), T(test_buffer_full),
        T(test_protocol_violations))
