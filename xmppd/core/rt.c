/* rt.c: the router of one node: component domain table and routing
 * decisions, including the stanzas the server answers itself. */
#include "rt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "htab.h"
#include "jid.h"

struct rt_entry {
    char *domain;
    void *sess;
    struct hlink link; /* in rt.table */
};

struct rt {
    char *domain;      /* the server's own domain, prepared */
    char *version;     /* XEP-0092: the version told, owned; NULL: off */
    struct htab table; /* rt_entry by domain; a handful to a few thousand */
    bool clustered;    /* rt_set_clustered */
};

static uint64_t entry_hash(const struct hlink *l)
{
    return htab_hash_str(HTAB_ENTRY(l, const struct rt_entry, link)->domain);
}

static void entry_free(struct hlink *l)
{
    struct rt_entry *e = HTAB_ENTRY(l, struct rt_entry, link);

    free(e->domain);
    free(e);
}

int rt_new(const char *server_domain, struct rt **out)
{
    struct rt *rt = calloc(1, sizeof *rt);

    if (rt == NULL)
        goto err;
    rt->domain = strdup(server_domain);
    if (rt->domain == NULL)
        goto err_rt;
    if (htab_init(&rt->table, 64) < 0)
        goto err_domain;
    *out = rt;
    return 0;

err_domain:
    free(rt->domain);
err_rt:
    free(rt);
err:
    return XE_NOMEM;
}

void rt_free(struct rt *rt)
{
    if (rt == NULL)
        return;
    htab_release(&rt->table, entry_free);
    free(rt->version);
    free(rt->domain);
    free(rt);
}

static struct rt_entry *rt_lookup(const struct rt *rt, const char *domain)
{
    for (struct hlink *l = htab_head(&rt->table, htab_hash_str(domain)); l != NULL;
         l = l->next) {
        struct rt_entry *e = HTAB_ENTRY(l, struct rt_entry, link);
        if (strcmp(e->domain, domain) == 0)
            return e;
    }
    return NULL;
}

int rt_add(struct rt *rt, const char *domain, void *sess, void **replaced)
{
    struct rt_entry *e = rt_lookup(rt, domain);

    if (replaced != NULL)
        *replaced = NULL;
    if (e != NULL) {
        if (replaced != NULL && e->sess != sess)
            *replaced = e->sess;
        e->sess = sess;
        return 0;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return XE_NOMEM;
    e->domain = strdup(domain);
    if (e->domain == NULL) {
        free(e);
        return XE_NOMEM;
    }
    e->sess = sess;
    htab_add(&rt->table, &e->link, htab_hash_str(domain), entry_hash);
    return 0;
}

void rt_del(struct rt *rt, const char *domain, const void *sess)
{
    struct rt_entry *e = rt_lookup(rt, domain);

    if (e == NULL || e->sess != sess)
        return;
    htab_del(&rt->table, &e->link, htab_hash_str(domain));
    free(e->domain);
    free(e);
}

void *rt_find(const struct rt *rt, const char *domain)
{
    /* Longest match: the domain itself, then each parent, label by label. */
    while (domain != NULL && *domain != '\0') {
        struct rt_entry *e = rt_lookup(rt, domain);
        if (e != NULL)
            return e->sess;
        domain = strchr(domain, '.');
        if (domain != NULL)
            domain++;
    }
    return NULL;
}

int rt_set_version(struct rt *rt, const char *version)
{
    char *v = NULL;

    if (version != NULL && (v = strdup(version)) == NULL)
        return XE_NOMEM;
    free(rt->version);
    rt->version = v;
    return 0;
}

void rt_set_clustered(struct rt *rt, bool on)
{
    rt->clustered = on;
}

size_t rt_count(const struct rt *rt)
{
    return rt->table.count;
}

static bool rt_is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

/* RFC 6120 §8.3.1 and §10.3: an error is never answered with an error, nor
 * an iq result; RFC 6121 §4.3 / §8.5: presence to nobody is dropped. */
bool rt_may_bounce(const struct stz *st)
{
    const char *type = stz_attr(st, "type");

    if (strcmp(st->name, "iq") == 0)
        return rt_is(type, "get") || rt_is(type, "set");
    if (strcmp(st->name, "message") == 0)
        return !rt_is(type, "error");
    return false;
}

bool rt_subscription_type(const char *type)
{
    return rt_is(type, "subscribe") || rt_is(type, "subscribed") ||
           rt_is(type, "unsubscribe") || rt_is(type, "unsubscribed");
}

bool rt_iq_invalid(const struct stz *st)
{
    const char *type = stz_attr(st, "type");

    if (strcmp(st->name, "iq") != 0)
        return false;
    if (!rt_is(type, "get") && !rt_is(type, "set") && !rt_is(type, "result") &&
        !rt_is(type, "error"))
        return true;
    return (rt_is(type, "get") || rt_is(type, "set")) && stz_attr(st, "id") == NULL;
}

static int rt_reply_error(const struct stz *st, const char *type, const char *cond,
                          bool bounce, const char *why, struct rt_route *out)
{
    out->reply = stz_error_reply(st, type, cond, NULL);
    if (out->reply == NULL)
        return XE_NOMEM;
    out->verdict = RT_REPLY;
    out->bounce = bounce;
    out->why = why;
    return 0;
}

static void rt_drop(struct rt_route *out, const char *why)
{
    out->verdict = RT_DROP;
    out->why = why;
}

/* rt_make_iq builds <iq type id from to/> in the component namespace. */
static struct stz *rt_make_iq(const char *type, const char *id, const char *from,
                              const char *to)
{
    struct stz *iq = stz_new("iq", STZ_NS_COMPONENT);

    if (iq == NULL)
        return NULL;
    if (stz_set_attr(iq, "type", type) < 0 || (id && stz_set_attr(iq, "id", id) < 0) ||
        (from && stz_set_attr(iq, "from", from) < 0) ||
        (to && stz_set_attr(iq, "to", to) < 0)) {
        stz_free(iq);
        return NULL;
    }
    return iq;
}

struct stz *rt_make_ping(const char *from, const char *to, const char *id)
{
    struct stz *iq = rt_make_iq("get", id, from, to);

    if (iq != NULL && stz_add_child(iq, "ping", RT_NS_PING) == NULL) {
        stz_free(iq);
        return NULL;
    }
    return iq;
}

/* XEP-0030 §3.1: the server's identity and the features it implements
 * for its users: disco itself, XEP-0199 ping, XEP-0092 when on.  (Resource binding, SASL
 * and the session are stream features, not disco features.) */
static struct stz *rt_disco_info(const struct rt *rt, const struct stz *st)
{
    struct stz *iq = rt_make_iq("result", stz_attr(st, "id"), stz_attr(st, "to"),
                                stz_attr(st, "from"));
    struct stz *q, *c;

    if (iq == NULL)
        return NULL;
    q = stz_add_child(iq, "query", RT_NS_DISCO_INFO);
    if (q == NULL)
        goto err;
    c = stz_add_child(q, "identity", NULL);
    if (c == NULL || stz_set_attr(c, "category", "server") < 0 ||
        stz_set_attr(c, "type", "im") < 0 || stz_set_attr(c, "name", "xmppd") < 0)
        goto err;
    c = stz_add_child(q, "feature", NULL);
    if (c == NULL || stz_set_attr(c, "var", RT_NS_DISCO_INFO) < 0)
        goto err;
    c = stz_add_child(q, "feature", NULL);
    if (c == NULL || stz_set_attr(c, "var", RT_NS_DISCO_ITEMS) < 0)
        goto err;
    c = stz_add_child(q, "feature", NULL);
    if (c == NULL || stz_set_attr(c, "var", RT_NS_PING) < 0)
        goto err;
    /* XEP-0092 §2: listed only when it is answered. */
    if (rt->version != NULL && ((c = stz_add_child(q, "feature", NULL)) == NULL ||
                                stz_set_attr(c, "var", RT_NS_VERSION) < 0))
        goto err;
    return iq;

err:
    stz_free(iq);
    return NULL;
}

/* rt_version answers XEP-0092 §3 (software version): the name and the
 * version, never the <os/> (§5: it helps an attacker).  NULL when out of
 * memory. */
static struct stz *rt_version(const struct rt *rt, const struct stz *st)
{
    struct stz *iq = rt_make_iq("result", stz_attr(st, "id"), stz_attr(st, "to"),
                                stz_attr(st, "from"));
    struct stz *q = iq != NULL ? stz_add_child(iq, "query", RT_NS_VERSION) : NULL;
    struct stz *n = q != NULL ? stz_add_child(q, "name", NULL) : NULL;
    struct stz *v = n != NULL ? stz_add_child(q, "version", NULL) : NULL;

    if (v == NULL || stz_add_text(n, "xmppd", 5) < 0 ||
        stz_add_text(v, rt->version, strlen(rt->version)) < 0) {
        stz_free(iq);
        return NULL;
    }
    return iq;
}

/* rt_server_iq answers an iq get/set addressed to the server itself. */
static int rt_server_iq(const struct rt *rt, const struct stz *st, struct rt_route *out)
{
    struct stz *payload;
    bool get = rt_is(stz_attr(st, "type"), "get");
    int rc;

    /* The server looks inside: a lazily parsed stanza's children are built
     * now, so that out of memory is not taken for "no payload" (stz.h). */
    if ((rc = stz_expand(st)) != 0)
        return rc;
    payload = stz_first_element(st);

    /* RFC 6120 §8.2.3: a get or set carries exactly one payload element. */
    if (payload == NULL || stz_next_element(payload) != NULL)
        return rt_reply_error(st, "modify", "bad-request", false,
                              "iq without one payload", out);
    if (get && strcmp(payload->name, "ping") == 0 && rt_is(payload->ns, RT_NS_PING)) {
        /* XEP-0199 §6: the pong is an empty result. */
        out->reply = rt_make_iq("result", stz_attr(st, "id"), stz_attr(st, "to"),
                                stz_attr(st, "from"));
        out->why = "ping";
    } else if (get && strcmp(payload->name, "query") == 0 &&
               rt_is(payload->ns, RT_NS_DISCO_INFO)) {
        if (stz_attr(payload, "node") != NULL)
            return rt_reply_error(st, "cancel", "item-not-found", false,
                                  "disco#info node", out);
        out->reply = rt_disco_info(rt, st);
        out->why = "disco#info";
    } else if (get && strcmp(payload->name, "query") == 0 &&
               rt_is(payload->ns, RT_NS_DISCO_ITEMS)) {
        /* XEP-0030 §4.2: no items are published (call bridges are
         * reached by name, not listed). */
        if (stz_attr(payload, "node") != NULL)
            return rt_reply_error(st, "cancel", "item-not-found", false,
                                  "disco#items node", out);
        out->reply = rt_make_iq("result", stz_attr(st, "id"), stz_attr(st, "to"),
                                stz_attr(st, "from"));
        if (out->reply != NULL &&
            stz_add_child(out->reply, "query", RT_NS_DISCO_ITEMS) == NULL) {
            stz_free(out->reply);
            out->reply = NULL;
        }
        out->why = "disco#items";
    } else if (get && strcmp(payload->name, "query") == 0 &&
               rt_is(payload->ns, RT_NS_VERSION)) {
        /* XEP-0092 is off by default (xmpp client version): then the
         * service is not offered (RFC 6120 §8.3.3.19). */
        if (rt->version == NULL)
            return rt_reply_error(st, "cancel", "service-unavailable", false,
                                  "software version off", out);
        out->reply = rt_version(rt, st);
        out->why = "software version";
    } else {
        /* feature-not-implemented (RFC 6120 §8.3.3.7), as
         * docs/components.md says; §8.4 would allow service-unavailable. */
        return rt_reply_error(st, "cancel", "feature-not-implemented", false,
                              "iq not implemented", out);
    }
    if (out->reply == NULL)
        return XE_NOMEM;
    out->verdict = RT_REPLY;
    return 0;
}

static int rt_server_stanza(const struct rt *rt, const struct stz *st,
                            struct rt_route *out)
{
    const char *type = stz_attr(st, "type");

    if (strcmp(st->name, "iq") == 0) {
        if (rt_is(type, "get") || rt_is(type, "set"))
            return rt_server_iq(rt, st, out);
        /* Results and errors (pongs to our keep-alive pings) end here. */
        rt_drop(out, "iq response to the server");
        return 0;
    }
    if (rt_may_bounce(st))
        return rt_reply_error(st, "cancel", "service-unavailable", true,
                              "message to the server", out);
    rt_drop(out, "stanza to the server");
    return 0;
}

int rt_decide(struct rt *rt, const struct stz *st, struct rt_route *out)
{
    const char *to = stz_attr(st, "to");
    struct jid j = {0};
    int rc = to != NULL ? jid_parse(to, &j) : XE_INVAL;

    rc = rt_decide_jid(rt, st, rc, &j, out);
    jid_clear(&j);
    return rc;
}

int rt_decide_jid(struct rt *rt, const struct stz *st, int jrc, const struct jid *to,
                  struct rt_route *out)
{
    const struct jid j = *to;
    int rc = jrc;

    memset(out, 0, sizeof *out);
    if (stz_attr(st, "to") == NULL) {
        rt_drop(out, "no to");
        return 0;
    }
    if (rc == XE_NOMEM)
        return rc;
    if (rc < 0) {
        /* RFC 6120 §8.3.3.8: the address does not adhere to RFC 7622. */
        if (!rt_may_bounce(st)) {
            rt_drop(out, "malformed to");
            return 0;
        }
        rc = rt_reply_error(st, "modify", "jid-malformed", true, "malformed to", out);
        if (rc == 0 && stz_set_attr(out->reply, "from", rt->domain) < 0) {
            stz_free(out->reply);
            out->reply = NULL;
            rc = XE_NOMEM;
        }
        return rc;
    }
    if (j.local == NULL && strcmp(j.domain, rt->domain) == 0) {
        rc = rt_server_stanza(rt, st, out);
    } else if ((out->sess = rt_find(rt, j.domain)) != NULL) {
        out->verdict = RT_DELIVER;
        out->why = "deliver";
        rc = 0;
    } else if (rt->clustered && strcmp(j.domain, rt->domain) != 0 &&
               jid_domain_within(j.domain, rt->domain)) {
        /* Another node may hold it: the caller forwards it (an error reply
         * it may need later is fwd's to build). */
        rt_drop(out, "remote");
        rc = 0;
    } else if (rt_may_bounce(st)) {
        /* RFC 6120 §8.3.3.19 / §10.4.3: no such entity here. */
        rc = rt_reply_error(st, "cancel", "service-unavailable", true, "unknown address",
                            out);
    } else {
        rt_drop(out, "unknown address");
        rc = 0;
    }
    if (rc == 0 && out->verdict != RT_DELIVER && strcmp(j.domain, rt->domain) != 0 &&
        jid_domain_within(j.domain, rt->domain))
        out->remote = true;
    return rc;
}
