/* logsink.h: the stderr log sink of the daemon.
 *
 * Each line becomes "<ISO 8601 UTC time> <level> <line>\n", written to
 * stderr with one write(2) so that lines from one process never interleave. */
#ifndef XMPPD_LOGSINK_H
#define XMPPD_LOGSINK_H

#include "log.h"

/* logsink_stderr fills sink with a writer to stderr filtering at level. */
void logsink_stderr(struct log_sink *sink, enum log_level level);

#endif
