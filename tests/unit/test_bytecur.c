/* test_bytecur.c: the byte cursor of the codecs (bytecur.h): both byte
 * orders, the sticky end-of-input flag, and the counting writer. */
#include "testlib.h"

#include "bytecur.h"

static void test_orders(void)
{
    static const unsigned char b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    struct rd r = {.p = b, .left = sizeof b};

    CHECK(rd_be(&r, 2) == 0x0102);
    CHECK(rd_uint(&r, 2) == 0x0403);
    CHECK(rd_be(&r, 4) == 0x05060708);
    CHECK(!r.bad && r.left == 0);
    r = (struct rd){.p = b, .left = sizeof b};
    CHECK(rd_be(&r, 8) == 0x0102030405060708ULL);
    r = (struct rd){.p = b, .left = sizeof b};
    CHECK(rd_uint(&r, 8) == 0x0807060504030201ULL);
}

/* Past the end: bad is set, the cursor does not move, and every later read
 * fails too, even one that would fit (a decoder checks once, at the end). */
static void test_past_end(void)
{
    static const unsigned char b[] = {0xff, 0xfe, 0xfd};
    struct rd r = {.p = b, .left = sizeof b};

    CHECK(rd_be(&r, 2) == 0xfffe);
    CHECK(rd_be(&r, 2) == 0);
    CHECK(r.bad);
    CHECK_INT(r.left, 1);
    CHECK(rd_be(&r, 1) == 0);
    CHECK(rd_bytes(&r, 0) == NULL);
    r = (struct rd){.p = b, .left = sizeof b};
    CHECK(rd_bytes(&r, 4) == NULL && r.bad);
    r = (struct rd){.p = b, .left = sizeof b};
    CHECK(rd_bytes(&r, 3) == b && !r.bad && r.left == 0);
}

static void test_writer(void)
{
    unsigned char out[8];
    struct wr count = {NULL, 0}, w = {out, 0};

    wr_uint(&count, 0x0102, 2);
    wr_bytes(&count, "abc", 3);
    CHECK_INT(count.len, 5);
    wr_uint(&w, 0x0102, 2);
    wr_bytes(&w, "abc", 3);
    CHECK_INT(w.len, 5);
    CHECK(memcmp(out,
                 "\x02\x01"
                 "abc",
                 5) == 0);
}

TL_MAIN(T(test_orders), T(test_past_end), T(test_writer))
