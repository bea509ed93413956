/* test_c2s_login.c: transcripts of a client login (RFC 6120): features
 * before and after STARTTLS, STARTTLS, SASL SCRAM-SHA-256 and -SHA-1 (the
 * client side computed independently, cx.h), every SASL failure of §6.5
 * that applies, PLAIN's rules, bind with and without a resource, the
 * session iq, and the stream errors of a bad header. */
#include "xmpp/cx.h"

static struct fx fx;
static struct cl_state *cl;

/* up starts srv with accounts alice/secret-a and bob/secret-b. */
static int up_cfg(const struct srv_config *cfg)
{
    if (fx_start(&fx, cfg) != 0 || cl_state_new(&cl) != 0 ||
        cx_add_user(cl, "alice", "secret-a") != 0 ||
        cx_add_user(cl, "bob", "secret-b") != 0)
        return -1;
    srv_set_accounts(fx.srv, cl);
    return 0;
}

static int up(void)
{
    return up_cfg(NULL);
}

static void down(void)
{
    fx_stop(&fx);
    cl_state_free(cl);
    cl = NULL;
}

static void test_login_scram_sha256(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "alice", "secret-a"));
    REQUIRE(cx_bind(&fx, 1, "alice", "phone"));
    /* RFC 3921 §3, kept for older clients: an empty result */
    fx_in(&fx, 1,
          "<iq type='set' id='s1'><session "
          "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    CHECK_STR(fx_take(&fx, 1), "<iq type='result' id='s1' from='example.com'/>");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.clients, 1);
    CHECK_INT(st.logins, 1);
    CHECK_INT(st.login_failures, 0);
    CHECK(fx_log_has(&fx, "n1 c1 client alice logged in from 127.0.0.1:40001 "
                          "(SCRAM-SHA-256)"));
    CHECK(fx_log_has(&fx, "n1 c1 client alice@example.com/phone bound"));
    CHECK(!fx_log_has(&fx, "secret-a"));
    CHECK_INT(fx.c[1].closes, 0);
    /* a clean close: ours answers theirs (RFC 6120 §4.4) */
    fx_in(&fx, 1, "</stream:stream>");
    CHECK_STR(fx_take(&fx, 1), "</stream:stream>");
    CHECK_INT(fx.c[1].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.clients, 0);
    down();
}

static void test_login_scram_sha1(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-1", "bob", "secret-b"));
    REQUIRE(cx_bind(&fx, 1, "bob", "desk"));
    CHECK(fx_log_has(&fx, "client bob logged in from 127.0.0.1:40001 (SCRAM-SHA-1)"));
    down();
}

/* The username is case-mapped (RFC 8265 UsernameCaseMapped; ASCII only
 * until precis lands). */
static void test_login_case_mapped(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "Alice", "secret-a"));
    REQUIRE(cx_bind(&fx, 1, "alice", "r"));
    down();
}

/* RFC 6120 §7.6: a server-made resource when the client gives none. */
static void test_bind_generated_resource(void)
{
    char want[512], res[17];

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "alice", "secret-a"));
    for (int i = 0; i < 8; i++)
        snprintf(res + 2 * i, 3, "%02x", (unsigned char)(fx.rnd + i));
    fx_in(&fx, 1,
          "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    snprintf(want, sizeof want,
             "<iq type='result' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<jid>alice@example.com/%s</jid></bind></iq>",
             res);
    CHECK_STR(fx_take(&fx, 1), want);
    /* a second bind on the same stream is refused */
    fx_in(&fx, 1,
          "<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
          "<resource>x</resource></bind></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='b3'><bind "
              "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>x</resource></bind>"
              "<error type='cancel'><not-allowed "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    down();
}

/* RFC 6120 §7.7.2.1: a resourcepart that cannot be prepared (a control
 * character) is bad-request; the stream stays. */
static void test_bind_bad_resource(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "alice", "secret-a"));
    fx_in(&fx, 1,
          "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
          "<resource>a&#x9;b</resource></bind></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              "<resource>a\tb</resource></bind><error type='modify'><bad-request "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    CHECK_INT(fx.c[1].closes, 0);
    REQUIRE(cx_bind(&fx, 1, "alice", "r"));
    down();
}

/* A wrong password: not-authorized (RFC 6120 §6.5.10), logged with the
 * peer and never the password; later failures are answered after growing
 * delays; the third failure on a connection closes the stream with
 * policy-violation (§6.4.5). */
static void test_wrong_password(void)
{
    struct cx_scram x;
    struct srv_stats st;
    char sf[512];

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    for (int i = 0; i < 2; i++) {
        unsigned char rnd0 = fx.rnd;
        cx_auth(&fx, 1, &x, "SCRAM-SHA-256", "n,,", "alice");
        REQUIRE(cx_challenge(&fx, 1, rnd0, true, sf, sizeof sf));
        cx_final(&fx, 1, &x, sf, "wrong", NULL, 0);
        if (i == 0) {
            /* the first failure is answered at once */
            CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized"));
            continue;
        }
        /* the second after 500 ms (login throttling, srv_throttle.c),
         * whatever the client sends meanwhile */
        CHECK_STR(fx_take(&fx, 1), "");
        CHECK_INT(srv_next_deadline(fx.srv), fx.now + 500);
        fx_in(&fx, 1, "<auth xmlns='" CX_NS_SASL "' mechanism='SCRAM-SHA-1'/>");
        fx.now += 499;
        srv_tick(fx.srv, fx.now);
        CHECK_STR(fx_take(&fx, 1), "");
        fx.now += 1;
        srv_tick(fx.srv, fx.now);
        /* the answer, then the <auth/> that waited: an empty challenge */
        CHECK_STR(fx_take(&fx, 1),
                  CX_FAILURE("not-authorized") "<challenge xmlns='" CX_NS_SASL "'/>");
    }
    /* the third failure on this connection closes it (RFC 6120 §6.4.5) */
    fx_in(&fx, 1, "<abort xmlns='" CX_NS_SASL "'/>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("aborted") FX_ERR("policy-violation"));
    CHECK_INT(fx.c[1].closes, 1);
    /* a new connection: the third failure in a row for this address and
     * this account waits 1000 ms */
    REQUIRE(cx_tls(&fx, 2));
    {
        unsigned char rnd0 = fx.rnd;
        cx_auth(&fx, 2, &x, "SCRAM-SHA-256", "n,,", "alice");
        REQUIRE(cx_challenge(&fx, 2, rnd0, true, sf, sizeof sf));
        cx_final(&fx, 2, &x, sf, "wrong", NULL, 0);
        CHECK_STR(fx_take(&fx, 2), "");
        fx.now += 1000;
        srv_tick(fx.srv, fx.now);
        CHECK_STR(fx_take(&fx, 2), CX_FAILURE("not-authorized"));
    }
    CHECK_INT(fx.c[1].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.login_failures, 4);
    CHECK_INT(st.logins, 0);
    /* a success clears the counts: the next failure is answered at once */
    REQUIRE(cx_scram_ok(&fx, 2, "SCRAM-SHA-256", "alice", "secret-a"));
    REQUIRE(cx_tls(&fx, 3));
    {
        unsigned char rnd0 = fx.rnd;
        cx_auth(&fx, 3, &x, "SCRAM-SHA-256", "n,,", "alice");
        REQUIRE(cx_challenge(&fx, 3, rnd0, true, sf, sizeof sf));
        cx_final(&fx, 3, &x, sf, "wrong", NULL, 0);
        CHECK_STR(fx_take(&fx, 3), CX_FAILURE("not-authorized"));
    }
    CHECK(fx_log_has(&fx, "n1 c1 client login failed from 127.0.0.1:40001: user alice, "
                          "SCRAM-SHA-256: wrong password or binding (not-authorized)"));
    CHECK(!fx_log_has(&fx, "wrong\n") && !fx_log_has(&fx, "secret-a"));
    down();
}

/* After login_block_after failures the address is refused
 * (temporary-auth-failure, RFC 6120 §6.5.11) for login_block_ms; then it
 * may try again. */
/* up_blocking starts srv with a throttle that blocks after 2 failures (10
 * ms apart) for a minute. */
static int up_blocking(void)
{
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.login_delay_ms = 10;
    cfg.login_delay_max_ms = 10;
    cfg.login_block_after = 2;
    cfg.login_block_ms = 60000;
    cfg.auth_timeout_ms = 0;
    return up_cfg(&cfg);
}

/* fail_twice: two wrong SCRAM-SHA-1 passwords for bob on connection 1,
 * each answered not-authorized after its delay. */
static void fail_twice(void)
{
    struct cx_scram x;
    char sf[512];

    REQUIRE(cx_tls(&fx, 1));
    for (int i = 0; i < 2; i++) {
        unsigned char rnd0 = fx.rnd;
        cx_auth(&fx, 1, &x, "SCRAM-SHA-1", "n,,", "bob");
        REQUIRE(cx_challenge(&fx, 1, rnd0, true, sf, sizeof sf));
        cx_final(&fx, 1, &x, sf, "nope", NULL, 0);
        fx.now += 10;
        srv_tick(fx.srv, fx.now);
        CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized"));
    }
}

static void test_login_blocked(void)
{
    struct srv_stats st;
    struct cx_scram x;

    REQUIRE(up_blocking() == 0);
    fail_twice();
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.blocked, 2); /* the address and the account */
    REQUIRE(cx_tls(&fx, 2));
    cx_auth(&fx, 2, &x, "SCRAM-SHA-256", "n,,", "alice");
    CHECK_STR(fx_take(&fx, 2), CX_FAILURE("temporary-auth-failure"));
    CHECK(fx_log_has(&fx, "blocked after failed logins (temporary-auth-failure)"));
    fx.now += 60000;
    srv_tick(fx.srv, fx.now);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.blocked, 0);
    CHECK_INT(st.login_refused, 1);
    REQUIRE(cx_scram_ok(&fx, 2, "SCRAM-SHA-256", "alice", "secret-a"));
    down();
}

/* The throttle's table of counts is bounded (SRV_THR_MAX keys); failures
 * from many addresses (an IPv6 attacker has 2^64 of them) fill it.  An
 * account is still counted then, so guesses at one account still meet
 * the block: accounts are as many as the cluster holds, and only the
 * addresses' share of the table is capped.  (Here 16,384 failures of
 * other addresses come from the cluster's log, as on a member.) */
static void test_login_throttle_table_full(void)
{
    struct cx_scram x;
    char addr[32];

    REQUIRE(up_blocking() == 0);
    for (unsigned i = 0; i < 16384; i++) {
        snprintf(addr, sizeof addr, "2001:db8::%x:%x", i >> 16, i & 0xffff);
        srv_login_applied(fx.srv, 7 /* another member */, CL_LOGIN_ADDRESS, addr, true,
                          fx.now);
    }
    fail_twice();
    /* bob's account is blocked: his own password is refused */
    REQUIRE(cx_tls(&fx, 2));
    cx_auth(&fx, 2, &x, "SCRAM-SHA-256", "n,,", "bob");
    CHECK_STR(fx_take(&fx, 2), CX_FAILURE("temporary-auth-failure"));
    down();
}

/* An unknown user gets a challenge like any other (no account is
 * revealed), then not-authorized. */
static void test_unknown_user(void)
{
    struct cx_scram x;
    char sf[512];
    unsigned char rnd0;

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    rnd0 = fx.rnd;
    cx_auth(&fx, 1, &x, "SCRAM-SHA-256", "n,,", "mallory");
    REQUIRE(cx_challenge(&fx, 1, rnd0, false, sf, sizeof sf));
    CHECK(strstr(sf, ",s=") != NULL && strstr(sf, ",i=") != NULL);
    cx_final(&fx, 1, &x, sf, "guess", NULL, 0);
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized"));
    CHECK(fx_log_has(&fx, "user mallory, SCRAM-SHA-256: unknown user (not-authorized)"));
    CHECK_INT(fx.c[1].closes, 0);
    /* the same name sees the same salt again */
    {
        char sf2[512], *a = strstr(sf, ",s="), *b;
        rnd0 = fx.rnd;
        cx_auth(&fx, 1, &x, "SCRAM-SHA-256", "n,,", "mallory");
        REQUIRE(cx_challenge(&fx, 1, rnd0, false, sf2, sizeof sf2));
        b = strstr(sf2, ",s=");
        CHECK(a != NULL && b != NULL && strncmp(a, b, 20) == 0);
    }
    down();
}

/* SCRAM-SHA-256-PLUS with tls-exporter (RFC 9266) and a downgrade: a
 * client that says 'y' (binding supported, not offered) while the server
 * offered -PLUS saw a stripped list (RFC 5802 §6). */
static void test_plus_and_downgrade(void)
{
    struct cx_scram x;
    char sf[512], want[256];
    unsigned char rnd0;

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    cx_auth(&fx, 1, &x, "SCRAM-SHA-256", "y,,", "alice");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized"));
    rnd0 = fx.rnd;
    cx_auth(&fx, 1, &x, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "alice");
    REQUIRE(cx_challenge(&fx, 1, rnd0, true, sf, sizeof sf));
    cx_final(&fx, 1, &x, sf, "secret-a", cx_tls13.exporter, 32);
    snprintf(want, sizeof want, "<success xmlns='" CX_NS_SASL "'>%s</success>",
             x.server_sig);
    CHECK_STR(fx_take(&fx, 1), want);
    CHECK(fx_log_has(&fx, "client alice logged in from 127.0.0.1:40001 "
                          "(SCRAM-SHA-256-PLUS)"));
    down();
}

/* XEP-0440 §4: on TLS 1.3 tls-server-end-point is offered beside
 * tls-exporter and works too. */
static void test_plus_end_point(void)
{
    struct cx_scram x;
    char sf[512], want[256];
    unsigned char rnd0;

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    rnd0 = fx.rnd;
    cx_auth(&fx, 1, &x, "SCRAM-SHA-1-PLUS", "p=tls-server-end-point,,", "alice");
    REQUIRE(cx_challenge(&fx, 1, rnd0, true, sf, sizeof sf));
    cx_final(&fx, 1, &x, sf, "secret-a", cx_tls13.endpoint, 32);
    snprintf(want, sizeof want, "<success xmlns='" CX_NS_SASL "'>%s</success>",
             x.server_sig);
    CHECK_STR(fx_take(&fx, 1), want);
    down();
}

/* A client that binds only with tls-unique (slixmpp 1.8), which TLS 1.3
 * does not have (RFC 9266 §1): its -PLUS attempts name a type this server
 * does not offer, are refused at once and not throttled, and the 'y' it
 * then sends is accepted: it cannot bind here, nothing was stripped. */
static void test_unsupported_type_then_y(void)
{
    struct cx_scram x;
    char sf[512], want[256];
    unsigned char rnd0;

    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    cx_auth(&fx, 1, &x, "SCRAM-SHA-256-PLUS", "p=tls-unique,,", "alice");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized"));
    cx_auth(&fx, 1, &x, "SCRAM-SHA-1-PLUS", "p=tls-unique,,", "alice");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized")); /* not held back */
    CHECK(fx_log_has(&fx, "unsupported channel-binding type"));
    rnd0 = fx.rnd;
    cx_auth(&fx, 1, &x, "SCRAM-SHA-256", "y,,", "alice");
    REQUIRE(cx_challenge(&fx, 1, rnd0, false, sf, sizeof sf));
    cx_final(&fx, 1, &x, sf, "secret-a", NULL, 0);
    snprintf(want, sizeof want, "<success xmlns='" CX_NS_SASL "'>%s</success>",
             x.server_sig);
    CHECK_STR(fx_take(&fx, 1), want);
    /* Another connection that says 'y' without having tried: refused. */
    REQUIRE(cx_tls(&fx, 2));
    cx_auth(&fx, 2, &x, "SCRAM-SHA-256", "y,,", "alice");
    CHECK_STR(fx_take(&fx, 2), CX_FAILURE("not-authorized"));
    down();
}

/* Mechanisms: one not offered is invalid-mechanism (§6.5.7), PLAIN is
 * off by default; <abort/> is aborted (§6.5.1); bad base64 is
 * incorrect-encoding (§6.5.5). */
static void test_sasl_failures(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_tls(&fx, 1));
    fx_in(&fx, 1, "<auth xmlns='" CX_NS_SASL "' mechanism='PLAIN'>AGFsaWNlAHg=</auth>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("invalid-mechanism"));
    fx_in(&fx, 1, "<auth xmlns='" CX_NS_SASL "' mechanism='SCRAM-SHA-256'>!!</auth>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("incorrect-encoding"));
    CHECK_INT(fx.c[1].closes, 0);
    /* no initial response: an empty challenge, then abort */
    fx_in(&fx, 1, "<auth xmlns='" CX_NS_SASL "' mechanism='SCRAM-SHA-1'/>");
    CHECK_STR(fx_take(&fx, 1), "<challenge xmlns='" CX_NS_SASL "'/>");
    fx_in(&fx, 1, "<abort xmlns='" CX_NS_SASL "'/>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("aborted") FX_ERR("policy-violation"));
    CHECK_INT(fx.c[1].closes, 1);
    down();
}

/* Before TLS (required by default): only STARTTLS is offered; SASL and
 * stanzas are refused. */
static void test_before_tls(void)
{
    REQUIRE(up() == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    fx_in(&fx, 1, CX_OPEN);
    CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, fx.c[1].sid, CX_FEAT_TLS));
    fx_in(&fx, 1,
          "<auth xmlns='" CX_NS_SASL
          "' mechanism='SCRAM-SHA-256'>biwsbj1hLHI9eA==</auth>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("encryption-required"));
    fx_in(&fx, 1, "<message to='bob@example.com'><body>x</body></message>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("not-authorized"));
    CHECK_INT(fx.c[1].closes, 1);
    down();
}

/* TLS optional: STARTTLS and SCRAM offered in the clear, never PLAIN;
 * PLAIN under TLS once enabled. */
static void test_plain_rules(void)
{
    struct srv_config cfg;
    char sid[33];

    srv_config_default(&cfg);
    cfg.c2s_tls_required = false;
    cfg.sasl_plain = true;
    REQUIRE(up_cfg(&cfg) == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    fx_in(&fx, 1, CX_OPEN);
    CHECK_STR(fx_take(&fx, 1),
              cx_hdr(&fx, fx.c[1].sid,
                     "<stream:features><starttls "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms "
                     "xmlns='" CX_NS_SASL "'>" CX_MECHS
                     "</mechanisms></stream:features>"));
    /* "\0alice\0secret-a" */
    fx_in(&fx, 1,
          "<auth xmlns='" CX_NS_SASL "' mechanism='PLAIN'>AGFsaWNlAHNlY3JldC1h</auth>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("encryption-required"));
    fx_in(&fx, 1, CX_STARTTLS);
    CHECK_STR(fx_take(&fx, 1), CX_PROCEED);
    fx_next_sid(&fx, sid);
    srv_conn_secured(fx.srv, 1, &cx_tls13, fx.now);
    fx_in(&fx, 1, CX_OPEN);
    CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, sid,
                                      "<stream:features><mechanisms xmlns='" CX_NS_SASL
                                      "'>" CX_MECHS_PLUS CX_MECHS
                                      "<mechanism>PLAIN</mechanism></mechanisms>" CX_CB
                                      "</stream:features>"));
    fx_in(&fx, 1,
          "<auth xmlns='" CX_NS_SASL "' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>");
    CHECK_STR(fx_take(&fx, 1), CX_FAILURE("not-authorized"));
    /* "alice@example.com\0alice\0secret-a": with its own bare JID as the
     * authorization identity */
    fx_in(&fx, 1,
          "<auth xmlns='" CX_NS_SASL
          "' mechanism='PLAIN'>YWxpY2VAZXhhbXBsZS5jb20AYWxpY2UAc2VjcmV0LWE=</auth>");
    CHECK_STR(fx_take(&fx, 1), "<success xmlns='" CX_NS_SASL "'/>");
    CHECK(fx_log_has(&fx, "client alice logged in from 127.0.0.1:40001 (PLAIN)"));
    CHECK(!fx_log_has(&fx, "secret-a") && !fx_log_has(&fx, "AGFsaWNl"));
    /* direct TLS this time */
    fx_open_kind(&fx, 2, SRV_LISTENER_CLIENT);
    srv_conn_secured(fx.srv, 2, &cx_tls13, fx.now);
    fx_in(&fx, 2, CX_OPEN);
    fx_take(&fx, 2);
    /* "bob@example.com\0alice\0secret-a": another authorization identity
     * (RFC 6120 §6.5.6) */
    fx_in(&fx, 2,
          "<auth xmlns='" CX_NS_SASL
          "' mechanism='PLAIN'>Ym9iQGV4YW1wbGUuY29tAGFsaWNlAHNlY3JldC1h</auth>");
    CHECK_STR(fx_take(&fx, 2), CX_FAILURE("invalid-authzid"));
    down();
}

/* A listener without TLS: <proceed/> then <failure/> and the close (RFC
 * 6120 §5.4.2.2); bytes after <starttls/> in the same read are dropped. */
static void test_starttls_failure_and_injection(void)
{
    REQUIRE(up() == 0);
    fx.starttls_rc = XE_UNSUPPORTED;
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    fx_in(&fx, 1, CX_OPEN);
    fx_take(&fx, 1);
    fx_in(&fx, 1, CX_STARTTLS);
    CHECK_STR(fx_take(&fx, 1), CX_PROCEED "<failure "
                                          "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                          "</stream:stream>");
    CHECK_INT(fx.c[1].closes, 1);
    fx.starttls_rc = 0;
    /* STARTTLS command injection: the plaintext after <starttls/> must not
     * reach the protected stream */
    fx_open_kind(&fx, 2, SRV_LISTENER_CLIENT);
    fx_in(&fx, 2, CX_OPEN);
    fx_take(&fx, 2);
    fx_in(&fx, 2,
          CX_STARTTLS "<auth xmlns='" CX_NS_SASL "' mechanism='PLAIN'>AA==</auth>");
    CHECK_STR(fx_take(&fx, 2), CX_PROCEED);
    fx_in(&fx, 2, "<message/>"); /* before the handshake finished: dropped */
    srv_conn_secured(fx.srv, 2, &cx_tls13, fx.now);
    CHECK_STR(fx_take(&fx, 2), "");
    CHECK_INT(fx.c[2].closes, 0);
    down();
}

/* Stream headers: host-unknown (§4.9.3.6), invalid-namespace (§4.9.3.10),
 * unsupported-version (§4.9.3.25), each after our header. */
static void test_bad_headers(void)
{
    REQUIRE(up() == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    fx_in(
        &fx, 1,
        "<stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' to='other.org' version='1.0'>");
    CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, fx.c[1].sid, FX_ERR("host-unknown")));
    fx_open_kind(&fx, 2, SRV_LISTENER_CLIENT);
    fx_in(&fx, 2,
          "<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
          "version='1.0'>");
    CHECK_STR(fx_take(&fx, 2), cx_hdr(&fx, fx.c[2].sid, FX_ERR("invalid-namespace")));
    fx_open_kind(&fx, 3, SRV_LISTENER_CLIENT);
    fx_in(&fx, 3,
          "<stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='example.com'>");
    CHECK_STR(fx_take(&fx, 3), cx_hdr(&fx, fx.c[3].sid, FX_ERR("unsupported-version")));
    CHECK_INT(fx.c[1].closes + fx.c[2].closes + fx.c[3].closes, 3);
    down();
}

/* The auth timeout covers the whole negotiation up to bind. */
static void test_auth_timeout(void)
{
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.auth_timeout_ms = 5000;
    REQUIRE(up_cfg(&cfg) == 0);
    REQUIRE(cx_tls(&fx, 1));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "alice", "secret-a"));
    CHECK_INT(srv_next_deadline(fx.srv), 5000);
    fx.now = 5000;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("connection-timeout"));
    CHECK_INT(fx.c[1].closes, 1);
    down();
}

/* A direct-TLS connection (srv_conn_secured before any byte) starts at
 * the SASL features; the server stamps 'from' on what the client sends
 * (RFC 6120 §8.1.2.1), whatever the client wrote there. */
static void test_direct_tls_and_from_stamped(void)
{
    REQUIRE(up() == 0);
    fx_open_kind(&fx, 1, SRV_LISTENER_CLIENT);
    srv_conn_secured(fx.srv, 1, &cx_tls13, fx.now);
    fx_in(&fx, 1, CX_OPEN);
    CHECK_STR(fx_take(&fx, 1), cx_hdr(&fx, fx.c[1].sid, CX_FEAT_SASL));
    REQUIRE(cx_scram_ok(&fx, 1, "SCRAM-SHA-256", "alice", "secret-a"));
    REQUIRE(cx_bind(&fx, 1, "alice", "r"));
    REQUIRE(cx_login(&fx, 2, "bob", "secret-b", "s"));
    fx_in(&fx, 1, "<message from='bob@example.com/s' to='bob@example.com/s' id='f'/>");
    CHECK_STR(fx_take(&fx, 2), "<message from='alice@example.com/r' "
                               "to='bob@example.com/s' id='f'/>");
    CHECK_INT(fx.c[1].starttls, 0);
    down();
}

TL_MAIN(T(test_direct_tls_and_from_stamped), T(test_login_scram_sha256),
        T(test_login_scram_sha1), T(test_login_case_mapped),
        T(test_bind_generated_resource), T(test_bind_bad_resource), T(test_login_blocked),
        T(test_login_throttle_table_full), T(test_wrong_password), T(test_unknown_user),
        T(test_plus_and_downgrade), T(test_plus_end_point),
        T(test_unsupported_type_then_y), T(test_sasl_failures), T(test_before_tls),
        T(test_plain_rules), T(test_starttls_failure_and_injection), T(test_bad_headers),
        T(test_auth_timeout))
