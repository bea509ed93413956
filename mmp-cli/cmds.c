/* cmds.c: the command table of mmp-cli: the MMP syntax of DESIGN.md mapped
 * to control requests (docs/control-protocol.md), with the arguments checked
 * here before anything is sent, help texts, and how each result prints. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "addr.h"
#include "cinvite.h"
#include "repl.h"
#include "cli.h"
#include "conffile_parse.h"
#include "jid.h"
#include "plink.h"
#include "precis.h"

#define WHY_LEN 256

struct cli_cmd {
    const char *words[5];   /* the command words, NULL-terminated */
    const char *usage;      /* the arguments, "" for none */
    const char *summary;    /* one line for `help` */
    const char *help;       /* more, for `help <command>`; may be NULL */
    const char *ctl;        /* the control command it sends */
    int min_args, max_args; /* max -1: any number */
    /* prepare checks argv and fills args; 0, or -1 with why filled.  NULL:
     * no arguments to send. */
    int (*prepare)(struct cli *cli, int argc, char **argv, json_t *args, char *why);
    /* print shows a successful result as text; NULL: key/value lines. */
    void (*print)(json_t *result);
};

/* ---- argument checks --------------------------------------------------- */

static int bad(char *why, const char *fmt, const char *arg)
{
    snprintf(why, WHY_LEN, fmt, arg);
    return -1;
}

/* The rules that the daemon applies come from xmppd/core/addr.c, so the
 * shell refuses exactly what the node would. */
static int need_file(const char *what, const char *s, json_t *args, const char *key,
                     char *why)
{
    if (!addr_pki_name_valid(s, strlen(s))) {
        snprintf(why, WHY_LEN,
                 "%s \"%.100s\" must be a file name in the node's pki directory (no "
                 "'/', no leading '.', no control characters)",
                 what, s);
        return -1;
    }
    json_object_set_new(args, key, json_string(s));
    return 0;
}

/* ---- prepare functions ------------------------------------------------- */

static int prep_domain(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    char prepared[1024];

    /* The daemon's own preparation (RFC 7622 §3.2: case, one trailing dot,
     * IDNA2008), so the shell refuses exactly what the node would. */
    if (precis_domain(argv[0], prepared, sizeof prepared) < 0)
        return bad(why,
                   "\"%.100s\" is not a domain name: labels of letters, digits and '-' "
                   "(or internationalized ones, IDNA2008), 1-63 characters each, joined "
                   "by '.'",
                   argv[0]);
    json_object_set_new(args, "domain", json_string(argv[0]));
    return 0;
}

/* listen_ok accepts addr, addr:port, [v6], [v6]:port, a bare IPv6 address,
 * iface and iface:port (as the daemon's xmpp.listen.set). */
static bool listen_ok(const char *s)
{
    struct addr a;

    return addr_parse(s, ADDR_HOSTS_IFACE, CONF_DEFAULT_PORT, &a) == 0;
}

static int prep_listen(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    json_t *a = json_array();
    for (int i = 0; i < argc; i++) {
        if (!listen_ok(argv[i])) {
            json_decref(a);
            return bad(why,
                       "\"%.100s\" is not an address or interface with an optional "
                       "port (addr[:port], [ipv6]:port, iface[:port]; port 1-65535)",
                       argv[i]);
        }
        json_array_append_new(a, json_string(argv[i]));
    }
    json_object_set_new(args, "addresses", a);
    return 0;
}

static int prep_tls(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    if (strcmp(argv[0], "off") != 0 && strcmp(argv[0], "optional") != 0 &&
        strcmp(argv[0], "required") != 0)
        return bad(why, "TLS mode \"%.100s\" must be off, optional or required", argv[0]);
    json_object_set_new(args, "mode", json_string(argv[0]));
    return 0;
}

/* xmpp tls client required|optional */
static int prep_client_tls(struct cli *cli, int argc, char **argv, json_t *args,
                           char *why)
{
    if (strcmp(argv[0], "optional") != 0 && strcmp(argv[0], "required") != 0)
        return bad(why, "TLS for clients \"%.100s\" must be required or optional",
                   argv[0]);
    json_object_set_new(args, "tls", json_string(argv[0]));
    return 0;
}

/* xmpp metrics listen <addr>:<port> | xmpp metrics off */
static int prep_metrics(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    const char *a = argc > 0 ? argv[0] : "off";
    struct conf_listen l;

    if (strcmp(a, "off") != 0 && conf_listen_parse(a, strlen(a), &l) < 0)
        return bad(why,
                   "\"%.100s\" must be an address and a port, e.g. 127.0.0.1:9105 or "
                   "[::1]:9105",
                   a);
    json_object_set_new(args, "listen", json_string(a));
    return 0;
}

/* xmpp sasl plain on|off */
static int prep_sasl_plain(struct cli *cli, int argc, char **argv, json_t *args,
                           char *why)
{
    if (strcmp(argv[0], "on") != 0 && strcmp(argv[0], "off") != 0)
        return bad(why, "\"%.100s\" must be on or off", argv[0]);
    json_object_set_new(args, "sasl_plain", json_boolean(strcmp(argv[0], "on") == 0));
    return 0;
}

/* number_or_off puts a whole number (or 0 for "off", when off_ok) under
 * key; the daemon checks the range. */
static int number_or_off(const char *arg, json_t *args, const char *key, bool off_ok,
                         char *why)
{
    char *end;
    unsigned long v;

    if (off_ok && strcmp(arg, "off") == 0) {
        json_object_set_new(args, key, json_integer(0));
        return 0;
    }
    v = arg[0] >= '0' && arg[0] <= '9' ? strtoul(arg, &end, 10) : ULONG_MAX;
    if (v == ULONG_MAX || *end != '\0' || v > 4000000000UL)
        return bad(why,
                   off_ok ? "\"%.100s\" is not a number or off"
                          : "\"%.100s\" is not a number",
                   arg);
    json_object_set_new(args, key, json_integer((json_int_t)v));
    return 0;
}

/* xmpp client max-sessions <n> (0: no limit) */
static int prep_client_max_sessions(struct cli *cli, int argc, char **argv, json_t *args,
                                    char *why)
{
    return number_or_off(argv[0], args, "max_sessions", false, why);
}

/* xmpp client rate <bytes/s>|off */
static int prep_client_rate(struct cli *cli, int argc, char **argv, json_t *args,
                            char *why)
{
    return number_or_off(argv[0], args, "rate", true, why);
}

/* xmpp client version on|off */
static int prep_client_version(struct cli *cli, int argc, char **argv, json_t *args,
                               char *why)
{
    if (strcmp(argv[0], "on") != 0 && strcmp(argv[0], "off") != 0)
        return bad(why, "\"%.100s\" must be on or off", argv[0]);
    json_object_set_new(args, "version", json_boolean(strcmp(argv[0], "on") == 0));
    return 0;
}

/* port_or_off puts a port (1-65535, or 0 for "off") under key. */
static int port_or_off(const char *arg, json_t *args, const char *key, char *why)
{
    char *end;
    unsigned long v;

    if (strcmp(arg, "off") == 0) {
        json_object_set_new(args, key, json_integer(0));
        return 0;
    }
    v = arg[0] >= '0' && arg[0] <= '9' ? strtoul(arg, &end, 10) : 0;
    if (v == 0 || v > 65535 || *end != '\0')
        return bad(why, "\"%.100s\" is not a port (1-65535) or off", arg);
    json_object_set_new(args, key, json_integer((json_int_t)v));
    return 0;
}

/* xmpp client port <port>|off */
static int prep_client_port(struct cli *cli, int argc, char **argv, json_t *args,
                            char *why)
{
    return port_or_off(argv[0], args, "port", why);
}

/* xmpp client tls-port <port>|off */
static int prep_client_tls_port(struct cli *cli, int argc, char **argv, json_t *args,
                                char *why)
{
    return port_or_off(argv[0], args, "tls_port", why);
}

/* xmpp websocket port <port>|off */
static int prep_ws_port(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return port_or_off(argv[0], args, "port", why);
}

/* xmpp websocket tls-port <port>|off */
static int prep_wss_port(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return port_or_off(argv[0], args, "tls_port", why);
}

/* xmpp websocket path <path> (checked by the daemon) */
static int prep_ws_path(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    json_object_set_new(args, "path", json_string(argv[0]));
    return 0;
}

static int prep_certs(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    if (need_file("key", argv[0], args, "key", why) < 0 ||
        need_file("certificate", argv[1], args, "cert", why) < 0 ||
        (argc > 2 && need_file("bundle", argv[2], args, "bundle", why) < 0))
        return -1;
    return 0;
}

static int prep_reset(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    bool yes = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0)
            yes = true;
        else if (strcmp(argv[i], "--force") == 0)
            json_object_set_new(args, "force", json_true());
        else
            return bad(why,
                       "unknown option \"%.100s\"; the options are --yes and --force",
                       argv[i]);
    }
    if (!yes) {
        if (!isatty(STDIN_FILENO))
            return bad(why,
                       "%sxmpp reset asks for confirmation; add --yes when running it "
                       "from a script",
                       "");
        if (!cli_confirm("This wipes this node's XMPP configuration (domain, listeners, "
                         "certificates, call bridges) and gives it a new node id. Type "
                         "yes to go on: "))
            return bad(why, "%snot confirmed; nothing was changed", "");
    }
    /* The daemon refuses a reset the admin did not confirm. */
    json_object_set_new(args, "confirmed", json_true());
    return 0;
}

static int prep_name(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    /* The same rule the daemon applies (xmppd/core/repl.c), so the shell
     * refuses exactly what the cluster would. */
    _Static_assert(CL_NAME_MAX == 63, "the message below says 1-63");
    if (!cl_name_valid(argv[0]))
        return bad(why,
                   "name \"%.100s\" may only have letters, digits and '-' (1-63 "
                   "characters)",
                   argv[0]);
    json_object_set_new(args, "name", json_string(argv[0]));
    return 0;
}

static int prep_name_secret(struct cli *cli, int argc, char **argv, json_t *args,
                            char *why, const char *prompt, const char *key)
{
    if (prep_name(cli, argc, argv, args, why) < 0)
        return -1;
    char secret[512];
    const char *w = NULL;
    int rc = cli_read_secret(prompt, secret, sizeof secret, &w);
    if (rc == 0)
        json_object_set_new(args, key, json_string(secret));
    else
        snprintf(why, WHY_LEN, "%s", w);
    sodium_memzero(secret, sizeof secret);
    return rc;
}

static int prep_add_secret(struct cli *cli, int argc, char **argv, json_t *args,
                           char *why)
{
    return prep_name_secret(cli, argc, argv, args, why, "Secret: ", "secret");
}

static int prep_file(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return need_file("file", argv[0], args, "file", why);
}

static int prep_verify(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    if (need_file("certificate", argv[0], args, "cert", why) < 0 ||
        need_file("bundle", argv[1], args, "bundle", why) < 0)
        return -1;
    return 0;
}

static int prep_bundle(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return need_file("bundle", argv[0], args, "bundle", why);
}

/* pki csr <basename> [CN:<name>] [subjectAltName:<a>,<b>...] [key:ec|rsa] */
static int prep_csr(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    if (need_file("base name", argv[0], args, "basename", why) < 0)
        return -1;
    json_t *sans = json_array();
    json_object_set_new(args, "sans", sans);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "CN:", 3) == 0) {
            if (a[3] == '\0' || strlen(a + 3) > 64)
                return bad(why, "CN \"%.100s\" must be 1-64 characters", a + 3);
            json_object_set_new(args, "cn", json_string(a + 3));
        } else if (strncmp(a, "subjectAltName:", 15) == 0) {
            char *list = strdup(a + 15), *save = NULL;
            if (list == NULL)
                return bad(why, "%sout of memory", "");
            for (char *t = strtok_r(list, ",", &save); t != NULL;
                 t = strtok_r(NULL, ",", &save)) {
                const char *v = t;
                if (strncmp(v, "DNS:", 4) == 0)
                    v += 4;
                else if (strncmp(v, "IP:", 3) == 0)
                    v += 3;
                if (!jid_dns_name_valid(v, true) && !addr_is_ip(v)) {
                    bad(why,
                        "subjectAltName entry \"%.100s\" is neither a DNS name nor an IP "
                        "address",
                        t);
                    free(list);
                    return -1;
                }
                json_array_append_new(sans, json_string(t));
            }
            free(list);
            if (json_array_size(sans) == 0)
                return bad(why, "%ssubjectAltName: needs at least one name or address",
                           "");
        } else if (strcmp(a, "key:ec") == 0 || strcmp(a, "key:rsa") == 0) {
            json_object_set_new(args, "key_type", json_string(a + 4));
        } else {
            return bad(why,
                       "attribute \"%.100s\" is not understood; use CN:<name>, "
                       "subjectAltName:<a>,<b> or key:ec|rsa",
                       a);
        }
    }
    return 0;
}

static int prep_join(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    const char *a = argv[0];
    char host[PFRAME_MAX_ADDR + 1];
    int port;

    /* host, host:port, IPv4, IPv4:port, [IPv6]:port, IPv6 */
    if (plink_parse_addr(a, PLINK_DEFAULT_PORT, host, sizeof host, &port) < 0)
        return bad(why, "\"%.100s\" is not an address (host, host:port or [IPv6]:port)",
                   a);
    json_object_set_new(args, "address", json_string(a));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--replace") == 0) {
            json_object_set_new(args, "replace", json_true());
            continue;
        }
        if (argv[i][0] == '-')
            return bad(why, "unknown option \"%.100s\"; the only option is --replace",
                       argv[i]);
        if (json_object_get(args, "token") != NULL || !cinvite_token_text_valid(argv[i]))
            return bad(why,
                       "\"%.100s\" is not a join token (32 hex digits, as xmpp cluster "
                       "invite prints it)",
                       argv[i]);
        json_object_set_new(args, "token", json_string(argv[i]));
    }
    if (json_object_get(args, "token") == NULL)
        return bad(why,
                   "a join token is needed: run xmpp cluster invite on the member at "
                   "%.100s, then xmpp cluster join <addr> <token>",
                   a);
    return 0;
}

/* prep_invite reads [--ttl <n>s|m|h] (default 10 minutes, at most 24 h). */
static int prep_invite(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    char *end;
    long v;

    (void)cli;
    if (argc == 0)
        return 0;
    if (argc != 2 || strcmp(argv[0], "--ttl") != 0)
        return bad(why, "unknown option \"%.100s\"; the only option is --ttl <n>s|m|h",
                   argv[0]);
    v = strtol(argv[1], &end, 10);
    if (end == argv[1] || v < 1)
        return bad(why, "bad lifetime \"%.100s\": a number and s, m or h (10m)", argv[1]);
    if (strcmp(end, "m") == 0)
        v *= 60;
    else if (strcmp(end, "h") == 0)
        v *= 3600;
    else if (strcmp(end, "s") != 0 && *end != '\0')
        return bad(why, "bad lifetime \"%.100s\": a number and s, m or h (10m)", argv[1]);
    if (v > CINVITE_TTL_MAX_S)
        return bad(why, "lifetime \"%.100s\" is too long: 24 h at most", argv[1]);
    json_object_set_new(args, "ttl_s", json_integer(v));
    return 0;
}

static int prep_cluster_enable(struct cli *cli, int argc, char **argv, json_t *args,
                               char *why)
{
    if (argc == 0)
        return 0;
    if (strcmp(argv[0], "--fast-lan") == 0)
        json_object_set_new(args, "timing", json_string("fast-lan"));
    else if (strcmp(argv[0], "--default-timing") == 0)
        json_object_set_new(args, "timing", json_string("default"));
    else
        return bad(why,
                   "unknown option \"%.100s\"; the options are --fast-lan and "
                   "--default-timing",
                   argv[0]);
    return 0;
}

static int prep_node(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    const char *s = argv[0];
    size_t n = strlen(s);
    /* An address (a dot, a colon or brackets) names the member holding it. */
    if (strpbrk(s, ".:[") != NULL) {
        if (n > 255)
            return bad(why, "address \"%.100s\" is too long", s);
        json_object_set_new(args, "address", json_string(s));
        return 0;
    }
    if (!addr_node_id_prefix_valid(s))
        return bad(
            why, "node \"%.100s\" must be a node id in hex (see xmpp cluster status)", s);
    json_object_set_new(args, "node", json_string(s));
    return 0;
}

static int prep_remove(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    int who = -1;

    /* The daemon decides whether a removal needs --yes (it knows the leader
     * and the peer links) and says so; the shell only passes it on. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0)
            json_object_set_new(args, "confirmed", json_true());
        else if (argv[i][0] == '-')
            return bad(why, "unknown option \"%.100s\"; the option is --yes", argv[i]);
        else if (who >= 0)
            return bad(why, "%sgive one node id or address", "");
        else
            who = i;
    }
    if (who < 0)
        return bad(why, "%sgive the node id or the address of the member to remove", "");
    return prep_node(cli, 1, argv + who, args, why);
}

/* ---- printers ---------------------------------------------------------- */

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "?";
}

/* print_cluster_status keeps the old head (State, List of peers, one line
 * per member with (Leader)) and adds what DESIGN.md "The cluster" shows. */
static void print_cluster_status(json_t *r)
{
    json_t *ld = json_object_get(r, "leader");
    json_t *lc = json_object_get(r, "last_leader_change");
    json_t *fw = json_object_get(r, "forwarding");
    size_t i;
    json_t *p;

    printf("State: %s\n", jstr(r, "state"));
    printf("Term: %lld\n", jint(r, "term"));
    if (json_is_object(ld))
        printf("Leader: %s (node %s%s)\n", jstr(ld, "address"), jstr(ld, "node_id"),
               json_is_true(json_object_get(ld, "self")) ? ", this node" : "");
    else
        printf("Leader: none\n");
    printf("List of peers\n");
    json_array_foreach(json_object_get(r, "peers"), i, p)
    {
        json_t *lcms = json_object_get(p, "last_contact_ms");
        json_t *comp = json_object_get(p, "components");
        char contact[64], role[32], comps[64];
        bool voter = strcmp(jstr(p, "role"), "voter") == 0;

        snprintf(role, sizeof role, "%s%s",
                 json_is_true(json_object_get(p, "leader")) ? "(Leader)" : "follower",
                 voter ? "" : ",non-voter");
        json_t *pv = json_object_get(p, "protocol");
        char link[32];
        if (json_is_integer(pv))
            snprintf(link, sizeof link, "%s v%lld", jstr(p, "link"),
                     (long long)json_integer_value(pv));
        else
            snprintf(link, sizeof link, "%s", jstr(p, "link"));
        if (json_is_true(json_object_get(p, "self")))
            snprintf(contact, sizeof contact, "this node");
        else if (json_is_integer(lcms))
            snprintf(contact, sizeof contact, "link %s, last contact %lld ms", link,
                     (long long)json_integer_value(lcms));
        else
            snprintf(contact, sizeof contact, "link %s, no contact", link);
        json_t *cage = json_object_get(p, "components_age_ms");
        if (json_is_integer(comp) && json_is_true(json_object_get(p, "components_stale")))
            snprintf(comps, sizeof comps, "components %lld (stale %lld s)",
                     (long long)json_integer_value(comp),
                     json_is_integer(cage) ? (long long)json_integer_value(cage) / 1000
                                           : 0LL);
        else if (json_is_integer(comp))
            snprintf(comps, sizeof comps, "components %lld",
                     (long long)json_integer_value(comp));
        else
            snprintf(comps, sizeof comps, "components -");
        /* one line per member (tests/integration/cluster.py reads it): the
         * client sessions the routing table puts there at its end */
        char clients[96] = "";
        if (json_is_object(json_object_get(p, "sessions"))) {
            json_t *ss = json_object_get(p, "sessions");
            snprintf(clients, sizeof clients, ", clients tcp %lld, websocket %lld",
                     jint(ss, "clients_tcp"), jint(ss, "clients_websocket"));
        }
        printf("%-21s node %s  %-9s  %-36s %s%s\n", jstr(p, "address"),
               jstr(p, "node_id"), role, contact, comps, clients);
        /* why the link is refused, on its own line */
        if (json_is_string(json_object_get(p, "refused")))
            printf("    link: refused: %s\n", jstr(p, "refused"));
    }
    if (json_is_object(lc))
        printf("Last leader change: %s (term %lld -> %lld), reason: %s\n",
               jstr(lc, "time"), jint(lc, "old_term"), jint(lc, "new_term"),
               jstr(lc, "reason"));
    else
        printf("Last leader change: none\n");
    printf("Forwarded %lld, queued %lld, bounced %lld\n", jint(fw, "forwarded"),
           jint(fw, "queued"), jint(fw, "bounced"));
    if (json_is_object(json_object_get(r, "links"))) {
        json_t *l = json_object_get(r, "links");
        printf("Peer links: up %lld, accepted %lld, refused %lld (impostors %lld), "
               "malformed %lld, forbidden %lld, timed out %lld, over limit %lld, "
               "write refused %lld\n",
               jint(l, "up"), jint(l, "accepted"), jint(l, "refused"),
               jint(l, "impostors"), jint(l, "malformed"), jint(l, "forbidden"),
               jint(l, "timeouts"), jint(l, "over_limit"), jint(l, "write_refused"));
    }
    if (json_is_object(json_object_get(r, "timing"))) {
        json_t *t = json_object_get(r, "timing");
        json_t *next = json_object_get(t, "next");
        printf("Raft timing: %s (heartbeat %lld ms, election %lld-%lld ms)%s%s%s\n",
               strcmp(jstr(t, "profile"), "fast-lan") == 0 ? "fast-LAN" : "default",
               jint(t, "heartbeat_ms"), jint(t, "election_min_ms"),
               jint(t, "election_max_ms"), json_is_string(next) ? "; " : "",
               json_is_string(next) ? json_string_value(next) : "",
               json_is_string(next) ? " from the next start" : "");
    }
    printf("Node %s, cluster %s, peer address %s\n", jstr(r, "node_id"),
           jstr(r, "cluster_id"), jstr(r, "address"));
    if (json_is_true(json_object_get(r, "draining")))
        printf("Draining: yes (XMPP sessions are sent to other members, not elected "
               "leader while another member can be, kept across restarts; end it with "
               "xmpp cluster drain --off)\n");
    if (json_is_string(json_object_get(r, "store")))
        printf("Store: %s\n", jstr(r, "store"));
    if (json_is_true(json_object_get(r, "removed")))
        printf("This node was removed from the cluster and does not serve XMPP. To come "
               "back: xmpp cluster invite on a member, then here xmpp cluster join "
               "<member> <token>; or go alone: xmpp cluster disable\n");
}

/* xmpp cluster drain [--off] */
static int prep_drain(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    (void)cli;
    if (argc == 1 && strcmp(argv[0], "--off") != 0)
        return bad(why, "unknown option \"%.100s\"; the option is --off", argv[0]);
    if (argc == 1)
        json_object_set_new(args, "off", json_true());
    return 0;
}

/* xmpp cluster undrain */
static int prep_undrain(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    (void)cli;
    (void)argc;
    (void)argv;
    (void)why;
    json_object_set_new(args, "off", json_true());
    return 0;
}

static void print_drain(json_t *r)
{
    json_t *k = json_object_get(r, "sessions_redirected");

    printf("%s", jstr(r, "message"));
    if (json_is_true(json_object_get(r, "leadership_transferred")))
        printf("; leadership was handed over first");
    if (json_is_integer(k) && json_integer_value(k) > 0)
        printf("; %lld session(s) sent to other members",
               (long long)json_integer_value(k));
    printf("\n");
}

/* xmpp websocket origin|proxy add|del <value>, list: the op is the
 * command's third word. */
static int prep_ws_list(struct cli *cli, int argc, char **argv, json_t *args, char *why,
                        const char *op)
{
    (void)cli;
    (void)why;
    json_object_set_new(args, "op", json_string(op));
    if (argc == 1)
        json_object_set_new(args, "value", json_string(argv[0]));
    return 0;
}

static int prep_ws_add(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return prep_ws_list(cli, argc, argv, args, why, "add");
}

static int prep_ws_del(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return prep_ws_list(cli, argc, argv, args, why, "del");
}

static int prep_ws_show(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    return prep_ws_list(cli, argc, argv, args, why, "list");
}

static void print_ws_list(json_t *r, const char *key, const char *none)
{
    json_t *a = json_object_get(r, key), *e;
    size_t i;

    if (json_is_string(json_object_get(r, "message")))
        printf("%s\n", jstr(r, "message"));
    if (json_array_size(a) == 0)
        printf("%s\n", none);
    json_array_foreach(a, i, e)
    {
        printf("%s\n", json_string_value(e));
    }
}

static void print_ws_origins(json_t *r)
{
    print_ws_list(r, "origins", "No origin list: any origin may connect.");
}

static void print_ws_proxies(json_t *r)
{
    print_ws_list(r, "proxies", "No trusted proxy: X-Forwarded-For is ignored.");
}

static void print_added(json_t *r)
{
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *secret = json_string_value(json_object_get(r, "secret"));
    printf("Call bridge %s added.\n", name != NULL ? name : "?");
    if (secret != NULL)
        printf("Secret: %s\n(shown once: configure it on the call bridge now)\n", secret);
}

/* The one-line answers of commands that change something: what was done,
 * from the facts the daemon returns (the same facts --json prints). */
static void print_initialized(json_t *r)
{
    json_t *m = json_object_get(r, "members");
    size_t i;
    json_t *e;

    printf("%s: cluster %s, %zu member%s:", jstr(r, "message"), jstr(r, "cluster_id"),
           json_array_size(m), json_array_size(m) == 1 ? "" : "s");
    json_array_foreach(m, i, e)
    {
        printf("%s node %s at %s", i > 0 ? "," : "", jstr(e, "node_id"),
               jstr(e, "address"));
    }
    printf("\n");
}

static void print_trusted(json_t *r)
{
    printf("Cluster peers are now checked against %s (%s)%s\n", jstr(r, "trust"),
           jstr(r, "path"),
           json_is_true(json_object_get(r, "peer_link_restarted"))
               ? "; the peer link restarted with it"
               : "; used once clustering is enabled");
}

static void print_cluster_disabled(json_t *r)
{
    printf("%s (cluster %s%s)", jstr(r, "message"), jstr(r, "cluster_id"),
           json_is_true(json_object_get(r, "leadership_transferred"))
               ? "; leadership was handed over first"
               : "");
    if (json_is_integer(json_object_get(r, "components_closed")))
        printf(
            "; XMPP restarted alone: closed %lld component and %lld client session(s), "
            "which reconnect",
            (long long)json_integer_value(json_object_get(r, "components_closed")),
            (long long)json_integer_value(json_object_get(r, "clients_closed")));
    printf("\n");
}

static void print_cb_deleted(json_t *r)
{
    json_int_t k = json_integer_value(json_object_get(r, "sessions_closed"));

    printf("Call bridge %s deleted; %lld session%s closed on this node (sessions on "
           "other members close as they apply it)\n",
           jstr(r, "name"), (long long)k, k == 1 ? "" : "s");
}

static void print_disabled(json_t *r)
{
    json_t *l = json_object_get(r, "listen_closed");
    size_t i;
    json_t *e;

    if (!json_is_true(json_object_get(r, "was_serving"))) {
        printf("XMPP disabled (it was not serving: nothing to close)\n");
        return;
    }
    printf("XMPP disabled: closed %lld component and %lld client session(s) and the "
           "listener(s)",
           (long long)json_integer_value(json_object_get(r, "components_closed")),
           (long long)json_integer_value(json_object_get(r, "clients_closed")));
    json_array_foreach(l, i, e)
    {
        printf("%s %s", i > 0 ? "," : "", json_string_value(e));
    }
    printf("\n");
}

static void print_invite(json_t *r)
{
    const char *token = json_string_value(json_object_get(r, "token"));
    const char *addr = json_string_value(json_object_get(r, "address"));
    const char *exp = json_string_value(json_object_get(r, "expires"));

    printf("Token: %s\n", token != NULL ? token : "?");
    printf("Expires: %s (single use; shown once)\n", exp != NULL ? exp : "?");
    printf("On the new node: xmpp cluster join %s %s\n", addr != NULL ? addr : "<addr>",
           token != NULL ? token : "<token>");
}

/* age_text writes an age in seconds as the largest whole unit: "42s",
 * "5m", "3h", "12d". */
static void age_text(long long s, char *out, size_t len)
{
    if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm", s / 60);
    else if (s < 86400)
        snprintf(out, len, "%lldh", s / 3600);
    else
        snprintf(out, len, "%lldd", s / 86400);
}

static void print_callbridges(json_t *r)
{
    static const char *const keys[] = {"name",      "domain",      "fingerprint",
                                       "connected", "secret_text", NULL};
    static const char *const heads[] = {
        "Name",      "Domain",           "Secret (SHA-256, first 8 bytes)",
        "Connected", "Secret set (age)", NULL};
    json_t *l = json_object_get(r, "callbridges"), *e;
    size_t i;

    /* --json prints the daemon's answer as it is: this column is only for
     * the table (an older daemon sends no time: "-") */
    json_array_foreach(l, i, e)
    {
        const char *at = json_string_value(json_object_get(e, "secret_set_at"));
        json_t *age = json_object_get(e, "secret_age_seconds");
        char text[64], a[24];

        if (at != NULL && json_is_integer(age)) {
            age_text((long long)json_integer_value(age), a, sizeof a);
            snprintf(text, sizeof text, "%s (%s)", at, a);
        } else {
            snprintf(text, sizeof text, "%s",
                     json_object_get(e, "secret_set_at") != NULL ? "unknown" : "-");
        }
        json_object_set_new(e, "secret_text", json_string(text));
    }
    cli_print_table(l, keys, heads);
}

static void print_secret(json_t *r)
{
    printf("Secret: %s\n", jstr(r, "secret"));
}

static void print_metrics(json_t *r)
{
    const char *url = json_string_value(json_object_get(r, "url"));

    if (url == NULL)
        printf("Metrics endpoint off\n");
    else
        printf("Metrics served at %s (plain HTTP: keep it on loopback or a management "
               "network)\n",
               url);
}

/* The configuration of one call bridge, in the order its admin pages ask
 * for it, then the DNS records to publish. */
static void print_export(json_t *r)
{
    json_t *recs = json_object_get(r, "records"), *e;
    size_t i;

    printf("Call bridge %s\n", jstr(r, "name"));
    printf("  Domain:          %s\n", jstr(r, "domain"));
    printf("  Component name:  %s\n", jstr(r, "component"));
    printf("  Secret:          %s\n", jstr(r, "secret"));
    printf("  Port:            %lld (TLS %s)\n",
           (long long)json_integer_value(json_object_get(r, "port")), jstr(r, "tls"));
    printf("  CA bundle:       %s\n", json_is_string(json_object_get(r, "ca_bundle"))
                                          ? jstr(r, "ca_bundle")
                                          : "(none set: see xmpp certs)");
    if (json_array_size(recs) == 0) {
        printf("DNS records: none (no node address known: see xmpp listen)\n");
        return;
    }
    printf("DNS records to publish (zone file lines):\n");
    json_array_foreach(recs, i, e)
    {
        printf("  %s\n", json_string_value(e));
    }
}

static void print_pki_list(json_t *r)
{
    static const char *const keys[] = {"file",   "kind",      "subject", "sans",
                                       "issuer", "not_after", NULL};
    static const char *const heads[] = {"File",   "Kind",    "Subject", "SANs",
                                        "Issuer", "Expires", NULL};
    cli_print_table(json_object_get(r, "files"), keys, heads);
}

static void print_csr(json_t *r)
{
    const char *key = json_string_value(json_object_get(r, "key"));
    const char *csr = json_string_value(json_object_get(r, "csr"));
    printf(
        "Key: %s\nCSR: %s\n(have the CSR signed by your CA, then: xmpp certs %s <cert> "
        "<bundle>)\n",
        key ? key : "?", csr ? csr : "?", key ? key : "<key>");
}

static void print_health(json_t *r)
{
    json_t *reasons = json_object_get(r, "reasons");
    size_t i;
    json_t *x;

    printf("Health: %s\n", jstr(r, "health"));
    json_array_foreach(reasons, i, x) printf("  %s\n", json_string_value(x));
}

static void print_verify(json_t *r)
{
    const char *cert = json_string_value(json_object_get(r, "cert"));
    printf("%s: OK\n", cert != NULL ? cert : "certificate");
}

/* ---- the table ---------------------------------------------------------- */

#define W(...)                                                                           \
    {                                                                                    \
        __VA_ARGS__, NULL                                                                \
    }

static const struct cli_cmd commands[] = {
    {W("xmpp", "status"), "",
     "show whether XMPP is enabled, the domain, listeners, certificate, sessions, uptime",
     NULL, "xmpp.status", 0, 0, NULL, NULL},
    {W("xmpp", "health"), "",
     "say whether this node is healthy; exit 0 healthy, 1 degraded, 2 failed",
     "Failed: not serving XMPP, the certificate expired, the replicated store stopped,\n"
     "or the node was removed from its cluster. Degraded: no cluster leader, a peer "
     "link\n"
     "down, a certificate ending within 14 days, a member's clock 2 s or more off.\n"
     "Each reason says what to do. For monitoring: mmp-cli -c 'xmpp health'.",
     "xmpp.health", 0, 0, NULL, print_health},
    {W("xmpp", "domain"), "<domain>", "set the XMPP domain this node serves",
     "Example: xmpp domain example.com", "xmpp.domain.set", 1, 1, prep_domain, NULL},
    {W("xmpp", "listen"), "<addr|iface>[:<port>]...",
     "set the addresses or interfaces (and ports) the XMPP listeners bind to",
     "Each argument is an IPv4 or IPv6 address or a network interface name, with an\n"
     "optional port (default 5223); IPv6 with a port is written [addr]:port.\n"
     "Example: xmpp listen 10.0.0.1 lo:5275 [2001:db8::1]:5223",
     "xmpp.listen.set", 1, -1, prep_listen, NULL},
    {W("xmpp", "tls"), "off|optional|required",
     "set TLS on the component listeners (default optional)",
     "optional: direct TLS or plaintext on the same port (told apart by the first\n"
     "byte); required: direct TLS only; off: plaintext only. TLS needs xmpp certs.\n"
     "Clients have their own setting: xmpp tls client required|optional.",
     "xmpp.tls.set", 1, 1, prep_tls, NULL},
    {W("xmpp", "tls", "client"), "required|optional",
     "set whether clients must use STARTTLS before they log in (default required)",
     "required: the client listener offers STARTTLS and refuses SASL before it;\n"
     "optional: STARTTLS is offered, SCRAM also works without it (PLAIN never does).\n"
     "Without xmpp certs, required means no client listener at all.",
     "xmpp.client.set", 1, 1, prep_client_tls, NULL},
    {W("xmpp", "sasl", "plain"), "on|off",
     "offer SASL PLAIN to clients, under TLS only (default off)",
     "SCRAM-SHA-256 and SCRAM-SHA-1 are always offered; PLAIN sends the password\n"
     "itself (inside TLS), for clients that know nothing else.",
     "xmpp.client.set", 1, 1, prep_sasl_plain, NULL},
    {W("xmpp", "client", "port"), "<port>|off",
     "set the port of the client listener on every listen address (default 5222)",
     "Clients connect here with STARTTLS (RFC 6120); off closes the client listener.\n"
     "The addresses are those of xmpp listen.",
     "xmpp.client.set", 1, 1, prep_client_port, NULL},
    {W("xmpp", "client", "tls-port"), "<port>|off",
     "set a port for clients with direct TLS (XEP-0368) on every listen address "
     "(default off)",
     "TLS from the first byte instead of STARTTLS, with the same certificate. Not 5223\n"
     "while the component listeners use it.",
     "xmpp.client.set", 1, 1, prep_client_tls_port, NULL},
    {W("xmpp", "client", "max-sessions"), "<n>",
     "set how many sessions one account may have at once (default 10; 0: no limit)",
     "Counted on this node and, in a cluster, on every node (the routing table).\n"
     "A bind over the limit is refused with resource-constraint (RFC 6120 7.6.2.1).",
     "xmpp.client.set", 1, 1, prep_client_max_sessions, NULL},
    {W("xmpp", "client", "rate"), "<bytes/s>|off",
     "set the byte rate each client connection may send (default 65536)",
     "A token bucket per connection (TCP and WebSocket) with bursts of 4 seconds of\n"
     "the rate; before login an eighth of it (at least 1024) with bursts of 16 KiB.\n"
     "A connection over its budget is not read for a while: slowed, nothing lost.\n"
     "At least 1024; off: no shaping.",
     "xmpp.client.set", 1, 1, prep_client_rate, NULL},
    {W("xmpp", "client", "version"), "on|off",
     "answer XEP-0092 software version queries to the domain (default off)",
     "on: the name xmppd and its version (never the operating system), and\n"
     "jabber:iq:version in disco#info; off: service-unavailable.",
     "xmpp.client.set", 1, 1, prep_client_version, NULL},
    {W("xmpp", "websocket", "port"), "<port>|off",
     "set the port of the XMPP-over-WebSocket listener (ws) on every listen address "
     "(default 5280)",
     "RFC 7395 without TLS: while TLS is required for clients a client here is refused\n"
     "(use wss, or xmpp tls client optional behind a TLS proxy). Also serves host-meta.",
     "xmpp.websocket.set", 1, 1, prep_ws_port, NULL},
    {W("xmpp", "websocket", "tls-port"), "<port>|off",
     "set the port of the WebSocket listener with TLS (wss) on every listen address "
     "(default 5281)",
     "Browsers connect here (wss://<address>:<port><path>), with the node's "
     "certificate.\n"
     "Also serves /.well-known/host-meta (XEP-0156).",
     "xmpp.websocket.set", 1, 1, prep_wss_port, NULL},
    {W("xmpp", "websocket", "path"), "<path>",
     "set the path of the WebSocket endpoint (default /xmpp-websocket)",
     "The resource of the ws and wss URLs; host-meta names it.", "xmpp.websocket.set", 1,
     1, prep_ws_path, NULL},
    {W("xmpp", "websocket", "origin", "add"), "<origin>",
     "allow browser pages of this origin to connect over WebSocket (default: any)",
     "An origin is scheme://host[:port], as browsers send it (https://app.example.com).\n"
     "With a list, an upgrade whose Origin is not on it gets 403; a client that sends\n"
     "no Origin (not a browser) is let in. Node-local; applied at once.",
     "xmpp.websocket.origin", 1, 1, prep_ws_add, print_ws_origins},
    {W("xmpp", "websocket", "origin", "del"), "<origin>",
     "remove an origin from the WebSocket allow-list (an empty list allows any)", NULL,
     "xmpp.websocket.origin", 1, 1, prep_ws_del, print_ws_origins},
    {W("xmpp", "websocket", "origin", "list"), "", "list the WebSocket Origin allow-list",
     NULL, "xmpp.websocket.origin", 0, 0, prep_ws_show, print_ws_origins},
    {W("xmpp", "websocket", "proxy", "add"), "<address>|<cidr>",
     "trust X-Forwarded-For from this proxy address or range (10.0.0.0/8)",
     "The client address (logs, login throttling) is then the right-most address of\n"
     "X-Forwarded-For that is not a trusted proxy. Node-local; applied at once.",
     "xmpp.websocket.proxy", 1, 1, prep_ws_add, print_ws_proxies},
    {W("xmpp", "websocket", "proxy", "del"), "<address>|<cidr>",
     "stop trusting X-Forwarded-For from this proxy address or range", NULL,
     "xmpp.websocket.proxy", 1, 1, prep_ws_del, print_ws_proxies},
    {W("xmpp", "websocket", "proxy", "list"), "",
     "list the proxies whose X-Forwarded-For is trusted", NULL, "xmpp.websocket.proxy", 0,
     0, prep_ws_show, print_ws_proxies},
    {W("xmpp", "certs"), "<key> <cert> [<ca-bundle>]",
     "set the TLS key, certificate and CA bundle (files in the node's pki directory)",
     "The key must match the certificate, the certificate must be valid now and, with a\n"
     "bundle, verify against it. Make them with certs/ or pki csr.",
     "xmpp.certs.set", 2, 3, prep_certs, NULL},
    {W("xmpp", "enable"), "",
     "start serving XMPP (refused, with the reason, if the "
     "configuration cannot work)",
     NULL, "xmpp.enable", 0, 0, NULL, NULL},
    {W("xmpp", "disable"), "", "stop serving XMPP (the control socket stays up)", NULL,
     "xmpp.disable", 0, 0, NULL, print_disabled},
    {W("xmpp", "reset"), "[--yes] [--force]", "wipe this node's XMPP configuration",
     "Asks for confirmation at a terminal (type yes); scripts must add --yes. On a\n"
     "member of a cluster it is refused unless --force (the cluster then keeps the old\n"
     "node id as a stale member: xmpp cluster remove it, or rejoin with --replace).",
     "xmpp.reset", 0, 2, prep_reset, NULL},
    {W("xmpp", "callbridge", "add"), "<name>",
     "add a call bridge with a new secret (printed once)",
     "Names have letters, digits and '-'.", "xmpp.callbridge.add", 1, 1, prep_name,
     print_added},
    {W("xmpp", "callbridge", "add-secret"), "<name>",
     "add a call bridge with a secret you bring (prompted without echo, or one line on "
     "stdin)",
     "Use it to give a second node the same secret. At a terminal the secret is asked\n"
     "twice without echo; otherwise one line is read from standard input:\n"
     "  echo \"$SECRET\" | mmp-cli -c 'xmpp callbridge add-secret cb1'",
     "xmpp.callbridge.add", 1, 1, prep_add_secret, print_added},
    {W("xmpp", "callbridge", "del"), "<name>",
     "delete a call bridge (its session is disconnected)", NULL, "xmpp.callbridge.del", 1,
     1, prep_name, print_cb_deleted},
    {W("xmpp", "callbridge", "list"), "",
     "list call bridges: name, domain, a fingerprint of the secret, connected, when the "
     "secret was set",
     NULL, "xmpp.callbridge.list", 0, 0, NULL, print_callbridges},
    {W("xmpp", "callbridge", "show-secret"), "<name>",
     "show a call bridge's shared secret (a list never shows it)", NULL,
     "xmpp.callbridge.show-secret", 1, 1, prep_name, print_secret},
    {W("xmpp", "callbridge", "export"), "<name>",
     "print what a call bridge needs: domain, component name, secret, DNS SRV records, "
     "CA bundle",
     "The secret is shown (as by show-secret). The SRV records name every member of\n"
     "the cluster (_xmpp-component._tcp, port 5223), each with the A or AAAA record of\n"
     "its target. With --json, one object to feed a provisioning script.",
     "xmpp.callbridge.export", 1, 1, prep_name, print_export},
    {W("xmpp", "metrics", "listen"), "<addr>:<port>",
     "serve Prometheus metrics at http://<addr>:<port>/metrics (off by default)",
     "Plain HTTP, this node only (node-local): use 127.0.0.1 or a management address.\n"
     "The metric names are listed in docs/admin.md (\"Metrics\").",
     "xmpp.metrics.set", 1, 1, prep_metrics, print_metrics},
    {W("xmpp", "metrics", "off"), "", "stop serving metrics", NULL, "xmpp.metrics.set", 0,
     0, prep_metrics, print_metrics},
    {W("xmpp", "user", "add"), "<name> [--generate]",
     "add a client account (password prompted, read from stdin, or generated)",
     "At a terminal the password is asked twice without echo; otherwise one line is\n"
     "read from standard input:  echo \"$PW\" | mmp-cli -c 'xmpp user add alice'\n"
     "--generate makes a random password and prints it once. The name is the JID's\n"
     "localpart (alice for alice@<domain>); upper case becomes lower case.",
     "xmpp.user.add", 1, 2, cli_prep_user_password, cli_print_user_added},
    {W("xmpp", "user", "passwd"), "<name> [--generate]",
     "set a new password for a client account (as for add)", NULL, "xmpp.user.passwd", 1,
     2, cli_prep_user_password, cli_print_user_passwd},
    {W("xmpp", "user", "del"), "<name>", "delete a client account", NULL, "xmpp.user.del",
     1, 1, cli_prep_user_name, cli_print_user_deleted},
    {W("xmpp", "user", "list"), "", "list client accounts: name, JID, created", NULL,
     "xmpp.user.list", 0, 0, NULL, cli_print_users},
    {W("xmpp", "user", "iterations"), "[<n>]",
     "show or set the SCRAM iteration count for new passwords (default 4096)",
     "Cluster-wide. At least 4096 (RFC 7677). Accounts keep the count they were made\n"
     "with until their password is set again.",
     "xmpp.user.iterations", 0, 1, cli_prep_user_iterations, cli_print_user_iterations},
    {W("xmpp", "cluster", "status"), "", "show the cluster: state, term, leader, peers",
     NULL, "xmpp.cluster.status", 0, 0, NULL, print_cluster_status},
    {W("xmpp", "cluster", "enable"), "[--fast-lan|--default-timing]",
     "enable clustering on this node (the peer link on <listen address>:5224)",
     "--fast-lan selects Raft's fast-LAN timing (heartbeat 50 ms, election 300-600 ms)\n"
     "from the next start of xmppd; the default is heartbeat 100 ms, election 1-2 s.",
     "xmpp.cluster.enable", 0, 1, prep_cluster_enable, NULL},
    {W("xmpp", "cluster", "disable"), "",
     "leave clustering (hands leadership over first)", NULL, "xmpp.cluster.disable", 0, 0,
     NULL, print_cluster_disabled},
    {W("xmpp", "cluster", "drain"), "[--off]",
     "send this node's XMPP sessions to other members and take no new ones",
     "On the leader, leadership is handed over first. Components and clients get the\n"
     "stream error see-other-host naming another member (WebSocket clients: <close\n"
     "see-other-uri=.../>), so they reconnect there at once. New sessions are sent on\n"
     "too, until xmpp cluster drain --off (or undrain). While draining the node is not\n"
     "elected Raft leader while another member can be. A restart of xmppd keeps the\n"
     "drain (it is saved in node.state); SIGTERM's own drain is not saved.",
     "xmpp.cluster.drain", 0, 1, prep_drain, print_drain},
    {W("xmpp", "cluster", "undrain"), "", "end draining: serve XMPP sessions again", NULL,
     "xmpp.cluster.drain", 0, 0, prep_undrain, print_drain},
    {W("xmpp", "cluster", "initialize"), "", "make this node a new one-node cluster",
     NULL, "xmpp.cluster.initialize", 0, 0, NULL, print_initialized},
    {W("xmpp", "cluster", "invite"), "[--ttl 10m]",
     "make a one-time token for a new node to join through this member (printed once)",
     "Run it on the member the new node will dial; the token is good there only, once,\n"
     "until it expires (--ttl <n>s|m|h, default 10m, at most 24h). Then, on the new "
     "node:\n"
     "  xmpp cluster join <this member's address> <token>",
     "xmpp.cluster.invite", 0, 2, prep_invite, print_invite},
    {W("xmpp", "cluster", "join"), "<addr> <token> [--replace]",
     "join the cluster that the node at <addr> belongs to, with a token from xmpp "
     "cluster invite there",
     "Get the token with xmpp cluster invite on the member at <addr>.\n"
     "--replace removes a member that still holds this node's address in the same step.",
     "xmpp.cluster.join", 1, 3, prep_join, NULL},
    {W("xmpp", "cluster", "remove"), "<node-id|addr> [--yes]",
     "remove a member (by node id as xmpp cluster status prints it, or by address)",
     "A node id may be shortened to a prefix of at least 4 hex digits that starts one\n"
     "member's id only. Removing the leader, or a member whose removal leaves less than\n"
     "a majority of the remaining voters reachable, is refused without --yes.",
     "xmpp.cluster.remove", 1, 2, prep_remove, NULL},
    {W("xmpp", "cluster", "trust"), "<bundle>",
     "set the CA bundle that cluster peers are checked against", NULL,
     "xmpp.cluster.trust", 1, 1, prep_bundle, print_trusted},
    {W("pki", "list"), "", "list keys, certificates and CSRs in the node's pki directory",
     NULL, "pki.list", 0, 0, NULL, print_pki_list},
    {W("pki", "inspect"), "<file>", "show a key, certificate, bundle or CSR", NULL,
     "pki.inspect", 1, 1, prep_file, NULL},
    {W("pki", "csr"), "<basename> [CN:<name>] [subjectAltName:<a>,<b>...] [key:ec|rsa]",
     "make a new key (<basename>.key) and certificate signing request (<basename>.csr)",
     "The key is EC P-256 unless key:rsa (RSA 2048). SAN entries are DNS names or IP\n"
     "addresses (or DNS:<name>, IP:<addr>). Without subjectAltName the CN is used.\n"
     "Example: pki csr node1 CN:node1.example.com subjectAltName:example.com,10.0.0.1",
     "pki.csr", 1, -1, prep_csr, print_csr},
    {W("pki", "verify"), "<cert> <ca-bundle>", "check a certificate against a CA bundle",
     NULL, "pki.verify", 2, 2, prep_verify, print_verify},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static int nwords(const struct cli_cmd *c)
{
    int n = 0;
    while (c->words[n] != NULL)
        n++;
    return n;
}

/* matches: whether the first nwords(c) words of input are c's words. */
static bool matches(const struct cli_cmd *c, char **w, int n)
{
    int k = nwords(c);
    if (n < k)
        return false;
    for (int i = 0; i < k; i++)
        if (strcmp(c->words[i], w[i]) != 0)
            return false;
    return true;
}

/* prefix_of: whether input words w[0..n) are a prefix of c's words. */
static bool prefix_of(const struct cli_cmd *c, char **w, int n)
{
    if (n >= nwords(c))
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(c->words[i], w[i]) != 0)
            return false;
    return true;
}

static void cmd_name(const struct cli_cmd *c, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; c->words[i] != NULL; i++) {
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", i ? " " : "", c->words[i]);
    }
}

static void joined(char **w, int n, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", i ? " " : "", w[i]);
    }
}

/* next_words lists the distinct words that can follow w[0..n). */
static void next_words(char **w, int n, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (!prefix_of(&commands[i], w, n))
            continue;
        const char *nw = commands[i].words[n];
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = prefix_of(&commands[j], w, n) && strcmp(commands[j].words[n], nw) == 0;
        if (!seen) {
            size_t u = strlen(out);
            snprintf(out + u, len - u, "%s%s", u ? ", " : "", nw);
        }
    }
}

/* ---- help -------------------------------------------------------------- */

static void help(char **w, int n)
{
    bool any = false;
    /* One command in full, or every command under a prefix. */
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct cli_cmd *c = &commands[i];
        if (n > 0 && matches(c, w, n) && nwords(c) == n) {
            char name[128];
            cmd_name(c, name, sizeof name);
            printf("%s %s\n  %s\n", name, c->usage, c->summary);
            if (c->help != NULL) {
                const char *p = c->help;
                while (*p) {
                    const char *e = strchr(p, '\n');
                    int l = e ? (int)(e - p) : (int)strlen(p);
                    printf("  %.*s\n", l, p);
                    p += l + (e ? 1 : 0);
                }
            }
            return;
        }
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct cli_cmd *c = &commands[i];
        if (n > 0 && !prefix_of(c, w, n))
            continue;
        if (!any)
            printf("%s", n == 0 ? "Commands (help <command> for details; --json before a "
                                  "command prints JSON):\n"
                                : "");
        any = true;
        char name[160];
        cmd_name(c, name, sizeof name);
        size_t u = strlen(name);
        snprintf(name + u, sizeof name - u, "%s%s", c->usage[0] ? " " : "", c->usage);
        printf("  %-40s %s\n", name, c->summary);
    }
    if (n == 0)
        printf("  %-40s %s\n  %-40s %s\n", "help [<command>]",
               "this list, or one command", "exit", "leave the shell");
}

/* help_json is help's answer for --json: {"commands": [{"command", "usage",
 * "summary", "help"}]} for one command or every command under w[0..n).
 * Returned owned. */
static json_t *help_json(char **w, int n)
{
    json_t *list = json_array();
    size_t exact = NCOMMANDS;

    for (size_t i = 0; i < NCOMMANDS && n > 0; i++)
        if (matches(&commands[i], w, n) && nwords(&commands[i]) == n)
            exact = i;
    for (size_t i = 0; i < NCOMMANDS && list != NULL; i++) {
        const struct cli_cmd *c = &commands[i];
        char name[128];
        if (exact < NCOMMANDS ? i != exact : n > 0 && !prefix_of(c, w, n))
            continue;
        cmd_name(c, name, sizeof name);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s?}", "command", name,
                                              "usage", c->usage, "summary", c->summary,
                                              "help", c->help));
    }
    return json_pack("{s:o*}", "commands", list);
}

/* ---- running a line ---------------------------------------------------- */

/* print_envelope prints the one JSON answer of a --json command on
 * stdout (docs/control-protocol.md "mmp-cli --json"): {"ok": true, "data":
 * data} or {"ok": false, "error": {"code", "message"}}.  data is taken
 * (NULL: {}). */
static void print_envelope(json_t *data, const char *code, const char *message)
{
    json_t *e = code == NULL ? json_pack("{s:b, s:o}", "ok", 1, "data",
                                         data != NULL ? data : json_object())
                             : json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code",
                                         code, "message", message);
    char *s = e != NULL ? json_dumps(e, JSON_INDENT(2)) : NULL;
    if (s != NULL)
        printf("%s\n", s);
    else
        printf("{\"ok\": false, \"error\": {\"code\": \"no-memory\", \"message\": "
               "\"out of memory\"}}\n");
    free(s);
    json_decref(e);
}

/* shell_error reports an error the shell found or the daemon answered:
 * "<name>: <message>" on stderr, and with --json the error envelope on
 * stdout.  Returns rc. */
static int shell_error(struct cli *cli, int rc, const char *name, const char *code,
                       const char *fmt, ...)
{
    char message[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", name, message);
    if (cli->json)
        print_envelope(NULL, code, message);
    return rc;
}

/* unknown_command explains, from the longest known prefix of w, where the
 * line went wrong. */
static int unknown_command(struct cli *cli, char **w, int n)
{
    char all[256];
    /* The longest known prefix tells the admin where it went wrong. */
    int k = n;
    char next[256] = "";
    while (k > 0) {
        next_words(w, k, next, sizeof next);
        if (next[0] != '\0')
            break;
        k--;
    }
    if (k == 0) {
        next_words(w, 0, next, sizeof next);
        return shell_error(cli, CLI_USAGE, w[0], "unknown-command",
                           "unknown command; commands start with %s (type help)", next);
    }
    joined(w, k, all, sizeof all);
    if (k == n)
        return shell_error(cli, CLI_USAGE, all, "unknown-command",
                           "incomplete command; next word is one of: %s (type help %s)",
                           next, all);
    return shell_error(cli, CLI_USAGE, all, "unknown-command",
                       "unknown word \"%s\"; next word is one of: %s (type help %s)",
                       w[k], next, all);
}

/* exec_command checks the arguments of c, sends the request and prints
 * the answer. */
static int exec_command(struct cli *cli, const struct cli_cmd *c, int argc, char **argv)
{
    char name[128];
    cmd_name(c, name, sizeof name);
    if (argc < c->min_args || (c->max_args >= 0 && argc > c->max_args))
        return shell_error(
            cli, CLI_USAGE, name, "invalid-argument", "%s; usage: %s %s (see help %s)",
            argc < c->min_args ? "missing arguments" : "too many arguments", name,
            c->usage, name);
    json_t *args = json_object();
    char why[WHY_LEN] = "";
    if (args == NULL)
        return shell_error(cli, CLI_USAGE, name, "no-memory", "out of memory");
    if (c->prepare != NULL && c->prepare(cli, argc, argv, args, why) < 0) {
        json_decref(args);
        return shell_error(cli, CLI_USAGE, name, "invalid-argument", "%s (see help %s)",
                           why, name);
    }

    json_t *result = NULL;
    char code[32], message[256];
    int rc = cli_call(cli, c->ctl, args, &result, code, message);
    /* A password this shell generated goes into the answer, printed once
     * (text or --json); no-op for other commands. */
    cli_user_finish(rc == CLI_OK ? result : NULL);
    if (rc != CLI_OK) {
        if (strcmp(code, "unknown-command") == 0)
            snprintf(message, sizeof message,
                     "this xmppd does not serve this command yet (unknown-command)");
        return shell_error(cli, rc, name, code[0] ? code : "unreachable", "%s", message);
    }
    /* A command whose answer carries its own exit status (xmpp health: 0
     * healthy, 1 degraded, 2 failed) exits with it, in text and JSON. */
    json_t *es = json_object_get(result, "exit_status");
    int status = json_is_integer(es) ? (int)json_integer_value(es) : CLI_OK;
    if (cli->json) {
        print_envelope(json_incref(result), NULL, NULL);
    } else if (c->print != NULL) {
        c->print(result);
    } else if (json_object_size(result) > 0) {
        cli_print_kv(result, 0);
    }
    /* A secret shown once leaves no copy behind in this process. */
    json_decref(result);
    fflush(stdout);
    return status;
}

static int run_words(struct cli *cli, char **w, int n, bool *quit)
{
    if (n == 0)
        return CLI_OK;
    if (strcmp(w[0], "--json") == 0) {
        bool saved = cli->json;
        cli->json = true;
        int rc = run_words(cli, w + 1, n - 1, quit);
        cli->json = saved;
        return rc;
    }
    if (strcmp(w[0], "help") == 0 || strcmp(w[0], "?") == 0) {
        bool known = n == 1;
        for (size_t i = 0; i < NCOMMANDS && !known; i++)
            known = matches(&commands[i], w + 1, n - 1) ||
                    prefix_of(&commands[i], w + 1, n - 1);
        if (!known) {
            char all[256];
            joined(w + 1, n - 1, all, sizeof all);
            return shell_error(cli, CLI_USAGE, "help", "unknown-command",
                               "no command \"%s\"; type help for the list", all);
        }
        if (cli->json)
            print_envelope(help_json(w + 1, n - 1), NULL, NULL);
        else
            help(w + 1, n - 1);
        return CLI_OK;
    }
    if (strcmp(w[0], "exit") == 0 || strcmp(w[0], "quit") == 0 ||
        strcmp(w[0], "logout") == 0) {
        *quit = true;
        if (cli->json)
            print_envelope(NULL, NULL, NULL);
        return CLI_OK;
    }

    const struct cli_cmd *c = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (matches(&commands[i], w, n) &&
            (c == NULL || nwords(&commands[i]) > nwords(c)))
            c = &commands[i];
    if (c == NULL)
        return unknown_command(cli, w, n);
    return exec_command(cli, c, n - nwords(c), w + nwords(c));
}

int cli_run(struct cli *cli, const char *line, bool *quit)
{
    char *w[CLI_MAX_WORDS];
    const char *why = NULL;
    int n = cli_split(line, w, CLI_MAX_WORDS, &why);
    if (n < 0)
        return shell_error(cli, CLI_USAGE, "mmp-cli", "invalid-argument", "%s", why);
    int rc = run_words(cli, w, n, quit);
    cli_words_free(w, n);
    return rc;
}

/* ---- completion -------------------------------------------------------- */

char **cli_complete(char **w, int n, const char *prefix)
{
    bool top = n == 0;
    if (n > 0 && strcmp(w[0], "help") == 0)
        w++, n--;
    size_t cap = NCOMMANDS + 4, k = 0;
    char **out = calloc(cap + 1, sizeof *out);
    if (out == NULL)
        return NULL;
    size_t plen = strlen(prefix);
    if (top) {
        static const char *const extra[] = {"help", "exit"};
        for (size_t i = 0; i < 2; i++)
            if (strncmp(extra[i], prefix, plen) == 0)
                out[k++] = strdup(extra[i]);
    }
    for (size_t i = 0; i < NCOMMANDS && k < cap; i++) {
        if (!prefix_of(&commands[i], w, n))
            continue;
        const char *nw = commands[i].words[n];
        if (strncmp(nw, prefix, plen) != 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = out[j] != NULL && strcmp(out[j], nw) == 0;
        if (!seen)
            out[k++] = strdup(nw);
    }
    if (k == 0) {
        free(out);
        return NULL;
    }
    return out;
}
