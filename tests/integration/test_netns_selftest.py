"""Self-test of netns.py, the partition harness of the cluster tests; needs
no xmppd.  Three hosts, each running a small TCP echo server; checks that
every pair talks, that partition() / one_way() / isolate() cut exactly what
they should, silently (connects time out, nothing is reset), that an
existing connection across a cut stalls and recovers after heal(), that
freeze()/thaw() stop and resume a process, and that close(), an exit
without close(), SIGTERM and even SIGKILL of the owner leave no namespace
or interface behind.

Skips (prints "skipped", passes) without root, ip or nft, except under
CI=true or XMPPD_REQUIRE_NETNS=1, where that is a failure.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from xmppdtest import check, run  # noqa: E402

PORT = 7777
UDP_PORT = 7778
CUT_TIMEOUT = 0.5  # connect timeout where a cut is expected
OK_TIMEOUT = 30.0  # where none is (a deadline, not a speed: a loaded CI machine)

ECHO = textwrap.dedent("""
    import socket, sys, threading
    def serve(c):
        with c:
            while True:
                d = c.recv(4096)
                if not d:
                    return
                c.sendall(d)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")


def attempt(net, a, b, timeout):
    """'ok', 'timeout' or the error name of a connect + echo from a to b."""
    try:
        with net.connect(a, net.addr(b), PORT, timeout) as s:
            s.sendall(b"ping")
            return "ok" if s.recv(16) == b"ping" else "bad echo"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return type(e).__name__


def expect(net, pairs, want):
    for a, b in pairs:
        t = time.monotonic()
        got = attempt(net, a, b,
                      CUT_TIMEOUT if want == "timeout" else OK_TIMEOUT)
        check(got == want, "%d -> %d: %s, expected %s (blocked %s)"
              % (a, b, got, want, sorted(net.blocked)))
        if want == "timeout":
            check(time.monotonic() - t >= CUT_TIMEOUT * 0.9,
                  "%d -> %d failed too fast" % (a, b))


def stalls(sock, timeout=1.0):
    """True when an echo over sock does not come back within timeout (and
    the connection is not reset)."""
    sock.sendall(b"x")
    sock.settimeout(timeout)
    try:
        d = sock.recv(16)
    except socket.timeout:
        return True
    raise AssertionError("echo came back across a cut: %r" % d)


def recovers(sock, timeout=60.0):
    """Waits for the stalled echo; returns the seconds it took."""
    t = time.monotonic()
    sock.settimeout(timeout)
    d = sock.recv(16)
    check(d == b"x", "after heal got %r" % d)
    sock.sendall(b"y")
    check(sock.recv(16) == b"y", "no echo after heal")
    return time.monotonic() - t


def dead(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(prefix, pid, timeout=60.0):
    """Waits until no namespace or interface starts with prefix and pid is
    gone; raises otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True,
                               text=True).stdout
        links = subprocess.run(["ip", "-o", "link"], capture_output=True,
                               text=True).stdout
        if prefix not in names and prefix not in links and dead(pid):
            return
        time.sleep(0.1)
    raise AssertionError("leftovers of %s (pid %d dead: %s):\n%s%s"
                         % (prefix, pid, dead(pid), names, links))


def check_abort(sig):
    """A child makes a Net, starts a process in it and gets sig (or, with
    sig None, exits without closing it): whatever it made must vanish
    (atexit, the signal handler for SIGTERM, the watchdog for SIGKILL)."""
    here = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            sys.path.insert(0, %r)
            import netns
            net = netns.Net(2)
            p = net.popen(1, ["sleep", "60"])
            print(net.prefix, p.pid, flush=True)
            if sys.stdin.readline() == "exit\\n":
                sys.exit(3)
            time.sleep(60)
        """ % here)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    try:
        prefix, pid = child.stdout.readline().split()
        pid = int(pid)
        check(prefix.startswith("xt") and not dead(pid), "child did not start")
        if sig is None:
            child.stdin.write("exit\n")
            child.stdin.flush()
        else:
            child.send_signal(sig)
        child.wait(60)
        wait_gone(prefix, pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()


def main():
    netns.require_available()
    t0 = time.monotonic()
    with netns.Net(3) as net:
        hosts = [1, 2, 3]
        echo = {}
        for i in hosts:
            echo[i] = net.popen(i, [sys.executable, "-c", ECHO, str(PORT)],
                                stdin=subprocess.DEVNULL)
        for i in hosts:
            net.wait_tcp(i, net.addr(i), PORT, 10)
        # popen's pid is the server itself, inside its own namespace.
        me = os.readlink("/proc/self/ns/net")
        for i in hosts:
            check(os.readlink("/proc/%d/ns/net" % echo[i].pid) != me,
                  "host %d's server runs in the root namespace" % i)
        pairs = [(a, b) for a in hosts for b in hosts if a != b]
        expect(net, pairs, "ok")
        print("all pairs talk (%s)" % net.prefix)

        # partition {1} | {2, 3}
        c12 = net.connect(1, net.addr(2), PORT, OK_TIMEOUT)
        c23 = net.connect(2, net.addr(3), PORT, OK_TIMEOUT)
        net.partition([[1], [2, 3]])
        expect(net, [(1, 2), (1, 3), (2, 1), (3, 1)], "timeout")
        expect(net, [(2, 3), (3, 2)], "ok")
        check(stalls(c12), "existing 1 -> 2 connection did not stall")
        c23.sendall(b"z")
        c23.settimeout(OK_TIMEOUT)
        check(c23.recv(16) == b"z", "2 -> 3 connection broken by the cut")
        check(net.dropped() > 0,
              "no packets counted as dropped")
        net.heal()
        took = recovers(c12)
        print("partition {1}|{2,3} holds; stalled connection recovered "
              "%.2fs after heal" % took)
        expect(net, pairs, "ok")
        c12.close()
        c23.close()

        # one_way(1, 2): datagrams 1 -> 2 dropped, 2 -> 1 pass; TCP fails
        # both ways (its handshake needs both directions); 3 unaffected.
        net.one_way(1, 2)
        u1 = net.socket(1, type=socket.SOCK_DGRAM)
        u2 = net.socket(2, type=socket.SOCK_DGRAM)
        try:
            u1.bind((net.addr(1), UDP_PORT))
            u2.bind((net.addr(2), UDP_PORT))
            u1.settimeout(CUT_TIMEOUT)
            u2.settimeout(CUT_TIMEOUT)
            u1.sendto(b"1to2", (net.addr(2), UDP_PORT))
            try:
                d = u2.recv(16)
                raise AssertionError("one_way: 2 received %r from 1" % d)
            except socket.timeout:
                pass
            u2.sendto(b"2to1", (net.addr(1), UDP_PORT))
            u1.settimeout(OK_TIMEOUT)
            check(u1.recv(16) == b"2to1", "one_way: 2 -> 1 blocked")
        finally:
            u1.close()
            u2.close()
        expect(net, [(1, 2), (2, 1)], "timeout")
        expect(net, [(1, 3), (3, 1), (2, 3), (3, 2)], "ok")
        net.heal()
        expect(net, pairs, "ok")
        print("one_way(1, 2) drops only 1 -> 2")

        # isolate(3)
        net.isolate(3)
        expect(net, [(3, 1), (3, 2), (1, 3), (2, 3)], "timeout")
        expect(net, [(1, 2), (2, 1)], "ok")
        net.heal()
        expect(net, pairs, "ok")
        print("isolate(3) holds, heal() restores all")

        # freeze / thaw the server of host 2
        c = net.connect(1, net.addr(2), PORT, OK_TIMEOUT)
        netns.freeze(echo[2])
        try:
            check(stalls(c, 0.5), "frozen server answered")
        finally:
            netns.thaw(echo[2])
        recovers(c)
        c.close()
        print("freeze/thaw stops and resumes a process")

        prefix = net.prefix
        pids = [p.pid for p in echo.values()]
    # close() ran.
    check(net.leftovers() == [], "left after close: %s" % net.leftovers())
    for pid in pids:
        wait_gone(prefix, pid)
    print("close() left nothing (%.1fs so far)" % (time.monotonic() - t0))

    check_abort(None)
    print("owner exited without close(): cleaned up at exit")
    check_abort(signal.SIGTERM)
    print("SIGTERM of the owner: cleaned up by its handler")
    check_abort(signal.SIGKILL)
    print("SIGKILL of the owner: cleaned up by the watchdog")
    print("total %.1fs" % (time.monotonic() - t0))


if __name__ == "__main__":
    run(main, timeout=60)
