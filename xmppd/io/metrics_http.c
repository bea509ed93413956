/* metrics_http.c: the Prometheus endpoint's listener and connections
 * (contract in metrics_http.h).  Only bytes move here: what to answer is
 * core/metrics_req.c's, the text core/metrics.c's. */
#include "metrics_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics_req.h"

struct mconn {
    struct metrics_http *m;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct metrics_req req;
    char *resp; /* the answer being written (owned) */
    bool answered, closing;
    int open_handles; /* tcp and timer until both closed */
    struct mconn *next;
};

struct metrics_http {
    uv_tcp_t tcp;
    metrics_fill_fn fill;
    void *ud;
    const struct log_sink *log;
    char addr[96];
    struct mconn *conns;
    unsigned nconns;
    bool stopping, listener_closed;
};

static void maybe_free(struct metrics_http *m)
{
    if (m->stopping && m->listener_closed && m->conns == NULL)
        free(m);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct mconn *c = h->data;
    struct metrics_http *m = c->m;

    if (--c->open_handles > 0)
        return;
    for (struct mconn **pp = &m->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    m->nconns--;
    free(c->resp);
    free(c);
    maybe_free(m);
}

static void conn_close(struct mconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static void on_timeout(uv_timer_t *t)
{
    struct mconn *c = t->data;

    LOG(c->m->log, LOG_DEBUG, "metrics %s: a scrape timed out", c->m->addr);
    conn_close(c);
}

/* answer writes the answer to verdict v (with the metrics on 200) and
 * closes the connection once it is written. */
static void answer(struct mconn *c, enum metrics_verdict v)
{
    static const size_t head_max = 512;
    size_t cap = head_max + (v == METRICS_OK ? METRICS_HTTP_MAX_BODY : 64);
    char *buf = malloc(cap), *body;
    int blen = 0, hlen;
    uv_buf_t b;

    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (buf == NULL) {
        conn_close(c);
        return;
    }
    body = buf + head_max;
    if (v == METRICS_OK) {
        blen = c->m->fill(c->m->ud, body, METRICS_HTTP_MAX_BODY);
        if (blen < 0) {
            LOG(c->m->log, LOG_ERROR, "metrics %s: cannot format: %s", c->m->addr,
                xe_strerror(blen));
            free(buf);
            conn_close(c);
            return;
        }
    } else {
        blen = snprintf(body, 64, "%d\n", (int)v);
    }
    if (metrics_req_head_only(&c->req))
        blen = 0;
    hlen = metrics_req_head(v, (size_t)blen, buf, head_max);
    if (hlen < 0) {
        free(buf);
        conn_close(c);
        return;
    }
    /* The header goes right before the body: one write. */
    memmove(body - hlen, buf, (size_t)hlen);
    c->resp = buf;
    c->wr.data = c;
    b = uv_buf_init(body - hlen, (unsigned)(hlen + blen));
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char scratch[2048]; /* one loop thread; consumed in on_read */
    (void)h;
    (void)suggested;
    *b = uv_buf_init(scratch, sizeof scratch);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct mconn *c = s->data;
    enum metrics_verdict v;

    if (c->answered || c->closing)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    v = metrics_req_feed(&c->req, b->base, (size_t)nread);
    if (v != METRICS_MORE)
        answer(c, v);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct metrics_http *m = server->data;
    struct mconn *c;

    if (status < 0 || m->stopping)
        return;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->m = m;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = m->conns;
    m->conns = c;
    m->nconns++;
    metrics_req_init(&c->req);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    if (m->nconns > METRICS_HTTP_MAX_CONNS) {
        LOG(m->log, LOG_DEBUG, "metrics %s: more than %d scrapes at once, closing one",
            m->addr, METRICS_HTTP_MAX_CONNS);
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, METRICS_HTTP_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct metrics_http *m = h->data;

    m->listener_closed = true;
    maybe_free(m);
}

int metrics_http_start(uv_loop_t *loop, const struct conf_listen *addr,
                       metrics_fill_fn fill, void *ud, const struct log_sink *log,
                       struct metrics_http **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    struct metrics_http *m;
    int rc;

    *out = NULL;
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    m->fill = fill;
    m->ud = ud;
    m->log = log;
    conf_format_listen(addr, m->addr, sizeof m->addr);
    if (strchr(addr->host, ':') != NULL)
        rc = uv_ip6_addr(addr->host, addr->port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(addr->host, addr->port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        snprintf(err, errlen, "metrics address %s: %s", m->addr, uv_strerror(rc));
        free(m);
        return XE_INVAL;
    }
    uv_tcp_init(loop, &m->tcp);
    m->tcp.data = m;
    rc = uv_tcp_bind(&m->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->tcp, 16, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen for metrics on %s: %s", m->addr,
                 uv_strerror(rc));
        m->stopping = true;
        uv_close((uv_handle_t *)&m->tcp, on_listener_closed);
        return XE_IO;
    }
    LOG(log, LOG_INFO, "metrics: serving http://%s/metrics", m->addr);
    *out = m;
    return 0;
}

void metrics_http_stop(struct metrics_http *m)
{
    if (m == NULL || m->stopping)
        return;
    m->stopping = true;
    for (struct mconn *c = m->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&m->tcp, on_listener_closed);
}
