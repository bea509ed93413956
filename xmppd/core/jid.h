/* jid.h: XMPP addresses, RFC 7622.
 *
 * A JID is [localpart@]domainpart[/resourcepart].  Parsing prepares each
 * part (precis.h): the localpart with the PRECIS UsernameCaseMapped profile
 * (RFC 7622 §3.3, RFC 8265 §3.3: width and case mapped, NFC) without the
 * characters of §3.3.1 (" & ' / : < > @); the resourcepart with the PRECIS
 * OpaqueString profile (§3.4, RFC 8265 §4.2: case kept); the domainpart as
 * lower-case LDH labels, an IP literal, or IDNA2008 U-labels (A-labels are
 * converted), without a trailing dot (§3.2).  Each part is 1..1023 bytes
 * once prepared. */
#ifndef XMPPD_JID_H
#define XMPPD_JID_H

#include <stdbool.h>

#include "buf.h"

struct jid {
    char *local;    /* owned; NULL when absent */
    char *domain;   /* owned; never NULL after a successful parse */
    char *resource; /* owned; NULL when absent */
};

/* jid_parse parses and prepares s into *out (fields owned by *out; release
 * with jid_clear).  Returns 0 or XE_INVAL for an invalid address (then *out
 * is left zeroed) or XE_NOMEM. */
int jid_parse(const char *s, struct jid *out);
/* jid_clear frees the parts and zeroes j. */
void jid_clear(struct jid *j);
/* jid_format appends the canonical string form of j to out. */
int jid_format(const struct jid *j, struct buf *out);
/* jid_equal compares two prepared JIDs part by part. */
bool jid_equal(const struct jid *a, const struct jid *b);
/* jid_domain_within tells whether domain equals parent or is a subdomain of
 * it (label boundary: "a.cb1.x" is within "cb1.x", "xcb1.x" is not).  Both
 * must be prepared (lower case). */
bool jid_domain_within(const char *domain, const char *parent);
/* jid_domain_valid tells whether s is a prepared domainpart: one that
 * precis_domain gives back unchanged (ASCII: LDH labels without "xn--", or an
 * IP literal; otherwise IDNA2008 U-labels in lower case). */
bool jid_domain_valid(const char *s);
/* jid_dns_name_valid tells whether s is an LDH host name in any case (RFC
 * 1123 §2.1: labels of 1..63 letters, digits and inner '-', 253 bytes in
 * all); with wildcard, a leading "*." label is also accepted (certificate
 * SANs, RFC 6125 §6.4.3).  For names that are not prepared JIDs: the shell's
 * arguments, certificate names. */
bool jid_dns_name_valid(const char *s, bool wildcard);

#endif
