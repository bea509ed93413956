/* cinvite.c: join tokens (cinvite.h). */
#include "cinvite.h"

#include <string.h>

#include <sodium.h>

#include "err.h"

_Static_assert(sizeof((struct cinvite_slot *)0)->hash == crypto_generichash_BYTES,
               "an invitation keeps a BLAKE2b hash");

static void hash_token(const unsigned char *tok, size_t len,
                       unsigned char out[crypto_generichash_BYTES])
{
    crypto_generichash(out, crypto_generichash_BYTES, tok, len, NULL, 0);
}

int cinvite_add(struct cinvites *t, const unsigned char tok[CINVITE_TOKEN_BYTES],
                uint64_t now, uint64_t ttl_ms)
{
    struct cinvite_slot *slot = NULL;

    for (size_t i = 0; i < CINVITE_MAX; i++) {
        struct cinvite_slot *v = &t->s[i];
        if (v->live && !v->busy && now >= v->expires)
            sodium_memzero(v, sizeof *v); /* expired: its slot is free */
        if (!v->live && slot == NULL)
            slot = v;
    }
    if (slot == NULL)
        return XE_LIMIT;
    hash_token(tok, CINVITE_TOKEN_BYTES, slot->hash);
    slot->expires = now + ttl_ms;
    slot->live = true;
    slot->busy = false;
    return 0;
}

int cinvite_take(struct cinvites *t, const unsigned char *tok, size_t len, uint64_t now)
{
    unsigned char h[crypto_generichash_BYTES];
    int found = XE_AUTH;

    if (tok == NULL || len != CINVITE_TOKEN_BYTES)
        return XE_AUTH;
    hash_token(tok, len, h);
    /* Every slot is compared, so that the time taken says nothing. */
    for (size_t i = 0; i < CINVITE_MAX; i++) {
        struct cinvite_slot *v = &t->s[i];
        bool same = sodium_memcmp(v->hash, h, sizeof h) == 0;
        if (same && v->live && !v->busy && now < v->expires && found < 0)
            found = (int)i;
    }
    sodium_memzero(h, sizeof h);
    if (found >= 0)
        t->s[found].busy = true;
    return found;
}

void cinvite_settle(struct cinvites *t, int slot, bool used)
{
    struct cinvite_slot *v;

    if (slot < 0 || slot >= CINVITE_MAX)
        return;
    v = &t->s[slot];
    if (used)
        sodium_memzero(v, sizeof *v);
    else
        v->busy = false;
}

void cinvite_clear(struct cinvites *t)
{
    sodium_memzero(t, sizeof *t);
}

bool cinvite_token_text_valid(const char *s)
{
    size_t i = 0;

    if (s == NULL)
        return false;
    for (; s[i] != '\0'; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return i == CINVITE_TOKEN_HEX;
}
