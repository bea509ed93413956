#!/usr/bin/env python3
"""test_client_limits: sessions per account across a 3-node cluster and the
client counts of `xmpp status` (docs/admin.md
"Clients", "Client status"), with real processes and libstrophe clients
(tools/xclient.c).

- `xmpp client max-sessions 2` on every node (a node-local setting):
  dora logs in on both followers; a third resource on the leader is
  refused with resource-constraint (RFC 6120 §7.6.2.1: the count comes
  from the routing table), while the same full JID as one of hers
  replaces that session; once one session is gone, the third binds.
- `xmpp status` (text and --json) on the leader: client sessions by
  transport, logins and failures in the last minute and in all, the
  refusal, the blocked list (empty), shaper pauses; a wrong password
  shows as a failure.
- `xmpp client rate` and `xmpp client version`: saved, shown, applied
  without a restart (a logged-in client stays); at 4096 bytes/s 42,000
  bytes of messages pause their sender's connection and arrive whole, in
  order."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, tool  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.exists(tool("xclient")):
    print("skipped: needs tools/xclient")
    sys.exit(0)
from clients import Client  # noqa: E402


def routes(nd):
    return nd.json("xmpp cluster status")["forwarding"]["routes"]


def wait_routes(c, nd, want, what):
    deadline = time.monotonic() + 60
    while routes(nd) != want:
        check(time.monotonic() < deadline,
              "%s: %s routes, want %s (%s)" % (nd.name, routes(nd), want, what))
        time.sleep(0.2)


def wait_count(cl, rx, n, timeout):
    """Waits until n lines of cl's output match rx."""
    deadline = time.monotonic() + timeout
    while sum(1 for ln in cl.lines if re.search(rx, ln)) < n:
        check(time.monotonic() < deadline, "%s: fewer than %d lines matching %r:\n%s"
              % (cl.jid, n, rx, "\n".join(ln[:100] for ln in cl.lines)))
        cl._match(r"(?!)", 0.2)


def stats(nd):
    return nd.json("xmpp status")["client_stats"]


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        f1, f2 = c.followers(leader)
        ca = os.path.join(c.ca, "ca-bundle.pem")
        for nd in c.nodes:
            c.wait_serving(nd)
            out = nd.ok("xmpp client max-sessions 2")
            check("Max sessions: 2" in out, out)
        f1.ok("xmpp user add dora", stdin="dora-pw-1\n")
        c.wait_replicated("xmpp user list", lambda o: "dora" in o, nodes=c.nodes)
        base = routes(leader)

        a = Client("dora@example.com/a", "dora-pw-1", f1.addr, 5222, ca)
        a.online()
        b = Client("dora@example.com/b", "dora-pw-1", f2.addr, 5222, ca)
        b.online()
        wait_routes(c, leader, base + 2, "dora/a and dora/b")
        third = Client("dora@example.com/c", "dora-pw-1", leader.addr, 5222, ca)
        line = third.wait_line(r"^(online|error|disconnected) ", 60)
        # libstrophe's own bind ends the connection on the error without
        # naming it: the server's log and status say why.
        check(not line.startswith("online"), "the third session: %s" % line)
        third.close()
        # The client may see the end of its stream before the leader has
        # logged and counted the refusal: wait for both.
        try:
            wait_for(lambda: "client dora@example.com/c bind refused from" in leader.log()
                     and "2 sessions, the limit" in leader.log(), 60, "the refusal logged")
        except AssertionError as e:
            raise AssertionError("%s:\n%s" % (e, leader.log()[-3000:]))
        wait_for(lambda: stats(leader)["sessions_refused"] >= 1, 60, "the refusal counted")
        check(stats(leader)["sessions_refused"] == 1, "status: %r" % stats(leader))
        c.say("a third session of dora refused with resource-constraint")

        # The same full JID again replaces that session: not a new one.
        b2 = Client("dora@example.com/b", "dora-pw-1", leader.addr, 5222, ca)
        b2.online()
        line = b.wait_line(r"^(disconnected|error) ", 60)
        check("conflict" in line, "the replaced session: %s" % line)
        b.close()
        c.say("dora/b moved to the leader (conflict), not refused")

        st = stats(leader)
        check(st["sessions"] == {"tcp": 1, "websocket": 0}, "sessions: %r" % st)
        check(st["logins_last_minute"] == 2 and st["logins"] == 2, "logins: %r" % st)
        check(st["sessions_refused"] == 1, "refused: %r" % st)
        check(st["login_failures"] == 0 and st["blocked"] == 0
              and st["blocked_newest"] == [], "failures: %r" % st)
        check("shaper_pauses" in st and st["paused_now"] == 0, "shaper: %r" % st)

        # dora/a leaves: now c binds.
        a.quit()
        wait_routes(c, leader, base + 1, "dora/a gone")
        third = Client("dora@example.com/c", "dora-pw-1", leader.addr, 5222, ca)
        third.online()
        c.say("after one left, the third binds")

        # A wrong password: a failure in the last minute.
        bad = Client("dora@example.com/z", "wrong", leader.addr, 5222, ca)
        line = bad.wait_line(r"^(online|error|disconnected) ", 60)
        check(not line.startswith("online"), "a wrong password logged in: %s" % line)
        bad.close()
        # The client may see its failure before the leader has counted it.
        wait_for(lambda: stats(leader)["login_failures"] >= 1, 60, "the failure counted")
        st = stats(leader)
        check(st["login_failures_last_minute"] == 1 and st["login_failures"] == 1
              and st["throttled"] == 2 and st["blocked"] == 0,
              "after a wrong password (the address and dora throttled): %r" % st)
        check(st["sessions"]["tcp"] == 2, "sessions: %r" % st)
        out = leader.ok("xmpp status")
        for want in ("Client stats:", "Logins last minute: 3",
                     "Login failures last minute: 1", "Sessions refused: 1",
                     "Tcp: 2", "Websocket: 0", "Max sessions: 2"):
            check(want in out, "xmpp status text lacks %r:\n%s" % (want, out))
        c.say("xmpp status counts logins, failures and refusals")

        # Rate and version: shown, applied without a restart (c stays).
        out = leader.ok("xmpp client rate 4096")
        check("Rate: 4096" in out, out)
        out = leader.ok("xmpp client version on")
        check("Version: yes" in out, out)
        rc, out, err = leader.mmp("xmpp client rate 10")
        check(rc != 0 and "1024" in (err + out), "rate 10 accepted: %s %s" % (out, err))
        cl = leader.json("xmpp status")["clients"]
        check(cl["rate"] == 4096 and cl["version"] is True and cl["max_sessions"] == 2,
              "settings: %r" % cl)
        third.send("iq-ping example.com")
        wait_count(third, r"^iq example\.com result ping", 1, 20)
        # 4096 bytes/s with bursts of 16 KiB: six 7,000-byte messages
        # (xclient takes lines up to 8 KiB) pause the sender's connection;
        # they arrive whole and in order, only later.
        bodies = ["%d" % k + "".join(chr(ord("a") + (i + k) % 26) for i in range(7000))
                  for k in range(6)]
        pauses = stats(leader)["shaper_pauses"]
        for body in bodies:
            third.send("msg dora@example.com/b %s" % body)
        for k, body in enumerate(bodies):
            line = b2.wait_line(r"^msg dora@example\.com/c %d[a-z]" % k, 120)
            check(line == "msg dora@example.com/c %s" % body,
                  "a shaped message arrived changed (%d bytes)" % len(line))
        got = [ln for ln in b2.lines if ln.startswith("msg ")]
        check(got == ["msg dora@example.com/c %s" % b for b in bodies],
              "the shaped messages, out of order or more: %d" % len(got))
        st = stats(leader)
        check(st["shaper_pauses"] > pauses, "no pause: %r" % st)
        # A ping sent now waits until the pause ends (the connection is
        # read again: resumed, nothing lost).
        third.send("iq-ping example.com")
        wait_count(third, r"^iq example\.com result ping", 2, 120)
        deadline = time.monotonic() + 60
        while stats(leader)["paused_now"] != 0:
            check(time.monotonic() < deadline, "still paused: %r" % stats(leader))
            time.sleep(0.2)
        c.say("a message over the byte rate was slowed, not lost")
        leader.ok("xmpp client rate off")
        leader.ok("xmpp client max-sessions 0")
        check(leader.json("xmpp status")["clients"]["max_sessions"] == 0, "max 0")
        third.close()
        b2.close()
        c.say("rate and version applied live")
        print(json.dumps(stats(leader)))


if __name__ == "__main__":
    main()
