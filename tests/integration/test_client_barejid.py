#!/usr/bin/env python3
"""A user with sessions on two nodes behaves as on one server (RFC 6121 §8.5.2.1.1): real xmppd processes, real libstrophe
clients.

 - alice logs in on both followers (resources "top" and "base": "base"
   sorts first, and the earlier routing sent a bare-JID
   message there whatever its priority), bob on the leader; they are
   subscribed to each other;
 - each session's presence (availability, priority) reaches every node's
   routing table: `xmpp user list` shows alice's two sessions, the node of
   each and their priorities, `xmpp cluster status` the client sessions
   per node;
 - bob's message to alice's bare JID goes only to the resource of higher
   priority, on another node; with equal priorities to both;
 - bob's presence reaches both of alice's resources, and his probe at
   login is answered by both nodes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, wait_client_counts, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
PASSWORDS = {"alice": "alice-pw-7f3a", "bob": "bob-pw-91c2"}


def sessions(nd, user):
    """{resource: (node address, available, priority)} of user, from nd's
    `xmpp user list --json`."""
    for u in nd.json("xmpp user list")["users"]:
        if u["name"] == user:
            return {s["resource"]: (s["node"], s["available"], s["priority"])
                    for s in u["sessions"]}
    return {}


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
                     60, "%s: both accounts in xmpp user list" % nd.name)

        with Client("alice@example.com/top", PASSWORDS["alice"], f1.addr, CLIENT_PORT,
                    ca) as high, \
                Client("alice@example.com/base", PASSWORDS["alice"], f2.addr, CLIENT_PORT,
                       ca) as low:
            check(high.online() == "alice@example.com/top", high.output())
            check(low.online() == "alice@example.com/base", low.output())
            high.send("presence 5")
            low.send("presence 1")
            # The table on the leader (bob's node) knows both, by node.
            want = {"top": (f1.peer_addr, True, 5), "base": (f2.peer_addr, True, 1)}
            wait_for(lambda: sessions(leader, "alice") == want, 60,
                     "alice's two sessions with their priorities on %s" % leader.name)
            text = leader.ok("xmpp user list")
            c.say("xmpp user list on %s:\n%s", leader.name, text)
            check("top (%s, priority 5)" % f1.peer_addr in text, text)
            check("base (%s, priority 1)" % f2.peer_addr in text, text)
            # Each member's clients by transport, in cluster status (text
            # and --json) on the leader.
            st = wait_client_counts(leader, {f1.peer_addr: (1, 0), f2.peer_addr: (1, 0),
                                             leader.peer_addr: (0, 0)})
            c.say("xmpp cluster status on %s:\n%s", leader.name, st)

            # Subscriptions both ways (through the log), then bob logs in
            # on the leader: his initial presence reaches both resources,
            # his probe is answered by both nodes (RFC 6121 §4.3.2).
            high.send("sub bob@example.com")
            with Client("bob@example.com/phone", PASSWORDS["bob"], leader.addr,
                        CLIENT_PORT, ca) as bob:
                check(bob.online() == "bob@example.com/phone", bob.output())
                bob.wait_line(r"^presence alice@example\.com subscribe$")
                bob.send("subscribed alice@example.com")
                high.wait_line(r"^presence bob@example\.com subscribed$")
                bob.send("sub alice@example.com")
                high.wait_line(r"^presence bob@example\.com subscribe$")
                high.send("subscribed bob@example.com")
                bob.wait_line(r"^presence alice@example\.com subscribed$")
                bob.send("presence 2")
                high.wait_line(r"^presence bob@example\.com/phone available$")
                low.wait_line(r"^presence bob@example\.com/phone available$")

                # Different priorities: only the higher one, on node f1.
                bob.send("msg alice@example.com first")
                high.wait_line(r"^msg bob@example\.com/phone first$")
                bob.send("msg alice@example.com/base marker1")
                low.wait_line(r"^msg bob@example\.com/phone marker1$")
                check("first" not in low.output(), low.output())

                # Equal priorities: both.
                low.send("presence 5")
                wait_for(lambda: sessions(leader, "alice").get("base", (0, 0, 0))[2] == 5,
                         60, "low's new priority on %s" % leader.name)
                bob.send("msg alice@example.com second")
                high.wait_line(r"^msg bob@example\.com/phone second$")
                low.wait_line(r"^msg bob@example\.com/phone second$")

                # A new session of bob probes alice: both nodes answer.
                with Client("bob@example.com/desk", PASSWORDS["bob"], leader.addr,
                            CLIENT_PORT, ca) as desk:
                    check(desk.online() == "bob@example.com/desk", desk.output())
                    desk.wait_line(r"^presence alice@example\.com/top available$")
                    desk.wait_line(r"^presence alice@example\.com/base available$")
                    check(desk.quit() == 0, desk.output())
                check(bob.quit() == 0, bob.output())
            check(high.quit() == 0, high.output())
            check(low.quit() == 0, low.output())
        wait_for(lambda: sessions(leader, "alice") == {}, 60, "alice's sessions gone")


if __name__ == "__main__":
    run(main, timeout=400)
