/* test_cinvite.c: join tokens (xmppd/core/cinvite.c): a token is good
 * once, until it expires, and a refused join does not use it up; the
 * tokens open at once are bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cinvite.h"
#include "err.h"
#include "testlib.h"

static void test_invites(void)
{
    struct cinvites *c = calloc(1, sizeof *c);
    unsigned char t1[CINVITE_TOKEN_BYTES], t2[CINVITE_TOKEN_BYTES],
        bad[CINVITE_TOKEN_BYTES];
    int s;

    REQUIRE(c != NULL);
    REQUIRE(sodium_init() >= 0);
    memset(t1, 0x11, sizeof t1); /* the edge draws them: random bytes */
    memset(t2, 0x22, sizeof t2);
    CHECK_INT(cinvite_add(c, t1, 1000, 600000), 0);
    CHECK_INT(cinvite_add(c, t2, 1000, 1000), 0);
    memcpy(bad, t1, sizeof bad);
    bad[0] ^= 1;
    CHECK_INT(cinvite_take(c, bad, sizeof bad, 1500), XE_AUTH);
    CHECK_INT(cinvite_take(c, t1, sizeof t1 - 1, 1500), XE_AUTH);
    CHECK_INT(cinvite_take(c, NULL, 0, 1500), XE_AUTH);
    /* Held while its join is under way; a refused join gives it back. */
    s = cinvite_take(c, t1, sizeof t1, 1500);
    CHECK(s >= 0);
    CHECK_INT(cinvite_take(c, t1, sizeof t1, 1500), XE_AUTH);
    cinvite_settle(c, s, false);
    s = cinvite_take(c, t1, sizeof t1, 1500);
    CHECK(s >= 0);
    cinvite_settle(c, s, true);
    CHECK_INT(cinvite_take(c, t1, sizeof t1, 1500), XE_AUTH);
    /* Expired. */
    CHECK_INT(cinvite_take(c, t2, sizeof t2, 2000), XE_AUTH);
    /* Bounded; expired ones make room. */
    for (int i = 0; i < CINVITE_MAX; i++)
        CHECK_INT(cinvite_add(c, t1, 2000, 1000), 0);
    CHECK_INT(cinvite_add(c, t1, 2000, 1000), XE_LIMIT);
    CHECK_INT(cinvite_add(c, t1, 3000, 1000), 0);
    cinvite_settle(c, -1, true);
    free(c);
}

/* The token's text: the one check the daemon and mmp-cli both make. */
static void test_token_text(void)
{
    CHECK(cinvite_token_text_valid("0123456789abcdef0123456789ABCDEF"));
    CHECK(!cinvite_token_text_valid("0123456789abcdef0123456789abcde"));
    CHECK(!cinvite_token_text_valid("0123456789abcdef0123456789abcdef0"));
    CHECK(!cinvite_token_text_valid("0123456789abcdef0123456789abcdeg"));
    CHECK(!cinvite_token_text_valid("0123456789abcdef 123456789abcdef"));
    CHECK(!cinvite_token_text_valid("\xef\xbc\x91"
                                    "123456789abcdef0123456789abcd"));
    CHECK(!cinvite_token_text_valid(""));
    CHECK(!cinvite_token_text_valid(NULL));
}

TL_MAIN(T(test_invites), T(test_token_text))
