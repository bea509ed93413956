/* addr.c: addresses and names, one copy of each rule (contract in
 * addr.h). */
#include "addr.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "jid.h"

/* ---- addresses ---- */

/* ip_kind returns ADDR_KIND_IPV4 or ADDR_KIND_IPV6 for a numeric host
 * (into a[16] when a is not NULL), or 0. */
static int ip_kind(const char *host, unsigned char *a)
{
    unsigned char tmp[16];

    if (a == NULL)
        a = tmp;
    if (inet_pton(AF_INET, host, a) == 1)
        return ADDR_KIND_IPV4;
    if (inet_pton(AF_INET6, host, a) == 1)
        return ADDR_KIND_IPV6;
    return 0;
}

/* parse_port reads 1..5 digits with a value 1..65535 (no sign, no blank:
 * strtol's leniency let "+7" and " 7" through one of the old copies). */
static int parse_port(const char *p, uint16_t *out)
{
    unsigned long v = 0;
    size_t n = strlen(p);

    if (n == 0 || n > 5)
        return XE_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return XE_INVAL;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return XE_INVAL;
    *out = (uint16_t)v;
    return 0;
}

/* split finds the host (*host, *hl bytes, no brackets) and the port text
 * (*port, NULL when none) of s by the rule in addr.h; XE_INVAL for bad
 * brackets or an empty host. */
static int split(const char *s, const char **host, size_t *hl, const char **port)
{
    const char *first = strchr(s, ':'), *rb;

    *host = s;
    *port = NULL;
    if (s[0] == '[') {
        /* RFC 3986 §3.2.2: an IP-literal in brackets. */
        rb = strchr(s, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
            return XE_INVAL;
        *host = s + 1;
        *hl = (size_t)(rb - *host);
        *port = rb[1] == ':' ? rb + 2 : NULL;
    } else if (first != NULL && strchr(first + 1, ':') == NULL) {
        *hl = (size_t)(first - s); /* one colon: host:port */
        *port = first + 1;
    } else {
        *hl = strlen(s); /* no colon, or a bare IPv6 address */
    }
    return *hl > 0 ? 0 : XE_INVAL;
}

int addr_parse(const char *s, enum addr_hosts hosts, uint16_t default_port,
               struct addr *out)
{
    const char *host, *port;
    size_t hl;
    int kind;

    if (s == NULL || split(s, &host, &hl, &port) < 0 || hl > ADDR_HOST_MAX)
        return XE_INVAL;
    memcpy(out->host, host, hl);
    out->host[hl] = '\0';
    out->port = default_port;
    if (port != NULL && parse_port(port, &out->port) < 0)
        return XE_INVAL;
    if (out->port == 0)
        return XE_INVAL;
    kind = ip_kind(out->host, NULL);
    if (s[0] == '[' || strchr(out->host, ':') != NULL) {
        /* Brackets, or colons in the host, mean IPv6 and nothing else. */
        if (kind != ADDR_KIND_IPV6)
            return XE_INVAL;
    } else if (kind == 0) {
        bool name_ok =
            (hosts == ADDR_HOSTS_DNS && jid_dns_name_valid(out->host, false)) ||
            (hosts == ADDR_HOSTS_IFACE && addr_iface_valid(out->host));
        if (!name_ok)
            return XE_INVAL;
        kind = ADDR_KIND_NAME;
    }
    out->kind = (enum addr_kind)kind;
    return 0;
}

int addr_host_of(const char *s, char *out, size_t cap)
{
    const char *host, *port;
    size_t hl;

    if (s == NULL || split(s, &host, &hl, &port) < 0 || hl >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return XE_INVAL;
    }
    memcpy(out, host, hl);
    out[hl] = '\0';
    return 0;
}

int addr_join(const char *host, unsigned port, char *out, size_t len)
{
    int k =
        snprintf(out, len, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host, port);

    if (k < 0 || (size_t)k >= len) {
        if (len > 0)
            out[0] = '\0';
        return XE_INVAL;
    }
    return 0;
}

int addr_format(const struct addr *a, char *out, size_t len)
{
    return addr_join(a->host, a->port, out, len);
}

bool addr_is_ip(const char *host)
{
    return ip_kind(host, NULL) != 0;
}

bool addr_host_same(const char *x, const char *y)
{
    unsigned char a[16], b[16];
    int xk = ip_kind(x, a), yk = ip_kind(y, b);

    if (xk != 0 || yk != 0)
        return xk == yk && memcmp(a, b, xk == ADDR_KIND_IPV4 ? 4 : 16) == 0;
    return strcasecmp(x, y) == 0;
}

bool addr_same(const char *x, const char *y, enum addr_hosts hosts, uint16_t default_port)
{
    struct addr ax, ay;

    if (addr_parse(x, hosts, default_port, &ax) < 0 ||
        addr_parse(y, hosts, default_port, &ay) < 0)
        return false;
    return ax.port == ay.port && addr_host_same(ax.host, ay.host);
}

/* ---- names ---- */

static bool ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool addr_iface_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > ADDR_IFACE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!ascii_alnum(c) && c != '-' && c != '_' && c != '.')
            return false;
    }
    return true;
}

void addr_node_id_hex(uint64_t id, char *out)
{
    snprintf(out, ADDR_NODE_ID_HEX + 1, "%016" PRIx64, id);
}

bool addr_node_id_prefix_valid(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= ADDR_NODE_ID_HEX && strspn(s, "0123456789abcdefABCDEF") == n;
}

bool addr_callbridge_valid(const char *s, size_t len)
{
    if (len == 0 || len > ADDR_CALLBRIDGE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        /* By byte value: isalnum() follows the locale, and under a Latin-1
         * locale it took bytes such as 0xe9 as letters. */
        if (!ascii_alnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

bool addr_pki_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > ADDR_PKI_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}
