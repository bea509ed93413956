/* tls.c: TLS sessions over OpenSSL memory BIOs (contract in tls.h).
 *
 * Each session owns two memory BIOs: rbio holds ciphertext the socket gave
 * us and OpenSSL has not consumed yet; wbio holds ciphertext OpenSSL made
 * for the socket.  An empty rbio reports "retry" rather than end of file,
 * so OpenSSL answers SSL_ERROR_WANT_READ and we simply wait for more bytes.
 *
 * The handoff: a server session that has no use for OpenSSL after its
 * handshake (TLS 1.3, one of our three suites, no client certificate to
 * report) moves to the record layer of tlsrec.c the moment the handshake
 * completes, and its SSL (about 14 KiB) is freed.  The traffic secrets
 * come from OpenSSL's keylog callback (kept per session until then, never
 * logged); what callers read later (version, cipher, the RFC 9266
 * exporter value) is kept.  Every other session keeps its SSL. */
#include "tls.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "pki.h"
#include "srv.h"
#include "tlsrec.h"

/* TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers
 * only, after RFC 9325 §4.2 and the "intermediate" profile most operators
 * know; TLS 1.3 suites are all AEAD and keep OpenSSL's default list. */
#define TLS12_CIPHERS                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                         \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* TLS 1.3 suites, all AEAD (RFC 8446 §9.1: TLS_AES_128_GCM_SHA256 is the
 * one every implementation must have).  A server picks in this order
 * rather than the client's: OpenSSL clients put AES-256/SHA-384 first,
 * and the SHA-256 key schedule and transcript (HKDF, RFC 8446 §7.1) are
 * the cheaper ones (docs/benchmarks.md, "CPU per login").  A client that
 * puts ChaCha20 first (no AES instructions) still gets it
 * (SSL_OP_PRIORITIZE_CHACHA). */
#define TLS13_SUITES                                                                     \
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

#define READ_CHUNK 16384
#define WRITE_CHUNK (1024 * 1024)
/* An empty memory BIO holding more than this is replaced by a fresh one. */
#define BIO_KEEP_MAX 1024

struct tls_ctx {
    SSL_CTX *ssl; /* one reference; each SSL holds another */
    enum tls_role role;
    bool verify_peer;
};

/* The secrets OpenSSL reports through the keylog callback during a
 * handshake that may be handed off (RFC 8446 §7.1
 * client/server_application_traffic_secret_0 and exporter_master_secret,
 * which tlsrec_exporter derives the RFC 9266 value from without an
 * SSL_export_keying_material call per login).  Plain heap memory, wiped
 * when freed: OpenSSL keeps the same secrets in its own heap, and a
 * sodium_malloc guard page per connection would cost more than the SSL
 * this replaces. */
struct tls_secrets {
    unsigned char client[TLSREC_MAX_SECRET], server[TLSREC_MAX_SECRET];
    unsigned char exporter[TLSREC_MAX_SECRET];
    size_t client_len, server_len, exporter_len;
};

struct tls_conn {
    SSL *ssl; /* owns rbio and wbio; NULL after the handoff */
    BIO *rbio, *wbio;
    enum tls_role role;
    bool verify_peer;
    bool established, failed, closed, peer_closed;
    struct buf held;             /* plaintext written before the handshake finished */
    struct tls_secrets *secrets; /* a handoff candidate, until its handshake ends */
    /* After the handoff: */
    struct tlsrec *rec;
    struct buf out;          /* ciphertext for the socket */
    SSL_CTX *sctx;           /* a reference: our certificate (tls_conn_binding) */
    const char *cipher_name; /* static in libssl */
    unsigned char exporter[32];
    char err[256];
};

const char *tls_mode_name(enum tls_mode mode)
{
    switch (mode) {
    case TLS_MODE_OFF:
        return "off";
    case TLS_MODE_OPTIONAL:
        return "optional";
    case TLS_MODE_REQUIRED:
        return "required";
    }
    return "?";
}

int tls_mode_parse(const char *name, enum tls_mode *out)
{
    static const enum tls_mode all[] = {TLS_MODE_OFF, TLS_MODE_OPTIONAL,
                                        TLS_MODE_REQUIRED};

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, tls_mode_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return XE_INVAL;
}

/* ---- contexts ---- */

/* hex_secret decodes the hex secret at the end of a keylog line into out
 * (TLSREC_MAX_SECRET bytes); returns its length, 0 if it is not one. */
static size_t hex_secret(const char *hex, unsigned char *out)
{
    size_t n = strlen(hex);

    if (n == 0 || n % 2 != 0 || n / 2 > TLSREC_MAX_SECRET)
        return 0;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
        int lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return n / 2;
}

/* keep_secret is the keylog callback of server contexts: it keeps the
 * application traffic secrets of a session that may be handed off.  A line
 * is "LABEL <client_random hex> <secret hex>" (the NSS key log format);
 * nothing is logged. */
static void keep_secret(const SSL *ssl, const char *line)
{
    struct tls_conn *t = SSL_get_app_data(ssl);
    struct tls_secrets *k = t != NULL ? t->secrets : NULL;
    unsigned char *out;
    size_t *len;
    const char *sp;

    if (k == NULL)
        return;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
        out = k->client, len = &k->client_len, sp = line + 24;
    else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
        out = k->server, len = &k->server_len, sp = line + 24;
    else if (strncmp(line, "EXPORTER_SECRET ", 16) == 0)
        out = k->exporter, len = &k->exporter_len, sp = line + 16;
    else
        return;
    /* Past the client random. */
    sp = strchr(sp, ' ');
    if (sp == NULL)
        return;
    *len = hex_secret(sp + 1, out);
}

/* setup_policy applies the protocol policy of tls.h to c. */
static int setup_policy(SSL_CTX *c, const struct tls_ctx_opts *o)
{
    if (!SSL_CTX_set_min_proto_version(c,
                                       o->tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION))
        return XE_TLS;
    if (!SSL_CTX_set_cipher_list(c, TLS12_CIPHERS) ||
        !SSL_CTX_set_ciphersuites(c, TLS13_SUITES))
        return XE_TLS;
    /* No compression (CRIME), no renegotiation (RFC 9325 §3.5; TLS 1.3 has
     * none), no session resumption state kept for strangers. */
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_TICKET);
    /* Idle connections give their 16 KiB read and write buffers back. */
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    if (o->role == TLS_ROLE_SERVER && !o->verify_peer)
        SSL_CTX_set_keylog_callback(c, keep_secret);
    if (o->role == TLS_ROLE_SERVER) {
        SSL_CTX_set_options(c,
                            SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(c, 0);
    }
    return 0;
}

/* load_identity puts our key and certificate (with any chain certificates
 * that followed it in its file), as pki_load_identity read and checked
 * them, into c, and completes the chain from the bundle.  key and certs are
 * borrowed. */
static int load_identity(SSL_CTX *c, const struct tls_ctx_opts *o, EVP_PKEY *key,
                         STACK_OF(X509) * certs, char *why, size_t why_len)
{
    STACK_OF(X509) *chain = sk_X509_dup(certs);
    X509 *leaf;
    int ok;

    if (chain == NULL)
        return pki_ssl_fail(why, why_len, XE_NOMEM, "out of memory");
    leaf = sk_X509_shift(chain);
    /* The chain is copied (references taken): ours is only a view. */
    ok = SSL_CTX_use_cert_and_key(c, leaf, key, chain, 1);
    sk_X509_free(chain);
    if (ok != 1)
        return pki_ssl_fail(why, why_len, XE_TLS, "cannot use the key %s with %s: %s",
                            o->key_path, o->cert_path,
                            pki_ssl_reason(ERR_peek_last_error()));
    if (o->bundle_path != NULL) {
        /* Intermediates from the bundle go out with our certificate; the
         * root does not (the peer has it, RFC 8446 §4.4.2). */
        SSL_CTX_build_cert_chain(c, SSL_BUILD_CHAIN_FLAG_NO_ROOT |
                                        SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR);
        ERR_clear_error();
    }
    return 0;
}

/* setup_verify sets whether c checks its peers' certificates. */
static void setup_verify(SSL_CTX *c, const struct tls_ctx_opts *o)
{
    int mode = SSL_VERIFY_PEER;

    if (!o->verify_peer) {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
        return;
    }
    if (o->role == TLS_ROLE_SERVER) {
        /* Mutual TLS: no certificate, no session; tell clients which CAs we
         * accept (RFC 8446 §4.2.4). */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->bundle_path);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(c, names);
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(c, mode, NULL);
}

static size_t end_point_hash(X509 *cert, unsigned char *out, size_t cap);

/* The tls-server-end-point value of our own certificate (RFC 5929 §4.1)
 * depends on the certificate alone: it is hashed once per context and
 * kept with the SSL_CTX (ex_data, freed with it: an SSL made before a
 * `xmpp certs` swap keeps its own context), not once per login. */
struct ep_cache {
    size_t len;
    unsigned char md[EVP_MAX_MD_SIZE];
};

static int ep_index = -1;

static void ep_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                    void *argp)
{
    free(ptr);
}

/* ep_remember hashes the certificate of server context c and keeps the
 * value on c.  Without it (out of memory) each login hashes, as before. */
static void ep_remember(SSL_CTX *c)
{
    X509 *cert = SSL_CTX_get0_certificate(c);
    struct ep_cache *e;

    if (ep_index < 0)
        ep_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ep_free);
    if (ep_index < 0 || cert == NULL || (e = calloc(1, sizeof *e)) == NULL)
        return;
    e->len = end_point_hash(cert, e->md, sizeof e->md);
    if (SSL_CTX_set_ex_data(c, ep_index, e) != 1)
        free(e);
}

/* ctx_end_point writes the tls-server-end-point hash of cert, a server's
 * own certificate, to out: the one ep_remember kept for ctx when cert is
 * ctx's, else hashed now.  Returns its length (0: none). */
static size_t ctx_end_point(SSL_CTX *ctx, X509 *cert, unsigned char *out, size_t cap)
{
    const struct ep_cache *ep = ep_index >= 0 ? SSL_CTX_get_ex_data(ctx, ep_index) : NULL;

    if (ep != NULL && cert == SSL_CTX_get0_certificate(ctx) && ep->len <= cap) {
        memcpy(out, ep->md, ep->len);
        return ep->len;
    }
    return cert != NULL ? end_point_hash(cert, out, cap) : 0;
}

int tls_ctx_new(const struct tls_ctx_opts *o, struct tls_ctx **out, char *why,
                size_t why_len)
{
    struct tls_ctx *t = NULL;
    bool has_identity = o->key_path != NULL && o->cert_path != NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *certs = NULL;
    int rc;

    *out = NULL;
    ERR_clear_error();
    if ((o->key_path == NULL) != (o->cert_path == NULL))
        return pki_ssl_fail(why, why_len, XE_INVAL,
                            "a key needs its certificate and back");
    if (o->role == TLS_ROLE_SERVER && !has_identity)
        return pki_ssl_fail(
            why, why_len, XE_INVAL,
            "TLS needs a key and a certificate (xmpp certs <key> <cert>)");
    if (o->verify_peer && o->bundle_path == NULL)
        return pki_ssl_fail(why, why_len, XE_INVAL,
                            "verifying peers needs a CA bundle to check them against");
    if (has_identity) {
        /* The checks `xmpp enable` relies on (pki.h), done once here, on the
         * very key and certificates the context then uses. */
        rc = pki_load_identity(o->key_path, o->cert_path,
                               o->role == TLS_ROLE_SERVER ? o->bundle_path : NULL, 0,
                               &key, &certs, why, why_len);
        if (rc < 0)
            return rc;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        rc = pki_ssl_fail(why, why_len, XE_NOMEM, "out of memory");
        goto err;
    }
    t->role = o->role;
    t->verify_peer = o->verify_peer;
    t->ssl = SSL_CTX_new(o->role == TLS_ROLE_SERVER ? TLS_server_method()
                                                    : TLS_client_method());
    if (t->ssl == NULL) {
        rc = pki_ssl_fail(why, why_len, XE_TLS, "cannot create a TLS context: %s",
                          pki_ssl_reason(ERR_peek_last_error()));
        goto err;
    }
    rc = setup_policy(t->ssl, o);
    if (rc < 0) {
        rc = pki_ssl_fail(why, why_len, rc, "cannot set the TLS policy: %s",
                          pki_ssl_reason(ERR_peek_last_error()));
        goto err;
    }
    if (o->bundle_path != NULL && SSL_CTX_load_verify_file(t->ssl, o->bundle_path) != 1) {
        rc = pki_ssl_fail(why, why_len, XE_TLS, "cannot load the CA bundle %s: %s",
                          o->bundle_path, pki_ssl_reason(ERR_peek_last_error()));
        goto err;
    }
    if (has_identity) {
        rc = load_identity(t->ssl, o, key, certs, why, why_len);
        if (rc < 0)
            goto err;
    }
    setup_verify(t->ssl, o);
    if (has_identity && o->role == TLS_ROLE_SERVER)
        ep_remember(t->ssl);
    ERR_clear_error();
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    *out = t;
    return 0;

err:
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    tls_ctx_free(t);
    return rc;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

enum tls_role tls_ctx_role(const struct tls_ctx *ctx)
{
    return ctx->role;
}

int tls_check_files(const char *key_path, const char *cert_path, const char *bundle_path,
                    char *why, size_t why_len)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER,
                             .key_path = key_path,
                             .cert_path = cert_path,
                             .bundle_path = bundle_path};
    struct tls_ctx *c;
    int rc = tls_ctx_new(&o, &c, why, why_len);

    tls_ctx_free(c);
    return rc;
}

/* ---- sessions ---- */

static bool is_ip(const char *s)
{
    unsigned char a[16];

    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int tls_conn_new(struct tls_ctx *ctx, const char *peer_name, struct tls_conn **out)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    int rc = XE_TLS;

    *out = NULL;
    if (t == NULL)
        return XE_NOMEM;
    ERR_clear_error();
    t->role = ctx->role;
    t->verify_peer = ctx->verify_peer;
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        rc = XE_NOMEM;
        goto err;
    }
    /* Empty means "wait for more", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (ctx->role == TLS_ROLE_SERVER) {
        SSL_set_accept_state(t->ssl);
        /* A handoff candidate: no client certificate is asked for, so
         * nothing needs OpenSSL after the handshake. */
        if (!ctx->verify_peer) {
            t->secrets = calloc(1, sizeof *t->secrets);
            if (t->secrets == NULL) {
                rc = XE_NOMEM;
                goto err;
            }
            SSL_set_app_data(t->ssl, t);
        }
        *out = t;
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (peer_name != NULL && peer_name[0] != '\0') {
        if (is_ip(peer_name)) {
            X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
            if (ctx->verify_peer && X509_VERIFY_PARAM_set1_ip_asc(p, peer_name) != 1)
                goto err;
        } else {
            /* Whole-label wildcards only (RFC 6125 §6.4.3). */
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (ctx->verify_peer && SSL_set1_host(t->ssl, peer_name) != 1)
                goto err;
            if (SSL_set_tlsext_host_name(t->ssl, peer_name) != 1)
                goto err;
        }
    }
    /* Queue the ClientHello. */
    if (SSL_do_handshake(t->ssl) != 1 && SSL_get_error(t->ssl, -1) != SSL_ERROR_WANT_READ)
        goto err;
    ERR_clear_error();
    *out = t;
    return 0;

err:
    ERR_clear_error();
    tls_conn_free(t);
    return rc;
}

/* drop_secrets wipes and frees the kept traffic secrets. */
static void drop_secrets(struct tls_conn *t)
{
    if (t->secrets == NULL)
        return;
    OPENSSL_cleanse(t->secrets, sizeof *t->secrets);
    free(t->secrets);
    t->secrets = NULL;
}

void tls_conn_free(struct tls_conn *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    drop_secrets(t);
    tlsrec_free(t->rec);
    SSL_CTX_free(t->sctx);
    buf_free(&t->out);
    OPENSSL_cleanse(t->exporter, sizeof t->exporter);
    if (t->held.data != NULL)
        OPENSSL_cleanse(t->held.data, t->held.cap);
    buf_free(&t->held);
    free(t);
}

static const char *version_name(int v)
{
    switch (v) {
    case SSL3_VERSION:
        return "SSL 3.0";
    case TLS1_VERSION:
        return "TLS 1.0";
    case TLS1_1_VERSION:
        return "TLS 1.1";
    case TLS1_2_VERSION:
        return "TLS 1.2";
    case TLS1_3_VERSION:
        return "TLS 1.3";
    }
    return "an unknown protocol version";
}

/* describe_failure turns OpenSSL's error queue after a failed handshake or
 * read into one line for the log, naming the usual causes plainly. */
static void describe_failure(struct tls_conn *t, int ssl_err)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    const char *rs = e ? ERR_reason_error_string(e) : NULL;
    long vr = SSL_get_verify_result(t->ssl);
    char *m = t->err;
    size_t ml = sizeof t->err;

    if (e == 0) {
        snprintf(m, ml, "%s",
                 ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN
                     ? "the TLS stream ended unexpectedly"
                     : "TLS failure without a reason from OpenSSL");
        return;
    }
    switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_WRONG_SSL_VERSION:
        if (t->role == TLS_ROLE_SERVER && SSL_client_version(t->ssl) != 0 &&
            SSL_client_version(t->ssl) < TLS1_2_VERSION)
            snprintf(m, ml, "peer offered only %s (TLS 1.2 or 1.3 required)",
                     version_name(SSL_client_version(t->ssl)));
        else
            snprintf(m, ml, "no protocol version in common with the peer (%s)",
                     rs ? rs : "unsupported protocol");
        return;
    case SSL_R_NO_SHARED_CIPHER:
        snprintf(m, ml,
                 "no cipher suite in common with the peer (TLS 1.2 needs ECDHE "
                 "with AES-GCM or ChaCha20-Poly1305)");
        return;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        snprintf(m, ml, "peer sent no certificate (mutual TLS requires one)");
        return;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        snprintf(m, ml, "peer certificate not trusted: %s",
                 vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "verify failed");
        return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_BAD_PACKET_LENGTH:
        snprintf(m, ml, "not a TLS stream from the peer (%s)", rs ? rs : "bad record");
        return;
    }
    if (reason >= SSL_AD_REASON_OFFSET) {
        /* The peer sent a fatal alert: "tlsv1 alert unknown ca" means it
         * does not trust our certificate. */
        if (reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
            reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
            reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN)
            snprintf(m, ml, "peer rejected our certificate (alert: %s)", rs ? rs : "?");
        else
            snprintf(m, ml, "peer sent a fatal alert: %s", rs ? rs : "?");
        return;
    }
    snprintf(m, ml, "TLS error: %s", rs ? rs : "unknown");
}

/* set_failed marks t failed after an SSL call returned ret. */
static int set_failed(struct tls_conn *t, int ret)
{
    int ssl_err = SSL_get_error(t->ssl, ret);

    t->failed = true;
    describe_failure(t, ssl_err);
    ERR_clear_error();
    return XE_TLS;
}

/* rec_result notes in t what a record layer call returned (rc). */
static int rec_result(struct tls_conn *t, int rc)
{
    if (rc == XE_TLS || rc == XE_STATE) {
        t->failed = true;
        if (t->err[0] == '\0')
            snprintf(t->err, sizeof t->err, "TLS record layer failed");
    } else if (rc == XE_CLOSED) {
        t->peer_closed = true;
        t->closed = true;
    }
    return rc;
}

/* rec_feed passes ciphertext to the record layer (after the handoff). */
static int rec_feed(struct tls_conn *t, const char *data, size_t len, struct buf *plain)
{
    return rec_result(
        t, tlsrec_feed(t->rec, data, len, plain, &t->out, t->err, sizeof t->err));
}

/* write_now encrypts len bytes into wbio (or the record layer's out). */
static int write_now(struct tls_conn *t, const char *data, size_t len)
{
    if (t->rec != NULL) {
        int rc = tlsrec_write(t->rec, data, len, &t->out);
        return rc == XE_NOMEM ? rc : rec_result(t, rc);
    }
    while (len > 0) {
        int n = (int)(len > WRITE_CHUNK ? WRITE_CHUNK : len);
        int w;

        ERR_clear_error();
        w = SSL_write(t->ssl, data, n);
        if (w <= 0)
            return set_failed(t, w);
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* close_now queues our close_notify (RFC 8446 §6.1). */
static void close_now(struct tls_conn *t)
{
    if (t->rec != NULL) {
        tlsrec_close(t->rec, &t->out);
        return;
    }
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

/* can_hand_off: t's finished handshake leaves nothing that needs its SSL,
 * and the record layer can start where OpenSSL stops; *suite gets the
 * cipher suite. */
static bool can_hand_off(struct tls_conn *t, uint16_t *suite)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    size_t slen;

    if (t->secrets == NULL || c == NULL || SSL_version(t->ssl) != TLS1_3_VERSION)
        return false;
    *suite = SSL_CIPHER_get_protocol_id(c);
    if (!tlsrec_suite_ok(*suite, &slen) || t->secrets->client_len != slen ||
        t->secrets->server_len != slen || t->secrets->exporter_len != slen)
        return false;
    /* Both sequence numbers start at 0 (RFC 8446 §5.3) only if the server
     * sent nothing after its Finished (no NewSessionTicket, §4.6.1) and
     * OpenSSL read no record after the client's Finished (no early data,
     * §4.2.10; nothing decrypted and waiting inside the SSL). */
    if (SSL_get_num_tickets(t->ssl) != 0 ||
        (SSL_get_options(t->ssl) & SSL_OP_NO_TICKET) == 0)
        return false;
    if (SSL_get_early_data_status(t->ssl) == SSL_EARLY_DATA_ACCEPTED ||
        SSL_has_pending(t->ssl))
        return false;
    /* tls_conn_peer would have nothing to read it from. */
    return SSL_get0_peer_certificate(t->ssl) == NULL;
}

/* hand_off moves t, whose handshake has just completed, from its SSL to a
 * record layer: OpenSSL's pending output goes first into t->out, the
 * ciphertext it has not read (what the client sent after its Finished)
 * into unread, for the record layer.  Any reason not to leaves t on its
 * SSL.  0 or XE_NOMEM/XE_TLS (t failed). */
static int hand_off(struct tls_conn *t, struct buf *unread)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    size_t nw = (size_t)BIO_ctrl_pending(t->wbio), nr = (size_t)BIO_ctrl_pending(t->rbio);
    uint16_t suite = 0;
    int rc;

    if (!can_hand_off(t, &suite)) {
        drop_secrets(t);
        return 0;
    }
    /* RFC 9266 §2 / RFC 8446 §7.5: kept for tls_conn_binding; the value
     * SSL_export_keying_material would give (io/test_tlsrec checks it). */
    if (tlsrec_exporter(suite, t->secrets->exporter, t->secrets->exporter_len, label,
                        t->exporter, sizeof t->exporter) != 0) {
        ERR_clear_error();
        drop_secrets(t);
        return 0;
    }
    rc = tlsrec_new(suite, t->secrets->client, t->secrets->server, t->secrets->client_len,
                    &t->rec);
    drop_secrets(t);
    if (rc < 0 || buf_reserve(&t->out, nw) < 0 || buf_reserve(unread, nr) < 0) {
        tlsrec_free(t->rec);
        t->rec = NULL;
        OPENSSL_cleanse(t->exporter, sizeof t->exporter);
        ERR_clear_error();
        return 0;
    }
    if ((nw > 0 && BIO_read(t->wbio, t->out.data + t->out.len, (int)nw) != (int)nw) ||
        (nr > 0 && BIO_read(t->rbio, unread->data + unread->len, (int)nr) != (int)nr)) {
        t->failed = true;
        snprintf(t->err, sizeof t->err, "TLS handoff: memory BIO read failed");
        return XE_TLS;
    }
    t->out.len += nw;
    unread->len += nr;
    t->cipher_name = SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
    t->sctx = SSL_get_SSL_CTX(t->ssl);
    SSL_CTX_up_ref(t->sctx);
    SSL_free(t->ssl);
    t->ssl = NULL;
    t->rbio = t->wbio = NULL;
    ERR_clear_error();
    return 0;
}

/* handshake advances the handshake; 0 while it goes on or when it is done.
 * After a handoff, unread holds the ciphertext for the record layer. */
static int handshake(struct tls_conn *t, struct buf *unread)
{
    int rc;

    ERR_clear_error();
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->established = true;
        if (t->secrets != NULL) {
            rc = hand_off(t, unread);
            if (rc < 0)
                return rc;
        }
        if (t->held.len > 0) {
            rc = write_now(t, t->held.data, t->held.len);
            OPENSSL_cleanse(t->held.data, t->held.len);
            buf_free(&t->held);
            if (rc < 0)
                return rc;
        }
        if (t->closed)
            close_now(t);
        return 0;
    }
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        return set_failed(t, rc);
    }
}

/* fresh_bio gives back the buffer of an empty memory BIO that grew past
 * BIO_KEEP_MAX (a handshake flight, a large stanza): a BIO_s_mem keeps its
 * largest size for good, which idle connections would hold.  *b is the
 * session's rbio (is_read) or wbio; on any failure the old one stays. */
static void fresh_bio(struct tls_conn *t, BIO **b, bool is_read)
{
    BUF_MEM *bm = NULL;
    BIO *nb;

    if (BIO_ctrl_pending(*b) != 0 || BIO_get_mem_ptr(*b, &bm) != 1 || bm == NULL ||
        bm->max <= BIO_KEEP_MAX)
        return;
    nb = BIO_new(BIO_s_mem());
    if (nb == NULL)
        return;
    BIO_set_mem_eof_return(nb, -1);
    if (is_read)
        SSL_set0_rbio(t->ssl, nb); /* frees the old one */
    else
        SSL_set0_wbio(t->ssl, nb);
    *b = nb;
}

int tls_conn_feed(struct tls_conn *t, const char *data, size_t len, struct buf *plain)
{
    char chunk[READ_CHUNK];
    int rc;

    if (t->failed)
        return XE_TLS;
    if (t->peer_closed)
        return XE_CLOSED;
    if (t->rec != NULL)
        return rec_feed(t, data, len, plain);
    while (len > 0) {
        int n = (int)(len > WRITE_CHUNK ? WRITE_CHUNK : len);
        int w = BIO_write(t->rbio, data, n);
        if (w <= 0)
            return XE_NOMEM;
        data += w;
        len -= (size_t)w;
    }
    if (!t->established) {
        struct buf unread = {0};

        rc = handshake(t, &unread);
        if (rc == 0 && t->rec != NULL)
            rc = rec_feed(t, unread.data, unread.len, plain);
        buf_free(&unread);
        if (rc < 0 || !t->established || t->rec != NULL)
            return rc;
    }
    for (;;) {
        int r;

        ERR_clear_error();
        r = SSL_read(t->ssl, chunk, sizeof chunk);
        if (r > 0) {
            if (buf_append(plain, chunk, (size_t)r) < 0)
                return XE_NOMEM;
            continue;
        }
        switch (SSL_get_error(t->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            fresh_bio(t, &t->rbio, true);
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            /* close_notify (RFC 8446 §6.1): answer it if we have not. */
            t->peer_closed = true;
            if (!t->closed) {
                t->closed = true;
                SSL_shutdown(t->ssl);
            }
            ERR_clear_error();
            return XE_CLOSED;
        default:
            return set_failed(t, r);
        }
    }
}

int tls_conn_write(struct tls_conn *t, const char *data, size_t len)
{
    if (t->failed || t->closed)
        return XE_STATE;
    if (len == 0)
        return 0;
    if (!t->established)
        return buf_append(&t->held, data, len) < 0 ? XE_NOMEM : 0;
    return write_now(t, data, len);
}

void tls_conn_close(struct tls_conn *t)
{
    if (t->closed || t->failed)
        return;
    t->closed = true;
    if (t->established)
        close_now(t);
    /* Not established: held bytes go out after the handshake, then the
     * close_notify (handshake()). */
}

int tls_conn_take_out(struct tls_conn *t, struct buf *out)
{
    size_t n;

    if (t->ssl == NULL) {
        if (t->out.len == 0)
            return 0;
        if (buf_append(out, t->out.data, t->out.len) < 0)
            return XE_NOMEM;
        /* An idle connection keeps no buffer at all. */
        buf_free(&t->out);
        return 0;
    }
    n = (size_t)BIO_ctrl_pending(t->wbio);
    if (n == 0)
        return 0;
    if (buf_reserve(out, n) < 0)
        return XE_NOMEM;
    if (BIO_read(t->wbio, out->data + out->len, (int)n) != (int)n)
        return XE_TLS;
    out->len += n;
    out->data[out->len] = '\0';
    fresh_bio(t, &t->wbio, false);
    return 0;
}

size_t tls_conn_pending_out(const struct tls_conn *t)
{
    if (t->ssl == NULL)
        return t->out.len;
    return (size_t)BIO_ctrl_pending(t->wbio);
}

size_t tls_conn_held(const struct tls_conn *t)
{
    return t->held.len;
}

bool tls_conn_established(const struct tls_conn *t)
{
    return t->established && !t->failed;
}

bool tls__handed_off(const struct tls_conn *t)
{
    return t->rec != NULL;
}

bool tls_conn_failed(const struct tls_conn *t)
{
    return t->failed;
}

const char *tls_conn_error(const struct tls_conn *t)
{
    return t->err;
}

const char *tls_conn_version(const struct tls_conn *t)
{
    if (t->rec != NULL)
        return "TLSv1.3";
    return t->established ? SSL_get_version(t->ssl) : "none";
}

const char *tls_conn_cipher(const struct tls_conn *t)
{
    if (t->rec != NULL)
        return t->cipher_name;
    return t->established ? SSL_get_cipher_name(t->ssl) : "none";
}

/* ---- the peer's certificate ---- */

static void format_sans(X509 *cert, char *out, size_t outlen)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    size_t used = 0;

    out[0] = '\0';
    if (names == NULL)
        return;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && used < outlen; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char one[INET6_ADDRSTRLEN + 8] = "";
        int n;

        if (g->type == GEN_DNS) {
            const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
            n = ASN1_STRING_length(g->d.dNSName);
            snprintf(one, sizeof one, "DNS:%.*s", n > 200 ? 200 : n, (const char *)s);
        } else if (g->type == GEN_IPADD) {
            const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
            char ip[INET6_ADDRSTRLEN] = "?";
            n = ASN1_STRING_length(g->d.iPAddress);
            if (n == 4)
                inet_ntop(AF_INET, a, ip, sizeof ip);
            else if (n == 16)
                inet_ntop(AF_INET6, a, ip, sizeof ip);
            snprintf(one, sizeof one, "IP:%s", ip);
        } else {
            continue;
        }
        n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", one);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    GENERAL_NAMES_free(names);
}

int tls_conn_peer(const struct tls_conn *t, struct tls_peer_info *out)
{
    X509 *cert;
    BIO *b;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct tm tm;

    memset(out, 0, sizeof *out);
    if (!tls_conn_established(t))
        return XE_STATE;
    if (t->rec != NULL)
        return XE_NOTFOUND; /* handed off only without a peer certificate */
    cert = SSL_get0_peer_certificate(t->ssl);
    if (cert == NULL)
        return XE_NOTFOUND;
    out->has_cert = true;
    out->verified = SSL_get_verify_result(t->ssl) == X509_V_OK && t->verify_peer;
    b = BIO_new(BIO_s_mem());
    if (b != NULL) {
        int n;
        X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        n = BIO_read(b, out->subject, (int)sizeof out->subject - 1);
        out->subject[n > 0 ? n : 0] = '\0';
        BIO_free(b);
    }
    format_sans(cert, out->sans, sizeof out->sans);
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) {
        for (unsigned i = 0; i < mdlen && 2 * i + 2 < sizeof out->fingerprint; i++)
            snprintf(out->fingerprint + 2 * i, 3, "%02x", md[i]);
    }
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
        out->not_after = timegm(&tm);
    ERR_clear_error();
    return 0;
}

/* ---- channel binding ---- */

/* end_point_hash writes RFC 5929 §4.1 tls-server-end-point of cert into out
 * (cap bytes); returns the length, 0 when it is not defined for cert. */
static size_t end_point_hash(X509 *cert, unsigned char *out, size_t cap)
{
    int md_nid = NID_undef, pk_nid = NID_undef;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const EVP_MD *h;

    if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) ||
        md_nid == NID_undef)
        return 0;
    /* "if the certificate's signatureAlgorithm uses ... MD5 or SHA-1, then
     * use SHA-256" (RFC 5929 §4.1). */
    if (md_nid == NID_md5 || md_nid == NID_sha1)
        md_nid = NID_sha256;
    h = EVP_get_digestbynid(md_nid);
    if (h == NULL || X509_digest(cert, h, md, &mdlen) != 1 || mdlen > cap)
        return 0;
    memcpy(out, md, mdlen);
    return mdlen;
}

int tls_conn_binding(const struct tls_conn *t, struct srv_tls_info *out)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    X509 *cert;

    memset(out, 0, sizeof *out);
    if (!tls_conn_established(t))
        return XE_STATE;
    if (t->rec != NULL) {
        /* A handed-off session is a TLS 1.3 server's: the exporter value
         * was kept at the handoff. */
        out->tls13 = true;
        out->endpoint_len = ctx_end_point(t->sctx, SSL_CTX_get0_certificate(t->sctx),
                                          out->endpoint, sizeof out->endpoint);
        memcpy(out->exporter, t->exporter, sizeof t->exporter);
        out->exporter_len = sizeof out->exporter;
        ERR_clear_error();
        return 0;
    }
    out->tls13 = SSL_version(t->ssl) == TLS1_3_VERSION;
    if (t->role == TLS_ROLE_SERVER)
        out->endpoint_len =
            ctx_end_point(SSL_get_SSL_CTX(t->ssl), SSL_get_certificate(t->ssl),
                          out->endpoint, sizeof out->endpoint);
    else if ((cert = SSL_get0_peer_certificate(t->ssl)) != NULL)
        out->endpoint_len = end_point_hash(cert, out->endpoint, sizeof out->endpoint);
    if (out->tls13) {
        /* RFC 9266 §2: label "EXPORTER-Channel-Binding", no context, 32
         * bytes. */
        ERR_clear_error();
        if (SSL_export_keying_material(t->ssl, out->exporter, sizeof out->exporter, label,
                                       sizeof label - 1, NULL, 0, 0) != 1) {
            ERR_clear_error();
            memset(out, 0, sizeof *out);
            return XE_TLS;
        }
        out->exporter_len = sizeof out->exporter;
    }
    ERR_clear_error();
    return 0;
}
