#!/usr/bin/env python3
"""test_upgrade_session4: upgrading a cluster of the first landed build
(session 4, git 5d99433) to this one, as docs/cluster.md "Rolling
upgrade" tells the admin (issue 13 item 12).

Session 4 wrote peer frames at version 3 before HELLO had a version range:
its version 3 and ours differ, so no link between the two builds can work
and the upgrade cannot be rolling.  What the docs promise instead:

- three nodes on the session-4 build hold a call bridge and an account;
- one node is started on this build (the docs' trial): the links to the
  old nodes are refused on its side, and its `xmpp cluster status` names
  the reason and the way out for each of them (before: "malformed frame"
  every second, nothing in the status); the two old nodes keep a leader
  and take writes;
- back on the old build it links again (nothing was changed);
- the upgrade with the cluster stopped: every node stopped, every node
  started on this build on the same state directory: one cluster again,
  every link at version 4, the call bridges and the account kept on every
  node, `xmpp health` healthy, and a write commits everywhere.

The session-4 xmppd comes from XMPPD_SESSION4_BIN, or is built from git
(`git archive 5d99433`, only the xmppd target, into
$XMPPD_BUILD_DIR/session4, kept for the next run); without git history
the test exits 77 and says why."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, wait_for  # noqa: E402
from xmppdtest import check, run  # noqa: E402

SESSION4 = "5d99433"
UNRANGED = "xmppd build from before peer protocol version ranges"


def session4_bin():
    """The session-4 xmppd: XMPPD_SESSION4_BIN, or built from git."""
    given = os.environ.get("XMPPD_SESSION4_BIN")
    if given:
        return given
    top = os.path.join(os.environ["XMPPD_BUILD_DIR"], "session4")
    src, build = os.path.join(top, "src"), os.path.join(top, "build")
    binary = os.path.join(build, "xmppd", "xmppd")
    if os.access(binary, os.X_OK):
        return binary
    srcdir = os.environ["XMPPD_SOURCE_DIR"]
    if subprocess.run(["git", "-C", srcdir, "cat-file", "-e", SESSION4 + "^{commit}"],
                      capture_output=True).returncode != 0:
        print("SKIP: commit %s (session 4) is not in this checkout's history; "
              "set XMPPD_SESSION4_BIN to its xmppd" % SESSION4)
        sys.exit(77)
    os.makedirs(src, exist_ok=True)
    arch = subprocess.Popen(["git", "-C", srcdir, "archive", SESSION4], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", src], stdin=arch.stdout, check=True)
    check(arch.wait() == 0, "git archive %s failed" % SESSION4)
    for argv in (["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                  "-DXMPPD_BUILD_TESTS=OFF"],
                 ["cmake", "--build", build, "-j2", "--target", "xmppd"]):
        p = subprocess.run(argv, capture_output=True, text=True)
        check(p.returncode == 0, "%s:\n%s" % (" ".join(argv), (p.stdout + p.stderr)[-3000:]))
    return binary


def refusals(nd):
    """{peer address: refusal or None} from nd's status --json."""
    return {p["address"]: p.get("refused") for p in nd.status_json().get("peers", [])
            if not p.get("self")}


def main():
    old = session4_bin()
    with Cluster(3) as c:
        for nd in c.nodes:
            nd.binary = old
        leader = c.form()
        c.add_callbridge("cb1")
        leader.ok("xmpp user add alice", stdin="alice-pass-1\nalice-pass-1\n")
        c.say("three nodes on the session-4 build")

        trial = c.followers(leader)[0]
        others = [nd for nd in c.nodes if nd is not trial]
        trial.stop()
        trial.binary = None
        trial.start()
        wait_for(lambda: all(r and UNRANGED in r for r in refusals(trial).values()), 60,
                 "%s names the reason for both old members" % trial.name)
        text = trial.ok("xmpp cluster status")
        check(len(re.findall(r"(?m)^    link: refused: .*%s.*Rolling upgrade" % UNRANGED,
                             text)) == 2, text)
        c.say("%s on this build: %s", trial.name,
              next(r for r in refusals(trial).values()))
        c.add_callbridge("cb2", on=others[0], everywhere=False)
        c.say("the old nodes keep a leader and take writes")

        trial.stop()
        trial.binary = old
        trial.start()
        c.wait_converged(timeout=60)
        c.say("%s back on the old build: one cluster again", trial.name)

        for nd in c.nodes:
            check(nd.stop() == 0, "%s did not exit 0" % nd.name)
        for nd in c.nodes:
            nd.binary = None
        c.start_all()
        c.wait_converged(timeout=60)
        for nd in c.nodes:
            wait_for(lambda: all(p.get("link") == "up" and p.get("protocol") == 4
                                 for p in nd.status_json()["peers"] if not p.get("self")),
                     60, "%s: every link up at version 4" % nd.name)
            rc, out, err = nd.mmp("xmpp health")
            check(rc == 0, "%s: xmpp health %d:\n%s" % (nd.name, rc, out + err))
            bridges = nd.ok("xmpp callbridge list")
            check(re.search(r"(?m)^cb1\s", bridges) and re.search(r"(?m)^cb2\s", bridges),
                  "%s lost a call bridge:\n%s" % (nd.name, bridges))
            check(re.search(r"(?m)^alice\s", nd.ok("xmpp user list")), "%s lost alice" % nd.name)
        c.add_callbridge("cb3", on=c.nodes[2])
        c.say("every node on this build, the data kept, writes commit")


if __name__ == "__main__":
    run(main, timeout=1400)
