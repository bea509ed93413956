/* test_paper.c: one test per rule of the Raft paper's figure 2 and section 5
 * (Ongaro & Ousterhout 2014), in the manner of etcd's raft_paper_test.go.
 * Most tests drive one instance by hand: they hand it events and look at the
 * update it returns.  The safety properties of figure 3 are also checked on
 * seeded cluster runs with message loss (cluster.h checks them each step). */
#include "testlib.h"

#include "cluster.h"
#include "onenode.h"
#include "raft.h"

#include <stdint.h>

/* ---- §5.1 terms -------------------------------------------------------- */

/* §5.1: "If one server's current term is smaller than the other's, then it
 * updates its current term to the larger value.  If a candidate or leader
 * discovers that its term is out of date, it immediately reverts to
 * follower state." */
static void test_update_term_from_message(void)
{
    struct raft_update u;
    /* follower */
    struct raft *r = new_node(1, 3, 1, NULL, 0, false, false);
    struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 5);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    recv(r, 10, &m, &u);
    CHECK_INT(status(r).term, 5);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    CHECK_INT(status(r).leader_id, 2);
    CHECK(u.persist_term_vote);
    raft_free(r);
    /* candidate */
    r = new_node(1, 3, 1, NULL, 0, false, false);
    tick(r, 5000, &u);
    CHECK_INT(status(r).role, RAFT_CANDIDATE);
    recv(r, 5001, &m, &u);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    CHECK_INT(status(r).term, 5);
    raft_free(r);
    /* leader */
    r = make_leader(3, &u);
    CHECK_INT(status(r).role, RAFT_LEADER);
    struct raft_message res = msg(RAFT_MSG_APPEND_RESULT, 2, 1, 7);
    res.u.append_result.rejected = true;
    recv(r, 5002, &res, &u);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    CHECK_INT(status(r).term, 7);
    raft_free(r);
}

/* §5.1: "If a server receives a request with a stale term number, it
 * rejects the request." */
static void test_reject_stale_term(void)
{
    struct raft_update u;
    struct raft *r = new_node(1, 3, 4, NULL, 0, false, false);
    struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 3);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    m.u.append.commit = 1;
    recv(r, 10, &m, &u);
    const struct raft_message *o = find(&u, RAFT_MSG_APPEND_RESULT, 2);
    REQUIRE(o != NULL);
    CHECK(o->u.append_result.rejected);
    CHECK_INT(o->term, 4);
    CHECK_INT(status(r).leader_id, 0);
    CHECK_INT(status(r).commit_index, 0);
    /* a stale vote request is refused too */
    struct raft_message v = msg(RAFT_MSG_VOTE, 3, 1, 2);
    v.u.vote.last_index = 10;
    v.u.vote.last_term = 2;
    recv(r, 11, &v, &u);
    o = find(&u, RAFT_MSG_VOTE_RESULT, 3);
    REQUIRE(o != NULL);
    CHECK(!o->u.vote_result.granted);
    CHECK_INT(status(r).vote, 0);
    raft_free(r);
}

/* §5.2: "When servers start up, they begin as followers." */
static void test_start_as_follower(void)
{
    struct raft *r = new_node(1, 3, 1, NULL, 0, true, true);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    CHECK_INT(status(r).leader_id, 0);
    raft_free(r);
}

/* §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no
 * log entries) to all followers in order to maintain their authority." */
static void test_leader_broadcasts_heartbeat(void)
{
    struct raft_update u;
    struct raft *r = make_leader(3, &u);
    /* followers acknowledge everything so heartbeats carry no entries */
    for (uint64_t f = 2; f <= 3; f++) {
        struct raft_message a = msg(RAFT_MSG_APPEND_RESULT, f, 1, 2);
        a.u.append_result.last_index = 2;
        recv(r, 5001, &a, &u);
    }
    CHECK_INT(u.deadline, 5100); /* heartbeat interval 100 ms */
    tick(r, 5100, &u);
    CHECK_INT(count(&u, RAFT_MSG_APPEND), 2);
    for (unsigned i = 0; i < u.n_messages; i++)
        CHECK_INT(u.messages[i].u.append.n_entries, 0);
    raft_free(r);
}

/* §5.2: "If a follower receives no communication over a period of time
 * called the election timeout, then it ... begins an election": increments
 * its term, votes for itself, issues RequestVote in parallel. */
static void test_follower_starts_election(void)
{
    struct raft_update u;
    struct raft *r = new_node(1, 3, 1, NULL, 0, false, false);
    tick(r, 999, &u);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    tick(r, 2000, &u);
    CHECK_INT(status(r).role, RAFT_CANDIDATE);
    CHECK_INT(status(r).term, 2);
    CHECK_INT(status(r).vote, 1);
    CHECK(u.persist_term_vote);
    CHECK_INT(u.vote, 1);
    CHECK_INT(count(&u, RAFT_MSG_VOTE), 2);
    const struct raft_message *v = find(&u, RAFT_MSG_VOTE, 2);
    REQUIRE(v != NULL);
    CHECK_INT(v->term, 2);
    CHECK_INT(v->u.vote.last_index, 1);
    CHECK_INT(v->u.vote.last_term, 1);
    CHECK(!v->u.vote.pre_vote);
    raft_free(r);
}

/* §5.2: a candidate wins with votes from a majority, loses when a majority
 * refuse, and otherwise stays a candidate. */
static void test_election_in_one_round(void)
{
    struct {
        unsigned n;
        unsigned yes, no; /* answers from peers 2.. */
        enum raft_role want;
    } cases[] = {
        {1, 0, 0, RAFT_LEADER},    {3, 1, 0, RAFT_LEADER},   {3, 2, 0, RAFT_LEADER},
        {5, 2, 0, RAFT_LEADER},    {5, 3, 1, RAFT_LEADER},   {3, 0, 0, RAFT_CANDIDATE},
        {5, 1, 0, RAFT_CANDIDATE}, {3, 0, 2, RAFT_FOLLOWER}, {5, 0, 3, RAFT_FOLLOWER},
        {5, 1, 2, RAFT_CANDIDATE},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct raft_update u;
        struct raft *r = new_node(1, cases[k].n, 1, NULL, 0, false, false);
        if (status(r).role != RAFT_LEADER)
            tick(r, 5000, &u);
        uint64_t peer = 2;
        for (unsigned y = 0; y < cases[k].yes; y++) {
            struct raft_message m = vote_granted(peer++, 1, 2, false);
            recv(r, 5001, &m, &u);
        }
        for (unsigned y = 0; y < cases[k].no; y++) {
            struct raft_message m = msg(RAFT_MSG_VOTE_RESULT, peer++, 1, 2);
            recv(r, 5001, &m, &u);
        }
        if (status(r).role != cases[k].want)
            printf("  case %zu: role %s\n", k, raft_role_name(status(r).role));
        CHECK_INT(status(r).role, cases[k].want);
        raft_free(r);
    }
}

/* §5.2: "Each server will vote for at most one candidate in a given term, on
 * a first-come-first-served basis"; the vote is persisted before the answer
 * leaves (same update). */
static void test_vote_once_per_term(void)
{
    struct raft_update u;
    struct raft *r = new_node(1, 3, 1, NULL, 0, false, false);
    struct raft_message v = msg(RAFT_MSG_VOTE, 2, 1, 2);
    v.u.vote.last_index = 1;
    v.u.vote.last_term = 1;
    recv(r, 10, &v, &u);
    const struct raft_message *o = find(&u, RAFT_MSG_VOTE_RESULT, 2);
    REQUIRE(o != NULL);
    CHECK(o->u.vote_result.granted);
    CHECK(u.persist_term_vote);
    CHECK_INT(u.vote, 2);
    /* the same candidate again: granted again (lost reply) */
    recv(r, 11, &v, &u);
    o = find(&u, RAFT_MSG_VOTE_RESULT, 2);
    REQUIRE(o != NULL);
    CHECK(o->u.vote_result.granted);
    /* another candidate in the same term: refused */
    v.from = 3;
    recv(r, 12, &v, &u);
    o = find(&u, RAFT_MSG_VOTE_RESULT, 3);
    REQUIRE(o != NULL);
    CHECK(!o->u.vote_result.granted);
    CHECK_INT(status(r).vote, 2);
    raft_free(r);
}

/* §5.2 and figure 2 ("Persistent state on all servers: currentTerm,
 * votedFor"): a vote granted in the current term (no term change in the
 * step) is persisted with the answer, and a restarted node keeps it. */
static void test_vote_persisted_and_kept(void)
{
    struct raft_update u;
    struct raft *r = new_node(1, 3, 2, NULL, 0, false, false);
    struct raft_message v = msg(RAFT_MSG_VOTE, 2, 1, 2);
    v.u.vote.last_index = 1;
    v.u.vote.last_term = 1;
    recv(r, 10, &v, &u);
    const struct raft_message *o = find(&u, RAFT_MSG_VOTE_RESULT, 2);
    REQUIRE(o != NULL);
    CHECK(o->u.vote_result.granted);
    CHECK(u.persist_term_vote);
    CHECK_INT(u.term, 2);
    CHECK_INT(u.vote, 2);
    raft_free(r);
    /* restart from term 2, vote 2: another candidate of term 2 is refused */
    struct raft_options op = opts(1, false, false);
    REQUIRE(raft_new(&op, &r) == 0);
    struct raft_config cfg;
    raft_config_init(&cfg);
    raft_config_add(&cfg, 1, "10.0.0.1:5224", RAFT_VOTER);
    raft_config_add(&cfg, 2, "10.0.0.2:5224", RAFT_VOTER);
    raft_config_add(&cfg, 3, "10.0.0.3:5224", RAFT_VOTER);
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    raft_config_encode(&cfg, buf, sizeof buf, &len);
    struct raft_entry e = {.index = 1, .term = 1, .type = RAFT_ENTRY_CONFIG};
    e.data.base = buf;
    e.data.len = len;
    struct raft_event ev = {.type = RAFT_EV_START};
    ev.u.start.term = 2;
    ev.u.start.vote = 2;
    ev.u.start.entries = &e;
    ev.u.start.n_entries = 1;
    REQUIRE(raft_step(r, &ev, &u) == 0);
    CHECK_INT(status(r).vote, 2);
    v.from = 3;
    recv(r, 20, &v, &u);
    o = find(&u, RAFT_MSG_VOTE_RESULT, 3);
    REQUIRE(o != NULL);
    CHECK(!o->u.vote_result.granted);
    raft_free(r);
}

/* Thesis §9.6: a pre-vote answer counts only for the round it answers (the
 * term asked is our term + 1); a late grant of an earlier round does not. */
static void test_prevote_old_round_ignored(void)
{
    struct raft_update u;
    struct raft *r = new_node(1, 3, 3, NULL, 0, true, false);
    tick(r, 5000, &u);
    REQUIRE(status(r).role == RAFT_PRECANDIDATE);
    struct raft_message g = vote_granted(2, 1, 3, true); /* asked in term 2 */
    recv(r, 5001, &g, &u);
    CHECK_INT(status(r).role, RAFT_PRECANDIDATE);
    g = vote_granted(2, 1, 4, true);
    recv(r, 5002, &g, &u);
    CHECK_INT(status(r).role, RAFT_CANDIDATE);
    raft_free(r);
}

/* §5.2: "While waiting for votes, a candidate may receive an AppendEntries
 * RPC from another server claiming to be leader.  If the leader's term is at
 * least as large as the candidate's current term, then the candidate ...
 * returns to follower state." */
static void test_candidate_falls_back(void)
{
    struct raft_update u;
    struct raft *r = new_node(1, 3, 1, NULL, 0, false, false);
    tick(r, 5000, &u);
    REQUIRE(status(r).role == RAFT_CANDIDATE);
    struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 2);
    m.u.append.prev_index = 1;
    m.u.append.prev_term = 1;
    recv(r, 5001, &m, &u);
    CHECK_INT(status(r).role, RAFT_FOLLOWER);
    CHECK_INT(status(r).leader_id, 2);
    CHECK_INT(status(r).term, 2);
    raft_free(r);
}

/* §5.2: "Raft uses randomized election timeouts": drawn from [min, max),
 * and different on different nodes. */
static void test_election_timeout_randomized(void)
{
    uint64_t seen[8];
    unsigned distinct = 0;
    for (uint64_t id = 1; id <= 8; id++) {
        struct raft *r = new_node(id, 8, 1, NULL, 0, false, false);
        struct raft_update u;
        tick(r, 1, &u);
        CHECK(u.deadline >= 1000 && u.deadline < 2000);
        bool dup = false;
        for (unsigned k = 0; k < distinct; k++)
            dup |= seen[k] == u.deadline;
        if (!dup)
            seen[distinct++] = u.deadline;
        raft_free(r);
    }
    CHECK(distinct >= 6);
}

/* ---- §5.3 log replication -------------------------------------------- */

/* §5.3: "The leader appends the command to its log as a new entry, then
 * issues AppendEntries RPCs in parallel to each of the other servers." */
static void test_leader_starts_replication(void)
{
    struct raft_update u;
    struct raft *r = make_leader(3, &u);
    for (uint64_t f = 2; f <= 3; f++) {
        struct raft_message a = msg(RAFT_MSG_APPEND_RESULT, f, 1, 2);
        a.u.append_result.last_index = 2;
        recv(r, 5001, &a, &u);
    }
    CHECK_INT(submit(r, 5002, "x", &u), 0);
    CHECK_INT(u.index, 3);
    CHECK_INT(u.index_term, 2);
    CHECK_INT(u.n_entries, 1); /* to persist */
    CHECK_INT(count(&u, RAFT_MSG_APPEND), 2);
    const struct raft_message *m = find(&u, RAFT_MSG_APPEND, 2);
    REQUIRE(m != NULL);
    CHECK_INT(m->u.append.prev_index, 2);
    CHECK_INT(m->u.append.prev_term, 2);
    REQUIRE(m->u.append.n_entries == 1 && m->u.append.entries != NULL);
    CHECK_INT(m->u.append.entries[0].index, 3);
    CHECK(memcmp(m->u.append.entries[0].data.base, "x", 1) == 0);
    raft_free(r);
}

/* §5.3: "A log entry is committed once the leader that created the entry has
 * replicated it on a majority of the servers"; the leader's own copy counts
 * only once durable. */
static void test_leader_commits_on_majority(void)
{
    struct raft_update u;
    struct raft *r = make_leader(5, &u);
    CHECK_INT(status(r).commit_index, 0); /* barrier durable on 1 of 5 */
    submit(r, 5001, "x", &u);             /* index 3, not persisted yet */
    struct raft_message a = msg(RAFT_MSG_APPEND_RESULT, 2, 1, 2);
    a.u.append_result.last_index = 3;
    recv(r, 5002, &a, &u);
    a.from = 3;
    recv(r, 5002, &a, &u);
    CHECK_INT(status(r).commit_index, 2); /* the barrier; 3 is on 2 of 5 */
    persisted(r, 5003, 3, 2, &u);
    CHECK_INT(status(r).commit_index, 3);
    REQUIRE(u.n_committed == 1); /* committed[0] below */
    CHECK_INT(u.committed[0].index, 3);
    raft_free(r);
}

/* §5.3: "the leader ... includes [the highest committed index] in future
 * AppendEntries RPCs ... Once a follower learns that a log entry is
 * committed, it applies the entry to its local state machine." */
static void test_follower_commits(void)
{
    struct raft_update u;
    uint64_t terms[] = {1, 1};
    struct raft *r = new_node(2, 3, 1, terms, 2, false, false);
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 1);
    m.u.append.prev_index = 3;
    m.u.append.prev_term = 1;
    m.u.append.commit = 2;
    recv(r, 10, &m, &u);
    CHECK_INT(status(r).commit_index, 2);
    CHECK_INT(u.n_committed, 2);
    /* commit is capped by the last entry the leader vouched for */
    m.u.append.prev_index = 1;
    m.u.append.commit = 3;
    recv(r, 11, &m, &u);
    CHECK_INT(status(r).commit_index, 2);
    raft_free(r);
}

/* Figure 2, AppendEntries 2: "Reply false if log doesn't contain an entry at
 * prevLogIndex whose term matches prevLogTerm", with a back-off hint. */
static void test_append_consistency_check(void)
{
    struct raft_update u;
    uint64_t terms[] = {1, 2, 2, 3};
    struct raft *r = new_node(2, 3, 3, terms, 4, false, false);
    struct {
        uint64_t prev, prev_term;
        bool reject;
        uint64_t hint_term, hint_index;
    } cases[] = {
        {0, 0, false, 0, 0}, {1, 1, false, 0, 0}, {3, 2, false, 0, 0},
        {5, 3, false, 0, 0}, {5, 2, true, 3, 5},  {4, 3, true, 2, 3},
        {7, 3, true, 0, 6},  {2, 2, true, 1, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 3);
        m.u.append.prev_index = cases[k].prev;
        m.u.append.prev_term = cases[k].prev_term;
        recv(r, 10 + k, &m, &u);
        const struct raft_message *o = find(&u, RAFT_MSG_APPEND_RESULT, 1);
        REQUIRE(o != NULL);
        CHECK_INT(o->u.append_result.rejected, cases[k].reject);
        if (cases[k].reject) {
            CHECK_INT(o->u.append_result.conflict_term, cases[k].hint_term);
            CHECK_INT(o->u.append_result.conflict_index, cases[k].hint_index);
            CHECK_INT(o->u.append_result.reject_index, cases[k].prev);
        }
    }
    CHECK_INT(status(r).last_index, 5); /* nothing was changed */
    raft_free(r);
}

/* Figure 2, AppendEntries 3 and 4: "If an existing entry conflicts with a
 * new one (same index but different terms), delete the existing entry and
 * all that follow it.  Append any new entries not already in the log." */
static void test_follower_appends_entries(void)
{
    struct raft_update u;
    uint64_t terms[] = {1, 2, 2};
    struct raft *r = new_node(2, 3, 3, terms, 3, false, false);
    struct raft_entry e[2] = {{.index = 4, .term = 3, .type = RAFT_ENTRY_NORMAL},
                              {.index = 5, .term = 3, .type = RAFT_ENTRY_NORMAL}};
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 3);
    m.u.append.prev_index = 3;
    m.u.append.prev_term = 2;
    m.u.append.entries = e;
    m.u.append.n_entries = 2;
    recv(r, 10, &m, &u);
    CHECK_INT(u.truncate_from, 4); /* entry 4 (term 2) conflicted */
    REQUIRE(u.n_entries == 2);     /* entries[0] below */
    CHECK_INT(u.entries[0].index, 4);
    CHECK_INT(u.entries[0].term, 3);
    CHECK_INT(status(r).last_index, 5);
    /* the same message again changes nothing (already have them) */
    recv(r, 11, &m, &u);
    CHECK_INT(u.truncate_from, 0);
    CHECK_INT(u.n_entries, 0);
    const struct raft_message *o = find(&u, RAFT_MSG_APPEND_RESULT, 1);
    REQUIRE(o != NULL);
    CHECK(!o->u.append_result.rejected);
    CHECK_INT(o->u.append_result.last_index, 5);
    /* an older, shorter message does not truncate matching entries */
    m.u.append.n_entries = 1;
    recv(r, 12, &m, &u);
    CHECK_INT(status(r).last_index, 5);
    raft_free(r);
}

/* §5.3 and figure 7: "the leader must find the latest log entry where the
 * two logs agree, delete any entries in the follower's log after that point,
 * and send the follower all of the leader's entries after that point". Two
 * instances exchange messages until the follower matches. */
static void test_leader_syncs_follower_log(void)
{
    /* leader's log of figure 7 (terms of indexes 2..11 after the bootstrap) */
    uint64_t lead[] = {1, 1, 4, 4, 5, 5, 6, 6, 6};
    struct {
        uint64_t terms[12];
        unsigned n;
    } followers[] = {
        {{1, 1, 4, 4, 5, 5, 6, 6}, 8},           /* (a) missing one */
        {{1, 1, 4}, 3},                          /* (b) missing many */
        {{1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 10},    /* (c) one extra */
        {{1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 11}, /* (d) extra, newer term */
        {{1, 1, 4, 4, 4, 4}, 6},                 /* (e) extra, old term */
        {{1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 10},    /* (f) diverged */
    };
    for (size_t k = 0; k < sizeof followers / sizeof followers[0]; k++) {
        struct raft *l = new_node(1, 3, 7, lead, 9, false, false);
        struct raft *f =
            new_node(2, 3, 7, followers[k].terms, followers[k].n, false, false);
        struct raft_update u;
        /* elect node 1 in term 8 with node 3's vote */
        tick(l, 5000, &u);
        struct raft_message g = vote_granted(3, 1, 8, false);
        recv(l, 5000, &g, &u);
        REQUIRE(status(l).role == RAFT_LEADER);
        persisted(l, 5000, status(l).last_index, 8, &u);
        /* the follower knows term 8 from node 1's append */
        struct raft_message pending[64];
        unsigned np = 0;
        tick(l, 5100, &u);
        for (int round = 0; round < 50; round++) {
            np = 0;
            for (unsigned i = 0; i < u.n_messages && np < 64; i++)
                if (u.messages[i].to == 2 && u.messages[i].type == RAFT_MSG_APPEND)
                    pending[np++] = u.messages[i];
            if (np == 0)
                break;
            struct raft_update fu;
            /* deliver the first append to the follower, its reply back */
            recv(f, 5101, &pending[0], &fu);
            const struct raft_message *rep = find(&fu, RAFT_MSG_APPEND_RESULT, 1);
            REQUIRE(rep != NULL);
            struct raft_message copy = *rep;
            recv(l, 5101, &copy, &u);
        }
        struct raft_status ls = status(l), fs = status(f);
        CHECK_INT(fs.last_index, ls.last_index);
        struct raft_progress p;
        CHECK_INT(raft_progress(l, 2, &p), 0);
        CHECK_INT(p.match_index, ls.last_index);
        raft_free(l);
        raft_free(f);
    }
}

/* ---- §5.4 safety ------------------------------------------------------ */

/* §5.4.1: "Raft determines which of two logs is more up-to-date by
 * comparing the index and term of the last entries". */
static void test_voter_up_to_date_rule(void)
{
    uint64_t terms[] = {2, 2}; /* last = 3/2 */
    struct {
        uint64_t last_index, last_term;
        bool grant;
    } cases[] = {
        {3, 2, true},  {4, 2, true},  {2, 2, false}, {1, 3, true},
        {9, 1, false}, {2, 1, false}, {3, 3, true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct raft_update u;
        struct raft *r = new_node(1, 3, 2, terms, 2, false, false);
        struct raft_message v = msg(RAFT_MSG_VOTE, 2, 1, 3);
        v.u.vote.last_index = cases[k].last_index;
        v.u.vote.last_term = cases[k].last_term;
        recv(r, 10, &v, &u);
        const struct raft_message *o = find(&u, RAFT_MSG_VOTE_RESULT, 2);
        REQUIRE(o != NULL);
        CHECK_INT(o->u.vote_result.granted, cases[k].grant);
        raft_free(r);
    }
}

/* §5.4.2: "Raft never commits log entries from previous terms by counting
 * replicas.  Only log entries from the leader's current term are committed
 * by counting replicas" (figure 8). */
static void test_commit_only_current_term(void)
{
    struct raft_update u;
    uint64_t terms[] = {2}; /* index 2 from term 2, uncommitted */
    struct raft *r = new_node(1, 3, 3, terms, 1, false, false);
    tick(r, 5000, &u); /* candidate in term 4 */
    struct raft_message g = vote_granted(2, 1, 4, false);
    recv(r, 5000, &g, &u);
    REQUIRE(status(r).role == RAFT_LEADER);
    /* barrier at index 3 (term 4), not durable yet; a follower has index 2 */
    struct raft_message a = msg(RAFT_MSG_APPEND_RESULT, 2, 1, 4);
    a.u.append_result.last_index = 2;
    recv(r, 5001, &a, &u);
    persisted(r, 5001, 2, 2, &u);
    CHECK_INT(status(r).commit_index, 0); /* index 2 is on 2 of 3, old term */
    persisted(r, 5002, 3, 4, &u);
    a.u.append_result.last_index = 3;
    recv(r, 5003, &a, &u);
    CHECK_INT(status(r).commit_index, 3); /* current term: commits both */
    raft_free(r);
}

/* The safety properties of figure 3 on seeded runs with loss, duplicates,
 * reordering (jitter), crashes, partitions and snapshots: election safety,
 * leader append-only, log matching, leader completeness, state machine
 * safety; and a leader again once the faults heal. */
static void test_safety_properties_on_runs(void)
{
    uint64_t elections = 0, delivered = 0, dropped = 0, applied = 0;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        struct raft_options o;
        raft_options_default(&o);
        raft_options_fast_lan(&o);
        o.pre_vote = seed % 2;
        o.check_quorum = seed % 3 != 0;
        o.snapshot_trailing = 4;
        struct cluster c;
        unsigned n = 3 + 2 * (unsigned)(seed % 3);
        REQUIRE(cl_init(&c, n, seed, &o) == 0);
        c.jitter_ms = 20;
        c.drop_pct = 5;
        c.dup_pct = 5;
        uint64_t rng = seed;
        char data[32];
        for (int round = 0; round < 40 && cl_ok(&c); round++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            unsigned pick = (unsigned)(rng >> 33) % n;
            switch ((rng >> 20) % 6) {
            case 0:
                cl_isolate(&c, pick);
                break;
            case 1:
                cl_heal(&c);
                break;
            case 2:
                if (c.nodes[pick].r == NULL)
                    cl_restart(&c, pick);
                else if (round % 4 == 0)
                    cl_crash(&c, pick);
                break;
            default: {
                int l = cl_leader(&c);
                if (l >= 0) {
                    snprintf(data, sizeof data, "s%" PRIu64 "r%d", seed, round);
                    cl_submit(&c, (unsigned)l, data, NULL);
                    if (round % 7 == 0 && c.nodes[l].applied > 2) {
                        struct raft_event ev = {.type = RAFT_EV_SNAPSHOT};
                        ev.u.snapshot.index = c.nodes[l].applied;
                        ev.u.snapshot.data.base = data;
                        ev.u.snapshot.data.len = strlen(data);
                        cl_step(&c, (unsigned)l, &ev);
                    }
                }
            }
            }
            cl_run(&c, 300);
        }
        cl_heal(&c);
        for (unsigned i = 0; i < n; i++)
            if (c.nodes[i].r == NULL)
                cl_restart(&c, i);
        c.drop_pct = 0;
        cl_run(&c, 5000);
        cl_check_logs(&c);
        if (!cl_ok(&c))
            printf("  seed %" PRIu64 ": %s\n", seed, c.violation);
        CHECK(cl_ok(&c));
        CHECK(cl_leader(&c) >= 0); /* liveness after healing */
        /* every node applied the same prefix */
        int l = cl_leader(&c);
        if (l >= 0) {
            cl_submit(&c, (unsigned)l, "final", NULL);
            cl_run(&c, 1000);
            for (unsigned i = 0; i < n; i++)
                CHECK_INT(c.nodes[i].applied, c.nodes[l].applied);
            applied += c.nodes[l].applied;
        }
        elections += c.elections_won;
        delivered += c.delivered;
        dropped += c.dropped;
        cl_free(&c);
    }
    printf("  24 runs: %" PRIu64 " leaders elected, %" PRIu64
           " messages delivered, %" PRIu64 " dropped, %" PRIu64 " entries applied\n",
           elections, delivered, dropped, applied);
}

/* A vote request from a node outside the configuration whose log is behind
 * ours (a removed node: its log lacks the entry that removed it) neither
 * counts nor raises the term (DESIGN.md "Identity"); messages of another
 * cluster are dropped.  One whose log is ahead of ours (a voter whose
 * promotion we missed) is answered by the normal rules (thesis §4.2.1). */
static void test_non_members_and_other_clusters(void)
{
    struct raft_update u;
    static const uint64_t terms[] = {1};
    struct raft *r = new_node(1, 3, 1, terms, 1, false, false);
    struct raft_message v = msg(RAFT_MSG_VOTE, 9, 1, 10);
    v.u.vote.last_index = 1;
    v.u.vote.last_term = 1;
    recv(r, 10, &v, &u);
    CHECK_INT(status(r).term, 1);
    CHECK_INT(u.n_messages, 0);
    v.from = 2;
    v.cluster_id = 0x99;
    recv(r, 11, &v, &u);
    CHECK_INT(status(r).term, 1);
    CHECK_INT(raft_get_counters(r)->dropped_non_member, 1);
    CHECK_INT(raft_get_counters(r)->dropped_cluster, 1);
    /* a vote from a non-member does not elect */
    tick(r, 5000, &u);
    struct raft_message g = vote_granted(9, 1, 2, false);
    recv(r, 5000, &g, &u);
    CHECK_INT(status(r).role, RAFT_CANDIDATE);
    /* a non-member with a longer log gets the vote (lagging-voter repro) */
    v = msg(RAFT_MSG_VOTE, 9, 1, 20);
    v.u.vote.last_index = 100;
    v.u.vote.last_term = 9;
    recv(r, 5001, &v, &u);
    CHECK_INT(status(r).term, 20);
    CHECK_INT(status(r).vote, 9);
    const struct raft_message *a = find(&u, RAFT_MSG_VOTE_RESULT, 9);
    CHECK(a != NULL && a->u.vote_result.granted);
    raft_free(r);
}

/* Figure 2, AppendEntries reply: a rejection names the prevLogIndex it
 * refused, which the leader sent, so it is at most the leader's last index.
 * A rejection beyond it answers nothing we sent: it must not move nextIndex
 * past the log, or the next Append would name entries the leader does not
 * have (n_entries > 0 with no entries). */
static void test_reject_beyond_last_ignored(void)
{
    struct raft_update u;
    struct raft_progress pr;
    struct raft *r = make_leader(3, &u);
    uint64_t last = status(r).last_index;
    struct raft_message res = msg(RAFT_MSG_APPEND_RESULT, 2, 1, 2);

    res.u.append_result.rejected = true;
    res.u.append_result.last_index = last + 20;
    res.u.append_result.reject_index = last + 10;
    res.u.append_result.conflict_index = last + 5;
    CHECK_INT(recv(r, 5001, &res, &u), 0);
    CHECK_INT(raft_progress(r, 2, &pr), 0);
    CHECK(pr.next_index <= last + 1);
    tick(r, 9000, &u);
    for (unsigned i = 0; i < u.n_messages; i++)
        if (u.messages[i].type == RAFT_MSG_APPEND)
            CHECK(u.messages[i].u.append.n_entries == 0 ||
                  u.messages[i].u.append.entries != NULL);
    CHECK_INT(status(r).role, RAFT_LEADER);
    raft_free(r);
}

/* Configurations: duplicate id and duplicate address are distinct errors;
 * the encoding round-trips and rejects garbage. */
static void test_config_rules(void)
{
    struct raft_config c, d;
    raft_config_init(&c);
    CHECK_INT(raft_config_add(&c, 1, "a:1", RAFT_VOTER), 0);
    CHECK_INT(raft_config_add(&c, 1, "b:1", RAFT_VOTER), RAFT_EDUPID);
    CHECK_INT(raft_config_add(&c, 2, "a:1", RAFT_VOTER), RAFT_EDUPADDR);
    CHECK_INT(raft_config_add(&c, 2, "", RAFT_VOTER), RAFT_EADDR);
    CHECK_INT(raft_config_add(&c, 0, "c:1", RAFT_VOTER), RAFT_EINVAL);
    CHECK_INT(raft_config_add(&c, 2, "b:1", RAFT_NONVOTER), 0);
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    CHECK_INT(raft_config_encode(&c, buf, sizeof buf, &len), 0);
    CHECK_INT(raft_config_decode(buf, len, &d), 0);
    CHECK_INT(d.n, 2);
    CHECK_STR(d.members[1].address, "b:1");
    CHECK_INT(d.members[1].role, RAFT_NONVOTER);
    CHECK_INT(raft_config_decode(buf, len - 1, &d), RAFT_ECORRUPT);
    c.members[1].id = 1; /* forge a duplicate */
    CHECK_INT(raft_config_encode(&c, buf, sizeof buf, &len), 0);
    CHECK_INT(raft_config_decode(buf, len, &d), RAFT_EDUPID);
    /* An address with a NUL inside is not one address: decoding it as the
     * prefix would make the bytes and the configuration disagree.  A failed
     * decode leaves the output as it was (callers keep their config). */
    {
        static const uint8_t nul[] = {1, 1, 1,          0, 0,   0, 0,  0,
                                      0, 0, RAFT_VOTER, 3, 'a', 0, 'b'};
        static const uint8_t bad_role[] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 'a'};
        struct raft_config before;
        c.members[1].id = 2;
        CHECK_INT(raft_config_encode(&c, buf, sizeof buf, &len), 0);
        CHECK_INT(raft_config_decode(buf, len, &d), 0);
        before = d;
        CHECK_INT(raft_config_decode(nul, sizeof nul, &d), RAFT_ECORRUPT);
        CHECK(memcmp(&d, &before, sizeof d) == 0);
        CHECK_INT(raft_config_decode(bad_role, sizeof bad_role, &d), RAFT_EINVAL);
        CHECK(memcmp(&d, &before, sizeof d) == 0);
        CHECK_INT(raft_config_decode(buf, len - 1, &d), RAFT_ECORRUPT);
        CHECK(memcmp(&d, &before, sizeof d) == 0);
    }
    CHECK_STR(raft_strerror(RAFT_EDUPADDR), "a member with this address already exists");
    CHECK_STR(raft_errname(RAFT_EBUSY), "RAFT_EBUSY");
}

TL_MAIN(T(test_update_term_from_message), T(test_reject_beyond_last_ignored),
        T(test_reject_stale_term), T(test_start_as_follower),
        T(test_leader_broadcasts_heartbeat), T(test_follower_starts_election),
        T(test_election_in_one_round), T(test_vote_once_per_term),
        T(test_vote_persisted_and_kept), T(test_prevote_old_round_ignored),
        T(test_candidate_falls_back), T(test_election_timeout_randomized),
        T(test_leader_starts_replication), T(test_leader_commits_on_majority),
        T(test_follower_commits), T(test_append_consistency_check),
        T(test_follower_appends_entries), T(test_leader_syncs_follower_log),
        T(test_voter_up_to_date_rule), T(test_commit_only_current_term),
        T(test_safety_properties_on_runs), T(test_non_members_and_other_clusters),
        T(test_config_rules))
