#!/usr/bin/env python3
"""test_users: client accounts administered with mmp-cli as an admin does,
on a 3-node cluster.

- `xmpp user add` on a follower with the password on stdin: the account is
  on every node (`xmpp user list`, text and --json, with its creation time).
- Adding it again, on another node, fails with one clear line ("exists").
- `xmpp user passwd` on the leader keeps the creation time; for an unknown
  account it fails ("not-found"); `xmpp user del` on the other follower
  removes it everywhere; the list is empty again; a second del fails.
- Bad names are refused with the reason (space, '@', '/', empty), by the
  shell before any password is asked, and by the daemon for a raw request;
  a name PRECIS refuses (a symbol) is refused by the daemon.
- Names are prepared (RFC 7622 §3.3, PRECIS UsernameCaseMapped): "CafÉ" is
  stored as "café", and a fullwidth "ＡＬＩＣＥ" is the existing "alice".
- `--generate` prints a 20-character password once (text and --json).
- `xmpp user iterations` shows 4096, refuses 1000, sets 5000 everywhere.
- No password appears in any node's log, state directory (Raft log,
  snapshots, node state) or mmp-cli's output other than the one generated
  password printed once."""
import json
import os
import re
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import unwrap, check, run, run_mmp  # noqa: E402

PASSWORDS = ["Corr3ct-horse-7f1c2e", "second-Pw-9a8b7c6d"]


def users(nd):
    return nd.json("xmpp user list")["users"]


def names(nd):
    return [u["name"] for u in users(nd)]


def raw_request(sock, cmd, args):
    """One control request without mmp-cli (docs/control-protocol.md)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sock)
    body = json.dumps({"v": 1, "id": 1, "cmd": cmd, "args": args}).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data[4:])


def grep_tree(top, needles):
    """(path, needle) for every file under top that holds one of needles
    (as bytes: the Raft log and snapshots are binary)."""
    hits = []
    for dirpath, _, files in os.walk(top):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue  # a socket
            for n in needles:
                if n.encode() in data:
                    hits.append((p, n))
    return hits


def main():
    with Cluster(3) as c:
        leader = c.form(fast_lan=True)
        f1, f2 = c.followers(leader)

        # -- add on a follower, password from stdin (not a tty) --
        out = f1.ok("xmpp user add Alice", stdin=PASSWORDS[0] + "\n")
        check(re.search(r"User alice added \(alice@example\.com, created \d{4}-", out),
              "add answer: %r" % out)
        check(PASSWORDS[0] not in out, "the password was echoed: %r" % out)
        c.wait_replicated("xmpp user list", lambda o: re.search(r"(?m)^alice\s", o),
                          nodes=c.nodes, what="user added on a follower")
        lists = [users(nd) for nd in c.nodes]
        check(all(x == lists[0] for x in lists), "lists differ: %s" % lists)
        check(lists[0][0]["jid"] == "alice@example.com", "jid: %s" % lists[0])
        created = lists[0][0]["created"]
        check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", created or ""),
              "created: %r" % created)
        check(all(nd.json("xmpp status")["accounts"] == 1 for nd in c.nodes),
              "xmpp status counts the account on every node")
        check("Accounts: 1" in f2.ok("xmpp status"), "xmpp status text: Accounts")
        text = f2.ok("xmpp user list")
        check("Created" in text and created in text, "text list: %r" % text)
        c.say("user added on follower %s (password on stdin) is on every node", f1.name)

        # -- again, elsewhere: exists --
        rc, out, err = f2.mmp("xmpp user add alice", stdin="whatever-pw\n")
        check(rc == 1 and "alice already exists" in err
              and len(err.strip().splitlines()) == 1, "second add: rc %d, %r" % (rc, err))
        c.say("a second add is refused: %s", err.strip())

        # -- passwd on the leader keeps created; unknown user --
        out = leader.ok("xmpp user passwd alice", stdin=PASSWORDS[1] + "\n")
        check("Password of alice changed" in out, "passwd answer: %r" % out)
        check(users(f1)[0]["created"] == created, "created changed by passwd")
        rc, out, err = leader.mmp("xmpp user passwd nobody", stdin="x-y-z-pw\n")
        check(rc == 1 and "no user nobody" in err, "passwd unknown: %d %r" % (rc, err))

        # -- bad names: the shell refuses before asking; the daemon too --
        for bad, why in (("'a b'", "space"), ("a@b", "'@'"), ("a/b", "'/'"),
                         ("''", "empty")):
            rc, out, err = f1.mmp("xmpp user add %s" % bad, stdin="pw-pw-pw\n")
            check(rc == 2 and why in err and "RFC 7622" in err and
                  len(err.strip().splitlines()) == 1,
                  "bad name %s: rc %d %r" % (bad, rc, err))
        # A raw request that skips the shell's check: the daemon says the same.
        resp = raw_request(f2.sock, "xmpp.user.add", {"name": "x@y", "password": "pw"})
        check(not resp["ok"] and resp["error"]["code"] == "invalid-argument" and
              "'@'" in resp["error"]["message"], "daemon on a bad name: %s" % resp)
        # PRECIS (RFC 8265 §3.3): a symbol outside the identifier class.
        rc, out, err = f1.mmp("xmpp user add a\u2603b", stdin="pw-pw-pw\n")
        check(rc == 1 and "PRECIS" in err and len(err.strip().splitlines()) == 1,
              "a name PRECIS refuses: %d %r" % (rc, err))
        c.say("bad names refused with the reason")

        # -- preparation: case and width mapping, non-ASCII kept --
        out = f1.ok("xmpp user add Caf\u00c9", stdin="cafe-pw-5555\n")
        check("User caf\u00e9 added" in out, "non-ASCII name prepared: %r" % out)
        rc, out, err = f2.mmp("xmpp user add \uff21\uff2c\uff29\uff23\uff25",
                              stdin="fullwidth-pw\n")
        check(rc == 1 and "alice already exists" in err,
              "fullwidth ALICE is alice: %d %r" % (rc, err))
        f2.ok("xmpp user del CAF\u00c9")

        # -- --generate: printed once --
        out = f2.ok("xmpp user add bob --generate")
        m = re.search(r"(?m)^Password: (\S+)$", out)
        check(m is not None and len(m.group(1)) == 20, "generated: %r" % out)
        gen = m.group(1)
        check(out.count(gen) == 1, "shown more than once: %r" % out)
        rc, out, err = run_mmp(f1.sock, "xmpp user passwd bob --generate", json_out=True)
        check(rc == 0, "passwd --generate --json: %d %r" % (rc, err))
        gen2 = unwrap(json.loads(out))["password"]
        check(len(gen2) == 20 and gen2 != gen, "json generated: %r" % out)
        check(not any(gen in json.dumps(u) for u in users(leader)), "listed password")
        c.wait_replicated("xmpp user list", lambda o: re.search(r"(?m)^bob\s", o),
                          nodes=c.nodes, what="generated user")

        # -- iterations --
        it = leader.json("xmpp user iterations")
        check(it["iterations"] == 4096 and it["default"] == 4096, "iterations: %s" % it)
        rc, out, err = f1.mmp("xmpp user iterations 1000")
        check(rc == 2 and "4096" in err, "iterations 1000: %d %r" % (rc, err))
        f1.ok("xmpp user iterations 5000")
        c.wait_replicated("xmpp user iterations", lambda o: "5000" in o, nodes=c.nodes,
                          what="iterations")
        leader.ok("xmpp user add carol", stdin="carol-pw-1234\n")

        # -- del on the other follower, everywhere --
        for name in ("alice", "bob", "carol"):
            f2.ok("xmpp user del %s" % name)
        c.wait_replicated("xmpp user list", lambda o: "(none)" in o, nodes=c.nodes,
                          what="deleted everywhere")
        check(all(users(nd) == [] for nd in c.nodes), "list not empty")
        rc, out, err = f1.mmp("xmpp user del alice")
        check(rc == 1 and "no user alice" in err, "second del: %d %r" % (rc, err))
        c.say("users deleted on follower %s are gone everywhere", f2.name)

        # -- no password anywhere on disk (logs at debug level, state) --
        secrets = PASSWORDS + [gen, gen2, "carol-pw-1234", "cafe-pw-5555"]
        hits = grep_tree(c.base, secrets)
        check(not hits, "passwords found on disk: %s" % hits)
        # The search does read the Raft logs: the account names are there.
        check(any("state" in p for p, _ in grep_tree(c.base, ["carol"])),
              "the grep found no account name in any state directory")
        c.say("no password in any log or data file of %d nodes", len(c.nodes))


run(main, timeout=240)
