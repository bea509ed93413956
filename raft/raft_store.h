/* raft_store.h: the file-backed Raft store: term and vote, the log, the latest
 * snapshot, in one directory.
 *
 * Files in the directory:
 *   meta   two fixed 512-byte slots, written alternately; each holds a
 *          sequence number, term, vote and a CRC-32C.  Load takes the valid
 *          slot with the higher sequence, so a torn metadata write leaves the
 *          previous (term, vote).
 *   log    a header (base index) and then records, each with a length and a
 *          CRC-32C: ENTRY (index, term, type, data) and MARK (the log now ends
 *          at index L).  Every append is its entries followed by one MARK,
 *          in one write; a truncation is a MARK alone; each write is
 *          fsynced before the next starts.  Loading replays records and
 *          keeps only what a complete MARK confirms, so a crash or a power
 *          loss anywhere in a write leaves the old log or the new one, never
 *          part of a batch and never a wrong entry; the torn tail is cut
 *          off.  The fsynced point: only the last write can be unsynced,
 *          and it holds one MARK, at its end; so from the first record that
 *          does not check out, the rest is a torn tail (whatever it looks
 *          like: the pages of an unsynced write reach the disk in any
 *          order) unless a whole MARK that more bytes follow lies after it,
 *          proof that a later write began after it was fsynced: then it is
 *          damage, RAFT_ECORRUPT.  Damage inside the last write cannot be
 *          told from a torn one.
 *   snap   the latest snapshot (index, term, configuration, data, CRC-32C),
 *          replaced atomically (write snap.tmp, fsync, rename, fsync dir).
 * Compaction rewrites the log through log.tmp and a rename.
 *
 * Every call that changes the store returns only after the data (and, for
 * created or renamed files, the directory) is fsynced.  When a write, fsync,
 * rename or truncate fails, the store enters a failed state: the call returns
 * a negative error and every later change returns RAFT_EIO too, so the node
 * stops taking part rather than acting on state that may not be on disk.
 *
 * All system calls go through struct store_sys, so tests can make any of them
 * fail or cut a write short.
 *
 * A store is used by one thread. */
#ifndef RAFT_STORE_H
#define RAFT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "raft.h"

/* The system calls the store makes.  Each has the POSIX meaning and returns
 * -1 with errno set on failure. */
struct store_sys {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*fstat)(int fd, struct stat *st);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*mkdir)(const char *path, mode_t mode);
};

/* store_sys_posix is the table of the real system calls. */
extern const struct store_sys store_sys_posix;

struct store;

/* What store_open found on disk, in the shape of raft.h's start event (see
 * store_loaded_start).  Returned owned by the caller: release it with
 * store_loaded_free. */
struct store_loaded {
    uint64_t term;                  /* current term, 0 for a new store */
    uint64_t vote;                  /* node voted for in term, 0 for none */
    struct raft_snapshot *snapshot; /* NULL when there is none; data owned */
    struct raft_entry *entries;     /* entries after the snapshot (or from
                                       index 1), contiguous; data owned */
    unsigned n_entries;
};

/* store_open opens (creating the directory and files when missing, and
 * fsyncing the parent so that the directory itself survives a power loss)
 * the store in dir and loads it.  A torn tail of the log is cut off on disk before the
 * call returns.  sys may be NULL for store_sys_posix; it is borrowed and must
 * outlive the store.  On success *out is a store owned by the caller (release
 * with store_close) and *loaded (if loaded is not NULL) is filled with owned
 * data.  Returns 0, RAFT_ENOMEM, RAFT_EIO (a system call failed) or
 * RAFT_ECORRUPT (a checksummed record is inconsistent: refuse to guess). */
int store_open(const char *dir, const struct store_sys *sys, struct store **out,
               struct store_loaded *loaded);

/* store_open_report is store_open that, when it returns RAFT_ECORRUPT,
 * also writes one line into why (cap bytes, NUL-terminated; may be NULL)
 * saying which file is damaged, where, and why that cannot be a crash. */
int store_open_report(const char *dir, const struct store_sys *sys, struct store **out,
                      struct store_loaded *loaded, char *why, size_t cap);

/* store_close closes the files and frees st (taken; NULL is ignored). */
void store_close(struct store *st);

/* store_loaded_free frees what store_open put in *l and zeroes it. */
void store_loaded_free(struct store_loaded *l);

/* store_loaded_start points ev->u.start at l (borrowed: l must outlive the
 * raft_step call) and sets ev->type to RAFT_EV_START; ev->now is left to the
 * caller. */
void store_loaded_start(const struct store_loaded *l, struct raft_event *ev);

/* store_persist carries out step 1 of a raft update (raft.h): term and vote,
 * then the snapshot, then truncate and append (one atomic write), then the
 * optional compaction, each durable before the next.  upd is borrowed.
 * Returns 0 or the first error (RAFT_EIO: the store has failed; the driver
 * must step RAFT_EV_STOP and send nothing of this update). */
int store_persist(struct store *st, const struct raft_update *upd);

/* store_save_meta durably records term and vote (0 for none).  Returns 0,
 * RAFT_EIO (store now failed). */
int store_save_meta(struct store *st, uint64_t term, uint64_t vote);

/* store_append durably writes n (> 0) entries (borrowed), whose indexes must
 * be contiguous from first = entries[0].index; any stored entry at first or
 * above is replaced (the suffix from first is dropped) in the same atomic
 * write.  first must be above the snapshot index and at most
 * store_last_index + 1.  Returns 0, RAFT_EINVAL (nothing written),
 * RAFT_ENOMEM, RAFT_EIO (store now failed). */
int store_append(struct store *st, const struct raft_entry *entries, unsigned n);

/* store_truncate durably drops the entries from index from on (Raft's
 * conflict rule, figure 2: "delete the existing entry and all that follow
 * it").  from must be in [store_first_index, store_last_index + 1] and above
 * the snapshot index.  Returns 0, RAFT_EINVAL, RAFT_EIO (store now failed). */
int store_truncate(struct store *st, uint64_t from);

/* store_save_snapshot durably replaces the snapshot by snap (borrowed).  When
 * the log does not hold an entry at snap's index with snap's term, the whole
 * log is dropped (the InstallSnapshot rule, Raft paper figure 13 step 6-7);
 * otherwise entries above the snapshot are kept.  The log prefix up to the
 * snapshot stays until store_compact.  Returns 0, RAFT_EINVAL (index or term
 * older than the current snapshot), RAFT_ENOMEM, RAFT_EIO (store now
 * failed). */
int store_save_snapshot(struct store *st, const struct raft_snapshot *snap);

/* store_compact durably drops the log entries at and below upto, which must
 * not exceed the snapshot index (entries go only once a snapshot covers
 * them).  Returns 0, RAFT_EINVAL, RAFT_ENOMEM, RAFT_EIO (store now failed). */
int store_compact(struct store *st, uint64_t upto);

/* store_first_index is the index of the first entry the log file may hold
 * (base + 1); store_last_index the last entry's index (base when empty). */
uint64_t store_first_index(const struct store *st);
uint64_t store_last_index(const struct store *st);

/* store_failed is nonzero once a write failed; every change is refused. */
int store_failed(const struct store *st);

#endif
