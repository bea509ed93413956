/* test_health.c: the health verdict (xmppd/core/health.h), fact by fact. */
#include "testlib.h"

#include "health.h"

#include <string.h>

#define NOW 1800000000

static struct health_facts serving(void)
{
    struct health_facts f;

    memset(&f, 0, sizeof f);
    f.now = NOW;
    f.xmpp_enabled = f.serving = true;
    f.cert_set = true;
    f.cert_not_after = NOW + 365 * 86400;
    return f;
}

static void test_healthy(void)
{
    struct health_facts f = serving();
    struct health_verdict v;

    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_OK);
    CHECK_INT(v.n, 0);
    CHECK_STR(health_level_name(v.level), "healthy");
}

static void test_not_serving(void)
{
    struct health_facts f = serving();
    struct health_verdict v;

    f.xmpp_enabled = false;
    f.serving = false;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_FAILED);
    CHECK_STR(v.reasons[0], "[failed] XMPP is disabled: run xmpp enable");
    f.xmpp_enabled = true;
    f.last_error = "cannot listen on 10.0.0.1:5223: address not available";
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_FAILED);
    CHECK_STR(v.reasons[0], "[failed] XMPP is enabled but not served: cannot listen on "
                            "10.0.0.1:5223: address not available");
}

static void test_certificate(void)
{
    struct health_facts f = serving();
    struct health_verdict v;

    f.cert_not_after = NOW + 3 * 86400 + 60;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_DEGRADED);
    CHECK_STR(v.reasons[0], "[degraded] the node certificate expires in 3 days: renew it "
                            "(certs/, xmpp certs)");
    f.cert_not_after = NOW - 2 * 86400;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_FAILED);
    CHECK_STR(v.reasons[0],
              "[failed] the node certificate expired 2 days ago: make a new "
              "one (certs/) and set it with xmpp certs");
    f.cert_set = false; /* no TLS at all: nothing to say about it */
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_OK);
}

static void test_cluster(void)
{
    struct health_facts f = serving();
    struct health_member m[2] = {{"aaaa000000000001", "10.0.0.2:5224", true, true, 150},
                                 {"aaaa000000000002", "10.0.0.3:5224", false, false, 0}};
    struct health_verdict v;

    f.cluster_enabled = true;
    f.leader_known = true;
    f.members = m;
    f.n_members = 2;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_DEGRADED);
    CHECK_INT(v.n, 1);
    CHECK_STR(
        v.reasons[0],
        "[degraded] the peer link to node aaaa000000000002 (10.0.0.3:5224) is down");
    m[1].link_up = true;
    m[0].clock_off_ms = -61000;
    f.leader_known = false;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_DEGRADED);
    CHECK_INT(v.n, 2);
    CHECK(strstr(v.reasons[0], "no cluster leader") != NULL);
    CHECK_STR(v.reasons[1],
              "[degraded] the clock of node aaaa000000000001 (10.0.0.2:5224) "
              "is 61000 ms behind ours: check NTP on both");
    /* a failure is listed before the degradations found earlier */
    f.store_stopped = true;
    f.stop_reason = "cannot write the log: no space left on device";
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_FAILED);
    CHECK_STR(v.reasons[0],
              "[failed] the replicated store stopped (configuration changes "
              "fail): cannot write the log: no space left on device; restart "
              "xmppd once the cause is fixed");
    f.store_stopped = false;
    f.removed = true;
    f.cert_not_after = NOW + 86400 * 2;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_FAILED);
    CHECK_INT(v.n, 2);
    CHECK(strncmp(v.reasons[0], "[failed] this node was removed", 30) == 0);
    CHECK(strncmp(v.reasons[1], "[degraded] the node certificate expires", 39) == 0);
}

/* A draining node still serves its sessions but sends new ones away
 * (xmpp cluster drain): a load balancer should stop sending it more. */
static void test_draining(void)
{
    struct health_facts f = serving();
    struct health_verdict v;

    f.cluster_enabled = f.leader_known = true;
    f.draining = true;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_DEGRADED);
    CHECK_INT(v.n, 1);
    CHECK_STR(v.reasons[0], "[degraded] this node is draining: new sessions are sent to "
                            "other members; xmpp cluster drain --off to serve again");
    f.draining = false;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_OK);
}

static void test_many_reasons(void)
{
    struct health_facts f = serving();
    struct health_member m[HEALTH_MAX_MEMBERS];
    struct health_verdict v;

    memset(m, 0, sizeof m);
    f.cluster_enabled = true;
    f.leader_known = true;
    f.members = m;
    f.n_members = 40;
    health_judge(&f, &v);
    CHECK_INT(v.level, HEALTH_DEGRADED);
    CHECK_INT(v.n, HEALTH_MAX_REASONS);
    CHECK_STR(v.reasons[HEALTH_MAX_REASONS - 1],
              "and more: see xmpp status and xmpp cluster status");
}

TL_MAIN(T(test_healthy), T(test_not_serving), T(test_certificate), T(test_cluster),
        T(test_draining), T(test_many_reasons))
