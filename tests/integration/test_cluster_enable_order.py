#!/usr/bin/env python3
"""test_cluster_enable_order: `xmpp cluster enable` before `xmpp listen`.
The peer link first takes 127.0.0.1:5224 (no listen
address yet); after `xmpp listen <addr>`, a second `xmpp cluster enable`
moves it to <addr>:5224, the node initializes a cluster at that address,
and another node joins it there (which fails when the first node's peer
link and its configuration still say 127.0.0.1)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(2) as c:
        c.make_pki()
        c.start_all()
        first, second = c.nodes
        for nd in c.nodes:
            nd.install_pki(c.ca)
        first.ok("xmpp certs %s.key %s.crt ca-bundle.pem" % (first.name, first.name))
        first.ok("xmpp cluster trust ca-bundle.pem")
        j = first.json("xmpp cluster enable")
        check(j["address"] == "127.0.0.1:5224", "enable before listen: %s" % j)
        first.ok("xmpp listen %s" % first.addr)
        j = first.json("xmpp cluster enable")
        check(j["address"] == first.peer_addr,
              "a second enable after xmpp listen keeps %s, wanted %s"
              % (j["address"], first.peer_addr))
        first.ok("xmpp domain %s" % DOMAIN)
        first.ok("xmpp cluster initialize")
        first.ok("xmpp enable")
        s = first.status()
        check(s.addrs() == [first.peer_addr], "%s lists %s" % (first.name, s.addrs()))
        second.configure()
        c.join(second, via=first)
        c.wait_converged(timeout=60)
        c.say("enable, listen, enable: the peer link moved to %s and %s joined there",
              first.peer_addr, second.name)


run(main, timeout=200)
