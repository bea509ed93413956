#!/usr/bin/env python3
"""test_rolling_upgrade: one cluster, two builds
(docs/cluster.md "Rolling upgrade").

Three nodes run the old build (xmppd_v3: peer frame versions 2..3 and
replicated entries up to version 2, as the build deployed before request
sessions: it stops applying at a version 3 entry).  First a node is
restarted on a build that speaks 4 only (xmppd_v4only): the links between
it and the old nodes are refused on BOTH ends, each status saying why in
its own words ("link: refused: peer speaks protocol versions 2..3, this
node 4..4 ..."), logged once, not once per redial; back on the old build
it links again.  Then the upgrade, a node at a time, followers first and
the leader last: SIGTERM, the new build (xmppd: 2..4) on the same state
directory.  While a node restarts, call bridges on the two others
exchange paced messages both ways: every one arrives, once, in order.
Before the upgrade, while each node is down and after each comes back,
every live node takes writes: an admin's (`xmpp callbridge add`, forwarded
by a follower) and a client's (a roster item, from a subscription
request): each succeeds, every node applies it and none stops (the
sessions gate: a follower stamps version 3 request ids only once every
member reads them).  Between steps each status shows the version of each
link (3 between an old and a new node, 4 between new ones); at the end
every link speaks 4 and every node has turned sessions on, and a member
going down keeps them on."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer as fp  # noqa: E402
from clients import Client  # noqa: E402
from cluster import DOMAIN, PEER_PORT, Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

N = 80  # messages each way per step, one every INTERVAL_MS
INTERVAL_MS = 40
CLIENT_PORT = 5222
PASSWORD = "alice-pw-41d7"
SESSIONS_ON = "request sessions on"


def build_bin(name):
    return os.path.join(os.environ["XMPPD_BUILD_DIR"], "xmppd", name)


def links(nd):
    """{peer address: (link state, protocol version or None, refused or
    None)} from nd's `xmpp cluster status --json`, self left out."""
    out = {}
    for p in nd.status_json().get("peers", []):
        if not p.get("self"):
            out[p["address"]] = (p.get("link"), p.get("protocol"), p.get("refused"))
    return out


def want_version(a, b, new):
    return 4 if a in new and b in new else 3


# XMPPD_OLD_BIN=<an xmppd built from git 0caf4eb^ before sessions, e.g.
# 4b258ab> runs the upgrade from a real node of that build instead of
# xmppd_v3 (by hand: not in CI).  Only the new nodes' versions are checked.
REAL_OLD = os.environ.get("XMPPD_OLD_BIN")


def wait_versions(c, new, timeout=90):
    """Every pair of nodes is linked at the version its builds share."""
    def ok():
        for a in c.nodes:
            ls = links(a)
            for b in c.nodes:
                if b is a:
                    continue
                st = ls.get(b.peer_addr)
                if st is None or st[0] != "up":
                    return False
                if (a in new or not REAL_OLD) and st[1] != want_version(a, b, new):
                    return False
        return True
    try:
        wait_for(ok, timeout, "links at the expected versions (new: %s)"
                 % sorted(n.name for n in new))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, "\n".join(
            "%s: %r" % (nd.name, links(nd)) for nd in c.nodes)))
    for a in c.nodes:
        if REAL_OLD and a not in new:
            continue
        text = a.ok("xmpp cluster status")
        for b in c.nodes:
            if b is not a:
                line = [ln for ln in text.splitlines() if ln.startswith(b.peer_addr)]
                v = want_version(a, b, new)
                check(len(line) == 1 and ("link up v%d," % v) in line[0],
                      "%s's status line for %s lacks 'link up v%d': %s"
                      % (a.name, b.name, v, text))


def start_flow(c, x, y, xname, yname):
    """Bridges xname on x and yname on y, each sending N paced messages to
    the other once both are connected; returns them (started)."""
    xj, yj = "%s.%s" % (xname, DOMAIN), "%s.%s" % (yname, DOMAIN)
    a = c.comp(x, xname, "--go-on-stdin", "--to", yj, "--send", str(N), "--interval-ms",
               str(INTERVAL_MS), "--expect", str(N), "--quiet", timeout=120)
    b = c.comp(y, yname, "--go-on-stdin", "--to", xj, "--send", str(N), "--interval-ms",
               str(INTERVAL_MS), "--expect", str(N), "--quiet", timeout=120)
    a.wait_line("^connected")
    b.wait_line("^connected")
    c.wait_components([xname, yname])
    a.go()
    b.go()
    return a, b


def end_flow(c, flow, what):
    for x in flow:
        rc = x.finish(120)
        check(rc == 0, "%s: %s exited %d:\n%s\n%s" % (what, x.jid, rc, x.output(), c.dump()))
        x.wait_line("received messages=%d in_order=yes" % N, 1)
    c.say("%s: %d messages each way, none lost, in order", what, N)


def bridge_times(nd):
    """{name: (secret_set_at, secret_age_seconds)} of nd's call bridges."""
    return {b["name"]: (b.get("secret_set_at"), b.get("secret_age_seconds"))
            for b in nd.json("xmpp callbridge list")["callbridges"]}


def check_times(nodes, names, timed):
    """The bridges names on nodes: with the time their secret was set
    (RFC 3339, an age of seconds, the same time everywhere) when timed, else
    "unknown" (null; a member could not have read it), in --json and in
    the text."""
    seen = {}
    for nd in nodes:
        got = bridge_times(nd)
        text = nd.ok("xmpp callbridge list")
        for n in names:
            at, age = got[n]
            line = [ln for ln in text.splitlines() if ln.startswith(n + " ")]
            if timed:
                check(isinstance(at, str) and re.match(
                    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", at) and isinstance(age, int)
                    and 0 <= age < 600, "%s: %s set at %r, age %r" % (nd.name, n, at, age))
                check(seen.setdefault(n, at) == at, "%s: %s set at %r, elsewhere %r"
                      % (nd.name, n, at, seen[n]))
                check(len(line) == 1 and re.search(r"%s \(\d+[smhd]\)" % re.escape(at),
                                                   line[0]),
                      "%s: the text lacks the time of %s:\n%s" % (nd.name, n, text))
            else:
                check(at is None and age is None,
                      "%s: %s set at %r (age %r) while an old member could not read it"
                      % (nd.name, n, at, age))
                check(len(line) == 1 and line[0].rstrip().endswith("unknown"),
                      "%s: the text does not say unknown for %s:\n%s" % (nd.name, n, text))


def writes(c, tag, nodes, ca, timed=False):
    """From each of nodes: an admin write (a call bridge, forwarded by a
    follower) and a client's (alice subscribes to a new contact: a roster
    item, pushed to her once her node applied it).  Each succeeds; every
    live node applies the bridges and none has stopped applying; the
    bridges' secrets have a time (timed: every member reads it) or none."""
    names = []
    for nd in nodes:
        name = "w%s%s" % (tag, nd.name)
        out = nd.ok("xmpp callbridge add %s" % name, timeout=30)
        check("Secret:" in out, "%s: callbridge add %s: %r" % (nd.name, name, out))
        names.append(name)
        with Client("alice@%s/%s" % (DOMAIN, nd.name), PASSWORD, nd.addr, CLIENT_PORT,
                    ca) as cl:
            cl.online()
            cl.send("sub c%s%s@%s" % (tag, nd.name, DOMAIN))
            cl.wait_line(r"^iq - set push", 30)
            check(cl.quit() == 0, cl.output())
    live = c.live()
    c.wait_replicated("xmpp callbridge list",
                      lambda o: all(re.search(r"(?m)^%s\s" % n, o) for n in names),
                      nodes=live, what="writes %s" % tag)
    for nd in live:
        st = nd.status_json()
        check("stopped" not in st, "%s stopped applying: %s" % (nd.name, st.get("stopped")))
    if not REAL_OLD or timed:
        check_times(live, names, timed)
    c.say("writes %s from %s: committed, applied on %s", tag,
          [n.name for n in nodes], [n.name for n in live])


def refused_case(c, old_bin):
    """node3 on the 4-only build: refused both ways with the reason."""
    n1, n3 = c.node(1), c.node(3)
    n3.stop()
    n3.binary = build_bin("xmppd_v4only")
    n3.start()
    want1 = "peer speaks protocol versions 4..4, this node 2..3"
    want3 = "peer speaks protocol versions 2..3, this node 4..4"

    def refused(here, there, want):
        st = links(here).get(there.peer_addr)
        return st is not None and st[0] == "refused" and want in (st[2] or "")
    for nd in (c.node(1), c.node(2)):
        wait_for(lambda nd=nd: refused(nd, n3, want1), 60,
                 "%s shows its link to node3 refused" % nd.name)
        wait_for(lambda nd=nd: refused(n3, nd, want3), 60,
                 "node3 shows its link to %s refused" % nd.name)
    text = n3.ok("xmpp cluster status")
    check(re.search(r"(?m)^\s+link: refused: .*" + re.escape(want3), text) is not None,
          "node3's status text lacks the refusal: %s" % text)
    text = n1.ok("xmpp cluster status")
    check(re.search(r"(?m)^\s+link: refused: .*" + re.escape(want1), text) is not None,
          "node1's status text lacks the refusal: %s" % text)
    c.say("node3 on 4..4: refused on both ends, with the reason")
    # Logged once per change, not once per redial (every 2 s at most): over
    # several seconds of redials, one warning on each end about each peer.
    time.sleep(6)
    for nd, want in ((n1, want1), (n3, want3)):
        warns = [ln for ln in nd.log().splitlines()
                 if want in ln and re.search(r"Z warn ", ln)]
        per_peer = {}
        for ln in warns:
            m = re.search(r"\(node ([0-9a-f]{16})\)", ln)
            key = m.group(1) if m else "?"
            per_peer[key] = per_peer.get(key, 0) + 1
        check(warns and all(v == 1 for v in per_peer.values()),
              "%s: the refusal is not logged once per peer: %s" % (nd.name, warns))
    c.say("each refusal logged once")
    n3.stop()
    n3.binary = old_bin
    n3.start()
    wait_versions(c, set())
    c.say("node3 back on the old build: links up at 3")


def main():
    old_bin = REAL_OLD or build_bin("xmppd_v3")
    check(os.access(old_bin, os.X_OK), "no %s (cmake target xmppd_v3)" % old_bin)
    with Cluster(3) as c:
        for nd in c.nodes:
            nd.binary = old_bin
        leader = c.form()
        ca = os.path.join(c.ca, "ca-bundle.pem")
        wait_versions(c, set())
        c.say("three nodes on the old build, every link at version 3")
        if not REAL_OLD:
            refused_case(c, old_bin)
        for nd in c.nodes:
            c.wait_serving(nd)
        c.leader().ok("xmpp user add alice", stdin=PASSWORD + "\n")
        c.wait_replicated("xmpp user list", lambda o: re.search(r"(?m)^alice\s", o),
                          nodes=c.nodes, what="alice")
        writes(c, "0", c.nodes, ca)
        if not REAL_OLD:
            for nd in c.nodes:
                check("request sessions on" not in nd.log(),
                      "%s on the old build turned sessions on" % nd.name)

        for i in range(1, 7):
            c.add_callbridge("cb%d" % i)
        leader = c.leader()
        order = c.followers(leader) + [leader]
        new = set()
        for step, nd in enumerate(order):
            others = [o for o in c.nodes if o is not nd]
            flow = start_flow(c, others[0], others[1], "cb%d" % (2 * step + 1),
                              "cb%d" % (2 * step + 2))
            c.say("upgrading %s while %s <-> %s exchange messages", nd.name,
                  others[0].name, others[1].name)
            nd.stop(timeout=60)
            c.wait_leader(others, not_node=nd, timeout=60)
            writes(c, "%dd" % step, others, ca)
            nd.binary = None  # the new build
            nd.start()
            new.add(nd)
            end_flow(c, flow, "%s upgraded" % nd.name)
            c.wait_converged(timeout=60)
            wait_versions(c, new)
            c.say("%s on the new build; links: %s", nd.name, {
                o.name: links(nd)[o.peer_addr][1] for o in others})
            for w in c.nodes:
                c.wait_serving(w)
            if len(new) == len(c.nodes):
                for w in c.nodes:
                    w.wait_log(SESSIONS_ON, 60)
                c.say("every node stamps version 3 request ids now")
            writes(c, "%du" % step, c.nodes, ca, timed=len(new) == len(c.nodes))
        c.say("every node on the new build, every link at version 4")
        check_times(c.nodes, ["w0node1", "w1unode2"], False)
        c.say("call bridges made before: secret set, time unknown")
        later_peer(c, ca)


def later_peer(c, ca):
    """A later build (5..6, fakepeer with node2's certificate, node2
    stopped) dials node1: its HELLO (version 6, with bytes 4 does not know)
    is read, and refused with a REFUSE naming node1's range; node1's status
    says why.  Meanwhile node2 is a member that is down: the others keep
    their sessions on (its last link spoke 4) and take writes."""
    n1, n2 = c.node(1), c.node(2)
    n2_id = int(n2.node_id(), 16)
    n2.stop()
    with fp.FakePeer(n1.addr, PEER_PORT, os.path.join(c.ca, "node2.crt"),
                     os.path.join(c.ca, "node2.key"),
                     os.path.join(c.ca, "ca-bundle.pem")) as p:
        p.send(fp.hello(1, n2_id, n2.peer_addr, vmin=5, vmax=6,
                        extra=b"later"))
        t, rest = p.read_frame(60)
        check(t == fp.REFUSE, "a 5..6 peer gets a REFUSE (got type %d)" % t)
        _, code, reason, rng = fp.parse_refuse(p.last_version, rest)
        check(code == fp.REFUSE_VERSION and rng == (2, 4)
              and "peer speaks protocol versions 2..4, this node 5..6" in reason,
              "the REFUSE: code %d range %r reason %r" % (code, rng, reason))
    want = "peer speaks protocol versions 5..6, this node 2..4"
    wait_for(lambda: want in (links(n1).get(n2.peer_addr, (None,) * 3)[2] or ""), 60,
             "node1's status: node2 refused, 5..6")
    c.say("a 5..6 peer: refused with both ranges, on both ends")
    rest = [n for n in c.nodes if n is not n2]
    c.wait_leader(rest, not_node=n2, timeout=60)
    writes(c, "x", rest, ca, timed=True)
    for nd in rest:
        lines = [ln for ln in nd.log().splitlines() if "request sessions" in ln]
        check(lines and "request sessions on" in lines[-1],
              "%s turned sessions off while node2 was down:\n%s"
              % (nd.name, "\n".join(lines)))
    c.say("node2 down: sessions stay on, writes go on")
    n2.start()
    wait_versions(c, set(c.nodes))


run(main, timeout=560)  # under CTest's 600 s: fail here, with the logs
