/* cinvite.h: join tokens, an admin's consent beyond a certificate from the
 * trust bundle (docs/cluster.md "Join").  `xmpp cluster invite` on a member
 * makes a one-time token that expires; `xmpp cluster join <addr> <token>`
 * on the new node presents it to that member, which refuses a join request
 * without a valid one.
 *
 * Node-local: a token is good on the member that made it (the one the new
 * node dials), once, until it expires, and is lost when clustering stops
 * there.  Only a hash (BLAKE2b) of each token is kept; tokens are compared
 * in constant time and never logged.  Pure: the caller draws the token's
 * random bytes and gives the time (ms of a monotonic clock). */
#ifndef XMPPD_CINVITE_H
#define XMPPD_CINVITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CINVITE_TOKEN_BYTES 16
#define CINVITE_TOKEN_HEX (2 * CINVITE_TOKEN_BYTES) /* as the admin sees it */
#define CINVITE_TTL_MAX_S 86400                     /* a token lives 1 s to 24 h */
#define CINVITE_MAX 16 /* join tokens open at once on one member */

/* One token this member made: its hash only. */
struct cinvite_slot {
    unsigned char hash[32]; /* BLAKE2b of the token */
    uint64_t expires;       /* ms */
    bool live;              /* made, not used, maybe expired */
    bool busy;              /* a join request that presented it is under way */
};

/* The tokens of one member; all zero is empty. */
struct cinvites {
    struct cinvite_slot s[CINVITE_MAX];
};

/* cinvite_add keeps token tok (borrowed, drawn by the caller) valid until
 * now + ttl_ms; only its hash is kept.  0 or XE_LIMIT (CINVITE_MAX open
 * and not expired). */
int cinvite_add(struct cinvites *t, const unsigned char tok[CINVITE_TOKEN_BYTES],
                uint64_t now, uint64_t ttl_ms);

/* cinvite_take finds the open, unexpired token tok (len bytes, borrowed)
 * at now and holds it for a join under way: its slot (>= 0, settle it
 * with cinvite_settle), or XE_AUTH (none: unknown, expired, used or
 * held).  Every slot is compared, in constant time. */
int cinvite_take(struct cinvites *t, const unsigned char *tok, size_t len, uint64_t now);

/* cinvite_settle ends the hold on slot: used (the join succeeded: the
 * token is gone) or not (a refused join: it stays until it expires).  A
 * slot outside 0..CINVITE_MAX-1 is ignored. */
void cinvite_settle(struct cinvites *t, int slot, bool used);

/* cinvite_clear forgets every token (clustering stopped). */
void cinvite_clear(struct cinvites *t);

/* cinvite_token_text_valid: s (borrowed, NUL-terminated; NULL is not) is a
 * token as `xmpp cluster invite` shows it: CINVITE_TOKEN_HEX hex digits,
 * either case, ASCII by byte value whatever the locale.  The one check of
 * the daemon (xmpp.cluster.join) and of mmp-cli. */
bool cinvite_token_text_valid(const char *s);

#endif
