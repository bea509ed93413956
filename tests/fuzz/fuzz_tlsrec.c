/* fuzz_tlsrec.c: libFuzzer target for the TLS 1.3 record layer after the
 * handshake (xmppd/io/tlsrec.c).
 *
 * Two record layers face each other on fixed secrets; the input is a
 * script.  Byte 0 picks the suite.  Then each step is an op byte and a
 * length byte: op & 1 seals the next len bytes as one record from the peer
 * (content type and padding from the op byte, so the parser's inner
 * plaintext checks are reached), else the next len bytes go in raw; either
 * way they are fed in pieces of 1 + (op >> 1 & 7) bytes.  Oracles: the
 * feed returns only its documented codes, a failure is sticky and says why,
 * nothing is delivered after a failure or a close. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tlsrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                      \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "fuzz_tlsrec: check failed: %s\n", #c);                      \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static const uint8_t ctypes[8] = {23, 23, 22, 21, 20, 0, 24, 255};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t suites[3] = {0x1301, 0x1302, 0x1303};
    unsigned char s1[48], s2[48];
    struct tlsrec *a = NULL, *b = NULL;
    struct buf plain = {0}, out = {0}, rec = {0};
    char err[256] = "";
    size_t i = 1, slen;
    int last = 0;

    if (size < 1)
        return 0;
    memset(s1, 0x11, sizeof s1);
    memset(s2, 0x22, sizeof s2);
    FZ_CHECK(tlsrec_suite_ok(suites[data[0] % 3], &slen));
    FZ_CHECK(tlsrec_new(suites[data[0] % 3], s1, s2, slen, &a) == 0);
    FZ_CHECK(tlsrec_new(suites[data[0] % 3], s2, s1, slen, &b) == 0);
    while (i + 2 <= size) {
        uint8_t op = data[i], len = data[i + 1];
        size_t piece = 1 + (op >> 1 & 7), before;
        const uint8_t *p = data + i + 2;

        i += 2;
        if (len > size - i)
            len = (uint8_t)(size - i);
        i += len;
        buf_reset(&rec);
        if (op & 1) {
            if (tlsrec__seal(b, ctypes[op >> 4 & 7], p, len, op >> 7 ? 300 : 0, &rec) < 0)
                continue;
        } else if (buf_append(&rec, p, len) < 0) {
            break;
        }
        for (size_t off = 0; off < rec.len; off += piece) {
            size_t n = rec.len - off < piece ? rec.len - off : piece;
            before = plain.len;
            last = tlsrec_feed(a, rec.data + off, n, &plain, &out, err, sizeof err);
            FZ_CHECK(last == 0 || last == XE_TLS || last == XE_CLOSED ||
                     last == XE_NOMEM);
            if (last == XE_TLS) {
                FZ_CHECK(tlsrec_failed(a));
                FZ_CHECK(err[0] != '\0');
            }
            if (last < 0)
                FZ_CHECK(plain.len >= before);
        }
        if (last == XE_TLS || last == XE_CLOSED) {
            size_t had = plain.len;
            FZ_CHECK(tlsrec_feed(a, "x", 1, &plain, &out, err, sizeof err) == last);
            FZ_CHECK(plain.len == had);
            break;
        }
    }
    /* Whatever a sent (alerts, KeyUpdate) is well-formed for b. */
    if (out.len > 0) {
        struct buf bplain = {0}, bout = {0};
        int rc = tlsrec_feed(b, out.data, out.len, &bplain, &bout, err, sizeof err);
        FZ_CHECK(rc == 0 || rc == XE_CLOSED || (rc == XE_TLS && strstr(err, "alert")));
        buf_free(&bplain);
        buf_free(&bout);
    }
    tlsrec_free(a);
    tlsrec_free(b);
    buf_free(&plain);
    buf_free(&out);
    buf_free(&rec);
    return 0;
}
