#!/usr/bin/env python3
"""XMPP over WebSocket (RFC 7395) on a 3-node cluster: real
xmppd processes, real TLS from certs/, a WebSocket client written here
(RFC 6455 framing over Python's ssl, no library: the test's framing and
SCRAM are independent of the server's), and a libstrophe client on 5222
(tools/xclient through clients.py).

 - `xmpp status` shows the ws/wss listeners and the host-meta URLs: this
   node's wss URL first, then the other two members' (same port and path);
 - host-meta and host-meta.json, fetched over wss, name exactly those, in
   that order, and carry Access-Control-Allow-Origin: * (XEP-0156); an
   upgrade on each named URL succeeds;
 - an upgrade without the xmpp subprotocol is refused with 400;
 - alice, over wss on one follower (the CA of certs/ verified, the
   subprotocol xmpp), logs in with SCRAM-SHA-256 (computed here with
   hashlib/hmac), binds, and exchanges messages and (directed) presence
   with bob on 5222 on the other follower; `xmpp status` (text and JSON) counts her as a websocket
   session, and `xmpp cluster status` on the leader (text and --json)
   shows her on f1's line and bob on f2's, by transport;
 - plain ws is refused (TLS is required for clients) with policy-violation;
 - <close/> is answered with <close/> and the WebSocket close;
 - a member leaves (xmpp cluster disable): the others' host-meta drops it,
   its own names only itself.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, wait_client_counts, wait_for, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

WS_PORT, WSS_PORT, PATH = 5280, 5281, "/xmpp-websocket"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
PASSWORDS = {"alice": "alice-ws-pw", "bob": "bob-tcp-pw"}


class WS:
    """One WebSocket client connection: the opening handshake and frames."""

    def __init__(self, host, port, ca=None, protocol="xmpp", path=PATH,
                 origin="https://example.com", extra=""):
        raw = socket.create_connection((host, port), timeout=60)
        if ca is not None:
            ctx = ssl.create_default_context(cafile=ca)
            self.sock = ctx.wrap_socket(raw, server_hostname=host)
        else:
            self.sock = raw
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n%s"
               % (path, host, port, key,
                  "Origin: %s\r\n" % origin if origin is not None else ""))
        req += extra
        if protocol is not None:
            req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
        self.sock.sendall((req + "\r\n").encode())
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head.decode("latin-1")
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            check("Sec-WebSocket-Accept: %s\r\n" % want in self.head, self.head)
            check("Sec-WebSocket-Protocol: xmpp\r\n" in self.head, self.head)

    def _until(self, sep):
        while sep not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed: %r" % self.buf)
            self.buf += d
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        """What follows the response head (an HTTP body), to the close."""
        while True:
            d = self.sock.recv(65536)
            if not d:
                return self.buf.decode()
            self.buf += d

    def frame(self, op, payload):
        """A masked client frame (RFC 6455 §5.2, §5.3)."""
        mask = os.urandom(4)
        n = len(payload)
        h = bytes([0x80 | op])
        if n < 126:
            h += bytes([0x80 | n])
        elif n < 65536:
            h += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            h += bytes([0x80 | 127]) + struct.pack("!Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(h + mask + body)

    def send(self, text):
        self.frame(1, text.encode())

    def recv(self):
        """The next message: (opcode, payload); pings are answered."""
        while True:
            b0, b1 = self._need(2)
            check(b1 & 0x80 == 0, "server frames are not masked (RFC 6455 §5.1)")
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack("!H", self._need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._need(8))[0]
            payload, op = self._need(n), b0 & 0x0f
            if op == 9:
                self.frame(10, payload)
                continue
            return op, payload

    def text(self):
        op, payload = self.recv()
        check(op == 1, "expected a text message, got opcode %d %r" % (op, payload))
        return payload.decode()


def sasl_scram(ws, user, password):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) over ws, without channel binding."""
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=%s,r=%s" % (user, cnonce)
    ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s"
            "</auth>" % base64.b64encode(("n,," + first_bare).encode()).decode())
    ch = ws.text()
    m = re.search(r"<challenge[^>]*>([^<]+)</challenge>", ch)
    check(m is not None, "challenge: %r" % ch)
    sfirst = base64.b64decode(m.group(1)).decode()
    f = dict(kv.split("=", 1) for kv in sfirst.split(","))
    check(f["r"].startswith(cnonce), sfirst)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(f["s"]),
                                 int(f["i"]))
    ckey = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(ckey).digest()
    final = "c=biws,r=%s" % f["r"]
    auth = ("%s,%s,%s" % (first_bare, sfirst, final)).encode()
    sig = hmac.new(stored, auth, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(ckey, sig))).decode()
    ws.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>"
            % base64.b64encode(("%s,p=%s" % (final, proof)).encode()).decode())
    ok = ws.text()
    skey = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    v = base64.b64encode(b"v=" + base64.b64encode(
        hmac.new(skey, auth, hashlib.sha256).digest())).decode()
    check(ok.startswith("<success") and v in ok, "SASL success with v=: %r" % ok)


def open_stream(ws):
    ws.send("<open xmlns='%s' to='example.com' version='1.0'/>" % FRAMING)
    hdr = ws.text()
    check(hdr.startswith("<open ") and FRAMING in hdr, "our <open/> answered: %r" % hdr)
    return ws.text()  # the features


def http_get(host, ca, path, port=WSS_PORT):
    s = ssl.create_default_context(cafile=ca).wrap_socket(
        socket.create_connection((host, port), timeout=60), server_hostname=host)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, body = data.decode().partition("\r\n\r\n")
    return head, body


def main():
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        url = "wss://%s:%d%s" % (f1.addr, WSS_PORT, PATH)
        # XEP-0156 across the cluster: f1's own URL first, then the other
        # voting members', in the configuration's order, at f1's port/path.
        others = [nd.addr for nd in c.nodes if nd is not f1]
        for nd in c.nodes:
            c.wait_serving(nd)
        w = {}

        def all_urls():
            w.update(f1.json("xmpp status").get("websocket", {}))
            u = w.get("urls") or []
            return (len(u) == 3 and u[0] == url and
                    sorted(u[1:]) == sorted("wss://%s:%d%s" % (a, WSS_PORT, PATH)
                                            for a in others))
        try:
            wait_for(all_urls, 60, "f1's host-meta URLs name the three members")
        except AssertionError as e:
            raise AssertionError("%s: %r (want %s first, then %s)" % (e, w, url, others))
        check(w.get("port") == WS_PORT and w.get("tls_port") == WSS_PORT
              and w.get("path") == PATH and w.get("listening") is True,
              "xmpp status websocket: %r" % w)
        urls = w["urls"]
        for name in PASSWORDS:
            leader.ok("xmpp user add %s" % name, stdin=PASSWORDS[name] + "\n")
        for nd in (f1, f2):
            wait_for(lambda nd=nd: all(u in nd.ok("xmpp user list") for u in PASSWORDS),
                     60, "%s: accounts replicated" % nd.name)

        # XEP-0156 discovery over wss, readable from other origins.
        head, body = http_get(f1.addr, ca, "/.well-known/host-meta")
        hrefs = re.findall(r"<Link rel='urn:xmpp:alt-connections:websocket' "
                           r"href='([^']+)'/>", body)
        check(head.startswith("HTTP/1.1 200") and
              "\r\nAccess-Control-Allow-Origin: *\r\n" in head + "\r\n" and
              hrefs == urls, "host-meta: %r %r" % (head, body))
        head, body = http_get(f1.addr, ca, "/.well-known/host-meta.json")
        links = json.loads(body).get("links", [])
        check(head.startswith("HTTP/1.1 200") and
              "\r\nAccess-Control-Allow-Origin: *\r\n" in head + "\r\n" and
              links == [{"rel": "urn:xmpp:alt-connections:websocket", "href": u}
                        for u in urls],
              "host-meta.json: %r %r" % (head, body))
        c.say("host-meta names %s", ", ".join(urls))
        # Every URL it names works: an upgrade on each member's wss.
        for u in urls[1:]:
            host = u.split("//", 1)[1].rsplit(":", 1)[0]
            ws = WS(host, WSS_PORT, ca)
            check(ws.status == 101, "%s: %s" % (u, ws.head))
            ws.sock.close()

        # RFC 7395 §3.1: no xmpp subprotocol, no upgrade.
        ws = WS(f1.addr, WSS_PORT, ca, protocol=None)
        check(ws.status == 400 and "subprotocol xmpp" in ws.rest(),
              "upgrade without xmpp refused: %r" % ws.head)

        # Plain ws while TLS is required for clients: refused, with a reason.
        ws = WS(f1.addr, WS_PORT, None)
        check(ws.status == 101, ws.head)
        hdr, err = ws.text(), ws.text()
        check(hdr.startswith("<open ") and "<policy-violation" in err and "wss" in err,
              "plain ws refused: %r %r" % (hdr, err))

        with Client("bob@example.com/desk", PASSWORDS["bob"], f2.addr, 5222, ca) as bob:
            check(bob.online() == "bob@example.com/desk", bob.output())
            ws = WS(f1.addr, WSS_PORT, ca)
            check(ws.status == 101, ws.head)
            feats = open_stream(ws)
            check("SCRAM-SHA-256" in feats and "starttls" not in feats, feats)
            sasl_scram(ws, "alice", PASSWORDS["alice"])
            feats = open_stream(ws)
            check("urn:ietf:params:xml:ns:xmpp-bind" in feats, feats)
            ws.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    "<resource>browser</resource></bind></iq>")
            r = ws.text()
            check("<jid>alice@example.com/browser</jid>" in r, r)
            ws.send("<presence/>")
            c.say("alice over wss on %s, bob on 5222 on %s", f1.name, f2.name)
            wait_for(lambda: f1.json("xmpp status")["sessions"]
                     .get("clients_by_transport", {}).get("websocket") == 1, 60,
                     "xmpp status counts alice as websocket")
            # Both nodes know both sessions before full JIDs are used.
            wait_sessions([f1, f2], {"alice": 1, "bob": 1})
            # Sessions by transport, as an operator reads them: `xmpp
            # status` on f1 (text), `xmpp cluster status` on the leader
            # (text: one line per member; --json: each peer's sessions).
            out = f1.ok("xmpp status")
            check("Websocket: 1" in out, "xmpp status text on f1:\n%s" % out)
            text = wait_client_counts(leader, {f1.peer_addr: (0, 1),
                                               f2.peer_addr: (1, 0)})
            c.say("xmpp cluster status on %s:\n%s", leader.name, text)

            ws.send("<message to='bob@example.com/desk' type='chat'>"
                    "<body>hello from the browser</body></message>")
            bob.wait_line(r"^msg alice@example.com/browser hello from the browser$")
            bob.send("msg alice@example.com/browser hello back over 5222")
            while True:
                m = ws.text()
                if m.startswith("<message"):
                    break
            check("from='bob@example.com/desk'" in m and "hello back over 5222" in m, m)
            # Presence both ways across the two followers (directed, RFC
            # 6121 §4.6): the browser's reaches bob on 5222, bob's reaches
            # the browser.
            ws.send("<presence to='bob@example.com/desk'><status>in the browser</status>"
                    "</presence>")
            bob.wait_line(r"^presence alice@example.com/browser available status "
                          r"in the browser$")
            bob.send("directed alice@example.com/browser")
            while True:
                m = ws.text()
                if m.startswith("<presence"):
                    break
            check("from='bob@example.com/desk'" in m and "type=" not in m, m)
            c.say("presence exchanged: alice (wss, %s) and bob (5222, %s)", f1.name,
                  f2.name)

            # RFC 7395 §3.6: <close/> both ways, then the WebSocket close.
            ws.send("<close xmlns='%s'/>" % FRAMING)
            while True:
                op, payload = ws.recv()
                if op == 8:
                    break
                check(op == 1 and payload.decode().startswith("<"), repr(payload))
            ws.frame(8, struct.pack("!H", 1000))
            check(payload[:2] == struct.pack("!H", 1000), repr(payload))
            wait_for(lambda: f1.json("xmpp status")["sessions"]
                     .get("clients_by_transport", {}).get("websocket") == 0, 60,
                     "alice's websocket session gone")

        # host-meta follows the members: f2 leaves (xmpp cluster disable);
        # f1 names itself and the leader, f2 only itself.
        f2.ok("xmpp cluster disable", timeout=60)
        f1_urls = [url, "wss://%s:%d%s" % (leader.addr, WSS_PORT, PATH)]
        f2_urls = ["wss://%s:%d%s" % (f2.addr, WSS_PORT, PATH)]
        wait_for(lambda: f1.json("xmpp status").get("websocket", {}).get("urls")
                 == f1_urls, 60, "f1's host-meta without f2: %r" % f1_urls)
        wait_for(lambda: f2.json("xmpp status").get("websocket", {}).get("urls")
                 == f2_urls, 60, "f2's host-meta alone: %r" % f2_urls)
        c.say("after %s left: %s names %s", f2.name, f1.name, ", ".join(f1_urls))


if __name__ == "__main__":
    run(main)
