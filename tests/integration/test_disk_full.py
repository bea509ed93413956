#!/usr/bin/env python3
"""test_disk_full: a member's disk fills up (issue 13 item 10), as the
admin saw it and as docs/cluster.md "Disk full" tells them to recover:

- 3 members; node3's state directory is a 4 MiB tmpfs, filled to the last
  byte by a file of the admin's;
- call bridges added on the leader commit on the two others; node3's
  store fails to append one and stops: `xmpp health` exits 2 naming the
  replicated store and what to do (restart xmppd once the cause is fixed),
  and `xmpp status` and `xmpp cluster status` show it too (before, Raft
  stopped for good while `xmpp status` said `Serving: yes` and nothing
  said to restart);
- a write asked on node3 is refused with one line naming the store;
- the space is freed: writes still fail, and every status still says so
  (the docs' promise: a restart is what clears it);
- xmppd is restarted on the same directory, as the docs say: healthy, the
  call bridge added while it was full is there (caught up from the
  leader), and a new write made on node3 commits everywhere.

The tmpfs is mounted in a private mount namespace (`unshare -m`, needs
CAP_SYS_ADMIN: otherwise the test exits 77 and says why) held by a sleeping
process; the test and xmppd reach it through /proc/<pid>/root."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def mount_tmpfs(mnt):
    """A 4 MiB tmpfs at mnt in a mount namespace of its own; returns the
    holder process (its /proc/<pid>/root shows the tmpfs)."""
    os.makedirs(mnt, mode=0o700, exist_ok=True)
    script = ('mount -t tmpfs -o size=4m,mode=0700 xmppd-full "$0" || exit 77; '
              'echo mounted; exec sleep 3600')
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, mnt],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = p.stdout.readline().strip()
    if line != "mounted":
        p.wait(30)
        print("SKIP: cannot mount a tmpfs in a private mount namespace here:", line)
        sys.exit(77)
    return p


def fill(path):
    """Writes zeros to path until the file system is full."""
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as e:
            check(e.errno == 28, "filling %s: %s" % (path, e))
        # The last bytes of the last block.
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def health(nd):
    rc, out, err = nd.mmp("xmpp health")
    return rc, out + err


def says_store_stopped(nd):
    """Every status of nd names the stopped store; returns the health text."""
    rc, text = health(nd)
    check(rc == 2, "%s: xmpp health exit %d, wanted 2 (failed):\n%s" % (nd.name, rc, text))
    check(re.search(r"replicated store stopped", text) and "restart xmppd" in text,
          "%s: xmpp health does not name the store and the restart:\n%s" % (nd.name, text))
    st = nd.ok("xmpp status")
    check(re.search(r"(?im)^Store: the replicated store stopped.*storage.*restart xmppd", st),
          "%s: xmpp status does not show the stopped store:\n%s" % (nd.name, st))
    for cmd in ("xmpp status", "xmpp cluster status"):
        j = nd.json(cmd)
        check("storage" in (j.get("store") or ""), "%s: %s --json: %r" % (nd.name, cmd, j))
    cs = nd.ok("xmpp cluster status")
    check(re.search(r"(?im)^Store: the replicated store stopped.*storage.*restart xmppd", cs),
          "%s: xmpp cluster status does not show the stopped store:\n%s" % (nd.name, cs))
    return text


def main():
    if shutil.which("unshare") is None:
        print("SKIP: no unshare(1)")
        sys.exit(77)
    holder = None
    try:
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            holder = mount_tmpfs(n3.dir)
            # The test and xmppd reach the tmpfs through the holder's root.
            n3.dir = "/proc/%d/root%s" % (holder.pid, n3.dir)
            n3.sock = os.path.join(n3.dir, "control.sock")
            leader = c.form()
            check(leader is not n3, "node3 leads after forming")
            c.add_callbridge("cb1")
            check(health(n3)[0] == 0, "node3 not healthy before the disk fills:\n%s"
                  % health(n3)[1])

            c.say("the disk of node3 fills up")
            filler = os.path.join(n3.dir, "admin-backup.tar")
            fill(filler)
            # A file system with no free block still takes appends that fit
            # in a file's last page: write until one needs a new page.
            for i in range(1, 201):
                c.add_callbridge("cb%d" % (i + 1), on=leader, everywhere=False)
                if health(n3)[0] == 2:
                    break
            wait_for(lambda: health(n3)[0] == 2, 60, "node3 failed after the disk filled")
            c.say("node3's store stopped after %d write(s)", i)
            c.say("node3: %s", says_store_stopped(n3).strip().replace("\n", " | "))
            line = n3.fails("xmpp callbridge add late", "store")
            c.say("a write on node3: %s", line)

            c.say("space freed; the docs say: restart xmppd")
            os.unlink(filler)
            n3.fails("xmpp callbridge add late", "store")
            says_store_stopped(n3)

            check(n3.stop() == 0, "node3 did not exit 0 on SIGTERM")
            n3.start()
            wait_for(lambda: health(n3)[0] == 0, 60,
                     "node3 healthy after the restart: %s" % health(n3)[1])
            c.wait_replicated("xmpp callbridge list",
                              lambda o: re.search(r"(?m)^cb%d\s" % (i + 1), o),
                              what="the last call bridge added while node3 was full")
            c.add_callbridge("late", on=n3)
            st = n3.ok("xmpp status")
            check(not re.search(r"(?im)^Store:", st), "still shown after the restart:\n" + st)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(60)


if __name__ == "__main__":
    run(main, timeout=300)
