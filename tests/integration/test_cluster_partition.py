#!/usr/bin/env python3
"""test_cluster_partition: a 3-node cluster in network namespaces
(netns.py: one host per node, cuts on the bridge), partitioned twice.

1. A follower is cut off: the majority keeps its leader and a write there
   succeeds; the minority node answers `xmpp cluster status` at once and
   refuses a write with a clear error (no leader); after healing, one
   leader and the same replicated state (domain, call bridges) everywhere.
2. The leader is cut off: the majority elects a new leader and a write
   there succeeds; the old leader answers status at once and refuses writes
   (it steps down: CheckQuorum); after healing, one leader, same state.

Needs root, ip and nft: skipped without them, except under CI=true or
XMPPD_REQUIRE_NETNS=1."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def minority_checks(c, nd, name):
    """nd is cut off alone: status at once; once it has noticed that it has
    no leader (within a few election timeouts), writes are refused with an
    error that says so."""
    t = time.monotonic()
    s = wait_for(lambda: (lambda st: st if st.leader is None or st.state == "CANDIDATE"
                          else None)(nd.status()), 60,
                 "%s notices it has no leader" % nd.name)
    c.say("%s (minority) has no leader after %.1fs: State %s", nd.name, time.monotonic() - t,
          s.state)
    t = time.monotonic()
    rc, out, err = nd.mmp("xmpp cluster status", timeout=30)
    took = time.monotonic() - t
    check(rc == 0, "%s: status failed on the minority side: %s" % (nd.name, err))
    check(took < 2.0, "%s: status took %.2fs on the minority side" % (nd.name, took))
    t = time.monotonic()
    line = nd.fails("xmpp callbridge add %s" % name, "leader", timeout=40)
    c.say("%s (minority): status in %.2fs; write refused after %.1fs: %s", nd.name, took,
          time.monotonic() - t, line)
    check(name not in nd.ok("xmpp callbridge list"), "%s: refused write applied" % nd.name)


def main():
    netns.require_available()
    with netns.Net(3) as net, Cluster(3, net=net) as c:
        leader = c.form()
        term0 = leader.status().term

        # 1. A follower alone.
        f = c.followers(leader)[0]
        net.partition([[f.index]])
        c.say("partition: %s | rest", f.name)
        majority = [nd for nd in c.nodes if nd is not f]
        c.add_callbridge("majority1", on=leader, everywhere=False)
        minority_checks(c, f, "minority1")
        st = leader.status()
        check(st.state == "LEADER", "leader lost leadership to a follower's cut: %s" % st.text)
        net.heal()
        c.say("healed")
        c.wait_converged(timeout=60)
        state = c.wait_same_state(c.nodes, timeout=60)
        check(("majority1" in [n for n, _ in state[1]]), "majority write lost: %s" % (state,))
        check("minority1" not in [n for n, _ in state[1]], "refused write present")

        # 2. The leader alone.
        leader = c.leader()
        net.partition([[leader.index]])
        c.say("partition: leader %s | rest", leader.name)
        majority = [nd for nd in c.nodes if nd is not leader]
        new, term = c.wait_leader(majority, not_node=leader, timeout=60)
        c.say("majority elected %s in term %d", new.name, term)
        check(term > term0, "term did not rise")
        c.add_callbridge("majority2", on=majority[0], everywhere=False)
        minority_checks(c, leader, "minority2")
        st = leader.status()
        check(st.state != "LEADER", "cut-off leader still says LEADER: %s" % st.text)
        net.heal()
        c.say("healed")
        c.wait_converged(timeout=60)
        state = c.wait_same_state(c.nodes, timeout=60)
        names = [n for n, _ in state[1]]
        check("majority1" in names and "majority2" in names, "writes lost: %s" % names)
        check("minority2" not in names, "refused write present: %s" % names)
        check(state[0] == c.domain, "domain %r" % state[0])


run(main, timeout=240)
