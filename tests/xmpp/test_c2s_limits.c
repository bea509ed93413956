/* test_c2s_limits.c: transcripts of the per-account and per-connection
 * limits of client sessions and of what xmpp status counts
 * (docs/admin.md "Clients"): sessions per account
 * (resource-constraint, RFC 6120 §7.6.2.1), the byte-rate shaper pausing
 * and resuming a connection (TCP and WebSocket) without losing a byte,
 * XEP-0092 software version on and off with disco#info, the 'to' of our
 * stream header (RFC 6120 §4.7.2), logins per minute as time passes and
 * the blocked addresses and accounts, newest first. */
#include "xmpp/cx.h"

static struct fx fx;
static struct cl_state *cl;

#define RC                                                                               \
    "<error type='wait'><resource-constraint "                                           \
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
#define SU                                                                               \
    "<error type='cancel'><service-unavailable "                                         \
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
#define BIND_C                                                                           \
    "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"             \
    "<resource>c</resource></bind></iq>"

static int up_cfg(const struct srv_config *cfg)
{
    if (fx_start(&fx, cfg) != 0 || cl_state_new(&cl) != 0 ||
        cx_add_user(cl, "alice", "pa") != 0 || cx_add_user(cl, "bob", "pb") != 0 ||
        cx_add_user(cl, "carol", "pc") != 0)
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

static struct srv_stats stats(void)
{
    struct srv_stats st;

    srv_get_stats(fx.srv, &st);
    return st;
}

/* Two sessions allowed: the third bind of the account is refused with
 * resource-constraint and the stream stays; the same full JID again
 * replaces its session (not a new one); once one session is gone the
 * refused client binds.  Another account is not affected. */
static void test_max_sessions(void)
{
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.c2s_max_sessions = 2;
    REQUIRE(up_cfg(&cfg) == 0);
    REQUIRE(cx_login(&fx, 1, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 2, "alice", "pa", "b"));
    REQUIRE(cx_tls(&fx, 3) && cx_scram_ok(&fx, 3, "SCRAM-SHA-256", "alice", "pa"));
    fx_in(&fx, 3, BIND_C);
    CHECK_STR(fx_take(&fx, 3), "<iq type='error' id='b1'><bind "
                               "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>c</"
                               "resource></bind>" RC "</iq>");
    CHECK_INT(fx.c[3].closes, 0);
    CHECK_INT(stats().sessions_refused, 1);
    CHECK_INT(stats().clients, 2);
    CHECK(fx_log_has(&fx, "n1 c3 client alice@example.com/c bind refused from "
                          "127.0.0.1:40003: 2 sessions, the limit"));
    /* not bound: a stanza now is refused as before a bind */
    /* the same full JID as a bound one replaces it */
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    CHECK_STR(fx_take(&fx, 2), FX_ERR("conflict"));
    CHECK_INT(stats().clients, 2);
    /* bob has his own count */
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "a"));
    /* alice/a leaves: c binds on the same stream */
    fx_in(&fx, 1, "</stream:stream>");
    CHECK_INT(fx.c[1].closes, 1);
    fx_in(&fx, 3, BIND_C);
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              "<jid>alice@example.com/c</jid></bind></iq>");
    CHECK_INT(stats().clients, 3);
    CHECK_INT(stats().sessions_refused, 1);
    down();

    /* 0: no limit */
    srv_config_default(&cfg);
    cfg.c2s_max_sessions = 0;
    REQUIRE(up_cfg(&cfg) == 0);
    for (uint64_t i = 1; i <= 12; i++) {
        char res[8];
        snprintf(res, sizeof res, "r%d", (int)i);
        REQUIRE(cx_login(&fx, i, "alice", "pa", res));
    }
    CHECK_INT(stats().clients, 12);
    down();

    /* the default is 10 */
    REQUIRE(up_cfg(NULL) == 0);
    for (uint64_t i = 1; i <= 10; i++) {
        char res[8];
        snprintf(res, sizeof res, "r%d", (int)i);
        REQUIRE(cx_login(&fx, i, "alice", "pa", res));
    }
    REQUIRE(cx_tls(&fx, 11) && cx_scram_ok(&fx, 11, "SCRAM-SHA-256", "alice", "pa"));
    fx_in(&fx, 11, BIND_C);
    CHECK(strstr(fx_take(&fx, 11), RC) != NULL);
    down();
}

/* XEP-0092: off by default (service-unavailable, not in disco#info); on,
 * the name and the version, no <os/>, and the feature listed. */
static void test_version(void)
{
    static const char disco[] = "<iq type='get' id='d1' to='example.com'><query "
                                "xmlns='http://jabber.org/protocol/disco#info'/></iq>";
    static const char features[] =
        "<iq type='result' id='d1' from='example.com' to='alice@example.com/a'><query "
        "xmlns='http://jabber.org/protocol/disco#info'><identity category='server' "
        "type='im' name='xmppd'/><feature "
        "var='http://jabber.org/protocol/disco#info'/><feature "
        "var='http://jabber.org/protocol/disco#items'/><feature "
        "var='urn:xmpp:ping'/>";
    static const char version[] =
        "<iq type='get' id='v1' to='example.com'><query xmlns='jabber:iq:version'/></iq>";
    struct srv_config cfg;

    REQUIRE(up_cfg(NULL) == 0);
    REQUIRE(cx_login(&fx, 1, "alice", "pa", "a"));
    fx_in(&fx, 1, version);
    CHECK_STR(fx_take(&fx, 1), "<iq type='error' id='v1' to='alice@example.com/a' "
                               "from='example.com'><query "
                               "xmlns='jabber:iq:version'/>" SU "</iq>");
    fx_in(&fx, 1, disco);
    CHECK_STR(
        fx_take(&fx, 1),
        (snprintf(fx.expect, sizeof fx.expect, "%s</query></iq>", features), fx.expect));
    down();

    srv_config_default(&cfg);
    cfg.version = "1.2.3";
    REQUIRE(up_cfg(&cfg) == 0);
    REQUIRE(cx_login(&fx, 1, "alice", "pa", "a"));
    fx_in(&fx, 1, version);
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='result' id='v1' from='example.com' to='alice@example.com/a'>"
              "<query xmlns='jabber:iq:version'><name>xmppd</name><version>1.2.3</"
              "version></query></iq>");
    fx_in(&fx, 1, disco);
    CHECK_STR(fx_take(&fx, 1),
              (snprintf(fx.expect, sizeof fx.expect,
                        "%s<feature var='jabber:iq:version'/></query></iq>", features),
               fx.expect));
    /* a set is not a version query */
    fx_in(&fx, 1,
          "<iq type='set' id='v2' to='example.com'><query xmlns='jabber:iq:version'/>"
          "</iq>");
    CHECK(strstr(fx_take(&fx, 1), "feature-not-implemented") != NULL);
    down();
}

/* RFC 6120 §4.7.2: a 'from' in the client's header comes back as 'to' in
 * ours (prepared, escaped), after every restart; none, or one that is not
 * a JID: no 'to'. */
static void test_stream_to(void)
{
    static const char open_from[] =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
        "from='Alice@Example.COM' version='1.0'>";
    char want[1024];

    REQUIRE(up_cfg(NULL) == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    fx_in(&fx, 1, open_from);
    snprintf(want, sizeof want,
             "<?xml version='1.0'?><stream:stream "
             "xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' "
             "from='example.com' to='alice@example.com' id='%s' version='1.0' "
             "xml:lang='en'>" CX_FEAT_TLS,
             fx.c[1].sid);
    CHECK_STR(fx_take(&fx, 1), want);
    /* a resource with characters to escape */
    fx_open_kind(&fx, 2, SRV_LISTENER_CLIENT);
    fx_in(&fx, 2,
          "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
          "from='bob@example.com/a&apos;&amp;&lt;b' version='1.0'>");
    CHECK(strstr(fx_take(&fx, 2), " to='bob@example.com/a&apos;&amp;&lt;b' id=") != NULL);
    /* not a JID: no 'to' */
    fx_open_kind(&fx, 3, SRV_LISTENER_CLIENT);
    fx_in(&fx, 3,
          "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
          "from='@bad' version='1.0'>");
    CHECK_STR(fx_take(&fx, 3), cx_hdr(&fx, fx.c[3].sid, CX_FEAT_TLS));
    /* none: no 'to' (cx.h's transcripts, unchanged) */
    REQUIRE(cx_tls(&fx, 4));
    /* the restart after STARTTLS without 'from' drops the earlier one */
    {
        char sid[33];
        fx_in(&fx, 1, CX_STARTTLS);
        CHECK_STR(fx_take(&fx, 1), CX_PROCEED);
        fx_next_sid(&fx, sid);
        srv_conn_secured(fx.srv, 1, &cx_tls13, fx.now);
        fx_in(&fx, 1, CX_OPEN);
        CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, sid, CX_FEAT_SASL));
    }
    down();
}

/* The shaper: before authentication 100 bytes/s with bursts of 300.  The
 * header fits; 400 more bytes put the connection 237 bytes over: paused
 * for 2.37 s; bytes the edge had read already still count (the pause is
 * extended, not repeated); resumed by srv_tick at its time, and
 * everything that came meanwhile is answered.  After authentication the
 * larger budget applies. */
static void test_shaper(void)
{
    static const char part[] = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'";
    struct srv_config cfg;
    char pad[401], sid[33];
    uint64_t t0;

    srv_config_default(&cfg);
    cfg.c2s_preauth_rate = 100;
    cfg.c2s_preauth_burst = 300;
    cfg.c2s_rate = 1000;
    cfg.c2s_burst = 100000;
    cfg.keepalive_ms = 0;
    cfg.auth_timeout_ms = 0;
    REQUIRE(up_cfg(&cfg) == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    fx_in(&fx, 1, CX_OPEN);
    CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, fx.c[1].sid, CX_FEAT_TLS));
    CHECK_INT(fx.c[1].pauses, 0);
    /* white space between elements */
    memset(pad, ' ', 400);
    pad[400] = '\0';
    fx_in(&fx, 1, pad);
    CHECK_INT(fx.c[1].pauses, 1);
    CHECK(fx.c[1].paused);
    t0 = fx.now;
    CHECK_INT(srv_next_deadline(fx.srv), t0 + (strlen(CX_OPEN) + 400 - 300) * 10);
    CHECK_INT(stats().paused, 1);
    CHECK_INT(stats().shaper_pauses, 1);
    CHECK(fx_log_has(
        &fx, "n1 c1 client - from 127.0.0.1:40001 over its byte rate: not read for "
             "2370 ms"));
    fx_in(&fx, 1, part);
    CHECK_INT(fx.c[1].pauses, 1);
    CHECK_STR(fx_take(&fx, 1), "");
    fx.now = t0 + 2859;
    srv_tick(fx.srv, fx.now);
    CHECK(fx.c[1].paused);
    CHECK_INT(srv_next_deadline(fx.srv),
              t0 + (strlen(CX_OPEN) + 400 + strlen(part) - 300) * 10);
    fx.now = t0 + 2860;
    srv_tick(fx.srv, fx.now);
    CHECK(!fx.c[1].paused);
    CHECK_INT(fx.c[1].resumes, 1);
    CHECK_INT(stats().paused, 0);
    /* the rest of the element: nothing was lost */
    fx_in(&fx, 1, "/>");
    CHECK_STR(fx_take(&fx, 1), CX_PROCEED);
    fx_next_sid(&fx, sid);
    srv_conn_secured(fx.srv, 1, &cx_tls13, fx.now);
    fx.now += 10000; /* a full budget */
    fx_in(&fx, 1, CX_OPEN);
    CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, sid, CX_FEAT_SASL));
    /* the SASL exchange is larger than the pre-auth burst: pauses, but
     * every answer comes (the transcript feeds on regardless) */
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "alice", "pa"));
    CHECK_INT(fx.c[1].pauses, 2);
    fx.now += 100000;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(fx.c[1].resumes, 2);
    /* authenticated: 100 KB of burst, 2 KB pass without a pause */
    REQUIRE(cx_bind(&fx, 1, "alice", "a"));
    {
        char msg[2100];
        memset(msg, 'x', sizeof msg);
        memcpy(msg, "<message to='alice@example.com/a'><body>", 40);
        snprintf(msg + 2000, 100, "</body></message>");
        fx_in(&fx, 1, msg);
        CHECK(strstr(fx_take(&fx, 1), "xxx</body></message>") != NULL);
    }
    CHECK_INT(fx.c[1].pauses, 2);
    /* a session closed while paused reads again first (its close needs
     * it) */
    fx.now += 100000;
    {
        static char big[120000];
        memset(big, ' ', sizeof big - 1);
        fx_in(&fx, 1, big);
    }
    CHECK_INT(fx.c[1].pauses, 3);
    fx_in(&fx, 1, "</stream:stream>");
    CHECK_INT(fx.c[1].resumes, 3);
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_INT(stats().paused, 0);
    CHECK_INT(stats().shaper_pauses, 3);
    down();
}

/* A WebSocket connection is shaped the same way (the HTTP upgrade counts
 * before authentication), and answered in full. */
static void test_shaper_websocket(void)
{
    static const char req[] = "GET /xmpp-websocket HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Protocol: xmpp\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.c2s_preauth_rate = 100;
    cfg.c2s_preauth_burst = 100;
    cfg.keepalive_ms = 0;
    REQUIRE(up_cfg(&cfg) == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_WEBSOCKET_TLS);
    srv_conn_secured(fx.srv, 1, &cx_tls13, fx.now);
    fx_in(&fx, 1, req);
    CHECK(strncmp(fx_take(&fx, 1), "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
    CHECK_INT(fx.c[1].pauses, 1);
    fx.now += (sizeof req - 1 - 100) * 10;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(fx.c[1].resumes, 1);
    down();
}

/* Logins and failures in the last minute, as time passes; the blocked
 * addresses and accounts, newest first. */
static void test_minute_counts_and_blocked(void)
{
    struct srv_config cfg;
    struct srv_blocked b[4];
    struct cx_scram x;
    char sf[512];

    srv_config_default(&cfg);
    cfg.login_delay_ms = 10;
    cfg.login_delay_max_ms = 10;
    cfg.login_block_after = 1;
    cfg.login_block_ms = 100000;
    cfg.auth_timeout_ms = 0;
    cfg.keepalive_ms = 0;
    REQUIRE(up_cfg(&cfg) == 0);
    fx.now = 1000000;
    REQUIRE(cx_login(&fx, 1, "alice", "pa", "a"));
    CHECK_INT(stats().logins_minute, 1);
    fx.now += 30000;
    srv_tick(fx.srv, fx.now);
    REQUIRE(cx_login(&fx, 2, "alice", "pa", "b"));
    CHECK_INT(stats().logins_minute, 2);
    /* a failure for bob: the address and bob are blocked (after 1) */
    REQUIRE(cx_tls(&fx, 3));
    {
        unsigned char rnd0 = fx.rnd;
        cx_auth(&fx, 3, &x, "SCRAM-SHA-1", "n,,", "bob");
        REQUIRE(cx_challenge(&fx, 3, rnd0, true, sf, sizeof sf));
        cx_final(&fx, 3, &x, sf, "nope", NULL, 0);
        CHECK_STR(fx_take(&fx, 3), CX_FAILURE("not-authorized"));
    }
    CHECK_INT(stats().login_failures_minute, 1);
    CHECK_INT(stats().blocked, 2);
    CHECK_INT(stats().throttled, 2);
    CHECK_INT(srv_get_blocked(fx.srv, b, 4), 2);
    /* another address fails later for carol: newest first */
    fx.now += 1000;
    {
        /* a connection from another address (fx peers are 127.0.0.1):
         * open it by hand */
        CHECK_INT(
            srv_conn_open(fx.srv, 5, SRV_LISTENER_CLIENT, "[2001:db8::7]:4000", fx.now),
            0);
        srv_conn_secured(fx.srv, 5, &cx_tls13, fx.now);
        fx_in(&fx, 5, CX_OPEN);
        fx_take(&fx, 5);
        unsigned char rnd0 = fx.rnd;
        cx_auth(&fx, 5, &x, "SCRAM-SHA-1", "n,,", "carol");
        REQUIRE(cx_challenge(&fx, 5, rnd0, false, sf, sizeof sf));
        cx_final(&fx, 5, &x, sf, "nope", NULL, 0);
        CHECK_STR(fx_take(&fx, 5), CX_FAILURE("not-authorized"));
    }
    CHECK_INT(stats().blocked, 4);
    CHECK_INT(srv_get_blocked(fx.srv, b, 2), 2);
    /* the two of the later failure first (their order between them is
     * the table's) */
    CHECK(strcmp(b[0].name, "2001:db8::7") == 0 || strcmp(b[1].name, "2001:db8::7") == 0);
    CHECK(strcmp(b[0].name, "carol") == 0 || strcmp(b[1].name, "carol") == 0);
    CHECK(b[0].account != b[1].account);
    CHECK_INT(b[0].until_ms, fx.now + 100000);
    CHECK_INT(srv_get_blocked(fx.srv, b, 4), 4);
    CHECK(strcmp(b[2].name, "127.0.0.1") == 0 || strcmp(b[3].name, "127.0.0.1") == 0);
    CHECK(strcmp(b[2].name, "bob") == 0 || strcmp(b[3].name, "bob") == 0);
    CHECK_INT(stats().login_failures_minute, 2);
    /* 30 s after the first login, 31 s more: only the second is within
     * the minute */
    fx.now += 30000;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(stats().logins_minute, 1);
    CHECK_INT(stats().login_failures_minute, 2);
    fx.now += 60000;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(stats().logins_minute, 0);
    CHECK_INT(stats().login_failures_minute, 0);
    CHECK_INT(stats().logins, 2);
    CHECK_INT(stats().login_failures, 2);
    /* the blocks end */
    fx.now += 100000;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(srv_get_blocked(fx.srv, b, 4), 0);
    down();
}

TL_MAIN(T(test_max_sessions), T(test_version), T(test_stream_to), T(test_shaper),
        T(test_shaper_websocket), T(test_minute_counts_and_blocked))
