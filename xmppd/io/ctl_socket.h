/* ctl_socket.h: the control socket: a libuv unix-socket listener that
 * speaks the control protocol (xmppd/core/ctl.h, docs/control-protocol.md).
 *
 * The socket file is created mode 0600 (only root and the daemon's user can
 * talk to it).  Any number of clients (up to max_clients) may be connected;
 * each request is dispatched to the command table the daemon registered,
 * on the loop thread, and answered at once from local state; a handler that
 * must wait (a cluster write) defers its answer with ctl_socket_defer.  A
 * malformed request gets an error response and the connection stays usable;
 * an oversized one gets a "too-large" error and the connection is closed; a
 * client that disconnects mid-request is simply dropped.  Nothing a client
 * sends can crash the daemon or make it buffer more than one maximal
 * request per client.
 *
 * Slots (70 clients that each sent half a request
 * locked the shell out): a request must arrive whole within
 * partial_timeout_ms of its first byte, and a client that has nothing
 * pending (no partial request, no deferred answer) is closed after
 * idle_timeout_ms.  mmp-cli connects once per command (mmp-cli/conn.c), so
 * an interactive shell idle between commands holds no connection.  When
 * all max_clients slots are taken, a new client closes the oldest client
 * that is idle or mid-request to take its place; only when every client is
 * waiting for a deferred answer is the new one refused ("busy").  A client
 * waiting for a deferred answer is never timed out: the wait is ours.
 *
 * Requires: the process ignores SIGPIPE (signal(SIGPIPE, SIG_IGN) in main),
 * as for every libuv stream, or a client that hangs up kills the writer. */
#ifndef XMPPD_CTL_SOCKET_H
#define XMPPD_CTL_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "ctl.h"
#include "logging.h"

struct ctl_socket_config {
    const char *path;                /* socket path, e.g. <state-dir>/control.sock */
    const struct ctl_command *table; /* borrowed; must outlive the server */
    size_t ncommands;
    void *ud;                    /* passed to every handler */
    const struct log_sink *log;  /* borrowed, may be NULL */
    unsigned max_clients;        /* 0: 64 */
    unsigned partial_timeout_ms; /* 0: CTL_SOCKET_PARTIAL_TIMEOUT_MS */
    unsigned idle_timeout_ms;    /* 0: CTL_SOCKET_IDLE_TIMEOUT_MS */
};

#define CTL_SOCKET_PARTIAL_TIMEOUT_MS 10000
#define CTL_SOCKET_IDLE_TIMEOUT_MS 60000

struct ctl_socket_stats {
    uint64_t requests;     /* requests answered or deferred */
    uint64_t bad_requests; /* malformed, oversized, invalid or unknown command */
    uint64_t accepted;     /* connections accepted */
    uint64_t timed_out;    /* closed for a partial request or idleness */
    uint64_t evicted;      /* closed to make room for a new client */
    unsigned clients;      /* connected now */
};

struct ctl_socket;

/* ctl_socket_start listens on cfg->path on loop.  A stale socket file left
 * by a dead daemon is replaced; a path where another process still answers
 * gives XE_BUSY, a path that is not a socket XE_EXISTS (nothing is removed).
 * 0 and *out (owned: release with ctl_socket_close), or a negative XE code
 * with err (errlen bytes, may be NULL) saying what to do. */
int ctl_socket_start(uv_loop_t *loop, const struct ctl_socket_config *cfg,
                     struct ctl_socket **out, char *err, size_t errlen);

/* ctl_socket_close stops listening, removes the socket file, closes every
 * client (their deferred requests are orphaned: finishing them is still
 * allowed and sends nothing) and frees the server once libuv has closed all
 * handles; on_closed (may be NULL) is called then, with arg. */
void ctl_socket_close(struct ctl_socket *s, void (*on_closed)(void *arg), void *arg);

/* ctl_socket_get_stats copies the counters. */
void ctl_socket_get_stats(const struct ctl_socket *s, struct ctl_socket_stats *out);

/* ---- deferred responses ----------------------------------------------- */

struct ctl_deferred;

/* ctl_socket_defer, called only from inside a handler that s is running,
 * returns a token for the request being handled (owned by the handler until
 * it passes it to ctl_deferred_finish), or NULL when out of memory.  The
 * handler then returns CTL_DEFERRED. */
struct ctl_deferred *ctl_socket_defer(struct ctl_socket *s);

/* ctl_deferred_finish sends the deferred response, as a handler return
 * would: rc 0 with result (taken; NULL means {}), or a negative XE code with
 * err (borrowed; may be NULL).  Frees d.  If the client has gone away
 * meanwhile (or the server closed), nothing is sent. */
void ctl_deferred_finish(struct ctl_deferred *d, int rc, json_t *result,
                         const struct ctl_error *err);

#endif
