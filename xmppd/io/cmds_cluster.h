/* cmds_cluster.h: the control handlers of `xmpp cluster ...` (and the
 * member check of `xmpp reset`), in the table of io/cmds.c.  Request and
 * result shapes: docs/cluster.md "Commands" and "Status fields". */
#ifndef XMPPD_CMDS_CLUSTER_H
#define XMPPD_CMDS_CLUSTER_H

#include <stdbool.h>

#include "ctl.h"

struct node;

int cmds_cluster_status(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_cluster_trust(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_cluster_enable(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_cluster_disable(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_cluster_initialize(void *ud, json_t *args, json_t **result,
                            struct ctl_error *err);
int cmds_cluster_join(void *ud, json_t *args, json_t **result, struct ctl_error *err);
/* xmpp.cluster.invite {ttl_s}: a one-time join token for a new node that
 * joins through this member: {token, address, expires, ttl_s}. */
int cmds_cluster_invite(void *ud, json_t *args, json_t **result, struct ctl_error *err);
int cmds_cluster_remove(void *ud, json_t *args, json_t **result, struct ctl_error *err);

/* cmds_cluster_reset_check refuses `xmpp reset` on a member of a
 * multi-node cluster unless force is set (the error names the cluster and
 * the commands); with force it stops the peer link.  0, or an error set in
 * err. */
int cmds_cluster_reset_check(struct node *n, bool force, struct ctl_error *err);

#endif
