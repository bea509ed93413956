/* onenode.h: helpers for tests that drive one raft instance by hand
 * (test_paper.c, test_core.c): start a node of an n-voter cluster with a
 * given log, hand it events, find messages in its update.  Cluster id CID,
 * node ids 1..n, addresses "10.0.0.<id>:5224". */
#ifndef SIM_ONENODE_H
#define SIM_ONENODE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "raft.h"

#define CID 0xc1u

static inline struct raft_options opts(uint64_t id, bool pre_vote, bool check_quorum)
{
    struct raft_options o;
    raft_options_default(&o);
    o.id = id;
    o.cluster_id = CID;
    o.seed = 7;
    o.pre_vote = pre_vote;
    o.check_quorum = check_quorum;
    return o;
}

/* new_node starts node id of an n-voter cluster (ids 1..n) whose log holds
 * the bootstrap configuration (index 1, term 1) followed by entries with the
 * given terms; current term is term. */
static inline struct raft *new_node(uint64_t id, unsigned n, uint64_t term,
                                    const uint64_t *terms, unsigned n_terms,
                                    bool pre_vote, bool check_quorum)
{
    struct raft_options o = opts(id, pre_vote, check_quorum);
    struct raft *r;
    if (raft_new(&o, &r) != 0)
        return NULL;
    struct raft_config cfg;
    raft_config_init(&cfg);
    for (unsigned i = 1; i <= n; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "10.0.0.%u:5224", i);
        raft_config_add(&cfg, i, addr, RAFT_VOTER);
    }
    static uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len;
    raft_config_encode(&cfg, buf, sizeof buf, &len);
    struct raft_entry ents[64];
    ents[0] = (struct raft_entry){.index = 1, .term = 1, .type = RAFT_ENTRY_CONFIG};
    ents[0].data.base = buf;
    ents[0].data.len = len;
    for (unsigned i = 0; i < n_terms; i++) {
        ents[i + 1] = (struct raft_entry){.index = i + 2, .term = terms[i]};
        ents[i + 1].type = RAFT_ENTRY_NORMAL;
    }
    struct raft_event ev = {.type = RAFT_EV_START, .now = 0};
    ev.u.start.term = term;
    ev.u.start.entries = ents;
    ev.u.start.n_entries = n_terms + 1;
    struct raft_update u;
    if (raft_step(r, &ev, &u) != 0) {
        raft_free(r);
        return NULL;
    }
    return r;
}

static inline int recv(struct raft *r, uint64_t now, const struct raft_message *m,
                       struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_RECEIVE, .now = now};
    ev.u.receive.msg = m;
    return raft_step(r, &ev, u);
}

static inline void tick(struct raft *r, uint64_t now, struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_TICK, .now = now};
    raft_step(r, &ev, u);
}

static inline void persisted(struct raft *r, uint64_t now, uint64_t index, uint64_t term,
                             struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_PERSISTED, .now = now};
    ev.u.persisted.index = index;
    ev.u.persisted.term = term;
    raft_step(r, &ev, u);
}

static inline int submit(struct raft *r, uint64_t now, const char *data,
                         struct raft_update *u)
{
    struct raft_event ev = {.type = RAFT_EV_SUBMIT, .now = now};
    ev.u.submit.type = RAFT_ENTRY_NORMAL;
    ev.u.submit.data.base = (void *)data;
    ev.u.submit.data.len = strlen(data);
    return raft_step(r, &ev, u);
}

static inline const struct raft_message *find(const struct raft_update *u,
                                              enum raft_msg_type t, uint64_t to)
{
    for (unsigned i = 0; i < u->n_messages; i++)
        if (u->messages[i].type == t && (to == 0 || u->messages[i].to == to))
            return &u->messages[i];
    return NULL;
}

static inline unsigned count(const struct raft_update *u, enum raft_msg_type t)
{
    unsigned n = 0;
    for (unsigned i = 0; i < u->n_messages; i++)
        n += u->messages[i].type == t;
    return n;
}

static inline struct raft_message msg(enum raft_msg_type t, uint64_t from, uint64_t to,
                                      uint64_t term)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = t;
    m.cluster_id = CID;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
}

static inline struct raft_message vote_granted(uint64_t from, uint64_t to, uint64_t term,
                                               bool pre)
{
    struct raft_message m = msg(RAFT_MSG_VOTE_RESULT, from, to, term);
    m.u.vote_result.granted = true;
    m.u.vote_result.pre_vote = pre;
    return m;
}

/* make_leader_with: node 1 of n, elected in term 2 at 5000 ms by votes from
 * 2..quorum, its barrier (index 2) persisted but not yet acknowledged. */
static inline struct raft *make_leader_with(unsigned n, bool pre_vote, bool check_quorum,
                                            struct raft_update *u)
{
    struct raft *r = new_node(1, n, 1, NULL, 0, pre_vote, check_quorum);
    if (r == NULL)
        return NULL;
    tick(r, 5000, u);
    for (unsigned v = 2; pre_vote && v <= n / 2 + 1; v++) {
        struct raft_message m = vote_granted(v, 1, 2, true);
        recv(r, 5000, &m, u);
    }
    for (unsigned v = 2; v <= n / 2 + 1; v++) {
        struct raft_message m = vote_granted(v, 1, 2, false);
        recv(r, 5000, &m, u);
    }
    struct raft_status st;
    raft_status(r, &st);
    persisted(r, 5000, st.last_index, 2, u);
    return r;
}

/* make_leader: make_leader_with, PreVote and CheckQuorum off. */
static inline struct raft *make_leader(unsigned n, struct raft_update *u)
{
    return make_leader_with(n, false, false, u);
}

static inline struct raft_status status(struct raft *r)
{
    struct raft_status st;
    raft_status(r, &st);
    return st;
}

#endif
