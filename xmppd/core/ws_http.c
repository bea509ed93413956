/* ws_http.c: the HTTP side of a WebSocket listener's connection: the one
 * request (parsed by http_parser, within our limits), discovery (XEP-0156
 * host-meta), the upgrade checks and answer (RFC 6455 §4.2), the client
 * address behind a trusted proxy, and the error responses. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "err.h"
#include "ws_int.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 §1.3 */
#define WS_HOST_META "/.well-known/host-meta"          /* RFC 6415 §2 */
#define WS_HOST_META_JSON "/.well-known/host-meta.json"

void ws__req_free(struct ws_req *r)
{
    if (r == NULL)
        return;
    buf_free(&r->url);
    buf_free(&r->field);
    buf_free(&r->value);
    buf_free(&r->host);
    buf_free(&r->upgrade);
    buf_free(&r->connection);
    buf_free(&r->key);
    buf_free(&r->version);
    buf_free(&r->protocol);
    buf_free(&r->origin);
    buf_free(&r->xff);
    free(r);
}

/* ---- parsing ----------------------------------------------------------- */

/* A callback's non-zero return stops http_parser with an error; r->refuse
 * or r->nomem then says which of ours it was. */

static int hp_on_url(http_parser *p, const char *at, size_t n)
{
    struct ws_conn *ws = p->data;
    struct ws_req *r = ws->req;

    if (r->url.len + n > ws->lim.max_request_line) {
        r->refuse = 414; /* RFC 9110 §15.5.15 */
        return 1;
    }
    if (buf_append(&r->url, at, n) < 0) {
        r->nomem = true;
        return 1;
    }
    return 0;
}

/* hp_join appends value to a header kept whole: a repeated field is the
 * same as one with the values joined by commas (RFC 9110 §5.3). */
static int hp_join(struct buf *b, const char *v, size_t n)
{
    if (b->len > 0 && buf_append(b, ", ", 2) < 0)
        return XE_NOMEM;
    return buf_append(b, v, n);
}

/* hp_pair keeps the header just read if it is one we look at. */
static int hp_pair(struct ws_req *r)
{
    const char *name = r->field.data != NULL ? r->field.data : "";
    const char *v = r->value.data != NULL ? r->value.data : "";
    size_t n = r->value.len;
    int rc = 0;

    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (strcasecmp(name, "Host") == 0) {
        r->nhost++;
        buf_reset(&r->host);
        rc = buf_append(&r->host, v, n);
    } else if (strcasecmp(name, "Upgrade") == 0) {
        rc = hp_join(&r->upgrade, v, n);
    } else if (strcasecmp(name, "Connection") == 0) {
        rc = hp_join(&r->connection, v, n);
    } else if (strcasecmp(name, "Sec-WebSocket-Key") == 0) {
        r->nkey++;
        buf_reset(&r->key);
        rc = buf_append(&r->key, v, n);
    } else if (strcasecmp(name, "Sec-WebSocket-Version") == 0) {
        rc = hp_join(&r->version, v, n);
    } else if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0) {
        rc = hp_join(&r->protocol, v, n);
    } else if (strcasecmp(name, "Origin") == 0) {
        rc = hp_join(&r->origin, v, n);
    } else if (strcasecmp(name, "X-Forwarded-For") == 0) {
        rc = hp_join(&r->xff, v, n);
    }
    buf_reset(&r->field);
    buf_reset(&r->value);
    r->in_field = r->in_value = false;
    return rc;
}

static int hp_on_field(http_parser *p, const char *at, size_t n)
{
    struct ws_conn *ws = p->data;
    struct ws_req *r = ws->req;

    /* RFC 9112 §5.1: whitespace between a field name and the colon is a
     * MUST-reject (400).  http_parser, not built strict, lets a space into
     * the name: "Origin : x" would be read as no Origin at all. */
    if (memchr(at, ' ', n) != NULL || memchr(at, '\t', n) != NULL) {
        r->refuse = 400;
        r->why = "whitespace in a header field name (RFC 9112 5.1)";
        return 1;
    }
    if (r->in_value && hp_pair(r) < 0)
        goto nomem;
    if (!r->in_field) {
        r->in_field = true;
        if (++r->nheaders > ws->lim.max_headers) {
            r->refuse = 431; /* RFC 6585 §5 */
            return 1;
        }
    }
    if (buf_append(&r->field, at, n) < 0)
        goto nomem;
    return 0;
nomem:
    r->nomem = true;
    return 1;
}

static int hp_on_value(http_parser *p, const char *at, size_t n)
{
    struct ws_conn *ws = p->data;
    struct ws_req *r = ws->req;

    r->in_field = false;
    r->in_value = true;
    if (buf_append(&r->value, at, n) < 0) {
        r->nomem = true;
        return 1;
    }
    return 0;
}

static int hp_on_headers_complete(http_parser *p)
{
    struct ws_conn *ws = p->data;
    struct ws_req *r = ws->req;

    if ((r->in_field || r->in_value) && hp_pair(r) < 0) {
        r->nomem = true;
        return -1;
    }
    r->body = (p->flags & F_CHUNKED) != 0 ||
              (p->content_length > 0 && p->content_length != ULLONG_MAX);
    /* 1: no body.  We read none: one request per connection, and a body
     * on an upgrade is refused. */
    return 1;
}

static int hp_on_message_complete(http_parser *p)
{
    struct ws_conn *ws = p->data;

    ws->req->done = true;
    /* Stop right after the request: what follows is WebSocket frames (on
     * an upgrade) or ignored (we answer and close). */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings hp_settings = {
    .on_url = hp_on_url,
    .on_header_field = hp_on_field,
    .on_header_value = hp_on_value,
    .on_headers_complete = hp_on_headers_complete,
    .on_message_complete = hp_on_message_complete,
};

/* ---- responses --------------------------------------------------------- */

static const char *ws_reason(unsigned status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* ws_http_put appends a response with Connection: close; body may be NULL
 * (HEAD: the headers of a body of blen bytes, and no body). */
static int ws_http_put(struct ws_conn *ws, unsigned status, const char *ctype,
                       const char *extra, const char *body, size_t blen)
{
    int rc = buf_printf(&ws->wire,
                        "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n%s\r\n",
                        status, ws_reason(status), ctype, blen, extra ? extra : "");

    if (rc == 0 && body != NULL)
        rc = buf_append(&ws->wire, body, blen);
    ws->stats.http_status = status;
    /* RFC 9112 §9.6: Connection: close, and we close after the response. */
    ws__finish(ws, NULL);
    return rc;
}

int ws__http_respond(struct ws_conn *ws, unsigned status, const char *extra,
                     const char *why)
{
    char body[160];
    int n = snprintf(body, sizeof body, "%u %s: %s\n", status, ws_reason(status), why);

    if (ws->up->why == NULL)
        ws->up->why = why;
    if (n < 0 || (size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    return ws_http_put(ws, status, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

int ws__esc(struct buf *out, const char *s, size_t len)
{
    int rc = 0;

    for (size_t i = 0; i < len && rc == 0; i++) {
        switch (s[i]) {
        case '&':
            rc = buf_puts(out, "&amp;");
            break;
        case '<':
            rc = buf_puts(out, "&lt;");
            break;
        case '>':
            rc = buf_puts(out, "&gt;");
            break;
        case '\'':
            rc = buf_puts(out, "&apos;");
            break;
        case '"':
            rc = buf_puts(out, "&quot;");
            break;
        default:
            rc = buf_append(out, &s[i], 1);
        }
    }
    return rc;
}

/* ws_host_meta answers discovery, XEP-0156 §3: the XRD document of RFC
 * 6415 or its JSON form (JRD), one link per WebSocket URL of the cluster.
 * Access-Control-Allow-Origin: * lets a page on any origin read it (XEP-0156
 * §3.2 asks for CORS; the document holds nothing private). */
static int ws_host_meta(struct ws_conn *ws, bool json, bool head)
{
    static const char cors[] = "Access-Control-Allow-Origin: *\r\n";
    struct buf b = {0};
    char *js = NULL;
    int rc = 0;

    ws->up->why = "host-meta";
    if (json) {
        json_t *root = json_object(), *links = json_array();

        if (root == NULL || links == NULL ||
            json_object_set_new(root, "links", links) < 0) {
            json_decref(root);
            return XE_NOMEM;
        }
        for (size_t i = 0; i < ws->cfg->nurls; i++) {
            json_t *l = json_pack("{s:s, s:s}", "rel", WS_REL_WEBSOCKET, "href",
                                  ws->cfg->urls[i]);
            if (l == NULL || json_array_append_new(links, l) < 0) {
                json_decref(root);
                return XE_NOMEM;
            }
        }
        js = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (js == NULL)
            return XE_NOMEM;
        rc = ws_http_put(ws, 200, "application/json", cors, head ? NULL : js, strlen(js));
        free(js);
        return rc;
    }
    rc = buf_puts(&b, "<?xml version='1.0' encoding='utf-8'?>\n"
                      "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n");
    for (size_t i = 0; i < ws->cfg->nurls && rc == 0; i++) {
        const char *u = ws->cfg->urls[i];
        rc = buf_puts(&b, "  <Link rel='" WS_REL_WEBSOCKET "' href='");
        if (rc == 0)
            rc = ws__esc(&b, u, strlen(u));
        if (rc == 0)
            rc = buf_puts(&b, "'/>\n");
    }
    if (rc == 0)
        rc = buf_puts(&b, "</XRD>\n");
    if (rc == 0)
        rc = ws_http_put(ws, 200, "application/xrd+xml; charset=utf-8", cors,
                         head ? NULL : b.data, b.len);
    buf_free(&b);
    return rc;
}

/* ---- the upgrade -------------------------------------------------------- */

/* ws_has_token tells whether the comma-separated list holds tok (ASCII
 * case-insensitive when ci: header tokens; exact: subprotocol names, RFC
 * 6455 §4.1). */
static bool ws_has_token(const struct buf *list, const char *tok, bool ci)
{
    const char *p = list->data, *end = p + list->len;
    size_t tl = strlen(tok);

    if (p == NULL)
        return false;
    while (p < end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        const char *e = q != NULL ? q : end;

        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl &&
            (ci ? strncasecmp(p, tok, tl) == 0 : memcmp(p, tok, tl) == 0))
            return true;
        p = q != NULL ? q + 1 : end;
    }
    return false;
}

/* ws_origin_ok: with no allow-list any origin may connect (documented
 * default); a request without Origin comes from no browser and is let in
 * (the check protects browsers, RFC 6455 §10.2; other clients can send
 * any Origin they like). */
static bool ws_origin_ok(const struct ws_conn *ws)
{
    const struct ws_req *r = ws->req;

    if (ws->cfg->norigins == 0 || r->origin.len == 0)
        return true;
    for (size_t i = 0; i < ws->cfg->norigins; i++) {
        const char *o = ws->cfg->origins[i];
        if (strcmp(o, "*") == 0 || strcasecmp(o, r->origin.data) == 0)
            return true;
    }
    return false;
}

/* ws_accept computes Sec-WebSocket-Accept (RFC 6455 §4.2.2 item 5.4): the
 * base64 of the SHA-1 of the key and the GUID; false when the key is not
 * the base64 of 16 bytes (§4.2.1 item 5). */
static bool ws_accept(const struct buf *key, char out[29])
{
    unsigned char bin[32], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t binlen = 0;
    struct buf b = {0};
    bool ok;

    if (key->len != 24 ||
        sodium_base642bin(bin, sizeof bin, key->data, key->len, NULL, &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        binlen != 16)
        return false;
    ok = buf_append(&b, key->data, key->len) == 0 && buf_puts(&b, WS_GUID) == 0 &&
         EVP_Digest(b.data, b.len, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20;
    buf_free(&b);
    if (ok)
        EVP_EncodeBlock((unsigned char *)out, md, 20);
    return ok;
}

static int ws_upgrade_request(struct ws_conn *ws)
{
    const struct ws_req *r = ws->req;
    const http_parser *p = &r->hp;
    char accept[29];
    int rc;

    /* RFC 6455 §4.2.1: a GET of HTTP/1.1 or later, with Upgrade: websocket
     * and Connection: Upgrade. */
    if (p->method != HTTP_GET)
        return ws__http_respond(ws, 405, "Allow: GET\r\n",
                                "the WebSocket endpoint takes GET");
    if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1))
        return ws__http_respond(ws, 400, NULL, "the upgrade needs HTTP/1.1");
    if (!ws_has_token(&r->upgrade, "websocket", true))
        return ws__http_respond(
            ws, 426, "Upgrade: websocket\r\n",
            "this is a WebSocket endpoint: Upgrade: websocket required");
    if (!ws_has_token(&r->connection, "upgrade", true))
        return ws__http_respond(ws, 400, NULL, "Connection: Upgrade missing");
    if (r->body)
        return ws__http_respond(ws, 400, NULL, "a body on an upgrade request");
    /* RFC 6455 §4.4: another version: 426 naming the one we speak. */
    if (r->version.len != 2 || memcmp(r->version.data, "13", 2) != 0)
        return ws__http_respond(ws, 426, "Sec-WebSocket-Version: 13\r\n",
                                "unsupported Sec-WebSocket-Version (13 only)");
    if (r->nkey != 1 || !ws_accept(&r->key, accept))
        return ws__http_respond(ws, 400, NULL, "Sec-WebSocket-Key missing or malformed");
    if (!ws_origin_ok(ws))
        return ws__http_respond(ws, 403, NULL, "origin not allowed");
    /* RFC 7395 §3.1: the client offers the "xmpp" subprotocol; without it
     * the server refuses the upgrade. */
    if (!ws_has_token(&r->protocol, "xmpp", false))
        return ws__http_respond(
            ws, 400, NULL,
            "subprotocol xmpp required (Sec-WebSocket-Protocol, RFC 7395)");
    rc = buf_printf(&ws->wire,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                    "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
                    accept);
    if (rc == 0)
        rc = ws__upgrade(ws);
    if (rc < 0)
        return rc;
    ws->stats.http_status = 101;
    ws->up->upgraded = true;
    ws->up->why = "upgraded";
    return 0;
}

/* ---- the client address ------------------------------------------------- */

bool ws__addr_norm(const char *in, size_t len, char out[WS_ADDR_MAX])
{
    char tmp[WS_ADDR_MAX];
    unsigned char a[16];

    if (len >= 2 && in[0] == '[' && in[len - 1] == ']')
        in++, len -= 2;
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, in, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, a) == 1)
        return inet_ntop(AF_INET, a, out, WS_ADDR_MAX) != NULL;
    if (inet_pton(AF_INET6, tmp, a) != 1)
        return false;
    if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
        return inet_ntop(AF_INET, a + 12, out, WS_ADDR_MAX) != NULL;
    return inet_ntop(AF_INET6, a, out, WS_ADDR_MAX) != NULL;
}

/* ws_proxy_parse reads a trusted-proxy entry: an IP address or a CIDR
 * range "addr/len" (RFC 4632 §3.1; RFC 4291 §2.3 for IPv6).  An IPv4
 * address or range is held as IPv4-mapped IPv6 (len + 96), so that one
 * comparison covers both families.  false when spec is neither. */
static bool ws_proxy_parse(const char *spec, unsigned char net[16], unsigned *bits)
{
    char tmp[WS_ADDR_MAX], norm[WS_ADDR_MAX];
    const char *slash = strchr(spec, '/');
    size_t n = slash != NULL ? (size_t)(slash - spec) : strlen(spec);
    unsigned long len = 128;
    bool v4;

    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, spec, n);
    tmp[n] = '\0';
    v4 = inet_pton(AF_INET, tmp, net + 12) == 1;
    if (v4) {
        memcpy(net, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
        len = 32;
    } else if (inet_pton(AF_INET6, tmp, net) != 1) {
        return false;
    }
    if (!ws__addr_norm(tmp, n, norm))
        return false;
    if (slash != NULL) {
        char *end;
        if (slash[1] < '0' || slash[1] > '9')
            return false;
        len = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || len > (v4 ? 32UL : 128UL))
            return false;
    }
    *bits = (unsigned)len + (v4 ? 96 : 0);
    return true;
}

bool ws_proxy_valid(const char *spec)
{
    unsigned char net[16];
    unsigned bits;

    return spec != NULL && ws_proxy_parse(spec, net, &bits);
}

/* ws_in_range tells whether addr (canonical text, ws__addr_norm) is in
 * the proxy entry spec. */
static bool ws_in_range(const char *spec, const char *addr)
{
    unsigned char net[16], a[16];
    unsigned bits, full;

    if (!ws_proxy_parse(spec, net, &bits))
        return false;
    if (inet_pton(AF_INET, addr, a + 12) == 1)
        memcpy(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
    else if (inet_pton(AF_INET6, addr, a) != 1)
        return false;
    full = bits / 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (bits % 8 != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
        return (a[full] & mask) == (net[full] & mask);
    }
    return true;
}

static bool ws_trusted(const struct ws_conn *ws, const char *addr)
{
    for (size_t i = 0; i < ws->cfg->nproxies; i++)
        if (ws_in_range(ws->cfg->trusted_proxies[i], addr))
            return true;
    return false;
}

/* ws_client sets the client address.  X-Forwarded-For counts only when
 * the TCP peer is a trusted proxy (anyone else can write anything in it).
 * Its entries are read from the right (the hop nearest to us) and the
 * first that is not a trusted proxy is the client; a malformed entry ends
 * the walk at the last good one. */
static void ws_client(struct ws_conn *ws)
{
    const struct buf *x = &ws->req->xff;
    char peer[WS_ADDR_MAX], a[WS_ADDR_MAX];
    const char *end;

    if (ws__addr_norm(ws->peer, strlen(ws->peer), peer))
        memcpy(ws->client, peer, sizeof ws->client);
    if (x->len == 0 || !ws_trusted(ws, ws->client))
        return;
    end = x->data + x->len;
    while (end > x->data) {
        const char *s = end, *e = end;

        while (s > x->data && s[-1] != ',')
            s--;
        end = s > x->data ? s - 1 : x->data;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (!ws__addr_norm(s, (size_t)(e - s), a))
            return;
        memcpy(ws->client, a, sizeof ws->client);
        if (!ws_trusted(ws, a))
            return;
    }
}

/* ---- the request -------------------------------------------------------- */

static int ws_request(struct ws_conn *ws)
{
    const struct ws_req *r = ws->req;
    const http_parser *p = &r->hp;
    struct http_parser_url u;
    const char *path;
    size_t plen;
    bool head = p->method == HTTP_HEAD;

    ws_client(ws);
    /* RFC 9112 §3: method, target and HTTP-version.  http_parser takes a
     * request line without the version as HTTP/0.9 (major 0): not a
     * request this listener serves. */
    if (p->http_major == 0)
        return ws__http_respond(ws, 400, NULL, "request line without HTTP version");
    http_parser_url_init(&u);
    if (r->url.len == 0 || http_parser_parse_url(r->url.data, r->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return ws__http_respond(ws, 400, NULL, "malformed request target");
    path = r->url.data + u.field_data[UF_PATH].off;
    plen = u.field_data[UF_PATH].len;
    /* RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host: 400. */
    if (p->http_major == 1 && p->http_minor >= 1 && r->nhost != 1)
        return ws__http_respond(ws, 400, NULL, "Host header missing or repeated");
    if ((plen == strlen(WS_HOST_META) && memcmp(path, WS_HOST_META, plen) == 0) ||
        (plen == strlen(WS_HOST_META_JSON) &&
         memcmp(path, WS_HOST_META_JSON, plen) == 0)) {
        if (p->method != HTTP_GET && !head)
            return ws__http_respond(ws, 405, "Allow: GET, HEAD\r\n",
                                    "discovery takes GET or HEAD");
        return ws_host_meta(ws, plen == strlen(WS_HOST_META_JSON), head);
    }
    if (plen == strlen(ws->lim.path) && memcmp(path, ws->lim.path, plen) == 0)
        return ws_upgrade_request(ws);
    return ws__http_respond(ws, 404, NULL, "no such resource");
}

/* ws_folded follows the request's bytes by lines and tells whether a line
 * after the request line begins with SP or HTAB: obs-fold (RFC 9112 §5.2)
 * or whitespace before the first field (§2.2), both refused with 400
 * rather than unfolded.  A bare LF ends a line too (§2.2). */
static bool ws_folded(struct ws_req *r, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r->bol && r->lines > 0 && (p[i] == ' ' || p[i] == '\t'))
            return true;
        r->bol = p[i] == '\n';
        if (r->bol)
            r->lines++;
    }
    return false;
}

int ws__http_input(struct ws_conn *ws, const char *data, size_t len, size_t *used)
{
    struct ws_req *r = ws->req;
    size_t off = 0;

    *used = 0;
    while (off < len && !r->done) {
        size_t room = ws->lim.max_header_bytes - r->consumed, n = len - off, got;

        /* The request line, headers and blank line must end within
         * max_header_bytes: the parser never sees more. */
        if (room == 0)
            return ws__http_respond(ws, 431, NULL, "request header fields too large");
        if (n > room)
            n = room;
        got = http_parser_execute(&r->hp, &hp_settings, data + off, n);
        r->consumed += got;
        if (ws_folded(r, data + off, got))
            return ws__http_respond(ws, 400, NULL,
                                    "obs-fold: a header line starts with whitespace "
                                    "(RFC 9112 5.2)");
        off += got;
        if (r->nomem)
            return XE_NOMEM;
        if (r->refuse == 400)
            return ws__http_respond(ws, 400, NULL, r->why);
        if (r->refuse == 414)
            return ws__http_respond(ws, 414, NULL, "request target too long");
        if (r->refuse == 431)
            return ws__http_respond(ws, 431, NULL, "too many header fields");
        if (!r->done && (HTTP_PARSER_ERRNO(&r->hp) != HPE_OK || got < n))
            return ws__http_respond(ws, 400, NULL, "malformed HTTP request");
    }
    if (!r->done) {
        if (r->consumed >= ws->lim.max_header_bytes)
            return ws__http_respond(ws, 431, NULL, "request header fields too large");
        return 0;
    }
    *used = off;
    return ws_request(ws);
}
