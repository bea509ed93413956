"""netns: hosts in network namespaces, and partitions between them, for the
cluster tests (python3 stdlib only; needs root, iproute2 and nftables).

    ok, why = Net.available()
    with Net(3) as net:                      # hosts 1, 2, 3
        p = net.popen(1, ["xmppd", ...])    # runs inside host 1
        net.wait_tcp(2, net.addr(1), 5224, 10)
        net.partition([[1], [2, 3]])        # 1 | 2 3
        net.heal()

Topology.  Net(n) makes n host namespaces <prefix>n1 .. <prefix>n<n> and
one switch namespace <prefix>sw holding a bridge <prefix>br.  Host i has
loopback up and one veth <prefix>h<i> with address 10.77.<run>.<i>/24; its
peer <prefix>p<i> is a port of the bridge.  Nothing is created in the root
namespace (the veth pairs are made directly between the switch and the
hosts), nothing is routed out of the switch, and the addresses exist only
inside these namespaces, so the same 10.77 range in two runs never meets.
The prefix is "xt<pid % 10000><letter>", unique per Net in this process and
checked against the namespaces that exist, so every interface name stays
within the kernel's 15 characters.

Cuts.  Per-port filtering on the bridge: the switch namespace has an
nftables table `bridge xtnet` with a set `cut` of (in-port . out-port) pairs
and one rule on the bridge forward hook that drops, silently, every IPv4 or
IPv6 frame going from one port to the other.  A blocked pair (a, b) is the
pair (<prefix>p<a> . <prefix>p<b>): a's packets leave a and vanish "on the
wire", whatever addresses a uses; no RST and no ICMP come back, the sender's
TCP sees only missing ACKs and retransmits with its usual back-off, and after
heal() the next retransmission gets through, so existing connections recover
(no link goes down).  ARP is not filtered: neighbour entries stay valid and
senders never get EHOSTUNREACH, which keeps the cut silent.  Loopback inside
a host is never cut.  The state is a set of blocked directed pairs; each
change rewrites the whole set in one nft transaction, so a partition takes
effect at once and for all hosts together.

Processes.  popen()/run() go through `ip netns exec`, which execs the
command itself, so Popen.pid is the real pid (usable with freeze/thaw).
close() sends SIGTERM (and SIGCONT, in case the process is frozen) to every
process started here, SIGKILL after a grace period, then SIGKILL to anything
else still inside the namespaces, then deletes the namespaces, which
deletes the veths and the bridge.  close() also runs from atexit and from a
SIGTERM/SIGHUP handler; and a small watchdog process in its own session
holds a pipe from this one and cleans up the same way when this process
dies without closing (SIGKILL, CTest timeout).  By hand:
`python3 tests/integration/netns.py cleanup <prefix>`.
"""

import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_live = []  # Nets not closed yet
_handlers_installed = False
_counter = [0]


def _ip(*args, check=True, input=None):
    """Runs `ip args`; returns CompletedProcess; raises on failure if check."""
    p = subprocess.run(["ip"] + list(args), input=input, capture_output=True,
                       text=True, timeout=20)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def _nft(ns, script):
    """Applies an nft script inside namespace ns as one transaction."""
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                       input=script, capture_output=True, text=True,
                       timeout=20)
    if p.returncode != 0:
        raise RuntimeError("nft in %s: %s\n%s"
                           % (ns, p.stderr.strip(), script))


def _netns_list():
    p = _ip("netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _ns_pids(ns):
    p = _ip("netns", "pids", ns, check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _kill_ns_and_delete(names):
    """SIGKILLs whatever runs in the namespaces, then deletes them.  Used by
    close(), the watchdog and the cleanup command; ignores what is gone."""
    for ns in names:
        for pid in _ns_pids(ns):
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for ns in names:
        if ns in _netns_list():
            for _ in range(50):
                if _ip("netns", "del", ns, check=False).returncode == 0:
                    break
                time.sleep(0.05)


def _wait_entered(p, ns, timeout=60.0):
    """Waits until process p is in network namespace ns (the same test as
    `ip netns pids`) or has exited.  The deadline is a bound for a stuck
    `ip netns exec`, not a speed check: p is killed and AssertionError
    raised after it."""
    st = os.stat(os.path.join(NETNS_DIR, ns))
    want = (st.st_dev, st.st_ino)
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = os.stat("/proc/%d/ns/net" % p.pid)
            if (got.st_dev, got.st_ino) == want:
                return
        except OSError:
            pass
        if p.poll() is not None:
            return
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            raise AssertionError("pid %d not in namespace %s after %.0fs"
                                 % (p.pid, ns, timeout))
        time.sleep(0.005)


_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def ns_socket(ns, family=socket.AF_INET, type=socket.SOCK_STREAM):
    """A socket that lives in network namespace ns (name under /run/netns).
    Only the calling thread enters the namespace, for the socket() call, and
    goes back to its own at once; the socket keeps the namespace.  The caller
    owns the socket."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(family, type)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def _task_states(pid):
    """The state letters of every thread of pid (empty when it is gone)."""
    states = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return states
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            pass
    return states


def freeze(pid, timeout=60.0):
    """SIGSTOP, and waits until every thread of the process has stopped
    (SIGSTOP reaches a multi-threaded process through one thread first, so
    the others could still run for a moment): after this the process does
    nothing more while its sockets stay open, a silent failure as seen by its
    peers.  pid may be a Popen.  Raises AssertionError after timeout."""
    pid = getattr(pid, "pid", pid)
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        states = _task_states(pid)
        if all(x in "TtZX" for x in states):
            return
        if time.monotonic() > deadline:
            raise AssertionError("pid %d did not stop: %s" % (pid, states))
        time.sleep(0.001)


def thaw(pid):
    """SIGCONT: undoes freeze()."""
    os.kill(getattr(pid, "pid", pid), signal.SIGCONT)


def _on_exit():
    for net in list(_live):
        net.close(grace=1.0)


def _on_signal(signum, frame):
    _on_exit()
    prev = _prev_handlers.get(signum, signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_prev_handlers = {}


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_on_exit)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        prev = signal.getsignal(sig)
        if prev is signal.SIG_IGN:
            continue
        _prev_handlers[sig] = prev
        signal.signal(sig, _on_signal)


# The watchdog: reads its stdin until EOF; if the last line is not "done",
# the owner died without close(): kill and delete the namespaces it names.
_WATCHDOG = r"""
import os, signal, subprocess, sys, time
names = sys.argv[1:]
data = sys.stdin.read()
if data.strip().endswith("done"):
    sys.exit(0)
def ip(*a):
    return subprocess.run(["ip"] + list(a), capture_output=True, text=True)
for ns in names:
    for pid in ip("netns", "pids", ns).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
for ns in names:
    for _ in range(50):
        if ip("netns", "del", ns).returncode == 0:
            break
        if ns not in ip("netns", "list").stdout.split():
            break
        time.sleep(0.05)
"""


class Net:
    """n hosts (1..n) on one bridge, with cuts between them.  See the module
    comment for the topology and how cuts are made."""

    _avail = None

    @staticmethod
    def available():
        """(True, "") when namespaces, veths, a bridge and nftables can be
        used here; else (False, reason).  Makes and deletes a probe."""
        if Net._avail is not None:
            return Net._avail
        Net._avail = Net._probe()
        return Net._avail

    @staticmethod
    def _probe():
        if not sys.platform.startswith("linux"):
            return (False, "not Linux")
        if os.geteuid() != 0:
            return (False, "needs root (network namespaces)")
        for tool in ("ip", "nft"):
            if shutil.which(tool) is None:
                return (False, "%s not found (iproute2 / nftables)" % tool)
        a = "xt%dqa" % (os.getpid() % 10000)
        b = "xt%dqb" % (os.getpid() % 10000)
        try:
            _ip("netns", "add", a)
            _ip("netns", "add", b)
            _ip("-n", a, "link", "add", a, "type", "bridge")
            _ip("-n", a, "link", "add", a + "p", "type", "veth", "peer",
                "name", b + "h", "netns", b)
            _nft(a, "add table bridge xtprobe\n"
                    "add set bridge xtprobe s { type ifname . ifname; }\n")
            s = ns_socket(b)
            s.close()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            return (False, "cannot set up namespaces: %s" % e)
        finally:
            _kill_ns_and_delete([a, b])
        return (True, "")

    def __init__(self, n, grace=2.0):
        """Creates n hosts.  Raises RuntimeError (after removing what it had
        made) when that fails."""
        if n < 1 or n > 99:
            raise ValueError("1..99 hosts")
        self.n = n
        self.grace = grace
        self.procs = []
        self.blocked = set()  # (src, dst) pairs whose packets are dropped
        self.closed = False
        self.watchdog = None
        existing = _netns_list()
        base = "xt%d" % (os.getpid() % 10000)
        for _ in range(26):
            letter = "abcdefghijklmnopqrstuvwxyz"[_counter[0] % 26]
            _counter[0] += 1
            self.prefix = base + letter
            if not any(x.startswith(self.prefix) for x in existing):
                break
        else:
            raise RuntimeError("no free prefix for %s" % base)
        self.run_id = os.getpid() % 250 + 1
        self.switch = self.prefix + "sw"
        self.bridge = self.prefix + "br"
        self.hosts = [self.prefix + "n%d" % i for i in range(1, n + 1)]
        _install_handlers()
        _live.append(self)
        self._start_watchdog()
        try:
            self._build()
        except BaseException:
            self.close(grace=0.2)
            raise

    def _start_watchdog(self):
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, self.switch] + self.hosts,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, text=True)

    def _build(self):
        sw = self.switch
        _ip("netns", "add", sw)
        _ip("-n", sw, "link", "set", "lo", "up")
        _ip("-n", sw, "link", "add", self.bridge, "type", "bridge",
            "forward_delay", "0", "stp_state", "0")
        _ip("-n", sw, "link", "set", self.bridge, "up")
        _nft(sw, "add table bridge xtnet\n"
                 "add set bridge xtnet cut { type ifname . ifname; }\n"
                 "add chain bridge xtnet cuts { type filter hook forward"
                 " priority -200; policy accept; }\n"
                 "add rule bridge xtnet cuts ether type { ip, ip6 }"
                 " iifname . oifname @cut counter drop\n")
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            port = self.port(i)
            hif = self.ifname(i)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name",
                hif, "netns", ns)
            _ip("-n", sw, "link", "set", port, "master", self.bridge)
            _ip("-n", sw, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", self.addr(i) + "/24", "dev", hif)
            _ip("-n", ns, "link", "set", hif, "up")
    # ---- names and addresses ------------------------------------------------

    def _check(self, i):
        if not 1 <= i <= self.n:
            raise ValueError("no host %r (hosts are 1..%d)" % (i, self.n))

    def ns(self, i):
        """The namespace name of host i (for `ip netns exec`)."""
        self._check(i)
        return self.hosts[i - 1]

    def ifname(self, i):
        """The name of host i's interface (inside its namespace)."""
        self._check(i)
        return self.prefix + "h%d" % i

    def addr(self, i):
        """Host i's IPv4 address, as a string."""
        self._check(i)
        return "10.77.%d.%d" % (self.run_id, i)

    def host_of(self, addr):
        """The host index that has addr, or None."""
        for i in range(1, self.n + 1):
            if self.addr(i) == addr:
                return i
        return None

    # ---- processes ----------------------------------------------------------

    def exec_prefix(self, i):
        """The argv prefix that runs a command inside host i, for code that
        builds its own Popen (e.g. ["ip", "netns", "exec", "xt42an1"])."""
        return ["ip", "netns", "exec", self.ns(i)]

    def popen(self, i, argv, **kw):
        """Starts argv inside host i (subprocess.Popen keywords pass through);
        close() will kill it.  The caller may wait for it or kill it first.
        Returns once the process is inside host i (or has already exited),
        so that `ip netns pids` finds it: the watchdog, which kills by
        namespace, missed a process still in `ip netns exec` before setns
        when the owner was SIGKILLed right after popen on a loaded machine,
        and that process then ran on in no namespace."""
        if self.closed:
            raise RuntimeError("net is closed")
        p = subprocess.Popen(self.exec_prefix(i) + list(argv), **kw)
        self.procs.append(p)
        _wait_entered(p, self.ns(i))
        return p

    def run(self, i, argv, timeout=30, check=False, **kw):
        """Runs argv inside host i to the end; returns CompletedProcess
        (stdout/stderr captured as text unless given)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        p = subprocess.run(self.exec_prefix(i) + list(argv), timeout=timeout,
                           **kw)
        if check and p.returncode != 0:
            raise AssertionError("host %d: %s exited with %d: %s"
                                 % (i, " ".join(argv), p.returncode, p.stderr))
        return p

    def socket(self, i, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket inside host i, made from this process (the caller owns
        it): lets a test talk from any host without a helper process."""
        return ns_socket(self.ns(i), family, type)

    def connect(self, i, addr, port, timeout=1.0):
        """A TCP connection from host i to addr:port, with timeout as the
        connect and I/O timeout.  Raises OSError (socket.timeout when the
        SYN goes unanswered, as across a cut).  The caller owns the socket."""
        s = self.socket(i)
        try:
            s.settimeout(timeout)
            s.connect((addr, port))
            return s
        except BaseException:
            s.close()
            raise

    def can_connect(self, i, addr, port, timeout=0.5):
        """True when a TCP connection from host i to addr:port succeeds
        within timeout."""
        try:
            self.connect(i, addr, port, timeout).close()
            return True
        except OSError:
            return False

    def wait_tcp(self, i, addr, port, timeout=10.0):
        """Waits until host i can open a TCP connection to addr:port; raises
        AssertionError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.can_connect(i, addr, port, min(0.5, max(left, 0.05))):
                return
            time.sleep(0.05)
        raise AssertionError("host %d cannot reach %s:%d after %ss"
                             % (i, addr, port, timeout))

    # ---- cuts ---------------------------------------------------------------

    def partition(self, groups):
        """Replaces all cuts by a symmetric partition: hosts in different
        groups cannot exchange packets.  groups is a list of lists of host
        indices; hosts in no group form one more group together."""
        seen = {}
        groups = [list(g) for g in groups]
        rest = [i for i in range(1, self.n + 1)
                if not any(i in g for g in groups)]
        if rest:
            groups.append(rest)
        for gi, g in enumerate(groups):
            for i in g:
                self._check(i)
                if i in seen and seen[i] != gi:
                    raise ValueError("host %d is in two groups" % i)
                seen[i] = gi
        blocked = set()
        for a in range(1, self.n + 1):
            for b in range(1, self.n + 1):
                if seen[a] != seen[b]:
                    blocked.add((a, b))
        self._apply(blocked)

    def one_way(self, a, b):
        """Adds a one-way cut: a's packets to b are dropped, b's to a pass
        (so no TCP connection works either way, but datagrams b -> a do)."""
        self._check(a)
        self._check(b)
        self._apply(self.blocked | {(a, b)})

    def cut(self, a, b):
        """Adds a symmetric cut between a and b only."""
        self._check(a)
        self._check(b)
        self._apply(self.blocked | {(a, b), (b, a)})

    def isolate(self, i):
        """Adds cuts between host i and every other host."""
        self._check(i)
        more = set()
        for j in range(1, self.n + 1):
            if j != i:
                more |= {(i, j), (j, i)}
        self._apply(self.blocked | more)

    def heal(self):
        """Removes every cut; existing connections resume with their next
        retransmission."""
        self._apply(set())

    def port(self, i):
        """The name of host i's port on the bridge (in the switch)."""
        self._check(i)
        return self.prefix + "p%d" % i

    def _apply(self, blocked):
        if self.closed:
            raise RuntimeError("net is closed")
        script = "flush set bridge xtnet cut\n"
        if blocked:
            script += "add element bridge xtnet cut { %s }\n" % ", ".join(
                '"%s" . "%s"' % (self.port(a), self.port(b))
                for (a, b) in sorted(blocked))
        _nft(self.switch, script)
        self.blocked = set(blocked)

    def dropped(self):
        """How many packets the cuts have dropped so far."""
        p = subprocess.run(["ip", "netns", "exec", self.switch, "nft", "list",
                            "chain", "bridge", "xtnet", "cuts"],
                           capture_output=True, text=True, timeout=20)
        m = re.search(r"counter packets (\d+)", p.stdout)
        return int(m.group(1)) if m else 0

    # ---- teardown -----------------------------------------------------------

    def close(self, grace=None):
        """Kills every process started here (SIGTERM, SIGKILL after grace
        seconds) and anything else left inside the namespaces, and deletes
        every namespace, veth and the bridge.  Idempotent."""
        if self.closed:
            return
        self.closed = True
        grace = self.grace if grace is None else grace
        live = [p for p in self.procs if p.poll() is None]
        for p in live:
            for sig in (signal.SIGTERM, signal.SIGCONT):
                try:
                    p.send_signal(sig)
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        for p in live:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in live:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        _kill_ns_and_delete(self.hosts + [self.switch])
        if self.watchdog is not None:
            try:
                self.watchdog.stdin.write("done\n")
                self.watchdog.stdin.close()
            except OSError:
                pass
            try:
                self.watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait()
        if self in _live:
            _live.remove(self)

    def leftovers(self):
        """Namespaces and root-namespace interfaces with this run's prefix
        that still exist (empty after close())."""
        out = [x for x in _netns_list() if x.startswith(self.prefix)]
        links = _ip("-o", "link", "show", check=False).stdout
        for line in links.splitlines():
            f = line.split(":")
            name = f[1].strip().split("@")[0] if len(f) > 1 else ""
            if name.startswith(self.prefix):
                out.append(name)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def require_available():
    """For tests: returns when namespaces are usable; otherwise prints
    "skipped: <reason>" and exits 0, except under CI=true or
    XMPPD_REQUIRE_NETNS=1, where it prints the reason and exits 1."""
    ok, why = Net.available()
    if ok:
        return
    name = os.path.basename(sys.argv[0])
    env = os.environ
    if env.get("CI") == "true" or env.get("XMPPD_REQUIRE_NETNS") == "1":
        print("FAIL %s: network namespaces are required here: %s"
              % (name, why))
        sys.exit(1)
    print("skipped %s: %s" % (name, why))
    sys.exit(0)


def _main(argv):
    if len(argv) >= 1 and argv[0] == "available":
        ok, why = Net.available()
        print("yes" if ok else "no: " + why)
        return 0 if ok else 1
    if len(argv) >= 1 and argv[0] == "list":
        for x in _netns_list():
            if re.match(r"^xt\d+[a-z](n\d+|sw)$", x):
                print(x)
        return 0
    if len(argv) == 2 and argv[0] == "cleanup":
        names = [x for x in _netns_list() if x.startswith(argv[1])]
        _kill_ns_and_delete(names)
        print("deleted %d namespaces" % len(names))
        return 0
    print("usage: netns.py available | list | cleanup <prefix>")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
