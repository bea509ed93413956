/* nemcomp.c: the load component of the fault-injection test
 * (tests/integration/nemesis.py): a call bridge that sends numbered
 * messages to one partner at a steady rate, logs every event with its
 * CLOCK_MONOTONIC time for the checker, and moves to another node when its
 * own dies or stops answering, as call bridges do.
 *
 *   nemcomp --jid a1.example.com --secret S --to b1.example.com
 *           --nodes 10.77.1.1:5223,10.77.1.2:5223,... [--rate 125]
 *           [--ping-timeout 3] [--auth-timeout 4] [--timeout 3600]
 *
 * Each connection is a session with an id of its own, "<name>.<pid>.<n>";
 * its messages are numbered from 1, carry the id "<sid>/<seq>" and the body
 * "<sid> <seq>", so that a delivery, an error reply and a duplicate each
 * name exactly one message.  The first node in --nodes is tried first;
 * when a session is lost (the server closed it, a stream error, or no
 * answer to an XEP-0199 ping to the domain for --ping-timeout seconds, or
 * no authentication within --auth-timeout), the next node in the list is
 * tried, round-robin, half a second apart after a whole round failed.
 *
 * Commands on stdin, one a line: "go" starts sending, "stop" stops sending
 * (the session stays and keeps receiving), "move K" closes the session
 * cleanly (</stream:stream>) and, once the server closed it, connects to
 * node K (0-based index into --nodes), "jump K" leaves the session open
 * (abandoned: no more sends, still read) and connects to node K at once,
 * as a bridge that lost its network does, "quit" closes and exits.
 *
 * Output on stdout, one event a line (T: monotonic seconds):
 *   conn T SID NODE                 authenticated on node NODE
 *   fail T SID NODE REASON          a connection that never authenticated
 *   end T SID REASON [CONDITION]    a session ended: moved, quit (asked for),
 *                                   jumped, lost, stream-error, ping-timeout
 *   s T SID SEQ                     sent
 *   r T MYSID FROMSID SEQ           received (a message from the partner)
 *   e T MYSID ID CONDITION          an error reply to our message ID
 *   x T MYSID WHAT                  something unexpected arrived
 *   done T sent=N
 * Exit status: 0 after quit, 2 usage, 3 --timeout. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <strophe.h>

#define MAX_NODES 16
#define MAX_SESS 4096

struct nc;

/* One connection attempt, authenticated or not. */
struct sess {
    struct nc *nc;
    xmpp_conn_t *conn;
    char sid[96];
    int node;
    double started, last_pong, ping_sent;
    long seq, pings;
    bool authed, ended, dead, released;
};

struct nc {
    const char *jid, *secret, *to;
    char domain[256], name[64];
    char *nodes[MAX_NODES];
    int nnodes;
    double rate, ping_timeout, auth_timeout;
    xmpp_ctx_t *ctx;
    struct sess *all[MAX_SESS];
    int nall;
    struct sess *cur;     /* the session we send on, or connecting */
    struct sess *waiting; /* a moved session whose close we wait for */
    double waiting_until;
    int next_node, failed_in_round;
    double retry_at, next_send;
    bool sending, quitting;
    long total_sent;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void emit(const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* emit prints one event line: "EV T rest" (stdout is line buffered, so a
 * killed nemcomp loses nothing it printed). */
static void emit(const char *ev, const char *fmt, ...)
{
    va_list ap;

    printf("%s %.4f ", ev, now_s());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static const char *first_tag_child(xmpp_stanza_t *st, const char *skip)
{
    for (xmpp_stanza_t *c = st ? xmpp_stanza_get_children(st) : NULL; c;
         c = xmpp_stanza_get_next(c)) {
        const char *name = xmpp_stanza_is_tag(c) ? xmpp_stanza_get_name(c) : NULL;
        if (name != NULL && (skip == NULL || strcmp(name, skip) != 0))
            return name;
    }
    return "?";
}

/* end_sess: the session is over for us (reason logged once); it is closed
 * (a clean </stream:stream> when still connected) and released later, in
 * the main loop, once libstrophe reported the disconnect. */
static void end_sess(struct sess *s, const char *reason, const char *cond)
{
    struct nc *nc = s->nc;

    if (!s->ended) {
        s->ended = true;
        if (s->authed)
            emit("end", "%s %s%s%s", s->sid, reason, cond ? " " : "", cond ? cond : "");
        else
            emit("fail", "%s %d %s", s->sid, s->node, reason);
    }
    if (nc->cur == s) {
        nc->cur = NULL;
        if (!s->authed && ++nc->failed_in_round >= nc->nnodes) {
            nc->failed_in_round = 0;
            nc->retry_at = now_s() + 0.5;
        }
    }
    if (!s->dead)
        xmpp_disconnect(s->conn); /* also stops a connect in progress */
}

static int on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct sess *s = ud;
    const char *type = xmpp_stanza_get_type(st);
    const char *id = xmpp_stanza_get_id(st);
    xmpp_stanza_t *b;
    char *body, from_sid[96];
    long seq;

    (void)conn;
    if (type != NULL && strcmp(type, "error") == 0) {
        xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(st, "error");
        emit("e", "%s %s %s", s->sid, id ? id : "-", e ? first_tag_child(e, "text") : "?");
        return 1;
    }
    b = xmpp_stanza_get_child_by_name(st, "body");
    body = b ? xmpp_stanza_get_text(b) : NULL;
    if (body != NULL && sscanf(body, "%95s %ld", from_sid, &seq) == 2)
        emit("r", "%s %s %ld", s->sid, from_sid, seq);
    else
        emit("x", "%s message-without-numbered-body id=%s", s->sid, id ? id : "-");
    if (body != NULL)
        xmpp_free(s->nc->ctx, body);
    return 1;
}

static int on_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct sess *s = ud;
    const char *type = xmpp_stanza_get_type(st);
    const char *id = xmpp_stanza_get_id(st);

    (void)conn;
    if (type != NULL && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) &&
        id != NULL && strncmp(id, "ping-", 5) == 0) {
        s->last_pong = now_s();
        s->ping_sent = 0;
    }
    return 1;
}

static void on_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
                    xmpp_stream_error_t *se, void *ud)
{
    struct sess *s = ud;
    struct nc *nc = s->nc;

    (void)conn;
    if (ev == XMPP_CONN_CONNECT) {
        if (s->ended) { /* gave up on it meanwhile */
            xmpp_disconnect(s->conn);
            return;
        }
        s->authed = true;
        s->last_pong = now_s();
        nc->failed_in_round = 0;
        nc->next_send = now_s();
        emit("conn", "%s %d", s->sid, s->node);
        return;
    }
    s->dead = true;
    if (!s->ended) {
        char why[32];
        snprintf(why, sizeof why, "lost(%d)", error);
        end_sess(s, se != NULL ? "stream-error" : why,
                 se != NULL ? first_tag_child(se->stanza, "text") : NULL);
        nc->next_node = (s->node + 1) % nc->nnodes;
    }
}

/* libstrophe 0.12.2 allocates the stream-management state only in
 * xmpp_connect_client, yet reads it after every stanza on any connection
 * (src/conn.c, _handle_stream_stanza); the same work-around as xcomp.c:
 * borrow it from a throwaway client connection refused at once. */
static void dummy_cb(xmpp_conn_t *c, xmpp_conn_event_t ev, int err,
                     xmpp_stream_error_t *se, void *ud)
{
    (void)c, (void)ev, (void)err, (void)se;
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

/* start_sess connects to node nc->next_node as a new session. */
static void start_sess(struct nc *nc)
{
    struct sess *s;
    char host[128], *colon;
    int node = nc->next_node % nc->nnodes;

    if (nc->nall == MAX_SESS) {
        nc->retry_at = now_s() + 1;
        return;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        nc->retry_at = now_s() + 1;
        return;
    }
    nc->all[nc->nall++] = s;
    s->nc = nc;
    s->node = node;
    s->started = now_s();
    snprintf(s->sid, sizeof s->sid, "%s.%d.%d", nc->name, (int)getpid(), nc->nall);
    snprintf(host, sizeof host, "%s", nc->nodes[node]);
    colon = strrchr(host, ':');
    *colon = '\0';
    s->conn = xmpp_conn_new(nc->ctx);
    xmpp_conn_set_jid(s->conn, nc->jid);
    xmpp_conn_set_pass(s->conn, nc->secret);
    borrow_sm_state(nc->ctx, s->conn);
    xmpp_handler_add(s->conn, on_message, NULL, "message", NULL, s);
    xmpp_handler_add(s->conn, on_iq, NULL, "iq", NULL, s);
    nc->cur = s;
    if (xmpp_connect_component(s->conn, host, (unsigned short)atoi(colon + 1), on_conn,
                               s) != XMPP_EOK) {
        s->dead = true;
        end_sess(s, "connect-error", NULL);
        nc->next_node = (node + 1) % nc->nnodes;
    }
}

static void send_msg(struct nc *nc, struct sess *s)
{
    char id[128], body[128];
    xmpp_stanza_t *m = xmpp_message_new(nc->ctx, "normal", nc->to, NULL);

    s->seq++;
    snprintf(id, sizeof id, "%s/%ld", s->sid, s->seq);
    snprintf(body, sizeof body, "%s %ld", s->sid, s->seq);
    xmpp_stanza_set_id(m, id);
    xmpp_stanza_set_from(m, nc->jid);
    xmpp_message_set_body(m, body);
    xmpp_send(s->conn, m);
    xmpp_stanza_release(m);
    nc->total_sent++;
    emit("s", "%s %ld", s->sid, s->seq);
}

static void send_ping(struct nc *nc, struct sess *s)
{
    char id[128];
    xmpp_stanza_t *iq, *ping;

    snprintf(id, sizeof id, "ping-%s-%ld", s->sid, ++s->pings);
    iq = xmpp_iq_new(nc->ctx, "get", id);
    ping = xmpp_stanza_new(nc->ctx);
    xmpp_stanza_set_name(ping, "ping");
    xmpp_stanza_set_ns(ping, "urn:xmpp:ping");
    xmpp_stanza_add_child(iq, ping);
    xmpp_stanza_release(ping);
    xmpp_stanza_set_to(iq, nc->domain);
    xmpp_stanza_set_from(iq, nc->jid);
    xmpp_send(s->conn, iq);
    xmpp_stanza_release(iq);
    s->ping_sent = now_s();
}

/* tick: timeouts, pings and paced sending of the current session. */
static void tick(struct nc *nc)
{
    double t = now_s();
    struct sess *s = nc->cur;

    if (s == NULL)
        return;
    if (!s->authed) {
        if (t - s->started > nc->auth_timeout) {
            end_sess(s, "auth-timeout", NULL);
            nc->next_node = (s->node + 1) % nc->nnodes;
        }
        return;
    }
    if (s->ping_sent > 0 && t - s->ping_sent > nc->ping_timeout) {
        end_sess(s, "ping-timeout", NULL);
        nc->next_node = (s->node + 1) % nc->nnodes;
        return;
    }
    if (s->ping_sent == 0 && t - s->last_pong >= 1.0)
        send_ping(nc, s);
    if (!nc->sending)
        return;
    if (t - nc->next_send > 1.0) /* a stall of ours: go on, no burst */
        nc->next_send = t;
    while (t >= nc->next_send) {
        send_msg(nc, s);
        nc->next_send += 1.0 / nc->rate;
    }
}

static void command(struct nc *nc, const char *line)
{
    int k;

    if (strncmp(line, "go", 2) == 0) {
        nc->sending = true;
        nc->next_send = now_s();
    } else if (strncmp(line, "stop", 4) == 0) {
        nc->sending = false;
    } else if (sscanf(line, "move %d", &k) == 1 && k >= 0 && k < nc->nnodes) {
        struct sess *s = nc->cur;
        nc->next_node = k;
        if (s != NULL) {
            end_sess(s, s->authed ? "moved" : "move-before-auth", NULL);
            if (s->authed && !s->dead) {
                nc->waiting = s;
                nc->waiting_until = now_s() + 3.0;
            }
        }
        nc->failed_in_round = 0;
        nc->retry_at = 0;
    } else if (sscanf(line, "jump %d", &k) == 1 && k >= 0 && k < nc->nnodes) {
        /* A bridge that lost its network and comes back elsewhere: the old
         * session is left open (not closed, still read) and a new one of
         * the same name starts on node k; the server must close the old
         * one with conflict (DESIGN.md, "A component name lives once"). */
        struct sess *s = nc->cur;
        nc->next_node = k;
        if (s != NULL && s->authed && !s->ended) {
            s->ended = true;
            emit("end", "%s jumped", s->sid);
            nc->cur = NULL;
        } else if (s != NULL) {
            end_sess(s, "jump-before-auth", NULL);
        }
        nc->failed_in_round = 0;
        nc->retry_at = 0;
    } else if (strncmp(line, "quit", 4) == 0) {
        nc->quitting = true;
        if (nc->cur != NULL)
            end_sess(nc->cur, "quit", NULL);
    }
}

static void read_commands(struct nc *nc)
{
    static char buf[4096];
    static size_t len;
    struct pollfd p = {.fd = 0, .events = POLLIN};
    ssize_t n;
    char *nl;

    if (poll(&p, 1, 0) <= 0)
        return;
    n = read(0, buf + len, sizeof buf - 1 - len);
    if (n <= 0) { /* the harness went away: leave */
        if (!nc->quitting)
            command(nc, "quit");
        return;
    }
    len += (size_t)n;
    buf[len] = '\0';
    while ((nl = strchr(buf, '\n')) != NULL) {
        *nl = '\0';
        command(nc, buf);
        len -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, len + 1);
    }
    if (len == sizeof buf - 1)
        len = 0;
}

/* reap releases the connections libstrophe has finished with. */
static bool reap(struct nc *nc)
{
    bool all_done = true;

    for (int i = 0; i < nc->nall; i++) {
        struct sess *s = nc->all[i];
        if (s->released)
            continue;
        if (s->dead) {
            xmpp_conn_release(s->conn);
            s->released = true;
        } else {
            all_done = false;
        }
    }
    return all_done;
}

static void usage(void)
{
    fprintf(stderr, "usage: nemcomp --jid J --secret S --to J --nodes H:P[,H:P...]\n"
                    "               [--rate N] [--ping-timeout S] [--auth-timeout S]\n"
                    "               [--timeout S]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"jid", required_argument, NULL, 'j'},
        {"secret", required_argument, NULL, 's'},
        {"to", required_argument, NULL, 't'},
        {"nodes", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"ping-timeout", required_argument, NULL, 'p'},
        {"auth-timeout", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    struct nc nc = {.rate = 125, .ping_timeout = 3, .auth_timeout = 4};
    double deadline, timeout = 3600, quit_deadline = 0;
    char *list = NULL, *tok, *save;
    const char *dot;
    int ch, status = 0;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'j': nc.jid = optarg; break;
        case 's': nc.secret = optarg; break;
        case 't': nc.to = optarg; break;
        case 'n': list = optarg; break;
        case 'r': nc.rate = atof(optarg); break;
        case 'p': nc.ping_timeout = atof(optarg); break;
        case 'a': nc.auth_timeout = atof(optarg); break;
        case 'T': timeout = atof(optarg); break;
        default: usage(); return 2;
        }
    }
    if (nc.jid == NULL || nc.secret == NULL || nc.to == NULL || list == NULL ||
        nc.rate <= 0 || (dot = strchr(nc.jid, '.')) == NULL ||
        (size_t)(dot - nc.jid) >= sizeof nc.name) {
        usage();
        return 2;
    }
    memcpy(nc.name, nc.jid, (size_t)(dot - nc.jid));
    snprintf(nc.domain, sizeof nc.domain, "%s", dot + 1);
    for (tok = strtok_r(list, ",", &save); tok && nc.nnodes < MAX_NODES;
         tok = strtok_r(NULL, ",", &save)) {
        if (strrchr(tok, ':') == NULL) {
            usage();
            return 2;
        }
        nc.nodes[nc.nnodes++] = tok;
    }
    if (nc.nnodes == 0) {
        usage();
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    xmpp_initialize();
    nc.ctx = xmpp_ctx_new(NULL, NULL);
    deadline = now_s() + timeout;
    for (;;) {
        double t = now_s();
        if (t > deadline) {
            emit("timeout", "sent=%ld", nc.total_sent);
            status = 3;
            break;
        }
        read_commands(&nc);
        if (nc.waiting != NULL && (nc.waiting->dead || t > nc.waiting_until))
            nc.waiting = NULL;
        if (!nc.quitting && nc.cur == NULL && nc.waiting == NULL && t >= nc.retry_at)
            start_sess(&nc);
        tick(&nc);
        xmpp_run_once(nc.ctx, 2);
        if (reap(&nc) && nc.quitting)
            break;
        if (nc.quitting) {
            if (quit_deadline == 0)
                quit_deadline = t + 3.0;
            else if (t > quit_deadline)
                break;
        }
    }
    emit("done", "sent=%ld", nc.total_sent);
    for (int i = 0; i < nc.nall; i++) {
        if (!nc.all[i]->released)
            xmpp_conn_release(nc.all[i]->conn);
        free(nc.all[i]);
    }
    xmpp_ctx_free(nc.ctx);
    xmpp_shutdown();
    return status;
}
