/* lebytes.h: the little-endian byte reader and writer of the replicated
 * state's formats (repl_codec.c: commands and snapshots; roster_db.c: roster
 * commands and snapshots).  One copy; header-only, since each is a few
 * lines that the compilers inline.
 *
 * Reader: a cursor over borrowed bytes; reading past the end sets bad (and
 * every later read returns NULL or 0), so a decoder checks once.  Writer:
 * with p NULL it only counts (the first pass sizes the buffer). */
#ifndef XMPPD_LEBYTES_H
#define XMPPD_LEBYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct rd {
    const unsigned char *p;
    size_t left;
    bool bad; /* ran past the end */
};

static inline const unsigned char *rd_bytes(struct rd *r, size_t n)
{
    const unsigned char *p;

    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

/* rd_uint reads a size-byte (1..8) little-endian unsigned integer. */
static inline uint64_t rd_uint(struct rd *r, unsigned size)
{
    const unsigned char *p = rd_bytes(r, size);
    uint64_t v = 0;

    if (p == NULL)
        return 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

struct wr {
    unsigned char *p; /* NULL: only count */
    size_t len;
};

static inline void wr_bytes(struct wr *w, const void *src, size_t n)
{
    if (w->p != NULL && n > 0)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static inline void wr_uint(struct wr *w, uint64_t v, unsigned size)
{
    unsigned char b[8];

    for (unsigned i = 0; i < size; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    wr_bytes(w, b, size);
}

#endif
