/* precis.h: preparation of the parts of an XMPP address and of passwords:
 * PRECIS (RFC 8264) profiles of RFC 8265 with ICU, and IDNA2008 domain
 * names (RFC 5890-5893) with libidn2, as RFC 7622 §3 requires.
 *
 * Each function reads its input (borrowed) and writes the prepared form,
 * NUL-terminated UTF-8, into out (cap bytes, the NUL included).  Returns 0,
 * XE_INVAL when the input is refused (then out holds "" when cap > 0), or
 * XE_LIMIT when the prepared form does not fit cap (or the input is over
 * PRECIS_IN_MAX bytes).  Preparation is idempotent: preparing a prepared
 * string gives it back unchanged, so "is prepared" means "prep(s) == s".
 * Pure: no I/O; ICU and libidn2 keep only read-only data. */
#ifndef XMPPD_PRECIS_H
#define XMPPD_PRECIS_H

#include <stddef.h>

#define PRECIS_IN_MAX 65536 /* longest input looked at (bytes) */

/* precis_username applies the UsernameCaseMapped profile (RFC 8265 §3.3:
 * width mapping, toLowerCase, NFC, the Bidi Rule of RFC 5893, then the
 * IdentifierClass of RFC 8264 §4.2 with its contextual rules) to in[0..len)
 * and refuses, as a JID localpart, the characters of RFC 7622 §3.3.1
 * (" & ' / : < > @) and an empty result.  For localparts and usernames. */
int precis_username(const char *in, size_t len, char *out, size_t cap);

/* precis_opaque applies the OpaqueString profile (RFC 8265 §4.2: non-ASCII
 * spaces to U+0020, NFC, then the FreeformClass of RFC 8264 §4.3) to
 * in[0..len); an empty result is refused.  For passwords (before
 * scram_derive) and resourceparts (RFC 7622 §3.4). */
int precis_opaque(const char *in, size_t len, char *out, size_t cap);

/* precis_domain prepares the NUL-terminated domainpart in (RFC 7622 §3.2):
 * the label separators U+3002, U+FF0E and U+FF61 become '.', one trailing
 * dot is removed, ASCII is lower-cased; an IP literal or an ASCII name of
 * LDH labels is kept as it is; any other name must be IDNA2008 (libidn2,
 * strict first, with UTS #46 mapping only when the strict form fails) and
 * comes out as U-labels (A-labels "xn--" are converted).  Every label 1..63
 * octets in its ASCII form, the whole at most 1023 octets. */
int precis_domain(const char *in, char *out, size_t cap);

#endif
