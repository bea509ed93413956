/* test_addr.c: the one rule for addresses and names (addr.c), with the
 * cases on which the old copies (plink.c, conf.c, io/cmds.c,
 * io/cmds_export.c, mmp-cli/cmds.c, io/pki.c) disagreed. */
#include "testlib.h"

#include "addr.h"
#include "err.h"

/* ok parses s and checks host, port and kind. */
static void ok(const char *s, enum addr_hosts hosts, uint16_t dflt, const char *host,
               unsigned port, enum addr_kind kind)
{
    struct addr a;

    if (addr_parse(s, hosts, dflt, &a) != 0) {
        TL_FAIL_("refused \"%s\"", s);
        return;
    }
    CHECK_STR(a.host, host);
    CHECK_INT(a.port, port);
    CHECK_INT(a.kind, kind);
}

static void bad(const char *s, enum addr_hosts hosts, uint16_t dflt)
{
    struct addr a;

    if (addr_parse(s, hosts, dflt, &a) != XE_INVAL)
        TL_FAIL_("accepted \"%s\" (hosts %d, default %u)", s, (int)hosts, dflt);
}

static void test_forms(void)
{
    ok("10.0.0.1", ADDR_HOSTS_IP, 5224, "10.0.0.1", 5224, ADDR_KIND_IPV4);
    ok("10.0.0.1:7000", ADDR_HOSTS_IP, 5224, "10.0.0.1", 7000, ADDR_KIND_IPV4);
    ok("[::1]", ADDR_HOSTS_IP, 5223, "::1", 5223, ADDR_KIND_IPV6);
    ok("[::1]:5", ADDR_HOSTS_IP, 5224, "::1", 5, ADDR_KIND_IPV6);
    ok("::1", ADDR_HOSTS_IP, 5224, "::1", 5224, ADDR_KIND_IPV6);
    ok("fe80::1:2", ADDR_HOSTS_DNS, 5224, "fe80::1:2", 5224, ADDR_KIND_IPV6);
    ok("Node1.example:5224", ADDR_HOSTS_DNS, 0, "Node1.example", 5224, ADDR_KIND_NAME);
    ok("eth0:5223", ADDR_HOSTS_IFACE, 5223, "eth0", 5223, ADDR_KIND_NAME);
    ok("br_lan.10", ADDR_HOSTS_IFACE, 5223, "br_lan.10", 5223, ADDR_KIND_NAME);
    ok("1.2.3.4:65535", ADDR_HOSTS_IP, 0, "1.2.3.4", 65535, ADDR_KIND_IPV4);
}

/* Where the copies disagreed, the rule that won. */
static void test_disagreements(void)
{
    /* plink.c read the port with strtol: a sign or a blank got through. */
    bad("10.0.0.1:+7", ADDR_HOSTS_DNS, 5224);
    bad("10.0.0.1: 7", ADDR_HOSTS_DNS, 5224);
    bad("10.0.0.1:-1", ADDR_HOSTS_DNS, 5224);
    bad("10.0.0.1:007000", ADDR_HOSTS_IP, 5224); /* six digits */
    /* plink.c took anything in brackets as a host; mmp-cli took IPv4. */
    bad("[node1]:5224", ADDR_HOSTS_DNS, 5224);
    bad("[10.0.0.1]:5224", ADDR_HOSTS_IP, 5224);
    /* plink.c took any text as a host name; mmp-cli's join wanted a DNS
     * name: the daemon now refuses what the shell refused. */
    bad("no_such host", ADDR_HOSTS_DNS, 5224);
    bad("a..b", ADDR_HOSTS_DNS, 5224);
    /* cmds_export.c split at the last colon: "::1:9105" was ::1 port 9105;
     * with two or more colons and no brackets it is all address. */
    ok("::1:9105", ADDR_HOSTS_IP, 9999, "::1:9105", 9999, ADDR_KIND_IPV6);
    bad("::1:9105", ADDR_HOSTS_IP, 0); /* and then it has no port */
    /* conf.c wanted a port; the listen command had a default. */
    bad("10.0.0.1", ADDR_HOSTS_IP, 0);
    /* Interface names only where the caller allows them. */
    bad("eth0", ADDR_HOSTS_IP, 5223);
    bad("a-very-long-iface-name", ADDR_HOSTS_IFACE, 5223);
}

static void test_refused(void)
{
    bad("", ADDR_HOSTS_DNS, 5224);
    bad(":5224", ADDR_HOSTS_DNS, 5224);
    bad("a:0", ADDR_HOSTS_DNS, 5224);
    bad("a:65536", ADDR_HOSTS_DNS, 5224);
    bad("a:", ADDR_HOSTS_DNS, 5224);
    bad("[::1", ADDR_HOSTS_IP, 5224);
    bad("[::1]x", ADDR_HOSTS_IP, 5224);
    bad("[]:5", ADDR_HOSTS_IP, 5224);
    bad("::g", ADDR_HOSTS_DNS, 5224);
    bad("10.0.0.1:x", ADDR_HOSTS_IP, 5224);
}

static void test_long_host(void)
{
    char s[300];

    memset(s, 'a', sizeof s);
    s[ADDR_HOST_MAX] = '\0';
    for (int i = 50; i < ADDR_HOST_MAX - 1; i += 51)
        s[i] = '.';
    ok(s, ADDR_HOSTS_DNS, 1, s, 1, ADDR_KIND_NAME);
    s[ADDR_HOST_MAX] = 'a';
    s[ADDR_HOST_MAX + 1] = '\0';
    bad(s, ADDR_HOSTS_DNS, 1);
}

static void test_format(void)
{
    struct addr a;
    char out[ADDR_TEXT_MAX + 1];

    REQUIRE(addr_parse("[0::1]:7", ADDR_HOSTS_IP, 0, &a) == 0);
    CHECK_INT(addr_format(&a, out, sizeof out), 0);
    CHECK_STR(out, "[0::1]:7");
    REQUIRE(addr_parse("h.example", ADDR_HOSTS_DNS, 5224, &a) == 0);
    CHECK_INT(addr_format(&a, out, sizeof out), 0);
    CHECK_STR(out, "h.example:5224");
    CHECK_INT(addr_format(&a, out, 5), XE_INVAL);
    CHECK_STR(out, "");
}

/* addr_host_of: the host of an address the node made itself.  The old
 * copies in cmds_export.c cut a bare IPv6 address at its last colon
 * ("::1" gave "::"). */
static void test_host_of(void)
{
    char h[16];

    CHECK_INT(addr_host_of("10.0.0.1:5", h, sizeof h), 0);
    CHECK_STR(h, "10.0.0.1");
    CHECK_INT(addr_host_of("[::1]:5", h, sizeof h), 0);
    CHECK_STR(h, "::1");
    CHECK_INT(addr_host_of("::1", h, sizeof h), 0);
    CHECK_STR(h, "::1");
    CHECK_INT(addr_host_of("test peer", h, sizeof h), 0); /* not checked */
    CHECK_STR(h, "test peer");
    CHECK_INT(addr_host_of("[::1", h, sizeof h), XE_INVAL);
    CHECK_STR(h, "");
    CHECK_INT(addr_host_of(":5", h, sizeof h), XE_INVAL);
    CHECK_INT(addr_host_of("a-very-long-host-name:5", h, sizeof h), XE_INVAL);
}

static void test_same(void)
{
    CHECK(addr_same("[::1]:5224", "[0::1]", ADDR_HOSTS_DNS, 5224));
    CHECK(addr_same("Node1:5224", "node1", ADDR_HOSTS_DNS, 5224));
    CHECK(!addr_same("127.0.0.1:5224", "127.0.0.1:5225", ADDR_HOSTS_DNS, 5224));
    CHECK(!addr_same("127.0.0.1", "localhost", ADDR_HOSTS_DNS, 5224));
    CHECK(!addr_same("::ffff:127.0.0.1", "127.0.0.1", ADDR_HOSTS_DNS, 5224));
    CHECK(!addr_same("bad host", "bad host", ADDR_HOSTS_DNS, 5224));
    CHECK(addr_host_same("10.0.0.1", "10.0.0.1"));
    CHECK(addr_is_ip("::") && addr_is_ip("1.2.3.4") && !addr_is_ip("[::1]"));
}

static void test_node_ids(void)
{
    char h[ADDR_NODE_ID_HEX + 1];

    addr_node_id_hex(0xabcULL, h);
    CHECK_STR(h, "0000000000000abc");
    addr_node_id_hex(UINT64_MAX, h);
    CHECK_STR(h, "ffffffffffffffff");
    CHECK(addr_node_id_prefix_valid("ABCD"));
    CHECK(addr_node_id_prefix_valid("0123456789abcdef"));
    CHECK(!addr_node_id_prefix_valid("0123456789abcdef0"));
    CHECK(!addr_node_id_prefix_valid(""));
    CHECK(!addr_node_id_prefix_valid("12g4"));
}

/* conf.c used isalnum(), which follows the locale: byte 0xe9 is a letter
 * in a Latin-1 locale.  By byte value it never is. */
static void test_callbridge(void)
{
    char long_name[ADDR_CALLBRIDGE_MAX + 2];

    CHECK(addr_callbridge_valid("cb-1", 4));
    CHECK(addr_callbridge_valid("cb-1 trailing", 4)); /* only len bytes count */
    CHECK(!addr_callbridge_valid("caf\xe9", 4));
    CHECK(!addr_callbridge_valid("cb_1", 4));
    CHECK(!addr_callbridge_valid("cb.1", 4));
    CHECK(!addr_callbridge_valid("", 0));
    memset(long_name, 'a', sizeof long_name);
    CHECK(addr_callbridge_valid(long_name, ADDR_CALLBRIDGE_MAX));
    CHECK(!addr_callbridge_valid(long_name, ADDR_CALLBRIDGE_MAX + 1));
}

/* pki.c refused 0x7f and conf.c did not; mmp-cli refused everything but
 * [A-Za-z0-9._-]. The daemon's rule won (it is what opens the file, and a
 * node.state written under it must still load). */
static void test_pki_names(void)
{
    char n[ADDR_PKI_NAME_MAX + 2];

    CHECK(addr_pki_name_valid("node.key", 8));
    CHECK(addr_pki_name_valid("node key (2).pem", 16));
    CHECK(addr_pki_name_valid("cl\xc3\xa9.pem", 8));
    CHECK(!addr_pki_name_valid("a\x7f", 2));
    CHECK(!addr_pki_name_valid("a\x1f", 2));
    CHECK(!addr_pki_name_valid(".hidden", 7));
    CHECK(!addr_pki_name_valid("..", 2));
    CHECK(!addr_pki_name_valid("a/b", 3));
    CHECK(!addr_pki_name_valid("", 0));
    memset(n, 'k', sizeof n);
    CHECK(addr_pki_name_valid(n, ADDR_PKI_NAME_MAX));
    CHECK(!addr_pki_name_valid(n, ADDR_PKI_NAME_MAX + 1));
}

static void test_iface(void)
{
    CHECK(addr_iface_valid("eth0"));
    CHECK(addr_iface_valid("enp0s31f6"));
    CHECK(!addr_iface_valid(""));
    CHECK(!addr_iface_valid("eth 0"));
    CHECK(!addr_iface_valid("0123456789abcdef"));
}

TL_MAIN(T(test_forms), T(test_disagreements), T(test_refused), T(test_long_host),
        T(test_format), T(test_host_of), T(test_same), T(test_node_ids),
        T(test_callbridge), T(test_pki_names), T(test_iface))
