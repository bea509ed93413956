/* conn.h: TCP listeners and connections on libuv, with bounded write queues.
 *
 * The connection manager accepts TCP connections on its listeners, names
 * each with a unique 64-bit id (a counter, never reused), hands what it reads
 * to its owner through struct conn_hooks and writes what the owner queues.
 * The owner (node.c, on behalf of the srv core) knows connections only by id.
 *
 * Writes: conn_send copies bytes into the connection's pending buffer;
 * conn_mgr_flush hands every pending buffer to uv_write (the buffer is owned
 * by the write request and freed in its callback).  Queued bytes (pending +
 * in flight + plaintext a TLS session holds until its handshake ends) are
 * bounded: beyond the bound conn_send returns XE_BUSY.
 *
 * Closing: conn_close flushes, then shuts the write side down (uv_shutdown),
 * waits for the peer's EOF (at most CONN_DRAIN_MS) and closes.  Bytes sent
 * before a TLS handshake ended are flushed too: the handshake finishes
 * first (within the same bound).  Memory of a
 * connection is freed only in its libuv close callback; ids stay resolvable
 * until then but refuse new writes.  Hooks are called from libuv callbacks
 * and from conn_mgr_flush (gone, on a failed write), never from conn_send or
 * conn_close, so an owner may call those from inside its own callbacks.
 *
 * TLS (tls.h): a listener may carry a server TLS context and a mode (off,
 * optional: the first byte decides between direct TLS and plaintext XML,
 * required: anything but a TLS ClientHello is closed and logged), and
 * conn_connect makes outgoing connections, with a client TLS context or
 * without.  The hooks see plaintext only; handshake failures are logged with
 * the peer's address and the reason and end the connection (gone).
 *
 * STARTTLS (RFC 6120 §5.4): conn_starttls puts a server TLS session under
 * an accepted plaintext connection; what was queued before it still goes
 * out in plaintext, what is queued after it waits for the handshake, and
 * everything read after it is TLS. */
#ifndef XMPPD_CONN_H
#define XMPPD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "logging.h"
#include "tls.h"

#define CONN_DEFAULT_MAX_QUEUED (8u * 1024 * 1024)
#define CONN_DRAIN_MS 5000
/* The most bytes one data hook call carries: a larger read is handed on in
 * slices, and the owner flushes after each (conn.c deliver).  32 KiB cuts
 * a 64 KiB read, or 256 stanzas of 100 bytes, in two: smaller slices
 * measured slower, each costing a write and, on a busy machine, a context
 * switch (docs/benchmarks.md "Session 8: where one node waits"). */
#define CONN_SLICE_BYTES (32u * 1024)

struct conn_hooks {
    void *ud;
    /* opened: connection id was accepted on a listener with tag, from peer
     * ("127.0.0.1:40312", borrowed), or an outgoing connection made by
     * conn_connect with tag reached peer (TCP is up; TLS may still be
     * negotiating, and what the owner sends waits for it).  Return 0 to keep
     * it, or a negative code to have it closed at once (no further hooks for
     * id). */
    int (*opened)(void *ud, uint64_t id, int tag, const char *peer);
    /* data: len bytes (borrowed, valid during the call) read from id, at
     * most CONN_SLICE_BYTES (a larger read comes in several calls, none
     * after the owner closed id), except the rest of a read in which the
     * owner called conn_starttls: that comes whole, in the next call. */
    void (*data)(void *ud, uint64_t id, const char *bytes, size_t len);
    /* gone: id ended without the owner asking (EOF, reset, write error, a
     * failed TLS handshake: UV_EPROTO, a refused outgoing connect: without
     * opened before it); err is 0 for an orderly EOF or TLS close_notify, or
     * a negative libuv code.  The connection is already closing: conn_send
     * to it fails. */
    void (*gone)(void *ud, uint64_t id, int err);
    /* secured (may be NULL): the TLS handshake of id finished (the peer's
     * certificate is in conn_tls_peer).  Called before the first data. */
    void (*secured)(void *ud, uint64_t id);
    /* drained: after conn_mgr_shutdown, every connection, listener and
     * internal handle is closed; the owner may now close its own handles. */
    void (*drained)(void *ud);
    /* room (may be NULL): a connection was accepted with max_conns open.
     * Return true when the owner closed one of its own connections to make
     * room (the new one is then kept, its address's limit permitting), false
     * to have the new one refused. */
    bool (*room)(void *ud);
};

struct conn_mgr;

/* conn_mgr_new creates a manager on loop (borrowed, must outlive it).
 * hooks are copied; log and node_name (used as the line prefix) are
 * borrowed.  max_queued is the per-connection bound on queued bytes (0: the
 * default).  Returns 0 or XE_NOMEM. */
int conn_mgr_new(uv_loop_t *loop, const struct conn_hooks *hooks,
                 const struct log_sink *log, const char *node_name, size_t max_queued,
                 struct conn_mgr **out);

/* conn_mgr_free frees the manager.  Requires that conn_mgr_shutdown ran and
 * drained was called (or that nothing was ever opened and the loop ran). */
void conn_mgr_free(struct conn_mgr *m);

/* Limits on accepted connections: how many may be open
 * at once in all, and from one IP address.  A connection over a limit is
 * closed as soon as it is accepted, before the owner hears of it (no opened
 * hook); the first refusal is logged at warn level, then at most one line
 * per CONN_REFUSE_LOG_MS, which counts the refusals not logged since.
 * Connections count until their memory is freed (draining ones too: they
 * hold a descriptor).  Outgoing connections (conn_connect) do not count. */
struct conn_limits {
    unsigned max_conns;    /* 0: no limit */
    unsigned max_per_addr; /* 0: no limit */
};

#define CONN_REFUSE_LOG_MS 10000

/* conn_mgr_set_limits sets the limits (copied) for connections accepted
 * from now on; connections already open stay. */
void conn_mgr_set_limits(struct conn_mgr *m, const struct conn_limits *l);

/* conn_mgr_refused returns how many connections the limits refused. */
uint64_t conn_mgr_refused(const struct conn_mgr *m);

/* conn_listen starts listening on host (numeric IPv4/IPv6, borrowed):port;
 * accepted connections carry tag.  On failure err gets one line such as
 * "cannot listen on 127.0.0.1:5223: address already in use".  Returns 0,
 * XE_INVAL (bad address), XE_IO (bind/listen failed) or XE_NOMEM. */
int conn_listen(struct conn_mgr *m, const char *host, int port, int tag, char *err,
                size_t errlen);

/* conn_listen_tls is conn_listen with TLS under each accepted connection:
 * tls (borrowed; must outlive the manager) is a server context, mode says
 * whether plaintext is still accepted (TLS_MODE_OPTIONAL: the first byte
 * 0x16 starts direct TLS, anything else is plaintext) or refused
 * (TLS_MODE_REQUIRED: logged with the peer's address, then closed).
 * TLS_MODE_OFF ignores tls.  Errors as conn_listen; XE_INVAL also when mode
 * is not off and tls is NULL or a client context. */
int conn_listen_tls(struct conn_mgr *m, const char *host, int port, int tag,
                    struct tls_ctx *tls, enum tls_mode mode, char *err, size_t errlen);

/* conn_connect opens an outgoing connection to host (numeric IPv4/IPv6,
 * borrowed):port and returns its id in *id at once.  With tls (a client
 * context, borrowed, must outlive the manager; NULL for plaintext) the
 * session checks the server's certificate for verify_name (a DNS name or
 * IP address, borrowed; may be NULL when the context does not verify).
 * Hooks: opened(tag) when TCP is up, secured when TLS is, gone when the
 * connect or the handshake fails (after a log line with the reason).
 * Bytes sent before then wait.  No timeout here: the owner closes an
 * attempt that takes too long.  Returns 0, XE_INVAL, XE_STATE (shutting
 * down), XE_IO or XE_NOMEM, with one line in err. */
int conn_connect(struct conn_mgr *m, const char *host, int port, int tag,
                 struct tls_ctx *tls, const char *verify_name, uint64_t *id, char *err,
                 size_t errlen);

/* conn_tls_peer describes the peer's certificate of id (tls.h).  0,
 * XE_NOTFOUND (no such id, or no certificate), XE_STATE (not TLS, or the
 * handshake has not finished). */
int conn_tls_peer(struct conn_mgr *m, uint64_t id, struct tls_peer_info *out);

/* conn_is_tls: id is a connection that speaks TLS. */
bool conn_is_tls(struct conn_mgr *m, uint64_t id);

/* conn_starttls upgrades id, an accepted connection that speaks plaintext,
 * to TLS on tls (a server context, borrowed, must outlive the manager), as
 * RFC 6120 §5.4.3.3 has it after <proceed/>: the bytes queued for id so far
 * (the <proceed/>) are written in plaintext, then a server handshake runs;
 * bytes queued from now on wait for it (and count toward the queue bound).
 * May be called from inside the data hook of id.  The first byte read
 * afterwards must start a TLS handshake record: a client that sent more
 * plaintext after its <starttls/> broke §5.4.3.3 ("MUST NOT send any
 * further data" until the proceed), and its connection is ended as a
 * protocol error (logged, rate-limited like other bad connections; gone
 * with UV_EPROTO): those bytes never reach the owner.  (Bytes that came in
 * the same read as the <starttls/> were handed to the owner already, in
 * that data call and the next; the owner must drop them.)  The secured
 * hook follows the handshake, a failed one is logged with the peer and the
 * reason and ends in gone.  Returns 0, XE_NOTFOUND, XE_CLOSED (closing), XE_STATE
 * (already TLS, or not an accepted connection), XE_INVAL (tls is NULL or not a server
 * context) or XE_NOMEM. */
int conn_starttls(struct conn_mgr *m, uint64_t id, struct tls_ctx *tls);

/* conn_tls_binding fills *out with id's channel-binding data
 * (tls_conn_binding, tls.h).  0, XE_NOTFOUND, XE_STATE (not TLS, or the
 * handshake has not finished) or XE_TLS. */
int conn_tls_binding(struct conn_mgr *m, uint64_t id, struct srv_tls_info *out);

/* conn_tag returns the tag of id's listener (or of conn_connect), or -1
 * for an unknown id. */
int conn_tag(struct conn_mgr *m, uint64_t id);

/* conn_send queues len bytes of data (copied) for id.  Returns 0,
 * XE_NOTFOUND (unknown id), XE_CLOSED (closing) or XE_BUSY (the queue bound
 * would be exceeded; nothing was queued). */
int conn_send(struct conn_mgr *m, uint64_t id, const char *data, size_t len);

/* conn_room tells how many bytes conn_send takes for id now without
 * refusing them (0: none, or id is closing or unknown). */
size_t conn_room(struct conn_mgr *m, uint64_t id);

/* conn_pause_read stops reading id (paused true; bytes already read were
 * handed on) or starts it again (false): the byte-rate shaper of client
 * connections (srv.h env.pause_read).  No hook is called from inside it:
 * a failed restart closes id silently (logged; the owner's next
 * conn_send fails).  Unknown, closing or ended ids are ignored;
 * conn_close reads again by itself. */
void conn_pause_read(struct conn_mgr *m, uint64_t id, bool paused);

/* conn_close asks for id to be flushed and closed; no hooks are called for
 * it afterwards.  Unknown or already closing ids are ignored. */
void conn_close(struct conn_mgr *m, uint64_t id);

/* conn_abort closes id at once, without flushing what is queued or waiting
 * for the peer (a connection that never became useful: an idle or
 * half-done handshake).  No hooks are called for it afterwards. */
void conn_abort(struct conn_mgr *m, uint64_t id);

/* conn_mgr_limit_bad_logs writes at most one warning per window_ms about
 * bad connections (a failed TLS handshake, not TLS on a TLS port), the next
 * one saying how many were held back (a flood of bad
 * connections must not flood the log).  0: every one is logged (default). */
void conn_mgr_limit_bad_logs(struct conn_mgr *m, uint64_t window_ms);

/* conn_mgr_flush starts writes for everything queued since the last flush.
 * Call it after each batch of conn_send/conn_close (after every srv call). */
void conn_mgr_flush(struct conn_mgr *m);

/* conn_mgr_shutdown stops the listeners, closes (flushing) every open
 * connection and calls hooks->drained once everything is closed. */
void conn_mgr_shutdown(struct conn_mgr *m);

/* conn_mgr_count returns the number of connections not yet freed. */
size_t conn_mgr_count(const struct conn_mgr *m);

#endif
