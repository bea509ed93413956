/* bench_report.c: the result of a run, as one table row or one JSON
 * object: throughput, latency quantiles, losses, order, errors. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>

void bench_report_header(void)
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
            ",\"misrouted\":%" PRIu64 ",\"window_stalls\":%" PRIu64
            ",\"max_gap_ms\":%.1f,\"reconnects\":%" PRIu64
            ",\"failed_reconnects\":%" PRIu64
            ",\"bench_cpu_pct\":%.0f,\"setup_ms\":%.1f}\n",
            b->o.ntargets, b->o.pairs, b->o.window, b->o.size, secs, b->total_sent,
            b->total_received, rate, lat[0], lat[1], lat[2], lat[3], lost, ooo, dup,
            b->errors, b->conn_failures, b->bad, b->misrouted, stalls, gap_ms,
            b->reconnects, b->retry_failures, cpu,
            b->t_start > b->t_setup0 ? (double)(b->t_start - b->t_setup0) / 1e6 : 0.0);
}

void bench_report(struct bench *b, int no_header)
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
    uint64_t err = b->errors + b->conn_failures + b->bad + b->misrouted;
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
        bench_report_header();
    printf("%-16s %5u %6u %6u %9" PRIu64 " %9" PRIu64
           " %9.0f %8.0f %8.0f %8.0f %7.1f %6" PRIu64 " %5" PRIu64 " %5" PRIu64
           " %4" PRIu64 " %5.0f\n",
           label, b->o.pairs, b->o.window, b->o.size, b->total_sent, b->total_received,
           rate, p50, p99, mx, gap_ms, lost, ooo, dup, err, cpu);
}
