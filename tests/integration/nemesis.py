#!/usr/bin/env python3
"""nemesis: the project's own Jepsen-style fault-injection test.

Five xmppd nodes, each in its own network namespace (netns.py), formed
into a cluster through the shell (cluster.py).  Component pairs on
different nodes (tools/nemcomp.c) send numbered messages both ways at a
steady rate; admin writes (`xmpp callbridge add` of throwaway names) run
through the shell with their outcome recorded; `xmpp cluster status
--json` is scraped on every node every second.  Meanwhile a seeded random
schedule of faults, one at a time with calm between them:

  kill            SIGKILL a node (the leader half the time), restart it
  pause           SIGSTOP a node (the leader half the time), SIGCONT
  isolate-leader  cut the leader off from every other node, heal
  split           a minority of 2 and a majority of 3, heal
  bridge          {a,b} and {d,e} cut from each other, c sees both (not
                  transitive), heal
  move            a component closes its session and reconnects to
                  another node
  jump            a component leaves its session open and connects to
                  another node (a bridge back from a network loss): the
                  old session must get conflict
  reset           `xmpp reset --force` on a follower, configure it again,
                  `xmpp cluster join <member> --replace` (Cluster.join)

and one node runs under faketime, 60 s fast, from its start (clock
skew).  Then everything is healed, the cluster must converge, the
senders stop, the traffic drains, and nemesis_check judges every message
(delivered at most once, in order per sender and receiver session, or
answered with an error and never delivered; missing only with an excuse),
every acknowledged write (present on every node), every term (one leader),
and every node process (no crash).  It prints a summary; a failing run
prints its replay command.

    scripts/nemesis --duration 1800 --seed 7
    python3 tests/integration/nemesis.py --duration 120 --seed 1 [--keep]

Exit status: 0 every invariant held, 1 an invariant failed, 2 the harness
itself failed (the cluster could not be formed, ...).
"""

import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nemesis_check as nck  # noqa: E402
import netns  # noqa: E402
from cluster import DOMAIN, XMPP_PORT, Cluster  # noqa: E402
from xmppdtest import unwrap, tool  # noqa: E402

FAULTS = collections.OrderedDict([("kill", 3), ("pause", 3), ("isolate-leader", 2),
                                  ("split", 2), ("bridge", 2), ("move", 3), ("jump", 2),
                                  ("reset", 1)])
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def replay_command(a):
    """The command that runs the same schedule again (the same choices;
    what they hit and the timing may differ)."""
    return "scripts/nemesis --seed %d --duration %d --rate %d --pairs %d%s%s%s" % (
        a.seed, a.duration, a.rate, a.pairs, "" if a.skew else " --no-skew",
        " --nodes %d" % a.nodes if a.nodes != 5 else "",
        " --window %g" % a.window if a.window != 15.0 else "")


# ---- one component ----------------------------------------------------------

class Comp:
    """One nemcomp process, started inside its home node's host; its node
    list starts with home and goes on round-robin."""

    def __init__(self, run, name, partner, home):
        self.run = run
        self.name = name
        self.partner = partner
        c = run.c
        order = [c.nodes[(home.index - 1 + k) % c.n] for k in range(c.n)]
        self.node_of = [nd.index for nd in order]
        self.log_path = os.path.join(run.out, "%s.log" % name)
        self.err_path = os.path.join(run.out, "%s.err" % name)
        argv = [tool("nemcomp"), "--jid", "%s.%s" % (name, DOMAIN), "--secret",
                c.secrets[name], "--to", "%s.%s" % (partner, DOMAIN), "--nodes",
                ",".join("%s:%d" % (nd.addr, XMPP_PORT) for nd in order), "--rate",
                str(run.a.rate), "--timeout", str(run.a.duration + 900)]
        self.outf = open(self.log_path, "w")
        self.errf = open(self.err_path, "w")
        self.proc = c.net.popen(home.index, argv, stdin=subprocess.PIPE, stdout=self.outf,
                                stderr=self.errf, text=True)
        self.pos = 0
        self.at = None  # node number of the current session, None between

    def cmd(self, line):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass

    def poll_log(self):
        """Follows conn/end lines: self.at is where the session is now."""
        try:
            with open(self.log_path) as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        cut = data.rfind("\n") + 1
        self.pos += len(data[:cut].encode())
        for line in data[:cut].splitlines():
            if line.startswith("conn "):
                self.at = self.node_of[int(line.split()[3])]
            elif line.startswith("end "):
                self.at = None

    def index_of(self, node):
        return self.node_of.index(node)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)
        for f in (self.proc.stdin, self.outf, self.errf):
            try:
                f.close()
            except OSError:
                pass


# ---- the run ----------------------------------------------------------------

class Run:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.out = a.out or tempfile.mkdtemp(prefix="nemesis-")
        os.makedirs(self.out, exist_ok=True)
        self.t0 = time.monotonic()
        self.lock = threading.RLock()     # node process changes
        self.expect = {}                  # node number -> up|down|frozen|resetting
        self.deaths = []                  # (t, node, kind)
        self.faults = []                  # dicts
        self.harness = []                 # problems of the test tools themselves
        self.samples = []                 # (t, node, node_id, state, term, leader_id)
        self.writes = []                  # dicts
        self.crashes = []                 # strings
        self.problems = []                # harness-level failures of the cluster
        self.outside = set()              # reset nodes whose rejoin failed: alone
        self.stop = threading.Event()
        self.comps = []

    def say(self, fmt, *args):
        print("[%7.1f] %s" % (time.monotonic() - self.t0, fmt % args if args else fmt),
              flush=True)

    # -- state of nodes --

    def up(self):
        """Nodes that are running, not paused and not being reset."""
        return [nd for nd in self.c.nodes if self.expect.get(nd.index) == "up"]

    def leader(self):
        """The leader most of the up nodes name right now (or None)."""
        votes = collections.Counter()
        for nd in self.up():
            rc, out, err = nd.mmp("xmpp cluster status", json_out=True, timeout=20)
            if rc != 0:
                continue
            try:
                ld = unwrap(json.loads(out)).get("leader")
            except ValueError:
                continue
            if ld:
                votes[ld.get("address")] += 1
        for addr, _ in votes.most_common(1):
            nd = self.c.by_addr(addr)
            if nd is not None and self.expect.get(nd.index) == "up":
                return nd
        return None

    def death(self, nd, kind):
        self.deaths.append((time.monotonic(), nd.index, kind))

    # -- background: status scraper and crash watch; admin writes --

    def scrape(self):
        while not self.stop.is_set():
            for nd in self.c.nodes:
                self.watch_crash(nd)
                if self.expect.get(nd.index) != "up":
                    continue
                t = time.monotonic()
                rc, out, err = nd.mmp("xmpp cluster status", json_out=True, timeout=20)
                if rc != 0:
                    continue
                try:
                    j = unwrap(json.loads(out))
                except ValueError:
                    continue
                ld = j.get("leader") or {}
                self.samples.append((t, nd.index, j.get("node_id"), j.get("state"),
                                     j.get("term"), ld.get("node_id"), j.get("cluster_id")))
            self.stop.wait(1.0)

    def watch_crash(self, nd):
        """A node that should run but whose process ended crashed: record
        it (an invariant violation and a node death), and start it again."""
        with self.lock:
            if self.expect.get(nd.index) not in ("up", "frozen") or nd.alive():
                return
            rc = nd.proc.returncode
            log = nd.log()
            tail = [ln for ln in log.splitlines()[-400:]
                    if any(w in ln for w in ("ERROR", "Assertion", "double free", "abort",
                                             "free():", "SUMMARY", "corrupted"))]
            what = "node%d exited (%s) at %.1fs%s" % (
                nd.index, "signal %d" % -rc if rc < 0 else "status %d" % rc,
                time.monotonic() - self.t0, (": " + " | ".join(tail[-3:])) if tail else "")
            self.crashes.append(what)
            self.death(nd, "crash")
            self.say("CRASH %s", what)
            nd.frozen = False
            try:
                nd.start()
                self.expect[nd.index] = "up"
            except AssertionError as e:
                self.problems.append("node%d does not start after its crash: %s"
                                     % (nd.index, str(e)[:300]))
                self.expect[nd.index] = "down"

    def admin_writes(self):
        rng = random.Random(self.a.seed * 7919 + 1)
        k = 0
        while not self.stop.wait(rng.uniform(0.5, 2.0)):
            nodes = self.up()
            if not nodes:
                continue
            # A reset node whose rejoin failed is a cluster of its own: a
            # write it acknowledges is not one of the cluster's.
            nodes = [nd for nd in nodes if nd.index not in self.outside]
            if not nodes:
                continue
            nd = rng.choice(nodes)
            k += 1
            name = "w%d" % k
            t = time.monotonic()
            rc, out, err = nd.mmp("xmpp callbridge add %s" % name, timeout=15)
            self.writes.append({"name": name, "node": nd.index, "ok": rc == 0, "t": t,
                                "took": time.monotonic() - t,
                                "error": (err or out).strip()[:200] if rc else ""})

    # -- faults --

    def fault(self, kind, what, start, end=None, role=None, nodes=()):
        """Records a fault; nodes are the node numbers it killed, paused or
        cut off from the majority (delivery_gaps reports their flows apart)."""
        f = {"kind": kind, "what": what, "start": start, "role": role,
             "nodes": sorted(nodes), "end": time.monotonic() if end is None else end}
        self.faults.append(f)
        self.say("fault %-14s %s (%.1fs)", kind, what, f["end"] - start)

    def pick_node(self, leader_bias=0.5):
        """(node, "leader" or "follower"): the leader with leader_bias, else
        any running node."""
        ld = self.leader()
        if ld is not None and self.rng.random() < leader_bias:
            return ld, "leader"
        nodes = self.up()
        nd = self.rng.choice(nodes) if nodes else None
        return nd, "leader" if nd is ld else "follower"

    def f_kill(self):
        nd, role = self.pick_node()
        if nd is None:
            return
        d = self.rng.uniform(1.0, 6.0)
        t = time.monotonic()
        with self.lock:
            self.expect[nd.index] = "down"
            nd.kill()
            self.death(nd, "kill")
        time.sleep(d)
        with self.lock:
            nd.start()
            self.expect[nd.index] = "up"
        self.fault("kill", "%s (%s)" % (nd.name, role), t, role=role, nodes=[nd.index])

    def f_pause(self):
        nd, role = self.pick_node()
        if nd is None:
            return
        d = self.rng.uniform(2.0, 12.0)
        t = time.monotonic()
        with self.lock:
            self.expect[nd.index] = "frozen"
            nd.freeze()
        time.sleep(d)
        with self.lock:
            if nd.alive():
                nd.thaw()
            self.expect[nd.index] = "up"
        self.fault("pause", "%s (%s)" % (nd.name, role), t, role=role, nodes=[nd.index])

    def f_isolate_leader(self):
        ld = self.leader()
        if ld is None:
            return
        d = self.rng.uniform(3.0, 10.0)
        t = time.monotonic()
        self.c.net.isolate(ld.index)
        time.sleep(d)
        self.c.net.heal()
        self.fault("isolate-leader", ld.name, t, nodes=[ld.index])

    def f_split(self):
        idx = [nd.index for nd in self.c.nodes]
        self.rng.shuffle(idx)
        minority, majority = sorted(idx[:2]), sorted(idx[2:])
        d = self.rng.uniform(3.0, 10.0)
        t = time.monotonic()
        self.c.net.partition([minority, majority])
        time.sleep(d)
        self.c.net.heal()
        self.fault("split", "%s | %s" % (minority, majority), t, nodes=minority)

    def f_bridge(self):
        idx = [nd.index for nd in self.c.nodes]
        self.rng.shuffle(idx)
        left, mid, right = idx[:2], idx[2], idx[3:]
        d = self.rng.uniform(3.0, 10.0)
        t = time.monotonic()
        for x in left:
            for y in right:
                self.c.net.cut(x, y)
        time.sleep(d)
        self.c.net.heal()
        self.fault("bridge", "%s | %d | %s" % (sorted(left), mid, sorted(right)), t,
                   nodes=left + right)

    def f_move(self):
        comp = self.rng.choice(self.comps)
        comp.poll_log()
        targets = [nd for nd in self.c.nodes if nd.index != comp.at]
        nd = self.rng.choice(targets)
        t = time.monotonic()
        comp.cmd("move %d" % comp.index_of(nd.index))
        self.fault("move", "%s node%s -> %s" % (comp.name, comp.at, nd.name), t, t)

    def f_jump(self):
        comp = self.rng.choice(self.comps)
        comp.poll_log()
        targets = [nd for nd in self.c.nodes if nd.index != comp.at]
        nd = self.rng.choice(targets)
        t = time.monotonic()
        comp.cmd("jump %d" % comp.index_of(nd.index))
        self.fault("jump", "%s node%s -> %s" % (comp.name, comp.at, nd.name), t, t)

    def f_reset(self):
        ld = self.leader()
        cands = [nd for nd in self.up() if nd is not ld]
        if ld is None or not cands:
            return
        nd = self.rng.choice(cands)
        t = time.monotonic()
        with self.lock:
            self.expect[nd.index] = "resetting"
        try:
            self.death(nd, "reset")
            nd.ok("xmpp reset --yes --force")
            nd.configure()
            self.rejoin(nd)
        except (AssertionError, subprocess.TimeoutExpired) as e:
            self.problems.append("reset of %s failed: %s" % (nd.name, str(e)[:400]))
            self.say("reset of %s failed: %s", nd.name, str(e)[:200])
        finally:
            with self.lock:
                self.expect[nd.index] = "up"
        self.fault("reset", nd.name, t)

    def rejoin(self, nd, tries=3):
        """`xmpp cluster join <member> --replace` on nd (Cluster.join, the
        one place that knows the join workflow), through up to `tries`
        members in turn; each failure is a problem of the run.  True when
        it joined."""
        vias = [x for x in self.c.nodes if x is not nd and self.expect.get(x.index) == "up"]
        self.rng.shuffle(vias)
        self.outside.add(nd.index)
        for via in vias[:tries]:
            if via.index in self.outside:
                continue
            try:
                self.c.join(nd, replace=True, via=via)
                self.outside.discard(nd.index)
                return True
            except (AssertionError, subprocess.TimeoutExpired) as e:
                first = str(e).split("\n")[0][:300]
                self.problems.append("%s: join --replace through %s failed: %s"
                                     % (nd.name, via.name, first))
                self.say("%s: join through %s failed: %s", nd.name, via.name, first)
        return False

    def repair_members(self):
        """Joins again every node that is not in the cluster the others are
        in (a reset whose rejoin failed)."""
        ids = {}
        for nd in self.c.nodes:
            rc, out, err = nd.mmp("xmpp cluster status", json_out=True, timeout=10)
            try:
                ids[nd] = unwrap(json.loads(out)).get("cluster_id") if rc == 0 else None
            except ValueError:
                ids[nd] = None
        common = collections.Counter(v for v in ids.values() if v).most_common(1)
        for nd, cid in ids.items():
            if common and cid != common[0][0]:
                self.say("%s is not in cluster %s (it is in %s): joining it again",
                         nd.name, common[0][0], cid)
                self.rejoin(nd)
        return ids

    def members(self):
        """The nodes in the cluster most nodes are in (a node whose rejoin
        failed is left out of the write check; that failure is reported
        once, as a cluster problem)."""
        ids = {}
        for nd in self.c.nodes:
            rc, out, err = nd.mmp("xmpp cluster status", json_out=True, timeout=10)
            try:
                ids[nd] = unwrap(json.loads(out)).get("cluster_id") if rc == 0 else None
            except ValueError:
                ids[nd] = None
        common = collections.Counter(v for v in ids.values() if v).most_common(1)
        out = [nd for nd, cid in ids.items() if common and cid == common[0][0]]
        for nd in self.c.nodes:
            if nd not in out:
                self.problems.append("%s is not a member at the end (cluster %s): left out "
                                     "of the write check" % (nd.name, ids.get(nd)))
        return out

    def schedule(self):
        kinds = list(FAULTS.keys())
        weights = [FAULTS[k] for k in kinds]
        end = time.monotonic() + self.a.duration
        while time.monotonic() < end:
            time.sleep(self.rng.uniform(2.0, 6.0))
            if time.monotonic() >= end:
                break
            kind = self.rng.choices(kinds, weights)[0]
            try:
                getattr(self, "f_" + kind.replace("-", "_"))()
            except (AssertionError, subprocess.TimeoutExpired) as e:
                self.problems.append("fault %s: %s" % (kind, str(e)[:400]))
                self.say("fault %s went wrong: %s", kind, str(e)[:200])

    # -- the whole run --

    def setup(self):
        a = self.a
        self.net = netns.Net(a.nodes)
        self.c = Cluster(a.nodes, net=self.net)
        self.c.say = self.say
        if a.skew:
            nd = self.c.nodes[-1]
            nd.env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="+60s",
                          FAKETIME_DONT_FAKE_MONOTONIC="1")
            self.say("%s runs under faketime, 60 s fast", nd.name)
        self.c.form(timeout=120)
        for nd in self.c.nodes:
            self.expect[nd.index] = "up"
        names = []
        for p in range(1, a.pairs + 1):
            names += ["a%d" % p, "b%d" % p]
        for name in names:
            self.c.add_callbridge(name)
        n = a.nodes
        # Homes: a1 on the last node (the skewed one), b1 on node 2, a2 on
        # node 3, b2 on node 4, then round the nodes; node 1, which formed
        # the cluster and likely leads, has none at first.
        homes = [n] + list(range(2, n)) + [1] if n > 2 else list(range(1, n + 1))
        for k, name in enumerate(names):
            partner = names[k + 1] if k % 2 == 0 else names[k - 1]
            self.comps.append(Comp(self, name, partner, self.c.node(homes[k % n])))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for cp in self.comps:
                cp.poll_log()
            if all(cp.at is not None for cp in self.comps):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("components not connected: %s"
                                 % {cp.name: cp.at for cp in self.comps})
        self.c.wait_components(names)
        self.say("components %s", ", ".join("%s@node%s" % (cp.name, cp.at)
                                            for cp in self.comps))

    def main(self):
        a = self.a
        self.setup()
        threads = [threading.Thread(target=self.scrape, daemon=True),
                   threading.Thread(target=self.admin_writes, daemon=True)]
        for cp in self.comps:
            cp.cmd("go")
        for th in threads:
            th.start()
        self.traffic_start = time.monotonic()
        self.say("traffic started: %d components, %d msg/s each; faults for %ds (seed %d)",
                 len(self.comps), a.rate, a.duration, a.seed)
        self.schedule()
        self.heal_all()
        self.stop.set()
        for th in threads:
            th.join(30)
        self.drain()
        return self.judge()

    def heal_all(self):
        self.say("healing: heal the network, thaw and start every node")
        self.c.net.heal()
        with self.lock:
            for nd in self.c.nodes:
                if nd.frozen and nd.alive():
                    nd.thaw()
                if not nd.alive():
                    try:
                        nd.start()
                    except AssertionError as e:
                        self.problems.append("%s does not start at the end: %s"
                                             % (nd.name, str(e)[:300]))
                        continue
                self.expect[nd.index] = "up"
        self.repair_members()
        try:
            ld = self.c.wait_converged(timeout=90, members=self.c.nodes)
            self.say("converged: %s leads", ld.name)
        except AssertionError as e:
            self.problems.append("no converged cluster 90 s after healing: %s" % str(e)[:600])
            self.say("NOT converged after healing")
        for nd in self.c.nodes:
            self.watch_crash(nd)

    def drain(self):
        """Lets every component reconnect and the traffic flow for a while,
        stops the senders and waits until nothing more arrives."""
        time.sleep(5.0)
        for cp in self.comps:
            cp.cmd("stop")
        # A component tool that ended (or hung) by itself voids its flows'
        # figures: a harness problem, said as such (seed 12 once lost b2's
        # nemcomp 150 s in; its flows then showed 10 s gaps after every fault).
        for cp in self.comps:
            rc = cp.proc.poll()
            if rc is not None:
                self.harness.append("nemcomp %s ended by itself (exit %s)" % (cp.name, rc))
            elif time.time() - os.path.getmtime(cp.log_path) > 30:
                self.harness.append("nemcomp %s printed nothing for %.0f s (hung?)" % (
                    cp.name, time.time() - os.path.getmtime(cp.log_path)))
        self.say("senders stopped; waiting for the traffic to drain")
        # Quiet for 10 s (a component may wait out a reconnect backoff on
        # a loaded machine), at most 120 s.
        deadline = time.monotonic() + 120
        sizes, still = None, 0.0
        while time.monotonic() < deadline:
            now = tuple(os.path.getsize(cp.log_path) for cp in self.comps)
            if now == sizes:
                still += 0.5
                if still >= 10.0:
                    break
            else:
                sizes, still = now, 0.0
            time.sleep(0.5)
        for cp in self.comps:
            cp.cmd("quit")
        for cp in self.comps:
            try:
                cp.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
            cp.close()
        for nd in self.c.nodes:
            self.watch_crash(nd)

    def final_lists(self):
        """{node: set of call bridge names}, waiting up to 60 s for every
        node to hold every acknowledged write."""
        acked = [w["name"] for w in self.writes if w["ok"]]
        deadline = time.monotonic() + 60
        members = self.members()
        while True:
            lists = {}
            for nd in members:
                rc, out, err = nd.mmp("xmpp callbridge list", json_out=True, timeout=10)
                names = set()
                if rc == 0:
                    try:
                        names = {b["name"] for b in unwrap(json.loads(out)).get("callbridges", [])}
                    except ValueError:
                        pass
                lists[nd.index] = names
            if all(all(n in s for n in acked) for s in lists.values()) and \
                    len({frozenset(s) for s in lists.values()}) == 1:
                return lists
            if time.monotonic() > deadline:
                return lists
            time.sleep(1.0)

    def judge(self):
        h = nck.History()
        for cp in self.comps:
            h.partner[cp.name] = cp.partner
            h.home[cp.name] = cp.node_of[0]
            with open(cp.log_path) as f:
                h.add_comp_log(cp.name, f.read(), cp.node_of)
        h.deaths = list(self.deaths)
        v = nck.check(h, window=self.a.window)
        terms = nck.check_terms(self.samples)
        lists = self.final_lists()
        writes = nck.check_writes([(w["name"], w["ok"]) for w in self.writes], lists)
        faults = [(gap_kind(f), f["start"], f["end"], f.get("nodes")) for f in self.faults]
        gaps = nck.delivery_gaps(h, faults)
        violations = collections.OrderedDict()
        for k, xs in v.violations.items():
            if xs:
                violations[k] = xs
        if terms:
            violations["two-leaders-in-a-term"] = terms
        if writes:
            violations["acknowledged-write"] = writes
        if self.crashes:
            violations["crash"] = self.crashes
        if self.problems:
            violations["cluster"] = self.problems
        self.summary(h, v, gaps, violations)
        with open(os.path.join(self.out, "summary.json"), "w") as f:
            json.dump({"seed": self.a.seed, "duration": self.a.duration,
                       "violations": {k: len(x) for k, x in violations.items()},
                       "examples": {k: x[:20] for k, x in violations.items()},
                       "faults": self.faults, "writes": self.writes, "deaths": self.deaths,
                       "homes": {cp.name: cp.node_of for cp in self.comps},
                       "gaps": gaps}, f, indent=1)
        with open(os.path.join(self.out, "status.jsonl"), "w") as f:
            for s in self.samples:
                f.write(json.dumps(s) + "\n")
        return violations

    def summary(self, h, v, gaps, violations):
        p = print
        p("")
        p("==== nemesis summary: seed %d, %d s of faults, %d nodes, %d components at %d msg/s"
          % (self.a.seed, self.a.duration, self.a.nodes, len(self.comps), self.a.rate))
        p("messages: sent %d, delivered %d (%d deliveries), errored %d, excused-lost %d"
          % (v.sent, v.delivered, v.deliveries, v.errored, sum(v.excused.values())))
        for why, n in sorted(v.excused.items()):
            p("  excused: %-26s %d" % (why, n))
        p("errors by condition: %s%s" % (
            ", ".join("%s %d" % kv for kv in sorted(v.conditions.items())) or "none",
            "; %d messages answered more than once" % v.multi_errors if v.multi_errors else ""))
        kinds = collections.Counter(f["kind"] for f in self.faults)
        p("faults: %s" % ", ".join("%s %d" % (k, kinds[k]) for k in FAULTS if kinds[k]))
        p("node deaths: %s" % (", ".join("node%d %s at %.1fs" % (n, k, t - self.t0)
                                        for t, n, k in self.deaths) or "none"))
        sessions = collections.Counter(s.reason or "open" for s in h.sessions.values())
        p("sessions: %d (%s)" % (len(h.sessions),
                                 ", ".join("%s %d" % kv for kv in sorted(sessions.items()))))
        acked = sum(1 for w in self.writes if w["ok"])
        errs = collections.Counter(_reason(w["error"]) for w in self.writes if not w["ok"])
        p("admin writes: %d, acknowledged %d, failed %d%s" % (
            len(self.writes), acked, len(self.writes) - acked,
            (" (%s)" % "; ".join("%s x%d" % kv for kv in errs.most_common(4))) if errs else ""))
        terms = sorted({s[4] for s in self.samples if s[4] is not None})
        p("status samples: %d, terms seen %s" % (
            len(self.samples), "%d..%d (%d)" % (terms[0], terms[-1], len(terms)) if terms
            else "none"))
        p("longest delivery gap after each kind of fault:")
        for k in sorted(gaps, key=lambda k: (list(FAULTS).index(k.split(",")[0].split()[0]), k)):
            g, t, flow = gaps[k]
            p("  %-27s %6.2f s  (%s, fault at %.1fs)" % (k, g, flow, t - self.t0))
        if h.unexpected:
            p("unexpected lines: %d (first: %s)" % (len(h.unexpected), h.unexpected[0]))
        for x in self.harness:
            p("HARNESS: %s (the figures of its flows are void)" % x)
        if violations:
            p("VIOLATIONS:")
            for k, xs in violations.items():
                p("  %-24s %d" % (k, len(xs)))
                for x in xs[:5]:
                    p("      %s" % x)
        else:
            p("every invariant held")
        p("output: %s" % self.out)

    def close(self, failed):
        self.stop.set()
        for cp in self.comps:
            try:
                cp.close()
            except Exception:  # noqa: BLE001  cleanup goes on
                pass
        c = getattr(self, "c", None)
        if c is not None:
            if failed or self.a.keep:
                for nd in c.nodes:
                    try:
                        shutil.copy(nd.log_path, os.path.join(self.out, "%s.xmppd.log"
                                                              % nd.name))
                    except OSError:
                        pass
            try:
                c.close()
            except AssertionError as e:  # sanitizer reports
                print("cluster close: %s" % e)
        net = getattr(self, "net", None)
        if net is not None:
            net.close()
        if not failed and not self.a.keep and not self.a.out:
            shutil.rmtree(self.out, ignore_errors=True)


def gap_kind(f):
    """The kind a fault's delivery gap is reported under: kill and pause
    of the leader apart from those of a follower."""
    return "%s %s" % (f["kind"], f["role"]) if f.get("role") else f["kind"]


def _reason(err):
    """The gist of a failed command's one-line error (its first line,
    without the command's name and any node-specific tail)."""
    line = (err.splitlines() or [""])[0]
    for prefix in ("xmpp callbridge add:", "callbridge add:"):
        if line.startswith(prefix):
            line = line[len(prefix):].strip()
    return line[:70]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=int, default=120, help="seconds of faults")
    ap.add_argument("--rate", type=int, default=100, help="messages/s per component")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--window", type=float, default=15.0,
                    help="a loss is excused by a death or break this many s after sending")
    ap.add_argument("--no-skew", dest="skew", action="store_false",
                    help="no node under faketime")
    ap.add_argument("--out", help="directory for the logs (default: a temporary one, "
                    "kept when the run fails)")
    ap.add_argument("--keep", action="store_true", help="keep the logs also on success")
    return ap.parse_args(argv)


def _alarm(signum, frame):
    raise TimeoutError("the run took longer than its bound")


def run_nemesis(argv):
    """Runs one schedule; returns (exit status, violations)."""
    a = parse_args(argv)
    netns.require_available()
    r = Run(a)
    violations, failed = None, True
    # A hard bound for the whole run: setup, faults, healing and checking.
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(a.duration + 420)
    try:
        violations = r.main()
        failed = bool(violations)
    except Exception:  # noqa: BLE001  reported below, cleanup first
        traceback.print_exc()
        print("nemesis: the harness failed; replay with: %s" % replay_command(a))
        return 2, None
    finally:
        signal.alarm(0)
        r.close(failed)
    if violations:
        print("FAIL nemesis seed %d: %s" % (a.seed, ", ".join(
            "%s %d" % (k, len(x)) for k, x in violations.items())))
        print("replay: %s" % replay_command(a))
        return 1, violations
    print("ok   nemesis seed %d" % a.seed)
    return 0, violations


if __name__ == "__main__":
    sys.exit(run_nemesis(sys.argv[1:])[0])
