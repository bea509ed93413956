/* test_roster.c: unit tests for rosters and subscriptions (core/roster*.c):
 * every row of RFC 6121 Appendix A (state and stanza -> new state, actions,
 * write), the §3 flows between two users through the replicated store,
 * roster set/remove validation and errors, presence selections, the
 * command and snapshot codecs with truncated and corrupted input at every
 * byte, and the bounds.  One file for the four source files of the module
 * (past 1,000 lines): most of it is the 72-row table and the flows, which
 * read best next to the helpers they share. */
#include <stdbool.h>

#include "err.h"
#include "roster.h"
#include "stz.h"
#include "testlib.h"

/* ---- helpers ---- */

static const char *const state_names[ROSTER_N_STATES] = {
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out+In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
};

/* st_of finds a state by its RFC name (so the tables below are written in
 * the RFC's words, not in the module's enum). */
static enum roster_state st_of(const char *name)
{
    for (int i = 0; i < ROSTER_N_STATES; i++)
        if (strcmp(state_names[i], name) == 0)
            return (enum roster_state)i;
    TL_FAIL_("unknown state name %s", name);
    return ROSTER_ST_NONE;
}

/* item sets *it to a listed entry for jid in state st; strings borrowed. */
static void item(struct roster_item *it, const char *jid, enum roster_state st)
{
    memset(it, 0, sizeof *it);
    it->jid = (char *)jid;
    it->listed = true;
    roster_state_apply(it, st);
}

/* acts renders a decision's actions as letters: R route, D deliver, P push,
 * S send presence, U unavailable, A auto-reply, K keep request, X drop;
 * routes and auto-replies are followed by the type's first letters. */
static const char *acts(const struct roster_decision *d)
{
    static char s[64];
    size_t n = 0;

    s[0] = '\0';
    for (size_t i = 0; i < d->n_act; i++) {
        static const char letters[] = "RDPSUAKX";
        s[n++] = letters[d->act[i].kind];
        if (d->act[i].kind == ROSTER_ACT_ROUTE ||
            d->act[i].kind == ROSTER_ACT_AUTO_REPLY) {
            const char *t = roster_pres_name(d->act[i].type);
            n += (size_t)snprintf(s + n, sizeof s - n, "(%s)", t);
        }
        s[n] = '\0';
    }
    return s;
}

static char write_letter(enum roster_write w)
{
    return w == ROSTER_WRITE_SET ? 'S' : w == ROSTER_WRITE_DEL ? 'D' : '-';
}

/* ---- Appendix A, row by row ---- */

struct arow {
    enum roster_dir dir;
    enum roster_pres type;
    const char *from, *to; /* RFC state names; to NULL: "no state change" */
    bool pass;             /* the table's route? / deliver? column */
    const char *acts;      /* for a listed item in state from */
    char write;
};

#define OUT ROSTER_OUT
#define IN ROSTER_IN
#define SUB ROSTER_PRES_SUBSCRIBE
#define SUBD ROSTER_PRES_SUBSCRIBED
#define UNS ROSTER_PRES_UNSUBSCRIBE
#define UNSD ROSTER_PRES_UNSUBSCRIBED

static const struct arow rows[] = {
    /* A.2.1 outbound subscribe */
    {OUT, SUB, "None", "None + Pending Out", true, "R(subscribe)P", 'S'},
    {OUT, SUB, "None + Pending Out", NULL, true, "R(subscribe)", '-'},
    {OUT, SUB, "None + Pending In", "None + Pending Out+In", true, "R(subscribe)P", 'S'},
    {OUT, SUB, "None + Pending Out+In", NULL, true, "R(subscribe)", '-'},
    {OUT, SUB, "To", NULL, true, "R(subscribe)", '-'},
    {OUT, SUB, "To + Pending In", NULL, true, "R(subscribe)", '-'},
    {OUT, SUB, "From", "From + Pending Out", true, "R(subscribe)P", 'S'},
    {OUT, SUB, "From + Pending Out", NULL, true, "R(subscribe)", '-'},
    {OUT, SUB, "Both", NULL, true, "R(subscribe)", '-'},
    /* A.2.2 outbound unsubscribe */
    {OUT, UNS, "None", NULL, true, "R(unsubscribe)", '-'},
    {OUT, UNS, "None + Pending Out", "None", true, "R(unsubscribe)P", 'S'},
    {OUT, UNS, "None + Pending In", NULL, true, "R(unsubscribe)", '-'},
    {OUT, UNS, "None + Pending Out+In", "None + Pending In", true, "R(unsubscribe)P",
     'S'},
    {OUT, UNS, "To", "None", true, "R(unsubscribe)P", 'S'},
    {OUT, UNS, "To + Pending In", "None + Pending In", true, "R(unsubscribe)P", 'S'},
    {OUT, UNS, "From", NULL, true, "R(unsubscribe)", '-'},
    {OUT, UNS, "From + Pending Out", "From", true, "R(unsubscribe)P", 'S'},
    {OUT, UNS, "Both", "From", true, "R(unsubscribe)P", 'S'},
    /* A.2.3 outbound subscribed */
    {OUT, SUBD, "None", NULL, false, "X", '-'},
    {OUT, SUBD, "None + Pending Out", NULL, false, "X", '-'},
    {OUT, SUBD, "None + Pending In", "From", true, "R(subscribed)PS", 'S'},
    {OUT, SUBD, "None + Pending Out+In", "From + Pending Out", true, "R(subscribed)PS",
     'S'},
    {OUT, SUBD, "To", NULL, false, "X", '-'},
    {OUT, SUBD, "To + Pending In", "Both", true, "R(subscribed)PS", 'S'},
    {OUT, SUBD, "From", NULL, false, "X", '-'},
    {OUT, SUBD, "From + Pending Out", NULL, false, "X", '-'},
    {OUT, SUBD, "Both", NULL, false, "X", '-'},
    /* A.2.4 outbound unsubscribed */
    {OUT, UNSD, "None", NULL, false, "X", '-'},
    {OUT, UNSD, "None + Pending Out", NULL, false, "X", '-'},
    {OUT, UNSD, "None + Pending In", "None", true, "UR(unsubscribed)P", 'S'},
    {OUT, UNSD, "None + Pending Out+In", "None + Pending Out", true, "UR(unsubscribed)P",
     'S'},
    {OUT, UNSD, "To", NULL, false, "X", '-'},
    {OUT, UNSD, "To + Pending In", "To", true, "UR(unsubscribed)P", 'S'},
    {OUT, UNSD, "From", "None", true, "UR(unsubscribed)P", 'S'},
    {OUT, UNSD, "From + Pending Out", "None + Pending Out", true, "UR(unsubscribed)P",
     'S'},
    {OUT, UNSD, "Both", "To", true, "UR(unsubscribed)P", 'S'},
    /* A.3.1 inbound subscribe */
    {IN, SUB, "None", "None + Pending In", true, "KD", 'S'},
    {IN, SUB, "None + Pending Out", "None + Pending Out+In", true, "KD", 'S'},
    {IN, SUB, "None + Pending In", NULL, false, "X", '-'},
    {IN, SUB, "None + Pending Out+In", NULL, false, "X", '-'},
    {IN, SUB, "To", "To + Pending In", true, "KD", 'S'},
    {IN, SUB, "To + Pending In", NULL, false, "X", '-'},
    {IN, SUB, "From", NULL, false, "A(subscribed)", '-'},
    {IN, SUB, "From + Pending Out", NULL, false, "A(subscribed)", '-'},
    {IN, SUB, "Both", NULL, false, "A(subscribed)", '-'},
    /* A.3.2 inbound unsubscribe */
    {IN, UNS, "None", NULL, false, "X", '-'},
    {IN, UNS, "None + Pending Out", NULL, false, "X", '-'},
    {IN, UNS, "None + Pending In", "None", true, "PD", 'S'},
    {IN, UNS, "None + Pending Out+In", "None + Pending Out", true, "PD", 'S'},
    {IN, UNS, "To", NULL, false, "X", '-'},
    {IN, UNS, "To + Pending In", "To", true, "PD", 'S'},
    {IN, UNS, "From", "None", true, "PDU", 'S'},
    {IN, UNS, "From + Pending Out", "None + Pending Out", true, "PDU", 'S'},
    {IN, UNS, "Both", "To", true, "PDU", 'S'},
    /* A.3.3 inbound subscribed */
    {IN, SUBD, "None", NULL, false, "X", '-'},
    {IN, SUBD, "None + Pending Out", "To", true, "PD", 'S'},
    {IN, SUBD, "None + Pending In", NULL, false, "X", '-'},
    {IN, SUBD, "None + Pending Out+In", "To + Pending In", true, "PD", 'S'},
    {IN, SUBD, "To", NULL, false, "X", '-'},
    {IN, SUBD, "To + Pending In", NULL, false, "X", '-'},
    {IN, SUBD, "From", NULL, false, "X", '-'},
    {IN, SUBD, "From + Pending Out", "Both", true, "PD", 'S'},
    {IN, SUBD, "Both", NULL, false, "X", '-'},
    /* A.3.4 inbound unsubscribed */
    {IN, UNSD, "None", NULL, false, "X", '-'},
    {IN, UNSD, "None + Pending Out", "None", true, "PD", 'S'},
    {IN, UNSD, "None + Pending In", NULL, false, "X", '-'},
    {IN, UNSD, "None + Pending Out+In", "None + Pending In", true, "PD", 'S'},
    {IN, UNSD, "To", "None", true, "PD", 'S'},
    {IN, UNSD, "To + Pending In", "None + Pending In", true, "PD", 'S'},
    {IN, UNSD, "From", NULL, false, "X", '-'},
    {IN, UNSD, "From + Pending Out", "From", true, "PD", 'S'},
    {IN, UNSD, "Both", "From", true, "PD", 'S'},
};

static void test_appendix_a_rows(void)
{
    static const char req[] = "<presence type='subscribe'/>";
    size_t n = sizeof rows / sizeof rows[0];

    CHECK_INT(n, 72); /* 2 directions x 4 types x 9 states */
    for (size_t i = 0; i < n; i++) {
        const struct arow *w = &rows[i];
        enum roster_state from = st_of(w->from), want = w->to ? st_of(w->to) : from, next;
        struct roster r;
        struct roster_item it;
        struct roster_decision d;
        bool pass;
        int rc;

        roster_sub_step(from, w->dir, w->type, &next, &pass);
        if (next != want || pass != w->pass)
            TL_FAIL_("row %zu (%s %s, %s): table gives %s, %d", i,
                     w->dir == OUT ? "out" : "in", roster_pres_name(w->type), w->from,
                     roster_state_name(next), pass);

        /* The same row through the decision, for a listed item. */
        roster_init(&r);
        item(&it, "bob@example.net", from);
        REQUIRE(roster_put(&r, &it) == 0);
        rc = roster_sub_decide(&r, "bob@example.net", w->dir, w->type, req,
                               sizeof req - 1, &d);
        CHECK_INT(rc, 0);
        if (d.new_state != want || strcmp(acts(&d), w->acts) != 0 ||
            write_letter(d.write) != w->write)
            TL_FAIL_("row %zu (%s %s, %s): got %s, %s, %c; want %s, %s, %c", i,
                     w->dir == OUT ? "out" : "in", roster_pres_name(w->type), w->from,
                     roster_state_name(d.new_state), acts(&d), write_letter(d.write),
                     roster_state_name(want), w->acts, w->write);
        CHECK_INT(roster_state_of(&d.item), d.new_state);
        if (d.write == ROSTER_WRITE_SET) {
            CHECK(roster_item_valid(&d.item));
            CHECK(d.item.listed);
            /* The stored request exactly while an inbound one is pending. */
            if (w->dir == IN && w->type == SUB)
                CHECK(d.item.request_len == sizeof req - 1 &&
                      memcmp(d.item.request, req, sizeof req - 1) == 0);
            if (!d.item.pending_in)
                CHECK(d.item.request == NULL);
        }
        roster_decision_clear(&d);
        roster_clear(&r);
    }
}

/* Contacts that are not roster items: "None" means "not in the roster" too
 * (A.1), and a request from a stranger is noted without creating an item. */
static void test_no_item_and_pending_only(void)
{
    struct roster r;
    struct roster_decision d;
    struct stz *q;

    roster_init(&r);
    /* Inbound subscribed/unsubscribe/unsubscribed from a stranger: dropped. */
    for (int t = SUBD; t <= UNSD; t++) {
        REQUIRE(roster_sub_decide(&r, "eve@example.org", IN, t, NULL, 0, &d) == 0);
        CHECK_STR(acts(&d), "X");
        CHECK_INT(d.write, ROSTER_WRITE_NONE);
        roster_decision_clear(&d);
    }
    /* Inbound subscribe: kept as a pending request only, delivered, no push. */
    REQUIRE(roster_sub_decide(&r, "eve@example.org", IN, SUB, "<p/>", 4, &d) == 0);
    CHECK_STR(acts(&d), "KD");
    CHECK_INT(d.write, ROSTER_WRITE_SET);
    CHECK(!d.item.listed && d.item.pending_in);
    REQUIRE(roster_put(&r, &d.item) == 0);
    roster_decision_clear(&d);
    CHECK_INT(r.n_pending, 1);
    /* Not a roster item: the roster get does not show it. */
    q = roster_query_stz(&r);
    REQUIRE(q != NULL);
    CHECK(stz_first_element(q) == NULL);
    stz_free(q);
    /* Remove of it: item-not-found (§2.5.3). */
    {
        struct roster_set_req req = {.remove = true};
        const char *cond;
        req.item.jid = (char *)"eve@example.org";
        CHECK_INT(roster_set_decide(&r, &req, &d, &cond), XE_PROTO);
        CHECK_STR(cond, "item-not-found");
    }
    /* Refusing it (unsubscribed): unavailable (§3.2.2 rule 3) and routed,
     * and the entry goes without a push: it was never an item. */
    REQUIRE(roster_sub_decide(&r, "eve@example.org", OUT, UNSD, NULL, 0, &d) == 0);
    CHECK_STR(acts(&d), "UR(unsubscribed)");
    CHECK_INT(d.write, ROSTER_WRITE_DEL);
    roster_decision_clear(&d);
    /* Eve withdrawing it (unsubscribe): delivered, the entry goes. */
    REQUIRE(roster_sub_decide(&r, "eve@example.org", IN, UNS, NULL, 0, &d) == 0);
    CHECK_STR(acts(&d), "D");
    CHECK_INT(d.write, ROSTER_WRITE_DEL);
    roster_decision_clear(&d);
    /* Approving it: eve becomes a roster item with subscription from. */
    REQUIRE(roster_sub_decide(&r, "eve@example.org", OUT, SUBD, NULL, 0, &d) == 0);
    CHECK_STR(acts(&d), "R(subscribed)PS");
    CHECK(d.item.listed && d.item.sub == ROSTER_SUB_FROM && !d.item.pending_in);
    REQUIRE(roster_put(&r, &d.item) == 0);
    roster_decision_clear(&d);
    CHECK_INT(r.n_pending, 0);
    /* Subscribing to a stranger makes it a roster item (§3.1.2). */
    REQUIRE(roster_sub_decide(&r, "carol@example.org", OUT, SUB, NULL, 0, &d) == 0);
    CHECK_STR(acts(&d), "R(subscribe)P");
    CHECK(d.item.listed && d.item.ask);
    roster_decision_clear(&d);
    /* A bad contact JID is refused. */
    CHECK_INT(roster_sub_decide(&r, "Carol@example.org", OUT, SUB, NULL, 0, &d),
              XE_INVAL);
    CHECK_INT(roster_sub_decide(&r, "carol@example.org/x", OUT, SUB, NULL, 0, &d),
              XE_INVAL);
    roster_clear(&r);
}

/* ---- two users through the replicated store (§3.1-§3.3) ---- */

static struct roster_db *db;

/* commit writes d's change to user's roster through an encoded command. */
static void commit(const char *user, const struct roster_decision *d)
{
    struct roster_cmd c;
    unsigned char *buf;
    size_t len;

    if (d->write == ROSTER_WRITE_NONE)
        return;
    if (roster_cmd_from_decision(&c, user, d) != 0 ||
        roster_cmd_encode(&c, &buf, &len) != 0) {
        TL_FAIL_("encode failed");
        return;
    }
    CHECK_INT(roster_db_apply(db, buf, len), 0);
    free(buf);
}

static const char *bare(const char *user)
{
    return strcmp(user, "alice") == 0 ? "alice@example.com" : "bob@example.com";
}

static char trace[512];

/* say has user `from` send a subscription stanza to user `to`: an outbound
 * event in from's roster and, when routed, an inbound one in to's; an
 * auto-reply goes back as an inbound "subscribed" in from's roster.  The
 * actions of each step are appended to trace. */
static void say(const char *from, const char *to, enum roster_pres type)
{
    struct roster_decision d;
    bool routed = false, auto_reply = false;

    trace[0] = '\0';
    REQUIRE(roster_sub_decide(roster_db_get(db, from), bare(to), OUT, type, "<p/>", 4,
                              &d) == 0);
    for (size_t i = 0; i < d.n_act; i++)
        routed |= d.act[i].kind == ROSTER_ACT_ROUTE;
    snprintf(trace, sizeof trace, "%s:%s", from, acts(&d));
    commit(from, &d);
    roster_decision_clear(&d);
    if (!routed)
        return;
    REQUIRE(roster_sub_decide(roster_db_get(db, to), bare(from), IN, type, "<p/>", 4,
                              &d) == 0);
    for (size_t i = 0; i < d.n_act; i++)
        auto_reply |= d.act[i].kind == ROSTER_ACT_AUTO_REPLY;
    snprintf(trace + strlen(trace), sizeof trace - strlen(trace), " %s:%s", to, acts(&d));
    commit(to, &d);
    roster_decision_clear(&d);
    if (!auto_reply)
        return;
    REQUIRE(roster_sub_decide(roster_db_get(db, from), bare(to), IN, SUBD, NULL, 0, &d) ==
            0);
    snprintf(trace + strlen(trace), sizeof trace - strlen(trace), " %s:%s", from,
             acts(&d));
    commit(from, &d);
    roster_decision_clear(&d);
}

/* state_in gives user's state for the other user, "-" for no entry, with
 * "(pending only)" for an entry that is not a roster item. */
static const char *state_in(const char *user)
{
    static char s[64];
    const struct roster_item *it = roster_find(
        roster_db_get(db, user), bare(strcmp(user, "alice") ? "alice" : "bob"));

    if (it == NULL)
        return "-";
    snprintf(s, sizeof s, "%s%s", roster_state_name(roster_state_of(it)),
             it->listed ? "" : " (pending only)");
    return s;
}

static void test_two_users_walkthrough(void)
{
    const struct roster_item **sel;
    size_t n;

    REQUIRE(roster_db_new(&db) == 0);

    /* §3.1: alice asks bob; bob is offline, so his server keeps it. */
    say("alice", "bob", SUB);
    CHECK_STR(trace, "alice:R(subscribe)P bob:KD");
    CHECK_STR(state_in("alice"), "None + Pending Out");
    CHECK_STR(state_in("bob"), "None + Pending In (pending only)");
    REQUIRE(roster_select(roster_db_get(db, "bob"), ROSTER_SEL_PENDING, &sel, &n) == 0);
    REQUIRE(n == 1);
    CHECK_STR(sel[0]->jid, "alice@example.com"); /* re-delivered at login */
    CHECK(sel[0]->request_len == 4 && memcmp(sel[0]->request, "<p/>", 4) == 0);
    free(sel);
    /* Asking again changes nothing in either roster. */
    say("alice", "bob", SUB);
    CHECK_STR(trace, "alice:R(subscribe) bob:X");

    /* §3.1.5: bob approves: he sends his presence, both get pushes. */
    say("bob", "alice", SUBD);
    CHECK_STR(trace, "bob:R(subscribed)PS alice:PD");
    CHECK_STR(state_in("alice"), "To");
    CHECK_STR(state_in("bob"), "From");
    CHECK_INT(roster_probe_decide(roster_db_get(db, "bob"), "alice@example.com"),
              ROSTER_PROBE_PRESENCE);
    CHECK_INT(roster_probe_decide(roster_db_get(db, "alice"), "bob@example.com"),
              ROSTER_PROBE_UNSUBSCRIBED);
    /* A second approval is not routed (§3.1.5). */
    say("bob", "alice", SUBD);
    CHECK_STR(trace, "bob:X");

    /* §3.1.3 rule 3: alice asks again while subscribed: bob's server
     * answers for him, and alice's side ignores the duplicate approval. */
    say("alice", "bob", SUB);
    CHECK_STR(trace, "alice:R(subscribe) bob:A(subscribed) alice:X");

    /* The other way: bob asks alice, alice approves: "both". */
    say("bob", "alice", SUB);
    CHECK_STR(trace, "bob:R(subscribe)P alice:KD");
    CHECK_STR(state_in("bob"), "From + Pending Out");
    CHECK_STR(state_in("alice"), "To + Pending In");
    say("alice", "bob", SUBD);
    CHECK_STR(trace, "alice:R(subscribed)PS bob:PD");
    CHECK_STR(state_in("alice"), "Both");
    CHECK_STR(state_in("bob"), "Both");
    REQUIRE(roster_select(roster_db_get(db, "alice"), ROSTER_SEL_BROADCAST, &sel, &n) ==
            0);
    CHECK(n == 1 && strcmp(sel[0]->jid, "bob@example.com") == 0);
    free(sel);
    REQUIRE(roster_select(roster_db_get(db, "alice"), ROSTER_SEL_PROBE, &sel, &n) == 0);
    CHECK(n == 1);
    free(sel);
    REQUIRE(roster_select(roster_db_get(db, "alice"), ROSTER_SEL_PENDING, &sel, &n) == 0);
    CHECK(n == 0 && sel == NULL);

    /* §3.2: alice cancels bob's subscription: unavailable first. */
    say("alice", "bob", UNSD);
    CHECK_STR(trace, "alice:UR(unsubscribed)P bob:PD");
    CHECK_STR(state_in("alice"), "To");
    CHECK_STR(state_in("bob"), "From");
    REQUIRE(roster_select(roster_db_get(db, "alice"), ROSTER_SEL_BROADCAST, &sel, &n) ==
            0);
    CHECK(n == 0);

    /* §3.3: alice unsubscribes from bob. */
    say("alice", "bob", UNS);
    CHECK_STR(trace, "alice:R(unsubscribe)P bob:PDU"); /* §3.3.3: unavailable */
    CHECK_STR(state_in("alice"), "None");
    CHECK_STR(state_in("bob"), "None");
    /* Cancelling what no longer exists is not routed. */
    say("alice", "bob", UNSD);
    CHECK_STR(trace, "alice:X");

    /* bob asks, alice refuses: bob's item stays with "none", alice's
     * pending-only entry disappears. */
    say("bob", "alice", SUB);
    CHECK_STR(trace, "bob:R(subscribe)P alice:KD");
    say("alice", "bob", UNSD);
    CHECK_STR(trace, "alice:UR(unsubscribed)P bob:PD");
    CHECK_STR(state_in("bob"), "None");
    /* Once more to "To"/"From", and alice leaves again: bob's server sends
     * her unavailable from bob's resources (§3.3.3). */
    say("alice", "bob", SUB);
    say("bob", "alice", SUBD);
    CHECK_STR(state_in("bob"), "From");
    say("alice", "bob", UNS);
    CHECK_STR(trace, "alice:R(unsubscribe)P bob:PDU");

    roster_db_free(db);
    db = NULL;
}

/* Two decisions made on the same replica state for one roster (alice's
 * outbound subscribe on her node, bob's inbound subscribe for her on
 * another): the second to commit is refused, decided again, and then both
 * changes are in the roster ("None + Pending Out+In"), none lost. */
static void test_concurrent_decisions(void)
{
    struct roster_decision d1, d2, d3;
    struct roster_cmd c;
    unsigned char *buf;
    size_t len;

    REQUIRE(roster_db_new(&db) == 0);
    REQUIRE(roster_sub_decide(roster_db_get(db, "alice"), "bob@example.com", OUT, SUB,
                              NULL, 0, &d1) == 0);
    REQUIRE(roster_sub_decide(roster_db_get(db, "alice"), "bob@example.com", IN, SUB,
                              NULL, 0, &d2) == 0);
    CHECK_INT(d1.base, ROSTER_BASE_ABSENT);
    commit("alice", &d1);
    REQUIRE(roster_cmd_from_decision(&c, "alice", &d2) == 0);
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    CHECK_INT(roster_db_apply(db, buf, len), XE_STATE);
    free(buf);
    CHECK_STR(state_in("alice"), "None + Pending Out");
    REQUIRE(roster_sub_decide(roster_db_get(db, "alice"), "bob@example.com", IN, SUB,
                              NULL, 0, &d3) == 0);
    CHECK_INT(d3.base, ROSTER_ST_NONE_PO | ROSTER_BASE_LISTED);
    commit("alice", &d3);
    CHECK_STR(state_in("alice"), "None + Pending Out+In");
    /* A decision that writes nothing makes no command. */
    roster_decision_clear(&d1);
    CHECK_INT(roster_cmd_from_decision(&c, "alice", &d1), XE_INVAL);
    roster_decision_clear(&d2);
    roster_decision_clear(&d3);
    roster_db_free(db);
    db = NULL;
}

/* ---- roster set and remove (§2.3, §2.5) ---- */

/* query builds <query><item jid=.. name=.. subscription=..>groups</item>;
 * n_items items of the same shape; groups separated by '|'. */
static struct stz *query(int n_items, const char *jid, const char *name, const char *sub,
                         const char *groups)
{
    struct stz *q = stz_new("query", ROSTER_NS);

    for (int i = 0; i < n_items; i++) {
        struct stz *it = stz_add_child(q, "item", NULL);
        if (jid)
            stz_set_attr(it, "jid", jid);
        if (name)
            stz_set_attr(it, "name", name);
        if (sub)
            stz_set_attr(it, "subscription", sub);
        for (const char *g = groups; g != NULL;) {
            const char *bar = strchr(g, '|');
            size_t len = bar ? (size_t)(bar - g) : strlen(g);
            struct stz *ge = stz_add_child(it, "group", NULL);
            if (len > 0)
                stz_add_text(ge, g, len);
            g = bar ? bar + 1 : NULL;
        }
    }
    return q;
}

/* parse_cond parses a query and returns the error condition ("" on success). */
static const char *parse_cond(struct stz *q, struct roster_set_req *req)
{
    const char *cond = NULL;
    int rc = roster_parse_set(q, "alice@example.com", req, &cond);

    stz_free(q);
    if (rc == 0)
        return "";
    CHECK_INT(rc, XE_PROTO);
    return cond ? cond : "(null)";
}

static void test_roster_set_validation(void)
{
    struct roster_set_req req;
    char big[ROSTER_NAME_MAX + 2], groups[40 * 3];

    CHECK_STR(parse_cond(query(0, NULL, NULL, NULL, NULL), &req), "bad-request");
    CHECK_STR(parse_cond(query(2, "bob@example.com", NULL, NULL, NULL), &req),
              "bad-request");
    CHECK_STR(parse_cond(query(1, NULL, "Bob", NULL, NULL), &req), "bad-request");
    CHECK_STR(parse_cond(query(1, "bob@@example.com", NULL, NULL, NULL), &req),
              "jid-malformed");
    CHECK_STR(parse_cond(query(1, "bob@example.com/desk", NULL, NULL, NULL), &req),
              "bad-request");
    CHECK_STR(parse_cond(query(1, "Alice@Example.COM", NULL, NULL, NULL), &req),
              "not-acceptable"); /* the user's own bare JID, once prepared */
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_STR(parse_cond(query(1, "bob@example.com", big, NULL, NULL), &req),
              "not-acceptable");
    big[ROSTER_NAME_MAX] = '\0';
    CHECK_STR(parse_cond(query(1, "bob@example.com", big, NULL, NULL), &req), "");
    roster_item_clear(&req.item);
    CHECK_STR(parse_cond(query(1, "bob@example.com", NULL, NULL, "Friends|"), &req),
              "not-acceptable"); /* an empty group */
    big[ROSTER_GROUP_MAX] = 'g';
    big[ROSTER_GROUP_MAX + 1] = '\0';
    CHECK_STR(parse_cond(query(1, "bob@example.com", NULL, NULL, big), &req),
              "not-acceptable");
    CHECK_STR(parse_cond(query(1, "bob@example.com", NULL, NULL, "A|B|A"), &req),
              "bad-request"); /* duplicate groups */
    groups[0] = '\0';
    for (int i = 0; i <= ROSTER_GROUPS_MAX; i++)
        snprintf(groups + strlen(groups), sizeof groups - strlen(groups), "%s%02d",
                 i ? "|" : "", i);
    CHECK_STR(parse_cond(query(1, "bob@example.com", NULL, NULL, groups), &req),
              "not-acceptable");
    *strrchr(groups, '|') = '\0'; /* exactly ROSTER_GROUPS_MAX */
    CHECK_STR(parse_cond(query(1, "bob@example.com", NULL, NULL, groups), &req), "");
    CHECK_INT(req.item.n_groups, ROSTER_GROUPS_MAX);
    roster_item_clear(&req.item);

    /* A good one, prepared; subscription values but "remove" are ignored. */
    CHECK_STR(
        parse_cond(query(1, "Bob@Example.NET", "Bob", "both", "Friends|Work"), &req), "");
    CHECK(!req.remove);
    CHECK_STR(req.item.jid, "bob@example.net");
    CHECK_STR(req.item.name, "Bob");
    CHECK(req.item.n_groups == 2 && strcmp(req.item.groups[1], "Work") == 0);
    CHECK(req.item.sub == ROSTER_SUB_NONE && req.item.listed);
    roster_item_clear(&req.item);
    CHECK_STR(parse_cond(query(1, "bob@example.net", "x", "remove", "G"), &req), "");
    CHECK(req.remove);
    CHECK(req.item.name == NULL && req.item.n_groups == 0);
    roster_item_clear(&req.item);
}

static void test_roster_set_and_remove(void)
{
    struct roster r;
    struct roster_set_req req;
    struct roster_decision d;
    struct roster_item it;
    const char *cond;
    struct stz *q;
    struct buf b = {0};

    roster_init(&r);
    /* Add: a new item starts at "none" and is pushed. */
    CHECK_STR(parse_cond(query(1, "bob@example.net", "Bob", NULL, "Friends"), &req), "");
    REQUIRE(roster_set_decide(&r, &req, &d, &cond) == 0);
    CHECK_STR(acts(&d), "P");
    CHECK_INT(d.write, ROSTER_WRITE_SET);
    REQUIRE(roster_put(&r, &d.item) == 0);
    roster_decision_clear(&d);
    /* The same set again: nothing to write, still a push. */
    REQUIRE(roster_set_decide(&r, &req, &d, &cond) == 0);
    CHECK_STR(acts(&d), "P");
    CHECK_INT(d.write, ROSTER_WRITE_NONE);
    roster_decision_clear(&d);
    roster_item_clear(&req.item);

    /* Update keeps the subscription state (here "To + Pending In"). */
    item(&it, "bob@example.net", ROSTER_ST_TO_PI);
    it.name = "Bob";
    REQUIRE(roster_put(&r, &it) == 0);
    CHECK_STR(parse_cond(query(1, "bob@example.net", "Robert", NULL, NULL), &req), "");
    REQUIRE(roster_set_decide(&r, &req, &d, &cond) == 0);
    CHECK_INT(roster_state_of(&d.item), ROSTER_ST_TO_PI);
    CHECK_STR(d.item.name, "Robert");
    CHECK_INT(d.item.n_groups, 0);
    REQUIRE(roster_put(&r, &d.item) == 0);
    roster_decision_clear(&d);
    roster_item_clear(&req.item);

    /* The roster get result (§2.1.3). */
    item(&it, "carol@example.org", ROSTER_ST_NONE_PO);
    it.groups = (char *[]){"A & B"};
    it.n_groups = 1;
    REQUIRE(roster_put(&r, &it) == 0);
    q = roster_query_stz(&r);
    REQUIRE(q != NULL && stz_serialize(q, "jabber:client", &b) == 0);
    CHECK_STR(b.data, "<query xmlns='jabber:iq:roster'>"
                      "<item jid='bob@example.net' name='Robert' subscription='to'/>"
                      "<item jid='carol@example.org' subscription='none' ask='subscribe'>"
                      "<group>A &amp; B</group></item></query>");
    stz_free(q);
    buf_free(&b);

    /* Remove (§2.5.2): pushes, then cancels both ways as the state needs. */
    static const struct {
        enum roster_state st;
        const char *acts;
    } rm[] = {
        {ROSTER_ST_NONE, "P"},
        {ROSTER_ST_NONE_PO, "PR(unsubscribe)"},
        {ROSTER_ST_NONE_PI, "PUR(unsubscribed)"},
        {ROSTER_ST_NONE_POI, "PR(unsubscribe)UR(unsubscribed)"},
        {ROSTER_ST_TO, "PR(unsubscribe)"},
        {ROSTER_ST_TO_PI, "PR(unsubscribe)UR(unsubscribed)"},
        {ROSTER_ST_FROM, "PUR(unsubscribed)"},
        {ROSTER_ST_FROM_PO, "PR(unsubscribe)UR(unsubscribed)"},
        {ROSTER_ST_BOTH, "PR(unsubscribe)UR(unsubscribed)"},
    };
    for (size_t i = 0; i < sizeof rm / sizeof rm[0]; i++) {
        item(&it, "bob@example.net", rm[i].st);
        REQUIRE(roster_put(&r, &it) == 0);
        CHECK_STR(parse_cond(query(1, "bob@example.net", NULL, "remove", NULL), &req),
                  "");
        REQUIRE(roster_set_decide(&r, &req, &d, &cond) == 0);
        if (strcmp(acts(&d), rm[i].acts) != 0)
            TL_FAIL_("remove in %s: %s, want %s", roster_state_name(rm[i].st), acts(&d),
                     rm[i].acts);
        CHECK_INT(d.write, ROSTER_WRITE_DEL);
        CHECK_STR(d.item.jid, "bob@example.net");
        roster_decision_clear(&d);
        roster_item_clear(&req.item);
    }
    /* The push of a removal carries subscription='remove' only. */
    q = roster_item_stz(roster_find(&r, "bob@example.net"), true);
    REQUIRE(q != NULL && stz_serialize(q, ROSTER_NS, &b) == 0);
    CHECK_STR(b.data, "<item jid='bob@example.net' subscription='remove'/>");
    stz_free(q);
    buf_free(&b);
    /* Remove of an unknown item. */
    CHECK_STR(parse_cond(query(1, "dave@example.org", NULL, "remove", NULL), &req), "");
    CHECK_INT(roster_set_decide(&r, &req, &d, &cond), XE_PROTO);
    CHECK_STR(cond, "item-not-found");
    roster_item_clear(&req.item);
    roster_clear(&r);
}

/* ---- bounds ---- */

static void test_bounds(void)
{
    struct roster r;
    struct roster_item it;
    struct roster_set_req req;
    struct roster_decision d;
    const char *cond;
    char jid[64];

    roster_init(&r);
    for (int i = 0; i < ROSTER_ITEMS_MAX; i++) {
        snprintf(jid, sizeof jid, "u%04d@example.com", i);
        item(&it, jid, ROSTER_ST_NONE);
        REQUIRE(roster_put(&r, &it) == 0);
    }
    CHECK(!roster_room(&r, true));
    item(&it, "zed@example.com", ROSTER_ST_NONE);
    CHECK_INT(roster_put(&r, &it), XE_LIMIT);
    CHECK_INT(r.n, ROSTER_ITEMS_MAX);
    /* Replacing an existing one is fine. */
    item(&it, "u0000@example.com", ROSTER_ST_BOTH);
    CHECK_INT(roster_put(&r, &it), 0);
    /* A set of a new item: not-allowed; an outbound subscribe: XE_LIMIT; an
     * inbound request is delivered but not kept. */
    CHECK_STR(parse_cond(query(1, "zed@example.com", NULL, NULL, NULL), &req), "");
    CHECK_INT(roster_set_decide(&r, &req, &d, &cond), XE_PROTO);
    CHECK_STR(cond, "not-allowed");
    roster_item_clear(&req.item);
    CHECK_INT(roster_sub_decide(&r, "zed@example.com", OUT, SUB, NULL, 0, &d), XE_LIMIT);
    REQUIRE(roster_sub_decide(&r, "zed@example.com", IN, SUB, NULL, 0, &d) == 0);
    CHECK_STR(acts(&d), "D");
    CHECK_INT(d.write, ROSTER_WRITE_NONE);
    roster_decision_clear(&d);
    roster_clear(&r);

    /* Pending-only entries have their own, smaller bound. */
    for (int i = 0; i < ROSTER_PENDING_MAX; i++) {
        snprintf(jid, sizeof jid, "p%04d@example.com", i);
        memset(&it, 0, sizeof it);
        it.jid = jid;
        it.pending_in = true;
        REQUIRE(roster_put(&r, &it) == 0);
    }
    CHECK_INT(r.n_pending, ROSTER_PENDING_MAX);
    it.jid = "q@example.com";
    CHECK_INT(roster_put(&r, &it), XE_LIMIT);
    CHECK(roster_room(&r, true) && !roster_room(&r, false));
    /* Turning one into an item frees a pending slot. */
    it.jid = "p0000@example.com";
    it.listed = true;
    REQUIRE(roster_put(&r, &it) == 0);
    CHECK_INT(r.n_pending, ROSTER_PENDING_MAX - 1);
    CHECK_INT(roster_remove(&r, "p0001@example.com"), 0);
    CHECK_INT(r.n_pending, ROSTER_PENDING_MAX - 2);
    CHECK_INT(roster_remove(&r, "p0001@example.com"), XE_NOTFOUND);
    roster_clear(&r);

    /* A stored request beyond ROSTER_REQUEST_MAX is not kept. */
    {
        static char req_big[ROSTER_REQUEST_MAX + 1];
        REQUIRE(roster_sub_decide(&r, "bob@example.com", IN, SUB, req_big, sizeof req_big,
                                  &d) == 0);
        CHECK_STR(acts(&d), "KD");
        CHECK(d.item.pending_in && d.item.request == NULL);
        roster_decision_clear(&d);
    }
}

static void test_item_validity(void)
{
    struct roster_item it;

    item(&it, "bob@example.com", ROSTER_ST_BOTH);
    CHECK(roster_item_valid(&it));
    it.ask = true; /* "to" with a pending out does not exist */
    CHECK(!roster_item_valid(&it));
    item(&it, "bob@example.com", ROSTER_ST_FROM);
    it.pending_in = true; /* "from" with a pending in does not exist */
    CHECK(!roster_item_valid(&it));
    item(&it, "bob@example.com", ROSTER_ST_NONE);
    it.listed = false; /* a non-item is only a pending request */
    CHECK(!roster_item_valid(&it));
    it.pending_in = true;
    CHECK(roster_item_valid(&it));
    it.name = "x";
    CHECK(!roster_item_valid(&it));
    item(&it, "bob@example.com", ROSTER_ST_NONE);
    it.request = (unsigned char *)"x"; /* a request without pending_in */
    it.request_len = 1;
    CHECK(!roster_item_valid(&it));
    item(&it, "BOB@example.com", ROSTER_ST_NONE); /* not prepared */
    CHECK(!roster_item_valid(&it));
    item(&it, "example.com", ROSTER_ST_NONE); /* a domain is a bare JID */
    CHECK(roster_item_valid(&it));
    it.name = "";
    CHECK(!roster_item_valid(&it)); /* absent is NULL, never "" */
    it.name = "bad\001";
    CHECK(!roster_item_valid(&it));
    it.name = "\xc3\x28"; /* invalid UTF-8 */
    CHECK(!roster_item_valid(&it));
    it.name = "J\xc3\xa9r\xc3\xb4me";
    CHECK(roster_item_valid(&it));
    CHECK(roster_text_valid("a\tb\nc", 5));
}

/* ---- commands ---- */

static unsigned char req_bytes[] = "<presence type='subscribe'/>";

static void full_item(struct roster_item *it)
{
    static char *groups[] = {"Friends", "Work"};

    item(it, "bob@example.net", ROSTER_ST_TO_PI);
    it->name = "Bob";
    it->groups = groups;
    it->n_groups = 2;
    it->request = req_bytes;
    it->request_len = sizeof req_bytes - 1;
}

static void test_cmd_round_trip(void)
{
    struct roster_cmd c, d;
    struct roster_item it;
    unsigned char *buf;
    size_t len;

    full_item(&it);
    roster_cmd_set(&c, "alice", &it);
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    CHECK_INT(roster_cmd_type_of(buf, len), ROSTER_CMD_SET);
    REQUIRE(roster_cmd_decode(buf, len, &d) == 0);
    CHECK_INT(d.type, ROSTER_CMD_SET);
    CHECK_STR(d.user, "alice");
    CHECK(roster_item_equal(&d.item, &it));
    CHECK(d.req_origin == 0);
    roster_cmd_clear(&d);
    free(buf);

    /* With a request id (repl.h's version 2 header). */
    c.req_origin = 0x1122334455667788ull;
    c.req_seq = 42;
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    CHECK_INT(buf[0], ROSTER_CMD_VERSION_ID);
    CHECK_INT(roster_cmd_type_of(buf, len), ROSTER_CMD_SET);
    REQUIRE(roster_cmd_decode(buf, len, &d) == 0);
    CHECK(d.req_origin == 0x1122334455667788ull && d.req_seq == 42);
    CHECK(roster_item_equal(&d.item, &it));
    roster_cmd_clear(&d);
    free(buf);

    /* DEL, byte for byte. */
    roster_cmd_del(&c, "al", "b@x");
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    {
        static const unsigned char want[] = {1,   9, 0, 2,   0,   'a',
                                             'l', 3, 0, 'b', '@', 'x'};
        CHECK(len == sizeof want && memcmp(buf, want, len) == 0);
    }
    REQUIRE(roster_cmd_decode(buf, len, &d) == 0);
    CHECK_INT(d.type, ROSTER_CMD_DEL);
    CHECK_STR(d.item.jid, "b@x");
    roster_cmd_clear(&d);
    free(buf);

    /* Conditional on a base, byte for byte. */
    roster_cmd_del(&c, "al", "b@x");
    c.has_base = true;
    c.base = ROSTER_ST_TO | ROSTER_BASE_LISTED;
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    {
        static const unsigned char want[] = {1,    9, 1, 2,   0,   'a', 'l',
                                             0x14, 3, 0, 'b', '@', 'x'};
        CHECK(len == sizeof want && memcmp(buf, want, len) == 0);
    }
    REQUIRE(roster_cmd_decode(buf, len, &d) == 0);
    CHECK(d.has_base && d.base == 0x14);
    roster_cmd_clear(&d);
    buf[7] = 9; /* no such state */
    CHECK_INT(roster_cmd_decode(buf, len, &d), XE_CORRUPT);
    roster_cmd_clear(&d);
    buf[2] = 3; /* an unknown flag */
    CHECK_INT(roster_cmd_decode(buf, len, &d), XE_CORRUPT);
    roster_cmd_clear(&d);
    free(buf);
    c.base = 0x20;
    CHECK_INT(roster_cmd_encode(&c, &buf, &len), XE_INVAL);

    /* Encode validates. */
    roster_cmd_del(&c, "", "b@x");
    CHECK_INT(roster_cmd_encode(&c, &buf, &len), XE_INVAL);
    roster_cmd_del(&c, "a b", "b@x");
    CHECK_INT(roster_cmd_encode(&c, &buf, &len), XE_INVAL);
    roster_cmd_del(&c, "al", "B@x");
    CHECK_INT(roster_cmd_encode(&c, &buf, &len), XE_INVAL);
    it.ask = true; /* "To + Pending In" with ask: no such state */
    roster_cmd_set(&c, "alice", &it);
    CHECK_INT(roster_cmd_encode(&c, &buf, &len), XE_INVAL);
    CHECK_INT(roster_cmd_type_of("\x03\x07", 2), -1);
    CHECK_INT(roster_cmd_type_of("", 0), -1);
}

/* check_decode_safe decodes buf; success must give a command that encodes
 * again to the very same bytes. */
static void check_decode_safe(const unsigned char *buf, size_t len)
{
    struct roster_cmd d;
    int rc = roster_cmd_decode(buf, len, &d);

    if (rc == 0) {
        unsigned char *again;
        size_t alen;
        CHECK_INT(roster_cmd_encode(&d, &again, &alen), 0);
        CHECK(alen == len && memcmp(again, buf, len) == 0);
        free(again);
    } else if (rc != XE_CORRUPT && rc != XE_INVAL) {
        TL_FAIL_("decode gave %s", xe_name(rc));
    }
    roster_cmd_clear(&d);
}

static void test_cmd_garbage(void)
{
    struct roster_cmd c;
    struct roster_item it;
    unsigned char *buf, *copy;
    size_t len;
    unsigned seed = 7;

    full_item(&it);
    roster_cmd_set(&c, "alice", &it);
    c.req_origin = 9;
    c.has_base = true;
    c.base = ROSTER_BASE_ABSENT;
    REQUIRE(roster_cmd_encode(&c, &buf, &len) == 0);
    copy = malloc(len);
    REQUIRE(copy != NULL);
    /* Every truncation fails (a fresh allocation of exactly that size, so
     * ASan sees any read past it). */
    for (size_t n = 0; n < len; n++) {
        unsigned char *t = malloc(n ? n : 1);
        struct roster_cmd d;
        memcpy(t, buf, n);
        int rc = roster_cmd_decode(t, n, &d);
        if (rc != XE_CORRUPT && rc != XE_INVAL)
            TL_FAIL_("truncated at %zu: %s", n, xe_name(rc));
        roster_cmd_clear(&d);
        free(t);
    }
    /* Trailing bytes fail. */
    {
        unsigned char *t = malloc(len + 1);
        struct roster_cmd d;
        memcpy(t, buf, len);
        t[len] = 0;
        CHECK_INT(roster_cmd_decode(t, len + 1, &d), XE_CORRUPT);
        roster_cmd_clear(&d);
        free(t);
    }
    /* Every byte changed to several values: refused, or a valid command. */
    for (size_t i = 0; i < len; i++) {
        static const unsigned char vals[] = {0x00, 0x01, 0x02, 0x07, 0x08,
                                             0x41, 0x7f, 0x80, 0xc3, 0xff};
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(copy, buf, len);
            copy[i] = vals[v];
            check_decode_safe(copy, len);
            copy[i] = buf[i] ^ 0xff;
            check_decode_safe(copy, len);
        }
    }
    /* Random bytes behind a valid header, and random everything. */
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand_r(&seed) % 64);
        unsigned char *t = malloc(n + 3);
        t[0] = 1;
        t[1] = (unsigned char)(ROSTER_CMD_SET + rand_r(&seed) % 2);
        t[2] = 0;
        for (size_t k = 3; k < n + 3; k++)
            t[k] = (unsigned char)rand_r(&seed);
        check_decode_safe(t, n + 3);
        check_decode_safe(t + 3, n);
        free(t);
    }
    free(copy);
    free(buf);
}

/* ---- the codec's bounds, one field at a time ---- */

/* A raw SET built field by field, so that each length can be pushed one
 * past its bound with well-formed bytes around it. */
struct raw {
    unsigned char b[16384];
    size_t n;
};

static void raw_u(struct raw *r, unsigned v, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        r->b[r->n++] = (unsigned char)(v >> (8 * i));
}

static void raw_fill(struct raw *r, size_t len, unsigned size, char c)
{
    raw_u(r, (unsigned)len, size);
    memset(r->b + r->n, c, len);
    r->n += len;
}

/* raw_set builds SET(user of ulen 'u's, item "j...@x" with jlen bytes in
 * all, name nlen, ngroups groups of glen, request rlen, pending_in). */
static int raw_set(size_t ulen, size_t jlen, size_t nlen, size_t ngroups, size_t glen,
                   size_t rlen)
{
    static struct raw r;
    struct roster_cmd d;
    int rc;

    r.n = 0;
    raw_u(&r, 1, 1);
    raw_u(&r, ROSTER_CMD_SET, 1);
    raw_u(&r, 0, 1);
    raw_fill(&r, ulen, 2, 'u');
    raw_fill(&r, jlen, 2, 'j');
    memcpy(r.b + r.n - 2, "@x", 2); /* j...j@x: a prepared bare JID */
    raw_u(&r, 4 | 2, 1);            /* listed, pending_in */
    raw_u(&r, 0, 1);
    raw_fill(&r, nlen, 2, 'n');
    raw_u(&r, (unsigned)ngroups, 1);
    for (size_t i = 0; i < ngroups; i++) {
        raw_fill(&r, glen, 2, 'g');
        r.b[r.n - 1] = (unsigned char)('A' + i % 26);
        r.b[r.n - 2] = (unsigned char)('A' + i / 26);
    }
    raw_fill(&r, rlen, 2, 'r');
    rc = roster_cmd_decode(r.b, r.n, &d);
    roster_cmd_clear(&d);
    return rc;
}

static void test_codec_bounds(void)
{
    /* Each bound exactly (the JID's localpart at its RFC 7622 maximum; the
     * codec's bound is the longer ROSTER_JID_MAX), then each one past. */
    CHECK_INT(raw_set(5, 5, 3, 2, 4, 10), 0);
    CHECK_INT(raw_set(ROSTER_USER_MAX, 1023 + 2, ROSTER_NAME_MAX, ROSTER_GROUPS_MAX,
                      ROSTER_GROUP_MAX, ROSTER_REQUEST_MAX),
              0);
    CHECK_INT(raw_set(ROSTER_USER_MAX + 1, 5, 3, 2, 4, 10), XE_CORRUPT);
    CHECK_INT(raw_set(5, ROSTER_JID_MAX + 1, 3, 2, 4, 10), XE_CORRUPT);
    CHECK_INT(raw_set(5, 5, ROSTER_NAME_MAX + 1, 2, 4, 10), XE_CORRUPT);
    CHECK_INT(raw_set(5, 5, 3, ROSTER_GROUPS_MAX + 1, 4, 10), XE_CORRUPT);
    CHECK_INT(raw_set(5, 5, 3, 2, ROSTER_GROUP_MAX + 1, 10), XE_CORRUPT);
    CHECK_INT(raw_set(5, 5, 3, 2, 4, ROSTER_REQUEST_MAX + 1), XE_CORRUPT);
    CHECK_INT(raw_set(0, 5, 3, 2, 4, 10), XE_CORRUPT); /* empty user */
    CHECK_INT(raw_set(5, 5, 3, 2, 0, 10), XE_CORRUPT); /* empty group */
}

/* ---- the store ---- */

static int apply_set(struct roster_db *s, const char *user, const struct roster_item *it)
{
    struct roster_cmd c;
    unsigned char *buf;
    size_t len;
    int rc;

    roster_cmd_set(&c, user, it);
    rc = roster_cmd_encode(&c, &buf, &len);
    if (rc < 0)
        return rc;
    rc = roster_db_apply(s, buf, len);
    free(buf);
    return rc;
}

static int apply_del(struct roster_db *s, const char *user, const char *jid)
{
    struct roster_cmd c;
    unsigned char *buf;
    size_t len;
    int rc;

    roster_cmd_del(&c, user, jid);
    rc = roster_cmd_encode(&c, &buf, &len);
    if (rc < 0)
        return rc;
    rc = roster_db_apply(s, buf, len);
    free(buf);
    return rc;
}

static void snap(const struct roster_db *s, unsigned char **buf, size_t *len)
{
    if (roster_db_snapshot_encode(s, buf, len) != 0)
        TL_FAIL_("snapshot encode failed");
}

static void test_db_apply(void)
{
    struct roster_db *s;
    struct roster_item it;
    unsigned char *a, *b;
    size_t alen, blen;
    char jid[64];

    REQUIRE(roster_db_new(&s) == 0);
    full_item(&it);
    CHECK_INT(apply_set(s, "bob", &it), 0);
    CHECK_INT(apply_set(s, "alice", &it), 0);
    CHECK_INT(roster_db_user_count(s), 2);
    CHECK_STR(roster_db_user_at(s, 0), "alice");
    CHECK(roster_item_equal(roster_find(roster_db_get(s, "alice"), "bob@example.net"),
                            &it));
    /* The same again changes nothing. */
    snap(s, &a, &alen);
    CHECK_INT(apply_set(s, "alice", &it), 0);
    snap(s, &b, &blen);
    CHECK(alen == blen && memcmp(a, b, alen) == 0);
    free(b);
    /* Corrupt entries leave the store as it was. */
    CHECK_INT(roster_db_apply(s, "\x01\x07\x00", 3), XE_CORRUPT);
    CHECK_INT(roster_db_apply(s, NULL, 0), XE_CORRUPT);
    CHECK_INT(apply_del(s, "carol", "bob@example.net"), XE_NOTFOUND);
    CHECK_INT(apply_del(s, "alice", "dave@example.net"), XE_NOTFOUND);
    snap(s, &b, &blen);
    CHECK(alen == blen && memcmp(a, b, alen) == 0);
    free(b);
    free(a);
    /* An emptied roster goes away. */
    CHECK_INT(apply_del(s, "alice", "bob@example.net"), 0);
    CHECK(roster_db_get(s, "alice") == NULL);
    CHECK_INT(roster_db_user_count(s), 1);
    CHECK_INT(roster_db_drop_user(s, "bob"), 0);
    CHECK_INT(roster_db_drop_user(s, "bob"), XE_NOTFOUND);
    CHECK_INT(roster_db_user_count(s), 0);
    /* Bounds hold through apply, and a refused first entry adds no user. */
    for (int i = 0; i < ROSTER_PENDING_MAX; i++) {
        snprintf(jid, sizeof jid, "p%04d@example.com", i);
        memset(&it, 0, sizeof it);
        it.jid = jid;
        it.pending_in = true;
        REQUIRE(apply_set(s, "alice", &it) == 0);
    }
    it.jid = "zz@example.com";
    CHECK_INT(apply_set(s, "alice", &it), XE_LIMIT);
    CHECK(roster_find(roster_db_get(s, "alice"), "zz@example.com") == NULL);
    roster_db_free(s);
}

static void test_snapshot(void)
{
    struct roster_db *s, *t;
    struct roster_item it;
    unsigned char *a, *b;
    size_t alen, blen;

    REQUIRE(roster_db_new(&s) == 0);
    /* Empty store round trip. */
    snap(s, &a, &alen);
    REQUIRE(roster_db_snapshot_decode(a, alen, &t) == 0);
    CHECK_INT(roster_db_user_count(t), 0);
    roster_db_free(t);
    free(a);

    full_item(&it);
    REQUIRE(apply_set(s, "alice", &it) == 0);
    item(&it, "carol@example.org", ROSTER_ST_BOTH);
    REQUIRE(apply_set(s, "alice", &it) == 0);
    memset(&it, 0, sizeof it);
    it.jid = "eve@example.org";
    it.pending_in = true;
    REQUIRE(apply_set(s, "bob", &it) == 0);
    snap(s, &a, &alen);
    REQUIRE(roster_db_snapshot_decode(a, alen, &t) == 0);
    CHECK_INT(roster_db_user_count(t), 2);
    CHECK_INT(roster_db_get(t, "alice")->n, 2);
    CHECK_INT(roster_db_get(t, "bob")->n_pending, 1);
    snap(t, &b, &blen);
    CHECK(alen == blen && memcmp(a, b, alen) == 0);
    free(b);
    roster_db_free(t);

    /* Every truncation fails; every flipped byte fails or decodes into a
     * store that encodes back to the same bytes. */
    for (size_t n = 0; n < alen; n++) {
        unsigned char *c = malloc(n ? n : 1);
        memcpy(c, a, n);
        int rc = roster_db_snapshot_decode(c, n, &t);
        if (rc != XE_CORRUPT && rc != XE_INVAL)
            TL_FAIL_("snapshot truncated at %zu: %s", n, xe_name(rc));
        CHECK(t == NULL);
        free(c);
    }
    for (size_t i = 0; i < alen; i++) {
        unsigned char *c = malloc(alen);
        memcpy(c, a, alen);
        c[i] ^= 0xff;
        if (roster_db_snapshot_decode(c, alen, &t) == 0) {
            snap(t, &b, &blen);
            CHECK(blen == alen && memcmp(b, c, alen) == 0);
            free(b);
            roster_db_free(t);
        }
        free(c);
    }
    /* Users out of order are refused: swap "alice" for "zzzzz". */
    {
        unsigned char *c = malloc(alen);
        memcpy(c, a, alen);
        REQUIRE(memcmp(c + 7, "alice", 5) == 0);
        memcpy(c + 7, "zzzzz", 5);
        CHECK_INT(roster_db_snapshot_decode(c, alen, &t), XE_CORRUPT);
        free(c);
    }
    free(a);
    roster_db_free(s);
}

static void test_names(void)
{
    CHECK_STR(roster_state_name(ROSTER_ST_NONE_POI), "None + Pending Out+In");
    CHECK_STR(roster_state_name((enum roster_state)99), "unknown");
    CHECK_STR(roster_pres_name(ROSTER_PRES_UNSUBSCRIBED), "unsubscribed");
    for (int i = 0; i < ROSTER_N_STATES; i++) {
        struct roster_item it;
        item(&it, "a@b", (enum roster_state)i);
        CHECK_INT(roster_state_of(&it), i);
        CHECK(roster_item_valid(&it));
    }
    CHECK_INT(roster_state_of(NULL), ROSTER_ST_NONE);
}

TL_MAIN(T(test_appendix_a_rows), T(test_no_item_and_pending_only),
        T(test_two_users_walkthrough), T(test_concurrent_decisions),
        T(test_roster_set_validation), T(test_roster_set_and_remove), T(test_bounds),
        T(test_item_validity), T(test_cmd_round_trip), T(test_cmd_garbage),
        T(test_codec_bounds), T(test_db_apply), T(test_snapshot), T(test_names))
