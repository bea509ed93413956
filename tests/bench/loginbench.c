/* loginbench.c: xmppd-loginbench, client logins, idle connections and
 * client-to-client messages against any XMPP server (xmppd, Prosody,
 * ejabberd), over TCP with STARTTLS (RFC 6120 §5) or WebSocket (RFC 7395
 * over RFC 6455, ws or wss).  Modes:
 *
 *   login  N logins, C at a time; each: stream, STARTTLS, SCRAM, bind,
 *          initial presence, ping (XEP-0199), close.  Logins/s, latency
 *          (connect to the server's stream close), the tool's own CPU and the
 *          server's CPU per login (/proc/<pid>/stat, --server-pid).
 *   idle   K connections taken to a stage (stream, tls, bind) and held;
 *          the server's memory (/proc/<pid>/smaps_rollup: Rss, Pss,
 *          private) before and after, per connection.
 *   msg    P pairs of logged-in clients; each sender sends numbered,
 *          timestamped messages to its receiver's full JID with W in flight,
 *          for D seconds; messages/s, latency, and losses, duplicates and
 *          reordering per pair.  With two --target the senders use the
 *          first, the receivers the second.  With --component the receiver
 *          of every pair is one XEP-0114 component (a call bridge) instead.
 *
 * The state machine, transport and modes share this file (about 1,000
 * lines): they are one small program whose parts only make sense together;
 * SCRAM, the scanner and the histogram are separate (loginbench.h). */
#define _GNU_SOURCE
#include "bench.h"
#include "loginbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LB_MAX_TARGETS 2
#define LB_COMP_TARGET LB_MAX_TARGETS /* g.addr slot of the component */
#define LB_MAX_PIDS 8
#define FRAMING_NS "urn:ietf:params:xml:ns:xmpp-framing"

enum lb_mode { MODE_LOGIN, MODE_IDLE, MODE_MSG };
enum lb_goal { GOAL_STREAM, GOAL_TLS, GOAL_BIND };

enum lb_st {
    ST_FREE,
    ST_CONNECTING,
    ST_TLS0,     /* wss: TLS from the first byte */
    ST_HTTP,     /* ws: upgrade sent, waiting for 101 */
    ST_FEAT1,    /* first stream: waiting for features */
    ST_PROCEED,  /* <starttls/> sent */
    ST_TLS,      /* STARTTLS handshake */
    ST_FEAT2,    /* stream after TLS: waiting for features */
    ST_CHALL,    /* <auth/> sent */
    ST_SUCCESS,  /* <response/> sent */
    ST_FEAT3,    /* stream after SASL */
    ST_BIND,     /* bind sent */
    ST_PING,     /* presence and ping sent */
    ST_COMP_HDR, /* component: stream header sent, waiting for its id */
    ST_COMP_HS,  /* component: <handshake> sent (XEP-0114 §3) */
    ST_HELD,     /* idle/msg: at the goal, held open */
    ST_CLOSING,  /* our close sent */
};

struct lb_conn {
    int fd;
    unsigned idx;
    enum lb_st st;
    SSL *ssl;
    int ws;          /* this connection speaks WebSocket */
    int comp;        /* this connection is the component (jabber:component:accept) */
    int ws_open;     /* the upgrade was answered 101 */
    unsigned target; /* index into targets */
    unsigned user;   /* account number, 1-based */
    uint64_t t0;     /* connect started, ns */
    struct bench_scan scan;
    char *out; /* bytes to write (plaintext before SSL) */
    size_t outlen, outcap;
    char *wsin; /* raw WebSocket bytes not yet a whole frame */
    size_t wslen, wscap;
    struct lb_scram scram;
    /* msg mode */
    unsigned pair;
    int sender;
};

struct lb_pair {
    struct lb_conn *a, *b;
    uint64_t sent, received; /* received: distinct numbers (seq.unique) */
    struct lb_seq seq;
};

static struct {
    enum lb_mode mode;
    enum lb_goal goal;
    const char *host[LB_MAX_TARGETS];
    struct sockaddr_in addr[LB_MAX_TARGETS + 1]; /* + the component's */
    unsigned ntargets;
    const char *domain;
    const char *ca;
    const char *tls_name;
    const char *user_prefix;
    const char *password_prefix;
    const char *password;
    unsigned users;
    int sha256;
    int ws, wss;
    char ws_host[256], ws_path[256];
    unsigned n, conc, pairs, window, size, sources;
    double duration, settle, hold, timeout;
    int pids[LB_MAX_PIDS];
    unsigned npids;
    const char *label;
    int header;
    /* msg to a component (XEP-0114): its JID, listener and secret */
    char comp_jid[256];
    const char *comp_secret;
    const char *secrets_file;
    int have_comp, have_comp_target;
    /* run */
    SSL_CTX *ctx;
    int ep;
    struct lb_conn *conns;
    unsigned nconns;
    struct lb_scram_keys *keys; /* one per account */
    char (*passwords)[128];
    char (*usernames)[64];
    unsigned started, finished, ok, failed, at_goal;
    struct bench_hist hist;
    struct lb_pair *pairv;
    int sending;
    uint64_t stop_at;
    uint64_t bad; /* messages with a number never sent, or unreadable */
    char errmsg[256];
    unsigned errcount;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("xmppd-loginbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- /proc readings ---------------------------------------------------- */

/* utime + stime of pid in ns, or -1. */
static int64_t proc_cpu_ns(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long ut = 0, st = 0;
    /* fields 3.. after "pid (comm) ": state ... utime is field 14 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) !=
        2)
        return -1;
    return (int64_t)(ut + st) * (1000000000 / sysconf(_SC_CLK_TCK));
}

static int64_t servers_cpu_ns(void)
{
    int64_t t = 0;
    for (unsigned i = 0; i < g.npids; i++) {
        int64_t c = proc_cpu_ns(g.pids[i]);
        if (c < 0)
            return -1;
        t += c;
    }
    return t;
}

struct lb_mem {
    long rss, pss, priv; /* KiB */
};

/* Sums smaps_rollup of the server pids; returns 0 or -1. */
static int servers_mem(struct lb_mem *m)
{
    memset(m, 0, sizeof(*m));
    for (unsigned i = 0; i < g.npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", g.pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return -1;
        while (fgets(line, sizeof(line), f)) {
            long v = 0;
            if (sscanf(line, "Rss: %ld", &v) == 1)
                m->rss += v;
            else if (sscanf(line, "Pss: %ld", &v) == 1)
                m->pss += v;
            else if (sscanf(line, "Private_Clean: %ld", &v) == 1 ||
                     sscanf(line, "Private_Dirty: %ld", &v) == 1)
                m->priv += v;
        }
        fclose(f);
    }
    return 0;
}

static double cpu_self_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

/* ---- output and transport ------------------------------------------------ */

static void conn_fail(struct lb_conn *c, const char *why);
static void conn_step(struct lb_conn *c);

static int out_append(struct lb_conn *c, const void *p, size_t n)
{
    if (c->outcap - c->outlen < n) {
        size_t cap = c->outcap ? c->outcap : 1024;
        while (cap - c->outlen < n)
            cap *= 2;
        char *nb = realloc(c->out, cap);
        if (nb == NULL)
            return -1;
        c->out = nb;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return 0;
}

/* Writes what is queued; 0, or -1 when the connection failed. */
static int flush(struct lb_conn *c)
{
    while (c->outlen > 0) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, c->out, (int)c->outlen);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return 0;
                return -1;
            }
            n = r;
        } else {
            n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    return 0;
                return -1;
            }
        }
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
    return 0;
}

/* Sends one XML text: as a masked WebSocket text frame (RFC 6455 §5.2,
 * RFC 7395 §3.3: one element per message) or as stream bytes. */
static void xsend(struct lb_conn *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        conn_fail(c, "message too long");
        return;
    }
    int rc;
    if (c->ws) {
        unsigned char h[8];
        size_t hl = 0;
        h[hl++] = 0x81;
        if (n < 126) {
            h[hl++] = (unsigned char)(0x80 | n);
        } else {
            h[hl++] = 0x80 | 126;
            h[hl++] = (unsigned char)(n >> 8);
            h[hl++] = (unsigned char)n;
        }
        unsigned char mask[4];
        RAND_bytes(mask, 4);
        memcpy(h + hl, mask, 4);
        hl += 4;
        for (int i = 0; i < n; i++)
            buf[i] = (char)(buf[i] ^ mask[i & 3]);
        rc = out_append(c, h, hl);
        if (rc == 0)
            rc = out_append(c, buf, (size_t)n);
    } else {
        rc = out_append(c, buf, (size_t)n);
    }
    if (rc < 0 || flush(c) < 0)
        conn_fail(c, "write failed");
}

/* RFC 7395 §3.3.3: over WebSocket every stanza declares its namespace
 * (there is no stream root to inherit it from). */
static const char *cns(const struct lb_conn *c)
{
    return c->ws ? " xmlns='jabber:client'" : "";
}

static void send_stream_open(struct lb_conn *c)
{
    bench_scan_free(&c->scan);
    bench_scan_init(&c->scan, 1 << 20);
    if (c->ws)
        xsend(c, "<open xmlns='" FRAMING_NS "' to='%s' version='1.0'/>", g.domain);
    else
        xsend(c,
              "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>",
              g.domain);
}

/* XEP-0114 §3: the component opens a jabber:component:accept stream to
 * its own JID (no TLS, no SASL). */
static void send_comp_open(struct lb_conn *c)
{
    bench_scan_free(&c->scan);
    bench_scan_init(&c->scan, 1 << 20);
    c->st = ST_COMP_HDR;
    xsend(c,
          "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
          g.comp_jid);
}

/* XEP-0114 §3: <handshake> holds the lower-case hex SHA-1 of the stream
 * id the server gave, followed by the shared secret. */
static void send_comp_handshake(struct lb_conn *c, const struct bench_elem *e)
{
    char id[256], in[1024], hex[41];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (bench_elem_attr(e, "id", id, sizeof(id)) <= 0) {
        conn_fail(c, "component stream header without id (XEP-0114 §3)");
        return;
    }
    int n = snprintf(in, sizeof(in), "%s%s", id, g.comp_secret);
    if (n < 0 || (size_t)n >= sizeof(in) ||
        !EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        conn_fail(c, "cannot compute the handshake");
        return;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    c->st = ST_COMP_HS;
    xsend(c, "<handshake>%s</handshake>", hex);
}

static int tls_start(struct lb_conn *c)
{
    c->ssl = SSL_new(g.ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    const char *name = g.tls_name ? g.tls_name : g.domain;
    SSL_set_tlsext_host_name(c->ssl, name);
    if (g.ca)
        SSL_set1_host(c->ssl, name);
    SSL_set_connect_state(c->ssl);
    return 0;
}

/* ---- the connection ---------------------------------------------------- */

static void conn_free(struct lb_conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    bench_scan_free(&c->scan);
    free(c->out);
    free(c->wsin);
    c->out = c->wsin = NULL;
    c->outlen = c->outcap = c->wslen = c->wscap = 0;
    c->ws_open = 0;
    c->st = ST_FREE;
}

static void conn_end(struct lb_conn *c, int ok)
{
    if (c->st == ST_FREE)
        return;
    int was_held = c->st == ST_HELD;
    conn_free(c);
    if (g.mode == MODE_LOGIN) {
        g.finished++;
        if (ok) {
            g.ok++;
            bench_hist_add(&g.hist, now_ns() - c->t0);
        } else {
            g.failed++;
        }
    } else if (!ok) {
        g.failed++;
        if (was_held && g.at_goal > 0)
            g.at_goal--;
    }
}

static void conn_fail(struct lb_conn *c, const char *why)
{
    if (c->st == ST_FREE)
        return;
    g.errcount++;
    if (g.errmsg[0] == '\0')
        snprintf(g.errmsg, sizeof(g.errmsg), "connection %u: %s (state %d)", c->idx, why,
                 (int)c->st);
    conn_end(c, 0);
}

static int conn_start(struct lb_conn *c, unsigned idx, unsigned target, unsigned user)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->idx = idx;
    c->target = target;
    c->user = user;
    if (g.have_comp) {
        /* connections 0..P-1 send, P is the component receiving them all */
        c->comp = target == LB_COMP_TARGET;
        c->pair = idx;
        c->sender = !c->comp;
    } else {
        c->pair = idx / 2; /* msg mode: connections 2i and 2i + 1 are pair i */
        c->sender = !(idx & 1);
    }
    c->ws = g.ws && !c->comp;
    bench_scan_init(&c->scan, 1 << 20);
    c->t0 = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->st = ST_CONNECTING;
        conn_fail(c, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (g.sources > 1) {
        /* Spread over 127.0.0.1..N: per-address limits, ephemeral ports. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + idx % g.sources);
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        bind(c->fd, (struct sockaddr *)&src, sizeof(src));
    }
    c->st = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c, strerror(errno));
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&g.addr[target], sizeof(g.addr[target])) < 0 &&
        errno != EINPROGRESS) {
        conn_fail(c, strerror(errno));
        return -1;
    }
    return 0;
}

static void reach_goal(struct lb_conn *c)
{
    c->st = ST_HELD;
    g.at_goal++;
}

static void send_auth(struct lb_conn *c)
{
    char b64[512];
    unsigned u = c->user - 1;
    if (lb_scram_first(&c->scram, g.sha256, g.usernames[u], g.passwords[u], &g.keys[u],
                       NULL, b64, sizeof(b64)) < 0) {
        conn_fail(c, "scram");
        return;
    }
    c->st = ST_CHALL;
    xsend(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>",
          g.sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1", b64);
}

static void send_close(struct lb_conn *c)
{
    c->st = ST_CLOSING;
    if (c->ws)
        xsend(c, "<close xmlns='" FRAMING_NS "'/>");
    else
        xsend(c, "</stream:stream>");
}

/* The local name of an element (after a prefix). */
static int lname_is(const struct bench_elem *e, const char *name)
{
    const char *p = memchr(e->name, ':', e->name_len);
    const char *n = p ? p + 1 : e->name;
    size_t len = e->name_len - (size_t)(n - e->name);
    return len == strlen(name) && memcmp(n, name, len) == 0;
}

/* The character data of a simple element <x ...>text</x>. */
static size_t elem_text(const struct bench_elem *e, const char **t)
{
    const char *gt = memchr(e->p, '>', e->len);
    if (gt == NULL || gt[-1] == '/') {
        *t = "";
        return 0;
    }
    const char *lt = memchr(gt, '<', e->len - (size_t)(gt - e->p));
    *t = gt + 1;
    return lt ? (size_t)(lt - gt - 1) : 0;
}

/* A numbered message arrived on c: counted in its pair.  Returns the
 * pair's index, or -1 when the message is not one of ours. */
static int on_message(struct lb_conn *c, const struct bench_elem *e)
{
    const char *body;
    long n = bench_elem_child_text(e, "body", &body);
    if (n <= 0 || !g.pairv)
        return -1;
    unsigned pair = 0;
    unsigned long long seq = 0, ts = 0;
    char tmp[80];
    size_t k = (size_t)n < sizeof(tmp) - 1 ? (size_t)n : sizeof(tmp) - 1;
    memcpy(tmp, body, k);
    tmp[k] = '\0';
    /* The body: "PAIR SEQ TIME pad" (pump_pair). */
    if (sscanf(tmp, "%u %llu %llu", &pair, &seq, &ts) != 3 || pair >= g.pairs ||
        (!c->comp && pair != c->pair)) {
        g.bad++;
        return -1;
    }
    struct lb_pair *p = &g.pairv[pair];
    enum lb_seq_kind kind = lb_seq_note(&p->seq, seq, p->sent);
    if (kind == LB_SEQ_BAD) {
        g.bad++;
        return -1;
    }
    p->received = p->seq.unique;
    if (kind != LB_SEQ_DUP)
        bench_hist_add(&g.hist, now_ns() - ts);
    return (int)pair;
}

static void pump_pair(struct lb_pair *p);

/* One element from the server, in state c->st. */
static void on_elem(struct lb_conn *c, int ev, const struct bench_elem *e)
{
    if (ev == BENCH_EV_END) {
        if (c->st == ST_CLOSING)
            conn_end(c, 1);
        else
            conn_fail(c, "stream closed by the server");
        return;
    }
    if (ev == BENCH_EV_HEADER && c->st == ST_COMP_HDR) {
        send_comp_handshake(c, e);
        return;
    }
    if (ev == BENCH_EV_HEADER || lname_is(e, "open"))
        return;
    if (lname_is(e, "close")) {
        if (c->st == ST_CLOSING)
            conn_end(c, 1);
        else
            conn_fail(c, "stream closed by the server");
        return;
    }
    if (lname_is(e, "error") && e->name_len > 6) { /* stream:error */
        char what[200];
        snprintf(what, sizeof(what), "stream error: %.*s",
                 (int)(e->len < 150 ? e->len : 150), e->p);
        conn_fail(c, what);
        return;
    }
    const char *t;
    size_t tl;
    char id[32], type[16];
    switch (c->st) {
    case ST_FEAT1:
    case ST_FEAT2:
    case ST_FEAT3:
        if (!lname_is(e, "features"))
            return;
        if (c->st == ST_FEAT3) {
            c->st = ST_BIND;
            xsend(
                c,
                "<iq%s type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>r%u</resource></bind></iq>",
                cns(c), c->idx);
        } else if (c->st == ST_FEAT1 && g.goal == GOAL_STREAM && g.mode == MODE_IDLE) {
            reach_goal(c);
        } else if (c->st == ST_FEAT1 && !c->ssl) {
            c->st = ST_PROCEED;
            xsend(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        } else if (g.goal == GOAL_TLS && g.mode == MODE_IDLE) {
            reach_goal(c);
        } else {
            send_auth(c);
        }
        return;
    case ST_PROCEED:
        if (!lname_is(e, "proceed")) {
            conn_fail(c, "starttls refused");
            return;
        }
        if (tls_start(c) < 0) {
            conn_fail(c, "SSL_new");
            return;
        }
        c->st = ST_TLS;
        conn_step(c);
        return;
    case ST_CHALL:
        if (!lname_is(e, "challenge")) {
            conn_fail(c, "auth refused");
            return;
        }
        tl = elem_text(e, &t);
        {
            char b64[512];
            if (lb_scram_final(&c->scram, t, tl, b64, sizeof(b64)) < 0) {
                conn_fail(c, "bad SCRAM challenge");
                return;
            }
            c->st = ST_SUCCESS;
            xsend(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>",
                  b64);
        }
        return;
    case ST_SUCCESS:
        if (!lname_is(e, "success")) {
            conn_fail(c, "login failed (wrong password or no account?)");
            return;
        }
        tl = elem_text(e, &t);
        if (lb_scram_verify(&c->scram, t, tl) < 0) {
            conn_fail(c, "server signature wrong");
            return;
        }
        c->st = ST_FEAT3;
        send_stream_open(c);
        return;
    case ST_BIND:
        if (!lname_is(e, "iq"))
            return;
        if (bench_elem_attr(e, "type", type, sizeof(type)) < 0 ||
            strcmp(type, "result") != 0) {
            conn_fail(c, "bind failed");
            return;
        }
        if (g.mode == MODE_IDLE) {
            reach_goal(c);
        } else if (g.mode == MODE_MSG) {
            xsend(c, "<presence%s/>", cns(c));
            reach_goal(c);
        } else {
            c->st = ST_PING;
            xsend(c, "<presence%s/>", cns(c));
            xsend(c, "<iq%s type='get' id='p' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
                  cns(c), g.domain);
        }
        return;
    case ST_COMP_HS:
        if (lname_is(e, "handshake"))
            reach_goal(c);
        else
            conn_fail(c, "component handshake refused");
        return;
    case ST_PING:
        if (lname_is(e, "iq") && bench_elem_attr(e, "id", id, sizeof(id)) > 0 &&
            strcmp(id, "p") == 0)
            send_close(c);
        return;
    case ST_HELD:
        if (lname_is(e, "message")) {
            int pair = on_message(c, e);
            if (g.sending && pair >= 0)
                pump_pair(&g.pairv[pair]);
        } else if (lname_is(e, "iq") &&
                   bench_elem_attr(e, "type", type, sizeof(type)) > 0 &&
                   strcmp(type, "get") == 0 &&
                   bench_elem_attr(e, "id", id, sizeof(id)) > 0) {
            char from[320];
            if (bench_elem_attr(e, "from", from, sizeof(from)) < 0)
                strcpy(from, g.domain);
            if (c->comp)
                xsend(c, "<iq type='result' id='%s' to='%s' from='%s'/>", id, from,
                      g.comp_jid);
            else
                xsend(c, "<iq%s type='result' id='%s' to='%s'/>", cns(c), id, from);
        }
        return;
    default:
        return;
    }
}

static void scan_run(struct lb_conn *c)
{
    struct bench_elem e;
    while (c->st != ST_FREE) {
        int ev = bench_scan_next(&c->scan, &e);
        if (ev == BENCH_EV_MORE)
            return;
        if (ev < 0) {
            conn_fail(c, "unparsable XML from the server");
            return;
        }
        on_elem(c, ev, &e);
    }
}

static int scan_feed(struct lb_conn *c, const char *p, size_t n)
{
    if (bench_scan_room(&c->scan, n) < 0)
        return -1;
    memcpy(c->scan.buf + c->scan.len, p, n);
    c->scan.len += n;
    return 0;
}

/* Raw bytes of a WebSocket connection: the 101 head, then server frames
 * (unmasked, RFC 6455 §5.1); text payloads go to the scanner. */
static void ws_input(struct lb_conn *c, const char *p, size_t n)
{
    if (c->wscap - c->wslen < n) {
        size_t cap = c->wscap ? c->wscap : 2048;
        while (cap - c->wslen < n)
            cap *= 2;
        char *nb = realloc(c->wsin, cap);
        if (nb == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        c->wsin = nb;
        c->wscap = cap;
    }
    memcpy(c->wsin + c->wslen, p, n);
    c->wslen += n;
    size_t pos = 0;
    if (!c->ws_open) {
        char *end = memmem(c->wsin, c->wslen, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        if (c->wslen < 12 || memcmp(c->wsin + 9, "101", 3) != 0) {
            conn_fail(c, "websocket upgrade refused");
            return;
        }
        c->ws_open = 1;
        pos = (size_t)(end + 4 - c->wsin);
        c->st = ST_FEAT1;
        send_stream_open(c);
        if (c->st == ST_FREE)
            return;
    }
    for (;;) {
        const unsigned char *f = (const unsigned char *)c->wsin + pos;
        size_t avail = c->wslen - pos, hl = 2;
        if (avail < 2)
            break;
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            hl = 4;
            if (avail < hl)
                break;
            len = ((uint64_t)f[2] << 8) | f[3];
        } else if (len == 127) {
            hl = 10;
            if (avail < hl)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
        }
        if (avail - hl < len)
            break;
        unsigned op = f[0] & 0x0f;
        if (op == 1 || op == 0) {
            if (scan_feed(c, (const char *)f + hl, (size_t)len) < 0) {
                conn_fail(c, "out of memory");
                return;
            }
        } else if (op == 8) {
            if (c->st == ST_CLOSING)
                conn_end(c, 1);
            else
                conn_fail(c, "websocket closed by the server");
            return;
        } else if (op == 9) {
            unsigned char pong[6] = {0x8a, 0x80, 0, 0, 0, 0};
            if (len == 0 && out_append(c, pong, sizeof(pong)) == 0)
                flush(c);
        }
        pos += hl + (size_t)len;
    }
    memmove(c->wsin, c->wsin + pos, c->wslen - pos);
    c->wslen -= pos;
    scan_run(c);
}

static void ws_upgrade(struct lb_conn *c)
{
    unsigned char key[16];
    char k64[32];
    RAND_bytes(key, sizeof(key));
    EVP_EncodeBlock((unsigned char *)k64, key, sizeof(key));
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
                     g.ws_path, g.ws_host, k64);
    c->st = ST_HTTP;
    if (out_append(c, req, (size_t)n) < 0 || flush(c) < 0)
        conn_fail(c, "write failed");
}

/* After the TCP connect or a TLS handshake: the next protocol step. */
static void after_transport(struct lb_conn *c)
{
    if (c->comp) {
        send_comp_open(c);
        return;
    }
    if (c->ws) {
        if (g.wss && c->ssl == NULL) {
            if (tls_start(c) < 0) {
                conn_fail(c, "SSL_new");
                return;
            }
            c->st = ST_TLS0;
            return;
        }
        ws_upgrade(c);
        return;
    }
    c->st = c->ssl ? ST_FEAT2 : ST_FEAT1;
    send_stream_open(c);
}

/* Does whatever the socket allows now (edge-triggered). */
static void conn_step(struct lb_conn *c)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err == EINPROGRESS)
            return;
        if (err != 0) {
            conn_fail(c, strerror(err));
            return;
        }
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) < 0)
            return; /* not connected yet */
        after_transport(c);
    }
    while (c->st == ST_TLS || c->st == ST_TLS0) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            after_transport(c);
            break;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        char what[160];
        snprintf(what, sizeof(what), "TLS handshake: %s",
                 ERR_reason_error_string(ERR_peek_error())
                     ? ERR_reason_error_string(ERR_get_error())
                     : "failed");
        conn_fail(c, what);
        return;
    }
    if (c->st == ST_FREE)
        return;
    if (flush(c) < 0) {
        conn_fail(c, "write failed");
        return;
    }
    char buf[16384];
    while (c->st != ST_FREE && c->st != ST_TLS && c->st != ST_TLS0) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return;
                n = 0;
            } else {
                n = r;
            }
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        }
        if (n <= 0) {
            if (c->st == ST_CLOSING)
                conn_end(c, 1);
            else
                conn_fail(c, n == 0 ? "closed by the server" : strerror(errno));
            return;
        }
        if (c->ws) {
            ws_input(c, buf, (size_t)n);
        } else if (c->st == ST_PROCEED || c->st == ST_TLS) {
            /* nothing may follow <proceed/> in the clear (RFC 6120 §5.4.3.3) */
            if (scan_feed(c, buf, (size_t)n) < 0)
                conn_fail(c, "out of memory");
            else
                scan_run(c);
        } else {
            if (scan_feed(c, buf, (size_t)n) < 0)
                conn_fail(c, "out of memory");
            else
                scan_run(c);
        }
    }
}

/* ---- the loop ---------------------------------------------------------- */

static void loop_once(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(g.ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct lb_conn *c = evs[i].data.ptr;
        if (c->st != ST_FREE)
            conn_step(c);
    }
}

static unsigned user_of(unsigned i)
{
    return i % g.users + 1;
}

/* login: keeps conc connections going until n have finished. */
static void run_login(void)
{
    uint64_t deadline = now_ns() + (uint64_t)(g.timeout * 1e9);
    while (g.finished < g.n && now_ns() < deadline) {
        for (unsigned s = 0; s < g.nconns && g.started < g.n; s++) {
            if (g.conns[s].st == ST_FREE) {
                unsigned i = g.started++;
                conn_start(&g.conns[s], i, i % g.ntargets, user_of(i));
            }
        }
        loop_once(50);
    }
}

/* idle/msg: opens g.nconns connections, conc at a time, until all are at
 * the goal or failed. */
static void open_all(unsigned target_of_odd)
{
    uint64_t deadline = now_ns() + (uint64_t)(g.timeout * 1e9);
    while (g.at_goal + g.failed < g.nconns && now_ns() < deadline) {
        while (g.started < g.nconns && g.started - g.at_goal - g.failed < g.conc) {
            unsigned i = g.started++;
            unsigned t = target_of_odd && (i & 1) ? 1 : 0;
            if (g.mode == MODE_IDLE)
                t = i % g.ntargets;
            else if (g.have_comp)
                t = i == g.pairs ? LB_COMP_TARGET : 0;
            conn_start(&g.conns[i], i, t, user_of(i));
        }
        loop_once(50);
    }
}

static void spin(double seconds)
{
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    while (now_ns() < end)
        loop_once(20);
}

static void pump_pair(struct lb_pair *p)
{
    static char pad[8192];
    if (pad[0] == '\0')
        memset(pad, 'x', sizeof(pad) - 1);
    if (p->a->st != ST_HELD || p->b->st != ST_HELD)
        return;
    while (p->sent - p->received < g.window && now_ns() < g.stop_at) {
        size_t padn = g.size > 40 ? g.size - 40 : 0;
        if (padn > 4000)
            padn = 4000;
        char to[384];
        if (p->b->comp)
            snprintf(to, sizeof(to), "%s", g.comp_jid);
        else
            snprintf(to, sizeof(to), "%s@%s/r%u", g.usernames[p->b->user - 1], g.domain,
                     p->b->idx);
        xsend(p->a,
              "<message%s to='%s' type='chat' id='m%llu'><body>%u %llu %llu %.*s</body>"
              "</message>",
              cns(p->a), to, (unsigned long long)p->sent, p->a->pair,
              (unsigned long long)p->sent, (unsigned long long)now_ns(), (int)padn, pad);
        if (p->a->st != ST_HELD)
            return;
        p->sent++;
    }
}

static void run_msg(void)
{
    open_all(g.ntargets > 1 && !g.have_comp);
    if (g.failed > 0)
        return;
    spin(g.settle);
    g.sending = 1;
    uint64_t t0 = now_ns();
    g.stop_at = t0 + (uint64_t)(g.duration * 1e9);
    for (unsigned i = 0; i < g.pairs; i++)
        pump_pair(&g.pairv[i]);
    while (now_ns() < g.stop_at) {
        loop_once(20);
        for (unsigned i = 0; i < g.pairs; i++)
            pump_pair(&g.pairv[i]);
    }
    spin(1.0); /* drain what is in flight */
}

/* ---- options ----------------------------------------------------------- */

static void usage(void)
{
    fputs(
        "usage: xmppd-loginbench --mode login|idle|msg [options]\n"
        "  --target HOST:PORT     server (repeatable: msg receivers use the second;\n"
        "                         default 127.0.0.1:5222)\n"
        "  --ws URL               WebSocket instead: ws://HOST:PORT/PATH or wss://...\n"
        "  --domain D             XMPP domain (required)\n"
        "  --ca FILE              verify the server's certificate against FILE\n"
        "  --tls-name NAME        SNI and name to verify (default: the domain)\n"
        "  --user-prefix P        accounts P1..PM (default bench)\n"
        "  --users M              number of accounts (default 50)\n"
        "  --password-prefix P    password of account i is P<i> (default: as user)\n"
        "  --password PW          one password for every account\n"
        "  --mech sha256|sha1     SCRAM-SHA-256 (default) or SCRAM-SHA-1\n"
        "  --logins N             login: number of logins (default 2000)\n"
        "  --concurrency C        connections in progress at once (default 50)\n"
        "  --conns K              idle: connections held (default 2000)\n"
        "  --stage stream|tls|bind idle: how far each connection goes (default bind)\n"
        "  --pairs P --window W --size B --duration S   msg (4, 16, 200, 3)\n"
        "  --component NAME       msg: every pair's receiver is the component NAME\n"
        "                         (JID NAME.DOMAIN, or NAME if it has a dot), XEP-0114\n"
        "  --component-target HOST:PORT  its listener (default: the first target, 5223)\n"
        "  --component-secret S   its secret, or --secrets-file F ('callbridge NAME S')\n"
        "  --settle S             seconds before measuring (idle 2, msg 1)\n"
        "  --hold S               idle: seconds to hold after measuring (default 0)\n"
        "  --server-pid PID       the server's process (repeatable: summed)\n"
        "  --sources N            bind to 127.0.0.1..127.0.0.N in turn\n"
        "  --timeout S            give up after S seconds (default 300)\n"
        "  --label L  --header    row label; print the column header and exit\n",
        stderr);
    exit(2);
}

static void parse_target(const char *s, unsigned i)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        die("bad target %s (HOST:PORT)", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    g.addr[i].sin_family = AF_INET;
    g.addr[i].sin_port = htons((uint16_t)atoi(colon + 1));
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &g.addr[i].sin_addr) != 1)
        die("bad target address %s (an IPv4 address)", host);
}

/* The secret of component name from the 'callbridge NAME SECRET' lines of
 * an xmppd.conf (scripts/anchors writes the same format); exits when there
 * is none.  Returns it owned (kept for the run). */
static char *secret_from_file(const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    char *found = NULL;
    if (f == NULL)
        die("cannot open %s", path);
    while (found == NULL && fgets(line, sizeof(line), f)) {
        char *save = NULL;
        char *w0 = strtok_r(line, " \t\r\n", &save);
        char *w1 = w0 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        char *w2 = w1 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        if (w2 && strcmp(w0, "callbridge") == 0 && strcmp(w1, name) == 0)
            found = strdup(w2);
    }
    fclose(f);
    if (found == NULL)
        die("no 'callbridge %s SECRET' line in %s", name, path);
    return found;
}

static void parse_ws(const char *url)
{
    const char *p;
    if (strncmp(url, "wss://", 6) == 0) {
        g.wss = 1;
        p = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else {
        die("bad --ws URL %s", url);
    }
    g.ws = 1;
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl >= sizeof(g.ws_host))
        die("bad --ws URL %s", url);
    memcpy(g.ws_host, p, hl);
    g.ws_host[hl] = '\0';
    snprintf(g.ws_path, sizeof(g.ws_path), "%s", slash ? slash : "/");
    char t[300];
    snprintf(t, sizeof(t), "%s", g.ws_host);
    if (strchr(t, ':') == NULL)
        snprintf(t, sizeof(t), "%s:%d", g.ws_host, g.wss ? 443 : 80);
    parse_target(t, 0);
    g.ntargets = 1;
}

static void options(int argc, char **argv)
{
    g.n = 2000;
    g.conc = 50;
    g.users = 50;
    g.user_prefix = "bench";
    g.sha256 = 1;
    g.pairs = 4;
    g.window = 16;
    g.size = 200;
    g.duration = 3;
    g.settle = -1;
    g.timeout = 300;
    g.goal = GOAL_BIND;
    g.label = "";
    unsigned k = 2000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name)                                                                        \
    (strcmp(a, name) == 0 && (v != NULL || (die("%s wants a value", name), 0)) && ++i)
        if (strcmp(a, "--header") == 0)
            g.header = 1;
        else if (ARG("--mode"))
            g.mode = strcmp(v, "login") == 0  ? MODE_LOGIN
                     : strcmp(v, "idle") == 0 ? MODE_IDLE
                     : strcmp(v, "msg") == 0  ? MODE_MSG
                                              : (die("bad --mode %s", v), MODE_LOGIN);
        else if (ARG("--target")) {
            if (g.ntargets >= LB_MAX_TARGETS)
                die("at most %d targets", LB_MAX_TARGETS);
            g.host[g.ntargets] = v;
            parse_target(v, g.ntargets++);
        } else if (ARG("--ws"))
            parse_ws(v);
        else if (ARG("--domain"))
            g.domain = v;
        else if (ARG("--ca"))
            g.ca = v;
        else if (ARG("--tls-name"))
            g.tls_name = v;
        else if (ARG("--user-prefix"))
            g.user_prefix = v;
        else if (ARG("--users"))
            g.users = (unsigned)atoi(v);
        else if (ARG("--password-prefix"))
            g.password_prefix = v;
        else if (ARG("--password"))
            g.password = v;
        else if (ARG("--mech"))
            g.sha256 = strcmp(v, "sha1") != 0 && strcmp(v, "SCRAM-SHA-1") != 0;
        else if (ARG("--logins"))
            g.n = (unsigned)atoi(v);
        else if (ARG("--concurrency"))
            g.conc = (unsigned)atoi(v);
        else if (ARG("--conns"))
            k = (unsigned)atoi(v);
        else if (ARG("--stage"))
            g.goal = strcmp(v, "stream") == 0 ? GOAL_STREAM
                     : strcmp(v, "tls") == 0  ? GOAL_TLS
                     : strcmp(v, "bind") == 0 ? GOAL_BIND
                                              : (die("bad --stage %s", v), GOAL_BIND);
        else if (ARG("--pairs"))
            g.pairs = (unsigned)atoi(v);
        else if (ARG("--window"))
            g.window = (unsigned)atoi(v);
        else if (ARG("--size"))
            g.size = (unsigned)atoi(v);
        else if (ARG("--duration"))
            g.duration = atof(v);
        else if (ARG("--settle"))
            g.settle = atof(v);
        else if (ARG("--hold"))
            g.hold = atof(v);
        else if (ARG("--timeout"))
            g.timeout = atof(v);
        else if (ARG("--sources"))
            g.sources = (unsigned)atoi(v);
        else if (ARG("--server-pid")) {
            if (g.npids >= LB_MAX_PIDS)
                die("at most %d server pids", LB_MAX_PIDS);
            g.pids[g.npids++] = atoi(v);
        } else if (ARG("--label"))
            g.label = v;
        else if (ARG("--component")) {
            g.have_comp = 1;
            snprintf(g.comp_jid, sizeof(g.comp_jid), "%s", v);
        } else if (ARG("--component-target")) {
            parse_target(v, LB_COMP_TARGET);
            g.have_comp_target = 1;
        } else if (ARG("--component-secret"))
            g.comp_secret = v;
        else if (ARG("--secrets-file"))
            g.secrets_file = v;
        else
            usage();
#undef ARG
    }
    if (g.header)
        return;
    if (g.domain == NULL)
        die("--domain is required");
    if (g.ntargets == 0) {
        parse_target("127.0.0.1:5222", 0);
        g.ntargets = 1;
    }
    if (g.users == 0 || g.conc == 0 || g.pairs == 0 || g.window == 0)
        die("counts must be positive");
    if (g.settle < 0)
        g.settle = g.mode == MODE_IDLE ? 2 : 1;
    if (g.have_comp) {
        char name[256];
        if (g.mode != MODE_MSG)
            die("--component is for --mode msg");
        snprintf(name, sizeof(name), "%s", g.comp_jid);
        if (strchr(name, '.') == NULL &&
            (size_t)snprintf(g.comp_jid, sizeof(g.comp_jid), "%.120s.%.120s", name,
                             g.domain) >= sizeof(g.comp_jid))
            die("--component name too long");
        if (g.comp_secret == NULL && g.secrets_file != NULL)
            g.comp_secret = secret_from_file(g.secrets_file, name);
        if (g.comp_secret == NULL)
            die("--component wants --component-secret or --secrets-file");
        if (!g.have_comp_target) {
            /* The first target's host, the component port of XEP-0114. */
            g.addr[LB_COMP_TARGET] = g.addr[0];
            g.addr[LB_COMP_TARGET].sin_port = htons(5223);
        }
    }
    g.nconns = g.mode == MODE_LOGIN  ? g.conc
               : g.mode == MODE_IDLE ? k
               : g.have_comp         ? g.pairs + 1
                                     : 2 * g.pairs;
}

/* ---- main -------------------------------------------------------------- */

static void print_header(void)
{
    switch (g.mode) {
    case MODE_LOGIN:
        printf("%-26s %6s %4s %5s %9s %8s %8s %10s %10s\n", "row", "logins", "conc",
               "fail", "logins/s", "p50_ms", "p99_ms", "client_ms", "server_ms");
        break;
    case MODE_IDLE:
        printf("%-26s %6s %6s %5s %9s %9s %9s\n", "row", "conns", "stage", "fail",
               "rss_KiB", "pss_KiB", "priv_KiB");
        break;
    case MODE_MSG:
        printf("%-26s %5s %6s %5s %9s %8s %8s %6s %5s %5s %5s %8s\n", "row", "pairs",
               "window", "size", "msgs/s", "p50_ms", "p99_ms", "lost", "dup", "ooo",
               "bad", "server%");
        break;
    }
}

int main(int argc, char **argv)
{
    options(argc, argv);
    if (g.header) {
        print_header();
        return 0;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (g.mode == MODE_IDLE && rl.rlim_cur < g.nconns + 64)
        die("the fd limit %lu is below %u connections (ulimit -n)",
            (unsigned long)rl.rlim_cur, g.nconns);
    g.ctx = SSL_CTX_new(TLS_client_method());
    if (g.ctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_mode(g.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(g.ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g.ctx, SSL_OP_NO_TICKET);
    if (g.ca) {
        if (SSL_CTX_load_verify_locations(g.ctx, g.ca, NULL) != 1)
            die("cannot load %s", g.ca);
        SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);
    }
    g.keys = calloc(g.users, sizeof(*g.keys));
    g.passwords = calloc(g.users, sizeof(*g.passwords));
    g.usernames = calloc(g.users, sizeof(*g.usernames));
    g.conns = calloc(g.nconns, sizeof(*g.conns));
    if (!g.keys || !g.passwords || !g.usernames || !g.conns)
        die("out of memory");
    for (unsigned i = 0; i < g.users; i++) {
        snprintf(g.usernames[i], sizeof(g.usernames[i]), "%s%u", g.user_prefix, i + 1);
        if (g.password)
            snprintf(g.passwords[i], sizeof(g.passwords[i]), "%s", g.password);
        else
            snprintf(g.passwords[i], sizeof(g.passwords[i]), "%s%u",
                     g.password_prefix ? g.password_prefix : g.user_prefix, i + 1);
    }
    for (unsigned i = 0; i < g.nconns; i++) {
        g.conns[i].fd = -1;
        g.conns[i].st = ST_FREE;
    }
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0)
        die("epoll_create1");
    int rc = 0;
    const char *label = g.label[0] ? g.label : "-";
    if (g.mode == MODE_LOGIN) {
        int64_t s0 = servers_cpu_ns();
        double c0 = cpu_self_ns();
        uint64_t t0 = now_ns();
        run_login();
        double wall = (double)(now_ns() - t0) / 1e9;
        int64_t s1 = servers_cpu_ns();
        double c1 = cpu_self_ns();
        double per = g.ok ? 1.0 / g.ok : 0;
        char srv[32] = "-";
        if (g.npids > 0 && s0 >= 0 && s1 >= 0)
            snprintf(srv, sizeof(srv), "%.3f", (double)(s1 - s0) / 1e6 * per);
        printf("%-26s %6u %4u %5u %9.0f %8.2f %8.2f %10.3f %10s\n", label, g.ok, g.conc,
               g.failed + (g.n - g.finished), g.ok / (wall > 0 ? wall : 1),
               (double)bench_hist_quantile(&g.hist, 0.5) / 1e6,
               (double)bench_hist_quantile(&g.hist, 0.99) / 1e6, (c1 - c0) / 1e6 * per,
               srv);
        rc = g.ok > 0 ? 0 : 1;
    } else if (g.mode == MODE_IDLE) {
        struct lb_mem m0, m1;
        int have = g.npids > 0 && servers_mem(&m0) == 0;
        open_all(0);
        spin(g.settle);
        have = have && servers_mem(&m1) == 0;
        static const char *stage[] = {"stream", "tls", "bind"};
        unsigned k = g.at_goal;
        if (have && k > 0)
            printf("%-26s %6u %6s %5u %9.2f %9.2f %9.2f\n", label, k, stage[g.goal],
                   g.nconns - k, (double)(m1.rss - m0.rss) / k,
                   (double)(m1.pss - m0.pss) / k, (double)(m1.priv - m0.priv) / k);
        else
            printf("%-26s %6u %6s %5u %9s %9s %9s\n", label, k, stage[g.goal],
                   g.nconns - k, "-", "-", "-");
        if (g.hold > 0)
            spin(g.hold);
        rc = k == g.nconns ? 0 : 1;
    } else {
        g.pairv = calloc(g.pairs, sizeof(*g.pairv));
        if (g.pairv == NULL)
            die("out of memory");
        for (unsigned i = 0; i < g.pairs; i++) {
            g.pairv[i].a = &g.conns[g.have_comp ? i : 2 * i];
            g.pairv[i].b = &g.conns[g.have_comp ? g.pairs : 2 * i + 1];
        }
        int64_t s0 = servers_cpu_ns();
        uint64_t t0 = now_ns();
        run_msg();
        int64_t s1 = servers_cpu_ns();
        double wall = (double)(now_ns() - t0) / 1e9;
        uint64_t sent = 0, recv = 0, dups = 0, ooo = 0;
        for (unsigned i = 0; i < g.pairs; i++) {
            sent += g.pairv[i].sent;
            recv += g.pairv[i].received;
            dups += g.pairv[i].seq.dups;
            ooo += g.pairv[i].seq.ooo;
            lb_seq_free(&g.pairv[i].seq);
        }
        char srv[32] = "-";
        if (g.npids > 0 && s0 >= 0 && s1 >= 0)
            snprintf(srv, sizeof(srv), "%.0f", (double)(s1 - s0) / 1e9 / wall * 100);
        printf("%-26s %5u %6u %5u %9.0f %8.2f %8.2f %6llu %5llu %5llu %5llu %8s\n", label,
               g.pairs, g.window, g.size, recv / g.duration,
               (double)bench_hist_quantile(&g.hist, 0.5) / 1e6,
               (double)bench_hist_quantile(&g.hist, 0.99) / 1e6,
               (unsigned long long)(sent - recv), (unsigned long long)dups,
               (unsigned long long)ooo, (unsigned long long)g.bad, srv);
        rc = recv > 0 ? 0 : 1;
    }
    if (g.errcount)
        fprintf(stderr, "xmppd-loginbench %s: %u connection failures; first: %s\n", label,
                g.errcount, g.errmsg);
    fflush(stdout);
    return rc;
}
