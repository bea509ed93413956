/* srv_lastpres.c: the last unavailable presence of each account (RFC 6121
 * §4.3.2, §4.5.3), kept so that a probe of a user with no available
 * resource is answered with it: presence of type unavailable from the full
 * JID of the resource that last went away, its <status/>, and a XEP-0203
 * <delay/> saying when (docs/clients.md "Last unavailable presence").
 *
 * One record per account (the newest replaces the older), at most
 * SRV_LASTPRES_MAX accounts (past that a new account's record is not
 * kept) and SRV_LASTPRES_STATUS bytes of status (longer: no status).
 *
 * Across the cluster, as the login throttle does (srv_throttle.c): in a
 * cluster of two or more members a record is written to the Raft log as a
 * PRES_LAST entry (repl.h), and every node keeps it when it applies it
 * (srv_lastpres_applied), so the node that answers a probe knows the
 * record wherever the session ended.  The entries change no replicated
 * state: a node that starts from a snapshot knows the records written
 * since; without a leader the node where the session ended keeps its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "err.h"
#include "repl.h"
#include "srv.h"
#include "srv_int.h"
#include "stz.h"

#define SRV_LASTPRES_MAX 65536

struct srv_lastpres {
    char *user;       /* owned */
    char *resource;   /* owned */
    char *status;     /* owned; NULL: none */
    uint64_t wall_ms; /* when the resource went away; 0: unknown */
    struct hlink link;
};

#define LP_OF(l) HTAB_ENTRY(l, struct srv_lastpres, link)

static uint64_t lp_hash(const struct hlink *l)
{
    return htab_hash_str(LP_OF(l)->user);
}

static void lp_free(struct hlink *l)
{
    struct srv_lastpres *p = LP_OF(l);

    free(p->user);
    free(p->resource);
    free(p->status);
    free(p);
}

static struct srv_lastpres *lp_find(const struct srv *srv, const char *user)
{
    for (struct hlink *l = htab_head(&srv->lastpres, htab_hash_str(user)); l != NULL;
         l = l->next)
        if (strcmp(LP_OF(l)->user, user) == 0)
            return LP_OF(l);
    return NULL;
}

/* lp_keep stores the record (strings borrowed) for user; a newer one
 * replaces it (wall_ms 0 always replaces: no clock to compare). */
static void lp_keep(struct srv *srv, const char *user, const char *resource,
                    const char *status, uint64_t wall_ms)
{
    struct srv_lastpres *p = lp_find(srv, user);
    char *r, *s = NULL;

    if (p != NULL && wall_ms != 0 && p->wall_ms > wall_ms)
        return; /* an older record applied late */
    /* Only for an account that exists: a record of a deleted account
     * (its sessions close after the deletion, and their entries are
     * applied after it) must not answer for a new account of that name. */
    if (srv->accounts == NULL || cl_user_find(srv->accounts, user) == NULL)
        return;
    if (p == NULL && (srv->lastpres.count >= SRV_LASTPRES_MAX ||
                      (srv->lastpres.nb == 0 && htab_init(&srv->lastpres, 64) < 0)))
        return;
    r = strdup(resource);
    if (status != NULL && (s = strdup(status)) == NULL) {
        free(r);
        return;
    }
    if (r == NULL)
        return;
    if (p == NULL) {
        p = calloc(1, sizeof *p);
        if (p == NULL || (p->user = strdup(user)) == NULL) {
            free(p);
            free(r);
            free(s);
            return;
        }
        htab_add(&srv->lastpres, &p->link, htab_hash_str(user), lp_hash);
    }
    free(p->resource);
    free(p->status);
    p->resource = r;
    p->status = s;
    p->wall_ms = wall_ms;
}

void srv__lastpres_left(struct srv *srv, const char *user, const char *resource,
                        const struct stz *st)
{
    struct stz *el = st != NULL ? stz_child(st, "status", NULL) : NULL;
    char *status = el != NULL ? stz_text(el) : NULL;
    uint64_t wall = srv->env.wall_ms != NULL ? srv->env.wall_ms(srv->env.ud) : 0;

    if (status != NULL && strlen(status) > SRV_LASTPRES_STATUS) {
        free(status);
        status = NULL;
    }
    lp_keep(srv, user, resource, status, wall);
    if (srv_cluster__shared(srv) && srv->cfg.roster_writes) {
        struct cl_cmd *c = malloc(sizeof *c);
        unsigned char *cmd = NULL;
        size_t len = 0;
        if (c != NULL) {
            cl_cmd_pres_last(c, user, resource, status, wall);
            /* srv__submit takes cmd; the answer (srv_submit_done) of an
             * unknown token is ignored: a lost entry only leaves the
             * record on this node. */
            if (cl_cmd_encode(c, &cmd, &len) == 0 &&
                srv__submit(srv, cmd, len, ++srv->rop_token) < 0)
                SRV_LOG(srv, LOG_DEBUG, "last presence of %s kept on this node only",
                        user);
            free(c);
        }
    }
    free(status);
}

void srv_lastpres_applied(struct srv *srv, const char *user, const char *resource,
                          const char *status, uint64_t wall_ms)
{
    if (user != NULL && resource != NULL)
        lp_keep(srv, user, resource, status != NULL && status[0] != '\0' ? status : NULL,
                wall_ms);
}

/* stamp writes wall_ms as a XEP-0082 DateTime in UTC with milliseconds
 * ("2026-12-07T20:25:00.123Z"), as XEP-0203 §3 wants it: ctl.c's one
 * rule for a point in time, with the milliseconds before its "Z". */
static void stamp(uint64_t wall_ms, char *out, size_t cap)
{
    char t[CTL_TIME_LEN];

    ctl_time_text((int64_t)(wall_ms / 1000), t);
    snprintf(out, cap, "%.*s.%03uZ", CTL_TIME_LEN - 2, t, (unsigned)(wall_ms % 1000));
}

struct stz *srv__lastpres_reply(const struct srv *srv, const char *user, const char *to)
{
    const struct srv_lastpres *p = lp_find(srv, user);
    struct stz *r, *el;
    char from[CL_USER_MAX + CL_DOMAIN_MAX + 1100], when[96];

    if (p == NULL)
        return NULL;
    snprintf(from, sizeof from, "%s@%s/%s", user, srv->domain, p->resource);
    r = stz_new("presence", STZ_NS_CLIENT);
    if (r == NULL || stz_set_attr(r, "from", from) < 0 || stz_set_attr(r, "to", to) < 0 ||
        stz_set_attr(r, "type", "unavailable") < 0)
        goto fail;
    if (p->status != NULL && ((el = stz_add_child(r, "status", NULL)) == NULL ||
                              stz_add_text(el, p->status, strlen(p->status)) < 0))
        goto fail;
    if (p->wall_ms != 0) {
        /* XEP-0203 §3: when it was sent; 'from' the server that stamped it */
        stamp(p->wall_ms, when, sizeof when);
        if ((el = stz_add_child(r, "delay", "urn:xmpp:delay")) == NULL ||
            stz_set_attr(el, "from", srv->domain) < 0 ||
            stz_set_attr(el, "stamp", when) < 0)
            goto fail;
    }
    return r;
fail:
    stz_free(r);
    return NULL;
}

void srv__lastpres_forget(struct srv *srv, const char *user)
{
    struct srv_lastpres *p = lp_find(srv, user);

    if (p == NULL)
        return;
    htab_del(&srv->lastpres, &p->link, htab_hash_str(user));
    lp_free(&p->link);
}

void srv__lastpres_free(struct srv *srv)
{
    htab_release(&srv->lastpres, lp_free);
}
