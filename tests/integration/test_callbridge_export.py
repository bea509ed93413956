#!/usr/bin/env python3
"""test_callbridge_export: `xmpp callbridge export` on a 3-node cluster:
asked on any member
it names every member in an SRV record of its own (_xmpp-component._tcp,
port 5223, equal priority and weight) with the member's A record, the same
secret everywhere (the one `xmpp callbridge show-secret` gives), and the
CA bundle; and the metrics of a member show its peer links up."""
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        leader.ok("xmpp callbridge add cb1")
        secret = leader.json("xmpp callbridge show-secret cb1")
        secret = secret.get("data", secret)["secret"]
        ids = {nd.node_id() for nd in c.nodes}
        for nd in c.nodes:
            j = nd.json("xmpp callbridge export cb1")
            j = j.get("data", j)
            check(j["secret"] == secret and j["component"] == "cb1.%s" % c.domain,
                  "%s: %r" % (nd.name, j))
            check(sorted(r["address"] for r in j["srv"]) == sorted(n.addr for n in c.nodes),
                  "%s: SRV addresses %r" % (nd.name, j["srv"]))
            check({r["node_id"] for r in j["srv"]} == ids, "%s: ids %r" % (nd.name, j["srv"]))
            for n in c.nodes:
                check(any(line.startswith("_xmpp-component._tcp.%s. 3600 IN SRV 0 10 5223 "
                                          % c.domain) for line in j["records"])
                      and any(line.endswith(" IN A %s" % n.addr) for line in j["records"]),
                      "%s: records %r" % (nd.name, j["records"]))
            check(j["ca_bundle"] and j["ca_bundle"].endswith("ca-bundle.pem"), repr(j))
        c.say("export agrees on every member: %d SRV records", len(ids))

        nd = c.nodes[1]
        nd.ok("xmpp metrics listen %s:9105" % nd.addr)
        body = urllib.request.urlopen("http://%s:9105/metrics" % nd.addr,
                                      timeout=10).read().decode()
        others = [n.node_id() for n in c.nodes if n is not nd]
        for oid in others:
            line = 'xmppd_peer_link_state{peer="%s",state="up"} 1' % oid
            check(any(ln == line for ln in body.splitlines()),
                  "%r not in the metrics:\n%s" % (line, body))
        c.say("metrics of %s: both peer links up", nd.name)


run(main, timeout=300)
