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

#include <sys/resource.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNECTING 64

enum { EXIT_MEASURED = 0, EXIT_USAGE = 2, EXIT_NO_MEASUREMENT = 3 };

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
    if (b->o.started_file != NULL) {
        FILE *f = fopen(b->o.started_file, "w");
        if (f != NULL)
            fclose(f);
        else
            fprintf(stderr, "xmppd-bench: cannot create %s\n", b->o.started_file);
    }
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

static void on_settle_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->phase == BENCH_PHASE_SETUP)
        start_run(b);
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
    if (b->ready == b->nconns && b->o.settle > 0)
        uv_timer_start(&b->timer, on_settle_timer, (uint64_t)(b->o.settle * 1000), 0);
    else if (b->ready == b->nconns)
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

/* Sets up the pairs and the loop; returns 0 or -1 (message printed). */
static int setup(struct bench *b)
{
    if (bench_opts_resolve(b) < 0)
        return -1;
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

    int no_header = bench_opts_parse(b, argc, argv);
    if (no_header < 0) {
        bench_opts_usage(stderr);
        goto out;
    }
    if (b->o.header) {
        bench_report_header();
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
    bench_report(b, no_header);
    if (b->conn_failures)
        fprintf(stderr, "xmppd-bench: %" PRIu64 " connection(s) lost during the run\n",
                b->conn_failures);
    rc = EXIT_MEASURED;
out:
    fflush(stdout);
    cleanup(b);
    return rc;
}
