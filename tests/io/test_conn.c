/* test_conn.c: the connection manager (xmppd/io/conn.c) on real loopback
 * sockets, with a libuv client in the same loop: delivery (in slices of a
 * large read), flush before close, the write-queue bound, peer EOF, and
 * shutdown. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <uv.h>

#include "conn.h"
#include "err.h"
#include "iofix.h"
#include "testlib.h"

#define BIG (1024 * 1024)
#define HUGE (16 * 1024 * 1024)
/* What the client sends at once in the slice scenarios: one write that the
 * server's one 64 KiB read takes whole, a slice and a half. */
#define BLOCK (CONN_SLICE_BYTES * 3 / 2)

/* One scenario: the server side's record and a client. */
struct sc {
    uv_loop_t loop;
    struct conn_mgr *cm;
    int port;
    uv_tcp_t client;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t guard;
    bool timed_out, drained, client_closed, client_eof;
    bool client_order_bad; /* MODE_HUGE_REPLY_CLOSE, MODE_ECHO: a byte out of place */
    uint64_t opened_id;
    int opened, gone, gone_err;
    size_t server_got, client_got;
    int mode; /* what the server does with input */
    int busy_rc1, busy_rc2;
    int data_calls;        /* data hook calls */
    size_t data_max;       /* the longest one */
    int calls_after_close; /* MODE_CLOSE_FIRST: data calls after conn_close */
    char rbuf[65536];
};

enum {
    MODE_BIG_REPLY_CLOSE,
    MODE_HUGE_REPLY_CLOSE,
    MODE_BUSY,
    MODE_NOTHING,
    MODE_ECHO,        /* the client sends BLOCK; the server echoes every call */
    MODE_CLOSE_FIRST, /* the client sends BLOCK; the server closes at once */
};

/* pattern is the byte at offset i of what the client sends or expects. */
static char pattern(size_t i)
{
    return (char)('a' + i % 26);
}

static int h_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct sc *s = ud;
    static char chunk[600];

    s->opened++;
    s->opened_id = id;
    CHECK_INT(tag, 7);
    CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
    if (s->mode == MODE_BUSY) {
        s->busy_rc1 = conn_send(s->cm, id, chunk, sizeof chunk);
        s->busy_rc2 = conn_send(s->cm, id, chunk, sizeof chunk);
        conn_close(s->cm, id);
        conn_mgr_flush(s->cm);
    }
    return 0;
}

static void h_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct sc *s = ud;
    static char big[BIG];

    if (s->mode == MODE_CLOSE_FIRST && s->data_calls > 0)
        s->calls_after_close++;
    s->data_calls++;
    if (len > s->data_max)
        s->data_max = len;
    s->server_got += len;
    if (s->mode == MODE_ECHO) {
        CHECK_INT(conn_send(s->cm, id, bytes, len), 0);
        if (s->server_got == BLOCK)
            conn_close(s->cm, id);
        conn_mgr_flush(s->cm);
    }
    if (s->mode == MODE_CLOSE_FIRST) {
        conn_close(s->cm, id);
        conn_mgr_flush(s->cm);
    }
    if (s->mode == MODE_HUGE_REPLY_CLOSE && s->server_got >= 4) {
        /* More than a loopback socket takes at once: part is written at
         * once, the rest queued in libuv. */
        char *huge = malloc(HUGE);
        REQUIRE(huge != NULL);
        for (size_t i = 0; i < HUGE; i++)
            huge[i] = pattern(i);
        CHECK_INT(conn_send(s->cm, id, huge, HUGE), 0);
        free(huge);
        conn_close(s->cm, id);
        conn_mgr_flush(s->cm);
    }
    if (s->mode == MODE_BIG_REPLY_CLOSE && s->server_got >= 4) {
        memset(big, 'x', sizeof big);
        CHECK_INT(conn_send(s->cm, id, big, sizeof big), 0);
        conn_close(s->cm, id);
        /* Closed: no more writes. */
        CHECK_INT(conn_send(s->cm, id, "y", 1), XE_CLOSED);
        conn_mgr_flush(s->cm);
    }
}

static void h_gone(void *ud, uint64_t id, int err)
{
    struct sc *s = ud;

    s->gone++;
    s->gone_err = err;
    CHECK(id == s->opened_id);
    CHECK_INT(conn_send(s->cm, id, "z", 1), XE_CLOSED);
    /* Hooks may call back into the manager, shutdown included. */
    conn_mgr_shutdown(s->cm);
}

static void on_guard_closed(uv_handle_t *h)
{
}

static void h_drained(void *ud)
{
    struct sc *s = ud;

    s->drained = true;
    uv_close((uv_handle_t *)&s->guard, on_guard_closed);
}

static void on_client_closed(uv_handle_t *h)
{
    struct sc *s = h->data;

    s->client_closed = true;
    if (s->mode != MODE_NOTHING)
        conn_mgr_shutdown(s->cm);
}

static void c_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct sc *s = h->data;

    *b = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void c_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct sc *s = st->data;

    if (n > 0) {
        if (s->mode == MODE_HUGE_REPLY_CLOSE || s->mode == MODE_ECHO)
            for (ssize_t i = 0; i < n; i++)
                if (b->base[i] != pattern(s->client_got + (size_t)i))
                    s->client_order_bad = true;
        s->client_got += (size_t)n;
        return;
    }
    if (n < 0) {
        s->client_eof = true;
        uv_close((uv_handle_t *)&s->client, on_client_closed);
    }
}

static void c_written(uv_write_t *req, int status)
{
    CHECK_INT(status, 0);
}

static void c_connected(uv_connect_t *req, int status)
{
    struct sc *s = req->data;
    static char hello[] = "ping";
    static char block[BLOCK];
    uv_buf_t b = uv_buf_init(hello, 4);

    REQUIRE(status == 0);
    if (s->mode == MODE_NOTHING) {
        /* The peer goes away at once: the server sees EOF. */
        uv_close((uv_handle_t *)&s->client, on_client_closed);
        return;
    }
    if (s->mode == MODE_ECHO || s->mode == MODE_CLOSE_FIRST) {
        for (size_t i = 0; i < BLOCK; i++)
            block[i] = pattern(i);
        b = uv_buf_init(block, BLOCK);
    }
    uv_read_start((uv_stream_t *)&s->client, c_alloc, c_read);
    uv_write(&s->wreq, (uv_stream_t *)&s->client, &b, 1, c_written);
}

static void on_guard(uv_timer_t *t)
{
    struct sc *s = t->data;

    s->timed_out = true;
    uv_stop(&s->loop);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* run_scenario listens, connects one client and runs until drained. */
static void run_scenario(struct sc *s, int mode, size_t max_queued)
{
    struct conn_hooks hooks = {.ud = s,
                               .opened = h_opened,
                               .data = h_data,
                               .gone = h_gone,
                               .drained = h_drained};
    struct sockaddr_in a;
    char err[200];

    memset(s, 0, sizeof *s);
    s->mode = mode;
    REQUIRE(uv_loop_init(&s->loop) == 0);
    REQUIRE(conn_mgr_new(&s->loop, &hooks, NULL, "t", max_queued, &s->cm) == 0);
    s->port = iofix_free_port();
    REQUIRE(conn_listen(s->cm, "127.0.0.1", s->port, 7, err, sizeof err) == 0);
    uv_timer_init(&s->loop, &s->guard);
    s->guard.data = s;
    /* A hang detector, not a speed: a loaded or sanitized build is slow. */
    uv_timer_start(&s->guard, on_guard, 60000, 0);
    uv_tcp_init(&s->loop, &s->client);
    s->client.data = s;
    s->creq.data = s;
    uv_ip4_addr("127.0.0.1", s->port, &a);
    REQUIRE(uv_tcp_connect(&s->creq, &s->client, (struct sockaddr *)&a, c_connected) ==
            0);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    CHECK(!s->timed_out);
    CHECK(s->drained);
    CHECK_INT(conn_mgr_count(s->cm), 0);
    if (s->timed_out) {
        uv_walk(&s->loop, close_any, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    CHECK_INT(uv_loop_close(&s->loop), 0);
    conn_mgr_free(s->cm);
}

static void test_flush_before_close(void)
{
    static struct sc s;

    run_scenario(&s, MODE_BIG_REPLY_CLOSE, 0);
    CHECK_INT(s.opened, 1);
    CHECK_INT(s.server_got, 4);
    CHECK_INT(s.client_got, BIG);
    CHECK(s.client_eof);
    CHECK_INT(s.gone, 0); /* closed by the owner: no gone hook */
}

/* A write larger than the socket takes at once arrives whole and in
 * order (the part written at once, then the part libuv queued). */
static void test_partial_write(void)
{
    static struct sc s;

    run_scenario(&s, MODE_HUGE_REPLY_CLOSE, HUGE + 1024);
    CHECK_INT(s.opened, 1);
    CHECK_INT(s.client_got, HUGE);
    CHECK(!s.client_order_bad);
    CHECK(s.client_eof);
}

/* A read larger than CONN_SLICE_BYTES reaches the owner in slices, so that
 * what the owner queued for the first goes out before it parses the rest
 * (docs/benchmarks.md "Session 8: where one node waits"); the bytes come
 * whole and in order, and echoed slice by slice they go back the same. */
static void test_read_in_slices(void)
{
    static struct sc s;

    run_scenario(&s, MODE_ECHO, 0);
    CHECK_INT(s.server_got, BLOCK);
    CHECK(s.data_max <= CONN_SLICE_BYTES);
    CHECK(s.data_calls >= 2);
    CHECK_INT(s.client_got, BLOCK);
    CHECK(!s.client_order_bad);
    CHECK(s.client_eof);
}

/* The owner closes inside the first slice: the rest of that read is not
 * handed on (a DRAINING connection's reads are dropped). */
static void test_no_slice_after_close(void)
{
    static struct sc s;

    run_scenario(&s, MODE_CLOSE_FIRST, 0);
    CHECK_INT(s.data_calls, 1);
    CHECK_INT(s.calls_after_close, 0);
    CHECK(s.server_got <= CONN_SLICE_BYTES);
    CHECK(s.client_eof);
}

static void test_queue_bound(void)
{
    static struct sc s;

    run_scenario(&s, MODE_BUSY, 1000);
    CHECK_INT(s.busy_rc1, 0);
    CHECK_INT(s.busy_rc2, XE_BUSY);
    CHECK_INT(s.client_got, 600);
}

static void test_peer_eof(void)
{
    static struct sc s;

    run_scenario(&s, MODE_NOTHING, 0);
    CHECK_INT(s.opened, 1);
    CHECK_INT(s.gone, 1);
    CHECK_INT(s.gone_err, 0);
}

static void test_listen_errors(void)
{
    uv_loop_t loop;
    struct conn_mgr *cm;
    struct conn_hooks hooks = {
        .opened = h_opened, .data = h_data, .gone = h_gone, .drained = h_drained};
    struct sc s;
    char err[200];
    int port = iofix_free_port();

    memset(&s, 0, sizeof s);
    hooks.ud = &s;
    REQUIRE(uv_loop_init(&loop) == 0);
    uv_timer_init(&loop, &s.guard);
    REQUIRE(conn_mgr_new(&loop, &hooks, NULL, "t", 0, &cm) == 0);
    s.cm = cm;
    CHECK_INT(conn_listen(cm, "127.0.0.1", port, 0, err, sizeof err), 0);
    CHECK_INT(conn_listen(cm, "127.0.0.1", port, 0, err, sizeof err), XE_IO);
    CHECK(strstr(err, "address already in use") != NULL);
    CHECK_INT(conn_listen(cm, "127.0.0.300", port, 0, err, sizeof err), XE_INVAL);
    CHECK_INT(conn_listen(cm, "192.0.2.1", port, 0, err, sizeof err), XE_IO);
    conn_mgr_shutdown(cm);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(s.drained);
    CHECK_INT(uv_loop_close(&loop), 0);
    conn_mgr_free(cm);
}

/* ---- limits on accepted connections ---------------- */

struct lim {
    uv_loop_t loop;
    struct conn_mgr *cm;
    struct log_sink sink;
    char log[4096];
    int opened, gone, warns;
    bool drained;
};

static int l_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    ((struct lim *)ud)->opened++;
    return 0;
}

static void l_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
}

static void l_gone(void *ud, uint64_t id, int err)
{
    ((struct lim *)ud)->gone++;
}

static void l_drained(void *ud)
{
    ((struct lim *)ud)->drained = true;
}

static void l_log(void *ud, enum log_level level, const char *line)
{
    struct lim *l = ud;
    size_t n = strlen(l->log);

    if (level == LOG_WARN) {
        l->warns++;
        snprintf(l->log + n, sizeof l->log - n, "%s\n", line);
    }
}

/* l_client connects a blocking socket from src to 127.0.0.1:port (the
 * kernel completes it before the server accepts). */
static int l_client(const char *src, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET}, b = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, src, &b.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    a.sin_port = htons((uint16_t)port);
    if (fd < 0 || bind(fd, (struct sockaddr *)&b, sizeof b) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* l_spin runs the loop until opened + refused reach want (at least 30 s:
 * a failure detector, not a speed). */
static bool l_spin(struct lim *l, int opened, uint64_t refused)
{
    for (int i = 0; i < 30000; i++) {
        uv_run(&l->loop, UV_RUN_NOWAIT);
        if (l->opened == opened && conn_mgr_refused(l->cm) == refused)
            return true;
        usleep(1000);
    }
    return false;
}

/* l_closed tells whether the server closed fd (EOF within 30 s: a failure
 * detector, not a speed). */
static bool l_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;

    return poll(&p, 1, 30000) == 1 && recv(fd, &c, 1, 0) == 0;
}

static bool l_open(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 0;
}

static void test_limits(void)
{
    static struct lim l;
    struct conn_hooks hooks = {.ud = &l,
                               .opened = l_opened,
                               .data = l_data,
                               .gone = l_gone,
                               .drained = l_drained};
    struct conn_limits lim = {.max_conns = 6, .max_per_addr = 4};
    int fd[12], port = iofix_free_port();
    uint64_t first_refusal;
    char err[200];

    memset(&l, 0, sizeof l);
    l.sink.level = LOG_DEBUG;
    l.sink.write = l_log;
    l.sink.ud = &l;
    REQUIRE(uv_loop_init(&l.loop) == 0);
    REQUIRE(conn_mgr_new(&l.loop, &hooks, &l.sink, "n1", 0, &l.cm) == 0);
    conn_mgr_set_limits(l.cm, &lim);
    REQUIRE(conn_listen(l.cm, "127.0.0.1", port, 7, err, sizeof err) == 0);
    /* Five from one address: the fifth is over the per-address limit. */
    for (int i = 0; i < 5; i++) {
        /* No later than the first refusal (the fifth). */
        uv_update_time(&l.loop);
        first_refusal = uv_now(&l.loop);
        fd[i] = l_client("127.0.0.1", port);
        REQUIRE(fd[i] >= 0);
        CHECK(l_spin(&l, i < 4 ? i + 1 : 4, i < 4 ? 0 : 1));
    }
    CHECK(l_closed(fd[4]));
    for (int i = 0; i < 4; i++)
        CHECK(l_open(fd[i]));
    CHECK_INT(l.warns, 1);
    CHECK(strstr(l.log, "n1 connection on 127.0.0.1:") != NULL);
    CHECK(strstr(l.log, " from 127.0.0.1 refused: 4 connections from 127.0.0.1 "
                        "(max-connections-per-address 4)\n") != NULL);
    /* Another address may still connect, up to the total of 6. */
    for (int i = 5; i < 8; i++) {
        fd[i] = l_client("127.0.0.2", port);
        REQUIRE(fd[i] >= 0);
        CHECK(l_spin(&l, i < 7 ? i : 6, i < 7 ? 1 : 2));
    }
    CHECK(l_closed(fd[7]));
    CHECK(l_open(fd[5]) && l_open(fd[6]));
    /* Within CONN_REFUSE_LOG_MS of the first line: counted, not logged.
     * (A machine so loaded that the steps above took that long may log a
     * second line: not a failure.) */
    uv_update_time(&l.loop);
    if (uv_now(&l.loop) - first_refusal < CONN_REFUSE_LOG_MS)
        CHECK_INT(l.warns, 1);
    CHECK_INT(conn_mgr_count(l.cm), 6);
    /* One leaves: its slot is free again once it is freed. */
    close(fd[0]);
    for (int i = 0; i < 30000 && conn_mgr_count(l.cm) > 5; i++) {
        uv_run(&l.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    CHECK_INT(l.gone, 1);
    fd[8] = l_client("127.0.0.1", port);
    REQUIRE(fd[8] >= 0);
    CHECK(l_spin(&l, 7, 2));
    CHECK(l_open(fd[8]));
    for (int i = 1; i <= 8; i++)
        close(fd[i]);
    conn_mgr_shutdown(l.cm);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(l.drained);
    CHECK_INT(uv_loop_close(&l.loop), 0);
    conn_mgr_free(l.cm);
}

TL_MAIN(T(test_flush_before_close), T(test_partial_write), T(test_read_in_slices),
        T(test_no_slice_after_close), T(test_queue_bound), T(test_peer_eof),
        T(test_listen_errors), T(test_limits))
