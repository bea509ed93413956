/* cmds_health.h: the control handler of `xmpp health`,
 * in the table of io/cmds.c.  Result: {health: "healthy" | "degraded" |
 * "failed", exit_status: 0 | 1 | 2, reasons: [lines]} (docs/admin.md
 * "Health"); the verdict is xmppd/core/health.c's. */
#ifndef XMPPD_CMDS_HEALTH_H
#define XMPPD_CMDS_HEALTH_H

#include "ctl.h"

int cmds_health(void *ud, json_t *args, json_t **result, struct ctl_error *err);

#endif
