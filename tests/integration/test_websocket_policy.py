#!/usr/bin/env python3
"""The WebSocket Origin allow-list and trusted proxies
(docs/websocket.md "Origin and proxies"), set through mmp-cli on a
one-node cluster as an admin would, each applied at once (no restart):

 - by default any origin may connect; `xmpp websocket origin add` makes a
   list: an Origin not on it gets 403 with the reason, a listed one (any
   case) and a request without Origin (not a browser) are let in; `del`
   of the last entry allows any again; a malformed origin is refused;
 - `xmpp websocket proxy add 127.0.0.0/8` makes the test's own address a
   trusted proxy: its X-Forwarded-For names the client in the log line of
   a failed login (the address login throttling counts); without the
   proxy entry the header is ignored; a malformed entry is refused;
 - both lists are in `xmpp status` and survive a restart (node.state).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from test_websocket import WSS_PORT, WS, open_stream, sasl_scram  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def failed_login(node, ca, extra):
    """A SCRAM login with a wrong password over wss with extra headers."""
    ws = WS(node.addr, WSS_PORT, ca, origin=None, extra=extra)
    check(ws.status == 101, ws.head)
    open_stream(ws)
    try:
        sasl_scram(ws, "alice", "wrong-password")
        raise RuntimeError("a wrong password logged in")
    except AssertionError:
        pass


def main():
    with Cluster(1) as c:
        nd = c.form()
        ca = os.path.join(c.ca, "ca-bundle.pem")
        c.wait_serving(nd)
        nd.ok("xmpp user add alice", stdin="alice-pw\n")

        # Default: any origin.
        check(WS(nd.addr, WSS_PORT, ca, origin="https://evil.example.net").status == 101,
              "any origin by default")
        out = nd.ok("xmpp websocket origin add https://App.Example.com")
        check("origin https://app.example.com added" in out, out)
        check("https://app.example.com" in nd.ok("xmpp websocket origin list"), "listed")
        ws = WS(nd.addr, WSS_PORT, ca, origin="https://evil.example.net")
        check(ws.status == 403 and "origin not allowed" in ws.rest(),
              "origin off the list refused: %r" % ws.head)
        check(WS(nd.addr, WSS_PORT, ca, origin="https://APP.example.com").status == 101,
              "listed origin, any case")
        check(WS(nd.addr, WSS_PORT, ca, origin=None).status == 101, "no Origin let in")
        nd.fails("xmpp websocket origin add app.example.com", "not an origin")
        nd.fails("xmpp websocket origin add https://app.example.com/path", "not an origin")
        nd.fails("xmpp websocket origin del https://other.example.com", "not on the list")

        # Trusted proxies.
        failed_login(nd, ca, "X-Forwarded-For: 203.0.113.9\r\n")
        wait_for(lambda: "client login failed from " in nd.log(), 60, "failure logged")
        check("login failed from 203.0.113.9" not in nd.log(),
              "X-Forwarded-For ignored without a trusted proxy")
        nd.fails("xmpp websocket proxy add 127.0.0.0/33", "CIDR")
        out = nd.ok("xmpp websocket proxy add 127.0.0.0/8")
        check("proxy 127.0.0.0/8 added" in out, out)
        failed_login(nd, ca, "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n")
        wait_for(lambda: "client login failed from 203.0.113.9:" in nd.log() or
                 "client login failed from 203.0.113.9 " in nd.log(), 60,
                 "the client address from X-Forwarded-For in the log")

        st = nd.json("xmpp status")["websocket"]
        check(st.get("origins") == ["https://app.example.com"] and
              st.get("trusted_proxies") == ["127.0.0.0/8"], "status: %r" % st)
        nd.stop()
        nd.start()
        c.wait_serving(nd, timeout=60)
        st = nd.json("xmpp status")["websocket"]
        check(st.get("origins") == ["https://app.example.com"] and
              st.get("trusted_proxies") == ["127.0.0.0/8"], "after a restart: %r" % st)
        check(WS(nd.addr, WSS_PORT, ca, origin="https://evil.example.net").status == 403,
              "the list holds after a restart")

        out = nd.ok("xmpp websocket origin del https://app.example.com")
        check("deleted" in out and "any origin" in out.lower(), out)
        check(WS(nd.addr, WSS_PORT, ca, origin="https://evil.example.net").status == 101,
              "an empty list allows any origin again")
        nd.ok("xmpp websocket proxy del 127.0.0.0/8")
        check("No trusted proxy" in nd.ok("xmpp websocket proxy list"), "proxy list empty")


if __name__ == "__main__":
    run(main)
