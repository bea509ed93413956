/* srv.h: the XMPP node core: every session of this node and the router
 * between them, as one state machine.
 *
 * Sessions are of two kinds: XEP-0114 components (sess_comp.h) and RFC 6120
 * clients (sess_c2s.h, docs/clients.md), chosen by the listener a
 * connection came in on.
 *
 * Bytes and events in, bytes and actions out.  The edge (xmppd/io) accepts
 * connections, gives each a unique id, feeds srv what it reads and carries
 * out what srv asks through struct srv_env: write these bytes to connection
 * N, close connection N, start TLS on connection N, and wake me at time T (the return of
 * srv_tick and of every input call is folded into srv_next_deadline).  srv never blocks,
 * never reads a clock (now_ms is the monotonic time in ms, passed in) and
 * draws randomness only through env->random, so a test can drive it byte by
 * byte and compare transcripts.
 *
 * Events in, an update out (docs/architecture.md, "one convention"): roster
 * writes for the Raft log are listed and the edge takes them after the
 * call (srv_take), so an answer the log gives at once may call srv
 * (srv_submit_done) as a later one does.  The other callbacks stay, and
 * must not call back into srv:
 *  - send: its answer decides within the call (a connection over its
 *    write queue, bounded in bytes by the edge, is closed at once, before
 *    srv writes anything more to it); the edge queues the bytes per
 *    connection and writes each one once after the call already
 *    (conn_send, conn_mgr_flush), so an outbox here would copy every
 *    stanza once more and save no write.
 *  - starttls: its answer decides within the call between <proceed/> and
 *    <failure/> (RFC 6120 §5.4.2.2).
 *  - close and pause_read: orders with no answer, and the edge never calls
 *    srv from them; the transcript tests record them in their order among
 *    the writes, through every srv call they make, so listing them would
 *    move every test onto a take and re-entrancy would gain nothing.  (One
 *    workaround remains: when conn_pause_read cannot read again it closes
 *    without telling srv, and srv learns it from the next failed write.)
 *  - random (an input) and log (an output only).
 * After srv asked env->close(conn) it has forgotten conn: a later
 * srv_conn_input/srv_conn_closed for it is ignored. */
#ifndef XMPPD_SRV_H
#define XMPPD_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logging.h"
#include "xs.h"

#define SRV_NO_DEADLINE UINT64_MAX
#define SRV_DEFAULT_PREAUTH_STANZA_BYTES 4096

enum srv_listener {
    SRV_LISTENER_COMPONENT, /* XEP-0114 jabber:component:accept (5223) */
    SRV_LISTENER_CLIENT,    /* RFC 6120 c2s (5222), jabber:client */
    /* RFC 7395 client sessions over WebSocket (docs/websocket.md): ws
     * (5280, not secured: refused while TLS is required for clients) and
     * wss (5281: the edge runs TLS and calls srv_conn_secured before the
     * first bytes, as for direct TLS).  The same listeners answer the
     * XEP-0156 host-meta GETs. */
    SRV_LISTENER_WEBSOCKET,
    SRV_LISTENER_WEBSOCKET_TLS,
};

/* Failed SASL attempts a client connection may make; the next failure
 * closes the stream (RFC 6120 §6.4.5: a reasonable number of retries). */
#define SRV_C2S_MAX_AUTH_FAILURES 3

struct srv_config {
    const char *domain;       /* the XMPP domain this node serves; copied */
    const char *node_name;    /* short name used in log lines ("n1"); copied */
    uint64_t keepalive_ms;    /* whitespace keep-alive interval; a session that
                                 sent nothing for 3 intervals is closed
                                 (connection-timeout).  Default 60000. */
    uint64_t auth_timeout_ms; /* unauthenticated connections are closed after
                                 this.  Default 10000. */
    struct xs_limits limits;  /* framer limits once authenticated; zero fields
                                 take defaults (xs.h) */
    /* Before authentication a stanza (and the stream header) may take at
     * most preauth_stanza_bytes, and the stream's memory cap follows from it
     * (XS_MEM_CAP): the handshake is all a component sends before it
     * authenticates (XEP-0114 §3).  Default 4096 (0 too); never above
     * limits.max_stanza_bytes. */
    size_t preauth_stanza_bytes;
    /* Clients (RFC 6120).  c2s_tls_required (default true): before TLS a
     * client is offered only STARTTLS (RFC 6120 §5.3.1, mandatory-to-
     * negotiate) and no SASL mechanism.  sasl_plain (default false):
     * offer SASL PLAIN (RFC 4616), only ever under TLS. */
    bool c2s_tls_required;
    bool sasl_plain;
    /* Failed logins, counted per peer address and per
     * account: after the n-th failure in a row the answer to the next one
     * waits login_delay_ms << (n - 1), at most login_delay_max_ms; after
     * login_block_after failures that address or account is refused
     * (temporary-auth-failure, RFC 6120 §6.5.11) for login_block_ms.  A
     * success clears both; a count is forgotten after login_block_ms
     * without failures.  login_delay_ms 0: no delays and no blocks.
     * Defaults 500, 8000, 10, 300000. */
    uint64_t login_delay_ms;
    uint64_t login_delay_max_ms;
    unsigned login_block_after;
    uint64_t login_block_ms;
    /* Sessions per account: a bind that would make
     * more than c2s_max_sessions sessions of one account, counted on this
     * node and, in cluster mode, in the routing table, is refused with
     * resource-constraint (RFC 6120 §7.6.2.1).  0: no limit.  Default
     * 10. */
    unsigned c2s_max_sessions;
    /* Byte-rate shaper per client connection (TCP and WebSocket; bytes as
     * read, before the framer): c2s_rate bytes per second with bursts of
     * c2s_burst once authenticated, c2s_preauth_rate and
     * c2s_preauth_burst before.  Over budget, srv asks the edge to stop
     * reading (env.pause_read) until the budget is back.  A rate of 0: no
     * shaping.  Defaults 65536, 262144, 8192, 16384. */
    uint64_t c2s_rate, c2s_burst;
    uint64_t c2s_preauth_rate, c2s_preauth_burst;
    /* XEP-0092 software version: the version this server tells (an iq get
     * jabber:iq:version to the domain answers name xmppd and it, never
     * the OS), copied; NULL (the default): not offered, answered with
     * service-unavailable and not in disco#info. */
    const char *version;
    /* roster_writes: the edge hands the roster writes srv lists
     * (srv_update.submits) to the Raft log.  false (the default): roster
     * writes are refused (internal-server-error). */
    bool roster_writes;
};

/* srv_config_default fills c with the defaults (domain NULL). */
void srv_config_default(struct srv_config *c);

struct srv_env {
    void *ud;
    /* send queues len bytes (copied) for writing to conn.  Returns 0, or a
     * negative XE_ code when the connection cannot take more (srv then
     * closes it). */
    int (*send)(void *ud, uint64_t conn, const char *data, size_t len);
    /* close flushes what was queued for conn, then closes it. */
    void (*close)(void *ud, uint64_t conn);
    /* random fills buf with len unpredictable bytes (stream ids, SCRAM nonces, resources,
     * keys). */
    void (*random)(void *ud, void *buf, size_t len);
    /* wall_ms: the wall clock, ms since the epoch (the XEP-0203 stamp of a
     * stored last unavailable presence).  May be NULL: no stamp. */
    uint64_t (*wall_ms)(void *ud);
    const struct log_sink *log; /* may be NULL */
    /* starttls: srv queued <proceed/> on conn and wants TLS: the edge writes
     * everything queued for conn so far in plaintext, then runs a server TLS
     * handshake on conn; bytes read afterwards are the TLS plaintext; when
     * the handshake is done the edge calls srv_conn_secured (a failed
     * handshake ends in srv_conn_closed).  0, or a negative code when this
     * listener has no TLS (srv then answers <failure/> and closes, RFC 6120
     * §5.4.2.2).  May be NULL: no STARTTLS is offered. */
    int (*starttls)(void *ud, uint64_t conn);
    /* pause_read (the byte-rate shaper): paused true: stop reading conn
     * (what was already read may still be handed in); false: read it
     * again.  srv resumes a connection itself (at the srv_tick of the
     * time its budget is back) and before it asks to close it.  May be
     * NULL: no shaping. */
    void (*pause_read)(void *ud, uint64_t conn, bool paused);
};

/* What the edge tells srv about a connection's TLS (srv_conn_secured). */
struct srv_tls_info {
    bool tls13;
    unsigned char exporter[32]; /* RFC 9266 (TLS 1.3 only), else 0 */
    size_t exporter_len;
    unsigned char endpoint[64]; /* RFC 5929 §4.1 cert hash, else 0 */
    size_t endpoint_len;
};

struct srv;
struct cl_state;
struct ws_config;

/* srv_new creates the core.  cfg and env are copied (env->log is borrowed
 * and must outlive srv).  Returns 0, XE_INVAL (no or bad domain) or
 * XE_NOMEM. */
int srv_new(const struct srv_config *cfg, const struct srv_env *env, struct srv **out);
/* srv_free frees everything without calling env (use srv_shutdown first for
 * a clean close). */
void srv_free(struct srv *srv);

/* A roster write for the Raft log: an encoded replicated command (repl.h:
 * cmd, len bytes); token names it.  Once it is applied on this node, or
 * failed, the edge calls srv_submit_done(token, rc), also when the log
 * refuses it at once. */
struct srv_submit {
    const void *cmd;
    size_t len;
    uint64_t token;
};

/* What srv asks of the edge after a call (srv_take). */
struct srv_update {
    const struct srv_submit *submits; /* in order */
    size_t nsubmits;
};

/* srv_take hands the edge what the srv calls since the last take listed
 * (u->nsubmits 0: nothing) and starts a new list.  It stays valid, srv's,
 * until the next srv_take or srv_free, so the edge may call srv while it
 * carries it out (what those calls list goes to the next take: take
 * again until it is empty).  Call it after every srv call (the edge's
 * node__after_srv). */
void srv_take(struct srv *srv, struct srv_update *u);

/* srv_set_callbridge adds call bridge name (authenticating as the component
 * <name>.<domain>) with secret (len bytes, copied into sodium-guarded
 * memory), or replaces its secret; a connected session of a call bridge
 * whose secret changed is closed (not-authorized).  Returns 0, XE_INVAL (bad
 * name) or XE_NOMEM. */
int srv_set_callbridge(struct srv *srv, const char *name, const unsigned char *secret,
                       size_t len);
/* srv_del_callbridge removes name and closes its session; XE_NOTFOUND if
 * unknown. */
int srv_del_callbridge(struct srv *srv, const char *name);

/* srv_callbridge_connected tells whether call bridge name has an
 * authenticated session on this node (srv is only read). */
bool srv_callbridge_connected(const struct srv *srv, const char *name);

/* srv_set_client_limits takes, from now on, the client limits of cfg
 * (borrowed; its other fields are ignored): c2s_max_sessions (binds from
 * now on), the four shaper fields (bytes from now on) and version.
 * Sessions stay.  0/XE_NOMEM (then nothing changed). */
int srv_set_client_limits(struct srv *srv, const struct srv_config *cfg);

/* srv_conn_open registers a new accepted connection.  peer is the remote
 * address for logs ("127.0.0.1:40312"), copied.  Returns 0 or XE_NOMEM (the
 * edge then closes the socket), XE_EXISTS if conn is already known. */
int srv_conn_open(struct srv *srv, uint64_t conn, enum srv_listener kind,
                  const char *peer, uint64_t now_ms);
/* srv_make_room: the edge is at max-connections with a new connection
 * waiting.  srv closes the oldest session that has not logged in (any
 * kind, still negotiating: SESS_OPENING) with the stream error
 * resource-constraint (RFC 6120 §4.9.3.17) and returns true; false when
 * every session has logged in (the edge then refuses the new one).  Idle
 * connections, renewed at each auth timeout from a few addresses, would
 * otherwise keep every client and call bridge out. */
bool srv_make_room(struct srv *srv, uint64_t now_ms);
/* srv_conn_input feeds bytes read from conn. */
void srv_conn_input(struct srv *srv, uint64_t conn, const void *data, size_t len,
                    uint64_t now_ms);
/* srv_conn_closed tells srv the peer closed conn or the edge failed on it;
 * srv drops the session without writing to it. */
void srv_conn_closed(struct srv *srv, uint64_t conn, uint64_t now_ms);

/* srv_conn_secured: TLS is up on conn: after env->starttls, or for a
 * direct-TLS connection before its first bytes.  info is copied.  Unknown
 * or closed conn: ignored. */
void srv_conn_secured(struct srv *srv, uint64_t conn, const struct srv_tls_info *info,
                      uint64_t now_ms);

/* srv_set_ws_config: the policy and limits of the WebSocket listeners
 * (ws.h: path, limits, origins, trusted proxies, host-meta URLs), borrowed
 * until replaced or srv_free and read at each new connection and request
 * (the caller may change its fields between srv calls, e.g. the URLs as
 * members come and go).  NULL: the defaults (ws_config_default). */
void srv_set_ws_config(struct srv *srv, const struct ws_config *cfg);

/* One member of the Raft configuration, for srv_set_ws_links. */
struct srv_ws_member {
    const char *address; /* its peer-link address: "host:port", "[v6]:port" */
    bool voter;          /* a voting member (learners are not named) */
    bool self;           /* this node */
};

/* What host-meta names (XEP-0156 §3; docs/websocket.md "Discovery across
 * the cluster").  All borrowed for the call only. */
struct srv_ws_links {
    const char *const *listen; /* this node's listen hosts (xmpp listen) */
    size_t nlisten;
    const struct srv_ws_member *members; /* the Raft configuration; */
    size_t nmembers;                     /* none when not clustered */
    unsigned wss_port;                   /* 0: no wss URLs */
    unsigned ws_port;                    /* 0: no ws URLs */
    const char *path;                    /* the WebSocket path, e.g. /xmpp-websocket */
};

/* srv_set_ws_links sets the URL list host-meta serves from now on, copied
 * (connections already open read the new one at their request): for this
 * node's listen hosts first (a wildcard address becomes the XMPP domain),
 * then for each other voting member the host of its peer address, each
 * with the same ports and path as this node (the WebSocket settings are
 * node-local and a node does not know another's: the cluster is expected
 * to use the same ones everywhere).  Per host the wss URL comes before
 * the ws one; IPv6 hosts are bracketed (RFC 3986 §3.2.2); a host named
 * twice is listed once; a member address that does not parse is skipped.
 * Overrides the urls of the config given to srv_set_ws_config.  Returns 0
 * or XE_NOMEM (the previous list stays). */
int srv_set_ws_links(struct srv *srv, const struct srv_ws_links *l);

/* srv_ws_urls returns the URL list host-meta serves (borrowed, valid until
 * the next srv_set_ws_links or srv_set_ws_config) and its length in *n. */
const char *const *srv_ws_urls(const struct srv *srv, size_t *n);

/* srv_set_accounts: the replicated state to read client accounts from
 * (xmppd/core/repl.h: cl_user_find gives SCRAM salt/iterations/StoredKey/
 * ServerKey per hash), borrowed until replaced or srv_free; NULL: none.
 * Sessions already logged in stay (srv_user_deleted closes them). */
void srv_set_accounts(struct srv *srv, const struct cl_state *cl);

/* srv_user_deleted closes every session of account user on this node with
 * the stream error <not-authorized/> (RFC 6120 §4.9.3.12: the entity is no
 * longer authorized: its account is gone), then </stream:stream>. */
void srv_user_deleted(struct srv *srv, const char *user);

/* srv_submit_done: the write listed with token (srv_take) is applied on
 * this node with cl_apply's result rc (0, XE_STATE: decided on a roster
 * that changed meanwhile, ...), or failed (XE_NOLEADER, XE_TIMEOUT, ...).
 * srv then carries out the write's actions (RFC 6121 §2, §3), or decides
 * again and resubmits after XE_STATE (at most SRV_ROSTER_RETRIES times).
 * An unknown token is ignored. */
#define SRV_ROSTER_RETRIES 4
void srv_submit_done(struct srv *srv, uint64_t token, int rc, uint64_t now_ms);

/* srv_roster_changed: an applied entry changed user's roster entry for the
 * bare JID contact (cl_apply's CL_EFF_ROSTER, on every node): srv pushes
 * the entry as it is now in the cl_state of srv_set_accounts (or a remove)
 * to the user's bound resources on this node (RFC 6121 §2.1.6). */
void srv_roster_changed(struct srv *srv, const char *user, const char *contact,
                        uint64_t now_ms);

/* srv_login_applied: a LOGIN entry (repl.h CL_CMD_LOGIN; cl_apply's
 * CL_EFF_LOGIN) was applied on this node: a client login about name (an
 * account, or a peer address without port, by what) failed, or succeeded
 * after failures, on some node of the cluster.  srv counts it in its
 * throttle as a failure of its own (or clears the count), so that the
 * delays and blocks of srv_config's login_* settings hold for the whole
 * cluster (docs/clients.md "Throttling across the cluster").  An entry
 * this node submitted itself was counted when it happened and is not
 * counted again: origin is the node that wrote it (cl_effects.origin; 0:
 * not known, then an entry about a key this node has one waiting for is
 * taken for its own).  name is borrowed. */
void srv_login_applied(struct srv *srv, uint64_t origin, int what, const char *name,
                       bool failed, uint64_t now_ms);

/* srv_lastpres_applied: a PRES_LAST entry (repl.h; cl_apply's
 * CL_EFF_PRES_LAST) was applied on this node: user's resource went
 * unavailable (with status, "" or NULL: none) at wall_ms (0: unknown) on
 * some node.  srv keeps it as the user's last unavailable presence, the
 * answer to a probe while the user has no available resource (RFC 6121
 * §4.3.2; srv_lastpres.c).  Strings borrowed. */
void srv_lastpres_applied(struct srv *srv, const char *user, const char *resource,
                          const char *status, uint64_t wall_ms);

/* srv_tick runs timers due at now_ms (keep-alives, idle and auth timeouts). */
void srv_tick(struct srv *srv, uint64_t now_ms);
/* srv_next_deadline returns when srv_tick should next run, or
 * SRV_NO_DEADLINE. */
uint64_t srv_next_deadline(const struct srv *srv);

/* srv_shutdown closes every stream cleanly (RFC 6120 §4.4:
 * <stream:error><system-shutdown/> then </stream:stream>) and asks env to
 * close each connection. */
void srv_shutdown(struct srv *srv);

struct srv_stats {
    uint64_t conns;          /* open connections */
    uint64_t components;     /* authenticated component sessions */
    uint64_t routed;         /* stanzas delivered */
    uint64_t bounced;        /* error replies generated for undeliverable stanzas */
    uint64_t auth_failures;  /* failed handshakes */
    uint64_t stream_errors;  /* stream errors sent */
    uint64_t clients;        /* bound client sessions */
    uint64_t logins;         /* successful client SASL logins */
    uint64_t login_failures; /* failed client SASL attempts */
    uint64_t login_refused;  /* attempts refused: address or account blocked */
    uint64_t blocked;        /* now: addresses and accounts blocked */
    uint64_t ws_conns;       /* now: WebSocket connections (any stage, closing
                                handshakes included) */
    uint64_t ws_clients;     /* now: bound client sessions over WebSocket (the
                                other clients are on TCP) */
    uint64_t logins_minute;  /* successful logins in the last 60 s */
    uint64_t login_failures_minute; /* failed ones in the last 60 s */
    uint64_t sessions_refused;      /* binds refused: c2s_max_sessions */
    uint64_t shaper_pauses;         /* times a connection was paused */
    uint64_t paused;                /* now: connections paused by the shaper */
    uint64_t throttled;             /* now: addresses and accounts with recent failed
                                       logins (answers delayed, or blocked) */
    uint64_t redirected;            /* sessions sent to another member (draining) */
    uint64_t ws_pending;            /* now: WebSocket connections before their HTTP
                                       response (ws_config.max_pending) */
    uint64_t ws_busy;               /* WebSocket connections refused: too many
                                       pending (503) */
};

/* One blocked address or account (srv_get_blocked). */
struct srv_blocked {
    bool account;   /* an account (user name), else a peer address */
    char name[256]; /* truncated if longer */
    uint64_t until_ms;
};

/* srv_get_blocked fills out[0..max) with the addresses and accounts whose
 * logins are refused now (login throttling), newest block first, and
 * returns how many it filled (at most max; srv_stats.blocked has the
 * total). */
size_t srv_get_blocked(const struct srv *srv, struct srv_blocked *out, size_t max);

/* srv_get_stats copies srv's counters into *out (caller's memory), with the
 * current connection, component and client counts. */
void srv_get_stats(const struct srv *srv, struct srv_stats *out);

/* ---- draining (docs/cluster.md "Draining a node") ----
 *
 * A draining node serves no XMPP session: srv_drain closes every session
 * with a pointer to another member and then answers every new one the
 * same way, until srv_undrain.  Which member each session is sent to is
 * srv's decision (round robin over the targets that serve its kind, so
 * the sessions spread over the other members); the edge only says where
 * the members are.  RFC 6120 §4.9.3.19: components and TCP clients get
 * the stream error <see-other-host>host:port</see-other-host> (on their
 * first bytes when they connect while draining); WebSocket clients get
 * RFC 7395 §3.6.1 <close see-other-uri='wss://...'/> after the upgrade
 * (host-meta is still answered).  A session whose kind no target serves
 * gets <system-shutdown/>. */

/* One other member, as the sessions are told to reach it.  Strings
 * borrowed by srv_drain (copied); NULL: the member does not serve it. */
struct srv_drain_target {
    uint64_t node;    /* the member's id (logs) */
    const char *comp; /* host:port of its component listener ("10.0.0.2:5223";
                        an IPv6 address in brackets) */
    const char *c2s;  /* host:port of its client listener ("10.0.0.2:5222") */
    const char *wss;  /* its WebSocket URL ("wss://10.0.0.2:5281/xmpp-websocket") */
};

/* srv_drain starts (or, called again, re-targets) draining with the n
 * targets of t (borrowed; copied): every session is closed as above, new
 * ones as they speak.  0, XE_INVAL (n is 0 or a target serves nothing)
 * or XE_NOMEM (then nothing changed). */
int srv_drain(struct srv *srv, const struct srv_drain_target *t, size_t n,
              uint64_t now_ms);
/* srv_undrain ends draining: new sessions are served again. */
void srv_undrain(struct srv *srv);
/* srv_draining tells whether srv is draining. */
bool srv_draining(const struct srv *srv);

/* ---- cluster mode (docs/cluster.md "Routing in the node
 * core") ----
 *
 * Without srv_cluster_start srv is a standalone node, exactly as above.
 * After it, srv owns a struct fwd (fwd.h) and:
 *  - a stanza whose destination is a component connected to this node is
 *    delivered here as before; a stanza to any other name within the
 *    domain goes to fwd_send (to the node holding it); when fwd refuses it
 *    (queue full) the sender gets <error type='wait'><resource-constraint/>
 *    (RFC 6120 §8.3.3.18), never for an error, a presence or an iq result
 *    (§8.3.1, RFC 6121); later error replies from fwd reach the sender
 *    the same way.  Server-domain iq (ping, disco) and other domains stay
 *    local.
 *  - every component that authenticates is reported (fwd_local_add) with
 *    a session id (sid, increasing per srv, never reused), and removed when
 *    it closes.  The leader orders sessions cluster-wide; when another
 *    node's session of a name is newer, fwd closes ours with a conflict
 *    stream error (RFC 6120 §4.9.3.3) if its sid matches.
 *  - fwd's deadline is part of srv_next_deadline and fwd_tick runs in
 *    srv_tick.
 * The srv_cluster_* calls below are no-ops (or XE_STATE) before start. */

struct fwd_config;
struct pframe;

struct srv_cluster_env {
    void *ud;
    /* peer_send hands frame f (borrowed) to node's peer channel, as
     * fwd_env.send (fwd.h): 0, or XE_BUSY / another negative code when the
     * channel cannot take it now (call srv_cluster_pump when it has room). */
    int (*peer_send)(void *ud, uint64_t node, struct pframe *f);
};

/* srv_cluster_start switches srv to cluster mode: creates its fwd with cfg
 * (copied; node_id non-zero; the name defaults to the srv's node name) and
 * env (copied), and reports the components already connected.  The
 * incarnation must be new for every start (the seqs of a new fwd restart
 * at 1): pass 0 and srv draws one with env->random.  Returns 0, XE_INVAL (bad cfg or
 * env), XE_EXISTS (already started) or XE_NOMEM. */
int srv_cluster_start(struct srv *srv, const struct fwd_config *cfg,
                      const struct srv_cluster_env *env, uint64_t now_ms);
/* srv_cluster_stop returns srv to standalone mode and frees its fwd
 * (unacked stanzas are dropped; sessions stay).  No-op if not started. */
void srv_cluster_stop(struct srv *srv);
/* srv_cluster_started tells whether srv is in cluster mode. */
bool srv_cluster_started(const struct srv *srv);

/* srv_cluster_set_leader: Raft's leader (0: none) and term (fwd_set_leader).
 * srv_cluster_set_members: the voting members (ids borrowed, copied;
 * fwd_set_members).  0, XE_STATE (not started) or XE_NOMEM. */
int srv_cluster_set_leader(struct srv *srv, uint64_t leader, uint64_t term,
                           uint64_t now_ms);
int srv_cluster_set_members(struct srv *srv, const uint64_t *ids, size_t n,
                            uint64_t now_ms);

/* srv_cluster_input takes a frame (borrowed) from node after pchan_recv said
 * deliver: FWD, ACK, SESSIONS, ROUTES or CONFLICT (fwd_input).  Returns 0,
 * XE_INVAL (not a forwarding frame), XE_PROTO (the peer broke the protocol:
 * count it; the edge may close the link), XE_STATE (not started) or
 * XE_NOMEM. */
int srv_cluster_input(struct srv *srv, uint64_t node, const struct pframe *f,
                      uint64_t now_ms);
/* srv_cluster_flush sends the ACKs owed for the frames srv_cluster_input
 * took (fwd_flush): call it at the end of each read of a peer link, after
 * its last srv_cluster_input, before the loop turn ends. */
void srv_cluster_flush(struct srv *srv, uint64_t now_ms);
/* srv_cluster_peer_reset: the channel to node was reset (PCHAN_RESET). */
void srv_cluster_peer_reset(struct srv *srv, uint64_t node, uint64_t now_ms);
/* srv_cluster_peer_link: the connection to node came up or went down
 * (fwd_peer_link). */
void srv_cluster_peer_link(struct srv *srv, uint64_t node, bool up, uint64_t now_ms);
/* srv_cluster_set_soft_entries: ok when every other member is known to
 * apply the login and last-presence entries (the edge: each member's link
 * is up at PFRAME_VERSION_SOFT_ENTRIES or above).  Until then (false
 * after srv_cluster_start) srv writes none: failed logins and last
 * presences stay on this node, and an older member of a rolling upgrade
 * never meets an entry it cannot apply (it would stop applying there). */
void srv_cluster_set_soft_entries(struct srv *srv, bool ok);
/* One other member's link as the edge sees it (srv_soft_entries_ok). */
struct srv_member_link {
    uint64_t id;      /* the member's node id */
    bool up;          /* a link with accepted HELLOs */
    unsigned version; /* that link's frame version (0: none) */
    unsigned last;    /* the version this process last saw the member's link
                         up at, kept while it is down (0: never up) */
};
/* srv_soft_entries_ok decides the gate srv_cluster_set_soft_entries
 * takes: true when every member of ids (n, this node self included) other
 * than self has a link in links (nlinks, borrowed; a member without one is
 * unknown) that is up at PFRAME_VERSION_SOFT_ENTRIES or above.  A member
 * whose link is down may have restarted with an older build, so a link
 * drop closes the gate until the link is up again at a known version.
 * Pure: the edge calls it at every membership or link change. */
bool srv_soft_entries_ok(uint64_t self, const uint64_t *ids, size_t n,
                         const struct srv_member_link *links, size_t nlinks);
/* srv_sessions_ok decides the gate rreq_set_sessions takes (version 3
 * request ids, repl.h): true when this node's build speaks
 * PFRAME_VERSION_SESSIONS (self_vmax: its newest frame version; a build
 * capped below reads no version 3 entries either) and every member of ids
 * other than self has
 * a link in links that is up at PFRAME_VERSION_SESSIONS or above, or is
 * down and was last up at it (links[].last).  Unlike the soft-entry gate,
 * a link drop keeps it: a member that read version 3 may hold version 3
 * entries already, so a build that cannot read them is no way back for it
 * anyway (docs/cluster.md "Rolling upgrade"), while closing the gate at
 * every failover would make the whole cluster's writes fall back to the
 * old ring whenever one member is down.  A member this process never saw
 * up is unknown: closed.  Pure. */
bool srv_sessions_ok(uint64_t self, unsigned self_vmax, const uint64_t *ids, size_t n,
                     const struct srv_member_link *links, size_t nlinks);
/* srv_cluster_pump retries frames a full channel refused (call it when a
 * channel has room again). */
void srv_cluster_pump(struct srv *srv, uint64_t now_ms);

struct srv_cluster_stats {
    bool started;
    uint64_t node_id;
    uint64_t leader; /* as last set; 0: none */
    uint64_t term;
    uint64_t forwarded;        /* stanzas handed to the cluster (fwd_send accepted) */
    uint64_t rejected;         /* refused: queue full (sender got wait) */
    uint64_t waiting;          /* now: not handed to a node yet */
    uint64_t inflight;         /* now: handed to a node, outcome not known yet */
    uint64_t acked;            /* delivered by the node holding the name */
    uint64_t refused;          /* bounced by it: no session there */
    uint64_t unroutable;       /* no node holds the name */
    uint64_t expired;          /* no channel took it within hold_ms */
    uint64_t lost;             /* handed to a node that restarted or left */
    uint64_t errors;           /* error replies given to local senders by fwd */
    uint64_t delivered;        /* stanzas from other nodes delivered here */
    uint64_t bounced;          /* stanzas from other nodes refused here */
    uint64_t conflicts_closed; /* local sessions closed: newer elsewhere */
    uint64_t protocol_errors;
    size_t routes; /* names in this node's copy of the routing table */
    bool complete; /* that copy is whole */
};

/* srv_cluster_get_stats fills out (all zero and started false before
 * start). */
void srv_cluster_get_stats(const struct srv *srv, struct srv_cluster_stats *out);

/* srv_cluster_components counts the component names the routing table
 * (this node's copy) puts on node.  For status. */
size_t srv_cluster_components(const struct srv *srv, uint64_t node);
/* srv_cluster_each_route calls fn for every name in this node's copy of
 * the routing table (name borrowed for the call) with its node and the
 * leader's order of its session.  fn must not call srv. */
void srv_cluster_each_route(const struct srv *srv,
                            void (*fn)(void *ud, const char *name, uint64_t node,
                                       uint64_t ord),
                            void *ud);
/* srv_cluster_each_entry calls fn for every entry of this node's copy of
 * the routing table with its attributes (e borrowed for the call: name,
 * node, sid, order, kind, availability, priority; pframe.h).  fn must not
 * call srv.  For `xmpp user list` and `xmpp cluster status`. */
struct pframe_route;
void srv_cluster_each_entry(const struct srv *srv,
                            void (*fn)(void *ud, const struct pframe_route *e), void *ud);

#endif
