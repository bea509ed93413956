#!/usr/bin/env python3
"""The control socket cannot be locked out: 70 clients
that each send half a request used to hold every slot, and mmp-cli was
refused for as long as they stayed.  Now mmp-cli answers at once while they
are connected (each new client closes the oldest idle or partial one), and
the daemon drops them after the partial-request timeout."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_admin import AdminNode  # noqa: E402
from xmppdtest import check, run, run_mmp  # noqa: E402

CLIENTS = 70


def half_request(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    # The listen backlog is 16: a full one says EAGAIN until the daemon
    # accepts (at most 10 s).
    for _ in range(1000):
        try:
            s.connect(path)
            break
        except BlockingIOError:
            time.sleep(0.01)
    else:
        raise AssertionError("cannot connect to " + path)
    # A 4-byte length announcing 64 bytes, and only part of them.
    s.sendall(b"\x00\x00\x00\x40{\"v\":1,")
    return s


def main():
    node = AdminNode()
    socks = []
    try:
        node.start()
        for _ in range(CLIENTS):
            socks.append(half_request(node.sock))
        # mmp-cli answers while all of them are connected, three times in a
        # row (each call takes one slot from the oldest half request).
        for _ in range(3):
            rc, out, err = run_mmp(node.sock, "xmpp status", timeout=60)
            check(rc == 0, "mmp-cli failed (%d): %s %s\n%s" % (rc, out, err, node.log()))
        # The half requests are dropped: each sees the end of its stream
        # (within the socket timeout, longer than the 10 s partial timeout).
        for s in socks:
            try:
                check(s.recv(1) == b"", "a half request got an answer")
            except ConnectionResetError:
                pass
        check("closed to make room for a new client" in node.log(), node.log())
    finally:
        for s in socks:
            s.close()
        node.close()


run(main)
