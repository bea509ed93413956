#!/usr/bin/env python3
"""The WebSocket listeners' ports and path (docs/websocket.md, the
table of node-local settings), set through mmp-cli on a one-node cluster
as an admin would, each applied at once (the listeners restart):

 - by default ws listens on 5280 and wss on 5281, path /xmpp-websocket,
   and `xmpp status` says so;
 - `xmpp websocket port off`: nothing listens on 5280 any more, wss still
   upgrades;
 - `xmpp websocket tls-port <n>`: wss moves there (5281 is closed), and
   host-meta names the new port;
 - `xmpp websocket path /chat`: the upgrade is served on /chat, the old
   path is 404, host-meta names /chat;
 - a malformed port or path is refused with a one-line reason;
 - the settings survive a restart (node.state); `xmpp websocket tls-port
   off` with ws off leaves no WebSocket listener (`listening` false), and
   setting the ports back serves again.
"""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from test_websocket import PATH, WS_PORT, WSS_PORT, WS, http_get  # noqa: E402
from xmppdtest import check, run  # noqa: E402

NEW_WSS = 6281


def refused(host, port):
    """True when a TCP connection to host:port is refused (nothing
    listens)."""
    try:
        socket.create_connection((host, port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def upgrades(host, port, ca, path=PATH):
    """The status of an upgrade request (101 when served)."""
    try:
        ws = WS(host, port, ca, path=path)
    except (ConnectionRefusedError, EOFError):
        return None
    ws.sock.close()
    return ws.status


def main():
    with Cluster(1) as c:
        nd = c.form()
        ca = os.path.join(c.ca, "ca-bundle.pem")
        c.wait_serving(nd)
        ws = nd.json("xmpp status")["websocket"]
        check(ws["port"] == WS_PORT and ws["tls_port"] == WSS_PORT and ws["path"] == PATH
              and ws["listening"] is True, "defaults: %r" % ws)
        check(upgrades(nd.addr, WSS_PORT, ca) == 101, "wss on 5281")
        check(upgrades(nd.addr, WS_PORT, None) == 101, "ws on 5280")

        # ws off: 5280 closed, wss still served.
        nd.ok("xmpp websocket port off")
        wait_for(lambda: refused(nd.addr, WS_PORT), 60, "nothing on 5280 after port off")
        check(nd.json("xmpp status")["websocket"]["port"] == 0, "status port 0")
        wait_for(lambda: upgrades(nd.addr, WSS_PORT, ca) == 101, 60, "wss still on 5281")
        c.say("xmpp websocket port off: 5280 closed, wss served")

        # wss moves.
        nd.ok("xmpp websocket tls-port %d" % NEW_WSS)
        wait_for(lambda: upgrades(nd.addr, NEW_WSS, ca) == 101, 60, "wss on the new port")
        check(refused(nd.addr, WSS_PORT), "5281 closed after the move")
        url = "wss://%s:%d%s" % (nd.addr, NEW_WSS, PATH)
        wait_for(lambda: nd.json("xmpp status")["websocket"].get("urls") == [url], 60,
                 "host-meta names the new port")

        # The path.
        nd.ok("xmpp websocket path /chat")
        wait_for(lambda: upgrades(nd.addr, NEW_WSS, ca, path="/chat") == 101, 60,
                 "upgrade on /chat")
        check(upgrades(nd.addr, NEW_WSS, ca) == 404, "the old path is 404")
        url = "wss://%s:%d/chat" % (nd.addr, NEW_WSS)
        head, body = http_get(nd.addr, ca, "/.well-known/host-meta.json", port=NEW_WSS)
        links = json.loads(body).get("links", [])
        check(head.startswith("HTTP/1.1 200") and [x["href"] for x in links] == [url],
              "host-meta.json names %s: %r %r" % (url, head, body))
        c.say("wss on %d, path /chat: host-meta names %s", NEW_WSS, url)

        # Malformed settings: refused, nothing changed.
        nd.fails("xmpp websocket path chat", "path")
        nd.fails("xmpp websocket path /a?b", "path")
        nd.fails("xmpp websocket port 70000", "port")
        nd.fails("xmpp websocket tls-port 0", "port")
        ws = nd.json("xmpp status")["websocket"]
        check(ws["port"] == 0 and ws["tls_port"] == NEW_WSS and ws["path"] == "/chat",
              "unchanged after refusals: %r" % ws)

        # Kept across a restart.
        nd.stop()
        nd.start()
        c.wait_serving(nd, timeout=60)
        ws = nd.json("xmpp status")["websocket"]
        check(ws["port"] == 0 and ws["tls_port"] == NEW_WSS and ws["path"] == "/chat",
              "after a restart: %r" % ws)
        wait_for(lambda: upgrades(nd.addr, NEW_WSS, ca, path="/chat") == 101, 60,
                 "served after the restart")

        # Both off: no WebSocket listener at all; then back on.
        nd.ok("xmpp websocket tls-port off")
        wait_for(lambda: refused(nd.addr, NEW_WSS), 60, "nothing on the wss port")
        ws = nd.json("xmpp status")["websocket"]
        check(ws["listening"] is False and ws["tls_port"] == 0, "both off: %r" % ws)
        nd.ok("xmpp websocket port %d" % WS_PORT)
        nd.ok("xmpp websocket tls-port %d" % WSS_PORT)
        nd.ok("xmpp websocket path %s" % PATH)
        wait_for(lambda: upgrades(nd.addr, WSS_PORT, ca) == 101, 60, "wss back on 5281")
        check(upgrades(nd.addr, WS_PORT, None) == 101, "ws back on 5280")
        c.say("both off: no listener; back to the defaults: served")


if __name__ == "__main__":
    run(main)
