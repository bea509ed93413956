/* pchan.h: one node's reliable channel to one peer, across TCP reconnects.
 *
 * Pure: no I/O, no clock (time passed in).  Like XEP-0198 stream management
 * (§4 acking, §5 resumption), for the peer link: every sequenced frame
 * (pframe_type_sequenced) gets a channel sequence number, 1, 2, 3 ..., and
 * stays in a bounded resend buffer until the peer acknowledges it with a
 * CHAN_ACK carrying the highest contiguous number it received.  On each new
 * connection both sides send a HELLO with their incarnation, the incarnation
 * of the peer they last talked to and the last number they received from it
 * (pchan_hello); on the peer's HELLO (pchan_link_up) the sender drops what
 * the peer has and resends the rest, in order.  The receiver delivers each
 * number once, in order, and drops duplicates.
 *
 * Restarts: when the peer's incarnation differs from the one the channel
 * knew, or the peer does not know ours (its HELLO names another incarnation
 * of ours, or none), the old stream cannot be resumed: both sides reset
 * (numbers start again at 1, the resend buffer is discarded) and
 * pchan_link_up says PCHAN_RESET so that the caller replays end to end what
 * it still needs (fwd replays unacknowledged stanzas, submits fail).  The
 * rule is symmetric, so both ends always agree on reset versus resume.
 *
 * One connection at a time: the caller must feed one link's frames only (if
 * both nodes dial each other at once, the edge keeps one connection).
 *
 * Versions: frames are encoded at the link's frame version
 * (pchan_set_version), which the edge sets from the HELLOs.
 *
 * Flow: pchan_send writes the frame's bytes to the caller's output buffer if
 * the link is up, and keeps a copy.  When the resend buffer is full it
 * returns XE_BUSY and keeps nothing: the caller holds the frame and tries
 * again later (pchan_has_room), never a silent drop.  Stanza data (FWD,
 * DELIVER) may fill only seven eighths of the buffer (frames and bytes): the
 * rest is headroom for control frames (ACK, SESSIONS, CONFLICT, SUBMIT), so
 * that a flood of data one way never starves acknowledgements. */
#ifndef XMPPD_PCHAN_H
#define XMPPD_PCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "pframe.h"

#define PCHAN_NO_DEADLINE UINT64_MAX

struct pchan_config {
    size_t max_frames;     /* resend buffer bound in frames; default 4096 */
    size_t max_bytes;      /* resend buffer bound in bytes; default 32 MiB */
    unsigned ack_every;    /* CHAN_ACK after this many received frames; default 32 */
    uint64_t ack_delay_ms; /* or this long after the first unacked one; default 20 */
};

/* pchan_config_default fills c with the defaults above. */
void pchan_config_default(struct pchan_config *c);

struct pchan;

/* pchan_new creates a channel of this process (local_incarnation, non-zero,
 * random per process start) toward one peer; the link starts down.  cfg is
 * copied (NULL for defaults; zero fields take defaults).  Returns 0, XE_INVAL
 * (incarnation 0) or XE_NOMEM. */
int pchan_new(const struct pchan_config *cfg, uint64_t local_incarnation,
              struct pchan **out);
/* pchan_free frees the channel and its resend buffer.  NULL is a no-op. */
void pchan_free(struct pchan *c);

/* pchan_send numbers f (borrowed; f->chan_seq is set) and keeps its encoding
 * until acknowledged; if the link is up the same bytes are appended to out
 * for the caller to write.  Returns 0, XE_BUSY (resend buffer full: nothing
 * kept, nothing written, f->chan_seq untouched), XE_INVAL (f is not a
 * sequenced type, or pframe_encode refused it), XE_LIMIT (too big for a
 * frame) or XE_NOMEM. */
int pchan_send(struct pchan *c, struct pframe *f, struct buf *out);

/* pchan_set_version makes version (PFRAME_VERSION_MIN..PFRAME_VERSION_MAX;
 * the link's, chosen at HELLO) the one frames are encoded at, from now on
 * and for the frames kept for resending, which are re-encoded if they were
 * written at another (frames queued before the first link, at
 * PFRAME_VERSION; after a peer restart the kept frames are dropped anyway,
 * and the same two processes always choose the same version).  Call it
 * before pchan_link_up.  Returns 0, XE_INVAL (a version out of range),
 * XE_NOMEM (the version is unchanged; frames already re-encoded stay
 * readable at theirs) or a decode error of a kept frame. */
int pchan_set_version(struct pchan *c, uint8_t version);

/* pchan_version: the version frames are encoded at (PFRAME_VERSION until
 * pchan_set_version). */
uint8_t pchan_version(const struct pchan *c);

/* pchan_has_room tells whether one more control frame of len encoded bytes
 * would be accepted now (stanza data stops earlier: see Flow above). */
bool pchan_has_room(const struct pchan *c, size_t len);

/* pchan_hello fills the channel fields of the HELLO this side sends on a new
 * connection: incarnation, seen_incarnation, recv_seq (the caller fills
 * proto, cluster_id, node_id, addr). */
void pchan_hello(const struct pchan *c, struct pframe_hello *h);

enum pchan_resume {
    PCHAN_FIRST,   /* first contact: frames queued so far are all sent */
    PCHAN_RESUMED, /* same peer process: unacknowledged frames resent */
    PCHAN_RESET,   /* peer restarted or lost our stream: buffer discarded */
};

/* pchan_link_up takes the peer's HELLO (borrowed) on a new connection and
 * appends to out the frames to resend, in order (after a reset, none).
 * *how says what happened.  Returns 0, XE_PROTO (the peer claims to have
 * received a number we never sent, or to have lost what it acknowledged:
 * close the link) or XE_NOMEM.  A second link_up without link_down is
 * XE_STATE. */
int pchan_link_up(struct pchan *c, const struct pframe_hello *peer, struct buf *out,
                  enum pchan_resume *how);

/* pchan_link_down marks the connection lost: frames sent from now on are
 * kept but not written until the next pchan_link_up. */
void pchan_link_down(struct pchan *c);

/* pchan_is_up tells whether a link_up came after the last link_down. */
bool pchan_is_up(const struct pchan *c);

/* pchan_recv takes one frame f (borrowed) from the current connection:
 *  - CHAN_ACK: releases acknowledged frames; *deliver = false.
 *  - a sequenced type: *deliver = true if it is the next number (the caller
 *    then acts on f), false for a duplicate (already delivered: ignore f).
 *    A CHAN_ACK may be appended to out (every ack_every frames).
 * Returns 0; XE_STATE when the link is not up; XE_INVAL for a type pchan
 * does not handle (HELLO, PING, PONG, RAFT: the caller's); XE_PROTO for a
 * gap in the numbers or an acknowledgement of a number never sent (close
 * the link); XE_NOMEM. */
int pchan_recv(struct pchan *c, const struct pframe *f, uint64_t now_ms, struct buf *out,
               bool *deliver);

/* pchan_tick appends a CHAN_ACK to out if one is due at now_ms.  0/XE_NOMEM. */
int pchan_tick(struct pchan *c, uint64_t now_ms, struct buf *out);
/* pchan_next_deadline returns when pchan_tick should run, or
 * PCHAN_NO_DEADLINE. */
uint64_t pchan_next_deadline(const struct pchan *c);

struct pchan_stats {
    uint64_t peer_incarnation; /* 0 before first contact */
    uint64_t sent;             /* frames numbered and kept */
    uint64_t resent;           /* frames written again after a reconnect */
    uint64_t delivered;        /* frames received in order */
    uint64_t duplicates;       /* frames received again and dropped */
    uint64_t resets;           /* PCHAN_RESET link-ups */
    uint64_t discarded;        /* unacknowledged frames dropped by resets */
    uint64_t busy;             /* XE_BUSY refusals */
    uint64_t next_seq;         /* the number the next frame gets */
    uint64_t acked_seq;        /* highest number the peer acknowledged */
    uint64_t recv_seq;         /* highest contiguous number received */
    size_t buffered;           /* frames in the resend buffer */
    size_t buffered_bytes;
};

void pchan_get_stats(const struct pchan *c, struct pchan_stats *out);

#endif
