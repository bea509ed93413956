/* test_precis.c: PRECIS UsernameCaseMapped and OpaqueString (RFC 8265) and
 * IDNA2008 domainparts (RFC 7622 §3.2), and cl_user_valid, which accepts
 * exactly the prepared usernames. */
#include <stdbool.h>

#include "testlib.h"

#include "repl.h"
#include "err.h"
#include "precis.h"

typedef int (*prep_fn)(const char *, size_t, char *, size_t);

/* prep runs f on s; on success checks idempotence (f(f(s)) == f(s)) and
 * returns the result (static); on refusal checks out is "" and returns NULL. */
static const char *prep(prep_fn f, const char *s)
{
    static char out[2048];
    char again[2048];
    int rc;

    memset(out, 'x', sizeof out);
    rc = f(s, strlen(s), out, sizeof out);
    if (rc != 0) {
        CHECK_INT(rc, XE_INVAL);
        CHECK_STR(out, "");
        return NULL;
    }
    CHECK_INT(f(out, strlen(out), again, sizeof again), 0);
    CHECK_STR(again, out);
    return out;
}

#define USER(in, want) CHECK_STR(prep(precis_username, in), want)
#define USER_BAD(in)                                                                     \
    do {                                                                                 \
        const char *p_ = prep(precis_username, in);                                      \
        if (p_ != NULL)                                                                  \
            TL_FAIL_("accepted username %s as %s", #in, p_);                             \
    } while (0)
#define OPAQUE(in, want) CHECK_STR(prep(precis_opaque, in), want)
#define OPAQUE_BAD(in)                                                                   \
    do {                                                                                 \
        const char *p_ = prep(precis_opaque, in);                                        \
        if (p_ != NULL)                                                                  \
            TL_FAIL_("accepted opaque string %s as %s", #in, p_);                        \
    } while (0)

static void test_username_mapping(void)
{
    USER("juliet", "juliet");
    USER("Juliet", "juliet"); /* case mapping, RFC 8265 §3.3.1 */
    USER("JULIET", "juliet");
    /* Width mapping: FULLWIDTH LATIN CAPITAL LETTER J, U, L, ... */
    USER("\xef\xbc\xaa\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa5\xef\xbc\xb4",
         "juliet");
    USER("\xef\xbd\x8a"
         "uliet",
         "juliet"); /* fullwidth small j */
    /* NFC: e + COMBINING ACUTE ACCENT becomes U+00E9. */
    USER("rene\xcc\x81", "ren\xc3\xa9");
    USER("REN\xc3\x89", "ren\xc3\xa9");
    /* Greek and Cyrillic (RFC 8265 §3.5 has "π", "Σ" -> "σ", "ς"). */
    USER("\xcf\x80", "\xcf\x80");
    USER("\xce\xa3", "\xcf\x83");
    USER("\xcf\x82", "\xcf\x82");
    USER("\xce\xa3\xcf\x89\xce\xba\xcf\x81\xce\xac\xcf\x84\xce\xb7\xcf\x82",
         "\xcf\x83\xcf\x89\xce\xba\xcf\x81\xce\xac\xcf\x84\xce\xb7\xcf\x82"); /* Σωκράτης
                                                                               */
    USER("\xd0\x9f\xd1\x91\xd1\x82\xd1\x80",
         "\xd0\xbf\xd1\x91\xd1\x82\xd1\x80"); /* Пётр */
    USER("fu\xc3\x9f"
         "ball",
         "fu\xc3\x9f"
         "ball");                       /* ß is PVALID (exception) */
    USER("j.doe-1_x+y", "j.doe-1_x+y"); /* ASCII7 */
    /* Contextual rules (RFC 5892 A.3): MIDDLE DOT only between two 'l'. */
    USER("l\xc2\xb7l", "l\xc2\xb7l");
    USER_BAD("a\xc2\xb7"
             "b");
    /* Right to left (RFC 5893): Hebrew alone, or ending in digits. */
    USER("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d");
    USER("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d"
         "1",
         "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d"
         "1");
    USER_BAD("abc\xd7\xa9\xd7\x9c"); /* LTR then RTL: Bidi rule 5 */
    USER_BAD("1\xd7\xa9\xd7\x9c");   /* rule 1 */
}

static void test_username_refused(void)
{
    const char *forbidden = "\"&'/:<>@";
    char s[8];

    USER_BAD("");
    USER_BAD("a b");  /* space is not IdentifierClass */
    USER_BAD("a\tb"); /* control */
    USER_BAD("a\x01");
    USER_BAD("a\x7f");
    USER_BAD("a\xc2\x85");        /* C1 control */
    USER_BAD("\xe2\x99\xa5");     /* U+2665 BLACK HEART SUIT: symbol */
    USER_BAD("\xe2\x99\x9a");     /* U+265A, RFC 8265 §3.5 */
    USER_BAD("\xf0\x9f\x98\x80"); /* emoji */
    USER_BAD("a\xc2\xa0"
             "b"); /* NO-BREAK SPACE */
    USER_BAD("a\xe2\x80\x8b"
             "b"); /* ZERO WIDTH SPACE: default ignorable */
    USER_BAD("a\xe2\x80\x8d"
             "b");                /* ZWJ without a virama */
    USER_BAD("\xe2\x85\xa0");     /* U+2160 ROMAN NUMERAL ONE: HasCompat */
    USER_BAD("\xef\xbf\xbf");     /* noncharacter */
    USER_BAD("\xf3\xb0\x80\x80"); /* private use */
    USER_BAD("\xff");             /* not UTF-8 */
    USER_BAD("\xc0\xae");         /* overlong */
    USER_BAD("\xed\xa0\x80");     /* surrogate */
    USER_BAD("a\xef\xbc\xa0"
             "b"); /* FULLWIDTH '@' maps to '@' */
    /* RFC 7622 §3.3.1, though IdentifierClass allows them. */
    for (const char *f = forbidden; *f; f++) {
        snprintf(s, sizeof s, "a%cb", *f);
        if (prep(precis_username, s) != NULL)
            TL_FAIL_("accepted %s", s);
    }
    {
        char out[8];

        CHECK_INT(precis_username("a\0b", 3, out, sizeof out), XE_INVAL);
    }
}

/* Every ASCII character, through the ASCII shortcut, against what the
 * classes say (the ICU path gives the same for "\xc3\xa9" + c). */
static void test_ascii(void)
{
    for (int c = 1; c < 0x80; c++) {
        char in[8], icu[8], want[8], out[16];
        bool user_ok = c > 0x20 && c < 0x7f && strchr("\"&'/:<>@", c) == NULL;
        bool opaque_ok = c >= 0x20 && c < 0x7f;
        int lc = c >= 'A' && c <= 'Z' ? c + 32 : c;

        snprintf(in, sizeof in, "a%cb", c);
        snprintf(want, sizeof want, "a%cb", lc);
        CHECK_INT(precis_username(in, 3, out, sizeof out), user_ok ? 0 : XE_INVAL);
        if (user_ok)
            CHECK_STR(out, want);
        CHECK_INT(precis_opaque(in, 3, out, sizeof out), opaque_ok ? 0 : XE_INVAL);
        if (opaque_ok)
            CHECK_STR(out, in);
        snprintf(icu, sizeof icu, "\xc3\xa9%c", c);
        snprintf(want, sizeof want, "\xc3\xa9%c", lc);
        CHECK_INT(precis_username(icu, 3, out, sizeof out), user_ok ? 0 : XE_INVAL);
        if (user_ok)
            CHECK_STR(out, want);
        CHECK_INT(precis_opaque(icu, 3, out, sizeof out), opaque_ok ? 0 : XE_INVAL);
    }
}

static void test_limits(void)
{
    char out[6];

    CHECK_INT(precis_username("juliet", 6, out, 7 - 1), XE_LIMIT); /* no room for NUL */
    CHECK_STR(out, "");
    CHECK_INT(precis_username("julie", 5, out, sizeof out), 0);
    CHECK_STR(out, "julie");
    CHECK_INT(precis_opaque("secret", 6, out, sizeof out), XE_LIMIT);
    CHECK_INT(precis_domain("example.com", out, sizeof out), XE_LIMIT);
    {
        char *big = malloc(PRECIS_IN_MAX + 2), o[16];

        memset(big, 'a', PRECIS_IN_MAX + 1);
        big[PRECIS_IN_MAX + 1] = '\0';
        CHECK_INT(precis_username(big, PRECIS_IN_MAX + 1, o, sizeof o), XE_LIMIT);
        free(big);
    }
}

static void test_opaque(void)
{
    /* RFC 8265 §4.3 examples. */
    OPAQUE("correct horse battery staple", "correct horse battery staple");
    OPAQUE("Correct Horse Battery Staple",
           "Correct Horse Battery Staple");                         /* case kept */
    OPAQUE("\xcf\x80\xc3\x9f\xc3\xa5", "\xcf\x80\xc3\x9f\xc3\xa5"); /* πßå */
    OPAQUE("Jack of \xe2\x99\xa6s", "Jack of \xe2\x99\xa6s");       /* ♦ */
    OPAQUE("foo\xe1\x9a\x80"
           "bar",
           "foo bar"); /* OGHAM SPACE */
    OPAQUE_BAD("");
    OPAQUE_BAD("my cat is a \x09"
               "by");
    OPAQUE("a\xc2\xa0"
           "b",
           "a b");                          /* NO-BREAK SPACE */
    OPAQUE("e\xcc\x81", "\xc3\xa9");        /* NFC */
    OPAQUE("\xef\xbc\xaa", "\xef\xbc\xaa"); /* no width mapping */
    OPAQUE("\xe2\x85\xa0", "\xe2\x85\xa0"); /* HasCompat is free */
    OPAQUE("a@b/c:\"<>&'", "a@b/c:\"<>&'");
    OPAQUE_BAD("a\xe2\x80\x8b"); /* default ignorable */
    OPAQUE_BAD("a\x7f");
    OPAQUE_BAD("\xef\xbf\xbe"); /* noncharacter */
    OPAQUE_BAD("\xe2\x82");     /* truncated UTF-8 */
}

/* dom prepares a domain (static result) or returns NULL; checks that the
 * result is a fixed point and that jid_domain_valid agrees. */
static const char *dom(const char *in)
{
    static char out[1100];
    char again[1100];

    if (precis_domain(in, out, sizeof out) != 0) {
        CHECK_STR(out, "");
        return NULL;
    }
    CHECK_INT(precis_domain(out, again, sizeof again), 0);
    CHECK_STR(again, out);
    CHECK(cl_domain_valid(out));
    return out;
}

static void test_domain(void)
{
    char label[80], name[200];

    CHECK_STR(dom("example.com"), "example.com");
    CHECK_STR(dom("Example.COM."), "example.com");
    CHECK_STR(dom("[::1]"), "[::1]");
    CHECK_STR(dom("10.0.0.1"), "10.0.0.1");
    CHECK_STR(dom("b\xc3\xbc"
                  "cher.example"),
              "b\xc3\xbc"
              "cher.example");
    CHECK_STR(dom("B\xc3\x9c"
                  "CHER.example"),
              "b\xc3\xbc"
              "cher.example");
    CHECK_STR(dom("xn--bcher-kva.example"), "b\xc3\xbc"
                                            "cher.example");
    CHECK_STR(dom("XN--BCHER-KVA.example"), "b\xc3\xbc"
                                            "cher.example");
    /* пример.рф */
    CHECK_STR(dom("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84"),
              "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84");
    CHECK_STR(dom("\xe4\xbe\x8b\xe5\xad\x90\xe3\x80\x82\xe6\xb5\x8b\xe8\xaf\x95"),
              "\xe4\xbe\x8b\xe5\xad\x90.\xe6\xb5\x8b\xe8\xaf\x95"); /* 例子。测试 */
    CHECK_STR(dom("\xef\xbd\x85xample.com"), "example.com");        /* fullwidth e */
    CHECK(dom("") == NULL);
    CHECK(dom(".") == NULL);
    CHECK(dom("a..b") == NULL);
    CHECK(dom("xn--zz.example") == NULL);
    CHECK(dom("xn--.example") == NULL);
    CHECK(dom("a\xe2\x99\xa5.example") == NULL); /* symbol */
    CHECK(dom("-\xc3\xbc.example") == NULL);
    CHECK(dom("a_\xc3\xbc.example") == NULL);
    CHECK(dom("\xc3\xbc.a_b") == NULL);
    CHECK(dom("a b.example") == NULL);
    CHECK(dom("\xff.example") == NULL);
    CHECK(dom("exa:mple.com") == NULL);
    CHECK(precis_domain(NULL, name, sizeof name) == XE_INVAL);
    /* A U-label whose A-label is over 63 octets. */
    name[0] = '\0';
    for (int i = 0; i < 30; i++)
        strcat(name, "\xc3\xbc");
    CHECK(dom(name) != NULL);
    for (int i = 0; i < 35; i++)
        strcat(name, "\xc3\xbc");
    CHECK(dom(name) == NULL);
    memset(label, 'a', 64);
    label[64] = '\0';
    CHECK(dom(label) == NULL);
}

static void test_cl_user_valid(void)
{
    /* Exactly what precis_username gives back unchanged. */
    CHECK(cl_user_valid("juliet"));
    CHECK(cl_user_valid("ren\xc3\xa9"));
    CHECK(cl_user_valid(
        "\xcf\x83\xcf\x89\xce\xba\xcf\x81\xce\xac\xcf\x84\xce\xb7\xcf\x82"));
    CHECK(!cl_user_valid("Juliet"));
    CHECK(!cl_user_valid("rene\xcc\x81")); /* not NFC */
    CHECK(!cl_user_valid("\xef\xbd\x8a"
                         "uliet")); /* not width mapped */
    CHECK(!cl_user_valid("a b"));
    CHECK(!cl_user_valid("a@b"));
    CHECK(!cl_user_valid("\xe2\x99\xa5"));
    CHECK(!cl_user_valid(""));
    CHECK(!cl_user_valid(NULL));
}

TL_MAIN(T(test_username_mapping), T(test_username_refused), T(test_ascii), T(test_limits),
        T(test_opaque), T(test_domain), T(test_cl_user_valid))
