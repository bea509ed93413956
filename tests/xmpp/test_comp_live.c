/* test_comp_live.c: transcripts of liveness (RFC 6120 §4.6.1, XEP-0199):
 * whitespace keep-alives on idle outbound streams, a server ping to a silent
 * component, and the close after three silent intervals. */
#include "xmpp/fx.h"

static struct fx fx;

#define KA 1000

static int up(void)
{
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.keepalive_ms = KA;
    cfg.auth_timeout_ms = 5000;
    if (fx_start(&fx, &cfg) != 0 || !fx_auth(&fx, 1, "cb1", "secret1"))
        return -1;
    return 0;
}

static void tick(uint64_t now)
{
    fx.now = now;
    srv_tick(fx.srv, now);
}

/* The component keeps talking, the server has nothing to say: a single
 * space every interval. */
static void test_keepalive_on_idle_outbound(void)
{
    REQUIRE(up() == 0);
    CHECK_INT(srv_next_deadline(fx.srv), KA);
    fx.now = 600;
    fx_in(&fx, 1, "<presence from='cb1.example.com' to='example.com'/>");
    tick(KA);
    CHECK_STR(fx_take(&fx, 1), " ");
    CHECK_INT(srv_next_deadline(fx.srv), 600 + KA);
    fx.now = 1500;
    fx_in(&fx, 1, " ");
    tick(1600);
    CHECK_STR(fx_take(&fx, 1), "");
    tick(2000);
    CHECK_STR(fx_take(&fx, 1), " ");
    CHECK_INT(fx.c[1].closes, 0);
    fx_stop(&fx);
}

/* Silent component: ping after one interval, keep-alive after two, closed
 * with connection-timeout after three. */
static void test_ping_then_idle_close(void)
{
    REQUIRE(up() == 0);
    tick(KA - 1);
    CHECK_STR(fx_take(&fx, 1), "");
    tick(KA);
    CHECK_STR(fx_take(&fx, 1), "<iq type='get' id='ping-1' from='example.com' "
                               "to='cb1.example.com'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(srv_next_deadline(fx.srv), 2 * KA);
    tick(2 * KA);
    CHECK_STR(fx_take(&fx, 1), " ");
    CHECK_INT(srv_next_deadline(fx.srv), 3 * KA);
    tick(3 * KA - 1);
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_INT(fx.c[1].closes, 0);
    tick(3 * KA);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("connection-timeout"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK(srv_next_deadline(fx.srv) == SRV_NO_DEADLINE);
    CHECK(fx_log_has(&fx, "n1 c1 stream error connection-timeout: idle"));
    fx_stop(&fx);
}

/* The answer to the ping counts as activity and is consumed by the server. */
static void test_ping_answered(void)
{
    REQUIRE(up() == 0);
    tick(KA);
    fx_take(&fx, 1);
    fx.now = KA + 10;
    fx_in(&fx, 1,
          "<iq type='result' id='ping-1' from='cb1.example.com' to='example.com'/>");
    CHECK_STR(fx_take(&fx, 1), "");
    tick(3 * KA);
    CHECK_INT(fx.c[1].closes, 0);
    tick(KA + 10 + 3 * KA);
    CHECK_INT(fx.c[1].closes, 1);
    fx_stop(&fx);
}

/* The component pings the server (XEP-0199, the other direction). */
static void test_component_pings_server(void)
{
    REQUIRE(up() == 0);
    fx.now = 900;
    fx_in(&fx, 1,
          "<iq type='get' id='c1' from='cb1.example.com' to='example.com'><ping "
          "xmlns='urn:xmpp:ping'/></iq>");
    CHECK_STR(fx_take(&fx, 1),
              "<iq type='result' id='c1' from='example.com' to='cb1.example.com'/>");
    tick(KA);
    CHECK_STR(fx_take(&fx, 1), "");
    CHECK_INT(srv_next_deadline(fx.srv), 900 + KA);
    fx_stop(&fx);
}

TL_MAIN(T(test_keepalive_on_idle_outbound), T(test_ping_then_idle_close),
        T(test_ping_answered), T(test_component_pings_server))
