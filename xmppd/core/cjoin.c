/* cjoin.c: the phases of this node's join to a cluster (contract in
 * cjoin.h; docs/cluster.md "Join"). */
#include "cjoin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "never.h"
#include "plink.h"

static void finish(struct cjoin *j, struct cjoin_update *u, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* finish ends the join: the shell hears rc and the message. */
static void finish(struct cjoin *j, struct cjoin_update *u, int rc, const char *fmt, ...)
{
    va_list ap;

    u->finished = true;
    u->rc = rc;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(u->msg, sizeof u->msg, fmt, ap);
        va_end(ap);
    }
    memset(j, 0, sizeof *j);
}

static void start(struct cjoin *j, const struct cjoin_event *ev)
{
    memset(j, 0, sizeof *j);
    snprintf(j->addr, sizeof j->addr, "%s", ev->u.start.addr);
    j->phase = CJOIN_CONTACT;
    j->deadline = ev->now + CJOIN_CONTACT_MS;
}

/* dial_failed ends a join early when the member cannot be reached the
 * same way a few times in a row (instead of the contact timeout). */
static void dial_failed(struct cjoin *j, const struct cjoin_event *ev,
                        struct cjoin_update *u)
{
    const char *why = ev->u.link.why;

    switch (ev->u.link.dial) {
    case CJOIN_DIAL_FOREIGN:
        /* The port answers in XMPP or HTTP: once is enough, it will not
         * change (not "refused ... another cluster"). */
        finish(j, u, XE_PROTO, "%s; join at the member's peer address instead (port %d)",
               why != NULL && why[0] != '\0'
                   ? why
                   : "that port does not speak the cluster peer protocol",
               PLINK_DEFAULT_PORT);
        break;
    case CJOIN_DIAL_TLS:
        if (++j->tls_failed >= 2)
            finish(
                j, u, XE_TLS,
                "the TLS handshake with %s failed: a certificate is not trusted "
                "(check xmpp cluster trust on both nodes; the daemons' logs say which)",
                j->addr);
        break;
    case CJOIN_DIAL_REFUSED:
        /* refused for 3 s at least: a member that is just starting gets
         * time */
        if (++j->refused >= 3 && ev->now + CJOIN_CONTACT_MS >= j->deadline + 3000)
            finish(j, u, XE_CLOSED,
                   "nothing listens on %s: run xmpp cluster enable there, or check the "
                   "address",
                   j->addr);
        break;
    case CJOIN_DIAL_CLOSED:
        if (++j->closed >= 3)
            finish(j, u, XE_PERM,
                   "%s refused this node on the peer link (another cluster, or a node id "
                   "it does not allow: its log says why)",
                   j->addr);
        break;
    default:
        break;
    }
}

static void link(struct cjoin *j, const struct cjoin_event *ev, struct cjoin_update *u)
{
    if (j->phase != CJOIN_CONTACT || ev->u.link.addr == NULL ||
        strcmp(ev->u.link.addr, j->addr) != 0)
        return;
    if (ev->u.link.up) {
        j->contact_id = ev->u.link.id;
        j->phase = CJOIN_ASKED;
        u->send_to = j->contact_id;
    } else if (ev->u.link.id == 0) {
        dial_failed(j, ev, u);
    }
}

static void answer(struct cjoin *j, const struct cjoin_event *ev, struct cjoin_update *u)
{
    const char *msg = ev->u.answer.msg;

    if (j->phase != CJOIN_ASKED)
        return;
    if (ev->u.answer.rc == XE_BUSY && ev->now + 300 < j->deadline) {
        /* Another membership change is under way (thesis §4.1: one at a
         * time): ask again shortly. */
        j->phase = CJOIN_RETRY;
        j->retry_at = ev->now + CJOIN_RETRY_MS;
        return;
    }
    if (ev->u.answer.rc < 0) {
        /* The member's (or the leader's) own words reach the shell. */
        finish(j, u, ev->u.answer.rc, "%s",
               msg != NULL && msg[0] != '\0' ? msg : xe_strerror(ev->u.answer.rc));
        return;
    }
    if (ev->u.answer.len != 8 || ev->u.answer.data == NULL) {
        finish(j, u, XE_PROTO, "the member answered without a cluster id");
        return;
    }
    j->cluster_id = pframe_u64_get(ev->u.answer.data);
    j->phase = CJOIN_SWITCH; /* on the next tick, outside the peer link's call */
}

static void tick(struct cjoin *j, const struct cjoin_event *ev, struct cjoin_update *u)
{
    switch (j->phase) {
    case CJOIN_SWITCH:
        j->phase = CJOIN_SWITCHING;
        u->switch_store = true;
        u->cluster_id = j->cluster_id;
        break;
    case CJOIN_RETRY:
        if (ev->now >= j->retry_at) {
            j->phase = CJOIN_ASKED;
            u->send_to = j->contact_id;
        }
        break;
    case CJOIN_CONTACT:
        if (ev->now >= j->deadline)
            finish(j, u, XE_TIMEOUT,
                   "could not reach %s over the peer link within %d s (is clustering "
                   "enabled there, the address right, its certificate trusted here and "
                   "ours there? see both daemons' logs)",
                   j->addr, CJOIN_CONTACT_MS / 1000);
        break;
    case CJOIN_SYNC:
        if (ev->now >= j->deadline)
            finish(j, u, XE_TIMEOUT,
                   "joined, but not yet promoted to voter within %d s: check xmpp "
                   "cluster status on the leader",
                   CJOIN_SYNC_MS / 1000);
        break;
    default:
        break;
    }
}

static uint64_t next_deadline(const struct cjoin *j)
{
    switch (j->phase) {
    case CJOIN_CONTACT:
    case CJOIN_SYNC:
        return j->deadline;
    case CJOIN_RETRY:
        return j->retry_at;
    case CJOIN_SWITCH:
        return 1; /* at once */
    default:
        return 0;
    }
}

int cjoin_admit(const struct cjoin *j, const struct cjoin_admit *a, char *msg,
                size_t msglen)
{
    msg[0] = '\0';
    if (j->phase != CJOIN_NONE) {
        snprintf(msg, msglen, "a join is already in progress");
        return XE_BUSY;
    }
    if (strcmp(a->addr, a->self_addr) == 0) {
        snprintf(msg, msglen, "that is this node's own address: join another member");
        return XE_INVAL;
    }
    /* A removed node goes on as if alone: its members refuse it. */
    if (a->members <= 1 || a->removed)
        return 0;
    if (a->addr_member && a->self_member) {
        snprintf(msg, msglen, "already a member of that cluster");
        return 1;
    }
    snprintf(msg, msglen,
             "this node is a member of cluster %016" PRIx64
             " with %u members; leave it first with xmpp cluster disable",
             a->cluster_id, a->members);
    return XE_STATE;
}

int cjoin_step(struct cjoin *j, const struct cjoin_event *ev, struct cjoin_update *u)
{
    memset(u, 0, sizeof *u);
    switch (ev->type) {
    case CJOIN_EV_START:
        if (ev->u.start.addr == NULL || ev->u.start.addr[0] == '\0')
            return XE_INVAL;
        if (j->phase != CJOIN_NONE) {
            u->deadline = next_deadline(j);
            return XE_BUSY;
        }
        start(j, ev);
        break;
    case CJOIN_EV_LINK:
        link(j, ev, u);
        break;
    case CJOIN_EV_REFUSED:
        /* Our contact refused us: the joiner's shell hears why at once,
         * not "could not reach" after the timeout. */
        if (j->phase == CJOIN_CONTACT && ev->u.refused.id == 0)
            finish(j, u, XE_PERM, "the member refused this node: %s",
                   ev->u.refused.reason != NULL ? ev->u.refused.reason : "");
        break;
    case CJOIN_EV_ANSWER:
        answer(j, ev, u);
        break;
    case CJOIN_EV_TICK:
        tick(j, ev, u);
        break;
    case CJOIN_EV_SWITCHED:
        if (j->phase != CJOIN_SWITCHING)
            break;
        if (ev->u.switched.rc < 0) {
            finish(j, u, ev->u.switched.rc, "%s",
                   ev->u.switched.why != NULL ? ev->u.switched.why : "");
            break;
        }
        j->phase = CJOIN_SYNC;
        j->deadline = ev->now + CJOIN_SYNC_MS;
        break;
    case CJOIN_EV_VOTER:
        if (j->phase == CJOIN_SYNC)
            finish(j, u, 0, NULL);
        break;
    case CJOIN_EV_STOP:
        if (j->phase != CJOIN_NONE)
            finish(j, u, ev->u.stop.rc, "%s",
                   ev->u.stop.msg != NULL ? ev->u.stop.msg : "");
        break;
    default:
        (void)XD_NEVER(true); /* a type cjoin.h does not name */
        return XE_INVAL;
    }
    u->deadline = next_deadline(j);
    return 0;
}

/* ---- the leader's side ---- */

int cjoin_decide(const struct cjoin_member *members, unsigned n, uint64_t self_id,
                 const struct pframe_join *j, enum cjoin_verdict *verdict,
                 uint64_t *old_id, char *msg, size_t msglen)
{
    const struct cjoin_member *by_id = NULL, *by_addr = NULL;

    for (unsigned i = 0; i < n; i++) {
        if (members[i].id == j->node_id)
            by_id = &members[i];
        if (by_addr == NULL && strcmp(members[i].addr, j->addr) == 0)
            by_addr = &members[i];
    }
    *verdict = CJOIN_REFUSE;
    *old_id = 0;
    if (by_id != NULL && strcmp(by_id->addr, j->addr) == 0) {
        *verdict = by_id->voter ? CJOIN_ALREADY : CJOIN_PROMOTE;
        snprintf(msg, msglen, "%s",
                 by_id->voter ? "already a member"
                              : "already a member; promotion started");
        return 0;
    }
    if (by_id != NULL) {
        snprintf(msg, msglen,
                 "node %016" PRIx64 " is already a member at %s; remove it first with: "
                 "xmpp cluster remove %016" PRIx64,
                 j->node_id, by_id->addr, j->node_id);
        return XE_EXISTS;
    }
    if (by_addr != NULL && !j->replace) {
        snprintf(
            msg, msglen,
            "address %s is held by member node %016" PRIx64
            " (was this node reset?); remove it with: xmpp cluster remove %016" PRIx64
            ", or join with: xmpp cluster join <addr> <token> --replace",
            j->addr, by_addr->id, by_addr->id);
        return XE_EXISTS;
    }
    if (by_addr != NULL && by_addr->id == self_id) {
        snprintf(msg, msglen,
                 "address %s is held by the leader itself (node %016" PRIx64
                 "): it cannot be replaced",
                 j->addr, by_addr->id);
        return XE_STATE;
    }
    if (by_addr != NULL) {
        /* --replace: the stale member goes in the same step, so the voter
         * count never counts both (Raft thesis §4.1: one change at a time) */
        *verdict = CJOIN_REPLACE;
        *old_id = by_addr->id;
        snprintf(msg, msglen, "replacing the stale member");
        return 0;
    }
    *verdict = CJOIN_ADD;
    snprintf(msg, msglen, "added as a non-voter; promoted once caught up");
    return 0;
}

int cjoin_check_addr(const char *hello_addr, const struct pframe_join *j, char *why,
                     size_t whylen)
{
    /* The peer link bound the HELLO's address to the certificate; the
     * address the request would add to the configuration must be that
     * one. */
    if (!plink_addr_same(j->addr, hello_addr)) {
        snprintf(why, whylen,
                 "the join request names address %.64s, but the node's HELLO (checked "
                 "against its certificate) claimed %.64s: join with the address the "
                 "certificate names",
                 j->addr, hello_addr);
        return XE_AUTH;
    }
    return 0;
}
