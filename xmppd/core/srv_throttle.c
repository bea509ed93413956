/* srv_throttle.c: failed client logins counted per peer address and per
 * account: growing delays before the answer to a
 * failure, then a block for a while (srv.h, struct srv_config).
 *
 * Keys are "a <address>" and "u <account>" in one hash table.  A key is
 * forgotten login_block_ms after its last failure (and once any block has
 * ended), swept at srv_tick, so the table holds only recent failures.
 * Addresses are at most SRV_THR_MAX keys (a failure for a new address past
 * it is not counted): an attacker has as many addresses as an IPv6 prefix
 * holds, and fills them.  Accounts are always counted, so that a full
 * table never lifts the block on guesses at one account; only existing
 * accounts are counted (sess_c2s_sasl.c), so their keys are as many as
 * the accounts the cluster holds.
 *
 * Across the cluster (docs/clients.md "Throttling across the cluster"):
 * in a cluster of two or more members a failure (and a success that clears a count) is
 * also written to the Raft log as a LOGIN entry (repl.h CL_CMD_LOGIN) through
 * srv__submit; every node applies it (srv_login_applied) and counts it as if it had
 * happened here, so an attacker who spreads guesses over the nodes meets the same delays
 * and the same block as on one node.  The node where it happened counts at once (its
 * answer's delay and a block do not wait for the log, nor for a leader) and skips its own
 * entry when it is applied: the entries it submitted wait in thr_subs (at most
 * SRV_THR_SUBS; past that a failure stays local, counted in thr_unshared, so that a flood
 * of failures cannot fill the queue of writes to the leader).  The entries change no
 * replicated state: a node that starts from a snapshot, or was down, knows only the
 * failures since. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "err.h"
#include "repl.h"
#include "srv.h"
#include "srv_int.h"

#define SRV_THR_MAX 16384 /* keys counted at once before a new address is not */
#define SRV_THR_SUBS 64   /* LOGIN entries submitted and not yet applied */

/* One LOGIN entry this node submitted (srv->thr_subs). */
struct srv_thr_sub {
    uint64_t token;
    char key[1100]; /* as thr_key writes it */
    bool failed;
    uint64_t answered_ms; /* answered before applied here (0: not yet) */
    struct srv_thr_sub *next;
};

struct srv_thr {
    char *key;              /* "a 127.0.0.1" or "u alice", owned */
    unsigned fails;         /* failures in a row */
    uint64_t last_ms;       /* the last one */
    uint64_t blocked_until; /* refused before this; 0: not blocked */
    struct hlink link;      /* in srv->thr */
};

#define THR_OF(l) HTAB_ENTRY(l, struct srv_thr, link)

static uint64_t thr_hash(const struct hlink *l)
{
    return htab_hash_str(THR_OF(l)->key);
}

/* thr_key writes the key of peer's address ("[::1]:5" -> "a ::1",
 * "10.0.0.1:5" -> "a 10.0.0.1"; by addr.h's rule, and peer as it is when
 * it does not parse) or of user into out. */
static void thr_key(char *out, size_t cap, const char *peer, const char *user)
{
    char host[ADDR_HOST_MAX + 1];

    if (user != NULL)
        snprintf(out, cap, "u %s", user);
    else if (addr_host_of(peer, host, sizeof host) == 0)
        snprintf(out, cap, "a %s", host);
    else
        snprintf(out, cap, "a %s", peer);
}

static void thr_free(struct hlink *l)
{
    free(THR_OF(l)->key);
    free(THR_OF(l));
}

static struct srv_thr *thr_find(const struct srv *srv, const char *key)
{
    for (struct hlink *l = htab_head(&srv->thr, htab_hash_str(key)); l != NULL;
         l = l->next)
        if (strcmp(THR_OF(l)->key, key) == 0)
            return THR_OF(l);
    return NULL;
}

static bool thr_blocked(const struct srv *srv, const char *key)
{
    const struct srv_thr *t = thr_find(srv, key);

    return t != NULL && t->blocked_until > srv->now_ms;
}

bool srv__thr_check(struct srv *srv, const char *peer, const char *user)
{
    char key[1100];

    if (srv->cfg.login_delay_ms == 0)
        return false;
    thr_key(key, sizeof key, peer, NULL);
    if (thr_blocked(srv, key))
        return true;
    if (user == NULL)
        return false;
    thr_key(key, sizeof key, peer, user);
    return thr_blocked(srv, key);
}

/* thr_count adds a failure to key and returns its count in a row (0: out
 * of memory, not counted). */
static unsigned thr_count(struct srv *srv, const char *key)
{
    struct srv_thr *t;

    if (srv->thr.nb == 0 && htab_init(&srv->thr, 64) < 0)
        return 0;
    t = thr_find(srv, key);
    /* Past the bound a new address is not counted; an account always is
     * (the file's comment). */
    if (t == NULL && key[0] == 'a' && srv->thr.count >= SRV_THR_MAX) {
        srv__thr_sweep(srv);
        if (srv->thr.count >= SRV_THR_MAX) {
            srv->thr_unshared++;
            return 0;
        }
    }
    if (t == NULL) {
        t = calloc(1, sizeof *t);
        if (t == NULL || (t->key = strdup(key)) == NULL) {
            free(t);
            return 0;
        }
        htab_add(&srv->thr, &t->link, htab_hash_str(key), thr_hash);
    }
    t->fails++;
    t->last_ms = srv->now_ms;
    if (t->fails >= srv->cfg.login_block_after && srv->cfg.login_block_after > 0)
        t->blocked_until = srv->now_ms + srv->cfg.login_block_ms;
    return t->fails;
}

/* thr_share writes a LOGIN entry about key (failed, or a success that
 * cleared it) to the cluster's log, when this node is in a cluster and the
 * bound of entries on their way allows (see the head of this file). */
static void thr_share(struct srv *srv, const char *key, bool failed)
{
    struct srv_thr_sub *sub;
    struct cl_cmd *c;
    unsigned char *cmd = NULL;
    size_t len = 0;
    int rc;

    if (!srv_cluster__shared(srv) || !srv->cfg.roster_writes)
        return;
    if (srv->thr_nsubs >= SRV_THR_SUBS || (sub = calloc(1, sizeof *sub)) == NULL) {
        srv->thr_unshared += failed;
        return;
    }
    c = malloc(sizeof *c); /* a few KB: off the stack */
    rc = c == NULL ? XE_NOMEM : 0;
    if (rc == 0) {
        cl_cmd_login(c, key[0] == 'u' ? CL_LOGIN_ACCOUNT : CL_LOGIN_ADDRESS, key + 2,
                     failed);
        rc = cl_cmd_encode(c, &cmd, &len);
        free(c);
    }
    snprintf(sub->key, sizeof sub->key, "%s", key);
    sub->failed = failed;
    sub->token = ++srv->rop_token;
    if (rc == 0)
        rc = srv__submit(srv, cmd, len, sub->token); /* takes cmd */
    if (rc < 0) {
        /* An address that is no IP (a test's peer name) stays local too. */
        srv->thr_unshared += failed;
        free(sub);
        return;
    }
    sub->next = srv->thr_subs;
    srv->thr_subs = sub;
    srv->thr_nsubs++;
}

/* thr_sub_take removes the newest submitted entry of token (token != 0) or
 * else, with token 0, the oldest about key and failed, and tells whether
 * there was one. */
static bool thr_sub_take(struct srv *srv, uint64_t token, const char *key, bool failed)
{
    struct srv_thr_sub **p, **hit = NULL;

    for (p = &srv->thr_subs; *p != NULL; p = &(*p)->next)
        if (token != 0 ? (*p)->token == token
                       : (*p)->failed == failed && strcmp((*p)->key, key) == 0)
            hit = p; /* the list is newest first: the last hit is the oldest */
    if (hit == NULL)
        return false;
    {
        struct srv_thr_sub *sub = *hit;
        *hit = sub->next;
        free(sub);
    }
    srv->thr_nsubs--;
    return true;
}

bool srv__thr_submit_done(struct srv *srv, uint64_t token, int rc)
{
    struct srv_thr_sub *sub = srv->thr_subs;

    /* Applied here first: srv_login_applied took it off the list. */
    while (sub != NULL && sub->token != token)
        sub = sub->next;
    if (sub == NULL)
        return false;
    if (rc == 0 || rc == XE_TIMEOUT) {
        /* Answered first: a follower hears the leader's answer to its
         * forwarded write (the leader applied it) before it learns the
         * commit itself (rreq.c fwd_result), and a write answered
         * XE_TIMEOUT may still be applied (rreq.h).  It stays listed, so
         * that its apply here is known as ours and not counted twice,
         * until srv__thr_sweep drops it. */
        if (sub->answered_ms == 0) {
            sub->answered_ms = srv->now_ms ? srv->now_ms : 1;
            srv->thr_unshared += rc < 0;
        }
        return true;
    }
    /* Failed (no leader, refused): the failure stays counted here only. */
    (void)thr_sub_take(srv, token, NULL, false);
    srv->thr_unshared++;
    return true;
}

/* thr_delay is the wait before the answer to the n-th failure in a row. */
static uint64_t thr_delay(const struct srv *srv, unsigned n)
{
    uint64_t d;

    /* The first failure is answered at once: a typo costs nothing. */
    if (n <= 1)
        return 0;
    d = srv->cfg.login_delay_ms;
    for (unsigned i = 2; i < n && d < srv->cfg.login_delay_max_ms; i++)
        d *= 2;
    return d < srv->cfg.login_delay_max_ms ? d : srv->cfg.login_delay_max_ms;
}

uint64_t srv__thr_failed(struct srv *srv, const char *peer, const char *user)
{
    char key[1100];
    unsigned n, m = 0;

    if (srv->cfg.login_delay_ms == 0)
        return 0;
    thr_key(key, sizeof key, peer, NULL);
    n = thr_count(srv, key);
    thr_share(srv, key, true);
    if (user != NULL) {
        thr_key(key, sizeof key, peer, user);
        m = thr_count(srv, key);
        thr_share(srv, key, true);
    }
    return thr_delay(srv, m > n ? m : n);
}

/* thr_forget drops key's count; false when there was none. */
static bool thr_forget(struct srv *srv, const char *key)
{
    struct srv_thr *t = thr_find(srv, key);

    if (t == NULL)
        return false;
    htab_del(&srv->thr, &t->link, htab_hash_str(key));
    thr_free(&t->link);
    return true;
}

void srv__thr_success(struct srv *srv, const char *peer, const char *user)
{
    char key[1100];

    /* Only a count this node knows is cleared in the cluster: a login
     * without failures before writes nothing to the log. */
    thr_key(key, sizeof key, peer, NULL);
    if (thr_forget(srv, key) && srv->cfg.login_delay_ms != 0)
        thr_share(srv, key, false);
    thr_key(key, sizeof key, peer, user);
    if (thr_forget(srv, key) && srv->cfg.login_delay_ms != 0)
        thr_share(srv, key, false);
}

void srv_login_applied(struct srv *srv, uint64_t origin, int what, const char *name,
                       bool failed, uint64_t now_ms)
{
    char key[1100];
    struct srv_thr *t;
    uint64_t self;

    if (now_ms > srv->now_ms)
        srv->now_ms = now_ms;
    if (srv->cfg.login_delay_ms == 0 || name == NULL ||
        (what != CL_LOGIN_ACCOUNT && what != CL_LOGIN_ADDRESS))
        return;
    snprintf(key, sizeof key, "%c %s", what == CL_LOGIN_ACCOUNT ? 'u' : 'a', name);
    /* Ours: counted (or cleared) when it happened.  Another node's entry
     * about a key ours waits for is not ours (it names its origin), or
     * it would take our note and be counted never.  Without an origin
     * (or out of cluster mode) the key decides, as it did before. */
    self = srv_cluster__self(srv);
    if ((origin == 0 || self == 0 || origin == self) && thr_sub_take(srv, 0, key, failed))
        return;
    if (!failed) {
        (void)thr_forget(srv, key);
        return;
    }
    t = thr_find(srv, key);
    if (t == NULL || t->blocked_until <= srv->now_ms) {
        if (thr_count(srv, key) == srv->cfg.login_block_after &&
            srv->cfg.login_block_after)
            SRV_LOG(srv, LOG_WARN,
                    "login %s %s blocked for %llu ms after failed logins "
                    "across the cluster",
                    what == CL_LOGIN_ACCOUNT ? "account" : "address", name,
                    (unsigned long long)srv->cfg.login_block_ms);
        return;
    }
    /* Blocked here already: a failure elsewhere (that node did not know
     * yet) keeps the count and does not prolong the block. */
    t->fails++;
    t->last_ms = srv->now_ms;
}

void srv__thr_sweep(struct srv *srv)
{
    /* An entry answered and still not applied here after login_block_ms
     * never will be (a snapshot passed it, or it was lost after all): its
     * note would take another node's entry about the key for ours. */
    for (struct srv_thr_sub **p = &srv->thr_subs; *p != NULL;) {
        struct srv_thr_sub *sub = *p;
        if (sub->answered_ms != 0 &&
            srv->now_ms - sub->answered_ms >= srv->cfg.login_block_ms) {
            *p = sub->next;
            free(sub);
            srv->thr_nsubs--;
        } else {
            p = &sub->next;
        }
    }
    for (size_t i = 0; i < srv->thr.nb; i++) {
        struct hlink *l = srv->thr.b[i], *next;
        for (; l != NULL; l = next) {
            struct srv_thr *t = THR_OF(l);
            next = l->next;
            if (t->blocked_until <= srv->now_ms &&
                srv->now_ms - t->last_ms >= srv->cfg.login_block_ms) {
                htab_del(&srv->thr, l, htab_hash_str(t->key));
                thr_free(l);
            }
        }
    }
}

uint64_t srv__thr_blocked(const struct srv *srv)
{
    uint64_t n = 0;

    for (size_t i = 0; i < srv->thr.nb; i++)
        for (const struct hlink *l = srv->thr.b[i]; l != NULL; l = l->next)
            n += THR_OF(l)->blocked_until > srv->now_ms;
    return n;
}

/* blocked_insert puts t into out[0..*n) (at most max), ordered by
 * blocked_until, latest first: every block lasts login_block_ms, so the
 * latest end is the newest block. */
static void blocked_insert(const struct srv_thr *t, struct srv_blocked *out, size_t *n,
                           size_t max)
{
    size_t i = *n;

    if (i == max && (max == 0 || out[max - 1].until_ms >= t->blocked_until))
        return;
    if (i == max)
        i--;
    else
        (*n)++;
    for (; i > 0 && out[i - 1].until_ms < t->blocked_until; i--)
        out[i] = out[i - 1];
    out[i].account = t->key[0] == 'u';
    snprintf(out[i].name, sizeof out[i].name, "%s", t->key + 2);
    out[i].until_ms = t->blocked_until;
}

size_t srv_get_blocked(const struct srv *srv, struct srv_blocked *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < srv->thr.nb; i++)
        for (const struct hlink *l = srv->thr.b[i]; l != NULL; l = l->next)
            if (THR_OF(l)->blocked_until > srv->now_ms)
                blocked_insert(THR_OF(l), out, &n, max);
    return n;
}

void srv__thr_free(struct srv *srv)
{
    while (srv->thr_subs != NULL) {
        struct srv_thr_sub *next = srv->thr_subs->next;
        free(srv->thr_subs);
        srv->thr_subs = next;
    }
    srv->thr_nsubs = 0;
    htab_release(&srv->thr, thr_free);
}
