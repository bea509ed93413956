/* logging.h: the logging sink that core modules are given.
 *
 * Core code never writes to stderr itself: it formats one line per event into
 * a sink supplied by the edge (main.c writes it to stderr; tests capture it).
 * The level is checked before any formatting, so disabled levels cost one
 * compare.  Lines carry no trailing newline.  Never log secrets; stanza bodies
 * only at LOG_TRACE. */
#ifndef XMPPD_LOGGING_H
#define XMPPD_LOGGING_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
    LOG_TRACE = 4,
};

struct log_sink {
    enum log_level level; /* lines above this level are not formatted */
    /* write: receives one formatted line (borrowed, NUL-terminated). */
    void (*write)(void *ud, enum log_level level, const char *line);
    void *ud;
};

/* log_emit formats and writes one line if sink is non-NULL and level is
 * enabled.  Prefer the LOG macro, which skips argument evaluation. */
void log_emit(const struct log_sink *sink, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* log_level_name returns "error", "warn", "info", "debug" or "trace". */
const char *log_level_name(enum log_level level);

/* log_level_parse sets *out from a name as above; 0 or XE_INVAL. */
int log_level_parse(const char *name, enum log_level *out);

/* A limit on a noisy kind of line (bad connections on a public port): at
 * most one line per window_ms, and the next line that may be
 * written says how many were held back.  Zero it, then set window_ms. */
struct log_rate {
    uint64_t window_ms; /* at most one line per this many ms */
    uint64_t last_ms;   /* when the last line was let through */
    unsigned held;      /* lines held back since then */
    bool any;           /* a line was let through already */
};

/* log_rate_take tells whether a line may be written at now_ms (monotonic).
 * true: write it, and *held (may be NULL) is the number of lines held back
 * since the previous one (say so in the line when non-zero); false: the line
 * is held back and counted. */
bool log_rate_take(struct log_rate *r, uint64_t now_ms, unsigned *held);

#define LOG_ON(sink, lvl) ((sink) != NULL && (lvl) <= (sink)->level)
#define LOG(sink, lvl, ...)                                                              \
    do {                                                                                 \
        if (LOG_ON(sink, lvl))                                                           \
            log_emit((sink), (lvl), __VA_ARGS__);                                        \
    } while (0)

#endif
