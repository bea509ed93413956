/* bench_stats.c: a latency histogram in fixed memory.  Log-linear buckets:
 * values below 64 ns each have a bucket; above, each power of two is cut into
 * 64 equal buckets, so a quantile is known to within 1/64 (1.6 %) of its value
 * whatever the number of samples. */
#include "bench.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned exp = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned sub = (unsigned)(v >> (exp - 6)) & (BENCH_HIST_SUB - 1);
    unsigned idx = BENCH_HIST_SUB + (exp - 6) * BENCH_HIST_SUB + sub;
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* The middle of bucket idx (its lower bound for the exact small buckets). */
static uint64_t bucket_value(unsigned idx)
{
    if (idx < BENCH_HIST_SUB)
        return idx;
    unsigned exp = (idx - BENCH_HIST_SUB) / BENCH_HIST_SUB + 6;
    unsigned sub = (idx - BENCH_HIST_SUB) % BENCH_HIST_SUB;
    uint64_t lo = ((uint64_t)(BENCH_HIST_SUB + sub)) << (exp - 6);
    uint64_t width = (uint64_t)1 << (exp - 6);
    return lo + width / 2;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += (double)v;
    h->bucket[bucket_of(v)]++;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    /* The smallest value with at least ceil(q * count) samples at or below. */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}
