/* test_core.c: rules of the core beyond the paper's figure 2, each driven on
 * one or two instances by hand (lib/onenode.h): the membership changes'
 * corner cases, the crash fast path's two signals, CheckQuorum's first
 * window, and removed nodes learning that they were removed.  Each test
 * was written against a defect of the store and failed before its fix. */
#include "testlib.h"

#include "onenode.h"
#include "raft.h"

#include <stdint.h>

/* ack: a successful append result from peer `from` for everything up to
 * last, stepped on the leader r. */
static void ack(struct raft *r, uint64_t now, uint64_t from, uint64_t term, uint64_t last,
                struct raft_update *u)
{
    struct raft_message a = msg(RAFT_MSG_APPEND_RESULT, from, 1, term);
    a.u.append_result.last_index = last;
    recv(r, now, &a, u);
}

static int change(struct raft *r, uint64_t now, enum raft_change_kind kind, uint64_t id,
                  const char *address, uint64_t old_id, struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_CHANGE, .now = now};
    ev.u.change.kind = kind;
    ev.u.change.id = id;
    ev.u.change.address = address;
    ev.u.change.old_id = old_id;
    return raft_step(r, &ev, u);
}

static int transfer(struct raft *r, uint64_t now, uint64_t to, struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_TRANSFER, .now = now};
    ev.u.transfer.to = to;
    return raft_step(r, &ev, u);
}

static void peer_down(struct raft *r, uint64_t now, uint64_t id, struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_PEER_DOWN, .now = now};
    ev.u.peer_down.id = id;
    raft_step(r, &ev, u);
}

/* A leader of three whose barrier (index 2) is committed: ready for a
 * membership change. */
static struct raft *settled_leader(struct raft_update *u)
{
    struct raft *r = make_leader(3, u);
    if (r != NULL)
        ack(r, 5001, 2, 2, 2, u);
    return r;
}

/* ---- membership ------------------------------------------------------------ */

/* REPLACE with the new id equal to the old one would keep the old progress
 * (match) of that id: the fast back-off never goes below match, so the reset
 * node would never catch up.  The core refuses it with its own error. */
static void test_replace_same_id_refused(void)
{
    struct raft_update u;
    struct raft *r = settled_leader(&u);
    REQUIRE(r != NULL && status(r).commit_index == 2);
    uint64_t last = status(r).last_index;
    CHECK_INT(change(r, 5002, RAFT_CHANGE_REPLACE, 3, "10.0.0.3:5224", 3, &u),
              RAFT_ESAMEID);
    CHECK_INT(status(r).last_index, last);
    CHECK_INT(u.n_entries, 0);
    /* a new id is accepted */
    CHECK_INT(change(r, 5003, RAFT_CHANGE_REPLACE, 9, "10.0.0.3:5224", 3, &u), 0);
    CHECK_INT(status(r).last_index, last + 1);
    CHECK_STR(raft_errname(RAFT_ESAMEID), "RAFT_ESAMEID");
    raft_free(r);
}

/* The fix to single-server changes (raft-dev, 2015; thesis §4.2.1 errata):
 * a new leader appends no configuration change before an entry of its own
 * term has committed, or two changes of different leaders could form two
 * majorities that do not overlap. */
static void test_change_waits_for_first_commit(void)
{
    struct raft_update u;
    uint64_t terms[] = {1};
    struct raft *r = new_node(1, 3, 1, terms, 1, false, false);
    REQUIRE(r != NULL);
    /* as a follower it learned that index 2 (and the configuration at 1)
     * committed */
    struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);
    m.u.append.prev_index = 2;
    m.u.append.prev_term = 1;
    m.u.append.commit = 2;
    recv(r, 10, &m, &u);
    REQUIRE(status(r).commit_index == 2);
    /* it wins term 2; its barrier (index 3) is durable, not committed */
    tick(r, 5000, &u);
    struct raft_message g = vote_granted(3, 1, 2, false);
    recv(r, 5000, &g, &u);
    REQUIRE(status(r).role == RAFT_LEADER && status(r).last_index == 3);
    persisted(r, 5000, 3, 2, &u);
    CHECK_INT(change(r, 5001, RAFT_CHANGE_ADD, 4, "10.0.0.4:5224", 0, &u), RAFT_EBUSY);
    CHECK_INT(status(r).last_index, 3);
    ack(r, 5002, 3, 2, 3, &u);
    REQUIRE(status(r).commit_index == 3);
    CHECK_INT(change(r, 5003, RAFT_CHANGE_ADD, 4, "10.0.0.4:5224", 0, &u), 0);
    raft_free(r);
}

/* Thesis §3.10: while a transfer is pending the leader appends nothing of
 * its own (proposals are refused).  A PROMOTE accepted before the transfer
 * must not be appended while the transfer is pending; it goes on once the
 * transfer is over. */
static void test_promote_waits_for_transfer(void)
{
    struct raft_update u;
    struct raft *r = settled_leader(&u);
    REQUIRE(r != NULL);
    REQUIRE(change(r, 5002, RAFT_CHANGE_ADD, 4, "10.0.0.4:5224", 0, &u) == 0);
    persisted(r, 5002, 3, 2, &u);
    ack(r, 5003, 2, 2, 3, &u); /* the ADD (index 3) commits */
    REQUIRE(status(r).commit_index == 3);
    CHECK_INT(change(r, 5004, RAFT_CHANGE_PROMOTE, 4, NULL, 0, &u), 0);
    CHECK_INT(status(r).last_index, 3); /* node 4 has not caught up */
    CHECK_INT(transfer(r, 5005, 2, &u), 0);
    CHECK(find(&u, RAFT_MSG_TIMEOUT_NOW, 2) != NULL);
    ack(r, 5006, 4, 2, 3, &u); /* node 4 caught up during the transfer */
    CHECK_INT(status(r).last_index, 3);
    CHECK_INT(u.n_entries, 0);
    const struct raft_member *m = raft_config_find(raft_get_config(r), 4);
    REQUIRE(m != NULL);
    CHECK_INT(m->role, RAFT_NONVOTER);
    /* the transfer gives up after an election timeout; the promotion then
     * goes on with the next answer of node 4 */
    tick(r, 5005 + 1000, &u);
    ack(r, 6010, 4, 2, 3, &u);
    CHECK_INT(status(r).last_index, 4);
    m = raft_config_find(raft_get_config(r), 4);
    REQUIRE(m != NULL);
    CHECK_INT(m->role, RAFT_VOTER);
    raft_free(r);
}

/* Removed nodes learn that they were removed: the leader keeps sending to
 * a removed member until the removal is committed and a while after, the
 * removed node applies it, stops campaigning and says so in its update
 * (upd.removed) and status, which the daemon's removal lifecycle reads. */
static void test_removed_node_learns(void)
{
    struct raft_update u, fu;
    struct raft *r = make_leader(3, &u);
    struct raft *f = new_node(3, 3, 1, NULL, 0, true, true);
    REQUIRE(r != NULL && f != NULL);
    ack(r, 5001, 2, 2, 2, &u);
    REQUIRE(status(r).commit_index == 2);
    persisted(r, 5002, 3, 2, &u);
    CHECK_INT(change(r, 5002, RAFT_CHANGE_REMOVE, 3, NULL, 0, &u), 0);
    CHECK(find(&u, RAFT_MSG_APPEND, 3) != NULL); /* node 3 gets its removal */
    bool removed = false, seen = false;
    for (uint64_t now = 5002; now < 5800 && !removed; now += 50) {
        struct raft_message out[16];
        unsigned n = 0;
        for (unsigned i = 0; i < u.n_messages && n < 16; i++)
            if (u.messages[i].to == 3 && u.messages[i].type == RAFT_MSG_APPEND)
                out[n++] = u.messages[i];
        /* a deep copy is not needed: f copies what it keeps, and u stays
         * valid until r is stepped again */
        for (unsigned i = 0; i < n; i++) {
            seen = true;
            recv(f, now, &out[i], &fu);
            removed |= fu.removed;
            const struct raft_message *rep = find(&fu, RAFT_MSG_APPEND_RESULT, 1);
            if (rep != NULL) {
                struct raft_message copy = *rep;
                recv(r, now, &copy, &u);
            }
        }
        if (removed)
            break;
        persisted(r, now, status(r).last_index, 2, &u);
        ack(r, now, 2, 2, status(r).last_index, &u);
        tick(r, now + 50, &u);
    }
    CHECK(seen);
    CHECK(removed);
    CHECK(status(f).removed);
    CHECK(!status(r).removed);
    /* a removed node never campaigns */
    tick(f, 20000, &fu);
    CHECK_INT(status(f).role, RAFT_FOLLOWER);
    CHECK_INT(count(&fu, RAFT_MSG_VOTE), 0);
    raft_free(r);
    raft_free(f);
}

/* Thesis §4.2.1: a PROMOTE is appended only once the non-voter holds the
 * leader's log; an answer that shows it behind changes nothing. */
static void test_promote_waits_for_catch_up(void)
{
    struct raft_update u;
    struct raft *r = settled_leader(&u);
    REQUIRE(r != NULL);
    REQUIRE(change(r, 5002, RAFT_CHANGE_ADD, 4, "10.0.0.4:5224", 0, &u) == 0);
    persisted(r, 5002, 3, 2, &u);
    ack(r, 5003, 2, 2, 3, &u);
    REQUIRE(status(r).commit_index == 3);
    CHECK_INT(change(r, 5004, RAFT_CHANGE_PROMOTE, 4, NULL, 0, &u), 0);
    ack(r, 5005, 4, 2, 2, &u); /* node 4 holds up to 2 of 3 */
    CHECK_INT(status(r).last_index, 3);
    ack(r, 5006, 4, 2, 3, &u); /* now it holds the whole log */
    CHECK_INT(status(r).last_index, 4);
    const struct raft_member *m = raft_config_find(raft_get_config(r), 4);
    CHECK(m != NULL && m->role == RAFT_VOTER);
    raft_free(r);
}

/* Thesis §4.1: a configuration takes effect when appended, so a follower
 * whose configuration entry is truncated by a new leader goes back to the
 * configuration before it. */
static void test_config_reverted_on_truncate(void)
{
    struct raft_update u;
    struct raft *f = new_node(2, 3, 1, NULL, 0, false, false);
    REQUIRE(f != NULL);
    struct raft_config c = *raft_get_config(f);
    REQUIRE(raft_config_add(&c, 4, "10.0.0.4:5224", RAFT_NONVOTER) == 0);
    static uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    REQUIRE(raft_config_encode(&c, buf, sizeof buf, &len) == 0);
    struct raft_entry e = {.index = 2, .term = 2, .type = RAFT_ENTRY_CONFIG};
    e.data.base = buf;
    e.data.len = len;
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 2);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    m.u.append.entries = &e;
    m.u.append.n_entries = 1;
    recv(f, 10, &m, &u);
    REQUIRE(raft_config_find(raft_get_config(f), 4) != NULL);
    /* a new leader of term 3 overwrites index 2 with a barrier */
    struct raft_entry b = {.index = 2, .term = 3, .type = RAFT_ENTRY_BARRIER};
    m = msg(RAFT_MSG_APPEND, 3, 2, 3);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    m.u.append.entries = &b;
    m.u.append.n_entries = 1;
    recv(f, 20, &m, &u);
    CHECK_INT(u.truncate_from, 2);
    CHECK(raft_config_find(raft_get_config(f), 4) == NULL);
    CHECK(u.config_changed);
    raft_free(f);
}

/* §5.3 with the fast back-off: a rejection never moves nextIndex to or
 * below matchIndex (entries up to match are known to be there). */
static void test_backoff_stays_above_match(void)
{
    struct raft_update u;
    struct raft *r = settled_leader(&u);
    REQUIRE(r != NULL);
    submit(r, 5002, "x", &u);
    submit(r, 5002, "y", &u);
    ack(r, 5003, 2, 2, 3, &u); /* match 3 */
    struct raft_message rej = msg(RAFT_MSG_APPEND_RESULT, 2, 1, 2);
    rej.u.append_result.rejected = true;
    rej.u.append_result.reject_index = 3;
    rej.u.append_result.last_index = 1;
    rej.u.append_result.conflict_term = 0;
    rej.u.append_result.conflict_index = 1; /* a reordered, older answer */
    recv(r, 5004, &rej, &u);
    struct raft_progress p;
    REQUIRE(raft_progress(r, 2, &p) == 0);
    CHECK_INT(p.match_index, 3);
    CHECK(p.next_index > p.match_index);
    /* a rejection of an index below match answers an append the follower
     * has since matched: stale, it changes nothing */
    ack(r, 5005, 2, 2, 4, &u);
    REQUIRE(raft_progress(r, 2, &p) == 0 && !p.probing);
    rej.u.append_result.reject_index = 2;
    recv(r, 5006, &rej, &u);
    REQUIRE(raft_progress(r, 2, &p) == 0);
    CHECK(!p.probing);
    CHECK_INT(p.match_index, 4);
    CHECK_INT(count(&u, RAFT_MSG_APPEND), 0);
    raft_free(r);
}

/* Figure 2's conflict rule never reaches committed entries: a leader never
 * asks for that, and a follower asked anyway (a misbehaving or confused
 * peer) keeps them, dropping the append. */
static void test_committed_never_truncated(void)
{
    struct raft_update u;
    uint64_t terms[] = {1, 1};
    struct raft *f = new_node(2, 3, 1, terms, 2, false, false);
    REQUIRE(f != NULL);
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 1);
    m.u.append.prev_index = 3;
    m.u.append.prev_term = 1;
    m.u.append.commit = 3;
    recv(f, 10, &m, &u);
    REQUIRE(status(f).commit_index == 3);
    struct raft_entry e = {.index = 3, .term = 2, .type = RAFT_ENTRY_NORMAL};
    m = msg(RAFT_MSG_APPEND, 3, 2, 2);
    m.u.append.prev_index = 2;
    m.u.append.prev_term = 1;
    m.u.append.entries = &e;
    m.u.append.n_entries = 1;
    recv(f, 20, &m, &u);
    CHECK_INT(u.truncate_from, 0);
    CHECK_INT(u.n_entries, 0);
    CHECK_INT(status(f).last_index, 3);
    CHECK_INT(status(f).commit_index, 3);
    raft_free(f);
}

/* raft.h step 5: a durability report names (index, term); one about an
 * entry that was truncated and replaced since is stale and ignored, or
 * the node would count a replacement that is not durable yet. */
static void test_persisted_report_for_replaced_entry(void)
{
    struct raft_update u;
    uint64_t terms[] = {1};
    struct raft *f = new_node(2, 3, 1, terms, 1, false, false);
    REQUIRE(f != NULL && status(f).persisted_index == 2);
    struct raft_entry e = {.index = 2, .term = 2, .type = RAFT_ENTRY_NORMAL};
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 2);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    m.u.append.entries = &e;
    m.u.append.n_entries = 1;
    recv(f, 10, &m, &u);
    REQUIRE(u.truncate_from == 2);
    CHECK_INT(status(f).persisted_index, 1);
    persisted(f, 11, 2, 1, &u); /* the old entry 2's report, late */
    CHECK_INT(status(f).persisted_index, 1);
    persisted(f, 12, 2, 2, &u);
    CHECK_INT(status(f).persisted_index, 2);
    raft_free(f);
}

/* start_with_nonvoter: node id of voters 1..3 plus non-voter 4. */
static struct raft *start_with_nonvoter(uint64_t id, bool pre_vote)
{
    struct raft_options o = opts(id, pre_vote, false);
    struct raft *r;
    if (raft_new(&o, &r) != 0)
        return NULL;
    struct raft_config cfg;
    raft_config_init(&cfg);
    raft_config_add(&cfg, 1, "10.0.0.1:5224", RAFT_VOTER);
    raft_config_add(&cfg, 2, "10.0.0.2:5224", RAFT_VOTER);
    raft_config_add(&cfg, 3, "10.0.0.3:5224", RAFT_VOTER);
    raft_config_add(&cfg, 4, "10.0.0.4:5224", RAFT_NONVOTER);
    static uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    raft_config_encode(&cfg, buf, sizeof buf, &len);
    struct raft_entry e = {.index = 1, .term = 1, .type = RAFT_ENTRY_CONFIG};
    e.data.base = buf;
    e.data.len = len;
    struct raft_event ev = {.type = RAFT_EV_START};
    ev.u.start.term = 1;
    ev.u.start.entries = &e;
    ev.u.start.n_entries = 1;
    struct raft_update u;
    if (raft_step(r, &ev, &u) != 0) {
        raft_free(r);
        return NULL;
    }
    return r;
}

/* A non-voter's vote and a non-voter's TimeoutNow count for nothing
 * (DESIGN.md "Identity": only voters count toward a quorum). */
static void test_nonvoter_counts_nowhere(void)
{
    struct raft_update u;
    struct raft *r = start_with_nonvoter(1, false);
    REQUIRE(r != NULL);
    tick(r, 5000, &u);
    REQUIRE(status(r).role == RAFT_CANDIDATE);
    struct raft_message g = vote_granted(4, 1, 2, false);
    recv(r, 5001, &g, &u);
    CHECK_INT(status(r).role, RAFT_CANDIDATE);
    g = vote_granted(2, 1, 2, false);
    recv(r, 5002, &g, &u);
    CHECK_INT(status(r).role, RAFT_LEADER);
    raft_free(r);

    r = start_with_nonvoter(2, false);
    REQUIRE(r != NULL);
    struct raft_message tn = msg(RAFT_MSG_TIMEOUT_NOW, 4, 2, 1);
    recv(r, 10, &tn, &u);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    raft_free(r);
}

/* Thesis §3.10: only our leader can hand us leadership; a TimeoutNow from
 * another voter (a stale one, or one replayed after our restart) changes
 * nothing. */
static void test_timeout_now_only_from_leader(void)
{
    struct raft_update u;
    struct raft *f = new_node(2, 3, 1, NULL, 0, true, true);
    REQUIRE(f != NULL);
    struct raft_message hb = msg(RAFT_MSG_APPEND, 1, 2, 2);
    hb.u.append.prev_index = 1;
    hb.u.append.prev_term = 1;
    recv(f, 0, &hb, &u);
    REQUIRE(status(f).leader_id == 1);
    struct raft_message tn = msg(RAFT_MSG_TIMEOUT_NOW, 3, 2, 2);
    recv(f, 10, &tn, &u);
    CHECK_INT(status(f).role, RAFT_FOLLOWER);
    CHECK_INT(status(f).term, 2);
    tn.from = 1;
    recv(f, 20, &tn, &u);
    CHECK_INT(status(f).role, RAFT_CANDIDATE);
    CHECK_INT(status(f).term, 3);
    raft_free(f);
}

/* ---- a candidate behind a better one ------------------------------------------ */

/* sim seed 22650: a candidate whose log is behind refuses, as already voted
 * (for itself), a request of its own term from a candidate with a more
 * up-to-date log.  It must give up: move to the next term as a follower
 * with no vote, tell that term in its answer, and stay quiet longer than
 * the better candidate's longest timeout, so that the better one asks
 * first, in a term where it can be granted. */
static void test_candidate_yields_to_better_log(void)
{
    struct raft_update u;
    struct raft *c = new_node(2, 3, 1, NULL, 0, false, false);
    REQUIRE(c != NULL);
    uint64_t now = 0;
    while (status(c).role != RAFT_CANDIDATE && now < 5000)
        tick(c, ++now, &u);
    REQUIRE(status(c).role == RAFT_CANDIDATE && status(c).term == 2);
    struct raft_message v = msg(RAFT_MSG_VOTE, 3, 2, 2);
    v.u.vote.last_index = 2;
    v.u.vote.last_term = 2;
    recv(c, now + 10, &v, &u);
    const struct raft_message *o = find(&u, RAFT_MSG_VOTE_RESULT, 3);
    REQUIRE(o != NULL);
    CHECK(!o->u.vote_result.granted);
    CHECK_INT(o->term, 3);
    CHECK_INT(status(c).role, RAFT_FOLLOWER);
    CHECK_INT(status(c).term, 3);
    struct raft_options d = opts(2, false, false);
    for (uint64_t t = now + 11; t < now + 10 + d.election_max_ms; t++) {
        tick(c, t, &u);
        if (status(c).role != RAFT_FOLLOWER) {
            TL_FAIL_("the yielding node campaigned %" PRIu64 " ms after it yielded",
                     t - now - 10);
            break;
        }
    }
    /* the better candidate asks in term 4: granted */
    v.term = 4;
    recv(c, now + 10 + d.election_max_ms, &v, &u);
    o = find(&u, RAFT_MSG_VOTE_RESULT, 3);
    REQUIRE(o != NULL);
    CHECK(o->u.vote_result.granted);
    raft_free(c);

    /* an equally up-to-date candidate is refused as before: no yield */
    c = new_node(2, 3, 1, NULL, 0, false, false);
    REQUIRE(c != NULL);
    now = 0;
    while (status(c).role != RAFT_CANDIDATE && now < 5000)
        tick(c, ++now, &u);
    v = msg(RAFT_MSG_VOTE, 3, 2, 2);
    v.u.vote.last_index = 1;
    v.u.vote.last_term = 1;
    recv(c, now + 10, &v, &u);
    CHECK_INT(status(c).role, RAFT_CANDIDATE);
    CHECK_INT(status(c).term, 2);
    raft_free(c);
}

/* ---- CheckQuorum ---------------------------------------------------------- */

/* Thesis §6.2: a leader that has not heard from a majority for an election
 * timeout steps down.  That holds for its first window too: a new leader
 * that hears nobody steps down one election timeout after it won, not two. */
static void test_check_quorum_first_window(void)
{
    struct raft_update u;
    struct raft *r = make_leader_with(3, false, true, &u);
    REQUIRE(r != NULL && status(r).role == RAFT_LEADER);
    for (uint64_t now = 5100; now <= 6000; now += 100)
        tick(r, now, &u);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    CHECK_INT(raft_get_counters(r)->check_quorum_stepdowns, 1);
    raft_free(r);

    /* a leader that hears a majority stays */
    r = make_leader_with(3, false, true, &u);
    REQUIRE(r != NULL);
    for (uint64_t now = 5100; now <= 8000; now += 100) {
        ack(r, now, 2, 2, 2, &u);
        tick(r, now, &u);
    }
    CHECK_INT(status(r).role, RAFT_LEADER);
    raft_free(r);
}

/* ---- the crash fast path ---------------------------------------------------- */

static struct raft_message heartbeat(uint64_t term)
{
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, term);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    m.u.append.commit = 1;
    return m;
}

/* A flapping link: the transport reports the leader's connection refused
 * over and over (a firewall REJECT, a half-open route) while the leader's
 * heartbeats still arrive.  One signal is not enough: the follower keeps
 * its lease (refuses another node's pre-vote) and never campaigns. */
static void test_fast_path_flapping_link(void)
{
    struct raft_update u;
    struct raft *f = new_node(2, 3, 1, NULL, 0, true, true);
    REQUIRE(f != NULL);
    struct raft_message hb = heartbeat(2);
    recv(f, 0, &hb, &u);
    REQUIRE(status(f).leader_id == 1);
    bool campaigned = false, granted = false;
    for (uint64_t now = 10; now <= 3000; now += 10) {
        if (now % 100 == 0)
            recv(f, now, &hb, &u);
        if (now % 30 == 0)
            peer_down(f, now, 1, &u);
        if (now % 250 == 0) {
            struct raft_message pv = msg(RAFT_MSG_VOTE, 3, 2, 3);
            pv.u.vote.pre_vote = true;
            pv.u.vote.last_index = 1;
            pv.u.vote.last_term = 1;
            recv(f, now, &pv, &u);
            const struct raft_message *o = find(&u, RAFT_MSG_VOTE_RESULT, 3);
            granted |= o != NULL && o->u.vote_result.granted;
        }
        tick(f, now, &u);
        campaigned |= status(f).role != RAFT_FOLLOWER;
    }
    CHECK(!campaigned);
    CHECK(!granted);
    CHECK_INT(status(f).leader_id, 1);
    raft_free(f);
}

/* The fast path still works when both signals come: the link is refused
 * and the heartbeats stop (the leader crashed).  The follower pre-votes
 * after a missed heartbeat, well before the election timeout. */
static void test_fast_path_crash(void)
{
    struct raft_update u;
    struct raft *f = new_node(2, 3, 1, NULL, 0, true, true);
    REQUIRE(f != NULL);
    struct raft_message hb = heartbeat(2);
    for (uint64_t now = 0; now <= 500; now += 100)
        recv(f, now, &hb, &u);
    peer_down(f, 510, 1, &u); /* the leader died just after its beat */
    uint64_t first = 0;
    for (uint64_t now = 511; now <= 3000 && first == 0; now++) {
        tick(f, now, &u);
        if (status(f).role == RAFT_PRECANDIDATE)
            first = now;
    }
    CHECK(first > 500 + 100);  /* a heartbeat was missed first */
    CHECK(first < 500 + 1000); /* before the minimum election timeout */
    CHECK_INT(raft_get_counters(f)->fast_path_elections, 1);
    raft_free(f);

    /* refused connection, then silence: the report comes first here */
    f = new_node(2, 3, 1, NULL, 0, true, true);
    REQUIRE(f != NULL);
    recv(f, 0, &hb, &u);
    peer_down(f, 1, 1, &u);
    first = 0;
    for (uint64_t now = 2; now <= 3000 && first == 0; now++) {
        tick(f, now, &u);
        if (status(f).role == RAFT_PRECANDIDATE)
            first = now;
    }
    CHECK(first > 100 && first < 1000);
    raft_free(f);
}

/* A report about a peer that is not our leader is no signal about the
 * leader: even when the leader's heartbeats stop, the follower keeps to
 * the election timeout (and keeps its lease until then). */
static void test_fast_path_other_peer(void)
{
    struct raft_update u;
    struct raft *f = new_node(2, 3, 1, NULL, 0, true, true);
    REQUIRE(f != NULL);
    struct raft_message hb = heartbeat(2);
    recv(f, 0, &hb, &u);
    peer_down(f, 1, 3, &u);
    for (uint64_t now = 2; now < 1000; now++) {
        tick(f, now, &u);
        if (status(f).role != RAFT_FOLLOWER || status(f).leader_id != 1) {
            TL_FAIL_("a report about node 3 moved node 2 at %" PRIu64 " ms", now);
            break;
        }
    }
    CHECK_INT(raft_get_counters(f)->fast_path_elections, 0);
    raft_free(f);
}

TL_MAIN(T(test_replace_same_id_refused), T(test_change_waits_for_first_commit),
        T(test_promote_waits_for_transfer), T(test_promote_waits_for_catch_up),
        T(test_config_reverted_on_truncate), T(test_backoff_stays_above_match),
        T(test_committed_never_truncated), T(test_persisted_report_for_replaced_entry),
        T(test_nonvoter_counts_nowhere), T(test_timeout_now_only_from_leader),
        T(test_removed_node_learns), T(test_candidate_yields_to_better_log),
        T(test_check_quorum_first_window), T(test_fast_path_flapping_link),
        T(test_fast_path_crash), T(test_fast_path_other_peer))
