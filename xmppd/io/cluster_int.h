/* cluster_int.h: what cluster.c (the peer link and the hooks),
 * cluster_req.c (requests to the leader) and cluster_join.c (join and
 * rebuild) share: the structure of a node's cluster part.  The decisions
 * are the pure cores' (core/creq.h, core/cjoin.h, core/cremove.h); these
 * files step them and carry their updates out.  Not an API: everything
 * else uses cluster.h. */
#ifndef XMPPD_CLUSTER_INT_H
#define XMPPD_CLUSTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cinvite.h"
#include "cjoin.h"
#include "cluster.h"
#include "creq.h"
#include "cremove.h"
#include "pframe.h"
#include "rnode.h"

#define REBUILD_TIMEOUT_MS 10000

/* The join under way: its phases (core/cjoin.h) and what the edge keeps. */
struct cluster_join {
    struct cjoin core;
    unsigned char *token; /* CLUSTER_TOKEN_BYTES, sodium_malloc'd; NULL: none */
    bool replace;
    cluster_cb cb;
    void *arg;
};

struct cluster {
    struct node *n;
    struct peer_mgr *pm;
    uv_timer_t timer;
    struct creq *rq; /* requests to the leader (core/creq.h) */
    uint64_t leader_id, term;
    uint64_t down_reported; /* leader id reported with rnode_peer_down */
    struct cluster_join join;
    struct cluster_counters cnt;
    struct cremove rm; /* removal: this node's, and the members gone */
    struct cinvites invites; /* join tokens this member made (core/cinvite.h) */
};

/* cluster.c */

/* cluster__now_ms: the loop's clock (ms). */
uint64_t cluster__now_ms(struct node *n);
/* cluster__wall_ms: the wall clock (ms since the epoch); ud unused. */
uint64_t cluster__wall_ms(void *ud);
/* cluster__open_peers starts the peer link of n for cluster_id.  0 or an
 * error with why. */
int cluster__open_peers(struct node *n, uint64_t cluster_id, char *why, size_t whylen);

/* cluster_req.c */

/* The caller of a request in the queue (creq ctx): cb, or rcb for Raft's
 * forwarded writes (rnode forward_submit). */
struct cluster_rctx {
    cluster_cb cb;
    void *arg;
    rnode_done_cb rcb;
    void *rarg;
};

/* cluster__rq_step steps ev (now and wall are filled here) into the
 * request queue of n and carries out the update: the SUBMIT frames go out
 * (a failed send is stepped back), then the answers (the callers'
 * callbacks) and the requests to serve here.  For a SUBMIT, *u (may be
 * NULL) gets the update before anything is carried out, and the answer at
 * once (u->rc < 0) or serve_now are left to the caller.  0 or XE_STATE (no
 * queue: clustering not running) or creq_step's error. */
int cluster__rq_step(struct node *n, struct creq_event *ev, struct creq_update *u);

/* cluster__rq_leader tells the queue of n who leads now (from Raft). */
void cluster__rq_leader(struct node *n);

/* cluster__request is cluster_remove with any typed request req
 * (borrowed), sent to peer to only when to != 0. */
void cluster__request(struct node *n, const struct pframe_req *req, uint64_t to,
                      uint64_t timeout_ms, cluster_cb cb, void *arg);

/* cluster__serve runs a request (req borrowed) on the leader (or passes it
 * on); cb once.  expires: the wall-clock ms after which it is not
 * applied. */
void cluster__serve(struct node *n, const struct pframe_req *req, uint64_t expires,
                    cluster_cb cb, void *arg);

/* The arg of cluster__reply_peer: a request a peer sent (taken by it). */
struct sreply {
    struct node *n;
    uint64_t peer, rid;
    int invite; /* the join token slot it holds (settled by the answer); -1 */
};
/* cluster__reply_peer is a cluster_cb: answers the request of arg (a struct
 * sreply, freed here) with SUBMIT_RESULT. */
void cluster__reply_peer(void *arg, int rc, const char *msg, const void *data,
                         size_t len);


/* cluster_join.c */

/* cluster__join_step steps ev (now is filled here) into the join under
 * way on n and carries out the update: send the join request, switch the
 * store, or end the join (drop the contact dial, forget the token, answer
 * the shell). */
void cluster__join_step(struct node *n, struct cjoin_event *ev);
/* cluster__after_old_peers_closed switches to the joined cluster's store
 * once the old peer link has closed (peer_mgr_close callback; arg: n). */
void cluster__after_old_peers_closed(void *arg);

#endif
