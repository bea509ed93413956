#!/usr/bin/env python3
"""test_readonly_state: a state directory on a read-only file system
(it was reported as `node.state.tmp: cannot remove`, a
file that did not exist).  xmppd must exit 1 with one line that names the
directory and the read-only file system and says what to do, both for a
node that has run before and for an empty directory.

The read-only mount is a bind mount in a private mount namespace
(`unshare -m`), which needs CAP_SYS_ADMIN: without it the test exits 77
(skipped) and says why.  Running as root, chmod cannot make a directory
unwritable, so a mount it is."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import check, run, xmppd_bin  # noqa: E402


def start_ro(src, mnt):
    """Runs xmppd on a read-only bind mount of src at mnt; returns
    (exit status of the shell, stdout+stderr)."""
    script = ('mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" || exit 77; '
              'exec timeout 20 "$0" --state-dir "$2" --name ro')
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, xmppd_bin(), src, mnt],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def main():
    if shutil.which("unshare") is None:
        print("SKIP: no unshare(1)")
        sys.exit(77)
    base = tempfile.mkdtemp(prefix="xmppd-ro-")
    try:
        used, empty, mnt = (os.path.join(base, d) for d in ("used", "empty", "mnt"))
        for d in (used, empty, mnt):
            os.mkdir(d, 0o700)
        # A node that ran once: its node.state, raft/ and lock exist.
        p = subprocess.Popen([xmppd_bin(), "--state-dir", used, "--name", "ro"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                if os.path.exists(os.path.join(used, "control.sock")) or p.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            p.terminate()
            p.wait(30)
        check(os.path.exists(os.path.join(used, "node.state")), "the node never started")
        for d in (used, empty):
            rc, out = start_ro(d, mnt)
            if rc == 77:
                print("SKIP: cannot make a read-only bind mount here:", out.strip())
                sys.exit(77)
            lines = [ln for ln in out.splitlines() if ln.startswith("xmppd: ")]
            check(rc == 1 and len(lines) == 1, "exit %d:\n%s" % (rc, out))
            check("read-only file system" in lines[0] and mnt in lines[0]
                  and "mount it read-write" in lines[0] and ".tmp" not in lines[0],
                  "the message: %r" % lines[0])
            print("%s: %s" % (os.path.basename(d), lines[0]))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    run(main)
