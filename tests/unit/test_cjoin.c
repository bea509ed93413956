/* test_cjoin.c: the join phases (xmppd/core/cjoin.c) as transcripts: each
 * case feeds events (the admin's join, the contact link, the member's
 * refusal or answer, ticks of a virtual clock, the store switched, the
 * node made a voter) and checks the actions, line by line.  The
 * member's reason for a refusal reaches the joiner's shell
 * (a REFUSE frame, or a refused request), and a port that does not speak
 * the peer protocol, a TLS failure or nothing listening are named, instead
 * of "could not reach" after the timeout. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cjoin.h"
#include "err.h"
#include "pframe.h"
#include "testlib.h"

#define MEMBER "10.0.0.1:5224"

static char tr[8192];
static struct cjoin j;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    size_t n = strlen(tr);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tr + n, sizeof tr - n, fmt, ap);
    va_end(ap);
}

static const char *const phases[] = {"none",   "contact",   "asked", "retry",
                                     "switch", "switching", "sync"};

static void step(const char *what, struct cjoin_event *ev, uint64_t now)
{
    struct cjoin_update u;
    int rc;

    ev->now = now;
    rc = cjoin_step(&j, ev, &u);
    say("%llu %s ->", (unsigned long long)now, what);
    if (rc < 0)
        say(" error(%s)", xe_strerror(rc));
    if (u.send_to != 0)
        say(" send-join(%llx)", (unsigned long long)u.send_to);
    if (u.switch_store)
        say(" switch(%llx)", (unsigned long long)u.cluster_id);
    if (u.finished)
        say(" finish(%s%s%s)", u.rc < 0 ? xe_strerror(u.rc) : "ok",
            u.msg[0] != '\0' ? ": " : "", u.msg);
    say(" [%s", phases[j.phase]);
    if (u.deadline != 0)
        say(" @%llu", (unsigned long long)u.deadline);
    say("]\n");
}

static void start(uint64_t now)
{
    struct cjoin_event ev = {.type = CJOIN_EV_START};

    ev.u.start.addr = MEMBER;
    step("start", &ev, now);
}

static void link(uint64_t now, const char *addr, uint64_t id, bool up, enum cjoin_dial d,
                 const char *why)
{
    struct cjoin_event ev = {.type = CJOIN_EV_LINK};
    char what[64];

    ev.u.link.addr = addr;
    ev.u.link.id = id;
    ev.u.link.up = up;
    ev.u.link.dial = d;
    ev.u.link.why = why;
    snprintf(what, sizeof what, "link %s %s", addr, up ? "up" : "down");
    step(what, &ev, now);
}

static void tick(uint64_t now)
{
    struct cjoin_event ev = {.type = CJOIN_EV_TICK};

    step("tick", &ev, now);
}

static void answer(uint64_t now, int rc, const char *msg, uint64_t cluster_id)
{
    struct cjoin_event ev = {.type = CJOIN_EV_ANSWER};
    unsigned char cid[8];

    pframe_u64_put(cid, cluster_id);
    ev.u.answer.rc = rc;
    ev.u.answer.msg = msg;
    ev.u.answer.data = rc == 0 && cluster_id != 0 ? cid : NULL;
    ev.u.answer.len = rc == 0 && cluster_id != 0 ? 8 : 0;
    step("answer", &ev, now);
}

static void begin(void)
{
    memset(&j, 0, sizeof j);
    tr[0] = '\0';
}

/* The whole way: contact, ask, busy leader, ask again, switch, voter. */
static void test_join(void)
{
    struct cjoin_event ev = {.type = CJOIN_EV_SWITCHED};

    begin();
    start(0);
    start(5); /* a second join while one is under way */
    link(10, "10.0.0.2:5224", 7, true, 0, NULL); /* another peer's link */
    link(20, MEMBER, 0xa, true, 0, NULL);
    answer(30, XE_BUSY, "a membership change is under way", 0);
    tick(100);
    tick(230);
    answer(240, 0, "added as a non-voter", 0xc1);
    tick(290);
    step("switched", &ev, 300);
    ev.type = CJOIN_EV_VOTER;
    step("voter", &ev, 900);
    CHECK_STR(tr, "0 start -> [contact @10000]\n"
                  "5 start -> error(resource busy, try again) [contact @10000]\n"
                  "10 link 10.0.0.2:5224 up -> [contact @10000]\n"
                  "20 link 10.0.0.1:5224 up -> send-join(a) [asked]\n"
                  "30 answer -> [retry @230]\n"
                  "100 tick -> [retry @230]\n"
                  "230 tick -> send-join(a) [asked]\n"
                  "240 answer -> [switch @1]\n"
                  "290 tick -> switch(c1) [switching]\n"
                  "300 switched -> [sync @30300]\n"
                  "900 voter -> finish(ok) [none]\n");
}

/* Defect 5: the member's reason reaches the shell: its REFUSE of our
 * HELLO (say, this node's certificate does not cover its address), or its
 * refusal of the request (no valid join token). */
static void test_member_reason_reaches_the_shell(void)
{
    struct cjoin_event ev = {.type = CJOIN_EV_REFUSED};

    begin();
    start(0);
    ev.u.refused.id = 0xb; /* a member link, not our contact dial */
    ev.u.refused.reason = "not this one";
    step("refused by b", &ev, 10);
    ev.u.refused.id = 0;
    ev.u.refused.reason = "node 99 at 10.0.0.9:5224: the certificate does not name "
                          "10.0.0.9";
    step("refused", &ev, 20);
    start(30);
    link(40, MEMBER, 0xa, true, 0, NULL);
    answer(50, XE_AUTH, "10.0.0.1:5224 has no valid join token for this node", 0);
    start(60);
    link(70, MEMBER, 0xa, true, 0, NULL);
    answer(80, 0, "ok", 0); /* no cluster id */
    CHECK_STR(tr, "0 start -> [contact @10000]\n"
                  "10 refused by b -> [contact @10000]\n"
                  "20 refused -> finish(permission denied: the member refused this "
                  "node: node 99 at 10.0.0.9:5224: the certificate does not name "
                  "10.0.0.9) [none]\n"
                  "30 start -> [contact @10030]\n"
                  "40 link 10.0.0.1:5224 up -> send-join(a) [asked]\n"
                  "50 answer -> finish(authentication failed: 10.0.0.1:5224 has no "
                  "valid join token for this node) [none]\n"
                  "60 start -> [contact @10060]\n"
                  "70 link 10.0.0.1:5224 up -> send-join(a) [asked]\n"
                  "80 answer -> finish(protocol error: the member answered without a "
                  "cluster id) [none]\n");
}

/* Dials that fail name their cause: a foreign protocol at once, TLS on the
 * second, nothing listening after 3 tries and 3 s, silent closes on the
 * third; else the contact timeout. */
static void test_dial_failures(void)
{
    begin();
    start(0);
    link(10, MEMBER, 0, false, CJOIN_DIAL_FOREIGN,
         "10.0.0.1:5224 answered in XMPP, not the cluster peer protocol");
    start(20);
    link(30, MEMBER, 0, false, CJOIN_DIAL_TLS, NULL);
    link(40, MEMBER, 0, false, CJOIN_DIAL_TLS, NULL);
    start(100);
    link(200, MEMBER, 0, false, CJOIN_DIAL_REFUSED, NULL);
    link(300, MEMBER, 0, false, CJOIN_DIAL_REFUSED, NULL);
    link(400, MEMBER, 0, false, CJOIN_DIAL_REFUSED, NULL); /* not 3 s yet */
    link(3100, MEMBER, 0, false, CJOIN_DIAL_REFUSED, NULL);
    start(4000);
    link(4100, MEMBER, 0, false, CJOIN_DIAL_CLOSED, NULL);
    link(4200, MEMBER, 0, false, CJOIN_DIAL_OTHER, NULL);
    tick(13999);
    tick(14000);
    CHECK_STR(tr, "0 start -> [contact @10000]\n"
                  "10 link 10.0.0.1:5224 down -> finish(protocol error: 10.0.0.1:5224 "
                  "answered in XMPP, not the cluster peer protocol; join at the member's "
                  "peer address instead (port 5224)) [none]\n"
                  "20 start -> [contact @10020]\n"
                  "30 link 10.0.0.1:5224 down -> [contact @10020]\n"
                  "40 link 10.0.0.1:5224 down -> finish(TLS error: the TLS handshake "
                  "with 10.0.0.1:5224 failed: a certificate is not trusted (check xmpp "
                  "cluster trust on both nodes; the daemons' logs say which)) [none]\n"
                  "100 start -> [contact @10100]\n"
                  "200 link 10.0.0.1:5224 down -> [contact @10100]\n"
                  "300 link 10.0.0.1:5224 down -> [contact @10100]\n"
                  "400 link 10.0.0.1:5224 down -> [contact @10100]\n"
                  "3100 link 10.0.0.1:5224 down -> finish(connection closed: nothing "
                  "listens on 10.0.0.1:5224: run xmpp cluster enable there, or check "
                  "the address) [none]\n"
                  "4000 start -> [contact @14000]\n"
                  "4100 link 10.0.0.1:5224 down -> [contact @14000]\n"
                  "4200 link 10.0.0.1:5224 down -> [contact @14000]\n"
                  "13999 tick -> [contact @14000]\n"
                  "14000 tick -> finish(timed out: could not reach 10.0.0.1:5224 over "
                  "the peer link within 10 s (is clustering enabled there, the address "
                  "right, its certificate trusted here and ours there? see both "
                  "daemons' logs)) [none]\n");
}

static void test_switch_fails_sync_times_out_stop(void)
{
    struct cjoin_event ev = {.type = CJOIN_EV_SWITCHED};

    begin();
    start(0);
    link(10, MEMBER, 0xa, true, 0, NULL);
    answer(20, 0, NULL, 0xc1);
    tick(70);
    ev.u.switched.rc = XE_IO;
    ev.u.switched.why = "cannot write the new store";
    step("switched", &ev, 80);
    start(100);
    link(110, MEMBER, 0xa, true, 0, NULL);
    answer(120, 0, NULL, 0xc1);
    tick(170);
    ev.u.switched.rc = 0;
    step("switched", &ev, 180);
    tick(30179);
    tick(30180);
    start(40000);
    ev.type = CJOIN_EV_STOP;
    ev.u.stop.rc = XE_CLOSED;
    ev.u.stop.msg = "clustering stopped on this node";
    step("stop", &ev, 40010);
    step("stop", &ev, 40020);
    CHECK_STR(
        tr,
        "0 start -> [contact @10000]\n"
        "10 link 10.0.0.1:5224 up -> send-join(a) [asked]\n"
        "20 answer -> [switch @1]\n"
        "70 tick -> switch(c1) [switching]\n"
        "80 switched -> finish(input/output error: cannot write the new store) [none]\n"
        "100 start -> [contact @10100]\n"
        "110 link 10.0.0.1:5224 up -> send-join(a) [asked]\n"
        "120 answer -> [switch @1]\n"
        "170 tick -> switch(c1) [switching]\n"
        "180 switched -> [sync @30180]\n"
        "30179 tick -> [sync @30180]\n"
        "30180 tick -> finish(timed out: joined, but not yet promoted to "
        "voter within 30 s: check xmpp cluster status on the leader) [none]\n"
        "40000 start -> [contact @50000]\n"
        "40010 stop -> finish(connection closed: clustering stopped on this "
        "node) [none]\n"
        "40020 stop -> [none]\n");
}

/* Who may start a join: a node alone, or one that was removed from its
 * cluster (defect 1: `xmpp cluster join` from it must work); a member of
 * a multi-node cluster leaves it first; joining the cluster it is in is
 * done already. */
static void test_admit(void)
{
    struct cjoin_admit a = {.addr = MEMBER,
                            .self_addr = "10.0.0.3:5224",
                            .cluster_id = 0xc1,
                            .members = 1,
                            .self_member = true};
    char msg[300];

    begin();
    CHECK_INT(cjoin_admit(&j, &a, msg, sizeof msg), 0);
    a.members = 3;
    CHECK_INT(cjoin_admit(&j, &a, msg, sizeof msg), XE_STATE);
    CHECK_STR(msg, "this node is a member of cluster 00000000000000c1 with 3 members; "
                   "leave it first with xmpp cluster disable");
    a.removed = true;
    CHECK_INT(cjoin_admit(&j, &a, msg, sizeof msg), 0);
    a.removed = false;
    a.addr_member = true;
    CHECK_INT(cjoin_admit(&j, &a, msg, sizeof msg), 1);
    CHECK_STR(msg, "already a member of that cluster");
    a.addr = "10.0.0.3:5224";
    CHECK_INT(cjoin_admit(&j, &a, msg, sizeof msg), XE_INVAL);
    a.addr = MEMBER;
    j.phase = CJOIN_SYNC;
    CHECK_INT(cjoin_admit(&j, &a, msg, sizeof msg), XE_BUSY);
}

/* The leader's decision on a join request, each case one line. */
static void decide(const char *addr, uint64_t id, bool replace)
{
    static const struct cjoin_member m[] = {{0x1, "10.0.0.1:5224", true},
                                            {0x2, "10.0.0.2:5224", true},
                                            {0x3, "10.0.0.3:5224", false}};
    static const char *const names[] = {"refuse", "already", "promote", "add", "replace"};
    struct pframe_join jr = {.node_id = id, .replace = replace};
    enum cjoin_verdict v;
    uint64_t old;
    char msg[400];
    int rc;

    snprintf(jr.addr, sizeof jr.addr, "%s", addr);
    rc = cjoin_decide(m, 3, 0x1, &jr, &v, &old, msg, sizeof msg);
    say("join %llx at %s%s -> %s", (unsigned long long)id, addr,
        replace ? " replace" : "", names[v]);
    if (rc < 0)
        say(" (%s)", xe_strerror(rc));
    if (old != 0)
        say(" old %llx", (unsigned long long)old);
    say(": %s\n", msg);
}

static void test_leader_decides(void)
{
    begin();
    decide("10.0.0.2:5224", 0x2, false);
    decide("10.0.0.3:5224", 0x3, false);
    decide("10.0.0.9:5224", 0x2, false);
    decide("10.0.0.2:5224", 0x9, false);
    decide("10.0.0.2:5224", 0x9, true);
    decide("10.0.0.1:5224", 0x9, true);
    decide("10.0.0.9:5224", 0x9, false);
    CHECK_STR(tr, "join 2 at 10.0.0.2:5224 -> already: already a member\n"
                  "join 3 at 10.0.0.3:5224 -> promote: already a member; promotion "
                  "started\n"
                  "join 2 at 10.0.0.9:5224 -> refuse (already exists): node "
                  "0000000000000002 is already a member at 10.0.0.2:5224; remove it "
                  "first with: xmpp cluster remove 0000000000000002\n"
                  "join 9 at 10.0.0.2:5224 -> refuse (already exists): address "
                  "10.0.0.2:5224 is held by member node 0000000000000002 (was this node "
                  "reset?); remove it with: xmpp cluster remove 0000000000000002, or "
                  "join with: xmpp cluster join <addr> <token> --replace\n"
                  "join 9 at 10.0.0.2:5224 replace -> replace old 2: replacing the "
                  "stale member\n"
                  "join 9 at 10.0.0.1:5224 replace -> refuse (operation not allowed in "
                  "this state): "
                  "address "
                  "10.0.0.1:5224 is held by the leader itself (node 0000000000000001): "
                  "it cannot be replaced\n"
                  "join 9 at 10.0.0.9:5224 -> add: added as a non-voter; promoted once "
                  "caught up\n");
}

/* A node may only ask to join at the address its HELLO claimed (the one
 * the peer link bound to its certificate); the default port and the
 * address's spelling do not matter. */
static void test_check_addr(void)
{
    struct pframe_join req = {.node_id = 0x1234};
    char why[300] = "";

    snprintf(req.addr, sizeof req.addr, "%s", "10.0.0.3:5224");
    CHECK_INT(cjoin_check_addr("10.0.0.3:5224", &req, why, sizeof why), 0);
    CHECK_INT(cjoin_check_addr("10.0.0.3", &req, why, sizeof why), 0);
    snprintf(req.addr, sizeof req.addr, "%s", "[0::1]:7000");
    CHECK_INT(cjoin_check_addr("[::1]:7000", &req, why, sizeof why), 0);
    /* A node whose certificate names 10.0.0.3 asks to be added at another
     * member's address: refused, and the reason names both. */
    snprintf(req.addr, sizeof req.addr, "%s", "10.0.0.2:5224");
    CHECK_INT(cjoin_check_addr("10.0.0.3:5224", &req, why, sizeof why), XE_AUTH);
    CHECK_STR(why, "the join request names address 10.0.0.2:5224, but the node's HELLO "
                   "(checked against its certificate) claimed 10.0.0.3:5224: join with "
                   "the address the certificate names");
    snprintf(req.addr, sizeof req.addr, "%s", "10.0.0.3:5225");
    CHECK_INT(cjoin_check_addr("10.0.0.3:5224", &req, why, sizeof why), XE_AUTH);
}

TL_MAIN(T(test_check_addr), T(test_join), T(test_admit), T(test_leader_decides),
        T(test_member_reason_reaches_the_shell), T(test_dial_failures),
        T(test_switch_fails_sync_times_out_stop))
