/* cmds_export.c: `xmpp callbridge export` and `xmpp metrics` (contract in
 * cmds_export.h). */
#include "cmds_export.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "conffile_parse.h"
#include "repl.h"
#include "err.h"
#include "node.h"
#include "node_metrics.h"
#include "rnode.h"
#include "node_state.h"

#define SRV_TTL 3600
#define SRV_WEIGHT 10

/* ---- xmpp.callbridge.export ---- */

/* host_of copies the host of a peer address ("h:p" or "[v6]:p") into out. */
static void host_of(const char *addr, char *out, size_t len)
{
    if (addr_host_of(addr, out, len) < 0)
        snprintf(out, len, "%s", addr);
}

/* add_member appends the SRV record (and the A or AAAA record of its
 * target) of one node to srv and records.  XEP-0114 names no SRV service;
 * _xmpp-component._tcp is what call bridges look up (docs/components.md),
 * with SRV's fields as RFC 2782 defines them: one priority for every node
 * and equal weights, so that bridges spread over the cluster. */
static void add_member(json_t *srv, json_t *records, const char *domain, uint64_t id,
                       const char *host, unsigned port)
{
    char idhex[17], target[CL_DOMAIN_MAX + 32], line[2 * CL_DOMAIN_MAX + 256];
    unsigned char a[16];
    bool v6 = inet_pton(AF_INET6, host, a) == 1;

    node_state_node_id_hex(id, idhex);
    /* A target is a host name, never an address (RFC 2782 "Target"): one
     * name per node, under the domain, with its address record. */
    snprintf(target, sizeof target, "xmppd-%.8s.%s.", idhex, domain);
    snprintf(line, sizeof line, "_xmpp-component._tcp.%s. %d IN SRV 0 %d %u %s", domain,
             SRV_TTL, SRV_WEIGHT, port, target);
    json_array_append_new(records, json_string(line));
    json_array_append_new(srv, json_pack("{s:s, s:s, s:s, s:I, s:s}", "record", line,
                                         "node_id", idhex, "address", host, "port",
                                         (json_int_t)port, "target", target));
    snprintf(line, sizeof line, "%s %d IN %s %s", target, SRV_TTL, v6 ? "AAAA" : "A",
             host);
    json_array_append_new(records, json_string(line));
}

/* unspecified: 0.0.0.0 or :: (a listener on every address names none). */
static bool unspecified(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/* add_records lists every member of the cluster (this node alone when it
 * is not clustered) with its peer address's host and port 5223 (this
 * node: its own component port). */
static void add_records(struct node *n, const char *domain, json_t *srv, json_t *records)
{
    const struct raft_config *cfg =
        node_local(n)->cluster_enabled ? rnode_config(node_rnode(n)) : NULL;
    const struct node_state *st = node_local(n);
    unsigned own_port = st->n_listen > 0 ? st->listen[0].port : CONF_DEFAULT_PORT;
    char host[96];

    if (cfg == NULL || cfg->n <= 1) {
        for (size_t i = 0; i < st->n_listen; i++) {
            if (!unspecified(st->listen[i].host))
                add_member(srv, records, domain, st->node_id, st->listen[i].host,
                           st->listen[i].port);
        }
        return;
    }
    for (unsigned i = 0; i < cfg->n; i++) {
        const struct raft_member *mb = &cfg->members[i];

        host_of(mb->address, host, sizeof host);
        add_member(srv, records, domain, mb->id, host,
                   mb->id == st->node_id ? own_port : CONF_DEFAULT_PORT);
    }
}

int cmds_callbridge_export(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"name", NULL};
    struct node *n = ud;
    const char *name = ctl_arg_str(args, "name");
    const struct cl_state *cs;
    const struct cl_callbridge *cb;
    char comp[CL_NAME_MAX + CL_DOMAIN_MAX + 2], bundle[PATH_MAX], real[PATH_MAX];
    json_t *srv, *records, *ca = json_null();

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (name == NULL || !cl_name_valid(name))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a call bridge name has 1-%d letters, digits and '-'",
                             CL_NAME_MAX);
    if (node_rnode(n) == NULL)
        return ctl_error_set(err, "state", "the node is stopping");
    cs = rnode_state(node_rnode(n));
    cb = cl_callbridge_find(cs, name);
    if (cb == NULL)
        return ctl_error_set(err, "not-found",
                             "no call bridge %s; see xmpp callbridge list", name);
    if (cl_domain(cs)[0] == '\0')
        return ctl_error_set(
            err, "state", "no domain yet: set it with xmpp domain <name>, then export");
    snprintf(comp, sizeof comp, "%s.%s", cb->name, cl_domain(cs));
    if (node_local(n)->bundle[0] != '\0' &&
        node_file_path(n, node_local(n)->bundle, bundle, sizeof bundle) == 0)
        ca = json_string(realpath(bundle, real) != NULL ? real : bundle);
    srv = json_array();
    records = json_array();
    add_records(n, cl_domain(cs), srv, records);
    *result = json_pack("{s:s, s:s, s:s, s:s%, s:I, s:o, s:o, s:o, s:s}", "name",
                        cb->name, "domain", cl_domain(cs), "component", comp, "secret",
                        (const char *)cb->secret, cb->secret_len, "port",
                        (json_int_t)CONF_DEFAULT_PORT, "srv", srv, "records", records,
                        "ca_bundle", ca, "tls", node_state_tls_name(node_local(n)->tls));
    return *result != NULL ? 0 : XE_NOMEM;
}

/* ---- xmpp.metrics.set ---- */

int cmds_metrics_set(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"listen", NULL};
    struct node *n = ud;
    const char *l = ctl_arg_str(args, "listen");
    struct conf_listen addr, old = node_local(n)->metrics;
    char text[96], why[512], url[128];
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (l == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"listen\" is required: host:port, or \"off\"");
    memset(&addr, 0, sizeof addr);
    if (strcmp(l, "off") != 0) {
        if (conf_listen_parse(l, strlen(l), &addr) < 0)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "\"%.100s\" is not an address: give an IP address and a "
                                 "port, e.g. 127.0.0.1:9105 or [::1]:9105",
                                 l);
        if (!node_addr_local(addr.host))
            return ctl_error_set(err, "state",
                                 "%s is not an address of this host; see ip address",
                                 addr.host);
    }
    node_local(n)->metrics = addr;
    rc = node_metrics_apply(n, why, sizeof why);
    if (rc < 0) {
        node_local(n)->metrics = old;
        node_metrics_apply(n, text, sizeof text);
        return ctl_error_set(err, ctl_error_code_for(rc), "%s; nothing was changed", why);
    }
    rc = node_local_save(n, why, sizeof why);
    if (rc < 0) {
        node_metrics_apply(n, text, sizeof text);
        return ctl_error_set(err, "io", "%s", why);
    }
    if (addr.port == 0) {
        LOG(node_log(n), LOG_INFO, "%s admin: metrics endpoint turned off", node_name(n));
        *result = json_pack("{s:n}", "listen");
        return *result != NULL ? 0 : XE_NOMEM;
    }
    conf_format_listen(&addr, text, sizeof text);
    snprintf(url, sizeof url, "http://%s/metrics", text);
    LOG(node_log(n), LOG_INFO, "%s admin: metrics endpoint set to %s", node_name(n), url);
    *result = json_pack("{s:s, s:s}", "listen", text, "url", url);
    return *result != NULL ? 0 : XE_NOMEM;
}
