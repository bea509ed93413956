#!/usr/bin/env python3
"""Draining the leader of a 3-node cluster (docs/cluster.md "Draining a node"), as an admin would:

 - a call bridge (xcomp) and a browser client (WebSocket over wss, the
   client of test_websocket.py) are connected to the leader;
 - `xmpp cluster drain` on the leader hands leadership over first (the
   other nodes agree on a new leader, the command says so), then the
   component gets the stream error see-other-host naming another member's
   host:5223 and the WebSocket client <close see-other-uri='wss://...'/>
   naming the same kind of member's wss URL;
 - the component reconnects to the named node and is served there;
 - while draining, a new component and a new WebSocket client on the
   drained node are sent away the same way; `xmpp status` says draining
   and `xmpp cluster status` prints "Draining: yes";
 - `xmpp cluster undrain` ends it: a component is served there again;
 - SIGTERM on the (new) leader hands leadership over, sends its component
   to a member that stays (see-other-host), and exits 0.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, XMPP_PORT, wait_for  # noqa: E402
from test_websocket import FRAMING, PATH, WSS_PORT, WS, open_stream, sasl_scram  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def see_other_uri(ws):
    """Reads messages until the <close/>; returns its see-other-uri."""
    while True:
        op, payload = ws.recv()
        check(op == 1, "expected a text message, got opcode %d %r" % (op, payload))
        m = payload.decode()
        if m.startswith("<close"):
            check(FRAMING in m, m)
            u = re.search(r"see-other-uri=[\"']([^\"']+)[\"']", m)
            check(u is not None, "no see-other-uri in %r" % m)
            return u.group(1)


def main():
    with Cluster(3) as c:
        leader = c.form()
        others = c.followers(leader)
        other_addrs = {nd.addr for nd in others}
        ca = os.path.join(c.ca, "ca-bundle.pem")
        c.add_callbridge("cb1")
        c.add_callbridge("cb2")
        leader.ok("xmpp user add alice", stdin="alice-pw\n")
        wait_for(lambda: all("alice" in nd.ok("xmpp user list") for nd in c.nodes), 60,
                 "alice replicated")

        # The leader now, not at form() (a loaded machine may have had an
        # election meanwhile): the drain below must meet the leader.
        leader = c.wait_converged()
        others = c.followers(leader)
        other_addrs = {nd.addr for nd in others}
        comp = c.comp(leader, "cb1", "--stay")
        comp.wait_line(r"^connected jid=cb1\.example\.com")
        ws = WS(leader.addr, WSS_PORT, ca)
        check(ws.status == 101, ws.head)
        open_stream(ws)
        sasl_scram(ws, "alice", "alice-pw")
        open_stream(ws)
        ws.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>web</resource></bind></iq>")
        check("<jid>alice@example.com/web</jid>" in ws.text(), "alice bound")
        c.say("cb1 and alice (wss) on the leader %s", leader.name)

        out = leader.ok("xmpp cluster drain")
        check("leadership was handed over first" in out, "drain on the leader: %r" % out)
        new_leader, _ = c.wait_leader(c.nodes, not_node=leader)
        check(new_leader is not leader, "leadership moved")
        c.say("drained %s: %s; new leader %s", leader.name, out.strip(), new_leader.name)

        # The component is told where to go (RFC 6120 §4.9.3.19).
        comp.wait_line(r"^stream-error condition=see-other-host$")
        line = comp.wait_line(r"^see-other-host host=")
        host, port = line.split("=", 1)[1].rsplit(":", 1)
        check(host in other_addrs and int(port) == XMPP_PORT,
              "see-other-host names another member's host:%d: %r" % (XMPP_PORT, line))
        target = c.by_addr(host)
        # ...and the WebSocket client too (RFC 7395 §3.6.1).
        uri = see_other_uri(ws)
        check(re.fullmatch(r"wss://(.+):%d%s" % (WSS_PORT, re.escape(PATH)), uri) and
              uri.split("//")[1].rsplit(":", 1)[0] in other_addrs,
              "see-other-uri names another member's wss URL: %r" % uri)
        c.say("cb1 sent to %s, alice to %s", line.split("=", 1)[1], uri)

        # The component goes there and is served.
        moved = c.comp(target, "cb1", "--stay")
        moved.wait_line(r"^connected jid=cb1\.example\.com")
        wait_for(lambda: re.search(r"(?m)^cb1\s.*\byes\b",
                                   target.ok("xmpp callbridge list")) is not None,
                 60, "cb1 connected on %s" % target.name)

        # Draining: new sessions are sent away, and status says so.
        st = leader.json("xmpp status")
        check(st.get("draining") is True, "xmpp status draining: %r" % st.get("draining"))
        check("Draining: yes" in leader.ok("xmpp cluster status"), "cluster status")
        late = c.comp(leader, "cb2", "--stay")
        late.wait_line(r"^stream-error condition=see-other-host$")
        line = late.wait_line(r"^see-other-host host=")
        check(line.split("=", 1)[1].rsplit(":", 1)[0] in other_addrs, line)
        ws2 = WS(leader.addr, WSS_PORT, ca)
        check(ws2.status == 101, ws2.head)
        ws2.send("<open xmlns='%s' to='example.com' version='1.0'/>" % FRAMING)
        uri = see_other_uri(ws2)
        check(uri.split("//")[1].rsplit(":", 1)[0] in other_addrs, uri)

        # Undrain: served again.
        out = leader.ok("xmpp cluster undrain")
        check("serves XMPP sessions again" in out, out)
        check(leader.json("xmpp status").get("draining") is False, "undrained")
        again = c.comp(leader, "cb2", "--stay")
        again.wait_line(r"^connected jid=cb2\.example\.com")
        c.say("undrained %s: cb2 served there", leader.name)

        # SIGTERM on the leader: leadership first, then its component is
        # sent to a member that stays, then the process exits 0.
        c.add_callbridge("cb3")
        bye = c.comp(new_leader, "cb3", "--stay")
        bye.wait_line(r"^connected jid=cb3\.example\.com")
        rest = [nd for nd in c.nodes if nd is not new_leader]
        check(new_leader.stop() == 0, "clean exit after SIGTERM")
        line = bye.wait_line(r"^see-other-host host=")
        check(line.split("=", 1)[1].rsplit(":", 1)[0] in {nd.addr for nd in rest}, line)
        log = new_leader.log()
        check("leadership handed over before stopping" in log, "transfer logged")
        check(log.find("leadership handed over before stopping") <
              log.find("draining: sending"), "leadership moved before the sessions")
        c.wait_leader(rest, not_node=new_leader)
        c.say("SIGTERM on %s: leadership handed over, cb3 %s", new_leader.name, line)


if __name__ == "__main__":
    run(main)
