"""xmppdtest: shared helpers for the integration tests (python3 stdlib only).

A test starts real xmppd processes on 127.0.0.1 with free ports, each in its
own temporary state directory holding a 0600 xmppd.conf, drives real
libstrophe components through the xcomp tool, and always cleans up what it
started, by pid.  Binaries are found through the environment CTest sets:
XMPPD_BUILD_DIR (xmppd is $XMPPD_BUILD_DIR/xmppd/xmppd, or $XMPPD_BIN) and
XMPPD_TOOLS_DIR (xcomp).

    def main():
        with Node(callbridges={"cb1": "s1"}) as node:
            with Comp(node, "cb1", "s1", "--stay") as c:
                c.wait_line("connected")
    run(main)
"""

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DOMAIN = "example.com"


def xmppd_bin():
    if os.environ.get("XMPPD_BIN"):
        return os.environ["XMPPD_BIN"]
    return os.path.join(os.environ["XMPPD_BUILD_DIR"], "xmppd", "xmppd")


def tool(name):
    return os.path.join(os.environ["XMPPD_TOOLS_DIR"], name)


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conf_text(domain, port, callbridges, extra=""):
    lines = ["# written by xmppdtest", "domain %s" % domain,
             "component-listen 127.0.0.1:%d" % port]
    for name, secret in callbridges.items():
        lines.append("callbridge %s %s" % (name, secret))
    return "\n".join(lines) + "\n" + extra


class Node:
    """One xmppd process in a temporary state directory."""

    def __init__(self, callbridges=None, domain=DOMAIN, name="n1", port=None,
                 log_level="debug", conf=None, mode=0o600):
        self.callbridges = dict(callbridges or {})
        self.domain = domain
        self.name = name
        self.port = port or free_port()
        self.log_level = log_level
        self.dir = tempfile.mkdtemp(prefix="xmppd-test-")
        self.conf_path = os.path.join(self.dir, "xmppd.conf")
        self.log_path = os.path.join(self.dir, "xmppd.log")
        self.proc = None
        self.write_conf(conf, mode)

    def write_conf(self, text=None, mode=0o600):
        """Writes xmppd.conf (from self.callbridges unless text is given)."""
        if text is None:
            text = conf_text(self.domain, self.port, self.callbridges)
        tmp = self.conf_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, self.conf_path)

    def start(self, wait=True, timeout=30):
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [xmppd_bin(), "--state-dir", self.dir, "--name", self.name,
             "--log-level", self.log_level],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_port(timeout)
        return self

    def wait_port(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("xmppd exited with %d at start:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("xmppd did not listen on port %d in %ss"
                             % (self.port, timeout))

    def wait_exit(self, timeout=30):
        """Waits for the process to end; returns its exit status."""
        return self.proc.wait(timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=30):
        """Waits until the log has a line matching regex pattern."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if rx.search(line):
                    return line
            time.sleep(0.05)
        raise AssertionError("no log line matches %r; log:\n%s"
                             % (pattern, self.log()))

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if getattr(self, "logf", None):
            self.logf.close()
        if os.environ.get("XMPPD_KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- %s log ----\n%s\n" % (self.name, self.log()))
            self.close()
            return False
        self.close_checked()
        return False

    def close_checked(self):
        """Closes; fails when a sanitizer (in an ASan build) reported."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        log = self.log()
        self.close()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:"):
            if marker in log:
                raise AssertionError("sanitizer report in the %s log:\n%s"
                                     % (self.name, log))


class Comp:
    """One xcomp process (a libstrophe component) with line-wise output."""

    def __init__(self, node, name, secret, *args, timeout=60):
        self.jid = "%s.%s" % (name, node.domain)
        cmd = [tool("xcomp"), "--port", str(node.port), "--jid", self.jid,
               "--secret", secret, "--timeout", str(timeout)] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.q = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait_line(self, pattern, timeout=20):
        """Waits for an output line matching regex pattern; returns it."""
        rx = re.compile(pattern)
        for line in self.lines:
            if rx.search(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.q.put(None)
                break
            self.lines.append(line)
            if rx.search(line):
                return line
        raise AssertionError("%s: no line matches %r; got:\n%s"
                             % (self.jid, pattern, "\n".join(self.lines)))

    def go(self):
        """Releases a component started with --go-on-stdin."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout=60):
        """Waits for exit; collects all output; returns the exit status."""
        rc = self.proc.wait(timeout)
        self.reader.join(5)
        while True:
            try:
                line = self.q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return rc

    def output(self):
        return "\n".join(self.lines)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- %s output ----\n%s\n" % (self.jid, self.output()))
        self.close()
        return False


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run(main, timeout=120):
    """Runs main() under a hard timeout; exits 0 on success, 1 on failure.
    Context managers inside main clean up what it started either way."""
    name = os.path.basename(sys.argv[0])
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        main()
    except _Timeout:
        print("FAIL %s: timed out after %ds" % (name, timeout))
        sys.exit(1)
    except AssertionError as e:
        print("FAIL %s: %s" % (name, e))
        sys.exit(1)
    finally:
        signal.alarm(0)
    print("ok   %s" % name)
    sys.exit(0)
