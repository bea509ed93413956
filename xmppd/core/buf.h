/* buf.h: a growable byte buffer, used for serialised XML and frames.
 *
 * A zeroed struct buf is an empty buffer.  data is always NUL-terminated when
 * len > 0 or after any append, so text can be read as a C string; binary
 * content may also contain NULs.  Appends fail only with XE_NOMEM and leave
 * the buffer as it was. */
#ifndef XMPPD_BUF_H
#define XMPPD_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data; /* owned; NULL while nothing was ever appended */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
};

/* buf_reserve makes room for extra more bytes (plus the NUL). */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* buf_consume drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b); /* len = 0, keeps the allocation */
void buf_free(struct buf *b);  /* frees and zeroes */
/* buf_steal returns the data as an owned NUL-terminated string (never NULL
 * unless out of memory) and leaves b empty. */
char *buf_steal(struct buf *b);

/* A writer into a caller's fixed array (p, len bytes, borrowed): text that
 * does not fit is not written and sets full, once and for good, so a
 * caller formats everything and checks full at the end.  Start with
 * {.p = array, .len = sizeof array}. */
struct buf_fixed {
    char *p;
    size_t len, used;
    bool full;
};
void buf_fixed_printf(struct buf_fixed *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
