#!/usr/bin/env python3
"""Presence and subscriptions across a 3-node cluster
(RFC 6121 §3 and §4): real xmppd processes, real libstrophe clients.

 - alice logs in on one follower, bob on the other;
 - alice subscribes to bob, bob approves: bob's presence reaches alice
   (RFC 6121 §3.1.5), the roster writes go through the Raft log from the
   followers (forwarded to the leader);
 - bob subscribes to alice, alice approves: both now have "both" and see
   each other's presence updates (§4.4.2);
 - alice logs out: bob gets her unavailable presence (§4.5.2);
 - the rosters are replicated: a new login of alice on the leader gets bob's
   presence through the probe it sends at login (§4.3), answered from
   bob's node;
 - with bob offline, the probe of alice's next login (on the other
   follower) is answered with bob's last unavailable presence, from the
   resource that left, with a XEP-0203 delay stamp (§4.3.2: kept
   cluster-wide through the log);
 - directed presence (§4.6): alice sends presence to carol (no
   subscription, on the leader); when alice's connection is lost, carol
   gets alice's unavailable; a directed unavailable is not repeated.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, wait_for, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
PASSWORDS = {"alice": "alice-pw-7f3a", "bob": "bob-pw-91c2", "carol": "carol-pw-5e0d"}


def main():
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
        f1.ok("xmpp user add alice", stdin=PASSWORDS["alice"] + "\n")
        f2.ok("xmpp user add bob", stdin=PASSWORDS["bob"] + "\n")
        leader.ok("xmpp user add carol", stdin=PASSWORDS["carol"] + "\n")
        for nd in c.nodes:
            wait_for(lambda nd=nd: all(u in nd.ok("xmpp user list") for u in PASSWORDS),
                     60, "%s: both accounts in xmpp user list" % nd.name)

        with Client("alice@example.com/laptop", PASSWORDS["alice"], f1.addr, CLIENT_PORT,
                    ca) as alice, \
                Client("bob@example.com/phone", PASSWORDS["bob"], f2.addr, CLIENT_PORT,
                       ca) as bob:
            check(alice.online() == "alice@example.com/laptop", alice.output())
            check(bob.online() == "bob@example.com/phone", bob.output())
            c.say("alice on %s, bob on %s", f1.name, f2.name)
            # Each node knows both sessions (a login reaches the other nodes
            # through the leader) before stanzas are routed to them.
            wait_sessions(c.nodes, {"alice": 1, "bob": 1})

            # §3.1: alice asks, bob gets the request, approves; alice gets
            # the approval and bob's presence.
            alice.send("sub bob@example.com")
            bob.wait_line(r"^presence alice@example\.com subscribe$")
            bob.send("subscribed alice@example.com")
            alice.wait_line(r"^presence bob@example\.com subscribed$")
            alice.wait_line(r"^presence bob@example\.com/phone available$")

            # The other way: both now have "both".
            bob.send("sub alice@example.com")
            alice.wait_line(r"^presence bob@example\.com subscribe$")
            alice.send("subscribed bob@example.com")
            bob.wait_line(r"^presence alice@example\.com subscribed$")
            bob.wait_line(r"^presence alice@example\.com/laptop available$")

            # §4.4.2: an update reaches the contact on the other node.
            alice.send("presence 5")
            bob.wait_line(r"^presence alice@example\.com/laptop available$")
            bob.send("presence 3")
            alice.wait_line(r"^presence bob@example\.com/phone available$")

            # §4.3: a new session of alice on the leader probes bob at
            # login and gets his presence; §4.5.2 unavailable on logout.
            with Client("alice@example.com/desk", PASSWORDS["alice"], leader.addr,
                        CLIENT_PORT, ca) as desk:
                check(desk.online() == "alice@example.com/desk", desk.output())
                desk.wait_line(r"^presence bob@example\.com/phone available$")
                check(desk.quit() == 0, desk.output())
            bob.wait_line(r"^presence alice@example\.com/desk unavailable$")
            check(alice.quit() == 0, alice.output())
            bob.wait_line(r"^presence alice@example\.com/laptop unavailable$")
            check(bob.quit() == 0, bob.output())

        # §4.3.2: bob is offline on every node: alice's probe at login is
        # answered with bob's last unavailable presence (he left on f2, the
        # answer comes from f1), stamped.  (bob's logout reaches f1's copy
        # of the routing table through the leader: wait for it, or the
        # probe may go to bob's ended session.)
        wait_sessions([f1], {"alice": 0, "bob": 0})
        with Client("alice@example.com/tablet", PASSWORDS["alice"], f1.addr, CLIENT_PORT,
                    ca) as tablet:
            check(tablet.online() == "alice@example.com/tablet", tablet.output())
            tablet.wait_line(r"^presence bob@example\.com/phone unavailable delay "
                             r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            check(tablet.quit() == 0, tablet.output())

        # §4.6: directed presence across nodes, then a lost connection.
        with Client("carol@example.com/web", PASSWORDS["carol"], leader.addr, CLIENT_PORT,
                    ca) as carol:
            check(carol.online() == "carol@example.com/web", carol.output())
            alice = Client("alice@example.com/laptop", PASSWORDS["alice"], f1.addr,
                           CLIENT_PORT, ca)
            with alice:
                check(alice.online() == "alice@example.com/laptop", alice.output())
                alice.send("directed carol@example.com/web")
                carol.wait_line(r"^presence alice@example\.com/laptop available$")
                alice.close()  # SIGKILL: the connection is lost, not closed
            carol.wait_line(r"^presence alice@example\.com/laptop unavailable$", timeout=60)
            # directed unavailable first: nothing more when the session ends
            with Client("alice@example.com/watch", PASSWORDS["alice"], f2.addr,
                        CLIENT_PORT, ca) as watch:
                check(watch.online() == "alice@example.com/watch", watch.output())
                watch.send("directed carol@example.com/web")
                carol.wait_line(r"^presence alice@example\.com/watch available$")
                watch.send("directed carol@example.com/web unavailable")
                carol.wait_line(r"^presence alice@example\.com/watch unavailable$")
                check(watch.quit() == 0, watch.output())
            carol.send("msg carol@example.com/web end-marker")
            carol.wait_line(r"^msg carol@example\.com/web end-marker$")
            unav = [ln for ln in carol.output().splitlines()
                    if ln == "presence alice@example.com/watch unavailable"]
            check(len(unav) == 1, "watch's unavailable %d times:\n%s"
                  % (len(unav), carol.output()))
            check(carol.quit() == 0, carol.output())


if __name__ == "__main__":
    run(main, timeout=300)
