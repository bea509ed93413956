#!/usr/bin/env python3
"""test_clock_skew: conflicts are never decided by clocks.  Three nodes in network
namespaces; node 3 runs under faketime, its wall clock 60 s fast, from
its start.  A call bridge connects to node 3 (a follower); then, while
that session lives, a second session of the same name authenticates on
the leader, as a bridge that reconnects does.

What must happen (DESIGN.md "A component name lives once in the
cluster"): the new session wins and the old one is closed with a
`conflict` stream error, whatever the nodes' clocks say; the leader
survives, and the cluster still has one leader with every member.

Before the fix the skewed session's `since` (wall clock, 60 s ahead) made
the leader think the old session newer: it closed the new one with
`conflict` inside authentication and then closed it again; the leader
aborted (double free, srv_reap).  Now the leader's order decides, and a
session is closed once."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from cluster import Cluster  # noqa: E402
from nemesis import FAKETIME_LIB  # noqa: E402
from xmppdtest import Tally, run  # noqa: E402


def main():
    netns.require_available()
    check = Tally()
    with netns.Net(3) as net, Cluster(3, net=net) as c:
        skewed = c.node(3)
        skewed.env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="+60s",
                          FAKETIME_DONT_FAKE_MONOTONIC="1")
        leader = c.form()
        if leader is skewed:
            c.say("the skewed node leads; hand over by restarting it")
            skewed.restart()
            leader = c.wait_converged(timeout=60)
        c.say("%s leads; %s is 60 s fast", leader.name, skewed.name)
        c.add_callbridge("cb")
        old = c.comp(skewed, "cb", "--stay", timeout=300)
        old.wait_line("^connected")
        c.wait_components(["cb"])
        c.say("cb connected to %s (the skewed follower)", skewed.name)
        new = c.comp(leader, "cb", "--stay", timeout=300)
        got = new._match("^connected|^stream-error|^disconnected", 60)
        c.say("second session of cb on the leader: %s", got)
        time.sleep(3.0)
        check(leader.alive(), "the leader survives a second session of a name whose "
              "first lives on a node 60 s fast",
              "%s exited with %s; log tail:\n%s" % (
                  leader.name, leader.proc.returncode,
                  "\n".join(leader.log().splitlines()[-15:])))
        check(got is not None and got.startswith("connected")
              and new._match("^stream-error", 0.5) is None,
              "the new session (on the leader) wins", "new session: %s" % new.lines)
        check(old._match("^stream-error condition=conflict", 60) is not None,
              "the old session (on the skewed node) is closed with conflict",
              "old session: %s" % old.lines)
        if leader.alive():
            try:
                c.wait_converged(timeout=60)
                ok = True
            except AssertionError as e:
                ok, why = False, str(e)[:800]
            check(ok, "the cluster converges with every member", "" if ok else why)
        else:
            leader.start()
        if check.failures:
            raise AssertionError("; ".join(check.failures))


run(main, timeout=180)
