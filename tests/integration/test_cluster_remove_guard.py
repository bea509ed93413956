#!/usr/bin/env python3
"""test_cluster_remove_guard: `xmpp cluster remove` names one member on
purpose (`xmpp cluster remove 1` removed a node).

Three members whose node ids are set before the first start: node1
abcd1..., node2 abcd2..., node3 9f00....
- a 1-3 digit prefix is refused, even one that starts a single member
  ("9f0"), with one line listing the candidates;
- "abcd" starts two members: refused, both listed;
- with one follower stopped, removing the other follower (by address) from
  the leader would leave 2 voters of which 1 is reachable: refused without
  --yes; nothing changes;
- the leader, named by an unambiguous prefix, without --yes: refused with
  a line saying to add --yes; the configuration is unchanged;
- the same with --yes: the leader is removed and the other two elect a
  leader among themselves."""
import hashlib
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, same_id, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

IDS = {1: "abcd100000000001", 2: "abcd200000000002", 3: "9f00300000000003"}


def set_node_id(nd, node_id):
    """Gives nd a chosen node id: a first start writes node.state, which is
    rewritten with the id and its checksum (BLAKE2b-128 of the lines before
    it, xmppd/io/node_state.c); the empty Raft store goes with the old id."""
    nd.start()
    check(nd.stop() == 0, "%s did not stop cleanly" % nd.name)
    path = os.path.join(nd.dir, "node.state")
    with open(path) as f:
        lines = [ln for ln in f.read().splitlines(True) if not ln.startswith("checksum ")]
    body = "".join(re.sub(r"^node-id \S+", "node-id " + node_id, ln) for ln in lines)
    check(("node-id %s\n" % node_id) in body, "no node-id line in %s" % path)
    digest = hashlib.blake2b(body.encode(), digest_size=16).hexdigest()
    with open(path, "w") as f:
        f.write(body + "checksum %s\n" % digest)
    shutil.rmtree(os.path.join(nd.dir, "raft"), ignore_errors=True)


def main():
    with Cluster(3) as c:
        for i, nd in enumerate(c.nodes, 1):
            set_node_id(nd, IDS[i])
        leader = c.form(fast_lan=True)
        for i, nd in enumerate(c.nodes, 1):
            check(nd.node_id() == IDS[i], "%s has id %s" % (nd.name, nd.node_id()))
        f = c.followers(leader)
        asker = f[0]
        c.say("%s leads; %s is asked to remove members", leader.name, asker.name)

        for p in ("a", "ab", "abc", "9", "9f0"):
            err = asker.fails("xmpp cluster remove %s" % p, ["too short", "4 hex digits"])
            check(p != "9f0" or IDS[3] in err, "candidates not listed: %s" % err)
        c.say("short prefixes refused: %s", err)
        err = asker.fails("xmpp cluster remove abcd", [IDS[1], IDS[2]])
        check(IDS[3] not in err, "a member the prefix does not start is listed: %s" % err)
        c.say("ambiguous prefix refused: %s", err)

        down, other = f[1], f[0]
        check(down.stop() == 0, "%s did not stop cleanly" % down.name)
        wait_for(lambda: [p for p in leader.status_json()["peers"]
                          if p["address"] == down.peer_addr and p["link"] != "up"], 60,
                 "%s sees its link to %s down" % (leader.name, down.name))
        err = leader.fails("xmpp cluster remove %s" % other.peer_addr,
                           ["not a majority", "--yes"])
        c.say("no reachable majority without --yes refused: %s", err)
        down.start()
        # The restart may have moved leadership: ask again who leads.
        leader = c.wait_converged(timeout=60)
        f = c.followers(leader)
        asker = f[0]
        for nd in c.nodes:
            check(len(nd.status().peers) == 3, "%s lost a member after a refusal:\n%s"
                  % (nd.name, nd.status().text))

        lid = leader.node_id()
        err = asker.fails("xmpp cluster remove %s" % lid[:5], ["leader", "--yes"])
        c.say("leader without --yes refused: %s", err)
        for nd in c.nodes:
            check(len(nd.status().peers) == 3, "%s lost a member after a refusal:\n%s"
                  % (nd.name, nd.status().text))

        asker.ok("xmpp cluster remove %s --yes" % lid[:5], timeout=60)
        new, term = c.wait_leader(f, not_node=leader, timeout=60)
        c.wait_converged(timeout=60, members=f)
        for nd in f:
            s = nd.status()
            check(len(s.peers) == 2 and not any(same_id(p["node"], lid) for p in s.peers),
                  "%s still lists the removed leader:\n%s" % (nd.name, s.text))
        c.say("leader removed with --yes; %s leads in term %d", new.name, term)
        for nd in c.nodes:
            if nd.alive():
                check(nd.stop() == 0, "%s exit not 0:\n%s" % (nd.name, nd.log()[-3000:]))


run(main, timeout=300)
