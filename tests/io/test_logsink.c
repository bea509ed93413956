/* test_logsink.c: the log line forms (xmppd/io/logsink.h) and telling the
 * journal from another stderr. */
#include "testlib.h"

#include "logsink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_syslog_prefix(void)
{
    char out[256];
    size_t n;

    n = logsink_format(LOGSINK_SYSLOG, 0, 0, LOG_ERROR, "n1 disk full", out, sizeof out);
    CHECK_INT(n, strlen(out));
    CHECK_STR(out, "<3>error n1 disk full\n");
    logsink_format(LOGSINK_SYSLOG, 0, 0, LOG_WARN, "w", out, sizeof out);
    CHECK_STR(out, "<4>warn w\n");
    logsink_format(LOGSINK_SYSLOG, 0, 0, LOG_INFO, "i", out, sizeof out);
    CHECK_STR(out, "<6>info i\n");
    logsink_format(LOGSINK_SYSLOG, 0, 0, LOG_DEBUG, "d", out, sizeof out);
    CHECK_STR(out, "<7>debug d\n");
    logsink_format(LOGSINK_SYSLOG, 0, 0, LOG_TRACE, "t", out, sizeof out);
    CHECK_STR(out, "<7>trace t\n");
}

static void test_plain_and_cut(void)
{
    char out[256], small[16];

    logsink_format(LOGSINK_PLAIN, 1800000000LL, 7, LOG_INFO, "n1 started", out,
                   sizeof out);
    CHECK_STR(out, "2027-01-15T08:00:00.007Z info n1 started\n");
    /* Cut to fit, still one line. */
    CHECK_INT(logsink_format(LOGSINK_SYSLOG, 0, 0, LOG_INFO, "a long line here", small,
                             sizeof small),
              15);
    CHECK(small[14] == '\n');
}

static void test_journal_detection(void)
{
    struct stat sb;
    char v[64];
    enum logsink_mode m;

    REQUIRE(fstat(STDERR_FILENO, &sb) == 0);
    unsetenv("JOURNAL_STREAM");
    CHECK(!logsink_stderr_is_journal());
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)sb.st_dev,
             (unsigned long long)sb.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    CHECK(logsink_stderr_is_journal());
    /* Another stream (stderr was redirected by a child's parent). */
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)sb.st_dev,
             (unsigned long long)sb.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    CHECK(!logsink_stderr_is_journal());
    setenv("JOURNAL_STREAM", "garbage", 1);
    CHECK(!logsink_stderr_is_journal());
    unsetenv("JOURNAL_STREAM");
    CHECK_INT(logsink_mode_parse("syslog", &m), 0);
    CHECK_INT(m, LOGSINK_SYSLOG);
    CHECK_INT(logsink_mode_parse("stderr", &m), 0);
    CHECK_INT(m, LOGSINK_PLAIN);
    CHECK(logsink_mode_parse("journal", &m) < 0);
}

TL_MAIN(T(test_syslog_prefix), T(test_plain_and_cut), T(test_journal_detection))
