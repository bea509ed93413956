/* iofix.h: fixtures shared by the tests/io tests (header only, so each
 * test_*.c stays one executable): a free loopback port, a temporary
 * directory with certificates made by the certs/ scripts, paths in it, and
 * its removal. */
#ifndef XMPPD_TESTS_IO_IOFIX_H
#define XMPPD_TESTS_IO_IOFIX_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

/* iofix_free_port returns a TCP port on 127.0.0.1 that was free a moment
 * ago (bound and released), or -1. */
static inline int iofix_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        port = -1;
    else
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* iofix_path returns "dir/name" in one of 16 static buffers that are
 * reused in turn (so up to 16 results may be held at once). */
static inline const char *iofix_path(const char *dir, const char *name)
{
    static char p[16][512];
    static int i;

    i = (i + 1) % 16;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

/* iofix_pki makes dir (a caller's buffer of cap bytes, empty the first
 * time) a new directory /tmp/xmppd-test-<tag>-XXXXXX and runs steps, a
 * shell script in which $S is the source tree's certs/ and $D is dir (for
 * example "$S/mkca $D 'Test CA 1';"), quietly and stopping at the first
 * failure.  Once dir is set it does nothing.  Returns whether all went
 * well. */
static inline bool iofix_pki(char *dir, size_t cap, const char *tag, const char *steps)
{
    char cmd[2048];
    int n;

    if (dir[0] != '\0')
        return true;
    snprintf(dir, cap, "/tmp/xmppd-test-%s-XXXXXX", tag);
    if (mkdtemp(dir) == NULL)
        return false;
    n = snprintf(cmd, sizeof cmd, "set -e; S=%s/certs; D=%s; exec >/dev/null 2>&1;%s",
                 XMPPD_SOURCE_DIR, dir, steps);
    return n > 0 && (size_t)n < sizeof cmd && system(cmd) == 0;
}

/* iofix_rmdir removes dir and all below it (nothing when dir is empty);
 * returns false, after saying so on stderr, when that failed. */
static inline bool iofix_rmdir(const char *dir)
{
    char cmd[512];

    if (dir[0] == '\0')
        return true;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) == 0)
        return true;
    fprintf(stderr, "could not remove %s\n", dir);
    return false;
}

#endif
