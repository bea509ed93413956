/* test_cserve.c: which cluster requests a member serves, and how
 * (xmppd/core/cserve.c): a transcript of requests given to a member in
 * each state, and the verdict it reached. */
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

TL_MAIN(T(test_verdicts))
