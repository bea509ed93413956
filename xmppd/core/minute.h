/* minute.h: a count of events in the last minute
 * (logins and failures per minute in xmpp status), as a ring of 60
 * one-second slots.
 *
 * Pure: the caller passes the time in (ms, monotonic).  A zeroed struct
 * minute is an empty count. */
#ifndef XMPPD_MINUTE_H
#define XMPPD_MINUTE_H

#include <stdint.h>

#define MINUTE_SLOTS 60

struct minute {
    uint64_t slot[MINUTE_SLOTS]; /* events in second s at slot[s % 60] */
    uint64_t sec;                /* the newest second written, +1; 0: none */
};

/* minute_add counts n events at now_ms. */
void minute_add(struct minute *m, uint64_t now_ms, uint64_t n);

/* minute_sum returns the events of the last 60 seconds up to now_ms (the
 * current second and the 59 before it). */
uint64_t minute_sum(const struct minute *m, uint64_t now_ms);

#endif
