/* cmds_export.h: the control handlers of `xmpp callbridge export` and
 * `xmpp metrics`, in the table of
 * io/cmds.c.  Shapes in docs/control-protocol.md. */
#ifndef XMPPD_CMDS_EXPORT_H
#define XMPPD_CMDS_EXPORT_H

#include "ctl.h"

/* xmpp.callbridge.export {name}: what the call bridge needs, in one answer:
 * {name, domain, component, secret, port, srv: [{record, node_id, address,
 * port, target}], records: [zone lines], ca_bundle: path | null, tls}.
 * The secret is in it: the admin asked for it by name. */
int cmds_callbridge_export(void *ud, json_t *args, json_t **result,
                           struct ctl_error *err);

/* xmpp.metrics.set {listen: "host:port" | "off"}: the Prometheus endpoint
 * (node-local, off by default); {listen, url} or {listen: null}. */
int cmds_metrics_set(void *ud, json_t *args, json_t **result, struct ctl_error *err);

#endif
