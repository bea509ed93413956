/* shaper.c: the token bucket of shaper.h. */
#include "shaper.h"

/* refill brings s up to date at now_ms: rate bytes per second, so rate
 * thousandths of a byte per millisecond, up to burst bytes. */
static void refill(struct shaper *s, uint64_t rate, uint64_t burst, uint64_t now_ms)
{
    int64_t cap = (int64_t)(burst * 1000);

    if (!s->started) {
        s->started = 1;
        s->milli = cap;
        s->at_ms = now_ms;
        return;
    }
    if (now_ms > s->at_ms) {
        /* At most a day counts (bursts are seconds of the rate): the
         * product cannot overflow. */
        uint64_t dt = now_ms - s->at_ms < 86400000 ? now_ms - s->at_ms : 86400000;
        uint64_t gain = dt * rate;
        /* Clamped before the sum: a long idle time cannot overflow. */
        if (gain > (uint64_t)(cap - (s->milli < cap ? s->milli : cap)))
            s->milli = cap;
        else
            s->milli += (int64_t)gain;
        s->at_ms = now_ms;
    }
    if (s->milli > cap)
        s->milli = cap;
}

uint64_t shaper_take(struct shaper *s, uint64_t rate, uint64_t burst, size_t n,
                     uint64_t now_ms)
{
    uint64_t owed;

    if (rate == 0)
        return 0;
    refill(s, rate, burst, now_ms);
    s->milli -= (int64_t)n * 1000;
    if (s->milli >= 0)
        return 0;
    owed = (uint64_t)-s->milli;
    /* Rounded up: at the returned time the budget is at least zero. */
    return now_ms + (owed + rate - 1) / rate;
}
