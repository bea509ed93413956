#!/usr/bin/env python3
"""test_client_cross_node: what real clients (libstrophe, tools/xclient.c)
on different nodes of a 3-node cluster do to each other (the independent
tester's client suite, session 7):

 - XEP-0199 §4.2: alice pings bob's full JID on another node and gets
   bob's client's result; a ping to the server is answered by her node;
 - RFC 6121 §4.6: alice's directed presence reaches bob on another node
   without a subscription, and §4.6.3 her unavailable does when she logs
   out (the server sends it on her behalf);
 - RFC 6120 §7.7.2.2: bob binds the same full JID on a third node: the
   old session gets the stream error conflict, every node counts one
   session of bob, and a message to that full JID arrives once, at the
   new session (read through a marker message sent after it: stanzas
   between two sessions arrive in order)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Clients, users_cluster  # noqa: E402
from cluster import Cluster, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

PASSWORDS = {"alice": "alice-pw-93aa", "bob": "bob-pw-1f0e", "carol": "carol-pw-7b21"}


def main():
    with Cluster(3) as c:
        leader, f1, f2, ca = users_cluster(c, PASSWORDS)
        with Clients(PASSWORDS, ca) as cs:
            bob = cs.open("bob@example.com/desk", f1)
            alice = cs.open("alice@example.com/a", f2)
            carol = cs.open("carol@example.com/c", leader)
            wait_sessions(c.nodes, {"alice": 1, "bob": 1, "carol": 1})

            # XEP-0199: client to client across nodes, and to the server.
            alice.send("iq-ping bob@example.com/desk")
            alice.wait_line(r"^iq bob@example\.com/desk result \S+$")
            alice.send("iq-ping example.com")
            alice.wait_line(r"^iq example\.com result \S+$")
            c.say("pings answered across nodes")

            # RFC 6121 §4.6: directed presence, then its unavailable at logout.
            alice.send("directed bob@example.com/desk")
            bob.wait_line(r"^presence alice@example\.com/a available$")
            check(alice.quit() == 0, alice.output())
            bob.wait_line(r"^presence alice@example\.com/a unavailable$")
            c.say("directed presence and its unavailable across nodes")

            # RFC 6120 §7.7.2.2: the same full JID bound on a third node.
            bob2 = cs.open("bob@example.com/desk", leader)
            bob.wait_line(r"^error conflict$")
            bob.wait_line(r"^disconnected ")
            wait_sessions(c.nodes, {"bob": 1})
            carol.send("msg bob@example.com/desk once")
            carol.send("msg bob@example.com/desk marker")
            bob2.wait_line(r"^msg carol@example\.com/c marker$")
            got = [ln for ln in bob2.output().splitlines()
                   if ln == "msg carol@example.com/c once"]
            check(len(got) == 1, "the message arrived %d times:\n%s"
                  % (len(got), bob2.output()))
            check("msg carol@example.com/c" not in bob.output(), bob.output())
            c.say("conflict across nodes: the new session has it, once")
            for cl in (bob2, carol):
                check(cl.quit() == 0, cl.output())


run(main)
