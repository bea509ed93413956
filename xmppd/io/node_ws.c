/* node_ws.c: the WebSocket side of one XMPP generation (RFC 7395;
 * docs/websocket.md): the ws and wss listeners on the addresses of
 * xmpp listen, and the ws_config srv reads (path, host-meta URLs).  The
 * connections themselves are srv's (srv_ws.c); the edge only carries
 * bytes, runs TLS for wss and reports it (hook_secured), as for 5222. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "conn.h"
#include "node_int.h"
#include "rnode.h"
#include "srv.h"
#include "tls.h"

/* node__ws_links gives srv what host-meta names (srv_set_ws_links: the
 * choice is srv's): this node's listen hosts, the Raft configuration when
 * clustered (the latest, as `xmpp cluster status` lists it: the status
 * hook that calls this fires when it changes, not when it commits), and
 * this node's ports and path.  ws URLs
 * only when a client may log in over plain ws (TLS optional for clients:
 * a URL that only leads to a refusal is not advertised). */
void node__ws_links(struct node *n, struct xside *x)
{
    const char *hosts[NODE_STATE_MAX_LISTEN + 1];
    struct srv_ws_member m[RAFT_MAX_MEMBERS];
    struct srv_ws_links l = {.listen = hosts, .members = m, .path = n->st.ws_path};
    const struct raft_config *cfg;

    if (x == NULL || x->srv == NULL)
        return;
    for (size_t i = 0; i < n->st.n_listen && i < NODE_STATE_MAX_LISTEN; i++)
        hosts[l.nlisten++] = n->st.listen[i].host;
    if (l.nlisten == 0)
        hosts[l.nlisten++] = CONF_DEFAULT_LISTEN_HOST;
    if (n->rn != NULL && cluster_running(n)) {
        cfg = rnode_config(n->rn);
        for (unsigned i = 0; i < cfg->n; i++)
            m[l.nmembers++] =
                (struct srv_ws_member){.address = cfg->members[i].address,
                                       .voter = cfg->members[i].role == RAFT_VOTER,
                                       .self = cfg->members[i].id == n->st.node_id};
    }
    if (n->st.wss_port != 0 && x->tls != NULL)
        l.wss_port = n->st.wss_port;
    if (n->st.client_tls == NODE_STATE_TLS_OPTIONAL)
        l.ws_port = n->st.ws_port;
    if (srv_set_ws_links(x->srv, &l) < 0)
        LOG(&n->log, LOG_ERROR, "%s host-meta: out of memory, URL list not updated",
            n->name);
}

void node__ws_policy(struct node *n, struct xside *x)
{
    for (size_t i = 0; i < n->st.n_ws_origins; i++)
        x->ws_origin_p[i] = n->st.ws_origins[i];
    for (size_t i = 0; i < n->st.n_ws_proxies; i++)
        x->ws_proxy_p[i] = n->st.ws_proxies[i];
    x->ws_cfg.origins = x->ws_origin_p;
    x->ws_cfg.norigins = n->st.n_ws_origins;
    x->ws_cfg.trusted_proxies = x->ws_proxy_p;
    x->ws_cfg.nproxies = n->st.n_ws_proxies;
}

void node_ws_policy_changed(struct node *n)
{
    if (n->x == NULL)
        return;
    node__ws_policy(n, n->x);
    /* srv keeps its own copy of the config next to host-meta's URLs
     * (srv_ws_links.c): hand it the new lists. */
    srv_set_ws_config(n->x->srv, &n->x->ws_cfg);
}

void node__ws_start(struct node *n, struct xside *x, const struct conf_listen *l,
                    size_t nl)
{
    bool ws = n->st.ws_port != 0, wss = n->st.wss_port != 0 && x->tls != NULL;
    char why[256];

    x->ws_error[0] = '\0';
    ws_config_default(&x->ws_cfg);
    x->ws_cfg.path = n->st.ws_path;
    node__ws_policy(n, x);
    srv_set_ws_config(x->srv, &x->ws_cfg);
    node__ws_links(n, x);
    if (n->st.wss_port != 0 && x->tls == NULL)
        snprintf(x->ws_error, sizeof x->ws_error,
                 "wss needs a certificate and none is set (xmpp certs <key> <cert> "
                 "[<bundle>])");
    for (size_t i = 0; i < nl; i++) {
        int rc = 0;
        if (ws)
            rc = conn_listen(x->cm, l[i].host, (int)n->st.ws_port, SRV_LISTENER_WEBSOCKET,
                             why, sizeof why);
        if (rc == 0 && wss)
            rc = conn_listen_tls(x->cm, l[i].host, (int)n->st.wss_port,
                                 SRV_LISTENER_WEBSOCKET_TLS, x->tls, TLS_MODE_REQUIRED,
                                 why, sizeof why);
        if (rc < 0) {
            snprintf(x->ws_error, sizeof x->ws_error, "%s", why);
            break;
        }
        x->ws_listening += ws + wss;
    }
    if (x->ws_error[0] != '\0')
        LOG(&n->log, LOG_ERROR, "%s websocket listener: %s", n->name, x->ws_error);
}
