/* test_comp_close.c: transcripts of how a component session ends: a session
 * is closed once, whatever closes it and however many paths try
 * (defect 1).  The fixture's edge refuses bytes for a connection srv asked to
 * close (as conn_send does), counts them (late_sends) and counts close
 * requests; fx_stop checks that no connection was written after its close
 * and none was closed twice.  Under ASan a session put on srv's dead list
 * twice shows as a heap-use-after-free in the reaper. */
#include <stdlib.h>

#include "fwd.h"
#include "pframe.h"
#include "xmpp/fx.h"

static struct fx fx;

static int no_peer_send(void *ud, uint64_t node, struct pframe *f)
{
    (void)ud;
    (void)node;
    (void)f;
    return XE_BUSY;
}

/* lead starts cluster mode as node 1 of members {1, 2} and makes node 1 the
 * leader of term 1: the routing table is then this srv's own. */
static void lead(void)
{
    struct fwd_config c;
    struct srv_cluster_env env = {&fx, no_peer_send};
    uint64_t ids[2] = {1, 2};

    fwd_config_default(&c);
    c.node_id = 1;
    c.incarnation = 11;
    REQUIRE(srv_cluster_start(fx.srv, &c, &env, fx.now) == 0);
    REQUIRE(srv_cluster_set_members(fx.srv, ids, 2, fx.now) == 0);
    REQUIRE(srv_cluster_set_leader(fx.srv, 1, 1, fx.now) == 0);
}

/* node2_reports tells the leader that node 2 now holds name (session sid,
 * with order ord from an earlier leader, 0: none). */
static void node2_reports(const char *name, uint64_t sid, uint64_t ord)
{
    struct pframe_sess add = {name, sid, ord, {0}};
    struct pframe f = {.type = PFRAME_SESSIONS};

    f.u.sessions = (struct pframe_sessions){2, 1, 1, false, &add, 1, NULL, 0};
    CHECK_INT(srv_cluster_input(fx.srv, 2, &f, fx.now), 0);
}

/* Defect 1 crashed the leader when a session authenticating here lost a
 * conflict inside its own handshake (the table held a session of its name
 * with a later wall-clock time from a node whose clock ran 60 s ahead): it
 * was closed, set READY again, its <handshake/> write failed and closed it
 * a second time, and srv_reap freed it twice.  Orders now come from the
 * leader, so a session that is authenticating is the newest and cannot
 * lose there, whatever a report claims; and whatever closes a session
 * closes it once.  Here node 2 claims an order far in the future: the
 * session here still wins; then node 2 reports a session that really is
 * newer: ours is closed once, with conflict. */
static void test_conflict_inside_handshake(void)
{
    struct srv_stats st;
    struct srv_cluster_stats cs;

    REQUIRE(fx_start(&fx, NULL) == 0);
    lead();
    node2_reports("cb1.example.com", 7, (1000ULL << 32) + 5); /* "from the future" */
    fx_open(&fx, 1);
    fx_in(&fx, 1, FX_OPEN("cb1.example.com"));
    fx_handshake(&fx, 1, "secret1");
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "cb1.example.com", "<handshake/>"));
    CHECK(srv_callbridge_connected(fx.srv, "cb1"));
    CHECK_INT(srv_cluster_components(fx.srv, 1), 1);
    CHECK_INT(srv_cluster_components(fx.srv, 2), 0);
    /* node 2 takes the name over for real: ours closes, once */
    node2_reports("cb1.example.com", 8, 0);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("conflict"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_INT(fx.c[1].late_sends, 0);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 0);
    CHECK_INT(st.components, 0);
    CHECK(!srv_callbridge_connected(fx.srv, "cb1"));
    srv_cluster_get_stats(fx.srv, &cs);
    CHECK_INT(cs.conflicts_closed, 1);
    CHECK_INT(srv_cluster_components(fx.srv, 2), 1);
    CHECK_INT(srv_cluster_components(fx.srv, 1), 0);
    /* Input, ticks and the edge's report after the close change nothing. */
    fx_in(&fx, 1, "<message from='a@cb1.example.com' to='b@cb2.example.com'/>");
    fx.now += 60000;
    srv_tick(fx.srv, fx.now);
    srv_conn_closed(fx.srv, 1, fx.now);
    CHECK_STR(fx_take(&fx, 1), "");
    fx_stop(&fx);
}

/* A second session of cb1 authenticating here replaces the local one
 * (conflict, the new session wins locally); node 2's later session then
 * wins over it (conflict again).  Each is closed once. */
static void test_conflict_inside_handshake_replacing(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    lead();
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    fx_open(&fx, 2);
    fx_in(&fx, 2, FX_OPEN("cb1.example.com"));
    fx_handshake(&fx, 2, "secret1");
    CHECK_STR(fx_take(&fx, 1), FX_ERR("conflict"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK_STR(fx_take(&fx, 2), fx_hdr(&fx, 2, "cb1.example.com", "<handshake/>"));
    node2_reports("cb1.example.com", 9, 0);
    CHECK_STR(fx_take(&fx, 2), FX_ERR("conflict"));
    CHECK_INT(fx.c[2].closes, 1);
    CHECK_INT(fx.c[1].closes, 1);
    CHECK(!srv_callbridge_connected(fx.srv, "cb1"));
    fx_stop(&fx);
}

/* A session whose every write fails: the header, the stream error and the
 * close each try to write; it is closed once. */
static void test_failed_writes_close_once(void)
{
    struct srv_stats st;

    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx.c[1].fail_send = true;
    fx_in(&fx, 1, FX_OPEN("cb1.example.com"));
    CHECK_INT(fx.c[1].closes, 1);
    fx_in(&fx, 1, "<handshake/>");
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 0);
    /* Authenticated, then the <handshake/> write fails. */
    fx_open(&fx, 2);
    fx_in(&fx, 2, FX_OPEN("cb2.example.com"));
    fx.c[2].fail_send = true;
    fx_handshake(&fx, 2, "secret2");
    CHECK_INT(fx.c[2].closes, 1);
    CHECK(!srv_callbridge_connected(fx.srv, "cb2"));
    /* A READY session whose conflict error cannot be written. */
    REQUIRE(fx_auth(&fx, 3, "cb1", "secret1"));
    fx.c[3].fail_send = true;
    REQUIRE(fx_auth(&fx, 4, "cb1", "secret1"));
    CHECK_INT(fx.c[3].closes, 1);
    CHECK(srv_callbridge_connected(fx.srv, "cb1"));
    /* Shutdown with a failing write. */
    fx.c[4].fail_send = true;
    srv_shutdown(fx.srv);
    CHECK_INT(fx.c[4].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 0);
    fx_stop(&fx);
}

/* A timeout whose stream error cannot be written, and the edge's report of
 * the same connection afterwards. */
static void test_timeout_then_edge_close(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    fx_open(&fx, 1);
    fx.c[1].fail_send = true;
    fx.now += 10000;
    srv_tick(fx.srv, fx.now);
    CHECK_INT(fx.c[1].closes, 1);
    srv_conn_closed(fx.srv, 1, fx.now);
    srv_tick(fx.srv, fx.now + 10000);
    CHECK_INT(fx.c[1].closes, 1);
    fx_stop(&fx);
}

TL_MAIN(T(test_conflict_inside_handshake), T(test_conflict_inside_handshake_replacing),
        T(test_failed_writes_close_once), T(test_timeout_then_edge_close))
