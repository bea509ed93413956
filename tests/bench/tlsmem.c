/* tlsmem.c: xmppd-tlsmem, the heap OpenSSL itself keeps per server-side TLS
 * connection once the handshake is done, apart from everything xmppd adds
 * (docs/benchmarks.md, "Memory per idle connection").
 *
 *   xmppd-tlsmem CERT KEY [N]
 *
 * N times (default 1000): a server SSL with xmppd's server policy
 * (io/tls.c: no tickets, no session cache, SSL_MODE_RELEASE_BUFFERS, the
 * TLS 1.3 suites in the server's order) and a client SSL do a full TLS 1.3
 * handshake over memory BIOs and exchange one byte each way; the client is
 * freed, the server's memory BIOs are replaced by empty ones (as io/tls.c
 * does for idle connections) and the server SSL is kept.  Prints glibc's
 * heap in use (mallinfo2) after SSL_new alone and after the handshake,
 * per connection.  Then the same N times through xmppd's own session
 * (io/tls.c, a struct tls_conn on a server tls_ctx): what a connection
 * keeps after the handshake once it is handed off to the record layer of
 * io/tlsrec.c and its SSL is freed (docs/benchmarks.md, "Session 7").  A
 * tool: it asserts nothing. */
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "tls.h"

static void pump(BIO *from, BIO *to)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0)
        BIO_write(to, buf, n);
}

static BIO *mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        exit(1);
    BIO_set_mem_eof_return(b, -1);
    return b;
}

/* One handshake and a byte each way; returns the server SSL, or NULL. */
static SSL *one(SSL_CTX *s, SSL_CTX *c)
{
    SSL *ss = SSL_new(s), *cs = SSL_new(c);
    BIO *sr = mem_bio(), *sw = mem_bio(), *cr = mem_bio(), *cw = mem_bio();
    char b[16];
    SSL_set_bio(ss, sr, sw);
    SSL_set_bio(cs, cr, cw);
    SSL_set_accept_state(ss);
    SSL_set_connect_state(cs);
    for (int k = 0; k < 10 && !(SSL_is_init_finished(ss) && SSL_is_init_finished(cs));
         k++) {
        SSL_do_handshake(cs);
        pump(cw, sr);
        SSL_do_handshake(ss);
        pump(sw, cr);
    }
    SSL_write(cs, "x", 1);
    pump(cw, sr);
    SSL_read(ss, b, sizeof b);
    SSL_write(ss, "y", 1);
    pump(sw, cr);
    SSL_read(cs, b, sizeof b);
    int ok = SSL_is_init_finished(ss);
    SSL_free(cs);
    if (!ok) {
        SSL_free(ss);
        return NULL;
    }
    SSL_set_bio(ss, mem_bio(), mem_bio());
    return ss;
}

/* One handshake and a byte each way with an xmppd server session; returns
 * it, or NULL. */
static struct tls_conn *one_conn(struct tls_ctx *s, SSL_CTX *c)
{
    struct tls_conn *t = NULL;
    SSL *cs = SSL_new(c);
    BIO *cr = mem_bio(), *cw = mem_bio();
    struct buf in = {0}, out = {0};
    char b[16384];
    int n;

    if (tls_conn_new(s, NULL, &t) < 0)
        return NULL;
    SSL_set_bio(cs, cr, cw);
    SSL_set_connect_state(cs);
    for (int k = 0; k < 10 && !tls_conn_established(t); k++) {
        SSL_do_handshake(cs);
        if (SSL_is_init_finished(cs))
            SSL_write(cs, "x", 1);
        while ((n = BIO_read(cw, b, sizeof b)) > 0)
            tls_conn_feed(t, b, (size_t)n, &in);
        tls_conn_take_out(t, &out);
        BIO_write(cr, out.data, (int)out.len);
        buf_free(&out);
    }
    tls_conn_write(t, "y", 1);
    tls_conn_take_out(t, &out);
    BIO_write(cr, out.data, (int)out.len);
    SSL_read(cs, b, sizeof b);
    SSL_free(cs);
    buf_free(&out);
    if (in.len != 1 || !tls_conn_established(t)) {
        tls_conn_free(t);
        t = NULL;
    }
    buf_free(&in);
    return t;
}

/* xmppd_sessions prints what n handed-off xmppd sessions keep. */
static int xmppd_sessions(const char *cert, const char *key, SSL_CTX *c, int n)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER, .key_path = key, .cert_path = cert};
    struct tls_ctx *s = NULL;
    struct tls_conn **keep = calloc((size_t)n, sizeof *keep);
    char why[256] = "";

    if (keep == NULL || tls_ctx_new(&o, &s, why, sizeof why) < 0) {
        fprintf(stderr, "xmppd-tlsmem: xmppd context: %s\n", why);
        return 2;
    }
    tls_conn_free(one_conn(s, c)); /* warm-up */
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < n; i++) {
        keep[i] = one_conn(s, c);
        if (keep[i] == NULL) {
            fputs("xmppd-tlsmem: an xmppd handshake failed\n", stderr);
            return 1;
        }
    }
    struct mallinfo2 m1 = mallinfo2();
    printf("xmppd tls_conn after the handshake (%s): %.2f KiB per connection\n",
           tls__handed_off(keep[0]) ? "handed off, no SSL" : "SSL kept",
           (double)(m1.uordblks - m0.uordblks) / n / 1024);
    for (int i = 0; i < n; i++)
        tls_conn_free(keep[i]);
    free(keep);
    tls_ctx_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: xmppd-tlsmem CERT KEY [N]\n", stderr);
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 1000;
    SSL_CTX *s = SSL_CTX_new(TLS_server_method()), *c = SSL_CTX_new(TLS_client_method());
    SSL **keep = calloc((size_t)n, sizeof *keep);
    if (s == NULL || c == NULL || keep == NULL || n <= 0 ||
        SSL_CTX_use_certificate_chain_file(s, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(s, argv[2], SSL_FILETYPE_PEM) != 1) {
        fputs("xmppd-tlsmem: cannot load the certificate and key\n", stderr);
        return 2;
    }
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_PRIORITIZE_CHACHA);
    SSL_CTX_set_ciphersuites(
        s, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(s, 0);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_free(one(s, c)); /* warm-up: provider caches, error strings */

    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < n; i++)
        keep[i] = SSL_new(s);
    struct mallinfo2 m1 = mallinfo2();
    for (int i = 0; i < n; i++)
        SSL_free(keep[i]);
    struct mallinfo2 m2 = mallinfo2();
    for (int i = 0; i < n; i++) {
        keep[i] = one(s, c);
        if (keep[i] == NULL) {
            fputs("xmppd-tlsmem: a handshake failed\n", stderr);
            return 1;
        }
    }
    struct mallinfo2 m3 = mallinfo2();
    printf("suite %s\n", SSL_get_cipher_name(keep[0]));
    printf("SSL_new alone:        %.2f KiB per connection\n",
           (double)(m1.uordblks - m0.uordblks) / n / 1024);
    printf("after the handshake:  %.2f KiB per connection (n = %d)\n",
           (double)(m3.uordblks - m2.uordblks) / n / 1024, n);
    return xmppd_sessions(argv[1], argv[2], c, n);
}
