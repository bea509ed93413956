#!/usr/bin/env python3
"""Clients log in on a 3-node cluster:
real xmppd processes, real TLS from certs/, real libstrophe clients
(tools/xclient.c through clients.py).

 - two accounts are added with `xmpp user add` (the password on stdin) on
   different nodes and reach every node through the Raft log;
 - alice logs in on one follower through libstrophe's own login
   (xmpp_connect_client, STARTTLS with the certificate verified against the
   cluster's CA, SCRAM-SHA-256: the strongest mechanism offered), bob on
   the other follower with SCRAM-SHA-1 asked for explicitly;
 - they exchange messages by full and by bare JID, across the two
   followers (forwarded through the leader), and ping each other;
 - the client listener's port and settings show in `xmpp status`;
 - a wrong password is refused (not-authorized), with either mechanism;
 - an account added on one node logs in on every node (alice on the
   leader too, a second session of hers);
 - a login that verifies the certificate against a name it does not carry
   fails in TLS (the tests really verify), and so does one whose CA is not
   the cluster's;
 - `xmpp client tls-port` opens a direct-TLS port (XEP-0368) where a
   client logs in without STARTTLS;
 - `xmpp user del` on the leader logs the user out on every node.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, make_ca, wait_for, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

CLIENT_PORT = 5222
DIRECT_TLS_PORT = 5233
PASSWORDS = {"alice": "alice-pw-7f3a", "bob": "bob pw, with = signs", "carol": "c4rol"}


def add_user(node, name):
    """`xmpp user add <name>` with the password on stdin (not a tty)."""
    node.ok("xmpp user add %s" % name, stdin=PASSWORDS[name] + "\n")


def main():
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
            st = nd.json("xmpp status")
            clients = st.get("clients", {})
            check(clients.get("port") == CLIENT_PORT and clients.get("listening") is True
                  and clients.get("tls") == "required"
                  and clients.get("sasl_plain") is False,
                  "%s: xmpp status clients: %r" % (nd.name, st))

        # Accounts through the log, added on different nodes.
        add_user(f1, "alice")
        add_user(leader, "bob")
        add_user(f2, "carol")
        for nd in c.nodes:
            wait_for(lambda nd=nd: all(u in nd.ok("xmpp user list") for u in PASSWORDS),
                     60, "%s: both accounts in xmpp user list" % nd.name)

        with Client("alice@example.com/laptop", PASSWORDS["alice"], f1.addr, CLIENT_PORT,
                    ca) as alice, \
                Client("bob@example.com/phone", PASSWORDS["bob"], f2.addr, CLIENT_PORT,
                       ca, mech="SCRAM-SHA-1") as bob:
            check(alice.online() == "alice@example.com/laptop", alice.output())
            check(bob.online() == "bob@example.com/phone", bob.output())
            c.say("alice on %s (SCRAM-SHA-256), bob on %s (SCRAM-SHA-1)", f1.name,
                  f2.name)
            # Each follower knows the other's session before a full JID is
            # used (a login reaches the other nodes through the leader).
            wait_sessions(c.nodes, {"alice": 1, "bob": 1})

            # Full JID, then bare JID (RFC 6121 §8.5), both directions.
            alice.send("msg bob@example.com/phone one to the full jid")
            bob.wait_line(r"^msg alice@example.com/laptop one to the full jid$")
            bob.send("msg alice@example.com two to the bare jid")
            alice.wait_line(r"^msg bob@example.com/phone two to the bare jid$")
            bob.send("msg alice@example.com/laptop three back to the full jid")
            alice.wait_line(r"^msg bob@example.com/phone three back to the full jid$")
            alice.send("msg bob@example.com four back to the bare jid")
            bob.wait_line(r"^msg alice@example.com/laptop four back to the bare jid$")

            # An iq round trip between them (XEP-0199; xclient answers pings).
            alice.send("iq-ping bob@example.com/phone")
            bob.wait_line(r"^iq alice@example.com/laptop get ping\d+$")
            alice.wait_line(r"^iq bob@example.com/phone result ping\d+$")

            # An account added on one node logs in on every node: alice
            # again, on the leader, with SCRAM-SHA-1 this time.
            with Client("alice@example.com/desk", PASSWORDS["alice"], leader.addr,
                        CLIENT_PORT, ca, mech="SCRAM-SHA-1") as alice2:
                check(alice2.online() == "alice@example.com/desk", alice2.output())
                wait_sessions([f2], {"alice": 2})
                bob.send("msg alice@example.com/desk five to the second session")
                alice2.wait_line(r"^msg bob@example.com/phone five to the second session$")
                check(alice2.quit() == 0, alice2.output())

            # A wrong password: refused, with either mechanism, on any node.
            for node, mech in ((f2, None), (leader, "SCRAM-SHA-1"),
                               (f1, "SCRAM-SHA-256")):
                with Client("alice@example.com/x", "not-her-password", node.addr,
                            CLIENT_PORT, ca, mech=mech) as bad:
                    bad.wait_line(r"^error not-authorized$")
                    bad.wait_line(r"^disconnected auth-failed$")
                    check("online" not in bad.output(), bad.output())
                    check(bad.finish() == 1, bad.output())
            # An unknown user is refused the same way.
            with Client("mallory@example.com/x", "whatever", f1.addr, CLIENT_PORT, ca,
                        mech="SCRAM-SHA-256") as bad:
                bad.wait_line(r"^error not-authorized$")
                bad.wait_line(r"^disconnected auth-failed$")

            # TLS is verified: another name, another CA.
            with Client("alice@example.com/x", PASSWORDS["alice"], f1.addr, CLIENT_PORT,
                        ca, tls_name="wrong.example.net") as bad:
                bad.wait_line(r"^disconnected tls-failed$")
                check("online" not in bad.output(), bad.output())
            other = os.path.join(c.base, "other-ca")
            make_ca(other, "Not The Cluster CA")
            with Client("alice@example.com/x", PASSWORDS["alice"], f2.addr, CLIENT_PORT,
                        os.path.join(other, "ca.crt")) as bad:
                bad.wait_line(r"^disconnected tls-failed$")
                check("online" not in bad.output(), bad.output())
            shutil.rmtree(other, ignore_errors=True)

            # Direct TLS (XEP-0368) on a port of its own, set on one node.
            f1.ok("xmpp client tls-port %d" % DIRECT_TLS_PORT)
            wait_for(lambda: f1.json("xmpp status").get("clients", {}).get("tls_port")
                     == DIRECT_TLS_PORT and f1.json("xmpp status")["clients"]["listening"],
                     60, "%s: the direct-TLS client port in xmpp status" % f1.name)
            # Setting it restarted f1's XMPP side: alice logs in again there.
            alice.wait_line(r"^disconnected ")
            alice.close()
            with Client("alice@example.com/direct", PASSWORDS["alice"], f1.addr,
                        DIRECT_TLS_PORT, ca, direct_tls=True) as direct:
                check(direct.online() == "alice@example.com/direct", direct.output())
                check(direct.quit() == 0, direct.output())
            with Client("alice@example.com/laptop", PASSWORDS["alice"], f1.addr,
                        CLIENT_PORT, ca) as alice:
                check(alice.online() == "alice@example.com/laptop", alice.output())
                # The first two are still there and still talk.
                alice.send("msg bob@example.com/phone six after the refusals")
                bob.wait_line(r"^msg alice@example.com/laptop six after the refusals$")
                check(alice.quit() == 0, alice.output())
                check(bob.quit() == 0, bob.output())

        # xmpp user del logs the user out everywhere: carol on both
        # followers, the deletion on the leader.
        with Client("carol@example.com/one", PASSWORDS["carol"], f1.addr, CLIENT_PORT,
                    ca) as one, \
                Client("carol@example.com/two", PASSWORDS["carol"], f2.addr, CLIENT_PORT,
                       ca, mech="SCRAM-SHA-1") as two:
            check(one.online() == "carol@example.com/one", one.output())
            check(two.online() == "carol@example.com/two", two.output())
            leader.ok("xmpp user del carol")
            for cl in (one, two):
                cl.wait_line(r"^disconnected ")
                check(cl.finish() == 1, cl.output())
            with Client("carol@example.com/three", PASSWORDS["carol"], f1.addr,
                        CLIENT_PORT, ca) as three:
                three.wait_line(r"^error not-authorized$")
                three.wait_line(r"^disconnected auth-failed$")


if __name__ == "__main__":
    run(main, timeout=300)
