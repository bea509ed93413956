/* tls.h: TLS through OpenSSL memory BIOs, with no socket in sight.
 *
 * A struct tls_ctx holds what every connection of one kind shares: the role
 * (server or client), the key, the certificate and its chain, the protocol
 * floor (TLS 1.2, or 1.3 for the cluster peer link), the cipher list, and
 * whether the peer must present a certificate that verifies against a CA
 * bundle (mutual TLS).  A struct tls_conn is one TLS session driven by the
 * I/O edge (conn.c):
 *
 *     socket --ciphertext--> tls_conn_feed  --plaintext--> the owner
 *     owner  --plaintext---> tls_conn_write --ciphertext-> tls_conn_take_out
 *                                                          --> socket
 *
 * Nothing here blocks or touches a socket: bytes go in and come out of
 * memory BIOs, so the cores never see TLS and a test can wire two tls_conns
 * back to back.  Policy (RFC 9325 §4): TLS 1.2 minimum, TLS 1.3 preferred,
 * for 1.2 only ECDHE key exchange with AEAD ciphers, no compression, no
 * renegotiation, no session tickets on the server.
 *
 * A server session whose TLS 1.3 handshake completes without a client
 * certificate continues on the record layer of tlsrec.h and frees its
 * SSL (some 14 KiB): nothing changes for callers, tls_conn_binding and
 * tls_conn_version/cipher answer from what was kept, tls_conn_peer says
 * XE_NOTFOUND as it would.  Other sessions (TLS 1.2, mutual TLS, the
 * client role) keep their SSL.
 *
 * Errors are negative XE codes (err.h); a failed handshake leaves one line
 * for humans in tls_conn_error ("peer offered only TLS 1.0 (TLS 1.2 or 1.3
 * required)", "peer certificate not trusted: unable to get local issuer
 * certificate", ...). */
#ifndef XMPPD_TLS_H
#define XMPPD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

enum tls_role {
    TLS_ROLE_SERVER = 0,
    TLS_ROLE_CLIENT,
};

/* How a listener treats TLS (conn_listen_tls). */
enum tls_mode {
    TLS_MODE_OFF = 0,  /* plaintext only */
    TLS_MODE_OPTIONAL, /* direct TLS when the first byte is a TLS record, else
                          plaintext XML */
    TLS_MODE_REQUIRED, /* direct TLS only: anything else is closed */
};

/* tls_mode_name returns "off", "optional" or "required". */
const char *tls_mode_name(enum tls_mode mode);

/* tls_mode_parse sets *out from one of those names; 0 or XE_INVAL. */
int tls_mode_parse(const char *name, enum tls_mode *out);

struct tls_ctx_opts {
    enum tls_role role;
    /* PEM files (borrowed; read during tls_ctx_new only).  A server needs
     * key and cert; a client may have neither (no client certificate) or
     * both (mutual TLS). */
    const char *key_path;
    const char *cert_path;
    /* CA bundle (may be NULL): its certificates complete the chain we send
     * and are the trust anchors for the peer's certificate. */
    const char *bundle_path;
    /* verify_peer: a server requires a client certificate that verifies
     * against bundle_path (mutual TLS); a client verifies the server's
     * certificate against bundle_path and the name given to tls_conn_new.
     * Requires bundle_path. */
    bool verify_peer;
    /* tls13_only: refuse TLS 1.2 (the cluster peer link). */
    bool tls13_only;
};

struct tls_ctx;
struct tls_conn;

/* tls_ctx_new builds a context from o (borrowed).  It reuses pki_check_certs
 * (pki.h): the key must match the certificate and the certificate be valid
 * now, so that `xmpp enable` and the daemon's start refuse what would fail
 * at the first connection.  On failure why (why_len bytes, may be NULL) gets
 * one line naming the file and what to do.  Returns 0, XE_INVAL (missing
 * files for the role), XE_NOTFOUND/XE_IO/XE_CORRUPT (unreadable files),
 * XE_AUTH (key does not match), XE_STATE (expired), XE_TLS or XE_NOMEM.
 * *out is owned; free it with tls_ctx_free. */
int tls_ctx_new(const struct tls_ctx_opts *o, struct tls_ctx **out, char *why,
                size_t why_len);

/* tls_ctx_free drops the caller's reference; connections made from ctx keep
 * what they need until they are freed.  NULL is ignored. */
void tls_ctx_free(struct tls_ctx *ctx);

/* tls_ctx_role returns the role ctx was made for. */
enum tls_role tls_ctx_role(const struct tls_ctx *ctx);

/* tls_check_files runs the load-time checks of a server context (what
 * `xmpp certs` and `xmpp enable` need) without keeping anything: the same
 * checks as tls_ctx_new with role SERVER and, when bundle_path is given,
 * that the certificate verifies against it.  0 or an error as above. */
int tls_check_files(const char *key_path, const char *cert_path, const char *bundle_path,
                    char *why, size_t why_len);

/* tls_conn_new starts one session on ctx (borrowed; the session keeps its
 * own reference).  For a client, peer_name (borrowed, may be NULL) is the
 * DNS name or IP address the server's certificate must carry when ctx
 * verifies peers; it is also sent as SNI when it is a DNS name.  A client
 * queues its ClientHello at once (tls_conn_take_out).  *out is owned; free
 * with tls_conn_free.  0, XE_NOMEM or XE_TLS. */
int tls_conn_new(struct tls_ctx *ctx, const char *peer_name, struct tls_conn **out);

/* tls_conn_free frees t.  NULL is ignored. */
void tls_conn_free(struct tls_conn *t);

/* tls_conn_feed takes len bytes (borrowed) read from the socket, advances
 * the handshake and appends any plaintext they complete to plain.  Afterwards
 * call tls_conn_take_out: the handshake and alerts produce bytes to send.
 * Returns 0; XE_TLS when the handshake or the session failed (see
 * tls_conn_error; the alert for the peer is in the output); XE_CLOSED once
 * the peer sent close_notify (plaintext before it was delivered); XE_NOMEM. */
int tls_conn_feed(struct tls_conn *t, const char *data, size_t len, struct buf *plain);

/* tls_conn_write encrypts len bytes of plaintext (borrowed).  Before the
 * handshake has finished they are held and sent as soon as it does.  0,
 * XE_STATE (the session failed or was closed), XE_NOMEM, XE_TLS. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t len);

/* tls_conn_close queues a close_notify alert (RFC 8446 §6.1) after anything
 * already written; later writes fail.  Idempotent. */
void tls_conn_close(struct tls_conn *t);

/* tls_conn_take_out appends the ciphertext waiting for the socket to out and
 * empties it.  0 or XE_NOMEM. */
int tls_conn_take_out(struct tls_conn *t, struct buf *out);

/* tls_conn_pending_out returns the number of ciphertext bytes waiting. */
size_t tls_conn_pending_out(const struct tls_conn *t);

/* tls_conn_held returns the number of plaintext bytes written before the
 * handshake finished and still waiting for it (they count toward a
 * connection's queue bound like ciphertext does). */
size_t tls_conn_held(const struct tls_conn *t);

/* tls_conn_established: the handshake finished and the session has not
 * failed. */
bool tls_conn_established(const struct tls_conn *t);

/* tls_conn_failed: the handshake or the session failed. */
bool tls_conn_failed(const struct tls_conn *t);

/* tls__handed_off (for tests): t's handshake has completed and t runs on
 * the record layer of tlsrec.h, without its SSL. */
bool tls__handed_off(const struct tls_conn *t);

/* tls_conn_error returns the line describing the failure ("" if none);
 * borrowed from t. */
const char *tls_conn_error(const struct tls_conn *t);

/* tls_conn_version returns "TLSv1.3", "TLSv1.2", ... once established, else
 * "none" (static).  tls_conn_cipher likewise returns the cipher's name. */
const char *tls_conn_version(const struct tls_conn *t);
const char *tls_conn_cipher(const struct tls_conn *t);

/* What the peer's certificate says, once established. */
struct tls_peer_info {
    bool has_cert;        /* the peer presented a certificate */
    bool verified;        /* and it verified (always, under verify_peer) */
    char subject[256];    /* RFC 2253: "CN=node1" */
    char sans[512];       /* "DNS:example.com, IP:127.0.0.1" */
    char fingerprint[96]; /* SHA-256 of the DER certificate, lowercase hex */
    time_t not_after;
};

/* tls_conn_peer fills *out from the peer's certificate.  0, XE_STATE (not
 * established) or XE_NOTFOUND (no certificate: has_cert is false). */
int tls_conn_peer(const struct tls_conn *t, struct tls_peer_info *out);

struct srv_tls_info; /* srv.h */

/* tls_conn_binding fills *out (srv.h) with what SASL channel binding needs,
 * once t is established:
 *  - tls13: the session is TLS 1.3;
 *  - exporter: RFC 9266 tls-exporter, 32 bytes of
 *    SSL_export_keying_material with the label "EXPORTER-Channel-Binding"
 *    and no context, on TLS 1.3 only (RFC 9266 §2 defines it for 1.3; on
 *    1.2 without extended master secret it is unsafe), else length 0;
 *  - endpoint: RFC 5929 §4.1 tls-server-end-point, the hash of the
 *    server's certificate (our own for a server session, the peer's for a
 *    client) with the hash of its signature algorithm, SHA-256 when that is
 *    MD5 or SHA-1; length 0 when the algorithm has no single hash (Ed25519)
 *    or there is no certificate.
 * Returns 0, XE_STATE (not established) or XE_TLS (the exporter failed). */
int tls_conn_binding(const struct tls_conn *t, struct srv_tls_info *out);

#endif
