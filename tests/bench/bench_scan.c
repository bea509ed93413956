/* bench_scan.c: a minimal incremental scanner for the top-level elements of
 * an XMPP stream (RFC 6120 §4), enough for a load generator: it finds the
 * stream header, each complete stanza and the stream end, whatever the
 * chunking of the bytes.  It is not a validating parser; the server under
 * test is trusted to send well-formed XML.  Comments, CDATA sections and
 * processing instructions are skipped; a DTD is refused. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

void bench_scan_init(struct bench_scan *s, size_t max_elem)
{
    memset(s, 0, sizeof(*s));
    s->max_elem = max_elem;
}

void bench_scan_free(struct bench_scan *s)
{
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

int bench_scan_room(struct bench_scan *s, size_t want)
{
    if (s->pos > 0) {
        memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->pos = 0;
    }
    if (s->cap - s->len >= want)
        return 0;
    size_t ncap = s->cap ? s->cap : 4096;
    while (ncap - s->len < want)
        ncap *= 2;
    char *nb = realloc(s->buf, ncap);
    if (nb == NULL)
        return -1;
    s->buf = nb;
    s->cap = ncap;
    return 0;
}

/* Finds `needle` in [p, end); returns a pointer past it or NULL. */
static const char *skip_past(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    while (p + n <= end) {
        const char *q = memchr(p, needle[0], (size_t)(end - p));
        if (q == NULL || q + n > end)
            return NULL;
        if (memcmp(q, needle, n) == 0)
            return q + n;
        p = q + 1;
    }
    return NULL;
}

/* Finds the '>' closing the tag that starts at p (quotes respected); returns
 * a pointer to it or NULL when the tag is not complete yet. */
static const char *tag_end(const char *p, const char *end)
{
    char quote = 0;
    for (; p < end; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '>') {
            return p;
        }
    }
    return NULL;
}

static size_t name_len_at(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n' && *q != '>' &&
           *q != '/')
        q++;
    return (size_t)(q - p);
}

/* Skips markup that is not an element (<?...?>, <!--...-->, <![CDATA[...]]>)
 * at p, which points at '<'.  Returns 1 and sets *next, 0 when incomplete,
 * -1 on a DTD, 2 when p is an ordinary tag. */
static int skip_special(const char *p, const char *end, const char **next)
{
    if (end - p < 2)
        return 0;
    if (p[1] == '?') {
        *next = skip_past(p + 2, end, "?>");
        return *next ? 1 : 0;
    }
    if (p[1] != '!')
        return 2;
    if (end - p < 4)
        return 0;
    if (p[2] == '-' && p[3] == '-') {
        *next = skip_past(p + 4, end, "-->");
        return *next ? 1 : 0;
    }
    if (end - p < 9)
        return 0;
    if (memcmp(p, "<![CDATA[", 9) == 0) {
        *next = skip_past(p + 9, end, "]]>");
        return *next ? 1 : 0;
    }
    return -1; /* <!DOCTYPE and friends: no DTDs in XMPP (RFC 6120 §11.1) */
}

int bench_scan_next(struct bench_scan *s, struct bench_elem *e)
{
    const char *end = s->buf + s->len;

    for (;;) {
        const char *p = s->buf + s->pos;
        /* Text at the top level: whitespace keep-alives (RFC 6120 §4.6.1). */
        p = memchr(p, '<', (size_t)(end - p));
        if (p == NULL) {
            s->pos = s->len;
            return BENCH_EV_MORE;
        }
        s->pos = (size_t)(p - s->buf);
        const char *next = NULL;
        int sp = skip_special(p, end, &next);
        if (sp == 0)
            return BENCH_EV_MORE;
        if (sp < 0)
            return -1;
        if (sp == 1) {
            s->pos = (size_t)(next - s->buf);
            continue;
        }
        if (p[1] == '/') {
            const char *gt = tag_end(p, end);
            if (gt == NULL)
                return BENCH_EV_MORE;
            s->pos = (size_t)(gt + 1 - s->buf);
            if (name_len_at(p + 2, gt) == 13 && memcmp(p + 2, "stream:stream", 13) == 0)
                return BENCH_EV_END;
            return -1;
        }
        e->p = p;
        e->name = p + 1;
        e->name_len = name_len_at(p + 1, end);
        if (e->name + e->name_len >= end)
            return BENCH_EV_MORE;
        if (e->name_len == 13 && memcmp(e->name, "stream:stream", 13) == 0) {
            const char *gt = tag_end(p, end);
            if (gt == NULL)
                return BENCH_EV_MORE;
            e->len = (size_t)(gt + 1 - p);
            s->pos = (size_t)(gt + 1 - s->buf);
            return BENCH_EV_HEADER;
        }
        /* A stanza: walk its tags until the depth is back to zero. */
        int depth = 0;
        const char *q = p;
        for (;;) {
            if ((size_t)(q - p) > s->max_elem)
                return -1;
            q = memchr(q, '<', (size_t)(end - q));
            if (q == NULL) {
                if ((size_t)(end - p) > s->max_elem)
                    return -1;
                return BENCH_EV_MORE;
            }
            sp = skip_special(q, end, &next);
            if (sp == 0)
                return BENCH_EV_MORE;
            if (sp < 0)
                return -1;
            if (sp == 1) {
                q = next;
                continue;
            }
            const char *gt = tag_end(q, end);
            if (gt == NULL)
                return BENCH_EV_MORE;
            if (q[1] == '/')
                depth--;
            else if (gt[-1] != '/')
                depth++;
            q = gt + 1;
            if (depth == 0)
                break;
        }
        e->len = (size_t)(q - p);
        s->pos = (size_t)(q - s->buf);
        return BENCH_EV_STANZA;
    }
}

int bench_elem_is(const struct bench_elem *e, const char *name)
{
    size_t n = strlen(name);
    return e->name_len == n && memcmp(e->name, name, n) == 0;
}

/* Decodes the five predefined entities and character references of
 * XML 1.0 §4.6 / §4.1 (ASCII only is enough here). */
static int decode_into(const char *v, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (ch == '&') {
            const char *semi = memchr(v + i, ';', n - i);
            if (semi == NULL)
                return -1;
            size_t en = (size_t)(semi - (v + i)) + 1;
            if (en == 5 && memcmp(v + i, "&amp;", 5) == 0)
                ch = '&';
            else if (en == 4 && memcmp(v + i, "&lt;", 4) == 0)
                ch = '<';
            else if (en == 4 && memcmp(v + i, "&gt;", 4) == 0)
                ch = '>';
            else if (en == 6 && memcmp(v + i, "&quot;", 6) == 0)
                ch = '"';
            else if (en == 6 && memcmp(v + i, "&apos;", 6) == 0)
                ch = '\'';
            else if (en > 3 && v[i + 1] == '#') {
                long cp = v[i + 2] == 'x' ? strtol(v + i + 3, NULL, 16)
                                          : strtol(v + i + 2, NULL, 10);
                if (cp <= 0 || cp > 127)
                    return -1;
                ch = (char)cp;
            } else
                return -1;
            i += en - 1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return (int)o;
}

int bench_elem_attr(const struct bench_elem *e, const char *name, char *out, size_t cap)
{
    const char *end = tag_end(e->p, e->p + e->len);
    size_t n = strlen(name);
    const char *q = e->name + e->name_len;

    while (q != NULL && q < end) {
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        const char *an = q;
        while (q < end && *q != '=' && *q != ' ' && *q != '/' && *q != '>')
            q++;
        size_t alen = (size_t)(q - an);
        while (q < end && (*q == ' ' || *q == '='))
            q++;
        if (q >= end || (*q != '\'' && *q != '"'))
            return -1;
        const char *close = memchr(q + 1, *q, (size_t)(end - q - 1));
        if (close == NULL)
            return -1;
        if (alen == n && memcmp(an, name, n) == 0)
            return decode_into(q + 1, (size_t)(close - q - 1), out, cap);
        q = close + 1;
    }
    return -1;
}

long bench_elem_child_text(const struct bench_elem *e, const char *child,
                           const char **text)
{
    const char *end = e->p + e->len;
    size_t n = strlen(child);
    const char *q = tag_end(e->p, end);

    while (q != NULL && q < end) {
        q = memchr(q, '<', (size_t)(end - q));
        if (q == NULL || q + 1 + n >= end)
            return -1;
        if (memcmp(q + 1, child, n) == 0 &&
            (q[1 + n] == '>' || q[1 + n] == ' ' || q[1 + n] == '/')) {
            const char *gt = tag_end(q, end);
            if (gt == NULL)
                return -1;
            if (gt[-1] == '/') {
                *text = gt;
                return 0;
            }
            const char *lt = memchr(gt + 1, '<', (size_t)(end - gt - 1));
            if (lt == NULL)
                return -1;
            *text = gt + 1;
            return (long)(lt - gt - 1);
        }
        q++;
    }
    return -1;
}
