/* test_conffile.c: reading xmppd.conf from disk (xmppd/io/conffile.c): the
 * permission check and the error messages, with real files. */
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conffile.h"
#include "err.h"
#include "testlib.h"

static char dir[64];
static char path[128];

static void write_file(const char *text, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        TL_FAIL_("cannot write %s", path);
    if (fd >= 0)
        close(fd);
    chmod(path, mode);
}

static void test_setup(void)
{
    REQUIRE(sodium_init() >= 0);
    snprintf(dir, sizeof dir, "/tmp/xmppd-conffile-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/xmppd.conf", dir);
}

static void test_ok(void)
{
    struct conf c;
    char err[512] = "";

    write_file("domain example.com\ncallbridge cb1 s1\n", 0600);
    REQUIRE(conffile_load(path, &c, err, sizeof err) == 0);
    CHECK_STR(c.domain, "example.com");
    CHECK_INT(c.n_cb, 1);
    conf_free(&c);
    write_file("domain example.com\n", 0400);
    REQUIRE(conffile_load(path, &c, err, sizeof err) == 0);
    conf_free(&c);
}

static void test_too_open(void)
{
    static const mode_t modes[] = {0644, 0640, 0604, 0660, 0601};
    struct conf c;
    char err[512], want[300];

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file("domain example.com\ncallbridge cb1 topsecret\n", modes[i]);
        CHECK_INT(conffile_load(path, &c, err, sizeof err), XE_PERM);
        snprintf(want, sizeof want, "mode %04o", (unsigned)modes[i]);
        CHECK(strstr(err, want) != NULL);
        snprintf(want, sizeof want, "chmod 600 %s", path);
        CHECK(strstr(err, want) != NULL);
        CHECK(strncmp(err, path, strlen(path)) == 0);
        CHECK(strstr(err, "topsecret") == NULL);
        CHECK(c.domain == NULL);
    }
}

static void test_malformed(void)
{
    struct conf c;
    char err[512], want[300];

    write_file("domain example.com\n\ncallbridge cb1\n", 0600);
    CHECK_INT(conffile_load(path, &c, err, sizeof err), XE_CORRUPT);
    snprintf(want, sizeof want, "%s:3: callbridge needs", path);
    CHECK(strncmp(err, want, strlen(want)) == 0);
}

static void test_missing_and_not_regular(void)
{
    struct conf c;
    char err[512];

    unlink(path);
    CHECK_INT(conffile_load(path, &c, err, sizeof err), XE_IO);
    CHECK(strstr(err, "No such file") != NULL);
    CHECK_INT(conffile_load(dir, &c, err, sizeof err), XE_CORRUPT);
    CHECK(strstr(err, "not a regular file") != NULL);
    /* A FIFO is refused at once, not waited on (a reload runs on the loop). */
    REQUIRE(mkfifo(path, 0600) == 0);
    CHECK_INT(conffile_load(path, &c, err, sizeof err), XE_CORRUPT);
    CHECK(strstr(err, "not a regular file") != NULL);
    unlink(path);
}

static void test_cleanup(void)
{
    unlink(path);
    CHECK(rmdir(dir) == 0);
}

TL_MAIN(T(test_setup), T(test_ok), T(test_too_open), T(test_malformed),
        T(test_missing_and_not_regular), T(test_cleanup))
