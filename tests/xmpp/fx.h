/* fx.h: the transcript fixture: a srv core driven through a fake edge that
 * records, per connection, every byte written and whether it was closed; a
 * deterministic random source (stream ids 000102..0f, 101112..1f, ...), a
 * hand-moved clock and a captured log.  No sockets, no threads. */
#ifndef XMPPD_TESTS_XMPP_FX_H
#define XMPPD_TESTS_XMPP_FX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "err.h"
#include "srv.h"
#include "testlib.h"

#define FX_MAX_CONNS 16

#define FX_NS_STREAMS "http://etherx.jabber.org/streams"
/* What a component sends to open its stream (XEP-0114 §3). */
#define FX_OPEN(to)                                                                      \
    "<stream:stream xmlns='jabber:component:accept' "                                    \
    "xmlns:stream='http://etherx.jabber.org/streams' to='" to "'>"
/* The server's stream header. */
#define FX_HDR_PREFIX                                                                    \
    "<?xml version='1.0'?><stream:stream "                                               \
    "xmlns:stream='http://etherx.jabber.org/streams' "                                   \
    "xmlns='jabber:component:accept' from='"
/* A stream error and the close that follows it (RFC 6120 §4.9). */
#define FX_ERR(cond)                                                                     \
    "<stream:error><" cond " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"              \
    "</stream:error></stream:stream>"

struct fx_conn {
    struct buf out; /* bytes written and not yet taken */
    int closes;     /* env->close calls */
    int late_sends; /* sends after close: must stay 0 */
    char sid[33];   /* the stream id srv drew for it */
    bool fail_send; /* make env->send fail */
    int starttls;   /* env->starttls calls */
    bool paused;    /* env->pause_read: not read now */
    int pauses;     /* env->pause_read(true) calls */
    int resumes;    /* env->pause_read(false) calls */
};

struct fx {
    struct srv *srv;
    struct fx_conn c[FX_MAX_CONNS]; /* index = connection id */
    unsigned char rnd;
    struct buf log;
    struct log_sink sink;
    uint64_t now;
    int starttls_rc;     /* what env->starttls answers (0: TLS starts) */
    char taken[1 << 16]; /* the last fx_take result */
    char expect[1024];   /* scratch for fx_hdr */
};

static inline int fx_send(void *ud, uint64_t conn, const char *data, size_t len)
{
    struct fx *fx = ud;
    struct fx_conn *c = &fx->c[conn % FX_MAX_CONNS];

    /* As the real edge (conn_send): a connection srv asked to close takes
     * no more bytes. */
    if (c->closes) {
        c->late_sends++;
        return XE_CLOSED;
    }
    if (c->fail_send)
        return XE_BUSY;
    return buf_append(&c->out, data, len);
}

static inline void fx_close(void *ud, uint64_t conn)
{
    struct fx *fx = ud;

    fx->c[conn % FX_MAX_CONNS].closes++;
}

static inline int fx_starttls(void *ud, uint64_t conn)
{
    struct fx *fx = ud;

    fx->c[conn % FX_MAX_CONNS].starttls++;
    return fx->starttls_rc;
}

/* fx_pause_read records the shaper's requests (the transcripts keep
 * feeding whatever they want: srv must cope with bytes read before the
 * edge stopped). */
static inline void fx_pause_read(void *ud, uint64_t conn, bool paused)
{
    struct fx *fx = ud;
    struct fx_conn *c = &fx->c[conn % FX_MAX_CONNS];

    c->paused = paused;
    if (paused)
        c->pauses++;
    else
        c->resumes++;
}

static inline void fx_random(void *ud, void *buf, size_t len)
{
    struct fx *fx = ud;
    unsigned char *p = buf;

    for (size_t i = 0; i < len; i++)
        p[i] = fx->rnd++;
}

static inline void fx_logw(void *ud, enum log_level level, const char *line)
{
    struct fx *fx = ud;

    buf_puts(&fx->log, line);
    buf_puts(&fx->log, "\n");
}

/* fx_submit: where the fixtures fx_start makes hand the writes srv lists
 * for the Raft log (NULL: srv takes no writes, cfg.roster_writes off); a
 * test that plays the Raft log sets it before fx_start (ud is the fx) and
 * calls fx_take_submits as the edge does after its srv calls. */
static int (*fx_submit)(void *ud, const void *cmd, size_t len, uint64_t token);
/* fx_wall: env.wall_ms of the fixtures fx_start makes (NULL: none). */
static uint64_t (*fx_wall)(void *ud);

/* fx_start creates srv for example.com (node n1) with call bridges cb1
 * (secret "secret1") and cb2 ("secret2").  cfg may be NULL for defaults;
 * its domain and node name are overridden. */
static inline int fx_start(struct fx *fx, const struct srv_config *cfg)
{
    struct srv_config c;
    struct srv_env env = {0};

    memset(fx, 0, sizeof *fx);
    if (cfg != NULL)
        c = *cfg;
    else
        srv_config_default(&c);
    c.domain = "example.com";
    c.node_name = "n1";
    fx->sink.level = LOG_DEBUG;
    fx->sink.write = fx_logw;
    fx->sink.ud = fx;
    env.ud = fx;
    env.send = fx_send;
    env.close = fx_close;
    env.random = fx_random;
    env.starttls = fx_starttls;
    env.pause_read = fx_pause_read;
    c.roster_writes = fx_submit != NULL;
    env.wall_ms = fx_wall;
    env.log = &fx->sink;
    if (srv_new(&c, &env, &fx->srv) != 0)
        return -1;
    /* srv_new drew its fake SCRAM key; stream ids start at 00 again. */
    fx->rnd = 0;
    if (srv_set_callbridge(fx->srv, "cb1", (const unsigned char *)"secret1", 7) != 0 ||
        srv_set_callbridge(fx->srv, "cb2", (const unsigned char *)"secret2", 7) != 0)
        return -1;
    return 0;
}

/* fx_take_submits takes the writes srv listed since the last take and
 * hands each to fx_submit; one it refuses is answered at once
 * (srv_submit_done), as the edge does. */
static inline void fx_take_submits(struct fx *fx)
{
    struct srv_update u;

    srv_take(fx->srv, &u);
    for (size_t i = 0; i < u.nsubmits; i++) {
        int rc = fx_submit != NULL ? fx_submit(fx, u.submits[i].cmd, u.submits[i].len,
                                               u.submits[i].token)
                                   : XE_STATE;
        if (rc < 0)
            srv_submit_done(fx->srv, u.submits[i].token, rc, fx->now);
    }
}

static inline void fx_stop(struct fx *fx)
{
    srv_free(fx->srv);
    for (int i = 0; i < FX_MAX_CONNS; i++) {
        CHECK_INT(fx->c[i].late_sends, 0);
        CHECK(fx->c[i].closes <= 1);
        buf_free(&fx->c[i].out);
    }
    buf_free(&fx->log);
}

/* fx_next_sid writes the hex of the next 16 bytes fx_random will give: the
 * stream id of the next stream srv opens. */
static inline void fx_next_sid(const struct fx *fx, char sid[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(sid + 2 * i, 3, "%02x", (unsigned char)(fx->rnd + i));
}

/* fx_open_kind opens connection conn on listener kind from
 * 127.0.0.1:4000<conn>. */
static inline void fx_open_kind(struct fx *fx, uint64_t conn, enum srv_listener kind)
{
    char peer[64];

    fx_next_sid(fx, fx->c[conn].sid);
    snprintf(peer, sizeof peer, "127.0.0.1:4000%u", (unsigned)conn);
    CHECK_INT(srv_conn_open(fx->srv, conn, kind, peer, fx->now), 0);
}

/* fx_open opens connection conn from 127.0.0.1:4000<conn>. */
static inline void fx_open(struct fx *fx, uint64_t conn)
{
    char peer[64];
    unsigned char id[16];

    for (int i = 0; i < 16; i++)
        id[i] = (unsigned char)(fx->rnd + i);
    for (int i = 0; i < 16; i++)
        snprintf(fx->c[conn].sid + 2 * i, 3, "%02x", id[i]);
    snprintf(peer, sizeof peer, "127.0.0.1:4000%u", (unsigned)conn);
    CHECK_INT(srv_conn_open(fx->srv, conn, SRV_LISTENER_COMPONENT, peer, fx->now), 0);
}

static inline void fx_in(struct fx *fx, uint64_t conn, const char *s)
{
    srv_conn_input(fx->srv, conn, s, strlen(s), fx->now);
}

/* fx_in_bytewise feeds s one byte per call. */
static inline void fx_in_bytewise(struct fx *fx, uint64_t conn, const char *s)
{
    for (; *s; s++)
        srv_conn_input(fx->srv, conn, s, 1, fx->now);
}

/* fx_take returns (in fx->taken) and forgets what conn was sent so far. */
static inline const char *fx_take(struct fx *fx, uint64_t conn)
{
    struct buf *b = &fx->c[conn].out;
    size_t n = b->len < sizeof fx->taken - 1 ? b->len : sizeof fx->taken - 1;

    if (n)
        memcpy(fx->taken, b->data, n);
    fx->taken[n] = '\0';
    buf_reset(b);
    return fx->taken;
}

/* fx_hdr returns the server header expected on conn, from from, optionally
 * followed by tail. */
static inline const char *fx_hdr(struct fx *fx, uint64_t conn, const char *from,
                                 const char *tail)
{
    snprintf(fx->expect, sizeof fx->expect, FX_HDR_PREFIX "%s' id='%s'>%s", from,
             fx->c[conn].sid, tail != NULL ? tail : "");
    return fx->expect;
}

/* fx_digest computes hex(SHA-1(id + secret)) the way a component does. */
static inline void fx_digest(const char *id, const char *secret, char hex[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, id, strlen(id));
    EVP_DigestUpdate(ctx, secret, strlen(secret));
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < n && i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* fx_handshake sends <handshake> for conn's stream id and secret. */
static inline void fx_handshake(struct fx *fx, uint64_t conn, const char *secret)
{
    char hex[41], msg[128];

    fx_digest(fx->c[conn].sid, secret, hex);
    snprintf(msg, sizeof msg, "<handshake>%s</handshake>", hex);
    fx_in(fx, conn, msg);
}

/* fx_auth opens conn and authenticates it as <name>.example.com, checking
 * the exact transcript; returns whether it worked. */
static inline bool fx_auth(struct fx *fx, uint64_t conn, const char *name,
                           const char *secret)
{
    char open[256], domain[128];

    snprintf(domain, sizeof domain, "%s.example.com", name);
    snprintf(open, sizeof open,
             "<stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
             domain);
    fx_open(fx, conn);
    fx_in(fx, conn, open);
    fx_handshake(fx, conn, secret);
    fx_take(fx, conn);
    CHECK_STR(fx->taken, fx_hdr(fx, conn, domain, "<handshake/>"));
    return strcmp(fx->taken, fx->expect) == 0 && fx->c[conn].closes == 0;
}

/* fx_log_has tells whether the captured log contains s. */
static inline bool fx_log_has(const struct fx *fx, const char *s)
{
    return fx->log.data != NULL && strstr(fx->log.data, s) != NULL;
}

#endif
