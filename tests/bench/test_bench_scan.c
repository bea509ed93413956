/* test_bench_scan.c: unit tests of xmppd-bench's stream scanner and latency
 * histogram (the load tool's own parts; the tool itself is not a test). */
#include "bench.h"
#include "testlib.h"

static const char stream_in[] =
    "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:component:accept' "
    "from=\"a.b\" id='ab&amp;c'>  \n"
    "<handshake/> <!-- c --><message xmlns='jabber:component:accept' to='x' id='5'>"
    "<body>12:34:xx&lt;</body><x a='>'/><![CDATA[</message>]]></message>\n"
    "<iq type='get' id='p1' from='d'><ping xmlns='urn:xmpp:ping'/></iq>"
    "</stream:stream>";

/* Feeds stream_in in chunks of `chunk` bytes; returns the events seen. */
static int scan_in_chunks(size_t chunk, int *evs, char names[][32], int max)
{
    struct bench_scan s;
    struct bench_elem e;
    size_t len = strlen(stream_in), off = 0;
    int ne = 0, ev = 0;

    bench_scan_init(&s, 100000);
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (bench_scan_room(&s, n) < 0)
            break;
        memcpy(s.buf + s.len, stream_in + off, n);
        s.len += n;
        off += n;
        while ((ev = bench_scan_next(&s, &e)) > 0 && ne < max) {
            if (ev == BENCH_EV_END) {
                strcpy(names[ne], "END");
            } else {
                snprintf(names[ne], 32, "%.*s", (int)e.name_len, e.name);
            }
            if (ev == BENCH_EV_HEADER) {
                char id[32];
                CHECK_INT(bench_elem_attr(&e, "id", id, sizeof(id)), 4);
                CHECK_STR(id, "ab&c");
            }
            if (ev == BENCH_EV_STANZA && bench_elem_is(&e, "message")) {
                const char *t;
                char v[8];
                CHECK_INT(bench_elem_child_text(&e, "body", &t), 12);
                CHECK(memcmp(t, "12:34:", 6) == 0);
                CHECK_INT(bench_elem_attr(&e, "id", v, sizeof(v)), 1);
                CHECK_INT(bench_elem_attr(&e, "type", v, sizeof(v)), -1);
            }
            evs[ne++] = ev;
        }
        CHECK_INT(ev, BENCH_EV_MORE);
    }
    bench_scan_free(&s);
    return ne;
}

static void test_scan_any_chunking(void)
{
    for (size_t chunk = 1; chunk <= strlen(stream_in); chunk++) {
        int evs[8];
        char names[8][32];
        REQUIRE(scan_in_chunks(chunk, evs, names, 8) == 5);
        CHECK_INT(evs[0], BENCH_EV_HEADER);
        CHECK_INT(evs[1], BENCH_EV_STANZA);
        CHECK_INT(evs[2], BENCH_EV_STANZA);
        CHECK_INT(evs[3], BENCH_EV_STANZA);
        CHECK_INT(evs[4], BENCH_EV_END);
        CHECK_STR(names[1], "handshake");
        CHECK_STR(names[2], "message");
        CHECK_STR(names[3], "iq");
    }
}

static void test_scan_refuses_dtd_and_oversize(void)
{
    struct bench_scan s;
    struct bench_elem e;
    static const char dtd[] = "<!DOCTYPE x [<!ENTITY a 'b'>]>";
    static const char big[] = "<message><body>0123456789012345678901234567890123456789";

    bench_scan_init(&s, 32);
    REQUIRE(bench_scan_room(&s, sizeof(dtd)) == 0);
    memcpy(s.buf, dtd, sizeof(dtd) - 1);
    s.len = sizeof(dtd) - 1;
    CHECK_INT(bench_scan_next(&s, &e), -1);
    bench_scan_free(&s);

    bench_scan_init(&s, 32);
    REQUIRE(bench_scan_room(&s, sizeof(big)) == 0);
    memcpy(s.buf, big, sizeof(big) - 1);
    s.len = sizeof(big) - 1;
    CHECK_INT(bench_scan_next(&s, &e), -1);
    bench_scan_free(&s);
}

static void test_hist_quantiles(void)
{
    static struct bench_hist h;
    memset(&h, 0, sizeof(h));
    CHECK_INT(bench_hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 1; v <= 100000; v++)
        bench_hist_add(&h, v * 1000);
    uint64_t p50 = bench_hist_quantile(&h, 0.5), p99 = bench_hist_quantile(&h, 0.99);
    CHECK(p50 > 50000000ull * 63 / 64 && p50 < 50000000ull * 65 / 64);
    CHECK(p99 > 99000000ull * 63 / 64 && p99 < 99000000ull * 65 / 64);
    CHECK_INT(bench_hist_quantile(&h, 1.0), 100000000);
    bench_hist_add(&h, 7);
    CHECK_INT(h.min, 7);
}

TL_MAIN(T(test_scan_any_chunking), T(test_scan_refuses_dtd_and_oversize),
        T(test_hist_quantiles))
