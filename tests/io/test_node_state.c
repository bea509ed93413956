/* test_node_state.c: the node-local state file (xmppd/io/node_state.c): round trip,
 * atomic replace (a crash or failure before the rename leaves the old
 * state), truncated and damaged files detected with a message that names
 * the file and the way out, permissions. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "node_state.h"
#include "testlib.h"

static char dir[256];

static void mkdir_tmp(void)
{
    if (sodium_init() < 0)
        exit(1);
    snprintf(dir, sizeof dir, "/tmp/xmppd-test-state-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static void rm_tmp(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/" NODE_STATE_FILE, dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/" NODE_STATE_FILE ".tmp", dir);
    unlink(p);
    rmdir(dir);
}

static void sample(struct node_state *s)
{
    node_state_defaults(s);
    s->xmpp_enabled = true;
    s->n_listen = 2;
    snprintf(s->listen[0].host, sizeof s->listen[0].host, "127.0.0.1");
    s->listen[0].port = 5223;
    snprintf(s->listen[1].host, sizeof s->listen[1].host, "::1");
    s->listen[1].port = 5223;
    s->tls = NODE_STATE_TLS_REQUIRED;
    snprintf(s->key, sizeof s->key, "node1.key");
    snprintf(s->cert, sizeof s->cert, "node1.crt");
    snprintf(s->bundle, sizeof s->bundle, "/etc/ssl/ca bundle.pem");
    s->keepalive_s = 30;
    s->auth_timeout_s = 5;
    s->cluster_enabled = true;
    snprintf(s->trust, sizeof s->trust, "cluster.pem");
    snprintf(s->peer.host, sizeof s->peer.host, "10.0.0.1");
    s->peer.port = 5224;
    s->client_port = 5322;
    s->client_tls_port = 5323;
    s->client_tls = NODE_STATE_TLS_OPTIONAL;
    s->sasl_plain = true;
    s->client_max_sessions = 3;
    s->client_rate = 4096;
    s->client_version = true;
}

static void check_same(const struct node_state *a, const struct node_state *b)
{
    CHECK(a->node_id == b->node_id);
    CHECK(a->xmpp_enabled == b->xmpp_enabled);
    CHECK_INT(a->n_listen, b->n_listen);
    for (size_t i = 0; i < a->n_listen && i < b->n_listen; i++) {
        CHECK_STR(a->listen[i].host, b->listen[i].host);
        CHECK_INT(a->listen[i].port, b->listen[i].port);
    }
    CHECK_INT(a->tls, b->tls);
    CHECK_STR(a->key, b->key);
    CHECK_STR(a->cert, b->cert);
    CHECK_STR(a->bundle, b->bundle);
    CHECK_INT(a->keepalive_s, b->keepalive_s);
    CHECK_INT(a->auth_timeout_s, b->auth_timeout_s);
    CHECK(a->cluster_enabled == b->cluster_enabled);
    CHECK_STR(a->trust, b->trust);
    CHECK_STR(a->peer.host, b->peer.host);
    CHECK_INT(a->peer.port, b->peer.port);
    CHECK_INT(a->client_port, b->client_port);
    CHECK_INT(a->client_tls_port, b->client_tls_port);
    CHECK_INT(a->client_tls, b->client_tls);
    CHECK(a->sasl_plain == b->sasl_plain);
    CHECK_INT(a->client_max_sessions, b->client_max_sessions);
    CHECK_INT(a->client_rate, b->client_rate);
    CHECK(a->client_version == b->client_version);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, NODE_STATE_MAX_BYTES + 1);
    *len = 0;
    if (f != NULL) {
        *len = fread(buf, 1, NODE_STATE_MAX_BYTES, f);
        fclose(f);
    }
    return buf;
}

static void spit(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        if (write(fd, text, len) != (ssize_t)len)
            perror("write");
        close(fd);
    }
}

static void test_round_trip(void)
{
    struct node_state a, b, def;
    char err[512];
    struct stat st;
    char path[512];

    mkdir_tmp();
    sample(&a);
    CHECK_INT(node_state_save(dir, &a, NULL, err, sizeof err), 0);
    CHECK_INT(node_state_load(dir, &b, err, sizeof err), 0);
    check_same(&a, &b);
    snprintf(path, sizeof path, "%s/" NODE_STATE_FILE, dir);
    REQUIRE(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);

    /* Defaults round-trip too (no optional lines). */
    node_state_defaults(&def);
    CHECK(def.node_id != 0);
    CHECK_INT(node_state_save(dir, &def, NULL, err, sizeof err), 0);
    CHECK_INT(node_state_load(dir, &b, err, sizeof err), 0);
    check_same(&def, &b);
    CHECK(b.node_id != a.node_id);
    rm_tmp();
}

static void test_missing(void)
{
    struct node_state s;
    char err[512];

    mkdir_tmp();
    CHECK_INT(node_state_load(dir, &s, err, sizeof err), XE_NOTFOUND);
    CHECK(strstr(err, NODE_STATE_FILE) != NULL);
    rm_tmp();
}

/* A crash after the temp file is written but before the rename: the temp
 * file is left; load keeps the old state and removes the temp file. */
static void test_crash_before_rename(void)
{
    struct node_state a, b, got;
    char err[512], tmp[512], text[NODE_STATE_MAX_BYTES];
    int n;

    mkdir_tmp();
    sample(&a);
    REQUIRE(node_state_save(dir, &a, NULL, err, sizeof err) == 0);
    b = a;
    b.xmpp_enabled = false;
    b.n_listen = 1;
    n = node_state_format(&b, text, sizeof text);
    REQUIRE(n > 0);
    snprintf(tmp, sizeof tmp, "%s/" NODE_STATE_FILE ".tmp", dir);
    spit(tmp, text, (size_t)n / 2); /* and half-written */
    CHECK_INT(node_state_load(dir, &got, err, sizeof err), 0);
    check_same(&a, &got);
    CHECK(access(tmp, F_OK) != 0);
    rm_tmp();
}

static int fail_rename(const char *from, const char *to)
{
    errno = EIO;
    return -1;
}

static int fail_fsync(int fd)
{
    errno = EIO;
    return -1;
}

static ssize_t short_write(int fd, const void *buf, size_t len)
{
    if (len > 10)
        len = 10;
    ssize_t n = write(fd, buf, len);
    errno = ENOSPC;
    return n > 0 && len == 10 ? -1 : n;
}

/* Each step of node_state_save failing leaves the old file and no temp file. */
static void test_failed_steps_keep_old(void)
{
    struct node_state_sys sys[3];
    struct node_state a, b, got;
    char err[512], tmp[512];

    mkdir_tmp();
    sample(&a);
    REQUIRE(node_state_save(dir, &a, NULL, err, sizeof err) == 0);
    b = a;
    b.tls = NODE_STATE_TLS_OFF;
    for (int i = 0; i < 3; i++)
        sys[i] = state_sys_posix;
    sys[0].rename = fail_rename;
    sys[1].fsync = fail_fsync;
    sys[2].write = short_write;
    snprintf(tmp, sizeof tmp, "%s/" NODE_STATE_FILE ".tmp", dir);
    for (int i = 0; i < 3; i++) {
        err[0] = '\0';
        CHECK_INT(node_state_save(dir, &b, &sys[i], err, sizeof err), XE_IO);
        CHECK(err[0] != '\0');
        CHECK(access(tmp, F_OK) != 0);
        CHECK_INT(node_state_load(dir, &got, err, sizeof err), 0);
        check_same(&a, &got);
    }
    rm_tmp();
}

static void expect_corrupt(const char *text, size_t len, const char *needle)
{
    char path[512], err[1024];
    struct node_state s;

    snprintf(path, sizeof path, "%s/" NODE_STATE_FILE, dir);
    spit(path, text, len);
    CHECK_INT(node_state_load(dir, &s, err, sizeof err), XE_CORRUPT);
    if (strstr(err, needle) == NULL || strstr(err, path) == NULL ||
        strstr(err, "restore the file from a backup") == NULL)
        TL_FAIL_("message lacks %s / path / the way out: %s", needle, err);
}

static void test_truncated_and_damaged(void)
{
    struct node_state a;
    char err[512], path[512], text[NODE_STATE_MAX_BYTES];
    size_t len;
    char *orig;

    mkdir_tmp();
    sample(&a);
    REQUIRE(node_state_save(dir, &a, NULL, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/" NODE_STATE_FILE, dir);
    orig = slurp(path, &len);
    REQUIRE(len > 100);

    /* Every truncation is detected. */
    for (size_t cut = 0; cut < len; cut++) {
        expect_corrupt(orig, cut, cut == 0 ? "empty" : "truncated");
    }
    /* A flipped byte anywhere before the checksum line. */
    memcpy(text, orig, len);
    text[40] ^= 0x01;
    expect_corrupt(text, len, "checksum mismatch");
    /* A hand edit. */
    memcpy(text, orig, len);
    char *p = strstr(text, "xmpp-enabled yes");
    REQUIRE(p != NULL);
    memcpy(p, "xmpp-enabled no ", 16);
    expect_corrupt(text, len, "checksum mismatch");
    /* Garbage. */
    expect_corrupt("hello\n", 6, "truncated");
    /* A valid checksum over a bad line still fails, naming the line. */
    {
        struct node_state v;
        int n;
        node_state_defaults(&v);
        n = node_state_format(&v, text, sizeof text);
        REQUIRE(n > 0);
        p = strstr(text, "version 1");
        REQUIRE(p != NULL);
        p[8] = '7';
        /* recompute the checksum so only the version is wrong */
        char *sum = strstr(text, "checksum ");
        unsigned char h[16];
        crypto_generichash(h, sizeof h, (unsigned char *)text, (size_t)(sum - text), NULL,
                           0);
        sodium_bin2hex(sum + 9, 33, h, sizeof h);
        sum[41] = '\n';
        expect_corrupt(text, (size_t)n, "version 7");
    }
    free(orig);
    rm_tmp();
}

static void test_permissions(void)
{
    struct node_state a, b;
    char err[512], path[512];

    mkdir_tmp();
    sample(&a);
    REQUIRE(node_state_save(dir, &a, NULL, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/" NODE_STATE_FILE, dir);
    REQUIRE(chmod(path, 0644) == 0);
    CHECK_INT(node_state_load(dir, &b, err, sizeof err), XE_PERM);
    CHECK(strstr(err, "chmod 600") != NULL);
    /* Saving again puts the mode right. */
    REQUIRE(node_state_save(dir, &a, NULL, err, sizeof err) == 0);
    CHECK_INT(node_state_load(dir, &b, err, sizeof err), 0);
    /* A FIFO in the file's place is refused at once, not waited on. */
    REQUIRE(unlink(path) == 0);
    REQUIRE(mkfifo(path, 0600) == 0);
    CHECK_INT(node_state_load(dir, &b, err, sizeof err), XE_CORRUPT);
    CHECK(strstr(err, "not a regular file") != NULL);
    rm_tmp();
}

static void test_bad_values_refused(void)
{
    struct node_state a;
    char err[512];

    mkdir_tmp();
    sample(&a);
    snprintf(a.key, sizeof a.key, "evil\nxmpp-enabled yes");
    CHECK_INT(node_state_save(dir, &a, NULL, err, sizeof err), XE_INVAL);
    CHECK(access(dir, F_OK) == 0);
    rm_tmp();
}

/* Client settings: defaults, port 0 (off), and files from
 * before them (no client lines) read with the defaults. */
static void test_client_settings(void)
{
    struct node_state a, b;
    char text[NODE_STATE_MAX_BYTES], why[256];
    const char *old = "version 1\nnode-id 0123456789abcdef\nxmpp-enabled no\n";
    int n;

    node_state_defaults(&a);
    CHECK_INT(a.client_port, 5222);
    CHECK_INT(a.client_tls, NODE_STATE_TLS_REQUIRED);
    CHECK(!a.sasl_plain);
    CHECK_INT(a.client_max_sessions, 10);
    CHECK_INT(a.client_rate, 65536);
    CHECK(!a.client_version);
    a.client_port = 0;
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK(strstr(text,
                 "client-port 0\nclient-tls-port 0\nclient-tls required\nsasl-plain "
                 "no\n") != NULL);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), 0);
    check_same(&a, &b);
    /* An old file: a checksum over text without client lines. */
    {
        unsigned char h[16];
        char hex[33], file[512];
        crypto_generichash(h, sizeof h, (const unsigned char *)old, strlen(old), NULL, 0);
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        snprintf(file, sizeof file, "%schecksum %s\n", old, hex);
        CHECK_INT(node_state_parse(file, strlen(file), &b, why, sizeof why), 0);
        CHECK_INT(b.client_port, 5222);
        CHECK_INT(b.client_tls_port, 0);
        CHECK_INT(b.client_tls, NODE_STATE_TLS_REQUIRED);
        CHECK(!b.sasl_plain);
        CHECK_INT(b.client_max_sessions, 10);
        CHECK_INT(b.client_rate, 65536);
        CHECK(!b.client_version);
    }
    /* 0: no session limit, no shaping; a rate below the minimum is
     * refused */
    a.client_tls = NODE_STATE_TLS_REQUIRED;
    a.client_max_sessions = 0;
    a.client_rate = 0;
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK(strstr(text, "client-max-sessions 0\nclient-rate 0\nclient-version no\n") !=
          NULL);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), 0);
    check_same(&a, &b);
    a.client_rate = 100;
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), XE_CORRUPT);
    a.client_rate = 0;
    /* client-tls off is not a mode for clients. */
    a.client_tls = NODE_STATE_TLS_OFF;
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), XE_CORRUPT);
    CHECK(strstr(why, "client-tls") != NULL);
}

/* The WebSocket Origin allow-list and trusted proxies:
 * repeatable lines, kept in order; a malformed entry makes the file
 * corrupt (never silently dropped); node_state_ws_origin_ok's rules. */
static void test_ws_lists(void)
{
    struct node_state a, b;
    char text[NODE_STATE_MAX_BYTES], why[256];
    int n;

    node_state_defaults(&a);
    snprintf(a.ws_origins[0], NODE_STATE_MAX_WS_ORIGIN, "https://app.example.com");
    snprintf(a.ws_origins[1], NODE_STATE_MAX_WS_ORIGIN, "http://localhost:8080");
    a.n_ws_origins = 2;
    snprintf(a.ws_proxies[0], NODE_STATE_MAX_WS_PROXY, "10.0.0.0/8");
    snprintf(a.ws_proxies[1], NODE_STATE_MAX_WS_PROXY, "2001:db8::1");
    a.n_ws_proxies = 2;
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK(strstr(text, "ws-origin https://app.example.com\nws-origin "
                       "http://localhost:8080\nws-proxy 10.0.0.0/8\nws-proxy "
                       "2001:db8::1\n") != NULL);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), 0);
    REQUIRE(b.n_ws_origins == 2 && b.n_ws_proxies == 2);
    CHECK_STR(b.ws_origins[1], "http://localhost:8080");
    CHECK_STR(b.ws_proxies[0], "10.0.0.0/8");
    snprintf(a.ws_proxies[1], NODE_STATE_MAX_WS_PROXY, "10.0.0.0/40");
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), XE_CORRUPT);
    CHECK(strstr(why, "ws-proxy") != NULL);

    CHECK(node_state_ws_origin_ok("https://app.example.com"));
    CHECK(node_state_ws_origin_ok("http://[::1]:8080"));
    CHECK(node_state_ws_origin_ok("moz-extension://abc"));
    CHECK(!node_state_ws_origin_ok("app.example.com"));
    CHECK(!node_state_ws_origin_ok("https://app.example.com/"));
    CHECK(!node_state_ws_origin_ok("https://App.example.com"));
    CHECK(!node_state_ws_origin_ok("https://"));
    CHECK(!node_state_ws_origin_ok("://host"));
    CHECK(!node_state_ws_origin_ok("https://a b"));
    CHECK(!node_state_ws_origin_ok("https://user@host"));
}

/* The drain is written only when on, so that a file of an undrained node
 * still reads in a binary that predates the key (a rolling upgrade). */
static void test_draining(void)
{
    struct node_state a, b;
    char text[NODE_STATE_MAX_BYTES], why[256];
    int n;

    node_state_defaults(&a);
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK(strstr(text, "draining") == NULL);
    a.draining = true;
    n = node_state_format(&a, text, sizeof text);
    REQUIRE(n > 0);
    CHECK(strstr(text, "\ndraining yes\n") != NULL);
    CHECK_INT(node_state_parse(text, (size_t)n, &b, why, sizeof why), 0);
    CHECK(b.draining);
}

TL_MAIN(T(test_round_trip), T(test_client_settings), T(test_ws_lists), T(test_draining),
        T(test_missing), T(test_crash_before_rename), T(test_failed_steps_keep_old),
        T(test_truncated_and_damaged), T(test_permissions), T(test_bad_values_refused))
