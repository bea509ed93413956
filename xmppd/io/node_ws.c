/* node_ws.c: the WebSocket side of one XMPP generation (RFC 7395, issue
 * 11; docs/websocket.md): the ws and wss listeners on the addresses of
 * xmpp listen, and the ws_config srv reads (path, host-meta URLs).  The
 * connections themselves are srv's (srv_ws.c); the edge only carries
 * bytes, runs TLS for wss and reports it (hook_secured), as for 5222. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "conn.h"
#include "node_int.h"
#include "rnode.h"
#include "srv.h"
#include "tls.h"

/* url_host: the host of this node's URLs for listen address host: the
 * address itself, bracketed when IPv6 (RFC 3986 §3.2.2); the XMPP domain
 * for a wildcard address (a name the certificate holds, certs/mknode). */
static void url_host(const char *host, const char *domain, char *out, size_t cap)
{
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || host[0] == '\0')
        snprintf(out, cap, "%s", domain);
    else if (strchr(host, ':') != NULL)
        snprintf(out, cap, "[%s]", host);
    else
        snprintf(out, cap, "%s", host);
}

/* add_url appends a URL to x's list; false when out of memory. */
static bool add_url(struct xside *x, const char *scheme, const char *host, unsigned port,
                    const char *path)
{
    char **v = realloc(x->ws_urls, (x->nws_urls + 1) * sizeof *v);
    char u[256];

    if (v == NULL)
        return false;
    x->ws_urls = v;
    snprintf(u, sizeof u, "%s://%s:%u%s", scheme, host, port, path);
    if ((v[x->nws_urls] = strdup(u)) == NULL)
        return false;
    x->nws_urls++;
    return true;
}

/* make_urls lists this node's wss URLs, and its ws URLs when a client
 * may log in over plain ws (TLS optional for clients: a URL that only
 * leads to a refusal is not advertised). */
static void make_urls(struct node *n, struct xside *x, const struct conf_listen *l,
                      size_t nl, bool wss, bool ws)
{
    const char *domain = cl_domain(rnode_state(n->rn));
    char host[80];

    for (size_t i = 0; i < nl; i++) {
        url_host(l[i].host, domain, host, sizeof host);
        if ((wss && !add_url(x, "wss", host, n->st.wss_port, n->st.ws_path)) ||
            (ws && !add_url(x, "ws", host, n->st.ws_port, n->st.ws_path)))
            return;
    }
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
    if (n->x != NULL)
        node__ws_policy(n, n->x);
}

void node__ws_start(struct node *n, struct xside *x, const struct conf_listen *l,
                    size_t nl)
{
    bool ws = n->st.ws_port != 0, wss = n->st.wss_port != 0 && x->tls != NULL;
    char why[256];

    x->ws_error[0] = '\0';
    ws_config_default(&x->ws_cfg);
    x->ws_cfg.path = n->st.ws_path;
    make_urls(n, x, l, nl, wss, ws && n->st.client_tls == STATE_TLS_OPTIONAL);
    x->ws_cfg.urls = (const char *const *)x->ws_urls;
    x->ws_cfg.nurls = x->nws_urls;
    node__ws_policy(n, x);
    srv_set_ws_config(x->srv, &x->ws_cfg);
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

void node__ws_free(struct xside *x)
{
    for (size_t i = 0; i < x->nws_urls; i++)
        free(x->ws_urls[i]);
    free(x->ws_urls);
    x->ws_urls = NULL;
    x->nws_urls = 0;
}
