/* plink.c: the peer link's decisions (contract in plink.h; protocol in
 * docs/cluster.md "Connections" and "Handshake"). */
#include "plink.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "err.h"
#include "never.h"

void plink_opts_default(struct plink_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prehello_ms = 5000;
    o->dial_ms = 3000;
    o->guest_ms = 60000;
    o->ping_ms = 1000;
    o->idle_ms = 5000;
    o->backoff_min_ms = 50;
    o->backoff_max_ms = 2000;
    o->max_unjoined = 64;
    o->max_unjoined_per_addr = 8;
}

const char *plink_foreign_protocol(const void *bytes, size_t len)
{
    static const char *const http[] = {"HTTP/", "GET ",     "POST ",   "HEAD ",
                                       "PUT ",  "OPTIONS ", "CONNECT "};
    const char *b = bytes;

    if (len == 0)
        return NULL;
    if (b[0] == '<')
        return "XMPP";
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++) {
        size_t n = strlen(http[i]);
        if (len >= n && memcmp(b, http[i], n) == 0)
            return "HTTP";
    }
    return NULL;
}

const char *plink_state_name(enum plink_state s)
{
    switch (s) {
    case PLINK_STATE_TCP:
        return "tcp";
    case PLINK_STATE_TLS:
        return "tls";
    case PLINK_STATE_MEMBER:
        return "member";
    case PLINK_STATE_GUEST:
        return "guest";
    case PLINK_STATE_CONTACT:
        return "contact";
    case PLINK_STATE_SUCCESSOR:
        return "successor";
    case PLINK_STATE_CLOSED:
        return "closed";
    }
    return "?";
}

static void reset_update(struct plink_update *u)
{
    memset(u, 0, sizeof *u);
}

static void close_with(struct plink_conn *c, struct plink_update *u,
                       enum plink_count count, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* close_with ends c: the update says close, why and what to count. */
static void close_with(struct plink_conn *c, struct plink_update *u,
                       enum plink_count count, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(u->why, sizeof u->why, fmt, ap);
    va_end(ap);
    u->close = true;
    u->count = count;
    c->state = PLINK_STATE_CLOSED;
}

void plink_open(struct plink_conn *c, bool outgoing, uint64_t dialled_id, bool ask_join,
                uint64_t now)
{
    memset(c, 0, sizeof *c);
    c->state = PLINK_STATE_TCP;
    c->outgoing = outgoing;
    c->dialled_id = outgoing ? dialled_id : 0;
    c->ask_join = outgoing && ask_join;
    c->opened_ms = c->last_rx_ms = c->last_ping_ms = now;
}

static uint8_t my_min(const struct plink_conn *c)
{
    return c->vmin != 0 ? c->vmin : PFRAME_VERSION_MIN;
}

static uint8_t my_max(const struct plink_conn *c)
{
    return c->vmax != 0 ? c->vmax : PFRAME_VERSION_MAX;
}

int plink_versions(struct plink_conn *c, uint8_t vmin, uint8_t vmax)
{
    if (vmin < PFRAME_VERSION_MIN || vmin > vmax || vmax > PFRAME_VERSION_MAX)
        return XE_INVAL;
    c->vmin = vmin;
    c->vmax = vmax;
    return 0;
}

void plink_tls_done(struct plink_conn *c, uint64_t cluster_id, uint64_t now,
                    struct plink_update *u)
{
    reset_update(u);
    /* The edge reports one handshake per connection; a tick may have
     * closed it (a dial timeout) while the handshake finished. */
    if (XD_NEVER(c->state != PLINK_STATE_TCP && c->state != PLINK_STATE_CLOSED))
        return;
    if (c->state != PLINK_STATE_TCP)
        return;
    c->state = PLINK_STATE_TLS;
    c->last_rx_ms = now;
    if (c->outgoing) {
        /* The dialler speaks first (docs/cluster.md "Connections"). */
        u->send_hello = true;
        u->hello_cluster_id = c->ask_join ? 0 : cluster_id;
        /* At its newest version, with its range: a version 2 acceptor
         * cannot read it, but its own dial to us gets through (the dial
         * race below), and a later one can (docs/cluster.md "Versions"). */
        u->hello_version = my_max(c);
    }
}

void plink_rx(struct plink_conn *c, uint64_t now)
{
    if (c->state != PLINK_STATE_CLOSED)
        c->last_rx_ms = now;
}

void plink_close(struct plink_conn *c)
{
    c->state = PLINK_STATE_CLOSED;
}

bool plink_unjoined(const struct plink_conn *c)
{
    return !c->outgoing && (c->state == PLINK_STATE_TCP || c->state == PLINK_STATE_TLS ||
                            c->state == PLINK_STATE_GUEST);
}

/* ---- addresses and certificates ---- */

int plink_parse_addr(const char *addr, int default_port, char *host, size_t hlen,
                     int *port)
{
    struct addr a;

    /* The one rule is addr.c's; a peer address also fits in a frame. */
    if (addr == NULL || strlen(addr) > PFRAME_MAX_ADDR || default_port < 0 ||
        default_port > 65535 ||
        addr_parse(addr, ADDR_HOSTS_DNS, (uint16_t)default_port, &a) < 0 ||
        strlen(a.host) >= hlen)
        return XE_INVAL;
    memcpy(host, a.host, strlen(a.host) + 1);
    *port = a.port;
    return 0;
}

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

bool plink_host_same(const char *x, const char *y)
{
    return addr_host_same(x, y);
}

bool plink_addr_same(const char *x, const char *y)
{
    return addr_same(x, y, ADDR_HOSTS_DNS, PLINK_DEFAULT_PORT);
}

bool plink_sans_cover(const char *sans, const char *host)
{
    unsigned char a[16];
    size_t alen;
    bool is_ip = host_bytes(host, a, &alen);
    const char *s = sans != NULL ? sans : "";

    while (*s != '\0') {
        char one[PFRAME_MAX_ADDR + 8];
        size_t n = strcspn(s, ",");
        if (n < sizeof one) {
            memcpy(one, s, n);
            one[n] = '\0';
            if (is_ip && strncmp(one, "IP:", 3) == 0 && plink_host_same(one + 3, host))
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

/* ---- HELLO ---- */

/* check_identity binds an accepted connection's HELLO to the certificate
 * the peer presented (docs/cluster.md, "Identity and membership"): the
 * claimed address's host must be among the certificate's SANs, a member's
 * id must come from the address the configuration gives it, and an address
 * a member holds may carry no other id, except a joining node's (cluster id
 * 0: a join with --replace comes from the address of the stale member) and
 * our own cluster's successor of that member (*successor set: the replace
 * committed while our configuration fell behind; see SUCCESSOR in plink.h).
 * The dialler's side is the TLS name check on the address it dialled.
 * true, or false with why filled. */
/* is_member: id is one of the members v lists. */
static bool is_member(const struct plink_view *v, uint64_t id)
{
    for (size_t i = 0; i < v->nmembers; i++)
        if (v->members[i].id == id)
            return true;
    return false;
}

static bool check_identity(const struct plink_view *v, const struct pframe_hello *h,
                           bool *successor, char *why, size_t whylen)
{
    char host[PFRAME_MAX_ADDR + 1];
    const char *sans = v->sans != NULL ? v->sans : "";
    const char *subject = v->subject != NULL ? v->subject : "";
    int port;

    if (!v->cert) {
        snprintf(why, whylen, "node %016" PRIx64 " at %.64s presented no certificate",
                 h->node_id, h->addr);
        return false;
    }
    if (plink_parse_addr(h->addr, PLINK_DEFAULT_PORT, host, sizeof host, &port) < 0) {
        snprintf(why, whylen, "node %016" PRIx64 " claims a bad address \"%.64s\"",
                 h->node_id, h->addr);
        return false;
    }
    if (!plink_sans_cover(sans, host)) {
        snprintf(why, whylen,
                 "node %016" PRIx64 " claims address %.64s, but its certificate (%.60s) "
                 "covers only %.160s",
                 h->node_id, h->addr, subject, sans[0] ? sans : "no names");
        return false;
    }
    for (size_t i = 0; i < v->nmembers; i++) {
        const struct plink_member *mb = &v->members[i];
        if (mb->id == h->node_id && mb->addr != NULL && mb->addr[0] != '\0' &&
            !plink_addr_same(mb->addr, h->addr)) {
            snprintf(why, whylen,
                     "node %016" PRIx64 " claims address %.64s, but that member is at "
                     "%.64s (certificate %.60s covers %.120s)",
                     h->node_id, h->addr, mb->addr, subject, sans);
            return false;
        }
    }
    *successor = false;
    if (h->cluster_id == 0)
        return true;
    for (size_t i = 0; i < v->nmembers; i++) {
        const struct plink_member *mb = &v->members[i];
        if (mb->id != 0 && mb->id != h->node_id && mb->addr != NULL &&
            plink_addr_same(mb->addr, h->addr)) {
            if (h->cluster_id == v->cluster_id && !is_member(v, h->node_id)) {
                *successor = true;
                return true;
            }
            snprintf(why, whylen,
                     "node %016" PRIx64 " claims address %.64s, which member %016" PRIx64
                     " holds (certificate %.60s covers %.120s)",
                     h->node_id, h->addr, mb->id, subject, sans);
            return false;
        }
    }
    return true;
}

void plink_hello(struct plink_conn *c, const struct plink_view *v,
                 const struct pframe_hello *h, uint64_t now, struct plink_update *u)
{
    char why[sizeof u->why];
    bool ours0, theirs0, successor = false;
    uint8_t version;

    reset_update(u);
    if (c->state == PLINK_STATE_CLOSED)
        return;
    if (c->state != PLINK_STATE_TLS) {
        close_with(c, u, PLINK_COUNT_FORBIDDEN, "%s",
                   c->state == PLINK_STATE_TCP ? "a HELLO before TLS" : "a second HELLO");
        return;
    }
    if (h->proto != PFRAME_PROTO) {
        close_with(c, u, PLINK_COUNT_REFUSED, "peer speaks protocol %u, this node %u",
                   h->proto, PFRAME_PROTO);
        return;
    }
    if (h->node_id == 0) {
        close_with(c, u, PLINK_COUNT_REFUSED, "the peer claims node id 0");
        return;
    }
    if (h->node_id == v->self_id) {
        close_with(c, u, PLINK_COUNT_REFUSED,
                   "the peer has this node's own id (connected to itself?)");
        return;
    }
    if (c->outgoing && c->dialled_id != 0 && c->dialled_id != h->node_id) {
        close_with(c, u, PLINK_COUNT_REFUSED,
                   "the address dialled is now node %016" PRIx64
                   ", not member %016" PRIx64
                   " (was that node reset? see xmpp cluster status)",
                   h->node_id, c->dialled_id);
        return;
    }
    if (!c->outgoing && !check_identity(v, h, &successor, why, sizeof why)) {
        close_with(c, u, PLINK_COUNT_IMPOSTOR, "%s", why);
        return;
    }
    if (h->unranged) {
        /* Nothing is sent back: it could read neither our HELLO nor our
         * REFUSE (its version 3 layouts are not ours), and closes our dials
         * as malformed. */
        close_with(c, u, PLINK_COUNT_REFUSED,
                   "the peer is an xmppd build from before peer protocol version ranges "
                   "(its version 3 frames are not this node's): no link with it is "
                   "possible; stop the older nodes and start them on this build "
                   "(docs/cluster.md \"Rolling upgrade\")");
        return;
    }
    version = pframe_version_pick(my_min(c), my_max(c), h->vmin, h->vmax);
    if (version == 0) {
        close_with(c, u, PLINK_COUNT_REFUSED,
                   "peer speaks protocol versions %u..%u, this node %u..%u: upgrade the "
                   "older node",
                   h->vmin, h->vmax, my_min(c), my_max(c));
        if (!c->outgoing) {
            /* The dialler learns it in a REFUSE it can read: at 2 for a
             * version 2 node (which knows no VERSION code), else at our
             * newest (a later node reads REFUSE at any version). */
            u->send_refuse = true;
            /* in the dialler's words: it may be a version 2 node, which
             * prints the reason as it comes */
            snprintf(u->refuse_why, sizeof u->refuse_why,
                     "peer speaks protocol versions %u..%u, this node %u..%u: upgrade "
                     "the older node",
                     my_min(c), my_max(c), h->vmin, h->vmax);
            u->hello_version = h->vmax < 3 || my_max(c) < 3 ? 2 : my_max(c);
            u->refuse_code =
                u->hello_version >= 3 ? PFRAME_REFUSE_VERSION : PFRAME_REFUSE_OTHER;
        }
        return;
    }
    if (v->policy_rc < 0) {
        close_with(c, u, PLINK_COUNT_REFUSED, "%s",
                   v->policy_why != NULL && v->policy_why[0] ? v->policy_why
                                                             : "refused by policy");
        if (!c->outgoing) {
            u->send_refuse = true;
            u->refuse_code =
                v->policy_rc == XE_NOTFOUND ? PFRAME_REFUSE_REMOVED : PFRAME_REFUSE_OTHER;
            u->hello_version = version;
        }
        return;
    }
    if (c->outgoing && c->dialled_id == 0 && v->id_taken) {
        close_with(c, u, PLINK_COUNT_REFUSED, "node %016" PRIx64 " is already linked",
                   h->node_id);
        return;
    }
    ours0 = c->outgoing ? c->ask_join : v->ask_join;
    theirs0 = h->cluster_id == 0;
    if (ours0 && theirs0) {
        close_with(c, u, PLINK_COUNT_REFUSED,
                   "node %016" PRIx64 " asks to join too: neither end is in a cluster",
                   h->node_id);
        return;
    }
    if (!c->outgoing) {
        /* Both dialled at once: the lower node id's dial wins on both ends
         * (docs/cluster.md "Connections"). */
        bool ours_wins = h->node_id > v->self_id;
        /* Unless exactly one end speaks version 2 only: its dial wins,
         * because it cannot read the other's HELLO (written at 3 or
         * later) if it is a build from before version ranges. */
        if ((h->vmax < 3) != (my_max(c) < 3))
            ours_wins = my_max(c) < 3;
        if (v->id_dialled && ours_wins) {
            close_with(c, u, PLINK_COUNT_NONE, "our own dial wins");
            return;
        }
        u->drop_dial = v->id_dialled;
        u->drop_link = v->id_linked;
        /* The acceptor answers only once it keeps the connection, so that
         * its HELLO describes the channel as the link starts. */
        u->send_hello = true;
        u->hello_cluster_id = ours0 ? 0 : v->cluster_id;
        /* At the chosen version: a version 2 HELLO (no range) says 2..2,
         * and the dialler picks the same. */
        u->hello_version = version;
    }
    c->version = version;
    c->state = theirs0     ? PLINK_STATE_GUEST
               : ours0     ? PLINK_STATE_CONTACT
               : successor ? PLINK_STATE_SUCCESSOR
                           : PLINK_STATE_MEMBER;
    c->peer_id = h->node_id;
    c->last_rx_ms = c->last_ping_ms = now;
    u->up = true;
}

/* ---- frames ---- */

/* guest_join: f is a join request for the guest peer_id itself (SUBMIT
 * data, pframe_req_decode). */
static bool guest_join(uint64_t peer_id, const struct pframe *f)
{
    struct pframe_req r;

    if (f == NULL || f->type != PFRAME_SUBMIT ||
        pframe_req_decode(f->u.submit.data, f->u.submit.len, &r) < 0)
        return false;
    return r.kind == PFRAME_REQ_JOIN && r.u.join.node_id == peer_id;
}

bool plink_allowed(enum plink_state s, uint64_t peer_id, int type, const struct pframe *f,
                   bool *deliver)
{
    *deliver = false;
    switch (s) {
    case PLINK_STATE_MEMBER:
        switch (type) {
        case PFRAME_CHAN_ACK:
        case PFRAME_PING:
        case PFRAME_PONG:
        case PFRAME_RAFT:
        case PFRAME_FWD:
        case PFRAME_ACK:
        case PFRAME_SESSIONS:
        case PFRAME_CONFLICT:
        case PFRAME_SUBMIT:
        case PFRAME_SUBMIT_RESULT:
        case PFRAME_ROUTES:
            *deliver = true;
            return true;
        default:
            return false;
        }
    case PLINK_STATE_GUEST:
        /* A node that has not joined may ask to join, for itself, and keep
         * its link alive; nothing else (DESIGN.md "Forwarding"). */
        switch (type) {
        case PFRAME_CHAN_ACK:
        case PFRAME_PING:
        case PFRAME_PONG:
            *deliver = true;
            return true;
        case PFRAME_SUBMIT:
            *deliver = guest_join(peer_id, f);
            return *deliver;
        default:
            return false;
        }
    case PLINK_STATE_SUCCESSOR:
        /* The log only: Raft checks terms and indexes itself; the rest of
         * a member's traffic waits until our configuration names it. */
        switch (type) {
        case PFRAME_CHAN_ACK:
        case PFRAME_PING:
        case PFRAME_PONG:
        case PFRAME_RAFT:
            *deliver = true;
            return true;
        case PFRAME_FWD:
        case PFRAME_ACK:
        case PFRAME_SESSIONS:
        case PFRAME_CONFLICT:
        case PFRAME_SUBMIT:
        case PFRAME_SUBMIT_RESULT:
        case PFRAME_ROUTES:
            return true;
        default:
            return false;
        }
    case PLINK_STATE_CONTACT:
        switch (type) {
        case PFRAME_CHAN_ACK:
        case PFRAME_PING:
        case PFRAME_PONG:
        case PFRAME_SUBMIT_RESULT:
            *deliver = true;
            return true;
        /* The cluster's own traffic, to a node it has just added: this node
         * is not in that cluster until it switched stores; it redials as a
         * member then (cluster_join.c). */
        case PFRAME_RAFT:
        case PFRAME_FWD:
        case PFRAME_DELIVER:
        case PFRAME_ACK:
        case PFRAME_SESSIONS:
        case PFRAME_CONFLICT:
        case PFRAME_SUBMIT:
        case PFRAME_ROUTES:
            return true;
        default:
            return false;
        }
    default:
        return false;
    }
}

void plink_frame(struct plink_conn *c, const struct pframe *f, struct plink_update *u)
{
    bool deliver;

    reset_update(u);
    if (c->state == PLINK_STATE_CLOSED)
        return;
    if (c->state == PLINK_STATE_TLS && c->outgoing && f->type == PFRAME_REFUSE) {
        if (f->u.refuse.code == PFRAME_REFUSE_VERSION && f->u.refuse.vmin != 0)
            close_with(c, u, PLINK_COUNT_REFUSED,
                       "refused by the peer: peer speaks protocol versions %u..%u, this "
                       "node %u..%u: upgrade the older node",
                       f->u.refuse.vmin, f->u.refuse.vmax, my_min(c), my_max(c));
        else
            close_with(c, u, PLINK_COUNT_REFUSED, "refused by the peer: %s",
                       f->u.refuse.reason);
        u->deliver = true;
        return;
    }
    if (c->state == PLINK_STATE_TCP || c->state == PLINK_STATE_TLS) {
        close_with(c, u, PLINK_COUNT_FORBIDDEN, "%s before HELLO",
                   pframe_type_name(f->type));
        return;
    }
    if (!plink_allowed(c->state, c->peer_id, f->type, f, &deliver)) {
        close_with(c, u, PLINK_COUNT_FORBIDDEN,
                   c->state == PLINK_STATE_GUEST
                       ? "%s%s on the link of a node that has not joined (only its own "
                         "join request is allowed)"
                       : "%s%s not allowed on a %s link",
                   pframe_type_name(f->type),
                   f->type == PFRAME_SUBMIT ? " (not a join request for itself)" : "",
                   plink_state_name(c->state));
        return;
    }
    u->deliver = deliver;
}

void plink_tick(struct plink_conn *c, const struct plink_opts *o, uint64_t now,
                struct plink_update *u)
{
    reset_update(u);
    switch (c->state) {
    case PLINK_STATE_CLOSED:
        return;
    case PLINK_STATE_TCP:
    case PLINK_STATE_TLS:
        if (c->outgoing) {
            /* conn_connect has no timeout: a dial into a partition would wait
             * for the kernel's (minutes). */
            if (now - c->opened_ms >= o->dial_ms)
                close_with(c, u, PLINK_COUNT_NONE,
                           "connect timed out (no HELLO within %" PRIu64 " ms)",
                           o->dial_ms);
        } else if (now - c->opened_ms >= o->prehello_ms) {
            /* An idle or slow connection must not hold a
             * descriptor for long. */
            close_with(c, u, PLINK_COUNT_TIMEOUT, "%s within %" PRIu64 " ms",
                       c->state == PLINK_STATE_TCP ? "no TLS handshake"
                                                   : "TLS done, but no HELLO",
                       o->prehello_ms);
        }
        return;
    case PLINK_STATE_MEMBER:
    case PLINK_STATE_GUEST:
    case PLINK_STATE_CONTACT:
    case PLINK_STATE_SUCCESSOR:
        if (now - c->last_rx_ms >= o->idle_ms) {
            close_with(c, u, PLINK_COUNT_NONE, "nothing received for %" PRIu64 " ms",
                       now - c->last_rx_ms);
            return;
        }
        if (c->state == PLINK_STATE_GUEST && now - c->opened_ms >= o->guest_ms) {
            close_with(c, u, PLINK_COUNT_TIMEOUT,
                       "a node that has not joined may keep its link %" PRIu64
                       " s at most",
                       o->guest_ms / 1000);
            return;
        }
        if (now - c->last_ping_ms >= o->ping_ms) {
            c->last_ping_ms = now;
            u->send_ping = true;
        }
        return;
    }
}

/* ---- admission and redial ---- */

bool plink_evictable(const struct plink_conn *c)
{
    return !c->outgoing && (c->state == PLINK_STATE_TCP || c->state == PLINK_STATE_TLS);
}

int plink_admit(const struct plink_opts *o, size_t total, size_t from_host,
                size_t evictable, const char *host, bool *evict, char *why, size_t whylen)
{
    *evict = false;
    if (from_host >= o->max_unjoined_per_addr) {
        snprintf(why, whylen,
                 "%zu connections from %.64s are not members' links (the limit per "
                 "address)",
                 from_host, host);
        return XE_LIMIT;
    }
    if (total < o->max_unjoined)
        return 0;
    /* Full.  Connections that never send a TLS handshake or a HELLO cost
     * nothing to hold from a few addresses, renewed at each prehello_ms:
     * refusing every newcomer then would keep a member that lost its links
     * (a restart) out for as long as the flood lasts.  The oldest of them
     * makes room instead; a member's handshake and HELLO take
     * milliseconds, far less than the flood needs to cycle all its slots.
     * Guests (a certificate proved) are not closed so. */
    if (evictable > 0) {
        *evict = true;
        snprintf(why, whylen,
                 "made room for a newer connection: %zu connections that are not "
                 "members' links are open (the limit)",
                 total);
        return 0;
    }
    snprintf(why, whylen,
             "%zu connections that are not members' links are open (the limit)", total);
    return XE_LIMIT;
}

uint64_t plink_backoff(const struct plink_opts *o, unsigned attempts, uint32_t rnd)
{
    uint64_t d = o->backoff_min_ms;

    if (attempts == 0)
        return 0; /* the first redial after a loss is at once */
    for (unsigned i = 1; i < attempts && d < o->backoff_max_ms; i++)
        d *= 2;
    if (d > o->backoff_max_ms)
        d = o->backoff_max_ms;
    return d / 2 + rnd % (d / 2 + 1);
}

void plink_dial_failed(struct plink_dial *d, const struct plink_opts *o, uint64_t now,
                       uint32_t rnd)
{
    if (d->attempts < 64)
        d->attempts++;
    d->next_ms = now + plink_backoff(o, d->attempts, rnd);
}

void plink_dial_lost(struct plink_dial *d, uint64_t now)
{
    d->attempts = 0;
    d->next_ms = now;
    d->was_up = true;
}

void plink_dial_up(struct plink_dial *d)
{
    d->attempts = 0;
}
