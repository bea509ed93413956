/* test_store.c: the file-backed Raft store (raft/raft_store.h): round trips,
 * truncation, compaction, crashes cut at every byte of the last write, and
 * injected failures of write, fsync and rename that must be reported and
 * sticky. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"
#include "pfs.h"
#include "raft_store.h"

/* ---- a system-call table that can fail or crash -------------------------- */

/* Faults of the test table.  A "crash" is a budget of units (one per byte
 * written, one per rename, ftruncate or unlink): when it runs out, the write
 * in progress is cut short and every later call fails, as if the process had
 * died there; what reached the file system stays (fsync is a no-op here:
 * a process crash loses nothing that was written). */
static struct {
    long budget; /* -1: unlimited */
    long used;
    int crashed;
    int fail_pwrite, fail_fsync, fail_rename, fail_ftruncate; /* fail the Nth
                                                                 call (1-based) */
    int n_pwrite, n_fsync, n_rename, n_ftruncate;
    int err; /* errno of an injected failure */
} F;

static void fault_reset(void)
{
    memset(&F, 0, sizeof F);
    F.budget = -1;
    F.err = EIO;
}

static int spend(long units)
{
    if (F.crashed)
        return -1;
    if (F.budget >= 0 && F.used + units > F.budget) {
        F.crashed = 1;
        return -1;
    }
    F.used += units;
    return 0;
}

static int f_open(const char *path, int flags, mode_t mode)
{
    if (F.crashed) {
        errno = EIO;
        return -1;
    }
    return open(path, flags, mode);
}

static int f_close(int fd)
{
    return close(fd);
}

static ssize_t f_pread(int fd, void *buf, size_t len, off_t off)
{
    if (F.crashed) {
        errno = EIO;
        return -1;
    }
    return pread(fd, buf, len, off);
}

static ssize_t f_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (++F.n_pwrite == F.fail_pwrite || F.crashed) {
        errno = F.crashed ? EIO : F.err;
        return -1;
    }
    if (F.budget >= 0 && F.used + (long)len > F.budget) {
        size_t part = (size_t)(F.budget - F.used);
        F.crashed = 1;
        F.used = F.budget;
        if (part == 0) {
            errno = EIO;
            return -1;
        }
        return pwrite(fd, buf, part, off);
    }
    F.used += (long)len;
    return pwrite(fd, buf, len, off);
}

static int f_fsync(int fd)
{
    if (++F.n_fsync == F.fail_fsync || F.crashed) {
        errno = EIO;
        return -1;
    }
    return 0;
}

static int f_ftruncate(int fd, off_t len)
{
    if (++F.n_ftruncate == F.fail_ftruncate || spend(1) != 0) {
        errno = EIO;
        return -1;
    }
    return ftruncate(fd, len);
}

static int f_fstat(int fd, struct stat *st)
{
    return fstat(fd, st);
}

static int f_rename(const char *a, const char *b)
{
    if (++F.n_rename == F.fail_rename || spend(1) != 0) {
        errno = EIO;
        return -1;
    }
    return rename(a, b);
}

static int f_unlink(const char *p)
{
    if (spend(1) != 0) {
        errno = EIO;
        return -1;
    }
    return unlink(p);
}

static int f_mkdir(const char *p, mode_t m)
{
    return mkdir(p, m);
}

static const struct store_sys fsys = {
    .open = f_open,
    .close = f_close,
    .pread = f_pread,
    .pwrite = f_pwrite,
    .fsync = f_fsync,
    .ftruncate = f_ftruncate,
    .fstat = f_fstat,
    .rename = f_rename,
    .unlink = f_unlink,
    .mkdir = f_mkdir,
};

/* ---- helpers ------------------------------------------------------------- */

static char tmpdir[256];

static void dir_clear(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static const char *dir_new(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/raft-store-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return tmpdir;
}

static void dir_free(void)
{
    dir_clear(tmpdir);
    rmdir(tmpdir);
}

static struct raft_entry mk(uint64_t index, uint64_t term, const char *data)
{
    struct raft_entry e;

    memset(&e, 0, sizeof e);
    e.index = index;
    e.term = term;
    e.type = RAFT_ENTRY_NORMAL;
    e.data.base = (void *)data;
    e.data.len = data ? strlen(data) : 0;
    return e;
}

static int append1(struct store *st, uint64_t index, uint64_t term, const char *data)
{
    struct raft_entry e = mk(index, term, data);
    return store_append(st, &e, 1);
}

static void mk_snapshot(struct raft_snapshot *s, uint64_t index, uint64_t term,
                        const char *data)
{
    memset(s, 0, sizeof *s);
    raft_config_init(&s->config);
    raft_config_add(&s->config, 11, "10.0.0.1:5224", RAFT_VOTER);
    raft_config_add(&s->config, 22, "10.0.0.2:5224", RAFT_VOTER);
    s->index = index;
    s->term = term;
    s->config_index = 1;
    s->data.base = (void *)data;
    s->data.len = strlen(data);
}

/* describe renders a loaded state as text, so states compare with strcmp. */
static void describe(const struct store_loaded *l, char *out, size_t cap)
{
    size_t n = 0;

    n += (size_t)snprintf(out + n, cap - n, "t%" PRIu64 " v%" PRIu64, l->term, l->vote);
    if (l->snapshot != NULL)
        n += (size_t)snprintf(out + n, cap - n, " S%" PRIu64 "/%" PRIu64 "/%u[%.*s]",
                              l->snapshot->index, l->snapshot->term,
                              l->snapshot->config.n, (int)l->snapshot->data.len,
                              (const char *)l->snapshot->data.base);
    for (unsigned i = 0; i < l->n_entries && n < cap; i++)
        n += (size_t)snprintf(
            out + n, cap - n, " %" PRIu64 ":%" PRIu64 ":%d[%.*s]", l->entries[i].index,
            l->entries[i].term, (int)l->entries[i].type, (int)l->entries[i].data.len,
            l->entries[i].data.len ? (const char *)l->entries[i].data.base : "");
}

/* load_describe opens dir with the real system calls and describes it; "ERR
 * <code>" when the open fails. */
static void load_describe(const char *dir, char *out, size_t cap)
{
    struct store *st;
    struct store_loaded l;
    int rc = store_open(dir, NULL, &st, &l);

    if (rc != 0) {
        snprintf(out, cap, "ERR %d", rc);
        return;
    }
    describe(&l, out, cap);
    store_loaded_free(&l);
    store_close(st);
}

/* ---- round trips ---------------------------------------------------------- */

static void test_empty_store(void)
{
    const char *dir = dir_new();
    char d[512];
    struct store *st;
    struct store_loaded l;

    REQUIRE(store_open(dir, NULL, &st, &l) == 0);
    CHECK(l.term == 0 && l.vote == 0 && l.snapshot == NULL && l.n_entries == 0);
    CHECK_INT(store_first_index(st), 1);
    CHECK_INT(store_last_index(st), 0);
    store_loaded_free(&l);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t0 v0");
    dir_free();
}

static void test_round_trip(void)
{
    const char *dir = dir_new();
    char d[1024];
    struct store *st;
    struct raft_entry es[3] = {mk(1, 1, "a"), mk(2, 1, ""), mk(3, 2, "ccc")};

    es[1].type = RAFT_ENTRY_BARRIER;
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(store_save_meta(st, 1, 11), 0);
    CHECK_INT(store_append(st, es, 3), 0);
    CHECK_INT(store_save_meta(st, 2, 22), 0);
    CHECK_INT(store_save_meta(st, 3, 0), 0);
    CHECK_INT(store_last_index(st), 3);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t3 v0 1:1:1[a] 2:1:3[] 3:2:1[ccc]");
    /* Reopen and continue: appends go after the loaded log. */
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(append1(st, 4, 3, "d"), 0);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t3 v0 1:1:1[a] 2:1:3[] 3:2:1[ccc] 4:3:1[d]");
    dir_free();
}

static void test_append_rules(void)
{
    const char *dir = dir_new();
    struct store *st;
    struct raft_entry gap[2] = {mk(1, 1, "a"), mk(3, 1, "c")};

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(append1(st, 2, 1, "x"), RAFT_EINVAL); /* gap */
    CHECK_INT(store_append(st, gap, 2), RAFT_EINVAL);
    CHECK_INT(store_append(st, gap, 0), RAFT_EINVAL);
    CHECK_INT(store_truncate(st, 5), RAFT_EINVAL);
    CHECK(!store_failed(st));
    store_close(st);
    dir_free();
}

static void test_truncate_and_replace(void)
{
    const char *dir = dir_new();
    char d[1024];
    struct store *st;

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    for (int i = 1; i <= 5; i++)
        CHECK_INT(append1(st, (uint64_t)i, 1, "x"), 0);
    CHECK_INT(store_truncate(st, 4), 0);
    CHECK_INT(store_last_index(st), 3);
    CHECK_INT(append1(st, 4, 2, "y"), 0);
    /* Replace from 3 in one batch: the conflict rule (figure 2). */
    struct raft_entry es[2] = {mk(3, 3, "p"), mk(4, 3, "q")};
    CHECK_INT(store_append(st, es, 2), 0);
    CHECK_INT(store_truncate(st, 5), 0); /* nothing at 5: no-op */
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t0 v0 1:1:1[x] 2:1:1[x] 3:3:1[p] 4:3:1[q]");
    /* Truncate everything. */
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(store_truncate(st, 1), 0);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t0 v0");
    dir_free();
}

static void test_snapshot_and_compact(void)
{
    const char *dir = dir_new();
    char d[1024];
    struct store *st;
    struct raft_snapshot s;

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    for (int i = 1; i <= 6; i++)
        CHECK_INT(append1(st, (uint64_t)i, (uint64_t)(i < 4 ? 1 : 2), "e"), 0);
    mk_snapshot(&s, 4, 2, "STATE4");
    CHECK_INT(store_compact(st, 4), RAFT_EINVAL); /* no snapshot covers it yet */
    CHECK_INT(store_save_snapshot(st, &s), 0);
    CHECK_INT(store_last_index(st), 6); /* matching entry at 4: suffix kept */
    CHECK_INT(store_compact(st, 2), 0); /* keep trailing entries 3, 4 */
    CHECK_INT(store_first_index(st), 3);
    CHECK_INT(append1(st, 4, 2, "e"), RAFT_EINVAL); /* inside the snapshot */
    CHECK_INT(append1(st, 7, 2, "f"), 0);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t0 v0 S4/2/2[STATE4] 5:2:1[e] 6:2:1[e] 7:2:1[f]");

    /* A snapshot from the leader that the log does not match drops the log
     * (figure 13 step 7); appends continue after it. */
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    mk_snapshot(&s, 9, 5, "STATE9");
    CHECK_INT(store_save_snapshot(st, &s), 0);
    CHECK_INT(store_last_index(st), 9);
    CHECK_INT(store_first_index(st), 10);
    CHECK_INT(append1(st, 10, 5, "g"), 0);
    mk_snapshot(&s, 8, 5, "OLD");
    CHECK_INT(store_save_snapshot(st, &s), RAFT_EINVAL);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t0 v0 S9/5/2[STATE9] 10:5:1[g]");
    dir_free();
}

static void test_persist_update(void)
{
    const char *dir = dir_new();
    char d[1024];
    struct store *st;
    struct raft_update u;
    struct raft_entry es[3] = {mk(1, 1, "a"), mk(2, 1, "b"), mk(3, 1, "c")};
    struct raft_entry es2[1] = {mk(2, 2, "B")};

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    memset(&u, 0, sizeof u);
    u.persist_term_vote = true;
    u.term = 1;
    u.vote = 7;
    u.entries = es;
    u.n_entries = 3;
    CHECK_INT(store_persist(st, &u), 0);
    memset(&u, 0, sizeof u);
    u.persist_term_vote = true;
    u.term = 2;
    u.truncate_from = 2;
    u.entries = es2;
    u.n_entries = 1;
    CHECK_INT(store_persist(st, &u), 0);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t2 v0 1:1:1[a] 2:2:1[B]");

    /* The loaded state starts a raft instance as-is. */
    struct store_loaded l;
    struct raft_event ev;
    REQUIRE(store_open(dir, NULL, &st, &l) == 0);
    memset(&ev, 0, sizeof ev);
    store_loaded_start(&l, &ev);
    CHECK(ev.type == RAFT_EV_START);
    CHECK_INT(ev.u.start.term, 2);
    CHECK_INT(ev.u.start.n_entries, 2);
    CHECK(ev.u.start.entries[1].index == 2);
    store_loaded_free(&l);
    store_close(st);
    dir_free();
}

static void test_bit_flip_is_corrupt(void)
{
    const char *dir = dir_new();
    char d[1024], path[512];
    struct store *st;
    unsigned char b;
    int fd;

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(append1(st, 1, 1, "first-entry"), 0);
    CHECK_INT(append1(st, 2, 1, "second-entry"), 0);
    store_close(st);
    /* Flip a data byte of entry 1: entry 2 after it is intact, so this is
     * damage rather than a torn write, and loading refuses to guess. */
    snprintf(path, sizeof path, "%s/log", dir);
    fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(pread(fd, &b, 1, 32 + 8 + 21 + 2) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, 32 + 8 + 21 + 2) == 1);
    close(fd);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "ERR -11");
    /* Both metadata slots damaged: corrupt too. */
    dir_clear(dir);
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(store_save_meta(st, 4, 1), 0);
    store_close(st);
    snprintf(path, sizeof path, "%s/meta", dir);
    fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(pwrite(fd, "XX", 2, 10) == 2);
    CHECK(pwrite(fd, "XX", 2, 512 + 10) == 2);
    close(fd);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "ERR -11");
    dir_free();
}

/* ---- crashes at every byte ------------------------------------------------ */

/* A crash case: setup builds the state before the operation (faults off),
 * op performs it on an open store.  An operation made of several durable
 * steps (store_persist) may also leave the state after one of its first
 * steps: each mid performs the steps up to one of them (or is NULL). */
struct crash_case {
    const char *name;
    void (*setup)(struct store *st);
    int (*op)(struct store *st);
    int (*mid[2])(struct store *st);
};

static void setup_five(struct store *st)
{
    store_save_meta(st, 1, 11);
    for (int i = 1; i <= 5; i++)
        append1(st, (uint64_t)i, 1, "entry");
}

static int op_append_batch(struct store *st)
{
    struct raft_entry es[3] = {mk(6, 2, "six"), mk(7, 2, "seven"), mk(8, 2, "")};
    return store_append(st, es, 3);
}

/* Records longer than a page of the power-loss model (PFS_PAGE), so a
 * lost page can fall inside one and leave good records after it. */
static int op_append_big(struct store *st)
{
    static char big[3][200];
    struct raft_entry es[3];

    for (int i = 0; i < 3; i++) {
        memset(big[i], 'a' + i, sizeof big[i] - 1);
        big[i][sizeof big[i] - 1] = '\0';
        es[i] = mk((uint64_t)(6 + i), 2, big[i]);
    }
    return store_append(st, es, 3);
}

static int op_append_replace(struct store *st)
{
    struct raft_entry es[2] = {mk(4, 3, "four'"), mk(5, 3, "five'")};
    return store_append(st, es, 2);
}

static int op_truncate(struct store *st)
{
    return store_truncate(st, 3);
}

static int op_meta(struct store *st)
{
    return store_save_meta(st, 2, 22);
}

static int op_snapshot_compact(struct store *st)
{
    struct raft_snapshot s;
    struct raft_update u;

    mk_snapshot(&s, 4, 1, "S4");
    memset(&u, 0, sizeof u);
    u.snapshot = &s;
    u.compact_to = 4;
    return store_persist(st, &u);
}

static int op_snapshot_install(struct store *st)
{
    struct raft_snapshot s;

    mk_snapshot(&s, 9, 4, "S9");
    return store_save_snapshot(st, &s);
}

/* What the core asks after an InstallSnapshot that matches the log: the
 * snapshot, then truncate_from 1 (raft.h). */
static int op_install_truncate_all(struct store *st)
{
    struct raft_snapshot s;
    struct raft_update u;
    struct raft_entry e = mk(5, 1, "new5");

    mk_snapshot(&s, 4, 1, "S4");
    memset(&u, 0, sizeof u);
    u.snapshot = &s;
    u.truncate_from = 1;
    u.entries = &e;
    u.n_entries = 1;
    return store_persist(st, &u);
}

static int op_install_snapshot_only(struct store *st)
{
    struct raft_snapshot s;

    mk_snapshot(&s, 4, 1, "S4");
    return store_save_snapshot(st, &s);
}

static int op_install_and_truncate(struct store *st)
{
    struct raft_snapshot s;
    struct raft_update u;

    mk_snapshot(&s, 4, 1, "S4");
    memset(&u, 0, sizeof u);
    u.snapshot = &s;
    u.truncate_from = 1;
    return store_persist(st, &u);
}

static int op_persist_meta_only(struct store *st)
{
    return store_save_meta(st, 5, 33);
}

static int op_persist_all(struct store *st)
{
    struct raft_update u;
    struct raft_entry es[2] = {mk(3, 5, "x"), mk(4, 5, "y")};

    memset(&u, 0, sizeof u);
    u.persist_term_vote = true;
    u.term = 5;
    u.vote = 33;
    u.truncate_from = 3;
    u.entries = es;
    u.n_entries = 2;
    return store_persist(st, &u);
}

/* run_case returns, in desc, the state loaded after setup plus the operation
 * cut after budget units (-1: not cut), and in used the units spent. */
static void run_case(const struct crash_case *c, int (*op)(struct store *),
                     const char *dir, long budget, char *desc, size_t cap, long *used)
{
    struct store *st;

    dir_clear(dir);
    fault_reset();
    if (store_open(dir, &fsys, &st, NULL) != 0) {
        snprintf(desc, cap, "setup open failed");
        return;
    }
    c->setup(st);
    F.budget = budget;
    F.used = 0;
    int rc = op(st);
    if (budget < 0 && rc != 0)
        fprintf(stderr, "%s: op failed %d\n", c->name, rc);
    if (used != NULL)
        *used = F.used;
    store_close(st);
    fault_reset();
    load_describe(dir, desc, cap);
}

static void test_crash_every_byte(void)
{
    static const struct crash_case cases[] = {
        {"append batch", setup_five, op_append_batch, {NULL, NULL}},
        {"append replacing a suffix", setup_five, op_append_replace, {NULL, NULL}},
        {"truncate", setup_five, op_truncate, {NULL, NULL}},
        {"save term and vote", setup_five, op_meta, {NULL, NULL}},
        {"snapshot and compact", setup_five, op_snapshot_compact, {NULL, NULL}},
        {"install snapshot", setup_five, op_snapshot_install, {NULL, NULL}},
        {"install snapshot, truncate all, append",
         setup_five,
         op_install_truncate_all,
         {op_install_snapshot_only, op_install_and_truncate}},
        {"persist term, truncate, append",
         setup_five,
         op_persist_all,
         {op_persist_meta_only, NULL}},
    };
    const char *dir = dir_new();
    char before[2048], after[2048], mid[2][2048], got[2048];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct crash_case *c = &cases[k];
        long total = 0;

        run_case(c, c->op, dir, 0, before, sizeof before, NULL);
        run_case(c, c->op, dir, -1, after, sizeof after, &total);
        for (int m = 0; m < 2; m++) {
            if (c->mid[m] != NULL)
                run_case(c, c->mid[m], dir, -1, mid[m], sizeof mid[m], NULL);
            else
                strcpy(mid[m], before);
        }
        CHECK(strcmp(before, after) != 0);
        CHECK(total > 0);
        for (long cut = 0; cut <= total; cut++) {
            run_case(c, c->op, dir, cut, got, sizeof got, NULL);
            if (strcmp(got, before) != 0 && strcmp(got, after) != 0 &&
                strcmp(got, mid[0]) != 0 && strcmp(got, mid[1]) != 0) {
                TL_FAIL_("%s cut at %ld/%ld: loaded neither state\n  got:    %s\n"
                         "  before: %s\n  after:  %s",
                         c->name, cut, total, got, before, after);
                break;
            }
            /* The store still works after the crash: append and reload. */
            struct store *st;
            struct store_loaded l;
            REQUIRE(store_open(dir, NULL, &st, &l) == 0);
            uint64_t next = store_last_index(st) + 1;
            CHECK_INT(append1(st, next, 9, "after-crash"), 0);
            store_loaded_free(&l);
            store_close(st);
            load_describe(dir, got, sizeof got);
            CHECK(strstr(got, "after-crash") != NULL);
        }
    }
    dir_free();
}

/* A crash while a new store is being created leaves a directory that opens
 * as an empty store. */
static void test_crash_on_create(void)
{
    const char *dir = dir_new();
    struct store *st;
    char got[256];
    long total;

    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    total = F.used;
    store_close(st);
    CHECK(total > 0);
    for (long cut = 0; cut <= total; cut++) {
        dir_clear(dir);
        fault_reset();
        F.budget = cut;
        if (store_open(dir, &fsys, &st, NULL) == 0)
            store_close(st);
        fault_reset();
        load_describe(dir, got, sizeof got);
        CHECK_STR(got, "t0 v0");
    }
    dir_free();
}

/* ---- injected failures ----------------------------------------------------- */

static void test_failures_sticky(void)
{
    const char *dir = dir_new();
    struct store *st;
    struct raft_snapshot s;
    char d[512];

    /* pwrite fails during an append. */
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    CHECK_INT(append1(st, 1, 1, "kept"), 0);
    F.fail_pwrite = F.n_pwrite + 1;
    CHECK_INT(append1(st, 2, 1, "lost"), RAFT_EIO);
    CHECK(store_failed(st));
    CHECK_INT(append1(st, 2, 1, "again"), RAFT_EIO);
    CHECK_INT(store_save_meta(st, 5, 0), RAFT_EIO);
    CHECK_INT(store_truncate(st, 1), RAFT_EIO);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t0 v0 1:1:1[kept]");

    /* fsync fails after metadata was written. */
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    F.fail_fsync = F.n_fsync + 1;
    CHECK_INT(store_save_meta(st, 3, 1), RAFT_EIO);
    CHECK(store_failed(st));
    CHECK_INT(append1(st, 2, 1, "x"), RAFT_EIO);
    store_close(st);

    /* fsync fails after an append. */
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    F.fail_fsync = F.n_fsync + 1;
    CHECK_INT(append1(st, 2, 1, "x"), RAFT_EIO);
    CHECK(store_failed(st));
    store_close(st);

    /* rename fails while saving a snapshot. */
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    F.fail_rename = F.n_rename + 1;
    mk_snapshot(&s, 1, 1, "S");
    CHECK_INT(store_save_snapshot(st, &s), RAFT_EIO);
    CHECK(store_failed(st));
    CHECK_INT(store_save_snapshot(st, &s), RAFT_EIO);
    CHECK_INT(store_compact(st, 1), RAFT_EIO);
    store_close(st);

    /* ENOSPC is reported as such, and sticky. */
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    F.err = ENOSPC;
    F.fail_pwrite = F.n_pwrite + 1;
    CHECK_INT(append1(st, 2, 1, "x"), RAFT_ENOSPC);
    CHECK_INT(append1(st, 2, 1, "x"), RAFT_EIO);
    store_close(st);

    /* The persist helper stops at the first failure. */
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    struct raft_update u;
    struct raft_entry e = mk(2, 2, "y");
    memset(&u, 0, sizeof u);
    u.persist_term_vote = true;
    u.term = 2;
    u.entries = &e;
    u.n_entries = 1;
    uint64_t last = store_last_index(st);
    F.fail_fsync = F.n_fsync + 1;
    CHECK_INT(store_persist(st, &u), RAFT_EIO);
    CHECK_INT(store_last_index(st), last);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK(strstr(d, "2:2:") == NULL);
    fault_reset();
    dir_free();
}

/* A torn tail is cut at open; if that ftruncate fails, open reports it. */
static void test_torn_tail_truncate_fails(void)
{
    const char *dir = dir_new();
    struct store *st;
    char path[512];
    int fd;

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(append1(st, 1, 1, "a"), 0);
    store_close(st);
    snprintf(path, sizeof path, "%s/log", dir);
    fd = open(path, O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    CHECK(write(fd, "\x30\0\0\0garbage", 11) == 11);
    close(fd);
    fault_reset();
    F.fail_ftruncate = 1;
    CHECK_INT(store_open(dir, &fsys, &st, NULL), RAFT_EIO);
    fault_reset();
    REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
    CHECK_INT(store_last_index(st), 1);
    store_close(st);
    dir_free();
}

/* ---- power loss (lib/pfs.h) --------------------------------------------------- */

#define PFS_ROOT "/pfs"
#define PFS_DIR "/pfs/store"

/* pfs_describe opens the store in the model and describes it ("ERR <code>"
 * when the open fails). */
static void pfs_describe(char *out, size_t cap)
{
    struct store *st;
    struct store_loaded l;
    int rc = store_open(PFS_DIR, &pfs_sys, &st, &l);

    if (rc != 0) {
        snprintf(out, cap, "ERR %d", rc);
        return;
    }
    describe(&l, out, cap);
    store_loaded_free(&l);
    store_close(st);
}

/* The store's directory is a name in its parent: without an fsync of the
 * parent after mkdir, a power cut soon after the first start loses the
 * whole store, with the term, vote and entries it acknowledged.  Every
 * call below returned, so all of it must survive. */
static void test_power_loss_new_store(void)
{
    char got[512];
    int lost = 0;

    for (uint64_t seed = 1; seed <= 64; seed++) {
        struct store *st;
        pfs_reset(seed);
        REQUIRE(store_open(PFS_DIR, &pfs_sys, &st, NULL) == 0);
        CHECK_INT(store_save_meta(st, 3, 7), 0);
        CHECK_INT(append1(st, 1, 1, "a"), 0);
        store_close(st);
        pfs_power_loss(PFS_ROOT);
        pfs_describe(got, sizeof got);
        if (strcmp(got, "t3 v7 1:1:1[a]") != 0 && lost++ == 0)
            TL_FAIL_("seed %" PRIu64 ": after a power loss the store loaded %s", seed,
                     got);
    }
    CHECK_INT(lost, 0);
    pfs_reset(0);
}

/* setup_five_pfs is setup_five, every step durable. */
static void pfs_case(const struct crash_case *c, int (*op)(struct store *), long budget,
                     uint64_t seed, bool power_loss, char *desc, size_t cap, long *used)
{
    struct store *st;

    pfs_reset(seed);
    if (store_open(PFS_DIR, &pfs_sys, &st, NULL) != 0) {
        snprintf(desc, cap, "setup open failed");
        return;
    }
    c->setup(st);
    pfs_budget(budget);
    op(st);
    if (used != NULL)
        *used = pfs_used();
    store_close(st);
    pfs_budget(-1);
    if (power_loss)
        pfs_power_loss(PFS_ROOT);
    pfs_describe(desc, cap);
}

/* Power loss in the middle of each operation: the write in progress was
 * never fsynced, and any subset of its pages may have reached the disk (an
 * append that spans pages and lost its first one leaves good records
 * behind a bad one).  That is a torn tail, not damage: the store must load
 * as the state before or after the operation (or after one of its durable
 * steps), and go on. */
static void test_power_loss_every_byte(void)
{
    static const struct crash_case cases[] = {
        {"append batch", setup_five, op_append_batch, {NULL, NULL}},
        {"append spanning pages", setup_five, op_append_big, {NULL, NULL}},
        {"append replacing a suffix", setup_five, op_append_replace, {NULL, NULL}},
        {"truncate", setup_five, op_truncate, {NULL, NULL}},
        {"save term and vote", setup_five, op_meta, {NULL, NULL}},
        {"snapshot and compact", setup_five, op_snapshot_compact, {NULL, NULL}},
        {"install snapshot", setup_five, op_snapshot_install, {NULL, NULL}},
        {"install snapshot, truncate all, append",
         setup_five,
         op_install_truncate_all,
         {op_install_snapshot_only, op_install_and_truncate}},
        {"persist term, truncate, append",
         setup_five,
         op_persist_all,
         {op_persist_meta_only, NULL}},
    };
    char before[4096], after[4096], mid[2][4096], got[4096];
    unsigned runs = 0;

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct crash_case *c = &cases[k];
        long total = 0;
        bool failed = false;

        pfs_case(c, c->op, 0, 1, false, before, sizeof before, NULL);
        pfs_case(c, c->op, -1, 1, false, after, sizeof after, &total);
        for (int m = 0; m < 2; m++) {
            if (c->mid[m] != NULL)
                pfs_case(c, c->mid[m], -1, 1, false, mid[m], sizeof mid[m], NULL);
            else
                strcpy(mid[m], before);
        }
        CHECK(strcmp(before, after) != 0);
        for (long cut = 0; cut <= total && !failed; cut++) {
            /* A crash after the whole write, before its fsync, leaves the
             * most pages to lose: try it with many more draws. */
            uint64_t seeds = cut + 4 >= total ? 300 : 6;
            for (uint64_t seed = 1; seed <= seeds && !failed; seed++) {
                pfs_case(c, c->op, cut, seed * 7919 + (uint64_t)cut, true, got,
                         sizeof got, NULL);
                runs++;
                if (cut == total && strcmp(got, after) != 0) {
                    /* Every call returned: all of it was durable. */
                    TL_FAIL_("%s completed, then power loss (seed %" PRIu64
                             "): lost\n  got:    %s\n  after:  %s",
                             c->name, seed, got, after);
                    failed = true;
                    break;
                }
                if (strcmp(got, before) != 0 && strcmp(got, after) != 0 &&
                    strcmp(got, mid[0]) != 0 && strcmp(got, mid[1]) != 0) {
                    TL_FAIL_("%s cut at %ld/%ld, power loss (seed %" PRIu64
                             "): loaded neither state\n  got:    %s\n"
                             "  before: %s\n  after:  %s",
                             c->name, cut, total, seed, got, before, after);
                    failed = true;
                    break;
                }
                /* The store still works: append and reload. */
                struct store *st;
                struct store_loaded l;
                REQUIRE(store_open(PFS_DIR, &pfs_sys, &st, &l) == 0);
                CHECK_INT(append1(st, store_last_index(st) + 1, 9, "after-crash"), 0);
                store_loaded_free(&l);
                store_close(st);
                pfs_power_loss(PFS_ROOT);
                pfs_describe(got, sizeof got);
                if (strstr(got, "after-crash") == NULL) {
                    TL_FAIL_("%s cut at %ld: the append after recovery was lost: %s",
                             c->name, cut, got);
                    failed = true;
                }
            }
        }
    }
    printf("     %u power losses\n", runs);
    pfs_reset(0);
}

/* zero_range overwrites len bytes of dir/log at off with zeros. */
static void zero_range(const char *dir, uint64_t off, size_t len)
{
    char path[512];
    unsigned char z[256] = {0};
    int fd;

    snprintf(path, sizeof path, "%s/log", dir);
    fd = open(path, O_RDWR);
    if (fd < 0 || len > sizeof z || pwrite(fd, z, len, (off_t)off) != (ssize_t)len)
        TL_FAIL_("cannot damage %s", path);
    if (fd >= 0)
        close(fd);
}

/* A torn state seen under crashes, built by hand: the last append spans pages,
 * was never fsynced, and lost a page inside its first record (the page
 * holding the record's header was written with the previous data), so a
 * bad record is followed by good ones up to the end.  That is a torn tail:
 * the store loads as before the append.  The same damage with a later
 * write after it is damage before an fsynced point: RAFT_ECORRUPT, and
 * store_open_report says where. */
static void test_torn_tail_after_power_loss(void)
{
    const char *dir = dir_new();
    char d[2048], why[256];
    struct store *st;
    struct store_loaded l;
    uint64_t end5;

    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    setup_five(st);
    store_close(st);
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    end5 = 32 + 5 * (8 + 21 + 5 + 8 + 9); /* header, five (entry, mark) */
    CHECK_INT(op_append_big(st), 0);
    store_close(st);
    /* entry 6's record starts at end5; lose the page after its header */
    zero_range(dir, (end5 / 64 + 1) * 64, 64);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "t1 v11 1:1:1[entry] 2:1:1[entry] 3:1:1[entry] 4:1:1[entry] "
                 "5:1:1[entry]");
    /* the store goes on from there */
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    CHECK_INT(append1(st, 6, 3, "next"), 0);
    store_close(st);
    load_describe(dir, d, sizeof d);
    CHECK(strstr(d, "5:1:1[entry] 6:3:1[next]") != NULL);

    /* damage with a later write behind it */
    dir_clear(dir);
    REQUIRE(store_open(dir, NULL, &st, NULL) == 0);
    setup_five(st);
    CHECK_INT(op_append_big(st), 0);
    CHECK_INT(append1(st, 9, 2, "later"), 0);
    store_close(st);
    zero_range(dir, (end5 / 64 + 1) * 64, 64);
    load_describe(dir, d, sizeof d);
    CHECK_STR(d, "ERR -11");
    why[0] = '\0';
    CHECK_INT(store_open_report(dir, NULL, &st, &l, why, sizeof why), RAFT_ECORRUPT);
    CHECK(strstr(why, "log") != NULL && strstr(why, "fsync") != NULL);
    printf("     %s\n", why);
    dir_free();
}

/* The model itself: writes stay dirty until fsync, and a power loss keeps
 * only what was synced plus some of the dirty pages. */
static void test_pfs_model(void)
{
    struct store *st;
    char got[512];

    pfs_reset(5);
    REQUIRE(store_open(PFS_DIR, &pfs_sys, &st, NULL) == 0);
    CHECK_INT(pfs_dirty_pages(PFS_ROOT), 0);
    CHECK_INT(append1(st, 1, 1, "a"), 0);
    CHECK_INT(pfs_dirty_pages(PFS_ROOT), 0); /* store_append fsyncs */
    store_close(st);
    /* a write without fsync, straight through the table */
    int fd = pfs_sys.open(PFS_DIR "/log", O_RDWR, 0);
    REQUIRE(fd >= 0);
    CHECK(pfs_sys.pwrite(
              fd, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
              66, 4000) == 66);
    CHECK(pfs_dirty_pages(PFS_ROOT) >= 2);
    pfs_sys.close(fd);
    pfs_power_loss(PFS_ROOT);
    CHECK_INT(pfs_dirty_pages(PFS_ROOT), 0);
    pfs_describe(got, sizeof got);
    CHECK_STR(got, "t0 v0 1:1:1[a]");
    pfs_reset(0);
}

/* ---- random operations, random crashes -------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? rng % n : 0;
}

static void copy_dir(const char *from, const char *to)
{
    static const char *names[] = {"meta", "log", "snap"};
    char a[512], b[512], buf[65536];

    dir_clear(to);
    for (size_t i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", from, names[i]);
        snprintf(b, sizeof b, "%s/%s", to, names[i]);
        int in = open(a, O_RDONLY), out;
        ssize_t n;
        if (in < 0)
            continue;
        out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        while (out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)n) != n)
                break;
        close(in);
        if (out >= 0)
            close(out);
    }
}

/* One random operation, drawn against the loaded state l; its parameters
 * are fixed before the call so the same operation can run twice. */
struct rop {
    int kind; /* 0 append, 1 truncate, 2 meta, 3 snapshot, 4 compact */
    uint64_t a, b, c;
    struct raft_entry es[4];
    char data[4][16];
    unsigned n;
};

static void rop_draw(struct rop *op, const struct store_loaded *l, const struct store *st)
{
    uint64_t snap = l->snapshot ? l->snapshot->index : 0;
    uint64_t last = store_last_index(st), lo = snap + 1;
    uint64_t term = l->n_entries ? l->entries[l->n_entries - 1].term
                                 : (l->snapshot ? l->snapshot->term : 1);

    memset(op, 0, sizeof *op);
    op->kind = (int)rnd(10);
    op->kind = op->kind < 5 ? 0 : op->kind - 4; /* appends are most common */
    switch (op->kind) {
    case 0:
        op->a = lo + rnd(last + 2 - lo); /* first, in [snap + 1, last + 1] */
        op->n = 1 + (unsigned)rnd(4);
        term += rnd(2);
        for (unsigned i = 0; i < op->n; i++) {
            snprintf(op->data[i], sizeof op->data[i], "d%" PRIu64, rnd(1000));
            op->es[i] = mk(op->a + i, term, op->data[i]);
        }
        break;
    case 1:
        op->a = lo + rnd(last + 2 - lo);
        break;
    case 2:
        op->a = rnd(100);
        op->b = rnd(8);
        break;
    case 3:
        /* Either a snapshot of a stored entry, or one from a leader ahead. */
        if (last > snap && rnd(2)) {
            op->a = lo + rnd(last - snap);
            op->b = l->entries[op->a - l->entries[0].index].term;
        } else {
            op->a = last + 1 + rnd(5);
            op->b = term + 1;
        }
        break;
    case 4:
        op->a = rnd(snap + 1);
        break;
    }
}

static int rop_run(struct store *st, const struct rop *op)
{
    struct raft_snapshot sn;

    switch (op->kind) {
    case 0:
        return store_append(st, op->es, op->n);
    case 1:
        return store_truncate(st, op->a);
    case 2:
        return store_save_meta(st, op->a, op->b);
    case 3:
        mk_snapshot(&sn, op->a, op->b, "SNAP");
        return store_save_snapshot(st, &sn);
    default:
        return store_compact(st, op->a);
    }
}

/* Random sequences of operations, each maybe cut by a crash at a random
 * unit of its writes: the store must load as the state before or after the
 * operation, and go on from there. */
static void test_random_ops_with_crashes(void)
{
    char dir[256], scratch[300], before[4096], after[4096], got[4096];
    int crashes = 0, done = 0;

    snprintf(dir, sizeof dir, "%s", dir_new());
    snprintf(scratch, sizeof scratch, "%s.scratch", dir);
    REQUIRE(mkdir(scratch, 0700) == 0);
    for (int step = 0; step < 400; step++) {
        struct store *st;
        struct store_loaded l;
        struct rop op;
        long total;
        int rc;

        /* Draw the operation against the current state, and learn its
         * outcome on a copy. */
        fault_reset();
        REQUIRE(store_open(dir, &fsys, &st, &l) == 0);
        describe(&l, before, sizeof before);
        rop_draw(&op, &l, st);
        store_loaded_free(&l);
        store_close(st);
        copy_dir(dir, scratch);
        fault_reset();
        REQUIRE(store_open(scratch, &fsys, &st, NULL) == 0);
        F.used = 0;
        rc = rop_run(st, &op);
        total = F.used;
        store_close(st);
        fault_reset();
        load_describe(scratch, after, sizeof after);
        if (rc != 0) {
            /* A rule the draw did not respect (e.g. an old snapshot): the
             * operation must then change nothing. */
            CHECK_STR(after, before);
            continue;
        }
        /* Now for real, maybe cut short. */
        done++;
        fault_reset();
        REQUIRE(store_open(dir, &fsys, &st, NULL) == 0);
        F.used = 0;
        if (total > 0 && rnd(2)) {
            F.budget = (long)rnd((uint64_t)total);
            crashes++;
        }
        rop_run(st, &op);
        store_close(st);
        fault_reset();
        load_describe(dir, got, sizeof got);
        if (strcmp(got, before) != 0 && strcmp(got, after) != 0) {
            TL_FAIL_("step %d op %d cut at %ld/%ld: loaded neither state\n  got:    %s\n"
                     "  before: %s\n  after:  %s",
                     step, op.kind, F.budget, total, got, before, after);
            break;
        }
    }
    CHECK(crashes > 100);
    CHECK(done > 300);
    printf("     %d operations, %d cut by a crash\n", done, crashes);
    dir_clear(scratch);
    rmdir(scratch);
    dir_free();
}

TL_MAIN(T(test_empty_store), T(test_round_trip), T(test_append_rules),
        T(test_truncate_and_replace), T(test_snapshot_and_compact),
        T(test_persist_update), T(test_bit_flip_is_corrupt), T(test_crash_every_byte),
        T(test_crash_on_create), T(test_failures_sticky),
        T(test_torn_tail_truncate_fails), T(test_random_ops_with_crashes),
        T(test_pfs_model), T(test_torn_tail_after_power_loss),
        T(test_power_loss_new_store), T(test_power_loss_every_byte))
