/* cmds_user.h: the control handlers of `xmpp user ...` (client accounts),
 * in the table of io/cmds.c.  Request and result shapes:
 * docs/control-protocol.md and docs/admin.md "Client accounts".
 *
 * Writes go through the Raft log from any node (a follower forwards them to
 * the leader) and are answered once committed and applied here.  The
 * password arrives in the request, is checked and copied into sodium_malloc
 * memory, turned into SCRAM credentials (RFC 5802 §3, RFC 7677) on the
 * libuv thread pool (PBKDF2 with a large iteration count would stall the
 * loop and with it Raft's heartbeats), and wiped: only the salt, iteration
 * count, StoredKey and ServerKey enter the log.  Nothing here logs a
 * password. */
#ifndef XMPPD_CMDS_USER_H
#define XMPPD_CMDS_USER_H

#include "ctl.h"

/* Longest password accepted, bytes (before preparation). */
#define CMDS_PASSWORD_MAX 1024
/* Salt bytes for new credentials (RFC 5802 §5.1: random; RFC 7677 asks
 * for at least 16). */
#define CMDS_SALT_BYTES 16

/* xmpp.user.add {name, password}: a new account; "exists" when the name is
 * taken.  Result {name, jid, created, iterations}. */
int cmds_user_add(void *ud, json_t *args, json_t **result, struct ctl_error *err);

/* xmpp.user.passwd {name, password}: new credentials for an existing
 * account ("not-found" otherwise).  Result as for add. */
int cmds_user_passwd(void *ud, json_t *args, json_t **result, struct ctl_error *err);

/* xmpp.user.del {name}: removes the account.  Result {name}. */
int cmds_user_del(void *ud, json_t *args, json_t **result, struct ctl_error *err);

/* xmpp.user.list {}: {users: [{name, jid, created}], iterations}; created
 * is "YYYY-MM-DD HH:MM:SS UTC", or null for accounts made before it was
 * recorded. */
int cmds_user_list(void *ud, json_t *args, json_t **result, struct ctl_error *err);

/* xmpp.user.iterations {iterations?}: without the argument, shows
 * {iterations, default}; with it, sets the PBKDF2 iteration count used for
 * new credentials, cluster-wide (CL_ITER_MIN..CL_ITER_MAX).  Existing
 * accounts keep theirs until their password is set again. */
int cmds_user_iterations(void *ud, json_t *args, json_t **result, struct ctl_error *err);

struct node;

/* cmds_user_status adds the account part of `xmpp status` to status (an
 * object, borrowed): "accounts", the number of client accounts in the
 * replicated state (the same on every node that is up to date). */
void cmds_user_status(struct node *n, json_t *status);

#endif
