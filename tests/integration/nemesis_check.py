"""nemesis_check: the checker of the fault-injection test (nemesis.py),
python3 stdlib only, pure: a history in, a verdict out.  Its own test is
test_nemesis_checker.py (synthetic histories, no xmppd).

The history (all times CLOCK_MONOTONIC seconds, as time.monotonic() and
nemcomp print them):

  sessions   {sid: Session}: every authenticated session of every component
             (name, node it was on, start, end or None, end reason).  An end
             reason of "moved" or "quit" is a clean close the test asked
             for; any other (lost, stream-error conflict, ping-timeout) is a
             broken session.
  sent       [(t, sid, seq)]: messages, numbered from 1 per session; the
             receiver is partner[name of sid].
  recv       [(t, receiver sid, sender sid, seq)] in the order each
             receiver read them.
  errors     [(t, sid that got it, message id "sid/seq", condition)].
  deaths     [(t, node, kind)]: the node's process was killed, crashed or
             the node was reset (kind "kill", "crash", "reset").
  partner    {name: name it sends to}.

The promise (DESIGN.md "Forwarding"): every message is delivered
at most once; per (sender session, receiver session) in sending order; or
answered with an error and then never delivered (and never delivered and
then answered with an error); never missing unless the sender's or the
receiver's own node died or was reset, or its session broke, within
`window` seconds after the message was sent.

check() returns a Verdict: counts, violations by kind (each with a few
examples) and the excuses used for lost messages.
"""

import collections

GRACEFUL = ("moved", "quit")

VIOLATION_KINDS = ("duplicate", "reorder", "error-then-delivered", "delivered-then-error",
                   "lost", "phantom")


class Session:
    def __init__(self, sid, name, node, start, end=None, reason=None):
        self.sid = sid
        self.name = name
        self.node = node
        self.start = start
        self.end = end
        self.reason = reason

    def broke(self):
        """True when the session ended without the test asking for it."""
        return self.end is not None and self.reason not in GRACEFUL

    def __repr__(self):
        return "Session(%s %s node%s %.3f-%s %s)" % (
            self.sid, self.name, self.node, self.start,
            "%.3f" % self.end if self.end is not None else "", self.reason or "")


class History:
    def __init__(self):
        self.sessions = {}
        self.sent = []
        self.recv = []
        self.errors = []
        self.deaths = []
        self.partner = {}
        self.home = {}  # component name -> node number of the host it runs in
        self.unexpected = []

    def add_session(self, sid, name, node, start, end=None, reason=None):
        self.sessions[sid] = Session(sid, name, node, start, end, reason)
        return self.sessions[sid]

    def add_comp_log(self, name, text, node_of):
        """Adds one nemcomp output (see tools/nemcomp.c); node_of maps its
        node index (into its --nodes) to the node number."""
        for line in text.splitlines():
            f = line.split()
            if len(f) < 3:
                continue
            ev, t = f[0], float(f[1]) if _is_float(f[1]) else None
            if t is None:
                continue
            if ev == "s" and len(f) >= 4:
                self.sent.append((t, f[2], int(f[3])))
            elif ev == "r" and len(f) >= 5:
                self.recv.append((t, f[2], f[3], int(f[4])))
            elif ev == "e" and len(f) >= 5:
                self.errors.append((t, f[2], f[3], f[4]))
            elif ev == "conn" and len(f) >= 4:
                self.add_session(f[2], name, node_of[int(f[3])], t)
            elif ev == "end" and len(f) >= 4:
                s = self.sessions.get(f[2])
                if s is not None:
                    s.end = t
                    s.reason = f[3] if len(f) == 4 else "%s:%s" % (f[3], f[4])
            elif ev == "x":
                self.unexpected.append(line)


def _is_float(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def split_id(msg_id):
    """"sid/seq" -> (sid, seq), or None."""
    sid, _, seq = msg_id.rpartition("/")
    if not sid or not seq.isdigit():
        return None
    return sid, int(seq)


class Verdict:
    def __init__(self):
        self.sent = 0
        self.delivered = 0       # distinct messages delivered at least once
        self.deliveries = 0      # delivery events
        self.errored = 0         # distinct messages answered with an error
        self.excused = collections.Counter()   # lost messages by excuse
        self.violations = collections.OrderedDict((k, []) for k in VIOLATION_KINDS)
        self.conditions = collections.Counter()  # error replies by condition
        self.multi_errors = 0    # messages answered with an error more than once

    def count(self, kind):
        return len(self.violations.get(kind, []))

    def failed(self):
        return any(self.violations.values())

    def kinds(self):
        """{kind: count} of the violations found."""
        return {k: len(v) for k, v in self.violations.items() if v}

    def add(self, kind, what):
        self.violations.setdefault(kind, []).append(what)


def _sender_name(h, sid):
    s = h.sessions.get(sid)
    return s.name if s is not None else sid.split(".")[0]


def excuse(h, sid, t, window, deaths_by_node):
    """Why a message that sid sent at t may be missing, or None: the
    sender's or the receiver's own session broke, or its node died or was
    reset, within window seconds after t."""
    hi = t + window
    s = h.sessions.get(sid)
    if s is not None:
        if s.broke() and t <= s.end + 1e-6 and s.end <= hi:
            return "sender session broke"
        for dt, kind in deaths_by_node.get(s.node, ()):
            if t <= dt <= hi:
                return "sender node %s" % kind
    # A receiver's session that broke may swallow messages sent after the
    # break as well: its node still routes to it until it notices (a
    # component that gave up on a paused or cut-off node; the node's TCP
    # connection to it only stalls), so the receiver side's window is
    # [t - window, t + window].
    lo = t - window
    rname = h.partner.get(_sender_name(h, sid))
    for r in h.sessions.values():
        if r.name != rname or r.start > hi or (r.end is not None and r.end < lo):
            continue
        if r.broke() and lo <= r.end <= hi:
            return "receiver session broke"
        for dt, kind in deaths_by_node.get(r.node, ()):
            if max(lo, r.start) <= dt <= hi and (r.end is None or dt <= r.end + 5.0):
                return "receiver node %s" % kind
    return None


def check(h, window=30.0):
    """Judges every message of history h; returns a Verdict."""
    v = Verdict()
    sent = {}
    for t, sid, seq in h.sent:
        sent[(sid, seq)] = t
    v.sent = len(sent)
    delivered = collections.defaultdict(list)
    last = {}
    for t, rsid, fsid, seq in h.recv:
        again = (fsid, seq) in delivered
        delivered[(fsid, seq)].append((t, rsid))
        if again:
            continue  # a duplicate (below), not also a reorder
        key = (fsid, rsid)
        prev = last.get(key)
        if prev is not None and seq < prev:
            v.add("reorder", "%s/%d reached %s after %s/%d (t=%.3f)"
                  % (fsid, seq, rsid, fsid, prev, t))
        if prev is None or seq > prev:
            last[key] = seq
    v.deliveries = len(h.recv)
    v.delivered = len(delivered)
    errored = collections.defaultdict(list)
    for t, rsid, msg_id, cond in h.errors:
        v.conditions[cond] += 1
        k = split_id(msg_id)
        if k is None:
            h.unexpected.append("error reply with id %r (%s)" % (msg_id, cond))
            continue
        errored[k].append((t, cond))
    v.errored = len(errored)
    v.multi_errors = sum(1 for es in errored.values() if len(es) > 1)
    for k, ds in delivered.items():
        if k not in sent:
            v.add("phantom", "%s/%d delivered to %s but never sent" % (k[0], k[1], ds[0][1]))
        if len(ds) > 1:
            v.add("duplicate", "%s/%d delivered %d times: %s" % (
                k[0], k[1], len(ds), ", ".join("%s at %.3f" % (r, t) for t, r in ds)))
        if k in errored:
            et, cond = errored[k][0]
            if et < ds[-1][0]:
                v.add("error-then-delivered", "%s/%d answered %s at %.3f, delivered at %.3f"
                      % (k[0], k[1], cond, et, ds[-1][0]))
            else:
                v.add("delivered-then-error", "%s/%d delivered at %.3f, answered %s at %.3f"
                      % (k[0], k[1], ds[0][0], cond, et))
    deaths_by_node = collections.defaultdict(list)
    for t, node, kind in h.deaths:
        deaths_by_node[node].append((t, kind))
    for (sid, seq), t in sorted(sent.items(), key=lambda kv: kv[1]):
        if (sid, seq) in delivered or (sid, seq) in errored:
            continue
        why = excuse(h, sid, t, window, deaths_by_node)
        if why is None:
            v.add("lost", "%s/%d sent at %.3f: no delivery, no error, no excuse" % (sid, seq, t))
        else:
            v.excused[why] += 1
    return v


def delivery_gaps(h, faults, settle=10.0):
    """The longest time without a delivery on any flow (sender name ->
    receiver name) after each fault: faults is [(kind, start, end)] or
    [(kind, start, end, nodes)] in time order; a fault's window runs from
    its start to the next fault's start or its end + settle, whichever is
    first.  nodes are the node numbers the fault hit (killed, paused or cut
    off from the rest): a flow whose sender or receiver had a session on one
    of them during the window is reported apart, under "<kind>, own node",
    since no server can deliver to or from a component whose own node is
    silent; the promise is about sessions on the nodes that stay up.  For
    the faults that cut a host's network (NETWORK_FAULTS) a component whose
    process runs in a hit host (h.home) counts as on a hit node too.
    Returns {kind: (gap seconds, fault start, flow)}."""
    times = collections.defaultdict(list)
    for t, rsid, fsid, seq in h.recv:
        times[(_sender_name(h, fsid), _sender_name(h, rsid))].append(t)
    for ts in times.values():
        ts.sort()
    out = {}
    for i, fault in enumerate(faults):
        kind, start, end = fault[:3]
        hit = set(fault[3]) if len(fault) > 3 and fault[3] else set()
        stop = end + settle
        if i + 1 < len(faults):
            stop = min(stop, faults[i + 1][1])
        for flow, ts in times.items():
            prev, gap = start, 0.0
            for t in ts:
                if t < start:
                    continue
                if t > stop:
                    break
                gap = max(gap, t - prev)
                prev = t
            gap = max(gap, stop - prev)
            key = kind
            net = kind.split()[0] in NETWORK_FAULTS
            if hit and any(_on_nodes(h, name, hit, start, stop) or
                           (net and h.home.get(name) in hit) for name in flow):
                key = "%s, own node" % kind
            if key not in out or gap > out[key][0]:
                out[key] = (gap, start, "%s->%s" % flow)
    return out


# Faults that cut the network of a host: a component whose process runs in
# that host (its home, History.home) is cut off too, whichever node it is
# connected to.
NETWORK_FAULTS = ("isolate-leader", "split", "bridge")


def _on_nodes(h, name, nodes, start, stop):
    """True when component name had a session on one of nodes at some time
    in [start, stop]."""
    for s in h.sessions.values():
        if s.name != name or s.node not in nodes:
            continue
        if s.start <= stop and (s.end is None or s.end >= start):
            return True
    return False


def check_terms(samples):
    """samples: [(t, node, node_id, state, term, leader_id, cluster_id)]
    from `xmpp cluster status --json`.  Returns a list of violations: a
    term of one cluster in which two different nodes were leader (by their
    own word or by a follower's).  A node that was reset and is alone has a
    cluster of its own, with terms of its own."""
    claims = collections.defaultdict(dict)
    for sample in samples:
        t, node, node_id, state, term, leader_id = sample[:6]
        cluster = sample[6] if len(sample) > 6 else None
        if term is None:
            continue
        if state == "LEADER" and node_id:
            claims[(cluster, term)].setdefault(node_id, "node%s said LEADER at %.1f"
                                               % (node, t))
        if leader_id:
            claims[(cluster, term)].setdefault(leader_id, "node%s named it at %.1f" % (node, t))
    out = []
    for (cluster, term), who in sorted(claims.items(), key=lambda kv: (str(kv[0][0]),
                                                                       kv[0][1])):
        if len(who) > 1:
            out.append("term %d%s has %d leaders: %s" % (
                term, " of cluster %s" % cluster if cluster else "", len(who),
                "; ".join("%s (%s)" % kv for kv in who.items())))
    return out


def check_writes(writes, lists):
    """writes: [(name, ok)] admin writes and whether they were acknowledged;
    lists: {node: set of call bridge names at the end}.  Returns violations:
    an acknowledged write missing on a node; replicas that differ."""
    out = []
    for name, ok in writes:
        if not ok:
            continue
        missing = sorted(str(n) for n, names in lists.items() if name not in names)
        if missing:
            out.append("acknowledged write %s missing on node%s" % (name, ",".join(missing)))
    if len({frozenset(s) for s in lists.values()}) > 1:
        base = set.intersection(*[set(s) for s in lists.values()])
        out.append("replicas differ: %s" % "; ".join(
            "node%s has %s extra" % (n, sorted(set(s) - base)) for n, s in sorted(lists.items())))
    return out
