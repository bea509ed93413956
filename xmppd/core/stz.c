/* stz.c: the stanza tree, its serializer, and stanza error replies. */
#include "stz.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static char *stz__dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static bool stz__streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

struct stz *stz_new(const char *name, const char *ns)
{
    struct stz *el = calloc(1, sizeof *el);

    if (el == NULL)
        return NULL;
    el->kind = STZ_ELEMENT;
    el->name = stz__dup(name);
    el->ns = stz__dup(ns ? ns : "");
    if (el->name == NULL || el->ns == NULL) {
        free(el->name);
        free(el->ns);
        free(el);
        return NULL;
    }
    return el;
}

/* stz__packed tells whether p lies in the block el was allocated with
 * (stz_new_init), so that it is freed with el and not on its own. */
static bool stz__packed(const struct stz *el, const void *p)
{
    uintptr_t lo = (uintptr_t)el, x = (uintptr_t)p;

    return x >= lo && x - lo < el->pack;
}

/* stz__release frees p, a part of el, unless it lives in el's block. */
static void stz__release(const struct stz *el, void *p)
{
    if (!stz__packed(el, p))
        free(p);
}

/* stz__put copies len bytes of s with a NUL at *at, advancing it. */
static char *stz__put(char **at, const char *s, size_t len)
{
    char *p = *at;

    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    *at += len + 1;
    return p;
}

struct stz *stz_new_init(const char *name, size_t name_len, const char *ns, size_t ns_len,
                         const struct stz_init_attr *a, size_t n)
{
    size_t head = sizeof(struct stz), size, strs = name_len + 1 + ns_len + 1;
    struct stz *el;
    char *at;

    if (ns == NULL)
        ns_len = 0;
    if (n > (SIZE_MAX - head) / sizeof(struct stz_attr) / 2)
        return NULL;
    for (size_t i = 0; i < n; i++)
        strs += a[i].name_len + 1 + a[i].value_len + 1 +
                (a[i].ns != NULL && a[i].ns_len > 0 ? a[i].ns_len + 1 : 0);
    size = head + n * sizeof(struct stz_attr);
    if (strs > SIZE_MAX - size || (el = malloc(size + strs)) == NULL)
        return NULL;
    memset(el, 0, sizeof *el);
    el->kind = STZ_ELEMENT;
    el->pack = size + strs;
    at = (char *)el + size;
    el->name = stz__put(&at, name, name_len);
    el->ns = stz__put(&at, ns != NULL ? ns : "", ns_len);
    if (n > 0) {
        el->attrs = (struct stz_attr *)((char *)el + head);
        el->nattrs = el->attrs_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        struct stz_attr *d = &el->attrs[i];

        d->name = stz__put(&at, a[i].name, a[i].name_len);
        d->ns = a[i].ns != NULL && a[i].ns_len > 0 ? stz__put(&at, a[i].ns, a[i].ns_len)
                                                   : NULL;
        d->value = stz__put(&at, a[i].value, a[i].value_len);
    }
    assert(at == (char *)el + el->pack);
    return el;
}

/* stz__grow_attrs makes el's attribute array n entries long (n >
 * attrs_cap): realloc, or a new array when the old one is in el's block.
 * 0/XE_NOMEM. */
static int stz__grow_attrs(struct stz *el, size_t n)
{
    struct stz_attr *arr;

    if (n > SIZE_MAX / sizeof *arr)
        return XE_NOMEM;
    if (el->attrs != NULL && stz__packed(el, el->attrs)) {
        if ((arr = malloc(n * sizeof *arr)) == NULL)
            return XE_NOMEM;
        memcpy(arr, el->attrs, el->nattrs * sizeof *arr);
    } else if ((arr = realloc(el->attrs, n * sizeof *arr)) == NULL) {
        return XE_NOMEM;
    }
    el->attrs = arr;
    el->attrs_cap = n;
    return 0;
}

static void stz__free_attrs(struct stz *el)
{
    for (size_t i = 0; i < el->nattrs; i++) {
        stz__release(el, el->attrs[i].name);
        stz__release(el, el->attrs[i].ns);
        stz__release(el, el->attrs[i].value);
    }
    stz__release(el, el->attrs);
    el->attrs = NULL;
    el->nattrs = el->attrs_cap = 0;
}

/* stz__free_node frees one node and its subtree, whatever its links. */
static void stz__free_node(struct stz *el)
{
    struct stz *c = el->first_child, *next;

    while (c != NULL) {
        next = c->next;
        stz__free_node(c);
        c = next;
    }
    stz__free_attrs(el);
    stz__release(el, el->name);
    stz__release(el, el->ns);
    free(el->text);
    if (el->kids != el->raw)
        free(el->kids);
    free(el->raw);
    free(el);
}

void stz_drop_raw(struct stz *el)
{
    if (el->raw != NULL && el->raw != el->kids)
        free(el->raw);
    el->raw = NULL;
    el->raw_len = 0;
}

/* stz__touch_attrs drops the received bytes of the tree el belongs to: an
 * attribute of el is about to change, and only the root of a tree ever
 * holds raw bytes.  A lazy root stays lazy. */
static void stz__touch_attrs(struct stz *el)
{
    while (el->parent != NULL)
        el = el->parent;
    stz_drop_raw(el);
}

/* stz__touch is stz__touch_attrs before a change to el's children: a lazy
 * el gets them built first.  0/XE_NOMEM (nothing changed). */
static int stz__touch(struct stz *el)
{
    int rc = stz_expand(el);

    if (rc == 0)
        stz__touch_attrs(el);
    return rc;
}

void stz_take_raw(struct stz *el, char *data, size_t len)
{
    assert(el->parent == NULL && el->kind == STZ_ELEMENT);
    stz_drop_raw(el);
    el->raw = data;
    el->raw_len = len;
}

bool stz_is_lazy(const struct stz *el)
{
    return el->kids != NULL;
}

void stz_set_lazy(struct stz *el)
{
    assert(el->parent == NULL && el->first_child == NULL && el->raw != NULL);
    if (el->kids != el->raw)
        free(el->kids);
    el->kids = el->raw;
    el->kids_len = el->raw_len;
}

int stz_set_raw(struct stz *el, const char *data, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        return XE_NOMEM;
    memcpy(p, data, len);
    p[len] = '\0';
    stz_take_raw(el, p, len);
    return 0;
}

void stz_free(struct stz *el)
{
    if (el == NULL)
        return;
    assert(el->parent == NULL);
    stz__free_node(el);
}

static void stz__link(struct stz *el, struct stz *child)
{
    child->parent = el;
    child->next = NULL;
    if (el->last_child != NULL)
        el->last_child->next = child;
    else
        el->first_child = child;
    el->last_child = child;
}

static struct stz *stz__new_text(const char *text, size_t len)
{
    struct stz *t = calloc(1, sizeof *t);

    if (t == NULL)
        return NULL;
    t->kind = STZ_TEXT;
    t->text = malloc(len + 1);
    if (t->text == NULL) {
        free(t);
        return NULL;
    }
    if (len > 0)
        memcpy(t->text, text, len);
    t->text[len] = '\0';
    t->text_len = len;
    return t;
}

static int stz__copy_attrs(struct stz *dst, const struct stz *src)
{
    if (src->nattrs == 0)
        return 0;
    dst->attrs = calloc(src->nattrs, sizeof *dst->attrs);
    if (dst->attrs == NULL)
        return XE_NOMEM;
    dst->attrs_cap = src->nattrs;
    for (size_t i = 0; i < src->nattrs; i++) {
        struct stz_attr *d = &dst->attrs[i];
        const struct stz_attr *s = &src->attrs[i];

        dst->nattrs++;
        d->name = stz__dup(s->name);
        d->ns = s->ns ? stz__dup(s->ns) : NULL;
        d->value = stz__dup(s->value);
        if (d->name == NULL || (s->ns && d->ns == NULL) || d->value == NULL)
            return XE_NOMEM;
    }
    return 0;
}

struct stz *stz_copy(const struct stz *el)
{
    struct stz *c;

    if (el->kind == STZ_TEXT)
        return stz__new_text(el->text, el->text_len);
    c = stz_new(el->name, el->ns);
    if (c == NULL)
        return NULL;
    if (stz__copy_attrs(c, el) != 0)
        goto err;
    if (el->kids != NULL) {
        /* the copy's children come from a copy of the same bytes */
        if ((c->kids = malloc(el->kids_len + 1)) == NULL)
            goto err;
        memcpy(c->kids, el->kids, el->kids_len + 1);
        c->kids_len = el->kids_len;
        if (el->raw == el->kids) {
            c->raw = c->kids;
            c->raw_len = c->kids_len;
        }
        return c;
    }
    for (const struct stz *k = el->first_child; k != NULL; k = k->next) {
        struct stz *kc = stz_copy(k);

        if (kc == NULL)
            goto err;
        stz__link(c, kc);
    }
    return c;
err:
    stz_free(c);
    return NULL;
}

static struct stz_attr *stz__find_attr(const struct stz *el, const char *ns,
                                       const char *name)
{
    for (size_t i = 0; i < el->nattrs; i++) {
        struct stz_attr *a = &el->attrs[i];

        if (strcmp(a->name, name) != 0)
            continue;
        if (ns == NULL || *ns == '\0' ? a->ns == NULL : a->ns && strcmp(a->ns, ns) == 0)
            return a;
    }
    return NULL;
}

int stz_set_attr_ns(struct stz *el, const char *ns, const char *name, const char *value)
{
    struct stz_attr *a, *arr;
    char *v, *n, *nsc = NULL;

    if (ns != NULL && *ns == '\0')
        ns = NULL;
    stz__touch_attrs(el);
    v = stz__dup(value);
    if (v == NULL)
        return XE_NOMEM;
    a = stz__find_attr(el, ns, name);
    if (a != NULL) {
        stz__release(el, a->value);
        a->value = v;
        return 0;
    }
    n = stz__dup(name);
    if (ns != NULL)
        nsc = stz__dup(ns);
    if (n == NULL || (ns != NULL && nsc == NULL) ||
        (el->nattrs == el->attrs_cap && stz__grow_attrs(el, el->nattrs + 1) != 0)) {
        free(v);
        free(n);
        free(nsc);
        return XE_NOMEM;
    }
    arr = el->attrs;
    arr[el->nattrs].name = n;
    arr[el->nattrs].ns = nsc;
    arr[el->nattrs].value = v;
    el->nattrs++;
    return 0;
}

int stz_reserve_attrs(struct stz *el, size_t n)
{
    if (n <= el->attrs_cap)
        return 0;
    return stz__grow_attrs(el, n);
}

int stz_set_attr(struct stz *el, const char *name, const char *value)
{
    return stz_set_attr_ns(el, NULL, name, value);
}

void stz_del_attr(struct stz *el, const char *name)
{
    struct stz_attr *a = stz__find_attr(el, NULL, name);
    size_t i;

    if (a == NULL)
        return;
    stz__touch_attrs(el);
    i = (size_t)(a - el->attrs);
    stz__release(el, a->name);
    stz__release(el, a->ns);
    stz__release(el, a->value);
    memmove(&el->attrs[i], &el->attrs[i + 1], (el->nattrs - i - 1) * sizeof *a);
    el->nattrs--;
}

const char *stz_attr(const struct stz *el, const char *name)
{
    const struct stz_attr *a = stz__find_attr(el, NULL, name);

    return a ? a->value : NULL;
}

struct stz *stz_add_child(struct stz *el, const char *name, const char *ns)
{
    struct stz *c;

    if (stz__touch(el) != 0)
        return NULL;
    c = stz_new(name, ns ? ns : el->ns);
    if (c != NULL)
        stz__link(el, c);
    return c;
}

int stz_append(struct stz *el, struct stz *child)
{
    int rc;

    assert(child->parent == NULL);
    if ((rc = stz__touch(el)) != 0)
        return rc;
    stz__link(el, child);
    return 0;
}

int stz_add_text(struct stz *el, const char *text, size_t len)
{
    struct stz *last, *t;

    if (len == 0)
        return 0;
    if (stz__touch(el) != 0)
        return XE_NOMEM;
    last = el->last_child;
    if (last != NULL && last->kind == STZ_TEXT) {
        char *p;

        if (len > SIZE_MAX - last->text_len - 1)
            return XE_NOMEM;
        p = realloc(last->text, last->text_len + len + 1);
        if (p == NULL)
            return XE_NOMEM;
        memcpy(p + last->text_len, text, len);
        last->text_len += len;
        p[last->text_len] = '\0';
        last->text = p;
        return 0;
    }
    t = stz__new_text(text, len);
    if (t == NULL)
        return XE_NOMEM;
    stz__link(el, t);
    return 0;
}

size_t stz_mem_block(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;

    return c < 32 ? 32 : c;
}

size_t stz_node_mem(const struct stz *n)
{
    size_t m = stz_mem_block(sizeof *n);

    if (n->kind == STZ_TEXT)
        return m + stz_mem_block(n->text_len + 1);
    m += stz_mem_block(strlen(n->name) + 1) + stz_mem_block(strlen(n->ns) + 1);
    if (n->raw != NULL)
        m += stz_mem_block(n->raw_len + 1);
    if (n->kids != NULL && n->kids != n->raw)
        m += stz_mem_block(n->kids_len + 1);
    if (n->attrs_cap > 0)
        m += stz_mem_block(n->attrs_cap * sizeof *n->attrs);
    for (size_t i = 0; i < n->nattrs; i++) {
        const struct stz_attr *a = &n->attrs[i];

        m += stz_mem_block(strlen(a->name) + 1) + stz_mem_block(strlen(a->value) + 1);
        if (a->ns != NULL)
            m += stz_mem_block(strlen(a->ns) + 1);
    }
    return m;
}

void stz_unlink(struct stz *el)
{
    struct stz *p = el->parent, *prev = NULL;

    if (p == NULL)
        return;
    stz__touch_attrs(p); /* p has children: it is not lazy */
    for (struct stz *c = p->first_child; c != el; c = c->next) {
        assert(c != NULL);
        prev = c;
    }
    if (prev != NULL)
        prev->next = el->next;
    else
        p->first_child = el->next;
    if (p->last_child == el)
        p->last_child = prev;
    el->parent = NULL;
    el->next = NULL;
}

struct stz *stz_child(const struct stz *el, const char *name, const char *ns)
{
    for (struct stz *c = stz_first_element(el); c != NULL; c = stz_next_element(c))
        if (strcmp(c->name, name) == 0 && (ns == NULL || strcmp(c->ns, ns) == 0))
            return c;
    return NULL;
}

struct stz *stz_first_element(const struct stz *el)
{
    struct stz *c;

    if (stz_expand(el) != 0)
        return NULL;
    c = el->first_child;

    while (c != NULL && c->kind != STZ_ELEMENT)
        c = c->next;
    return c;
}

struct stz *stz_next_element(const struct stz *el)
{
    struct stz *c = el->next;

    while (c != NULL && c->kind != STZ_ELEMENT)
        c = c->next;
    return c;
}

char *stz_text(const struct stz *el)
{
    struct buf b = {0};
    char *s;

    if (stz_expand(el) != 0)
        return NULL;
    for (const struct stz *c = el->first_child; c != NULL; c = c->next)
        if (c->kind == STZ_TEXT && buf_append(&b, c->text, c->text_len) != 0) {
            buf_free(&b);
            return NULL;
        }
    s = buf_steal(&b);
    return s;
}

/* stz__escape appends s[0..len) escaped.  In attribute values (attr) also
 * quotes, and tab/LF/CR as character references, because attribute-value
 * normalisation (XML 1.0 §3.3.3) would otherwise turn them into spaces; CR in
 * text likewise, because end-of-line handling (XML 1.0 §2.11) would turn it
 * into LF.  Other C0 controls cannot appear in XML 1.0 (§2.2), not even as
 * references, so they are dropped rather than emitted as broken XML. */
static int stz__escape(struct buf *out, const char *s, size_t len, bool attr)
{
    size_t run = 0;
    int rv;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *rep = NULL;

        switch (ch) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = attr ? "&quot;" : NULL;
            break;
        case '\'':
            rep = attr ? "&apos;" : NULL;
            break;
        case '\t':
            rep = attr ? "&#9;" : NULL;
            break;
        case '\n':
            rep = attr ? "&#10;" : NULL;
            break;
        case '\r':
            rep = "&#13;";
            break;
        default:
            if (ch < 0x20)
                rep = "";
            break;
        }
        if (rep == NULL)
            continue;
        if ((rv = buf_append(out, s + run, i - run)) != 0 ||
            (rv = buf_puts(out, rep)) != 0)
            return rv;
        run = i + 1;
    }
    return buf_append(out, s + run, len - run);
}

static int stz__put_attr(struct buf *out, const char *prefix, const char *name,
                         const char *value)
{
    int rv;

    if ((rv = buf_puts(out, " ")) != 0)
        return rv;
    if (prefix != NULL &&
        ((rv = buf_puts(out, prefix)) != 0 || (rv = buf_puts(out, ":"))))
        return rv;
    if ((rv = buf_puts(out, name)) != 0 || (rv = buf_puts(out, "='")) != 0 ||
        (rv = stz__escape(out, value, strlen(value), true)) != 0)
        return rv;
    return buf_puts(out, "'");
}

/* stz__is_xmlns tells whether an unqualified attribute name is a namespace
 * declaration; those are the serializer's job, never copied from attrs. */
static bool stz__is_xmlns(const char *name)
{
    return strcmp(name, "xmlns") == 0 || strncmp(name, "xmlns:", 6) == 0;
}

/* stz__put_attrs writes el's attributes.  Unqualified ones as they are;
 * xml:lang and other attributes in the XML namespace with the reserved xml
 * prefix, which needs no declaration (Namespaces in XML 1.0 §3); any other
 * namespace gets a prefix "nsN" declared on this element, N being the index
 * of the first attribute in that namespace, so each namespace is declared
 * once and prefixes on one element never clash. */
static int stz__put_attrs(const struct stz *el, struct buf *out)
{
    char prefix[32];
    int rv;

    for (size_t i = 0; i < el->nattrs; i++) {
        const struct stz_attr *a = &el->attrs[i];
        size_t first = i;

        if (a->ns == NULL) {
            if (stz__is_xmlns(a->name))
                continue;
            if ((rv = stz__put_attr(out, NULL, a->name, a->value)) != 0)
                return rv;
            continue;
        }
        if (strcmp(a->ns, STZ_NS_XML) == 0) {
            if ((rv = stz__put_attr(out, "xml", a->name, a->value)) != 0)
                return rv;
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (el->attrs[j].ns != NULL && strcmp(el->attrs[j].ns, a->ns) == 0) {
                first = j;
                break;
            }
        snprintf(prefix, sizeof prefix, "ns%zu", first);
        if (first == i && ((rv = buf_printf(out, " xmlns:%s='", prefix)) != 0 ||
                           (rv = stz__escape(out, a->ns, strlen(a->ns), true)) != 0 ||
                           (rv = buf_puts(out, "'")) != 0))
            return rv;
        if ((rv = stz__put_attr(out, prefix, a->name, a->value)) != 0)
            return rv;
    }
    return 0;
}

/* stz__content_ns tells whether ns is one of the stream content
 * namespaces (RFC 6120 §4.8.2: jabber:client, jabber:server; XEP-0114:
 * jabber:component:accept). */
static bool stz__content_ns(const char *ns)
{
    return ns != NULL &&
           (strcmp(ns, STZ_NS_CLIENT) == 0 || strcmp(ns, STZ_NS_COMPONENT) == 0 ||
            strcmp(ns, STZ_NS_SERVER) == 0);
}

int stz_serialize(const struct stz *el, const char *parent_ns, struct buf *out)
{
    size_t mark = out->len;
    int rv;

    if (el->kind == STZ_TEXT)
        return stz__escape(out, el->text, el->text_len, false);
    /* The received bytes carry no xmlns of their own and inherit the
     * content namespace, which counts as the parent's here (below). */
    if (el->raw != NULL && stz__content_ns(el->ns) && stz__content_ns(parent_ns))
        return buf_append(out, el->raw, el->raw_len);
    if ((rv = stz_expand(el)) != 0)
        return rv;
    if ((rv = buf_puts(out, "<")) != 0 || (rv = buf_puts(out, el->name)) != 0)
        goto err;
    /* RFC 6120 §4.8.3: a stanza in the stream's content namespace carries no
     * xmlns; an element in another namespace declares it as its default.  A
     * stanza routed from one kind of stream into another changes content
     * namespace with the stream (a component's message reaches a client
     * in jabber:client, §4.8.3 and XEP-0114 §3), so the content namespaces
     * count as one below a content-namespace parent. */
    if (!stz__streq(el->ns, parent_ns) &&
        !(stz__content_ns(el->ns) && stz__content_ns(parent_ns))) {
        if ((rv = buf_puts(out, " xmlns='")) != 0 ||
            (rv = stz__escape(out, el->ns, strlen(el->ns), true)) != 0 ||
            (rv = buf_puts(out, "'")) != 0)
            goto err;
    }
    if ((rv = stz__put_attrs(el, out)) != 0)
        goto err;
    if (el->first_child == NULL) {
        if ((rv = buf_puts(out, "/>")) != 0)
            goto err;
        return 0;
    }
    if ((rv = buf_puts(out, ">")) != 0)
        goto err;
    for (const struct stz *c = el->first_child; c != NULL; c = c->next)
        if ((rv = stz_serialize(c, el->ns, out)) != 0)
            goto err;
    /* (no printf: this runs for every element of every stanza written) */
    if ((rv = buf_puts(out, "</")) != 0 || (rv = buf_puts(out, el->name)) != 0 ||
        (rv = buf_puts(out, ">")) != 0)
        goto err;
    return 0;
err:
    /* buf.h: a failed append leaves the buffer as it was; so does a failed
     * serialization. */
    out->len = mark;
    if (out->data != NULL)
        out->data[mark] = '\0';
    return rv;
}

bool stz_is_stanza(const struct stz *el, const char *ns)
{
    if (el->kind != STZ_ELEMENT || (ns != NULL && strcmp(el->ns, ns) != 0))
        return false;
    return strcmp(el->name, "message") == 0 || strcmp(el->name, "presence") == 0 ||
           strcmp(el->name, "iq") == 0;
}

/* stz__swap_addr sets attribute dst of r to src's value in orig, or removes
 * it when orig has none. */
static int stz__swap_addr(struct stz *r, const struct stz *orig, const char *dst,
                          const char *src)
{
    const char *v = stz_attr(orig, src);

    if (v == NULL) {
        stz_del_attr(r, dst);
        return 0;
    }
    return stz_set_attr(r, dst, v);
}

struct stz *stz_error_reply(const struct stz *orig, const char *type, const char *cond,
                            const char *text)
{
    struct stz *r, *e, *c;

    r = stz_copy(orig);
    if (r == NULL)
        return NULL;
    /* RFC 6120 §8.3.1: the error stanza goes back to the sender (to = the
     * original from, and from = the original to), keeps the id and has type
     * "error". */
    if (stz__swap_addr(r, orig, "to", "from") != 0 ||
        stz__swap_addr(r, orig, "from", "to") != 0 ||
        stz_set_attr(r, "type", "error") != 0)
        goto err;
    /* §8.3.2: <error type=...> in the stanza's namespace, holding the defined
     * condition and an optional <text/>, both in the stanzas namespace. */
    e = stz_add_child(r, "error", NULL);
    if (e == NULL || stz_set_attr(e, "type", type) != 0)
        goto err;
    if (stz_add_child(e, cond, STZ_NS_STANZAS) == NULL)
        goto err;
    if (text != NULL) {
        c = stz_add_child(e, "text", STZ_NS_STANZAS);
        if (c == NULL || stz_add_text(c, text, strlen(text)) != 0)
            goto err;
    }
    return r;
err:
    stz_free(r);
    return NULL;
}

/* stz__stag_end returns where the start tag in raw[0..len) ends: the
 * offset of its "/>" or ">" (a '>' inside an attribute value does not
 * count, XML 1.0 §3.1), or 0 when there is none. */
static size_t stz__stag_end(const char *raw, size_t len)
{
    char q = 0;

    for (size_t i = 1; i < len; i++) {
        char c = raw[i];

        if (q != 0) {
            if (c == q)
                q = 0;
        } else if (c == '\'' || c == '"') {
            q = c;
        } else if (c == '>') {
            return raw[i - 1] == '/' ? i - 1 : i;
        }
    }
    return 0;
}

int stz_stamp_attr(struct stz *el, const char *name, const char *value)
{
    const char *old = stz_attr(el, name);
    size_t at, len;
    struct buf b = {0};
    char *raw;
    int rv;

    if (old != NULL && strcmp(old, value) == 0)
        return 0;
    if (el->raw == NULL || old != NULL || (at = stz__stag_end(el->raw, el->raw_len)) == 0)
        return stz_set_attr(el, name, value);
    /* The new attribute goes last, where stz_serialize would put it. */
    if ((rv = buf_append(&b, el->raw, at)) != 0 ||
        (rv = stz__put_attr(&b, NULL, name, value)) != 0 ||
        (rv = buf_append(&b, el->raw + at, el->raw_len - at)) != 0)
        goto err;
    raw = el->raw;
    el->raw = NULL; /* kept across stz_set_attr, which would drop it */
    rv = stz_set_attr(el, name, value);
    el->raw = raw;
    if (rv != 0)
        goto err;
    len = b.len;
    stz_take_raw(el, buf_steal(&b), len);
    if (el->kids == raw) {
        /* the new bytes hold the same children: one buffer again */
        free(el->kids);
        el->kids = el->raw;
        el->kids_len = el->raw_len;
    }
    return 0;
err:
    buf_free(&b);
    return rv;
}
