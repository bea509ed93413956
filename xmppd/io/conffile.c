/* conffile.c: reading owner-only files from disk: the configuration file
 * (conffile_load) and, through conffile_read_private, the node state file
 * (node_state.c), with the same permission checks. */
#include "conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"

int conffile_read_private(const char *path, size_t max, bool holds_secrets,
                          const char *too_big_hint, char **text, size_t *len, char *err,
                          size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int fd, rc = 0;

    *text = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO in the file's place must not hang the loop (a SIGHUP
     * reload runs there); the regular-file check below refuses it. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? XE_NOTFOUND : XE_IO;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        rc = XE_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        rc = XE_CORRUPT;
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "%s: mode %04o is too open (%sgroup and others must have no access); "
                 "fix with: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777),
                 holds_secrets ? "it holds secrets; " : "", path);
        rc = XE_PERM;
        goto out;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes%s%s", path, max,
                 too_big_hint != NULL ? ": " : "",
                 too_big_hint != NULL ? too_big_hint : "");
        rc = XE_CORRUPT;
        goto out;
    }
    buf = sodium_malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = XE_NOMEM;
        goto out;
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: read failed: %s", path, strerror(errno));
            rc = XE_IO;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;

out:
    if (buf != NULL)
        sodium_free(buf);
    close(fd);
    return rc;
}

int conffile_load(const char *path, struct conf *out, char *err, size_t errlen)
{
    struct conf_error perr;
    char *text;
    size_t len;
    int rc;

    memset(out, 0, sizeof *out);
    /* The file holds shared secrets: nobody but its owner may read it. */
    rc = conffile_read_private(path, CONFFILE_MAX_BYTES, true, NULL, &text, &len, err,
                               errlen);
    if (rc < 0)
        return rc == XE_NOTFOUND ? XE_IO : rc;
    rc = conf_parse(text, len, out, &perr);
    if (rc == XE_CORRUPT)
        snprintf(err, errlen, "%s:%u: %s", path, perr.line, perr.msg);
    else if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, xe_strerror(rc));
    sodium_free(text);
    return rc;
}
