/* cmds_cluster.c: `xmpp cluster ...` on the daemon side (contract in
 * cmds_cluster.h; the workflow in docs/cluster.md "Commands"). */
#include "cmds_cluster.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "addr.h"
#include "cinvite.h"
#include "repl.h"
#include "cluster.h"
#include "conffile_parse.h"
#include "ctl_socket.h"
#include "err.h"
#include "health.h"
#include "node.h"
#include "peer.h"
#include "pframe.h"
#include "pki.h"
#include "plink.h"
#include "raft.h"
#include "rnode.h"
#include "srv.h"
#include "node_state.h"
#include "tls.h"

#define JOIN_TIMEOUT_MS 45000
#define REMOVE_TIMEOUT_MS 10000
#define TRANSFER_TIMEOUT_MS 5000

static json_t *hexid(uint64_t id)
{
    char h[17];

    node_state_node_id_hex(id, h);
    return json_string(h);
}

/* A deferred answer: result on success, the error line otherwise. */
struct dreq {
    struct node *n;
    struct ctl_deferred *d;
    json_t *result;
    const char *what;
    uint64_t id;
};

static struct dreq *dreq_new(struct node *n, const char *what)
{
    struct dreq *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->d = ctl_socket_defer(node_ctl(n));
    if (r->d == NULL) {
        free(r);
        return NULL;
    }
    r->n = n;
    r->what = what;
    return r;
}

static void dreq_finish(struct dreq *r, int rc, const char *msg)
{
    struct ctl_error e;

    memset(&e, 0, sizeof e);
    if (rc < 0) {
        const char *code = rc == XE_NOLEADER  ? "no-leader"
                           : rc == XE_TIMEOUT ? "timeout"
                           : rc == XE_EXISTS  ? "exists"
                                              : ctl_error_code_for(rc);
        if (rc == XE_NOLEADER)
            ctl_error_set(&e, code,
                          "no cluster leader: this node cannot reach a majority of the "
                          "cluster; nothing was changed (try again when xmpp cluster "
                          "status shows a leader)");
        else
            ctl_error_set(&e, code, "%s: %s", r->what,
                          msg != NULL ? msg : xe_strerror(rc));
        json_decref(r->result);
        r->result = NULL;
    }
    ctl_deferred_finish(r->d, rc < 0 ? rc : 0, r->result, &e);
    free(r);
}

static void on_dreq(void *arg, int rc, const char *msg, const void *data, size_t len)
{
    (void)data;
    (void)len;
    dreq_finish(arg, rc, msg);
}

/* cluster_result: what a cluster command leaves behind, for its answer:
 * {cluster_id, members: [{node_id, address}]} and message when non-NULL.
 * Returned owned (NULL when out of memory). */
static json_t *cluster_result(struct node *n, const char *message)
{
    const struct raft_config *cfg = rnode_config(node_rnode(n));
    struct rnode_status st;
    json_t *m = json_array();

    rnode_get_status(node_rnode(n), &st);
    for (unsigned i = 0; m != NULL && i < cfg->n; i++)
        json_array_append_new(m, json_pack("{s:o, s:s}", "node_id",
                                           hexid(cfg->members[i].id), "address",
                                           cfg->members[i].address));
    return json_pack("{s:o, s:o, s:s?}", "cluster_id", hexid(st.cluster_id), "members", m,
                     "message", message);
}

/* on_initialized answers initialize once the store is rebuilt at the peer
 * address. */
static void on_initialized(void *arg, int rc, const char *msg, const void *data,
                           size_t len)
{
    struct dreq *r = arg;

    (void)data;
    (void)len;
    if (rc >= 0)
        r->result = cluster_result(r->n, "initialized a one-node cluster");
    dreq_finish(r, rc, msg);
}

/* ---- status ---- */

/* The answer comes from a snapshot of local state (node_get_cluster_view):
 * xmpp cluster status must answer at once, even while there is no
 * leader. */

static const char *state_word(const struct node_cluster_view *v)
{
    if (!v->cluster_enabled)
        return "DISABLED";
    if (v->removed)
        return "REMOVED";
    switch (v->raft.role) {
    case RAFT_LEADER:
        return "LEADER";
    case RAFT_CANDIDATE:
    case RAFT_PRECANDIDATE:
        return "CANDIDATE";
    case RAFT_STOPPED:
        return "STOPPED";
    default:
        return "FOLLOWER";
    }
}

/* Sessions per kind that the routing table (this node's copy) puts on one
 * node. */
struct kinds {
    uint64_t node;
    json_int_t n[3]; /* enum pframe_kind */
};

static void kinds_one(void *ud, const struct pframe_route *e)
{
    struct kinds *k = ud;

    if (e->node == k->node && e->attr.kind <= PFRAME_KIND_C2S_WS)
        k->n[e->attr.kind]++;
}

/* sessions_json: {"components", "clients_tcp", "clients_websocket"} of node
 * from the table, or null when this node has none (not serving XMPP). */
static json_t *sessions_json(const struct node_cluster_view *v, uint64_t node)
{
    struct kinds k = {node, {0, 0, 0}};

    if (v->srv == NULL)
        return json_null();
    srv_cluster_each_entry(v->srv, kinds_one, &k);
    return json_pack("{s:I, s:I, s:I}", "components", k.n[PFRAME_KIND_COMPONENT],
                     "clients_tcp", k.n[PFRAME_KIND_C2S_TCP], "clients_websocket",
                     k.n[PFRAME_KIND_C2S_WS]);
}

/* components_json sets p's "components", "components_age_ms",
 * "components_stale" and, on the leader, "routes" (docs/cluster.md "Status
 * fields"): this node's own count (self non-NULL); else the count the member
 * reported in its latest PING or PONG while its link is up (pi non-NULL);
 * else, on the leader, its routing table's count for the member (routes,
 * SIZE_MAX elsewhere); else the last count the member reported, marked
 * stale; else null. */
static void components_json(json_t *p, const struct node_info *self,
                            const struct peer_info *pi, uint64_t now, size_t routes)
{
    json_t *c = json_null(), *age = json_null();
    bool stale = false;

    if (self != NULL) {
        c = json_integer((json_int_t)self->components);
        age = json_integer(0);
    } else if (pi != NULL && pi->up && pi->components_ms != 0) {
        c = json_integer((json_int_t)pi->components);
        age = json_integer((json_int_t)(now - pi->components_ms));
    } else if (routes != SIZE_MAX) {
        c = json_integer((json_int_t)routes);
    } else if (pi != NULL && pi->components_ms != 0) {
        c = json_integer((json_int_t)pi->components);
        age = json_integer((json_int_t)(now - pi->components_ms));
        stale = true;
    }
    json_object_set_new(p, "components", c);
    json_object_set_new(p, "components_age_ms", age);
    json_object_set_new(p, "components_stale", json_boolean(stale));
    if (routes != SIZE_MAX)
        json_object_set_new(p, "routes", json_integer((json_int_t)routes));
}

/* link_json sets p's "link" and, when the peer link knows the member,
 * its contact, frame counts and last error; true when it does (*pi
 * filled). */
static bool link_json(json_t *p, const struct node_cluster_view *v, uint64_t id, bool me,
                      struct peer_info *pi)
{
    if (me) {
        json_object_set_new(p, "link", json_string("self"));
        return false;
    }
    if (v->peers == NULL || peer_get(v->peers, id, pi) < 0) {
        json_object_set_new(p, "link", json_string("down"));
        json_object_set_new(p, "last_contact_ms", json_null());
        return false;
    }
    json_object_set_new(p, "link", json_string(pi->state));
    json_object_set_new(p, "last_contact_ms",
                        pi->last_contact_ms != 0
                            ? json_integer((json_int_t)(v->now_ms - pi->last_contact_ms))
                            : json_null());
    json_object_set_new(
        p, "frames",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "in", (json_int_t)pi->frames_in,
                  "out", (json_int_t)pi->frames_out, "bytes_in", (json_int_t)pi->bytes_in,
                  "bytes_out", (json_int_t)pi->bytes_out, "connects",
                  (json_int_t)pi->connects, "malformed", (json_int_t)pi->malformed,
                  "refused", (json_int_t)pi->refused));
    if (pi->last_error[0] != '\0')
        json_object_set_new(p, "last_error", json_string(pi->last_error));
    /* docs/control-protocol.md: the link's frame version, and why the last
     * link was refused */
    json_object_set_new(p, "protocol",
                        pi->version != 0 ? json_integer(pi->version) : json_null());
    if (pi->refusal[0] != '\0')
        json_object_set_new(p, "refused", json_string(pi->refusal));
    return true;
}

/* member_json: one entry of "peers" (docs/cluster.md "Status fields"). */
static json_t *member_json(const struct node_cluster_view *v,
                           const struct raft_member *mb)
{
    bool me = mb->id == v->node_id, have;
    /* The leader's routing table counts each member's components. */
    bool leader = v->srv != NULL && v->raft.role == RAFT_LEADER;
    struct peer_info pi;
    json_t *p;

    p = json_pack("{s:s, s:o, s:s, s:b, s:b}", "address", mb->address, "node_id",
                  hexid(mb->id), "role", mb->role == RAFT_VOTER ? "voter" : "non-voter",
                  "leader", mb->id == v->raft.leader_id, "self", me);
    if (p == NULL)
        return NULL;
    have = link_json(p, v, mb->id, me, &pi);
    components_json(p, me ? &v->info : NULL, have ? &pi : NULL, v->now_ms,
                    leader ? srv_cluster_components(v->srv, mb->id) : SIZE_MAX);
    json_object_set_new(p, "sessions", sessions_json(v, mb->id));
    return p;
}

/* forwarding_json: the forwarding counters (zeros when not serving). */
static json_t *forwarding_json(const struct node_cluster_view *v)
{
    struct srv_cluster_stats s;

    if (v->srv == NULL)
        return json_pack("{s:I, s:I, s:I}", "forwarded", (json_int_t)0, "queued",
                         (json_int_t)0, "bounced", (json_int_t)0);
    srv_cluster_get_stats(v->srv, &s);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "forwarded", (json_int_t)s.forwarded, "queued",
                     (json_int_t)(s.waiting + s.inflight), "bounced",
                     (json_int_t)s.errors, "delivered", (json_int_t)s.delivered,
                     "rejected", (json_int_t)s.rejected, "acked", (json_int_t)s.acked,
                     "refused", (json_int_t)s.refused, "unroutable",
                     (json_int_t)s.unroutable, "expired", (json_int_t)s.expired, "lost",
                     (json_int_t)s.lost, "routes", (json_int_t)s.routes);
}

static json_t *links_json(struct peer_mgr *pm)
{
    struct peer_stats ps;

    peer_get_stats(pm, &ps);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "up",
                     (json_int_t)ps.links_up, "accepted", (json_int_t)ps.accepted,
                     "malformed", (json_int_t)ps.malformed, "refused",
                     (json_int_t)ps.refused, "impostors", (json_int_t)ps.impostors,
                     "forbidden", (json_int_t)ps.forbidden, "timeouts",
                     (json_int_t)ps.timeouts, "over_limit", (json_int_t)ps.over_limit,
                     "write_refused", (json_int_t)ps.write_refused);
}

/* timing_json: the Raft timing profile in use; "next" when node.state
 * names another one, used from the next start (docs/cluster.md
 * "Timing"). */
static json_t *timing_json(const struct rnode_status *st, bool next_fast_lan)
{
    json_t *t = json_pack("{s:s, s:I, s:I, s:I}", "profile",
                          st->fast_lan ? "fast-lan" : "default", "heartbeat_ms",
                          (json_int_t)st->heartbeat_ms, "election_min_ms",
                          (json_int_t)st->election_min_ms, "election_max_ms",
                          (json_int_t)st->election_max_ms);

    if (t != NULL && next_fast_lan != st->fast_lan)
        json_object_set_new(t, "next",
                            json_string(next_fast_lan ? "fast-lan" : "default"));
    return t;
}

int cmds_cluster_status(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    struct node_cluster_view v;
    const struct rnode_status *st = &v.raft;
    json_t *peers, *r, *lc = json_null(), *leader = json_null();
    unsigned voters = 0;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (node_get_cluster_view(n, &v) < 0)
        return ctl_error_set(err, "state", "the node is stopping");
    peers = json_array();
    for (unsigned i = 0; i < v.cfg->n; i++) {
        if (v.cfg->members[i].role == RAFT_VOTER)
            voters++;
        json_array_append_new(peers, member_json(&v, &v.cfg->members[i]));
    }
    if (st->leader_id != 0)
        leader = json_pack("{s:o, s:s, s:b}", "node_id", hexid(st->leader_id), "address",
                           st->leader_addr, "self", st->leader_id == v.node_id);
    if (st->last_change_time != 0)
        lc = json_pack("{s:o, s:I, s:I, s:s}", "time", ctl_time(st->last_change_time),
                       "old_term", (json_int_t)st->last_change_old_term, "new_term",
                       (json_int_t)st->last_change_new_term, "reason",
                       st->last_change_reason);
    r = json_pack(
        "{s:s, s:b, s:b, s:o, s:o, s:s, s:I, s:o, s:I, s:o, s:o, s:o, s:{s:I, "
        "s:I, s:I, s:I, s:I}, s:I}",
        "state", state_word(&v), "enabled", v.cluster_enabled, "peer_link",
        v.peers != NULL, "node_id", hexid(v.node_id), "cluster_id", hexid(st->cluster_id),
        "address", v.self, "term", (json_int_t)st->term, "leader", leader, "voters",
        (json_int_t)voters, "peers", peers, "last_leader_change", lc, "forwarding",
        forwarding_json(&v), "writes", "submitted", (json_int_t)st->submitted,
        "committed", (json_int_t)st->committed, "failed", (json_int_t)st->failed,
        "forwarded", (json_int_t)st->forwarded, "pending", (json_int_t)st->pending,
        "peer_down_reports", (json_int_t)v.counters.peer_down_reports);
    if (r == NULL)
        return XE_NOMEM;
    if (v.peers != NULL)
        json_object_set_new(r, "links", links_json(v.peers));
    json_object_set_new(r, "timing", timing_json(st, v.next_fast_lan));
    if (v.removed)
        json_object_set_new(r, "removed", json_true());
    json_object_set_new(r, "draining", json_boolean(v.draining));
    if (st->stop_reason[0] != '\0')
        json_object_set_new(r, "stopped", json_string(st->stop_reason));
    /* Shown until a restart clears it, as in xmpp status. */
    if (st->role == RAFT_STOPPED) {
        char store[HEALTH_REASON_MAX];
        health_store_stopped(st->stop_reason, store, sizeof store);
        json_object_set_new(r, "store", json_string(store));
    }
    *result = r;
    return 0;
}

/* ---- trust, enable ---- */

int cmds_cluster_trust(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"bundle", NULL};
    struct node *n = ud;
    const char *bundle = ctl_arg_str(args, "bundle");
    char path[1024], why[512];

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (bundle == NULL || bundle[0] == '\0' || strlen(bundle) >= NODE_STATE_MAX_PATH)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "a bundle file name is needed");
    if (node_file_path(n, bundle, path, sizeof path) < 0 || access(path, R_OK) != 0)
        return ctl_error_set(err, "not-found",
                             "cannot read %s: put the CA bundle in the node's pki "
                             "directory (%s)",
                             bundle, node_pki_dir(n));
    /* One CA per cluster: the node's own certificate must verify against
     * the bundle its peers use too, or no peer would accept it. */
    if (node_local(n)->key[0] != '\0' && node_local(n)->cert[0] != '\0') {
        char key[1024], cert[1024];
        if (node_file_path(n, node_local(n)->key, key, sizeof key) == 0 &&
            node_file_path(n, node_local(n)->cert, cert, sizeof cert) == 0 &&
            tls_check_files(key, cert, path, why, sizeof why) < 0)
            return ctl_error_set(err, "state", "%s; nothing was changed", why);
    }
    snprintf(node_local(n)->trust, sizeof node_local(n)->trust, "%s", bundle);
    if (node_local_save(n, why, sizeof why) < 0)
        return ctl_error_set(err, "io", "%s", why);
    /* A running peer link takes the new bundle now. */
    if (cluster_running(n)) {
        cluster_stop(n);
        if (cluster_start(n, why, sizeof why) < 0)
            return ctl_error_set(err, "state", "trust saved, but the peer link: %s", why);
        *result = json_pack("{s:s, s:s, s:b}", "trust", bundle, "path", path,
                            "peer_link_restarted", 1);
    } else {
        *result = json_pack("{s:s, s:s, s:b}", "trust", bundle, "path", path,
                            "peer_link_restarted", 0);
    }
    LOG(node_log(n), LOG_INFO, "%s admin: cluster trust set to %s", node_name(n), path);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* peer_host picks the peer-link address: the first specific component
 * listen address (the node's address as the admin gave it), else
 * 127.0.0.1; port 5224. */
static void peer_host(const struct node_state *st, struct conf_listen *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->host, sizeof out->host, "127.0.0.1");
    for (size_t i = 0; i < st->n_listen; i++) {
        if (strcmp(st->listen[i].host, "0.0.0.0") != 0 &&
            strcmp(st->listen[i].host, "::") != 0) {
            snprintf(out->host, sizeof out->host, "%s", st->listen[i].host);
            break;
        }
    }
    out->port = PEER_DEFAULT_PORT;
}

/* cert_names_peer checks that the node certificate names the peer-link
 * host: members refuse a node whose certificate does not vouch for the
 * address it claims (docs/cluster.md "Identity and membership"), so an
 * enable with such a certificate could only end in a refused join later.
 * Only when the host comes from `xmpp listen`: before
 * that the peer link sits on 127.0.0.1 and follows the listen address.
 * 0, or a negative code with why. */
static int cert_names_peer(struct node *n, const struct conf_listen *peer, char *why,
                           size_t whylen)
{
    struct pki_info info;
    char path[1024], err[256];

    if (node_local(n)->n_listen == 0)
        return 0;
    if (node_file_path(n, node_local(n)->cert, path, sizeof path) < 0 ||
        pki_inspect(path, &info, err, sizeof err) < 0) {
        snprintf(why, whylen, "cannot read the node certificate %s", node_local(n)->cert);
        return XE_IO;
    }
    if (plink_sans_cover(info.sans, peer->host))
        return 0;
    snprintf(why, whylen,
             "the node certificate %.80s names %.100s but not this node's peer address "
             "%s, which the members check: make one that names it (certs/mknode ... "
             "--ip %s) and set it with xmpp certs",
             node_local(n)->cert, info.sans[0] != '\0' ? info.sans : "no address",
             peer->host, peer->host);
    return XE_INVAL;
}

int cmds_cluster_enable(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"timing", NULL};
    struct node *n = ud;
    struct node_state *st = node_local(n);
    struct conf_listen old = st->peer;
    bool was = st->cluster_enabled, timing_changed = false;
    const char *timing = ctl_arg_str(args, "timing");
    char why[512], self[PFRAME_MAX_ADDR + 1];
    struct rnode_status rs;
    json_t *tm;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (timing != NULL && strcmp(timing, "fast-lan") != 0 &&
        strcmp(timing, "default") != 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "timing is \"default\" or \"fast-lan\"");
    /* The Raft timing profile (docs/cluster.md "Commands"): kept in
     * node.state, used from the next start of the daemon. */
    if (timing != NULL && st->raft_fast_lan != (strcmp(timing, "fast-lan") == 0)) {
        st->raft_fast_lan = strcmp(timing, "fast-lan") == 0;
        timing_changed = true;
        if (node_local_save(n, why, sizeof why) < 0)
            return ctl_error_set(err, "io", "%s", why);
    }
    if (st->key[0] == '\0' || st->cert[0] == '\0')
        return ctl_error_set(err, "state",
                             "no node certificate: set it first with xmpp certs <key> "
                             "<cert> [<bundle>]");
    if (st->trust[0] == '\0')
        return ctl_error_set(err, "state",
                             "no cluster trust bundle: set it first with xmpp cluster "
                             "trust <bundle>");
    if (cluster_running(n) && rnode_config(node_rnode(n))->n <= 1) {
        /* Alone, the address still follows `xmpp listen` (an enable
         * before the listen address was set must not fix
         * the peer link at 127.0.0.1 for ever): move the link if it
         * changed. */
        struct conf_listen want;
        peer_host(st, &want);
        if (cert_names_peer(n, &want, why, sizeof why) < 0)
            return ctl_error_set(err, "state", "%s", why);
        if (strcmp(want.host, st->peer.host) != 0 || want.port != st->peer.port) {
            st->peer = want;
            if (node_local_save(n, why, sizeof why) < 0) {
                st->peer = old;
                return ctl_error_set(err, "io", "%s", why);
            }
            cluster_stop(n);
            if (cluster_start(n, why, sizeof why) < 0)
                return ctl_error_set(err, "state",
                                     "the peer link did not restart at its "
                                     "new address: %s",
                                     why);
        }
    }
    if (!cluster_running(n)) {
        /* The address follows `xmpp listen` until the node is in a
         * multi-node cluster (then it is what the members know). */
        if (rnode_config(node_rnode(n))->n <= 1 || st->peer.port == 0)
            peer_host(st, &st->peer);
        if (cert_names_peer(n, &st->peer, why, sizeof why) < 0) {
            st->peer = old;
            return ctl_error_set(err, "state", "%s", why);
        }
        st->cluster_enabled = true;
        if (node_local_save(n, why, sizeof why) < 0) {
            st->peer = old;
            st->cluster_enabled = was;
            return ctl_error_set(err, "io", "%s", why);
        }
        if (cluster_start(n, why, sizeof why) < 0) {
            st->peer = old;
            st->cluster_enabled = was;
            node_local_save(n, why + 256, 256);
            return ctl_error_set(err, "state", "%s", why);
        }
    }
    cluster_self_addr(n, self, sizeof self);
    /* timing: the shape of xmpp cluster status's (profile in use, next when
     * node.state names another one from the next start). */
    rnode_get_status(node_rnode(n), &rs);
    tm = json_pack("{s:s}", "profile", rs.fast_lan ? "fast-lan" : "default");
    if (tm != NULL && rs.fast_lan != st->raft_fast_lan)
        json_object_set_new(tm, "next",
                            json_string(st->raft_fast_lan ? "fast-lan" : "default"));
    *result = json_pack("{s:s, s:o, s:o*}", "address", self, "node_id",
                        hexid(st->node_id), "timing", tm);
    if (timing_changed)
        json_object_set_new(
            *result, "note",
            json_string("the timing takes effect when xmppd next starts: restart "
                        "xmppd on this node"));
    LOG(node_log(n), LOG_INFO, "%s admin: clustering enabled, peer address %s, timing %s",
        node_name(n), self, st->raft_fast_lan ? "fast-lan" : "default");
    return 0;
}

/* ---- initialize ---- */

int cmds_cluster_initialize(void *ud, json_t *args, json_t **result,
                            struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    const struct raft_config *cfg = rnode_config(node_rnode(n));
    const struct raft_member *me = raft_config_find(cfg, node_local(n)->node_id);
    struct rnode_status st;
    char self[PFRAME_MAX_ADDR + 1];
    struct dreq *r;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (!cluster_running(n))
        return ctl_error_set(err, "state",
                             "clustering is not enabled on this node: run xmpp cluster "
                             "enable first");
    rnode_get_status(node_rnode(n), &st);
    cluster_self_addr(n, self, sizeof self);
    if (cfg->n > 1) {
        *result = cluster_result(
            n, "already a member of a multi-node cluster; nothing changed");
        return *result != NULL ? 0 : XE_NOMEM;
    }
    if (me != NULL && strcmp(me->address, self) == 0) {
        *result = cluster_result(n, "one-node cluster (already initialized)");
        return *result != NULL ? 0 : XE_NOMEM;
    }
    /* The one-member store was made before the peer address was known:
     * make it again at the right address, with the same data. */
    r = dreq_new(n, "initialize");
    if (r == NULL)
        return XE_NOMEM;
    LOG(node_log(n), LOG_INFO, "%s initialize: this node's cluster address becomes %s",
        node_name(n), self);
    cluster_rebuild(n, on_initialized, r);
    return CTL_DEFERRED;
}

/* ---- join ---- */

static void join_done(void *arg, int rc, const char *msg, const void *data, size_t len)
{
    struct dreq *r = arg;
    struct rnode_status st;

    (void)data;
    (void)len;
    if (rc == 0 && node_rnode(r->n) != NULL) {
        rnode_get_status(node_rnode(r->n), &st);
        r->result = json_pack("{s:o, s:s}", "cluster_id", hexid(st.cluster_id), "message",
                              msg != NULL ? msg : "joined");
    }
    dreq_finish(r, rc, msg);
}

/* A join to a host name: the name is resolved off the loop (libuv's
 * thread pool, getaddrinfo) before the join starts, and the join goes to the
 * first address it gave (names were accepted and never
 * resolved, and the join waited for its timeout). */
struct join_resolve {
    uv_getaddrinfo_t req;
    struct dreq *r;
    char name[PFRAME_MAX_ADDR + 1];
    int port;
    char token[CLUSTER_TOKEN_HEX + 1];
    bool replace;
};

/* dotted_digits: s is made of digits and dots only, i.e. meant as an IPv4
 * address (getaddrinfo must not look such a string up as a name). */
static bool dotted_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static void on_join_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct join_resolve *j = req->data;
    struct node *n = j->r->n;
    char ip[INET6_ADDRSTRLEN], addr[PFRAME_MAX_ADDR + 1], msg[PFRAME_MAX_ADDR + 200];

    if (status == 0 && res != NULL && uv_ip_name(res->ai_addr, ip, sizeof ip) == 0) {
        snprintf(addr, sizeof addr, res->ai_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip,
                 j->port);
        LOG(node_log(n), LOG_INFO, "%s join: %s is %s", node_name(n), j->name, addr);
        cluster_join(n, addr, j->token, j->replace, JOIN_TIMEOUT_MS, join_done, j->r);
    } else {
        snprintf(msg, sizeof msg,
                 "cannot resolve %s: %s (give the member's address, or a name this "
                 "node's resolver knows)",
                 j->name, status < 0 ? uv_strerror(status) : "no address");
        dreq_finish(j->r, status == UV_ECANCELED ? XE_CLOSED : XE_NOTFOUND, msg);
    }
    uv_freeaddrinfo(res);
    sodium_memzero(j->token, sizeof j->token);
    free(j);
}

/* join_by_name starts resolving host for a join (answer r, taken). */
static int join_by_name(struct node *n, struct dreq *r, const char *host, int port,
                        const char *token, bool replace)
{
    struct addrinfo hints;
    struct join_resolve *j = calloc(1, sizeof *j);
    int rc;

    if (j == NULL) {
        dreq_finish(r, XE_NOMEM, NULL);
        return CTL_DEFERRED;
    }
    j->r = r;
    j->port = port;
    j->replace = replace;
    snprintf(j->name, sizeof j->name, "%s", host);
    snprintf(j->token, sizeof j->token, "%s", token);
    j->req.data = j;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = uv_getaddrinfo(node_loop(n), &j->req, on_join_resolved, host, NULL, &hints);
    if (rc < 0) {
        char msg[PFRAME_MAX_ADDR + 100];
        snprintf(msg, sizeof msg, "cannot resolve %s: %s", host, uv_strerror(rc));
        sodium_memzero(j->token, sizeof j->token);
        free(j);
        dreq_finish(r, XE_IO, msg);
    }
    return CTL_DEFERRED;
}

int cmds_cluster_join(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"address", "token", "replace", NULL};
    struct node *n = ud;
    const char *addr = ctl_arg_str(args, "address");
    const char *token = ctl_arg_str(args, "token");
    json_t *rep = json_object_get(args, "replace");
    char host[PFRAME_MAX_ADDR + 1];
    unsigned char ip[16];
    bool numeric;
    struct dreq *r;
    int port;

    (void)result;
    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (addr == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "an address is needed");
    if (!cinvite_token_text_valid(token))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "a join token is needed: run xmpp cluster invite on the "
                             "member at that address, then xmpp cluster join <addr> "
                             "<token>");
    if (!cluster_running(n))
        return ctl_error_set(err, "state",
                             "clustering is not enabled on this node: run xmpp cluster "
                             "trust <bundle> and xmpp cluster enable first");
    if (peer_parse_addr(addr, host, sizeof host, &port) < 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "bad address \"%.100s\" (host, host:port or [IPv6]:port)",
                             addr);
    numeric = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!numeric && dotted_digits(host))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"%.100s\" is not an IPv4 address (four numbers 0-255 "
                             "separated by dots)",
                             host);
    r = dreq_new(n, "join");
    if (r == NULL)
        return XE_NOMEM;
    if (!numeric)
        return join_by_name(n, r, host, port, token, json_is_true(rep));
    cluster_join(n, addr, token, json_is_true(rep), JOIN_TIMEOUT_MS, join_done, r);
    return CTL_DEFERRED;
}

/* ---- invite ---- */

#define INVITE_DEFAULT_S 600

int cmds_cluster_invite(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"ttl_s", NULL};
    struct node *n = ud;
    json_t *ttl = json_object_get(args, "ttl_s");
    json_int_t ttl_s = INVITE_DEFAULT_S;
    char token[CLUSTER_TOKEN_HEX + 1], self[PFRAME_MAX_ADDR + 1], t[CTL_TIME_LEN];
    time_t expires;
    int rc;

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (ttl != NULL) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
            json_integer_value(ttl) > CINVITE_TTL_MAX_S)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "the token's lifetime must be 1 s to 24 h");
        ttl_s = json_integer_value(ttl);
    }
    if (!cluster_running(n))
        return ctl_error_set(err, "state",
                             "clustering is not enabled on this node: run xmpp cluster "
                             "enable (and initialize or join) first");
    rc = cluster_invite(n, (uint64_t)ttl_s * 1000, token, sizeof token);
    if (rc == XE_LIMIT)
        return ctl_error_set(err, "state",
                             "16 join tokens are open on this node: use them or wait "
                             "until they expire");
    if (rc < 0)
        return rc;
    cluster_self_addr(n, self, sizeof self);
    expires = time(NULL) + (time_t)ttl_s;
    ctl_time_text(expires, t);
    /* The token is shown once, here, and never logged. */
    LOG(node_log(n), LOG_INFO, "%s join token made (single use, expires %s)",
        node_name(n), t);
    *result = json_pack("{s:s, s:s, s:s, s:I}", "token", token, "address", self,
                        "expires", t, "ttl_s", ttl_s);
    sodium_memzero(token, sizeof token);
    return *result != NULL ? 0 : XE_NOMEM;
}

/* ---- remove ---- */

/* A shortened node id must have this many hex digits: one or two digits
 * matched a member by accident. */
#define MIN_ID_PREFIX 4

/* list_members appends " <id> (<address>)" for each member whose id starts
 * with prefix (all of them when none does) to out, comma-separated. */
static void list_members(const struct raft_config *cfg, const char *prefix, char *out,
                         size_t outlen)
{
    size_t plen = strlen(prefix), used = 0;
    bool any = false;

    for (unsigned i = 0; i < cfg->n; i++) {
        char h[17];
        node_state_node_id_hex(cfg->members[i].id, h);
        any = any || strncasecmp(h, prefix, plen) == 0;
    }
    out[0] = '\0';
    for (unsigned i = 0; i < cfg->n && used < outlen; i++) {
        char h[17];
        int k;
        node_state_node_id_hex(cfg->members[i].id, h);
        if (any && strncasecmp(h, prefix, plen) != 0)
            continue;
        k = snprintf(out + used, outlen - used, "%s%s (%s)", used > 0 ? ", " : "", h,
                     cfg->members[i].address);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}

/* resolve_member finds the member that args name: "node", a hex id or a
 * prefix of at least MIN_ID_PREFIX digits that starts exactly one member's
 * id, or "address", its peer address.  Fills *id; else sets err (the
 * candidates listed) and returns < 0. */
static int resolve_member(struct node *n, json_t *args, uint64_t *id,
                          struct ctl_error *err)
{
    const struct raft_config *cfg = rnode_config(node_rnode(n));
    const char *s = ctl_arg_str(args, "node");
    const char *a = ctl_arg_str(args, "address");
    char cands[512];

    if (s != NULL) {
        size_t len = strlen(s), matches = 0;
        if (!addr_node_id_prefix_valid(s))
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "node must be a hex node id (see xmpp cluster status)");
        list_members(cfg, s, cands, sizeof cands);
        if (len < MIN_ID_PREFIX)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "node id \"%s\" is too short: give at least %d hex "
                                 "digits or the address of one of: %s",
                                 s, MIN_ID_PREFIX, cands);
        for (unsigned i = 0; i < cfg->n; i++) {
            char h[17];
            node_state_node_id_hex(cfg->members[i].id, h);
            if (strncasecmp(h, s, len) == 0) {
                *id = cfg->members[i].id;
                matches++;
            }
        }
        if (matches == 1)
            return 0;
        if (matches == 0)
            return ctl_error_set(err, "not-found",
                                 "node %s is not a member; the members are: %s", s,
                                 cands);
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "node id \"%s\" names %zu members: %s; give more digits or "
                             "the address",
                             s, matches, cands);
    }
    if (a != NULL) {
        char host[PFRAME_MAX_ADDR + 1], norm[PFRAME_MAX_ADDR + 1];
        int port;
        const struct raft_member *mb;
        if (peer_parse_addr(a, host, sizeof host, &port) < 0)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "bad address %s", a);
        addr_join(host, (unsigned)port, norm, sizeof norm);
        mb = raft_config_find_address(cfg, norm);
        if (mb == NULL)
            return ctl_error_set(err, "not-found",
                                 "no member at %s; see xmpp cluster status", norm);
        *id = mb->id;
        return 0;
    }
    return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                         "a node id or an address is needed");
}

/* removal_risk says why removing member id needs the admin's --yes, into
 * why (empty when it does not): it removes the leader (an election follows,
 * the Raft thesis §4.2.2), or fewer than a majority of the voters that stay
 * are reachable from here (this node, or a peer link that is up), so the
 * smaller cluster may not be able to elect a leader or commit. */
static void removal_risk(struct node *n, uint64_t id, char *why, size_t whylen)
{
    const struct raft_config *cfg = rnode_config(node_rnode(n));
    struct peer_mgr *pm = cluster_peers(n);
    struct rnode_status st;
    unsigned stay = 0, reach = 0;
    char h[17];

    why[0] = '\0';
    rnode_get_status(node_rnode(n), &st);
    node_state_node_id_hex(id, h);
    for (unsigned i = 0; i < cfg->n; i++) {
        const struct raft_member *mb = &cfg->members[i];
        struct peer_info pi;
        if (mb->id == id || mb->role != RAFT_VOTER)
            continue;
        stay++;
        if (mb->id == node_local(n)->node_id ||
            (pm != NULL && peer_get(pm, mb->id, &pi) == 0 && strcmp(pi.state, "up") == 0))
            reach++;
    }
    if (id == st.leader_id)
        snprintf(why, whylen, "node %s is the leader: removing it starts an election", h);
    else if (stay > 0 && 2 * reach <= stay)
        snprintf(why, whylen,
                 "removing node %s leaves %u voter(s) of which only %u reachable from "
                 "here, not a majority",
                 h, stay, reach);
}

int cmds_cluster_remove(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"node", "address", "confirmed", NULL};
    struct node *n = ud;
    uint64_t id = 0;
    struct dreq *r;
    char risk[256];

    (void)result;
    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    if (resolve_member(n, args, &id, err) < 0)
        return XE_INVAL;
    removal_risk(n, id, risk, sizeof risk);
    if (risk[0] != '\0' && !json_is_true(json_object_get(args, "confirmed")))
        return ctl_error_set(err, "confirm", "%s; add --yes to remove it anyway", risk);
    r = dreq_new(n, "remove");
    if (r == NULL)
        return XE_NOMEM;
    r->result = json_pack("{s:o}", "removed", hexid(id));
    if (risk[0] != '\0')
        LOG(node_log(n), LOG_WARN, "%s cluster remove confirmed with --yes: %s",
            node_name(n), risk);
    cluster_remove(n, id, REMOVE_TIMEOUT_MS, on_dreq, r);
    return CTL_DEFERRED;
}

/* ---- disable: hand leadership over, leave, go standalone ---- */

static void disable_finish(struct dreq *r, int rc, const char *msg);

static void disable_rebuilt(void *arg, int rc, const char *msg, const void *d, size_t l)
{
    (void)d;
    (void)l;
    dreq_finish(arg, rc, msg);
}

static void disable_finish(struct dreq *r, int rc, const char *msg)
{
    struct node *n = r->n;
    char why[512];

    if (rc < 0 && rc != XE_NOTFOUND) {
        dreq_finish(r, rc, msg);
        return;
    }
    cluster_stop(n);
    node_local(n)->cluster_enabled = false;
    if (node_local_save(n, why, sizeof why) < 0) {
        dreq_finish(r, XE_IO, why);
        return;
    }
    /* Alone again: a one-member store with the data this node had. */
    if (rnode_config(node_rnode(n))->n > 1) {
        cluster_rebuild(n, disable_rebuilt, r);
        return;
    }
    dreq_finish(r, 0, NULL);
}

/* The answer to this node's REMOVE, kept for the next loop turn. */
struct removed_ans {
    struct dreq *r;
    int rc;
    char msg[300];
    bool has_msg;
};

static void disable_removed_later(struct node *n, void *arg, bool cancelled)
{
    struct removed_ans *a = arg;

    (void)n;
    if (cancelled)
        dreq_finish(a->r, XE_CLOSED, "the node is stopping");
    else
        disable_finish(a->r, a->rc, a->has_msg ? a->msg : NULL);
    free(a);
}

/* disable_removed may run inside an rnode callback (a leader answering
 * its own REMOVE, or a refusal inside the transfer's callback) or a peer
 * link hook (the leader's answer): going alone stops the peer link and
 * replaces the store, so it waits for the next loop turn (rnode.h: no
 * rnode_close from inside its callbacks). */
static void disable_removed(void *arg, int rc, const char *msg, const void *d, size_t l)
{
    struct dreq *r = arg;
    struct removed_ans *a = calloc(1, sizeof *a);

    (void)d;
    (void)l;
    if (a == NULL) {
        dreq_finish(r, XE_NOMEM, "out of memory after leaving the cluster");
        return;
    }
    a->r = r;
    a->rc = rc;
    a->has_msg = msg != NULL;
    if (msg != NULL)
        snprintf(a->msg, sizeof a->msg, "%s", msg);
    node_later(r->n, disable_removed_later, a);
}

static void leave(struct dreq *r)
{
    cluster_remove(r->n, node_local(r->n)->node_id, REMOVE_TIMEOUT_MS, disable_removed,
                   r);
}

static void disable_transferred(void *arg, int rc, const char *msg)
{
    struct dreq *r = arg;

    if (rc < 0) {
        dreq_finish(r, rc, msg != NULL ? msg : "leadership could not be handed over");
        return;
    }
    if (r->result != NULL)
        json_object_set_new(r->result, "leadership_transferred", json_true());
    leave(r);
}

/* disable_result: the answer of cluster disable: the cluster this node
 * was in, whether it left a multi-node cluster, and whether it handed
 * leadership over (set later, by disable_transferred).  Returned owned. */
static json_t *disable_result(struct node *n, bool left, const char *message)
{
    struct rnode_status st;

    rnode_get_status(node_rnode(n), &st);
    return json_pack("{s:o, s:b, s:b, s:s, s:s}", "cluster_id", hexid(st.cluster_id),
                     "left", left, "leadership_transferred", 0, "clustering", "disabled",
                     "message", message);
}

int cmds_cluster_disable(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    struct node *n = ud;
    const struct raft_config *cfg = rnode_config(node_rnode(n));
    struct dreq *r;
    char why[512];

    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    /* A node that is not a member any more (removed) only goes alone. */
    if (cluster_running(n) && cfg->n > 1 &&
        (cluster_removed(n) || raft_config_find(cfg, node_local(n)->node_id) == NULL)) {
        r = dreq_new(n, "disable");
        if (r == NULL)
            return XE_NOMEM;
        r->result = disable_result(
            n, false, "clustering disabled; this node was no longer a member");
        disable_finish(r, 0, NULL);
        return CTL_DEFERRED;
    }
    if (cfg->n <= 1 || !cluster_running(n)) {
        bool was = node_local(n)->cluster_enabled || cluster_running(n);

        cluster_stop(n);
        if (node_local(n)->cluster_enabled) {
            node_local(n)->cluster_enabled = false;
            if (node_local_save(n, why, sizeof why) < 0)
                return ctl_error_set(err, "io", "%s", why);
        }
        *result = disable_result(n, false,
                                 was ? "clustering disabled; this node was alone, no "
                                       "member was removed"
                                     : "clustering was not enabled; nothing changed");
        if (was)
            LOG(node_log(n), LOG_INFO, "%s admin: clustering disabled (alone)",
                node_name(n));
        return *result != NULL ? 0 : XE_NOMEM;
    }
    r = dreq_new(n, "disable");
    if (r == NULL)
        return XE_NOMEM;
    r->result = disable_result(n, true,
                               "left the cluster and disabled clustering; this node "
                               "now runs alone with its data");
    /* Leaving closes every XMPP session here (the node stops serving once
     * its removal applies, and serves again on its one-member store): the
     * answer says how many. */
    if (r->result != NULL && node_xmpp_running(n)) {
        struct node_info info;
        node_get_info(n, &info);
        json_object_set_new(r->result, "components_closed",
                            json_integer((json_int_t)info.components));
        json_object_set_new(r->result, "clients_closed",
                            json_integer((json_int_t)info.clients));
    }
    if (rnode_is_leader(node_rnode(n))) {
        rnode_transfer(node_rnode(n), 0, TRANSFER_TIMEOUT_MS, disable_transferred, r);
        return CTL_DEFERRED;
    }
    leave(r);
    return CTL_DEFERRED;
}

/* ---- reset on a member ---- */

int cmds_cluster_reset_check(struct node *n, bool force, struct ctl_error *err)
{
    const struct raft_config *cfg =
        node_rnode(n) != NULL ? rnode_config(node_rnode(n)) : NULL;
    struct rnode_status st;
    char id[17];

    if (cfg == NULL || cfg->n <= 1) {
        cluster_stop(n);
        return 0;
    }
    rnode_get_status(node_rnode(n), &st);
    node_state_node_id_hex(node_local(n)->node_id, id);
    if (!force)
        return ctl_error_set(err, "state",
                             "this node (%s) is a member of cluster %016" PRIx64
                             " (%u members): leave first with xmpp cluster disable, or "
                             "use --force (then remove the stale member with xmpp "
                             "cluster remove %s)",
                             id, st.cluster_id, cfg->n, id);
    LOG(node_log(n), LOG_WARN,
        "%s reset --force on a member of cluster %016" PRIx64
        ": the cluster keeps node %s as a stale member",
        node_name(n), st.cluster_id, id);
    cluster_stop(n);
    return 0;
}
