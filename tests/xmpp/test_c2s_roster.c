/* test_c2s_roster.c: transcripts of rosters and subscriptions between
 * clients on one node (RFC 6121 §2-§4), with the Raft log played by a
 * fake log fed from srv's update (srv_take): each write is applied to the
 * cl_state with cl_apply, the effect pushed (srv_roster_changed) and the
 * result given back (srv_submit_done), in that order, as the edge does. */
#include "roster.h"
#include "xmpp/cx.h"

static struct fx fx;
static struct cl_state *cl;

/* The fake log: writes submitted and not yet applied. */
#define LOGQ_MAX 32
static struct {
    unsigned char *cmd;
    size_t len;
    uint64_t token;
} logq[LOGQ_MAX];
static size_t n_logq;
static int force_state;                  /* answer XE_STATE to this many writes first */
static uint64_t wall = 1700000000123ULL; /* env.wall_ms: 2023-11-14T22:13:20.123Z */

static uint64_t fake_wall(void *ud)
{
    (void)ud;
    return wall;
}
static int refuse;     /* the log refuses this many writes at once */
static bool no_writes; /* up: a srv without roster_writes */

/* take queues the writes srv listed; a full log refuses at once, as the
 * edge does (srv_submit_done outside srv). */
static void take(void)
{
    struct srv_update u;

    srv_take(fx.srv, &u);
    for (size_t i = 0; i < u.nsubmits; i++) {
        const struct srv_submit *s = &u.submits[i];
        if (refuse > 0) {
            refuse--;
            srv_submit_done(fx.srv, s->token, XE_NOLEADER, fx.now);
            continue;
        }
        if (n_logq == LOGQ_MAX || (logq[n_logq].cmd = malloc(s->len)) == NULL) {
            srv_submit_done(fx.srv, s->token, XE_BUSY, fx.now);
            continue;
        }
        memcpy(logq[n_logq].cmd, s->cmd, s->len);
        logq[n_logq].len = s->len;
        logq[n_logq].token = s->token;
        n_logq++;
    }
}

/* pump applies every queued write (and those its actions submit). */
static int pump(void)
{
    int applied = 0;

    for (take(); n_logq > 0; take()) {
        struct cl_effects eff;
        unsigned char *cmd = logq[0].cmd;
        size_t len = logq[0].len;
        uint64_t token = logq[0].token;
        int rc;

        memmove(&logq[0], &logq[1], (n_logq - 1) * sizeof logq[0]);
        n_logq--;
        if (force_state > 0) {
            force_state--;
            rc = XE_STATE;
            eff.kind = CL_EFF_NONE;
        } else {
            rc = cl_apply(cl, cmd, len, &eff);
        }
        free(cmd);
        if (eff.kind == CL_EFF_ROSTER)
            srv_roster_changed(fx.srv, eff.name, eff.roster_jid, fx.now);
        srv_submit_done(fx.srv, token, rc, fx.now);
        applied++;
    }
    return applied;
}

/* up: fx_start with the fake submit; accounts alice, bob. */
static int up(void)
{
    struct srv_config c;
    struct srv_env env = {0};

    memset(&fx, 0, sizeof fx);
    srv_config_default(&c);
    c.domain = "example.com";
    c.node_name = "n1";
    c.roster_writes = !no_writes;
    fx.sink.level = LOG_DEBUG;
    fx.sink.write = fx_logw;
    fx.sink.ud = &fx;
    env.ud = &fx;
    env.send = fx_send;
    env.close = fx_close;
    env.random = fx_random;
    env.starttls = fx_starttls;
    env.wall_ms = fake_wall;
    env.log = &fx.sink;
    if (srv_new(&c, &env, &fx.srv) != 0)
        return -1;
    fx.rnd = 0;
    if (cl_state_new(&cl) != 0 || cx_add_user(cl, "alice", "pa") != 0 ||
        cx_add_user(cl, "bob", "pb") != 0)
        return -1;
    srv_set_accounts(fx.srv, cl);
    return 0;
}

static void down(void)
{
    CHECK_INT(pump(), 0);
    fx_stop(&fx);
    cl_state_free(cl);
    cl = NULL;
    force_state = 0;
    refuse = 0;
    no_writes = false;
}

#define GET(id) "<iq type='get' id='" id "'><query xmlns='jabber:iq:roster'/></iq>"

/* RFC 6121 §2: get (empty), set with a push to every resource and the
 * result after the write is applied, get again, update, remove. */
static void test_roster_get_set_remove(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));

    fx_in(&fx, 3, GET("g1"));
    CHECK_STR(fx_take(&fx, 3), "<iq type='result' id='g1' to='alice@example.com/a'>"
                               "<query xmlns='jabber:iq:roster'/></iq>");

    fx_in(&fx, 3,
          "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
          "<item jid='Bob@Example.com' name='Bob'><group>Friends</group></item>"
          "</query></iq>");
    CHECK_STR(fx_take(&fx, 3), ""); /* nothing before the write is applied */
    CHECK_INT(pump(), 1);
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='set' id='push1' to='alice@example.com/a'>"
              "<query xmlns='jabber:iq:roster'><item jid='bob@example.com' name='Bob' "
              "subscription='none'><group>Friends</group></item></query></iq>"
              "<iq type='result' id='s1' to='alice@example.com/a'/>");
    CHECK_STR(fx_take(&fx, 4),
              "<iq type='set' id='push1' to='alice@example.com/b'>"
              "<query xmlns='jabber:iq:roster'><item jid='bob@example.com' name='Bob' "
              "subscription='none'><group>Friends</group></item></query></iq>");

    fx_in(&fx, 4, GET("g2"));
    CHECK_STR(fx_take(&fx, 4), "<iq type='result' id='g2' to='alice@example.com/b'>"
                               "<query xmlns='jabber:iq:roster'><item "
                               "jid='bob@example.com' name='Bob' subscription='none'>"
                               "<group>Friends</group></item></query></iq>");

    /* errors: §2.1.5 two items; §2.5.3 remove of what is not there */
    fx_in(&fx, 3,
          "<iq type='set' id='e1'><query xmlns='jabber:iq:roster'>"
          "<item jid='x@example.com'/><item jid='y@example.com'/></query></iq>");
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='error' id='e1' to='alice@example.com/a'><error type='modify'>"
              "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    fx_in(&fx, 3,
          "<iq type='set' id='e2'><query xmlns='jabber:iq:roster'>"
          "<item jid='x@example.com' subscription='remove'/></query></iq>");
    CHECK_STR(
        fx_take(&fx, 3),
        "<iq type='error' id='e2' to='alice@example.com/a'><error type='modify'>"
        "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    CHECK_INT(pump(), 0);

    /* a write decided on a state that changed meanwhile: decided again */
    force_state = 1;
    fx_in(&fx, 3,
          "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'>"
          "<item jid='bob@example.com' subscription='remove'/></query></iq>");
    CHECK_INT(pump(), 2);
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='set' id='push2' to='alice@example.com/a'>"
              "<query xmlns='jabber:iq:roster'><item jid='bob@example.com' "
              "subscription='remove'/></query></iq>"
              "<iq type='result' id='s2' to='alice@example.com/a'/>");
    CHECK_STR(fx_take(&fx, 4),
              "<iq type='set' id='push2' to='alice@example.com/b'>"
              "<query xmlns='jabber:iq:roster'><item jid='bob@example.com' "
              "subscription='remove'/></query></iq>");
    CHECK(roster_db_get(cl_rosters(cl), "alice") == NULL);
    down();
}

/* RFC 6121 §3.1: alice subscribes to bob, bob approves; §4.2.2 bob's
 * presence reaches alice, §4.5.2 and his unavailable when he leaves. */
static void test_subscribe_approve_presence(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 3, "<presence/>");
    fx_in(&fx, 5, "<presence/>");
    fx_take(&fx, 3);
    fx_take(&fx, 5);

    fx_in(&fx, 3, "<presence to='bob@example.com' type='subscribe'/>");
    CHECK_INT(pump(), 2); /* alice's outbound write, then bob's inbound one */
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='set' id='push1' to='alice@example.com/a'>"
              "<query xmlns='jabber:iq:roster'><item jid='bob@example.com' "
              "subscription='none' ask='subscribe'/></query></iq>");
    /* §3.1.3: delivered to bob; no push: not an item of his (A.1) */
    CHECK_STR(fx_take(&fx, 5), "<presence to='bob@example.com' type='subscribe' "
                               "from='alice@example.com'/>");

    fx_in(&fx, 5, "<presence to='alice@example.com' type='subscribed'/>");
    CHECK_INT(pump(), 2);
    CHECK_STR(fx_take(&fx, 5),
              "<iq type='set' id='push2' to='bob@example.com/x'>"
              "<query xmlns='jabber:iq:roster'><item jid='alice@example.com' "
              "subscription='from'/></query></iq>");
    /* §3.1.5: bob's presence to alice, then §3.1.6 the push and the
     * subscribed delivered */
    CHECK_STR(fx_take(&fx, 3),
              "<presence from='bob@example.com/x' to='alice@example.com'/>"
              "<iq type='set' id='push3' to='alice@example.com/a'>"
              "<query xmlns='jabber:iq:roster'><item jid='bob@example.com' "
              "subscription='to'/></query></iq>"
              "<presence to='alice@example.com' type='subscribed' "
              "from='bob@example.com'/>");

    /* §4.4.2: bob's presence updates go to alice (from), not the reverse */
    fx_in(&fx, 5, "<presence><show>away</show></presence>");
    CHECK_STR(fx_take(&fx, 3), "<presence from='bob@example.com/x' "
                               "to='alice@example.com'><show>away</show></presence>");
    fx_take(&fx, 5);
    fx_in(&fx, 3, "<presence><show>dnd</show></presence>");
    CHECK_STR(fx_take(&fx, 5), "");
    fx_take(&fx, 3);

    /* §4.5.2: bob leaves: alice gets his unavailable */
    fx_in(&fx, 5, "</stream:stream>");
    fx_take(&fx, 5);
    CHECK_STR(fx_take(&fx, 3), "<presence from='bob@example.com/x' type='unavailable' "
                               "to='alice@example.com'/>");

    /* §4.3: bob comes back: he probes nobody (he has "from"), alice's
     * probe at her next login is answered with his presence */
    REQUIRE(cx_login(&fx, 6, "bob", "pb", "y"));
    fx_in(&fx, 6, "<presence/>");
    CHECK_STR(fx_take(&fx, 3), "<presence from='bob@example.com/y' "
                               "to='alice@example.com'/>");
    fx_take(&fx, 6);
    REQUIRE(cx_login(&fx, 7, "alice", "pa", "c"));
    fx_in(&fx, 7, "<presence/>");
    CHECK_STR(fx_take(&fx, 7),
              "<presence from='alice@example.com/c' to='alice@example.com/c'/>"
              "<presence from='alice@example.com/a' to='alice@example.com/c'>"
              "<show>dnd</show></presence>"
              "<presence from='bob@example.com/y' to='alice@example.com/c'/>");
    CHECK_STR(fx_take(&fx, 6), ""); /* alice has "to": bob gets nothing */
    down();
}

/* §3.1.3: a request to a user who is offline is kept and delivered at
 * the next login. */
static void test_pending_redelivered(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx_in(&fx, 3, "<presence/>");
    fx_take(&fx, 3);
    fx_in(&fx, 3,
          "<presence to='bob@example.com' type='subscribe'><status>hi</status>"
          "</presence>");
    CHECK_INT(pump(), 2);
    fx_take(&fx, 3);
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 5, "<presence/>");
    CHECK_STR(fx_take(&fx, 5),
              "<presence from='bob@example.com/x' to='bob@example.com/x'/>"
              "<presence to='bob@example.com' type='subscribe' "
              "from='alice@example.com'><status>hi</status></presence>");
    down();
}

/* sodium_malloc (call-bridge secrets) needs sodium_init. */
__attribute__((constructor)) static void setup(void)
{
    if (sodium_init() < 0)
        abort();
}

/* RFC 6121 §4.3.2: a probe for a contact with no available resource is
 * answered with unavailable presence from the contact's bare JID; once
 * the contact is online the answer is the contact's presence. */
static void test_probe_offline_contact(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 3, "<presence/>");
    fx_in(&fx, 5, "<presence/>");
    fx_take(&fx, 3);
    fx_take(&fx, 5);
    fx_in(&fx, 3, "<presence to='bob@example.com' type='subscribe'/>");
    CHECK_INT(pump(), 2);
    fx_in(&fx, 5, "<presence to='alice@example.com' type='subscribed'/>");
    CHECK_INT(pump(), 2);
    fx_in(&fx, 5, "</stream:stream>");
    fx_take(&fx, 3);
    fx_take(&fx, 5);

    /* bob is offline: alice's new resource probes him at login */
    REQUIRE(cx_login(&fx, 4, "alice", "pa", "b"));
    fx_in(&fx, 4, "<presence/>");
    /* his last unavailable presence (§4.3.2): the connection ended, so it
     * has no status; from the resource that left, stamped (XEP-0203) */
    CHECK_STR(fx_take(&fx, 4),
              "<presence from='alice@example.com/b' to='alice@example.com/b'/>"
              "<presence from='alice@example.com/a' to='alice@example.com/b'/>"
              "<presence from='bob@example.com/x' to='alice@example.com/b' "
              "type='unavailable'><delay xmlns='urn:xmpp:delay' from='example.com' "
              "stamp='2023-11-14T22:13:20.123Z'/></presence>");
    /* bob comes back: his presence, not the unavailable, reaches alice */
    fx_take(&fx, 3);
    REQUIRE(cx_login(&fx, 6, "bob", "pb", "y"));
    fx_in(&fx, 6, "<presence/>");
    fx_take(&fx, 6);
    CHECK_STR(fx_take(&fx, 3), "<presence from='bob@example.com/y' "
                               "to='alice@example.com'/>");
    down();
}

/* subscribed: alice subscribed to bob and approved (alice "to", bob
 * "from"), both available, connections 3 (alice/a) and 5 (bob/x). */
static void subscribed(void)
{
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 3, "<presence/>");
    fx_in(&fx, 5, "<presence/>");
    fx_in(&fx, 3, "<presence to='bob@example.com' type='subscribe'/>");
    CHECK_INT(pump(), 2);
    fx_in(&fx, 5, "<presence to='alice@example.com' type='subscribed'/>");
    CHECK_INT(pump(), 2);
    fx_take(&fx, 3);
    fx_take(&fx, 5);
}

/* RFC 6121 §3.3: alice unsubscribes from bob: both items go to "none"
 * (a push each), bob gets the unsubscribe and alice (§3.3.3) the
 * unavailable presence of bob's available resource.  §3.2: bob cancels
 * alice's subscription instead: the same items, alice gets his
 * unavailable and the unsubscribed, and his later presence no longer. */
static void test_unsubscribe_and_cancel(void)
{
    REQUIRE(up() == 0);
    subscribed();
    fx_in(&fx, 3, "<presence to='bob@example.com' type='unsubscribe'/>");
    CHECK_INT(pump(), 2);
    CHECK_STR(fx_take(&fx, 3),
              "<iq type='set' id='push4' to='alice@example.com/a'><query "
              "xmlns='jabber:iq:roster'><item jid='bob@example.com' "
              "subscription='none'/></query></iq><presence from='bob@example.com/x' "
              "to='alice@example.com' type='unavailable'/>");
    CHECK_STR(fx_take(&fx, 5),
              "<iq type='set' id='push5' to='bob@example.com/x'><query "
              "xmlns='jabber:iq:roster'><item jid='alice@example.com' "
              "subscription='none'/></query></iq><presence to='bob@example.com' "
              "type='unsubscribe' from='alice@example.com'/>");
    down();

    REQUIRE(up() == 0);
    subscribed();
    fx_in(&fx, 5, "<presence to='alice@example.com' type='unsubscribed'/>");
    CHECK_INT(pump(), 2);
    CHECK_STR(fx_take(&fx, 3),
              "<presence from='bob@example.com/x' to='alice@example.com' "
              "type='unavailable'/><iq type='set' id='push5' "
              "to='alice@example.com/a'><query xmlns='jabber:iq:roster'><item "
              "jid='bob@example.com' subscription='none'/></query></iq><presence "
              "to='alice@example.com' type='unsubscribed' from='bob@example.com'/>");
    CHECK_STR(fx_take(&fx, 5), "<iq type='set' id='push4' to='bob@example.com/x'><query "
                               "xmlns='jabber:iq:roster'><item jid='alice@example.com' "
                               "subscription='none'/></query></iq>");
    fx_in(&fx, 5, "<presence><show>away</show></presence>");
    CHECK_STR(fx_take(&fx, 3), "");
    down();
}

#define SET_BOB(id)                                                                      \
    "<iq type='set' id='" id "'><query xmlns='jabber:iq:roster'>"                        \
    "<item jid='bob@example.com'/></query></iq>"

/* A write the log refuses at once is answered from srv_submit_done, which
 * the edge calls after it took the write (outside srv); without
 * roster_writes srv refuses the write itself.  Both: wait,
 * internal-server-error, nothing pushed. */
static void test_write_refused(void)
{
    static const char err[] =
        "<iq type='error' id='%s' to='alice@example.com/a'><error type='wait'>"
        "<internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "</error></iq>";
    char want[256];

    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    refuse = 1;
    fx_in(&fx, 3, SET_BOB("r1"));
    CHECK_STR(fx_take(&fx, 3), ""); /* listed, not refused yet */
    CHECK_INT(pump(), 0);
    snprintf(want, sizeof want, err, "r1");
    CHECK_STR(fx_take(&fx, 3), want);
    CHECK_INT(refuse, 0);
    /* the next write goes through */
    fx_in(&fx, 3, SET_BOB("r2"));
    CHECK_INT(pump(), 1);
    CHECK(strstr(fx_take(&fx, 3), "<iq type='result' id='r2'") != NULL);
    down();

    no_writes = true; /* again, on a srv that takes no roster writes */
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx_in(&fx, 3, SET_BOB("r3"));
    snprintf(want, sizeof want, err, "r3");
    CHECK_STR(fx_take(&fx, 3), want);
    CHECK_INT(pump(), 0);
    down();
}

/* The last unavailable presence (RFC 6121 §4.3.2, §4.5.3): a probe of a
 * user with no available resource is answered with the unavailable
 * presence the user last sent, from that resource, with its status and a
 * XEP-0203 delay saying when; the newest replaces the older. */
static void test_probe_last_unavailable(void)
{
    REQUIRE(up() == 0);
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    REQUIRE(cx_login(&fx, 6, "bob", "pb", "y"));
    fx_in(&fx, 3, "<presence/>");
    fx_in(&fx, 5, "<presence/>");
    fx_in(&fx, 6, "<presence/>");
    fx_in(&fx, 3, "<presence to='bob@example.com' type='subscribe'/>");
    CHECK_INT(pump(), 2);
    fx_in(&fx, 5, "<presence to='alice@example.com' type='subscribed'/>");
    CHECK_INT(pump(), 2);
    fx_take(&fx, 3);
    /* bob/x leaves with a status; bob/y is still available: a probe gets
     * bob/y's presence, not the stored one */
    wall = 1700000000123ULL;
    fx_in(&fx, 5,
          "<presence type='unavailable'><status>gone &amp; back</status>"
          "</presence>");
    fx_take(&fx, 3);
    fx_in(&fx, 3, "<presence type='probe' to='bob@example.com'/>");
    CHECK_STR(fx_take(&fx, 3), "<presence from='bob@example.com/y' "
                               "to='alice@example.com/a'/>");
    /* bob/y leaves later with another status: the newest is kept */
    wall = 1700000060456ULL;
    fx_in(&fx, 6, "<presence type='unavailable'><status>lunch</status></presence>");
    fx_take(&fx, 3);
    fx_in(&fx, 3, "<presence type='probe' to='bob@example.com'/>");
    CHECK_STR(fx_take(&fx, 3),
              "<presence from='bob@example.com/y' to='alice@example.com/a' "
              "type='unavailable'><status>lunch</status><delay xmlns='urn:xmpp:delay' "
              "from='example.com' stamp='2023-11-14T22:14:20.456Z'/></presence>");
    /* the connection of bob/x ends now: it was unavailable already, so the
     * record stays bob/y's */
    fx_in(&fx, 5, "</stream:stream>");
    fx_in(&fx, 3, "<presence type='probe' to='bob@example.com'/>");
    CHECK(strstr(fx_take(&fx, 3), "from='bob@example.com/y'") != NULL);
    down();
}

/* both_of puts contact in user's roster with subscription both, straight
 * into the replicated state (as an applied ROSTER_SET). */
static void both_of(const char *user, const char *contact)
{
    struct roster_item it = {0};
    struct roster_cmd c;
    unsigned char *buf = NULL;
    size_t len = 0;

    it.jid = (char *)contact;
    it.sub = ROSTER_SUB_BOTH;
    it.listed = true;
    roster_cmd_set(&c, user, &it);
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    REQUIRE(cl_apply(cl, buf, len, NULL) == 0);
    free(buf);
}

/* A last unavailable presence is kept only for an account that exists: a
 * deleted account's record goes with it (its sessions close after the
 * deletion), and a record of an unknown account (an entry applied after
 * the deletion) is not kept, so a new account of that name does not
 * answer probes with its predecessor's presence. */
static void test_last_unavailable_account_gone(void)
{
    struct cl_cmd *c = malloc(sizeof *c);
    unsigned char *buf;
    size_t len;

    REQUIRE(c != NULL);
    REQUIRE(up() == 0);
    both_of("alice", "bob@example.com");
    both_of("bob", "alice@example.com");
    REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
    fx_in(&fx, 5, "<presence/>");
    fx_in(&fx, 5, "<presence type='unavailable'><status>old</status></presence>");
    REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
    fx_in(&fx, 3, "<presence/>");
    CHECK(strstr(fx_take(&fx, 3), "<status>old</status>") != NULL);
    /* bob's account is deleted (his session closes), then made again */
    cl_cmd_user_del(c, "bob");
    REQUIRE(cl_cmd_encode(c, &buf, &len) == 0);
    REQUIRE(cl_apply(cl, buf, len, NULL) == 0);
    cl_buf_free(buf, len);
    srv_user_deleted(fx.srv, "bob");
    srv_lastpres_applied(fx.srv, "bob", "x", "late", 1700000000000ULL);
    REQUIRE(cx_add_user(cl, "bob", "pb2") == 0);
    both_of("bob", "alice@example.com");
    fx_take(&fx, 3);
    fx_in(&fx, 3, "<presence type='probe' to='bob@example.com'/>");
    CHECK_STR(fx_take(&fx, 3), "<presence from='bob@example.com' "
                               "to='alice@example.com/a' type='unavailable'/>");
    free(c);
    down();
}

/* A pending inbound request is no roster item (RFC 6121 A.1, §3.1.3: no
 * push when it comes); when it ends without becoming one (the requester
 * cancels it, §3.3, or the contact refuses it, §3.2.1) the contact's
 * resources get no roster push either: a "remove" of an item they were
 * never shown is not an update of their roster (§2.1.6). */
static void test_request_ends_unseen(void)
{
    for (int deny = 0; deny < 2; deny++) {
        REQUIRE(up() == 0);
        REQUIRE(cx_login(&fx, 3, "alice", "pa", "a"));
        REQUIRE(cx_login(&fx, 5, "bob", "pb", "x"));
        fx_in(&fx, 3, "<presence/>");
        fx_in(&fx, 5, "<presence/>");
        fx_take(&fx, 3);
        fx_take(&fx, 5);
        fx_in(&fx, 3, "<presence to='bob@example.com' type='subscribe'/>");
        CHECK_INT(pump(), 2);
        fx_take(&fx, 3);
        CHECK_STR(fx_take(&fx, 5), "<presence to='bob@example.com' type='subscribe' "
                                   "from='alice@example.com'/>");
        if (deny) {
            fx_in(&fx, 5, "<presence to='alice@example.com' type='unsubscribed'/>");
            CHECK_INT(pump(), 2);
            CHECK(strstr(fx_take(&fx, 3), "type='unsubscribed'") != NULL);
            CHECK_STR(fx_take(&fx, 5), "");
        } else {
            fx_in(&fx, 3, "<presence to='bob@example.com' type='unsubscribe'/>");
            CHECK_INT(pump(), 2);
            fx_take(&fx, 3);
            CHECK_STR(fx_take(&fx, 5),
                      "<presence to='bob@example.com' type='unsubscribe' "
                      "from='alice@example.com'/>");
        }
        fx_in(&fx, 5, GET("g1"));
        CHECK_STR(fx_take(&fx, 5), "<iq type='result' id='g1' to='bob@example.com/x'>"
                                   "<query xmlns='jabber:iq:roster'/></iq>");
        down();
    }
}

TL_MAIN(T(test_unsubscribe_and_cancel), T(test_request_ends_unseen),
        T(test_roster_get_set_remove), T(test_subscribe_approve_presence),
        T(test_pending_redelivered), T(test_probe_offline_contact), T(test_write_refused),
        T(test_probe_last_unavailable), T(test_last_unavailable_account_gone))
