#!/usr/bin/env python3
"""test_client_unsubscribe: subscriptions across a 3-node cluster
(RFC 6121 §3.1.5, §3.2, §3.3; the independent tester's client suite,
session 6), with real libstrophe clients (tools/xclient.c):

 - alice (one follower) and bob (the other follower, and a second
   resource on the leader) subscribe to each other ("both"); at bob's
   approval alice gets the presence of both his resources (§3.1.5: all
   of the contact's available resources, the remote one too);
 - §3.3: alice unsubscribes from bob: bob gets the unsubscribe, alice
   gets the unavailable of both his resources (§3.3.3); bob's next presence no longer reaches
   alice, alice's still reaches bob;
 - §3.2: alice cancels bob's subscription (unsubscribed): bob gets it and
   alice's unavailable (§3.2.3); alice's next presence no longer reaches
   bob;
 - an iq to a full JID no node holds is answered service-unavailable
   (RFC 6121 §8.5.3.2.1).
"Nothing more arrives" is read through a marker message sent after the
presence: stanzas between two sessions arrive in order, so once the
marker is in, an earlier presence would be too (no timed wait)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
PASSWORDS = {"alice": "alice-pw-2c81", "bob": "bob-pw-77d0"}


def none_before_marker(cl, start, sender, marker, rx_line):
    """Has sender send a marker message to cl; once it is in, checks that
    no line equal to rx_line came among cl's lines from index start."""
    sender.send("msg %s %s" % (cl.jid, marker))
    cl.wait_line(r"^msg \S+ %s$" % marker)
    lines = cl.output().splitlines()
    check(rx_line not in lines[start:], "%s got %r after it should have stopped:\n%s"
          % (cl.jid, rx_line, "\n".join(lines)))


def pushes(cl):
    return sum(1 for ln in cl.output().splitlines() if ln.startswith("iq - set push"))


def wait_push(cl, before):
    """Waits until cl got a roster push beyond the first `before`: its own
    node applied the write (the rosters are replicated: a stanza routed
    by another node can arrive before that)."""
    wait_for(lambda: pushes(cl) > before, 20, "%s: a roster push" % cl.jid)


def main():
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
        f1.ok("xmpp user add alice", stdin=PASSWORDS["alice"] + "\n")
        f2.ok("xmpp user add bob", stdin=PASSWORDS["bob"] + "\n")
        for nd in c.nodes:
            wait_for(lambda nd=nd: all(u in nd.ok("xmpp user list") for u in PASSWORDS),
                     15, "%s: both accounts in xmpp user list" % nd.name)

        with Client("alice@example.com/laptop", PASSWORDS["alice"], f1.addr, CLIENT_PORT,
                    ca) as alice, \
                Client("bob@example.com/phone", PASSWORDS["bob"], f2.addr, CLIENT_PORT,
                       ca) as bob, \
                Client("bob@example.com/desk", PASSWORDS["bob"], leader.addr, CLIENT_PORT,
                       ca) as desk:
            check(alice.online() == "alice@example.com/laptop", alice.output())
            check(bob.online() == "bob@example.com/phone", bob.output())
            check(desk.online() == "bob@example.com/desk", desk.output())
            bob.wait_line(r"^presence bob@example\.com/desk available$")
            alice.send("sub bob@example.com")
            bob.wait_line(r"^presence alice@example\.com subscribe$")
            bob.send("subscribed alice@example.com")
            alice.wait_line(r"^presence bob@example\.com/phone available$")
            alice.wait_line(r"^presence bob@example\.com/desk available$")
            bob.send("sub alice@example.com")
            alice.wait_line(r"^presence bob@example\.com subscribe$")
            alice.send("subscribed bob@example.com")
            bob.wait_line(r"^presence alice@example\.com/laptop available$")
            c.say("alice (%s) and bob (%s) subscribed both ways", f1.name, f2.name)

            # §3.3: alice unsubscribes from bob.
            bob_pushes = pushes(bob)
            alice.send("directed bob@example.com unsubscribe")
            bob.wait_line(r"^presence alice@example\.com unsubscribe$")
            alice.wait_line(r"^presence bob@example\.com/phone unavailable$")
            alice.wait_line(r"^presence bob@example\.com/desk unavailable$")
            wait_push(bob, bob_pushes)
            start = len(alice.output().splitlines())
            bob.send("presence 4")
            none_before_marker(alice, start, bob, "m1",
                               "presence bob@example.com/phone available")
            alice.send("presence 2")
            bob.wait_line(r"^presence alice@example\.com/laptop available$")
            c.say("unsubscribe: bob's presence stopped, alice's goes on")

            # §3.2: alice cancels bob's subscription to her.
            alice.send("directed bob@example.com unsubscribed")
            bob.wait_line(r"^presence alice@example\.com unsubscribed$")
            bob.wait_line(r"^presence alice@example\.com/laptop unavailable$")
            start = len(bob.output().splitlines())
            alice.send("presence 3")
            none_before_marker(bob, start, alice, "m2",
                               "presence alice@example.com/laptop available")
            c.say("unsubscribed: alice's presence stopped")

            # §8.5.3.2.1: an iq to a resource no node holds.
            alice.send("iq-ping bob@example.com/nowhere")
            alice.wait_line(r"^error service-unavailable$")
            check(alice.quit() == 0, alice.output())
            check(bob.quit() == 0, bob.output())
            check(desk.quit() == 0, desk.output())


if __name__ == "__main__":
    run(main, timeout=240)
