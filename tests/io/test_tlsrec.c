/* test_tlsrec.c: the TLS 1.3 handoff (xmppd/io/tls.c) and the record layer
 * after it (xmppd/io/tlsrec.c).  A server tls_conn faces a plain OpenSSL
 * client over memory BIOs: data both ways on each suite, fragmentation,
 * many small records, data coalesced with the client's Finished, KeyUpdate
 * with and without update_requested, close_notify both ways, channel
 * binding.  Records OpenSSL would never send are made by a second record
 * layer built from the client's traffic secrets (its keylog): a flipped
 * bit, oversized records, change_cipher_spec, other handshake messages,
 * alerts, padding, KeyUpdate in pieces.  Two bare record layers test
 * sequence numbers at their limits. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "err.h"
#include "iofix.h"
#include "srv.h"
#include "testlib.h"
#include "tls.h"
#include "tlsrec.h"

static char dir[256];

static bool make_pki(void)
{
    return iofix_pki(dir, sizeof dir, "tlsrec",
                     "$S/mkca $D 'Test CA 1';"
                     "$S/mknode $D node1 --domain example.com --ip 127.0.0.1");
}

/* The client's secrets, from its keylog: [0] client traffic, [1] server
 * traffic, [2] exporter master secret. */
static unsigned char cli_secret[3][TLSREC_MAX_SECRET];
static size_t cli_secret_len[3];

static void cli_keylog(const SSL *ssl, const char *line)
{
    int i = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0   ? 0
            : strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0 ? 1
            : strncmp(line, "EXPORTER_SECRET ", 16) == 0         ? 2
                                                                 : -1;
    const char *sp = strchr(line, ' '), *hex;
    size_t n;

    (void)ssl;
    /* "LABEL <client random> <secret>": the secret follows the second space. */
    if (i < 0 || sp == NULL || (hex = strchr(sp + 1, ' ')) == NULL)
        return;
    hex++;
    n = strlen(hex) / 2;
    if (n > TLSREC_MAX_SECRET)
        return;
    for (size_t k = 0; k < n; k++)
        cli_secret[i][k] =
            (unsigned char)(OPENSSL_hexchar2int((unsigned char)hex[2 * k]) << 4 |
                            OPENSSL_hexchar2int((unsigned char)hex[2 * k + 1]));
    cli_secret_len[i] = n;
}

/* A server tls_conn and an OpenSSL client wired back to back. */
struct link {
    struct tls_ctx *sctx;
    SSL_CTX *cctx;
    SSL *c;
    BIO *c_in, *c_out; /* to the client, from the client */
    struct tls_conn *s;
    struct buf s_got;    /* plaintext the server received */
    int s_rc;            /* the server's last feed result */
    struct tlsrec *peer; /* a record layer with the client's keys */
    struct buf c_got;    /* plaintext the client read during link_open */
};

/* to_server feeds what the client wrote to the server; returns the feed's
 * result. */
static int to_server(struct link *l)
{
    char b[65536];
    int n;

    while ((n = BIO_read(l->c_out, b, sizeof b)) > 0) {
        l->s_rc = tls_conn_feed(l->s, b, (size_t)n, &l->s_got);
        if (l->s_rc < 0)
            break;
    }
    return l->s_rc;
}

/* raw_to_server feeds len bytes of data to the server. */
static int raw_to_server(struct link *l, const void *data, size_t len)
{
    return l->s_rc = tls_conn_feed(l->s, data, len, &l->s_got);
}

/* server_out takes the server's output into *wire. */
static void server_out(struct link *l, struct buf *wire)
{
    CHECK_INT(tls_conn_take_out(l->s, wire), 0);
}

/* to_client passes the server's output to the client and reads what it
 * decrypts into got; returns SSL_get_error of the last read. */
static int to_client(struct link *l, struct buf *got)
{
    struct buf wire = {0};
    char b[16384];
    int r;

    server_out(l, &wire);
    if (wire.len > 0)
        BIO_write(l->c_in, wire.data, (int)wire.len);
    buf_free(&wire);
    for (;;) {
        r = SSL_read(l->c, b, sizeof b);
        if (r <= 0)
            return SSL_get_error(l->c, r);
        buf_append(got, b, (size_t)r);
    }
}

/* link_open makes the pair on suite (a TLS 1.3 suite name) and runs the
 * handshake; with first (may be NULL) the client writes it right after its
 * Finished, in the same flight. */
static bool link_open_v(struct link *l, const char *suite, const char *first, int version,
                        const char *held, bool close_early)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER};
    char why[256] = "";

    memset(l, 0, sizeof *l);
    if (!make_pki())
        return false;
    o.key_path = iofix_path(dir, "node1.key");
    o.cert_path = iofix_path(dir, "node1.crt");
    o.bundle_path = iofix_path(dir, "ca.crt");
    if (tls_ctx_new(&o, &l->sctx, why, sizeof why) < 0) {
        fprintf(stderr, "server ctx: %s\n", why);
        return false;
    }
    l->cctx = SSL_CTX_new(TLS_client_method());
    if (l->cctx == NULL)
        return false;
    SSL_CTX_set_min_proto_version(l->cctx, version);
    SSL_CTX_set_max_proto_version(l->cctx, version);
    SSL_CTX_set_ciphersuites(l->cctx, suite);
    SSL_CTX_set_keylog_callback(l->cctx, cli_keylog);
    l->c = SSL_new(l->cctx);
    l->c_in = BIO_new(BIO_s_mem());
    l->c_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(l->c_in, -1);
    BIO_set_mem_eof_return(l->c_out, -1);
    SSL_set_bio(l->c, l->c_in, l->c_out);
    SSL_set_connect_state(l->c);
    if (tls_conn_new(l->sctx, NULL, &l->s) < 0)
        return false;
    /* Written before the handshake: held, sent after it (tls.h). */
    if (held != NULL && tls_conn_write(l->s, held, strlen(held)) < 0)
        return false;
    if (close_early)
        tls_conn_close(l->s);
    memset(cli_secret_len, 0, sizeof cli_secret_len);
    for (int i = 0; i < 20 && !tls_conn_established(l->s); i++) {
        SSL_do_handshake(l->c);
        if (SSL_is_init_finished(l->c) && first != NULL) {
            SSL_write(l->c, first, (int)strlen(first));
            first = NULL;
        }
        if (to_server(l) < 0)
            return false;
        to_client(l, &l->c_got);
    }
    if (!tls_conn_established(l->s) || !SSL_is_init_finished(l->c))
        return false;
    if (version != TLS1_3_VERSION)
        return true;
    /* The peer record layer: receives with the server's secret, sends
     * with the client's. */
    return tlsrec_new(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(l->c)),
                      cli_secret[1], cli_secret[0], cli_secret_len[0], &l->peer) == 0;
}

static bool link_open(struct link *l, const char *suite, const char *first)
{
    return link_open_v(l, suite, first, TLS1_3_VERSION, NULL, false);
}

static void link_free(struct link *l)
{
    tls_conn_free(l->s);
    tls_ctx_free(l->sctx);
    SSL_free(l->c);
    SSL_CTX_free(l->cctx);
    tlsrec_free(l->peer);
    buf_free(&l->s_got);
    buf_free(&l->c_got);
}

/* peer_send seals one record with the client's keys and feeds it. */
static int peer_send(struct link *l, uint8_t ctype, const void *data, size_t len,
                     size_t pad)
{
    struct buf rec = {0};
    int rc;

    if (tlsrec__seal(l->peer, ctype, data, len, pad, &rec) != 0) {
        CHECK(!"tlsrec__seal failed");
        return XE_INVAL;
    }
    rc = raw_to_server(l, rec.data, rec.len);
    buf_free(&rec);
    return rc;
}

/* client_write has the client write s. */
static void client_write(struct link *l, const char *s, size_t len)
{
    CHECK_INT(SSL_write(l->c, s, (int)len), (int)len);
}

static const char *const suite_names[] = {
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};

static void test_data_each_suite(void)
{
    for (size_t i = 0; i < 3; i++) {
        struct link l;
        struct buf got = {0};
        struct srv_tls_info info;
        struct tls_peer_info peer;
        unsigned char want[32];

        REQUIRE(link_open(&l, suite_names[i], NULL));
        CHECK(tls__handed_off(l.s));
        CHECK_STR(tls_conn_version(l.s), "TLSv1.3");
        CHECK_STR(tls_conn_cipher(l.s), suite_names[i]);
        client_write(&l, "hello", 5);
        CHECK_INT(to_server(&l), 0);
        CHECK_INT((int)l.s_got.len, 5);
        CHECK(memcmp(l.s_got.data, "hello", 5) == 0);
        CHECK_INT(tls_conn_write(l.s, "world", 5), 0);
        CHECK_INT(to_client(&l, &got), SSL_ERROR_WANT_READ);
        CHECK_STR(got.data, "world");
        /* RFC 9266: the same value on both sides after the handoff. */
        CHECK_INT(tls_conn_binding(l.s, &info), 0);
        CHECK(info.tls13);
        CHECK_INT((int)info.exporter_len, 32);
        CHECK_INT((int)info.endpoint_len, 32);
        CHECK(SSL_export_keying_material(l.c, want, sizeof want,
                                         "EXPORTER-Channel-Binding", 24, NULL, 0,
                                         0) == 1);
        CHECK(memcmp(info.exporter, want, 32) == 0);
        /* tlsrec_exporter itself, with another label and length, against
         * OpenSSL's exporter (RFC 8446 §7.5). */
        {
            unsigned char got_x[20], want_x[20];
            uint16_t id = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(l.c));

            CHECK_INT(tlsrec_exporter(id, cli_secret[2], cli_secret_len[2],
                                      "EXPORTER-xmppd-test", got_x, sizeof got_x),
                      0);
            CHECK(SSL_export_keying_material(l.c, want_x, sizeof want_x,
                                             "EXPORTER-xmppd-test", 19, NULL, 0, 0) == 1);
            CHECK(memcmp(got_x, want_x, sizeof got_x) == 0);
            CHECK_INT(
                tlsrec_exporter(id, cli_secret[2], cli_secret_len[2] - 1, "x", got_x, 8),
                XE_INVAL);
            CHECK_INT(
                tlsrec_exporter(id, cli_secret[2], cli_secret_len[2], "x", got_x, 49),
                XE_INVAL);
            CHECK_INT(
                tlsrec_exporter(0x1304, cli_secret[2], cli_secret_len[2], "x", got_x, 8),
                XE_INVAL);
        }
        CHECK_INT(tls_conn_peer(l.s, &peer), XE_NOTFOUND);
        CHECK(!peer.has_cert);
        buf_free(&got);
        link_free(&l);
    }
}

/* record_sizes checks that wire holds whole records of at most 2^14
 * bytes of content and returns how many. */
static int record_sizes(const struct buf *wire)
{
    size_t off = 0;
    int n = 0;

    while (off + 5 <= wire->len) {
        const unsigned char *h = (const unsigned char *)wire->data + off;
        size_t clen = (size_t)h[3] << 8 | h[4];
        CHECK(h[0] == 23);
        CHECK(clen <= TLSREC_MAX_PLAIN + 1 + 16);
        off += 5 + clen;
        n++;
    }
    CHECK(off == wire->len);
    return n;
}

static void test_large_writes(void)
{
    static char big[100000];
    struct link l;
    struct buf wire = {0}, got = {0};

    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(tls_conn_write(l.s, big, sizeof big), 0);
    CHECK_INT((int)tls_conn_pending_out(l.s) > (int)sizeof big, 1);
    server_out(&l, &wire);
    CHECK_INT(record_sizes(&wire), 7); /* 100000 = 6 * 16384 + 1696 */
    BIO_write(l.c_in, wire.data, (int)wire.len);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_WANT_READ);
    CHECK_INT((int)got.len, (int)sizeof big);
    CHECK(got.len == sizeof big && memcmp(got.data, big, sizeof big) == 0);
    for (size_t off = 0; off < sizeof big; off += 10000)
        client_write(&l, big + off, 10000);
    CHECK_INT(to_server(&l), 0);
    CHECK(l.s_got.len == sizeof big && memcmp(l.s_got.data, big, sizeof big) == 0);
    buf_free(&wire);
    buf_free(&got);
    link_free(&l);
}

static void test_many_small_records(void)
{
    struct link l;
    struct buf want = {0};
    char one[16];

    REQUIRE(link_open(&l, "TLS_CHACHA20_POLY1305_SHA256", NULL));
    for (int i = 0; i < 500; i++) {
        int n = snprintf(one, sizeof one, "<m%d/>", i);
        client_write(&l, one, (size_t)n);
        buf_append(&want, one, (size_t)n);
    }
    CHECK_INT(to_server(&l), 0);
    CHECK(l.s_got.len == want.len && memcmp(l.s_got.data, want.data, want.len) == 0);
    buf_free(&want);
    link_free(&l);
}

static void test_data_with_finished(void)
{
    struct link l;

    /* The client's first stanza follows its Finished in one read: it is
     * still in OpenSSL's read BIO at the handoff and must not be lost. */
    REQUIRE(link_open(&l, "TLS_AES_256_GCM_SHA384", "<stream:stream>"));
    CHECK(tls__handed_off(l.s));
    CHECK_STR(l.s_got.data != NULL ? l.s_got.data : "", "<stream:stream>");
    link_free(&l);
}

static void test_key_update(void)
{
    struct link l;
    struct buf got = {0}, wire = {0};

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    /* update_not_requested: only the client's key changes. */
    CHECK(SSL_key_update(l.c, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
    client_write(&l, "a", 1);
    CHECK_INT(to_server(&l), 0);
    CHECK_STR(l.s_got.data, "a");
    CHECK_INT((int)tls_conn_pending_out(l.s), 0);
    CHECK_INT(tls_conn_write(l.s, "b", 1), 0);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_WANT_READ);
    CHECK_STR(got.data, "b");
    /* update_requested: the server answers with a KeyUpdate of its own
     * before its next data, under its new key (RFC 8446 §4.6.3). */
    CHECK(SSL_key_update(l.c, SSL_KEY_UPDATE_REQUESTED) == 1);
    client_write(&l, "c", 1);
    CHECK_INT(to_server(&l), 0);
    CHECK_STR(l.s_got.data, "ac");
    CHECK_INT(tls_conn_write(l.s, "d", 1), 0);
    server_out(&l, &wire);
    CHECK_INT(record_sizes(&wire), 2);
    BIO_write(l.c_in, wire.data, (int)wire.len);
    buf_reset(&got);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_WANT_READ);
    CHECK_STR(got.data, "d");
    client_write(&l, "e", 1);
    CHECK_INT(to_server(&l), 0);
    CHECK_STR(l.s_got.data, "ace");
    buf_free(&got);
    buf_free(&wire);
    link_free(&l);
}

static void test_key_update_in_pieces(void)
{
    struct link l;
    static const uint8_t ku[5] = {24, 0, 0, 1, 0};
    struct buf old = {0};

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(peer_send(&l, 22, ku, 3, 0), 0);
    CHECK_INT(peer_send(&l, 22, ku + 3, 2, 7), 0);
    /* The server moved to the next key: a record under the old one no
     * longer opens. */
    REQUIRE(tlsrec__seal(l.peer, 23, "x", 1, 0, &old) == 0);
    CHECK_INT(raw_to_server(&l, old.data, old.len), XE_TLS);
    CHECK(strstr(tls_conn_error(l.s), "bad_record_mac") != NULL);
    buf_free(&old);
    link_free(&l);
}

/* expect_fail sends one record and checks the failure, its message and
 * that an alert went out. */
static void expect_fail(uint8_t ctype, const void *data, size_t len, size_t pad,
                        const char *alert)
{
    struct link l;
    struct buf got = {0};

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(peer_send(&l, ctype, data, len, pad), XE_TLS);
    CHECK(tls_conn_failed(l.s));
    CHECK(strstr(tls_conn_error(l.s), alert) != NULL);
    if (strstr(tls_conn_error(l.s), alert) == NULL)
        fprintf(stderr, "  error: %s (want %s)\n", tls_conn_error(l.s), alert);
    CHECK_INT(tls_conn_write(l.s, "x", 1), XE_STATE);
    /* The client gets the alert, encrypted. */
    CHECK_INT(to_client(&l, &got), SSL_ERROR_SSL);
    CHECK_INT(raw_to_server(&l, "", 0), XE_TLS);
    buf_free(&got);
    link_free(&l);
}

static void test_bad_records(void)
{
    static const uint8_t ku_then_data[6] = {24, 0, 0, 1, 0, 'x'};
    static const uint8_t ku_bad[5] = {24, 0, 0, 1, 2};
    static const uint8_t ku_long[6] = {24, 0, 0, 2, 0, 0};
    static const uint8_t ticket[9] = {4, 0, 0, 5, 0, 0, 0, 0, 0};
    static const uint8_t hello[5] = {1, 0, 0, 1, 0};
    static const uint8_t alert3[3] = {2, 10, 0};
    static char big[TLSREC_MAX_PLAIN + 1];

    expect_fail(22, ticket, sizeof ticket, 0, "unexpected_message");
    expect_fail(22, hello, sizeof hello, 0, "unexpected_message");
    expect_fail(22, ku_then_data, sizeof ku_then_data, 0, "unexpected_message");
    expect_fail(22, ku_bad, sizeof ku_bad, 0, "illegal_parameter");
    expect_fail(22, ku_long, sizeof ku_long, 0, "decode_error");
    expect_fail(22, "", 0, 3, "unexpected_message");
    expect_fail(21, "", 0, 0, "unexpected_message");
    expect_fail(21, alert3, sizeof alert3, 0, "decode_error");
    expect_fail(0, "", 0, 10, "a record with no content type"); /* all padding */
    expect_fail(20, "\1", 1, 0, "unexpected_message");          /* a protected CCS */
    expect_fail(99, "x", 1, 0, "unexpected_message");
    /* 2^14 + 1 bytes of content: over the plaintext limit. */
    expect_fail(23, big, sizeof big, 0, "record_overflow");
}

static void test_bad_record_mac(void)
{
    struct link l;
    struct buf got = {0};
    char b[256];
    int n;

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    client_write(&l, "hello", 5);
    n = BIO_read(l.c_out, b, sizeof b);
    REQUIRE(n > 10);
    b[n - 3] ^= 0x10;
    CHECK_INT(raw_to_server(&l, b, (size_t)n), XE_TLS);
    CHECK(strstr(tls_conn_error(l.s), "bad_record_mac") != NULL);
    CHECK_INT((int)l.s_got.len, 0);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_SSL);
    CHECK_INT(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    ERR_clear_error();
    buf_free(&got);
    link_free(&l);
}

static void test_unprotected_records(void)
{
    static const unsigned char ccs[6] = {20, 3, 3, 0, 1, 1};
    static const unsigned char over[5] = {23, 3, 3, 0x41, 0x01}; /* 2^14 + 257 */
    static const unsigned char hs[9] = {22, 3, 3, 0, 4, 24, 0, 0, 1};
    struct link l;

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(raw_to_server(&l, ccs, sizeof ccs), XE_TLS);
    CHECK(strstr(tls_conn_error(l.s), "unexpected_message: change_cipher_spec") != NULL);
    link_free(&l);
    /* Refused from its header alone, before 16 KiB are waited for. */
    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(raw_to_server(&l, over, sizeof over), XE_TLS);
    CHECK(strstr(tls_conn_error(l.s), "record_overflow") != NULL);
    CHECK(tls_conn_pending_out(l.s) > 0);
    link_free(&l);
    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(raw_to_server(&l, hs, sizeof hs), XE_TLS);
    CHECK(strstr(tls_conn_error(l.s), "unexpected_message") != NULL);
    link_free(&l);
}

static void test_alerts(void)
{
    static const uint8_t canceled[2] = {1, 90}, failure[2] = {2, 40};
    struct link l;

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(peer_send(&l, 21, canceled, 2, 0), 0);
    CHECK_INT(peer_send(&l, 23, "still", 5, 0), 0);
    CHECK_STR(l.s_got.data, "still");
    CHECK_INT(peer_send(&l, 21, failure, 2, 0), XE_TLS);
    CHECK_STR(tls_conn_error(l.s), "peer sent a fatal alert: handshake_failure");
    /* No alert answers an alert. */
    CHECK_INT((int)tls_conn_pending_out(l.s), 0);
    link_free(&l);
}

static void test_padding_and_empty_data(void)
{
    struct link l;

    REQUIRE(link_open(&l, "TLS_AES_256_GCM_SHA384", NULL));
    CHECK_INT(peer_send(&l, 23, "pad", 3, 200), 0);
    CHECK_INT(peer_send(&l, 23, "", 0, 0), 0);
    CHECK_INT(peer_send(&l, 23, "ded", 3, 1), 0);
    CHECK_STR(l.s_got.data, "padded");
    link_free(&l);
}

static void test_close_notify_from_client(void)
{
    struct link l;
    struct buf got = {0};

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    client_write(&l, "bye", 3);
    SSL_shutdown(l.c);
    CHECK_INT(to_server(&l), XE_CLOSED);
    CHECK_STR(l.s_got.data, "bye");
    CHECK(!tls_conn_failed(l.s));
    CHECK_INT(tls_conn_write(l.s, "x", 1), XE_STATE);
    CHECK_INT(raw_to_server(&l, "junk", 4), XE_CLOSED);
    /* Our close_notify answers it. */
    CHECK_INT(to_client(&l, &got), SSL_ERROR_ZERO_RETURN);
    buf_free(&got);
    link_free(&l);
}

static void test_close_from_server(void)
{
    struct link l;
    struct buf got = {0};

    REQUIRE(link_open(&l, "TLS_AES_128_GCM_SHA256", NULL));
    CHECK_INT(tls_conn_write(l.s, "last", 4), 0);
    tls_conn_close(l.s);
    tls_conn_close(l.s);
    CHECK_INT(tls_conn_write(l.s, "x", 1), XE_STATE);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_ZERO_RETURN);
    CHECK_STR(got.data, "last");
    /* The client may still send before its own close_notify. */
    client_write(&l, "late", 4);
    SSL_shutdown(l.c);
    CHECK_INT(to_server(&l), XE_CLOSED);
    CHECK_STR(l.s_got.data, "late");
    CHECK_INT((int)tls_conn_pending_out(l.s), 0);
    buf_free(&got);
    link_free(&l);
}

static void test_byte_by_byte(void)
{
    static char big[20000];
    struct link l;
    struct buf in = {0}, want = {0};
    char b[65536];
    int n;

    memset(big, 'z', sizeof big);
    REQUIRE(link_open(&l, "TLS_CHACHA20_POLY1305_SHA256", NULL));
    client_write(&l, "one", 3);
    client_write(&l, "two", 3);
    client_write(&l, big, sizeof big);
    buf_append(&want, "onetwo", 6);
    buf_append(&want, big, sizeof big);
    while ((n = BIO_read(l.c_out, b, sizeof b)) > 0)
        buf_append(&in, b, (size_t)n);
    for (size_t i = 0; i < in.len; i++)
        CHECK_INT(raw_to_server(&l, in.data + i, 1), 0);
    CHECK(l.s_got.len == want.len && memcmp(l.s_got.data, want.data, want.len) == 0);
    buf_free(&in);
    buf_free(&want);
    link_free(&l);
}

/* Two bare record layers facing each other (any secrets will do). */
static void bare_pair(struct tlsrec **a, struct tlsrec **b)
{
    unsigned char s1[32], s2[32];

    memset(s1, 1, sizeof s1);
    memset(s2, 2, sizeof s2);
    *a = *b = NULL;
    CHECK_INT(tlsrec_new(0x1301, s1, s2, 32, a), 0);
    CHECK_INT(tlsrec_new(0x1301, s2, s1, 32, b), 0);
}

static void test_sequence_limits(void)
{
    struct tlsrec *a, *b;
    struct buf wire = {0}, plain = {0}, out = {0};
    char err[128] = "";

    bare_pair(&a, &b);
    REQUIRE(a != NULL && b != NULL);
    tlsrec_free(a);
    tlsrec_free(b);
    CHECK_INT(tlsrec_new(0x1304, (const unsigned char *)err, (const unsigned char *)err,
                         32, &a),
              XE_INVAL);
    bare_pair(&a, &b);
    /* At 2^24 records we send a KeyUpdate first (RFC 8446 §5.5). */
    tlsrec__set_seq(a, 0, UINT64_C(1) << 24);
    tlsrec__set_seq(b, UINT64_C(1) << 24, 0);
    CHECK_INT(tlsrec_write(a, "hi", 2, &wire), 0);
    CHECK_INT(record_sizes(&wire), 2);
    CHECK_INT(tlsrec_feed(b, wire.data, wire.len, &plain, &out, err, sizeof err), 0);
    CHECK_STR(plain.data, "hi");
    CHECK_INT((int)out.len, 0);
    /* A peer's sequence number that would wrap ends the session (§5.3). */
    buf_reset(&wire);
    CHECK_INT(tlsrec_write(b, "x", 1, &wire), 0);
    tlsrec__set_seq(a, UINT64_MAX, 0);
    CHECK_INT(tlsrec_feed(a, wire.data, wire.len, &plain, &out, err, sizeof err), XE_TLS);
    CHECK(strstr(err, "wrap") != NULL);
    CHECK(tlsrec_failed(a));
    /* Ours never wraps either. */
    tlsrec__set_seq(b, 0, UINT64_MAX);
    CHECK_INT(tlsrec__seal(b, 23, "x", 1, 0, &wire), XE_TLS);
    tlsrec_free(a);
    tlsrec_free(b);
    buf_free(&wire);
    buf_free(&plain);
    buf_free(&out);
}

static void test_held_then_handoff(void)
{
    struct link l;
    struct buf got = {0};

    /* What the owner wrote during the handshake goes out on the record
     * layer, then the close_notify asked for meanwhile. */
    REQUIRE(link_open_v(&l, "TLS_AES_128_GCM_SHA256", NULL, TLS1_3_VERSION, "<early/>",
                        true));
    CHECK(tls__handed_off(l.s));
    CHECK_INT((int)tls_conn_held(l.s), 0);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_ZERO_RETURN);
    CHECK_STR(l.c_got.data != NULL ? l.c_got.data : got.data, "<early/>");
    buf_free(&got);
    link_free(&l);
}

static void test_tls12_keeps_ssl(void)
{
    struct link l;
    struct buf got = {0};
    struct srv_tls_info info;

    REQUIRE(link_open_v(&l, "TLS_AES_128_GCM_SHA256", NULL, TLS1_2_VERSION, NULL, false));
    CHECK(!tls__handed_off(l.s));
    CHECK_STR(tls_conn_version(l.s), "TLSv1.2");
    client_write(&l, "v12", 3);
    CHECK_INT(to_server(&l), 0);
    CHECK_STR(l.s_got.data, "v12");
    CHECK_INT(tls_conn_write(l.s, "ok", 2), 0);
    CHECK_INT(to_client(&l, &got), SSL_ERROR_WANT_READ);
    CHECK_STR(got.data, "ok");
    CHECK_INT(tls_conn_binding(l.s, &info), 0);
    CHECK(!info.tls13);
    CHECK_INT((int)info.exporter_len, 0);
    buf_free(&got);
    link_free(&l);
}

static void test_cleanup(void)
{
    iofix_rmdir(dir);
}

TL_MAIN(T(test_data_each_suite), T(test_large_writes), T(test_many_small_records),
        T(test_data_with_finished), T(test_key_update), T(test_key_update_in_pieces),
        T(test_bad_records), T(test_bad_record_mac), T(test_unprotected_records),
        T(test_alerts), T(test_padding_and_empty_data), T(test_close_notify_from_client),
        T(test_close_from_server), T(test_byte_by_byte), T(test_sequence_limits),
        T(test_held_then_handoff), T(test_tls12_keeps_ssl), T(test_cleanup))
