/* dirlock.c: the state directory's lock file (see dirlock.h). */
#include "dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "err.h"

/* holder_pid reads the pid the holder wrote; 0 if unknown. */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
    char *end;
    long pid;

    if (k <= 0)
        return 0;
    buf[k] = '\0';
    pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

int dirlock_take(const char *dir, int *fd, char *err, size_t errlen)
{
    char path[4096], pid[32];
    int f, rc, len;

    *fd = -1;
    if (snprintf(path, sizeof path, "%s/lock", dir) >= (int)sizeof path) {
        snprintf(err, errlen, "%s: state directory path too long", dir);
        return XE_INVAL;
    }
    f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (f < 0 && errno == EROFS) {
        /* The first write a node makes: say what is wrong with the
         * directory, not with a file in it. */
        snprintf(err, errlen,
                 "state directory %s is on a read-only file system: xmppd writes "
                 "its state there; mount it read-write, or give --state-dir a "
                 "writable directory",
                 dir);
        return XE_IO;
    }
    if (f < 0) {
        snprintf(err, errlen,
                 "%s: cannot open: %s (check the state directory's owner "
                 "and mode)",
                 path, strerror(errno));
        return XE_IO;
    }
    /* Non-blocking: a second daemon says so at once instead of waiting. */
    while ((rc = flock(f, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        long holder = errno == EWOULDBLOCK ? holder_pid(f) : 0;
        if (errno != EWOULDBLOCK)
            snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
        else if (holder > 0)
            snprintf(err, errlen,
                     "state directory %s is in use by another xmppd (pid %ld); "
                     "stop it first, or give this one its own --state-dir",
                     dir, holder);
        else
            snprintf(err, errlen,
                     "state directory %s is in use by another xmppd; stop it "
                     "first, or give this one its own --state-dir",
                     dir);
        rc = errno == EWOULDBLOCK ? XE_BUSY : XE_IO;
        goto err;
    }
    /* The pid is only a hint for the next one's message: failing to write
     * it does not stop this daemon. */
    len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) == 0 && pwrite(f, pid, (size_t)len, 0) != len)
        (void)ftruncate(f, 0);
    *fd = f;
    return 0;
err:
    close(f);
    return rc;
}

void dirlock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
