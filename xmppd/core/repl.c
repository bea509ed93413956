/* repl.c: the replicated cluster state: validation, lookup and cl_apply
 * (contract in repl.h; the byte encoding is in repl_codec.c; format in
 * docs/replicated-state.md). */
#include "repl_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "addr.h"
#include "err.h"
#include "jid.h"
#include "never.h"
#include "precis.h"
#include "roster.h"

_Static_assert((int)CL_CMD_ROSTER_SET == (int)ROSTER_CMD_SET &&
                   (int)CL_CMD_ROSTER_DEL == (int)ROSTER_CMD_DEL,
               "one log carries both: the type numbers must agree");

/* ---- validation ---- */

_Static_assert(CL_NAME_MAX == ADDR_CALLBRIDGE_MAX, "one rule for call-bridge names");

bool cl_name_valid(const char *name)
{
    return name != NULL && addr_callbridge_valid(name, strlen(name));
}

bool cl_domain_valid(const char *domain)
{
    return domain != NULL && domain[0] != '\0' && strlen(domain) <= CL_DOMAIN_MAX &&
           jid_domain_valid(domain);
}

int cl_user_check(const char *user)
{
    char prepared[CL_USER_MAX + 1];
    size_t n;
    int rc;

    if (user == NULL)
        return XE_INVAL;
    n = strlen(user);
    if (n < 1 || n > CL_USER_MAX)
        return XE_INVAL;
    /* A prepared localpart (RFC 7622 §3.3): PRECIS UsernameCaseMapped gives
     * it back unchanged, so two spellings of one name never make two
     * accounts. */
    rc = precis_username(user, n, prepared, sizeof prepared);
    if (rc == XE_NOMEM)
        return rc;
    return rc == 0 && strcmp(prepared, user) == 0 ? 0 : XE_INVAL;
}

bool cl_user_valid(const char *user)
{
    return cl_user_check(user) == 0;
}

static bool scram_valid(const struct cl_scram *s)
{
    return s->salt_len >= CL_SALT_MIN && s->salt_len <= CL_SALT_MAX &&
           s->iterations >= CL_ITER_MIN && s->iterations <= CL_ITER_MAX;
}

bool cl__creds_valid(const struct cl_user *u)
{
    return u != NULL && u->sha256.present && scram_valid(&u->sha256) &&
           (!u->sha1.present || scram_valid(&u->sha1));
}

bool cl_user_explain(const char *user, char *why, size_t len)
{
    static const char rule[] = "a user name has 1-1023 bytes and no spaces, control "
                               "characters or \" & ' / : < > @ (RFC 7622 §3.3.1)";
    size_t n = user != NULL ? strlen(user) : 0;

    if (n == 0) {
        snprintf(why, len, "the user name is empty; %s", rule);
        return false;
    }
    if (n > CL_USER_MAX) {
        snprintf(why, len, "the user name is %zu bytes long; %s", n, rule);
        return false;
    }
    /* RFC 7622 §3.3.1: these never appear in a localpart, before or after
     * preparation. */
    for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++) {
        if (*p == ' ')
            snprintf(why, len, "user name \"%.60s\" has a space; %s", user, rule);
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(why, len, "the user name has a control character (0x%02x); %s", *p,
                     rule);
        else if (strchr("\"&'/:<>@", *p) != NULL)
            snprintf(why, len, "user name \"%.60s\" has '%c'; %s", user, *p, rule);
        else
            continue;
        return false;
    }
    return true;
}

/* ---- state ---- */

int cl_state_new(struct cl_state **out)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return XE_NOMEM;
    if (roster_db_new(&(*out)->rosters) < 0) {
        free(*out);
        *out = NULL;
        return XE_NOMEM;
    }
    return 0;
}

static void cb_free(struct cl_callbridge *cb)
{
    if (cb == NULL)
        return;
    sodium_free(cb->secret); /* sodium_free wipes */
    free(cb);
}

void cl__user_free(struct cl_user *u)
{
    if (u == NULL)
        return;
    sodium_memzero(u, sizeof *u);
    free(u);
}

void cl_state_free(struct cl_state *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_cb; i++)
        cb_free(s->cb[i]);
    for (size_t i = 0; i < s->n_users; i++)
        cl__user_free(s->users[i]);
    free(s->cb);
    free(s->users);
    roster_db_free(s->rosters);
    for (size_t i = 0; i < s->n_sess; i++)
        free(s->sess[i].r);
    free(s);
}

uint64_t cl_cluster_id(const struct cl_state *s)
{
    return s->cluster_id;
}

const char *cl_domain(const struct cl_state *s)
{
    return s->domain;
}

size_t cl_callbridge_count(const struct cl_state *s)
{
    return s->n_cb;
}

const struct roster_db *cl_rosters(const struct cl_state *s)
{
    return s->rosters;
}

uint32_t cl_user_iterations(const struct cl_state *s)
{
    return s->user_iter != 0 ? s->user_iter : CL_ITER_DEFAULT;
}

const struct cl_callbridge *cl_callbridge_at(const struct cl_state *s, size_t i)
{
    return i < s->n_cb ? s->cb[i] : NULL;
}

size_t cl_user_count(const struct cl_state *s)
{
    return s->n_users;
}

const struct cl_user *cl_user_at(const struct cl_state *s, size_t i)
{
    return i < s->n_users ? s->users[i] : NULL;
}

/* find_name binary-searches arr, n entries sorted by name, each a struct
 * whose first member is its char name[] (so the entry pointer converts to
 * the name, C11 6.7.2.1p15): returns the position of name, or where it
 * would go (*found false).  Call bridges and users share it. */
static size_t find_name(void *const *arr, size_t n, const char *name, bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp((const char *)arr[mid], name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

_Static_assert(offsetof(struct cl_callbridge, name) == 0, "find_name reads name first");
_Static_assert(offsetof(struct cl_user, name) == 0, "find_name reads name first");

static size_t find_cb(const struct cl_state *s, const char *name, bool *found)
{
    return find_name((void *const *)s->cb, s->n_cb, name, found);
}

static size_t find_user(const struct cl_state *s, const char *name, bool *found)
{
    return find_name((void *const *)s->users, s->n_users, name, found);
}

const struct cl_callbridge *cl_callbridge_find(const struct cl_state *s, const char *name)
{
    bool found;
    size_t i = find_cb(s, name, &found);

    return found ? s->cb[i] : NULL;
}

const struct cl_user *cl_user_find(const struct cl_state *s, const char *name)
{
    bool found;
    size_t i = find_user(s, name, &found);

    return found ? s->users[i] : NULL;
}

/* cl__grow makes room for one more pointer in *arr (cap *cap); XE_NOMEM leaves
 * everything as it was. */
int cl__grow(void ***arr, size_t n, size_t *cap)
{
    void **na;
    size_t ncap;

    if (n < *cap)
        return 0;
    ncap = *cap == 0 ? 8 : *cap * 2;
    na = realloc(*arr, ncap * sizeof *na);
    if (na == NULL)
        return XE_NOMEM;
    *arr = na;
    *cap = ncap;
    return 0;
}

static void insert_at(void **arr, size_t *n, size_t pos, void *item)
{
    memmove(&arr[pos + 1], &arr[pos], (*n - pos) * sizeof *arr);
    arr[pos] = item;
    (*n)++;
}

static void remove_at(void **arr, size_t *n, size_t pos)
{
    memmove(&arr[pos], &arr[pos + 1], (*n - pos - 1) * sizeof *arr);
    (*n)--;
}

/* cl__cb_new makes a call-bridge entry with a copy of secret in sodium memory. */
struct cl_callbridge *cl__cb_new(const char *name, const unsigned char *secret,
                                 size_t len)
{
    struct cl_callbridge *cb = calloc(1, sizeof *cb);

    if (cb == NULL)
        return NULL;
    cb->secret = sodium_malloc(len);
    if (cb->secret == NULL) {
        free(cb);
        return NULL;
    }
    memcpy(cb->secret, secret, len);
    cb->secret_len = len;
    snprintf(cb->name, sizeof cb->name, "%s", name);
    return cb;
}

/* ---- apply ---- */

const char *cl_effect_name(enum cl_effect_kind k)
{
    switch (k) {
    case CL_EFF_NONE:
        return "none";
    case CL_EFF_INIT:
        return "init";
    case CL_EFF_DOMAIN:
        return "domain";
    case CL_EFF_CB_ADDED:
        return "callbridge-added";
    case CL_EFF_CB_SECRET:
        return "callbridge-secret-changed";
    case CL_EFF_CB_DELETED:
        return "callbridge-deleted";
    case CL_EFF_USER_ADDED:
        return "user-added";
    case CL_EFF_USER_CHANGED:
        return "user-changed";
    case CL_EFF_USER_DELETED:
        return "user-deleted";
    case CL_EFF_USER_ITER:
        return "user-iterations";
    case CL_EFF_ROSTER:
        return "roster";
    case CL_EFF_LOGIN:
        return "login";
    case CL_EFF_PRES_LAST:
        return "presence-last";
    }
    return "unknown";
}

static int apply_cb_set(struct cl_state *s, const struct cl_cmd *c,
                        struct cl_effects *eff)
{
    bool found;
    size_t pos = find_cb(s, c->name, &found);
    struct cl_callbridge *nb;

    if (found && (c->flags & CL_CMD_ADD))
        return XE_EXISTS;
    if (found && s->cb[pos]->secret_len == c->secret_len &&
        sodium_memcmp(s->cb[pos]->secret, c->secret, c->secret_len) == 0) {
        eff->cb = s->cb[pos];
        return 0; /* the same secret again: nothing changes, its time neither */
    }
    if (!found && cl__grow((void ***)&s->cb, s->n_cb, &s->cap_cb) < 0)
        return XE_NOMEM;
    nb = cl__cb_new(c->name, c->secret, c->secret_len);
    if (nb == NULL)
        return XE_NOMEM;
    /* The proposer's time, in the entry: never this node's clock. */
    nb->set_at = c->set_at;
    if (found) {
        cb_free(s->cb[pos]);
        s->cb[pos] = nb;
        eff->kind = CL_EFF_CB_SECRET;
    } else {
        insert_at((void **)s->cb, &s->n_cb, pos, nb);
        eff->kind = CL_EFF_CB_ADDED;
    }
    eff->cb = nb;
    return 0;
}

static int apply_user_set(struct cl_state *s, const struct cl_cmd *c,
                          struct cl_effects *eff)
{
    bool found;
    size_t pos = find_user(s, c->name, &found);
    struct cl_user *nu;

    if (found && (c->flags & CL_CMD_ADD))
        return XE_EXISTS;
    if (!found && (c->flags & CL_CMD_REPLACE))
        return XE_NOTFOUND;
    if (!found && cl__grow((void ***)&s->users, s->n_users, &s->cap_users) < 0)
        return XE_NOMEM;
    nu = malloc(sizeof *nu);
    if (nu == NULL)
        return XE_NOMEM;
    *nu = *c->user;
    memcpy(nu->name, c->name, sizeof nu->name);
    /* An account is created once: a new password keeps the first time. */
    if (found)
        nu->created = s->users[pos]->created;
    if (found) {
        cl__user_free(s->users[pos]);
        s->users[pos] = nu;
        eff->kind = CL_EFF_USER_CHANGED;
    } else {
        insert_at((void **)s->users, &s->n_users, pos, nu);
        eff->kind = CL_EFF_USER_ADDED;
    }
    eff->user = nu;
    return 0;
}

static int apply_cmd(struct cl_state *s, const struct cl_cmd *c, struct cl_effects *eff)
{
    bool found;
    size_t pos;

    switch (c->type) {
    case CL_CMD_INIT:
        if (s->cluster_id != 0)
            return XE_EXISTS;
        s->cluster_id = c->cluster_id;
        eff->kind = CL_EFF_INIT;
        return 0;
    case CL_CMD_SET_DOMAIN:
        if (strcmp(s->domain, c->domain) == 0)
            return 0;
        memcpy(eff->old_domain, s->domain, sizeof eff->old_domain);
        memcpy(s->domain, c->domain, sizeof s->domain);
        eff->kind = CL_EFF_DOMAIN;
        return 0;
    case CL_CMD_CB_SET:
        return apply_cb_set(s, c, eff);
    case CL_CMD_CB_DEL:
        pos = find_cb(s, c->name, &found);
        if (!found)
            return XE_NOTFOUND;
        cb_free(s->cb[pos]);
        remove_at((void **)s->cb, &s->n_cb, pos);
        eff->kind = CL_EFF_CB_DELETED;
        return 0;
    case CL_CMD_USER_SET:
        return apply_user_set(s, c, eff);
    case CL_CMD_USER_DEL:
        pos = find_user(s, c->name, &found);
        if (!found)
            return XE_NOTFOUND;
        cl__user_free(s->users[pos]);
        remove_at((void **)s->users, &s->n_users, pos);
        /* A deleted account's roster goes with it (docs/roster.md); its
         * entries in other users' rosters stay, as for any contact. */
        (void)roster_db_drop_user(s->rosters, c->name);
        eff->kind = CL_EFF_USER_DELETED;
        return 0;
    case CL_CMD_USER_ITER:
        if (cl_user_iterations(s) == c->iterations && s->user_iter != 0)
            return 0;
        s->user_iter = c->iterations;
        eff->kind = CL_EFF_USER_ITER;
        return 0;
    case CL_CMD_PRES_LAST:
        /* Soft, as LOGIN: each node's srv keeps it (srv_lastpres_applied). */
        eff->kind = CL_EFF_PRES_LAST;
        memcpy(eff->pres_resource, c->pres_resource, sizeof eff->pres_resource);
        memcpy(eff->pres_status, c->pres_status, sizeof eff->pres_status);
        eff->pres_wall_ms = c->pres_wall_ms;
        return 0;
    case CL_CMD_LOGIN:
        /* Soft: each node's srv counts it (srv_login_applied); the
         * replicated state does not change, so snapshots do not carry it. */
        eff->kind = CL_EFF_LOGIN;
        eff->login_what = c->login_what;
        eff->login_failed = c->login_failed;
        return 0;
    case CL_CMD_ROSTER_SET:
    case CL_CMD_ROSTER_DEL:
        break; /* apply_roster */
    }
    return XE_CORRUPT;
}

/* seen_find returns the remembered result slot of id in ring, or NULL. */
static const struct cl_seen *seen_find(const struct cl_seen_ring *ring,
                                       const struct cl_req *id)
{
    for (size_t i = 0; i < ring->n; i++)
        if (ring->e[i].origin == id->origin && ring->e[i].boot == id->boot &&
            ring->e[i].seq == id->seq)
            return &ring->e[i];
    return NULL;
}

/* cl__seen_add remembers a result, dropping the oldest when full (the order is
 * the apply order, so every node drops the same one). */
void cl__seen_add(struct cl_seen_ring *ring, const struct cl_req *id, int rc)
{
    struct cl_seen e = {.origin = id->origin, .boot = id->boot, .seq = id->seq, .rc = rc};

    if (ring->n < CL_SEEN_MAX) {
        ring->e[ring->n++] = e;
        return;
    }
    ring->e[ring->head] = e;
    ring->head = (ring->head + 1) % CL_SEEN_MAX;
}

/* ---- sessions (the Raft thesis §6.3: client sessions) ---- */

static int sess_find(const struct cl_state *s, const struct cl_req *id)
{
    for (size_t i = 0; i < s->n_sess; i++)
        if (s->sess[i].origin == id->origin && s->sess[i].boot == id->boot)
            return (int)i;
    return -1;
}

static int results_room(struct cl_result **r, size_t *cap, size_t want)
{
    struct cl_result *nr;
    size_t ncap;

    if (want <= *cap)
        return 0;
    ncap = *cap == 0 ? 4 : *cap * 2;
    if (ncap < want)
        ncap = want;
    nr = realloc(*r, ncap * sizeof *nr);
    if (nr == NULL)
        return XE_NOMEM;
    *r = nr;
    *cap = ncap;
    return 0;
}

int cl__sess_add(struct cl_state *s, uint64_t origin, uint64_t boot, uint64_t mark,
                 size_t k, struct cl_session **out)
{
    struct cl_session *e;

    if (s->n_sess == CL_SESSIONS_MAX)
        return XE_CORRUPT;
    e = &s->sess[s->n_sess];
    memset(e, 0, sizeof *e);
    if (k > 0 && results_room(&e->r, &e->cap, k) < 0)
        return XE_NOMEM;
    e->origin = origin;
    e->boot = boot;
    e->mark = mark;
    s->n_sess++;
    *out = e;
    return 0;
}

/* What req_before found out about an entry's request id, for req_after. */
struct req_gate {
    struct cl_seen_ring *ring; /* a version 2 id, or a soft entry's: here */
    int sess;                  /* a version 3 id's session, -1: a new one */
    struct cl_result *fresh;   /* a new session's results (owned until kept) */
};

/* req_before decides whether the entry of id (origin 0: none) is applied:
 * 1 with the first result in *first when it was applied before, 0 when it
 * is to be applied now (then req_after remembers it), XE_EXPIRED when a
 * version 3 id is below its session's mark, XE_NOMEM when there is no room
 * to remember it.  s does not change (room made is not state). */
static int req_before(struct cl_state *s, bool soft, const struct cl_req *id,
                      struct req_gate *g, int *first)
{
    const struct cl_seen *dup;
    struct cl_session *e;
    uint64_t mark;

    memset(g, 0, sizeof *g);
    g->sess = -1;
    if (id->origin == 0)
        return 0;
    /* LOGIN and PRES_LAST change no state: their ids have a ring of their
     * own, so that a flood of them cannot push the others' out. */
    if (soft || id->boot == 0) {
        g->ring = soft ? &s->soft : &s->seen;
        dup = seen_find(g->ring, id);
        if (dup == NULL)
            return 0;
        *first = dup->rc;
        return 1;
    }
    g->sess = sess_find(s, id);
    if (g->sess < 0) {
        /* A new session (a new origin, or a new start of one). */
        g->fresh = malloc(4 * sizeof *g->fresh);
        return g->fresh != NULL ? 0 : XE_NOMEM;
    }
    e = &s->sess[g->sess];
    mark = id->first > e->mark ? id->first : e->mark;
    /* Below the mark: its origin had the answer and will not send it
     * again; a copy that comes late is refused, never applied twice. */
    if (id->seq < mark)
        return XE_EXPIRED;
    for (size_t i = 0; i < e->n; i++) {
        if (e->r[i].seq == id->seq) {
            *first = e->r[i].rc;
            return 1;
        }
    }
    return results_room(&e->r, &e->cap, e->n + 1);
}

/* req_after remembers rc, the result of id that req_before let through
 * (g), and frees what it did not keep.  rc XE_NOMEM: nothing to keep (the
 * driver stops). */
static void req_after(struct cl_state *s, const struct cl_req *id, struct req_gate *g,
                      int rc)
{
    struct cl_session e;
    size_t keep, pos;

    if (id->origin == 0 || rc == XE_NOMEM) {
        free(g->fresh);
        return;
    }
    if (g->ring != NULL) {
        cl__seen_add(g->ring, id, rc);
        return;
    }
    if (g->sess < 0) {
        if (s->n_sess == CL_SESSIONS_MAX) {
            /* The least recently used goes: a member removed, a node
             * started again (a new boot), by the log alone. */
            free(s->sess[0].r);
            memmove(&s->sess[0], &s->sess[1], (s->n_sess - 1) * sizeof s->sess[0]);
            s->n_sess--;
        }
        e = (struct cl_session){
            .origin = id->origin, .boot = id->boot, .r = g->fresh, .cap = 4};
        g->fresh = NULL;
    } else {
        /* The most recently used moves to the end. */
        e = s->sess[g->sess];
        memmove(&s->sess[g->sess], &s->sess[g->sess + 1],
                (s->n_sess - (size_t)g->sess - 1) * sizeof s->sess[0]);
        s->n_sess--;
    }
    if (id->first > e.mark)
        e.mark = id->first;
    /* Results below the mark are never asked for again. */
    for (keep = 0; keep < e.n && e.r[keep].seq < e.mark; keep++)
        ;
    memmove(&e.r[0], &e.r[keep], (e.n - keep) * sizeof e.r[0]);
    e.n -= keep;
    for (pos = e.n; pos > 0 && e.r[pos - 1].seq > id->seq; pos--)
        ;
    memmove(&e.r[pos + 1], &e.r[pos], (e.n - pos) * sizeof e.r[0]);
    e.r[pos] = (struct cl_result){.seq = id->seq, .rc = rc};
    e.n++;
    s->sess[s->n_sess++] = e;
}

/* roster_shown tells whether c's user has c's contact as a listed item,
 * one the user's clients are shown (RFC 6121 A.1: an entry that only
 * keeps a pending inbound request is not). */
static bool roster_shown(const struct cl_state *s, const struct roster_cmd *c)
{
    const struct roster_item *it =
        roster_find(roster_db_get(s->rosters, c->user), c->item.jid);

    return it != NULL && it->listed;
}

/* apply_roster is cl_apply for ROSTER_SET / ROSTER_DEL (docs/roster.md):
 * roster_db_apply_cmd under the same request-id rule as the other types.
 * The effect (a push) only when the item is listed before or after: a
 * request that comes or goes changes no roster a client sees (§3.1.3). */
static int apply_roster(struct cl_state *s, const void *data, size_t len,
                        struct cl_effects *eff)
{
    struct req_gate g;
    struct cl_req id;
    bool shown;
    struct roster_cmd *c = calloc(1, sizeof *c);
    int rc, seen;

    if (c == NULL)
        return XE_NOMEM;
    rc = roster_cmd_decode(data, len, c);
    if (rc < 0)
        goto out;
    eff->type = (enum cl_cmd_type)c->type;
    eff->origin = c->req_origin;
    snprintf(eff->name, sizeof eff->name, "%s", c->user);
    id = (struct cl_req){c->req_origin, c->req_boot, c->req_seq, c->req_first};
    seen = req_before(s, false, &id, &g, &rc);
    if (seen != 0) {
        if (seen < 0)
            rc = seen;
        eff->kind = CL_EFF_NONE;
        goto out;
    }
    shown = roster_shown(s, c);
    rc = roster_db_apply_cmd(s->rosters, c);
    req_after(s, &id, &g, rc);
    if (rc == 0 && (shown || roster_shown(s, c))) {
        eff->kind = CL_EFF_ROSTER;
        snprintf(eff->roster_jid, sizeof eff->roster_jid, "%s", c->item.jid);
    }
out:
    roster_cmd_clear(c);
    free(c);
    return rc;
}

int cl_apply(struct cl_state *s, const void *data, size_t len, struct cl_effects *eff)
{
    struct req_gate g;
    struct cl_req id;
    struct cl_effects local;
    struct cl_cmd *c;
    int rc, rt, seen;

    if (eff == NULL)
        eff = &local;
    memset(eff, 0, sizeof *eff);
    if (XD_NEVER(s == NULL || (data == NULL && len > 0)))
        return XE_INVAL;
    rt = roster_cmd_type_of(data, len);
    if (rt == CL_CMD_ROSTER_SET || rt == CL_CMD_ROSTER_DEL)
        return apply_roster(s, data, len, eff);
    /* struct cl_cmd is a few KB: keep it off small stacks. */
    c = malloc(sizeof *c);
    if (c == NULL)
        return XE_NOMEM;
    rc = cl_cmd_decode(data, len, c);
    if (rc < 0)
        goto out;
    eff->type = c->type;
    eff->origin = c->req_origin;
    if (c->type != CL_CMD_INIT && c->type != CL_CMD_SET_DOMAIN &&
        c->type != CL_CMD_USER_ITER)
        memcpy(eff->name, c->name, sizeof eff->name);
    /* A request sent again (to a new leader after a leader change) is
     * applied once: the copy answers the first result. */
    id = (struct cl_req){c->req_origin, c->req_boot, c->req_seq, c->req_first};
    seen = req_before(s, c->type == CL_CMD_LOGIN || c->type == CL_CMD_PRES_LAST, &id, &g,
                      &rc);
    if (seen < 0) {
        rc = seen;
        goto out;
    }
    if (seen > 0) {
        eff->kind = CL_EFF_NONE;
        eff->cb = NULL;
        eff->user = NULL;
        goto done;
    }
    rc = apply_cmd(s, c, eff);
    /* XE_NOMEM is not deterministic: the driver stops, nothing to keep. */
    req_after(s, &id, &g, rc);
out:
    if (rc < 0) {
        eff->kind = CL_EFF_NONE;
        eff->cb = NULL;
        eff->user = NULL;
    }
done:
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
}
