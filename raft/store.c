/* store.c: the file-backed Raft store (format and rules in store.h).
 *
 * On-disk integers are little-endian.  Formats, version 1:
 *
 *   meta slot (at offset 0 and 512 of "meta"), 36 bytes:
 *     u32 magic "RMTA" | u32 version | u64 seq | u64 term | u64 vote |
 *     u32 crc32c(previous 32 bytes)
 *   log header (32 bytes):
 *     u32 magic "RLOG" | u32 version | u64 base | u32 crc32c(previous 16) | pad
 *   log record:
 *     u32 body_len | u32 crc32c(body_len bytes, body) | body
 *     body ENTRY: u8 1 | u64 index | u64 term | u32 type | data
 *     body MARK:  u8 2 | u64 last_index
 *   snap:
 *     u32 magic "RSNP" | u32 version | u64 index | u64 term | u64 config_index |
 *     u32 config_len | u64 data_len | config (raft_config_encode) | data |
 *     u32 crc32c(everything before)
 *
 * The whole log is read into memory at load; the log stays small because the
 * core compacts it behind snapshots. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_crc.h"

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
};

/* ---- little-endian helpers ------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- system calls --------------------------------------------------------- */

static int sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int sys_mkdir(const char *path, mode_t mode)
{
    return mkdir(path, mode);
}

const struct store_sys store_sys_posix = {
    .open = sys_open,
    .close = close,
    .pread = pread,
    .pwrite = pwrite,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .fstat = fstat,
    .rename = rename,
    .unlink = unlink,
    .mkdir = sys_mkdir,
};

static int io_code(int err)
{
    return err == ENOSPC || err == EDQUOT ? RAFT_ENOSPC : RAFT_EIO;
}

static int write_all(struct store *st, int fd, const void *buf, size_t len, uint64_t off)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t w = st->sys->pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return io_code(w < 0 ? errno : EIO);
        p += w;
        off += (uint64_t)w;
        len -= (size_t)w;
    }
    return 0;
}

static int read_all(struct store *st, int fd, void *buf, size_t len, uint64_t off)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t r = st->sys->pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return RAFT_EIO;
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

/* read_file reads all of fd into a new buffer *out (owned, NUL-padded). */
static int read_file(struct store *st, int fd, unsigned char **out, size_t *len)
{
    struct stat sb;
    unsigned char *buf;

    if (st->sys->fstat(fd, &sb) != 0)
        return RAFT_EIO;
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL)
        return RAFT_ENOMEM;
    if (read_all(st, fd, buf, (size_t)sb.st_size, 0) != 0) {
        free(buf);
        return RAFT_EIO;
    }
    *out = buf;
    *len = (size_t)sb.st_size;
    return 0;
}

static int sync_fd(struct store *st, int fd)
{
    while (st->sys->fsync(fd) != 0) {
        if (errno != EINTR)
            return io_code(errno);
    }
    return 0;
}

/* sync_dir makes created, renamed and unlinked names in the directory
 * durable (fsync(2) on a file does not cover its directory entry). */
static int sync_dir(struct store *st)
{
    int fd = st->sys->open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return RAFT_EIO;
    rc = sync_fd(st, fd);
    st->sys->close(fd);
    return rc;
}

/* replace_file writes buf to tmp, fsyncs it, renames it to final and fsyncs
 * the directory.  When fd_out is not NULL the new file stays open there
 * (O_RDWR); otherwise it is closed. */
static int replace_file(struct store *st, const char *tmp, const char *final,
                        const void *buf, size_t len, int *fd_out)
{
    int fd, rc;

    fd = st->sys->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return io_code(errno);
    rc = write_all(st, fd, buf, len, 0);
    if (rc != 0)
        goto err;
    rc = sync_fd(st, fd);
    if (rc != 0)
        goto err;
    if (st->sys->rename(tmp, final) != 0) {
        rc = io_code(errno);
        goto err;
    }
    rc = sync_dir(st);
    if (rc != 0)
        goto err;
    if (fd_out != NULL)
        *fd_out = fd;
    else
        st->sys->close(fd);
    return 0;
err:
    st->sys->close(fd);
    return rc;
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);

    if (p != NULL) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* ---- metadata ------------------------------------------------------------- */

static void meta_encode(unsigned char *p, uint64_t seq, uint64_t term, uint64_t vote)
{
    put32(p, META_MAGIC);
    put32(p + 4, STORE_VERSION);
    put64(p + 8, seq);
    put64(p + 16, term);
    put64(p + 24, vote);
    put32(p + 32, store__crc32c(0, p, 32));
}

static int meta_valid(const unsigned char *p)
{
    return get32(p) == META_MAGIC && get32(p + 4) == STORE_VERSION &&
           get32(p + 32) == store__crc32c(0, p, 32) && get64(p + 8) != 0;
}

static int meta_load(struct store *st, uint64_t *term, uint64_t *vote)
{
    unsigned char slot0[META_SLOT_SIZE] = {0};
    unsigned char *buf = NULL;
    size_t len = 0;
    const unsigned char *best = NULL;
    int rc;

    st->meta_fd = st->sys->open(st->path_meta, O_RDWR | O_CLOEXEC, 0);
    if (st->meta_fd < 0 && errno == ENOENT) {
        /* A new store: the first slot appears whole or not at all. */
        memset(slot0, 0, sizeof slot0);
        meta_encode(slot0, 1, 0, 0);
        rc = replace_file(st, st->path_meta_tmp, st->path_meta, slot0, META_REC,
                          &st->meta_fd);
        if (rc != 0)
            return rc;
        st->meta_seq = 1;
        *term = 0;
        *vote = 0;
        return 0;
    }
    if (st->meta_fd < 0)
        return RAFT_EIO;
    rc = read_file(st, st->meta_fd, &buf, &len);
    if (rc != 0)
        return rc;
    for (size_t off = 0; off + META_REC <= len && off <= META_SLOT_SIZE;
         off += META_SLOT_SIZE) {
        const unsigned char *p = buf + off;
        if (meta_valid(p) && (best == NULL || get64(p + 8) > get64(best + 8)))
            best = p;
    }
    if (best == NULL) {
        free(buf);
        return RAFT_ECORRUPT;
    }
    st->meta_seq = get64(best + 8);
    *term = get64(best + 16);
    *vote = get64(best + 24);
    free(buf);
    return 0;
}

int store_save_meta(struct store *st, uint64_t term, uint64_t vote)
{
    unsigned char rec[META_REC];
    uint64_t seq = st->meta_seq + 1;
    int rc;

    if (st->failed)
        return RAFT_EIO;
    /* Odd sequences live in slot 0, even in slot 1: the write never touches
     * the slot that holds the current state. */
    meta_encode(rec, seq, term, vote);
    rc = write_all(st, st->meta_fd, rec, sizeof rec,
                   (seq & 1) ? 0 : (uint64_t)META_SLOT_SIZE);
    if (rc == 0)
        rc = sync_fd(st, st->meta_fd);
    if (rc != 0) {
        st->failed = 1;
        return rc;
    }
    st->meta_seq = seq;
    return 0;
}

/* ---- log records ---------------------------------------------------------- */

static size_t entry_rec_size(const struct raft_entry *e)
{
    return REC_HDR + ENTRY_BODY_MIN + e->data.len;
}

static void rec_seal(unsigned char *p, uint32_t body_len)
{
    uint32_t crc;

    put32(p, body_len);
    crc = store__crc32c(0, p, 4);
    crc = store__crc32c(crc, p + REC_HDR, body_len);
    put32(p + 4, crc);
}

static size_t entry_rec_encode(unsigned char *p, const struct raft_entry *e)
{
    unsigned char *b = p + REC_HDR;

    b[0] = REC_ENTRY;
    put64(b + 1, e->index);
    put64(b + 9, e->term);
    put32(b + 17, (uint32_t)e->type);
    if (e->data.len > 0)
        memcpy(b + ENTRY_BODY_MIN, e->data.base, e->data.len);
    rec_seal(p, (uint32_t)(ENTRY_BODY_MIN + e->data.len));
    return entry_rec_size(e);
}

static size_t mark_rec_encode(unsigned char *p, uint64_t last)
{
    p[REC_HDR] = REC_MARK;
    put64(p + REC_HDR + 1, last);
    rec_seal(p, MARK_BODY);
    return REC_HDR + MARK_BODY;
}

static void log_hdr_encode(unsigned char *p, uint64_t base)
{
    memset(p, 0, LOG_HDR);
    put32(p, LOG_MAGIC);
    put32(p + 4, STORE_VERSION);
    put64(p + 8, base);
    put32(p + 16, store__crc32c(0, p, 16));
}

static int idx_reserve(struct store *st, size_t n)
{
    struct store_idx *p;
    size_t cap;

    if (n <= st->cap)
        return 0;
    cap = st->cap ? st->cap : 64;
    while (cap < n)
        cap *= 2;
    p = realloc(st->idx, cap * sizeof *p);
    if (p == NULL)
        return RAFT_ENOMEM;
    st->idx = p;
    st->cap = cap;
    return 0;
}

static uint64_t last_index(const struct store *st)
{
    return st->base + st->n;
}

/* good_records_follow is nonzero when buf[off, len) is a non-empty run of
 * records with valid checksums that ends exactly at len. */
static int good_records_follow(const unsigned char *buf, size_t off, size_t len)
{
    if (off >= len)
        return 0;
    while (len - off >= REC_HDR) {
        uint32_t blen = get32(buf + off);
        uint32_t crc;

        if (blen < MARK_BODY || blen > REC_BODY_MAX || blen > len - off - REC_HDR)
            return 0;
        crc = store__crc32c(0, buf + off, 4);
        if (store__crc32c(crc, buf + off + REC_HDR, blen) != get32(buf + off + 4))
            return 0;
        off += REC_HDR + blen;
    }
    return off == len;
}

/* Parse state for log_replay: entries seen since the last MARK. */
struct replay {
    struct store_idx *pend;
    size_t n_pend, cap_pend;
    uint64_t pend_first;
};

/* log_replay rebuilds st->idx from the log image buf (len bytes, header
 * already checked) and sets *valid_end to the end of the last MARK: what
 * follows it is an unconfirmed (torn) tail.  RAFT_ECORRUPT when a record
 * with a good checksum contradicts the log: that is not a torn write. */
static int log_replay(struct store *st, const unsigned char *buf, size_t len,
                      uint64_t *valid_end)
{
    struct replay rp = {0};
    size_t off = LOG_HDR;
    int rc = 0;

    *valid_end = LOG_HDR;
    while (len - off >= REC_HDR) {
        uint32_t blen = get32(buf + off);
        const unsigned char *b = buf + off + REC_HDR;
        uint32_t crc;

        if (blen < MARK_BODY || blen > REC_BODY_MAX || blen > len - off - REC_HDR)
            break;
        crc = store__crc32c(0, buf + off, 4);
        if (store__crc32c(crc, b, blen) != get32(buf + off + 4)) {
            /* A torn append is always the file's last record.  A bad record
             * followed by good ones is damage, not a crash: refuse it
             * rather than silently drop the entries after it. */
            if (good_records_follow(buf, off + REC_HDR + blen, len))
                rc = RAFT_ECORRUPT;
            break;
        }
        if (b[0] == REC_ENTRY && blen >= ENTRY_BODY_MIN) {
            uint64_t index = get64(b + 1);
            uint64_t expect = rp.n_pend ? rp.pend_first + rp.n_pend : 0;
            if (rp.n_pend == 0 && (index <= st->base || index > last_index(st) + 1)) {
                rc = RAFT_ECORRUPT;
                goto out;
            }
            if (rp.n_pend != 0 && index != expect) {
                rc = RAFT_ECORRUPT;
                goto out;
            }
            if (rp.n_pend == rp.cap_pend) {
                size_t cap = rp.cap_pend ? rp.cap_pend * 2 : 64;
                struct store_idx *p = realloc(rp.pend, cap * sizeof *p);
                if (p == NULL) {
                    rc = RAFT_ENOMEM;
                    goto out;
                }
                rp.pend = p;
                rp.cap_pend = cap;
            }
            if (rp.n_pend == 0)
                rp.pend_first = index;
            rp.pend[rp.n_pend].off = off;
            rp.pend[rp.n_pend].term = get64(b + 9);
            rp.pend[rp.n_pend].size = REC_HDR + blen;
            rp.n_pend++;
        } else if (b[0] == REC_MARK && blen == MARK_BODY) {
            uint64_t mark = get64(b + 1);
            if (rp.n_pend != 0) {
                /* A batch: it replaces the log from its first index and
                 * must end exactly at the mark. */
                if (mark != rp.pend_first + rp.n_pend - 1) {
                    rc = RAFT_ECORRUPT;
                    goto out;
                }
                st->n = (size_t)(rp.pend_first - st->base - 1);
                rc = idx_reserve(st, st->n + rp.n_pend);
                if (rc != 0)
                    goto out;
                memcpy(st->idx + st->n, rp.pend, rp.n_pend * sizeof *rp.pend);
                st->n += rp.n_pend;
                rp.n_pend = 0;
            } else {
                /* A truncation. */
                if (mark < st->base || mark > last_index(st)) {
                    rc = RAFT_ECORRUPT;
                    goto out;
                }
                st->n = (size_t)(mark - st->base);
            }
            *valid_end = off + REC_HDR + blen;
        } else {
            rc = RAFT_ECORRUPT;
            goto out;
        }
        off += REC_HDR + blen;
    }
out:
    free(rp.pend);
    return rc;
}

/* log_rewrite replaces the log file by one with base new_base holding the
 * live entries above new_base (copied record by record; none unless
 * keep_suffix), through log.tmp and a rename.  On failure the store has failed. */
static int log_rewrite(struct store *st, uint64_t new_base, int keep_suffix)
{
    size_t keep_from = 0, n_keep = 0, len = LOG_HDR + REC_HDR + MARK_BODY;
    struct store_idx *nidx = NULL;
    unsigned char *buf = NULL;
    uint64_t off = LOG_HDR;
    int fd = -1, rc;

    if (new_base > st->base) {
        keep_from = (size_t)(new_base - st->base);
        if (keep_from > st->n)
            keep_from = st->n;
    }
    if (!keep_suffix)
        keep_from = st->n;
    n_keep = st->n - keep_from;
    for (size_t i = keep_from; i < st->n; i++)
        len += st->idx[i].size;
    buf = malloc(len);
    nidx = malloc((n_keep ? n_keep : 1) * sizeof *nidx);
    if (buf == NULL || nidx == NULL) {
        rc = RAFT_ENOMEM;
        goto err;
    }
    log_hdr_encode(buf, new_base);
    for (size_t i = keep_from; i < st->n; i++) {
        rc = read_all(st, st->log_fd, buf + off, st->idx[i].size, st->idx[i].off);
        if (rc != 0) {
            st->failed = 1;
            goto err;
        }
        nidx[i - keep_from] = st->idx[i];
        nidx[i - keep_from].off = off;
        off += st->idx[i].size;
    }
    if (n_keep > 0)
        off += mark_rec_encode(buf + off, new_base + n_keep);
    rc = replace_file(st, st->path_log_tmp, st->path_log, buf, (size_t)off, &fd);
    if (rc != 0) {
        st->failed = 1;
        goto err;
    }
    st->sys->close(st->log_fd);
    st->log_fd = fd;
    free(st->idx);
    st->idx = nidx;
    st->cap = n_keep ? n_keep : 1;
    st->n = n_keep;
    st->base = new_base;
    st->end = off;
    free(buf);
    return 0;
err:
    free(buf);
    free(nidx);
    return rc;
}

static int log_load(struct store *st)
{
    unsigned char hdr[LOG_HDR];
    unsigned char *buf = NULL;
    size_t len = 0;
    uint64_t valid_end;
    int rc;

    st->log_fd = st->sys->open(st->path_log, O_RDWR | O_CLOEXEC, 0);
    if (st->log_fd < 0 && errno == ENOENT) {
        log_hdr_encode(hdr, st->snap_index);
        st->base = st->snap_index;
        st->end = LOG_HDR;
        return replace_file(st, st->path_log_tmp, st->path_log, hdr, LOG_HDR,
                            &st->log_fd);
    }
    if (st->log_fd < 0)
        return RAFT_EIO;
    rc = read_file(st, st->log_fd, &buf, &len);
    if (rc != 0)
        return rc;
    /* The header was written whole before the rename that made the file. */
    if (len < LOG_HDR || get32(buf) != LOG_MAGIC || get32(buf + 4) != STORE_VERSION ||
        get32(buf + 16) != store__crc32c(0, buf, 16)) {
        rc = RAFT_ECORRUPT;
        goto out;
    }
    st->base = get64(buf + 8);
    st->n = 0;
    rc = log_replay(st, buf, len, &valid_end);
    if (rc != 0)
        goto out;
    if (valid_end < len) {
        /* Cut the torn tail so the next append does not follow garbage. */
        if (st->sys->ftruncate(st->log_fd, (off_t)valid_end) != 0 ||
            sync_fd(st, st->log_fd) != 0) {
            rc = RAFT_EIO;
            goto out;
        }
    }
    st->end = valid_end;
out:
    free(buf);
    return rc;
}

int store_append(struct store *st, const struct raft_entry *entries, unsigned n)
{
    uint64_t first;
    size_t len = REC_HDR + MARK_BODY, off = 0;
    unsigned char *buf;
    size_t keep;
    int rc;

    if (st->failed)
        return RAFT_EIO;
    if (n == 0 || entries == NULL)
        return RAFT_EINVAL;
    first = entries[0].index;
    if (first <= st->base || first <= st->snap_index || first > last_index(st) + 1)
        return RAFT_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        if (entries[i].index != first + i || entries[i].data.len > REC_BODY_MAX - 64 ||
            (entries[i].data.len > 0 && entries[i].data.base == NULL))
            return RAFT_EINVAL;
        len += entry_rec_size(&entries[i]);
    }
    keep = (size_t)(first - st->base - 1);
    rc = idx_reserve(st, keep + n);
    if (rc != 0)
        return rc;
    buf = malloc(len);
    if (buf == NULL)
        return RAFT_ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        size_t sz = entry_rec_encode(buf + off, &entries[i]);
        st->idx[keep + i].off = st->end + off;
        st->idx[keep + i].term = entries[i].term;
        st->idx[keep + i].size = (uint32_t)sz;
        off += sz;
    }
    off += mark_rec_encode(buf + off, first + n - 1);
    rc = write_all(st, st->log_fd, buf, off, st->end);
    if (rc == 0)
        rc = sync_fd(st, st->log_fd);
    free(buf);
    if (rc != 0) {
        st->failed = 1;
        return rc;
    }
    st->n = keep + n;
    st->end += off;
    return 0;
}

int store_truncate(struct store *st, uint64_t from)
{
    unsigned char rec[REC_HDR + MARK_BODY];
    int rc;

    if (st->failed)
        return RAFT_EIO;
    if (from <= st->base || from <= st->snap_index || from > last_index(st) + 1)
        return RAFT_EINVAL;
    if (from == last_index(st) + 1)
        return 0;
    mark_rec_encode(rec, from - 1);
    rc = write_all(st, st->log_fd, rec, sizeof rec, st->end);
    if (rc == 0)
        rc = sync_fd(st, st->log_fd);
    if (rc != 0) {
        st->failed = 1;
        return rc;
    }
    st->n = (size_t)(from - 1 - st->base);
    st->end += sizeof rec;
    return 0;
}

int store_compact(struct store *st, uint64_t upto)
{
    if (st->failed)
        return RAFT_EIO;
    if (upto > st->snap_index)
        return RAFT_EINVAL;
    if (upto <= st->base)
        return 0;
    return log_rewrite(st, upto, 1);
}

/* ---- snapshots ------------------------------------------------------------ */

static int snap_load(struct store *st, struct raft_snapshot **out)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    struct raft_snapshot *s = NULL;
    uint64_t data_len;
    uint32_t conf_len;
    int fd, rc;

    *out = NULL;
    fd = st->sys->open(st->path_snap, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : RAFT_EIO;
    rc = read_file(st, fd, &buf, &len);
    st->sys->close(fd);
    if (rc != 0)
        return rc;
    /* The file was fsynced before its rename: any defect is corruption. */
    rc = RAFT_ECORRUPT;
    if (len < SNAP_HDR + 4 || get32(buf) != SNAP_MAGIC || get32(buf + 4) != STORE_VERSION)
        goto out;
    conf_len = get32(buf + 32);
    data_len = get64(buf + 36);
    if (conf_len > RAFT_CONFIG_ENCODED_MAX || data_len > len ||
        (uint64_t)SNAP_HDR + conf_len + data_len + 4 != len)
        goto out;
    if (store__crc32c(0, buf, len - 4) != get32(buf + len - 4))
        goto out;
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        rc = RAFT_ENOMEM;
        goto out;
    }
    s->index = get64(buf + 8);
    s->term = get64(buf + 16);
    s->config_index = get64(buf + 24);
    if (s->index == 0 || s->term == 0 || s->config_index > s->index)
        goto out;
    if (raft_config_decode(buf + SNAP_HDR, conf_len, &s->config) != 0)
        goto out;
    if (data_len > 0) {
        s->data.base = malloc((size_t)data_len);
        if (s->data.base == NULL) {
            rc = RAFT_ENOMEM;
            goto out;
        }
        memcpy(s->data.base, buf + SNAP_HDR + conf_len, (size_t)data_len);
        s->data.len = (size_t)data_len;
    }
    st->snap_index = s->index;
    st->snap_term = s->term;
    *out = s;
    s = NULL;
    rc = 0;
out:
    if (s != NULL) {
        free(s->data.base);
        free(s);
    }
    free(buf);
    return rc;
}

/* entry_term returns the term of the live entry at index, or 0 if absent. */
static uint64_t entry_term(const struct store *st, uint64_t index)
{
    if (index <= st->base || index > last_index(st))
        return 0;
    return st->idx[index - st->base - 1].term;
}

int store_save_snapshot(struct store *st, const struct raft_snapshot *snap)
{
    unsigned char *buf;
    size_t conf_len = 0, len;
    int rc;

    if (st->failed)
        return RAFT_EIO;
    if (snap == NULL || snap->index == 0 || snap->term == 0 ||
        snap->index < st->snap_index || snap->config_index > snap->index ||
        (snap->data.len > 0 && snap->data.base == NULL))
        return RAFT_EINVAL;
    len = SNAP_HDR + RAFT_CONFIG_ENCODED_MAX + snap->data.len + 4;
    buf = malloc(len);
    if (buf == NULL)
        return RAFT_ENOMEM;
    rc = raft_config_encode(&snap->config, buf + SNAP_HDR, RAFT_CONFIG_ENCODED_MAX,
                            &conf_len);
    if (rc != 0) {
        free(buf);
        return RAFT_EINVAL;
    }
    put32(buf, SNAP_MAGIC);
    put32(buf + 4, STORE_VERSION);
    put64(buf + 8, snap->index);
    put64(buf + 16, snap->term);
    put64(buf + 24, snap->config_index);
    put32(buf + 32, (uint32_t)conf_len);
    put64(buf + 36, snap->data.len);
    if (snap->data.len > 0)
        memcpy(buf + SNAP_HDR + conf_len, snap->data.base, snap->data.len);
    len = SNAP_HDR + conf_len + snap->data.len;
    put32(buf + len, store__crc32c(0, buf, len));
    rc = replace_file(st, st->path_snap_tmp, st->path_snap, buf, len + 4, NULL);
    free(buf);
    if (rc != 0) {
        st->failed = 1;
        return rc;
    }
    st->snap_index = snap->index;
    st->snap_term = snap->term;
    /* Raft paper figure 13, steps 6-7: keep the entries that follow the
     * snapshot only if the log holds its last entry; otherwise the whole log
     * goes.  store_open applies the same rule if we crash before this. */
    if (entry_term(st, snap->index) != snap->term)
        return log_rewrite(st, snap->index, 0);
    return 0;
}

/* ---- open, load, close ---------------------------------------------------- */

/* load_entries fills l->entries with the live entries above the snapshot. */
static int load_entries(struct store *st, struct store_loaded *l)
{
    uint64_t from = st->snap_index > st->base ? st->snap_index : st->base;
    size_t skip = (size_t)(from - st->base), n = st->n - skip;
    unsigned char *rec = NULL;
    int rc = 0;

    if (n == 0)
        return 0;
    l->entries = calloc(n, sizeof *l->entries);
    if (l->entries == NULL)
        return RAFT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct store_idx *x = &st->idx[skip + i];
        struct raft_entry *e = &l->entries[i];
        size_t dlen = x->size - REC_HDR - ENTRY_BODY_MIN;

        rec = malloc(x->size);
        if (rec == NULL)
            return RAFT_ENOMEM;
        rc = read_all(st, st->log_fd, rec, x->size, x->off);
        if (rc != 0)
            break;
        e->index = get64(rec + REC_HDR + 1);
        e->term = get64(rec + REC_HDR + 9);
        e->type = (enum raft_entry_type)get32(rec + REC_HDR + 17);
        l->n_entries++;
        if (dlen > 0) {
            /* Reuse the record buffer as the entry's data. */
            memmove(rec, rec + REC_HDR + ENTRY_BODY_MIN, dlen);
            e->data.base = rec;
            e->data.len = dlen;
        } else {
            free(rec);
        }
        rec = NULL;
    }
    free(rec);
    return rc;
}

static void unlink_quiet(struct store *st, const char *path)
{
    (void)st->sys->unlink(path);
}

int store_open(const char *dir, const struct store_sys *sys, struct store **out,
               struct store_loaded *loaded)
{
    struct store_loaded l = {0};
    struct store *st;
    int rc = RAFT_ENOMEM;

    *out = NULL;
    st = calloc(1, sizeof *st);
    if (st == NULL)
        return RAFT_ENOMEM;
    st->sys = sys ? sys : &store_sys_posix;
    st->meta_fd = -1;
    st->log_fd = -1;
    st->dir = strdup(dir);
    st->path_meta = path_join(dir, "meta");
    st->path_meta_tmp = path_join(dir, "meta.tmp");
    st->path_log = path_join(dir, "log");
    st->path_log_tmp = path_join(dir, "log.tmp");
    st->path_snap = path_join(dir, "snap");
    st->path_snap_tmp = path_join(dir, "snap.tmp");
    if (!st->dir || !st->path_meta || !st->path_meta_tmp || !st->path_log ||
        !st->path_log_tmp || !st->path_snap || !st->path_snap_tmp)
        goto err;
    if (st->sys->mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = RAFT_EIO;
        goto err;
    }
    /* Leftovers of a replace that crashed before its rename. */
    unlink_quiet(st, st->path_meta_tmp);
    unlink_quiet(st, st->path_log_tmp);
    unlink_quiet(st, st->path_snap_tmp);
    rc = meta_load(st, &l.term, &l.vote);
    if (rc != 0)
        goto err;
    rc = snap_load(st, &l.snapshot);
    if (rc != 0)
        goto err;
    rc = log_load(st);
    if (rc != 0)
        goto err;
    if (st->base > st->snap_index) {
        /* Entries were compacted that no snapshot covers. */
        rc = RAFT_ECORRUPT;
        goto err;
    }
    if (st->snap_index > st->base && entry_term(st, st->snap_index) != st->snap_term) {
        /* A crash between saving a snapshot and dropping the log it
         * replaced: finish the job (figure 13, step 7). */
        rc = log_rewrite(st, st->snap_index, 0);
        if (rc != 0)
            goto err;
    }
    if (loaded != NULL) {
        rc = load_entries(st, &l);
        if (rc != 0)
            goto err;
        *loaded = l;
    } else {
        store_loaded_free(&l);
    }
    *out = st;
    return 0;
err:
    store_loaded_free(&l);
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    if (st->meta_fd >= 0)
        st->sys->close(st->meta_fd);
    if (st->log_fd >= 0)
        st->sys->close(st->log_fd);
    free(st->idx);
    free(st->dir);
    free(st->path_meta);
    free(st->path_meta_tmp);
    free(st->path_log);
    free(st->path_log_tmp);
    free(st->path_snap);
    free(st->path_snap_tmp);
    free(st);
}

void store_loaded_free(struct store_loaded *l)
{
    if (l->snapshot != NULL)
        free(l->snapshot->data.base);
    free(l->snapshot);
    for (unsigned i = 0; i < l->n_entries; i++)
        free(l->entries[i].data.base);
    free(l->entries);
    memset(l, 0, sizeof *l);
}

void store_loaded_start(const struct store_loaded *l, struct raft_event *ev)
{
    ev->type = RAFT_EV_START;
    ev->u.start.term = l->term;
    ev->u.start.vote = l->vote;
    ev->u.start.snapshot = l->snapshot;
    ev->u.start.entries = l->entries;
    ev->u.start.n_entries = l->n_entries;
}

int store_persist(struct store *st, const struct raft_update *upd)
{
    int rc;

    if (st->failed)
        return RAFT_EIO;
    if (upd->persist_term_vote) {
        rc = store_save_meta(st, upd->term, upd->vote);
        if (rc != 0)
            return rc;
    }
    if (upd->snapshot != NULL) {
        rc = store_save_snapshot(st, upd->snapshot);
        if (rc != 0)
            return rc;
    }
    if (upd->truncate_from != 0 && upd->truncate_from <= last_index(st)) {
        uint64_t floor = st->snap_index > st->base ? st->snap_index : st->base;
        if (upd->truncate_from <= floor) {
            /* An installed snapshot comes with truncate_from 1 (raft.h):
             * nothing of the old log stays. */
            rc = log_rewrite(st, floor, 0);
        } else if (upd->n_entries == 0 || upd->truncate_from < upd->entries[0].index) {
            rc = store_truncate(st, upd->truncate_from);
        } else {
            rc = 0; /* the append below replaces the suffix atomically */
        }
        if (rc != 0)
            return rc;
    }
    if (upd->n_entries > 0) {
        rc = store_append(st, upd->entries, upd->n_entries);
        if (rc != 0)
            return rc;
    }
    if (upd->compact_to != 0) {
        uint64_t upto =
            upd->compact_to < st->snap_index ? upd->compact_to : st->snap_index;
        rc = store_compact(st, upto);
        if (rc != 0)
            return rc;
    }
    return 0;
}

uint64_t store_first_index(const struct store *st)
{
    return st->base + 1;
}

uint64_t store_last_index(const struct store *st)
{
    return last_index(st);
}

int store_failed(const struct store *st)
{
    return st->failed;
}
