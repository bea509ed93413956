#!/usr/bin/env python3
"""test_cluster_rejoin: the defect to make impossible: a
member reset (new node id) and joined again must never appear twice.

- `xmpp reset` on a member says it is still a member (refused without
  --force); with --force it resets: new node id.
- After configuring it again, `xmpp cluster join <first> <token>` from the same
  address is refused with a message naming the member that holds the
  address and the `xmpp cluster remove` command; nothing changes: every
  node lists each member once.
- `xmpp cluster join --replace` removes the stale member and adds the new
  node in one step: every node's peer list has each address once, with the
  new id, the old id is gone, and the voter count is 3 (proved by stopping
  one other node: the remaining two still have a leader, and a write
  succeeds)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, same_id  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def voters(j):
    """The voter count in a --json status, when it has one."""
    for k in ("voters", "voter_count", "nvoters"):
        if isinstance(j, dict) and k in j:
            return j[k]
    return None


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        victim = c.followers(leader)[0]
        old_id = victim.node_id()

        err = victim.fails("xmpp reset --yes", ["member", "--force"])
        c.say("reset without --force: %s", err)
        victim.ok("xmpp reset --yes --force")
        new_id = victim.node_id()
        check(new_id != old_id, "reset kept the node id %s" % old_id)
        c.say("%s reset: node %s -> %s", victim.name, old_id, new_id)

        # Configure it again, as an admin would, and try to join.
        victim.configure()
        first = c.nodes[0] if c.nodes[0] is not victim else c.nodes[1]
        # A refused join does not use up its token: the same one serves
        # the join with --replace below.
        token = first.invite()
        err = victim.fails("xmpp cluster join %s %s" % (first.addr, token),
                           [victim.addr, "xmpp cluster remove"], timeout=60)
        check(old_id[:4].lower() in err.lower(), "refusal does not name member %s: %s"
              % (old_id, err))
        c.say("join refused: %s", err)
        others = [nd for nd in c.nodes if nd is not victim]
        for nd in others:
            s = nd.status()
            check(sorted(s.addrs()) == sorted(x.peer_addr for x in c.nodes),
                  "%s after the refusal: %s" % (nd.name, s.text))
            p = [x for x in s.peers if x["addr"] == victim.peer_addr][0]
            check(same_id(p["node"], old_id), "%s: member changed: %s" % (nd.name, s.text))

        victim.ok("xmpp cluster join %s %s --replace" % (first.addr, token), timeout=60)
        victim.ok("xmpp enable")
        c.wait_converged(timeout=60)
        for nd in c.nodes:
            s = nd.status()
            check(len(s.peers) == 3, "%s lists %d peers: %s" % (nd.name, len(s.peers), s.text))
            p = [x for x in s.peers if x["addr"] == victim.peer_addr]
            check(len(p) == 1 and same_id(p[0]["node"], new_id),
                  "%s: %s not listed once with %s: %s" % (nd.name, victim.addr, new_id, s.text))
            check(not any(same_id(x["node"], old_id) for x in s.peers),
                  "%s still lists %s: %s" % (nd.name, old_id, s.text))
            v = voters(nd.status_json())
            check(v is None or v == 3, "%s: voters %r" % (nd.name, v))
        c.say("--replace: every node lists 3 members, %s once with its new id", victim.name)

        # Quorum is 2 of 3: with one other node stopped there is a leader.
        leader = c.leader()
        down = [nd for nd in c.nodes if nd is not victim and nd is not leader][0]
        down.kill()
        rest = [nd for nd in c.nodes if nd is not down]
        c.wait_leader(rest, timeout=60)
        c.add_callbridge("quorum", on=victim)
        c.say("with %s down the two others commit a write", down.name)
        down.start()
        c.wait_converged(timeout=60)
        time.sleep(0.2)
        c.wait_same_state(c.nodes, timeout=60)


run(main, timeout=150)
