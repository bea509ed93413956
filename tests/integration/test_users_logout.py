#!/usr/bin/env python3
"""test_users_logout: accounts made with mmp-cli log in, and go, on a
3-node cluster ("`xmpp user del` logs the user out everywhere").

- `xmpp user add` on a follower, `xmpp user passwd` on the leader: the old
  password is refused, the new one logs in (libstrophe, STARTTLS, SCRAM) on
  every node, one session per node.
- `xmpp user del` on the other follower: every session, on every node, ends
  with <not-authorized/>; a new login fails.

Needs the client listener and the test client (tests/integration/clients.py,
tools/xclient.c: branch c2s-io); without them it prints "skipped" and
passes."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run, tool  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.exists(os.path.join(HERE, "clients.py")) or \
        not os.path.exists(tool("xclient")):
    print("skipped: needs tests/integration/clients.py and tools/xclient")
    sys.exit(0)
from clients import Client  # noqa: E402


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
        f1.ok("xmpp user add dora", stdin="first-pw-1\n")
        c.wait_replicated("xmpp user list", lambda o: "dora" in o, nodes=c.nodes)
        leader.ok("xmpp user passwd dora", stdin="second-pw-2\n")
        # The user list looks the same before and after a password change:
        # a write made after it, once on every node, says it is applied
        # there too (one log, applied in order).
        c.add_callbridge("passwd-applied", on=leader)
        old = Client("dora@example.com/a", "first-pw-1", f2.addr, 5222, ca)
        line = old.wait_line(r"^(online|disconnected|error) ", 60)
        check(not line.startswith("online"), "the old password logged in: %s" % line)
        old.close()
        clients = []
        for i, nd in enumerate(c.nodes):
            cl = Client("dora@example.com/r%d" % i, "second-pw-2", nd.addr, 5222, ca)
            cl.online()
            clients.append(cl)
        c.say("dora online on every node with the new password")
        f2.ok("xmpp user del dora")
        for cl in clients:
            line = cl.wait_line(r"^(disconnected|error) ", 60)
            check("not-authorized" in line, "%s: %s" % (cl.jid, line))
        for cl in clients:
            cl.close()
        again = Client("dora@example.com/z", "second-pw-2", f1.addr, 5222, ca)
        line = again.wait_line(r"^(online|disconnected|error) ", 60)
        check(not line.startswith("online"), "a deleted account logged in: %s" % line)
        again.close()
        c.say("deleted: every session closed, no login")


run(main, timeout=200)
