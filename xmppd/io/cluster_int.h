/* cluster_int.h: what cluster.c (the peer link and the hooks),
 * cluster_req.c (requests to the leader) and cluster_join.c (join and
 * rebuild) share: the structure of a node's cluster part.  Not an API:
 * everything else uses cluster.h. */
#ifndef XMPPD_CLUSTER_INT_H
#define XMPPD_CLUSTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster.h"
#include "pframe.h"
#include "rnode.h"

#define CONTACT_TIMEOUT_MS 10000
#define SYNC_TIMEOUT_MS 30000
#define REBUILD_TIMEOUT_MS 10000
#define CLUSTER_MAX_INVITES 16 /* join tokens open at once on one member */

/* A request to the leader: ours (cb or rcb) or one we relay. */
struct creq {
    uint64_t rid;
    enum cluster_kind kind;
    unsigned char *body;
    size_t len;
    uint64_t deadline;
    uint64_t expires; /* wall-clock ms: the leader refuses it after this */
    uint64_t sent_to; /* 0: waiting for a leader */
    bool fixed;       /* sent to one peer (a join contact), never redirected */
    cluster_cb cb;
    void *arg;
    rnode_done_cb rcb; /* forward_submit */
    void *rarg;
    struct creq *next;
};

enum join_phase {
    JOIN_NONE = 0,
    JOIN_CONTACT, /* dialling the address given */
    JOIN_ASKED,   /* the request is with the cluster */
    JOIN_SWITCH,  /* accepted: replace the store on the next tick */
    JOIN_SWITCHING,
    JOIN_SYNC,  /* waiting to be a voter */
    JOIN_RETRY, /* the leader was busy with another change: ask again */
};

struct cjoin {
    enum join_phase phase;
    unsigned char *token; /* CLUSTER_TOKEN_BYTES, sodium_malloc'd; NULL: none */
    char addr[PFRAME_MAX_ADDR + 1];
    bool replace;
    uint64_t cluster_id;
    uint64_t deadline;
    uint64_t contact_id;                  /* the member we asked */
    unsigned tls_failed, refused, closed; /* failed dials to the contact */
    uint64_t retry_at;
    cluster_cb cb;
    void *arg;
};

/* A join token this member made (cluster_invite.c): its hash only. */
struct cinvite {
    unsigned char hash[32]; /* BLAKE2b of the token */
    uint64_t expires;       /* loop ms */
    bool live;              /* made, not used, maybe expired */
    bool busy;              /* a join request that presented it is under way */
};

#define CLUSTER_GONE_MAX 64

struct cluster {
    struct node *n;
    struct peer_mgr *pm;
    uv_timer_t timer;
    uint64_t next_rid;
    struct creq *reqs;
    uint64_t leader_id, term;
    uint64_t down_reported; /* leader id reported with rnode_peer_down */
    struct cjoin join;
    struct cluster_counters cnt;
    bool removed; /* the leader said this node is no longer a member */
    /* Members this node saw leave the committed configuration since it
     * started (a ring of the latest CLUSTER_GONE_MAX): a HELLO from one of
     * them is answered "you were removed" (issue 13 item 1).  seen: the
     * committed configuration's ids when last looked at. */
    uint64_t seen[RAFT_MAX_MEMBERS];
    unsigned n_seen;
    bool seen_valid;
    uint64_t gone[CLUSTER_GONE_MAX];
    unsigned n_gone;
    struct cinvite invites[CLUSTER_MAX_INVITES];
};

/* cluster.c */

/* cluster__now_ms: the loop's clock (ms). */
uint64_t cluster__now_ms(struct node *n);
/* cluster__wall_ms: the wall clock (ms since the epoch); ud unused. */
uint64_t cluster__wall_ms(void *ud);
/* cluster__put64 / cluster__get64: a big-endian u64 at p. */
void cluster__put64(unsigned char *p, uint64_t v);
uint64_t cluster__get64(const unsigned char *p);
/* cluster__open_peers starts the peer link of n for cluster_id.  0 or an
 * error with why. */
int cluster__open_peers(struct node *n, uint64_t cluster_id, char *why, size_t whylen);

/* cluster__gone: id left this cluster's committed configuration while this
 * node watched (struct cluster, gone). */
bool cluster__gone(const struct cluster *c, uint64_t id);

/* cluster_req.c */

/* cluster__req_finish unlinks q, calls its callback and frees it. */
void cluster__req_finish(struct cluster *c, struct creq *q, int rc, const char *msg,
                         const void *data, size_t len);
/* cluster__req_send sends q to member to.  0 or an error (q kept). */
int cluster__req_send(struct cluster *c, struct creq *q, uint64_t to);
/* cluster__req_new queues a request (body copied), or returns NULL. */
struct creq *cluster__req_new(struct cluster *c, enum cluster_kind kind, const void *body,
                              size_t len, uint64_t timeout_ms);
/* cluster__join_parse reads a join request body b (len bytes: node id,
 * replace flag, 32-bit address length, address, then optionally u8 token
 * length and the join token) into *id, *replace and addr (PFRAME_MAX_ADDR +
 * 1 bytes).  0 or XE_PROTO. */
int cluster__join_parse(const unsigned char *b, size_t len, uint64_t *id, bool *replace,
                        char *addr);
/* cluster__join_token finds the join token in a join request body b (len
 * bytes, as cluster__join_parse reads it): *tok (into b, or NULL) and
 * *tlen (0: none), and *base the body's length without it (what is passed
 * on to the leader).  0 or XE_PROTO. */
int cluster__join_token(const unsigned char *b, size_t len, const unsigned char **tok,
                        size_t *tlen, size_t *base);
/* cluster__serve runs a request on the leader (or passes it on); cb once. */
void cluster__serve(struct node *n, enum cluster_kind kind, const void *body, size_t len,
                    uint64_t expires, cluster_cb cb, void *arg);

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

/* cluster_invite.c */

/* cluster__invite_add makes a join token (tok, filled with random bytes)
 * valid on c until now + ttl_ms (loop ms); only its hash is kept.  0 or
 * XE_LIMIT (CLUSTER_MAX_INVITES open and not expired). */
int cluster__invite_add(struct cluster *c, uint64_t now, uint64_t ttl_ms,
                        unsigned char tok[CLUSTER_TOKEN_BYTES]);
/* cluster__invite_take finds the open, unexpired token tok (len bytes,
 * borrowed) at now and holds it for a join under way: its slot (>= 0,
 * settle it with cluster__invite_settle), or XE_AUTH (none: unknown,
 * expired, used or held). */
int cluster__invite_take(struct cluster *c, const unsigned char *tok, size_t len,
                         uint64_t now);
/* cluster__invite_settle ends the hold on slot: used (the join succeeded:
 * the token is gone) or not (a refused join: it stays until it expires).
 * A slot < 0 is ignored. */
void cluster__invite_settle(struct cluster *c, int slot, bool used);

/* cluster_join.c */

/* cluster__join_finish ends the join under way and answers it. */
void cluster__join_finish(struct cluster *c, int rc, const char *msg);
/* cluster__send_join asks member id (the contact) to add this node. */
void cluster__send_join(struct node *n, uint64_t id);
/* cluster__join_check compares the join request body b (len bytes) a
 * joining node sent with the address hello_addr its HELLO claimed (the one
 * peer.c checked against its certificate's SANs): a node may only ask to
 * join at the address its certificate vouches for (docs/cluster.md,
 * "Identity and membership").  0, XE_PROTO (malformed body) or XE_AUTH,
 * with why filled. */
int cluster__join_check(const char *hello_addr, const unsigned char *b, size_t len,
                        char *why, size_t whylen);
/* cluster__contact_failed counts a failed dial to the join contact. */
void cluster__contact_failed(struct node *n, const char *addr, int err, bool refused);
/* cluster__after_old_peers_closed switches to the joined cluster's store
 * once the old peer link has closed (peer_mgr_close callback; arg: n). */
void cluster__after_old_peers_closed(void *arg);

#endif
