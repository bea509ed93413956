#!/usr/bin/env python3
"""test_key_mode: a key file that became readable by group or others after
`xmpp certs` set it is refused at `xmpp enable` with its own hint: the mode
alone is wrong (chmod 600), the files need not be set again.  After the
chmod the same enable succeeds."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_admin import DOMAIN, AdminNode, loopback, make_pki  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with AdminNode() as node:
        addr = loopback()
        node.start()
        make_pki(node)
        node.ok("xmpp domain " + DOMAIN)
        node.ok("xmpp listen " + addr)
        node.ok("xmpp certs node1.key node1.crt ca-bundle.pem")
        key = os.path.join(node.dir, "pki", "node1.key")
        os.chmod(key, 0o644)
        err = node.fails("xmpp enable", "readable by group or others (mode 0644)")
        check("chmod 600 " + key in err, err)
        check("need not be set again" in err, err)
        check("then xmpp certs" not in err, err)
        os.chmod(key, 0o600)
        node.ok("xmpp enable")
        check(node.json("xmpp status")["serving"], "not serving after the chmod")


run(main, timeout=60)
