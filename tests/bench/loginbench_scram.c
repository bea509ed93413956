/* loginbench_scram.c: the client side of SCRAM (RFC 5802 §3, §5), without
 * channel binding (gs2 header "n,,"), for SCRAM-SHA-1 and SCRAM-SHA-256
 * (RFC 7677).  OpenSSL for PBKDF2, HMAC, hashes and base64; written for
 * the load tool, independent of the server's xmppd/core/scram.c. */
#include "loginbench.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const EVP_MD *md_of(const struct lb_scram *s)
{
    return s->sha256 ? EVP_sha256() : EVP_sha1();
}

static size_t hlen_of(const struct lb_scram *s)
{
    return s->sha256 ? 32 : 20;
}

static void hmac(const struct lb_scram *s, const unsigned char *key, size_t klen,
                 const void *msg, size_t mlen, unsigned char *out)
{
    unsigned int n = 0;
    HMAC(md_of(s), key, (int)klen, msg, mlen, out, &n);
}

/* Base64 of len bytes into out (cap bytes with the NUL); -1 if too small. */
static int b64_enc(const void *in, size_t len, char *out, size_t cap)
{
    if (4 * ((len + 2) / 3) + 1 > cap)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return 0;
}

/* Decodes base64 (no whitespace); returns the byte count or -1. */
static int b64_dec(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    return n;
}

int lb_scram_first(struct lb_scram *s, int sha256, const char *user, const char *password,
                   struct lb_scram_keys *keys, const char *cnonce, char *out, size_t cap)
{
    unsigned char rnd[16];
    s->sha256 = sha256;
    s->user = user;
    s->password = password;
    s->keys = keys;
    if (cnonce != NULL) {
        if (strlen(cnonce) >= sizeof(s->cnonce))
            return -1;
        strcpy(s->cnonce, cnonce);
    } else {
        RAND_bytes(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(s->cnonce + 2 * i, 3, "%02x", rnd[i]);
    }
    /* Account names of the bench have no ',' or '=' (RFC 5802 §5.1 would
     * escape them as =2C and =3D). */
    int n = snprintf(s->first_bare, sizeof(s->first_bare), "n=%s,r=%s", user, s->cnonce);
    if (n < 0 || (size_t)n >= sizeof(s->first_bare))
        return -1;
    char msg[300];
    n = snprintf(msg, sizeof(msg), "n,,%s", s->first_bare);
    return b64_enc(msg, (size_t)n, out, cap);
}

/* The value of attribute `k` in a SCRAM message (k=value,...), or NULL. */
static const char *attr(const char *msg, char k, size_t *len)
{
    const char *p = msg;
    while (*p) {
        if (p[0] == k && p[1] == '=') {
            const char *e = strchr(p, ',');
            *len = e ? (size_t)(e - p - 2) : strlen(p + 2);
            return p + 2;
        }
        p = strchr(p, ',');
        if (p == NULL)
            break;
        p++;
    }
    return NULL;
}

int lb_scram_final(struct lb_scram *s, const char *b64, size_t len, char *out, size_t cap)
{
    char sf[512];
    int n = b64_dec(b64, len, (unsigned char *)sf, sizeof(sf) - 1);
    if (n <= 0)
        return -1;
    sf[n] = '\0';
    size_t rl = 0, sl = 0, il = 0;
    const char *r = attr(sf, 'r', &rl), *salt = attr(sf, 's', &sl),
               *it = attr(sf, 'i', &il);
    if (r == NULL || salt == NULL || it == NULL || rl <= strlen(s->cnonce) ||
        memcmp(r, s->cnonce, strlen(s->cnonce)) != 0 || sl >= sizeof(s->keys->salt_b64))
        return -1;
    char ibuf[16];
    if (il == 0 || il >= sizeof(ibuf))
        return -1;
    memcpy(ibuf, it, il);
    ibuf[il] = '\0';
    unsigned long iter = strtoul(ibuf, NULL, 10);
    if (iter == 0 || iter > 10000000)
        return -1;
    struct lb_scram_keys *k = s->keys;
    size_t hl = hlen_of(s);
    if (!k->valid || k->iter != iter || strlen(k->salt_b64) != sl ||
        memcmp(k->salt_b64, salt, sl) != 0) {
        unsigned char sb[96], salted[LB_SCRAM_MAX_KEY];
        int sn = b64_dec(salt, sl, sb, sizeof(sb));
        if (sn <= 0)
            return -1;
        /* SaltedPassword := Hi(password, salt, i) (RFC 5802 §3) */
        if (PKCS5_PBKDF2_HMAC(s->password, (int)strlen(s->password), sb, sn, (int)iter,
                              md_of(s), (int)hl, salted) != 1)
            return -1;
        hmac(s, salted, hl, "Client Key", 10, k->client_key);
        unsigned int dl = 0;
        EVP_Digest(k->client_key, hl, k->stored_key, &dl, md_of(s), NULL);
        hmac(s, salted, hl, "Server Key", 10, k->server_key);
        memcpy(k->salt_b64, salt, sl);
        k->salt_b64[sl] = '\0';
        k->iter = (unsigned)iter;
        k->valid = 1;
    }
    /* "biws" is base64("n,,"): no channel binding, no authzid. */
    char without[300];
    int wn = snprintf(without, sizeof(without), "c=biws,r=%.*s", (int)rl, r);
    if (wn < 0 || (size_t)wn >= sizeof(without))
        return -1;
    int an = snprintf(s->auth_message, sizeof(s->auth_message), "%s,%s,%s", s->first_bare,
                      sf, without);
    if (an < 0 || (size_t)an >= sizeof(s->auth_message))
        return -1;
    unsigned char sig[LB_SCRAM_MAX_KEY], proof[LB_SCRAM_MAX_KEY];
    hmac(s, k->stored_key, hl, s->auth_message, (size_t)an, sig);
    for (size_t i = 0; i < hl; i++)
        proof[i] = k->client_key[i] ^ sig[i];
    hmac(s, k->server_key, hl, s->auth_message, (size_t)an, s->server_sig);
    char pb[64], msg[400];
    if (b64_enc(proof, hl, pb, sizeof(pb)) < 0)
        return -1;
    int mn = snprintf(msg, sizeof(msg), "%s,p=%s", without, pb);
    if (mn < 0 || (size_t)mn >= sizeof(msg))
        return -1;
    return b64_enc(msg, (size_t)mn, out, cap);
}

int lb_scram_verify(struct lb_scram *s, const char *b64, size_t len)
{
    char sf[256];
    int n = b64_dec(b64, len, (unsigned char *)sf, sizeof(sf) - 1);
    if (n <= 0)
        return -1;
    sf[n] = '\0';
    size_t vl = 0;
    const char *v = attr(sf, 'v', &vl);
    unsigned char sig[64];
    if (v == NULL)
        return -1;
    int sn = b64_dec(v, vl, sig, sizeof(sig));
    if (sn != (int)hlen_of(s) || CRYPTO_memcmp(sig, s->server_sig, (size_t)sn) != 0)
        return -1;
    return 0;
}
