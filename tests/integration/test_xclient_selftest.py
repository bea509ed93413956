#!/usr/bin/env python3
"""The client-login test tool (tools/xclient.c) against a small scripted
XMPP server written here (python3 ssl and hashlib), so that the tool is
known to work before it is pointed at xmppd: STARTTLS with the certificate
verified against the test CA, SCRAM-SHA-256 (libstrophe's own login),
SCRAM-SHA-1 and PLAIN (the tool's raw login, with the mechanism it was
asked for), bind, a message and a ping both ways, presence; a wrong
password gives "error not-authorized" and "disconnected auth-failed"; a
certificate checked against a name it does not carry, or against another
CA, gives "disconnected tls-failed".

The server is not a model of xmppd: it accepts what libstrophe and xclient
send, in order, and records what it saw (mechanism, TLS) for the checks.
"""
import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import sys
import tempfile
import shutil
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import make_ca, make_node_cert  # noqa: E402
from xmppdtest import check, run  # noqa: E402

DOMAIN = "example.com"
USERS = {"alice": "s3cret, =pass"}  # ',' and '=' exercise SCRAM's saslname
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='%s' from='%s' id='s1' version='1.0'>" % (NS_STREAM, DOMAIN))


class Peer:
    """One accepted connection: a buffer and regex reads."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = ""

    def expect(self, pattern):
        """Reads until pattern matches; consumes through the match."""
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("peer closed while waiting for %r (have %r)"
                               % (pattern, self.buf))
            self.buf += data.decode()

    def send(self, text):
        self.sock.sendall(text.encode())


def scram(peer, alg, user_pw, seen):
    """Server side of SCRAM (RFC 5802) for one <auth/>; True on success."""
    m = peer.expect(r"<auth[^>]*>([^<]*)</auth>")
    first = base64.b64decode(m.group(1)).decode()
    gs2, bare = first[:3], first[3:]
    check(gs2 == "n,,", "client-first without the n,, header: %r" % first)
    attrs = dict(a.split("=", 1) for a in bare.split(","))
    user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
    seen["user"] = user
    salt, iters = b"0123456789abcdef", 4096
    nonce = attrs["r"] + "srvnonce"
    server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), iters)
    peer.send("<challenge xmlns='%s'>%s</challenge>"
              % (NS_SASL, base64.b64encode(server_first.encode()).decode()))
    m = peer.expect(r"<response[^>]*>([^<]*)</response>")
    final = base64.b64decode(m.group(1)).decode()
    without, proof = final.rsplit(",p=", 1)
    pw = user_pw.get(user, "\0no such user")
    salted = hashlib.pbkdf2_hmac(alg, pw.encode(), salt, iters)
    ck = hmac.new(salted, b"Client Key", alg).digest()
    stored = hashlib.new(alg, ck).digest()
    auth = ("%s,%s,%s" % (bare, server_first, without)).encode()
    sig = hmac.new(stored, auth, alg).digest()
    want = bytes(a ^ b for a, b in zip(ck, sig))
    if base64.b64decode(proof) != want or without != "c=biws,r=" + nonce:
        peer.send("<failure xmlns='%s'><not-authorized/></failure>" % NS_SASL)
        return False
    sk = hmac.new(salted, b"Server Key", alg).digest()
    v = "v=" + base64.b64encode(hmac.new(sk, auth, alg).digest()).decode()
    peer.send("<success xmlns='%s'>%s</success>"
              % (NS_SASL, base64.b64encode(v.encode()).decode()))
    return True


def plain(peer, user_pw, seen):
    m = peer.expect(r"<auth[^>]*>([^<]*)</auth>")
    _, user, pw = base64.b64decode(m.group(1)).decode().split("\0")
    seen["user"] = user
    if user_pw.get(user) != pw:
        peer.send("<failure xmlns='%s'><not-authorized/></failure>" % NS_SASL)
        return False
    peer.send("<success xmlns='%s'/>" % NS_SASL)
    return True


def serve_one(sock, ctx, mechs, seen, direct):
    """The scripted server for one client (direct: TLS from the first byte,
    XEP-0368, else STARTTLS)."""
    peer = Peer(sock)
    if not direct:
        peer.expect(r"<stream:stream[^>]*>")
        peer.send(HEADER + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:"
                  "xmpp-tls'><required/></starttls></stream:features>")
        peer.expect(r"<starttls[^>]*/>")
        peer.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    try:
        peer.sock = ctx.wrap_socket(sock, server_side=True)
    except (ssl.SSLError, OSError) as e:
        seen["tls_error"] = str(e)
        return
    seen["tls"] = peer.sock.version()
    while True:
        m = peer.expect(r"<stream:stream[^>]*>")
        seen["to"] = re.search(r"to=['\"]([^'\"]*)", m.group(0)).group(1)
        peer.send(HEADER + "<stream:features><mechanisms xmlns='%s'>%s</mechanisms>"
                  "</stream:features>"
                  % (NS_SASL, "".join("<mechanism>%s</mechanism>" % x for x in mechs)))
        m = peer.expect(r"<auth[^>]*mechanism=['\"]([A-Z0-9-]+)['\"]")
        mech = m.group(1)
        peer.buf = m.group(0) + peer.buf
        seen.setdefault("mechs", []).append(mech)
        if mech == "PLAIN":
            ok = plain(peer, USERS, seen)
        else:
            ok = scram(peer, "sha256" if mech == "SCRAM-SHA-256" else "sha1", USERS, seen)
        if ok:
            break
        # libstrophe tries its next mechanism on the same stream; xclient
        # gives up: either way the stream goes on or ends here.
        try:
            m = peer.expect(r"<auth[^>]*mechanism=['\"]([A-Z0-9-]+)['\"]|</stream:stream>")
        except (EOFError, OSError):
            return
        if m.group(0) == "</stream:stream>":
            peer.send("</stream:stream>")
            return
        peer.buf = m.group(0) + peer.buf
        seen["mechs"].append(m.group(1))
        ok = scram(peer, "sha1", USERS, seen) if m.group(1) == "SCRAM-SHA-1" else False
        if not ok:
            peer.expect(r"</stream:stream>")
            peer.send("</stream:stream>")
            return
        break
    peer.expect(r"<stream:stream[^>]*>")
    peer.send(HEADER + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
              "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>")
    m = peer.expect(r"<iq[^>]*id=['\"]([^'\"]+)['\"][^>]*>.*?</iq>")
    res = re.search(r"<resource>([^<]*)</resource>", m.group(0))
    full = "%s@%s/%s" % (seen["user"], DOMAIN, res.group(1) if res else "gen1")
    peer.send("<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              "<jid>%s</jid></bind></iq>" % (m.group(1), full))
    # Session (RFC 3921), then stanzas until the stream ends.
    while True:
        m = peer.expect(r"<(iq|message|presence)\b[^>]*?(/>|>.*?</\1>)|</stream:stream>")
        st = m.group(0)
        if st == "</stream:stream>":
            peer.send("</stream:stream>")
            return
        sid = re.search(r"id=['\"]([^'\"]+)", st)
        if st.startswith("<iq") and "xmpp-session" in st:
            peer.send("<iq type='result' id='%s'/>" % sid.group(1))
        elif st.startswith("<iq") and "urn:xmpp:ping" in st:
            peer.send("<iq type='result' id='%s' from='%s'/>" % (sid.group(1), DOMAIN))
            # and one ping the other way, which xclient must answer
            peer.send("<iq type='get' id='srvping' from='%s' to='%s'>"
                      "<ping xmlns='urn:xmpp:ping'/></iq>" % (DOMAIN, full))
        elif st.startswith("<iq") and "srvping" in st:
            seen["ping_answered"] = "type=\"result\"" in st or "type='result'" in st
        elif st.startswith("<message"):
            body = re.search(r"<body>([^<]*)</body>", st).group(1)
            peer.send("<message type='chat' from='echo@%s/x' to='%s'><body>echo %s</body>"
                      "</message>" % (DOMAIN, full, body))
        elif st.startswith("<presence") and "type=" not in st:
            peer.send("<presence from='bob@%s/phone' to='%s'/>" % (DOMAIN, full))
        elif st.startswith("<presence"):
            seen.setdefault("presence", []).append(st)


class Server:
    """Accepts one client at a time on 127.0.0.1 and serves it in a thread."""

    def __init__(self, cadir, mechs, direct=False):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(cadir, "node1.crt"),
                                 os.path.join(cadir, "node1.key"))
        self.mechs = mechs
        self.direct = direct
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.seen = {}
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        sock, _ = self.lsock.accept()
        try:
            serve_one(sock, self.ctx, self.mechs, self.seen, self.direct)
        except (EOFError, OSError, AssertionError, AttributeError) as e:
            self.error = repr(e)
        finally:
            sock.close()

    def close(self):
        self.lsock.close()
        self.thread.join(60)


def login(cadir, mechs, jid, password, **kw):
    server = Server(cadir, mechs, kw.get("direct_tls", False))
    c = Client(jid, password, "127.0.0.1", server.port,
               os.path.join(cadir, kw.pop("ca", "ca-bundle.pem")), **kw)
    return server, c


def main():
    tmp = tempfile.mkdtemp(prefix="xmppd-xclient-")
    try:
        cadir = os.path.join(tmp, "ca")
        make_ca(cadir, "xclient Test CA")
        make_node_cert(cadir, "node1", "127.0.0.1")
        other = os.path.join(tmp, "other")
        make_ca(other, "Other CA")
        shutil.copy(os.path.join(other, "ca.crt"), os.path.join(cadir, "other-ca.pem"))
        all_mechs = ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"]

        # libstrophe's own login: the strongest SCRAM, a message and a ping
        # both ways, presence, quit.
        server, c = login(cadir, all_mechs, "alice@example.com/laptop", USERS["alice"])
        with c:
            check(c.online() == "alice@example.com/laptop", c.output())
            c.wait_line(r"^presence bob@example.com/phone available$")
            c.send("msg bob@example.com hello there")
            c.wait_line(r"^msg echo@example.com/x echo hello there$")
            c.send("iq-ping example.com")
            c.wait_line(r"^iq example.com result ping\d+$")
            c.wait_line(r"^iq example.com get srvping$")
            c.send("sub bob@example.com")
            c.send("presence 5")
            check(c.quit() == 0, "quit: exit status; " + c.output())
            check("disconnected quit" in c.output(), c.output())
        server.close()
        check(server.error is None, "server: %s" % server.error)
        check(server.seen.get("mechs") == ["SCRAM-SHA-256"], server.seen)
        check(server.seen.get("tls") in ("TLSv1.3", "TLSv1.2"), server.seen)
        check(server.seen.get("ping_answered"), "the server's ping was not answered")
        check(any("subscribe" in p for p in server.seen.get("presence", [])), server.seen)

        # The raw login, with exactly the mechanism asked for.
        for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"):
            server, c = login(cadir, all_mechs, "alice@example.com/r1", USERS["alice"],
                              mech=mech)
            with c:
                check(c.online() == "alice@example.com/r1", c.output())
                c.send("msg bob@example.com hi")
                c.wait_line(r"^msg echo@example.com/x echo hi$")
                check(c.quit() == 0, c.output())
            server.close()
            check(server.error is None, "server (%s): %s" % (mech, server.error))
            check(server.seen.get("mechs") == [mech], server.seen)
            check(server.seen.get("to") == DOMAIN, server.seen)

        # Direct TLS (XEP-0368), both login paths.
        for mech in (None, "SCRAM-SHA-1"):
            server, c = login(cadir, all_mechs, "alice@example.com/d", USERS["alice"],
                              mech=mech, direct_tls=True)
            with c:
                check(c.online() == "alice@example.com/d", c.output())
                check(c.quit() == 0, c.output())
            server.close()
            check(server.error is None, "server (direct, %s): %s" % (mech, server.error))
            check(server.seen.get("tls") in ("TLSv1.3", "TLSv1.2"), server.seen)

        # A mechanism the server does not offer.
        server, c = login(cadir, ["SCRAM-SHA-256"], "alice@example.com/r1",
                          USERS["alice"], mech="SCRAM-SHA-1")
        with c:
            c.wait_line(r"^error mechanism-not-offered$")
            c.wait_line(r"^disconnected no-mechanism$")
            check(c.finish() == 1, c.output())
        server.close()

        # A wrong password, both ways.
        for mech in (None, "SCRAM-SHA-1"):
            server, c = login(cadir, all_mechs, "alice@example.com/r1", "wrong",
                              mech=mech)
            with c:
                c.wait_line(r"^error not-authorized$")
                c.wait_line(r"^disconnected auth-failed$")
                check("online" not in c.output(), c.output())
                check(c.finish() == 1, c.output())
            server.close()

        # The certificate really is verified: another name, another CA.
        for kw in ({"tls_name": "wrong.example.net"}, {"ca": "other-ca.pem"},
                   {"ca": "other-ca.pem", "mech": "SCRAM-SHA-1"}):
            server, c = login(cadir, all_mechs, "alice@example.com/r1", USERS["alice"],
                              **kw)
            with c:
                c.wait_line(r"^disconnected tls-failed$")
                check("online" not in c.output(), c.output())
                check(c.finish() == 1, c.output())
            server.close()
            check("tls" not in server.seen, "TLS came up with %s: %s" % (kw, server.seen))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main, timeout=180)
    print("ok   test_xclient_selftest")
