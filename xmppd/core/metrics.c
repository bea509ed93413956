/* metrics.c: the Prometheus text exposition of a node's counters (contract
 * in metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"

/* head writes the HELP and TYPE lines of one metric family. */
static void head(struct buf_fixed *o, const char *name, const char *type,
                 const char *help)
{
    buf_fixed_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct buf_fixed *o, const char *name, const char *type, const char *help,
                uint64_t v)
{
    head(o, name, type, help);
    buf_fixed_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

int metrics_label_escape(const char *s, char *out, size_t len)
{
    size_t k = 0;

    for (; *s != '\0'; s++) {
        const char *rep = *s == '\\'   ? "\\\\"
                          : *s == '"'  ? "\\\""
                          : *s == '\n' ? "\\n"
                                       : NULL;
        size_t need = rep != NULL ? 2 : 1;

        if (k + need >= len)
            return XE_LIMIT;
        if (rep != NULL)
            memcpy(out + k, rep, 2);
        else
            out[k] = *s;
        k += need;
    }
    if (len == 0)
        return XE_LIMIT;
    out[k] = '\0';
    return 0;
}

static void peers(struct buf_fixed *o, const struct metrics_facts *f)
{
    static const char *const states[] = {"up", "connecting", "down"};

    head(o, "xmppd_peer_link_state", "gauge",
         "Peer link to each other cluster member: 1 for its current state.");
    for (size_t i = 0; i < f->n_peers; i++) {
        for (size_t s = 0; s < sizeof states / sizeof states[0]; s++)
            buf_fixed_printf(o, "xmppd_peer_link_state{peer=\"%s\",state=\"%s\"} %d\n",
                             f->peers[i].id, states[s],
                             f->peers[i].state != NULL &&
                                 strcmp(f->peers[i].state, states[s]) == 0);
    }
}

int metrics_format(const struct metrics_facts *f, char *out, size_t len)
{
    struct buf_fixed o = {.p = out, .len = len};
    char ver[96], id[40];

    if (len == 0)
        return XE_LIMIT;
    if (metrics_label_escape(f->version != NULL ? f->version : "", ver, sizeof ver) < 0 ||
        metrics_label_escape(f->node_id != NULL ? f->node_id : "", id, sizeof id) < 0)
        return XE_LIMIT;
    head(&o, "xmppd_info", "gauge", "The node's id and xmppd's version (always 1).");
    buf_fixed_printf(&o, "xmppd_info{node_id=\"%s\",version=\"%s\"} 1\n", id, ver);
    one(&o, "xmppd_uptime_seconds", "gauge", "Seconds since the daemon started.",
        f->uptime_s);
    one(&o, "xmppd_serving", "gauge", "1 while the XMPP listeners are up.", f->serving);
    one(&o, "xmppd_connections", "gauge", "Open XMPP connections (any stage).", f->conns);
    head(&o, "xmppd_sessions", "gauge", "Authenticated sessions on this node, by kind.");
    buf_fixed_printf(&o, "xmppd_sessions{kind=\"component\"} %llu\n",
                     (unsigned long long)f->components);
    buf_fixed_printf(&o, "xmppd_sessions{kind=\"client_tcp\"} %llu\n",
                     (unsigned long long)f->clients_tcp);
    buf_fixed_printf(&o, "xmppd_sessions{kind=\"client_websocket\"} %llu\n",
                     (unsigned long long)f->clients_ws);
    one(&o, "xmppd_stanzas_routed_total", "counter",
        "Stanzas delivered to a session on this node.", f->routed);
    one(&o, "xmppd_stanzas_bounced_total", "counter",
        "Error replies generated for undeliverable stanzas.", f->bounced);
    one(&o, "xmppd_stanzas_forwarded_total", "counter",
        "Stanzas handed to the cluster for a session on another node.", f->forwarded);
    one(&o, "xmppd_stanzas_forward_rejected_total", "counter",
        "Stanzas the cluster refused to take (forwarding queue full).", f->fwd_rejected);
    one(&o, "xmppd_stanzas_queued", "gauge",
        "Stanzas waiting for, or in flight to, another node.", f->queued);
    one(&o, "xmppd_peer_duplicates_dropped_total", "counter",
        "Peer frames received again and dropped.", f->duplicates);
    one(&o, "xmppd_raft_term", "gauge", "The node's current Raft term.", f->term);
    one(&o, "xmppd_raft_commit_index", "gauge", "The highest committed log index known.",
        f->commit_index);
    one(&o, "xmppd_raft_applied_index", "gauge", "The highest log index applied here.",
        f->applied_index);
    one(&o, "xmppd_raft_leader", "gauge", "1 while this node is the Raft leader.",
        f->leader);
    one(&o, "xmppd_raft_leader_changes_total", "counter",
        "Times this node saw the leader change.", f->leader_changes);
    if (f->cluster)
        peers(&o, f);
    one(&o, "xmppd_client_logins_total", "counter", "Successful client SASL logins.",
        f->logins);
    one(&o, "xmppd_client_login_failures_total", "counter",
        "Failed client SASL attempts.", f->login_failures);
    one(&o, "xmppd_client_login_refused_total", "counter",
        "Client logins refused: address or account blocked.", f->login_refused);
    one(&o, "xmppd_component_auth_failures_total", "counter",
        "Failed component (call bridge) handshakes.", f->component_auth_failures);
    one(&o, "xmppd_storage_errors_total", "counter",
        "Failures of the replicated store since start.", f->storage_errors);
    one(&o, "xmppd_storage_stopped", "gauge",
        "1 while the replicated store has stopped taking writes.", f->store_stopped);
    if (o.full)
        return XE_LIMIT;
    return (int)o.used;
}
