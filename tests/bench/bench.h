/* bench.h: shared state of xmppd-bench, the XEP-0114 component load generator.
 *
 * One process, one libuv loop, N pairs of components.  In each pair the
 * sender A sends numbered, timestamped messages to the receiver B; B's read
 * side updates the pair's counters directly (same process), which opens the
 * sender's window again.  Modules:
 *   bench_main.c   the run's phases (set-up, run, drain, done)
 *   bench_opts.c   command line, targets, secrets
 *   bench_report.c table row and JSON
 *   bench_conn.c   one TCP connection: XEP-0114 §3 handshake, send, receive
 *   bench_scan.c   incremental scanner for top-level elements of a stream
 *   bench_stats.c  latency histogram (log-linear, fixed memory)
 * The tool is not part of the daemon: it only ever talks to the addresses it
 * was given on the command line. */
#ifndef XMPPD_BENCH_H
#define XMPPD_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

/* ---- scanner (bench_scan.c) ------------------------------------------- */

enum bench_ev {
    BENCH_EV_MORE = 0,   /* need more bytes */
    BENCH_EV_HEADER = 1, /* <stream:stream ...> opening tag */
    BENCH_EV_STANZA = 2, /* a complete top-level element */
    BENCH_EV_END = 3,    /* </stream:stream> */
};

/* Incremental scanner over a growable byte buffer.  The read side appends
 * bytes at buf + len (see bench_scan_room()); bench_scan_next() hands out
 * complete top-level elements, which stay valid until the next
 * bench_scan_room() call. */
struct bench_scan {
    char *buf;
    size_t len; /* bytes held */
    size_t cap;
    size_t pos;      /* bytes consumed */
    size_t max_elem; /* an element larger than this is an error */
};

/* A complete element in the scan buffer (borrowed pointers). */
struct bench_elem {
    const char *p; /* first byte, '<' */
    size_t len;    /* through the final '>' */
    const char *name;
    size_t name_len;
};

/* Initializes a scanner that refuses elements larger than max_elem bytes. */
void bench_scan_init(struct bench_scan *s, size_t max_elem);
/* Frees the buffer. */
void bench_scan_free(struct bench_scan *s);
/* Drops consumed bytes and makes at least `want` bytes of room after
 * buf + len; returns 0 or -1 on out of memory.  Invalidates elements. */
int bench_scan_room(struct bench_scan *s, size_t want);
/* Returns the next event (enum bench_ev) and fills *e for HEADER and STANZA,
 * or -1 when the bytes are not XML this tool understands (DTD, oversized
 * element, stray end tag). */
int bench_scan_next(struct bench_scan *s, struct bench_elem *e);
/* Copies the value of attribute `name` of the element's start tag into out
 * (NUL-terminated, the five predefined entities decoded).  Returns its
 * length, or -1 when absent or longer than cap - 1. */
int bench_elem_attr(const struct bench_elem *e, const char *name, char *out, size_t cap);
/* Returns 1 when the element's name is `name`, else 0. */
int bench_elem_is(const struct bench_elem *e, const char *name);
/* Points *text at the character data of the first child element <child>
 * (raw, not decoded) and returns its length, or -1 when absent. */
long bench_elem_child_text(const struct bench_elem *e, const char *child,
                           const char **text);

/* ---- latency statistics (bench_stats.c) ------------------------------- */

#define BENCH_HIST_SUB 64
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB * 60)

struct bench_hist {
    uint64_t count;
    uint64_t max;
    uint64_t min;
    double sum;
    uint64_t bucket[BENCH_HIST_BUCKETS];
};

/* Records one value (nanoseconds). */
void bench_hist_add(struct bench_hist *h, uint64_t v);
/* Returns the value at quantile q (0..1), within 1/64 relative error; exact
 * for the maximum (q == 1).  0 when empty. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* ---- the run ---------------------------------------------------------- */

enum bench_conn_state {
    BENCH_CONN_IDLE,
    BENCH_CONN_CONNECTING,
    BENCH_CONN_HEADER_SENT,    /* waiting for the server's stream header */
    BENCH_CONN_HANDSHAKE_SENT, /* waiting for <handshake/> */
    BENCH_CONN_READY,
    BENCH_CONN_CLOSING,
    BENCH_CONN_CLOSED,
};

struct bench;
struct bench_pair;

struct bench_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct bench *b;
    struct bench_pair *pair;
    int is_receiver;
    enum bench_conn_state st;
    int handle_open; /* tcp initialized and not yet closed */
    const struct sockaddr *addr;
    const char *target; /* "host:port", for messages */
    unsigned target_idx;
    int reconnect_pending; /* --reconnect: start again at retry_at */
    unsigned retries;      /* failed attempts since the last success */
    uint64_t retry_at;     /* ns */
    char name[64];         /* call-bridge name, e.g. bench-a1 */
    char jid[320];         /* name.domain */
    const char *secret;    /* borrowed from struct bench, or secret_owned */
    char *secret_owned;    /* --secret-prefix + name */
    struct bench_scan scan;
};

struct bench_pair {
    unsigned idx;
    struct bench_conn a; /* sender */
    struct bench_conn b; /* receiver */
    uint64_t sent;       /* messages written so far; next seq = sent */
    uint64_t received;   /* unique messages received */
    uint64_t highest;    /* highest seq received + 1 (0: none yet) */
    uint64_t out_of_order;
    uint64_t duplicates;
    uint64_t released;       /* given up (in flight > --stall), not received yet */
    uint64_t released_below; /* every unseen seq below this was given up */
    uint64_t last_progress;  /* ns: last receive or release */
    uint64_t stalls;         /* times the window was given up */
    uint64_t last_recv_at;   /* ns; t_start before the first receive */
    uint64_t max_gap;        /* ns: longest time without a receive */
    uint8_t *seen;           /* bitmap of received seqs */
    uint64_t seen_bits;
};

struct bench_opts {
    char **targets; /* "host:port" strings, borrowed from argv */
    unsigned ntargets;
    unsigned pairs;
    unsigned window;
    unsigned size;
    uint64_t count; /* per pair; 0: run for duration */
    double duration;
    double grace;
    double stall;
    double connect_timeout;
    double max_time;
    const char *domain;
    const char *secret;
    const char *secret_prefix;
    const char *secrets_file;
    const char *name_prefix;
    const char *label;
    int cross; /* 1: spread each pair's two ends over different targets */
    int json;
    const char *json_out; /* also append the JSON object to this file */
    int header;
    int allow_remote;
    int reconnect;            /* reconnect a lost component to the next target */
    double settle;            /* seconds between the last authentication and sending */
    const char *started_file; /* created when sending starts; borrowed */
};

enum bench_phase {
    BENCH_PHASE_SETUP,
    BENCH_PHASE_RUN,
    BENCH_PHASE_DRAIN,
    BENCH_PHASE_DONE,
};

struct bench {
    uv_loop_t *loop;
    struct bench_opts o;
    struct sockaddr_storage *addrs; /* one per target */
    struct bench_pair *pairs;
    char *domain_owned;
    char **secret_names; /* from --secrets-file */
    char **secret_values;
    size_t nsecrets;
    enum bench_phase phase;
    unsigned nconns;
    unsigned next_connect; /* index of the next connection to start */
    unsigned connecting;
    unsigned ready;
    unsigned open_conns; /* tcp handles not yet closed */
    uv_timer_t timer;    /* phase timer */
    uv_timer_t deadline; /* hard cap on the whole run */
    uv_timer_t stall_timer;
    uv_timer_t retry_timer;  /* --reconnect */
    unsigned reconnecting;   /* connections waiting for a retry */
    uint64_t reconnects;     /* successful re-authentications */
    uint64_t retry_failures; /* failed reconnect attempts */
    uv_signal_t sigint;
    uint64_t t_setup0, t_start, t_stop_sending, t_last_recv, t_end;
    uint64_t cpu_start_us, cpu_end_us; /* this process's user+sys CPU time */
    uint64_t total_sent;
    uint64_t total_received; /* unique */
    uint64_t errors;         /* error stanzas received */
    uint64_t bad;            /* unparsable messages received */
    uint64_t misrouted;      /* messages with a wrong 'from' or 'to' */
    uint64_t conn_failures;  /* connections lost or refused */
    int failed;              /* setup failed: no measurement */
    char fail_msg[512];
    struct bench_hist lat;
};

/* bench_conn.c */

/* Prepares connection number `n` (sender of pair n/2 when even); borrows
 * everything. */
void bench_conn_prepare(struct bench *b, struct bench_conn *c, struct bench_pair *p,
                        int is_receiver, const char *name, unsigned target);
/* Points the connection at target number `target` (for a reconnect). */
void bench_conn_retarget(struct bench *b, struct bench_conn *c, unsigned target);
/* Starts the TCP connect and the XEP-0114 handshake; returns 0 or a negative
 * libuv error. */
int bench_conn_start(struct bench_conn *c);
/* Sends as many messages as the pair's window and count allow.  No-op unless
 * the run phase is on and the sender is ready. */
void bench_pair_pump(struct bench *b, struct bench_pair *p);
/* Gives up the window of every pair that has made no progress for
 * --stall seconds while messages were in flight (they count as lost unless
 * they arrive later), so that one lost message cannot stop a pair. */
void bench_check_stalls(struct bench *b, uint64_t now);
/* Gives up the pair's in-flight messages now (see bench_check_stalls);
 * returns how many. */
uint64_t bench_pair_release(struct bench_pair *p, uint64_t now);
/* Ends the stream (</stream:stream>, then FIN) and closes the handle once the
 * server closes or on bench_conn_abort(). */
void bench_conn_finish(struct bench_conn *c);
/* Closes the handle now. */
void bench_conn_abort(struct bench_conn *c);

/* bench_opts.c */

/* Prints the usage text to f. */
void bench_opts_usage(FILE *f);
/* Parses the command line into b->o (argv strings are borrowed).  Returns 1
 * when --no-header was given, 0 otherwise, -1 on a usage error (message
 * printed); --help prints the usage and exits 0. */
int bench_opts_parse(struct bench *b, int argc, char **argv);
/* Resolves the targets, reads the secrets, and prepares the pairs and their
 * connections (allocations owned by b).  Returns 0 or -1 (message printed). */
int bench_opts_resolve(struct bench *b);

/* bench_report.c */

/* Prints the table's header line. */
void bench_report_header(void);
/* Prints the run's result: a table row (with the header unless no_header)
 * or, with --json, one JSON object; appends the JSON to --json-out too. */
void bench_report(struct bench *b, int no_header);

/* bench_main.c: the run's phases.  The connections call these: a component
 * is authenticated; a connection failed (it is aborted here; during set-up
 * that ends the run without a measurement, later it is counted and, with
 * --reconnect, retried); a handle was closed; messages were received. */
void bench_on_ready(struct bench *b, struct bench_conn *c);
void bench_on_conn_failed(struct bench *b, struct bench_conn *c, const char *what);
void bench_on_closed(struct bench *b, struct bench_conn *c);
void bench_on_progress(struct bench *b);

#endif
