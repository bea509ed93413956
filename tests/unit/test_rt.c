/* test_rt.c: the router table (add, replace, delete, longest match, growth)
 * and its routing verdicts. */
#include <stdio.h>

#include "buf.h"
#include "err.h"
#include "jid.h"
#include "rt.h"
#include "testlib.h"

static int a, b, c;      /* stand-ins for sessions */
static char slots[3000]; /* more of them */

static void test_table(void)
{
    struct rt *rt;
    void *old = &a;

    REQUIRE(rt_new("example.com", &rt) == 0);
    CHECK(rt_find(rt, "cb1.example.com") == NULL);
    CHECK_INT(rt_add(rt, "cb1.example.com", &a, &old), 0);
    CHECK(old == NULL);
    CHECK_INT(rt_add(rt, "media.cb1.example.com", &b, NULL), 0);
    CHECK(rt_find(rt, "cb1.example.com") == &a);
    CHECK(rt_find(rt, "x.cb1.example.com") == &a);
    CHECK(rt_find(rt, "media.cb1.example.com") == &b);
    CHECK(rt_find(rt, "a.b.media.cb1.example.com") == &b);
    CHECK(rt_find(rt, "xcb1.example.com") == NULL);
    CHECK(rt_find(rt, "example.com") == NULL);
    CHECK(rt_find(rt, "") == NULL);
    CHECK_INT(rt_count(rt), 2);
    /* replace: the old holder is handed back */
    CHECK_INT(rt_add(rt, "cb1.example.com", &c, &old), 0);
    CHECK(old == &a);
    CHECK(rt_find(rt, "cb1.example.com") == &c);
    /* the replaced session removing itself is a no-op */
    rt_del(rt, "cb1.example.com", &a);
    CHECK(rt_find(rt, "cb1.example.com") == &c);
    rt_del(rt, "cb1.example.com", &c);
    CHECK(rt_find(rt, "cb1.example.com") == NULL);
    CHECK(rt_find(rt, "y.cb1.example.com") == NULL);
    CHECK_INT(rt_count(rt), 1);
    rt_free(rt);
}

static void test_growth(void)
{
    struct rt *rt;
    char name[64];
    int ok = 1;

    REQUIRE(rt_new("example.com", &rt) == 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "cb%d.example.com", i);
        CHECK_INT(rt_add(rt, name, &slots[i], NULL), 0);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "u.cb%d.example.com", i);
        ok &= rt_find(rt, name) == &slots[i];
    }
    CHECK(ok);
    CHECK_INT(rt_count(rt), 3000);
    rt_free(rt);
}

static struct stz *stanza(const char *name, const char *type, const char *to)
{
    struct stz *s = stz_new(name, STZ_NS_COMPONENT);

    stz_set_attr(s, "from", "cb1.example.com");
    stz_set_attr(s, "to", to);
    if (type != NULL)
        stz_set_attr(s, "type", type);
    stz_set_attr(s, "id", "i");
    return s;
}

static enum rt_verdict verdict(struct rt *rt, const char *name, const char *type,
                               const char *to, const char **cond)
{
    struct stz *s = stanza(name, type, to);
    struct rt_route r;
    enum rt_verdict v;

    if (strcmp(name, "iq") == 0 && type != NULL &&
        (strcmp(type, "get") == 0 || strcmp(type, "set") == 0))
        stz_add_child(s, "query", "jabber:iq:last");
    if (rt_decide(rt, s, &r) != 0) {
        stz_free(s);
        return (enum rt_verdict) - 1;
    }
    v = r.verdict;
    *cond = "";
    if (r.reply != NULL) {
        struct stz *e = stz_child(r.reply, "error", NULL);
        struct stz *k = e ? stz_first_element(e) : NULL;
        static char buf[64];
        snprintf(buf, sizeof buf, "%s", k ? k->name : "result");
        *cond = buf;
        stz_free(r.reply);
    }
    stz_free(s);
    return v;
}

static void test_verdicts(void)
{
    struct rt *rt;
    const char *cond;

    REQUIRE(rt_new("example.com", &rt) == 0);
    REQUIRE(rt_add(rt, "cb2.example.com", &b, NULL) == 0);
    CHECK_INT(verdict(rt, "message", NULL, "u@cb2.example.com/r", &cond), RT_DELIVER);
    CHECK_INT(verdict(rt, "presence", NULL, "cb2.example.com", &cond), RT_DELIVER);
    CHECK_INT(verdict(rt, "message", "chat", "cb3.example.com", &cond), RT_REPLY);
    CHECK_STR(cond, "service-unavailable");
    CHECK_INT(verdict(rt, "message", "error", "cb3.example.com", &cond), RT_DROP);
    CHECK_INT(verdict(rt, "presence", NULL, "cb3.example.com", &cond), RT_DROP);
    CHECK_INT(verdict(rt, "iq", "get", "cb3.example.com", &cond), RT_REPLY);
    CHECK_STR(cond, "service-unavailable");
    CHECK_INT(verdict(rt, "iq", "result", "cb3.example.com", &cond), RT_DROP);
    CHECK_INT(verdict(rt, "iq", "error", "cb3.example.com", &cond), RT_DROP);
    CHECK_INT(verdict(rt, "iq", "get", "example.com", &cond), RT_REPLY);
    CHECK_STR(cond, "feature-not-implemented");
    CHECK_INT(verdict(rt, "iq", "get", "example.com/res", &cond), RT_REPLY);
    CHECK_STR(cond, "feature-not-implemented");
    CHECK_INT(verdict(rt, "iq", "result", "example.com", &cond), RT_DROP);
    CHECK_INT(verdict(rt, "iq", "get", "user@example.com", &cond), RT_REPLY);
    CHECK_STR(cond, "service-unavailable");
    CHECK_INT(verdict(rt, "message", NULL, "a@b@c", &cond), RT_REPLY);
    CHECK_STR(cond, "jid-malformed");
    CHECK_INT(verdict(rt, "presence", NULL, "a@b@c", &cond), RT_DROP);
    rt_free(rt);
}

/* XEP-0092: off, service-unavailable; on, name and version, no <os/>;
 * off again. */
static void test_version(void)
{
    struct rt *rt;
    struct stz *s = stanza("iq", "get", "example.com");
    struct rt_route r;
    struct buf out = {0};

    REQUIRE(rt_new("example.com", &rt) == 0);
    stz_add_child(s, "query", RT_NS_VERSION);
    REQUIRE(rt_decide(rt, s, &r) == 0);
    CHECK_INT(r.verdict, RT_REPLY);
    CHECK(stz_serialize(r.reply, STZ_NS_COMPONENT, &out) == 0 &&
          strstr(out.data, "<service-unavailable ") != NULL);
    stz_free(r.reply);
    REQUIRE(rt_set_version(rt, "0.1.0") == 0);
    REQUIRE(rt_decide(rt, s, &r) == 0);
    buf_reset(&out);
    CHECK(stz_serialize(r.reply, STZ_NS_COMPONENT, &out) == 0);
    CHECK(strstr(out.data, "type='result'") != NULL &&
          strstr(out.data, "<query xmlns='jabber:iq:version'><name>xmppd</name><version>"
                           "0.1.0</version></query>") != NULL &&
          strstr(out.data, "<os") == NULL);
    stz_free(r.reply);
    REQUIRE(rt_set_version(rt, NULL) == 0);
    REQUIRE(rt_decide(rt, s, &r) == 0);
    buf_reset(&out);
    CHECK(stz_serialize(r.reply, STZ_NS_COMPONENT, &out) == 0 &&
          strstr(out.data, "<service-unavailable ") != NULL);
    stz_free(r.reply);
    buf_free(&out);
    stz_free(s);
    rt_free(rt);
}

static void test_ping(void)
{
    struct stz *p = rt_make_ping("example.com", "cb1.example.com", "ping-1");
    struct buf out = {0};

    REQUIRE(p != NULL);
    CHECK_INT(stz_serialize(p, STZ_NS_COMPONENT, &out), 0);
    CHECK_STR(out.data, "<iq type='get' id='ping-1' from='example.com' "
                        "to='cb1.example.com'><ping xmlns='urn:xmpp:ping'/></iq>");
    buf_free(&out);
    stz_free(p);
}

/* XEP-0030: disco#items of the domain is an empty result; with a node,
 * item-not-found. */
static void test_disco_items(void)
{
    struct rt *rt;
    struct stz *s = stanza("iq", "get", "example.com"), *q;
    struct rt_route r;
    struct buf out = {0};

    REQUIRE(rt_new("example.com", &rt) == 0);
    q = stz_add_child(s, "query", RT_NS_DISCO_ITEMS);
    REQUIRE(q != NULL && rt_decide(rt, s, &r) == 0);
    CHECK_INT(r.verdict, RT_REPLY);
    CHECK(!r.bounce);
    CHECK_INT(stz_serialize(r.reply, STZ_NS_COMPONENT, &out), 0);
    CHECK_STR(out.data, "<iq type='result' id='i' from='example.com' "
                        "to='cb1.example.com'><query "
                        "xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    stz_free(r.reply);
    stz_set_attr(q, "node", "x");
    REQUIRE(rt_decide(rt, s, &r) == 0);
    CHECK(stz_child(stz_child(r.reply, "error", NULL), "item-not-found", NULL) != NULL);
    stz_free(r.reply);
    buf_free(&out);
    stz_free(s);
    rt_free(rt);
}

/* Cluster mode: a stanza to a name within the domain that no
 * local session holds is marked remote and gets no reply (the caller
 * forwards it); names outside the domain and the server's own are
 * answered as before, and rt_decide_jid decides as rt_decide does. */
static void test_clustered(void)
{
    struct rt *rt;
    struct stz *s = stanza("message", "chat", "cb3.example.com");
    struct rt_route r;
    struct jid j = {0};

    REQUIRE(rt_new("example.com", &rt) == 0);
    REQUIRE(rt_add(rt, "cb2.example.com", &b, NULL) == 0);
    rt_set_clustered(rt, true);
    REQUIRE(rt_decide(rt, s, &r) == 0);
    CHECK_INT(r.verdict, RT_DROP);
    CHECK(r.remote);
    CHECK(r.reply == NULL);
    REQUIRE(jid_parse("cb3.example.com", &j) == 0);
    REQUIRE(rt_decide_jid(rt, s, 0, &j, &r) == 0);
    CHECK(r.verdict == RT_DROP && r.remote && r.reply == NULL);
    jid_clear(&j);
    stz_set_attr(s, "to", "cb2.example.com");
    REQUIRE(rt_decide(rt, s, &r) == 0);
    CHECK_INT(r.verdict, RT_DELIVER);
    stz_set_attr(s, "to", "other.org");
    REQUIRE(rt_decide(rt, s, &r) == 0);
    CHECK_INT(r.verdict, RT_REPLY);
    CHECK(!r.remote);
    stz_free(r.reply);
    stz_set_attr(s, "to", "cb3.example.com");
    rt_set_clustered(rt, false);
    REQUIRE(rt_decide(rt, s, &r) == 0);
    CHECK_INT(r.verdict, RT_REPLY);
    CHECK(r.remote);
    stz_free(r.reply);
    stz_free(s);
    rt_free(rt);
}

TL_MAIN(T(test_table), T(test_growth), T(test_verdicts), T(test_version), T(test_ping),
        T(test_disco_items), T(test_clustered))
