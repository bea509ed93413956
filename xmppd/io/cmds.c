/* cmds.c: the control command handlers of the daemon (contract in cmds.h;
 * request and result shapes in docs/control-protocol.md). */
#include "cmds.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <uv.h>

#include "addr.h"
#include "repl.h"
#include "cmds_cluster.h"
#include "cmds_drain.h"
#include "cmds_export.h"
#include "cmds_health.h"
#include "cmds_user.h"
#include "conffile_parse.h"
#include "ctl_socket.h"
#include "health.h"
#include "err.h"
#include "node.h"
#include "pki.h"
#include "precis.h"
#include "rnode.h"
#include "node_state.h"

#define SUBMIT_TIMEOUT_MS 5000

/* ---- helpers ---- */

void cmds_new_secret(char *out)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char r[20];
    size_t k = 0;

    randombytes_buf(r, sizeof r);
    /* 160 bits = 32 groups of 5 bits (RFC 4648 §6 alphabet, lower case). */
    for (size_t i = 0; i < 32; i++) {
        size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)r[byte] << 8 | (byte + 1 < sizeof r ? r[byte + 1] : 0);
        if (i > 0 && i % 4 == 0)
            out[k++] = '-';
        out[k++] = b32[(v >> (11 - shift)) & 31];
    }
    out[k] = '\0';
    sodium_memzero(r, sizeof r);
}

/* admin_log logs a node-local change made through the shell once, at
 * info: the command and what it set, as its answer says (these answers
 * hold no secret).  Replicated changes are logged as each node applies
 * them (node.c rn_applied). */
static void admin_log(struct node *n, const char *what, const json_t *result)
{
    char *s = result != NULL ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    LOG(node_log(n), LOG_INFO, "%s admin: %s: %s", node_name(n), what,
        s != NULL ? s : "done");
    free(s);
}

/* ---- replicated writes: submit, answer when applied ---- */

struct pending {
    struct ctl_deferred *d;
    json_t *result; /* sent on success (owned) */
    enum cl_cmd_type type;
    char name[CL_NAME_MAX + 1];
    struct node *n;
};

static void explain(const struct pending *p, int rc, const char *msg, struct ctl_error *e)
{
    switch (rc) {
    case XE_EXISTS:
        ctl_error_set(e, "exists",
                      "call bridge %s already exists; delete it first with: xmpp "
                      "callbridge del %s",
                      p->name, p->name);
        break;
    case XE_NOTFOUND:
        ctl_error_set(e, "not-found", "no call bridge %s; see xmpp callbridge list",
                      p->name);
        break;
    case XE_NOLEADER:
        ctl_error_set(e, "no-leader",
                      "no cluster leader: nothing was changed; try again when xmpp "
                      "cluster status shows a leader%s%s%s",
                      msg != NULL && msg[0] != '\0' ? " (" : "", msg != NULL ? msg : "",
                      msg != NULL && msg[0] != '\0' ? ")" : "");
        break;
    case XE_TIMEOUT:
        /* Say why when it is known: a node cut off from the majority has
         * no leader by now (CheckQuorum, PreVote). */
        if (p->n != NULL && node_rnode(p->n) != NULL) {
            struct rnode_status st;
            rnode_get_status(node_rnode(p->n), &st);
            if (st.leader_id == 0) {
                ctl_error_set(e, "no-leader",
                              "no cluster leader: this node cannot reach a majority of "
                              "the cluster; the change was not confirmed within %d s (it "
                              "is applied only if it reached the old leader's majority; "
                              "check with xmpp callbridge list once there is a leader)",
                              SUBMIT_TIMEOUT_MS / 1000);
                break;
            }
        }
        ctl_error_set(e, "timeout",
                      "the change was not confirmed within %d s: it may still be "
                      "applied; check with xmpp status or xmpp callbridge list",
                      SUBMIT_TIMEOUT_MS / 1000);
        break;
    case XE_CLOSED:
        ctl_error_set(e, "state",
                      "the change was cancelled: the daemon is stopping or the node was "
                      "reset; check with xmpp status and try again");
        break;
    case XE_IO:
        ctl_error_set(e, "io",
                      "the replicated store failed, this node stopped taking writes: "
                      "%s; see the daemon's log",
                      msg != NULL ? msg : "storage error");
        break;
    default:
        ctl_error_set(e, ctl_error_code_for(rc), "%s",
                      msg != NULL ? msg : xe_strerror(rc));
        break;
    }
}

static void on_done(void *arg, int rc, const char *msg)
{
    struct pending *p = arg;
    struct ctl_error e;

    memset(&e, 0, sizeof e);
    if (rc < 0)
        explain(p, rc, msg, &e);
    ctl_deferred_finish(p->d, rc < 0 ? rc : 0, p->result, &e);
    sodium_memzero(p, sizeof *p);
    free(p);
}

/* submit encodes c, submits it and defers the answer (result, taken, is the
 * answer on success). */
static int submit(struct node *n, const struct cl_cmd *c, json_t *result,
                  struct ctl_error *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    struct pending *p;
    int rc;

    rc = cl_cmd_encode(c, &buf, &len);
    if (rc < 0) {
        json_decref(result);
        return rc == XE_INVAL ? ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                              "the value is not acceptable")
                              : rc;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL || (p->d = ctl_socket_defer(node_ctl(n))) == NULL) {
        free(p);
        cl_buf_free(buf, len);
        json_decref(result);
        return XE_NOMEM;
    }
    p->result = result;
    p->n = n;
    p->type = c->type;
    snprintf(p->name, sizeof p->name, "%.*s", CL_NAME_MAX, c->name);
    rnode_submit(node_rnode(n), buf, len, SUBMIT_TIMEOUT_MS, on_done, p);
    cl_buf_free(buf, len);
    return CTL_DEFERRED;
}

/* ---- xmpp.status ---- */

static json_t *cert_json(struct node *n)
{
    const struct node_state *st = node_local(n);
    struct pki_info info;
    char path[1024];
    json_t *j, *out;

    if (st->cert[0] == '\0')
        return json_null();
    if (node_file_path(n, st->cert, path, sizeof path) < 0 ||
        pki_inspect(path, &info, NULL, 0) < 0)
        return json_pack("{s:s, s:s}", "file", st->cert, "error",
                         "cannot be read; see pki inspect");
    j = pki_info_json(&info);
    out = json_pack("{s:s, s:O, s:O}", "file", st->cert, "subject",
                    json_object_get(j, "subject"), "not_after",
                    json_object_get(j, "not_after"));
    json_decref(j);
    return out;
}

static json_t *listen_json(const struct node_state *st)
{
    json_t *a = json_array();
    char addr[96];

    for (size_t i = 0; i < st->n_listen; i++) {
        conf_format_listen(&st->listen[i], addr, sizeof addr);
        json_array_append_new(a, json_string(addr));
    }
    return a;
}

/* client_settings_json: what xmpp.client.set answers and xmpp status
 * shows of the client settings. */
static json_t *client_settings_json(const struct node_state *st)
{
    return json_pack("{s:I, s:I, s:s, s:b, s:I, s:I, s:b}", "port",
                     (json_int_t)st->client_port, "tls_port",
                     (json_int_t)st->client_tls_port, "tls",
                     node_state_tls_name(st->client_tls), "sasl_plain", st->sasl_plain,
                     "max_sessions", (json_int_t)st->client_max_sessions, "rate",
                     (json_int_t)st->client_rate, "version", st->client_version);
}

/* clients_json: the client side of xmpp status: the settings (port 0:
 * off) and whether the listener is up (or why not). */
static json_t *clients_json(struct node *n, const struct node_info *info)
{
    json_t *j = client_settings_json(node_local(n));

    if (j != NULL)
        json_object_set_new(
            j, "listening",
            json_boolean(node_xmpp_running(n) && info->client_listeners > 0));
    if (j != NULL && info->client_error[0] != '\0')
        json_object_set_new(j, "error", json_string(info->client_error));
    return j;
}

/* client_stats_json: what this node's core counts of its clients
 * (docs/admin.md "Client status"): sessions by transport, logins
 * and failures in the last minute and in all, refusals, the blocked
 * addresses and accounts (the newest few) and the shaper's pauses. */
static json_t *client_stats_json(const struct node_info *info)
{
    const struct srv_stats *s = &info->stats;
    json_t *list = json_array();
    char one[300];

    for (size_t i = 0; list != NULL && i < info->nblocked; i++) {
        snprintf(one, sizeof one, "%s %s",
                 info->blocked[i].account ? "account" : "address", info->blocked[i].name);
        json_array_append_new(list, json_string(one));
    }
    return json_pack(
        "{s:{s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o?, s:I, s:I}",
        "sessions", "tcp", (json_int_t)(s->clients - s->ws_clients), "websocket",
        (json_int_t)s->ws_clients, "logins_last_minute", (json_int_t)s->logins_minute,
        "login_failures_last_minute", (json_int_t)s->login_failures_minute, "logins",
        (json_int_t)s->logins, "login_failures", (json_int_t)s->login_failures,
        "login_refusals", (json_int_t)s->login_refused, "sessions_refused",
        (json_int_t)s->sessions_refused, "throttled", (json_int_t)s->throttled, "blocked",
        (json_int_t)s->blocked, "blocked_newest", list, "shaper_pauses",
        (json_int_t)s->shaper_pauses, "paused_now", (json_int_t)s->paused);
}

/* websocket_json: the WebSocket side of xmpp status (docs/websocket.md):
 * ports (0: off), path, whether listening (or why not), connections now
 * and this node's host-meta URLs. */
static json_t *websocket_json(struct node *n, const struct node_info *info)
{
    const struct node_state *st = node_local(n);
    json_t *urls = json_array();
    json_t *j;

    for (size_t i = 0; urls != NULL && i < info->nws_urls; i++)
        json_array_append_new(urls, json_string(info->ws_urls[i]));
    j = json_pack("{s:I, s:I, s:s, s:b, s:I, s:o?}", "port", (json_int_t)st->ws_port,
                  "tls_port", (json_int_t)st->wss_port, "path", st->ws_path, "listening",
                  node_xmpp_running(n) && info->ws_listeners > 0, "connections",
                  (json_int_t)info->ws_conns, "urls", urls);
    if (j != NULL && info->ws_error[0] != '\0')
        json_object_set_new(j, "error", json_string(info->ws_error));
    if (j != NULL) {
        json_t *o = json_array(), *p = json_array();
        for (size_t i = 0; o != NULL && i < st->n_ws_origins; i++)
            json_array_append_new(o, json_string(st->ws_origins[i]));
        for (size_t i = 0; p != NULL && i < st->n_ws_proxies; i++)
            json_array_append_new(p, json_string(st->ws_proxies[i]));
        json_object_set_new(j, "origins", o);
        json_object_set_new(j, "trusted_proxies", p);
    }
    return j;
}

static int h_status(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    struct node *n = ud;
    const struct node_state *st = node_local(n);
    const char *domain = cl_domain(rnode_state(node_rnode(n)));
    struct node_info info;
    char id[17], store[HEALTH_REASON_MAX];

    node_get_info(n, &info);
    node_state_node_id_hex(st->node_id, id);
    *result = json_pack(
        "{s:b, s:b, s:s, s:s?, s:o, s:s, s:o, s:{s:I, s:I, s:{s:I, s:I}}, s:I}",
        "enabled", st->xmpp_enabled, "serving", node_xmpp_running(n), "node_id", id,
        "domain", domain[0] != '\0' ? domain : NULL, "listen", listen_json(st), "tls",
        node_state_tls_name(st->tls), "certificate", cert_json(n), "sessions",
        "components", (json_int_t)info.components, "clients", (json_int_t)info.clients,
        "clients_by_transport", "tcp", (json_int_t)(info.clients - info.ws_clients),
        "websocket", (json_int_t)info.ws_clients, "uptime_s", (json_int_t)info.uptime_s);
    if (*result != NULL)
        json_object_set_new(*result, "clients", clients_json(n, &info));
    if (*result != NULL)
        json_object_set_new(*result, "client_stats", client_stats_json(&info));
    if (*result != NULL)
        json_object_set_new(*result, "websocket", websocket_json(n, &info));
    if (*result != NULL)
        json_object_set_new(*result, "draining", json_boolean(node_draining(n)));
    /* Enabled but not serving: say why (a certificate expired, an address
     * went away, ...). */
    if (*result != NULL && info.last_error[0] != '\0' && !node_xmpp_running(n))
        json_object_set_new(*result, "error", json_string(info.last_error));
    /* A stopped store is shown until a restart clears it: XMPP is
     * still served from the last state. */
    if (*result != NULL && cmds_health_store(n, store, sizeof store))
        json_object_set_new(*result, "store", json_string(store));
    if (*result != NULL)
        cmds_user_status(n, *result);
    if (*result != NULL)
        json_object_set_new(*result, "version", json_string(XMPPD_VERSION));
    return *result != NULL ? 0 : XE_NOMEM;
}

/* restart_serving makes a saved listener or TLS change take effect at once
 * when XMPP is being served (the listeners are rebuilt from node state).
 * 0, or a negative code with err saying the change is saved but XMPP
 * stopped, and why. */
static int restart_serving(struct node *n, struct ctl_error *err)
{
    char why[512];
    int rc;

    if (!node_xmpp_running(n))
        return 0;
    node_xmpp_stop(n);
    rc = node_xmpp_start(n, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(err, ctl_error_code_for(rc), "saved, but XMPP stopped: %s",
                             why);
    return 0;
}

/* ---- xmpp.domain.set ---- */

static int h_domain(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"domain", NULL};
    const char *d = ctl_arg_str(args, "domain");
    struct cl_cmd *c;
    char lower[CL_DOMAIN_MAX + 1];
    size_t len;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (d == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"domain\" is required");
    len = strlen(d);
    if (len > CL_DOMAIN_MAX)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "the domain is too long");
    /* RFC 7622 §3.2: lower case, one trailing dot dropped, IDNA2008 for
     * non-ASCII labels. */
    if (precis_domain(d, lower, sizeof lower) < 0 || !cl_domain_valid(lower))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"%.100s\" is not a domain name: labels of letters, digits "
                             "and '-' (or internationalized ones, IDNA2008), 1-63 "
                             "characters each, joined by '.' (e.g. example.com)",
                             d);
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    cl_cmd_set_domain(c, lower);
    rc = submit(ud, c, json_pack("{s:s}", "domain", lower), err);
    free(c);
    return rc;
}

/* ---- xmpp.listen.set ---- */

/* add_addr appends host:port to st unless it is there. */
static int add_addr(struct node_state *st, const char *host, uint16_t port,
                    struct ctl_error *err)
{
    for (size_t i = 0; i < st->n_listen; i++) {
        if (strcmp(st->listen[i].host, host) == 0 && st->listen[i].port == port)
            return 0;
    }
    if (st->n_listen == NODE_STATE_MAX_LISTEN)
        return ctl_error_set(err, "limit", "at most %d listen addresses",
                             NODE_STATE_MAX_LISTEN);
    memset(&st->listen[st->n_listen], 0, sizeof st->listen[0]);
    snprintf(st->listen[st->n_listen].host, sizeof st->listen[0].host, "%s", host);
    st->listen[st->n_listen].port = port;
    st->n_listen++;
    return 0;
}

/* add_iface appends every address of interface name (link-local IPv6
 * addresses are skipped: they need a scope and no peer finds them). */
static int add_iface(struct node_state *st, const char *name, uint16_t port,
                     struct ctl_error *err)
{
    uv_interface_address_t *ifs;
    int count, rc, found = 0;
    char names[200] = "";

    rc = uv_interface_addresses(&ifs, &count);
    if (rc < 0)
        return ctl_error_set(err, "io", "cannot list network interfaces: %s",
                             uv_strerror(rc));
    for (int i = 0; i < count; i++) {
        char host[64];
        const uv_interface_address_t *a = &ifs[i];

        if (strcmp(a->name, name) != 0) {
            if (strstr(names, a->name) == NULL) {
                size_t u = strlen(names);
                snprintf(names + u, sizeof names - u, "%s%s", u ? ", " : "", a->name);
            }
            continue;
        }
        if (a->address.address4.sin_family == AF_INET) {
            uv_ip4_name(&a->address.address4, host, sizeof host);
        } else {
            const unsigned char *b = a->address.address6.sin6_addr.s6_addr;
            if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
                continue;
            uv_ip6_name(&a->address.address6, host, sizeof host);
        }
        rc = add_addr(st, host, port, err);
        if (rc < 0)
            break;
        found++;
    }
    uv_free_interface_addresses(ifs, count);
    if (rc < 0)
        return rc;
    if (found == 0)
        return ctl_error_set(err, "not-found",
                             "no interface \"%.20s\" with an address on this host "
                             "(interfaces: %s)",
                             name, names);
    return 0;
}

static int h_listen(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"addresses", NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n);
    json_t *a = json_object_get(args, "addresses"), *v;
    struct node_state fresh = *st;
    char why[512];
    size_t i;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (!json_is_array(a) || json_array_size(a) == 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"addresses\" must be a list of addresses or interfaces");
    fresh.n_listen = 0;
    json_array_foreach(a, i, v)
    {
        const char *s = json_string_value(v);
        struct addr ad;

        if (s == NULL)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "\"addresses\" must hold strings");
        if (addr_parse(s, ADDR_HOSTS_IFACE, CONF_DEFAULT_PORT, &ad) < 0)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "\"%.64s\" is not addr[:port], [ipv6][:port] or "
                                 "iface[:port] (port 1-65535)",
                                 s);
        if (ad.kind != ADDR_KIND_NAME) {
            if (!node_addr_local(ad.host))
                return ctl_error_set(err, "state",
                                     "%.64s is not an address of this host; give one "
                                     "of its addresses or an interface name",
                                     ad.host);
            rc = add_addr(&fresh, ad.host, ad.port, err);
        } else {
            rc = add_iface(&fresh, ad.host, ad.port, err);
        }
        if (rc < 0)
            return rc;
    }
    *st = fresh;
    rc = node_local_save(n, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(err, "io", "%s", why);
    rc = restart_serving(n, err);
    if (rc < 0)
        return rc;
    *result = json_pack("{s:o}", "listen", listen_json(st));
    admin_log(n, "listen set", *result);
    return 0;
}

/* ---- xmpp.certs.set ---- */

static int h_certs(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"key", "cert", "bundle", NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n);
    const char *k = ctl_arg_str(args, "key"), *c = ctl_arg_str(args, "cert"),
               *b = ctl_arg_str(args, "bundle");
    char kp[1024], cp[1024], bp[1024], why[512];
    struct pki_info info;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (k == NULL || c == NULL || (json_object_get(args, "bundle") != NULL && b == NULL))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"key\" and \"cert\" (and an optional \"bundle\") are "
                             "required");
    if (pki_path(node_pki_dir(n), k, kp, sizeof kp) < 0 ||
        pki_path(node_pki_dir(n), c, cp, sizeof cp) < 0 ||
        (b != NULL && pki_path(node_pki_dir(n), b, bp, sizeof bp) < 0) ||
        strlen(k) >= NODE_STATE_MAX_PATH || strlen(c) >= NODE_STATE_MAX_PATH ||
        (b != NULL && strlen(b) >= NODE_STATE_MAX_PATH))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "key, cert and bundle must be file names in %s",
                             node_pki_dir(n));
    rc = pki_check_certs(kp, cp, b != NULL ? bp : NULL, 0, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(
            err, rc == XE_AUTH && b != NULL ? "verify-failed" : ctl_error_code_for(rc),
            "%s", why);
    rc = pki_inspect(cp, &info, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(err, ctl_error_code_for(rc), "%s", why);
    snprintf(st->key, sizeof st->key, "%s", k);
    snprintf(st->cert, sizeof st->cert, "%s", c);
    snprintf(st->bundle, sizeof st->bundle, "%s", b != NULL ? b : "");
    rc = node_local_save(n, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(err, "io", "%s", why);
    rc = restart_serving(n, err);
    if (rc < 0)
        return rc;
    json_t *j = pki_info_json(&info);
    *result =
        json_pack("{s:s, s:O, s:O}", "cert", c, "subject", json_object_get(j, "subject"),
                  "not_after", json_object_get(j, "not_after"));
    json_decref(j);
    admin_log(n, "certificates set", *result);
    return 0;
}

/* ---- xmpp.tls.set ---- */

/* The component listeners' TLS mode (docs/tls.md): off, optional (direct
 * TLS or plaintext, told apart by the first byte) or required. */
static int h_tls(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"mode", NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n);
    const char *m = ctl_arg_str(args, "mode");
    enum node_state_tls mode, old = st->tls;
    char why[512];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (m == NULL || node_state_tls_parse(m, &mode) < 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"mode\" must be off, optional or required");
    /* Refused while serving, so a running node never stops over it; when
     * disabled, xmpp enable says what is missing. */
    if (mode == NODE_STATE_TLS_REQUIRED && st->cert[0] == '\0' && node_xmpp_running(n))
        return ctl_error_set(err, "state",
                             "TLS required needs a certificate; set one first with: "
                             "xmpp certs <key> <cert> [<bundle>]");
    st->tls = mode;
    rc = node_local_save(n, why, sizeof why);
    if (rc < 0) {
        st->tls = old;
        return ctl_error_set(err, "io", "%s", why);
    }
    if (mode != old) {
        rc = restart_serving(n, err);
        if (rc < 0)
            return rc;
    }
    *result = json_pack("{s:s}", "tls", node_state_tls_name(st->tls));
    admin_log(n, "component TLS set", *result);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* ---- xmpp.client.set ---- */

/* The client side (docs/admin.md "Clients"), node-local like the
 * listeners: any of "port" (1-65535, or 0: no client listener), "tls"
 * ("required": STARTTLS before SASL, the default; "optional": offered)
 * and "sasl_plain" (SASL PLAIN under TLS).  Applied at once (the listeners
 * restart when XMPP is served). */
/* port_arg checks an optional port argument j (0: none); false if bad. */
static bool port_arg(const json_t *j)
{
    return j == NULL || (json_is_integer(j) && json_integer_value(j) >= 0 &&
                         json_integer_value(j) <= 65535);
}

/* uint_arg checks an optional integer argument j in [lo, hi] or 0; false
 * if bad. */
static bool uint_arg(const json_t *j, json_int_t lo, json_int_t hi)
{
    json_int_t v = json_integer_value(j);

    return j == NULL || (json_is_integer(j) && (v == 0 || (v >= lo && v <= hi)));
}

static int h_client(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {
        "port", "tls_port", "tls", "sasl_plain", "max_sessions", "rate", "version", NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n), old = *st, listeners;
    json_t *jp = json_object_get(args, "port"), *jd = json_object_get(args, "tls_port"),
           *jt = json_object_get(args, "tls"), *js = json_object_get(args, "sasl_plain"),
           *jm = json_object_get(args, "max_sessions"),
           *jr = json_object_get(args, "rate"), *jv = json_object_get(args, "version");
    enum node_state_tls mode = st->client_tls;
    char why[512];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (jp == NULL && jd == NULL && jt == NULL && js == NULL && jm == NULL &&
        jr == NULL && jv == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "give \"port\", \"tls_port\", \"tls\", \"sasl_plain\", "
                             "\"max_sessions\", \"rate\" or \"version\"");
    if (!port_arg(jp) || !port_arg(jd))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a port must be 1-65535, or 0 for none");
    if (jt != NULL &&
        (!json_is_string(jt) || node_state_tls_parse(json_string_value(jt), &mode) < 0 ||
         mode == NODE_STATE_TLS_OFF))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "TLS for clients is required or optional");
    if ((js != NULL && !json_is_boolean(js)) || (jv != NULL && !json_is_boolean(jv)))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"sasl_plain\" and \"version\" must be true or false");
    if (!uint_arg(jm, 1, NODE_STATE_MAX_CLIENT_MAX_SESSIONS))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "sessions per account must be 1-%d, or 0 for no limit",
                             NODE_STATE_MAX_CLIENT_MAX_SESSIONS);
    if (!uint_arg(jr, NODE_STATE_MIN_CLIENT_RATE, NODE_STATE_MAX_CLIENT_RATE))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a rate must be %d-%d bytes/s, or 0 for none",
                             NODE_STATE_MIN_CLIENT_RATE, NODE_STATE_MAX_CLIENT_RATE);
    if (jp != NULL)
        st->client_port = (unsigned)json_integer_value(jp);
    if (jd != NULL)
        st->client_tls_port = (unsigned)json_integer_value(jd);
    st->client_tls = mode;
    if (js != NULL)
        st->sasl_plain = json_is_true(js);
    if (jm != NULL)
        st->client_max_sessions = (unsigned)json_integer_value(jm);
    if (jr != NULL)
        st->client_rate = (unsigned)json_integer_value(jr);
    if (jv != NULL)
        st->client_version = json_is_true(jv);
    rc = node_local_save(n, why, sizeof why);
    if (rc < 0) {
        *st = old;
        return ctl_error_set(err, "io", "%s", why);
    }
    /* The limits apply at once to the running core; the listeners and
     * the TLS and SASL offers need a restart. */
    listeners = *st;
    listeners.client_max_sessions = old.client_max_sessions;
    listeners.client_rate = old.client_rate;
    listeners.client_version = old.client_version;
    if (memcmp(&old, &listeners, sizeof old) != 0) {
        rc = restart_serving(n, err);
        if (rc < 0)
            return rc;
    } else if (node_xmpp_client_limits(n) < 0) {
        return ctl_error_set(err, CTL_E_INTERNAL,
                             "saved, but not applied: out of memory");
    }
    *result = client_settings_json(st);
    admin_log(n, "client settings set", *result);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* ---- xmpp.websocket.set ---- */

/* XMPP over WebSocket (docs/websocket.md), node-local like the
 * client listener: any of "port" (ws; 0: off), "tls_port" (wss; 0: off)
 * and "path" (absolute, e.g. /xmpp-websocket).  Applied at once. */
static int h_websocket(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"port", "tls_port", "path", NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n), old = *st;
    json_t *jp = json_object_get(args, "port"), *jd = json_object_get(args, "tls_port"),
           *jh = json_object_get(args, "path");
    char why[512];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (jp == NULL && jd == NULL && jh == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "give \"port\", \"tls_port\" or \"path\"");
    if (!port_arg(jp) || !port_arg(jd))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a port must be 1-65535, or 0 for none");
    if (jh != NULL &&
        (!json_is_string(jh) || !node_state_ws_path_ok(json_string_value(jh))))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the path must start with / and be at most %d printable "
                             "characters without space, ? or #",
                             NODE_STATE_MAX_WS_PATH - 1);
    if (jp != NULL)
        st->ws_port = (unsigned)json_integer_value(jp);
    if (jd != NULL)
        st->wss_port = (unsigned)json_integer_value(jd);
    if (jh != NULL)
        snprintf(st->ws_path, sizeof st->ws_path, "%s", json_string_value(jh));
    rc = node_local_save(n, why, sizeof why);
    if (rc < 0) {
        *st = old;
        return ctl_error_set(err, "io", "%s", why);
    }
    if (memcmp(&old, st, sizeof old) != 0) {
        rc = restart_serving(n, err);
        if (rc < 0)
            return rc;
    }
    *result = json_pack("{s:I, s:I, s:s}", "port", (json_int_t)st->ws_port, "tls_port",
                        (json_int_t)st->wss_port, "path", st->ws_path);
    admin_log(n, "WebSocket settings set", *result);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* ---- xmpp.enable / disable / reset ---- */

static int h_enable(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n);
    char why[512];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    rc = node_xmpp_start(n, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(err, rc == XE_NOMEM ? "internal" : "state", "%s", why);
    if (!st->xmpp_enabled) {
        st->xmpp_enabled = true;
        rc = node_local_save(n, why, sizeof why);
        if (rc < 0) {
            node_xmpp_stop(n);
            return ctl_error_set(err, "io", "%s", why);
        }
    }
    *result = json_pack("{s:o}", "listen", listen_json(st));
    admin_log(n, "XMPP enabled", *result);
    return 0;
}

static int h_disable(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n);
    struct node_info info;
    bool was_serving, was_enabled;
    char why[512];

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    node_get_info(n, &info);
    was_serving = node_xmpp_running(n);
    was_enabled = st->xmpp_enabled;
    node_xmpp_stop(n);
    if (st->xmpp_enabled) {
        st->xmpp_enabled = false;
        if (node_local_save(n, why, sizeof why) < 0)
            return ctl_error_set(err, "io", "%s", why);
    }
    /* What stopped: the listeners and the sessions they carried. */
    *result = json_pack("{s:b, s:b, s:b, s:I, s:I, s:o}", "enabled", 0, "was_enabled",
                        was_enabled, "was_serving", was_serving, "components_closed",
                        (json_int_t)(was_serving ? info.components : 0), "clients_closed",
                        (json_int_t)(was_serving ? info.clients : 0), "listen_closed",
                        was_serving ? listen_json(st) : json_array());
    admin_log(n, "XMPP disabled", *result);
    return *result != NULL ? 0 : XE_NOMEM;
}

static int h_reset(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"confirmed", "force", NULL};
    json_t *conf = json_object_get(args, "confirmed");
    char why[512], id[17];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    /* The shell asks before it sends; a client that says it did not ask
     * the admin is refused. */
    if (conf != NULL && !json_is_true(conf))
        return ctl_error_set(err, "state",
                             "xmpp reset was not confirmed; nothing was "
                             "changed");
    /* A member of a multi-node cluster: refused unless forced (the cluster
     * then keeps the old id as a stale member, see docs/cluster.md). */
    if (cmds_cluster_reset_check(ud, json_is_true(json_object_get(args, "force")), err) <
        0)
        return XE_INVAL;
    rc = node_reset(ud, why, sizeof why);
    if (rc < 0)
        return ctl_error_set(err, ctl_error_code_for(rc), "%s", why);
    node_state_node_id_hex(node_local(ud)->node_id, id);
    *result = json_pack("{s:s}", "node_id", id);
    return 0;
}

/* ---- xmpp.callbridge.* ---- */

static int h_cb_add(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"name", "secret", NULL};
    const char *name = ctl_arg_str(args, "name");
    json_t *js = json_object_get(args, "secret");
    char gen[CMDS_SECRET_LEN + 1];
    const char *secret;
    size_t slen;
    struct cl_cmd *c;
    json_t *res;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (name == NULL || !cl_name_valid(name))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a call bridge name has 1-%d letters, digits and '-'",
                             CL_NAME_MAX);
    if (js != NULL && !json_is_string(js))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"secret\" must be a string");
    /* Known here already: refuse without a log entry (the apply rule stays
     * the authority for names added meanwhile elsewhere). */
    if (cl_callbridge_find(rnode_state(node_rnode(ud)), name) != NULL)
        return ctl_error_set(err, "exists",
                             "call bridge %s already exists; delete it first with: xmpp "
                             "callbridge del %s",
                             name, name);
    if (js != NULL) {
        secret = json_string_value(js);
        slen = json_string_length(js);
        /* The XEP-0114 handshake hashes the secret as text: printable, no
         * blanks, so what the admin types is what the bridge sends. */
        for (size_t i = 0; i < slen; i++) {
            if ((unsigned char)secret[i] < 0x21 || (unsigned char)secret[i] > 0x7e)
                return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                     "the secret must be printable ASCII without "
                                     "spaces");
        }
        if (slen == 0 || slen > CL_SECRET_MAX)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "the secret must be 1-%d characters", CL_SECRET_MAX);
        res = json_pack("{s:s}", "name", name);
    } else {
        cmds_new_secret(gen);
        secret = gen;
        slen = strlen(gen);
        /* The generated secret goes back once, in the answer. */
        res = json_pack("{s:s, s:s}", "name", name, "secret", gen);
    }
    c = malloc(sizeof *c);
    if (c == NULL || res == NULL) {
        free(c);
        json_decref(res);
        sodium_memzero(gen, sizeof gen);
        return XE_NOMEM;
    }
    /* When the secret was set, in the entry (repl.h), once every member
     * can read it: a member of an older build would refuse the entry. */
    cl_cmd_cb_set_at(c, name, (const unsigned char *)secret, slen, true,
                     rnode_sessions_on(node_rnode(ud)) ? (uint64_t)time(NULL) : 0);
    rc = submit(ud, c, res, err);
    sodium_memzero(c, sizeof *c);
    free(c);
    sodium_memzero(gen, sizeof gen);
    return rc;
}

static int h_cb_del(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"name", NULL};
    const char *name = ctl_arg_str(args, "name");
    struct cl_cmd *c;
    json_t *res;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (name == NULL || !cl_name_valid(name))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a call bridge name has 1-%d letters, digits and '-'",
                             CL_NAME_MAX);
    if (cl_callbridge_find(rnode_state(node_rnode(ud)), name) == NULL)
        return ctl_error_set(err, "not-found",
                             "no call bridge %s; see xmpp callbridge list", name);
    /* The session here closes when the deletion applies; sessions on other
     * members close as each of them applies it. */
    res = json_pack("{s:s, s:I}", "name", name, "sessions_closed",
                    (json_int_t)(node_callbridge_connected(ud, name) ? 1 : 0));
    c = malloc(sizeof *c);
    if (c == NULL || res == NULL) {
        free(c);
        json_decref(res);
        return XE_NOMEM;
    }
    cl_cmd_cb_del(c, name);
    rc = submit(ud, c, res, err);
    free(c);
    return rc;
}

/* secret_fingerprint writes the first 8 bytes of the SHA-256 of cb's secret
 * in hex into fp (17 bytes) and returns it: enough to compare two nodes'
 * copies or a bridge's configuration, useless to log in with. */
static const char *secret_fingerprint(const struct cl_callbridge *cb, char fp[17])
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, cb->secret, cb->secret_len);
    sodium_bin2hex(fp, 17, h, 8);
    sodium_memzero(h, sizeof h);
    return fp;
}

static int h_cb_list(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    struct node *n = ud;
    const struct cl_state *cs = rnode_state(node_rnode(n));
    const char *domain = cl_domain(cs);
    json_t *a = json_array();
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; i < cl_callbridge_count(cs); i++) {
        const struct cl_callbridge *cb = cl_callbridge_at(cs, i);
        char dom[CL_NAME_MAX + CL_DOMAIN_MAX + 2], fp[17];
        int64_t at = (int64_t)cb->set_at;

        snprintf(dom, sizeof dom, "%s.%s", cb->name, domain[0] != '\0' ? domain : "-");
        /* Every call bridge has a secret; when it was set is known for
         * those set since every member could record it (repl.h set_at). */
        json_array_append_new(
            a,
            json_pack("{s:s, s:s, s:s, s:b, s:b, s:o, s:o}", "name", cb->name, "domain",
                      dom, "fingerprint", secret_fingerprint(cb, fp), "connected",
                      node_callbridge_connected(n, cb->name), "secret_set", 1,
                      "secret_set_at", ctl_time(at), "secret_age_seconds",
                      at != 0 ? json_integer(now > at ? now - at : 0) : json_null()));
    }
    *result = json_pack("{s:o}", "callbridges", a);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* xmpp.callbridge.show-secret {name}: the secret, shown on purpose (a
 * list never shows it: docs/admin.md). */
static int h_cb_show_secret(void *ud, json_t *args, json_t **result,
                            struct ctl_error *err)
{
    static const char *const keys[] = {"name", NULL};
    const char *name = ctl_arg_str(args, "name");
    const struct cl_callbridge *cb;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (name == NULL || !cl_name_valid(name))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a call bridge name has 1-%d letters, digits and '-'",
                             CL_NAME_MAX);
    cb = cl_callbridge_find(rnode_state(node_rnode(ud)), name);
    if (cb == NULL)
        return ctl_error_set(err, "not-found",
                             "no call bridge %s; see xmpp callbridge list", name);
    *result = json_pack("{s:s, s:s%}", "name", cb->name, "secret",
                        (const char *)cb->secret, cb->secret_len);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* ---- pki.*: the handlers of io/pki.c on this node's pki directory ---- */

static int h_pki_list(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_list(node_pki_dir(ud), a, r, e);
}

static int h_pki_inspect(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_inspect(node_pki_dir(ud), a, r, e);
}

static int h_pki_csr(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_csr(node_pki_dir(ud), a, r, e);
}

static int h_pki_verify(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_verify(node_pki_dir(ud), a, r, e);
}

const struct ctl_command cmds_table[] = {
    {"xmpp.status", h_status},
    {"xmpp.health", cmds_health},
    {"xmpp.domain.set", h_domain},
    {"xmpp.listen.set", h_listen},
    {"xmpp.certs.set", h_certs},
    {"xmpp.tls.set", h_tls},
    {"xmpp.client.set", h_client},
    {"xmpp.websocket.set", h_websocket},
    {"xmpp.websocket.origin", cmds_ws_origin},
    {"xmpp.websocket.proxy", cmds_ws_proxy},
    {"xmpp.enable", h_enable},
    {"xmpp.disable", h_disable},
    {"xmpp.reset", h_reset},
    {"xmpp.callbridge.add", h_cb_add},
    {"xmpp.callbridge.del", h_cb_del},
    {"xmpp.callbridge.list", h_cb_list},
    {"xmpp.callbridge.show-secret", h_cb_show_secret},
    {"xmpp.callbridge.export", cmds_callbridge_export},
    {"xmpp.metrics.set", cmds_metrics_set},
    {"xmpp.user.add", cmds_user_add},
    {"xmpp.user.passwd", cmds_user_passwd},
    {"xmpp.user.del", cmds_user_del},
    {"xmpp.user.list", cmds_user_list},
    {"xmpp.user.iterations", cmds_user_iterations},
    {"xmpp.cluster.status", cmds_cluster_status},
    {"xmpp.cluster.trust", cmds_cluster_trust},
    {"xmpp.cluster.enable", cmds_cluster_enable},
    {"xmpp.cluster.disable", cmds_cluster_disable},
    {"xmpp.cluster.initialize", cmds_cluster_initialize},
    {"xmpp.cluster.join", cmds_cluster_join},
    {"xmpp.cluster.invite", cmds_cluster_invite},
    {"xmpp.cluster.remove", cmds_cluster_remove},
    {"xmpp.cluster.drain", cmds_cluster_drain},
    {"pki.list", h_pki_list},
    {"pki.inspect", h_pki_inspect},
    {"pki.csr", h_pki_csr},
    {"pki.verify", h_pki_verify},
};

const size_t cmds_count = sizeof cmds_table / sizeof cmds_table[0];
