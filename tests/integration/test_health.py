#!/usr/bin/env python3
"""test_health: `xmpp health` as a monitor uses it: the
exit status (0 healthy, 1 degraded, 2 failed) and one reason per line that
says what to do, in text and --json.

- a formed 3-node cluster: every node healthy;
- a member stopped: the others degraded, naming its peer link;
- `xmpp disable` on a node: failed ("XMPP is disabled"), and healthy again
  after `xmpp enable` once the member is back;
- a member removed from the cluster: failed ("removed");
- a node certificate that ends in 5 days: degraded, naming the days;
- the last other member stopped: no leader, degraded, saying that
  configuration changes fail until there is one."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import CERT_ENV, Cluster, certs_dir, sh, wait_for  # noqa: E402
from xmppdtest import unwrap, check, run  # noqa: E402


def health(nd):
    """(exit status, text, json) of `xmpp health` on nd."""
    rc, out, err = nd.mmp("xmpp health")
    jrc, jout, _ = nd.mmp("xmpp health", json_out=True)
    j = unwrap(json.loads(jout)) if jout.strip() else {}
    check(rc == jrc, "%s: exit %d in text, %d with --json" % (nd.name, rc, jrc))
    return rc, out + err, j


def expect(nd, status, needle=None, timeout=60):
    """Waits for the health answer wanted; returns that answer (not a later
    one: the state may move on meanwhile)."""
    last = []

    def ok():
        got = health(nd)
        last[:] = [got]
        rc, out, j = got
        return got if rc == status and (needle is None or needle in out) and \
            j.get("exit_status") == status else None
    try:
        return wait_for(ok, timeout, "%s: health %d%s" % (
            nd.name, status, " with %r" % needle if needle else ""))
    except AssertionError as e:
        raise AssertionError("%s (last: %r)" % (e, last[0][1] if last else None))


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        for nd in c.nodes:
            rc, out, j = expect(nd, 0)
            check(out.startswith("Health: healthy") and j["health"] == "healthy"
                  and j["reasons"] == [], "%s: %r %r" % (nd.name, out, j))
        c.say("3 members: all healthy")

        f = c.followers(leader)
        f[1].stop()
        _, out, j = expect(leader, 1, "peer link to node")
        check(j["health"] == "degraded" and any(f[1].peer_addr in r for r in j["reasons"]),
              "the degraded reason does not name %s: %r" % (f[1].peer_addr, j))
        c.say("%s stopped: %s", f[1].name, out.strip().replace("\n", " | "))

        f[0].ok("xmpp disable")
        _, out, _ = expect(f[0], 2, "XMPP is disabled: run xmpp enable")
        c.say("%s disabled: %s", f[0].name, out.strip().replace("\n", " | "))
        f[0].ok("xmpp enable")
        f[1].start()
        c.wait_converged(timeout=60)
        for nd in c.nodes:
            expect(nd, 0)
        c.say("back: all healthy")

        # A draining node sends new sessions elsewhere: a load balancer
        # asking xmpp health should take it out until the drain ends.
        d = c.followers(c.leader())[0]
        d.ok("xmpp cluster drain", timeout=60)
        _, out, _ = expect(d, 1, "this node is draining")
        c.say("%s draining: %s", d.name, out.strip().replace("\n", " | "))
        d.ok("xmpp cluster drain --off", timeout=60)
        expect(d, 0)

        victim = c.followers(c.leader())[0]
        c.leader().ok("xmpp cluster remove %s --yes" % victim.node_id(), timeout=60)
        _, out, _ = expect(victim, 2, "removed from its cluster")
        c.say("%s removed: %s", victim.name, out.strip().replace("\n", " | "))

        # A certificate close to its end degrades the node that uses it.
        nd = c.leader()
        sh(os.path.join(certs_dir(), "mknode"), c.ca, "short", "--domain", "example.com",
           "--ip", nd.addr, "--days", "5", env=CERT_ENV)
        nd.put_pki(c.ca, "short.key", "short.crt")
        nd.ok("xmpp certs short.key short.crt ca-bundle.pem")
        _, out, _ = expect(nd, 1, "expires in 4 days")
        c.say("%s with a 5-day certificate: %s", nd.name, out.strip().replace("\n", " | "))

        # No leader: the other member of the two left stops; the node
        # keeps answering `xmpp cluster status` (exit 0, CANDIDATE or
        # FOLLOWER with no leader) and xmpp health says degraded, why and
        # what fails meanwhile (before: exit 0 and nothing said).
        other = next(o for o in c.nodes if o is not nd and o is not victim)
        other.stop()
        _, out, j = expect(nd, 1, "no cluster leader")
        check(any("configuration changes fail" in r for r in j["reasons"]), str(j))
        rc, text, _ = nd.mmp("xmpp cluster status")
        check(rc == 0 and re.search(r"(?m)^Leader: none", text), "%d %s" % (rc, text))
        c.say("%s without a leader: %s", nd.name, out.strip().replace("\n", " | "))


run(main, timeout=300)
