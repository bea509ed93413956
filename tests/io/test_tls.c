/* test_tls.c: the TLS engine (xmppd/io/tls.c) with two sessions wired back
 * to back in memory, on certificates made at test time by certs/mkca and
 * certs/mknode in a temporary directory: handshake and data both ways,
 * hostname checks, mutual TLS, refusals (TLS 1.0, untrusted certificates,
 * no client certificate, garbage) with their messages, and load checks;
 * then the connection manager (conn.c) with TLS on real loopback sockets:
 * a listener in optional and required mode and outgoing TLS connections
 * made by conn_connect on the same loop. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <uv.h>

#include "buf.h"
#include "conffile_parse.h"
#include "conn.h"
#include "err.h"
#include "iofix.h"
#include "testlib.h"
#include "tls.h"

static char dir[256]; /* the temporary PKI: ca1 with node1, node2; ca2/ */

static const char *path(const char *name)
{
    return iofix_path(dir, name);
}

static bool make_pki(void)
{
    return iofix_pki(dir, sizeof dir, "tls",
                     "$S/mkca $D 'Test CA 1';"
                     "$S/mknode $D node1 --domain example.com --ip 127.0.0.1;"
                     "$S/mknode $D node2 --domain example.com --ip 127.0.0.2;"
                     "$S/mkca $D/ca2 'Test CA 2';"
                     "$S/mknode $D/ca2 rogue --domain example.com --ip 127.0.0.1");
}

/* node_ctx makes a context of role with node's key and certificate (node
 * NULL: none) and the bundle ca (NULL: none), after making the PKI. */
static struct tls_ctx *node_ctx(enum tls_role role, const char *node, const char *ca,
                                bool verify, bool tls13)
{
    char key[64], crt[64];
    struct tls_ctx_opts o = {.role = role, .verify_peer = verify, .tls13_only = tls13};
    struct tls_ctx *c = NULL;
    char why[256] = "";

    if (!make_pki())
        return NULL;
    o.bundle_path = ca ? path(ca) : NULL;
    if (node != NULL) {
        snprintf(key, sizeof key, "%s.key", node);
        snprintf(crt, sizeof crt, "%s.crt", node);
        o.key_path = path(key);
        o.cert_path = path(crt);
    }
    if (tls_ctx_new(&o, &c, why, sizeof why) < 0)
        fprintf(stderr, "%s ctx: %s\n", role == TLS_ROLE_SERVER ? "server" : "client",
                why);
    return c;
}

static struct tls_ctx *server_ctx(const char *node, bool mutual, bool tls13)
{
    return node_ctx(TLS_ROLE_SERVER, node, "ca.crt", mutual, tls13);
}

/* client_ctx: node NULL means no client certificate; ca is the bundle. */
static struct tls_ctx *client_ctx(const char *node, const char *ca, bool verify)
{
    return node_ctx(TLS_ROLE_CLIENT, node, ca, verify, false);
}

/* A pair of sessions and what each has received. */
struct pair {
    struct tls_conn *s, *c;
    struct buf s_got, c_got;
    int s_rc, c_rc; /* last feed result */
};

/* move takes from's output and feeds it to to; returns bytes moved. */
static size_t move(struct tls_conn *from, struct tls_conn *to, struct buf *got, int *rc)
{
    struct buf wire = {0};
    size_t n;

    CHECK_INT(tls_conn_take_out(from, &wire), 0);
    n = wire.len;
    if (n > 0 && *rc == 0)
        *rc = tls_conn_feed(to, wire.data, wire.len, got);
    buf_free(&wire);
    return n;
}

/* pair_open starts a fresh pair: a server session on sc and a client
 * session on cc that checks the name verify (NULL: none). */
static void pair_open(struct pair *p, struct tls_ctx *sc, struct tls_ctx *cc,
                      const char *verify)
{
    memset(p, 0, sizeof *p);
    REQUIRE(tls_conn_new(sc, NULL, &p->s) == 0);
    REQUIRE(tls_conn_new(cc, verify, &p->c) == 0);
}

static void pump(struct pair *p)
{
    for (int i = 0; i < 50; i++) {
        size_t a = move(p->c, p->s, &p->s_got, &p->s_rc);
        size_t b = move(p->s, p->c, &p->c_got, &p->c_rc);
        if (a == 0 && b == 0)
            return;
    }
    CHECK(!"pump did not settle");
}

static void pair_free(struct pair *p)
{
    tls_conn_free(p->s);
    tls_conn_free(p->c);
    buf_free(&p->s_got);
    buf_free(&p->c_got);
}

static void test_handshake_and_data(void)
{
    struct tls_ctx *sc, *cc;
    struct pair p = {0};
    struct tls_peer_info info;
    static char big[300000];

    REQUIRE(make_pki());
    sc = server_ctx("node1", false, false);
    cc = client_ctx(NULL, "ca.crt", true);
    REQUIRE(sc != NULL && cc != NULL);
    pair_open(&p, sc, cc, "example.com");
    /* The contexts may go: the sessions hold what they need. */
    tls_ctx_free(sc);
    tls_ctx_free(cc);
    CHECK(tls_conn_pending_out(p.c) > 0); /* the ClientHello */
    CHECK(!tls_conn_established(p.c));
    /* Written before the handshake: held, then sent. */
    CHECK_INT(tls_conn_write(p.c, "<stream:stream>", 15), 0);
    pump(&p);
    CHECK_INT(p.s_rc, 0);
    CHECK_INT(p.c_rc, 0);
    CHECK(tls_conn_established(p.s));
    CHECK(tls_conn_established(p.c));
    CHECK_STR(tls_conn_version(p.c), "TLSv1.3");
    CHECK_STR(p.s_got.data, "<stream:stream>");

    CHECK_INT(tls_conn_write(p.s, "<features/>", 11), 0);
    pump(&p);
    CHECK_STR(p.c_got.data, "<features/>");

    memset(big, 'x', sizeof big);
    buf_reset(&p.s_got);
    CHECK_INT(tls_conn_write(p.c, big, sizeof big), 0);
    pump(&p);
    CHECK_INT(p.s_got.len, sizeof big);

    CHECK_INT(tls_conn_peer(p.c, &info), 0);
    CHECK(info.has_cert && info.verified);
    CHECK_STR(info.subject, "CN=node1");
    CHECK(strstr(info.sans, "DNS:example.com") != NULL);
    CHECK(strstr(info.sans, "IP:127.0.0.1") != NULL);
    CHECK_INT(strlen(info.fingerprint), 64);
    CHECK(info.not_after > 0);
    CHECK_INT(tls_conn_peer(p.s, &info), XE_NOTFOUND); /* no client certificate */

    /* close_notify ends the peer's stream; writes after close fail. */
    tls_conn_close(p.c);
    CHECK_INT(tls_conn_write(p.c, "x", 1), XE_STATE);
    pump(&p);
    CHECK_INT(p.s_rc, XE_CLOSED);
    pair_free(&p);
}

/* A raw OpenSSL client on memory BIOs (r: what it reads, w: what it
 * writes) and a server session s of ours, with what s received and sent. */
struct raw {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *r, *w;
    struct tls_conn *s;
    struct buf got, wire;
    int rc; /* s's last feed result */
};

/* raw_open starts x: a client offering at most max_version (and, if old,
 * old versions at all: OpenSSL 3 refuses them at its default security
 * level), and a session on sc. */
static void raw_open(struct raw *x, struct tls_ctx *sc, int max_version, bool old)
{
    memset(x, 0, sizeof *x);
    x->ctx = SSL_CTX_new(TLS_client_method());
    REQUIRE(x->ctx != NULL);
    if (old) {
        SSL_CTX_set_security_level(x->ctx, 0);
        SSL_CTX_set_cipher_list(x->ctx, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(x->ctx, 0);
    }
    SSL_CTX_set_max_proto_version(x->ctx, max_version);
    SSL_CTX_set_verify(x->ctx, SSL_VERIFY_NONE, NULL);
    x->ssl = SSL_new(x->ctx);
    x->r = BIO_new(BIO_s_mem());
    x->w = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(x->r, -1);
    SSL_set_bio(x->ssl, x->r, x->w);
    SSL_set_connect_state(x->ssl);
    REQUIRE(tls_conn_new(sc, NULL, &x->s) == 0);
}

/* raw_step runs the client's handshake once and feeds what it wrote to s
 * (until a feed fails). */
static void raw_step(struct raw *x)
{
    char tmp[8192];
    int n;

    SSL_do_handshake(x->ssl);
    while ((n = BIO_read(x->w, tmp, sizeof tmp)) > 0 && x->rc == 0)
        x->rc = tls_conn_feed(x->s, tmp, (size_t)n, &x->got);
}

static void raw_close(struct raw *x)
{
    tls_conn_free(x->s);
    buf_free(&x->got);
    buf_free(&x->wire);
    SSL_free(x->ssl);
    SSL_CTX_free(x->ctx);
    ERR_clear_error();
}

static void test_tls12_client(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct raw x;

    REQUIRE(sc != NULL);
    raw_open(&x, sc, TLS1_2_VERSION, false);
    for (int i = 0; i < 20; i++) {
        raw_step(&x);
        buf_reset(&x.wire);
        tls_conn_take_out(x.s, &x.wire);
        if (x.wire.len > 0)
            BIO_write(x.r, x.wire.data, (int)x.wire.len);
    }
    CHECK_INT(x.rc, 0);
    CHECK(tls_conn_established(x.s));
    CHECK_STR(tls_conn_version(x.s), "TLSv1.2");
    /* ECDHE with an AEAD cipher only. */
    CHECK(strncmp(tls_conn_cipher(x.s), "ECDHE-", 6) == 0);
    CHECK(strstr(tls_conn_cipher(x.s), "GCM") != NULL ||
          strstr(tls_conn_cipher(x.s), "CHACHA20") != NULL);
    raw_close(&x);
    tls_ctx_free(sc);
}

/* old_client_refused drives a raw OpenSSL client that offers at most
 * max_version against a server context and checks the server's error. */
static void old_client_refused(struct tls_ctx *sc, int max_version, const char *expect)
{
    struct raw x;

    raw_open(&x, sc, max_version, true);
    raw_step(&x);
    CHECK_INT(x.rc, XE_TLS);
    CHECK(tls_conn_failed(x.s));
    if (strstr(tls_conn_error(x.s), expect) == NULL)
        fprintf(stderr, "error: %s\n", tls_conn_error(x.s));
    CHECK(strstr(tls_conn_error(x.s), expect) != NULL);
    /* The refusal carries an alert for the peer. */
    CHECK_INT(tls_conn_take_out(x.s, &x.wire), 0);
    CHECK(x.wire.len > 0);
    CHECK_INT(tls_conn_write(x.s, "x", 1), XE_STATE);
    raw_close(&x);
}

static void test_tls10_refused(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);

    REQUIRE(sc != NULL);
    old_client_refused(sc, TLS1_VERSION, "peer offered only TLS 1.0");
    old_client_refused(sc, TLS1_1_VERSION, "peer offered only TLS 1.1");
    tls_ctx_free(sc);
}

static void test_tls13_only_refuses_tls12(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, true);

    REQUIRE(sc != NULL);
    old_client_refused(sc, TLS1_2_VERSION, "no protocol version in common");
    tls_ctx_free(sc);
}

static void test_hostname_and_trust(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct tls_ctx *cc = client_ctx(NULL, "ca.crt", true);
    struct tls_ctx *other = client_ctx(NULL, "ca2/ca.crt", true);
    struct pair p = {0};

    REQUIRE(sc != NULL && cc != NULL && other != NULL);
    /* An IP address in the SANs is checked as an address. */
    pair_open(&p, sc, cc, "127.0.0.1");
    pump(&p);
    CHECK(tls_conn_established(p.c));
    pair_free(&p);

    pair_open(&p, sc, cc, "other.org");
    pump(&p);
    CHECK_INT(p.c_rc, XE_TLS);
    CHECK(strstr(tls_conn_error(p.c), "hostname mismatch") != NULL);
    /* The server learns why from the alert. */
    CHECK_INT(p.s_rc, XE_TLS);
    CHECK(strstr(tls_conn_error(p.s), "rejected our certificate") != NULL ||
          strstr(tls_conn_error(p.s), "alert") != NULL);
    pair_free(&p);

    /* A client that trusts another CA. */
    pair_open(&p, sc, other, "example.com");
    pump(&p);
    CHECK_INT(p.c_rc, XE_TLS);
    CHECK(strstr(tls_conn_error(p.c), "peer certificate not trusted") != NULL);
    CHECK(strstr(tls_conn_error(p.s), "unknown ca") != NULL);
    pair_free(&p);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
    tls_ctx_free(other);
}

static void test_mutual_tls(void)
{
    struct tls_ctx *sc = server_ctx("node1", true, true);
    struct tls_ctx *good = client_ctx("node2", "ca.crt", true);
    struct tls_ctx *none = client_ctx(NULL, "ca.crt", true);
    struct tls_ctx *rogue = NULL;
    struct tls_ctx_opts ro = {.role = TLS_ROLE_CLIENT,
                              .key_path = path("ca2/rogue.key"),
                              .cert_path = path("ca2/rogue.crt"),
                              .bundle_path = path("ca.crt"),
                              .verify_peer = true};
    struct tls_peer_info info;
    struct pair p = {0};
    char why[256];

    REQUIRE(tls_ctx_new(&ro, &rogue, why, sizeof why) == 0);
    REQUIRE(sc != NULL && good != NULL && none != NULL);

    pair_open(&p, sc, good, "127.0.0.1");
    CHECK_INT(tls_conn_write(p.c, "hello", 5), 0);
    pump(&p);
    CHECK(tls_conn_established(p.s) && tls_conn_established(p.c));
    CHECK_STR(p.s_got.data, "hello");
    CHECK_INT(tls_conn_peer(p.s, &info), 0);
    CHECK(info.verified);
    CHECK_STR(info.subject, "CN=node2");
    CHECK(strstr(info.sans, "IP:127.0.0.2") != NULL);
    pair_free(&p);

    /* A client certificate from another CA. */
    pair_open(&p, sc, rogue, "127.0.0.1");
    CHECK_INT(tls_conn_write(p.c, "hello", 5), 0);
    pump(&p);
    CHECK_INT(p.s_rc, XE_TLS);
    CHECK(!tls_conn_established(p.s));
    CHECK(strstr(tls_conn_error(p.s), "peer certificate not trusted") != NULL);
    CHECK_INT(p.s_got.len, 0);
    /* In TLS 1.3 the client finishes first; the alert then fails it. */
    CHECK_INT(p.c_rc, XE_TLS);
    pair_free(&p);

    /* No client certificate at all. */
    pair_open(&p, sc, none, "127.0.0.1");
    pump(&p);
    CHECK_INT(p.s_rc, XE_TLS);
    CHECK(strstr(tls_conn_error(p.s), "peer sent no certificate") != NULL);
    pair_free(&p);

    tls_ctx_free(sc);
    tls_ctx_free(good);
    tls_ctx_free(none);
    tls_ctx_free(rogue);
}

static void test_garbage(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct tls_conn *s;
    struct buf got = {0};
    static const char xml[] = "<?xml version='1.0'?><stream:stream to='x'>";
    char noise[512];

    REQUIRE(sc != NULL);
    REQUIRE(tls_conn_new(sc, NULL, &s) == 0);
    CHECK_INT(tls_conn_feed(s, xml, sizeof xml - 1, &got), XE_TLS);
    CHECK(strstr(tls_conn_error(s), "not a TLS stream") != NULL);
    CHECK_INT(tls_conn_feed(s, "more", 4, &got), XE_TLS);
    tls_conn_free(s);

    /* A record header that claims a handshake, then noise. */
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (char)(i * 37 + 11);
    noise[0] = 0x16, noise[1] = 0x03, noise[2] = 0x01, noise[3] = 0x01, noise[4] = 0x00;
    REQUIRE(tls_conn_new(sc, NULL, &s) == 0);
    CHECK_INT(tls_conn_feed(s, noise, sizeof noise, &got), XE_TLS);
    CHECK(tls_conn_error(s)[0] != '\0');
    CHECK_INT(got.len, 0);
    tls_conn_free(s);
    buf_free(&got);
    tls_ctx_free(sc);
}

static void test_load_checks(void)
{
    char why[256] = "";
    struct tls_ctx *c = NULL;
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER};

    REQUIRE(make_pki());
    CHECK_INT(tls_check_files(path("node1.key"), path("node1.crt"), path("ca.crt"), why,
                              sizeof why),
              0);
    CHECK(tls_check_files(path("node2.key"), path("node1.crt"), NULL, why, sizeof why) ==
          XE_AUTH);
    CHECK(why[0] != '\0');
    /* A node certificate that the bundle does not vouch for. */
    CHECK(tls_check_files(path("node1.key"), path("node1.crt"), path("ca2/ca.crt"), why,
                          sizeof why) < 0);
    CHECK(tls_check_files(path("nope.key"), path("node1.crt"), NULL, why, sizeof why) ==
          XE_NOTFOUND);
    CHECK(strstr(why, "nope.key") != NULL);
    CHECK_INT(tls_ctx_new(&o, &c, why, sizeof why), XE_INVAL);
    CHECK(c == NULL);
    o.role = TLS_ROLE_CLIENT;
    o.verify_peer = true;
    CHECK_INT(tls_ctx_new(&o, &c, why, sizeof why), XE_INVAL);
}

static void test_mode_names(void)
{
    enum tls_mode m;

    CHECK_INT(tls_mode_parse("required", &m), 0);
    CHECK_INT(m, TLS_MODE_REQUIRED);
    CHECK_INT(tls_mode_parse("optional", &m), 0);
    CHECK_INT(m, TLS_MODE_OPTIONAL);
    CHECK_INT(tls_mode_parse("off", &m), 0);
    CHECK_INT(m, TLS_MODE_OFF);
    CHECK_INT(tls_mode_parse("on", &m), XE_INVAL);
    CHECK_STR(tls_mode_name(TLS_MODE_OPTIONAL), "optional");
}

/* ---- TLS under the connection manager, on loopback ---- */

enum { TAG_SERVER = 1, TAG_CLIENT = 2 };

struct net {
    uv_loop_t loop;
    struct conn_mgr *cm;
    struct log_sink log;
    struct buf logtext;
    uv_timer_t guard;
    bool drained, timed_out, client_closed;
    uint64_t client_id, server_id;
    int opened_server, opened_client, secured, gone_server, gone_client;
    int gone_client_err, gone_server_err;
    struct buf server_got, client_got;
    struct tls_peer_info client_saw; /* the server's certificate */
};

static void log_write(void *ud, enum log_level level, const char *line)
{
    struct net *n = ud;

    buf_puts(&n->logtext, line);
    buf_puts(&n->logtext, "\n");
}

static bool close_early; /* net_run: the client closes right after hello */

static int n_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct net *n = ud;

    if (tag == TAG_SERVER) {
        n->opened_server++;
        n->server_id = id;
    } else {
        CHECK(id == n->client_id);
        n->opened_client++;
    }
    return 0;
}

static void n_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct net *n = ud;

    if (id == n->client_id) {
        buf_append(&n->client_got, bytes, len);
        if (n->client_got.len >= 5) {
            conn_close(n->cm, id); /* the server then sees a clean end */
            n->client_closed = true;
        }
    } else {
        buf_append(&n->server_got, bytes, len);
        /* A client that closed early sent its close_notify with hello. */
        if (n->server_got.len >= 5 && !close_early)
            CHECK_INT(conn_send(n->cm, id, "world", 5), 0);
    }
    conn_mgr_flush(n->cm);
}

static void n_secured(void *ud, uint64_t id)
{
    struct net *n = ud;

    n->secured++;
    if (id == n->client_id)
        CHECK_INT(conn_tls_peer(n->cm, id, &n->client_saw), 0);
}

static void n_gone(void *ud, uint64_t id, int err)
{
    struct net *n = ud;

    if (id == n->client_id) {
        n->gone_client++;
        n->gone_client_err = err;
    } else {
        n->gone_server++;
        n->gone_server_err = err;
    }
    if (n->gone_server > 0 && (n->gone_client > 0 || n->client_closed))
        conn_mgr_shutdown(n->cm);
}

static void n_drained(void *ud)
{
    struct net *n = ud;

    n->drained = true;
    uv_close((uv_handle_t *)&n->guard, NULL);
}

static void on_guard(uv_timer_t *t)
{
    struct net *n = t->data;

    n->timed_out = true;
    conn_mgr_shutdown(n->cm);
}

/* net_start sets n up on a fresh loop: a connection manager with the n_
 * hooks, logging into n->logtext if logging, queue bound max_queued, and a
 * guard that shuts it down after guard_ms. */
static void net_start(struct net *n, bool logging, size_t max_queued, uint64_t guard_ms)
{
    struct conn_hooks h = {.ud = n,
                           .opened = n_opened,
                           .data = n_data,
                           .gone = n_gone,
                           .secured = n_secured,
                           .drained = n_drained};

    memset(n, 0, sizeof *n);
    n->log = (struct log_sink){.level = LOG_DEBUG, .write = log_write, .ud = n};
    REQUIRE(uv_loop_init(&n->loop) == 0);
    REQUIRE(conn_mgr_new(&n->loop, &h, logging ? &n->log : NULL, "n1", max_queued,
                         &n->cm) == 0);
    uv_timer_init(&n->loop, &n->guard);
    n->guard.data = n;
    uv_timer_start(&n->guard, on_guard, guard_ms, 0);
}

/* net_end frees what net_start and a run left. */
static void net_end(struct net *n)
{
    conn_mgr_free(n->cm);
    CHECK_INT(uv_loop_close(&n->loop), 0);
}

/* net_run: listener with sctx in mode, one outgoing connection with cctx
 * (NULL: plaintext) sending hello; runs until both ends are gone. */
static void net_run(struct net *n, struct tls_ctx *sctx, enum tls_mode mode,
                    struct tls_ctx *cctx, const char *verify_name)
{
    char err[256];
    int port = iofix_free_port();

    net_start(n, true, 0, 60000); /* a hang detector: handshakes may be slow */
    CHECK_INT(conn_listen_tls(n->cm, "127.0.0.1", port, TAG_SERVER, sctx, mode, err,
                              sizeof err),
              0);
    CHECK_INT(conn_connect(n->cm, "127.0.0.1", port, TAG_CLIENT, cctx, verify_name,
                           &n->client_id, err, sizeof err),
              0);
    /* Sent before the connection (and the handshake) is up. */
    CHECK_INT(conn_send(n->cm, n->client_id, "hello", 5), 0);
    if (close_early) {
        conn_close(n->cm, n->client_id);
        n->client_closed = true;
    }
    conn_mgr_flush(n->cm);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    CHECK(!n->timed_out);
    CHECK(n->drained);
    CHECK_INT(conn_mgr_count(n->cm), 0);
    net_end(n);
}

static void net_free(struct net *n)
{
    buf_free(&n->logtext);
    buf_free(&n->server_got);
    buf_free(&n->client_got);
}

static bool logged(struct net *n, const char *what)
{
    bool yes = n->logtext.data != NULL && strstr(n->logtext.data, what) != NULL;

    if (!yes)
        fprintf(stderr, "no log line with \"%s\" in:\n%s", what,
                n->logtext.data ? n->logtext.data : "");
    return yes;
}

static void test_conn_tls_exchange(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct tls_ctx *cc = client_ctx(NULL, "ca.crt", true);
    struct net n;

    REQUIRE(sc != NULL && cc != NULL);
    for (int mode = TLS_MODE_OPTIONAL; mode <= TLS_MODE_REQUIRED; mode++) {
        net_run(&n, sc, (enum tls_mode)mode, cc, "127.0.0.1");
        CHECK_INT(n.opened_server, 1);
        CHECK_INT(n.opened_client, 1);
        CHECK_INT(n.secured, 2);
        CHECK_STR(n.server_got.data, "hello");
        CHECK_STR(n.client_got.data, "world");
        /* The client closed with close_notify: an orderly end. */
        CHECK_INT(n.gone_server, 1);
        CHECK_INT(n.gone_server_err, 0);
        CHECK_STR(n.client_saw.subject, "CN=node1");
        CHECK(logged(&n, "TLS with 127.0.0.1:"));
        net_free(&n);
    }
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

/* Closed right after sending, before TCP or the TLS handshake is up: the
 * handshake still finishes, the bytes arrive, then the close_notify. */
static void test_conn_tls_close_before_handshake(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct tls_ctx *cc = client_ctx(NULL, "ca.crt", true);
    struct net n;

    REQUIRE(sc != NULL && cc != NULL);
    close_early = true;
    net_run(&n, sc, TLS_MODE_REQUIRED, cc, "127.0.0.1");
    close_early = false;
    CHECK_INT(n.opened_server, 1);
    CHECK_INT(n.opened_client, 0); /* closed before it was up: no hooks */
    CHECK_INT(n.secured, 1);       /* the server's side only */
    CHECK_STR(n.server_got.data, "hello");
    CHECK_INT(n.gone_client, 0);
    CHECK_INT(n.gone_server, 1);
    CHECK_INT(n.gone_server_err, 0);
    net_free(&n);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void test_conn_plain_modes(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct net n;

    REQUIRE(sc != NULL);
    /* Optional: plaintext still works, untouched. */
    net_run(&n, sc, TLS_MODE_OPTIONAL, NULL, NULL);
    CHECK_STR(n.server_got.data, "hello");
    CHECK_STR(n.client_got.data, "world");
    CHECK_INT(n.secured, 0);
    net_free(&n);
    /* Off: the context is ignored. */
    net_run(&n, sc, TLS_MODE_OFF, NULL, NULL);
    CHECK_STR(n.client_got.data, "world");
    net_free(&n);
    /* Required: the first byte is not a ClientHello, so it is closed. */
    n.client_got.data = NULL;
    net_run(&n, sc, TLS_MODE_REQUIRED, NULL, NULL);
    CHECK_INT(n.server_got.len, 0);
    CHECK_INT(n.client_got.len, 0);
    CHECK_INT(n.gone_server, 1);
    CHECK_INT(n.gone_client, 1);
    CHECK(logged(&n,
                 "not a TLS ClientHello (first byte 0x68) on a port that requires TLS"));
    net_free(&n);
    tls_ctx_free(sc);
}

static void nop_drained(void *ud)
{
}

static void test_conn_tls_refused(void)
{
    struct tls_ctx *sc = server_ctx("node1", false, false);
    struct tls_ctx *other = client_ctx(NULL, "ca2/ca.crt", true);
    struct tls_ctx *cc = client_ctx(NULL, "ca.crt", true);
    struct net n;
    char err[200];

    REQUIRE(sc != NULL && other != NULL && cc != NULL);
    net_run(&n, sc, TLS_MODE_REQUIRED, other, "127.0.0.1");
    CHECK_INT(n.server_got.len, 0);
    CHECK_INT(n.gone_client, 1);
    CHECK_INT(n.gone_client_err, UV_EPROTO);
    CHECK_INT(n.gone_server, 1);
    CHECK(logged(&n, "TLS handshake with 127.0.0.1:"));
    CHECK(logged(&n, "failed: peer certificate not trusted"));
    CHECK(logged(&n, "failed: peer rejected our certificate"));
    net_free(&n);

    /* The name we asked for is not in the certificate. */
    net_run(&n, sc, TLS_MODE_OPTIONAL, cc, "node9.example.com");
    CHECK_INT(n.gone_client_err, UV_EPROTO);
    CHECK(logged(&n, "hostname mismatch"));
    net_free(&n);

    /* Contexts of the wrong role are refused up front. */
    {
        uv_loop_t loop;
        struct conn_mgr *cm;
        struct conn_hooks h = {.drained = nop_drained};
        uint64_t id;

        REQUIRE(uv_loop_init(&loop) == 0);
        REQUIRE(conn_mgr_new(&loop, &h, NULL, "n1", 0, &cm) == 0);
        CHECK_INT(conn_listen_tls(cm, "127.0.0.1", iofix_free_port(), 1, cc,
                                  TLS_MODE_REQUIRED, err, sizeof err),
                  XE_INVAL);
        CHECK_INT(conn_listen_tls(cm, "127.0.0.1", iofix_free_port(), 1, NULL,
                                  TLS_MODE_OPTIONAL, err, sizeof err),
                  XE_INVAL);
        CHECK_INT(conn_connect(cm, "127.0.0.1", 1, 1, sc, NULL, &id, err, sizeof err),
                  XE_INVAL);
        CHECK_INT(conn_connect(cm, "nowhere", 1, 1, NULL, NULL, &id, err, sizeof err),
                  XE_INVAL);
        conn_mgr_shutdown(cm);
        uv_run(&loop, UV_RUN_DEFAULT);
        conn_mgr_free(cm);
        CHECK_INT(uv_loop_close(&loop), 0);
    }
    tls_ctx_free(sc);
    tls_ctx_free(other);
    tls_ctx_free(cc);
}

/* Outgoing connections that never come up: refused, and cancelled by a
 * shutdown while still connecting. */
static void test_conn_connect_edges(void)
{
    struct tls_ctx *cc = client_ctx(NULL, "ca.crt", true);
    struct net n;
    char err[200];
    uint64_t id2;

    REQUIRE(cc != NULL);
    net_start(&n, true, 0, 60000);
    n.gone_server = 1; /* no server here: shut down on the client's end */
    CHECK_INT(conn_connect(n.cm, "127.0.0.1", iofix_free_port(), TAG_CLIENT, cc,
                           "127.0.0.1", &n.client_id, err, sizeof err),
              0);
    CHECK_INT(conn_send(n.cm, n.client_id, "hello", 5), 0);
    conn_mgr_flush(n.cm);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    CHECK(!n.timed_out);
    CHECK_INT(n.opened_client, 0);
    CHECK_INT(n.gone_client, 1);
    CHECK_INT(n.gone_client_err, UV_ECONNREFUSED);
    CHECK(logged(&n, "failed: connection refused"));
    net_end(&n);
    net_free(&n);

    /* Shut down before the connect finishes: no hooks, no drain wait. */
    net_start(&n, false, 0, 60000); /* a hang detector */
    CHECK_INT(conn_connect(n.cm, "127.0.0.1", iofix_free_port(), TAG_CLIENT, cc,
                           "127.0.0.1", &id2, err, sizeof err),
              0);
    conn_mgr_shutdown(n.cm);
    CHECK_INT(
        conn_connect(n.cm, "127.0.0.1", 1, TAG_CLIENT, NULL, NULL, &id2, err, sizeof err),
        XE_STATE);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    CHECK(!n.timed_out);
    CHECK(n.drained);
    CHECK_INT(n.gone_client + n.opened_client, 0);
    net_end(&n);
    net_free(&n);
    tls_ctx_free(cc);
}

/* Bytes sent before the TLS handshake ends are held by the session; they
 * count toward the queue bound (a peer that never finishes the handshake must
 * not let the owner queue without end). */
static void test_conn_held_bytes_bounded(void)
{
    struct tls_ctx *cc = client_ctx(NULL, "ca.crt", true);
    struct net n;
    char err[200], chunk[1000];
    uint64_t id;
    int sent = 0, rc = 0;

    REQUIRE(cc != NULL);
    memset(chunk, 'x', sizeof chunk);
    net_start(&n, false, 8000, 60000); /* a hang detector */
    CHECK_INT(conn_connect(n.cm, "127.0.0.1", iofix_free_port(), TAG_CLIENT, cc,
                           "127.0.0.1", &id, err, sizeof err),
              0);
    while (sent < 100 && (rc = conn_send(n.cm, id, chunk, sizeof chunk)) == 0)
        sent++;
    CHECK_INT(rc, XE_BUSY);
    CHECK(sent >= 1 && sent < 8);
    conn_mgr_shutdown(n.cm);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    CHECK(!n.timed_out);
    CHECK(n.drained);
    net_end(&n);
    net_free(&n);
    tls_ctx_free(cc);
}

/* The configuration directives that set TLS up (core/conffile_parse.c). */
static int parse(const char *text, struct conf *c, struct conf_error *e)
{
    return conf_parse(text, strlen(text), c, e);
}

static void test_conf_directives(void)
{
    struct conf c;
    struct conf_error e;

    REQUIRE(sodium_init() >= 0);
    CHECK_INT(parse("domain example.com\n", &c, &e), 0);
    CHECK_INT(c.component_tls, CONF_TLS_OFF);
    CHECK(c.key == NULL && c.cert == NULL && c.bundle == NULL);
    conf_free(&c);
    CHECK_INT(parse("domain example.com\ncerts n1.key n1.crt ca.pem\n", &c, &e), 0);
    CHECK_INT(c.component_tls, CONF_TLS_OPTIONAL);
    CHECK_STR(c.key, "n1.key");
    CHECK_STR(c.cert, "n1.crt");
    CHECK_STR(c.bundle, "ca.pem");
    conf_free(&c);
    CHECK_INT(parse("domain example.com\ncerts n1.key n1.crt\ncomponent-tls required\n",
                    &c, &e),
              0);
    CHECK_INT(c.component_tls, CONF_TLS_REQUIRED);
    CHECK(c.bundle == NULL);
    CHECK_STR(conf_tls_name(c.component_tls), "required");
    conf_free(&c);
    CHECK_INT(
        parse("domain example.com\ncerts n1.key n1.crt\ncomponent-tls off\n", &c, &e), 0);
    CHECK_INT(c.component_tls, CONF_TLS_OFF);
    conf_free(&c);
    CHECK_INT(parse("domain example.com\ncomponent-tls required\n", &c, &e), XE_CORRUPT);
    CHECK(strstr(e.msg, "needs a certs line") != NULL);
    CHECK_INT(parse("domain example.com\ncomponent-tls maybe\n", &c, &e), XE_CORRUPT);
    CHECK_INT(e.line, 2);
    CHECK_INT(parse("domain example.com\ncerts ../n1.key n1.crt\n", &c, &e), XE_CORRUPT);
    CHECK_INT(parse("domain example.com\ncerts n1.key\n", &c, &e), XE_CORRUPT);
    CHECK_INT(parse("domain example.com\ncerts a b\ncerts a b\n", &c, &e), XE_CORRUPT);
    CHECK(strstr(e.msg, "duplicate") != NULL);
}

static void test_cleanup(void)
{
    iofix_rmdir(dir);
}

TL_MAIN(T(test_load_checks), T(test_mode_names), T(test_handshake_and_data),
        T(test_tls12_client), T(test_tls10_refused), T(test_tls13_only_refuses_tls12),
        T(test_hostname_and_trust), T(test_mutual_tls), T(test_garbage),
        T(test_conn_tls_exchange), T(test_conn_tls_close_before_handshake),
        T(test_conn_plain_modes), T(test_conn_tls_refused), T(test_conn_connect_edges),
        T(test_conn_held_bytes_bounded), T(test_conf_directives), T(test_cleanup))
