/* scram.c: the server side of SASL SCRAM (RFC 5802, RFC 7677), with channel
 * binding (RFC 5929 §4.1, RFC 9266) and XEP-0474 downgrade protection. */
#include "scram.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "err.h"
#include "precis.h"

/* Bounds on what a client may send (RFC 5802 leaves them open).  A username
 * of SCRAM_USER_MAX bytes escaped as "=2C" throughout, an authzid as long, a
 * nonce and extensions fit in SCRAM_MSG_MAX. */
#define SCRAM_MSG_MAX 8192
#define SCRAM_CNONCE_MAX 256 /* client nonce characters */
#define SCRAM_SNONCE_MAX 256 /* server nonce characters (test entry point) */
#define SCRAM_B64_MAX(n) (((n) + 2) / 3 * 4 + 1)

static const char scram_client_key[] = "Client Key"; /* RFC 5802 §3 */
static const char scram_server_key[] = "Server Key";

size_t scram_key_len(enum scram_hash h)
{
    return h == SCRAM_SHA1 ? 20 : 32;
}

const char *scram_mech_name(enum scram_hash h, bool plus)
{
    if (h == SCRAM_SHA1)
        return plus ? "SCRAM-SHA-1-PLUS" : "SCRAM-SHA-1";
    return plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
}

static const EVP_MD *scram_md(enum scram_hash h)
{
    return h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* OpenSSL 3 looks an algorithm up by name each time a digest or an HMAC
 * starts from EVP_sha256() or HMAC() (a lock, a string hash, the
 * provider's method store): three times per login.  A scram_algs holds
 * the digests fetched once and one keyed HMAC context per hash, which
 * EVP_MAC_init re-keys; its owner (srv) lends it to each exchange. */
struct scram_algs {
    EVP_MD *md[2];       /* SCRAM_SHA1, SCRAM_SHA256 */
    EVP_MAC_CTX *mac[2]; /* HMAC with md[i] set */
};

int scram_algs_new(struct scram_algs **out)
{
    struct scram_algs *a = calloc(1, sizeof *a);
    EVP_MAC *mac = NULL;
    OSSL_PARAM p[2];

    *out = NULL;
    if (a == NULL)
        return XE_NOMEM;
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL)
        goto err;
    for (int i = 0; i < 2; i++) {
        char *name = i == 0 ? (char *)"SHA1" : (char *)"SHA256";

        a->md[i] = EVP_MD_fetch(NULL, name, NULL);
        a->mac[i] = EVP_MAC_CTX_new(mac);
        if (a->md[i] == NULL || a->mac[i] == NULL)
            goto err;
        p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name, 0);
        p[1] = OSSL_PARAM_construct_end();
        if (EVP_MAC_CTX_set_params(a->mac[i], p) != 1)
            goto err;
    }
    EVP_MAC_free(mac); /* each context holds its own reference */
    *out = a;
    return 0;
err:
    EVP_MAC_free(mac);
    scram_algs_free(a);
    ERR_clear_error();
    return XE_NOMEM;
}

void scram_algs_free(struct scram_algs *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        EVP_MD_free(a->md[i]);
        EVP_MAC_CTX_free(a->mac[i]);
    }
    free(a);
}

/* sc_hash: out = H(data) (RFC 5802 §2.2); a (may be NULL) lends the
 * fetched digest. */
static int sc_hash(const struct scram_algs *a, enum scram_hash h, const void *data,
                   size_t len, unsigned char *out)
{
    const EVP_MD *md = a != NULL ? a->md[h == SCRAM_SHA1 ? 0 : 1] : scram_md(h);
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, md, NULL) != 1 || n != scram_key_len(h)) {
        ERR_clear_error();
        return XE_NOMEM;
    }
    return 0;
}

/* sc_hmac: out = HMAC(key, data) with H (RFC 2104); out has key_len(h).
 * a (may be NULL) lends a keyed context; without it HMAC() fetches. */
static int sc_hmac(const struct scram_algs *a, enum scram_hash h,
                   const unsigned char *key, size_t key_len, const void *data, size_t len,
                   unsigned char *out)
{
    EVP_MAC_CTX *c = a != NULL ? a->mac[h == SCRAM_SHA1 ? 0 : 1] : NULL;
    unsigned int un = 0;
    size_t n = 0;

    if (c == NULL) {
        if (key_len > INT_MAX ||
            HMAC(scram_md(h), key, (int)key_len, data, len, out, &un) == NULL ||
            un != scram_key_len(h))
            return XE_NOMEM;
        return 0;
    }
    if (EVP_MAC_init(c, key, key_len, NULL) != 1 || EVP_MAC_update(c, data, len) != 1 ||
        EVP_MAC_final(c, out, &n, scram_key_len(h)) != 1 || n != scram_key_len(h)) {
        ERR_clear_error();
        return XE_NOMEM;
    }
    return 0;
}

/* sc_b64_append appends the base64 (RFC 4648 §4, padded) of data to out. */
static int sc_b64_append(struct buf *out, const unsigned char *data, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    int rc = buf_reserve(out, n);

    if (rc < 0)
        return rc;
    sodium_bin2base64(out->data + out->len, n, data, len, sodium_base64_VARIANT_ORIGINAL);
    out->len += n - 1;
    return 0;
}

/* sc_b64_decode decodes exactly the base64 text s[0..len) (padded, no
 * whitespace) into out (cap bytes); XE_PROTO when it is not that. */
static int sc_b64_decode(const char *s, size_t len, unsigned char *out, size_t cap,
                         size_t *out_len)
{
    const char *end = NULL;

    if (len == 0 || len % 4 != 0)
        return XE_PROTO;
    if (sodium_base642bin(out, cap, s, len, NULL, out_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + len)
        return XE_PROTO;
    return 0;
}

int scram_derive(enum scram_hash h, const void *password, size_t len,
                 const unsigned char *salt, size_t salt_len, uint32_t iterations,
                 unsigned char *stored_key, unsigned char *server_key)
{
    unsigned char salted[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX];
    size_t klen = scram_key_len(h);
    int rc = XE_NOMEM;

    if (len == 0 || salt_len == 0 || iterations == 0 || len > INT_MAX ||
        salt_len > INT_MAX || iterations > INT_MAX)
        return XE_INVAL;
    /* Hi() is PBKDF2 with HMAC-H and dkLen = the hash length (RFC 5802 §2.2). */
    if (PKCS5_PBKDF2_HMAC(password, (int)len, salt, (int)salt_len, (int)iterations,
                          scram_md(h), (int)klen, salted) != 1)
        goto out;
    if (sc_hmac(NULL, h, salted, klen, scram_client_key, strlen(scram_client_key),
                client_key) < 0 ||
        sc_hash(NULL, h, client_key, klen, stored_key) < 0 ||
        sc_hmac(NULL, h, salted, klen, scram_server_key, strlen(scram_server_key),
                server_key) < 0)
        goto out;
    rc = 0;
out:
    sodium_memzero(salted, sizeof salted);
    sodium_memzero(client_key, sizeof client_key);
    return rc;
}

int scram_server_init(struct scram_server *s, enum scram_hash hash, bool plus,
                      const struct scram_cb *cb)
{
    memset(s, 0, sizeof *s);
    s->hash = hash;
    s->plus = plus;
    s->step = SCRAM_FAILED;
    if (cb != NULL)
        s->cb = *cb;
    if (plus && (s->cb.cb_name == NULL || !s->cb.tls || s->cb.cb_data == NULL ||
                 s->cb.cb_len == 0 || s->cb.cb_len > SCRAM_CB_MAX))
        return XE_INVAL;
    if (s->cb.alt_name != NULL &&
        (s->cb.alt_data == NULL || s->cb.alt_len == 0 || s->cb.alt_len > SCRAM_CB_MAX))
        return XE_INVAL;
    s->step = SCRAM_WAIT_CLIENT_FIRST;
    return 0;
}

void scram_server_clear(struct scram_server *s)
{
    char *owned[] = {s->client_first_bare, s->server_first, s->gs2_header, s->nonce};

    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        if (owned[i] != NULL) {
            sodium_memzero(owned[i], strlen(owned[i]));
            free(owned[i]);
        }
    }
    sodium_memzero(s, sizeof *s);
    s->step = SCRAM_FAILED;
}

/* sc_fail marks the exchange failed and returns rc. */
static int sc_fail(struct scram_server *s, int rc)
{
    s->step = SCRAM_FAILED;
    return rc;
}

/* sc_utf8_ok: s[0..len) is valid UTF-8 without NUL (RFC 5802 §7: every
 * value is UTF8-char, and NUL is excluded from value-char and saslname). */
static bool sc_utf8_ok(const unsigned char *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = p[i], n, cp;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        if (len - i - 1 < n)
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* RFC 3629 §3: no overlong forms, no surrogates, at most U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* A cursor over one message: attributes are "a=value" separated by ','. */
struct sc_cur {
    const char *p;
    const char *end;
};

/* sc_attr reads the attribute named name at the cursor: "name=" then a
 * value of at least one byte up to the next ',' or the end.  The cursor is
 * left on that ',' (or the end).  XE_PROTO when the attribute is missing or
 * empty. */
static int sc_attr(struct sc_cur *c, char name, const char **val, size_t *vlen)
{
    const char *v;

    if (c->end - c->p < 3 || c->p[0] != name || c->p[1] != '=')
        return XE_PROTO;
    v = c->p + 2;
    c->p = v;
    while (c->p < c->end && *c->p != ',')
        c->p++;
    if (c->p == v)
        return XE_PROTO;
    *val = v;
    *vlen = (size_t)(c->p - v);
    return 0;
}

/* sc_comma steps over one ','; XE_PROTO when there is none. */
static int sc_comma(struct sc_cur *c)
{
    if (c->p >= c->end || *c->p != ',')
        return XE_PROTO;
    c->p++;
    return 0;
}

static bool sc_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* sc_extensions reads the optional extensions (RFC 5802 §7: "," attr-val,
 * attr-val = ALPHA "=" value) up to the end, or, when stop is not 0, up to
 * an attribute named stop (left unread).  Unknown extensions are ignored:
 * they are covered by the proof through AuthMessage. */
static int sc_extensions(struct sc_cur *c, char stop)
{
    const char *v;
    size_t vlen;

    while (c->p < c->end) {
        if (sc_comma(c) < 0 || c->p >= c->end || !sc_alpha(*c->p))
            return XE_PROTO;
        if (stop != 0 && *c->p == stop) {
            c->p--; /* leave the ',' before it */
            return 0;
        }
        if (sc_attr(c, *c->p, &v, &vlen) < 0)
            return XE_PROTO;
    }
    return 0;
}

/* sc_saslname decodes a saslname (RFC 5802 §5.1 and §7: "=2C" is ',', "=3D"
 * is '=', any other '=' is an error; at least one character) into out (cap
 * bytes with the NUL).  XE_PROTO or XE_LIMIT. */
static int sc_saslname(const char *v, size_t vlen, char *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < vlen; i++) {
        char ch = v[i];

        if (ch == '=') {
            if (vlen - i < 3)
                return XE_PROTO;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                ch = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                ch = '=';
            else
                return XE_PROTO;
            i += 2;
        }
        if (n + 1 >= cap)
            return XE_LIMIT;
        out[n++] = ch;
    }
    if (n == 0)
        return XE_PROTO;
    out[n] = '\0';
    return 0;
}

/* sc_printable: RFC 5802 §7 printable = %x21-2B / %x2D-7E (no ','). */
static bool sc_printable(const char *v, size_t vlen)
{
    for (size_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)v[i];

        if (ch < 0x21 || ch > 0x7e || ch == ',')
            return false;
    }
    return vlen > 0;
}

/* sc_cb_name_ok: cb-name = 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 §7). */
static bool sc_cb_name_ok(const char *v, size_t vlen)
{
    for (size_t i = 0; i < vlen; i++) {
        char ch = v[i];

        if (!sc_alpha(ch) && !(ch >= '0' && ch <= '9') && ch != '.' && ch != '-')
            return false;
    }
    return vlen > 0;
}

/* sc_expected_c stores in s->gs2_header the base64 text that the client's
 * c= attribute must carry: the gs2 header, followed by the channel-binding
 * data on a -PLUS mechanism (RFC 5802 §7, cbind-input). */
static int sc_expected_c(struct scram_server *s, const char *gs2, size_t gs2_len)
{
    struct buf in = {0}, out = {0};
    int rc;

    if ((rc = buf_append(&in, gs2, gs2_len)) < 0 ||
        (s->plus && (rc = buf_append(&in, s->use_data, s->use_len)) < 0) ||
        (rc = sc_b64_append(&out, (const unsigned char *)in.data, in.len)) < 0) {
        buf_free(&in);
        buf_free(&out);
        return rc;
    }
    buf_free(&in);
    s->gs2_header = buf_steal(&out);
    return s->gs2_header != NULL ? 0 : XE_NOMEM;
}

/* sc_is: name (NUL-terminated, may be NULL) is the len bytes at v. */
static bool sc_is(const char *name, const char *v, size_t len)
{
    return name != NULL && strlen(name) == len && memcmp(name, v, len) == 0;
}

/* sc_flag_check applies RFC 5802 §6 to the client's gs2-cbind-flag ('n',
 * 'y' or 'p' with the type in cb, cb_len bytes), and on -PLUS notes which
 * offered type the client binds with.  0, XE_AUTH or XE_UNSUPPORTED (see
 * scram_server_client_first). */
static int sc_flag_check(struct scram_server *s, char flag, const char *cb, size_t cb_len)
{
    if (s->plus) {
        if (flag != 'p')
            return XE_AUTH;
        if (sc_is(s->cb.cb_name, cb, cb_len)) {
            s->use_data = s->cb.cb_data;
            s->use_len = s->cb.cb_len;
        } else if (sc_is(s->cb.alt_name, cb, cb_len)) {
            s->use_data = s->cb.alt_data;
            s->use_len = s->cb.alt_len;
        } else {
            return XE_UNSUPPORTED;
        }
        return 0;
    }
    if (flag == 'p')
        return XE_AUTH; /* channel binding asked on a mechanism without it */
    /* 'y': the client could bind but believes the server cannot.  When this
     * server did offer -PLUS over TLS, the offer was stripped (a downgrade),
     * unless the client has shown that it cannot bind with what is offered
     * (y_ok, scram.h). */
    if (flag == 'y' && s->cb.tls && s->cb.cb_name != NULL && !s->cb.y_ok)
        return XE_AUTH;
    return 0;
}

int scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
                              char *user, size_t cap)
{
    struct sc_cur c = {msg, msg + len};
    const char *v, *cbname = NULL, *bare, *nonce;
    size_t vlen, cbname_len = 0, nonce_len;
    char flag;
    int rc;

    if (s->step != SCRAM_WAIT_CLIENT_FIRST)
        return s->step == SCRAM_FAILED ? XE_STATE : sc_fail(s, XE_STATE);
    if (len > SCRAM_MSG_MAX)
        return sc_fail(s, XE_LIMIT);
    if (!sc_utf8_ok((const unsigned char *)msg, len))
        return sc_fail(s, XE_PROTO);

    /* gs2-header = gs2-cbind-flag "," [authzid] "," (RFC 5802 §7). */
    if (len < 1)
        return sc_fail(s, XE_PROTO);
    flag = msg[0];
    if (flag == 'p') {
        if (sc_attr(&c, 'p', &cbname, &cbname_len) < 0 ||
            !sc_cb_name_ok(cbname, cbname_len))
            return sc_fail(s, XE_PROTO);
    } else if (flag == 'n' || flag == 'y') {
        c.p++;
    } else {
        return sc_fail(s, XE_PROTO);
    }
    if (sc_comma(&c) < 0)
        return sc_fail(s, XE_PROTO);
    s->authzid[0] = '\0';
    if (c.p < c.end && *c.p != ',') {
        if (sc_attr(&c, 'a', &v, &vlen) < 0)
            return sc_fail(s, XE_PROTO);
        if ((rc = sc_saslname(v, vlen, s->authzid, sizeof s->authzid)) < 0)
            return sc_fail(s, rc);
    }
    if (sc_comma(&c) < 0)
        return sc_fail(s, XE_PROTO);

    /* client-first-message-bare = [reserved-mext ","] username "," nonce
     * ["," extensions].  A mandatory extension ('m') is one this server does
     * not know: fail (RFC 5802 §5.1). */
    bare = c.p;
    if (c.end - c.p >= 2 && c.p[0] == 'm' && c.p[1] == '=')
        return sc_fail(s, XE_PROTO);
    if (sc_attr(&c, 'n', &v, &vlen) < 0)
        return sc_fail(s, XE_PROTO);
    if ((rc = sc_saslname(v, vlen, s->user, sizeof s->user)) < 0)
        return sc_fail(s, rc);
    if (sc_comma(&c) < 0 || sc_attr(&c, 'r', &nonce, &nonce_len) < 0 ||
        !sc_printable(nonce, nonce_len))
        return sc_fail(s, XE_PROTO);
    if (nonce_len > SCRAM_CNONCE_MAX)
        return sc_fail(s, XE_LIMIT);
    if (sc_extensions(&c, 0) < 0)
        return sc_fail(s, XE_PROTO);

    /* The message parses; now what the server refuses (RFC 5802 §6). */
    if ((rc = sc_flag_check(s, flag, cbname, cbname_len)) < 0)
        return sc_fail(s, rc);
    if (strlen(s->user) + 1 > cap)
        return sc_fail(s, XE_LIMIT);

    s->client_first_bare = strndup(bare, (size_t)(c.end - bare));
    s->nonce = strndup(nonce, nonce_len);
    if (s->client_first_bare == NULL || s->nonce == NULL)
        return sc_fail(s, XE_NOMEM);
    if ((rc = sc_expected_c(s, msg, (size_t)(bare - msg))) < 0)
        return sc_fail(s, rc);
    memcpy(user, s->user, strlen(s->user) + 1);
    s->step = SCRAM_WAIT_CREDS;
    return 0;
}

/* sc_fake derives, for an unknown user, what a real account would hold:
 * salt (SCRAM_SALT_BYTES) and keys, each HMAC-SHA-256(fake_key, label |
 * mechanism | username) so that one name always sees the same salt on one
 * mechanism, and two mechanisms see different ones, as real accounts do.
 * The name is prepared first (precis_username), as the caller does for its
 * lookup: "Nobody" and "nobody" must get one salt, as "Juliet" and
 * "juliet" do when the account exists. */
static int sc_fake(struct scram_server *s, const unsigned char fake_key[32],
                   unsigned char salt[SCRAM_SALT_BYTES])
{
    static const char *const labels[] = {"xmppd scram salt", "xmppd scram stored",
                                         "xmppd scram server"};
    unsigned char *dst[] = {salt, s->stored_key, s->server_key};
    size_t dlen[] = {SCRAM_SALT_BYTES, scram_key_len(s->hash), scram_key_len(s->hash)};
    char name[SCRAM_USER_MAX + 1];
    unsigned char mac[32];
    struct buf in = {0};
    int rc = 0;

    if (precis_username(s->user, strlen(s->user), name, sizeof name) != 0)
        memcpy(name, s->user, strlen(s->user) + 1);

    for (size_t i = 0; i < 3 && rc == 0; i++) {
        const char *mech = scram_mech_name(s->hash, false);

        buf_reset(&in);
        if ((rc = buf_append(&in, labels[i], strlen(labels[i]) + 1)) < 0 ||
            (rc = buf_append(&in, mech, strlen(mech) + 1)) < 0 ||
            (rc = buf_puts(&in, name)) < 0 ||
            (rc = sc_hmac(s->cb.algs, SCRAM_SHA256, fake_key, 32, in.data, in.len, mac)) <
                0)
            break;
        memcpy(dst[i], mac, dlen[i]);
    }
    sodium_memzero(mac, sizeof mac);
    buf_free(&in);
    return rc;
}

static int sc_octet_cmp(const void *a, const void *b)
{
    /* RFC 4790 §9.3 "i;octet": strcmp compares as unsigned char. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* sc_join_sorted appends the strings of list (NULL-terminated) to in, sorted
 * by octet and separated by %x1E (XEP-0474 §4.1). */
static int sc_join_sorted(struct buf *in, const char *const *list)
{
    const char **sorted;
    size_t n = 0;
    int rc = 0;

    while (list[n] != NULL)
        n++;
    sorted = malloc((n + 1) * sizeof *sorted);
    if (sorted == NULL)
        return XE_NOMEM;
    memcpy(sorted, list, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, sc_octet_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = buf_append(in, "\x1e", 1);
        if (rc == 0)
            rc = buf_puts(in, sorted[i]);
    }
    free(sorted);
    return rc;
}

int scram_downgrade_attr(enum scram_hash h, const char *const *mechs,
                         const char *const *cb_types, struct buf *out)
{
    const char *const none[] = {NULL};
    unsigned char md[SCRAM_KEY_MAX];
    struct buf in = {0};
    int rc;

    /* XEP-0474 §4.1: S = sorted mechanisms joined by %x1E; when channel
     * binding types were advertised (XEP-0440), %x1F and the sorted types
     * joined by %x1E; then base64(H(S)). */
    if ((rc = sc_join_sorted(&in, mechs != NULL ? mechs : none)) < 0)
        goto out;
    if (cb_types != NULL && cb_types[0] != NULL &&
        ((rc = buf_append(&in, "\x1f", 1)) < 0 ||
         (rc = sc_join_sorted(&in, cb_types)) < 0))
        goto out;
    if ((rc = sc_hash(NULL, h, in.data != NULL ? in.data : "", in.len, md)) < 0)
        goto out;
    rc = sc_b64_append(out, md, scram_key_len(h));
out:
    buf_free(&in);
    return rc;
}

int scram__server_first_nonce_text(struct scram_server *s,
                                   const struct scram_creds *creds, const char *snonce,
                                   const unsigned char fake_key[32], struct buf *out)
{
    unsigned char fake_salt[SCRAM_SALT_BYTES];
    const unsigned char *salt = fake_salt;
    size_t salt_len = sizeof fake_salt, klen = scram_key_len(s->hash);
    uint32_t iterations = SCRAM_ITERATIONS_DEFAULT;
    struct buf msg = {0};
    char *nonce;
    int rc;

    if (s->step != SCRAM_WAIT_CREDS)
        return s->step == SCRAM_FAILED ? XE_STATE : sc_fail(s, XE_STATE);
    if (!sc_printable(snonce, strlen(snonce)) || strlen(snonce) > SCRAM_SNONCE_MAX)
        return XE_INVAL;
    s->known = creds != NULL && creds->stored_key != NULL;
    if (s->known) {
        if (creds->salt == NULL || creds->salt_len == 0 || creds->iterations == 0 ||
            creds->server_key == NULL)
            return XE_INVAL;
        salt = creds->salt;
        salt_len = creds->salt_len;
        iterations = creds->iterations;
        memcpy(s->stored_key, creds->stored_key, klen);
        memcpy(s->server_key, creds->server_key, klen);
    } else {
        if (creds != NULL && creds->iterations != 0)
            iterations = creds->iterations;
        if ((rc = sc_fake(s, fake_key, fake_salt)) < 0)
            return sc_fail(s, rc);
    }

    /* server-first-message = [reserved-mext ","] nonce "," salt ","
     * iteration-count ["," extensions] (RFC 5802 §7); XEP-0474's "h" is
     * such an extension. */
    if ((rc = buf_printf(&msg, "r=%s%s,s=", s->nonce, snonce)) < 0 ||
        (rc = sc_b64_append(&msg, salt, salt_len)) < 0 ||
        (rc = buf_printf(&msg, ",i=%" PRIu32, iterations)) < 0)
        goto err;
    if (s->cb.mechs != NULL && s->cb.mechs[0] != NULL &&
        ((rc = buf_puts(&msg, ",h=")) < 0 ||
         (rc = scram_downgrade_attr(s->hash, s->cb.mechs, s->cb.cb_types, &msg)) < 0))
        goto err;
    rc = XE_NOMEM;
    nonce = malloc(strlen(s->nonce) + strlen(snonce) + 1);
    if (nonce == NULL)
        goto err;
    if ((rc = buf_append(out, msg.data, msg.len)) < 0) {
        free(nonce);
        goto err;
    }
    sprintf(nonce, "%s%s", s->nonce, snonce);
    sodium_memzero(s->nonce, strlen(s->nonce));
    free(s->nonce);
    s->nonce = nonce;
    s->server_first = buf_steal(&msg);
    sodium_memzero(fake_salt, sizeof fake_salt);
    s->step = SCRAM_WAIT_CLIENT_FINAL;
    return 0;

err:
    sodium_memzero(fake_salt, sizeof fake_salt);
    buf_free(&msg);
    return sc_fail(s, rc);
}

int scram_server_first(struct scram_server *s, const struct scram_creds *creds,
                       const unsigned char nonce[SCRAM_NONCE_BYTES],
                       const unsigned char fake_key[32], struct buf *out)
{
    char text[SCRAM_B64_MAX(SCRAM_NONCE_BYTES)];
    int rc;

    /* Base64 is printable and has no ',' (RFC 5802 §7 s-nonce). */
    sodium_bin2base64(text, sizeof text, nonce, SCRAM_NONCE_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    rc = scram__server_first_nonce_text(s, creds, text, fake_key, out);
    sodium_memzero(text, sizeof text);
    return rc;
}

/* sc_final_error appends "e=<value>" (RFC 5802 §7 server-error) and fails. */
static int sc_final_error(struct scram_server *s, struct buf *out, const char *value,
                          int rc)
{
    if (buf_printf(out, "e=%s", value) < 0)
        rc = XE_NOMEM;
    return sc_fail(s, rc);
}

int scram_server_final(struct scram_server *s, const char *msg, size_t len,
                       struct buf *out)
{
    unsigned char proof[SCRAM_KEY_MAX + 3], sig[SCRAM_KEY_MAX], key[SCRAM_KEY_MAX];
    unsigned char stored[SCRAM_KEY_MAX];
    struct sc_cur c = {msg, msg + len};
    const char *cb, *nonce, *p;
    size_t cb_len, nonce_len, p_len, proof_len = 0, klen = scram_key_len(s->hash);
    size_t without_proof;
    struct buf auth = {0};
    bool ok;
    int rc;

    if (s->step != SCRAM_WAIT_CLIENT_FINAL)
        return s->step == SCRAM_FAILED ? XE_STATE : sc_fail(s, XE_STATE);
    if (len > SCRAM_MSG_MAX || !sc_utf8_ok((const unsigned char *)msg, len))
        return sc_final_error(s, out, "other-error", XE_PROTO);

    /* client-final-message = channel-binding "," nonce ["," extensions] ","
     * proof (RFC 5802 §7). */
    if (sc_attr(&c, 'c', &cb, &cb_len) < 0 || sc_comma(&c) < 0 ||
        sc_attr(&c, 'r', &nonce, &nonce_len) < 0 || sc_extensions(&c, 'p') < 0)
        return sc_final_error(s, out, "other-error", XE_PROTO);
    without_proof = (size_t)(c.p - msg);
    if (sc_comma(&c) < 0 || sc_attr(&c, 'p', &p, &p_len) < 0 || c.p != c.end)
        return sc_final_error(s, out, "other-error", XE_PROTO);
    {
        unsigned char *cbuf = malloc(cb_len);
        size_t cdec;

        if (cbuf == NULL)
            return sc_final_error(s, out, "other-error", XE_NOMEM);
        rc = sc_b64_decode(cb, cb_len, cbuf, cb_len, &cdec);
        free(cbuf);
        if (rc < 0)
            return sc_final_error(s, out, "other-error", XE_PROTO);
    }
    if (sc_b64_decode(p, p_len, proof, sizeof proof, &proof_len) < 0 || proof_len != klen)
        return sc_final_error(s, out, "other-error", XE_PROTO);
    /* The nonce must be exactly the one of server-first (RFC 5802 §5.1). */
    if (nonce_len != strlen(s->nonce) || memcmp(nonce, s->nonce, nonce_len) != 0)
        return sc_final_error(s, out, "other-error", XE_PROTO);
    /* c= must repeat the gs2 header and, for -PLUS, carry this connection's
     * channel-binding data (RFC 5802 §6, RFC 5929 §4.1, RFC 9266 §2). */
    if (cb_len != strlen(s->gs2_header) || sodium_memcmp(cb, s->gs2_header, cb_len) != 0)
        return sc_final_error(s, out, "channel-bindings-dont-match", XE_AUTH);

    /* AuthMessage = client-first-message-bare "," server-first-message ","
     * client-final-message-without-proof (RFC 5802 §3). */
    if (buf_printf(&auth, "%s,%s,", s->client_first_bare, s->server_first) < 0 ||
        buf_append(&auth, msg, without_proof) < 0) {
        buf_free(&auth);
        return sc_final_error(s, out, "other-error", XE_NOMEM);
    }
    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof
     * holds when H(ClientKey) == StoredKey.  Compared in constant time; an
     * unknown user fails here, after the same work as a known one. */
    rc = sc_hmac(s->cb.algs, s->hash, s->stored_key, klen, auth.data, auth.len, sig);
    if (rc == 0) {
        for (size_t i = 0; i < klen; i++)
            key[i] = proof[i] ^ sig[i];
        rc = sc_hash(s->cb.algs, s->hash, key, klen, stored);
    }
    ok = rc == 0 && sodium_memcmp(stored, s->stored_key, klen) == 0 && s->known;
    if (ok)
        rc = sc_hmac(s->cb.algs, s->hash, s->server_key, klen, auth.data, auth.len, sig);
    sodium_memzero(key, sizeof key);
    sodium_memzero(stored, sizeof stored);
    sodium_memzero(proof, sizeof proof);
    buf_free(&auth);
    if (rc < 0) {
        sodium_memzero(sig, sizeof sig);
        return sc_final_error(s, out, "other-error", rc);
    }
    if (!ok) {
        sodium_memzero(sig, sizeof sig);
        return sc_final_error(s, out, "invalid-proof", XE_AUTH);
    }
    /* server-final-message = "v=" base64(ServerSignature). */
    if (buf_puts(out, "v=") < 0 || sc_b64_append(out, sig, klen) < 0)
        rc = XE_NOMEM;
    sodium_memzero(sig, sizeof sig);
    if (rc < 0)
        return sc_fail(s, rc);
    s->step = SCRAM_DONE;
    return 0;
}
