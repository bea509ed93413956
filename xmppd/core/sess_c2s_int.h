/* sess_c2s_int.h: the inside of the client session module, shared by
 * sess_c2s.c (stream, TLS, bind, stanzas) and sess_c2s_sasl.c (SASL).  Not
 * for other modules. */
#ifndef XMPPD_SESS_C2S_INT_H
#define XMPPD_SESS_C2S_INT_H

#include "buf.h"
#include "sess_c2s.h"
#include "stz.h"

/* c2s__write sends bytes on c (a failed send closes c); c2s__write_stz
 * serialises st (borrowed) into the jabber:client stream and sends it. */
int c2s__write(struct sess_c2s *c, const char *data, size_t len);
int c2s__write_stz(struct sess_c2s *c, const struct stz *st);

/* c2s__iq_result builds <iq type='result' id from to/> answering req (from
 * and to may be NULL).  Owned, or NULL when out of memory. */
struct stz *c2s__iq_result(const struct stz *req, const char *from, const char *to);

/* c2s__sasl_features appends the SASL part of the stream features (RFC 6120
 * §6.4.1; XEP-0440 channel-binding types) and records what was offered in
 * c->mechs and c->cb_types (XEP-0474 hashes them). */
int c2s__sasl_features(struct sess_c2s *c, struct buf *b);
/* c2s__sasl_element handles <auth/>, <response/>, <abort/> or another
 * element in the SASL namespace (borrowed) before authentication. */
void c2s__sasl_element(struct sess_c2s *c, const struct stz *el);
/* c2s__sasl_success: SASL succeeded for c->user with c->mech and
 * <success/> went out: count, log, raise the limits, restart the stream. */
void c2s__sasl_success(struct sess_c2s *c);
/* c2s__sasl_clear wipes and frees an exchange in progress, if any. */
void c2s__sasl_clear(struct sess_c2s *c);
/* c2s__sasl_release sends the held failure answer and applies the limit
 * of failed attempts per connection. */
void c2s__sasl_release(struct sess_c2s *c);

#endif
