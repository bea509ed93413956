/* cmds.h: the daemon's control commands: the table the control socket
 * (io/ctl_socket.h) dispatches to, for the requests of
 * docs/control-protocol.md that mmp-cli sends.
 *
 * Each handler runs on the loop thread with ud = the struct node.  Reads
 * answer at once from local state (node-local state, the replicated state
 * as applied on this node, the XMPP core's counters).  Writes to node-local
 * state (listen, certs, enable, disable, reset) are done and saved before
 * the answer.  Writes to replicated state (domain, call bridges) are
 * submitted through Raft (io/rnode.h) and answered only once committed and
 * applied on this node, or with a clear error (no-leader, timeout): the
 * handler defers its answer (ctl_socket_defer). */
#ifndef XMPPD_CMDS_H
#define XMPPD_CMDS_H

#include <stddef.h>

#include "ctl.h"

/* The command table (static, borrowed) and its length. */
extern const struct ctl_command cmds_table[];
extern const size_t cmds_count;

/* cmds_new_secret writes a new call-bridge secret into out (at least
 * CMDS_SECRET_LEN + 1 bytes): 160 random bits from libsodium as 32 base32
 * letters in groups of four, "yn4w-uehd-brpq-kjjb-miaw-wxqa-irzu-c2m2". */
#define CMDS_SECRET_LEN 39
void cmds_new_secret(char *out);

#endif
