#!/usr/bin/env python3
"""test_cluster_failover: a 3-node cluster through crashes and a silent
failure.

1. SIGKILL the leader: the two others elect a new leader in a higher term;
   the killed node restarts and rejoins as a follower without raising the
   term.
2. SIGKILL a follower and restart it: no leader change, same term.
3. SIGSTOP the leader past the election timeout: the others elect a new
   leader; SIGCONT: the old leader steps down and follows, and the call
   bridge written while it led is still on every node."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def callbridges(nd):
    return nd.ok("xmpp callbridge list")


def main():
    with Cluster(3) as c:
        leader = c.form()
        term0 = leader.status().term
        c.add_callbridge("before", on=leader)

        # 1. SIGKILL the leader.
        t = time.monotonic()
        leader.kill()
        rest = [nd for nd in c.nodes if nd is not leader]
        new, term1 = c.wait_leader(rest, not_node=leader, timeout=60)
        c.say("leader %s killed: %s leads in term %d after %.2fs", leader.name, new.name,
              term1, time.monotonic() - t)
        check(term1 > term0, "term did not rise: %d -> %d" % (term0, term1))
        lc = new.status().last_change or ""
        check("-> %d)" % term1 in lc and "reason" in lc,
              "%s: last leader change %r, wanted one into term %d with its reason"
              % (new.name, lc, term1))
        c.say("%s", lc)
        leader.start()
        back = c.wait_converged(timeout=60)
        check(back is new, "leader changed when %s came back: %s" % (leader.name, back.name))
        s = leader.status()
        check(s.state == "FOLLOWER" and s.term == term1,
              "restarted %s: %s term %s, wanted FOLLOWER term %d"
              % (leader.name, s.state, s.term, term1))
        check(all(nd.status().term == term1 for nd in c.nodes), "term rose:\n" + c.dump())
        c.wait_replicated("xmpp callbridge list", lambda o: "before" in o, what="before")
        c.say("%s rejoined as a follower in term %d", leader.name, term1)

        # 2. SIGKILL a follower and restart it.
        leader = new
        f = c.followers(leader)[0]
        f.kill()
        time.sleep(2.5)  # more than an election timeout
        st = leader.status()
        check(st.state == "LEADER" and st.term == term1,
              "follower %s down: leader %s %s term %s" % (f.name, leader.name, st.state,
                                                          st.term))
        f.start()
        check(c.wait_converged(timeout=60) is leader, "leader changed:\n" + c.dump())
        check(all(nd.status().term == term1 for nd in c.nodes), "term rose:\n" + c.dump())
        c.say("follower %s killed and restarted: no leader change", f.name)

        # 3. SIGSTOP the leader past the election timeout, then SIGCONT.
        c.add_callbridge("held", on=leader)
        t = time.monotonic()
        leader.freeze()
        rest = [nd for nd in c.nodes if nd is not leader]
        new, term2 = c.wait_leader(rest, not_node=leader, timeout=60)
        c.say("leader %s stopped: %s leads in term %d after %.2fs", leader.name, new.name,
              term2, time.monotonic() - t)
        time.sleep(1.0)
        leader.thaw()
        check(c.wait_converged(timeout=60) is new, "leader after SIGCONT:\n" + c.dump())
        s = leader.status()
        check(s.state == "FOLLOWER", "%s after SIGCONT: %s" % (leader.name, s.state))
        c.wait_replicated("xmpp callbridge list",
                          lambda o: "before" in o and "held" in o, what="after SIGCONT")
        c.add_callbridge("after", on=leader)  # a write through the old leader
        c.wait_replicated("xmpp callbridge list", lambda o: "after" in o, what="after")
        c.say("%s stepped down and follows; nothing lost", leader.name)


run(main, timeout=180)
