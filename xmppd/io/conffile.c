/* conffile.c: reading the configuration file with its permission check. */
#include "conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"

int conffile_load(const char *path, struct conf *out, char *err, size_t errlen)
{
    struct conf_error perr;
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int fd, rc;

    memset(out, 0, sizeof *out);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return XE_IO;
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
    /* The file holds shared secrets: nobody but its owner may read it. */
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "%s: mode %04o is too open (it holds secrets; group and others "
                 "must have no access); fix with: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
        rc = XE_PERM;
        goto out;
    }
    if (st.st_size > CONFFILE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFFILE_MAX_BYTES);
        rc = XE_CORRUPT;
        goto out;
    }
    text = sodium_malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = XE_NOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, text + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: read failed: %s", path, strerror(errno));
            rc = XE_IO;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    rc = conf_parse(text, len, out, &perr);
    if (rc == XE_CORRUPT)
        snprintf(err, errlen, "%s:%u: %s", path, perr.line, perr.msg);
    else if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, xe_strerror(rc));

out:
    if (text != NULL)
        sodium_free(text);
    close(fd);
    return rc;
}
