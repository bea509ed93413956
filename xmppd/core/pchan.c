/* pchan.c: the reliable channel to one peer (rules in pchan.h). */
#include "pchan.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

struct pchan_slot {
    char *data; /* the encoded frame, length prefix included; owned */
    size_t len;
};

struct pchan {
    struct pchan_config cfg;
    uint64_t local_inc;
    uint64_t peer_inc; /* 0 before first contact */
    bool up;
    uint8_t version; /* frames are encoded at it (pchan_set_version) */

    /* Sending: ring of frames acked_seq+1 .. next_seq-1. */
    struct pchan_slot *ring; /* cfg.max_frames slots */
    size_t head;             /* slot of number acked_seq + 1 */
    size_t count;
    size_t bytes;
    uint64_t next_seq;
    uint64_t acked_seq;

    /* Receiving. */
    uint64_t recv_seq;
    unsigned unacked; /* frames received since our last CHAN_ACK */
    uint64_t ack_due; /* PCHAN_NO_DEADLINE when none */

    struct pchan_stats st;
};

void pchan_config_default(struct pchan_config *c)
{
    c->max_frames = 4096;
    c->max_bytes = 32u << 20;
    c->ack_every = 32;
    c->ack_delay_ms = 20;
}

int pchan_new(const struct pchan_config *cfg, uint64_t local_incarnation,
              struct pchan **out)
{
    struct pchan_config def;
    struct pchan *c;

    if (local_incarnation == 0)
        return XE_INVAL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        goto err;
    pchan_config_default(&def);
    c->cfg = cfg != NULL ? *cfg : def;
    if (c->cfg.max_frames == 0)
        c->cfg.max_frames = def.max_frames;
    if (c->cfg.max_bytes == 0)
        c->cfg.max_bytes = def.max_bytes;
    if (c->cfg.ack_every == 0)
        c->cfg.ack_every = def.ack_every;
    if (c->cfg.ack_delay_ms == 0)
        c->cfg.ack_delay_ms = def.ack_delay_ms;
    c->ring = calloc(c->cfg.max_frames, sizeof *c->ring);
    if (c->ring == NULL)
        goto err_c;
    c->local_inc = local_incarnation;
    c->version = PFRAME_VERSION;
    c->next_seq = 1;
    c->ack_due = PCHAN_NO_DEADLINE;
    *out = c;
    return 0;

err_c:
    free(c);
err:
    return XE_NOMEM;
}

static struct pchan_slot *slot(const struct pchan *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cfg.max_frames];
}

/* drop_through releases the frames numbered up to seq (acknowledged). */
static void drop_through(struct pchan *c, uint64_t seq)
{
    while (c->acked_seq < seq && c->count > 0) {
        struct pchan_slot *s = slot(c, 0);
        c->bytes -= s->len;
        free(s->data);
        s->data = NULL;
        s->len = 0;
        c->head = (c->head + 1) % c->cfg.max_frames;
        c->count--;
        c->acked_seq++;
    }
}

void pchan_free(struct pchan *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->count; i++)
        free(slot(c, i)->data);
    free(c->ring);
    free(c);
}

bool pchan_has_room(const struct pchan *c, size_t len)
{
    /* One frame always fits into an empty buffer, however big: the bound is
     * on what waits, and an oversized single frame must not wedge the link. */
    return c->count < c->cfg.max_frames &&
           (c->count == 0 || c->bytes + len <= c->cfg.max_bytes);
}

/* transcode re-encodes the kept frame s at version. */
static int transcode(struct pchan *c, struct pchan_slot *s, uint8_t version)
{
    struct pframe f;
    struct buf enc = {0};
    int rc;

    if (s->len > PFRAME_LEN_SIZE && (uint8_t)s->data[PFRAME_LEN_SIZE] == version)
        return 0;
    rc = pframe_decode(s->data + PFRAME_LEN_SIZE, s->len - PFRAME_LEN_SIZE, &f);
    if (rc < 0)
        return rc;
    f.version = version;
    rc = pframe_encode(&f, &enc);
    pframe_release(&f);
    if (rc < 0)
        return rc;
    c->bytes = c->bytes - s->len + enc.len;
    free(s->data);
    s->data = enc.data;
    s->len = enc.len;
    return 0;
}

int pchan_set_version(struct pchan *c, uint8_t version)
{
    if (version < PFRAME_VERSION_MIN || version > PFRAME_VERSION_MAX)
        return XE_INVAL;
    for (size_t i = 0; i < c->count; i++) {
        int rc = transcode(c, slot(c, i), version);
        if (rc < 0)
            return rc;
    }
    c->version = version;
    return 0;
}

uint8_t pchan_version(const struct pchan *c)
{
    return c->version;
}

/* bulk tells whether f is stanza data (FWD, DELIVER), which may not use the
 * last eighth of the resend buffer: that headroom is kept for control frames
 * (ACK, SESSIONS, CONFLICT, SUBMIT ...) so a data flood in one direction
 * can never starve the acknowledgements of the other. */
static bool bulk(int type)
{
    return type == PFRAME_FWD || type == PFRAME_DELIVER;
}

static bool has_room_for(const struct pchan *c, int type, size_t len)
{
    size_t frames = c->cfg.max_frames, bytes = c->cfg.max_bytes;

    if (bulk(type) && frames > 1) {
        frames -= frames / 8 > 0 ? frames / 8 : 1;
        bytes -= bytes / 8;
    }
    return c->count < frames && (c->count == 0 || c->bytes + len <= bytes);
}

int pchan_send(struct pchan *c, struct pframe *f, struct buf *out)
{
    struct buf enc = {0};
    uint64_t saved = f->chan_seq;
    int rc;

    if (!pframe_type_sequenced(f->type))
        return XE_INVAL;
    f->chan_seq = c->next_seq;
    f->version = c->version;
    rc = pframe_encode(f, &enc);
    if (rc < 0)
        goto err;
    if (!has_room_for(c, f->type, enc.len)) {
        c->st.busy++;
        rc = XE_BUSY;
        goto err;
    }
    if (c->up && buf_append(out, enc.data, enc.len) < 0) {
        rc = XE_NOMEM;
        goto err;
    }
    *slot(c, c->count) = (struct pchan_slot){enc.data, enc.len};
    c->count++;
    c->bytes += enc.len;
    c->next_seq++;
    c->st.sent++;
    return 0;

err:
    f->chan_seq = saved;
    buf_free(&enc);
    return rc;
}

void pchan_hello(const struct pchan *c, struct pframe_hello *h)
{
    h->incarnation = c->local_inc;
    h->seen_incarnation = c->peer_inc;
    h->recv_seq = c->recv_seq;
}

static void reset(struct pchan *c, uint64_t peer_inc)
{
    c->st.discarded += c->count;
    drop_through(c, UINT64_MAX);
    c->head = 0;
    c->acked_seq = 0;
    c->next_seq = 1;
    c->recv_seq = 0;
    c->unacked = 0;
    c->ack_due = PCHAN_NO_DEADLINE;
    c->peer_inc = peer_inc;
    c->st.resets++;
}

int pchan_link_up(struct pchan *c, const struct pframe_hello *peer, struct buf *out,
                  enum pchan_resume *how)
{
    size_t start = out->len;
    /* Nothing was exchanged yet, and the peer is new to us, or is the
     * process we met but whose HELLO of that first connection got lost
     * (it knows no incarnation of ours, so it has received nothing). */
    bool fresh = c->recv_seq == 0 && c->acked_seq == 0 &&
                 (c->peer_inc == 0 ||
                  (peer->incarnation == c->peer_inc && peer->seen_incarnation == 0));

    if (c->up)
        return XE_STATE;
    if (peer->incarnation == 0)
        return XE_PROTO;
    if (peer->incarnation == c->peer_inc && peer->seen_incarnation == c->local_inc) {
        /* Resume (XEP-0198 §5): the peer has 1..recv_seq of ours. */
        if (peer->recv_seq < c->acked_seq || peer->recv_seq >= c->next_seq)
            return XE_PROTO;
        drop_through(c, peer->recv_seq);
        *how = PCHAN_RESUMED;
    } else if (fresh) {
        /* First contact: whatever the peer remembers of an earlier stream
         * of ours (none, or another incarnation) makes it reset, so it
         * expects number 1, which is where ours starts. */
        c->peer_inc = peer->incarnation;
        *how = PCHAN_FIRST;
    } else {
        reset(c, peer->incarnation);
        *how = PCHAN_RESET;
    }
    for (size_t i = 0; i < c->count; i++) {
        const struct pchan_slot *s = slot(c, i);
        if (buf_append(out, s->data, s->len) < 0)
            goto err;
    }
    if (*how == PCHAN_RESUMED)
        c->st.resent += c->count;
    /* The HELLO we sent acknowledged everything received so far. */
    c->unacked = 0;
    c->ack_due = PCHAN_NO_DEADLINE;
    c->up = true;
    return 0;

err:
    out->len = start;
    return XE_NOMEM;
}

void pchan_link_down(struct pchan *c)
{
    c->up = false;
    c->unacked = 0;
    c->ack_due = PCHAN_NO_DEADLINE;
}

bool pchan_is_up(const struct pchan *c)
{
    return c->up;
}

static int send_ack(struct pchan *c, struct buf *out)
{
    struct pframe a = {.type = PFRAME_CHAN_ACK, .version = c->version};
    int rc;

    a.u.recv_seq = c->recv_seq;
    rc = pframe_encode(&a, out);
    if (rc < 0)
        return rc;
    c->unacked = 0;
    c->ack_due = PCHAN_NO_DEADLINE;
    return 0;
}

int pchan_recv(struct pchan *c, const struct pframe *f, uint64_t now_ms, struct buf *out,
               bool *deliver)
{
    *deliver = false;
    if (!c->up)
        return XE_STATE;
    if (f->type == PFRAME_CHAN_ACK) {
        if (f->u.recv_seq >= c->next_seq)
            return XE_PROTO;
        drop_through(c, f->u.recv_seq);
        return 0;
    }
    if (!pframe_type_sequenced(f->type))
        return XE_INVAL;
    if (f->chan_seq > c->recv_seq + 1)
        return XE_PROTO; /* a gap: one connection is FIFO, so the peer is broken */
    if (f->chan_seq <= c->recv_seq) {
        c->st.duplicates++;
    } else {
        c->recv_seq++;
        c->st.delivered++;
        *deliver = true;
    }
    if (++c->unacked >= c->cfg.ack_every)
        return send_ack(c, out);
    if (c->ack_due == PCHAN_NO_DEADLINE)
        c->ack_due = now_ms + c->cfg.ack_delay_ms;
    return 0;
}

int pchan_tick(struct pchan *c, uint64_t now_ms, struct buf *out)
{
    if (c->up && c->unacked > 0 && now_ms >= c->ack_due)
        return send_ack(c, out);
    return 0;
}

uint64_t pchan_next_deadline(const struct pchan *c)
{
    return c->up && c->unacked > 0 ? c->ack_due : PCHAN_NO_DEADLINE;
}

void pchan_get_stats(const struct pchan *c, struct pchan_stats *out)
{
    *out = c->st;
    out->peer_incarnation = c->peer_inc;
    out->next_seq = c->next_seq;
    out->acked_seq = c->acked_seq;
    out->recv_seq = c->recv_seq;
    out->buffered = c->count;
    out->buffered_bytes = c->bytes;
}
