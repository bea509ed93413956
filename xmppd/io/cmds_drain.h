/* cmds_drain.h: the control handlers of draining a node
 * and of the WebSocket Origin and proxy lists, in the
 * table of io/cmds.c (docs/admin.md, docs/cluster.md "Draining a node",
 * docs/websocket.md).
 *
 * xmpp.cluster.drain {off?: bool}: on the leader, leadership is handed
 * over first (deferred answer); then every XMPP session is sent to another
 * member and new ones are too.  Result: {draining, leadership_transferred,
 * sessions_redirected, message}.  With off: {draining: false, message}.
 * xmpp.websocket.origin / xmpp.websocket.proxy {op: "add"|"del"|"list",
 * value?: string}: node-local lists, saved, applied at once.  Result:
 * {origins|proxies: [..], message?}. */
#ifndef XMPPD_CMDS_DRAIN_H
#define XMPPD_CMDS_DRAIN_H

#include "ctl.h"

int cmds_cluster_drain(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_ws_origin(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_ws_proxy(void *ud, json_t *args, json_t **result, struct ctl_error *err);

#endif
