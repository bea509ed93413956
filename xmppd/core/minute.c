/* minute.c: the one-minute ring of minute.h. */
#include "minute.h"

#include <string.h>

void minute_add(struct minute *m, uint64_t now_ms, uint64_t n)
{
    uint64_t now = now_ms / 1000;

    if (m->sec == 0 || now >= m->sec - 1 + MINUTE_SLOTS) {
        /* Nothing yet, or nothing within the last minute: start over. */
        memset(m->slot, 0, sizeof m->slot);
        m->sec = now + 1;
    }
    /* Clear the seconds that passed since the newest one written. */
    while (m->sec < now + 1) {
        m->slot[m->sec % MINUTE_SLOTS] = 0;
        m->sec++;
    }
    /* A time behind the newest second (never with a monotonic clock)
     * counts in the newest. */
    m->slot[(m->sec - 1) % MINUTE_SLOTS] += n;
}

uint64_t minute_sum(const struct minute *m, uint64_t now_ms)
{
    uint64_t now = now_ms / 1000, sum = 0;

    if (m->sec == 0)
        return 0;
    /* Seconds s with now - 60 < s <= now, written at most 60 s ago. */
    for (uint64_t s = m->sec - 1, i = 0; i < MINUTE_SLOTS && s + MINUTE_SLOTS > now;
         i++, s--) {
        if (s <= now)
            sum += m->slot[s % MINUTE_SLOTS];
        if (s == 0)
            break;
    }
    return sum;
}
