/* test_cremove.c: removal from the cluster (xmppd/core/cremove.c) as
 * transcripts.  Node 3, removed from cluster c1 while
 * it was away, dials a member; the member, which saw 3 leave its
 * committed configuration, refuses the HELLO saying so (through plink, as
 * REFUSE bytes on the link), and node 3 learns that it was removed, once:
 * the edge then shows State: REMOVED, stops serving XMPP (defect 2) and
 * stops dialling.  A replaced store (a join) clears it.  Also: the HELLO
 * verdicts (another cluster, a stranger, a successor at a member's
 * address, a joiner), the leader's note, and which refusals are believed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cremove.h"
#include "err.h"
#include "pframe.h"
#include "plink.h"
#include "testlib.h"

#define C1 0xc1

static char tr[8192];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    size_t n = strlen(tr);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tr + n, sizeof tr - n, fmt, ap);
    va_end(ap);
}

static const uint64_t ids3[] = {1, 2, 3};
static const char *const addrs3[] = {"10.0.0.1:5224", "10.0.0.2:5224", "10.0.0.3:5224"};
static const struct cremove_view v3 = {C1, ids3, addrs3, 3};
static const struct cremove_view v2 = {C1, ids3, addrs3, 2}; /* 3 removed */

static void step(struct cremove *r, const char *what, const struct cremove_event *ev)
{
    struct cremove_update u;

    CHECK_INT(cremove_step(r, ev, &u), 0);
    say("%s ->%s%s%s\n", what, u.became_removed ? " removed: " : "",
        u.became_removed ? u.how : "", r->removed ? " [REMOVED]" : "");
}

static void commit(struct cremove *r, const struct cremove_view *v)
{
    struct cremove_event ev = {.type = CREMOVE_EV_COMMITTED, .view = v};
    char what[32];

    ev.u.committed.ids = v->ids;
    ev.u.committed.n = v->n;
    snprintf(what, sizeof what, "commit %u members", v->n);
    step(r, what, &ev);
}

static const char *const verdicts[] = {"member", "joiner",  "successor",
                                       "other",  "removed", "stranger"};

static int hello(const struct cremove *r, const struct cremove_view *v, uint64_t cluster,
                 uint64_t id, const char *addr, char *why, size_t whylen)
{
    struct pframe_hello h = {.proto = PFRAME_PROTO, .cluster_id = cluster, .node_id = id};
    enum cremove_hello out;
    int rc;

    h.addr = addr;
    why[0] = '\0';
    rc = cremove_hello(r, v, &h, &out, why, whylen);
    say("hello %llx node %llx %s -> %s%s%s\n", (unsigned long long)cluster,
        (unsigned long long)id, addr, verdicts[out], why[0] != '\0' ? ": " : "", why);
    return rc;
}

/* The member's side of defect 1, through plink: the policy's XE_NOTFOUND
 * becomes a REFUSE frame with code REMOVED, written as bytes. */
static void member_refuses(int policy_rc, const char *why, struct buf *wire)
{
    static const struct plink_member members[] = {{1, "10.0.0.1:5224"},
                                                  {2, "10.0.0.2:5224"}};
    struct pframe_hello h = {.proto = PFRAME_PROTO,
                             .cluster_id = C1,
                             .node_id = 3,
                             .incarnation = 7,
                             .addr = "10.0.0.3:5224",
                             .vmin = PFRAME_VERSION_MIN,
                             .vmax = PFRAME_VERSION_MAX};
    struct plink_view v;
    struct plink_conn c;
    struct plink_update u;
    struct pframe f;

    memset(&v, 0, sizeof v);
    v.self_id = 1;
    v.cluster_id = C1;
    v.members = members;
    v.nmembers = 2;
    v.cert = true;
    v.subject = "CN=n3";
    v.sans = "IP:10.0.0.3";
    v.policy_rc = policy_rc;
    v.policy_why = why;
    plink_open(&c, false, 0, false, 0);
    plink_tls_done(&c, C1, 10, &u);
    plink_hello(&c, &v, &h, 20, &u);
    say("member plink:%s%s code %u\n", u.send_refuse ? " refuse" : "",
        u.close ? " close" : "", u.refuse_code);
    memset(&f, 0, sizeof f);
    f.type = PFRAME_REFUSE;
    f.u.refuse.cluster_id = C1;
    f.u.refuse.code = u.refuse_code;
    f.u.refuse.reason = why;
    CHECK_INT(pframe_encode(&f, wire), 0);
}

static void test_removed_node_learns_it_when_it_dials(void)
{
    struct cremove member, n3;
    struct cremove_event ev = {.type = CREMOVE_EV_REFUSED, .view = &v3};
    struct buf wire;
    struct pframe f;
    char why[300];
    int rc;

    memset(&member, 0, sizeof member);
    memset(&n3, 0, sizeof n3);
    memset(&wire, 0, sizeof wire);
    tr[0] = '\0';
    commit(&member, &v3);
    commit(&member, &v2); /* xmpp cluster remove 3, committed */
    CHECK(cremove_gone(&member, 3));
    commit(&member, &v2); /* looking again adds nothing */
    CHECK_INT(member.n_gone, 1);
    rc = hello(&member, &v2, C1, 3, "10.0.0.3:5224", why, sizeof why);
    CHECK_INT(rc, XE_NOTFOUND);
    member_refuses(rc, why, &wire);
    /* Node 3 (its configuration still lists 1, 2, 3) reads the bytes. */
    REQUIRE(pframe_decode(wire.data + PFRAME_LEN_SIZE, wire.len - PFRAME_LEN_SIZE, &f) ==
            0);
    ev.u.refused.from = 1;
    ev.u.refused.r = &f.u.refuse;
    step(&n3, "n3 refused by 1", &ev);
    step(&n3, "n3 refused by 1 again", &ev); /* once */
    pframe_release(&f);
    buf_free(&wire);
    ev.type = CREMOVE_EV_REPLACED;
    step(&n3, "n3 joins again (store replaced)", &ev);
    CHECK_STR(tr, "commit 3 members ->\n"
                  "commit 2 members ->\n"
                  "commit 2 members ->\n"
                  "hello c1 node 3 10.0.0.3:5224 -> removed: node 0000000000000003 at "
                  "10.0.0.3:5224 was removed from cluster 00000000000000c1: it may join "
                  "again with a token (xmpp cluster invite)\n"
                  "member plink: refuse close code 1\n"
                  "n3 refused by 1 -> removed: member 0000000000000001 said so "
                  "[REMOVED]\n"
                  "n3 refused by 1 again -> [REMOVED]\n"
                  "n3 joins again (store replaced) ->\n");
}

/* Only a member of our own cluster that says "removed" is believed; the
 * leader's note and our own log are. */
static void test_who_is_believed(void)
{
    struct cremove r;
    struct cremove_event ev = {.type = CREMOVE_EV_REFUSED, .view = &v2};
    struct pframe_refuse f = {
        .cluster_id = C1, .code = PFRAME_REFUSE_OTHER, .reason = "no"};

    memset(&r, 0, sizeof r);
    tr[0] = '\0';
    ev.u.refused.from = 1;
    ev.u.refused.r = &f;
    step(&r, "refused (other) by 1", &ev);
    f.code = PFRAME_REFUSE_REMOVED;
    ev.u.refused.from = 3; /* not in our configuration */
    step(&r, "refused (removed) by 3", &ev);
    ev.u.refused.from = 0; /* a dial to an address, id unknown */
    step(&r, "refused (removed) by ?", &ev);
    f.cluster_id = 0xc2;
    ev.u.refused.from = 1;
    step(&r, "refused (removed, c2) by 1", &ev);
    ev.type = CREMOVE_EV_NOTE;
    ev.u.note.guest = true;
    ev.u.note.cluster_id = C1;
    step(&r, "note from a guest", &ev);
    ev.u.note.guest = false;
    ev.u.note.cluster_id = 0xc2;
    step(&r, "note for c2", &ev);
    ev.u.note.cluster_id = C1;
    step(&r, "note", &ev);
    ev.type = CREMOVE_EV_REPLACED;
    step(&r, "replaced", &ev);
    ev.type = CREMOVE_EV_LOG;
    step(&r, "log", &ev);
    CHECK_STR(tr, "refused (other) by 1 ->\n"
                  "refused (removed) by 3 ->\n"
                  "refused (removed) by ? ->\n"
                  "refused (removed, c2) by 1 ->\n"
                  "note from a guest ->\n"
                  "note for c2 ->\n"
                  "note -> removed: a member said so [REMOVED]\n"
                  "replaced ->\n"
                  "log -> removed: its log removes it [REMOVED]\n");
#ifdef NDEBUG
    /* No view: a caller's bug, refused in a release build (XD_NEVER
     * asserts in a debug one). */
    ev.view = NULL;
    ev.type = CREMOVE_EV_LOG;
    {
        struct cremove_update u;
        CHECK_INT(cremove_step(&r, &ev, &u), XE_INVAL);
    }
#endif
}

static void test_hello_verdicts(void)
{
    struct cremove r;
    struct cremove_view none = {C1, NULL, NULL, 0};
    char why[300];

    memset(&r, 0, sizeof r);
    tr[0] = '\0';
    CHECK_INT(hello(&r, &v3, C1, 2, "10.0.0.2:5224", why, sizeof why), 0);
    CHECK_INT(hello(&r, &v3, 0, 9, "10.0.0.9:5224", why, sizeof why), 0);
    CHECK_INT(hello(&r, &v3, 0xc2, 9, "10.0.0.9:5224", why, sizeof why), XE_PERM);
    CHECK_INT(hello(&r, &v3, C1, 9, "10.0.0.9:5224", why, sizeof why), XE_PERM);
    CHECK_INT(hello(&r, &v3, C1, 9, "10.0.0.2:5224", why, sizeof why), 0);
    CHECK_INT(hello(&r, &none, C1, 9, "10.0.0.9:5224", why, sizeof why), 0);
    CHECK_STR(tr, "hello c1 node 2 10.0.0.2:5224 -> member\n"
                  "hello 0 node 9 10.0.0.9:5224 -> joiner\n"
                  "hello c2 node 9 10.0.0.9:5224 -> other: node 0000000000000009 at "
                  "10.0.0.9:5224 belongs to cluster 00000000000000c2, this node to "
                  "cluster 00000000000000c1\n"
                  "hello c1 node 9 10.0.0.9:5224 -> stranger: node 0000000000000009 at "
                  "10.0.0.9:5224 is not a member of cluster 00000000000000c1 (removed, "
                  "or not added yet)\n"
                  "hello c1 node 9 10.0.0.2:5224 -> successor\n"
                  "hello c1 node 9 10.0.0.9:5224 -> member\n");
}

/* The ring keeps the latest CREMOVE_GONE_MAX removals. */
static void test_gone_ring(void)
{
    struct cremove r;
    uint64_t ids[2] = {1, 0};
    struct cremove_view v = {C1, ids, NULL, 2};
    struct cremove_event ev = {.type = CREMOVE_EV_COMMITTED, .view = &v};
    struct cremove_update u;

    memset(&r, 0, sizeof r);
    ev.u.committed.ids = ids;
    for (uint64_t id = 100; id < 100 + CREMOVE_GONE_MAX + 2; id++) {
        ids[1] = id;
        ev.u.committed.n = 2;
        CHECK_INT(cremove_step(&r, &ev, &u), 0);
    }
    CHECK_INT(r.n_gone, CREMOVE_GONE_MAX);
    CHECK(!cremove_gone(&r, 100));
    CHECK(cremove_gone(&r, 101));
    CHECK(cremove_gone(&r, 100 + CREMOVE_GONE_MAX));
    CHECK(!cremove_gone(&r, 1));
}

/* tell logs whom leader 1 tells it was removed when change ch ends. */
static void tell(const char *what, enum cremove_change_kind kind, uint64_t id,
                 uint64_t old_id, int rc, bool running)
{
    struct cremove_change ch = {.kind = kind, .id = id, .old_id = old_id};
    uint64_t to = cremove_change_done(&ch, rc, 1, running);

    say("%s%s%s -> ", what, rc != 0 ? " failed" : "", running ? "" : " (stopped)");
    if (to != 0)
        say("tell %llx it was removed\n", (unsigned long long)to);
    else
        say("tell no one\n");
}

/* A removed node learns it, the leader's side: once a change that removed a
 * member commits, that member is told (NOTE_REMOVED), since Raft no longer
 * replicates to it; not before (an uncommitted change may be undone), not
 * this leader itself, not by a stopped node. */
static void test_who_is_told(void)
{
    tr[0] = '\0';
    tell("remove 3", CREMOVE_CHANGE_REMOVE, 3, 0, 0, true);
    tell("remove 3", CREMOVE_CHANGE_REMOVE, 3, 0, XE_TIMEOUT, true);
    tell("remove 3", CREMOVE_CHANGE_REMOVE, 3, 0, 0, false);
    tell("remove 1 (self)", CREMOVE_CHANGE_REMOVE, 1, 0, 0, true);
    tell("replace 3 by 4", CREMOVE_CHANGE_REPLACE, 4, 3, 0, true);
    tell("replace 3 by 4", CREMOVE_CHANGE_REPLACE, 4, 3, XE_STATE, true);
    tell("add 4", CREMOVE_CHANGE_OTHER, 4, 0, 0, true);
    CHECK_STR(tr, "remove 3 -> tell 3 it was removed\n"
                  "remove 3 failed -> tell no one\n"
                  "remove 3 (stopped) -> tell no one\n"
                  "remove 1 (self) -> tell no one\n"
                  "replace 3 by 4 -> tell 3 it was removed\n"
                  "replace 3 by 4 failed -> tell no one\n"
                  "add 4 -> tell no one\n");
}

TL_MAIN(T(test_removed_node_learns_it_when_it_dials), T(test_who_is_told),
        T(test_who_is_believed), T(test_hello_verdicts), T(test_gone_ring))
