/* peer.c: the cluster peer link (contract in peer.h; protocol in
 * docs/cluster.md). */
#include "peer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <sodium.h>

#include "buf.h"
#include "conn.h"
#include "err.h"
#include "pchan.h"
#include "tls.h"

#define TAG_IN 1
#define TAG_OUT 2
#define TICK_MS 20
#define PING_EVERY_MS 1000
#define LINGER_MS 3000
#define DIAL_TIMEOUT_MS 3000

struct peer;

/* One TCP+TLS connection. */
struct plink {
    uint64_t conn;
    bool outgoing;
    bool opened;    /* TCP was up (a refused dial never is) */
    bool up;        /* HELLOs exchanged: carries the peer's channel */
    bool guest;     /* the peer's HELLO had cluster id 0 */
    bool dead;      /* closed; freed by the tick */
    struct peer *p; /* outgoing: the peer dialled; incoming: set at HELLO */
    struct pframe_dec dec;
    uint64_t last_rx, last_ping;
    char remote[64];
    struct plink *next;
};

struct peer {
    uint64_t id; /* 0: a contact not identified yet */
    char addr[PFRAME_MAX_ADDR + 1];
    bool member, contact;
    struct pchan *ch;
    struct plink *link; /* the up link */
    struct plink *dial; /* an outgoing link not up yet */
    uint64_t next_dial;
    unsigned attempts;
    bool was_up;           /* a redial after a loss may report refused */
    uint64_t linger_until; /* a removed member's link closes then */
    struct peer_info info;
    struct peer *next;
};

struct peer_mgr {
    uv_loop_t *loop;
    struct peer_opts o;
    char name[32], self_addr[PFRAME_MAX_ADDR + 1];
    struct peer_hooks h;
    struct conn_mgr *cm;
    struct tls_ctx *srv_tls, *cli_tls;
    uv_timer_t timer;
    uint64_t incarnation;
    struct peer *peers;
    struct plink *links;
    struct peer_stats stats;
    bool closing;
    char last_refusal[400]; /* the same refusal is logged once a minute */
    uint64_t last_refusal_ms;
    void (*done)(void *);
    void *done_arg;
};

int peer_parse_addr(const char *addr, char *host, size_t hlen, int *port)
{
    char tmp[PFRAME_MAX_ADDR + 1];
    const char *p = NULL;
    char *end;
    long v;

    if (addr == NULL || strlen(addr) == 0 || strlen(addr) > PFRAME_MAX_ADDR)
        return XE_INVAL;
    snprintf(tmp, sizeof tmp, "%s", addr);
    *port = PEER_DEFAULT_PORT;
    if (tmp[0] == '[') {
        char *rb = strchr(tmp, ']');
        if (rb == NULL)
            return XE_INVAL;
        *rb = '\0';
        if (rb[1] == ':')
            p = rb + 2;
        else if (rb[1] != '\0')
            return XE_INVAL;
        if (strlen(tmp + 1) + 1 > hlen)
            return XE_INVAL;
        snprintf(host, hlen, "%s", tmp + 1);
    } else {
        char *c = strchr(tmp, ':');
        if (c != NULL && strchr(c + 1, ':') == NULL) {
            *c = '\0';
            p = c + 1;
        }
        if (strlen(tmp) + 1 > hlen)
            return XE_INVAL;
        snprintf(host, hlen, "%s", tmp);
    }
    if (p != NULL) {
        v = strtol(p, &end, 10);
        if (*p == '\0' || *end != '\0' || v < 1 || v > 65535)
            return XE_INVAL;
        *port = (int)v;
    }
    return host[0] != '\0' ? 0 : XE_INVAL;
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

static struct plink *find_link(const struct peer_mgr *m, uint64_t conn)
{
    for (struct plink *l = m->links; l != NULL; l = l->next)
        if (l->conn == conn && !l->dead)
            return l;
    return NULL;
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
    p->next_dial = 0;
    p->next = m->peers;
    m->peers = p;
    return p;
}

static void free_peer(struct peer *p)
{
    pchan_free(p->ch);
    free(p);
}

/* write_link sends bytes on l, counting them for its peer. */
static void write_link(struct peer_mgr *m, struct plink *l, const struct buf *b)
{
    if (b->len == 0 || l == NULL || l->dead)
        return;
    if (conn_send(m->cm, l->conn, (const char *)b->data, b->len) == 0 && l->p != NULL)
        l->p->info.bytes_out += b->len;
}

static int send_frame(struct peer_mgr *m, struct plink *l, const struct pframe *f)
{
    struct buf b;
    int rc;

    memset(&b, 0, sizeof b);
    rc = pframe_encode(f, &b);
    if (rc == 0) {
        write_link(m, l, &b);
        if (l->p != NULL)
            l->p->info.frames_out++;
    }
    buf_free(&b);
    return rc;
}

static uint64_t backoff(struct peer_mgr *m, unsigned attempts)
{
    uint64_t d = m->o.backoff_min_ms;

    if (attempts == 0)
        return 0; /* the first redial after a loss is at once */
    for (unsigned i = 1; i < attempts && d < m->o.backoff_max_ms; i++)
        d *= 2;
    if (d > m->o.backoff_max_ms)
        d = m->o.backoff_max_ms;
    return d / 2 + randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* link_drop forgets l (already closed or to be closed by the caller). */
static void link_drop(struct peer_mgr *m, struct plink *l, int err, const char *why)
{
    struct peer *p = l->p;
    bool refused = false;

    if (l->dead)
        return;
    l->dead = true;
    if (p == NULL)
        return;
    if (why != NULL && why[0] != '\0')
        snprintf(p->info.last_error, sizeof p->info.last_error, "%s", why);
    if (p->dial == l) {
        p->dial = NULL;
        refused = err == UV_ECONNREFUSED && !l->opened;
        p->next_dial = now_ms(m) + backoff(m, ++p->attempts);
        if (refused && p->was_up && m->h.link != NULL && !m->closing)
            m->h.link(m->h.ud, p->id, p->addr, false, err, true);
        else if (p->contact && p->id == 0 && m->h.link != NULL && !m->closing)
            m->h.link(m->h.ud, 0, p->addr, false, err, refused);
    }
    if (p->link == l) {
        p->link = NULL;
        pchan_link_down(p->ch);
        p->was_up = true;
        p->attempts = 0;
        p->next_dial = now_ms(m);
        LOG(m->o.log, LOG_INFO, "%s peer link to %016" PRIx64 " (%s) down: %s", m->name,
            p->id, p->addr, why != NULL && why[0] ? why : "closed");
        if (m->h.link != NULL && !m->closing)
            m->h.link(m->h.ud, p->id, p->addr, false, err, false);
    }
}

static void link_close(struct peer_mgr *m, struct plink *l, const char *why)
{
    if (l->dead)
        return;
    conn_close(m->cm, l->conn);
    link_drop(m, l, 0, why);
}

static struct plink *new_link(struct peer_mgr *m, uint64_t conn, bool outgoing,
                              const char *remote)
{
    struct plink *l = calloc(1, sizeof *l);

    if (l == NULL)
        return NULL;
    l->conn = conn;
    l->outgoing = outgoing;
    pframe_dec_init(&l->dec);
    l->last_rx = l->last_ping = now_ms(m);
    snprintf(l->remote, sizeof l->remote, "%s", remote != NULL ? remote : "");
    l->next = m->links;
    m->links = l;
    return l;
}

static void send_hello(struct peer_mgr *m, struct plink *l, struct peer *p)
{
    struct pframe f;

    memset(&f, 0, sizeof f);
    f.type = PFRAME_HELLO;
    pchan_hello(p->ch, &f.u.hello);
    f.u.hello.proto = PFRAME_PROTO;
    f.u.hello.cluster_id = p->contact && !p->member ? 0 : m->o.cluster_id;
    f.u.hello.node_id = m->o.node_id;
    f.u.hello.addr = m->self_addr;
    send_frame(m, l, &f);
}

static void dial(struct peer_mgr *m, struct peer *p)
{
    char host[PFRAME_MAX_ADDR + 1], err[150];
    int port;
    uint64_t id;
    struct plink *l;

    if (peer_parse_addr(p->addr, host, sizeof host, &port) < 0) {
        p->next_dial = UINT64_MAX;
        return;
    }
    if (conn_connect(m->cm, host, port, TAG_OUT, m->cli_tls, host, &id, err, sizeof err) <
        0) {
        snprintf(p->info.last_error, sizeof p->info.last_error, "%s", err);
        p->next_dial = now_ms(m) + backoff(m, ++p->attempts);
        return;
    }
    l = new_link(m, id, true, p->addr);
    if (l == NULL) {
        conn_close(m->cm, id);
        return;
    }
    l->p = p;
    p->dial = l;
}

/* ---- identity: the peer's claim against its certificate ---- */

/* host_bytes parses a numeric IPv4/IPv6 host into a[16] (*len 4 or 16);
 * false for a name. */
static bool host_bytes(const char *host, unsigned char a[16], size_t *len)
{
    if (inet_pton(AF_INET, host, a) == 1) {
        *len = 4;
        return true;
    }
    if (inet_pton(AF_INET6, host, a) == 1) {
        *len = 16;
        return true;
    }
    return false;
}

/* host_same: the same address (by value) or the same name (ASCII case
 * folded, RFC 4343). */
static bool host_same(const char *x, const char *y)
{
    unsigned char a[16], b[16];
    size_t al, bl;
    bool xa = host_bytes(x, a, &al), ya = host_bytes(y, b, &bl);

    if (xa || ya)
        return xa && ya && al == bl && memcmp(a, b, al) == 0;
    return strcasecmp(x, y) == 0;
}

bool peer_addr_same(const char *x, const char *y)
{
    char hx[PFRAME_MAX_ADDR + 1], hy[PFRAME_MAX_ADDR + 1];
    int px, py;

    if (peer_parse_addr(x, hx, sizeof hx, &px) < 0 ||
        peer_parse_addr(y, hy, sizeof hy, &py) < 0)
        return false;
    return px == py && host_same(hx, hy);
}

/* sans_cover: the certificate's subjectAltName list (tls.h format: "DNS:a,
 * IP:b") names host: an IP entry for an address, a DNS entry for a name
 * (exact, case folded; wildcards are not accepted for a peer's own
 * address: a node certificate names its node). */
static bool sans_cover(const char *sans, const char *host)
{
    unsigned char a[16];
    size_t alen;
    bool is_ip = host_bytes(host, a, &alen);
    const char *s = sans;

    while (*s != '\0') {
        char one[PFRAME_MAX_ADDR + 8];
        size_t n = strcspn(s, ",");
        if (n < sizeof one) {
            memcpy(one, s, n);
            one[n] = '\0';
            if (is_ip && strncmp(one, "IP:", 3) == 0 && host_same(one + 3, host))
                return true;
            if (!is_ip && strncmp(one, "DNS:", 4) == 0 && strcasecmp(one + 4, host) == 0)
                return true;
        }
        s += n;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return false;
}

/* check_identity binds an accepted connection's HELLO to the certificate
 * the peer presented (docs/cluster.md, "Identity and membership"): the
 * claimed address's host must be among the certificate's SANs, a member's
 * id must come from the address the configuration gives it, and an address
 * a member holds may carry no other id, except a joining node's (cluster id
 * 0: a join with --replace comes from the address of the stale member).
 * The dialler's side is the TLS name check on the address it dialled.
 * 0, or XE_AUTH with why filled. */
static int check_identity(struct peer_mgr *m, struct plink *l,
                          const struct pframe_hello *h, char *why, size_t whylen)
{
    struct tls_peer_info ti;
    char host[PFRAME_MAX_ADDR + 1];
    const struct peer *claimed = find_peer(m, h->node_id);
    int port;

    if (conn_tls_peer(m->cm, l->conn, &ti) < 0 || !ti.has_cert) {
        snprintf(why, whylen, "node %016" PRIx64 " at %.64s presented no certificate",
                 h->node_id, h->addr);
        return XE_AUTH;
    }
    if (peer_parse_addr(h->addr, host, sizeof host, &port) < 0) {
        snprintf(why, whylen, "node %016" PRIx64 " claims a bad address \"%.64s\"",
                 h->node_id, h->addr);
        return XE_AUTH;
    }
    if (!sans_cover(ti.sans, host)) {
        snprintf(why, whylen,
                 "node %016" PRIx64 " claims address %.64s, but its certificate (%.60s) "
                 "covers only %.160s",
                 h->node_id, h->addr, ti.subject, ti.sans[0] ? ti.sans : "no names");
        return XE_AUTH;
    }
    if (claimed != NULL && claimed->member && claimed->addr[0] != '\0' &&
        !peer_addr_same(claimed->addr, h->addr)) {
        snprintf(why, whylen,
                 "node %016" PRIx64 " claims address %.64s, but that member is at %.64s "
                 "(certificate %.60s covers %.120s)",
                 h->node_id, h->addr, claimed->addr, ti.subject, ti.sans);
        return XE_AUTH;
    }
    if (h->cluster_id == 0)
        return 0;
    for (const struct peer *q = m->peers; q != NULL; q = q->next) {
        if (q->member && q->id != 0 && q->id != h->node_id &&
            peer_addr_same(q->addr, h->addr)) {
            snprintf(why, whylen,
                     "node %016" PRIx64 " claims address %.64s, which member %016" PRIx64
                     " holds (certificate %.60s covers %.120s)",
                     h->node_id, h->addr, q->id, ti.subject, ti.sans);
            return XE_AUTH;
        }
    }
    return 0;
}

/* ---- HELLO ---- */

static void refuse(struct peer_mgr *m, struct plink *l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct peer_mgr *m, struct plink *l, const char *fmt, ...)
{
    char why[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    m->stats.refused++;
    if (l->p != NULL)
        l->p->info.refused++;
    /* A refused peer redials every 2 s: the same reason is logged at warn
     * level once a minute, at debug level in between. */
    if (strcmp(why, m->last_refusal) != 0 || now_ms(m) - m->last_refusal_ms >= 60000) {
        snprintf(m->last_refusal, sizeof m->last_refusal, "%s", why);
        m->last_refusal_ms = now_ms(m);
        LOG(m->o.log, LOG_WARN, "%s peer link %s %s refused: %s", m->name,
            l->outgoing ? "to" : "from", l->remote, why);
    } else {
        LOG(m->o.log, LOG_DEBUG, "%s peer link %s %s refused: %s", m->name,
            l->outgoing ? "to" : "from", l->remote, why);
    }
    link_close(m, l, why);
}

static int on_hello(struct peer_mgr *m, struct plink *l, const struct pframe_hello *h)
{
    struct peer *p = l->p;
    struct buf out;
    enum pchan_resume how;
    char why[400] = "";
    int rc;

    if (h->proto != PFRAME_PROTO) {
        refuse(m, l, "peer speaks protocol %u, this node %u", h->proto, PFRAME_PROTO);
        return XE_PROTO;
    }
    if (h->node_id == m->o.node_id) {
        refuse(m, l, "the peer has this node's own id (connected to itself?)");
        return XE_PROTO;
    }
    if (l->outgoing && p->id != 0 && p->id != h->node_id) {
        refuse(m, l,
               "%s is now node %016" PRIx64 ", not member %016" PRIx64
               " (was that node reset? see xmpp cluster status)",
               p->addr, h->node_id, p->id);
        return XE_PERM;
    }
    if (!l->outgoing && check_identity(m, l, h, why, sizeof why) < 0) {
        m->stats.impostors++;
        refuse(m, l, "%s", why);
        return XE_AUTH;
    }
    if (m->h.check_hello != NULL &&
        m->h.check_hello(m->h.ud, h, l->outgoing && p->contact && !p->member, why,
                         sizeof why) < 0) {
        refuse(m, l, "%s", why);
        return XE_PERM;
    }
    l->guest = h->cluster_id == 0;
    if (l->outgoing) {
        if (p->id == 0) {
            struct peer *old = find_peer(m, h->node_id);
            if (old != NULL && old != p) {
                refuse(m, l, "node %016" PRIx64 " is already linked", h->node_id);
                return XE_EXISTS;
            }
            p->id = h->node_id;
        }
    } else {
        p = find_peer(m, h->node_id);
        if (p == NULL) {
            p = new_peer(m, h->node_id, h->addr);
            if (p == NULL) {
                link_close(m, l, "out of memory");
                return XE_NOMEM;
            }
        }
        if (p->addr[0] == '\0' || !p->member)
            snprintf(p->addr, sizeof p->addr, "%s", h->addr);
        /* Both dialled at once: the lower node id's dial wins. */
        if (p->dial != NULL && h->node_id > m->o.node_id) {
            LOG(m->o.log, LOG_DEBUG, "%s peer link from %s dropped: our own dial wins",
                m->name, l->remote);
            link_close(m, l, NULL);
            return 0;
        }
        if (p->dial != NULL)
            link_close(m, p->dial, "the peer's dial won");
        if (p->link != NULL)
            link_close(m, p->link, "replaced by a new connection from the peer");
        l->p = p;
        /* Our HELLO describes the channel before the peer's is applied
         * (both sides do so: pchan's rule is symmetric). */
        send_hello(m, l, p);
    }
    memset(&out, 0, sizeof out);
    rc = pchan_link_up(p->ch, h, &out, &how);
    if (rc < 0) {
        buf_free(&out);
        refuse(m, l, "channel resume failed: %s", xe_strerror(rc));
        return rc;
    }
    l->up = true;
    l->p = p;
    p->link = l;
    if (p->dial == l)
        p->dial = NULL;
    p->attempts = 0;
    p->info.connects++;
    p->info.last_error[0] = '\0';
    m->stats.links_up++;
    write_link(m, l, &out);
    buf_free(&out);
    LOG(m->o.log, LOG_INFO, "%s peer link to %016" PRIx64 " (%s) up%s%s", m->name, p->id,
        p->addr, how == PCHAN_RESET ? ", channel reset" : "",
        l->guest ? ", joining node" : "");
    if (how == PCHAN_RESET && m->h.reset != NULL)
        m->h.reset(m->h.ud, p->id);
    if (m->h.link != NULL && p->link == l)
        m->h.link(m->h.ud, p->id, p->addr, true, 0, false);
    return 0;
}

/* ---- frames ---- */

static void malformed(struct peer_mgr *m, struct plink *l, const char *what, int rc)
{
    char why[200];

    m->stats.malformed++;
    if (l->p != NULL)
        l->p->info.malformed++;
    snprintf(why, sizeof why, "malformed %s: %s", what, xe_strerror(rc));
    LOG(m->o.log, LOG_WARN, "%s peer link %s closed: %s", m->name, l->remote, why);
    link_close(m, l, why);
}

static void on_frame(struct peer_mgr *m, struct plink *l, struct pframe *f)
{
    struct peer *p = l->p;
    struct buf out;
    bool deliver = false;
    int rc;

    if (!l->up) {
        if (f->type != PFRAME_HELLO) {
            malformed(m, l, "link (a frame before HELLO)", XE_PROTO);
            return;
        }
        on_hello(m, l, &f->u.hello);
        return;
    }
    p->info.frames_in++;
    switch (f->type) {
    case PFRAME_HELLO:
        malformed(m, l, "link (a second HELLO)", XE_PROTO);
        return;
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
        if (l->guest)
            return;
        if (m->h.raft != NULL &&
            m->h.raft(m->h.ud, p->id, f->u.raft.data, f->u.raft.len) < 0)
            malformed(m, l, "RAFT frame", XE_PROTO);
        return;
    default:
        break;
    }
    memset(&out, 0, sizeof out);
    rc = pchan_recv(p->ch, f, now_ms(m), &out, &deliver);
    write_link(m, l, &out);
    buf_free(&out);
    if (rc < 0) {
        malformed(m, l, pframe_type_name(f->type), rc);
        return;
    }
    if (f->type == PFRAME_CHAN_ACK) {
        if (m->h.room != NULL)
            m->h.room(m->h.ud, p->id);
        return;
    }
    if (deliver && m->h.frame != NULL && m->h.frame(m->h.ud, p->id, l->guest, f) < 0)
        malformed(m, l, pframe_type_name(f->type), XE_PROTO);
}

/* ---- conn hooks ---- */

static int hk_opened(void *ud, uint64_t id, int tag, const char *peer)
{
    struct peer_mgr *m = ud;
    struct plink *l;

    if (m->closing)
        return XE_CLOSED;
    if (tag == TAG_OUT) {
        l = find_link(m, id);
        if (l != NULL)
            l->opened = true;
        return 0;
    }
    if (new_link(m, id, false, peer) == NULL)
        return XE_NOMEM;
    m->stats.accepted++;
    return 0;
}

static void hk_secured(void *ud, uint64_t id)
{
    struct peer_mgr *m = ud;
    struct plink *l = find_link(m, id);

    /* The dialler speaks first (see peer.h). */
    if (l != NULL && l->outgoing && l->p != NULL && !l->up)
        send_hello(m, l, l->p);
    conn_mgr_flush(m->cm);
}

static void hk_data(void *ud, uint64_t id, const char *bytes, size_t len)
{
    struct peer_mgr *m = ud;
    struct plink *l = find_link(m, id);
    struct pframe f;
    int rc;

    if (l == NULL)
        return;
    l->last_rx = now_ms(m);
    if (l->p != NULL) {
        l->p->info.bytes_in += len;
        l->p->info.last_contact_ms = l->last_rx;
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
            l->p->info.last_contact_ms = l->last_rx;
    }
    if (rc < 0 && !l->dead)
        malformed(m, l, "frame", rc);
    conn_mgr_flush(m->cm);
}

static void hk_gone(void *ud, uint64_t id, int err)
{
    struct peer_mgr *m = ud;
    struct plink *l = find_link(m, id);
    char why[160];

    if (l == NULL)
        return;
    if (!l->up && !l->outgoing && err == UV_EPROTO) {
        m->stats.refused++; /* the TLS handshake failed: conn.c logged why */
    }
    snprintf(why, sizeof why, "%s", err == 0 ? "closed by the peer" : uv_strerror(err));
    link_drop(m, l, err, why);
}

static void free_all(struct peer_mgr *m)
{
    while (m->links != NULL) {
        struct plink *l = m->links;
        m->links = l->next;
        pframe_dec_free(&l->dec);
        free(l);
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

    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

/* ---- tick: dials, pings, channel acks, reaping ---- */

static void on_tick(uv_timer_t *t)
{
    struct peer_mgr *m = t->data;
    uint64_t now = now_ms(m);
    struct plink **lp;
    struct peer **pp;

    for (struct peer *p = m->peers; p != NULL; p = p->next) {
        struct plink *l = p->link;
        if (l != NULL && !l->dead && p->linger_until != 0 && now >= p->linger_until &&
            !p->member && !p->contact) {
            p->linger_until = 0;
            link_close(m, l, "no longer a member");
            continue;
        }
        if (l != NULL && !l->dead) {
            struct buf out;
            if (now - l->last_rx >= m->o.idle_close_ms) {
                LOG(m->o.log, LOG_WARN,
                    "%s peer link to %016" PRIx64 " (%s): nothing received for %" PRIu64
                    " ms, closing",
                    m->name, p->id, p->addr, now - l->last_rx);
                link_close(m, l, "silent peer");
                continue;
            }
            if (now - l->last_ping >= PING_EVERY_MS) {
                struct pframe f = {.type = PFRAME_PING};
                f.u.ping.nonce = now;
                f.u.ping.components = local_components(m);
                l->last_ping = now;
                send_frame(m, l, &f);
            }
            memset(&out, 0, sizeof out);
            if (pchan_next_deadline(p->ch) <= now)
                pchan_tick(p->ch, now, &out);
            write_link(m, l, &out);
            buf_free(&out);
        } else if (p->dial != NULL && !p->dial->dead &&
                   now - p->dial->last_rx >= DIAL_TIMEOUT_MS) {
            /* conn_connect has no timeout: a dial into a partition would
             * wait for the kernel's (minutes). */
            link_close(m, p->dial, "connect timed out");
        } else if (p->dial == NULL && p->addr[0] != '\0' && (p->member || p->contact) &&
                   now >= p->next_dial) {
            dial(m, p);
        }
    }
    /* Reap closed links and peers that are neither members nor contacts. */
    for (lp = &m->links; *lp != NULL;) {
        struct plink *l = *lp;
        if (l->dead) {
            *lp = l->next;
            pframe_dec_free(&l->dec);
            free(l);
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
    if (m->o.backoff_min_ms == 0)
        m->o.backoff_min_ms = 50;
    if (m->o.backoff_max_ms == 0)
        m->o.backoff_max_ms = 2000;
    if (m->o.idle_close_ms == 0)
        m->o.idle_close_ms = 5000;
    do
        randombytes_buf(&m->incarnation, sizeof m->incarnation);
    while (m->incarnation == 0);
    rc = make_tls(m, opts, err, errlen);
    if (rc < 0)
        goto fail;
    ch.ud = m;
    rc = conn_mgr_new(loop, &ch, opts->log, m->name, 0, &m->cm);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (opts->listen_host != NULL) {
        rc = conn_listen_tls(m->cm, opts->listen_host, opts->listen_port, TAG_IN,
                             m->srv_tls, TLS_MODE_REQUIRED, err, errlen);
        if (rc < 0)
            goto fail;
    }
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
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
        if (p->link != NULL && !p->link->guest && p->linger_until == 0)
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
    snprintf(norm, sizeof norm, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    for (p = m->peers; p != NULL; p = p->next)
        if (strcmp(p->addr, norm) == 0)
            break;
    if (p == NULL && (p = new_peer(m, 0, norm)) == NULL)
        return XE_NOMEM;
    p->contact = true;
    p->next_dial = 0;
    p->attempts = 0;
    return 0;
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
    if (rc == 0 && p->link != NULL) {
        write_link(m, p->link, &out);
        p->info.frames_out++;
        conn_mgr_flush(m->cm);
    }
    buf_free(&out);
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
    return rc;
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
    out->state = p->link != NULL ? "up" : p->dial != NULL ? "connecting" : "down";
    return 0;
}

void peer_stats_get(const struct peer_mgr *m, struct peer_stats *out)
{
    *out = m->stats;
}
