/* conffile_parse.h: the node configuration file, parsed from text.
 *
 * <state-dir>/xmppd.conf is an import (docs/admin.md, "xmppd.conf: the
 * import"): at start and on SIGHUP its listeners, timers and limits go to
 * the node's state file, and its domain and call-bridge secrets bootstrap
 * the replicated state only while that is empty (xmppd/io/node.c).
 * This module only parses text that the edge has already read (the file's
 * permission check and the read itself live in xmppd/io/conffile.c), so a
 * test can feed it any string.
 *
 * Format: UTF-8 text, one directive per line, fields separated by spaces or
 * tabs, '#' as the first non-blank character starts a comment line, blank
 * lines are ignored:
 *
 *     domain example.com
 *     component-listen 127.0.0.1:5223     repeatable; default 0.0.0.0:5223
 *     keepalive 60                        seconds, optional, default 60
 *     auth-timeout 10                     seconds, optional, default 10
 *     max-connections 4096                component connections open at
 *                                         once, optional (1..1000000)
 *     max-connections-per-address 128     of those from one IP address,
 *                                         optional (1..1000000)
 *     preauth-stanza-bytes 4096           bytes of a stanza before the
 *                                         component authenticated, optional
 *                                         (256..262144)
 *     callbridge cb1 <secret>             repeatable
 *     certs <key> <cert> [<bundle>]       optional; file names in
 *                                         <state-dir>/pki/, as `xmpp certs`
 *     component-tls off|optional|required optional; default optional with
 *                                         certs, off without (docs/tls.md)
 *
 * A call-bridge name is 1..63 letters, digits and '-' (it becomes the DNS
 * label of the component <name>.<domain>); a secret is 1..1024 printable
 * non-space ASCII characters.  Secrets are held in sodium_malloc memory and
 * wiped on release; error messages never quote a secret. */
#ifndef XMPPD_CONFFILE_PARSE_H
#define XMPPD_CONFFILE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define CONF_DEFAULT_LISTEN_HOST "0.0.0.0"
#define CONF_DEFAULT_PORT 5223
#define CONF_DEFAULT_KEEPALIVE_S 60
#define CONF_DEFAULT_AUTH_TIMEOUT_S 10
#define CONF_MAX_NAME 63 /* ADDR_CALLBRIDGE_MAX */
#define CONF_MAX_SECRET 1024
#define CONF_MAX_SECONDS 86400
#define CONF_MAX_FILE_NAME 255 /* ADDR_PKI_NAME_MAX */
/* Connection limits of the XMPP listeners (docs/admin.md
 * "Limits"); the total is also held below the process's descriptor limit. */
#define CONF_DEFAULT_MAX_CONNS 4096
#define CONF_DEFAULT_MAX_CONNS_PER_ADDR 128
#define CONF_MAX_CONNS 1000000
#define CONF_DEFAULT_PREAUTH_STANZA_BYTES 4096
#define CONF_MIN_PREAUTH_STANZA_BYTES 256
#define CONF_MAX_PREAUTH_STANZA_BYTES 262144

/* TLS on the component listeners (docs/tls.md).  After a successful parse
 * it is never CONF_TLS_UNSET. */
enum conf_tls {
    CONF_TLS_UNSET = 0,
    CONF_TLS_OFF,
    CONF_TLS_OPTIONAL, /* direct TLS or plaintext, by the first byte */
    CONF_TLS_REQUIRED, /* direct TLS only; needs certs */
};

struct conf_listen {
    char host[64]; /* numeric IPv4 or IPv6 address, without brackets */
    uint16_t port; /* 1..65535 */
};

struct conf_callbridge {
    char name[CONF_MAX_NAME + 1];
    unsigned char *secret; /* owned, sodium_malloc'd, NUL-terminated */
    size_t secret_len;     /* bytes, without the NUL */
};

struct conf {
    char *domain;                  /* owned, lower-cased */
    struct conf_listen *listen;    /* owned array */
    size_t n_listen;               /* >= 1 after a successful parse */
    unsigned keepalive_s;          /* 1..CONF_MAX_SECONDS */
    unsigned auth_timeout_s;       /* 1..CONF_MAX_SECONDS */
    unsigned max_conns;            /* 1..CONF_MAX_CONNS */
    unsigned max_conns_per_addr;   /* 1..CONF_MAX_CONNS */
    unsigned preauth_stanza_bytes; /* CONF_MIN_..CONF_MAX_PREAUTH_STANZA_BYTES */
    struct conf_callbridge *cb;    /* owned array */
    size_t n_cb;
    /* certs: plain file names (no '/', no leading '.') inside the node's
     * pki directory; owned; all NULL without a certs line, bundle NULL when
     * the line has two fields. */
    char *key, *cert, *bundle;
    enum conf_tls component_tls;
};

/* Where and why parsing failed.  line is 1-based; for a file-wide problem
 * (no domain) it is the number of the last line (1 for an empty file). */
struct conf_error {
    unsigned line;
    char msg[200];
};

/* conf_parse parses len bytes of text (borrowed; need not be
 * NUL-terminated) into *out, which must be zeroed or freshly conf_free'd;
 * on success *out owns everything and is released with conf_free.  Returns
 * 0, XE_CORRUPT (malformed; *err says where and why, *out is left empty) or
 * XE_NOMEM.  sodium_init() must have succeeded (secrets go to sodium_malloc
 * memory). */
int conf_parse(const char *text, size_t len, struct conf *out, struct conf_error *err);

/* conf_free releases everything in c (wiping secrets) and zeroes it. */
void conf_free(struct conf *c);

/* conf_find_callbridge returns the call bridge called name (borrowed from
 * c), or NULL. */
const struct conf_callbridge *conf_find_callbridge(const struct conf *c,
                                                   const char *name);

/* conf_listen_parse reads len bytes of text (borrowed; need not be
 * NUL-terminated) as "a.b.c.d:port" or "[v6]:port" (addr.h's rule, numeric
 * hosts only, port required) into *out.  0 or XE_INVAL. */
int conf_listen_parse(const char *text, size_t len, struct conf_listen *out);

/* conf_tls_name returns "off", "optional", "required" (or "unset"). */
const char *conf_tls_name(enum conf_tls t);

/* conf_format_listen writes "host:port" ("[v6]:port" for IPv6) into out. */
void conf_format_listen(const struct conf_listen *l, char *out, size_t outlen);

#endif
