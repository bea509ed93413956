/* test_never.c: XD_NEVER (never.h) in both of its builds.  The cases are
 * compiled with asserts on whatever the build type (NDEBUG is undefined
 * below), so a true condition must abort; xd_never_release, at the end,
 * expands the macro again with NDEBUG defined, where it must only report. */
#undef NDEBUG
#include "never.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static bool xd_never_release(int cond, int *evaluated);

static void test_false_is_false_and_evaluated_once(void)
{
    int n = 0;

    CHECK_INT(XD_NEVER(n++ == 1), 0);
    CHECK_INT(n, 1);
}

static void test_true_aborts_in_debug(void)
{
    int status = 0;
    pid_t pid = fork();

    REQUIRE(pid >= 0);
    if (pid == 0) {
        int n = 0;

        /* assert's message is the expected output of this case */
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(3);
        if (XD_NEVER(n == 0))
            _exit(2); /* the safe branch: only without asserts */
        _exit(0);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

static void test_true_takes_the_safe_branch_in_release(void)
{
    int n = 0;

    CHECK(xd_never_release(1, &n));
    CHECK_INT(n, 1);
    CHECK(!xd_never_release(0, &n));
    CHECK_INT(n, 2);
}

TL_MAIN(T(test_false_is_false_and_evaluated_once), T(test_true_aborts_in_debug),
        T(test_true_takes_the_safe_branch_in_release))

/* The release form: never.h again with NDEBUG defined. */
#undef XMPPD_NEVER_H
#undef XD_NEVER
#define NDEBUG
#include "never.h"

static bool xd_never_release(int cond, int *evaluated)
{
    return XD_NEVER(++*evaluated > 0 && cond);
}
