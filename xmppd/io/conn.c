/* conn.c: TCP listeners and connections on libuv (contract in conn.h).
 *
 * Lifetime rules, after libuv's own src/unix/stream.c: a handle's memory is
 * freed only in its close callback; every callback first looks at the
 * connection's state, because an earlier callback (or the owner, through a
 * hook) may have started closing it.  States only move forward:
 *
 *   OPEN      the owner knows it; reads are delivered.
 *   DRAINING  the owner asked conn_close: pending bytes are written, then the
 *             write side is shut down; reads are discarded until EOF (but
 *             a TLS handshake holding the owner's bytes is finished first).
 *   CLOSING   uv_close was called; the close callback frees it.
 *
 * TLS (tls.h) sits between the socket and the hooks: a listener with a TLS
 * context sniffs the first byte of each connection (0x16 starts a TLS
 * handshake record, RFC 8446 §5.1; anything else is plaintext), and a
 * connection with a session feeds what it reads to tls_conn_feed and what the
 * owner sends to tls_conn_write; the ciphertext joins the pending buffer.
 * The owner only ever sees plaintext.  What the owner sends between two
 * flushes (conn_mgr_flush) is kept as plaintext and encrypted at the flush
 * in one call: one TLS record (up to 16 KiB, RFC 8446 §5.1) for many small
 * writes instead of one each. */
#include "conn.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "htab.h"
#include "tls.h"

#define READ_BUF_BYTES (64 * 1024)
#define LISTEN_BACKLOG 511

enum conn_state { CONN_OPEN, CONN_DRAINING, CONN_CLOSING };

struct conn {
    uv_tcp_t tcp; /* tcp.data points back here */
    struct conn_mgr *mgr;
    uint64_t id;
    enum conn_state state;
    char peer[64];
    struct buf pending; /* queued, not yet handed to uv_write */
    struct buf plain;   /* TLS: the owner's bytes not encrypted yet (seal) */
    size_t inflight;    /* bytes owned by write requests */
    uv_shutdown_t shut; /* used once, while DRAINING */
    bool shut_started, shut_done, eof;
    bool paused;                /* conn_pause_read: reading stopped by the owner */
    bool untracked;             /* never made it into the id table */
    bool accepted;              /* came from a listener: counts in the limits */
    char ip[INET6_ADDRSTRLEN];  /* accepted: the peer's address, no port */
    uint64_t drain_deadline;    /* uv_now ms, while DRAINING */
    struct hlink hlink;         /* in the id table */
    struct conn *dprev, *dnext; /* dirty list: has something to flush */
    bool dirty;
    struct conn *wprev, *wnext; /* draining list */
    /* TLS: tls is the session once there is one; lctx/mode come from the
     * listener until the first byte decides (sniffed). */
    struct tls_conn *tls;
    struct tls_ctx *lctx;
    enum tls_mode mode;
    bool sniffed, secured;
    bool starttls;   /* TLS came by conn_starttls (not by the first byte) */
    bool connecting; /* outgoing, TCP connect not finished */
    int tag;         /* the listener's, or conn_connect's */
    uv_connect_t creq;
};

struct listener {
    uv_tcp_t tcp;
    struct conn_mgr *mgr;
    int tag;
    char addr[80];
    struct tls_ctx *tls; /* borrowed; NULL: plaintext only */
    enum tls_mode mode;
    struct listener *next;
};

struct write_req {
    uv_write_t req;
    struct conn *c;
    char *data; /* owned */
    size_t len;
};

struct conn_mgr {
    uv_loop_t *loop;
    struct conn_hooks hooks;
    const struct log_sink *log;
    const char *node;
    size_t max_queued;
    struct conn_limits limits;
    size_t accepted;         /* accepted connections not yet freed */
    uint64_t refused;        /* refused by the limits, in all */
    uint64_t refused_quiet;  /* of those, not logged yet */
    uint64_t refused_log_ms; /* when the last refusal line went out */
    bool refused_logged;     /* a refusal line went out at all */
    uint64_t next_id;
    struct htab table;     /* id -> conn (conn.hlink; CONN_OF) */
    struct conn *dirty;    /* head of the dirty list */
    struct conn *draining; /* head of the draining list */
    struct listener *listeners;
    size_t open_listeners; /* listener handles not yet closed */
    uv_timer_t drain_timer;
    bool drain_timer_closed;
    bool shutting_down, drained_called;
    struct log_rate bad_rate;  /* window 0: every bad connection logged */
    char rbuf[READ_BUF_BYTES]; /* reads are consumed synchronously */
};

static void maybe_drained(struct conn_mgr *m);
static void on_drain_timer(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* ---- id table ---- */

#define CONN_OF(l) HTAB_ENTRY(l, struct conn, hlink)

static uint64_t conn_hash(const struct hlink *l)
{
    return htab_hash_u64(CONN_OF(l)->id);
}

static struct conn *lookup(const struct conn_mgr *m, uint64_t id)
{
    for (struct hlink *l = htab_head(&m->table, htab_hash_u64(id)); l != NULL;
         l = l->next)
        if (CONN_OF(l)->id == id)
            return CONN_OF(l);
    return NULL;
}

/* table_insert adds c by its id; it cannot fail (htab.h: a table that
 * cannot double keeps longer chains). */
static int table_insert(struct conn_mgr *m, struct conn *c)
{
    htab_add(&m->table, &c->hlink, htab_hash_u64(c->id), conn_hash);
    return 0;
}

static void table_remove(struct conn_mgr *m, struct conn *c)
{
    htab_del(&m->table, &c->hlink, htab_hash_u64(c->id));
}

/* ---- intrusive lists ---- */

static void dirty_add(struct conn *c)
{
    struct conn_mgr *m = c->mgr;

    if (c->dirty)
        return;
    c->dirty = true;
    c->dprev = NULL;
    c->dnext = m->dirty;
    if (m->dirty != NULL)
        m->dirty->dprev = c;
    m->dirty = c;
}

static void dirty_remove(struct conn *c)
{
    if (!c->dirty)
        return;
    if (c->dprev != NULL)
        c->dprev->dnext = c->dnext;
    else
        c->mgr->dirty = c->dnext;
    if (c->dnext != NULL)
        c->dnext->dprev = c->dprev;
    c->dirty = false;
    c->dprev = c->dnext = NULL;
}

static void draining_add(struct conn *c)
{
    struct conn_mgr *m = c->mgr;

    c->wprev = NULL;
    c->wnext = m->draining;
    if (m->draining != NULL)
        m->draining->wprev = c;
    m->draining = c;
}

static void draining_remove(struct conn *c)
{
    if (c->wprev != NULL)
        c->wprev->wnext = c->wnext;
    else if (c->mgr->draining == c)
        c->mgr->draining = c->wnext;
    if (c->wnext != NULL)
        c->wnext->wprev = c->wprev;
    c->wprev = c->wnext = NULL;
}

/* ---- closing ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct conn_mgr *m = c->mgr;

    if (!c->untracked)
        table_remove(m, c);
    if (c->accepted)
        m->accepted--;
    tls_conn_free(c->tls);
    buf_free(&c->pending);
    if (c->plain.data != NULL)
        memset(c->plain.data, 0, c->plain.cap);
    buf_free(&c->plain);
    free(c);
    maybe_drained(m);
}

/* begin_close moves c to CLOSING and closes its handle; idempotent. */
static void begin_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_DRAINING)
        draining_remove(c);
    dirty_remove(c);
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* lost ends an OPEN connection that the owner did not close, and tells it. */
static void lost(struct conn *c, int err)
{
    struct conn_mgr *m = c->mgr;
    uint64_t id = c->id;

    if (c->state != CONN_OPEN) {
        begin_close(c);
        return;
    }
    LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " connection from %s ended: %s", m->node, id,
        c->peer, err == 0 ? "end of stream" : uv_strerror(err));
    begin_close(c);
    m->hooks.gone(m->hooks.ud, id, err);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    c->shut_done = true;
    if (c->state == CONN_CLOSING)
        return;
    /* Our side is done; wait for the peer's EOF so that unread data does not
     * turn our close into a reset that could destroy what we just sent. */
    if (status < 0 || c->eof)
        begin_close(c);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct conn *c = wr->c;

    c->inflight -= wr->len;
    free(wr->data);
    free(wr);
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0)
        lost(c, status);
}

/* tls_holding: c's TLS session still holds plaintext the owner sent before
 * the handshake ended.  A DRAINING connection then keeps reading (to finish
 * the handshake) and puts its shutdown off until those bytes are out. */
static bool tls_holding(const struct conn *c)
{
    return c->tls != NULL && tls_conn_held(c->tls) > 0 && !tls_conn_failed(c->tls);
}

/* seal encrypts the plaintext the owner sent since the last flush in one
 * tls_conn_write (held there until the handshake ends) and moves the
 * ciphertext to pending.  A session that failed or closed meanwhile drops
 * it (nothing more can go out on it).  0 or XE_NOMEM / XE_TLS. */
static int seal(struct conn *c)
{
    int rc;

    if (c->tls == NULL || c->plain.len == 0)
        return 0;
    rc = tls_conn_write(c->tls, c->plain.data, c->plain.len);
    memset(c->plain.data, 0, c->plain.len);
    /* Freed, not kept: an idle connection holds no plaintext buffer (its
     * size was that of the largest batch ever sent). */
    buf_free(&c->plain);
    if (rc == XE_STATE)
        rc = 0;
    if (rc == 0)
        rc = tls_conn_take_out(c->tls, &c->pending);
    return rc;
}

/* flush_one hands c's pending bytes to libuv and, when c is DRAINING and
 * nothing is left, starts the shutdown. */
static void flush_one(struct conn *c)
{
    struct write_req *wr;
    uv_buf_t b;
    int rc;

    if (c->state == CONN_CLOSING)
        return;
    if (seal(c) < 0) {
        lost(c, UV_ENOMEM);
        return;
    }
    if (c->connecting)
        return;
    if (c->pending.len > 0 && c->inflight == 0) {
        /* Nothing queued in libuv: write now.  What the socket takes at
         * once needs no request, no copy kept and no EPOLLOUT interest
         * (uv_write adds and drops it, one epoll_ctl per write); only the
         * rest is queued below. */
        b = uv_buf_init(c->pending.data, (unsigned)c->pending.len);
        rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (rc < 0 && rc != UV_EAGAIN) {
            lost(c, rc);
            return;
        }
        if (rc > 0)
            buf_consume(&c->pending, (size_t)rc);
        if (c->pending.len == 0)
            buf_free(&c->pending);
    }
    if (c->pending.len > 0) {
        wr = malloc(sizeof *wr);
        if (wr == NULL) {
            lost(c, UV_ENOMEM);
            return;
        }
        wr->c = c;
        wr->len = c->pending.len;
        wr->data = buf_steal(&c->pending);
        if (wr->data == NULL) {
            free(wr);
            lost(c, UV_ENOMEM);
            return;
        }
        b = uv_buf_init(wr->data, (unsigned)wr->len);
        rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
        if (rc < 0) {
            free(wr->data);
            free(wr);
            lost(c, rc);
            return;
        }
        c->inflight += wr->len;
    }
    if (c->state == CONN_DRAINING && !c->shut_started && !tls_holding(c)) {
        c->shut_started = true;
        c->shut.data = c;
        /* uv_shutdown waits for the queued writes (libuv stream.c). */
        rc = uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown);
        if (rc < 0)
            begin_close(c);
    }
}

void conn_mgr_flush(struct conn_mgr *m)
{
    /* lost() may call the owner, which may queue more: pop one at a time. */
    while (m->dirty != NULL) {
        struct conn *c = m->dirty;
        dirty_remove(c);
        flush_one(c);
    }
}

int conn_send(struct conn_mgr *m, uint64_t id, const char *data, size_t len)
{
    struct conn *c = lookup(m, id);
    size_t queued;

    if (c == NULL)
        return XE_NOTFOUND;
    if (c->state != CONN_OPEN)
        return XE_CLOSED;
    /* Plaintext a TLS session holds until its handshake ends is queued too:
     * without it a peer that never finishes the handshake lets the owner
     * queue without bound. */
    queued = c->pending.len + c->plain.len + c->inflight +
             (c->tls != NULL ? tls_conn_held(c->tls) : 0);
    if (queued + len > m->max_queued) {
        LOG(m->log, LOG_WARN, "%s c%" PRIu64 " write queue full (%zu bytes queued)",
            m->node, id, queued);
        return XE_BUSY;
    }
    if (c->tls != NULL) {
        /* A write of nothing only asks whether the session takes more. */
        if (tls_conn_write(c->tls, data, 0) == XE_STATE)
            return XE_CLOSED;
        if (buf_append(&c->plain, data, len) < 0)
            return XE_NOMEM;
    } else if (buf_append(&c->pending, data, len) < 0) {
        return XE_NOMEM;
    }
    dirty_add(c);
    return 0;
}

/* start_drain moves an OPEN connection to DRAINING: what is pending goes
 * out, then the write side is shut down (flush_one). */
static void start_drain(struct conn *c)
{
    struct conn_mgr *m = c->mgr;

    /* Shutting down: an outgoing connection still connecting has nothing
     * worth a drain timeout. */
    if (c->connecting && m->shutting_down) {
        begin_close(c);
        return;
    }

    if (c->tls != NULL) {
        /* close_notify after the last bytes (RFC 8446 §6.1). */
        if (seal(c) < 0)
            LOG(m->log, LOG_WARN, "%s c%" PRIu64 " no memory for the last TLS bytes",
                m->node, c->id);
        tls_conn_close(c->tls);
        if (tls_conn_take_out(c->tls, &c->pending) < 0)
            LOG(m->log, LOG_WARN, "%s c%" PRIu64 " no memory for the TLS close", m->node,
                c->id);
    }
    c->state = CONN_DRAINING;
    c->drain_deadline = uv_now(m->loop) + CONN_DRAIN_MS;
    draining_add(c);
    dirty_add(c);
    if (!uv_is_active((uv_handle_t *)&m->drain_timer) && !m->drain_timer_closed)
        uv_timer_start(&m->drain_timer, on_drain_timer, 250, 250);
}

void conn_abort(struct conn_mgr *m, uint64_t id)
{
    struct conn *c = lookup(m, id);

    if (c == NULL || c->state == CONN_CLOSING)
        return;
    begin_close(c);
}

void conn_mgr_limit_bad_logs(struct conn_mgr *m, uint64_t window_ms)
{
    memset(&m->bad_rate, 0, sizeof m->bad_rate);
    m->bad_rate.window_ms = window_ms;
}

/* bad_log_ok tells whether a warning about a bad connection may be written
 * now (conn_mgr_limit_bad_logs); *held: lines held back before it. */
static bool bad_log_ok(struct conn_mgr *m, unsigned *held)
{
    *held = 0;
    if (m->bad_rate.window_ms == 0)
        return true;
    return log_rate_take(&m->bad_rate, uv_now(m->loop), held);
}

void conn_close(struct conn_mgr *m, uint64_t id)
{
    struct conn *c = lookup(m, id);

    if (c == NULL || c->state != CONN_OPEN)
        return;
    /* A drain ends at the peer's EOF: read again (if that fails, the
     * drain timeout ends it). */
    if (c->paused && !c->eof) {
        c->paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    start_drain(c);
}

void conn_pause_read(struct conn_mgr *m, uint64_t id, bool paused)
{
    struct conn *c = lookup(m, id);
    int rc;

    if (c == NULL || c->state != CONN_OPEN || c->eof || c->paused == paused)
        return;
    c->paused = paused;
    if (paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        /* Called from inside the owner (srv's env): no hook now.  The
         * owner's next write to id fails and ends its session. */
        LOG(m->log, LOG_WARN, "%s c%" PRIu64 " cannot read %s again: %s", m->node, id,
            c->peer, uv_strerror(rc));
        begin_close(c);
    }
}

/* lost_draining ends an OPEN connection the owner did not close, like lost,
 * but still sends what is pending (a TLS alert, a close_notify) first. */
static void lost_draining(struct conn *c, int err)
{
    struct conn_mgr *m = c->mgr;
    uint64_t id = c->id;

    if (c->state != CONN_OPEN)
        return;
    start_drain(c);
    m->hooks.gone(m->hooks.ud, id, err);
}

/* on_drain_timer closes connections whose peers did not finish in time. */
static void on_drain_timer(uv_timer_t *t)
{
    struct conn_mgr *m = t->data;
    uint64_t now = uv_now(m->loop);
    struct conn *c = m->draining, *next;

    for (; c != NULL; c = next) {
        next = c->wnext;
        if (c->drain_deadline <= now) {
            LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " closed after the drain timeout",
                m->node, c->id);
            begin_close(c);
        }
    }
    if (m->draining == NULL)
        uv_timer_stop(t);
}

/* ---- reading ---- */

/* deliver hands what was read from c to the owner in slices of at most
 * CONN_SLICE_BYTES, each its own data call.  The owner writes what a call
 * queued when it returns (conn_mgr_flush), so the first stanzas of a large
 * read go out while the rest is still being parsed: the peer receiving
 * them works in parallel instead of waiting for the whole read
 * (docs/benchmarks.md "Session 8: where one node waits").  TCP splits a stream anywhere,
 * so the owner sees nothing new.  The slicing stops once c is no longer OPEN (the owner
 * closed it: the rest is dropped, as the discarded reads of a DRAINING connection are);
 * after a STARTTLS (conn_starttls) the rest of the read goes to the owner in one call,
 * which drops it (conn.h). */
static void deliver(struct conn *c, const char *bytes, size_t len)
{
    struct conn_mgr *m = c->mgr;
    const struct tls_conn *tls = c->tls;
    /* Slices of equal size: no small last one (a write of its own). */
    size_t k = (len + CONN_SLICE_BYTES - 1) / CONN_SLICE_BYTES;
    size_t each = k > 0 ? (len + k - 1) / k : 0;
    size_t n;

    while (len > 0 && c->state == CONN_OPEN) {
        n = len > each && c->tls == tls ? each : len;
        m->hooks.data(m->hooks.ud, c->id, bytes, n);
        bytes += n;
        len -= n;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct conn *c = h->data;

    *out = uv_buf_init(c->mgr->rbuf, sizeof c->mgr->rbuf);
}

/* sniff decides, from the first byte a listener with TLS received, whether
 * the connection speaks TLS.  Returns false when c was closed. */
/* held_note words the count of warnings held back (log_rate) for the end
 * of the next line; "" when none. */
static const char *held_note(unsigned held, char *buf, size_t len)
{
    if (held == 0)
        return "";
    snprintf(buf, len, " (and %u more like it in the last second, not logged)", held);
    return buf;
}

static bool sniff(struct conn *c, unsigned char first)
{
    char note[80];
    unsigned held;

    struct conn_mgr *m = c->mgr;
    int rc;

    c->sniffed = true;
    /* A TLS connection starts with a handshake record (RFC 8446 §5.1,
     * ContentType handshake = 22); an XML stream with '<' (RFC 6120 §4.2). */
    if (first == 0x16) {
        if (c->tls != NULL)
            return true; /* conn_starttls made the session already */
        rc = tls_conn_new(c->lctx, NULL, &c->tls);
        if (rc == 0)
            return true;
        LOG(m->log, LOG_ERROR, "%s c%" PRIu64 " cannot start TLS for %s: %s", m->node,
            c->id, c->peer, xe_strerror(rc));
        lost(c, UV_ENOMEM);
        return false;
    }
    if (c->mode != TLS_MODE_REQUIRED)
        return true;
    if (!bad_log_ok(m, &held)) {
        /* held back: counted for the next line */
    } else if (c->starttls)
        /* RFC 6120 §5.4.3.3: after <starttls/> the client waits for
         * <proceed/> and then starts TLS; more plaintext is a protocol
         * error, and none of it may reach the owner as if secured. */
        LOG(m->log, LOG_WARN,
            "%s c%" PRIu64 " closed connection from %s: plaintext after STARTTLS "
            "instead of a TLS ClientHello (first byte 0x%02x; RFC 6120 "
            "5.4.3.3)%s",
            m->node, c->id, c->peer, first, held_note(held, note, sizeof note));
    else if (first == '<')
        LOG(m->log, LOG_WARN,
            "%s c%" PRIu64 " closed connection from %s: plaintext XML on a port "
            "that requires TLS (connect with direct TLS)%s",
            m->node, c->id, c->peer, held_note(held, note, sizeof note));
    else
        LOG(m->log, LOG_WARN,
            "%s c%" PRIu64 " closed connection from %s: not a TLS ClientHello "
            "(first byte 0x%02x) on a port that requires TLS%s",
            m->node, c->id, c->peer, first, held_note(held, note, sizeof note));
    lost(c, UV_EPROTO);
    return false;
}

/* tls_input passes ciphertext through c's session: handshake bytes go out,
 * plaintext goes to the owner, failures are logged and end c. */
static void tls_input(struct conn *c, const char *bytes, size_t len)
{
    struct conn_mgr *m = c->mgr;
    struct buf plain = {0};
    uint64_t id = c->id;
    bool was_secured = c->secured;
    int rc = tls_conn_feed(c->tls, bytes, len, &plain);
    char note[80];
    unsigned held;

    if (tls_conn_take_out(c->tls, &c->pending) < 0 && rc == 0)
        rc = XE_NOMEM;
    if (c->pending.len > 0)
        dirty_add(c);
    if (tls_conn_established(c->tls) && !c->secured) {
        c->secured = true;
        LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " TLS with %s established%s: %s %s",
            m->node, id, c->peer, c->starttls ? " after STARTTLS" : "",
            tls_conn_version(c->tls), tls_conn_cipher(c->tls));
        if (m->hooks.secured != NULL && c->state == CONN_OPEN)
            m->hooks.secured(m->hooks.ud, id);
    }
    deliver(c, plain.data, plain.len);
    if (plain.data != NULL)
        memset(plain.data, 0, plain.cap);
    buf_free(&plain);
    if (c->state == CONN_OPEN && rc < 0) {
        if (rc == XE_CLOSED)
            LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " TLS close_notify from %s", m->node,
                id, c->peer);
        else if (rc == XE_TLS && bad_log_ok(m, &held))
            LOG(m->log, LOG_WARN, "%s c%" PRIu64 " TLS %s with %s failed%s: %s%s",
                m->node, id, was_secured ? "session" : "handshake", c->peer,
                !was_secured && c->starttls ? " after STARTTLS" : "",
                tls_conn_error(c->tls), held_note(held, note, sizeof note));
        else if (rc == XE_TLS) {
            /* held back: counted for the next line */
        } else
            LOG(m->log, LOG_ERROR, "%s c%" PRIu64 " TLS with %s: %s", m->node, id,
                c->peer, xe_strerror(rc));
        lost_draining(c, rc == XE_CLOSED ? 0 : UV_EPROTO);
    }
    /* A DRAINING connection may now be ready for its shutdown (the handshake
     * ended, or failed). */
    if (c->state == CONN_DRAINING)
        dirty_add(c);
    /* Handshake bytes and alerts were queued without the owner. */
    conn_mgr_flush(m);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;

    if (nread > 0) {
        if (c->state == CONN_DRAINING && tls_holding(c)) {
            tls_input(c, b->base, (size_t)nread);
            return;
        }
        if (c->state != CONN_OPEN)
            return;
        if (!c->sniffed && !sniff(c, (unsigned char)b->base[0]))
            return;
        if (c->tls != NULL)
            tls_input(c, b->base, (size_t)nread);
        else
            deliver(c, b->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    c->eof = true;
    uv_read_stop(s);
    switch (c->state) {
    case CONN_OPEN:
        lost(c, nread == UV_EOF ? 0 : (int)nread);
        break;
    case CONN_DRAINING:
        /* Holding: the handshake cannot end now, nothing more will go out. */
        if (c->shut_done || nread != UV_EOF || tls_holding(c))
            begin_close(c);
        break;
    case CONN_CLOSING:
        break;
    }
}

/* ---- accepting ---- */

/* peer_ip writes the address of ss without its port into ip. */
static void peer_ip(const struct sockaddr_storage *ss, char ip[INET6_ADDRSTRLEN])
{
    snprintf(ip, INET6_ADDRSTRLEN, "?");
    if (ss->ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)ss, ip, INET6_ADDRSTRLEN);
    else if (ss->ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)ss, ip, INET6_ADDRSTRLEN);
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, outlen, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        snprintf(out, outlen, "unknown");
    }
}

/* announce_and_read tells the owner that c is open (unless the owner already
 * closed it: an outgoing connection closed while connecting) and starts
 * reading.  Returns false when c is closing afterwards. */
static bool announce_and_read(struct conn *c, int tag)
{
    struct conn_mgr *m = c->mgr;
    int rc;

    if (c->state == CONN_OPEN) {
        rc = m->hooks.opened(m->hooks.ud, c->id, tag, c->peer);
        if (rc < 0) {
            begin_close(c);
            return false;
        }
        /* The hook may have closed it (conn_mgr_shutdown, say). */
        if (c->state == CONN_CLOSING)
            return false;
    }
    /* A DRAINING connection reads too: its EOF ends the drain. */
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        lost(c, rc);
        return false;
    }
    return true;
}

/* from_addr counts the accepted connections from ip.  A walk over the
 * table: it holds at most limits.max_conns accepted connections (plus the
 * owner's outgoing ones), and it runs once per accept. */
static unsigned from_addr(const struct conn_mgr *m, const char *ip)
{
    unsigned n = 0;

    for (size_t i = 0; i < m->table.nb; i++)
        for (const struct hlink *l = m->table.b[i]; l != NULL; l = l->next)
            n += CONN_OF(l)->accepted && strcmp(CONN_OF(l)->ip, ip) == 0;
    return n;
}

/* over_limit tells whether a connection from ip (accepted, not counted yet)
 * must be refused, and logs it (rate-limited: a flood of refusals must not
 * become a flood of log lines). */
static bool over_limit(struct conn_mgr *m, const struct listener *l, const char *ip)
{
    const struct conn_limits *lim = &m->limits;
    unsigned same = 0;
    uint64_t now;
    char why[160];

    if (lim->max_per_addr != 0 && (same = from_addr(m, ip)) >= lim->max_per_addr) {
        snprintf(why, sizeof why,
                 "%u connections from %s (max-connections-per-address %u)", same, ip,
                 lim->max_per_addr);
    } else if (lim->max_conns != 0 && m->accepted >= lim->max_conns) {
        /* Idle connections renewed at each auth timeout from a few
         * addresses would keep everyone out: the owner may close one that
         * has not logged in instead (hooks.room). */
        if (m->hooks.room != NULL && m->hooks.room(m->hooks.ud))
            return false;
        snprintf(why, sizeof why, "%zu connections open (max-connections %u)",
                 m->accepted, lim->max_conns);
    } else {
        return false;
    }
    m->refused++;
    now = uv_now(m->loop);
    if (m->refused_logged && now - m->refused_log_ms < CONN_REFUSE_LOG_MS) {
        m->refused_quiet++;
        return true;
    }
    if (m->refused_quiet > 0)
        LOG(m->log, LOG_WARN,
            "%s connection on %s from %s refused: %s; %" PRIu64
            " more refused in the last %" PRIu64 " s",
            m->node, l->addr, ip, why, m->refused_quiet,
            (now - m->refused_log_ms + 999) / 1000);
    else
        LOG(m->log, LOG_WARN, "%s connection on %s from %s refused: %s", m->node, l->addr,
            ip, why);
    m->refused_quiet = 0;
    m->refused_log_ms = now;
    m->refused_logged = true;
    return true;
}

void conn_mgr_set_limits(struct conn_mgr *m, const struct conn_limits *l)
{
    m->limits = *l;
}

uint64_t conn_mgr_refused(const struct conn_mgr *m)
{
    return m->refused;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct conn_mgr *m = l->mgr;
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    struct conn *c;
    int rc;

    if (status < 0) {
        LOG(m->log, LOG_WARN, "%s accept on %s failed: %s", m->node, l->addr,
            uv_strerror(status));
        return;
    }
    if (m->shutting_down)
        return;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        LOG(m->log, LOG_ERROR, "%s accept on %s: out of memory", m->node, l->addr);
        return;
    }
    c->mgr = m;
    c->tcp.data = c;
    rc = uv_tcp_init(m->loop, &c->tcp);
    if (rc < 0) {
        free(c);
        return;
    }
    rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    memset(&ss, 0, sizeof ss);
    if (rc == 0 && uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0)
        peer_ip(&ss, c->ip);
    else
        snprintf(c->ip, sizeof c->ip, "unknown");
    if (rc == 0 && over_limit(m, l, c->ip)) {
        /* Closed before the owner or the table knows it: no bytes are read
         * and nothing is allocated for it beyond this. */
        c->untracked = true;
        c->state = CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (rc == 0) {
        c->id = ++m->next_id;
        rc = table_insert(m, c);
    }
    if (rc < 0) {
        /* Not in the table: close it without the table's bookkeeping. */
        LOG(m->log, LOG_WARN, "%s accept on %s failed: %s", m->node, l->addr,
            rc == XE_NOMEM ? "out of memory" : uv_strerror(rc));
        c->untracked = true;
        c->state = CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->state = CONN_OPEN;
    c->accepted = true;
    m->accepted++;
    c->tag = l->tag;
    c->lctx = l->tls;
    c->mode = l->tls != NULL ? l->mode : TLS_MODE_OFF;
    c->sniffed = c->mode == TLS_MODE_OFF;
    /* Stanzas are small and latency matters more than packet count. */
    uv_tcp_nodelay(&c->tcp, 1);
    if (ss.ss_family != 0)
        format_peer(&ss, c->peer, sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "unknown");
    LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " accepted on %s from %s", m->node, c->id,
        l->addr, c->peer);
    announce_and_read(c, l->tag);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct conn_mgr *m = l->mgr;

    free(l);
    m->open_listeners--;
    maybe_drained(m);
}

int conn_listen(struct conn_mgr *m, const char *host, int port, int tag, char *err,
                size_t errlen)
{
    return conn_listen_tls(m, host, port, tag, NULL, TLS_MODE_OFF, err, errlen);
}

/* parse_addr fills ss from a numeric host and port; 0 or XE_INVAL. */
static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    int rc;

    memset(ss, 0, sizeof *ss);
    if (strchr(host, ':') != NULL)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
    return rc < 0 || port <= 0 || port > 65535 ? XE_INVAL : 0;
}

int conn_listen_tls(struct conn_mgr *m, const char *host, int port, int tag,
                    struct tls_ctx *tls, enum tls_mode mode, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    struct listener *l;
    int rc;

    if (parse_addr(host, port, &ss) < 0) {
        snprintf(err, errlen, "bad listen address %s:%d", host, port);
        return XE_INVAL;
    }
    if (mode != TLS_MODE_OFF && (tls == NULL || tls_ctx_role(tls) != TLS_ROLE_SERVER)) {
        snprintf(err, errlen, "TLS on %s:%d needs a server TLS context", host, port);
        return XE_INVAL;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    l->mgr = m;
    l->tag = tag;
    l->tls = mode != TLS_MODE_OFF ? tls : NULL;
    l->mode = mode;
    l->tcp.data = l;
    format_peer(&ss, l->addr, sizeof l->addr);
    rc = uv_tcp_init(m->loop, &l->tcp);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, uv_strerror(rc));
        free(l);
        return XE_IO;
    }
    m->open_listeners++;
    l->next = m->listeners;
    m->listeners = l;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, uv_strerror(rc));
        /* Stays in the list; conn_mgr_shutdown closes it. */
        return XE_IO;
    }
    LOG(m->log, LOG_INFO, "%s listening on %s%s%s", m->node, l->addr,
        mode == TLS_MODE_OFF ? "" : ", TLS ",
        mode == TLS_MODE_OFF ? "" : tls_mode_name(mode));
    return 0;
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct conn_mgr *m = c->mgr;

    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        LOG(m->log, LOG_INFO, "%s c%" PRIu64 " connect to %s failed: %s", m->node, c->id,
            c->peer, uv_strerror(status));
        c->connecting = false;
        lost(c, status);
        return;
    }
    c->connecting = false;
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->state == CONN_OPEN)
        LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " connected to %s", m->node, c->id,
            c->peer);
    if (!announce_and_read(c, c->tag))
        return;
    /* The ClientHello and anything the owner queued meanwhile. */
    if (c->pending.len > 0 || c->state == CONN_DRAINING)
        dirty_add(c);
    conn_mgr_flush(m);
}

int conn_connect(struct conn_mgr *m, const char *host, int port, int tag,
                 struct tls_ctx *tls, const char *verify_name, uint64_t *id, char *err,
                 size_t errlen)
{
    struct sockaddr_storage ss;
    struct conn *c;
    int rc;

    if (parse_addr(host, port, &ss) < 0) {
        snprintf(err, errlen, "bad address %s:%d", host, port);
        return XE_INVAL;
    }
    if (tls != NULL && tls_ctx_role(tls) != TLS_ROLE_CLIENT) {
        snprintf(err, errlen, "connecting with TLS needs a client TLS context");
        return XE_INVAL;
    }
    if (m->shutting_down) {
        snprintf(err, errlen, "shutting down");
        return XE_STATE;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    c->mgr = m;
    c->tcp.data = c;
    c->creq.data = c;
    c->tag = tag;
    c->sniffed = true;
    c->connecting = true;
    format_peer(&ss, c->peer, sizeof c->peer);
    if (tls != NULL) {
        rc = tls_conn_new(tls, verify_name, &c->tls);
        if (rc == 0)
            rc = tls_conn_take_out(c->tls, &c->pending);
        if (rc < 0) {
            snprintf(err, errlen, "cannot start TLS: %s", xe_strerror(rc));
            tls_conn_free(c->tls);
            buf_free(&c->pending);
            free(c);
            return rc;
        }
    }
    rc = uv_tcp_init(m->loop, &c->tcp);
    if (rc < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->peer, uv_strerror(rc));
        tls_conn_free(c->tls);
        buf_free(&c->pending);
        free(c);
        return XE_IO;
    }
    c->id = ++m->next_id;
    rc = table_insert(m, c);
    if (rc == 0) {
        c->state = CONN_OPEN;
        rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss, on_connect);
        if (rc < 0) {
            snprintf(err, errlen, "cannot connect to %s: %s", c->peer, uv_strerror(rc));
            begin_close(c);
            return XE_IO;
        }
    } else {
        snprintf(err, errlen, "out of memory");
        c->untracked = true;
        c->state = CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return rc;
    }
    LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " connecting to %s%s", m->node, c->id, c->peer,
        tls != NULL ? " with TLS" : "");
    *id = c->id;
    return 0;
}

int conn_tls_peer(struct conn_mgr *m, uint64_t id, struct tls_peer_info *out)
{
    struct conn *c = lookup(m, id);

    memset(out, 0, sizeof *out);
    if (c == NULL)
        return XE_NOTFOUND;
    if (c->tls == NULL || !tls_conn_established(c->tls))
        return XE_STATE;
    return tls_conn_peer(c->tls, out);
}

bool conn_is_tls(struct conn_mgr *m, uint64_t id)
{
    struct conn *c = lookup(m, id);

    return c != NULL && c->tls != NULL;
}

int conn_starttls(struct conn_mgr *m, uint64_t id, struct tls_ctx *tls)
{
    struct conn *c = lookup(m, id);
    int rc;

    if (c == NULL)
        return XE_NOTFOUND;
    if (c->state != CONN_OPEN)
        return XE_CLOSED;
    if (tls == NULL || tls_ctx_role(tls) != TLS_ROLE_SERVER)
        return XE_INVAL;
    if (c->tls != NULL || !c->accepted)
        return XE_STATE;
    /* The session exists from now on, so that what the owner sends next
     * is held for the handshake instead of going out in plaintext; what is
     * pending already (the <proceed/>) stays ahead of it, in plaintext. */
    rc = tls_conn_new(tls, NULL, &c->tls);
    if (rc < 0)
        return rc;
    c->starttls = true;
    c->lctx = tls;
    c->mode = TLS_MODE_REQUIRED;
    c->sniffed = false; /* the next byte read must start a handshake */
    if (c->pending.len > 0)
        dirty_add(c);
    LOG(m->log, LOG_DEBUG, "%s c%" PRIu64 " STARTTLS with %s", m->node, id, c->peer);
    return 0;
}

int conn_tls_binding(struct conn_mgr *m, uint64_t id, struct srv_tls_info *out)
{
    struct conn *c = lookup(m, id);

    if (c == NULL)
        return XE_NOTFOUND;
    if (c->tls == NULL || !tls_conn_established(c->tls))
        return XE_STATE;
    return tls_conn_binding(c->tls, out);
}

int conn_tag(struct conn_mgr *m, uint64_t id)
{
    struct conn *c = lookup(m, id);

    return c != NULL ? c->tag : -1;
}

/* ---- the manager ---- */

static void on_drain_timer_closed(uv_handle_t *h)
{
    struct conn_mgr *m = h->data;

    m->drain_timer_closed = true;
    maybe_drained(m);
}

/* maybe_drained finishes a shutdown once nothing is left open. */
static void maybe_drained(struct conn_mgr *m)
{
    if (!m->shutting_down || m->drained_called || m->table.count > 0 ||
        m->open_listeners > 0)
        return;
    if (!m->drain_timer_closed) {
        if (!uv_is_closing((uv_handle_t *)&m->drain_timer))
            uv_close((uv_handle_t *)&m->drain_timer, on_drain_timer_closed);
        return;
    }
    m->drained_called = true;
    m->hooks.drained(m->hooks.ud);
}

int conn_mgr_new(uv_loop_t *loop, const struct conn_hooks *hooks,
                 const struct log_sink *log, const char *node_name, size_t max_queued,
                 struct conn_mgr **out)
{
    struct conn_mgr *m = calloc(1, sizeof *m);

    if (m == NULL)
        return XE_NOMEM;
    if (htab_init(&m->table, 64) < 0) {
        free(m);
        return XE_NOMEM;
    }
    m->loop = loop;
    m->hooks = *hooks;
    m->log = log;
    m->node = node_name;
    m->max_queued = max_queued ? max_queued : CONN_DEFAULT_MAX_QUEUED;
    uv_timer_init(loop, &m->drain_timer);
    m->drain_timer.data = m;
    *out = m;
    return 0;
}

void conn_mgr_shutdown(struct conn_mgr *m)
{
    if (m->shutting_down)
        return;
    m->shutting_down = true;
    for (struct listener *l = m->listeners; l != NULL; l = l->next)
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    m->listeners = NULL;
    for (size_t i = 0; i < m->table.nb; i++) {
        struct hlink *l = m->table.b[i], *next;
        for (; l != NULL; l = next) {
            next = l->next;
            conn_close(m, CONN_OF(l)->id);
        }
    }
    conn_mgr_flush(m);
    maybe_drained(m);
}

void conn_mgr_free(struct conn_mgr *m)
{
    if (m == NULL)
        return;
    htab_fini(&m->table);
    free(m);
}

size_t conn_room(struct conn_mgr *m, uint64_t id)
{
    struct conn *c = lookup(m, id);
    size_t queued;

    if (c == NULL || c->state != CONN_OPEN)
        return 0;
    queued = c->pending.len + c->plain.len + c->inflight +
             (c->tls != NULL ? tls_conn_held(c->tls) : 0);
    return queued < m->max_queued ? m->max_queued - queued : 0;
}

size_t conn_mgr_count(const struct conn_mgr *m)
{
    return m->table.count;
}
