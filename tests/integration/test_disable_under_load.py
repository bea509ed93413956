#!/usr/bin/env python3
"""test_disable_under_load: `xmpp disable` on the node that holds a call
bridge while another node's bridge sends to it without pause.  Stanzas the
sender's node handed over in the last milliseconds reach a node that no
longer serves XMPP: it refuses each one (an ACK that says refused), so the
sender's node answers its sender and keeps nothing in flight.  Before, such
a node dropped them without a word and the sender's node waited for their
outcome until the disabled node restarted (one owner, one
outcome; every queue drains).  The window is a few milliseconds: without
the refusal this test failed about one run in two."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

N = 4000


def in_flight(nd):
    """Stanzas nd's forwarding holds now (waiting or handed over)."""
    st = nd.status_json()
    return st["forwarding"]["queued"]


def main():
    with Cluster(3) as c:
        leader = c.form()
        a_node, b_node = c.followers(leader)
        c.add_callbridge("src")
        c.add_callbridge("dst")
        b = c.comp(b_node, "dst", "--stay", "--quiet", timeout=90)
        a = c.comp(a_node, "src", "--go-on-stdin", "--to", "dst." + DOMAIN, "--send",
                   str(N), "--interval-ms", "1", "--quiet", timeout=90)
        a.wait_line("^connected")
        b.wait_line("^connected")
        c.wait_components(["src", "dst"])
        a.go()
        time.sleep(1.5)
        b_node.ok("xmpp disable")
        c.say("%s stopped serving XMPP under load", b_node.name)
        a.finish(60)
        try:
            wait_for(lambda: in_flight(a_node) == 0, 60, "in flight")
        except AssertionError:
            check(False, "%s keeps nothing in flight after %s stopped serving: %s" % (
                a_node.name, b_node.name,
                json.dumps(a_node.status_json().get("forwarding"))))
        fw = a_node.status_json()["forwarding"]
        c.say("%s: forwarding %s", a_node.name, json.dumps(fw))
        check(fw["lost"] == 0, "nothing handed over was lost: %s" % json.dumps(fw))


run(main, timeout=180)
