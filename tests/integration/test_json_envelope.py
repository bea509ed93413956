#!/usr/bin/env python3
"""test_json_envelope: one JSON format for every answer of
`mmp-cli --json` (docs/control-protocol.md "mmp-cli --json").  Seen before:
`--json help` printed text, an unknown command printed nothing on stdout,
success was the bare result without "ok", `timing` was a string in one
answer and an object in another, times came in two formats.

On a one-node cluster with a domain, a call bridge and a user, every
command that `--json help` lists is run with --json: first with no
arguments, then, for commands that take some, with plausible ones (a
missing name, a bad value).  Each answer must be exactly one JSON object on
stdout, {"ok": true, "data": {...}} with exit 0 (or xmpp health's own
status), or {"ok": false, "error": {"code", "message"}} with a non-zero
exit and the message on stderr.  Every value that looks like a time is an
RFC 3339 UTC timestamp; every `timing` is an object.  Also: `--json help`,
`--json help <command>`, an unknown command, an unknown word, and a line
the shell cannot split."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from xmppdtest import check, run, run_mmp  # noqa: E402

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DATEISH = re.compile(r"^\d{4}-\d\d-\d\d")
# Commands that would end the node's usefulness for the rest of the run,
# or wait for input: run last, or only with arguments that are refused.
LAST = ("xmpp reset", "xmpp disable", "xmpp cluster disable", "xmpp user del",
        "xmpp callbridge del", "exit")


def answer(node, line):
    """(exit status, envelope, stderr) of `mmp-cli --json -c line`."""
    rc, out, err = run_mmp(node.sock, line, True, "", 60, catch_timeout=True)
    check(rc != 124, "%r hung" % line)
    try:
        env = json.loads(out)
    except ValueError:
        raise AssertionError("%r: stdout is not one JSON object: %r (stderr %r)"
                             % (line, out, err))
    check(isinstance(env, dict) and isinstance(env.get("ok"), bool),
          "%r: no boolean ok: %r" % (line, env))
    if env["ok"]:
        check(set(env) == {"ok", "data"} and isinstance(env["data"], dict),
              "%r: success is not {ok, data: {}}: %r" % (line, env))
        check(rc in (0, 1, 2) if line.startswith("xmpp health") else rc == 0,
              "%r: ok but exit %d" % (line, rc))
        check_values(line, env["data"])
    else:
        e = env.get("error")
        check(set(env) == {"ok", "error"} and isinstance(e, dict) and
              isinstance(e.get("code"), str) and e["code"] and
              isinstance(e.get("message"), str) and e["message"],
              "%r: error is not {ok, error: {code, message}}: %r" % (line, env))
        check(rc != 0, "%r: error with exit 0" % line)
        check(e["message"] in err, "%r: the message is not on stderr: %r" % (line, err))
    return rc, env, err


def check_values(line, v, path="data"):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "timing":
                check(isinstance(x, dict), "%r: %s.timing is not an object: %r"
                      % (line, path, x))
            check_values(line, x, path + "." + k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            check_values(line, x, "%s[%d]" % (path, i))
    elif isinstance(v, str) and DATEISH.match(v):
        check(RFC3339.match(v), "%r: %s = %r is not an RFC 3339 UTC time"
              % (line, path, v))


def commands(node):
    rc, env, _ = answer(node, "help")
    check(env["ok"] and isinstance(env["data"].get("commands"), list) and
          len(env["data"]["commands"]) > 20, "--json help: %r" % env)
    for c in env["data"]["commands"]:
        check(isinstance(c.get("command"), str) and isinstance(c.get("usage"), str) and
              isinstance(c.get("summary"), str), "help entry %r" % c)
    return env["data"]["commands"]


def plausible_args(usage):
    """Arguments for a usage line: a name that does not exist for <...>
    words, the first choice of a|b lists; optional [..] parts left out."""
    words = []
    for w in re.sub(r"\[[^\]]*\]", "", usage).split():
        if w.startswith("<"):
            words.append("nosuchthing")
        elif "|" in w:
            words.append(w.split("|")[0])
        elif not w.startswith("-"):
            words.append(w)
    return " ".join(words)


def main():
    with Cluster(1) as c:
        c.form(members=1)
        node = c.nodes[0]
        node.ok("xmpp callbridge add cb1")
        node.ok("xmpp user add alice", stdin="correct horse battery\n")

        cmds = commands(node)
        rc, env, _ = answer(node, "help xmpp status")
        check(env["ok"] and [x["command"] for x in env["data"]["commands"]] ==
              ["xmpp status"], "help xmpp status: %r" % env)
        first = [x for x in cmds if x["command"] not in LAST]
        last = [x for x in cmds if x["command"] in LAST]
        seen = {"ok": 0, "error": 0}
        for x in first + last:
            lines = [x["command"]]
            if x["usage"].strip():
                lines.append("%s %s" % (x["command"], plausible_args(x["usage"])))
            for line in lines:
                if x["command"] in LAST and line == x["command"] and x["usage"].strip():
                    continue  # (without its arguments it is refused anyway)
                _, env, _ = answer(node, line)
                seen["ok" if env["ok"] else "error"] += 1
        c.say("%d commands: %d answers ok, %d errors, every one an envelope",
              len(cmds), seen["ok"], seen["error"])
        check(seen["ok"] > 10 and seen["error"] > 10, "too few of each: %r" % seen)

    # Shell-side errors need no daemon for the envelope, but use one anyway.
    with Cluster(1) as c:
        c.form(members=1)
        node = c.nodes[0]
        for line, code in (("xmpp frobnicate", "unknown-command"),
                           ("frobnicate", "unknown-command"),
                           ("help frobnicate", "unknown-command"),
                           ("xmpp cluster", "unknown-command"),
                           ("xmpp tls maybe", "invalid-argument"),
                           ("xmpp domain 'unclosed", "invalid-argument")):
            rc, env, err = answer(node, line)
            check(not env["ok"] and env["error"]["code"] == code,
                  "%r: %r (want %s)" % (line, env, code))
        rc, env, _ = answer(node, "xmpp cluster enable")
        check(env["ok"] and isinstance(env["data"].get("timing"), dict) and
              env["data"]["timing"].get("profile") in ("default", "fast-lan"),
              "enable's timing: %r" % env)
        c.say("shell errors are envelopes too; enable's timing is an object")


run(main, timeout=400)
