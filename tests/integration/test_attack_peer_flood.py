#!/usr/bin/env python3
"""test_attack_peer_flood: connections that never start TLS, held open on
the peer port (5224) of every member from 8 addresses (8 each, the limit
per address), renewed as soon as the node closes one.  They fill the
links a node admits before they have joined (64), and must not keep the
members apart: a member restarted meanwhile links up again and the
cluster converges (docs/cluster.md "Limits"; DESIGN.md: a peer without a
trusted certificate gets nothing but a refusal)."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import IdleFlood, cpu_s  # noqa: E402
from cluster import PEER_PORT, Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

ADDRS, PER_ADDR = 8, 8


def main():
    with Cluster(2) as c:
        leader = c.form()
        c.say("formed; %s leads", leader.name)
        base = c.nodes[0].addr.rsplit(".", 1)[0]
        srcs = ["%s.%d" % (base, 100 + i) for i in range(ADDRS)]
        with IdleFlood([(src, nd.addr, PEER_PORT) for nd in c.nodes for src in srcs
                        for _ in range(PER_ADDR)]) as f:
            rx = re.compile(r"accepted on \S+:%d from %s\.1\d\d:" % (PEER_PORT, re.escape(base)))
            for nd in c.nodes:
                wait_for(lambda nd=nd: len(rx.findall(nd.log())) >= ADDRS * PER_ADDR, 60,
                         "%s: the flood's connections accepted" % nd.name)
            c.say("both nodes hold 64 idle connections (%d opened)", f.opened)
            victim = c.nodes[1]
            victim.kill()
            victim.start()
            c.say("%s restarted under the flood", victim.name)
            try:
                c.wait_converged(timeout=60)
            except AssertionError as e:
                raise AssertionError("the members did not link again under the flood: %s\n%s"
                                     % (e, c.dump()))
            c.say("converged again (%d flood connections opened in all)", f.opened)
            check(c.node(1).alive() and victim.alive(), "both nodes run")
        # The flood over, nothing spins: well under a core each over 3 s.
        pids = [nd.proc.pid for nd in c.nodes]
        t0, c0 = time.monotonic(), [cpu_s(p) for p in pids]
        time.sleep(3)
        for nd, p, before in zip(c.nodes, pids, c0):
            used = (cpu_s(p) - before) / (time.monotonic() - t0)
            check(used < 0.5, "%s idle after the flood: %.0f%% of a core" % (nd.name, used * 100))
        # The closes are logged with the flooder's address and port as they
        # are (no node id: none was claimed).
        line = c.node(1).wait_log(r"peer link from %s\.1\d\d:\S* closed: " % re.escape(base))
        check(re.search(r"peer link from %s\.1\d\d:\d{1,5} closed: " % re.escape(base), line),
              "the close of a flood connection names its address: %r" % line)


if __name__ == "__main__":
    run(main, timeout=300)
