/* test_buf.c: the growable byte buffer. */
#include <stdint.h>

#include "testlib.h"

#include "buf.h"
#include "err.h"

static void test_zero_is_empty(void)
{
    struct buf b = {0};
    char *s;

    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    buf_reset(&b); /* fine on a never-used buffer */
    CHECK(b.data == NULL);
    s = buf_steal(&b);
    REQUIRE(s != NULL);
    CHECK_STR(s, "");
    free(s);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    buf_free(&b);
    buf_free(&b);
}

static void test_append(void)
{
    struct buf b = {0};

    CHECK_INT(buf_append(&b, "ab", 2), 0);
    CHECK_INT(b.len, 2);
    CHECK(b.cap >= 3);
    CHECK_STR(b.data, "ab");
    CHECK_INT(buf_append(&b, "", 0), 0);
    CHECK_INT(b.len, 2);
    CHECK_INT(buf_append(&b, "c\0d", 3), 0); /* binary content */
    CHECK_INT(b.len, 5);
    CHECK(memcmp(b.data, "abc\0d", 6) == 0); /* and NUL-terminated */
    CHECK_INT(buf_puts(&b, "efg"), 0);
    CHECK_INT(b.len, 8);
    CHECK(b.data[8] == '\0');
    buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    /* an empty append still gives a NUL-terminated buffer */
    CHECK_INT(buf_append(&b, NULL, 0), 0);
    REQUIRE(b.data != NULL);
    CHECK_STR(b.data, "");
    buf_free(&b);
}

static void test_growth(void)
{
    struct buf b = {0};
    size_t total = 0;
    unsigned char pattern[251];

    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)i;
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(buf_append(&b, pattern, sizeof pattern), 0);
        total += sizeof pattern;
    }
    CHECK_INT(b.len, total);
    CHECK(b.cap > b.len);
    for (size_t i = 0; i < total; i++)
        if ((unsigned char)b.data[i] != (unsigned char)(i % sizeof pattern)) {
            TL_FAIL_("byte %zu wrong", i);
            break;
        }
    buf_free(&b);
}

static void test_printf(void)
{
    struct buf b = {0};

    CHECK_INT(buf_printf(&b, "%s=%d", "x", 42), 0);
    CHECK_INT(buf_printf(&b, "/%05.1f/%c", 3.14159, 'z'), 0);
    CHECK_STR(b.data, "x=42/003.1/z");
    CHECK_INT(b.len, strlen("x=42/003.1/z"));
    CHECK_INT(buf_printf(&b, "%s", ""), 0);
    CHECK_INT(b.len, 12);
    {
        char big[5000];

        memset(big, 'q', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        CHECK_INT(buf_printf(&b, "[%s]", big), 0);
        CHECK_INT(b.len, 12 + 2 + 4999);
        CHECK(b.data[b.len - 1] == ']' && b.data[b.len] == '\0');
    }
    buf_free(&b);
    /* Texts that just fit the room left and one byte more (the NUL needs
     * its byte): the second is formatted again after growing. */
    CHECK_INT(buf_puts(&b, "ab"), 0);
    CHECK_INT((int)b.cap, 64);
    CHECK_INT(buf_printf(&b, "%060d", 7), 0);
    CHECK_INT((int)b.len, 62);
    CHECK_INT((int)b.cap, 64);
    CHECK_INT(buf_printf(&b, "%d", 12), 0);
    CHECK_INT((int)b.len, 64);
    CHECK_INT((int)b.cap, 128);
    CHECK(b.data[61] == '7' && strcmp(b.data + 62, "12") == 0);
    buf_free(&b);
}

static void test_reserve(void)
{
    struct buf b = {0};
    char *before;

    CHECK_INT(buf_reserve(&b, 100), 0);
    CHECK(b.cap >= 101);
    CHECK_INT(b.len, 0);
    before = b.data;
    CHECK_INT(buf_append(&b, "0123456789", 10), 0);
    CHECK(b.data == before); /* no realloc within the reservation */
    /* impossible sizes fail cleanly and leave the buffer alone */
    CHECK_INT(buf_reserve(&b, SIZE_MAX), XE_NOMEM);
    CHECK_INT(buf_reserve(&b, SIZE_MAX - 10), XE_NOMEM);
    CHECK_INT(buf_append(&b, "x", SIZE_MAX - 5), XE_NOMEM);
    CHECK_INT(b.len, 10);
    CHECK_STR(b.data, "0123456789");
    buf_free(&b);
}

static void test_consume_reset(void)
{
    struct buf b = {0};
    size_t cap;

    CHECK_INT(buf_puts(&b, "hello world"), 0);
    buf_consume(&b, 6);
    CHECK_INT(b.len, 5);
    CHECK_STR(b.data, "world");
    buf_consume(&b, 0);
    CHECK_STR(b.data, "world");
    buf_consume(&b, 5);
    CHECK_INT(b.len, 0);
    CHECK_STR(b.data, "");
    CHECK_INT(buf_puts(&b, "again"), 0);
    cap = b.cap;
    buf_reset(&b);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, cap); /* keeps the allocation */
    CHECK_STR(b.data, "");
    buf_free(&b);
}

static void test_steal(void)
{
    struct buf b = {0};
    char *s;

    CHECK_INT(buf_puts(&b, "owned"), 0);
    s = buf_steal(&b);
    CHECK_STR(s, "owned");
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    free(s);
    /* after reset, steal gives "" */
    CHECK_INT(buf_puts(&b, "x"), 0);
    buf_reset(&b);
    s = buf_steal(&b);
    CHECK_STR(s, "");
    free(s);
    /* the buffer is usable again after a steal */
    CHECK_INT(buf_puts(&b, "y"), 0);
    CHECK_STR(b.data, "y");
    buf_free(&b);
}

/* buf_fixed: what fits is written; the first piece that does not sets
 * full, and nothing after it is written, even a piece that would fit. */
static void test_fixed(void)
{
    char a[8];
    struct buf_fixed o = {.p = a, .len = sizeof a};

    buf_fixed_printf(&o, "%s", "abc");
    buf_fixed_printf(&o, "%d", 1234);
    CHECK(!o.full);
    CHECK_STR(a, "abc1234");
    CHECK_INT((int)o.used, 7);
    buf_fixed_printf(&o, "x");
    CHECK(o.full);
    CHECK_INT((int)o.used, 7);
    o = (struct buf_fixed){.p = a, .len = 4};
    buf_fixed_printf(&o, "abcd");
    buf_fixed_printf(&o, "a");
    CHECK(o.full && o.used == 0);
}

TL_MAIN(T(test_zero_is_empty), T(test_append), T(test_growth), T(test_printf),
        T(test_reserve), T(test_consume_reset), T(test_steal), T(test_fixed))
