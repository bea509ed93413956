/* stz_lazy.c: building a lazily parsed element's children from its bytes.
 *
 * The framer (xs.c) checks every byte of a stanza with expat (well-formed,
 * namespaces, RFC 6120 §11.1's restrictions, its limits) but builds only
 * the top element of one whose bytes it keeps: routing reads its name and
 * addresses, and the router writes the bytes as they came.  When the server
 * looks inside (an iq to it, presence, an error reply that keeps the
 * children, RFC 6120 §8.3.1), the children are built here, on first
 * access, by parsing the same bytes again in the same namespace context: a
 * context element that declares the stream's default namespace (or the
 * stream header itself, stz_expand_in), then the element.  The tree comes
 * out as the framer would have built it (tests/unit/test_xs.c compares the
 * two on every fuzzed stanza).
 *
 * expat allocates through malloc, realloc and free called from here, so the
 * out-of-memory sweep (tests/oom) reaches its allocations too. */
#include "stz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "buf.h"
#include "err.h"

/* as in xs.c: expat names "uri<SEP>local"; no XML name or URI holds it */
#define STZ_LAZY_SEP '\x01'

struct stz_lazy {
    XML_Parser p;
    struct stz *tmp; /* stands for the element: the children go below it */
    struct stz *cur; /* innermost open element, tmp at level 2 */
    unsigned level;  /* 1: the context element; 2: the element itself */
    bool closed;     /* the element's end tag was parsed */
    int rc;          /* the first failure */
};

static void *stz_lazy__malloc(size_t n)
{
    return malloc(n);
}

static void *stz_lazy__realloc(void *p, size_t n)
{
    return realloc(p, n);
}

static void stz_lazy__free(void *p)
{
    free(p);
}

static const XML_Memory_Handling_Suite stz_lazy__mm = {stz_lazy__malloc,
                                                       stz_lazy__realloc, stz_lazy__free};

static void stz_lazy__fail(struct stz_lazy *z, int rc)
{
    if (z->rc == 0)
        z->rc = rc;
    XML_StopParser(z->p, XML_FALSE);
}

/* stz_lazy__split splits "uri<SEP>local" into an owned URI (*ns, NULL when
 * unqualified) and a borrowed local name.  0/XE_NOMEM. */
static int stz_lazy__split(const char *qname, char **ns, const char **local)
{
    const char *sep = strchr(qname, STZ_LAZY_SEP);

    *ns = NULL;
    *local = qname;
    if (sep == NULL)
        return 0;
    if ((*ns = strndup(qname, (size_t)(sep - qname))) == NULL)
        return XE_NOMEM;
    *local = sep + 1;
    return 0;
}

static void XMLCALL stz_lazy__on_start(void *ud, const char *qname, const char **atts)
{
    struct stz_lazy *z = ud;
    struct stz *el;
    const char *local;
    char *ns;
    int rc;

    if (z->rc != 0)
        return;
    if (++z->level <= 2)
        return; /* the context, and the element (built already) */
    if (stz_lazy__split(qname, &ns, &local) != 0)
        goto nomem;
    el = stz_add_child(z->cur, local, ns != NULL ? ns : "");
    free(ns);
    if (el == NULL)
        goto nomem;
    for (size_t i = 0; atts[i] != NULL; i += 2) {
        if (stz_lazy__split(atts[i], &ns, &local) != 0)
            goto nomem;
        rc = stz_set_attr_ns(el, ns, local, atts[i + 1]);
        free(ns);
        if (rc != 0)
            goto nomem;
    }
    z->cur = el;
    return;
nomem:
    stz_lazy__fail(z, XE_NOMEM);
}

static void XMLCALL stz_lazy__on_end(void *ud, const char *qname)
{
    struct stz_lazy *z = ud;

    (void)qname;
    if (z->rc != 0)
        return;
    if (z->level-- == 2) {
        z->closed = true;
        XML_StopParser(z->p, XML_FALSE); /* nothing after it matters */
        return;
    }
    if (z->level >= 2)
        z->cur = z->cur->parent;
}

static void XMLCALL stz_lazy__on_text(void *ud, const char *s, int len)
{
    struct stz_lazy *z = ud;

    if (z->rc != 0 || z->level < 2)
        return;
    if (stz_add_text(z->cur, s, (size_t)len) != 0)
        stz_lazy__fail(z, XE_NOMEM);
}

/* stz_lazy__parse feeds len bytes of data to z's parser. */
static void stz_lazy__parse(struct stz_lazy *z, const char *data, size_t len)
{
    if (z->rc != 0 || z->closed)
        return;
    if (len > INT32_MAX) {
        z->rc = XE_INVAL;
        return;
    }
    if (XML_Parse(z->p, data, (int)len, XML_FALSE) == XML_STATUS_ERROR && z->rc == 0 &&
        !z->closed)
        z->rc = XML_GetErrorCode(z->p) == XML_ERROR_NO_MEMORY ? XE_NOMEM : XE_INVAL;
}

int stz_expand_in(const struct stz *cel, const char *open, size_t open_len)
{
    /* Logically const (stz.h): only the building of el's tree is done. */
    struct stz *el = (struct stz *)cel;
    struct stz_lazy z = {0};

    if (el->kids == NULL)
        return 0;
    z.p = XML_ParserCreate_MM("UTF-8", &stz_lazy__mm, "\x01");
    z.tmp = stz_new(el->name, el->ns);
    if (z.p == NULL || z.tmp == NULL) {
        z.rc = XE_NOMEM;
        goto out;
    }
    z.cur = z.tmp;
    XML_SetUserData(z.p, &z);
    XML_SetElementHandler(z.p, stz_lazy__on_start, stz_lazy__on_end);
    XML_SetCharacterDataHandler(z.p, stz_lazy__on_text);
    /* The bytes passed the framer's checks (no DTD, no entities beyond the
     * five predefined ones, RFC 6120 §11.1); never load anything anyway. */
    XML_SetParamEntityParsing(z.p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    XML_SetReparseDeferralEnabled(z.p, XML_FALSE); /* one buffer, parse it all */
#endif
    stz_lazy__parse(&z, open, open_len);
    stz_lazy__parse(&z, el->kids, el->kids_len);
    if (z.rc == 0 && !z.closed)
        z.rc = XE_INVAL;
    if (z.rc != 0)
        goto out;
    /* Move the children under el; el keeps its own attributes (its bytes'
     * may be older, stz.h). */
    el->first_child = z.tmp->first_child;
    el->last_child = z.tmp->last_child;
    z.tmp->first_child = z.tmp->last_child = NULL;
    for (struct stz *c = el->first_child; c != NULL; c = c->next)
        c->parent = el;
    if (el->kids != el->raw)
        free(el->kids);
    el->kids = NULL;
    el->kids_len = 0;
out:
    stz_free(z.tmp);
    if (z.p != NULL)
        XML_ParserFree(z.p);
    return z.rc;
}

int stz_expand(const struct stz *el)
{
    struct buf open = {0};
    int rc;

    if (el->kids == NULL)
        return 0;
    /* A stanza whose bytes are kept declares no namespace of its own and
     * uses no prefix of the stream header (xs.c): in a context element that
     * declares its namespace as the default it parses as it did in its
     * stream (Namespaces in XML 1.0 §6.2). */
    if ((rc = buf_puts(&open, "<c xmlns=\"")) != 0)
        goto out;
    for (const char *s = el->ns; *s != '\0' && rc == 0; s++) {
        if (*s == '&')
            rc = buf_puts(&open, "&amp;");
        else if (*s == '<')
            rc = buf_puts(&open, "&lt;");
        else if (*s == '"')
            rc = buf_puts(&open, "&quot;");
        else
            rc = buf_append(&open, s, 1);
    }
    if (rc == 0 && (rc = buf_puts(&open, "\">")) == 0)
        rc = stz_expand_in(el, open.data, open.len);
out:
    buf_free(&open);
    return rc;
}
