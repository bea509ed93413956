#!/usr/bin/env python3
"""test_cluster_leave: the leader leaves, and leader-change reasons.

Leaving replaces the node's store (a new one-member cluster with its data),
which closes the Raft driver; that must never happen from inside one of the
driver's own callbacks (rnode.h; the leader answers its own REMOVE from
one).  Run under an ASan build (-DXMPPD_SANITIZE=ON) this catches a
use-after-free or the assertion in rnode_close as a dead daemon.

- 2 members: `xmpp cluster disable` on the leader hands leadership over,
  leaves and goes alone: it keeps running, is DISABLED with its data; the
  other leads alone and says the leader changed by "leadership transfer".
- 3 members: a follower removes the leader (`xmpp cluster remove <id> --yes`):
  the other two elect a leader ("the leader left the configuration") and
  commit; the old leader keeps running,
  and `xmpp cluster disable` there makes it standalone with its data.
- 3 members, the leader frozen first (SIGSTOP: its links stay open): the
  others elect a leader and say "leader lost (election timeout)".
Every daemon exits 0 on SIGTERM and no log shows a sanitizer report."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

BAD = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Assertion", "assertion")


def reason(s):
    """The reason on the "Last leader change" line ("" when none)."""
    line = s.last_change or ""
    i = line.find("reason:")
    return line[i + len("reason:"):].strip() if i >= 0 else ""


def alone_with_data(c, nd):
    """nd runs, is DISABLED (standalone) and still has the domain."""
    check(nd.alive(), "%s died leaving the cluster:\n%s" % (nd.name, nd.log()[-3000:]))
    wait_for(lambda: nd.status().state == "DISABLED", 60, "%s DISABLED" % nd.name)
    wait_for(lambda: nd.json("xmpp status").get("domain") == DOMAIN, 60,
             "%s keeps the domain after leaving" % nd.name)
    s = nd.status()
    check(len(s.peers) <= 1, "%s alone lists %s" % (nd.name, s.addrs()))


def cb_set_at(nd, name):
    """When nd says call bridge name's secret was set (None: unknown or no
    such bridge)."""
    for b in nd.json("xmpp callbridge list")["callbridges"]:
        if b["name"] == name:
            return b.get("secret_set_at")
    return None


def clean_exit(c):
    for nd in c.nodes:
        if nd.alive():
            rc = nd.stop()
            check(rc == 0, "%s exit %s:\n%s" % (nd.name, rc, nd.log()[-3000:]))
        log = nd.log()
        for b in BAD:
            check(b not in log, "%s log has %r:\n%s" % (nd.name, b, log[-4000:]))


def leader_disables():
    with Cluster(2) as c:
        leader = c.form(fast_lan=True)
        other = c.followers(leader)[0]
        # A call bridge on the leader: going alone restarts XMPP there, and
        # the answer says so (it dropped the bridge without a word).
        for nd in c.nodes:
            nd.wait_log("request sessions on", 60)
        c.add_callbridge("cb1")
        set_at = cb_set_at(leader, "cb1")
        check(set_at is not None, "cb1 has no time on %s" % leader.name)
        comp = c.comp(leader, "cb1", "--stay")
        comp.wait_line(r"^connected")
        c.say("2 members: %s leads; xmpp cluster disable there", leader.name)
        out = leader.ok("xmpp cluster disable", timeout=60)
        # It says what it did.
        check(re.match(r"^left the cluster and disabled clustering; .*; leadership was "
                       r"handed over first\); XMPP restarted alone: closed 1 component "
                       r"and 0 client session\(s\), which reconnect$", out.strip()), out)
        comp.wait_line(r"^stream-error condition=system-shutdown")
        alone_with_data(c, leader)
        # The rebuilt one-member store keeps when the secret was set.
        wait_for(lambda: cb_set_at(leader, "cb1") == set_at, 60,
                 "%s keeps cb1's secret time %s (has %r)"
                 % (leader.name, set_at, cb_set_at(leader, "cb1")))
        new, term = c.wait_leader([other], timeout=60)
        check(new is other, "%s should lead, %s does" % (other.name, new.name))
        s = other.status()
        check(reason(s) == "leadership transfer",
              "%s: after a transfer the reason is %r: %s" % (other.name, reason(s),
                                                            s.last_change))
        c.say("%s leads alone in term %d (%s)", other.name, term, s.last_change)
        c.add_callbridge("after-leave", on=other, everywhere=False)
        clean_exit(c)


def follower_removes_leader():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        for nd in c.nodes:
            nd.wait_log("request sessions on", 60)
        c.add_callbridge("cbr")
        set_at = cb_set_at(c.nodes[0], "cbr")
        check(set_at is not None, "cbr has no time")
        # The leader frozen (SIGSTOP: its links stay open, no fast path):
        # the other two elect one after the election timeout.
        f = c.followers(leader)
        leader.freeze()
        try:
            new, term = c.wait_leader(f, not_node=leader, timeout=60)
            for nd in f:
                s = nd.status()
                check(reason(s) == "leader lost (election timeout)",
                      "%s: reason %r after the leader froze" % (nd.name, reason(s)))
            c.say("%s frozen: %s leads in term %d (%s)", leader.name, new.name, term,
                  new.status().last_change)
        finally:
            leader.thaw()
        leader = c.wait_converged(timeout=60)

        f = c.followers(leader)
        lid = leader.node_id()
        c.say("3 members: %s leads; %s removes it", leader.name, f[0].name)
        f[0].ok("xmpp cluster remove %s --yes" % lid, timeout=60)
        new, term = c.wait_leader(f, not_node=leader, timeout=60)
        c.say("%s leads in term %d (%s)", new.name, term, new.status().last_change)
        for nd in f:
            s = nd.status()
            check(reason(s) == "the leader left the configuration",
                  "%s: reason %r after the leader was removed" % (nd.name, reason(s)))
        c.wait_converged(timeout=60, members=f)
        c.add_callbridge("after-remove", on=f[1], everywhere=False)
        check(leader.alive(), "%s died after its removal:\n%s"
              % (leader.name, leader.log()[-3000:]))
        j = leader.json("xmpp cluster disable", timeout=60)
        check(j["clustering"] == "disabled" and j["left"] is False and j["message"], str(j))
        alone_with_data(c, leader)
        wait_for(lambda: cb_set_at(leader, "cbr") == set_at, 60,
                 "%s keeps cbr's secret time %s (has %r)"
                 % (leader.name, set_at, cb_set_at(leader, "cbr")))
        c.say("%s is standalone with its data", leader.name)
        clean_exit(c)


def main():
    leader_disables()
    follower_removes_leader()


run(main, timeout=400)
