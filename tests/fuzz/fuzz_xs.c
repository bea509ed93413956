/* fuzz_xs.c: libFuzzer target for the stream framer (xs) and serializer.
 *
 * Input: byte 0 picks the limits and the chunking, the rest is the stream.
 * Oracles beyond "no crash, no leak, no UB":
 *  - chunking: feeding in the chosen chunk sizes gives the same events as
 *    feeding everything at once (xs.h: any chunking);
 *  - round trip: every element serializes, and the serialization parses back
 *    to an element that serializes identically;
 *  - received bytes: an element that kept them (struct stz's raw) parses
 *    back from them, alone in a content-namespace stream, to the same tree;
 *  - lazy trees: the events of a lazy framer (the default) are those of an
 *    eager one (xs_set_eager), trees compared as built on first access
 *    (a lazy element's copy, and the element itself after stz_expand);
 *  - memory: expat never holds more than the framer's cap. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "stz.h"
#include "xs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                      \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "fuzz_xs: check failed: %s\n", #c);                          \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static const char fz_hdr[] = "<stream:stream xmlns='jabber:component:accept' "
                             "xmlns:stream='http://etherx.jabber.org/streams'>";

/* fz_roundtrip checks parse(serialize(el)) serializes as serialize(el). */
static void fz_roundtrip(const char *text)
{
    /* the serialization may be larger (escapes, xmlns declarations on each
     * element): parse it back without limits that matter */
    struct xs_limits big = {
        .max_stanza_bytes = 64u << 20, .max_depth = 100000, .max_attrs = 100000};
    struct xs *xs;
    struct xs_event ev;
    struct buf again = {0};
    int elems = 0;

    FZ_CHECK(xs_new(&big, &xs) == 0);
    FZ_CHECK(xs_feed(xs, fz_hdr, strlen(fz_hdr)) == 0);
    FZ_CHECK(xs_feed(xs, text, strlen(text)) == 0);
    while (xs_next(xs, &ev)) {
        FZ_CHECK(ev.kind != XS_EV_ERROR && ev.kind != XS_EV_CLOSE);
        if (ev.kind == XS_EV_ELEM) {
            elems++;
            FZ_CHECK(stz_serialize(ev.el, STZ_NS_COMPONENT, &again) == 0);
            FZ_CHECK(strcmp(again.data, text) == 0);
        }
        stz_free(ev.el);
    }
    FZ_CHECK(elems == 1);
    buf_free(&again);
    xs_free(xs);
}

/* fz_tree serializes a copy of el's tree, not its received bytes (owned):
 * below no default namespace the serializer writes the tree, built first
 * when it is lazy. */
static char *fz_tree(const struct stz *el)
{
    struct stz *c = stz_copy(el);
    struct buf b = {0};

    FZ_CHECK(c != NULL && stz_is_lazy(c) == stz_is_lazy(el));
    FZ_CHECK(stz_serialize(c, "", &b) == 0);
    stz_free(c);
    return buf_steal(&b);
}

/* fz_raw checks that el's received bytes stand alone: parsed in a fresh
 * component stream they give the tree el is. */
static void fz_raw(const struct stz *el)
{
    struct xs_limits big = {
        .max_stanza_bytes = 64u << 20, .max_depth = 100000, .max_attrs = 100000};
    struct xs *xs;
    struct xs_event ev;
    char *want = fz_tree(el), *got = NULL;
    int elems = 0;

    FZ_CHECK(xs_new(&big, &xs) == 0);
    FZ_CHECK(xs_feed(xs, fz_hdr, strlen(fz_hdr)) == 0);
    FZ_CHECK(xs_feed(xs, el->raw, el->raw_len) == 0);
    while (xs_next(xs, &ev)) {
        FZ_CHECK(ev.kind != XS_EV_ERROR && ev.kind != XS_EV_CLOSE);
        if (ev.kind == XS_EV_ELEM) {
            elems++;
            got = fz_tree(ev.el);
        }
        stz_free(ev.el);
    }
    FZ_CHECK(elems == 1 && strcmp(got, want) == 0);
    free(got);
    free(want);
    xs_free(xs);
}

/* fz_lazy appends el's tree to t, built as a reader of it would build it:
 * in a copy, and in el itself (which must then equal the copy). */
static void fz_lazy(struct buf *t, struct stz *el)
{
    char *copy = fz_tree(el), *self;

    FZ_CHECK(stz_expand(el) == 0 && !stz_is_lazy(el));
    self = fz_tree(el);
    FZ_CHECK(strcmp(copy, self) == 0);
    buf_puts(t, " tree ");
    buf_puts(t, self);
    free(copy);
    free(self);
}

/* fz_run feeds data in chunks (chunk 0: all at once) and returns the event
 * transcript (owned); eager: the framer builds whole trees. */
static char *fz_run(const struct xs_limits *lim, const uint8_t *data, size_t size,
                    size_t chunk, int roundtrip, bool eager)
{
    struct xs *xs;
    struct xs_event ev;
    struct buf t = {0}, s = {0};
    size_t off = 0, peak = 0;
    int ended = 0;

    FZ_CHECK(xs_new(lim, &xs) == 0);
    xs_set_eager(xs, eager);
    if (chunk == 0)
        chunk = size ? size : 1;
    while (off < size && !ended) {
        size_t n = size - off < chunk ? size - off : chunk;

        FZ_CHECK(xs_feed(xs, data + off, n) == 0);
        off += n;
        while (xs_next(xs, &ev)) {
            buf_printf(&t, "%d ", (int)ev.kind);
            if (ev.kind == XS_EV_ERROR)
                buf_puts(&t, xs_cond_name(ev.cond));
            if (ev.el != NULL && ev.el->raw != NULL)
                fz_raw(ev.el);
            if (ev.el != NULL) {
                buf_reset(&s);
                FZ_CHECK(stz_serialize(ev.el, STZ_NS_COMPONENT, &s) == 0);
                buf_append(&t, s.data, s.len);
                if (roundtrip && ev.kind == XS_EV_ELEM)
                    fz_roundtrip(s.data);
                if (ev.kind == XS_EV_ELEM)
                    fz_lazy(&t, ev.el);
            }
            buf_puts(&t, "\n");
            ended = ev.kind == XS_EV_ERROR || ev.kind == XS_EV_CLOSE;
            stz_free(ev.el);
        }
    }
    if (ended)
        FZ_CHECK(xs_feed(xs, "x", 1) == XE_STATE);
    /* expat's memory and the trees share one cap (xs.h). */
    xs_parser_mem(xs, NULL, &peak);
    FZ_CHECK(peak <= XS_MEM_CAP(lim->max_stanza_bytes));
    xs_tree_mem(xs, NULL, &peak);
    FZ_CHECK(peak <= XS_MEM_CAP(lim->max_stanza_bytes));
    buf_free(&s);
    xs_free(xs);
    return buf_steal(&t);
}

/* fz_same_but_bad_format accepts the one documented chunking dependence
 * (xs.h): character data at stream level directly followed by malformed XML
 * may end as bad-format in one chunking and as the XML error in another,
 * because expat reports text early or late.  Everything before the final
 * error line must be equal. */
static int fz_same_but_bad_format(const char *a, const char *b)
{
    const char *la = strrchr(a, '\n'), *lb = strrchr(b, '\n');
    size_t pa, pb;

    if (la == NULL || lb == NULL)
        return 0;
    while (la > a && la[-1] != '\n')
        la--;
    while (lb > b && lb[-1] != '\n')
        lb--;
    pa = (size_t)(la - a);
    pb = (size_t)(lb - b);
    if (pa != pb || memcmp(a, b, pa) != 0 || la[0] != '3' || lb[0] != '3')
        return 0;
    return strstr(la, "bad-format") != NULL || strstr(lb, "bad-format") != NULL;
}

/* fz_error_held_back accepts the other documented difference (xs.c): while
 * expat sits in a long unfinished token, bytes are held back until they
 * could end it or double it, so an error that expat would find in the middle
 * of such a token (an invalid character) comes only with later bytes.  The
 * split run must then be the whole run minus its final ERROR line. */
static int fz_error_held_back(const char *whole, const char *split)
{
    size_t n = strlen(split);

    return strncmp(whole, split, n) == 0 && strncmp(whole + n, "3 ", 2) == 0 &&
           strchr(whole + n, '\n') == whole + strlen(whole) - 1 &&
           strstr(split, "\n3 ") == NULL && strncmp(split, "3 ", 2) != 0 &&
           strstr(split, "\n2") == NULL && strncmp(split, "2", 1) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xs_limits lim;
    size_t chunks[] = {1, 2, 3, 7, 16, 61, 512, 4096};
    char *whole, *split, *eager;
    uint8_t sel;

    if (size < 1)
        return 0;
    sel = data[0];
    data++;
    size--;
    xs_limits_default(&lim);
    if (sel & 0x80) {
        /* small limits, so the fuzzer reaches them */
        lim.max_stanza_bytes = 64 + (sel & 0x0f) * 64;
        lim.max_depth = 1 + (sel & 0x07);
        lim.max_attrs = 1 + ((sel >> 3) & 0x07);
    }
    whole = fz_run(&lim, data, size, 0, 1, false);
    split = fz_run(&lim, data, size, chunks[(sel >> 4) & 0x07], 0, false);
    eager = fz_run(&lim, data, size, 0, 0, true);
    if (strcmp(whole, eager) != 0) {
        fprintf(stderr, "fuzz_xs: the lazy tree differs\nlazy:\n%s\neager:\n%s\n", whole,
                eager);
        abort();
    }
    free(eager);
    if (strcmp(whole, split) != 0 && !fz_same_but_bad_format(whole, split) &&
        !fz_error_held_back(whole, split)) {
        fprintf(stderr, "fuzz_xs: chunking changed the events\nwhole:\n%s\nsplit:\n%s\n",
                whole, split);
        abort();
    }
    free(whole);
    free(split);
    return 0;
}
