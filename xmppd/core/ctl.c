/* ctl.c: the control protocol codec: frames, request validation, dispatch.
 * See ctl.h and docs/control-protocol.md. */
#include "ctl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "bytecur.h"
#include "err.h"

int ctl_error_set(struct ctl_error *err, const char *code, const char *fmt, ...)
{
    if (err == NULL)
        return XE_INVAL;
    snprintf(err->code, sizeof err->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    for (char *p = err->message; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return XE_INVAL;
}

const char *ctl_error_code_for(int xe)
{
    switch (xe) {
    case XE_INVAL:
    case XE_XML:
        return CTL_E_INVALID_ARGUMENT;
    case XE_NOTFOUND:
        return "not-found";
    case XE_EXISTS:
        return "exists";
    case XE_LIMIT:
        return "limit";
    case XE_STATE:
    case XE_EXPIRED: /* a late copy of a settled write: refused */
        return "state";
    case XE_IO:
    case XE_CLOSED:
        return "io";
    case XE_PERM:
        return "permission";
    case XE_CORRUPT:
        return "corrupt";
    case XE_AUTH:
        return "auth";
    case XE_TLS:
        return "tls";
    case XE_PROTO:
        return CTL_E_BAD_REQUEST;
    case XE_TIMEOUT:
        return "timeout";
    case XE_NOLEADER:
        return "no-leader";
    case XE_BUSY:
        return "busy";
    case XE_UNSUPPORTED:
        return CTL_E_NOT_IMPLEMENTED;
    default:
        return CTL_E_INTERNAL;
    }
}

/* ---- framing ---------------------------------------------------------- */

int ctl_frame_encode(const json_t *msg, size_t max, struct buf *out)
{
    size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
    if (n == 0)
        return XE_INVAL;
    if (n > max || n > UINT32_MAX)
        return XE_LIMIT;
    size_t start = out->len;
    int rc = buf_reserve(out, 4 + n);
    if (rc < 0)
        return rc;
    unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    memcpy(out->data + start, hdr, 4);
    if (json_dumpb(msg, out->data + start + 4, n, JSON_COMPACT) != n)
        return XE_INVAL;
    out->len = start + 4 + n;
    out->data[out->len] = '\0';
    return 0;
}

void ctl_dec_init(struct ctl_dec *d, size_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max;
}

void ctl_dec_free(struct ctl_dec *d)
{
    /* Requests may carry secrets (passwords, call-bridge secrets). */
    if (d->in.data != NULL)
        sodium_memzero(d->in.data, d->in.cap);
    buf_free(&d->in);
    d->failed = false;
}

size_t ctl_dec_pending(const struct ctl_dec *d)
{
    return d->in.len;
}

static uint32_t frame_len(const struct ctl_dec *d)
{
    return rd_be32_at((const unsigned char *)d->in.data);
}

int ctl_dec_feed(struct ctl_dec *d, const void *data, size_t len)
{
    if (d->failed)
        return XE_STATE;
    if (len == 0)
        return 0;
    /* Never keep more than one maximal frame plus its header: anything past
     * that is either a following frame (kept once this one is taken) or an
     * oversized one (which ctl_dec_next rejects from its header alone). */
    if (d->in.len >= 4 && frame_len(d) > d->max)
        return 0;
    return buf_append(&d->in, data, len);
}

int ctl_dec_next(struct ctl_dec *d, json_t **msg, struct ctl_error *err)
{
    *msg = NULL;
    if (d->failed)
        return XE_STATE;
    if (d->in.len < 4)
        return 0;
    uint32_t n = frame_len(d);
    if (n > d->max) {
        d->failed = true;
        buf_free(&d->in);
        ctl_error_set(err, CTL_E_TOO_LARGE,
                      "request of %" PRIu32 " bytes is over the limit of %zu bytes; "
                      "send smaller requests",
                      n, d->max);
        return XE_LIMIT;
    }
    if (d->in.len - 4 < n)
        return 0;
    if (n == 0) {
        buf_consume(&d->in, 4);
        ctl_error_set(err, CTL_E_BAD_REQUEST,
                      "empty frame; each frame must hold one JSON object");
        return XE_CORRUPT;
    }
    json_error_t jerr;
    json_t *v = json_loadb(d->in.data + 4, n, JSON_REJECT_DUPLICATES, &jerr);
    size_t was = d->in.len;
    buf_consume(&d->in, 4 + (size_t)n);
    /* The frame may hold a secret: no copy stays behind the live bytes. */
    sodium_memzero(d->in.data + d->in.len, was - d->in.len);
    if (v == NULL) {
        /* jansson quotes the bytes "near" the error: they may be part of a
         * password, and this message is logged.  Keep only the reason. */
        char *near = strstr(jerr.text, " near ");
        if (near != NULL)
            *near = '\0';
        ctl_error_set(err, CTL_E_BAD_REQUEST, "frame is not valid JSON (%s at byte %d)",
                      jerr.text, jerr.position);
        sodium_memzero(&jerr, sizeof jerr);
        return XE_CORRUPT;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        ctl_error_set(err, CTL_E_BAD_REQUEST, "frame must hold a JSON object");
        return XE_CORRUPT;
    }
    *msg = v;
    return 1;
}

/* ---- requests and responses ------------------------------------------- */

static bool valid_cmd(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CTL_MAX_CMD)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int ctl_request_parse(json_t *msg, struct ctl_request *req, struct ctl_error *err)
{
    memset(req, 0, sizeof *req);
    json_t *id = json_object_get(msg, "id");
    if (json_is_integer(id)) {
        req->id = json_integer_value(id);
        req->has_id = true;
    }
    json_t *v = json_object_get(msg, "v");
    if (v == NULL) {
        ctl_error_set(err, CTL_E_BAD_REQUEST,
                      "request has no \"v\" field; send {\"v\":%d,...}", CTL_VERSION);
        return XE_PROTO;
    }
    if (!json_is_integer(v) || json_integer_value(v) != CTL_VERSION) {
        ctl_error_set(err, CTL_E_VERSION,
                      "protocol version not supported; this daemon speaks version %d: "
                      "use an mmp-cli of the same release",
                      CTL_VERSION);
        return XE_PROTO;
    }
    if (!req->has_id) {
        ctl_error_set(err, CTL_E_BAD_REQUEST,
                      id == NULL ? "request has no \"id\" field; add an integer id"
                                 : "request \"id\" must be an integer");
        return XE_PROTO;
    }
    json_t *cmd = json_object_get(msg, "cmd");
    if (cmd == NULL || !json_is_string(cmd)) {
        ctl_error_set(err, CTL_E_BAD_REQUEST,
                      cmd == NULL ? "request has no \"cmd\" field; name a command"
                                  : "request \"cmd\" must be a string");
        return XE_PROTO;
    }
    if (!valid_cmd(json_string_value(cmd))) {
        ctl_error_set(err, CTL_E_BAD_REQUEST,
                      "request \"cmd\" must be 1-%d characters of a-z, 0-9, '.', '-'",
                      CTL_MAX_CMD);
        return XE_PROTO;
    }
    json_t *args = json_object_get(msg, "args");
    if (args != NULL && !json_is_object(args)) {
        ctl_error_set(err, CTL_E_BAD_REQUEST, "request \"args\" must be an object");
        return XE_PROTO;
    }
    const char *key;
    json_t *val;
    json_object_foreach(msg, key, val)
    {
        if (strcmp(key, "v") != 0 && strcmp(key, "id") != 0 && strcmp(key, "cmd") != 0 &&
            strcmp(key, "args") != 0) {
            ctl_error_set(err, CTL_E_BAD_REQUEST,
                          "unknown request field \"%.64s\"; allowed: v, id, cmd, args",
                          key);
            return XE_PROTO;
        }
    }
    req->cmd = json_string_value(cmd);
    req->args = args;
    return 0;
}

json_t *ctl_request_new(json_int_t id, const char *cmd, json_t *args)
{
    json_t *m = json_object();
    if (m == NULL)
        goto err;
    if (json_object_set_new(m, "v", json_integer(CTL_VERSION)) < 0 ||
        json_object_set_new(m, "id", json_integer(id)) < 0 ||
        json_object_set_new(m, "cmd", json_string(cmd)) < 0)
        goto err;
    if (args != NULL && json_object_set_new(m, "args", args) < 0) {
        args = NULL; /* set_new consumed it even on failure */
        goto err;
    }
    return m;
err:
    json_decref(args);
    json_decref(m);
    return NULL;
}

json_t *ctl_response_ok(json_int_t id, json_t *result)
{
    json_t *m = json_object();
    if (result == NULL)
        result = json_object();
    if (m == NULL || result == NULL)
        goto err;
    if (json_object_set_new(m, "v", json_integer(CTL_VERSION)) < 0 ||
        json_object_set_new(m, "id", json_integer(id)) < 0 ||
        json_object_set_new(m, "ok", json_true()) < 0)
        goto err;
    if (json_object_set_new(m, "result", result) < 0) {
        result = NULL;
        goto err;
    }
    return m;
err:
    json_decref(result);
    json_decref(m);
    return NULL;
}

json_t *ctl_response_error(bool has_id, json_int_t id, const struct ctl_error *err)
{
    json_t *m = json_object();
    if (m == NULL)
        return NULL;
    const char *code = err != NULL && err->code[0] ? err->code : CTL_E_INTERNAL;
    const char *msg = err != NULL && err->message[0] ? err->message : "internal error";
    if (json_object_set_new(m, "v", json_integer(CTL_VERSION)) < 0 ||
        json_object_set_new(m, "id", has_id ? json_integer(id) : json_null()) < 0 ||
        json_object_set_new(m, "ok", json_false()) < 0 ||
        json_object_set_new(m, "error",
                            json_pack("{s:s, s:s}", "code", code, "message", msg)) < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

int ctl_response_parse(json_t *msg, json_int_t *id, bool *ok, json_t **result,
                       struct ctl_error *err)
{
    *result = NULL;
    *ok = false;
    *id = 0;
    json_t *v = json_object_get(msg, "v");
    if (!json_is_integer(v) || json_integer_value(v) != CTL_VERSION) {
        ctl_error_set(err, CTL_E_VERSION,
                      "the daemon answered with another protocol version; "
                      "use the mmp-cli of the daemon's release");
        return XE_PROTO;
    }
    json_t *jid = json_object_get(msg, "id");
    if (json_is_integer(jid))
        *id = json_integer_value(jid);
    else if (!json_is_null(jid)) {
        ctl_error_set(err, CTL_E_BAD_REQUEST, "response has no id");
        return XE_PROTO;
    }
    json_t *jok = json_object_get(msg, "ok");
    if (!json_is_boolean(jok)) {
        ctl_error_set(err, CTL_E_BAD_REQUEST, "response has no \"ok\" field");
        return XE_PROTO;
    }
    if (json_is_true(jok)) {
        json_t *r = json_object_get(msg, "result");
        if (r == NULL) {
            ctl_error_set(err, CTL_E_BAD_REQUEST, "response has no \"result\"");
            return XE_PROTO;
        }
        *ok = true;
        *result = r;
        return 0;
    }
    const char *code = NULL, *message = NULL;
    if (json_unpack(json_object_get(msg, "error"), "{s:s, s:s}", "code", &code, "message",
                    &message) != 0) {
        ctl_error_set(err, CTL_E_BAD_REQUEST, "error response without code and message");
        return XE_PROTO;
    }
    ctl_error_set(err, code, "%s", message);
    return 0;
}

/* ---- arguments -------------------------------------------------------- */

/* civil_from_days turns days since 1970-01-01 into a proleptic Gregorian
 * date: count in 400-year eras of 146097 days that start on March 1st, so
 * that the leap day ends a year (the usual arithmetic; pure, no time.h,
 * no time zone). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468; /* days from 0000-03-01 to 1970-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097); /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153; /* [0, 11], March = 0 */

    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void ctl_time_text(int64_t t, char *out)
{
    int64_t days = t / 86400, secs = t % 86400, y;
    unsigned m, d;

    if (secs < 0) {
        secs += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        snprintf(out, CTL_TIME_LEN, "%s",
                 y < 0 ? "0000-01-01T00:00:00Z" : "9999-12-31T23:59:59Z");
        return;
    }
    char buf[64]; /* (the compiler cannot see the fields' bounds) */
    snprintf(buf, sizeof buf, "%04u-%02u-%02uT%02u:%02u:%02uZ", (unsigned)y, m, d,
             (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
    memcpy(out, buf, CTL_TIME_LEN - 1);
    out[CTL_TIME_LEN - 1] = '\0';
}

json_t *ctl_time(int64_t t)
{
    char s[CTL_TIME_LEN];

    if (t == 0)
        return json_null();
    ctl_time_text(t, s);
    return json_string(s);
}

const char *ctl_arg_str(const json_t *args, const char *key)
{
    return json_string_value(json_object_get(args, key));
}

int ctl_args_only(json_t *args, const char *const *keys, struct ctl_error *err)
{
    const char *k;
    json_t *v;

    json_object_foreach(args, k, v)
    {
        bool known = false;
        for (size_t i = 0; keys[i] != NULL && !known; i++)
            known = strcmp(keys[i], k) == 0;
        if (!known)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "unknown argument \"%.40s\"", k);
    }
    return 0;
}

/* ---- dispatch --------------------------------------------------------- */

int ctl_dispatch(const struct ctl_command *table, size_t n, void *ud, json_t *msg,
                 json_t **response)
{
    struct ctl_request req;
    struct ctl_error err = {{0}, {0}};
    json_t *result = NULL;

    *response = NULL;
    if (ctl_request_parse(msg, &req, &err) < 0)
        goto fail;

    const struct ctl_command *c = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, req.cmd) == 0) {
            c = &table[i];
            break;
        }
    if (c == NULL) {
        ctl_error_set(&err, CTL_E_UNKNOWN_COMMAND,
                      "unknown command \"%s\"; this daemon may be older than mmp-cli",
                      req.cmd);
        goto fail;
    }

    json_t *args = req.args != NULL ? json_incref(req.args) : json_object();
    if (args == NULL)
        return XE_NOMEM;
    int rc = c->fn(ud, args, &result, &err);
    json_decref(args);
    if (rc == CTL_DEFERRED) {
        json_decref(result);
        return CTL_DEFERRED;
    }
    if (rc < 0) {
        json_decref(result);
        if (err.code[0] == '\0')
            snprintf(err.code, sizeof err.code, "%s", ctl_error_code_for(rc));
        if (err.message[0] == '\0')
            snprintf(err.message, sizeof err.message, "%s: %s", req.cmd, xe_strerror(rc));
        goto fail;
    }
    *response = ctl_response_ok(req.id, result);
    return *response != NULL ? 0 : XE_NOMEM;
fail:
    *response = ctl_response_error(req.has_id, req.id, &err);
    return *response != NULL ? 0 : XE_NOMEM;
}
