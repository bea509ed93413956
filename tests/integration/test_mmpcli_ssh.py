#!/usr/bin/env python3
"""test_mmpcli_ssh: mmp-cli as an admin account's login shell behind a real
sshd on a loopback port: `ssh admin@node 'xmpp callbridge list'` runs one
command, and an interactive session reaches the `<hostname>> ` prompt.

Needs root (it adds a throwaway user whose shell is mmp-cli, removed at the
end) and sshd/ssh; without them it prints "skipped" and passes.  A real
xmppd (--state-dir, empty at start) runs as that user, as docs/admin.md
sets a node up, since the control socket is 0600.  Everything it starts is
stopped by pid."""
import os
import pty
import pwd
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import Tally, free_port  # noqa: E402

BUILD = os.environ.get("XMPPD_BUILD_DIR",
                       os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build")))
MMP = os.path.join(BUILD, "mmp-cli", "mmp-cli")
XMPPD = os.environ.get("XMPPD_BIN") or os.path.join(BUILD, "xmppd", "xmppd")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH = shutil.which("ssh")
TIMEOUT = 60
check = Tally()


def wait_port(port, timeout=TIMEOUT):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def readable_by_all(path):
    """mmp-cli must be reachable by the test user: every directory on the
    way needs o+x and the binary o+rx."""
    p = os.path.abspath(path)
    if not os.stat(p).st_mode & 0o005 == 0o005:
        return False
    p = os.path.dirname(p)
    while p != "/":
        if not os.stat(p).st_mode & 0o001:
            return False
        p = os.path.dirname(p)
    return True


def main():
    if os.geteuid() != 0 or SSH is None or not os.path.exists(SSHD) \
            or shutil.which("useradd") is None:
        print("skipped: needs root, sshd, ssh and useradd")
        return 0
    for b in (MMP, XMPPD):
        if not os.path.exists(b):
            print("missing %s: build the mmp-cli and xmppd targets" % b)
            return 1
    try:
        pwd.getpwnam("sshd")  # sshd's privilege-separation user
    except KeyError:
        print("skipped: no sshd user for privilege separation")
        return 0
    for b in (MMP, XMPPD):
        if not readable_by_all(b):
            print("skipped: %s is not reachable by other users" % b)
            return 0

    user = "mmpadm" + secrets.token_hex(3)
    d = tempfile.mkdtemp(prefix="xmppd-ssh-")
    os.chmod(d, 0o755)
    procs = []
    created = False
    try:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", d, "--shell", MMP,
                        "--password", "*", user], check=True, timeout=TIMEOUT,
                       capture_output=True)
        created = True
        pw = pwd.getpwnam(user)
        state = os.path.join(d, "state")
        os.makedirs(state)
        os.chown(state, pw.pw_uid, pw.pw_gid)
        os.chmod(state, 0o700)
        sock = os.path.join(state, "control.sock")

        # The daemon, as the admin user (the socket is 0600), from an empty
        # state dir.
        logf = open(os.path.join(d, "xmppd.log"), "wb")
        daemon = subprocess.Popen([XMPPD, "--state-dir", state, "--name", "n1"],
                                  stdin=subprocess.DEVNULL, stdout=logf,
                                  stderr=subprocess.STDOUT, user=pw.pw_uid,
                                  group=pw.pw_gid)
        procs.append(daemon)
        end = time.time() + TIMEOUT
        while not os.path.exists(sock) and time.time() < end and daemon.poll() is None:
            time.sleep(0.05)
        check(os.path.exists(sock), "xmppd made its control socket",
              open(os.path.join(d, "xmppd.log")).read())
        check(os.stat(sock).st_uid == pw.pw_uid
              and oct(os.stat(sock).st_mode & 0o777) == "0o600",
              "the socket belongs to the admin user, mode 0600")

        # sshd on a loopback port with its own host key and authorized key.
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        os.path.join(d, "hostkey")], check=True, timeout=TIMEOUT)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        os.path.join(d, "id")], check=True, timeout=TIMEOUT)
        shutil.copy(os.path.join(d, "id.pub"), os.path.join(d, "authorized_keys"))
        os.chmod(os.path.join(d, "authorized_keys"), 0o644)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        port = free_port()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\n"
                    "AuthorizedKeysFile %s\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                    "UsePAM no\nStrictModes no\nAllowUsers %s\nPidFile %s\n"
                    "SetEnv XMPPD_SOCKET=%s\n"
                    % (port, os.path.join(d, "hostkey"), os.path.join(d, "authorized_keys"),
                       user, os.path.join(d, "sshd.pid"), sock))
        sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", cfg], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "sshd.log"), "w"))
        procs.append(sshd)
        check(wait_port(port), "sshd listens on 127.0.0.1:%d" % port)
        ssh = [SSH, "-i", os.path.join(d, "id"), "-p", str(port), "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "%s@127.0.0.1" % user]

        def run_ssh(cmd, stdin=""):
            # "--": ssh would take a leading "--json" for one of its options.
            return subprocess.run(ssh + ["--", cmd], input=stdin, capture_output=True,
                                  text=True, timeout=TIMEOUT)

        # One command, as `ssh admin@node 'cmd'` (sshd runs: mmp-cli -c 'cmd').
        p = run_ssh("xmpp status")
        check(p.returncode == 0 and "Enabled: no" in p.stdout,
              "ssh 'xmpp status'",
              p.stdout + p.stderr + open(os.path.join(d, "sshd.log")).read())
        p = run_ssh("xmpp callbridge add cb1")
        check(p.returncode == 0 and "Secret: " in p.stdout, "ssh 'xmpp callbridge add cb1'",
              p.stdout + p.stderr)
        p = run_ssh("xmpp callbridge list")
        check(p.returncode == 0 and "cb1" in p.stdout, "ssh 'xmpp callbridge list'",
              p.stdout + p.stderr)
        p = run_ssh("--json xmpp callbridge list")
        check(p.returncode == 0 and '"name": "cb1"' in p.stdout,
              "ssh '--json xmpp callbridge list'", p.stdout + p.stderr)
        p = run_ssh("xmpp callbridge del nope")
        check(p.returncode == 1 and "no call bridge" in p.stderr
              and len(p.stderr.strip().splitlines()) == 1,
              "a refused command's status and one error line come through ssh", p.stderr)
        p = run_ssh("xmpp frob")
        check(p.returncode == 2 and "unknown word" in p.stderr,
              "a bad command: exit 2 through ssh", p.stderr)
        p = run_ssh("xmpp reset")
        check(p.returncode == 2 and "--yes" in p.stderr,
              "xmpp reset without a terminal asks for --yes", p.stderr)
        p = run_ssh("xmpp callbridge add-secret cb2", stdin="over-ssh\n")
        check(p.returncode == 0, "add-secret reads stdin through ssh", p.stderr)

        # An interactive session reaches the prompt.
        host = socket.gethostname()
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(SSH, ssh[:1] + ["-tt"] + ssh[1:])
        out = b""
        try:
            def read_until(want, start=0):
                nonlocal out
                end = time.time() + TIMEOUT
                while want not in out[start:] and time.time() < end:
                    r, _, _ = select.select([fd], [], [], 0.2)
                    if r:
                        try:
                            out += os.read(fd, 4096)
                        except OSError:
                            break
                return want in out[start:]

            check(read_until((host + "> ").encode()), "interactive ssh reaches the prompt", out)
            os.write(fd, b"xmpp callbridge add-secret cb3\r")
            check(read_until(b"Secret: "), "add-secret prompts through ssh", out)
            mark = len(out)
            os.write(fd, b"typed-over-ssh\r")
            check(read_until(b"Again: "), "and asks again", out)
            os.write(fd, b"typed-over-ssh\r")
            check(read_until((host + "> ").encode(), mark)
                  and b"typed-over-ssh" not in out[mark:],
                  "the secret is not echoed over ssh", out[mark:])
            mark = len(out)
            os.write(fd, b"xmpp callbridge show-secret cb3\r")
            read_until(b"typed-over-ssh", mark)
            check(b"Secret: typed-over-ssh" in out[mark:],
                  "a command at the ssh prompt: the secret typed without echo was stored",
                  out[mark:])
            mark = len(out)
            os.write(fd, b"xmpp sta\x03")  # Ctrl-C: a fresh prompt, still logged in
            check(read_until((host + "> ").encode(), mark), "Ctrl-C over ssh keeps the session",
                  out[mark:])
            os.write(fd, b"exit\r")
            # A bound, not a timing check: on a loaded machine sshd can take
            # many seconds to tear the session down.  "exit" is typed again
            # every 5 s in case the first one reached the line editor before
            # it had redrawn its prompt after the Ctrl-C.
            deadline = time.time() + 3 * TIMEOUT
            retype = time.time() + 5
            status = None
            while time.time() < deadline:
                wpid, st = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    status = st
                    break
                if time.time() > retype:
                    retype = time.time() + 5
                    try:
                        os.write(fd, b"exit\r")
                    except OSError:
                        pass
                try:
                    r, _, _ = select.select([fd], [], [], 0.2)
                    if r:
                        os.read(fd, 4096)
                except OSError:
                    pass
            check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
                  "exit logs out")
            if status is not None:
                pid = None
        finally:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if created:
            subprocess.run(["userdel", user], capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(d, ignore_errors=True)
    failures = len(check.failures)
    print("all passed" if failures == 0 else "%d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
