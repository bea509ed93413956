/* store_io.c: the store's system calls, all through struct store_sys, and
 * the write-then-rename dance that makes a new file appear whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"

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

int store__io_code(int err)
{
    return err == ENOSPC || err == EDQUOT ? RAFT_ENOSPC : RAFT_EIO;
}

int store__write_all(struct store *st, int fd, const void *buf, size_t len, uint64_t off)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t w = st->sys->pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return store__io_code(w < 0 ? errno : EIO);
        p += w;
        off += (uint64_t)w;
        len -= (size_t)w;
    }
    return 0;
}

int store__read_all(struct store *st, int fd, void *buf, size_t len, uint64_t off)
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
int store__read_file(struct store *st, int fd, unsigned char **out, size_t *len)
{
    struct stat sb;
    unsigned char *buf;

    if (st->sys->fstat(fd, &sb) != 0)
        return RAFT_EIO;
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL)
        return RAFT_ENOMEM;
    if (store__read_all(st, fd, buf, (size_t)sb.st_size, 0) != 0) {
        free(buf);
        return RAFT_EIO;
    }
    *out = buf;
    *len = (size_t)sb.st_size;
    return 0;
}

int store__sync_fd(struct store *st, int fd)
{
    while (st->sys->fsync(fd) != 0) {
        if (errno != EINTR)
            return store__io_code(errno);
    }
    return 0;
}

static int sync_dir_path(struct store *st, const char *path)
{
    int fd = st->sys->open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return RAFT_EIO;
    rc = store__sync_fd(st, fd);
    st->sys->close(fd);
    return rc;
}

/* sync_dir makes created, renamed and unlinked names in the directory
 * durable (fsync(2) on a file does not cover its directory entry). */
int store__sync_dir(struct store *st)
{
    return sync_dir_path(st, st->dir);
}

/* sync_parent makes the store directory's own name durable: it is an entry
 * of its parent, which mkdir(2) changed.  Done at every open, not only
 * after a mkdir that succeeded: a crash between an earlier mkdir and this
 * fsync leaves a directory that exists but is not yet durable. */
int store__sync_parent(struct store *st)
{
    size_t n = strlen(st->dir);
    char *parent;
    int rc;

    while (n > 1 && st->dir[n - 1] == '/')
        n--; /* "a/b/" names b */
    while (n > 0 && st->dir[n - 1] != '/')
        n--;
    if (n == 0)
        return sync_dir_path(st, ".");
    parent = malloc(n + 1);
    if (parent == NULL)
        return RAFT_ENOMEM;
    memcpy(parent, st->dir, n);
    parent[n > 1 ? n - 1 : 1] = '\0'; /* "/x" has the parent "/" */
    rc = sync_dir_path(st, parent);
    free(parent);
    return rc;
}

/* replace_file writes buf to tmp, fsyncs it, renames it to final and fsyncs
 * the directory.  When fd_out is not NULL the new file stays open there
 * (O_RDWR); otherwise it is closed. */
int store__replace_file(struct store *st, const char *tmp, const char *final,
                        const void *buf, size_t len, int *fd_out)
{
    int fd, rc;

    fd = st->sys->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return store__io_code(errno);
    rc = store__write_all(st, fd, buf, len, 0);
    if (rc != 0)
        goto err;
    rc = store__sync_fd(st, fd);
    if (rc != 0)
        goto err;
    if (st->sys->rename(tmp, final) != 0) {
        rc = store__io_code(errno);
        goto err;
    }
    rc = store__sync_dir(st);
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

char *store__path_join(const char *dir, const char *name)
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
