/* node_int.h: the node's structure, shared by the files that make up the
 * node (node.c, node_xmpp.c, node_ws.c, node_drain.c, node_metrics.c,
 * node_view.c) and the cluster glue that the node owns (cluster*.c).  Not
 * an API: the control handlers (cmds*.c) and everything else use node.h. */
#ifndef XMPPD_NODE_INT_H
#define XMPPD_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "logging.h"
#include "node.h"
#include "node_state.h"
#include "ws.h"

struct srv;
struct conn_mgr;
struct tls_ctx;
struct rnode;
struct ctl_socket;
struct cluster;
struct metrics_http;

/* One generation of the XMPP side. */
struct xside {
    struct node *n;
    struct srv *srv; /* NULL once stopped */
    struct conn_mgr *cm;
    struct tls_ctx *tls;       /* NULL without certificates; outlives cm */
    unsigned client_listening; /* client listeners up */
    char client_error[256];    /* why (some) are not, or "" */
    /* WebSocket (node_ws.c): the listeners' policy, borrowed by srv
     * (srv_set_ws_config; the host-meta URLs are srv's, srv_set_ws_links) */
    struct ws_config ws_cfg;
    unsigned ws_listening; /* ws and wss listeners up */
    char ws_error[256];    /* why (some) are not, or "" */
    /* the origins and proxies of ws_cfg: pointers into n->st (node_ws.c) */
    const char *ws_origin_p[NODE_STATE_MAX_WS_ORIGINS];
    const char *ws_proxy_p[NODE_STATE_MAX_WS_PROXIES];
    bool drained;
    bool carrying;      /* node_xmpp.c carry_out runs: srv_take's list is in use */
    struct xside *next; /* retired list */
};

struct node {
    uv_loop_t loop;
    bool loop_ready;
    struct log_sink log;
    char name[32];
    char *dir, *conf_path, *pki_dir, *raft_dir, *sock_path; /* owned */
    int lock_fd; /* the state directory's lock (dirlock.h), owned; -1 if none */
    struct node_state st;
    struct rnode *rn;
    struct cluster *cluster; /* io/cluster.c: NULL unless clustering is on */
    struct ctl_socket *ctl;
    bool ctl_closed;
    struct xside *x;       /* serving, or NULL */
    struct xside *retired; /* draining */
    uv_timer_t timer;      /* wakes srv_tick at srv_next_deadline */
    uv_timer_t reaper;     /* frees drained generations */
    uv_timer_t later;      /* runs node_later work on the next loop turn */
    uv_timer_t watchdog;   /* WATCHDOG=1 to systemd while the loop turns */
    struct node_later *laters, **laters_tail; /* queued, in order */
    uv_signal_t sig_term, sig_int, sig_hup;
    bool handles_ready;
    bool stopping;
    uint64_t started_ms;
    char last_error[512]; /* why XMPP is not served although enabled */
    /* xmppd.conf import: submits not answered yet, and the first failure */
    unsigned import_pending;
    bool import_busy; /* an import is being submitted: do not start XMPP yet */
    int import_rc;
    char import_err[512];
    /* the Prometheus endpoint (node_metrics.c): NULL when off */
    struct metrics_http *metrics;
    uint64_t storage_errors; /* replicated-store failures since start */
    /* Draining (node_drain.c): sessions are sent to other members */
    bool draining;
    uint64_t drain_print; /* fingerprint of the targets given to srv */
    bool drain_handover;  /* draining and leader: a transfer under way */
    uv_timer_t handover;  /* retries that transfer */
    bool stop_transfer;   /* SIGTERM on the leader: handing leadership over */
};

/* node__after_srv writes what srv queued and re-arms the srv timer; call it
 * after every srv_* call made from a libuv callback. */
void node__after_srv(struct node *n);

/* node__ws_start sets up x's WebSocket side (node_ws.c): the config srv
 * reads (path) and the host-meta links (node__ws_links), then the ws and
 * wss listeners on each of the nl listen addresses l.  A listener that
 * cannot open is logged and kept in x->ws_error (XMPP goes on without
 * it). */
struct conf_listen;
void node__ws_start(struct node *n, struct xside *x, const struct conf_listen *l,
                    size_t nl);
/* node__ws_links gives x's srv the hosts, ports and path host-meta names
 * (srv_set_ws_links): at the start and whenever Raft's status changes
 * (cluster.c, srv_follow), so the list follows the members. */
void node__ws_links(struct node *n, struct xside *x);

/* node__ws_policy points x's ws_cfg at the origins and trusted proxies of
 * n->st (node_ws.c; srv reads them at each request, so a change applies
 * to the next request without a restart). */
void node__ws_policy(struct node *n, struct xside *x);

/* node__drain_apply gives x's srv the drain state of n (node_drain.c):
 * draining, srv_drain with the other members as targets; else
 * srv_undrain.  0, or XE_STATE (no other member with an address; why
 * filled). */
int node__drain_apply(struct node *n, struct xside *x, char *why, size_t whylen);

/* node__drain_refresh gives srv the members' current addresses when the
 * membership changed during a drain, and hands leadership over when a
 * draining node was elected all the same (node_drain.c; called on every
 * Raft status change, cluster.c srv_follow).  No-op when not draining or
 * when nothing changed. */
void node__drain_refresh(struct node *n);

/* node__stop starts the clean shutdown (node.c begin_stop). */
void node__stop(struct node *n);

/* node__stop_drain: SIGTERM or SIGINT in a cluster with other members
 * (node_drain.c): on the leader, hand leadership over first (bounded),
 * then send the sessions to other members, then node__stop; true when
 * the stop was deferred (a transfer is under way), false when the caller
 * stops at once (after the drain, if any). */
bool node__stop_drain(struct node *n);

/* node__reap_soon has the reaper free drained XMPP generations (and finish a
 * shutdown) on the next loop turn. */
void node__reap_soon(struct node *n);

/* node__restart_xmpp stops and starts the XMPP side if it runs (a new
 * domain, listeners or certificates); a failure is logged and kept for
 * xmpp status. */
void node__restart_xmpp(struct node *n, const char *reason);

/* node__replace_store closes the Raft driver (never call it from inside
 * an rnode hook or callback: defer it with node_later), removes the store and opens
 * a new, empty one: start is an enum rnode_start (RNODE_BOOTSTRAP: a new
 * one-member cluster at this node's peer address; RNODE_JOIN: wait for the
 * leader of cluster_id).  The XMPP side restarts on the new state.  0, or
 * an error with why (the node then runs on a fresh bootstrap store, or
 * stops if even that cannot be opened). */
int node__replace_store(struct node *n, int start, uint64_t cluster_id, char *why,
                        size_t whylen);

#endif
