#!/usr/bin/env python3
"""test_mmpcli: mmp-cli driven as an admin would, through -c and through the
interactive prompt in a pseudo-terminal, against the real control socket.

The daemon side is tests/io/tools/ctl_testd: the real ctl_server and pki.*
handlers with in-memory fakes of the xmpp.* commands (the daemon wires the
real ones).  Everything runs in a temporary directory; the stand-in daemon is
stopped by pid at the end."""
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("XMPPD_BUILD_DIR",
                       os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build")))
SRC = os.environ.get("XMPPD_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
MMP = os.path.join(BUILD, "mmp-cli", "mmp-cli")
TESTD = os.path.join(BUILD, "tests", "io", "ctl_testd")
TIMEOUT = 20
failures = 0


def check(cond, what, detail=""):
    global failures
    if cond:
        print("ok   " + what)
    else:
        failures += 1
        print("FAIL " + what + (("\n     " + detail.replace("\n", "\n     ")) if detail else ""))


class Shell:
    def __init__(self, sock):
        self.sock = sock

    def run(self, cmd, *extra, stdin=None, env_socket=True):
        env = dict(os.environ)
        env.pop("XMPPD_SOCKET", None)
        argv = [MMP]
        if env_socket:
            env["XMPPD_SOCKET"] = self.sock
        argv += list(extra)
        if cmd is not None:
            argv += ["-c", cmd]
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                           timeout=TIMEOUT)
        return p


def pty_session(sock, hist_home):
    """Spawn mmp-cli on a pty.  Returns (pid, fd)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["XMPPD_SOCKET"] = sock
        os.environ["HOME"] = hist_home
        os.environ["TERM"] = "xterm"
        os.execv(MMP, [MMP])
    return pid, fd


def expect(fd, want, seen, timeout=TIMEOUT):
    """Read from fd until the output after the last match (seen[0] from
    cursor seen[1]) contains want; then move the cursor past it."""
    end = time.time() + timeout
    while want not in seen[0][seen[1]:]:
        left = end - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False
        if not data:
            return False
        seen[0] += data.decode("utf-8", "replace")
    seen[1] = seen[0].index(want, seen[1]) + len(want)
    return True


def main():
    for b in (MMP, TESTD):
        if not os.path.exists(b):
            print("missing %s: build the mmp-cli and ctl_testd targets" % b)
            return 1
    d = tempfile.mkdtemp(prefix="xmppd-mmpcli-")
    daemon = None
    try:
        pki = os.path.join(d, "pki")
        os.mkdir(pki, 0o700)
        for argv in ([os.path.join(SRC, "certs", "mkca"), pki],
                     [os.path.join(SRC, "certs", "mknode"), pki, "node1", "--domain",
                      "example.com", "--ip", "127.0.0.1"],
                     [os.path.join(SRC, "certs", "mknode"), pki, "node2", "--domain",
                      "example.com"],
                     [os.path.join(SRC, "certs", "mkbundle"), pki, "node1"]):
            subprocess.run(argv, check=True, capture_output=True, timeout=TIMEOUT)
        sock = os.path.join(d, "control.sock")
        daemon = subprocess.Popen([TESTD, "--socket", sock, "--pki", pki],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        check(daemon.stdout.readline().strip() == "ready", "stand-in daemon is ready")
        check(oct(os.stat(sock).st_mode & 0o777) == "0o600", "control socket is 0600")
        sh = Shell(sock)

        # ---- -c, as `ssh admin@node 'cmd'` runs it ----
        p = sh.run("help")
        check(p.returncode == 0 and "xmpp callbridge add <name>" in p.stdout, "help lists commands")
        p = sh.run("help xmpp callbridge add-secret")
        check(p.returncode == 0 and "without echo" in p.stdout, "help <command>")
        p = sh.run("xmpp status")
        check(p.returncode == 0 and "Enabled: no" in p.stdout, "xmpp status", p.stdout + p.stderr)

        p = sh.run("xmpp callbridge add cb1")
        secret = ""
        for line in p.stdout.splitlines():
            if line.startswith("Secret: "):
                secret = line[len("Secret: "):]
        check(p.returncode == 0 and len(secret.replace("-", "")) >= 26,
              "callbridge add prints a generated secret (>= 128 bits)", p.stdout + p.stderr)
        p = sh.run("xmpp callbridge add cb1")
        check(p.returncode == 1 and "already exists" in p.stderr
              and len(p.stderr.strip().splitlines()) == 1,
              "adding it again: one error line, exit 1", p.stderr)

        # add-secret reads one line from stdin when it is not a tty
        p = sh.run("xmpp callbridge add-secret cb2", stdin="brought-secret\n")
        check(p.returncode == 0, "add-secret from stdin", p.stderr)
        p = sh.run("xmpp callbridge list")
        check(p.returncode == 0 and "cb1" in p.stdout and "brought-secret" in p.stdout
              and secret in p.stdout, "callbridge list (text)", p.stdout)
        p = sh.run("xmpp callbridge list", "--json")
        try:
            j = json.loads(p.stdout)
            names = sorted(c["name"] for c in j["callbridges"])
        except (ValueError, KeyError, TypeError):
            names = None
        check(p.returncode == 0 and names == ["cb1", "cb2"], "--json callbridge list", p.stdout)
        p = sh.run("--json xmpp status")
        check(p.returncode == 0 and json.loads(p.stdout)["enabled"] is False,
              "--json as the first word of a -c command")

        # argument checks in the shell: nothing sent, exit 2, one line
        for cmd, needle in (("xmpp callbridge add 'bad name'", "letters, digits"),
                            ("xmpp callbridge add", "missing arguments"),
                            ("xmpp callbridge list extra", "too many arguments"),
                            ("xmpp callbridge", "incomplete command"),
                            ("xmpp frob", "unknown word"),
                            ("frob", "unknown command"),
                            ("xmpp domain not_a_domain!", "not a domain name"),
                            ("xmpp certs ../etc/key x.crt", "no '/'"),
                            ("pki csr n1 O:Acme", "not understood"),
                            ("xmpp reset", "--yes")):
            p = sh.run(cmd)
            lines = p.stderr.strip().splitlines()
            check(p.returncode == 2 and len(lines) == 1 and needle in lines[0],
                  "bad command refused in the shell: %s" % cmd, p.stderr)

        p = sh.run("xmpp callbridge del nope")
        check(p.returncode == 1 and "no call bridge" in p.stderr, "del of a missing name")
        p = sh.run("xmpp callbridge del cb2")
        check(p.returncode == 0, "callbridge del")
        p = sh.run("xmpp cluster status")
        check(p.returncode == 1 and "does not serve this command yet" in p.stderr,
              "a command the daemon does not serve", p.stderr)

        # enable is refused with the reason until the configuration works
        p = sh.run("xmpp enable")
        check(p.returncode == 1 and "xmpp domain" in p.stderr, "enable refused without domain")
        p = sh.run("xmpp certs node2.key node1.crt ca-bundle.pem")
        check(p.returncode == 1 and "does not belong" in p.stderr, "certs with a wrong key",
              p.stderr)
        for cmd in ("xmpp domain example.com", "xmpp listen 127.0.0.1",
                    "xmpp certs node1.key node1.crt ca-bundle.pem", "xmpp enable"):
            p = sh.run(cmd)
            check(p.returncode == 0, cmd, p.stderr)
        p = sh.run("xmpp status")
        check("Enabled: yes" in p.stdout and "CN=node1" in p.stdout, "status after enable",
              p.stdout)

        # pki through the real handlers
        p = sh.run("pki csr node3 CN:node3.example.com subjectAltName:example.com,10.0.0.3")
        check(p.returncode == 0 and "node3.csr" in p.stdout, "pki csr", p.stderr)
        v = subprocess.run(["openssl", "req", "-verify", "-noout", "-in",
                            os.path.join(pki, "node3.csr")], capture_output=True, timeout=TIMEOUT)
        check(v.returncode == 0, "pki csr output passes openssl req -verify")
        check(oct(os.stat(os.path.join(pki, "node3.key")).st_mode & 0o777) == "0o600",
              "pki csr key is 0600")
        p = sh.run("pki list")
        check(p.returncode == 0 and "node3.csr" in p.stdout and "node1.crt" in p.stdout,
              "pki list", p.stdout)
        p = sh.run("pki inspect node1.crt", "--json")
        check(p.returncode == 0 and "IP:127.0.0.1" in json.loads(p.stdout)["sans"],
              "pki inspect --json")
        p = sh.run("pki verify node1.crt ca-bundle.pem")
        check(p.returncode == 0 and "OK" in p.stdout, "pki verify good")
        p = sh.run("pki verify node1.crt node2.crt")
        check(p.returncode == 1 and "does not verify" in p.stderr, "pki verify bad")

        # reset with --yes
        p = sh.run("xmpp reset --yes")
        check(p.returncode == 0, "xmpp reset --yes")
        p = sh.run("xmpp callbridge list")
        check("(none)" in p.stdout, "reset wiped the call bridges", p.stdout)

        # the socket: from --socket, and unreachable
        p = sh.run("xmpp status", "--socket", sock, env_socket=False)
        check(p.returncode == 0, "--socket PATH")
        p = sh.run("xmpp status", "--socket", os.path.join(d, "nope.sock"))
        check(p.returncode == 3 and "cannot reach xmppd" in p.stderr
              and len(p.stderr.strip().splitlines()) == 1, "unreachable daemon: exit 3")

        # batch: commands on stdin, not a tty
        p = sh.run(None, stdin="xmpp domain example.org\nxmpp status\n")
        check(p.returncode == 0 and "example.org" in p.stdout, "commands from stdin")

        # ---- the interactive prompt in a pseudo-terminal ----
        host = socket.gethostname()
        pid, fd = pty_session(sock, d)
        seen = ["", 0]
        try:
            check(expect(fd, host + "> ", seen), "prompt is <hostname>> ", seen[0])
            os.write(fd, b"xmpp callbridge add-secret cb7\r")
            check(expect(fd, "Secret: ", seen), "add-secret prompts for the secret")
            os.write(fd, b"hush-hush-7\r")
            check(expect(fd, "Again: ", seen), "and asks again")
            os.write(fd, b"hush-hush-7\r")
            check(expect(fd, host + "> ", seen), "back at the prompt")
            check("hush-hush-7" not in seen[0], "the secret was not echoed", seen[0])
            os.write(fd, b"xmpp callbridge list\r")
            check(expect(fd, "cb7", seen), "list at the prompt shows the new call bridge")
            check(expect(fd, host + "> ", seen), "prompt again")
            # completion of command words
            os.write(fd, b"xmpp callb\t")
            check(expect(fd, "ridge ", seen), "tab completes command words", seen[0])
            os.write(fd, b"\t\t")  # the words that can follow
            check(expect(fd, "add-secret", seen), "tab lists the next words", seen[0])
            os.write(fd, b"\x15")  # ^U: kill the line
            os.write(fd, b"xmpp nonsense\r")
            check(expect(fd, "unknown word", seen), "errors at the prompt do not end the shell")
            check(expect(fd, host + "> ", seen), "prompt after an error")
            os.write(fd, b"xmpp sta\x03")  # Ctrl-C abandons the line, not the shell
            check(expect(fd, host + "> ", seen), "Ctrl-C gives a fresh prompt")
            os.write(fd, b"exit\r")
            _, status = os.waitpid(pid, 0)
            pid = None
            check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "exit ends the shell")
        finally:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
        p = sh.run("xmpp callbridge list")
        check("hush-hush-7" in p.stdout, "the secret typed without echo was stored")
        check(os.path.exists(os.path.join(d, ".mmp-cli_history")), "history is saved")
        hist = open(os.path.join(d, ".mmp-cli_history")).read()
        check("hush-hush-7" not in hist, "the secret is not in the history")
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(d, ignore_errors=True)
    print("all passed" if failures == 0 else "%d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
