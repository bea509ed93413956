"""fakepeer: a hand-made cluster peer for the attack tests, python3 stdlib
only: the peer-link frame codec (docs/cluster.md "Frames"; xmppd/core/pframe.h)
for the frames the tests send, and a TLS 1.3 client with a node certificate
that speaks them to a node's peer port (5224).

    with FakePeer(host, 5224, certfile, keyfile, cafile) as p:
        p.send(hello(cluster_id=0, node_id=0x99, addr="127.0.0.9:5224"))
        t, body = p.read_frame(timeout=5)        # the node's HELLO
        p.send(deliver(1, frm="admin@example.com", to="cb1.example.com", xml=...))
        p.wait_closed(timeout=10)

Everything here closes its socket in close() (also on errors)."""

import socket
import ssl
import struct
import time

VERSION = 4  # xmppd/core/pframe.h PFRAME_VERSION (the newest); the range:
VERSION_MIN, VERSION_MAX = 2, 4  # PFRAME_VERSION_MIN, PFRAME_VERSION_MAX
ATTR_COMPONENT = b"\0\0\0"  # entry attributes: kind component, no flags, priority 0
PROTO = 2  # PFRAME_PROTO
HELLO, CHAN_ACK, PING, PONG, RAFT, FWD, DELIVER, ACK, SESSIONS, CONFLICT, SUBMIT, \
    SUBMIT_RESULT, ROUTES, REFUSE = range(1, 15)
REFUSE_OTHER, REFUSE_REMOVED, REFUSE_VERSION = 0, 1, 2
SEQUENCED = {FWD, DELIVER, ACK, SESSIONS, CONFLICT, SUBMIT, SUBMIT_RESULT, ROUTES}
NAMES = {HELLO: "HELLO", CHAN_ACK: "CHAN_ACK", PING: "PING", PONG: "PONG", RAFT: "RAFT",
         FWD: "FWD", DELIVER: "DELIVER", ACK: "ACK", SESSIONS: "SESSIONS",
         CONFLICT: "CONFLICT", SUBMIT: "SUBMIT", SUBMIT_RESULT: "SUBMIT_RESULT",
         ROUTES: "ROUTES", REFUSE: "REFUSE"}


def u64(v):
    return struct.pack(">Q", v)


def u32(v):
    return struct.pack(">I", v)


def pstr(s):
    b = s.encode()
    return u32(len(b)) + b + b"\0"


def frame(ftype, payload, seq=None, version=VERSION):
    """One frame: length, version, type, chan_seq (sequenced types)."""
    body = bytes([version, ftype])
    if ftype in SEQUENCED:
        body += u64(seq)
    body += payload
    return u32(len(body)) + body


def hello(cluster_id, node_id, addr, incarnation=0x5eed, seen=0, recv_seq=0,
          vmin=VERSION_MIN, vmax=VERSION_MAX, extra=b""):
    """A HELLO written at vmax (the dialler's newest, as xmppd writes it);
    from version 3 on it carries the range [vmin, vmax] (and extra: what a
    later version appends); at 2 it has none, as a version 2 node's."""
    body = (struct.pack(">H", PROTO) + u64(cluster_id) + u64(node_id) + u64(incarnation) +
            pstr(addr) + u64(seen) + u64(recv_seq) + u64(int(time.time() * 1000)))
    if vmax >= 3:
        body += bytes([vmin, vmax]) + extra
    return frame(HELLO, body, version=vmax)


def parse_refuse(version, rest):
    """(cluster_id, code, reason, (vmin, vmax) or None) of a REFUSE's bytes
    after its type (read_frame's second value; version: last_version)."""
    cluster_id, code, n = struct.unpack(">QBI", rest[:13])
    reason = rest[13:13 + n].decode()
    tail = rest[13 + n + 1:]
    rng = (tail[0], tail[1]) if version >= 3 and len(tail) >= 2 else None
    return cluster_id, code, reason, rng


def ping(nonce=1, components=0):
    return frame(PING, u64(nonce) + u32(components))


def fwd(seq, origin, frm, to, xml, kind=FWD):
    """FWD or DELIVER of stanza xml (origin's stanza seq 1)."""
    return frame(kind, u64(origin) + u64(0x5eed) + u64(1) + u64(1) + pstr(frm) + pstr(to) +
                 pstr(xml), seq)


def ack(seq, origin_incarnation=0x5eed, first=1, last=1):
    """ACK of seqs first..last as delivered (none refused)."""
    return frame(ACK, u64(origin_incarnation) + u32(1) + u64(first) + u64(last) + u32(0),
                 seq)


def sessions(seq, node_id, names, ord_=1 << 62):
    """A full SESSIONS report of names (sids 1.., orders ord_)."""
    body = u64(node_id) + u64(1) + u64(0) + b"\1" + u32(len(names))
    for i, n in enumerate(names):
        body += pstr(n) + u64(i + 1) + u64(ord_) + ATTR_COMPONENT
    return frame(SESSIONS, body + u32(0), seq)


def routes(seq, names, node_id, term=0):
    """A whole ROUTES table putting names on node_id."""
    body = u64(term) + b"\3" + u32(len(names))
    for i, n in enumerate(names):
        body += pstr(n) + u64(node_id) + u64(i + 1) + u64(1) + ATTR_COMPONENT
    return frame(ROUTES, body + u32(0), seq)


def conflict(seq, name, sid=1):
    return frame(CONFLICT, pstr(name) + u64(sid), seq)


def submit(seq, data, request_id=1):
    return frame(SUBMIT, u64(request_id) + u32(len(data)) + data, seq)


class FakePeer:
    """A TLS 1.3 connection to a node's peer port with the given node
    certificate (trusted by the node's bundle, or not)."""

    def __init__(self, host, port, certfile, keyfile, cafile, timeout=60):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(cafile)
        ctx.load_cert_chain(certfile, keyfile)
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw)
        except Exception:
            raw.close()
            raise
        self.buf = b""
        self.last_version = None  # the version byte of the last frame read

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no bytes from the node in time")
        self.sock.settimeout(left)
        b = self.sock.recv(65536)
        if not b:
            raise EOFError("closed by the node")
        self.buf += b

    def read_frame(self, timeout=60):
        """(type, bytes after the type) of the next frame; EOFError when the
        node closed, TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 4:
            self._fill(deadline)
        n = struct.unpack(">I", self.buf[:4])[0]
        while len(self.buf) < 4 + n:
            self._fill(deadline)
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        self.last_version = body[0]
        return body[1], body[2:]

    def wait_closed(self, timeout=60, keepalive=True):
        """True once the node closed the connection (frames before that are
        read and dropped), False after timeout seconds.  With keepalive a
        PING goes out every 0.5 s, so that the node's idle timeout is not
        what closes the link."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                if keepalive:
                    self.send(ping())
                self.read_frame(min(0.5, max(0.01, deadline - time.monotonic())))
        except TimeoutError:  # (an OSError: first)
            if time.monotonic() < deadline:
                return self.wait_closed(deadline - time.monotonic(), keepalive)
            return False
        except (EOFError, ssl.SSLError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
