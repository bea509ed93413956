#!/usr/bin/env python3
"""test_cluster_routing: real libstrophe components (xcomp) on different
nodes of a 3-node cluster exchange messages, pings and presence through the
leader: one on each follower (both ways), one on the leader with one on a
follower (both ways), and a component on a follower talking to itself
through the cluster.  Every message arrives once, in order.  A call bridge
that reconnects to another node takes over its name: the old session is
closed with conflict and the next message reaches the new session.  Each
follower's `xmpp cluster status` shows the other follower's component count
(reported in the PINGs of their link), and the last one, stale, once that
follower is gone."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster, route_counts, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

N = 50


def exchange(c, a_node, a_name, b_node, b_name, what):
    """a and b each send N messages to the other, and a pings b, then sends
    a presence (b waits for the presence, which follows the ping, so that it
    cannot close before it has answered)."""
    a_jid, b_jid = "%s.%s" % (a_name, DOMAIN), "%s.%s" % (b_name, DOMAIN)
    b = c.comp(b_node, b_name, "--go-on-stdin", "--to", a_jid, "--send", str(N),
               "--expect", str(N), "--answer", "--expect-presence", "1", "--quiet")
    a = c.comp(a_node, a_name, "--go-on-stdin", "--to", b_jid, "--send", str(N),
               "--expect", str(N), "--iq", "--presence", "--quiet")
    a.wait_line("^connected")
    b.wait_line("^connected")
    c.wait_components([a_name, b_name])
    a.go()
    b.go()
    try:
        for x in (a, b):
            rc = x.finish(60)
            check(rc == 0, "%s: %s exited %d:\n%s" % (what, x.jid, rc, x.output()))
            x.wait_line("received messages=%d in_order=yes" % N, 1)
    except AssertionError as e:
        raise AssertionError("%s: %s\n%s" % (what, e, c.dump()))
    a.wait_line("^iq type=result from=%s" % b_jid, 1)
    b.wait_line("^presence from=%s" % a_jid, 1)
    c.say("%s: %d messages each way, ping and presence ok", what, N)


def table_has(c, want):
    """True when the leader's status counts exactly want[node] component
    sessions on each node in want (True when the status has no counts)."""
    ld = c.leader()
    if ld is None:
        return False
    counts = route_counts(ld)
    if None in counts.values():
        return True
    return all(counts.get(nd.peer_addr) == n for nd, n in want.items())


def peer_components(here, there):
    """(components, stale) for there's line in here's status --json."""
    for p in here.status_json().get("peers", []):
        if p["address"] == there.peer_addr:
            return p.get("components"), p.get("components_stale")
    return None, None


def main():
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        for name in ("cb1", "cb2", "cb3", "cb4", "cb5", "cb6", "cb7"):
            c.add_callbridge(name)
        exchange(c, f1, "cb1", f2, "cb2", "follower <-> follower")
        exchange(c, leader, "cb3", f1, "cb4", "leader <-> follower")
        exchange(c, f2, "cb5", leader, "cb6", "follower <-> leader")
        me = "cb7.%s" % DOMAIN
        s = c.comp(f2, "cb7", "--to", me, "--send", str(N), "--expect", str(N), "--quiet")
        rc = s.finish(60)
        check(rc == 0, "self: exit %d:\n%s" % (rc, s.output()))
        s.wait_line("received messages=%d in_order=yes" % N, 1)
        c.say("a component on %s talked to itself through the cluster", f2.name)
        # A call bridge that reconnects to another node takes its name over
        # cluster-wide: the old session is closed with conflict, and
        # traffic goes to the new one.
        old = c.comp(f1, "cb1", "--stay", "--expect", "1")
        old.wait_line("^connected")
        c.wait_components(["cb1"])
        new = c.comp(f2, "cb1", "--stay", "--expect", "1")
        new.wait_line("^connected")
        old.wait_line("stream-error condition=conflict", 60)
        c.say("cb1 reconnected on %s: the old session on %s got conflict", f2.name, f1.name)
        # The leader's routing table has cb1 on f2 and nothing left on f1
        # (the old session's removal reported) before cb2 sends.
        try:
            wait_for(lambda: table_has(c, {f1: 0, f2: 1}), 60,
                     "the leader's table: cb1 on %s only" % f2.name)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, c.dump()))
        s = c.comp(leader, "cb2", "--to", "cb1.%s" % DOMAIN, "--send", "1")
        check(s.finish(60) == 0, "cb2: %s" % s.output())
        new.wait_line("^message from=cb2.%s seq=1" % DOMAIN, 60)
        check(not any(ln.startswith("message from=") for ln in old.lines),
              "the old session got a message: %s" % old.output())
        c.say("a message to cb1 reached the new session")
        # Every follower's status shows the other follower's count, as that
        # follower reported it in the PINGs of their own link (not only the
        # leader's table): cb1 on f2, cb4 on f1.
        cb4 = c.comp(f1, "cb4", "--stay")
        cb4.wait_line("^connected")
        for here, there in ((f1, f2), (f2, f1)):
            wait_for(lambda h=here, t=there: peer_components(h, t) == (1, False), 60,
                     "%s's status: components 1 on %s" % (here.name, there.name))
            st = here.status()
            line = [p for p in st.peers if p["addr"] == there.peer_addr]
            check(len(line) == 1 and line[0]["components"] == 1,
                  "%s's status text: %s" % (here.name, st.text))
        c.say("each follower's status shows the other follower's components")
        fw = [s.counters.get("forwarded") for s in c.statuses().values()]
        if None not in fw:
            check(sum(fw) > 0, "no node counts a forwarded stanza: %s" % c.dump())
        # With f2 gone, f1 (a follower: no routing table) still shows the
        # count f2 last reported, marked stale.
        f2.kill()
        wait_for(lambda: peer_components(f1, f2) == (1, True), 60,
                 "%s's status: components 1 on %s, stale" % (f1.name, f2.name))
        st = f1.status()
        check(re.search(r"components 1 \(stale \d+ s\)", st.text) is not None,
              "%s's status text: %s" % (f1.name, st.text))
        c.say("with %s gone, %s shows its last count, stale", f2.name, f1.name)


run(main, timeout=180)
