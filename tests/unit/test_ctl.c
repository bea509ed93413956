/* test_ctl: the control protocol codec (xmppd/core/ctl.c): framing in any
 * chunking, request validation and every error path, dispatch, command arguments. */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "testlib.h"
#include "ctl.h"
#include "err.h"

/* frame appends a raw frame with body s (length from strlen) to b. */
static void frame(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    buf_append(b, h, 4);
    buf_append(b, s, n);
}

static json_t *parse(const char *s)
{
    return json_loads(s, 0, NULL);
}

static void test_encode_decode_roundtrip(void)
{
    struct buf b = {0};
    json_t *req =
        ctl_request_new(7, "xmpp.callbridge.add", json_pack("{s:s}", "name", "cb1"));
    REQUIRE(req != NULL);
    CHECK_INT(ctl_frame_encode(req, CTL_MAX_REQUEST, &b), 0);
    CHECK(b.len > 4);
    CHECK_INT(((unsigned char)b.data[0] << 24 | (unsigned char)b.data[1] << 16 |
               (unsigned char)b.data[2] << 8 | (unsigned char)b.data[3]),
              b.len - 4);

    struct ctl_dec d;
    ctl_dec_init(&d, CTL_MAX_REQUEST);
    CHECK_INT(ctl_dec_feed(&d, b.data, b.len), 0);
    json_t *m = NULL;
    CHECK_INT(ctl_dec_next(&d, &m, NULL), 1);
    REQUIRE(m != NULL);
    CHECK(json_equal(m, req));
    json_decref(m);
    CHECK_INT(ctl_dec_next(&d, &m, NULL), 0);
    CHECK_INT(ctl_dec_pending(&d), 0);
    json_decref(req);
    ctl_dec_free(&d);
    buf_free(&b);
}

/* Three frames delivered one byte at a time, then in every split of two. */
static void test_decode_any_chunking(void)
{
    struct buf b = {0};
    frame(&b, "{\"v\":1,\"id\":1,\"cmd\":\"a\"}");
    frame(&b, "{\"v\":1,\"id\":2,\"cmd\":\"b\",\"args\":{\"x\":[1,2,3]}}");
    frame(&b, "{\"v\":1,\"id\":3,\"cmd\":\"c\"}");

    for (size_t split = 0; split <= b.len; split++) {
        struct ctl_dec d;
        ctl_dec_init(&d, CTL_MAX_REQUEST);
        int got = 0;
        json_int_t ids[3] = {0};
        size_t pos = 0;
        while (pos < b.len) {
            /* split == 0 means byte by byte */
            size_t n = split == 0 ? 1 : (pos < split ? split - pos : b.len - pos);
            CHECK_INT(ctl_dec_feed(&d, b.data + pos, n), 0);
            pos += n;
            json_t *m;
            int rc;
            while ((rc = ctl_dec_next(&d, &m, NULL)) == 1) {
                if (got < 3)
                    ids[got] = json_integer_value(json_object_get(m, "id"));
                got++;
                json_decref(m);
            }
            CHECK_INT(rc, 0);
        }
        CHECK_INT(got, 3);
        CHECK_INT(ids[0], 1);
        CHECK_INT(ids[1], 2);
        CHECK_INT(ids[2], 3);
        ctl_dec_free(&d);
    }
    buf_free(&b);
}

static void test_decode_truncated(void)
{
    struct buf b = {0};
    frame(&b, "{\"v\":1,\"id\":1,\"cmd\":\"a\"}");
    struct ctl_dec d;
    ctl_dec_init(&d, CTL_MAX_REQUEST);
    json_t *m;
    /* Header only partly there, then body partly there: never a message. */
    CHECK_INT(ctl_dec_feed(&d, b.data, 2), 0);
    CHECK_INT(ctl_dec_next(&d, &m, NULL), 0);
    CHECK_INT(ctl_dec_feed(&d, b.data + 2, b.len - 3), 0);
    CHECK_INT(ctl_dec_next(&d, &m, NULL), 0);
    CHECK(m == NULL);
    CHECK_INT(ctl_dec_pending(&d), b.len - 1);
    ctl_dec_free(&d);
    buf_free(&b);
}

static void test_decode_oversized(void)
{
    struct ctl_dec d;
    ctl_dec_init(&d, 100);
    unsigned char h[4] = {0, 0, 0, 101};
    CHECK_INT(ctl_dec_feed(&d, h, 4), 0);
    /* The body is not even needed to refuse it. */
    json_t *m;
    struct ctl_error err = {{0}, {0}};
    CHECK_INT(ctl_dec_next(&d, &m, &err), XE_LIMIT);
    CHECK_STR(err.code, CTL_E_TOO_LARGE);
    CHECK(strstr(err.message, "101") != NULL);
    CHECK(d.failed);
    CHECK_INT(ctl_dec_feed(&d, "x", 1), XE_STATE);
    CHECK_INT(ctl_dec_next(&d, &m, &err), XE_STATE);
    ctl_dec_free(&d);

    /* A 4 GiB announcement with bytes streaming after it: memory stays small. */
    ctl_dec_init(&d, CTL_MAX_REQUEST);
    unsigned char big[4] = {0xff, 0xff, 0xff, 0xff};
    CHECK_INT(ctl_dec_feed(&d, big, 4), 0);
    char junk[4096];
    memset(junk, 'a', sizeof junk);
    for (int i = 0; i < 100; i++)
        CHECK_INT(ctl_dec_feed(&d, junk, sizeof junk), 0);
    CHECK(ctl_dec_pending(&d) <= 4);
    CHECK_INT(ctl_dec_next(&d, &m, &err), XE_LIMIT);
    ctl_dec_free(&d);

    /* Exactly max is fine. */
    ctl_dec_init(&d, 29);
    struct buf b = {0};
    frame(&b, "{\"v\":1,\"id\":1,\"cmd\":\"abcdef\"}"); /* 29 bytes */
    CHECK_INT(b.len, 33);
    CHECK_INT(ctl_dec_feed(&d, b.data, b.len), 0);
    CHECK_INT(ctl_dec_next(&d, &m, &err), 1);
    json_decref(m);
    ctl_dec_free(&d);
    buf_free(&b);
}

static void test_decode_bad_frames_keep_stream(void)
{
    const char *bad[] = {"",
                         "not json",
                         "[1,2]",
                         "\"s\"",
                         "{\"a\":1,\"a\":2}",
                         "{\"v\":1",
                         "{\"x\":\"\xff\xfe\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf b = {0};
        frame(&b, bad[i]);
        frame(&b, "{\"v\":1,\"id\":9,\"cmd\":\"ok\"}");
        struct ctl_dec d;
        ctl_dec_init(&d, CTL_MAX_REQUEST);
        CHECK_INT(ctl_dec_feed(&d, b.data, b.len), 0);
        json_t *m;
        struct ctl_error err = {{0}, {0}};
        CHECK_INT(ctl_dec_next(&d, &m, &err), XE_CORRUPT);
        CHECK_STR(err.code, CTL_E_BAD_REQUEST);
        CHECK(err.message[0] != '\0');
        CHECK(m == NULL);
        /* The following good frame still decodes. */
        CHECK_INT(ctl_dec_next(&d, &m, &err), 1);
        json_decref(m);
        ctl_dec_free(&d);
        buf_free(&b);
    }
}

static void test_encode_limit(void)
{
    json_t *big = json_object();
    char s[200];
    memset(s, 'x', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    json_object_set_new(big, "s", json_string(s));
    struct buf b = {0};
    CHECK_INT(ctl_frame_encode(big, 100, &b), XE_LIMIT);
    CHECK_INT(b.len, 0);
    json_decref(big);
    buf_free(&b);
}

/* Each invalid request: parse gives XE_PROTO, the wire code, and whether the
 * id survived into the error. */
static void test_request_errors(void)
{
    struct {
        const char *json;
        const char *code;
        int has_id;
        const char *mention;
    } cases[] = {
        {"{\"id\":1,\"cmd\":\"a\"}", CTL_E_BAD_REQUEST, 1, "\"v\""},
        {"{\"v\":2,\"id\":1,\"cmd\":\"a\"}", CTL_E_VERSION, 1, "version 1"},
        {"{\"v\":\"1\",\"id\":1,\"cmd\":\"a\"}", CTL_E_VERSION, 1, "version"},
        {"{\"v\":1,\"cmd\":\"a\"}", CTL_E_BAD_REQUEST, 0, "\"id\""},
        {"{\"v\":1,\"id\":\"1\",\"cmd\":\"a\"}", CTL_E_BAD_REQUEST, 0, "integer"},
        {"{\"v\":1,\"id\":1}", CTL_E_BAD_REQUEST, 1, "\"cmd\""},
        {"{\"v\":1,\"id\":1,\"cmd\":5}", CTL_E_BAD_REQUEST, 1, "string"},
        {"{\"v\":1,\"id\":1,\"cmd\":\"\"}", CTL_E_BAD_REQUEST, 1, "characters"},
        {"{\"v\":1,\"id\":1,\"cmd\":\"Xmpp.Status\"}", CTL_E_BAD_REQUEST, 1, "a-z"},
        {"{\"v\":1,\"id\":1,\"cmd\":\"a b\"}", CTL_E_BAD_REQUEST, 1, "a-z"},
        {"{\"v\":1,\"id\":1,\"cmd\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         CTL_E_BAD_REQUEST, 1, "1-64"},
        {"{\"v\":1,\"id\":1,\"cmd\":\"a\",\"args\":[]}", CTL_E_BAD_REQUEST, 1, "object"},
        {"{\"v\":1,\"id\":1,\"cmd\":\"a\",\"extra\":1}", CTL_E_BAD_REQUEST, 1, "extra"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *m = parse(cases[i].json);
        REQUIRE(m != NULL);
        struct ctl_request req;
        struct ctl_error err = {{0}, {0}};
        CHECK_INT(ctl_request_parse(m, &req, &err), XE_PROTO);
        CHECK_STR(err.code, cases[i].code);
        CHECK_INT(req.has_id, cases[i].has_id);
        if (strstr(err.message, cases[i].mention) == NULL)
            fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, err.message,
                    cases[i].mention);
        CHECK(strstr(err.message, cases[i].mention) != NULL);
        json_decref(m);
    }
}

static void test_request_good(void)
{
    json_t *m = parse("{\"v\":1,\"id\":42,\"cmd\":\"xmpp.callbridge.add\","
                      "\"args\":{\"name\":\"cb1\"}}");
    struct ctl_request req;
    struct ctl_error err = {{0}, {0}};
    CHECK_INT(ctl_request_parse(m, &req, &err), 0);
    CHECK_INT(req.id, 42);
    CHECK(req.has_id);
    CHECK_STR(req.cmd, "xmpp.callbridge.add");
    CHECK_STR(json_string_value(json_object_get(req.args, "name")), "cb1");
    json_decref(m);

    m = parse("{\"cmd\":\"xmpp.status\",\"id\":-3,\"v\":1}");
    CHECK_INT(ctl_request_parse(m, &req, &err), 0);
    CHECK_INT(req.id, -3);
    CHECK(req.args == NULL);
    json_decref(m);
}

static void test_responses(void)
{
    json_t *ok = ctl_response_ok(5, json_pack("{s:i}", "n", 3));
    json_int_t id;
    bool isok;
    json_t *result;
    struct ctl_error err = {{0}, {0}};
    CHECK_INT(ctl_response_parse(ok, &id, &isok, &result, &err), 0);
    CHECK_INT(id, 5);
    CHECK(isok);
    CHECK_INT(json_integer_value(json_object_get(result, "n")), 3);
    json_decref(ok);

    ok = ctl_response_ok(6, NULL);
    CHECK_INT(ctl_response_parse(ok, &id, &isok, &result, &err), 0);
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    json_decref(ok);

    struct ctl_error e = {{0}, {0}};
    ctl_error_set(&e, "not-found", "no call bridge \"%s\"\nsee list", "cb9");
    CHECK_STR(e.message, "no call bridge \"cb9\" see list");
    json_t *bad = ctl_response_error(false, 0, &e);
    CHECK(json_is_null(json_object_get(bad, "id")));
    CHECK_INT(ctl_response_parse(bad, &id, &isok, &result, &err), 0);
    CHECK(!isok);
    CHECK(result == NULL);
    CHECK_STR(err.code, "not-found");
    CHECK_STR(err.message, e.message);
    json_decref(bad);

    const char *malformed[] = {
        "{\"id\":1,\"ok\":true,\"result\":{}}", "{\"v\":1,\"id\":1,\"result\":{}}",
        "{\"v\":1,\"id\":1,\"ok\":true}", "{\"v\":1,\"id\":1,\"ok\":false}",
        "{\"v\":1,\"id\":\"x\",\"ok\":true,\"result\":{}}"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        json_t *m = parse(malformed[i]);
        CHECK_INT(ctl_response_parse(m, &id, &isok, &result, &err), XE_PROTO);
        json_decref(m);
    }
}

/* ---- dispatch --------------------------------------------------------- */

static int calls;

static int cmd_echo(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    calls++;
    CHECK(json_is_object(args));
    CHECK_INT(*(int *)ud, 77);
    *result = json_pack("{s:O}", "args", args);
    return 0;
}

static int cmd_fail(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    calls++;
    return ctl_error_set(err, "invalid-argument", "name \"%s\" has a space",
                         json_string_value(json_object_get(args, "name")));
}

static int cmd_fail_bare(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    calls++;
    *result = json_object(); /* dropped by the dispatcher on error */
    return XE_NOTFOUND;
}

static const struct ctl_command table[] = {
    {"test.echo", cmd_echo},
    {"test.fail", cmd_fail},
    {"test.fail-bare", cmd_fail_bare},
};

static json_t *dispatch(const char *req)
{
    static int ud = 77;
    json_t *m = parse(req);
    json_t *resp = NULL;
    CHECK(m != NULL);
    CHECK_INT(ctl_dispatch(table, 3, &ud, m, &resp), 0);
    json_decref(m);
    return resp;
}

static const char *err_code(json_t *resp)
{
    return json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
}

static void test_dispatch(void)
{
    calls = 0;
    json_t *r = dispatch("{\"v\":1,\"id\":1,\"cmd\":\"test.echo\",\"args\":{\"a\":1}}");
    CHECK(json_is_true(json_object_get(r, "ok")));
    CHECK_INT(json_integer_value(json_object_get(r, "id")), 1);
    CHECK_INT(json_integer_value(json_object_get(
                  json_object_get(json_object_get(r, "result"), "args"), "a")),
              1);
    json_decref(r);

    /* args absent: the handler still gets an object. */
    r = dispatch("{\"v\":1,\"id\":2,\"cmd\":\"test.echo\"}");
    CHECK(json_is_true(json_object_get(r, "ok")));
    json_decref(r);

    r = dispatch("{\"v\":1,\"id\":3,\"cmd\":\"test.fail\",\"args\":{\"name\":\"a b\"}}");
    CHECK(json_is_false(json_object_get(r, "ok")));
    CHECK_INT(json_integer_value(json_object_get(r, "id")), 3);
    CHECK_STR(err_code(r), "invalid-argument");
    json_decref(r);

    r = dispatch("{\"v\":1,\"id\":4,\"cmd\":\"test.fail-bare\"}");
    CHECK_STR(err_code(r), "not-found");
    CHECK(
        strstr(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
               "test.fail-bare") != NULL);
    CHECK(json_object_get(r, "result") == NULL);
    json_decref(r);
    CHECK_INT(calls, 4);

    r = dispatch("{\"v\":1,\"id\":5,\"cmd\":\"test.nope\"}");
    CHECK_STR(err_code(r), CTL_E_UNKNOWN_COMMAND);
    CHECK_INT(json_integer_value(json_object_get(r, "id")), 5);
    json_decref(r);

    r = dispatch("{\"v\":3,\"id\":6,\"cmd\":\"test.echo\"}");
    CHECK_STR(err_code(r), CTL_E_VERSION);
    CHECK_INT(json_integer_value(json_object_get(r, "id")), 6);
    json_decref(r);

    r = dispatch("{\"v\":1,\"cmd\":\"test.echo\"}");
    CHECK_STR(err_code(r), CTL_E_BAD_REQUEST);
    CHECK(json_is_null(json_object_get(r, "id")));
    json_decref(r);
    CHECK_INT(calls, 4); /* invalid requests never reach a handler */
}

static void test_error_codes(void)
{
    CHECK_STR(ctl_error_code_for(XE_NOTFOUND), "not-found");
    CHECK_STR(ctl_error_code_for(XE_INVAL), "invalid-argument");
    CHECK_STR(ctl_error_code_for(XE_NOLEADER), "no-leader");
    CHECK_STR(ctl_error_code_for(XE_UNSUPPORTED), "not-implemented");
    /* a late copy of a settled write (repl.h XE_EXPIRED): refused */
    CHECK_STR(ctl_error_code_for(XE_EXPIRED), "state");
    CHECK_STR(xe_name(XE_EXPIRED), "XE_EXPIRED");
    CHECK_STR(ctl_error_code_for(XE_NOMEM), "internal");
    CHECK_STR(ctl_error_code_for(-999), "internal");
}

static void test_args(void)
{
    static const char *const keys[] = {"name", "secret", NULL};
    static const char *const none[] = {NULL};
    json_t *a = parse("{\"name\":\"cb1\",\"secret\":7}");
    struct ctl_error err = {0};

    REQUIRE(a != NULL);
    CHECK_STR(ctl_arg_str(a, "name"), "cb1");
    CHECK(ctl_arg_str(a, "secret") == NULL); /* not a string */
    CHECK(ctl_arg_str(a, "other") == NULL);
    CHECK(ctl_arg_str(NULL, "name") == NULL);

    CHECK_INT(ctl_args_only(a, keys, &err), 0);
    CHECK_STR(err.code, "");
    CHECK_INT(ctl_args_only(NULL, none, &err), 0);
    CHECK_INT(ctl_args_only(a, none, &err), XE_INVAL);
    CHECK_STR(err.code, "invalid-argument");
    CHECK(strstr(err.message, "unknown argument") != NULL);
    json_object_set_new(a, "nmae", json_string("typo"));
    memset(&err, 0, sizeof err);
    CHECK_INT(ctl_args_only(a, keys, &err), XE_INVAL);
    CHECK_STR(err.message, "unknown argument \"nmae\"");
    CHECK_INT(ctl_args_only(a, keys, NULL), XE_INVAL);
    json_decref(a);
}

/* A malformed frame's error (which the daemon logs) never quotes its bytes:
 * they may be a password; and no copy of a taken frame stays buffered. */
static void test_decode_error_hides_secret(void)
{
    const char *bad[] = {"{\"args\":{\"password\":\"hunter2\n\"}}",
                         "{\"args\":{\"password\":hunter2}}",
                         "{\"args\":{\"password\":\"hunter2\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf b = {0};
        frame(&b, bad[i]);
        frame(&b, "{}");
        struct ctl_dec d;
        ctl_dec_init(&d, CTL_MAX_REQUEST);
        CHECK_INT(ctl_dec_feed(&d, b.data, b.len), 0);
        json_t *m;
        struct ctl_error err = {{0}, {0}};
        CHECK_INT(ctl_dec_next(&d, &m, &err), XE_CORRUPT);
        CHECK(strstr(err.message, "hunter") == NULL);
        CHECK(strstr(err.message, "not valid JSON") != NULL);
        bool left = false;
        for (size_t k = 0; k + 7 <= d.in.cap && !left; k++)
            left = memcmp(d.in.data + k, "hunter2", 7) == 0;
        CHECK(!left);
        CHECK_INT(ctl_dec_next(&d, &m, &err), 1);
        json_decref(m);
        ctl_dec_free(&d);
        buf_free(&b);
    }
}

/* ctl_time: RFC 3339 UTC, checked against the C library's gmtime over
 * leap years, century rules and negative times; 0 is null. */
static void test_time(void)
{
    static const int64_t fixed[] = {0,
                                    1,
                                    86399,
                                    86400,
                                    951782400 /* 2000-02-29 */,
                                    4107542400 /* 2100-03-01 */,
                                    -1,
                                    -86401,
                                    1796650457};
    char got[CTL_TIME_LEN], want[32];
    json_t *v;

    ctl_time_text(1796650457, got);
    CHECK_STR(got, "2026-12-07T13:34:17Z");
    for (int64_t t = -3000000000LL; t < 6000000000LL; t += 7777777) {
        time_t tt = (time_t)t;
        struct tm tm;
        REQUIRE(gmtime_r(&tt, &tm) != NULL);
        strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
        ctl_time_text(t, got);
        CHECK_STR(got, want);
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        time_t tt = (time_t)fixed[i];
        struct tm tm;
        REQUIRE(gmtime_r(&tt, &tm) != NULL);
        strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
        ctl_time_text(fixed[i], got);
        CHECK_STR(got, want);
    }
    v = ctl_time(0);
    CHECK(json_is_null(v));
    json_decref(v);
    v = ctl_time(86400);
    CHECK_STR(json_string_value(v), "1970-01-02T00:00:00Z");
    json_decref(v);
}

TL_MAIN(T(test_time), T(test_encode_decode_roundtrip), T(test_decode_any_chunking),
        T(test_decode_truncated), T(test_decode_oversized),
        T(test_decode_bad_frames_keep_stream), T(test_encode_limit),
        T(test_request_errors), T(test_request_good), T(test_responses), T(test_dispatch),
        T(test_error_codes), T(test_args), T(test_decode_error_hides_secret))
