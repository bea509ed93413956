/* store_log.c: the log file of the store: records, replay at load (with
 * the torn tail cut off), append, truncate and the rewrite behind
 * compaction (formats in store.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store_crc.h"
#include "store_int.h"

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

uint64_t store__last_index(const struct store *st)
{
    return st->base + st->n;
}

/* mark_at is nonzero when buf[off, len) starts with a whole MARK record
 * whose checksum holds. */
static int mark_at(const unsigned char *buf, size_t off, size_t len)
{
    uint32_t crc;

    if (len - off < REC_HDR + MARK_BODY || get32(buf + off) != MARK_BODY ||
        buf[off + REC_HDR] != REC_MARK)
        return 0;
    crc = store__crc32c(0, buf + off, 4);
    return store__crc32c(crc, buf + off + REC_HDR, MARK_BODY) == get32(buf + off + 4);
}

/* fsynced_mark_after looks for proof that the bytes at bad had been fsynced:
 * a whole MARK after bad that more bytes follow.  Every write to the log
 * (an append's records and one MARK, or a MARK alone) is fsynced before the
 * next one starts, so at a crash only the last write can be unsynced, and
 * it holds one MARK, at its end.  A MARK followed by anything was therefore
 * not written by the last write: it, and all before it, had been fsynced.
 * Returns its offset, or 0 when there is none (what follows bad may all be
 * the unsynced last write: a torn tail, whatever it looks like). */
static size_t fsynced_mark_after(const unsigned char *buf, size_t bad, size_t len)
{
    for (size_t off = bad + 1; off + REC_HDR + MARK_BODY < len; off++)
        if (mark_at(buf, off, len))
            return off;
    return 0;
}

/* Parse state for log_replay: entries seen since the last MARK. */
struct replay {
    struct store_idx *pend;
    size_t n_pend, cap_pend;
    uint64_t pend_first;
};

/* replay_entry adds the ENTRY record at off (body b) to the pending batch:
 * its index must follow the batch, or, to start one, fall within the log. */
static int replay_entry(struct store *st, struct replay *rp, const unsigned char *b,
                        size_t off, uint32_t blen)
{
    uint64_t index = get64(b + 1);

    if (rp->n_pend == 0 && (index <= st->base || index > store__last_index(st) + 1))
        return store__corrupt(st,
                              "log: a checksummed entry at byte %zu has index %" PRIu64
                              ", outside the log (%" PRIu64 "..%" PRIu64 ")",
                              off, index, st->base + 1, store__last_index(st) + 1);
    if (rp->n_pend != 0 && index != rp->pend_first + rp->n_pend)
        return store__corrupt(st,
                              "log: a checksummed entry at byte %zu has index %" PRIu64
                              ", %" PRIu64 " expected",
                              off, index, rp->pend_first + rp->n_pend);
    if (rp->n_pend == rp->cap_pend) {
        size_t cap = rp->cap_pend ? rp->cap_pend * 2 : 64;
        struct store_idx *p = realloc(rp->pend, cap * sizeof *p);
        if (p == NULL)
            return RAFT_ENOMEM;
        rp->pend = p;
        rp->cap_pend = cap;
    }
    if (rp->n_pend == 0)
        rp->pend_first = index;
    rp->pend[rp->n_pend].off = off;
    rp->pend[rp->n_pend].term = get64(b + 9);
    rp->pend[rp->n_pend].size = REC_HDR + blen;
    rp->n_pend++;
    return 0;
}

/* replay_mark applies a MARK (the log now ends at mark): after a batch it
 * commits the batch, which replaces the log from its first index and must
 * end exactly at the mark; alone it is a truncation. */
static int replay_mark(struct store *st, struct replay *rp, uint64_t mark)
{
    int rc;

    if (rp->n_pend == 0) {
        if (mark < st->base || mark > store__last_index(st))
            return store__corrupt(
                st, "log: a checksummed MARK ends the log at %" PRIu64 ", outside it",
                mark);
        st->n = (size_t)(mark - st->base);
        return 0;
    }
    if (mark != rp->pend_first + rp->n_pend - 1)
        return store__corrupt(
            st, "log: a checksummed MARK at %" PRIu64 " does not end its batch", mark);
    st->n = (size_t)(rp->pend_first - st->base - 1);
    rc = idx_reserve(st, st->n + rp->n_pend);
    if (rc != 0)
        return rc;
    memcpy(st->idx + st->n, rp->pend, rp->n_pend * sizeof *rp->pend);
    st->n += rp->n_pend;
    rp->n_pend = 0;
    return 0;
}

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
    while (rc == 0 && len - off >= REC_HDR) {
        uint32_t blen = get32(buf + off);
        const unsigned char *b = buf + off + REC_HDR;
        uint32_t crc;

        int bad = blen < MARK_BODY || blen > REC_BODY_MAX || blen > len - off - REC_HDR;
        if (!bad) {
            crc = store__crc32c(0, buf + off, 4);
            bad = store__crc32c(crc, b, blen) != get32(buf + off + 4);
        }
        if (bad) {
            /* A record that does not check out starts a torn tail (the
             * last write, never fsynced, any of its pages lost), unless
             * a later write proves it had been fsynced: then it is
             * damage, and dropping what follows would lose entries this
             * node acknowledged. */
            size_t mark = fsynced_mark_after(buf, off, len);
            if (mark != 0)
                rc = store__corrupt(st,
                                    "log: the record at byte %zu does not check out, "
                                    "and the MARK at byte %zu after it was followed "
                                    "by a later write, so both had been fsynced: "
                                    "damage, not a torn write",
                                    off, mark);
            break;
        }
        if (b[0] == REC_ENTRY && blen >= ENTRY_BODY_MIN) {
            rc = replay_entry(st, &rp, b, off, blen);
        } else if (b[0] == REC_MARK && blen == MARK_BODY) {
            rc = replay_mark(st, &rp, get64(b + 1));
            *valid_end = off + REC_HDR + blen;
        } else {
            rc = store__corrupt(st,
                                "log: a checksummed record at byte %zu has an "
                                "unknown kind %u",
                                off, b[0]);
        }
        off += REC_HDR + blen;
    }
    free(rp.pend);
    return rc;
}

/* log_rewrite replaces the log file by one with base new_base holding the
 * live entries above new_base (copied record by record; none unless
 * keep_suffix), through log.tmp and a rename.  On failure the store has failed. */
int store__log_rewrite(struct store *st, uint64_t new_base, int keep_suffix)
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
        rc = store__read_all(st, st->log_fd, buf + off, st->idx[i].size, st->idx[i].off);
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
    rc = store__replace_file(st, st->path_log_tmp, st->path_log, buf, (size_t)off, &fd);
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

int store__log_load(struct store *st)
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
        return store__replace_file(st, st->path_log_tmp, st->path_log, hdr, LOG_HDR,
                                   &st->log_fd);
    }
    if (st->log_fd < 0)
        return RAFT_EIO;
    rc = store__read_file(st, st->log_fd, &buf, &len);
    if (rc != 0)
        return rc;
    /* The header was written whole before the rename that made the file. */
    if (len < LOG_HDR || get32(buf) != LOG_MAGIC || get32(buf + 4) != STORE_VERSION ||
        get32(buf + 16) != store__crc32c(0, buf, 16)) {
        rc = store__corrupt(st, "log: the header (written whole before the rename "
                                "that made the file) does not check out");
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
            store__sync_fd(st, st->log_fd) != 0) {
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
    if (first <= st->base || first <= st->snap_index || first > store__last_index(st) + 1)
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
    rc = store__write_all(st, st->log_fd, buf, off, st->end);
    if (rc == 0)
        rc = store__sync_fd(st, st->log_fd);
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
    if (from <= st->base || from <= st->snap_index || from > store__last_index(st) + 1)
        return RAFT_EINVAL;
    if (from == store__last_index(st) + 1)
        return 0;
    mark_rec_encode(rec, from - 1);
    rc = store__write_all(st, st->log_fd, rec, sizeof rec, st->end);
    if (rc == 0)
        rc = store__sync_fd(st, st->log_fd);
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
    return store__log_rewrite(st, upto, 1);
}

/* entry_term returns the term of the live entry at index, or 0 if absent. */
uint64_t store__entry_term(const struct store *st, uint64_t index)
{
    if (index <= st->base || index > store__last_index(st))
        return 0;
    return st->idx[index - st->base - 1].term;
}

/* load_entries fills l->entries with the live entries above the snapshot. */
int store__load_entries(struct store *st, struct store_loaded *l)
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
        rc = store__read_all(st, st->log_fd, rec, x->size, x->off);
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
