/* repl_int.h: the inside of struct cl_state, shared by repl.c (state, lookup,
 * apply) and repl_codec.c (the byte encoding of commands and snapshots).
 * Not part of the API: callers use repl.h only. */
#ifndef XMPPD_REPL_INT_H
#define XMPPD_REPL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repl.h"

/* cl_seen_ring: the results of the last CL_SEEN_MAX request ids applied,
 * e[head] the oldest once n == CL_SEEN_MAX.  boot is 0 for version 2 ids
 * (the only ones in `seen`, the snapshot's ring). */
struct cl_seen_ring {
    struct cl_seen {
        uint64_t origin, boot, seq;
        int rc;
    } e[CL_SEEN_MAX];
    size_t n, head;
};

/* One origin's session (version 3 ids, repl.h): the results of its applied
 * requests with seq >= mark, seq ascending (at most CL_WINDOW: each request
 * has seq < first + CL_WINDOW <= mark + CL_WINDOW). */
struct cl_session {
    uint64_t origin, boot;
    uint64_t mark; /* the highest first applied: lower seqs are refused */
    struct cl_result {
        uint64_t seq;
        int rc;
    } * r; /* malloc'd, cap entries */
    size_t n, cap;
};

struct cl_state {
    uint64_t cluster_id;
    char domain[CL_DOMAIN_MAX + 1];
    struct cl_callbridge **cb; /* sorted by name; each malloc'd */
    size_t n_cb, cap_cb;
    struct cl_user **users; /* sorted by name; each malloc'd, wiped on free */
    size_t n_users, cap_users;
    uint32_t user_iter; /* USER_ITER; 0: never set (CL_ITER_DEFAULT) */
    /* results of the last request ids applied (repl.h), of admin and
     * roster writes: part of the snapshot, the same on every node */
    struct cl_seen_ring seen;
    /* the same for LOGIN and PRES_LAST entries, which change no replicated
     * state: their own ring, so that a flood of failed logins cannot push
     * the ids of admin and roster writes out of the one above; not in the
     * snapshot (a node restored from one may count a resent entry twice,
     * as it knows only the failures since anyway) */
    struct cl_seen_ring soft;
    /* the sessions of version 3 ids, least recently used (in log order)
     * first: part of the snapshot, the same on every node */
    struct cl_session sess[CL_SESSIONS_MAX];
    size_t n_sess;
    struct roster_db *rosters; /* owned; never NULL */
};

/* cl__creds_valid: u has valid SCRAM-SHA-256 credentials, and valid
 * SCRAM-SHA-1 ones when it has those. */
bool cl__creds_valid(const struct cl_user *u);
/* cl__user_free wipes and frees u (taken; NULL is fine). */
void cl__user_free(struct cl_user *u);
/* cl__grow makes room for one more pointer in *arr (comment in repl.c). */
int cl__grow(void ***arr, size_t n, size_t *cap);
/* cl__cb_new returns a new call-bridge entry (owned), or NULL. */
struct cl_callbridge *cl__cb_new(const char *name, const unsigned char *secret,
                                 size_t len);
/* cl__seen_add remembers the result of request (origin, boot, seq) in ring. */
void cl__seen_add(struct cl_seen_ring *ring, const struct cl_req *id, int rc);
/* cl__sess_add appends a session (origin, boot, mark) read from a snapshot
 * as the most recently used, with room for k results: XE_NOMEM, or
 * XE_CORRUPT when CL_SESSIONS_MAX are there. */
int cl__sess_add(struct cl_state *s, uint64_t origin, uint64_t boot, uint64_t mark,
                 size_t k, struct cl_session **out);

#endif
