#!/usr/bin/env python3
"""test_admin_enable: `xmpp enable` refuses a configuration that cannot work,
with the reason on one line and exit status 1, and leaves nothing listening:
no domain; TLS required without a certificate; a key that does not match
its certificate; a key file readable by group or others (also refused by
`xmpp certs`); an expired certificate; a listen address that is no longer
on this host.  Each refusal is checked after the configuration has changed
behind the shell's back (files replaced in pki/, an address removed), since
`xmpp certs` and `xmpp listen` already refuse the same things when they are
given.  A real xmppd from an empty state dir, driven only through mmp-cli.

The expired certificate is made with `openssl ca -startdate/-enddate` (the
OpenSSL 3.0 command line has no -not_after) from the certs/ CA and the
node's own key.  The vanished address needs a network namespace (netns.py,
root); without one that part prints "skipped"."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_admin import AdminNode, can_connect, loopback, make_pki  # noqa: E402
from xmppdtest import check, run, xmppd_bin  # noqa: E402

CA_CONF = """[ca]
default_ca = ca_default
[ca_default]
dir = %(dir)s
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
"""


def make_expired(node):
    """node1-expired.crt: node1.key's public key, CN=node1, signed by the
    test CA, valid in January 2020 only."""
    ca = os.path.join(node.base, "ca")
    work = os.path.join(node.base, "expired")
    os.mkdir(work)
    open(os.path.join(work, "index.txt"), "w").close()
    with open(os.path.join(work, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(work, "ca.cnf")
    with open(conf, "w") as f:
        f.write(CA_CONF % {"dir": work})
    csr = os.path.join(work, "node1.csr")
    out = os.path.join(node.dir, "pki", "node1-expired.crt")
    for argv in (["openssl", "req", "-new", "-key", os.path.join(ca, "node1.key"), "-subj",
                  "/CN=node1", "-out", csr],
                 ["openssl", "ca", "-batch", "-notext", "-config", conf, "-cert",
                  os.path.join(ca, "ca.crt"), "-keyfile", os.path.join(ca, "ca.key"),
                  "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-in",
                  csr, "-out", out]):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "%s: %s" % (" ".join(argv[:2]), p.stderr))
    p = subprocess.run(["openssl", "x509", "-in", out, "-noout", "-checkend", "0"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 1, "the made certificate is not expired: " + p.stdout)


def refused(node, needle, addr, port=5223):
    """xmpp enable fails with needle; XMPP stays off."""
    node.fails("xmpp enable", needle)
    st = node.json("xmpp status")
    check(st["enabled"] is False and st["serving"] is False, str(st))
    check(not can_connect(addr, port), "listening after a refused xmpp enable")


def swap(pki, name, replacement):
    """Puts replacement's bytes under name; returns the way back."""
    path = os.path.join(pki, name)
    os.rename(path, path + ".good")
    shutil.copy(os.path.join(pki, replacement), path)
    return lambda: os.replace(path + ".good", path)


def local_checks():
    with AdminNode() as node:
        addr = loopback()
        node.start()
        pki = os.path.join(node.dir, "pki")

        # No domain.
        refused(node, "no XMPP domain is set; set one with: xmpp domain <domain>", addr)
        node.ok("xmpp domain example.com")
        node.ok("xmpp listen " + addr)

        # TLS required without a certificate.
        node.ok("xmpp tls required")
        refused(node, "TLS is required but no certificate is set", addr)

        make_pki(node)
        make_expired(node)
        # xmpp certs refuses the expired certificate outright ...
        node.fails("xmpp certs node1.key node1-expired.crt", "expired on")
        # ... and a private key that group or others can read, at certs
        # and, when its mode changed afterwards, at enable (one line saying
        # how to fix it) ...
        key = os.path.join(pki, "node1.key")
        os.chmod(key, 0o644)
        want = ("key file %s is readable by group or others (mode 0644): chmod 600 %s" %
                (key, key))
        node.fails("xmpp certs node1.key node1.crt ca-bundle.pem", want)
        os.chmod(key, 0o600)
        node.ok("xmpp certs node1.key node1.crt ca-bundle.pem")
        os.chmod(key, 0o640)
        refused(node, "is readable by group or others (mode 0640): chmod 600 " + key, addr)
        os.chmod(key, 0o600)

        # ... a key replaced on disk afterwards is caught at enable ...
        back = swap(pki, "node1.key", "node2.key")
        refused(node, "does not belong to certificate", addr)
        back()
        # ... and so is a certificate that expired meanwhile (here: replaced
        # by an expired one of the same key).
        back = swap(pki, "node1.crt", "node1-expired.crt")
        refused(node, "expired on 2020-02-01", addr)
        back()
        # A certificate that no longer verifies against its bundle.
        back = swap(pki, "ca-bundle.pem", "node1.crt")
        refused(node, "does not verify", addr)
        back()

        # Everything fixed: enable works, TLS required.
        node.ok("xmpp enable")
        st = node.json("xmpp status")
        check(st["serving"] is True and st["tls"] == "required", str(st))
        check(can_connect(addr, 5223), "not listening after enable")
        node.fails("xmpp tls maybe", "off, optional or required", code=2)
        check(node.stop() == 0, "xmppd did not exit 0")


def address_gone():
    try:
        from netns import Net
    except ImportError as e:
        print("skipped (address gone): %s" % e)
        return
    ok, why = Net.available()
    if not ok:
        print("skipped (address gone): %s" % why)
        return

    class NsNode(AdminNode):
        """An AdminNode whose xmppd runs inside host 1 of net."""

        def start(self, wait=True, timeout=60):
            if self.logf is None:
                self.logf = open(self.log_path, "ab")
            self.proc = self.net.popen(
                1, [xmppd_bin(), "--state-dir", self.dir, "--name", self.name],
                stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
            if wait:
                self.wait_ready(timeout)
            return self

    with Net(1) as net, NsNode() as node:
        node.net = net
        node.start()
        a = net.addr(1)
        node.ok("xmpp domain example.com")
        out = node.ok("xmpp listen %s:5223" % a)
        check(a + ":5223" in out, out)
        # The address goes away while XMPP is off (a DHCP lease ends, an
        # interface is reconfigured).
        net.run(1, ["ip", "addr", "del", a + "/24", "dev", net.ifname(1)], check=True)
        node.fails("xmpp enable", "listen address %s:5223 is not an address of this host" % a)
        st = node.json("xmpp status")
        check(st["enabled"] is False and st["serving"] is False, str(st))
        net.run(1, ["ip", "addr", "add", a + "/24", "dev", net.ifname(1)], check=True)
        node.ok("xmpp enable")
        net.wait_tcp(1, a, 5223, 10)
        check(node.stop() == 0, "xmppd did not exit 0")
        print("ok   address gone")


def main():
    local_checks()
    address_gone()


if __name__ == "__main__":
    run(main, timeout=240)
