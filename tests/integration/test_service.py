#!/usr/bin/env python3
"""test_service: the daemon as a service, through the real
binaries, as an admin and a monitoring system use them:

- `--version` on xmppd and mmp-cli, and the version in `xmpp status`;
- `xmpp metrics listen <addr>:<port>`: a scrape over a real socket parsed by
  Prometheus's own parser (prometheus_client.parser), with the metric
  families, types and values the docs list; 404 for another path, 405 for
  POST; `xmpp metrics off` closes it; the setting survives a restart;
- `xmpp callbridge export`: domain, component name, secret (the one the
  bridge authenticates with), SRV and A records, CA bundle, text and --json;
- node-local admin changes are logged once at info with what changed, never
  the secret;
- `--log syslog` puts the syslog priority first on each line;
- with NOTIFY_SOCKET set (as systemd does for Type=notify), READY=1 arrives
  once the control socket answers, STOPPING=1 at SIGTERM;
- with WATCHDOG_USEC and WATCHDOG_PID set too (WatchdogSec=), WATCHDOG=1
  arrives again and again; none while the process is stopped (SIGSTOP: the
  loop does not turn), again after SIGCONT; none when WATCHDOG_PID names
  another process (the watchdog is not ours)."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from test_admin import AdminNode, loopback, make_pki  # noqa: E402
from xmppdtest import check, mmp_bin, run, xmppd_bin  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # Debian's python3-prometheus-client, another python3
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families


def http(addr, port, request, timeout=10):
    """Sends request and reads the whole answer (the server closes)."""
    with socket.create_connection((addr, port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def scrape(addr, port):
    raw = http(addr, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200 "), "scrape: %r" % head)
    check(b"Content-Type: text/plain; version=0.0.4" in head, "content type: %r" % head)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    return families


def value(families, name, **labels):
    for fam in families.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError("no sample %s%r in %s" % (name, labels, sorted(families)))


def main():
    for argv, prog in (([xmppd_bin(), "--version"], "xmppd"),
                       ([mmp_bin(), "--version"], "mmp-cli")):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        check(p.returncode == 0 and p.stdout.startswith(prog + " ")
              and p.stdout.strip().split(" ")[1][0].isdigit(), "%s: %r" % (argv, p))
    version = p.stdout.split()[1]

    with AdminNode() as nd:
        nd.start()
        addr = loopback()
        nd.addr = addr
        make_pki(nd)
        nd.ok("xmpp domain example.com")
        nd.ok("xmpp listen %s" % addr)
        nd.ok("xmpp certs node1.key node1.crt ca-bundle.pem")
        out = nd.ok("xmpp callbridge add cb1")
        secret = [ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("Secret:")][0]
        nd.ok("xmpp enable")
        st = nd.json("xmpp status")
        check(st.get("version") == version, "status version: %r" % st.get("version"))

        # Metrics: off by default.
        mport = random.randint(20000, 40000)
        try:
            http(addr, mport, b"GET /metrics HTTP/1.0\r\n\r\n", timeout=2)
            check(False, "metrics answered before xmpp metrics listen")
        except OSError:
            pass
        nd.fails("xmpp metrics listen nowhere", "must be an address and a port", code=2)
        nd.fails("xmpp metrics listen 192.0.2.1:9105", "not an address of this host")
        out = nd.ok("xmpp metrics listen %s:%d" % (addr, mport))
        check("http://%s:%d/metrics" % (addr, mport) in out, out)
        fams = scrape(addr, mport)
        for name, kind in (("xmppd_sessions", "gauge"),
                           ("xmppd_stanzas_routed", "counter"),
                           ("xmppd_stanzas_bounced", "counter"),
                           ("xmppd_stanzas_forwarded", "counter"),
                           ("xmppd_stanzas_queued", "gauge"),
                           ("xmppd_peer_duplicates_dropped", "counter"),
                           ("xmppd_raft_term", "gauge"),
                           ("xmppd_raft_commit_index", "gauge"),
                           ("xmppd_raft_applied_index", "gauge"),
                           ("xmppd_raft_leader_changes", "counter"),
                           ("xmppd_client_logins", "counter"),
                           ("xmppd_client_login_failures", "counter"),
                           ("xmppd_storage_errors", "counter"),
                           ("xmppd_uptime_seconds", "gauge")):
            check(name in fams and fams[name].type == kind,
                  "%s: %r" % (name, fams.get(name)))
        check(value(fams, "xmppd_info", version=version) == 1, "xmppd_info")
        check(value(fams, "xmppd_serving") == 1, "serving")
        check(value(fams, "xmppd_raft_term") >= 1, "term")
        check(value(fams, "xmppd_raft_commit_index") >= 3, "commit index")
        check(value(fams, "xmppd_sessions", kind="component") == 0, "no component yet")
        raw = http(addr, mport, b"GET / HTTP/1.1\r\n\r\n")
        check(raw.startswith(b"HTTP/1.1 404 "), "other path: %r" % raw[:40])
        raw = http(addr, mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        check(raw.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in raw, repr(raw[:80]))
        # A client that says nothing is closed after the timeout (5 s).
        with socket.create_connection((addr, mport), timeout=30) as s:
            check(s.recv(10) == b"", "an idle scrape connection was not closed")

        # Export: what the bridge needs.
        rc, out, err = nd.mmp("xmpp callbridge export cb1")
        check(rc == 0, err)
        for needle in ("Component name:  cb1.example.com", "Secret:          " + secret,
                       "_xmpp-component._tcp.example.com. 3600 IN SRV 0 10 5223 xmppd-",
                       " IN A %s" % addr, "ca-bundle.pem"):
            check(needle in out, "%r not in export:\n%s" % (needle, out))
        j = nd.json("xmpp callbridge export cb1")
        check(j["component"] == "cb1.example.com" and j["secret"] == secret
              and j["domain"] == "example.com" and j["port"] == 5223
              and j["ca_bundle"].endswith("/pki/ca-bundle.pem")
              and os.path.isabs(j["ca_bundle"]), repr(j))
        check(len(j["srv"]) == 1 and j["srv"][0]["address"] == addr
              and j["srv"][0]["target"].endswith(".example.com."), repr(j["srv"]))
        nd.fails("xmpp callbridge export nosuch", "no call bridge nosuch")

        # Restart: the metrics endpoint comes back on its own.
        check(nd.stop() == 0, "xmppd did not stop cleanly")
        nd.start()
        deadline = time.time() + 30
        while True:
            try:
                fams = scrape(addr, mport)
                break
            except OSError:
                check(time.time() < deadline, "metrics not back after a restart")
                time.sleep(0.2)
        out = nd.ok("xmpp metrics off")
        check("off" in out, out)
        try:
            http(addr, mport, b"GET /metrics HTTP/1.0\r\n\r\n", timeout=2)
            check(False, "metrics still answered after xmpp metrics off")
        except OSError:
            pass

        log = nd.log()
        for needle in ("admin: listen set: {\"listen\":[\"%s:5223\"]}" % addr,
                       "admin: certificates set:", "admin: XMPP enabled:",
                       "admin: metrics endpoint set to http://%s:%d/metrics" % (addr, mport),
                       "admin: metrics endpoint turned off"):
            check(log.count(needle) == 1, "%r logged %d times" % (needle, log.count(needle)))
        # Replicated changes are logged as they are applied (again when the
        # log is replayed at a restart).
        check("call bridge cb1 added" in log, "the call bridge's addition is not logged")
        check(secret not in log, "the secret is in the log")
        check(".000Z info " in log or "Z info " in log, "plain lines have a time")

    # --log syslog: the priority first, no time.
    with AdminNode(name="s1") as nd:
        nd.logf = open(nd.log_path, "ab")
        nd.proc = subprocess.Popen(
            [xmppd_bin(), "--state-dir", nd.dir, "--name", "s1", "--log", "syslog"],
            stdin=subprocess.DEVNULL, stdout=nd.logf, stderr=subprocess.STDOUT)
        nd.wait_ready()
        nd.fails("xmpp enable", "")
        check(nd.stop() == 0, "stop")
        lines = [ln for ln in nd.log().splitlines() if ln]
        check(lines and all(ln[:3] in ("<3>", "<4>", "<6>", "<7>") for ln in lines),
              "not every line has a priority: %r" % lines[:5])
        check(any(ln.startswith("<6>info s1 started") for ln in lines), repr(lines[:5]))

    # sd_notify: a datagram socket in the place of systemd's.
    with AdminNode(name="sd") as nd:
        path = os.path.join(nd.base, "notify.sock")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(path)
        ns.settimeout(30)
        nd.logf = open(nd.log_path, "ab")
        nd.proc = subprocess.Popen(
            [xmppd_bin(), "--state-dir", nd.dir, "--name", "sd"],
            env=dict(os.environ, NOTIFY_SOCKET=path), stdin=subprocess.DEVNULL,
            stdout=nd.logf, stderr=subprocess.STDOUT)
        msg = ns.recv(4096).decode()
        check("READY=1" in msg.split("\n"), "first notification: %r" % msg)
        nd.ok("xmpp status")
        nd.proc.terminate()
        msg = ns.recv(4096).decode()
        check("STOPPING=1" in msg.split("\n"), "at SIGTERM: %r" % msg)
        check(nd.proc.wait(30) == 0, "stop")
        ns.close()

    watchdog()


def notes(ns, seconds):
    """The notifications that arrive within seconds, as lists of lines."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        ns.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            out.append(ns.recv(4096).decode().split("\n"))
        except socket.timeout:
            break
    return out


def watchdog():
    """WatchdogSec=2s in the place of systemd's: WATCHDOG_USEC=2000000 and
    WATCHDOG_PID=<xmppd's pid> (the shell's, which exec keeps), so a
    keep-alive every second while the loop turns."""
    for own in (True, False):
        with AdminNode(name="wd") as nd:
            path = os.path.join(nd.base, "notify.sock")
            ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            ns.bind(path)
            nd.logf = open(nd.log_path, "ab")
            pid = "$$" if own else "1"
            nd.proc = subprocess.Popen(
                ["sh", "-c", 'WATCHDOG_PID=%s exec "$0" --state-dir "$1" --name wd' % pid,
                 xmppd_bin(), nd.dir],
                env=dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000"),
                stdin=subprocess.DEVNULL, stdout=nd.logf, stderr=subprocess.STDOUT)
            nd.wait_ready()
            got = notes(ns, 4.5)
            check(got and "READY=1" in got[0], "first notification: %r" % got[:1])
            pings = [m for m in got if "WATCHDOG=1" in m]
            if not own:
                check(not pings, "WATCHDOG=1 for another process's watchdog: %r" % got)
                check(nd.stop() == 0, "stop")
                ns.close()
                continue
            # Generous: 4 expected in 4.5 s, fewer on a loaded machine.
            check(len(pings) >= 2, "keep-alives in 4.5 s: %r" % got)
            # Every thread stopped (a SIGSTOP reaches the threads one by
            # one), then what was sent before the stop is drained.
            netns.freeze(nd.proc, timeout=60)
            notes(ns, 0.05)  # one sent just before the stop
            quiet = notes(ns, 3)
            nd.proc.send_signal(signal.SIGCONT)
            check(not [m for m in quiet if "WATCHDOG=1" in m],
                  "WATCHDOG=1 while the process was stopped: %r" % quiet)
            again = notes(ns, 10)
            check([m for m in again if "WATCHDOG=1" in m],
                  "no WATCHDOG=1 after SIGCONT: %r" % again)
            nd.proc.terminate()
            check(nd.proc.wait(30) == 0, "stop")
            ns.close()


run(main, timeout=300)
