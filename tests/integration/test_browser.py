#!/usr/bin/env python3
"""A real browser on a 3-node cluster: headless Chromium from
Debian, driven by playwright-core (tests/browser/drive.mjs), loads
tests/browser/chat.html, which uses strophe.js (npm, its UMD build, no
bundler) to

 - discover the endpoint through XEP-0156: fetch host-meta.json from a
   follower (cross-origin: the page is served by this test's own
   http.server on loopback, so CORS must let it read the answer) and take
   the first wss URL;
 - log in over wss with SCRAM (strophe picks SCRAM-SHA-256);
 - send a message to bob, a libstrophe client (tools/xclient) on 5222 of
   the other follower, and show bob's answer;
 - send an iq (XEP-0199 ping) to a call bridge (tools/xcomp --answer) on
   the leader, and show its result.

The browser checks the node's certificate against the CA of certs/, which
is trusted through the NSS store of a temporary HOME (certutil): no
certificate error is ignored.  The test takes a screenshot and checks the
page's text (bob's answer in it).

Skipped (exit 77, with the reason) only when Chromium, certutil or
tests/browser/node_modules (`npm ci` there; scripts/setup does it) are
missing.  XMPPD_BROWSER_SCREENSHOT=<file> keeps the screenshot.
"""
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import Client  # noqa: E402
from cluster import Cluster, wait_for, wait_sessions  # noqa: E402
from xmppdtest import check, run  # noqa: E402

WSS_PORT = 5281
PASSWORDS = {"alice": "alice-browser-pw", "bob": "bob-tcp-pw"}
HELLO = "hello from chromium"
ANSWER = "hello back to the browser"
SRC = os.environ.get("XMPPD_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BROWSER_DIR = os.path.join(SRC, "tests", "browser")
STROPHE = os.path.join(BROWSER_DIR, "node_modules", "strophe.js", "dist",
                       "strophe.umd.min.js")
PLAYWRIGHT = os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")
CHROMIUM = "/usr/lib/chromium/chromium"


def skip(why):
    print("SKIP test_browser.py: %s" % why)
    sys.exit(77)


def need():
    """The tools the test needs, or a skip that says which is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        skip("no %s (Debian packages chromium and chromium-driver; scripts/setup "
             "installs them)" % CHROMIUM)
    if shutil.which("certutil") is None:
        skip("no certutil (Debian package libnss3-tools; scripts/setup installs it)")
    if shutil.which("node") is None:
        skip("no node (Debian package nodejs; scripts/setup installs it)")
    for f in (STROPHE, PLAYWRIGHT):
        if not os.path.exists(f):
            skip("no %s: run `npm ci` in tests/browser (scripts/setup does)" % f)


def nss_home(base, ca_crt):
    """A HOME whose NSS store trusts the test CA for TLS servers (Chromium
    on Linux reads $HOME/.pki/nssdb)."""
    home = os.path.join(base, "home")
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-n", "xmppd test CA", "-t",
                    "C,,", "-i", ca_crt], check=True, capture_output=True)
    return home


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


def serve(root):
    """An HTTP server for root on 127.0.0.1 (a secure context for the page:
    SCRAM uses crypto.subtle); returns (server, port)."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.server_address[1]


def drive(url, expect, shot, home, timeout=90):
    """Runs drive.mjs; returns (exit status, page text, its stderr)."""
    env = dict(os.environ, HOME=home)
    p = subprocess.run(["node", os.path.join(BROWSER_DIR, "drive.mjs"), "--url", url,
                        "--expect", expect, "--screenshot", shot, "--chromium", CHROMIUM,
                        "--timeout", str(timeout)],
                       cwd=BROWSER_DIR, env=env, capture_output=True, text=True,
                       timeout=timeout + 60)
    try:
        text = json.loads(p.stdout.strip().splitlines()[-1])["text"]
    except (IndexError, ValueError, KeyError):
        text = None
    return p.returncode, text, p.stderr


def main():
    need()
    with Cluster(3) as c:
        leader = c.form()
        f1, f2 = c.followers(leader)
        for nd in c.nodes:
            c.wait_serving(nd)
        for name in PASSWORDS:
            leader.ok("xmpp user add %s" % name, stdin=PASSWORDS[name] + "\n")
        for nd in (f1, f2):
            wait_for(lambda nd=nd: all(u in nd.ok("xmpp user list") for u in PASSWORDS),
                     60, "%s: accounts replicated" % nd.name)
        wait_for(lambda: len(f1.json("xmpp status").get("websocket", {}).get("urls", []))
                 == 3, 60, "f1's host-meta names the three members")
        c.add_callbridge("cb1")
        comp = c.comp(leader, "cb1", "--answer", "--stay")
        comp.wait_line(r"^connected")
        c.wait_components(["cb1"])

        base = tempfile.mkdtemp(prefix="xbrowser-")
        httpd = None
        try:
            home = nss_home(base, os.path.join(c.ca, "ca.crt"))
            root = os.path.join(base, "www")
            os.makedirs(root)
            shutil.copy(os.path.join(BROWSER_DIR, "chat.html"), root)
            shutil.copy(STROPHE, root)
            httpd, port = serve(root)
            shot = os.environ.get("XMPPD_BROWSER_SCREENSHOT",
                                  os.path.join(base, "browser.png"))
            with Client("bob@example.com/desk", PASSWORDS["bob"], f2.addr, 5222,
                        os.path.join(c.ca, "ca-bundle.pem")) as bob:
                check(bob.online() == "bob@example.com/desk", bob.output())
                # f1 knows bob's session before the page sends to it.
                wait_sessions([f1], {"bob": 1})
                # bob answers the browser's first message from his side.
                answered = threading.Event()

                def answer():
                    try:
                        bob.wait_line(r"^msg alice@example.com/browser %s$" % HELLO, 120)
                        bob.send("msg alice@example.com/browser " + ANSWER)
                        answered.set()
                    except AssertionError as e:
                        sys.stderr.write("%s\n" % e)
                threading.Thread(target=answer, daemon=True).start()

                q = ("server=%s:%d&jid=alice@example.com/browser&password=%s"
                     "&to=bob@example.com/desk&say=%s&ping=cb1.example.com&auto=1"
                     % (f1.addr, WSS_PORT, PASSWORDS["alice"], HELLO.replace(" ", "+")))
                url = "http://127.0.0.1:%d/chat.html?%s" % (port, q)
                c.say("chromium: %s (alice over wss on %s, bob on 5222 on %s)",
                      url.split("?")[0], f1.name, f2.name)
                expect = "bob@example.com/desk: " + ANSWER
                pong = "iq result from cb1.example.com"
                rc, text, err = drive(url, "(?=[\\s\\S]*%s)(?=[\\s\\S]*%s)"
                                      % (re.escape(expect), re.escape(pong)), shot, home)
                detail = "page text:\n%s\ndriver stderr:\n%s\nbob:\n%s" % (
                    text, err[-4000:], bob.output())
                check(answered.is_set(), "bob got the browser's message; " + detail)
                check(rc == 0 and text is not None,
                      "the page shows bob's answer and the bridge's iq result; " + detail)
                # What the page shows: discovery, the login, both messages.
                check("host-meta: wss://%s:%d/xmpp-websocket" % (f1.addr, WSS_PORT) in text,
                      "the page shows host-meta's URLs, f1's first: %r" % text)
                check("online as alice@example.com/browser via wss://%s:%d/xmpp-websocket"
                      % (f1.addr, WSS_PORT) in text, "online over wss: %r" % text)
                check("me -> bob@example.com/desk: " + HELLO in text, text)
                check(expect in text, text)
                check(pong in text, text)
                comp.wait_line(r"^iq-request type=get from=alice@example\.com/browser$")
                with open(shot, "rb") as f:
                    check(f.read(8) == b"\x89PNG\r\n\x1a\n", "screenshot %s is a PNG" % shot)
                c.say("the page shows %r and %r; screenshot %s", expect, pong, shot)
        finally:
            if httpd is not None:
                httpd.shutdown()
            if not os.environ.get("XMPPD_KEEP_TMP"):
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    run(main, timeout=400)
