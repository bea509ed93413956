#!/usr/bin/env python3
"""test_cluster_idle_flood: many idle TCP connections
to the peer port (5224), from several source addresses, against a node
whose descriptor limit is low (256, as `ulimit -n` would make it): while
they are open the admin shell (`xmpp cluster status`) and the component
port (5223: a call bridge connects and authenticates) still answer; every
idle connection (half of them stopped in the middle of a TLS record, and
one trusted TLS client that never sends its HELLO) is closed by the node
(at once when over the limits on links that have not joined, else by the
pre-HELLO timeout); the node
counts them ("timed out", "over limit" in `xmpp cluster status`), and the
log has one warning a second at most about them, saying how many it held
back."""
import os
import re
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer as fp  # noqa: E402
from cluster import PEER_PORT, Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402

SOURCES = 10       # source addresses
PER_SOURCE = 40    # idle connections from each
FD_LIMIT = 256     # the node's descriptor limit


def open_idle(node_addr, src):
    """Up to PER_SOURCE idle TCP connections from src; returns them."""
    out = []
    for i in range(PER_SOURCE):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.bind((src, 0))
            s.connect((node_addr, PEER_PORT))
            if i % 2:
                s.send(b"\x16\x03\x01\x02\x00\x01")  # a TLS record, cut short
            out.append(s)
        except OSError:
            s.close()
    return out


def closed(s):
    """True when the node closed s (EOF or reset); False while it is open."""
    try:
        s.setblocking(False)
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, SOURCES * PER_SOURCE + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with Cluster(1) as c:
        node = c.form()
        c.add_callbridge("cb1")
        resource.prlimit(node.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        base = node.addr.rsplit(".", 1)[0]
        socks = []
        # TLS done, then silence: no HELLO.
        quiet = fp.FakePeer(node.addr, PEER_PORT, os.path.join(c.ca, "node1.crt"),
                            os.path.join(c.ca, "node1.key"),
                            os.path.join(c.ca, "ca-bundle.pem"))
        try:
            t0 = time.monotonic()
            for i in range(SOURCES):
                socks += open_idle(node.addr, "%s.%d" % (base, 100 + i))
            c.say("%d idle connections open to %s:%d (%.1fs)", len(socks), node.addr,
                  PEER_PORT, time.monotonic() - t0)
            check(len(socks) >= FD_LIMIT,
                  "enough connections to exhaust the node's descriptors: %d" % len(socks))
            # The shell and the component port answer meanwhile.
            rc, out, err = node.mmp("xmpp cluster status", timeout=30)
            check(rc == 0 and "State:" in out,
                  "xmpp cluster status answers during the flood (%d): %s" % (rc, err))
            comp = c.comp(node, "cb1", "--timeout", "50")
            check(comp.finish(60) == 0, "a call bridge connects to 5223 during the flood:\n"
                  + comp.output())
            c.say("the shell and 5223 answer during the flood")
            # Every idle connection is closed by the node: the pre-HELLO
            # timeout is 5 s; wait at most 60 s (a loaded machine).
            deadline = time.monotonic() + 60
            open_ = socks
            while open_ and time.monotonic() < deadline:
                open_ = [s for s in open_ if not closed(s)]
                time.sleep(0.2)
            check(not open_, "%d of %d idle connections still open after 60 s"
                  % (len(open_), len(socks)))
            check(quiet.wait_closed(60, keepalive=False),
                  "a TLS client that sends no HELLO is closed")
            c.say("every idle connection was closed by the node (%.1fs)",
                  time.monotonic() - t0)
        finally:
            quiet.close()
            for s in socks:
                s.close()
        links = node.status_json()["links"]
        check(links.get("timeouts", 0) >= 1 and links.get("over_limit", 0) >= 1,
              "timed out and over-limit connections are counted: %s" % links)
        text = node.status().text
        check(re.search(r"^Peer links: .*timed out [1-9]\d*, over limit [1-9]\d*", text,
                        re.M), "xmpp cluster status shows them:\n" + text)
        log = node.log()
        warns = [ln for ln in log.splitlines() if " warn " in ln and "peer link from" in ln]
        check(len(warns) < len(socks) // 4,
              "the warnings are rate limited: %d lines for %d connections"
              % (len(warns), len(socks)))
        check(re.search(r"more bad connections in the last second, not logged", log),
              "a warning says how many were held back")
        c.say("counted %s; %d warning lines", links, len(warns))


run(main, timeout=240)
