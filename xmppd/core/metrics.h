/* metrics.h: the Prometheus text exposition of one node's counters.
 *
 * Pure: the edge (xmppd/io/metrics_http.c) gathers what the node knows into
 * struct metrics_facts; metrics_format writes the text exposition format
 * 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
 * "# HELP" and "# TYPE" lines, then one sample per line.  Names follow
 * Prometheus's conventions (https://prometheus.io/docs/practices/naming/):
 * the xmppd_ prefix, _total on counters, base units in the name
 * (_seconds), labels for dimensions (kind, peer, state) instead of one name
 * per value.  docs/admin.md "Metrics" lists every metric. */
#ifndef XMPPD_METRICS_H
#define XMPPD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_PEERS 64

/* One other cluster member as this node sees it. */
struct metrics_peer {
    char id[17];       /* hex node id */
    const char *state; /* peer link: "up", "connecting" or "down" (static) */
};

struct metrics_facts {
    const char *version; /* xmppd's version (borrowed) */
    const char *node_id; /* hex node id (borrowed) */
    uint64_t uptime_s;
    bool serving; /* XMPP listeners up */
    /* sessions now */
    uint64_t components, clients_tcp, clients_ws, conns;
    /* stanzas (counters since start) */
    uint64_t routed;    /* delivered to a session on this node */
    uint64_t bounced;   /* error replies for undeliverable stanzas */
    uint64_t forwarded; /* handed to the cluster for another node */
    uint64_t fwd_rejected;
    uint64_t queued;     /* now: waiting or in flight to another node */
    uint64_t duplicates; /* peer frames received again and dropped */
    /* Raft */
    bool cluster; /* clustering enabled: the peer metrics below apply */
    bool leader;  /* this node is the leader */
    uint64_t term, commit_index, applied_index, leader_changes;
    const struct metrics_peer *peers; /* borrowed */
    size_t n_peers;
    /* logins and handshakes (counters) */
    uint64_t logins, login_failures, login_refused, component_auth_failures;
    /* storage */
    uint64_t storage_errors; /* failures of the replicated store */
    bool store_stopped;      /* the store stopped taking writes */
};

/* metrics_format writes f's exposition text into out (len bytes, NUL
 * terminated).  Returns the text's length, or XE_LIMIT when out is too
 * small (4 KiB plus 200 bytes a peer always suffice). */
int metrics_format(const struct metrics_facts *f, char *out, size_t len);

/* metrics_label_escape writes s into out as a label value (the
 * exposition format escapes '\\', '"' and newline with a backslash).  0, or
 * XE_LIMIT when out (len bytes) is too small. */
int metrics_label_escape(const char *s, char *out, size_t len);

#endif
