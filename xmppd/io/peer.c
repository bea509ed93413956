/* peer.c: the cluster peer link's sockets and TLS (contract in peer.h).
 * Every decision about a connection (HELLO, identity, which frames, the
 * dial race, timeouts, limits, back-off) is xmppd/core/plink.c's; this file
 * feeds it events and carries out its updates.  Protocol in
 * docs/cluster.md. */
#include "peer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "addr.h"
#include "buf.h"
#include "conn.h"
#include "err.h"
#include "pchan.h"
#include "plink.h"
#include "tls.h"

#define TAG_IN 1
#define TAG_OUT 2
#define TICK_MS 20
#define LINGER_MS 3000
#define BAD_LOG_MS 1000 /* warnings about bad connections: one a second */
/* A link's backlog (the channel's resend when the link comes up, and what
 * is sent behind it) goes to the connection in pieces of at most this, as
 * its queue takes them; at most BACKLOG_MAX bytes wait so. */
#define BACKLOG_CHUNK (256u * 1024)
#define BACKLOG_MAX (40u * 1024 * 1024)

struct peer;

/* One TCP+TLS connection; plink's state machine sm decides for it. */
struct pconn {
    uint64_t conn;
    struct plink_conn sm;
    bool opened;    /* TCP was up (a refused dial never is) */
    bool dead;      /* closed; freed by the tick */
    bool got_bytes; /* something was read (the first read is classified) */
    struct peer *p; /* outgoing: the peer dialled; incoming: set at HELLO */
    struct pframe_dec dec;
    char remote[64];    /* the other end, "host:port" */
    char host[64];      /* its host (incoming: the per-address limit) */
    struct buf backlog; /* bytes waiting for room in the connection's queue */
    size_t backlog_pos; /* backlog.data[backlog_pos..len) not written yet */
    struct pconn *next;
};

struct peer {
    uint64_t id; /* 0: a contact not identified yet */
    char addr[PFRAME_MAX_ADDR + 1];
    bool member, contact;
    struct pchan *ch;
    struct pconn *link; /* the up link */
    struct pconn *dial; /* an outgoing link not up yet */
    struct plink_dial sched;
    uint64_t linger_until; /* a removed member's link closes then */
    struct peer_info info;
    struct peer *next;
};

struct peer_mgr {
    uv_loop_t *loop;
    struct peer_opts o;
    struct plink_opts po;
    char name[32], self_addr[PFRAME_MAX_ADDR + 1];
    struct peer_hooks h;
    struct conn_mgr *cm;
    struct tls_ctx *srv_tls, *cli_tls;
    uv_timer_t timer;
    /* Writes queued by peer_send go out once per loop turn: the idle
     * handle runs before the loop next waits for I/O (started on demand). */
    uv_idle_t flusher;
    int open_handles; /* timer and flusher, while closing */
    uint64_t incarnation;
    struct peer *peers;
    struct pconn *links;
    struct peer_stats stats;
    bool closing;
    struct peer *hello_peer; /* on_hello: the member a refused HELLO named */
    uint64_t handed_from;    /* hk_data: this read's frames went to hooks.frame
                                from that peer (0: none) */
    char last_refusal[400];  /* the same refusal is logged once a minute */
    uint64_t last_refusal_ms;
    struct log_rate bad_rate; /* every warning about a bad connection */
    void (*done)(void *);
    void *done_arg;
};

/* The frame versions this build speaks (peer_build_versions). */
static uint8_t build_vmin = PFRAME_VERSION_MIN, build_vmax = PFRAME_VERSION_MAX;

int peer_build_versions(uint8_t vmin, uint8_t vmax)
{
    if (vmin < PFRAME_VERSION_MIN || vmin > vmax || vmax > PFRAME_VERSION_MAX)
        return XE_INVAL;
    build_vmin = vmin;
    build_vmax = vmax;
    return 0;
}

void peer_versions(uint8_t *vmin, uint8_t *vmax)
{
    *vmin = build_vmin;
    *vmax = build_vmax;
}

/* sm_open starts l's state machine (plink_open) with this build's
 * versions. */
static void sm_open(struct peer_mgr *m, struct pconn *l, bool outgoing, uint64_t dialled,
                    bool ask_join)
{
    plink_open(&l->sm, outgoing, dialled, ask_join, uv_now(m->loop));
    (void)plink_versions(&l->sm, build_vmin, build_vmax);
}

int peer_parse_addr(const char *addr, char *host, size_t hlen, int *port)
{
    return plink_parse_addr(addr, PEER_DEFAULT_PORT, host, hlen, port);
}

bool peer_addr_same(const char *x, const char *y)
{
    return plink_addr_same(x, y);
}

static uint64_t now_ms(struct peer_mgr *m)
{
    return uv_now(m->loop);
}

/* local_components asks the owner for this node's component count, sent in
 * PING and PONG. */
static uint32_t local_components(struct peer_mgr *m)
{
    return m->h.components != NULL ? m->h.components(m->h.ud) : 0;
}

static struct peer *find_peer(const struct peer_mgr *m, uint64_t id)
{
    for (struct peer *p = m->peers; p != NULL; p = p->next)
        if (p->id == id && id != 0)
            return p;
    return NULL;
}

static struct pconn *find_link(const struct peer_mgr *m, uint64_t conn)
{
    for (struct pconn *l = m->links; l != NULL; l = l->next)
        if (l->conn == conn && !l->dead)
            return l;
    return NULL;
}

static bool is_up(const struct pconn *l)
{
    return l->p != NULL && l->p->link == l;
}

static struct peer *new_peer(struct peer_mgr *m, uint64_t id, const char *addr)
{
    struct peer *p = calloc(1, sizeof *p);

    if (p == NULL)
        return NULL;
    if (pchan_new(NULL, m->incarnation, &p->ch) < 0) {
        free(p);
        return NULL;
    }
    p->id = id;
    snprintf(p->addr, sizeof p->addr, "%s", addr != NULL ? addr : "");
    p->next = m->peers;
    m->peers = p;
    return p;
}

static void free_peer(struct peer *p)
{
    pchan_free(p->ch);
    free(p);
}

/* bad_log tells whether a warning about a bad connection may be logged now
 * (one a second) and fills note with the count of those
 * held back before it. */
static bool bad_log(struct peer_mgr *m, char *note, size_t len)
{
    unsigned held = 0;

    note[0] = '\0';
    if (!log_rate_take(&m->bad_rate, now_ms(m), &held))
        return false;
    if (held > 0)
        snprintf(note, len,
                 " (and %u more bad connections in the last second, not logged)", held);
    return true;
}

/* ---- closing ---- */

/* link_drop forgets l (already closed or to be closed by the caller). */
static void link_drop(struct peer_mgr *m, struct pconn *l, int err, const char *why)
{
    struct peer *p = l->p;
    bool refused = false;

    if (l->dead)
        return;
    l->dead = true;
    plink_close(&l->sm);
    if (p == NULL)
        return;
    if (why != NULL && why[0] != '\0')
        snprintf(p->info.last_error, sizeof p->info.last_error, "%s", why);
    if (p->dial == l) {
        p->dial = NULL;
        refused = err == UV_ECONNREFUSED && !l->opened;
        plink_dial_failed(&p->sched, &m->po, now_ms(m), randombytes_random());
        if (refused && p->sched.was_up && m->h.link != NULL && !m->closing)
            m->h.link(m->h.ud, p->id, p->addr, false, err, true);
        else if (p->contact && p->id == 0 && m->h.link != NULL && !m->closing)
            m->h.link(m->h.ud, 0, p->addr, false, err, refused);
    }
    if (p->link == l) {
        p->link = NULL;
        pchan_link_down(p->ch);
        plink_dial_lost(&p->sched, now_ms(m));
        LOG(m->o.log, LOG_INFO, "%s peer link to %016" PRIx64 " (%s) down: %s", m->name,
            p->id, p->addr, why != NULL && why[0] ? why : "closed");
        if (m->h.link != NULL && !m->closing)
            m->h.link(m->h.ud, p->id, p->addr, false, err, false);
    }
}

static void link_close(struct peer_mgr *m, struct pconn *l, const char *why)
{
    if (l->dead)
        return;
    conn_close(m->cm, l->conn);
    link_drop(m, l, 0, why);
}

/* close_for carries out a close that plink decided (u->close): counts it,
 * logs it (warnings about bad connections at most once a second) and
 * closes l.  A connection that timed out before its HELLO is aborted: it
 * has nothing worth flushing, and must not hold its descriptor longer. */
static int send_frame(struct peer_mgr *m, struct pconn *l, const struct pframe *f);

/* refusal_text: why, without plink's "refused by the peer: " (both ends
 * refuse each other's dials for the same reason, and the peer's REFUSE
 * says it in our words: one refusal, not two alternating). */
static const char *refusal_text(const char *why)
{
    static const char pfx[] = "refused by the peer: ";

    return strncmp(why, pfx, sizeof pfx - 1) == 0 ? why + sizeof pfx - 1 : why;
}

static void close_for(struct peer_mgr *m, struct pconn *l, const struct plink_update *u)
{
    const char *dir = l->sm.outgoing ? "to" : "from";
    /* The peer a refusal is about: the link's, or the member a refused
     * HELLO named (on_hello sets hello_peer). */
    struct peer *rp = l->p != NULL                       ? l->p
                      : u->count == PLINK_COUNT_IMPOSTOR ? NULL
                                                         : m->hello_peer;
    bool up = is_up(l);
    char note[100];

    switch (u->count) {
    case PLINK_COUNT_IMPOSTOR:
        m->stats.impostors++;
        /* an impostor is refused */
        __attribute__((fallthrough));
    case PLINK_COUNT_REFUSED:
        m->stats.refused++;
        if (rp != NULL) {
            rp->info.refused++;
            /* A known peer's refusal is logged once per change (it
             * redials every 2 s) and shown in its status until a link
             * comes up. */
            if (strcmp(refusal_text(u->why), rp->info.refusal) == 0) {
                LOG(m->o.log, LOG_DEBUG, "%s peer link %s %s refused again: %s", m->name,
                    dir, l->remote, u->why);
                break;
            }
            snprintf(rp->info.refusal, sizeof rp->info.refusal, "%s",
                     refusal_text(u->why));
            LOG(m->o.log, LOG_WARN,
                "%s peer link %s %s (node %016" PRIx64 ") refused: %s", m->name, dir,
                l->remote, rp->id, u->why);
            break;
        }
        /* Anyone else redials every 2 s: the same reason is logged at warn
         * level once a minute, at debug level in between. */
        if ((strcmp(u->why, m->last_refusal) != 0 ||
             now_ms(m) - m->last_refusal_ms >= 60000) &&
            bad_log(m, note, sizeof note)) {
            snprintf(m->last_refusal, sizeof m->last_refusal, "%s", u->why);
            m->last_refusal_ms = now_ms(m);
            LOG(m->o.log, LOG_WARN, "%s peer link %s %s refused: %s%s", m->name, dir,
                l->remote, u->why, note);
        } else {
            LOG(m->o.log, LOG_DEBUG, "%s peer link %s %s refused: %s", m->name, dir,
                l->remote, u->why);
        }
        break;
    case PLINK_COUNT_FORBIDDEN:
    case PLINK_COUNT_TIMEOUT:
        if (u->count == PLINK_COUNT_FORBIDDEN) {
            m->stats.forbidden++;
            if (l->p != NULL)
                l->p->info.malformed++;
        } else {
            m->stats.timeouts++;
        }
        if (bad_log(m, note, sizeof note)) {
            /* the node id only when the peer claimed one */
            char node[32] = "";
            if (l->sm.peer_id != 0)
                snprintf(node, sizeof node, " (node %016" PRIx64 ")", l->sm.peer_id);
            LOG(m->o.log, LOG_WARN, "%s peer link %s %s%s closed: %s%s", m->name, dir,
                l->remote, node, u->why, note);
        }
        break;
    case PLINK_COUNT_MALFORMED:
        m->stats.malformed++;
        if (l->p != NULL)
            l->p->info.malformed++;
        if (bad_log(m, note, sizeof note))
            LOG(m->o.log, LOG_WARN, "%s peer link %s closed: %s%s", m->name, l->remote,
                u->why, note);
        break;
    case PLINK_COUNT_NONE:
        if (up)
            LOG(m->o.log, LOG_WARN, "%s peer link to %016" PRIx64 " (%s): %s, closing",
                m->name, l->p->id, l->p->addr, u->why);
        else
            LOG(m->o.log, LOG_DEBUG, "%s peer link %s %s closed: %s", m->name, dir,
                l->remote, u->why);
        break;
    }
    if (u->count == PLINK_COUNT_TIMEOUT && !up && !l->sm.outgoing) {
        conn_abort(m->cm, l->conn);
        link_drop(m, l, 0, u->why);
        return;
    }
    if (u->send_refuse) {
        /* The dialler learns why (written before the close, which flushes). */
        struct pframe r = {.type = PFRAME_REFUSE, .version = u->hello_version};
        r.u.refuse.vmin = build_vmin;
        r.u.refuse.vmax = build_vmax;
        r.u.refuse.cluster_id = m->o.cluster_id;
        r.u.refuse.code = u->refuse_code;
        r.u.refuse.reason = u->refuse_why[0] != '\0' ? u->refuse_why : u->why;
        (void)send_frame(m, l, &r);
    }
    link_close(m, l, u->why);
}

static void malformed(struct peer_mgr *m, struct pconn *l, const char *what, int rc)
{
    struct plink_update u;

    memset(&u, 0, sizeof u);
    u.close = true;
    u.count = PLINK_COUNT_MALFORMED;
    snprintf(u.why, sizeof u.why, "malformed %s: %s", what, xe_strerror(rc));
    close_for(m, l, &u);
}

/* foreign closes l, whose other end speaks kind (plink_foreign_protocol)
 * instead of the peer protocol: a join to an XMPP or HTTP port hears that
 * (UV_EPROTONOSUPPORT to the link hook, the line in the peer's last_error),
 * not "refused" or "not trusted". */
static void foreign(struct peer_mgr *m, struct pconn *l, const char *kind)
{
    char why[200], note[80];

    if (l->sm.outgoing)
        snprintf(why, sizeof why,
                 "%s answers in %s, not the cluster peer protocol: that is not its "
                 "peer port (%d unless changed)",
                 l->remote, kind, PEER_DEFAULT_PORT);
    else
        snprintf(why, sizeof why, "%s speaks %s to the peer port, not the peer protocol",
                 l->remote, kind);
    m->stats.malformed++;
    if (bad_log(m, note, sizeof note))
        LOG(m->o.log, LOG_WARN, "%s peer link closed: %s%s", m->name, why, note);
    conn_close(m->cm, l->conn);
    link_drop(m, l, UV_EPROTONOSUPPORT, why);
}

/* ---- writing ---- */

static void free_link(struct pconn *l)
{
    pframe_dec_free(&l->dec);
    buf_free(&l->backlog);
    free(l);
}

static size_t backlog_left(const struct pconn *l)
{
    return l->backlog.len - l->backlog_pos;
}

/* drain_backlog hands l's backlog to its connection as its queue takes it
 * (the tick calls it again). */
static void drain_backlog(struct peer_mgr *m, struct pconn *l)
{
    while (!l->dead && backlog_left(l) > 0) {
        size_t n = conn_room(m->cm, l->conn);
        if (n == 0)
            return;
        if (n > backlog_left(l))
            n = backlog_left(l);
        if (n > BACKLOG_CHUNK)
            n = BACKLOG_CHUNK;
        if (conn_send(m->cm, l->conn, l->backlog.data + l->backlog_pos, n) < 0)
            return;
        if (l->p != NULL)
            l->p->info.bytes_out += n;
        l->backlog_pos += n;
    }
    if (backlog_left(l) == 0) {
        buf_free(&l->backlog);
        memset(&l->backlog, 0, sizeof l->backlog);
        l->backlog_pos = 0;
    }
}

/* write_link sends bytes on l, counting them for its peer.  Behind a
 * backlog they wait in it, in order.  A write the connection refuses (its
 * queue is full) would leave a gap in the stream: the link is closed and
 * counted instead, and the channel resends what the
 * peer has not acknowledged on the next link.  0 or the refusal. */
static int write_link(struct peer_mgr *m, struct pconn *l, const struct buf *b)
{
    int rc;

    if (b->len == 0 || l == NULL || l->dead)
        return 0;
    if (backlog_left(l) > 0) {
        rc = backlog_left(l) + b->len > BACKLOG_MAX
                 ? XE_BUSY
                 : buf_append(&l->backlog, b->data, b->len);
        if (rc == 0)
            return 0;
    } else {
        rc = conn_send(m->cm, l->conn, (const char *)b->data, b->len);
    }
    if (rc == 0) {
        if (l->p != NULL)
            l->p->info.bytes_out += b->len;
        return 0;
    }
    if (rc == XE_CLOSED || rc == XE_NOTFOUND) {
        /* The connection is ending already (the peer's close_notify came
         * with the bytes being answered); its gone hook would follow. */
        link_close(m, l, "closed by the peer");
        return rc;
    }
    m->stats.write_refused++;
    LOG(m->o.log, LOG_WARN,
        "%s peer link %s %s: a write of %zu bytes was refused (%s); closing it, the "
        "channel resends on the next link",
        m->name, l->sm.outgoing ? "to" : "from", l->remote, b->len, xe_strerror(rc));
    link_close(m, l, "a write was refused (write queue full)");
    return rc;
}

static int send_frame(struct peer_mgr *m, struct pconn *l, const struct pframe *f)
{
    struct pframe at = *f;
    struct buf b;
    int rc;

    /* At the link's version once chosen (HELLO and REFUSE name theirs). */
    if (at.version == 0)
        at.version = l->sm.version != 0 ? l->sm.version : build_vmax;
    memset(&b, 0, sizeof b);
    rc = pframe_encode(&at, &b);
    if (rc == 0) {
        rc = write_link(m, l, &b);
        if (rc == 0 && l->p != NULL)
            l->p->info.frames_out++;
    }
    buf_free(&b);
    return rc;
}

static struct pconn *new_link(struct peer_mgr *m, uint64_t conn, bool outgoing,
                              const char *remote)
{
    struct pconn *l = calloc(1, sizeof *l);
    int port;

    if (l == NULL)
        return NULL;
    l->conn = conn;
    pframe_dec_init(&l->dec);
    /* A build that speaks version 2 only reads nothing else, not even a
     * later HELLO: on the wire it is a node of session 3 (git f47de8d),
     * which is what the rolling-upgrade test needs of xmppd_v2. */
    if (build_vmax < 3)
        l->dec.version = 2;
    sm_open(m, l, outgoing, 0, false);
    snprintf(l->remote, sizeof l->remote, "%s", remote != NULL ? remote : "");
    if (plink_parse_addr(l->remote, PEER_DEFAULT_PORT, l->host, sizeof l->host, &port) <
        0)
        snprintf(l->host, sizeof l->host, "%s", l->remote);
    l->next = m->links;
    m->links = l;
    return l;
}

/* wall_now_ms: the wall clock (ms since the epoch), for HELLO's wall_ms. */
static uint64_t wall_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_hello(struct peer_mgr *m, struct pconn *l, struct peer *p,
                       uint64_t cluster_id, uint8_t version)
{
    struct pframe f;

    memset(&f, 0, sizeof f);
    f.type = PFRAME_HELLO;
    f.version = version;
    f.u.hello.vmin = build_vmin;
    f.u.hello.vmax = build_vmax;
    pchan_hello(p->ch, &f.u.hello);
    f.u.hello.proto = PFRAME_PROTO;
    f.u.hello.cluster_id = cluster_id;
    f.u.hello.node_id = m->o.node_id;
    f.u.hello.addr = m->self_addr;
    f.u.hello.wall_ms = wall_now_ms();
    send_frame(m, l, &f);
}

static void dial(struct peer_mgr *m, struct peer *p)
{
    char host[PFRAME_MAX_ADDR + 1], err[150];
    int port;
    uint64_t id;
    struct pconn *l;

    if (peer_parse_addr(p->addr, host, sizeof host, &port) < 0) {
        p->sched.next_ms = UINT64_MAX;
        return;
    }
    if (conn_connect(m->cm, host, port, TAG_OUT, m->cli_tls, host, &id, err, sizeof err) <
        0) {
        snprintf(p->info.last_error, sizeof p->info.last_error, "%s", err);
        plink_dial_failed(&p->sched, &m->po, now_ms(m), randombytes_random());
        return;
    }
    l = new_link(m, id, true, p->addr);
    if (l == NULL) {
        conn_close(m->cm, id);
        return;
    }
    sm_open(m, l, true, p->id, p->contact && !p->member);
    l->p = p;
    p->dial = l;
}

/* ---- HELLO ---- */

/* hello_view tells plink what this node knows about the HELLO h that
 * arrived on l: the members (mem, at most nmem, filled), the peer's
 * certificate (ti), what links the claimed id has. */
static void hello_view(struct peer_mgr *m, struct pconn *l, const struct pframe_hello *h,
                       struct plink_member *mem, size_t nmem, struct tls_peer_info *ti,
                       struct plink_view *v)
{
    const struct peer *claimed = find_peer(m, h->node_id);
    size_t k = 0;

    memset(v, 0, sizeof *v);
    v->self_id = m->o.node_id;
    v->cluster_id = m->o.cluster_id;
    for (const struct peer *q = m->peers; q != NULL && k < nmem; q = q->next) {
        if (q->member && q->id != 0) {
            mem[k].id = q->id;
            mem[k].addr = q->addr;
            k++;
        }
    }
    v->members = mem;
    v->nmembers = k;
    memset(ti, 0, sizeof *ti);
    if (!l->sm.outgoing && conn_tls_peer(m->cm, l->conn, ti) == 0 && ti->has_cert) {
        v->cert = true;
        v->subject = ti->subject;
        v->sans = ti->sans;
    }
    if (claimed != NULL) {
        v->id_linked = claimed->link != NULL && claimed->link != l;
        v->id_dialled = claimed->dial != NULL && claimed->dial != l;
        v->id_taken = l->sm.outgoing && claimed != l->p;
        v->ask_join = !l->sm.outgoing && claimed->contact && !claimed->member;
    }
}

static void on_hello(struct peer_mgr *m, struct pconn *l, const struct pframe_hello *h)
{
    struct plink_member *mem;
    struct tls_peer_info ti;
    struct plink_view v;
    struct plink_update u;
    struct plink_conn before = l->sm;
    struct peer *p = l->p;
    size_t nmem = 0;
    struct buf out;
    enum pchan_resume how;
    char why[400] = "";
    int rc;

    for (const struct peer *q = m->peers; q != NULL; q = q->next)
        nmem++;
    mem = calloc(nmem + 1, sizeof *mem);
    if (mem == NULL) {
        link_close(m, l, "out of memory");
        return;
    }
    hello_view(m, l, h, mem, nmem, &ti, &v);
    plink_hello(&l->sm, &v, h, now_ms(m), &u);
    /* The owner's policy (cluster, membership) comes after plink's own
     * checks, so that an impostor is counted as one; asked only when
     * plink would accept, then plink decides again with its answer. */
    if (!u.close && m->h.check_hello != NULL &&
        (rc = m->h.check_hello(m->h.ud, h, l->sm.outgoing && p->contact && !p->member,
                               why, sizeof why)) < 0) {
        l->sm = before;
        v.policy_rc = rc;
        v.policy_why = why;
        plink_hello(&l->sm, &v, h, now_ms(m), &u);
    }
    free(mem);
    if (u.close) {
        const struct peer *named = find_peer(m, h->node_id);
        m->hello_peer = named != NULL && named->member ? (struct peer *)named : NULL;
        close_for(m, l, &u);
        m->hello_peer = NULL;
        return;
    }
    if (!l->sm.outgoing) {
        p = find_peer(m, h->node_id);
        if (p == NULL) {
            p = new_peer(m, h->node_id, h->addr);
            if (p == NULL) {
                link_close(m, l, "out of memory");
                return;
            }
        }
        if (p->addr[0] == '\0' || !p->member)
            snprintf(p->addr, sizeof p->addr, "%s", h->addr);
        if (u.drop_dial && p->dial != NULL)
            link_close(m, p->dial, "the peer's dial won");
        if (u.drop_link && p->link != NULL)
            link_close(m, p->link, "replaced by a new connection from the peer");
        l->p = p;
    } else if (p->id == 0) {
        p->id = h->node_id;
    }
    /* Our HELLO describes the channel before the peer's is applied (both
     * sides do so: pchan's rule is symmetric). */
    if (u.send_hello) {
        send_hello(m, l, p, u.hello_cluster_id, u.hello_version);
        if (l->dead)
            return;
    }
    memset(&out, 0, sizeof out);
    /* Every later frame of this link is at the version the HELLOs chose,
     * both ways (pframe.h). */
    l->dec.version = l->sm.version;
    rc = pchan_set_version(p->ch, l->sm.version);
    if (rc == 0)
        rc = pchan_link_up(p->ch, h, &out, &how);
    if (rc < 0) {
        buf_free(&out);
        memset(&u, 0, sizeof u);
        u.close = true;
        u.count = PLINK_COUNT_REFUSED;
        snprintf(u.why, sizeof u.why, "channel resume failed: %s", xe_strerror(rc));
        close_for(m, l, &u);
        return;
    }
    p->link = l;
    if (p->dial == l)
        p->dial = NULL;
    plink_dial_up(&p->sched);
    /* How far the peer's clock is from ours (the HELLO's age, a round trip
     * at most, is in it): deadlines it sends in its own wall clock are
     * read through it, so a clock that is off delays nothing. */
    p->info.clock_offset_ms = (int64_t)(h->wall_ms - wall_now_ms());
    p->info.clock_known = h->wall_ms != 0;
    if (p->info.clock_known &&
        (p->info.clock_offset_ms > 2000 || p->info.clock_offset_ms < -2000))
        LOG(m->o.log, LOG_WARN,
            "%s the clock of node %016" PRIx64 " (%s) is %+.1f s from this node's: "
            "check NTP on both (deadlines are corrected, logs will not line up)",
            m->name, p->id, p->addr, (double)p->info.clock_offset_ms / 1000.0);
    p->info.connects++;
    p->info.last_error[0] = '\0';
    p->info.refusal[0] = '\0';
    p->info.version = l->sm.version;
    m->stats.links_up++;
    /* The channel's resend can be far larger than the connection's queue
     * (up to the channel's bound): it goes out as the queue drains. */
    if (out.len > 0) {
        l->backlog = out;
        l->backlog_pos = 0;
        memset(&out, 0, sizeof out);
        drain_backlog(m, l);
    }
    buf_free(&out);
    LOG(m->o.log, LOG_INFO, "%s peer link to %016" PRIx64 " (%s) up, version %u%s%s",
        m->name, p->id, p->addr, l->sm.version,
        how == PCHAN_RESET ? ", channel reset" : "",
        l->sm.state == PLINK_STATE_GUEST     ? ", joining node"
        : l->sm.state == PLINK_STATE_CONTACT ? ", asking to join"
                                             : "");
    if (how == PCHAN_RESET && m->h.reset != NULL)
        m->h.reset(m->h.ud, p->id);
    if (m->h.link != NULL && p->link == l)
        m->h.link(m->h.ud, p->id, p->addr, true, 0, false);
}

/* ---- frames ---- */

static void on_frame(struct peer_mgr *m, struct pconn *l, struct pframe *f)
{
    struct peer *p = l->p;
    struct plink_update u;
    struct buf out;
    bool deliver = false, guest;
    int rc;

    if (!is_up(l) && f->type == PFRAME_HELLO) {
        on_hello(m, l, &f->u.hello);
        return;
    }
    plink_frame(&l->sm, f, &u);
    if (u.close) {
        uint64_t dialled = l->sm.dialled_id;
        close_for(m, l, &u);
        if (u.deliver && f->type == PFRAME_REFUSE && m->h.refused != NULL)
            m->h.refused(m->h.ud, dialled, &f->u.refuse);
        return;
    }
    p->info.frames_in++;
    switch (f->type) {
    case PFRAME_PING: {
        struct pframe r = {.type = PFRAME_PONG};
        p->info.components = f->u.ping.components;
        p->info.components_ms = now_ms(m);
        r.u.ping.nonce = f->u.ping.nonce;
        r.u.ping.components = local_components(m);
        send_frame(m, l, &r);
        return;
    }
    case PFRAME_PONG:
        p->info.components = f->u.ping.components;
        p->info.components_ms = now_ms(m);
        return;
    case PFRAME_RAFT:
        if (u.deliver && m->h.raft != NULL &&
            m->h.raft(m->h.ud, p->id, f->u.raft.data, f->u.raft.len) < 0)
            malformed(m, l, "RAFT frame", XE_PROTO);
        return;
    default:
        break;
    }
    guest = l->sm.state == PLINK_STATE_GUEST; /* (a close below forgets it) */
    memset(&out, 0, sizeof out);
    rc = pchan_recv(p->ch, f, now_ms(m), &out, &deliver);
    /* A refused write closes the link, but the frame was received (the
     * channel counts it as such): it is still handed on below. */
    write_link(m, l, &out);
    buf_free(&out);
    if (rc < 0) {
        if (!l->dead)
            malformed(m, l, pframe_type_name(f->type), rc);
        return;
    }
    if (f->type == PFRAME_CHAN_ACK) {
        if (m->h.room != NULL)
            m->h.room(m->h.ud, p->id);
        return;
    }
    if (deliver && u.deliver && m->h.frame != NULL) {
        m->handed_from = p->id;
        if (m->h.frame(m->h.ud, p->id, guest, f) < 0 && !l->dead)
            malformed(m, l, pframe_type_name(f->type), XE_PROTO);
    }
}

/* ---- conn hooks ---- */

/* admit applies plink's limits to a connection accepted from remote:
 * links that have not joined, in total and per source address; when
 * plink says so, the oldest link still before its HELLO is closed to make
 * room.  0 or XE_LIMIT (counted and logged; conn closes it). */
static int admit(struct peer_mgr *m, const char *remote)
{
    char host[64], why[200], note[100];
    size_t total = 0, same = 0, evictable = 0;
    struct pconn *oldest = NULL;
    bool evict;
    int port;

    if (plink_parse_addr(remote, PEER_DEFAULT_PORT, host, sizeof host, &port) < 0)
        snprintf(host, sizeof host, "%s", remote);
    for (struct pconn *l = m->links; l != NULL; l = l->next) {
        if (l->dead || !plink_unjoined(&l->sm))
            continue;
        total++;
        if (plink_host_same(l->host, host))
            same++;
        /* newest first: the last one met is the oldest */
        if (plink_evictable(&l->sm)) {
            evictable++;
            if (oldest == NULL || l->sm.opened_ms <= oldest->sm.opened_ms)
                oldest = l;
        }
    }
    if (plink_admit(&m->po, total, same, evictable, host, &evict, why, sizeof why) == 0) {
        if (evict && oldest != NULL) {
            struct plink_update u = {.close = true, .count = PLINK_COUNT_TIMEOUT};
            snprintf(u.why, sizeof u.why, "%s", why);
            close_for(m, oldest, &u);
        }
        return 0;
    }
    m->stats.over_limit++;
    if (bad_log(m, note, sizeof note))
        LOG(m->o.log, LOG_WARN, "%s peer link from %s refused at once: %s%s", m->name,
            remote, why, note);
    return XE_LIMIT;
}

static int hk_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct peer_mgr *m = ud;
    struct pconn *l;

    if (m->closing)
        return XE_CLOSED;
    if (tag == TAG_OUT) {
        l = find_link(m, id);
        if (l != NULL)
            l->opened = true;
        return 0;
    }
    m->stats.accepted++;
    if (admit(m, peer) < 0)
        return XE_LIMIT;
    if (new_link(m, id, false, peer) == NULL)
        return XE_NOMEM;
    return 0;
}

static void hk_secured(void *ud, uint64_t id)
{
    struct peer_mgr *m = ud;
    struct pconn *l = find_link(m, id);
    struct plink_update u;

    if (l == NULL)
        return;
    plink_tls_done(&l->sm, m->o.cluster_id, now_ms(m), &u);
    /* The dialler speaks first (see peer.h). */
    if (u.send_hello && l->p != NULL)
        send_hello(m, l, l->p, u.hello_cluster_id, u.hello_version);
    conn_mgr_flush(m->cm);
}

static void hk_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct peer_mgr *m = ud;
    struct pconn *l = find_link(m, id);
    struct pframe f;
    uint64_t from;
    int rc;

    if (l == NULL)
        return;
    m->handed_from = 0;
    plink_rx(&l->sm, now_ms(m));
    if (l->p != NULL) {
        l->p->info.bytes_in += len;
        l->p->info.last_contact_ms = now_ms(m);
    }
    if (!l->got_bytes && len > 0) {
        const char *kind = plink_foreign_protocol(bytes, len);
        l->got_bytes = true;
        if (kind != NULL) {
            foreign(m, l, kind);
            return;
        }
    }
    rc = pframe_dec_feed(&l->dec, bytes, len);
    while (rc == 0 && !l->dead) {
        rc = pframe_dec_next(&l->dec, &f);
        if (rc <= 0)
            break;
        on_frame(m, l, &f);
        pframe_release(&f);
        rc = 0;
        if (l->p != NULL)
            l->p->info.last_contact_ms = now_ms(m);
    }
    if (rc < 0 && !l->dead)
        malformed(m, l, "frame", rc);
    /* What the frames of this read owe (ACKs) goes out as one frame, in
     * this loop turn (docs/cluster.md "Forwarding"). */
    from = m->handed_from;
    m->handed_from = 0;
    if (from != 0 && m->h.read_done != NULL)
        m->h.read_done(m->h.ud, from);
    conn_mgr_flush(m->cm);
}

static void hk_gone(void *ud, uint64_t id, int err)
{
    struct peer_mgr *m = ud;
    struct pconn *l = find_link(m, id);
    char why[160];

    if (l == NULL)
        return;
    if (!is_up(l) && !l->sm.outgoing && err == UV_EPROTO) {
        m->stats.refused++; /* the TLS handshake failed: conn.c logged why */
    }
    snprintf(why, sizeof why, "%s", err == 0 ? "closed by the peer" : uv_strerror(err));
    link_drop(m, l, err, why);
}

/* on_flush writes what peer_send queued in this loop turn, before the loop
 * waits for I/O again. */
static void on_flush(uv_idle_t *h)
{
    struct peer_mgr *m = h->data;

    uv_idle_stop(h);
    conn_mgr_flush(m->cm);
}

static void free_all(struct peer_mgr *m)
{
    while (m->links != NULL) {
        struct pconn *l = m->links;
        m->links = l->next;
        free_link(l);
    }
    while (m->peers != NULL) {
        struct peer *p = m->peers;
        m->peers = p->next;
        free_peer(p);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct peer_mgr *m = h->data;
    void (*done)(void *) = m->done;
    void *arg = m->done_arg;

    if (--m->open_handles > 0)
        return;

    conn_mgr_free(m->cm);
    tls_ctx_free(m->srv_tls);
    tls_ctx_free(m->cli_tls);
    free_all(m);
    free(m);
    if (done != NULL)
        done(arg);
}

static void hk_drained(void *ud)
{
    struct peer_mgr *m = ud;

    m->open_handles = 2;
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
    uv_close((uv_handle_t *)&m->flusher, on_timer_closed);
}

/* ---- tick: timeouts, pings, dials, channel acks, reaping ---- */

static void on_tick(uv_timer_t *t)
{
    struct peer_mgr *m = t->data;
    uint64_t now = now_ms(m);
    struct pconn **lp;
    struct peer **pp;

    /* plink's deadlines for every connection: pre-HELLO, dial, guest,
     * silence; and PINGs. */
    for (struct pconn *l = m->links; l != NULL; l = l->next) {
        struct plink_update u;
        if (l->dead)
            continue;
        plink_tick(&l->sm, &m->po, now, &u);
        if (u.close) {
            close_for(m, l, &u);
        } else if (u.send_ping && is_up(l)) {
            struct pframe f = {.type = PFRAME_PING};
            f.u.ping.nonce = now;
            f.u.ping.components = local_components(m);
            send_frame(m, l, &f);
        }
    }
    for (struct peer *p = m->peers; p != NULL; p = p->next) {
        struct pconn *l = p->link;
        if (l != NULL && !l->dead && p->linger_until != 0 && now >= p->linger_until &&
            !p->member && !p->contact) {
            p->linger_until = 0;
            link_close(m, l, "no longer a member");
            continue;
        }
        if (l != NULL && !l->dead) {
            struct buf out;
            drain_backlog(m, l);
            memset(&out, 0, sizeof out);
            if (pchan_next_deadline(p->ch) <= now)
                pchan_tick(p->ch, now, &out);
            write_link(m, l, &out);
            buf_free(&out);
        } else if (p->dial == NULL && p->addr[0] != '\0' && (p->member || p->contact) &&
                   now >= p->sched.next_ms) {
            dial(m, p);
        }
    }
    /* Reap closed links and peers that are neither members nor contacts. */
    for (lp = &m->links; *lp != NULL;) {
        struct pconn *l = *lp;
        if (l->dead) {
            *lp = l->next;
            free_link(l);
        } else {
            lp = &l->next;
        }
    }
    for (pp = &m->peers; *pp != NULL;) {
        struct peer *p = *pp;
        if (!p->member && !p->contact && p->link == NULL && p->dial == NULL) {
            *pp = p->next;
            free_peer(p);
        } else {
            pp = &p->next;
        }
    }
    conn_mgr_flush(m->cm);
}

/* ---- API ---- */

static int make_tls(struct peer_mgr *m, const struct peer_opts *o, char *err,
                    size_t errlen)
{
    struct tls_ctx_opts t = {.key_path = o->key_path,
                             .cert_path = o->cert_path,
                             .bundle_path = o->trust_path,
                             .verify_peer = true,
                             .tls13_only = true};
    char why[300];
    int rc;

    if (o->key_path == NULL || o->cert_path == NULL || o->trust_path == NULL) {
        snprintf(err, errlen,
                 "the peer link needs the node certificate (xmpp certs) and the "
                 "cluster trust bundle (xmpp cluster trust)");
        return XE_STATE;
    }
    t.role = TLS_ROLE_SERVER;
    rc = tls_ctx_new(&t, &m->srv_tls, why, sizeof why);
    if (rc == 0) {
        t.role = TLS_ROLE_CLIENT;
        rc = tls_ctx_new(&t, &m->cli_tls, why, sizeof why);
    }
    if (rc < 0)
        snprintf(err, errlen, "peer link TLS: %s", why);
    return rc;
}

int peer_mgr_new(uv_loop_t *loop, const struct peer_opts *opts,
                 const struct peer_hooks *hooks, struct peer_mgr **out, char *err,
                 size_t errlen)
{
    struct conn_hooks ch = {.opened = hk_opened,
                            .data = hk_data,
                            .gone = hk_gone,
                            .secured = hk_secured,
                            .drained = hk_drained};
    struct peer_mgr *m;
    int rc;

    *out = NULL;
    if (opts->node_id == 0 || opts->self_addr == NULL ||
        strlen(opts->self_addr) > PFRAME_MAX_ADDR) {
        snprintf(err, errlen, "bad peer link options");
        return XE_INVAL;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return XE_NOMEM;
    }
    m->loop = loop;
    m->o = *opts;
    m->h = *hooks;
    snprintf(m->name, sizeof m->name, "%s", opts->name != NULL ? opts->name : "");
    snprintf(m->self_addr, sizeof m->self_addr, "%s", opts->self_addr);
    m->o.name = m->name;
    m->o.self_addr = m->self_addr;
    plink_opts_default(&m->po);
    if (opts->backoff_min_ms != 0)
        m->po.backoff_min_ms = opts->backoff_min_ms;
    if (opts->backoff_max_ms != 0)
        m->po.backoff_max_ms = opts->backoff_max_ms;
    if (opts->idle_close_ms != 0)
        m->po.idle_ms = opts->idle_close_ms;
    if (opts->prehello_ms != 0)
        m->po.prehello_ms = opts->prehello_ms;
    if (opts->max_unjoined != 0)
        m->po.max_unjoined = opts->max_unjoined;
    if (opts->max_unjoined_per_addr != 0)
        m->po.max_unjoined_per_addr = opts->max_unjoined_per_addr;
    m->bad_rate.window_ms = BAD_LOG_MS;
    do
        randombytes_buf(&m->incarnation, sizeof m->incarnation);
    while (m->incarnation == 0);
    rc = make_tls(m, opts, err, errlen);
    if (rc < 0)
        goto fail;
    ch.ud = m;
    rc = conn_mgr_new(loop, &ch, opts->log, m->name, opts->max_queued, &m->cm);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    conn_mgr_limit_bad_logs(m->cm, BAD_LOG_MS);
    if (opts->listen_host != NULL) {
        rc = conn_listen_tls(m->cm, opts->listen_host, opts->listen_port, TAG_IN,
                             m->srv_tls, TLS_MODE_REQUIRED, err, errlen);
        if (rc < 0)
            goto fail;
    }
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_idle_init(loop, &m->flusher);
    m->flusher.data = m;
    uv_timer_start(&m->timer, on_tick, TICK_MS, TICK_MS);
    *out = m;
    return 0;
fail:
    if (m->cm != NULL) {
        /* Nothing was opened: a shutdown drains at once; the timer was never
         * initialised, so free here after the loop ran the listener close. */
        m->h.ud = NULL;
        conn_mgr_shutdown(m->cm);
        m->closing = true;
        uv_timer_init(loop, &m->timer);
        m->timer.data = m;
        uv_idle_init(loop, &m->flusher);
        m->flusher.data = m;
        return rc;
    }
    tls_ctx_free(m->srv_tls);
    tls_ctx_free(m->cli_tls);
    free(m);
    return rc;
}

void peer_mgr_close(struct peer_mgr *m, void (*done)(void *arg), void *arg)
{
    if (m == NULL)
        return;
    m->closing = true;
    m->done = done;
    m->done_arg = arg;
    uv_timer_stop(&m->timer);
    conn_mgr_shutdown(m->cm);
}

void peer_set_cluster_id(struct peer_mgr *m, uint64_t cluster_id)
{
    m->o.cluster_id = cluster_id;
}

void peer_set_node_id(struct peer_mgr *m, uint64_t node_id)
{
    if (node_id == 0 || node_id == m->o.node_id)
        return;
    m->o.node_id = node_id;
    for (struct peer *p = m->peers; p != NULL; p = p->next) {
        if (p->link != NULL)
            link_close(m, p->link, "this node took a new id");
        if (p->dial != NULL)
            link_close(m, p->dial, "this node took a new id");
    }
    conn_mgr_flush(m->cm);
}

int peer_set_members(struct peer_mgr *m, const uint64_t *ids, const char *const *addrs,
                     size_t n)
{
    for (struct peer *p = m->peers; p != NULL; p = p->next)
        p->member = false;
    for (size_t i = 0; i < n; i++) {
        struct peer *p;
        if (ids[i] == m->o.node_id || ids[i] == 0)
            continue;
        p = find_peer(m, ids[i]);
        if (p == NULL && (p = new_peer(m, ids[i], addrs[i])) == NULL)
            return XE_NOMEM;
        p->member = true;
        p->linger_until = 0;
        /* A successor's link (plink.h) carried the log only: now that the
         * configuration names it, a member link takes over. */
        if (p->link != NULL && p->link->sm.state == PLINK_STATE_SUCCESSOR)
            link_close(m, p->link, "now a member: a member link follows");
        if (addrs[i] != NULL && addrs[i][0] != '\0' && strcmp(p->addr, addrs[i]) != 0) {
            snprintf(p->addr, sizeof p->addr, "%s", addrs[i]);
        }
    }
    for (struct peer *p = m->peers; p != NULL; p = p->next) {
        if (p->member || p->contact)
            continue;
        /* A removed member: its link lingers a little, so that the answer
         * to its own removal (sent once the change commits) still reaches
         * it; a guest keeps its link until its join request is answered. */
        if (p->link != NULL && p->link->sm.state != PLINK_STATE_GUEST &&
            p->linger_until == 0)
            p->linger_until = now_ms(m) + LINGER_MS;
        if (p->dial != NULL)
            link_close(m, p->dial, "no longer a member");
    }
    conn_mgr_flush(m->cm);
    return 0;
}

int peer_contact(struct peer_mgr *m, const char *addr)
{
    char host[PFRAME_MAX_ADDR + 1], norm[PFRAME_MAX_ADDR + 1];
    int port;
    struct peer *p;

    if (peer_parse_addr(addr, host, sizeof host, &port) < 0)
        return XE_INVAL;
    addr_join(host, (unsigned)port, norm, sizeof norm);
    for (p = m->peers; p != NULL; p = p->next)
        if (strcmp(p->addr, norm) == 0)
            break;
    if (p == NULL && (p = new_peer(m, 0, norm)) == NULL)
        return XE_NOMEM;
    p->contact = true;
    p->sched.next_ms = 0;
    p->sched.attempts = 0;
    return 0;
}

void peer_last_error(const struct peer_mgr *m, const char *addr, char *why, size_t len)
{
    why[0] = '\0';
    for (const struct peer *p = m->peers; p != NULL; p = p->next)
        if (plink_addr_same(p->addr, addr)) {
            snprintf(why, len, "%s", p->info.last_error);
            return;
        }
}

void peer_drop_contacts(struct peer_mgr *m)
{
    for (struct peer *p = m->peers; p != NULL; p = p->next) {
        if (!p->contact)
            continue;
        p->contact = false;
        if (!p->member) {
            if (p->link != NULL)
                link_close(m, p->link, "contact no longer needed");
            if (p->dial != NULL)
                link_close(m, p->dial, "contact no longer needed");
        }
    }
    conn_mgr_flush(m->cm);
}

int peer_send(struct peer_mgr *m, uint64_t id, struct pframe *f)
{
    struct peer *p = find_peer(m, id);
    struct buf out;
    int rc;

    if (p == NULL)
        return XE_NOTFOUND;
    memset(&out, 0, sizeof out);
    rc = pchan_send(p->ch, f, &out);
    /* A refused write closes the link; the frame stays in the channel and
     * goes out again on the next link. */
    if (rc == 0 && p->link != NULL && write_link(m, p->link, &out) == 0)
        p->info.frames_out++;
    buf_free(&out);
    /* The frames of one loop turn to a peer leave in one write. */
    if (!m->closing && !uv_is_active((uv_handle_t *)&m->flusher))
        uv_idle_start(&m->flusher, on_flush);
    return rc;
}

int peer_send_raft(struct peer_mgr *m, uint64_t id, const char *addr, const void *data,
                   size_t len)
{
    struct peer *p = find_peer(m, id);
    struct pframe f;
    int rc;

    if (p == NULL) {
        if (addr == NULL || addr[0] == '\0')
            return XE_NOTFOUND;
        p = new_peer(m, id, addr);
        if (p == NULL)
            return XE_NOMEM;
        p->member = true; /* Raft talks to it: keep a link until set_members */
    }
    if (p->link == NULL)
        return XE_CLOSED;
    memset(&f, 0, sizeof f);
    f.type = PFRAME_RAFT;
    f.u.raft.data = data;
    f.u.raft.len = len;
    rc = send_frame(m, p->link, &f);
    conn_mgr_flush(m->cm);
    return rc == XE_BUSY ? XE_CLOSED : rc; /* the link closed: Raft retries */
}

void peer_close_link(struct peer_mgr *m, uint64_t id)
{
    struct peer *p = find_peer(m, id);

    if (p != NULL && p->link != NULL) {
        link_close(m, p->link, "closed by this node");
        conn_mgr_flush(m->cm);
    }
}

bool peer_has_room(struct peer_mgr *m, uint64_t id, size_t len)
{
    struct peer *p = find_peer(m, id);

    return p != NULL && pchan_has_room(p->ch, len);
}

int peer_get(const struct peer_mgr *m, uint64_t id, struct peer_info *out)
{
    const struct peer *p = find_peer(m, id);

    if (p == NULL)
        return XE_NOTFOUND;
    *out = p->info;
    out->id = p->id;
    snprintf(out->addr, sizeof out->addr, "%s", p->addr);
    out->member = p->member;
    out->contact = p->contact;
    out->up = p->link != NULL;
    out->state = p->link != NULL           ? "up"
                 : p->info.refusal[0] != 0 ? "refused"
                 : p->dial != NULL         ? "connecting"
                                           : "down";
    out->last_version = p->info.version;
    if (p->link == NULL)
        out->version = 0;
    if (p->ch != NULL) {
        struct pchan_stats cs;
        pchan_get_stats(p->ch, &cs);
        out->duplicates = cs.duplicates;
    }
    return 0;
}

void peer_get_stats(const struct peer_mgr *m, struct peer_stats *out)
{
    *out = m->stats;
}
