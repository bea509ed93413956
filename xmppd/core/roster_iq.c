/* roster_iq.c: the jabber:iq:roster protocol of RFC 6121 §2: parsing a
 * roster set, deciding a set or remove, and the <item/> and <query/>
 * elements of results and pushes (contract in roster.h). */
#include "roster.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "jid.h"

/* ---- roster set and remove (§2.3, §2.5) ---- */

/* prep_jid parses s into its prepared bare form (owned, in *out), or says
 * which condition refuses it. */
static int prep_jid(const char *s, char **out, const char **cond)
{
    struct jid j;
    struct buf b = {0};
    int rc;

    *out = NULL;
    rc = jid_parse(s, &j);
    if (rc == XE_NOMEM)
        return rc;
    if (rc < 0) {
        *cond = "jid-malformed";
        return XE_PROTO;
    }
    if (j.resource != NULL) {
        jid_clear(&j);
        *cond = "bad-request"; /* roster items are bare JIDs (§2.1.1) */
        return XE_PROTO;
    }
    rc = jid_format(&j, &b);
    jid_clear(&j);
    if (rc < 0)
        return rc;
    if (b.len > ROSTER_JID_MAX) {
        buf_free(&b);
        *cond = "jid-malformed";
        return XE_PROTO;
    }
    *out = buf_steal(&b);
    return *out == NULL ? XE_NOMEM : 0;
}

/* parse_groups reads the <group/> children of el into it. */
static int parse_groups(const struct stz *el, struct roster_item *it, const char **cond)
{
    for (const struct stz *g = stz_first_element(el); g != NULL;
         g = stz_next_element(g)) {
        char *text;

        if (strcmp(g->name, "group") != 0 || strcmp(g->ns, ROSTER_NS) != 0)
            continue; /* unknown children are ignored */
        if (it->n_groups == ROSTER_GROUPS_MAX) {
            *cond = "not-acceptable";
            return XE_PROTO;
        }
        text = stz_text(g);
        if (text == NULL)
            return XE_NOMEM;
        /* §2.3.3: an empty or over-long group is not-acceptable. */
        if (text[0] == '\0' || strlen(text) > ROSTER_GROUP_MAX ||
            !roster_text_valid(text, strlen(text))) {
            free(text);
            *cond = "not-acceptable";
            return XE_PROTO;
        }
        for (size_t i = 0; i < it->n_groups; i++) {
            if (strcmp(it->groups[i], text) == 0) {
                free(text);
                *cond = "bad-request"; /* §2.3.3: duplicate groups */
                return XE_PROTO;
            }
        }
        if (it->n_groups == 0) {
            it->groups = calloc(ROSTER_GROUPS_MAX, sizeof *it->groups);
            if (it->groups == NULL) {
                free(text);
                return XE_NOMEM;
            }
        }
        it->groups[it->n_groups++] = text;
    }
    return 0;
}

int roster_parse_set(const struct stz *query, const char *user_bare,
                     struct roster_set_req *out, const char **cond)
{
    const struct stz *item = NULL;
    const char *jid, *name, *sub;
    int n_items = 0, rc;

    memset(out, 0, sizeof *out);
    *cond = NULL;
    for (const struct stz *c = stz_first_element(query); c != NULL;
         c = stz_next_element(c)) {
        if (strcmp(c->name, "item") == 0 && strcmp(c->ns, ROSTER_NS) == 0) {
            item = c;
            n_items++;
        }
    }
    /* §2.1.5: a roster set contains exactly one item. */
    if (n_items != 1) {
        *cond = "bad-request";
        return XE_PROTO;
    }
    jid = stz_attr(item, "jid");
    if (jid == NULL) {
        *cond = "bad-request";
        return XE_PROTO;
    }
    rc = prep_jid(jid, &out->item.jid, cond);
    if (rc < 0)
        return rc;
    if (user_bare != NULL && strcmp(out->item.jid, user_bare) == 0) {
        *cond = "not-acceptable"; /* policy: never oneself (roster.h) */
        rc = XE_PROTO;
        goto err;
    }
    out->item.listed = true;
    /* §2.1.2.5: only "remove" has a meaning in a set; the rest is ignored. */
    sub = stz_attr(item, "subscription");
    if (sub != NULL && strcmp(sub, "remove") == 0) {
        out->remove = true;
        return 0;
    }
    name = stz_attr(item, "name");
    if (name != NULL && name[0] != '\0') {
        /* §2.3.3: a name beyond the server's limit is not-acceptable. */
        if (strlen(name) > ROSTER_NAME_MAX || !roster_text_valid(name, strlen(name))) {
            *cond = "not-acceptable";
            rc = XE_PROTO;
            goto err;
        }
        out->item.name = strdup(name);
        if (out->item.name == NULL) {
            rc = XE_NOMEM;
            goto err;
        }
    }
    rc = parse_groups(item, &out->item, cond);
    if (rc < 0)
        goto err;
    return 0;

err:
    roster_item_clear(&out->item);
    return rc;
}

static void act(struct roster_decision *d, enum roster_act_kind kind,
                enum roster_pres type)
{
    if (d->n_act < ROSTER_ACTIONS_MAX) {
        d->act[d->n_act].kind = kind;
        d->act[d->n_act].type = type;
        d->n_act++;
    }
}

/* take_name_groups replaces dst's name and groups with copies of src's. */
static int take_name_groups(struct roster_item *dst, const struct roster_item *src)
{
    struct roster_item tmp;
    int rc;

    free(dst->name);
    for (size_t i = 0; i < dst->n_groups; i++)
        free(dst->groups[i]);
    free(dst->groups);
    dst->name = NULL;
    dst->groups = NULL;
    dst->n_groups = 0;
    rc = roster_item_copy(&tmp, src);
    if (rc < 0)
        return rc;
    dst->name = tmp.name;
    dst->groups = tmp.groups;
    dst->n_groups = tmp.n_groups;
    tmp.name = NULL;
    tmp.groups = NULL;
    tmp.n_groups = 0;
    roster_item_clear(&tmp);
    return 0;
}

int roster_set_decide(const struct roster *r, const struct roster_set_req *req,
                      struct roster_decision *out, const char **cond)
{
    const struct roster_item *cur = roster_find(r, req->item.jid);
    int rc;

    memset(out, 0, sizeof *out);
    *cond = NULL;
    out->old_state = out->new_state = roster_state_of(cur);
    out->base = roster_base_of(cur);
    if (req->remove) {
        enum roster_sub sub;

        /* §2.5.3: removing what is not a roster item is item-not-found. */
        if (cur == NULL || !cur->listed) {
            *cond = "item-not-found";
            return XE_PROTO;
        }
        rc = roster_item_copy(&out->item, cur);
        if (rc < 0)
            return rc;
        sub = cur->sub;
        out->new_state = ROSTER_ST_NONE;
        out->write = ROSTER_WRITE_DEL;
        /* §2.5.2: push the removal; then, on the user's behalf, cancel the
         * user's subscription (or request) and the contact's (or refuse
         * its request), the latter as an outbound "unsubscribed" is sent:
         * unavailable first (§3.2.2 rule 3). */
        act(out, ROSTER_ACT_PUSH, 0);
        if ((sub & ROSTER_SUB_TO) || cur->ask)
            act(out, ROSTER_ACT_ROUTE, ROSTER_PRES_UNSUBSCRIBE);
        if ((sub & ROSTER_SUB_FROM) || cur->pending_in) {
            act(out, ROSTER_ACT_SEND_UNAVAILABLE, 0);
            act(out, ROSTER_ACT_ROUTE, ROSTER_PRES_UNSUBSCRIBED);
        }
        return 0;
    }
    if (cur == NULL && !roster_room(r, true)) {
        *cond = "not-allowed";
        return XE_PROTO;
    }
    if (cur != NULL) {
        rc = roster_item_copy(&out->item, cur);
        if (rc == 0)
            rc = take_name_groups(&out->item, &req->item);
    } else {
        rc = roster_item_copy(&out->item, &req->item);
        /* §2.3.2: a new item has subscription none and no pending state. */
        out->item.sub = ROSTER_SUB_NONE;
        out->item.ask = false;
        out->item.pending_in = false;
    }
    if (rc < 0) {
        roster_decision_clear(out);
        return rc;
    }
    out->item.listed = true;
    if (cur != NULL && roster_item_equal(cur, &out->item)) {
        /* The same item again: nothing to write, but the client still gets
         * its push (§2.3.2: the server pushes after every successful set). */
        act(out, ROSTER_ACT_PUSH, 0);
        return 0;
    }
    out->write = ROSTER_WRITE_SET;
    act(out, ROSTER_ACT_PUSH, 0);
    return 0;
}

/* ---- XML ---- */

static const char *sub_name(enum roster_sub s)
{
    switch (s) {
    case ROSTER_SUB_TO:
        return "to";
    case ROSTER_SUB_FROM:
        return "from";
    case ROSTER_SUB_BOTH:
        return "both";
    default:
        return "none";
    }
}

struct stz *roster_item_stz(const struct roster_item *it, bool removed)
{
    struct stz *el = stz_new("item", ROSTER_NS);
    bool ok = el != NULL;

    ok = ok && stz_set_attr(el, "jid", it->jid) == 0;
    if (ok && it->name != NULL && !removed)
        ok = stz_set_attr(el, "name", it->name) == 0;
    ok = ok &&
         stz_set_attr(el, "subscription", removed ? "remove" : sub_name(it->sub)) == 0;
    /* §2.1.2.2: ask='subscribe' shows the pending outbound request. */
    if (ok && it->ask && !removed)
        ok = stz_set_attr(el, "ask", "subscribe") == 0;
    for (size_t i = 0; ok && !removed && i < it->n_groups; i++) {
        struct stz *g = stz_add_child(el, "group", NULL);
        ok = g != NULL && stz_add_text(g, it->groups[i], strlen(it->groups[i])) == 0;
    }
    if (!ok) {
        stz_free(el);
        return NULL;
    }
    return el;
}

struct stz *roster_query_stz(const struct roster *r)
{
    struct stz *q = stz_new("query", ROSTER_NS);

    if (q == NULL)
        return NULL;
    for (size_t i = 0; r != NULL && i < r->n; i++) {
        struct stz *el;

        if (!r->items[i]->listed)
            continue; /* a pending request only is not a roster item (A.1) */
        el = roster_item_stz(r->items[i], false);
        if (el == NULL) {
            stz_free(q);
            return NULL;
        }
        stz_append(q, el);
    }
    return q;
}
