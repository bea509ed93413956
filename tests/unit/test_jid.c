/* test_jid.c: JID parsing and preparation (RFC 7622), formatting, equality
 * and domain checks. */
#include <arpa/inet.h>
#include <stdbool.h>

#include "testlib.h"

#include "err.h"
#include "jid.h"

/* prep parses s and returns its canonical form (owned), or NULL when the
 * JID is invalid; checks that an invalid parse leaves the struct zeroed. */
static char *prep(const char *s)
{
    struct jid j;
    struct buf b = {0};
    int rv;

    memset(&j, 0xa5, sizeof j);
    rv = jid_parse(s, &j);
    if (rv != 0) {
        CHECK_INT(rv, XE_INVAL);
        CHECK(j.local == NULL && j.domain == NULL && j.resource == NULL);
        return NULL;
    }
    CHECK(j.domain != NULL);
    CHECK_INT(jid_format(&j, &b), 0);
    jid_clear(&j);
    return buf_steal(&b);
}

#define CHECK_PREP(in, want)                                                             \
    do {                                                                                 \
        char *p_ = prep(in);                                                             \
        CHECK_STR(p_, (want));                                                           \
        free(p_);                                                                        \
    } while (0)

#define CHECK_BAD(in)                                                                    \
    do {                                                                                 \
        char *p_ = prep(in);                                                             \
        if (p_ != NULL)                                                                  \
            TL_FAIL_("accepted invalid JID %s as %s", #in, p_);                          \
        free(p_);                                                                        \
    } while (0)

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_parts(void)
{
    struct jid j;

    REQUIRE(jid_parse("User@Example.COM/Res/with@and/", &j) == 0);
    CHECK_STR(j.local, "user");
    CHECK_STR(j.domain, "example.com");
    CHECK_STR(j.resource, "Res/with@and/"); /* first '/' starts the resource */
    jid_clear(&j);
    CHECK(j.local == NULL && j.domain == NULL && j.resource == NULL);
    REQUIRE(jid_parse("example.com", &j) == 0);
    CHECK(j.local == NULL && j.resource == NULL);
    CHECK_STR(j.domain, "example.com");
    jid_clear(&j);
    REQUIRE(jid_parse("cb1.example.com/r", &j) == 0);
    CHECK(j.local == NULL);
    CHECK_STR(j.resource, "r");
    jid_clear(&j);
    /* '@' after the first '/' belongs to the resource */
    REQUIRE(jid_parse("example.com/a@b", &j) == 0);
    CHECK(j.local == NULL);
    CHECK_STR(j.domain, "example.com");
    CHECK_STR(j.resource, "a@b");
    jid_clear(&j);
    jid_clear(&j); /* twice is fine */
}

static void test_domain_preparation(void)
{
    CHECK_PREP("EXAMPLE.com", "example.com");
    CHECK_PREP("example.com.", "example.com"); /* RFC 7622 §3.2 */
    CHECK_PREP("a@example.com./r", "a@example.com/r");
    CHECK_PREP("localhost", "localhost");
    CHECK_PREP("a-b.c-d.e", "a-b.c-d.e");
    CHECK_PREP("1a.example", "1a.example");
    /* RFC 7622 §3.2: IDNA2008, A-labels become U-labels. */
    CHECK_PREP("xn--bcher-kva.example", "bücher.example");
    CHECK_PREP("Bücher.Example", "bücher.example");
    CHECK_PREP("BÜCHER.example", "bücher.example"); /* UTS #46 mapping */
    CHECK_PREP("b\xef\xbd\x95"
               "cher.example",
               "bucher.example"); /* fullwidth u */
    CHECK_PREP("bücher\xe3\x80\x82"
               "example",
               "bücher.example"); /* U+3002 */
    CHECK_PREP("u@\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/r",
               "u@\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/r");
    CHECK_PREP("192.168.0.1", "192.168.0.1");
    CHECK_PREP("u@10.0.0.1/r", "u@10.0.0.1/r");
    CHECK_PREP("[::1]", "[::1]");
    CHECK_PREP("[2001:DB8::A]", "[2001:db8::a]");
    CHECK_PREP("u@[fe80::1]/r", "u@[fe80::1]/r");
    {
        char *l63 = repeat('a', 63), s[200];

        snprintf(s, sizeof s, "%s.example", l63);
        CHECK_PREP(s, s);
        free(l63);
    }
}

static void test_domain_invalid(void)
{
    char *l64 = repeat('a', 64), s[200];

    CHECK_BAD("");
    CHECK_BAD(".");
    CHECK_BAD("example.com..");
    CHECK_BAD(".example.com");
    CHECK_BAD("a..b");
    CHECK_BAD("user@");
    CHECK_BAD("user@/res");
    CHECK_BAD("/res");
    CHECK_BAD("-a.example");
    CHECK_BAD("a-.example");
    CHECK_BAD("a_b.example");
    CHECK_BAD("a b.example");
    CHECK_BAD("a@b@c");
    CHECK_BAD("exa:mple.com");
    CHECK_BAD("example.com:5222");
    CHECK_BAD("1.2.3.256");
    CHECK_BAD("1.2.3");
    CHECK_BAD("123");
    CHECK_BAD("[::1");
    CHECK_BAD("[]");
    CHECK_BAD("[1.2.3.4]");
    CHECK_BAD("[::g]");
    CHECK_BAD("ex\x01mple.com");
    CHECK_BAD("b\xc3\xbc\xc3.example"); /* truncated UTF-8 */
    CHECK_BAD("\xff.example");
    CHECK_BAD("b\xc2\x85.example");     /* U+0085, a C1 control */
    CHECK_BAD("xn--zz.example");        /* not Punycode of a valid label */
    CHECK_BAD("a\xe2\x99\xa5.example"); /* U+2665, not IDNA2008 */
    CHECK_BAD("b\xc3\xbc_cher.example");
    snprintf(s, sizeof s, "%s.example", l64);
    CHECK_BAD(s);
    free(l64);
}

static void test_localpart(void)
{
    const char *bad[] = {"a\"b@x",     "a&b@x",   "a'b@x",      "a:b@x",
                         "a<b@x",      "a>b@x",   "a b@x",      "@x",
                         "a\tb@x",     "a\x7f@x", "\xc0\xae@x", "\xed\xa0\x80@x",
                         "a\xc2\x9f@x"};

    CHECK_PREP("Alice@example.com", "alice@example.com");
    CHECK_PREP("ALICE.b-c_d+e@example.com", "alice.b-c_d+e@example.com");
    /* RFC 8265 §3.3: case and width mapped, NFC; symbols refused. */
    CHECK_PREP("Ünïcødé@example.com", "ünïcødé@example.com");
    CHECK_PREP("\xef\xbc\xaauliet@example.com", "juliet@example.com"); /* fullwidth J */
    CHECK_PREP("u\xcc\x88@x", "\xc3\xbc@x");                           /* NFC */
    CHECK_BAD("😀@example.com");
    CHECK_BAD("\xe2\x99\xa5@x"); /* U+2665 */
    CHECK_BAD("a\xef\xbc\xa0"
              "b@x"); /* fullwidth '@' maps to '@' */
    CHECK_BAD("a\xc2\xa0"
              "b@x"); /* no-break space */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = prep(bad[i]);

        if (p != NULL)
            TL_FAIL_("accepted localpart in %s", bad[i]);
        free(p);
    }
}

static void test_resourcepart(void)
{
    CHECK_PREP("a@b/Res Ource", "a@b/Res Ource"); /* case and spaces kept */
    CHECK_PREP("a@b/ç/é@:'\"<>&", "a@b/ç/é@:'\"<>&");
    /* RFC 8265 §4.2: OpaqueString, non-ASCII spaces to U+0020, NFC. */
    CHECK_PREP("a@b/x\xc2\xa0y", "a@b/x y");
    CHECK_PREP("a@b/e\xcc\x81", "a@b/\xc3\xa9");
    CHECK_PREP("a@b/\xe2\x99\xa5 😀", "a@b/\xe2\x99\xa5 😀"); /* symbols kept */
    CHECK_BAD("a@b/x\xe2\x80\x8by"); /* U+200B, default ignorable */
    CHECK_BAD("a@b/");
    CHECK_BAD("a@b/x\ny");
    CHECK_BAD("a@b/x\x7f");
    CHECK_BAD("a@b/\xe2\x82");         /* truncated */
    CHECK_BAD("a@b/\xf4\x90\x80\x80"); /* above U+10FFFF */
    CHECK_BAD("a@b/\xe0\x80\x80");     /* overlong */
}

static void test_lengths(void)
{
    char *p1023 = repeat('a', 1023), *p1024 = repeat('a', 1024);
    char *s = malloc(4000);

    /* localpart 1023 ok, 1024 not */
    snprintf(s, 4000, "%s@x", p1023);
    CHECK_PREP(s, s);
    snprintf(s, 4000, "%s@x", p1024);
    CHECK_BAD(s);
    /* resourcepart */
    snprintf(s, 4000, "x/%s", p1023);
    CHECK_PREP(s, s);
    snprintf(s, 4000, "x/%s", p1024);
    CHECK_BAD(s);
    /* domainpart: 1023 bytes of 63-byte labels; one more byte is too long */
    {
        struct buf d = {0};

        while (d.len + 64 <= 1023) {
            buf_append(&d, p1023, 63);
            buf_puts(&d, ".");
        }
        while (d.len < 1023)
            buf_puts(&d, "b");
        CHECK_INT(d.len, 1023);
        CHECK_PREP(d.data, d.data);
        CHECK(jid_domain_valid(d.data));
        /* the trailing dot does not count */
        buf_puts(&d, ".");
        {
            char *p = prep(d.data);

            CHECK(p != NULL && strlen(p) == 1023);
            free(p);
        }
        d.data[d.len - 1] = 'c';
        CHECK_BAD(d.data);
        CHECK(!jid_domain_valid(d.data));
        buf_free(&d);
    }
    free(p1023);
    free(p1024);
    free(s);
}

static void test_format_equal(void)
{
    struct jid a, b, c;
    struct buf out = {0};

    REQUIRE(jid_parse("A@B.C/R", &a) == 0);
    REQUIRE(jid_parse("a@b.c./R", &b) == 0);
    REQUIRE(jid_parse("a@b.c/r", &c) == 0);
    CHECK(jid_equal(&a, &b));
    CHECK(!jid_equal(&a, &c)); /* resources keep case */
    jid_clear(&c);
    REQUIRE(jid_parse("b.c/R", &c) == 0);
    CHECK(!jid_equal(&a, &c)); /* absent localpart differs */
    CHECK(!jid_equal(&c, &a));
    jid_clear(&c);
    REQUIRE(jid_parse("a@b.c", &c) == 0);
    CHECK(!jid_equal(&a, &c));
    buf_puts(&out, ">");
    CHECK_INT(jid_format(&a, &out), 0);
    CHECK_INT(jid_format(&c, &out), 0);
    CHECK_STR(out.data, ">a@b.c/Ra@b.c");
    buf_free(&out);
    jid_clear(&a);
    jid_clear(&b);
    jid_clear(&c);
}

static void test_domain_within(void)
{
    CHECK(jid_domain_within("cb1.x", "cb1.x"));
    CHECK(jid_domain_within("a.cb1.x", "cb1.x"));
    CHECK(jid_domain_within("b.a.cb1.x", "cb1.x"));
    CHECK(!jid_domain_within("xcb1.x", "cb1.x"));
    CHECK(!jid_domain_within("cb1.x", "a.cb1.x"));
    CHECK(!jid_domain_within(".cb1.x", "cb1.x"));
    CHECK(!jid_domain_within("cb1.xx", "cb1.x"));
    CHECK(!jid_domain_within("cb2.x", "cb1.x"));
    CHECK(!jid_domain_within("x", ""));
    CHECK(!jid_domain_within("", ""));
}

static void test_domain_valid(void)
{
    CHECK(jid_domain_valid("example.com"));
    CHECK(jid_domain_valid("cb1.example.com"));
    CHECK(jid_domain_valid("[::1]"));
    CHECK(jid_domain_valid("127.0.0.1"));
    CHECK(!jid_domain_valid("Example.com"));  /* not prepared */
    CHECK(!jid_domain_valid("example.com.")); /* not prepared */
    CHECK(!jid_domain_valid("[::A]"));
    CHECK(!jid_domain_valid(""));
    CHECK(!jid_domain_valid(NULL));
    CHECK(!jid_domain_valid("a@b"));
    CHECK(!jid_domain_valid("a/b"));
    CHECK(!jid_domain_valid("999.1.1.1"));
    CHECK(jid_domain_valid("bücher.example"));
    CHECK(!jid_domain_valid("Bücher.example"));
    CHECK(!jid_domain_valid("xn--bcher-kva.example")); /* prepared as a U-label */
    CHECK(!jid_domain_valid("b\xc3\xbc\xc3.example"));
}

/* ref_ascii_domain is the rule of RFC 7622 §3.2 for an ASCII name, written
 * out once more, slowly: lower-case it, drop one final dot, then LDH labels
 * of 1..63 bytes, all digits and dots only as an IPv4 literal.  Returns
 * the prepared form in out, or false; *ace tells that a label is an A-label
 * ("xn--"), which preparation turns into a U-label (IDNA, not judged
 * here). */
static bool ref_ascii_domain(const char *s, char *out, size_t cap, bool *ace)
{
    size_t n = strlen(s), start = 0;
    bool numeric = true;
    unsigned char addr[4];

    *ace = false;
    if (n + 1 > cap)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    if (n > 0 && out[n - 1] == '.')
        out[--n] = '\0';
    if (n == 0 || n > 1023)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && out[i] != '.') {
            char c = out[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
            numeric = numeric && c >= '0' && c <= '9';
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > 63 || out[start] == '-' || out[i - 1] == '-')
            return false;
        *ace = *ace || (len >= 4 && memcmp(out + start, "xn--", 4) == 0);
        start = i + 1;
    }
    return !numeric || inet_pton(AF_INET, out, addr) == 1;
}

/* Every ASCII name gets the same verdict and form from jid_parse (and
 * jid_domain_valid) as from the rule above: the one-pass check for an
 * already prepared name changes no result.  Names from a small alphabet
 * that hits every edge (case, dots, hyphens, digits, "xn--", long labels). */
static void test_domain_fast_path_same(void)
{
    static const char alpha[] = "aAxXnN-.09";
    unsigned long seed = 12345;
    char s[80], want[80];

    for (int k = 0; k < 200000; k++) {
        size_t n;
        char *got;

        seed = seed * 6364136223846793005ul + 1442695040888963407ul;
        n = (size_t)(seed >> 33) % 12;
        if (k % 50 == 0)
            n = 60 + (size_t)(seed >> 40) % 10; /* around the label limit */
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ul + 1442695040888963407ul;
            s[i] = alpha[(seed >> 33) % (sizeof alpha - 1)];
        }
        s[n] = '\0';
        if (k % 7 == 0 && n >= 4)
            memcpy(s + (seed >> 45) % (n - 3), "xn--", 4);
        if (k % 11 == 0 && n >= 7)
            memcpy(s, "1.2.3.4", 7);
        bool ace, ok = ref_ascii_domain(s, want, sizeof want, &ace);
        if (ace) {
            /* never prepared as it is: the U-label is */
            CHECK(!jid_domain_valid(s));
            continue;
        }
        got = prep(s);
        if (ok != (got != NULL) || (ok && strcmp(got, want) != 0)) {
            fprintf(stderr, "domain '%s': want %s, got %s\n", s, ok ? want : "invalid",
                    got ? got : "invalid");
            CHECK(false);
            free(got);
            return;
        }
        free(got);
        CHECK(jid_domain_valid(s) == (ok && strcmp(s, want) == 0));
    }
    /* 1023 bytes is the longest domainpart, 1024 too long */
    char big[1100];
    for (size_t i = 0; i < 1024; i++)
        big[i] = (i % 64 == 63) ? '.' : 'a';
    big[1023] = '\0';
    CHECK(big[1022] != '.' && jid_domain_valid(big));
    big[1023] = 'a';
    big[1024] = '\0';
    CHECK(!jid_domain_valid(big));
}

static void test_parse_null(void)
{
    struct jid j;

    CHECK_INT(jid_parse(NULL, &j), XE_INVAL);
    CHECK(j.domain == NULL);
}

static void test_dns_name(void)
{
    CHECK(jid_dns_name_valid("example.com", false));
    CHECK(jid_dns_name_valid("Node-1.Example.COM", false));
    CHECK(jid_dns_name_valid("localhost", false));
    CHECK(!jid_dns_name_valid("", false));
    CHECK(!jid_dns_name_valid("-a.example.com", false));
    CHECK(!jid_dns_name_valid("a-.example.com", false));
    CHECK(!jid_dns_name_valid("example.com-", false));
    CHECK(!jid_dns_name_valid("a..b", false));
    CHECK(!jid_dns_name_valid("a_b.com", false));
    CHECK(!jid_dns_name_valid("*.example.com", false));
    CHECK(jid_dns_name_valid("*.example.com", true));
    CHECK(!jid_dns_name_valid("*", true));
    CHECK(!jid_dns_name_valid("a.*.example.com", true));
    char label[70];
    memset(label, 'a', 63);
    label[63] = '\0';
    CHECK(jid_dns_name_valid(label, false));
    label[63] = 'a';
    label[64] = '\0';
    CHECK(!jid_dns_name_valid(label, false));
}

TL_MAIN(T(test_dns_name), T(test_parts), T(test_domain_preparation),
        T(test_domain_invalid), T(test_localpart), T(test_resourcepart), T(test_lengths),
        T(test_format_equal), T(test_domain_within), T(test_domain_valid),
        T(test_parse_null), T(test_domain_fast_path_same))
