/* cmds_health.c: `xmpp health`: gathers the node's facts for health_judge
 * (xmppd/core/health.h) and answers its verdict. */
#include "cmds_health.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "err.h"
#include "health.h"
#include "node.h"
#include "peer.h"
#include "pki.h"
#include "rnode.h"
#include "node_state.h"

/* cert_not_after: when the node certificate ends (0: unreadable). */
static int64_t cert_not_after(struct node *n, const struct node_state *st)
{
    struct pki_info info;
    char path[1024];

    if (node_file_path(n, st->cert, path, sizeof path) < 0 ||
        pki_inspect(path, &info, NULL, 0) < 0)
        return 0;
    return (int64_t)info.not_after;
}

/* members fills m (at most max) with the other members and their links. */
static size_t members(struct node *n, const struct node_state *st,
                      struct health_member *m, size_t max)
{
    const struct raft_config *cfg = rnode_config(node_rnode(n));
    struct peer_mgr *pm = cluster_peers(n);
    size_t k = 0;

    for (unsigned i = 0; i < cfg->n && k < max; i++) {
        struct peer_info pi;
        if (cfg->members[i].id == st->node_id)
            continue;
        memset(&m[k], 0, sizeof m[k]);
        node_state_node_id_hex(cfg->members[i].id, m[k].id);
        snprintf(m[k].addr, sizeof m[k].addr, "%s", cfg->members[i].address);
        if (pm != NULL && peer_get(pm, cfg->members[i].id, &pi) == 0) {
            m[k].link_up = pi.up;
            m[k].clock_known = pi.clock_known;
            m[k].clock_off_ms = pi.clock_offset_ms;
        }
        k++;
    }
    return k;
}

bool cmds_health_store(struct node *n, char *out, size_t len)
{
    struct rnode_status rs;

    if (node_rnode(n) == NULL)
        return false;
    rnode_get_status(node_rnode(n), &rs);
    if (rs.role != RAFT_STOPPED)
        return false;
    health_store_stopped(rs.stop_reason, out, len);
    return true;
}

int cmds_health(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    const struct node_state *st = node_local(n);
    struct health_member *m;
    struct health_facts f;
    struct health_verdict *v;
    struct node_info info;
    struct rnode_status rs;
    json_t *reasons;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    m = calloc(HEALTH_MAX_MEMBERS, sizeof *m);
    v = calloc(1, sizeof *v);
    if (m == NULL || v == NULL) {
        free(m);
        free(v);
        return XE_NOMEM;
    }
    memset(&f, 0, sizeof f);
    node_get_info(n, &info);
    f.now = (int64_t)time(NULL);
    f.xmpp_enabled = st->xmpp_enabled;
    f.serving = node_xmpp_running(n);
    f.last_error = info.last_error;
    f.cert_set = st->cert[0] != '\0';
    if (f.cert_set)
        f.cert_not_after = cert_not_after(n, st);
    f.cluster_enabled = st->cluster_enabled && node_rnode(n) != NULL;
    if (node_rnode(n) != NULL) {
        rnode_get_status(node_rnode(n), &rs);
        f.store_stopped = rs.role == RAFT_STOPPED;
        f.stop_reason = rs.stop_reason;
    }
    if (f.cluster_enabled) {
        f.removed = cluster_removed(n);
        f.leader_known = rs.leader_id != 0;
        f.draining = node_draining(n);
        f.members = m;
        f.n_members = members(n, st, m, HEALTH_MAX_MEMBERS);
    }
    health_judge(&f, v);
    reasons = json_array();
    for (size_t i = 0; reasons != NULL && i < v->n; i++)
        json_array_append_new(reasons, json_string(v->reasons[i]));
    *result = reasons == NULL
                  ? NULL
                  : json_pack("{s:s, s:i, s:o}", "health", health_level_name(v->level),
                              "exit_status", (int)v->level, "reasons", reasons);
    free(m);
    free(v);
    return *result != NULL ? 0 : XE_NOMEM;
}
