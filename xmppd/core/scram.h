/* scram.h: SASL SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), the
 * -PLUS variants with channel binding (RFC 5929 tls-server-end-point,
 * RFC 9266 tls-exporter) and downgrade protection (XEP-0474), server side.
 *
 * Pure: no I/O, no clock.  Randomness (the server nonce) is handed in by the
 * caller.  The server never sees a password during a login: it holds the
 * salt, the iteration count, StoredKey and ServerKey (RFC 5802 §3) and
 * checks the client's proof with hashes and HMACs only; PBKDF2 (Hi) runs
 * only when credentials are made (scram_derive, for `xmpp user add`).
 *
 * One exchange (RFC 5802 §5):
 *
 *   scram_server_init(&s, hash, plus, &cb)
 *   scram_server_client_first(&s, msg, len, user, sizeof user)
 *       -> the username (saslname decoded, not yet prepared: the caller
 *          prepares it with precis_username and looks up its credentials)
 *   scram_server_first(&s, creds or NULL, nonce, fake_key, &out)
 *       -> server-first-message in out (NULL creds: an unknown user gets a
 *          salt made from the nonce-independent fake key, so that the answer
 *          does not tell which accounts exist; the proof then fails)
 *   scram_server_final(&s, msg, len, &out)
 *       -> 0 and server-final-message ("v=...") in out, or XE_AUTH with
 *          "e=..." in out (RFC 5802 §7 server-error-value), or XE_PROTO for a
 *          message that does not parse (then out holds "e=other-error").
 *   scram_server_clear(&s) wipes every key and nonce.
 *
 * Messages in and out are the SASL payloads, not base64 (the caller
 * decodes and encodes the XMPP <auth/>, <response/>, <challenge/> and
 * <success/> texts). */
#ifndef XMPPD_SCRAM_H
#define XMPPD_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum scram_hash {
    SCRAM_SHA1,
    SCRAM_SHA256,
};

#define SCRAM_KEY_MAX 32              /* SHA-256 output; SHA-1 uses 20 */
#define SCRAM_NONCE_BYTES 18          /* server nonce entropy (base64: 24 chars) */
#define SCRAM_USER_MAX 1023           /* RFC 7622 §3.3 */
#define SCRAM_CB_MAX 64               /* channel-binding data bytes */
#define SCRAM_SALT_BYTES 16           /* salt of a made-up account (RFC 7677 §4) */
#define SCRAM_ITERATIONS_DEFAULT 4096 /* RFC 7677 §4: at least 4096 */

/* scram_key_len: 20 for SHA-1, 32 for SHA-256. */
size_t scram_key_len(enum scram_hash h);

/* scram_mech_name: "SCRAM-SHA-1", "SCRAM-SHA-256", with "-PLUS" when plus. */
const char *scram_mech_name(enum scram_hash h, bool plus);

/* scram_derive makes the stored credentials from a password (len bytes,
 * already prepared by the caller: PRECIS OpaqueString, RFC 8265 §4), a salt
 * and an iteration count (RFC 5802 §3):
 *   SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SP, "Client Key")
 *   StoredKey = H(ClientKey); ServerKey = HMAC(SP, "Server Key").
 * stored_key and server_key receive scram_key_len(h) bytes each.  Returns 0,
 * XE_INVAL (empty password or salt, iterations 0) or XE_NOMEM. */
int scram_derive(enum scram_hash h, const void *password, size_t len,
                 const unsigned char *salt, size_t salt_len, uint32_t iterations,
                 unsigned char *stored_key, unsigned char *server_key);

/* The credentials of one account for one hash (borrowed by the exchange for
 * the duration of scram_server_first only; it copies what it needs). */
struct scram_creds {
    const unsigned char *salt;
    size_t salt_len;
    uint32_t iterations;
    const unsigned char *stored_key; /* scram_key_len(h) bytes */
    const unsigned char *server_key; /* scram_key_len(h) bytes */
};

/* What the connection offers for channel binding and downgrade protection.
 *  tls:        the stream is under TLS.  The server "offers -PLUS" when tls
 *              and cb_name are both set: a client that then says 'y' saw a
 *              stripped offer, a downgrade (RFC 5802 §6), and is refused.
 *  cb_name:    the channel-binding type this connection supports and the
 *              server advertises ("tls-exporter" on TLS 1.3,
 *              "tls-server-end-point" otherwise), NULL when none.
 *  cb_data:    its data (cb_len bytes: the TLS exporter output with label
 *              "EXPORTER-Channel-Binding" and no context, 32 bytes, RFC 9266
 *              §2; or the hash of the server certificate, RFC 5929 §4.1).
 *  mechs:      the mechanism names the server offered in the stream
 *              features, in order, and cb_types the channel-binding types
 *              it offered (XEP-0440), both as given to the client: the
 *              hash of these goes into the server-first-message as the
 *              XEP-0474 attribute "h" so that a client can detect a
 *              stripped list.  NULL-terminated arrays of borrowed strings.
 *              mechs NULL or empty: no "h" attribute.  cb_types NULL or
 *              empty: the server did not send XEP-0440's element.
 *  alt_name:   a second type offered beside cb_name (XEP-0440 §4: a server
 *              always offers tls-server-end-point, also next to
 *              tls-exporter on TLS 1.3), with alt_data and alt_len as for
 *              cb; NULL when none.  A -PLUS client may use either.
 *  y_ok:       the client already tried -PLUS on this connection with a
 *              type this server does not offer (slixmpp asks for
 *              tls-unique, which TLS 1.3 lacks, RFC 9266 §1): it cannot
 *              bind here, so its 'y' that follows is the truth, not a
 *              stripped offer, and is accepted.  A client that says 'y'
 *              without having tried is still refused.
 *  algs:       the algorithms fetched once (scram_algs_new), or NULL.
 * cb may be NULL for a mechanism without -PLUS on a plain connection. */
struct scram_cb {
    bool tls;
    const char *cb_name;
    const unsigned char *cb_data;
    size_t cb_len;
    const char *alt_name;
    const unsigned char *alt_data;
    size_t alt_len;
    bool y_ok;
    const char *const *mechs;
    const char *const *cb_types;
    struct scram_algs *algs; /* borrowed, or NULL: algorithms fetched per use */
};

/* scram_algs_new fetches SCRAM's digests and makes an HMAC context per
 * hash, once: OpenSSL 3 looks an algorithm up by name on every HMAC() or
 * EVP_sha256() use.  *out is owned by the caller (scram_algs_free) and
 * lent to exchanges through scram_cb.algs; one thread uses it at a time
 * (an exchange re-keys its HMAC context).  0 or XE_NOMEM. */
int scram_algs_new(struct scram_algs **out);

/* scram_algs_free frees a (NULL: nothing). */
void scram_algs_free(struct scram_algs *a);

enum scram_step {
    SCRAM_WAIT_CLIENT_FIRST,
    SCRAM_WAIT_CREDS,
    SCRAM_WAIT_CLIENT_FINAL,
    SCRAM_DONE,
    SCRAM_FAILED,
};

/* One exchange.  Opaque in spirit: callers use only the functions below
 * (the struct is here so that a session can embed it). */
struct scram_server {
    enum scram_hash hash;
    bool plus;
    enum scram_step step;
    struct scram_cb cb;            /* borrowed pointers, valid for the exchange */
    const unsigned char *use_data; /* the type the client chose: cb or alt */
    size_t use_len;
    char user[SCRAM_USER_MAX + 1];
    char authzid[SCRAM_USER_MAX + 1];
    char *client_first_bare; /* owned */
    char *server_first;      /* owned */
    char *gs2_header;        /* owned: base64 that c= must carry (gs2 header, cb data) */
    char *nonce;             /* owned: client nonce + server nonce */
    bool known;              /* the user had credentials */
    unsigned char stored_key[SCRAM_KEY_MAX];
    unsigned char server_key[SCRAM_KEY_MAX];
};

/* scram_server_init starts an exchange for mechanism (hash, plus) on s
 * (uninitialised or cleared); cb is borrowed for the exchange.  XE_INVAL
 * when plus is asked without tls, cb_name, or 1..SCRAM_CB_MAX bytes of
 * cb_data (s is then failed, and must still be cleared). */
int scram_server_init(struct scram_server *s, enum scram_hash hash, bool plus,
                      const struct scram_cb *cb);

/* scram_server_client_first reads the client-first-message (len bytes; may
 * contain anything: it is checked).  On success copies the username (with
 * =2C and =3D decoded, RFC 5802 §5.1) into user (cap bytes) and returns 0.
 * Errors: XE_PROTO (malformed; unsupported extension 'm'), XE_AUTH (a
 * channel-binding flag that the server must refuse: 'y' when the server
 * offers -PLUS over TLS and y_ok is false, 'p' on a mechanism without
 * -PLUS, 'n' or 'y' on a -PLUS mechanism), XE_UNSUPPORTED ('p' on a -PLUS
 * mechanism with a type that is neither cb_name nor alt_name: RFC 5802
 * §7 "unsupported-channel-binding-type"), XE_LIMIT (a field
 * too long: message over 8 KiB, name over SCRAM_USER_MAX, client nonce over
 * 256 characters, or the name does not fit cap), XE_STATE (out of order).
 * Failed exchanges stay failed.  The authzid of the gs2 header, decoded, is
 * in s->authzid ("" when none): the caller must refuse one that is not the
 * user's own bare JID (RFC 6120 §6.3.8). */
int scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
                              char *user, size_t cap);

/* scram_server_first writes the server-first-message to out (appended):
 * r=<client nonce><server nonce>,s=<salt b64>,i=<iterations>[,h=...]
 * (h: XEP-0474, when cb->mechs was given).  creds NULL: unknown user (a
 * fake salt of SCRAM_SALT_BYTES derived from the username, prepared with
 * precis_username when it can be, the mechanism and the server secret
 * fake_key[32] with HMAC-SHA-256, so that repeated attempts for one
 * unknown name, however spelt, see the same salt, and the iteration count
 * SCRAM_ITERATIONS_DEFAULT).  A server configured with another count passes
 * creds with only iterations set (salt and keys NULL) for an unknown user.
 * nonce: SCRAM_NONCE_BYTES random bytes (sent as base64).  0, XE_STATE,
 * XE_INVAL (creds with a key but no salt or iterations), XE_NOMEM. */
int scram_server_first(struct scram_server *s, const struct scram_creds *creds,
                       const unsigned char nonce[SCRAM_NONCE_BYTES],
                       const unsigned char fake_key[32], struct buf *out);

/* scram_server_final checks the client-final-message: the channel binding
 * (c= must be base64 of the gs2 header plus cb data for -PLUS), the nonce,
 * then the proof in constant time (sodium_memcmp).  0: success, out gets
 * "v=<ServerSignature>".  XE_AUTH: out gets "e=invalid-proof",
 * "e=channel-bindings-dont-match" or "e=unknown-user" is never sent (an
 * unknown user fails as invalid-proof).  XE_PROTO: malformed (out gets
 * "e=other-error").  XE_STATE, XE_NOMEM. */
int scram_server_final(struct scram_server *s, const char *msg, size_t len,
                       struct buf *out);

/* scram_server_clear wipes keys and nonces and frees what s owns; s may be
 * initialised again. */
void scram_server_clear(struct scram_server *s);

/* scram_downgrade_attr appends to out the value of the XEP-0474 (0.5.0)
 * attribute "h" for the offered mechanisms and channel-binding types (as in
 * struct scram_cb): base64(H(S)), H the exchange's hash, S the mechanisms
 * sorted by octet ("i;octet", RFC 4790 §9.3) and joined by %x1E, then, when
 * cb_types is neither NULL nor empty, %x1F and the types sorted and joined
 * by %x1E (XEP-0474 §4.1).  Only the value: no "h=".  0/XE_NOMEM. */
int scram_downgrade_attr(enum scram_hash h, const char *const *mechs,
                         const char *const *cb_types, struct buf *out);

/* scram__server_first_nonce_text is scram_server_first with the server
 * nonce given as text (snonce: 1..256 printable characters, RFC 5802 §7)
 * instead of random bytes.  For tests only: the RFC 5802 §5 and RFC 7677 §3
 * examples use server nonces that no base64 of bytes produces.  XE_INVAL
 * for a bad snonce; otherwise as scram_server_first. */
int scram__server_first_nonce_text(struct scram_server *s,
                                   const struct scram_creds *creds, const char *snonce,
                                   const unsigned char fake_key[32], struct buf *out);

#endif
