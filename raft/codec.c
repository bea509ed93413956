/* codec.c: Raft messages to bytes and back (format in raft_codec.h).
 *
 * The decoder reads through a cursor that never moves past the end: every
 * read checks what remains first, and a failed read sticks, so the parse
 * functions check the cursor once at the end instead of after each field. */
#include <stdlib.h>
#include <string.h>

#include "raft_codec.h"

#define ENTRY_HDR 21 /* u64 index, u64 term, u8 type, u32 len */

/* ---- writing --------------------------------------------------------------- */

struct wr {
    unsigned char *p;
};

static void w8(struct wr *w, unsigned v)
{
    *w->p++ = (unsigned char)v;
}

static void w32(struct wr *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *w->p++ = (unsigned char)(v >> (8 * i));
}

static void w64(struct wr *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *w->p++ = (unsigned char)(v >> (8 * i));
}

static void wbytes(struct wr *w, const void *p, size_t n)
{
    if (n > 0)
        memcpy(w->p, p, n);
    w->p += n;
}

static int entry_type_ok(unsigned t)
{
    return t == RAFT_ENTRY_NORMAL || t == RAFT_ENTRY_CONFIG || t == RAFT_ENTRY_BARRIER;
}

/* encoded_size sets *out to the size of m's encoding, or returns
 * RAFT_EINVAL (unknown type or entry type, a configuration that does not
 * encode) or RAFT_ETOOBIG (over the bounds of raft_codec.h). */
static int encoded_size(const struct raft_message *m, size_t *out)
{
    size_t n = CODEC_HEADER_SIZE;
    size_t conf_len;
    unsigned char conf[RAFT_CONFIG_ENCODED_MAX];

    switch (m->type) {
    case RAFT_MSG_APPEND:
        if (m->u.append.n_entries > CODEC_MAX_ENTRIES)
            return RAFT_ETOOBIG;
        if (m->u.append.n_entries > 0 && m->u.append.entries == NULL)
            return RAFT_EINVAL;
        n += 28;
        for (unsigned i = 0; i < m->u.append.n_entries; i++) {
            const struct raft_entry *e = &m->u.append.entries[i];
            if (!entry_type_ok((unsigned)e->type))
                return RAFT_EINVAL;
            if (e->data.len > CODEC_MAX_ENTRY_DATA)
                return RAFT_ETOOBIG;
            n += ENTRY_HDR + e->data.len;
        }
        break;
    case RAFT_MSG_APPEND_RESULT:
        n += 33;
        break;
    case RAFT_MSG_VOTE:
        n += 17;
        break;
    case RAFT_MSG_VOTE_RESULT:
        n += 1;
        break;
    case RAFT_MSG_SNAPSHOT:
        if (m->u.snapshot.snapshot.data.len > CODEC_MAX_SNAPSHOT_DATA)
            return RAFT_ETOOBIG;
        if (raft_config_encode(&m->u.snapshot.snapshot.config, conf, sizeof conf,
                               &conf_len) != 0)
            return RAFT_EINVAL;
        n += 36 + conf_len + m->u.snapshot.snapshot.data.len;
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    default:
        return RAFT_EINVAL;
    }
    *out = n;
    return 0;
}

size_t codec_encoded_size(const struct raft_message *m)
{
    size_t n = 0;

    return encoded_size(m, &n) == 0 ? n : 0;
}

int codec_encode(const struct raft_message *m, void *buf, size_t cap, size_t *len)
{
    struct wr w = {buf};
    const struct raft_snapshot *s;
    size_t need = 0, conf_len;
    int rc = encoded_size(m, &need);

    if (rc != 0)
        return rc;
    if (need > cap)
        return RAFT_ETOOBIG;
    w8(&w, CODEC_VERSION);
    w8(&w, (unsigned)m->type);
    w64(&w, m->cluster_id);
    w64(&w, m->from);
    w64(&w, m->to);
    w64(&w, m->term);
    switch (m->type) {
    case RAFT_MSG_APPEND:
        w64(&w, m->u.append.prev_index);
        w64(&w, m->u.append.prev_term);
        w64(&w, m->u.append.commit);
        w32(&w, m->u.append.n_entries);
        for (unsigned i = 0; i < m->u.append.n_entries; i++) {
            const struct raft_entry *e = &m->u.append.entries[i];
            w64(&w, e->index);
            w64(&w, e->term);
            w8(&w, (unsigned)e->type);
            w32(&w, (uint32_t)e->data.len);
            wbytes(&w, e->data.base, e->data.len);
        }
        break;
    case RAFT_MSG_APPEND_RESULT:
        w8(&w, m->u.append_result.rejected ? 1 : 0);
        w64(&w, m->u.append_result.last_index);
        w64(&w, m->u.append_result.reject_index);
        w64(&w, m->u.append_result.conflict_term);
        w64(&w, m->u.append_result.conflict_index);
        break;
    case RAFT_MSG_VOTE:
        w64(&w, m->u.vote.last_index);
        w64(&w, m->u.vote.last_term);
        w8(&w, (m->u.vote.pre_vote ? 1u : 0u) | (m->u.vote.transfer ? 2u : 0u));
        break;
    case RAFT_MSG_VOTE_RESULT:
        w8(&w,
           (m->u.vote_result.granted ? 1u : 0u) | (m->u.vote_result.pre_vote ? 2u : 0u));
        break;
    case RAFT_MSG_SNAPSHOT:
        s = &m->u.snapshot.snapshot;
        w64(&w, s->index);
        w64(&w, s->term);
        w64(&w, s->config_index);
        /* The size above proved the configuration encodes. */
        if (raft_config_encode(&s->config, w.p + 4,
                               cap - (size_t)(w.p + 4 - (unsigned char *)buf),
                               &conf_len) != 0)
            return RAFT_EINVAL;
        w32(&w, (uint32_t)conf_len);
        w.p += conf_len;
        w64(&w, s->data.len);
        wbytes(&w, s->data.base, s->data.len);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
    *len = (size_t)(w.p - (unsigned char *)buf);
    return 0;
}

/* ---- reading --------------------------------------------------------------- */

struct rd {
    const unsigned char *p;
    size_t left;
    int bad; /* a read ran past the end: every later read yields 0 */
};

static int need(struct rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static unsigned r8(struct rd *r)
{
    if (!need(r, 1))
        return 0;
    r->left--;
    return *r->p++;
}

static uint32_t r32(struct rd *r)
{
    uint32_t v = 0;

    if (!need(r, 4))
        return 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | r->p[i];
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t r64(struct rd *r)
{
    uint64_t v = 0;

    if (!need(r, 8))
        return 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | r->p[i];
    r->p += 8;
    r->left -= 8;
    return v;
}

/* rbytes returns a pointer to the next n bytes (borrowed from the input) and
 * skips them, or NULL (and sets bad) when fewer remain. */
static const unsigned char *rbytes(struct rd *r, size_t n)
{
    const unsigned char *p = r->p;

    if (!need(r, n))
        return NULL;
    r->p += n;
    r->left -= n;
    return p;
}

static int rbool(struct rd *r, bool *out)
{
    unsigned v = r8(r);

    if (v > 1)
        return RAFT_EPROTO;
    *out = v == 1;
    return 0;
}

static int decode_append(struct rd *r, struct codec_msg *out)
{
    struct raft_msg_append *a = &out->msg.u.append;
    uint32_t n;

    a->prev_index = r64(r);
    a->prev_term = r64(r);
    a->commit = r64(r);
    n = r32(r);
    if (r->bad)
        return RAFT_EPROTO;
    if (n > CODEC_MAX_ENTRIES)
        return RAFT_ETOOBIG;
    /* Check the count against the bytes left before allocating for it. */
    if (n > r->left / ENTRY_HDR)
        return RAFT_EPROTO;
    if (a->prev_index == 0 && a->prev_term != 0)
        return RAFT_EPROTO;
    if (n > 0) {
        out->entries = calloc(n, sizeof *out->entries);
        if (out->entries == NULL)
            return RAFT_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry *e = &out->entries[i];
        unsigned type;
        uint32_t dlen;

        e->index = r64(r);
        e->term = r64(r);
        type = r8(r);
        dlen = r32(r);
        if (r->bad)
            return RAFT_EPROTO;
        if (!entry_type_ok(type))
            return RAFT_EPROTO;
        if (dlen > CODEC_MAX_ENTRY_DATA)
            return RAFT_ETOOBIG;
        /* Entries follow prev_index one by one (Raft paper figure 2). */
        if (e->index != a->prev_index + 1 + i || e->index == 0 || e->term == 0)
            return RAFT_EPROTO;
        e->type = (enum raft_entry_type)type;
        e->data.len = dlen;
        e->data.base = dlen ? (void *)rbytes(r, dlen) : NULL;
        if (r->bad)
            return RAFT_EPROTO;
    }
    a->entries = out->entries;
    a->n_entries = n;
    return 0;
}

static int decode_snapshot(struct rd *r, struct codec_msg *out)
{
    struct raft_snapshot *s = &out->msg.u.snapshot.snapshot;
    const unsigned char *conf;
    uint32_t conf_len;
    uint64_t data_len;
    int rc;

    s->index = r64(r);
    s->term = r64(r);
    s->config_index = r64(r);
    conf_len = r32(r);
    if (r->bad)
        return RAFT_EPROTO;
    if (conf_len > RAFT_CONFIG_ENCODED_MAX)
        return RAFT_ETOOBIG;
    conf = rbytes(r, conf_len);
    data_len = r64(r);
    if (r->bad)
        return RAFT_EPROTO;
    if (data_len > CODEC_MAX_SNAPSHOT_DATA)
        return RAFT_ETOOBIG;
    if (s->index == 0 || s->term == 0 || s->config_index > s->index)
        return RAFT_EPROTO;
    rc = raft_config_decode(conf, conf_len, &s->config);
    if (rc != 0)
        return rc;
    s->data.len = (size_t)data_len;
    s->data.base = data_len ? (void *)rbytes(r, (size_t)data_len) : NULL;
    return r->bad ? RAFT_EPROTO : 0;
}

int codec_decode(const void *buf, size_t len, struct codec_msg *out)
{
    struct rd r = {buf, len, 0};
    struct raft_message *m = &out->msg;
    unsigned version, type, flags;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (buf == NULL)
        return RAFT_EPROTO;
    version = r8(&r);
    type = r8(&r);
    m->cluster_id = r64(&r);
    m->from = r64(&r);
    m->to = r64(&r);
    m->term = r64(&r);
    if (r.bad || version != CODEC_VERSION)
        return RAFT_EPROTO;
    if (m->from == 0 || m->to == 0)
        return RAFT_EPROTO;
    m->type = (enum raft_msg_type)type;
    switch (type) {
    case RAFT_MSG_APPEND:
        rc = decode_append(&r, out);
        break;
    case RAFT_MSG_APPEND_RESULT:
        rc = rbool(&r, &m->u.append_result.rejected);
        m->u.append_result.last_index = r64(&r);
        m->u.append_result.reject_index = r64(&r);
        m->u.append_result.conflict_term = r64(&r);
        m->u.append_result.conflict_index = r64(&r);
        break;
    case RAFT_MSG_VOTE:
        m->u.vote.last_index = r64(&r);
        m->u.vote.last_term = r64(&r);
        flags = r8(&r);
        if (flags & ~3u)
            rc = RAFT_EPROTO;
        m->u.vote.pre_vote = (flags & 1) != 0;
        m->u.vote.transfer = (flags & 2) != 0;
        break;
    case RAFT_MSG_VOTE_RESULT:
        flags = r8(&r);
        if (flags & ~3u)
            rc = RAFT_EPROTO;
        m->u.vote_result.granted = (flags & 1) != 0;
        m->u.vote_result.pre_vote = (flags & 2) != 0;
        break;
    case RAFT_MSG_SNAPSHOT:
        rc = decode_snapshot(&r, out);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    default:
        rc = RAFT_EPROTO;
    }
    if (rc == 0 && (r.bad || r.left != 0))
        rc = RAFT_EPROTO;
    if (rc != 0)
        codec_msg_free(out);
    return rc;
}

void codec_msg_free(struct codec_msg *m)
{
    free(m->entries);
    memset(m, 0, sizeof *m);
}
