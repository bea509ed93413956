"""attack: raw-socket clients for the attack tests (test_attack_*.py):
a connection driven with select (Conn), logins on 5222 with STARTTLS and
SCRAM (test_websocket's client), components on 5223, RFC 6455 frames and
an RFC 7395 client on 5281, idle connections held open (IdleFlood), and
the CPU and memory of a process.  python3 stdlib only."""
import base64
import hashlib
import os
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_websocket import sasl_scram  # noqa: E402

DOMAIN = "example.com"
C2S, COMP, PEER, WS_PORT, WSS_PORT = 5222, 5223, 5224, 5280, 5281
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
PASSWORDS = {"alice": "alice-attack-pw", "bob": "bob-attack-pw", "carol": "carol-pw",
             "dave": "dave-pw", "erin": "erin-pw"}
HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>")
COMP_HDR = ("<stream:stream xmlns='jabber:component:accept' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>")


class Conn:
    """One raw TCP (or, after starttls, TLS) connection driven with select:
    what it sends is pushed while what comes back is read, so that a
    server that answers and closes in the middle of a big input is seen
    answering.  got: every byte received; closed: the server ended it."""

    def __init__(self, host, port, src=None):
        self.sock = socket.create_connection((host, port), timeout=60,
                                             source_address=(src, 0) if src else None)
        self.sock.setblocking(False)
        self.got = b""
        self.pos = 0
        self.closed = False
        self.host = host

    def starttls(self, ctx, name=DOMAIN):
        self.sock.setblocking(True)
        self.sock.settimeout(60)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=name)
        self.sock.setblocking(False)

    def _recv(self):
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    self.closed = True
                    return
                self.got += d
                if not isinstance(self.sock, ssl.SSLSocket) or not self.sock.pending():
                    return
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.closed = True

    def send(self, data, timeout=60):
        """Sends data (str or bytes), reading meanwhile; stops early when
        the server closes.  Returns the number of bytes sent."""
        if isinstance(data, str):
            data = data.encode()
        sent, deadline = 0, time.monotonic() + timeout
        while sent < len(data) and not self.closed:
            if time.monotonic() > deadline:
                break
            r, w, _ = select.select([self.sock], [self.sock], [], 1.0)
            if r:
                self._recv()
            if w and not self.closed:
                try:
                    sent += self.sock.send(data[sent:sent + 16384])
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                    self.closed = True
        return sent

    def pump(self, secs):
        """Reads for secs seconds (or until closed)."""
        deadline = time.monotonic() + secs
        while not self.closed and time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if r:
                self._recv()

    def expect(self, rx, timeout=60, what=""):
        """Reads until regex rx matches what came after the last expect;
        returns the match (consumed) or raises AssertionError."""
        deadline = time.monotonic() + timeout
        crx = re.compile(rx, re.S)
        while True:
            m = crx.search(self.got.decode(errors="replace"), self.pos)
            if m:
                self.pos = m.end()
                return m
            if self.closed or time.monotonic() > deadline:
                raise AssertionError("%s: no %r; got %r (closed %s)"
                                     % (what, rx, self.got[self.pos:][-600:], self.closed))
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if r:
                self._recv()

    def wait_closed(self, timeout=60):
        """Reads until the server closes; True if it did within timeout."""
        self.pump(timeout)
        return self.closed

    def text(self):
        return self.got.decode(errors="replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stream_error(cond):
    return r"<stream:error><%s xmlns='%s'/>" % (cond, NS_STREAMS)


# ---- logging in by hand ------------------------------------------------------

def tls_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def c2s_tls(node, ca, hdr=HDR % DOMAIN, src=None):
    """A client connection on 5222 through STARTTLS, features read."""
    c = Conn(node.addr, C2S, src)
    c.send(hdr)
    c.expect(r"<starttls[^>]*>.*?</stream:features>", what="first features")
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    c.expect(r"<proceed[^>]*/>", what="proceed")
    c.starttls(tls_ctx(ca))
    c.send(hdr)
    c.expect(r"</stream:features>", what="features after TLS")
    return c


def c2s_tls_from(node, ca, src):
    return c2s_tls(node, ca, src=src)


class SaslSide:
    """A Conn as test_websocket.sasl_scram's transport: send, and text()
    the next SASL element."""

    def __init__(self, c):
        self.c = c

    def send(self, text):
        self.c.send(text)

    def text(self):
        return self.c.expect(r"<(challenge|success|failure)\b[^>]*?(/>|>.*?</\1>)",
                             what="SASL answer").group(0)


def scram(c, user, password):
    """SCRAM-SHA-256 without channel binding (test_websocket's client)."""
    sasl_scram(SaslSide(c), user, password)


def c2s_authed(node, ca, user, hdr=HDR % DOMAIN):
    """Logged in, the stream restarted, features read (no bind yet)."""
    c = c2s_tls(node, ca, hdr)
    scram(c, user, PASSWORDS[user])
    c.send(hdr)
    c.expect(r"</stream:features>", what="features after SASL")
    return c


def c2s_bound(node, ca, user, resource, hdr=HDR % DOMAIN):
    c = c2s_authed(node, ca, user, hdr)
    c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>%s</resource></bind></iq>" % resource)
    c.expect(r"<jid>%s@%s/%s</jid>" % (user, DOMAIN, resource), what="bind")
    return c


def comp_conn(node, name, secret):
    """A component on 5223, handshake done."""
    c = Conn(node.addr, COMP)
    c.send(COMP_HDR % ("%s.%s" % (name, DOMAIN)))
    m = c.expect(r"<stream:stream[^>]* id='([^']+)'", what="component header")
    c.send("<handshake>%s</handshake>"
           % hashlib.sha1((m.group(1) + secret).encode()).hexdigest())
    c.expect(r"<handshake/>", what="handshake")
    return c


_ping_n = [0]


def ping(c, frm_jid, to=DOMAIN):
    _ping_n[0] += 1
    pid = "p%d" % _ping_n[0]
    c.send("<iq type='get' id='%s' to='%s'%s><ping xmlns='urn:xmpp:ping'/></iq>"
           % (pid, to, " from='%s'" % frm_jid if frm_jid else ""))
    c.expect(r"<iq[^>]*id='%s'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='%s'"
             % (pid, pid), what="ping %s" % pid)


def cpu_s(pid):
    """CPU seconds (user + system) the process has used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ws_open(node, ca, port=WSS_PORT):
    c = Conn(node.addr, port)
    if ca is not None:
        c.starttls(tls_ctx(ca), name=node.addr)
    key = base64.b64encode(os.urandom(16)).decode()
    c.send("GET /xmpp-websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: xmpp\r\n\r\n" % (node.addr, key))
    c.expect(r"HTTP/1.1 101[^\r]*\r\n.*?\r\n\r\n", what="ws upgrade")
    return c


def frame(op, payload, mask=True, fin=True, length=None):
    n = len(payload) if length is None else length
    h = bytes([(0x80 if fin else 0) | op])
    mbit = 0x80 if mask else 0
    if n < 126:
        h += bytes([mbit | n])
    elif n < 65536:
        h += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        h += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return h + payload
    k = os.urandom(4)
    return h + k + bytes(b ^ k[i % 4] for i, b in enumerate(payload))


def ws_close_code(c):
    """The code of the server's close frame in what c got, or None."""
    data = c.got
    i = data.find(b"\r\n\r\n") + 4
    while i + 2 <= len(data):
        op, n = data[i] & 0x0f, data[i + 1] & 0x7f
        i += 2
        if n == 126:
            n = struct.unpack("!H", data[i:i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack("!Q", data[i:i + 8])[0]
            i += 8
        if op == 8:
            return struct.unpack("!H", data[i:i + 2])[0] if n >= 2 else 0
        i += n
    return None


class WsXmpp:
    """An RFC 7395 client over a Conn after the upgrade."""

    def __init__(self, c):
        self.c, self.off = c, c.got.find(b"\r\n\r\n") + 4

    def send(self, text):
        self.c.send(frame(1, text.encode()))

    def next(self, timeout=60):
        """The next text message from the server (None when closed)."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.c.got[self.off:]
            if len(d) >= 2:
                op, n, i = d[0] & 0x0f, d[1] & 0x7f, 2
                if n == 126:
                    n, i = (struct.unpack("!H", d[2:4])[0], 4) if len(d) >= 4 else (None, 0)
                elif n == 127:
                    n, i = (struct.unpack("!Q", d[2:10])[0], 10) if len(d) >= 10 else (None, 0)
                if n is not None and len(d) >= i + n:
                    self.off += i + n
                    if op == 1:
                        return d[i:i + n].decode()
                    if op == 8:
                        return None
                    continue
            if self.c.closed or time.monotonic() > deadline:
                return None
            self.c.pump(0.2)

    def text(self):
        return self.next()

    def expect(self, rx, what):
        while True:
            m = self.next()
            if m is None:
                raise AssertionError("%s: no %r before the end" % (what, rx))
            if re.search(rx, m, re.S):
                return m


def ws_login(node, ca, user, resource):
    c = ws_open(node, ca)
    w = WsXmpp(c)
    w.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>"
           % DOMAIN)
    w.expect(r"<stream:features|<features", "ws features")
    sasl_scram(w, user, PASSWORDS[user])
    w.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>"
           % DOMAIN)
    w.expect(r"bind", "ws features after SASL")
    w.send("<iq xmlns='jabber:client' type='set' id='wb'><bind "
           "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>"
           % resource)
    w.expect(r"<jid>", "ws bind")
    return w


class IdleFlood:
    """Holds idle TCP connections, per in the list of (source address,
    host, port) one each, and opens a new one as soon as the other end
    closes one (flood.opened counts them): what costs an attacker nothing
    but a few addresses."""

    def __init__(self, targets):
        self.targets = list(targets)
        self.socks = {}  # socket -> its (src, host, port)
        self.opened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, t):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((t[0], 0))
            s.connect_ex((t[1], t[2]))
        except OSError:
            s.close()
            return
        self.socks[s] = t
        self.opened += 1

    def _run(self):
        for t in self.targets:
            self._open(t)
        while not self.stop.is_set():
            r, _, _ = select.select(list(self.socks), [], [], 0.05)
            for s in r:
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                if not d:
                    t = self.socks.pop(s)
                    s.close()
                    self._open(t)
        for s in self.socks:
            s.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        return False
