#!/usr/bin/env python3
"""test_client_reset_rejoin: a member reset and joined again while
clients are logged in (the independent tester's fault suite, session 7):

 - alice/laptop on a follower (the victim) and alice/phone on the other
   follower, bob/desk on the leader; every node counts alice's 2 sessions;
 - the victim is reset (`xmpp reset --yes --force`: a new node id, no
   state), configured and joined again with `--replace`;
 - then every node lists each member once (`xmpp cluster status`) and
   alice's sessions without a duplicate: each full JID once, none held by
   the victim's old id, and as many as there are clients still logged in;
 - alice logs in again on the victim: every node counts her sessions
   once more, and a message from bob to that full JID arrives exactly
   once (read through a marker message sent after it: stanzas between
   two sessions arrive in order)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, online_counts, wait_for, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
PASSWORDS = {"alice": "alice-pw-51e9", "bob": "bob-pw-0c4d"}


def sessions(nd, user):
    """The full JIDs and node ids of user's sessions in nd's `xmpp user
    list --json`."""
    for u in nd.json("xmpp user list")["users"]:
        if u["name"] == user:
            return [(s["jid"], s.get("node_id")) for s in u.get("sessions", [])]
    return []


def main():
    with Cluster(3) as c:
        leader = c.form()
        victim, other = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
        for user, pw in PASSWORDS.items():
            leader.ok("xmpp user add %s" % user, stdin=pw + "\n")
        for nd in c.nodes:
            wait_for(lambda nd=nd: all(u in nd.ok("xmpp user list") for u in PASSWORDS),
                     30, "%s: both accounts in xmpp user list" % nd.name)
        old_id = victim.node_id()

        laptop = Client("alice@example.com/laptop", PASSWORDS["alice"], victim.addr,
                        CLIENT_PORT, ca)
        phone = Client("alice@example.com/phone", PASSWORDS["alice"], other.addr,
                       CLIENT_PORT, ca)
        desk = Client("bob@example.com/desk", PASSWORDS["bob"], leader.addr, CLIENT_PORT,
                      ca)
        clients = [laptop, phone, desk]
        try:
            for cl in clients:
                check(cl.online() == cl.jid, cl.output())
            wait_sessions(c.nodes, {"alice": 2, "bob": 1})
            c.say("alice on %s and %s, bob on %s", victim.name, other.name, leader.name)

            victim.ok("xmpp reset --yes --force")
            victim.configure()
            c.join(victim, replace=True, via=other)
            new_id = victim.node_id()
            check(new_id != old_id, "reset kept the node id %s" % old_id)
            c.wait_converged(timeout=90)
            c.say("%s reset (%s -> %s) and joined again", victim.name, old_id, new_id)

            def laptop_alive():
                return laptop.proc.poll() is None and "disconnected" not in laptop.output()

            # Each member once, and alice's sessions without a duplicate.
            def clean():
                for nd in c.nodes:
                    s = sessions(nd, "alice")
                    jids = [j for j, _ in s]
                    if len(set(jids)) != len(jids):
                        raise AssertionError("%s lists a session twice: %s" % (nd.name, s))
                    if any(same(n, old_id) for _, n in s):
                        return False
                    want = 2 if laptop_alive() else 1
                    if len(s) != want:
                        return False
                return True
            wait_for(clean, 60, "alice's sessions without the victim's old id")
            c.say("after the rejoin: %s (laptop %s)",
                  {nd.name: sessions(nd, "alice") for nd in c.nodes},
                  "still logged in" if laptop_alive() else "logged out")

            # alice logs in again on the victim.
            laptop.quit()
            again = Client("alice@example.com/laptop", PASSWORDS["alice"], victim.addr,
                           CLIENT_PORT, ca)
            clients.append(again)
            check(again.online() == again.jid, again.output())
            wait_sessions(c.nodes, {"alice": 2, "bob": 1})
            for nd in c.nodes:
                s = sessions(nd, "alice")
                check(sorted(j for j, _ in s) == ["alice@example.com/laptop",
                                                  "alice@example.com/phone"],
                      "%s: %s" % (nd.name, s))
            desk.send("msg alice@example.com/laptop once")
            desk.send("msg alice@example.com/laptop marker")
            again.wait_line(r"^msg bob@example\.com/desk marker$")
            got = [ln for ln in again.output().splitlines()
                   if ln == "msg bob@example.com/desk once"]
            check(len(got) == 1, "the message arrived %d times:\n%s"
                  % (len(got), again.output()))
            check(online_counts(leader).get("alice") == 2, online_counts(leader))
            for cl in (again, phone, desk):
                check(cl.quit() == 0, cl.output())
        finally:
            for cl in clients:
                cl.close()


def same(a, b):
    """Node ids as printed (maybe shortened) against the full one."""
    return a is not None and b is not None and (a.startswith(b) or b.startswith(a))


run(main)
