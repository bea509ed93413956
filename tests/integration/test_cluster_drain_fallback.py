#!/usr/bin/env python3
"""test_cluster_drain_fallback: when only draining nodes are left, the
cluster still elects a leader, and hands it back once it can (docs/cluster.md "Draining a node"):

 - 3 nodes; the two followers are drained (`xmpp cluster drain`);
 - the leader is killed: the two drained nodes are a majority, and after
   RAFT_STANDBY_TIMEOUTS election timeouts without a leader one of them
   campaigns and wins (availability first);
 - it says it is draining but elected and tries to hand leadership over;
   nobody can take it yet (the other is draining too) and it tries again;
 - the killed node comes back: the drained leader hands leadership to it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        drained = c.followers(leader)
        for nd in drained:
            out = nd.ok("xmpp cluster drain")
            check("draining" in out, out)
        c.say("drained %s; leader %s", [nd.name for nd in drained], leader.name)

        leader.kill()
        fallback, term = c.wait_leader(drained, not_node=leader, timeout=60)
        check(fallback in drained, "leader %s" % fallback.name)
        c.say("%s killed: drained %s elected all the same (term %s)",
              leader.name, fallback.name, term)
        wait_for(lambda: "draining but elected leader: handing leadership over"
                 in fallback.log(), 60, "the hand-over attempt logged")

        leader.start()
        wait_for(lambda: leader.status().state == "LEADER", 90,
                 "leadership back on %s, the node that is not draining" % leader.name)
        back, _ = c.wait_leader(c.nodes, timeout=60)
        check(back is leader, "leader %s" % back.name)
        # The new leader may answer status before the old one logs.
        wait_for(lambda: "leadership handed over again" in fallback.log(), 60,
                 "hand-over logged")
        c.say("%s back: leadership handed to it by %s", leader.name, fallback.name)


if __name__ == "__main__":
    run(main)
