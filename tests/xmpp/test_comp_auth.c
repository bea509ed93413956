/* test_comp_auth.c: transcripts of the XEP-0114 component stream: header,
 * handshake, refusals, framer errors, conflict, secret changes, timeouts,
 * shutdown. */
#include "xmpp/fx.h"

static struct fx fx;

static void test_handshake_ok(void)
{
    char hex[41];
    struct srv_stats st;

    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    CHECK_STR(fx.c[1].sid, "000102030405060708090a0b0c0d0e0f");
    fx_in(&fx, 1, FX_OPEN("cb1.example.com"));
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "cb1.example.com", NULL));
    fx_digest(fx.c[1].sid, "secret1", hex);
    fx_handshake(&fx, 1, "secret1");
    CHECK_STR(fx_take(&fx, 1), "<handshake/>");
    CHECK_INT(fx.c[1].closes, 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 1);
    CHECK_INT(st.components, 1);
    CHECK_INT(st.auth_failures, 0);
    CHECK(fx_log_has(&fx, "n1 c1 component cb1.example.com authenticated from "
                          "127.0.0.1:40001"));
    CHECK(!fx_log_has(&fx, "secret1"));
    CHECK(!fx_log_has(&fx, hex));
    fx_stop(&fx);
}

/* The same transcript, every byte its own read; upper-case hex accepted. */
static void test_handshake_bytewise(void)
{
    char hex[41], msg[128];

    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in_bytewise(&fx, 1, FX_OPEN("CB1.Example.COM"));
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "cb1.example.com", NULL));
    fx_digest(fx.c[1].sid, "secret1", hex);
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(msg, sizeof msg, "<handshake>\n%s </handshake>", hex);
    fx_in_bytewise(&fx, 1, msg);
    CHECK_STR(fx_take(&fx, 1), "<handshake/>");
    CHECK_INT(fx.c[1].closes, 0);
    fx_stop(&fx);
}

static void test_wrong_secret(void)
{
    struct srv_stats st;
    char hex[41];

    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1, FX_OPEN("cb1.example.com"));
    fx_digest(fx.c[1].sid, "secret2", hex);
    fx_handshake(&fx, 1, "secret2");
    CHECK_STR(fx_take(&fx, 1),
              fx_hdr(&fx, 1, "cb1.example.com", FX_ERR("not-authorized")));
    CHECK_INT(fx.c[1].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.auth_failures, 1);
    CHECK_INT(st.components, 0);
    CHECK_INT(st.conns, 0);
    CHECK(fx_log_has(&fx, "n1 c1 component cb1.example.com authentication failed from "
                          "127.0.0.1:40001: wrong secret (not-authorized)"));
    CHECK(!fx_log_has(&fx, "secret1"));
    CHECK(!fx_log_has(&fx, "secret2"));
    CHECK(!fx_log_has(&fx, hex));
    /* Input after the close is ignored. */
    fx_in(&fx, 1, "<handshake/>");
    CHECK_STR(fx_take(&fx, 1), "");
    fx_stop(&fx);
}

static void test_garbage_handshake(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1, FX_OPEN("cb1.example.com") "<handshake>nope</handshake>");
    CHECK_STR(fx_take(&fx, 1),
              fx_hdr(&fx, 1, "cb1.example.com", FX_ERR("not-authorized")));
    CHECK(fx_log_has(&fx, "malformed handshake (not-authorized)"));
    CHECK(!fx_log_has(&fx, "stream error"));
    fx_stop(&fx);
}

static void test_unknown_name(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1, FX_OPEN("cb9.example.com"));
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "cb9.example.com", NULL));
    fx_handshake(&fx, 1, "secret1");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("not-authorized"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK(fx_log_has(&fx, "n1 c1 component cb9.example.com authentication failed from "
                          "127.0.0.1:40001: unknown call bridge (not-authorized)"));
    fx_stop(&fx);
}

/* Stanzas before the handshake: not-authorized (RFC 6120 §4.9.3.12). */
static void test_stanza_before_handshake(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1,
          FX_OPEN("cb1.example.com") "<message from='cb1.example.com' "
                                     "to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 1),
              fx_hdr(&fx, 1, "cb1.example.com", FX_ERR("not-authorized")));
    CHECK_INT(fx.c[1].closes, 1);
    fx_stop(&fx);
}

static void test_host_unknown(void)
{
    static const char *const tos[] = {
        FX_OPEN("other.org"),
        FX_OPEN("example.com"),
        FX_OPEN("a.cb1.example.com"),
        FX_OPEN("user@cb1.example.com"),
        FX_OPEN("xcb1example.com"),
        "<stream:stream xmlns='jabber:component:accept' "
        "xmlns:stream='http://etherx.jabber.org/streams'>",
    };

    REQUIRE(fx_start(&fx, NULL) == 0);
    for (unsigned i = 0; i < sizeof tos / sizeof tos[0]; i++) {
        fx_open(&fx, i + 1);
        fx_in(&fx, i + 1, tos[i]);
        CHECK_STR(fx_take(&fx, i + 1),
                  fx_hdr(&fx, i + 1, "example.com", FX_ERR("host-unknown")));
        CHECK_INT(fx.c[i + 1].closes, 1);
    }
    fx_stop(&fx);
}

static void test_invalid_namespace(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1,
          "<stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com'>");
    CHECK_STR(fx_take(&fx, 1),
              fx_hdr(&fx, 1, "example.com", FX_ERR("invalid-namespace")));
    CHECK_INT(fx.c[1].closes, 1);
    /* no content namespace declared at all */
    fx_open(&fx, 2);
    fx_in(&fx, 2,
          "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
          "to='cb1.example.com'>");
    CHECK_STR(fx_take(&fx, 2),
              fx_hdr(&fx, 2, "example.com", FX_ERR("invalid-namespace")));
    /* a stanza that declares jabber:client inside a component stream */
    REQUIRE(fx_auth(&fx, 3, "cb1", "secret1"));
    fx_in(&fx, 3,
          "<message xmlns='jabber:client' from='cb1.example.com' to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 3), FX_ERR("invalid-namespace"));
    fx_stop(&fx);
}

static void test_malformed_xml(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    fx_in(&fx, 1,
          "<message from='cb1.example.com' to='cb2.example.com'><body></message>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("not-well-formed"));
    CHECK_INT(fx.c[1].closes, 1);
    /* Garbage instead of a header: our header first (RFC 6120 §4.9.1.2). */
    fx_open(&fx, 2);
    fx_in(&fx, 2, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' <<");
    CHECK_STR(fx_take(&fx, 2), fx_hdr(&fx, 2, "example.com", FX_ERR("not-well-formed")));
    CHECK_INT(fx.c[2].closes, 1);
    fx_stop(&fx);
}

static void test_oversized_stanza(void)
{
    struct srv_config cfg;
    static char big[4096];

    srv_config_default(&cfg);
    cfg.limits.max_stanza_bytes = 1024;
    REQUIRE(fx_start(&fx, &cfg) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    strcpy(big, "<message from='cb1.example.com' to='cb2.example.com'><body>");
    memset(big + strlen(big), 'x', 2000);
    strcat(big, "</body></message>");
    fx_in(&fx, 1, big);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("policy-violation"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_STR(fx_take(&fx, 2), "");
    fx_stop(&fx);
}

static void test_billion_laughs(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1,
          "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
          "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
          "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>]>"
          "<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com'>&lol2;");
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "example.com", FX_ERR("restricted-xml")));
    CHECK_INT(fx.c[1].closes, 1);
    /* XXE: an external entity never gets resolved */
    fx_open(&fx, 2);
    fx_in(&fx, 2,
          "<?xml version='1.0'?><!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
          "<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com'>&xxe;");
    CHECK_STR(fx_take(&fx, 2), fx_hdr(&fx, 2, "example.com", FX_ERR("restricted-xml")));
    CHECK_INT(fx.c[2].closes, 1);
    /* an entity reference inside a stanza of an open stream */
    REQUIRE(fx_auth(&fx, 3, "cb1", "secret1"));
    fx_in(&fx, 3, "<message from='cb1.example.com' to='cb2.example.com'>&lol;</message>");
    CHECK_STR(fx_take(&fx, 3), FX_ERR("restricted-xml"));
    CHECK_INT(fx.c[3].closes, 1);
    fx_stop(&fx);
}

/* Nesting deeper than max_depth: policy-violation (RFC 6120 §4.9.3.18). */
static void test_too_deep(void)
{
    struct srv_config cfg;
    static char deep[1024];

    srv_config_default(&cfg);
    cfg.limits.max_depth = 8;
    REQUIRE(fx_start(&fx, &cfg) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    strcpy(deep, "<message from='cb1.example.com' to='cb2.example.com'>");
    for (int i = 0; i < 20; i++)
        strcat(deep, "<x>");
    fx_in(&fx, 1, deep);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("policy-violation"));
    CHECK_INT(fx.c[1].closes, 1);
    fx_stop(&fx);
}

/* DESIGN: a call bridge reconnects while its old session looks alive; the new
 * one wins, the old one gets conflict. */
static void test_conflict_on_reconnect(void)
{
    struct srv_stats st;

    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    REQUIRE(fx_auth(&fx, 3, "cb1", "secret1"));
    CHECK_STR(fx_take(&fx, 1), FX_ERR("conflict"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_INT(fx.c[3].closes, 0);
    CHECK(fx_log_has(&fx, "n1 c1 stream error conflict: replaced by c3 (component "
                          "cb1.example.com, peer 127.0.0.1:40001)"));
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.components, 2);
    CHECK_INT(st.conns, 2);
    /* Traffic for cb1 now goes to the new session. */
    fx_in(&fx, 2, "<message from='cb2.example.com' to='cb1.example.com'/>");
    CHECK_STR(fx_take(&fx, 3), "<message from='cb2.example.com' to='cb1.example.com'/>");
    CHECK_STR(fx_take(&fx, 1), "");
    fx_stop(&fx);
}

static void test_auth_timeout(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1); /* says nothing at all */
    fx.now = 500;
    fx_open(&fx, 2);
    fx_in(&fx, 2, FX_OPEN("cb1.example.com"));
    fx_take(&fx, 2);
    CHECK_INT(srv_next_deadline(fx.srv), 10000);
    fx.now = 9999;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_INT(fx.c[1].closes, 0);
    fx.now = 10000;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(fx_take(&fx, 1),
              fx_hdr(&fx, 1, "example.com", FX_ERR("connection-timeout")));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_INT(fx.c[2].closes, 0);
    CHECK_INT(srv_next_deadline(fx.srv), 10500);
    fx.now = 10500;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(fx_take(&fx, 2), FX_ERR("connection-timeout"));
    CHECK_INT(fx.c[2].closes, 1);
    CHECK(srv_next_deadline(fx.srv) == SRV_NO_DEADLINE);
    fx_stop(&fx);
}

static void test_secret_change_closes(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    /* The same secret again (a reload) changes nothing. */
    CHECK_INT(srv_set_callbridge(fx.srv, "cb1", (const unsigned char *)"secret1", 7), 0);
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_INT(fx.c[1].closes, 0);
    CHECK_INT(srv_set_callbridge(fx.srv, "CB1", (const unsigned char *)"newsecret", 9),
              0);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("not-authorized"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK(!fx_log_has(&fx, "newsecret"));
    /* The old secret no longer works, the new one does. */
    fx_open(&fx, 2);
    fx_in(&fx, 2, FX_OPEN("cb1.example.com"));
    fx_handshake(&fx, 2, "secret1");
    CHECK_STR(fx_take(&fx, 2),
              fx_hdr(&fx, 2, "cb1.example.com", FX_ERR("not-authorized")));
    REQUIRE(fx_auth(&fx, 3, "cb1", "newsecret"));
    CHECK_INT(srv_set_callbridge(fx.srv, "bad.name", (const unsigned char *)"x", 1),
              XE_INVAL);
    CHECK_INT(srv_set_callbridge(fx.srv, "cb3", (const unsigned char *)"x", 0), XE_INVAL);
    fx_stop(&fx);
}

static void test_delete_closes(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    CHECK_INT(srv_del_callbridge(fx.srv, "cb1"), 0);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("host-gone"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_INT(fx.c[2].closes, 0);
    CHECK_INT(srv_del_callbridge(fx.srv, "cb1"), XE_NOTFOUND);
    fx_open(&fx, 3);
    fx_in(&fx, 3, FX_OPEN("cb1.example.com"));
    fx_handshake(&fx, 3, "secret1");
    CHECK_STR(fx_take(&fx, 3),
              fx_hdr(&fx, 3, "cb1.example.com", FX_ERR("not-authorized")));
    fx_stop(&fx);
}

static void test_shutdown(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    fx_open(&fx, 2);
    fx_open(&fx, 3);
    fx_in(&fx, 3, FX_OPEN("cb2.example.com"));
    fx_take(&fx, 3);
    srv_shutdown(fx.srv);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("system-shutdown"));
    CHECK_STR(fx_take(&fx, 2), fx_hdr(&fx, 2, "example.com", FX_ERR("system-shutdown")));
    CHECK_STR(fx_take(&fx, 3), FX_ERR("system-shutdown"));
    for (int i = 1; i <= 3; i++)
        CHECK_INT(fx.c[i].closes, 1);
    CHECK(srv_next_deadline(fx.srv) == SRV_NO_DEADLINE);
    fx_stop(&fx);
}

/* RFC 6120 §4.4: the peer closes its stream, we close ours. */
static void test_peer_closes(void)
{
    struct srv_stats st;

    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    fx_in(&fx, 1, "</stream:stream>");
    CHECK_STR(fx_take(&fx, 1), "</stream:stream>");
    CHECK_INT(fx.c[1].closes, 1);
    /* The edge reports a dropped connection: no output, session gone. */
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    srv_conn_closed(fx.srv, 2, fx.now);
    CHECK_STR(fx_take(&fx, 2), "");
    CHECK_INT(fx.c[2].closes, 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 0);
    CHECK_INT(st.components, 0);
    CHECK_INT(srv_conn_open(fx.srv, 5, SRV_LISTENER_COMPONENT, "x", 0), 0);
    CHECK_INT(srv_conn_open(fx.srv, 5, SRV_LISTENER_COMPONENT, "x", 0), XE_EXISTS);
    fx_stop(&fx);
}

static void test_new_refuses(void)
{
    struct srv_config cfg;
    struct srv_env env = {0};
    struct srv *srv = NULL;

    srv_config_default(&cfg);
    env.send = fx_send;
    env.close = fx_close;
    env.random = fx_random;
    env.ud = &fx;
    CHECK_INT(srv_new(&cfg, &env, &srv), XE_INVAL); /* no domain */
    cfg.domain = "bad domain";
    CHECK_INT(srv_new(&cfg, &env, &srv), XE_INVAL);
    cfg.domain = "user@example.com";
    CHECK_INT(srv_new(&cfg, &env, &srv), XE_INVAL);
    cfg.domain = "Example.COM";
    env.random = NULL;
    CHECK_INT(srv_new(&cfg, &env, &srv), XE_INVAL);
    env.random = fx_random;
    REQUIRE(srv_new(&cfg, &env, &srv) == 0);
    CHECK_INT(srv_conn_open(srv, 1, (enum srv_listener)7, "x", 0), XE_UNSUPPORTED);
    CHECK(srv_next_deadline(srv) == SRV_NO_DEADLINE);
    srv_free(srv);
}

TL_MAIN(T(test_new_refuses), T(test_handshake_ok), T(test_handshake_bytewise),
        T(test_wrong_secret), T(test_garbage_handshake), T(test_unknown_name),
        T(test_stanza_before_handshake), T(test_host_unknown), T(test_invalid_namespace),
        T(test_malformed_xml), T(test_oversized_stanza), T(test_billion_laughs),
        T(test_too_deep), T(test_conflict_on_reconnect), T(test_auth_timeout),
        T(test_secret_change_closes), T(test_delete_closes), T(test_shutdown),
        T(test_peer_closes))
