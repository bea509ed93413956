#!/usr/bin/env python3
"""A wrong secret and an unknown call-bridge name are refused with
<not-authorized/> (XEP-0114 §3, RFC 6120 §4.9.3.12); the server logs the
failure with the peer address and never the secret."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Comp, Node, check, run  # noqa: E402

GOOD = "the-Real-Secret-4711"
BAD = "a-Wrong-Guess-0815"


def main():
    with Node(callbridges={"cb1": GOOD}) as node:
        node.start()
        for name in ("cb1", "cb7"):
            with Comp(node, name, BAD) as c:
                rc = c.finish(60)
                out = c.output()
                check(rc == 1, "%s: expected exit 1 (refused), got %d:\n%s"
                      % (name, rc, out))
                check("stream-error condition=not-authorized" in out, out)
                check("connected" not in out.replace("disconnected", ""), out)
        # The right secret still works after the failures.
        with Comp(node, "cb1", GOOD) as c:
            check(c.finish(60) == 0, c.output())
        check(node.stop() == 0, "xmppd did not exit 0")
        log = node.log()
        fails = [ln for ln in log.splitlines()
                 if "cb1" in ln and ("fail" in ln or "not-authorized" in ln)]
        check(fails, "no log line for the failed handshake:\n" + log)
        check(any("127.0.0.1:" in ln for ln in fails),
              "the failure is not logged with the peer address:\n" + log)
        check(any("cb7" in ln for ln in log.splitlines()),
              "the unknown name is not logged:\n" + log)
        check(GOOD not in log and BAD not in log, "a secret reached the log:\n" + log)


run(main)
