#!/usr/bin/env python3
"""test_mmpcli: mmp-cli driven as an admin would, against a real xmppd started
with an empty state dir: through -c (what `ssh admin@node 'cmd'` runs),
--json, commands on stdin, and the interactive prompt in a pseudo-terminal
(the `<hostname>> ` prompt, history, completion, Ctrl-C, `add-secret`
reading the secret without echo, `xmpp reset` asking for confirmation).
Every error is one line on stderr with the documented exit status (0 done,
1 refused by the daemon, 2 bad command, 3 daemon unreachable).

Everything runs in a temporary directory; the daemon and the shells are
stopped by pid at the end (AdminNode of test_admin.py)."""
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_admin import AdminNode, can_connect, loopback, make_pki  # noqa: E402
from xmppdtest import unwrap, Tally, mmp_bin, run  # noqa: E402

TIMEOUT = 60
check = Tally()
failures = check.failures


def shell(node, cmd, *extra, stdin="", env_socket=False):
    """mmp-cli [extra...] -c cmd (cmd None: no -c); stdin is never a tty."""
    env = dict(os.environ)
    env.pop("XMPPD_SOCKET", None)
    argv = [mmp_bin()]
    if env_socket:
        env["XMPPD_SOCKET"] = node.sock
    else:
        argv += ["--socket", node.sock]
    argv += list(extra)
    if cmd is not None:
        argv += ["-c", cmd]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                          timeout=TIMEOUT)


def one_line(p):
    return len(p.stderr.strip().splitlines()) == 1


class Pty:
    """mmp-cli at a prompt on a pseudo-terminal."""

    def __init__(self, node):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["XMPPD_SOCKET"] = node.sock
            os.environ["HOME"] = node.base
            os.environ["TERM"] = "xterm"
            os.execv(mmp_bin(), [mmp_bin()])
        self.out = ""
        self.cursor = 0

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, want, timeout=TIMEOUT):
        """Reads until the output after the cursor holds want; moves the
        cursor past it."""
        end = time.time() + timeout
        while want not in self.out[self.cursor:]:
            left = end - time.time()
            if left <= 0:
                return False
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            self.out += data.decode("utf-8", "replace")
        self.cursor = self.out.index(want, self.cursor) + len(want)
        return True

    def since(self, mark):
        return self.out[mark:]

    def wait_exit(self, timeout=TIMEOUT):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = None
                return status
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    os.read(self.fd, 4096)
                except OSError:
                    pass
        return None

    def close(self):
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        os.close(self.fd)


def one_shot(node, addr, port):
    """-c, --json and stdin, as scripts and `ssh node 'cmd'` use the shell."""
    p = shell(node, "help")
    check(p.returncode == 0 and "xmpp callbridge add <name>" in p.stdout
          and "xmpp tls off|optional|required" in p.stdout, "help lists commands", p.stdout)
    p = shell(node, "help xmpp callbridge add-secret")
    check(p.returncode == 0 and "without echo" in p.stdout, "help <command>")
    p = shell(node, "xmpp status", env_socket=True)
    check(p.returncode == 0 and "Enabled: no" in p.stdout and "Node ID: " in p.stdout
          and "TLS: optional" in p.stdout, "xmpp status (text) through $XMPPD_SOCKET",
          p.stdout + p.stderr)

    p = shell(node, "xmpp callbridge add cb1")
    m = re.search(r"^Secret: (\S+)$", p.stdout, re.M)
    secret = m.group(1) if m else ""
    check(p.returncode == 0 and len(secret.replace("-", "")) >= 26,
          "callbridge add prints a generated secret (>= 128 bits)", p.stdout + p.stderr)
    p = shell(node, "xmpp callbridge add cb1")
    check(p.returncode == 1 and "already exists" in p.stderr and one_line(p),
          "adding it again: one error line, exit 1", p.stderr)
    p = shell(node, "xmpp callbridge add-secret cb2", stdin="brought-secret\n")
    check(p.returncode == 0, "add-secret reads one line from stdin (not a tty)", p.stderr)
    p = shell(node, "xmpp callbridge add-secret cb3", stdin="")
    check(p.returncode == 2 and "no secret on standard input" in p.stderr and one_line(p),
          "add-secret with nothing on stdin", p.stderr)
    p = shell(node, "xmpp callbridge list")
    check(p.returncode == 0 and re.search(r"^Name\s+Domain\s+Secret \(SHA-256, first 8 "
                                          r"bytes\)\s+Connected\s+Secret set \(age\)$",
                                          p.stdout, re.M) is not None
          and re.search(r"(?m)^cb1 .* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+[smhd]\)$",
                        p.stdout) is not None
          and "brought-secret" not in p.stdout and secret not in p.stdout,
          "callbridge list (text table, no secrets)", p.stdout)
    p = shell(node, "xmpp callbridge list", "--json")
    try:
        names = sorted(c["name"] for c in unwrap(json.loads(p.stdout))["callbridges"])
    except (ValueError, KeyError, TypeError):
        names = None
    check(p.returncode == 0 and names == ["cb1", "cb2"], "--json callbridge list", p.stdout)
    p = shell(node, "--json xmpp status")
    check(p.returncode == 0 and unwrap(json.loads(p.stdout))["enabled"] is False,
          "--json as the first word of a -c command", p.stdout)
    p = shell(node, None, "xmpp", "callbridge", "list")
    check(p.returncode == 0 and "cb2" in p.stdout, "command as words after the options")

    # Caught by the shell: nothing sent, exit 2, one line.
    for cmd, needle in (("xmpp callbridge add 'bad name'", "letters, digits"),
                        ("xmpp callbridge add", "missing arguments"),
                        ("xmpp callbridge list extra", "too many arguments"),
                        ("xmpp callbridge", "incomplete command"),
                        ("xmpp frob", "unknown word"),
                        ("frob", "unknown command"),
                        ("xmpp domain not_a_domain!", "not a domain name"),
                        ("xmpp listen 10.0.0.1:99999", "port 1-65535"),
                        ("xmpp listen '[::1'", "addr[:port]"),
                        ("xmpp tls maybe", "off, optional or required"),
                        ("xmpp certs ../etc/key x.crt", "no '/'"),
                        ("pki csr n1 O:Acme", "not understood"),
                        ("xmpp reset", "--yes"),
                        ("xmpp reset --frob", "unknown option"),
                        ("xmpp status 'unclosed", "not closed")):
        p = shell(node, cmd)
        check(p.returncode == 2 and one_line(p) and needle in p.stderr,
              "refused by the shell, exit 2: %s" % cmd, p.stderr)
    p = shell(node, "xmpp tls maybe", "--json")
    check(p.returncode == 2 and json.loads(p.stdout)["error"]["code"] == "invalid-argument",
          "--json: a shell error is JSON on stdout too", p.stdout)

    # Refused by the daemon: exit 1, one line with the reason.
    p = shell(node, "xmpp callbridge del nope")
    check(p.returncode == 1 and "no call bridge nope" in p.stderr and one_line(p),
          "del of a missing name", p.stderr)
    p = shell(node, "xmpp callbridge del nope", "--json")
    err = json.loads(p.stdout) if p.stdout.strip() else {}
    check(p.returncode == 1 and err.get("ok") is False
          and err["error"]["code"] == "not-found", "--json error object", p.stdout)
    p = shell(node, "xmpp enable")
    check(p.returncode == 1 and "xmpp domain" in p.stderr and one_line(p),
          "enable refused without a domain", p.stderr)
    p = shell(node, "xmpp listen 192.0.2.77:5300")
    check(p.returncode == 1 and "not an address of this host" in p.stderr,
          "listen on an address of another host", p.stderr)
    # (xmpp user list was the command the daemon did not serve; it is now.)
    p = shell(node, "xmpp user list")
    check(p.returncode == 0 and "(none)" in p.stdout, "xmpp user list, empty", p.stderr)
    p = shell(node, "xmpp user add ann", stdin="")
    check(p.returncode == 2 and "no secret on standard input" in p.stderr and one_line(p),
          "user add without a password on stdin", p.stderr)
    p = shell(node, "xmpp user add ann extra")
    check(p.returncode == 2 and "one user name" in p.stderr and one_line(p),
          "user add with a second name (a password on the command line)", p.stderr)
    p = shell(node, "xmpp callbridge del cb2")
    check(p.returncode == 0, "callbridge del", p.stderr)

    # Configure and serve, with a port of our own and TLS modes.
    make_pki(node)
    p = shell(node, "xmpp certs node2.key node1.crt ca-bundle.pem")
    check(p.returncode == 1 and "does not belong" in p.stderr and one_line(p),
          "certs with a key of another certificate", p.stderr)
    for cmd, want in (("xmpp domain example.com", "Domain: example.com"),
                      ("xmpp listen %s:%d" % (addr, port), "Listen: %s:%d" % (addr, port)),
                      ("xmpp certs node1.key node1.crt ca-bundle.pem", "Subject: CN=node1"),
                      ("xmpp tls required", "TLS: required"),
                      ("xmpp enable", "Listen: %s:%d" % (addr, port))):
        p = shell(node, cmd)
        check(p.returncode == 0 and want in p.stdout, cmd, p.stdout + p.stderr)
    check(can_connect(addr, port), "listening on the port given to xmpp listen")
    p = shell(node, "xmpp status")
    check("Enabled: yes" in p.stdout and "Serving: yes" in p.stdout
          and "TLS: required" in p.stdout and "Subject: CN=node1" in p.stdout,
          "status after enable", p.stdout)
    p = shell(node, "xmpp tls optional")
    check(p.returncode == 0 and can_connect(addr, port), "xmpp tls while serving", p.stderr)

    # pki through the daemon's handlers.
    p = shell(node, "pki csr node3 CN:node3.example.com subjectAltName:example.com,10.0.0.3")
    check(p.returncode == 0 and "node3.csr" in p.stdout, "pki csr", p.stderr)
    pki = os.path.join(node.dir, "pki")
    v = subprocess.run(["openssl", "req", "-verify", "-noout", "-in",
                        os.path.join(pki, "node3.csr")], capture_output=True, timeout=TIMEOUT)
    check(v.returncode == 0, "pki csr output passes openssl req -verify")
    p = shell(node, "pki list")
    check(p.returncode == 0 and "node3.csr" in p.stdout and "node1.crt" in p.stdout,
          "pki list", p.stdout)
    p = shell(node, "pki inspect node1.crt", "--json")
    check(p.returncode == 0 and "IP:127.0.0.1" in unwrap(json.loads(p.stdout))["sans"],
          "pki inspect --json")
    p = shell(node, "pki verify node1.crt ca-bundle.pem")
    check(p.returncode == 0 and "node1.crt: OK" in p.stdout, "pki verify good")
    p = shell(node, "pki verify node1.crt node1.crt")
    check(p.returncode == 1 and "does not verify" in p.stderr and one_line(p),
          "pki verify bad", p.stderr)

    # The socket: unreachable is exit 3, one line.
    p = subprocess.run([mmp_bin(), "--socket", os.path.join(node.base, "nope.sock"), "-c",
                        "xmpp status"], capture_output=True, text=True, timeout=TIMEOUT)
    check(p.returncode == 3 and "cannot reach xmppd" in p.stderr and one_line(p),
          "unreachable daemon: exit 3", p.stderr)

    # Commands on stdin (not a tty): no prompt, status of the last failure.
    p = shell(node, None, stdin="xmpp status\nxmpp callbridge del nope\nxmpp callbridge list\n")
    check(p.returncode == 1 and "Enabled: yes" in p.stdout and "cb1" in p.stdout
          and "> " not in p.stdout, "commands from stdin", p.stdout + p.stderr)
    return secret


def interactive(node):
    host = socket.gethostname()
    prompt = host + "> "
    t = Pty(node)
    try:
        check(t.expect(prompt), "prompt is <hostname>> ", t.out)
        t.send(b"xmpp callbridge add-secret cb7\r")
        check(t.expect("Secret: "), "add-secret prompts for the secret")
        t.send(b"hush-hush-7\r")
        check(t.expect("Again: "), "and asks again")
        t.send(b"hush-hush-7\r")
        check(t.expect(prompt), "back at the prompt")
        check("hush-hush-7" not in t.out, "the secret was not echoed", t.out)
        t.send(b"xmpp callbridge add-secret cb8\r")
        t.expect("Secret: ")
        t.send(b"one-thing\r")
        t.expect("Again: ")
        t.send(b"another-thing\r")
        check(t.expect("the two secrets differ") and t.expect(prompt),
              "two different secrets are refused, the shell goes on")
        # xmpp user add at a terminal: twice without echo
        t.send(b"xmpp user add Dana\r")
        check(t.expect("Password: "), "user add prompts for the password")
        t.send(b"typed-Pw-4411\r")
        check(t.expect("Again: "), "and asks again")
        t.send(b"typed-Pw-4411\r")
        check(t.expect("User dana added") and t.expect(prompt),
              "the account is added, the name in lower case", t.out[-300:])
        t.send(b"xmpp user passwd dana\r")
        t.expect("Password: ")
        t.send(b"new-Pw-1\r")
        t.expect("Again: ")
        t.send(b"new-Pw-2\r")
        check(t.expect("the two secrets differ") and t.expect(prompt),
              "two different passwords are refused")
        check("typed-Pw-4411" not in t.out and "new-Pw-" not in t.out,
              "no password was echoed", t.out[-400:])
        check([u["name"] for u in node.json("xmpp user list")["users"]] == ["dana"],
              "user list shows dana")
        t.send(b"xmpp callbridge list\r")
        mark = t.cursor
        check(t.expect("cb7") and t.expect(prompt), "list at the prompt shows cb7")
        check("cb8" not in t.since(mark), "cb8 was not added", t.since(mark))
        shown = node.json("xmpp callbridge show-secret cb7")
        check(shown.get("secret") == "hush-hush-7",
              "the secret typed without echo was stored as typed", str(shown))
        # completion of command words
        t.send(b"xmpp callb\t")
        check(t.expect("ridge "), "Tab completes command words", t.out[-200:])
        t.send(b"\t\t")
        check(t.expect("add-secret"), "Tab Tab lists the next words", t.out[-300:])
        t.send(b"\x15")  # ^U: kill the line
        t.send(b"xmpp nonsense\r")
        check(t.expect("unknown word") and t.expect(prompt),
              "an error at the prompt does not end the shell")
        t.send(b"xmpp sta\x03")  # Ctrl-C abandons the line, not the shell
        check(t.expect(prompt), "Ctrl-C gives a fresh prompt")
        t.send(b"xmpp status\r")
        check(t.expect("Enabled: no") and t.expect(prompt),
              "the line after Ctrl-C runs normally")
        ctrl_c_at_any_moment(t, prompt)
        # history: the previous line comes back with the up arrow
        t.send(b"\x1b[A")
        check(t.expect("xmpp status"), "up arrow recalls the last line", t.out[-200:])
        t.send(b"\x15")
        # xmpp reset at a terminal asks; anything but yes changes nothing.
        before = node.json("xmpp status")["node_id"]
        t.send(b"xmpp reset\r")
        check(t.expect("Type yes to go on: "), "xmpp reset asks for confirmation")
        t.send(b"no\r")
        check(t.expect("not confirmed; nothing was changed") and t.expect(prompt),
              "not confirmed")
        check(node.json("xmpp status")["node_id"] == before, "no reset without yes")
        t.send(b"xmpp reset\r")
        t.expect("Type yes to go on: ")
        t.send(b"yes\r")
        check(t.expect("Node ID: ") and t.expect(prompt), "confirmed reset answers")
        st = node.json("xmpp status")
        check(st["node_id"] != before and st["enabled"] is False, "the node was reset")
        t.send(b"exit\r")
        status = t.wait_exit()
        check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
              "exit ends the shell with status 0")
    finally:
        t.close()
    hist_path = os.path.join(node.base, ".mmp-cli_history")
    check(os.path.exists(hist_path), "history is saved in ~/.mmp-cli_history")
    if os.path.exists(hist_path):
        hist = open(hist_path).read()
        # libedit writes blanks as \040
        check("callbridge" in hist and "nonsense" in hist, "history holds the commands",
              hist)
        check("hush-hush-7" not in hist, "the secret is not in the history")
        check("typed-Pw" not in hist, "the password is not in the history")
        check(oct(os.stat(hist_path).st_mode & 0o777) == "0o600", "history is 0600")


def ctrl_c_at_any_moment(t, prompt):
    """Ctrl-C is read by the terminal, not by the shell: the SIGINT can come
    while the line editor is between two reads (echoing what came before
    it), not only while it waits.  Typed text and Ctrl-C in one write, over
    and over, with the text's length varied so the signal lands at
    different moments: every one must give a fresh prompt, and the shell
    must still run the next line."""
    lost = 0
    for i in range(150):
        t.send(b"xmpp callbridge list" [: 1 + i % 20] + b"\x03")
        if not t.expect(prompt, timeout=30):
            lost += 1
            t.send(b"\x15")
            break
    check(lost == 0, "Ctrl-C at any moment of typing gives a fresh prompt",
          t.out[-200:])
    # Ctrl-C at a secret prompt abandons the command, not the shell.
    t.send(b"xmpp callbridge add-secret cb9\r")
    t.expect("Secret: ")
    t.send(b"half-typ\x03")
    check(t.expect(prompt), "Ctrl-C at a secret prompt gives a fresh prompt",
          t.out[-200:])
    t.send(b"xmpp status\r")
    check(t.expect("Enabled: no") and t.expect(prompt),
          "the shell runs the next line after all those Ctrl-Cs", t.out[-200:])


def main():
    with AdminNode() as node:
        node.start()
        addr = loopback()
        port = 5300 + (os.getpid() % 500)
        one_shot(node, addr, port)
        node.ok("xmpp reset --yes")
        interactive(node)
        check(node.stop() == 0, "xmppd exits 0")
        check("hush-hush-7" not in node.log(), "no secret in the daemon's log")
    if failures:
        raise AssertionError("%d checks failed: %s" % (len(failures), "; ".join(failures)))


if __name__ == "__main__":
    run(main, timeout=240)
