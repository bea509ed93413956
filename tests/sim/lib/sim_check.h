/* sim_check.h: the safety properties of Raft (paper figure 3), tracked
 * globally over one simulated run and checked incrementally, so that each
 * check costs O(1) per event:
 *
 *   election safety      at most one leader per term, ever;
 *   log matching         two logs with an entry of the same index and term
 *                        hold the same entries up to it (checked on every
 *                        persisted entry through a hash chain of the prefix);
 *   leader completeness  a new leader's log holds every entry applied
 *                        anywhere before;
 *   state-machine safety every node applies the same entry at each index, in
 *                        order, without gaps or repeats.
 *
 * Entries are identified by a chain hash: chain(i) = H(chain(i-1), index,
 * term, type, data), so equal chains mean equal prefixes.  The first
 * violation is kept in a message; later ones are ignored. */
#ifndef SIM_CHECK_H
#define SIM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

struct sim_check {
    uint64_t *leader_of_term; /* node id per term, 0 = none yet */
    size_t n_terms;
    uint64_t *applied; /* chain hash per index (index - 1), 0 = unknown */
    size_t n_applied;  /* highest index with a known applied chain */
    size_t cap_applied;
    /* (index, term) -> chain: open addressing, keys 0 = empty slot */
    struct sim_check_slot {
        uint64_t index, term, chain;
    } * tab;
    size_t tab_cap, tab_n;
    uint64_t elections; /* terms that had a leader */
    char violation[512];
};

/* sim_chain returns the chain hash of e following prev. */
uint64_t sim_chain(uint64_t prev, const struct raft_entry *e);

void sim_check_init(struct sim_check *c);
void sim_check_free(struct sim_check *c);

/* sim_check_failed returns true once a violation was recorded. */
bool sim_check_failed(const struct sim_check *c);

/* sim_check_fail records a violation (printf format), if none yet. */
void sim_check_fail(struct sim_check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* sim_check_leader notes that node id is leader in term. */
void sim_check_leader(struct sim_check *c, uint64_t id, uint64_t term);

/* sim_check_persisted notes that node id persisted the entry (index, term)
 * whose prefix hashes to chain (log matching). */
void sim_check_persisted(struct sim_check *c, uint64_t id, uint64_t index, uint64_t term,
                         uint64_t chain);

/* sim_check_applied notes that node id applied (or restored a snapshot up
 * to) index with prefix chain (state-machine safety). */
void sim_check_applied(struct sim_check *c, uint64_t id, uint64_t index, uint64_t chain);

/* sim_check_applied_max returns the highest index applied anywhere and, in
 * *chain, its chain (0 when nothing was applied). */
uint64_t sim_check_applied_max(const struct sim_check *c, uint64_t *chain);

/* sim_check_applied_chain returns the chain applied at index, or 0. */
uint64_t sim_check_applied_chain(const struct sim_check *c, uint64_t index);

#endif
