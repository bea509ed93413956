/* node_state.c: the node-local state file: format, checksum, atomic replace
 * (contract in node_state.h). */
#include "node_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "conffile.h"
#include "buf.h"
#include "addr.h"
#include "err.h"
#include "ws.h"

#define HASH_LEN 16

static int sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

const struct node_state_sys state_sys_posix = {
    .open = sys_open,
    .write = write,
    .fsync = fsync,
    .close = close,
    .rename = rename,
};

const char *node_state_tls_name(enum node_state_tls t)
{
    switch (t) {
    case NODE_STATE_TLS_OFF:
        return "off";
    case NODE_STATE_TLS_REQUIRED:
        return "required";
    case NODE_STATE_TLS_OPTIONAL:
        break;
    }
    return "optional";
}

int node_state_tls_parse(const char *name, enum node_state_tls *out)
{
    if (strcmp(name, "off") == 0)
        *out = NODE_STATE_TLS_OFF;
    else if (strcmp(name, "optional") == 0)
        *out = NODE_STATE_TLS_OPTIONAL;
    else if (strcmp(name, "required") == 0)
        *out = NODE_STATE_TLS_REQUIRED;
    else
        return XE_INVAL;
    return 0;
}

void node_state_node_id_hex(uint64_t id, char *out)
{
    addr_node_id_hex(id, out);
}

void node_state_new_id(struct node_state *s)
{
    uint64_t id = 0;

    while (id == 0)
        randombytes_buf(&id, sizeof id);
    s->node_id = id;
}

/* settings_defaults clears s and sets every setting to its default, the
 * node id aside.  A file written before a group of settings existed (the
 * client, client limit and WebSocket lines) reads as these defaults. */
static void settings_defaults(struct node_state *s)
{
    memset(s, 0, sizeof *s);
    s->tls = NODE_STATE_TLS_OPTIONAL;
    s->keepalive_s = CONF_DEFAULT_KEEPALIVE_S;
    s->auth_timeout_s = CONF_DEFAULT_AUTH_TIMEOUT_S;
    s->max_conns = CONF_DEFAULT_MAX_CONNS;
    s->max_conns_per_addr = CONF_DEFAULT_MAX_CONNS_PER_ADDR;
    s->preauth_stanza_bytes = CONF_DEFAULT_PREAUTH_STANZA_BYTES;
    s->client_port = NODE_STATE_DEFAULT_CLIENT_PORT;
    s->client_tls = NODE_STATE_TLS_REQUIRED;
    s->client_max_sessions = NODE_STATE_DEFAULT_CLIENT_MAX_SESSIONS;
    s->client_rate = NODE_STATE_DEFAULT_CLIENT_RATE;
    s->ws_port = NODE_STATE_DEFAULT_WS_PORT;
    s->wss_port = NODE_STATE_DEFAULT_WSS_PORT;
    snprintf(s->ws_path, sizeof s->ws_path, "%s", NODE_STATE_DEFAULT_WS_PATH);
}

void node_state_defaults(struct node_state *s)
{
    settings_defaults(s);
    node_state_new_id(s);
}

bool node_state_ws_path_ok(const char *p)
{
    size_t n = strlen(p);

    /* An absolute path, printable ASCII without spaces (it goes into
     * URLs and into this file as one word). */
    if (n == 0 || n >= NODE_STATE_MAX_WS_PATH || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '?' || p[i] == '#')
            return false;
    return true;
}

bool node_state_ws_origin_ok(const char *o)
{
    size_t n = strlen(o), i = 0;
    const char *sep = strstr(o, "://");

    if (n == 0 || n >= NODE_STATE_MAX_WS_ORIGIN || sep == NULL || sep == o ||
        sep[3] == '\0')
        return false;
    for (; o + i < sep; i++)
        if (!((o[i] >= 'a' && o[i] <= 'z') ||
              (i > 0 && ((o[i] >= '0' && o[i] <= '9') || strchr("+-.", o[i]) != NULL))))
            return false;
    for (i += 3; i < n; i++)
        if (o[i] <= ' ' || o[i] >= 0x7f || (o[i] >= 'A' && o[i] <= 'Z') ||
            strchr("/?#@", o[i]) != NULL)
            return false;
    return true;
}

/* ---- formatting ---- */

/* clean: a value written on one line must have no control characters and
 * no leading or trailing blank (it would not read back the same). */
static bool clean(const char *s)
{
    size_t n = strlen(s);

    if (n > 0 && (s[0] == ' ' || s[n - 1] == ' '))
        return false;
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

static void hash_hex(const char *text, size_t len, char *hex)
{
    unsigned char h[HASH_LEN];

    crypto_generichash(h, sizeof h, (const unsigned char *)text, len, NULL, 0);
    sodium_bin2hex(hex, HASH_LEN * 2 + 1, h, sizeof h);
}

int node_state_format(const struct node_state *s, char *buf, size_t len)
{
    struct buf_fixed o = {.p = buf, .len = len};
    char id[17], addr[96], hex[HASH_LEN * 2 + 1];

    if (!clean(s->key) || !clean(s->cert) || !clean(s->bundle) || !clean(s->trust))
        return XE_INVAL;
    if (len > 0)
        buf[0] = '\0';
    node_state_node_id_hex(s->node_id, id);
    buf_fixed_printf(&o,
                     "# xmppd node state; written by xmppd, do not edit (checksummed)\n");
    buf_fixed_printf(&o, "version %d\n", NODE_STATE_VERSION);
    buf_fixed_printf(&o, "node-id %s\n", id);
    buf_fixed_printf(&o, "xmpp-enabled %s\n", s->xmpp_enabled ? "yes" : "no");
    for (size_t i = 0; i < s->n_listen; i++) {
        conf_format_listen(&s->listen[i], addr, sizeof addr);
        buf_fixed_printf(&o, "component-listen %s\n", addr);
    }
    buf_fixed_printf(&o, "tls %s\n", node_state_tls_name(s->tls));
    if (s->key[0] != '\0')
        buf_fixed_printf(&o, "key %s\n", s->key);
    if (s->cert[0] != '\0')
        buf_fixed_printf(&o, "cert %s\n", s->cert);
    if (s->bundle[0] != '\0')
        buf_fixed_printf(&o, "bundle %s\n", s->bundle);
    buf_fixed_printf(&o, "keepalive %u\n", s->keepalive_s);
    buf_fixed_printf(&o, "auth-timeout %u\n", s->auth_timeout_s);
    buf_fixed_printf(&o, "max-connections %u\n", s->max_conns);
    buf_fixed_printf(&o, "max-connections-per-address %u\n", s->max_conns_per_addr);
    buf_fixed_printf(&o, "preauth-stanza-bytes %u\n", s->preauth_stanza_bytes);
    buf_fixed_printf(&o, "client-port %u\n", s->client_port);
    buf_fixed_printf(&o, "client-tls-port %u\n", s->client_tls_port);
    buf_fixed_printf(&o, "client-tls %s\n", node_state_tls_name(s->client_tls));
    buf_fixed_printf(&o, "sasl-plain %s\n", s->sasl_plain ? "yes" : "no");
    buf_fixed_printf(&o, "client-max-sessions %u\n", s->client_max_sessions);
    buf_fixed_printf(&o, "client-rate %u\n", s->client_rate);
    buf_fixed_printf(&o, "client-version %s\n", s->client_version ? "yes" : "no");
    buf_fixed_printf(&o, "ws-port %u\n", s->ws_port);
    buf_fixed_printf(&o, "wss-port %u\n", s->wss_port);
    buf_fixed_printf(&o, "ws-path %s\n", s->ws_path);
    for (size_t i = 0; i < s->n_ws_origins; i++)
        buf_fixed_printf(&o, "ws-origin %s\n", s->ws_origins[i]);
    for (size_t i = 0; i < s->n_ws_proxies; i++)
        buf_fixed_printf(&o, "ws-proxy %s\n", s->ws_proxies[i]);
    buf_fixed_printf(&o, "cluster-enabled %s\n", s->cluster_enabled ? "yes" : "no");
    if (s->trust[0] != '\0')
        buf_fixed_printf(&o, "trust %s\n", s->trust);
    if (s->peer.port != 0) {
        conf_format_listen(&s->peer, addr, sizeof addr);
        buf_fixed_printf(&o, "peer-listen %s\n", addr);
    }
    if (s->raft_fast_lan)
        buf_fixed_printf(&o, "raft-timing fast-lan\n");
    if (s->metrics.port != 0) {
        conf_format_listen(&s->metrics, addr, sizeof addr);
        buf_fixed_printf(&o, "metrics-listen %s\n", addr);
    }
    if (s->draining)
        buf_fixed_printf(&o, "draining yes\n");
    if (o.full)
        return XE_LIMIT;
    hash_hex(buf, o.used, hex);
    buf_fixed_printf(&o, "checksum %s\n", hex);
    if (o.full)
        return XE_LIMIT;
    return (int)o.used;
}

/* ---- parsing ---- */

static int bad(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return XE_CORRUPT;
}

/* parse_addr reads "1.2.3.4:5223" or "[v6]:5223" (conf_listen_parse). */
static bool parse_addr(const char *v, struct conf_listen *out)
{
    return conf_listen_parse(v, strlen(v), out) == 0;
}

static bool parse_yes_no(const char *v, bool *out)
{
    if (strcmp(v, "yes") == 0)
        *out = true;
    else if (strcmp(v, "no") == 0)
        *out = false;
    else
        return false;
    return true;
}

static bool parse_uint(const char *v, unsigned max, unsigned *out)
{
    char *end;
    unsigned long n;

    if (*v < '0' || *v > '9')
        return false;
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 1 || n > max)
        return false;
    *out = (unsigned)n;
    return true;
}

static bool set_path(char *dst, const char *v)
{
    if (strlen(v) >= NODE_STATE_MAX_PATH || v[0] == '\0')
        return false;
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

/* line parses one "key value" line (NUL-terminated, no newline). */
static int line(struct node_state *s, const char *key, const char *v, bool *seen_version,
                bool *seen_id, char *why, size_t whylen)
{
    bool ok = true;

    if (strcmp(key, "version") == 0) {
        unsigned ver;
        if (!parse_uint(v, 1000000, &ver))
            return bad(why, whylen, "bad version line");
        if (ver != NODE_STATE_VERSION)
            return bad(why, whylen,
                       "version %u is not the version this xmppd reads (%d): it was "
                       "written by another release",
                       ver, NODE_STATE_VERSION);
        *seen_version = true;
    } else if (!*seen_version) {
        return bad(why, whylen, "the first line is not the version line");
    } else if (strcmp(key, "node-id") == 0) {
        char *end;
        errno = 0;
        s->node_id = strtoull(v, &end, 16);
        ok = strlen(v) == 16 && *end == '\0' && errno == 0 && s->node_id != 0;
        *seen_id = ok;
    } else if (strcmp(key, "xmpp-enabled") == 0) {
        ok = parse_yes_no(v, &s->xmpp_enabled);
    } else if (strcmp(key, "component-listen") == 0) {
        ok =
            s->n_listen < NODE_STATE_MAX_LISTEN && parse_addr(v, &s->listen[s->n_listen]);
        if (ok)
            s->n_listen++;
    } else if (strcmp(key, "tls") == 0) {
        ok = node_state_tls_parse(v, &s->tls) == 0;
    } else if (strcmp(key, "key") == 0) {
        ok = set_path(s->key, v);
    } else if (strcmp(key, "cert") == 0) {
        ok = set_path(s->cert, v);
    } else if (strcmp(key, "bundle") == 0) {
        ok = set_path(s->bundle, v);
    } else if (strcmp(key, "keepalive") == 0) {
        ok = parse_uint(v, CONF_MAX_SECONDS, &s->keepalive_s);
    } else if (strcmp(key, "auth-timeout") == 0) {
        ok = parse_uint(v, CONF_MAX_SECONDS, &s->auth_timeout_s);
    } else if (strcmp(key, "max-connections") == 0) {
        ok = parse_uint(v, CONF_MAX_CONNS, &s->max_conns);
    } else if (strcmp(key, "max-connections-per-address") == 0) {
        ok = parse_uint(v, CONF_MAX_CONNS, &s->max_conns_per_addr);
    } else if (strcmp(key, "preauth-stanza-bytes") == 0) {
        ok = parse_uint(v, CONF_MAX_PREAUTH_STANZA_BYTES, &s->preauth_stanza_bytes) &&
             s->preauth_stanza_bytes >= CONF_MIN_PREAUTH_STANZA_BYTES;
    } else if (strcmp(key, "client-port") == 0) {
        /* 0 turns the client listener off. */
        ok = strcmp(v, "0") == 0 ? (s->client_port = 0, true)
                                 : parse_uint(v, 65535, &s->client_port);
    } else if (strcmp(key, "client-tls-port") == 0) {
        ok = strcmp(v, "0") == 0 ? (s->client_tls_port = 0, true)
                                 : parse_uint(v, 65535, &s->client_tls_port);
    } else if (strcmp(key, "ws-port") == 0) {
        ok = strcmp(v, "0") == 0 ? (s->ws_port = 0, true)
                                 : parse_uint(v, 65535, &s->ws_port);
    } else if (strcmp(key, "wss-port") == 0) {
        ok = strcmp(v, "0") == 0 ? (s->wss_port = 0, true)
                                 : parse_uint(v, 65535, &s->wss_port);
    } else if (strcmp(key, "ws-path") == 0) {
        ok = node_state_ws_path_ok(v);
        if (ok)
            snprintf(s->ws_path, sizeof s->ws_path, "%s", v);
    } else if (strcmp(key, "ws-origin") == 0) {
        ok = s->n_ws_origins < NODE_STATE_MAX_WS_ORIGINS && node_state_ws_origin_ok(v);
        if (ok)
            snprintf(s->ws_origins[s->n_ws_origins++], NODE_STATE_MAX_WS_ORIGIN, "%s", v);
    } else if (strcmp(key, "ws-proxy") == 0) {
        ok = s->n_ws_proxies < NODE_STATE_MAX_WS_PROXIES &&
             strlen(v) < NODE_STATE_MAX_WS_PROXY && ws_proxy_valid(v);
        if (ok)
            snprintf(s->ws_proxies[s->n_ws_proxies++], NODE_STATE_MAX_WS_PROXY, "%s", v);
    } else if (strcmp(key, "client-tls") == 0) {
        ok = node_state_tls_parse(v, &s->client_tls) == 0 &&
             s->client_tls != NODE_STATE_TLS_OFF;
    } else if (strcmp(key, "sasl-plain") == 0) {
        ok = parse_yes_no(v, &s->sasl_plain);
    } else if (strcmp(key, "client-max-sessions") == 0) {
        ok = strcmp(v, "0") == 0 ? (s->client_max_sessions = 0, true)
                                 : parse_uint(v, NODE_STATE_MAX_CLIENT_MAX_SESSIONS,
                                              &s->client_max_sessions);
    } else if (strcmp(key, "client-rate") == 0) {
        ok = strcmp(v, "0") == 0
                 ? (s->client_rate = 0, true)
                 : parse_uint(v, NODE_STATE_MAX_CLIENT_RATE, &s->client_rate) &&
                       s->client_rate >= NODE_STATE_MIN_CLIENT_RATE;
    } else if (strcmp(key, "client-version") == 0) {
        ok = parse_yes_no(v, &s->client_version);
    } else if (strcmp(key, "cluster-enabled") == 0) {
        ok = parse_yes_no(v, &s->cluster_enabled);
    } else if (strcmp(key, "trust") == 0) {
        ok = set_path(s->trust, v);
    } else if (strcmp(key, "peer-listen") == 0) {
        ok = parse_addr(v, &s->peer);
    } else if (strcmp(key, "raft-timing") == 0) {
        ok = strcmp(v, "fast-lan") == 0 || strcmp(v, "default") == 0;
        s->raft_fast_lan = strcmp(v, "fast-lan") == 0;
    } else if (strcmp(key, "metrics-listen") == 0) {
        ok = parse_addr(v, &s->metrics);
    } else if (strcmp(key, "draining") == 0) {
        ok = parse_yes_no(v, &s->draining);
    } else {
        return bad(why, whylen, "unknown key '%.32s'", key);
    }
    if (!ok)
        return bad(why, whylen, "bad value for %.32s", key);
    return 0;
}

int node_state_parse(const char *text, size_t len, struct node_state *out, char *why,
                     size_t whylen)
{
    const char *sum;
    size_t body;
    char want[HASH_LEN * 2 + 1], lbuf[NODE_STATE_MAX_PATH + 64];
    bool seen_version = false, seen_id = false;
    size_t pos = 0;
    unsigned lineno = 0;
    int rc;

    settings_defaults(out);
    if (len == 0)
        return bad(why, whylen, "the file is empty (a write was cut short)");
    if (memchr(text, '\0', len) != NULL)
        return bad(why, whylen, "the file holds NUL bytes (damaged)");
    /* The checksum line is the last line and ends with a newline: without
     * it the file is truncated. */
    if (text[len - 1] != '\n')
        return bad(why, whylen, "the file is truncated (its last line is incomplete)");
    body = len - 1;
    while (body > 0 && text[body - 1] != '\n')
        body--;
    sum = text + body;
    if (len - body != strlen("checksum ") + HASH_LEN * 2 + 1 ||
        strncmp(sum, "checksum ", 9) != 0)
        return bad(why, whylen, "the file is truncated (no checksum line at its end)");
    hash_hex(text, body, want);
    if (sodium_memcmp(want, sum + 9, HASH_LEN * 2) != 0)
        return bad(why, whylen,
                   "checksum mismatch: the file was damaged or edited by hand");

    while (pos < body) {
        const char *nl = memchr(text + pos, '\n', body - pos);
        size_t llen = (size_t)(nl - (text + pos));
        char *sp;

        lineno++;
        if (llen >= sizeof lbuf)
            return bad(why, whylen, "line %u is too long", lineno);
        memcpy(lbuf, text + pos, llen);
        lbuf[llen] = '\0';
        pos += llen + 1;
        if (llen == 0 || lbuf[0] == '#')
            continue;
        sp = strchr(lbuf, ' ');
        if (sp == NULL)
            return bad(why, whylen, "line %u has no value", lineno);
        *sp = '\0';
        rc = line(out, lbuf, sp + 1, &seen_version, &seen_id, why, whylen);
        if (rc < 0) {
            char tmp[200];
            snprintf(tmp, sizeof tmp, "%s", why != NULL ? why : "");
            return bad(why, whylen, "line %u: %s", lineno, tmp);
        }
    }
    if (!seen_version)
        return bad(why, whylen, "no version line");
    if (!seen_id)
        return bad(why, whylen, "no node-id line");
    return 0;
}

/* ---- files ---- */

static void join(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

int node_state_load(const char *dir, struct node_state *out, char *err, size_t errlen)
{
    char path[4096], tmp[4096], why[256];
    char *text;
    size_t len;
    int rc;

    join(path, sizeof path, dir, NODE_STATE_FILE);
    join(tmp, sizeof tmp, dir, NODE_STATE_FILE ".tmp");
    /* A temp file is what a write that never reached its rename left: the
     * old node.state is the state. */
    struct stat sb;
    if (lstat(tmp, &sb) == 0 && unlink(tmp) != 0 && errno != ENOENT) {
        snprintf(err, errlen,
                 "%s (left by a write that never finished): cannot remove: %s (xmppd "
                 "needs to write in %s)",
                 tmp, strerror(errno), dir);
        return XE_IO;
    }
    rc = conffile_read_private(path, NODE_STATE_MAX_BYTES, false,
                               "not a node state file; move it away to start this node "
                               "afresh",
                               &text, &len, err, errlen);
    if (rc == XE_NOTFOUND)
        snprintf(err, errlen, "%s: no such file", path);
    if (rc < 0)
        return rc;
    rc = node_state_parse(text, len, out, why, sizeof why);
    if (rc < 0)
        snprintf(err, errlen,
                 "%s: %s; xmppd will not guess: restore the file from a backup, or "
                 "move it away to start this node afresh (a new node id and XMPP "
                 "disabled; the replicated configuration in %s/raft is kept)",
                 path, why, dir);
    sodium_free(text);
    return rc;
}

static int sys_fail(char *err, size_t errlen, const char *what, const char *path)
{
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
    return XE_IO;
}

int node_state_save(const char *dir, const struct node_state *s,
                    const struct node_state_sys *sys, char *err, size_t errlen)
{
    char path[4096], tmp[4096], text[NODE_STATE_MAX_BYTES];
    size_t off = 0;
    int fd = -1, dfd, n, rc;

    if (sys == NULL)
        sys = &state_sys_posix;
    n = node_state_format(s, text, sizeof text);
    if (n < 0) {
        snprintf(err, errlen, "node state not saved: %s",
                 n == XE_INVAL ? "a path has a control character" : "too large");
        return n == XE_INVAL ? XE_INVAL : XE_LIMIT;
    }
    join(path, sizeof path, dir, NODE_STATE_FILE);
    join(tmp, sizeof tmp, dir, NODE_STATE_FILE ".tmp");
    fd = sys->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return sys_fail(err, errlen, "cannot create", tmp);
    while (off < (size_t)n) {
        ssize_t w = sys->write(fd, text + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            rc = sys_fail(err, errlen, "cannot write", tmp);
            goto fail;
        }
        off += (size_t)w;
    }
    /* The data must be on disk before the rename makes it the state, or a
     * crash could leave a renamed but empty file. */
    if (sys->fsync(fd) != 0) {
        rc = sys_fail(err, errlen, "cannot fsync", tmp);
        goto fail;
    }
    if (sys->close(fd) != 0) {
        fd = -1;
        rc = sys_fail(err, errlen, "cannot close", tmp);
        goto fail;
    }
    fd = -1;
    if (sys->rename(tmp, path) != 0) {
        rc = sys_fail(err, errlen, "cannot rename to", path);
        goto fail;
    }
    /* The rename is durable only once the directory is synced. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sys_fail(err, errlen, "cannot open directory", dir);
    rc = sys->fsync(dfd);
    close(dfd);
    if (rc != 0)
        return sys_fail(err, errlen, "cannot fsync directory", dir);
    return 0;

fail:
    if (fd >= 0)
        sys->close(fd);
    unlink(tmp);
    return rc;
}
