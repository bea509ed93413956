#!/usr/bin/env python3
"""test_cluster_writes: configuration writes go through the Raft log from
any node.

- `xmpp callbridge add` on a follower (forwarded to the leader) is visible
  on every node, and a component connects with its secret on another node;
  `xmpp callbridge del` on the other follower removes it everywhere.
- A write acknowledged just before the leader is SIGKILLed is present on
  the survivors afterwards and on the killed node after it restarts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        f1, f2 = c.followers(leader)
        c.add_callbridge("fromfollower", on=f1)
        c.wait_replicated("xmpp callbridge list", lambda o: "fromfollower" in o,
                          nodes=c.nodes, what="add on a follower")
        c.say("callbridge added on follower %s is on every node", f1.name)
        comp = c.comp(f2, "fromfollower", "--stay")
        comp.wait_line("^connected", 60)
        comp.close()

        f2.ok("xmpp callbridge del fromfollower")
        c.wait_replicated("xmpp callbridge list", lambda o: "fromfollower" not in o,
                          nodes=c.nodes, what="del on a follower")
        c.say("callbridge deleted on follower %s is gone everywhere", f2.name)

        # Acknowledged, then the leader dies at once.
        for i in range(3):
            on = (leader, f1, f2)[i]
            c.add_callbridge("acked%d" % i, on=on)
        leader.kill()
        rest = [f1, f2]
        c.wait_leader(rest, not_node=leader, timeout=60)
        want = ["acked0", "acked1", "acked2"]
        c.wait_replicated("xmpp callbridge list", lambda o: all(w in o for w in want),
                          nodes=rest, what="acknowledged before the kill")
        leader.start()
        c.wait_converged(timeout=60)
        c.wait_replicated("xmpp callbridge list", lambda o: all(w in o for w in want),
                          nodes=c.nodes, what="after restart")
        lists = {nd.name: sorted((b["name"], b["fingerprint"])
                                 for b in nd.json("xmpp callbridge list")["callbridges"])
                 for nd in c.nodes}
        check(len({tuple(v) for v in lists.values()}) == 1, "lists differ: %s" % lists)
        c.say("writes acknowledged before the leader was killed survived")


run(main, timeout=150)
