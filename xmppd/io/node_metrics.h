/* node_metrics.h: the node's Prometheus endpoint (xmpp metrics listen, off
 * by default; docs/admin.md "Metrics"): gathers the node's counters into
 * core/metrics.h's facts and serves them with io/metrics_http.h. */
#ifndef XMPPD_NODE_METRICS_H
#define XMPPD_NODE_METRICS_H

#include <stddef.h>

struct node;

/* node_metrics_apply (re)starts or stops the endpoint to match node.state's
 * metrics-listen (port 0: off).  0, or XE_IO / XE_INVAL with why (the
 * endpoint is then off). */
int node_metrics_apply(struct node *n, char *why, size_t whylen);

/* node_metrics_stop closes the endpoint (at shutdown). */
void node_metrics_stop(struct node *n);

/* node_metrics_storage_error counts a failure of the replicated store
 * (xmppd_storage_errors_total). */
void node_metrics_storage_error(struct node *n);

/* node_metrics_text writes the exposition text into out; its length or a
 * negative XE_ code (core/metrics.h). */
int node_metrics_text(struct node *n, char *out, size_t len);

#endif
