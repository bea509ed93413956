#!/usr/bin/env python3
"""Startup errors give one clear line on stderr and a non-zero exit: a
world-readable or malformed xmppd.conf, a port in use, a bad
address, a bad command line."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import DOMAIN, Node, check, conf_text, run, xmppd_bin  # noqa: E402


def start_fails(node, *needles, code=1):
    node.start(wait=False)
    rc = node.wait_exit(60)
    log = node.log()
    check(rc == code, "expected exit %d, got %d:\n%s" % (code, rc, log))
    lines = [ln for ln in log.splitlines() if ln.startswith("xmppd: ")]
    check(len(lines) == 1, "expected one 'xmppd: ' line:\n" + log)
    for n in needles:
        check(n in lines[0], "%r not in %r" % (n, lines[0]))
    return lines[0]


def main():
    with Node(callbridges={"cb1": "wr-secret"}, mode=0o644) as node:
        start_fails(node, node.conf_path, "0644", "chmod 600 " + node.conf_path)
    with Node(callbridges={"cb1": "wr-secret"}, mode=0o640) as node:
        start_fails(node, "0640", "chmod 600")
    with Node(conf="domain example.com\ncallbridge cb1 x\ncallbridge cb1 y\n") as node:
        start_fails(node, node.conf_path + ":3: duplicate callbridge name 'cb1'")
    with Node(conf="component-listen 127.0.0.1:5\n") as node:
        start_fails(node, node.conf_path + ":1: no domain")
    with Node(conf="domain example.com\ncomponent-listen 127.0.0.1:99999\n") as node:
        start_fails(node, node.conf_path + ":2: bad address")
    # Without xmppd.conf a node starts with XMPP disabled (set up through
    # mmp-cli: tests/integration/test_admin.py).
    with Node(callbridges={"cb1": "x"}) as node:
        os.unlink(node.conf_path)
        node.start(wait=False)
        node.wait_log(r"started: XMPP disabled")
    # A port somebody else holds.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with Node(callbridges={"cb1": "x"}, port=port) as node:
            start_fails(node, "127.0.0.1:%d" % port, "address already in use")
    # An address this host does not have.
    with Node(conf=conf_text(DOMAIN, 5223, {}).replace("127.0.0.1", "192.0.2.1")) as node:
        start_fails(node, "192.0.2.1:5223")
    # The command line.
    p = subprocess.run([xmppd_bin()], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "--state-dir is required" in p.stderr, p.stderr)
    p = subprocess.run([xmppd_bin(), "--state-dir", "/nonexistent", "--log-level", "x"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "unknown log level" in p.stderr, p.stderr)


run(main)
