#!/usr/bin/env python3
"""test_attack_cluster: a hostile client on a follower of a 3-node
cluster, whose stanzas cross the peer links (forwarded to the node that
holds the recipient, parsed there again): alice on one follower, bob on
the other, the call bridge cb1 on the leader, all with raw sockets
(test_attack_listeners' helpers).

 - a forged 'from' (plain, in another namespace, with a prefix for
   jabber:client) reaches bob as alice's full JID (RFC 6120 §8.1.2.1);
 - CDATA, a prefix declared on alice's stream header, quotes and
   entities in attributes, a 200 KB body: bob's stream stays well-formed
   and gets the text as sent;
 - error stanzas to bob, to nobody and to a call bridge that is not
   connected are never answered (§8.3.1); an iq get to that call bridge
   is answered once, service-unavailable;
 - cb1 with a 'from' outside its domain: invalid-from, nothing routed;
 - a presence flood from alice: every node still answers its status, bob
   and cb1 still get their pings answered.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import DOMAIN, HDR, PASSWORDS, c2s_bound, comp_conn, ping  # noqa: E402
from clients import users_cluster  # noqa: E402
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def bob_gets(bob, mid):
    """The message with id mid that bob got, parsed (AssertionError when
    it does not come or is not well-formed XML)."""
    m = bob.expect(r"<message[^>]*id='%s'[^>]*>.*?</message>|<message[^>]*id='%s'[^>]*/>"
                   % (mid, mid), what="message %s at bob" % mid)
    try:
        return ET.fromstring("<r xmlns:stream='http://etherx.jabber.org/streams'>%s</r>"
                             % m.group(0))[0], m.group(0)
    except ET.ParseError as e:
        raise AssertionError("message %s at bob is not well-formed: %s: %r"
                             % (mid, e, m.group(0)[:500]))


def main():
    with Cluster(3) as c:
        leader, f1, f2, ca = users_cluster(c, {u: PASSWORDS[u] for u in ("alice", "bob")})
        secret = c.add_callbridge("cb1")
        c.add_callbridge("cb2")
        hdr = (HDR % DOMAIN).replace("version='1.0'>", "version='1.0' xmlns:foo='urn:foo'>")
        bob = c2s_bound(f2, ca, "bob", "b")
        alice = c2s_bound(f1, ca, "alice", "a", hdr=hdr)
        cb1 = comp_conn(leader, "cb1", secret)
        c.say("alice on %s, bob on %s, cb1 on %s", f1.name, f2.name, leader.name)
        # bob's session is in the leader's routing table once a stanza to
        # him gets through
        wait_for(lambda: (alice.send("<message to='bob@%s/b' id='hello'/>" % DOMAIN),
                          bob.pump(0.5), "id='hello'" in bob.text())[-1], 60,
                 "a first message from alice to bob across nodes")

        me = "alice@%s/a" % DOMAIN
        forms = [
            ("f1", "<message to='bob@%s/b' from='bob@%s/x' id='f1'><body>1</body></message>"),
            ("f2", "<message to='bob@%s/b' xmlns:q='jabber:client' q:from='bob@%s/x' "
                   "id='f2'/>"),
            ("f3", "<q:message xmlns:q='jabber:client' to='bob@%s/b' from='bob@%s/x' "
                   "id='f3'><q:body>3</q:body></q:message>"),
        ]
        for mid, st in forms:
            alice.send(st % (DOMAIN, DOMAIN))
            el, raw = bob_gets(bob, mid)
            check(el.get("from") == me, "across nodes, forged from %s: bob sees %s: %r"
                  % (mid, me, raw))
        # XML that must arrive as sent
        alice.send("<message to='bob@%s/b' id='cd'><body><![CDATA[<presence "
                   "type='unavailable'/>&amp;]]></body></message>" % DOMAIN)
        el, raw = bob_gets(bob, "cd")
        check(el.findtext("body") == "<presence type='unavailable'/>&amp;",
              "across nodes, CDATA arrives as text: %r" % raw)
        alice.send("<message to='bob@%s/b' id='px'><foo:x foo:a='1'/></message>" % DOMAIN)
        el, raw = bob_gets(bob, "px")
        check(el.find("{urn:foo}x") is not None,
              "across nodes, a prefix from alice's header arrives bound: %r" % raw)
        alice.send("<message to='bob@%s/b' id='q' title='a&apos;b&quot;c&lt;&amp;'>"
                   "<body>x&lt;y&amp;z</body></message>" % DOMAIN)
        el, raw = bob_gets(bob, "q")
        check(el.get("title") == "a'b\"c<&" and el.findtext("body") == "x<y&z",
              "across nodes, quotes and entities arrive as sent: %r" % raw)
        big = "z" * 200000
        alice.send("<message to='bob@%s/b' id='big'><body>%s</body></message>"
                   % (DOMAIN, big))
        el, raw = bob_gets(bob, "big")
        check(el.findtext("body") == big, "across nodes, a 200 KB body arrives whole")
        # error stanzas are never answered; an iq to an absent bridge is
        # answered once
        alice.pos = len(alice.got)
        for st in ("<message type='error' id='e1' to='nobody@%s'/>" % DOMAIN,
                   "<message type='error' id='e2' to='cb2.%s'/>" % DOMAIN,
                   "<iq type='error' id='e3' to='cb2.%s'/>" % DOMAIN,
                   "<iq type='result' id='e4' to='cb2.%s'/>" % DOMAIN,
                   "<presence type='error' to='cb2.%s'/>" % DOMAIN,
                   "<message type='error' id='e5' to='bob@%s/b'/>" % DOMAIN,
                   "<iq type='get' id='g1' to='cb2.%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                   % DOMAIN):
            alice.send(st)
        alice.expect(r"<iq[^>]*id='g1'[^>]*>.*?</iq>", what="the answer for cb2")
        ping(alice, None)
        alice.pump(1)
        got = alice.text()[-20000:]
        check(not re.search(r"id='e\d'", got) and "<presence type='error'" not in got,
              "across nodes, error stanzas are not answered: %r" % got[-600:])
        check(len(re.findall(r"id='g1'", got)) == 1 and "service-unavailable" in got,
              "an iq to an absent call bridge: one service-unavailable: %r" % got[-600:])
        # cb1 with a 'from' outside its domain
        cb1.send("<message from='bob@%s/b' to='alice@%s/a' id='cbf'><body>x</body></message>"
                 % (DOMAIN, DOMAIN))
        check(cb1.wait_closed(60) and "invalid-from" in cb1.text(),
              "cb1 with a 'from' outside its domain: invalid-from: %r" % cb1.text()[-300:])
        alice.pump(1)
        check("id='cbf'" not in alice.text(), "nothing cb1 forged reaches alice")
        cb1 = comp_conn(leader, "cb1", secret)
        # a presence flood from alice on f1
        alice.send("<presence/>" * 20000, timeout=10)
        for nd in c.nodes:
            check("State:" in nd.ok("xmpp cluster status"),
                  "%s answers its status during the flood" % nd.name)
        ping(bob, None)
        ping(cb1, "cb1." + DOMAIN)
        c.wait_converged(timeout=60)
        c.say("bob and cb1 served, the cluster converged after the flood")


if __name__ == "__main__":
    run(main, timeout=300)
