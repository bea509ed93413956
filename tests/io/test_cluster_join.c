/* test_cluster_join.c: the join request checks of the cluster edge
 * (xmppd/io/cluster_req.c, cluster_join.c): the request body is parsed
 * strictly, and a joining node may only ask to join at the address its
 * HELLO claimed (the one peer.c bound to its certificate). */
#include <stdint.h>
#include <string.h>

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

TL_MAIN(T(test_parse), T(test_address_must_match_hello))
