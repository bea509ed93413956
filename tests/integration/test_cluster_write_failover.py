#!/usr/bin/env python3
"""test_cluster_write_failover: a write on a follower made the moment the
leader dies follows the leader change.

5 nodes.  SIGKILL the leader, and at once `xmpp callbridge add` on a
follower: the forwarded write is sent again to the new leader once it is
known (rnode.c, forward / fwd_done), instead of waiting for the whole 5 s
timeout.  It must succeed, and the call bridge exists exactly once on every
node, also on the killed one after its restart (a copy the old leader may
have appended before dying is a no-op: the request id, core/repl.h).  The
time the write took is printed, not asserted."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def one_round(c, leader, name):
    f = c.followers(leader)[0]
    leader.kill()
    t0 = time.monotonic()
    out = f.ok("xmpp callbridge add %s" % name, timeout=30)
    took = time.monotonic() - t0
    check("Secret:" in out, "no secret in %r" % out)
    c.say("write on %s right after killing the leader %s took %.2f s", f.name,
          leader.name, took)
    rest = [nd for nd in c.nodes if nd is not leader]
    new_leader, _ = c.wait_leader(rest, not_node=leader, timeout=60)
    c.wait_replicated("xmpp callbridge list", lambda o: name in o, nodes=rest,
                      what="%s on the survivors" % name)
    leader.start()
    c.wait_converged(timeout=60)
    c.wait_replicated("xmpp callbridge list", lambda o: name in o, nodes=c.nodes,
                      what="%s after the restart" % name)
    return new_leader


def main():
    with Cluster(5) as c:
        leader = c.form(fast_lan=True)
        for i in range(2):
            leader = one_round(c, leader, "cbfail%d" % i)
        for nd in c.nodes:
            names = [b["name"] for b in nd.json("xmpp callbridge list")["callbridges"]]
            for i in range(2):
                check(names.count("cbfail%d" % i) == 1,
                      "%s: cbfail%d listed %d times" % (nd.name, i,
                                                        names.count("cbfail%d" % i)))
        lists = {nd.name: sorted((b["name"], b["fingerprint"])
                                 for b in nd.json("xmpp callbridge list")["callbridges"])
                 for nd in c.nodes}
        check(len({tuple(v) for v in lists.values()}) == 1, "lists differ: %s" % lists)
        c.say("writes made during leader changes are applied once, on every node")


run(main, timeout=240)
