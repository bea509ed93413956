#!/usr/bin/env python3
"""A tiny stand-in for xmppd's component listener, to check xmppd-bench itself.

    fake_component_server.py PORT DOMAIN SECRET [--drop-every N] [--dup-every N]
                                                [--swap-every N]
    fake_component_server.py --conf STATE_DIR/xmppd.conf [--drop-every N] ...

Accepts XEP-0114 components on 127.0.0.1:PORT (any name, one shared secret;
or, with --conf, the domain, first component-listen port and call-bridge
secrets of an xmppd.conf), checks the handshake, and routes each <message/> to the component named in
its 'to' attribute.  The --*-every options damage the stream on purpose
(drop, duplicate, or swap two consecutive messages) so that the bench's
lost / duplicate / out-of-order counters can be checked.  Not a test and not
fast: a checker for the tool, used by hand (see docs/benchmarks.md).
"""
import asyncio
import hashlib
import re
import secrets
import sys

TAG = re.compile(rb"<message\b[^>]*>.*?</message>|<message\b[^>]*/>", re.S)
TO = re.compile(rb"\bto=['\"]([^'\"]+)['\"]")

sessions = {}
opts = {"drop": 0, "dup": 0, "swap": 0}
counter = [0]


async def handle(reader, writer, domain, secret):
    """secret: one string for every component, or a dict name -> secret."""
    buf = b""
    while b">" not in buf.split(b"<stream:stream", 1)[-1]:
        data = await reader.read(4096)
        if not data:
            writer.close()
            return
        buf += data
    head, _, buf = buf.partition(b"<stream:stream")
    hdr, _, buf = buf.partition(b">")
    m = TO.search(hdr)
    jid = m.group(1).decode() if m else ""
    sid = secrets.token_hex(8)
    writer.write(
        ("<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
         "streams' xmlns='jabber:component:accept' from='%s' id='%s'>" % (jid, sid)).encode())
    while b"</handshake>" not in buf:
        data = await reader.read(4096)
        if not data:
            writer.close()
            return
        buf += data
    hs = re.search(rb"<handshake>([0-9a-f]+)</handshake>", buf)
    if isinstance(secret, dict):
        sec = secret.get(jid[: -len(domain) - 1] if jid.endswith("." + domain) else "")
    else:
        sec = secret
    want = hashlib.sha1((sid + (sec or "")).encode()).hexdigest().encode()
    if sec is None:
        want = b"-"
    if not hs or hs.group(1) != want or not jid.endswith("." + domain):
        writer.write(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:"
                     b"xmpp-streams'/></stream:error></stream:stream>")
        await writer.drain()
        writer.close()
        return
    buf = buf[hs.end():]
    writer.write(b"<handshake/>")
    sessions[jid] = writer
    held = None
    try:
        while True:
            out = {}
            while True:
                m = TAG.search(buf)
                if not m:
                    break
                stanza = buf[m.start():m.end()]
                buf = buf[m.end():]
                to = TO.search(stanza).group(1).decode()
                counter[0] += 1
                n = counter[0]
                if opts["drop"] and n % opts["drop"] == 0:
                    continue
                copies = [stanza]
                if opts["dup"] and n % opts["dup"] == 0:
                    copies.append(stanza)
                if opts["swap"] and n % opts["swap"] == 0 and held is None:
                    held = (to, stanza)
                    continue
                out.setdefault(to, []).extend(copies)
                if held is not None:
                    out.setdefault(held[0], []).append(held[1])
                    held = None
            for to, items in out.items():
                w = sessions.get(to)
                if w is not None:
                    w.write(b"".join(items))
            if b"</stream:stream>" in buf:
                break
            data = await reader.read(65536)
            if not data:
                break
            buf += data
    finally:
        if sessions.get(jid) is writer:
            del sessions[jid]
        try:
            writer.write(b"</stream:stream>")
            writer.close()
        except Exception:
            pass


async def main():
    if sys.argv[1] == "--conf":
        port, domain, secret = 5223, None, {}
        with open(sys.argv[2]) as f:
            for line in f:
                w = line.split()
                if not w or w[0].startswith("#"):
                    continue
                if w[0] == "domain":
                    domain = w[1]
                elif w[0] == "component-listen" and port == 5223:
                    port = int(w[1].rsplit(":", 1)[1])
                elif w[0] == "callbridge":
                    secret[w[1]] = w[2]
        args = sys.argv[3:]
    else:
        port, domain, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        args = sys.argv[4:]
    for i in range(0, len(args), 2):
        opts[args[i].split("-")[2]] = int(args[i + 1])
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, domain, secret), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
