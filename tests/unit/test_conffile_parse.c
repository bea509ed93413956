/* test_conffile_parse.c: unit tests for the node configuration parser
 * (conffile_parse.c). */
#include <locale.h>

#include <sodium.h>

#include "testlib.h"
#include "conffile_parse.h"
#include "err.h"

/* parse runs conf_parse on a C string. */
static int parse(const char *text, struct conf *c, struct conf_error *e)
{
    return conf_parse(text, strlen(text), c, e);
}

/* fails_at checks that text is refused at line with a message containing
 * what. */
static void fails_at(const char *text, unsigned line, const char *what)
{
    struct conf c;
    struct conf_error e;
    int rc = parse(text, &c, &e);

    CHECK_INT(rc, XE_CORRUPT);
    CHECK_INT(e.line, line);
    if (strstr(e.msg, what) == NULL)
        TL_FAIL_("message '%s' lacks '%s' for input:\n%s", e.msg, what, text);
    CHECK(c.domain == NULL && c.n_cb == 0 && c.n_listen == 0);
}

static void test_full_file(void)
{
    const char *text = "# node one\n"
                       "\n"
                       "domain Example.COM\n"
                       "component-listen 127.0.0.1:5223\n"
                       "component-listen\t[::1]:6223\n"
                       "keepalive 30\r\n"
                       "  auth-timeout   5  \n"
                       "callbridge cb1 s3cr#t!\n"
                       "callbridge cb-2 x\n";
    struct conf c;
    struct conf_error e;
    char addr[80];

    REQUIRE(parse(text, &c, &e) == 0);
    CHECK_STR(c.domain, "example.com");
    REQUIRE(c.n_listen == 2);
    CHECK_STR(c.listen[0].host, "127.0.0.1");
    CHECK_INT(c.listen[0].port, 5223);
    CHECK_STR(c.listen[1].host, "::1");
    CHECK_INT(c.listen[1].port, 6223);
    conf_format_listen(&c.listen[1], addr, sizeof addr);
    CHECK_STR(addr, "[::1]:6223");
    CHECK_INT(c.keepalive_s, 30);
    CHECK_INT(c.auth_timeout_s, 5);
    REQUIRE(c.n_cb == 2);
    CHECK_STR(c.cb[0].name, "cb1");
    CHECK_INT(c.cb[0].secret_len, 7);
    CHECK(memcmp(c.cb[0].secret, "s3cr#t!", 7) == 0);
    CHECK(conf_find_callbridge(&c, "cb-2") == &c.cb[1]);
    CHECK(conf_find_callbridge(&c, "cb3") == NULL);
    conf_free(&c);
    CHECK(c.domain == NULL && c.cb == NULL);
}

static void test_defaults(void)
{
    struct conf c;
    struct conf_error e;

    REQUIRE(parse("domain example.com", &c, &e) == 0);
    REQUIRE(c.n_listen == 1);
    CHECK_STR(c.listen[0].host, "0.0.0.0");
    CHECK_INT(c.listen[0].port, 5223);
    CHECK_INT(c.keepalive_s, 60);
    CHECK_INT(c.auth_timeout_s, 10);
    CHECK_INT(c.max_conns, 4096);
    CHECK_INT(c.max_conns_per_addr, 128);
    CHECK_INT(c.preauth_stanza_bytes, 4096);
    CHECK_INT(c.n_cb, 0);
    conf_free(&c);
}

/* The connection limits of the listeners. */
static void test_connection_limits(void)
{
    struct conf c;
    struct conf_error e;

    REQUIRE(parse("domain example.com\nmax-connections 100\n"
                  "max-connections-per-address 8\npreauth-stanza-bytes 1024\n",
                  &c, &e) == 0);
    CHECK_INT(c.max_conns, 100);
    CHECK_INT(c.max_conns_per_addr, 8);
    CHECK_INT(c.preauth_stanza_bytes, 1024);
    conf_free(&c);
    fails_at("domain a.b\nmax-connections 0\n", 2, "max-connections needs");
    fails_at("domain a.b\nmax-connections 1000001\n", 2, "max-connections needs");
    fails_at("domain a.b\nmax-connections-per-address x\n", 2,
             "max-connections-per-address needs");
    fails_at("domain a.b\npreauth-stanza-bytes 255\n", 2, "preauth-stanza-bytes needs");
    fails_at("domain a.b\npreauth-stanza-bytes 262145\n", 2,
             "preauth-stanza-bytes needs");
}

static void test_malformed(void)
{
    fails_at("domain a.b\nbogus 1\n", 2, "unknown directive 'bogus'");
    /* A secret that slipped onto a line of its own (a wrapped callbridge
     * line) is printable ASCII like any directive: it must not be quoted. */
    {
        struct conf c;
        struct conf_error e;

        fails_at("domain a.b\ncallbridge cb1\nS3cret-value\n", 2, "callbridge needs");
        CHECK_INT(parse("domain a.b\nS3cret-value\n", &c, &e), XE_CORRUPT);
        CHECK_INT(e.line, 2);
        CHECK(strstr(e.msg, "unknown directive") != NULL);
        CHECK(strstr(e.msg, "S3cret") == NULL);
    }
    fails_at("domain a.b\ncallbridge cb1\n", 2, "callbridge needs exactly two fields");
    fails_at("domain a.b\ncallbridge cb1 x\n\ncallbridge cb1 y\n", 4,
             "duplicate callbridge name 'cb1'");
    fails_at("domain a.b\ncomponent-listen localhost:5223\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen 127.0.0.1\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen 127.0.0.1:0\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen 127.0.0.1:65536\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen 300.0.0.1:5223\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen [::1:5223\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen 127.0.0.1:1\ncomponent-listen 127.0.0.1:1\n",
             3, "duplicate component-listen");
    fails_at("# only a comment\ncallbridge cb1 x\n", 2, "no domain");
    fails_at("", 1, "no domain");
    fails_at("domain a.b\ndomain c.d\n", 2, "duplicate domain");
    fails_at("domain a..b\n", 1, "bad domain");
    fails_at("domain -a.b\n", 1, "bad domain");
    fails_at("domain\n", 1, "domain needs exactly one field");
    fails_at("domain a.b\nkeepalive 0\n", 2, "keepalive needs");
    fails_at("domain a.b\nkeepalive 1x\n", 2, "keepalive needs");
    fails_at("domain a.b\nauth-timeout 86401\n", 2, "auth-timeout needs");
    fails_at("domain a.b\ncallbridge cb_1 x\n", 2, "bad callbridge name");
    fails_at("domain a.b\ncallbridge cb1 x y\n", 2, "callbridge needs");
    fails_at("domain a.b\ncallbridge a b c d e\n", 2, "too many fields");
    fails_at("domain a.b\n\xff\xfe\n", 2, "UTF-8");
    fails_at("domain a.b\ncallbridge cb1 caf\xc3\xa9\n", 2, "bad secret");
    fails_at("domain a.b\ncallbridge cb1 a\x01z\n", 2, "control character");
}

/* The rules shared with the daemon and the shell (addr.c), where conf.c's
 * own copies differed: isalnum() followed the locale, and 0x7f passed as a
 * file-name character.  Under a Latin-1 locale (when one is installed)
 * 0xc3 would be a letter to isalnum(). */
static void test_shared_rules(void)
{
    const char *latin1[] = {"en_US.ISO-8859-1", "de_DE.ISO-8859-1", "C.UTF-8", NULL};

    for (size_t i = 0; latin1[i] != NULL; i++)
        if (setlocale(LC_CTYPE, latin1[i]) != NULL)
            break;
    fails_at("domain a.b\ncallbridge caf\xc3\xa9 x\n", 2, "bad callbridge name");
    setlocale(LC_CTYPE, "C");
    fails_at("domain a.b\ncerts k\x7f c\n", 2, "bad file name");
    fails_at("domain a.b\ncerts .k c\n", 2, "bad file name");
    fails_at("domain a.b\ncomponent-listen 127.0.0.1:+7\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen [10.0.0.1]:7\n", 2, "bad address");
    fails_at("domain a.b\ncomponent-listen ::1:5223\n", 2, "bad address");
}

static void test_secret_never_in_message(void)
{
    struct conf c;
    struct conf_error e;
    const char *text = "domain a.b\ncallbridge cb1 hunter2 extra\n";

    CHECK_INT(parse(text, &c, &e), XE_CORRUPT);
    CHECK(strstr(e.msg, "hunter2") == NULL);
    text = "domain a.b\ncallbridge cb1 hunter2\ncallbridge cb1 hunter3\n";
    CHECK_INT(parse(text, &c, &e), XE_CORRUPT);
    CHECK(strstr(e.msg, "hunter") == NULL);
    /* A secret with a non-ASCII byte alone on a line is not echoed. */
    text = "domain a.b\nhunt\xc3\xa9r2\n";
    CHECK_INT(parse(text, &c, &e), XE_CORRUPT);
    CHECK(strstr(e.msg, "hunt") == NULL);
}

static void test_limits(void)
{
    char line[1200 + 64];
    struct conf c;
    struct conf_error e;
    char secret[1100];

    memset(secret, 'k', 1024);
    secret[1024] = '\0';
    snprintf(line, sizeof line, "domain a.b\ncallbridge %s %s\n",
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc", secret);
    REQUIRE(parse(line, &c, &e) == 0);
    CHECK_INT(c.cb[0].secret_len, 1024);
    conf_free(&c);
    secret[1024] = 'k';
    secret[1025] = '\0';
    snprintf(line, sizeof line, "domain a.b\ncallbridge cb1 %s\n", secret);
    fails_at(line, 2, "bad secret");
    fails_at("domain a.b\ncallbridge "
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd x\n",
             2, "bad callbridge name");
}

static void test_data_without_nul(void)
{
    const char text[] = "domain a.bXXXX";
    struct conf c;
    struct conf_error e;

    REQUIRE(conf_parse(text, 10, &c, &e) == 0);
    CHECK_STR(c.domain, "a.b");
    conf_free(&c);
}

static void test_init(void)
{
    REQUIRE(sodium_init() >= 0);
}

TL_MAIN(T(test_init), T(test_full_file), T(test_defaults), T(test_malformed),
        T(test_shared_rules), T(test_secret_never_in_message), T(test_limits),
        T(test_data_without_nul), T(test_connection_limits))
