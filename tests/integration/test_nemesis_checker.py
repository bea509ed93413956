#!/usr/bin/env python3
"""test_nemesis_checker: the checker of the fault-injection test
(nemesis_check.py) on synthetic histories, no xmppd: a clean history
passes, and a duplicate, a reorder, an error-then-delivered, a
delivered-then-error and a silent loss are each reported as exactly that;
a loss with an excuse (the sender's node killed, the receiver's session
broken) is excused, not reported; two leaders in one term, a lost
acknowledged write and the longest delivery gap are found; and a real
nemcomp log line format parses."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nemesis_check as nc  # noqa: E402
from xmppdtest import Tally  # noqa: E402


def base():
    """a1 (node 1) and b1 (node 2) each send 1..5 to the other; everything
    arrives once, in order; b1's 5 is answered with an error instead."""
    h = nc.History()
    h.partner = {"a1": "b1", "b1": "a1"}
    h.add_session("a1.1.1", "a1", 1, 0.0)
    h.add_session("b1.2.1", "b1", 2, 0.0)
    for seq in range(1, 6):
        h.sent.append((seq * 0.01, "a1.1.1", seq))
        h.sent.append((seq * 0.01, "b1.2.1", seq))
        h.recv.append((seq * 0.01 + 0.005, "b1.2.1", "a1.1.1", seq))
        if seq < 5:
            h.recv.append((seq * 0.01 + 0.005, "a1.1.1", "b1.2.1", seq))
    h.errors.append((0.06, "b1.2.1", "b1.2.1/5", "service-unavailable"))
    return h


def only(v, kind, n=1):
    """The verdict has exactly n violations, all of this kind."""
    return v.kinds() == {kind: n}


def main():
    check = Tally()

    v = nc.check(base())
    check(not v.failed() and v.sent == 10 and v.delivered == 9 and v.errored == 1,
          "a clean history passes", v.kinds())
    check(v.conditions == {"service-unavailable": 1}, "errors counted by condition",
          v.conditions)

    h = base()
    h.recv.append((0.2, "b1.2.1", "a1.1.1", 3))
    v = nc.check(h)
    check(only(v, "duplicate") and "a1.1.1/3 delivered 2 times" in v.violations["duplicate"][0],
          "a duplicate is reported", v.kinds())

    h = base()
    r = h.recv
    i2, i3 = [i for i, x in enumerate(r) if x[2] == "a1.1.1" and x[3] in (2, 3)]
    r[i2], r[i3] = r[i3], r[i2]
    v = nc.check(h)
    check(only(v, "reorder") and "a1.1.1/2 reached b1.2.1 after a1.1.1/3"
          in v.violations["reorder"][0], "a reorder is reported", v.kinds())

    # The same seqs at two different receiver sessions (a move) are not a
    # reorder: order is per (sender session, receiver session).
    h = base()
    h.add_session("b1.2.2", "b1", 3, 0.1)
    h.sent.append((0.1, "a1.1.1", 6))
    h.sent.append((0.11, "a1.1.1", 7))
    h.recv.append((0.2, "b1.2.2", "a1.1.1", 7))
    h.recv.append((0.3, "b1.2.2", "a1.1.1", 6))
    v = nc.check(h)
    check(only(v, "reorder"), "a reorder at a new receiver session is reported too", v.kinds())
    h.recv[-2:] = [(0.2, "b1.2.2", "a1.1.1", 6), (0.3, "b1.2.2", "a1.1.1", 7)]
    check(not nc.check(h).failed(), "in order at a new receiver session passes")

    h = base()
    h.errors.append((0.02, "a1.1.1", "a1.1.1/4", "resource-constraint"))
    v = nc.check(h)
    check(only(v, "error-then-delivered") and "resource-constraint"
          in v.violations["error-then-delivered"][0],
          "an error then a delivery is reported", v.kinds())

    h = base()
    h.errors.append((0.5, "a1.1.1", "a1.1.1/4", "service-unavailable"))
    check(only(nc.check(h), "delivered-then-error"), "a delivery then an error is reported")

    h = base()
    h.recv = [x for x in h.recv if not (x[2] == "a1.1.1" and x[3] == 4)]
    v = nc.check(h)
    check(only(v, "lost") and "a1.1.1/4" in v.violations["lost"][0],
          "a silent loss is reported", v.kinds())

    h2 = base()
    h2.recv = list(h.recv)
    h2.deaths.append((0.3, 1, "kill"))
    v = nc.check(h2)
    check(not v.failed() and v.excused == {"sender node kill": 1},
          "a loss after the sender's node was killed is excused", (v.kinds(), v.excused))
    h2.deaths = [(40.0, 1, "kill")]
    check(only(nc.check(h2, window=30.0), "lost"),
          "... but not when the node died long after (outside the window)")

    h3 = base()
    h3.recv = list(h.recv)
    h3.sessions["b1.2.1"].end = 0.05
    h3.sessions["b1.2.1"].reason = "ping-timeout"
    v = nc.check(h3)
    check(not v.failed() and v.excused == {"receiver session broke": 1},
          "a loss after the receiver's session broke is excused", (v.kinds(), v.excused))
    h3.sessions["b1.2.1"].reason = "moved"
    check(only(nc.check(h3), "lost"), "a graceful move is no excuse")
    h3.sessions["b1.2.1"].reason = "ping-timeout"
    h3.sessions["b1.2.1"].end = 0.03
    check(not nc.check(h3).failed(),
          "a receiver session that broke just before the send excuses it (its node may "
          "still route to it)")

    h = base()
    h.recv.append((0.3, "b1.2.1", "zz.9.9", 1))
    check(only(nc.check(h), "phantom"), "a message never sent is reported")

    terms = nc.check_terms([(1.0, 1, "aa", "LEADER", 3, "aa"), (1.0, 2, "bb", "FOLLOWER", 3, "aa"),
                            (2.0, 3, "cc", "LEADER", 4, "cc"), (2.1, 2, "bb", "FOLLOWER", 4, "cc")])
    check(terms == [], "one leader per term passes", terms)
    terms = nc.check_terms([(1.0, 1, "aa", "LEADER", 3, "aa"), (1.1, 2, "bb", "LEADER", 3, "bb")])
    check(len(terms) == 1 and "term 3 has 2 leaders" in terms[0], "two leaders in a term", terms)
    terms = nc.check_terms([(1.0, 1, "aa", "LEADER", 3, "aa", "c1"),
                            (1.1, 2, "bb", "LEADER", 3, "bb", "c2")])
    check(terms == [], "a reset node alone is another cluster with terms of its own", terms)

    w = nc.check_writes([("w1", True), ("w2", False), ("w3", True)],
                        {1: {"w1", "w3"}, 2: {"w1", "w3"}})
    check(w == [], "acknowledged writes everywhere pass", w)
    w = nc.check_writes([("w1", True), ("w3", True)], {1: {"w1", "w3"}, 2: {"w1"}})
    check(any("w3 missing on node2" in x for x in w) and any("differ" in x for x in w),
          "a lost acknowledged write and differing replicas are reported", w)

    h = base()
    h.recv += [(5.0, "b1.2.1", "a1.1.1", 6), (5.5, "b1.2.1", "a1.1.1", 7)]
    h.recv += [(2.0 * i, "a1.1.1", "b1.2.1", 5 + i) for i in range(1, 7)]
    g = nc.delivery_gaps(h, [("kill", 1.0, 2.0)], settle=10.0)
    check(abs(g["kill"][0] - 6.5) < 1e-6 and g["kill"][2] == "a1->b1",
          "the longest delivery gap after a fault", g)
    h.add_session("a1.1.1", "a1", 1, 0.0)
    h.add_session("b1.2.1", "b1", 2, 0.0)
    g = nc.delivery_gaps(h, [("pause", 1.0, 2.0, [2])], settle=10.0)
    check(list(g) == ["pause, own node"] and abs(g["pause, own node"][0] - 6.5) < 1e-6,
          "a flow with a component on the paused node is reported apart", g)
    g = nc.delivery_gaps(h, [("pause", 1.0, 2.0, [3])], settle=10.0)
    check(list(g) == ["pause"], "a flow between nodes that stay up is not", g)
    h.home = {"a1": 3, "b1": 1}
    g = nc.delivery_gaps(h, [("split", 1.0, 2.0, [3, 4])], settle=10.0)
    check(list(g) == ["split, own node"],
          "a component running in a host that a split cuts off counts as on it", g)
    g = nc.delivery_gaps(h, [("pause", 1.0, 2.0, [3])], settle=10.0)
    check(list(g) == ["pause"], "a paused node does not cut the hosts' network", g)

    h = nc.History()
    h.partner = {"a1": "b1", "b1": "a1"}
    h.add_comp_log("a1", "conn 10.0 a1.5.1 0\ns 10.1 a1.5.1 1\n"
                   "e 10.2 a1.5.1 a1.5.1/1 resource-constraint\n"
                   "r 10.3 a1.5.1 b1.6.1 1\nend 11.0 a1.5.1 stream-error conflict\n",
                   node_of=[4, 1, 2, 3, 5])
    s = h.sessions.get("a1.5.1")
    check(s is not None and s.node == 4 and s.end == 11.0 and s.broke()
          and h.sent == [(10.1, "a1.5.1", 1)] and h.recv == [(10.3, "a1.5.1", "b1.6.1", 1)]
          and h.errors == [(10.2, "a1.5.1", "a1.5.1/1", "resource-constraint")],
          "nemcomp's log parses", (s, h.sent, h.recv, h.errors))

    if check.failures:
        print("FAIL test_nemesis_checker: %s" % check.failures)
        sys.exit(1)
    print("ok   test_nemesis_checker")


main()
