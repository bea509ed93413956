/* metrics_http.h: the Prometheus endpoint's socket (docs/admin.md
 * "Metrics").
 *
 * A TCP listener on one address; each connection gets one answer
 * (core/metrics_req.h decides it) and is closed.  Bounded: at most
 * METRICS_HTTP_MAX_CONNS connections at a time (more are closed at
 * accept), each closed METRICS_HTTP_TIMEOUT_MS after it was accepted
 * whether or not its request came whole, and the request may not exceed
 * METRICS_REQ_MAX bytes.  Plain HTTP: keep it on loopback or a management
 * network. */
#ifndef XMPPD_METRICS_HTTP_H
#define XMPPD_METRICS_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "conffile_parse.h"
#include "logging.h"

#define METRICS_HTTP_MAX_CONNS 8
#define METRICS_HTTP_TIMEOUT_MS 5000
#define METRICS_HTTP_MAX_BODY (256 * 1024)

/* metrics_fill_fn writes the exposition text into out (len bytes); returns
 * its length, or a negative XE_ code (the connection is then closed
 * without an answer, and the failure logged). */
typedef int (*metrics_fill_fn)(void *ud, char *out, size_t len);

struct metrics_http;

/* metrics_http_start listens on addr (borrowed) and answers scrapes with
 * what fill(ud, ...) writes at each request.  log is borrowed and must
 * outlive the server.  0 with *out owned, or XE_IO with err filled (one
 * line: the address and why). */
int metrics_http_start(uv_loop_t *loop, const struct conf_listen *addr,
                       metrics_fill_fn fill, void *ud, const struct log_sink *log,
                       struct metrics_http **out, char *err, size_t errlen);

/* metrics_http_stop closes the listener and every connection; the memory
 * is freed once libuv has closed them (run the loop).  NULL: no-op. */
void metrics_http_stop(struct metrics_http *m);

#endif
