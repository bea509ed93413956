/* node.h: one xmppd node: the srv core wired to libuv.
 *
 * The node owns the event loop, the srv core (xmppd/core/srv.h), the
 * connection manager (conn.h), one timer re-armed after every srv call to
 * srv_next_deadline, and the signal handlers:
 *   SIGTERM, SIGINT  clean shutdown: srv_shutdown closes every stream, the
 *                    listeners stop, writes flush, the loop ends, exit 0.
 *   SIGHUP           re-read <state-dir>/xmppd.conf and apply call-bridge
 *                    additions, secret changes and removals; a file that
 *                    fails to load is logged and the old configuration kept.
 * Time given to srv is uv_now(): monotonic milliseconds. */
#ifndef XMPPD_NODE_H
#define XMPPD_NODE_H

#include <stddef.h>

#include "log.h"

struct node_opts {
    const char *state_dir; /* holds xmppd.conf; borrowed */
    const char *name;      /* node name in log lines ("n1"); borrowed */
    enum log_level level;  /* stderr log level */
};

struct node;

/* node_start loads the configuration, creates the core and starts listening.
 * On failure err receives one line for the operator (no trailing newline,
 * no secrets) and everything is released.  Returns 0, or a negative XE_
 * code. */
int node_start(const struct node_opts *opts, struct node **out, char *err, size_t errlen);

/* node_run runs the loop until a clean shutdown has finished; returns 0. */
int node_run(struct node *n);

/* node_free releases the node (closing whatever is still open). */
void node_free(struct node *n);

#endif
