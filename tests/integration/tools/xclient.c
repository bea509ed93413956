/* xclient.c: a real XMPP client (libstrophe) for the integration tests of
 * client logins: it logs in over STARTTLS with the server's
 * certificate verified against a CA, sends initial presence, then follows
 * commands on stdin and prints one line per event on stdout.
 *
 *   xclient --jid user@domain[/res] --password P --host 127.0.0.1
 *           [--port 5222] --ca ca.pem [--mech SCRAM-SHA-256|SCRAM-SHA-1|PLAIN]
 *           [--tls-name name] [--direct-tls] [--timeout 600] [--verbose]
 *
 * Two ways to log in:
 *  - without --mech and --tls-name: xmpp_connect_client with
 *    XMPP_CONN_FLAG_MANDATORY_TLS, exactly as an application would; the
 *    certificate must carry the JID's domain; libstrophe picks the SASL
 *    mechanism itself (the strongest SCRAM the server offers: libstrophe
 *    0.12 has no API to restrict mechanisms, nor the -PLUS variants);
 *  - with --mech or --tls-name: libstrophe's raw connection
 *    (xmpp_connect_raw), with libstrophe still doing TCP, TLS (the same
 *    certificate checks, against --tls-name instead of the domain: the
 *    stream still says to='domain') and XML, and this file doing the RFC
 *    6120 steps: <starttls/> (§5), SASL with exactly the mechanism given
 *    (§6; SCRAM per RFC 5802/7677, with the server's signature checked),
 *    resource binding (§7) and, when the server asks for it, the session.
 *
 * --direct-tls: TLS from the first byte (XEP-0368) instead of STARTTLS
 * (libstrophe's XMPP_CONN_FLAG_LEGACY_SSL, or xmpp_conn_tls_start at once
 * in the raw login).
 *
 * Commands on stdin, one a line:
 *   msg <to> <body...>     a chat message
 *   iq-ping <to>           an XEP-0199 ping (the answer prints as iq ...)
 *   presence [prio]        available presence, with a priority if given
 *   directed <jid> [type]  directed presence to jid (available, or type)
 *   sub <jid>              presence type='subscribe' to jid
 *   subscribed <jid>       presence type='subscribed' (approve jid)
 *   quit                   close the stream and exit 0
 * Output, one event a line, flushed at once:
 *   online <full jid>             logged in and bound
 *   msg <from> <body>             a message (an empty body prints as "-")
 *   presence <from> <type>        type "available" when the stanza has none
 *   iq <from> <type> <id>         any iq (pings to us are answered)
 *   error <condition>             a stanza error, a SASL failure or a
 *                                 stream error (its defined condition)
 *   disconnected <reason>         quit, closed, auth-failed, tls-failed,
 *                                 stream-error, connect-failed,
 *                                 no-starttls, no-mechanism, bind-failed,
 *                                 timeout
 * Exit status: 0 after quit, 1 when the connection ended otherwise, 2
 * usage, 3 --timeout. */
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <strophe.h>

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PING "urn:xmpp:ping"

enum stage { ST_PLAIN, ST_TLS, ST_AUTHED, ST_ONLINE };

struct xc {
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    const char *jid, *password, *host, *ca, *mech, *tls_name;
    char user[256], domain[256], resource[256];
    int port;
    bool raw, verbose, quitting, ended, direct_tls;
    enum stage stage;
    const char *reason; /* for the disconnected line, once known */
    int exit_code;
    unsigned next_id;
    char line[8192];
    size_t line_len;
    bool stdin_eof;
    /* SCRAM (RFC 5802) */
    const EVP_MD *md;
    char cnonce[48];
    char *first_bare; /* client-first-message-bare, owned */
    unsigned char server_sig[EVP_MAX_MD_SIZE];
    unsigned server_sig_len;
    bool want_session;
};

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void out(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void set_reason(struct xc *x, const char *reason)
{
    if (x->reason == NULL)
        x->reason = reason;
}

/* fail ends the connection for reason (the disconnected line follows from
 * the connection handler). */
static void fail(struct xc *x, const char *reason)
{
    set_reason(x, reason);
    xmpp_disconnect(x->conn);
}

/* ---- stanzas out ---- */

static void next_id(struct xc *x, const char *prefix, char *buf, size_t len)
{
    snprintf(buf, len, "%s%u", prefix, ++x->next_id);
}

static void send_presence(struct xc *x, const char *type, const char *to,
                          const char *prio)
{
    xmpp_stanza_t *p = xmpp_presence_new(x->ctx);

    if (type != NULL)
        xmpp_stanza_set_type(p, type);
    if (to != NULL)
        xmpp_stanza_set_to(p, to);
    if (prio != NULL) {
        xmpp_stanza_t *pr = xmpp_stanza_new(x->ctx), *t = xmpp_stanza_new(x->ctx);
        xmpp_stanza_set_name(pr, "priority");
        xmpp_stanza_set_text(t, prio);
        xmpp_stanza_add_child(pr, t);
        xmpp_stanza_add_child(p, pr);
        xmpp_stanza_release(t);
        xmpp_stanza_release(pr);
    }
    xmpp_send(x->conn, p);
    xmpp_stanza_release(p);
}

static void send_message(struct xc *x, const char *to, const char *body)
{
    char id[32];
    xmpp_stanza_t *m;

    next_id(x, "m", id, sizeof id);
    m = xmpp_message_new(x->ctx, "chat", to, id);
    xmpp_message_set_body(m, body);
    xmpp_send(x->conn, m);
    xmpp_stanza_release(m);
}

static void send_ping(struct xc *x, const char *to)
{
    char id[32];
    xmpp_stanza_t *iq, *ping;

    next_id(x, "ping", id, sizeof id);
    iq = xmpp_iq_new(x->ctx, "get", id);
    xmpp_stanza_set_to(iq, to);
    ping = xmpp_stanza_new(x->ctx);
    xmpp_stanza_set_name(ping, "ping");
    xmpp_stanza_set_ns(ping, NS_PING);
    xmpp_stanza_add_child(iq, ping);
    xmpp_stanza_release(ping);
    xmpp_send(x->conn, iq);
    xmpp_stanza_release(iq);
}

/* ---- stanzas in ---- */

/* error_condition returns the defined condition of stanza's <error/> (RFC
 * 6120 §8.3.2), or "undefined-condition". */
static const char *error_condition(xmpp_stanza_t *stanza)
{
    xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(stanza, "error"), *c;

    if (e == NULL)
        return "undefined-condition";
    for (c = xmpp_stanza_get_children(e); c != NULL; c = xmpp_stanza_get_next(c)) {
        const char *ns = xmpp_stanza_get_ns(c);
        if (xmpp_stanza_is_tag(c) && ns != NULL && strcmp(ns, NS_STANZAS) == 0 &&
            strcmp(xmpp_stanza_get_name(c), "text") != 0)
            return xmpp_stanza_get_name(c);
    }
    return "undefined-condition";
}

static const char *or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

static int h_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    const char *type = xmpp_stanza_get_type(st);
    char *body;

    if (type != NULL && strcmp(type, "error") == 0) {
        out("error %s", error_condition(st));
        return 1;
    }
    body = xmpp_message_get_body(st);
    /* One line per event: line breaks in a body print as spaces. */
    for (char *p = body; p != NULL && *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    out("msg %s %s", or_dash(xmpp_stanza_get_from(st)), or_dash(body));
    xmpp_free(((struct xc *)ud)->ctx, body);
    return 1;
}

static int h_presence(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    const char *type = xmpp_stanza_get_type(st);
    xmpp_stanza_t *delay = xmpp_stanza_get_child_by_ns(st, "urn:xmpp:delay");
    xmpp_stanza_t *status = xmpp_stanza_get_child_by_name(st, "status");
    char *text = status != NULL ? xmpp_stanza_get_text(status) : NULL;

    if (type != NULL && strcmp(type, "error") == 0)
        out("error %s", error_condition(st));
    /* XEP-0203 and a status only when present: other lines stay as they
     * were ("presence <from> <type>"). */
    if (delay != NULL || text != NULL)
        out("presence %s %s%s%s%s%s", or_dash(xmpp_stanza_get_from(st)),
            type != NULL ? type : "available", delay != NULL ? " delay " : "",
            delay != NULL ? or_dash(xmpp_stanza_get_attribute(delay, "stamp")) : "",
            text != NULL ? " status " : "", text != NULL ? text : "");
    else
        out("presence %s %s", or_dash(xmpp_stanza_get_from(st)),
            type != NULL ? type : "available");
    xmpp_free(((struct xc *)ud)->ctx, text);
    return 1;
}

/* bound: resource binding answered; ask for the session if the server
 * wants one, else go online. */
static void go_online(struct xc *x, const char *jid)
{
    x->stage = ST_ONLINE;
    out("online %s", jid);
    send_presence(x, NULL, NULL, NULL);
}

static int h_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    const char *type = xmpp_stanza_get_type(st), *id = xmpp_stanza_get_id(st);
    const char *from = xmpp_stanza_get_from(st);

    if (x->raw && x->stage == ST_AUTHED && id != NULL) {
        if (strcmp(id, "bind1") == 0) {
            xmpp_stanza_t *b = xmpp_stanza_get_child_by_name_and_ns(st, "bind", NS_BIND);
            xmpp_stanza_t *j = b != NULL ? xmpp_stanza_get_child_by_name(b, "jid") : NULL;
            char *jid = j != NULL ? xmpp_stanza_get_text(j) : NULL;
            if (type == NULL || strcmp(type, "result") != 0 || jid == NULL) {
                out("error %s", error_condition(st));
                xmpp_free(x->ctx, jid);
                fail(x, "bind-failed");
                return 1;
            }
            snprintf(x->resource, sizeof x->resource, "%s", jid);
            xmpp_free(x->ctx, jid);
            if (x->want_session) {
                xmpp_send_raw_string(
                    conn, "<iq type='set' id='sess1'><session xmlns='%s'/></iq>",
                    NS_SESSION);
                return 1;
            }
            go_online(x, x->resource);
            return 1;
        }
        if (strcmp(id, "sess1") == 0) {
            if (type == NULL || strcmp(type, "result") != 0) {
                out("error %s", error_condition(st));
                fail(x, "bind-failed");
                return 1;
            }
            go_online(x, x->resource);
            return 1;
        }
    }
    /* libstrophe's own login (bind, session) uses ids "_xmpp_...". */
    if (!x->raw && id != NULL && strncmp(id, "_xmpp_", 6) == 0)
        return 1;
    out("iq %s %s %s", or_dash(from), or_dash(type), or_dash(id));
    if (type != NULL && strcmp(type, "error") == 0)
        out("error %s", error_condition(st));
    if (type != NULL && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
        /* RFC 6120 §8.2.3: every get and set gets an answer; a ping
         * (XEP-0199 §4) an empty result, anything else an error. */
        bool ping = xmpp_stanza_get_child_by_name_and_ns(st, "ping", NS_PING) != NULL;
        if (ping)
            xmpp_send_raw_string(conn, "<iq type='result' id='%s' to='%s'/>", or_dash(id),
                                 or_dash(from));
        else
            xmpp_send_raw_string(conn,
                                 "<iq type='error' id='%s' to='%s'><error type='cancel'>"
                                 "<service-unavailable xmlns='%s'/></error></iq>",
                                 or_dash(id), or_dash(from), NS_STANZAS);
    }
    return 1;
}

/* ---- the raw login: STARTTLS, SASL, bind ---- */

/* top_ns: st itself is in namespace ns (libstrophe's handlers also fire
 * when only a child is, as <mechanisms/> inside <features/>). */
static bool top_ns(xmpp_stanza_t *st, const char *ns)
{
    const char *n = xmpp_stanza_get_ns(st);

    return n != NULL && strcmp(n, ns) == 0;
}

static void open_stream(struct xc *x)
{
    char *attrs[] = {
        "to",    x->domain,       "version",      "1.0",
        "xmlns", "jabber:client", "xmlns:stream", "http://etherx.jabber.org/streams"};

    xmpp_conn_open_stream(x->conn, attrs, sizeof attrs / sizeof attrs[0]);
}

/* saslname escapes user for SCRAM (RFC 5802 §5.1: '=' and ','). */
static void saslname(const char *user, char *outb, size_t len)
{
    size_t k = 0;

    for (; *user != '\0' && k + 4 < len; user++) {
        if (*user == '=')
            k += (size_t)snprintf(outb + k, len - k, "=3D");
        else if (*user == ',')
            k += (size_t)snprintf(outb + k, len - k, "=2C");
        else
            outb[k++] = *user;
    }
    outb[k] = '\0';
}

static void send_auth(struct xc *x, const char *mech, const char *payload, size_t len)
{
    char *b64 = xmpp_base64_encode(x->ctx, (const unsigned char *)payload, len);

    xmpp_send_raw_string(x->conn, "<auth xmlns='%s' mechanism='%s'>%s</auth>",
                         XMPP_NS_SASL, mech, b64 != NULL ? b64 : "");
    xmpp_free(x->ctx, b64);
}

static void start_sasl(struct xc *x)
{
    char name[600], msg[1024];
    unsigned char r[18];

    if (strcmp(x->mech, "PLAIN") == 0) {
        size_t ul = strlen(x->user), pl = strlen(x->password);
        /* RFC 4616: [authzid] NUL authcid NUL passwd */
        if (ul + pl + 2 > sizeof msg) {
            fail(x, "auth-failed");
            return;
        }
        msg[0] = '\0';
        memcpy(msg + 1, x->user, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, x->password, pl);
        send_auth(x, "PLAIN", msg, ul + pl + 2);
        OPENSSL_cleanse(msg, sizeof msg);
        return;
    }
    RAND_bytes(r, sizeof r);
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(x->cnonce + 2 * i, 3, "%02x", r[i]);
    saslname(x->user, name, sizeof name);
    snprintf(msg, sizeof msg, "n=%s,r=%s", name, x->cnonce);
    x->first_bare = strdup(msg);
    snprintf(msg, sizeof msg, "n,,n=%s,r=%s", name, x->cnonce);
    send_auth(x, x->mech, msg, strlen(msg));
}

/* attr finds "k=" in a SCRAM message and copies its value. */
static bool attr(const char *msg, char k, char *val, size_t len)
{
    for (const char *p = msg; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n >= 2 && p[0] == k && p[1] == '=' && n - 2 < len) {
            memcpy(val, p + 2, n - 2);
            val[n - 2] = '\0';
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

static void hmac(const EVP_MD *md, const unsigned char *key, size_t klen, const void *d,
                 size_t dlen, unsigned char *outb, unsigned *outlen)
{
    HMAC(md, key, (int)klen, d, dlen, outb, outlen);
}

/* scram_final answers the server-first-message (RFC 5802 §3). */
static void scram_final(struct xc *x, const char *server_first)
{
    char nonce[256], salt_b64[256], iter_s[16], without[400], *authmsg, *proof_b64;
    unsigned char *salt = NULL, salted[EVP_MAX_MD_SIZE], ck[EVP_MAX_MD_SIZE],
                  sk[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE], sig[EVP_MAX_MD_SIZE];
    size_t salt_len = 0, amlen;
    unsigned mdlen = (unsigned)EVP_MD_size(x->md), l;
    long iter;
    char final[700];

    if (!attr(server_first, 'r', nonce, sizeof nonce) ||
        !attr(server_first, 's', salt_b64, sizeof salt_b64) ||
        !attr(server_first, 'i', iter_s, sizeof iter_s) ||
        strncmp(nonce, x->cnonce, strlen(x->cnonce)) != 0 || x->first_bare == NULL) {
        fail(x, "auth-failed");
        return;
    }
    iter = strtol(iter_s, NULL, 10);
    xmpp_base64_decode_bin(x->ctx, salt_b64, strlen(salt_b64), &salt, &salt_len);
    if (salt == NULL || iter < 1 || iter > 10000000) {
        xmpp_free(x->ctx, salt);
        fail(x, "auth-failed");
        return;
    }
    PKCS5_PBKDF2_HMAC(x->password, (int)strlen(x->password), salt, (int)salt_len,
                      (int)iter, x->md, (int)mdlen, salted);
    xmpp_free(x->ctx, salt);
    hmac(x->md, salted, mdlen, "Client Key", 10, ck, &l);
    EVP_Digest(ck, mdlen, stored, NULL, x->md, NULL);
    hmac(x->md, salted, mdlen, "Server Key", 10, sk, &l);
    /* c=biws: base64 of the GS2 header "n,," (no channel binding). */
    snprintf(without, sizeof without, "c=biws,r=%s", nonce);
    amlen = strlen(x->first_bare) + strlen(server_first) + strlen(without) + 3;
    authmsg = malloc(amlen);
    if (authmsg == NULL) {
        fail(x, "auth-failed");
        return;
    }
    snprintf(authmsg, amlen, "%s,%s,%s", x->first_bare, server_first, without);
    hmac(x->md, stored, mdlen, authmsg, strlen(authmsg), sig, &l);
    for (unsigned i = 0; i < mdlen; i++)
        sig[i] ^= ck[i];
    hmac(x->md, sk, mdlen, authmsg, strlen(authmsg), x->server_sig, &x->server_sig_len);
    free(authmsg);
    proof_b64 = xmpp_base64_encode(x->ctx, sig, mdlen);
    snprintf(final, sizeof final, "%s,p=%s", without, proof_b64 != NULL ? proof_b64 : "");
    xmpp_free(x->ctx, proof_b64);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(ck, sizeof ck);
    {
        char *b64 =
            xmpp_base64_encode(x->ctx, (const unsigned char *) final, strlen(final));
        xmpp_send_raw_string(x->conn, "<response xmlns='%s'>%s</response>", XMPP_NS_SASL,
                             b64 != NULL ? b64 : "");
        xmpp_free(x->ctx, b64);
    }
}

/* scram_verify checks the server's signature in the additional data of
 * <success/> (RFC 5802 §3: "v="), so that a server that does not know the
 * password cannot pretend it does. */
static bool scram_verify(struct xc *x, const char *data)
{
    char v[256];
    unsigned char *sig = NULL;
    size_t len = 0;
    bool ok;

    if (data == NULL || !attr(data, 'v', v, sizeof v))
        return false;
    xmpp_base64_decode_bin(x->ctx, v, strlen(v), &sig, &len);
    ok = sig != NULL && len == x->server_sig_len &&
         CRYPTO_memcmp(sig, x->server_sig, len) == 0;
    xmpp_free(x->ctx, sig);
    return ok;
}

static char *decoded_text(struct xc *x, xmpp_stanza_t *st)
{
    char *b64 = xmpp_stanza_get_text(st), *s = NULL;

    if (b64 != NULL && b64[0] != '\0' && strcmp(b64, "=") != 0)
        s = xmpp_base64_decode_str(x->ctx, b64, strlen(b64));
    xmpp_free(x->ctx, b64);
    return s;
}

static int h_sasl(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    const char *name = xmpp_stanza_get_name(st);
    char *data;

    if (x->stage != ST_TLS || !top_ns(st, XMPP_NS_SASL))
        return 1;
    if (strcmp(name, "failure") == 0) {
        xmpp_stanza_t *c = xmpp_stanza_get_children(st);
        while (c != NULL &&
               (!xmpp_stanza_is_tag(c) || strcmp(xmpp_stanza_get_name(c), "text") == 0))
            c = xmpp_stanza_get_next(c);
        out("error %s", c != NULL ? xmpp_stanza_get_name(c) : "undefined-condition");
        fail(x, "auth-failed");
        return 1;
    }
    data = decoded_text(x, st);
    if (strcmp(name, "challenge") == 0 && x->md != NULL) {
        if (data == NULL)
            fail(x, "auth-failed");
        else
            scram_final(x, data);
    } else if (strcmp(name, "success") == 0) {
        if (x->md != NULL && !scram_verify(x, data)) {
            out("error server-signature");
            fail(x, "auth-failed");
        } else {
            /* RFC 6120 §6.4.6: a new stream after SASL success. */
            x->stage = ST_AUTHED;
            open_stream(x);
        }
    } else {
        fail(x, "auth-failed");
    }
    xmpp_free(x->ctx, data);
    return 1;
}

static int h_tls(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;

    if (!top_ns(st, NS_TLS) || x->stage != ST_PLAIN)
        return 1;
    if (strcmp(xmpp_stanza_get_name(st), "proceed") != 0) {
        out("error starttls-failure");
        fail(x, "tls-failed");
        return 1;
    }
    /* RFC 6120 §5.4.3.3: TLS right after <proceed/>, then a new stream. */
    if (xmpp_conn_tls_start(conn) != 0) {
        fail(x, "tls-failed");
        return 1;
    }
    x->stage = ST_TLS;
    open_stream(x);
    return 1;
}

static bool offers(struct xc *x, xmpp_stanza_t *features, const char *mech)
{
    xmpp_stanza_t *m =
        xmpp_stanza_get_child_by_name_and_ns(features, "mechanisms", XMPP_NS_SASL);

    for (xmpp_stanza_t *c = m != NULL ? xmpp_stanza_get_children(m) : NULL; c != NULL;
         c = xmpp_stanza_get_next(c)) {
        char *t = xmpp_stanza_is_tag(c) ? xmpp_stanza_get_text(c) : NULL;
        bool yes = t != NULL && strcmp(t, mech) == 0;
        xmpp_free(x->ctx, t);
        if (yes)
            return true;
    }
    return false;
}

static int h_features(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct xc *x = ud;
    xmpp_stanza_t *sess, *iq, *b, *r, *t;

    switch (x->stage) {
    case ST_PLAIN:
        if (xmpp_stanza_get_child_by_name_and_ns(st, "starttls", NS_TLS) == NULL) {
            fail(x, "no-starttls");
            return 1;
        }
        xmpp_send_raw_string(conn, "<starttls xmlns='%s'/>", NS_TLS);
        break;
    case ST_TLS:
        if (!offers(x, st, x->mech)) {
            out("error mechanism-not-offered");
            fail(x, "no-mechanism");
            return 1;
        }
        start_sasl(x);
        break;
    case ST_AUTHED:
        /* RFC 6121 / RFC 3921 session: only when offered and not optional. */
        sess = xmpp_stanza_get_child_by_name_and_ns(st, "session", NS_SESSION);
        x->want_session =
            sess != NULL && xmpp_stanza_get_child_by_name(sess, "optional") == NULL;
        /* Built as stanzas, so libstrophe escapes the resource. */
        iq = xmpp_iq_new(x->ctx, "set", "bind1");
        b = xmpp_stanza_new(x->ctx);
        xmpp_stanza_set_name(b, "bind");
        xmpp_stanza_set_ns(b, NS_BIND);
        if (x->resource[0] != '\0') {
            r = xmpp_stanza_new(x->ctx);
            t = xmpp_stanza_new(x->ctx);
            xmpp_stanza_set_name(r, "resource");
            xmpp_stanza_set_text(t, x->resource);
            xmpp_stanza_add_child(r, t);
            xmpp_stanza_add_child(b, r);
            xmpp_stanza_release(t);
            xmpp_stanza_release(r);
        }
        xmpp_stanza_add_child(iq, b);
        xmpp_stanza_release(b);
        xmpp_send(conn, iq);
        xmpp_stanza_release(iq);
        break;
    case ST_ONLINE:
        break;
    }
    return 1;
}

/* ---- the connection ---- */

static void add_handlers(struct xc *x)
{
    xmpp_handler_add(x->conn, h_message, NULL, "message", NULL, x);
    xmpp_handler_add(x->conn, h_presence, NULL, "presence", NULL, x);
    xmpp_handler_add(x->conn, h_iq, NULL, "iq", NULL, x);
}

static const char *stream_condition(xmpp_stream_error_t *se)
{
    if (se->stanza != NULL) {
        for (xmpp_stanza_t *c = xmpp_stanza_get_children(se->stanza); c != NULL;
             c = xmpp_stanza_get_next(c))
            if (xmpp_stanza_is_tag(c) && strcmp(xmpp_stanza_get_name(c), "text") != 0)
                return xmpp_stanza_get_name(c);
    }
    return "undefined-condition";
}

static void on_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
                    xmpp_stream_error_t *se, void *ud)
{
    struct xc *x = ud;

    switch (ev) {
    case XMPP_CONN_RAW_CONNECT:
        add_handlers(x);
        xmpp_handler_add(conn, h_features, XMPP_NS_STREAMS, "features", NULL, x);
        xmpp_handler_add(conn, h_tls, NS_TLS, NULL, NULL, x);
        xmpp_handler_add(conn, h_sasl, XMPP_NS_SASL, NULL, NULL, x);
        if (x->direct_tls) {
            /* XEP-0368: TLS first, then the stream, with no STARTTLS. */
            if (xmpp_conn_tls_start(conn) != 0) {
                fail(x, "tls-failed");
                return;
            }
            x->stage = ST_TLS;
        }
        open_stream(x);
        return;
    case XMPP_CONN_CONNECT:
        if (x->raw)
            return; /* a stream opened; the features drive the login */
        add_handlers(x);
        go_online(x, or_dash(xmpp_conn_get_bound_jid(conn)));
        return;
    case XMPP_CONN_DISCONNECT:
    case XMPP_CONN_FAIL:
        if (se != NULL) {
            out("error %s", stream_condition(se));
            set_reason(x, "stream-error");
        }
        if (x->quitting)
            set_reason(x, "quit");
        set_reason(x, x->stage == ST_ONLINE ? "closed" : "connect-failed");
        out("disconnected %s", x->reason);
        x->exit_code = x->quitting ? 0 : 1;
        x->ended = true;
        xmpp_stop(x->ctx);
        return;
    }
}

/* on_log classifies what libstrophe's own login (xmpp_connect_client) says
 * about a failure, and passes everything on with --verbose.  Stanzas are
 * logged at debug level with the area "xmpp" or "conn". */
static void on_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
    struct xc *x = ud;

    if (x->verbose)
        fprintf(stderr, "[%s] %s\n", area, msg);
    if (x->raw)
        return;
    if (strstr(msg, "Couldn't start TLS") != NULL ||
        strstr(msg, "No certfail handler set") != NULL ||
        strstr(msg, "TLS is not supported") != NULL ||
        strstr(msg, "TLS handshake") != NULL)
        set_reason(x, "tls-failed");
    else if (strstr(msg, "Cannot authenticate") != NULL)
        set_reason(x, "auth-failed");
    else if (strstr(msg, "RECV: <failure xmlns=\"" XMPP_NS_SASL "\"") != NULL ||
             strstr(msg, "RECV: <failure xmlns='" XMPP_NS_SASL "'") != NULL) {
        /* The first element inside is the condition (RFC 6120 §6.5). */
        const char *p = strchr(strstr(msg, "<failure") + 1, '<');
        char cond[64] = "undefined-condition";
        if (p != NULL && p[1] != '/')
            sscanf(p + 1, "%63[a-z-]", cond);
        out("error %s", cond);
    }
}

/* ---- stdin ---- */

static void command(struct xc *x, char *line)
{
    char *cmd = strtok(line, " "), *a = strtok(NULL, " "), *rest = strtok(NULL, "");

    if (cmd == NULL)
        return;
    if (strcmp(cmd, "quit") == 0) {
        x->quitting = true;
        xmpp_disconnect(x->conn);
    } else if (x->stage != ST_ONLINE) {
        fprintf(stderr, "xclient: not online yet: %s\n", cmd);
    } else if (strcmp(cmd, "msg") == 0 && a != NULL) {
        send_message(x, a, rest != NULL ? rest : "");
    } else if (strcmp(cmd, "iq-ping") == 0 && a != NULL) {
        send_ping(x, a);
    } else if (strcmp(cmd, "presence") == 0) {
        send_presence(x, NULL, NULL, a);
    } else if (strcmp(cmd, "directed") == 0 && a != NULL) {
        send_presence(x, rest, a, NULL);
    } else if (strcmp(cmd, "sub") == 0 && a != NULL) {
        send_presence(x, "subscribe", a, NULL);
    } else if (strcmp(cmd, "subscribed") == 0 && a != NULL) {
        send_presence(x, "subscribed", a, NULL);
    } else {
        fprintf(stderr, "xclient: unknown command: %s\n", cmd);
    }
}

/* read_stdin takes whatever stdin has now and runs each complete line. */
static void read_stdin(struct xc *x)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};

    while (!x->stdin_eof && poll(&p, 1, 0) > 0) {
        ssize_t n = read(0, x->line + x->line_len, sizeof x->line - 1 - x->line_len);
        if (n <= 0) {
            /* End of input: as quit, so a test that dies leaves no client. */
            x->stdin_eof = true;
            x->quitting = true;
            xmpp_disconnect(x->conn);
            return;
        }
        x->line_len += (size_t)n;
        for (;;) {
            char *nl = memchr(x->line, '\n', x->line_len);
            size_t len;
            if (nl == NULL)
                break;
            *nl = '\0';
            len = (size_t)(nl - x->line) + 1;
            command(x, x->line);
            memmove(x->line, x->line + len, x->line_len - len);
            x->line_len -= len;
        }
        if (x->line_len == sizeof x->line - 1)
            x->line_len = 0; /* a line too long: dropped */
    }
}

/* ---- main ---- */

static int usage(void)
{
    fprintf(
        stderr,
        "usage: xclient --jid user@domain[/res] --password P --host ADDR [--port "
        "5222]\n"
        "               --ca ca.pem [--mech SCRAM-SHA-256|SCRAM-SHA-1|PLAIN]\n"
        "               [--tls-name NAME] [--direct-tls] [--timeout S] [--verbose]\n");
    return 2;
}

/* split_jid fills user, domain and resource from x->jid. */
static bool split_jid(struct xc *x)
{
    const char *at = strchr(x->jid, '@'), *slash;

    if (at == NULL || at == x->jid)
        return false;
    slash = strchr(at, '/');
    snprintf(x->user, sizeof x->user, "%.*s", (int)(at - x->jid), x->jid);
    snprintf(x->domain, sizeof x->domain, "%.*s",
             (int)(slash != NULL ? slash - at - 1 : (long)strlen(at + 1)), at + 1);
    snprintf(x->resource, sizeof x->resource, "%s", slash != NULL ? slash + 1 : "");
    return x->domain[0] != '\0';
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"jid", required_argument, NULL, 'j'},
                                         {"password", required_argument, NULL, 'p'},
                                         {"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'P'},
                                         {"ca", required_argument, NULL, 'c'},
                                         {"mech", required_argument, NULL, 'm'},
                                         {"tls-name", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"direct-tls", no_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    struct xc x = {.port = 5222, .exit_code = 1};
    long timeout_s = 600;
    xmpp_log_t log = {.handler = on_log, .userdata = &x};
    struct timespec t0, now;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            x.jid = optarg;
            break;
        case 'p':
            x.password = optarg;
            break;
        case 'h':
            x.host = optarg;
            break;
        case 'P':
            x.port = atoi(optarg);
            break;
        case 'c':
            x.ca = optarg;
            break;
        case 'm':
            x.mech = optarg;
            break;
        case 'n':
            x.tls_name = optarg;
            break;
        case 't':
            timeout_s = atol(optarg);
            break;
        case 'v':
            x.verbose = true;
            break;
        case 'd':
            x.direct_tls = true;
            break;
        default:
            return usage();
        }
    }
    if (x.jid == NULL || x.password == NULL || x.host == NULL || x.ca == NULL ||
        !split_jid(&x) || x.port <= 0 || x.port > 65535)
        return usage();
    if (x.mech != NULL) {
        if (strcmp(x.mech, "SCRAM-SHA-256") == 0)
            x.md = EVP_sha256();
        else if (strcmp(x.mech, "SCRAM-SHA-1") == 0)
            x.md = EVP_sha1();
        else if (strcmp(x.mech, "PLAIN") != 0)
            return usage();
    }
    x.raw = x.mech != NULL || (x.tls_name != NULL && strcmp(x.tls_name, x.domain) != 0);
    if (x.raw && x.mech == NULL) {
        x.mech = "SCRAM-SHA-256";
        x.md = EVP_sha256();
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    xmpp_initialize();
    x.ctx = xmpp_ctx_new(NULL, &log);
    x.conn = xmpp_conn_new(x.ctx);
    xmpp_conn_set_cafile(x.conn, x.ca);
    if (x.raw) {
        /* libstrophe checks the certificate against the JID's domain: give
         * it the name to check; the stream's 'to' is set by open_stream. */
        xmpp_conn_set_jid(x.conn, x.tls_name != NULL ? x.tls_name : x.domain);
        c = xmpp_connect_raw(x.conn, x.host, (unsigned short)x.port, on_conn, &x);
    } else {
        xmpp_conn_set_flags(x.conn, XMPP_CONN_FLAG_MANDATORY_TLS |
                                        (x.direct_tls ? XMPP_CONN_FLAG_LEGACY_SSL : 0));
        xmpp_conn_set_jid(x.conn, x.jid);
        xmpp_conn_set_pass(x.conn, x.password);
        c = xmpp_connect_client(x.conn, x.host, (unsigned short)x.port, on_conn, &x);
    }
    if (c != XMPP_EOK) {
        out("disconnected connect-failed");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!x.ended) {
        xmpp_run_once(x.ctx, 20);
        if (!x.ended)
            read_stdin(&x);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!x.ended && now.tv_sec - t0.tv_sec > timeout_s) {
            out("disconnected timeout");
            x.exit_code = 3;
            break;
        }
    }
    free(x.first_bare);
    xmpp_conn_release(x.conn);
    xmpp_ctx_free(x.ctx);
    xmpp_shutdown();
    return x.exit_code;
}
