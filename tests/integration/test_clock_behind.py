#!/usr/bin/env python3
"""test_clock_behind: a node whose wall clock is off makes replicated
writes like any other ("a clock that is off").  Three nodes on
loopback; node 2 runs under faketime 60 s behind, from its start.

A write made on a follower travels to the leader with a deadline in the
follower's wall clock.  Read in the leader's clock, a deadline 60 s behind
looked 55 s past: every write from that node was refused as "reached the
leader after its deadline".  HELLO now carries each node's wall clock and
the leader reads deadlines through the link's offset; it also warns that
the clocks disagree.  Both directions are checked: writes from the slow
follower, and writes from a normal follower while the slow node leads."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
from cluster import Cluster  # noqa: E402
from nemesis import FAKETIME_LIB  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def slow(nd):
    nd.env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="-60s",
                  FAKETIME_DONT_FAKE_MONOTONIC="1")


def main():
    check(os.path.exists(FAKETIME_LIB), "faketime is installed (scripts/setup)")
    # Certificates issued two hours ago, as in the field: a clock 60 s
    # behind would rightly refuse one issued a second ago.
    cluster.CERT_ENV = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="-2h")
    with Cluster(3) as c:
        behind = c.node(2)
        slow(behind)
        leader = c.form()
        if leader is behind:
            behind.restart()
            leader = c.wait_converged(timeout=60)
        c.say("%s leads; %s is 60 s behind", leader.name, behind.name)
        for k in range(3):
            behind.ok("xmpp callbridge add slow%d" % k)
        names = leader.ok("xmpp callbridge list")
        check(all("slow%d" % k in names for k in range(3)),
              "writes made on the slow follower are applied: %s" % names)
        leader.wait_log(r"the clock of node [0-9a-f]+ .* is -6[0-9]\.[0-9] s from this "
                        r"node's", timeout=60)
        c.say("the leader warned about the slow clock")
        # Now the slow node leads: a normal follower's writes still work,
        # and they are not kept past their deadline (65 s) either.
        for _ in range(10):
            if leader is behind:
                break
            leader.restart()
            leader = c.wait_converged(timeout=60)
        check(leader is behind, "the slow node leads after at most 10 handovers")
        other = [nd for nd in c.nodes if nd is not behind][0]
        other.ok("xmpp callbridge add fast0")
        check("fast0" in behind.ok("xmpp callbridge list"),
              "a write made on a normal follower is applied by the slow leader")


run(main, timeout=240)
