/* test_repl.c: unit tests for the replicated state machine (core/repl.c):
 * every command, validation, apply results and effects, snapshots, and
 * garbage input (truncations, bit flips, random bytes). */
#include <sodium.h>

#include "repl.h"
#include "err.h"
#include "roster.h"
#include "testlib.h"

static struct cl_cmd cmd; /* a few KB: static */

/* enc encodes cmd and applies it to s; returns cl_apply's result. */
static int enc_apply(struct cl_state *s, struct cl_effects *eff)
{
    unsigned char *buf;
    size_t len;
    int rc = cl_cmd_encode(&cmd, &buf, &len);

    if (rc < 0) {
        TL_FAIL_("encode failed: %s", xe_name(rc));
        return rc;
    }
    rc = cl_apply(s, buf, len, eff);
    cl_buf_free(buf, len);
    return rc;
}

static void make_user(struct cl_user *u, unsigned char seed, bool sha1)
{
    memset(u, 0, sizeof *u);
    u->sha256.present = true;
    u->sha256.salt_len = 16;
    memset(u->sha256.salt, seed, 16);
    u->sha256.iterations = 4096;
    memset(u->sha256.stored_key, seed + 1, CL_KEY_SHA256);
    memset(u->sha256.server_key, seed + 2, CL_KEY_SHA256);
    if (sha1) {
        u->sha1.present = true;
        u->sha1.salt_len = 20;
        memset(u->sha1.salt, seed + 3, 20);
        u->sha1.iterations = 10000;
        memset(u->sha1.stored_key, seed + 4, CL_KEY_SHA1);
        memset(u->sha1.server_key, seed + 5, CL_KEY_SHA1);
    }
}

static void test_names(void)
{
    char long_name[80];

    CHECK(cl_name_valid("cb1"));
    CHECK(cl_name_valid("Call-Bridge-2"));
    CHECK(!cl_name_valid(""));
    CHECK(!cl_name_valid(NULL));
    CHECK(!cl_name_valid("cb_1"));
    CHECK(!cl_name_valid("cb.1"));
    CHECK(!cl_name_valid("cb 1"));
    CHECK(!cl_name_valid("\xc3\xa9"));
    memset(long_name, 'a', 63);
    long_name[63] = '\0';
    CHECK(cl_name_valid(long_name));
    long_name[63] = 'a';
    long_name[64] = '\0';
    CHECK(!cl_name_valid(long_name));

    CHECK(cl_domain_valid("example.com"));
    CHECK(!cl_domain_valid(""));
    CHECK(!cl_domain_valid("a b"));
    CHECK(!cl_domain_valid(NULL));

    CHECK(cl_user_valid("alice"));
    CHECK(cl_user_valid("j.doe-1"));
    CHECK(!cl_user_valid(""));
    CHECK(!cl_user_valid("a@b"));
    CHECK(!cl_user_valid("a b"));
    CHECK(!cl_user_valid("a/b"));
    CHECK(!cl_user_valid("a\x01"));
    {
        char why[256] = "";
        CHECK(cl_user_explain("alice", why, sizeof why) && why[0] == '\0');
        CHECK(!cl_user_explain("a@b", why, sizeof why));
        CHECK(strstr(why, "has '@'") != NULL && strstr(why, "RFC 7622") != NULL);
        CHECK(!cl_user_explain("a b", why, sizeof why) && strstr(why, "space") != NULL);
        CHECK(!cl_user_explain("a\x01", why, sizeof why) && strstr(why, "0x01") != NULL);
        CHECK(!cl_user_explain("", why, sizeof why) && strstr(why, "empty") != NULL);
    }
}

static void test_init_and_domain(void)
{
    struct cl_state *s;
    struct cl_effects eff;

    REQUIRE(cl_state_new(&s) == 0);
    CHECK_INT(cl_cluster_id(s), 0);
    CHECK_STR(cl_domain(s), "");

    cl_cmd_init(&cmd, 0x1122334455667788ULL);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_INIT);
    CHECK(cl_cluster_id(s) == 0x1122334455667788ULL);
    cl_cmd_init(&cmd, 42);
    CHECK_INT(enc_apply(s, &eff), XE_EXISTS);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_cluster_id(s) == 0x1122334455667788ULL);

    cl_cmd_set_domain(&cmd, "example.com");
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_DOMAIN);
    CHECK_STR(eff.old_domain, "");
    CHECK_STR(cl_domain(s), "example.com");
    CHECK_INT(enc_apply(s, &eff), 0); /* same again: no change */
    CHECK_INT(eff.kind, CL_EFF_NONE);
    cl_cmd_set_domain(&cmd, "xmpp.example.org");
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_DOMAIN);
    CHECK_STR(eff.old_domain, "example.com");
    CHECK_STR(cl_domain(s), "xmpp.example.org");
    cl_state_free(s);
}

static void test_callbridges(void)
{
    struct cl_state *s;
    struct cl_effects eff;
    const struct cl_callbridge *cb;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_cb_set(&cmd, "cb2", (const unsigned char *)"s2", 2, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    CHECK_STR(eff.name, "cb2");
    REQUIRE(eff.cb != NULL);
    CHECK_INT(eff.cb->secret_len, 2);
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"secret1", 7, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(cl_callbridge_count(s), 2);
    CHECK_STR(cl_callbridge_at(s, 0)->name, "cb1"); /* sorted */
    CHECK_STR(cl_callbridge_at(s, 1)->name, "cb2");
    CHECK(cl_callbridge_at(s, 2) == NULL);

    /* add semantics on an existing name */
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"other", 5, true);
    CHECK_INT(enc_apply(s, &eff), XE_EXISTS);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    cb = cl_callbridge_find(s, "cb1");
    REQUIRE(cb != NULL);
    CHECK(cb->secret_len == 7 && memcmp(cb->secret, "secret1", 7) == 0);

    /* set semantics: secret changes */
    cl_cmd_cb_set(&cmd, "cb1", (const unsigned char *)"other", 5, false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_SECRET);
    cb = cl_callbridge_find(s, "cb1");
    REQUIRE(cb != NULL);
    CHECK(cb->secret_len == 5 && memcmp(cb->secret, "other", 5) == 0);
    /* the same secret again changes nothing */
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    /* set on a new name adds */
    cl_cmd_cb_set(&cmd, "cb0", (const unsigned char *)"x", 1, false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);

    cl_cmd_cb_del(&cmd, "cb2");
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_DELETED);
    CHECK_STR(eff.name, "cb2");
    CHECK(cl_callbridge_find(s, "cb2") == NULL);
    CHECK_INT(enc_apply(s, &eff), XE_NOTFOUND);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK_INT(cl_callbridge_count(s), 2);
    cl_state_free(s);
}

static void test_users(void)
{
    struct cl_state *s;
    struct cl_effects eff;
    struct cl_user u;
    const struct cl_user *got;

    REQUIRE(cl_state_new(&s) == 0);
    make_user(&u, 1, true);
    cl_cmd_user_set(&cmd, "bob", &u, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_ADDED);
    make_user(&u, 9, false);
    cl_cmd_user_set(&cmd, "alice", &u, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(cl_user_count(s), 2);
    CHECK_STR(cl_user_at(s, 0)->name, "alice");
    got = cl_user_find(s, "bob");
    REQUIRE(got != NULL);
    CHECK(got->sha1.present && got->sha1.salt_len == 20 && got->sha1.iterations == 10000);
    CHECK(got->sha256.stored_key[0] == 2 && got->sha256.server_key[31] == 3);
    CHECK(got->sha1.server_key[19] == 6);
    CHECK(!cl_user_find(s, "alice")->sha1.present);

    cl_cmd_user_set(&cmd, "alice", &u, true);
    CHECK_INT(enc_apply(s, &eff), XE_EXISTS);
    make_user(&u, 20, true);
    cl_cmd_user_set(&cmd, "alice", &u, false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_CHANGED);
    CHECK(cl_user_find(s, "alice")->sha1.present);

    cl_cmd_user_del(&cmd, "alice");
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_DELETED);
    CHECK_INT(enc_apply(s, &eff), XE_NOTFOUND);
    CHECK_INT(cl_user_count(s), 1);
    cl_state_free(s);
}

static void test_encode_validation(void)
{
    unsigned char *buf = NULL;
    size_t len;
    struct cl_user u;
    char big[1100];

    cl_cmd_init(&cmd, 0);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    CHECK(buf == NULL);
    cl_cmd_set_domain(&cmd, "bad domain");
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cl_cmd_set_domain(&cmd, big);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cl_cmd_cb_set(&cmd, "bad_name", (const unsigned char *)"s", 1, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)"", 0, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)big, CL_SECRET_MAX + 1, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)big, CL_SECRET_MAX, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), 0);
    cl_buf_free(buf, len);
    cl_cmd_cb_del(&cmd, "");
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cl_cmd_cb_del(&cmd, "cb");
    cmd.flags = CL_CMD_ADD; /* not allowed on delete */
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);

    make_user(&u, 1, true);
    cl_cmd_user_set(&cmd, "a@b", &u, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    u.sha256.iterations = 100;
    cl_cmd_user_set(&cmd, "ab", &u, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    make_user(&u, 1, true);
    u.sha256.salt_len = 4;
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    make_user(&u, 1, true);
    u.sha256.present = false;
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cl_cmd_user_set(&cmd, "ab", NULL, true);
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
    cmd.type = 99;
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);
}

static void test_decode_exact_bytes(void)
{
    /* version 1, CB_DEL, no flags, "cb" */
    static const unsigned char del[] = {1, 4, 0, 2, 'c', 'b'};
    static const unsigned char del_trailing[] = {1, 4, 0, 2, 'c', 'b', 0};
    static const unsigned char del_v2[] = {2, 4, 0, 2, 'c', 'b'};
    static const unsigned char del_flag[] = {1, 4, 0x80, 2, 'c', 'b'};
    static const unsigned char del_nul[] = {1, 4, 0, 2, 'c', 0};
    static const unsigned char del_type[] = {1, 77, 0, 2, 'c', 'b'};
    static const unsigned char init[] = {1, 1, 0, 8, 7, 6, 5, 4, 3, 2, 1};

    CHECK_INT(cl_cmd_decode(del, sizeof del, &cmd), 0);
    CHECK_INT(cmd.type, CL_CMD_CB_DEL);
    CHECK_STR(cmd.name, "cb");
    CHECK_INT(cl_cmd_decode(del_trailing, sizeof del_trailing, &cmd), XE_CORRUPT);
    CHECK_INT(cl_cmd_decode(del_v2, sizeof del_v2, &cmd), XE_CORRUPT);
    CHECK_INT(cl_cmd_decode(del_flag, sizeof del_flag, &cmd), XE_CORRUPT);
    CHECK_INT(cl_cmd_decode(del_nul, sizeof del_nul, &cmd), XE_CORRUPT);
    /* An unknown type or a newer version was written by a newer xmppd: the
     * driver stops applying instead of skipping it. */
    static const unsigned char del_v9[] = {9, 4, 0, 2, 'c', 'b'};
    CHECK_INT(cl_cmd_decode(del_type, sizeof del_type, &cmd), XE_UNSUPPORTED);
    CHECK_INT(cl_cmd_decode(del_v9, sizeof del_v9, &cmd), XE_UNSUPPORTED);
    CHECK_INT(cl_cmd_decode(NULL, 0, &cmd), XE_CORRUPT);
    CHECK_INT(cl_cmd_decode(init, sizeof init, &cmd), 0);
    CHECK(cmd.cluster_id == 0x0102030405060708ULL);
}

/* fuzz_one applies every truncation and every single-bit flip of a valid
 * command to a state: never a crash; a rejected entry leaves the state as it
 * was (its snapshot is unchanged). */
static void fuzz_one(void)
{
    struct cl_state *s;
    unsigned char *buf, *snap0, *snap1;
    size_t len, l0, l1;
    struct cl_effects eff;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_cb_set(&cmd, "keep", (const unsigned char *)"k", 1, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    REQUIRE(cl_snapshot_encode(s, &snap0, &l0) == 0);
    for (size_t cut = 0; cut < len; cut++)
        CHECK(cl_apply(s, buf, cut, &eff) < 0);
    for (size_t bit = 0; bit < len * 8; bit++) {
        int rc;
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        rc = cl_apply(s, buf, len, &eff);
        if (rc < 0) {
            CHECK_INT(eff.kind, CL_EFF_NONE);
            REQUIRE(cl_snapshot_encode(s, &snap1, &l1) == 0);
            CHECK(l0 == l1 && memcmp(snap0, snap1, l0) == 0);
            cl_buf_free(snap1, l1);
        } else if (eff.kind == CL_EFF_CB_ADDED) {
            /* a flip that still made a valid add (another name): undo it */
            cl_cmd_cb_del(&cmd, eff.name);
            CHECK_INT(enc_apply(s, NULL), 0);
        }
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    cl_buf_free(buf, len);
    cl_buf_free(snap0, l0);
    cl_state_free(s);
}

static void test_garbage(void)
{
    struct cl_state *s, *d;
    unsigned char junk[300];
    struct cl_user u;
    unsigned char *buf;
    size_t len;

    fuzz_one();
    REQUIRE(cl_state_new(&s) == 0);
    for (unsigned i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)randombytes_uniform(sizeof junk);
        randombytes_buf(junk, n);
        if (i % 2 == 0)
            junk[0] = 1; /* right version: reach deeper */
        (void)cl_apply(s, junk, n, NULL);
        if (cl_snapshot_decode(junk, n, &d) == 0)
            cl_state_free(d);
    }
    /* every truncation of a user-set entry */
    make_user(&u, 3, true);
    cl_cmd_user_set(&cmd, "carol", &u, false);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    for (size_t cut = 0; cut < len; cut++)
        CHECK(cl_cmd_decode(buf, cut, &cmd) < 0);
    CHECK_INT(cl_cmd_decode(buf, len, &cmd), 0);
    CHECK_STR(cmd.name, "carol");
    cl_buf_free(buf, len);
    cl_state_free(s);
}

static void test_snapshot_round_trip(void)
{
    struct cl_state *s, *d = NULL;
    struct cl_user u;
    unsigned char *a, *b;
    size_t la, lb;
    char name[16];

    REQUIRE(cl_state_new(&s) == 0);
    /* the empty state */
    REQUIRE(cl_snapshot_encode(s, &a, &la) == 0);
    REQUIRE(cl_snapshot_decode(a, la, &d) == 0);
    CHECK_INT(cl_callbridge_count(d), 0);
    CHECK_STR(cl_domain(d), "");
    cl_state_free(d);
    /* a newer version: written by a newer xmppd, not corrupt (the driver
     * stops instead of running without it) */
    a[0] = CL_SNAP_VERSION_CB_TIME + 1;
    CHECK_INT(cl_snapshot_decode(a, la, &d), XE_UNSUPPORTED);
    CHECK(d == NULL);
    a[0] = 0;
    CHECK_INT(cl_snapshot_decode(a, la, &d), XE_CORRUPT);
    a[0] = CL_SNAP_VERSION;
    cl_buf_free(a, la);

    cl_cmd_init(&cmd, 77);
    enc_apply(s, NULL);
    cl_cmd_set_domain(&cmd, "example.net");
    enc_apply(s, NULL);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "cb%d", i);
        cl_cmd_cb_set(&cmd, name, (const unsigned char *)name, strlen(name), true);
        CHECK_INT(enc_apply(s, NULL), 0);
        snprintf(name, sizeof name, "user%d", i);
        make_user(&u, (unsigned char)i, i % 2 == 0);
        cl_cmd_user_set(&cmd, name, &u, true);
        CHECK_INT(enc_apply(s, NULL), 0);
    }
    REQUIRE(cl_snapshot_encode(s, &a, &la) == 0);
    REQUIRE(cl_snapshot_decode(a, la, &d) == 0);
    CHECK(cl_cluster_id(d) == 77);
    CHECK_STR(cl_domain(d), "example.net");
    CHECK_INT(cl_callbridge_count(d), 40);
    CHECK_INT(cl_user_count(d), 40);
    CHECK(cl_callbridge_find(d, "cb17") != NULL &&
          memcmp(cl_callbridge_find(d, "cb17")->secret, "cb17", 4) == 0);
    CHECK(cl_user_find(d, "user4")->sha1.present);
    CHECK(!cl_user_find(d, "user5")->sha1.present);
    REQUIRE(cl_snapshot_encode(d, &b, &lb) == 0);
    CHECK(la == lb && memcmp(a, b, la) == 0);
    cl_buf_free(b, lb);
    cl_state_free(d);

    /* strictness: truncations, trailing bytes, bit flips */
    for (size_t cut = 0; cut < la; cut += 61)
        CHECK(cl_snapshot_decode(a, cut, &d) < 0 && d == NULL);
    b = malloc(la + 1);
    REQUIRE(b != NULL);
    memcpy(b, a, la);
    b[la] = 0;
    CHECK_INT(cl_snapshot_decode(b, la + 1, &d), XE_CORRUPT);
    b[0] = 9; /* a version from a newer xmppd */
    CHECK_INT(cl_snapshot_decode(b, la, &d), XE_UNSUPPORTED);
    for (size_t bit = 0; bit < la * 8; bit += 97) {
        memcpy(b, a, la);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (cl_snapshot_decode(b, la, &d) == 0)
            cl_state_free(d);
    }
    free(b);
    cl_buf_free(a, la);
    cl_state_free(s);
}

static void test_names_of_things(void)
{
    CHECK_STR(cl_cmd_type_name(CL_CMD_CB_SET), "callbridge-set");
    CHECK_STR(cl_cmd_type_name(0), "unknown");
    CHECK_STR(cl_effect_name(CL_EFF_CB_DELETED), "callbridge-deleted");
}

/* A request id (origin, seq) applied twice is applied once: the second copy
 * (a follower's write sent again to a new leader) changes nothing and
 * answers the first result.  Version 1 entries (no id) are read as before,
 * and snapshots keep the ids (version 2 only when there are some). */
static void test_duplicate_request(void)
{
    struct cl_state *s, *d;
    struct cl_effects eff;
    unsigned char *v1, *v2, *snap;
    size_t l1, l2, ls;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_cb_set(&cmd, "cbx", (const unsigned char *)"s1", 2, true);
    REQUIRE(cl_cmd_encode(&cmd, &v1, &l1) == 0);
    CHECK_INT(v1[0], CL_CMD_VERSION);
    REQUIRE(cl_cmd_with_request(v1, l1, 0x1234, 7, &v2, &l2) == 0);
    CHECK_INT(v2[0], CL_CMD_VERSION_ID);
    CHECK_INT(l2, l1 + 16);
    CHECK_INT(cl_cmd_decode(v2, l2, &cmd), 0);
    CHECK(cmd.req_origin == 0x1234 && cmd.req_seq == 7);
    CHECK_STR(cmd.name, "cbx");
    CHECK_INT(cl_cmd_with_request(v1, l1, 0, 7, &snap, &ls), XE_INVAL);

    /* empty state: a version 1 snapshot, as before */
    REQUIRE(cl_snapshot_encode(s, &snap, &ls) == 0);
    CHECK_INT(snap[0], CL_SNAP_VERSION);
    cl_buf_free(snap, ls);

    CHECK_INT(cl_apply(s, v2, l2, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    /* the same request again: the first result, nothing changes */
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK_INT(cl_callbridge_count(s), 1);
    /* the same command without the id is a new write: XE_EXISTS */
    CHECK_INT(cl_apply(s, v1, l1, &eff), XE_EXISTS);
    /* delete it; the late copy of the add must not bring it back */
    cl_cmd_cb_del(&cmd, "cbx");
    CHECK_INT(enc_apply(s, NULL), 0);
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_callbridge_find(s, "cbx") == NULL);
    cl_buf_free(v2, l2);
    /* another seq from the same origin is a new request */
    REQUIRE(cl_cmd_with_request(v1, l1, 0x1234, 8, &v2, &l2) == 0);
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    /* a failed first result is remembered too */
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0);
    cl_buf_free(v2, l2);
    REQUIRE(cl_cmd_with_request(v1, l1, 0x99, 1, &v2, &l2) == 0);
    CHECK_INT(cl_apply(s, v2, l2, &eff), XE_EXISTS);
    cl_cmd_cb_del(&cmd, "cbx");
    CHECK_INT(enc_apply(s, NULL), 0);
    CHECK_INT(cl_apply(s, v2, l2, &eff), XE_EXISTS);
    CHECK(cl_callbridge_find(s, "cbx") == NULL);

    /* the ids survive a snapshot (version 2) */
    REQUIRE(cl_snapshot_encode(s, &snap, &ls) == 0);
    CHECK_INT(snap[0], CL_SNAP_VERSION_ID);
    REQUIRE(cl_snapshot_decode(snap, ls, &d) == 0);
    CHECK_INT(cl_apply(d, v2, l2, &eff), XE_EXISTS);
    CHECK(cl_callbridge_find(d, "cbx") == NULL);
    cl_state_free(d);
    for (size_t cut = 0; cut < ls; cut++)
        CHECK(cl_snapshot_decode(snap, cut, &d) < 0 && d == NULL);
    cl_buf_free(snap, ls);

    /* the oldest ids are forgotten after CL_SEEN_MAX newer ones */
    for (unsigned i = 0; i < CL_SEEN_MAX; i++) {
        unsigned char *b;
        size_t lb;
        cl_cmd_set_domain(&cmd, "example.org");
        REQUIRE(cl_cmd_encode(&cmd, &b, &lb) == 0);
        unsigned char *bi;
        size_t li;
        REQUIRE(cl_cmd_with_request(b, lb, 0x5, 1000 + i, &bi, &li) == 0);
        CHECK_INT(cl_apply(s, bi, li, NULL), 0);
        cl_buf_free(bi, li);
        cl_buf_free(b, lb);
    }
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0); /* forgotten: applied again */
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    cl_buf_free(v2, l2);
    cl_buf_free(v1, l1);
    cl_state_free(s);
}

/* ---- accounts: created, old formats, the iteration setting ---- */

/* put_le appends v as size little-endian bytes at *p. */
static void put_le(unsigned char **p, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        *(*p)++ = (unsigned char)(v >> (8 * i));
}

/* put_user_v1 writes the USER_SET payload as it was before "created"
 * existed (no bit 4): "dave", SHA-256 only, salt 16 x 0x11, 4096
 * iterations, keys 0x22 and 0x33.  Returns the end. */
static unsigned char *put_user_v1(unsigned char *p)
{
    put_le(&p, 4, 2);
    memcpy(p, "dave", 4), p += 4;
    *p++ = 1; /* mechs: SHA-256 */
    *p++ = 16;
    memset(p, 0x11, 16), p += 16;
    put_le(&p, 4096, 4);
    memset(p, 0x22, CL_KEY_SHA256), p += CL_KEY_SHA256;
    memset(p, 0x33, CL_KEY_SHA256), p += CL_KEY_SHA256;
    return p;
}

static void test_user_created(void)
{
    struct cl_state *s;
    struct cl_effects eff;
    struct cl_user u;

    REQUIRE(cl_state_new(&s) == 0);
    make_user(&u, 1, true);
    u.created = 1700000000;
    cl_cmd_user_set(&cmd, "erin", &u, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_ADDED);
    CHECK(cl_user_find(s, "erin")->created == 1700000000);
    CHECK(eff.user != NULL && eff.user->created == 1700000000);
    /* a new password: new keys, the same creation time */
    make_user(&u, 50, false);
    u.created = 1800000000;
    cl_cmd_user_set(&cmd, "erin", &u, false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_CHANGED);
    CHECK(cl_user_find(s, "erin")->created == 1700000000);
    CHECK(cl_user_find(s, "erin")->sha256.stored_key[0] == 51);
    CHECK(!cl_user_find(s, "erin")->sha1.present);
    /* a set that creates (no ADD flag) takes its time; none is 0 */
    u.created = 1800000000;
    cl_cmd_user_set(&cmd, "fred", &u, false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK(cl_user_find(s, "fred")->created == 1800000000);
    u.created = 0;
    cl_cmd_user_set(&cmd, "gina", &u, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK(cl_user_find(s, "gina")->created == 0);
    /* a new password (REPLACE) for an account that is gone: refused */
    cl_cmd_user_passwd(&cmd, "gina", &u);
    CHECK_INT(cmd.flags, CL_CMD_REPLACE);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_CHANGED);
    cl_cmd_user_passwd(&cmd, "ivan", &u);
    CHECK_INT(enc_apply(s, &eff), XE_NOTFOUND);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_user_find(s, "ivan") == NULL);
    cmd.flags = CL_CMD_ADD | CL_CMD_REPLACE;
    {
        unsigned char *b;
        size_t l;
        CHECK_INT(cl_cmd_encode(&cmd, &b, &l), XE_INVAL);
    }
    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)"s", 1, false);
    cmd.flags = CL_CMD_REPLACE;
    {
        unsigned char *b;
        size_t l;
        CHECK_INT(cl_cmd_encode(&cmd, &b, &l), XE_INVAL);
    }
    cl_state_free(s);
}

static void test_user_set_exact_bytes(void)
{
    unsigned char old[128], *end, *buf, *p;
    size_t len, n;
    struct cl_user u;

    /* version 1, USER_SET, ADD: what nodes wrote before "created" */
    p = old;
    *p++ = 1, *p++ = CL_CMD_USER_SET, *p++ = CL_CMD_ADD;
    end = put_user_v1(p);
    n = (size_t)(end - old);
    CHECK_INT(cl_cmd_decode(old, n, &cmd), 0);
    CHECK_STR(cmd.name, "dave");
    REQUIRE(cmd.user != NULL);
    CHECK(cmd.user->created == 0);
    CHECK(cmd.user->sha256.iterations == 4096 && !cmd.user->sha1.present);
    /* and an account without a time encodes to exactly those bytes */
    u = *cmd.user;
    cl_cmd_user_set(&cmd, "dave", &u, true);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    CHECK(len == n && memcmp(buf, old, n) == 0);
    cl_buf_free(buf, len);

    /* with a time: bit 4 and a u64 right after the mechs byte */
    u.created = 0x0102030405060708ULL;
    cl_cmd_user_set(&cmd, "dave", &u, true);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    REQUIRE(len == n + 8);
    CHECK_INT(buf[3 + 2 + 4], 1 | 4);
    CHECK_INT(buf[3 + 2 + 4 + 1], 0x08);
    CHECK_INT(buf[3 + 2 + 4 + 8], 0x01);
    CHECK_INT(cl_cmd_decode(buf, len, &cmd), 0);
    CHECK(cmd.user->created == 0x0102030405060708ULL);
    /* created 0 has one encoding (the bit left out); unknown bits fail */
    memset(buf + 3 + 2 + 4 + 1, 0, 8);
    CHECK_INT(cl_cmd_decode(buf, len, &cmd), XE_CORRUPT);
    buf[3 + 2 + 4] = 1 | 8;
    CHECK_INT(cl_cmd_decode(buf, len, &cmd), XE_CORRUPT);
    /* every truncation */
    u.created = 99;
    cl_buf_free(buf, len);
    cl_cmd_user_set(&cmd, "dave", &u, false);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    for (size_t cut = 0; cut < len; cut++)
        CHECK(cl_cmd_decode(buf, cut, &cmd) < 0);
    cl_buf_free(buf, len);
}

/* put_snap_head writes version, cluster id 5, domain "d.example", no call
 * bridges, one user (dave, old format).  Returns the end. */
static unsigned char *put_snap_head(unsigned char *p, unsigned version)
{
    *p++ = (unsigned char)version;
    put_le(&p, 5, 8);
    put_le(&p, 9, 2);
    memcpy(p, "d.example", 9), p += 9;
    put_le(&p, 0, 4); /* call bridges */
    put_le(&p, 1, 4); /* users */
    return put_user_v1(p);
}

/* CB_SET's set_at (repl.h, CL_CMD_SET_AT): the exact bytes with and
 * without it (without: as every build before wrote it, read as 0,
 * "unknown"); one encoding of unknown; the time comes from the entry and
 * is kept by the same secret again, replaced with a new one; snapshots
 * carry it at version 6 only when some bridge has one, so a state without
 * times still reads on older nodes. */
static void test_cb_set_at(void)
{
    /* version 1, CB_SET, ADD, "cb", secret "s3" */
    static const unsigned char v1[] = {1, 3, 1, 2, 'c', 'b', 0x02, 0, 's', '3'};
    /* the same with SET_AT and 0x0102030405060708 */
    static const unsigned char at[] = {1,   3, 5, 2, 'c', 'b', 0x02, 0, 's',
                                       '3', 8, 7, 6, 5,   4,   3,    2, 1};
    static const unsigned char at0[] = {1,   3, 5, 2, 'c', 'b', 0x02, 0, 's',
                                        '3', 0, 0, 0, 0,   0,   0,    0, 0};
    static const unsigned char del_at[] = {1, 4, 4, 2, 'c', 'b'};
    unsigned char *buf, *snap;
    size_t len, slen;
    struct cl_state *s, *d;
    struct cl_effects eff;

    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)"s3", 2, true);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    CHECK(len == sizeof v1 && memcmp(buf, v1, len) == 0);
    cl_buf_free(buf, len);
    cl_cmd_cb_set_at(&cmd, "cb", (const unsigned char *)"s3", 2, true, 0);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    CHECK(len == sizeof v1 && memcmp(buf, v1, len) == 0); /* 0: left out */
    cl_buf_free(buf, len);
    cl_cmd_cb_set_at(&cmd, "cb", (const unsigned char *)"s3", 2, true,
                     0x0102030405060708ULL);
    REQUIRE(cl_cmd_encode(&cmd, &buf, &len) == 0);
    CHECK(len == sizeof at && memcmp(buf, at, len) == 0);
    cl_buf_free(buf, len);
    CHECK_INT(cl_cmd_decode(v1, sizeof v1, &cmd), 0);
    CHECK(cmd.set_at == 0 && cmd.flags == CL_CMD_ADD);
    CHECK_INT(cl_cmd_decode(at, sizeof at, &cmd), 0);
    CHECK(cmd.set_at == 0x0102030405060708ULL);
    CHECK_INT(cl_cmd_decode(at0, sizeof at0, &cmd), XE_CORRUPT);
    CHECK_INT(cl_cmd_decode(at, sizeof at - 1, &cmd), XE_CORRUPT);
    CHECK_INT(cl_cmd_decode(del_at, sizeof del_at, &cmd), XE_CORRUPT);
    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)"s3", 2, true);
    cmd.flags |= CL_CMD_SET_AT; /* the flag without a time */
    CHECK_INT(cl_cmd_encode(&cmd, &buf, &len), XE_INVAL);

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_cb_set(&cmd, "old", (const unsigned char *)"o1", 2, true);
    CHECK_INT(enc_apply(s, &eff), 0);
    /* no time anywhere: the snapshot is version 1, as before */
    REQUIRE(cl_snapshot_encode(s, &snap, &slen) == 0);
    CHECK_INT(snap[0], CL_SNAP_VERSION);
    cl_buf_free(snap, slen);
    cl_cmd_cb_set_at(&cmd, "cb", (const unsigned char *)"s3", 2, true, 1700000000);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK(cl_callbridge_find(s, "cb")->set_at == 1700000000);
    CHECK(cl_callbridge_find(s, "old")->set_at == 0); /* unknown */
    /* the same secret again: nothing changes, the time neither */
    cl_cmd_cb_set_at(&cmd, "cb", (const unsigned char *)"s3", 2, false, 1800000000);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_callbridge_find(s, "cb")->set_at == 1700000000);
    /* a new secret: its time (none given: unknown) */
    cl_cmd_cb_set_at(&cmd, "cb", (const unsigned char *)"s4", 2, false, 1800000000);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_SECRET);
    CHECK(cl_callbridge_find(s, "cb")->set_at == 1800000000);
    REQUIRE(cl_snapshot_encode(s, &snap, &slen) == 0);
    CHECK_INT(snap[0], CL_SNAP_VERSION_CB_TIME);
    REQUIRE(cl_snapshot_decode(snap, slen, &d) == 0);
    CHECK(cl_callbridge_find(d, "cb")->set_at == 1800000000);
    CHECK(cl_callbridge_find(d, "old")->set_at == 0);
    cl_state_free(d);
    /* the last 16 bytes are the times of "cb" and "old", in that order:
     * every time zero at version 6 is corrupt (one encoding of none) */
    memset(snap + slen - 16, 0, 16);
    CHECK_INT(cl_snapshot_decode(snap, slen, &d), XE_CORRUPT);
    CHECK(d == NULL);
    cl_buf_free(snap, slen);
    cl_cmd_cb_set(&cmd, "cb", (const unsigned char *)"s5", 2, false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK(cl_callbridge_find(s, "cb")->set_at == 0);
    REQUIRE(cl_snapshot_encode(s, &snap, &slen) == 0);
    CHECK(snap[0] < CL_SNAP_VERSION_CB_TIME);
    cl_buf_free(snap, slen);
    cl_state_free(s);
}

static void test_old_snapshots(void)
{
    unsigned char b[256], *p, *snap;
    size_t n, len;
    struct cl_state *d;

    /* version 1, as written before created and iterations */
    p = put_snap_head(b, 1);
    n = (size_t)(p - b);
    REQUIRE(cl_snapshot_decode(b, n, &d) == 0);
    CHECK_STR(cl_domain(d), "d.example");
    REQUIRE(cl_user_find(d, "dave") != NULL);
    CHECK(cl_user_find(d, "dave")->created == 0);
    CHECK(cl_user_iterations(d) == CL_ITER_DEFAULT);
    /* read and written again: the same bytes (older readers still read it) */
    REQUIRE(cl_snapshot_encode(d, &snap, &len) == 0);
    CHECK(len == n && memcmp(snap, b, n) == 0);
    cl_buf_free(snap, len);
    cl_state_free(d);

    /* version 2: one request id */
    p = put_snap_head(b, 2);
    put_le(&p, 1, 4);
    put_le(&p, 7, 8), put_le(&p, 3, 8), put_le(&p, 0, 4);
    n = (size_t)(p - b);
    REQUIRE(cl_snapshot_decode(b, n, &d) == 0);
    CHECK(cl_user_find(d, "dave") != NULL);
    cl_state_free(d);
    /* version 2 never has zero request ids */
    p = put_snap_head(b, 2);
    put_le(&p, 0, 4);
    CHECK_INT(cl_snapshot_decode(b, (size_t)(p - b), &d), XE_CORRUPT);

    /* version 3: request ids (none here) and the iteration count */
    p = put_snap_head(b, 3);
    put_le(&p, 0, 4);
    put_le(&p, 20000, 4);
    n = (size_t)(p - b);
    REQUIRE(cl_snapshot_decode(b, n, &d) == 0);
    CHECK(cl_user_iterations(d) == 20000);
    REQUIRE(cl_snapshot_encode(d, &snap, &len) == 0);
    CHECK(len == n && memcmp(snap, b, n) == 0);
    cl_buf_free(snap, len);
    cl_state_free(d);
    /* below the RFC 7677 minimum; an unknown version */
    p = put_snap_head(b, 3);
    put_le(&p, 0, 4);
    put_le(&p, 4095, 4);
    CHECK_INT(cl_snapshot_decode(b, (size_t)(p - b), &d), XE_INVAL);
    p = put_snap_head(b, 4);
    put_le(&p, 0, 4);
    put_le(&p, 20000, 4);
    CHECK_INT(cl_snapshot_decode(b, (size_t)(p - b), &d), XE_CORRUPT);
}

static void test_user_iterations(void)
{
    struct cl_state *s, *d;
    struct cl_effects eff;
    struct cl_user u;
    unsigned char *a, *b;
    size_t la, lb;

    REQUIRE(cl_state_new(&s) == 0);
    CHECK(cl_user_iterations(s) == CL_ITER_DEFAULT);
    cl_cmd_user_iter(&cmd, CL_ITER_MIN - 1);
    REQUIRE(cl_cmd_encode(&cmd, &a, &la) == XE_INVAL);
    cl_cmd_user_iter(&cmd, CL_ITER_MAX + 1);
    REQUIRE(cl_cmd_encode(&cmd, &a, &la) == XE_INVAL);
    cl_cmd_user_iter(&cmd, 10000);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_ITER);
    CHECK_STR(eff.name, "");
    CHECK(cl_user_iterations(s) == 10000);
    CHECK_INT(enc_apply(s, &eff), 0); /* the same again: nothing changes */
    CHECK_INT(eff.kind, CL_EFF_NONE);
    /* exact bytes: version 1, type 7, no flags, u32 */
    REQUIRE(cl_cmd_encode(&cmd, &a, &la) == 0);
    {
        static const unsigned char want[] = {1, 7, 0, 0x10, 0x27, 0, 0};
        CHECK(la == sizeof want && memcmp(a, want, la) == 0);
        a[1] = 7, a[2] = CL_CMD_ADD;
        CHECK(cl_cmd_decode(a, la, &cmd) < 0);
    }
    cl_buf_free(a, la);

    /* the snapshot carries it, with users that have a time */
    make_user(&u, 4, true);
    u.created = 1234;
    cl_cmd_user_set(&cmd, "hank", &u, true);
    CHECK_INT(enc_apply(s, NULL), 0);
    REQUIRE(cl_snapshot_encode(s, &a, &la) == 0);
    CHECK_INT(a[0], CL_SNAP_VERSION_ITER);
    REQUIRE(cl_snapshot_decode(a, la, &d) == 0);
    CHECK(cl_user_iterations(d) == 10000);
    CHECK(cl_user_find(d, "hank")->created == 1234);
    REQUIRE(cl_snapshot_encode(d, &b, &lb) == 0);
    CHECK(la == lb && memcmp(a, b, la) == 0);
    cl_state_free(d);
    for (size_t cut = 0; cut < la; cut++)
        CHECK(cl_snapshot_decode(a, cut, &d) < 0 && d == NULL);
    cl_buf_free(b, lb);
    cl_buf_free(a, la);
    CHECK_STR(cl_cmd_type_name(CL_CMD_USER_ITER), "user-iterations");
    CHECK_STR(cl_effect_name(CL_EFF_USER_ITER), "user-iterations");
    cl_state_free(s);
}

/* roster_apply encodes a ROSTER_SET (del false) or ROSTER_DEL of user's
 * entry for jid (sub state st, listed) with request id (origin, seq) (0:
 * none) and applies it. */
static int roster_apply(struct cl_state *s, const char *user, const char *jid, bool del,
                        enum roster_sub sub, uint64_t origin, uint64_t seq,
                        struct cl_effects *eff)
{
    struct roster_cmd c;
    struct roster_item it = {.jid = (char *)jid, .sub = sub, .listed = true};
    unsigned char *buf;
    size_t len;
    int rc;

    if (del)
        roster_cmd_del(&c, user, jid);
    else
        roster_cmd_set(&c, user, &it);
    c.req_origin = origin;
    c.req_seq = seq;
    rc = roster_cmd_encode(&c, &buf, &len);
    if (rc < 0) {
        TL_FAIL_("roster encode failed: %s", xe_name(rc));
        return rc;
    }
    rc = cl_apply(s, buf, len, eff);
    free(buf);
    return rc;
}

static void test_rosters(void)
{
    struct cl_state *s, *d;
    struct cl_effects eff;
    struct cl_user u;
    const struct roster *r;
    struct roster_cmd rc;
    unsigned char *a, *b;
    size_t la, lb;

    REQUIRE(cl_state_new(&s) == 0);
    CHECK(cl_rosters(s) != NULL && roster_db_user_count(cl_rosters(s)) == 0);
    CHECK_INT(CL_CMD_ROSTER_SET, ROSTER_CMD_SET);
    CHECK_INT(CL_CMD_ROSTER_DEL, ROSTER_CMD_DEL);

    /* SET: applied, effect ROSTER with the user and the contact */
    CHECK_INT(roster_apply(s, "alice", "bob@x", false, ROSTER_SUB_TO, 0, 0, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_ROSTER);
    CHECK_INT(eff.type, CL_CMD_ROSTER_SET);
    CHECK_STR(eff.name, "alice");
    CHECK_STR(eff.roster_jid, "bob@x");
    r = roster_db_get(cl_rosters(s), "alice");
    REQUIRE(r != NULL && roster_find(r, "bob@x") != NULL);
    CHECK_INT(roster_find(r, "bob@x")->sub, ROSTER_SUB_TO);

    /* DEL of nothing: XE_NOTFOUND, no effect; DEL: effect, roster gone */
    CHECK_INT(roster_apply(s, "alice", "carol@x", true, 0, 0, 0, &eff), XE_NOTFOUND);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK_INT(roster_apply(s, "alice", "bob@x", true, 0, 0, 0, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_ROSTER);
    CHECK_INT(eff.type, CL_CMD_ROSTER_DEL);
    CHECK_STR(eff.roster_jid, "bob@x");
    CHECK(roster_db_get(cl_rosters(s), "alice") == NULL);

    /* An entry that only keeps a pending request (not listed, RFC 6121
     * A.1): stored and deleted with no effect, nothing to push */
    {
        struct roster_cmd pc;
        struct roster_item pit = {.jid = "dave@x", .pending_in = true, .listed = false};
        unsigned char *pb;
        size_t pl;

        roster_cmd_set(&pc, "alice", &pit);
        REQUIRE(roster_cmd_encode(&pc, &pb, &pl) == 0);
        CHECK_INT(cl_apply(s, pb, pl, &eff), 0);
        free(pb);
        CHECK_INT(eff.kind, CL_EFF_NONE);
        CHECK(roster_find(roster_db_get(cl_rosters(s), "alice"), "dave@x") != NULL);
        CHECK_INT(roster_apply(s, "alice", "dave@x", true, 0, 0, 0, &eff), 0);
        CHECK_INT(eff.kind, CL_EFF_NONE);
        /* listed after: the effect */
        CHECK_INT(roster_apply(s, "alice", "dave@x", false, 0, 0, 0, &eff), 0);
        CHECK_INT(eff.kind, CL_EFF_ROSTER);
        CHECK_INT(roster_apply(s, "alice", "dave@x", true, 0, 0, 0, &eff), 0);
        CHECK_INT(eff.kind, CL_EFF_ROSTER);
    }

    /* A request id applied twice: once, the first result again */
    CHECK_INT(roster_apply(s, "alice", "bob@x", false, ROSTER_SUB_FROM, 9, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_ROSTER);
    CHECK_INT(roster_apply(s, "alice", "bob@x", true, 0, 9, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(roster_db_get(cl_rosters(s), "alice") != NULL);

    /* cl_cmd_decode validates a roster command and keeps its header;
     * cl_cmd_with_request stamps an id into it */
    {
        struct roster_item it = {.jid = "bob@x", .listed = true};
        roster_cmd_set(&rc, "alice", &it);
        REQUIRE(roster_cmd_encode(&rc, &a, &la) == 0);
        CHECK_INT(cl_cmd_decode(a, la, &cmd), 0);
        CHECK_INT(cmd.type, CL_CMD_ROSTER_SET);
        CHECK_STR(cmd.name, "alice");
        CHECK_STR(cl_cmd_type_name(CL_CMD_ROSTER_SET), "roster-set");
        CHECK_STR(cl_cmd_type_name(CL_CMD_ROSTER_DEL), "roster-del");
        CHECK_STR(cl_effect_name(CL_EFF_ROSTER), "roster");
        REQUIRE(cl_cmd_with_request(a, la, 7, 42, &b, &lb) == 0);
        CHECK_INT(cl_cmd_decode(b, lb, &cmd), 0);
        CHECK(cmd.req_origin == 7 && cmd.req_seq == 42);
        CHECK_INT(cmd.type, CL_CMD_ROSTER_SET);
        cl_buf_free(b, lb);
        a[la - 1] ^= 0x40; /* not a valid request length any more */
        CHECK(cl_cmd_decode(a, la - 1, &cmd) < 0);
        free(a);
    }

    /* Snapshot: version 4 with the rosters, round trip byte for byte */
    CHECK_INT(roster_apply(s, "bob", "alice@x", false, ROSTER_SUB_TO, 0, 0, NULL), 0);
    REQUIRE(cl_snapshot_encode(s, &a, &la) == 0);
    CHECK_INT(a[0], CL_SNAP_VERSION_ROSTER);
    REQUIRE(cl_snapshot_decode(a, la, &d) == 0);
    CHECK_INT(roster_db_user_count(cl_rosters(d)), 2);
    r = roster_db_get(cl_rosters(d), "alice");
    REQUIRE(r != NULL && roster_find(r, "bob@x") != NULL);
    CHECK_INT(roster_find(r, "bob@x")->sub, ROSTER_SUB_FROM);
    CHECK(cl_user_iterations(d) == CL_ITER_DEFAULT);
    /* the request ids came along: the duplicate is still refused */
    CHECK_INT(roster_apply(d, "alice", "bob@x", true, 0, 9, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    REQUIRE(cl_snapshot_encode(d, &b, &lb) == 0);
    CHECK(la == lb && memcmp(a, b, la) == 0);
    cl_buf_free(b, lb);
    cl_state_free(d);
    for (size_t cut = 0; cut < la; cut++)
        CHECK(cl_snapshot_decode(a, cut, &d) < 0 && d == NULL);
    for (size_t i = 0; i < la; i++) {
        a[i] ^= 0xff;
        if (cl_snapshot_decode(a, la, &d) == 0)
            cl_state_free(d);
        a[i] ^= 0xff;
    }
    cl_buf_free(a, la);

    /* USER_DEL drops the user's roster, not entries naming the user */
    make_user(&u, 1, false);
    cl_cmd_user_set(&cmd, "alice", &u, true);
    CHECK_INT(enc_apply(s, NULL), 0);
    cl_cmd_user_del(&cmd, "alice");
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_USER_DELETED);
    CHECK(roster_db_get(cl_rosters(s), "alice") == NULL);
    CHECK(roster_db_get(cl_rosters(s), "bob") != NULL);

    /* Without rosters the snapshot is the old version again */
    CHECK_INT(roster_apply(s, "bob", "alice@x", true, 0, 0, 0, NULL), 0);
    REQUIRE(cl_snapshot_encode(s, &a, &la) == 0);
    CHECK(a[0] < CL_SNAP_VERSION_ROSTER);
    cl_buf_free(a, la);
    cl_state_free(s);
}

/* sodium_malloc needs sodium_init, also when one case runs alone. */
__attribute__((constructor)) static void setup(void)
{
    if (sodium_init() < 0)
        abort();
}

/* LOGIN (login throttling across the cluster): exact bytes, validation,
 * and an apply that reports the effect and changes no state (its snapshot
 * is the same bytes before and after). */
static void test_login_entries(void)
{
    struct cl_state *s;
    struct cl_effects eff;
    unsigned char *a, *snap0, *snap1;
    size_t la, l0, l1;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_init(&cmd, 42);
    REQUIRE(enc_apply(s, &eff) == 0);
    REQUIRE(cl_snapshot_encode(s, &snap0, &l0) == 0);
    cl_cmd_login(&cmd, CL_LOGIN_ACCOUNT, "alice", true);
    REQUIRE(cl_cmd_encode(&cmd, &a, &la) == 0);
    {
        static const unsigned char want[] = {1, 10,  0,   1,   1,   5,
                                             0, 'a', 'l', 'i', 'c', 'e'};
        CHECK(la == sizeof want && memcmp(a, want, la) == 0);
    }
    CHECK_INT(cl_apply(s, a, la, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_LOGIN);
    CHECK_INT(eff.login_what, CL_LOGIN_ACCOUNT);
    CHECK(eff.login_failed);
    CHECK_STR(eff.name, "alice");
    CHECK_STR(cl_effect_name(eff.kind), "login");
    CHECK_STR(cl_cmd_type_name(CL_CMD_LOGIN), "login");
    /* failed is 0 or 1 */
    a[4] = 2;
    CHECK_INT(cl_cmd_decode(a, la, &cmd), XE_CORRUPT);
    /* what is 1 or 2 */
    a[4] = 0;
    a[3] = 3;
    CHECK_INT(cl_cmd_decode(a, la, &cmd), XE_INVAL);
    cl_buf_free(a, la);
    cl_cmd_login(&cmd, CL_LOGIN_ADDRESS, "::1", false);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_LOGIN);
    CHECK_INT(eff.login_what, CL_LOGIN_ADDRESS);
    CHECK(!eff.login_failed);
    CHECK_STR(eff.name, "::1");
    cl_cmd_login(&cmd, CL_LOGIN_ADDRESS, "192.0.2.7", true);
    CHECK_INT(enc_apply(s, &eff), 0);
    REQUIRE(cl_snapshot_encode(s, &snap1, &l1) == 0);
    CHECK(l0 == l1 && memcmp(snap0, snap1, l0) == 0);
    cl_buf_free(snap0, l0);
    cl_buf_free(snap1, l1);
    /* refused: an address with a space or a port's brackets, an account
     * that is no prepared localpart, an empty name */
    cl_cmd_login(&cmd, CL_LOGIN_ADDRESS, "[::1]", true);
    CHECK_INT(cl_cmd_encode(&cmd, &a, &la), XE_INVAL);
    cl_cmd_login(&cmd, CL_LOGIN_ADDRESS, "a b", true);
    CHECK_INT(cl_cmd_encode(&cmd, &a, &la), XE_INVAL);
    cl_cmd_login(&cmd, CL_LOGIN_ACCOUNT, "Alice", true);
    CHECK_INT(cl_cmd_encode(&cmd, &a, &la), XE_INVAL);
    cl_cmd_login(&cmd, CL_LOGIN_ACCOUNT, "", true);
    CHECK_INT(cl_cmd_encode(&cmd, &a, &la), XE_INVAL);
    cl_state_free(s);
}

/* LOGIN and PRES_LAST entries keep their request ids apart from admin and
 * roster writes: more than CL_SEEN_MAX failed logins (an attacker on the
 * followers) do not push out the id of a callbridge add, whose late copy
 * after a delete then stays a no-op; a resent LOGIN is still counted once;
 * and the snapshot carries the admin ids only, as before. */
/* ---- sessions: version 3 ids (the Raft thesis §6.3) ---- */

/* with_id re-encodes buf with the id (origin, boot, seq, first): owned. */
static unsigned char *with_id(const unsigned char *buf, size_t len, uint64_t origin,
                              uint64_t boot, uint64_t seq, uint64_t first,
                              size_t *out_len)
{
    struct cl_req id = {origin, boot, seq, first};
    unsigned char *out = NULL;

    if (cl_cmd_with_req(buf, len, &id, &out, out_len) != 0)
        TL_FAIL_("cl_cmd_with_req %llu/%llu failed", (unsigned long long)seq,
                 (unsigned long long)first);
    return out;
}

/* sess_apply applies cmd (as encoded now) with the id; cl_apply's result. */
static int sess_apply(struct cl_state *s, uint64_t origin, uint64_t boot, uint64_t seq,
                      uint64_t first, struct cl_effects *eff)
{
    unsigned char *b, *bi;
    size_t lb, li;
    int rc;

    if (cl_cmd_encode(&cmd, &b, &lb) != 0) {
        TL_FAIL_("encode failed");
        return XE_INVAL;
    }
    bi = with_id(b, lb, origin, boot, seq, first, &li);
    rc = bi != NULL ? cl_apply(s, bi, li, eff) : XE_INVAL;
    cl_buf_free(bi, li);
    cl_buf_free(b, lb);
    return rc;
}

/* The version 3 header, byte for byte, and its rules: boot non-zero,
 * first <= seq < first + CL_WINDOW; a version above it is a newer
 * xmppd's. */
static void test_session_exact_bytes(void)
{
    static const unsigned char del_v3[] = {3, /* version */
                                           0x34,
                                           0x12,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0, /* origin 0x1234 */
                                           0xef,
                                           0xbe,
                                           0xad,
                                           0xde,
                                           0,
                                           0,
                                           0,
                                           0, /* boot 0xdeadbeef */
                                           9,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0, /* seq 9 */
                                           7,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0,
                                           0, /* first 7 */
                                           CL_CMD_CB_DEL,
                                           0,
                                           3,
                                           'c',
                                           'b',
                                           'x'};
    unsigned char bad[sizeof del_v3], *v1, *v3;
    size_t l1, l3;
    struct cl_req id = {0x1234, 0xdeadbeef, 9, 7};

    cl_cmd_cb_del(&cmd, "cbx");
    REQUIRE(cl_cmd_encode(&cmd, &v1, &l1) == 0);
    REQUIRE(cl_cmd_with_req(v1, l1, &id, &v3, &l3) == 0);
    CHECK(l3 == sizeof del_v3 && memcmp(v3, del_v3, l3) == 0);
    CHECK_INT(cl_cmd_decode(del_v3, sizeof del_v3, &cmd), 0);
    CHECK(cmd.req_origin == 0x1234 && cmd.req_boot == 0xdeadbeef && cmd.req_seq == 9 &&
          cmd.req_first == 7);
    CHECK_STR(cmd.name, "cbx");
    CHECK_INT(cl_cmd_req(del_v3, sizeof del_v3, &id, NULL), 0);
    CHECK(id.origin == 0x1234 && id.boot == 0xdeadbeef && id.seq == 9 && id.first == 7);
    cl_buf_free(v3, l3);
    for (size_t cut = 0; cut < sizeof del_v3; cut++)
        CHECK(cl_cmd_decode(del_v3, cut, &cmd) < 0);
    /* boot 0, first above seq, seq a window or more above first */
    memcpy(bad, del_v3, sizeof bad);
    memset(bad + 9, 0, 8);
    CHECK_INT(cl_cmd_decode(bad, sizeof bad, &cmd), XE_CORRUPT);
    memcpy(bad, del_v3, sizeof bad);
    bad[25] = 10;
    CHECK_INT(cl_cmd_decode(bad, sizeof bad, &cmd), XE_CORRUPT);
    memcpy(bad, del_v3, sizeof bad);
    bad[17] = (unsigned char)(7 + CL_WINDOW);
    bad[18] = (7 + CL_WINDOW) >> 8;
    CHECK_INT(cl_cmd_decode(bad, sizeof bad, &cmd), XE_CORRUPT);
    bad[17] = (unsigned char)(6 + CL_WINDOW);
    bad[18] = (6 + CL_WINDOW) >> 8;
    CHECK_INT(cl_cmd_decode(bad, sizeof bad, &cmd), 0);
    /* a version 4 header: written by a newer xmppd */
    memcpy(bad, del_v3, sizeof bad);
    bad[0] = 4;
    CHECK_INT(cl_cmd_decode(bad, sizeof bad, &cmd), XE_UNSUPPORTED);
    /* encoding refuses what decoding would */
    id = (struct cl_req){0x1234, 0xdeadbeef, 7, 9};
    CHECK_INT(cl_cmd_with_req(v1, l1, &id, &v3, &l3), XE_INVAL);
    id = (struct cl_req){0x1234, 0xdeadbeef, 7 + CL_WINDOW, 7};
    CHECK_INT(cl_cmd_with_req(v1, l1, &id, &v3, &l3), XE_INVAL);
    cl_buf_free(v1, l1);
}

/* A session keeps the results of its requests at or above its mark (the
 * highest first it has seen), whatever other origins write meanwhile; a
 * copy below the mark is refused (XE_EXPIRED), never applied; a new boot
 * of the same node is a new session; and the window is in the snapshot
 * (version 5), so a node restored from it decides the same. */
static void test_sessions(void)
{
    struct cl_state *s, *d;
    struct cl_effects eff;
    unsigned char *add, *snap, *snap2;
    size_t ladd, ls, ls2;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_cb_set(&cmd, "cbx", (const unsigned char *)"s1", 2, true);
    REQUIRE(cl_cmd_encode(&cmd, &snap, &ls) == 0);
    add = with_id(snap, ls, 0xa, 0xb1, 5, 5, &ladd);
    cl_buf_free(snap, ls);
    REQUIRE(add != NULL);
    CHECK_INT(cl_apply(s, add, ladd, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    REQUIRE(cl_snapshot_encode(s, &snap, &ls) == 0);
    CHECK_INT(snap[0], CL_SNAP_VERSION_SESSIONS);
    cl_cmd_cb_del(&cmd, "cbx");
    CHECK_INT(enc_apply(s, NULL), 0);
    /* a flood from other origins: version 2 ids and other sessions */
    for (unsigned i = 0; i < 2 * CL_SEEN_MAX; i++) {
        cl_cmd_set_domain(&cmd, "example.org");
        if (i % 2 == 0)
            CHECK_INT(sess_apply(s, 0xb, 0xb2, 100 + i, 100 + i, NULL), 0);
        else
            CHECK_INT(sess_apply(s, 0xc + i % 5, 0, 100 + i, 0, NULL), 0);
    }
    /* the late copy: the first result, nothing changes */
    CHECK_INT(cl_apply(s, add, ladd, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_callbridge_find(s, "cbx") == NULL);
    /* the restored snapshot knows it too */
    REQUIRE(cl_snapshot_decode(snap, ls, &d) == 0);
    CHECK_INT(cl_apply(d, add, ladd, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    REQUIRE(cl_snapshot_encode(d, &snap2, &ls2) == 0);
    CHECK(ls == ls2 && memcmp(snap, snap2, ls) == 0); /* one encoding */
    cl_buf_free(snap2, ls2);
    cl_state_free(d);
    for (size_t cut = 0; cut < ls; cut++)
        CHECK(cl_snapshot_decode(snap, cut, &d) < 0 && d == NULL);
    cl_buf_free(snap, ls);

    /* a later request says 5 is settled (first 6): 5 is forgotten and a
     * copy of it is refused, the state unchanged */
    cl_cmd_cb_set(&cmd, "cby", (const unsigned char *)"s2", 2, true);
    CHECK_INT(sess_apply(s, 0xa, 0xb1, 7, 6, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    CHECK_INT(cl_apply(s, add, ladd, &eff), XE_EXPIRED);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_callbridge_find(s, "cbx") == NULL);
    /* 6 (sent before 7, committed after it) is still taken */
    cl_cmd_cb_set(&cmd, "cbz", (const unsigned char *)"s3", 2, true);
    CHECK_INT(sess_apply(s, 0xa, 0xb1, 6, 6, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    CHECK_INT(sess_apply(s, 0xa, 0xb1, 6, 6, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    /* a failed first result is the answer of its copies */
    CHECK_INT(sess_apply(s, 0xa, 0xb1, 8, 6, &eff), XE_EXISTS);
    cl_cmd_cb_del(&cmd, "cbz");
    CHECK_INT(enc_apply(s, NULL), 0);
    cl_cmd_cb_set(&cmd, "cbz", (const unsigned char *)"s3", 2, true);
    CHECK_INT(sess_apply(s, 0xa, 0xb1, 8, 8, &eff), XE_EXISTS);
    CHECK(cl_callbridge_find(s, "cbz") == NULL);
    /* the node started again: a new boot, a new session from any seq */
    CHECK_INT(sess_apply(s, 0xa, 0xb9, 1, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    cl_buf_free(add, ladd);
    cl_state_free(s);
}

/* Sessions are bounded: CL_SESSIONS_MAX, the least recently used (in log
 * order, the same on every node) dropped first; each keeps at most
 * CL_WINDOW results. */
static void test_sessions_bounded(void)
{
    struct cl_state *s, *d;
    struct cl_effects eff;
    unsigned char *snap, *p;
    size_t ls;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_set_domain(&cmd, "example.org");
    for (uint64_t o = 1; o <= CL_SESSIONS_MAX; o++)
        CHECK_INT(sess_apply(s, o, 0x77, 1, 1, NULL), 0);
    /* origin 1 used again: now origin 2 is the least recently used */
    CHECK_INT(sess_apply(s, 1, 0x77, 2, 1, NULL), 0);
    CHECK_INT(sess_apply(s, 1000, 0x77, 1, 1, NULL), 0); /* 2 goes */
    CHECK_INT(sess_apply(s, 1, 0x77, 1, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE); /* 1 kept */
    CHECK_INT(sess_apply(s, 3, 0x77, 1, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE); /* 3 kept */
    cl_cmd_set_domain(&cmd, "example.com");
    CHECK_INT(sess_apply(s, 2, 0x77, 1, 1, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_DOMAIN); /* 2 forgotten: a new session */
    /* a full window of one origin's results, all kept */
    for (uint64_t q = 10; q < 10 + CL_WINDOW; q++)
        CHECK_INT(sess_apply(s, 5, 0x77, q, 10, NULL), 0);
    cl_cmd_set_domain(&cmd, "example.net");
    CHECK_INT(sess_apply(s, 5, 0x77, 10, 10, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    REQUIRE(cl_snapshot_encode(s, &snap, &ls) == 0);
    /* 64 sessions, one with 256 results (plus 1: 5's seq 1), others 1-2 */
    CHECK(ls < 64 * 28 + (CL_WINDOW + 70) * 12 + 64);
    REQUIRE(cl_snapshot_decode(snap, ls, &d) == 0);
    CHECK_INT(sess_apply(d, 5, 0x77, 10 + CL_WINDOW - 1, 10, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    cl_state_free(d);
    /* strict: the last session (5, mark 10) with its last result (seq
     * 10 + CL_WINDOW - 1) moved below its mark */
    p = snap + ls - 12;
    CHECK(p[0] == (unsigned char)(9 + CL_WINDOW) && p[1] == (9 + CL_WINDOW) >> 8);
    p[1] = 0;
    CHECK_INT(cl_snapshot_decode(snap, ls, &d), XE_CORRUPT);
    CHECK(d == NULL);
    cl_buf_free(snap, ls);
    cl_state_free(s);
}

static void test_soft_ids_apart(void)
{
    struct cl_state *s, *d;
    struct cl_effects eff;
    unsigned char *v1, *v2, *b, *bi, *snap, *snap2;
    size_t l1, l2, lb, li, ls, ls2;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_cb_set(&cmd, "cbx", (const unsigned char *)"s1", 2, true);
    REQUIRE(cl_cmd_encode(&cmd, &v1, &l1) == 0);
    REQUIRE(cl_cmd_with_request(v1, l1, 0x1234, 7, &v2, &l2) == 0);
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_CB_ADDED);
    REQUIRE(cl_snapshot_encode(s, &snap, &ls) == 0);
    for (unsigned i = 0; i < 2 * CL_SEEN_MAX; i++) {
        if (i % 2 == 0)
            cl_cmd_login(&cmd, CL_LOGIN_ACCOUNT, "mallory", true);
        else
            cl_cmd_pres_last(&cmd, "mallory", "r", NULL, 1000 + i);
        REQUIRE(cl_cmd_encode(&cmd, &b, &lb) == 0);
        REQUIRE(cl_cmd_with_request(b, lb, 0x5, 1000 + i, &bi, &li) == 0);
        CHECK_INT(cl_apply(s, bi, li, &eff), 0);
        CHECK(eff.kind == CL_EFF_LOGIN || eff.kind == CL_EFF_PRES_LAST);
        if (i == 2 * CL_SEEN_MAX - 2) {
            /* the newest LOGIN resent: the first result, not counted again */
            CHECK_INT(cl_apply(s, bi, li, &eff), 0);
            CHECK_INT(eff.kind, CL_EFF_NONE);
        }
        cl_buf_free(bi, li);
        cl_buf_free(b, lb);
    }
    /* the soft ids are not in the snapshot: it is the same as before them */
    REQUIRE(cl_snapshot_encode(s, &snap2, &ls2) == 0);
    CHECK(ls == ls2 && memcmp(snap, snap2, ls) == 0);
    cl_cmd_cb_del(&cmd, "cbx");
    CHECK_INT(enc_apply(s, NULL), 0);
    CHECK_INT(cl_apply(s, v2, l2, &eff), 0); /* remembered: no-op */
    CHECK_INT(eff.kind, CL_EFF_NONE);
    CHECK(cl_callbridge_find(s, "cbx") == NULL);
    REQUIRE(cl_snapshot_decode(snap, ls, &d) == 0);
    CHECK_INT(cl_apply(d, v2, l2, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_NONE);
    cl_state_free(d);
    cl_buf_free(snap, ls);
    cl_buf_free(snap2, ls2);
    cl_buf_free(v2, l2);
    cl_buf_free(v1, l1);
    cl_state_free(s);
}

/* PRES_LAST (the last unavailable presence, RFC 6121 §4.3.2): round trip,
 * validation, and an apply that reports it and changes no state. */
static void test_pres_last_entries(void)
{
    struct cl_state *s;
    struct cl_effects eff;
    unsigned char *a;
    size_t la;

    REQUIRE(cl_state_new(&s) == 0);
    cl_cmd_pres_last(&cmd, "bob", "phone", "back at 5", 1700000000123ULL);
    REQUIRE(cl_cmd_encode(&cmd, &a, &la) == 0);
    {
        static const unsigned char head[] = {1, 11, 0, 3, 0, 'b', 'o', 'b', 5, 0};
        CHECK(la == 3 + 2 + 3 + 2 + 5 + 8 + 2 + 9 && memcmp(a, head, sizeof head) == 0);
    }
    CHECK_INT(cl_apply(s, a, la, &eff), 0);
    CHECK_INT(eff.kind, CL_EFF_PRES_LAST);
    CHECK_STR(eff.name, "bob");
    CHECK_STR(eff.pres_resource, "phone");
    CHECK_STR(eff.pres_status, "back at 5");
    CHECK(eff.pres_wall_ms == 1700000000123ULL);
    CHECK_STR(cl_effect_name(eff.kind), "presence-last");
    /* truncated */
    CHECK_INT(cl_cmd_decode(a, la - 1, &cmd), XE_CORRUPT);
    cl_buf_free(a, la);
    /* no status, no time */
    cl_cmd_pres_last(&cmd, "bob", "x", NULL, 0);
    CHECK_INT(enc_apply(s, &eff), 0);
    CHECK_STR(eff.pres_status, "");
    CHECK(eff.pres_wall_ms == 0);
    CHECK_INT(cl_user_count(s), 0);
    /* refused: no resource, a user that is no prepared localpart */
    cl_cmd_pres_last(&cmd, "bob", "", NULL, 0);
    CHECK_INT(cl_cmd_encode(&cmd, &a, &la), XE_INVAL);
    cl_cmd_pres_last(&cmd, "B o b", "x", NULL, 0);
    CHECK_INT(cl_cmd_encode(&cmd, &a, &la), XE_INVAL);
    cl_state_free(s);
}

TL_MAIN(T(test_names), T(test_init_and_domain), T(test_callbridges), T(test_users),
        T(test_encode_validation), T(test_decode_exact_bytes), T(test_garbage),
        T(test_snapshot_round_trip), T(test_names_of_things), T(test_duplicate_request),
        T(test_user_created), T(test_cb_set_at), T(test_user_set_exact_bytes),
        T(test_old_snapshots), T(test_user_iterations), T(test_rosters),
        T(test_login_entries), T(test_soft_ids_apart), T(test_pres_last_entries),
        T(test_session_exact_bytes), T(test_sessions), T(test_sessions_bounded))
