/* loginbench.h: xmppd-loginbench, the client (c2s) and WebSocket load tool.
 *
 * One process, one epoll loop, non-blocking sockets, OpenSSL on the socket.
 * Modules:
 *   loginbench.c        options, the loop, the connection state machine
 *                       (TCP + STARTTLS, or WebSocket RFC 7395 over ws/wss),
 *                       the three modes (login, idle, msg) and the report
 *   loginbench_scram.c  a small SCRAM client (RFC 5802), SHA-256 or SHA-1
 * It reuses the stream scanner and the histogram of xmppd-bench
 * (bench_scan.c, bench_stats.c).  The tool is not part of the daemon and
 * asserts nothing: it prints numbers, for xmppd or any other server. */
#ifndef XMPPD_LOGINBENCH_H
#define XMPPD_LOGINBENCH_H

#include <stddef.h>
#include <stdint.h>

#define LB_SCRAM_MAX_KEY 32 /* SHA-256 */

/* The salted keys of one account, computed once per (salt, iterations) and
 * kept: a real client caches them too (RFC 5802 §5.1), and the tool must
 * not spend its CPU on PBKDF2 at every login. */
struct lb_scram_keys {
    char salt_b64[128];
    unsigned iter;
    int valid;
    unsigned char client_key[LB_SCRAM_MAX_KEY];
    unsigned char stored_key[LB_SCRAM_MAX_KEY];
    unsigned char server_key[LB_SCRAM_MAX_KEY];
};

/* One SCRAM exchange (client side). */
struct lb_scram {
    int sha256; /* 1: SCRAM-SHA-256, 0: SCRAM-SHA-1 */
    const char *user;
    const char *password;
    struct lb_scram_keys *keys; /* borrowed cache of this account */
    char cnonce[33];
    char first_bare[256];
    char auth_message[1024];
    unsigned char server_sig[LB_SCRAM_MAX_KEY];
};

/* Starts an exchange for user/password (borrowed, must outlive it): fills
 * out with the base64 client-first-message (NUL-terminated).  cnonce: the
 * client nonce (printable, no ','; at most 32 characters), or NULL for 16
 * random bytes in hex (tests pass RFC 7677's).  Returns 0 or -1 when out is
 * too small. */
int lb_scram_first(struct lb_scram *s, int sha256, const char *user, const char *password,
                   struct lb_scram_keys *keys, const char *cnonce, char *out, size_t cap);
/* Takes the base64 server-first-message (len bytes) and writes the base64
 * client-final-message to out.  Returns 0, or -1 when the challenge is
 * malformed, its nonce does not extend ours, or out is too small. */
int lb_scram_final(struct lb_scram *s, const char *b64, size_t len, char *out,
                   size_t cap);
/* Checks the base64 server-final-message (v=...).  Returns 0 when the
 * server proved it knows the password's keys, -1 otherwise. */
int lb_scram_verify(struct lb_scram *s, const char *b64, size_t len);

/* The numbered messages of one sender as one receiver saw them: each
 * message carries its sequence number (0, 1, 2, ... per sender), so a
 * receiver can tell a new message from a duplicate and from one that
 * overtook an earlier one.  A bit per number, grown on demand. */
struct lb_seq {
    unsigned char *seen; /* owned: bit n set when number n arrived */
    uint64_t cap;        /* numbers the bitmap covers */
    uint64_t unique;     /* distinct numbers received */
    uint64_t dups;       /* numbers received again */
    uint64_t ooo;        /* new numbers below the highest seen (reordered) */
    uint64_t top;        /* highest number seen + 1 (0: none yet) */
};

enum lb_seq_kind { LB_SEQ_NEW, LB_SEQ_DUP, LB_SEQ_OOO, LB_SEQ_BAD };

/* Notes that number seq arrived; sent is how many the sender has sent, so
 * that a number never sent (a corrupted body) is refused as LB_SEQ_BAD.
 * Returns LB_SEQ_NEW (in order), LB_SEQ_OOO (new, but after a higher
 * number: counted in ooo and in unique), LB_SEQ_DUP (counted in dups), or
 * LB_SEQ_BAD (also when the bitmap cannot grow).  s starts zeroed. */
enum lb_seq_kind lb_seq_note(struct lb_seq *s, uint64_t seq, uint64_t sent);
/* Frees the bitmap; s may be noted into again (it starts over). */
void lb_seq_free(struct lb_seq *s);

#endif
