/* metrics_req.c: one HTTP request to the metrics endpoint (contract in
 * metrics_req.h). */
#include "metrics_req.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct metrics_req *r = p->data;

    if (r->cut)
        return 0;
    /* The path ends at the query (RFC 3986 §3.4): it is ignored. */
    for (size_t i = 0; i < n; i++) {
        if (at[i] == '?' || at[i] == '#') {
            r->cut = true;
            n = i;
            break;
        }
    }
    if (r->path_len + n >= sizeof r->path) {
        r->path_long = true;
        return 0;
    }
    memcpy(r->path + r->path_len, at, n);
    r->path_len += n;
    r->path[r->path_len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    /* 1: no body expected; a GET carries none we would read. */
    (void)p;
    return 1;
}

static int on_message_complete(http_parser *p)
{
    struct metrics_req *r = p->data;

    r->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void metrics_req_init(struct metrics_req *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->hp, HTTP_REQUEST);
    r->hp.data = r;
}

static enum metrics_verdict verdict(const struct metrics_req *r)
{
    if (r->hp.method != HTTP_GET && r->hp.method != HTTP_HEAD)
        return METRICS_METHOD;
    if (r->path_long || strcmp(r->path, "/metrics") != 0)
        return METRICS_NOT_FOUND;
    return METRICS_OK;
}

enum metrics_verdict metrics_req_feed(struct metrics_req *r, const char *data, size_t n)
{
    size_t room, got;

    if (r->done)
        return verdict(r);
    if (HTTP_PARSER_ERRNO(&r->hp) != HPE_OK)
        return METRICS_BAD;
    room = METRICS_REQ_MAX - r->consumed;
    if (n > room)
        n = room;
    got = http_parser_execute(&r->hp, &settings, data, n);
    r->consumed += got;
    if (r->done)
        return verdict(r);
    if (HTTP_PARSER_ERRNO(&r->hp) != HPE_OK || got < n)
        return METRICS_BAD;
    if (r->consumed >= METRICS_REQ_MAX)
        return METRICS_TOO_LARGE;
    return METRICS_MORE;
}

bool metrics_req_head_only(const struct metrics_req *r)
{
    return r->done && r->hp.method == HTTP_HEAD;
}

int metrics_req_head(enum metrics_verdict v, size_t body_len, char *out, size_t len)
{
    const char *reason = v == METRICS_OK          ? "OK"
                         : v == METRICS_NOT_FOUND ? "Not Found"
                         : v == METRICS_METHOD    ? "Method Not Allowed"
                         : v == METRICS_TOO_LARGE ? "Request Header Fields Too Large"
                                                  : "Bad Request";
    int n = snprintf(out, len,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Cache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n",
                     v == METRICS_MORE ? 400 : (int)v, reason,
                     v == METRICS_OK ? "text/plain; version=0.0.4; charset=utf-8"
                                     : "text/plain; charset=utf-8",
                     body_len, v == METRICS_METHOD ? "Allow: GET, HEAD\r\n" : "");

    if (n < 0 || (size_t)n >= len)
        return XE_LIMIT;
    return n;
}
