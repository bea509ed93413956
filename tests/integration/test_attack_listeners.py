#!/usr/bin/env python3
"""test_attack_listeners: a hostile peer on every listener of one real
node (a one-member cluster formed as cluster.py does it), with raw
sockets: what RFC 6120 (§4.9.3 stream errors, §11 restricted XML),
RFC 6121, RFC 7622, RFC 7395, RFC 6455 and XEP-0114 require, and that
the node goes on serving everyone else.

Bystanders: bob (logged in on 5222 with STARTTLS and SCRAM-SHA-256,
written here) and the call bridge cb1 (5223) ping the node after every
group of cases and must get their answers; the node must still run, its
resident memory stay under a bound.

 - 5222 before TLS and after login: DTD (billion laughs, external
   entity), undeclared entity, comment, processing instruction, XML
   declaration mid-stream, deep nesting, 10,000 attributes, a huge
   attribute value, a huge text node, invalid UTF-8, a NUL, a control
   character, an unbound prefix, a redeclared stream prefix, a top-level
   element in an unknown namespace, a wrong version, a wrong or no 'to',
   a stream header again mid-stream: each one stream error, the stream
   closed; CDATA is XML (allowed) and reaches bob escaped.
 - sessions: SASL with 1 MB of base64, abort loops, a 2 KB resource,
   forbidden JID characters, error stanzas that must not be answered,
   an iq to the domain in an unknown namespace, a presence flood.
 - slowloris: a header trickled before auth is closed by the auth
   timeout; a client that never reads is closed once its queue is full;
   a half-closed connection is closed.
 - 5223: a wrong handshake, a handshake replayed on another stream, two
   components of one name (the older gets conflict), a 'from' outside
   the component's domain.
 - 5280/5281: a huge HTTP head, unmasked and oversized frames, a binary
   frame, invalid UTF-8 in a text frame, a DTD in a frame.
 - 5224: plaintext, TLS without a client certificate, TLS with an
   untrusted one: nothing but a refusal.
"""
import base64
import hashlib
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import (  # noqa: E402
    C2S, COMP, COMP_HDR, DOMAIN, HDR, NS_SASL, NS_STREAMS, PASSWORDS, PEER, WS_PORT,
    WSS_PORT, Conn, c2s_authed, c2s_bound, c2s_tls, c2s_tls_from, comp_conn, frame, ping,
    rss_kb, cpu_s, scram, tls_ctx, ws_close_code, ws_login, ws_open)
from cluster import Cluster, make_ca, make_node_cert, wait_for  # noqa: E402
from xmppdtest import Tally, run  # noqa: E402

# The node's resident memory must stay under this (it is some 10-20 MB;
# an ASan build holds freed memory in quarantine, 256 MB by default).
RSS_BOUND_KB = 256 * 1024
RSS_BOUND_ASAN_KB = 2048 * 1024

check = Tally()


class World:
    """The node and its bystanders."""

    def __init__(self, c, node, ca, secret):
        self.c, self.node, self.ca, self.secret = c, node, ca, secret
        self.bob = c2s_bound(node, ca, "bob", "b")
        self.cb1 = comp_conn(node, "cb1", secret)
        self.max_rss = 0
        with open("/proc/%d/maps" % node.proc.pid) as f:
            self.rss_bound = RSS_BOUND_ASAN_KB if "libasan" in f.read() else RSS_BOUND_KB

    def healthy(self, what):
        """Bob and cb1 are answered, the node runs, its memory is bounded."""
        alive = self.node.alive()
        ok_bob = ok_cb = False
        try:
            ping(self.bob, None)
            ok_bob = True
            ping(self.cb1, "cb1." + DOMAIN)
            ok_cb = True
        except AssertionError as e:
            err = str(e)
        rss = rss_kb(self.node.proc.pid) if alive else 0
        self.max_rss = max(self.max_rss, rss)
        check(alive and ok_bob and ok_cb and rss < self.rss_bound,
              "after %s: the node serves bob and cb1 (rss %d KB)" % (what, rss),
              "" if ok_bob and ok_cb else err + "\n" + self.node.log()[-3000:])
        # what bob and cb1 got besides (nothing is the rule) is dropped
        self.bob.pos = len(self.bob.got)
        self.cb1.pos = len(self.cb1.got)


# ---- 5222: XML ---------------------------------------------------------------

def xml_cases():
    """(name, bytes after a valid header, acceptable stream error conditions)."""
    deep = "<message to='bob@%s/b'>" % DOMAIN + "<a>" * 10000
    attrs = "<message to='bob@%s/b' " % DOMAIN + " ".join(
        "a%d='x'" % i for i in range(10000)) + "/>"
    laughs = "<!DOCTYPE lolz [<!ENTITY lol 'lol'>" + "".join(
        "<!ENTITY lol%d '%s'>" % (i, ("&lol%d;" % (i - 1) if i else "&lol;") * 10)
        for i in range(10)) + "]>"
    bad = ("not-well-formed", "restricted-xml", "policy-violation", "bad-format",
           "unsupported-encoding", "invalid-xml")
    return [
        ("a DTD (billion laughs) before the header", laughs, ("restricted-xml",), True),
        ("an external entity before the header",
         "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>", ("restricted-xml",), True),
        ("a DTD mid-stream", laughs, bad, False),
        ("an undeclared entity", "<message><body>&xxe;</body></message>",
         ("restricted-xml", "not-well-formed"), False),
        ("a comment", "<!-- hello -->", ("restricted-xml",), False),
        ("a processing instruction", "<?evil x?>", ("restricted-xml",), False),
        ("an XML declaration mid-stream", "<?xml version='1.0'?>",
         ("restricted-xml", "not-well-formed"), False),
        ("10,000 levels of nesting", deep, ("policy-violation",), False),
        ("10,000 attributes", attrs, ("policy-violation",), False),
        ("a 1 MB attribute value", "<message a='" + "x" * (1 << 20) + "'/>",
         ("policy-violation",), False),
        ("a 1 MB text node", "<message><body>" + "x" * (1 << 20) + "</body></message>",
         ("policy-violation",), False),
        ("invalid UTF-8", b"<message><body>\xff\xfe\xc0\xaf</body></message>",
         ("not-well-formed", "unsupported-encoding"), False),
        ("a NUL byte", b"<message><body>a\x00b</body></message>",
         ("not-well-formed", "unsupported-encoding"), False),
        ("a control character", "<message><body>a\x01b</body></message>",
         ("not-well-formed",), False),
        ("a character reference to U+0001", "<message><body>&#1;</body></message>",
         ("not-well-formed",), False),
        ("an unbound prefix", "<x:message/>", ("not-well-formed", "invalid-namespace"), False),
        ("a top-level element in an unknown namespace", "<foo xmlns='urn:unknown'/>",
         ("unsupported-stanza-type", "invalid-namespace"), False),
        ("a top-level stanza in jabber:server",
         "<message xmlns='jabber:server' to='bob@%s/b'/>" % DOMAIN,
         ("unsupported-stanza-type", "invalid-namespace"), False),
        ("a stream header again mid-stream", HDR % DOMAIN,
         ("unsupported-stanza-type", "invalid-xml", "not-well-formed", "invalid-namespace",
          "policy-violation", "not-authorized"), False),
        ("a stream error from the client, then silence",
         "<stream:error><undefined-condition xmlns='%s'/></stream:error>" % NS_STREAMS,
         None, False),
    ]


def header_cases():
    """(name, whole header, acceptable conditions)."""
    ns = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    return [
        ("version 2.0", "<stream:stream %s to='%s' version='2.0'>" % (ns, DOMAIN),
         ("unsupported-version",)),
        ("a wrong 'to'", "<stream:stream %s to='evil.org' version='1.0'>" % ns,
         ("host-unknown",)),
        ("no 'to'", "<stream:stream %s version='1.0'>" % ns, ("host-unknown",)),
        ("the stream prefix bound to another namespace",
         "<stream:stream xmlns='jabber:client' xmlns:stream='urn:evil' to='%s' "
         "version='1.0'>" % DOMAIN, ("invalid-namespace", "bad-namespace-prefix")),
        ("another content namespace",
         "<stream:stream xmlns='jabber:component:accept' "
         "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" % DOMAIN,
         ("invalid-namespace",)),
        ("a header that is not stream:stream", "<foo xmlns='jabber:client'>",
         ("invalid-namespace", "not-well-formed", "bad-format")),
    ]


def attack_xml(w, name, data, conds, before_header, stage):
    """One case on a fresh connection at stage ('plain': right after our
    header, 'authed': logged in as alice, bound): the node must answer one
    of conds as a stream error and close, or (conds None) simply close."""
    node, ca = w.node, w.ca
    if stage == "plain":
        c = Conn(node.addr, C2S)
        if before_header:
            c.send("<?xml version='1.0'?>")
            c.send(data)
            c.send((HDR % DOMAIN).replace("<?xml version='1.0'?>", ""))
        else:
            c.send(HDR % DOMAIN)
            c.expect(r"</stream:features>", what=name)
            c.send(data)
    else:
        c = c2s_bound(node, ca, "alice", "x")
        c.send(data)
    if conds is None:
        c.send("</stream:stream>")
    closed = c.wait_closed(60)
    txt = c.text()
    if conds is None:
        check(closed, "%s (%s): closed" % (name, stage), txt[-500:])
    else:
        got = re.findall(r"<stream:error><([a-z-]+) xmlns='%s'/>" % NS_STREAMS, txt)
        check(closed and len(got) == 1 and got[0] in conds
              and txt.rstrip().endswith("</stream:stream>"),
              "%s (%s): stream error %s and closed" % (name, stage, "|".join(conds)),
              "closed %s, conditions %s, tail %r" % (closed, got, txt[-400:]))
    c.close()


def test_xml(w):
    for name, data, conds, before in xml_cases():
        attack_xml(w, name, data, conds, before, "plain")
        if not before:
            attack_xml(w, name, data, conds, before, "authed")
    w.healthy("the XML cases")
    for name, hdr, conds in header_cases():
        c = Conn(w.node.addr, C2S)
        c.send(hdr)
        closed = c.wait_closed(60)
        got = re.findall(r"<stream:error><([a-z-]+) xmlns='%s'/>" % NS_STREAMS, c.text())
        check(closed and len(got) == 1 and got[0] in conds,
              "header with %s: stream error %s" % (name, "|".join(conds)),
              "closed %s, got %r" % (closed, c.text()[-400:]))
        c.close()
    # a 'from' with quotes and markup in its resource: echoed in our
    # header as 'to' (RFC 6120 §4.7.2), escaped
    c = Conn(w.node.addr, C2S)
    c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
           "streams' to='%s' version='1.0' from=\"alice@%s/a'&lt;b&quot;&gt;\">"
           % (DOMAIN, DOMAIN))
    m = c.expect(r"<stream:stream[^>]*>", what="header with an odd from")
    try:
        to = ET.fromstring(m.group(0) + "</stream:stream>").get("to")
    except ET.ParseError as e:
        to = "not XML: %s" % e
    check(to in (None, "alice@%s/a'<b\">" % DOMAIN),
          "an odd 'from' in the header comes back escaped", m.group(0))
    c.close()
    c = Conn(w.node.addr, C2S)
    c.send("<?xml version='1.0' encoding='UTF-16'?>" + (HDR % DOMAIN).split("?>", 1)[1])
    check(c.wait_closed(60) and "unsupported-encoding" in c.text(),
          "an XML declaration naming UTF-16: unsupported-encoding", c.text()[-300:])
    c.close()
    w.healthy("the header cases")


def test_cdata(w):
    """CDATA is XML 1.0 that RFC 6120 §11.1 does not restrict: the text
    reaches bob as text, and can inject nothing into his stream."""
    a = c2s_bound(w.node, w.ca, "alice", "cd")
    a.send("<message to='bob@%s/b' id='cd1'><body><![CDATA[<presence type='unavailable'/>"
           "&amp;]]></body></message>" % DOMAIN)
    m = w.bob.expect(r"<message[^>]*id='cd1'[^>]*>.*?</message>", what="CDATA message")
    try:
        body = ET.fromstring(m.group(0)).findtext("body")
    except ET.ParseError as e:
        body = "not XML: %s" % e
    check(body == "<presence type='unavailable'/>&amp;", "CDATA reaches bob as text",
          "%r: body %r" % (m.group(0), body))
    a.close()
    w.healthy("CDATA")


def test_header_prefix(w):
    """A prefix (and xml:lang) the client declared on its stream header
    is in scope for its stanzas (XML namespaces); bob's stream has no such
    declaration, so what he gets must carry its own (RFC 6120 §4.8.5):
    his stream stays well-formed."""
    a = c2s_bound(w.node, w.ca, "alice", "px",
                  hdr=(HDR % DOMAIN).replace("version='1.0'>",
                                             "version='1.0' xmlns:foo='urn:foo'>"))
    a.send("<message to='bob@%s/b' id='px1'><foo:x foo:a='1'/><body>px</body></message>"
           % DOMAIN)
    m = w.bob.expect(r"<message[^>]*id='px1'[^>]*>.*?</message>", what="prefixed message")
    try:
        el = ET.fromstring("<r xmlns:stream='http://etherx.jabber.org/streams'>%s</r>"
                           % m.group(0))
        ok = el.find(".//{urn:foo}x") is not None
        why = "no {urn:foo}x"
    except ET.ParseError as e:
        ok, why = False, "not namespace-well-formed: %s" % e
    check(ok, "a prefix bound on the sender's stream header reaches bob bound",
          "%r: %s" % (m.group(0), why))
    a.close()
    w.healthy("a prefix from the stream header")


# ---- 5222: sessions ----------------------------------------------------------

def test_sessions(w):
    node, ca = w.node, w.ca
    # SASL with 1 MB of base64: refused before it is all read
    c = c2s_tls(node, ca)
    c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>" % NS_SASL)
    c.send("QUFB" * (1 << 18))
    closed = c.wait_closed(60)
    check(closed and "policy-violation" in c.text(),
          "SASL with 1 MB of base64: policy-violation", c.text()[-300:])
    c.close()

    # abort loops: auth, abort, auth, ... the stream ends (failures are
    # counted) or goes on answering each; it never takes the node down
    c = c2s_tls(node, ca)
    fails = 0
    for i in range(200):
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth><abort xmlns='%s'/>"
               % (NS_SASL, base64.b64encode(b"n,,n=alice,r=abc%d" % i).decode(), NS_SASL))
        if c.closed:
            break
    c.pump(2)
    fails = c.text().count("<aborted/>")
    check(c.closed or fails > 0, "SASL abort loop: aborted answered or the stream closed",
          c.text()[-300:])
    c.close()

    # a 2 KB resource (RFC 7622 §3.4: at most 1023 bytes): bad-request
    c = c2s_authed(node, ca, "alice")
    c.send("<iq type='set' id='big'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>%s</resource></bind></iq>" % ("r" * 2048))
    m = c.expect(r"<iq[^>]*id='big'.*?</iq>", what="2 KB resource")
    check("type='error'" in m.group(0) and "<bad-request " in m.group(0),
          "a 2 KB resource: bad-request", m.group(0))
    c.close()

    a = c2s_bound(node, ca, "alice", "s")
    # forbidden JID characters (RFC 7622 §3.3.1): jid-malformed
    for to in ("a b@%s" % DOMAIN, "a\"b@%s" % DOMAIN, "@%s" % DOMAIN, "x@" + "d" * 1100,
               "x@%s/" % DOMAIN, "a&amp;b@%s" % DOMAIN, "a&lt;b@%s" % DOMAIN):
        a.send("<message to='%s' id='jm'><body>x</body></message>" % to)
        m = a.expect(r"<message[^>]*id='jm'.*?</message>", what="jid-malformed %s" % to)
        check("<jid-malformed " in m.group(0) or "<item-not-found" in m.group(0)
              or "<service-unavailable" in m.group(0),
              "a message to %r: an error" % to[:40], m.group(0))
    # error stanzas are never answered (RFC 6120 §8.3.1)
    for st in ("<message type='error' id='e1' to='nobody@%s'/>" % DOMAIN,
               "<message type='error' id='e2' to='%s'/>" % DOMAIN,
               "<iq type='error' id='e3' to='nobody@%s'/>" % DOMAIN,
               "<iq type='error' id='e4' to='%s'/>" % DOMAIN,
               "<iq type='result' id='e5' to='%s'/>" % DOMAIN,
               "<presence type='error' to='nobody@%s'/>" % DOMAIN,
               "<message type='error' id='e6' to='alice@%s/s'/>" % DOMAIN,
               "<iq type='error' id='e7' to='cb1.%s'/>" % DOMAIN):
        a.send(st)
    ping(a, None)
    tail = a.text()[a.pos - 400:] if a.pos > 400 else a.text()
    check(not re.search(r"id='e[1-5]'|<presence type='error'", a.text()),
          "error stanzas (and an unasked result) are not answered", tail)
    w.cb1.pump(1)
    got_cb = w.cb1.text()[w.cb1.pos:]
    check("id='e7'" in got_cb, "an iq error to cb1 is relayed, not answered", got_cb)
    # an iq to the domain in an unknown namespace: service-unavailable
    # (RFC 6120 §8.4); a message to the domain: not answered with a loop
    a.send("<iq type='get' id='unk' to='%s'><q xmlns='urn:unknown'/></iq>" % DOMAIN)
    m = a.expect(r"<iq[^>]*id='unk'.*?</iq>", what="unknown namespace")
    check("<service-unavailable " in m.group(0) or "<feature-not-implemented " in m.group(0),
          "an iq in an unknown namespace to the domain: service-unavailable", m.group(0))
    a.send("<iq type='set' id='unk2' to='%s'><q xmlns='urn:unknown'/></iq>" % DOMAIN)
    m = a.expect(r"<iq[^>]*id='unk2'.*?</iq>", what="unknown namespace set")
    check("<service-unavailable " in m.group(0) or "<feature-not-implemented " in m.group(0),
          "an iq set in an unknown namespace to the domain: an error", m.group(0))
    # to oneself, many times: each delivered once
    for i in range(50):
        a.send("<message to='alice@%s/s' id='self%d'><body>x</body></message>" % (DOMAIN, i))
    a.expect(r"id='self49'", what="messages to oneself")
    check(len(re.findall(r"id='self\d+'", a.text())) == 50,
          "50 messages to oneself arrive once each", "")
    a.close()
    w.healthy("the session cases")

    # a presence flood: 20,000 presences; the flooder is slowed, not bob
    f = c2s_bound(node, ca, "carol", "flood")
    f.send("<presence/>" * 20000, timeout=5)
    w.healthy("a presence flood")
    f.close()


def test_more_sessions(w):
    node, ca = w.node, w.ca
    # an id with quotes and entities comes back in the error, escaped
    a = c2s_bound(node, ca, "alice", "m")
    a.send("<iq type='get' id='q&apos;&quot;&lt;&amp;' to='nobody@%s'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>" % DOMAIN)
    m = a.expect(r"<iq[^>]*type='error'.*?</iq>", what="error with an odd id")
    try:
        rid = ET.fromstring(m.group(0)).get("id")
    except ET.ParseError as e:
        rid = "not XML: %s" % e
    check(rid == "q'\"<&", "an id with quotes and entities comes back whole", m.group(0))
    # a message to the domain: not answered in a loop, the stream goes on
    a.send("<message to='%s' id='dm'><body>hi</body></message>" % DOMAIN)
    a.send("<message to='%s' type='error' id='dme'><body>hi</body></message>" % DOMAIN)
    ping(a, None)
    check(a.text().count("id='dm'") <= 1 and "id='dme'" not in a.text(),
          "a message to the domain: at most one answer", a.text()[-400:])
    # directed presence to a component: from the full JID
    a.send("<presence to='cb1.%s' from='admin@%s'/>" % (DOMAIN, DOMAIN))
    m = w.cb1.expect(r"<presence[^>]*to='cb1\.%s'[^>]*/>" % re.escape(DOMAIN),
                     what="presence to cb1")
    check("from='alice@%s/m'" % DOMAIN in m.group(0),
          "directed presence to a component carries the sender's full JID", m.group(0))
    # someone else's account: bob's roster is neither read nor written by
    # alice (RFC 6121 §2.1.5: only the user's own resources), a probe
    # without a subscription reveals nothing (§4.3.2)
    w.bob.send("<iq type='set' id='bobr'><query xmlns='jabber:iq:roster'><item "
               "jid='secret-friend@%s' name='sf'/></query></iq><presence>"
               "<status>bob is here</status></presence>" % DOMAIN)
    w.bob.expect(r"<iq[^>]*id='bobr'", what="bob's roster set")
    a.send("<iq type='get' id='rg' to='bob@%s'><query xmlns='jabber:iq:roster'/></iq>"
           % DOMAIN)
    m = a.expect(r"<iq[^>]*id='rg'.*?(</iq>|/>)", what="roster get of bob")
    check("type='error'" in m.group(0) and "secret-friend" not in m.group(0),
          "alice cannot read bob's roster", m.group(0))
    a.send("<iq type='set' id='rs' to='bob@%s'><query xmlns='jabber:iq:roster'><item "
           "jid='mallory@%s' name='m'/></query></iq>" % (DOMAIN, DOMAIN))
    m = a.expect(r"<iq[^>]*id='rs'.*?(</iq>|/>)", what="roster set of bob")
    w.bob.pump(0.5)
    check("type='error'" in m.group(0) and "mallory" not in w.bob.text()[w.bob.pos:],
          "alice cannot write bob's roster", m.group(0))
    a.send("<presence type='probe' to='bob@%s'/><presence type='probe' to='bob@%s/b'/>"
           % (DOMAIN, DOMAIN))
    ping(a, None)
    a.pump(0.5)
    check("bob is here" not in a.text(), "a probe without a subscription reveals nothing",
          a.text()[-400:])
    # presence of every type to the domain, and a subscription to oneself
    # (RFC 6121 §3): nothing loops; the stream goes on
    before = len(a.got)
    for t in ("", " type='subscribe'", " type='subscribed'", " type='probe'",
              " type='unsubscribe'", " type='unavailable'", " type='bogus'"):
        a.send("<presence to='%s'%s/>" % (DOMAIN, t))
    a.send("<presence type='subscribe' to='alice@%s'/><presence type='subscribed' "
           "to='alice@%s'/><presence/>" % (DOMAIN, DOMAIN))
    ping(a, None)
    a.pump(1)
    ping(a, None)
    check(len(a.got) - before < 20000,
          "presence to the domain and to oneself: no loop (%d bytes back)"
          % (len(a.got) - before), a.text()[-600:])
    # a roster write flood: bounded by the roster's bounds, the node serves
    for i in range(1100):
        a.send("<iq type='set' id='r%d'><query xmlns='jabber:iq:roster'><item "
               "jid='u%d@%s'/></query></iq>" % (i, i, DOMAIN))
    a.expect(r"id='r1099'", timeout=120, what="the last roster set")
    check("<resource-constraint " in a.text() or "<not-allowed " in a.text()
          or "<policy-violation " in a.text(),
          "past 1000 roster items, a set is refused", a.text()[-300:])
    a.close()
    # a stanza right after SASL success, without the restart (RFC 6120
    # §6.4.6): not taken as bound
    c = c2s_tls(node, ca)
    scram(c, "alice", PASSWORDS["alice"])
    c.send("<iq type='set' id='nb'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
           "<message to='bob@%s/b' id='early'><body>x</body></message>" % DOMAIN)
    c.wait_closed(30)
    w.bob.pump(0.5)
    check("id='early'" not in w.bob.text()[w.bob.pos:] and "<jid>" not in c.text(),
          "stanzas after SASL success without a restart are not served", c.text()[-300:])
    c.close()
    # many resources of one account: 10, the next refused
    conns, refused = [], None
    for i in range(11):
        cc = c2s_authed(node, ca, "erin")
        cc.send("<iq type='set' id='b%d'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>r%d</resource></bind></iq>" % (i, i))
        m = cc.expect(r"<iq[^>]*id='b%d'.*?</iq>" % i, what="bind %d" % i)
        conns.append(cc)
        refused = m.group(0)
    check("<resource-constraint " in refused, "the 11th resource of one account is refused",
          refused)
    for cc in conns:
        cc.close()
    w.healthy("more session cases")


def test_throttle(w, out):
    """12 wrong passwords for dave from 12 connections of one address at
    once, then a right one: refused (blocked, temporary-auth-failure)."""
    src = w.node.addr.rsplit(".", 1)[0] + ".77"
    res = []

    def wrong(i):
        try:
            c = c2s_tls_from(w.node, w.ca, src)
            try:
                scram(c, "dave", "wrong-%d" % i)
                res.append("success")
            except AssertionError:
                res.append("failure" if "<failure" in c.text() else "other: " + c.text()[-200:])
            c.close()
        except AssertionError as e:
            res.append("error: %s" % e)
    ts = [threading.Thread(target=wrong, args=(i,), daemon=True) for i in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    c = c2s_tls_from(w.node, w.ca, src)
    try:
        scram(c, "dave", PASSWORDS["dave"])
        last = "success"
    except AssertionError:
        last = c.text()[-300:]
    c.close()
    out["throttle"] = (res, last)


# ---- slowloris ---------------------------------------------------------------

def test_trickle(w, out):
    """A header one byte a second before auth, on 5222, 5223 and 5280:
    each closed by its timeout (auth, handshake, HTTP request)."""
    conns = [("c2s", Conn(w.node.addr, C2S), (HDR % DOMAIN).encode()),
             ("comp", Conn(w.node.addr, COMP), (COMP_HDR % ("cb1." + DOMAIN)).encode()),
             ("http", Conn(w.node.addr, WS_PORT),
              b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100)]
    t0 = time.monotonic()
    for i in range(200):
        if all(c.closed for _, c, _ in conns) or time.monotonic() - t0 > 90:
            break
        for _, c, data in conns:
            if not c.closed:
                c.send(data[i:i + 1])
        time.sleep(1.0)
        for _, c, _ in conns:
            c.pump(0.01)
    for name, c, _ in conns:
        out["trickle-" + name] = (c.closed, c.text())
        c.close()


def test_no_reader(w):
    """carol never reads while alice sends her 60 KB messages (the byte
    rate off, so that this takes seconds): carol's queue is bounded and
    her connection closed; alice stays, bob is served all along."""
    node, ca = w.node, w.ca
    node.ok("xmpp client rate off")
    carol = c2s_bound(node, ca, "carol", "deaf")
    a = c2s_bound(node, ca, "alice", "talk")
    msg = "<message to='carol@%s/deaf'><body>%s</body></message>" % (DOMAIN, "y" * 60000)
    sent = 0
    while sent < 1000 and not a.closed:
        a.send(msg, timeout=30)
        sent += 1
        if sent % 50 == 0 and "write queue full" in node.log():
            break
    full = node.wait_log(r"write queue full", timeout=60)
    # her bytes, then the end: EOF (or a reset)
    carol.sock.setblocking(True)
    carol.sock.settimeout(60)
    try:
        while carol.sock.recv(1 << 20):
            pass
        carol.closed = True
    except (socket.timeout, ssl.SSLError, OSError) as e:
        carol.closed = not isinstance(e, socket.timeout)
    check(carol.closed, "a client that never reads is closed once its queue is full "
          "(%d messages of 60 KB sent)" % sent, full)
    check(not a.closed, "the sender to a client that never reads stays", a.text()[-300:])
    node.ok("xmpp client rate 65536")
    a.close()
    carol.close()
    w.healthy("a client that never reads")


def test_half_close(w):
    c = Conn(w.node.addr, C2S)
    c.send(HDR % DOMAIN)
    c.expect(r"</stream:features>", what="half-close")
    c.sock.shutdown(socket.SHUT_WR)
    check(c.wait_closed(60), "a half-closed connection is closed", c.text()[-300:])
    c.close()


# ---- 5223: components --------------------------------------------------------

def test_components(w):
    node = w.node
    # a wrong handshake: not-authorized
    c = Conn(node.addr, COMP)
    c.send(COMP_HDR % ("cb2." + DOMAIN))
    c.expect(r"<stream:stream[^>]* id='", what="cb2 header")
    c.send("<handshake>%s</handshake>" % ("0" * 40))
    check(c.wait_closed(60) and "not-authorized" in c.text(),
          "a wrong handshake: not-authorized", c.text()[-300:])
    c.close()
    # a handshake replayed on another stream (another id): not-authorized
    first = Conn(node.addr, COMP)
    first.send(COMP_HDR % ("cb2." + DOMAIN))
    sid = first.expect(r"<stream:stream[^>]* id='([^']+)'", what="cb2 id").group(1)
    hs = hashlib.sha1((sid + w.secret2).encode()).hexdigest()
    first.send("<handshake>%s</handshake>" % hs)
    first.expect(r"<handshake/>", what="cb2 handshake")
    again = Conn(node.addr, COMP)
    again.send(COMP_HDR % ("cb2." + DOMAIN))
    again.expect(r"<stream:stream[^>]* id='", what="cb2 again")
    again.send("<handshake>%s</handshake>" % hs)
    check(again.wait_closed(60) and "not-authorized" in again.text(),
          "a replayed handshake: not-authorized", again.text()[-300:])
    check(not first.closed, "the first cb2 stays after the replay", first.text()[-300:])
    # two components of one name: the newer wins, the older gets conflict
    second = comp_conn(node, "cb2", w.secret2)
    check(first.wait_closed(60) and "<conflict " in first.text(),
          "two components cb2: the older gets conflict", first.text()[-300:])
    ping(second, "cb2." + DOMAIN)
    # a 'from' outside its domain
    second.send("<message from='bob@%s/b' to='cb1.%s' id='forge'><body>x</body></message>"
                % (DOMAIN, DOMAIN))
    second.send("<message from='cb1.%s' to='bob@%s/b' id='forge2'><body>x</body></message>"
                % (DOMAIN, DOMAIN))
    second.pump(1)
    w.cb1.pump(0.5)
    w.bob.pump(0.5)
    forged = "forge" in w.cb1.text()[w.cb1.pos:] or "forge2" in w.bob.text()[w.bob.pos:]
    check(not forged and ("invalid-from" in second.text() or "forbidden" in second.text()),
          "a component's 'from' outside its domain is refused (invalid-from)",
          second.text()[-400:])
    first.close()
    second.close()
    # a stanza before the handshake: not-authorized, nothing routed
    c = Conn(node.addr, COMP)
    c.send(COMP_HDR % ("cb2." + DOMAIN))
    c.expect(r"<stream:stream[^>]* id='", what="cb2 header")
    c.send("<message from='cb2.%s' to='bob@%s/b' id='pre'><body>x</body></message>"
           % (DOMAIN, DOMAIN))
    check(c.wait_closed(60) and "not-authorized" in c.text(),
          "a component's stanza before its handshake: not-authorized", c.text()[-300:])
    c.close()
    # a second handshake once authenticated: refused, not a new login
    c = comp_conn(node, "cb2", w.secret2)
    c.send("<handshake>%s</handshake>" % ("0" * 40))
    c.pump(1)
    if not c.closed:
        ping(c, "cb2." + DOMAIN)
    check(c.text().count("<handshake/>") == 1,
          "a second handshake is not answered as a login", c.text()[-300:])
    c.close()
    w.bob.pump(0.5)
    check("id='pre'" not in w.bob.text()[w.bob.pos:], "nothing from before a handshake "
          "reaches bob", w.bob.text()[w.bob.pos:])
    w.healthy("the component cases")


# ---- 5280/5281 ---------------------------------------------------------------

def test_websocket(w):
    node, ca = w.node, w.ca
    # a huge HTTP head: refused, closed
    for port, ctx in ((WS_PORT, None), (WSS_PORT, ca)):
        c = Conn(node.addr, port)
        if ctx:
            c.starttls(tls_ctx(ca), name=node.addr)
        c.send("GET /xmpp-websocket HTTP/1.1\r\nX: " + "a" * (1 << 20))
        check(c.wait_closed(60), "a 1 MB HTTP head on %d: closed" % port, c.text()[:200])
        c.close()
    open_ = ("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>"
             % DOMAIN)
    cases = [
        ("an unmasked frame", frame(1, open_.encode(), mask=False), (1002,)),
        ("a frame of 2^62 bytes", frame(1, b"", length=1 << 62) + b"<open" * 1000,
         (1009, 1002)),
        ("a binary frame", frame(2, open_.encode()), (1003, 1002, 1007)),
        ("invalid UTF-8 in a text frame", frame(1, b"<open \xff\xfe/>"), (1007,)),
        # RFC 6455 §5.5, §7.1.7: the connection is failed; the close
        # frame may carry 1002 or no code (0 here), as wslay sends it
        ("a ping of 200 bytes", frame(9, b"x" * 200), (1002, 0)),
        ("a fragmented ping", frame(9, b"x", fin=False), (1002, 0)),
        ("a continuation with nothing to continue", frame(0, b"x"), (1002,)),
        ("an unknown opcode", frame(3, b"x"), (1002,)),
        ("a DTD in a frame", frame(1, b"<!DOCTYPE x [<!ENTITY a 'a'>]>"), (1000, 1002, 1007, 1008)),
        ("two elements in one frame",
         frame(1, (open_ + "<message/>").encode()), (1000, 1002, 1007, 1008)),
    ]
    for name, data, codes in cases:
        c = ws_open(node, ca)
        c.send(data)
        # answer the node's close at once (RFC 6455 §5.5.1), so that it need
        # not wait for its close timeout
        deadline = time.monotonic() + 30
        while ws_close_code(c) is None and not c.closed and time.monotonic() < deadline:
            c.pump(0.1)
        code = ws_close_code(c)
        if code is not None and not c.closed:
            c.send(frame(8, struct.pack("!H", 1000)))
        closed = c.wait_closed(30)
        check(closed and code in codes, "wss: %s: close %s" % (name, codes),
              "closed %s, code %s, got %r" % (closed, code, c.got[-300:]))
        c.close()
    w.healthy("the WebSocket cases")


def test_ws_xmpp(w):
    """After a WebSocket login: a forged 'from' in every namespace form, a
    stanza in no namespace, restricted XML, an <open/> again."""
    node, ca = w.node, w.ca
    ws = ws_login(node, ca, "alice", "ws")
    forms = [
        "<message xmlns='jabber:client' to='bob@%s/b' from='bob@%s/x' id='wf1'>"
        "<body>1</body></message>",
        "<message to='bob@%s/b' from='bob@%s/x' id='wf2'><body>2</body></message>",
        "<c:message xmlns:c='jabber:client' to='bob@%s/b' from='bob@%s/x' id='wf3'>"
        "<c:body>3</c:body></c:message>",
    ]
    for f in forms:
        ws.send(f % (DOMAIN, DOMAIN))
    ws.send("<iq xmlns='jabber:client' type='get' id='wsp' to='%s'><ping "
            "xmlns='urn:xmpp:ping'/></iq>" % DOMAIN)
    ws.expect(r"id='wsp'|id=\"wsp\"", "ws ping after the forms")
    w.bob.pump(1)
    got = w.bob.text()[w.bob.pos:]
    for m in re.finditer(r"<message[^>]*id='(wf\d)'[^>]*>", got):
        check("from='alice@%s/ws'" % DOMAIN in m.group(0),
              "over WebSocket, %s reaches bob from alice" % m.group(1), m.group(0))
    check("from='bob@%s/x'" % DOMAIN not in got, "no forged 'from' reaches bob over ws", got)
    ws.c.close()
    for ns, cond in (("jabber:server", "invalid-namespace"),
                     ("jabber:component:accept", "invalid-namespace"),
                     ("urn:unknown", "")):
        ws = ws_login(node, ca, "alice", "ws")
        ws.send("<message xmlns='%s' to='bob@%s/b' from='bob@%s/x' id='wf4'/>"
                % (ns, DOMAIN, DOMAIN))
        nxt = ws.next(30)
        check(nxt is not None and "<stream:error" in nxt and cond in nxt,
              "over WebSocket, a message in %s: a stream error %s" % (ns, cond), repr(nxt))
        ws.c.close()
    w.bob.pump(0.5)
    check("id='wf4'" not in w.bob.text()[w.bob.pos:],
          "nothing in another namespace reaches bob", w.bob.text()[w.bob.pos:])
    ws = ws_login(node, ca, "alice", "ws")
    ws.send("<message xmlns='jabber:client' to='bob@%s/b'><!-- c --></message>" % DOMAIN)
    nxt = ws.next(30)
    check(nxt is not None and "restricted-xml" in nxt,
          "over WebSocket, a comment: restricted-xml", repr(nxt))
    ws.c.close()
    ws = ws_login(node, ca, "alice", "ws2")
    ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>"
            % DOMAIN)
    nxt = ws.next(30)
    ws.send("<iq xmlns='jabber:client' type='set' id='wb2'><bind "
            "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>zz</resource></bind></iq>")
    later = [ws.next(10) for _ in range(3)]
    check(not any(x and "<jid>" in x for x in later),
          "over WebSocket, an <open/> after bind binds nothing again",
          "%r %r" % (nxt, later))
    ws.c.close()
    w.healthy("XMPP over WebSocket")


# ---- 5224 ----------------------------------------------------------------------

def test_peer(w, tmp):
    node = w.node
    # plaintext
    c = Conn(node.addr, PEER)
    c.send(b"HELLO I AM A PEER\r\n" * 100)
    check(c.wait_closed(60) and b"HELLO" not in c.got,
          "plaintext on the peer port: closed", c.got[:200])
    c.close()
    # TLS without a client certificate, and with one from another CA
    other = os.path.join(tmp, "other-ca")
    make_ca(other, cn="Attacker CA")
    make_node_cert(other, "evil", node.addr)
    for what, cert in (("no client certificate", None),
                       ("an untrusted certificate", "evil")):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(os.path.join(other, cert + ".crt"),
                                os.path.join(other, cert + ".key"))
        raw = socket.create_connection((node.addr, PEER), timeout=60)
        got, refused = b"", False
        try:
            s = ctx.wrap_socket(raw)
            s.sendall(b"\x00\x00\x00\x10" + b"x" * 16)
            while True:
                d = s.recv(65536)
                if not d:
                    refused = True
                    break
                got += d
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError):
            refused = True
        raw.close()
        check(refused and got == b"", "peer port, %s: refused, nothing sent" % what,
              repr(got[:200]))
    w.healthy("the peer-port cases")


def main():
    with Cluster(1) as c:
        node = c.form()
        c.wait_serving(node)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for user, pw in PASSWORDS.items():
            node.ok("xmpp user add %s" % user, stdin=pw + "\n")
        secret = c.add_callbridge("cb1")
        secret2 = c.add_callbridge("cb2")
        wait_for(lambda: all(u in node.ok("xmpp user list") for u in PASSWORDS), 60,
                 "the accounts")
        w = World(c, node, ca, secret)
        w.secret2 = secret2
        c.say("bob and cb1 are on; the slowloris starts")
        out = {}
        trickle = threading.Thread(target=test_trickle, args=(w, out), daemon=True)
        trickle.start()
        throttle = threading.Thread(target=test_throttle, args=(w, out), daemon=True)
        throttle.start()
        only = os.environ.get("ATTACK_ONLY")
        for name, fn in (("xml", test_xml), ("cdata", test_cdata),
                         ("prefix", test_header_prefix),
                         ("sessions", test_sessions),
                         ("more", test_more_sessions), ("components", test_components),
                         ("websocket", test_websocket), ("ws-xmpp", test_ws_xmpp),
                         ("peer", lambda w: test_peer(w, c.base)),
                         ("half-close", test_half_close), ("no-reader", test_no_reader)):
            if only and name not in only.split(","):
                continue
            c.say("case group: %s", name)
            try:
                fn(w)
            except AssertionError as e:
                check(False, "case group %s ran to its end" % name, str(e))
        trickle.join(120)
        throttle.join(180)
        res, last = out.get("throttle", ([], ""))
        check(len(res) == 12 and all(r == "failure" for r in res)
              and "temporary-auth-failure" in last,
              "12 wrong passwords at once from one address: the right one is then "
              "refused with temporary-auth-failure", "%s; last %r" % (res, last))
        for name, want in (("c2s", "connection-timeout"), ("comp", "connection-timeout"),
                           ("http", "408")):
            closed, txt = out.get("trickle-" + name, (False, ""))
            check(closed and want in txt,
                  "%s: a request trickled a byte a second: closed, %s" % (name, want),
                  txt[-300:])
        w.healthy("everything")
        # Nothing left spinning: over 3 s with only bob and cb1 connected
        # and quiet, the node uses well under a core (a spin takes all).
        t0, c0 = time.monotonic(), cpu_s(node.proc.pid)
        time.sleep(3)
        used = (cpu_s(node.proc.pid) - c0) / (time.monotonic() - t0)
        check(used < 0.5, "after the attacks the node is idle (%.0f%% of a core)" % (used * 100))
        c.say("the node's largest resident memory: %d KB", w.max_rss)
        if check.failures:
            raise AssertionError("%d cases failed: %s" % (len(check.failures),
                                                           "; ".join(check.failures)))


if __name__ == "__main__":
    run(main, timeout=600)
