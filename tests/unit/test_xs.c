/* test_xs.c: the XML stream framer: events, chunking, restrictions, limits,
 * restarts and stream errors.
 *
 * Past 1,000 lines on purpose: one test file per source file (STYLE,
 * Tests), and xs.c carries the framer, its limits and the token-end
 * scanner behind the deferral; the helpers and the corpus at the top serve
 * every case below. */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>

#include "testlib.h"

#include "err.h"
#include "xs.h"

#define HDR                                                                              \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com' "              \
    "from='example.com' id='abc' version='1.0' xml:lang='en'>"
#define HDR_NO_DECL                                                                      \
    "<stream:stream xmlns='jabber:component:accept' "                                    \
    "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com'>"

/* ---- helpers ----------------------------------------------------------- */

/* describe appends a one-line description of ev to out (the transcript). */
static void describe(const struct xs_event *ev, struct buf *out)
{
    switch (ev->kind) {
    case XS_EV_OPEN: {
        const char *ns = stz_attr(ev->el, "xmlns");

        buf_printf(out, "OPEN[%s] ", ns ? ns : "(none)");
        stz_serialize(ev->el, "", out);
        break;
    }
    case XS_EV_ELEM:
        buf_puts(out, "ELEM ");
        stz_serialize(ev->el, STZ_NS_COMPONENT, out);
        break;
    case XS_EV_CLOSE:
        buf_puts(out, "CLOSE");
        break;
    case XS_EV_ERROR:
        buf_printf(out, "ERROR %s", xs_cond_name(ev->cond));
        break;
    }
    buf_puts(out, "\n");
}

/* run feeds data to a fresh framer (limits may be NULL) in chunks of chunk
 * bytes (0: all at once), pulling events after each feed, and returns the
 * transcript (owned). */
static char *run(const struct xs_limits *lim, const char *data, size_t len, size_t chunk)
{
    struct xs *xs;
    struct buf out = {0};
    struct xs_event ev;
    size_t off = 0;
    bool ended = false;

    if (xs_new(lim, &xs) != 0)
        return NULL;
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        int rv = xs_feed(xs, data + off, n);

        off += n;
        if (rv == XE_STATE) {
            /* refused input is only expected after the final event */
            if (!ended)
                buf_puts(&out, "STATE\n");
            break;
        }
        while (xs_next(xs, &ev)) {
            describe(&ev, &out);
            ended = ended || ev.kind == XS_EV_CLOSE || ev.kind == XS_EV_ERROR;
            stz_free(ev.el);
        }
    }
    xs_free(xs);
    return buf_steal(&out);
}

static char *run_s(const char *data, size_t chunk)
{
    return run(NULL, data, strlen(data), chunk);
}

/* last_cond runs data whole and byte by byte, checks both give the same
 * transcript, and returns the condition of the final ERROR event, or -1 when
 * the transcript ends without one. */
static int last_cond(const struct xs_limits *lim, const char *data, size_t len)
{
    char *a = run(lim, data, len, 0), *b = run(lim, data, len, 1), *e;
    int cond = -1;

    if (a == NULL || b == NULL) {
        CHECK(!"out of memory");
        goto out;
    }
    CHECK_STR(a, b);
    e = strstr(a, "ERROR ");
    if (e != NULL) {
        char name[64];

        CHECK(sscanf(e, "ERROR %63s", name) == 1);
        for (int c = 0; c < XS_COND_COUNT; c++)
            if (strcmp(xs_cond_name(c), name) == 0)
                cond = c;
        CHECK(strchr(e, '\n') == a + strlen(a) - 1); /* the error is last */
    }
out:
    free(a);
    free(b);
    return cond;
}

static int cond_of(const char *data)
{
    return last_cond(NULL, data, strlen(data));
}

static int count_lines(const char *s, const char *prefix)
{
    int n = 0;

    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

/* pull_one feeds a whole document and returns the first event's copy. */
static bool next_ev(struct xs *xs, struct xs_event *ev)
{
    return xs_next(xs, ev);
}

/* tree_equal compares two trees: names, namespaces, attributes (as sets),
 * children in order. */
static bool tree_equal(const struct stz *a, const struct stz *b)
{
    const struct stz *x, *y;

    if (a->kind != b->kind)
        return false;
    if (a->kind == STZ_TEXT)
        return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
    if (strcmp(a->name, b->name) != 0 || strcmp(a->ns, b->ns) != 0 ||
        a->nattrs != b->nattrs)
        return false;
    for (size_t i = 0; i < a->nattrs; i++) {
        bool found = false;

        for (size_t j = 0; j < b->nattrs; j++) {
            const struct stz_attr *p = &a->attrs[i], *q = &b->attrs[j];

            if (strcmp(p->name, q->name) == 0 && (p->ns == NULL) == (q->ns == NULL) &&
                (p->ns == NULL || strcmp(p->ns, q->ns) == 0) &&
                strcmp(p->value, q->value) == 0)
                found = true;
        }
        if (!found)
            return false;
    }
    for (x = a->first_child, y = b->first_child; x && y; x = x->next, y = y->next)
        if (!tree_equal(x, y))
            return false;
    return x == NULL && y == NULL;
}

/* ---- the corpus -------------------------------------------------------- */

static const char *const corpus[] = {
    "<message to='a@b.c' from='cb1.example.com' id='1' type='chat'>"
    "<body>hello &amp; &lt;world&gt; &quot;q&quot; &apos;a&apos;</body></message>",
    "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<presence xml:lang='fr'><status xml:lang='de'>  Grüße, 世界 😀 </status></presence>",
    "<message id='&#x1F600;&#65;'><body>&#x1F600;&#233;<![CDATA[<not>&markup;]]>x</body>"
    "</message>",
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    "<handshake>aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d</handshake>",
    "<x:iq xmlns:x='jabber:component:accept' xmlns:y='urn:y' y:attr='v' attr='w' "
    "type='set'><y:query><y:item/><z xmlns='urn:z'><y:deep y:q=\"it's\"/></z></y:query>"
    "</x:iq>",
    "<message><body>line1\nline2\r\nline3\ttab</body><thread>t</thread></message>",
    "<message to=\"a&#10;b\" from='x&#9;y' id='&lt;&gt;&amp;'/>",
    "<iq><query xmlns=''><item xmlns='urn:a'><sub/></item></query></iq>",
};

static struct buf corpus_stream(void)
{
    struct buf b = {0};

    buf_puts(&b, HDR);
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        buf_puts(&b, corpus[i]);
        buf_puts(&b, i % 2 ? " \n\t " : "\r\n");
    }
    buf_puts(&b, "</stream:stream>");
    return b;
}

/* ---- tests ------------------------------------------------------------- */

static void test_cond_names(void)
{
    CHECK_STR(xs_cond_name(XS_COND_BAD_FORMAT), "bad-format");
    CHECK_STR(xs_cond_name(XS_COND_NOT_WELL_FORMED), "not-well-formed");
    CHECK_STR(xs_cond_name(XS_COND_UNSUPPORTED_VERSION), "unsupported-version");
    CHECK_STR(xs_cond_name(XS_COND_COUNT), "undefined-condition");
    CHECK_STR(xs_cond_name((enum xs_cond) - 1), "undefined-condition");
    for (int i = 0; i < XS_COND_COUNT; i++)
        for (int j = i + 1; j < XS_COND_COUNT; j++)
            CHECK(strcmp(xs_cond_name(i), xs_cond_name(j)) != 0);
}

static void test_limits_default(void)
{
    struct xs_limits l;

    memset(&l, 0xff, sizeof l);
    xs_limits_default(&l);
    CHECK_INT(l.max_stanza_bytes, 256 * 1024);
    CHECK_INT(l.max_depth, 32);
    CHECK_INT(l.max_attrs, 64);
}

static void test_open_event(void)
{
    struct xs *xs;
    struct xs_event ev;
    struct stz *el;

    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK(!xs_next(xs, &ev));
    CHECK_INT(xs_feed(xs, HDR, strlen(HDR)), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    el = ev.el;
    REQUIRE(el != NULL);
    CHECK_STR(el->name, "stream");
    CHECK_STR(el->ns, STZ_NS_STREAMS);
    CHECK(el->first_child == NULL);
    CHECK_STR(stz_attr(el, "to"), "cb1.example.com");
    CHECK_STR(stz_attr(el, "from"), "example.com");
    CHECK_STR(stz_attr(el, "id"), "abc");
    CHECK_STR(stz_attr(el, "version"), "1.0");
    CHECK_STR(stz_attr(el, "xmlns"), STZ_NS_COMPONENT);
    CHECK(stz_attr(el, "lang") == NULL); /* xml:lang is namespaced */
    {
        bool lang = false;

        for (size_t i = 0; i < el->nattrs; i++)
            if (el->attrs[i].ns && strcmp(el->attrs[i].ns, STZ_NS_XML) == 0 &&
                strcmp(el->attrs[i].name, "lang") == 0 &&
                strcmp(el->attrs[i].value, "en") == 0)
                lang = true;
        CHECK(lang);
    }
    /* to, from, id, version, xml:lang and the xmlns pseudo attribute */
    CHECK_INT(el->nattrs, 6);
    stz_free(el);
    CHECK(!xs_next(xs, &ev));
    xs_free(xs);
}

static void test_open_without_default_ns(void)
{
    struct xs *xs;
    struct xs_event ev;
    const char *h = "<s:stream xmlns:s='http://etherx.jabber.org/streams' to='x'>";

    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, h, strlen(h)), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    CHECK(stz_attr(ev.el, "xmlns") == NULL);
    CHECK_STR(stz_attr(ev.el, "to"), "x");
    stz_free(ev.el);
    /* the prefix is free: a default-namespace root is fine too */
    REQUIRE(xs_reset(xs) == 0);
    h = "<stream xmlns='http://etherx.jabber.org/streams'>";
    CHECK_INT(xs_feed(xs, h, strlen(h)), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    CHECK_STR(stz_attr(ev.el, "xmlns"), STZ_NS_STREAMS);
    stz_free(ev.el);
    xs_free(xs);
}

static void test_elem_tree(void)
{
    struct xs *xs;
    struct xs_event ev;
    struct stz *el, *body, *c;
    const char *s = HDR "<message to='a@b' xml:lang='fr'><body>a&amp;b<![CDATA[<c>]]>"
                        "</body><x xmlns='urn:x' xmlns:p='urn:p' p:k='v'><p:y/>t</x>"
                        "</message>";
    char *t;

    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, s, strlen(s)), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    stz_free(ev.el);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_ELEM);
    el = ev.el;
    REQUIRE(el != NULL);
    CHECK(el->parent == NULL);
    CHECK_STR(el->name, "message");
    CHECK_STR(el->ns, STZ_NS_COMPONENT);
    CHECK_STR(stz_attr(el, "to"), "a@b");
    CHECK_INT(el->nattrs, 2);
    REQUIRE(el->nattrs == 2);
    CHECK_STR(el->attrs[1].ns, STZ_NS_XML);
    CHECK_STR(el->attrs[1].name, "lang");
    CHECK_STR(el->attrs[1].value, "fr");
    body = stz_child(el, "body", STZ_NS_COMPONENT);
    REQUIRE(body != NULL);
    /* entity, CDATA and text arrive as several expat callbacks: one node */
    REQUIRE(body->first_child != NULL);
    CHECK(body->first_child == body->last_child);
    t = stz_text(body);
    CHECK_STR(t, "a&b<c>");
    free(t);
    c = stz_child(el, "x", "urn:x");
    REQUIRE(c != NULL);
    REQUIRE(c->nattrs == 1);
    CHECK_STR(c->attrs[0].ns, "urn:p");
    CHECK_STR(c->attrs[0].name, "k");
    CHECK(stz_child(c, "y", "urn:p") != NULL);
    CHECK(stz_child(c, "y", "urn:x") == NULL);
    stz_free(el);
    CHECK(!xs_next(xs, &ev));
    xs_free(xs);
}

static void test_chunking_equivalence(void)
{
    struct buf s = corpus_stream();
    char *whole = run(NULL, s.data, s.len, 0);
    size_t chunks[] = {1, 2, 3, 5, 7, 13, 64, 1000};
    uint32_t seed = 12345;

    REQUIRE(whole != NULL);
    /* the corpus is all well-formed: open, every stanza, close */
    CHECK_INT(count_lines(whole, "OPEN"), 1);
    CHECK_INT(count_lines(whole, "ELEM"), (int)(sizeof corpus / sizeof corpus[0]));
    CHECK_INT(count_lines(whole, "CLOSE"), 1);
    CHECK_INT(count_lines(whole, "ERROR"), 0);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        char *t = run(NULL, s.data, s.len, chunks[i]);

        CHECK_STR(t, whole);
        free(t);
    }
    /* random chunk sizes */
    for (int round = 0; round < 20; round++) {
        struct xs *xs;
        struct xs_event ev;
        struct buf out = {0};
        size_t off = 0;

        REQUIRE(xs_new(NULL, &xs) == 0);
        while (off < s.len) {
            size_t n;

            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 40;
            if (n > s.len - off)
                n = s.len - off;
            CHECK_INT(xs_feed(xs, s.data + off, n), 0);
            off += n;
            while (xs_next(xs, &ev)) {
                describe(&ev, &out);
                stz_free(ev.el);
            }
        }
        CHECK_STR(out.data, whole);
        buf_free(&out);
        xs_free(xs);
    }
    free(whole);
    buf_free(&s);
}

static void test_roundtrip(void)
{
    struct buf s = corpus_stream(), again = {0};
    struct xs *a, *b;
    struct xs_event ea, eb;
    int elems = 0;

    REQUIRE(xs_new(NULL, &a) == 0);
    REQUIRE(xs_new(NULL, &b) == 0);
    CHECK_INT(xs_feed(a, s.data, s.len), 0);
    buf_puts(&again, HDR);
    CHECK_INT(xs_feed(b, again.data, again.len), 0);
    while (xs_next(a, &ea)) {
        if (ea.kind != XS_EV_ELEM) {
            stz_free(ea.el);
            continue;
        }
        /* parse -> serialize -> parse gives an equal tree */
        buf_reset(&again);
        CHECK_INT(stz_serialize(ea.el, STZ_NS_COMPONENT, &again), 0);
        CHECK_INT(xs_feed(b, again.data, again.len), 0);
        while (xs_next(b, &eb) && eb.kind == XS_EV_OPEN)
            stz_free(eb.el);
        CHECK_INT(eb.kind, XS_EV_ELEM);
        if (eb.kind == XS_EV_ELEM) {
            if (!tree_equal(ea.el, eb.el))
                fprintf(stderr, "round trip differs: %s\n", again.data);
            CHECK(tree_equal(ea.el, eb.el));
            elems++;
        }
        stz_free(eb.el);
        stz_free(ea.el);
    }
    CHECK_INT(elems, (int)(sizeof corpus / sizeof corpus[0]));
    buf_free(&again);
    buf_free(&s);
    xs_free(a);
    xs_free(b);
}

static void test_close(void)
{
    struct xs *xs;
    struct xs_event ev;
    const char *s = HDR "<iq/></stream:stream>trailing garbage <<<";
    char *t = run_s(s, 0), *t1 = run_s(s, 1);

    CHECK(strstr(t, "ELEM <iq/>\nCLOSE\n") != NULL);
    CHECK(strstr(t, "ERROR") == NULL);
    CHECK_STR(t1, t);
    free(t);
    free(t1);
    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, HDR "</stream:stream>", strlen(HDR) + 16), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    stz_free(ev.el);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_CLOSE);
    CHECK(ev.el == NULL);
    CHECK(!xs_next(xs, &ev));
    CHECK_INT(xs_feed(xs, "<a/>", 4), XE_STATE);
    CHECK(!next_ev(xs, &ev));
    xs_free(xs);
}

static void test_bad_namespace(void)
{
    CHECK_INT(cond_of("<stream:stream xmlns:stream='jabber:client'>"),
              XS_COND_INVALID_NAMESPACE);
    CHECK_INT(cond_of("<stream xmlns='jabber:component:accept'>"),
              XS_COND_INVALID_NAMESPACE);
    CHECK_INT(cond_of("<stream>"), XS_COND_INVALID_NAMESPACE);
    CHECK_INT(cond_of("<stream:streamx xmlns:stream='http://etherx.jabber.org/streams'>"),
              XS_COND_INVALID_NAMESPACE);
    CHECK_INT(cond_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streamsx'>"),
              XS_COND_INVALID_NAMESPACE);
    /* no OPEN event before the error */
    {
        char *t = run_s("<stream xmlns='jabber:client'><message/>", 1);

        CHECK_STR(t, "ERROR invalid-namespace\n");
        free(t);
    }
}

static void test_not_well_formed(void)
{
    CHECK_INT(cond_of(HDR "<message><body></message>"), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message a='1' a='2'/>"), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message a=1/>"), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<p:message/>"), XS_COND_NOT_WELL_FORMED); /* unbound */
    CHECK_INT(cond_of(HDR "<message>a < b</message>"), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message>&#0;</message>"), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message>&#x1;</message>"), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of("<?xml version='1.0'?><?xml version='1.0'?>"),
              XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of("garbage>"), XS_COND_NOT_WELL_FORMED);
    /* invalid UTF-8: a stray byte, an overlong NUL, a surrogate, truncated */
    CHECK_INT(cond_of(HDR "<message><body>\xff</body></message>"),
              XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message><body>\xc0\x80</body></message>"),
              XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message><body>\xed\xa0\x80</body></message>"),
              XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message><body>\xe4\xb8</body></message>"),
              XS_COND_NOT_WELL_FORMED);
    CHECK_INT(cond_of(HDR "<message a='\x80'/>"), XS_COND_NOT_WELL_FORMED);
    /* NUL bytes, anywhere (XML 1.0 §2.2), and UTF-16 (RFC 6120 §11.6) */
    CHECK_INT(last_cond(NULL, "'\0\x1f>=?", 7), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(last_cond(NULL, HDR "<m>\0</m>", strlen(HDR) + 8), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(last_cond(NULL, "<\0s\0t\0r\0", 8), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(last_cond(NULL, "\xff\xfe<\0s\0", 6), XS_COND_NOT_WELL_FORMED);
    CHECK_INT(last_cond(NULL, "\xfe\xff\0<\0s", 6), XS_COND_NOT_WELL_FORMED);
    {
        /* events before the NUL still come out */
        char *t = run(NULL, HDR "<iq/>\0", strlen(HDR) + 6, 0);

        CHECK(strstr(t, "ELEM <iq/>\nERROR not-well-formed\n") != NULL);
        free(t);
    }
    /* a UTF-8 byte order mark is fine */
    CHECK_INT(cond_of("\xef\xbb\xbf" HDR "<iq/>"), -1);
    /* a stanza before the error is still delivered, the error comes last */
    {
        char *t = run_s(HDR "<iq/><iq></message>", 0);

        CHECK(strstr(t, "ELEM <iq/>\nERROR not-well-formed\n") != NULL);
        free(t);
    }
    /* the second root after </stream:stream> is never seen: CLOSE ends it */
    CHECK_INT(cond_of(HDR "</stream:stream><x/>"), -1);
}

static void test_restricted_xml(void)
{
    CHECK_INT(cond_of(HDR "<!-- hi -->"), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of(HDR "<message><!-- hi --></message>"), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of("<!-- before --><stream:stream/>"), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of(HDR "<?php echo 1; ?>"), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of(HDR "<message><?pi x?></message>"), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of("<?xml version='1.0'?><?pi?>" HDR_NO_DECL), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of("<!DOCTYPE stream>" HDR_NO_DECL), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of(HDR "<message>&foo;</message>"), XS_COND_RESTRICTED_XML);
    CHECK_INT(cond_of(HDR "<message a='&foo;'/>"), XS_COND_RESTRICTED_XML);
    /* a DOCTYPE inside the stream is a syntax error */
    CHECK_INT(cond_of(HDR "<!DOCTYPE x>"), XS_COND_NOT_WELL_FORMED);
    /* CDATA and the five predefined entities are fine */
    CHECK_INT(cond_of(HDR "<m><![CDATA[x]]>&lt;&gt;&amp;&quot;&apos;</m>"), -1);
}

static const char billion_laughs[] =
    "<?xml version='1.0'?>"
    "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
    "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
    "<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"
    "<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"
    "<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"
    "<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"
    "<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"
    "<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>"
    "]>"
    "<stream:stream xmlns='jabber:component:accept' "
    "xmlns:stream='http://etherx.jabber.org/streams'>"
    "<message><body>&lol9;</body></message>";

/* check_no_growth feeds doc (whole, then byte by byte) and checks the error,
 * that no element came out and that expat never held much memory. */
static void check_no_growth(const char *doc, enum xs_cond want)
{
    for (int pass = 0; pass < 2; pass++) {
        struct xs *xs;
        struct xs_event ev;
        size_t len = strlen(doc), peak = 0, step = pass ? 1 : len;
        int errors = 0, others = 0;

        REQUIRE(xs_new(NULL, &xs) == 0);
        for (size_t off = 0; off < len; off += step)
            if (xs_feed(xs, doc + off, step) != 0)
                break;
        while (xs_next(xs, &ev)) {
            if (ev.kind == XS_EV_ERROR) {
                errors++;
                CHECK_INT(ev.cond, want);
            } else if (ev.kind == XS_EV_ELEM) {
                others++;
            }
            stz_free(ev.el);
        }
        CHECK_INT(errors, 1);
        CHECK_INT(others, 0);
        xs_parser_mem(xs, NULL, &peak);
        /* expansion would need 3 GB; a parser holds a few KiB */
        CHECK(peak > 0);
        CHECK(peak < 64 * 1024);
        xs_free(xs);
    }
}

static void test_billion_laughs(void)
{
    check_no_growth(billion_laughs, XS_COND_RESTRICTED_XML);
    /* the same attack placed after the stream header is a syntax error */
    {
        const char *p = strstr(billion_laughs, "<!DOCTYPE");
        struct buf b = {0};

        buf_puts(&b, HDR);
        buf_append(&b, p, (size_t)(strstr(p, "]>") + 2 - p));
        buf_puts(&b, "<message>&lol9;</message>");
        check_no_growth(b.data, XS_COND_NOT_WELL_FORMED);
        buf_free(&b);
    }
}

static void test_xxe(void)
{
    check_no_growth("<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "
                    "'file:///etc/passwd'>]>" HDR_NO_DECL "<message><body>&xxe;</body>"
                    "</message>",
                    XS_COND_RESTRICTED_XML);
    check_no_growth("<!DOCTYPE stream SYSTEM 'http://127.0.0.1/evil.dtd'>" HDR_NO_DECL
                    "<message/>",
                    XS_COND_RESTRICTED_XML);
    check_no_growth("<!DOCTYPE x [<!ENTITY % pe SYSTEM 'file:///etc/passwd'> %pe;]>"
                    "<x/>",
                    XS_COND_RESTRICTED_XML);
}

static void test_stream_level_text(void)
{
    struct xs_limits lim = {.max_stanza_bytes = 200};
    struct buf b = {0};
    char *t;

    CHECK_INT(cond_of(HDR "hello"), XS_COND_BAD_FORMAT);
    CHECK_INT(cond_of(HDR "<iq/> x <iq/>"), XS_COND_BAD_FORMAT);
    CHECK_INT(cond_of(HDR "&#65;"), XS_COND_BAD_FORMAT);
    CHECK_INT(cond_of(HDR "<![CDATA[x]]>"), XS_COND_BAD_FORMAT);
    CHECK_INT(cond_of(HDR " \t\r\n <iq/>\n\n </stream:stream>"), -1);
    /* keep-alives never add up to a stanza: 100 KB of whitespace with a
     * 200-byte limit */
    buf_puts(&b, HDR);
    for (int i = 0; i < 1000; i++) {
        buf_puts(&b, "                                                  "
                     "                                                  ");
        if (i % 100 == 0)
            buf_puts(&b, "<iq type='get' id='x'/>");
    }
    buf_puts(&b, "<iq/></stream:stream>");
    t = run(&lim, b.data, b.len, 0);
    CHECK(strstr(t, "ERROR") == NULL);
    CHECK_INT(count_lines(t, "ELEM"), 11);
    CHECK_INT(count_lines(t, "CLOSE"), 1);
    free(t);
    t = run(&lim, b.data, b.len, 1);
    CHECK(strstr(t, "ERROR") == NULL);
    CHECK_INT(count_lines(t, "ELEM"), 11);
    free(t);
    t = run(&lim, b.data, b.len, 4096);
    CHECK(strstr(t, "ERROR") == NULL);
    CHECK_INT(count_lines(t, "ELEM"), 11);
    free(t);
    buf_free(&b);
}

/* stanza_of returns "<message><body>xxx...</body></message>" of exactly n
 * bytes (n >= 32). */
static void stanza_of(struct buf *b, size_t n)
{
    const char *head = "<message><body>", *tail = "</body></message>";
    size_t fill = n - strlen(head) - strlen(tail);

    buf_puts(b, head);
    for (size_t i = 0; i < fill; i++)
        buf_append(b, i % 7 == 6 ? " " : "x", 1);
    buf_puts(b, tail);
}

static void test_limit_stanza_bytes(void)
{
    size_t sizes[] = {250, 1000, 4096}; /* > the header */

    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct xs_limits lim = {.max_stanza_bytes = sizes[k]};

        for (int over = 0; over <= 1; over++) {
            struct buf b = {0};
            char *t;

            buf_puts(&b, HDR "<iq/>  ");
            stanza_of(&b, sizes[k] + (size_t)over);
            buf_puts(&b, "<iq/>");
            CHECK_INT(last_cond(&lim, b.data, b.len),
                      over ? XS_COND_POLICY_VIOLATION : -1);
            t = run(&lim, b.data, b.len, 3);
            CHECK_INT(count_lines(t, "ELEM"), over ? 1 : 3);
            free(t);
            buf_free(&b);
        }
    }
    /* the limit counts the whole element: a big attribute value */
    {
        struct xs_limits lim = {.max_stanza_bytes = 100};
        struct buf b = {0};

        buf_puts(&b, HDR "<message to='");
        for (int i = 0; i < 100; i++)
            buf_puts(&b, "a");
        buf_puts(&b, "'/>");
        CHECK_INT(last_cond(&lim, b.data, b.len), XS_COND_POLICY_VIOLATION);
        buf_free(&b);
    }
}

/* An endless token (an attribute value that never ends) fed in 64 KiB
 * chunks: the error comes as soon as the limit is passed and expat never
 * holds much more than the limit. */
static void test_limit_endless_token(void)
{
    static char chunk[65536];
    struct xs *xs;
    struct xs_event ev;
    size_t peak = 0, fed = 0;
    int rv = 0, errors = 0;

    memset(chunk, 'a', sizeof chunk);
    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, HDR "<message to='", strlen(HDR) + 13), 0);
    while (fed < (size_t)64 * 1024 * 1024) {
        rv = xs_feed(xs, chunk, sizeof chunk);
        if (rv != 0)
            break;
        fed += sizeof chunk;
    }
    CHECK_INT(rv, XE_STATE);
    CHECK(fed <= 256 * 1024 + sizeof chunk);
    while (xs_next(xs, &ev)) {
        if (ev.kind == XS_EV_ERROR) {
            errors++;
            CHECK_INT(ev.cond, XS_COND_POLICY_VIOLATION);
            CHECK(ev.text != NULL);
        }
        stz_free(ev.el);
    }
    CHECK_INT(errors, 1);
    xs_parser_mem(xs, NULL, &peak);
    CHECK(peak < (size_t)1024 * 1024);
    xs_free(xs);
}

static void test_limit_header(void)
{
    struct buf b = {0};

    buf_puts(&b, "<stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='");
    while (b.len < XS_MAX_HEADER_BYTES - 2)
        buf_puts(&b, "a");
    buf_puts(&b, "'>");
    CHECK_INT(b.len, XS_MAX_HEADER_BYTES);
    CHECK_INT(last_cond(NULL, b.data, b.len), -1);
    buf_reset(&b);
    buf_puts(&b, "<stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='");
    while (b.len < XS_MAX_HEADER_BYTES - 1)
        buf_puts(&b, "a");
    buf_puts(&b, "'>");
    CHECK_INT(last_cond(NULL, b.data, b.len), XS_COND_POLICY_VIOLATION);
    /* a header smaller than the limit but a smaller max_stanza_bytes */
    {
        struct xs_limits lim = {.max_stanza_bytes = 64};

        CHECK_INT(last_cond(&lim, HDR, strlen(HDR)), XS_COND_POLICY_VIOLATION);
    }
    buf_free(&b);
}

static void nest(struct buf *b, unsigned depth)
{
    buf_puts(b, HDR);
    for (unsigned i = 0; i < depth; i++)
        buf_puts(b, "<a>");
    for (unsigned i = 0; i < depth; i++)
        buf_puts(b, "</a>");
}

static void test_limit_depth(void)
{
    struct buf b = {0};
    struct xs_limits lim = {.max_depth = 3};

    nest(&b, 32);
    CHECK_INT(last_cond(NULL, b.data, b.len), -1);
    {
        char *t = run(NULL, b.data, b.len, 0);

        CHECK_INT(count_lines(t, "ELEM"), 1);
        free(t);
    }
    buf_reset(&b);
    nest(&b, 33);
    CHECK_INT(last_cond(NULL, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_reset(&b);
    nest(&b, 3);
    CHECK_INT(last_cond(&lim, b.data, b.len), -1);
    buf_reset(&b);
    nest(&b, 4);
    CHECK_INT(last_cond(&lim, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_reset(&b);
    nest(&b, 100000);
    CHECK_INT(last_cond(NULL, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_free(&b);
}

static void attrs(struct buf *b, unsigned n, unsigned nsdecls, bool on_root)
{
    struct buf a = {0};

    for (unsigned i = 0; i < n; i++)
        buf_printf(&a, " a%u='%u'", i, i);
    for (unsigned i = 0; i < nsdecls; i++)
        buf_printf(&a, " xmlns:p%u='urn:%u'", i, i);
    if (on_root) {
        buf_puts(b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'");
        buf_append(b, a.data ? a.data : "", a.len);
        buf_puts(b, ">");
    } else {
        buf_puts(b, HDR "<message");
        buf_append(b, a.data ? a.data : "", a.len);
        buf_puts(b, "/>");
    }
    buf_free(&a);
}

static void test_limit_attrs(void)
{
    struct buf b = {0};
    struct xs_limits lim = {.max_attrs = 2};

    attrs(&b, 64, 0, false);
    CHECK_INT(last_cond(NULL, b.data, b.len), -1);
    buf_reset(&b);
    attrs(&b, 65, 0, false);
    CHECK_INT(last_cond(NULL, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_reset(&b);
    attrs(&b, 60, 4, false); /* xmlns declarations count */
    CHECK_INT(last_cond(NULL, b.data, b.len), -1);
    buf_reset(&b);
    attrs(&b, 60, 5, false);
    CHECK_INT(last_cond(NULL, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_reset(&b);
    attrs(&b, 1, 0, true); /* 1 + xmlns:stream */
    CHECK_INT(last_cond(&lim, b.data, b.len), -1);
    buf_reset(&b);
    attrs(&b, 2, 0, true);
    CHECK_INT(last_cond(&lim, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_reset(&b);
    /* declarations on one element do not leak onto the next */
    buf_puts(&b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                 "<a xmlns='u' b='1'/><c d='1' e='2'/>");
    CHECK_INT(last_cond(&lim, b.data, b.len), -1);
    buf_free(&b);
}

static void test_zero_limits_take_defaults(void)
{
    struct xs_limits zero = {0};
    struct buf b = {0};

    nest(&b, 32);
    CHECK_INT(last_cond(&zero, b.data, b.len), -1);
    buf_reset(&b);
    nest(&b, 33);
    CHECK_INT(last_cond(&zero, b.data, b.len), XS_COND_POLICY_VIOLATION);
    buf_free(&b);
}

static void test_encoding(void)
{
    CHECK_INT(cond_of("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR_NO_DECL),
              XS_COND_UNSUPPORTED_ENCODING);
    CHECK_INT(cond_of("<?xml version='1.0' encoding='UTF-16'?>" HDR_NO_DECL),
              XS_COND_UNSUPPORTED_ENCODING);
    CHECK_INT(cond_of("<?xml version='1.0' encoding='utf-8'?>" HDR_NO_DECL), -1);
    CHECK_INT(cond_of("<?xml version='1.0' encoding='UTF-8'?>" HDR_NO_DECL), -1);
}

static void test_reset(void)
{
    struct xs *xs;
    struct xs_event ev;
    size_t cur = 0;

    REQUIRE(xs_new(NULL, &xs) == 0);
    /* the first stream up to a stanza, plus a stanza that stays queued */
    CHECK_INT(xs_feed(xs, HDR "<success/><queued/><partial><x>", strlen(HDR) + 31), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    stz_free(ev.el);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_ELEM);
    CHECK_STR(ev.el->name, "success");
    stz_free(ev.el);
    /* RFC 6120 §4.3.3: a new stream, with a new XML declaration */
    CHECK_INT(xs_reset(xs), 0);
    CHECK(!xs_next(xs, &ev));
    xs_parser_mem(xs, &cur, NULL);
    CHECK(cur > 0);
    CHECK_INT(xs_feed(xs, HDR "<iq/>", strlen(HDR) + 5), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    CHECK_STR(stz_attr(ev.el, "xmlns"), STZ_NS_COMPONENT);
    stz_free(ev.el);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_ELEM);
    CHECK_STR(ev.el->name, "iq");
    stz_free(ev.el);
    CHECK(!xs_next(xs, &ev));
    /* reset after an error: the framer works again */
    CHECK_INT(xs_feed(xs, "<<", 2), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_ERROR);
    CHECK_INT(xs_feed(xs, "x", 1), XE_STATE);
    CHECK_INT(xs_reset(xs), 0);
    CHECK_INT(xs_feed(xs, HDR, strlen(HDR)), 0);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    stz_free(ev.el);
    /* reset with an unpulled error event drops it */
    CHECK_INT(xs_feed(xs, "<!-- -->", 8), 0);
    CHECK_INT(xs_reset(xs), 0);
    CHECK(!xs_next(xs, &ev));
    xs_free(xs);
}

static void test_error_is_final(void)
{
    struct xs *xs;
    struct xs_event ev;

    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, HDR "<a/><!-- x --><b/>", strlen(HDR) + 18), 0);
    CHECK_INT(xs_feed(xs, "<c/>", 4), XE_STATE);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_OPEN);
    stz_free(ev.el);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_ELEM);
    stz_free(ev.el);
    REQUIRE(xs_next(xs, &ev));
    CHECK_INT(ev.kind, XS_EV_ERROR);
    CHECK_INT(ev.cond, XS_COND_RESTRICTED_XML);
    CHECK(ev.el == NULL);
    CHECK(ev.text != NULL);
    CHECK(!xs_next(xs, &ev));
    CHECK(!xs_next(xs, &ev));
    xs_free(xs);
    /* xs_free with queued events and a half-built element frees them (ASan) */
    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, HDR "<a/><b><c>text", strlen(HDR) + 14), 0);
    xs_free(xs);
    xs_free(NULL);
}

static void test_write_error(void)
{
    struct buf b = {0};

    buf_puts(&b, "x");
    CHECK_INT(xs_write_error(&b, XS_COND_NOT_WELL_FORMED, NULL), 0);
    CHECK_STR(b.data, "x<stream:error><not-well-formed "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                      "</stream:error></stream:stream>");
    buf_reset(&b);
    CHECK_INT(xs_write_error(&b, XS_COND_POLICY_VIOLATION, "too <big> & 'bad'"), 0);
    CHECK_STR(b.data, "<stream:error><policy-violation "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                      "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                      "too &lt;big&gt; &amp; 'bad'</text>"
                      "</stream:error></stream:stream>");
    /* what we write parses back as a stream error with the same condition */
    {
        struct xs *xs;
        struct xs_event ev;
        struct stz *cond, *text;
        char *t;

        REQUIRE(xs_new(NULL, &xs) == 0);
        CHECK_INT(xs_feed(xs, HDR, strlen(HDR)), 0);
        CHECK_INT(xs_feed(xs, b.data, b.len), 0);
        REQUIRE(xs_next(xs, &ev));
        stz_free(ev.el);
        REQUIRE(xs_next(xs, &ev));
        CHECK_INT(ev.kind, XS_EV_ELEM);
        CHECK_STR(ev.el->name, "error");
        CHECK_STR(ev.el->ns, STZ_NS_STREAMS);
        cond = stz_child(ev.el, "policy-violation", STZ_NS_XSTREAMS);
        text = stz_child(ev.el, "text", STZ_NS_XSTREAMS);
        CHECK(cond != NULL);
        REQUIRE(text != NULL);
        t = stz_text(text);
        CHECK_STR(t, "too <big> & 'bad'");
        free(t);
        stz_free(ev.el);
        REQUIRE(xs_next(xs, &ev));
        CHECK_INT(ev.kind, XS_EV_CLOSE);
        xs_free(xs);
    }
    for (int c = 0; c < XS_COND_COUNT; c++) {
        buf_reset(&b);
        CHECK_INT(xs_write_error(&b, c, NULL), 0);
        CHECK(strstr(b.data, xs_cond_name(c)) != NULL);
    }
    buf_free(&b);
}

/* prompt_check feeds HDR then stanza one byte at a time and checks that the
 * element comes out exactly when its last byte is in, never later (the
 * framer defers bytes inside long tokens; it must never sit on a complete
 * one). */
static void prompt_check_in(const char *stanza, size_t len, size_t chunk)
{
    struct xs *xs;
    struct xs_event ev;
    size_t early = 0, late = 0;

    REQUIRE(xs_new(NULL, &xs) == 0);
    CHECK_INT(xs_feed(xs, HDR, strlen(HDR)), 0);
    REQUIRE(xs_next(xs, &ev));
    stz_free(ev.el);
    for (size_t i = 0; i < len && early + late == 0; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;

        if (xs_feed(xs, stanza + i, n) != 0) {
            early++;
        } else if (xs_next(xs, &ev)) {
            if (ev.kind != XS_EV_ELEM || i + n != len)
                early++;
            stz_free(ev.el);
        } else if (i + n == len) {
            late++;
        }
        if (early + late > 0)
            fprintf(stderr, "at byte %zu of %zu (chunks of %zu): %.40s\n", i, len, chunk,
                    stanza);
    }
    CHECK_INT(early, 0);
    CHECK_INT(late, 0);
    xs_free(xs);
}

/* prompt_check: byte by byte, and in chunks that the scanner skips
 * through (xs__skip) */
static void prompt_check(const char *stanza, size_t len)
{
    prompt_check_in(stanza, len, 1);
    prompt_check_in(stanza, len, 7);
    prompt_check_in(stanza, len, 100);
}

static void test_prompt_delivery(void)
{
    struct buf b = {0};
    const char *fills[] = {"a", "a>b\"c", "<'x'>", "]]>--?>"};

    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        /* a long attribute value holding the other quote and '>' */
        const char *af = strchr(fills[f], '<') ? "'>'&lt;" : fills[f];

        buf_reset(&b);
        buf_puts(&b, "<message a='");
        while (b.len < 20000)
            buf_puts(&b, strchr(af, '\'') ? "x" : af);
        buf_puts(&b, "' b=\"");
        while (b.len < 40000)
            buf_puts(&b, strchr(af, '"') ? "y" : af);
        buf_puts(&b, "\"/>");
        prompt_check(b.data, b.len);
        /* a long CDATA section holding quotes, '<' and '>' */
        buf_reset(&b);
        buf_puts(&b, "<message><body><![CDATA[");
        while (b.len < 20000)
            buf_puts(&b, strstr(fills[f], "]]>") ? "<'\"" : fills[f]);
        buf_puts(&b, "]]></body></message>");
        prompt_check(b.data, b.len);
        /* long text with '>' and quotes, then a long start and end tag name */
        buf_reset(&b);
        buf_puts(&b, "<message>");
        while (b.len < 10000)
            buf_puts(&b, "'\">");
        buf_puts(&b, "<x");
        for (int i = 0; i < 5000; i++)
            buf_puts(&b, "n");
        buf_puts(&b, "></x");
        for (int i = 0; i < 5000; i++)
            buf_puts(&b, "n");
        buf_puts(&b, "></message>");
        prompt_check(b.data, b.len);
    }
    /* CDATA holding '>' and a quote, then a long tag: the scanner must know
     * the quote was CDATA content */
    buf_reset(&b);
    buf_puts(&b, "<message><![CDATA[> <x ']]><big a='");
    for (int i = 0; i < 5000; i++)
        buf_puts(&b, "v");
    buf_puts(&b, "'/></message>");
    prompt_check(b.data, b.len);
    /* many long start tags in a row, and an empty element last */
    buf_reset(&b);
    buf_puts(&b, "<message>");
    for (int k = 0; k < 20; k++) {
        buf_puts(&b, "<a v='");
        for (int i = 0; i < 2000; i++)
            buf_puts(&b, "v");
        buf_puts(&b, "'>");
    }
    for (int k = 0; k < 20; k++)
        buf_puts(&b, "</a>");
    buf_puts(&b, "<last k='");
    for (int i = 0; i < 3000; i++)
        buf_puts(&b, ">");
    buf_puts(&b, "'/></message>");
    prompt_check(b.data, b.len);
    buf_free(&b);
}

/* A peer that trickles a huge start tag one byte at a time still gets its
 * limit error, and the element just under the limit still arrives. */
static void test_trickled_tag_limit(void)
{
    struct xs_limits lim = {.max_stanza_bytes = 100000};
    struct buf b = {0};
    char *t;

    buf_puts(&b, HDR "<message a='");
    while (b.len < strlen(HDR) + 100000 - 3)
        buf_puts(&b, "a");
    buf_puts(&b, "'/>");
    t = run(&lim, b.data, b.len, 1);
    CHECK(strstr(t, "\nELEM <message a='aaa") != NULL);
    CHECK(strstr(t, "ERROR") == NULL);
    free(t);
    buf_puts(&b, "<message a='");
    while (b.len < strlen(HDR) + 200001)
        buf_puts(&b, "a");
    t = run(&lim, b.data, b.len, 1);
    CHECK_INT(count_lines(t, "ELEM"), 1);
    CHECK(strstr(t, "ERROR policy-violation\n") != NULL);
    free(t);
    buf_free(&b);
}

/* ---- memory of the trees ---------------------------- */

/* tree_sum adds stz_node_mem over el and everything below it. */
static size_t tree_sum(const struct stz *el)
{
    size_t m = stz_node_mem(el);

    for (const struct stz *c = el->first_child; c != NULL; c = c->next)
        m += tree_sum(c);
    return m;
}

/* heap_in_use is what the process has malloc'd now (glibc), or 0 where that
 * cannot be read (a sanitizer build replaces malloc). */
static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) &&                              \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

/* A stanza of many tiny children is within its byte limit (256 KiB) but
 * costs some 40 times that as a tree: it is refused with policy-violation
 * once its tree (with expat's memory) passes the cap, long before its
 * bytes run out, and what was built is released. */
static void test_tree_cap_many_children(void)
{
    struct xs *xs;
    struct xs_event ev;
    struct buf b = {0};
    size_t tree, tree_peak, cur, peak;
    int elems = 0, errors = 0;

    REQUIRE(xs_new(NULL, &xs) == 0);
    buf_puts(&b, HDR "<message>");
    while (b.len < 255 * 1024)
        buf_puts(&b, "<a/>");
    buf_puts(&b, "</message>");
    /* In reads of 64 KiB, as the edge reads. */
    for (size_t off = 0; off < b.len; off += 65536) {
        size_t n = b.len - off < 65536 ? b.len - off : 65536;
        if (xs_feed(xs, b.data + off, n) < 0)
            break;
        xs_tree_mem(xs, &tree, NULL);
        xs_parser_mem(xs, &cur, NULL);
        CHECK(tree + cur <= XS_MEM_CAP(256 * 1024));
    }
    while (xs_next(xs, &ev)) {
        if (ev.kind == XS_EV_ELEM)
            elems++;
        if (ev.kind == XS_EV_ERROR) {
            errors++;
            CHECK_INT(ev.cond, XS_COND_POLICY_VIOLATION);
            CHECK_STR(ev.text, "stanza memory limit");
        }
        stz_free(ev.el);
    }
    CHECK_INT(elems, 0);
    CHECK_INT(errors, 1);
    xs_tree_mem(xs, &tree, &tree_peak);
    xs_parser_mem(xs, NULL, &peak);
    CHECK_INT(tree, 0);
    /* The cap held: the tree peaked within one element of it. */
    CHECK(tree_peak <= XS_MEM_CAP(256 * 1024));
    CHECK(tree_peak + 1024 > XS_MEM_CAP(256 * 1024) - peak);
    xs_free(xs);

    /* The same stanza with a tenth of the children passes. */
    REQUIRE(xs_new(NULL, &xs) == 0);
    buf_reset(&b);
    buf_puts(&b, HDR "<message>");
    while (b.len < 25 * 1024)
        buf_puts(&b, "<a/>");
    buf_puts(&b, "</message>");
    xs_feed(xs, b.data, b.len);
    elems = errors = 0;
    while (xs_next(xs, &ev)) {
        elems += ev.kind == XS_EV_ELEM;
        errors += ev.kind == XS_EV_ERROR;
        stz_free(ev.el);
    }
    CHECK_INT(elems, 1);
    CHECK_INT(errors, 0);
    xs_free(xs);
    buf_free(&b);
}

/* What xs counts for a tree is what the tree is: the sum of stz_node_mem
 * over the pulled tree exactly, and what malloc holds for it at most 10 %
 * more (glibc only).  The heap is less: an element the framer builds is
 * one block with its strings (stz_new_init), counted as the blocks
 * stz_node_mem sums, so that the same stanzas pass the caps as before
 * (about 0.8 here).  Pulling the event releases it from the count.  A lazy
 * tree (the default) is counted as what it is once built: the same
 * stanzas fail the cap as when the framer built them (xs.c); the heap
 * then grew by less. */
static void tree_mem_accounting(bool eager)
{
    struct xs *xs;
    struct xs_event ev, open;
    struct buf b = {0};
    size_t tree, cur0, cur1, heap0, heap1, counted;

    REQUIRE(xs_new(NULL, &xs) == 0);
    xs_set_eager(xs, eager);
    REQUIRE(xs_feed(xs, HDR, strlen(HDR)) == 0);
    REQUIRE(xs_next(xs, &open) && open.kind == XS_EV_OPEN);
    xs_tree_mem(xs, &tree, NULL);
    CHECK_INT(tree, 0);
    buf_puts(&b, "<message from='a@cb1.example.com' to='b@cb2.example.com' id='m1'>");
    for (int i = 0; i < 2000; i++)
        buf_printf(&b, "<item jid='room%d@conference.example.com' name='Room %d'/>text%d",
                   i, i, i);
    buf_puts(&b, "<body>hello &amp; bye</body></message>");
    xs_parser_mem(xs, &cur0, NULL);
    heap0 = heap_in_use();
    REQUIRE(xs_feed(xs, b.data, b.len) == 0);
    heap1 = heap_in_use();
    xs_parser_mem(xs, &cur1, NULL);
    xs_tree_mem(xs, &counted, NULL);
    REQUIRE(xs_next(xs, &ev) && ev.kind == XS_EV_ELEM);
    CHECK(stz_is_lazy(ev.el) == !eager);
    if (heap0 != 0) {
        /* The heap grew by the tree, expat's growth and one event node. */
        double grown = (double)(heap1 - heap0) - ((double)cur1 - (double)cur0);
        if (eager)
            CHECK(grown > 0.7 * (double)counted && grown < 1.1 * (double)counted);
        else
            CHECK(grown < 0.2 * (double)counted);
    }
    REQUIRE(stz_expand(ev.el) == 0);
    CHECK(!stz_is_lazy(ev.el));
    CHECK_INT(counted, tree_sum(ev.el));
    xs_tree_mem(xs, &tree, NULL);
    CHECK_INT(tree, 0);
    stz_free(ev.el);
    stz_free(open.el);
    xs_free(xs);
    buf_free(&b);
}

static void test_tree_mem_accounting(void)
{
    tree_mem_accounting(true);
    tree_mem_accounting(false);
}

/* Events not pulled yet count too: a feed that completes many small
 * stanzas holds them all until the receiver pulls them. */
static void test_tree_mem_queued(void)
{
    struct xs *xs;
    struct xs_event ev;
    struct buf b = {0};
    size_t tree, sum = 0;

    REQUIRE(xs_new(NULL, &xs) == 0);
    buf_puts(&b, HDR);
    for (int i = 0; i < 100; i++)
        buf_puts(&b, "<message to='x@y'><body>hi</body></message>");
    REQUIRE(xs_feed(xs, b.data, b.len) == 0);
    xs_tree_mem(xs, &tree, NULL);
    while (xs_next(xs, &ev)) {
        CHECK(stz_expand(ev.el) == 0); /* counted as built (above) */
        sum += tree_sum(ev.el);
        stz_free(ev.el);
    }
    CHECK_INT(tree, sum);
    xs_tree_mem(xs, &tree, NULL);
    CHECK_INT(tree, 0);
    xs_free(xs);
    buf_free(&b);
}

/* A session starts small (before authentication) and raises its limits
 * later: xs_set_limits between two stanzas. */
static void test_set_limits(void)
{
    struct xs_limits small = {.max_stanza_bytes = 4096}, big = {0};
    struct xs *xs;
    struct xs_event ev;
    struct buf b = {0};
    char *t;
    int elems = 0, errors = 0;

    buf_puts(&b, HDR "<message>");
    while (b.len < strlen(HDR) + 5000)
        buf_puts(&b, "<a/>");
    buf_puts(&b, "</message>");
    t = run(&small, b.data, b.len, 0);
    CHECK(strstr(t, "ERROR policy-violation\n") != NULL);
    CHECK_INT(count_lines(t, "ELEM"), 0);
    free(t);
    /* Raised after the first (small) stanza: the big one passes. */
    REQUIRE(xs_new(&small, &xs) == 0);
    REQUIRE(xs_feed(xs, HDR "<handshake>x</handshake>",
                    strlen(HDR "<handshake>x</handshake>")) == 0);
    while (xs_next(xs, &ev))
        stz_free(ev.el);
    xs_set_limits(xs, &big);
    REQUIRE(xs_feed(xs, b.data + strlen(HDR), b.len - strlen(HDR)) == 0);
    while (xs_next(xs, &ev)) {
        elems += ev.kind == XS_EV_ELEM;
        errors += ev.kind == XS_EV_ERROR;
        stz_free(ev.el);
    }
    CHECK_INT(elems, 1);
    CHECK_INT(errors, 0);
    xs_free(xs);
    /* An explicit memory cap below what a stanza's tree takes. */
    {
        struct xs_limits tight = {.max_mem_bytes = 48 * 1024};
        t = run(&tight, b.data, b.len, 0);
        CHECK(strstr(t, "ERROR policy-violation\n") != NULL);
        free(t);
    }
    buf_free(&b);
}

/* An idle stream holds no parser: after a feed that ends between stanzas
 * expat's memory is released, and the next feed parses on in the stream
 * header's namespace context (a prefix declared only on the root, the
 * default namespace), up to </stream:stream> matching its start tag. */
static void test_idle_parser_released(void)
{
    static const char hdr[] =
        "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
        "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
    struct xs *xs;
    struct xs_event ev;
    struct buf out = {0};
    size_t cur, peak;

    REQUIRE(xs_new(NULL, &xs) == 0);
    REQUIRE(xs_feed(xs, hdr, strlen(hdr)) == 0);
    REQUIRE(xs_next(xs, &ev) && ev.kind == XS_EV_OPEN);
    stz_free(ev.el);
    xs_parser_mem(xs, &cur, &peak);
    CHECK_INT(cur, 0);
    CHECK(peak > 0);
    /* In the middle of a tag the parser stays. */
    REQUIRE(xs_feed(xs, "<message to='a@b' ", strlen("<message to='a@b' ")) == 0);
    xs_parser_mem(xs, &cur, NULL);
    CHECK(cur > 0);
    REQUIRE(xs_feed(xs, "id='1'><body>x</body></message> ",
                    strlen("id='1'><body>x</body></message> ")) == 0);
    xs_parser_mem(xs, &cur, NULL);
    CHECK_INT(cur, 0);
    REQUIRE(xs_feed(xs, "<db:result from='a' to='b'>k</db:result>",
                    strlen("<db:result from='a' to='b'>k</db:result>")) == 0);
    REQUIRE(xs_feed(xs, "<presence/></stream:stream>",
                    strlen("<presence/></stream:stream>")) == 0);
    while (xs_next(xs, &ev)) {
        describe(&ev, &out);
        stz_free(ev.el);
    }
    CHECK_STR(out.data,
              "ELEM <message to='a@b' id='1'><body>x</body></message>\n"
              "ELEM <result xmlns='jabber:server:dialback' from='a' to='b'>k</result>\n"
              "ELEM <presence/>\n"
              "CLOSE\n");
    buf_free(&out);
    xs_free(xs);
}

/* raw_run feeds doc in chunks of chunk bytes (0: whole) and returns one
 * line per element: "RAW <bytes>" when the framer kept its bytes, else
 * "TREE <name>" (owned). */
static char *raw_run(const char *doc, size_t chunk)
{
    struct xs *xs;
    struct buf out = {0};
    struct xs_event ev;
    size_t len = strlen(doc), off = 0;

    if (xs_new(NULL, &xs) != 0)
        return NULL;
    if (chunk == 0)
        chunk = len;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;

        xs_feed(xs, doc + off, n);
        off += n;
        while (xs_next(xs, &ev)) {
            if (ev.kind == XS_EV_ELEM && ev.el->raw != NULL) {
                CHECK_INT(ev.el->raw_len, strlen(ev.el->raw));
                buf_printf(&out, "RAW %s\n", ev.el->raw);
            } else if (ev.kind == XS_EV_ELEM) {
                buf_printf(&out, "TREE %s\n", ev.el->name);
            }
            stz_free(ev.el);
        }
    }
    xs_free(xs);
    return buf_steal(&out);
}

/* test_raw_bytes: a stanza's bytes travel with its tree when they stand
 * alone in another content-namespace stream, in any chunking:
 * not when it declares a namespace itself, uses the root's prefix, or the
 * root binds a prefix the stanza could use. */
static void test_raw_bytes(void)
{
    static const char doc[] =
        HDR "<message to=\"a@b\"  from='c' id='1'><body>x &apos; y</body>"
            "<x xmlns='urn:x' xmlns:p='urn:p' p:a='1'><p:y/></x></message>\n"
            "<message xmlns='jabber:component:accept' to='a'/>"
            "<iq type='get'><stream:features/></iq>"
            "<iq type='get'><q xmlns:s='" STZ_NS_STREAMS "' s:a='1'/></iq>"
            "<stream:features/><presence/> <iq type='set'><![CDATA[<&>]]></iq>"
            "<message stream:a='1'/>";
    static const char want[] =
        "RAW <message to=\"a@b\"  from='c' id='1'><body>x &apos; y</body>"
        "<x xmlns='urn:x' xmlns:p='urn:p' p:a='1'><p:y/></x></message>\n"
        "TREE message\nTREE iq\nTREE iq\nTREE features\nRAW <presence/>\n"
        "RAW <iq type='set'><![CDATA[<&>]]></iq>\nTREE message\n";
    static const char prefixed[] = "<stream:stream xmlns='jabber:component:accept' "
                                   "xmlns:db='jabber:server:dialback' "
                                   "xmlns:stream='" STZ_NS_STREAMS "'><message to='a'/>";
    static const char nodefault[] =
        "<stream:stream xmlns:stream='" STZ_NS_STREAMS "'><message to='a'/>";
    static const size_t chunks[] = {0, 1, 2, 3, 7, 64};
    char *got;

    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        got = raw_run(doc, chunks[i]);
        CHECK_STR(got, want);
        free(got);
        got = raw_run(prefixed, chunks[i]);
        CHECK_STR(got, "TREE message\n");
        free(got);
        got = raw_run(nodefault, chunks[i]);
        CHECK_STR(got, "TREE message\n");
        free(got);
    }
}

/* lazy_elems parses doc (a whole stream) and returns its top-level
 * elements, up to max (owned by the caller); eager: whole trees. */
static size_t lazy_elems(const char *doc, bool eager, struct stz **out, size_t max)
{
    struct xs *xs;
    struct xs_event ev;
    size_t n = 0;

    if (xs_new(NULL, &xs) != 0)
        return 0;
    xs_set_eager(xs, eager);
    CHECK(xs_feed(xs, doc, strlen(doc)) == 0);
    while (xs_next(xs, &ev)) {
        if (ev.kind == XS_EV_ELEM && n < max)
            out[n++] = ev.el;
        else
            stz_free(ev.el);
    }
    xs_free(xs);
    return n;
}

/* tree_of serializes el's tree below no default namespace (never its kept
 * bytes; a lazy el gets its children built); owned. */
static char *tree_of(const struct stz *el)
{
    struct buf b = {0};

    CHECK(stz_serialize(el, "", &b) == 0);
    return buf_steal(&b);
}

/* copy_tree_of is tree_of of a copy: el stays as it is. */
static char *copy_tree_of(const struct stz *el)
{
    struct stz *c = stz_copy(el);
    char *t;

    if (c == NULL)
        return strdup("(out of memory)");
    CHECK(stz_is_lazy(c) == stz_is_lazy(el));
    t = tree_of(c);
    stz_free(c);
    return t;
}

/* test_lazy_tree: a stanza whose bytes are kept gets only its top element
 * from the framer; its children come on first access, equal to
 * what an eager framer builds; changes keep it lazy where they can. */
static void test_lazy_tree(void)
{
    static const char doc[] =
        HDR "<message to='a@b' id='1'>hi <body>x &amp; y</body>"
            "<x xmlns='urn:x' xmlns:p='urn:p' p:a='1'><p:y/>t</x></message>"
            "<iq type='get'><q><stream:features/>z</q></iq>"
            "<presence/>";
    struct stz *lz[3], *eg[3], *c, *r;
    char *a, *b;

    REQUIRE(lazy_elems(doc, false, lz, 3) == 3);
    REQUIRE(lazy_elems(doc, true, eg, 3) == 3);
    /* the message: lazy, no children built, routed on its bytes */
    CHECK(stz_is_lazy(lz[0]) && lz[0]->first_child == NULL && lz[0]->raw != NULL);
    CHECK(!stz_is_lazy(eg[0]) && eg[0]->first_child != NULL && eg[0]->raw != NULL);
    CHECK_STR(stz_attr(lz[0], "to"), "a@b");
    /* the iq uses the stream header's prefix: built at its end, no raw */
    CHECK(!stz_is_lazy(lz[1]) && lz[1]->raw == NULL && lz[1]->first_child != NULL);
    /* an empty element has nothing to build */
    CHECK(!stz_is_lazy(lz[2]) && lz[2]->raw != NULL);
    for (int i = 0; i < 3; i++) {
        a = copy_tree_of(lz[i]);
        b = tree_of(eg[i]);
        CHECK_STR(a, b);
        free(a);
        free(b);
    }

    /* a copy stays lazy; its children equal the eager ones */
    c = stz_copy(lz[0]);
    REQUIRE(c != NULL);
    CHECK(stz_is_lazy(c));
    CHECK(stz_child(c, "body", NULL) != NULL);
    CHECK(!stz_is_lazy(c));
    stz_free(c);

    /* the server's 'from' is spliced into the bytes, lazy stays lazy */
    CHECK(stz_stamp_attr(lz[0], "from", "me@here/r") == 0);
    CHECK(stz_is_lazy(lz[0]) && lz[0]->raw != NULL);
    CHECK(strstr(lz[0]->raw, "from='me@here/r'>hi <body>") != NULL);
    /* another attribute change drops the bytes but keeps the children */
    stz_del_attr(lz[0], "id");
    CHECK(stz_is_lazy(lz[0]) && lz[0]->raw == NULL);
    a = tree_of(lz[0]);
    CHECK_STR(a, "<message xmlns='jabber:component:accept' to='a@b' from='me@here/r'>hi "
                 "<body>x &amp; y</body><x xmlns='urn:x' xmlns:ns0='urn:p' "
                 "ns0:a='1'><y xmlns='urn:p'/>t</x></message>");
    free(a);
    CHECK(!stz_is_lazy(lz[0]));

    /* an error reply keeps the children (RFC 6120 §8.3.1) */
    r = stz_error_reply(eg[0], "cancel", "service-unavailable", NULL);
    REQUIRE(r != NULL);
    c = stz_copy(eg[0]);
    stz_free(eg[0]);
    REQUIRE(lazy_elems(doc, false, eg, 1) == 1);
    CHECK(stz_is_lazy(eg[0]));
    stz_free(c);
    c = stz_error_reply(eg[0], "cancel", "service-unavailable", NULL);
    REQUIRE(c != NULL);
    CHECK(stz_is_lazy(eg[0])); /* the original untouched */
    a = tree_of(c);
    b = tree_of(r);
    CHECK_STR(a, b);
    CHECK(strstr(a, "<body>x &amp; y</body>") != NULL);
    free(a);
    free(b);
    stz_free(c);
    stz_free(r);
    /* adding a child builds the others first */
    CHECK(stz_add_child(eg[0], "extra", NULL) != NULL);
    CHECK(stz_child(eg[0], "body", NULL) != NULL && eg[0]->raw == NULL);
    for (int i = 0; i < 3; i++) {
        stz_free(lz[i]);
        stz_free(eg[i]);
    }
}

TL_MAIN(T(test_cond_names), T(test_limits_default), T(test_open_event),
        T(test_open_without_default_ns), T(test_elem_tree), T(test_chunking_equivalence),
        T(test_roundtrip), T(test_close), T(test_bad_namespace), T(test_not_well_formed),
        T(test_restricted_xml), T(test_billion_laughs), T(test_xxe),
        T(test_stream_level_text), T(test_limit_stanza_bytes),
        T(test_limit_endless_token), T(test_limit_header), T(test_limit_depth),
        T(test_limit_attrs), T(test_zero_limits_take_defaults), T(test_encoding),
        T(test_reset), T(test_error_is_final), T(test_write_error),
        T(test_prompt_delivery), T(test_trickled_tag_limit),
        T(test_tree_cap_many_children), T(test_tree_mem_accounting),
        T(test_tree_mem_queued), T(test_set_limits), T(test_idle_parser_released),
        T(test_raw_bytes), T(test_lazy_tree))
