/* node_metrics.c: the node's Prometheus endpoint (contract in
 * node_metrics.h): what the node knows, gathered into core/metrics.h's
 * facts at each scrape. */
#include "node_metrics.h"

#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "err.h"
#include "metrics.h"
#include "metrics_http.h"
#include "node_int.h"
#include "peer.h"
#include "rnode.h"
#include "srv.h"

static void gather_cluster(struct node *n, struct metrics_facts *f,
                           struct metrics_peer *p)
{
    struct peer_mgr *pm = cluster_peers(n);
    const struct raft_config *cfg = rnode_config(n->rn);

    f->cluster = n->st.cluster_enabled;
    for (unsigned i = 0; cfg != NULL && i < cfg->n && f->n_peers < METRICS_MAX_PEERS;
         i++) {
        const struct raft_member *mb = &cfg->members[i];
        struct peer_info pi;

        if (mb->id == n->st.node_id)
            continue;
        snprintf(p[f->n_peers].id, sizeof p[f->n_peers].id, "%016llx",
                 (unsigned long long)mb->id);
        p[f->n_peers].state = "down";
        if (pm != NULL && peer_get(pm, mb->id, &pi) == 0) {
            p[f->n_peers].state = pi.state;
            f->duplicates += pi.duplicates;
        }
        f->n_peers++;
    }
    f->peers = p;
}

int node_metrics_text(struct node *n, char *out, size_t len)
{
    static struct metrics_peer peers[METRICS_MAX_PEERS]; /* loop thread only */
    struct metrics_facts f;
    struct node_info ni;
    char id[17];

    memset(&f, 0, sizeof f);
    node_get_info(n, &ni);
    snprintf(id, sizeof id, "%016llx", (unsigned long long)n->st.node_id);
    f.version = XMPPD_VERSION;
    f.node_id = id;
    f.uptime_s = ni.uptime_s;
    f.serving = node_xmpp_running(n);
    f.components = ni.components;
    f.clients_ws = ni.ws_clients;
    f.clients_tcp = ni.clients - ni.ws_clients;
    f.conns = ni.conns;
    if (n->x != NULL && n->x->srv != NULL) {
        struct srv_stats s;
        srv_get_stats(n->x->srv, &s);
        f.routed = s.routed;
        f.bounced = s.bounced;
        f.logins = s.logins;
        f.login_failures = s.login_failures;
        f.login_refused = s.login_refused;
        f.component_auth_failures = s.auth_failures;
        if (srv_cluster_started(n->x->srv)) {
            struct srv_cluster_stats cs;
            srv_cluster_get_stats(n->x->srv, &cs);
            f.forwarded = cs.forwarded;
            f.fwd_rejected = cs.rejected;
            f.queued = cs.waiting + cs.inflight;
            f.bounced += cs.errors;
        }
    }
    if (n->rn != NULL) {
        struct rnode_status rs;
        rnode_get_status(n->rn, &rs);
        f.term = rs.term;
        f.commit_index = rs.commit_index;
        f.applied_index = rs.applied_index;
        f.leader_changes = rs.raft.leader_changes;
        f.leader = rs.role == RAFT_LEADER;
        f.store_stopped = rs.role == RAFT_STOPPED;
        gather_cluster(n, &f, peers);
    }
    f.storage_errors = n->storage_errors;
    return metrics_format(&f, out, len);
}

static int fill(void *ud, char *out, size_t len)
{
    return node_metrics_text(ud, out, len);
}

int node_metrics_apply(struct node *n, char *why, size_t whylen)
{
    metrics_http_stop(n->metrics);
    n->metrics = NULL;
    if (n->st.metrics.port == 0)
        return 0;
    return metrics_http_start(&n->loop, &n->st.metrics, fill, n, &n->log, &n->metrics,
                              why, whylen);
}

void node_metrics_stop(struct node *n)
{
    metrics_http_stop(n->metrics);
    n->metrics = NULL;
}

void node_metrics_storage_error(struct node *n)
{
    n->storage_errors++;
}
