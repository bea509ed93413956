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


def mmp_bin():
    if os.environ.get("XMPPD_MMP_BIN"):
        return os.environ["XMPPD_MMP_BIN"]
    return os.path.join(os.environ["XMPPD_BUILD_DIR"], "mmp-cli", "mmp-cli")


def source_dir():
    if os.environ.get("XMPPD_SOURCE_DIR"):
        return os.environ["XMPPD_SOURCE_DIR"]
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def certs_dir():
    return os.path.join(source_dir(), "certs")


def run_mmp(sock, command, json_out=False, stdin=None, timeout=40, catch_timeout=False):
    """Runs mmp-cli --socket sock [--json] -c command; returns (exit status,
    stdout, stderr).  A timeout raises subprocess.TimeoutExpired, or with
    catch_timeout gives (124, "", a message)."""
    argv = [mmp_bin(), "--socket", sock]
    if json_out:
        argv.append("--json")
    argv += ["-c", command]
    try:
        p = subprocess.run(argv, input=stdin if stdin is not None else "",
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if not catch_timeout:
            raise
        return 124, "", "mmp-cli timed out after %ss" % timeout
    return p.returncode, p.stdout, p.stderr


def read_text(path):
    """The text of the file at path ("" when it cannot be read)."""
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def find_log_line(read, pattern, timeout, interval=0.05):
    """Polls read() (a log's text) until a line matches regex pattern;
    returns that line, or None after timeout seconds (the last look is made
    after the deadline)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in read().splitlines():
            if rx.search(line):
                return line
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def unix_connects(path):
    """True when a connection to the unix socket at path succeeds."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            s.connect(path)
            return True
    except OSError:
        return False


def tcp_connects(port, host="127.0.0.1"):
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), 0.2):
            return True
    except OSError:
        return False


def wait_started(proc, ready, timeout, exited, absent):
    """Polls ready() until it is true.  Raises AssertionError(exited()) when
    proc ends first, AssertionError(absent()) after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(exited())
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(absent())


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_report(log):
    """True when log holds a sanitizer report (ASan, LSan, UBSan)."""
    return any(marker in log for marker in SANITIZER_MARKERS)


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

    def start(self, wait=True, timeout=60):
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [xmppd_bin(), "--state-dir", self.dir, "--name", self.name,
             "--log-level", self.log_level],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_port(timeout)
        return self

    def wait_port(self, timeout=60):
        wait_started(self.proc, lambda: tcp_connects(self.port), timeout,
                     lambda: "xmppd exited with %d at start:\n%s"
                     % (self.proc.returncode, self.log()),
                     lambda: "xmppd did not listen on port %d in %ss" % (self.port, timeout))

    def wait_exit(self, timeout=60):
        """Waits for the process to end; returns its exit status."""
        return self.proc.wait(timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, pattern, text=None, mode=0o600):
        """Writes xmppd.conf (as write_conf), sends SIGHUP and waits for a
        log line matching regex pattern; returns it."""
        self.write_conf(text, mode)
        self.signal(signal.SIGHUP)
        return self.wait_log(pattern)

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self):
        return read_text(self.log_path)

    def wait_log(self, pattern, timeout=60):
        """Waits until the log has a line matching regex pattern."""
        line = find_log_line(self.log, pattern, timeout)
        if line is None:
            raise AssertionError("no log line matches %r; log:\n%s" % (pattern, self.log()))
        return line

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            # Not at once on a loaded machine: a process in fsync (the Raft
            # store) ends only when the disk lets it return.
            self.proc.wait(60)
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
        if sanitizer_report(log):
            raise AssertionError("sanitizer report in the %s log:\n%s" % (self.name, log))


class LineProc:
    """Base of a child process (self.proc, text pipes) whose stdout a thread
    reads line by line: _start_reader() once self.proc is set."""

    def _start_reader(self):
        self.lines = []
        self.q = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def _match(self, pattern, timeout):
        """The first output line matching regex pattern, waiting up to
        timeout seconds for more; None when none comes (or output ends)."""
        rx = re.compile(pattern)
        for line in self.lines:
            if rx.search(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.q.put(None)
                return None
            self.lines.append(line)
            if rx.search(line):
                return line

    def go(self):
        """Releases a component started with --go-on-stdin."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self


class Comp(LineProc):
    """One xcomp process (a libstrophe component) with line-wise output."""

    def __init__(self, node, name, secret, *args, timeout=300):
        # timeout: xcomp's whole life (--timeout), also with --stay: long,
        # since a test may hold a component through many slow steps.
        self.jid = "%s.%s" % (name, node.domain)
        cmd = [tool("xcomp"), "--port", str(node.port), "--jid", self.jid,
               "--secret", secret, "--timeout", str(timeout)] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._start_reader()

    def wait_line(self, pattern, timeout=60):
        """Waits for an output line matching regex pattern; returns it."""
        line = self._match(pattern, timeout)
        if line is None:
            raise AssertionError("%s: no line matches %r; got:\n%s"
                                 % (self.jid, pattern, "\n".join(self.lines)))
        return line

    def finish(self, timeout=60):
        """Waits for exit; collects all output; returns the exit status."""
        rc = self.proc.wait(timeout)
        self.reader.join(30)
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

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- %s output ----\n%s\n" % (self.jid, self.output()))
        self.close()
        return False


def unwrap(answer):
    """The data of one `mmp-cli --json` answer, the envelope
    {"ok": true, "data": ...} (docs/control-protocol.md "mmp-cli --json");
    AssertionError with the error when it is {"ok": false, "error": ...}."""
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        raise AssertionError("mmp-cli --json answered an error: %r" % (answer,))
    return answer.get("data", {})


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Tally:
    """A check that goes on after a failure: call it as check(cond, what,
    detail) to print "ok   what" or "FAIL what" (with detail indented);
    failures lists the failed whats."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what, detail=""):
        if cond:
            print("ok   " + what)
        else:
            self.failures.append(what)
            print("FAIL " + what + (("\n     " + str(detail).replace("\n", "\n     "))
                                    if detail else ""))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


# The floor of run()'s hard timeout: a little under CTest's TIMEOUT for the
# integration tests (600 s, tests/integration/CMakeLists.txt), so that a hung
# test still fails here, with its cleanup and its logs, and not by CTest's
# kill.
RUN_TIMEOUT_FLOOR = 540


def run(main, timeout=120):
    """Runs main() under a hard timeout; exits 0 on success, 1 on failure.
    Context managers inside main clean up what it started either way.
    The timeout is a hang detector, not a speed budget: a test on a loaded
    CI machine (2 cores, the ASan build alongside) may take many times its
    usual time, so the timeout is at least RUN_TIMEOUT_FLOOR."""
    name = os.path.basename(sys.argv[0])
    timeout = max(timeout, RUN_TIMEOUT_FLOOR)
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
