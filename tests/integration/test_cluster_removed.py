#!/usr/bin/env python3
"""test_cluster_removed: the lifecycle of a removed node, driven as the admin did.

- A follower is removed while it runs (`xmpp cluster remove <id> --yes` on
  the leader).  It learns it, says `State: REMOVED` with the command that
  brings it back, stops serving XMPP (`xmpp status`: not serving; a call
  bridge that authenticates there is refused), and its redials do not put
  a warning per second in the members' logs.  `xmpp cluster join <member>
  <token>` run on it makes it a member again, serving.
- The leader is removed by a follower (the issue's own case): the old
  leader is REMOVED, not a FOLLOWER with no leader, and joins again.
- A follower is removed while it is down: when it starts and dials, the
  members tell it, and it is REMOVED too.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster, ClusterComp, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def removed(nd):
    s = nd.status()
    return s.state == "REMOVED"


def check_removed(c, nd, members):
    """nd says REMOVED with the way back, does not serve, and its redials
    stay quiet in the members' logs."""
    wait_for(lambda: removed(nd), 60, "%s says REMOVED" % nd.name)
    s = nd.status()
    check("xmpp cluster join" in s.text,
          "%s: REMOVED without the command that brings it back:\n%s" % (nd.name, s.text))
    j = nd.json("xmpp cluster status")
    check(j.get("state") == "REMOVED" and j.get("removed") is True, str(j))
    st = nd.json("xmpp status")
    check(st.get("serving") is False,
          "%s: a removed node still serves XMPP: %s" % (nd.name, st))
    text = nd.ok("xmpp status")
    check(re.search(r"(?m)^Serving:\s*no", text), text)
    # A call bridge that authenticates on the removed node is refused:
    # its stanzas would go nowhere.
    comp = ClusterComp(nd, "rm-bridge", c.secrets["rm-bridge"], "--timeout", "10")
    rc = comp.finish(timeout=60)
    check(rc != 0, "a call bridge authenticated on removed %s:\n%s"
          % (nd.name, comp.output()))
    # Quiet redials: at most a few warnings about nd in 6 s on the members.
    marks = {m.name: len(m.log()) for m in members}
    time.sleep(6)
    for m in members:
        new = m.log()[marks[m.name]:]
        warns = [x for x in new.splitlines() if " warn " in x.lower() or "WARN" in x]
        check(len(warns) <= 3, "%s: %d warnings in 6 s after %s was removed:\n%s"
              % (m.name, len(warns), nd.name, "\n".join(warns[:10])))
    c.say("%s: REMOVED, not serving, quiet", nd.name)


def rejoin(c, nd, via):
    c.join(nd, via=via)
    wait_for(lambda: nd.status().state in ("FOLLOWER", "LEADER"), 60,
             "%s a member again" % nd.name)
    check(nd.json("xmpp status").get("serving") is True,
          "%s rejoined but does not serve" % nd.name)
    c.say("%s joined again through %s", nd.name, via.name)


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        c.add_callbridge("rm-bridge")

        # 1. a running follower removed by the leader
        f = c.followers(leader)
        victim, other = f[0], f[1]
        leader.ok("xmpp cluster remove %s --yes" % victim.node_id(), timeout=60)
        check_removed(c, victim, [leader, other])
        rejoin(c, victim, leader)
        c.wait_converged(timeout=60)

        # 2. the leader removed by a follower
        leader = c.leader()
        f = c.followers(leader)
        f[0].ok("xmpp cluster remove %s --yes" % leader.node_id(), timeout=60)
        new, _ = c.wait_leader(f, not_node=leader, timeout=60)
        check_removed(c, leader, f)
        rejoin(c, leader, new)
        c.wait_converged(timeout=60)

        # 3. a follower removed while it is down learns it when it dials
        leader = c.leader()
        victim = c.followers(leader)[0]
        vid = victim.node_id()
        victim.stop()
        leader.ok("xmpp cluster remove %s --yes" % vid, timeout=60)
        victim.start()
        check_removed(c, victim, [nd for nd in c.live() if nd is not victim])
        rejoin(c, victim, leader)
        c.wait_converged(timeout=60)
        for nd in c.nodes:
            check(nd.json("xmpp status").get("domain") == DOMAIN, nd.name)


run(main, timeout=400)
