#!/usr/bin/env python3
"""test_cluster_stale_successor: a member whose configuration fell behind
takes the log from nodes that replaced other members while it was down
(nemesis seed 12: two nodes refused the links of such nodes as impostors,
for ever, and never caught up).

Five members; one (V) is stopped; two others (R, A) are reset and join
again with --replace (new ids at their old addresses); a write commits.
Then the two members V still knows (L, B) stop and V starts: R', A' and V
are a majority, and V's configuration names neither R' nor A'.  V must
accept their links (plink SUCCESSOR: the log only), vote, catch up and
apply the write; then it lists both under their new ids."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def replace(c, nd, via):
    old = nd.node_id()
    nd.ok("xmpp reset --yes --force")
    nd.configure(fast_lan=True)
    c.join(nd, replace=True, via=via)
    check(nd.node_id() != old, "%s kept its id after a reset" % nd.name)


def main():
    with Cluster(5) as c:
        leader = c.form(fast_lan=True)
        v, r, a, b = c.followers(leader)
        v.stop()
        c.say("%s stopped; %s and %s reset and join again with --replace", v.name, r.name,
              a.name)
        replace(c, r, leader)
        replace(c, a, leader)
        c.add_callbridge("after-replace", on=leader, everywhere=False)
        leader.stop()
        b.stop()
        v.start()
        c.say("%s and %s stopped: %s and %s (new ids) and %s (stale) are left", leader.name,
              b.name, r.name, a.name, v.name)
        new, term = c.wait_leader([r, a, v], timeout=60)
        wait_for(lambda: "after-replace" in v.ok("xmpp callbridge list"), 60,
                 "%s applies the write made while it was down" % v.name)

        def lists_new_ids():
            s = v.status()
            ids = [p["node"] for p in s.peers if p["node"]]
            return all(any(nd.node_id().lower().startswith(i.lower()) for i in ids)
                       for nd in (r, a))
        wait_for(lists_new_ids, 60, "%s lists the new ids" % v.name)
        c.say("%s leads in term %d; %s caught up and lists the new ids", new.name, term,
              v.name)


run(main, timeout=400)
