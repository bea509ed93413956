/* test_starttls.c: STARTTLS on the connection manager (conn_starttls,
 * xmppd/io/conn.c) and the channel-binding data of tls.c, on real loopback
 * sockets.  The server is a conn_mgr on the test's libuv loop; the client
 * runs in a thread of its own with blocking sockets and OpenSSL used
 * directly (not tls.c), so what it computes for channel binding is an
 * independent check of the server's: a plaintext exchange, <starttls/>,
 * <proceed/>, a handshake that verifies the server's certificate against
 * the test CA and its name, then TLS data both ways.  Also: a client that
 * does not trust the server (the handshake fails after STARTTLS), a client
 * that sends more plaintext after <starttls/> (RFC 6120 §5.4.3.3: a
 * protocol error, the bytes never reach the owner), TLS 1.2 (no
 * tls-exporter) and the refusals of conn_starttls. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "err.h"
#include "iofix.h"
#include "srv.h"
#include "testlib.h"
#include "tls.h"

static char dir[256]; /* the temporary PKI: ca.crt with node1; ca2/ */

static const char *path(const char *name)
{
    return iofix_path(dir, name);
}

static bool make_pki(void)
{
    return iofix_pki(dir, sizeof dir, "starttls",
                     "$S/mkca $D 'Test CA 1';"
                     "$S/mknode $D node1 --domain example.com --ip 127.0.0.1;"
                     "$S/mkca $D/ca2 'Test CA 2'");
}

static struct tls_ctx *server_ctx(void)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER,
                             .key_path = path("node1.key"),
                             .cert_path = path("node1.crt"),
                             .bundle_path = path("ca.crt")};
    struct tls_ctx *c = NULL;
    char why[256];

    if (tls_ctx_new(&o, &c, why, sizeof why) < 0)
        fprintf(stderr, "server ctx: %s\n", why);
    return c;
}

/* ---- the client: a thread with a blocking socket and plain OpenSSL ---- */

enum cmode {
    C_GOOD,      /* the whole exchange, TLS 1.3 */
    C_GOOD12,    /* the same with TLS 1.2 at most */
    C_UNTRUSTED, /* trusts only ca2: the handshake fails */
    C_PIPELINE,  /* plaintext after <proceed/> instead of a ClientHello */
    C_CLOSED,    /* the server closes right after conn_starttls */
};

struct client {
    enum cmode mode;
    int port;
    pthread_t th;
    /* results */
    bool proceed_ok;   /* got exactly "plain-ok<proceed/>" in plaintext */
    bool handshake_ok; /* SSL_connect succeeded */
    bool data_ok;      /* got "after-proceed" and "echo:hello-tls" over TLS */
    bool closed_ok;    /* C_CLOSED: "after-proceed", then close_notify */
    bool tls13;
    unsigned char exporter[32];
    size_t exporter_len;
    unsigned char endpoint[64];
    size_t endpoint_len;
    int sig_nid; /* the server certificate's signature algorithm */
    char err[256];
};

/* read_exact reads len bytes into out; false on EOF, error or timeout. */
static bool read_exact(int fd, char *out, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = read(fd, out + got, len - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static bool write_all(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;

    while (off < len) {
        ssize_t w = write(fd, s + off, len - off);
        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    return true;
}

/* ssl_read_exact: read_exact over TLS. */
static bool ssl_read_exact(SSL *ssl, char *out, size_t len)
{
    size_t got = 0;

    while (got < len) {
        int r = SSL_read(ssl, out + got, (int)(len - got));
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* client_tls runs the handshake and the TLS part on fd. */
static void client_tls(struct client *cl, int fd)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    char buf[64];
    X509 *cert;
    unsigned int mdlen = 0;

    if (ctx == NULL)
        return;
    if (cl->mode == C_GOOD12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_load_verify_file(ctx, cl->mode == C_UNTRUSTED ? path("ca2/ca.crt")
                                                          : path("ca.crt"));
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "example.com");
    SSL_set1_host(ssl, "example.com");
    if (SSL_connect(ssl) != 1) {
        snprintf(cl->err, sizeof cl->err, "SSL_connect: %s",
                 ERR_reason_error_string(ERR_peek_last_error()));
        goto out;
    }
    cl->handshake_ok = true;
    cl->tls13 = SSL_version(ssl) == TLS1_3_VERSION;
    /* What the server queued after conn_starttls comes first, encrypted. */
    if (!ssl_read_exact(ssl, buf, 13) || memcmp(buf, "after-proceed", 13) != 0)
        goto out;
    if (cl->mode == C_CLOSED) {
        /* Then its close_notify (RFC 8446 §6.1): SSL_read sees the end. */
        int r = SSL_read(ssl, buf, sizeof buf);
        cl->closed_ok = r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN;
        goto out;
    }
    if (SSL_write(ssl, "hello-tls", 9) != 9 || !ssl_read_exact(ssl, buf, 14) ||
        memcmp(buf, "echo:hello-tls", 14) != 0)
        goto out;
    cl->data_ok = true;
    /* RFC 9266 §2 and RFC 5929 §4.1, computed here without tls.c. */
    if (cl->tls13 && SSL_export_keying_material(ssl, cl->exporter, 32, label,
                                                sizeof label - 1, NULL, 0, 0) == 1)
        cl->exporter_len = 32;
    cert = SSL_get0_peer_certificate(ssl);
    if (cert != NULL) {
        cl->sig_nid = X509_get_signature_nid(cert);
        if (X509_digest(cert, EVP_sha256(), cl->endpoint, &mdlen) == 1)
            cl->endpoint_len = mdlen;
    }
    SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cl->port)};
    struct timeval tv = {.tv_sec = 30};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char buf[64];

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        goto out;
    /* Plaintext first, as a stream does before STARTTLS. */
    if (!write_all(fd, "hello-plain") || !read_exact(fd, buf, 8) ||
        memcmp(buf, "plain-ok", 8) != 0)
        goto out;
    if (!write_all(fd, "<starttls/>") || !read_exact(fd, buf, 10) ||
        memcmp(buf, "<proceed/>", 10) != 0)
        goto out;
    cl->proceed_ok = true;
    if (cl->mode == C_PIPELINE) {
        /* RFC 6120 §5.4.3.3 forbids this; the server must close. */
        write_all(fd, "<message>plain</message>");
        while (read(fd, buf, sizeof buf) > 0) {
        }
        goto out;
    }
    client_tls(cl, fd);
out:
    close(fd);
    return NULL;
}

/* ---- the server: a conn_mgr on the test's loop ---- */

struct srvside {
    uv_loop_t loop;
    struct conn_mgr *cm;
    struct tls_ctx *tls, *client_tls; /* client_tls: a client context (refusal) */
    struct log_sink log;
    struct buf logtext;
    uv_timer_t guard;
    bool drained, timed_out, started_tls, close_after;
    uint64_t id;
    struct buf plain, secure; /* what the data hook got before/after TLS */
    int secured, gone, gone_err;
    struct srv_tls_info info;
    int binding_rc;
};

static void s_log(void *ud, enum log_level level, const char *line)
{
    struct srvside *s = ud;

    buf_puts(&s->logtext, line);
    buf_puts(&s->logtext, "\n");
}

static int s_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct srvside *s = ud;

    s->id = id;
    CHECK_INT(tag, 7);
    CHECK_INT(conn_tag(s->cm, id), 7);
    return 0;
}

static void s_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct srvside *s = ud;

    if (s->secured == 0) {
        buf_append(&s->plain, bytes, len);
        if (strstr(s->plain.data, "hello-plain") != NULL && !s->started_tls &&
            strstr(s->plain.data, "<starttls/>") == NULL) {
            CHECK_INT(conn_send(s->cm, id, "plain-ok", 8), 0);
        } else if (strstr(s->plain.data, "<starttls/>") != NULL && !s->started_tls) {
            /* The core's part: queue <proceed/>, then ask for TLS. */
            CHECK_INT(conn_send(s->cm, id, "<proceed/>", 10), 0);
            CHECK_INT(conn_starttls(s->cm, id + 1000, s->tls), XE_NOTFOUND);
            CHECK_INT(conn_starttls(s->cm, id, s->client_tls), XE_INVAL);
            CHECK_INT(conn_starttls(s->cm, id, s->tls), 0);
            CHECK_INT(conn_starttls(s->cm, id, s->tls), XE_STATE);
            CHECK(conn_is_tls(s->cm, id));
            /* Queued after the upgrade: held for the handshake. */
            CHECK_INT(conn_send(s->cm, id, "after-proceed", 13), 0);
            s->started_tls = true;
            if (s->close_after) {
                /* As srv_shutdown would: the handshake still finishes
                 * (within CONN_DRAIN_MS), the held bytes go out, then
                 * close_notify. */
                conn_close(s->cm, id);
                conn_mgr_shutdown(s->cm);
            }
        }
    } else {
        buf_append(&s->secure, bytes, len);
        if (strcmp(s->secure.data, "hello-tls") == 0)
            CHECK_INT(conn_send(s->cm, id, "echo:hello-tls", 14), 0);
    }
    conn_mgr_flush(s->cm);
}

static void s_secured(void *ud, uint64_t id)
{
    struct srvside *s = ud;

    s->secured++;
    s->binding_rc = conn_tls_binding(s->cm, id, &s->info);
}

static void s_gone(void *ud, uint64_t id, int err)
{
    struct srvside *s = ud;

    s->gone++;
    s->gone_err = err;
    conn_mgr_shutdown(s->cm);
}

static void s_drained(void *ud)
{
    struct srvside *s = ud;

    s->drained = true;
    uv_close((uv_handle_t *)&s->guard, NULL);
}

static void s_guard(uv_timer_t *t)
{
    struct srvside *s = t->data;

    s->timed_out = true;
    conn_mgr_shutdown(s->cm);
}

/* run serves one client of mode on a plaintext listener until the
 * connection is gone, and joins the client. */
static void run(struct srvside *s, struct client *cl, enum cmode mode)
{
    struct conn_hooks h = {.ud = s,
                           .opened = s_opened,
                           .data = s_data,
                           .gone = s_gone,
                           .secured = s_secured,
                           .drained = s_drained};
    struct tls_ctx_opts co = {.role = TLS_ROLE_CLIENT};
    char err[256], why[256];

    memset(s, 0, sizeof *s);
    memset(cl, 0, sizeof *cl);
    REQUIRE(make_pki());
    s->tls = server_ctx();
    REQUIRE(s->tls != NULL);
    REQUIRE(tls_ctx_new(&co, &s->client_tls, why, sizeof why) == 0);
    s->log = (struct log_sink){.level = LOG_DEBUG, .write = s_log, .ud = s};
    REQUIRE(uv_loop_init(&s->loop) == 0);
    REQUIRE(conn_mgr_new(&s->loop, &h, &s->log, "n1", 0, &s->cm) == 0);
    uv_timer_init(&s->loop, &s->guard);
    s->guard.data = s;
    uv_timer_start(&s->guard, s_guard, 60000, 0); /* a hang detector */
    cl->mode = mode;
    s->close_after = mode == C_CLOSED;
    cl->port = iofix_free_port();
    REQUIRE(conn_listen(s->cm, "127.0.0.1", cl->port, 7, err, sizeof err) == 0);
    REQUIRE(pthread_create(&cl->th, NULL, client_main, cl) == 0);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    pthread_join(cl->th, NULL);
    CHECK(!s->timed_out);
    CHECK(s->drained);
    CHECK_INT(conn_mgr_count(s->cm), 0);
    conn_mgr_free(s->cm);
    CHECK_INT(uv_loop_close(&s->loop), 0);
    tls_ctx_free(s->tls);
    tls_ctx_free(s->client_tls);
}

static void s_free(struct srvside *s)
{
    buf_free(&s->logtext);
    buf_free(&s->plain);
    buf_free(&s->secure);
}

static bool logged(struct srvside *s, const char *what)
{
    bool yes = s->logtext.data != NULL && strstr(s->logtext.data, what) != NULL;

    if (!yes)
        fprintf(stderr, "no log line with \"%s\" in:\n%s", what,
                s->logtext.data ? s->logtext.data : "");
    return yes;
}

static void test_starttls_exchange(void)
{
    struct srvside s;
    struct client cl;

    run(&s, &cl, C_GOOD);
    if (cl.err[0] != '\0')
        fprintf(stderr, "client: %s\n", cl.err);
    CHECK(cl.proceed_ok);
    CHECK(cl.handshake_ok);
    CHECK(cl.data_ok);
    CHECK_STR(s.plain.data, "hello-plain<starttls/>");
    CHECK_STR(s.secure.data, "hello-tls");
    CHECK_INT(s.secured, 1);
    CHECK_INT(s.binding_rc, 0);
    /* Channel binding: the same bytes on both ends. */
    CHECK(cl.tls13 && s.info.tls13);
    CHECK_INT(s.info.exporter_len, 32);
    CHECK_INT(cl.exporter_len, 32);
    CHECK(memcmp(s.info.exporter, cl.exporter, 32) == 0);
    /* node1.crt is signed with SHA-256 (certs/mkca): its end-point hash is
     * the SHA-256 of its DER (RFC 5929 §4.1). */
    CHECK(cl.sig_nid == NID_ecdsa_with_SHA256 ||
          cl.sig_nid == NID_sha256WithRSAEncryption);
    CHECK_INT(s.info.endpoint_len, 32);
    CHECK_INT(cl.endpoint_len, 32);
    CHECK(memcmp(s.info.endpoint, cl.endpoint, 32) == 0);
    /* The client ended with close_notify: an orderly end. */
    CHECK_INT(s.gone, 1);
    CHECK_INT(s.gone_err, 0);
    CHECK(logged(&s, "established after STARTTLS"));
    s_free(&s);
}

static void test_starttls_tls12_has_no_exporter(void)
{
    struct srvside s;
    struct client cl;

    run(&s, &cl, C_GOOD12);
    CHECK(cl.data_ok);
    CHECK(!cl.tls13 && !s.info.tls13);
    CHECK_INT(s.binding_rc, 0);
    CHECK_INT(s.info.exporter_len, 0); /* RFC 9266 is for TLS 1.3 */
    CHECK_INT(s.info.endpoint_len, 32);
    CHECK(memcmp(s.info.endpoint, cl.endpoint, 32) == 0);
    s_free(&s);
}

static void test_starttls_handshake_fails(void)
{
    struct srvside s;
    struct client cl;

    run(&s, &cl, C_UNTRUSTED);
    CHECK(cl.proceed_ok);
    CHECK(!cl.handshake_ok);
    CHECK_INT(s.secured, 0);
    CHECK(s.secure.data == NULL);
    CHECK_INT(s.gone, 1);
    CHECK_INT(s.gone_err, UV_EPROTO);
    CHECK(logged(&s, "TLS handshake with 127.0.0.1:"));
    CHECK(logged(&s, "failed after STARTTLS: peer rejected our certificate"));
    s_free(&s);
}

static void test_starttls_plaintext_after_request(void)
{
    struct srvside s;
    struct client cl;

    run(&s, &cl, C_PIPELINE);
    CHECK(cl.proceed_ok);
    /* Never handed to the owner, neither as plaintext nor as "secured". */
    CHECK_STR(s.plain.data, "hello-plain<starttls/>");
    CHECK(s.secure.data == NULL);
    CHECK_INT(s.secured, 0);
    CHECK_INT(s.gone, 1);
    CHECK_INT(s.gone_err, UV_EPROTO);
    CHECK(logged(&s, "plaintext after STARTTLS"));
    CHECK(logged(&s, "from 127.0.0.1:"));
    s_free(&s);
}

/* The owner closes right after conn_starttls, with bytes held for the
 * handshake: they still reach the client, encrypted, then close_notify;
 * no hooks after the close. */
static void test_starttls_close_before_handshake(void)
{
    struct srvside s;
    struct client cl;

    run(&s, &cl, C_CLOSED);
    CHECK(cl.handshake_ok);
    CHECK(cl.closed_ok);
    CHECK_INT(s.secured, 0);
    CHECK_INT(s.gone, 0);
    s_free(&s);
}

static void test_cleanup(void)
{
    iofix_rmdir(dir);
}

TL_MAIN(T(test_starttls_exchange), T(test_starttls_tls12_has_no_exporter),
        T(test_starttls_handshake_fails), T(test_starttls_plaintext_after_request),
        T(test_starttls_close_before_handshake), T(test_cleanup))
