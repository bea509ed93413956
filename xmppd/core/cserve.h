/* cserve.h: which cluster requests this node serves, and how (docs/cluster.md
 * "Requests to the leader"): a member given a request by the shell or by a
 * peer (a SUBMIT frame, pframe.h) either submits it to Raft here (a write:
 * rnode forwards it to the leader when this node follows), passes it on to
 * the leader (join and remove are made on the leader), decides a join
 * (cjoin_decide), removes a member, or refuses it with the reason (the
 * node is stopping, the request outlived its sender's deadline, a remove
 * of a node that is not a member, an unknown kind).
 *
 * Pure: the edge says what it knows (whether the Raft driver runs, whether
 * this node leads, the members of the latest configuration, the wall
 * clock) and carries out the verdict. */
#ifndef XMPPD_CSERVE_H
#define XMPPD_CSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pframe.h"

/* The least time a request served or passed on is given, in ms: one that
 * is nearly out still gets an answer from the leader rather than none. */
#define CSERVE_MIN_LEFT_MS 100

enum cserve_verdict {
    CSERVE_REFUSE = 0, /* answer rc with msg */
    CSERVE_SUBMIT,     /* a write: submit req->u.cmd to Raft here */
    CSERVE_PASS_ON,    /* join or remove on a follower: ask the leader */
    CSERVE_JOIN,       /* this leader decides the join (cjoin_decide) */
    CSERVE_REMOVE,     /* this leader removes member req->u.node_id */
};

struct cserve_in {
    const struct pframe_req *req; /* borrowed */
    bool running;                 /* the Raft driver runs (not stopping) */
    bool leading;                 /* this node is the leader */
    const uint64_t *members;      /* the latest configuration (borrowed) */
    size_t n_members;
    uint64_t expires; /* the request's deadline, wall-clock ms */
    uint64_t wall;    /* now, wall-clock ms */
};

struct cserve_out {
    enum cserve_verdict verdict;
    int rc;           /* CSERVE_REFUSE: a negative XE_ code */
    char msg[200];    /* CSERVE_REFUSE: one line for the operator */
    uint64_t left_ms; /* SUBMIT, PASS_ON: the time it is given */
};

/* cserve_decide fills *out with what to do with in->req.  Always 0 (the
 * verdict says it all). */
int cserve_decide(const struct cserve_in *in, struct cserve_out *out);

/* What a member does with a request a peer sent it (a SUBMIT frame). */
enum cserve_peer_verdict {
    CSERVE_PEER_PROTO = 0,  /* a protocol error: the link is closed */
    CSERVE_PEER_NOTE,       /* a member's NOTE_REMOVED: cremove's (EV_NOTE) */
    CSERVE_PEER_GUEST_JOIN, /* a joining node's own join: check its address
                             * and token, then serve it (cserve_decide) */
    CSERVE_PEER_SERVE,      /* a member's request: serve it (cserve_decide) */
};

struct cserve_peer_in {
    const struct pframe_req *req; /* the decoded request (borrowed) */
    uint64_t from;                /* the sender's node id */
    bool guest;                   /* from a node asking to join (plink) */
    bool clock_known;             /* the sender's clock offset is known */
    int64_t clock_offset_ms;      /* its wall clock minus ours (peer_info) */
};

struct cserve_peer_out {
    enum cserve_peer_verdict verdict;
    uint64_t expires; /* the request's deadline in this node's wall clock */
};

/* cserve_peer fills *out with what to do with the request in->req a peer
 * sent: a node asking to join may only ask to join, for itself (its link
 * carries nothing else; docs/cluster.md "Identity and membership"), and
 * never sends NOTE_REMOVED; the deadline, in the sender's wall clock, is
 * read in ours when the offset is known.  Always 0. */
int cserve_peer(const struct cserve_peer_in *in, struct cserve_peer_out *out);

/* A request made on this node while clustering is off (no peer links and
 * no request queue: a single node, or one whose clustering stopped). */
enum cserve_alone_verdict {
    CSERVE_ALONE_REFUSE = 0, /* answer rc with msg */
    CSERVE_ALONE_SERVE,      /* serve it here (cserve_decide) by expires */
};

struct cserve_alone_in {
    bool leading;        /* the Raft driver runs and this node leads */
    uint64_t to;         /* the member the request is for; 0: the leader */
    uint64_t timeout_ms; /* the caller's; 0: CREQ_TIMEOUT_DEFAULT_MS */
    uint64_t wall;       /* now, wall-clock ms */
};

struct cserve_alone_out {
    enum cserve_alone_verdict verdict;
    uint64_t expires; /* SERVE: the deadline, wall-clock ms */
    int rc;           /* REFUSE: a negative XE_ code */
    char msg[100];    /* REFUSE: one line for the operator */
};

/* cserve_alone fills *out with what to do with a request made here while
 * clustering is off: a leader (the only member) serves a request for the
 * leader itself; any other is refused, naming the way to enable
 * clustering.  Always 0. */
int cserve_alone(const struct cserve_alone_in *in, struct cserve_alone_out *out);

#endif
