/* shaper.h: a token bucket that paces the bytes read from one client
 * connection (a byte-rate shaper; docs/admin.md
 * "Clients").
 *
 * Pure: the caller passes the time in.  Bytes are counted after they were
 * read and handed on (nothing is held back or lost): a connection that
 * went over its budget is only read again once the bucket is back to
 * zero, which is the time shaper_take returns. */
#ifndef XMPPD_SHAPER_H
#define XMPPD_SHAPER_H

#include <stddef.h>
#include <stdint.h>

struct shaper {
    int64_t milli;  /* the budget in thousandths of a byte; negative: owed */
    uint64_t at_ms; /* when milli was last brought up to date */
    int started;    /* 0: the first take starts with a full bucket */
};

/* shaper_take counts n bytes read at now_ms against a budget of rate
 * bytes per second that accumulates up to burst bytes (rate 0: no limit,
 * always 0).  Returns 0 while the budget lasts, else the time (later than
 * now_ms) at which it is back to zero: read no more before then. */
uint64_t shaper_take(struct shaper *s, uint64_t rate, uint64_t burst, size_t n,
                     uint64_t now_ms);

#endif
