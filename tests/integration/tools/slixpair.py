#!/usr/bin/python3
"""slixpair: two slixmpp clients (Debian's python3-slixmpp, run with
Debian's /usr/bin/python3), a second client library besides libstrophe,
log in on two nodes and behave as a modern desktop client does at login:
STARTTLS verified against the cluster's CA for the domain, SCRAM, bind,
roster get, initial presence with entity capabilities (XEP-0115), disco
(XEP-0030) of the server and of the other user, ping (XEP-0199), software
version (XEP-0092), carbons (XEP-0280), blocking (XEP-0191) and vCard
requests that the server does not implement, then
numbered messages both ways (bare JID) with receipts requested.

    slixpair.py CA_FILE JID1 PASSWORD1 HOST1 JID2 PASSWORD2 HOST2 COUNT

Prints one JSON object on stdout: per client what each request got
("result", or "error:<condition>", or "timeout"), the mechanism used, and
the numbers received in order.  Exit 0 once both clients finished, 1 when
a login failed or the run timed out (the JSON says which)."""
import asyncio
import json
import logging
import os
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

PLUGINS = ["xep_0030", "xep_0199", "xep_0092", "xep_0115", "xep_0280", "xep_0191",
           "xep_0184", "xep_0054"]


class Client(slixmpp.ClientXMPP):
    def __init__(self, name, jid, password, host, ca, peer, count):
        super().__init__(jid, password)
        self.name = name
        self.host = host
        self.peer = peer
        self.count = count
        self.ca_certs = ca
        self.out = {"requests": {}, "received": [], "login": None}
        self.got_all = asyncio.Event()
        self.ready = asyncio.Event()
        self.failed = None
        for p in PLUGINS:
            self.register_plugin(p)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_all_auth", self.on_failed)
        self.add_event_handler("connection_failed", self.on_failed)

    def on_failed(self, *_):
        self.failed = "login failed"
        self.out["login"] = "failed"
        self.ready.set()
        self.got_all.set()

    async def ask(self, what, coro):
        try:
            await asyncio.wait_for(coro, 15)
            self.out["requests"][what] = "result"
        except IqError as e:
            self.out["requests"][what] = "error:" + e.iq["error"]["condition"]
        except (IqTimeout, asyncio.TimeoutError):
            self.out["requests"][what] = "timeout"

    async def start(self, _):
        self.out["login"] = "ok"
        self.out["mechanism"] = getattr(self.plugin["feature_mechanisms"], "mech", None) and \
            self.plugin["feature_mechanisms"].mech.name
        self.out["bound"] = str(self.boundjid)
        await self.ask("roster", self.get_roster(timeout=15))
        self.send_presence(ppriority=5)
        domain = self.boundjid.domain
        await self.ask("disco#info server",
                       self.plugin["xep_0030"].get_info(jid=domain, timeout=15))
        await self.ask("disco#items server",
                       self.plugin["xep_0030"].get_items(jid=domain, timeout=15))
        await self.ask("disco#info own account",
                       self.plugin["xep_0030"].get_info(jid=self.boundjid.bare, timeout=15))
        await self.ask("ping server", self.plugin["xep_0199"].send_ping(domain, timeout=15))
        await self.ask("version server",
                       self.plugin["xep_0092"].get_version(domain, timeout=15))
        await self.ask("carbons enable", self.plugin["xep_0280"].enable(timeout=15))
        await self.ask("blocklist", self.plugin["xep_0191"].get_blocked(timeout=15))
        await self.ask("vcard own", self.plugin["xep_0054"].get_vcard(timeout=15))
        self.ready.set()

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal") or not msg["body"].startswith("n="):
            return
        self.out["received"].append(int(msg["body"][2:]))
        if len(self.out["received"]) >= self.count:
            self.got_all.set()

    async def send_numbers(self):
        for i in range(1, self.count + 1):
            m = self.make_message(mto=self.peer, mbody="n=%d" % i, mtype="chat")
            m["request_receipt"] = True
            m.send()
            await asyncio.sleep(0)


async def main(argv):
    ca, j1, p1, h1, j2, p2, h2, count = argv[1:9]
    count = int(count)
    a = Client("a", j1, p1, h1, ca, slixmpp.JID(j2).bare, count)
    b = Client("b", j2, p2, h2, ca, slixmpp.JID(j1).bare, count)
    for c in (a, b):
        c.connect(address=(c.host, 5222))
    ok = True
    try:
        await asyncio.wait_for(asyncio.gather(a.ready.wait(), b.ready.wait()), 60)
        if a.failed is None and b.failed is None:
            await a.send_numbers()
            await b.send_numbers()
            await asyncio.wait_for(asyncio.gather(a.got_all.wait(), b.got_all.wait()), 60)
    except asyncio.TimeoutError:
        ok = False
    ok = ok and a.failed is None and b.failed is None
    result = {"a": a.out, "b": b.out, "ok": ok}
    for c in (a, b):
        c.disconnect()
    await asyncio.sleep(0.5)
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG if os.environ.get("SLIX_DEBUG") else logging.ERROR)
    sys.exit(asyncio.run(main(sys.argv)))
