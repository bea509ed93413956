/* pfs.c: the power-loss file system model (pfs.h). */
#include "pfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PF_MAX_INO 256
#define PF_MAX_NAMES 256
#define PF_MAX_FD 64
#define PF_MAX_DOPS 1024
#define PF_PATH 256
#define PF_FD_BASE 1000

enum { OP_WRITE, OP_TRUNC };

struct pf_op {
    int kind;
    uint64_t off; /* WRITE: offset; TRUNC: new length */
    size_t len;
    unsigned char *bytes;
};

struct pf_buf {
    unsigned char *p;
    size_t len;
};

struct pf_ino {
    bool used, is_dir;
    char home[PF_PATH]; /* the directory it was created in */
    struct pf_buf cur, dur;
    struct pf_op *ops;
    size_t n_ops;
};

struct pf_name {
    char path[PF_PATH];
    int ino;
};

struct pf_names {
    struct pf_name v[PF_MAX_NAMES];
    unsigned n;
};

struct pf_dop {
    char dir[PF_PATH];
    bool link; /* link path -> ino, or unlink path */
    char path[PF_PATH];
    int ino;
};

static struct {
    struct pf_ino ino[PF_MAX_INO];
    struct pf_names cur, dur;
    struct pf_dop dops[PF_MAX_DOPS];
    unsigned n_dops;
    struct {
        bool used;
        int ino;
    } fd[PF_MAX_FD];
    char made_dirs[16][PF_PATH]; /* directories ever made through mkdir */
    unsigned n_made;
    uint64_t rng;
    long budget, used;
    bool crashed;
} M;

static uint64_t rnd(uint64_t n)
{
    uint64_t z = (M.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return n ? z % n : 0;
}

static void buf_set_len(struct pf_buf *b, size_t len)
{
    if (len > b->len) {
        unsigned char *p = realloc(b->p, len);
        if (p == NULL)
            abort();
        memset(p + b->len, 0, len - b->len);
        b->p = p;
    }
    b->len = len;
}

static void buf_write(struct pf_buf *b, uint64_t off, const void *src, size_t len)
{
    if (off + len > b->len)
        buf_set_len(b, (size_t)(off + len));
    memcpy(b->p + off, src, len);
}

static void buf_copy(struct pf_buf *to, const struct pf_buf *from)
{
    to->len = 0;
    buf_set_len(to, from->len);
    if (from->len > 0)
        memcpy(to->p, from->p, from->len);
}

static void ops_clear(struct pf_ino *n)
{
    for (size_t i = 0; i < n->n_ops; i++)
        free(n->ops[i].bytes);
    free(n->ops);
    n->ops = NULL;
    n->n_ops = 0;
}

static void op_add(struct pf_ino *n, int kind, uint64_t off, const void *src, size_t len)
{
    struct pf_op *o;

    n->ops = realloc(n->ops, (n->n_ops + 1) * sizeof *n->ops);
    if (n->ops == NULL)
        abort();
    o = &n->ops[n->n_ops++];
    o->kind = kind;
    o->off = off;
    o->len = len;
    o->bytes = NULL;
    if (len > 0) {
        o->bytes = malloc(len);
        if (o->bytes == NULL)
            abort();
        memcpy(o->bytes, src, len);
    }
}

void pfs_reset(uint64_t seed)
{
    for (unsigned i = 0; i < PF_MAX_INO; i++) {
        free(M.ino[i].cur.p);
        free(M.ino[i].dur.p);
        ops_clear(&M.ino[i]);
    }
    memset(&M, 0, sizeof M);
    M.rng = seed;
    M.budget = -1;
}

static bool spend(long units)
{
    if (M.crashed)
        return false;
    if (M.budget >= 0 && M.used + units > M.budget) {
        M.crashed = true;
        return false;
    }
    M.used += units;
    return true;
}

void pfs_budget(long units)
{
    M.budget = units;
    M.used = 0;
    M.crashed = false;
}

long pfs_used(void)
{
    return M.used;
}

/* ---- names ------------------------------------------------------------------- */

static void dir_of(const char *path, char *out)
{
    const char *s = strrchr(path, '/');
    size_t n = s ? (size_t)(s - path) : 0;

    memcpy(out, path, n);
    out[n] = '\0';
}

static int names_find(const struct pf_names *t, const char *path)
{
    for (unsigned i = 0; i < t->n; i++)
        if (strcmp(t->v[i].path, path) == 0)
            return (int)i;
    return -1;
}

static bool made_dir(const char *path)
{
    for (unsigned i = 0; i < M.n_made; i++)
        if (strcmp(M.made_dirs[i], path) == 0)
            return true;
    return false;
}

/* lookup returns the inode of path in t, or -1; a name in a directory made
 * through the model exists only while that directory does. */
static int lookup(const struct pf_names *t, const char *path)
{
    char dir[PF_PATH];
    int k = names_find(t, path);

    if (k < 0)
        return -1;
    dir_of(path, dir);
    if (made_dir(dir) && lookup(t, dir) < 0)
        return -1;
    return t->v[k].ino;
}

static void names_set(struct pf_names *t, const char *path, int ino)
{
    int k = names_find(t, path);

    if (k < 0) {
        if (t->n == PF_MAX_NAMES)
            abort();
        k = (int)t->n++;
        strcpy(t->v[k].path, path);
    }
    t->v[k].ino = ino;
}

static void names_del(struct pf_names *t, const char *path)
{
    int k = names_find(t, path);

    if (k >= 0)
        t->v[k] = t->v[--t->n];
}

static void dop_add(bool link, const char *path, int ino)
{
    struct pf_dop *d;

    if (M.n_dops == PF_MAX_DOPS)
        abort();
    d = &M.dops[M.n_dops++];
    dir_of(path, d->dir);
    d->link = link;
    strcpy(d->path, path);
    d->ino = ino;
}

static void dop_apply(const struct pf_dop *d)
{
    if (d->link)
        names_set(&M.dur, d->path, d->ino);
    else
        names_del(&M.dur, d->path);
}

/* dops_settle makes durable the pending name changes of dir: all of them
 * (keep < 0) or, at a power loss, the first keep. */
static void dops_settle(const char *dir, long keep)
{
    unsigned k = 0;

    for (unsigned i = 0; i < M.n_dops; i++) {
        if (strcmp(M.dops[i].dir, dir) == 0) {
            if (keep < 0 || keep-- > 0)
                dop_apply(&M.dops[i]);
            continue;
        }
        M.dops[k++] = M.dops[i];
    }
    M.n_dops = k;
}

/* referenced: whether inode i is named (now or durably), pending in a
 * directory change, or open. */
static bool referenced(int i)
{
    for (unsigned k = 0; k < M.cur.n; k++)
        if (M.cur.v[k].ino == i)
            return true;
    for (unsigned k = 0; k < M.dur.n; k++)
        if (M.dur.v[k].ino == i)
            return true;
    for (unsigned k = 0; k < M.n_dops; k++)
        if (M.dops[k].ino == i)
            return true;
    for (int k = 0; k < PF_MAX_FD; k++)
        if (M.fd[k].used && M.fd[k].ino == i)
            return true;
    return false;
}

static int new_ino(const char *home, bool is_dir)
{
    for (int i = 0; i < PF_MAX_INO; i++) {
        if (M.ino[i].used && !referenced(i)) {
            free(M.ino[i].cur.p);
            free(M.ino[i].dur.p);
            ops_clear(&M.ino[i]);
            M.ino[i].used = false;
        }
    }
    for (int i = 0; i < PF_MAX_INO; i++) {
        if (!M.ino[i].used) {
            memset(&M.ino[i], 0, sizeof M.ino[i]);
            M.ino[i].used = true;
            M.ino[i].is_dir = is_dir;
            strcpy(M.ino[i].home, home);
            return i;
        }
    }
    abort();
}

/* ---- the system calls ------------------------------------------------------------ */

static int fd_new(int ino)
{
    for (int i = 0; i < PF_MAX_FD; i++) {
        if (!M.fd[i].used) {
            M.fd[i].used = true;
            M.fd[i].ino = ino;
            return PF_FD_BASE + i;
        }
    }
    errno = EMFILE;
    return -1;
}

static struct pf_ino *fd_ino(int fd)
{
    int i = fd - PF_FD_BASE;

    if (i < 0 || i >= PF_MAX_FD || !M.fd[i].used)
        return NULL;
    return &M.ino[M.fd[i].ino];
}

static int p_open(const char *path, int flags, mode_t mode)
{
    char dir[PF_PATH];
    int ino;

    (void)mode;
    if (M.crashed || strlen(path) >= PF_PATH) {
        errno = EIO;
        return -1;
    }
    dir_of(path, dir);
    if (made_dir(dir) && lookup(&M.cur, dir) < 0) {
        errno = ENOENT;
        return -1;
    }
    ino = lookup(&M.cur, path);
    if (ino < 0 && (flags & O_DIRECTORY) && !made_dir(path)) {
        /* A directory outside the model: durable, known from now on. */
        ino = new_ino(dir, true);
        names_set(&M.cur, path, ino);
        names_set(&M.dur, path, ino);
    }
    if (ino < 0) {
        if (!(flags & O_CREAT)) {
            errno = ENOENT;
            return -1;
        }
        ino = new_ino(dir, false);
        names_set(&M.cur, path, ino);
        dop_add(true, path, ino);
    } else if (flags & O_TRUNC) {
        buf_set_len(&M.ino[ino].cur, 0);
        op_add(&M.ino[ino], OP_TRUNC, 0, NULL, 0);
    }
    if ((flags & O_DIRECTORY) && !M.ino[ino].is_dir) {
        errno = ENOTDIR;
        return -1;
    }
    if (M.ino[ino].is_dir)
        strcpy(M.ino[ino].home, path); /* fsync of it settles this dir */
    return fd_new(ino);
}

static int p_close(int fd)
{
    int i = fd - PF_FD_BASE;

    if (i < 0 || i >= PF_MAX_FD || !M.fd[i].used) {
        errno = EBADF;
        return -1;
    }
    M.fd[i].used = false;
    return 0;
}

static ssize_t p_pread(int fd, void *buf, size_t len, off_t off)
{
    struct pf_ino *n = fd_ino(fd);

    if (M.crashed || n == NULL) {
        errno = EIO;
        return -1;
    }
    if ((size_t)off >= n->cur.len)
        return 0;
    if (len > n->cur.len - (size_t)off)
        len = n->cur.len - (size_t)off;
    memcpy(buf, n->cur.p + off, len);
    return (ssize_t)len;
}

static ssize_t p_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    struct pf_ino *n = fd_ino(fd);

    if (M.crashed || n == NULL || n->is_dir) {
        errno = EIO;
        return -1;
    }
    if (M.budget >= 0 && M.used + (long)len > M.budget) {
        len = (size_t)(M.budget - M.used);
        M.crashed = true;
        M.used = M.budget;
        if (len == 0) {
            errno = EIO;
            return -1;
        }
    } else {
        M.used += (long)len;
    }
    buf_write(&n->cur, (uint64_t)off, buf, len);
    op_add(n, OP_WRITE, (uint64_t)off, buf, len);
    return (ssize_t)len;
}

static int p_fsync(int fd)
{
    struct pf_ino *n = fd_ino(fd);

    /* An fsync costs a unit, so a crash can fall between a whole write
     * and its fsync. */
    if (n == NULL || !spend(1)) {
        errno = EIO;
        return -1;
    }
    if (n->is_dir) {
        dops_settle(n->home, -1);
        return 0;
    }
    buf_copy(&n->dur, &n->cur);
    ops_clear(n);
    return 0;
}

static int p_ftruncate(int fd, off_t len)
{
    struct pf_ino *n = fd_ino(fd);

    if (n == NULL || !spend(1)) {
        errno = EIO;
        return -1;
    }
    buf_set_len(&n->cur, (size_t)len);
    op_add(n, OP_TRUNC, (uint64_t)len, NULL, 0);
    return 0;
}

static int p_fstat(int fd, struct stat *st)
{
    struct pf_ino *n = fd_ino(fd);

    if (n == NULL) {
        errno = EBADF;
        return -1;
    }
    memset(st, 0, sizeof *st);
    st->st_size = (off_t)n->cur.len;
    st->st_mode = n->is_dir ? S_IFDIR | 0700 : S_IFREG | 0600;
    return 0;
}

static int p_rename(const char *from, const char *to)
{
    int ino = lookup(&M.cur, from);

    if (!spend(1)) {
        errno = EIO;
        return -1;
    }
    if (ino < 0) {
        errno = ENOENT;
        return -1;
    }
    names_set(&M.cur, to, ino);
    names_del(&M.cur, from);
    dop_add(true, to, ino);
    dop_add(false, from, -1);
    return 0;
}

static int p_unlink(const char *path)
{
    if (!spend(1)) {
        errno = EIO;
        return -1;
    }
    if (lookup(&M.cur, path) < 0) {
        errno = ENOENT;
        return -1;
    }
    names_del(&M.cur, path);
    dop_add(false, path, -1);
    return 0;
}

static int p_mkdir(const char *path, mode_t mode)
{
    char dir[PF_PATH];
    int ino;

    (void)mode;
    if (!spend(1) || strlen(path) >= PF_PATH) {
        errno = EIO;
        return -1;
    }
    if (lookup(&M.cur, path) >= 0) {
        errno = EEXIST;
        return -1;
    }
    dir_of(path, dir);
    if (made_dir(dir) && lookup(&M.cur, dir) < 0) {
        errno = ENOENT;
        return -1;
    }
    if (!made_dir(path)) {
        if (M.n_made == sizeof M.made_dirs / sizeof M.made_dirs[0])
            abort();
        strcpy(M.made_dirs[M.n_made++], path);
    }
    ino = new_ino(dir, true);
    strcpy(M.ino[ino].home, path);
    names_set(&M.cur, path, ino);
    dop_add(true, path, ino);
    return 0;
}

const struct store_sys pfs_sys = {
    .open = p_open,
    .close = p_close,
    .pread = p_pread,
    .pwrite = p_pwrite,
    .fsync = p_fsync,
    .ftruncate = p_ftruncate,
    .fstat = p_fstat,
    .rename = p_rename,
    .unlink = p_unlink,
    .mkdir = p_mkdir,
};

/* ---- power loss -------------------------------------------------------------------- */

/* under: path is the directory prefix or lies below it. */
static bool under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* settle_file puts a random subset of the file's unsynced pages on disk. */
static void settle_file(struct pf_ino *n)
{
    for (size_t i = 0; i < n->n_ops; i++) {
        const struct pf_op *o = &n->ops[i];
        if (o->kind == OP_TRUNC) {
            if (rnd(2))
                buf_set_len(&n->dur, (size_t)o->off);
            continue;
        }
        for (size_t done = 0; done < o->len;) {
            uint64_t at = o->off + done;
            size_t piece = PFS_PAGE - (size_t)(at % PFS_PAGE);
            if (piece > o->len - done)
                piece = o->len - done;
            if (rnd(2))
                buf_write(&n->dur, at, o->bytes + done, piece);
            done += piece;
        }
    }
    ops_clear(n);
    buf_copy(&n->cur, &n->dur);
}

void pfs_power_loss(const char *prefix)
{
    char dirs[64][PF_PATH];
    unsigned n_dirs = 0;

    /* Names: each directory keeps a random prefix of its pending changes. */
    for (unsigned i = 0; i < M.n_dops; i++) {
        bool seen = false;
        if (!under(M.dops[i].dir, prefix) && !under(M.dops[i].path, prefix))
            continue;
        for (unsigned k = 0; k < n_dirs; k++)
            seen |= strcmp(dirs[k], M.dops[i].dir) == 0;
        if (!seen && n_dirs < 64)
            strcpy(dirs[n_dirs++], M.dops[i].dir);
    }
    for (unsigned k = 0; k < n_dirs; k++) {
        long pending = 0;
        for (unsigned i = 0; i < M.n_dops; i++)
            pending += strcmp(M.dops[i].dir, dirs[k]) == 0;
        dops_settle(dirs[k], (long)rnd((uint64_t)pending + 1));
    }
    /* A directory whose own name was lost takes its contents with it. */
    for (bool again = true; again;) {
        again = false;
        for (unsigned i = 0; i < M.dur.n; i++) {
            if (under(M.dur.v[i].path, prefix) && lookup(&M.dur, M.dur.v[i].path) < 0) {
                M.dur.v[i] = M.dur.v[--M.dur.n];
                again = true;
                break;
            }
        }
    }
    /* Data: a random subset of the unsynced pages. */
    for (unsigned i = 0; i < PF_MAX_INO; i++)
        if (M.ino[i].used && !M.ino[i].is_dir && under(M.ino[i].home, prefix))
            settle_file(&M.ino[i]);
    /* What the machine sees after the reboot is what is on disk. */
    for (unsigned i = 0; i < M.cur.n;) {
        if (under(M.cur.v[i].path, prefix))
            M.cur.v[i] = M.cur.v[--M.cur.n];
        else
            i++;
    }
    for (unsigned i = 0; i < M.dur.n; i++)
        if (under(M.dur.v[i].path, prefix))
            names_set(&M.cur, M.dur.v[i].path, M.dur.v[i].ino);
    for (int i = 0; i < PF_MAX_FD; i++)
        if (M.fd[i].used && under(M.ino[M.fd[i].ino].home, prefix))
            M.fd[i].used = false;
    M.crashed = false;
    M.budget = -1;
}

unsigned pfs_dirty_pages(const char *prefix)
{
    unsigned n = 0;

    for (unsigned i = 0; i < PF_MAX_INO; i++) {
        const struct pf_ino *f = &M.ino[i];
        if (!f->used || f->is_dir || !under(f->home, prefix))
            continue;
        for (size_t k = 0; k < f->n_ops; k++)
            n += f->ops[k].kind == OP_WRITE
                     ? (unsigned)((f->ops[k].len + PFS_PAGE - 1) / PFS_PAGE)
                     : 1;
    }
    return n;
}
