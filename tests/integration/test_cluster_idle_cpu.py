#!/usr/bin/env python3
"""test_cluster_idle_cpu: no node spins (the independent tester's "a
follower spinning", session 6).  A 3-node cluster with no traffic, in
three states, each watched for WINDOW seconds: healthy; the leader killed
and left dead (the survivors elect, redial the dead one with back-off);
then the new leader frozen (SIGSTOP: its kernel still accepts TCP, TLS
never answers, so the last node's links time out and redial).  Each live
node's CPU time (utime + stime from /proc/<pid>/stat) over a window must
stay under half the window's wall time: an idle node wakes for timers
and keep-alives only, while a loop that never sleeps would use the whole
window when it gets a core.  CPU time is not wall time, so a loaded
machine only makes the figure smaller (never a false alarm)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402

WINDOW = 8.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(nd):
    """nd's process CPU time (user + system) in seconds."""
    with open("/proc/%d/stat" % nd.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def watch(c, nodes, what):
    before = {nd.name: cpu_s(nd) for nd in nodes}
    t0 = time.monotonic()
    time.sleep(WINDOW)
    wall = time.monotonic() - t0
    for nd in nodes:
        used = cpu_s(nd) - before[nd.name]
        c.say("%s: %s used %.2f s CPU in %.1f s", what, nd.name, used, wall)
        check(nd.alive(), "%s: %s is still running" % (what, nd.name))
        check(used < wall / 2, "%s: %s spins: %.2f s CPU in %.1f s"
              % (what, nd.name, used, wall))


def main():
    with Cluster(3) as c:
        leader = c.form()
        watch(c, c.nodes, "healthy")
        leader.kill()
        rest = [nd for nd in c.nodes if nd is not leader]
        new, _ = c.wait_leader(rest, not_node=leader, timeout=60)
        watch(c, rest, "leader killed")
        frozen = new
        frozen.freeze()
        last = [nd for nd in rest if nd is not frozen]
        watch(c, last, "leader killed, %s frozen" % frozen.name)
        frozen.thaw()


if __name__ == "__main__":
    run(main, timeout=180)
