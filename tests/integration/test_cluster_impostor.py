#!/usr/bin/env python3
"""test_cluster_impostor: a node holding a certificate signed by the
cluster's own CA cannot claim an address its certificate does not name
(docs/cluster.md, "Identity and membership").  The intruder's certificate
names member node2's address, not its own: its `xmpp cluster join` fails,
the member it dialled logs the refusal with the claimed address and what
the certificate covers and counts it (xmpp cluster status, "Peer links"),
and the members' configuration does not change."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, check_peers, make_node_cert, wait_logged  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(3) as c:
        leader = c.form(members=2)
        members = c.nodes[:2]
        intruder = c.nodes[2]
        # Trusted (same CA), but for node2's address.
        make_node_cert(c.ca, "liar", members[1].addr)
        intruder.put_pki(c.ca, "liar.key", "liar.crt")
        intruder.ok("xmpp certs liar.key liar.crt ca-bundle.pem")
        intruder.ok("xmpp cluster trust ca-bundle.pem")
        # With a valid join token: the certificate alone must refuse it.
        err = intruder.fails("xmpp cluster join %s %s" % (leader.addr, leader.invite()),
                             None, timeout=60)
        c.say("join with a certificate for another address refused: %s", err)
        rx = re.compile(r"claims address %s.*certificate.*covers only.*IP:%s\b" %
                        (re.escape(intruder.peer_addr), re.escape(members[1].addr)))
        line = wait_logged([leader], rx, 60,
                           "the leader logs the claim and what the certificate covers")
        c.say("logged: %s", line)
        links = leader.status_json()["links"]
        check(links["impostors"] >= 1 and links["refused"] >= links["impostors"],
              "the leader counts the impostor: %s" % links)
        text = leader.status().text
        check(re.search(r"^Peer links: .*refused \d+ \(impostors [1-9]\d*\)", text, re.M),
              "xmpp cluster status shows the impostor count:\n" + text)
        check_peers(members, members)
        c.wait_converged(members=members, timeout=60)
        c.say("the impostor is refused; members unchanged")


run(main, timeout=120)
