/* health.c: the node's health verdict (health.h). */
#include "health.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *health_level_name(enum health_level l)
{
    switch (l) {
    case HEALTH_OK:
        return "healthy";
    case HEALTH_DEGRADED:
        return "degraded";
    case HEALTH_FAILED:
        return "failed";
    }
    return "?";
}

static void add(struct health_verdict *v, enum health_level l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* add records one reason at level l.  Failures go before degradations (the
 * worst first); past the bound the last slot counts what did not fit. */
static void add(struct health_verdict *v, enum health_level l, const char *fmt, ...)
{
    char line[HEALTH_REASON_MAX - 16]; /* room for the "[degraded] " tag */
    va_list ap;
    size_t at;

    if (l > v->level)
        v->level = l;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (v->n == HEALTH_MAX_REASONS) {
        snprintf(v->reasons[HEALTH_MAX_REASONS - 1], HEALTH_REASON_MAX,
                 "and more: see xmpp status and xmpp cluster status");
        return;
    }
    at = v->n;
    if (l == HEALTH_FAILED) /* after the failures already listed */
        while (at > 0 && strncmp(v->reasons[at - 1], "[degraded]", 10) == 0)
            at--;
    memmove(v->reasons[at + 1], v->reasons[at], (v->n - at) * sizeof v->reasons[0]);
    snprintf(v->reasons[at], HEALTH_REASON_MAX, "[%s] %s", health_level_name(l), line);
    v->n++;
}

static void judge_xmpp(const struct health_facts *f, struct health_verdict *v)
{
    if (!f->xmpp_enabled)
        add(v, HEALTH_FAILED, "XMPP is disabled: run xmpp enable");
    else if (!f->serving && !f->removed) /* a removal says why below */
        add(v, HEALTH_FAILED, "XMPP is enabled but not served: %s",
            f->last_error != NULL && f->last_error[0] ? f->last_error
                                                      : "see xmpp status and the log");
    if (!f->cert_set)
        return;
    if (f->cert_not_after == 0)
        add(v, HEALTH_DEGRADED, "the node certificate cannot be read: see pki inspect");
    else if (f->cert_not_after <= f->now)
        add(v, HEALTH_FAILED,
            "the node certificate expired %" PRId64 " days ago: make a new one (certs/) "
            "and set it with xmpp certs",
            (f->now - f->cert_not_after) / 86400);
    else if (f->cert_not_after - f->now < HEALTH_CERT_WARN_S)
        add(v, HEALTH_DEGRADED,
            "the node certificate expires in %" PRId64 " days: renew it (certs/, xmpp "
            "certs)",
            (f->cert_not_after - f->now) / 86400);
}

void health_store_stopped(const char *stop_reason, char *out, size_t len)
{
    snprintf(
        out, len,
        "the replicated store stopped (configuration changes fail): %s; restart xmppd "
        "once the cause is fixed",
        stop_reason != NULL && stop_reason[0] != '\0' ? stop_reason : "see the log");
}

static void judge_cluster(const struct health_facts *f, struct health_verdict *v)
{
    if (f->store_stopped) {
        char line[HEALTH_REASON_MAX];
        health_store_stopped(f->stop_reason, line, sizeof line);
        add(v, HEALTH_FAILED, "%s", line);
        return;
    }
    if (!f->cluster_enabled)
        return;
    if (f->removed) {
        add(v, HEALTH_FAILED,
            "this node was removed from its cluster: xmpp cluster join <member> <token>, "
            "or xmpp cluster disable");
        return;
    }
    if (f->draining)
        add(v, HEALTH_DEGRADED,
            "this node is draining: new sessions are sent to other "
            "members; xmpp cluster drain --off to serve again");
    if (!f->leader_known)
        add(v, HEALTH_DEGRADED,
            "no cluster leader (an election, or no majority reachable): configuration "
            "changes fail until there is one");
    for (size_t i = 0; i < f->n_members; i++) {
        const struct health_member *m = &f->members[i];
        if (!m->link_up)
            add(v, HEALTH_DEGRADED, "the peer link to node %s (%s) is down", m->id,
                m->addr);
        else if (m->clock_known && (m->clock_off_ms > HEALTH_CLOCK_WARN_MS ||
                                    m->clock_off_ms < -HEALTH_CLOCK_WARN_MS))
            add(v, HEALTH_DEGRADED,
                "the clock of node %s (%s) is %" PRId64 " ms %s ours: check NTP on both",
                m->id, m->addr, m->clock_off_ms < 0 ? -m->clock_off_ms : m->clock_off_ms,
                m->clock_off_ms < 0 ? "behind" : "ahead of");
    }
}

void health_judge(const struct health_facts *f, struct health_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->level = HEALTH_OK;
    judge_xmpp(f, out);
    judge_cluster(f, out);
}
