/* logsink.c: the stderr log sink, plain or with syslog priorities
 * (contract in logsink.h). */
#include "logsink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

int logsink_mode_parse(const char *name, enum logsink_mode *out)
{
    if (strcmp(name, "auto") == 0)
        *out = LOGSINK_AUTO;
    else if (strcmp(name, "stderr") == 0)
        *out = LOGSINK_PLAIN;
    else if (strcmp(name, "syslog") == 0)
        *out = LOGSINK_SYSLOG;
    else
        return XE_INVAL;
    return 0;
}

bool logsink_stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat sb;
    char tail;

    /* systemd.exec(5): "<device>:<inode>" of the stream, in decimal; a
     * child whose stderr was redirected elsewhere must not take it. */
    if (e == NULL || sscanf(e, "%llu:%llu%c", &dev, &ino, &tail) != 2)
        return false;
    if (fstat(STDERR_FILENO, &sb) != 0)
        return false;
    return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

/* The syslog priority of each level (RFC 5424 §6.2.1 severities). */
static int priority(enum log_level level)
{
    switch (level) {
    case LOG_ERROR:
        return 3; /* SD_ERR */
    case LOG_WARN:
        return 4; /* SD_WARNING */
    case LOG_INFO:
        return 6; /* SD_INFO */
    default:
        return 7; /* SD_DEBUG: debug and trace */
    }
}

size_t logsink_format(enum logsink_mode mode, long long ts_s, int ts_ms,
                      enum log_level level, const char *line, char *out, size_t len)
{
    size_t n = 0;
    int m;

    if (mode == LOGSINK_SYSLOG) {
        m = snprintf(out, len, "<%d>%s %s\n", priority(level), log_level_name(level),
                     line);
    } else {
        time_t t = (time_t)ts_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
        m = snprintf(out + n, len - n, ".%03dZ %s %s\n", ts_ms, log_level_name(level),
                     line);
    }
    if (m < 0) {
        out[0] = '\n';
        out[1] = '\0';
        return 1;
    }
    n += (size_t)m < len - n ? (size_t)m : len - n - 1;
    if (out[n - 1] != '\n')
        out[n - 1] = '\n';
    return n;
}

static void write_line(void *ud, enum log_level level, const char *line)
{
    enum logsink_mode mode = (enum logsink_mode)(long)ud;
    struct timespec ts;
    char out[1200];
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    n = logsink_format(mode, (long long)ts.tv_sec, (int)(ts.tv_nsec / 1000000L), level,
                       line, out, sizeof out);
    /* Best effort: a log line that cannot be written is dropped. */
    if (write(STDERR_FILENO, out, n) < 0)
        return;
}

void logsink_stderr(struct log_sink *sink, enum log_level level, enum logsink_mode mode)
{
    if (mode == LOGSINK_AUTO)
        mode = logsink_stderr_is_journal() ? LOGSINK_SYSLOG : LOGSINK_PLAIN;
    sink->level = level;
    sink->write = write_line;
    sink->ud = (void *)(long)mode;
}
