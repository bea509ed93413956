/* srv_ws_links.c: the URLs host-meta names (XEP-0156 §3;
 * docs/websocket.md "Discovery across the cluster").  The edge hands in
 * this node's listen hosts and the Raft configuration; the
 * choice of what a browser is told lives here: every voting member, this
 * node first, each at this node's own WebSocket ports and path (the
 * settings are node-local; a node cannot know another's, so the cluster
 * is expected to use the same ones on every node). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "err.h"
#include "srv_int.h"
#include "ws.h"

/* A URL list being built. */
struct urls {
    char **v;
    size_t n;
};

static void urls_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* member_host copies the host of a peer address ("host", "host:port",
 * "[v6]:port") into out, without brackets.  XE_INVAL when it does not
 * parse or does not fit. */
static int member_host(const char *addr, char *out, size_t cap)
{
    return addr_host_of(addr, out, cap);
}

/* add_url appends scheme://host:port path (the authority as addr_join
 * writes it: host bracketed when IPv6, RFC 3986 §3.2.2) unless it is
 * already listed; a host longer than ADDR_HOST_MAX (no address that
 * parses has one) is skipped.  0 or XE_NOMEM. */
static int add_url(struct urls *u, const char *scheme, const char *host, unsigned port,
                   const char *path)
{
    char auth[ADDR_TEXT_MAX + 1];
    int len;
    char *s, **v;

    if (addr_join(host, port, auth, sizeof auth) != 0)
        return 0;
    len = snprintf(NULL, 0, "%s://%s%s", scheme, auth, path);
    if (len < 0 || (s = malloc((size_t)len + 1)) == NULL)
        return XE_NOMEM;
    snprintf(s, (size_t)len + 1, "%s://%s%s", scheme, auth, path);
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->v[i], s) == 0) {
            free(s);
            return 0;
        }
    v = realloc(u->v, (u->n + 1) * sizeof *v);
    if (v == NULL) {
        free(s);
        return XE_NOMEM;
    }
    u->v = v;
    v[u->n++] = s;
    return 0;
}

/* add_host appends host's URLs: wss first, then ws (each when its port is
 * set).  A wildcard listen address stands for every address of the node,
 * so the URL names the XMPP domain (a name the certificate holds). */
static int add_host(struct srv *srv, struct urls *u, const char *host,
                    const struct srv_ws_links *l)
{
    const char *path = l->path != NULL && l->path[0] != '\0' ? l->path : "/";
    int rc = 0;

    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        host = srv->domain;
    if (l->wss_port != 0)
        rc = add_url(u, "wss", host, l->wss_port, path);
    if (rc == 0 && l->ws_port != 0)
        rc = add_url(u, "ws", host, l->ws_port, path);
    return rc;
}

int srv_set_ws_links(struct srv *srv, const struct srv_ws_links *l)
{
    struct urls u = {0};
    char host[256];
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < l->nlisten; i++)
        rc = add_host(srv, &u, l->listen[i], l);
    /* The other voting members, in the configuration's order: learners
     * (a node still catching up to join) serve no one yet. */
    for (size_t i = 0; rc == 0 && i < l->nmembers; i++) {
        const struct srv_ws_member *m = &l->members[i];
        if (m->self || !m->voter || member_host(m->address, host, sizeof host) < 0)
            continue;
        rc = add_host(srv, &u, host, l);
    }
    if (rc < 0) {
        urls_free(u.v, u.n);
        return rc;
    }
    if (u.v == NULL && (u.v = malloc(sizeof *u.v)) == NULL)
        return XE_NOMEM; /* an empty list, set: still overrides the config's */
    urls_free(srv->ws_urls, srv->nws_urls);
    srv->ws_urls = u.v;
    srv->nws_urls = u.n;
    srv__ws_sync(srv);
    return 0;
}

const char *const *srv_ws_urls(const struct srv *srv, size_t *n)
{
    *n = srv->ws_cfg->nurls;
    return srv->ws_cfg->urls;
}

void srv__ws_sync(struct srv *srv)
{
    if (srv->ws_urls == NULL) {
        srv->ws_cfg = srv->ws_base;
        return;
    }
    srv->ws_own = *srv->ws_base;
    srv->ws_own.urls = (const char *const *)srv->ws_urls;
    srv->ws_own.nurls = srv->nws_urls;
    srv->ws_cfg = &srv->ws_own;
}

void srv__ws_links_free(struct srv *srv)
{
    urls_free(srv->ws_urls, srv->nws_urls);
    srv->ws_urls = NULL;
    srv->nws_urls = 0;
}
