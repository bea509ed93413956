/* srv.h: the XMPP node core: every session of this node and the router
 * between them, as one state machine.
 *
 * Bytes and events in, bytes and actions out.  The edge (xmppd/io) accepts
 * connections, gives each a unique id, feeds srv what it reads and carries
 * out what srv asks through struct srv_env: write these bytes to connection
 * N, close connection N, and wake me at time T (the return of srv_tick and of
 * every input call is folded into srv_next_deadline).  srv never blocks,
 * never reads a clock (now_ms is the monotonic time in ms, passed in) and
 * draws randomness only through env->random, so a test can drive it byte by
 * byte and compare transcripts.
 *
 * Re-entrancy: env callbacks are called from inside srv_* calls; they must
 * not call back into srv.  After srv asked env->close(conn) it has forgotten
 * conn: a later srv_conn_input/srv_conn_closed for it is ignored. */
#ifndef XMPPD_SRV_H
#define XMPPD_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "xs.h"

#define SRV_NO_DEADLINE UINT64_MAX

enum srv_listener {
    SRV_LISTENER_COMPONENT, /* XEP-0114 jabber:component:accept (5223) */
    SRV_LISTENER_CLIENT,    /* RFC 6120 c2s (5222); later issues */
};

struct srv_config {
    const char *domain;       /* the XMPP domain this node serves; copied */
    const char *node_name;    /* short name used in log lines ("n1"); copied */
    uint64_t keepalive_ms;    /* whitespace keep-alive interval; a session that
                                 sent nothing for 3 intervals is closed
                                 (connection-timeout).  Default 60000. */
    uint64_t auth_timeout_ms; /* unauthenticated connections are closed after
                                 this.  Default 10000. */
    struct xs_limits limits;  /* framer limits; zero fields take defaults */
};

/* srv_config_default fills c with the defaults (domain NULL). */
void srv_config_default(struct srv_config *c);

struct srv_env {
    void *ud;
    /* send queues len bytes (copied) for writing to conn.  Returns 0, or a
     * negative XE_ code when the connection cannot take more (srv then
     * closes it). */
    int (*send)(void *ud, uint64_t conn, const char *data, size_t len);
    /* close flushes what was queued for conn, then closes it. */
    void (*close)(void *ud, uint64_t conn);
    /* random fills buf with len unpredictable bytes (stream ids). */
    void (*random)(void *ud, void *buf, size_t len);
    const struct log_sink *log; /* may be NULL */
};

struct srv;

/* srv_new creates the core.  cfg and env are copied (env->log is borrowed
 * and must outlive srv).  Returns 0, XE_INVAL (no or bad domain) or
 * XE_NOMEM. */
int srv_new(const struct srv_config *cfg, const struct srv_env *env, struct srv **out);
/* srv_free frees everything without calling env (use srv_shutdown first for
 * a clean close). */
void srv_free(struct srv *srv);

/* srv_set_callbridge adds call bridge name (authenticating as the component
 * <name>.<domain>) with secret (len bytes, copied into sodium-guarded
 * memory), or replaces its secret; a connected session of a call bridge
 * whose secret changed is closed (not-authorized).  Returns 0, XE_INVAL (bad
 * name) or XE_NOMEM. */
int srv_set_callbridge(struct srv *srv, const char *name, const unsigned char *secret,
                       size_t len);
/* srv_del_callbridge removes name and closes its session; XE_NOTFOUND if
 * unknown. */
int srv_del_callbridge(struct srv *srv, const char *name);

/* srv_callbridge_connected tells whether call bridge name has an
 * authenticated session on this node (srv is only read). */
bool srv_callbridge_connected(const struct srv *srv, const char *name);

/* srv_conn_open registers a new accepted connection.  peer is the remote
 * address for logs ("127.0.0.1:40312"), copied.  Returns 0 or XE_NOMEM (the
 * edge then closes the socket), XE_EXISTS if conn is already known. */
int srv_conn_open(struct srv *srv, uint64_t conn, enum srv_listener kind, const char *peer,
                  uint64_t now_ms);
/* srv_conn_input feeds bytes read from conn. */
void srv_conn_input(struct srv *srv, uint64_t conn, const void *data, size_t len,
                    uint64_t now_ms);
/* srv_conn_closed tells srv the peer closed conn or the edge failed on it;
 * srv drops the session without writing to it. */
void srv_conn_closed(struct srv *srv, uint64_t conn, uint64_t now_ms);

/* srv_tick runs timers due at now_ms (keep-alives, idle and auth timeouts). */
void srv_tick(struct srv *srv, uint64_t now_ms);
/* srv_next_deadline returns when srv_tick should next run, or
 * SRV_NO_DEADLINE. */
uint64_t srv_next_deadline(const struct srv *srv);

/* srv_shutdown closes every stream cleanly (RFC 6120 §4.4: 
 * <stream:error><system-shutdown/> then </stream:stream>) and asks env to
 * close each connection. */
void srv_shutdown(struct srv *srv);

struct srv_stats {
    uint64_t conns;          /* open connections */
    uint64_t components;     /* authenticated component sessions */
    uint64_t routed;         /* stanzas delivered */
    uint64_t bounced;        /* error replies generated for undeliverable stanzas */
    uint64_t auth_failures;  /* failed handshakes */
    uint64_t stream_errors;  /* stream errors sent */
};

void srv_get_stats(const struct srv *srv, struct srv_stats *out);

#endif
