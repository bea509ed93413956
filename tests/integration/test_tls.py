#!/usr/bin/env python3
"""test_tls: component TLS on a real xmppd (docs/tls.md).

Certificates come from certs/mkca and certs/mknode in a temporary directory.
With `certs` in xmppd.conf the component port offers direct TLS (optional):
a libstrophe component (xcomp --tls) connects over TLS with the node's
certificate verified against the CA and exchanges messages with a plaintext
component; a component that trusts another CA fails; `openssl s_client
-tls1` (TLS 1.0 only) is refused and the node logs why.  With
`component-tls required` a plaintext component is refused (and logged) and
a TLS one still works."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import DOMAIN, Comp, Node, check, conf_text, run  # noqa: E402

SRC = os.environ.get("XMPPD_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CBS = {"cb1": "s3cret-one", "cb2": "s3cret-two"}


def sh(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), p.returncode,
                                                      p.stderr))


def make_pki(d):
    """CA 1 with the node's certificate, CA 2 trusted by nobody."""
    certs = os.path.join(SRC, "certs")
    sh(os.path.join(certs, "mkca"), d, "Test CA")
    # Call bridges check the certificate against their own component name
    # (cb1.example.com): the wildcard SAN covers every call bridge.
    sh(os.path.join(certs, "mknode"), d, "node1", "--domain", DOMAIN,
       "--dns", "*." + DOMAIN, "--ip", "127.0.0.1")
    sh(os.path.join(certs, "mkca"), os.path.join(d, "other"), "Other CA")


def tls_node(pki, extra):
    node = Node(callbridges=CBS)
    pdir = os.path.join(node.dir, "pki")
    os.makedirs(pdir, mode=0o700, exist_ok=True)
    for f in ("node1.key", "node1.crt", "ca.crt"):
        shutil.copy(os.path.join(pki, f), pdir)
    node.write_conf(conf_text(node.domain, node.port, node.callbridges,
                              "certs node1.key node1.crt ca.crt\n" + extra))
    return node


def s_client(node, *args):
    """openssl s_client against the node; returns (exit status, output)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % node.port]
                       + list(args), input="", capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout + p.stderr


def exchange(node, ca, a_args, b_args):
    """cb1 and cb2 send 3 messages each way; a_args/b_args pick TLS."""
    with Comp(node, "cb1", CBS["cb1"], "--to", "cb2." + DOMAIN, "--send", "3",
              "--expect", "3", "--go-on-stdin", *a_args) as a:
        a.wait_line("^connected")
        with Comp(node, "cb2", CBS["cb2"], "--to", "cb1." + DOMAIN, "--send", "3",
                  "--expect", "3", "--go-on-stdin", *b_args) as b:
            b.wait_line("^connected")
            a.go()
            b.go()
            for me in (a, b):
                rc = me.finish(60)
                check(rc == 0, "%s exited %d:\n%s" % (me.jid, rc, me.output()))
                check("received messages=3 in_order=yes" in me.output(), me.output())
            return a.output(), b.output()


def optional_mode(pki):
    ca = os.path.join(pki, "ca.crt")
    with tls_node(pki, "") as node:
        node.start()
        node.wait_log(r"listening on 127\.0\.0\.1:%d, TLS optional" % node.port)

        # TLS and plaintext side by side on the same port.
        a, b = exchange(node, ca, ["--tls", "--ca", ca], [])
        check("connected jid=cb1.%s secured=yes" % DOMAIN in a, a)
        check("secured=yes" not in b, b)
        node.wait_log(r"TLS with 127\.0\.0\.1:\d+ established: TLSv1\.3")

        # A call bridge that does not trust our CA fails, and we log why.
        with Comp(node, "cb1", CBS["cb1"], "--tls", "--ca",
                  os.path.join(pki, "other", "ca.crt")) as c:
            rc = c.finish(60)
            check(rc == 1, "untrusting client exited %d:\n%s" % (rc, c.output()))
            check("tls-failed" in c.output(), c.output())
        node.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed: "
                      r"peer rejected our certificate \(alert: tlsv1 alert unknown ca\)")

        # TLS 1.0 only: refused, with the reason in the log.
        rc, out = s_client(node, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0")
        check(rc != 0, "s_client -tls1 was not refused:\n" + out)
        check("CONNECTED" in out, "s_client did not reach the node:\n" + out)
        node.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed: "
                      r"peer offered only TLS 1\.0 \(TLS 1\.2 or 1\.3 required\)")

        # TLS 1.2 gets an ECDHE AEAD suite and a chain that verifies.
        rc, out = s_client(node, "-tls1_2", "-CAfile", ca, "-verify_return_error",
                           "-verify_hostname", DOMAIN)
        check(rc == 0, "s_client -tls1_2 failed:\n" + out)
        check("Verify return code: 0 (ok)" in out, out)
        check("Cipher is ECDHE-" in out and ("GCM" in out or "CHACHA20" in out), out)
        check(node.stop() == 0, "xmppd did not exit 0")


def required_mode(pki):
    ca = os.path.join(pki, "ca.crt")
    with tls_node(pki, "component-tls required\n") as node:
        node.start()
        node.wait_log(r"TLS required")
        with Comp(node, "cb2", CBS["cb2"]) as c:
            rc = c.finish(60)
            check(rc == 1, "plaintext component was not refused (%d):\n%s"
                  % (rc, c.output()))
        node.wait_log(r"closed connection from 127\.0\.0\.1:\d+: plaintext XML on a "
                      r"port that requires TLS")
        exchange(node, ca, ["--tls", "--ca", ca], ["--tls", "--ca", ca])
        check(node.stop() == 0, "xmppd did not exit 0")


def main():
    pki = tempfile.mkdtemp(prefix="xmppd-tls-")
    try:
        make_pki(pki)
        optional_mode(pki)
        required_mode(pki)
    finally:
        shutil.rmtree(pki, ignore_errors=True)


run(main, timeout=240)
