/* srv_int.h: the inside of struct srv, shared by srv.c, srv_c2s.c,
 * srv_cluster.c and the session modules (sess.c, sess_comp.c, sess_c2s.c).
 * Not part of the API: the edge uses srv.h only.
 *
 * Ownership: srv owns every session of either kind (in conns until closed,
 * then in dead until reaped at the end of the srv_* call that closed it:
 * nothing is freed inside its own callback), the router table, the table of
 * bound client sessions per account, the call-bridge secrets and the fake
 * SCRAM key.  The accounts (cl_state) are borrowed. */
#ifndef XMPPD_SRV_INT_H
#define XMPPD_SRV_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "htab.h"
#include "minute.h"
#include "rt.h"
#include "scram.h"
#include "srv.h"
#include "ws.h"

struct cl_state;
struct sess;
struct sess_c2s;
struct sess_comp;
struct srv_acct;
struct srv_cluster;
struct srv_drain;
struct srv_rop;
struct srv_thr;
struct srv_wsp;

/* A call bridge: name (one lower-case LDH label) and its shared secret, held
 * in sodium_malloc memory and wiped on release. */
struct srv_cb {
    char *name;
    unsigned char *secret; /* sodium_malloc'd, len bytes (at least 1) */
    size_t len;
    struct srv_cb *next;
};

/* SRV_SESS returns the session whose link l is in srv->conns. */
#define SRV_SESS(l) HTAB_ENTRY(l, struct sess, hlink)

struct srv {
    struct srv_config cfg; /* domain and node_name point at the copies below */
    char *domain;          /* prepared (lower case) */
    char *node_name;
    struct srv_env env;
    struct rt *rt;
    /* framer limits before authentication (from cfg.preauth_stanza_bytes) */
    struct xs_limits preauth;

    struct htab conns; /* sessions by connection id (sess.hlink; SRV_SESS) */
    struct sess *dead; /* closed, waiting to be freed (dnext) */

    /* Clients (srv_c2s.c): bound sessions per account, chained per
     * account by sess_c2s.anext; accounts hashed by name. */
    struct htab accts; /* srv_acct by name (srv_c2s.c); no buckets until one */
    size_t nclients;   /* bound client sessions */
    const struct cl_state *accounts; /* borrowed (srv_set_accounts); NULL: none */
    unsigned char *fake_key;         /* sodium_malloc'd, 32 bytes: SCRAM's
                                        answer for unknown users; its first
                                        16 key each stream's expat hash salt
                                        (sess.c) */
    struct scram_algs *scram_algs;   /* owned; lent to each SCRAM exchange
                                        (scram.h); NULL: fetched per use */
    struct srv_rop *rops;            /* roster writes submitted (srv_c2s.c) */
    uint64_t rop_token;              /* the last token listed to submit */
    /* The update being listed and the one the edge took last (srv_take);
     * each cmd is owned. */
    struct srv_subs {
        struct srv_submit *a;
        size_t n, cap;
    } subs, taken;
    struct htab thr;      /* failed-login counts (srv_throttle.c); no buckets until one */
    struct htab lastpres; /* last unavailable presence per account (srv_lastpres.c) */
    struct srv_thr_sub *thr_subs; /* LOGIN entries submitted, not applied yet */
    unsigned thr_nsubs;           /* entries in thr_subs */
    uint64_t thr_unshared;        /* failures not sent to the cluster (bounds) */

    struct srv_cb *cbs;
    struct buf out;    /* scratch for serialising */
    uint64_t now_ms;   /* the latest time handed in */
    uint64_t hint;     /* no session deadline is earlier than this */
    uint64_t ping_seq; /* ids of server pings */
    struct srv_stats stats;
    struct minute logins_minute;   /* client logins, last 60 s */
    struct minute failures_minute; /* failed ones */
    size_t npaused;                /* connections paused by the shaper */
    struct srv_cluster *cl;        /* cluster mode (srv_cluster.c); NULL standalone */

    /* WebSocket transport (srv_ws.c) */
    const struct ws_config *ws_cfg;  /* what connections read: ws_base or &ws_own */
    const struct ws_config *ws_base; /* borrowed (srv_set_ws_config), or &ws_default */
    struct ws_config ws_default;
    struct ws_config ws_own; /* ws_base with urls = ws_urls, once links are set */
    char **ws_urls;          /* owned (srv_set_ws_links); NULL: none set */
    size_t nws_urls;
    struct srv_wsp *parked; /* closed sessions' WebSockets, closing */
    struct buf ws_in;       /* stream bytes of the step being applied */
    uint64_t ws_pending;    /* WebSocket sessions before their HTTP response */

    struct srv_drain *drain; /* draining (srv_drain.c); NULL: serving */
};

/* SRV_LOG logs one line prefixed with the node name (the sink may be NULL). */
#define SRV_LOG(srv, lvl, fmt, ...)                                                      \
    LOG((srv)->env.log, lvl, "%s " fmt, (srv)->node_name, __VA_ARGS__)

/* srv__send writes len bytes to s's connection.  On failure the session is
 * closed (without a stream error: the connection cannot take one) and a
 * negative code returned; the caller must stop using s for output. */
int srv__send(struct srv *srv, struct sess *s, const char *data, size_t len);

/* srv__each calls fn on every open session; fn may close the session it
 * is given (and only that one). */
void srv__each(struct srv *srv, void (*fn)(struct srv *, struct sess *));

/* srv__close asks the edge to close s's connection (after flushing), drops
 * s from the router and the connection table and queues it for freeing.
 * The only way to CLOSED and to the dead list: a session already closed is
 * left alone, so a session is closed (and freed) once whatever paths try. */
void srv__close(struct srv *srv, struct sess *s);

/* srv__reap frees the sessions closed during this call (never inside their
 * own processing: every public entry reaps on its way out); a client's
 * unavailable presence goes out here (srv__c2s_gone). */
void srv__reap(struct srv *srv);

/* srv__submit lists roster write cmd (len bytes, taken: freed here on
 * failure) with token for the edge (srv_take).  0, XE_STATE (the edge
 * takes no roster writes: cfg.roster_writes) or XE_NOMEM. */
int srv__submit(struct srv *srv, void *cmd, size_t len, uint64_t token);

/* srv__find_cb returns the call bridge called name (borrowed) or NULL. */
const struct srv_cb *srv__find_cb(const struct srv *srv, const char *name);

/* srv__authenticated registers s (now authenticated as s->domain) in the
 * router; a session that held the name before is closed with conflict
 * (DESIGN: the new session wins).  0/XE_NOMEM. */
int srv__authenticated(struct srv *srv, struct sess_comp *s);

/* srv__route routes stanza st (taken) sent by READY session from, whose
 * 'from' the session has checked or stamped (a client's stanza may have no
 * 'to': handled on behalf of its account, RFC 6120 §10.3). */
void srv__route(struct srv *srv, struct sess *from, struct stz *st);

/* srv__nomem_reply answers st (borrowed), which session from sent and
 * which could not be handled for want of memory, with a wait/resource-
 * constraint error (RFC 6120 §8.3.3.18) when it may be answered, so that
 * the sender is not left waiting; logs it either way. */
void srv__nomem_reply(struct srv *srv, struct sess *from, const struct stz *st);

/* srv__reply writes st (borrowed: an answer made by the server) to s; a
 * stanza error counts as a bounce. */
void srv__reply(struct srv *srv, struct sess *s, const struct stz *st);

/* srv__touch lowers the deadline hint to s's next deadline. */
void srv__touch(struct srv *srv, const struct sess *s);

/* ---- failed-login throttling (srv_throttle.c; srv.h srv_config) ----
 *
 * srv__thr_check tells whether a login from peer (its address, port
 * ignored) for user (NULL: not known yet) is refused now (blocked).
 * srv__thr_failed counts a failure for both and returns how long its
 * answer must wait (0: at once).  srv__thr_success clears both counts.
 * srv__thr_sweep forgets quiet counts (srv_tick); srv__thr_blocked counts
 * the blocked keys now; srv__thr_free frees the table. */
bool srv__thr_check(struct srv *srv, const char *peer, const char *user);
uint64_t srv__thr_failed(struct srv *srv, const char *peer, const char *user);
void srv__thr_success(struct srv *srv, const char *peer, const char *user);
void srv__thr_sweep(struct srv *srv);
uint64_t srv__thr_blocked(const struct srv *srv);
void srv__thr_free(struct srv *srv);
/* srv__thr_submit_done: env.submit's answer for token, when it is not a
 * roster write's: true when it was one of the throttle's LOGIN entries (a
 * failure was counted here already).  Failed: forgotten now; answered 0 or
 * XE_TIMEOUT before it was applied here: kept until it is, so that it is
 * not counted twice (srv_throttle.c). */
bool srv__thr_submit_done(struct srv *srv, uint64_t token, int rc);

/* ---- the byte-rate shaper of client connections (srv.c) ----
 *
 * srv__shape counts len bytes just read from client s against its budget
 * (before or after authentication) and pauses its reading when over.
 * srv__shape_resume asks the edge to read s again if it is paused (at
 * its time, or before s closes). */
void srv__shape(struct srv *srv, struct sess_c2s *c, size_t len);
void srv__shape_resume(struct srv *srv, struct sess_c2s *c);

/* ---- clients (srv_c2s.c) ----
 *
 * srv__bind registers client c (authenticated as c->user, resource
 * c->resource chosen) under its account; a session of the same full JID is
 * closed with conflict (RFC 6120 §7.7.2.2, §4.9.3.3: the new one wins).
 * 0/XE_NOMEM.
 * srv__c2s_unbind removes c from its account (srv__close calls it).
 * srv__c2s_gone runs when closed c is reaped: if it was available, its
 * unavailable presence goes to the account's other resources (RFC 6121
 * §4.5.2; may close them, onto the dead list).
 * srv__c2s_route routes st (taken) from from to local account address to
 * (prepared; a bare or full JID of the server's domain), RFC 6121 §8.5.
 * srv__c2s_own handles st (taken) that client c sent without 'to' or to its
 * own bare JID: presence broadcast (RFC 6121 §4.2, §4.4), iq on behalf of
 * the account, messages to the bare JID.
 * srv__c2s_free frees the account table (sessions are freed by srv). */
int srv__bind(struct srv *srv, struct sess_c2s *c);
void srv__c2s_unbind(struct srv *srv, struct sess_c2s *c);
void srv__c2s_gone(struct srv *srv, struct sess_c2s *c);
struct jid;
void srv__c2s_route(struct srv *srv, struct sess *from, const struct jid *to,
                    struct stz *st);
void srv__c2s_own(struct srv *srv, struct sess_c2s *c, struct stz *st);
/* srv__c2s_directed notes stanza st (borrowed) that client c sends, before
 * it is routed: RFC 6121 §4.6.2 directed available presence remembers its
 * address, directed unavailable forgets it; anything else is ignored. */
void srv__c2s_directed(struct srv *srv, struct sess_c2s *c, const struct stz *st);
void srv__c2s_free(struct srv *srv);
/* srv__c2s_cluster_probe: a stanza (xml, len bytes, as another node's srv
 * serialized it) from `from` arrives for local session s: a presence probe
 * (RFC 6121 §4.3.2) is answered here with the presence of s's account's
 * sessions on this node and not delivered (true); anything else is left
 * to the caller (false). */
bool srv__c2s_cluster_probe(struct srv *srv, struct sess *s, const char *from,
                            const char *xml, size_t len);
/* srv__c2s_find returns the bound session of full JID user@domain/resource
 * (user and resource prepared), or NULL. */
struct sess_c2s *srv__c2s_find(const struct srv *srv, const char *user,
                               const char *resource);
/* srv__c2s_sessions counts the sessions account user has, bound on this
 * node and (cluster mode) in the routing table on other nodes, leaving
 * out full JID user@domain/resource (the one a bind would replace). */
size_t srv__c2s_sessions(const struct srv *srv, const char *user, const char *resource);

/* ---- WebSocket transport (srv_ws.c; docs/websocket.md) ----
 *
 * srv__ws_open makes the client session of a new WebSocket connection
 * (its ws_conn in s->ws, reading the HTTP request).  0/XE_NOMEM.
 * srv__ws_input feeds bytes read from s's connection through its ws_conn
 * (the stream bytes to sess_input; may close s).
 * srv__ws_send is srv__send for s: through ws_send, then to the edge.
 * 0 or a negative code (XE_CLOSED: the WebSocket is closing).
 * srv__ws_release takes s->ws when s closes: with tell_edge, the closing
 * handshake starts and the ws_conn is parked until it ends (then
 * env->close); without, it is freed (the edge reported the connection
 * gone).
 * srv__ws_tick_one runs s's ws_conn timers when due (handshake timeout).
 * srv__ws_parked_input / _parked_gone: bytes for, or the end of, a
 * connection whose session is closed.  srv__ws_tick / srv__ws_deadline:
 * the parked ones' timers.  srv__ws_parked_count: how many are parked.
 * srv__ws_free frees them (no env calls). */
int srv__ws_open(struct srv *srv, uint64_t conn, const char *peer, struct sess **out);
void srv__ws_input(struct srv *srv, struct sess *s, const void *data, size_t len);
int srv__ws_send(struct srv *srv, struct sess *s, const char *data, size_t len);
void srv__ws_release(struct srv *srv, struct sess *s, bool tell_edge);
void srv__ws_tick_one(struct srv *srv, struct sess *s);
void srv__ws_parked_input(struct srv *srv, uint64_t conn, const void *data, size_t len);
void srv__ws_parked_gone(struct srv *srv, uint64_t conn);
void srv__ws_tick(struct srv *srv);
uint64_t srv__ws_deadline(const struct srv *srv);
size_t srv__ws_parked_count(const struct srv *srv);
void srv__ws_free(struct srv *srv);
/* srv__ws_sync points ws_cfg at ws_base, or at ws_own (ws_base with the
 * links' URLs) once srv_set_ws_links was called. */
void srv__ws_sync(struct srv *srv);
/* srv__ws_links_free frees the links' URLs (srv_ws_links.c). */
void srv__ws_links_free(struct srv *srv);

/* ---- last unavailable presence (srv_lastpres.c; RFC 6121 §4.3.2) ----
 *
 * srv__lastpres_left keeps the record of user's resource that went
 * unavailable (st: its unavailable presence, borrowed, for the <status/>;
 * NULL: none, a lost connection) and shares it with the cluster.
 * srv__lastpres_reply makes the answer to a probe from to (borrowed) for
 * user: presence unavailable from the full JID that last left, with its
 * status and a XEP-0203 delay (returned owned), or NULL when none is kept.
 * srv__lastpres_forget drops user's record (the account was deleted);
 * records are kept only for accounts that exist.  srv__lastpres_free frees
 * the table. */
#define SRV_LASTPRES_STATUS 1024 /* status bytes kept (longer: none) */
void srv__lastpres_left(struct srv *srv, const char *user, const char *resource,
                        const struct stz *st);
struct stz *srv__lastpres_reply(const struct srv *srv, const char *user, const char *to);
void srv__lastpres_forget(struct srv *srv, const char *user);
void srv__lastpres_free(struct srv *srv);

/* srv_cluster__shared tells whether srv is in a cluster of more than one
 * member (what one node writes to the log concerns others) whose other
 * members all apply the login and last-presence entries
 * (srv_cluster_set_soft_entries). */
bool srv_cluster__shared(const struct srv *srv);
/* srv_cluster__self: this node's id in cluster mode, else 0. */
uint64_t srv_cluster__self(const struct srv *srv);

/* Cluster hooks (srv_cluster.c); each is a no-op when srv->cl is NULL.
 * None of them may run inside a fwd callback except where noted.
 *
 * srv_cluster__authenticated gives s (just authenticated) its sid and
 * reports it to the leader.  0/XE_NOMEM.
 * srv_cluster__bound does the same for client c (just bound), by its
 * full JID.
 * srv_cluster__gone reports that s (reported, now closed) is gone.
 * srv_cluster__forward hands st (borrowed), sent by from, to the cluster,
 * routed by its 'to' or, when via is not NULL, by via (a full JID);
 * if the cluster refuses it, answers from with wait/resource-constraint
 * (when st may be answered with an error).
 * srv_cluster__waiting tells whether stanzas to st's destination still
 * wait in fwd (then st goes through fwd too, to keep their order).
 * srv_cluster__free frees the cluster state (no callbacks).
 * srv_cluster__tick runs fwd's timers; srv_cluster__deadline is fwd's
 * next deadline or SRV_NO_DEADLINE. */
int srv_cluster__authenticated(struct srv *srv, struct sess_comp *s);
int srv_cluster__bound(struct srv *srv, struct sess_c2s *c);
void srv_cluster__gone(struct srv *srv, struct sess *s);
bool srv_cluster__waiting(const struct srv *srv, const struct stz *st);
void srv_cluster__forward(struct srv *srv, struct sess *from, const struct stz *st,
                          const char *via);
/* srv_cluster__remote_sessions counts the full JIDs of account user that
 * the routing table puts on other nodes, leaving out skip (a full JID, or
 * NULL); 0 when not in cluster mode. */
size_t srv_cluster__remote_sessions(const struct srv *srv, const char *user,
                                    const char *skip);
/* srv_cluster__presence reports client c's availability and priority
 * (after a presence change) to the leader: its table entry is updated on
 * every member, keeping its order (fwd_local_set_attr).
 * srv_cluster__each_remote calls fn for every client entry of account
 * user that the routing table puts on another node (e borrowed for the
 * call: full JID, node, attributes); fn must not call fwd.
 * srv_cluster__held tells whether a node holds name (exact) in the table;
 * srv_cluster__complete whether this node's table is whole
 * (fwd_routes_complete). */
struct pframe_route;
void srv_cluster__presence(struct srv *srv, struct sess_c2s *c);
void srv_cluster__each_remote(const struct srv *srv, const char *user,
                              void (*fn)(void *ud, const struct pframe_route *e),
                              void *ud);
bool srv_cluster__held(const struct srv *srv, const char *name);
bool srv_cluster__complete(const struct srv *srv);
/* srv_cluster__room tells whether a session of name may be opened here:
 * always on one node; in cluster mode while the node holds fewer names
 * than the routing table takes from one node (fwd_local_room). */
bool srv_cluster__room(const struct srv *srv, const char *name);
void srv_cluster__free(struct srv *srv);
void srv_cluster__tick(struct srv *srv);
uint64_t srv_cluster__deadline(const struct srv *srv);

/* srv__ws_redirect closes WebSocket session s with RFC 7395 §3.6.1
 * <close see-other-uri='uri'/> (uri borrowed), then the closing handshake;
 * the session writes nothing more.  Before the upgrade: 503. */
void srv__ws_redirect(struct srv *srv, struct sess *s, const char *uri);

/* ---- draining (srv_drain.c; srv.h srv_drain) ----
 *
 * srv__drain_opening: s is not READY and has input while srv drains: it
 * is sent to another member (true: s is closed; the caller drops the
 * input), or false when srv is not draining.
 * srv__drain_free frees the draining state (srv_free). */
bool srv__drain_opening(struct srv *srv, struct sess *s);
void srv__drain_free(struct srv *srv);

#endif
