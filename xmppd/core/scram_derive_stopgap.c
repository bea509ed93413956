/* scram_derive_stopgap.c: a weak scram_derive (contract in scram.h) so that
 * `xmpp user add` builds and runs before scram.c lands on main.  The strong
 * definition in scram.c replaces this one at link time; delete this file
 * when scram.c is merged.
 *
 * RFC 5802 §2.2: Hi(str, salt, i) is PBKDF2 (RFC 8018) with HMAC as the
 * PRF and dkLen the hash's output length; §3 makes the keys from it. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "err.h"
#include "scram.h"

__attribute__((weak)) int scram_derive(enum scram_hash h, const void *password,
                                       size_t len, const unsigned char *salt,
                                       size_t salt_len, uint32_t iterations,
                                       unsigned char *stored_key,
                                       unsigned char *server_key)
{
    const EVP_MD *md = h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
    unsigned klen = h == SCRAM_SHA1 ? 20u : 32u;
    unsigned char salted[32], client_key[32];
    unsigned outlen = 0;
    int rc = XE_NOMEM;

    if (len == 0 || salt_len == 0 || iterations == 0 || len > INT32_MAX ||
        salt_len > INT32_MAX || iterations > INT32_MAX)
        return XE_INVAL;
    if (PKCS5_PBKDF2_HMAC(password, (int)len, salt, (int)salt_len, (int)iterations, md,
                          (int)klen, salted) != 1)
        goto out;
    /* ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey) */
    if (HMAC(md, salted, (int)klen, (const unsigned char *)"Client Key", 10, client_key,
             &outlen) == NULL ||
        EVP_Digest(client_key, klen, stored_key, NULL, md, NULL) != 1)
        goto out;
    /* ServerKey = HMAC(SaltedPassword, "Server Key") */
    if (HMAC(md, salted, (int)klen, (const unsigned char *)"Server Key", 10, server_key,
             &outlen) == NULL)
        goto out;
    rc = 0;
out:
    sodium_memzero(salted, sizeof salted);
    sodium_memzero(client_key, sizeof client_key);
    return rc;
}
