/* bytecur.h: the byte cursor of the codecs: a reader over borrowed bytes
 * and a writer, for the replicated state's formats (repl_codec.c, roster_db.c:
 * little-endian), the peer frames (pframe.c: big-endian, RFC 1700's
 * network order) and the control protocol's length prefix (ctl.c).  One copy;
 * header-only, since each is a few lines that the compilers inline.  raft/codec.c keeps
 * its own: raft/ is a library that depends on nothing of xmppd.
 *
 * Reader: a cursor over borrowed bytes; reading past the end sets bad (and
 * every later read returns NULL or 0), so a decoder checks once.  Writer:
 * with p NULL it only counts (the first pass sizes the buffer). */
#ifndef XMPPD_BYTECUR_H
#define XMPPD_BYTECUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct rd {
    const unsigned char *p;
    size_t left;
    bool bad;         /* ran past the end */
    unsigned version; /* the format version being read, for codecs that
                         have one (pframe: the frame's); 0 otherwise */
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

/* rd_ord reads a size-byte (1..8) unsigned integer, big-endian (most
 * significant byte first) or little-endian. */
static inline uint64_t rd_ord(struct rd *r, unsigned size, bool big)
{
    const unsigned char *p = rd_bytes(r, size);
    uint64_t v = 0;

    if (p == NULL)
        return 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * (big ? size - 1 - i : i));
    return v;
}

/* rd_uint reads a size-byte (1..8) little-endian unsigned integer. */
static inline uint64_t rd_uint(struct rd *r, unsigned size)
{
    return rd_ord(r, size, false);
}

/* rd_be reads a size-byte (1..8) big-endian unsigned integer. */
static inline uint64_t rd_be(struct rd *r, unsigned size)
{
    return rd_ord(r, size, true);
}

/* rd_be32_at reads the big-endian 32-bit number at p (4 readable bytes):
 * the length prefix of the peer frames and of the control protocol, read
 * before the frame is whole. */
static inline uint32_t rd_be32_at(const unsigned char *p)
{
    struct rd r = {.p = p, .left = 4};

    return (uint32_t)rd_be(&r, 4);
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

/* wr_encode runs put over obj twice: once only counting, once into a
 * buffer of the size counted, which *out then owns (*len bytes).  0, or
 * XE_NOMEM with *out NULL.  put must write the same bytes both times. */
static inline int wr_encode(void (*put)(struct wr *w, const void *obj), const void *obj,
                            unsigned char **out, size_t *len)
{
    struct wr w = {0};

    *out = NULL;
    *len = 0;
    put(&w, obj);
    w.p = malloc(w.len > 0 ? w.len : 1);
    if (w.p == NULL)
        return XE_NOMEM;
    w.len = 0;
    put(&w, obj);
    *out = w.p;
    *len = w.len;
    return 0;
}

#endif
