/* roster.c: the roster of one user: validation of its entries, the sorted
 * entry array with its bounds, and the presence selections of RFC 6121 §4
 * (contract in roster.h; the roster get/set/remove protocol is in
 * roster_iq.c, the subscription tables in roster_sub.c, the replicated
 * store in roster_db.c). */
#include "roster.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "jid.h"

/* ---- validation ---- */

int roster_jid_check(const char *s)
{
    struct jid j;
    struct buf b = {0};
    int rc;

    if (s == NULL || s[0] == '\0' || strlen(s) > ROSTER_JID_MAX)
        return XE_INVAL;
    rc = jid_parse(s, &j);
    if (rc < 0)
        return rc;
    /* Prepared means: formatting the parse gives the same bytes back. */
    if (j.resource != NULL)
        rc = XE_INVAL;
    else if ((rc = jid_format(&j, &b)) == 0 && (b.data == NULL || strcmp(b.data, s) != 0))
        rc = XE_INVAL;
    buf_free(&b);
    jid_clear(&j);
    return rc;
}

bool roster_jid_valid(const char *s)
{
    return roster_jid_check(s) == 0;
}

/* utf8_len returns the length of the UTF-8 sequence at s (n bytes left) or 0
 * when it is not one (RFC 3629 §4: no overlongs, surrogates, or code points
 * above U+10FFFF); *cp gets the code point. */
static size_t utf8_len(const unsigned char *s, size_t n, unsigned long *cp)
{
    unsigned long c;
    size_t len;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, c = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, c = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, c = s[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

bool roster_text_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        unsigned long cp;
        size_t n = utf8_len(p + i, len - i, &cp);

        /* XML 1.0 §2.2 Char: no controls but TAB, LF, CR; no U+FFFE/FFFF. */
        if (n == 0 || (cp < 0x20 && cp != 0x9 && cp != 0xa && cp != 0xd) ||
            cp == 0xfffe || cp == 0xffff)
            return false;
        i += n;
    }
    return true;
}

static bool group_valid(const char *g)
{
    size_t n = g == NULL ? 0 : strlen(g);

    return n >= 1 && n <= ROSTER_GROUP_MAX && roster_text_valid(g, n);
}

bool roster_item_valid(const struct roster_item *it)
{
    return roster_item_check(it) == 0;
}

int roster_item_check(const struct roster_item *it)
{
    size_t n;
    int rc;

    if (it == NULL)
        return XE_INVAL;
    rc = roster_jid_check(it->jid);
    if (rc < 0)
        return rc;
    if (it->name != NULL) {
        n = strlen(it->name);
        if (n == 0 || n > ROSTER_NAME_MAX || !roster_text_valid(it->name, n))
            return XE_INVAL;
    }
    if (it->n_groups > ROSTER_GROUPS_MAX || (it->n_groups > 0 && it->groups == NULL))
        return XE_INVAL;
    for (size_t i = 0; i < it->n_groups; i++) {
        if (!group_valid(it->groups[i]))
            return XE_INVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(it->groups[k], it->groups[i]) == 0)
                return XE_INVAL; /* §2.3.3: no duplicate groups */
    }
    if ((unsigned)it->sub > ROSTER_SUB_BOTH)
        return XE_INVAL;
    /* A.1: pending out only without "to", pending in only without "from". */
    if ((it->ask && (it->sub & ROSTER_SUB_TO)) ||
        (it->pending_in && (it->sub & ROSTER_SUB_FROM)))
        return XE_INVAL;
    if (it->request != NULL &&
        (!it->pending_in || it->request_len == 0 || it->request_len > ROSTER_REQUEST_MAX))
        return XE_INVAL;
    if (it->request == NULL && it->request_len != 0)
        return XE_INVAL;
    /* An entry that is not a roster item exists only for a pending request
     * ("None + Pending In" without an item, A.1), and has nothing else. */
    if (!it->listed && (!it->pending_in || it->sub != ROSTER_SUB_NONE || it->ask ||
                        it->name != NULL || it->n_groups != 0))
        return XE_INVAL;
    return 0;
}

/* ---- items ---- */

void roster_item_clear(struct roster_item *it)
{
    if (it == NULL)
        return;
    free(it->jid);
    free(it->name);
    for (size_t i = 0; i < it->n_groups; i++)
        free(it->groups[i]);
    free(it->groups);
    free(it->request);
    memset(it, 0, sizeof *it);
}

static char *dup_or_null(const char *s, bool *fail)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        *fail = true;
    return d;
}

int roster_item_copy(struct roster_item *dst, const struct roster_item *src)
{
    bool fail = false;

    memset(dst, 0, sizeof *dst);
    dst->sub = src->sub;
    dst->ask = src->ask;
    dst->pending_in = src->pending_in;
    dst->listed = src->listed;
    dst->jid = dup_or_null(src->jid, &fail);
    dst->name = dup_or_null(src->name, &fail);
    if (src->n_groups > 0) {
        dst->groups = calloc(src->n_groups, sizeof *dst->groups);
        if (dst->groups == NULL)
            fail = true;
        else
            dst->n_groups = src->n_groups;
        for (size_t i = 0; !fail && i < src->n_groups; i++)
            dst->groups[i] = dup_or_null(src->groups[i], &fail);
    }
    if (src->request != NULL && src->request_len > 0) {
        dst->request = malloc(src->request_len);
        if (dst->request == NULL) {
            fail = true;
        } else {
            memcpy(dst->request, src->request, src->request_len);
            dst->request_len = src->request_len;
        }
    }
    if (fail) {
        roster_item_clear(dst);
        return XE_NOMEM;
    }
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

bool roster_item_equal(const struct roster_item *a, const struct roster_item *b)
{
    if (!str_eq(a->jid, b->jid) || !str_eq(a->name, b->name) || a->sub != b->sub ||
        a->ask != b->ask || a->pending_in != b->pending_in || a->listed != b->listed ||
        a->n_groups != b->n_groups || a->request_len != b->request_len)
        return false;
    for (size_t i = 0; i < a->n_groups; i++)
        if (!str_eq(a->groups[i], b->groups[i]))
            return false;
    return a->request_len == 0 || memcmp(a->request, b->request, a->request_len) == 0;
}

/* ---- the roster ---- */

void roster_init(struct roster *r)
{
    memset(r, 0, sizeof *r);
}

void roster_clear(struct roster *r)
{
    for (size_t i = 0; i < r->n; i++) {
        roster_item_clear(r->items[i]);
        free(r->items[i]);
    }
    free(r->items);
    memset(r, 0, sizeof *r);
}

/* find returns the position of jid in r, or where it would go. */
static size_t find(const struct roster *r, const char *jid, bool *found)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->items[mid]->jid, jid);
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

const struct roster_item *roster_find(const struct roster *r, const char *jid)
{
    bool found;
    size_t i;

    if (r == NULL || jid == NULL)
        return NULL;
    i = find(r, jid, &found);
    return found ? r->items[i] : NULL;
}

bool roster_room(const struct roster *r, bool listed)
{
    if (r == NULL)
        return true; /* no roster yet: an empty one */
    return r->n < ROSTER_ITEMS_MAX && (listed || r->n_pending < ROSTER_PENDING_MAX);
}

int roster_put(struct roster *r, const struct roster_item *it)
{
    bool found;
    size_t pos;
    struct roster_item *ni;
    size_t pending;
    int rc = roster_item_check(it);

    if (rc < 0)
        return rc;
    pos = find(r, it->jid, &found);
    pending = r->n_pending;
    if (found && !r->items[pos]->listed)
        pending--;
    if (!it->listed)
        pending++;
    if ((!found && r->n >= ROSTER_ITEMS_MAX) || pending > ROSTER_PENDING_MAX)
        return XE_LIMIT;
    if (!found && r->n == r->cap) {
        size_t ncap = r->cap == 0 ? 8 : r->cap * 2;
        struct roster_item **na = realloc(r->items, ncap * sizeof *na);
        if (na == NULL)
            return XE_NOMEM;
        r->items = na;
        r->cap = ncap;
    }
    ni = malloc(sizeof *ni);
    if (ni == NULL || roster_item_copy(ni, it) < 0) {
        free(ni);
        return XE_NOMEM;
    }
    if (found) {
        roster_item_clear(r->items[pos]);
        free(r->items[pos]);
    } else {
        memmove(&r->items[pos + 1], &r->items[pos], (r->n - pos) * sizeof *r->items);
        r->n++;
    }
    r->items[pos] = ni;
    r->n_pending = pending;
    return 0;
}

int roster_remove(struct roster *r, const char *jid)
{
    bool found;
    size_t pos = find(r, jid, &found);

    if (!found)
        return XE_NOTFOUND;
    if (!r->items[pos]->listed)
        r->n_pending--;
    roster_item_clear(r->items[pos]);
    free(r->items[pos]);
    memmove(&r->items[pos], &r->items[pos + 1], (r->n - pos - 1) * sizeof *r->items);
    r->n--;
    return 0;
}

void roster_decision_clear(struct roster_decision *d)
{
    roster_item_clear(&d->item);
    memset(d, 0, sizeof *d);
}

/* ---- presence (§4) ---- */

static bool selected(const struct roster_item *it, enum roster_select which)
{
    switch (which) {
    case ROSTER_SEL_BROADCAST:
        return (it->sub & ROSTER_SUB_FROM) != 0;
    case ROSTER_SEL_PROBE:
        return (it->sub & ROSTER_SUB_TO) != 0;
    case ROSTER_SEL_PENDING:
        return it->pending_in;
    }
    return false;
}

int roster_select(const struct roster *r, enum roster_select which,
                  const struct roster_item ***out, size_t *n)
{
    size_t k = 0;

    *out = NULL;
    *n = 0;
    for (size_t i = 0; r != NULL && i < r->n; i++)
        k += selected(r->items[i], which);
    if (k == 0)
        return 0;
    *out = malloc(k * sizeof **out);
    if (*out == NULL)
        return XE_NOMEM;
    for (size_t i = 0; i < r->n; i++)
        if (selected(r->items[i], which))
            (*out)[(*n)++] = r->items[i];
    return 0;
}

enum roster_probe_answer roster_probe_decide(const struct roster *r, const char *contact)
{
    const struct roster_item *it = roster_find(r, contact);

    /* §4.3.2: presence only to a contact with a subscription to the user
     * ("from" or "both"); anyone else learns nothing but "unsubscribed". */
    if (it != NULL && (it->sub & ROSTER_SUB_FROM))
        return ROSTER_PROBE_PRESENCE;
    return ROSTER_PROBE_UNSUBSCRIBED;
}
