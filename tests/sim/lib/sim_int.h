/* sim_int.h: what tests/sim/lib/sim*.c share (not for tests). */
#ifndef SIM_INT_H
#define SIM_INT_H

#include "sim.h"

/* ---- sim_disk.c -------------------------------------------------------------- */

void sim__disk_free(struct sim_disk *d);

/* sim__disk_last is the last index the disk holds (snapshot index if no
 * entry after it). */
uint64_t sim__disk_last(const struct sim_disk *d);

/* sim__disk_chain_at sets *chain to the prefix chain at index; false when
 * the disk does not know it. */
bool sim__disk_chain_at(const struct sim_disk *d, uint64_t index, uint64_t *chain);

/* sim__disk_truncate drops entries >= from. */
void sim__disk_truncate(struct sim_disk *d, uint64_t from);

/* sim__disk_append persists e (copied) and checks log matching. */
void sim__disk_append(struct sim *s, struct sim_node *nd, const struct raft_entry *e);

/* The simulated application's snapshot: applied index and chain, 16 bytes. */
void sim__snap_data_put(unsigned char out[16], uint64_t index, uint64_t chain);
bool sim__snap_data_get(const struct raft_buffer *b, uint64_t *index, uint64_t *chain);

/* sim__persist carries out the first ops (1..4) of u's persist steps in
 * raft.h's order on the model; sim__store_mirror does the same on the real
 * store, if the node has one. */
void sim__persist(struct sim *s, struct sim_node *nd, const struct raft_update *u,
                  int ops);
void sim__store_mirror(struct sim *s, struct sim_node *nd, const struct raft_update *u,
                       int ops);

/* sim__store_reopen (re)opens the node's real store into *l (owned) and
 * checks the load against the model; sim__store_boot writes the bootstrap
 * state through it. */
int sim__store_reopen(struct sim *s, struct sim_node *nd, struct store_loaded *l);
void sim__store_boot(struct sim *s, struct sim_node *nd, const struct raft_entry *boot);

/* ---- sim.c ------------------------------------------------------------------- */

/* sim__node_start starts the node in slot from its storage. */
void sim__node_start(struct sim *s, unsigned slot);

/* sim__node_step steps the node in slot and carries out the update (maybe
 * crashing somewhere in it); returns raft_step's code. */
int sim__node_step(struct sim *s, unsigned slot, struct raft_event *ev);

/* sim__new_node fills the next free slot with a node (not started). */
unsigned sim__new_node(struct sim *s, uint64_t id, const char *address);

/* sim__slot_of_id returns the slot of id, or -1. */
int sim__slot_of_id(const struct sim *s, uint64_t id);

#endif
