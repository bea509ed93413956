/* test_creq.c: the cluster request queue (xmppd/core/creq.c) as
 * transcripts: each case feeds events (requests from this node, leader
 * changes, SUBMIT_RESULTs, channel resets, ticks of a virtual clock) and
 * checks the actions the queue answered, line by line: a request goes to
 * the leader, waits for one, is served here when this node leads, is
 * answered by its deadline with what is known of its fate, and the queue's
 * bounds (count and bytes) answer at once instead of dropping anything. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "creq.h"
#include "err.h"
#include "pframe.h"
#include "testlib.h"

#define WALL 1700000000000ull

static char tr[8192]; /* the transcript of the running case */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    size_t n = strlen(tr);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tr + n, sizeof tr - n, fmt, ap);
    va_end(ap);
}

static const char *kind_name(uint8_t k)
{
    return k == PFRAME_REQ_CMD      ? "cmd"
           : k == PFRAME_REQ_JOIN   ? "join"
           : k == PFRAME_REQ_REMOVE ? "remove"
                                    : "?";
}

/* act appends the update's actions to the transcript line and ends it;
 * the done records are freed. */
static void act(const struct creq_update *u)
{
    say(" ->");
    if (u->request_id != 0)
        say(" queued(%llu)", (unsigned long long)u->request_id);
    if (u->rc < 0)
        say(" answer(%s: %.40s)", xe_strerror(u->rc), u->msg);
    if (u->serve_now)
        say(" serve-now(+%llu)", (unsigned long long)(u->expires - WALL));
    for (unsigned i = 0; i < u->n_sends; i++) {
        struct pframe_req r;
        int rc = pframe_req_decode(u->sends[i].data, u->sends[i].len, &r);
        say(" send(%llu to %llx %s)", (unsigned long long)u->sends[i].request_id,
            (unsigned long long)u->sends[i].to, rc == 0 ? kind_name(r.kind) : "bad");
    }
    for (struct creq_done *d = u->done, *next; d != NULL; d = next) {
        next = d->next;
        if (d->serve) {
            struct pframe_req r;
            int rc = pframe_req_decode(d->req, d->req_len, &r);
            say(" serve(%s %s)", (const char *)d->ctx,
                rc == 0 ? kind_name(r.kind) : "bad");
        } else {
            say(" answer(%s %s%s%.48s)", (const char *)d->ctx,
                d->rc < 0 ? xe_strerror(d->rc) : "ok", d->msg != NULL ? ": " : "",
                d->msg != NULL ? d->msg : "");
        }
        creq_done_free(d);
    }
    if (u->deadline != 0)
        say(" @%llu", (unsigned long long)u->deadline);
    say("\n");
}

static struct creq_update upd;

static void step(struct creq *q, const struct creq_event *ev)
{
    CHECK_INT(creq_step(q, ev, &upd), 0);
    act(&upd);
}

/* submit asks for a REMOVE of node id (or a CMD of len bytes when id is 0)
 * by caller name, to the leader (to 0) or to peer to only. */
static void submit(struct creq *q, uint64_t now, const char *name, uint64_t id,
                   size_t len, uint64_t to, uint64_t timeout_ms)
{
    static unsigned char cmd[4096];
    struct pframe_req r = {.kind = id != 0 ? PFRAME_REQ_REMOVE : PFRAME_REQ_CMD};
    struct creq_event ev = {.type = CREQ_EV_SUBMIT, .now = now, .wall = WALL};

    if (id != 0)
        r.u.node_id = id;
    else
        r.u.cmd = (struct pframe_bytes){cmd, len};
    ev.u.submit.req = &r;
    ev.u.submit.timeout_ms = timeout_ms;
    ev.u.submit.to = to;
    ev.u.submit.ctx = (void *)name;
    say("%llu submit %s %s", (unsigned long long)now, name, kind_name(r.kind));
    step(q, &ev);
}

static void join(struct creq *q, uint64_t now, const char *name, uint64_t to)
{
    struct pframe_req r = {.kind = PFRAME_REQ_JOIN};
    struct creq_event ev = {.type = CREQ_EV_SUBMIT, .now = now, .wall = WALL};

    r.u.join.node_id = 0x99;
    snprintf(r.u.join.addr, sizeof r.u.join.addr, "10.0.0.9:5224");
    ev.u.submit.req = &r;
    ev.u.submit.timeout_ms = 10000;
    ev.u.submit.to = to;
    ev.u.submit.ctx = (void *)name;
    say("%llu submit %s join", (unsigned long long)now, name);
    step(q, &ev);
}

static void leader(struct creq *q, uint64_t now, uint64_t id, bool leading)
{
    struct creq_event ev = {.type = CREQ_EV_LEADER, .now = now};

    ev.u.leader.leader_id = id;
    ev.u.leader.leading = leading;
    say("%llu leader %llx%s", (unsigned long long)now, (unsigned long long)id,
        leading ? " (us)" : "");
    step(q, &ev);
}

static void tick(struct creq *q, uint64_t now)
{
    struct creq_event ev = {.type = CREQ_EV_TICK, .now = now};

    say("%llu tick", (unsigned long long)now);
    step(q, &ev);
}

static void result(struct creq *q, uint64_t now, uint64_t from, uint64_t rid, int rc,
                   const char *msg)
{
    struct creq_event ev = {.type = CREQ_EV_RESULT, .now = now};

    ev.u.result.from = from;
    ev.u.result.request_id = rid;
    ev.u.result.rc = rc;
    ev.u.result.msg = msg;
    say("%llu result %llu from %llx", (unsigned long long)now, (unsigned long long)rid,
        (unsigned long long)from);
    step(q, &ev);
}

static void reset(struct creq *q, uint64_t now, uint64_t peer)
{
    struct creq_event ev = {.type = CREQ_EV_RESET, .now = now};

    ev.u.reset.peer = peer;
    say("%llu reset %llx", (unsigned long long)now, (unsigned long long)peer);
    step(q, &ev);
}

static void send_failed(struct creq *q, uint64_t now, uint64_t rid, int rc)
{
    struct creq_event ev = {.type = CREQ_EV_SEND_FAILED, .now = now};

    ev.u.send_failed.request_id = rid;
    ev.u.send_failed.rc = rc;
    say("%llu send-failed %llu", (unsigned long long)now, (unsigned long long)rid);
    step(q, &ev);
}

static struct creq *start(size_t max_pending, size_t max_bytes)
{
    struct creq_opts o;
    struct creq *q = NULL;

    creq_opts_default(&o);
    if (max_pending != 0)
        o.max_pending = max_pending;
    if (max_bytes != 0)
        o.max_bytes = max_bytes;
    tr[0] = '\0';
    CHECK_INT(creq_new(&o, &q), 0);
    return q;
}

static void finish(struct creq *q, const char *want)
{
    struct creq_event ev = {.type = CREQ_EV_STOP, .now = 0};

    ev.u.stop.rc = XE_CLOSED;
    ev.u.stop.msg = "stopped";
    say("stop");
    step(q, &ev);
    CHECK_INT(creq_pending(q, NULL), 0);
    creq_free(q);
    CHECK_STR(tr, want);
}

static void test_to_the_leader(void)
{
    struct creq *q = start(0, 0);

    leader(q, 0, 0xa, false);
    submit(q, 10, "w1", 0, 20, 0, 0);
    result(q, 20, 0xb, 1, 0, NULL); /* not the node it was sent to */
    result(q, 30, 0xa, 1, 0, "");
    result(q, 40, 0xa, 1, 0, ""); /* a second answer: nothing left */
    finish(q, "0 leader a ->\n"
              "10 submit w1 cmd -> queued(1) send(1 to a cmd) @5010\n"
              "20 result 1 from b -> @5010\n"
              "30 result 1 from a -> answer(w1 ok)\n"
              "40 result 1 from a ->\n"
              "stop ->\n");
}

static void test_waits_for_a_leader(void)
{
    struct creq *q = start(0, 0);

    submit(q, 0, "w1", 0, 8, 0, 1000);
    tick(q, 500);
    leader(q, 600, 0xc, false);
    tick(q, 650);
    tick(q, 700); /* sent once */
    result(q, 800, 0xc, 1, XE_EXISTS, "it exists");
    finish(q, "0 submit w1 cmd -> queued(1) @1000\n"
              "500 tick -> @1000\n"
              "600 leader c -> @1000\n"
              "650 tick -> send(1 to c cmd) @1000\n"
              "700 tick -> @1000\n"
              "800 result 1 from c -> answer(w1 already exists: it exists)\n"
              "stop ->\n");
}

/* Every request is answered by its deadline, saying what is known of its
 * fate: never sent (no leader: nothing changed), sent to a leader that is
 * gone, or sent to the leader that did not answer. */
static void test_deadlines(void)
{
    struct creq *q = start(0, 0);

    submit(q, 0, "none", 0, 8, 0, 1000);
    leader(q, 100, 0xa, false);
    submit(q, 100, "old", 0, 8, 0, 1000);
    leader(q, 200, 0, false);
    tick(q, 1000);
    leader(q, 1100, 0xb, false);
    submit(q, 1100, "slow", 0x5, 0, 0, 1000);
    tick(q, 1100);
    tick(q, 2099);
    tick(q, 2100);
    finish(q, "0 submit none cmd -> queued(1) @1000\n"
              "100 leader a -> @1000\n"
              "100 submit old cmd -> queued(2) send(2 to a cmd) @1000\n"
              "200 leader 0 -> @1000\n"
              "1000 tick -> answer(none no cluster leader: no cluster leader: this "
              "node cannot reach a majo) @1100\n"
              "1100 leader b -> @1100\n"
              "1100 submit slow remove -> queued(3) send(3 to b remove) @1100\n"
              "1100 tick -> answer(old timed out: no answer from the old cluster "
              "leader, and no le) @2100\n"
              "2099 tick -> @2100\n"
              "2100 tick -> answer(slow timed out: no answer from the cluster leader "
              "in time (unrea)\n"
              "stop ->\n");
}

static void test_bound_count(void)
{
    struct creq *q = start(2, 0);

    submit(q, 0, "a", 0, 8, 0, 0);
    submit(q, 0, "b", 0, 8, 0, 0);
    submit(q, 0, "c", 0, 8, 0, 0);
    leader(q, 10, 0xa, false);
    tick(q, 10);
    result(q, 20, 0xa, 1, 0, NULL);
    submit(q, 30, "d", 0, 8, 0, 0);
    finish(q, "0 submit a cmd -> queued(1) @5000\n"
              "0 submit b cmd -> queued(2) @5000\n"
              "0 submit c cmd -> answer(limit exceeded: too many cluster requests wait "
              "for the l) @5000\n"
              "10 leader a -> @5000\n"
              "10 tick -> send(1 to a cmd) send(2 to a cmd) @5000\n"
              "20 result 1 from a -> answer(a ok) @5000\n"
              "30 submit d cmd -> queued(3) send(3 to a cmd) @5000\n"
              "stop -> answer(b connection closed: stopped) answer(d connection closed: "
              "stopped)\n");
}

static void test_bound_bytes(void)
{
    struct creq *q = start(0, 2100);
    size_t bytes = 0;

    submit(q, 0, "a", 0, 1000, 0, 0);
    submit(q, 0, "b", 0, 1000, 0, 0);
    submit(q, 0, "c", 0, 1000, 0, 0); /* 3 x 1009 > 2100 */
    submit(q, 0, "d", 0x7, 0, 0, 0);  /* a small one still fits */
    CHECK_INT(creq_pending(q, &bytes), 3);
    CHECK_INT(bytes, 1009 + 1009 + 17);
    finish(q, "0 submit a cmd -> queued(1) @5000\n"
              "0 submit b cmd -> queued(2) @5000\n"
              "0 submit c cmd -> answer(limit exceeded: the cluster requests waiting "
              "for the lea) @5000\n"
              "0 submit d remove -> queued(3) @5000\n"
              "stop -> answer(a connection closed: stopped) answer(b connection closed: "
              "stopped) answer(d "
              "connection closed: stopped)\n");
}

/* This node leads: a request is served here at once, and one that waited
 * for a leader is handed back when this node becomes it.  A request fixed
 * to a peer still goes there. */
static void test_leading_serves_here(void)
{
    struct creq *q = start(0, 0);

    submit(q, 0, "w1", 0, 8, 0, 0);
    leader(q, 10, 0x1, true);
    submit(q, 10, "w2", 0, 8, 0, 3000);
    submit(q, 10, "j", 0x5, 0, 0xe, 0);
    tick(q, 20);
    finish(q, "0 submit w1 cmd -> queued(1) @5000\n"
              "10 leader 1 (us) -> @5000\n"
              "10 submit w2 cmd -> serve-now(+3000) @5000\n"
              "10 submit j remove -> queued(2) send(2 to e remove) @5000\n"
              "20 tick -> serve(w1 cmd) @5010\n"
              "stop -> answer(j connection closed: stopped)\n");
}

/* A channel reset loses what was sent on it: a write may have been
 * applied, so it is answered rather than sent twice; a removal is asked
 * again of the leader; a request fixed to that peer waits for its
 * deadline. */
static void test_reset(void)
{
    struct creq *q = start(0, 0);

    leader(q, 0, 0xa, false);
    submit(q, 0, "w", 0, 8, 0, 0);
    submit(q, 0, "r", 0x5, 0, 0, 0);
    join(q, 0, "j", 0xa);
    reset(q, 10, 0xa);
    tick(q, 20);
    finish(q, "0 leader a ->\n"
              "0 submit w cmd -> queued(1) send(1 to a cmd) @5000\n"
              "0 submit r remove -> queued(2) send(2 to a remove) @5000\n"
              "0 submit j join -> queued(3) send(3 to a join) @5000\n"
              "10 reset a -> answer(w timed out: the leader restarted) @5000\n"
              "20 tick -> send(2 to a remove) @5000\n"
              "stop -> answer(r connection closed: stopped) answer(j connection closed: "
              "stopped)\n");
}

/* A send the edge could not make: a request fixed to a peer (the join
 * contact) fails at once with the reason; one to the leader is asked again
 * at the next tick. */
static void test_send_failed(void)
{
    struct creq *q = start(0, 0);

    join(q, 0, "j", 0xe);
    send_failed(q, 0, 1, XE_NOTFOUND);
    leader(q, 0, 0xa, false);
    submit(q, 0, "w", 0, 8, 0, 0);
    send_failed(q, 0, 2, XE_CLOSED);
    tick(q, 50);
    join(q, 60, "j2", 0xe);
    send_failed(q, 60, 3, XE_NOMEM);
    finish(
        q,
        "0 submit j join -> queued(1) send(1 to e join) @10000\n"
        "0 send-failed 1 -> answer(j connection closed: the link to the member closed)\n"
        "0 leader a ->\n"
        "0 submit w cmd -> queued(2) send(2 to a cmd) @5000\n"
        "0 send-failed 2 -> @5000\n"
        "50 tick -> send(2 to a cmd) @5000\n"
        "60 submit j2 join -> queued(3) send(3 to e join) @5000\n"
        "60 send-failed 3 -> answer(j2 out of memory: out of memory on this node: the "
        "request was not ) @5000\n"
        "stop -> answer(w connection closed: stopped)\n");
}

static void test_cancel(void)
{
    struct creq *q = start(0, 0);
    struct creq_event ev = {.type = CREQ_EV_CANCEL, .now = 5};

    submit(q, 0, "w", 0, 8, 0xa, 0);
    ev.u.cancel.request_id = 1;
    say("5 cancel 1");
    step(q, &ev);
    finish(q, "0 submit w cmd -> queued(1) send(1 to a cmd) @5000\n"
              "5 cancel 1 ->\n"
              "stop ->\n");
}

/* The SUBMIT data carries the kind, the wall-clock deadline (expires) and
 * the body, as pframe_req_encode writes it. */
static void test_wire(void)
{
    static const unsigned char want[] = {3, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x6b, 0xe8,
                                         0, 0, 0, 0, 0,    0,    0,    0x42};
    struct creq *q = start(0, 0);
    struct pframe_req r = {.kind = PFRAME_REQ_REMOVE, .u.node_id = 0x42};
    struct creq_event ev = {.type = CREQ_EV_SUBMIT, .now = 0, .wall = WALL};

    ev.u.submit.req = &r;
    ev.u.submit.timeout_ms = 1000;
    ev.u.submit.to = 0xa;
    REQUIRE(creq_step(q, &ev, &upd) == 0);
    REQUIRE(upd.n_sends == 1);
    CHECK_INT(upd.sends[0].len, sizeof want);
    CHECK(memcmp(upd.sends[0].data, want, sizeof want) == 0);
    CHECK(upd.expires == WALL + 1000);
#ifdef NDEBUG
    /* Only CMD, JOIN and REMOVE are requests: a caller's bug, refused in
     * a release build (XD_NEVER asserts in a debug one). */
    r.kind = PFRAME_REQ_NOTE_REMOVED;
    CHECK_INT(creq_step(q, &ev, &upd), XE_INVAL);
    ev.u.submit.req = NULL;
    CHECK_INT(creq_step(q, &ev, &upd), XE_INVAL);
#endif
    creq_free(q); /* unanswered: freed with the queue */
}

static void test_opts(void)
{
    struct creq_opts o = {.max_pending = CREQ_MAX_PENDING + 1, .max_bytes = 1};
    struct creq *q = (struct creq *)&o;

    CHECK_INT(creq_new(&o, &q), XE_INVAL);
    CHECK(q == NULL);
    o.max_pending = 0;
    CHECK_INT(creq_new(&o, &q), XE_INVAL);
    o.max_pending = 1;
    o.max_bytes = 0;
    CHECK_INT(creq_new(&o, &q), XE_INVAL);
    CHECK_INT(creq_new(NULL, &q), 0);
    creq_free(q);
    creq_free(NULL);
}

TL_MAIN(T(test_to_the_leader), T(test_waits_for_a_leader), T(test_deadlines),
        T(test_bound_count), T(test_bound_bytes), T(test_leading_serves_here),
        T(test_reset), T(test_send_failed), T(test_cancel), T(test_wire), T(test_opts))
