#!/usr/bin/env python3
"""The srv timer as wired by the edge: an unauthenticated connection is
closed after auth-timeout, and a component that sends nothing for three
keep-alive intervals gets a connection-timeout stream error, while the server's whitespace keep-alives reach it meanwhile."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import DOMAIN, Comp, Node, check, conf_text, free_port, run  # noqa: E402


def main():
    port = free_port()
    text = conf_text(DOMAIN, port, {"cb1": "timer-1"}, extra="keepalive 1\nauth-timeout 1\n")
    with Node(conf=text, port=port) as node:
        node.start()
        # auth-timeout: a silent TCP peer is closed after about a second.
        # The bounds below only tell "the timer fired" from "never closed":
        # a loaded CI machine may be many times slower than a desk.
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), 30) as s:
            s.settimeout(60)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        took = time.monotonic() - t0
        check(took < 40, "idle unauthenticated connection open for %.1fs" % took)
        check(b"connection-timeout" in data or data == b"",
              "unexpected bytes: %r" % data)

        # keepalive: whitespace arrives, and silence for 3 intervals closes.
        t0 = time.monotonic()
        with Comp(node, "cb1", "timer-1", "--stay", timeout=90) as c:
            c.wait_line("^connected")
            c.wait_line("^stream-error condition=connection-timeout", 60)
            check(c.finish(60) == 0, c.output())
        took = time.monotonic() - t0
        check(2 <= took < 60, "idle component closed after %.1fs" % took)
        check(node.stop() == 0, "xmppd did not exit 0")


run(main)
