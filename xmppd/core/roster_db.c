/* roster_db.c: the rosters of all users as replicated state: the byte
 * encoding of ROSTER_SET / ROSTER_DEL commands, their deterministic apply,
 * and snapshots (contract and format in roster.h). */
#include "roster.h"

#include <stdlib.h>
#include <string.h>

#include "repl.h"
#include "err.h"
#include "bytecur.h"

/* ---- strings (the reader and writer are bytecur.h) ---- */

/* rd_str reads a u16 length and that many bytes into a new NUL-terminated
 * string (*out owned; NULL for length 0 when allow_empty).  A length above
 * max, past the end, or a NUL inside is XE_CORRUPT. */
static int rd_str(struct rd *r, size_t max, bool allow_empty, char **out)
{
    size_t n = (size_t)rd_uint(r, 2);
    const unsigned char *p;

    *out = NULL;
    if (r->bad || n > max || (n == 0 && !allow_empty))
        return XE_CORRUPT;
    p = rd_bytes(r, n);
    if (p == NULL || memchr(p, '\0', n) != NULL)
        return XE_CORRUPT;
    if (n == 0)
        return 0;
    *out = malloc(n + 1);
    if (*out == NULL)
        return XE_NOMEM;
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return 0;
}

static void wr_str(struct wr *w, const char *s)
{
    size_t n = s == NULL ? 0 : strlen(s);

    wr_uint(w, n, 2);
    wr_bytes(w, s, n);
}

/* ---- items ---- */

#define BIT_ASK 1u
#define BIT_PENDING_IN 2u
#define BIT_LISTED 4u

static void wr_item(struct wr *w, const struct roster_item *it)
{
    wr_str(w, it->jid);
    wr_uint(w,
            (it->ask ? BIT_ASK : 0) | (it->pending_in ? BIT_PENDING_IN : 0) |
                (it->listed ? BIT_LISTED : 0),
            1);
    wr_uint(w, (uint64_t)it->sub, 1);
    wr_str(w, it->name);
    wr_uint(w, it->n_groups, 1);
    for (size_t i = 0; i < it->n_groups; i++)
        wr_str(w, it->groups[i]);
    wr_uint(w, it->request_len, 2);
    wr_bytes(w, it->request, it->request_len);
}

/* rd_item reads what wr_item wrote into *it (zeroed first; owned by it, to
 * be cleared by the caller also on error) and validates it. */
static int rd_item(struct rd *r, struct roster_item *it)
{
    unsigned bits, sub;
    size_t n;
    const unsigned char *p;
    int rc;

    memset(it, 0, sizeof *it);
    rc = rd_str(r, ROSTER_JID_MAX, false, &it->jid);
    if (rc < 0)
        return rc;
    bits = (unsigned)rd_uint(r, 1);
    sub = (unsigned)rd_uint(r, 1);
    if (r->bad || (bits & ~(BIT_ASK | BIT_PENDING_IN | BIT_LISTED)) != 0 ||
        sub > ROSTER_SUB_BOTH)
        return XE_CORRUPT;
    it->ask = (bits & BIT_ASK) != 0;
    it->pending_in = (bits & BIT_PENDING_IN) != 0;
    it->listed = (bits & BIT_LISTED) != 0;
    it->sub = (enum roster_sub)sub;
    rc = rd_str(r, ROSTER_NAME_MAX, true, &it->name);
    if (rc < 0)
        return rc;
    n = (size_t)rd_uint(r, 1);
    if (r->bad || n > ROSTER_GROUPS_MAX)
        return XE_CORRUPT;
    if (n > 0) {
        it->groups = calloc(n, sizeof *it->groups);
        if (it->groups == NULL)
            return XE_NOMEM;
        it->n_groups = n;
        for (size_t i = 0; i < n; i++) {
            rc = rd_str(r, ROSTER_GROUP_MAX, false, &it->groups[i]);
            if (rc < 0)
                return rc;
        }
    }
    n = (size_t)rd_uint(r, 2);
    if (r->bad || n > ROSTER_REQUEST_MAX)
        return XE_CORRUPT;
    p = rd_bytes(r, n);
    if (p == NULL)
        return XE_CORRUPT;
    if (n > 0) {
        it->request = malloc(n);
        if (it->request == NULL)
            return XE_NOMEM;
        memcpy(it->request, p, n);
        it->request_len = n;
    }
    return roster_item_check(it);
}

/* ---- commands ---- */

void roster_cmd_set(struct roster_cmd *c, const char *user, const struct roster_item *it)
{
    memset(c, 0, sizeof *c);
    c->type = ROSTER_CMD_SET;
    if (user != NULL && strlen(user) <= ROSTER_USER_MAX)
        strcpy(c->user, user); /* an over-long user stays "": fails encode */
    c->item = *it;
}

void roster_cmd_del(struct roster_cmd *c, const char *user, const char *jid)
{
    memset(c, 0, sizeof *c);
    c->type = ROSTER_CMD_DEL;
    if (user != NULL && strlen(user) <= ROSTER_USER_MAX)
        strcpy(c->user, user);
    c->item.jid = (char *)jid; /* borrowed, never freed through c */
}

int roster_cmd_from_decision(struct roster_cmd *c, const char *user,
                             const struct roster_decision *d)
{
    if (d->write == ROSTER_WRITE_SET)
        roster_cmd_set(c, user, &d->item);
    else if (d->write == ROSTER_WRITE_DEL)
        roster_cmd_del(c, user, d->item.jid);
    else
        return XE_INVAL;
    c->has_base = true;
    c->base = d->base;
    return 0;
}

static bool base_valid(unsigned b)
{
    return b == ROSTER_BASE_ABSENT ||
           (b & ~(unsigned)ROSTER_BASE_LISTED) < ROSTER_N_STATES;
}

void roster_cmd_clear(struct roster_cmd *c)
{
    roster_item_clear(&c->item);
    memset(c, 0, sizeof *c);
}

static int cmd_check(const struct roster_cmd *c)
{
    int rc = cl_user_check(c->user);

    if (rc < 0)
        return rc;
    if (c->has_base && !base_valid(c->base))
        return XE_INVAL;
    switch (c->type) {
    case ROSTER_CMD_SET:
        return roster_item_check(&c->item);
    case ROSTER_CMD_DEL:
        return roster_jid_check(c->item.jid);
    }
    return XE_INVAL;
}

static void cmd_write(struct wr *w, const void *obj)
{
    const struct roster_cmd *c = obj;
    struct cl_req id = {c->req_origin, c->req_boot, c->req_seq, c->req_first};

    cl_req_write(w, &id);
    wr_uint(w, (uint64_t)c->type, 1);
    wr_uint(w, c->has_base ? ROSTER_CMD_IF : 0, 1);
    wr_str(w, c->user);
    if (c->has_base)
        wr_uint(w, c->base, 1);
    if (c->type == ROSTER_CMD_SET)
        wr_item(w, &c->item);
    else
        wr_str(w, c->item.jid);
}

int roster_cmd_encode(const struct roster_cmd *c, unsigned char **out, size_t *len)
{
    int rc;

    *out = NULL;
    *len = 0;
    rc = cmd_check(c);
    if (rc < 0)
        return rc;
    return wr_encode(cmd_write, c, out, len);
}

int roster_cmd_type_of(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (p == NULL || len < 1)
        return -1;
    if (p[0] == ROSTER_CMD_VERSION && len >= 2)
        return p[1];
    if (p[0] == ROSTER_CMD_VERSION_ID && len >= 18)
        return p[17];
    if (p[0] == ROSTER_CMD_VERSION_SESSION && len >= 34)
        return p[33];
    return -1;
}

int roster_cmd_decode(const void *buf, size_t len, struct roster_cmd *c)
{
    struct rd r = {.p = buf, .left = len};
    struct cl_req id;
    unsigned type, flags;
    char *user = NULL;
    int rc, version;

    memset(c, 0, sizeof *c);
    if (buf == NULL)
        return XE_CORRUPT;
    version = cl_req_read(&r, &id);
    c->req_origin = id.origin;
    c->req_boot = id.boot;
    c->req_seq = id.seq;
    c->req_first = id.first;
    type = (unsigned)rd_uint(&r, 1);
    flags = (unsigned)rd_uint(&r, 1);
    if (r.bad || version < 0 || (flags & ~(unsigned)ROSTER_CMD_IF) != 0 ||
        (type != ROSTER_CMD_SET && type != ROSTER_CMD_DEL))
        return XE_CORRUPT;
    c->type = (enum roster_cmd_type)type;
    rc = rd_str(&r, ROSTER_USER_MAX, false, &user);
    if (rc < 0)
        return rc;
    strcpy(c->user, user);
    free(user);
    if (flags & ROSTER_CMD_IF) {
        c->has_base = true;
        c->base = (uint8_t)rd_uint(&r, 1);
        if (r.bad || !base_valid(c->base))
            return XE_CORRUPT;
    }
    if (type == ROSTER_CMD_SET)
        rc = rd_item(&r, &c->item);
    else
        rc = rd_str(&r, ROSTER_JID_MAX, false, &c->item.jid);
    if (rc == XE_INVAL && (r.bad || r.left != 0))
        rc = XE_CORRUPT; /* trailing or missing bytes say more than a field */
    if (rc < 0)
        return rc;
    if (r.bad || r.left != 0)
        return XE_CORRUPT;
    return cmd_check(c);
}

/* ---- the store ---- */

struct roster_user {
    char *name; /* owned */
    struct roster roster;
};

struct roster_db {
    struct roster_user *users; /* sorted by name (strcmp) */
    size_t n, cap;
};

int roster_db_new(struct roster_db **out)
{
    *out = calloc(1, sizeof **out);
    return *out == NULL ? XE_NOMEM : 0;
}

void roster_db_free(struct roster_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < db->n; i++) {
        free(db->users[i].name);
        roster_clear(&db->users[i].roster);
    }
    free(db->users);
    free(db);
}

static size_t find_user(const struct roster_db *db, const char *name, bool *found)
{
    size_t lo = 0, hi = db->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(db->users[mid].name, name);
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

const struct roster *roster_db_get(const struct roster_db *db, const char *user)
{
    bool found;
    size_t i = find_user(db, user, &found);

    return found ? &db->users[i].roster : NULL;
}

size_t roster_db_user_count(const struct roster_db *db)
{
    return db->n;
}

const char *roster_db_user_at(const struct roster_db *db, size_t i)
{
    return i < db->n ? db->users[i].name : NULL;
}

static void drop_at(struct roster_db *db, size_t pos)
{
    free(db->users[pos].name);
    roster_clear(&db->users[pos].roster);
    memmove(&db->users[pos], &db->users[pos + 1], (db->n - pos - 1) * sizeof *db->users);
    db->n--;
}

int roster_db_drop_user(struct roster_db *db, const char *user)
{
    bool found;
    size_t pos = find_user(db, user, &found);

    if (!found)
        return XE_NOTFOUND;
    drop_at(db, pos);
    return 0;
}

/* add_user inserts an empty roster for name at pos (from find_user). */
static int add_user(struct roster_db *db, size_t pos, const char *name)
{
    char *copy;

    if (db->n == db->cap) {
        size_t ncap = db->cap == 0 ? 8 : db->cap * 2;
        struct roster_user *nu = realloc(db->users, ncap * sizeof *nu);
        if (nu == NULL)
            return XE_NOMEM;
        db->users = nu;
        db->cap = ncap;
    }
    copy = strdup(name);
    if (copy == NULL)
        return XE_NOMEM;
    memmove(&db->users[pos + 1], &db->users[pos], (db->n - pos) * sizeof *db->users);
    db->users[pos].name = copy;
    roster_init(&db->users[pos].roster);
    db->n++;
    return 0;
}

int roster_db_apply_cmd(struct roster_db *db, const struct roster_cmd *c)
{
    bool found;
    size_t pos = find_user(db, c->user, &found);
    const struct roster_item *cur;
    int rc;

    /* XE_NOMEM is not the entry's fault: cl_apply stops the driver on it
     * rather than answer the entry differently from the other nodes. */
    rc = cmd_check(c);
    if (rc < 0)
        return rc;
    if (c->has_base) {
        cur = found ? roster_find(&db->users[pos].roster, c->item.jid) : NULL;
        if (roster_base_of(cur) != c->base)
            return XE_STATE; /* decided on a state that has changed since */
    }

    if (c->type == ROSTER_CMD_DEL) {
        if (!found)
            return XE_NOTFOUND;
        rc = roster_remove(&db->users[pos].roster, c->item.jid);
        if (rc == 0 && db->users[pos].roster.n == 0)
            drop_at(db, pos); /* no empty rosters: snapshots stay canonical */
        return rc;
    }
    if (found) {
        cur = roster_find(&db->users[pos].roster, c->item.jid);
        if (cur != NULL && roster_item_equal(cur, &c->item))
            return 0;
    } else {
        rc = add_user(db, pos, c->user);
        if (rc < 0)
            return rc;
    }
    rc = roster_put(&db->users[pos].roster, &c->item);
    if (rc < 0 && db->users[pos].roster.n == 0)
        drop_at(db, pos); /* undo the user added above: db unchanged */
    return rc;
}

int roster_db_apply(struct roster_db *db, const void *data, size_t len)
{
    struct roster_cmd c;
    int rc = roster_cmd_decode(data, len, &c);

    if (rc == 0)
        rc = roster_db_apply_cmd(db, &c);
    roster_cmd_clear(&c);
    return rc;
}

/* ---- snapshots ---- */

static void snap_write(struct wr *w, const struct roster_db *db)
{
    wr_uint(w, ROSTER_SNAP_VERSION, 1);
    wr_uint(w, db->n, 4);
    for (size_t i = 0; i < db->n; i++) {
        const struct roster *r = &db->users[i].roster;

        wr_str(w, db->users[i].name);
        wr_uint(w, r->n, 4);
        for (size_t k = 0; k < r->n; k++)
            wr_item(w, r->items[k]);
    }
}

int roster_db_snapshot_encode(const struct roster_db *db, unsigned char **out,
                              size_t *len)
{
    struct wr w = {0};

    *out = NULL;
    *len = 0;
    snap_write(&w, db);
    w.p = malloc(w.len);
    if (w.p == NULL)
        return XE_NOMEM;
    w.len = 0;
    snap_write(&w, db);
    *out = w.p;
    *len = w.len;
    return 0;
}

/* snap_read_roster reads one user's items into r (empty, sorted, bounded). */
static int snap_read_roster(struct rd *r, struct roster *ro)
{
    uint64_t n = rd_uint(r, 4);

    /* An item takes at least 10 bytes: a larger count is a lie and must not
     * drive a large allocation. */
    if (r->bad || n == 0 || n > ROSTER_ITEMS_MAX || n > r->left / 10)
        return XE_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        struct roster_item it;
        int rc = rd_item(r, &it);

        if (rc == 0 && ro->n > 0 && strcmp(ro->items[ro->n - 1]->jid, it.jid) >= 0)
            rc = XE_CORRUPT; /* sorted and unique */
        if (rc == 0)
            rc = roster_put(ro, &it);
        roster_item_clear(&it);
        if (rc < 0)
            return rc == XE_LIMIT ? XE_CORRUPT : rc;
    }
    return 0;
}

int roster_db_snapshot_decode(const void *buf, size_t len, struct roster_db **out)
{
    struct rd r = {.p = buf, .left = len};
    struct roster_db *db = NULL;
    uint64_t n;
    int rc;

    *out = NULL;
    if (buf == NULL)
        return XE_CORRUPT;
    rc = roster_db_new(&db);
    if (rc < 0)
        return rc;
    if (rd_uint(&r, 1) != ROSTER_SNAP_VERSION || r.bad) {
        rc = XE_CORRUPT;
        goto fail;
    }
    n = rd_uint(&r, 4);
    if (r.bad || n > r.left / 16) {
        rc = XE_CORRUPT;
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        char *name = NULL;

        rc = rd_str(&r, ROSTER_USER_MAX, false, &name);
        if (rc == 0)
            rc = cl_user_check(name);
        if (rc == 0 && db->n > 0 && strcmp(db->users[db->n - 1].name, name) >= 0)
            rc = XE_CORRUPT;
        if (rc == 0)
            rc = add_user(db, db->n, name);
        free(name);
        if (rc == 0)
            rc = snap_read_roster(&r, &db->users[db->n - 1].roster);
        if (rc < 0)
            goto fail;
    }
    if (r.bad || r.left != 0) {
        rc = XE_CORRUPT;
        goto fail;
    }
    *out = db;
    return 0;

fail:
    roster_db_free(db);
    return rc;
}
