#!/usr/bin/env python3
"""Connection limits on the component listener: many
connections from one address are refused past max-connections-per-address,
with one rate-limited log line; past max-connections the oldest connection
that has not logged in is closed (resource-constraint) to make room;
a pre-auth stanza over preauth-stanza-bytes is refused with policy-violation;
authenticated components go on exchanging stanzas throughout."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Comp, Node, check, conf_text, find_log_line, run  # noqa: E402

CBS = {"cb1": "s3cret-one", "cb2": "s3cret-two"}
PER_ADDR = 8
TOTAL = 12
HEADER = ("<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com'>")


def dial(port, src):
    """A raw connection from src that sends a stream header; returns
    (socket, what happened): "header" when the server answered with its
    stream header, "closed" when it closed the connection unanswered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(60)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(HEADER.encode())
        got = b""
        while b"<stream:stream" not in got:
            chunk = s.recv(4096)
            if not chunk:
                return s, "closed"
            got += chunk
        return s, "header"
    except (ConnectionResetError, BrokenPipeError):
        return s, "closed"


def until_closed(s):
    """Reads until the server closes s (bounded by the socket timeout)."""
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got.decode(errors="replace")
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return got.decode(errors="replace")


def main():
    extra = ("max-connections %d\nmax-connections-per-address %d\n"
             "preauth-stanza-bytes 4096\n" % (TOTAL, PER_ADDR))
    with Node(callbridges=CBS) as node:
        node.write_conf(conf_text(node.domain, node.port, CBS, extra))
        node.start()
        common = ["--send", "3", "--expect", "3", "--go-on-stdin"]
        socks = []
        try:
            with Comp(node, "cb1", CBS["cb1"], "--to", "cb2.example.com", *common) as a, \
                 Comp(node, "cb2", CBS["cb2"], "--to", "cb1.example.com", *common) as b:
                a.wait_line("^connected")
                b.wait_line("^connected")
                # From 127.0.0.1: 2 components + 6 raw connections fill the
                # per-address limit; the next 4 are refused.
                got = []
                for _ in range(PER_ADDR - 2 + 4):
                    s, what = dial(node.port, "127.0.0.1")
                    socks.append(s)
                    got.append(what)
                check(got == ["header"] * (PER_ADDR - 2) + ["closed"] * 4,
                      "per-address limit: %s\n%s" % (got, node.log()))
                line = node.wait_log(
                    r"connection on 127\.0\.0\.1:%d from 127\.0\.0\.1 refused: "
                    r"%d connections from 127\.0\.0\.1 \(max-connections-per-address %d\)"
                    % (node.port, PER_ADDR, PER_ADDR))
                check("WARN" in line.upper(), "not a warning: " + line)
                # From 127.0.0.2: 4 more reach the total of 12; each of the
                # next 3 makes room: the oldest connection that has not
                # logged in (a raw one from 127.0.0.1) is closed with
                # resource-constraint, the authenticated components stay.
                got = []
                for _ in range(TOTAL - PER_ADDR + 3):
                    s, what = dial(node.port, "127.0.0.2")
                    socks.append(s)
                    got.append(what)
                check(got == ["header"] * (TOTAL - PER_ADDR + 3),
                      "total limit: %s\n%s" % (got, node.log()))
                for s in socks[:3]:
                    out = until_closed(s)
                    check("<resource-constraint" in out,
                          "the oldest made room: %r" % out[-300:])
                # Four refusals within 10 s: one log line (wait for it: the
                # dial may see the close before the line is written).
                find_log_line(node.log, r" refused: ", 60)
                refusals = [ln for ln in node.log().splitlines() if " refused: " in ln]
                check(len(refusals) == 1, "refusals not rate-limited:\n%s"
                      % "\n".join(refusals))
                # A pre-auth stanza of many tiny elements: policy-violation
                # long before its 255 KiB are in.
                s = socks[3]
                try:
                    s.sendall(b"<message>" + b"<a/>" * (255 * 1024 // 4))
                except (ConnectionResetError, BrokenPipeError):
                    pass
                out = until_closed(s)
                check("<policy-violation" in out, "no policy-violation: %r" % out[-300:])
                node.wait_log(r"c\d+ stream error policy-violation: stanza memory limit")
                # The authenticated components still work.
                a.go()
                b.go()
                for me, peer in ((a, b), (b, a)):
                    rc = me.finish(60)
                    out = me.output()
                    check(rc == 0, "%s exited %d:\n%s" % (me.jid, rc, out))
                    check("received messages=3 in_order=yes" in out, out)
        finally:
            for s in socks:
                s.close()
        # The node is healthy: a component connects again once slots free up.
        node.wait_log(r"connection closed", timeout=60)
        with Comp(node, "cb1", CBS["cb1"]) as c:
            check(c.finish(60) == 0, c.output())
        check(node.stop() == 0, "xmppd did not exit 0")
        log = node.log()
        check(not re.search(r"(?i)assert|sanitizer", log), log)


run(main)
