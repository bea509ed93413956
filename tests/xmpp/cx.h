/* cx.h: the client side of the transcripts: accounts made the way `xmpp
 * user add` makes them (RFC 5802 §3 keys from a password), and a SCRAM
 * client computed here with OpenSSL's PBKDF2 and HMAC, independently of
 * the server's scram.c.  On top of fx.h (no sockets). */
#ifndef XMPPD_TESTS_XMPP_CX_H
#define XMPPD_TESTS_XMPP_CX_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "repl.h"
#include "xmpp/fx.h"

#define CX_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
/* What a client sends to open (and re-open) its stream (RFC 6120 §4.7). */
#define CX_OPEN                                                                          \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"
#define CX_HDR_PREFIX                                                                    \
    "<?xml version='1.0'?><stream:stream "                                               \
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' "             \
    "from='example.com' id='"
#define CX_HDR_SUFFIX "' version='1.0' xml:lang='en'>"
#define CX_FEAT_TLS                                                                      \
    "<stream:features><starttls "                                                        \
    "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
#define CX_MECHS_PLUS                                                                    \
    "<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>"
#define CX_MECHS "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
#define CX_CB                                                                            \
    "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding "                 \
    "type='tls-exporter'/><channel-binding type='tls-server-end-point'/>"                \
    "</sasl-channel-binding>"
#define CX_FEAT_SASL                                                                     \
    "<stream:features><mechanisms xmlns='" CX_NS_SASL "'>" CX_MECHS_PLUS CX_MECHS        \
    "</mechanisms>" CX_CB "</stream:features>"
#define CX_FEAT_BIND                                                                     \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session "         \
    "xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></"                \
    "stream:features>"
#define CX_FAILURE(cond) "<failure xmlns='" CX_NS_SASL "'><" cond "/></failure>"
#define CX_STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define CX_PROCEED "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define CX_CNONCE "fyko+d2lbbFgONRv9qkxdawL" /* RFC 5802 §5's client nonce */

static const unsigned char cx_salt[16] = "0123456789abcdef";

/* cx_keys derives StoredKey and ServerKey from pass (RFC 5802 §3). */
static inline void cx_keys(const EVP_MD *md, const char *pass, unsigned char *salted,
                           unsigned char *stored, unsigned char *server)
{
    int n = EVP_MD_size(md);
    unsigned char sp[64], ck[64];
    unsigned int len = 0;

    PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), cx_salt, sizeof cx_salt, 4096, md, n, sp);
    HMAC(md, sp, n, (const unsigned char *)"Client Key", 10, ck, &len);
    if (stored != NULL)
        EVP_Digest(ck, (size_t)n, stored, NULL, md, NULL);
    if (server != NULL)
        HMAC(md, sp, n, (const unsigned char *)"Server Key", 10, server, &len);
    if (salted != NULL)
        memcpy(salted, sp, (size_t)n);
}

/* cx_add_user adds account name with password pass (SHA-256 and SHA-1
 * credentials) to cl through a USER_SET command, as the cluster does. */
static inline int cx_add_user(struct cl_state *cl, const char *name, const char *pass)
{
    static struct cl_cmd c;
    struct cl_user u;
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    memset(&u, 0, sizeof u);
    u.sha256.present = u.sha1.present = true;
    memcpy(u.sha256.salt, cx_salt, sizeof cx_salt);
    memcpy(u.sha1.salt, cx_salt, sizeof cx_salt);
    u.sha256.salt_len = u.sha1.salt_len = sizeof cx_salt;
    u.sha256.iterations = u.sha1.iterations = 4096;
    cx_keys(EVP_sha256(), pass, NULL, u.sha256.stored_key, u.sha256.server_key);
    cx_keys(EVP_sha1(), pass, NULL, u.sha1.stored_key, u.sha1.server_key);
    cl_cmd_user_set(&c, name, &u, true);
    rc = cl_cmd_encode(&c, &buf, &len);
    if (rc == 0)
        rc = cl_apply(cl, buf, len, NULL);
    cl_buf_free(buf, len);
    return rc;
}

static inline void cx_b64(const void *data, size_t len, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
}

/* cx_hdr returns the server's header with stream id sid. */
static inline const char *cx_hdr(struct fx *fx, const char *sid, const char *tail)
{
    snprintf(fx->expect, sizeof fx->expect, CX_HDR_PREFIX "%s" CX_HDR_SUFFIX "%s", sid,
             tail != NULL ? tail : "");
    return fx->expect;
}

/* A SCRAM client exchange (RFC 5802 §5). */
struct cx_scram {
    const EVP_MD *md;
    char first_bare[256];
    char gs2[128];        /* the gs2 header (with cb data: base64 in c=) */
    char cbind[256];      /* c= value */
    char server_sig[160]; /* base64 of "v=" and the expected ServerSignature */
};

/* cx_auth_el writes into el the <auth> with client-first
 * "gs2n=user,r=CX_CNONCE" (any transport). */
static inline void cx_auth_el(struct cx_scram *x, const char *mech, const char *gs2,
                              const char *user, char *el, size_t cap)
{
    char msg[512], b64[1024];

    x->md = strstr(mech, "SHA-256") != NULL ? EVP_sha256() : EVP_sha1();
    snprintf(x->gs2, sizeof x->gs2, "%s", gs2);
    snprintf(x->first_bare, sizeof x->first_bare, "n=%s,r=%s", user, CX_CNONCE);
    snprintf(msg, sizeof msg, "%s%s", gs2, x->first_bare);
    cx_b64(msg, strlen(msg), b64, sizeof b64);
    snprintf(el, cap, "<auth xmlns='" CX_NS_SASL "' mechanism='%s'>%s</auth>", mech, b64);
}

/* cx_auth sends <auth> with client-first "gs2n=user,r=CX_CNONCE". */
static inline void cx_auth(struct fx *fx, uint64_t conn, struct cx_scram *x,
                           const char *mech, const char *gs2, const char *user)
{
    char el[2048];

    cx_auth_el(x, mech, gs2, user, el, sizeof el);
    fx_in(fx, conn, el);
}

/* cx_challenge checks that the server's answer is a <challenge> with
 * r=CX_CNONCE+base64(the 18 bytes fx_random gave from rnd0),s=base64(salt)
 * (want_salt: the account's; else any),i=4096 and copies it to sf. */
static inline bool cx_challenge(struct fx *fx, uint64_t conn, unsigned char rnd0,
                                bool want_salt, char *sf, size_t cap)
{
    const char *t = fx_take(fx, conn), *p = strstr(t, "'>"), *e;
    unsigned char snonce[18];
    char want[256], nb64[64], sb64[64];
    size_t n = 0;

    for (int i = 0; i < 18; i++)
        snonce[i] = (unsigned char)(rnd0 + i);
    cx_b64(snonce, sizeof snonce, nb64, sizeof nb64);
    cx_b64(cx_salt, sizeof cx_salt, sb64, sizeof sb64);
    static const char open[] = "<challenge xmlns='" CX_NS_SASL "'>";

    if (strncmp(t, open, sizeof open - 1) != 0 || p == NULL ||
        (e = strstr(t, "</challenge>")) == NULL || e[12] != '\0') {
        fprintf(stderr, "not a challenge: %s\n", t);
        return false;
    }
    p += 2;
    if (sodium_base642bin((unsigned char *)sf, cap - 1, p, (size_t)(e - p), NULL, &n,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
        return false;
    sf[n] = '\0';
    snprintf(want, sizeof want, "r=%s%s,s=%s,i=4096", CX_CNONCE, nb64, sb64);
    if (want_salt ? strncmp(sf, want, strlen(want)) != 0
                  : strncmp(sf, want, strlen(CX_CNONCE) + strlen(nb64) + 2) != 0) {
        fprintf(stderr, "server-first: %s\n  expected: %s...\n", sf, want);
        return false;
    }
    return true;
}

/* cx_final_el writes into el (cx_final sends) the answer to server-first sf with the
 * proof for pass; cb (cb_len bytes) is the channel-binding data appended to the gs2
 * header in c=. */
static inline void cx_final_el(struct cx_scram *x, const char *sf, const char *pass,
                               const unsigned char *cb, size_t cb_len, char *el,
                               size_t cap)
{
    unsigned char sp[64], ck[64], stored[64], server[64], sig[64], proof[64];
    unsigned char cbin[256];
    char nonce[256], final[1024], auth[2048], pb64[128], b64[2048];
    unsigned int n = 0, klen = (unsigned)EVP_MD_size(x->md);
    const char *r = sf + 2, *comma = strchr(sf, ',');
    size_t gl = strlen(x->gs2);

    snprintf(nonce, sizeof nonce, "%.*s", (int)(comma - r), r);
    memcpy(cbin, x->gs2, gl);
    if (cb_len > 0)
        memcpy(cbin + gl, cb, cb_len);
    cx_b64(cbin, gl + cb_len, x->cbind, sizeof x->cbind);
    snprintf(final, sizeof final, "c=%s,r=%s", x->cbind, nonce);
    snprintf(auth, sizeof auth, "%s,%s,%s", x->first_bare, sf, final);
    cx_keys(x->md, pass, sp, stored, server);
    HMAC(x->md, sp, (int)klen, (const unsigned char *)"Client Key", 10, ck, &n);
    HMAC(x->md, stored, (int)klen, (const unsigned char *)auth, strlen(auth), sig, &n);
    for (unsigned i = 0; i < klen; i++)
        proof[i] = ck[i] ^ sig[i];
    cx_b64(proof, klen, pb64, sizeof pb64);
    HMAC(x->md, server, (int)klen, (const unsigned char *)auth, strlen(auth), sig, &n);
    {
        char v[160], vb[128];
        cx_b64(sig, klen, vb, sizeof vb);
        snprintf(v, sizeof v, "v=%s", vb);
        cx_b64(v, strlen(v), x->server_sig, sizeof x->server_sig);
    }
    snprintf(auth, sizeof auth, "%s,p=%s", final, pb64);
    cx_b64(auth, strlen(auth), b64, sizeof b64);
    snprintf(el, cap, "<response xmlns='" CX_NS_SASL "'>%s</response>", b64);
}

static inline void cx_final(struct fx *fx, uint64_t conn, struct cx_scram *x,
                            const char *sf, const char *pass, const unsigned char *cb,
                            size_t cb_len)
{
    char el[4096];

    cx_final_el(x, sf, pass, cb, cb_len, el, sizeof el);
    fx_in(fx, conn, el);
}

/* cx_tls opens client connection conn and brings it through STARTTLS to
 * the SASL features (TLS 1.3 with exporter bytes 0xab, end-point hash bytes
 * 0xcd), checking each
 * transcript. */
static const struct srv_tls_info cx_tls13 = {
    .tls13 = true,
    .exporter = {0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
                 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
                 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab},
    .exporter_len = 32,
    /* the edge gives tls-server-end-point data too (RFC 5929 §4.1) */
    .endpoint = {0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd,
                 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd,
                 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd},
    .endpoint_len = 32,
};

static inline bool cx_tls(struct fx *fx, uint64_t conn)
{
    char sid[33];
    bool ok = true;

    fx_open_kind(fx, conn, SRV_LISTENER_CLIENT);
    fx_in(fx, conn, CX_OPEN);
    ok &= strcmp(fx_take(fx, conn), cx_hdr(fx, fx->c[conn].sid, CX_FEAT_TLS)) == 0;
    CHECK_STR(fx->taken, fx->expect);
    fx_in(fx, conn, CX_STARTTLS);
    ok &= strcmp(fx_take(fx, conn), CX_PROCEED) == 0;
    CHECK_STR(fx->taken, CX_PROCEED);
    CHECK_INT(fx->c[conn].starttls, 1);
    fx_next_sid(fx, sid);
    srv_conn_secured(fx->srv, conn, &cx_tls13, fx->now);
    fx_in(fx, conn, CX_OPEN);
    ok &= strcmp(fx_take(fx, conn), cx_hdr(fx, sid, CX_FEAT_SASL)) == 0;
    CHECK_STR(fx->taken, fx->expect);
    return ok;
}

/* cx_scram_ok runs a SCRAM exchange (mech without -PLUS) that must
 * succeed, then the restart to the bind features. */
static inline bool cx_scram_ok(struct fx *fx, uint64_t conn, const char *mech,
                               const char *user, const char *pass)
{
    struct cx_scram x;
    char sf[512], want[256], sid[33];
    unsigned char rnd0 = fx->rnd;

    cx_auth(fx, conn, &x, mech, "n,,", user);
    if (!cx_challenge(fx, conn, rnd0, true, sf, sizeof sf))
        return false;
    fx_next_sid(fx, sid);
    cx_final(fx, conn, &x, sf, pass, NULL, 0);
    snprintf(want, sizeof want, "<success xmlns='" CX_NS_SASL "'>%s</success>",
             x.server_sig);
    CHECK_STR(fx_take(fx, conn), want);
    if (strcmp(fx->taken, want) != 0)
        return false;
    fx_in(fx, conn, CX_OPEN);
    CHECK_STR(fx_take(fx, conn), cx_hdr(fx, sid, CX_FEAT_BIND));
    return strcmp(fx->taken, fx->expect) == 0;
}

/* cx_bind binds resource res (checking the result) with iq id b1. */
static inline bool cx_bind(struct fx *fx, uint64_t conn, const char *user,
                           const char *res)
{
    char in[512], want[512];

    snprintf(in, sizeof in,
             "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>%s</resource></bind></iq>",
             res);
    fx_in(fx, conn, in);
    snprintf(want, sizeof want,
             "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<jid>%s@example.com/%s</jid></bind></iq>",
             user, res);
    CHECK_STR(fx_take(fx, conn), want);
    return strcmp(fx->taken, want) == 0;
}

/* cx_login: the whole login of user/res on conn (SCRAM-SHA-256). */
static inline bool cx_login(struct fx *fx, uint64_t conn, const char *user,
                            const char *pass, const char *res)
{
    return cx_tls(fx, conn) && cx_scram_ok(fx, conn, "SCRAM-SHA-256", user, pass) &&
           cx_bind(fx, conn, user, res);
}

#endif
