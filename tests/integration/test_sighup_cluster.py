#!/usr/bin/env python3
"""test_sighup_cluster: an xmppd.conf on one member of a running cluster
must not rewrite the cluster.  Call bridges cb1 and cb2
are added through the shell; node2 then gets an xmppd.conf naming only cb3
and a SIGHUP.  cb1 and cb2 still exist on every node, cb3 was not added
behind the shell's back, and node2's log has a warn line that names what
the file was not allowed to change (docs/admin.md, "xmppd.conf")."""
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import DOMAIN, XMPP_PORT, Cluster  # noqa: E402
from xmppdtest import check, run  # noqa: E402


def write_conf(nd, text):
    path = os.path.join(nd.dir, "xmppd.conf")
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def bridges(nd):
    out = nd.ok("xmpp callbridge list")
    return set(re.findall(r"(?m)^(cb\d+)\s", out))


def main():
    with Cluster(3) as c:
        c.form()
        c.add_callbridge("cb1")
        c.add_callbridge("cb2")
        n2 = c.nodes[1]
        write_conf(n2, "domain %s\ncomponent-listen %s:%d\ncallbridge cb3 hup-3-secret\n"
                   % (DOMAIN, n2.addr, XMPP_PORT))
        n2.proc.send_signal(signal.SIGHUP)
        n2.wait_log(r"SIGHUP: reloading", timeout=60)
        # A barrier: a write submitted through node2 after the reload commits
        # after anything the reload submitted.
        c.add_callbridge("cb4", on=n2)
        for nd in c.nodes:
            have = bridges(nd)
            check({"cb1", "cb2", "cb4"} <= have, "%s lost call bridges: %s" % (nd.name, have))
            check("cb3" not in have, "%s has cb3 from node2's file: %s" % (nd.name, have))
            check(not re.search(r"call bridge cb[12] removed", nd.log()),
                  "%s logged a removal:\n%s" % (nd.name, nd.log()[-2000:]))
        line = n2.wait_log(r"\bwarn\b.*xmppd\.conf.*not imported", timeout=60)
        for want in ("cb1", "cb2", "cb3"):
            check(want in line, "warning does not name %s: %r" % (want, line))
        check("hup-3-secret" not in n2.log(), "the secret of cb3 is in the log")

run(main)
