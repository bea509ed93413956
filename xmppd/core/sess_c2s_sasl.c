/* sess_c2s_sasl.c: SASL for a client session (RFC 6120 §6): SCRAM-SHA-256,
 * SCRAM-SHA-1 and their -PLUS variants through scram.h (RFC 5802, 7677,
 * channel binding RFC 5929 / RFC 9266, downgrade protection XEP-0474),
 * PLAIN (RFC 4616) only under TLS and when enabled; the failures of §6.5
 * and a limit on failed attempts per connection.
 *
 * Secrets: the password of a PLAIN login and SCRAM's keys are wiped after
 * use and never logged; the log says who failed from where and why. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "repl.h"
#include "err.h"
#include "precis.h"
#include "scram.h"
#include "sess_c2s_int.h"
#include "srv_int.h"

#define C2S_CB_EXPORTER "tls-exporter"         /* RFC 9266 */
#define C2S_CB_ENDPOINT "tls-server-end-point" /* RFC 5929 §4 */

/* c2s_prepare_user prepares a SASL username as a JID localpart (RFC 7622
 * §3.3: PRECIS UsernameCaseMapped, RFC 8265 §3.3), as accounts are stored.
 * Returns an owned string, or NULL (out of memory, or a name no account
 * can have). */
static char *c2s_prepare_user(const char *user)
{
    char out[CL_USER_MAX + 1];

    if (precis_username(user, strlen(user), out, sizeof out) < 0)
        return NULL;
    return strdup(out);
}

/* c2s_cb_types fills c->cb with the channel-binding types this connection
 * offers (scram.h), strongest first: tls-exporter on TLS 1.3 (RFC 9266),
 * and tls-server-end-point (RFC 5929 §4) always, which XEP-0440 §4 makes a
 * MUST for servers; none when the edge gave no data for them.  c->cb_types
 * lists their names for the features and XEP-0474. */
static void c2s_cb_types(struct sess_c2s *c)
{
    const char *name[2];
    const unsigned char *data[2];
    size_t len[2], n = 0;

    if (c->secured && c->tls.tls13 && c->tls.exporter_len > 0) {
        name[n] = C2S_CB_EXPORTER;
        data[n] = c->tls.exporter;
        len[n++] = c->tls.exporter_len;
    }
    if (c->secured && c->tls.endpoint_len > 0) {
        name[n] = C2S_CB_ENDPOINT;
        data[n] = c->tls.endpoint;
        len[n++] = c->tls.endpoint_len;
    }
    c->cb = (struct scram_cb){
        .tls = c->secured, .y_ok = c->cb_type_refused, .algs = c->base.srv->scram_algs};
    for (size_t i = 0; i < n; i++)
        c->cb_types[i] = name[i];
    c->cb_types[n] = NULL;
    if (n > 0) {
        c->cb.cb_name = name[0];
        c->cb.cb_data = data[0];
        c->cb.cb_len = len[0];
        c->cb.cb_types = c->cb_types;
    }
    if (n > 1) {
        c->cb.alt_name = name[1];
        c->cb.alt_data = data[1];
        c->cb.alt_len = len[1];
    }
}

int c2s__sasl_features(struct sess_c2s *c, struct buf *b)
{
    size_t n = 0;
    int rc;

    c2s_cb_types(c);

    /* Strongest first (RFC 6120 §6.3.3: the server lists them in order of
     * preference). */
    if (c->cb.cb_name != NULL) {
        c->mechs[n++] = scram_mech_name(SCRAM_SHA256, true);
        c->mechs[n++] = scram_mech_name(SCRAM_SHA1, true);
    }
    c->mechs[n++] = scram_mech_name(SCRAM_SHA256, false);
    c->mechs[n++] = scram_mech_name(SCRAM_SHA1, false);
    if (c->secured && c->base.srv->cfg.sasl_plain)
        c->mechs[n++] = "PLAIN";
    c->mechs[n] = NULL;
    c->cb.mechs = c->mechs;
    rc = buf_printf(b, "<mechanisms xmlns='%s'>", C2S_NS_SASL);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = buf_printf(b, "<mechanism>%s</mechanism>", c->mechs[i]);
    if (rc == 0)
        rc = buf_puts(b, "</mechanisms>");
    /* XEP-0440 §2: the channel-binding types the server supports. */
    if (rc == 0 && c->cb_types[0] != NULL) {
        rc = buf_printf(b, "<sasl-channel-binding xmlns='%s'>", C2S_NS_SASL_CB);
        for (size_t i = 0; rc == 0 && c->cb_types[i] != NULL; i++)
            rc = buf_printf(b, "<channel-binding type='%s'/>", c->cb_types[i]);
        if (rc == 0)
            rc = buf_puts(b, "</sasl-channel-binding>");
    }
    return rc;
}

void c2s__sasl_clear(struct sess_c2s *c)
{
    if (c->scram != NULL) {
        scram_server_clear(c->scram);
        sodium_memzero(c->scram, sizeof *c->scram);
        free(c->scram);
        c->scram = NULL;
    }
    c->sasl_need_first = false;
}

/* c2s_sasl_answer sends a failure answer (held back or not) and, after
 * SRV_C2S_MAX_AUTH_FAILURES failures, closes the stream with
 * policy-violation (RFC 6120 §6.4.5: a limited number of retries). */
static void c2s_sasl_answer(struct sess_c2s *c, const char *bytes)
{
    if (c2s__write(c, bytes, strlen(bytes)) < 0)
        return;
    if (c->auth_failures >= SRV_C2S_MAX_AUTH_FAILURES)
        sess_fail(&c->base, XS_COND_POLICY_VIOLATION, "too many failed logins");
}

void c2s__sasl_release(struct sess_c2s *c)
{
    char *held = c->held;

    c->held = NULL;
    if (held != NULL)
        c2s_sasl_answer(c, held);
    free(held);
}

/* c2s_sasl_fail_as ends the attempt with <failure><cond/></failure> (RFC
 * 6120 §6.4.5, §6.5).  counts: the failure counts for the peer's address
 * and the account (srv_throttle.c), and the answer may be held back for a
 * while.  c2s_sasl_fail counts a wrong password, an unknown user or a
 * refused binding (not-authorized); a binding type this server does not
 * offer is not a guess and does not count. */
static void c2s_sasl_fail_as(struct sess_c2s *c, const char *cond, const char *why,
                             bool counts)
{
    struct srv *srv = c->base.srv;
    struct buf *b = &srv->out;
    uint64_t delay = 0;

    c2s__sasl_clear(c);
    c->step = SESS_C2S_NEGOTIATE;
    c->auth_failures++;
    srv->stats.login_failures++;
    minute_add(&srv->failures_minute, srv->now_ms, 1);
    if (counts)
        delay = srv__thr_failed(srv, c->base.peer, c->user_known ? c->user : NULL);
    SRV_LOG(srv, LOG_INFO,
            "c%" PRIu64 " client login failed from %s: user %s, %s: %s (%s)%s",
            c->base.conn, c->base.peer, c->user != NULL ? c->user : "-",
            c->mech != NULL ? c->mech : "no mechanism", why, cond,
            delay > 0 ? ", answer delayed" : "");
    free(c->user);
    c->user = NULL;
    c->user_known = false;
    buf_reset(b);
    if (buf_printf(b, "<failure xmlns='%s'><%s/></failure>", C2S_NS_SASL, cond) < 0) {
        sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    if (delay > 0 && (c->held = strdup(b->data)) != NULL) {
        c->held_until = srv->now_ms + delay;
        return;
    }
    c2s_sasl_answer(c, b->data);
}

static void c2s_sasl_fail(struct sess_c2s *c, const char *cond, const char *why)
{
    c2s_sasl_fail_as(c, cond, why, strcmp(cond, "not-authorized") == 0);
}

/* c2s_blocked refuses the attempt when the peer's address (or, user not
 * NULL, the account) is blocked after too many failures: true, answered
 * with temporary-auth-failure (RFC 6120 §6.5.11: try again later). */
static bool c2s_blocked(struct sess_c2s *c, const char *user)
{
    struct srv *srv = c->base.srv;

    if (!srv__thr_check(srv, c->base.peer, user))
        return false;
    srv->stats.login_refused++;
    c2s_sasl_fail(c, "temporary-auth-failure", "blocked after failed logins");
    return true;
}

/* c2s_b64 decodes the base64 text of el (RFC 6120 §6.4.2: "=" is an empty
 * response, no text is no response) into *out (owned, NUL-terminated;
 * wipe it), *len.  *out is NULL for no response.  XE_PROTO: bad base64. */
static int c2s_b64(const struct stz *el, unsigned char **out, size_t *len)
{
    char *text = stz_text(el);
    const char *end = NULL;
    size_t n;
    int rc = 0;

    *out = NULL;
    *len = 0;
    if (text == NULL)
        return XE_NOMEM;
    n = strlen(text);
    if (n == 0)
        goto done;
    *out = malloc(n + 1);
    if (*out == NULL) {
        rc = XE_NOMEM;
        goto done;
    }
    if (strcmp(text, "=") != 0 &&
        (sodium_base642bin(*out, n, text, n, " \t\r\n", len, &end,
                           sodium_base64_VARIANT_ORIGINAL) != 0 ||
         end != text + n)) {
        free(*out);
        *out = NULL;
        rc = XE_PROTO;
        goto done;
    }
    (*out)[*len] = '\0';
done:
    sodium_memzero(text, strlen(text));
    free(text);
    return rc;
}

/* c2s_send_b64 writes <name xmlns=sasl>base64(data)</name>. */
static int c2s_send_b64(struct sess_c2s *c, const char *name, const void *data,
                        size_t len)
{
    struct buf *b = &c->base.srv->out;
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *enc = malloc(cap);
    int rc;

    if (enc == NULL)
        return XE_NOMEM;
    sodium_bin2base64(enc, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
    buf_reset(b);
    rc = buf_printf(b, "<%s xmlns='%s'>%s</%s>", name, C2S_NS_SASL, enc, name);
    free(enc);
    return rc < 0 ? rc : c2s__write(c, b->data, b->len);
}

/* c2s_creds finds the SCRAM credentials of user for hash h, or NULL. */
static bool c2s_creds(const struct srv *srv, const char *user, enum scram_hash h,
                      struct scram_creds *out)
{
    const struct cl_user *u = srv->accounts ? cl_user_find(srv->accounts, user) : NULL;
    const struct cl_scram *k = u == NULL           ? NULL
                               : h == SCRAM_SHA256 ? &u->sha256
                                                   : &u->sha1;

    if (k == NULL || !k->present)
        return false;
    *out = (struct scram_creds){k->salt, k->salt_len, k->iterations, k->stored_key,
                                k->server_key};
    return true;
}

/* c2s_scram_first takes the client-first-message and answers with the
 * server-first-message in a <challenge/>. */
static void c2s_scram_first(struct sess_c2s *c, const unsigned char *msg, size_t len)
{
    struct srv *srv = c->base.srv;
    char user[SCRAM_USER_MAX + 1];
    unsigned char nonce[SCRAM_NONCE_BYTES];
    struct scram_creds creds;
    struct buf out = {0};
    int rc;

    rc = scram_server_client_first(c->scram, (const char *)msg, len, user, sizeof user);
    if (rc == XE_AUTH) {
        /* RFC 5802 §6: a channel-binding flag the server must refuse (a
         * downgrade, or binding where none was offered). */
        c2s_sasl_fail(c, "not-authorized", "channel-binding flag refused");
        return;
    }
    if (rc == XE_UNSUPPORTED) {
        /* RFC 5802 §7 unsupported-channel-binding-type: not a wrong
         * credential (not throttled); the client may now say 'y'. */
        c->cb_type_refused = true;
        c2s_sasl_fail_as(c, "not-authorized", "unsupported channel-binding type", false);
        return;
    }
    if (rc < 0) {
        c2s_sasl_fail(c, rc == XE_NOMEM ? "temporary-auth-failure" : "malformed-request",
                      "client-first-message");
        return;
    }
    free(c->user);
    c->user = c2s_prepare_user(user);
    if (c->user != NULL && c2s_blocked(c, c->user))
        return;
    c->user_known = c->user != NULL && c2s_creds(srv, c->user, c->scram->hash, &creds);
    srv->env.random(srv->env.ud, nonce, sizeof nonce);
    rc = scram_server_first(c->scram, c->user_known ? &creds : NULL, nonce, srv->fake_key,
                            &out);
    if (rc == 0)
        rc = c2s_send_b64(c, "challenge", out.data, out.len);
    buf_free(&out);
    if (rc < 0 && c->base.state != SESS_CLOSED)
        c2s_sasl_fail(c, "temporary-auth-failure", xe_strerror(rc));
}

/* c2s_scram_final checks the client-final-message: <success/> with the
 * server-final-message (RFC 6120 §6.4.6: additional data with success), or
 * a failure. */
static void c2s_scram_final(struct sess_c2s *c, const unsigned char *msg, size_t len)
{
    struct buf out = {0};
    int rc = scram_server_final(c->scram, (const char *)msg, len, &out);

    if (rc == 0) {
        c2s__sasl_clear(c);
        rc = c2s_send_b64(c, "success", out.data, out.len);
        buf_free(&out);
        if (rc == 0)
            c2s__sasl_success(c);
        else if (c->base.state != SESS_CLOSED)
            sess_fail(&c->base, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    buf_free(&out);
    if (rc == XE_AUTH)
        c2s_sasl_fail(c, "not-authorized",
                      c->user_known ? "wrong password or binding" : "unknown user");
    else
        c2s_sasl_fail(c, rc == XE_NOMEM ? "temporary-auth-failure" : "malformed-request",
                      "client-final-message");
}

/* c2s_own_authzid tells whether authzid names c->user's own account (its
 * bare JID, or the username alone). */
static bool c2s_own_authzid(const struct sess_c2s *c, const char *authzid)
{
    size_t n = strlen(c->user);
    const char *domain = c->base.srv->domain;

    if (strcmp(authzid, c->user) == 0)
        return true;
    return strncmp(authzid, c->user, n) == 0 && authzid[n] == '@' &&
           strcmp(authzid + n + 1, domain) == 0;
}

/* c2s_plain checks a PLAIN message authzid NUL authcid NUL passwd (RFC 4616
 * §2) against the account's SCRAM-SHA-256 StoredKey: the password is
 * derived once (PBKDF2, RFC 5802 §3) and compared in constant time. */
static void c2s_plain(struct sess_c2s *c, unsigned char *msg, size_t len)
{
    const char *authz = (const char *)msg, *authc, *pass;
    unsigned char stored[SCRAM_KEY_MAX], server[SCRAM_KEY_MAX];
    char prepared[1024]; /* the prepared password, wiped */
    struct scram_creds creds;
    size_t za = strnlen(authz, len), zc, zp;
    bool ok = false;

    if (za >= len)
        goto malformed;
    authc = authz + za + 1;
    zc = strnlen(authc, len - za - 1);
    if (za + 1 + zc >= len)
        goto malformed;
    pass = authc + zc + 1;
    zp = len - za - zc - 2;
    if (zc == 0 || zp == 0 || strnlen(pass, zp) != zp)
        goto malformed;
    free(c->user);
    c->user = c2s_prepare_user(authc);
    if (c->user != NULL && c2s_blocked(c, c->user))
        return;
    c->user_known =
        c->user != NULL && c2s_creds(c->base.srv, c->user, SCRAM_SHA256, &creds);
    /* RFC 6120 §6.3.8: an authorization identity other than the account's
     * own bare JID is not supported (§6.5.6 invalid-authzid). */
    if (c->user_known && za > 0 && !c2s_own_authzid(c, authz)) {
        c2s_sasl_fail(c, "invalid-authzid", "authorization identity");
        return;
    }
    /* RFC 8265 §4: the password is prepared (OpaqueString) as when the
     * credentials were made. */
    if (c->user_known && precis_opaque(pass, zp, prepared, sizeof prepared) == 0 &&
        scram_derive(SCRAM_SHA256, prepared, strlen(prepared), creds.salt, creds.salt_len,
                     creds.iterations, stored, server) == 0)
        ok = sodium_memcmp(stored, creds.stored_key, scram_key_len(SCRAM_SHA256)) == 0;
    sodium_memzero(prepared, sizeof prepared);
    sodium_memzero(stored, sizeof stored);
    sodium_memzero(server, sizeof server);
    if (!ok) {
        c2s_sasl_fail(c, "not-authorized",
                      c->user_known ? "wrong password" : "unknown user");
        return;
    }
    buf_reset(&c->base.srv->out);
    if (buf_printf(&c->base.srv->out, "<success xmlns='%s'/>", C2S_NS_SASL) == 0 &&
        c2s__write(c, c->base.srv->out.data, c->base.srv->out.len) == 0)
        c2s__sasl_success(c);
    return;
malformed:
    c2s_sasl_fail(c, "malformed-request", "PLAIN message");
}

/* c2s_offered tells whether mech is one of the mechanisms offered. */
static bool c2s_offered(const struct sess_c2s *c, const char *mech)
{
    for (size_t i = 0; c->mechs[i] != NULL; i++)
        if (strcmp(c->mechs[i], mech) == 0)
            return true;
    return false;
}

/* c2s_auth starts an exchange (RFC 6120 §6.4.2). */
static void c2s_auth(struct sess_c2s *c, const struct stz *el)
{
    const char *mech = stz_attr(el, "mechanism");
    unsigned char *msg = NULL;
    size_t len = 0;
    int rc;

    c->mech = NULL;
    /* §6.5.4 encryption-required: TLS first (policy), and PLAIN never in
     * the clear. */
    if (!c->secured && (c->base.srv->cfg.c2s_tls_required ||
                        (mech != NULL && strcmp(mech, "PLAIN") == 0))) {
        c2s_sasl_fail(c, "encryption-required", "authentication before TLS");
        return;
    }
    if (mech == NULL || !c2s_offered(c, mech)) {
        c2s_sasl_fail(c, "invalid-mechanism", "mechanism not offered"); /* §6.5.7 */
        return;
    }
    c->mech = strcmp(mech, "PLAIN") == 0 ? "PLAIN" : mech;
    if (c2s_blocked(c, NULL))
        return;
    rc = c2s_b64(el, &msg, &len);
    if (rc < 0) {
        c2s_sasl_fail(c, rc == XE_PROTO ? "incorrect-encoding" : "temporary-auth-failure",
                      "initial response"); /* §6.5.5 */
        return;
    }
    if (strcmp(mech, "PLAIN") == 0) {
        if (msg == NULL) /* PLAIN needs its initial response here */
            c2s_sasl_fail(c, "malformed-request", "no initial response");
        else
            c2s_plain(c, msg, len);
    } else {
        bool plus = strstr(mech, "-PLUS") != NULL;
        enum scram_hash h =
            strncmp(mech, "SCRAM-SHA-256", 13) == 0 ? SCRAM_SHA256 : SCRAM_SHA1;
        c->mech = scram_mech_name(h, plus);
        c->scram = calloc(1, sizeof *c->scram);
        c->cb.y_ok = c->cb_type_refused;
        if (c->scram == NULL || scram_server_init(c->scram, h, plus, &c->cb) < 0) {
            c2s_sasl_fail(c, "temporary-auth-failure", "scram init");
        } else if (msg == NULL) {
            /* §6.4.2: no initial response: an empty challenge asks for it. */
            c->step = SESS_C2S_SASL;
            c->sasl_need_first = true;
            buf_reset(&c->base.srv->out);
            if (buf_printf(&c->base.srv->out, "<challenge xmlns='%s'/>", C2S_NS_SASL) ==
                0)
                c2s__write(c, c->base.srv->out.data, c->base.srv->out.len);
        } else {
            c->step = SESS_C2S_SASL;
            c2s_scram_first(c, msg, len);
        }
    }
    if (msg != NULL) {
        sodium_memzero(msg, len);
        free(msg);
    }
}

/* c2s_response continues an exchange (RFC 6120 §6.4.3). */
static void c2s_response(struct sess_c2s *c, const struct stz *el)
{
    unsigned char *msg = NULL;
    size_t len = 0;
    int rc = c2s_b64(el, &msg, &len);

    if (rc < 0) {
        c2s_sasl_fail(c, rc == XE_PROTO ? "incorrect-encoding" : "temporary-auth-failure",
                      "response");
    } else if (c->sasl_need_first) {
        c->sasl_need_first = false;
        if (msg == NULL)
            c2s_sasl_fail(c, "malformed-request", "empty response");
        else
            c2s_scram_first(c, msg, len);
    } else {
        c2s_scram_final(c, msg != NULL ? msg : (unsigned char *)"", len);
    }
    if (msg != NULL) {
        sodium_memzero(msg, len);
        free(msg);
    }
}

void c2s__sasl_element(struct sess_c2s *c, const struct stz *el)
{
    if (c->step == SESS_C2S_NEGOTIATE && strcmp(el->name, "auth") == 0) {
        c2s_auth(c, el);
    } else if (c->step == SESS_C2S_SASL && strcmp(el->name, "response") == 0) {
        c2s_response(c, el);
    } else if (c->step == SESS_C2S_SASL && strcmp(el->name, "abort") == 0) {
        c2s_sasl_fail(c, "aborted", "client aborted"); /* §6.4.4, §6.5.1 */
    } else if (c->step == SESS_C2S_NEGOTIATE || c->step == SESS_C2S_SASL) {
        /* an element out of order, or one SASL does not define */
        c2s_sasl_fail(c, "malformed-request", "unexpected SASL element");
    } else {
        sess_fail(&c->base, XS_COND_NOT_AUTHORIZED, "SASL before the stream header");
    }
}
