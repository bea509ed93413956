/* test_cluster_join.c: the join request checks of the cluster edge
 * (xmppd/io/cluster_req.c, cluster_join.c, cluster_invite.c): the request
 * body is parsed strictly, with or without its join token; a joining node
 * may only ask to join at the address its HELLO claimed (the one peer.c
 * bound to its certificate); a join token is good once, until it expires,
 * and a refused join does not use it up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster_int.h"
#include "err.h"
#include "peer.h"
#include "testlib.h"

/* body builds a join request body for id at addr into b; returns its
 * length (as cluster__send_join does). */
static size_t body(unsigned char *b, uint64_t id, const char *addr)
{
    size_t alen = strlen(addr);

    cluster__put64(b, id);
    b[8] = 0;
    b[9] = 0;
    b[10] = 0;
    b[11] = (unsigned char)(alen >> 8);
    b[12] = (unsigned char)alen;
    memcpy(b + 13, addr, alen);
    return 13 + alen;
}

static void test_parse(void)
{
    unsigned char b[13 + PFRAME_MAX_ADDR + 8];
    char addr[PFRAME_MAX_ADDR + 1];
    uint64_t id = 0;
    bool replace = true;
    size_t len = body(b, 0x1234, "10.0.0.3:5224");

    CHECK_INT(cluster__join_parse(b, len, &id, &replace, addr), 0);
    CHECK(id == 0x1234);
    CHECK(!replace);
    CHECK_STR(addr, "10.0.0.3:5224");
    CHECK_INT(cluster__join_parse(b, len - 1, &id, &replace, addr), XE_PROTO);
    CHECK_INT(cluster__join_parse(b, 12, &id, &replace, addr), XE_PROTO);
    len = body(b, 0x1234, "");
    CHECK_INT(cluster__join_parse(b, len, &id, &replace, addr), XE_PROTO);
}

static void test_address_must_match_hello(void)
{
    unsigned char b[13 + PFRAME_MAX_ADDR + 8];
    char why[300] = "";
    size_t len = body(b, 0x1234, "10.0.0.3:5224");

    CHECK_INT(cluster__join_check("10.0.0.3:5224", b, len, why, sizeof why), 0);
    /* The default port and the address's spelling do not matter. */
    CHECK_INT(cluster__join_check("10.0.0.3", b, len, why, sizeof why), 0);
    len = body(b, 0x1234, "[0::1]:7000");
    CHECK_INT(cluster__join_check("[::1]:7000", b, len, why, sizeof why), 0);

    /* A node whose certificate names 10.0.0.3 asks to be added at another
     * member's address: refused, and the reason names both. */
    len = body(b, 0x1234, "10.0.0.2:5224");
    CHECK_INT(cluster__join_check("10.0.0.3:5224", b, len, why, sizeof why), XE_AUTH);
    CHECK(strstr(why, "10.0.0.2:5224") != NULL);
    CHECK(strstr(why, "10.0.0.3:5224") != NULL);
    len = body(b, 0x1234, "10.0.0.3:5225");
    CHECK_INT(cluster__join_check("10.0.0.3:5224", b, len, why, sizeof why), XE_AUTH);
    CHECK_INT(cluster__join_check("10.0.0.3:5224", b, 5, why, sizeof why), XE_PROTO);
}

static void test_token_in_body(void)
{
    unsigned char b[13 + PFRAME_MAX_ADDR + 1 + CLUSTER_TOKEN_BYTES];
    char addr[PFRAME_MAX_ADDR + 1];
    const unsigned char *tok;
    size_t len = body(b, 0x1234, "10.0.0.3:5224"), tlen, base;
    uint64_t id;
    bool replace;

    CHECK_INT(cluster__join_token(b, len, &tok, &tlen, &base), 0);
    CHECK(tok == NULL && tlen == 0 && base == len);
    b[len] = CLUSTER_TOKEN_BYTES;
    memset(b + len + 1, 0xab, CLUSTER_TOKEN_BYTES);
    CHECK_INT(cluster__join_token(b, len + 1 + CLUSTER_TOKEN_BYTES, &tok, &tlen, &base),
              0);
    CHECK(tok == b + len + 1 && tlen == CLUSTER_TOKEN_BYTES && base == len);
    CHECK_INT(cluster__join_parse(b, len + 1 + CLUSTER_TOKEN_BYTES, &id, &replace, addr),
              0);
    CHECK_STR(addr, "10.0.0.3:5224");
    /* A token length that disagrees with the bytes, or an empty token. */
    CHECK_INT(cluster__join_token(b, len + CLUSTER_TOKEN_BYTES, &tok, &tlen, &base),
              XE_PROTO);
    b[len] = 0;
    CHECK_INT(cluster__join_token(b, len + 1, &tok, &tlen, &base), XE_PROTO);
    CHECK_INT(cluster__join_parse(b, len + 1, &id, &replace, addr), XE_PROTO);
}

static void test_invites(void)
{
    struct cluster *c = calloc(1, sizeof *c);
    unsigned char t1[CLUSTER_TOKEN_BYTES], t2[CLUSTER_TOKEN_BYTES],
        bad[CLUSTER_TOKEN_BYTES];
    int s;

    REQUIRE(c != NULL);
    REQUIRE(sodium_init() >= 0);
    CHECK_INT(cluster__invite_add(c, 1000, 600000, t1), 0);
    CHECK_INT(cluster__invite_add(c, 1000, 1000, t2), 0);
    CHECK(memcmp(t1, t2, sizeof t1) != 0);
    memcpy(bad, t1, sizeof bad);
    bad[0] ^= 1;
    CHECK_INT(cluster__invite_take(c, bad, sizeof bad, 1500), XE_AUTH);
    CHECK_INT(cluster__invite_take(c, t1, sizeof t1 - 1, 1500), XE_AUTH);
    CHECK_INT(cluster__invite_take(c, NULL, 0, 1500), XE_AUTH);
    /* Held while its join is under way; a refused join gives it back. */
    s = cluster__invite_take(c, t1, sizeof t1, 1500);
    CHECK(s >= 0);
    CHECK_INT(cluster__invite_take(c, t1, sizeof t1, 1500), XE_AUTH);
    cluster__invite_settle(c, s, false);
    s = cluster__invite_take(c, t1, sizeof t1, 1500);
    CHECK(s >= 0);
    cluster__invite_settle(c, s, true);
    CHECK_INT(cluster__invite_take(c, t1, sizeof t1, 1500), XE_AUTH);
    /* Expired. */
    CHECK_INT(cluster__invite_take(c, t2, sizeof t2, 2000), XE_AUTH);
    /* Bounded; expired ones make room. */
    for (int i = 0; i < CLUSTER_MAX_INVITES; i++)
        CHECK_INT(cluster__invite_add(c, 2000, 1000, t1), 0);
    CHECK_INT(cluster__invite_add(c, 2000, 1000, t1), XE_LIMIT);
    CHECK_INT(cluster__invite_add(c, 3000, 1000, t1), 0);
    cluster__invite_settle(c, -1, true);
    free(c);
}

TL_MAIN(T(test_parse), T(test_address_must_match_hello), T(test_token_in_body),
        T(test_invites))
