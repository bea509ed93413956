#!/usr/bin/env python3
"""SIGTERM: every stream is closed with </stream:stream> (after a
system-shutdown stream error, RFC 6120 §4.4), the writes flush and xmppd
exits 0; SIGINT does the same."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Comp, Node, check, run  # noqa: E402

CBS = {"cb1": "term-1", "cb2": "term-2"}


def one(sig):
    with Node(callbridges=CBS) as node:
        node.start()
        with Comp(node, "cb1", CBS["cb1"], "--stay") as a, \
                Comp(node, "cb2", CBS["cb2"], "--stay") as b:
            a.wait_line("^connected")
            b.wait_line("^connected")
            node.signal(sig)
            rc = node.wait_exit(60)
            check(rc == 0, "xmppd exited %d after signal %d:\n%s" % (rc, sig, node.log()))
            for c in (a, b):
                crc = c.finish(60)
                out = c.output()
                check("stream-end" in out, "%s did not see </stream:stream>:\n%s"
                      % (c.jid, out))
                check("stream-error condition=system-shutdown" in out, out)
                check(crc == 0, "%s exited %d:\n%s" % (c.jid, crc, out))
        log = node.log()
        check("Sanitizer" not in log, log)
        check(" stopped" in log, "no clean stop in the log:\n" + log)


def main():
    one(signal.SIGTERM)
    one(signal.SIGINT)


run(main)
