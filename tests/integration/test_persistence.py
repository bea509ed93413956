#!/usr/bin/env python3
"""test_persistence: what the shell configured survives restarts (SIGTERM
and SIGKILL); a truncated or damaged node.state is detected at start with
one clear line (which file, what is wrong, what to do) and never replaced
by defaults; a daemon SIGKILLed while it writes state in a loop (xmpp
listen, callbridge add) restarts with the old or the new state, never a
mix, and keeps every write it acknowledged."""
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_admin import DOMAIN, AdminNode, loopback  # noqa: E402
from xmppdtest import Comp, check, run  # noqa: E402


def start_fails(node, *needles):
    """Starting fails with exit 1 and one 'xmppd: ' line with needles."""
    before = len(node.log())
    node.start(wait=False)
    rc = node.proc.wait(60)
    log = node.log()[before:]
    lines = [ln for ln in log.splitlines() if ln.startswith("xmppd: ")]
    check(rc == 1, "expected exit 1, got %d:\n%s" % (rc, log))
    check(len(lines) == 1, "expected one 'xmppd: ' line:\n" + log)
    for n in needles:
        check(n in lines[0], "%r not in %r" % (n, lines[0]))
    return lines[0]


def snapshot(node):
    st = node.json("xmpp status")
    cbs = {c["name"]: node.json("xmpp callbridge show-secret %s" % c["name"])["secret"]
           for c in node.json("xmpp callbridge list")["callbridges"]}
    return {k: st[k] for k in ("node_id", "enabled", "serving", "domain", "listen")}, cbs


def restarts(node, addr):
    node.ok("xmpp domain " + DOMAIN)
    node.ok("xmpp listen " + addr)
    out = node.ok("xmpp callbridge add cb1")
    secret = re.search(r"^Secret: (\S+)$", out, re.M).group(1)
    node.ok("xmpp callbridge add-secret cb2", stdin="persist-2\n")
    node.ok("xmpp enable")
    want = snapshot(node)
    check(want[0]["serving"] and want[1] == {"cb1": secret, "cb2": "persist-2"}, str(want))

    for how in ("SIGTERM", "SIGKILL"):
        if how == "SIGTERM":
            check(node.stop() == 0, "xmppd did not exit 0")
        else:
            node.kill()
        node.start()
        got = snapshot(node)
        check(got == want, "after %s: %s != %s" % (how, got, want))
        with Comp(node, "cb1", secret, "--host", addr) as c:
            check(c.finish(60) == 0, "cb1 refused after %s:\n%s" % (how, c.output()))
    return want


def damaged_state(node, want):
    path = os.path.join(node.dir, "node.state")
    check(node.stop() == 0, "xmppd did not exit 0")
    with open(path, "rb") as f:
        good = f.read()
    mode = os.stat(path).st_mode & 0o777
    check(mode == 0o600, "node.state mode %o" % mode)

    def put(data):
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)

    # Truncated anywhere: detected, named, with the way out; file untouched.
    for cut in (0, 17, len(good) // 2, len(good) - 1):
        put(good[:cut])
        start_fails(node, path, "empty" if cut == 0 else "truncated",
                    "restore the file from a backup")
        with open(path, "rb") as f:
            check(f.read() == good[:cut], "node.state was rewritten after a failed start")
    # One flipped byte.
    bad = bytearray(good)
    bad[len(good) // 3] ^= 0x01
    put(bytes(bad))
    start_fails(node, path, "checksum mismatch")
    # Readable by others.
    put(good)
    os.chmod(path, 0o644)
    start_fails(node, path, "chmod 600")
    # Put back: everything is there.
    put(good)
    node.start()
    check(snapshot(node) == want, "state lost after restoring node.state")
    # node.state gone but the Raft store still there: refused, not guessed.
    check(node.stop() == 0, "xmppd did not exit 0")
    os.rename(path, path + ".saved")
    start_fails(node, "node.state is missing", "raft")
    os.rename(path + ".saved", path)
    node.start()


class Writer(threading.Thread):
    """Writes state through mmp-cli as fast as it can; records what the
    daemon acknowledged."""

    def __init__(self, node, addrs, prefix):
        super().__init__(daemon=True)
        self.node, self.addrs, self.prefix = node, addrs, prefix
        self.stop = threading.Event()
        self.acked_cbs = []
        self.tried_cbs = []
        self.n = 0

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if i % 2:
                    rc, _, _ = self.node.mmp("xmpp listen " + " ".join(
                        self.addrs[i % 4 // 2]), timeout=10)
                else:
                    name = "%s%d" % (self.prefix, i)
                    self.tried_cbs.append(name)
                    rc, _, _ = self.node.mmp("xmpp callbridge add " + name, timeout=30)
                    if rc == 0:
                        self.acked_cbs.append(name)
                self.n += 1
            except subprocess.TimeoutExpired:
                pass


def killed_mid_write(node):
    """SIGKILL while writing, restart, check: old or new, never a mix."""
    a, b = [loopback(), loopback()], [loopback()]
    valid = [sorted(x + ":5223" for x in a), sorted(x + ":5223" for x in b)]
    acked = set()
    tried = set()
    for round_ in range(6):
        w = Writer(node, (a, b), "k%d-" % round_)
        w.start()
        time.sleep(random.uniform(0.3, 1.2))
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(30)
        w.stop.set()
        w.join(60)
        acked |= set(w.acked_cbs)
        tried |= set(w.tried_cbs)
        check(w.n > 0, "no write went through in round %d" % round_)
        node.start()
        st = node.json("xmpp status")
        check(sorted(st["listen"]) in valid, "round %d: listen is a mix: %s"
              % (round_, st["listen"]))
        names = {c["name"] for c in node.json("xmpp callbridge list")["callbridges"]}
        names -= {"cb1", "cb2"}
        check(acked <= names, "round %d: acknowledged call bridges lost: %s"
              % (round_, sorted(acked - names)))
        check(names <= tried, "round %d: call bridges nobody added: %s"
              % (round_, sorted(names - tried)))
    return len(acked)


def main():
    with AdminNode() as node:
        addr = loopback()
        node.start()
        want = restarts(node, addr)
        damaged_state(node, want)
        n = killed_mid_write(node)
        check(n > 0, "no call bridge add was acknowledged")
        print("     %d call bridge adds acknowledged across 6 SIGKILLs" % n)
        check(node.stop() == 0, "xmppd did not exit 0")
        check("persist-2" not in node.log(), "a secret reached the log")


if __name__ == "__main__":
    run(main, timeout=300)
