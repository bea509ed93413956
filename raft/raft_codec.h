/* raft_codec.h: Raft messages (struct raft_message, raft.h) to bytes and back, for
 * the peer link.  Pure: no I/O, no allocation on encode.
 *
 * Format, version 1, little-endian integers:
 *
 *   u8 version (1) | u8 type | u64 cluster_id | u64 from | u64 to | u64 term
 *   then by type:
 *   APPEND         u64 prev_index | u64 prev_term | u64 commit | u32 n |
 *                  n x (u64 index | u64 term | u8 type | u32 len | data)
 *   APPEND_RESULT  u8 rejected | u64 last_index | u64 reject_index |
 *                  u64 conflict_term | u64 conflict_index
 *   VOTE           u64 last_index | u64 last_term | u8 flags (1 pre_vote,
 *                  2 transfer)
 *   VOTE_RESULT    u8 flags (1 granted, 2 pre_vote)
 *   SNAPSHOT       u64 index | u64 term | u64 config_index | u32 config_len |
 *                  config (raft_config_encode) | u64 data_len | data
 *   TIMEOUT_NOW    nothing
 *
 * One encoding is one message: the caller frames it (a length prefix on the
 * peer link).  Decoding is strict, since the bytes come from a peer that may
 * lie or be broken: every length is checked against what remains, counts are
 * bounded, booleans are 0 or 1, unknown flags, types and trailing bytes are
 * errors, entry indexes must follow prev_index, and the configuration must
 * pass raft_config_decode.  A bad message gives an error, never a crash or a
 * read outside the buffer. */
#ifndef RAFT_CODEC_H
#define RAFT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "raft.h"

#define CODEC_VERSION 1
#define CODEC_HEADER_SIZE 34
/* Bounds a decoder enforces (and an encoder refuses to exceed). */
#define CODEC_MAX_ENTRIES 65536
#define CODEC_MAX_ENTRY_DATA (64u << 20)
#define CODEC_MAX_SNAPSHOT_DATA (1u << 30)

/* codec_encoded_size returns the number of bytes codec_encode writes for m
 * (borrowed), or 0 when m cannot be encoded (unknown type, a count or a size
 * over the bounds above). */
size_t codec_encoded_size(const struct raft_message *m);

/* codec_encode writes m (borrowed) into buf (cap bytes) and sets *len.
 * Returns 0, RAFT_ETOOBIG (cap too small, or m over the bounds), RAFT_EINVAL
 * (unknown type or entry type, or a configuration that does not encode). */
int codec_encode(const struct raft_message *m, void *buf, size_t cap, size_t *len);

/* A decoded message.  msg's entry data and snapshot data point into the
 * buffer given to codec_decode (borrowed: it must outlive the use of msg);
 * entries is owned here.  Release with codec_msg_free. */
struct codec_msg {
    struct raft_message msg;
    struct raft_entry *entries;
};

/* codec_decode parses len bytes at buf into *out (see struct codec_msg for
 * ownership).  Returns 0, RAFT_EPROTO (malformed, wrong version, trailing
 * bytes), RAFT_ETOOBIG (a count or size over the bounds), RAFT_ECORRUPT or a
 * raft_config_validate code (the snapshot's configuration), RAFT_ENOMEM.  On
 * error *out holds nothing to free. */
int codec_decode(const void *buf, size_t len, struct codec_msg *out);

/* codec_msg_free releases what codec_decode allocated in m (not the input
 * buffer) and zeroes m. */
void codec_msg_free(struct codec_msg *m);

#endif
