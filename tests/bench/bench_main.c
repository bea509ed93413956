/* bench_main.c: xmppd-bench, a load generator for XEP-0114 components.
 *
 * Connects --pairs N pairs of components to the --target addresses,
 * authenticates each (XEP-0114 §3), lets each sender A send numbered,
 * timestamped messages to its receiver B with at most --window W in flight
 * per pair, for --duration seconds or --count messages per pair, waits a
 * --grace period for stragglers, and prints throughput, latency p50/p99/max,
 * lost, out-of-order and duplicate counts as one table row (or JSON).
 * It stops by itself: every phase is bounded in time.  See
 * docs/benchmarks.md. */
#include "bench.h"

#include <getopt.h>
#include <sys/resource.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS 10000
#define MAX_WINDOW 65536
#define MAX_SIZE 200000 /* under the daemon's 256 KiB stanza limit */
#define MAX_CONNECTING 64

enum { EXIT_MEASURED = 0, EXIT_USAGE = 2, EXIT_NO_MEASUREMENT = 3 };

static void usage(FILE *f)
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
        "  --allow-remote       allow non-loopback targets\n",
        f);
}

/* ---- report ----------------------------------------------------------- */

static void print_header(void)
{
    printf("%-16s %5s %6s %6s %9s %9s %9s %8s %8s %8s %7s %6s %5s %5s %4s %5s\n", "run",
           "pairs", "window", "size", "sent", "recv", "msg/s", "p50_us", "p99_us",
           "max_us", "gap_ms", "lost", "ooo", "dup", "err", "cpu%");
}

static void print_json(FILE *f, struct bench *b, const char *label, double secs,
                       double rate, const double lat[4], uint64_t lost, uint64_t ooo,
                       uint64_t dup, uint64_t stalls, double cpu, double gap_ms)
{
    fprintf(f, "{\"label\":\"");
    for (const char *p = label; *p; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            fputc(*p, f);
    fprintf(f,
            "\",\"targets\":%u,\"pairs\":%u,\"window\":%u,\"size\":%u,"
            "\"seconds\":%.3f,\"sent\":%" PRIu64 ",\"received\":%" PRIu64
            ",\"msg_per_s\":%.1f,\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,"
            "\"max\":%.1f,\"mean\":%.1f},\"lost\":%" PRIu64 ",\"out_of_order\":%" PRIu64
            ",\"duplicates\":%" PRIu64 ",\"error_stanzas\":%" PRIu64
            ",\"connection_failures\":%" PRIu64 ",\"unparsable\":%" PRIu64
            ",\"window_stalls\":%" PRIu64 ",\"max_gap_ms\":%.1f,\"reconnects\":%" PRIu64
            ",\"failed_reconnects\":%" PRIu64
            ",\"bench_cpu_pct\":%.0f,\"setup_ms\":%.1f}\n",
            b->o.ntargets, b->o.pairs, b->o.window, b->o.size, secs, b->total_sent,
            b->total_received, rate, lat[0], lat[1], lat[2], lat[3], lost, ooo, dup,
            b->errors, b->conn_failures, b->bad, stalls, gap_ms, b->reconnects,
            b->retry_failures, cpu,
            b->t_start > b->t_setup0 ? (double)(b->t_start - b->t_setup0) / 1e6 : 0.0);
}

static void report(struct bench *b, int no_header)
{
    uint64_t ooo = 0, dup = 0, stalls = 0, gap = 0;
    for (unsigned i = 0; i < b->o.pairs; i++) {
        /* Longest time without a delivery, counting a pair that went silent
         * until the end of sending. */
        struct bench_pair *p = &b->pairs[i];
        uint64_t g = p->max_gap, stop = b->t_stop_sending ? b->t_stop_sending : b->t_end;
        if (stop > p->last_recv_at && stop - p->last_recv_at > g)
            g = stop - p->last_recv_at;
        if (g > gap)
            gap = g;
        stalls += b->pairs[i].stalls;
        ooo += b->pairs[i].out_of_order;
        dup += b->pairs[i].duplicates;
    }
    uint64_t lost = b->total_sent - b->total_received;
    double secs =
        b->t_last_recv > b->t_start ? (double)(b->t_last_recv - b->t_start) / 1e9 : 0.0;
    double rate = secs > 0 ? (double)b->total_received / secs : 0.0;
    double p50 = (double)bench_hist_quantile(&b->lat, 0.50) / 1e3;
    double p99 = (double)bench_hist_quantile(&b->lat, 0.99) / 1e3;
    double mx = (double)bench_hist_quantile(&b->lat, 1.0) / 1e3;
    double mean = b->lat.count ? b->lat.sum / (double)b->lat.count / 1e3 : 0.0;
    uint64_t err = b->errors + b->conn_failures + b->bad;
    char label[64];
    if (b->o.label)
        snprintf(label, sizeof(label), "%s", b->o.label);
    else
        snprintf(label, sizeof(label), "%u node%s", b->o.ntargets,
                 b->o.ntargets > 1 ? "s" : "");

    double lat[4] = {p50, p99, mx, mean};
    double gap_ms = (double)gap / 1e6;
    double wall_us = b->t_end > b->t_start ? (double)(b->t_end - b->t_start) / 1e3 : 0.0;
    double cpu = wall_us > 0 && b->cpu_end_us >= b->cpu_start_us
                     ? 100.0 * (double)(b->cpu_end_us - b->cpu_start_us) / wall_us
                     : 0.0;
    if (b->o.json_out) {
        FILE *f = fopen(b->o.json_out, "a");
        if (f == NULL) {
            perror(b->o.json_out);
        } else {
            print_json(f, b, label, secs, rate, lat, lost, ooo, dup, stalls, cpu, gap_ms);
            fclose(f);
        }
    }
    if (b->o.json) {
        print_json(stdout, b, label, secs, rate, lat, lost, ooo, dup, stalls, cpu,
                   gap_ms);
        return;
    }
    if (!no_header)
        print_header();
    printf("%-16s %5u %6u %6u %9" PRIu64 " %9" PRIu64
           " %9.0f %8.0f %8.0f %8.0f %7.1f %6" PRIu64 " %5" PRIu64 " %5" PRIu64
           " %4" PRIu64 " %5.0f\n",
           label, b->o.pairs, b->o.window, b->o.size, b->total_sent, b->total_received,
           rate, p50, p99, mx, gap_ms, lost, ooo, dup, err, cpu);
}

static uint64_t cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static struct bench_conn *conn_at(struct bench *b, unsigned k)
{
    struct bench_pair *p = &b->pairs[k / 2];
    return k % 2 ? &p->b : &p->a;
}

/* ---- phases ----------------------------------------------------------- */

static void close_aux(struct bench *b)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&b->timer, (uv_handle_t *)&b->deadline,
                         (uv_handle_t *)&b->sigint, (uv_handle_t *)&b->stall_timer,
                         (uv_handle_t *)&b->retry_timer};
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
}

static void on_final_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    for (unsigned i = 0; i < b->o.pairs; i++) {
        bench_conn_abort(&b->pairs[i].a);
        bench_conn_abort(&b->pairs[i].b);
    }
    if (b->open_conns == 0)
        close_aux(b);
}

/* Ends the run: closes every stream, then every handle. */
static void done(struct bench *b)
{
    if (b->phase == BENCH_PHASE_DONE)
        return;
    b->phase = BENCH_PHASE_DONE;
    b->t_end = uv_hrtime();
    b->cpu_end_us = cpu_us();
    uv_timer_stop(&b->deadline);
    uv_timer_stop(&b->stall_timer);
    uv_timer_stop(&b->retry_timer);
    for (unsigned k = 0; k < b->nconns; k++) {
        struct bench_conn *c = conn_at(b, k);
        if (c->reconnect_pending && !c->handle_open)
            c->st = BENCH_CONN_CLOSED;
        c->reconnect_pending = 0;
    }
    b->reconnecting = 0;
    for (unsigned i = 0; i < b->o.pairs; i++) {
        bench_conn_finish(&b->pairs[i].a);
        bench_conn_finish(&b->pairs[i].b);
    }
    if (b->open_conns == 0) {
        close_aux(b);
        return;
    }
    /* Give the server a moment to close its side (RFC 6120 §4.4). */
    uv_timer_start(&b->timer, on_final_timer, 1000, 0);
}

static void on_grace_timer(uv_timer_t *t)
{
    done(t->data);
}

static void stop_sending(struct bench *b)
{
    if (b->phase != BENCH_PHASE_RUN)
        return;
    b->phase = BENCH_PHASE_DRAIN;
    b->t_stop_sending = uv_hrtime();
    if (b->total_received == b->total_sent) {
        done(b);
        return;
    }
    uv_timer_start(&b->timer, on_grace_timer, (uint64_t)(b->o.grace * 1000), 0);
}

static void on_run_timer(uv_timer_t *t)
{
    stop_sending(t->data);
}

static void on_retry_timer(uv_timer_t *t);

static void on_stall_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->phase == BENCH_PHASE_RUN)
        bench_check_stalls(b, uv_hrtime());
}

static void start_run(struct bench *b)
{
    b->phase = BENCH_PHASE_RUN;
    b->t_start = uv_hrtime();
    b->cpu_start_us = cpu_us();
    uv_timer_stop(&b->timer);
    if (b->o.count == 0)
        uv_timer_start(&b->timer, on_run_timer, (uint64_t)(b->o.duration * 1000), 0);
    for (unsigned i = 0; i < b->o.pairs; i++)
        b->pairs[i].last_recv_at = b->t_start;
    if (b->o.reconnect)
        uv_timer_start(&b->retry_timer, on_retry_timer, 20, 20);
    uint64_t tick = (uint64_t)(b->o.stall * 250);
    uv_timer_start(&b->stall_timer, on_stall_timer, tick ? tick : 1, tick ? tick : 1);
    for (unsigned i = 0; i < b->o.pairs; i++)
        bench_pair_pump(b, &b->pairs[i]);
    bench_on_progress(b);
}

static void on_setup_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->phase != BENCH_PHASE_SETUP)
        return;
    b->failed = 1;
    snprintf(b->fail_msg, sizeof(b->fail_msg),
             "setup timed out: %u of %u components authenticated", b->ready, b->nconns);
    done(b);
}

static void on_deadline(uv_timer_t *t)
{
    struct bench *b = t->data;
    fprintf(stderr, "xmppd-bench: --max-time reached\n");
    if (b->phase == BENCH_PHASE_SETUP)
        on_setup_timer(&b->timer);
    else if (b->phase == BENCH_PHASE_RUN)
        stop_sending(b);
    else
        done(b);
}

static void on_sigint(uv_signal_t *s, int signum)
{
    struct bench *b = s->data;
    (void)signum;
    fprintf(stderr, "xmppd-bench: interrupted\n");
    if (b->phase == BENCH_PHASE_SETUP) {
        b->failed = 1;
        snprintf(b->fail_msg, sizeof(b->fail_msg), "interrupted during setup");
    }
    done(b);
}

static void connect_more(struct bench *b)
{
    while (b->phase == BENCH_PHASE_SETUP && b->connecting < MAX_CONNECTING &&
           b->next_connect < b->nconns) {
        struct bench_conn *c = conn_at(b, b->next_connect++);
        int rc = bench_conn_start(c);
        if (rc < 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "cannot connect: %s", uv_strerror(rc));
            bench_on_conn_failed(b, c, msg);
            return;
        }
        b->connecting++;
    }
}

void bench_on_ready(struct bench *b, struct bench_conn *c)
{
    if (b->phase != BENCH_PHASE_SETUP) {
        /* A reconnect (--reconnect) during the run: what the pair had in
         * flight went down with the old connection or will arrive late. */
        c->retries = 0;
        b->reconnects++;
        bench_pair_release(c->pair, uv_hrtime());
        bench_pair_pump(b, c->pair);
        return;
    }
    b->connecting--;
    b->ready++;
    if (b->ready == b->nconns)
        start_run(b);
    else
        connect_more(b);
}

void bench_on_conn_failed(struct bench *b, struct bench_conn *c, const char *what)
{
    int was_ready = c->st == BENCH_CONN_READY;

    bench_conn_abort(c);
    if (b->phase == BENCH_PHASE_SETUP) {
        b->failed = 1;
        snprintf(b->fail_msg, sizeof(b->fail_msg), "%s (%s): %s", c->name, c->target,
                 what);
        done(b);
        return;
    }
    if (b->phase == BENCH_PHASE_DONE)
        return;
    /* A lost session counts once; failed reconnect attempts are reported
     * only once per outage. */
    if (was_ready || c->retries == 0)
        fprintf(stderr, "xmppd-bench: %s (%s): %s\n", c->name, c->target, what);
    if (was_ready)
        b->conn_failures++;
    else
        b->retry_failures++;
    if (b->o.reconnect && !c->reconnect_pending) {
        /* First retry at once (to the next target); then every 100 ms. */
        c->reconnect_pending = 1;
        c->retry_at = uv_hrtime() + (was_ready ? 0 : 100000000ull);
        if (!was_ready)
            c->retries++;
        b->reconnecting++;
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    uint64_t now = uv_hrtime();
    if (b->phase != BENCH_PHASE_RUN && b->phase != BENCH_PHASE_DRAIN)
        return;
    for (unsigned k = 0; k < b->nconns; k++) {
        struct bench_conn *c = conn_at(b, k);
        if (!c->reconnect_pending || c->handle_open || now < c->retry_at)
            continue;
        c->reconnect_pending = 0;
        b->reconnecting--;
        bench_conn_retarget(b, c, (c->target_idx + 1) % b->o.ntargets);
        int rc = bench_conn_start(c);
        if (rc < 0)
            bench_on_conn_failed(b, c, uv_strerror(rc));
        else if (c->retries == 0)
            fprintf(stderr, "xmppd-bench: %s reconnecting to %s\n", c->name, c->target);
    }
}

void bench_on_closed(struct bench *b, struct bench_conn *c)
{
    (void)c;
    b->open_conns--;
    if (b->phase == BENCH_PHASE_DONE && b->open_conns == 0) {
        uv_timer_stop(&b->timer);
        close_aux(b);
    } else if (b->phase != BENCH_PHASE_DONE && b->open_conns == 0 &&
               b->phase != BENCH_PHASE_SETUP && b->reconnecting == 0) {
        done(b); /* every connection is gone: nothing more to measure */
    }
}

void bench_on_progress(struct bench *b)
{
    if (b->phase == BENCH_PHASE_RUN && b->o.count &&
        b->total_sent == b->o.count * b->o.pairs)
        stop_sending(b);
    if (b->phase == BENCH_PHASE_DRAIN && b->total_received == b->total_sent) {
        uv_timer_stop(&b->timer);
        done(b);
    }
}

/* ---- set-up ----------------------------------------------------------- */

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

static int parse_args(struct bench *b, int argc, char **argv)
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v;
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
        case 'h':
            usage(stdout);
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
        o->max_time = o->count ? 60 : o->connect_timeout + o->duration + o->grace + 5;
    return no_header;
}

/* Sets up the pairs and the loop; returns 0 or -1 (message printed). */
static int setup(struct bench *b)
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
    b->loop = uv_default_loop();
    uv_timer_init(b->loop, &b->timer);
    uv_timer_init(b->loop, &b->deadline);
    uv_timer_init(b->loop, &b->stall_timer);
    uv_timer_init(b->loop, &b->retry_timer);
    b->retry_timer.data = b;
    uv_signal_init(b->loop, &b->sigint);
    b->timer.data = b->deadline.data = b->sigint.data = b->stall_timer.data = b;
    uv_signal_start(&b->sigint, on_sigint, SIGINT);
    return 0;
}

static void cleanup(struct bench *b)
{
    if (b->pairs) {
        for (unsigned i = 0; i < b->o.pairs; i++) {
            free(b->pairs[i].seen);
            free(b->pairs[i].a.secret_owned);
            free(b->pairs[i].b.secret_owned);
            bench_scan_free(&b->pairs[i].a.scan);
            bench_scan_free(&b->pairs[i].b.scan);
        }
    }
    for (size_t i = 0; i < b->nsecrets; i++) {
        free(b->secret_names[i]);
        free(b->secret_values[i]);
    }
    free(b->secret_names);
    free(b->secret_values);
    free(b->pairs);
    free(b->addrs);
    free(b->domain_owned);
    free(b->o.targets);
    if (b->loop)
        uv_loop_close(b->loop);
}

int main(int argc, char **argv)
{
    static struct bench bench; /* large (histogram): not on the stack */
    struct bench *b = &bench;
    int rc = EXIT_USAGE;

    int no_header = parse_args(b, argc, argv);
    if (no_header < 0) {
        usage(stderr);
        goto out;
    }
    if (b->o.header) {
        print_header();
        rc = EXIT_MEASURED;
        goto out;
    }
    if (setup(b) < 0)
        goto out;
    b->phase = BENCH_PHASE_SETUP;
    b->t_setup0 = uv_hrtime();
    uv_timer_start(&b->timer, on_setup_timer, (uint64_t)(b->o.connect_timeout * 1000), 0);
    uv_timer_start(&b->deadline, on_deadline, (uint64_t)(b->o.max_time * 1000), 0);
    connect_more(b);
    uv_run(b->loop, UV_RUN_DEFAULT);
    if (b->failed) {
        fprintf(stderr, "xmppd-bench: no measurement: %s\n", b->fail_msg);
        rc = EXIT_NO_MEASUREMENT;
        goto out;
    }
    report(b, no_header);
    if (b->conn_failures)
        fprintf(stderr, "xmppd-bench: %" PRIu64 " connection(s) lost during the run\n",
                b->conn_failures);
    rc = EXIT_MEASURED;
out:
    fflush(stdout);
    cleanup(b);
    return rc;
}
