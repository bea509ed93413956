#!/usr/bin/env python3
"""test_client_cluster: clients and call bridges across a 3-node cluster,
and a leader crash under client traffic.

 - a call bridge on the leader and a client on a follower: a message and an
   iq (XEP-0199 ping) each way, the bridge addressing the client by full
   and by bare JID;
 - two clients on the two followers exchange numbered messages, 20 a second
   each way; the leader is SIGKILLed in the middle; every number arrives
   once, in order, at the other client (their sessions are on surviving
   nodes: nothing may be lost, duplicated or reordered)."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import DOMAIN, Cluster, ClusterComp, wait_for, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
N = 200


def add_user(node, name):
    node.ok("xmpp user add %s" % name, stdin=PASSWORDS[name] + "\n")


def sender(client, to, n, tag, stop):
    for i in range(1, n + 1):
        if stop.is_set():
            return
        client.send("msg %s %s %d" % (to, tag, i))
        time.sleep(0.05)


def numbers(client, frm, tag):
    rx = re.compile(r"^msg %s %s (\d+)$" % (re.escape(frm), tag))
    out = []
    for line in client.output().splitlines():
        m = rx.match(line)
        if m:
            out.append(int(m.group(1)))
    return out


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        add_user(f1, "alice")
        add_user(f2, "bob")
        secret = c.add_callbridge("cb1")
        for nd in c.nodes:
            c.wait_serving(nd)
            wait_for(lambda nd=nd: "bob" in nd.ok("xmpp user list"), 60,
                     "%s: the accounts" % nd.name)

        alice_jid = "alice@%s/laptop" % DOMAIN
        with Client(alice_jid, PASSWORDS["alice"], f1.addr, CLIENT_PORT, ca) as alice:
            check(alice.online() == alice_jid, alice.output())
            # The bridge on the leader: it answers iqs, sends 2 messages to
            # alice's full JID and 1 to her bare JID, and pings her.
            comp = ClusterComp(leader, "cb1", secret, "--answer", "--stay", "--to",
                               alice_jid, "--send", "2", "--iq", "--go-on-stdin")
            comp.wait_line(r"^connected")
            # The bridge in the leader's table, alice in every node's
            # (each reaches the others after its own login).
            c.wait_components(["cb1"])
            wait_sessions(c.nodes, {"alice": 1})
            alice.send("msg cb1.%s hello bridge" % DOMAIN)
            comp.wait_line(r"^message from=%s .*body=hello bridge" % re.escape(alice_jid))
            alice.send("iq-ping cb1.%s" % DOMAIN)
            alice.wait_line(r"^iq cb1\.%s result ping\d+$" % re.escape(DOMAIN))
            comp.go()
            alice.wait_line(r"^msg cb1\.%s " % re.escape(DOMAIN))
            comp.wait_line(r"^iq type=result from=%s" % re.escape(alice_jid))
            c.say("client on %s <-> bridge on %s: messages and iq both ways", f1.name,
                  leader.name)
            comp.close()
        with ClusterComp(leader, "cb1", secret, "--stay", "--to", "alice@%s" % DOMAIN,
                         "--send", "1", "--go-on-stdin") as comp, \
                Client(alice_jid, PASSWORDS["alice"], f1.addr, CLIENT_PORT, ca) as alice:
            alice.online()
            comp.wait_line(r"^connected")
            wait_sessions([leader], {"alice": 1})
            comp.go()
            alice.wait_line(r"^msg cb1\.%s " % re.escape(DOMAIN))
            c.say("the bridge reaches alice by her bare JID")

        bob_jid = "bob@%s/phone" % DOMAIN
        with Client(alice_jid, PASSWORDS["alice"], f1.addr, CLIENT_PORT, ca) as alice, \
                Client(bob_jid, PASSWORDS["bob"], f2.addr, CLIENT_PORT, ca) as bob:
            alice.online()
            bob.online()
            wait_sessions(c.nodes, {"alice": 1, "bob": 1})
            stop = threading.Event()
            ta = threading.Thread(target=sender, args=(alice, bob_jid, N, "a", stop))
            tb = threading.Thread(target=sender, args=(bob, alice_jid, N, "b", stop))
            ta.start()
            tb.start()
            time.sleep(N * 0.05 / 2)
            leader.kill()
            c.say("%s (leader) killed while alice and bob exchange numbered messages",
                  leader.name)
            ta.join()
            tb.join()
            wait_for(lambda: len(numbers(bob, alice_jid, "a")) >= N and
                     len(numbers(alice, bob_jid, "b")) >= N, 60,
                     "every numbered message arrives")
            got_b = numbers(bob, alice_jid, "a")
            got_a = numbers(alice, bob_jid, "b")
            check(got_b == list(range(1, N + 1)),
                  "alice -> bob: not once each in order: %s" % got_b[:50])
            check(got_a == list(range(1, N + 1)),
                  "bob -> alice: not once each in order: %s" % got_a[:50])
            c.say("%d numbers each way arrived once, in order, across the leader's death", N)


run(main, timeout=300)
