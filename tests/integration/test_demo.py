#!/usr/bin/env python3
"""test_demo: `scripts/demo --check` (the README's main command) with the
binaries of this build, on a loopback /24 of its own
(XMPPD_DEMO_NET=127.R.S): it forms the 3-node cluster through mmp-cli,
adds call bridges, shows the status and two components on two nodes
exchanging messages, each node's host-meta naming the three wss URLs
(its own first) and, with Chromium and tests/browser/node_modules, the
chat page logging in from headless Chromium; then it stops everything
and says "demo: ok"."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import loopback_base  # noqa: E402
from xmppdtest import check, run, source_dir  # noqa: E402


def main():
    env = dict(os.environ, XMPPD_DEMO_BUILD_DIR=os.environ["XMPPD_BUILD_DIR"],
               XMPPD_DEMO_NET=loopback_base())
    p = subprocess.Popen([os.path.join(source_dir(), "scripts", "demo"), "--check"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        raise AssertionError("scripts/demo --check timed out:\n" + out)
    check(p.returncode == 0 and "demo: ok" in out,
          "scripts/demo --check exited %d:\n%s" % (p.returncode, out))
    for want in ("State:", "List of peers", "(Leader)", "Secret:", "how to connect",
                 "received messages=3 in_order=yes", "host-meta.json (CORS: *)",
                 "browsers (wss)     wss://"):
        check(want in out, "%r not in the demo output:\n%s" % (want, out))
    if os.path.isdir(os.path.join(source_dir(), "tests", "browser", "node_modules",
                                  "playwright-core")) and \
            os.access("/usr/lib/chromium/chromium", os.X_OK):
        check("the chat page logged alice in from Chromium over wss: ok" in out, out)


run(main, timeout=300)
