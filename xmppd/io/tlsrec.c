/* tlsrec.c: the TLS 1.3 record layer after the handshake (contract in
 * tlsrec.h).
 *
 * One EVP_CIPHER_CTX serves every session (the daemon runs one loop on one
 * thread), so a session holds keys, not OpenSSL cipher contexts (about
 * 1 KiB each).  It is keyed again when a record of another key comes,
 * and only given a new nonce while records of one key follow each other
 * (a large write, a burst read): callgrind, 200-byte records, AES-128-GCM,
 * sealed and opened: 13,000 instructions per record keyed each time,
 * 8,200 with a context per direction (docs/benchmarks.md, "Session 7"). */
#include "tlsrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "err.h"

#define TAG_LEN 16 /* all three AEADs: RFC 5116 §5.1, RFC 8439 §2.8 */
#define IV_LEN 12  /* RFC 8446 §5.3: max(8 bytes, N_MIN) = 12 */
#define KEY_MAX 32
#define HDR_LEN 5

/* RFC 8446 §5.1 ContentType. */
enum {
    CT_CHANGE_CIPHER_SPEC = 20,
    CT_ALERT = 21,
    CT_HANDSHAKE = 22,
    CT_APPLICATION_DATA = 23,
};

/* RFC 8446 §6 AlertDescription, the ones we send. */
enum {
    AD_CLOSE_NOTIFY = 0,
    AD_UNEXPECTED_MESSAGE = 10,
    AD_BAD_RECORD_MAC = 20,
    AD_RECORD_OVERFLOW = 22,
    AD_ILLEGAL_PARAMETER = 47,
    AD_DECODE_ERROR = 50,
    AD_INTERNAL_ERROR = 80,
    AD_USER_CANCELED = 90,
};

#define HS_KEY_UPDATE 24 /* RFC 8446 §4 HandshakeType key_update */
#define KEY_UPDATE_LEN 5 /* type, uint24 length 1, request_update */

/* Our KeyUpdate comes well before the AES-GCM limit of 2^24.5 full records
 * per key (RFC 8446 §5.5), and so long before a sequence number could wrap
 * (§5.3). */
#define TX_REKEY_AT (UINT64_C(1) << 24)

struct suite {
    uint16_t id;
    const char *cipher; /* EVP name */
    const char *digest; /* HKDF hash */
    size_t key_len, hash_len;
};

static const struct suite suites[] = {
    {0x1301, "AES-128-GCM", "SHA256", 16, 32},
    {0x1302, "AES-256-GCM", "SHA384", 32, 48},
    {0x1303, "ChaCha20-Poly1305", "SHA256", 32, 32},
};
#define NSUITES (sizeof suites / sizeof suites[0])

/* One direction's traffic keys (RFC 8446 §7.3). */
struct dir {
    unsigned char secret[TLSREC_MAX_SECRET];
    unsigned char key[KEY_MAX];
    unsigned char iv[IV_LEN];
    uint64_t seq;
    uint64_t key_id; /* unique per key derived in this process */
};

struct tlsrec {
    const struct suite *s;
    struct dir rx, tx;
    struct buf in;              /* ciphertext of an incomplete record */
    uint8_t hs[KEY_UPDATE_LEN]; /* a KeyUpdate split across records */
    uint8_t hs_len;
    bool failed, closed, peer_closed;
};

/* ---- OpenSSL objects shared by all sessions ---- */

static EVP_CIPHER *ciphers[NSUITES];
/* HMAC with each suite's hash set and no key: copied for each
 * HKDF-Expand, so that no key stays in a shared context. */
static EVP_MAC_CTX *hmacs[NSUITES];
static EVP_CIPHER_CTX *scratch;
/* Hash("") of each suite's hash (RFC 8446 §7.5: the exporter's contexts). */
static unsigned char empty_hash[NSUITES][TLSREC_MAX_SECRET];
static bool have_empty_hash[NSUITES];
/* The key scratch holds (0: none) and its direction (1 encrypt, 0
 * decrypt); key ids count up, so a freed session's key is never taken for
 * a new one at the same address. */
static uint64_t scratch_key, last_key_id;
static int scratch_enc = -1;

static size_t suite_index(const struct suite *s)
{
    return (size_t)(s - suites);
}

/* hmac_template makes the HMAC context of s's hash; NULL: out of memory. */
static EVP_MAC_CTX *hmac_template(const struct suite *s)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM p[2];

    EVP_MAC_free(mac); /* the context holds its own reference */
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)s->digest, 0);
    p[1] = OSSL_PARAM_construct_end();
    if (c != NULL && EVP_MAC_CTX_set_params(c, p) != 1) {
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* shared fetches the cipher and the HMAC of s once (explicit fetches
 * spare OpenSSL 3 a lookup per record and per key) and makes the shared
 * cipher context. */
static int shared(const struct suite *s)
{
    size_t i = suite_index(s);

    if (ciphers[i] == NULL)
        ciphers[i] = EVP_CIPHER_fetch(NULL, s->cipher, NULL);
    if (hmacs[i] == NULL)
        hmacs[i] = hmac_template(s);
    if (scratch == NULL)
        scratch = EVP_CIPHER_CTX_new();
    if (!have_empty_hash[i]) {
        EVP_MD *md = EVP_MD_fetch(NULL, s->digest, NULL);
        unsigned int n = 0;

        have_empty_hash[i] = md != NULL &&
                             EVP_Digest("", 0, empty_hash[i], &n, md, NULL) == 1 &&
                             n == s->hash_len;
        EVP_MD_free(md);
    }
    return ciphers[i] != NULL && hmacs[i] != NULL && scratch != NULL && have_empty_hash[i]
               ? 0
               : XE_TLS;
}

/* cipher_init readies scratch to seal (enc 1) or open (enc 0) one record
 * under d's key with nonce iv; 1 or 0 as EVP. */
static int cipher_init(const struct tlsrec *r, const struct dir *d, int enc,
                       const unsigned char *iv)
{
    if (scratch_key == d->key_id && scratch_enc == enc)
        return EVP_CipherInit_ex(scratch, NULL, NULL, NULL, iv, enc);
    scratch_key = 0;
    if (EVP_CipherInit_ex(scratch, ciphers[suite_index(r->s)], NULL, d->key, iv, enc) !=
        1)
        return 0;
    scratch_key = d->key_id;
    scratch_enc = enc;
    return 1;
}

/* forget_key wipes scratch if it holds d's key (d is being freed or
 * replaced). */
static void forget_key(const struct dir *d)
{
    if (scratch != NULL && scratch_key != 0 && scratch_key == d->key_id) {
        EVP_CIPHER_CTX_reset(scratch);
        scratch_key = 0;
        scratch_enc = -1;
    }
}

/* ---- key schedule ---- */

/* expand_label_ctx is HKDF-Expand-Label(secret, label, context, out_len)
 * of RFC 8446 §7.1 (ctx_len bytes of context, at most 255):
 *     struct { uint16 length; opaque label<7..255> = "tls13 " + Label;
 *              opaque context<0..255>; } HkdfLabel;
 * Every output here (keys, IVs, secrets, the exporter value) is at most one
 * hash long, so HKDF-Expand is its first block, T(1) = HMAC-Hash(PRK,
 * info | 0x01) (RFC 5869 §2.3): one HMAC on a copy of the suite's
 * context, instead of an EVP_KDF context that fetches the digest by name
 * each time (callgrind: 17,000 instructions per call instead of 21,000;
 * six calls per login, docs/benchmarks.md "Session 8"). */
static int expand_label_ctx(const struct suite *s, const unsigned char *secret,
                            const char *label, const unsigned char *ctx, size_t ctx_len,
                            unsigned char *out, size_t out_len)
{
    static const unsigned char one = 1;
    unsigned char info[2 + 1 + 255 + 1 + 255], t1[EVP_MAX_MD_SIZE];
    size_t ll = strlen(label), n = 0, t1_len = 0;
    EVP_MAC_CTX *k;
    int ok;

    if (6 + ll > 255 || ctx_len > 255 || out_len > s->hash_len)
        return XE_INVAL;
    info[n++] = (unsigned char)(out_len >> 8);
    info[n++] = (unsigned char)out_len;
    info[n++] = (unsigned char)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = (unsigned char)ctx_len;
    if (ctx_len > 0)
        memcpy(info + n, ctx, ctx_len);
    n += ctx_len;
    k = EVP_MAC_CTX_dup(hmacs[suite_index(s)]);
    if (k == NULL)
        return XE_NOMEM;
    ok = EVP_MAC_init(k, secret, s->hash_len, NULL) == 1 &&
         EVP_MAC_update(k, info, n) == 1 && EVP_MAC_update(k, &one, 1) == 1 &&
         EVP_MAC_final(k, t1, &t1_len, sizeof t1) == 1 && t1_len == s->hash_len;
    EVP_MAC_CTX_free(k); /* wipes the key */
    if (ok)
        memcpy(out, t1, out_len);
    OPENSSL_cleanse(t1, sizeof t1);
    ERR_clear_error();
    return ok ? 0 : XE_TLS;
}

/* expand_label is HKDF-Expand-Label(secret, label, "", out_len). */
static int expand_label(const struct suite *s, const unsigned char *secret,
                        const char *label, unsigned char *out, size_t out_len)
{
    return expand_label_ctx(s, secret, label, NULL, 0, out, out_len);
}

/* set_keys derives d's key and iv from d's secret and restarts its
 * sequence (RFC 8446 §7.3, §5.3). */
static int set_keys(const struct suite *s, struct dir *d)
{
    int rc;

    forget_key(d);
    d->key_id = ++last_key_id;
    rc = expand_label(s, d->secret, "key", d->key, s->key_len);
    if (rc == 0)
        rc = expand_label(s, d->secret, "iv", d->iv, IV_LEN);
    d->seq = 0;
    return rc;
}

/* next_secret moves d to the next generation (RFC 8446 §7.2:
 * application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N,
 * "traffic upd", "", Hash.length)). */
static int next_secret(const struct suite *s, struct dir *d)
{
    unsigned char next[TLSREC_MAX_SECRET];
    int rc = expand_label(s, d->secret, "traffic upd", next, s->hash_len);

    if (rc == 0) {
        memcpy(d->secret, next, s->hash_len);
        rc = set_keys(s, d);
    }
    OPENSSL_cleanse(next, sizeof next);
    return rc;
}

/* nonce is the per-record nonce of RFC 8446 §5.3: the 64-bit sequence
 * number, big-endian and left-padded to the IV length, XORed with the IV. */
static void nonce(const struct dir *d, unsigned char out[IV_LEN])
{
    memcpy(out, d->iv, IV_LEN);
    for (int i = 0; i < 8; i++)
        out[IV_LEN - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

/* ---- sessions ---- */

/* find_suite is the suite numbered id, or NULL. */
static const struct suite *find_suite(uint16_t id)
{
    for (size_t i = 0; i < NSUITES; i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

bool tlsrec_suite_ok(uint16_t suite, size_t *secret_len)
{
    const struct suite *s = find_suite(suite);

    if (s != NULL && secret_len != NULL)
        *secret_len = s->hash_len;
    return s != NULL;
}

int tlsrec_exporter(uint16_t suite, const unsigned char *secret, size_t secret_len,
                    const char *label, unsigned char *out, size_t out_len)
{
    const struct suite *s = find_suite(suite);
    unsigned char derived[TLSREC_MAX_SECRET];
    int rc;

    if (s == NULL || secret_len != s->hash_len)
        return XE_INVAL;
    rc = shared(s);
    /* RFC 8446 §7.5: TLS-Exporter(label, context_value, key_length) =
     *     HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter",
     *                       Hash(context_value), key_length)
     * with Derive-Secret(Secret, Label, "") = HKDF-Expand-Label(Secret,
     * Label, Hash(""), Hash.length) (§7.1) and an empty context_value. */
    if (rc == 0)
        rc = expand_label_ctx(s, secret, label, empty_hash[suite_index(s)], s->hash_len,
                              derived, s->hash_len);
    if (rc == 0)
        rc = expand_label_ctx(s, derived, "exporter", empty_hash[suite_index(s)],
                              s->hash_len, out, out_len);
    OPENSSL_cleanse(derived, sizeof derived);
    return rc;
}

int tlsrec_new(uint16_t suite, const unsigned char *rx, const unsigned char *tx,
               size_t secret_len, struct tlsrec **out)
{
    const struct suite *s = find_suite(suite);
    struct tlsrec *r;
    int rc;

    *out = NULL;
    if (s == NULL || secret_len != s->hash_len)
        return XE_INVAL;
    rc = shared(s);
    if (rc < 0)
        return rc;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return XE_NOMEM;
    r->s = s;
    memcpy(r->rx.secret, rx, secret_len);
    memcpy(r->tx.secret, tx, secret_len);
    rc = set_keys(s, &r->rx);
    if (rc == 0)
        rc = set_keys(s, &r->tx);
    if (rc < 0) {
        tlsrec_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void tlsrec_free(struct tlsrec *r)
{
    if (r == NULL)
        return;
    forget_key(&r->rx);
    forget_key(&r->tx);
    if (r->in.data != NULL)
        OPENSSL_cleanse(r->in.data, r->in.cap);
    buf_free(&r->in);
    OPENSSL_cleanse(r, sizeof *r);
    free(r);
}

bool tlsrec_failed(const struct tlsrec *r)
{
    return r->failed;
}

void tlsrec__set_seq(struct tlsrec *r, uint64_t rx, uint64_t tx)
{
    r->rx.seq = rx;
    r->tx.seq = tx;
}

/* ---- protecting records ---- */

/* seal appends one protected record (RFC 8446 §5.2): the header
 * opaque_type 23, legacy_record_version 0x0303 and length, then the AEAD
 * of TLSInnerPlaintext = content || ctype || pad zeros, with the header as
 * additional data. */
static int seal(struct tlsrec *r, uint8_t ctype, const void *data, size_t len, size_t pad,
                struct buf *out)
{
    size_t inner = len + (ctype != 0 ? 1 : 0) + pad, clen = inner + TAG_LEN;
    unsigned char iv[IV_LEN], *h, *body;
    int n = 0, m = 0;

    /* Our own records are at most 2^14 + 1 bytes inside (tlsrec_write);
     * tests make larger ones up to the ciphertext limit. */
    if (clen > TLSREC_MAX_CIPHER)
        return XE_INVAL;
    if (r->tx.seq == UINT64_MAX)
        return XE_TLS; /* RFC 8446 §5.3: never wrap */
    if (buf_reserve(out, HDR_LEN + clen) < 0)
        return XE_NOMEM;
    h = (unsigned char *)out->data + out->len;
    body = h + HDR_LEN;
    h[0] = CT_APPLICATION_DATA;
    h[1] = 0x03;
    h[2] = 0x03;
    h[3] = (unsigned char)(clen >> 8);
    h[4] = (unsigned char)clen;
    if (len > 0)
        memcpy(body, data, len);
    if (ctype != 0)
        body[len] = ctype;
    memset(body + len + (ctype != 0 ? 1 : 0), 0, pad);
    nonce(&r->tx, iv);
    if (cipher_init(r, &r->tx, 1, iv) != 1 ||
        EVP_EncryptUpdate(scratch, NULL, &n, h, HDR_LEN) != 1 ||
        EVP_EncryptUpdate(scratch, body, &n, body, (int)inner) != 1 ||
        EVP_EncryptFinal_ex(scratch, body + n, &m) != 1 || (size_t)(n + m) != inner ||
        EVP_CIPHER_CTX_ctrl(scratch, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, body + inner) != 1) {
        OPENSSL_cleanse(body, inner);
        ERR_clear_error();
        return XE_TLS;
    }
    r->tx.seq++;
    out->len += HDR_LEN + clen;
    out->data[out->len] = '\0';
    return 0;
}

int tlsrec__seal(struct tlsrec *r, uint8_t ctype, const void *data, size_t len,
                 size_t pad, struct buf *out)
{
    return seal(r, ctype, data, len, pad, out);
}

/* send_key_update sends our KeyUpdate with update_not_requested and moves
 * to the next send key (RFC 8446 §4.6.3: the new key applies to what
 * follows it). */
static int send_key_update(struct tlsrec *r, struct buf *out)
{
    static const uint8_t ku[KEY_UPDATE_LEN] = {HS_KEY_UPDATE, 0, 0, 1, 0};
    int rc = seal(r, CT_HANDSHAKE, ku, sizeof ku, 0, out);

    return rc < 0 ? rc : next_secret(r->s, &r->tx);
}

/* seal_data protects one record of application data, updating our key
 * first once it has protected TX_REKEY_AT records. */
static int seal_data(struct tlsrec *r, const char *data, size_t len, struct buf *out)
{
    if (r->tx.seq >= TX_REKEY_AT) {
        int rc = send_key_update(r, out);
        if (rc < 0)
            return rc;
    }
    return seal(r, CT_APPLICATION_DATA, data, len, 0, out);
}

int tlsrec_write(struct tlsrec *r, const char *data, size_t len, struct buf *out)
{
    if (r->failed || r->closed)
        return XE_STATE;
    while (len > 0) {
        size_t n = len > TLSREC_MAX_PLAIN ? TLSREC_MAX_PLAIN : len;
        int rc = seal_data(r, data, n, out);
        if (rc < 0) {
            if (rc != XE_NOMEM)
                r->failed = true;
            return rc;
        }
        data += n;
        len -= n;
    }
    return 0;
}

/* send_alert sends a two-byte alert, level fatal (2) except close_notify
 * and user_canceled (warning, 1: RFC 8446 §6). */
static void send_alert(struct tlsrec *r, uint8_t desc, struct buf *out)
{
    uint8_t a[2] = {desc == AD_CLOSE_NOTIFY || desc == AD_USER_CANCELED ? 1 : 2, desc};

    (void)seal(r, CT_ALERT, a, sizeof a, 0, out);
}

void tlsrec_close(struct tlsrec *r, struct buf *out)
{
    if (r->closed || r->failed)
        return;
    r->closed = true;
    send_alert(r, AD_CLOSE_NOTIFY, out);
}

/* ---- reading records ---- */

/* alert_name names an AlertDescription as RFC 8446 §6 spells it. */
static const char *alert_name(uint8_t d)
{
    switch (d) {
    case 0:
        return "close_notify";
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 22:
        return "record_overflow";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 43:
        return "unsupported_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 48:
        return "unknown_ca";
    case 49:
        return "access_denied";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 70:
        return "protocol_version";
    case 71:
        return "insufficient_security";
    case 80:
        return "internal_error";
    case 86:
        return "inappropriate_fallback";
    case 90:
        return "user_canceled";
    case 109:
        return "missing_extension";
    case 110:
        return "unsupported_extension";
    case 112:
        return "unrecognized_name";
    case 113:
        return "bad_certificate_status_response";
    case 115:
        return "unknown_psk_identity";
    case 116:
        return "certificate_required";
    case 120:
        return "no_application_protocol";
    }
    return "unknown alert";
}

/* fail marks r failed, sends alert desc to the peer (encrypted, RFC 8446
 * §6.2) unless desc is -1 (the peer's own fatal alert ended it) and writes
 * why to err. */
static int fail(struct tlsrec *r, int desc, struct buf *out, char *err, size_t errlen,
                const char *why)
{
    if (desc >= 0 && !r->closed)
        send_alert(r, (uint8_t)desc, out);
    r->failed = true;
    if (desc >= 0)
        snprintf(err, errlen, "%s: %s", alert_name((uint8_t)desc), why);
    else
        snprintf(err, errlen, "%s", why);
    return XE_TLS;
}

/* open_record decrypts the record h (HDR_LEN + clen bytes, in place) with
 * the receive key; *inner, *inner_len get TLSInnerPlaintext. */
static int open_record(struct tlsrec *r, unsigned char *h, size_t clen,
                       unsigned char **inner, size_t *inner_len)
{
    unsigned char iv[IV_LEN], *body = h + HDR_LEN;
    size_t n = clen - TAG_LEN;
    int a = 0, b = 0, ok;

    nonce(&r->rx, iv);
    ok = cipher_init(r, &r->rx, 0, iv) == 1 &&
         EVP_DecryptUpdate(scratch, NULL, &a, h, HDR_LEN) == 1 &&
         EVP_DecryptUpdate(scratch, body, &a, body, (int)n) == 1 &&
         EVP_CIPHER_CTX_ctrl(scratch, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, body + n) == 1 &&
         EVP_DecryptFinal_ex(scratch, body + a, &b) == 1 && (size_t)(a + b) == n;
    ERR_clear_error();
    if (!ok)
        return XE_TLS;
    *inner = body;
    *inner_len = n;
    return 0;
}

/* handshake_bytes takes n bytes of handshake content.  After the handshake
 * only KeyUpdate is expected (RFC 8446 §4.6: NewSessionTicket goes from
 * server to client, post-handshake authentication is never requested);
 * its five bytes may come in pieces. */
static int handshake_bytes(struct tlsrec *r, const uint8_t *p, size_t n, struct buf *out,
                           char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        r->hs[r->hs_len++] = p[i];
        if (r->hs_len == 4) {
            if (r->hs[0] != HS_KEY_UPDATE) {
                char why[64];
                snprintf(why, sizeof why, "handshake message %u after the handshake",
                         (unsigned)r->hs[0]);
                return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen, why);
            }
            if (r->hs[1] != 0 || r->hs[2] != 0 || r->hs[3] != 1)
                return fail(r, AD_DECODE_ERROR, out, err, errlen,
                            "KeyUpdate of a length other than 1");
        }
        if (r->hs_len < KEY_UPDATE_LEN)
            continue;
        r->hs_len = 0;
        /* RFC 8446 §4.6.3: request_update is 0 or 1, else illegal_parameter. */
        if (r->hs[4] > 1)
            return fail(r, AD_ILLEGAL_PARAMETER, out, err, errlen,
                        "KeyUpdate with an unknown request_update");
        /* RFC 8446 §5.1: a handshake message that precedes a key change
         * must end its record. */
        if (i + 1 != n)
            return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                        "data after a KeyUpdate in the same record");
        if (next_secret(r->s, &r->rx) < 0)
            return fail(r, AD_INTERNAL_ERROR, out, err, errlen, "key update failed");
        /* update_requested: answer with ours before any more data; not
         * after our close_notify (nothing follows it). */
        if (r->hs[4] == 1 && !r->closed) {
            int rc = send_key_update(r, out);
            if (rc == XE_NOMEM)
                return rc;
            if (rc < 0)
                return fail(r, AD_INTERNAL_ERROR, out, err, errlen, "key update failed");
        }
    }
    return 0;
}

/* one_record handles the complete record h (HDR_LEN + clen bytes, clen
 * already checked against TLSREC_MAX_CIPHER). */
static int one_record(struct tlsrec *r, unsigned char *h, size_t clen, struct buf *plain,
                      struct buf *out, char *err, size_t errlen)
{
    unsigned char *p;
    size_t n;
    uint8_t ct;

    /* RFC 8446 §5: change_cipher_spec is dropped only before the peer's
     * Finished; every protected record has opaque_type application_data. */
    if (h[0] == CT_CHANGE_CIPHER_SPEC)
        return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                    "change_cipher_spec record after the handshake");
    if (h[0] != CT_APPLICATION_DATA)
        return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                    "unprotected record after the handshake");
    /* RFC 8446 §5.3: a sequence number never wraps. */
    if (r->rx.seq == UINT64_MAX)
        return fail(r, AD_INTERNAL_ERROR, out, err, errlen,
                    "the peer's sequence number would wrap");
    /* RFC 8446 §5.2: a record that does not deprotect is bad_record_mac. */
    if (clen < TAG_LEN || open_record(r, h, clen, &p, &n) < 0)
        return fail(r, AD_BAD_RECORD_MAC, out, err, errlen, "a record failed to decrypt");
    r->rx.seq++;
    /* RFC 8446 §5.4: TLSInnerPlaintext is at most 2^14 + 1 bytes. */
    if (n > TLSREC_MAX_PLAIN + 1)
        return fail(r, AD_RECORD_OVERFLOW, out, err, errlen, "plaintext over 2^14 bytes");
    /* RFC 8446 §5.4: the content type is the last non-zero byte; none at
     * all is unexpected_message. */
    while (n > 0 && p[n - 1] == 0)
        n--;
    if (n == 0)
        return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                    "a record with no content type");
    ct = p[--n];
    /* RFC 8446 §5.1: handshake messages are not interleaved with other
     * record types. */
    if (r->hs_len > 0 && ct != CT_HANDSHAKE)
        return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                    "a record inside a split handshake message");
    switch (ct) {
    case CT_APPLICATION_DATA:
        /* Zero-length application data is allowed (RFC 8446 §5.1). */
        return buf_append(plain, p, n) < 0 ? XE_NOMEM : 0;
    case CT_HANDSHAKE:
        /* RFC 8446 §5.1: no zero-length handshake fragments. */
        if (n == 0)
            return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                        "an empty handshake record");
        return handshake_bytes(r, p, n, out, err, errlen);
    case CT_ALERT:
        /* RFC 8446 §5.1: exactly one alert per record, never empty. */
        if (n == 0)
            return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                        "an empty alert record");
        if (n != 2)
            return fail(r, AD_DECODE_ERROR, out, err, errlen,
                        "an alert of the wrong size");
        if (p[1] == AD_CLOSE_NOTIFY) {
            /* RFC 8446 §6.1: answer with ours, ignore what follows. */
            r->peer_closed = true;
            tlsrec_close(r, out);
            return XE_CLOSED;
        }
        if (p[1] == AD_USER_CANCELED)
            return 0; /* RFC 8446 §6.1: a close_notify follows */
        {
            char why[96];
            /* RFC 8446 §6: every other alert ends the connection, whatever
             * its level says. */
            snprintf(why, sizeof why, "peer sent a fatal alert: %s", alert_name(p[1]));
            return fail(r, -1, out, err, errlen, why);
        }
    default:
        return fail(r, AD_UNEXPECTED_MESSAGE, out, err, errlen,
                    "a record of an unknown content type");
    }
}

int tlsrec_feed(struct tlsrec *r, const char *data, size_t len, struct buf *plain,
                struct buf *out, char *err, size_t errlen)
{
    size_t off = 0;
    int rc = 0;

    if (r->failed)
        return XE_TLS;
    if (r->peer_closed)
        return XE_CLOSED;
    if (len > 0 && buf_append(&r->in, data, len) < 0)
        return XE_NOMEM;
    while (r->in.len - off >= HDR_LEN) {
        unsigned char *h = (unsigned char *)r->in.data + off;
        size_t clen = (size_t)h[3] << 8 | h[4];

        /* RFC 8446 §5.2: checked before the record is waited for, so that
         * at most one record is ever buffered. */
        if (clen > TLSREC_MAX_CIPHER) {
            rc = fail(r, AD_RECORD_OVERFLOW, out, err, errlen,
                      "record over 2^14 + 256 bytes");
            break;
        }
        if (r->in.len - off < HDR_LEN + clen)
            break;
        rc = one_record(r, h, clen, plain, out, err, errlen);
        off += HDR_LEN + clen;
        if (rc < 0)
            break;
    }
    if (r->in.data == NULL)
        return rc;
    if (rc == 0 && off > 0 && off < r->in.len) {
        /* Only the incomplete record stays, in a buffer of its size (a
         * large read would otherwise keep its whole size). */
        struct buf rest = {0};
        if (buf_append(&rest, r->in.data + off, r->in.len - off) < 0) {
            rc = XE_NOMEM;
        } else {
            OPENSSL_cleanse(r->in.data, r->in.cap);
            buf_free(&r->in);
            r->in = rest;
            return 0;
        }
    }
    /* Decrypted bytes are wiped before the buffer goes. */
    if (rc < 0 || off == r->in.len) {
        OPENSSL_cleanse(r->in.data, r->in.cap);
        buf_free(&r->in);
    }
    return rc;
}
