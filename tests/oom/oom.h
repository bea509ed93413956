/* oom.h: the out-of-memory sweep for the core's and raft's tests.
 *
 * The library under test is linked as a copy whose allocator calls are
 * renamed (tests/oom/CMakeLists.txt: objcopy --redefine-syms=oom.syms):
 * malloc, calloc, realloc, strdup, strndup and free, sodium_malloc and
 * sodium_free, EVP_MD_CTX_new go through oom.c, which counts them and can
 * make one fail; the test's own code allocates as usual.  The test binary is
 * linked with --wrap=free so that a block the library hands to the test and
 * the test frees is accounted for too.
 *
 * oom_sweep runs a scenario once to count its allocations (K), then K more
 * times with the 1st, 2nd, ... K-th allocation failing, and checks after
 * each run that every block the library allocated in it was freed.  Under
 * ASan (CI's sanitizer pass) a use after free or a double free on an error
 * path stops the run with its report and the run's N. */
#ifndef XMPPD_TESTS_OOM_H
#define XMPPD_TESTS_OOM_H

#include <stdbool.h>
#include <stddef.h>

/* A scenario: runs from scratch, frees everything it made whatever
 * happened, and returns 0 or a negative code.  It returns 0 whenever no
 * allocation failed (oom_failed() false); with one failed it may return an
 * error, and checks with oom_check what the user of the code would see. */
typedef int (*oom_scenario_fn)(void *ud);

/* oom_failed says whether an allocation failed in the current run. */
bool oom_failed(void);

/* oom_check records a failed expectation of the current run (printed with
 * the scenario's name and N; the sweep then fails). */
void oom_check(bool ok, const char *what);

/* oom_sweep sweeps fn over every N as above; returns the number of runs
 * that failed (a leak, a failed oom_check, a non-zero return without an
 * allocation failure), printing each.  max_runs (0: no limit) bounds the
 * sweep for long scenarios: runs then fail allocations spread evenly over
 * 1..K. */
int oom_sweep(const char *name, oom_scenario_fn fn, void *ud, unsigned max_runs);

/* Stats of the last sweep: allocations counted by the first run, runs, and
 * distinct call sites whose failure was taken. */
struct oom_stats {
    unsigned allocs;
    unsigned runs;
    unsigned sites;
};
void oom_last_stats(struct oom_stats *out);

#endif
