#!/usr/bin/env python3
"""test_cluster_trust: a peer whose certificate comes from another CA (not
in the cluster's trust bundle) cannot join: `xmpp cluster join` fails with
a clear one-line error, the refusal is logged with the reason on the node
that refused it, and the cluster's peer lists do not change (the joining
node trusts both CAs, so only the members' check can refuse it).  A trust
bundle that does not hold the CA of the node's own certificate is refused
with a clear error, and such a node cannot join either."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, check_peers, make_ca, make_node_cert, wait_logged  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(3) as c:
        leader = c.form(members=2)
        members = c.nodes[:2]
        intruder = c.nodes[2]
        # A second CA; the intruder gets its certificate from it and trusts
        # both CAs (so the failure can only be on the members' side).
        other = os.path.join(c.base, "other-ca")
        make_ca(other, "Other CA")
        make_node_cert(other, intruder.name, intruder.addr)
        pki = os.path.join(intruder.dir, "pki")
        intruder.put_pki(other, intruder.name + ".key", intruder.name + ".crt")
        with open(os.path.join(pki, "ca-bundle.pem"), "w") as out:
            for d in (c.ca, other):
                with open(os.path.join(d, "ca.crt")) as f:
                    out.write(f.read())
        intruder.ok("xmpp certs %s.key %s.crt ca-bundle.pem" % (intruder.name, intruder.name))
        intruder.ok("xmpp cluster trust ca-bundle.pem")
        t = time.monotonic()
        err = intruder.fails("xmpp cluster join %s %s" % (leader.addr, leader.invite()),
                             None, timeout=60)
        took = time.monotonic() - t
        check("certificate" in err.lower() and "trust" in err.lower(),
              "join error does not say why: %s" % err)
        # Refused by the TLS failure path, not after the 10 s contact timeout
        # (whose message also names certificates and trust).  Checked by the
        # message, not by the time taken: a loaded machine may be slow.
        check("could not reach" not in err and "handshake" in err.lower(),
              "the refused join timed out instead of failing on the handshake "
              "(after %.1fs): %s" % (took, err))
        c.say("join with a foreign certificate refused after %.1fs: %s", took, err)
        rx = re.compile(r"(?i)(certificate|verify|trust|tls).*(refus|fail|reject|untrusted)|"
                        r"(refus|fail|reject).*(certificate|verify|trust|tls)")
        line = wait_logged(members, rx, 60, "a member logs the refusal with its reason")
        c.say("logged: %s", line)
        check_peers(members, members)
        c.wait_converged(members=members, timeout=60)
        c.say("the refusal is logged; members unchanged")

        # The other way round: the right certificate, but the joining node
        # trusts only the other CA, so it refuses the cluster's nodes.
        intruder.put_pki(c.ca, intruder.name + ".key", intruder.name + ".crt")
        intruder.put_pki(other, "ca.crt", dst_name="other-ca.pem")
        intruder.ok("xmpp certs %s.key %s.crt ca-bundle.pem" % (intruder.name, intruder.name))
        # The node's own certificate must verify against the cluster trust
        # bundle (one CA per cluster), so this is refused at once.
        err = intruder.fails("xmpp cluster trust other-ca.pem", "does not verify")
        c.say("a trust bundle without the node's own CA: %s", err[:160])
        err = intruder.fails("xmpp cluster join %s %s" % (leader.addr, leader.invite()),
                             None, timeout=60)
        c.say("and the join is refused: %s", err)
        check_peers(members, members)


run(main, timeout=120)
