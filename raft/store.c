/* store.c: the file-backed Raft store (format and rules in raft_store.h).
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
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_crc.h"
#include "store_int.h"

int store__corrupt(struct store *st, const char *fmt, ...)
{
    va_list ap;

    if (st->why != NULL && st->why_cap > 0) {
        va_start(ap, fmt);
        vsnprintf(st->why, st->why_cap, fmt, ap);
        va_end(ap);
    }
    return RAFT_ECORRUPT;
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
        rc = store__replace_file(st, st->path_meta_tmp, st->path_meta, slot0, META_REC,
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
    rc = store__read_file(st, st->meta_fd, &buf, &len);
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
        /* Each slot is written only when the other holds the state, after
         * the file was made whole by a rename: both bad is damage. */
        return store__corrupt(st, "meta: neither slot checks out");
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
    rc = store__write_all(st, st->meta_fd, rec, sizeof rec,
                          (seq & 1) ? 0 : (uint64_t)META_SLOT_SIZE);
    if (rc == 0)
        rc = store__sync_fd(st, st->meta_fd);
    if (rc != 0) {
        st->failed = 1;
        return rc;
    }
    st->meta_seq = seq;
    return 0;
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
    rc = store__read_file(st, fd, &buf, &len);
    st->sys->close(fd);
    if (rc != 0)
        return rc;
    /* The file was fsynced before its rename: any defect is corruption. */
    rc = store__corrupt(st, "snap: the snapshot file (fsynced before its rename) "
                            "does not check out");
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
    rc = store__replace_file(st, st->path_snap_tmp, st->path_snap, buf, len + 4, NULL);
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
    if (store__entry_term(st, snap->index) != snap->term)
        return store__log_rewrite(st, snap->index, 0);
    return 0;
}

/* ---- open, load, close ---------------------------------------------------- */

static void unlink_quiet(struct store *st, const char *path)
{
    (void)st->sys->unlink(path);
}

int store_open(const char *dir, const struct store_sys *sys, struct store **out,
               struct store_loaded *loaded)
{
    return store_open_report(dir, sys, out, loaded, NULL, 0);
}

int store_open_report(const char *dir, const struct store_sys *sys, struct store **out,
                      struct store_loaded *loaded, char *why, size_t cap)
{
    struct store_loaded l = {0};
    struct store *st;
    int rc = RAFT_ENOMEM;

    *out = NULL;
    st = calloc(1, sizeof *st);
    if (st == NULL)
        return RAFT_ENOMEM;
    st->sys = sys ? sys : &store_sys_posix;
    st->why = why;
    st->why_cap = cap;
    if (why != NULL && cap > 0)
        why[0] = '\0';
    st->meta_fd = -1;
    st->log_fd = -1;
    st->dir = strdup(dir);
    st->path_meta = store__path_join(dir, "meta");
    st->path_meta_tmp = store__path_join(dir, "meta.tmp");
    st->path_log = store__path_join(dir, "log");
    st->path_log_tmp = store__path_join(dir, "log.tmp");
    st->path_snap = store__path_join(dir, "snap");
    st->path_snap_tmp = store__path_join(dir, "snap.tmp");
    if (!st->dir || !st->path_meta || !st->path_meta_tmp || !st->path_log ||
        !st->path_log_tmp || !st->path_snap || !st->path_snap_tmp)
        goto err;
    if (st->sys->mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = RAFT_EIO;
        goto err;
    }
    rc = store__sync_parent(st);
    if (rc != 0)
        goto err;
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
    rc = store__log_load(st);
    if (rc != 0)
        goto err;
    if (st->base > st->snap_index) {
        /* Entries were compacted that no snapshot covers. */
        rc = store__corrupt(st,
                            "log: starts after entry %" PRIu64
                            ", which no snapshot covers (snapshot at %" PRIu64 ")",
                            st->base, st->snap_index);
        goto err;
    }
    if (st->snap_index > st->base &&
        store__entry_term(st, st->snap_index) != st->snap_term) {
        /* A crash between saving a snapshot and dropping the log it
         * replaced: finish the job (figure 13, step 7). */
        rc = store__log_rewrite(st, st->snap_index, 0);
        if (rc != 0)
            goto err;
    }
    if (loaded != NULL) {
        rc = store__load_entries(st, &l);
        if (rc != 0)
            goto err;
        *loaded = l;
    } else {
        store_loaded_free(&l);
    }
    st->why = NULL;
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
    if (upd->truncate_from != 0 && upd->truncate_from <= store__last_index(st)) {
        uint64_t floor = st->snap_index > st->base ? st->snap_index : st->base;
        if (upd->truncate_from <= floor) {
            /* An installed snapshot comes with truncate_from 1 (raft.h):
             * nothing of the old log stays. */
            rc = store__log_rewrite(st, floor, 0);
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
    return store__last_index(st);
}

int store_failed(const struct store *st)
{
    return st->failed;
}
