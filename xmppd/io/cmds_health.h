/* cmds_health.h: the control handler of `xmpp health`,
 * in the table of io/cmds.c.  Result: {health: "healthy" | "degraded" |
 * "failed", exit_status: 0 | 1 | 2, reasons: [lines]} (docs/admin.md
 * "Health"); the verdict is xmppd/core/health.c's. */
#ifndef XMPPD_CMDS_HEALTH_H
#define XMPPD_CMDS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl.h"

struct node;

int cmds_health(void *ud, json_t *args, json_t **result, struct ctl_error *err);

/* cmds_health_store: when the node's replicated store has stopped (a
 * storage failure), writes what that means and what to do to out (len
 * bytes; health_store_stopped's line) and returns true; xmpp status and
 * xmpp cluster status show it as "store" until a restart clears it. */
bool cmds_health_store(struct node *n, char *out, size_t len);

#endif
