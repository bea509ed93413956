/* test_stz.c: the stanza tree, its serializer and error replies. */
#include <stdbool.h>

#include "testlib.h"

#include "err.h"
#include "stz.h"
#include "xs.h"

/* ser serializes el with parent_ns into a static-lifetime owned string. */
static char *ser(const struct stz *el, const char *parent_ns)
{
    struct buf b = {0};

    if (stz_serialize(el, parent_ns, &b) != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

#define CHECK_SER(el, pns, want)                                                         \
    do {                                                                                 \
        char *s_ = ser((el), (pns));                                                     \
        CHECK_STR(s_, (want));                                                           \
        free(s_);                                                                        \
    } while (0)

/* parse_one parses a single element (in a component stream) into a tree. */
static struct stz *parse_one(const char *xml)
{
    static const char hdr[] = "<stream:stream xmlns='jabber:component:accept' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>";
    struct xs *xs;
    struct xs_event ev;
    struct stz *el = NULL;

    if (xs_new(NULL, &xs) != 0)
        return NULL;
    xs_feed(xs, hdr, strlen(hdr));
    xs_feed(xs, xml, strlen(xml));
    while (xs_next(xs, &ev)) {
        if (ev.kind == XS_EV_ELEM && el == NULL)
            el = ev.el;
        else
            stz_free(ev.el);
    }
    xs_free(xs);
    return el;
}

static void test_new_free(void)
{
    struct stz *a = stz_new("message", STZ_NS_COMPONENT), *b = stz_new("x", NULL);

    REQUIRE(a != NULL && b != NULL);
    CHECK_INT(a->kind, STZ_ELEMENT);
    CHECK_STR(a->name, "message");
    CHECK_STR(a->ns, STZ_NS_COMPONENT);
    CHECK_STR(b->ns, "");
    CHECK(a->parent == NULL && a->first_child == NULL && a->last_child == NULL);
    CHECK(a->next == NULL && a->nattrs == 0);
    stz_free(a);
    stz_free(b);
    stz_free(NULL);
}

static void test_attrs(void)
{
    struct stz *el = stz_new("iq", STZ_NS_CLIENT);

    REQUIRE(el != NULL);
    CHECK(stz_attr(el, "id") == NULL);
    CHECK_INT(stz_set_attr(el, "id", "1"), 0);
    CHECK_INT(stz_set_attr(el, "type", "get"), 0);
    CHECK_STR(stz_attr(el, "id"), "1");
    CHECK_INT(stz_set_attr(el, "id", "2"), 0); /* replaces */
    CHECK_STR(stz_attr(el, "id"), "2");
    CHECK_INT(el->nattrs, 2);
    /* a namespaced attribute with the same local name is another attribute */
    CHECK_INT(stz_set_attr_ns(el, STZ_NS_XML, "id", "x"), 0);
    CHECK_INT(el->nattrs, 3);
    CHECK_STR(stz_attr(el, "id"), "2");
    CHECK_INT(stz_set_attr_ns(el, STZ_NS_XML, "id", "y"), 0);
    CHECK_INT(el->nattrs, 3);
    CHECK_STR(el->attrs[2].value, "y");
    CHECK_STR(el->attrs[2].ns, STZ_NS_XML);
    /* ns "" and NULL both mean unqualified */
    CHECK_INT(stz_set_attr_ns(el, "", "type", "set"), 0);
    CHECK_INT(el->nattrs, 3);
    CHECK_STR(stz_attr(el, "type"), "set");
    CHECK(el->attrs[1].ns == NULL);
    stz_del_attr(el, "id");
    CHECK(stz_attr(el, "id") == NULL);
    CHECK_INT(el->nattrs, 2);
    CHECK_STR(el->attrs[0].name, "type"); /* order kept */
    CHECK_STR(el->attrs[1].name, "id");   /* the xml:id stays */
    stz_del_attr(el, "absent");
    stz_del_attr(el, "type");
    stz_del_attr(el, "type");
    CHECK_INT(el->nattrs, 1);
    CHECK(stz_attr(el, "type") == NULL);
    stz_free(el);
}

static void test_children_and_text(void)
{
    struct stz *m = stz_new("message", STZ_NS_COMPONENT), *body, *x, *e;
    char *t;

    REQUIRE(m != NULL);
    CHECK(stz_first_element(m) == NULL);
    CHECK_INT(stz_add_text(m, "a", 1), 0);
    body = stz_add_child(m, "body", NULL);
    REQUIRE(body != NULL);
    CHECK_STR(body->ns, STZ_NS_COMPONENT); /* inherited */
    CHECK(body->parent == m);
    CHECK_INT(stz_add_text(body, "hel", 3), 0);
    CHECK_INT(stz_add_text(body, "lo", 2), 0);
    CHECK_INT(stz_add_text(body, "", 0), 0);
    /* adjacent text merges into one node */
    REQUIRE(body->first_child != NULL);
    CHECK(body->first_child == body->last_child);
    CHECK_INT(body->first_child->kind, STZ_TEXT);
    CHECK_INT(body->first_child->text_len, 5);
    CHECK_STR(body->first_child->text, "hello");
    x = stz_add_child(m, "x", "urn:x");
    REQUIRE(x != NULL);
    CHECK_STR(x->ns, "urn:x");
    CHECK_INT(stz_add_text(m, "b", 1), 0);
    e = stz_new("e", NULL);
    REQUIRE(e != NULL);
    stz_append(m, e);
    CHECK(e->parent == m && m->last_child == e);
    CHECK(stz_first_element(m) == body);
    CHECK(stz_next_element(body) == x);
    CHECK(stz_next_element(x) == e);
    CHECK(stz_next_element(e) == NULL);
    CHECK(stz_child(m, "x", NULL) == x);
    CHECK(stz_child(m, "x", "urn:x") == x);
    CHECK(stz_child(m, "x", STZ_NS_COMPONENT) == NULL);
    CHECK(stz_child(m, "e", "") == e);
    CHECK(stz_child(m, "nope", NULL) == NULL);
    t = stz_text(m);
    CHECK_STR(t, "ab"); /* direct text only */
    free(t);
    t = stz_text(body);
    CHECK_STR(t, "hello");
    free(t);
    t = stz_text(x);
    CHECK_STR(t, "");
    free(t);
    stz_free(m);
}

static void test_unlink(void)
{
    struct stz *p = stz_new("p", NULL), *a, *b, *c;

    REQUIRE(p != NULL);
    a = stz_add_child(p, "a", NULL);
    b = stz_add_child(p, "b", NULL);
    c = stz_add_child(p, "c", NULL);
    REQUIRE(a && b && c);
    stz_unlink(b); /* middle */
    CHECK(b->parent == NULL && b->next == NULL);
    CHECK(p->first_child == a && a->next == c && p->last_child == c);
    stz_free(b);
    stz_unlink(c); /* last */
    CHECK(p->last_child == a && a->next == NULL);
    stz_append(p, c); /* relink at the end */
    CHECK(p->last_child == c && a->next == c);
    stz_unlink(a); /* first */
    CHECK(p->first_child == c && p->last_child == c);
    stz_free(a);
    stz_unlink(c); /* only */
    CHECK(p->first_child == NULL && p->last_child == NULL);
    stz_free(c);
    stz_unlink(p); /* unlinked already: no-op */
    CHECK(p->parent == NULL);
    /* appending after unlinking everything works */
    CHECK(stz_add_child(p, "d", NULL) == p->first_child);
    stz_free(p);
}

static void test_copy(void)
{
    struct stz *m = parse_one("<message to='a' xml:lang='en'><body>hi &amp; bye</body>"
                              "<x xmlns='urn:x' xmlns:p='urn:p' p:k='v'>t<y/>u</x>"
                              "</message>"),
               *c;
    char *s1, *s2;

    REQUIRE(m != NULL);
    c = stz_copy(m);
    REQUIRE(c != NULL);
    CHECK(c != m && c->parent == NULL && c->next == NULL);
    s1 = ser(m, "");
    s2 = ser(c, "");
    CHECK_STR(s1, s2);
    free(s2);
    /* deep: changing the copy leaves the original alone */
    CHECK_INT(stz_set_attr(c, "to", "changed"), 0);
    CHECK_INT(stz_add_text(stz_child(c, "body", NULL), "!", 1), 0);
    s2 = ser(m, "");
    CHECK_STR(s1, s2);
    free(s2);
    CHECK(stz_child(c, "body", NULL)->first_child->text !=
          stz_child(m, "body", NULL)->first_child->text);
    CHECK(stz_child(stz_child(c, "x", NULL), "y", NULL)->parent ==
          stz_child(c, "x", NULL));
    free(s1);
    stz_free(c);
    stz_free(m);
}

static void test_serialize_escaping(void)
{
    struct stz *el = stz_new("message", STZ_NS_COMPONENT), *t;

    REQUIRE(el != NULL);
    CHECK_INT(stz_set_attr(el, "to", "a&b<c>d\"e'f"), 0);
    t = stz_add_child(el, "body", NULL);
    REQUIRE(t != NULL);
    CHECK_INT(stz_add_text(t, "x & y < z > w \" ' ]]>", 21), 0);
    CHECK_SER(el, STZ_NS_COMPONENT,
              "<message to='a&amp;b&lt;c&gt;d&quot;e&apos;f'><body>x &amp; y &lt; z "
              "&gt; w \" ' ]]&gt;</body></message>");
    stz_free(el);
    /* whitespace survives attribute-value normalisation; CR survives
     * end-of-line handling; other C0 controls are not XML and are dropped */
    el = stz_new("a", NULL);
    REQUIRE(el != NULL);
    CHECK_INT(stz_set_attr(el, "v", "1\t2\n3\r4\x01"), 0);
    CHECK_INT(stz_add_text(el, "l1\nl2\r\nl3\t\x02\x1f.", 13), 0);
    CHECK_SER(el, "", "<a v='1&#9;2&#10;3&#13;4'>l1\nl2&#13;\nl3\t.</a>");
    stz_free(el);
    /* text with an embedded NUL: len is honoured, the NUL dropped */
    el = stz_new("a", NULL);
    REQUIRE(el != NULL);
    CHECK_INT(stz_add_text(el, "x\0y", 3), 0);
    CHECK_INT(el->first_child->text_len, 3);
    CHECK_SER(el, "", "<a>xy</a>");
    /* UTF-8 passes through untouched */
    stz_free(el);
    el = stz_new("a", NULL);
    REQUIRE(el != NULL);
    CHECK_INT(stz_add_text(el, "Grüße 😀", strlen("Grüße 😀")), 0);
    CHECK_SER(el, "", "<a>Grüße 😀</a>");
    /* a lone text node serializes as escaped text */
    CHECK_SER(el->first_child, "", "Grüße 😀");
    stz_free(el);
}

static void test_serialize_namespaces(void)
{
    struct stz *m = stz_new("message", STZ_NS_COMPONENT), *x, *y, *z;

    REQUIRE(m != NULL);
    x = stz_add_child(m, "x", "urn:x");
    y = stz_add_child(x, "y", NULL);
    z = stz_add_child(x, "z", STZ_NS_COMPONENT);
    REQUIRE(x && y && z);
    CHECK_INT(stz_add_text(z, "t", 1), 0);
    CHECK_SER(m, STZ_NS_COMPONENT,
              "<message><x xmlns='urn:x'><y/><z xmlns='jabber:component:accept'>t</z>"
              "</x></message>");
    /* content namespaces stand for one another (RFC 6120 §4.8.3): the
     * message moves into a client stream without an xmlns; z below a
     * foreign parent keeps its own */
    CHECK_SER(m, STZ_NS_CLIENT,
              "<message><x xmlns='urn:x'><y/>"
              "<z xmlns='jabber:component:accept'>t</z></x></message>");
    CHECK_SER(m, NULL,
              "<message xmlns='jabber:component:accept'><x xmlns='urn:x'><y/>"
              "<z xmlns='jabber:component:accept'>t</z></x></message>");
    stz_free(m);
    /* no namespace under a default one undeclares it */
    m = stz_new("a", "urn:a");
    REQUIRE(m != NULL);
    CHECK(stz_add_child(m, "b", "") != NULL);
    CHECK_SER(m, "", "<a xmlns='urn:a'><b xmlns=''/></a>");
    CHECK_SER(m->first_child, "", "<b/>");
    stz_free(m);
    /* a namespace URI with quotes is escaped */
    m = stz_new("a", "urn:'q'&");
    REQUIRE(m != NULL);
    CHECK_SER(m, "", "<a xmlns='urn:&apos;q&apos;&amp;'/>");
    stz_free(m);
}

static void test_serialize_ns_attrs(void)
{
    struct stz *el = stz_new("presence", STZ_NS_COMPONENT), *c;

    REQUIRE(el != NULL);
    CHECK_INT(stz_set_attr_ns(el, STZ_NS_XML, "lang", "fr"), 0);
    CHECK_INT(stz_set_attr(el, "id", "1"), 0);
    CHECK_INT(stz_set_attr_ns(el, "urn:p", "a", "1"), 0);
    CHECK_INT(stz_set_attr_ns(el, "urn:q", "b", "2"), 0);
    CHECK_INT(stz_set_attr_ns(el, "urn:p", "c", "3"), 0);
    /* the xmlns pseudo attribute (xs OPEN events) and xmlns:* are never
     * written: declarations are the serializer's job */
    CHECK_INT(stz_set_attr(el, "xmlns", "urn:bogus"), 0);
    CHECK_INT(stz_set_attr(el, "xmlns:foo", "urn:bogus"), 0);
    c = stz_add_child(el, "c", NULL);
    REQUIRE(c != NULL);
    CHECK_INT(stz_set_attr_ns(c, "urn:q", "d", "4"), 0);
    CHECK_SER(el, STZ_NS_COMPONENT,
              "<presence xml:lang='fr' id='1' xmlns:ns2='urn:p' ns2:a='1' "
              "xmlns:ns3='urn:q' ns3:b='2' ns2:c='3'><c xmlns:ns0='urn:q' ns0:d='4'/>"
              "</presence>");
    stz_free(el);
}

static const char *const roundtrip_corpus[] = {
    "<message to='a@b' xml:lang='en'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2</body></message>",
    "<iq xmlns:p='urn:p' p:x='&apos;&quot;' type='set'><p:q><p:r xmlns='urn:r' "
    "a='&#9;&#10;&#13;'/></p:q></iq>",
    "<presence><status>line\r\nnext&#13;</status><x xmlns=''><y/></x></presence>",
    "<message><body><![CDATA[<raw> & ]]]]><![CDATA[>]]></body></message>",
};

static void test_roundtrip(void)
{
    for (size_t i = 0; i < sizeof roundtrip_corpus / sizeof roundtrip_corpus[0]; i++) {
        struct stz *a = parse_one(roundtrip_corpus[i]), *b;
        char *s1, *s2;

        REQUIRE(a != NULL);
        s1 = ser(a, STZ_NS_COMPONENT);
        REQUIRE(s1 != NULL);
        b = parse_one(s1);
        REQUIRE(b != NULL);
        s2 = ser(b, STZ_NS_COMPONENT);
        /* serialize(parse(serialize(x))) == serialize(x): a fixed point */
        CHECK_STR(s2, s1);
        free(s1);
        free(s2);
        stz_free(a);
        stz_free(b);
    }
    /* a tree built by hand survives parse(serialize()) */
    {
        struct stz *m = stz_new("message", STZ_NS_COMPONENT), *p;
        char *s, *t;

        REQUIRE(m != NULL);
        stz_set_attr(m, "to", "a'b\"c\t\n");
        stz_set_attr_ns(m, STZ_NS_XML, "lang", "de");
        stz_set_attr_ns(m, "urn:o", "o", "<&>");
        stz_add_text(stz_add_child(m, "body", NULL), "\r\n<&>]]>", 8);
        s = ser(m, STZ_NS_COMPONENT);
        p = parse_one(s);
        REQUIRE(p != NULL);
        t = ser(p, STZ_NS_COMPONENT);
        CHECK_STR(t, s);
        CHECK_STR(stz_attr(p, "to"), "a'b\"c\t\n");
        free(t);
        t = stz_text(stz_child(p, "body", NULL));
        CHECK_STR(t, "\r\n<&>]]>");
        free(t);
        free(s);
        stz_free(p);
        stz_free(m);
    }
}

static void test_serialize_appends(void)
{
    struct stz *el = stz_new("a", NULL);
    struct buf b = {0};

    REQUIRE(el != NULL);
    buf_puts(&b, "pre");
    CHECK_INT(stz_serialize(el, "", &b), 0);
    CHECK_INT(stz_serialize(el, "", &b), 0);
    CHECK_STR(b.data, "pre<a/><a/>");
    buf_free(&b);
    stz_free(el);
}

static void test_is_stanza(void)
{
    const char *names[] = {"message", "presence", "iq"};

    for (size_t i = 0; i < 3; i++) {
        struct stz *el = stz_new(names[i], STZ_NS_COMPONENT);

        REQUIRE(el != NULL);
        CHECK(stz_is_stanza(el, STZ_NS_COMPONENT));
        CHECK(stz_is_stanza(el, NULL));
        CHECK(!stz_is_stanza(el, STZ_NS_CLIENT));
        stz_free(el);
    }
    {
        struct stz *el = stz_new("handshake", STZ_NS_COMPONENT), *m;

        REQUIRE(el != NULL);
        CHECK(!stz_is_stanza(el, STZ_NS_COMPONENT));
        CHECK(!stz_is_stanza(el, NULL));
        stz_free(el);
        m = stz_new("messages", STZ_NS_COMPONENT);
        REQUIRE(m != NULL);
        CHECK(!stz_is_stanza(m, NULL));
        CHECK_INT(stz_add_text(m, "x", 1), 0);
        CHECK(!stz_is_stanza(m->first_child, NULL));
        stz_free(m);
    }
}

static void test_error_reply(void)
{
    struct stz *orig = parse_one("<iq from='a@b.c/r' to='svc.b.c' id='q1' type='get'>"
                                 "<query xmlns='urn:q'/></iq>"),
               *r, *e, *c;
    char *s;

    REQUIRE(orig != NULL);
    r = stz_error_reply(orig, "cancel", "service-unavailable", NULL);
    REQUIRE(r != NULL);
    CHECK(r != orig && r->parent == NULL);
    CHECK_STR(r->name, "iq");
    CHECK_STR(r->ns, STZ_NS_COMPONENT);
    CHECK_STR(stz_attr(r, "to"), "a@b.c/r");
    CHECK_STR(stz_attr(r, "from"), "svc.b.c");
    CHECK_STR(stz_attr(r, "id"), "q1");
    CHECK_STR(stz_attr(r, "type"), "error");
    CHECK(stz_child(r, "query", "urn:q") != NULL); /* original payload kept */
    e = stz_child(r, "error", STZ_NS_COMPONENT);
    REQUIRE(e != NULL);
    CHECK(stz_next_element(e) == NULL); /* error comes last */
    CHECK_STR(stz_attr(e, "type"), "cancel");
    c = stz_first_element(e);
    REQUIRE(c != NULL);
    CHECK_STR(c->name, "service-unavailable");
    CHECK_STR(c->ns, STZ_NS_STANZAS);
    CHECK(stz_next_element(c) == NULL);
    s = ser(r, STZ_NS_COMPONENT);
    CHECK_STR(s, "<iq from='svc.b.c' to='a@b.c/r' id='q1' type='error'>"
                 "<query xmlns='urn:q'/><error type='cancel'><service-unavailable "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    free(s);
    /* the original is untouched */
    CHECK_STR(stz_attr(orig, "type"), "get");
    CHECK(stz_child(orig, "error", NULL) == NULL);
    stz_free(r);
    stz_free(orig);

    /* no from: the reply has no to; text is escaped in <text/> */
    orig = parse_one("<message to='x.b.c' id='m'><body>b</body></message>");
    REQUIRE(orig != NULL);
    r = stz_error_reply(orig, "wait", "resource-constraint", "queue <full> & busy");
    REQUIRE(r != NULL);
    CHECK(stz_attr(r, "to") == NULL);
    CHECK_STR(stz_attr(r, "from"), "x.b.c");
    s = ser(r, STZ_NS_COMPONENT);
    CHECK_STR(s, "<message id='m' from='x.b.c' type='error'><body>b</body>"
                 "<error type='wait'><resource-constraint "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>queue &lt;full&gt; &amp; "
                 "busy</text></error></message>");
    free(s);
    stz_free(r);
    stz_free(orig);

    /* neither to nor from; type replaced */
    orig = parse_one("<presence type='subscribe'/>");
    REQUIRE(orig != NULL);
    r = stz_error_reply(orig, "modify", "bad-request", NULL);
    REQUIRE(r != NULL);
    CHECK_SER(r, STZ_NS_COMPONENT,
              "<presence type='error'><error type='modify'><bad-request "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
    stz_free(r);
    stz_free(orig);
}

/* test_raw: received bytes are written as they came below a content
 * namespace, and any change to the tree drops them. */
static void test_raw(void)
{
    const char *raw = "<message  to=\"a@b\"><body>h&#105;</body></message>";
    struct stz *m = stz_new("message", STZ_NS_COMPONENT), *b;
    char *x;

    REQUIRE(m != NULL);
    REQUIRE(stz_set_attr(m, "to", "a@b") == 0);
    b = stz_add_child(m, "body", NULL);
    REQUIRE(b != NULL && stz_add_text(b, "hi", 2) == 0);
    REQUIRE(stz_set_raw(m, raw, strlen(raw)) == 0);
    x = ser(m, STZ_NS_CLIENT);
    CHECK_STR(x, "<message  to=\"a@b\"><body>h&#105;</body></message>");
    free(x);
    /* alone (no content namespace around it): the tree, with its xmlns */
    x = ser(m, "");
    CHECK_STR(
        x, "<message xmlns='jabber:component:accept' to='a@b'><body>hi</body></message>");
    free(x);
    /* a change below the root drops the bytes */
    REQUIRE(stz_add_text(b, "!", 1) == 0);
    CHECK(m->raw == NULL);
    x = ser(m, STZ_NS_CLIENT);
    CHECK_STR(x, "<message to='a@b'><body>hi!</body></message>");
    free(x);
    REQUIRE(stz_set_raw(m, "<message/>", 10) == 0);
    REQUIRE(stz_set_attr(m, "type", "chat") == 0);
    CHECK(m->raw == NULL);
    stz_free(m);
}

/* test_stamp_attr: the server's 'from' goes at the end of the raw start tag,
 * after a '>' inside a value, before "/>"; replacing a value drops raw. */
static void test_stamp_attr(void)
{
    struct stz *m = stz_new("message", STZ_NS_CLIENT), *p = stz_new("presence", NULL);
    const char *raw = "<message to='a>b' id=\"'\"><body/></message>";
    char *x;

    REQUIRE(m != NULL && p != NULL);
    REQUIRE(stz_set_attr(m, "to", "a>b") == 0 && stz_set_attr(m, "id", "'") == 0);
    REQUIRE(stz_add_child(m, "body", NULL) != NULL);
    REQUIRE(stz_set_raw(m, raw, strlen(raw)) == 0);
    REQUIRE(stz_stamp_attr(m, "from", "u@d/r&s") == 0);
    CHECK_STR(stz_attr(m, "from"), "u@d/r&s");
    CHECK_STR(m->raw, "<message to='a>b' id=\"'\" from='u@d/r&amp;s'><body/></message>");
    CHECK_INT(m->raw_len, strlen(m->raw));
    /* the same value again changes nothing */
    REQUIRE(stz_stamp_attr(m, "from", "u@d/r&s") == 0);
    CHECK_STR(m->raw, "<message to='a>b' id=\"'\" from='u@d/r&amp;s'><body/></message>");
    /* another value: the tree decides */
    REQUIRE(stz_stamp_attr(m, "from", "v@d/r") == 0);
    CHECK(m->raw == NULL);
    x = ser(m, STZ_NS_CLIENT);
    CHECK_STR(x, "<message to='a&gt;b' id='&apos;' from='v@d/r'><body/></message>");
    free(x);
    REQUIRE(stz_set_raw(p, "<presence />", 12) == 0);
    REQUIRE(stz_stamp_attr(p, "from", "u@d/r") == 0);
    CHECK_STR(p->raw, "<presence  from='u@d/r'/>");
    stz_free(m);
    stz_free(p);
}

/* An element made in one block (stz_new_init) is the element stz_new and
 * stz_set_attr_ns make: the same serialization and stz_node_mem, and every
 * change (replace, add past the array, delete, children, copy) works on
 * it (run under valgrind, no part of the block is freed on its own). */
static void test_new_init(void)
{
    static const char ns[] = "jabber:component:acceptX";
    struct stz_init_attr a[] = {
        {NULL, 0, "to", 2, "b@cb2.example.com", 17},
        {NULL, 0, "from", 4, "a@cb1.example.comZZ", 17},
        {STZ_NS_XML, strlen(STZ_NS_XML), "lang", 4, "en", 2},
        {"", 0, "id", 2, "", 0},
    };
    struct stz *el = stz_new_init("messageX", 7, ns, sizeof ns - 2, a, 4);
    struct stz *ref = stz_new("message", "jabber:component:accept"), *c;
    char *s1, *s2;

    REQUIRE(el != NULL && ref != NULL);
    stz_set_attr(ref, "to", "b@cb2.example.com");
    stz_set_attr(ref, "from", "a@cb1.example.com");
    stz_set_attr_ns(ref, STZ_NS_XML, "lang", "en");
    stz_set_attr(ref, "id", "");
    CHECK_STR(el->name, "message");
    CHECK_STR(el->ns, "jabber:component:accept");
    CHECK_STR(stz_attr(el, "from"), "a@cb1.example.com");
    CHECK_INT(stz_node_mem(el), stz_node_mem(ref));
    s1 = ser(el, NULL);
    s2 = ser(ref, NULL);
    CHECK_STR(s1, s2);
    free(s1);
    free(s2);
    /* replace a value, add two attributes (the array leaves the block),
     * delete one from the block and one from the heap */
    CHECK_INT(stz_set_attr(el, "id", "m1"), 0);
    CHECK_INT(stz_set_attr(el, "type", "chat"), 0);
    CHECK_INT(stz_set_attr(el, "x", "y"), 0);
    stz_del_attr(el, "to");
    stz_del_attr(el, "x");
    CHECK(stz_add_child(el, "body", NULL) != NULL);
    c = stz_copy(el);
    REQUIRE(c != NULL);
    s1 = ser(c, "jabber:component:accept");
    CHECK_STR(s1, "<message from='a@cb1.example.com' xml:lang='en' id='m1' "
                  "type='chat'><body/></message>");
    free(s1);
    stz_free(c);
    stz_free(el);
    stz_free(ref);
    /* no attributes, no namespace */
    el = stz_new_init("a", 1, NULL, 0, NULL, 0);
    REQUIRE(el != NULL);
    CHECK_STR(el->ns, "");
    CHECK_INT(el->nattrs, 0);
    CHECK_INT(stz_set_attr(el, "k", "v"), 0);
    CHECK_STR(stz_attr(el, "k"), "v");
    stz_free(el);
}

TL_MAIN(T(test_new_free), T(test_new_init), T(test_attrs), T(test_children_and_text),
        T(test_unlink), T(test_copy), T(test_serialize_escaping),
        T(test_serialize_namespaces), T(test_serialize_ns_attrs), T(test_roundtrip),
        T(test_serialize_appends), T(test_is_stanza), T(test_error_reply), T(test_raw),
        T(test_stamp_attr))
