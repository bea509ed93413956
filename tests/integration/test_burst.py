#!/usr/bin/env python3
"""10,000 messages sent in one burst from one component to another arrive
complete and in order (stanzas between two sessions keep
their order)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Comp, Node, check, run  # noqa: E402

N = 10000
CBS = {"cb1": "burst-1", "cb2": "burst-2"}


def main():
    with Node(callbridges=CBS, log_level="info") as node:
        node.start()
        with Comp(node, "cb2", CBS["cb2"], "--expect", str(N), "--quiet") as rx:
            rx.wait_line("^connected")
            with Comp(node, "cb1", CBS["cb1"], "--to", "cb2.example.com",
                      "--send", str(N), "--quiet") as tx:
                rc = tx.finish(60)
                check(rc == 0, "sender exited %d:\n%s" % (rc, tx.output()))
                check("sent messages=%d" % N in tx.output(), tx.output())
                check("message-error" not in tx.output(), tx.output())
            rc = rx.finish(60)
            check(rc == 0, "receiver exited %d:\n%s" % (rc, rx.output()))
            check("received messages=%d in_order=yes" % N in rx.output(),
                  rx.output())
        check(node.stop() == 0, "xmppd did not exit 0")


run(main)
