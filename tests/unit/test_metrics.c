/* test_metrics.c: the Prometheus exposition text (xmppd/core/metrics.h). */
#include "testlib.h"

#include "err.h"
#include "metrics.h"

#include <string.h>

static struct metrics_facts facts(void)
{
    struct metrics_facts f;

    memset(&f, 0, sizeof f);
    f.version = "0.1.0";
    f.node_id = "00112233aabbccdd";
    f.uptime_s = 42;
    f.serving = true;
    f.components = 2;
    f.clients_tcp = 3;
    f.clients_ws = 1;
    f.routed = 1000;
    f.term = 7;
    f.commit_index = 19;
    f.applied_index = 18;
    return f;
}

/* has: whether text holds line as a whole line. */
static bool has(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line)) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

static void test_samples(void)
{
    struct metrics_facts f = facts();
    char out[8192];
    int n = metrics_format(&f, out, sizeof out);

    REQUIRE(n > 0);
    CHECK_INT((size_t)n, strlen(out));
    CHECK(out[n - 1] == '\n');
    CHECK(has(out, "xmppd_info{node_id=\"00112233aabbccdd\",version=\"0.1.0\"} 1"));
    CHECK(has(out, "# TYPE xmppd_sessions gauge"));
    CHECK(has(out, "xmppd_sessions{kind=\"component\"} 2"));
    CHECK(has(out, "xmppd_sessions{kind=\"client_tcp\"} 3"));
    CHECK(has(out, "xmppd_sessions{kind=\"client_websocket\"} 1"));
    CHECK(has(out, "# TYPE xmppd_stanzas_routed_total counter"));
    CHECK(has(out, "xmppd_stanzas_routed_total 1000"));
    CHECK(has(out, "xmppd_raft_term 7"));
    CHECK(has(out, "xmppd_raft_commit_index 19"));
    CHECK(has(out, "xmppd_raft_applied_index 18"));
    CHECK(has(out, "xmppd_serving 1"));
    CHECK(has(out, "xmppd_uptime_seconds 42"));
    /* Without clustering: no peer family. */
    CHECK(strstr(out, "xmppd_peer_link_state") == NULL);
}

/* Every counter's name ends in _total and every family has HELP and TYPE
 * before its first sample. */
static void test_conventions(void)
{
    struct metrics_facts f = facts();
    char out[8192], type[96] = "";

    REQUIRE(metrics_format(&f, out, sizeof out) > 0);
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char name[96];
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char kind[16];
            REQUIRE(sscanf(line + 7, "%95s %15s", type, kind) == 2);
            if (strcmp(kind, "counter") == 0) {
                size_t k = strlen(type);
                CHECK(k > 6 && strcmp(type + k - 6, "_total") == 0);
            }
            continue;
        }
        if (line[0] == '#')
            continue;
        CHECK(strncmp(line, "xmppd_", 6) == 0);
        REQUIRE(sscanf(line, "%95[a-z_]", name) == 1);
        CHECK_STR(name, type);
    }
}

static void test_peers(void)
{
    struct metrics_peer p[2] = {{"aaaaaaaaaaaaaaaa", "up"}, {"bbbbbbbbbbbbbbbb", "down"}};
    struct metrics_facts f = facts();
    char out[8192];

    f.cluster = true;
    f.peers = p;
    f.n_peers = 2;
    REQUIRE(metrics_format(&f, out, sizeof out) > 0);
    CHECK(has(out, "xmppd_peer_link_state{peer=\"aaaaaaaaaaaaaaaa\",state=\"up\"} 1"));
    CHECK(has(out, "xmppd_peer_link_state{peer=\"aaaaaaaaaaaaaaaa\",state=\"down\"} 0"));
    CHECK(has(out, "xmppd_peer_link_state{peer=\"bbbbbbbbbbbbbbbb\",state=\"down\"} 1"));
    CHECK(has(out, "xmppd_peer_link_state{peer=\"bbbbbbbbbbbbbbbb\",state=\"up\"} 0"));
}

static void test_escape_and_limit(void)
{
    struct metrics_facts f = facts();
    char out[8192], small[64], esc[32];

    CHECK_INT(metrics_label_escape("a\"b\\c\nd", esc, sizeof esc), 0);
    CHECK_STR(esc, "a\\\"b\\\\c\\nd");
    CHECK_INT(metrics_label_escape("abcdef", esc, 4), XE_LIMIT);
    f.version = "1.0\"x";
    REQUIRE(metrics_format(&f, out, sizeof out) > 0);
    CHECK(has(out, "xmppd_info{node_id=\"00112233aabbccdd\",version=\"1.0\\\"x\"} 1"));
    CHECK_INT(metrics_format(&f, small, sizeof small), XE_LIMIT);
}

TL_MAIN(T(test_samples), T(test_conventions), T(test_peers), T(test_escape_and_limit))
