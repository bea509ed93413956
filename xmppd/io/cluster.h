/* cluster.h: a node's part in the cluster: the peer link (io/peer.h) wired
 * to the Raft driver (io/rnode.h), admin requests carried to the leader
 * (join, remove, forwarded writes), and what `xmpp cluster ...` needs
 * (io/cmds_cluster.c).  docs/cluster.md explains the workflow.
 *
 * SUBMIT frames carry one admin request each (request_id, data: kind,
 * expires, body; pframe.h "cluster requests" gives the format, and
 * core/creq.h the queue of this node's requests to the leader).  The
 * leader refuses a request that reaches it after expires (it waited in a
 * channel through a partition, and its sender has reported failure), so a
 * write reported as failed for want of a leader is not applied later.
 * SUBMIT_RESULT answers it (rc, one human line; for JOIN the data is the
 * u64 cluster id).  A node that is not the leader passes a request on to
 * the leader and relays the answer.
 *
 * Everything runs on the node's loop; "n" is the struct node. */
#ifndef XMPPD_CLUSTER_H
#define XMPPD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cinvite.h"
#include "pframe.h"
#include "rnode.h"

struct node;
struct peer_mgr;

/* The kinds of request (pframe.h enum pframe_req_kind). */
enum cluster_kind {
    CLUSTER_REQ_CMD = PFRAME_REQ_CMD,
    CLUSTER_REQ_JOIN = PFRAME_REQ_JOIN,
    CLUSTER_REQ_REMOVE = PFRAME_REQ_REMOVE,
    /* leader -> a member it just removed, request id 0, no answer
     * (pframe.h). */
    CLUSTER_NOTE_REMOVED = PFRAME_REQ_NOTE_REMOVED,
};

/* cluster_rnode_hooks sets the transport hooks of h (send, forward_submit,
 * status) for node n (h->ud must be n). */
void cluster_rnode_hooks(struct rnode_hooks *h);

/* cluster_start starts the peer link of n (clustering enabled in
 * node.state; certificates and trust set).  No-op when running.  0 or an
 * error with why. */
int cluster_start(struct node *n, char *why, size_t whylen);

/* cluster_stop closes the peer link and fails pending requests with
 * XE_CLOSED.  No-op when not running. */
void cluster_stop(struct node *n);

/* cluster_running: the peer link is up. */
bool cluster_running(const struct node *n);

/* cluster_peers returns the peer manager (NULL when not running). */
struct peer_mgr *cluster_peers(const struct node *n);

/* cluster_self_addr writes this node's peer address ("host:port"). */
void cluster_self_addr(const struct node *n, char *out, size_t len);

/* cluster_remove asks the leader to remove member node_id (a typed
 * PFRAME_REQ_REMOVE): here when this node leads, else sent to the leader
 * (waiting up to timeout_ms for one).  cb(arg, rc, msg, data, len) is
 * called exactly once, maybe before this returns.  data is the answer's
 * bytes (borrowed). */
typedef void (*cluster_cb)(void *arg, int rc, const char *msg, const void *data,
                           size_t len);
void cluster_remove(struct node *n, uint64_t node_id, uint64_t timeout_ms, cluster_cb cb,
                    void *arg);

/* Join tokens (cluster_invite.c, core/cinvite.h): CLUSTER_TOKEN_BYTES
 * random bytes, shown to the admin as CLUSTER_TOKEN_HEX lowercase hex
 * digits. */
#define CLUSTER_TOKEN_BYTES CINVITE_TOKEN_BYTES
#define CLUSTER_TOKEN_HEX CINVITE_TOKEN_HEX

/* cluster_invite makes a one-time join token, good on this member for
 * ttl_ms (docs/cluster.md "Join"), and writes it as hex into token (len >=
 * CLUSTER_TOKEN_HEX + 1).  Only its hash is kept: the caller shows it once
 * and never logs it.  0, XE_STATE (clustering is not running here),
 * XE_LIMIT (too many tokens open), XE_INVAL. */
int cluster_invite(struct node *n, uint64_t ttl_ms, char *token, size_t len);

/* cluster_join asks the node at addr to add this node, presenting the join
 * token token_hex (CLUSTER_TOKEN_HEX hex digits, made by cluster_invite on
 * that node; borrowed, kept in sodium_malloc memory until the join ends)
 * (replace: remove the member holding this node's address in the same
 * step), then switches this node to the cluster's (empty) store and waits
 * until this node is a voter.  cb once, as for cluster_remove (no data). */
void cluster_join(struct node *n, const char *addr, const char *token_hex, bool replace,
                  uint64_t timeout_ms, cluster_cb cb, void *arg);

/* cluster_rebuild replaces this node's store by a new one-member cluster
 * with this node at its current peer address, and submits the replicated
 * data of the old one (domain, call bridges, users) to it.  Used by
 * initialize (fixing the member's address) and after leaving.  cb once,
 * never before this returns: the store is replaced on the next loop turn
 * (node_later), so this may be called from inside an rnode hook or
 * callback; XE_CLOSED if the node stops first. */
void cluster_rebuild(struct node *n, cluster_cb cb, void *arg);

/* cluster_removed: the leader told this node it was removed from the
 * cluster (xmpp cluster disable then just goes alone). */
bool cluster_removed(const struct node *n);

/* cluster_store_replaced: n's replicated store was replaced (a join, or a
 * new one-member cluster): whatever the old store said about a removal no
 * longer holds. */
void cluster_store_replaced(struct node *n);

/* cluster_srv_attach puts the XMPP core of n (if running) in cluster mode
 * when the peer link runs: forwarding frames go through the peer link,
 * Raft's leader and voters follow.  Called when either starts. */
void cluster_srv_attach(struct node *n);

struct cluster_counters {
    uint64_t leader_changes;
    uint64_t requests_sent, requests_served;
    uint64_t peer_down_reports;
};
void cluster_get_counters(const struct node *n, struct cluster_counters *out);

#endif
