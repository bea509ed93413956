#!/usr/bin/env python3
"""test_attack_conn_flood: idle connections that never log in, from
enough addresses to fill `max-connections` (12 here; 4,096 from 32
addresses by default), renewed as soon as the node closes one (at its
auth timeout).  A call bridge must still connect and authenticate: at
the limit the node closes the oldest connection that has not logged in
(stream error resource-constraint, RFC 6120 §4.9.3.17) to make room,
where it refused every newcomer before.  An authenticated call bridge is
never closed so; the per-address limit still refuses at once."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import COMP_HDR, Conn, IdleFlood  # noqa: E402
from cluster import wait_for  # noqa: E402
from xmppdtest import Node, check, conf_text, run  # noqa: E402

CBS = {"cb1": "s3cret-one", "cb2": "s3cret-two"}
MAX, PER_ADDR = 12, 8
SRCS = ["127.0.0.%d" % i for i in (2, 3)]  # 2 x 6 idle connections fill MAX


def component(node, name):
    """A component login on a raw socket; returns the Conn once
    authenticated, or None when the node closed it first."""
    c = Conn("127.0.0.1", node.port)
    c.send(COMP_HDR % ("%s.%s" % (name, node.domain)))
    try:
        sid = c.expect(r"<stream:stream[^>]* id='([^']+)'", timeout=30, what=name).group(1)
        c.send("<handshake>%s</handshake>"
               % hashlib.sha1((sid + CBS[name]).encode()).hexdigest())
        c.expect(r"<handshake/>", timeout=30, what=name)
        return c
    except AssertionError:
        c.close()
        return None


def main():
    extra = "max-connections %d\nmax-connections-per-address %d\n" % (MAX, PER_ADDR)
    with Node(callbridges=CBS) as node:
        node.write_conf(conf_text(node.domain, node.port, CBS, extra))
        node.start()
        cb1 = component(node, "cb1")
        check(cb1 is not None, "cb1 logs in before the flood")
        with IdleFlood([(src, "127.0.0.1", node.port) for src in SRCS
                        for _ in range(MAX // len(SRCS))]) as f:
            wait_for(lambda: f.opened >= MAX, 60, "the flood's connections")
            node.wait_log(r"refused: %d connections open \(max-connections %d\)|"
                          r"resource-constraint: closed to make room" % (MAX, MAX))
            # cb2 gets in (a few tries: the flood reopens what is closed)
            cb2 = None
            for i in range(5):
                cb2 = component(node, "cb2")
                if cb2 is not None:
                    print("cb2 logged in at attempt %d (%d flood connections so far)"
                          % (i + 1, f.opened), flush=True)
                    break
            check(cb2 is not None, "cb2 logs in while idle connections fill "
                  "max-connections:\n%s" % node.log()[-2000:])
            # cb1, logged in, was never the one closed to make room
            cb1.send("<iq type='get' id='alive' from='cb1.%s' to='%s'><ping "
                     "xmlns='urn:xmpp:ping'/></iq>" % (node.domain, node.domain))
            cb1.expect(r"id='alive'", what="cb1 after the flood")
            check(not cb1.closed, "cb1 stays")


if __name__ == "__main__":
    run(main, timeout=300)
