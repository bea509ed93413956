/* pframe.c: the peer-link frame codec (layout in pframe.h). */
#include "pframe.h"

#include <stdlib.h>
#include <string.h>

#include "bytecur.h"
#include "err.h"

const char *pframe_type_name(int type)
{
    switch (type) {
    case PFRAME_HELLO:
        return "HELLO";
    case PFRAME_CHAN_ACK:
        return "CHAN_ACK";
    case PFRAME_PING:
        return "PING";
    case PFRAME_PONG:
        return "PONG";
    case PFRAME_RAFT:
        return "RAFT";
    case PFRAME_FWD:
        return "FWD";
    case PFRAME_DELIVER:
        return "DELIVER";
    case PFRAME_ACK:
        return "ACK";
    case PFRAME_SESSIONS:
        return "SESSIONS";
    case PFRAME_CONFLICT:
        return "CONFLICT";
    case PFRAME_SUBMIT:
        return "SUBMIT";
    case PFRAME_SUBMIT_RESULT:
        return "SUBMIT_RESULT";
    case PFRAME_ROUTES:
        return "ROUTES";
    case PFRAME_REFUSE:
        return "REFUSE";
    }
    return "?";
}

bool pframe_type_sequenced(int type)
{
    return type >= PFRAME_FWD && type <= PFRAME_ROUTES;
}

void pframe_attr_v2(const char *name, struct pframe_attr *a)
{
    a->kind = strchr(name, '/') != NULL ? PFRAME_KIND_C2S_TCP : PFRAME_KIND_COMPONENT;
    a->flags = 0;
    a->priority = 0;
}

uint8_t pframe_version_pick(uint8_t amin, uint8_t amax, uint8_t bmin, uint8_t bmax)
{
    uint8_t lo = amin > bmin ? amin : bmin, hi = amax < bmax ? amax : bmax;

    return lo <= hi && lo > 0 ? hi : 0;
}

/* A version at which HELLO and REFUSE carry a range (and may carry more). */
static bool ranged(unsigned version)
{
    return version >= 3;
}

/* ---- encoding ---------------------------------------------------------- */

/* The writer checks nothing but room: pframe_encode validates first. */
struct pf_w {
    struct buf *b;
    int rc;
    unsigned version; /* the frame's */
};

static void w_put(struct pf_w *w, const void *p, size_t n)
{
    if (w->rc == 0 && buf_append(w->b, p, n) < 0)
        w->rc = XE_NOMEM;
}

static void w_u8(struct pf_w *w, uint8_t v)
{
    w_put(w, &v, 1);
}

static void w_be(struct pf_w *w, uint64_t v, int bytes)
{
    unsigned char t[8];

    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    w_put(w, t, (size_t)bytes);
}

static void w_bytes(struct pf_w *w, const void *p, size_t n)
{
    w_be(w, n, 4);
    if (n > 0)
        w_put(w, p, n);
}

static void w_str(struct pf_w *w, const char *s, size_t n)
{
    w_bytes(w, s, n);
    w_u8(w, 0);
}

/* str_ok: s is non-NULL, at most max bytes, no NUL inside (len given). */
static bool str_ok(const char *s, size_t len, size_t max)
{
    return s != NULL && len <= max && memchr(s, 0, len) == NULL;
}

static bool cstr_ok(const char *s, size_t max)
{
    return s != NULL && strnlen(s, max + 1) <= max;
}

static bool attr_ok(const struct pframe_attr *a)
{
    return a->kind <= PFRAME_KIND_C2S_WS &&
           (a->flags & ~(PFRAME_ATTR_AVAILABLE | PFRAME_ATTR_UPDATE)) == 0;
}

static bool sess_list_ok(const struct pframe_sess *l, size_t n)
{
    if (n > PFRAME_MAX_LIST || (n > 0 && l == NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!cstr_ok(l[i].name, PFRAME_MAX_NAME) || l[i].sid == 0 || !attr_ok(&l[i].attr))
            return false;
    return true;
}

static bool route_list_ok(const struct pframe_route *l, size_t n)
{
    if (n > PFRAME_MAX_LIST || (n > 0 && l == NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!cstr_ok(l[i].name, PFRAME_MAX_NAME) || l[i].node == 0 ||
            !attr_ok(&l[i].attr))
            return false;
    return true;
}

/* ranges_ok: at most PFRAME_MAX_LIST ranges, ascending and disjoint (an
 * empty list may have r NULL). */
static bool ranges_ok(const struct pframe_range *r, size_t n)
{
    if (n > PFRAME_MAX_LIST || (n > 0 && r == NULL))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (r[i].first == 0 || r[i].first > r[i].last)
            return false;
        if (i > 0 && r[i].first <= r[i - 1].last)
            return false;
    }
    return true;
}

static bool frame_ok(const struct pframe *f, unsigned version)
{
    const struct pframe_fwd *fw = &f->u.fwd;

    if (pframe_type_sequenced(f->type) && f->chan_seq == 0)
        return false;
    switch (f->type) {
    case PFRAME_HELLO:
        return cstr_ok(f->u.hello.addr, PFRAME_MAX_ADDR) && f->u.hello.incarnation != 0 &&
               (!ranged(version) || (f->u.hello.vmin == 0 && f->u.hello.vmax == 0) ||
                (f->u.hello.vmin >= PFRAME_VERSION_MIN &&
                 f->u.hello.vmin <= f->u.hello.vmax));
    case PFRAME_CHAN_ACK:
    case PFRAME_PING:
    case PFRAME_PONG:
        return true;
    case PFRAME_RAFT:
        return f->u.raft.len == 0 || f->u.raft.data != NULL;
    case PFRAME_FWD:
    case PFRAME_DELIVER:
        return fw->seq != 0 && fw->low_water <= fw->seq && fw->incarnation != 0 &&
               cstr_ok(fw->from, PFRAME_MAX_JID) && cstr_ok(fw->to, PFRAME_MAX_JID) &&
               str_ok(fw->xml, fw->xml_len, PFRAME_MAX_BODY);
    case PFRAME_ACK:
        return f->u.ack.nranges + f->u.ack.nbounced > 0 &&
               ranges_ok(f->u.ack.ranges, f->u.ack.nranges) &&
               ranges_ok(f->u.ack.bounced, f->u.ack.nbounced);
    case PFRAME_SESSIONS:
        return sess_list_ok(f->u.sessions.add, f->u.sessions.nadd) &&
               sess_list_ok(f->u.sessions.del, f->u.sessions.ndel);
    case PFRAME_ROUTES:
        return f->u.routes.flags <= (PFRAME_ROUTES_RESET | PFRAME_ROUTES_COMPLETE) &&
               route_list_ok(f->u.routes.add, f->u.routes.nadd) &&
               route_list_ok(f->u.routes.del, f->u.routes.ndel);
    case PFRAME_CONFLICT:
        return cstr_ok(f->u.conflict.name, PFRAME_MAX_NAME);
    case PFRAME_SUBMIT:
        return f->u.submit.len == 0 || f->u.submit.data != NULL;
    case PFRAME_SUBMIT_RESULT:
        return cstr_ok(f->u.result.message, PFRAME_MAX_MSG) &&
               (f->u.result.len == 0 || f->u.result.data != NULL);
    case PFRAME_REFUSE:
        return f->u.refuse.code <=
                   (ranged(version) ? PFRAME_REFUSE_VERSION : PFRAME_REFUSE_REMOVED) &&
               cstr_ok(f->u.refuse.reason, PFRAME_MAX_MSG);
    }
    return false;
}

static void w_attr(struct pf_w *w, const struct pframe_attr *a)
{
    if (w->version < 3)
        return; /* version 2 has none */
    w_u8(w, a->kind);
    w_u8(w, a->flags);
    w_u8(w, (uint8_t)a->priority);
}

/* sess_written: entries of l that version writes (at 2, an attribute update
 * means nothing: the entry is left out). */
static bool sess_written(unsigned version, const struct pframe_sess *e)
{
    return version >= 3 || (e->attr.flags & PFRAME_ATTR_UPDATE) == 0;
}

static void w_sess_list(struct pf_w *w, const struct pframe_sess *l, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += sess_written(w->version, &l[i]);
    w_be(w, k, 4);
    for (size_t i = 0; i < n; i++) {
        if (!sess_written(w->version, &l[i]))
            continue;
        w_str(w, l[i].name, strlen(l[i].name));
        w_be(w, l[i].sid, 8);
        w_be(w, l[i].ord, 8);
        w_attr(w, &l[i].attr);
    }
}

static void w_route_list(struct pf_w *w, const struct pframe_route *l, size_t n)
{
    w_be(w, n, 4);
    for (size_t i = 0; i < n; i++) {
        w_str(w, l[i].name, strlen(l[i].name));
        w_be(w, l[i].node, 8);
        w_be(w, l[i].sid, 8);
        w_be(w, l[i].ord, 8);
        w_attr(w, &l[i].attr);
    }
}

static void w_ranges(struct pf_w *w, const struct pframe_range *r, size_t n)
{
    w_be(w, n, 4);
    for (size_t i = 0; i < n; i++) {
        w_be(w, r[i].first, 8);
        w_be(w, r[i].last, 8);
    }
}

static void w_payload(struct pf_w *w, const struct pframe *f)
{
    const struct pframe_hello *h = &f->u.hello;
    const struct pframe_fwd *fw = &f->u.fwd;

    switch (f->type) {
    case PFRAME_HELLO:
        w_be(w, h->proto, 2);
        w_be(w, h->cluster_id, 8);
        w_be(w, h->node_id, 8);
        w_be(w, h->incarnation, 8);
        w_str(w, h->addr, strlen(h->addr));
        w_be(w, h->seen_incarnation, 8);
        w_be(w, h->recv_seq, 8);
        w_be(w, h->wall_ms, 8);
        if (ranged(w->version)) {
            bool none = h->vmin == 0 && h->vmax == 0;
            w_u8(w, none ? PFRAME_VERSION_MIN : h->vmin);
            w_u8(w, none ? (uint8_t)w->version : h->vmax);
        }
        break;
    case PFRAME_CHAN_ACK:
        w_be(w, f->u.recv_seq, 8);
        break;
    case PFRAME_PING:
    case PFRAME_PONG:
        w_be(w, f->u.ping.nonce, 8);
        w_be(w, f->u.ping.components, 4);
        break;
    case PFRAME_RAFT:
        w_bytes(w, f->u.raft.data, f->u.raft.len);
        break;
    case PFRAME_FWD:
    case PFRAME_DELIVER:
        w_be(w, fw->origin, 8);
        w_be(w, fw->incarnation, 8);
        w_be(w, fw->seq, 8);
        w_be(w, fw->low_water, 8);
        w_str(w, fw->from, strlen(fw->from));
        w_str(w, fw->to, strlen(fw->to));
        w_str(w, fw->xml, fw->xml_len);
        break;
    case PFRAME_ACK:
        w_be(w, f->u.ack.origin_incarnation, 8);
        w_ranges(w, f->u.ack.ranges, f->u.ack.nranges);
        w_ranges(w, f->u.ack.bounced, f->u.ack.nbounced);
        break;
    case PFRAME_SESSIONS:
        w_be(w, f->u.sessions.node_id, 8);
        w_be(w, f->u.sessions.generation, 8);
        w_be(w, f->u.sessions.term, 8);
        w_u8(w, f->u.sessions.full ? 1 : 0);
        w_sess_list(w, f->u.sessions.add, f->u.sessions.nadd);
        w_sess_list(w, f->u.sessions.del, f->u.sessions.ndel);
        break;
    case PFRAME_ROUTES:
        w_be(w, f->u.routes.term, 8);
        w_u8(w, f->u.routes.flags);
        w_route_list(w, f->u.routes.add, f->u.routes.nadd);
        w_route_list(w, f->u.routes.del, f->u.routes.ndel);
        break;
    case PFRAME_CONFLICT:
        w_str(w, f->u.conflict.name, strlen(f->u.conflict.name));
        w_be(w, f->u.conflict.sid, 8);
        break;
    case PFRAME_REFUSE:
        w_be(w, f->u.refuse.cluster_id, 8);
        w_u8(w, f->u.refuse.code);
        w_str(w, f->u.refuse.reason, strlen(f->u.refuse.reason));
        if (ranged(w->version)) {
            w_u8(w, f->u.refuse.vmin);
            w_u8(w, f->u.refuse.vmax);
        }
        break;
    case PFRAME_SUBMIT:
        w_be(w, f->u.submit.request_id, 8);
        w_bytes(w, f->u.submit.data, f->u.submit.len);
        break;
    case PFRAME_SUBMIT_RESULT:
        w_be(w, f->u.result.request_id, 8);
        w_be(w, (uint32_t)f->u.result.rc, 4);
        w_str(w, f->u.result.message, strlen(f->u.result.message));
        w_bytes(w, f->u.result.data, f->u.result.len);
        break;
    }
}

int pframe_encode(const struct pframe *f, struct buf *out)
{
    size_t start = out->len, body;
    unsigned version = f->version != 0 ? f->version : PFRAME_VERSION;
    struct pf_w w = {out, 0, version};

    if (version < PFRAME_VERSION_MIN || version > PFRAME_VERSION_MAX)
        return XE_UNSUPPORTED;
    if (!frame_ok(f, version))
        return XE_INVAL;
    /* A stanza frame is written once per stanza: one allocation, not a
     * doubling series (the header and the strings' fields are under 64). */
    if (f->type == PFRAME_FWD &&
        buf_reserve(out, 64 + strlen(f->u.fwd.from) + strlen(f->u.fwd.to) +
                             f->u.fwd.xml_len) < 0)
        return XE_NOMEM;
    w_be(&w, 0, 4); /* length, patched below */
    w_u8(&w, (uint8_t)version);
    w_u8(&w, (uint8_t)f->type);
    if (pframe_type_sequenced(f->type))
        w_be(&w, f->chan_seq, 8);
    w_payload(&w, f);
    if (w.rc != 0)
        goto err;
    body = out->len - start - PFRAME_LEN_SIZE;
    if (body > PFRAME_MAX_BODY) {
        w.rc = XE_LIMIT;
        goto err;
    }
    for (int i = 0; i < 4; i++)
        out->data[start + (size_t)i] = (char)(unsigned char)(body >> (8 * (3 - i)));
    return 0;

err:
    out->len = start;
    if (out->data != NULL)
        out->data[start] = '\0';
    return w.rc;
}

/* ---- decoding ---------------------------------------------------------- */

/* The reader is bytecur.h's cursor. */

static uint64_t r_be(struct rd *r, int bytes)
{
    return rd_be(r, (unsigned)bytes);
}

/* r_bytes reads a 4-byte length (at most max) and that many bytes. */
static const void *r_bytes(struct rd *r, size_t max, size_t *len)
{
    uint64_t n = r_be(r, 4);
    const void *p;

    *len = 0;
    if (r->bad || n > max) {
        r->bad = true;
        return NULL;
    }
    p = rd_bytes(r, (size_t)n);
    if (p != NULL)
        *len = (size_t)n;
    return p;
}

/* r_str reads a str: the bytes, then the NUL, with no NUL inside. */
static const char *r_str(struct rd *r, size_t max, size_t *len_out)
{
    size_t len;
    const char *s = r_bytes(r, max, &len);

    if (r->bad || r->left < 1 || r->p[0] != 0 || memchr(s, 0, len) != NULL) {
        r->bad = true;
        return NULL;
    }
    rd_bytes(r, 1);
    if (len_out != NULL)
        *len_out = len;
    return s;
}

/* r_count reads a list length; each entry takes at least min bytes. */
static size_t r_count(struct rd *r, size_t min)
{
    uint64_t n = r_be(r, 4);

    if (r->bad || n > PFRAME_MAX_LIST || n > r->left / min) {
        r->bad = true;
        return 0;
    }
    return (size_t)n;
}

/* r_attr reads an attr; unknown kinds and flags are errors. */
static void r_attr(struct rd *r, const char *name, struct pframe_attr *a)
{
    if (r->version < 3) {
        if (name != NULL)
            pframe_attr_v2(name, a);
        return;
    }
    a->kind = (uint8_t)r_be(r, 1);
    a->flags = (uint8_t)r_be(r, 1);
    a->priority = (int8_t)(uint8_t)r_be(r, 1);
    if (!r->bad && !attr_ok(a))
        r->bad = true;
}

static void r_sess_entries(struct rd *r, struct pframe_sess *arr, size_t n)
{
    for (size_t i = 0; i < n && !r->bad; i++) {
        arr[i].name = r_str(r, PFRAME_MAX_NAME, NULL);
        arr[i].sid = r_be(r, 8);
        arr[i].ord = r_be(r, 8);
        r_attr(r, arr[i].name, &arr[i].attr);
        if (!r->bad && arr[i].sid == 0)
            r->bad = true;
    }
}

static void r_route_entries(struct rd *r, struct pframe_route *arr, size_t n)
{
    for (size_t i = 0; i < n && !r->bad; i++) {
        arr[i].name = r_str(r, PFRAME_MAX_NAME, NULL);
        arr[i].node = r_be(r, 8);
        arr[i].sid = r_be(r, 8);
        arr[i].ord = r_be(r, 8);
        r_attr(r, arr[i].name, &arr[i].attr);
        if (!r->bad && arr[i].node == 0)
            r->bad = true;
    }
}

/* Bytes of an attr on the wire at version v. */
#define ATTR_WIRE(v) ((v) >= 3 ? 3 : 0)

/* r_skip_entries skips n entries of a list of names followed by k u64s
 * and an attr. */
static void r_skip_entries(struct rd *r, size_t n, int k)
{
    for (size_t i = 0; i < n && !r->bad; i++) {
        r_str(r, PFRAME_MAX_NAME, NULL);
        for (int j = 0; j < k; j++)
            r_be(r, 8);
        if (ATTR_WIRE(r->version) > 0)
            r_be(r, ATTR_WIRE(r->version));
    }
}

/* d_two_lists reads two lists of entries of elem bytes in memory and k u64s
 * after the name on the wire (SESSIONS: sid, ord; ROUTES: node, sid, ord),
 * then an attr, so at least 5 + 8k + 3 bytes each: two passes (skip the first to learn
 * the second's length), then one allocation owned by f.  *a and *b point into it (NULL
 * for none: no arithmetic on a NULL base). */
static int d_two_lists(struct rd *r, struct pframe *f, size_t elem, int k, void **a,
                       size_t *na, void **b, size_t *nb)
{
    size_t min = (size_t)(5 + 8 * k + ATTR_WIRE(r->version));
    struct rd save;
    char *arr = NULL;

    *na = r_count(r, min);
    if (r->bad)
        return XE_PROTO;
    save = *r;
    r_skip_entries(r, *na, k);
    *nb = r_count(r, min);
    if (r->bad)
        return XE_PROTO;
    if (*na + *nb > 0) {
        arr = calloc(*na + *nb, elem);
        if (arr == NULL)
            return XE_NOMEM;
    }
    f->owned_ = arr;
    *r = save;
    *a = arr;
    *b = arr != NULL ? arr + *na * elem : NULL;
    return 0;
}

static int d_sessions(struct rd *r, struct pframe *f)
{
    struct pframe_sessions *s = &f->u.sessions;
    void *a, *b;
    uint64_t full;
    int rc;

    s->node_id = r_be(r, 8);
    s->generation = r_be(r, 8);
    s->term = r_be(r, 8);
    full = r_be(r, 1);
    if (full > 1)
        r->bad = true;
    s->full = full == 1;
    rc = d_two_lists(r, f, sizeof(struct pframe_sess), 2, &a, &s->nadd, &b, &s->ndel);
    if (rc < 0)
        return rc;
    s->add = a;
    s->del = b;
    r_sess_entries(r, a, s->nadd);
    r_be(r, 4);
    r_sess_entries(r, b, s->ndel);
    return r->bad ? XE_PROTO : 0;
}

static int d_routes(struct rd *r, struct pframe *f)
{
    struct pframe_routes *t = &f->u.routes;
    void *a, *b;
    int rc;

    t->term = r_be(r, 8);
    t->flags = (uint8_t)r_be(r, 1);
    if (t->flags > (PFRAME_ROUTES_RESET | PFRAME_ROUTES_COMPLETE))
        r->bad = true;
    rc = d_two_lists(r, f, sizeof(struct pframe_route), 3, &a, &t->nadd, &b, &t->ndel);
    if (rc < 0)
        return rc;
    t->add = a;
    t->del = b;
    r_route_entries(r, a, t->nadd);
    r_be(r, 4);
    r_route_entries(r, b, t->ndel);
    return r->bad ? XE_PROTO : 0;
}

/* r_ranges reads a list of n ranges into arr. */
static void r_ranges(struct rd *r, struct pframe_range *arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        arr[i].first = r_be(r, 8);
        arr[i].last = r_be(r, 8);
    }
}

static int d_ack(struct rd *r, struct pframe *f)
{
    struct pframe_range *arr;
    size_t n, nb;
    struct rd save;

    f->u.ack.origin_incarnation = r_be(r, 8);
    n = r_count(r, 16);
    if (r->bad)
        return XE_PROTO;
    save = *r;
    rd_bytes(r, n * 16); /* r_count checked that they are there */
    nb = r_count(r, 16);
    if (r->bad || n + nb == 0)
        return XE_PROTO;
    arr = calloc(n + nb, sizeof *arr);
    if (arr == NULL)
        return XE_NOMEM;
    f->owned_ = arr;
    *r = save;
    r_ranges(r, arr, n);
    r_be(r, 4);
    r_ranges(r, arr + n, nb);
    f->u.ack.ranges = n > 0 ? arr : NULL;
    f->u.ack.nranges = n;
    f->u.ack.bounced = nb > 0 ? arr + n : NULL;
    f->u.ack.nbounced = nb;
    return ranges_ok(f->u.ack.ranges, n) && ranges_ok(f->u.ack.bounced, nb) ? 0
                                                                            : XE_PROTO;
}

/* r_rest skips what a later version appended to a HELLO or REFUSE (their
 * layout from version 3 on is frozen; pframe.h). */
static void r_rest(struct rd *r)
{
    if (r->bad || r->version <= PFRAME_VERSION_MAX)
        return;
    r->p += r->left;
    r->left = 0;
}

static int d_payload(struct rd *r, struct pframe *f)
{
    struct pframe_hello *h = &f->u.hello;
    struct pframe_fwd *fw = &f->u.fwd;
    int64_t rc;

    switch (f->type) {
    case PFRAME_HELLO:
        h->proto = (uint16_t)r_be(r, 2);
        h->cluster_id = r_be(r, 8);
        h->node_id = r_be(r, 8);
        h->incarnation = r_be(r, 8);
        h->addr = r_str(r, PFRAME_MAX_ADDR, NULL);
        h->seen_incarnation = r_be(r, 8);
        h->recv_seq = r_be(r, 8);
        h->wall_ms = r_be(r, 8);
        h->vmin = h->vmax = PFRAME_VERSION_MIN;
        if (r->version == 3 && !r->bad && r->left == 0) {
            /* session 4's HELLO (pframe.h, unranged) */
            h->vmin = h->vmax = 3;
            h->unranged = true;
        } else if (ranged(r->version)) {
            h->vmin = (uint8_t)r_be(r, 1);
            h->vmax = (uint8_t)r_be(r, 1);
            if (!r->bad && (h->vmin < PFRAME_VERSION_MIN || h->vmin > h->vmax))
                r->bad = true;
            r_rest(r);
        }
        if (!r->bad && h->incarnation == 0)
            r->bad = true;
        return 0;
    case PFRAME_CHAN_ACK:
        f->u.recv_seq = r_be(r, 8);
        return 0;
    case PFRAME_PING:
    case PFRAME_PONG:
        f->u.ping.nonce = r_be(r, 8);
        f->u.ping.components = (uint32_t)r_be(r, 4);
        return 0;
    case PFRAME_RAFT:
        f->u.raft.data = r_bytes(r, PFRAME_MAX_BODY, &f->u.raft.len);
        return 0;
    case PFRAME_FWD:
    case PFRAME_DELIVER:
        fw->origin = r_be(r, 8);
        fw->incarnation = r_be(r, 8);
        fw->seq = r_be(r, 8);
        fw->low_water = r_be(r, 8);
        fw->from = r_str(r, PFRAME_MAX_JID, NULL);
        fw->to = r_str(r, PFRAME_MAX_JID, NULL);
        fw->xml = r_str(r, PFRAME_MAX_BODY, &fw->xml_len);
        if (!r->bad && (fw->seq == 0 || fw->low_water > fw->seq || fw->incarnation == 0))
            r->bad = true;
        return 0;
    case PFRAME_ACK:
        return d_ack(r, f);
    case PFRAME_SESSIONS:
        return d_sessions(r, f);
    case PFRAME_ROUTES:
        return d_routes(r, f);
    case PFRAME_CONFLICT:
        f->u.conflict.name = r_str(r, PFRAME_MAX_NAME, NULL);
        f->u.conflict.sid = r_be(r, 8);
        return 0;
    case PFRAME_REFUSE:
        f->u.refuse.cluster_id = r_be(r, 8);
        f->u.refuse.code = (uint8_t)r_be(r, 1);
        f->u.refuse.reason = r_str(r, PFRAME_MAX_MSG, NULL);
        if (ranged(r->version)) {
            f->u.refuse.vmin = (uint8_t)r_be(r, 1);
            f->u.refuse.vmax = (uint8_t)r_be(r, 1);
            r_rest(r);
        }
        if (!r->bad && !ranged(r->version) && f->u.refuse.code > PFRAME_REFUSE_REMOVED)
            r->bad = true;
        /* From version 3 on, a code this build does not know is still a
         * refusal: read as OTHER, whose reason says why. */
        if (!r->bad && f->u.refuse.code > PFRAME_REFUSE_VERSION)
            f->u.refuse.code = PFRAME_REFUSE_OTHER;
        return 0;
    case PFRAME_SUBMIT:
        f->u.submit.request_id = r_be(r, 8);
        f->u.submit.data = r_bytes(r, PFRAME_MAX_BODY, &f->u.submit.len);
        return 0;
    case PFRAME_SUBMIT_RESULT:
        f->u.result.request_id = r_be(r, 8);
        rc = (int32_t)(uint32_t)r_be(r, 4);
        f->u.result.rc = (int32_t)rc;
        f->u.result.message = r_str(r, PFRAME_MAX_MSG, NULL);
        f->u.result.data = r_bytes(r, PFRAME_MAX_BODY, &f->u.result.len);
        return 0;
    }
    return XE_PROTO;
}

int pframe_decode(const void *body, size_t len, struct pframe *out)
{
    struct rd r = {body, len, false, 0};
    uint64_t version, type;
    int rc;

    memset(out, 0, sizeof *out);
    if (len > PFRAME_MAX_BODY)
        return XE_PROTO;
    version = r_be(&r, 1);
    type = r_be(&r, 1);
    if (r.bad)
        return XE_PROTO;
    if (type == PFRAME_HELLO || type == PFRAME_REFUSE
            ? version < PFRAME_VERSION_MIN
            : version < PFRAME_VERSION_MIN || version > PFRAME_VERSION_MAX)
        return XE_UNSUPPORTED;
    if (type < PFRAME_HELLO || type > PFRAME_REFUSE)
        return XE_PROTO;
    r.version = (unsigned)version;
    out->version = (uint8_t)version;
    out->type = (int)type;
    if (pframe_type_sequenced(out->type)) {
        out->chan_seq = r_be(&r, 8);
        if (out->chan_seq == 0)
            r.bad = true;
    }
    rc = r.bad ? XE_PROTO : d_payload(&r, out);
    if (rc == 0 && (r.bad || r.left != 0))
        rc = XE_PROTO;
    if (rc < 0)
        pframe_release(out);
    return rc;
}

void pframe_release(struct pframe *f)
{
    free(f->owned_);
    memset(f, 0, sizeof *f);
}

/* ---- incremental decoder ----------------------------------------------- */

void pframe_dec_init(struct pframe_dec *d)
{
    memset(d, 0, sizeof *d);
    d->max_body = PFRAME_MAX_BODY;
}

void pframe_dec_free(struct pframe_dec *d)
{
    buf_free(&d->in);
    memset(d, 0, sizeof *d);
}

int pframe_dec_feed(struct pframe_dec *d, const void *data, size_t len)
{
    if (d->error != 0)
        return d->error;
    /* Drop what was parsed before appending, so the buffer holds at most one
     * partial frame plus this read. */
    if (d->pos > 0) {
        buf_consume(&d->in, d->pos);
        d->pos = 0;
    }
    if (len > 0 && buf_append(&d->in, data, len) < 0)
        return XE_NOMEM;
    return 0;
}

int pframe_dec_next(struct pframe_dec *d, struct pframe *out)
{
    const unsigned char *p;
    size_t avail, body;
    int rc;

    memset(out, 0, sizeof *out);
    if (d->error != 0)
        return d->error;
    avail = d->in.len - d->pos;
    if (avail < PFRAME_LEN_SIZE)
        return 0;
    p = (const unsigned char *)d->in.data + d->pos;
    body = rd_be32_at(p);
    if (body > d->max_body || body < 2) {
        d->error = XE_PROTO;
        return d->error;
    }
    if (avail - PFRAME_LEN_SIZE < body)
        return 0;
    rc = pframe_decode(p + PFRAME_LEN_SIZE, body, out);
    if (rc == 0 && d->version != 0 && out->version != d->version) {
        pframe_release(out);
        rc = XE_PROTO; /* the link chose another version at HELLO */
    }
    if (rc < 0) {
        d->error = rc;
        return rc;
    }
    d->pos += PFRAME_LEN_SIZE + body;
    d->frames++;
    return 1;
}

/* ---- cluster requests: the data of a SUBMIT frame ---------------------- */

int pframe_req_encode(const struct pframe_req *r, struct buf *out)
{
    size_t start = out->len, alen;
    struct pf_w w = {out, 0, 0};

    switch (r->kind) {
    case PFRAME_REQ_CMD:
        if (r->u.cmd.len > 0 && r->u.cmd.data == NULL)
            return XE_INVAL;
        break;
    case PFRAME_REQ_JOIN:
        alen = strnlen(r->u.join.addr, sizeof r->u.join.addr);
        if (alen == 0 || alen > PFRAME_MAX_ADDR ||
            r->u.join.token_len > PFRAME_MAX_TOKEN ||
            (r->u.join.token_len > 0 && r->u.join.token == NULL))
            return XE_INVAL;
        break;
    case PFRAME_REQ_REMOVE:
    case PFRAME_REQ_NOTE_REMOVED:
        break;
    default:
        return XE_INVAL;
    }
    w_u8(&w, r->kind);
    w_be(&w, r->expires, 8);
    switch (r->kind) {
    case PFRAME_REQ_CMD:
        if (r->u.cmd.len > 0)
            w_put(&w, r->u.cmd.data, r->u.cmd.len);
        break;
    case PFRAME_REQ_JOIN:
        w_be(&w, r->u.join.node_id, 8);
        w_u8(&w, r->u.join.replace ? 1 : 0);
        w_bytes(&w, r->u.join.addr, strlen(r->u.join.addr));
        if (r->u.join.token_len > 0) {
            w_u8(&w, (uint8_t)r->u.join.token_len);
            w_put(&w, r->u.join.token, r->u.join.token_len);
        }
        break;
    case PFRAME_REQ_REMOVE:
        w_be(&w, r->u.node_id, 8);
        break;
    default:
        w_be(&w, r->u.cluster_id, 8);
        break;
    }
    if (w.rc < 0) {
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
    }
    return w.rc;
}

/* d_join reads a JOIN body: the address without a NUL inside, then an
 * optional token that fills the rest exactly. */
static int d_join(struct rd *r, struct pframe_join *j)
{
    const char *addr;
    size_t alen;
    uint64_t replace;

    j->node_id = r_be(r, 8);
    replace = r_be(r, 1);
    addr = r_bytes(r, PFRAME_MAX_ADDR, &alen);
    if (r->bad || replace > 1 || alen == 0 || memchr(addr, 0, alen) != NULL)
        return XE_PROTO;
    j->replace = replace == 1;
    memcpy(j->addr, addr, alen);
    j->addr[alen] = '\0';
    j->token = NULL;
    j->token_len = 0;
    if (r->left == 0)
        return 0;
    j->token_len = (size_t)r_be(r, 1);
    if (j->token_len == 0 || j->token_len > PFRAME_MAX_TOKEN || r->left != j->token_len)
        return XE_PROTO;
    j->token = r->p;
    r->p += j->token_len;
    r->left = 0;
    return 0;
}

int pframe_req_decode(const void *data, size_t len, struct pframe_req *out)
{
    struct rd r = {.p = data, .left = len};

    memset(out, 0, sizeof *out);
    if (data == NULL && len > 0)
        return XE_PROTO;
    out->kind = (uint8_t)r_be(&r, 1);
    out->expires = r_be(&r, 8);
    if (r.bad)
        return XE_PROTO;
    switch (out->kind) {
    case PFRAME_REQ_CMD:
        out->u.cmd.data = r.p;
        out->u.cmd.len = r.left;
        return 0;
    case PFRAME_REQ_JOIN:
        return d_join(&r, &out->u.join);
    case PFRAME_REQ_REMOVE:
        out->u.node_id = r_be(&r, 8);
        break;
    case PFRAME_REQ_NOTE_REMOVED:
        out->u.cluster_id = r_be(&r, 8);
        break;
    default:
        return XE_PROTO;
    }
    return r.bad || r.left != 0 ? XE_PROTO : 0;
}

void pframe_u64_put(unsigned char p[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

uint64_t pframe_u64_get(const unsigned char p[8])
{
    struct rd r = {.p = p, .left = 8};

    return r_be(&r, 8);
}
