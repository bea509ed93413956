/* logsink.h: the stderr log sink of the daemon.
 *
 * Each line is written to stderr with one write(2) so that lines from one
 * process never interleave, in one of two forms:
 *   LOGSINK_PLAIN   "<ISO 8601 UTC time> <level> <line>\n" (a terminal, a
 *                   file, the tests)
 *   LOGSINK_SYSLOG  "<N><level> <line>\n": N is the syslog priority (RFC
 *                   5424 §6.2.1; sd-daemon.h's SD_ERR "<3>", SD_WARNING
 *                   "<4>", SD_INFO "<6>", SD_DEBUG "<7>"), which journald
 *                   and syslog daemons read as the line's priority; no time
 *                   (the journal stamps each line itself).
 * logsink_mode_auto picks SYSLOG when stderr is the journal (systemd's
 * JOURNAL_STREAM names stderr's device and inode, systemd.exec(5)). */
#ifndef XMPPD_LOGSINK_H
#define XMPPD_LOGSINK_H

#include <stdbool.h>
#include <stddef.h>

#include "logging.h"

enum logsink_mode {
    LOGSINK_AUTO = 0, /* SYSLOG when stderr is the journal, else PLAIN */
    LOGSINK_PLAIN,
    LOGSINK_SYSLOG,
};

/* logsink_mode_parse sets *out from "auto", "stderr" (PLAIN) or "syslog";
 * 0 or XE_INVAL. */
int logsink_mode_parse(const char *name, enum logsink_mode *out);

/* logsink_stderr_is_journal: JOURNAL_STREAM is set to "<dev>:<ino>" and
 * matches stderr's. */
bool logsink_stderr_is_journal(void);

/* logsink_stderr fills sink with a writer to stderr filtering at level, in
 * mode (AUTO resolved now). */
void logsink_stderr(struct log_sink *sink, enum log_level level, enum logsink_mode mode);

/* logsink_format writes one line of mode (PLAIN or SYSLOG) into out (len
 * bytes, at least 2), ending in '\n' and cut to fit; ts_s/ts_ms is the
 * wall-clock time (PLAIN).  Returns the length.  Pure: for tests. */
size_t logsink_format(enum logsink_mode mode, long long ts_s, int ts_ms,
                      enum log_level level, const char *line, char *out, size_t len);

#endif
