/* rt.h: the router of one node: which session holds which component
 * domain, and what to do with a stanza (deliver, answer, bounce or drop).
 *
 * rt knows no sockets and no session type: a session is an opaque handle
 * (void *) given to rt_add.  rt_decide looks at a stanza whose sender was
 * already checked (the session enforces its 'from') and returns a verdict;
 * the caller carries it out.  Stanzas to the server's own domain are
 * answered here (XEP-0199 ping, XEP-0030 disco#info and #items, XEP-0092
 * version when on).  Stanzas
 * to accounts of the domain (a JID with a localpart) are not rt's: srv
 * routes them (srv_c2s.c). */
#ifndef XMPPD_RT_H
#define XMPPD_RT_H

#include <stdbool.h>
#include <stddef.h>

#include "stz.h"

struct jid;

#define RT_NS_PING "urn:xmpp:ping"
#define RT_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define RT_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define RT_NS_VERSION "jabber:iq:version"

struct rt;

/* rt_new creates an empty router for server_domain (prepared, copied).
 * 0/XE_NOMEM. */
int rt_new(const char *server_domain, struct rt **out);
/* rt_free frees the table (not the sessions it points to).  NULL is a no-op. */
void rt_free(struct rt *rt);

/* rt_add makes sess the holder of domain (prepared, copied).  If another
 * session held it, *replaced (may be NULL) receives that session, which is
 * no longer in the table; else NULL.  0/XE_NOMEM. */
int rt_add(struct rt *rt, const char *domain, void *sess, void **replaced);
/* rt_del removes domain if it is held by sess (a replaced session removing
 * itself later is a no-op). */
void rt_del(struct rt *rt, const char *domain, const void *sess);
/* rt_find returns the session whose domain is domain or the longest domain
 * that domain is within (a.cb1.x goes to cb1.x), or NULL.  domain must be
 * prepared (lower case). */
void *rt_find(const struct rt *rt, const char *domain);
/* rt_set_version turns XEP-0092 software version on with version (copied:
 * the answer to an iq get jabber:iq:version to the server's domain, and a
 * disco#info feature) or off (NULL: service-unavailable).  0/XE_NOMEM
 * (unchanged then). */
int rt_set_version(struct rt *rt, const char *version);
/* rt_count returns the number of domains held. */
size_t rt_count(const struct rt *rt);

enum rt_verdict {
    RT_DELIVER, /* write the stanza unchanged to route->sess */
    RT_REPLY,   /* write route->reply (owned by the caller) back to the sender */
    RT_DROP,    /* nothing to send; route->why says why */
};

struct rt_route {
    enum rt_verdict verdict;
    void *sess;        /* RT_DELIVER: the destination session (borrowed) */
    struct stz *reply; /* RT_REPLY: owned by the caller; free it */
    bool bounce;       /* RT_REPLY: the reply is an error for an undeliverable stanza */
    const char *why;   /* static words for the log */
    bool remote;       /* RT_REPLY/RT_DROP: the destination is a name within
                          the server's domain that no local session holds
                          (in a cluster, another node may hold it) */
};

/* rt_set_clustered says whether the server is in cluster mode, where the
 * caller forwards every stanza rt_decide marks remote: then no error reply
 * is built for such a stanza (verdict RT_DROP, remote set; the reply is
 * fwd's or the holding node's to give).  Off by default. */
void rt_set_clustered(struct rt *rt, bool on);

/* rt_decide decides the fate of stanza st (message, presence or iq, with a
 * 'to' attribute; borrowed).  Returns 0 with *out filled, or XE_NOMEM (no
 * reply was built; the caller drops the stanza). */
int rt_decide(struct rt *rt, const struct stz *st, struct rt_route *out);
/* rt_decide_jid is rt_decide with st's 'to' already parsed: jrc and *to as
 * jid_parse left them (borrowed; ignored when st has no 'to'), so that a
 * caller that parsed it does not pay for it twice. */
int rt_decide_jid(struct rt *rt, const struct stz *st, int jrc, const struct jid *to,
                  struct rt_route *out);

/* rt_may_bounce tells whether an undeliverable st may be answered with an
 * error: messages other than errors, iq get and set (RFC 6120 §8.3.1,
 * §10.3; RFC 6121 §4.3, §8.5: presence is not). */
bool rt_may_bounce(const struct stz *st);

/* rt_iq_invalid tells whether st (borrowed) is an iq that RFC 6120 §8.2.3
 * does not allow: a 'type' other than get, set, result or error (none
 * included), or a get or set without an 'id'.  Its sender is answered
 * bad-request (§8.3.3.1) instead of routing it: no entity could answer
 * it. */
bool rt_iq_invalid(const struct stz *st);

/* rt_subscription_type tells whether a presence type (NULL: none) is a
 * subscription one: subscribe, subscribed, unsubscribe, unsubscribed (RFC
 * 6121 §3). */
bool rt_subscription_type(const char *type);

/* rt_make_ping builds an XEP-0199 ping <iq type='get'> from from to to with
 * id, in the component namespace.  Returns an owned element or NULL. */
struct stz *rt_make_ping(const char *from, const char *to, const char *id);

#endif
