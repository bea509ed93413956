/* ctl_socket.c: the control socket edge: libuv pipe listener, per-client
 * frame decoding, dispatch to the registered command table, responses.
 * See ctl_socket.h.
 *
 * Memory of a client is freed only in its close callback (libuv calls any
 * pending write and shutdown callbacks before it); after each dispatch the
 * read loop checks whether the handler closed the client or the server. */
#include "ctl_socket.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"

#define DEFAULT_MAX_CLIENTS 64
/* A client that does not read its responses is dropped once this much is
 * queued for it. */
#define MAX_WRITE_QUEUE (4u * 1024u * 1024u)
#define READ_CHUNK (64u * 1024u)

struct client {
    uv_pipe_t pipe; /* first: the handle's address is the client's */
    struct ctl_socket *srv;
    struct client *prev, *next;
    struct ctl_deferred *deferred; /* requests answered later */
    struct ctl_dec dec;
    uv_shutdown_t shut;
    uint64_t id;
    uint64_t active_ms;  /* last request completed or connected (uv_now) */
    uint64_t partial_ms; /* first byte of the request being received; 0: none */
    bool closing;
    bool shutting; /* last response queued, closing after it is written */
};

struct ctl_deferred {
    struct client *client; /* NULL once the client went away */
    struct ctl_deferred *prev, *next;
    json_int_t id;
};

struct ctl_socket {
    uv_loop_t *loop;
    uv_pipe_t listener;
    char *path;
    const struct ctl_command *table;
    size_t ncommands;
    void *ud;
    const struct log_sink *log;
    unsigned max_clients;
    unsigned closing_clients; /* closed, waiting for their close callback */
    unsigned partial_timeout_ms, idle_timeout_ms;
    uv_timer_t sweep; /* closes clients past their timeouts */
    struct client *clients;
    struct ctl_socket_stats stats;
    uint64_t next_client_id;
    /* the request being dispatched (for ctl_socket_defer) */
    struct client *cur_client;
    json_int_t cur_id;
    bool closing;
    unsigned open_handles; /* listener + clients not yet closed */
    void (*on_closed)(void *);
    void *on_closed_arg;
    char readbuf[READ_CHUNK]; /* one loop thread: reads never overlap */
};

struct wreq {
    uv_write_t req;
    struct client *client;
    char *data; /* owned */
};

static void client_close(struct client *c);

static void server_maybe_free(struct ctl_socket *s)
{
    if (!s->closing || s->open_handles > 0)
        return;
    void (*cb)(void *) = s->on_closed;
    void *arg = s->on_closed_arg;
    free(s->path);
    free(s);
    if (cb != NULL)
        cb(arg);
}

/* ---- writing ---------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct client *c = w->client;
    if (status < 0 && status != UV_ECANCELED && !c->closing) {
        LOG(c->srv->log, LOG_DEBUG, "control c%llu: write failed: %s",
            (unsigned long long)c->id, uv_strerror(status));
        client_close(c);
    }
    free(w->data);
    free(w);
}

/* send_msg frames msg (borrowed) and queues it to c. */
static void send_msg(struct client *c, json_t *msg)
{
    struct ctl_socket *s = c->srv;
    struct buf b = {0};
    if (c->closing || c->shutting)
        return;
    int rc = msg != NULL ? ctl_frame_encode(msg, CTL_MAX_RESPONSE, &b) : XE_NOMEM;
    if (rc == XE_LIMIT) {
        /* The answer is too big to send: say so instead. */
        struct ctl_error e;
        ctl_error_set(&e, CTL_E_INTERNAL,
                      "the response is over %u bytes; narrow the request",
                      CTL_MAX_RESPONSE);
        json_t *id = json_object_get(msg, "id");
        json_t *em = ctl_response_error(json_is_integer(id), json_integer_value(id), &e);
        rc = em != NULL ? ctl_frame_encode(em, CTL_MAX_RESPONSE, &b) : XE_NOMEM;
        json_decref(em);
    }
    if (rc < 0) {
        LOG(s->log, LOG_WARN, "control c%llu: cannot encode a response: %s",
            (unsigned long long)c->id, xe_strerror(rc));
        buf_free(&b);
        client_close(c);
        return;
    }
    struct wreq *w = malloc(sizeof *w);
    if (w == NULL) {
        buf_free(&b);
        client_close(c);
        return;
    }
    w->client = c;
    w->data = b.data;
    uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &ub, 1, on_write);
    if (r < 0) {
        free(w->data);
        free(w);
        client_close(c);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > MAX_WRITE_QUEUE) {
        LOG(s->log, LOG_WARN,
            "control c%llu: client does not read its responses; dropped",
            (unsigned long long)c->id);
        client_close(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct client *c = req->data;
    (void)status;
    client_close(c);
}

/* send_error_and_close answers with err and closes the connection once the
 * answer is written. */
static void send_error_and_close(struct client *c, const struct ctl_error *err)
{
    json_t *m = ctl_response_error(false, 0, err);
    send_msg(c, m);
    json_decref(m);
    if (c->closing || c->shutting)
        return;
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->shutting = true;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
        client_close(c);
}

/* ---- clients ---------------------------------------------------------- */

static void on_client_closed(uv_handle_t *h)
{
    struct client *c = (struct client *)h;
    struct ctl_socket *s = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    ctl_dec_free(&c->dec);
    free(c);
    s->stats.clients--;
    s->closing_clients--;
    s->open_handles--;
    server_maybe_free(s);
}

static void client_close(struct client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->srv->closing_clients++;
    if (ctl_dec_pending(&c->dec) > 0)
        LOG(c->srv->log, LOG_DEBUG,
            "control c%llu: closed with a partial request (%zu bytes)",
            (unsigned long long)c->id, ctl_dec_pending(&c->dec));
    /* Orphan deferred requests: their owners may still finish them. */
    for (struct ctl_deferred *d = c->deferred; d != NULL; d = d->next)
        d->client = NULL;
    c->deferred = NULL;
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void handle_request(struct client *c, json_t *msg)
{
    struct ctl_socket *s = c->srv;
    json_t *resp = NULL;
    json_t *id = json_object_get(msg, "id");

    s->stats.requests++;
    s->cur_client = c;
    s->cur_id = json_integer_value(id);
    int rc = ctl_dispatch(s->table, s->ncommands, s->ud, msg, &resp);
    s->cur_client = NULL;
    if (rc == CTL_DEFERRED)
        return;
    if (resp != NULL && json_is_false(json_object_get(resp, "ok"))) {
        const char *code =
            json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
        if (code != NULL &&
            (strcmp(code, CTL_E_BAD_REQUEST) == 0 || strcmp(code, CTL_E_VERSION) == 0 ||
             strcmp(code, CTL_E_UNKNOWN_COMMAND) == 0))
            s->stats.bad_requests++;
    }
    if (resp == NULL) {
        LOG(s->log, LOG_ERROR, "control c%llu: out of memory answering a request",
            (unsigned long long)c->id);
        client_close(c);
        return;
    }
    send_msg(c, resp);
    json_decref(resp);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct client *c = (struct client *)h;
    (void)suggested;
    *out = uv_buf_init(c->srv->readbuf, sizeof c->srv->readbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *ub)
{
    struct client *c = (struct client *)st;
    struct ctl_socket *s = c->srv;
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG(s->log, LOG_DEBUG, "control c%llu: read failed: %s",
                (unsigned long long)c->id, uv_strerror((int)nread));
        client_close(c);
        return;
    }
    if (c->closing || c->shutting || nread == 0)
        return;
    if (c->partial_ms == 0)
        c->partial_ms = uv_now(s->loop); /* a request starts with this byte */
    int fed = ctl_dec_feed(&c->dec, ub->base, (size_t)nread);
    /* The shared read buffer keeps no copy of a request (a password). */
    sodium_memzero(ub->base, (size_t)nread);
    if (fed < 0) {
        client_close(c);
        return;
    }
    while (!c->closing && !c->shutting && !s->closing) {
        json_t *msg = NULL;
        struct ctl_error err = {{0}, {0}};
        int rc = ctl_dec_next(&c->dec, &msg, &err);
        if (rc == 0)
            break;
        /* A whole request: the client is active; a partial one after it
         * counts from now. */
        c->active_ms = uv_now(s->loop);
        c->partial_ms = ctl_dec_pending(&c->dec) > 0 ? c->active_ms : 0;
        if (rc == 1) {
            handle_request(c, msg);
            json_decref(msg);
        } else if (rc == XE_CORRUPT) {
            s->stats.bad_requests++;
            LOG(s->log, LOG_INFO, "control c%llu: bad request: %s",
                (unsigned long long)c->id, err.message);
            json_t *m = ctl_response_error(false, 0, &err);
            send_msg(c, m);
            json_decref(m);
        } else {
            s->stats.bad_requests++;
            LOG(s->log, LOG_INFO, "control c%llu: %s; closing", (unsigned long long)c->id,
                err.message[0] ? err.message : xe_strerror(rc));
            send_error_and_close(c, &err);
        }
    }
}

/* evictable: c holds a slot without us owing it an answer. */
static bool evictable(const struct client *c)
{
    return !c->closing && !c->shutting && c->deferred == NULL;
}

/* make_room closes the oldest evictable client other than fresh, so that
 * fresh (just accepted, over max_clients) may stay.  false when every
 * other client waits for a deferred answer. */
static bool make_room(struct ctl_socket *s, struct client *fresh)
{
    struct client *old = NULL;

    /* The list is newest first: the last evictable one is the oldest. */
    for (struct client *c = s->clients; c != NULL; c = c->next)
        if (c != fresh && evictable(c))
            old = c;
    if (old == NULL)
        return false;
    s->stats.evicted++;
    LOG(s->log, LOG_INFO,
        "control c%llu: closed to make room for a new client (%u clients, %s)",
        (unsigned long long)old->id, s->max_clients,
        old->partial_ms != 0 ? "it sent a partial request" : "it was idle");
    client_close(old);
    return true;
}

/* on_sweep closes clients whose request did not arrive whole in time, and
 * idle ones; clients waiting for a deferred answer are left alone. */
static void on_sweep(uv_timer_t *t)
{
    struct ctl_socket *s = t->data;
    uint64_t now = uv_now(s->loop);

    for (struct client *c = s->clients; c != NULL; c = c->next) {
        const char *why = NULL;

        if (!evictable(c))
            continue;
        if (c->partial_ms != 0 && now - c->partial_ms >= s->partial_timeout_ms)
            why = "the request did not arrive whole in time";
        else if (c->partial_ms == 0 && now - c->active_ms >= s->idle_timeout_ms)
            why = "idle";
        if (why == NULL)
            continue;
        s->stats.timed_out++;
        LOG(s->log, LOG_DEBUG, "control c%llu: closed: %s", (unsigned long long)c->id,
            why);
        client_close(c); /* unlinked only in its close callback */
    }
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct ctl_socket *s = ls->data;
    if (status < 0) {
        LOG(s->log, LOG_WARN, "control: accept failed: %s", uv_strerror(status));
        return;
    }
    if (s->closing)
        return;
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    if (uv_pipe_init(s->loop, &c->pipe, 0) < 0) {
        free(c);
        return;
    }
    c->srv = s;
    c->id = ++s->next_client_id;
    c->active_ms = uv_now(s->loop);
    ctl_dec_init(&c->dec, CTL_MAX_REQUEST);
    c->next = s->clients;
    if (s->clients != NULL)
        s->clients->prev = c;
    s->clients = c;
    s->open_handles++;
    s->stats.clients++;
    if (uv_accept(ls, (uv_stream_t *)&c->pipe) < 0) {
        client_close(c);
        return;
    }
    s->stats.accepted++;
    /* A new admin always finds a slot unless every client waits for us. */
    if (s->stats.clients - s->closing_clients > s->max_clients && !make_room(s, c)) {
        struct ctl_error e;
        ctl_error_set(&e, "busy", "too many control clients (%u); try again shortly",
                      s->max_clients);
        LOG(s->log, LOG_WARN,
            "control: client refused: %u clients connected, all waiting for answers",
            s->max_clients);
        send_error_and_close(c, &e);
        return;
    }
    LOG(s->log, LOG_DEBUG, "control c%llu: connected", (unsigned long long)c->id);
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
        client_close(c);
}

/* ---- the listener ----------------------------------------------------- */

/* clear_stale removes a socket file nobody answers on. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; move it away", path);
        return XE_EXISTS;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return XE_IO;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (r == 0) {
        snprintf(err, errlen,
                 "another process serves %s; is an xmppd already running with this "
                 "state dir?",
                 path);
        return XE_BUSY;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
        return XE_IO;
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct ctl_socket *s = h->data;
    s->open_handles--;
    server_maybe_free(s);
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct ctl_socket *s = h->data;
    s->open_handles--;
    server_maybe_free(s);
}

int ctl_socket_start(uv_loop_t *loop, const struct ctl_socket_config *cfg,
                     struct ctl_socket **out, char *err, size_t errlen)
{
    char dummy[8];
    if (err == NULL)
        err = dummy, errlen = sizeof dummy;
    *out = NULL;
    struct sockaddr_un sa;
    if (cfg->path == NULL || strlen(cfg->path) >= sizeof sa.sun_path) {
        snprintf(err, errlen,
                 "control socket path must be 1-%zu bytes; use a shorter state dir",
                 sizeof sa.sun_path - 1);
        return XE_INVAL;
    }
    int rc = clear_stale(cfg->path, err, errlen);
    if (rc < 0)
        return rc;

    struct ctl_socket *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(cfg->path)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    s->loop = loop;
    s->table = cfg->table;
    s->ncommands = cfg->ncommands;
    s->ud = cfg->ud;
    s->log = cfg->log;
    s->max_clients = cfg->max_clients ? cfg->max_clients : DEFAULT_MAX_CLIENTS;
    s->partial_timeout_ms =
        cfg->partial_timeout_ms ? cfg->partial_timeout_ms : CTL_SOCKET_PARTIAL_TIMEOUT_MS;
    s->idle_timeout_ms =
        cfg->idle_timeout_ms ? cfg->idle_timeout_ms : CTL_SOCKET_IDLE_TIMEOUT_MS;

    int r = uv_pipe_init(loop, &s->listener, 0);
    if (r < 0) {
        free(s->path);
        free(s);
        snprintf(err, errlen, "cannot make the control socket: %s", uv_strerror(r));
        return XE_IO;
    }
    s->listener.data = s;
    s->open_handles = 1;
    /* The socket file must never be reachable by others, not even between
     * bind and chmod: bind under a umask that leaves only the owner. */
    mode_t old = umask(0177);
    r = uv_pipe_bind(&s->listener, s->path);
    umask(old);
    if (r == 0 && chmod(s->path, 0600) != 0)
        r = uv_translate_sys_error(errno);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 16, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->path, uv_strerror(r));
        rc = r == UV_EACCES ? XE_PERM : XE_IO;
        unlink(s->path);
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rc;
    }
    /* The sweep runs at a quarter of the shorter timeout (at most 1 s), so
     * a client is closed within 25 % (or 1 s) after its timeout. */
    uint64_t every = s->partial_timeout_ms < s->idle_timeout_ms ? s->partial_timeout_ms
                                                                : s->idle_timeout_ms;
    every = every / 4 > 1000 ? 1000 : (every / 4 > 0 ? every / 4 : 1);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->open_handles++;
    uv_timer_start(&s->sweep, on_sweep, every, every);
    LOG(s->log, LOG_INFO, "control: listening on %s", s->path);
    *out = s;
    return 0;
}

void ctl_socket_close(struct ctl_socket *s, void (*on_closed)(void *arg), void *arg)
{
    if (s == NULL || s->closing)
        return;
    s->closing = true;
    s->on_closed = on_closed;
    s->on_closed_arg = arg;
    unlink(s->path);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    uv_close((uv_handle_t *)&s->sweep, on_sweep_closed);
    for (struct client *c = s->clients; c != NULL; c = c->next)
        client_close(c);
}

void ctl_socket_get_stats(const struct ctl_socket *s, struct ctl_socket_stats *out)
{
    *out = s->stats;
}

/* ---- deferred responses ----------------------------------------------- */

struct ctl_deferred *ctl_socket_defer(struct ctl_socket *s)
{
    struct client *c = s->cur_client;
    if (c == NULL)
        return NULL; /* not inside a handler: a caller bug, but no crash */
    struct ctl_deferred *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->client = c;
    d->id = s->cur_id;
    d->next = c->deferred;
    if (c->deferred != NULL)
        c->deferred->prev = d;
    c->deferred = d;
    return d;
}

void ctl_deferred_finish(struct ctl_deferred *d, int rc, json_t *result,
                         const struct ctl_error *err)
{
    if (d == NULL) {
        json_decref(result);
        return;
    }
    struct client *c = d->client;
    if (c == NULL) {
        json_decref(result);
        free(d);
        return;
    }
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        c->deferred = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    c->active_ms = uv_now(c->srv->loop); /* idle from its answer on */

    json_t *m;
    if (rc < 0) {
        json_decref(result);
        struct ctl_error e = {{0}, {0}};
        if (err != NULL)
            e = *err;
        if (e.code[0] == '\0')
            snprintf(e.code, sizeof e.code, "%s", ctl_error_code_for(rc));
        if (e.message[0] == '\0')
            snprintf(e.message, sizeof e.message, "%s", xe_strerror(rc));
        m = ctl_response_error(true, d->id, &e);
    } else {
        m = ctl_response_ok(d->id, result);
    }
    send_msg(c, m);
    json_decref(m);
    free(d);
}
