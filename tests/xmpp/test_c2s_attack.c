/* test_c2s_attack.c: transcripts of a hostile client on 5222 (the
 * independent tester's cases, session 6): forged 'from' in the forms a
 * namespace-aware parser could miss, XML that RFC 6120 §11 restricts or
 * the framer's limits refuse once authenticated, a DTD before the header,
 * SASL elements out of order and oversized, negotiation elements after
 * bind.  Each must end in a clear error (a stream error per §4.9.3, a SASL
 * failure per §6.5, a stanza error per §8.3) for the attacker alone: the
 * other sessions on the node get nothing and stay open. */
#include "xmpp/cx.h"

static struct fx fx;
static struct cl_state *cl;

#define NS_SASL_EL(el, body) "<" el " xmlns='" CX_NS_SASL "'>" body "</" el ">"

/* up: accounts alice and bob, call bridge cb1 on connection 1, alice/a
 * logged in on 3 and bob/b on 4. */
static int up(void)
{
    if (fx_start(&fx, NULL) != 0 || cl_state_new(&cl) != 0 ||
        cx_add_user(cl, "alice", "pa") != 0 || cx_add_user(cl, "bob", "pb") != 0)
        return -1;
    srv_set_accounts(fx.srv, cl);
    return fx_auth(&fx, 1, "cb1", "secret1") && cx_login(&fx, 3, "alice", "pa", "a") &&
                   cx_login(&fx, 4, "bob", "pb", "b")
               ? 0
               : -1;
}

static void down(void)
{
    fx_stop(&fx);
    cl_state_free(cl);
    cl = NULL;
}

/* bystanders_untouched checks that bob (4) and cb1 (1) got nothing and
 * are still open. */
static void bystanders_untouched(void)
{
    CHECK_STR(fx_take(&fx, 4), "");
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_INT(fx.c[4].closes, 0);
    CHECK_INT(fx.c[1].closes, 0);
}

/* RFC 6120 §8.1.2.1: whatever the client writes as 'from', bob sees
 * alice's full JID; a 'from' in a namespace is another attribute, and a
 * stanza written with a prefix for jabber:client is still one. */
static void test_forged_from(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 3,
          "<message to='bob@example.com/b' from='bob@example.com/b'><body>1</body>"
          "</message>");
    CHECK_STR(fx_take(&fx, 4), "<message to='bob@example.com/b' "
                               "from='alice@example.com/a'><body>1</body></message>");
    fx_in(&fx, 3,
          "<message to='bob@example.com/b' xmlns:q='jabber:client' "
          "q:from='bob@example.com/b'/>");
    CHECK_STR(fx_take(&fx, 4),
              "<message to='bob@example.com/b' xmlns:ns1='jabber:client' "
              "ns1:from='bob@example.com/b' from='alice@example.com/a'/>");
    fx_in(&fx, 3,
          "<q:message xmlns:q='jabber:client' to='bob@example.com/b' "
          "from='cb1.example.com'><q:body>2</q:body></q:message>");
    CHECK_STR(fx_take(&fx, 4), "<message to='bob@example.com/b' "
                               "from='alice@example.com/a'><body>2</body></message>");
    /* to a component: the same stamp */
    fx_in(&fx, 3, "<message to='cb1.example.com' from='admin@example.com'/>");
    CHECK_STR(fx_take(&fx, 1),
              "<message to='cb1.example.com' from='alice@example.com/a'/>");
    CHECK_STR(fx_take(&fx, 3), "");
    CHECK_INT(fx.c[3].closes, 0);
    down();
}

/* Once authenticated, what RFC 6120 §11.1 forbids is restricted-xml,
 * what XML 1.0 forbids not-well-formed, and what passes the framer's
 * limits (depth 32, 64 attributes and declarations) policy-violation
 * (§4.9.3.14); the attacker's stream closes, nothing is routed. */
static void test_xml_after_auth(void)
{
    static char deep[1024], many[4096], decls[4096];
    struct {
        const char *in, *cond;
    } cases[] = {
        {"<message to='bob@example.com/b'><!-- c --><body>x</body></message>",
         "restricted-xml"},
        {"<message to='bob@example.com/b'><?pi x?></message>", "restricted-xml"},
        {"<message to='bob@example.com/b'><body>&a;</body></message>", "restricted-xml"},
        {"<message to='bob@example.com/b'><body>&#0;</body></message>",
         "not-well-formed"},
        {"<message to='bob@example.com/b'><body>&#xD800;</body></message>",
         "not-well-formed"},
        {"<message to='bob@example.com/b'><body>\xc0\xaf</body></message>",
         "not-well-formed"},
        {"<message to='bob@example.com/b' a='1' a='2'/>", "not-well-formed"},
        {deep, "policy-violation"},
        {many, "policy-violation"},
        {decls, "policy-violation"},
    };

    strcpy(deep, "<message to='bob@example.com/b'>");
    for (int i = 0; i < 40; i++)
        strcat(deep, "<a>");
    for (int i = 0; i < 40; i++)
        strcat(deep, "</a>");
    strcat(deep, "</message>");
    strcpy(many, "<message to='bob@example.com/b'");
    strcpy(decls, many);
    for (int i = 0; i < 70; i++) {
        char a[48];
        snprintf(a, sizeof a, " a%d='x'", i);
        strcat(many, a);
        snprintf(a, sizeof a, " xmlns:p%d='urn:p%d'", i, i);
        strcat(decls, a);
    }
    strcat(many, "/>");
    strcat(decls, "/>");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[256];

        REQUIRE(up() == 0);
        fx_in(&fx, 3, cases[i].in);
        snprintf(want, sizeof want,
                 "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                 "</stream:error></stream:stream>",
                 cases[i].cond);
        CHECK_STR(fx_take(&fx, 3), want);
        CHECK_INT(fx.c[3].closes, 1);
        bystanders_untouched();
        down();
    }
}

/* A DTD before the stream header (an entity-expansion bomb's start):
 * restricted-xml at once, nothing expanded (RFC 6120 §11.1). */
static void test_dtd_before_header(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open_kind(&fx, 3, SRV_LISTENER_CLIENT);
    fx_in(&fx, 3,
          "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaaaaaa'><!ENTITY b "
          "'&a;&a;&a;&a;&a;&a;&a;&a;'>]>" CX_OPEN);
    CHECK_STR(fx_take(&fx, 3),
              cx_hdr(&fx, fx.c[3].sid,
                     "<stream:error><restricted-xml "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                     "</stream:stream>"));
    CHECK_INT(fx.c[3].closes, 1);
    fx_stop(&fx);
}

/* SASL out of order: a response or a success before any auth, and a
 * second auth inside an exchange, are malformed-request failures (RFC
 * 6120 §6.4.5; the stream stays until the third); an auth past the pre-auth stanza limit
 * closes with policy-violation.  A login beside it still works. */
static void test_sasl_abuse(void)
{
    static char big[9000];
    const char *auth = "<auth xmlns='" CX_NS_SASL "' mechanism='SCRAM-SHA-256'>"
                       "biwsbj1hbGljZSxyPWFiYw==</auth>";

    REQUIRE(fx_start(&fx, NULL) == 0 && cl_state_new(&cl) == 0 &&
            cx_add_user(cl, "alice", "pa") == 0);
    srv_set_accounts(fx.srv, cl);
    REQUIRE(cx_tls(&fx, 3));
    fx_in(&fx, 3, NS_SASL_EL("response", "Yz1iaXdzLHI9YWJjLHA9eHh4"));
    CHECK_STR(fx_take(&fx, 3), CX_FAILURE("malformed-request"));
    fx_in(&fx, 3, "<success xmlns='" CX_NS_SASL "'/>");
    CHECK_STR(fx_take(&fx, 3), CX_FAILURE("malformed-request"));
    CHECK_INT(fx.c[3].closes, 0);
    fx_in(&fx, 3, auth);
    CHECK(strncmp(fx_take(&fx, 3), "<challenge ", 11) == 0);
    fx_in(&fx, 3, auth);
    /* the third failure on the connection ends it (SRV_C2S_MAX_AUTH_FAILURES) */
    CHECK_STR(fx_take(&fx, 3),
              CX_FAILURE("malformed-request") FX_ERR("policy-violation"));
    CHECK_INT(fx.c[3].closes, 1);

    REQUIRE(cx_tls(&fx, 5));
    memset(big, 'Q', sizeof big - 1);
    fx_in(&fx, 5, "<auth xmlns='" CX_NS_SASL "' mechanism='SCRAM-SHA-256'>");
    fx_in(&fx, 5, big);
    fx_in(&fx, 5, "</auth>");
    CHECK_STR(fx_take(&fx, 5), FX_ERR("policy-violation"));
    CHECK_INT(fx.c[5].closes, 1);

    REQUIRE(cx_tls(&fx, 6));
    CHECK(cx_scram_ok(&fx, 6, "SCRAM-SHA-256", "alice", "pa"));
    CHECK(cx_bind(&fx, 6, "alice", "ok"));
    down();
}

/* After bind: a second bind is an iq error (not-allowed, RFC 6120
 * §7.7.2.1 allows one resource per stream here); SASL, STARTTLS and
 * stream management (not offered: XEP-0198 §3) are first-level elements
 * the stream does not take (§4.9.3.24 unsupported-stanza-type). */
static void test_negotiation_after_bind(void)
{
    static const char *const late[] = {
        "<auth xmlns='" CX_NS_SASL "' mechanism='SCRAM-SHA-1'/>",
        CX_STARTTLS,
        "<enable xmlns='urn:xmpp:sm:3'/>",
        "<r xmlns='urn:xmpp:sm:3'/>",
    };

    REQUIRE(up() == 0);
    fx_in(&fx, 3,
          "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
          "<resource>c</resource></bind></iq>");
    CHECK(strstr(fx_take(&fx, 3), "<not-allowed ") != NULL);
    CHECK_INT(fx.c[3].closes, 0);
    down();
    for (size_t i = 0; i < sizeof late / sizeof late[0]; i++) {
        REQUIRE(up() == 0);
        fx_in(&fx, 3, late[i]);
        CHECK_STR(fx_take(&fx, 3), FX_ERR("unsupported-stanza-type"));
        CHECK_INT(fx.c[3].closes, 1);
        bystanders_untouched();
        down();
    }
}

/* RFC 6120 §8.2.3: an iq has a 'type' of get, set, result or error, and
 * a get or set has an 'id'.  One without, or with another type, is
 * answered bad-request (§8.3.3.1 names "an IQ stanza that includes an
 * unrecognized value of the 'type' attribute"), wherever it was going: it
 * is neither dropped unanswered nor relayed to a client, which could not
 * answer it. */
static void test_iq_without_type(void)
{
    static const char *const to[] = {
        "bob@example.com/b",  "example.com",     "alice@example.com",
        "nobody@example.com", "cb1.example.com", NULL,
    };
    static const char *const type[] = {NULL, "bogus", "GET", ""};

    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++) {
        for (size_t k = 0; k < sizeof type / sizeof type[0]; k++) {
            char in[256], want[512], ta[64] = "", tt[64] = "", ft[64] = "";

            if (type[k] != NULL)
                snprintf(ta, sizeof ta, " type='%s'", type[k]);
            if (to[i] != NULL) {
                snprintf(tt, sizeof tt, " to='%s'", to[i]);
                snprintf(ft, sizeof ft, " from='%s'", to[i]);
            }
            snprintf(in, sizeof in, "<iq id='q1'%s%s><ping xmlns='urn:xmpp:ping'/></iq>",
                     ta, tt);
            /* (an added 'type' comes after the copied attributes) */
            snprintf(want, sizeof want,
                     "<iq id='q1'%s to='alice@example.com/a'%s%s><ping "
                     "xmlns='urn:xmpp:ping'/><error type='modify'><bad-request "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                     type[k] != NULL ? " type='error'" : "", ft,
                     type[k] == NULL ? " type='error'" : "");
            REQUIRE(up() == 0);
            fx_in(&fx, 3, in);
            CHECK_STR(fx_take(&fx, 3), want);
            CHECK_INT(fx.c[3].closes, 0);
            bystanders_untouched();
            down();
        }
    }
    /* a get or set without an id: the same (the answer has none either) */
    REQUIRE(up() == 0);
    fx_in(&fx, 3,
          "<iq type='get' to='bob@example.com/b'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='error' to='alice@example.com/a' from='bob@example.com/b'><ping "
              "xmlns='urn:xmpp:ping'/><error type='modify'><bad-request "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    bystanders_untouched();
    /* a result or an error without an id is not answered (§8.3.1) */
    fx_in(&fx, 3, "<iq type='result' to='bob@example.com/b'/>");
    CHECK_STR(fx_take(&fx, 3), "");
    fx_take(&fx, 4);
    /* the stream goes on: a valid iq is still relayed */
    fx_in(&fx, 3,
          "<iq type='get' id='p' to='bob@example.com/b'><ping "
          "xmlns='urn:xmpp:ping'/></iq>");
    CHECK_STR(fx_take(&fx, 4),
              "<iq type='get' id='p' to='bob@example.com/b' "
              "from='alice@example.com/a'><ping xmlns='urn:xmpp:ping'/></iq>");
    down();
}

/* RFC 6120 §7.1: no stanza before a resource is bound; one that comes
 * ends the stream with not-authorized (§4.9.3.12), and reaches nobody. */
static void test_stanza_before_bind(void)
{
    static const char *const early[] = {
        "<message to='bob@example.com/b'><body>x</body></message>",
        "<presence/>",
        "<presence to='bob@example.com' type='subscribe'/>",
        "<iq type='get' id='r' to='example.com'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='set' id='s'><session "
        "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    };

    for (size_t i = 0; i < sizeof early / sizeof early[0]; i++) {
        REQUIRE(up() == 0);
        REQUIRE(cx_tls(&fx, 5));
        REQUIRE(cx_scram_ok(&fx, 5, "SCRAM-SHA-256", "alice", "pa"));
        fx_in(&fx, 5, early[i]);
        CHECK_STR(fx_take(&fx, 5), FX_ERR("not-authorized"));
        CHECK_INT(fx.c[5].closes, 1);
        CHECK_STR(fx_take(&fx, 3), "");
        bystanders_untouched();
        down();
    }
}

/* RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2: the user's server stamps a
 * subscription stanza with the user's bare JID, whatever it goes to; to a
 * call bridge too (not in a roster here, relayed as it is), never with
 * the full JID of the resource that sent it, nor with what the client
 * wrote. */
static void test_subscription_to_component(void)
{
    static const char *const type[] = {"subscribe", "subscribed", "unsubscribe",
                                       "unsubscribed"};

    REQUIRE(up() == 0);
    for (size_t i = 0; i < sizeof type / sizeof type[0]; i++) {
        char in[256], want[256];

        snprintf(in, sizeof in,
                 "<presence type='%s' to='cb1.example.com' from='bob@example.com'/>",
                 type[i]);
        snprintf(want, sizeof want,
                 "<presence type='%s' to='cb1.example.com' from='alice@example.com'/>",
                 type[i]);
        fx_in(&fx, 3, in);
        CHECK_STR(fx_take(&fx, 1), want);
        CHECK_STR(fx_take(&fx, 3), "");
    }
    /* other presence keeps the full JID (§4.6.2 directed presence) */
    fx_in(&fx, 3, "<presence to='cb1.example.com'/>");
    CHECK_STR(fx_take(&fx, 1),
              "<presence to='cb1.example.com' from='alice@example.com/a'/>");
    down();
}

TL_MAIN(T(test_forged_from), T(test_xml_after_auth), T(test_dtd_before_header),
        T(test_sasl_abuse), T(test_negotiation_after_bind), T(test_iq_without_type),
        T(test_stanza_before_bind), T(test_subscription_to_component))
