/* conffile.h: reading <state-dir>/xmppd.conf from disk.
 *
 * The file holds call-bridge secrets, so it must be a regular file with no
 * group or other permission bits (0600 or stricter); anything else is
 * refused with a message that names the file, its mode and the fix.  The
 * text is read into sodium-guarded memory, parsed by conf_parse (format in
 * xmppd/core/conffile_parse.h) and wiped. */
#ifndef XMPPD_CONFFILE_H
#define XMPPD_CONFFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "conffile_parse.h"

#define CONFFILE_NAME "xmppd.conf"
#define CONFFILE_MAX_BYTES (1024 * 1024)

/* conffile_load reads and parses path into *out (owned by the caller, to be
 * released with conf_free).  On failure *out is left empty and err receives
 * one line without a trailing newline, such as "<path>:<line>: <what>" or
 * "<path>: mode 0644 is too open ...".  Returns 0, XE_IO (cannot open or
 * read), XE_PERM (mode too open), XE_CORRUPT (malformed or not a regular
 * file) or XE_NOMEM.  sodium_init() must have succeeded. */
int conffile_load(const char *path, struct conf *out, char *err, size_t errlen);

/* conffile_read_private reads the whole of path, which must be a regular
 * file of at most max bytes with no group or other permission bits, into
 * *text: sodium_malloc memory, NUL-terminated after *len bytes, returned
 * owned (release with sodium_free).  holds_secrets adds "it holds secrets"
 * to the mode message; too_big_hint (may be NULL) is appended to the size
 * message.  Never blocks on a FIFO.  On failure *text is NULL and err gets
 * one line naming the file and the fix.  Returns 0, XE_NOTFOUND (no such
 * file), XE_IO, XE_PERM (mode too open), XE_CORRUPT (not a regular file, or
 * too large) or XE_NOMEM.  sodium_init() must have succeeded. */
int conffile_read_private(const char *path, size_t max, bool holds_secrets,
                          const char *too_big_hint, char **text, size_t *len, char *err,
                          size_t errlen);

#endif
