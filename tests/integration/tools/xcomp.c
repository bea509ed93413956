/* xcomp.c: a scriptable XEP-0114 component built on libstrophe
 * (xmpp_connect_component), used by the integration tests and the demo.
 *
 *   xcomp --port P --jid cb1.example.com --secret S [options]
 *
 * It connects, optionally waits for a line on stdin (--go-on-stdin), sends
 * --send N numbered messages, an XEP-0199 ping (--iq) and a presence
 * (--presence) to --to, answers iq get/set with a result (--answer), waits
 * for --expect N messages and --expect-presence N presences, checks that the
 * messages of each sender arrive complete and in order, then closes its
 * stream (or, with --stay, waits for the server to close it).
 *
 * --interval-ms N paces --send: one message every N ms instead of all at
 * once (a continuous numbered sender for the failover load test; the
 * receiver's --expect N checks each number arrives once, in order).
 *
 * --tls connects with direct TLS: the TLS handshake first, then the
 * XEP-0114 stream (docs/tls.md).  libstrophe 0.12.2 refuses TLS flags on
 * xmpp_connect_component ("XEP-0114 does not support TLS"), so --tls uses a
 * raw connection (xmpp_connect_raw), starts TLS on it (xmpp_conn_tls_start:
 * the server's certificate is verified against --ca FILE, or the system's
 * trust store, and the component's domain), opens the jabber:component:accept
 * stream itself and sends the XEP-0114 §3 handshake.  A certificate that
 * does not verify ends the run with "tls-failed".
 *
 * It prints one line per event on stdout, for the tests to parse:
 *   connected jid=J
 *   sent messages=N
 *   message from=J seq=N body=TEXT          (unless --quiet)
 *   message-error from=J condition=C
 *   presence from=J type=T
 *   iq type=T from=J
 *   received messages=N in_order=yes|no
 *   stream-error condition=C
 *   see-other-host host=H:P                 (RFC 6120 §4.9.3.19: go there)
 *   stream-end                              (the server sent </stream:stream>)
 *   disconnected error=E
 * --srv DOMAIN --dns IP:PORT finds the server the way a call bridge does
 * (DESIGN.md "Who uses it"): it asks the DNS server at IP:PORT (libresolv,
 * nothing else) for the SRV records of _xmpp-component._tcp.DOMAIN, orders
 * them per RFC 2782 "Usage rules" (lowest priority first, weighted random
 * within a priority), resolves each target's A record through the same
 * server and connects to the first that answers.  When that connection is
 * lost (not closed by us) it tries the next target, and after the last one
 * asks the DNS again and starts over.  --host/--port are then unused; --tls
 * is not supported with --srv.  Extra lines:
 *   srv record prio=P weight=W port=N target=NAME   (in the chosen order)
 *   srv target NAME:PORT -> IP connected|failed error=E|lost error=E
 *   srv target NAME:PORT unresolved
 *   srv lookup failed                               (no usable records)
 *
 * Exit status: 0 done, 1 not connected/authenticated, 2 usage, 3 timeout,
 * 4 a check failed (lost or reordered messages). */
#include <errno.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <strophe.h>

#define MAX_SENDERS 32
#define MAX_SRV 16

/* One SRV record (RFC 2782). */
struct srv_rec {
    char target[NS_MAXDNAME];
    unsigned prio, weight, port;
};

struct sender {
    char *jid;
    long last_seq;
    bool in_order;
};

struct xc {
    /* options */
    const char *host, *jid, *secret, *to, *body, *ca;
    int port;
    long send_n, expect_n, expect_presence, interval_ms;
    bool iq, presence, answer, stay, quiet, go_on_stdin, tls;
    double timeout_s;
    /* state */
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    bool connected, ever_connected, started, tasks_sent, iq_done, reported, closing;
    bool finished, stream_end;
    char stream_id[256]; /* --tls: from the server's stream header */
    char iq_id[300];
    long received, presences;
    long next_seq;    /* --interval-ms: the next message to send */
    double next_send; /* --interval-ms: when */
    struct sender senders[MAX_SENDERS];
    size_t nsenders;
    bool order_ok;
    /* --srv */
    const char *srv, *dns;
    struct srv_rec recs[MAX_SRV];
    size_t nrecs, next_rec; /* next_rec: the next record to try */
    const struct srv_rec *cur;
    char cur_ip[INET_ADDRSTRLEN];
    bool need_reconnect;
    double retry_at;
};

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void out(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* libstrophe logs "RECV: </stream:stream>" at debug level when the peer
 * closes its stream (src/conn.c, _handle_stream_end). */
static void on_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
    struct xc *x = ud;

    if (level == XMPP_LEVEL_DEBUG && strcmp(area, "xmpp") == 0 &&
        strncmp(msg, "RECV: </stream:stream>", 22) == 0 && !x->stream_end) {
        x->stream_end = true;
        out("stream-end");
    }
    if (level == XMPP_LEVEL_DEBUG && strcmp(area, "xmpp") == 0 &&
        strncmp(msg, "RECV: <stream:stream", 20) == 0) {
        /* libstrophe logs the server's stream header (src/conn.c,
         * _log_open_tag); a raw connection needs its id for the handshake. */
        const char *id = strstr(msg, " id=\"");
        if (id != NULL) {
            size_t n = strcspn(id + 5, "\"");
            if (n < sizeof x->stream_id) {
                memcpy(x->stream_id, id + 5, n);
                x->stream_id[n] = '\0';
            }
        }
    }
    if (level >= XMPP_LEVEL_WARN && getenv("XCOMP_DEBUG") != NULL)
        fprintf(stderr, "xcomp %s: %s\n", area, msg);
}

static const char *first_tag_child(xmpp_stanza_t *st, const char *skip)
{
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(st); c;
         c = xmpp_stanza_get_next(c)) {
        const char *name = xmpp_stanza_is_tag(c) ? xmpp_stanza_get_name(c) : NULL;
        if (name != NULL && (skip == NULL || strcmp(name, skip) != 0))
            return name;
    }
    return "?";
}

static void note_seq(struct xc *x, const char *from, long seq)
{
    struct sender *s = NULL;

    for (size_t i = 0; i < x->nsenders; i++) {
        if (strcmp(x->senders[i].jid, from) == 0)
            s = &x->senders[i];
    }
    if (s == NULL) {
        if (x->nsenders == MAX_SENDERS) {
            x->order_ok = false;
            return;
        }
        s = &x->senders[x->nsenders++];
        s->jid = strdup(from);
        s->last_seq = 0;
        s->in_order = true;
    }
    if (seq != s->last_seq + 1) {
        if (s->in_order)
            fprintf(stderr, "xcomp: from %s expected seq %ld, got %ld\n", from,
                    s->last_seq + 1, seq);
        s->in_order = false;
        x->order_ok = false;
    }
    s->last_seq = seq;
}

static int on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    const char *from = xmpp_stanza_get_from(st);
    const char *type = xmpp_stanza_get_type(st);
    const char *id = xmpp_stanza_get_id(st);
    char *body = NULL;
    xmpp_stanza_t *b;
    long seq = -1;

    if (from == NULL)
        from = "";
    if (type != NULL && strcmp(type, "error") == 0) {
        xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(st, "error");
        out("message-error from=%s condition=%s", from,
            e ? first_tag_child(e, "text") : "?");
        return 1;
    }
    if (id != NULL && id[0] == 's')
        seq = strtol(id + 1, NULL, 10);
    x->received++;
    note_seq(x, from, seq);
    if (!x->quiet) {
        b = xmpp_stanza_get_child_by_name(st, "body");
        body = b ? xmpp_stanza_get_text(b) : NULL;
        out("message from=%s seq=%ld body=%s", from, seq, body ? body : "");
        if (body != NULL)
            xmpp_free(x->ctx, body);
    }
    return 1;
}

static int on_presence(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    const char *from = xmpp_stanza_get_from(st);
    const char *type = xmpp_stanza_get_type(st);

    x->presences++;
    out("presence from=%s type=%s", from ? from : "", type ? type : "available");
    return 1;
}

static int on_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    const char *type = xmpp_stanza_get_type(st);
    const char *from = xmpp_stanza_get_from(st);
    const char *id = xmpp_stanza_get_id(st);
    xmpp_stanza_t *reply;

    if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return 1;
    out("iq-request type=%s from=%s", type, from ? from : "");
    if (!x->answer || from == NULL)
        return 1;
    reply = xmpp_iq_new(x->ctx, "result", id ? id : "");
    xmpp_stanza_set_to(reply, from);
    xmpp_stanza_set_from(reply, x->jid);
    xmpp_send(conn, reply);
    xmpp_stanza_release(reply);
    return 1;
}

static int on_iq_reply(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    const char *type = xmpp_stanza_get_type(st);
    const char *from = xmpp_stanza_get_from(st);

    if (type == NULL || (strcmp(type, "result") != 0 && strcmp(type, "error") != 0))
        return 1;
    x->iq_done = true;
    if (strcmp(type, "error") == 0) {
        xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(st, "error");
        out("iq type=error from=%s condition=%s", from ? from : "",
            e ? first_tag_child(e, "text") : "?");
    } else {
        out("iq type=%s from=%s", type ? type : "?", from ? from : "");
    }
    return 0;
}

static void send_one(struct xc *x, long i)
{
    char id[32], text[256];
    xmpp_stanza_t *m = xmpp_message_new(x->ctx, "normal", x->to, NULL);

    snprintf(id, sizeof id, "s%ld", i);
    snprintf(text, sizeof text, "%s #%ld from %s", x->body, i, x->jid);
    xmpp_stanza_set_id(m, id);
    xmpp_stanza_set_from(m, x->jid);
    xmpp_message_set_body(m, text);
    xmpp_send(x->conn, m);
    xmpp_stanza_release(m);
}

/* pace_sends sends the --interval-ms messages that are due; true once all
 * are sent. */
static bool pace_sends(struct xc *x)
{
    double t = now_s();

    while (x->next_seq <= x->send_n && t >= x->next_send) {
        send_one(x, x->next_seq++);
        x->next_send += (double)x->interval_ms / 1000.0;
        if (x->next_seq > x->send_n)
            out("sent messages=%ld", x->send_n);
    }
    return x->next_seq > x->send_n;
}

static void send_tasks(struct xc *x)
{
    if (x->interval_ms > 0) {
        x->next_seq = 1;
        x->next_send = now_s();
        pace_sends(x);
    } else {
        for (long i = 1; i <= x->send_n; i++)
            send_one(x, i);
        if (x->send_n > 0)
            out("sent messages=%ld", x->send_n);
    }
    if (x->iq) {
        /* The id names the sender, so that two xcomps pinging each other
         * never mistake the other's request for their own reply. */
        snprintf(x->iq_id, sizeof x->iq_id, "ping-%s", x->jid);
        xmpp_stanza_t *iq = xmpp_iq_new(x->ctx, "get", x->iq_id);
        xmpp_stanza_t *ping = xmpp_stanza_new(x->ctx);
        xmpp_stanza_set_name(ping, "ping");
        xmpp_stanza_set_ns(ping, "urn:xmpp:ping");
        xmpp_stanza_add_child(iq, ping);
        xmpp_stanza_release(ping);
        xmpp_stanza_set_to(iq, x->to);
        xmpp_stanza_set_from(iq, x->jid);
        xmpp_id_handler_add(x->conn, on_iq_reply, x->iq_id, x);
        xmpp_send(x->conn, iq);
        xmpp_stanza_release(iq);
    }
    if (x->presence) {
        xmpp_stanza_t *p = xmpp_presence_new(x->ctx);
        xmpp_stanza_set_to(p, x->to);
        xmpp_stanza_set_from(p, x->jid);
        xmpp_send(x->conn, p);
        xmpp_stanza_release(p);
    }
    x->tasks_sent = true;
}

/* on_handshake: the server accepted the XEP-0114 handshake (--tls). */
static int on_handshake(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;

    x->connected = x->ever_connected = true;
    out("connected jid=%s%s", x->jid, xmpp_conn_is_secured(conn) ? " secured=yes" : "");
    return 0;
}

/* raw_event drives the --tls connection: TLS, stream, handshake. */
static void raw_event(struct xc *x, xmpp_conn_t *conn, xmpp_conn_event_t ev)
{
    char *attrs[] = {"to",           (char *)x->jid,
                     "xmlns",        "jabber:component:accept",
                     "xmlns:stream", "http://etherx.jabber.org/streams"};
    char *digest;
    size_t n;
    unsigned char *in;

    if (ev == XMPP_CONN_RAW_CONNECT) {
        if (xmpp_conn_tls_start(conn) != XMPP_EOK) {
            out("tls-failed");
            x->finished = true;
            return;
        }
        xmpp_conn_open_stream(conn, attrs, sizeof attrs / sizeof attrs[0]);
        return;
    }
    /* XMPP_CONN_CONNECT: the server opened its stream; XEP-0114 §3. */
    n = strlen(x->stream_id) + strlen(x->secret);
    in = malloc(n + 1);
    if (in == NULL || x->stream_id[0] == '\0') {
        out("no-stream-id");
        free(in);
        x->finished = true;
        return;
    }
    snprintf((char *)in, n + 1, "%s%s", x->stream_id, x->secret);
    digest = xmpp_sha1(x->ctx, in, n);
    free(in);
    xmpp_handler_add(conn, on_handshake, NULL, "handshake", NULL, x);
    xmpp_send_raw_string(conn, "<handshake>%s</handshake>", digest ? digest : "");
    if (digest != NULL)
        xmpp_free(x->ctx, digest);
}

static void on_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
                    xmpp_stream_error_t *se, void *ud)
{
    struct xc *x = ud;

    if (x->tls && (ev == XMPP_CONN_RAW_CONNECT || ev == XMPP_CONN_CONNECT)) {
        raw_event(x, conn, ev);
        return;
    }
    if (ev == XMPP_CONN_CONNECT) {
        if (x->srv != NULL && x->cur != NULL)
            out("srv target %s:%u -> %s connected", x->cur->target, x->cur->port,
                x->cur_ip);
        if (x->srv != NULL && x->ever_connected)
            x->next_send = now_s(); /* --interval-ms: go on, no burst */
        x->connected = x->ever_connected = true;
        out("connected jid=%s%s", x->jid,
            xmpp_conn_is_secured(conn) ? " secured=yes" : "");
        return;
    }
    if (se != NULL)
        out("stream-error condition=%s",
            se->stanza ? first_tag_child(se->stanza, "text") : "?");
    if (se != NULL && se->stanza != NULL) {
        xmpp_stanza_t *h = xmpp_stanza_get_child_by_name(se->stanza, "see-other-host");
        char *t = h != NULL ? xmpp_stanza_get_text(h) : NULL;
        if (t != NULL) {
            out("see-other-host host=%s", t);
            xmpp_free(x->ctx, t);
        }
    }
    out("disconnected error=%d", error);
    if (x->srv != NULL && !x->closing) {
        /* A call bridge moves on to the next target. */
        if (x->cur != NULL)
            out("srv target %s:%u -> %s %s error=%d", x->cur->target, x->cur->port,
                x->cur_ip, x->connected ? "lost" : "failed", error);
        x->connected = false;
        x->need_reconnect = true;
        if (x->next_rec >= x->nrecs) /* a whole round failed: pause */
            x->retry_at = now_s() + 0.5;
        return;
    }
    x->connected = false;
    x->finished = true;
}

static bool stdin_has_line(void)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};
    char buf[64];

    if (poll(&p, 1, 0) <= 0)
        return false;
    return read(0, buf, sizeof buf) > 0;
}

static bool tasks_done(struct xc *x)
{
    return x->tasks_sent && (x->interval_ms <= 0 || x->next_seq > x->send_n) &&
           xmpp_conn_send_queue_len(x->conn) == 0 && x->received >= x->expect_n &&
           x->presences >= x->expect_presence && (!x->iq || x->iq_done);
}

/* libstrophe 0.12.2 allocates the stream-management state only in
 * xmpp_connect_client, yet reads it after every stanza on any connection, so
 * a component connection crashes on its first stanza (src/conn.c,
 * _handle_stream_stanza).  Work around it by letting a throwaway client
 * connection fail against a bound but non-listening local port (an instant
 * refusal), then moving its state to our connection. */
static void dummy_cb(xmpp_conn_t *c, xmpp_conn_event_t ev, int err,
                     xmpp_stream_error_t *se, void *ud)
{
    *(int *)ud = 1;
}

static void borrow_sm_state(xmpp_ctx_t *ctx, xmpp_conn_t *conn)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    xmpp_conn_t *dummy;
    xmpp_sm_state_t *st;
    int fd, done = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    dummy = xmpp_conn_new(ctx);
    xmpp_conn_set_jid(dummy, "probe@127.0.0.1");
    xmpp_conn_set_flags(dummy, XMPP_CONN_FLAG_DISABLE_TLS);
    if (xmpp_connect_client(dummy, "127.0.0.1", ntohs(a.sin_port), dummy_cb, &done) ==
        XMPP_EOK) {
        for (int i = 0; i < 100 && !done; i++)
            xmpp_run_once(ctx, 10);
    }
    st = xmpp_conn_get_sm_state(dummy);
    if (st != NULL && xmpp_conn_set_sm_state(conn, st) != XMPP_EOK)
        xmpp_free_sm_state(st);
    xmpp_conn_release(dummy);
    close(fd);
}

/* dns_state: a resolver that asks only x->dns ("IP:PORT"), never the
 * system's servers or search list. */
static int dns_state(struct xc *x, res_state st)
{
    char ip[INET_ADDRSTRLEN];
    const char *colon = strrchr(x->dns, ':');
    size_t n = colon ? (size_t)(colon - x->dns) : 0;
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;

    memset(st, 0, sizeof *st);
    if (colon == NULL || n == 0 || n >= sizeof ip || port <= 0 || port > 65535)
        return -1;
    memcpy(ip, x->dns, n);
    ip[n] = '\0';
    if (res_ninit(st) != 0)
        return -1;
    st->nscount = 1;
    memset(&st->nsaddr_list[0], 0, sizeof st->nsaddr_list[0]);
    st->nsaddr_list[0].sin_family = AF_INET;
    st->nsaddr_list[0].sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &st->nsaddr_list[0].sin_addr) != 1) {
        res_nclose(st);
        return -1;
    }
    st->retrans = 1;
    st->retry = 2;
    st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    return 0;
}

/* dns_query asks for name/type; answers in *msg (over buf) only with
 * NOERROR and at least one answer. */
static int dns_query(struct xc *x, const char *name, int type, unsigned char *buf,
                     int len, ns_msg *msg)
{
    struct __res_state st;
    int n;

    if (dns_state(x, &st) != 0)
        return -1;
    n = res_nquery(&st, name, ns_c_in, type, buf, len);
    res_nclose(&st);
    if (n < HFIXEDSZ || n > len || ns_initparse(buf, n, msg) != 0 ||
        ns_msg_getflag(*msg, ns_f_rcode) != ns_r_noerror ||
        ns_msg_count(*msg, ns_s_an) == 0)
        return -1;
    return 0;
}

/* srv_order puts recs[0..n) in RFC 2782 "Usage rules" order: ascending
 * priority; within one priority, repeatedly pick a record at random with
 * probability proportional to its weight (zero weights first in the list,
 * so they are chosen rarely but can be). */
static void srv_order(struct srv_rec *recs, size_t n)
{
    struct srv_rec t;

    for (size_t i = 1; i < n; i++) /* stable insertion sort on (prio, w>0) */
        for (size_t j = i; j > 0 && (recs[j - 1].prio > recs[j].prio ||
                                     (recs[j - 1].prio == recs[j].prio &&
                                      recs[j - 1].weight > 0 && recs[j].weight == 0));
             j--) {
            t = recs[j];
            recs[j] = recs[j - 1];
            recs[j - 1] = t;
        }
    for (size_t lo = 0; lo < n;) {
        size_t hi = lo;
        while (hi < n && recs[hi].prio == recs[lo].prio)
            hi++;
        for (size_t k = lo; k + 1 < hi; k++) {
            unsigned long sum = 0, pick, run = 0;
            size_t chosen = k;
            for (size_t i = k; i < hi; i++)
                sum += recs[i].weight;
            pick = sum ? (unsigned long)random() % (sum + 1) : 0;
            for (size_t i = k; i < hi; i++) {
                run += recs[i].weight;
                if (run >= pick) {
                    chosen = i;
                    break;
                }
            }
            t = recs[k];
            recs[k] = recs[chosen];
            recs[chosen] = t;
        }
        lo = hi;
    }
}

/* srv_lookup fills x->recs from _xmpp-component._tcp.<x->srv>; returns the
 * number of usable records (0: none, or the service is "decidedly not
 * available", a single target "."; RFC 2782). */
static size_t srv_lookup(struct xc *x)
{
    unsigned char buf[4096];
    char name[NS_MAXDNAME];
    ns_msg msg;
    ns_rr rr;

    x->nrecs = x->next_rec = 0;
    snprintf(name, sizeof name, "_xmpp-component._tcp.%s", x->srv);
    if (dns_query(x, name, ns_t_srv, buf, sizeof buf, &msg) != 0)
        return 0;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an) && x->nrecs < MAX_SRV; i++) {
        struct srv_rec *r = &x->recs[x->nrecs];
        const unsigned char *rd;

        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
            return x->nrecs = 0;
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in)
            continue; /* e.g. a CNAME on the way */
        rd = ns_rr_rdata(rr);
        if (ns_rr_rdlen(rr) < 7 ||
            dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, r->target,
                      sizeof r->target) != (int)ns_rr_rdlen(rr) - 6)
            continue;
        r->prio = ns_get16(rd);
        r->weight = ns_get16(rd + 2);
        r->port = ns_get16(rd + 4);
        if (strcmp(r->target, ".") == 0 || r->target[0] == '\0' || r->port == 0)
            continue;
        x->nrecs++;
    }
    srv_order(x->recs, x->nrecs);
    for (size_t i = 0; i < x->nrecs; i++)
        out("srv record prio=%u weight=%u port=%u target=%s", x->recs[i].prio,
            x->recs[i].weight, x->recs[i].port, x->recs[i].target);
    return x->nrecs;
}

/* resolve_a: the first A record of name, through the same server. */
static int resolve_a(struct xc *x, const char *name, char ip[INET_ADDRSTRLEN])
{
    unsigned char buf[2048];
    ns_msg msg;
    ns_rr rr;

    if (dns_query(x, name, ns_t_a, buf, sizeof buf, &msg) != 0)
        return -1;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
            return -1;
        if (ns_rr_type(rr) == ns_t_a && ns_rr_class(rr) == ns_c_in &&
            ns_rr_rdlen(rr) == 4 &&
            inet_ntop(AF_INET, ns_rr_rdata(rr), ip, INET_ADDRSTRLEN))
            return 0;
    }
    return -1;
}

static void borrow_sm_state(xmpp_ctx_t *ctx, xmpp_conn_t *conn);
static int on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_presence(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);

/* srv_connect_next starts a connection to the next SRV target (a new
 * xmpp_conn_t each time: the old one is released here, outside its
 * callbacks).  After the last target it looks the records up again; when
 * no target can even be tried it waits half a second (x->retry_at). */
static void srv_connect_next(struct xc *x)
{
    x->need_reconnect = false;
    x->cur = NULL;
    if (x->conn != NULL)
        xmpp_conn_release(x->conn);
    x->conn = xmpp_conn_new(x->ctx);
    xmpp_conn_set_jid(x->conn, x->jid);
    xmpp_conn_set_pass(x->conn, x->secret);
    borrow_sm_state(x->ctx, x->conn);
    xmpp_handler_add(x->conn, on_message, NULL, "message", NULL, x);
    xmpp_handler_add(x->conn, on_presence, NULL, "presence", NULL, x);
    xmpp_handler_add(x->conn, on_iq, NULL, "iq", NULL, x);
    for (int tries = 0; tries < 2; tries++) {
        if (x->next_rec >= x->nrecs && srv_lookup(x) == 0) {
            out("srv lookup failed");
            break;
        }
        while (x->next_rec < x->nrecs) {
            const struct srv_rec *r = &x->recs[x->next_rec++];
            if (resolve_a(x, r->target, x->cur_ip) != 0) {
                out("srv target %s:%u unresolved", r->target, r->port);
                continue;
            }
            x->cur = r;
            if (xmpp_connect_component(x->conn, x->cur_ip, (unsigned short)r->port,
                                       on_conn, x) == XMPP_EOK)
                return;
            out("srv target %s:%u -> %s failed error=-1", r->target, r->port, x->cur_ip);
            x->cur = NULL;
        }
    }
    x->need_reconnect = true;
    x->retry_at = now_s() + 0.5;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: xcomp [--host H] --port P --jid J --secret S [--to J] [--send N]\n"
            "             [--body TEXT] [--expect N] [--expect-presence N] [--iq]\n"
            "             [--presence] [--answer] [--stay] [--quiet] [--go-on-stdin]\n"
            "             [--timeout SEC] [--tls [--ca FILE]] [--interval-ms N]\n"
            "             [--srv DOMAIN --dns IP:PORT]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"jid", required_argument, NULL, 'j'},
        {"secret", required_argument, NULL, 's'},
        {"to", required_argument, NULL, 't'},
        {"send", required_argument, NULL, 'n'},
        {"body", required_argument, NULL, 'b'},
        {"expect", required_argument, NULL, 'e'},
        {"expect-presence", required_argument, NULL, 'P'},
        {"iq", no_argument, NULL, 'i'},
        {"presence", no_argument, NULL, 'r'},
        {"answer", no_argument, NULL, 'a'},
        {"stay", no_argument, NULL, 'S'},
        {"quiet", no_argument, NULL, 'q'},
        {"go-on-stdin", no_argument, NULL, 'g'},
        {"timeout", required_argument, NULL, 'T'},
        {"tls", no_argument, NULL, 'L'},
        {"ca", required_argument, NULL, 'C'},
        {"interval-ms", required_argument, NULL, 'I'},
        {"srv", required_argument, NULL, 'D'},
        {"dns", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    struct xc x = {
        .host = "127.0.0.1", .body = "hello", .timeout_s = 30, .order_ok = true};
    xmpp_log_t log = {.handler = on_log, .userdata = &x};
    double deadline;
    int ch, status;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            x.host = optarg;
            break;
        case 'p':
            x.port = atoi(optarg);
            break;
        case 'j':
            x.jid = optarg;
            break;
        case 's':
            x.secret = optarg;
            break;
        case 't':
            x.to = optarg;
            break;
        case 'n':
            x.send_n = atol(optarg);
            break;
        case 'b':
            x.body = optarg;
            break;
        case 'e':
            x.expect_n = atol(optarg);
            break;
        case 'P':
            x.expect_presence = atol(optarg);
            break;
        case 'i':
            x.iq = true;
            break;
        case 'r':
            x.presence = true;
            break;
        case 'a':
            x.answer = true;
            break;
        case 'S':
            x.stay = true;
            break;
        case 'q':
            x.quiet = true;
            break;
        case 'g':
            x.go_on_stdin = true;
            break;
        case 'T':
            x.timeout_s = atof(optarg);
            break;
        case 'L':
            x.tls = true;
            break;
        case 'C':
            x.ca = optarg;
            break;
        case 'I':
            x.interval_ms = atol(optarg);
            break;
        case 'D':
            x.srv = optarg;
            break;
        case 'N':
            x.dns = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if ((x.srv == NULL && x.port <= 0) || x.jid == NULL || x.secret == NULL ||
        (x.srv != NULL && (x.dns == NULL || x.tls)) || (x.dns != NULL && x.srv == NULL) ||
        ((x.send_n > 0 || x.iq || x.presence) && x.to == NULL)) {
        usage();
        return 2;
    }

    xmpp_initialize();
    x.ctx = xmpp_ctx_new(NULL, &log);
    deadline = now_s() + x.timeout_s;
    if (x.srv != NULL) {
        srandom((unsigned)time(NULL) ^ (unsigned)getpid());
        srv_connect_next(&x);
        goto run;
    }
    x.conn = xmpp_conn_new(x.ctx);
    xmpp_conn_set_jid(x.conn, x.jid);
    xmpp_conn_set_pass(x.conn, x.secret);
    if (!x.tls)
        borrow_sm_state(x.ctx, x.conn);
    else if (x.ca != NULL)
        xmpp_conn_set_cafile(x.conn, x.ca);
    xmpp_handler_add(x.conn, on_message, NULL, "message", NULL, &x);
    xmpp_handler_add(x.conn, on_presence, NULL, "presence", NULL, &x);
    xmpp_handler_add(x.conn, on_iq, NULL, "iq", NULL, &x);
    /* Direct TLS: XEP-0114 has no STARTTLS (no stream features). */
    if ((x.tls ? xmpp_connect_raw(x.conn, x.host, (unsigned short)x.port, on_conn, &x)
               : xmpp_connect_component(x.conn, x.host, (unsigned short)x.port, on_conn,
                                        &x)) != XMPP_EOK) {
        out("disconnected error=-1");
        return 1;
    }
run:
    while (!x.finished) {
        if (now_s() > deadline) {
            out("timeout received=%ld presences=%ld", x.received, x.presences);
            break;
        }
        if (x.need_reconnect) {
            if (now_s() >= x.retry_at)
                srv_connect_next(&x);
            else
                usleep(20000);
            continue;
        }
        xmpp_run_once(x.ctx, x.interval_ms > 0 && x.interval_ms < 20 ? 1 : 20);
        if (!x.connected || x.closing)
            continue;
        if (x.started && x.interval_ms > 0)
            pace_sends(&x);
        if (!x.started && (!x.go_on_stdin || stdin_has_line())) {
            x.started = true;
            send_tasks(&x);
        }
        if (x.started && tasks_done(&x)) {
            if (!x.reported) {
                x.reported = true;
                if (x.expect_n > 0)
                    out("received messages=%ld in_order=%s", x.received,
                        x.order_ok ? "yes" : "no");
            }
            if (!x.stay) {
                x.closing = true;
                xmpp_disconnect(x.conn);
            }
        }
    }
    if (!x.ever_connected)
        status = 1;
    else if (!x.finished)
        status = 3;
    else if (!x.order_ok || x.received < x.expect_n)
        status = 4;
    else
        status = 0;
    xmpp_conn_release(x.conn);
    xmpp_ctx_free(x.ctx);
    xmpp_shutdown();
    for (size_t i = 0; i < x.nsenders; i++)
        free(x.senders[i].jid);
    return status;
}
