/* cmds_drain.c: xmpp cluster drain, and the WebSocket Origin and proxy
 * lists (cmds_drain.h). */
#include "cmds_drain.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "ctl_socket.h"
#include "err.h"
#include "node.h"
#include "raft.h"
#include "rnode.h"
#include "node_state.h"
#include "ws.h"

#define DRAIN_TRANSFER_TIMEOUT_MS 5000

/* ---- xmpp.cluster.drain ---- */

/* A drain waiting for the leadership transfer. */
struct drain_req {
    struct node *n;
    struct ctl_deferred *d;
};

/* drain_now drains and returns the answer (owned), or NULL with err set. */
static json_t *drain_now(struct node *n, bool transferred, struct ctl_error *err, int *rc)
{
    struct node_info info;
    uint64_t before;
    char why[256];

    node_get_info(n, &info);
    before = info.components + info.clients;
    *rc = node_drain(n, true, why, sizeof why);
    if (*rc < 0) {
        ctl_error_set(err, "state", "%s", why);
        return NULL;
    }
    return json_pack(
        "{s:b, s:b, s:I, s:s}", "draining", 1, "leadership_transferred", transferred,
        "sessions_redirected", (json_int_t)before, "message",
        "draining: new XMPP sessions are sent to other members, and this "
        "node is not elected leader again; kept across restarts (end it with "
        "xmpp cluster drain --off)");
}

static void drain_transferred(void *arg, int rc, const char *msg)
{
    struct drain_req *r = arg;
    struct ctl_error e;
    json_t *res = NULL;

    memset(&e, 0, sizeof e);
    if (rc < 0)
        ctl_error_set(&e, ctl_error_code_for(rc),
                      "drain: leadership could not be handed over (%s); nothing was "
                      "drained: try again",
                      msg != NULL ? msg : xe_strerror(rc));
    else
        res = drain_now(r->n, true, &e, &rc);
    ctl_deferred_finish(r->d, rc < 0 ? rc : 0, res, &e);
    free(r);
}

int cmds_cluster_drain(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"off", NULL};
    struct node *n = ud;
    json_t *off = json_object_get(args, "off");
    const struct raft_config *cfg;
    struct drain_req *r;
    char why[256];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (off != NULL && !json_is_boolean(off))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"off\" must be true or false");
    if (json_is_true(off)) {
        bool was = node_draining(n);
        node_drain(n, false, why, sizeof why);
        *result = json_pack("{s:b, s:s}", "draining", 0, "message",
                            was ? "drain ended: this node serves XMPP sessions again"
                                : "this node was not draining; nothing changed");
        return *result != NULL ? 0 : XE_NOMEM;
    }
    if (node_draining(n)) {
        *result =
            json_pack("{s:b, s:b, s:I, s:s}", "draining", 1, "leadership_transferred", 0,
                      "sessions_redirected", (json_int_t)0, "message",
                      "already draining; nothing changed");
        return *result != NULL ? 0 : XE_NOMEM;
    }
    cfg = node_rnode(n) != NULL ? rnode_config(node_rnode(n)) : NULL;
    if (cfg == NULL || cfg->n <= 1 || !cluster_running(n))
        return ctl_error_set(err, "state",
                             "drain sends sessions to other cluster members, and this "
                             "node has none (xmpp cluster status); to stop serving, use "
                             "xmpp disable");
    if (!node_xmpp_running(n))
        return ctl_error_set(err, "state",
                             "XMPP is not serving on this node: nothing to drain");
    if (!rnode_is_leader(node_rnode(n))) {
        *result = drain_now(n, false, err, &rc);
        return *result != NULL ? 0 : rc < 0 ? rc : XE_NOMEM;
    }
    /* The leader hands leadership over first (Raft thesis §3.10), so the
     * cluster's writes and routing do not wait on a node being emptied. */
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return XE_NOMEM;
    r->n = n;
    r->d = ctl_socket_defer(node_ctl(n));
    if (r->d == NULL) {
        free(r);
        return XE_NOMEM;
    }
    rnode_transfer(node_rnode(n), 0, DRAIN_TRANSFER_TIMEOUT_MS, drain_transferred, r);
    return CTL_DEFERRED;
}

/* ---- xmpp.websocket.origin / proxy ---- */

/* A node-local list of strings in node_state. */
struct slist {
    const char *what; /* "origin" / "proxy" */
    const char *key;  /* of the result */
    char *items;      /* n items of width bytes */
    size_t *n, cap, width;
    bool (*valid)(const char *);
    const char *hint; /* what a valid value looks like */
};

static json_t *slist_json(const struct slist *l)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < *l->n; i++)
        json_array_append_new(a, json_string(l->items + i * l->width));
    return a;
}

static int slist_cmd(struct node *n, struct slist *l, json_t *args, json_t **result,
                     struct ctl_error *err)
{
    static const char *const keys[] = {"op", "value", NULL};
    const char *op = json_string_value(json_object_get(args, "op"));
    const char *v = json_string_value(json_object_get(args, "value"));
    struct node_state *st = node_local(n), old = *st;
    char val[NODE_STATE_MAX_WS_ORIGIN], why[512], msg[300];
    size_t i;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (op == NULL ||
        (strcmp(op, "add") != 0 && strcmp(op, "del") != 0 && strcmp(op, "list") != 0))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"op\" is add, del or list");
    if (strcmp(op, "list") == 0) {
        *result = json_pack("{s:o}", l->key, slist_json(l));
        return *result != NULL ? 0 : XE_NOMEM;
    }
    if (v == NULL || strlen(v) >= sizeof val)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "give the %s to %s", l->what,
                             op);
    /* Origins compare ASCII case-insensitively (RFC 6454 §6.2): kept in
     * lower case. */
    for (i = 0; v[i] != '\0'; i++)
        val[i] = (char)tolower((unsigned char)v[i]);
    val[i] = '\0';
    for (i = 0; i < *l->n && strcmp(l->items + i * l->width, val) != 0; i++)
        ;
    if (strcmp(op, "add") == 0) {
        if (strlen(val) >= l->width || !l->valid(val))
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"%.100s\" is not %s", v,
                                 l->hint);
        if (i < *l->n) {
            snprintf(msg, sizeof msg, "%s %s was already on the list; nothing changed",
                     l->what, val);
            goto answer;
        }
        if (*l->n >= l->cap)
            return ctl_error_set(err, "limit", "at most %zu entries (%s del one first)",
                                 l->cap, l->what);
        snprintf(l->items + *l->n * l->width, l->width, "%s", val);
        (*l->n)++;
        snprintf(msg, sizeof msg, "%s %s added", l->what, val);
    } else {
        if (i == *l->n)
            return ctl_error_set(err, "not-found", "%s %.100s is not on the list",
                                 l->what, val);
        memmove(l->items + i * l->width, l->items + (i + 1) * l->width,
                (*l->n - i - 1) * l->width);
        (*l->n)--;
        snprintf(msg, sizeof msg, "%s %s deleted", l->what, val);
    }
    if (node_local_save(n, why, sizeof why) < 0) {
        *st = old;
        return ctl_error_set(err, "io", "%s", why);
    }
    node_ws_policy_changed(n);
answer:
    *result = json_pack("{s:o, s:s}", l->key, slist_json(l), "message", msg);
    return *result != NULL ? 0 : XE_NOMEM;
}

static bool origin_valid(const char *o)
{
    return node_state_ws_origin_ok(o);
}

int cmds_ws_origin(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    struct node_state *st = node_local(ud);
    struct slist l = {"origin",
                      "origins",
                      &st->ws_origins[0][0],
                      &st->n_ws_origins,
                      NODE_STATE_MAX_WS_ORIGINS,
                      NODE_STATE_MAX_WS_ORIGIN,
                      origin_valid,
                      "an origin (scheme://host[:port], e.g. https://app.example.com)"};

    return slist_cmd(ud, &l, args, result, err);
}

int cmds_ws_proxy(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    struct node_state *st = node_local(ud);
    struct slist l = {"proxy",
                      "proxies",
                      &st->ws_proxies[0][0],
                      &st->n_ws_proxies,
                      NODE_STATE_MAX_WS_PROXIES,
                      NODE_STATE_MAX_WS_PROXY,
                      ws_proxy_valid,
                      "an IP address or a CIDR range (10.0.0.0/8, 2001:db8::/32)"};

    return slist_cmd(ud, &l, args, result, err);
}
