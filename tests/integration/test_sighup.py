#!/usr/bin/env python3
"""SIGHUP re-reads xmppd.conf: the file bootstraps the replicated state
only while it is empty, so on a node that has call bridges a reload adds,
removes and re-keys none of them and says so at warn; a malformed file is
logged while the old configuration stays in force."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import DOMAIN, Comp, Node, check, conf_text, run  # noqa: E402


def main():
    with Node(callbridges={"cb1": "hup-1", "cb9": "hup-9"}) as node:
        node.start()
        with Comp(node, "cb2", "hup-2") as c:
            check(c.finish(60) == 1, "cb2 accepted before it exists:\n" + c.output())
        # Once the replicated state exists, the file no longer changes it:
        # a bridge it drops stays, one it adds is not added, and the warn
        # line says so (docs/admin.md).
        with Comp(node, "cb9", "hup-9", "--stay") as old:
            old.wait_line("^connected")
            node.callbridges = {"cb1": "hup-1", "cb2": "hup-2"}
            line = node.reload(r"warn.*not imported")
            check("call bridge cb2 not added" in line and
                  "call bridge cb9 not removed" in line, line)
        with Comp(node, "cb9", "hup-9") as c:
            check(c.finish(60) == 0, "cb9 lost by a reload:\n" + c.output())
        with Comp(node, "cb2", "hup-2") as c:
            check(c.finish(60) == 1, "cb2 added by a reload:\n" + c.output())

        # Nor does it replace a secret.
        with Comp(node, "cb1", "hup-1", "--stay") as c1:
            c1.wait_line("^connected")
            node.callbridges = {"cb1": "hup-1b", "cb9": "hup-9"}
            line = node.reload(r"warn.*cb1 secret not changed")
            check("cb9" not in line, line)
        with Comp(node, "cb1", "hup-1") as c:
            check(c.finish(60) == 0, "cb1 secret changed by a reload:\n" + c.output())
        with Comp(node, "cb1", "hup-1b") as c:
            check(c.finish(60) == 1, "file's cb1 secret accepted:\n" + c.output())

        # A malformed file on reload: logged, old configuration kept.
        line = node.reload(r"reload failed",
                           conf_text(DOMAIN, node.port, {"cb3": "hup-3"},
                                     extra="bogus directive\n"))
        check("xmppd.conf:5: unknown directive 'bogus'" in line, line)
        with Comp(node, "cb9", "hup-9") as c:
            check(c.finish(60) == 0, "cb9 lost by a failed reload:\n" + c.output())
        with Comp(node, "cb3", "hup-3") as c:
            check(c.finish(60) == 1, "cb3 from a bad file accepted:\n" + c.output())
        # A world-readable file on reload is refused the same way.
        node.callbridges = {"cb1": "hup-1", "cb2": "hup-2", "cb4": "hup-4"}
        node.reload(r"reload failed.*chmod 600", mode=0o644)
        check(node.stop() == 0, "xmppd did not exit 0")
        log = node.log()
        for s in ("hup-1", "hup-1b", "hup-2", "hup-3", "hup-4", "hup-9"):
            check(s not in log, "secret %s in the log" % s)


run(main)
