#!/usr/bin/env python3
"""mutate.py: mutation testing of raft/ against the sim suite.

Reads tests/sim/mutants (blocks of "file:", "from:", "to:", "why:" and
optional "after:" and "equivalent:" lines, separated by blank lines; "from"
is the text of one line of the file, matched without its leading and
trailing blanks, and must match exactly one line, or, with "after:", the
first line that follows the one line matching "after").  Copies raft/, tests/ and xmppd/core/ (the
purity test reads it) into a temporary tree with a CMakeLists.txt that
builds only raft and the sim tests, builds it once, then for each mutant:
applies it, rebuilds (incrementally), runs the sim tests fastest first and
stops at the first failure (killed) or timeout (killed, as a hang), and
restores the file.  A mutant that every test passes survived.

    tests/sim/mutate.py [-j N] [--only SUBSTRING] [--range A-B] [--tests test_sim,...]
                        [--keep] [--timeout S] [--core]

--core mutates xmppd/core instead (tests/sim/mutants-core): each mutant
names the test executables that must kill it ("tests:" line, e.g.
unit_test_rreq,xmpp_test_cluster); the whole source tree is copied and
only those tests' targets are built and run (from build/tests).

Exit status 0 when every mutant was killed or is documented as equivalent,
1 otherwise, 2 on a setup error.  Not part of CI (minutes per mutant);
scripts/test --mutants runs it.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIST = os.path.join(ROOT, "tests", "sim", "mutants")
LIST_CORE = os.path.join(ROOT, "tests", "sim", "mutants-core")

# The sim executables, fastest first (CTest runs them from tests/sim).
TESTS = ["test_core", "test_paper", "test_scenario", "test_codec", "test_purity",
         "test_store", "test_sim"]

CMAKE = """cmake_minimum_required(VERSION 3.16)
project(raftmut C)
set(CMAKE_C_STANDARD 11)
set(CMAKE_C_STANDARD_REQUIRED ON)
add_compile_options(-Wall -Wextra -Wno-unused-parameter -Wno-unused-function
                    -Wno-unused-variable -Wno-unused-but-set-variable)
add_compile_definitions(_POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
# as the top-level CMakeLists.txt defines it (raft/ and tests/sim use it)
function(xmppd_glob var)
  file(GLOB found CONFIGURE_DEPENDS ${ARGN})
  if(NOT found)
    message(FATAL_ERROR "no sources match ${ARGN}")
  endif()
  set(${var} ${found} PARENT_SCOPE)
endfunction()
add_subdirectory(raft)
add_subdirectory(tests/sim)
"""


def parse(path):
    mutants, cur = [], {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if cur:
                    mutants.append(cur)
                    cur = {}
                continue
            key, sep, val = line.partition(":")
            if not sep or key not in ("file", "from", "to", "why", "after", "equivalent",
                                      "tests"):
                sys.exit(f"{path}:{n}: expected 'file:', 'from:', 'to:', 'why:' "
                         f"or 'equivalent:'")
            if key in cur:
                sys.exit(f"{path}:{n}: '{key}' twice in one mutant")
            cur[key] = val.strip() if key != "to" else val.strip()
            cur.setdefault("line", n)
    if cur:
        mutants.append(cur)
    for m in mutants:
        for k in ("file", "from", "to", "why"):
            if k not in m:
                sys.exit(f"{path}:{m['line']}: mutant without '{k}:'")
    return mutants


def apply(tree, m):
    """Returns the original text of the file, or raises ValueError."""
    path = os.path.join(tree, m["file"])
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    start = 0
    if "after" in m:
        hits = [i for i, l in enumerate(lines) if l.strip() == m["after"]]
        if len(hits) != 1:
            raise ValueError(f"'{m['after']}' matches {len(hits)} lines of {m['file']}")
        start = hits[0] + 1
        hits = [i for i, l in enumerate(lines) if i >= start and l.strip() == m["from"]][:1]
    else:
        hits = [i for i, l in enumerate(lines) if l.strip() == m["from"]]
    if len(hits) != 1:
        raise ValueError(f"'{m['from']}' matches {len(hits)} lines of {m['file']}")
    i = hits[0]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = indent + m["to"]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return text


def run(cmd, cwd, timeout):
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return "timeout", ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--only", default=None, help="run mutants whose text has this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary tree")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per test")
    ap.add_argument("--range", default=None, help="mutants A-B of the list (from 1)")
    ap.add_argument("--tests", default=None,
                    help="comma-separated sim tests to run (default: all of them)")
    ap.add_argument("--core", action="store_true",
                    help="mutants of xmppd/core (tests/sim/mutants-core)")
    a = ap.parse_args()
    if a.core:
        return main_core(a)

    mutants = parse(LIST)
    if a.range:
        lo, _, hi = a.range.partition("-")
        mutants = mutants[int(lo) - 1 : int(hi or lo)]
    if a.only:
        mutants = [m for m in mutants if a.only in " ".join(str(v) for v in m.values())]
    tree = tempfile.mkdtemp(prefix="raft-mutants-")
    try:
        for d in ("raft", "tests", os.path.join("xmppd", "core")):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(tree, d),
                            ignore=shutil.ignore_patterns("*.o", "build*"))
        with open(os.path.join(tree, "CMakeLists.txt"), "w") as f:
            f.write(CMAKE)
        build = os.path.join(tree, "build")
        rc, out = run(["cmake", "-S", tree, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                      tree, 600)
        if rc == 0:
            rc, out = run(["cmake", "--build", build, f"-j{a.j}"], tree, 1800)
        if rc != 0:
            print(out)
            print("mutate.py: the unmutated tree does not build")
            return 2
        simdir = os.path.join(tree, "tests", "sim")
        results = []
        for k, m in enumerate(mutants, 1):
            t0 = time.time()
            try:
                orig = apply(tree, m)
            except ValueError as e:
                print(f"[{k}/{len(mutants)}] ERROR {e}")
                results.append((m, "error", str(e)))
                continue
            verdict, by = "survived", ""
            try:
                rc, out = run(["cmake", "--build", build, f"-j{a.j}"], tree, 1800)
                if rc != 0:
                    verdict, by = "killed", "build"
                else:
                    for t in (a.tests.split(",") if a.tests else TESTS):
                        exe = os.path.join(build, "tests", "sim", "sim_" + t)
                        rc, out = run([exe], simdir, a.timeout)
                        if rc != 0:
                            verdict = "killed"
                            by = t + (" (timeout)" if rc == "timeout" else "")
                            break
            finally:
                with open(os.path.join(tree, m["file"]), "w") as f:
                    f.write(orig)
            if verdict == "survived" and "equivalent" in m:
                verdict = "equivalent"
            results.append((m, verdict, by))
            print(f"[{k}/{len(mutants)}] {verdict:10} {by:22} {m['file']}: {m['why']} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        # Leave the tree built unmutated (the restores above need a rebuild
        # only if it is kept).
        killed = sum(1 for _, v, _ in results if v == "killed")
        equiv = [m for m, v, _ in results if v == "equivalent"]
        surv = [m for m, v, _ in results if v in ("survived", "error")]
        print(f"\n{len(results)} mutants: {killed} killed, {len(equiv)} equivalent, "
              f"{len(surv)} survived")
        for m in equiv:
            print(f"  equivalent: {m['file']}: {m['why']}: {m['equivalent']}")
        for m in surv:
            print(f"  SURVIVED: {m['file']}: {m['why']}\n    {m['from']}\n -> {m['to']}")
        return 0 if not surv else 1
    finally:
        if a.keep:
            print(f"tree kept in {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


def main_core(a):
    """--core: xmppd/core mutants against the unit and xmpp tests they name."""
    mutants = parse(LIST_CORE)
    for m in mutants:
        if "tests" not in m:
            sys.exit(f"{LIST_CORE}:{m['line']}: a core mutant without 'tests:'")
    if a.range:
        lo, _, hi = a.range.partition("-")
        mutants = mutants[int(lo) - 1 : int(hi or lo)]
    if a.only:
        mutants = [m for m in mutants if a.only in " ".join(str(v) for v in m.values())]
    targets = sorted({t for m in mutants for t in m["tests"].split(",")})
    tree = tempfile.mkdtemp(prefix="core-mutants-")
    try:
        for d in os.listdir(ROOT):
            if d.startswith("build") or d in (".git", "node_modules"):
                continue
            src = os.path.join(ROOT, d)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(tree, d), symlinks=True,
                                ignore=shutil.ignore_patterns("*.o", "build*"))
            else:
                shutil.copy2(src, os.path.join(tree, d))
        build = os.path.join(tree, "build")
        rc, out = run(["cmake", "-S", tree, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                      tree, 600)
        if rc == 0:
            rc, out = run(["cmake", "--build", build, f"-j{a.j}", "--target"] + targets,
                          tree, 3600)
        if rc != 0:
            print(out)
            print("mutate.py: the unmutated tree does not build")
            return 2
        testdir = os.path.join(build, "tests")
        results = []
        for k, m in enumerate(mutants, 1):
            t0 = time.time()
            try:
                orig = apply(tree, m)
            except ValueError as e:
                print(f"[{k}/{len(mutants)}] ERROR {e}")
                results.append((m, "error", str(e)))
                continue
            verdict, by = "survived", ""
            mine = m["tests"].split(",")
            try:
                rc, out = run(["cmake", "--build", build, f"-j{a.j}", "--target"] + mine,
                              tree, 1800)
                if rc != 0:
                    verdict, by = "killed", "build"
                else:
                    for t in mine:
                        rc, out = run([os.path.join(testdir, t)], testdir, a.timeout)
                        if rc != 0:
                            verdict = "killed"
                            by = t + (" (timeout)" if rc == "timeout" else "")
                            break
            finally:
                with open(os.path.join(tree, m["file"]), "w") as f:
                    f.write(orig)
            if verdict == "survived" and "equivalent" in m:
                verdict = "equivalent"
            results.append((m, verdict, by))
            print(f"[{k}/{len(mutants)}] {verdict:10} {by:26} {m['file']}: {m['why']} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        killed = sum(1 for _, v, _ in results if v == "killed")
        surv = [m for m, v, _ in results if v in ("survived", "error")]
        equiv = [m for m, v, _ in results if v == "equivalent"]
        print(f"\n{len(results)} mutants: {killed} killed, {len(equiv)} equivalent, "
              f"{len(surv)} survived")
        for m in surv:
            print(f"  SURVIVED: {m['file']}: {m['why']}\n    {m['from']}\n -> {m['to']}")
        return 0 if not surv else 1
    finally:
        if a.keep:
            print(f"tree kept in {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
