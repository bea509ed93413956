/* logsink.c: the stderr log sink ("<iso time> <level> <line>"). */
#include "logsink.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void stderr_write(void *ud, enum log_level level, const char *line)
{
    char out[1200];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int m;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
    m = snprintf(out + n, sizeof out - n, ".%03ldZ %s %s\n", ts.tv_nsec / 1000000L,
                 log_level_name(level), line);
    if (m < 0)
        return;
    n += (size_t)m < sizeof out - n ? (size_t)m : sizeof out - n - 1;
    if (out[n - 1] != '\n')
        out[n - 1] = '\n';
    /* Best effort: a log line that cannot be written is dropped. */
    if (write(STDERR_FILENO, out, n) < 0)
        return;
}

void logsink_stderr(struct log_sink *sink, enum log_level level)
{
    sink->level = level;
    sink->write = stderr_write;
    sink->ud = NULL;
}
