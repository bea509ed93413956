/* test_cluster_join.c: the join request checks of the cluster edge
 * (xmppd/io/cluster_join.c, cluster_invite.c; the request's codec is
 * tested in tests/unit/test_pframe_req.c): a joining node
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

/* join fills j as a join request for id at addr. */
static void join(struct pframe_join *j, uint64_t id, const char *addr)
{
    memset(j, 0, sizeof *j);
    j->node_id = id;
    snprintf(j->addr, sizeof j->addr, "%s", addr);
}

static void test_address_must_match_hello(void)
{
    struct pframe_join j;
    char why[300] = "";

    join(&j, 0x1234, "10.0.0.3:5224");
    CHECK_INT(cluster__join_check("10.0.0.3:5224", &j, why, sizeof why), 0);
    /* The default port and the address's spelling do not matter. */
    CHECK_INT(cluster__join_check("10.0.0.3", &j, why, sizeof why), 0);
    join(&j, 0x1234, "[0::1]:7000");
    CHECK_INT(cluster__join_check("[::1]:7000", &j, why, sizeof why), 0);

    /* A node whose certificate names 10.0.0.3 asks to be added at another
     * member's address: refused, and the reason names both. */
    join(&j, 0x1234, "10.0.0.2:5224");
    CHECK_INT(cluster__join_check("10.0.0.3:5224", &j, why, sizeof why), XE_AUTH);
    CHECK(strstr(why, "10.0.0.2:5224") != NULL);
    CHECK(strstr(why, "10.0.0.3:5224") != NULL);
    join(&j, 0x1234, "10.0.0.3:5225");
    CHECK_INT(cluster__join_check("10.0.0.3:5224", &j, why, sizeof why), XE_AUTH);
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

TL_MAIN(T(test_address_must_match_hello), T(test_invites))
