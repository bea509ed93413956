#!/usr/bin/env python3
"""The client listener's settings (docs/admin.md
"Clients"), through the real mmp-cli on one real xmppd:

 - defaults in `xmpp status`: port 5222, TLS required, SASL PLAIN off, no
   direct-TLS port; without a certificate, TLS required means no client
   listener, and status says why;
 - `xmpp client port`, `xmpp tls client`, `xmpp sasl plain`, `xmpp client
   tls-port` take effect at once (the port accepts TCP, `off` closes it)
   and survive a restart (node.state);
 - bad values are refused with a one-line reason and change nothing;
 - `xmpp tls` still sets the component listeners only.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import wait_for  # noqa: E402
from xmppdtest import unwrap, Node, check, free_port, run, run_mmp, tcp_connects  # noqa: E402


def mmp(node, command, json_out=False):
    return run_mmp(os.path.join(node.dir, "control.sock"), command, json_out=json_out)


def ok(node, command):
    rc, out, err = mmp(node, command)
    check(rc == 0, "%r failed (%d): %s" % (command, rc, err))
    return out


def fails(node, command, needle):
    rc, out, err = mmp(node, command)
    check(rc != 0 and needle in err, "%r: expected a failure with %r, got %d %r %r"
          % (command, needle, rc, out, err))


def clients(node):
    rc, out, err = mmp(node, "xmpp status", json_out=True)
    check(rc == 0, "xmpp status: %s" % err)
    return unwrap(json.loads(out))["clients"]


def main():
    with Node(callbridges={"cb1": "s3cret"}) as node:
        node.start()
        c = clients(node)
        check(c["port"] == 5222 and c["tls_port"] == 0 and c["tls"] == "required"
              and c["sasl_plain"] is False, "defaults: %r" % c)
        # No certificate: nobody could log in with TLS required.
        check(c["listening"] is False and "certificate" in c.get("error", ""),
              "no certificate, TLS required: %r" % c)

        port = free_port()
        out = ok(node, "xmpp client port %d" % port)
        check("Port: %d" % port in out, out)
        check(not tcp_connects(port), "listening on %d without a certificate" % port)
        ok(node, "xmpp tls client optional")
        wait_for(lambda: tcp_connects(port), 60, "the client port %d" % port)
        ok(node, "xmpp sasl plain on")
        c = clients(node)
        check(c == {"port": port, "tls_port": 0, "tls": "optional", "sasl_plain": True,
                    "max_sessions": 10, "rate": 65536, "version": False,
                    "listening": True}, "after the changes: %r" % c)
        # The component listener is untouched by all of it.
        check(tcp_connects(node.port), "the component port %d" % node.port)

        # Refusals change nothing.
        fails(node, "xmpp client port 70000", "is not a port")
        fails(node, "xmpp client port 0", "is not a port")
        fails(node, "xmpp tls client off", "required or optional")
        fails(node, "xmpp sasl plain maybe", "must be on or off")
        fails(node, "xmpp client tls-port x", "is not a port")
        check(clients(node)["port"] == port, "a refused change changed the port")

        # A direct-TLS port needs a certificate: refused to open, said so,
        # the STARTTLS port stays.
        tls_port = free_port()
        ok(node, "xmpp client tls-port %d" % tls_port)
        c = clients(node)
        check(c["tls_port"] == tls_port and "direct-TLS" in c.get("error", "")
              and c["listening"] is True, "direct TLS without a certificate: %r" % c)
        check(not tcp_connects(tls_port), "direct-TLS port open without a certificate")
        ok(node, "xmpp client tls-port off")

        # Kept across a restart.
        check(node.stop() == 0, "xmppd did not exit 0")
        node.start()
        wait_for(lambda: tcp_connects(port), 60, "the client port after a restart")
        c = clients(node)
        check(c["port"] == port and c["tls"] == "optional" and c["sasl_plain"] is True
              and c["tls_port"] == 0, "after a restart: %r" % c)

        # off closes the client listener.
        ok(node, "xmpp client port off")
        wait_for(lambda: not tcp_connects(port), 60, "the client port closed")
        check(clients(node)["listening"] is False, "off: %r" % clients(node))
        check(node.stop() == 0, "xmppd did not exit 0")


if __name__ == "__main__":
    run(main, timeout=120)
