/* store_int.h: what raft/store*.c share: the on-disk constants, struct store
 * and the helpers of each file.  Internal to the store. */
#ifndef RAFT_STORE_INT_H
#define RAFT_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "raft_store.h"

#define STORE_VERSION 1u
#define META_MAGIC 0x41544d52u /* "RMTA" */
#define LOG_MAGIC 0x474f4c52u  /* "RLOG" */
#define SNAP_MAGIC 0x504e5352u /* "RSNP" */
#define META_SLOT_SIZE 512
#define META_REC 36
#define LOG_HDR 32
#define REC_HDR 8
#define REC_ENTRY 1
#define REC_MARK 2
#define ENTRY_BODY_MIN 21
#define MARK_BODY 9
#define REC_BODY_MAX (256u << 20) /* a length beyond this is garbage */
#define SNAP_HDR 44

/* Where a live entry's record sits in the log file. */
struct store_idx {
    uint64_t off;  /* offset of the record header */
    uint64_t term; /* the entry's term */
    uint32_t size; /* REC_HDR + body length */
};

struct store {
    const struct store_sys *sys;
    char *dir;
    char *path_meta, *path_meta_tmp, *path_log, *path_log_tmp, *path_snap, *path_snap_tmp;
    int meta_fd;
    int log_fd;
    uint64_t meta_seq;     /* sequence of the newest valid meta slot */
    uint64_t base;         /* the log holds entries base+1 .. base+n */
    struct store_idx *idx; /* n live entries */
    size_t n, cap;
    uint64_t end;        /* log file length: where the next record goes */
    uint64_t snap_index; /* 0 when there is no snapshot */
    uint64_t snap_term;
    int failed;
    char *why; /* store_open_report's line, or NULL; only during open */
    size_t why_cap;
};

/* store__corrupt writes a line (printf format) into st->why, if any, and
 * returns RAFT_ECORRUPT. */
int store__corrupt(struct store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- little-endian helpers ------------------------------------------------ */

static inline void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- store_io.c: system calls through st->sys ------------------------------ */

/* store__io_code maps an errno to RAFT_ENOSPC or RAFT_EIO. */
int store__io_code(int err);

/* store__write_all / store__read_all write or read exactly len bytes at off
 * (retrying short transfers and EINTR); 0 or a RAFT_E code. */
int store__write_all(struct store *st, int fd, const void *buf, size_t len, uint64_t off);
int store__read_all(struct store *st, int fd, void *buf, size_t len, uint64_t off);

/* store__read_file reads all of fd into *out (returned owned). */
int store__read_file(struct store *st, int fd, unsigned char **out, size_t *len);

/* store__sync_fd fsyncs fd; store__sync_dir fsyncs the store's directory. */
int store__sync_fd(struct store *st, int fd);
int store__sync_dir(struct store *st);

/* store__sync_parent fsyncs the directory that holds the store's
 * directory, making the store's own name durable. */
int store__sync_parent(struct store *st);

/* store__replace_file writes buf to tmp, fsyncs it, renames it to final and
 * fsyncs the directory; the new file stays open in *fd_out (O_RDWR) when
 * fd_out is not NULL. */
int store__replace_file(struct store *st, const char *tmp, const char *final,
                        const void *buf, size_t len, int *fd_out);

/* store__path_join returns "dir/name" (owned), or NULL. */
char *store__path_join(const char *dir, const char *name);

/* ---- store_log.c: the log file ---------------------------------------------- */

/* store__last_index is the index of the last live entry (base if none). */
uint64_t store__last_index(const struct store *st);

/* store__entry_term returns the term of the live entry at index, or 0. */
uint64_t store__entry_term(const struct store *st, uint64_t index);

/* store__log_load opens (or creates, with base snap_index) the log and
 * replays it, cutting a torn tail. */
int store__log_load(struct store *st);

/* store__log_rewrite replaces the log by one with base new_base holding the
 * live entries above it (none unless keep_suffix); on failure the store has
 * failed. */
int store__log_rewrite(struct store *st, uint64_t new_base, int keep_suffix);

/* store__load_entries fills l->entries with the live entries above the
 * snapshot (data owned by l). */
int store__load_entries(struct store *st, struct store_loaded *l);

#endif
