/* logging.c: formatting into a log sink. */
#include "logging.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void log_emit(const struct log_sink *sink, enum log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (!LOG_ON(sink, level) || sink->write == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sink->write(sink->ud, level, line);
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level < sizeof level_names / sizeof level_names[0])
        return level_names[level];
    return "?";
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return XE_INVAL;
}

bool log_rate_take(struct log_rate *r, uint64_t now_ms, unsigned *held)
{
    if (r->any && now_ms - r->last_ms < r->window_ms) {
        if (r->held < UINT32_MAX)
            r->held++;
        return false;
    }
    if (held != NULL)
        *held = r->held;
    r->held = 0;
    r->any = true;
    r->last_ms = now_ms;
    return true;
}
