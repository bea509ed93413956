/* health.h: is this node healthy?  The one place that judges it (`xmpp
 * health`, for monitoring and load-balancer checks).
 *
 * Pure: the edge (xmppd/io/cmds_health.c) gathers what it knows into
 * struct health_facts; health_judge turns that into a level and the reasons,
 * each a line that says what is wrong and what to do.  No clock read: the
 * wall-clock time is one of the facts.
 *
 * Levels (and the exit status of `xmpp health`):
 *   HEALTH_OK        0  serving, and nothing below applies
 *   HEALTH_DEGRADED  1  serving, but something needs attention: no cluster
 *                       leader (writes fail), a member's link down, a
 *                       certificate close to its end, a member's clock far
 *                       from ours, or draining (a load balancer should
 *                       send its clients elsewhere)
 *   HEALTH_FAILED    2  not serving XMPP (disabled, or a start failed), a
 *                       certificate expired, the replicated store stopped
 *                       (a storage failure), or removed from its cluster */
#ifndef XMPPD_HEALTH_H
#define XMPPD_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum health_level {
    HEALTH_OK = 0,
    HEALTH_DEGRADED = 1,
    HEALTH_FAILED = 2,
};

#define HEALTH_CERT_WARN_S (14 * 24 * 3600) /* degraded this long before expiry */
#define HEALTH_CLOCK_WARN_MS 2000           /* degraded beyond this clock offset */
#define HEALTH_MAX_REASONS 16
#define HEALTH_REASON_MAX 240
#define HEALTH_MAX_MEMBERS 64

struct health_member {
    char id[17];          /* hex node id */
    char addr[256];       /* peer address */
    bool link_up;         /* a peer link with accepted HELLOs */
    bool clock_known;     /* the offset below was measured (a HELLO came) */
    int64_t clock_off_ms; /* its wall clock minus ours */
};

struct health_facts {
    int64_t now; /* wall clock, seconds since the epoch */
    bool xmpp_enabled;
    bool serving;
    const char *last_error; /* why XMPP is not serving ("" or NULL: unknown) */
    bool cert_set;          /* a node certificate is configured */
    int64_t cert_not_after; /* seconds since the epoch; 0: unknown (unreadable) */
    bool cluster_enabled;
    bool removed;       /* removed from its cluster */
    bool store_stopped; /* Raft stopped after a storage failure (any node:
                           standalone nodes keep their state in it too) */
    const char *stop_reason;
    bool leader_known;
    bool draining; /* xmpp cluster drain: new sessions are sent elsewhere */
    const struct health_member *members; /* the other members (borrowed) */
    size_t n_members;
};

struct health_verdict {
    enum health_level level;
    size_t n;
    char reasons[HEALTH_MAX_REASONS][HEALTH_REASON_MAX]; /* worst first */
};

/* health_judge fills *out from *f (borrowed).  Reasons beyond
 * HEALTH_MAX_REASONS are summed up in the last one. */
void health_judge(const struct health_facts *f, struct health_verdict *out);

/* health_store_stopped writes to out (len bytes) what a stopped replicated
 * store means and what to do, as xmpp health gives it and as xmpp status and
 * xmpp cluster status show it until a restart clears it.
 * stop_reason: why it stopped (borrowed; NULL or "": "see the log"). */
void health_store_stopped(const char *stop_reason, char *out, size_t len);

/* health_level_name: "healthy", "degraded", "failed". */
const char *health_level_name(enum health_level l);

#endif
