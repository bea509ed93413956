/* test_cluster_join.c: the join tokens of the cluster edge
 * (xmppd/io/cluster_invite.c; the request's codec is tested in
 * tests/unit/test_pframe_req.c, the join address check in
 * tests/unit/test_cjoin.c): a join token is good once, until it expires,
 * and a refused join does not use it up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster_int.h"
#include "err.h"
#include "peer.h"
#include "testlib.h"

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

TL_MAIN(T(test_invites))
