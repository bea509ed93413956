/* test_ws.c: the WebSocket listener's connection (ws.h) by byte
 * transcripts: the upgrade and its refusals, discovery, frames (masked,
 * fragmented, oversized, binary, ping, close), the RFC 7395 adapter both
 * ways, X-Forwarded-For, and every truncation and chunking of a valid
 * exchange.  Client frames are built here by an independent helper (RFC
 * 6455 §5.2), checked against the RFC's own example.  Past 1,000 lines
 * because it is one transcript per rule (RFC 6455, RFC 7395, XEP-0156) and
 * the client's side is written out here rather than borrowed from the
 * module. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "testlib.h"
#include "ws.h"

#define FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define CLOSE_EL "<close xmlns=\"" FRAMING "\" />"
#define OPEN_MSG "<open xmlns='" FRAMING "' to='example.com' version='1.0'/>"
#define HEADER                                                                           \
    "<stream:stream xmlns='jabber:client' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"

/* The opening handshake of RFC 6455 §1.3, on our path and subprotocol. */
#define REQ_HEAD                                                                         \
    "GET /xmpp-websocket HTTP/1.1\r\n"                                                   \
    "Host: server.example.com\r\n"                                                       \
    "Upgrade: websocket\r\n"                                                             \
    "Connection: Upgrade\r\n"                                                            \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                    \
    "Origin: http://example.com\r\n"
#define REQ REQ_HEAD "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n"
#define RESP_101                                                                         \
    "HTTP/1.1 101 Switching Protocols\r\n"                                               \
    "Upgrade: websocket\r\n"                                                             \
    "Connection: Upgrade\r\n"                                                            \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"                             \
    "Sec-WebSocket-Protocol: xmpp\r\n\r\n"

static uint64_t now = 1000;

/* ---- the client's side: frames built and read independently ------------ */

static const unsigned char KEY[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 §5.7 */

/* cframe appends a client frame (RFC 6455 §5.2): FIN, opcode, the mask bit
 * and key when masked, the 7/16/64-bit length, the payload XOR the key. */
static void cframe(struct buf *out, bool fin, int op, const void *payload, size_t n,
                   bool masked)
{
    unsigned char h[14];
    size_t hl = 0;
    const unsigned char *p = payload;

    h[hl++] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        h[hl++] = (unsigned char)((masked ? 0x80 : 0) | n);
    } else if (n < 65536) {
        h[hl++] = (unsigned char)((masked ? 0x80 : 0) | 126);
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = (unsigned char)((masked ? 0x80 : 0) | 127);
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    if (masked)
        for (int i = 0; i < 4; i++)
            h[hl++] = KEY[i];
    buf_append(out, h, hl);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = masked ? (unsigned char)(p[i] ^ KEY[i % 4]) : p[i];
        buf_append(out, &c, 1);
    }
}

static void ctext(struct buf *out, const char *s)
{
    cframe(out, true, 1, s, strlen(s), true);
}

struct frame {
    bool fin, masked;
    int op;
    struct buf payload;
};

/* sframe reads one server frame from p[0..n); returns its size, 0 when
 * incomplete. */
static size_t sframe(const unsigned char *p, size_t n, struct frame *f)
{
    size_t hl = 2, len;

    if (n < 2)
        return 0;
    f->fin = (p[0] & 0x80) != 0;
    f->op = p[0] & 0x0f;
    f->masked = (p[1] & 0x80) != 0;
    len = p[1] & 0x7f;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (size_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        hl = 10;
    }
    if (n < hl + len)
        return 0;
    buf_reset(&f->payload);
    buf_append(&f->payload, p + hl, len);
    return hl + len;
}

/* ---- a connection under test ------------------------------------------- */

struct cx {
    struct ws_config cfg;
    struct ws_conn *ws;
    struct buf wire;   /* from the server, not read yet */
    struct buf stream; /* to the session */
    bool upgraded, close, stream_error, pong;
    enum xs_cond cond;
    int rc;
    struct frame f;
};

static void cx_init(struct cx *c, const char *peer)
{
    memset(c, 0, sizeof *c);
    ws_config_default(&c->cfg);
}

static void cx_start(struct cx *c, const char *peer)
{
    if (ws_new(&c->cfg, peer, now, &c->ws) != 0)
        abort();
}

static void cx_free(struct cx *c)
{
    ws_free(c->ws);
    buf_free(&c->wire);
    buf_free(&c->stream);
    buf_free(&c->f.payload);
}

static void cx_take(struct cx *c, int rc, const struct ws_update *up)
{
    c->rc = rc;
    buf_append(&c->wire, up->wire, up->wire_len);
    buf_append(&c->stream, up->stream, up->stream_len);
    c->upgraded |= up->upgraded;
    c->close |= up->close;
    c->pong |= up->pong;
    if (up->stream_error) {
        c->stream_error = true;
        c->cond = up->cond;
    }
    if (up->close)
        CHECK(ws_state(c->ws) == WS_CLOSED);
}

/* cx_in and cx_send copy the update, then free its buffers (ws_done), as
 * srv does: every transcript runs with fresh step buffers. */
static void cx_in(struct cx *c, const void *d, size_t n)
{
    struct ws_update up;
    int rc = ws_input(c->ws, d, n, now, &up);

    cx_take(c, rc, &up);
    ws_done(c->ws);
}

static void cx_ins(struct cx *c, const char *s)
{
    cx_in(c, s, strlen(s));
}

static void cx_inb(struct cx *c, struct buf *b)
{
    cx_in(c, b->data, b->len);
    buf_reset(b);
}

static void cx_send(struct cx *c, const char *s)
{
    struct ws_update up;
    int rc = ws_send(c->ws, s, strlen(s), now, &up);

    cx_take(c, rc, &up);
    ws_done(c->ws);
}

static void cx_tick(struct cx *c)
{
    struct ws_update up;
    int rc = ws_tick(c->ws, now, &up);

    cx_take(c, rc, &up);
}

/* cx_frame reads the next server frame into c->f. */
static bool cx_frame(struct cx *c)
{
    size_t n = sframe((const unsigned char *)c->wire.data, c->wire.len, &c->f);

    if (n == 0)
        return false;
    buf_consume(&c->wire, n);
    CHECK(!c->f.masked); /* RFC 6455 §5.1: a server never masks */
    return true;
}

/* cx_text reads the next frame and checks it is the text s. */
static void cx_text(struct cx *c, const char *s)
{
    if (!cx_frame(c)) {
        CHECK(!"a text frame");
        return;
    }
    CHECK_INT(c->f.op, 1);
    CHECK(c->f.fin);
    CHECK_STR(c->f.payload.data ? c->f.payload.data : "", s);
}

/* cx_closeframe reads the next frame and checks it is a close with code. */
static void cx_closeframe(struct cx *c, unsigned code)
{
    const unsigned char *p;

    if (!cx_frame(c)) {
        CHECK(!"a close frame");
        return;
    }
    CHECK_INT(c->f.op, 8);
    REQUIRE(c->f.payload.len >= 2);
    p = (const unsigned char *)c->f.payload.data;
    CHECK_INT((unsigned)p[0] << 8 | p[1], code);
}

/* cx_open upgrades: the request of RFC 6455 §1.3 and its exact answer. */
static void cx_open(struct cx *c)
{
    cx_start(c, "192.0.2.7");
    cx_ins(c, REQ);
    CHECK_STR(c->wire.data, RESP_101);
    CHECK(c->upgraded && !c->close);
    CHECK(ws_state(c->ws) == WS_OPEN);
    buf_reset(&c->wire);
}

/* cx_xmpp upgrades and opens the client's stream. */
static void cx_xmpp(struct cx *c)
{
    struct buf b = {0};

    cx_open(c);
    ctext(&b, OPEN_MSG);
    cx_inb(c, &b);
    CHECK_STR(c->stream.data, HEADER);
    buf_reset(&c->stream);
    buf_free(&b);
}

/* ---- HTTP --------------------------------------------------------------- */

static void test_frame_helper_matches_rfc(void)
{
    /* RFC 6455 §5.7: a masked text frame carrying "Hello". */
    static const unsigned char want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct buf b = {0};

    cframe(&b, true, 1, "Hello", 5, true);
    CHECK_INT(b.len, sizeof want);
    CHECK(memcmp(b.data, want, sizeof want) == 0);
    buf_free(&b);
}

static void test_upgrade_rfc6455(void)
{
    struct cx c;

    cx_init(&c, NULL);
    cx_open(&c);
    CHECK_STR(ws_client_addr(c.ws), "192.0.2.7");
    CHECK(ws_deadline(c.ws) == WS_NO_DEADLINE);
    cx_free(&c);
}

/* refused sends req and checks the status line, a header and the close. */
static void refused(struct cx *c, const char *req, const char *status, const char *has)
{
    cx_start(c, "192.0.2.7");
    cx_ins(c, req);
    REQUIRE(c->wire.data != NULL);
    if (strncmp(c->wire.data, status, strlen(status)) != 0)
        CHECK_STR(c->wire.data, status);
    if (has != NULL && strstr(c->wire.data, has) == NULL)
        CHECK_STR(c->wire.data, has);
    CHECK(strstr(c->wire.data, "Connection: close\r\n") != NULL);
    CHECK(c->close && !c->upgraded);
}

static void test_subprotocol_required(void)
{
    struct cx c;

    /* RFC 7395 §3.1: without "xmpp" offered, 400 and a reason. */
    cx_init(&c, NULL);
    refused(&c, REQ_HEAD "Sec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400 ",
            "subprotocol xmpp required");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c,
            REQ_HEAD "Sec-WebSocket-Protocol: chat, superchat\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ", "subprotocol xmpp required");
    cx_free(&c);
    /* Offered among others, in a list or a repeated field: accepted. */
    cx_init(&c, NULL);
    cx_start(&c, "192.0.2.7");
    cx_ins(&c,
           REQ_HEAD "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: xmpp, x\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n");
    CHECK(c.upgraded);
    CHECK(strstr(c.wire.data, "Sec-WebSocket-Protocol: xmpp\r\n") != NULL);
    cx_free(&c);
}

/* What browsers send: Firefox's "Connection: keep-alive, Upgrade", a
 * lower-case upgrade token, Chrome's extension offer (not taken: no
 * Sec-WebSocket-Extensions in the answer, RFC 6455 §9.1). */
static void test_browser_requests(void)
{
    struct cx c;

    cx_init(&c, NULL);
    cx_start(&c, "192.0.2.7");
    cx_ins(&c, "GET /xmpp-websocket?v=1 HTTP/1.1\r\nHost: xmpp.example.com:5281\r\n"
               "User-Agent: Mozilla/5.0\r\nAccept: */*\r\n"
               "Sec-WebSocket-Version: 13\r\nOrigin: https://app.example.com\r\n"
               "Sec-WebSocket-Protocol: xmpp\r\n"
               "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Connection: keep-alive, Upgrade\r\nPragma: no-cache\r\n"
               "upgrade: WebSocket\r\n\r\n");
    CHECK(c.upgraded);
    CHECK_STR(c.wire.data, RESP_101);
    cx_free(&c);
}

static void test_wrong_version_426(void)
{
    struct cx c;

    /* RFC 6455 §4.4: 426 and the version we speak. */
    cx_init(&c, NULL);
    refused(&c,
            REQ_HEAD "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426 Upgrade Required\r\n", "Sec-WebSocket-Version: 13\r\n");
    cx_free(&c);
}

static void test_bad_key_400(void)
{
    static const char *keys[] = {"abc", "dGhlIHNhbXBsZSBub25jZQ",
                                 "dGhlIHNhbXBsZSBub25jZQ=!", "dGhlIHNhbXBsZSBub25jZXg="};
    char req[1024];
    struct cx c;

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(req, sizeof req,
                 "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 keys[i]);
        cx_init(&c, NULL);
        refused(&c, req, "HTTP/1.1 400 ", "Sec-WebSocket-Key");
        cx_free(&c);
    }
    /* none, or two (RFC 6455 §4.2.1 item 5: exactly one) */
    cx_init(&c, NULL);
    refused(&c,
            "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ", "Sec-WebSocket-Key");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c,
            REQ_HEAD "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ", "Sec-WebSocket-Key");
    cx_free(&c);
}

static void test_origin_allow_list(void)
{
    static const char *const allowed[] = {"https://app.example"};
    struct cx c;

    cx_init(&c, NULL);
    c.cfg.origins = allowed;
    c.cfg.norigins = 1;
    refused(&c, REQ, "HTTP/1.1 403 Forbidden\r\n", "origin not allowed");
    cx_free(&c);

    cx_init(&c, NULL);
    c.cfg.origins = allowed;
    c.cfg.norigins = 1;
    cx_start(&c, "192.0.2.7");
    cx_ins(&c, "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Origin: https://APP.example\r\n"
               "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n");
    CHECK(c.upgraded);
    cx_free(&c);
}

static void test_not_an_upgrade(void)
{
    struct cx c;

    cx_init(&c, NULL);
    refused(&c, "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 426 ",
            "Upgrade: websocket\r\n");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(
        &c,
        "GET /xmpp-websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "HTTP/1.1 400 ", "Host");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c, "POST /xmpp-websocket HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 405 ",
            "Allow: GET\r\n");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c, "GET /other HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 404 Not Found\r\n",
            "no such resource");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c, "GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n", "malformed");
    cx_free(&c);
}

/* RFC 9112 §3: a request line is method, target and HTTP version; one
 * without the version (HTTP/0.9's form) is not an HTTP/1.1 request: 400,
 * for discovery as for the upgrade. */
static void test_request_without_version_400(void)
{
    struct cx c;

    cx_init(&c, NULL);
    refused(&c, "GET /.well-known/host-meta\r\n\r\n", "HTTP/1.1 400 ", "HTTP version");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c, "GET /.well-known/host-meta\r\nHost: h\r\n\r\n", "HTTP/1.1 400 ",
            "HTTP version");
    cx_free(&c);
}

/* RFC 9112 §5.2: a server receiving obs-fold (a field line continued on a
 * line that starts with SP or HTAB) rejects it with 400 or unfolds it; we
 * reject, so a folded Host, Origin or subprotocol is never read in a way
 * a proxy in front may not share.  §2.2: whitespace-preceded lines after
 * the request line: the same. */
static void test_obs_fold_400(void)
{
    static const char *const reqs[] = {
        REQ_HEAD "X-Foo: a\r\n b\r\nSec-WebSocket-Protocol: xmpp\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
        REQ_HEAD "Sec-WebSocket-Protocol: chat,\r\n\txmpp\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
        "GET /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
        "GET /.well-known/host-meta HTTP/1.1\r\n Host: h\r\nHost: h\r\n\r\n",
        "GET /.well-known/host-meta HTTP/1.1\nHost: a\n b\n\n",
    };
    struct cx c;

    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        cx_init(&c, NULL);
        refused(&c, reqs[i], "HTTP/1.1 400 ", "obs-fold");
        cx_free(&c);
    }
    /* a byte at a time: the fold is seen across reads too */
    cx_init(&c, NULL);
    cx_start(&c, "192.0.2.7");
    for (const char *p = reqs[0]; *p != '\0' && !c.close; p++)
        cx_in(&c, p, 1);
    REQUIRE(c.wire.data != NULL);
    CHECK(strncmp(c.wire.data, "HTTP/1.1 400 ", 13) == 0);
    CHECK(c.close && !c.upgraded);
    cx_free(&c);
}

/* RFC 9112 §5.1: whitespace between a field name and the colon: 400 (a
 * MUST).  http_parser (not strict) takes "Origin " as a name; read as no
 * Origin at all it would slip past the allow-list. */
static void test_space_before_colon_400(void)
{
    static const char *const allowed[] = {"https://app.example"};
    struct cx c;

    cx_init(&c, NULL);
    c.cfg.origins = allowed;
    c.cfg.norigins = 1;
    refused(&c,
            "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Origin : https://evil.example\r\n"
            "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 ", "whitespace");
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c, "GET /.well-known/host-meta HTTP/1.1\r\nHost\t: h\r\n\r\n",
            "HTTP/1.1 400 ", NULL);
    cx_free(&c);
}

/* Oversized requests: 431 (RFC 6585 §5, Request Header Fields Too Large)
 * for header bytes and header count, 414 (RFC 9110 §15.5.15) for a long
 * request target. */
static void test_oversized_headers(void)
{
    struct buf req = {0};
    struct cx c;

    buf_puts(&req, "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\nX-Big: ");
    for (int i = 0; i < 9000; i++)
        buf_puts(&req, "a");
    buf_puts(&req, "\r\n\r\n");
    cx_init(&c, NULL);
    refused(&c, req.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            "too large");
    cx_free(&c);

    buf_reset(&req);
    buf_puts(&req, "GET /xmpp-websocket HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 70; i++)
        buf_printf(&req, "X-H%d: 1\r\n", i);
    buf_puts(&req, "\r\n");
    cx_init(&c, NULL);
    refused(&c, req.data, "HTTP/1.1 431 ", "too many header fields");
    cx_free(&c);

    buf_reset(&req);
    buf_puts(&req, "GET /");
    for (int i = 0; i < 3000; i++)
        buf_puts(&req, "x");
    buf_puts(&req, " HTTP/1.1\r\nHost: h\r\n\r\n");
    cx_init(&c, NULL);
    refused(&c, req.data, "HTTP/1.1 414 URI Too Long\r\n", NULL);
    cx_free(&c);

    /* A request of exactly max_header_bytes passes; one byte more does
     * not. */
    buf_reset(&req);
    buf_puts(&req, "GET /x HTTP/1.1\r\nHost: h\r\nX: aaaaaaaaaaaaaaaaaaaa\r\n\r\n");
    for (int extra = 0; extra < 2; extra++) {
        cx_init(&c, NULL);
        c.cfg.max_header_bytes = req.len - (size_t)extra;
        refused(&c, req.data, extra ? "HTTP/1.1 431 " : "HTTP/1.1 404 ", NULL);
        cx_free(&c);
    }
    buf_free(&req);
}

static void test_handshake_timeout(void)
{
    struct cx c;

    cx_init(&c, NULL);
    cx_start(&c, "192.0.2.7");
    cx_ins(&c, "GET /xmpp-websocket HTTP/1.1\r\nHost");
    CHECK(c.wire.len == 0 && !c.close);
    CHECK(ws_deadline(c.ws) == now + 10000);
    now += 9999;
    cx_tick(&c);
    CHECK(!c.close);
    now += 1;
    cx_tick(&c);
    CHECK(c.close);
    REQUIRE(c.wire.data != NULL);
    CHECK(strncmp(c.wire.data, "HTTP/1.1 408 ", 13) == 0);
    cx_ins(&c, ": h\r\n\r\n");
    CHECK_INT(c.rc, XE_STATE);
    cx_free(&c);
}

static void test_host_meta(void)
{
    static const char *const urls[] = {"wss://n1.example.com:5281/xmpp-websocket",
                                       "ws://n2.example.com:5280/x?a=1&b=2"};
    static const char xml[] = "<?xml version='1.0' encoding='utf-8'?>\n"
                              "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                              "  <Link rel='urn:xmpp:alt-connections:websocket' "
                              "href='wss://n1.example.com:5281/xmpp-websocket'/>\n"
                              "  <Link rel='urn:xmpp:alt-connections:websocket' "
                              "href='ws://n2.example.com:5280/x?a=1&amp;b=2'/>\n"
                              "</XRD>\n";
    static const char json[] =
        "{\n"
        "  \"links\": [\n"
        "    {\n"
        "      \"rel\": \"urn:xmpp:alt-connections:websocket\",\n"
        "      \"href\": \"wss://n1.example.com:5281/xmpp-websocket\"\n"
        "    },\n"
        "    {\n"
        "      \"rel\": \"urn:xmpp:alt-connections:websocket\",\n"
        "      \"href\": \"ws://n2.example.com:5280/x?a=1&b=2\"\n"
        "    }\n"
        "  ]\n"
        "}";
    char want[2048];
    struct cx c;

    cx_init(&c, NULL);
    c.cfg.urls = urls;
    c.cfg.nurls = 2;
    cx_start(&c, "192.0.2.7");
    cx_ins(&c, "GET /.well-known/host-meta HTTP/1.1\r\nHost: example.com\r\n"
               "Origin: https://elsewhere.example\r\n\r\n");
    snprintf(want, sizeof want,
             "HTTP/1.1 200 OK\r\nContent-Type: application/xrd+xml; charset=utf-8\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n"
             "Access-Control-Allow-Origin: *\r\n\r\n%s",
             strlen(xml), xml);
    CHECK_STR(c.wire.data, want);
    CHECK(c.close);
    cx_free(&c);

    cx_init(&c, NULL);
    c.cfg.urls = urls;
    c.cfg.nurls = 2;
    cx_start(&c, "192.0.2.7");
    cx_ins(&c,
           "GET /.well-known/host-meta.json?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    snprintf(want, sizeof want,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n"
             "Access-Control-Allow-Origin: *\r\n\r\n%s",
             strlen(json), json);
    CHECK_STR(c.wire.data, want);
    cx_free(&c);

    /* HEAD: the same headers, no body; other methods: 405. */
    cx_init(&c, NULL);
    c.cfg.urls = urls;
    c.cfg.nurls = 2;
    cx_start(&c, "192.0.2.7");
    cx_ins(&c, "HEAD /.well-known/host-meta HTTP/1.1\r\nHost: example.com\r\n\r\n");
    REQUIRE(c.wire.data != NULL);
    CHECK(strstr(c.wire.data, "Access-Control-Allow-Origin: *\r\n\r\n") != NULL);
    CHECK(strstr(c.wire.data, "<XRD") == NULL);
    cx_free(&c);
    cx_init(&c, NULL);
    refused(&c, "DELETE /.well-known/host-meta HTTP/1.1\r\nHost: h\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed\r\n", "Allow: GET, HEAD\r\n");
    cx_free(&c);
}

static void test_x_forwarded_for(void)
{
    static const char *const proxies[] = {"10.0.0.1", "::ffff:10.0.0.2"};
    static const struct {
        const char *peer, *xff, *client;
    } cases[] = {
        {"10.0.0.1", "203.0.113.9", "203.0.113.9"}, /* trusted proxy */
        {"192.0.2.7", "203.0.113.9", "192.0.2.7"},  /* anyone else: ignored */
        {"10.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"}, /* nearest hop */
        {"10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"}, /* through two proxies */
        {"10.0.0.1", "junk, 203.0.113.9", "203.0.113.9"},     /* left junk: not reached */
        {"10.0.0.1", "203.0.113.9, junk", "10.0.0.1"},        /* junk nearest: peer */
        {"10.0.0.1", "[2001:db8::1]", "2001:db8::1"},
        {"::ffff:10.0.0.1", "203.0.113.9", "203.0.113.9"}, /* v4-mapped peer */
    };
    char req[1024];
    struct cx c;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_init(&c, NULL);
        c.cfg.trusted_proxies = proxies;
        c.cfg.nproxies = 2;
        cx_start(&c, cases[i].peer);
        snprintf(req, sizeof req,
                 REQ_HEAD
                 "X-Forwarded-For: %s\r\n"
                 "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 cases[i].xff);
        cx_ins(&c, req);
        CHECK(c.upgraded);
        if (strcmp(ws_client_addr(c.ws), cases[i].client) != 0) {
            fprintf(stderr, "case %zu\n", i);
            CHECK_STR(ws_client_addr(c.ws), cases[i].client);
        }
        cx_free(&c);
    }
}

/* Trusted proxies as CIDR ranges (RFC 4632 §3.1): an address in a range
 * is trusted, its X-Forwarded-For read from the right past every trusted
 * hop; IPv4 ranges match IPv4-mapped peers. */
static void test_x_forwarded_for_cidr(void)
{
    static const char *const proxies[] = {"10.0.0.0/8", "2001:db8:1::/48",
                                          "192.0.2.128/25"};
    static const struct {
        const char *peer, *xff, *client;
    } cases[] = {
        {"10.20.30.40", "203.0.113.9", "203.0.113.9"},
        {"11.0.0.1", "203.0.113.9", "11.0.0.1"}, /* outside the range */
        {"::ffff:10.1.2.3", "203.0.113.9", "203.0.113.9"},
        {"2001:db8:1:ff::5", "203.0.113.9, 10.9.9.9", "203.0.113.9"},
        {"2001:db8:2::5", "203.0.113.9", "2001:db8:2::5"},
        {"192.0.2.200", "198.51.100.7", "198.51.100.7"},
        {"192.0.2.127", "198.51.100.7", "192.0.2.127"}, /* /25 boundary */
    };
    char req[1024];
    struct cx c;

    CHECK(ws_proxy_valid("10.0.0.1"));
    CHECK(ws_proxy_valid("10.0.0.0/8"));
    CHECK(ws_proxy_valid("::1"));
    CHECK(ws_proxy_valid("2001:db8::/32"));
    CHECK(ws_proxy_valid("0.0.0.0/0"));
    CHECK(!ws_proxy_valid("10.0.0.0/33"));
    CHECK(!ws_proxy_valid("2001:db8::/129"));
    CHECK(!ws_proxy_valid("10.0.0.0/"));
    CHECK(!ws_proxy_valid("10.0.0.0/8x"));
    CHECK(!ws_proxy_valid("10.0.0.0/-1"));
    CHECK(!ws_proxy_valid("proxy.example.com"));
    CHECK(!ws_proxy_valid(""));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_init(&c, NULL);
        c.cfg.trusted_proxies = proxies;
        c.cfg.nproxies = 3;
        cx_start(&c, cases[i].peer);
        snprintf(req, sizeof req,
                 REQ_HEAD
                 "X-Forwarded-For: %s\r\n"
                 "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 cases[i].xff);
        cx_ins(&c, req);
        CHECK(c.upgraded);
        if (strcmp(ws_client_addr(c.ws), cases[i].client) != 0) {
            fprintf(stderr, "case %zu\n", i);
            CHECK_STR(ws_client_addr(c.ws), cases[i].client);
        }
        cx_free(&c);
    }
}

/* ---- frames ------------------------------------------------------------- */

static void test_open_becomes_header(void)
{
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_open(&c);
    ctext(&b, "<?xml version='1.0'?>\n<open xmlns='" FRAMING "' to='example.com' "
              "version='1.0' xml:lang='en' junk='x'/>\n");
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' "
                             "to='example.com' version='1.0' xml:lang='en'>");
    CHECK(!c.stream_error);
    CHECK(c.wire.len == 0);
    buf_reset(&c.stream);
    /* a stanza passes unchanged */
    ctext(&b, "<message xmlns='jabber:client' to='a@example.com'><body>hi &amp; "
              "bye</body></message>");
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, "<message xmlns='jabber:client' to='a@example.com'><body>hi "
                             "&amp; bye</body></message>");
    buf_free(&b);
    cx_free(&c);
}

static void test_unmasked_frame_1002(void)
{
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_open(&c);
    cframe(&b, true, 1, OPEN_MSG, strlen(OPEN_MSG), false);
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0); /* RFC 6455 §5.1 */
    cx_closeframe(&c, 1002);
    CHECK(c.close);
    buf_free(&b);
    cx_free(&c);
}

/* A masked client frame (RFC 6455 §5.3): the payload XOR the key, as the
 * client sends it; unmasked, the stanza reaches the session byte for
 * byte. */
static void test_masked_frame(void)
{
    static const char st[] = "<message xmlns='jabber:client' to='a@example.com'>"
                             "<body>masked</body></message>";
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 1, st, strlen(st), true);
    for (size_t i = 0; i + 6 <= b.len; i++)
        CHECK(memcmp(b.data + i, "masked", 6) != 0); /* on the wire, masked */
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, st);
    CHECK(!c.close && !c.stream_error && c.wire.len == 0);
    buf_free(&b);
    cx_free(&c);
}

/* RFC 6455 §5.5.1: a close frame's body, if any, begins with a 2-byte
 * status code; a body of one byte is malformed: fail with 1002, not an
 * echo as if no code came.  A reason that is not UTF-8: 1007 (§5.5.1,
 * §8.1). */
static void test_close_malformed_body(void)
{
    static const unsigned char one[] = {0x03};
    static const unsigned char bad_reason[] = {0x03, 0xe8, 0xc3, 0x28};
    struct ws_stats st;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 8, one, sizeof one, true);
    cx_inb(&c, &b);
    cx_closeframe(&c, 1002);
    CHECK(c.close && c.stream.len == 0);
    ws_get_stats(c.ws, &st);
    CHECK_INT(st.close_sent, 1002);
    cx_free(&c);

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 8, bad_reason, sizeof bad_reason, true);
    cx_inb(&c, &b);
    cx_closeframe(&c, 1007);
    CHECK(c.close && c.stream.len == 0);
    buf_free(&b);
    cx_free(&c);
}

/* A close frame whose reason is split across reads, at every point: the
 * echo is the same close (1000 and the reason), never 1007 for a valid
 * reason; an invalid one is 1007 however it is split. */
static void test_close_reason_split(void)
{
    static const unsigned char good[] = {0x03, 0xe8, 0xc3, 0xa9, 'x',
                                         'y',  0xe2, 0x82, 0xac};
    static const unsigned char bad[] = {0x03, 0xe8, 'x', 0xc3, 0x28, 'y'};
    struct buf b = {0};
    struct cx c;

    for (int which = 0; which < 2; which++) {
        for (size_t chunk = 1; chunk < 16; chunk++) {
            cx_init(&c, NULL);
            cx_xmpp(&c);
            if (which == 0)
                cframe(&b, true, 8, good, sizeof good, true);
            else
                cframe(&b, true, 8, bad, sizeof bad, true);
            for (size_t off = 0; off < b.len; off += chunk)
                cx_in(&c, b.data + off, b.len - off < chunk ? b.len - off : chunk);
            buf_reset(&b);
            cx_closeframe(&c, which == 0 ? 1000 : 1007);
            if (which == 0 && c.f.payload.len == sizeof good)
                CHECK(memcmp(c.f.payload.data, good, sizeof good) == 0);
            else if (which == 0)
                CHECK_INT(c.f.payload.len, sizeof good);
            CHECK(c.close);
            if (tl_case_failures > 0)
                fprintf(stderr, "which %d chunk %zu\n", which, chunk);
            cx_free(&c);
        }
    }
    buf_free(&b);
}

/* RFC 6455 §5.2: opcodes 3-7 and 0xB-0xF are reserved; an unknown opcode
 * fails the connection (1002), as does a continuation with no message
 * begun and a new data frame inside a fragmented message (§5.4). */
static void test_reserved_opcodes_1002(void)
{
    static const int ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    struct buf b = {0};
    struct cx c;

    for (size_t i = 0; i < sizeof ops / sizeof ops[0] + 2; i++) {
        cx_init(&c, NULL);
        cx_xmpp(&c);
        if (i < sizeof ops / sizeof ops[0]) {
            cframe(&b, true, ops[i], "x", 1, true);
        } else if (i == sizeof ops / sizeof ops[0]) {
            cframe(&b, true, 0, "<a/>", 4, true);
        } else {
            cframe(&b, false, 1, "<a>", 3, true);
            cframe(&b, true, 1, "<b/>", 4, true);
        }
        cx_inb(&c, &b);
        cx_closeframe(&c, 1002);
        CHECK(c.close && c.stream.len == 0);
        cx_free(&c);
    }
    buf_free(&b);
}

/* Invalid UTF-8 in a text message: 1007; a reserved bit (no extension
 * was negotiated): 1002 (RFC 6455 §5.2, §8.1). */
static void test_bad_utf8_and_rsv(void)
{
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 1, "<a>\xc3\x28</a>", 8, true);
    cx_inb(&c, &b);
    cx_closeframe(&c, 1007);
    CHECK(c.close && c.stream.len == 0);
    cx_free(&c);

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 1, "<a/>", 4, true);
    b.data[0] |= 0x40; /* RSV1 */
    cx_inb(&c, &b);
    cx_closeframe(&c, 1002);
    CHECK(c.close && c.stream.len == 0);
    buf_free(&b);
    cx_free(&c);
}

/* Malformed frames (RFC 6455 §5.5: control frames carry at most 125
 * bytes and are not fragmented; §5.2: a length in its shortest form):
 * the connection ends with our close.  A malformed control frame is seen
 * at its first two bytes (ws.c gathers control frames): close 1002, a
 * byte at a time too; the length wslay's frame layer refuses: a close
 * without a code (RFC 6455 §7.1.7 leaves the code to the endpoint). */
static void test_malformed_frames(void)
{
    static const unsigned char long16[] = {0x81, 0xfe, 0x00, 0x05,
                                           0x37, 0xfa, 0x21, 0x3d};
    char big[126];
    struct buf b = {0};
    struct cx c;

    memset(big, 'p', sizeof big);
    for (int i = 0; i < 4; i++) {
        cx_init(&c, NULL);
        cx_xmpp(&c);
        if (i == 0 || i == 3)
            cframe(&b, true, 9, big, sizeof big, true);
        else if (i == 1)
            cframe(&b, false, 9, "p", 1, true);
        else
            buf_append(&b, long16, sizeof long16);
        if (i == 3)
            for (size_t k = 0; k < b.len && !c.close; k++)
                cx_in(&c, b.data + k, 1);
        else
            cx_in(&c, b.data, b.len);
        buf_reset(&b);
        CHECK(c.close);
        if (i == 2) {
            REQUIRE(cx_frame(&c));
            CHECK_INT(c.f.op, 8);
        } else {
            cx_closeframe(&c, 1002);
        }
        CHECK(c.stream.len == 0);
        cx_free(&c);
    }
    buf_free(&b);
}

static void test_fragmented_stanza(void)
{
    static const char st[] = "<message xmlns='jabber:client' to='a@example.com'>"
                             "<body>in three parts</body></message>";
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, false, 1, st, 20, true);
    cframe(&b, false, 0, st + 20, 30, true);
    cframe(&b, true, 9, "mid", 3, true); /* a ping between fragments, §5.4 */
    cframe(&b, true, 0, st + 50, strlen(st) - 50, true);
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, st);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 10);
    CHECK_STR(c.f.payload.data, "mid");
    CHECK(!c.close && !c.stream_error);
    buf_free(&b);
    cx_free(&c);
}

static void test_oversized_message_1009(void)
{
    char big[200];
    struct buf b = {0};
    struct cx c;

    memset(big, 'a', sizeof big);
    cx_init(&c, NULL);
    c.cfg.max_message_bytes = 100;
    cx_xmpp(&c);
    /* 60 + 60 in two fragments: over 100 together. */
    cframe(&b, false, 1, big, 60, true);
    cframe(&b, true, 0, big, 60, true);
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0);
    cx_closeframe(&c, 1009);
    CHECK(c.close);
    cx_free(&c);

    cx_init(&c, NULL);
    c.cfg.max_message_bytes = 100;
    cx_xmpp(&c);
    cframe(&b, true, 1, big, 101, true);
    cx_inb(&c, &b);
    cx_closeframe(&c, 1009);
    CHECK(c.close);
    buf_free(&b);
    cx_free(&c);
}

static void test_ping_pong(void)
{
    struct ws_update up;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 9, "hello", 5, true);
    cx_inb(&c, &b);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 10);
    CHECK_STR(c.f.payload.data, "hello");

    /* our keep-alive ping; a second one before the pong says it is missing */
    CHECK_INT(ws_ping(c.ws, now, &up), 0);
    cx_take(&c, 0, &up);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 9);
    CHECK_INT(ws_ping(c.ws, now, &up), XE_TIMEOUT);
    cx_take(&c, 0, &up);
    CHECK(c.wire.len == 0);
    cframe(&b, true, 10, c.f.payload.data, c.f.payload.len, true);
    cx_inb(&c, &b);
    CHECK(c.pong);
    CHECK_INT(ws_ping(c.ws, now, &up), 0);
    cx_take(&c, 0, &up);

    /* a blank session write (whitespace keep-alive) becomes a ping */
    buf_reset(&c.wire);
    cx_send(&c, " ");
    CHECK_INT(c.rc, 0);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 9);
    buf_free(&b);
    cx_free(&c);
}

static void test_binary_1003(void)
{
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 2, "\x01\x02", 2, true);
    cx_inb(&c, &b);
    cx_closeframe(&c, 1003);
    CHECK(c.close);
    CHECK(c.stream.len == 0);
    buf_free(&b);
    cx_free(&c);
}

/* The client closes: <close/> becomes </stream:stream>, the session's
 * answer <close/>, then the WebSocket closes (RFC 7395 §3.6). */
static void test_close_by_client(void)
{
    static const unsigned char code1000[] = {0x03, 0xe8};
    struct ws_update up;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    ctext(&b, "<close xmlns='" FRAMING "'/>");
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, "</stream:stream>");
    /* a session that fails before its header closes with the tag alone */
    cx_send(&c, "</stream:stream>");
    CHECK_INT(c.rc, 0);
    cx_text(&c, CLOSE_EL);
    cx_send(&c, "<message/>");
    CHECK_INT(c.rc, XE_CLOSED);
    /* the session is closed: the WebSocket close goes out */
    CHECK_INT(ws_close(c.ws, 1000, NULL, now, &up), 0);
    cx_take(&c, 0, &up);
    cx_closeframe(&c, 1000);
    CHECK(!c.close);
    CHECK(ws_deadline(c.ws) == now + 5000);
    cframe(&b, true, 8, code1000, 2, true);
    cx_inb(&c, &b);
    CHECK(c.close);
    CHECK(c.wire.len == 0); /* our close was sent already: no echo */
    buf_free(&b);
    cx_free(&c);
}

/* A close frame without the XMPP close: echoed, and the connection ends. */
static void test_close_frame_echo(void)
{
    static const unsigned char code1001[] = {0x03, 0xe9, 'b', 'y', 'e'};
    struct ws_stats st;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 8, code1001, sizeof code1001, true);
    cx_inb(&c, &b);
    cx_closeframe(&c, 1001);
    CHECK(c.close);
    ws_get_stats(c.ws, &st);
    CHECK_INT(st.close_received, 1001);
    buf_free(&b);
    cx_free(&c);
}

/* The server closes: <close/>, the client's <close/> awaited, then the
 * WebSocket close; each wait is bounded. */
static void test_close_by_server(void)
{
    static const unsigned char code1000[] = {0x03, 0xe8};
    struct ws_update up;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cx_send(&c,
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
            "streams' xmlns='jabber:client' from='example.com' id='s1' version='1.0'>");
    cx_text(&c, "<open xmlns=\"" FRAMING
                "\" from=\"example.com\" id=\"s1\" version=\"1.0\" />");
    CHECK_INT(ws_close(c.ws, 1000, "bye", now, &up), 0);
    cx_take(&c, 0, &up);
    cx_text(&c, CLOSE_EL); /* the session wrote none: the module does */
    CHECK(c.wire.len == 0);
    CHECK(ws_state(c.ws) == WS_CLOSING);
    ctext(&b, "<close xmlns='" FRAMING "'/>");
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0); /* the session is gone: nothing for it */
    cx_closeframe(&c, 1000);
    CHECK_STR(c.f.payload.data + 2, "bye");
    cframe(&b, true, 8, code1000, 2, true);
    cx_inb(&c, &b);
    CHECK(c.close);
    cx_free(&c);

    /* a client that answers nothing: both waits expire */
    cx_init(&c, NULL);
    cx_xmpp(&c);
    cx_send(&c, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
                "xmlns='jabber:client' from='example.com' id='s1' version='1.0'>");
    cx_send(&c, "</stream:stream>");
    CHECK_INT(ws_close(c.ws, 1000, NULL, now, &up), 0);
    cx_take(&c, 0, &up);
    now += 5000;
    cx_tick(&c);
    CHECK(!c.close);
    cx_frame(&c);
    cx_frame(&c);
    cx_closeframe(&c, 1000);
    now += 5000;
    cx_tick(&c);
    CHECK(c.close);
    buf_free(&b);
    cx_free(&c);
}

static void test_redirect(void)
{
    static const unsigned char code1001[] = {0x03, 0xe9};
    struct ws_update up;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    CHECK_INT(ws_redirect(c.ws, "wss://n2.example.com:5281/xmpp-websocket", now, &up), 0);
    cx_take(&c, 0, &up);
    cx_text(&c, "<close xmlns=\"" FRAMING
                "\" see-other-uri=\"wss://n2.example.com:5281/xmpp-websocket\" />");
    cx_send(&c, "<message/>");
    CHECK_INT(c.rc, XE_CLOSED);
    ctext(&b, "<close xmlns='" FRAMING "'/>");
    cx_inb(&c, &b);
    cx_closeframe(&c, 1001);
    cframe(&b, true, 8, code1001, 2, true);
    cx_inb(&c, &b);
    CHECK(c.close);
    buf_free(&b);
    cx_free(&c);

    cx_init(&c, NULL);
    cx_start(&c, "192.0.2.7");
    CHECK_INT(ws_redirect(c.ws, "wss://n2/", now, &up), 0);
    cx_take(&c, 0, &up);
    CHECK(c.close);
    CHECK(strncmp(c.wire.data, "HTTP/1.1 503 ", 13) == 0);
    cx_free(&c);
}

/* ---- the RFC 7395 adapter ---------------------------------------------- */

static void test_outbound_translation(void)
{
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    /* header and features in one write, as the session writes them */
    cx_send(&c,
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
            "streams' xmlns='jabber:client' from='example.com' id='abc' version='1.0' "
            "xml:lang='en'><stream:features><mechanisms "
            "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>"
            "</mechanisms></stream:features>");
    CHECK_INT(c.rc, 0);
    cx_text(&c,
            "<open xmlns=\"" FRAMING "\" from=\"example.com\" id=\"abc\" version=\"1.0\" "
            "xml:lang=\"en\" />");
    cx_text(&c, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                "<mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>");
    CHECK(c.wire.len == 0);
    /* a stanza in two writes: one message, its namespace declared */
    cx_send(&c, "<message to='a@example.com' id='1'><bo");
    CHECK(c.wire.len == 0);
    cx_send(&c, "dy>x &lt; y</body></message>");
    cx_text(&c, "<message xmlns='jabber:client' to='a@example.com' id='1'><body>x &lt; "
                "y</body></message>");
    /* two stanzas in one write: two messages */
    cx_send(&c, "<presence/> <iq type='result' id='2'/>");
    cx_text(&c, "<presence xmlns='jabber:client'/>");
    cx_text(&c, "<iq xmlns='jabber:client' type='result' id='2'/>");
    /* a stream error, then the close (RFC 7395 §3.5) */
    cx_send(&c, "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error></stream:stream>");
    cx_text(&c, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    cx_text(&c, CLOSE_EL);
    CHECK(c.wire.len == 0);
    cx_send(&c, "<presence/>");
    CHECK_INT(c.rc, XE_CLOSED);
    cx_free(&c);
}

/* After SASL success both streams restart (RFC 6120 §4.3.3): the client's
 * new <open/> is a new header, and so is the session's. */
static void test_stream_restart(void)
{
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cx_send(&c,
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
            "streams' xmlns='jabber:client' from='example.com' id='a' version='1.0'>");
    cx_send(&c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    cx_frame(&c);
    cx_text(&c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    ctext(&b, OPEN_MSG);
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, HEADER);
    CHECK(!c.stream_error);
    cx_send(&c,
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
            "streams' xmlns='jabber:client' from='example.com' id='b' version='1.0'>"
            "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
            "</stream:features>");
    CHECK_INT(c.rc, 0);
    cx_text(&c, "<open xmlns=\"" FRAMING
                "\" from=\"example.com\" id=\"b\" version=\"1.0\" />");
    cx_text(&c, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>");
    /* a third <open/> with no restart due: refused (RFC 7395 §3.4) */
    buf_reset(&c.stream);
    ctext(&b, OPEN_MSG);
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0);
    CHECK(c.stream_error);
    CHECK(c.cond == XS_COND_BAD_FORMAT);
    buf_free(&b);
    cx_free(&c);
}

/* bad_msg opens a stream, sends msg and checks the framing error cond. */
static void bad_msg(const char *msg, enum xs_cond cond, bool open_first)
{
    struct ws_update up;
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    if (open_first) {
        cx_xmpp(&c);
    } else {
        cx_open(&c);
    }
    ctext(&b, msg);
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0);
    CHECK(c.stream_error);
    if (c.cond != cond) {
        fprintf(stderr, "message: %s\n", msg);
        CHECK_INT(c.cond, cond);
    }
    CHECK(!c.close); /* the session fails it with a stream error */
    /* later messages are ignored */
    ctext(&b, "<presence xmlns='jabber:client'/>");
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0);
    /* the session's stream error goes out, then the WebSocket closes
     * without waiting for a <close/> that would be dropped */
    buf_reset(&c.wire);
    cx_send(&c,
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
            "xmlns='jabber:client' from='example.com' id='e' version='1.0'>"
            "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error></stream:stream>");
    CHECK_INT(ws_close(c.ws, 1000, NULL, now, &up), 0);
    cx_take(&c, 0, &up);
    cx_frame(&c);
    cx_text(
        &c,
        "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
        "<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    cx_text(&c, CLOSE_EL);
    cx_closeframe(&c, 1000);
    buf_free(&b);
    cx_free(&c);
}

static void test_framing_errors(void)
{
    /* RFC 7395 §3.3.3: one complete element per message */
    bad_msg("<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>",
            XS_COND_NOT_WELL_FORMED, true);
    bad_msg("<presence xmlns='jabber:client'/>junk", XS_COND_NOT_WELL_FORMED, true);
    bad_msg("junk<presence xmlns='jabber:client'/>", XS_COND_NOT_WELL_FORMED, true);
    /* each half of a stanza split across messages (test_stanza_split) */
    bad_msg("<message xmlns='jabber:client'><body>a", XS_COND_NOT_WELL_FORMED, true);
    bad_msg("</message>", XS_COND_NOT_WELL_FORMED, true);
    bad_msg("<message xmlns='jabber:client'><unbound:x/></message>",
            XS_COND_NOT_WELL_FORMED, true);
    /* RFC 6120 §11.1 restrictions */
    bad_msg("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>", XS_COND_RESTRICTED_XML, true);
    bad_msg("<!-- hi --><presence xmlns='jabber:client'/>", XS_COND_RESTRICTED_XML, true);
    bad_msg("<presence xmlns='jabber:client'><?pi x?></presence>", XS_COND_RESTRICTED_XML,
            true);
    /* RFC 7395 §3.4: <open/> first, and empty */
    bad_msg("<presence xmlns='jabber:client'/>", XS_COND_INVALID_NAMESPACE, false);
    bad_msg("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>",
            XS_COND_INVALID_NAMESPACE, false);
    bad_msg("<open xmlns='" FRAMING "' to='example.com'><x/></open>", XS_COND_INVALID_XML,
            false);
    bad_msg("<open xmlns='" FRAMING "' to='example.com'>text</open>", XS_COND_INVALID_XML,
            false);
}

/* RFC 7395 §3.3.3: a stanza is one whole message; one split across two
 * text messages (each a complete, FIN frame) is not: the first half fails
 * the stream with not-well-formed, and neither half reaches the session.
 * (Split across the frames of one fragmented message it is fine:
 * test_fragmented_stanza.) */
static void test_stanza_split(void)
{
    static const char st[] = "<message xmlns='jabber:client' to='a@example.com'>"
                             "<body>in two messages</body></message>";
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    cframe(&b, true, 1, st, 30, true);
    cframe(&b, true, 1, st + 30, strlen(st) - 30, true);
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0);
    CHECK(c.stream_error);
    CHECK_INT(c.cond, XS_COND_NOT_WELL_FORMED);
    CHECK(!c.close); /* the session answers with its stream error */
    buf_free(&b);
    cx_free(&c);
}

static void test_blank_message_ignored(void)
{
    struct buf b = {0};
    struct cx c;

    cx_init(&c, NULL);
    cx_xmpp(&c);
    ctext(&b, " \n");
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0 && !c.stream_error && !c.close);
    /* an empty text message (valid UTF-8, RFC 6455 §5.6): nothing either */
    cframe(&b, true, 1, "", 0, true);
    cx_inb(&c, &b);
    CHECK(c.stream.len == 0 && !c.stream_error && !c.close && c.wire.len == 0);
    buf_free(&b);
    cx_free(&c);
}

/* ---- every truncation and chunking -------------------------------------- */

/* transcript builds a valid exchange: the upgrade request, <open/>, a
 * fragmented stanza, a ping, <close/> and a close frame. */
static void transcript(struct buf *t)
{
    static const unsigned char code1000[] = {0x03, 0xe8};
    static const char st[] = "<message xmlns='jabber:client'><body>b</body></message>";

    buf_puts(t, REQ);
    ctext(t, OPEN_MSG);
    cframe(t, false, 1, st, 10, true);
    cframe(t, true, 0, st + 10, strlen(st) - 10, true);
    cframe(t, true, 9, "p", 1, true);
    ctext(t, "<close xmlns='" FRAMING "'/>");
    cframe(t, true, 8, code1000, 2, true);
}

/* no_pong removes the pong answering the transcript's ping: when the ping
 * and the close frame come in one read, wslay sends the close alone (a
 * queued close goes before, and ends, any other control frame; RFC 6455
 * §5.5.1 lets the close be the last frame), so whether the pong goes out
 * depends on the chunking. */
static void no_pong(struct buf *w)
{
    for (size_t off = 0; off + 3 <= w->len; off++)
        if (memcmp(w->data + off, "\x8a\x01p", 3) == 0) {
            memmove(w->data + off, w->data + off + 3, w->len - off - 3);
            w->len -= 3;
            return;
        }
}

static void run_chunked(const struct buf *t, size_t chunk, struct cx *c)
{
    cx_init(c, NULL);
    cx_start(c, "192.0.2.7");
    for (size_t off = 0; off < t->len; off += chunk) {
        size_t n = t->len - off < chunk ? t->len - off : chunk;
        cx_in(c, t->data + off, n);
    }
}

static void test_truncation_and_chunking(void)
{
    struct buf t = {0};
    struct cx whole, c;

    transcript(&t);
    run_chunked(&t, t.len, &whole);
    no_pong(&whole.wire);
    CHECK(whole.upgraded && whole.close);
    CHECK_STR(whole.stream.data, HEADER "<message xmlns='jabber:client'><body>b</body>"
                                        "</message></stream:stream>");
    /* every chunk size gives the same bytes both ways */
    for (size_t chunk = 1; chunk < 40; chunk++) {
        run_chunked(&t, chunk, &c);
        CHECK(c.upgraded && c.close);
        no_pong(&c.wire);
        CHECK(c.wire.len == whole.wire.len &&
              memcmp(c.wire.data, whole.wire.data, c.wire.len) == 0);
        CHECK(c.stream.len == whole.stream.len &&
              memcmp(c.stream.data, whole.stream.data, c.stream.len) == 0);
        cx_free(&c);
    }
    /* every truncation: no crash, no close, a prefix of the whole output */
    for (size_t k = 0; k < t.len; k++) {
        cx_init(&c, NULL);
        cx_start(&c, "192.0.2.7");
        cx_in(&c, t.data, k);
        CHECK(!c.close);
        no_pong(&c.wire);
        CHECK(c.wire.len <= whole.wire.len &&
              (c.wire.len == 0 || memcmp(c.wire.data, whole.wire.data, c.wire.len) == 0));
        CHECK(c.stream.len <= whole.stream.len &&
              (c.stream.len == 0 ||
               memcmp(c.stream.data, whole.stream.data, c.stream.len) == 0));
        /* and then time runs out */
        now += 60000;
        cx_tick(&c);
        now += 60000;
        cx_tick(&c);
        if (ws_state(c.ws) == WS_HTTP || ws_state(c.ws) == WS_CLOSED)
            CHECK(ws_state(c.ws) == WS_CLOSED);
        cx_free(&c);
    }
    cx_free(&whole);
    buf_free(&t);
}

/* Seeded mutations of the valid exchange (bytes flipped, dropped,
 * duplicated) in random chunks, and random bytes after an upgrade: never a
 * crash (run under ASan/UBSan too), and a closed connection stays closed.
 * A failure prints its seed. */
static void test_mutations(void)
{
    struct buf t = {0}, m = {0};
    struct cx c;

    transcript(&t);
    for (unsigned seed = 1; seed <= 400; seed++) {
        unsigned r = seed * 2654435761u;
        int fails = tl_case_failures;

#define RND() (r = r * 1103515245u + 12345u, (r >> 8))
        buf_reset(&m);
        if (seed % 4 == 0) {
            buf_puts(&m, REQ);
            for (int i = 0; i < 300; i++) {
                unsigned char ch = (unsigned char)RND();
                buf_append(&m, &ch, 1);
            }
        } else {
            buf_append(&m, t.data, t.len);
            for (int k = 0; k < 1 + (int)(RND() % 4); k++) {
                size_t at = RND() % m.len;
                switch (RND() % 3) {
                case 0:
                    m.data[at] = (char)RND();
                    break;
                case 1:
                    memmove(m.data + at, m.data + at + 1, m.len - at - 1);
                    m.len--;
                    break;
                default:
                    buf_append(&m, "x", 1);
                    memmove(m.data + at + 1, m.data + at, m.len - at - 1);
                }
            }
        }
        cx_init(&c, NULL);
        cx_start(&c, "192.0.2.7");
        for (size_t off = 0; off < m.len;) {
            size_t n = 1 + RND() % 64;
            if (n > m.len - off)
                n = m.len - off;
            cx_in(&c, m.data + off, n);
            off += n;
            if (c.close)
                break;
        }
        if (c.close) {
            cx_in(&c, "x", 1);
            CHECK_INT(c.rc, XE_STATE);
        }
        cx_free(&c);
        if (tl_case_failures != fails)
            fprintf(stderr, "seed %u\n", seed);
#undef RND
    }
    buf_free(&m);
    buf_free(&t);
}

/* An idle connection holds no frame state: wslay's contexts are freed
 * between frames outside a fragmented message, and made again for the
 * next frame.  Every split of frames (16- and 64-bit lengths, fragments
 * with a ping between them, RFC 6455 §5.2 and §5.4) is given a byte at a
 * time and must come out whole, parked only where a message ended. */
static void test_idle_parks_frames(void)
{
    char big[300], big2[70000];
    struct ws_update up;
    struct ws_stats st;
    struct buf b = {0}, want = {0};
    struct cx c;
    size_t nframes;

    memset(big, 'x', sizeof big);
    memcpy(big, "<a>", 3);
    memcpy(big + sizeof big - 4, "</a>", 4);
    memset(big2, 'y', sizeof big2);
    memcpy(big2, "<b>", 3);
    memcpy(big2 + sizeof big2 - 4, "</b>", 4);
    cx_init(&c, NULL);
    cx_xmpp(&c);
    ws_get_stats(c.ws, &st);
    CHECK(st.parked && st.parks >= 1);

    /* A whole message parks; so does a ping alone. */
    ctext(&b, "<x/>");
    cx_inb(&c, &b);
    CHECK_STR(c.stream.data, "<x/>");
    ws_get_stats(c.ws, &st);
    CHECK(st.parked);
    cframe(&b, true, 9, "p", 1, true);
    cx_inb(&c, &b);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 10);
    ws_get_stats(c.ws, &st);
    CHECK(st.parked);

    /* Byte at a time: a 16-bit length, three fragments with a ping in
     * between, a 64-bit length. */
    buf_reset(&c.stream);
    cframe(&b, true, 1, big, sizeof big, true);
    cframe(&b, false, 1, "<m>", 3, true);
    cframe(&b, false, 0, "12", 2, true);
    cframe(&b, true, 9, "q", 1, true);
    cframe(&b, true, 0, "</m>", 4, true);
    cframe(&b, true, 1, big2, sizeof big2, true);
    buf_append(&want, big, sizeof big);
    buf_append(&want, "<m>12</m>", 9);
    buf_append(&want, big2, sizeof big2);
    nframes = 0;
    for (size_t i = 0; i < b.len; i++) {
        uint64_t before;

        ws_get_stats(c.ws, &st);
        before = st.parks;
        cx_in(&c, b.data + i, 1);
        ws_get_stats(c.ws, &st);
        if (st.parks != before)
            nframes++;
        CHECK(!c.close);
    }
    /* parked after the first message, the ping's frame inside the
     * fragmented one does not count, then after the second and third */
    CHECK_INT(nframes, 3);
    CHECK(st.parked);
    CHECK(c.stream.len == want.len && memcmp(c.stream.data, want.data, want.len) == 0);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 10);
    CHECK_STR(c.f.payload.data, "q");

    /* Half a frame holds the state; our ping in between does not lose it. */
    buf_reset(&b);
    buf_reset(&c.stream);
    ctext(&b, "<half/>");
    cx_in(&c, b.data, 3);
    ws_get_stats(c.ws, &st);
    CHECK(!st.parked);
    CHECK_INT(ws_ping(c.ws, now, &up), 0);
    cx_take(&c, 0, &up);
    ws_get_stats(c.ws, &st);
    CHECK(!st.parked);
    cx_in(&c, b.data + 3, b.len - 3);
    CHECK_STR(c.stream.data, "<half/>");
    ws_get_stats(c.ws, &st);
    CHECK(st.parked);
    REQUIRE(cx_frame(&c));
    CHECK_INT(c.f.op, 9);
    buf_free(&b);
    buf_free(&want);
    cx_free(&c);
}

TL_MAIN(T(test_frame_helper_matches_rfc), T(test_upgrade_rfc6455),
        T(test_subprotocol_required), T(test_browser_requests), T(test_wrong_version_426),
        T(test_bad_key_400), T(test_origin_allow_list), T(test_not_an_upgrade),
        T(test_request_without_version_400), T(test_obs_fold_400),
        T(test_space_before_colon_400), T(test_oversized_headers),
        T(test_handshake_timeout), T(test_host_meta), T(test_x_forwarded_for),
        T(test_x_forwarded_for_cidr), T(test_open_becomes_header),
        T(test_unmasked_frame_1002), T(test_masked_frame), T(test_close_malformed_body),
        T(test_close_reason_split), T(test_reserved_opcodes_1002),
        T(test_bad_utf8_and_rsv), T(test_malformed_frames), T(test_fragmented_stanza),
        T(test_oversized_message_1009), T(test_ping_pong), T(test_binary_1003),
        T(test_close_by_client), T(test_close_frame_echo), T(test_close_by_server),
        T(test_redirect), T(test_outbound_translation), T(test_stream_restart),
        T(test_framing_errors), T(test_stanza_split), T(test_blank_message_ignored),
        T(test_truncation_and_chunking), T(test_mutations), T(test_idle_parks_frames))
