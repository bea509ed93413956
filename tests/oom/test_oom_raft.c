/* test_oom_raft.c: the out-of-memory sweep (oom.h) over raft's core: an
 * in-memory cluster (tests/sim/lib/cluster.c, whose own allocations are not
 * failed) elects a leader, replicates entries, grows by a member, takes a
 * snapshot that a node that was down needs, once per allocation of the raft
 * library with that allocation failing.
 *
 * raft.h promises that RAFT_ENOMEM leaves the event without effect: a lost
 * message, a tick to repeat, a submit to retry.  So besides no leak and no
 * crash, every run must keep the cluster's safety (election safety, log
 * matching, state machine safety: cl_ok) and its liveness: after the
 * failure the cluster elects a leader and commits a last entry on every
 * node.
 *
 * Usage: oom_test_oom_raft */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "oom/oom.h"
#include "raft.h"

static struct cluster c;

/* retry runs op until it returns anything but RAFT_ENOMEM (at most one
 * allocation fails per run, so twice is enough). */
#define RETRY(rc, op)                                                                    \
    do {                                                                                 \
        (rc) = (op);                                                                     \
        if ((rc) == RAFT_ENOMEM)                                                         \
            (rc) = (op);                                                                 \
    } while (0)

static int leader_of(void)
{
    int l = cl_leader(&c);

    for (int k = 0; l < 0 && k < 20; k++) {
        cl_run(&c, 500);
        l = cl_leader(&c);
    }
    return l;
}

static int submit(const char *data)
{
    int l = leader_of(), rc = RAFT_ENOTLEADER;

    for (int k = 0; l >= 0 && k < 5; k++) {
        RETRY(rc, cl_submit(&c, (unsigned)l, data, NULL));
        if (rc != RAFT_EBUSY && rc != RAFT_ENOTLEADER)
            break;
        cl_run(&c, 500); /* the new leader's first entry commits */
        l = leader_of();
    }
    oom_check(rc == 0, "submit failed");
    return rc;
}

static int scenario(void)
{
    struct raft_event ev;
    int rc, l, f, s4;
    uint64_t want;

    if ((rc = submit("a")) < 0 || (rc = submit("b")) < 0)
        return rc;
    cl_run(&c, 1000);
    /* a fourth member */
    s4 = cl_add_node(&c, 4, "10.0.0.4:5224");
    if (s4 == RAFT_ENOMEM) {
        /* its slot is there: start it again as the edge would */
        s4 = cl_slot(&c, 4);
        cl_crash(&c, (unsigned)s4);
        s4 = cl_restart(&c, (unsigned)s4);
    }
    oom_check(s4 >= 0, "a new node did not start");
    if (s4 < 0)
        return s4;
    l = leader_of();
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_ADD;
    ev.u.change.id = 4;
    ev.u.change.address = "10.0.0.4:5224";
    if (l >= 0)
        RETRY(rc, cl_step(&c, (unsigned)l, &ev));
    oom_check(l >= 0 && rc == 0, "adding a member failed");
    cl_run(&c, 2000);
    /* a follower misses entries and a snapshot: it gets the snapshot */
    l = leader_of();
    if (l < 0)
        return RAFT_ENOMEM;
    f = (l + 1) % 3;
    cl_crash(&c, (unsigned)f);
    for (int i = 0; i < 6; i++) {
        char data[8];

        snprintf(data, sizeof data, "c%d", i);
        if ((rc = submit(data)) < 0)
            return rc;
    }
    cl_run(&c, 1000);
    l = leader_of();
    if (l >= 0) {
        char data[32];

        memset(&ev, 0, sizeof ev);
        ev.type = RAFT_EV_SNAPSHOT;
        ev.u.snapshot.index = c.nodes[l].applied;
        snprintf(data, sizeof data, "state@%" PRIu64, ev.u.snapshot.index);
        ev.u.snapshot.data.base = data;
        ev.u.snapshot.data.len = strlen(data);
        RETRY(rc, cl_step(&c, (unsigned)l, &ev));
        oom_check(rc == 0, "the snapshot failed");
    }
    RETRY(rc, cl_restart(&c, (unsigned)f));
    oom_check(rc == 0, "a restart failed");
    cl_run(&c, 3000);
    /* it restarts from the snapshot it stored */
    cl_crash(&c, (unsigned)f);
    RETRY(rc, cl_restart(&c, (unsigned)f));
    oom_check(rc == 0, "a restart from a snapshot failed");
    cl_run(&c, 1000);
    /* liveness: a last entry reaches every node */
    if ((rc = submit("d")) < 0)
        return rc;
    cl_run(&c, 3000);
    l = leader_of();
    oom_check(l >= 0, "no leader at the end");
    if (l < 0)
        return RAFT_ENOMEM;
    want = c.nodes[l].applied;
    for (unsigned i = 0; i < c.n; i++)
        if (c.nodes[i].r != NULL && c.nodes[i].applied != want)
            oom_check(false, "a node did not apply every entry");
    return 0;
}

static int sc_raft(void *ud)
{
    struct raft_options o;
    int rc;

    /* A short log behind a snapshot, so that the lagging follower needs
     * the snapshot. */
    raft_options_default(&o);
    o.snapshot_trailing = 1;
    rc = cl_init(&c, 3, 7, &o);

    if (rc == 0) {
        cl_run(&c, 3000);
        rc = scenario();
        cl_check_logs(&c);
        oom_check(cl_ok(&c), c.violation);
    }
    cl_free(&c);
    return rc;
}

int main(int argc, char **argv)
{
    int bad = oom_sweep("raft", sc_raft, NULL, 0);

    printf("%s\n", bad == 0 ? "ok" : "FAIL");
    return bad == 0 ? 0 : 1;
}
