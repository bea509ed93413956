#!/usr/bin/env python3
"""test_srv_discovery: a call bridge finds the cluster through DNS SRV
(DESIGN.md "Who uses it"; docs/cluster.md "Finding the cluster: DNS SRV").

A real DNS server (dnsmasq, bound to one loopback address and a free port,
forwarding nowhere) publishes _xmpp-component._tcp.<domain> with one SRV
record per node of a 3-node cluster, priorities arranged so that component
A lands on a chosen follower first and on the leader next, and an A record
per target.  A is xcomp --srv (libresolv queries to that server only,
RFC 2782 order); B connects directly to the other follower.  They exchange
numbered messages; A's node is SIGKILLed; A must report the lost session,
look the next target up and connect to it, and the exchange must go on both
ways (messages sent into the dead session are allowed to be lost)."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, XMPP_PORT, Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

INTERVAL_MS = 50
N = 2000  # more than the test needs: the senders never run out
MORE = 20  # messages each way that must arrive after the reconnect


def free_udp_port(addr):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class Dns:
    """dnsmasq in the foreground, authoritative for the given records only:
    no upstream (--no-resolv, no --server), no /etc/hosts, no config file,
    bound to addr:port alone.  Stopped by pid."""

    def __init__(self, addr, srv, hosts, logdir):
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        check(os.path.exists(exe), "dnsmasq not installed (scripts/setup installs dnsmasq-base)")
        self.addr = addr
        self.port = free_udp_port(addr)
        self.log = os.path.join(logdir, "dnsmasq.log")
        cmd = [exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
               "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=" + addr,
               "--port=%d" % self.port, "--pid-file=", "--user=" + _user(),
               "--log-facility=" + self.log, "--log-queries"]
        cmd += ["--srv-host=%s,%s,%d,%d,%d" % r for r in srv]
        cmd += ["--host-record=%s,%s" % h for h in hosts]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self._ready(), 60, "dnsmasq listening on %s" % self.where())

    def where(self):
        return "%s:%d" % (self.addr, self.port)

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("dnsmasq exited %s: %s"
                                 % (self.proc.returncode, self.proc.stderr.read()))
        try:
            with open(self.log) as f:
                return "started" in f.read()
        except OSError:
            return False

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            try:
                with open(self.log) as f:
                    sys.stderr.write("---- dnsmasq log ----\n%s\n" % f.read()[-3000:])
            except OSError:
                pass
        self.close()
        return False


def _user():
    """dnsmasq run as root would switch to "nobody" and lose its log file."""
    return pwd.getpwuid(os.getuid()).pw_name


def seqs(comp, sender, after=0):
    """The sequence numbers comp has printed for messages from sender, in
    its output lines from index after on."""
    comp._drain()
    rx = re.compile(r"^message from=%s seq=(\d+) " % re.escape(sender))
    out = []
    for line in comp.lines[after:]:
        m = rx.match(line)
        if m:
            out.append(int(m.group(1)))
    return out


def wait_seq(comp, sender, at_least, after=0, timeout=60):
    wait_for(lambda: any(s >= at_least for s in seqs(comp, sender, after)), timeout,
             "%s: a message from %s with seq >= %d (got %s)"
             % (comp.jid, sender, at_least, seqs(comp, sender, after)[-5:]))


def main():
    with Cluster(3) as c:
        leader = c.form()
        a_node, b_node = c.followers(leader)
        prefix = a_node.addr.rsplit(".", 1)[0]
        # Priorities: A's node first, the leader next, B's node last.
        order = [a_node, leader, b_node]
        # Before them: a target without an A record and one that refuses
        # connections (nothing listens on .9): a call bridge skips both.
        name = "_xmpp-component._tcp." + DOMAIN
        srv = [(name, "gone.%s" % DOMAIN, XMPP_PORT, 1, 10),
               (name, "down.%s" % DOMAIN, XMPP_PORT, 2, 10)]
        srv += [(name, "%s.%s" % (nd.name, DOMAIN), XMPP_PORT, 10 * (k + 1), 10)
                for k, nd in enumerate(order)]
        hosts = [("%s.%s" % (nd.name, DOMAIN), nd.addr) for nd in c.nodes]
        hosts.append(("down.%s" % DOMAIN, prefix + ".9"))
        with Dns(prefix + ".53", srv, hosts, c.base) as dns:
            c.say("dnsmasq on %s: SRV %s", dns.where(),
                  ", ".join("%s prio %d" % (r[1], r[3]) for r in srv))
            c.add_callbridge("a", on=leader)
            c.add_callbridge("b", on=leader)
            a_jid, b_jid = "a.%s" % DOMAIN, "b.%s" % DOMAIN
            common = ["--go-on-stdin", "--stay", "--send", str(N), "--interval-ms",
                      str(INTERVAL_MS)]
            a = c.comp(a_node, "a", "--srv", DOMAIN, "--dns", dns.where(), "--to", b_jid,
                       *common, timeout=120)
            b = c.comp(b_node, "b", "--to", a_jid, *common, timeout=120)

            # The records as xcomp read them, in RFC 2782 order.
            a.wait_line(r"^srv target .* connected", 60)
            recs = [ln for ln in a.lines if ln.startswith("srv record")][:len(srv)]
            check([re.search(r"target=(\S+)", ln).group(1) for ln in recs]
                  == [r[1] for r in srv], "SRV order %s, want %s" % (recs, srv))
            a.wait_line(r"^srv target gone\.%s:%d unresolved" % (re.escape(DOMAIN), XMPP_PORT))
            a.wait_line(r"^srv target down\.%s:%d -> %s\.9 failed"
                        % (re.escape(DOMAIN), XMPP_PORT, re.escape(prefix)))
            line = a.wait_line(r"^srv target .* connected")
            check(line == "srv target %s.%s:%d -> %s connected"
                  % (a_node.name, DOMAIN, XMPP_PORT, a_node.addr),
                  "A's first target: %r, want %s" % (line, a_node.name))
            b.wait_line("^connected")
            c.wait_components(["a", "b"])
            a.go()
            b.go()
            wait_seq(b, a_jid, 20, timeout=60)
            wait_seq(a, b_jid, 20, timeout=60)
            c.say("A (by SRV on %s) and B (on %s) exchange messages", a_node.name,
                  b_node.name)

            t = time.monotonic()
            a_node.kill()
            c.say("%s (A's node) killed", a_node.name)
            a.wait_line(r"^srv target %s\.%s:%d -> %s lost" % (
                a_node.name, re.escape(DOMAIN), XMPP_PORT, re.escape(a_node.addr)), 60)
            line = a.wait_line(r"^srv target %s\.%s:%d -> %s connected" % (
                leader.name, re.escape(DOMAIN), XMPP_PORT, re.escape(leader.addr)), 60)
            a._drain()
            mark_a = len(a.lines)
            b._drain()
            mark_b = len(b.lines)
            c.say("A reconnected by SRV to %s after %.2fs", leader.name,
                  time.monotonic() - t)
            b_before = max(seqs(b, a_jid) or [0])
            a_before = max(seqs(a, b_jid) or [0])
            wait_seq(b, a_jid, b_before + MORE, after=mark_b, timeout=60)
            wait_seq(a, b_jid, a_before + MORE, after=mark_a, timeout=60)
            got_b = seqs(b, a_jid, mark_b)
            check(got_b == sorted(got_b) and len(set(got_b)) == len(got_b),
                  "B got A's messages out of order or twice after the reconnect: %s"
                  % got_b[:50])
            got_a = seqs(a, b_jid, mark_a)
            check(got_a == sorted(got_a) and len(set(got_a)) == len(got_a),
                  "A got B's messages out of order or twice after the reconnect: %s"
                  % got_a[:50])
            b._drain()
            c.say("after the reconnect: B got %d more from A, A got %d more from B; "
                  "B saw %d message-error bounces while A was away",
                  len(got_b), len(got_a),
                  sum(1 for ln in b.lines if ln.startswith("message-error")))
            for x in (a, b):
                check(x.proc.poll() is None, "%s exited early: %s" % (x.jid, x.output()[-2000:]))
                x.close()


run(main, timeout=240)
