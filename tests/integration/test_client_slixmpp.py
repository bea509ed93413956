#!/usr/bin/env python3
"""test_client_slixmpp: a second client library (slixmpp, Debian's
python3-slixmpp) against a 3-node cluster ("tried as a new user
would with two common XMPP client libraries").  libstrophe drives the other
client tests; slixmpp behaves like a modern desktop client at login
(tools/slixpair.py): STARTTLS verified for the domain against the
cluster's CA, SCRAM, bind, roster, presence with caps, and the requests
such a client sends whether or not the server has the feature (disco of
the server and of its own account, ping, version, carbons, blocking,
vCard).

Checked: both users log in with a SCRAM mechanism on two different
followers; every request is answered (a result or a stanza error, never
silence: a client waits for each); the server's disco#info, ping and the
roster are results; numbered chat messages to the other's bare JID arrive
once each, in order, in both directions."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402

DEBIAN_PY = "/usr/bin/python3"
COUNT = 50


def have_slixmpp():
    try:
        return subprocess.run([DEBIAN_PY, "-c", "import slixmpp"],
                              capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


def main():
    if not have_slixmpp():
        why = "%s cannot import slixmpp (scripts/setup installs python3-slixmpp)" % DEBIAN_PY
        if os.environ.get("CI") == "true":
            raise AssertionError(why)
        print("skipped test_client_slixmpp.py: " + why)
        return
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "slixpair.py")
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        for nd in c.nodes:
            c.wait_serving(nd)
        f1.ok("xmpp user add alice", stdin="alice-slix-pw\n")
        leader.ok("xmpp user add bob", stdin="bob slix pw\n")
        ca = os.path.join(c.ca, "ca-bundle.pem")
        p = subprocess.run([DEBIAN_PY, tool, ca, "alice@%s/slix" % c.domain, "alice-slix-pw",
                            f1.addr, "bob@%s" % c.domain, "bob slix pw", f2.addr,
                            str(COUNT)], capture_output=True, text=True, timeout=240)
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("slixpair printed no result (exit %d): %s\n%s"
                                 % (p.returncode, p.stdout, p.stderr[-3000:]))
        c.say("slixpair: %s", json.dumps(out)[:1500])
        for who, node in (("a", f1), ("b", f2)):
            o = out[who]
            check(o.get("login") == "ok", "%s did not log in on %s: %r" % (who, node.name, o))
            check((o.get("mechanism") or "").startswith("SCRAM-"),
                  "%s: mechanism %r" % (who, o.get("mechanism")))
            req = o["requests"]
            silent = [k for k, v in req.items() if v == "timeout"]
            check(not silent, "%s: no answer to %s" % (who, silent))
            for k in ("roster", "disco#info server", "ping server", "disco#items server",
                      "disco#info own account"):
                check(req.get(k) == "result", "%s: %s answered %r" % (who, k, req.get(k)))
            check(o["received"] == list(range(1, COUNT + 1)),
                  "%s received %r" % (who, o["received"]))
        check(out.get("ok") is True and p.returncode == 0, "slixpair: %r" % out)
        c.say("slixmpp clients on %s and %s: logged in, every request answered, %d "
              "messages each way in order", f1.name, f2.name, COUNT)


run(main, timeout=400)
