#!/usr/bin/env python3
"""test_certs: certs/mkca, mknode and mkbundle make a CA and node
certificates that openssl verifies, with the SANs and key usages asked for.

Runs everything in a temporary directory, removed at the end."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile

SRC = os.environ.get("XMPPD_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CERTS = os.path.join(SRC, "certs")
TIMEOUT = 60
failures = 0


def run(*argv, ok=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT)
    if ok and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr))
    return p


def check(cond, what):
    global failures
    if cond:
        print("ok   " + what)
    else:
        failures += 1
        print("FAIL " + what)


def text(path, *args):
    return run("openssl", "x509", "-in", path, "-noout", *args).stdout


def main():
    d = tempfile.mkdtemp(prefix="xmppd-certs-")
    try:
        run(os.path.join(CERTS, "mkca"), d, "Test CA")
        check(stat.S_IMODE(os.stat(os.path.join(d, "ca.key")).st_mode) == 0o600,
              "ca.key is 0600")
        check("CN = Test CA" in text(os.path.join(d, "ca.crt"), "-subject"), "CA subject")
        p = run(os.path.join(CERTS, "mkca"), d, ok=False)
        check(p.returncode != 0 and "already exists" in p.stderr, "mkca refuses to overwrite")

        run(os.path.join(CERTS, "mknode"), d, "node1", "--domain", "example.com",
            "--ip", "127.0.0.1", "--ip", "::1", "--dns", "node1.example.com")
        run(os.path.join(CERTS, "mknode"), d, "node2", "--domain", "example.com",
            "--ip", "127.0.0.2", "--rsa")
        for n in ("node1", "node2"):
            crt = os.path.join(d, n + ".crt")
            key = os.path.join(d, n + ".key")
            check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, n + ".key is 0600")
            v = run("openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), crt, ok=False)
            check(v.returncode == 0 and v.stdout.strip().endswith("OK"), n + " verifies")
            for purpose in ("sslserver", "sslclient"):
                v = run("openssl", "verify", "-purpose", purpose, "-CAfile",
                        os.path.join(d, "ca.crt"), crt, ok=False)
                check(v.returncode == 0, "%s valid for %s" % (n, purpose))
            # The key matches the certificate: same public key.
            pk1 = run("openssl", "x509", "-in", crt, "-noout", "-pubkey").stdout
            pk2 = run("openssl", "pkey", "-in", key, "-pubout").stdout
            check(pk1 == pk2, n + " key matches certificate")

        san1 = text(os.path.join(d, "node1.crt"), "-ext", "subjectAltName")
        for want in ("DNS:example.com", "DNS:node1", "DNS:node1.example.com",
                     "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"):
            check(want in san1, "node1 SAN has " + want)
        san2 = text(os.path.join(d, "node2.crt"), "-ext", "subjectAltName")
        check("DNS:example.com" in san2 and "IP Address:127.0.0.2" in san2
              and "node1" not in san2, "node2 SANs")
        eku = text(os.path.join(d, "node1.crt"), "-ext", "extendedKeyUsage")
        check("TLS Web Server Authentication" in eku and "TLS Web Client Authentication" in eku,
              "node1 EKU serverAuth+clientAuth")
        check("CN = node1" in text(os.path.join(d, "node1.crt"), "-subject"), "node1 subject")

        # Errors are one clear line and a non-zero exit.
        p = run(os.path.join(CERTS, "mknode"), d, "node3", ok=False)
        check(p.returncode != 0 and "--domain" in p.stderr, "mknode without --domain fails")
        p = run(os.path.join(CERTS, "mknode"), d, "node3", "--domain", "example.com",
                "--ip", "not-an-ip", ok=False)
        check(p.returncode != 0 and "not-an-ip" in p.stderr, "mknode rejects a bad --ip")
        p = run(os.path.join(CERTS, "mknode"), d, "node3", "--domain", "example.com",
                "--days", "0", ok=False)
        check(p.returncode != 0 and "at least 1" in p.stderr,
              "mknode --days 0 is refused (it would make an expired certificate)")
        empty = os.path.join(d, "empty")
        os.mkdir(empty)
        p = run(os.path.join(CERTS, "mknode"), empty, "n", "--domain", "example.com", ok=False)
        check(p.returncode != 0 and "mkca" in p.stderr, "mknode without a CA says to run mkca")

        # Bundles: a second CA added with --add-ca, and a chain file.
        other = os.path.join(d, "other")
        run(os.path.join(CERTS, "mkca"), other, "Other CA")
        run(os.path.join(CERTS, "mkbundle"), d, "node1", "--add-ca", os.path.join(other, "ca.crt"))
        bundle = open(os.path.join(d, "ca-bundle.pem")).read()
        check(bundle.count("BEGIN CERTIFICATE") == 2, "ca-bundle.pem holds both CAs")
        v = run("openssl", "verify", "-CAfile", os.path.join(d, "ca-bundle.pem"),
                os.path.join(d, "node1.crt"), ok=False)
        check(v.returncode == 0, "node1 verifies against ca-bundle.pem")
        chain = open(os.path.join(d, "node1-chain.pem")).read()
        check(chain.count("BEGIN CERTIFICATE") == 2
              and chain.startswith(open(os.path.join(d, "node1.crt")).read()),
              "node1-chain.pem is node cert then CA")
        # A node certificate from another CA does not verify against ours.
        run(os.path.join(CERTS, "mknode"), other, "rogue", "--domain", "example.com")
        v = run("openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"),
                os.path.join(other, "rogue.crt"), ok=False)
        check(v.returncode != 0, "a certificate from another CA does not verify")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("%s" % ("all passed" if failures == 0 else "%d failed" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
