#!/usr/bin/env python3
"""test_admin: a real xmppd with an empty state dir, driven only through the
real mmp-cli binary (-c, and --json for scripts), as an admin would: set the
domain, listeners and certificates (made with certs/), add call bridges,
enable; a libstrophe component (tools/xcomp) connects with the printed
secret (and another over TLS, verifying the node against the certs/ CA); xmpp status and callbridge list show it; callbridge del disconnects
it; disable and reset.  Every error path gives one line on stderr and a
non-zero exit.

AdminNode is shared with test_persistence.py."""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import (unwrap, Comp, certs_dir, check, read_text, run, run_mmp,  # noqa: E402
                       sanitizer_report, unix_connects, wait_started, xmppd_bin)

DOMAIN = "example.com"
SECRET_RX = re.compile(r"^[a-z2-7]{4}(-[a-z2-7]{4}){7}$")


def loopback():
    """A loopback address of its own (the whole 127/8 is local), so the
    default port 5223 is free whatever else runs on the machine."""
    return "127.%d.%d.%d" % (random.randint(64, 250), random.randint(1, 250),
                             random.randint(2, 250))


class AdminNode:
    """One xmppd with only --state-dir, and mmp-cli against its socket."""

    def __init__(self, name="n1", state_dir=None):
        self.name = name
        self.base = tempfile.mkdtemp(prefix="xmppd-admin-")
        self.dir = state_dir or os.path.join(self.base, "state")
        self.log_path = os.path.join(self.base, "xmppd-%s.log" % name)
        self.sock = os.path.join(self.dir, "control.sock")
        self.domain = DOMAIN
        self.port = 5223
        self.proc = None
        self.logf = None

    def start(self, wait=True, timeout=60):
        if self.logf is None:
            self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [xmppd_bin(), "--state-dir", self.dir, "--name", self.name,
             "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60):
        wait_started(self.proc, lambda: unix_connects(self.sock), timeout,
                     lambda: "xmppd exited with %d at start:\n%s"
                     % (self.proc.returncode, self.log()),
                     lambda: "no control socket after %ss:\n%s" % (timeout, self.log()))

    def stop(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)

    def log(self):
        return read_text(self.log_path)

    def mmp(self, command, json_out=False, stdin=None, timeout=40):
        """Runs mmp-cli -c command; returns (exit status, stdout, stderr)."""
        return run_mmp(self.sock, command, json_out, stdin, timeout)

    def ok(self, command, stdin=None):
        rc, out, err = self.mmp(command, stdin=stdin)
        check(rc == 0, "%r failed (%d): %s%s" % (command, rc, err, self.log()[-3000:]))
        return out

    def json(self, command):
        rc, out, err = self.mmp(command, json_out=True)
        check(rc == 0, "%r failed (%d): %s" % (command, rc, err))
        return unwrap(json.loads(out))

    def fails(self, command, needle, code=1, stdin=None):
        """The command fails with exit code and one stderr line holding
        needle."""
        rc, out, err = self.mmp(command, stdin=stdin)
        lines = err.splitlines()
        check(rc == code, "%r: exit %d, wanted %d: %s" % (command, rc, code, err))
        check(len(lines) == 1, "%r: not one line on stderr: %r" % (command, err))
        check(needle in err, "%r: %r not in %r" % (command, needle, err))
        return err

    def close(self):
        self.kill()
        if self.logf is not None:
            self.logf.close()
            self.logf = None
        if os.environ.get("XMPPD_KEEP_TMP"):
            print("kept", self.base)
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- %s log ----\n%s\n" % (self.name, self.log()))
        else:
            log = self.log()
            if sanitizer_report(log):
                self.close()
                raise AssertionError("sanitizer report:\n" + log)
        self.close()
        return False


def make_pki(node, addr=None):
    """A CA and node1/node2 certificates from certs/, copied into the node's
    pki directory.  node1's names addr, the node's peer address (`xmpp
    cluster enable` checks it)."""
    ca = os.path.join(node.base, "ca")

    def sh(*argv):
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "%s failed: %s" % (argv, p.stderr))

    sh(os.path.join(certs_dir(), "mkca"), ca, "Admin Test CA")
    # Call bridges check the certificate against their component name
    # (cb2.example.com): the wildcard SAN covers every call bridge.
    sh(os.path.join(certs_dir(), "mknode"), ca, "node1", "--domain", DOMAIN, "--dns",
       "*." + DOMAIN, "--ip", "127.0.0.1", *(("--ip", addr) if addr else ()))
    sh(os.path.join(certs_dir(), "mknode"), ca, "node2", "--domain", DOMAIN)
    sh(os.path.join(certs_dir(), "mkbundle"), ca, "node1")
    pki = os.path.join(node.dir, "pki")
    for f in ("node1.key", "node1.crt", "node2.key", "ca-bundle.pem"):
        shutil.copy(os.path.join(ca, f), os.path.join(pki, f))
        os.chmod(os.path.join(pki, f), 0o600)


def can_connect(host, port):
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def main():
    with AdminNode() as node:
        addr = loopback()
        node.start()
        st = node.json("xmpp status")
        check(st["enabled"] is False and st.get("domain") is None, str(st))
        check(re.match(r"^[0-9a-f]{16}$", st["node_id"]) is not None, str(st))
        first_id = st["node_id"]

        # Error paths: one line, non-zero exit.
        node.fails("xmpp enable", "no XMPP domain is set")
        node.fails("xmpp domain not_a_domain!", "is not a domain name", code=2)
        node.fails("xmpp listen 192.0.2.77", "not an address of this host")
        node.fails("xmpp listen nosuchif0", "no interface")
        node.fails("xmpp callbridge del nope", "no call bridge nope")
        node.fails("xmpp callbridge add 'bad name'", "letters, digits", code=2)
        node.fails("xmpp reset", "add --yes", code=2)
        node.fails("xmpp certs missing.key missing.crt", "missing")
        rc, out, err = node.mmp("xmpp enable", json_out=True)
        check(rc == 1 and json.loads(out)["error"]["code"] == "state", out + err)

        # Configure.
        make_pki(node, addr)
        node.fails("xmpp certs node2.key node1.crt ca-bundle.pem", "does not belong")
        # RFC 7622 §3.2 preparation: case
        # and a trailing dot are normalised, an internationalized name taken
        # in its U-label form, an A-label converted to it.
        node.ok("xmpp domain B\u00fccher.Example.")
        check(node.json("xmpp status")["domain"] == "b\u00fccher.example", "IDN domain")
        node.ok("xmpp domain xn--bcher-kva.example")
        check(node.json("xmpp status")["domain"] == "b\u00fccher.example", "A-label domain")
        node.fails("xmpp domain bad_name.example", "labels of letters, digits", code=2)
        node.ok("xmpp domain EXAMPLE.com.")
        check(node.json("xmpp status")["domain"] == DOMAIN, "EXAMPLE.com. is example.com")
        out = node.ok("xmpp listen " + addr)
        check(addr + ":5223" in out, out)
        out = node.ok("xmpp certs node1.key node1.crt ca-bundle.pem")
        check("CN=node1" in out, out)
        out = node.ok("xmpp callbridge add cb1")
        m = re.search(r"^Secret: (\S+)$", out, re.M)
        check(m is not None, out)
        secret = m.group(1)
        check(SECRET_RX.match(secret) is not None, "secret form: " + secret)
        node.fails("xmpp callbridge add cb1", "already exists")
        node.ok("xmpp callbridge add-secret cb2", stdin="brought-secret-2\n")
        lst = node.json("xmpp callbridge list")["callbridges"]
        byname = {c["name"]: c for c in lst}
        check(set(byname) == {"cb1", "cb2"}, str(lst))
        # A list never shows a secret: a fingerprint, and
        # show-secret on purpose.
        check("secret" not in byname["cb1"] and byname["cb1"]["domain"] == "cb1." + DOMAIN
              and re.match(r"^[0-9a-f]{16}$", byname["cb1"]["fingerprint"]), str(lst))
        check(secret not in node.ok("xmpp callbridge list"), "the list shows the secret")
        # Whether a secret is set and when (issue 13 item 8): RFC 3339 and
        # an age in seconds in --json, both in the text.
        for name in ("cb1", "cb2"):
            cb = byname[name]
            check(cb.get("secret_set") is True
                  and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$",
                               cb.get("secret_set_at") or "")
                  and isinstance(cb.get("secret_age_seconds"), int)
                  and 0 <= cb["secret_age_seconds"] < 600, str(cb))
        text = node.ok("xmpp callbridge list")
        check("Secret set (age)" in text and re.search(
            r"(?m)^cb1 .* %s \(\d+[smhd]\)$" % re.escape(byname["cb1"]["secret_set_at"]),
            text), text)
        check(node.json("xmpp callbridge show-secret cb1")["secret"] == secret,
              "show-secret cb1")
        check(node.ok("xmpp callbridge show-secret cb2") == "Secret: brought-secret-2\n",
              "show-secret cb2")
        node.fails("xmpp callbridge show-secret nosuch", "no call bridge nosuch")
        check(not can_connect(addr, 5223), "listening before xmpp enable")

        # A key that stopped matching its certificate (replaced on disk after
        # xmpp certs) is caught at enable time, with the reason.
        pki = os.path.join(node.dir, "pki")
        os.rename(os.path.join(pki, "node1.key"), os.path.join(pki, "node1.key.good"))
        shutil.copy(os.path.join(pki, "node2.key"), os.path.join(pki, "node1.key"))
        node.fails("xmpp enable", "does not belong")
        check(not can_connect(addr, 5223), "listening after a refused enable")
        os.replace(os.path.join(pki, "node1.key.good"), os.path.join(pki, "node1.key"))

        # Enable and serve.
        node.ok("xmpp enable")
        st = node.json("xmpp status")
        check(st["enabled"] and st["serving"] and st["domain"] == DOMAIN, str(st))
        check(st["listen"] == [addr + ":5223"], str(st))
        check(st["certificate"]["subject"] == "CN=node1", str(st))
        check(st["certificate"]["not_after"].endswith("Z"), str(st))
        with Comp(node, "cb1", secret, "--host", addr, "--stay") as c:
            c.wait_line("^connected")
            st = node.json("xmpp status")
            check(st["sessions"]["components"] == 1, str(st))
            lst = {x["name"]: x for x in node.json("xmpp callbridge list")["callbridges"]}
            check(lst["cb1"]["connected"] is True and lst["cb2"]["connected"] is False,
                  str(lst))
            out = node.ok("xmpp callbridge list")
            check(re.search(r"cb1\s+cb1\.example\.com\s+\S+\s+yes", out) is not None, out)
            # Deleting the call bridge disconnects it.
            out = node.ok("xmpp callbridge del cb1")
            check(re.match(r"^Call bridge cb1 deleted; 1 session closed", out), out)
            c.wait_line("^disconnected", 60)
        with Comp(node, "cb1", secret, "--host", addr) as c:
            check(c.finish(60) == 1, "deleted cb1 accepted:\n" + c.output())
        with Comp(node, "cb2", "brought-secret-2", "--host", addr) as c:
            check(c.finish(60) == 0, "cb2 refused:\n" + c.output())
        # Over TLS, the node's certificate verified against the certs/ CA.
        bundle = os.path.join(node.dir, "pki", "ca-bundle.pem")
        with Comp(node, "cb2", "brought-secret-2", "--host", addr, "--tls", "--ca",
                  bundle) as c:
            check(c.finish(60) == 0, "cb2 over TLS refused:\n" + c.output())
            check("secured=yes" in c.output(), c.output())

        # Every command that changes something says what it did: one line,
        # and the same facts in --json.
        node.ok("xmpp callbridge add-secret cb3", stdin="brought-secret-3\n")
        j = node.json("xmpp callbridge del cb3")
        check(j == {"name": "cb3", "sessions_closed": 0}, str(j))

        # Disable: the listeners go, the control socket stays.
        out = node.ok("xmpp disable")
        check(re.match(r"^XMPP disabled: closed 0 component and 0 client session\(s\) and "
                       r"the listener\(s\) %s:5223$" % re.escape(addr), out), out)
        check(not can_connect(addr, 5223), "still listening after xmpp disable")
        st = node.json("xmpp status")
        check(st["enabled"] is False and st["serving"] is False, str(st))
        j = node.json("xmpp disable")
        check(j["was_serving"] is False and j["enabled"] is False and
              j["listen_closed"] == [], str(j))
        node.ok("xmpp enable")
        check(can_connect(addr, 5223), "not listening after enable again")
        j = node.json("xmpp disable")
        check(j["was_serving"] is True and j["listen_closed"] == [addr + ":5223"] and
              j["components_closed"] == 0 and j["clients_closed"] == 0, str(j))
        node.ok("xmpp enable")

        # The cluster commands, on a one-node cluster.
        out = node.ok("xmpp cluster trust ca-bundle.pem")
        check(re.match(r"^Cluster peers are now checked against ca-bundle\.pem \(/\S+\); ",
                       out), out)
        j = node.json("xmpp cluster trust ca-bundle.pem")
        check(j["trust"] == "ca-bundle.pem" and j["path"].endswith("ca-bundle.pem") and
              "peer_link_restarted" in j, str(j))
        node.ok("xmpp cluster enable")
        j = node.json("xmpp cluster initialize")
        node_id = node.json("xmpp status")["node_id"]
        check(re.match(r"^[0-9a-f]{16}$", j.get("cluster_id", "")) and
              j.get("members") == [{"node_id": node_id, "address": addr + ":5224"}], str(j))
        out = node.ok("xmpp cluster initialize")
        check(re.match(r"^one-node cluster \(already initialized\): cluster %s, 1 member: "
                       r"node %s at %s:5224$" % (j["cluster_id"], node_id, re.escape(addr)),
                       out), out)
        out = node.ok("xmpp cluster disable")
        check(re.match(r"^clustering disabled; this node was alone, no member was removed "
                       r"\(cluster %s\)$" % j["cluster_id"], out), out)
        node.ok("xmpp cluster enable")
        d = node.json("xmpp cluster disable")
        check(d["clustering"] == "disabled" and d["left"] is False and
              d["cluster_id"] == j["cluster_id"] and d["leadership_transferred"] is False,
              str(d))

        # Reset: a new node id, nothing configured, XMPP off.
        node.ok("xmpp reset --yes")
        st = node.json("xmpp status")
        check(st["node_id"] != first_id and not st["enabled"] and st.get("domain") is None
              and st["listen"] == [] and st["certificate"] is None, str(st))
        check(node.json("xmpp callbridge list")["callbridges"] == [], "call bridges kept")
        check(not can_connect(addr, 5223), "listening after reset")
        node.fails("xmpp enable", "no XMPP domain is set")

        check(node.stop() == 0, "xmppd did not exit 0")
        log = node.log()
        for s in (secret, "brought-secret-2", "brought-secret-3"):
            check(s not in log, "a secret reached the log")


if __name__ == "__main__":
    run(main, timeout=240)
