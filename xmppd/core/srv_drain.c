/* srv_drain.c: draining a node
 * (docs/cluster.md "Draining a node"): every XMPP session of this node is
 * sent to another member, and new ones too until srv_undrain.  The choice
 * of the member is made here (round robin per kind of session, over the
 * targets that serve it); the edge only says where the members are.  The
 * closing is RFC 6120 §4.9.3.19 see-other-host for components and TCP
 * clients, RFC 7395 §3.6.1 see-other-uri for WebSocket clients. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sess.h"
#include "srv_int.h"
#include "ws.h"

/* A member to send sessions to: owned copies of struct srv_drain_target. */
struct srv_dt {
    uint64_t node;
    char *comp, *c2s, *wss;
};

struct srv_drain {
    struct srv_dt *t; /* owned, n of them */
    size_t n;
    size_t next[3]; /* round robin per kind: component, TCP client, WebSocket */
};

enum { DK_COMP, DK_C2S, DK_WS };

static void dt_free(struct srv_dt *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].comp);
        free(t[i].c2s);
        free(t[i].wss);
    }
    free(t);
}

static const char *dt_addr(const struct srv_dt *t, int kind)
{
    return kind == DK_COMP ? t->comp : kind == DK_C2S ? t->c2s : t->wss;
}

/* pick chooses the member for the next session of kind: the next target
 * after the last one chosen for that kind that serves it (so n sessions
 * spread over the members in turn), or NULL when none does. */
static const struct srv_dt *pick(struct srv_drain *d, int kind)
{
    for (size_t k = 0; k < d->n; k++) {
        const struct srv_dt *t = &d->t[(d->next[kind] + k) % d->n];
        if (dt_addr(t, kind) != NULL) {
            d->next[kind] = (d->next[kind] + k + 1) % d->n;
            return t;
        }
    }
    return NULL;
}

/* send_away closes s with a pointer to another member, or system-shutdown
 * when no member serves its kind. */
static void send_away(struct srv *srv, struct sess *s, const char *why)
{
    int kind = s->ws != NULL ? DK_WS : s->kind == SESS_KIND_COMP ? DK_COMP : DK_C2S;
    const struct srv_dt *t = pick(srv->drain, kind);

    if (s->state == SESS_CLOSED)
        return;
    if (t == NULL) {
        sess_fail(s, XS_COND_SYSTEM_SHUTDOWN, "draining, no member to send it to");
        return;
    }
    srv->stats.redirected++;
    SRV_LOG(srv, LOG_DEBUG, "c%" PRIu64 " draining: sent to node %016" PRIx64, s->conn,
            t->node);
    if (kind == DK_WS)
        srv__ws_redirect(srv, s, t->wss);
    else
        sess__redirect(s, dt_addr(t, kind), why);
}

static void drain_one(struct srv *srv, struct sess *s)
{
    send_away(srv, s, "node draining");
}

static char *dup_or_null(const char *s, bool *nomem)
{
    char *d;

    if (s == NULL || s[0] == '\0')
        return NULL;
    if ((d = strdup(s)) == NULL)
        *nomem = true;
    return d;
}

int srv_drain(struct srv *srv, const struct srv_drain_target *t, size_t n,
              uint64_t now_ms)
{
    struct srv_drain *d;
    bool nomem = false;

    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
    if (t == NULL || n == 0)
        return XE_INVAL;
    for (size_t i = 0; i < n; i++)
        if ((t[i].comp == NULL || !t[i].comp[0]) && (t[i].c2s == NULL || !t[i].c2s[0]) &&
            (t[i].wss == NULL || !t[i].wss[0]))
            return XE_INVAL;
    d = calloc(1, sizeof *d);
    if (d == NULL || (d->t = calloc(n, sizeof *d->t)) == NULL) {
        free(d);
        return XE_NOMEM;
    }
    d->n = n;
    for (size_t i = 0; i < n; i++) {
        d->t[i].node = t[i].node;
        d->t[i].comp = dup_or_null(t[i].comp, &nomem);
        d->t[i].c2s = dup_or_null(t[i].c2s, &nomem);
        d->t[i].wss = dup_or_null(t[i].wss, &nomem);
    }
    if (nomem) {
        dt_free(d->t, d->n);
        free(d);
        return XE_NOMEM;
    }
    if (srv->drain != NULL) {
        memcpy(d->next, srv->drain->next, sizeof d->next);
        srv__drain_free(srv);
    }
    srv->drain = d;
    SRV_LOG(srv, LOG_INFO, "draining: sending %zu sessions to %zu other members",
            srv->conns.count, n);
    srv__each(srv, drain_one);
    srv__reap(srv);
    return 0;
}

void srv_undrain(struct srv *srv)
{
    if (srv->drain == NULL)
        return;
    srv__drain_free(srv);
    SRV_LOG(srv, LOG_INFO, "%s", "draining ended: serving new sessions");
}

bool srv_draining(const struct srv *srv)
{
    return srv->drain != NULL;
}

bool srv__drain_opening(struct srv *srv, struct sess *s)
{
    if (srv->drain == NULL || s->state == SESS_READY)
        return false;
    send_away(srv, s, "node draining, new session");
    return true;
}

void srv__drain_free(struct srv *srv)
{
    if (srv->drain == NULL)
        return;
    dt_free(srv->drain->t, srv->drain->n);
    free(srv->drain);
    srv->drain = NULL;
}
