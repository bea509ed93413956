/* test_pki: xmppd/io/pki.c against material made by certs/ and by itself,
 * checked with the openssl command line (`openssl req -verify`).  Everything
 * lives in a temporary directory removed at the end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "iofix.h"
#include "pki.h"
#include "testlib.h"

static char dir[] = "/tmp/xmppd-test-pki-XXXXXX";
static char why[256];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static const char *p(const char *name)
{
    return iofix_path(dir, name);
}

static void teardown(void)
{
    iofix_rmdir(dir);
}

/* The CA and two nodes, made once by the certs/ scripts; removed at exit. */
static void setup(void)
{
    static int done;
    if (done++)
        return;
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    const char *certs = XMPPD_SOURCE_DIR "/certs";
    if (sh("%s/mkca %s 'Test CA' >/dev/null", certs, dir) != 0 ||
        sh("%s/mknode %s node1 --domain example.com --ip 127.0.0.1 --dns n1.example.com "
           ">/dev/null",
           certs, dir) != 0 ||
        sh("%s/mknode %s node2 --domain example.com --rsa >/dev/null", certs, dir) != 0 ||
        sh("%s/mkbundle %s node1 >/dev/null", certs, dir) != 0 ||
        sh("mkdir %s/other && %s/mkca %s/other 'Other CA' >/dev/null", dir, certs, dir) !=
            0) {
        fprintf(stderr, "certs/ scripts failed\n");
        teardown();
        exit(1);
    }
    atexit(teardown);
}

static void test_inspect_cert(void)
{
    setup();
    struct pki_info i;
    CHECK_INT(pki_inspect(p("node1.crt"), &i, why, sizeof why), 0);
    CHECK_INT(i.kind, PKI_KIND_CERT);
    CHECK_STR(i.subject, "CN=node1");
    CHECK_STR(i.issuer, "CN=Test CA");
    CHECK_STR(i.sans, "DNS:example.com, DNS:node1, DNS:n1.example.com, IP:127.0.0.1");
    CHECK_STR(i.key_type, "EC P-256");
    CHECK(!i.is_ca);
    CHECK_INT(i.ncerts, 1);
    CHECK(i.not_after > time(NULL) + 800 * 86400L);
    CHECK(i.not_before <= time(NULL));

    CHECK_INT(pki_inspect(p("ca.crt"), &i, why, sizeof why), 0);
    CHECK(i.is_ca);
    CHECK_INT(pki_inspect(p("node2.crt"), &i, why, sizeof why), 0);
    CHECK_STR(i.key_type, "RSA 2048");

    CHECK_INT(pki_inspect(p("node1-chain.pem"), &i, why, sizeof why), 0);
    CHECK_INT(i.kind, PKI_KIND_BUNDLE);
    CHECK_INT(i.ncerts, 2);
    CHECK_STR(i.subject, "CN=node1");

    json_t *j = pki_info_json(&i);
    REQUIRE(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "kind")), "bundle");
    CHECK_INT(json_array_size(json_object_get(j, "sans")), 4);
    CHECK(strchr(json_string_value(json_object_get(j, "not_after")), 'T') != NULL);
    json_decref(j);
}

static void test_inspect_key_and_errors(void)
{
    setup();
    struct pki_info i;
    CHECK_INT(pki_inspect(p("node1.key"), &i, why, sizeof why), 0);
    CHECK_INT(i.kind, PKI_KIND_KEY);
    CHECK_STR(i.key_type, "EC P-256");
    CHECK(!i.encrypted);

    CHECK_INT(sh("openssl pkey -in %s -aes256 -passout pass:secret -out %s 2>/dev/null",
                 p("node1.key"), p("enc.key")),
              0);
    CHECK_INT(pki_inspect(p("enc.key"), &i, why, sizeof why), 0);
    CHECK_INT(i.kind, PKI_KIND_KEY);
    CHECK(i.encrypted);

    CHECK_INT(pki_inspect(p("nope.crt"), &i, why, sizeof why), XE_NOTFOUND);
    CHECK(strstr(why, "nope.crt") != NULL);
    FILE *f = fopen(p("junk.txt"), "w");
    fputs("hello\n", f);
    fclose(f);
    CHECK_INT(pki_inspect(p("junk.txt"), &i, why, sizeof why), XE_CORRUPT);
    CHECK(strstr(why, "no PEM") != NULL);

    /* A FIFO is refused at once: opening it for reading must not wait for
     * a writer (the daemon's loop thread runs pki.inspect). */
    REQUIRE(mkfifo(p("fifo.crt"), 0600) == 0);
    CHECK_INT(pki_inspect(p("fifo.crt"), &i, why, sizeof why), XE_CORRUPT);
    CHECK(strstr(why, "not a regular file") != NULL);
    CHECK_INT(pki_key_matches(p("fifo.crt"), p("node1.crt"), why, sizeof why),
              XE_CORRUPT);
    unlink(p("fifo.crt"));
}

static void test_csr(void)
{
    setup();
    const char *sans[] = {"node3.example.com", "10.0.0.3", "DNS:example.com", "IP:::1"};
    CHECK_INT(pki_csr(p("node3"), PKI_KEY_EC_P256, "node3", sans, 4, why, sizeof why), 0);
    struct stat st;
    REQUIRE(stat(p("node3.key"), &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    CHECK_INT(sh("openssl req -verify -noout -in %s 2>/dev/null", p("node3.csr")), 0);
    struct pki_info i;
    CHECK_INT(pki_inspect(p("node3.csr"), &i, why, sizeof why), 0);
    CHECK_INT(i.kind, PKI_KIND_CSR);
    CHECK_STR(i.subject, "CN=node3");
    CHECK_STR(i.sans, "DNS:node3.example.com, IP:10.0.0.3, DNS:example.com, IP:::1");
    /* The CSR's key is the key file's key. */
    CHECK_INT(
        sh("test \"$(openssl req -in %s -noout -pubkey)\" = \"$(openssl pkey -in %s "
           "-pubout)\"",
           p("node3.csr"), p("node3.key")),
        0);

    /* Never overwrites. */
    CHECK_INT(pki_csr(p("node3"), PKI_KEY_EC_P256, NULL, NULL, 0, why, sizeof why),
              XE_EXISTS);
    CHECK(strstr(why, "already exists") != NULL);

    /* RSA, CN from the base name, default SAN from the CN. */
    CHECK_INT(
        pki_csr(p("web.example.com"), PKI_KEY_RSA_2048, NULL, NULL, 0, why, sizeof why),
        0);
    CHECK_INT(
        sh("openssl req -verify -noout -in %s 2>/dev/null", p("web.example.com.csr")), 0);
    CHECK_INT(pki_inspect(p("web.example.com.csr"), &i, why, sizeof why), 0);
    CHECK_STR(i.subject, "CN=web.example.com");
    CHECK_STR(i.sans, "DNS:web.example.com");
    CHECK_STR(i.key_type, "RSA 2048");

    /* A signed CSR yields a certificate our checks accept. */
    CHECK_INT(sh("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -CAserial %s "
                 "-days 30 -copy_extensions copy -out %s 2>/dev/null",
                 p("node3.csr"), p("ca.crt"), p("ca.key"), p("ca.srl"), p("node3.crt")),
              0);
    CHECK_INT(pki_check_certs(p("node3.key"), p("node3.crt"), p("ca-bundle.pem"), 0, why,
                              sizeof why),
              0);

    /* Bad input leaves no file behind. */
    const char *bad[] = {"bad name"};
    CHECK_INT(pki_csr(p("bad"), PKI_KEY_EC_P256, "x", bad, 1, why, sizeof why), XE_INVAL);
    CHECK(strstr(why, "bad name") != NULL);
    const char *bad_ip[] = {"IP:10.0.0.300"};
    CHECK_INT(pki_csr(p("bad"), PKI_KEY_EC_P256, "x", bad_ip, 1, why, sizeof why),
              XE_INVAL);
    const char *smuggle[] = {"a.example.com,email:x@y"};
    CHECK_INT(pki_csr(p("bad"), PKI_KEY_EC_P256, "x", smuggle, 1, why, sizeof why),
              XE_INVAL);
    CHECK(access(p("bad.key"), F_OK) != 0);
    CHECK(access(p("bad.csr"), F_OK) != 0);
    CHECK_INT(pki_csr(p("nodir/x"), PKI_KEY_EC_P256, "x", NULL, 0, why, sizeof why),
              XE_IO);
}

static void test_verify(void)
{
    setup();
    CHECK_INT(pki_verify(p("node1.crt"), p("ca-bundle.pem"), 0, why, sizeof why), 0);
    CHECK_INT(pki_verify(p("node1-chain.pem"), p("ca.crt"), 0, why, sizeof why), 0);
    CHECK_INT(pki_verify(p("node1.crt"), p("other/ca.crt"), 0, why, sizeof why), XE_AUTH);
    CHECK(strstr(why, "does not verify") != NULL);
    /* Far in the future the certificate has expired. */
    time_t later = time(NULL) + 5000 * 86400L;
    CHECK_INT(pki_verify(p("node1.crt"), p("ca.crt"), later, why, sizeof why), XE_AUTH);
    CHECK(strstr(why, "expired") != NULL);
    CHECK_INT(pki_verify(p("node1.crt"), p("junk.txt"), 0, why, sizeof why), XE_CORRUPT);
    CHECK_INT(pki_verify(p("missing.crt"), p("ca.crt"), 0, why, sizeof why), XE_NOTFOUND);
}

static void test_key_match_and_validity(void)
{
    setup();
    CHECK_INT(pki_key_matches(p("node1.key"), p("node1.crt"), why, sizeof why), 0);
    CHECK_INT(pki_key_matches(p("node2.key"), p("node1.crt"), why, sizeof why), XE_AUTH);
    CHECK(strstr(why, "does not belong") != NULL);
    CHECK_INT(pki_key_matches(p("enc.key"), p("node1.crt"), why, sizeof why), XE_CORRUPT);
    CHECK(strstr(why, "passphrase") != NULL);
    CHECK_INT(pki_key_matches(p("node1.crt"), p("node1.crt"), why, sizeof why),
              XE_CORRUPT);

    CHECK_INT(pki_check_validity(p("node1.crt"), 0, why, sizeof why), 0);
    time_t later = time(NULL) + 5000 * 86400L;
    CHECK_INT(pki_check_validity(p("node1.crt"), later, why, sizeof why), XE_STATE);
    CHECK(strstr(why, "expired on") != NULL);
    CHECK_INT(pki_check_validity(p("node1.crt"), 1000, why, sizeof why), XE_STATE);
    CHECK(strstr(why, "not valid before") != NULL);

    CHECK_INT(pki_check_certs(p("node1.key"), p("node1.crt"), p("ca-bundle.pem"), 0, why,
                              sizeof why),
              0);
    CHECK_INT(pki_check_certs(p("node1.key"), p("node1.crt"), NULL, 0, why, sizeof why),
              0);
    CHECK_INT(pki_check_certs(p("node2.key"), p("node1.crt"), NULL, 0, why, sizeof why),
              XE_AUTH);
    CHECK_INT(pki_check_certs(p("node1.key"), p("node1.crt"), p("other/ca.crt"), 0, why,
                              sizeof why),
              XE_AUTH);
}

/* A private key readable by group or others is refused by every check that
 * uses it (xmpp certs, xmpp enable and the TLS contexts share the path),
 * with the mode and the command that fixes it; describing it still works. */
static void test_key_mode(void)
{
    setup();
    char want[1200];
    struct pki_info i;
    char key[512];

    snprintf(key, sizeof key, "%s", p("node1.key"));
    CHECK_INT(chmod(key, 0644), 0);
    snprintf(want, sizeof want,
             "key file %s is readable by group or others (mode 0644): chmod 600 %s", key,
             key);
    CHECK_INT(
        pki_check_certs(key, p("node1.crt"), p("ca-bundle.pem"), 0, why, sizeof why),
        XE_PERM);
    CHECK_STR(why, want);
    CHECK_INT(pki_key_matches(key, p("node1.crt"), why, sizeof why), XE_PERM);
    CHECK_INT(pki_inspect(key, &i, why, sizeof why), 0);
    CHECK_INT(chmod(key, 0640), 0);
    CHECK_INT(pki_check_certs(key, p("node1.crt"), NULL, 0, why, sizeof why), XE_PERM);
    CHECK(strstr(why, "(mode 0640)") != NULL);
    CHECK_INT(chmod(key, 0604), 0);
    CHECK_INT(pki_check_certs(key, p("node1.crt"), NULL, 0, why, sizeof why), XE_PERM);
    /* Owner-only modes are fine (0400 too). */
    CHECK_INT(chmod(key, 0400), 0);
    CHECK_INT(pki_check_certs(key, p("node1.crt"), NULL, 0, why, sizeof why), 0);
    CHECK_INT(chmod(key, 0600), 0);
    CHECK_INT(
        pki_check_certs(key, p("node1.crt"), p("ca-bundle.pem"), 0, why, sizeof why), 0);
}

static void test_list(void)
{
    setup();
    struct pki_info *v;
    size_t n;
    CHECK_INT(pki_list(dir, &v, &n, why, sizeof why), 0);
    /* junk.txt, ca.srl and the other/ directory are skipped. */
    const char *want[] = {"ca-bundle.pem",
                          "ca.crt",
                          "ca.key",
                          "enc.key",
                          "node1-chain.pem",
                          "node1.crt",
                          "node1.key",
                          "node2.crt",
                          "node2.key",
                          "node3.crt",
                          "node3.csr",
                          "node3.key",
                          "web.example.com.csr",
                          "web.example.com.key"};
    CHECK_INT(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n && i < sizeof want / sizeof want[0]; i++)
        CHECK_STR(v[i].file, want[i]);
    free(v);
    CHECK_INT(pki_list(p("no-such-dir"), &v, &n, why, sizeof why), XE_NOTFOUND);
    CHECK(v == NULL && n == 0);
}

/* Cases run in this order and build on each other's files. */
TL_MAIN(T(test_inspect_cert), T(test_inspect_key_and_errors), T(test_csr), T(test_verify),
        T(test_key_match_and_validity), T(test_key_mode), T(test_list))
