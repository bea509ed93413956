#!/usr/bin/env python3
"""Two libstrophe components on one xmppd exchange message, iq and presence
in both directions."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Comp, Node, check, run  # noqa: E402

CBS = {"cb1": "s3cret-one", "cb2": "s3cret-two"}


def main():
    with Node(callbridges=CBS) as node:
        node.start()
        common = ["--send", "3", "--iq", "--presence", "--answer", "--expect", "3",
                  "--expect-presence", "1"]
        with Comp(node, "cb1", CBS["cb1"], "--to", "cb2.example.com",
                  "--go-on-stdin", *common) as a:
            a.wait_line("^connected")
            with Comp(node, "cb2", CBS["cb2"], "--to", "cb1.example.com",
                      "--go-on-stdin", *common) as b:
                b.wait_line("^connected")
                a.go()
                b.go()
                for me, peer in ((a, b), (b, a)):
                    rc = me.finish(60)
                    out = me.output()
                    check(rc == 0, "%s exited %d:\n%s" % (me.jid, rc, out))
                    for i in (1, 2, 3):
                        check("message from=%s seq=%d body=hello #%d from %s"
                              % (peer.jid, i, i, peer.jid) in out,
                              "%s lacks message %d:\n%s" % (me.jid, i, out))
                    check("received messages=3 in_order=yes" in out, out)
                    check("iq type=result from=%s" % peer.jid in out, out)
                    check("iq-request type=get from=%s" % peer.jid in out, out)
                    check("presence from=%s type=available" % peer.jid in out, out)
        check(node.stop() == 0, "xmppd did not exit 0")


run(main)
