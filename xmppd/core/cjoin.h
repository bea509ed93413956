/* cjoin.h: the phases of this node's join to a cluster, as a pure state
 * machine (docs/cluster.md "Join"; the convention of creq.h: events in, an
 * update of actions out).
 *
 *   NONE      no join under way
 *   CONTACT   dialling the member given (`xmpp cluster join <addr>`)
 *   ASKED     the join request is with the cluster (through the member)
 *   RETRY     the leader was busy with another membership change: ask
 *             again at retry_at (Raft thesis §4.1: one change at a time)
 *   SWITCH    accepted: the edge replaces the store on the next tick
 *             (outside the peer link's call), then says SWITCHED
 *   SWITCHING the store is being replaced
 *   SYNC      joined with an empty store: waiting to be made a voter
 *
 * Every way out answers the shell once (update finished, rc, msg) with the
 * true cause where one is known: the member's own reason for a refusal
 * (a REFUSE frame or a refused SUBMIT), a port that does not speak the
 * peer protocol, a TLS failure, nothing listening, or the timeout.
 *
 * Pure: no I/O, no clock.  The join token stays with the edge (it lives in
 * sodium memory there); this module says when to send the request. */
#ifndef XMPPD_CJOIN_H
#define XMPPD_CJOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pframe.h"

#define CJOIN_CONTACT_MS 10000 /* reach the member and hear its answer */
#define CJOIN_SYNC_MS 30000    /* be made a voter once joined */
#define CJOIN_RETRY_MS 200     /* ask again after XE_BUSY */

enum cjoin_phase {
    CJOIN_NONE = 0,
    CJOIN_CONTACT,
    CJOIN_ASKED,
    CJOIN_RETRY,
    CJOIN_SWITCH,
    CJOIN_SWITCHING,
    CJOIN_SYNC,
};

/* How a dial to the member failed (the edge maps its error to one). */
enum cjoin_dial {
    CJOIN_DIAL_OTHER = 0,
    CJOIN_DIAL_FOREIGN, /* the port answered in another protocol (XMPP, HTTP) */
    CJOIN_DIAL_TLS,     /* the TLS handshake failed */
    CJOIN_DIAL_REFUSED, /* nothing listens (connection refused) */
    CJOIN_DIAL_CLOSED,  /* the member closed the link without a word */
};

struct cjoin {
    enum cjoin_phase phase;
    char addr[PFRAME_MAX_ADDR + 1]; /* the member dialled */
    uint64_t deadline;              /* CONTACT, ASKED, RETRY, SYNC */
    uint64_t retry_at;              /* RETRY */
    uint64_t contact_id;            /* the member that took the request */
    uint64_t cluster_id;            /* accepted: the cluster joined */
    unsigned tls_failed, refused, closed;
};

enum cjoin_event_type {
    CJOIN_EV_START = 1, /* the admin asked: dial addr */
    CJOIN_EV_LINK,      /* a link to addr came up (id) or a dial failed */
    CJOIN_EV_REFUSED,   /* the member refused our HELLO with a reason */
    CJOIN_EV_ANSWER,    /* the cluster's answer to the join request */
    CJOIN_EV_TICK,
    CJOIN_EV_SWITCHED, /* the store was replaced (rc 0) or not (why) */
    CJOIN_EV_VOTER,    /* this node is a voter of the configuration */
    CJOIN_EV_STOP,     /* clustering stops: end the join with rc, msg */
};

struct cjoin_event {
    enum cjoin_event_type type;
    uint64_t now; /* monotonic ms; every event */
    union {
        struct {
            const char *addr; /* normalised "host:port" (borrowed) */
        } start;
        struct {
            const char *addr; /* the link's peer address (borrowed) */
            uint64_t id;      /* the peer's node id (0: before HELLO) */
            bool up;
            enum cjoin_dial dial; /* !up */
            const char *why;      /* !up: the edge's words, or NULL */
        } link;
        struct {
            uint64_t id;        /* the refusing peer (0: our contact dial) */
            const char *reason; /* its words (borrowed) */
        } refused;
        struct {
            int rc;
            const char *msg;
            const void *data; /* rc 0: the cluster id (u64) */
            size_t len;
        } answer;
        struct {
            int rc;
            const char *why;
        } switched;
        struct {
            int rc;
            const char *msg;
        } stop;
    } u;
};

struct cjoin_update {
    uint64_t send_to;    /* send the join request to this member (0: no) */
    bool switch_store;   /* close the peer link, replace the store with one of
                            cluster_id, then step SWITCHED */
    uint64_t cluster_id; /* switch_store */
    bool finished;       /* the join ended: drop the contact dial, forget the
                            token, answer the shell with rc and msg */
    int rc;
    char msg[PFRAME_MAX_MSG + 400]; /* "" when none */
    uint64_t deadline;              /* step a TICK at or after this (0: none) */
};

/* What cjoin_admit needs to know about this node and the join asked for. */
struct cjoin_admit {
    const char *addr;      /* the member to dial, normalised (borrowed) */
    const char *self_addr; /* this node's peer address (borrowed) */
    uint64_t cluster_id;   /* this node's cluster */
    unsigned members;      /* in this node's configuration */
    bool self_member;      /* this node is in it */
    bool addr_member;      /* addr is a member's address in it */
    bool removed;          /* this node was removed (cremove.h) */
};

/* cjoin_admit decides whether `xmpp cluster join` may start on j: 0 (it
 * may: a node alone, or one that was removed from its cluster (it joins
 * again under a new id, which the edge takes when
 * removed is set), 1 (nothing to do: already a member of that cluster;
 * msg says so), or an error with msg: XE_BUSY (a join under way), XE_INVAL
 * (this node's own address), XE_STATE (a member of a multi-node cluster:
 * leave it first). */
int cjoin_admit(const struct cjoin *j, const struct cjoin_admit *a, char *msg,
                size_t msglen);

/* ---- the leader's side: deciding a join request ---- */

/* A member of the leader's configuration, as cjoin_decide reads it. */
struct cjoin_member {
    uint64_t id;
    const char *addr; /* borrowed */
    bool voter;
};

enum cjoin_verdict {
    CJOIN_REFUSE = 0, /* refused: the rc and msg say why */
    CJOIN_ALREADY,    /* the same id at the same address: done (idempotent) */
    CJOIN_PROMOTE,    /* ... left a non-voter: promote it */
    CJOIN_ADD,        /* add it as a non-voter (promoted once caught up) */
    CJOIN_REPLACE,    /* remove *old_id (holding the address) and add it, in
                         one configuration change (`--replace`) */
};

/* cjoin_decide is the leader's (self_id's) decision on the join request j
 * (borrowed) given its configuration (members, n): *verdict, *old_id for
 * REPLACE, and msg (the answer's words; refusals name the command that
 * gets past them).  0, or for CJOIN_REFUSE XE_EXISTS (the id is a member
 * elsewhere, or the address is held and replace is not set) or XE_STATE
 * (the address is the leader's own). */
int cjoin_decide(const struct cjoin_member *members, unsigned n, uint64_t self_id,
                 const struct pframe_join *j, enum cjoin_verdict *verdict,
                 uint64_t *old_id, char *msg, size_t msglen);

/* cjoin_check_addr compares the join request j (borrowed) a joining node
 * sent with the address hello_addr its HELLO claimed (the one the peer
 * link checked against its certificate's SANs): a node may only ask to
 * join at the address its certificate vouches for (docs/cluster.md,
 * "Identity and membership").  0 or XE_AUTH, with why filled. */
int cjoin_check_addr(const char *hello_addr, const struct pframe_join *j, char *why,
                     size_t whylen);

/* cjoin_step feeds ev (borrowed) to j and fills *u (caller's storage).
 * 0, XE_BUSY (START while a join is under way: nothing changes) or
 * XE_INVAL (an unknown event, START without an address). */
int cjoin_step(struct cjoin *j, const struct cjoin_event *ev, struct cjoin_update *u);

#endif
