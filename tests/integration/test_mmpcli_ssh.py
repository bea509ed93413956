#!/usr/bin/env python3
"""test_mmpcli_ssh: mmp-cli as an admin account's login shell behind a real
sshd on a loopback port: `ssh admin@node 'xmpp callbridge list'` runs one
command, and an interactive session reaches the `<hostname>> ` prompt.

Needs root (it adds a throwaway user whose shell is mmp-cli, removed at the
end) and sshd/ssh; without them it prints "skipped" and passes.  The
stand-in daemon (tests/io/tools/ctl_testd) runs as that user, since the
control socket is 0600.  Everything it starts is stopped by pid."""
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

BUILD = os.environ.get("XMPPD_BUILD_DIR",
                       os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build")))
MMP = os.path.join(BUILD, "mmp-cli", "mmp-cli")
TESTD = os.path.join(BUILD, "tests", "io", "ctl_testd")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH = shutil.which("ssh")
TIMEOUT = 20
failures = 0


def check(cond, what, detail=""):
    global failures
    if cond:
        print("ok   " + what)
    else:
        failures += 1
        print("FAIL " + what + (("\n     " + str(detail).replace("\n", "\n     ")) if detail else ""))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
    for b in (MMP, TESTD):
        if not os.path.exists(b):
            print("missing %s: build the mmp-cli and ctl_testd targets" % b)
            return 1
    try:
        pwd.getpwnam("sshd")  # sshd's privilege-separation user
    except KeyError:
        print("skipped: no sshd user for privilege separation")
        return 0
    if not readable_by_all(MMP):
        print("skipped: %s is not reachable by other users" % MMP)
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
        pki = os.path.join(state, "pki")
        os.makedirs(pki)
        for p in (state, pki):
            os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(p, 0o700)
        sock = os.path.join(state, "control.sock")

        # The stand-in daemon, as the admin user (the socket is 0600).
        daemon = subprocess.Popen([TESTD, "--socket", sock, "--pki", pki],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, user=pw.pw_uid, group=pw.pw_gid)
        procs.append(daemon)
        check(daemon.stdout.readline().strip() == "ready", "stand-in daemon is ready")

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

        # One command, as `ssh admin@node 'cmd'` (sshd runs: mmp-cli -c 'cmd').
        p = subprocess.run(ssh + ["xmpp callbridge add cb1"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        check(p.returncode == 0 and "Secret: " in p.stdout, "ssh 'xmpp callbridge add cb1'",
              p.stdout + p.stderr + open(os.path.join(d, "sshd.log")).read())
        p = subprocess.run(ssh + ["xmpp callbridge list"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        check(p.returncode == 0 and "cb1" in p.stdout, "ssh 'xmpp callbridge list'",
              p.stdout + p.stderr)
        p = subprocess.run(ssh + ["xmpp callbridge del nope"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        check(p.returncode == 1 and "no call bridge" in p.stderr,
              "a failing command's status and error line come through ssh", p.stderr)
        p = subprocess.run(ssh + ["xmpp callbridge add-secret cb2"], input="over-ssh\n",
                           capture_output=True, text=True, timeout=TIMEOUT)
        check(p.returncode == 0, "add-secret reads stdin through ssh", p.stderr)

        # An interactive session reaches the prompt.
        host = socket.gethostname()
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(SSH, ssh[:1] + ["-tt"] + ssh[1:])
        out = b""
        try:
            end = time.time() + TIMEOUT
            while (host + "> ").encode() not in out and time.time() < end:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            check((host + "> ").encode() in out, "interactive ssh reaches the prompt", out)
            os.write(fd, b"xmpp callbridge list\r")
            end = time.time() + TIMEOUT
            while b"over-ssh" not in out and time.time() < end:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            check(b"over-ssh" in out, "a command at the ssh prompt", out)
            os.write(fd, b"exit\r")
            deadline = time.time() + TIMEOUT
            status = None
            while time.time() < deadline:
                wpid, st = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    status = st
                    break
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
    print("all passed" if failures == 0 else "%d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
