#!/usr/bin/env python3
"""test_package: the Debian package of xmppd, as a packager checks one:

- scripts/package builds it (dpkg-deb from the cmake --install tree);
- `dpkg-deb --contents` lists the binaries, the man pages, the docs and the
  systemd unit where Debian expects them; the control file depends on the
  libraries and on adduser, and the postinst creates the xmppd user;
- lintian finds no error; its warnings are only those in ACCEPTED, each
  with the reason;
- the unit passes `systemd-analyze verify` (when systemd-analyze is there);
- the unit's ExecStart line, run by hand from the package's tree (no
  systemd) against a temporary state directory, gives a node that answers
  `xmpp status`, and stops cleanly on SIGTERM."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppdtest import check, run, run_mmp, source_dir, unix_connects, wait_started  # noqa: E402

# lintian warnings accepted, with why.
ACCEPTED = {
    # Not an upload to Debian: there is no bug to close.
    "initial-upload-closes-no-bugs": "a local package, not a Debian upload",
    # xmppd has no licence chosen yet (packaging/copyright says so).
    "copyright-without-copyright-notice": "no licence chosen yet",
}


def sh(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    check(p.returncode == 0, "%s failed (%d):\n%s%s" % (argv, p.returncode, p.stdout,
                                                        p.stderr))
    return p.stdout


def main():
    work = tempfile.mkdtemp(prefix="xmppd-pkg-")
    try:
        deb = sh([os.path.join(source_dir(), "scripts", "package"), work],
                 timeout=1200).strip().splitlines()[-1]
        check(deb.endswith(".deb") and os.path.exists(deb), deb)

        contents = sh(["dpkg-deb", "--contents", deb])
        files = {ln.split()[-1].lstrip(".") for ln in contents.splitlines()}
        for f in ("/usr/sbin/xmppd", "/usr/bin/mmp-cli", "/usr/share/man/man8/xmppd.8.gz",
                  "/usr/share/man/man1/mmp-cli.1.gz", "/lib/systemd/system/xmppd.service",
                  "/usr/share/doc/xmppd/copyright", "/usr/share/doc/xmppd/admin.md.gz",
                  "/usr/share/doc/xmppd/changelog.Debian.gz"):
            check(f in files, "%s not in the package:\n%s" % (f, contents))
        check(all(" root/root " in ln for ln in contents.splitlines()), "owners: " + contents)

        control = sh(["dpkg-deb", "--field", deb])
        check(re.search(r"^Depends:.*libuv1.*adduser", control, re.M), control)
        ctl = os.path.join(work, "control")
        sh(["dpkg-deb", "--control", deb, ctl])
        postinst = open(os.path.join(ctl, "postinst")).read()
        check("adduser --system" in postinst and "xmppd" in postinst, postinst)

        p = subprocess.run(["lintian", "--tag-display-limit", "0", deb],
                           capture_output=True, text=True, timeout=600)
        tags = [ln for ln in p.stdout.splitlines() if re.match(r"^[EWIXP]: ", ln)]
        errors = [t for t in tags if t.startswith("E: ")]
        warnings = [t for t in tags if t.startswith("W: ")]
        check(not errors, "lintian errors:\n" + "\n".join(errors))
        unexpected = [w for w in warnings if w.split()[2] not in ACCEPTED]
        check(not unexpected, "lintian warnings not accepted:\n" + "\n".join(unexpected))
        print("lintian: %d warning(s), all accepted" % len(warnings))

        tree = os.path.join(work, "x")
        sh(["dpkg-deb", "-x", deb, tree])
        unit = open(os.path.join(tree, "lib/systemd/system/xmppd.service")).read()
        for line in ("Type=notify", "User=xmppd", "StateDirectory=xmppd",
                     "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
                     "Restart=on-failure", "WatchdogSec="):
            check(line in unit, "%r not in the unit" % line)
        if shutil.which("systemd-analyze"):
            # The unit file itself (not installed: /usr/sbin/xmppd may not
            # exist here, the one complaint allowed).
            p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                                os.path.join(tree, "lib/systemd/system/xmppd.service")],
                               capture_output=True, text=True, timeout=120)
            bad = [ln for ln in (p.stdout + p.stderr).splitlines()
                   if ln.strip() and "is not executable" not in ln]
            check(not bad, "systemd-analyze verify:\n" + "\n".join(bad))

        # ExecStart by hand: the package's binary, the unit's arguments, a
        # temporary state directory instead of /var/lib/xmppd.
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
        argv = shlex.split(exec_start.replace("%H", "pkgtest"))
        check(argv[0] == "/usr/sbin/xmppd" and "/var/lib/xmppd" in argv, repr(argv))
        state = os.path.join(work, "state")
        argv = [os.path.join(tree, argv[0].lstrip("/"))] + \
            [state if a == "/var/lib/xmppd" else a for a in argv[1:]]
        log = open(os.path.join(work, "xmppd.log"), "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            sock = os.path.join(state, "control.sock")
            wait_started(proc, lambda: unix_connects(sock), 60,
                         lambda: "xmppd exited: " + open(log.name).read(),
                         lambda: "no control socket: " + open(log.name).read())
            mmp = os.path.join(tree, "usr/bin/mmp-cli")
            p = subprocess.run([mmp, "--socket", sock, "--json", "-c", "xmpp status"],
                               capture_output=True, text=True, timeout=30)
            check(p.returncode == 0, "xmpp status: %r %r" % (p.stdout, p.stderr))
            st = json.loads(p.stdout)
            st = st.get("data", st)
            check(re.fullmatch(r"[0-9a-f]{16}", st.get("node_id", "")) and st.get("version"),
                  "xmpp status: %r" % st)
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(30) == 0, "xmppd did not stop cleanly")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(60)
            log.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


run(main, timeout=1450)
