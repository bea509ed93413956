/* roster_sub.c: the presence subscription state machine of RFC 6121 §3, as
 * the tables of Appendix A (contract in roster.h).
 *
 * roster_sub_step is the tables themselves: a state and a stanza give the
 * new state and the table's "route?" (A.2, outbound) or "deliver?" (A.3,
 * inbound) column.  roster_sub_decide adds what §3 asks around each row:
 * the roster push, the presence to send after an approval, the unavailable
 * before a cancellation, the auto-reply, the stored request, and what to
 * write to the log. */
#include "roster.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

struct row {
    enum roster_state next;
    bool pass; /* route (A.2) or deliver (A.3) */
};

/* Row shorthands: Y(st) passes the stanza on and moves to st; N(st) does not
 * pass it on, and st is then always the existing state ("no state change"). */
#define Y(st)                                                                            \
    {                                                                                    \
        ROSTER_ST_##st, true                                                             \
    }
#define N(st)                                                                            \
    {                                                                                    \
        ROSTER_ST_##st, false                                                            \
    }

/* table[dir][type][existing state], one row per line, in the RFC's order.
 * Each row reads: existing state -> route/deliver?, new state. */
/* clang-format off */
static const struct row table[2][4][ROSTER_N_STATES] = {
    [ROSTER_OUT] = {
        /* A.2.1 Subscribe (§3.1.2): always routed. */
        [ROSTER_PRES_SUBSCRIBE] = {
            Y(NONE_PO),   /* "None"                  -> yes, "None + Pending Out" */
            Y(NONE_PO),   /* "None + Pending Out"    -> yes, no state change */
            Y(NONE_POI),  /* "None + Pending In"     -> yes, "None + Pending Out+In" */
            Y(NONE_POI),  /* "None + Pending Out+In" -> yes, no state change */
            Y(TO),        /* "To"                    -> yes, no state change */
            Y(TO_PI),     /* "To + Pending In"       -> yes, no state change */
            Y(FROM_PO),   /* "From"                  -> yes, "From + Pending Out" */
            Y(FROM_PO),   /* "From + Pending Out"    -> yes, no state change */
            Y(BOTH),      /* "Both"                  -> yes, no state change */
        },
        /* A.2.2 Unsubscribe (§3.3.2): always routed. */
        [ROSTER_PRES_UNSUBSCRIBE] = {
            Y(NONE),      /* "None"                  -> yes, no state change */
            Y(NONE),      /* "None + Pending Out"    -> yes, "None" */
            Y(NONE_PI),   /* "None + Pending In"     -> yes, no state change */
            Y(NONE_PI),   /* "None + Pending Out+In" -> yes, "None + Pending In" */
            Y(NONE),      /* "To"                    -> yes, "None" */
            Y(NONE_PI),   /* "To + Pending In"       -> yes, "None + Pending In" */
            Y(FROM),      /* "From"                  -> yes, no state change */
            Y(FROM),      /* "From + Pending Out"    -> yes, "From" */
            Y(FROM),      /* "Both"                  -> yes, "From" */
        },
        /* A.2.3 Subscribed (§3.1.5): routed only as the answer to a pending
         * inbound request; elsewhere it would be a pre-approval (§3.4, not
         * implemented) and is dropped. */
        [ROSTER_PRES_SUBSCRIBED] = {
            N(NONE),      /* "None"                  -> no, no state change */
            N(NONE_PO),   /* "None + Pending Out"    -> no, no state change */
            Y(FROM),      /* "None + Pending In"     -> yes, "From" */
            Y(FROM_PO),   /* "None + Pending Out+In" -> yes, "From + Pending Out" */
            N(TO),        /* "To"                    -> no, no state change */
            Y(BOTH),      /* "To + Pending In"       -> yes, "Both" */
            N(FROM),      /* "From"                  -> no, no state change */
            N(FROM_PO),   /* "From + Pending Out"    -> no, no state change */
            N(BOTH),      /* "Both"                  -> no, no state change */
        },
        /* A.2.4 Unsubscribed (§3.2.2): routed only when it cancels the
         * contact's subscription or refuses its pending request. */
        [ROSTER_PRES_UNSUBSCRIBED] = {
            N(NONE),      /* "None"                  -> no, no state change */
            N(NONE_PO),   /* "None + Pending Out"    -> no, no state change */
            Y(NONE),      /* "None + Pending In"     -> yes, "None" */
            Y(NONE_PO),   /* "None + Pending Out+In" -> yes, "None + Pending Out" */
            N(TO),        /* "To"                    -> no, no state change */
            Y(TO),        /* "To + Pending In"       -> yes, "To" */
            Y(NONE),      /* "From"                  -> yes, "None" */
            Y(NONE_PO),   /* "From + Pending Out"    -> yes, "None + Pending Out" */
            Y(TO),        /* "Both"                  -> yes, "To" */
        },
    },
    [ROSTER_IN] = {
        /* A.3.1 Subscribe (§3.1.3): delivered when it is a new request; in
         * the three rows marked (*) the contact is already subscribed and
         * the server auto-replies "subscribed" instead. */
        [ROSTER_PRES_SUBSCRIBE] = {
            Y(NONE_PI),   /* "None"                  -> yes, "None + Pending In" */
            Y(NONE_POI),  /* "None + Pending Out"    -> yes, "None + Pending Out+In" */
            N(NONE_PI),   /* "None + Pending In"     -> no, no state change */
            N(NONE_POI),  /* "None + Pending Out+In" -> no, no state change */
            Y(TO_PI),     /* "To"                    -> yes, "To + Pending In" */
            N(TO_PI),     /* "To + Pending In"       -> no, no state change */
            N(FROM),      /* "From"                  -> no (*), no state change */
            N(FROM_PO),   /* "From + Pending Out"    -> no (*), no state change */
            N(BOTH),      /* "Both"                  -> no (*), no state change */
        },
        /* A.3.2 Unsubscribe (§3.3.3): delivered when the contact had a
         * subscription or a pending request. */
        [ROSTER_PRES_UNSUBSCRIBE] = {
            N(NONE),      /* "None"                  -> no, no state change */
            N(NONE_PO),   /* "None + Pending Out"    -> no, no state change */
            Y(NONE),      /* "None + Pending In"     -> yes, "None" */
            Y(NONE_PO),   /* "None + Pending Out+In" -> yes, "None + Pending Out" */
            N(TO),        /* "To"                    -> no, no state change */
            Y(TO),        /* "To + Pending In"       -> yes, "To" */
            Y(NONE),      /* "From"                  -> yes, "None" */
            Y(NONE_PO),   /* "From + Pending Out"    -> yes, "None + Pending Out" */
            Y(TO),        /* "Both"                  -> yes, "To" */
        },
        /* A.3.3 Subscribed (§3.1.6): delivered only as the answer to the
         * user's pending request; otherwise silently ignored. */
        [ROSTER_PRES_SUBSCRIBED] = {
            N(NONE),      /* "None"                  -> no, no state change */
            Y(TO),        /* "None + Pending Out"    -> yes, "To" */
            N(NONE_PI),   /* "None + Pending In"     -> no, no state change */
            Y(TO_PI),     /* "None + Pending Out+In" -> yes, "To + Pending In" */
            N(TO),        /* "To"                    -> no, no state change */
            N(TO_PI),     /* "To + Pending In"       -> no, no state change */
            N(FROM),      /* "From"                  -> no, no state change */
            Y(BOTH),      /* "From + Pending Out"    -> yes, "Both" */
            N(BOTH),      /* "Both"                  -> no, no state change */
        },
        /* A.3.4 Unsubscribed (§3.2.3): delivered when it ends the user's
         * subscription or refuses the user's pending request. */
        [ROSTER_PRES_UNSUBSCRIBED] = {
            N(NONE),      /* "None"                  -> no, no state change */
            Y(NONE),      /* "None + Pending Out"    -> yes, "None" */
            N(NONE_PI),   /* "None + Pending In"     -> no, no state change */
            Y(NONE_PI),   /* "None + Pending Out+In" -> yes, "None + Pending In" */
            Y(NONE),      /* "To"                    -> yes, "None" */
            Y(NONE_PI),   /* "To + Pending In"       -> yes, "None + Pending In" */
            N(FROM),      /* "From"                  -> no, no state change */
            Y(FROM),      /* "From + Pending Out"    -> yes, "From" */
            Y(FROM),      /* "Both"                  -> yes, "From" */
        },
    },
};
/* clang-format on */

#undef Y
#undef N

_Static_assert(ROSTER_ST_NONE == 0 && ROSTER_ST_NONE_PO == 1 && ROSTER_ST_NONE_PI == 2 &&
                   ROSTER_ST_NONE_POI == 3 && ROSTER_ST_TO == 4 && ROSTER_ST_TO_PI == 5 &&
                   ROSTER_ST_FROM == 6 && ROSTER_ST_FROM_PO == 7 && ROSTER_ST_BOTH == 8,
               "the table rows are in the order of enum roster_state");

void roster_sub_step(enum roster_state st, enum roster_dir dir, enum roster_pres type,
                     enum roster_state *next, bool *pass)
{
    const struct row *r = &table[dir][type][st];

    *next = r->next;
    *pass = r->pass;
}

/* ---- states ---- */

enum roster_state roster_state_of(const struct roster_item *it)
{
    if (it == NULL)
        return ROSTER_ST_NONE; /* A.1: "None" includes "not in the roster" */
    switch (it->sub) {
    case ROSTER_SUB_NONE:
        if (it->ask)
            return it->pending_in ? ROSTER_ST_NONE_POI : ROSTER_ST_NONE_PO;
        return it->pending_in ? ROSTER_ST_NONE_PI : ROSTER_ST_NONE;
    case ROSTER_SUB_TO:
        return it->pending_in ? ROSTER_ST_TO_PI : ROSTER_ST_TO;
    case ROSTER_SUB_FROM:
        return it->ask ? ROSTER_ST_FROM_PO : ROSTER_ST_FROM;
    case ROSTER_SUB_BOTH:
        return ROSTER_ST_BOTH;
    }
    return ROSTER_ST_NONE;
}

uint8_t roster_base_of(const struct roster_item *it)
{
    if (it == NULL)
        return ROSTER_BASE_ABSENT;
    return (uint8_t)(roster_state_of(it) | (it->listed ? ROSTER_BASE_LISTED : 0));
}

void roster_state_apply(struct roster_item *it, enum roster_state st)
{
    static const struct {
        enum roster_sub sub;
        bool ask, in;
    } m[ROSTER_N_STATES] = {
        [ROSTER_ST_NONE] = {ROSTER_SUB_NONE, false, false},
        [ROSTER_ST_NONE_PO] = {ROSTER_SUB_NONE, true, false},
        [ROSTER_ST_NONE_PI] = {ROSTER_SUB_NONE, false, true},
        [ROSTER_ST_NONE_POI] = {ROSTER_SUB_NONE, true, true},
        [ROSTER_ST_TO] = {ROSTER_SUB_TO, false, false},
        [ROSTER_ST_TO_PI] = {ROSTER_SUB_TO, false, true},
        [ROSTER_ST_FROM] = {ROSTER_SUB_FROM, false, false},
        [ROSTER_ST_FROM_PO] = {ROSTER_SUB_FROM, true, false},
        [ROSTER_ST_BOTH] = {ROSTER_SUB_BOTH, false, false},
    };

    it->sub = m[st].sub;
    it->ask = m[st].ask;
    it->pending_in = m[st].in;
    if (!it->pending_in) {
        free(it->request); /* the request is answered or withdrawn */
        it->request = NULL;
        it->request_len = 0;
    }
}

const char *roster_state_name(enum roster_state st)
{
    static const char *const names[ROSTER_N_STATES] = {
        "None",
        "None + Pending Out",
        "None + Pending In",
        "None + Pending Out+In",
        "To",
        "To + Pending In",
        "From",
        "From + Pending Out",
        "Both",
    };

    return (unsigned)st < ROSTER_N_STATES ? names[st] : "unknown";
}

const char *roster_pres_name(enum roster_pres type)
{
    switch (type) {
    case ROSTER_PRES_SUBSCRIBE:
        return "subscribe";
    case ROSTER_PRES_SUBSCRIBED:
        return "subscribed";
    case ROSTER_PRES_UNSUBSCRIBE:
        return "unsubscribe";
    case ROSTER_PRES_UNSUBSCRIBED:
        return "unsubscribed";
    }
    return "unknown";
}

/* ---- decisions ---- */

static void act(struct roster_decision *d, enum roster_act_kind kind,
                enum roster_pres type)
{
    if (d->n_act < ROSTER_ACTIONS_MAX) {
        d->act[d->n_act].kind = kind;
        d->act[d->n_act].type = type;
        d->n_act++;
    }
}

/* keep_request stores a copy of the inbound request in it, if it fits. */
static int keep_request(struct roster_item *it, const void *request, size_t len)
{
    if (request == NULL || len == 0 || len > ROSTER_REQUEST_MAX)
        return 0; /* none kept: the session re-creates a bare request */
    it->request = malloc(len);
    if (it->request == NULL)
        return XE_NOMEM;
    memcpy(it->request, request, len);
    it->request_len = len;
    return 0;
}

/* decide_out adds the actions of an outbound stanza (A.2 and §3). */
static int decide_out(const struct roster *r, const struct roster_item *cur,
                      enum roster_pres type, bool pass, struct roster_decision *d)
{
    bool changed = d->new_state != d->old_state;
    bool was_listed = d->item.listed;

    switch (type) {
    case ROSTER_PRES_SUBSCRIBE:
        /* §3.1.2: the contact becomes a roster item if it was not one; the
         * request is routed even when nothing changes (a re-send). */
        if (cur == NULL && !roster_room(r, true))
            return XE_LIMIT;
        d->item.listed = true;
        act(d, ROSTER_ACT_ROUTE, type);
        if (changed || !was_listed) {
            d->write = ROSTER_WRITE_SET;
            act(d, ROSTER_ACT_PUSH, 0);
        }
        return 0;
    case ROSTER_PRES_UNSUBSCRIBE:
        /* §3.3.2: routed always; a push when the item changed. */
        act(d, ROSTER_ACT_ROUTE, type);
        if (changed) {
            d->write = ROSTER_WRITE_SET;
            act(d, ROSTER_ACT_PUSH, 0);
        }
        return 0;
    case ROSTER_PRES_SUBSCRIBED:
        if (!pass) {
            act(d, ROSTER_ACT_DROP, 0); /* §3.1.5: MUST NOT route */
            return 0;
        }
        /* §3.1.5: route the approval, make the contact a roster item (it
         * may have been a request only), push it, then send the user's
         * presence to the new subscriber. */
        d->item.listed = true;
        d->write = ROSTER_WRITE_SET;
        act(d, ROSTER_ACT_ROUTE, type);
        act(d, ROSTER_ACT_PUSH, 0);
        act(d, ROSTER_ACT_SEND_PRESENCE, 0);
        return 0;
    case ROSTER_PRES_UNSUBSCRIBED:
        if (!pass) {
            act(d, ROSTER_ACT_DROP, 0); /* §3.2.2 rule 1: SHOULD NOT route */
            return 0;
        }
        /* §3.2.2 rule 3: in every state where it is routed, unavailable
         * from each available resource goes first, "while the user is still
         * subscribed", then the unsubscribed, then the push.  The rule says
         * so also for the refusal of a pending request (no subscription
         * yet); we follow the text. */
        act(d, ROSTER_ACT_SEND_UNAVAILABLE, 0);
        act(d, ROSTER_ACT_ROUTE, type);
        if (d->item.listed) {
            d->write = ROSTER_WRITE_SET;
            act(d, ROSTER_ACT_PUSH, 0);
        } else {
            d->write = ROSTER_WRITE_DEL; /* a refused request, never an item */
        }
        return 0;
    }
    return XE_INVAL;
}

/* decide_in adds the actions of an inbound stanza (A.3 and §3). */
static int decide_in(const struct roster *r, const struct roster_item *cur,
                     enum roster_pres type, bool pass, const void *request,
                     size_t request_len, struct roster_decision *d)
{
    if (type == ROSTER_PRES_SUBSCRIBE) {
        if (!pass &&
            (d->old_state == ROSTER_ST_FROM || d->old_state == ROSTER_ST_FROM_PO ||
             d->old_state == ROSTER_ST_BOTH)) {
            /* §3.1.3 rule 3: already subscribed: auto-reply "subscribed". */
            act(d, ROSTER_ACT_AUTO_REPLY, ROSTER_PRES_SUBSCRIBED);
            return 0;
        }
        if (!pass) {
            act(d, ROSTER_ACT_DROP, 0); /* already pending: a duplicate */
            return 0;
        }
        /* §3.1.3: keep the request until the user answers (re-delivered at
         * login), and deliver it now to the available resources.  No push:
         * a pending inbound request is not part of the roster item.  With
         * no room left for a new entry the request is delivered, not kept. */
        if (cur != NULL || roster_room(r, false)) {
            int rc = keep_request(&d->item, request, request_len);
            if (rc < 0)
                return rc;
            d->write = ROSTER_WRITE_SET;
            act(d, ROSTER_ACT_STORE_REQUEST, 0);
        } else {
            d->new_state = d->old_state;
            roster_state_apply(&d->item, d->old_state);
        }
        act(d, ROSTER_ACT_DELIVER, 0);
        return 0;
    }
    if (!pass) {
        /* §3.1.6, §3.2.3, §3.3.3: nothing to change, silently ignored. */
        act(d, ROSTER_ACT_DROP, 0);
        return 0;
    }
    /* Subscribed, unsubscribe, unsubscribed that change the state: push the
     * item, then deliver the stanza (§3.1.6, §3.2.3, §3.3.3).  An entry that
     * was only a request and is now "None" goes away without a push.  (For
     * an unsubscribe in a pending-in-only state §3.3.3's text says ignore
     * it, A.3.2 says deliver it; the table is followed here.) */
    if (!d->item.listed && d->new_state == ROSTER_ST_NONE) {
        d->write = ROSTER_WRITE_DEL;
    } else {
        d->write = ROSTER_WRITE_SET;
        if (d->item.listed)
            act(d, ROSTER_ACT_PUSH, 0);
    }
    act(d, ROSTER_ACT_DELIVER, 0);
    /* §3.3.3: a contact that unsubscribes stops seeing the user: send it
     * unavailable from each of the user's available resources. */
    if (type == ROSTER_PRES_UNSUBSCRIBE && (cur->sub & ROSTER_SUB_FROM))
        act(d, ROSTER_ACT_SEND_UNAVAILABLE, 0);
    return 0;
}

int roster_sub_decide(const struct roster *r, const char *contact, enum roster_dir dir,
                      enum roster_pres type, const void *request, size_t request_len,
                      struct roster_decision *out)
{
    const struct roster_item *cur;
    bool pass;
    int rc;

    memset(out, 0, sizeof *out);
    if (!roster_jid_valid(contact) || (dir != ROSTER_OUT && dir != ROSTER_IN) ||
        (unsigned)type > ROSTER_PRES_UNSUBSCRIBED)
        return XE_INVAL;
    cur = roster_find(r, contact);
    out->base = roster_base_of(cur);
    out->old_state = roster_state_of(cur);
    roster_sub_step(out->old_state, dir, type, &out->new_state, &pass);
    if (cur != NULL) {
        rc = roster_item_copy(&out->item, cur);
    } else {
        out->item.jid = strdup(contact);
        rc = out->item.jid == NULL ? XE_NOMEM : 0;
    }
    if (rc < 0)
        return rc;
    roster_state_apply(&out->item, out->new_state);
    if (dir == ROSTER_OUT)
        rc = decide_out(r, cur, type, pass, out);
    else
        rc = decide_in(r, cur, type, pass, request, request_len, out);
    if (rc < 0)
        roster_decision_clear(out);
    return rc;
}
