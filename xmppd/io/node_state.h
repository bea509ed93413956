/* node_state.h: the node-local state file, <state-dir>/node.state.
 *
 * What belongs to this node alone (docs/architecture.md, "Two kinds of
 * state"): its node id, whether XMPP is enabled, the addresses its listeners
 * bind to, its certificate files and TLS mode, whether it takes part in a
 * cluster, the cluster trust bundle and the peer-link address.  Replicated
 * configuration (domain, call bridges, users) is not here: it lives in the
 * Raft store under <state-dir>/raft/ (io/rnode.c, core/repl.c).
 *
 * The file is UTF-8 text, one "key value" line each, so an admin can read
 * it; the last line is "checksum <hex>", a BLAKE2b-128 of every byte before
 * it.  A file without that line (truncated), with a wrong checksum
 * (damaged or edited), an unknown version or a malformed line is reported
 * with the file's path, what is wrong and how to recover; it is never
 * replaced by defaults.
 *
 *     # xmppd node state; written by xmppd, do not edit (checksummed)
 *     version 1
 *     node-id 7f3a9c0011223344
 *     xmpp-enabled yes
 *     component-listen 127.0.0.1:5223     (repeatable)
 *     tls optional                        (off | optional | required)
 *     key node1.key                       (optional: certs)
 *     cert node1.crt
 *     bundle ca-bundle.pem                (optional)
 *     keepalive 60
 *     auth-timeout 10
 *     client-port 5222                    (0: no client listener)
 *     client-tls-port 0                   (direct TLS, XEP-0368; 0: none)
 *     client-tls required                 (optional | required)
 *     sasl-plain no                       (yes: offer SASL PLAIN under TLS)
 *     client-max-sessions 10              (sessions per account; 0: no limit)
 *     client-rate 65536                   (bytes/s per client connection; 0: off)
 *     client-version no                   (yes: answer XEP-0092 software version)
 *     ws-port 5280                        (XMPP over WebSocket, RFC 7395; 0: off)
 *     wss-port 5281                       (the same over TLS; 0: off)
 *     ws-path /xmpp-websocket
 *     ws-origin https://app.example.com   (repeatable; none: any origin)
 *     ws-proxy 10.0.0.0/8                 (repeatable; trusted for X-Forwarded-For)
 *     cluster-enabled no
 *     trust cluster-ca.pem                (optional)
 *     peer-listen 127.0.0.1:5224          (optional)
 *     raft-timing fast-lan                (optional; default timing otherwise)
 *     checksum 0f1e...
 *
 * Writes are atomic: node.state.tmp in the same directory (mode 0600),
 * write, fsync, rename over node.state, fsync the directory.  A crash at any
 * point leaves the old file or the new one.  All system calls go through
 * struct node_state_sys so tests can make any step fail. */
#ifndef XMPPD_NODE_STATE_H
#define XMPPD_NODE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conffile_parse.h"

#define NODE_STATE_FILE "node.state"
#define NODE_STATE_VERSION 1
#define NODE_STATE_MAX_LISTEN 16
#define NODE_STATE_MAX_BYTES (64 * 1024)
#define NODE_STATE_MAX_PATH 256
#define NODE_STATE_DEFAULT_CLIENT_PORT 5222
#define NODE_STATE_DEFAULT_WS_PORT 5280
#define NODE_STATE_DEFAULT_CLIENT_MAX_SESSIONS 10
#define NODE_STATE_MAX_CLIENT_MAX_SESSIONS 100000
#define NODE_STATE_DEFAULT_CLIENT_RATE 65536
#define NODE_STATE_MIN_CLIENT_RATE 1024 /* below this a login takes seconds */
#define NODE_STATE_MAX_CLIENT_RATE 1000000000
#define NODE_STATE_DEFAULT_WSS_PORT 5281
#define NODE_STATE_DEFAULT_WS_PATH "/xmpp-websocket"
#define NODE_STATE_MAX_WS_PATH 64
#define NODE_STATE_MAX_WS_ORIGINS 32
#define NODE_STATE_MAX_WS_ORIGIN 128 /* bytes of an origin, NUL included */
#define NODE_STATE_MAX_WS_PROXIES 32
#define NODE_STATE_MAX_WS_PROXY 64 /* an address or CIDR range, NUL included */

enum node_state_tls {
    NODE_STATE_TLS_OFF = 0,  /* plaintext only */
    NODE_STATE_TLS_OPTIONAL, /* offered when certificates are set (the default) */
    NODE_STATE_TLS_REQUIRED, /* every session must use TLS: no certs, no enable */
};

/* The node's local configuration.  Strings are "" when unset. */
struct node_state {
    uint64_t node_id; /* random, never 0; new after xmpp reset */
    bool xmpp_enabled;
    struct conf_listen listen[NODE_STATE_MAX_LISTEN]; /* component listeners */
    size_t n_listen;
    enum node_state_tls tls;
    char key[NODE_STATE_MAX_PATH];    /* file in <state-dir>/pki, or an absolute path */
    char cert[NODE_STATE_MAX_PATH];   /* same */
    char bundle[NODE_STATE_MAX_PATH]; /* same, optional */
    unsigned keepalive_s;             /* 1..CONF_MAX_SECONDS */
    unsigned auth_timeout_s;          /* 1..CONF_MAX_SECONDS */
    /* XMPP listener limits (conffile_parse.h): connections in all and per address,
     * and the stanza bytes before authentication */
    unsigned max_conns, max_conns_per_addr, preauth_stanza_bytes;
    /* Clients (RFC 6120 c2s): the port of the client listener on
     * each listen address (0: none), whether STARTTLS is required before
     * SASL (NODE_STATE_TLS_REQUIRED, the default) or only offered
     * (NODE_STATE_TLS_OPTIONAL; never OFF), and whether SASL PLAIN is offered
     * (under TLS only). */
    unsigned client_port;
    unsigned client_tls_port; /* XEP-0368 direct TLS for clients; 0: none */
    enum node_state_tls client_tls;
    bool sasl_plain;
    /* Client limits (docs/admin.md "Clients"): sessions
     * per account (0: no limit), the byte rate per client connection in
     * bytes/s (0: not shaped; the burst and the rate before login follow
     * from it, node_xmpp.c), and whether XEP-0092 is answered. */
    unsigned client_max_sessions;
    unsigned client_rate;
    bool client_version;
    /* XMPP over WebSocket (RFC 7395; docs/websocket.md): the
     * ports of the ws and wss listeners on each listen address (0: off)
     * and the resource path (also the host-meta URLs'). */
    unsigned ws_port, wss_port;
    char ws_path[NODE_STATE_MAX_WS_PATH];
    /* The Origin allow-list of the upgrade (none: any origin) and the
     * proxies whose X-Forwarded-For is believed (docs/websocket.md). */
    char ws_origins[NODE_STATE_MAX_WS_ORIGINS][NODE_STATE_MAX_WS_ORIGIN];
    size_t n_ws_origins;
    char ws_proxies[NODE_STATE_MAX_WS_PROXIES][NODE_STATE_MAX_WS_PROXY];
    size_t n_ws_proxies;
    bool cluster_enabled;
    char trust[NODE_STATE_MAX_PATH]; /* cluster trust bundle, optional */
    struct conf_listen peer;         /* peer-link address; port 0 when unset */
    bool raft_fast_lan;              /* Raft timing: raft_options_fast_lan instead of
                                        the defaults ("raft-timing fast-lan") */
    struct conf_listen metrics;      /* Prometheus endpoint (io/metrics_http.h);
                                        port 0: off ("metrics-listen") */
    bool draining;                   /* xmpp cluster drain, kept across restarts until
                                        drain --off ("draining yes"; written only when on,
                                        so that an older binary reads an undrained file) */
};

/* The system calls node_state_save makes (POSIX meaning; -1 and errno on
 * failure).  Tests substitute failing ones. */
struct node_state_sys {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    int (*fsync)(int fd);
    int (*close)(int fd);
    int (*rename)(const char *from, const char *to);
};

extern const struct node_state_sys state_sys_posix;

/* node_state_defaults fills s with a fresh node's state: a new random node id
 * (libsodium; sodium_init must have run), XMPP disabled, no listeners, TLS
 * optional, no certificates, default timers, clustering off. */
void node_state_defaults(struct node_state *s);

/* node_state_new_id gives s a new random node id (never 0). */
void node_state_new_id(struct node_state *s);

/* node_state_load reads <dir>/node.state into *out.  A leftover node.state.tmp
 * (a write cut short) is removed.  Returns 0; XE_NOTFOUND when there is no
 * file (a new node: the caller decides); XE_CORRUPT (truncated, checksum
 * mismatch, malformed, unknown version), XE_PERM (group or other may read
 * it), XE_IO.  On failure err (errlen bytes) receives one line naming the
 * file, what is wrong and what to do. */
int node_state_load(const char *dir, struct node_state *out, char *err, size_t errlen);

/* node_state_save writes s atomically to <dir>/node.state (see above) with the
 * system calls of sys (NULL: state_sys_posix).  0, or XE_IO / XE_INVAL (a
 * value that cannot be written, e.g. a path with a line break) with err
 * filled; on failure the old file is untouched and no temp file is left. */
int node_state_save(const char *dir, const struct node_state *s,
                    const struct node_state_sys *sys, char *err, size_t errlen);

/* node_state_format writes s as the file's text (checksum line included) into
 * out (len bytes).  Returns the length, or XE_LIMIT if it does not fit,
 * XE_INVAL for a value with a control character. */
int node_state_format(const struct node_state *s, char *out, size_t len);

/* node_state_parse parses the file's text (len bytes, borrowed).  0 or
 * XE_CORRUPT with why (one line, no path) filled. */
int node_state_parse(const char *text, size_t len, struct node_state *out, char *why,
                     size_t whylen);

/* node_state_tls_name returns "off", "optional" or "required". */
const char *node_state_tls_name(enum node_state_tls t);

/* node_state_tls_parse sets *out from a name as above; 0 or XE_INVAL. */
int node_state_tls_parse(const char *name, enum node_state_tls *out);

/* node_state_ws_path_ok tells whether p may be the WebSocket path: absolute,
 * shorter than NODE_STATE_MAX_WS_PATH, printable ASCII without space, '?' or
 * '#'. */
bool node_state_ws_path_ok(const char *p);

/* node_state_ws_origin_ok tells whether o may be on the Origin allow-list: an
 * origin as browsers send it (RFC 6454 §6.2): scheme "://" host [":"
 * port], lower case, printable ASCII, no path, shorter than
 * NODE_STATE_MAX_WS_ORIGIN. */
bool node_state_ws_origin_ok(const char *o);

/* node_state_node_id_hex writes the id as 16 lowercase hex digits (out >= 17). */
void node_state_node_id_hex(uint64_t id, char *out);

#endif
