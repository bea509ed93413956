#!/usr/bin/env python3
"""Login throttling holds for the whole cluster (docs/clients.md
"Throttling across the cluster"): real xmppd processes on three nodes, real
libstrophe clients (tools/xclient.c through clients.py), the default
settings (answers delayed from the second failure on, a block after 10
failures for 5 minutes).

 - wrong passwords for alice, one on each node: every node counts all of
   them (`throttled` 2 in `xmpp status`: her account and 127.0.0.1);
 - her right password on one node then clears the counts on every node;
 - wrong passwords for alice spread over the three nodes, a few at a time:
   after 10 in all (fewer than 4 on any node), her account and the
   address are blocked on every node (`blocked` 2 on each) and her right
   password is refused on every node (temporary-auth-failure,
   RFC 6120 §6.5.11) without being checked.
The end of a block after its time is checked in tests/xmpp/test_cluster.c
(test_cluster_login_throttle): five minutes are too long here.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
PASSWORD = "alice-pw-7f3a"
BLOCK_AFTER = 10  # srv_config_default login_block_after


def stats(node):
    return node.json("xmpp status").get("client_stats", {})


def guess(node, ca):
    """Starts one login of alice with a wrong password on node."""
    return Client("alice@example.com/x", "not-her-password", node.addr, CLIENT_PORT, ca,
                  mech="SCRAM-SHA-256")


def refused_as(bad, conds):
    """Waits for bad's SASL failure; returns its condition (one of conds)."""
    line = bad.wait_line(r"^error (%s)$" % "|".join(conds), timeout=60)
    bad.wait_line(r"^disconnected auth-failed$", timeout=60)
    check(bad.finish() == 1, bad.output())
    return line.split()[1]


def main():
    with Cluster(3) as c:
        leader = c.form()
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
        leader.ok("xmpp user add alice", stdin=PASSWORD + "\n")
        nodes = c.nodes

        # One failure on each of two nodes: counted on all three.
        for nd in nodes[:2]:
            with guess(nd, ca) as bad:
                refused_as(bad, ["not-authorized"])
        for nd in nodes:
            wait_for(lambda nd=nd: stats(nd).get("throttled") == 2, timeout=30,
                     what="%s counts the failures of the other nodes: %r"
                     % (nd.name, stats(nd)))
            check(stats(nd).get("blocked") == 0, "%s: %r" % (nd.name, stats(nd)))
        c.say("two failures on two nodes: counted on every node")

        # Her password on the third node clears every node's counts.
        with Client("alice@example.com/ok", PASSWORD, nodes[2].addr, CLIENT_PORT, ca) as ok:
            ok.online(timeout=60)
            check(ok.quit() == 0, ok.output())
        for nd in nodes:
            wait_for(lambda nd=nd: stats(nd).get("throttled") == 0, timeout=30,
                     what="%s forgets the failures after a success elsewhere: %r"
                     % (nd.name, stats(nd)))
        c.say("a success on the third node: the counts are gone on every node")

        # Failures spread over the nodes, three at a time (one per node):
        # the cluster's count reaches BLOCK_AFTER though no node saw more
        # than four.
        failed, per_node = 0, {nd.name: 0 for nd in nodes}
        while failed < BLOCK_AFTER:
            batch = [(nd, guess(nd, ca)) for nd in nodes]
            for nd, bad in batch:
                with bad:
                    cond = refused_as(bad, ["not-authorized", "temporary-auth-failure"])
                if cond == "not-authorized":
                    failed += 1
                    per_node[nd.name] += 1
        check(max(per_node.values()) <= 4, "failures per node: %r" % per_node)
        for nd in nodes:
            wait_for(lambda nd=nd: stats(nd).get("blocked") == 2, timeout=30,
                     what="%s blocks alice and the address: %r" % (nd.name, stats(nd)))
            blocked = stats(nd).get("blocked_newest") or []
            check("account alice" in blocked and "address 127.0.0.1" in blocked,
                  "%s: %r" % (nd.name, blocked))
        c.say("%d failures spread %r: blocked on every node" % (failed, per_node))

        # The right password is refused on every node, before any check.
        for nd in nodes:
            before = stats(nd).get("login_refusals", 0)
            with Client("alice@example.com/ok", PASSWORD, nd.addr, CLIENT_PORT, ca,
                        mech="SCRAM-SHA-256") as ok:
                check(refused_as(ok, ["temporary-auth-failure", "not-authorized"])
                      == "temporary-auth-failure", ok.output())
            check(stats(nd).get("login_refusals", 0) == before + 1,
                  "%s: %r" % (nd.name, stats(nd)))
        c.say("her password is refused on every node (temporary-auth-failure)")


if __name__ == "__main__":
    run(main, timeout=420)
