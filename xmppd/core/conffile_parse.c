/* conffile_parse.c: parsing the node configuration text (format in
 * conffile_parse.h). */
#include "conffile_parse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "addr.h"
#include "err.h"
#include "jid.h"

#define MAX_FIELDS 4

_Static_assert(CONF_MAX_NAME == ADDR_CALLBRIDGE_MAX &&
                   CONF_MAX_FILE_NAME == ADDR_PKI_NAME_MAX,
               "conf.h's limits are addr.h's rules");

struct field {
    const char *p;
    size_t len;
};

/* Parsing state: the result being built and where we are. */
struct parser {
    struct conf *c;
    struct conf_error *err;
    unsigned line;
    size_t cap_listen, cap_cb;
};

static int fail(struct parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct parser *ps, const char *fmt, ...)
{
    va_list ap;

    ps->err->line = ps->line;
    va_start(ap, fmt);
    vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
    va_end(ap);
    return XE_CORRUPT;
}

/* utf8_valid checks s[0..len) is well-formed UTF-8 (RFC 3629 §4: no
 * overlongs, no surrogates, nothing above U+10FFFF) without NUL bytes. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp, min;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

static bool field_is(const struct field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

static bool name_ok(const struct field *f)
{
    return addr_callbridge_valid(f->p, f->len);
}

static bool secret_ok(const struct field *f)
{
    if (f->len == 0 || f->len > CONF_MAX_SECRET)
        return false;
    for (size_t i = 0; i < f->len; i++) {
        unsigned char ch = (unsigned char)f->p[i];
        if (ch < 0x21 || ch > 0x7E)
            return false;
    }
    return true;
}

/* parse_seconds reads a decimal 1..CONF_MAX_SECONDS. */
static bool parse_seconds(const struct field *f, unsigned *out)
{
    unsigned long v = 0;

    if (f->len == 0 || f->len > 6)
        return false;
    for (size_t i = 0; i < f->len; i++) {
        if (f->p[i] < '0' || f->p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(f->p[i] - '0');
    }
    if (v < 1 || v > CONF_MAX_SECONDS)
        return false;
    *out = (unsigned)v;
    return true;
}

/* parse_number reads a decimal number in min..max. */
static bool parse_number(const struct field *f, unsigned min, unsigned max, unsigned *out)
{
    unsigned long v = 0;

    if (f->len == 0 || f->len > 9)
        return false;
    for (size_t i = 0; i < f->len; i++) {
        if (f->p[i] < '0' || f->p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(f->p[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

int conf_listen_parse(const char *text, size_t len, struct conf_listen *out)
{
    char tmp[ADDR_TEXT_MAX + 1];
    struct addr a;

    /* Numeric only: the node must not depend on DNS to start. */
    if (len == 0 || len >= sizeof tmp || memchr(text, '\0', len) != NULL)
        return XE_INVAL;
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    if (addr_parse(tmp, ADDR_HOSTS_IP, 0, &a) < 0 || strlen(a.host) >= sizeof out->host)
        return XE_INVAL;
    memset(out, 0, sizeof *out);
    memcpy(out->host, a.host, strlen(a.host) + 1);
    out->port = a.port;
    return 0;
}

static int add_listen(struct parser *ps, const struct conf_listen *l)
{
    struct conf *c = ps->c;

    for (size_t i = 0; i < c->n_listen; i++) {
        if (c->listen[i].port == l->port && strcmp(c->listen[i].host, l->host) == 0)
            return fail(ps, "duplicate component-listen %s:%u", l->host, l->port);
    }
    if (c->n_listen == ps->cap_listen) {
        size_t ncap = ps->cap_listen ? ps->cap_listen * 2 : 4;
        struct conf_listen *n = realloc(c->listen, ncap * sizeof *n);
        if (n == NULL)
            return XE_NOMEM;
        c->listen = n;
        ps->cap_listen = ncap;
    }
    c->listen[c->n_listen++] = *l;
    return 0;
}

/* file_name_ok: a plain file name, as `xmpp certs` takes (pki_path). */
static bool file_name_ok(const struct field *f)
{
    return addr_pki_name_valid(f->p, f->len);
}

static int dup_field(const struct field *f, char **out)
{
    *out = malloc(f->len + 1);
    if (*out == NULL)
        return XE_NOMEM;
    memcpy(*out, f->p, f->len);
    (*out)[f->len] = '\0';
    return 0;
}

static int set_certs(struct parser *ps, const struct field *f, size_t nf)
{
    struct conf *c = ps->c;
    int rc;

    if (nf != 3 && nf != 4)
        return fail(ps, "certs needs two or three fields: certs <key> <cert> [<bundle>]");
    if (c->key != NULL)
        return fail(ps, "duplicate certs directive");
    for (size_t i = 1; i < nf; i++) {
        if (!file_name_ok(&f[i]))
            return fail(ps, "bad file name in certs (plain names of files in "
                            "<state-dir>/pki, no '/')");
    }
    rc = dup_field(&f[1], &c->key);
    if (rc == 0)
        rc = dup_field(&f[2], &c->cert);
    if (rc == 0 && nf == 4)
        rc = dup_field(&f[3], &c->bundle);
    return rc;
}

static int add_callbridge(struct parser *ps, const struct field *name,
                          const struct field *secret)
{
    struct conf *c = ps->c;
    struct conf_callbridge *cb;

    for (size_t i = 0; i < c->n_cb; i++) {
        if (field_is(name, c->cb[i].name))
            return fail(ps, "duplicate callbridge name '%s'", c->cb[i].name);
    }
    if (c->n_cb == ps->cap_cb) {
        size_t ncap = ps->cap_cb ? ps->cap_cb * 2 : 8;
        struct conf_callbridge *n = realloc(c->cb, ncap * sizeof *n);
        if (n == NULL)
            return XE_NOMEM;
        c->cb = n;
        ps->cap_cb = ncap;
    }
    cb = &c->cb[c->n_cb];
    memset(cb, 0, sizeof *cb);
    cb->secret = sodium_malloc(secret->len + 1);
    if (cb->secret == NULL)
        return XE_NOMEM;
    memcpy(cb->name, name->p, name->len);
    cb->name[name->len] = '\0';
    memcpy(cb->secret, secret->p, secret->len);
    cb->secret[secret->len] = '\0';
    cb->secret_len = secret->len;
    c->n_cb++;
    return 0;
}

/* directive handles one non-blank, non-comment line split into fields. */
static int directive(struct parser *ps, const struct field *f, size_t nf)
{
    struct conf *c = ps->c;
    struct conf_listen l;

    if (field_is(&f[0], "domain")) {
        if (nf != 2)
            return fail(ps, "domain needs exactly one field: domain <name>");
        if (c->domain != NULL)
            return fail(ps, "duplicate domain directive");
        c->domain = malloc(f[1].len + 1);
        if (c->domain == NULL)
            return XE_NOMEM;
        for (size_t i = 0; i < f[1].len; i++)
            c->domain[i] = (char)tolower((unsigned char)f[1].p[i]);
        c->domain[f[1].len] = '\0';
        /* The same rule as every JID's domainpart (RFC 7622 §3.2). */
        if (!jid_domain_valid(c->domain))
            return fail(ps, "bad domain (expected a DNS name such as example.com)");
        return 0;
    }
    if (field_is(&f[0], "component-listen")) {
        if (nf != 2)
            return fail(ps, "component-listen needs exactly one field: "
                            "component-listen <address>:<port>");
        if (conf_listen_parse(f[1].p, f[1].len, &l) < 0)
            return fail(ps, "bad address '%.*s' (expected 1.2.3.4:5223 or [::1]:5223)",
                        (int)(f[1].len > 80 ? 80 : f[1].len), f[1].p);
        return add_listen(ps, &l);
    }
    if (field_is(&f[0], "keepalive") || field_is(&f[0], "auth-timeout")) {
        bool ka = field_is(&f[0], "keepalive");
        if (nf != 2 || !parse_seconds(&f[1], ka ? &c->keepalive_s : &c->auth_timeout_s))
            return fail(ps, "%s needs one number of seconds, 1..%u",
                        ka ? "keepalive" : "auth-timeout", CONF_MAX_SECONDS);
        return 0;
    }
    if (field_is(&f[0], "max-connections") ||
        field_is(&f[0], "max-connections-per-address")) {
        bool total = field_is(&f[0], "max-connections");
        if (nf != 2 || !parse_number(&f[1], 1, CONF_MAX_CONNS,
                                     total ? &c->max_conns : &c->max_conns_per_addr))
            return fail(ps, "%s needs one number, 1..%u",
                        total ? "max-connections" : "max-connections-per-address",
                        CONF_MAX_CONNS);
        return 0;
    }
    if (field_is(&f[0], "preauth-stanza-bytes")) {
        if (nf != 2 ||
            !parse_number(&f[1], CONF_MIN_PREAUTH_STANZA_BYTES,
                          CONF_MAX_PREAUTH_STANZA_BYTES, &c->preauth_stanza_bytes))
            return fail(ps, "preauth-stanza-bytes needs one number, %u..%u",
                        CONF_MIN_PREAUTH_STANZA_BYTES, CONF_MAX_PREAUTH_STANZA_BYTES);
        return 0;
    }
    if (field_is(&f[0], "certs"))
        return set_certs(ps, f, nf);
    if (field_is(&f[0], "component-tls")) {
        static const enum conf_tls modes[] = {CONF_TLS_OFF, CONF_TLS_OPTIONAL,
                                              CONF_TLS_REQUIRED};
        if (c->component_tls != CONF_TLS_UNSET)
            return fail(ps, "duplicate component-tls directive");
        for (size_t i = 0; nf == 2 && i < sizeof modes / sizeof modes[0]; i++) {
            if (field_is(&f[1], conf_tls_name(modes[i])))
                c->component_tls = modes[i];
        }
        if (c->component_tls == CONF_TLS_UNSET)
            return fail(ps, "component-tls needs one of: off, optional, required");
        return 0;
    }
    if (field_is(&f[0], "callbridge")) {
        if (nf != 3)
            return fail(
                ps, "callbridge needs exactly two fields: callbridge <name> <secret>");
        if (!name_ok(&f[1]))
            return fail(ps, "bad callbridge name (1..%d letters, digits or '-')",
                        CONF_MAX_NAME);
        if (!secret_ok(&f[2]))
            return fail(ps,
                        "bad secret for callbridge '%.*s' (1..%d printable "
                        "non-space ASCII characters)",
                        (int)f[1].len, f[1].p, CONF_MAX_SECRET);
        return add_callbridge(ps, &f[1], &f[2]);
    }
    /* Quote at most 32 bytes of what we did not understand, and only when it
     * is plain ASCII followed by arguments, as a mistyped directive is.  A
     * lone word may be a secret that slipped onto a line of its own (a
     * wrapped callbridge line), and secrets are plain ASCII too: the message
     * reaches logs and the admin shell, so it is not quoted. */
    if (nf < 2)
        return fail(ps, "unknown directive (a lone word; directives take arguments)");
    for (size_t i = 0; i < f[0].len; i++) {
        if ((unsigned char)f[0].p[i] < 0x21 || (unsigned char)f[0].p[i] > 0x7E)
            return fail(ps, "unknown directive");
    }
    return fail(ps, "unknown directive '%.*s'", (int)(f[0].len > 32 ? 32 : f[0].len),
                f[0].p);
}

/* split_fields splits a line at spaces and tabs into at most MAX_FIELDS;
 * returns the count, or MAX_FIELDS + 1 when there are more. */
static size_t split_fields(const char *p, size_t len, struct field *f)
{
    size_t n = 0, i = 0;

    while (i < len) {
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == len)
            break;
        if (n == MAX_FIELDS)
            return MAX_FIELDS + 1;
        f[n].p = p + i;
        while (i < len && p[i] != ' ' && p[i] != '\t')
            i++;
        f[n].len = (size_t)(p + i - f[n].p);
        n++;
    }
    return n;
}

int conf_parse(const char *text, size_t len, struct conf *out, struct conf_error *err)
{
    struct parser ps = {.c = out, .err = err, .line = 0};
    size_t pos = 0;
    int rc;

    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->keepalive_s = CONF_DEFAULT_KEEPALIVE_S;
    out->auth_timeout_s = CONF_DEFAULT_AUTH_TIMEOUT_S;
    out->max_conns = CONF_DEFAULT_MAX_CONNS;
    out->max_conns_per_addr = CONF_DEFAULT_MAX_CONNS_PER_ADDR;
    out->preauth_stanza_bytes = CONF_DEFAULT_PREAUTH_STANZA_BYTES;

    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t llen = end - pos;
        const char *lp = text + pos;
        struct field f[MAX_FIELDS];
        size_t nf, first = 0;

        ps.line++;
        pos = nl ? end + 1 : len;
        if (llen > 0 && lp[llen - 1] == '\r')
            llen--;
        if (!utf8_valid((const unsigned char *)lp, llen)) {
            rc = fail(&ps, "not valid UTF-8 text");
            goto err;
        }
        while (first < llen && (lp[first] == ' ' || lp[first] == '\t'))
            first++;
        if (first == llen || lp[first] == '#')
            continue;
        for (size_t i = first; i < llen; i++) {
            if ((unsigned char)lp[i] < 0x20 && lp[i] != '\t') {
                rc = fail(&ps, "control character in line");
                goto err;
            }
        }
        nf = split_fields(lp, llen, f);
        if (nf > MAX_FIELDS) {
            rc = fail(&ps, "too many fields");
            goto err;
        }
        rc = directive(&ps, f, nf);
        if (rc < 0)
            goto err;
    }
    if (ps.line == 0)
        ps.line = 1;
    if (out->domain == NULL) {
        rc = fail(&ps, "no domain directive (add a line: domain example.com)");
        goto err;
    }
    if (out->component_tls == CONF_TLS_REQUIRED && out->key == NULL) {
        rc = fail(&ps, "component-tls required needs a certs line: certs <key> <cert> "
                       "[<bundle>]");
        goto err;
    }
    if (out->component_tls == CONF_TLS_UNSET)
        out->component_tls = out->key != NULL ? CONF_TLS_OPTIONAL : CONF_TLS_OFF;
    if (out->n_listen == 0) {
        struct conf_listen l = {.host = CONF_DEFAULT_LISTEN_HOST,
                                .port = CONF_DEFAULT_PORT};
        rc = add_listen(&ps, &l);
        if (rc < 0)
            goto err;
    }
    return 0;

err:
    if (rc == XE_NOMEM)
        fail(&ps, "out of memory");
    conf_free(out);
    return rc;
}

void conf_free(struct conf *c)
{
    for (size_t i = 0; i < c->n_cb; i++)
        sodium_free(c->cb[i].secret);
    free(c->cb);
    free(c->listen);
    free(c->domain);
    free(c->key);
    free(c->cert);
    free(c->bundle);
    memset(c, 0, sizeof *c);
}

const struct conf_callbridge *conf_find_callbridge(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_cb; i++) {
        if (strcmp(c->cb[i].name, name) == 0)
            return &c->cb[i];
    }
    return NULL;
}

const char *conf_tls_name(enum conf_tls t)
{
    switch (t) {
    case CONF_TLS_OFF:
        return "off";
    case CONF_TLS_OPTIONAL:
        return "optional";
    case CONF_TLS_REQUIRED:
        return "required";
    case CONF_TLS_UNSET:
        break;
    }
    return "unset";
}

void conf_format_listen(const struct conf_listen *l, char *out, size_t outlen)
{
    addr_join(l->host, l->port, out, outlen);
}
