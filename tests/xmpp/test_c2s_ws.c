/* test_c2s_ws.c: transcripts of a client session over WebSocket (RFC
 * 7395; docs/websocket.md "The seam"): the upgrade on a wss
 * connection, <open/>, SASL SCRAM-SHA-256 with the session's own rules,
 * bind, a message to and from a client on 5222, <close/> and the closing
 * handshake; a plain ws connection refused while TLS is required; the
 * WebSocket keep-alive and the connection-gone paths.  The client's frames
 * are built here (masked, RFC 6455 §5.3) and the server's read here, no
 * sockets. */
#include "xmpp/cx.h"

#include <sodium.h>

#include "ws.h"

#define FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define WS_REQ                                                                           \
    "GET /xmpp-websocket HTTP/1.1\r\n"                                                   \
    "Host: example.com\r\n"                                                              \
    "Upgrade: websocket\r\n"                                                             \
    "Connection: Upgrade\r\n"                                                            \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                    \
    "Sec-WebSocket-Protocol: xmpp\r\n"                                                   \
    "Sec-WebSocket-Version: 13\r\n\r\n"
#define WS_101                                                                           \
    "HTTP/1.1 101 Switching Protocols\r\n"                                               \
    "Upgrade: websocket\r\n"                                                             \
    "Connection: Upgrade\r\n"                                                            \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"                             \
    "Sec-WebSocket-Protocol: xmpp\r\n\r\n"
#define WS_OPEN "<open xmlns='" FRAMING "' to='example.com' version='1.0'/>"
#define WS_CLOSE "<close xmlns='" FRAMING "'/>"
#define WS_CLOSE_OUT "<close xmlns=\"" FRAMING "\" />"
#define WS_FEAT(x) "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>" x
#define WS_MECHS                                                                         \
    "<mechanisms xmlns='" CX_NS_SASL "'>" CX_MECHS_PLUS CX_MECHS "</mechanisms>" CX_CB   \
    "</stream:features>"
#define WS_BIND                                                                          \
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session "                          \
    "xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></"                \
    "stream:features>"

static struct fx fx;
static struct cl_state *cl;
static char got[1 << 16];

static int up(void)
{
    if (fx_start(&fx, NULL) != 0 || cl_state_new(&cl) != 0 ||
        cx_add_user(cl, "alice", "secret-a") != 0 ||
        cx_add_user(cl, "bob", "secret-b") != 0)
        return -1;
    srv_set_accounts(fx.srv, cl);
    return 0;
}

static void down(void)
{
    fx_stop(&fx);
    cl_state_free(cl);
    cl = NULL;
}

/* ws_frame sends one masked client frame (RFC 6455 §5.2) on conn. */
static void ws_frame(uint64_t conn, int op, const char *payload, size_t n)
{
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    struct buf b = {0};
    unsigned char h[8];
    size_t hl = 0;

    h[hl++] = (unsigned char)(0x80 | op);
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    }
    buf_append(&b, h, hl);
    buf_append(&b, key, 4);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(payload[i] ^ key[i % 4]);
        buf_append(&b, &c, 1);
    }
    srv_conn_input(fx.srv, conn, b.data, b.len, fx.now);
    buf_free(&b);
}

static void ws_text(uint64_t conn, const char *s)
{
    ws_frame(conn, 1, s, strlen(s));
}

/* ws_take reads the server's frames written to conn so far (unmasked,
 * RFC 6455 §5.1) into got: each text message followed by '\n', a ping as
 * "[ping]\n", a close as "[close <code>]\n"; "[bad]" for what is not a
 * whole frame. */
static const char *ws_take(uint64_t conn)
{
    const unsigned char *p;
    size_t n, at = 0;

    n = fx.c[conn].out.len < sizeof fx.taken ? fx.c[conn].out.len : sizeof fx.taken;
    fx_take(&fx, conn); /* copies n bytes (lengths may hold NUL bytes) */
    p = (const unsigned char *)fx.taken;
    got[0] = '\0';
    while (at < n) {
        size_t len, hl = 2, k = strlen(got);
        int op = p[at] & 0x0f;
        if (n - at < 2 || (p[at + 1] & 0x80) != 0) {
            snprintf(got + k, sizeof got - k, "[bad]");
            break;
        }
        len = p[at + 1] & 0x7f;
        if (len == 126) {
            len = (size_t)p[at + 2] << 8 | p[at + 3];
            hl = 4;
        }
        if (len == 127 || at + hl + len > n) {
            snprintf(got + k, sizeof got - k, "[bad]");
            break;
        }
        if (op == 1)
            snprintf(got + k, sizeof got - k, "%.*s\n", (int)len,
                     (const char *)p + at + hl);
        else if (op == 9)
            snprintf(got + k, sizeof got - k, "[ping]\n");
        else if (op == 8)
            snprintf(got + k, sizeof got - k, "[close %u]\n",
                     len >= 2 ? (unsigned)p[at + hl] << 8 | p[at + hl + 1] : 0);
        else
            snprintf(got + k, sizeof got - k, "[op %d]\n", op);
        at += hl + len;
    }
    return got;
}

/* ws_hdr: the <open/> the server sends for stream id sid. */
static const char *ws_hdr(const char *sid, const char *tail)
{
    snprintf(fx.expect, sizeof fx.expect,
             "<open xmlns=\"" FRAMING "\" from=\"example.com\" id=\"%s\" version=\"1.0\" "
             "xml:lang=\"en\" />\n%s",
             sid, tail);
    return fx.expect;
}

/* ws_up opens conn on kind and upgrades it (wss: secured first, as the
 * edge does for direct TLS). */
static void ws_up(uint64_t conn, enum srv_listener kind)
{
    static const struct srv_tls_info tls13 = {.tls13 = true,
                                              .exporter = {0xab},
                                              .exporter_len = 32,
                                              .endpoint = {0xcd},
                                              .endpoint_len = 32};

    fx_open_kind(&fx, conn, kind);
    if (kind == SRV_LISTENER_WEBSOCKET_TLS)
        srv_conn_secured(fx.srv, conn, &tls13, fx.now);
    fx_in(&fx, conn, WS_REQ);
    /* the 101, and what the server says at once after it (a refusal) */
    CHECK(fx.c[conn].out.len >= strlen(WS_101) &&
          memcmp(fx.c[conn].out.data, WS_101, strlen(WS_101)) == 0);
    buf_consume(&fx.c[conn].out, strlen(WS_101));
}

/* ws_login: <open/>, SCRAM-SHA-256 (no channel binding), the restart and
 * bind of alice/web on wss connection conn. */
static void ws_login(uint64_t conn)
{
    struct cx_scram x;
    char el[4096], sf[512], want[512], sid[33];
    const char *b64, *e;
    size_t n = 0;

    ws_text(conn, WS_OPEN);
    CHECK_STR(ws_take(conn), ws_hdr(fx.c[conn].sid, WS_FEAT(WS_MECHS) "\n"));
    cx_auth_el(&x, "SCRAM-SHA-256", "n,,", "alice", el, sizeof el);
    ws_text(conn, el);
    ws_take(conn);
    b64 = strstr(got, "'>");
    e = strstr(got, "</challenge>");
    REQUIRE(strncmp(got, "<challenge xmlns='" CX_NS_SASL "'>", 18) == 0 && b64 && e);
    REQUIRE(sodium_base642bin((unsigned char *)sf, sizeof sf - 1, b64 + 2,
                              (size_t)(e - b64 - 2), NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0);
    sf[n] = '\0';
    fx_next_sid(&fx, sid);
    cx_final_el(&x, sf, "secret-a", NULL, 0, el, sizeof el);
    ws_text(conn, el);
    snprintf(want, sizeof want, "<success xmlns='" CX_NS_SASL "'>%s</success>\n",
             x.server_sig);
    CHECK_STR(ws_take(conn), want);
    /* RFC 7395 §3.5: after SASL success the client opens the new stream */
    ws_text(conn, WS_OPEN);
    CHECK_STR(ws_take(conn), ws_hdr(sid, WS_FEAT(WS_BIND) "\n"));
    ws_text(conn, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>web</resource></bind></iq>");
    CHECK_STR(ws_take(conn),
              "<iq xmlns='jabber:client' type='result' id='b1'><bind "
              "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.com/web</jid>"
              "</bind></iq>\n");
}

static void test_wss_login_message_close(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 2, "bob", "secret-b", "desk"));
    ws_up(1, SRV_LISTENER_WEBSOCKET_TLS);
    ws_login(1);
    CHECK(fx_log_has(&fx, "n1 c1 client alice logged in from 127.0.0.1:40001 "
                          "(SCRAM-SHA-256)"));
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.clients, 2);
    CHECK_INT(st.ws_clients, 1);
    CHECK_INT(st.ws_conns, 1);

    /* browser to 5222 client, and back */
    ws_text(1,
            "<message to='bob@example.com/desk' type='chat'><body>hi</body></message>");
    CHECK_STR(fx_take(&fx, 2), "<message to='bob@example.com/desk' type='chat' "
                               "from='alice@example.com/web'><body>hi</body></message>");
    fx_in(&fx, 2,
          "<message to='alice@example.com/web' type='chat'><body>yo</body></message>");
    CHECK_STR(ws_take(1), "<message xmlns='jabber:client' to='alice@example.com/web' "
                          "type='chat' from='bob@example.com/desk'><body>yo</body>"
                          "</message>\n");

    /* RFC 7395 §3.6: the client's <close/> is answered with ours, then
     * the WebSocket closing handshake (the session is gone meanwhile) */
    ws_text(1, WS_CLOSE);
    CHECK_STR(ws_take(1), WS_CLOSE_OUT "\n[close 1000]\n");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.clients, 1);
    CHECK_INT(st.ws_clients, 0);
    CHECK_INT(st.ws_conns, 1); /* the closing handshake */
    CHECK_INT(fx.c[1].closes, 0);
    ws_frame(1, 8, "\x03\xe8", 2);
    CHECK_INT(fx.c[1].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_conns, 0);
    CHECK_INT(fx.c[1].late_sends, 0);
    CHECK_INT(fx.c[2].closes, 0);
    down();
}

static void test_plain_ws_refused_when_tls_required(void)
{
    REQUIRE(up() == 0);
    ws_up(1, SRV_LISTENER_WEBSOCKET);
    /* RFC 7395 §3.9: no STARTTLS inside a WebSocket; said at once */
    CHECK_STR(ws_take(1),
              ws_hdr(fx.c[1].sid,
                     "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                     "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                     "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>TLS is required: "
                     "connect with wss://</text></stream:error>\n" WS_CLOSE_OUT
                     "\n[close 1000]\n"));
    CHECK(fx_log_has(&fx, "stream error policy-violation: plain ws, TLS required"));
    down();
}

static void test_plain_ws_when_tls_optional(void)
{
    struct srv_config c;

    srv_config_default(&c);
    c.c2s_tls_required = false;
    REQUIRE(fx_start(&fx, &c) == 0);
    ws_up(1, SRV_LISTENER_WEBSOCKET);
    ws_text(1, WS_OPEN);
    /* no STARTTLS offered over WebSocket; SCRAM without -PLUS */
    CHECK_STR(ws_take(1),
              ws_hdr(fx.c[1].sid, WS_FEAT("<mechanisms xmlns='" CX_NS_SASL "'>" CX_MECHS
                                          "</mechanisms></stream:features>\n")));
    CHECK_INT(fx.c[1].starttls, 0);
    fx_stop(&fx);
}

static void test_keepalive_is_a_ping(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    ws_up(1, SRV_LISTENER_WEBSOCKET_TLS);
    ws_login(1);
    /* one interval without input: the XEP-0199 ping; without output: the
     * whitespace keep-alive, which is a WebSocket ping (RFC 7395 §3.8) */
    fx.now += 60000;
    srv_tick(fx.srv, fx.now);
    CHECK(strstr(ws_take(1), "urn:xmpp:ping") != NULL);
    CHECK(strstr(got, "[ping]") == NULL);
    fx.now += 60000;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(ws_take(1), "[ping]\n");
    /* a pong is a sign of life: no idle close at 3 intervals */
    ws_frame(1, 10, "", 0);
    fx.now += 60000;
    srv_tick(fx.srv, fx.now);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_clients, 1);
    /* then silence: closed after 3 intervals (connection-timeout) */
    fx.now += 3 * 60000;
    srv_tick(fx.srv, fx.now);
    ws_take(1);
    CHECK(strstr(got, "<connection-timeout") != NULL);
    CHECK(strstr(got, WS_CLOSE_OUT) != NULL);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_clients, 0);
    /* the client never answers: the closing handshake gives up */
    fx.now += 20000;
    srv_tick(fx.srv, fx.now);
    fx.now += 20000;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(fx.c[1].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_conns, 0);
    down();
}

static void test_gone_and_framing_error(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    ws_up(1, SRV_LISTENER_WEBSOCKET_TLS);
    ws_login(1);
    srv_conn_closed(fx.srv, 1, fx.now);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_conns, 0);
    CHECK_INT(st.clients, 0);
    CHECK_INT(fx.c[1].closes, 0);

    /* RFC 7395 §3.3.3: two elements in one message: not-well-formed */
    ws_up(3, SRV_LISTENER_WEBSOCKET_TLS);
    ws_text(3, WS_OPEN);
    ws_take(3);
    ws_text(3, "<presence/><presence/>");
    ws_take(3);
    CHECK(strstr(got, "<not-well-formed") != NULL);
    CHECK(strstr(got, WS_CLOSE_OUT) != NULL);
    /* a request that is no upgrade is answered and closed, no session */
    fx_open_kind(&fx, 4, SRV_LISTENER_WEBSOCKET);
    fx_in(&fx, 4, "GET /.well-known/host-meta HTTP/1.1\r\nHost: example.com\r\n\r\n");
    CHECK(strncmp(fx_take(&fx, 4), "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_INT(fx.c[4].closes, 1);
    down();
}

/* host_meta GETs path on a new plain-ws connection conn and returns the
 * response (status line, headers, body) in got. */
static const char *host_meta(uint64_t conn, const char *path)
{
    char req[256];

    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path);
    fx_open_kind(&fx, conn, SRV_LISTENER_WEBSOCKET);
    fx_in(&fx, conn, req);
    snprintf(got, sizeof got, "%s", fx_take(&fx, conn));
    return got;
}

/* XEP-0156 §3: host-meta names every voting member's URLs, this node's
 * first, at this node's ports and path (srv_set_ws_links); the list
 * follows later calls; CORS lets a page of another origin read it. */
static void test_host_meta_names_the_members(void)
{
    static const char *const listen[] = {"10.0.0.1", "0.0.0.0"};
    static const struct srv_ws_member m[] = {
        {.address = "10.0.0.3:5224", .voter = true},
        {.address = "10.0.0.1:5224", .voter = true, .self = true},
        {.address = "10.0.0.4:5224", .voter = false}, /* a learner: not named */
        {.address = "[fd00::2]:5224", .voter = true},
        {.address = "10.0.0.1:6000", .voter = true}, /* same host as ours: once */
        {.address = "[fd00::5", .voter = true},      /* malformed: skipped */
    };
    struct srv_ws_links l = {.listen = listen,
                             .nlisten = 2,
                             .members = m,
                             .nmembers = 6,
                             .wss_port = 5281,
                             .ws_port = 0,
                             .path = "/xmpp-websocket"};
    const char *const *u;
    size_t n;

    REQUIRE(up() == 0);
    REQUIRE(srv_set_ws_links(fx.srv, &l) == 0);
    u = srv_ws_urls(fx.srv, &n);
    REQUIRE(n == 4);
    CHECK_STR(u[0], "wss://10.0.0.1:5281/xmpp-websocket");
    CHECK_STR(u[1], "wss://example.com:5281/xmpp-websocket");
    CHECK_STR(u[2], "wss://10.0.0.3:5281/xmpp-websocket");
    CHECK_STR(u[3], "wss://[fd00::2]:5281/xmpp-websocket");
    host_meta(1, "/.well-known/host-meta.json");
    CHECK(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(got, "\r\nAccess-Control-Allow-Origin: *\r\n") != NULL);
    /* the four, in that order, each once */
    CHECK(strstr(got, "\"href\": \"wss://10.0.0.1:5281/xmpp-websocket\"") != NULL);
    CHECK(strstr(got, "wss://10.0.0.1:") < strstr(got, "wss://example.com:"));
    CHECK(strstr(got, "wss://example.com:") < strstr(got, "wss://10.0.0.3:"));
    CHECK(strstr(got, "wss://10.0.0.3:") < strstr(got, "wss://[fd00::2]:5281/"));
    CHECK(strstr(strstr(got, "wss://10.0.0.1:") + 1, "wss://10.0.0.1:") == NULL);
    CHECK(strstr(got, "10.0.0.4") == NULL);
    host_meta(2, "/.well-known/host-meta");
    CHECK(strstr(got, "\r\nAccess-Control-Allow-Origin: *\r\n") != NULL);
    CHECK(strstr(got, "<Link rel='urn:xmpp:alt-connections:websocket' "
                      "href='wss://10.0.0.3:5281/xmpp-websocket'/>") != NULL);

    /* A member left, ws allowed (TLS optional): the next request sees it;
     * a later srv_set_ws_config keeps the links' URLs. */
    l.nlisten = 1;
    l.nmembers = 1;
    l.ws_port = 5280;
    REQUIRE(srv_set_ws_links(fx.srv, &l) == 0);
    srv_set_ws_config(fx.srv, NULL);
    u = srv_ws_urls(fx.srv, &n);
    REQUIRE(n == 4);
    CHECK_STR(u[0], "wss://10.0.0.1:5281/xmpp-websocket");
    CHECK_STR(u[1], "ws://10.0.0.1:5280/xmpp-websocket");
    CHECK_STR(u[2], "wss://10.0.0.3:5281/xmpp-websocket");
    CHECK_STR(u[3], "ws://10.0.0.3:5280/xmpp-websocket");
    host_meta(3, "/.well-known/host-meta.json");
    CHECK(strstr(got, "ws://10.0.0.3:5280/xmpp-websocket") != NULL);
    CHECK(strstr(got, "fd00::2") == NULL);
    down();
}

/* Draining: a WebSocket client is
 * sent to another member with RFC 7395 §3.6.1 <close see-other-uri/>
 * naming its wss URL, then the WebSocket close 1001 (going away); a
 * client that connects while the node drains gets the 101 and the same
 * <close/> before any stream. */
static void test_drain_see_other_uri(void)
{
    static const struct srv_drain_target n2 = {0x2222, "10.0.0.2:5223", "10.0.0.2:5222",
                                               "wss://10.0.0.2:5281/xmpp-websocket"};
    struct srv_stats st;

    REQUIRE(up() == 0);
    ws_up(1, SRV_LISTENER_WEBSOCKET_TLS);
    ws_login(1);
    CHECK_INT(srv_drain(fx.srv, &n2, 1, fx.now), 0);
    CHECK_STR(ws_take(1),
              "<close xmlns=\"" FRAMING "\" see-other-uri=\"wss://10.0.0.2:5281"
              "/xmpp-websocket\" />\n");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_clients, 0);
    CHECK_INT(st.redirected, 1);
    /* RFC 7395 §3.6: the client's <close/>, then the WebSocket close 1001
     * (going away), then the client's close frame ends it */
    ws_text(1, WS_CLOSE);
    CHECK_STR(ws_take(1), "[close 1001]\n");
    CHECK_INT(fx.c[1].closes, 0);
    ws_frame(1, 8, "\x03\xe9", 2);
    CHECK_INT(fx.c[1].closes, 1);

    ws_up(2, SRV_LISTENER_WEBSOCKET_TLS);
    CHECK_STR(ws_take(2),
              "<close xmlns=\"" FRAMING "\" see-other-uri=\"wss://10.0.0.2:5281"
              "/xmpp-websocket\" />\n[close 1001]\n");
    CHECK(
        fx_log_has(&fx, "c2 websocket see-other-uri wss://10.0.0.2:5281/xmpp-websocket"));
    srv_undrain(fx.srv);
    ws_up(3, SRV_LISTENER_WEBSOCKET_TLS);
    ws_login(3);
    down();
}

/* Pending upgrades are bounded per node: over
 * max_pending connections that have not had their HTTP response, a new
 * one gets 503 with Retry-After on its first bytes; a connection stops
 * counting once answered (101, an error, the 408 of the handshake
 * timeout) or gone. */
static void test_pending_upgrades_bounded(void)
{
    struct ws_config wc;
    struct srv_stats st;
    const char *r;

    REQUIRE(up() == 0);
    ws_config_default(&wc);
    wc.max_pending = 2;
    srv_set_ws_config(fx.srv, &wc);
    fx_open_kind(&fx, 1, SRV_LISTENER_WEBSOCKET_TLS);
    fx_open_kind(&fx, 2, SRV_LISTENER_WEBSOCKET_TLS);
    fx_open_kind(&fx, 3, SRV_LISTENER_WEBSOCKET_TLS);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 2);
    fx_in(&fx, 3, "GET /xmpp-websocket HTTP/1.1\r\n");
    r = fx_take(&fx, 3);
    CHECK(strncmp(r, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    CHECK(strstr(r, "Retry-After: 5\r\n") != NULL);
    CHECK(strstr(r, "too many pending WebSocket upgrades") != NULL);
    CHECK_INT(fx.c[3].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_busy, 1);
    /* one more over the bound, that speaks only once room was made */
    fx_open_kind(&fx, 6, SRV_LISTENER_WEBSOCKET_TLS);
    /* a request in pieces still counts until it is answered */
    fx_in(&fx, 1, "GET /xmpp-websocket HTTP/1.1\r\n");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 2);
    fx_in(&fx, 1, WS_REQ + strlen("GET /xmpp-websocket HTTP/1.1\r\n"));
    CHECK(strncmp(fx_take(&fx, 1), "HTTP/1.1 101 ", 13) == 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 1);
    fx_in(&fx, 6, WS_REQ);
    CHECK(strncmp(fx_take(&fx, 6), "HTTP/1.1 101 ", 13) == 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 1);
    CHECK_INT(st.ws_busy, 1);
    /* room again: a new connection is served */
    ws_up(4, SRV_LISTENER_WEBSOCKET_TLS);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 1);
    /* the silent one: 408 at the handshake timeout, then not counted */
    fx.now += 10000;
    srv_tick(fx.srv, fx.now);
    CHECK(strncmp(fx_take(&fx, 2), "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    CHECK_INT(fx.c[2].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 0);
    /* one that goes away before its response stops counting too */
    fx_open_kind(&fx, 5, SRV_LISTENER_WEBSOCKET_TLS);
    srv_conn_closed(fx.srv, 5, fx.now);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.ws_pending, 0);
    down();
}

/* ws_req_with opens wss connection conn (secured, as ws_up) and sends
 * the upgrade request with extra header lines. */
static void ws_req_with(uint64_t conn, const char *extra)
{
    static const struct srv_tls_info tls13 = {.tls13 = true,
                                              .exporter = {0xab},
                                              .exporter_len = 32,
                                              .endpoint = {0xcd},
                                              .endpoint_len = 32};
    char req[1024];

    fx_open_kind(&fx, conn, SRV_LISTENER_WEBSOCKET_TLS);
    srv_conn_secured(fx.srv, conn, &tls13, fx.now);
    snprintf(req, sizeof req,
             "GET /xmpp-websocket HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             extra);
    fx_in(&fx, conn, req);
}

/* Origin allow-list and trusted proxies through srv:
 * an Origin not on a non-empty list gets 403 with the reason; no Origin
 * (not a browser) and a listed one are let in.  X-Forwarded-For from a
 * trusted proxy (a CIDR range) names the client in the log lines and is
 * the address login throttling counts; from anyone else it is ignored. */
static void test_origin_and_proxy(void)
{
    static const char *const origins[] = {"https://app.example.com"};
    static const char *const proxies[] = {"127.0.0.0/8"};
    struct ws_config wc;
    const char *r;

    REQUIRE(up() == 0);
    ws_config_default(&wc);
    wc.origins = origins;
    wc.norigins = 1;
    wc.trusted_proxies = proxies;
    wc.nproxies = 1;
    srv_set_ws_config(fx.srv, &wc);

    ws_req_with(1, "Origin: https://evil.example.net\r\n");
    r = fx_take(&fx, 1);
    CHECK(strncmp(r, "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
    CHECK(strstr(r, "origin not allowed") != NULL);
    CHECK_INT(fx.c[1].closes, 1);

    ws_req_with(2, "Origin: https://APP.example.com\r\n"
                   "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n");
    CHECK(strncmp(fx_take(&fx, 2), "HTTP/1.1 101 ", 13) == 0);
    ws_login(2);
    CHECK(fx_log_has(&fx, "n1 c2 client alice logged in from 203.0.113.9 "));

    /* no Origin: not a browser, let in; its X-Forwarded-For counts (the
     * peer 127.0.0.1 is a trusted proxy): a wrong password is counted for
     * 192.0.2.5, not for the proxy */
    ws_req_with(3, "X-Forwarded-For: 192.0.2.5\r\n");
    CHECK(strncmp(fx_take(&fx, 3), "HTTP/1.1 101 ", 13) == 0);
    ws_text(3, WS_OPEN);
    ws_take(3);
    ws_text(3, "<auth xmlns='" CX_NS_SASL "' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>");
    ws_take(3);
    CHECK(fx_log_has(&fx, "peer 192.0.2.5"));
    down();
}

/* An X-Forwarded-For from a peer that is not a trusted proxy is ignored. */
static void test_untrusted_forwarded_for(void)
{
    static const char *const proxies[] = {"10.0.0.1"};
    struct ws_config wc;

    REQUIRE(up() == 0);
    ws_config_default(&wc);
    wc.trusted_proxies = proxies;
    wc.nproxies = 1;
    srv_set_ws_config(fx.srv, &wc);
    ws_req_with(1, "X-Forwarded-For: 203.0.113.9\r\n");
    CHECK(strncmp(fx_take(&fx, 1), "HTTP/1.1 101 ", 13) == 0);
    ws_login(1);
    CHECK(fx_log_has(&fx, "n1 c1 client alice logged in from 127.0.0.1:40001 "));
    down();
}

/* ws_raw sends bytes as they are (a hand-made frame) on conn. */
static void ws_raw(uint64_t conn, const unsigned char *b, size_t n)
{
    srv_conn_input(fx.srv, conn, b, n, fx.now);
}

/* A hostile browser (the independent tester's cases): 'from' forged
 * with and without the namespace is stamped (RFC 6120 §8.1.2.1); a
 * message in two fragments is one stanza (RFC 6455 §5.4); protocol
 * errors end the connection with their RFC 6455 §7.4.1 code: unmasked
 * (§5.1), a reserved bit (§5.2), a continuation with nothing to continue
 * (§5.4): 1002; bad UTF-8 in a text message (§8.1): 1007; a frame
 * announcing 2^63-1 bytes: 1009 at its first byte, nothing buffered; a
 * second <open/> on a bound stream: bad-format (RFC 7395 §3.3.2).  The
 * client on 5222 gets only what was stamped, and stays. */
static void test_hostile_frames(void)
{
    static const unsigned char unmasked[] = {0x81, 0x03, 'a', 'b', 'c'};
    static const unsigned char rsv[] = {0xc1, 0x80, 1, 2, 3, 4};
    static const unsigned char huge[] = {0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 1,    2,    3,    4,    'x'};
    static const char bad_utf8[] = "<message to='bob@example.com/desk'><body>\xc0\xaf"
                                   "</body></message>";
    struct {
        const unsigned char *b;
        size_t n;
        const char *close;
    } bad[] = {
        {unmasked, sizeof unmasked, "[close 1002]\n"},
        {rsv, sizeof rsv, "[close 1002]\n"},
        {huge, sizeof huge, "[close 1009]\n"},
        {NULL, 0, "[close 1002]\n"}, /* continuation */
        {NULL, 1, "[close 1007]\n"}, /* bad UTF-8 */
    };
    static const unsigned char key[4] = {1, 2, 3, 4};
    const char *a = "<message to='bob@example.com/desk'>",
               *z = "<body>x</body></message>";
    unsigned char frag[128];
    size_t n = 0;

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 2, "bob", "secret-b", "desk"));
    ws_up(1, SRV_LISTENER_WEBSOCKET_TLS);
    ws_login(1);
    ws_text(1, "<message to='bob@example.com/desk' from='bob@example.com/desk'/>");
    CHECK_STR(fx_take(&fx, 2),
              "<message to='bob@example.com/desk' from='alice@example.com/web'/>");
    ws_text(1, "<message xmlns='jabber:client' to='bob@example.com/desk' "
               "from='x@example.com'><body>x</body></message>");
    CHECK_STR(fx_take(&fx, 2), "<message to='bob@example.com/desk' "
                               "from='alice@example.com/web'><body>x</body></message>");
    /* FIN clear, text; then FIN set, continuation */
    frag[n++] = 0x01;
    frag[n++] = (unsigned char)(0x80 | strlen(a));
    memcpy(frag + n, key, 4);
    n += 4;
    for (size_t i = 0; a[i] != '\0'; i++)
        frag[n++] = (unsigned char)(a[i] ^ key[i % 4]);
    frag[n++] = 0x80;
    frag[n++] = (unsigned char)(0x80 | strlen(z));
    memcpy(frag + n, key, 4);
    n += 4;
    for (size_t i = 0; z[i] != '\0'; i++)
        frag[n++] = (unsigned char)(z[i] ^ key[i % 4]);
    ws_raw(1, frag, n);
    CHECK_STR(fx_take(&fx, 2), "<message to='bob@example.com/desk' "
                               "from='alice@example.com/web'><body>x</body></message>");
    ws_text(1, WS_OPEN);
    ws_take(1);
    CHECK(strstr(got, "<bad-format ") != NULL);
    CHECK(strstr(got, WS_CLOSE_OUT) != NULL);
    down();

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        REQUIRE(up() == 0);
        REQUIRE(cx_login(&fx, 2, "bob", "secret-b", "desk"));
        ws_up(1, SRV_LISTENER_WEBSOCKET_TLS);
        ws_login(1);
        if (bad[i].b != NULL)
            ws_raw(1, bad[i].b, bad[i].n);
        else if (bad[i].n == 0)
            ws_frame(1, 0, "abc", 3);
        else
            ws_frame(1, 1, bad_utf8, sizeof bad_utf8 - 1);
        CHECK_STR(ws_take(1), bad[i].close);
        CHECK_INT(fx.c[1].closes, 1);
        CHECK_STR(fx_take(&fx, 2), "");
        CHECK_INT(fx.c[2].closes, 0);
        down();
    }
}

TL_MAIN(T(test_hostile_frames), T(test_wss_login_message_close),
        T(test_plain_ws_refused_when_tls_required), T(test_plain_ws_when_tls_optional),
        T(test_keepalive_is_a_ping), T(test_gone_and_framing_error),
        T(test_host_meta_names_the_members), T(test_drain_see_other_uri),
        T(test_pending_upgrades_bounded), T(test_origin_and_proxy),
        T(test_untrusted_forwarded_for))
