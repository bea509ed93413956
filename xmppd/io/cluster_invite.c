/* cluster_invite.c: `xmpp cluster invite`: the edge of the join tokens,
 * whose decisions are core/cinvite.c: it draws the token's random bytes
 * and the time.  Contract in cluster.h. */
#include "cluster_int.h"

#include <sodium.h>

#include "err.h"
#include "node_int.h"

int cluster_invite(struct node *n, uint64_t ttl_ms, char *token, size_t len)
{
    unsigned char tok[CLUSTER_TOKEN_BYTES];
    int rc;

    if (n->cluster == NULL || n->cluster->pm == NULL)
        return XE_STATE;
    if (len < CLUSTER_TOKEN_HEX + 1)
        return XE_INVAL;
    randombytes_buf(tok, sizeof tok);
    rc = cinvite_add(&n->cluster->invites, tok, cluster__now_ms(n), ttl_ms);
    if (rc == 0)
        sodium_bin2hex(token, len, tok, sizeof tok);
    sodium_memzero(tok, sizeof tok);
    return rc;
}
