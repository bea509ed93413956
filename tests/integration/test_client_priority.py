#!/usr/bin/env python3
"""test_client_priority: messages to a bare JID follow the priorities of
the account's resources on different nodes (RFC 6121 §4.7.2.3,
§8.5.2.1.1; the independent tester's client suite, session 7), with real
libstrophe clients (tools/xclient.c) on a 3-node cluster:

 - bob/x (priority 5) and bob/y (priority -1) on two followers, alice on
   the leader: alice's message to bob@example.com reaches bob/x only (a
   negative priority never gets bare-JID messages);
 - bob/x goes to -5: no resource of non-negative priority is left, the
   message is answered service-unavailable (§8.5.2.2.1: no offline
   storage here) and reaches no one;
 - bob/y goes to 3: bob/y only.
Each step first waits until every node's `xmpp user list --json` shows
the new priorities (the routing table is replicated through the leader),
and "reaches no one" is read through a marker message sent to both full
JIDs after it: stanzas between two sessions arrive in order."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Clients, users_cluster  # noqa: E402
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

PASSWORDS = {"alice": "alice-pw-6d02", "bob": "bob-pw-e4c9"}


def priorities(nd):
    for u in nd.json("xmpp user list")["users"]:
        if u["name"] == "bob":
            return {s["resource"]: s.get("priority") for s in u.get("sessions", [])
                    if s.get("available")}
    return {}


def wait_priorities(c, want):
    wait_for(lambda: all(priorities(nd) == want for nd in c.nodes), 60,
             "bob's priorities %s on every node" % want)


def main():
    with Cluster(3) as c:
        leader, f1, f2, ca = users_cluster(c, PASSWORDS)
        with Clients(PASSWORDS, ca) as cs:
            x = cs.open("bob@example.com/x", f1)
            y = cs.open("bob@example.com/y", f2)
            alice = cs.open("alice@example.com/a", leader)
            x.send("presence 5")
            y.send("presence -1")
            wait_priorities(c, {"x": 5, "y": -1})

            n = [0]

            def send_bare(to_x, to_y):
                n[0] += 1
                body = "bare%d" % n[0]
                alice.send("msg bob@example.com %s" % body)
                marker = "marker%d" % n[0]
                alice.send("msg bob@example.com/x %s" % marker)
                alice.send("msg bob@example.com/y %s" % marker)
                for cl, want in ((x, to_x), (y, to_y)):
                    cl.wait_line(r"^msg alice@example\.com/a %s$" % marker)
                    got = cl.output().splitlines().count("msg alice@example.com/a " + body)
                    check(got == (1 if want else 0), "%s got %r %d times:\n%s"
                          % (cl.jid, body, got, cl.output()))

            send_bare(True, False)
            c.say("priority 5 / -1: bob/x only")

            x.send("presence -5")
            wait_priorities(c, {"x": -5, "y": -1})
            errors = alice.output().count("error service-unavailable")
            send_bare(False, False)
            wait_for(lambda: alice.output().count("error service-unavailable") > errors,
                     30, "alice: service-unavailable for the bare JID")
            c.say("priority -5 / -1: service-unavailable, no one")

            y.send("presence 3")
            wait_priorities(c, {"x": -5, "y": 3})
            send_bare(False, True)
            c.say("priority -5 / 3: bob/y only")
            for cl in (x, y, alice):
                check(cl.quit() == 0, cl.output())


run(main)
