/* srv_throttle.c: failed client logins counted per peer address and per
 * account: growing delays before the answer to a
 * failure, then a block for a while (srv.h, struct srv_config).
 *
 * Keys are "a <address>" and "u <account>" in one hash table.  A key is
 * forgotten login_block_ms after its last failure (and once any block has
 * ended), swept at srv_tick, so the table holds only recent failures. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "err.h"
#include "srv_int.h"

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

uint64_t srv__thr_failed(struct srv *srv, const char *peer, const char *user)
{
    char key[1100];
    unsigned n, m = 0;
    uint64_t d;

    if (srv->cfg.login_delay_ms == 0)
        return 0;
    thr_key(key, sizeof key, peer, NULL);
    n = thr_count(srv, key);
    if (user != NULL) {
        thr_key(key, sizeof key, peer, user);
        m = thr_count(srv, key);
    }
    if (m > n)
        n = m;
    /* The first failure is answered at once: a typo costs nothing. */
    if (n <= 1)
        return 0;
    d = srv->cfg.login_delay_ms;
    for (unsigned i = 2; i < n && d < srv->cfg.login_delay_max_ms; i++)
        d *= 2;
    return d < srv->cfg.login_delay_max_ms ? d : srv->cfg.login_delay_max_ms;
}

static void thr_forget(struct srv *srv, const char *key)
{
    struct srv_thr *t = thr_find(srv, key);

    if (t == NULL)
        return;
    htab_del(&srv->thr, &t->link, htab_hash_str(key));
    thr_free(&t->link);
}

void srv__thr_success(struct srv *srv, const char *peer, const char *user)
{
    char key[1100];

    thr_key(key, sizeof key, peer, NULL);
    thr_forget(srv, key);
    thr_key(key, sizeof key, peer, user);
    thr_forget(srv, key);
}

void srv__thr_sweep(struct srv *srv)
{
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
    htab_release(&srv->thr, thr_free);
}
