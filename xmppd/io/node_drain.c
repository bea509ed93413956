/* node_drain.c: the edge of draining a node (docs/cluster.md
 * "Draining a node"): the members' addresses handed to srv (which chooses
 * among them and closes the sessions, srv_drain) and refreshed when the
 * membership changes, the drain flag kept across XMPP restarts and, for
 * xmpp cluster drain, in node.state across restarts of the node, Raft
 * standby while draining (a drained node is not elected again), and the
 * stop on SIGTERM in a cluster: leadership handed over first, then the
 * sessions sent to other members. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cluster.h"
#include "err.h"
#include "htab.h"
#include "node_int.h"
#include "raft.h"
#include "rnode.h"
#include "srv.h"

#define STOP_TRANSFER_TIMEOUT_MS 5000
/* Long enough to try every other voter (one election timeout each). */
#define HANDOVER_TIMEOUT_MS 15000
#define HANDOVER_RETRY_MS 5000
#define DEFAULT_COMPONENT_PORT 5223

/* A target's strings (srv_drain copies them). */
struct dtarget {
    char comp[RAFT_ADDR_MAX + 8], c2s[RAFT_ADDR_MAX + 16];
    char wss[RAFT_ADDR_MAX + 32 + NODE_STATE_MAX_WS_PATH];
};

/* targets lists the other voting members with this node's ports (the
 * cluster's nodes are configured alike: the ports are node-local settings
 * an admin sets the same everywhere; docs/cluster.md).  Returns how many
 * were written to t and st (cap each). */
static size_t targets(struct node *n, struct srv_drain_target *t, struct dtarget *st,
                      size_t cap)
{
    const struct raft_config *cfg = n->rn != NULL ? rnode_config(n->rn) : NULL;
    unsigned comp_port =
        n->st.n_listen > 0 ? n->st.listen[0].port : DEFAULT_COMPONENT_PORT;
    size_t k = 0;

    if (cfg == NULL || !cluster_running(n))
        return 0;
    for (unsigned i = 0; i < cfg->n && k < cap; i++) {
        const struct raft_member *m = &cfg->members[i];
        char host[RAFT_ADDR_MAX], hp[RAFT_ADDR_MAX + 8];

        /* The member's host, in brackets when IPv6 (RFC 3986 §3.2.2, RFC
         * 6120 §4.9.3.19), by addr.h's one rule. */
        if (m->id == n->st.node_id || m->role != RAFT_VOTER ||
            addr_host_of(m->address, host, sizeof host) < 0 ||
            addr_join(host, comp_port, st[k].comp, sizeof st[k].comp) < 0)
            continue;
        memset(&t[k], 0, sizeof t[k]);
        t[k].node = m->id;
        t[k].comp = st[k].comp;
        if (n->st.client_port != 0 &&
            addr_join(host, n->st.client_port, st[k].c2s, sizeof st[k].c2s) == 0)
            t[k].c2s = st[k].c2s;
        /* RFC 7395 §3.6.1: a client must not follow a redirect to a lower
         * security context: only a wss URL is given. */
        if (n->st.wss_port != 0 && addr_join(host, n->st.wss_port, hp, sizeof hp) == 0) {
            snprintf(st[k].wss, sizeof st[k].wss, "wss://%s%s", hp, n->st.ws_path);
            t[k].wss = st[k].wss;
        }
        k++;
    }
    return k;
}

/* fingerprint: a hash (htab's) over the targets' nodes and addresses, to
 * tell whether a membership change changed them. */
static uint64_t fingerprint(const struct srv_drain_target *t, size_t k)
{
    uint64_t h = HTAB_HASH_INIT;

    for (size_t i = 0; i < k; i++) {
        const char *s[3] = {t[i].comp, t[i].c2s, t[i].wss};
        unsigned char id[8];

        for (int b = 0; b < 8; b++)
            id[b] = (unsigned char)(t[i].node >> (8 * b));
        h = htab_hash_more(h, id, sizeof id);
        for (int j = 0; j < 3; j++) {
            const char *v = s[j] != NULL ? s[j] : "";
            h = htab_hash_more(h, v, strlen(v) + 1); /* the NUL ends each */
        }
    }
    return h;
}

int node__drain_apply(struct node *n, struct xside *x, char *why, size_t whylen)
{
    struct srv_drain_target t[RAFT_MAX_MEMBERS];
    struct dtarget st[RAFT_MAX_MEMBERS];
    size_t k;
    int rc;

    if (x == NULL || x->srv == NULL)
        return 0;
    if (!n->draining) {
        srv_undrain(x->srv);
        n->drain_print = 0;
        return 0;
    }
    k = targets(n, t, st, RAFT_MAX_MEMBERS);
    if (k == 0) {
        snprintf(why, whylen,
                 "no other cluster member to send sessions to (drain needs a cluster of "
                 "two or more members, with the peer link up)");
        return XE_STATE;
    }
    rc = srv_drain(x->srv, t, k, uv_now(&n->loop));
    if (rc < 0)
        snprintf(why, whylen, "cannot drain: %s", xe_strerror(rc));
    else
        n->drain_print = fingerprint(t, k);
    node__after_srv(n);
    return rc;
}

static void hand_over(struct node *n);

static void on_handover_retry(uv_timer_t *t)
{
    struct node *n = t->data;

    if (n->draining)
        hand_over(n);
}

static void handed_over(void *arg, int rc, const char *msg)
{
    struct node *n = arg;

    n->drain_handover = false;
    if (rc >= 0) {
        LOG(&n->log, LOG_INFO, "%s draining: leadership handed over again", n->name);
        return;
    }
    /* The others may be down or behind for now: try again later. */
    LOG(&n->log, LOG_WARN,
        "%s draining but leader, and no other member took over (%s): trying again "
        "in %d s",
        n->name, msg != NULL ? msg : xe_strerror(rc), HANDOVER_RETRY_MS / 1000);
    if (n->handles_ready && !n->stopping)
        uv_timer_start(&n->handover, on_handover_retry, HANDOVER_RETRY_MS, 0);
}

/* hand_over: a draining node became leader, which Raft standby allows only
 * when no other voter could win for several election timeouts (raft.h
 * RAFT_EV_STANDBY; e.g. the others' logs were behind).  Now that it leads,
 * and brings the others up to date, it hands leadership to one that is not
 * on standby (a transfer to any voter passes the standby ones over). */
static void hand_over(struct node *n)
{
    if (n->drain_handover || n->stopping || n->stop_transfer || n->rn == NULL ||
        !rnode_is_leader(n->rn))
        return;
    n->drain_handover = true;
    LOG(&n->log, LOG_INFO, "%s draining but elected leader: handing leadership over",
        n->name);
    rnode_transfer(n->rn, 0, HANDOVER_TIMEOUT_MS, handed_over, n);
}

void node__drain_refresh(struct node *n)
{
    struct srv_drain_target t[RAFT_MAX_MEMBERS];
    struct dtarget st[RAFT_MAX_MEMBERS];
    size_t k;
    char why[256];

    if (n->draining)
        hand_over(n);
    if (!n->draining || n->x == NULL || n->x->srv == NULL)
        return;
    k = targets(n, t, st, RAFT_MAX_MEMBERS);
    if (k > 0 && srv_draining(n->x->srv) && fingerprint(t, k) == n->drain_print)
        return;
    if (k == 0 && !srv_draining(n->x->srv))
        return; /* a restart before the members are known: logged by the start */
    if (k == 0) {
        /* The last other member left: keep sending to the old list (those
         * nodes may still serve) rather than serve here unasked. */
        if (n->drain_print != 1)
            LOG(&n->log, LOG_WARN,
                "%s draining, but no other member is left: new sessions are still "
                "sent to the previous members (xmpp cluster drain --off to serve here)",
                n->name);
        n->drain_print = 1;
        return;
    }
    LOG(&n->log, LOG_INFO, "%s draining: the members changed, now sending to %zu",
        n->name, k);
    if (node__drain_apply(n, n->x, why, sizeof why) < 0)
        LOG(&n->log, LOG_WARN, "%s draining: %s", n->name, why);
}

/* drain_set turns draining on or off in memory, in srv, and in Raft
 * (standby: a drained node seeks no leadership, raft.h RAFT_EV_STANDBY). */
static int drain_set(struct node *n, bool on, char *why, size_t whylen)
{
    bool was = n->draining;
    int rc;

    n->draining = on;
    rc = node__drain_apply(n, n->x, why, whylen);
    if (rc < 0) {
        n->draining = was;
        return rc;
    }
    if (n->rn != NULL && on != was)
        rnode_standby(n->rn, on);
    if (on != was)
        LOG(&n->log, LOG_INFO, "%s %s", n->name,
            on ? "draining: XMPP sessions go to other members; this node seeks no "
                 "Raft leadership"
               : "drain ended: serving XMPP sessions again");
    return 0;
}

int node_drain(struct node *n, bool on, char *why, size_t whylen)
{
    bool was = n->draining, was_saved = n->st.draining;
    char err[256];
    int rc;

    rc = drain_set(n, on, why, whylen);
    if (rc < 0)
        return rc;
    /* Kept in node.state: a drained node comes back drained after a
     * restart (an upgrade, a reboot) until the admin ends the drain. */
    n->st.draining = on;
    if (on != was_saved && node_local_save(n, err, sizeof err) < 0) {
        n->st.draining = was_saved;
        drain_set(n, was, why, whylen);
        snprintf(why, whylen, "%s", err);
        return XE_IO;
    }
    return 0;
}

bool node_draining(const struct node *n)
{
    return n->draining;
}

/* ---- SIGTERM in a cluster ---- */

static void stop_later(struct node *n, void *arg, bool cancelled)
{
    (void)arg;
    (void)cancelled;
    node__stop(n);
}

/* drain_for_stop sends the sessions to other members before they would
 * get system-shutdown; nothing to do when there is no other member. */
static void drain_for_stop(struct node *n)
{
    char why[256];

    /* Not saved: the node is stopping, not being drained by the admin. */
    if (n->x != NULL && drain_set(n, true, why, sizeof why) < 0)
        LOG(&n->log, LOG_INFO, "%s stopping without drain: %s", n->name, why);
}

static void stop_transferred(void *arg, int rc, const char *msg)
{
    struct node *n = arg;

    n->stop_transfer = false;
    if (n->stopping)
        return;
    if (rc < 0)
        LOG(&n->log, LOG_WARN, "%s leadership not handed over before stopping: %s",
            n->name, msg != NULL ? msg : xe_strerror(rc));
    else
        LOG(&n->log, LOG_INFO, "%s leadership handed over before stopping", n->name);
    drain_for_stop(n);
    /* rnode.h: no rnode_close inside its callbacks: stop on the next turn. */
    node_later(n, stop_later, NULL);
}

bool node__stop_drain(struct node *n)
{
    const struct raft_config *cfg = n->rn != NULL ? rnode_config(n->rn) : NULL;

    if (cfg == NULL || cfg->n <= 1 || !cluster_running(n) || cluster_removed(n))
        return false;
    if (rnode_is_leader(n->rn)) {
        /* Raft thesis §3.10: the leader hands over before it goes, so the
         * cluster does not wait an election timeout for a new one. */
        n->stop_transfer = true;
        rnode_transfer(n->rn, 0, STOP_TRANSFER_TIMEOUT_MS, stop_transferred, n);
        return true;
    }
    drain_for_stop(n);
    return false;
}
