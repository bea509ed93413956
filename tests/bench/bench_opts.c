/* bench_opts.c: xmppd-bench's command line, its targets and its secrets.
 * Targets must be numeric loopback addresses unless --allow-remote: the
 * tool connects to nothing else.  Secrets come from --secrets-file (the
 * xmppd.conf format), --secret or --secret-prefix and are never printed. */
#include "bench.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS 10000
#define MAX_WINDOW 65536
#define MAX_SIZE 200000 /* under the daemon's 256 KiB stanza limit */

void bench_opts_usage(FILE *f)
{
    fputs(
        "usage: xmppd-bench --target HOST:PORT [--target ...] [options]\n"
        "  --target HOST:PORT   a node's component listener (numeric address;\n"
        "                       repeatable: connections are spread over targets)\n"
        "  --pairs N            sender/receiver pairs (default 1)\n"
        "  --window W           messages in flight per pair (default 1)\n"
        "  --size BYTES         body size (default 100)\n"
        "  --duration SECONDS   send for this long (default 5)\n"
        "  --count N            or send N messages per pair\n"
        "  --grace SECONDS      wait for stragglers before counting losses (default 2)\n"
        "  --stall SECONDS      give up a pair's in-flight messages when none arrives\n"
        "                       for this long, so that a loss cannot stop the pair\n"
        "                       (they count as lost unless they arrive; default 2)\n"
        "  --domain D           the node's domain (default: from --secrets-file)\n"
        "  --secrets-file F     read 'domain' and 'callbridge NAME SECRET' lines\n"
        "                       (the xmppd.conf format)\n"
        "  --secret S           one secret for every component\n"
        "  --secret-prefix P    the secret of component NAME is P followed by NAME\n"
        "  --name-prefix P      components are Pa1, Pb1, Pa2, ... (default bench-)\n"
        "  --placement cross|same  with several targets: put a pair's two ends on\n"
        "                       different targets (cross, default) or the same one\n"
        "  --label TEXT         first column of the row (default: 1 node / N nodes)\n"
        "  --json               print one JSON object instead of a table row\n"
        "  --no-header          print the row without the header line\n"
        "  --header             print the header line only and exit\n"
        "  --connect-timeout S  time allowed to connect and authenticate (default 10)\n"
        "  --max-time S         hard cap on the whole run (default: derived)\n"
        "  --allow-remote       allow non-loopback targets\n"
        "  --reconnect          reconnect a lost component to the next target\n"
        "  --settle SECONDS     wait this long after every component is\n"
        "                       authenticated before sending (default 0; lets a\n"
        "                       cluster's leader learn where the components are)\n"
        "  --started-file F     create F when sending starts (for scripts)\n",
        f);
}

static int parse_uint(const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_secs(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* Parses "a.b.c.d:port" or "[v6]:port"; refuses anything else. */
static int parse_target(const char *t, int allow_remote, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon = strrchr(t, ':');
    unsigned long long port;

    if (colon == NULL || parse_uint(colon + 1, 1, 65535, &port) < 0)
        return -1;
    size_t hl = (size_t)(colon - t);
    if (hl >= 2 && t[0] == '[' && t[hl - 1] == ']') {
        if (hl - 2 >= sizeof(host))
            return -1;
        memcpy(host, t + 1, hl - 2);
        host[hl - 2] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (uv_ip6_addr(host, (int)port, a6) < 0)
            return -1;
        static const unsigned char lo6[16] = {[15] = 1};
        if (!allow_remote && memcmp(&a6->sin6_addr, lo6, 16) != 0)
            return -2;
        return 0;
    }
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, t, hl);
    host[hl] = '\0';
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (uv_ip4_addr(host, (int)port, a4) < 0)
        return -1;
    if (!allow_remote && ((const unsigned char *)&a4->sin_addr)[0] != 127)
        return -2;
    return 0;
}

/* Reads 'domain D' and 'callbridge NAME SECRET' lines of an xmppd.conf;
 * other directives are ignored. */
static int load_secrets(struct bench *b, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int rc = -1;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *save = NULL;
        char *w0 = strtok_r(line, " \t\r\n", &save);
        if (w0 == NULL || w0[0] == '#')
            continue;
        char *w1 = strtok_r(NULL, " \t\r\n", &save);
        char *w2 = strtok_r(NULL, " \t\r\n", &save);
        if (strcmp(w0, "domain") == 0 && w1 && b->domain_owned == NULL) {
            if ((b->domain_owned = strdup(w1)) == NULL)
                goto out;
        } else if (strcmp(w0, "callbridge") == 0 && w1 && w2) {
            char **nn = realloc(b->secret_names, (b->nsecrets + 1) * sizeof(char *));
            if (nn == NULL)
                goto out;
            b->secret_names = nn;
            char **nv = realloc(b->secret_values, (b->nsecrets + 1) * sizeof(char *));
            if (nv == NULL)
                goto out;
            b->secret_values = nv;
            nn[b->nsecrets] = strdup(w1);
            nv[b->nsecrets] = strdup(w2);
            b->nsecrets++;
            if (nn[b->nsecrets - 1] == NULL || nv[b->nsecrets - 1] == NULL)
                goto out;
        }
    }
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "xmppd-bench: out of memory reading %s\n", path);
    fclose(f);
    return rc;
}

static int secret_for(struct bench *b, struct bench_conn *c)
{
    for (size_t i = 0; i < b->nsecrets; i++)
        if (strcmp(b->secret_names[i], c->name) == 0) {
            c->secret = b->secret_values[i];
            return 0;
        }
    if (b->o.secret_prefix) {
        size_t n = strlen(b->o.secret_prefix) + strlen(c->name) + 1;
        if ((c->secret_owned = malloc(n)) == NULL)
            return -1;
        snprintf(c->secret_owned, n, "%s%s", b->o.secret_prefix, c->name);
        c->secret = c->secret_owned;
        return 0;
    }
    if (b->o.secret) {
        c->secret = b->o.secret;
        return 0;
    }
    fprintf(stderr, "xmppd-bench: no secret for component %s\n", c->name);
    return -1;
}

/* One case per option: long, but flat. */
int bench_opts_parse(struct bench *b, int argc, char **argv)
{
    struct bench_opts *o = &b->o;
    static const struct option lopts[] = {
        {"target", required_argument, NULL, 't'},
        {"pairs", required_argument, NULL, 'p'},
        {"window", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'n'},
        {"grace", required_argument, NULL, 'g'},
        {"stall", required_argument, NULL, 'T'},
        {"domain", required_argument, NULL, 'D'},
        {"secrets-file", required_argument, NULL, 'f'},
        {"secret", required_argument, NULL, 'S'},
        {"secret-prefix", required_argument, NULL, 'P'},
        {"name-prefix", required_argument, NULL, 'N'},
        {"placement", required_argument, NULL, 'L'},
        {"label", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"json-out", required_argument, NULL, 'J'},
        {"no-header", no_argument, NULL, 'H'},
        {"header", no_argument, NULL, 'h' + 256},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"max-time", required_argument, NULL, 'm'},
        {"allow-remote", no_argument, NULL, 'R'},
        {"reconnect", no_argument, NULL, 'r'},
        {"settle", required_argument, NULL, 'e'},
        {"started-file", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v = 0;
    int opt, no_header = 0;

    o->pairs = 1;
    o->window = 1;
    o->size = 100;
    o->duration = 5;
    o->grace = 2;
    o->stall = 2;
    o->connect_timeout = 10;
    o->name_prefix = "bench-";
    o->cross = 1;
    if ((o->targets = calloc((size_t)argc, sizeof(char *))) == NULL)
        return -1;
    while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 't':
            o->targets[o->ntargets++] = optarg;
            break;
        case 'p':
            bad = parse_uint(optarg, 1, MAX_PAIRS, &v);
            o->pairs = (unsigned)v;
            break;
        case 'w':
            bad = parse_uint(optarg, 1, MAX_WINDOW, &v);
            o->window = (unsigned)v;
            break;
        case 's':
            bad = parse_uint(optarg, 1, MAX_SIZE, &v);
            o->size = (unsigned)v;
            break;
        case 'n':
            bad = parse_uint(optarg, 1, 1000000000ULL, &v);
            o->count = v;
            break;
        case 'd':
            bad = parse_secs(optarg, 0.01, 3600, &o->duration);
            break;
        case 'g':
            bad = parse_secs(optarg, 0, 600, &o->grace);
            break;
        case 'T':
            bad = parse_secs(optarg, 0.01, 600, &o->stall);
            break;
        case 'c':
            bad = parse_secs(optarg, 0.1, 600, &o->connect_timeout);
            break;
        case 'm':
            bad = parse_secs(optarg, 0.1, 7200, &o->max_time);
            break;
        case 'D':
            o->domain = optarg;
            break;
        case 'f':
            o->secrets_file = optarg;
            break;
        case 'S':
            o->secret = optarg;
            break;
        case 'P':
            o->secret_prefix = optarg;
            break;
        case 'N':
            o->name_prefix = optarg;
            bad = strlen(optarg) > 40 || strpbrk(optarg, "<>&'\" \t") != NULL;
            break;
        case 'L':
            bad = strcmp(optarg, "cross") != 0 && strcmp(optarg, "same") != 0;
            o->cross = strcmp(optarg, "cross") == 0;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'J':
            o->json_out = optarg;
            break;
        case 'H':
            no_header = 1;
            break;
        case 'h' + 256:
            o->header = 1;
            break;
        case 'R':
            o->allow_remote = 1;
            break;
        case 'r':
            o->reconnect = 1;
            break;
        case 'e':
            bad = parse_secs(optarg, 0, 60, &o->settle);
            break;
        case 'F':
            o->started_file = optarg;
            break;
        case 'h':
            bench_opts_usage(stdout);
            exit(0);
        default:
            return -1;
        }
        if (bad) {
            fprintf(stderr, "xmppd-bench: bad option value: %s\n", optarg);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "xmppd-bench: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->header)
        return no_header;
    if (o->ntargets == 0) {
        fprintf(stderr, "xmppd-bench: give at least one --target HOST:PORT\n");
        return -1;
    }
    if (o->max_time == 0)
        o->max_time =
            o->settle + (o->count ? 60 : o->connect_timeout + o->duration + o->grace + 5);
    return no_header;
}

int bench_opts_resolve(struct bench *b)
{
    struct bench_opts *o = &b->o;

    if ((b->addrs = calloc(o->ntargets, sizeof(*b->addrs))) == NULL)
        return -1;
    for (unsigned i = 0; i < o->ntargets; i++) {
        int rc = parse_target(o->targets[i], o->allow_remote, &b->addrs[i]);
        if (rc == -2)
            fprintf(stderr,
                    "xmppd-bench: %s is not a loopback address (--allow-remote)\n",
                    o->targets[i]);
        else if (rc < 0)
            fprintf(stderr,
                    "xmppd-bench: bad target %s (want 127.0.0.1:5223 or [::1]:5223)\n",
                    o->targets[i]);
        if (rc < 0)
            return -1;
    }
    if (o->secrets_file && load_secrets(b, o->secrets_file) < 0)
        return -1;
    if (o->domain == NULL)
        o->domain = b->domain_owned;
    if (o->domain == NULL || strpbrk(o->domain, "<>&'\" \t") != NULL) {
        fprintf(stderr,
                "xmppd-bench: give --domain (or a secrets file with a domain line)\n");
        return -1;
    }
    if ((b->pairs = calloc(o->pairs, sizeof(*b->pairs))) == NULL)
        return -1;
    b->nconns = 2 * o->pairs;
    for (unsigned i = 0; i < o->pairs; i++) {
        struct bench_pair *p = &b->pairs[i];
        char name[64];
        unsigned ta = o->cross ? (2 * i) % o->ntargets : i % o->ntargets;
        unsigned tb = o->cross ? (2 * i + 1) % o->ntargets : ta;
        p->idx = i;
        snprintf(name, sizeof(name), "%sa%u", o->name_prefix, i + 1);
        bench_conn_prepare(b, &p->a, p, 0, name, ta);
        snprintf(name, sizeof(name), "%sb%u", o->name_prefix, i + 1);
        bench_conn_prepare(b, &p->b, p, 1, name, tb);
        if (secret_for(b, &p->a) < 0 || secret_for(b, &p->b) < 0)
            return -1;
    }
    return 0;
}
