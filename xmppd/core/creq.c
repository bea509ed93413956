/* creq.c: cluster requests to the leader, as a pure state machine
 * (contract in creq.h; docs/cluster.md "Requests to the leader"). */
#include "creq.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "never.h"

/* One request.  done comes first: a done record handed to the caller is
 * the whole request, and creq_done_free frees it. */
struct req {
    struct creq_done done;
    uint64_t id;
    uint8_t kind;        /* enum pframe_req_kind */
    uint64_t to;         /* fixed receiver, or 0: the leader */
    uint64_t sent_to;    /* 0: not sent (waiting for a leader) */
    uint64_t deadline;   /* monotonic ms */
    uint64_t expires;    /* wall-clock ms (in the data too) */
    unsigned char *data; /* the SUBMIT data */
    size_t len;
    struct req *next;
};

struct creq {
    struct creq_opts o;
    uint64_t next_id;
    uint64_t leader_id;
    bool leading;
    struct req *reqs; /* oldest first */
    size_t n, bytes;
};

void creq_opts_default(struct creq_opts *o)
{
    o->max_pending = CREQ_MAX_PENDING;
    o->max_bytes = CREQ_MAX_BYTES;
}

int creq_new(const struct creq_opts *o, struct creq **out)
{
    struct creq *q;

    *out = NULL;
    if (o != NULL &&
        (o->max_pending == 0 || o->max_pending > CREQ_MAX_PENDING || o->max_bytes == 0))
        return XE_INVAL;
    q = calloc(1, sizeof *q);
    if (q == NULL)
        return XE_NOMEM;
    if (o != NULL)
        q->o = *o;
    else
        creq_opts_default(&q->o);
    *out = q;
    return 0;
}

static void req_free(struct req *r)
{
    /* A join request carries the admin's join token. */
    if (r->data != NULL)
        sodium_memzero(r->data, r->len);
    free(r->data);
    free(r);
}

void creq_free(struct creq *q)
{
    if (q == NULL)
        return;
    while (q->reqs != NULL) {
        struct req *r = q->reqs;
        q->reqs = r->next;
        req_free(r);
    }
    free(q);
}

void creq_done_free(struct creq_done *d)
{
    if (d != NULL)
        req_free((struct req *)d);
}

size_t creq_pending(const struct creq *q, size_t *bytes)
{
    if (bytes != NULL)
        *bytes = q->bytes;
    return q->n;
}

/* ---- the update ---- */

static void put_send(struct creq_update *u, struct req *r, uint64_t to)
{
    struct creq_send *s = &u->sends[u->n_sends++];

    s->to = to;
    s->request_id = r->id;
    s->data = r->data;
    s->len = r->len;
    r->sent_to = to;
}

/* unlink takes r out of q and appends it to u's done list. */
static struct creq_done *unlink_done(struct creq *q, struct req *r, struct creq_update *u)
{
    struct creq_done **tail = &u->done;

    for (struct req **pp = &q->reqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    q->n--;
    q->bytes -= r->len;
    r->next = NULL;
    while (*tail != NULL)
        tail = &(*tail)->next;
    r->done.next = NULL;
    *tail = &r->done;
    return &r->done;
}

static void answer(struct creq *q, struct req *r, struct creq_update *u, int rc,
                   const char *msg, const void *data, size_t len)
{
    struct creq_done *d = unlink_done(q, r, u);

    d->rc = rc;
    d->msg = msg;
    d->data = data;
    d->len = len;
}

static struct req *find(struct creq *q, uint64_t id)
{
    for (struct req *r = q->reqs; r != NULL; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static uint64_t next_deadline(const struct creq *q)
{
    uint64_t due = 0;

    for (const struct req *r = q->reqs; r != NULL; r = r->next)
        if (due == 0 || r->deadline < due)
            due = r->deadline;
    return due;
}

/* ---- events ---- */

/* encode writes r's SUBMIT data (kind, expires, body) into a new
 * allocation. */
static int encode(const struct pframe_req *req, uint64_t expires, unsigned char **data,
                  size_t *len)
{
    struct pframe_req copy = *req;
    struct buf b;
    int rc;

    memset(&b, 0, sizeof b);
    copy.expires = expires;
    rc = pframe_req_encode(&copy, &b);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    *len = b.len;
    *data = (unsigned char *)buf_steal(&b);
    return *data != NULL ? 0 : XE_NOMEM;
}

static void submit(struct creq *q, const struct creq_event *ev, struct creq_update *u)
{
    uint64_t timeout =
        ev->u.submit.timeout_ms != 0 ? ev->u.submit.timeout_ms : CREQ_TIMEOUT_DEFAULT_MS;
    struct req *r, **tail;
    int rc;

    u->expires = ev->wall + timeout;
    /* The leader serves a request itself (a fixed one goes where it was
     * meant to, whoever leads). */
    if (ev->u.submit.to == 0 && q->leading) {
        u->serve_now = true;
        return;
    }
    if (q->n >= q->o.max_pending) {
        u->rc = XE_LIMIT;
        u->msg = "too many cluster requests wait for the leader on this node; nothing "
                 "was changed: try again once xmpp cluster status shows a leader";
        return;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        u->rc = XE_NOMEM;
        u->msg = "out of memory on this node: the request was not sent; nothing was "
                 "changed";
        return;
    }
    rc = encode(ev->u.submit.req, u->expires, &r->data, &r->len);
    if (rc < 0 || q->bytes + r->len > q->o.max_bytes) {
        u->rc = rc < 0 ? rc : XE_LIMIT;
        u->msg = rc == XE_NOMEM ? "out of memory on this node: the request was not "
                                  "sent; nothing was changed"
                 : rc < 0       ? "the request cannot be encoded; nothing was changed"
                          : "the cluster requests waiting for the leader on this node "
                            "are too large; nothing was changed: try again once xmpp "
                            "cluster status shows a leader";
        req_free(r);
        return;
    }
    r->id = ++q->next_id;
    r->kind = ev->u.submit.req->kind;
    r->to = ev->u.submit.to;
    r->deadline = ev->now + timeout;
    r->expires = u->expires;
    r->done.ctx = ev->u.submit.ctx;
    for (tail = &q->reqs; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = r;
    q->n++;
    q->bytes += r->len;
    u->request_id = r->id;
    if (r->to != 0)
        put_send(u, r, r->to);
    else if (q->leader_id != 0)
        put_send(u, r, q->leader_id);
}

static void result(struct creq *q, const struct creq_event *ev, struct creq_update *u)
{
    struct req *r = find(q, ev->u.result.request_id);
    const char *msg = ev->u.result.msg;

    /* An answer from a node the request was not (or no longer) with is
     * stale: a channel reset made us ask again elsewhere. */
    if (r == NULL || r->sent_to == 0 || r->sent_to != ev->u.result.from)
        return;
    answer(q, r, u, ev->u.result.rc, msg != NULL && msg[0] != '\0' ? msg : NULL,
           ev->u.result.data, ev->u.result.len);
}

/* expired answers r at its deadline with what is known of its fate. */
static void expired(struct creq *q, struct req *r, struct creq_update *u)
{
    if (r->sent_to == 0)
        answer(q, r, u, XE_NOLEADER,
               "no cluster leader: this node cannot reach a majority of the cluster; "
               "nothing was changed",
               NULL, 0);
    else if (q->leader_id != r->sent_to)
        answer(q, r, u, XE_TIMEOUT,
               "no answer from the old cluster leader, and no leader now: the change is "
               "applied only if it reached the old leader's majority",
               NULL, 0);
    else
        answer(q, r, u, XE_TIMEOUT,
               "no answer from the cluster leader in time (unreachable?); the change "
               "may still be applied",
               NULL, 0);
}

static void tick(struct creq *q, const struct creq_event *ev, struct creq_update *u)
{
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        if (ev->now >= r->deadline) {
            expired(q, r, u);
        } else if (r->sent_to == 0 && r->to == 0 && q->leader_id != 0) {
            if (q->leading) {
                struct creq_done *d = unlink_done(q, r, u);
                d->serve = true;
                d->req = r->data;
                d->req_len = r->len;
                d->expires = r->expires;
            } else {
                put_send(u, r, q->leader_id);
            }
        }
    }
}

/* reset: the frames sent on the old stream to peer are gone.  A write
 * might have been applied: say so rather than submit it twice; join and
 * remove are idempotent: ask again (a fixed one waits for its deadline). */
static void reset(struct creq *q, const struct creq_event *ev, struct creq_update *u)
{
    for (struct req *r = q->reqs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->sent_to != ev->u.reset.peer)
            continue;
        if (r->kind == PFRAME_REQ_CMD)
            answer(q, r, u, XE_TIMEOUT, "the leader restarted", NULL, 0);
        else if (r->to == 0)
            r->sent_to = 0;
    }
}

static void send_failed(struct creq *q, const struct creq_event *ev,
                        struct creq_update *u)
{
    struct req *r = find(q, ev->u.send_failed.request_id);

    if (r == NULL)
        return;
    if (r->to == 0) {
        r->sent_to = 0; /* the next tick asks the leader again */
        return;
    }
    answer(q, r, u, ev->u.send_failed.rc == XE_NOMEM ? XE_NOMEM : XE_CLOSED,
           ev->u.send_failed.rc == XE_NOMEM
               ? "out of memory on this node: the request was not sent"
               : "the link to the member closed",
           NULL, 0);
}

int creq_step(struct creq *q, const struct creq_event *ev, struct creq_update *u)
{
    u->request_id = 0;
    u->rc = 0;
    u->msg = NULL;
    u->serve_now = false;
    u->expires = 0;
    u->n_sends = 0;
    u->done = NULL;
    switch (ev->type) {
    case CREQ_EV_SUBMIT:
        /* Only CMD, JOIN and REMOVE are requests (creq.h): anything else
         * is a caller's bug. */
        if (XD_NEVER(ev->u.submit.req == NULL ||
                     (ev->u.submit.req->kind != PFRAME_REQ_CMD &&
                      ev->u.submit.req->kind != PFRAME_REQ_JOIN &&
                      ev->u.submit.req->kind != PFRAME_REQ_REMOVE)))
            return XE_INVAL;
        submit(q, ev, u);
        break;
    case CREQ_EV_RESULT:
        result(q, ev, u);
        break;
    case CREQ_EV_TICK:
        tick(q, ev, u);
        break;
    case CREQ_EV_LEADER:
        q->leader_id = ev->u.leader.leader_id;
        q->leading = ev->u.leader.leading;
        break;
    case CREQ_EV_RESET:
        reset(q, ev, u);
        break;
    case CREQ_EV_SEND_FAILED:
        send_failed(q, ev, u);
        break;
    case CREQ_EV_CANCEL: {
        struct req *r = find(q, ev->u.cancel.request_id);
        if (r != NULL) {
            unlink_done(q, r, u);
            u->done = NULL; /* (the list held only r) */
            req_free(r);
        }
        break;
    }
    case CREQ_EV_STOP:
        while (q->reqs != NULL)
            answer(q, q->reqs, u, ev->u.stop.rc, ev->u.stop.msg, NULL, 0);
        break;
    default:
        (void)XD_NEVER(true); /* a type creq.h does not name */
        u->deadline = next_deadline(q);
        return XE_INVAL;
    }
    u->deadline = next_deadline(q);
    return 0;
}
