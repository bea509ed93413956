/* test_cserve.c: which cluster requests a member serves, and how
 * (xmppd/core/cserve.c): a transcript of requests given to a member in
 * each state, and the verdict it reached; and which requests a peer may
 * send (a joining node: its own join only). */
#include <stdio.h>
#include <string.h>

#include "cserve.h"
#include "err.h"
#include "pframe.h"
#include "testlib.h"

#define WALL 1700000000000ull

static char tr[4096];

static const char *verdict_name(enum cserve_verdict v)
{
    return v == CSERVE_SUBMIT    ? "submit"
           : v == CSERVE_PASS_ON ? "pass-on"
           : v == CSERVE_JOIN    ? "join"
           : v == CSERVE_REMOVE  ? "remove"
                                 : "refuse";
}

/* serve asks a member (running, leading, members 1 and 2) about req, which
 * expires left ms from now, and appends the verdict to the transcript. */
static void serve(const char *what, const struct pframe_req *req, bool running,
                  bool leading, uint64_t left)
{
    static const uint64_t members[] = {0x1, 0x2};
    struct cserve_in in = {.req = req, .running = running, .leading = leading};
    struct cserve_out out;
    size_t n = strlen(tr);

    in.members = members;
    in.n_members = 2;
    in.wall = WALL;
    in.expires = WALL + left;
    CHECK_INT(cserve_decide(&in, &out), 0);
    snprintf(tr + n, sizeof tr - n, "%s%s%s -> %s", what, running ? "" : " (stopping)",
             leading ? " (leader)" : "", verdict_name(out.verdict));
    n = strlen(tr);
    if (out.verdict == CSERVE_REFUSE)
        snprintf(tr + n, sizeof tr - n, " %s: %s\n", xe_name(out.rc), out.msg);
    else if (out.verdict == CSERVE_SUBMIT || out.verdict == CSERVE_PASS_ON)
        snprintf(tr + n, sizeof tr - n, " +%llu\n", (unsigned long long)out.left_ms);
    else
        snprintf(tr + n, sizeof tr - n, "\n");
}

static void test_verdicts(void)
{
    struct pframe_req cmd = {.kind = PFRAME_REQ_CMD};
    struct pframe_req join = {.kind = PFRAME_REQ_JOIN};
    struct pframe_req rm2 = {.kind = PFRAME_REQ_REMOVE, .u.node_id = 0x2};
    struct pframe_req rm9 = {.kind = PFRAME_REQ_REMOVE, .u.node_id = 0x9};
    struct pframe_req note = {.kind = PFRAME_REQ_NOTE_REMOVED};

    tr[0] = '\0';
    serve("write", &cmd, false, true, 5000);
    serve("write", &cmd, true, false, 5000);
    serve("write", &cmd, true, true, 50); /* nearly out: still 100 ms */
    serve("join", &join, true, false, 8000);
    serve("join", &join, true, true, 8000);
    serve("remove 2", &rm2, true, false, 5000);
    serve("remove 2", &rm2, true, true, 5000);
    serve("remove 9", &rm9, true, true, 5000);
    serve("note-removed", &note, true, true, 5000);
    serve("late write", &cmd, true, true, (uint64_t)-1); /* expired 1 ms ago */
    CHECK_STR(tr, "write (stopping) (leader) -> refuse XE_CLOSED: the node is stopping\n"
                  "write -> submit +5000\n"
                  "write (leader) -> submit +100\n"
                  "join -> pass-on +8000\n"
                  "join (leader) -> join\n"
                  "remove 2 -> pass-on +5000\n"
                  "remove 2 (leader) -> remove\n"
                  "remove 9 (leader) -> refuse XE_NOTFOUND: node 0000000000000009 is not "
                  "a member; see xmpp cluster status\n"
                  "note-removed (leader) -> refuse XE_PROTO: malformed request\n"
                  "late write (leader) -> refuse XE_TIMEOUT: the request reached the "
                  "leader after its deadline and was not applied\n");
}

static const char *peer_verdict_name(enum cserve_peer_verdict v)
{
    return v == CSERVE_PEER_NOTE         ? "note"
           : v == CSERVE_PEER_GUEST_JOIN ? "guest-join"
           : v == CSERVE_PEER_SERVE      ? "serve"
                                         : "protocol error";
}

/* from_peer gives a member req from peer 5 (a guest: a node asking to
 * join), whose clock is off by offset ms when known, and appends the
 * verdict and the deadline read in our clock (relative to WALL). */
static void from_peer(const char *what, const struct pframe_req *req, bool guest,
                      bool known, int64_t offset)
{
    struct cserve_peer_in in = {.req = req, .from = 5, .guest = guest};
    struct cserve_peer_out out;
    size_t n = strlen(tr);

    in.clock_known = known;
    in.clock_offset_ms = offset;
    CHECK_INT(cserve_peer(&in, &out), 0);
    snprintf(tr + n, sizeof tr - n, "%s from %s -> %s", what, guest ? "guest" : "member",
             peer_verdict_name(out.verdict));
    n = strlen(tr);
    if (out.verdict == CSERVE_PEER_SERVE || out.verdict == CSERVE_PEER_GUEST_JOIN)
        snprintf(tr + n, sizeof tr - n, " by %+lld\n", (long long)(out.expires - WALL));
    else
        snprintf(tr + n, sizeof tr - n, "\n");
}

/* A node asking to join may only ask to join, for itself (its link
 * carries nothing else), and never tells anyone it was removed; a
 * member's requests are served.  A deadline in the sender's wall clock is
 * read in ours once the offset is known. */
static void test_from_peers(void)
{
    struct pframe_req cmd = {.kind = PFRAME_REQ_CMD, .expires = WALL + 5000};
    struct pframe_req join5 = {.kind = PFRAME_REQ_JOIN, .expires = WALL + 8000};
    struct pframe_req join6 = {.kind = PFRAME_REQ_JOIN, .expires = WALL + 8000};
    struct pframe_req rm2 = {.kind = PFRAME_REQ_REMOVE, .expires = WALL + 5000};
    struct pframe_req note = {.kind = PFRAME_REQ_NOTE_REMOVED, .expires = UINT64_MAX};

    join5.u.join.node_id = 5;
    join6.u.join.node_id = 6;
    rm2.u.node_id = 2;
    tr[0] = '\0';
    from_peer("write", &cmd, false, false, 0);
    from_peer("write (clock 2 s ahead)", &cmd, false, true, 2000);
    from_peer("write (clock 3 s behind)", &cmd, false, true, -3000);
    from_peer("write (offset not known)", &cmd, false, false, 2000);
    from_peer("join 5", &join5, false, true, 0);
    from_peer("join 5", &join5, true, true, 1000);
    from_peer("join 6", &join6, true, true, 0);
    from_peer("write", &cmd, true, true, 0);
    from_peer("remove 2", &rm2, true, true, 0);
    from_peer("note-removed", &note, false, true, 0);
    from_peer("note-removed", &note, true, true, 0);
    CHECK_STR(tr, "write from member -> serve by +5000\n"
                  "write (clock 2 s ahead) from member -> serve by +3000\n"
                  "write (clock 3 s behind) from member -> serve by +8000\n"
                  "write (offset not known) from member -> serve by +5000\n"
                  "join 5 from member -> serve by +8000\n"
                  "join 5 from guest -> guest-join by +7000\n"
                  "join 6 from guest -> protocol error\n"
                  "write from guest -> protocol error\n"
                  "remove 2 from guest -> protocol error\n"
                  "note-removed from member -> note\n"
                  "note-removed from guest -> protocol error\n");
}

/* alone asks a node whose clustering is off about a request for to. */
static void alone(const char *what, bool leading, uint64_t to, uint64_t timeout_ms)
{
    struct cserve_alone_in in = {.leading = leading, .to = to, .timeout_ms = timeout_ms};
    struct cserve_alone_out out;
    size_t n = strlen(tr);

    in.wall = WALL;
    CHECK_INT(cserve_alone(&in, &out), 0);
    if (out.verdict == CSERVE_ALONE_SERVE)
        snprintf(tr + n, sizeof tr - n, "%s -> serve here by +%llu\n", what,
                 (unsigned long long)(out.expires - WALL));
    else
        snprintf(tr + n, sizeof tr - n, "%s -> refuse %s: %s\n", what, xe_name(out.rc),
                 out.msg);
}

/* With clustering off (a single node), the leader serves requests for the
 * leader itself, with the caller's timeout or the default; a node that
 * does not lead, or a request for another member, is refused. */
static void test_alone(void)
{
    tr[0] = '\0';
    alone("leader, for the leader", true, 0, 2000);
    alone("leader, no timeout", true, 0, 0);
    alone("leader, for member 2", true, 2, 2000);
    alone("not leading", false, 0, 2000);
    CHECK_STR(tr, "leader, for the leader -> serve here by +2000\n"
                  "leader, no timeout -> serve here by +5000\n"
                  "leader, for member 2 -> refuse XE_STATE: clustering is not enabled on "
                  "this node (xmpp cluster enable)\n"
                  "not leading -> refuse XE_STATE: clustering is not enabled on this "
                  "node (xmpp cluster enable)\n");
}

TL_MAIN(T(test_verdicts), T(test_from_peers), T(test_alone))
