/* pfs.h: a power-loss file system model behind struct store_sys.
 *
 * Files and directories live in memory, each with what is durable and what
 * is only written.  fsync(file) makes the file's data and length durable;
 * fsync(directory) makes the names created, renamed or removed in that
 * directory durable (mkdir of a directory is a name in its parent).  Until
 * then a write is only in the page cache.
 *
 * pfs_power_loss(prefix) is a machine crash for every file and directory
 * at or below the directory prefix (one machine's disk): what was durable stays; of the
 * writes and truncations not yet fsynced, a random subset of their pages (PFS_PAGE bytes,
 * aligned) reaches the disk, in any order (a lost page of an extended file reads as
 * zeros); of the names not yet fsynced, each directory keeps a random prefix of its
 * changes in order (a journaling file system).  A name whose directory did not survive is
 * gone too.
 *
 * One model per process (the store_sys calls take no context): tests call
 * pfs_reset first.  Paths are used as given (no "..", no symlinks); the
 * parent of every path is assumed to exist durably unless it was made with
 * mkdir through the model. */
#ifndef SIM_PFS_H
#define SIM_PFS_H

#include <stdbool.h>
#include <stdint.h>

#include "raft_store.h"

#define PFS_PAGE 64 /* small pages, so records and appends span several */

/* pfs_sys is the table of the model's system calls. */
extern const struct store_sys pfs_sys;

/* pfs_reset empties the model and seeds its generator. */
void pfs_reset(uint64_t seed);

/* pfs_power_loss crashes the machine for paths under prefix (see above);
 * open descriptors on them become invalid. */
void pfs_power_loss(const char *prefix);

/* pfs_budget makes the model crash the process after units more (one per
 * byte written, one per fsync, rename, ftruncate, unlink or mkdir): the call in
 * progress is cut short and every later call fails, until pfs_budget(-1).
 * pfs_used returns the units spent since the last pfs_budget call. */
void pfs_budget(long units);
long pfs_used(void);

/* pfs_dirty_pages returns how many pages (of files under prefix) hold
 * writes not yet fsynced: a test of the model itself. */
unsigned pfs_dirty_pages(const char *prefix);

#endif
