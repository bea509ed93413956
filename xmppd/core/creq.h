/* creq.h: cluster requests to the leader, as a pure state machine: the
 * queue of this node's admin requests (writes forwarded by a follower,
 * join and remove) waiting for a leader or for its answer (docs/cluster.md
 * "Requests to the leader"; docs/architecture.md "One convention").
 *
 * Events in (creq_step): a request from this node (the shell, a request
 * relayed for a peer, the join, Raft's forwarded write), a SUBMIT_RESULT
 * from a peer, a tick with the monotonic time, a leader change, a peer's
 * channel reset, a send the edge could not make, a cancel, a stop.  An
 * update out: SUBMIT frames to send, requests answered or handed back to be
 * served here (this node leads now), and the next deadline.
 *
 * Bounded: at most opts.max_pending requests and opts.max_bytes of request
 * data wait at once; a request over the bounds is answered XE_LIMIT at
 * once, every request is answered by its deadline at the latest (XE_TIMEOUT
 * or XE_NOLEADER with what is known of its fate), and a request that
 * cannot be queued for want of memory is answered XE_NOMEM: the queue never
 * drops one silently.
 *
 * The requests travel as PFRAME_SUBMIT frames whose data pframe_req_encode
 * writes (pframe.h).  Pure: no I/O, no clock (now and the wall clock come
 * in the events). */
#ifndef XMPPD_CREQ_H
#define XMPPD_CREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pframe.h"

#define CREQ_MAX_PENDING 128         /* the bound of opts.max_pending */
#define CREQ_MAX_BYTES (4u << 20)    /* default opts.max_bytes */
#define CREQ_TIMEOUT_DEFAULT_MS 5000 /* a SUBMIT with timeout_ms 0 */

struct creq_opts {
    size_t max_pending; /* requests waiting at once, 1..CREQ_MAX_PENDING */
    size_t max_bytes;   /* their SUBMIT data, in all */
};

/* creq_opts_default: CREQ_MAX_PENDING requests, CREQ_MAX_BYTES. */
void creq_opts_default(struct creq_opts *o);

struct creq;

/* creq_new makes an empty queue with opts o (borrowed; NULL: defaults).
 * Nobody leads until a CREQ_EV_LEADER says otherwise.  0, XE_INVAL (bad
 * bounds) or XE_NOMEM. */
int creq_new(const struct creq_opts *o, struct creq **out);

/* creq_free frees q and every request still in it, without answering them:
 * step CREQ_EV_STOP first so that each caller hears.  NULL is ignored. */
void creq_free(struct creq *q);

enum creq_event_type {
    CREQ_EV_SUBMIT = 1,  /* a request from this node */
    CREQ_EV_RESULT,      /* a SUBMIT_RESULT from a peer */
    CREQ_EV_TICK,        /* time passed */
    CREQ_EV_LEADER,      /* the leader changed, or whether this node leads */
    CREQ_EV_RESET,       /* a peer's channel was reset: its frames are gone */
    CREQ_EV_SEND_FAILED, /* a send of an earlier update could not be made */
    CREQ_EV_CANCEL,      /* drop a request unanswered (its caller reports) */
    CREQ_EV_STOP,        /* answer every request with rc and msg */
};

struct creq_event {
    enum creq_event_type type;
    uint64_t now;  /* monotonic ms, never decreasing; every event */
    uint64_t wall; /* wall-clock ms since the epoch; SUBMIT (expires) */
    union {
        struct {
            /* CMD, JOIN or REMOVE (its expires is set here) */
            const struct pframe_req *req;
            uint64_t timeout_ms; /* 0: CREQ_TIMEOUT_DEFAULT_MS */
            uint64_t to;         /* 0: the leader, whoever it is; else only
                                    this peer (a join contact, or the leader
                                    Raft forwards to), never redirected */
            void *ctx;           /* the caller's; given back in its answer */
        } submit;
        struct {
            uint64_t from, request_id;
            int rc;
            const char *msg; /* NULL or "": none */
            const void *data;
            size_t len;
        } result;
        struct {
            uint64_t leader_id; /* 0: none known */
            bool leading;       /* this node is the leader */
        } leader;
        struct {
            uint64_t peer;
        } reset;
        struct {
            uint64_t request_id;
            int rc; /* why the edge could not send */
        } send_failed;
        struct {
            uint64_t request_id;
        } cancel;
        struct {
            int rc;
            const char *msg;
        } stop;
    } u;
};

/* A SUBMIT frame to send: data is the request's (pframe_req_encode). */
struct creq_send {
    uint64_t to, request_id;
    const void *data;
    size_t len;
};

/* A request that left the queue: answered, or handed back to be served on
 * this node (it leads now).  Owned by the caller once in an update: free
 * each with creq_done_free (independent of the queue: it may be freed
 * first). */
struct creq_done {
    struct creq_done *next;
    void *ctx;        /* the SUBMIT's */
    bool serve;       /* serve it here instead: req, req_len, expires */
    int rc;           /* the answer: 0 or a negative XE_ code */
    const char *msg;  /* NULL, static, or the event's (borrowed) */
    const void *data; /* the answer's bytes (the event's, borrowed) */
    size_t len;
    const void *req; /* serve: its SUBMIT data (pframe_req_decode) */
    size_t req_len;
    uint64_t expires; /* serve: the wall-clock deadline */
};

struct creq_update {
    /* SUBMIT only: the request id (0 when it did not queue), or the
     * request answered at once (rc < 0, msg static), or to be served here
     * at once (serve_now: this node leads; expires its deadline). */
    uint64_t request_id;
    int rc;
    const char *msg;
    bool serve_now;
    uint64_t expires;
    /* 1. send these (data valid until the next creq_step or creq_free);
     * tell the failures back with CREQ_EV_SEND_FAILED after that */
    struct creq_send sends[CREQ_MAX_PENDING + 1];
    unsigned n_sends;
    /* 2. then answer or serve these, in order (owned by the caller) */
    struct creq_done *done;
    /* 3. step a CREQ_EV_TICK at or after this (0: nothing waits) */
    uint64_t deadline;
};

/* creq_step feeds ev (borrowed for the call; a RESULT's msg and data are
 * passed on in done records, so they must live until those are carried
 * out) to q and fills *u (the caller's storage).  0, or XE_INVAL (an
 * unknown event, a SUBMIT without a request or of a kind that is not
 * CMD, JOIN or REMOVE). */
int creq_step(struct creq *q, const struct creq_event *ev, struct creq_update *u);

/* creq_done_free frees d (from an update).  NULL is ignored. */
void creq_done_free(struct creq_done *d);

/* creq_pending: requests waiting in q, and their bytes. */
size_t creq_pending(const struct creq *q, size_t *bytes);

#endif
