"""clients: the xclient test client (tests/integration/tools/xclient.c) as a
child process with line-wise output, for the client tests.

    with Client("alice@example.com/laptop", "secret", "127.0.0.1", 5222,
                ca="/tmp/ca/ca-bundle.pem", mech="SCRAM-SHA-1") as a:
        a.wait_line(r"^online ")
        a.send("msg bob@example.com hello")
        line = a.wait_line(r"^msg ")
        a.quit()

Every line xclient prints is one event ("online <jid>", "msg <from> <body>",
"presence <from> <type>", "iq <from> <type> <id>", "error <condition>",
"disconnected <reason>"); wait_line raises AssertionError with everything
seen so far when the line does not come.  The process is killed by pid on
exit if still running.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import LineProc, tool  # noqa: E402


class Client(LineProc):
    """One xclient process."""

    def __init__(self, jid, password, host, port, ca, mech=None, tls_name=None,
                 direct_tls=False, timeout=300, verbose=False):
        self.jid = jid
        argv = [tool("xclient"), "--jid", jid, "--password", password, "--host", host,
                "--port", str(port), "--ca", ca, "--timeout", str(timeout)]
        if mech is not None:
            argv += ["--mech", mech]
        if tls_name is not None:
            argv += ["--tls-name", tls_name]
        if direct_tls:
            argv.append("--direct-tls")
        if verbose:
            argv.append("--verbose")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._start_reader()

    def send(self, line):
        """Writes one command line (msg, iq-ping, presence, sub, subscribed,
        quit)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_line(self, pattern, timeout=60):
        line = self._match(pattern, timeout)
        if line is None:
            raise AssertionError("xclient %s: no line matching %r in %ss; output:\n%s%s"
                                 % (self.jid, pattern, timeout, "\n".join(self.lines),
                                    self._stderr()))
        return line

    def online(self, timeout=60):
        """Waits for "online <jid>" and returns the full JID; raises
        AssertionError when the client disconnects instead."""
        line = self.wait_line(r"^(online|disconnected) ", timeout)
        if not line.startswith("online "):
            raise AssertionError("xclient %s did not log in; output:\n%s%s"
                                 % (self.jid, "\n".join(self.lines), self._stderr()))
        return line.split(" ", 1)[1]

    def quit(self, timeout=30):
        """Sends quit and waits for the exit; returns the exit status."""
        try:
            self.send("quit")
        except (BrokenPipeError, ValueError):
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(60)

    def finish(self, timeout=60):
        """Waits for the process to end by itself; returns its exit status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(60)
            return None

    def output(self):
        """Every line so far.  Once the process has ended, every line it
        printed: the reader gets to the end of the pipe soon, but on a
        loaded machine not always within a fixed 0.2 s."""
        self._match(r"(?!)", 30 if self.proc.poll() is not None else 0.2)
        return "\n".join(self.lines)

    def _stderr(self):
        if self.proc.poll() is None:
            return ""
        try:
            err = self.proc.stderr.read()
        except (OSError, ValueError):
            return ""
        return ("\nstderr:\n" + err) if err else ""

    def __exit__(self, *exc):
        self.close()
        return False


def users_cluster(c, passwords):
    """Forms the 3-node cluster c (cluster.Cluster), waits until every node
    serves, adds the accounts of passwords ({user: password}) on the leader
    and waits until every node knows them.  Returns (leader, follower 1,
    follower 2, the CA bundle's path)."""
    from cluster import wait_sessions  # cluster.py does not import this file

    leader = c.form()
    f1, f2 = c.followers(leader)
    for nd in c.nodes:
        c.wait_serving(nd)
    for user, pw in passwords.items():
        leader.ok("xmpp user add %s" % user, stdin=pw + "\n")
    wait_sessions(c.nodes, {u: 0 for u in passwords})
    return leader, f1, f2, os.path.join(c.ca, "ca-bundle.pem")


class Clients:
    """Logged-in clients that end together:

        with Clients(passwords, ca) as cs:
            alice = cs.open("alice@example.com/a", node)
    """

    def __init__(self, passwords, ca, port=5222):
        self.passwords, self.ca, self.port = passwords, ca, port
        self.all = []

    def open(self, jid, node):
        """Starts a client for jid (its password from passwords) on node and
        waits until it is online."""
        cl = Client(jid, self.passwords[jid.split("@")[0]], node.addr, self.port, self.ca)
        self.all.append(cl)
        if cl.online() != jid:
            raise AssertionError("%s came online as another JID:\n%s" % (jid, cl.output()))
        return cl

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for cl in self.all:
            cl.close()
        return False
