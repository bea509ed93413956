/* node.h: one xmppd node: node-local state, the Raft driver, the control
 * socket and the XMPP side (srv core, listeners) on one libuv loop.
 *
 * `xmppd --state-dir DIR` is all a node needs (docs/admin.md):
 *   DIR/node.state    node-local state (io/node_state.h), made at first start
 *   DIR/raft/         the replicated state (io/rnode.h); a standalone node
 *                     is a one-member cluster
 *   DIR/control.sock  the control socket (io/ctl_socket.h), always up
 *   DIR/pki/          keys and certificates named by `xmpp certs`
 *   DIR/xmppd.conf    optional import: when present at start (and on
 *                     SIGHUP) its listeners and timers go to node.state, its
 *                     domain and call bridges are submitted through Raft (the
 *                     file's call-bridge list is authoritative: others are
 *                     removed), and XMPP is enabled.
 * XMPP is served only while enabled (`xmpp enable`, or the import).
 *
 * Signals:
 *   SIGTERM, SIGINT  clean shutdown: srv_shutdown closes every stream, the
 *                    listeners and the control socket stop, writes flush,
 *                    the loop ends, exit 0.
 *   SIGHUP           re-import xmppd.conf (if present); a file that fails to
 *                    load is logged and the old configuration kept.
 * Time given to srv is uv_now(): monotonic milliseconds.
 *
 * The second half of this header is what the control handlers (io/cmds.c)
 * use; nothing else should. */
#ifndef XMPPD_NODE_H
#define XMPPD_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster.h"
#include "logging.h"
#include "pframe.h"
#include "rnode.h"
#include "srv.h"

struct node_opts {
    const char *state_dir; /* borrowed */
    const char *name;      /* node name in log lines ("n1"); borrowed */
    enum log_level level;  /* stderr log level */
    int log_mode;          /* enum logsink_mode (logsink.h); 0: auto */
};

struct node;

/* node_start loads the node state (creating it at first start), opens the
 * Raft store, imports xmppd.conf if present, starts the control socket and,
 * when XMPP is enabled, the listeners.  On failure err receives one line for
 * the operator (no trailing newline, no secrets) and everything is
 * released.  Returns 0, or a negative XE_ code. */
int node_start(const struct node_opts *opts, struct node **out, char *err, size_t errlen);

/* node_run runs the loop until a clean shutdown has finished; returns 0. */
int node_run(struct node *n);

/* node_free releases the node (closing whatever is still open). */
void node_free(struct node *n);

/* ---- for the control handlers (io/cmds.c) ------------------------------ */

struct node_state;
struct rnode;
struct ctl_socket;

/* node_local returns the node-local state (borrowed, mutable); after a
 * change call node_local_save. */
struct node_state *node_local(struct node *n);

/* node_local_save writes the node-local state atomically.  0, or XE_IO /
 * XE_INVAL with err (one line) filled; on failure the in-memory state is
 * put back to what is on disk. */
int node_local_save(struct node *n, char *err, size_t errlen);

/* node_rnode returns the Raft driver (borrowed). */
struct rnode *node_rnode(struct node *n);

/* node_ctl returns the control server (borrowed; for ctl_socket_defer). */
struct ctl_socket *node_ctl(struct node *n);

/* node_pki_dir returns <state-dir>/pki (borrowed). */
const char *node_pki_dir(const struct node *n);

/* node_file_path resolves a certificate file setting: an absolute path as
 * is, a plain name inside the pki directory.  0 or XE_INVAL. */
int node_file_path(const struct node *n, const char *name, char *out, size_t len);

/* node_addr_local checks that host (numeric IPv4/IPv6) is an address of
 * this host (or the unspecified address): a test bind to it, port 0, must
 * not fail with EADDRNOTAVAIL.  true when it is. */
bool node_addr_local(const char *host);

/* node_xmpp_check says whether XMPP could be enabled with the current
 * configuration: a domain, usable certificates (required when TLS is
 * required), listen addresses of this host.  0, XE_BUSY when a cluster
 * member waits for the replicated domain, or XE_STATE / XE_AUTH /
 * ... with why (one line: what is wrong and what to do). */
int node_xmpp_check(struct node *n, char *why, size_t whylen);

/* node_xmpp_start checks (as node_xmpp_check), then creates the XMPP core
 * with the replicated domain and call bridges and starts the listeners.
 * Does not change node.state.  0 (also when already running), or an error
 * with why. */
int node_xmpp_start(struct node *n, char *why, size_t whylen);

/* node_xmpp_stop closes every XMPP session and the listeners (the control
 * socket stays).  No-op when not running. */
void node_xmpp_stop(struct node *n);

/* node_xmpp_client_limits applies the client limits of node state
 * (sessions per account, byte rate, software version) to the running
 * core at once, without a restart.  0, or XE_NOMEM. */
int node_xmpp_client_limits(struct node *n);

/* node_xmpp_running is true while the listeners are up. */
bool node_xmpp_running(const struct node *n);

/* node_reset stops XMPP, gives the node a new id and default node-local
 * state, and replaces the node's Raft store by a new, empty one-member
 * cluster.  0, or an error with why. */
int node_reset(struct node *n, char *why, size_t whylen);

#define NODE_INFO_BLOCKED 5

struct node_info {
    uint64_t uptime_s;
    uint64_t components;        /* authenticated component sessions */
    uint64_t clients;           /* bound client sessions */
    uint64_t conns;             /* open XMPP connections */
    const char *last_error;     /* why XMPP is not running although enabled, or "" */
    unsigned client_listeners;  /* client listeners up (one per listen address) */
    const char *client_error;   /* why the client listener is not up, or "" */
    uint64_t ws_clients;        /* of clients: those over WebSocket */
    uint64_t ws_conns;          /* WebSocket connections (any stage) */
    unsigned ws_listeners;      /* ws and wss listeners up */
    const char *ws_error;       /* why a WebSocket listener is not up, or "" */
    const char *const *ws_urls; /* host-meta URLs, this node's first (borrowed) */
    size_t nws_urls;
    struct srv_stats stats; /* the core's counters (zero when not serving) */
    /* the newest blocked addresses and accounts (login throttling) */
    struct srv_blocked blocked[NODE_INFO_BLOCKED];
    size_t nblocked;
};

/* node_get_info fills *out from local state. */
void node_get_info(const struct node *n, struct node_info *out);

/* node_ws_policy_changed applies a changed Origin allow-list or proxy
 * list of node_local (saved) to the running listeners, without a restart. */
void node_ws_policy_changed(struct node *n);

/* node_drain starts (on) or ends draining (docs/cluster.md "Draining a
 * node"): every XMPP session of this node is sent to another member
 * (see-other-host, see-other-uri) and new ones too, until ended.  Saved in
 * node.state: a restart of the node keeps it.  While draining, the node
 * is on Raft standby (rnode_standby): it is not elected again while
 * another voter can lead.  Leadership is not handed over here (the caller
 * does that first).  0, XE_STATE with why (no other member), XE_IO (the
 * state file could not be saved; nothing changed). */
int node_drain(struct node *n, bool on, char *why, size_t whylen);

/* node_draining tells whether the node drains. */
bool node_draining(const struct node *n);

/* node_callbridge_connected is true when call bridge name has a session on
 * this node. */
bool node_callbridge_connected(const struct node *n, const char *name);

/* ---- read by the control handlers (node_view.c) ---- */

/* node_log returns the node's log sink (borrowed). */
const struct log_sink *node_log(const struct node *n);

/* node_name returns the node's name in log lines, "n1" (borrowed). */
const char *node_name(const struct node *n);

/* node_loop returns the node's loop (borrowed), for a request that needs
 * one (uv_getaddrinfo, uv_queue_work). */
uv_loop_t *node_loop(struct node *n);

/* node_stopping is true once the clean shutdown began. */
bool node_stopping(const struct node *n);

/* node_srv returns the XMPP core now serving (borrowed, valid until the
 * loop turns), or NULL when XMPP is not served. */
struct srv *node_srv(const struct node *n);

/* What xmpp cluster status shows of this node, taken at one moment from
 * local state only (it must answer while there is no leader). */
struct node_cluster_view {
    uint64_t now_ms; /* the loop's clock (uv_now) */
    uint64_t node_id;
    bool cluster_enabled; /* node.state */
    bool removed;         /* the leader said this node was removed */
    bool next_fast_lan;   /* node.state's Raft timing, used from the next start */
    bool draining;        /* node_draining */
    struct rnode_status raft;
    const struct raft_config *cfg; /* the latest one; borrowed until the loop turns */
    struct peer_mgr *peers;        /* the peer link (borrowed), or NULL */
    const struct srv *srv; /* the core, when serving with cluster routing; else NULL */
    char self[PFRAME_MAX_ADDR + 1]; /* this node's peer address */
    struct cluster_counters counters;
    struct node_info info;
};

/* node_get_cluster_view fills *out.  0, or XE_CLOSED when the node is
 * stopping (no Raft driver; *out zeroed). */
int node_get_cluster_view(struct node *n, struct node_cluster_view *out);

/* node_later_fn: work deferred with node_later.  cancelled is true when
 * the node is stopping (the work must not touch the Raft driver: only
 * answer its caller, e.g. with XE_CLOSED). */
typedef void (*node_later_fn)(struct node *n, void *arg, bool cancelled);

/* node_later runs fn(n, arg, cancelled) on the next loop turn, outside
 * every libuv, rnode and peer-link callback now on the stack.  Used for
 * work that closes the Raft driver (node__replace_store, cluster_rebuild):
 * rnode.h forbids rnode_close from inside an rnode hook or callback.  Queued
 * work runs in order; the shutdown runs what is queued with cancelled true,
 * and once the node is stopping fn runs at once with cancelled true.  arg
 * is the caller's (fn owns it from then on).  fn is called exactly once
 * (at once with cancelled true also when out of memory). */
void node_later(struct node *n, node_later_fn fn, void *arg);

#endif
