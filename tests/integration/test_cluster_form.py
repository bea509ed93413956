#!/usr/bin/env python3
"""test_cluster_form: a 3-node and a 5-node cluster built only through
mmp-cli, as an admin does (cluster.py, docs/cluster.md "Commands"); every
node's `xmpp cluster status` lists each member once, exactly one node is
LEADER and every node names it with the same term; --json agrees with the
text; the replicated domain reached every node.  In the 5-node cluster, the
leader and a follower are killed: the three others (a quorum) elect a
leader and commit a write, and the two rejoin as followers with it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def check_cluster(c, n):
    leader = c.form()
    c.say("%d nodes: leader %s", n, leader.name)
    st = c.statuses(c.nodes)
    terms = {s.term for s in st.values()}
    check(len(terms) == 1 and None not in terms, "terms differ: %s" % terms)
    ids = {}
    for nd in c.nodes:
        ids[nd.peer_addr] = nd.node_id()
    for nd, s in st.items():
        check(s.state == ("LEADER" if nd is leader else "FOLLOWER"),
              "%s: state %s (leader is %s)" % (nd.name, s.state, leader.name))
        check(len(s.peers) == n and len(set(s.addrs())) == n,
              "%s: peer list %s" % (nd.name, s.addrs()))
        for p in s.peers:
            want = ids[p["addr"]]
            check(p["node"] is not None and want.lower().startswith(p["node"].lower()),
                  "%s: %s listed with node %s, its id is %s" % (nd.name, p["addr"], p["node"],
                                                                 want))
        # --json is for scripts: it must parse and agree on the basics.
        j = nd.status_json()
        check(isinstance(j, dict), "%s: --json is not an object: %r" % (nd.name, j))
        flat = repr(j)
        check(str(s.term) in flat, "%s: term %s not in --json %s" % (nd.name, s.term, flat))
        for addr in s.addrs():
            check(addr in flat, "%s: %s not in --json %s" % (nd.name, addr, flat))
        # The domain, set on node1 before the others joined, is replicated.
        sj = nd.json("xmpp status")
        check(sj.get("domain") == DOMAIN, "%s: domain %r" % (nd.name, sj.get("domain")))


def main():
    with Cluster(3) as c:
        check_cluster(c, 3)
    with Cluster(5) as c:
        check_cluster(c, 5)
        # Quorum of 5 is 3: with the leader and one follower killed, the
        # other three elect a leader and commit a write; both come back as
        # followers and get it.
        leader = c.leader()
        down = [leader, c.followers(leader)[0]]
        for nd in down:
            nd.kill()
        rest = [nd for nd in c.nodes if nd not in down]
        new, term = c.wait_leader(rest, not_node=leader, timeout=60)
        c.add_callbridge("quorum3", on=rest[-1], everywhere=False)
        c.say("5 nodes, 2 killed: %s leads in term %d and commits", new.name, term)
        for nd in down:
            nd.start()
        check(c.wait_converged(timeout=60) is new, "leader changed:\n" + c.dump())
        c.wait_same_state(c.nodes)


run(main, timeout=240)
