/* cluster_invite.c: join tokens, an admin's consent beyond a certificate
 * from the trust bundle (docs/cluster.md "Join").
 * `xmpp cluster invite` on a member makes a one-time token that expires;
 * `xmpp cluster join <addr> <token>` on the new node presents it to that
 * member, which refuses a join request without a valid one.
 *
 * Node-local: a token is good on the member that made it (the one the new
 * node dials), once, until it expires, and is lost when clustering stops
 * there.  Only a hash (BLAKE2b) of each token is kept; tokens are compared
 * in constant time and never logged.  Contract in cluster_int.h and
 * cluster.h. */
#include "cluster_int.h"

#include <string.h>

#include <sodium.h>

#include "err.h"
#include "node_int.h"

_Static_assert(sizeof((struct cinvite *)0)->hash == crypto_generichash_BYTES,
               "an invitation keeps a BLAKE2b hash");

static void hash_token(const unsigned char *tok, size_t len,
                       unsigned char out[crypto_generichash_BYTES])
{
    crypto_generichash(out, crypto_generichash_BYTES, tok, len, NULL, 0);
}

int cluster__invite_add(struct cluster *c, uint64_t now, uint64_t ttl_ms,
                        unsigned char tok[CLUSTER_TOKEN_BYTES])
{
    struct cinvite *slot = NULL;

    for (size_t i = 0; i < CLUSTER_MAX_INVITES; i++) {
        struct cinvite *v = &c->invites[i];
        if (v->live && !v->busy && now >= v->expires)
            sodium_memzero(v, sizeof *v); /* expired: its slot is free */
        if (!v->live && slot == NULL)
            slot = v;
    }
    if (slot == NULL)
        return XE_LIMIT;
    randombytes_buf(tok, CLUSTER_TOKEN_BYTES);
    hash_token(tok, CLUSTER_TOKEN_BYTES, slot->hash);
    slot->expires = now + ttl_ms;
    slot->live = true;
    slot->busy = false;
    return 0;
}

int cluster__invite_take(struct cluster *c, const unsigned char *tok, size_t len,
                         uint64_t now)
{
    unsigned char h[crypto_generichash_BYTES];
    int found = XE_AUTH;

    if (tok == NULL || len != CLUSTER_TOKEN_BYTES)
        return XE_AUTH;
    hash_token(tok, len, h);
    /* Every slot is compared, so that the time taken says nothing. */
    for (size_t i = 0; i < CLUSTER_MAX_INVITES; i++) {
        struct cinvite *v = &c->invites[i];
        bool same = sodium_memcmp(v->hash, h, sizeof h) == 0;
        if (same && v->live && !v->busy && now < v->expires && found < 0)
            found = (int)i;
    }
    sodium_memzero(h, sizeof h);
    if (found >= 0)
        c->invites[found].busy = true;
    return found;
}

void cluster__invite_settle(struct cluster *c, int slot, bool used)
{
    struct cinvite *v;

    if (slot < 0 || slot >= CLUSTER_MAX_INVITES)
        return;
    v = &c->invites[slot];
    if (used)
        sodium_memzero(v, sizeof *v);
    else
        v->busy = false;
}

int cluster_invite(struct node *n, uint64_t ttl_ms, char *token, size_t len)
{
    unsigned char tok[CLUSTER_TOKEN_BYTES];
    int rc;

    if (n->cluster == NULL || n->cluster->pm == NULL)
        return XE_STATE;
    if (len < CLUSTER_TOKEN_HEX + 1)
        return XE_INVAL;
    rc = cluster__invite_add(n->cluster, cluster__now_ms(n), ttl_ms, tok);
    if (rc == 0)
        sodium_bin2hex(token, len, tok, sizeof tok);
    sodium_memzero(tok, sizeof tok);
    return rc;
}
