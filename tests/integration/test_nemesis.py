#!/usr/bin/env python3
"""test_nemesis: the CI schedule of the fault-injection test (nemesis.py):
seed 1, 120 s of faults on 5 nodes in network namespaces, about 3 minutes
in all.  XMPPD_NEMESIS_SEED and XMPPD_NEMESIS_DURATION change it.

Any violated invariant fails it, and so does the harness failing (no
cluster, no netns under CI=true, a timeout)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nemesis  # noqa: E402


def main():
    seed = os.environ.get("XMPPD_NEMESIS_SEED", "1")
    duration = os.environ.get("XMPPD_NEMESIS_DURATION", "120")
    rc, violations = nemesis.run_nemesis(["--seed", seed, "--duration", duration])
    if rc == 1:
        print("violations: %s" % ", ".join("%s %d" % (k, len(x))
                                           for k, x in violations.items()))
    print("%s test_nemesis" % ("ok  " if rc == 0 else "FAIL"))
    sys.exit(rc)


main()
