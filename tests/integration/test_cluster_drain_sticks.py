#!/usr/bin/env python3
"""test_cluster_drain_sticks: a drain that sticks
(docs/cluster.md "Draining a node"), as an admin drives it on 3 nodes:

 - `xmpp cluster drain` on the leader hands leadership over; then the
   leader is killed five times in a row (restarted in between): every new
   leader is a node that is not draining, never the drained one, although
   it votes and holds the whole log (Raft standby, RAFT_EV_STANDBY);
 - a restart of the drained node keeps the drain (node.state): `xmpp
   status` says draining and a component that connects is sent away;
 - a member removed during the drain is no longer a target: two components
   in a row are both sent to the one member left (a stale list would send
   one of them to the removed node);
 - `xmpp cluster drain --off` ends it, and a restart then serves too.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, XMPP_PORT, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def sent_to(c, node, name):
    """Connects component name to node and returns the host the node sends
    it to (see-other-host, RFC 6120 §4.9.3.19)."""
    comp = c.comp(node, name, "--stay")
    comp.wait_line(r"^stream-error condition=see-other-host$")
    line = comp.wait_line(r"^see-other-host host=")
    host, port = line.split("=", 1)[1].rsplit(":", 1)
    check(int(port) == XMPP_PORT, line)
    return host


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        c.add_callbridge("cb1")
        c.add_callbridge("cb2")
        # The leader now, not at form(): fast-LAN timing on a loaded
        # machine may have moved it meanwhile.
        leader = c.wait_converged()

        out = leader.ok("xmpp cluster drain")
        check("leadership was handed over first" in out and "kept across restarts" in out,
              "drain on the leader: %r" % out)
        drained = leader
        current, _ = c.wait_leader(c.nodes, not_node=drained)
        c.say("drained %s; leader now %s", drained.name, current.name)

        # The leader dies, five times: the drained node, up to date and
        # voting, is never the one elected.
        for round_ in range(5):
            current.kill()
            rest = [nd for nd in c.nodes if nd is not current]
            new, term = c.wait_leader(rest, not_node=current, timeout=60)
            check(new is not drained, "round %d: the drained %s was elected (term %s)"
                  % (round_, drained.name, term))
            c.say("round %d: %s killed, %s elected", round_, current.name, new.name)
            current.start()
            c.wait_converged(timeout=60)
            current = new
        check("Draining: yes" in drained.ok("xmpp cluster status"), "still draining")

        # A restart keeps the drain.
        drained.stop()
        drained.start()
        c.wait_converged(timeout=60)
        check(drained.json("xmpp status").get("draining") is True,
              "draining after a restart: %r" % drained.json("xmpp status"))
        others = {nd.addr for nd in c.nodes if nd is not drained}
        host = sent_to(c, drained, "cb1")
        check(host in others, "after the restart cb1 was sent to %s" % host)
        wait_for(lambda: "seeks no Raft leadership" in drained.log(), 60, "standby logged")

        # A member removed during the drain is no longer a target.
        gone = [nd for nd in c.nodes if nd is not drained and nd is not current][0]
        current.ok("xmpp cluster remove %s --yes" % gone.node_id(), timeout=60)
        c.wait_converged(timeout=60, members=[nd for nd in c.nodes if nd is not gone])
        hosts = {sent_to(c, drained, "cb1"), sent_to(c, drained, "cb2")}
        check(hosts == {current.addr}, "after %s was removed the drain sent to %s, not "
              "only to %s" % (gone.addr, hosts, current.addr))
        c.say("%s removed: sessions go to %s only", gone.name, current.addr)

        # Off: served again, and after a restart too.
        out = drained.ok("xmpp cluster drain --off")
        check("serves XMPP sessions again" in out, out)
        drained.stop()
        drained.start()
        check(drained.json("xmpp status").get("draining") is False, "undrained after restart")
        comp = c.comp(drained, "cb2", "--stay")
        comp.wait_line(r"^connected jid=cb2\.example\.com")
        check(re.search(r"draining yes", open(os.path.join(drained.dir, "node.state")).read())
              is None, "node.state still says draining")


if __name__ == "__main__":
    run(main)
