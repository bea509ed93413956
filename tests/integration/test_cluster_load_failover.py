#!/usr/bin/env python3
"""test_cluster_load_failover: load during failover.  In a 3-node cluster
two components on the two followers send numbered messages to each other
continuously (xcomp --interval-ms) while the leader is SIGKILLed; each
receiver checks that every number arrives exactly once, in order
(xcomp --expect: a gap, a duplicate or a reordering fails it).  Then the
killed node restarts and the same again with the new leader; a third round
SIGSTOPs the leader instead (a silent failure) and SIGCONTs it once the
others have elected a new one."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402

INTERVAL_MS = 5
N = 1600  # 8 s of traffic each way


def round_(c, leader, tag, how="kill"):
    """Two components on the followers send to each other while the leader
    is SIGKILLed (how="kill", then restarted) or SIGSTOPped (how="stop",
    SIGCONT once the others have a new leader); returns the leader after."""
    a_node, b_node = c.followers(leader)
    a_name, b_name = "a" + tag, "b" + tag
    c.add_callbridge(a_name, on=leader)
    c.add_callbridge(b_name, on=leader)
    a_jid, b_jid = "%s.%s" % (a_name, DOMAIN), "%s.%s" % (b_name, DOMAIN)
    common = ["--go-on-stdin", "--send", str(N), "--interval-ms", str(INTERVAL_MS),
              "--expect", str(N), "--quiet"]
    a = c.comp(a_node, a_name, "--to", b_jid, *common, timeout=240)
    b = c.comp(b_node, b_name, "--to", a_jid, *common, timeout=240)
    a.wait_line("^connected")
    b.wait_line("^connected")
    c.wait_components([a_name, b_name])
    a.go()
    b.go()
    time.sleep(2.0)
    t = time.monotonic()
    if how == "kill":
        leader.kill()
    else:
        leader.freeze()
    c.say("round %s: leader %s %s under load", tag, leader.name,
          "killed" if how == "kill" else "stopped")
    new, term = c.wait_leader([a_node, b_node], not_node=leader, timeout=60)
    c.say("round %s: %s leads in term %d after %.2fs", tag, new.name, term,
          time.monotonic() - t)
    if how == "stop":
        time.sleep(0.5)
        leader.thaw()
    for x in (a, b):
        rc = x.finish(250)
        errs = [ln for ln in x.lines if ln.startswith("message-error")]
        check(rc == 0, "%s on %s: exit %d, %d errors (first %s):\n%s\n%s"
              % (x.jid, x.node.name, rc, len(errs), errs[:3], "\n".join(x.lines[-10:]),
                 "\n".join(x.errlines[-10:])))
        x.wait_line("received messages=%d in_order=yes" % N, 1)
    c.say("round %s: %d numbered messages each way, every one once and in order", tag, N)
    if how == "kill":
        leader.start()
    return c.wait_converged(timeout=60)


def main():
    with Cluster(3) as c:
        leader = c.form()
        leader = round_(c, leader, "1")
        leader = round_(c, leader, "2")
        round_(c, leader, "3", how="stop")


run(main, timeout=240)
