/* never.h: XD_NEVER, for a case the code rules out and still handles.
 *
 *     if (XD_NEVER(s->state != SESS_OPENING))
 *         return XE_STATE;
 *
 * XD_NEVER(cond) is true when cond is.  In a debug build (NDEBUG not
 * defined) a true cond also fails an assert, so the tests stop at the
 * caller's bug; in a release build it is only evaluated and the code takes
 * the safe branch written after it, so a bug costs one request, not the
 * node.  sqlite's NEVER() is the model.
 *
 * For preconditions that only our own code can break: the state a function
 * must be called in, an argument the edge computes.  Never for what a peer,
 * a client or an operator can send: that is counted and answered with an
 * error (STYLE.md, "Errors and ownership").  raft/ has its own RAFT_NEVER
 * (raft/internal.h): it is a separate library. */
#ifndef XMPPD_NEVER_H
#define XMPPD_NEVER_H

#include <assert.h>

#ifdef NDEBUG
#define XD_NEVER(cond) __builtin_expect(!!(cond), 0)
#else
#define XD_NEVER(cond) ((cond) ? (assert(!"XD_NEVER: " #cond), 1) : 0)
#endif

#endif
