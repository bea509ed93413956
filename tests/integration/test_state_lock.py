#!/usr/bin/env python3
"""One xmppd per state directory: a second xmppd on a
directory that a running one holds exits non-zero at once, before it reads
any state or starts Raft, with one line naming the holder's pid; the first
keeps serving and answers mmp-cli."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Node, check, run, run_mmp, xmppd_bin  # noqa: E402


def main():
    with Node(callbridges={"cb1": "lock-secret"}) as first:
        first.start()
        sock = os.path.join(first.dir, "control.sock")
        p = subprocess.run([xmppd_bin(), "--state-dir", first.dir, "--name", "n2",
                            "--log-level", "debug"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=20)
        out = p.stdout + p.stderr
        check(p.returncode != 0, "second xmppd exited %d:\n%s" % (p.returncode, out))
        lines = [ln for ln in out.splitlines() if ln.startswith("xmppd: ")]
        check(len(lines) == 1, "expected one 'xmppd: ' line:\n" + out)
        check(first.dir in lines[0] and "pid %d" % first.proc.pid in lines[0],
              "the line names neither the directory nor the holder's pid: %r"
              % lines[0])
        # It stopped before Raft: no election, no control socket taken over.
        check("raft" not in out.lower() and "leader" not in out.lower(),
              "the second xmppd got as far as Raft:\n" + out)
        check(first.proc.poll() is None, "the first xmppd died:\n" + first.log())
        rc, out, err = run_mmp(sock, "xmpp status")
        check(rc == 0 and "Serving" in out,
              "the first xmppd does not answer mmp-cli: %r %r" % (out, err))
    # A lock left by a process that is gone does not block a restart.
    with Node(callbridges={"cb1": "lock-secret"}) as node:
        node.start()
        check(node.stop() == 0, "stop failed:\n" + node.log())
        node.start()
        rc, out, err = run_mmp(os.path.join(node.dir, "control.sock"), "xmpp status")
        check(rc == 0, "restart on the same dir: %r" % err)


if __name__ == "__main__":
    run(main, timeout=90)
