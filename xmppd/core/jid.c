/* jid.c: XMPP addresses (RFC 7622): parsing, preparation, formatting. */
#include "jid.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "precis.h"

/* RFC 7622 §3.2-3.4: every part is 1 to 1023 octets. */
#define JID_PART_MAX 1023
/* RFC 1035 §2.3.4: a DNS label is at most 63 octets. */
#define JID_LABEL_MAX 63

/* jid__utf8_next decodes one UTF-8 sequence at s (n bytes available) into
 * *cp and returns its length, or 0 when it is not valid UTF-8 (RFC 3629
 * §3/§4: no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t jid__utf8_next(const unsigned char *s, size_t n, unsigned long *cp)
{
    unsigned long c;
    size_t len;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* jid__is_control: C0, DEL and C1 controls (Unicode category Cc), which
 * PRECIS disallows in every class (RFC 8264 §9.12). */
static bool jid__is_control(unsigned long cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

static bool jid__is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* jid__label_valid checks one prepared label: ASCII labels are LDH (RFC
 * 1123 §2.1: letters, digits, hyphens, not starting or ending with a
 * hyphen); a label with non-ASCII characters (a U-label, RFC 5890) must be
 * valid UTF-8 whose ASCII characters are LDH (no full IDNA2008 check). */
static bool jid__label_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    if (len == 0 || len > JID_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
        return false;
    while (i < len) {
        unsigned long cp;
        size_t n;

        if (s[i] < 0x80) { /* ASCII, most labels: no decoding */
            if (!jid__is_ldh(s[i]))
                return false;
            i++;
            continue;
        }
        n = jid__utf8_next(s + i, len - i, &cp);

        if (n == 0 || (n == 1 && !jid__is_ldh(s[i])) || (n > 1 && jid__is_control(cp)))
            return false;
        i += n;
    }
    return true;
}

/* jid__domain_valid checks a prepared domainpart of len bytes. */
static bool jid__domain_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    char tmp[64];
    unsigned char addr[16];
    bool numeric = true;
    size_t start = 0;

    if (len == 0 || len > JID_PART_MAX || memchr(s, '\0', len) != NULL)
        return false;
    /* RFC 7622 §3.2: an IPv6 literal in brackets (RFC 3986 §3.2.2). */
    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof tmp)
            return false;
        for (size_t i = 1; i + 1 < len; i++)
            if (s[i] >= 'A' && s[i] <= 'F')
                return false; /* not prepared */
        memcpy(tmp, s + 1, len - 2);
        tmp[len - 2] = '\0';
        return inet_pton(AF_INET6, tmp, addr) == 1;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            numeric = numeric && s[i] >= '0' && s[i] <= '9';
            continue;
        }
        if (!jid__label_valid(p + start, i - start))
            return false;
        start = i + 1;
    }
    /* All digits and dots: that is an IPv4 literal, and must be a valid one
     * (no top-level domain is all-numeric). */
    if (numeric) {
        if (len >= sizeof tmp)
            return false;
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        return inet_pton(AF_INET, tmp, addr) == 1;
    }
    return true;
}

/* jid__has_ace: an ASCII name with an A-label ("xn--"), which preparation
 * turns into a U-label (RFC 7622 §3.2). */
static bool jid__has_ace(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p == 'x' && (p == s || p[-1] == '.') && strncmp(p, "xn--", 4) == 0)
            return true;
    return false;
}

/* jid__ldh_prepared tells, in one pass, whether s[0..len) is an ASCII name
 * that preparation gives back unchanged: lower-case LDH labels of 1..63
 * bytes (RFC 1123 §2.1), none an A-label ("xn--", which RFC 7622 §3.2
 * turns into a U-label), no final dot, not all digits and dots (an IPv4
 * literal, checked on the full path).  The name of almost every stanza's
 * 'to' and 'from' is of this kind; false sends anything else (upper case,
 * a trailing dot, non-ASCII, an IP literal, an invalid name) to
 * precis_domain, so the result is the same, only cheaper. */
static bool jid__ldh_prepared(const char *s, size_t len)
{
    size_t label = 0;
    bool alpha = false;

    if (len == 0 || len > JID_PART_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (c >= 'a' && c <= 'z') {
            /* an A-label starts "xn--" (RFC 5890 §2.3.2.1) */
            if (c == 'x' && label == 0 && len - i >= 4 && memcmp(s + i, "xn--", 4) == 0)
                return false;
            alpha = true;
        } else if (c == '-') {
            if (label == 0)
                return false;
            alpha = true;
        } else if (c < '0' || c > '9') {
            return false;
        }
        if (++label > JID_LABEL_MAX)
            return false;
    }
    return label > 0 && s[len - 1] != '-' && alpha;
}

bool jid_domain_valid(const char *s)
{
    char prepared[JID_PART_MAX + 1];
    bool ascii = true;

    if (s == NULL)
        return false;
    if (jid__ldh_prepared(s, strlen(s)))
        return true;
    for (const char *p = s; *p; p++)
        ascii = ascii && (unsigned char)*p < 0x80;
    if (ascii)
        return !jid__has_ace(s) && jid__domain_valid(s, strlen(s));
    /* A name with U-labels is prepared when preparing it again changes
     * nothing (precis_domain checks it with IDNA2008). */
    return precis_domain(s, prepared, sizeof prepared) == 0 && strcmp(prepared, s) == 0;
}

/* jid__prep_part prepares s[0..len) with prep into *out (owned): XE_INVAL
 * when refused or longer than JID_PART_MAX once prepared, XE_NOMEM. */
static int jid__prep_part(const char *s, size_t len,
                          int (*prep)(const char *, size_t, char *, size_t), char **out)
{
    char prepared[JID_PART_MAX + 1];
    int rv = prep(s, len, prepared, sizeof prepared);

    if (rv == XE_NOMEM)
        return rv;
    if (rv < 0)
        return XE_INVAL;
    *out = strdup(prepared);
    return *out != NULL ? 0 : XE_NOMEM;
}

int jid_parse(const char *s, struct jid *out)
{
    const char *slash, *at, *dom, *dom_end;
    size_t slen;
    int rv = XE_INVAL;

    memset(out, 0, sizeof *out);
    if (s == NULL)
        return XE_INVAL;
    slen = strlen(s);
    /* RFC 7622 §3.1: the resourcepart starts at the first '/'; the
     * localpart ends at the first '@' before it. */
    slash = memchr(s, '/', slen);
    dom_end = slash ? slash : s + slen;
    at = memchr(s, '@', (size_t)(dom_end - s));
    dom = at ? at + 1 : s;
    if (at != NULL) {
        /* §3.3: the localpart is a PRECIS UsernameCaseMapped string, without
         * the characters of §3.3.1. */
        rv = jid__prep_part(s, (size_t)(at - s), precis_username, &out->local);
        if (rv < 0)
            goto err;
    }
    if (slash != NULL) {
        /* §3.4: the resourcepart is a PRECIS OpaqueString; it keeps its case. */
        rv = jid__prep_part(slash + 1, slen - (size_t)(slash + 1 - s), precis_opaque,
                            &out->resource);
        if (rv < 0)
            goto err;
    }
    {
        /* §3.2: IDNA2008 U-labels or LDH ASCII, lower case, no final dot. */
        size_t dlen = (size_t)(dom_end - dom);
        char small[256]; /* most domains: no malloc per parse */
        char *raw;
        char prepared[JID_PART_MAX + 1];

        /* Already prepared (most stanzas): the bytes are the result. */
        if (jid__ldh_prepared(dom, dlen)) {
            out->domain = strndup(dom, dlen);
            if (out->domain == NULL) {
                rv = XE_NOMEM;
                goto err;
            }
            return 0;
        }
        raw = dlen < sizeof small ? small : malloc(dlen + 1);
        rv = XE_NOMEM;
        if (raw == NULL)
            goto err;
        memcpy(raw, dom, dlen);
        raw[dlen] = '\0';
        rv = precis_domain(raw, prepared, sizeof prepared);
        if (raw != small)
            free(raw);
        if (rv == 0)
            out->domain = strdup(prepared);
        if (rv == 0 && out->domain == NULL)
            rv = XE_NOMEM;
        if (rv < 0)
            goto err;
    }
    return 0;
err:
    jid_clear(out);
    return rv == XE_NOMEM ? XE_NOMEM : XE_INVAL;
}

void jid_clear(struct jid *j)
{
    free(j->local);
    free(j->domain);
    free(j->resource);
    memset(j, 0, sizeof *j);
}

int jid_format(const struct jid *j, struct buf *out)
{
    size_t mark = out->len;
    int rv = 0;

    if (j->local != NULL &&
        ((rv = buf_puts(out, j->local)) != 0 || (rv = buf_puts(out, "@")) != 0))
        goto err;
    if ((rv = buf_puts(out, j->domain ? j->domain : "")) != 0)
        goto err;
    if (j->resource != NULL &&
        ((rv = buf_puts(out, "/")) != 0 || (rv = buf_puts(out, j->resource)) != 0))
        goto err;
    return 0;
err:
    out->len = mark;
    if (out->data != NULL)
        out->data[mark] = '\0';
    return rv;
}

static bool jid__streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool jid_equal(const struct jid *a, const struct jid *b)
{
    return jid__streq(a->local, b->local) && jid__streq(a->domain, b->domain) &&
           jid__streq(a->resource, b->resource);
}

bool jid_domain_within(const char *domain, const char *parent)
{
    size_t dl = strlen(domain), pl = strlen(parent);

    if (pl == 0)
        return false;
    if (dl == pl)
        return strcmp(domain, parent) == 0;
    /* a subdomain ends with "." + parent, on a label boundary */
    return dl > pl + 1 && domain[dl - pl - 1] == '.' &&
           strcmp(domain + dl - pl, parent) == 0;
}

bool jid_dns_name_valid(const char *s, bool wildcard)
{
    size_t n = strlen(s), label = 0;

    if (n == 0 || n > 253)
        return false;
    if (wildcard && strncmp(s, "*.", 2) == 0)
        s += 2;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0 || p[-1] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && s[strlen(s) - 1] != '-';
}
