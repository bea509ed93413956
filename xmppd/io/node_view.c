/* node_view.c: what the control handlers read of the node (contract in
 * node.h, "read by the control handlers"): accessors and the status
 * snapshot of xmpp cluster status, so that only the node's own files see
 * its structure (node_int.h). */
#include "node.h"

#include <string.h>

#include "cluster.h"
#include "err.h"
#include "node_int.h"
#include "rnode.h"

const struct log_sink *node_log(const struct node *n)
{
    return &n->log;
}

const char *node_name(const struct node *n)
{
    return n->name;
}

uv_loop_t *node_loop(struct node *n)
{
    return &n->loop;
}

bool node_stopping(const struct node *n)
{
    return n->stopping;
}

struct srv *node_srv(const struct node *n)
{
    return n->x != NULL ? n->x->srv : NULL;
}

int node_get_cluster_view(struct node *n, struct node_cluster_view *out)
{
    struct srv *s = node_srv(n);

    memset(out, 0, sizeof *out);
    if (n->rn == NULL)
        return XE_CLOSED;
    out->now_ms = uv_now(&n->loop);
    out->node_id = n->st.node_id;
    out->cluster_enabled = n->st.cluster_enabled;
    out->removed = cluster_removed(n);
    out->next_fast_lan = n->st.raft_fast_lan;
    out->draining = n->draining;
    rnode_get_status(n->rn, &out->raft);
    out->cfg = rnode_config(n->rn);
    out->peers = cluster_peers(n);
    out->srv = s != NULL && srv_cluster_started(s) ? s : NULL;
    cluster_self_addr(n, out->self, sizeof out->self);
    cluster_get_counters(n, &out->counters);
    node_get_info(n, &out->info);
    return 0;
}
