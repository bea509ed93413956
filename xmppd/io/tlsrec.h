/* tlsrec.h: the TLS 1.3 record layer after the handshake (RFC 8446 §5),
 * so that a connection need not keep OpenSSL's SSL once its handshake is
 * done (tls.c hands a server session over to it; docs/architecture.md,
 * "TLS").
 *
 * A struct tlsrec holds the two application traffic secrets of one
 * session, the key and IV derived from each (RFC 8446 §7.3), the two
 * sequence numbers and at most one partial record: a few hundred bytes
 * instead of OpenSSL's 14 KiB.  The cryptography is OpenSSL's (EVP AEAD,
 * HKDF); only the record framing is ours:
 *
 *     ciphertext --tlsrec_feed--> plaintext (+ alerts, KeyUpdate to send)
 *     plaintext  --tlsrec_write-> ciphertext records of at most 2^14 bytes
 *
 * Handled after the handshake: application data, alerts (close_notify
 * closes; user_canceled is ignored; any other alert fails the session with
 * its name), KeyUpdate (RFC 8446 §4.6.3) in both directions; every other
 * record or handshake message fails the session with the alert RFC 8446
 * names, which is sent to the peer encrypted.  Only the three TLS 1.3
 * AEAD suites xmppd enables. */
#ifndef XMPPD_TLSREC_H
#define XMPPD_TLSREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 8446 §5.1, §5.2: the largest plaintext and ciphertext of a record. */
#define TLSREC_MAX_PLAIN 16384
#define TLSREC_MAX_CIPHER (16384 + 256)
/* The largest traffic secret (SHA-384). */
#define TLSREC_MAX_SECRET 48

struct tlsrec;

/* tlsrec_suite_ok: suite (the IANA number, 0x1301 TLS_AES_128_GCM_SHA256,
 * 0x1302 TLS_AES_256_GCM_SHA384, 0x1303 TLS_CHACHA20_POLY1305_SHA256) is
 * one tlsrec handles; *secret_len (may be NULL) gets its hash length. */
bool tlsrec_suite_ok(uint16_t suite, size_t *secret_len);

/* tlsrec_exporter writes out_len bytes of TLS-Exporter(label, "", out_len)
 * (RFC 8446 §7.5, an empty context as RFC 9266 §2's tls-exporter has) for
 * suite, from the session's exporter_master_secret (secret, borrowed,
 * secret_len bytes: OpenSSL's keylog line EXPORTER_SECRET): the value
 * SSL_export_keying_material gives with no context, without the SSL.
 * out_len is at most the suite's hash length (32 or 48).  0, XE_INVAL
 * (suite, secret_len, label or out_len out of range) or XE_TLS. */
int tlsrec_exporter(uint16_t suite, const unsigned char *secret, size_t secret_len,
                    const char *label, unsigned char *out, size_t out_len);

/* tlsrec_new starts a record layer for suite from the peer's traffic
 * secret rx and ours tx (borrowed, secret_len bytes each; for a server rx is
 * client_application_traffic_secret_0, RFC 8446 §7.1), both sequence
 * numbers 0.  *out is owned; free with tlsrec_free.  0, XE_INVAL (suite not
 * handled or secret_len not its hash length), XE_NOMEM or XE_TLS (the key
 * derivation failed). */
int tlsrec_new(uint16_t suite, const unsigned char *rx, const unsigned char *tx,
               size_t secret_len, struct tlsrec **out);

/* tlsrec_free wipes and frees r.  NULL is ignored. */
void tlsrec_free(struct tlsrec *r);

/* tlsrec_feed takes len bytes (borrowed) of ciphertext from the peer,
 * appends the application data of the complete records to plain and any
 * records we must send (an alert, our KeyUpdate, our close_notify) to out.
 * Bytes of an incomplete record are kept (at most one record, checked
 * against TLSREC_MAX_CIPHER as soon as its header is in).  Returns 0;
 * XE_CLOSED when the peer sent close_notify (data before it is in plain,
 * ours is in out unless tlsrec_close came first; later bytes are ignored,
 * RFC 8446 §6.1); XE_TLS when the session failed (err, errlen bytes, gets
 * one line; the alert for the peer is in out; every later call fails);
 * XE_NOMEM. */
int tlsrec_feed(struct tlsrec *r, const char *data, size_t len, struct buf *plain,
                struct buf *out, char *err, size_t errlen);

/* tlsrec_write encrypts len bytes (borrowed) into records of at most
 * TLSREC_MAX_PLAIN bytes appended to out: one record for a write that
 * fits.  0, XE_STATE (failed or closed), XE_NOMEM or XE_TLS. */
int tlsrec_write(struct tlsrec *r, const char *data, size_t len, struct buf *out);

/* tlsrec_close appends our close_notify (RFC 8446 §6.1) to out; later
 * writes fail.  Idempotent; nothing after a failure. */
void tlsrec_close(struct tlsrec *r, struct buf *out);

/* tlsrec_failed: the session failed. */
bool tlsrec_failed(const struct tlsrec *r);

/* For tests and the fuzz target: tlsrec__seal appends one record of
 * content type ctype holding len bytes of data (borrowed) and pad zero
 * bytes of padding (RFC 8446 §5.4), protected with the send key, as a peer
 * would make it; ctype 0 makes an inner plaintext with no content type.
 * Nothing is checked beyond the room in a record.  0, XE_INVAL, XE_NOMEM
 * or XE_TLS.  tlsrec__set_seq sets both sequence numbers. */
int tlsrec__seal(struct tlsrec *r, uint8_t ctype, const void *data, size_t len,
                 size_t pad, struct buf *out);
void tlsrec__set_seq(struct tlsrec *r, uint64_t rx, uint64_t tx);

#endif
