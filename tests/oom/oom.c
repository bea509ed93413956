/* oom.c: the counting, failing allocator and the sweep (oom.h). */
#include "oom.h"

#include <execinfo.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

/* The names the library copy calls (oom.syms) and the linker's --wrap=free
 * names; declared here for -Wmissing-prototypes. */
void *oom_malloc(size_t n);
void *oom_calloc(size_t k, size_t n);
void *oom_realloc(void *p, size_t n);
char *oom_strdup(const char *s);
char *oom_strndup(const char *s, size_t n);
void oom_free(void *p);
void *oom_sodium_malloc(size_t n);
void oom_sodium_free(void *p);
EVP_MD_CTX *oom_EVP_MD_CTX_new(void);
void __wrap_free(void *p);
void __real_free(void *p);

/* ---- the live blocks of a run: an open-addressing set of pointers ------- */

#define SET_BITS 18
#define SET_CAP (1u << SET_BITS)

static void *set[SET_CAP];
static size_t set_n;

static size_t slot_of(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> (64 - SET_BITS));
}

static void set_add(void *p)
{
    size_t i = slot_of(p);

    if (set_n >= SET_CAP / 2) {
        static const char msg[] = "oom: more live blocks than the set holds\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
    while (set[i] != NULL)
        i = (i + 1) & (SET_CAP - 1);
    set[i] = p;
    set_n++;
}

/* set_del removes p if present (backward-shift deletion: no tombstones). */
static void set_del(const void *p)
{
    size_t i = slot_of(p), j;

    while (set[i] != p) {
        if (set[i] == NULL)
            return; /* not the library's, or allocated outside a run */
        i = (i + 1) & (SET_CAP - 1);
    }
    set[i] = NULL;
    set_n--;
    for (j = (i + 1) & (SET_CAP - 1); set[j] != NULL; j = (j + 1) & (SET_CAP - 1)) {
        size_t k = slot_of(set[j]);
        /* Move set[j] into the hole at i unless its home lies in (i, j]. */
        if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
            set[i] = set[j];
            set[j] = NULL;
            i = j;
        }
    }
}

static void set_clear(void)
{
    memset(set, 0, sizeof set);
    set_n = 0;
}

/* ---- counting and failing ----------------------------------------------- */

static bool in_run;         /* between the start and end of a scenario run */
static unsigned count;      /* allocations counted in this run */
static unsigned fail_at;    /* 1-based: the allocation that fails; 0: none */
static bool failed;         /* it did */
static const char *cur;     /* the scenario's name, for a crash */
static unsigned cur_n;      /* and the run's N */
static unsigned run_errors; /* oom_check failures in this run */
static bool trace;          /* OOM_TRACE set: print each failure's stack */

#define MAX_SITES 4096
static void *sites[MAX_SITES];
static unsigned n_sites;

static void note_site(void *site)
{
    for (unsigned i = 0; i < n_sites; i++)
        if (sites[i] == site)
            return;
    if (n_sites < MAX_SITES)
        sites[n_sites++] = site;
}

/* fail_now counts one allocation and says whether it is the one to fail. */
static bool fail_now(void *site)
{
    if (!in_run)
        return false;
    count++;
    if (count != fail_at)
        return false;
    failed = true;
    note_site(site);
    if (trace) {
        void *bt[16];
        int n = backtrace(bt, 16);

        fprintf(stderr, "oom: %s N=%u fails here:\n", cur, cur_n);
        backtrace_symbols_fd(bt, n, 2);
    }
    return true;
}

static void *track(void *p)
{
    if (p != NULL && in_run)
        set_add(p);
    return p;
}

void *oom_malloc(size_t n)
{
    return fail_now(__builtin_return_address(0)) ? NULL : track(malloc(n));
}

void *oom_calloc(size_t k, size_t n)
{
    return fail_now(__builtin_return_address(0)) ? NULL : track(calloc(k, n));
}

void *oom_realloc(void *p, size_t n)
{
    void *q;

    if (fail_now(__builtin_return_address(0)))
        return NULL; /* p stays allocated, as realloc leaves it */
    if (p != NULL)
        set_del(p);
    q = realloc(p, n);
    if (q != NULL)
        track(q);
    else if (n != 0 && p != NULL && in_run)
        set_add(p); /* a real failure: p is still allocated */
    return q;
}

char *oom_strdup(const char *s)
{
    return fail_now(__builtin_return_address(0)) ? NULL : track(strdup(s));
}

char *oom_strndup(const char *s, size_t n)
{
    return fail_now(__builtin_return_address(0)) ? NULL : track(strndup(s, n));
}

void __wrap_free(void *p)
{
    if (p != NULL)
        set_del(p);
    __real_free(p);
}

void oom_free(void *p)
{
    __wrap_free(p);
}

void *oom_sodium_malloc(size_t n)
{
    return fail_now(__builtin_return_address(0)) ? NULL : track(sodium_malloc(n));
}

void oom_sodium_free(void *p)
{
    if (p != NULL)
        set_del(p);
    sodium_free(p);
}

EVP_MD_CTX *oom_EVP_MD_CTX_new(void)
{
    return fail_now(__builtin_return_address(0)) ? NULL : EVP_MD_CTX_new();
}

/* ---- naming the run that crashed ------------------------------------------- */

static void say_where(void)
{
    char line[256];
    int n;

    if (cur == NULL)
        return;
    n = snprintf(line, sizeof line,
                 "oom: died in scenario %s, run N=%u (0: no failure)\n", cur, cur_n);
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void on_signal(int sig)
{
    say_where();
}

/* ASan calls this before it exits on an error (weak: absent without it). */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void install_handlers(void)
{
    static bool done;
    struct sigaction sa;

    if (done)
        return;
    done = true;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    if (__sanitizer_set_death_callback != NULL)
        __sanitizer_set_death_callback(say_where);
}

/* ---- the sweep ------------------------------------------------------------ */

static struct oom_stats last;

bool oom_failed(void)
{
    return failed;
}

void oom_check(bool ok, const char *what)
{
    if (ok)
        return;
    run_errors++;
    fprintf(stderr, "oom: %s N=%u: %s\n", cur, cur_n, what);
}

/* run runs fn once with allocation n failing (0: none); returns the number
 * of problems found. */
static int run(oom_scenario_fn fn, void *ud, unsigned n, bool check_leaks)
{
    int rc, problems;

    set_clear();
    count = 0;
    fail_at = n;
    failed = false;
    cur_n = n;
    run_errors = 0;
    in_run = true;
    rc = fn(ud);
    in_run = false;
    problems = (int)run_errors;
    if (rc != 0 && !failed) {
        fprintf(stderr, "oom: %s N=%u: returned %d with no allocation failed\n", cur, n,
                rc);
        problems++;
    }
    if (check_leaks && set_n != 0) {
        fprintf(stderr, "oom: %s N=%u: %zu block(s) leaked\n", cur, n, set_n);
        problems++;
    }
    set_clear();
    return problems;
}

int oom_sweep(const char *name, oom_scenario_fn fn, void *ud, unsigned max_runs)
{
    unsigned k, step = 1;
    int bad = 0;

    install_handlers();
    trace = getenv("OOM_TRACE") != NULL;
    cur = name;
    n_sites = 0;
    memset(&last, 0, sizeof last);
    /* A first run may fill caches that live until exit: not a leak. */
    run(fn, ud, 0, false);
    bad += run(fn, ud, 0, true);
    k = count;
    last.allocs = k;
    if (max_runs != 0 && k > max_runs)
        step = (k + max_runs - 1) / max_runs;
    for (unsigned n = 1; n <= k; n += step) {
        bad += run(fn, ud, n, true) > 0;
        last.runs++;
    }
    last.sites = n_sites;
    printf("%-12s %5u allocations, %5u runs, %4u sites failed, %d bad run(s)\n", name, k,
           last.runs, n_sites, bad);
    fflush(stdout);
    cur = NULL;
    return bad;
}

void oom_last_stats(struct oom_stats *out)
{
    *out = last;
}
