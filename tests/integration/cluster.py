"""cluster: helpers for the cluster tests, python3 stdlib only.

A Cluster is N real xmppd processes, each started with only --state-dir and
driven only through the real mmp-cli binary, as an admin would
(docs/cluster.md, "Commands"):

    certs/mkca, certs/mknode (SANs: the node's name and address, the domain
    and *.<domain>), certs/mkbundle; on every node
        xmpp listen <addr>; xmpp certs nodeN.key nodeN.crt ca-bundle.pem
        xmpp cluster trust ca-bundle.pem; xmpp cluster enable
    first node: xmpp domain example.com; xmpp cluster initialize; xmpp enable
    the others: xmpp cluster invite on the first (a one-time token), then
        xmpp cluster join <first addr> <token>; xmpp enable

Each node has an address of its own with the default ports (5223 XMPP, 5224
peers): 127.R.S.1, .2, ... on loopback (R, S random per run, so concurrent
runs on one machine never meet), or, with net=netns.Net(n), host i's
address inside its network namespace (tests/integration/netns.py), where
partitions can be made.

    with Cluster(3) as c:
        c.form()
        leader = c.wait_converged()
        with c.comp(c.followers()[0], "cb1", "--stay") as a: ...

Status parsing follows the text of `xmpp cluster status` in DESIGN.md ("The
cluster"): State, Term, Leader, "List of peers" with one line per member
(address, node id, role or "(Leader)"), counters.  wait_converged() is the
test of a healthy cluster: every live node answers, exactly one leader, the
same term and leader everywhere, every node lists each member once.

Everything started here is stopped by pid in close() (also on errors);
XMPPD_KEEP_TMP=1 keeps the temporary directory (logs, state) for a look.
"""

import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from xmppdtest import (unwrap, LineProc, certs_dir, check, find_log_line, read_text,  # noqa: E402
                       run_mmp, tool, unix_connects, wait_started, xmppd_bin)

DOMAIN = "example.com"
XMPP_PORT = 5223
PEER_PORT = 5224


# Environment of the certificate scripts (None: ours); a test whose node's
# clock runs behind makes them under faketime, issued in the past.
CERT_ENV = None


def sh(*argv, timeout=60, env=None):
    """Runs argv; raises AssertionError with its stderr when it fails."""
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                       env=env)
    check(p.returncode == 0, "%s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr))
    return p.stdout


def make_ca(dirpath, cn="Cluster Test CA"):
    sh(os.path.join(certs_dir(), "mkca"), dirpath, cn, env=CERT_ENV)


def make_node_cert(cadir, name, addr, domain=DOMAIN):
    """nodeN.key / nodeN.crt signed by the CA in cadir, with SANs for the
    domain, *.domain (call bridges check their component name), the node
    name and its address; then ca-bundle.pem."""
    sh(os.path.join(certs_dir(), "mknode"), cadir, name, "--domain", domain, "--dns",
       "*." + domain, "--ip", addr, env=CERT_ENV)
    sh(os.path.join(certs_dir(), "mkbundle"), cadir, name, env=CERT_ENV)


# ---- status parsing ---------------------------------------------------------

def route_counts(node):
    """{peer address: component count} as node's status --json has it: the
    leader's routing table (`routes`) when present, else `components`
    (None when not known)."""
    st = node.status_json()
    return {p["address"]: p.get("routes", p.get("components")) for p in st.get("peers", [])}


class Status:
    """One node's `xmpp cluster status`, parsed from the text of DESIGN.md.

    state      "LEADER" | "FOLLOWER" | "CANDIDATE" | "DISABLED" | ...
    term       int or None
    leader     the leader's address ("a.b.c.d:5224") or None
    peers      list of dicts: addr, node (id as printed, maybe shortened),
               leader (bool), role (word after the id), components (int or
               None), line (the raw line)
    counters   dict: forwarded, queued, bounced (when printed)
    text       the whole output
    """

    def __init__(self, text):
        self.text = text
        self.state = None
        self.term = None
        self.leader = None
        self.peers = []
        self.counters = {}
        self.last_change = None
        in_peers = False
        for line in text.splitlines():
            s = line.strip()
            if not s:
                in_peers = False
                continue
            m = re.match(r"^State:\s*(\S+)", s)
            if m:
                self.state = m.group(1).upper()
                continue
            m = re.match(r"^Term:\s*(\d+)", s)
            if m:
                self.term = int(m.group(1))
                continue
            m = re.match(r"^Leader:\s*(.*)$", s)
            if m:
                v = m.group(1).strip()
                a = re.match(r"^(\[[0-9a-fA-F:.]+\]:\d+|[0-9.]+:\d+|\S+:\d+)", v)
                self.leader = a.group(1) if a else None
                continue
            if s.startswith("List of peers"):
                in_peers = True
                continue
            if s.startswith("Last leader change"):
                in_peers = False
                self.last_change = s
                continue
            m = re.match(r"^Forwarded\s+(\d+),\s*queued\s+(\d+),\s*bounced\s+(\d+)", s)
            if m:
                in_peers = False
                self.counters = {"forwarded": int(m.group(1)), "queued": int(m.group(2)),
                                 "bounced": int(m.group(3))}
                continue
            if in_peers and s.startswith("link: refused:"):
                # the reason the peer line above is refused (mmp-cli)
                if self.peers:
                    self.peers[-1]["refused"] = s[len("link: refused:"):].strip()
                continue
            if in_peers:
                f = s.split()
                peer = {"addr": f[0], "node": None, "leader": "(Leader)" in s,
                        "role": None, "components": None, "line": s}
                if "node" in f:
                    i = f.index("node")
                    if i + 1 < len(f):
                        peer["node"] = f[i + 1].rstrip(".,").rstrip(".")
                    if i + 2 < len(f):
                        peer["role"] = f[i + 2]
                m = re.search(r"components\s+(\d+)", s)
                if m:
                    peer["components"] = int(m.group(1))
                self.peers.append(peer)

    def addrs(self):
        return [p["addr"] for p in self.peers]

    def leaders(self):
        return [p for p in self.peers if p["leader"]]

    def __repr__(self):
        return "Status(%s term=%s leader=%s peers=%s)" % (self.state, self.term, self.leader,
                                                           self.addrs())


def same_id(printed, full):
    """True when a node id as printed (maybe shortened, "7f3a..." or
    "7f3a9c") names the full 16-hex-digit id."""
    if printed is None or full is None:
        return False
    p = printed.rstrip(".").lower()
    return len(p) >= 4 and full.lower().startswith(p)


# ---- one node ---------------------------------------------------------------

class ClusterNode:
    """One xmppd with only --state-dir (inside a netns host when net is
    given), and mmp-cli against its control socket."""

    def __init__(self, cluster, index, addr):
        self.cluster = cluster
        self.index = index
        self.name = "node%d" % index
        self.addr = addr
        self.base = os.path.join(cluster.base, self.name)
        os.makedirs(self.base, exist_ok=True)
        self.dir = os.path.join(self.base, "state")
        self.sock = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.base, "xmppd.log")
        self.proc = None
        self.logf = None
        self.frozen = False
        self.log_level = "debug"
        self.env = None  # environment of xmppd (None: ours), e.g. faketime's
        self.binary = None  # the xmppd to run (None: xmppd_bin()), e.g. xmppd_v2

    @property
    def peer_addr(self):
        return "%s:%d" % (self.addr, PEER_PORT)

    # -- process --

    def start(self, wait=True, timeout=60):
        if self.logf is None:
            self.logf = open(self.log_path, "ab")
        self.logf.write(b"==== start ====\n")
        self.logf.flush()
        argv = [self.binary or xmppd_bin(), "--state-dir", self.dir, "--name", self.name, "--log-level",
                self.log_level]
        kw = dict(stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT,
                  env=self.env)
        if self.cluster.net is not None:
            self.proc = self.cluster.net.popen(self.index, argv, **kw)
        else:
            self.proc = subprocess.Popen(argv, **kw)
        self.frozen = False
        if wait:
            self.wait_ready(timeout)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=60):
        wait_started(self.proc, lambda: unix_connects(self.sock), timeout,
                     lambda: "%s: xmppd exited with %d at start:\n%s"
                     % (self.name, self.proc.returncode, self.log()[-4000:]),
                     lambda: "%s: no control socket after %ss" % (self.name, timeout))

    def kill(self):
        """SIGKILL and reap."""
        if self.alive():
            if self.frozen:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(60)
        self.frozen = False

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit status."""
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        if self.frozen:
            self.thaw()
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(60)
            raise AssertionError("%s: no exit %ss after SIGTERM" % (self.name, timeout))

    def restart(self):
        self.kill()
        return self.start()

    def freeze(self):
        """SIGSTOP (every thread stopped when this returns)."""
        netns.freeze(self.proc.pid)
        self.frozen = True

    def thaw(self):
        netns.thaw(self.proc.pid)
        self.frozen = False

    def log(self):
        return read_text(self.log_path)

    def wait_log(self, pattern, timeout=60):
        line = find_log_line(self.log, pattern, timeout, interval=0.1)
        if line is None:
            raise AssertionError("%s: no log line matches %r" % (self.name, pattern))
        return line

    # -- mmp-cli --

    def mmp(self, command, json_out=False, stdin=None, timeout=40):
        """Runs mmp-cli -c command; returns (exit status, stdout, stderr);
        exit status 124 when it times out."""
        return run_mmp(self.sock, command, json_out, stdin, timeout, catch_timeout=True)

    def ok(self, command, stdin=None, timeout=40):
        rc, out, err = self.mmp(command, stdin=stdin, timeout=timeout)
        check(rc == 0, "%s: %r failed (%d): %s\n---- log tail ----\n%s"
              % (self.name, command, rc, (err or out).strip(), self.log()[-3000:]))
        return out

    def json(self, command, timeout=40):
        rc, out, err = self.mmp(command, json_out=True, timeout=timeout)
        check(rc == 0, "%s: %r --json failed (%d): %s" % (self.name, command, rc, err))
        return unwrap(json.loads(out))

    def fails(self, command, needle=None, timeout=40):
        """The command fails (non-zero exit) with one line on stderr holding
        needle (a string or a list of strings); returns that line."""
        rc, out, err = self.mmp(command, timeout=timeout)
        check(rc != 0, "%s: %r succeeded, wanted a failure: %s" % (self.name, command, out))
        lines = [x for x in err.splitlines() if x.strip()]
        check(len(lines) == 1, "%s: %r: not one line on stderr: %r" % (self.name, command, err))
        for n in ([needle] if isinstance(needle, str) else (needle or [])):
            check(n.lower() in err.lower(), "%s: %r: %r not in %r" % (self.name, command, n, err))
        return lines[0]

    def status(self, timeout=40):
        """`xmpp cluster status`, parsed (Status); raises when it fails."""
        return Status(self.ok("xmpp cluster status", timeout=timeout))

    def status_json(self, timeout=40):
        return self.json("xmpp cluster status", timeout=timeout)

    def node_id(self):
        return self.json("xmpp status")["node_id"]

    def replicated(self):
        """This node's copy of the replicated configuration: (domain,
        ((call bridge name, fingerprint of its secret), ...)) sorted."""
        dom = self.json("xmpp status").get("domain")
        cbs = self.json("xmpp callbridge list").get("callbridges", [])
        return dom, tuple(sorted((b["name"], b["fingerprint"]) for b in cbs))

    # -- admin workflow --

    def install_pki(self, cadir):
        """Copies nodeN.key, nodeN.crt and ca-bundle.pem into <state>/pki."""
        self.put_pki(cadir, self.name + ".key", self.name + ".crt", "ca-bundle.pem")

    def put_pki(self, srcdir, *files, dst_name=None):
        """Copies files (names in srcdir) into <state>/pki, mode 0600; with
        dst_name (one file) under that name."""
        pki = os.path.join(self.dir, "pki")
        os.makedirs(pki, mode=0o700, exist_ok=True)
        for f in files:
            dst = os.path.join(pki, dst_name or f)
            shutil.copy(os.path.join(srcdir, f), dst)
            os.chmod(dst, 0o600)

    def invite(self, ttl=None):
        """`xmpp cluster invite [--ttl ttl]` on this member: the one-time
        join token it prints (docs/cluster.md "Join")."""
        out = self.ok("xmpp cluster invite%s" % (" --ttl %s" % ttl if ttl else ""))
        m = re.search(r"^Token:\s*([0-9a-f]{32})$", out, re.M)
        check(m is not None, "%s: no token in %r" % (self.name, out))
        return m.group(1)

    def configure(self, fast_lan=False):
        """The per-node part of the admin workflow: listen, certs, trust,
        cluster enable (--fast-lan: Raft's fast-LAN timing, used from the
        next start of xmppd)."""
        self.ok("xmpp listen %s" % self.addr)
        self.ok("xmpp certs %s.key %s.crt ca-bundle.pem" % (self.name, self.name))
        self.ok("xmpp cluster trust ca-bundle.pem")
        self.ok("xmpp cluster enable%s" % (" --fast-lan" if fast_lan else ""))

    def close(self):
        self.kill()
        if self.logf is not None:
            self.logf.close()
            self.logf = None


# ---- components -------------------------------------------------------------

class ClusterComp(LineProc):
    """One xcomp (libstrophe component) connected to a node's XMPP address,
    inside the node's netns host when the cluster has one.  Same interface
    as xmppdtest.Comp: wait_line, finish, output, go, close."""

    def __init__(self, node, name, secret, *args, timeout=300):
        # timeout: xcomp's whole life (--timeout), also with --stay.
        self.node = node
        self.jid = "%s.%s" % (name, DOMAIN)
        cmd = [tool("xcomp"), "--host", node.addr, "--port", str(XMPP_PORT), "--jid",
               self.jid, "--secret", secret, "--timeout", str(timeout)] + list(args)
        kw = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  text=True)
        if node.cluster.net is not None:
            self.proc = node.cluster.net.popen(node.index, cmd, **kw)
        else:
            self.proc = subprocess.Popen(cmd, **kw)
        self.errlines = []
        self._start_reader()
        self.ereader = threading.Thread(target=self._read_err, daemon=True)
        self.ereader.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.errlines.append(line.rstrip("\n"))

    def _drain(self):
        while True:
            try:
                line = self.q.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self.q.put(None)
                return
            self.lines.append(line)

    def wait_line(self, pattern, timeout=60):
        line = self._match(pattern, timeout)
        if line is None:
            raise AssertionError("%s on %s: no line matches %r; got:\n%s\nstderr:\n%s"
                                 % (self.jid, self.node.name, pattern,
                                    "\n".join(self.lines[-40:]),
                                    "\n".join(self.errlines[-20:])))
        return line

    def finish(self, timeout=60):
        """Waits for exit (AssertionError with the output on timeout);
        collects all output; returns the exit status."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError("%s on %s: no exit after %ss; output:\n%s\nstderr:\n%s"
                                 % (self.jid, self.node.name, timeout,
                                    self.output()[-3000:],
                                    "\n".join(self.errlines[-20:])))
        self.reader.join(30)
        self.ereader.join(30)
        self._drain()
        return rc

    def output(self):
        self._drain()
        return "\n".join(self.lines)

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- %s on %s output ----\n%s\n%s\n"
                             % (self.jid, self.node.name, self.output(),
                                "\n".join(self.errlines)))
        self.close()
        return False


# ---- the cluster ------------------------------------------------------------

def loopback_base():
    """A /24 of loopback addresses of this run's own: "127.R.S" (R >= 64, so
    127.0.0.x, used by the demo and by hand, is never taken)."""
    return "127.%d.%d" % (random.randint(64, 250), random.randint(1, 250))


class Cluster:
    """n nodes (1..n; nodes[0] is node1) in one temporary directory, with a
    CA and one certificate per node.  With net (a netns.Net of at least n
    hosts) node i runs inside host i."""

    def __init__(self, n, net=None, base=None, domain=DOMAIN):
        self.n = n
        self.net = net
        self.domain = domain
        # Not "xmppd-*": a by-hand `rm -rf /tmp/xmppd-*` on a shared machine
        # must not pull a running test's state from under it.
        self.base = base or tempfile.mkdtemp(prefix="xcluster-")
        self.ca = os.path.join(self.base, "ca")
        self.secrets = {}
        lb = loopback_base()
        self.nodes = []
        for i in range(1, n + 1):
            addr = net.addr(i) if net is not None else "%s.%d" % (lb, i)
            self.nodes.append(ClusterNode(self, i, addr))
        self.comps = []
        self.t0 = time.monotonic()

    def say(self, fmt, *args):
        """Progress on stdout (CTest shows it with --output-on-failure)."""
        print("[%6.1f] %s" % (time.monotonic() - self.t0, fmt % args if args else fmt),
              flush=True)

    def node(self, i):
        return self.nodes[i - 1]

    def by_addr(self, addr):
        """The node whose peer address (a.b.c.d:5224 or a.b.c.d) is addr."""
        for nd in self.nodes:
            if addr in (nd.addr, nd.peer_addr):
                return nd
        return None

    def live(self):
        return [nd for nd in self.nodes if nd.alive() and not nd.frozen]

    # -- building --

    def make_pki(self):
        make_ca(self.ca)
        for nd in self.nodes:
            make_node_cert(self.ca, nd.name, nd.addr, self.domain)

    def start_all(self):
        for nd in self.nodes:
            nd.start(wait=False)
        for nd in self.nodes:
            nd.wait_ready()

    def form(self, members=None, timeout=60, fast_lan=False):
        """Makes the PKI, starts every node and forms the cluster the way an
        admin does (see the module comment).  members: how many nodes join
        (default all).  fast_lan: `xmpp cluster enable --fast-lan` and a
        restart of each node (the profile applies from the next start), for
        tests whose point is not the default timing.  Returns the leader
        (after wait_converged)."""
        members = self.n if members is None else members
        self.make_pki()
        self.start_all()
        for nd in self.nodes:
            nd.install_pki(self.ca)
            nd.configure(fast_lan)
        if fast_lan:
            for nd in self.nodes:
                nd.stop()
                nd.start()
        first = self.nodes[0]
        first.ok("xmpp domain %s" % self.domain)
        first.ok("xmpp cluster initialize")
        first.ok("xmpp enable")
        self.say("node1 initialized the cluster")
        for nd in self.nodes[1:members]:
            self.join(nd)
        return self.wait_converged(timeout=timeout, members=self.nodes[:members])

    def join(self, nd, replace=False, via=None):
        via = via or self.nodes[0]
        nd.ok("xmpp cluster join %s %s%s" % (via.addr, via.invite(),
                                             " --replace" if replace else ""),
              timeout=60)
        # The join answers once this node is a member; the replicated domain
        # arrives with the log.  (Waiting for it here is what a careful admin
        # does; it normally takes no time at all.)
        t = time.monotonic()
        wait_for(lambda: nd.json("xmpp status").get("domain"), 60,
                 "%s: the replicated domain after the join" % nd.name)
        if time.monotonic() - t > 1.0:
            self.say("%s: the domain arrived %.1fs after the join", nd.name,
                     time.monotonic() - t)
        nd.ok("xmpp enable")
        self.say("%s joined through %s", nd.name, via.name)

    # -- checking --

    def statuses(self, nodes=None):
        """{node: Status} for the given (default: live) nodes; a node whose
        status fails maps to the error text."""
        out = {}
        for nd in (nodes if nodes is not None else self.live()):
            rc, text, err = nd.mmp("xmpp cluster status", timeout=30)
            out[nd] = Status(text) if rc == 0 else "exit %d: %s" % (rc, err.strip())
        return out

    def converged(self, members, asking=None):
        """(leader node, "") when every node in asking (default members)
        answers status, all agree on one term and one leader (a member),
        exactly one of them is LEADER, and each lists exactly the members'
        addresses, each once, with one "(Leader)"; else (None, why)."""
        asking = members if asking is None else asking
        want = sorted(nd.peer_addr for nd in members)
        st = self.statuses(asking)
        terms, leaders, nleaders = set(), set(), 0
        for nd, s in st.items():
            if isinstance(s, str):
                return None, "%s: status failed: %s" % (nd.name, s)
            if s.state == "LEADER":
                nleaders += 1
            terms.add(s.term)
            leaders.add(s.leader)
            got = sorted(s.addrs())
            if got != want:
                return None, "%s lists %s, wanted %s" % (nd.name, got, want)
            if len(s.leaders()) != 1:
                return None, "%s marks %d leaders: %s" % (nd.name, len(s.leaders()), s.text)
        if nleaders != 1:
            return None, "%d nodes say LEADER: %s" % (
                nleaders, {nd.name: s.state for nd, s in st.items()})
        if len(terms) != 1 or len(leaders) != 1 or None in leaders:
            return None, "terms %s, leaders %s" % (terms, leaders)
        leader = self.by_addr(leaders.pop())
        if leader is None or leader not in members:
            return None, "the leader is not a member"
        for nd, s in st.items():
            if s.leaders()[0]["addr"] != leader.peer_addr:
                return None, "%s marks %s as (Leader), not %s" % (
                    nd.name, s.leaders()[0]["addr"], leader.peer_addr)
        return leader, ""

    def wait_converged(self, timeout=60, members=None, asking=None, stable=0.3):
        """Waits for converged() (and for it to hold again after `stable`
        seconds); returns the leader node.  members default: every node
        that is alive and not frozen."""
        members = self.live() if members is None else list(members)
        deadline = time.monotonic() + timeout
        why = ""
        while time.monotonic() < deadline:
            leader, why = self.converged(members, asking)
            if leader is not None:
                time.sleep(stable)
                again, why = self.converged(members, asking)
                if again is leader:
                    return leader
            time.sleep(0.1)
        raise AssertionError("no converged cluster after %ss: %s\n%s"
                             % (timeout, why, self.dump(members)))

    def wait_leader(self, asking, not_node=None, timeout=60):
        """Waits until every node in asking agrees on one leader (other than
        not_node, and running) that calls itself LEADER; returns (leader
        node, term).
        Does not check the peer lists (a killed member stays listed)."""
        deadline = time.monotonic() + timeout
        why = ""
        while time.monotonic() < deadline:
            st = self.statuses(asking)
            bad = [nd.name for nd, s in st.items() if isinstance(s, str)]
            if not bad:
                leaders = {s.leader for s in st.values()}
                terms = {s.term for s in st.values()}
                if len(leaders) == 1 and len(terms) == 1 and None not in leaders:
                    ld = self.by_addr(leaders.pop())
                    if ld is not None and ld is not not_node and ld.alive() and not ld.frozen:
                        if ld in st and st[ld].state != "LEADER":
                            why = "%s not LEADER yet" % ld.name
                        else:
                            return ld, terms.pop()
                    else:
                        why = "leader %s" % (ld.name if ld else "unknown")
                else:
                    why = "leaders %s terms %s" % (leaders, terms)
            else:
                why = "status failed on %s" % bad
            time.sleep(0.1)
        raise AssertionError("no new leader after %ss: %s\n%s"
                             % (timeout, why, self.dump(asking)))

    def leader(self):
        """The leader as the first live node sees it (None if it has none)."""
        for nd in self.live():
            s = nd.status()
            return self.by_addr(s.leader) if s.leader else None
        return None

    def followers(self, leader=None):
        leader = leader or self.leader()
        return [nd for nd in self.live() if nd is not leader]

    def dump(self, nodes=None):
        out = []
        for nd in (nodes if nodes is not None else self.nodes):
            if not nd.alive():
                out.append("---- %s: not running" % nd.name)
                continue
            if nd.frozen:
                out.append("---- %s: frozen" % nd.name)
                continue
            rc, text, err = nd.mmp("xmpp cluster status", timeout=20)
            out.append("---- %s (%s) status exit %d ----\n%s%s"
                       % (nd.name, nd.addr, rc, text, err))
        return "\n".join(out)

    def wait_replicated(self, command, predicate, nodes=None, timeout=60, what=""):
        """Waits until predicate(output of command) holds on every node in
        nodes (default: live)."""
        nodes = self.live() if nodes is None else nodes
        deadline = time.monotonic() + timeout
        last = {}
        while True:
            bad = []
            for nd in nodes:
                rc, out, err = nd.mmp(command, timeout=30)
                last[nd.name] = out if rc == 0 else err
                if rc != 0 or not predicate(out):
                    bad.append(nd.name)
            if not bad:
                return
            if time.monotonic() > deadline:
                raise AssertionError("%s: %r not as wanted on %s after %ss: %s"
                                     % (what, command, bad, timeout, last))
            time.sleep(0.2)

    def wait_same_state(self, nodes=None, timeout=60):
        """Waits until every node (default: live) holds the same replicated
        configuration (replicated()); returns it."""
        nodes = self.live() if nodes is None else nodes
        deadline = time.monotonic() + timeout
        while True:
            got = {nd.name: nd.replicated() for nd in nodes}
            if len(set(got.values())) == 1:
                return next(iter(got.values()))
            if time.monotonic() > deadline:
                raise AssertionError("replicated state differs after %ss: %s" % (timeout, got))
            time.sleep(0.2)

    # -- call bridges and components --

    def add_callbridge(self, name, on=None, everywhere=True):
        """xmpp callbridge add on a node (default node1); returns the secret.
        The answer means committed; with everywhere (default) this also waits
        until every live node has applied it, so that a component may connect
        to any node at once."""
        on = on or self.nodes[0]
        out = on.ok("xmpp callbridge add %s" % name, timeout=30)
        m = re.search(r"Secret:\s*(\S+)", out)
        check(m is not None, "no secret in %r" % out)
        self.secrets[name] = m.group(1)
        if everywhere:
            self.wait_replicated("xmpp callbridge list",
                                 lambda o: re.search(r"(?m)^%s\s" % re.escape(name), o),
                                 what="call bridge %s" % name)
        return self.secrets[name]

    def wait_serving(self, node, timeout=60):
        """Waits until node serves XMPP (`xmpp status`: Serving yes); the
        failure names the node's own error."""
        deadline = time.monotonic() + timeout
        while True:
            st = node.json("xmpp status")
            if st.get("serving"):
                return
            if time.monotonic() > deadline:
                raise AssertionError("%s does not serve XMPP after %ss (enabled %s, error %r)"
                                     % (node.name, timeout, st.get("enabled"), st.get("error")))
            time.sleep(0.1)

    def comp(self, node, name, *args, timeout=300):
        """Starts a component (xcomp) named name on node, with the secret
        from add_callbridge, once the node serves XMPP; closed by close() if
        the test does not."""
        self.wait_serving(node)
        c = ClusterComp(node, name, self.secrets[name], *args, timeout=timeout)
        self.comps.append(c)
        return c

    def wait_components(self, names, timeout=60):
        """Waits until the leader's routing table counts the components: the
        sum of the per-node counts (`routes` in the leader's status --json)
        is at least len(names).  Best effort when the status has no
        counts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ld = self.leader()
            if ld is not None:
                counts = route_counts(ld)
                if None in counts.values():
                    return
                if sum(counts.values()) >= len(names):
                    return
            time.sleep(0.1)
        raise AssertionError("components %s not in the leader's status after %ss\n%s"
                             % (names, timeout, self.dump()))

    # -- cleanup --

    def close(self, failed=False):
        for c in self.comps:
            try:
                c.close()
            except Exception:  # noqa: BLE001  cleanup goes on
                pass
        for nd in self.nodes:
            try:
                nd.close()
            except Exception:  # noqa: BLE001
                pass
        sanitizer = []
        for nd in self.nodes:
            log = nd.log()
            if failed:
                sys.stderr.write("---- %s log (tail) ----\n%s\n" % (nd.name, log[-6000:]))
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                           "runtime error:"):
                if marker in log:
                    sanitizer.append(nd.name)
        if os.environ.get("XMPPD_KEEP_TMP"):
            print("kept", self.base)
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        if sanitizer and not failed:
            raise AssertionError("sanitizer reports in the logs of %s" % sanitizer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(failed=exc[0] is not None)
        return False


def wait_logged(nodes, rx, timeout, what):
    """Waits until a log line of one of nodes matches rx (compiled regex);
    returns that line (AssertionError what after timeout seconds)."""
    return wait_for(lambda: next((ln for nd in nodes for ln in nd.log().splitlines()
                                  if rx.search(ln)), None), timeout, what)


def check_peers(nodes, members, what=None):
    """Every node of nodes lists exactly members' peer addresses (xmpp
    cluster status); what(nd, status) words a failure ("nodeN lists ...")."""
    for nd in nodes:
        s = nd.status()
        check(sorted(s.addrs()) == sorted(x.peer_addr for x in members),
              what(nd, s) if what else "%s lists %s" % (nd.name, s.addrs()))


def online_counts(nd):
    """{user name: number of sessions} in nd's copy of the cluster's
    routing table (`xmpp user list --json`)."""
    return {u["name"]: u["online"] for u in nd.json("xmpp user list")["users"]}


def wait_sessions(nodes, want, timeout=60):
    """Waits until every node of nodes counts want[user] sessions for each
    user in want (online_counts).  A client's login is announced through
    the leader: until a node has it, a stanza to that full JID from a
    client on that node may go elsewhere."""
    last = {}

    def ok():
        for nd in nodes:
            got = online_counts(nd)
            last[nd.name] = got
            if any(got.get(u) != n for u, n in want.items()):
                return False
        return True
    try:
        wait_for(ok, timeout, "sessions %s on %s" % (want, [nd.name for nd in nodes]))
    except AssertionError as e:
        raise AssertionError("%s; last seen %s" % (e, last))


def wait_client_counts(asking, want, timeout=60):
    """Waits until `xmpp cluster status` on asking shows, on the line of
    each member in want ({peer address: (tcp, websocket)}), "clients tcp
    T, websocket W", and checks that --json agrees
    (peers[].sessions.clients_tcp / clients_websocket); returns the text.
    A follower's counts reach the leader in its link's PINGs, after the
    session table: wait for them."""
    def counted():
        text = asking.ok("xmpp cluster status")
        for addr, (tcp, ws) in want.items():
            line = [ln for ln in text.splitlines() if ln.startswith(addr)]
            if not (len(line) == 1 and
                    "clients tcp %d, websocket %d" % (tcp, ws) in line[0]):
                return None
        return text
    try:
        text = wait_for(counted, timeout, "client counts by transport on %s" % asking.name)
    except AssertionError as e:
        raise AssertionError("%s:\n%s" % (e, asking.ok("xmpp cluster status")))
    by = {p["address"]: p["sessions"] for p in asking.json("xmpp cluster status")["peers"]}
    for addr, (tcp, ws) in want.items():
        got = by.get(addr) or {}
        if (got.get("clients_tcp"), got.get("clients_websocket")) != (tcp, ws):
            raise AssertionError("xmpp cluster status --json on %s, %s: %r, want tcp %d, "
                                 "websocket %d" % (asking.name, addr, got, tcp, ws))
    return text


def wait_for(cond, timeout, what, interval=0.1):
    """Polls cond() until it returns a true value (returned) or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s: not after %ss" % (what, timeout))
        time.sleep(interval)
