/* test_ctl_socket: the control socket (xmppd/io/ctl_socket.c) over a real
 * unix socket.  The server runs its libuv loop on a second thread; the test
 * is a plain blocking client (with receive timeouts) on the main thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_socket.h"
#include "err.h"
#include "iofix.h"
#include "testlib.h"

/* The server's timeouts here: short, so that the cases that wait for them
 * are quick, and long against the other cases' pauses (at most 100 ms) and
 * against a stall of the machine: with 1 s, a client of
 * test_clients_interleaved or test_half_requests_do_not_lock_out whose
 * request stayed half-sent through a loaded second was timed out before
 * the case finished it (or before eviction could pick it). */
#define PARTIAL_MS 5000
#define IDLE_MS 8000

static char dir[] = "/tmp/xmppd-test-ctl-XXXXXX";
static char path[100];
static uv_loop_t loop;
static uv_async_t stop_async;
static struct ctl_socket *srv;
static pthread_t thread;
static int closed_called;
/* test.defer requests the server has read and not answered yet (written
 * on the loop thread, read by the test's). */
static atomic_int deferred_now;

/* ---- the server's commands (run on the loop thread) -------------------- */

static int cmd_echo(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    *result = json_pack("{s:O}", "args", args);
    return 0;
}

static int cmd_fail(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    return ctl_error_set(err, "not-found",
                         "no call bridge \"cb9\"; see xmpp callbridge list");
}

static int cmd_stats(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    struct ctl_socket_stats st;
    ctl_socket_get_stats(srv, &st);
    *result =
        json_pack("{s:I, s:I, s:I, s:i, s:I, s:I}", "requests", (json_int_t)st.requests,
                  "bad_requests", (json_int_t)st.bad_requests, "accepted",
                  (json_int_t)st.accepted, "clients", (int)st.clients, "timed_out",
                  (json_int_t)st.timed_out, "evicted", (json_int_t)st.evicted);
    return 0;
}

struct later {
    uv_timer_t timer;
    struct ctl_deferred *d;
    int fail;
};

static void later_closed(uv_handle_t *h)
{
    free(h);
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = (struct later *)t;
    atomic_fetch_sub(&deferred_now, 1);
    if (l->fail)
        ctl_deferred_finish(l->d, XE_NOLEADER, NULL, NULL);
    else
        ctl_deferred_finish(l->d, 0, json_pack("{s:b}", "late", 1), NULL);
    uv_close((uv_handle_t *)t, later_closed);
}

/* test.defer answers after args.ms milliseconds, like a cluster write. */
static int cmd_defer(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    struct later *l = calloc(1, sizeof *l);
    l->d = ctl_socket_defer(srv);
    atomic_fetch_add(&deferred_now, 1);
    l->fail = json_is_true(json_object_get(args, "fail"));
    uv_timer_init(&loop, &l->timer);
    uv_timer_start(&l->timer, later_fire,
                   (uint64_t)json_integer_value(json_object_get(args, "ms")), 0);
    return CTL_DEFERRED;
}

static int cmd_big(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    json_t *a = json_array();
    for (int i = 0; i < 20000; i++)
        json_array_append_new(
            a, json_string("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    *result = json_pack("{s:o}", "items", a);
    return 0;
}

static const struct ctl_command commands[] = {
    {"test.echo", cmd_echo},   {"test.fail", cmd_fail}, {"test.stats", cmd_stats},
    {"test.defer", cmd_defer}, {"test.big", cmd_big},
};

static void on_closed(void *arg)
{
    closed_called++;
}

static void on_stop(uv_async_t *a)
{
    ctl_socket_close(srv, on_closed, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *arg)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static void cleanup(void)
{
    iofix_rmdir(dir);
}

static void start_server(void)
{
    static int started;
    if (started++)
        return;
    /* As in the daemon: a client that hangs up must not kill the writer. */
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        exit(1);
    atexit(cleanup);
    snprintf(path, sizeof path, "%s/control.sock", dir);
    uv_loop_init(&loop);
    uv_async_init(&loop, &stop_async, on_stop);
    struct ctl_socket_config cfg = {.path = path,
                                    .table = commands,
                                    .ncommands = sizeof commands / sizeof commands[0],
                                    .max_clients = 8,
                                    .partial_timeout_ms = PARTIAL_MS,
                                    .idle_timeout_ms = IDLE_MS};
    char err[256];
    if (ctl_socket_start(&loop, &cfg, &srv, err, sizeof err) != 0) {
        fprintf(stderr, "ctl_socket_start: %s\n", err);
        exit(1);
    }
    pthread_create(&thread, NULL, run_loop, NULL);
}

/* ---- a blocking client ------------------------------------------------- */

static int client(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        close(fd);
        return -1;
    }
    /* A failure detector, not a speed: the server thread may wait long for
     * a CPU on a loaded machine. */
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_raw(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may have closed on purpose */
        p += n;
        len -= (size_t)n;
    }
}

/* closed_by_server is 1 when the server has closed fd: an orderly end of
 * stream, or ECONNRESET when the server closed while a byte of ours was still
 * unread in its queue (the trickling client races the close).  A recv that
 * times out (SO_RCVTIMEO) or returns data is 0. */
static int closed_by_server(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    if (n == 0)
        return 1;
    if (n < 0 && errno == ECONNRESET)
        return 1;
    fprintf(stderr, "recv: %zd (%s): expected the server to close\n", n,
            n < 0 ? strerror(errno) : "data");
    return 0;
}

static void send_frame(int fd, const char *body)
{
    size_t n = strlen(body);
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    send_raw(fd, h, 4);
    send_raw(fd, body, n);
}

/* recv_all reads exactly len bytes: 1, 0 on EOF, -1 on error/timeout. */
static int recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n == 0)
            return 0;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

/* recv_msg returns the next response (owned) or NULL on EOF/timeout. */
static json_t *recv_msg(int fd)
{
    unsigned char h[4];
    if (recv_all(fd, h, 4) != 1)
        return NULL;
    size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    char *body = malloc(n + 1);
    if (recv_all(fd, body, n) != 1) {
        free(body);
        return NULL;
    }
    json_t *m = json_loadb(body, n, 0, NULL);
    free(body);
    return m;
}

static json_t *call(int fd, const char *body)
{
    send_frame(fd, body);
    return recv_msg(fd);
}

static const char *code_of(json_t *m)
{
    return json_string_value(json_object_get(json_object_get(m, "error"), "code"));
}

static json_int_t stat_of(const char *name)
{
    int fd = client();
    json_t *m = call(fd, "{\"v\":1,\"id\":1,\"cmd\":\"test.stats\"}");
    json_int_t v =
        json_integer_value(json_object_get(json_object_get(m, "result"), name));
    json_decref(m);
    close(fd);
    return v;
}

/* wait_clients polls the server's client count (stat_of's own client
 * included) until it is at most n; at most 30 s.  Returns the last count. */
static json_int_t wait_clients(json_int_t n)
{
    json_int_t v = stat_of("clients");

    for (int i = 0; i < 3000 && v > n; i++) {
        usleep(10 * 1000);
        v = stat_of("clients");
    }
    return v;
}

/* wait_deferred waits until the server has read n test.defer requests
 * that are still unanswered; at most 30 s. */
static bool wait_deferred(int n)
{
    for (int i = 0; i < 3000 && atomic_load(&deferred_now) < n; i++)
        usleep(10 * 1000);
    return atomic_load(&deferred_now) >= n;
}

/* ---- cases ------------------------------------------------------------- */

static void test_socket_mode(void)
{
    start_server();
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_INT(st.st_mode & 0777, 0600);
}

static void test_good_request(void)
{
    start_server();
    int fd = client();
    REQUIRE(fd >= 0);
    json_t *m =
        call(fd, "{\"v\":1,\"id\":7,\"cmd\":\"test.echo\",\"args\":{\"name\":\"cb1\"}}");
    REQUIRE(m != NULL);
    CHECK(json_is_true(json_object_get(m, "ok")));
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 7);
    CHECK_STR(json_string_value(json_object_get(
                  json_object_get(json_object_get(m, "result"), "args"), "name")),
              "cb1");
    json_decref(m);
    /* Two requests in one write: two responses, in order. */
    send_frame(fd, "{\"v\":1,\"id\":8,\"cmd\":\"test.echo\"}");
    send_frame(fd, "{\"v\":1,\"id\":9,\"cmd\":\"test.fail\"}");
    m = recv_msg(fd);
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 8);
    json_decref(m);
    m = recv_msg(fd);
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 9);
    CHECK_STR(code_of(m), "not-found");
    json_decref(m);
    close(fd);
}

static void test_clients_interleaved(void)
{
    start_server();
    enum { N = 5 };
    int fds[N];
    char body[N][128];
    for (int i = 0; i < N; i++) {
        fds[i] = client();
        REQUIRE(fds[i] >= 0);
        snprintf(body[i], sizeof body[i],
                 "{\"v\":1,\"id\":%d,\"cmd\":\"test.echo\",\"args\":{\"i\":%d}}", 100 + i,
                 i);
        size_t n = strlen(body[i]);
        unsigned char h[4] = {0, 0, (unsigned char)(n >> 8), (unsigned char)n};
        send_raw(fds[i], h, 4);
        send_raw(fds[i], body[i], 10); /* half a request each */
    }
    for (int i = N - 1; i >= 0; i--) {
        send_raw(fds[i], body[i] + 10, strlen(body[i]) - 10);
        json_t *m = recv_msg(fds[i]);
        CHECK(m != NULL);
        CHECK_INT(json_integer_value(json_object_get(m, "id")), 100 + i);
        json_decref(m);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

static void test_malformed_keeps_connection(void)
{
    start_server();
    int fd = client();
    json_t *m = call(fd, "this is not json");
    CHECK_STR(code_of(m), CTL_E_BAD_REQUEST);
    CHECK(json_is_null(json_object_get(m, "id")));
    json_decref(m);
    m = call(fd, "{\"v\":2,\"id\":3,\"cmd\":\"test.echo\"}");
    CHECK_STR(code_of(m), CTL_E_VERSION);
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 3);
    json_decref(m);
    m = call(fd, "{\"v\":1,\"id\":4,\"cmd\":\"test.nothing\"}");
    CHECK_STR(code_of(m), CTL_E_UNKNOWN_COMMAND);
    json_decref(m);
    m = call(fd, "{\"v\":1,\"id\":5}");
    CHECK_STR(code_of(m), CTL_E_BAD_REQUEST);
    json_decref(m);
    m = call(fd, "{\"v\":1,\"id\":6,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    json_decref(m);
    close(fd);
}

static void test_oversized_closes(void)
{
    start_server();
    int fd = client();
    unsigned char h[4] = {0, 0x10, 0, 0}; /* 1 MiB announced */
    send_raw(fd, h, 4);
    char junk[8192];
    memset(junk, '{', sizeof junk);
    send_raw(fd, junk, sizeof junk);
    json_t *m = recv_msg(fd);
    CHECK_STR(code_of(m), CTL_E_TOO_LARGE);
    json_decref(m);
    CHECK(closed_by_server(fd)); /* closed */
    close(fd);
}

static void test_disconnect_mid_request(void)
{
    start_server();
    json_int_t before = stat_of("clients");
    int fd = client();
    send_raw(fd, "\0\0\0\x40{\"v\":1,", 11);
    close(fd);
    fd = client();
    send_raw(fd, "\0\0", 2); /* mid-header */
    close(fd);
    /* The server is fine and forgot both clients (once it has read their
     * ends: poll, not sleep). */
    CHECK_INT(wait_clients(before), before);
}

static void test_garbage(void)
{
    start_server();
    json_int_t before = stat_of("clients");
    unsigned seed = 12345;
    for (int round = 0; round < 20; round++) {
        int fd = client();
        char b[2048];
        for (size_t i = 0; i < sizeof b; i++) {
            seed = seed * 1103515245u + 12345u;
            b[i] = (char)(seed >> 16);
        }
        /* Small frames of random bytes, then random lengths. */
        b[0] = 0, b[1] = 0, b[2] = 0, b[3] = (char)(round + 1);
        send_raw(fd, b, sizeof b);
        close(fd);
    }
    /* Let the server reap them (it allows 8 clients). */
    CHECK_INT(wait_clients(before), before);
    int fd = client();
    json_t *m = call(fd, "{\"v\":1,\"id\":1,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    json_decref(m);
    close(fd);
}

static void test_deferred(void)
{
    start_server();
    int fd = client();
    send_frame(fd, "{\"v\":1,\"id\":20,\"cmd\":\"test.defer\",\"args\":{\"ms\":100}}");
    send_frame(
        fd,
        "{\"v\":1,\"id\":21,\"cmd\":\"test.defer\",\"args\":{\"ms\":1,\"fail\":true}}");
    /* The quick one answers first: responses carry ids, not order. */
    json_t *m = recv_msg(fd);
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 21);
    CHECK_STR(code_of(m), "no-leader");
    json_decref(m);
    m = recv_msg(fd);
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 20);
    CHECK(json_is_true(json_object_get(json_object_get(m, "result"), "late")));
    json_decref(m);
    /* A client that leaves before its answer: finishing is harmless. */
    send_frame(fd, "{\"v\":1,\"id\":22,\"cmd\":\"test.defer\",\"args\":{\"ms\":50}}");
    close(fd);
    usleep(100 * 1000);
    fd = client();
    m = call(fd, "{\"v\":1,\"id\":23,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    json_decref(m);
    close(fd);
}

static void test_big_response(void)
{
    start_server();
    int fd = client();
    json_t *m = call(fd, "{\"v\":1,\"id\":30,\"cmd\":\"test.big\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    CHECK_INT(json_array_size(json_object_get(json_object_get(m, "result"), "items")),
              20000);
    json_decref(m);
    close(fd);
}

/* All 8 slots taken by clients that wait for deferred answers: a ninth
 * finds no client it may close and is refused; the 8 get their answers. */
static void test_too_many_clients(void)
{
    start_server();
    /* The previous cases' clients reaped: only stat_of's own is left. */
    CHECK_INT(wait_clients(1), 1);
    int fds[9];
    /* Answers due in 5 s: the ninth must meet all 8 still waiting. */
    for (int i = 0; i < 8; i++) {
        fds[i] = client();
        send_frame(fds[i],
                   "{\"v\":1,\"id\":1,\"cmd\":\"test.defer\",\"args\":{\"ms\":5000}}");
    }
    /* All 8 requests are in (a client whose request the server has not
     * read yet may be closed to make room). */
    CHECK(wait_deferred(8));
    fds[8] = client();
    json_t *m = recv_msg(fds[8]);
    CHECK_STR(code_of(m), "busy");
    json_decref(m);
    for (int i = 0; i < 8; i++) {
        m = recv_msg(fds[i]);
        CHECK(json_is_true(json_object_get(json_object_get(m, "result"), "late")));
        json_decref(m);
    }
    for (int i = 0; i < 9; i++)
        close(fds[i]);
    usleep(100 * 1000); /* let the server reap them before the next case */
}

/* Clients that each send half a request took every
 * slot and the shell was refused ("busy") until they left.  Now a new
 * client closes the oldest of them and is answered at once. */
static void test_half_requests_do_not_lock_out(void)
{
    start_server();
    json_int_t evicted = stat_of("evicted");
    int fds[10];
    for (int i = 0; i < 9; i++) {
        fds[i] = client();
        send_raw(fds[i], "\0\0\0\x40{\"v\":1,", 11);
        usleep(2000); /* distinct ages */
    }
    fds[9] = client();
    json_t *m = call(fds[9], "{\"v\":1,\"id\":40,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 40);
    json_decref(m);
    /* The two oldest made room (for the ninth and the tenth). */
    CHECK(closed_by_server(fds[0]));
    CHECK(closed_by_server(fds[1]));
    m = call(fds[9], "{\"v\":1,\"id\":41,\"cmd\":\"test.stats\"}");
    CHECK_INT(
        json_integer_value(json_object_get(json_object_get(m, "result"), "evicted")) -
            evicted,
        2);
    json_decref(m);
    for (int i = 0; i < 10; i++)
        close(fds[i]);
    usleep(100 * 1000);
}

/* A request that does not arrive whole within PARTIAL_MS of its first byte
 * is dropped, trickled or not; an idle client after IDLE_MS.  Each recv
 * waits at most 30 s (the client's SO_RCVTIMEO), longer than the timeouts. */
static void test_timeouts(void)
{
    start_server();
    json_int_t before = stat_of("timed_out");
    int partial = client(), trickle = client(), idle = client();

    send_raw(partial, "\0\0\0\x40{\"v\":1,", 11);
    json_t *m = call(idle, "{\"v\":1,\"id\":50,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    json_decref(m);
    send_raw(trickle, "\0\0\0\x40", 4);
    for (int i = 0; i < PARTIAL_MS / 200 + 5; i++) {
        usleep(200 * 1000); /* a byte every 200 ms, past PARTIAL_MS */
        send_raw(trickle, " ", 1);
    }
    CHECK(closed_by_server(partial));
    CHECK(closed_by_server(trickle));
    CHECK(closed_by_server(idle));
    close(partial);
    close(trickle);
    close(idle);
    CHECK(stat_of("timed_out") - before >= 3);
}

/* A client that waits for a deferred answer is never timed out, however
 * long the wait (here longer than both timeouts). */
static void test_deferred_not_timed_out(void)
{
    start_server();
    int fd = client();
    json_t *m =
        call(fd, "{\"v\":1,\"id\":60,\"cmd\":\"test.defer\",\"args\":{\"ms\":9000}}");
    CHECK_INT(json_integer_value(json_object_get(m, "id")), 60);
    CHECK(json_is_true(json_object_get(json_object_get(m, "result"), "late")));
    json_decref(m);
    /* And it may ask again at once. */
    m = call(fd, "{\"v\":1,\"id\":61,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(m, "ok")));
    json_decref(m);
    close(fd);
}

static void test_start_errors(void)
{
    start_server();
    uv_loop_t l2;
    uv_loop_init(&l2);
    struct ctl_socket_config cfg = {.path = path, .table = commands, .ncommands = 1};
    struct ctl_socket *s2 = NULL;
    char err[256];
    /* Another server answers at this path. */
    CHECK_INT(ctl_socket_start(&l2, &cfg, &s2, err, sizeof err), XE_BUSY);
    CHECK(strstr(err, "already running") != NULL);

    /* Not a socket: never removed. */
    char p2[100];
    snprintf(p2, sizeof p2, "%s/file", dir);
    FILE *f = fopen(p2, "w");
    fclose(f);
    cfg.path = p2;
    CHECK_INT(ctl_socket_start(&l2, &cfg, &s2, err, sizeof err), XE_EXISTS);
    CHECK(access(p2, F_OK) == 0);
    unlink(p2);

    /* A stale socket (bound, nobody listening) is replaced. */
    snprintf(p2, sizeof p2, "%s/stale.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p2);
    CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    CHECK_INT(ctl_socket_start(&l2, &cfg, &s2, err, sizeof err), 0);
    ctl_socket_close(s2, NULL, NULL);
    CHECK(access(p2, F_OK) != 0); /* close removes the socket file */

    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    cfg.path = longp;
    CHECK_INT(ctl_socket_start(&l2, &cfg, &s2, err, sizeof err), XE_INVAL);
    uv_run(&l2, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&l2), 0);
}

static void test_stats_and_close(void)
{
    start_server();
    CHECK(stat_of("bad_requests") >= 6);
    CHECK(stat_of("requests") >= 15);
    int fd = client(); /* still connected when the server closes */
    uv_async_send(&stop_async);
    pthread_join(thread, NULL);
    CHECK_INT(closed_called, 1);
    CHECK_INT(uv_loop_close(&loop), 0);
    CHECK(access(path, F_OK) != 0);
    CHECK(closed_by_server(fd));
    close(fd);
}

TL_MAIN(T(test_socket_mode), T(test_good_request), T(test_clients_interleaved),
        T(test_malformed_keeps_connection), T(test_oversized_closes),
        T(test_disconnect_mid_request), T(test_garbage), T(test_deferred),
        T(test_big_response), T(test_too_many_clients),
        T(test_half_requests_do_not_lock_out), T(test_timeouts),
        T(test_deferred_not_timed_out), T(test_start_errors), T(test_stats_and_close))
