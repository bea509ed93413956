/* metrics_req.h: the HTTP side of the metrics endpoint, without a socket.
 *
 * One request per connection (HTTP/1.1 without keep-alive, RFC 9112 §9.6:
 * every answer says "Connection: close"): metrics_req_feed takes the bytes
 * a scraper sends, parsed by http_parser within METRICS_REQ_MAX bytes, and
 * says what to answer; metrics_req_head writes the status line and header
 * fields of that answer.  Only GET (and HEAD) of /metrics is served
 * (Prometheus's default metrics_path); a query string is ignored. */
#ifndef XMPPD_METRICS_REQ_H
#define XMPPD_METRICS_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

#define METRICS_REQ_MAX 8192 /* request line and header fields, in bytes */

/* What to answer (the HTTP status code, RFC 9110 §15), or MORE. */
enum metrics_verdict {
    METRICS_MORE = 0,        /* the request is not whole yet: read on */
    METRICS_OK = 200,        /* GET /metrics: send the exposition text */
    METRICS_BAD = 400,       /* malformed */
    METRICS_NOT_FOUND = 404, /* another path */
    METRICS_METHOD = 405,    /* another method (Allow: GET, HEAD) */
    METRICS_TOO_LARGE = 431  /* the header exceeds METRICS_REQ_MAX */
};

struct metrics_req {
    http_parser hp;
    char path[64]; /* the request target's path, cut at '?' */
    size_t path_len;
    bool path_long; /* longer than path: not /metrics */
    bool cut;       /* the query began: the rest of the target is ignored */
    bool done;      /* the request is whole */
    size_t consumed;
};

/* metrics_req_init readies r for one request. */
void metrics_req_init(struct metrics_req *r);

/* metrics_req_feed parses n bytes (borrowed).  METRICS_MORE until the
 * request is whole or wrong, then the verdict; bytes after the request are
 * ignored.  The same verdict is returned again if fed more. */
enum metrics_verdict metrics_req_feed(struct metrics_req *r, const char *data, size_t n);

/* metrics_req_head_only is true for a HEAD request (answer without body). */
bool metrics_req_head_only(const struct metrics_req *r);

/* metrics_req_head writes the status line and header fields (ending with
 * the blank line) for verdict v and a body of body_len bytes into out (len
 * bytes, NUL terminated).  The 200 answer is text/plain; version=0.0.4
 * (the Prometheus text format).  Returns the length, or XE_LIMIT. */
int metrics_req_head(enum metrics_verdict v, size_t body_len, char *out, size_t len);

#endif
