/* testlib.h: the small test harness shared by unit, transcript and sim tests.
 *
 * A test file defines static void functions and lists them:
 *
 *     static void test_parse_bare(void) { CHECK(...); }
 *     TL_MAIN(T(test_parse_bare), T(test_other))
 *
 * Running the binary runs every case (or those whose name contains argv[1])
 * and prints one line per case and a closing "N passed, N failed" line; the
 * exit status is non-zero when any check failed.  A failed CHECK records the
 * failure and carries on; REQUIRE returns from the case. */
#ifndef XMPPD_TESTLIB_H
#define XMPPD_TESTLIB_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tl_case {
    const char *name;
    void (*fn)(void);
};

static int tl_case_failures;

#define TL_FAIL_(...)                                                                    \
    do {                                                                                 \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                  \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                             \
        tl_case_failures++;                                                              \
    } while (0)

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond))                                                                     \
            TL_FAIL_("CHECK failed: %s", #cond);                                         \
    } while (0)

#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            TL_FAIL_("REQUIRE failed: %s", #cond);                                       \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define CHECK_INT(a, b)                                                                  \
    do {                                                                                 \
        long long tl_a_ = (long long)(a), tl_b_ = (long long)(b);                        \
        if (tl_a_ != tl_b_)                                                              \
            TL_FAIL_("CHECK_INT failed: %s == %s (%lld != %lld)", #a, #b, tl_a_, tl_b_); \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *tl_a_ = (a), *tl_b_ = (b);                                           \
        if (tl_a_ == NULL || tl_b_ == NULL || strcmp(tl_a_, tl_b_) != 0)                 \
            TL_FAIL_("CHECK_STR failed: %s == %s\n  got:      %s\n  expected: %s", #a,   \
                     #b, tl_a_ ? tl_a_ : "(null)", tl_b_ ? tl_b_ : "(null)");            \
    } while (0)

#define T(fn)                                                                            \
    {                                                                                    \
#fn, fn                                                                          \
    }

static inline int tl_run(const struct tl_case *cases, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;

    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strstr(cases[i].name, argv[1]) == NULL)
            continue;
        tl_case_failures = 0;
        cases[i].fn();
        if (tl_case_failures == 0) {
            passed++;
            printf("ok   %s\n", cases[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", cases[i].name);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

#define TL_MAIN(...)                                                                     \
    int main(int argc, char **argv)                                                      \
    {                                                                                    \
        static const struct tl_case tl_cases_[] = {__VA_ARGS__};                         \
        return tl_run(tl_cases_, sizeof tl_cases_ / sizeof tl_cases_[0], argc, argv);    \
    }

#endif
