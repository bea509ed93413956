/* test_pframe_req.c: the data of a SUBMIT frame (xmppd/core/pframe.c,
 * pframe_req_encode / pframe_req_decode): each kind round-trips, the bytes
 * are those the cluster edge wrote by hand before (so that nodes of both
 * versions understand each other), and malformed data is refused, never
 * read past. */
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pframe.h"
#include "testlib.h"

static void test_join_bytes(void)
{
    static const unsigned char tok[3] = {0xaa, 0xbb, 0xcc};
    struct pframe_req r = {.kind = PFRAME_REQ_JOIN, .expires = 0x0102030405060708ull};
    struct pframe_req d;
    struct buf b;
    static const unsigned char want[] = {
        2, 1,    2,    3,   4,   5,   6,    7,    8, /* kind, expires */
        0, 0,    0,    0,   0,   0,   0x12, 0x34,    /* id */
        1,                                           /* replace */
        0, 0,    0,    3,   '1', ':', '2',           /* addr */
        3, 0xaa, 0xbb, 0xcc};                        /* token */

    memset(&b, 0, sizeof b);
    r.u.join.node_id = 0x1234;
    r.u.join.replace = true;
    strcpy(r.u.join.addr, "1:2");
    r.u.join.token = tok;
    r.u.join.token_len = sizeof tok;
    REQUIRE(pframe_req_encode(&r, &b) == 0);
    CHECK_INT(b.len, sizeof want);
    CHECK(memcmp(b.data, want, sizeof want) == 0);
    REQUIRE(pframe_req_decode(b.data, b.len, &d) == 0);
    CHECK_INT(d.kind, PFRAME_REQ_JOIN);
    CHECK(d.expires == r.expires);
    CHECK(d.u.join.node_id == 0x1234);
    CHECK(d.u.join.replace);
    CHECK_STR(d.u.join.addr, "1:2");
    CHECK_INT(d.u.join.token_len, 3);
    CHECK(d.u.join.token == (const unsigned char *)b.data + b.len - 3);
    /* Without its token: what a member passes on to the leader. */
    CHECK_INT(pframe_req_decode(b.data, b.len - 4, &d), 0);
    CHECK(d.u.join.token == NULL && d.u.join.token_len == 0);
    /* Truncated, a token length that disagrees, an empty token, an empty
     * address, a replace flag that is not 0 or 1, an address with a NUL. */
    for (size_t len = 0; len < b.len - 4; len++)
        CHECK_INT(pframe_req_decode(b.data, len, &d), XE_PROTO);
    CHECK_INT(pframe_req_decode(b.data, b.len - 1, &d), XE_PROTO);
    CHECK_INT(pframe_req_decode(b.data, b.len - 3, &d), XE_PROTO);
    b.data[17] = 2;
    CHECK_INT(pframe_req_decode(b.data, b.len, &d), XE_PROTO);
    b.data[17] = 1;
    b.data[23] = 0;
    CHECK_INT(pframe_req_decode(b.data, b.len, &d), XE_PROTO);
    buf_free(&b);

    r.u.join.addr[0] = '\0';
    CHECK_INT(pframe_req_encode(&r, &b), XE_INVAL);
    strcpy(r.u.join.addr, "1:2");
    r.u.join.token_len = PFRAME_MAX_TOKEN + 1;
    CHECK_INT(pframe_req_encode(&r, &b), XE_INVAL);
    CHECK_INT(b.len, 0);
    buf_free(&b);
}

static void test_other_kinds(void)
{
    static const unsigned char cmd[] = {9, 8, 7};
    struct pframe_req r = {.kind = PFRAME_REQ_CMD, .expires = 5}, d;
    struct buf b;

    memset(&b, 0, sizeof b);
    r.u.cmd = (struct pframe_bytes){cmd, sizeof cmd};
    REQUIRE(pframe_req_encode(&r, &b) == 0);
    CHECK_INT(b.len, 12);
    REQUIRE(pframe_req_decode(b.data, b.len, &d) == 0);
    CHECK_INT(d.u.cmd.len, 3);
    CHECK(memcmp(d.u.cmd.data, cmd, 3) == 0);
    buf_reset(&b);

    r.kind = PFRAME_REQ_REMOVE;
    r.u.node_id = 0xfeed;
    REQUIRE(pframe_req_encode(&r, &b) == 0);
    CHECK_INT(b.len, 17);
    REQUIRE(pframe_req_decode(b.data, b.len, &d) == 0);
    CHECK(d.kind == PFRAME_REQ_REMOVE && d.u.node_id == 0xfeed && d.expires == 5);
    CHECK_INT(pframe_req_decode(b.data, 16, &d), XE_PROTO);
    buf_reset(&b);

    r.kind = PFRAME_REQ_NOTE_REMOVED;
    r.u.cluster_id = 0xc1;
    REQUIRE(pframe_req_encode(&r, &b) == 0);
    REQUIRE(pframe_req_decode(b.data, b.len, &d) == 0);
    CHECK(d.kind == PFRAME_REQ_NOTE_REMOVED && d.u.cluster_id == 0xc1);
    /* trailing bytes */
    REQUIRE(buf_append(&b, "x", 1) == 0);
    CHECK_INT(pframe_req_decode(b.data, b.len, &d), XE_PROTO);
    /* an unknown kind */
    b.data[0] = 9;
    CHECK_INT(pframe_req_decode(b.data, b.len - 1, &d), XE_PROTO);
    r.kind = 0;
    CHECK_INT(pframe_req_encode(&r, &b), XE_INVAL);
    CHECK_INT(pframe_req_decode(NULL, 0, &d), XE_PROTO);
    buf_free(&b);
}

TL_MAIN(T(test_join_bytes), T(test_other_kinds))
