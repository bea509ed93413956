/* test_metrics_req.c: requests to the metrics endpoint
 * (xmppd/core/metrics_req.h). */
#include "testlib.h"

#include "err.h"
#include "metrics_req.h"

#include <string.h>

static enum metrics_verdict feed(const char *req)
{
    struct metrics_req r;

    metrics_req_init(&r);
    return metrics_req_feed(&r, req, strlen(req));
}

static void test_get(void)
{
    CHECK_INT(feed("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), METRICS_OK);
    CHECK_INT(feed("GET /metrics?name[]=a HTTP/1.0\r\n\r\n"), METRICS_OK);
    CHECK_INT(feed("HEAD /metrics HTTP/1.1\r\n\r\n"), METRICS_OK);
    CHECK_INT(feed("GET / HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    CHECK_INT(feed("GET /metricsx HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    CHECK_INT(feed("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
              METRICS_METHOD);
    CHECK_INT(feed("\x16\x03\x01\x02\x00"), METRICS_BAD);
}

/* Byte by byte: MORE until the blank line. */
static void test_split(void)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9105\r\n\r\n";
    struct metrics_req r;
    size_t n = strlen(req);

    metrics_req_init(&r);
    for (size_t i = 0; i + 1 < n; i++)
        CHECK_INT(metrics_req_feed(&r, req + i, 1), METRICS_MORE);
    CHECK_INT(metrics_req_feed(&r, req + n - 1, 1), METRICS_OK);
    CHECK(!metrics_req_head_only(&r));
}

static void test_too_large(void)
{
    char big[METRICS_REQ_MAX + 64];
    struct metrics_req r;
    size_t n;

    n = (size_t)snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\n");
    while (n + 12 < sizeof big)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-Pad: aa\r\n");
    metrics_req_init(&r);
    CHECK_INT(metrics_req_feed(&r, big, n), METRICS_TOO_LARGE);
    /* A long path is not /metrics, and never overflows. */
    memset(big, 'a', 300);
    memcpy(big, "GET /", 5);
    snprintf(big + 300, sizeof big - 300, " HTTP/1.1\r\n\r\n");
    CHECK_INT(feed(big), METRICS_NOT_FOUND);
}

static void test_head(void)
{
    char out[512], tiny[16];
    int n = metrics_req_head(METRICS_OK, 123, out, sizeof out);

    REQUIRE(n > 0);
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
          NULL);
    CHECK(strstr(out, "Content-Length: 123\r\n") != NULL);
    CHECK(strstr(out, "Connection: close\r\n\r\n") != NULL);
    REQUIRE(metrics_req_head(METRICS_METHOD, 0, out, sizeof out) > 0);
    CHECK(strncmp(out, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    CHECK(strstr(out, "Allow: GET, HEAD\r\n") != NULL);
    CHECK_INT(metrics_req_head(METRICS_OK, 1, tiny, sizeof tiny), XE_LIMIT);
}

TL_MAIN(T(test_get), T(test_split), T(test_too_large), T(test_head))
