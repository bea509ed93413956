/* fuzz_jid.c: libFuzzer target for JID parsing (RFC 7622).
 *
 * Oracles: a parsed JID has a valid prepared domain, formats to at most the
 * input's length, and parsing its canonical form gives an equal JID with the
 * same canonical form (preparation is idempotent). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                      \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "fuzz_jid: check failed: %s\n", #c);                         \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jid a, b;
    struct buf fa = {0}, fb = {0};
    char *s = malloc(size + 1);
    int rv;

    FZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    rv = jid_parse(s, &a);
    if (rv != 0) {
        FZ_CHECK(rv == XE_INVAL);
        FZ_CHECK(a.local == NULL && a.domain == NULL && a.resource == NULL);
        free(s);
        return 0;
    }
    FZ_CHECK(a.domain != NULL && jid_domain_valid(a.domain));
    FZ_CHECK(jid_domain_within(a.domain, a.domain));
    FZ_CHECK(jid_format(&a, &fa) == 0);
    FZ_CHECK(fa.len <= strlen(s));
    FZ_CHECK(jid_parse(fa.data, &b) == 0);
    FZ_CHECK(jid_equal(&a, &b));
    FZ_CHECK(jid_format(&b, &fb) == 0);
    FZ_CHECK(strcmp(fa.data, fb.data) == 0);
    jid_clear(&a);
    jid_clear(&b);
    buf_free(&fa);
    buf_free(&fb);
    free(s);
    return 0;
}
