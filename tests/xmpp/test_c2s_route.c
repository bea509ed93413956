/* test_c2s_route.c: transcripts of clients on one node: resource conflict,
 * presence among a user's own resources (RFC 6121 §4), routing to bare
 * and full JIDs (§8.5), offline and unknown accounts, components <->
 * clients both ways (message and iq), the server's iq for clients, account
 * deletion and the keep-alive of a client. */
#include "sess_c2s.h"
#include "xmpp/cx.h"

static struct fx fx;
static struct cl_state *cl;

#define SU                                                                               \
    "<error type='cancel'><service-unavailable "                                         \
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"

/* up: accounts alice, bob, carol; call bridge cb1 on connection 1. */
static int up_cfg(const struct srv_config *cfg)
{
    if (fx_start(&fx, cfg) != 0 || cl_state_new(&cl) != 0 ||
        cx_add_user(cl, "alice", "pa") != 0 || cx_add_user(cl, "bob", "pb") != 0 ||
        cx_add_user(cl, "carol", "pc") != 0)
        return -1;
    srv_set_accounts(fx.srv, cl);
    return fx_auth(&fx, 1, "cb1", "secret1") ? 0 : -1;
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

/* RFC 6120 §7.7.2.2: the same full JID again: the old session gets
 * conflict, the new one is bound. */
static void test_resource_conflict(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "phone"));
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "phone"));
    CHECK_STR(fx_take(&fx, 3), FX_ERR("conflict"));
    CHECK_INT(fx.c[3].closes, 1);
    CHECK_INT(fx.c[4].closes, 0);
    CHECK(fx_log_has(&fx, "n1 c3 stream error conflict: replaced by c4 (client "
                          "alice@example.com/phone, peer 127.0.0.1:40003)"));
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.clients, 1);
    /* the new session gets what is sent to the full JID */
    fx_in(&fx, 1, "<message from='cb1.example.com' to='alice@example.com/phone'/>");
    CHECK_STR(fx_take(&fx, 4),
              "<message from='cb1.example.com' to='alice@example.com/phone'/>");
    down();
}

/* Initial presence goes to all of the user's available resources, the
 * sender included, and the newcomer learns the others' (RFC 6121 §4.2.2);
 * a message to the bare JID goes to the highest priority (§8.5.2.1.1). */
static void test_bare_jid_priority(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 3, "<presence><priority>1</priority></presence>");
    CHECK_STR(fx_take(&fx, 3),
              "<presence from='alice@example.com/a' "
              "to='alice@example.com/a'><priority>1</priority></presence>");
    CHECK_STR(fx_take(&fx, 4), ""); /* b is not available yet */
    fx_in(&fx, 4, "<presence><priority>5</priority></presence>");
    CHECK_STR(fx_take(&fx, 3),
              "<presence from='alice@example.com/b' "
              "to='alice@example.com/a'><priority>5</priority></presence>");
    CHECK_STR(fx_take(&fx, 4),
              "<presence from='alice@example.com/b' to='alice@example.com/b'><priority>5"
              "</priority></presence><presence from='alice@example.com/a' "
              "to='alice@example.com/b'><priority>1</priority></presence>");
    CHECK_STR(fx_take(&fx, 5), "");
    fx_in(&fx, 5,
          "<message to='alice@example.com' type='chat' id='m1'><body>hi</body>"
          "</message>");
    CHECK_STR(fx_take(&fx, 4), "<message to='alice@example.com' type='chat' id='m1' "
                               "from='bob@example.com/x'><body>hi</body></message>");
    CHECK_STR(fx_take(&fx, 3), "");
    /* equal priorities: both */
    fx_in(&fx, 3, "<presence><priority>5</priority></presence>");
    fx_take(&fx, 3);
    fx_take(&fx, 4);
    fx_in(&fx, 5, "<message to='alice@example.com' id='m2'/>");
    CHECK_STR(fx_take(&fx, 3), "<message to='alice@example.com' id='m2' "
                               "from='bob@example.com/x'/>");
    CHECK_STR(fx_take(&fx, 4), "<message to='alice@example.com' id='m2' "
                               "from='bob@example.com/x'/>");
    /* only negative priorities: as if offline (§8.5.2.1.1, §8.5.2.2.1) */
    fx_in(&fx, 3, "<presence><priority>-1</priority></presence>");
    fx_in(&fx, 4, "<presence><priority>-2</priority></presence>");
    fx_take(&fx, 3);
    fx_take(&fx, 4);
    fx_in(&fx, 5, "<message to='alice@example.com' id='m3'/>");
    CHECK_STR(fx_take(&fx, 5), "<message to='bob@example.com/x' id='m3' "
                               "from='alice@example.com' type='error'>" SU "</message>");
    CHECK_STR(fx_take(&fx, 3), "");
    CHECK_STR(fx_take(&fx, 4), "");
    down();
}

/* §8.5.2.2 and §8.5.1: an account without a session, and no account:
 * service-unavailable for message and iq, presence dropped. */
static void test_offline_and_unknown(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "bob", "pb", "x"));
    fx_in(&fx, 3, "<message to='carol@example.com' id='m1'><body>hi</body></message>");
    CHECK_STR(fx_take(&fx, 3),
              "<message to='bob@example.com/x' id='m1' "
              "from='carol@example.com' type='error'><body>hi</body>" SU "</message>");
    fx_in(&fx, 3,
          "<iq to='carol@example.com/r' type='get' id='i1'><query "
          "xmlns='jabber:iq:version'/></iq>");
    CHECK_STR(fx_take(&fx, 3),
              "<iq to='bob@example.com/x' type='error' id='i1' "
              "from='carol@example.com/r'><query xmlns='jabber:iq:version'/>" SU "</iq>");
    fx_in(&fx, 3, "<message to='nobody@example.com' id='m2'/>");
    CHECK_STR(fx_take(&fx, 3), "<message to='bob@example.com/x' id='m2' "
                               "from='nobody@example.com' type='error'>" SU "</message>");
    fx_in(&fx, 3, "<presence to='carol@example.com'/>");
    fx_in(&fx, 3, "<presence to='nobody@example.com' type='subscribe'/>");
    CHECK_STR(fx_take(&fx, 3), "");
    /* §8.5.2.2.1: a headline to an account with no available resource is
     * silently ignored, as one to a full JID without a session is
     * (§8.5.3.2.1) */
    fx_in(&fx, 3, "<message to='carol@example.com' type='headline' id='h1'/>");
    fx_in(&fx, 3, "<message to='carol@example.com/r' type='headline' id='h2'/>");
    CHECK_STR(fx_take(&fx, 3), "");
    /* a component's message to an offline account */
    fx_in(&fx, 1, "<message from='cb1.example.com' to='carol@example.com' id='c1'/>");
    CHECK_STR(fx_take(&fx, 1), "<message from='carol@example.com' to='cb1.example.com' "
                               "id='c1' type='error'>" SU "</message>");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.bounced, 4);
    CHECK_INT(fx.c[3].closes, 0);
    down();
}

/* RFC 6121 §4.5.2: unavailable presence to the other resources, sent by
 * the client or on its behalf when the connection is lost. */
static void test_presence_unavailable(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    REQUIRE(cx_login(&fx, 5, "alice", "pa", "c"));
    fx_in(&fx, 3, "<presence/>");
    fx_in(&fx, 4, "<presence/>");
    fx_in(&fx, 5, "<presence/>");
    fx_take(&fx, 3);
    fx_take(&fx, 4);
    fx_take(&fx, 5);
    fx_in(&fx, 5, "<presence type='unavailable'/>");
    CHECK_STR(fx_take(&fx, 3), "<presence type='unavailable' from='alice@example.com/c' "
                               "to='alice@example.com/a'/>");
    CHECK_STR(fx_take(&fx, 4), "<presence type='unavailable' from='alice@example.com/c' "
                               "to='alice@example.com/b'/>");
    CHECK_STR(fx_take(&fx, 5), "");
    /* a lost connection */
    srv_conn_closed(fx.srv, 3, fx.now);
    CHECK_STR(fx_take(&fx, 4), "<presence from='alice@example.com/a' type='unavailable' "
                               "to='alice@example.com/b'/>");
    CHECK_STR(fx_take(&fx, 5), ""); /* c is unavailable */
    /* a clean close */
    fx_in(&fx, 5, "<presence/>");
    fx_take(&fx, 4);
    fx_take(&fx, 5);
    fx_in(&fx, 4, "</stream:stream>");
    CHECK_STR(fx_take(&fx, 4), "</stream:stream>");
    CHECK_STR(fx_take(&fx, 5), "<presence from='alice@example.com/b' type='unavailable' "
                               "to='alice@example.com/c'/>");
    down();
}

/* A resource whose connection cannot take more is closed in the middle of
 * a broadcast; the others still get it, and its own unavailable presence
 * follows. */
static void test_broadcast_send_failure(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    REQUIRE(cx_login(&fx, 5, "alice", "pa", "c"));
    fx_in(&fx, 3, "<presence/>");
    fx_in(&fx, 4, "<presence/>");
    fx_in(&fx, 5, "<presence/>");
    fx_take(&fx, 3);
    fx_take(&fx, 4);
    fx_take(&fx, 5);
    fx.c[4].fail_send = true;
    fx_in(&fx, 3, "<presence><show>away</show></presence>");
    CHECK_INT(fx.c[4].closes, 1);
    CHECK_STR(fx_take(&fx, 5),
              "<presence from='alice@example.com/a' to='alice@example.com/c'><show>away"
              "</show></presence><presence from='alice@example.com/b' type='unavailable' "
              "to='alice@example.com/c'/>");
    CHECK_STR(fx_take(&fx, 3),
              "<presence from='alice@example.com/a' to='alice@example.com/a'><show>away"
              "</show></presence><presence from='alice@example.com/b' type='unavailable' "
              "to='alice@example.com/a'/>");
    down();
}

/* Components address clients by full and bare JID and the reverse,
 * message and iq both ways. */
static void test_component_client_round_trip(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx_in(&fx, 3, "<presence/>");
    fx_take(&fx, 3);
    fx_in(&fx, 1,
          "<message from='room@cb1.example.com' to='alice@example.com/a' "
          "id='m1'><body>hi</body></message>");
    CHECK_STR(fx_take(&fx, 3),
              "<message from='room@cb1.example.com' "
              "to='alice@example.com/a' id='m1'><body>hi</body></message>");
    fx_in(&fx, 1,
          "<message from='room@cb1.example.com' to='alice@example.com' "
          "id='m2'/>");
    CHECK_STR(fx_take(&fx, 3), "<message from='room@cb1.example.com' "
                               "to='alice@example.com' id='m2'/>");
    fx_in(&fx, 3, "<message to='room@cb1.example.com' id='m3'><body>yo</body></message>");
    CHECK_STR(fx_take(&fx, 1), "<message to='room@cb1.example.com' id='m3' "
                               "from='alice@example.com/a'><body>yo</body></message>");
    /* iq component -> client -> component */
    fx_in(&fx, 1,
          "<iq type='get' id='q1' from='cb1.example.com' to='alice@example.com/a'>"
          "<query xmlns='urn:example:conf'/></iq>");
    CHECK_STR(fx_take(&fx, 3), "<iq type='get' id='q1' from='cb1.example.com' "
                               "to='alice@example.com/a'><query "
                               "xmlns='urn:example:conf'/></iq>");
    fx_in(&fx, 3, "<iq type='result' id='q1' to='cb1.example.com'/>");
    CHECK_STR(fx_take(&fx, 1), "<iq type='result' id='q1' to='cb1.example.com' "
                               "from='alice@example.com/a'/>");
    /* iq client -> component -> client */
    fx_in(&fx, 3,
          "<iq type='set' id='q2' to='cb1.example.com'><join "
          "xmlns='urn:example:conf'/></iq>");
    CHECK_STR(fx_take(&fx, 1), "<iq type='set' id='q2' to='cb1.example.com' "
                               "from='alice@example.com/a'><join "
                               "xmlns='urn:example:conf'/></iq>");
    fx_in(&fx, 1,
          "<iq type='result' id='q2' from='cb1.example.com' "
          "to='alice@example.com/a'/>");
    CHECK_STR(fx_take(&fx, 3), "<iq type='result' id='q2' from='cb1.example.com' "
                               "to='alice@example.com/a'/>");
    /* the server answers an iq to a bare JID: unknown namespace */
    fx_in(&fx, 1,
          "<iq type='get' id='q3' from='cb1.example.com' to='alice@example.com'>"
          "<query xmlns='urn:example:conf'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='error' id='q3' from='alice@example.com' "
              "to='cb1.example.com'><query xmlns='urn:example:conf'/>" SU "</iq>");
    CHECK_STR(fx_take(&fx, 3), "");
    down();
}

/* The server's own iq for a client: ping, disco, roster seam. */
static void test_server_iq(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx_in(&fx, 3,
          "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/>"
          "</iq>");
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='result' id='p1' from='example.com' to='alice@example.com/a'/>");
    fx_in(&fx, 3,
          "<iq type='get' id='d2' to='example.com'><query "
          "xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    CHECK_STR(fx_take(&fx, 3), "<iq type='result' id='d2' from='example.com' "
                               "to='alice@example.com/a'><query "
                               "xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    fx_in(&fx, 3, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='result' id='r1' to='alice@example.com/a'><query "
              "xmlns='jabber:iq:roster'/></iq>");
    /* disco#info to one's own account (XEP-0030 §3.1, RFC 6121
     * §8.5.2.1.3): the server answers for it, with or without 'to'; for
     * another account, or with a node, it does not. */
    fx_in(&fx, 3,
          "<iq type='get' id='a1' to='alice@example.com'><query "
          "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    CHECK_STR(
        fx_take(&fx, 3),
        "<iq type='result' id='a1' from='alice@example.com' "
        "to='alice@example.com/a'><query "
        "xmlns='http://jabber.org/protocol/disco#info'><identity category='account' "
        "type='registered'/><feature "
        "var='http://jabber.org/protocol/disco#info'/></query></iq>");
    fx_in(&fx, 3,
          "<iq type='get' id='a2'><query xmlns='http://jabber.org/protocol/disco#info'/>"
          "</iq>");
    CHECK(strstr(fx_take(&fx, 3), "<identity category='account' type='registered'/>") !=
          NULL);
    fx_in(&fx, 3,
          "<iq type='get' id='a3' to='bob@example.com'><query "
          "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    CHECK(strstr(fx_take(&fx, 3), "service-unavailable") != NULL);
    fx_in(&fx, 3,
          "<iq type='get' id='a4' to='alice@example.com'><query "
          "xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>");
    CHECK(strstr(fx_take(&fx, 3), "service-unavailable") != NULL);
    fx_in(&fx, 3, "<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>");
    CHECK_STR(fx_take(&fx, 3), "<iq type='error' id='v1' to='alice@example.com/a'><query "
                               "xmlns='jabber:iq:version'/>" SU "</iq>");
    CHECK_INT(fx.c[3].closes, 0);
    down();
}

/* §8.5.3.2: a full JID without a session: a chat message falls back to
 * the bare JID, an iq is refused. */
static void test_full_jid_gone(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 4, "bob", "pb", "x"));
    fx_in(&fx, 3, "<presence/>");
    fx_take(&fx, 3);
    fx_in(&fx, 4, "<message to='alice@example.com/old' type='chat'/>");
    CHECK_STR(fx_take(&fx, 3), "<message to='alice@example.com/old' type='chat' "
                               "from='bob@example.com/x'/>");
    fx_in(&fx, 4, "<iq to='alice@example.com/old' type='get' id='i'><x xmlns='y'/></iq>");
    CHECK_STR(fx_take(&fx, 4), "<iq to='bob@example.com/x' type='error' id='i' "
                               "from='alice@example.com/old'><x xmlns='y'/>" SU "</iq>");
    down();
}

/* xmpp user del: every session of the account closes (RFC 6120
 * §4.9.3.12). */
static void test_user_deleted(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    /* logged in, not bound yet */
    REQUIRE(cx_tls(&fx, 6) && cx_scram_ok(&fx, 6, "SCRAM-SHA-1", "alice", "pa"));
    srv_user_deleted(fx.srv, "alice");
    CHECK_STR(fx_take(&fx, 3), FX_ERR("not-authorized"));
    CHECK_STR(fx_take(&fx, 4), FX_ERR("not-authorized"));
    CHECK_STR(fx_take(&fx, 6), FX_ERR("not-authorized"));
    CHECK_INT(fx.c[3].closes + fx.c[4].closes + fx.c[6].closes, 3);
    CHECK(fx_log_has(&fx, "account alice deleted: 3 sessions closed"));
    CHECK_INT(fx.c[5].closes, 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.clients, 1);
    down();
}

/* The components' liveness rule applies to clients: ping after one
 * interval (XEP-0199), closed after three silent ones. */
static void test_client_keepalive(void)
{
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.keepalive_ms = 100000;
    REQUIRE(up_cfg(&cfg) == 0);
    fx_in(&fx, 1, " ");
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx.now = 100000;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(fx_take(&fx, 3), "<iq type='get' id='ping-2' from='example.com' "
                               "to='alice@example.com/a'><ping "
                               "xmlns='urn:xmpp:ping'/></iq>");
    fx.now = 300000;
    srv_tick(fx.srv, fx.now);
    CHECK_STR(fx_take(&fx, 3), FX_ERR("connection-timeout"));
    CHECK_INT(fx.c[3].closes, 1);
    down();
}

/* RFC 6121 §4.6: directed presence to a call bridge and to a user who is
 * not subscribed; each gets unavailable when the session ends (§4.6.3,
 * §4.5.2 for a lost connection), unless a directed unavailable already
 * went there; nothing is sent twice. */
static void test_directed_presence(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 3, "<presence/>");
    fx_take(&fx, 3);
    fx_in(&fx, 3, "<presence to='cb1.example.com'><status>in call</status></presence>");
    CHECK_STR(fx_take(&fx, 1), "<presence to='cb1.example.com' "
                               "from='alice@example.com/a'><status>in "
                               "call</status></presence>");
    fx_in(&fx, 3, "<presence to='Bob@example.com/x'/>"); /* twice: remembered once */
    fx_in(&fx, 3, "<presence to='bob@example.com/x'/>");
    CHECK_STR(fx_take(&fx, 5),
              "<presence to='Bob@example.com/x' from='alice@example.com/a'/>"
              "<presence to='bob@example.com/x' "
              "from='alice@example.com/a'/>");
    /* a broadcast update is not directed presence: the bridge hears nothing */
    fx_in(&fx, 3, "<presence><show>away</show></presence>");
    fx_take(&fx, 3);
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_STR(fx_take(&fx, 5), "");
    /* the broadcast unavailable reaches both */
    fx_in(&fx, 3, "<presence type='unavailable'><status>bye</status></presence>");
    CHECK_STR(fx_take(&fx, 1), "<presence type='unavailable' from='alice@example.com/a' "
                               "to='cb1.example.com'><status>bye</status></presence>");
    CHECK_STR(fx_take(&fx, 5), "<presence type='unavailable' from='alice@example.com/a' "
                               "to='bob@example.com/x'><status>bye</status></presence>");
    /* ... once: closing the stream now sends nothing more */
    fx_in(&fx, 3, "</stream:stream>");
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_STR(fx_take(&fx, 5), "");

    /* directed presence before initial presence (the resource is not
     * available), then a lost connection: the bridge still learns */
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    fx_in(&fx, 4, "<presence to='cb1.example.com'/>");
    fx_in(&fx, 4, "<presence to='bob@example.com/x'/>");
    fx_take(&fx, 1);
    fx_take(&fx, 5);
    fx_in(&fx, 4, "<presence to='bob@example.com/x' type='unavailable'/>");
    CHECK_STR(fx_take(&fx, 5), "<presence to='bob@example.com/x' type='unavailable' "
                               "from='alice@example.com/b'/>");
    srv_conn_closed(fx.srv, 4, fx.now);
    CHECK_STR(fx_take(&fx, 1), "<presence from='alice@example.com/b' type='unavailable' "
                               "to='cb1.example.com'/>");
    CHECK_STR(fx_take(&fx, 5), ""); /* bob had his directed unavailable */
    down();
}

/* The directed-presence addresses of one session are bounded: past
 * SESS_C2S_DIRECTED_MAX the log says which one is not remembered, and the
 * others still get their unavailable. */
static void test_directed_presence_bound(void)
{
    char el[128], want[160];
    const char *out;

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    for (int i = 0; i <= SESS_C2S_DIRECTED_MAX; i++) {
        snprintf(el, sizeof el, "<presence to='cb1.example.com/r%d'/>", i);
        fx_in(&fx, 3, el);
    }
    fx_take(&fx, 1);
    snprintf(want, sizeof want, "directed presence to cb1.example.com/r%d not remembered",
             SESS_C2S_DIRECTED_MAX);
    CHECK(fx_log_has(&fx, want));
    srv_conn_closed(fx.srv, 3, fx.now);
    out = fx_take(&fx, 1);
    for (int i = 0; i <= SESS_C2S_DIRECTED_MAX; i++) {
        snprintf(want, sizeof want, "to='cb1.example.com/r%d'/>", i);
        CHECK((strstr(out, want) != NULL) == (i < SESS_C2S_DIRECTED_MAX));
    }
    down();
}

/* The router writes a stanza as the sender's bytes: its quotes,
 * spacing, character references and CDATA arrive as sent; a client's gets
 * only the stamped 'from' (RFC 6120 §8.1.2.1) at the end of its start tag,
 * and one that claims another 'from' is rewritten. */
static void test_sender_bytes(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx_in(&fx, 3, "<presence/>");
    fx_take(&fx, 3);
    fx_in(&fx, 1,
          "<message  from=\"room@cb1.example.com\" to='alice@example.com/a'\n"
          "id='m1' ><body>&#104;i &amp; <![CDATA[<yo>]]></body></message>");
    CHECK_STR(fx_take(&fx, 3),
              "<message  from=\"room@cb1.example.com\" to='alice@example.com/a'\n"
              "id='m1' ><body>&#104;i &amp; <![CDATA[<yo>]]></body></message>");
    fx_in(&fx, 3,
          "<message to=\"room@cb1.example.com\" id='m2' ><b>&#x3c;</b></message>");
    CHECK_STR(fx_take(&fx, 1), "<message to=\"room@cb1.example.com\" id='m2'  "
                               "from='alice@example.com/a'><b>&#x3c;</b></message>");
    fx_in(&fx, 3, "<message to=\"room@cb1.example.com\" from='alice@example.com/a'/>");
    CHECK_STR(fx_take(&fx, 1),
              "<message to=\"room@cb1.example.com\" from='alice@example.com/a'/>");
    fx_in(&fx, 3, "<message to=\"room@cb1.example.com\" from='eve@example.com/x'/>");
    CHECK_STR(fx_take(&fx, 1),
              "<message to='room@cb1.example.com' from='alice@example.com/a'/>");
}

TL_MAIN(T(test_resource_conflict), T(test_bare_jid_priority), T(test_offline_and_unknown),
        T(test_presence_unavailable), T(test_broadcast_send_failure),
        T(test_component_client_round_trip), T(test_server_iq), T(test_full_jid_gone),
        T(test_user_deleted), T(test_client_keepalive), T(test_directed_presence),
        T(test_directed_presence_bound), T(test_sender_bytes))
