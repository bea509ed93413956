#!/usr/bin/env python3
"""test_cluster_guest_link: a peer link that has not
joined (HELLO with cluster id 0, a "guest") may carry a join request and
nothing else.  A TLS peer with a certificate that the trust bundle accepts,
for an address of its own, says cluster id 0 in its HELLO (accepted: a
node asking to join) and then sends, one connection each, DELIVER (a
forged message to a call bridge on the leader), FWD, SESSIONS (claiming
the call bridge's name), ACK and CONFLICT (for the call bridge's name).
Each link is closed by the leader and counted ("forbidden" in `xmpp
cluster status`), the call bridge receives nothing of it and is not
kicked, and a real message from another node still reaches it."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer as fp  # noqa: E402
from cluster import DOMAIN, PEER_PORT, Cluster, make_node_cert, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def attack(c, leader, guest_addr, kind, make, n):
    """One guest connection to the leader: HELLO with cluster id 0, the
    leader's HELLO back, then the frame of kind; the leader must close."""
    ca = c.ca
    with fp.FakePeer(leader.addr, PEER_PORT, os.path.join(ca, "guest.crt"),
                     os.path.join(ca, "guest.key"), os.path.join(ca, "ca-bundle.pem")) as p:
        p.send(fp.hello(0, 0x6e00 + n, "%s:%d" % (guest_addr, PEER_PORT), incarnation=n + 1))
        t, _ = p.read_frame(60)
        check(t == fp.HELLO, "%s: the leader answers the guest's HELLO (got type %d)"
              % (kind, t))
        p.send(make())
        check(p.wait_closed(60), "%s on a guest link: the leader closes it" % kind)
    c.say("%s on a guest link: closed by the leader", kind)


def main():
    with Cluster(3) as c:
        leader = c.form(members=2)
        follower = c.nodes[1]
        guest_addr = c.nodes[2].addr  # not a member: node3 never joins
        c.nodes[2].kill()
        make_node_cert(c.ca, "guest", guest_addr)
        c.add_callbridge("cb1")
        c.add_callbridge("cb2")
        victim = c.comp(leader, "cb1", "--stay", "--expect", "1")
        victim.wait_line("^connected")
        c.wait_components(["cb1"])
        cb1 = "cb1.%s" % DOMAIN
        forged = ("<message from='admin@%s' to='%s' id='forged'><body>seq=1 forged</body>"
                  "</message>" % (DOMAIN, cb1))
        before = leader.status_json()["links"]
        frames = [
            ("DELIVER", lambda: fp.fwd(1, 0x6e01, "admin@" + DOMAIN, cb1, forged,
                                       kind=fp.DELIVER)),
            ("FWD", lambda: fp.fwd(1, 0x6e02, "admin@" + DOMAIN, cb1, forged)),
            ("SESSIONS", lambda: fp.sessions(1, 0x6e03, [cb1])),
            ("ACK", lambda: fp.ack(1)),
            ("CONFLICT", lambda: fp.conflict(1, cb1, 0)),
            ("ROUTES", lambda: fp.routes(1, [cb1], 0x6e04)),
        ]
        for n, (kind, make) in enumerate(frames):
            attack(c, leader, guest_addr, kind, make, n + 1)
        links = wait_for(lambda: (lambda x: x if x.get("forbidden", 0) - before.get("forbidden", 0)
                                  >= len(frames) else None)(leader.status_json()["links"]),
                         60, "the leader counts the forbidden frames")
        c.say("counted: %s", links)
        text = leader.status().text
        check(re.search(r"^Peer links: .*forbidden [1-9]\d*", text, re.M),
              "xmpp cluster status shows the count:\n" + text)
        leader.wait_log(r"peer link from .* closed: DELIVER on the link of a node that "
                        r"has not joined")
        # The call bridge on the leader was not kicked and got nothing
        # forged: the one message it expects is a real one from cb2.
        sender = c.comp(follower, "cb2", "--to", cb1, "--send", "1", "--quiet")
        check(sender.finish(60) == 0, "cb2 sends one message:\n" + sender.output())
        victim.wait_line("received messages=1 in_order=yes", 60)
        out = victim.output()
        check("forged" not in out and "from=admin@" not in out,
              "nothing forged reached cb1:\n" + out)
        check("conflict" not in out, "cb1 was not kicked:\n" + out)
        check(re.search(r"^message from=cb2\.%s seq=1" % re.escape(DOMAIN), out, re.M),
              "cb1 got the real message:\n" + out)
        c.say("no forged frame reached a component; the real message did")


run(main, timeout=240)
