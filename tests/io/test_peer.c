/* test_peer.c: the cluster peer link (xmppd/io/peer.c) with real TLS 1.3
 * on loopback sockets, on certificates made at test time by certs/mkca and
 * certs/mknode: two or three endpoints on one loop exchange HELLO and
 * frames; a node of another cluster and a certificate from another CA are
 * refused, and so is a trusted node claiming another's address or id; a
 * dropped link is redialled and the reliable channel loses and
 * duplicates nothing; a malformed frame closes the link and is counted. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sodium.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "err.h"
#include "iofix.h"
#include "logsink.h"
#include "peer.h"
#include "pframe.h"
#include "testlib.h"
#include "tls.h"

static char dir[256];
static size_t next_max_queued;   /* ep_open's write queue bound; 0: default */
static uint64_t next_backoff_ms; /* ep_open's redial back-off; 0: 20..200 ms */
static uv_loop_t loop;
static struct log_sink logs;
static int base_port;

static const char *path(const char *name)
{
    return iofix_path(dir, name);
}

static bool make_pki(void)
{
    return iofix_pki(dir, sizeof dir, "peer",
                     "$S/mkca $D 'Test CA 1';"
                     "$S/mknode $D node1 --domain example.com --ip 127.0.0.1;"
                     "$S/mknode $D node2 --domain example.com --ip 127.0.0.2;"
                     "$S/mknode $D node3 --domain example.com --ip 127.0.0.3;"
                     "$S/mkca $D/ca2 'Test CA 2';"
                     "$S/mknode $D/ca2 rogue --domain example.com --ip 127.0.0.3;"
                     "cat $D/ca.crt $D/ca2/ca.crt > $D/both.pem");
}

/* One endpoint: a peer manager and what its hooks saw. */
struct ep {
    struct peer_mgr *pm;
    uint64_t id, cluster;
    char addr[64];
    int ups, downs, raft, refused_hello, resets;
    uint32_t components; /* sent in PING and PONG */
    uint64_t got[512];
    size_t ngot;
    bool closed;
};

static int h_check(void *ud, const struct pframe_hello *h, bool contact, char *why,
                   size_t len)
{
    struct ep *e = ud;

    (void)contact;
    if (h->cluster_id != e->cluster && h->cluster_id != 0) { /* 0: joining */
        e->refused_hello++;
        snprintf(why, len, "another cluster");
        return XE_PERM;
    }
    return 0;
}

static int h_raft(void *ud, uint64_t from, const void *data, size_t len)
{
    struct ep *e = ud;

    (void)from;
    if (len == 5 && memcmp(data, "raft!", 5) == 0)
        e->raft++;
    return 0;
}

static int h_frame(void *ud, uint64_t from, bool guest, const struct pframe *f)
{
    struct ep *e = ud;

    (void)from;
    (void)guest;
    if (f->type == PFRAME_SUBMIT && e->ngot < 512)
        e->got[e->ngot++] = f->u.submit.request_id;
    return 0;
}

static void h_link(void *ud, uint64_t id, const char *addr, bool up, int err,
                   bool refused)
{
    struct ep *e = ud;

    (void)id;
    (void)addr;
    (void)err;
    (void)refused;
    if (up)
        e->ups++;
    else
        e->downs++;
}

static void h_reset(void *ud, uint64_t id)
{
    struct ep *e = ud;

    (void)id;
    e->resets++;
}

static uint32_t h_components(void *ud)
{
    return ((struct ep *)ud)->components;
}

static int ep_open(struct ep *e, int idx, uint64_t cluster, const char *node)
{
    struct peer_hooks h = {.ud = e,
                           .check_hello = h_check,
                           .raft = h_raft,
                           .frame = h_frame,
                           .link = h_link,
                           .reset = h_reset,
                           .components = h_components};
    struct peer_opts o;
    char host[32], key[64], crt[64], err[256];
    const char *ca = strcmp(node, "rogue") == 0 ? "ca2/" : "";
    int rc;

    memset(e, 0, sizeof *e);
    e->id = (uint64_t)idx;
    e->cluster = cluster;
    snprintf(host, sizeof host, "127.0.0.%d", idx);
    snprintf(e->addr, sizeof e->addr, "%s:%d", host, base_port);
    snprintf(key, sizeof key, "%s%s.key", ca, node);
    snprintf(crt, sizeof crt, "%s%s.crt", ca, node);
    memset(&o, 0, sizeof o);
    o.name = node;
    o.log = &logs;
    o.node_id = e->id;
    o.cluster_id = cluster;
    o.self_addr = e->addr;
    o.listen_host = host;
    o.listen_port = base_port;
    o.key_path = path(key);
    o.cert_path = path(crt);
    /* The rogue trusts both CAs: only the others' check refuses it. */
    o.trust_path = path(ca[0] != '\0' ? "both.pem" : "ca.crt");
    o.backoff_min_ms = next_backoff_ms != 0 ? next_backoff_ms : 20;
    o.backoff_max_ms = next_backoff_ms != 0 ? next_backoff_ms : 200;
    o.max_queued = next_max_queued;
    rc = peer_mgr_new(&loop, &o, &h, &e->pm, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "peer_mgr_new %s: %s\n", node, err);
    return rc;
}

static void on_closed(void *arg)
{
    ((struct ep *)arg)->closed = true;
}

static void ep_close(struct ep *e)
{
    if (e->pm == NULL)
        return;
    peer_mgr_close(e->pm, on_closed, e);
    e->pm = NULL;
    for (int i = 0; i < 500 && !e->closed; i++)
        uv_run(&loop, UV_RUN_ONCE);
}

static void members(struct ep *e, const struct ep *a, const struct ep *b)
{
    uint64_t ids[2] = {a->id, b->id};
    const char *addrs[2] = {a->addr, b->addr};

    CHECK_INT(peer_set_members(e->pm, ids, addrs, 2), 0);
}

/* run_until runs the loop until *flag is non-zero or ms pass. */
static bool run_until(const int *flag, uint64_t ms)
{
    uint64_t end = uv_now(&loop) + ms;

    while (*flag == 0 && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
    return *flag != 0;
}

static void run_for(uint64_t ms)
{
    int never = 0;

    run_until(&never, ms);
}

static int send_n(struct ep *e, uint64_t to, uint64_t first, uint64_t n)
{
    for (uint64_t i = first; i < first + n; i++) {
        unsigned char d[4] = {1, 2, 3, 4};
        struct pframe f;
        memset(&f, 0, sizeof f);
        f.type = PFRAME_SUBMIT;
        f.u.submit.request_id = i;
        f.u.submit.data = d;
        f.u.submit.len = sizeof d;
        if (peer_send(e->pm, to, &f) < 0)
            return -1;
    }
    return 0;
}

static bool in_order(const struct ep *e, uint64_t n)
{
    if (e->ngot != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (e->got[i] != i + 1)
            return false;
    return true;
}

/* bindable tells whether host:port may be listened on right now. */
static bool bindable(const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    bool ok;

    inet_pton(AF_INET, host, &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as libuv */
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* pick_base_port returns the port every endpoint listens on (at its own
 * 127.0.0.x): below the kernel's ephemeral range (32768 and up), where an
 * outgoing connection of another test, or a socket of one in TIME_WAIT,
 * may hold a port and make the listen fail; and free on all three
 * addresses now.  Ports picked by bind(0) elsewhere (xmppdtest.py,
 * iofix_free_port) are ephemeral, so they do not meet these. */
static int pick_base_port(void)
{
    int port = 10000 + (int)(getpid() % 20000);

    for (int i = 0; i < 1000; i++, port = 10000 + (port - 10000 + 7) % 20000)
        if (bindable("127.0.0.1", port) && bindable("127.0.0.2", port) &&
            bindable("127.0.0.3", port))
            return port;
    return port;
}

static void setup(void)
{
    static bool done;

    if (done)
        return;
    done = true;
    if (sodium_init() < 0)
        abort();
    uv_loop_init(&loop);
    logsink_stderr(&logs, LOG_WARN, LOGSINK_PLAIN);
    base_port = pick_base_port();
}

/* ep_pair opens a as node1 (127.0.0.1, cluster 7) and b as node at
 * 127.0.0.idx in cluster, and gives each both as members. */
static void ep_pair(struct ep *a, struct ep *b, int idx, uint64_t cluster,
                    const char *node)
{
    setup();
    REQUIRE(make_pki());
    REQUIRE(ep_open(a, 1, 7, "node1") == 0);
    REQUIRE(ep_open(b, idx, cluster, node) == 0);
    members(a, a, b);
    members(b, a, b);
}

static void test_hello_and_frames(void)
{
    struct ep a, b;
    struct peer_info pi;

    ep_pair(&a, &b, 2, 7, "node2");
    CHECK(run_until(&a.ups, 30000));
    CHECK(run_until(&b.ups, 30000));
    /* Frames sent now go on the link; RAFT unsequenced, SUBMIT through the
     * channel. */
    CHECK_INT(send_n(&a, 2, 1, 100), 0);
    CHECK_INT(peer_send_raft(b.pm, 1, "", "raft!", 5), 0);
    /* Until delivered (a loaded or sanitized build is slow; no timing is
     * checked here). */
    for (int i = 0; i < 400 && !(in_order(&b, 100) && a.raft == 1); i++)
        run_for(50);
    CHECK(in_order(&b, 100));
    CHECK_INT(a.raft, 1);
    CHECK_INT(peer_get(a.pm, 2, &pi), 0);
    CHECK(pi.up);
    CHECK_STR(pi.state, "up");
    CHECK(pi.frames_out >= 100);
    CHECK(pi.last_contact_ms != 0);
    /* Both dialled: one link each side, no more than a couple of ups. */
    CHECK(a.ups <= 2 && b.ups <= 2);
    ep_close(&a);
    ep_close(&b);
}

/* sees runs the loop until e's peer_info for id shows n components
 * received, or ms pass. */
static bool sees(struct ep *e, uint64_t id, uint32_t n, uint64_t ms)
{
    uint64_t end = uv_now(&loop) + ms;
    struct peer_info pi;

    while (uv_now(&loop) < end) {
        if (peer_get(e->pm, id, &pi) == 0 && pi.components_ms != 0 && pi.components == n)
            return true;
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
    return false;
}

/* Each end's component count (hooks.components) reaches the other in the
 * PINGs and PONGs of the link, follows changes, and is kept after the link
 * goes down (docs/cluster.md "Status fields"). */
static void test_components_in_pings(void)
{
    struct ep a, b;
    struct peer_info pi;

    ep_pair(&a, &b, 2, 7, "node2");
    a.components = 3;
    b.components = 5;
    CHECK(run_until(&a.ups, 30000));
    CHECK(run_until(&b.ups, 30000));
    CHECK(sees(&b, 1, 3, 30000));
    CHECK(sees(&a, 2, 5, 30000));
    a.components = 7;
    CHECK(sees(&b, 1, 7, 30000));
    CHECK_INT(peer_get(b.pm, 1, &pi), 0);
    CHECK(pi.components_ms <= uv_now(&loop));
    CHECK(uv_now(&loop) - pi.components_ms < 30000); /* recent, not garbage */
    ep_close(&a);
    CHECK(run_until(&b.downs, 30000));
    CHECK_INT(peer_get(b.pm, 1, &pi), 0);
    CHECK(!pi.up);
    CHECK_INT(pi.components, 7);
    CHECK(pi.components_ms != 0);
    ep_close(&b);
}

static void test_wrong_cluster_refused(void)
{
    struct ep a, c;
    struct peer_stats ps;

    ep_pair(&a, &c, 3, 8, "node3");
    /* Until both ends refused a HELLO (TLS handshakes first: seconds on a
     * loaded or sanitized build), then a little more for a wrong "up". */
    for (int i = 0; i < 600 && a.refused_hello + c.refused_hello == 0; i++)
        run_for(50);
    run_for(300);
    CHECK_INT(a.ups, 0);
    CHECK_INT(c.ups, 0);
    CHECK(a.refused_hello + c.refused_hello > 0);
    peer_get_stats(a.pm, &ps);
    CHECK(ps.refused > 0);
    ep_close(&a);
    ep_close(&c);
}

static void test_untrusted_certificate_refused(void)
{
    struct ep a, r;
    struct peer_stats ps;

    setup();
    REQUIRE(make_pki());
    REQUIRE(ep_open(&a, 1, 7, "node1") == 0);
    if (ep_open(&r, 3, 7, "rogue") < 0) {
        CHECK(false);
        ep_close(&a);
        return;
    }
    members(&a, &a, &r);
    members(&r, &a, &r);
    CHECK_INT(send_n(&r, 1, 1, 3), 0);
    /* Until a refused the rogue's handshake (at most 30 s), then a little
     * more for a wrong "up" or frame. */
    for (int i = 0; i < 600; i++) {
        peer_get_stats(a.pm, &ps);
        if (ps.refused > 0)
            break;
        run_for(50);
    }
    run_for(300);
    CHECK_INT(a.ups, 0);
    CHECK_INT(a.ngot, 0);
    peer_get_stats(a.pm, &ps);
    CHECK(ps.refused > 0);
    ep_close(&a);
    ep_close(&r);
}

static void test_reconnect_no_loss(void)
{
    struct ep a, b;

    ep_pair(&a, &b, 2, 7, "node2");
    REQUIRE(run_until(&a.ups, 30000));
    CHECK_INT(send_n(&a, 2, 1, 40), 0);
    /* Drop the link with frames in flight, send more while it is down. */
    peer_close_link(a.pm, 2);
    CHECK_INT(send_n(&a, 2, 41, 60), 0);
    for (int i = 0; i < 600 && !(a.ups >= 2 && in_order(&b, 100)); i++)
        run_for(50);
    CHECK(a.downs >= 1);
    CHECK(a.ups >= 2);
    CHECK(in_order(&b, 100));
    CHECK_INT(a.resets + b.resets, 0);
    ep_close(&a);
    ep_close(&b);
}

/* A write the connection refuses (its queue is full)
 * must close the link and be counted, never leave a gap in the stream (the
 * receiver then saw a malformed frame): the channel resends on the next
 * link, and the receiver gets every frame once, in order. */
static void test_refused_write_closes(void)
{
    static unsigned char big[4096];
    struct ep a, b;
    struct peer_stats sa, sb;
    int got100 = 0;

    next_max_queued = 32 * 1024;
    ep_pair(&a, &b, 2, 7, "node2");
    next_max_queued = 0;
    REQUIRE(run_until(&a.ups, 30000));
    REQUIRE(run_until(&b.ups, 30000));
    /* 400 KiB in one loop turn: the 32 KiB queue refuses some. */
    for (uint64_t i = 1; i <= 100; i++) {
        struct pframe f;
        memset(&f, 0, sizeof f);
        f.type = PFRAME_SUBMIT;
        f.u.submit.request_id = i;
        f.u.submit.data = big;
        f.u.submit.len = sizeof big;
        CHECK_INT(peer_send(a.pm, 2, &f), 0);
    }
    for (int i = 0; i < 3000 && !got100; i++) {
        run_for(10);
        got100 = b.ngot >= 100;
    }
    CHECK(in_order(&b, 100));
    peer_get_stats(a.pm, &sa);
    peer_get_stats(b.pm, &sb);
    CHECK(sa.write_refused >= 1);
    CHECK_INT(sb.malformed, 0);
    CHECK_INT(sa.malformed, 0);
    ep_close(&a);
    ep_close(&b);
}

/* A raw client with a trusted certificate (raw_hello). */
struct raw {
    uint64_t id;
    bool gone;
    size_t got; /* bytes from the node: its HELLO, once it keeps the link */
};

static void raw_gone(void *ud, uint64_t id, int err)
{
    (void)id;
    (void)err;
    ((struct raw *)ud)->gone = true;
}

static void raw_data(void *ud, uint64_t id, const char *b, size_t l)
{
    (void)id;
    (void)b;
    ((struct raw *)ud)->got += l;
}

static int raw_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    (void)ud;
    (void)id;
    (void)tag;
    (void)peer;
    return 0;
}

static void raw_drained(void *ud)
{
    (void)ud;
}

/* raw_hello dials a (127.0.0.1) as a raw client with node's certificate
 * (trusted), sends a HELLO claiming id at addr in cluster, then the len
 * bytes at extra (none when len is 0), and runs the loop until the node
 * closes the connection or, when kept, until the node answers with its
 * HELLO (the acceptor answers only once it keeps the link, plink.h) and
 * 300 ms more; at most RAW_WAIT_MS (a deadline, not a speed: a TLS
 * handshake on a loaded or sanitized build can take seconds).  Returns
 * whether the connection was closed. */
#define RAW_WAIT_MS 30000
static bool raw_hello(const char *node, uint64_t id, uint64_t cluster, const char *addr,
                      const char *extra, size_t len, bool kept)
{
    char key[64], crt[64], err[256];
    struct raw raw = {0};
    struct conn_hooks h = {.ud = &raw,
                           .opened = raw_opened,
                           .data = raw_data,
                           .gone = raw_gone,
                           .drained = raw_drained};
    struct conn_mgr *cm = NULL;
    struct tls_ctx *cli = NULL;
    struct tls_ctx_opts o = {.role = TLS_ROLE_CLIENT,
                             .bundle_path = path("ca.crt"),
                             .verify_peer = true,
                             .tls13_only = true};
    struct pframe f;
    struct buf b = {0};
    bool gone = false;

    snprintf(key, sizeof key, "%s.key", node);
    snprintf(crt, sizeof crt, "%s.crt", node);
    o.key_path = path(key);
    o.cert_path = path(crt);
    if (tls_ctx_new(&o, &cli, err, sizeof err) != 0 ||
        conn_mgr_new(&loop, &h, &logs, "raw", 0, &cm) != 0 ||
        conn_connect(cm, "127.0.0.1", base_port, 1, cli, "127.0.0.1", &raw.id, err,
                     sizeof err) != 0) {
        CHECK(false);
        goto out;
    }
    memset(&f, 0, sizeof f);
    f.type = PFRAME_HELLO;
    f.u.hello.proto = PFRAME_PROTO;
    f.u.hello.cluster_id = cluster;
    f.u.hello.node_id = id;
    f.u.hello.incarnation = 99;
    f.u.hello.addr = addr;
    CHECK_INT(pframe_encode(&f, &b), 0);
    conn_send(cm, raw.id, (const char *)b.data, b.len);
    if (len > 0)
        conn_send(cm, raw.id, extra, len);
    conn_mgr_flush(cm);
    buf_free(&b);
    {
        uint64_t end = uv_now(&loop) + RAW_WAIT_MS;

        while (!raw.gone && !(kept && raw.got > 0) && uv_now(&loop) < end) {
            uv_run(&loop, UV_RUN_ONCE);
            uv_update_time(&loop);
        }
    }
    if (kept && raw.got > 0)
        run_for(300);
    gone = raw.gone;
out:
    if (cm != NULL) {
        conn_mgr_shutdown(cm);
        run_for(100);
        conn_mgr_free(cm);
    }
    tls_ctx_free(cli);
    return gone;
}

static void test_malformed_frame_closes(void)
{
    struct ep a;
    struct peer_stats ps;
    static const char junk[] = {0, 0, 0, 3, 1, 99, 0}; /* type 99 */

    setup();
    REQUIRE(make_pki());
    REQUIRE(ep_open(&a, 1, 7, "node1") == 0);
    /* A valid HELLO with a trusted certificate, then garbage. */
    CHECK(raw_hello("node2", 2, 7, "127.0.0.2:1", junk, sizeof junk, false));
    peer_get_stats(a.pm, &ps);
    CHECK_INT(ps.malformed, 1);
    ep_close(&a);
}

/* A trusted node may not speak for another: the HELLO's address must be in
 * its certificate, and a member's id must come from the member's address. */
static void test_impostor_refused(void)
{
    struct ep a;
    struct peer_stats ps;
    char b_addr[64], c_addr[64];
    uint64_t ids[3] = {1, 2, 3};
    const char *addrs[3];

    setup();
    REQUIRE(make_pki());
    /* a dials members 2 and 3, where nobody listens.  While its dial to 2
     * is under way, a HELLO from 2 loses to it ("our own dial wins",
     * plink.c: the lower id's dial wins), and the true HELLO below was
     * closed when it met one of the redials 100-200 ms apart.  With this
     * back-off a dials each once, refused at once, and not again while
     * the case runs. */
    next_backoff_ms = 3600 * 1000;
    REQUIRE(ep_open(&a, 1, 7, "node1") == 0);
    next_backoff_ms = 0;
    snprintf(b_addr, sizeof b_addr, "127.0.0.2:%d", base_port);
    snprintf(c_addr, sizeof c_addr, "127.0.0.3:%d", base_port);
    addrs[0] = a.addr;
    addrs[1] = b_addr;
    addrs[2] = c_addr;
    CHECK_INT(peer_set_members(a.pm, ids, addrs, 3), 0);
    /* node2's certificate (IP 127.0.0.2) claiming member 3 at 127.0.0.3. */
    CHECK(raw_hello("node2", 3, 7, c_addr, NULL, 0, false));
    peer_get_stats(a.pm, &ps);
    CHECK_INT(ps.impostors, 1);
    CHECK_INT(a.ups, 0);
    /* Its own address, but member 3's id. */
    CHECK(raw_hello("node2", 3, 7, b_addr, NULL, 0, false));
    peer_get_stats(a.pm, &ps);
    CHECK_INT(ps.impostors, 2);
    /* Another id at member 2's address, from another cluster. */
    CHECK(raw_hello("node2", 9, 8, b_addr, NULL, 0, false));
    peer_get_stats(a.pm, &ps);
    CHECK_INT(ps.impostors, 3);
    CHECK_INT(a.ups, 0);
    /* The truth is accepted; so is a joining node from a member's address
     * (a join with --replace). */
    CHECK(!raw_hello("node2", 2, 7, b_addr, NULL, 0, true));
    CHECK_INT(a.ups, 1);
    CHECK(!raw_hello("node2", 9, 0, b_addr, NULL, 0, true));
    /* ... and, in our cluster, the member that replaced member 2 while our
     * configuration fell behind (plink.h SUCCESSOR: the log only). */
    CHECK(!raw_hello("node2", 9, 7, b_addr, NULL, 0, true));
    peer_get_stats(a.pm, &ps);
    CHECK_INT(ps.impostors, 3);
    CHECK(ps.refused >= 3);
    CHECK_INT(ps.accepted, 6); /* one connection per raw_hello */
    ep_close(&a);
}

static void test_parse_addr(void)
{
    char host[64];
    int port;

    CHECK_INT(peer_parse_addr("10.0.0.1", host, sizeof host, &port), 0);
    CHECK_STR(host, "10.0.0.1");
    CHECK_INT(port, PEER_DEFAULT_PORT);
    CHECK_INT(peer_parse_addr("10.0.0.1:7000", host, sizeof host, &port), 0);
    CHECK_INT(port, 7000);
    CHECK_INT(peer_parse_addr("[::1]:5", host, sizeof host, &port), 0);
    CHECK_STR(host, "::1");
    CHECK_INT(peer_parse_addr("::1", host, sizeof host, &port), 0);
    CHECK_STR(host, "::1");
    CHECK(peer_parse_addr("10.0.0.1:0", host, sizeof host, &port) < 0);
    CHECK(peer_parse_addr("10.0.0.1:x", host, sizeof host, &port) < 0);
    CHECK(peer_parse_addr("", host, sizeof host, &port) < 0);
}

static void test_cleanup(void)
{
    CHECK(iofix_rmdir(dir));
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
}

TL_MAIN(T(test_parse_addr), T(test_hello_and_frames), T(test_components_in_pings),
        T(test_wrong_cluster_refused), T(test_untrusted_certificate_refused),
        T(test_reconnect_no_loss), T(test_refused_write_closes),
        T(test_malformed_frame_closes), T(test_impostor_refused), T(test_cleanup))
