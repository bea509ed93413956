/* test_comp_route.c: transcripts of routing between components on one node:
 * delivery, order, address checks, bounces, and the iq the server answers. */
#include "xmpp/fx.h"

static struct fx fx;

/* two components up: cb1 on connection 1, cb2 on connection 2 */
static int up(void)
{
    if (fx_start(&fx, NULL) != 0 || !fx_auth(&fx, 1, "cb1", "secret1") ||
        !fx_auth(&fx, 2, "cb2", "secret2"))
        return -1;
    return 0;
}

static void test_route_message_iq_presence(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    fx_in(&fx, 1,
          "<message from='alice@cb1.example.com/r1' to='bob@cb2.example.com' id='m1' "
          "type='chat'><body>hi &amp; &lt;bye&gt;</body></message>");
    CHECK_STR(fx_take(&fx, 2),
              "<message from='alice@cb1.example.com/r1' to='bob@cb2.example.com' id='m1' "
              "type='chat'><body>hi &amp; &lt;bye&gt;</body></message>");
    CHECK_STR(fx_take(&fx, 1), "");
    fx_in(&fx, 2,
          "<iq type='get' id='q1' from='cb2.example.com' to='cb1.example.com'>"
          "<query xmlns='jabber:iq:version'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='get' id='q1' from='cb2.example.com' "
              "to='cb1.example.com'><query xmlns='jabber:iq:version'/></iq>");
    fx_in(&fx, 1,
          "<iq type='result' id='q1' from='cb1.example.com' to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 2),
              "<iq type='result' id='q1' from='cb1.example.com' to='cb2.example.com'/>");
    fx_in(&fx, 1, "<presence from='conf@cb1.example.com' to='x@cb2.example.com/y'/>");
    CHECK_STR(fx_take(&fx, 2),
              "<presence from='conf@cb1.example.com' to='x@cb2.example.com/y'/>");
    /* A subdomain of a component goes to that component (longest match). */
    fx_in(&fx, 1, "<message from='cb1.example.com' to='u@media.cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 2),
              "<message from='cb1.example.com' to='u@media.cb2.example.com'/>");
    /* A component may send from a subdomain of its own. */
    fx_in(&fx, 1, "<message from='room@conf.cb1.example.com' to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 2),
              "<message from='room@conf.cb1.example.com' to='cb2.example.com'/>");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.routed, 6);
    CHECK_INT(st.bounced, 0);
    CHECK_INT(fx.c[1].closes + fx.c[2].closes, 0);
    fx_stop(&fx);
}

/* Stanzas between two sessions keep their order, whatever the chunking. */
static void test_order_kept(void)
{
    static char in[100 * 128], want[100 * 128];
    size_t n = 0;

    REQUIRE(up() == 0);
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(in + n, sizeof in - n,
                              "<message from='cb1.example.com' to='cb2.example.com' "
                              "id='%d'><body>%d</body></message>",
                              i, i);
    memcpy(want, in, n + 1);
    fx_in(&fx, 1, in);
    CHECK_STR(fx_take(&fx, 2), want);
    /* again, seven bytes per read */
    for (size_t off = 0; off < n; off += 7)
        srv_conn_input(fx.srv, 1, in + off, n - off < 7 ? n - off : 7, fx.now);
    CHECK_STR(fx_take(&fx, 2), want);
    fx_stop(&fx);
}

/* RFC 6120 §4.9.3.9: from outside the component's domain. */
static void test_invalid_from(void)
{
    REQUIRE(up() == 0);
    fx_in(
        &fx, 1,
        "<message from='cb2.example.com' to='cb2.example.com'><body>x</body></message>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("invalid-from"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_STR(fx_take(&fx, 2), "");
    /* the server's own domain is not the component's either */
    fx_in(&fx, 2, "<message from='example.com' to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 2), FX_ERR("invalid-from"));
    CHECK_INT(fx.c[2].closes, 1);
    fx_stop(&fx);
}

/* a look-alike domain that is not a subdomain */
static void test_invalid_from_lookalike(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 1, "<iq type='get' id='1' from='xcb1.example.com' to='example.com'/>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("invalid-from"));
    fx_stop(&fx);
    /* nor a prefix of the component's domain */
    REQUIRE(up() == 0);
    fx_in(&fx, 1, "<iq type='get' id='1' from='cb1.example.co' to='example.com'/>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("invalid-from"));
    CHECK_INT(fx.c[1].closes, 1);
    fx_stop(&fx);
}

/* XEP-0114 §3 / RFC 6120 §4.9.3.14: stanzas without 'to' or 'from'. */
static void test_improper_addressing(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 1, "<message from='cb1.example.com'><body>x</body></message>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("improper-addressing"));
    CHECK_INT(fx.c[1].closes, 1);
    fx_in(&fx, 2, "<presence to='cb1.example.com'/>");
    CHECK_STR(fx_take(&fx, 2), FX_ERR("improper-addressing"));
    CHECK_INT(fx.c[2].closes, 1);
    fx_stop(&fx);
}

/* RFC 6120 §8.3.3.19: an unknown address bounces (message, iq get/set). */
static void test_bounce_unknown(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    fx_in(&fx, 1,
          "<message from='a@cb1.example.com' to='b@cb9.example.com' id='m1'>"
          "<body>hi</body></message>");
    CHECK_STR(fx_take(&fx, 1),
              "<message from='b@cb9.example.com' to='a@cb1.example.com' id='m1' "
              "type='error'><body>hi</body><error type='cancel'><service-unavailable "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    fx_in(&fx, 1,
          "<iq type='set' id='i1' from='cb1.example.com' to='other.org'><x "
          "xmlns='y'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='i1' from='other.org' to='cb1.example.com'><x "
              "xmlns='y'/><error type='cancel'><service-unavailable "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    /* a user of the server's domain: no such entity (no clients yet) */
    fx_in(&fx, 1, "<message from='cb1.example.com' to='u@example.com'/>");
    CHECK_STR(fx_take(&fx, 1),
              "<message from='u@example.com' to='cb1.example.com' type='error'><error "
              "type='cancel'><service-unavailable "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    CHECK_STR(fx_take(&fx, 2), "");
    CHECK_INT(fx.c[1].closes, 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.bounced, 3);
    fx_stop(&fx);
}

/* Never bounce an error or an iq result (RFC 6120 §8.3.1, §10.4.3);
 * presence to nobody is dropped (RFC 6121 §4.3 / §4.5). */
static void test_not_bounced(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    fx_in(&fx, 1, "<presence from='cb1.example.com' to='cb9.example.com'/>");
    fx_in(&fx, 1,
          "<presence from='cb1.example.com' to='cb9.example.com' type='unavailable'/>");
    fx_in(&fx, 1,
          "<message from='cb1.example.com' to='cb9.example.com' type='error'><error "
          "type='cancel'><gone "
          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    fx_in(&fx, 1,
          "<iq type='result' id='r' from='cb1.example.com' to='cb9.example.com'/>");
    fx_in(&fx, 1,
          "<iq type='error' id='e' from='cb1.example.com' to='cb9.example.com'/>");
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_STR(fx_take(&fx, 2), "");
    CHECK_INT(fx.c[1].closes, 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.bounced, 0);
    fx_stop(&fx);
}

/* RFC 6120 §8.3.3.8: a malformed 'to' bounces with jid-malformed. */
static void test_malformed_to(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 1, "<message from='cb1.example.com' to='a@b@c' id='x'/>");
    CHECK_STR(
        fx_take(&fx, 1),
        "<message from='example.com' to='cb1.example.com' id='x' type='error'><error "
        "type='modify'><jid-malformed "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    CHECK_INT(fx.c[1].closes, 0);
    fx_stop(&fx);
}

/* RFC 7622 §3.2: a domainpart that is not in its prepared form (upper
 * case, a final dot, an ideographic full stop) is prepared and routes like
 * the prepared one, in 'from' and in 'to'; an invalid one is refused.  (The
 * router takes a prepared name as it is and prepares only the others.) */
static void test_unprepared_domains(void)
{
    static const char *const ok[] = {
        "<message from='CB1.Example.COM' to='cb2.example.com' id='a'/>",
        "<message from='cb1.example.com.' to='cb2.example.com.' id='b'/>",
        "<message from='u@cb1.example.com' to='v@CB2.EXAMPLE.COM/R' id='c'/>",
        "<message from='cb1\xe3\x80\x82"
        "example.com' to='cb2\xef\xbc\x8e"
        "example.com' "
        "id='d'/>",
    };

    REQUIRE(up() == 0);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fx_in(&fx, 1, ok[i]);
        CHECK_STR(fx_take(&fx, 2), ok[i]);
        CHECK_STR(fx_take(&fx, 1), "");
    }
    /* an empty label: the 'to' is malformed */
    fx_in(&fx, 1, "<message from='cb1.example.com' to='cb2..example.com' id='x'/>");
    CHECK_STR(
        fx_take(&fx, 1),
        "<message from='example.com' to='cb1.example.com' id='x' type='error'><error "
        "type='modify'><jid-malformed "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    CHECK_STR(fx_take(&fx, 2), "");
    CHECK_INT(fx.c[1].closes + fx.c[2].closes, 0);
    /* a hyphen at the end of a label: not the component's domain */
    fx_in(&fx, 1, "<message from='cb1-.example.com' to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("invalid-from"));
    CHECK_STR(fx_take(&fx, 2), "");
    fx_stop(&fx);
}

/* XEP-0199 §6: ping to the server. */
static void test_ping_server(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 1,
          "<iq type='get' id='p1' from='cb1.example.com' to='example.com'><ping "
          "xmlns='urn:xmpp:ping'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='result' id='p1' from='example.com' to='cb1.example.com'/>");
    CHECK_INT(fx.c[1].closes, 0);
    fx_stop(&fx);
}

/* XEP-0030 §3.1: disco#info of the server. */
static void test_disco_info_server(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 2,
          "<iq type='get' id='d1' from='cb2.example.com' to='example.com'><query "
          "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    CHECK_STR(fx_take(&fx, 2),
              "<iq type='result' id='d1' from='example.com' to='cb2.example.com'><query "
              "xmlns='http://jabber.org/protocol/disco#info'><identity category='server' "
              "type='im' name='xmppd'/><feature "
              "var='http://jabber.org/protocol/disco#info'/><feature "
              "var='http://jabber.org/protocol/disco#items'/><feature "
              "var='urn:xmpp:ping'/></query></iq>");
    fx_stop(&fx);
}

static void test_feature_not_implemented(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 1,
          "<iq type='get' id='v1' from='cb1.example.com' to='example.com'><query "
          "xmlns='jabber:iq:last'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='v1' from='example.com' to='cb1.example.com'><query "
              "xmlns='jabber:iq:last'/><error type='cancel'><feature-not-implemented "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    /* a ping set is not a ping */
    fx_in(&fx, 1,
          "<iq type='set' id='v2' from='cb1.example.com' to='example.com'><ping "
          "xmlns='urn:xmpp:ping'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='v2' from='example.com' to='cb1.example.com'><ping "
              "xmlns='urn:xmpp:ping'/><error type='cancel'><feature-not-implemented "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    /* RFC 6120 §8.2.3: exactly one payload */
    fx_in(&fx, 1, "<iq type='get' id='v3' from='cb1.example.com' to='example.com'/>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='v3' from='example.com' to='cb1.example.com'><error "
              "type='modify'><bad-request "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    /* results to the server are consumed */
    fx_in(&fx, 1, "<iq type='result' id='v4' from='cb1.example.com' to='example.com'/>");
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_INT(fx.c[1].closes, 0);
    fx_stop(&fx);
}

/* A top-level element that is no stanza. */
static void test_unsupported_element(void)
{
    REQUIRE(up() == 0);
    fx_in(&fx, 1, "<foo xmlns='urn:example:foo'/>");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("unsupported-stanza-type"));
    CHECK_INT(fx.c[1].closes, 1);
    fx_in(&fx, 2, "<handshake/>");
    CHECK_STR(fx_take(&fx, 2), FX_ERR("unsupported-stanza-type"));
    fx_stop(&fx);
}

/* A destination whose connection cannot take more is closed; the sender
 * is unaffected and later stanzas bounce. */
static void test_send_failure_closes(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    fx.c[2].fail_send = true;
    fx_in(&fx, 1, "<message from='cb1.example.com' to='cb2.example.com' id='a'/>");
    CHECK_INT(fx.c[2].closes, 1);
    CHECK_STR(fx_take(&fx, 1), "");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.components, 1);
    fx_in(&fx, 1, "<message from='cb1.example.com' to='cb2.example.com' id='b'/>");
    CHECK_STR(
        fx_take(&fx, 1),
        "<message from='cb2.example.com' to='cb1.example.com' id='b' type='error'><error "
        "type='cancel'><service-unavailable "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    CHECK(fx_log_has(&fx, "n1 c2 send failed"));
    fx_stop(&fx);
}

/* RFC 6120 §8.2.3: an iq with no 'type', another type than get, set,
 * result or error, or a get or set without an 'id', is answered
 * bad-request (§8.3.3.1): not relayed to the other component, which
 * could not answer it, nor dropped unanswered when it goes to the server
 * or nowhere; the stream stays. */
static void test_iq_without_type(void)
{
    static const char *const in[] = {
        "<iq id='q1' type='bogus' from='cb1.example.com' to='cb2.example.com'/>",
        "<iq id='q1' from='cb1.example.com' to='cb2.example.com'/>",
        "<iq id='q1' type='bogus' from='cb1.example.com' to='example.com'/>",
        "<iq id='q1' type='bogus' from='cb1.example.com' to='x@cb9.example.com'/>",
        "<iq type='get' from='cb1.example.com' to='cb2.example.com'/>",
    };

    REQUIRE(up() == 0);
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        fx_in(&fx, 1, in[i]);
        CHECK(strstr(fx_take(&fx, 1), "<bad-request ") != NULL);
        CHECK_STR(fx_take(&fx, 2), "");
    }
    CHECK_INT(fx.c[1].closes, 0);
    fx_in(&fx, 1, "<iq id='q2' type='get' from='cb1.example.com' to='cb2.example.com'/>");
    CHECK_STR(fx_take(&fx, 2),
              "<iq id='q2' type='get' from='cb1.example.com' to='cb2.example.com'/>");
    fx_stop(&fx);
}

TL_MAIN(T(test_route_message_iq_presence), T(test_unprepared_domains), T(test_order_kept),
        T(test_invalid_from), T(test_invalid_from_lookalike), T(test_improper_addressing),
        T(test_bounce_unknown), T(test_not_bounced), T(test_malformed_to),
        T(test_ping_server), T(test_disco_info_server), T(test_feature_not_implemented),
        T(test_unsupported_element), T(test_send_failure_closes), T(test_iq_without_type))
