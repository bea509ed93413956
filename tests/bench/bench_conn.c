/* bench_conn.c: one component connection of the load generator.  It speaks
 * XEP-0114 §3 (stream header to the component's JID, the server's stream id,
 * <handshake> with hex SHA-1 of id + secret, <handshake/> back), then either
 * sends the pair's messages (sender) or receives them and updates the pair's
 * counters (receiver).  Memory of a connection belongs to its pair in
 * struct bench; the libuv handle is closed only through uv_close(). */
#include "bench.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound for one element from the server; the daemon's own stanza limit
 * is 256 KiB, this leaves room for a message near it. */
#define CONN_MAX_ELEM (1024 * 1024)
#define CONN_READ_ROOM 65536

struct wreq {
    uv_write_t req;
    struct bench_conn *c;
    size_t len;
    char data[];
};

static struct wreq *wreq_new(struct bench_conn *c, size_t cap)
{
    struct wreq *w = malloc(sizeof(*w) + cap);
    if (w == NULL)
        return NULL;
    w->c = c;
    w->len = 0;
    return w;
}

static void fail(struct bench_conn *c, const char *what)
{
    if (c->st == BENCH_CONN_CLOSING || c->st == BENCH_CONN_CLOSED)
        return;
    bench_on_conn_failed(c->b, c, what);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct bench_conn *c = w->c;
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        char msg[128];
        snprintf(msg, sizeof(msg), "write failed: %s", uv_strerror(status));
        fail(c, msg);
    }
}

/* Queues w on the connection; takes w. */
static int conn_send(struct bench_conn *c, struct wreq *w)
{
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        free(w);
        char msg[128];
        snprintf(msg, sizeof(msg), "write failed: %s", uv_strerror(rc));
        fail(c, msg);
    }
    return rc;
}

static int conn_send_str(struct bench_conn *c, const char *s, size_t n)
{
    struct wreq *w = wreq_new(c, n);
    if (w == NULL) {
        fail(c, "out of memory");
        return UV_ENOMEM;
    }
    memcpy(w->data, s, n);
    w->len = n;
    return conn_send(c, w);
}

void bench_conn_prepare(struct bench *b, struct bench_conn *c, struct bench_pair *p,
                        int is_receiver, const char *name, unsigned target)
{
    memset(c, 0, sizeof(*c));
    c->b = b;
    c->pair = p;
    c->is_receiver = is_receiver;
    c->st = BENCH_CONN_IDLE;
    bench_conn_retarget(b, c, target);
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->jid, sizeof(c->jid), "%s.%s", name, b->o.domain);
    bench_scan_init(&c->scan, CONN_MAX_ELEM);
}

void bench_conn_retarget(struct bench *b, struct bench_conn *c, unsigned target)
{
    c->target_idx = target;
    c->addr = (const struct sockaddr *)&b->addrs[target];
    c->target = b->o.targets[target];
}

static void on_close(uv_handle_t *h)
{
    struct bench_conn *c = h->data;
    c->handle_open = 0;
    c->st = BENCH_CONN_CLOSED;
    bench_scan_free(&c->scan);
    bench_on_closed(c->b, c);
}

void bench_conn_abort(struct bench_conn *c)
{
    if (c->handle_open) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
            c->st = BENCH_CONN_CLOSING;
            uv_close((uv_handle_t *)&c->tcp, on_close);
        }
    } else {
        c->st = BENCH_CONN_CLOSED;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the read side sees EOF or the final timer aborts */
}

void bench_conn_finish(struct bench_conn *c)
{
    if (!c->handle_open || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->st == BENCH_CONN_IDLE || c->st == BENCH_CONN_CONNECTING ||
        c->st == BENCH_CONN_CLOSING) {
        bench_conn_abort(c);
        return;
    }
    /* RFC 6120 §4.4: close our stream, then wait for the server's. */
    static const char close_tag[] = "</stream:stream>";
    if (conn_send_str(c, close_tag, sizeof(close_tag) - 1) < 0)
        return;
    c->st = BENCH_CONN_CLOSING;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        bench_conn_abort(c);
}

/* XEP-0114 §3: the handshake is the lower-case hex SHA-1 of the stream id
 * followed by the shared secret. */
static int send_handshake(struct bench_conn *c, const char *id)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    size_t idlen = strlen(id), slen = strlen(c->secret);
    char *in = malloc(idlen + slen + 1);
    if (in == NULL)
        return -1;
    memcpy(in, id, idlen);
    memcpy(in + idlen, c->secret, slen);
    int ok = EVP_Digest(in, idlen + slen, md, &mdlen, EVP_sha1(), NULL);
    free(in);
    if (!ok || mdlen != 20)
        return -1;
    char out[64];
    int n = snprintf(out, sizeof(out), "<handshake>");
    for (unsigned i = 0; i < mdlen; i++)
        n += snprintf(out + n, sizeof(out) - (size_t)n, "%02x", md[i]);
    n += snprintf(out + n, sizeof(out) - (size_t)n, "</handshake>");
    return conn_send_str(c, out, (size_t)n);
}

/* Reads "<seq>:<ts>:" at the start of a body; returns 0 or -1. */
static int parse_body(const char *t, long n, uint64_t *seq, uint64_t *ts)
{
    uint64_t v[2] = {0, 0};
    long i = 0;
    for (int k = 0; k < 2; k++) {
        long start = i;
        while (i < n && t[i] >= '0' && t[i] <= '9')
            v[k] = v[k] * 10 + (uint64_t)(t[i++] - '0');
        if (i == start || i >= n || t[i] != ':' || i - start > 19)
            return -1;
        i++;
    }
    *seq = v[0];
    *ts = v[1];
    return 0;
}

static void record(struct bench *b, struct bench_pair *p, uint64_t seq, uint64_t ts,
                   uint64_t now)
{
    if (seq >= p->sent) {
        b->bad++;
        return;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (p->seen[seq >> 3] & bit) {
        p->duplicates++;
        return;
    }
    p->seen[seq >> 3] |= bit;
    p->received++;
    p->last_progress = now;
    if (now > p->last_recv_at && now - p->last_recv_at > p->max_gap)
        p->max_gap = now - p->last_recv_at;
    p->last_recv_at = now;
    if (seq < p->released_below && p->released > 0)
        p->released--; /* given up, arrived after all: its slot was freed then */
    b->total_received++;
    if (seq + 1 < p->highest)
        p->out_of_order++;
    else
        p->highest = seq + 1;
    bench_hist_add(&b->lat, now >= ts ? now - ts : 0);
    b->t_last_recv = now;
}

static void report_error_stanza(struct bench_conn *c, const struct bench_elem *e)
{
    c->b->errors++;
    if (c->b->errors <= 3)
        fprintf(stderr, "xmppd-bench: %s got an error stanza: %.*s\n", c->name,
                (int)(e->len > 400 ? 400 : e->len), e->p);
}

/* A message bounced back to its sender (RFC 6120 §8.3: the error reply
 * carries the original body) was not delivered: its window slot is freed at
 * once instead of after --stall, but the pair sends again only on its next
 * delivery or the next stall tick (--stall / 4), as a client told 'wait'
 * would (RFC 6120 §8.3.2).  It counts as lost; should it still arrive it
 * counts as a duplicate. */
static void settle_bounce(struct bench_conn *c, const struct bench_elem *e, uint64_t now)
{
    struct bench *b = c->b;
    struct bench_pair *p = c->pair;
    const char *t;
    uint64_t seq, ts;

    if (c->is_receiver || (b->phase != BENCH_PHASE_RUN && b->phase != BENCH_PHASE_DRAIN))
        return;
    long n = bench_elem_child_text(e, "body", &t);
    if (n < 0 || parse_body(t, n, &seq, &ts) < 0 || seq >= p->sent ||
        seq < p->released_below)
        return;
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (p->seen[seq >> 3] & bit)
        return;
    p->seen[seq >> 3] |= bit;
    p->released++;
    p->last_progress = now;
}

static void on_message(struct bench_conn *c, const struct bench_elem *e, uint64_t now)
{
    struct bench *b = c->b;
    char type[16];

    if (bench_elem_attr(e, "type", type, sizeof(type)) >= 0 &&
        strcmp(type, "error") == 0) {
        report_error_stanza(c, e);
        settle_bounce(c, e, now);
        return;
    }
    if (!c->is_receiver || b->phase == BENCH_PHASE_DONE || b->phase == BENCH_PHASE_SETUP)
        return;
    const char *t;
    long n = bench_elem_child_text(e, "body", &t);
    uint64_t seq, ts;
    if (n < 0 || parse_body(t, n, &seq, &ts) < 0) {
        b->bad++;
        return;
    }
    /* Delivered to the right component, from the right one, unchanged
     * (RFC 6120 §8.1.1, §8.1.2: the server keeps 'to' and 'from'). */
    char from[320], to[320];
    if (bench_elem_attr(e, "from", from, sizeof(from)) < 0 ||
        bench_elem_attr(e, "to", to, sizeof(to)) < 0 ||
        strcmp(from, c->pair->a.jid) != 0 || strcmp(to, c->jid) != 0) {
        if (b->misrouted++ == 0)
            fprintf(stderr, "xmppd-bench: %s got a message not from its sender: %.*s\n",
                    c->name, (int)(e->len > 300 ? 300 : e->len), e->p);
        return;
    }
    record(b, c->pair, seq, ts, now);
}

/* XEP-0199 §4.1: a server may ping a component; answer so that it never
 * counts the bench's sessions as dead. */
static void on_iq(struct bench_conn *c, const struct bench_elem *e)
{
    char type[16], id[128], from[320];
    const char *t;

    if (bench_elem_attr(e, "type", type, sizeof(type)) < 0)
        return;
    if (strcmp(type, "error") == 0) {
        report_error_stanza(c, e);
        return;
    }
    if (strcmp(type, "get") != 0 || bench_elem_attr(e, "id", id, sizeof(id)) < 0 ||
        bench_elem_attr(e, "from", from, sizeof(from)) < 0 ||
        bench_elem_child_text(e, "ping", &t) < 0)
        return;
    /* id and from were decoded; they are echoed back inside quotes, so refuse
     * anything that would need escaping rather than escape it. */
    if (strpbrk(id, "<>&'\"") || strpbrk(from, "<>&'\""))
        return;
    char out[1024];
    int n = snprintf(out, sizeof(out), "<iq type='result' id='%s' to='%s' from='%s'/>",
                     id, from, c->jid);
    if (n > 0 && (size_t)n < sizeof(out))
        conn_send_str(c, out, (size_t)n);
}

static void on_stanza(struct bench_conn *c, const struct bench_elem *e, uint64_t now)
{
    if (bench_elem_is(e, "message")) {
        on_message(c, e, now);
    } else if (bench_elem_is(e, "stream:error")) {
        char msg[600];
        snprintf(msg, sizeof(msg), "stream error: %.*s",
                 (int)(e->len > 500 ? 500 : e->len), e->p);
        fail(c, msg);
    } else if (bench_elem_is(e, "handshake")) {
        if (c->st != BENCH_CONN_HANDSHAKE_SENT) {
            fail(c, "unexpected <handshake/>");
            return;
        }
        c->st = BENCH_CONN_READY;
        bench_on_ready(c->b, c);
    } else if (bench_elem_is(e, "iq")) {
        on_iq(c, e);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct bench_conn *c = h->data;
    (void)suggested;
    if (bench_scan_room(&c->scan, CONN_READ_ROOM) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(c->scan.buf + c->scan.len, (unsigned)(c->scan.cap - c->scan.len));
}

static void on_header(struct bench_conn *c, const struct bench_elem *e)
{
    char id[256];

    if (c->st != BENCH_CONN_HEADER_SENT) {
        fail(c, "unexpected stream header");
        return;
    }
    if (bench_elem_attr(e, "id", id, sizeof(id)) <= 0) {
        fail(c, "stream header without id (XEP-0114 §3)");
        return;
    }
    if (send_handshake(c, id) < 0) {
        fail(c, "cannot compute the handshake");
        return;
    }
    c->st = BENCH_CONN_HANDSHAKE_SENT;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct bench_conn *c = s->data;
    struct bench_elem e;
    (void)buf;

    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->st == BENCH_CONN_CLOSING) {
            bench_conn_abort(c);
            return;
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "connection lost: %s",
                 nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        fail(c, msg);
        return;
    }
    c->scan.len += (size_t)nread;
    if (c->st == BENCH_CONN_CLOSING) {
        c->scan.pos = c->scan.len; /* draining towards EOF */
        return;
    }
    uint64_t now = uv_hrtime();
    for (;;) {
        int ev = bench_scan_next(&c->scan, &e);
        if (ev == BENCH_EV_MORE)
            break;
        if (ev < 0) {
            fail(c, "cannot parse what the server sent");
            return;
        }
        if (ev == BENCH_EV_HEADER)
            on_header(c, &e);
        else if (ev == BENCH_EV_END)
            fail(c, "server closed the stream");
        else
            on_stanza(c, &e, now);
        if (c->st == BENCH_CONN_CLOSING || c->st == BENCH_CONN_CLOSED)
            return;
    }
    if (c->is_receiver && c->st == BENCH_CONN_READY) {
        bench_pair_pump(c->b, c->pair);
        bench_on_progress(c->b);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct bench_conn *c = req->data;

    if (c->st != BENCH_CONN_CONNECTING)
        return; /* aborted meanwhile */
    if (status < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "connect to %s failed: %s", c->target,
                 uv_strerror(status));
        fail(c, msg);
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(c, uv_strerror(rc));
        return;
    }
    /* XEP-0114 §3: the component opens a stream to its own JID. */
    char hdr[512];
    int n =
        snprintf(hdr, sizeof(hdr),
                 "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
                 c->jid);
    if (conn_send_str(c, hdr, (size_t)n) < 0)
        return;
    c->st = BENCH_CONN_HEADER_SENT;
}

int bench_conn_start(struct bench_conn *c)
{
    bench_scan_free(&c->scan); /* a reconnect starts a new stream */
    bench_scan_init(&c->scan, CONN_MAX_ELEM);
    int rc = uv_tcp_init(c->b->loop, &c->tcp);
    if (rc < 0)
        return rc;
    c->handle_open = 1;
    c->b->open_conns++;
    c->tcp.data = c;
    c->creq.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    c->st = BENCH_CONN_CONNECTING;
    rc = uv_tcp_connect(&c->creq, &c->tcp, c->addr, on_connect);
    if (rc < 0) {
        bench_conn_abort(c);
        return rc;
    }
    return 0;
}

/* Grows the pair's bitmap of received seqs to cover `bits` seqs. */
static int grow_seen(struct bench_pair *p, uint64_t bits)
{
    if (bits <= p->seen_bits)
        return 0;
    uint64_t nbits = p->seen_bits ? p->seen_bits : 4096;
    while (nbits < bits)
        nbits *= 2;
    uint8_t *ns = realloc(p->seen, (size_t)(nbits / 8));
    if (ns == NULL)
        return -1;
    memset(ns + p->seen_bits / 8, 0, (size_t)((nbits - p->seen_bits) / 8));
    p->seen = ns;
    p->seen_bits = nbits;
    return 0;
}

void bench_pair_pump(struct bench *b, struct bench_pair *p)
{
    if (b->phase != BENCH_PHASE_RUN || p->a.st != BENCH_CONN_READY)
        return;
    uint64_t inflight = p->sent - p->received - p->released;
    if (inflight >= b->o.window)
        return;
    uint64_t n = b->o.window - inflight;
    if (b->o.count && p->sent + n > b->o.count)
        n = b->o.count - p->sent;
    if (n == 0)
        return;
    if (grow_seen(p, p->sent + n) < 0) {
        fail(&p->a, "out of memory");
        return;
    }
    /* Body: "<seq>:<send time, monotonic ns>:" padded with 'x' to --size. */
    size_t per = 160 + strlen(p->a.jid) + strlen(p->b.jid) + b->o.size;
    struct wreq *w = wreq_new(&p->a, (size_t)n * per);
    if (w == NULL) {
        fail(&p->a, "out of memory");
        return;
    }
    uint64_t now = uv_hrtime();
    if (inflight == 0)
        p->last_progress = now;
    char *o = w->data;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = p->sent + i;
        int h = snprintf(o, per, "<message to='%s' from='%s' id='%" PRIu64 "'><body>",
                         p->b.jid, p->a.jid, seq);
        o += h;
        int bl = snprintf(o, 48, "%" PRIu64 ":%" PRIu64 ":", seq, now);
        if ((unsigned)bl < b->o.size) {
            memset(o + bl, 'x', b->o.size - (unsigned)bl);
            bl = (int)b->o.size;
        }
        o += bl;
        memcpy(o, "</body></message>", 17);
        o += 17;
    }
    w->len = (size_t)(o - w->data);
    p->sent += n;
    b->total_sent += n;
    conn_send(&p->a, w);
}

uint64_t bench_pair_release(struct bench_pair *p, uint64_t now)
{
    uint64_t inflight = p->sent - p->received - p->released;
    p->released += inflight;
    p->released_below = p->sent;
    p->last_progress = now;
    return inflight;
}

void bench_check_stalls(struct bench *b, uint64_t now)
{
    uint64_t limit = (uint64_t)(b->o.stall * 1e9);
    for (unsigned i = 0; i < b->o.pairs; i++) {
        struct bench_pair *p = &b->pairs[i];
        uint64_t inflight = p->sent - p->received - p->released;
        if (inflight < b->o.window)
            bench_pair_pump(b, p); /* slots freed by bounces */
        if (inflight == 0 || now - p->last_progress < limit)
            continue;
        bench_pair_release(p, now);
        p->stalls++;
        bench_pair_pump(b, p);
    }
}
