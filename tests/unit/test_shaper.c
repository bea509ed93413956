/* test_shaper.c: the token bucket of client connections (shaper.c) and the
 * one-minute counts (minute.c), on a virtual clock. */
#include "minute.h"
#include "shaper.h"
#include "testlib.h"

/* A full bucket at first; over it, the time the budget is back at zero
 * (rounded up); refilled at the rate, never above the burst. */
static void test_shaper_bucket(void)
{
    struct shaper s = {0};

    CHECK_INT(shaper_take(&s, 100, 300, 300, 1000), 0);
    /* 1 byte over at 100 bytes/s: 10 ms */
    CHECK_INT(shaper_take(&s, 100, 300, 1, 1000), 1010);
    /* 5 ms later half of it came back, 50 more bytes: 50.5 bytes owed */
    CHECK_INT(shaper_take(&s, 100, 300, 50, 1005), 1005 + 505);
    /* a long idle time fills it to the burst only */
    CHECK_INT(shaper_take(&s, 100, 300, 300, 1000000), 0);
    CHECK_INT(shaper_take(&s, 100, 300, 1, 1000000), 1000010);
    /* rate 0: no limit */
    CHECK_INT(shaper_take(&s, 0, 0, 1000000, 1000000), 0);
}

/* Slow trickles stay within the budget. */
static void test_shaper_steady(void)
{
    struct shaper s = {0};
    uint64_t t = 0;

    for (int i = 0; i < 1000; i++, t += 10)
        CHECK_INT(shaper_take(&s, 1000, 100, 10, t), 0);
    /* and a faster one does not */
    CHECK(shaper_take(&s, 1000, 100, 200, t) > t);
}

/* Events of the last 60 s: added up, forgotten as the seconds pass, a
 * long gap clears everything. */
static void test_minute(void)
{
    struct minute m = {0};

    CHECK_INT(minute_sum(&m, 5000), 0);
    minute_add(&m, 10000, 1);
    minute_add(&m, 10999, 2);
    minute_add(&m, 40000, 4);
    CHECK_INT(minute_sum(&m, 40000), 7);
    CHECK_INT(minute_sum(&m, 69999), 7);
    CHECK_INT(minute_sum(&m, 70000), 4); /* second 10 is 60 s old */
    minute_add(&m, 99000, 8);
    CHECK_INT(minute_sum(&m, 99000), 12);
    CHECK_INT(minute_sum(&m, 100000), 8);
    minute_add(&m, 500000, 16);
    CHECK_INT(minute_sum(&m, 500000), 16);
    CHECK_INT(minute_sum(&m, 559999), 16);
    CHECK_INT(minute_sum(&m, 560000), 0);
    /* second 0 */
    {
        struct minute z = {0};
        minute_add(&z, 0, 3);
        CHECK_INT(minute_sum(&z, 0), 3);
        CHECK_INT(minute_sum(&z, 59999), 3);
        CHECK_INT(minute_sum(&z, 60000), 0);
    }
}

TL_MAIN(T(test_shaper_bucket), T(test_shaper_steady), T(test_minute))
