#!/usr/bin/env python3
"""test_cluster_join_token: the admin's consent.  A node
holding a certificate from the trust bundle joins only with a one-time
token made by `xmpp cluster invite` on the member it dials
(docs/cluster.md "Join"):

- `xmpp cluster join <addr>` without a token fails at once with one line
  that says how to get one;
- a made-up token, a token made on another member, and an expired token
  (--ttl 1s) are refused by the member, with a line naming `xmpp cluster
  invite`; the member logs the refusal; the configuration is unchanged;
- a refused join does not use its token up; a valid token joins the
  node; used once, it is refused for the next node;
- no token appears in any node's log."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, check_peers, wait_logged  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def main():
    with Cluster(4) as c:
        leader = c.form(members=2)
        first, second = c.nodes[0], c.nodes[1]
        new, other = c.nodes[2], c.nodes[3]
        members = [first, second]
        tokens = []

        err = new.fails("xmpp cluster join %s" % first.addr, "xmpp cluster invite")
        c.say("no token: %s", err)

        made_up = "0123456789abcdef0123456789abcdef"
        err = new.fails("xmpp cluster join %s %s" % (first.addr, made_up),
                        ["xmpp cluster invite", "join token"], timeout=60)
        c.say("a made-up token: %s", err)
        wait_logged([first], re.compile(r"join request from node .* refused: not a valid "
                                        r"join token"), 60, "the member logs the refusal")

        elsewhere = second.invite()
        tokens.append(elsewhere)
        err = new.fails("xmpp cluster join %s %s" % (first.addr, elsewhere),
                        "xmpp cluster invite", timeout=60)
        c.say("a token made on another member: %s", err)

        short = first.invite("1s")
        tokens.append(short)
        time.sleep(1.5)  # (the token's lifetime, not a wait for an event)
        err = new.fails("xmpp cluster join %s %s" % (first.addr, short),
                        "xmpp cluster invite", timeout=60)
        c.say("an expired token: %s", err)
        check_peers(members, members)

        good = first.invite("10m")
        tokens.append(good)
        new.ok("xmpp cluster join %s %s" % (first.addr, good), timeout=60)
        c.say("%s joined with a token from %s", new.name, first.name)
        err = other.fails("xmpp cluster join %s %s" % (first.addr, good),
                          "xmpp cluster invite", timeout=60)
        c.say("the same token again: %s", err)
        c.wait_converged(members=[first, second, new], asking=[first, second, new],
                         timeout=30)
        for nd in c.nodes:
            log = nd.log()
            for t in tokens + [made_up]:
                check(t not in log, "%s logs a join token" % nd.name)
        check(leader in members, "the leader is a member")
        c.say("tokens: made on the member dialled, single use, expire, never logged")


run(main, timeout=240)
