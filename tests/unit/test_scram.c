/* test_scram.c: the SCRAM server (RFC 5802, RFC 7677) against the RFC
 * examples, channel binding (RFC 5929, RFC 9266), XEP-0474 downgrade
 * protection, unknown users and malformed messages.
 *
 * The client side of the exchanges is computed here with OpenSSL directly
 * (test_client_proof), independently of scram.c. */
#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "testlib.h"

#include "buf.h"
#include "err.h"
#include "scram.h"

static const unsigned char fake_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* b64dec decodes padded base64 text into out; returns the length. */
static size_t b64dec(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;

    if (sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return 0;
    return n;
}

static void b64enc(const void *in, size_t len, struct buf *out)
{
    char tmp[512];

    REQUIRE(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) <= sizeof tmp);
    sodium_bin2base64(tmp, sizeof tmp, in, len, sodium_base64_VARIANT_ORIGINAL);
    buf_puts(out, tmp);
}

/* test_client_proof computes the ClientProof of RFC 5802 §3 as a client
 * would, from the password, with OpenSSL only; appends its base64. */
static void test_client_proof(enum scram_hash h, const char *password,
                              const unsigned char *salt, size_t salt_len, unsigned iter,
                              const char *auth, struct buf *out)
{
    const EVP_MD *md = h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
    unsigned char sp[32], ck[32], sk[32], sig[32], proof[32];
    unsigned int n = (unsigned)EVP_MD_size(md), k;

    REQUIRE(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                              (int)iter, md, (int)n, sp) == 1);
    HMAC(md, sp, (int)n, (const unsigned char *)"Client Key", 10, ck, &k);
    EVP_Digest(ck, n, sk, &k, md, NULL);
    HMAC(md, sk, (int)n, (const unsigned char *)auth, strlen(auth), sig, &k);
    for (unsigned i = 0; i < n; i++)
        proof[i] = ck[i] ^ sig[i];
    b64enc(proof, n, out);
}

/* The stored credentials of "pencil" with the RFC 5802 salt. */
struct creds {
    unsigned char salt[32];
    size_t salt_len;
    unsigned char stored[32], server[32];
    struct scram_creds c;
};

static void make_creds(enum scram_hash h, const char *salt_b64, struct creds *cr)
{
    cr->salt_len = b64dec(salt_b64, cr->salt, sizeof cr->salt);
    CHECK_INT(scram_derive(h, "pencil", 6, cr->salt, cr->salt_len, 4096, cr->stored,
                           cr->server),
              0);
    cr->c.salt = cr->salt;
    cr->c.salt_len = cr->salt_len;
    cr->c.iterations = 4096;
    cr->c.stored_key = cr->stored;
    cr->c.server_key = cr->server;
}

/* rfc_exchange_with runs one of the RFC examples byte for byte, with the
 * algorithms fetched once (algs) or per use (NULL). */
static void rfc_exchange_with(struct scram_algs *algs, enum scram_hash h,
                              const char *cfirst, const char *snonce,
                              const char *salt_b64, const char *sfirst_want,
                              const char *cfinal, const char *sfinal_want)
{
    struct scram_cb cb = {.algs = algs};
    struct scram_server s;
    struct creds cr;
    struct buf out = {0};
    char user[64];

    make_creds(h, salt_b64, &cr);
    REQUIRE(scram_server_init(&s, h, false, &cb) == 0);
    CHECK_INT(scram_server_client_first(&s, cfirst, strlen(cfirst), user, sizeof user),
              0);
    CHECK_STR(user, "user");
    CHECK_INT(scram__server_first_nonce_text(&s, &cr.c, snonce, fake_key, &out), 0);
    CHECK_STR(out.data, sfirst_want);
    buf_reset(&out);
    CHECK_INT(scram_server_final(&s, cfinal, strlen(cfinal), &out), 0);
    CHECK_STR(out.data, sfinal_want);
    CHECK_INT(s.step, SCRAM_DONE);
    scram_server_clear(&s);
    buf_free(&out);
}

/* rfc_exchange runs the example without, then twice with one scram_algs
 * (its HMAC contexts re-keyed for each use), then once more after the
 * other hash used them. */
static void rfc_exchange(enum scram_hash h, const char *cfirst, const char *snonce,
                         const char *salt_b64, const char *sfirst_want,
                         const char *cfinal, const char *sfinal_want)
{
    static const char other_first[] = "n,,n=user,r=abc";
    struct scram_algs *a = NULL;
    struct scram_cb cb;
    struct scram_server s;
    struct buf out = {0};
    char user[64];

    rfc_exchange_with(NULL, h, cfirst, snonce, salt_b64, sfirst_want, cfinal,
                      sfinal_want);
    REQUIRE(scram_algs_new(&a) == 0);
    for (int i = 0; i < 2; i++)
        rfc_exchange_with(a, h, cfirst, snonce, salt_b64, sfirst_want, cfinal,
                          sfinal_want);
    /* an unknown user's fake salt keys the SHA-256 context with another key */
    cb = (struct scram_cb){.algs = a};
    REQUIRE(scram_server_init(&s, h == SCRAM_SHA1 ? SCRAM_SHA256 : SCRAM_SHA1, false,
                              &cb) == 0);
    CHECK_INT(scram_server_client_first(&s, other_first, strlen(other_first), user,
                                        sizeof user),
              0);
    CHECK_INT(scram__server_first_nonce_text(&s, NULL, "xyz", fake_key, &out), 0);
    scram_server_clear(&s);
    buf_free(&out);
    rfc_exchange_with(a, h, cfirst, snonce, salt_b64, sfirst_want, cfinal, sfinal_want);
    scram_algs_free(a);
}

static void test_rfc5802_sha1(void)
{
    /* RFC 5802 §5, user "user", password "pencil". */
    rfc_exchange(SCRAM_SHA1, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j",
                 "QSXCR+Q6sek8bf92",
                 "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                 "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                 "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                 "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

static void test_rfc7677_sha256(void)
{
    /* RFC 7677 §3, user "user", password "pencil". */
    rfc_exchange(SCRAM_SHA256, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                 "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==",
                 "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                 "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                 "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

static void test_xep0474_example(void)
{
    /* XEP-0474 §4.3: SCRAM-SHA-1-PLUS over tls-exporter with the "h"
     * attribute and an extension "x" in the client-final-message. */
    static const char *const mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", NULL};
    static const char *const types[] = {"tls-server-end-point", "tls-exporter", NULL};
    static const char cbdata[] = "THIS IS FAKE CB DATA";
    struct scram_cb cb = {.tls = true,
                          .cb_name = "tls-exporter",
                          .cb_data = (const unsigned char *)cbdata,
                          .cb_len = strlen(cbdata),
                          .mechs = mechs,
                          .cb_types = types};
    const char *cfirst = "p=tls-exporter,,n=user,r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6";
    const char *cfinal =
        "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,"
        "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,"
        "x=19C6532F-1CF4-4A27-A18D-DC9CEA41BBB3,p=M/SIDjT+dfcxUh89jZEypRvFxB4=";
    struct scram_server s;
    struct creds cr;
    struct buf out = {0};
    char user[64];

    make_creds(SCRAM_SHA1, "QSXCR+Q6sek8bf92", &cr);
    REQUIRE(scram_server_init(&s, SCRAM_SHA1, true, &cb) == 0);
    CHECK_INT(scram_server_client_first(&s, cfirst, strlen(cfirst), user, sizeof user),
              0);
    CHECK_INT(scram__server_first_nonce_text(
                  &s, &cr.c, "a09117a6-ac50-4f2f-93f1-93799c2bddf6", fake_key, &out),
              0);
    CHECK_STR(out.data,
              "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-"
              "93799c2bddf6,s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=");
    buf_reset(&out);
    CHECK_INT(scram_server_final(&s, cfinal, strlen(cfinal), &out), 0);
    CHECK_STR(out.data, "v=MQrMPvv7yv4x4Cq4W4Ih25EqS2c=");
    scram_server_clear(&s);
    buf_free(&out);
}

static void test_derive_checks(void)
{
    unsigned char salt[16] = {0}, a[32], b[32];

    CHECK_INT(scram_derive(SCRAM_SHA256, "", 0, salt, 16, 4096, a, b), XE_INVAL);
    CHECK_INT(scram_derive(SCRAM_SHA256, "x", 1, salt, 0, 4096, a, b), XE_INVAL);
    CHECK_INT(scram_derive(SCRAM_SHA256, "x", 1, salt, 16, 0, a, b), XE_INVAL);
    CHECK_INT(scram_key_len(SCRAM_SHA1), 20);
    CHECK_INT(scram_key_len(SCRAM_SHA256), 32);
    CHECK_STR(scram_mech_name(SCRAM_SHA1, false), "SCRAM-SHA-1");
    CHECK_STR(scram_mech_name(SCRAM_SHA256, true), "SCRAM-SHA-256-PLUS");
}

/* A whole exchange driven by a client written in this file. */
struct flow {
    enum scram_hash h;
    bool plus;
    const struct scram_cb *cb;
    const char *cfirst;     /* client-first-message */
    const void *cbind;      /* what the client puts in c= (before base64) */
    size_t cbind_len;       /* 0: the gs2 header of cfirst */
    const char *password;   /* the client's */
    bool unknown;           /* the server has no account */
    int rc_first;           /* of scram_server_client_first */
    int rc_final;           /* of scram_server_final */
    struct buf sfirst, out; /* server-first, server-final (or e=) */
};

static void run_flow(struct flow *f)
{
    static const unsigned char nonce[SCRAM_NONCE_BYTES] = "0123456789abcdefg";
    struct scram_server s;
    struct creds cr;
    struct buf cf = {0}, auth = {0};
    unsigned char salt[64];
    char user[64];
    const char *bare, *p;
    size_t salt_len;

    make_creds(f->h, "QSXCR+Q6sek8bf92", &cr);
    REQUIRE(scram_server_init(&s, f->h, f->plus, f->cb) == 0);
    f->rc_first =
        scram_server_client_first(&s, f->cfirst, strlen(f->cfirst), user, sizeof user);
    if (f->rc_first != 0) {
        scram_server_clear(&s);
        return;
    }
    CHECK_INT(
        scram_server_first(&s, f->unknown ? NULL : &cr.c, nonce, fake_key, &f->sfirst),
        0);
    /* The client's side: c=, r= from server-first, then the proof. */
    bare = strstr(f->cfirst, "n=");
    buf_puts(&cf, "c=");
    if (f->cbind_len == 0)
        b64enc(f->cfirst, (size_t)(bare - f->cfirst), &cf);
    else
        b64enc(f->cbind, f->cbind_len, &cf);
    buf_puts(&cf, ",");
    p = strchr(f->sfirst.data, ',');
    buf_append(&cf, f->sfirst.data, (size_t)(p - f->sfirst.data));
    p = strstr(f->sfirst.data, ",s=") + 3;
    {
        char tmp[64] = {0};
        memcpy(tmp, p, strcspn(p, ","));
        salt_len = b64dec(tmp, salt, sizeof salt);
    }
    buf_printf(&auth, "%s,%s,%s", bare, f->sfirst.data, cf.data);
    buf_puts(&cf, ",p=");
    test_client_proof(f->h, f->password, salt, salt_len, 4096, auth.data, &cf);
    f->rc_final = scram_server_final(&s, cf.data, cf.len, &f->out);
    scram_server_clear(&s);
    buf_free(&cf);
    buf_free(&auth);
}

static void flow_free(struct flow *f)
{
    buf_free(&f->sfirst);
    buf_free(&f->out);
}

static void test_bytes_nonce_success(void)
{
    struct flow f = {
        .h = SCRAM_SHA256, .cfirst = "n,,n=user,r=abc", .password = "pencil"};

    run_flow(&f);
    CHECK_INT(f.rc_first, 0);
    /* The server nonce is the base64 of the 18 bytes: 24 characters. */
    CHECK_STR(f.sfirst.data, "r=abcMDEyMzQ1Njc4OWFiY2RlZmcA,s=QSXCR+Q6sek8bf92,i=4096");
    CHECK_INT(f.rc_final, 0);
    CHECK(strncmp(f.out.data, "v=", 2) == 0);
    flow_free(&f);
}

static void test_wrong_proof(void)
{
    struct flow f = {
        .h = SCRAM_SHA256, .cfirst = "n,,n=user,r=abc", .password = "pencik"};
    struct flow g = {.h = SCRAM_SHA1, .cfirst = "n,,n=user,r=abc", .password = "Pencil"};

    run_flow(&f);
    CHECK_INT(f.rc_final, XE_AUTH);
    CHECK_STR(f.out.data, "e=invalid-proof");
    run_flow(&g);
    CHECK_INT(g.rc_final, XE_AUTH);
    CHECK_STR(g.out.data, "e=invalid-proof");
    flow_free(&f);
    flow_free(&g);
}

/* salt_of returns the s= value of a server-first-message (owned). */
static char *salt_of(const char *sfirst)
{
    const char *p = strstr(sfirst, ",s=") + 3;

    return strndup(p, strcspn(p, ","));
}

static void test_unknown_user(void)
{
    struct flow known = {.h = SCRAM_SHA256, .cfirst = "n,,n=user,r=abc", .password = "x"};
    struct flow f = {.h = SCRAM_SHA256,
                     .cfirst = "n,,n=nobody,r=abc",
                     .password = "pencil",
                     .unknown = true};
    struct flow g = f, h1 = f, other = f, upper = f;
    char *s1, *s2, *s3, *s4;

    other.cfirst = "n,,n=nobody2,r=abc";
    upper.cfirst = "n,,n=NoBody,r=abc"; /* prepares to "nobody" */
    h1.h = SCRAM_SHA1;
    run_flow(&known);
    run_flow(&f);
    run_flow(&g);
    run_flow(&h1);
    run_flow(&other);
    run_flow(&upper);
    CHECK_INT(f.rc_first, 0);
    CHECK_INT(f.rc_final, XE_AUTH);
    CHECK_STR(f.out.data, "e=invalid-proof");
    CHECK_STR(f.out.data, known.out.data);
    /* Same shape as a real account's answer: 16 bytes of salt (base64: 24
     * characters, CL_SALT_MIN), 4096 iterations. */
    s1 = salt_of(f.sfirst.data);
    s2 = salt_of(g.sfirst.data);
    s3 = salt_of(other.sfirst.data);
    s4 = salt_of(h1.sfirst.data);
    CHECK_INT(strlen(s1), 24);
    CHECK(strstr(f.sfirst.data, ",i=4096") != NULL);
    CHECK_STR(s1, s2);          /* stable for one name */
    CHECK(strcmp(s1, s3) != 0); /* differs between names */
    CHECK(strcmp(s1, s4) != 0); /* and between mechanisms */
    free(s4);
    s4 = salt_of(upper.sfirst.data);
    CHECK_STR(s1, s4); /* one name however spelt, as for an account */
    free(s1);
    free(s2);
    free(s3);
    free(s4);
    flow_free(&known);
    flow_free(&f);
    flow_free(&g);
    flow_free(&h1);
    flow_free(&other);
    flow_free(&upper);
}

static void test_unknown_user_iterations(void)
{
    struct scram_server s;
    struct scram_creds only_iter = {.iterations = 10000};
    unsigned char nonce[SCRAM_NONCE_BYTES] = {0};
    struct buf out = {0};
    char user[16];

    REQUIRE(scram_server_init(&s, SCRAM_SHA256, false, NULL) == 0);
    CHECK_INT(scram_server_client_first(&s, "n,,n=ghost,r=x", 14, user, sizeof user), 0);
    CHECK_INT(scram_server_first(&s, &only_iter, nonce, fake_key, &out), 0);
    CHECK(strstr(out.data, ",i=10000") != NULL);
    CHECK(!s.known);
    scram_server_clear(&s);
    buf_free(&out);
}

/* A channel-binding case: mechanism (plus), what the connection offers (cb),
 * the client-first-message and what the client binds. */
static int cb_case(bool plus, const struct scram_cb *cb, const char *cfirst,
                   const void *cbind, size_t cbind_len, struct buf *final_out)
{
    struct flow f = {.h = SCRAM_SHA256,
                     .plus = plus,
                     .cb = cb,
                     .cfirst = cfirst,
                     .cbind = cbind,
                     .cbind_len = cbind_len,
                     .password = "pencil"};

    run_flow(&f);
    if (f.rc_first == 0 && final_out != NULL)
        buf_puts(final_out, f.out.data);
    flow_free(&f);
    return f.rc_first != 0 ? f.rc_first : f.rc_final;
}

static void test_gs2_flags(void)
{
    static const unsigned char exporter[32] = {0xaa, 0xbb, 0xcc};
    struct scram_cb tls_plus = {.tls = true,
                                .cb_name = "tls-exporter",
                                .cb_data = exporter,
                                .cb_len = sizeof exporter};
    struct scram_cb tls_only = {.tls = true};
    struct scram_cb plain = {0};
    const char *gs2 = "p=tls-exporter,,";
    unsigned char good[64], bad[64];
    struct buf out = {0};
    struct scram_server s;

    memcpy(good, gs2, strlen(gs2));
    memcpy(good + strlen(gs2), exporter, sizeof exporter);
    memcpy(bad, good, sizeof good);
    bad[strlen(gs2) + 5] ^= 1;

    /* 'n' is fine without -PLUS, offered or not. */
    CHECK_INT(cb_case(false, &tls_only, "n,,n=user,r=a", NULL, 0, NULL), 0);
    CHECK_INT(cb_case(false, &tls_plus, "n,,n=user,r=a", NULL, 0, NULL), 0);
    CHECK_INT(cb_case(false, NULL, "n,,n=user,r=a", NULL, 0, NULL), 0);
    /* 'y' where no -PLUS was offered: fine; where it was: a downgrade. */
    CHECK_INT(cb_case(false, &plain, "y,,n=user,r=a", NULL, 0, NULL), 0);
    CHECK_INT(cb_case(false, &tls_only, "y,,n=user,r=a", NULL, 0, NULL), 0);
    CHECK_INT(cb_case(false, &tls_plus, "y,,n=user,r=a", NULL, 0, NULL), XE_AUTH);
    /* 'p' on a mechanism without -PLUS. */
    CHECK_INT(cb_case(false, &tls_plus, "p=tls-exporter,,n=user,r=a", NULL, 0, NULL),
              XE_AUTH);
    /* -PLUS: 'n' and 'y' refused; a type not offered is unsupported
     * (RFC 5802 §7), not a downgrade. */
    CHECK_INT(cb_case(true, &tls_plus, "n,,n=user,r=a", NULL, 0, NULL), XE_AUTH);
    CHECK_INT(cb_case(true, &tls_plus, "y,,n=user,r=a", NULL, 0, NULL), XE_AUTH);
    CHECK_INT(
        cb_case(true, &tls_plus, "p=tls-server-end-point,,n=user,r=a", NULL, 0, NULL),
        XE_UNSUPPORTED);
    CHECK_INT(cb_case(true, &tls_plus, "p=tls-exporte,,n=user,r=a", NULL, 0, NULL),
              XE_UNSUPPORTED);
    CHECK_INT(cb_case(true, &tls_plus, "p=tls-unique,,n=user,r=a", NULL, 0, NULL),
              XE_UNSUPPORTED);
    /* After such an attempt the client's 'y' is accepted (y_ok), on -PLUS
     * still not. */
    {
        struct scram_cb tried = tls_plus;
        tried.y_ok = true;
        CHECK_INT(cb_case(false, &tried, "y,,n=user,r=a", NULL, 0, NULL), 0);
        CHECK_INT(cb_case(true, &tried, "y,,n=user,r=a", NULL, 0, NULL), XE_AUTH);
    }
    /* -PLUS with the right data, then with other data. */
    CHECK_INT(cb_case(true, &tls_plus, "p=tls-exporter,,n=user,r=a", good,
                      strlen(gs2) + sizeof exporter, &out),
              0);
    CHECK(strncmp(out.data, "v=", 2) == 0);
    buf_reset(&out);
    CHECK_INT(cb_case(true, &tls_plus, "p=tls-exporter,,n=user,r=a", bad,
                      strlen(gs2) + sizeof exporter, &out),
              XE_AUTH);
    CHECK_STR(out.data, "e=channel-bindings-dont-match");
    buf_reset(&out);
    /* -PLUS where the client binds only the header, without the data. */
    CHECK_INT(
        cb_case(true, &tls_plus, "p=tls-exporter,,n=user,r=a", gs2, strlen(gs2), &out),
        XE_AUTH);
    CHECK_STR(out.data, "e=channel-bindings-dont-match");
    buf_reset(&out);
    /* A header in c= other than the one sent first. */
    CHECK_INT(cb_case(false, &tls_only, "n,,n=user,r=a", "y,,", 3, &out), XE_AUTH);
    CHECK_STR(out.data, "e=channel-bindings-dont-match");
    buf_free(&out);

    /* -PLUS needs channel-binding data on TLS. */
    CHECK_INT(scram_server_init(&s, SCRAM_SHA256, true, NULL), XE_INVAL);
    scram_server_clear(&s);
    CHECK_INT(scram_server_init(&s, SCRAM_SHA256, true, &tls_only), XE_INVAL);
    scram_server_clear(&s);
}

static void test_tls_server_end_point(void)
{
    /* RFC 5929 §4.1: the data is the hash of the server certificate;
     * here just 32 bytes under another type name. */
    static const unsigned char hash[32] = {9, 8, 7};
    struct scram_cb cb = {.tls = true,
                          .cb_name = "tls-server-end-point",
                          .cb_data = hash,
                          .cb_len = sizeof hash};
    const char *gs2 = "p=tls-server-end-point,,";
    unsigned char in[64];

    memcpy(in, gs2, strlen(gs2));
    memcpy(in + strlen(gs2), hash, sizeof hash);
    CHECK_INT(cb_case(true, &cb, "p=tls-server-end-point,,n=user,r=a", in,
                      strlen(gs2) + sizeof hash, NULL),
              0);
    CHECK_INT(
        cb_case(true, &cb, "p=tls-exporter,,n=user,r=a", in, strlen(gs2) + 32, NULL),
        XE_UNSUPPORTED);
}

/* TLS 1.3: tls-exporter and tls-server-end-point both offered (XEP-0440
 * §4); the client binds with either, each with its own data. */
static void test_two_types(void)
{
    static const unsigned char exp[32] = {1, 2, 3}, end[32] = {7, 7, 7};
    struct scram_cb cb = {.tls = true,
                          .cb_name = "tls-exporter",
                          .cb_data = exp,
                          .cb_len = sizeof exp,
                          .alt_name = "tls-server-end-point",
                          .alt_data = end,
                          .alt_len = sizeof end};
    const char *g1 = "p=tls-exporter,,", *g2 = "p=tls-server-end-point,,";
    unsigned char in1[64], in2[64];
    struct scram_server s;

    memcpy(in1, g1, strlen(g1));
    memcpy(in1 + strlen(g1), exp, sizeof exp);
    memcpy(in2, g2, strlen(g2));
    memcpy(in2 + strlen(g2), end, sizeof end);
    CHECK_INT(
        cb_case(true, &cb, "p=tls-exporter,,n=user,r=a", in1, strlen(g1) + 32, NULL), 0);
    CHECK_INT(cb_case(true, &cb, "p=tls-server-end-point,,n=user,r=a", in2,
                      strlen(g2) + 32, NULL),
              0);
    /* the other type's data under a type's name does not match */
    memcpy(in2 + strlen(g2), exp, sizeof exp);
    CHECK_INT(cb_case(true, &cb, "p=tls-server-end-point,,n=user,r=a", in2,
                      strlen(g2) + 32, NULL),
              XE_AUTH);
    /* an alt type without data is a caller's error */
    cb.alt_data = NULL;
    CHECK_INT(scram_server_init(&s, SCRAM_SHA256, true, &cb), XE_INVAL);
    scram_server_clear(&s);
}

static void test_downgrade_attr(void)
{
    /* Computed once with:
     *   printf 'SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1eSCRAM-SHA-256\x1eSCRAM-SHA-256-PLUS'\
     *          '\x1ftls-exporter\x1etls-server-end-point' \
     *     | openssl dgst -sha256 -binary | base64
     * and the same for the other two; the input lists are not sorted. */
    static const char *const mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256",
                                        "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", NULL};
    static const char *const types[] = {"tls-server-end-point", "tls-exporter", NULL};
    static const char *const two[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", NULL};
    static const char *const none[] = {NULL};
    static const char *const sha1_mechs[] = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", NULL};
    struct buf out = {0};

    CHECK_INT(scram_downgrade_attr(SCRAM_SHA256, mechs, types, &out), 0);
    CHECK_STR(out.data, "DiH10h/+iKy8nQZJ+5mswopQ3TcNKFyU22RB46m2ews=");
    buf_reset(&out);
    CHECK_INT(scram_downgrade_attr(SCRAM_SHA256, two, NULL, &out), 0);
    CHECK_STR(out.data, "0/NIECGLXv63MqTb7NyUI9Tqxi40YVZyx61umRrH924=");
    buf_reset(&out);
    /* An empty list of types is no XEP-0440 element: no %x1F. */
    CHECK_INT(scram_downgrade_attr(SCRAM_SHA256, two, none, &out), 0);
    CHECK_STR(out.data, "0/NIECGLXv63MqTb7NyUI9Tqxi40YVZyx61umRrH924=");
    buf_reset(&out);
    CHECK_INT(scram_downgrade_attr(SCRAM_SHA1, sha1_mechs, types, &out), 0);
    CHECK_STR(out.data, "G6k/rBLDqgOhRRaCuuatSDFkJ08=");
    buf_free(&out);
}

static void test_downgrade_in_exchange(void)
{
    static const char *const mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", NULL};
    struct scram_cb cb = {.mechs = mechs};
    struct flow f = {
        .h = SCRAM_SHA256, .cb = &cb, .cfirst = "n,,n=user,r=abc", .password = "pencil"};

    run_flow(&f);
    CHECK(strstr(f.sfirst.data, ",h=0/NIECGLXv63MqTb7NyUI9Tqxi40YVZyx61umRrH924=") !=
          NULL);
    CHECK_INT(f.rc_final, 0); /* the proof covers h (AuthMessage) */
    flow_free(&f);
}

/* first_rc runs scram_server_client_first on a fresh exchange (len bytes). */
static int first_rc(const char *msg, size_t len, char *user, size_t cap)
{
    struct scram_server s;
    char tmp[SCRAM_USER_MAX + 1];
    int rc, again;

    if (user == NULL) {
        user = tmp;
        cap = sizeof tmp;
    }
    if (scram_server_init(&s, SCRAM_SHA256, false, NULL) != 0)
        return 1;
    rc = scram_server_client_first(&s, msg, len, user, cap);
    if (rc != 0) {
        /* A failed exchange stays failed. */
        again = scram_server_client_first(&s, "n,,n=a,r=b", 10, user, cap);
        CHECK_INT(again, XE_STATE);
        CHECK_INT(s.step, SCRAM_FAILED);
    }
    scram_server_clear(&s);
    return rc;
}

#define FIRST(lit) first_rc(lit, sizeof(lit) - 1, NULL, 0)

static void test_client_first_good(void)
{
    struct scram_server s;
    char user[64];

    CHECK_INT(first_rc("n,,n=a=2Cb=3Dc,r=xyz", 20, user, sizeof user), 0);
    CHECK_STR(user, "a,b=c");
    CHECK_INT(FIRST("n,,n=user,r=abc,x=ext,Y=other"), 0); /* unknown extensions */
    CHECK_INT(FIRST("n,,n=j\xc3\xbcliet,r=abc"), 0);      /* UTF-8 name */
    REQUIRE(scram_server_init(&s, SCRAM_SHA256, false, NULL) == 0);
    CHECK_INT(
        scram_server_client_first(&s, "n,a=juliet@x,n=juliet,r=1", 25, user, sizeof user),
        0);
    CHECK_STR(s.authzid, "juliet@x");
    scram_server_clear(&s);
}

static void test_client_first_malformed(void)
{
    CHECK_INT(FIRST(""), XE_PROTO);
    CHECK_INT(FIRST("n"), XE_PROTO);
    CHECK_INT(FIRST("n,"), XE_PROTO);
    CHECK_INT(FIRST("n,,"), XE_PROTO);
    CHECK_INT(FIRST("x,,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("N,,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,r=abc,n=user"), XE_PROTO); /* order, RFC 5802 §7 */
    CHECK_INT(FIRST("n,,n=user"), XE_PROTO);       /* no nonce */
    CHECK_INT(FIRST("n,,n=user,"), XE_PROTO);
    CHECK_INT(FIRST("n,,r=abc"), XE_PROTO); /* no username */
    CHECK_INT(FIRST("n,,n=,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=user,r="), XE_PROTO);
    CHECK_INT(FIRST("n,,n=user,r=a b"), XE_PROTO);      /* nonce not printable */
    CHECK_INT(FIRST("n,,n=user,r=\xc3\xa9"), XE_PROTO); /* nor ASCII */
    CHECK_INT(FIRST("n,,n=user,r=abc,"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=user,r=abc,1=x"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=user,r=abc,x"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=user,r=abc,x="), XE_PROTO);
    CHECK_INT(FIRST("n,,n=u=41,r=abc"), XE_PROTO); /* only =2C and =3D */
    CHECK_INT(FIRST("n,,n=u=2c,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=u=2,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=u=,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=u=3D=,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,m=ext,n=user,r=abc"), XE_PROTO); /* mandatory extension */
    CHECK_INT(FIRST("n,a,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,a=,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,a=x=5,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,b=x,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("p=,,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("p,,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("p=tls exporter,,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("y,n=user,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=us\0er,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=user,r=abc\0"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=\xff,r=abc"), XE_PROTO);
    CHECK_INT(FIRST("n,,n=\xc0\xaf,r=abc"), XE_PROTO);     /* overlong '/' */
    CHECK_INT(FIRST("n,,n=\xed\xa0\x80,r=abc"), XE_PROTO); /* surrogate */
    CHECK_INT(FIRST("n,,n=\xe2\x82,r=abc"), XE_PROTO);     /* truncated */
}

static void test_client_first_limits(void)
{
    char msg[10000], user[8];

    /* A name of SCRAM_USER_MAX bytes passes; one more does not. */
    strcpy(msg, "n,,n=");
    memset(msg + 5, 'u', SCRAM_USER_MAX);
    strcpy(msg + 5 + SCRAM_USER_MAX, ",r=abc");
    CHECK_INT(first_rc(msg, strlen(msg), NULL, 0), 0);
    memset(msg + 5, 'u', SCRAM_USER_MAX + 1);
    strcpy(msg + 5 + SCRAM_USER_MAX + 1, ",r=abc");
    CHECK_INT(first_rc(msg, strlen(msg), NULL, 0), XE_LIMIT);
    /* A nonce of 257 characters. */
    strcpy(msg, "n,,n=user,r=");
    memset(msg + 12, 'r', 257);
    msg[12 + 257] = '\0';
    CHECK_INT(first_rc(msg, strlen(msg), NULL, 0), XE_LIMIT);
    msg[12 + 256] = '\0';
    CHECK_INT(first_rc(msg, strlen(msg), NULL, 0), 0);
    /* A whole message over 8 KiB. */
    strcpy(msg, "n,,n=user,r=abc,x=");
    memset(msg + 18, 'x', 9000);
    msg[18 + 9000] = '\0';
    CHECK_INT(first_rc(msg, strlen(msg), NULL, 0), XE_LIMIT);
    /* The caller's buffer is too small. */
    CHECK_INT(first_rc("n,,n=abcdefgh,r=x", 17, user, sizeof user), XE_LIMIT);
    CHECK_INT(first_rc("n,,n=abcdefg,r=x", 16, user, sizeof user), 0);
}

/* final_rc runs a valid first half (nonce "c" + "srv") then msg as the
 * client-final-message; out receives the server's answer. */
static int final_rc(const char *msg, size_t len, struct buf *out)
{
    struct scram_server s;
    struct creds cr;
    struct buf sf = {0};
    char user[16];
    int rc;

    make_creds(SCRAM_SHA256, "QSXCR+Q6sek8bf92", &cr);
    if (scram_server_init(&s, SCRAM_SHA256, false, NULL) != 0 ||
        scram_server_client_first(&s, "n,,n=user,r=c", 13, user, sizeof user) != 0 ||
        scram__server_first_nonce_text(&s, &cr.c, "srv", fake_key, &sf) != 0)
        return 1;
    buf_free(&sf);
    rc = scram_server_final(&s, msg, len, out);
    if (rc != 0)
        CHECK_INT(scram_server_final(&s, msg, len, out), XE_STATE);
    scram_server_clear(&s);
    return rc;
}

#define FINAL_PROTO(lit)                                                                 \
    do {                                                                                 \
        struct buf o_ = {0};                                                             \
        CHECK_INT(final_rc(lit, sizeof(lit) - 1, &o_), XE_PROTO);                        \
        CHECK_STR(o_.data, "e=other-error");                                             \
        buf_free(&o_);                                                                   \
    } while (0)

static void test_client_final_malformed(void)
{
    /* A proof of the right length for SHA-256 (32 bytes). */
#define P32 "p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    struct buf o = {0};
    char big[10000];

    CHECK_INT(final_rc("c=biws,r=csrv," P32, 6 + 8 + strlen(P32), &o), XE_AUTH);
    CHECK_STR(o.data, "e=invalid-proof");
    buf_free(&o);
    FINAL_PROTO("");
    FINAL_PROTO("c=biws");
    FINAL_PROTO("c=biws,r=csrv"); /* no proof */
    FINAL_PROTO("c=biws,r=csrv,");
    FINAL_PROTO("c=biws," P32);         /* no nonce */
    FINAL_PROTO("r=csrv,c=biws," P32);  /* order */
    FINAL_PROTO("r=csrv," P32);         /* no channel binding */
    FINAL_PROTO("c=biws,r=csrvx," P32); /* nonce mismatch */
    FINAL_PROTO("c=biws,r=csr," P32);
    FINAL_PROTO("c=biws,r=csrw," P32);   /* same length */
    FINAL_PROTO("c=biws,r=c," P32);      /* the client's half only */
    FINAL_PROTO("c=biws,r=csrv,p=AAAA"); /* proof of the wrong length */
    FINAL_PROTO("c=biws,r=csrv,p=!!!!"); /* not base64 */
    FINAL_PROTO("c=biws,r=csrv,p=");
    FINAL_PROTO("c=bi*s,r=csrv," P32);        /* c= not base64 */
    FINAL_PROTO("c=biw,r=csrv," P32);         /* c= unpadded */
    FINAL_PROTO("c=biws,r=csrv," P32 ",x=1"); /* proof not last */
    FINAL_PROTO("c=biws,r=csrv,1=x," P32);
    FINAL_PROTO("c=biws,r=csrv,m," P32);
    FINAL_PROTO("c=biws,r=csrv\0," P32);
    FINAL_PROTO("c=biws,r=csrv,x=\xff," P32);
    memset(big, 'x', sizeof big);
    memcpy(big, "c=biws,r=csrv,x=", 16);
    memcpy(big + 9000, "," P32, 1 + strlen(P32));
    CHECK_INT(final_rc(big, 9001 + strlen(P32), &o), XE_PROTO);
    CHECK_STR(o.data, "e=other-error");
    buf_free(&o);
#undef P32
}

static void test_state_order(void)
{
    struct scram_server s;
    unsigned char nonce[SCRAM_NONCE_BYTES] = {0};
    struct buf out = {0};
    char user[16];

    REQUIRE(scram_server_init(&s, SCRAM_SHA256, false, NULL) == 0);
    CHECK_INT(scram_server_first(&s, NULL, nonce, fake_key, &out), XE_STATE);
    CHECK_INT(s.step, SCRAM_FAILED);
    scram_server_clear(&s);
    REQUIRE(scram_server_init(&s, SCRAM_SHA256, false, NULL) == 0);
    CHECK_INT(scram_server_final(&s, "c=biws", 6, &out), XE_STATE);
    scram_server_clear(&s);
    REQUIRE(scram_server_init(&s, SCRAM_SHA256, false, NULL) == 0);
    CHECK_INT(scram_server_client_first(&s, "n,,n=u,r=a", 10, user, sizeof user), 0);
    CHECK_INT(scram_server_client_first(&s, "n,,n=u,r=a", 10, user, sizeof user),
              XE_STATE);
    scram_server_clear(&s);
    REQUIRE(scram_server_init(&s, SCRAM_SHA256, false, NULL) == 0);
    CHECK_INT(scram_server_client_first(&s, "n,,n=u,r=a", 10, user, sizeof user), 0);
    CHECK_INT(scram__server_first_nonce_text(&s, NULL, "a,b", fake_key, &out), XE_INVAL);
    CHECK_INT(scram__server_first_nonce_text(&s, NULL, "", fake_key, &out), XE_INVAL);
    CHECK_INT(out.len, 0);
    scram_server_clear(&s);
    CHECK_INT(s.step, SCRAM_FAILED);
    buf_free(&out);
}

/* Random and truncated input never crashes and never succeeds. */
static void test_garbage(void)
{
    static const char valid_first[] = "p=tls-exporter,a=x,n=us=2Cer,r=abcdef,x=1";
    static const char valid_final[] =
        "c=biws,r=csrv,x=y,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    char msg[128];
    uint32_t seed = 12345;

    for (size_t n = 0; n < sizeof valid_first - 1; n++) {
        /* Prefixes ending inside "r=abcdef" parse, then 'p' is refused on
         * a mechanism without -PLUS; every other prefix is malformed. */
        bool parses = n >= strlen("p=tls-exporter,a=x,n=us=2Cer,r=a") &&
                      n <= strlen("p=tls-exporter,a=x,n=us=2Cer,r=abcdef");

        CHECK_INT(first_rc(valid_first, n, NULL, 0), parses ? XE_AUTH : XE_PROTO);
    }
    for (size_t n = 0; n < sizeof valid_final - 1; n++) {
        struct buf o = {0};
        int rc = final_rc(valid_final, n, &o);
        CHECK(rc == XE_PROTO || rc == XE_AUTH);
        buf_free(&o);
    }
    for (int round = 0; round < 3000; round++) {
        size_t len = (seed = seed * 1103515245u + 12345u) % sizeof msg;
        struct buf o = {0};

        memcpy(msg, round % 2 ? valid_first : valid_final, 40);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 4 == 0)
                msg[i] = (char)(seed >> 8);
        }
        int rc = first_rc(msg, len, NULL, 0);
        CHECK(rc == 0 || rc == XE_PROTO || rc == XE_AUTH || rc == XE_LIMIT);
        CHECK(final_rc(msg, len, &o) != 0);
        buf_free(&o);
    }
}

TL_MAIN(T(test_rfc5802_sha1), T(test_rfc7677_sha256), T(test_xep0474_example),
        T(test_derive_checks), T(test_bytes_nonce_success), T(test_wrong_proof),
        T(test_unknown_user), T(test_unknown_user_iterations), T(test_gs2_flags),
        T(test_tls_server_end_point), T(test_two_types), T(test_downgrade_attr),
        T(test_downgrade_in_exchange), T(test_client_first_good),
        T(test_client_first_malformed), T(test_client_first_limits),
        T(test_client_final_malformed), T(test_state_order), T(test_garbage))
