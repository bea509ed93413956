/* test_drain.c: transcripts of a draining node
 * (docs/cluster.md "Draining a node"): srv_drain closes a component and a
 * 5222 client with the stream error see-other-host naming another member
 * (RFC 6120 §4.9.3.19), spreads sessions over the members in turn, answers
 * new sessions the same way while draining, and serves again after
 * srv_undrain.  The WebSocket side (see-other-uri) is in test_c2s_ws.c. */
#include "xmpp/cx.h"

static struct fx fx;
static struct cl_state *cl;

/* SOH: the stream error see-other-host naming host, and the stream close. */
#define SOH(host)                                                                        \
    "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>" host    \
    "</see-other-host></stream:error></stream:stream>"

static const struct srv_drain_target n2 = {0x2222, "10.0.0.2:5223", "10.0.0.2:5222",
                                           "wss://10.0.0.2:5281/xmpp-websocket"};
static const struct srv_drain_target n3 = {0x3333, "[2001:db8::3]:5223",
                                           "[2001:db8::3]:5222", NULL};

static int up(void)
{
    if (fx_start(&fx, NULL) != 0 || cl_state_new(&cl) != 0 ||
        cx_add_user(cl, "alice", "pa") != 0)
        return -1;
    srv_set_accounts(fx.srv, cl);
    return 0; /* fx_start: call bridges cb1 and cb2 */
}

static void down(void)
{
    fx_stop(&fx);
    cl_state_free(cl);
    cl = NULL;
}

/* A component and a 5222 client, both logged in, are each closed with
 * see-other-host naming the one other member; the node then has no
 * session, and says so. */
static void test_drain_closes_with_see_other_host(void)
{
    struct srv_stats st;

    REQUIRE(up() == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "phone"));
    CHECK(!srv_draining(fx.srv));
    CHECK_INT(srv_drain(fx.srv, &n2, 1, fx.now), 0);
    CHECK(srv_draining(fx.srv));
    CHECK_STR(fx_take(&fx, 1), SOH("10.0.0.2:5223"));
    CHECK_STR(fx_take(&fx, 3), SOH("10.0.0.2:5222"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_INT(fx.c[3].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 0);
    CHECK_INT(st.components, 0);
    CHECK_INT(st.clients, 0);
    CHECK_INT(st.redirected, 2);
    CHECK(fx_log_has(&fx,
                     "n1 c1 stream error see-other-host 10.0.0.2:5223: node draining "
                     "(component cb1.example.com, peer 127.0.0.1:40001)"));
    down();
}

/* With two members, sessions of a kind go to each in turn (srv's choice,
 * so the other members share the load); an IPv6 host is bracketed as the
 * edge gave it. */
static void test_drain_spreads_over_members(void)
{
    const struct srv_drain_target t[2] = {n2, n3};

    REQUIRE(up() == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    CHECK_INT(srv_drain(fx.srv, t, 2, fx.now), 0);
    /* the table's order decides which gets which; together they name both */
    fx_take(&fx, 1);
    {
        char a[sizeof fx.taken];
        memcpy(a, fx.taken, sizeof a);
        fx_take(&fx, 2);
        CHECK((strcmp(a, SOH("10.0.0.2:5223")) == 0 &&
               strcmp(fx.taken, SOH("[2001:db8::3]:5223")) == 0) ||
              (strcmp(a, SOH("[2001:db8::3]:5223")) == 0 &&
               strcmp(fx.taken, SOH("10.0.0.2:5223")) == 0));
    }
    down();
}

/* While draining, a new component or client is answered on its first
 * bytes: our header, see-other-host, close; nothing of its stream is
 * read.  After srv_undrain they are served again. */
static void test_new_sessions_refused_while_draining(void)
{
    char want[1024];

    REQUIRE(up() == 0);
    CHECK_INT(srv_drain(fx.srv, &n2, 1, fx.now), 0);
    fx_open(&fx, 1);
    fx_in(&fx, 1, FX_OPEN("cb1.example.com"));
    snprintf(want, sizeof want, "%s",
             fx_hdr(&fx, 1, "example.com", SOH("10.0.0.2:5223")));
    CHECK_STR(fx_take(&fx, 1), want);
    CHECK_INT(fx.c[1].closes, 1);
    fx_open_kind(&fx, 3, SRV_LISTENER_CLIENT);
    fx_in(&fx, 3, CX_OPEN);
    CHECK_STR(fx_take(&fx, 3), cx_hdr(&fx, fx.c[3].sid, SOH("10.0.0.2:5222")));
    CHECK_INT(fx.c[3].closes, 1);
    CHECK(!srv_callbridge_connected(fx.srv, "cb1"));

    srv_undrain(fx.srv);
    CHECK(!srv_draining(fx.srv));
    REQUIRE(fx_auth(&fx, 4, "cb1", "secret1"));
    CHECK(srv_callbridge_connected(fx.srv, "cb1"));
    CHECK(cx_login(&fx, 5, "alice", "pa", "phone"));
    down();
}

/* A kind no member serves (no client listener named) gets
 * system-shutdown; a target that serves nothing, or none, is refused. */
static void test_drain_without_a_target_for_the_kind(void)
{
    const struct srv_drain_target comp_only = {0x2222, "10.0.0.2:5223", NULL, NULL};
    const struct srv_drain_target nothing = {0x2222, NULL, "", NULL};

    REQUIRE(up() == 0);
    CHECK_INT(srv_drain(fx.srv, NULL, 0, fx.now), XE_INVAL);
    CHECK_INT(srv_drain(fx.srv, &nothing, 1, fx.now), XE_INVAL);
    CHECK(!srv_draining(fx.srv));
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "phone"));
    CHECK_INT(srv_drain(fx.srv, &comp_only, 1, fx.now), 0);
    CHECK_STR(fx_take(&fx, 3), FX_ERR("system-shutdown"));
    down();
}

TL_MAIN(T(test_drain_closes_with_see_other_host), T(test_drain_spreads_over_members),
        T(test_new_sessions_refused_while_draining),
        T(test_drain_without_a_target_for_the_kind))
