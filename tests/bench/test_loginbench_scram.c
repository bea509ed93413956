/* test_loginbench_scram.c: the load tool's SCRAM client against the
 * exchange of RFC 7677 §3 (SCRAM-SHA-256) and RFC 5802 §5 (SCRAM-SHA-1):
 * the same nonce gives the same client-final message, the server
 * signature is accepted, a wrong one is not, and the keys are cached. */
#include <openssl/evp.h>

#include "loginbench.h"
#include "testlib.h"

/* b64 of text, into out (cap bytes). */
static void b64(const char *text, char *out, size_t cap)
{
    REQUIRE(4 * ((strlen(text) + 2) / 3) + 1 <= cap);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)strlen(text));
}

/* unb64 of in into out (NUL-terminated). */
static void unb64(const char *in, char *out)
{
    int n =
        EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));
    REQUIRE(n >= 0);
    while (n > 0 && out[n - 1] == '\0')
        n--;
    out[n] = '\0';
}

static void exchange(int sha256, const char *cnonce, const char *first,
                     const char *server_first, const char *client_final,
                     const char *server_final)
{
    struct lb_scram s;
    struct lb_scram_keys keys = {0};
    char out[512], text[512], in[512];

    REQUIRE(lb_scram_first(&s, sha256, "user", "pencil", &keys, cnonce, out,
                           sizeof out) == 0);
    unb64(out, text);
    CHECK_STR(text, first);
    b64(server_first, in, sizeof in);
    REQUIRE(lb_scram_final(&s, in, strlen(in), out, sizeof out) == 0);
    unb64(out, text);
    CHECK_STR(text, client_final);
    CHECK(keys.valid && keys.iter == 4096);
    b64(server_final, in, sizeof in);
    CHECK(lb_scram_verify(&s, in, strlen(in)) == 0);
    b64("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", in, sizeof in);
    CHECK(lb_scram_verify(&s, in, strlen(in)) != 0);
}

static void test_rfc7677_sha256(void)
{
    exchange(
        1, "rOprNGfwEbeRWgbNEkqO", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
        "i=4096",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

static void test_rfc5802_sha1(void)
{
    exchange(0, "fyko+d2lbbFgONRv9qkxdawL", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
             "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
             "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
             "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
             "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

/* A challenge whose nonce does not extend ours is refused. */
static void test_foreign_nonce(void)
{
    struct lb_scram s;
    struct lb_scram_keys keys = {0};
    char out[512], in[512];

    REQUIRE(lb_scram_first(&s, 1, "user", "pencil", &keys, "abc", out, sizeof out) == 0);
    b64("r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", in, sizeof in);
    CHECK(lb_scram_final(&s, in, strlen(in), out, sizeof out) != 0);
}

TL_MAIN(T(test_rfc7677_sha256), T(test_rfc5802_sha1), T(test_foreign_nonce))
