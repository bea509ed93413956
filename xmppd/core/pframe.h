/* pframe.h: the peer-link frame codec: cluster messages to bytes and back.
 *
 * Pure: no I/O, no clock.  Every frame on the peer link (TLS between two
 * nodes, port 5224) is
 *
 *   u32 length (big-endian; bytes that follow, at most PFRAME_MAX_BODY)
 *   u8  version (the link's, PFRAME_VERSION_MIN..PFRAME_VERSION_MAX; below)
 *   u8  type (enum pframe_type)
 *   u64 chan_seq     only for sequenced types (pframe_type_sequenced): the
 *                    pchan sequence number, >= 1
 *   payload by type (integers big-endian):
 *
 *   HELLO          u16 proto | u64 cluster_id | u64 node_id | u64 incarnation |
 *                  str addr | u64 seen_incarnation | u64 recv_seq | u64 wall_ms
 *                  [version >= 3: u8 vmin | u8 vmax | what later versions add]
 *   CHAN_ACK       u64 recv_seq
 *   PING, PONG     u64 nonce | u32 components (the sender's local component
 *                  sessions, docs/cluster.md "Status fields")
 *   RAFT           bytes (raft/raft_codec.h encoding, opaque here)
 *   FWD, DELIVER   u64 origin | u64 incarnation | u64 seq | u64 low_water |
 *                  str from | str to | str xml
 *   ACK            u64 origin_incarnation | u32 n | n x (u64 first | u64 last)
 *   SESSIONS       u64 node_id | u64 generation | u64 term | u8 full | u32 nadd |
 *                  nadd x (str name | u64 sid | u64 ord | attr) | u32 ndel |
 *                  ndel x (str name | u64 sid | u64 ord | attr)
 *   ROUTES         u64 term | u8 flags | u32 nadd | nadd x (str name | u64 node |
 *                  u64 sid | u64 ord | attr) | u32 ndel | ndel x (same)
 *   CONFLICT       str name | u64 since
 *   SUBMIT         u64 request_id | bytes data
 *   SUBMIT_RESULT  u64 request_id | i32 rc | str message | bytes data
 *   REFUSE         u64 cluster_id | u8 code | str reason
 *                  [version >= 3: u8 vmin | u8 vmax | what later versions add]
 *
 *   (SESSIONS and ROUTES entries at version 2 have no attr: see
 *   pframe_attr_v2)
 *   attr  = u8 kind (enum pframe_kind) | u8 flags (PFRAME_ATTR_*, no other
 *           bit) | u8 priority (two's complement, -128..127)
 *   str   = u32 len | len bytes | 0x00   (no NUL inside; len bounded per field)
 *   bytes = u32 len | len bytes
 *
 * The NUL after each string lets a decoded frame point its strings straight
 * into the received bytes (zero copy) as C strings.
 *
 * Decoding is strict because the bytes come from a peer that may be broken:
 * every length is checked against what remains and against its bound,
 * booleans are 0 or 1, ranges are ordered, unknown versions and types and
 * trailing bytes are errors.  A bad frame gives a negative code, never a
 * crash or a read outside the buffer; the peer link then closes and counts
 * it. */
#ifndef XMPPD_PFRAME_H
#define XMPPD_PFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Versions of the frame layout (the byte after the length):
 * 2: direct forwarding (ACK outcomes, SESSIONS orders, ROUTES).
 * 3: SESSIONS and ROUTES entries carry attributes (struct pframe_attr:
 *    kind, availability, priority), so that bare-JID routing and presence
 *    work cluster-wide; HELLO carries the sender's
 *    range of versions, REFUSE the refuser's.
 * 4: the frames of version 3, unchanged; a build that speaks 4 applies
 *    version 3 entries of the replicated log (repl.h, sessions).
 * This codec reads and writes PFRAME_VERSION_MIN..PFRAME_VERSION_MAX.  A
 * link speaks one version, the highest both ends speak, chosen at HELLO
 * (plink_hello; docs/cluster.md "Versions"), and every later frame on it is
 * encoded and decoded at that version (struct pframe's version).
 *
 * HELLO and REFUSE are read at any version >= 2, so that two builds whose
 * ranges do not meet still learn each other's and can say so: their layout
 * at version 3 and above is frozen (the version 3 fields, then bytes a later
 * version may append, which an older reader ignores).  At version 2 a HELLO
 * has no range (a version 2 node speaks 2 only) and is read strictly, as a
 * version 2 node reads it. */
#define PFRAME_VERSION_MIN 2
#define PFRAME_VERSION_MAX 4
/* The first version whose builds apply the login and last-presence
 * entries of the replicated log (repl.h CL_CMD_LOGIN, CL_CMD_PRES_LAST):
 * a node writes them only while every other member's link is at this
 * version or above (srv_cluster_set_soft_entries), so that an older
 * member in a rolling upgrade never stops applying at one. */
#define PFRAME_VERSION_SOFT_ENTRIES 3
/* The first version whose builds apply version 3 entries (repl.h
 * CL_CMD_VERSION_SESSION): a follower stamps its forwarded writes so only
 * while every other member's link is, or was last, at this version or
 * above (srv_sessions_ok, rreq_set_sessions); else version 2, which the
 * builds before read. */
#define PFRAME_VERSION_SESSIONS 4
/* The version a frame is written at when it names none. */
#define PFRAME_VERSION PFRAME_VERSION_MAX
#define PFRAME_PROTO 2
#define PFRAME_LEN_SIZE 4
/* Bytes after the length field: enough for a 256 KiB stanza (xs default
 * limit) plus its JIDs and header, and for Raft batches the driver keeps
 * below it. */
#define PFRAME_MAX_BODY (1u << 20)
#define PFRAME_MAX_ADDR 255   /* listen address "host:port" */
#define PFRAME_MAX_JID 3071   /* RFC 7622 §3.1: three parts of 1023 */
#define PFRAME_MAX_NAME 1023  /* a component domain */
#define PFRAME_MAX_MSG 1023   /* SUBMIT_RESULT message */
#define PFRAME_MAX_LIST 16384 /* SESSIONS entries per list, ACK ranges */

enum pframe_type {
    PFRAME_HELLO = 1,
    PFRAME_CHAN_ACK = 2,
    PFRAME_PING = 3,
    PFRAME_PONG = 4,
    PFRAME_RAFT = 5,
    PFRAME_FWD = 6,
    PFRAME_DELIVER = 7,
    PFRAME_ACK = 8,
    PFRAME_SESSIONS = 9,
    PFRAME_CONFLICT = 10,
    PFRAME_SUBMIT = 11,
    PFRAME_SUBMIT_RESULT = 12,
    PFRAME_ROUTES = 13,
    PFRAME_REFUSE = 14,
};

/* pframe_type_name returns "HELLO", "FWD", ... or "?" for an unknown type. */
const char *pframe_type_name(int type);

/* pframe_type_sequenced tells whether frames of this type carry a chan_seq
 * and go through pchan (reliable across reconnects): FWD, DELIVER, ACK,
 * ROUTES, * SESSIONS, CONFLICT, SUBMIT, SUBMIT_RESULT.  HELLO, CHAN_ACK, PING and PONG
 * are link control; RAFT is not sequenced either, because Raft tolerates
 * loss and retries by itself (a stale AppendEntries resent after a reconnect
 * would only delay, and a snapshot must not fill the resend buffer). */
bool pframe_type_sequenced(int type);

struct pframe_hello {
    uint16_t proto;            /* PFRAME_PROTO */
    uint64_t cluster_id;       /* the caller refuses a peer of another cluster */
    uint64_t node_id;          /* the sender's node id */
    uint64_t incarnation;      /* random per process start, never 0 */
    const char *addr;          /* the sender's listen address */
    uint64_t seen_incarnation; /* the receiver's incarnation that recv_seq is
                                  about; 0 when the sender knows none */
    uint64_t recv_seq;         /* highest contiguous chan_seq received from it */
    uint64_t wall_ms;          /* the sender's wall clock when it sent this (ms
                                  since the epoch): the receiver learns the
                                  offset of the sender's clock from its own */
    uint8_t vmin, vmax;        /* the frame versions the sender speaks; written
                                  at version >= 3 only (0, 0: PFRAME_VERSION_MIN
                                  up to the version written at), read as 2..2
                                  from a version 2 HELLO */
    bool unranged;             /* decode only: a version 3 HELLO that ends
                                  before the range: a build of session 4 (git
                                  5d99433), which wrote version 3 before HELLO
                                  had a range and whose version 3 frames differ
                                  from ours; plink refuses it with the reason */
};

/* FWD: a stanza from its origin node straight to the node that holds its
 * destination (docs/cluster.md "Forwarding").  DELIVER (type 7) was the
 * leader's relay of a FWD before direct forwarding; it is still decoded
 * with the same layout, and fwd refuses it as a protocol error. */
struct pframe_fwd {
    uint64_t origin;      /* node id of the node whose session sent it */
    uint64_t incarnation; /* the origin's incarnation */
    uint64_t seq;         /* the origin's stanza sequence number, >= 1 */
    uint64_t low_water;   /* the origin's lowest seq without an outcome (<= seq) */
    const char *from;     /* sender JID */
    const char *to;       /* destination JID */
    const char *xml;      /* the stanza serialized for jabber:component:accept */
    size_t xml_len;       /* bytes of xml (no NUL inside; NUL-terminated) */
};

struct pframe_range {
    uint64_t first, last; /* first <= last */
};

/* ACK: the outcomes of FWDs at the node that received them: delivered to a
 * local session (ranges), or not delivered and never to be, because no
 * local session holds the destination (bounced: the origin answers the
 * sender with service-unavailable, RFC 6120 §8.3.3.19).  Each list is
 * ascending and disjoint; at least one seq in all. */
struct pframe_ack {
    uint64_t origin_incarnation; /* the incarnation the seqs belong to */
    const struct pframe_range *ranges;
    size_t nranges; /* 0..PFRAME_MAX_LIST */
    const struct pframe_range *bounced;
    size_t nbounced; /* 0..PFRAME_MAX_LIST */
};

/* What kind of session holds a name of the routing table. */
enum pframe_kind {
    PFRAME_KIND_COMPONENT = 0, /* a component domain */
    PFRAME_KIND_C2S_TCP = 1,   /* a client full JID, over TCP (5222) */
    PFRAME_KIND_C2S_WS = 2,    /* a client full JID, over WebSocket (RFC 7395) */
};

/* The client is available (RFC 6121 §4.1: it sent initial presence and no
 * unavailable since). */
#define PFRAME_ATTR_AVAILABLE 1u
/* SESSIONS only: this entry updates the attributes of a session the node
 * reported before; the leader applies it only while that session (node
 * and sid) holds the name, and never orders it anew, so that an update
 * cannot make an older session win a conflict. */
#define PFRAME_ATTR_UPDATE 2u

/* The attributes of a routing table entry (all zero for a component). */
struct pframe_attr {
    uint8_t kind;    /* enum pframe_kind */
    uint8_t flags;   /* PFRAME_ATTR_* */
    int8_t priority; /* RFC 6121 §4.7.2.3 (clients; 0 for components) */
};

/* One session of a name in a SESSIONS report. */
struct pframe_sess {
    const char *name; /* component domain, or a client's full JID */
    uint64_t sid;     /* the reporting node's id of the session (never 0) */
    uint64_t ord;     /* the order a leader gave it (ROUTES), 0: none yet */
    struct pframe_attr attr;
};

/* One entry of the cluster routing table in ROUTES. */
struct pframe_route {
    const char *name; /* component domain, or a client's full JID */
    uint64_t node;    /* the node holding it */
    uint64_t sid;     /* that node's session id */
    uint64_t ord;     /* cluster-wide order: the greater is the newer */
    struct pframe_attr attr;
};

#define PFRAME_ROUTES_RESET 1u    /* forget the table first */
#define PFRAME_ROUTES_COMPLETE 2u /* the table is whole after this frame */

/* ROUTES: the leader's routing table, to every member: in full (chunks, the
 * first with RESET, the last with COMPLETE) after a member's full SESSIONS
 * report, then as changes. */
struct pframe_routes {
    uint64_t term; /* the leader's Raft term */
    uint8_t flags; /* PFRAME_ROUTES_* */
    const struct pframe_route *add;
    size_t nadd;
    const struct pframe_route *del;
    size_t ndel;
};

struct pframe_sessions {
    uint64_t node_id;    /* the reporting node */
    uint64_t generation; /* increases with every report of that node */
    uint64_t term;       /* the Raft term of the leader it is meant for */
    bool full;           /* full report: replaces all of node_id's names */
    const struct pframe_sess *add;
    size_t nadd;
    const struct pframe_sess *del;
    size_t ndel;
};

struct pframe_conflict {
    const char *name; /* close the local session holding name ... */
    uint64_t sid;     /* ... if it is this one (same sid), with conflict */
};

/* REFUSE: the accepting node's answer to a HELLO it refuses, sent once
 * instead of its own HELLO, just before it closes the link, so that the
 * dialler learns why.  Link control: not
 * sequenced, and allowed only on a link whose HELLO is not answered yet. */
enum pframe_refuse_code {
    PFRAME_REFUSE_OTHER = 0,   /* see the reason */
    PFRAME_REFUSE_REMOVED = 1, /* the dialler was removed from this cluster */
    PFRAME_REFUSE_VERSION = 2, /* no frame version in common (version >= 3
                                  only: a version 2 node knows codes 0, 1) */
};

struct pframe_refuse {
    uint64_t cluster_id; /* the refusing node's cluster */
    uint8_t code;        /* enum pframe_refuse_code */
    const char *reason;  /* for the dialler's log and status (<= PFRAME_MAX_MSG) */
    uint8_t vmin, vmax;  /* the refuser's versions (version >= 3; 0 at 2) */
};

struct pframe_submit {
    uint64_t request_id;
    const void *data;
    size_t len;
};

struct pframe_submit_result {
    uint64_t request_id;
    int32_t rc;          /* 0 or a negative XE_ code */
    const char *message; /* "" when none */
    const void *data;
    size_t len;
};

/* PING and PONG: link keep-alive; each also tells the receiver how many
 * component sessions are connected to the sender now, so that every node's
 * status can show every directly linked member's count (not only the
 * leader's routing table). */
struct pframe_ping {
    uint64_t nonce;      /* PING: any; PONG: the PING's nonce */
    uint32_t components; /* the sender's local component sessions */
};

struct pframe_bytes {
    const void *data;
    size_t len;
};

/* A frame.  For encoding every pointer is borrowed from the caller.  A
 * decoded frame's strings and bytes point into the decoded buffer (borrowed:
 * valid as long as it is); the ACK, SESSIONS and ROUTES arrays are allocated by the
 * decoder and freed by pframe_release. */
struct pframe {
    int type;          /* enum pframe_type */
    uint8_t version;   /* encode: the version to write (0: PFRAME_VERSION);
                          decoded: the version the frame was written at */
    uint64_t chan_seq; /* sequenced types only; >= 1 */
    union {
        struct pframe_hello hello;
        uint64_t recv_seq;       /* CHAN_ACK */
        struct pframe_ping ping; /* PING, PONG */
        struct pframe_bytes raft;
        struct pframe_fwd fwd; /* FWD, DELIVER */
        struct pframe_ack ack;
        struct pframe_sessions sessions;
        struct pframe_routes routes;
        struct pframe_conflict conflict;
        struct pframe_submit submit;
        struct pframe_submit_result result;
        struct pframe_refuse refuse;
    } u;
    void *owned_; /* decoder allocations; pframe_release frees them */
};

/* pframe_encode appends f (borrowed) as one complete frame, length prefix
 * included, to out, at version f->version (0: PFRAME_VERSION).  Fields the
 * version does not have are left out (attributes at 2; and SESSIONS entries
 * with PFRAME_ATTR_UPDATE, which only update attributes, are not written at
 * all).  Returns 0, XE_UNSUPPORTED (a version outside PFRAME_VERSION_MIN..
 * PFRAME_VERSION_MAX), XE_INVAL (unknown type, a NULL or over-long
 * string, a string with a NUL inside, chan_seq 0 on a sequenced type, a list
 * over its bound or empty ACK, unordered ranges, low_water > seq), XE_LIMIT
 * (the frame would exceed PFRAME_MAX_BODY) or XE_NOMEM; on error out is left
 * as it was. */
int pframe_encode(const struct pframe *f, struct buf *out);

/* pframe_decode parses one frame body (the len bytes after the length field:
 * version, type, payload) into *out; see struct pframe for what borrows from
 * body.  Returns 0, XE_UNSUPPORTED (a version this codec does not read:
 * outside PFRAME_VERSION_MIN..PFRAME_VERSION_MAX, or below 2 for HELLO and
 * REFUSE), XE_PROTO (malformed:
 * unknown type, truncated, a bound exceeded, trailing bytes) or XE_NOMEM.
 * On error *out holds nothing to release. */
int pframe_decode(const void *body, size_t len, struct pframe *out);

/* pframe_release frees what decoding allocated in f (not the input) and
 * clears f.  Safe on an encoded-by-hand or already released frame whose
 * owned_ is NULL. */
void pframe_release(struct pframe *f);

/* The incremental decoder: bytes in, in any chunking, frames out. */
struct pframe_dec {
    struct buf in;   /* received bytes; in.data[pos..len) not yet parsed */
    size_t pos;      /* start of the next frame in in */
    size_t max_body; /* PFRAME_MAX_BODY unless lowered */
    int error;       /* sticky: after an error no frame comes out */
    uint8_t version; /* 0 until the link's version is chosen; then every
                        frame must be at it (else XE_PROTO) */
    uint64_t frames; /* frames decoded */
};

/* pframe_attr_v2 fills a with what a version 2 entry named name implied:
 * a client full JID (it has a '/') over TCP, else a component; never
 * available (a version 2 node routes no bare JID and no presence to other
 * nodes), priority 0. */
void pframe_attr_v2(const char *name, struct pframe_attr *a);

/* pframe_version_pick: the version two ranges [amin, amax] and [bmin, bmax]
 * have in common and the highest, or 0 when they do not meet. */
uint8_t pframe_version_pick(uint8_t amin, uint8_t amax, uint8_t bmin, uint8_t bmax);

/* pframe_dec_init starts an empty decoder; pframe_dec_free frees its
 * buffer. */
void pframe_dec_init(struct pframe_dec *d);
void pframe_dec_free(struct pframe_dec *d);

/* pframe_dec_feed appends len bytes read from the link.  Frames returned
 * before this call become invalid (their strings point into the buffer).
 * Returns 0, the sticky error, or XE_NOMEM. */
int pframe_dec_feed(struct pframe_dec *d, const void *data, size_t len);

/* pframe_dec_next takes the next complete frame out of the buffered bytes.
 * Returns 1 with *out filled (release it with pframe_release; its strings
 * are valid until the next pframe_dec_feed), 0 when more bytes are needed,
 * or a negative code: XE_PROTO for a length over max_body (known as soon as
 * the 4 length bytes are in), XE_PROTO for a frame at another version than
 * d->version once that is set, and any pframe_decode error.  Errors are
 * sticky: the link must be closed. */
int pframe_dec_next(struct pframe_dec *d, struct pframe *out);

/* ---- cluster requests: the data of a SUBMIT frame ----------------------
 *
 * A SUBMIT carries one admin request to the leader (core/creq.h; the
 * answer is a SUBMIT_RESULT).  Its data is
 *
 *   u8 kind (enum pframe_req_kind) | u64 expires | body by kind:
 *   CMD           the rest: an encoded cl command (cl.h; opaque here)
 *   JOIN          u64 node_id | u8 replace | u32 alen | alen bytes addr
 *                 [| u8 tlen (>= 1) | tlen bytes join token]
 *   REMOVE        u64 node_id
 *   NOTE_REMOVED  u64 cluster_id (request id 0, never answered)
 *
 * expires is the sender's wall clock (ms since the epoch) after which the
 * leader must not apply it.  The address of JOIN carries no NUL (unlike a
 * str).  Decoding is strict, as for frames: lengths checked, replace 0 or
 * 1, no trailing bytes. */
enum pframe_req_kind {
    PFRAME_REQ_CMD = 1,
    PFRAME_REQ_JOIN = 2,
    PFRAME_REQ_REMOVE = 3,
    /* leader -> a member it just removed: Raft stops replicating to a
     * removed member, so without this it would never learn it (thesis
     * §4.2.2). */
    PFRAME_REQ_NOTE_REMOVED = 4,
};

#define PFRAME_MAX_TOKEN 64 /* a join token's bytes */

struct pframe_join {
    uint64_t node_id;               /* the joining node */
    bool replace;                   /* remove the member holding addr */
    char addr[PFRAME_MAX_ADDR + 1]; /* its peer address (copied) */
    const unsigned char *token;     /* NULL: none */
    size_t token_len;               /* 1..PFRAME_MAX_TOKEN, or 0 */
};

struct pframe_req {
    uint8_t kind;     /* enum pframe_req_kind */
    uint64_t expires; /* the sender's wall-clock ms */
    union {
        struct pframe_bytes cmd; /* CMD */
        struct pframe_join join; /* JOIN */
        uint64_t node_id;        /* REMOVE */
        uint64_t cluster_id;     /* NOTE_REMOVED */
    } u;
};

/* pframe_req_encode appends r (borrowed) as SUBMIT data to out.  0,
 * XE_INVAL (unknown kind, an empty or over-long address or token, an
 * address with a NUL) or XE_NOMEM; on error out is left as it was. */
int pframe_req_encode(const struct pframe_req *r, struct buf *out);

/* pframe_req_decode parses SUBMIT data (len bytes, borrowed) into *out: a
 * CMD's bytes and a JOIN's token point into data.  0 or XE_PROTO
 * (malformed, unknown kind). */
int pframe_req_decode(const void *data, size_t len, struct pframe_req *out);

/* The answer to a JOIN (SUBMIT_RESULT data) is the cluster's id, a u64:
 * pframe_u64_put writes v big-endian at p, pframe_u64_get reads it. */
void pframe_u64_put(unsigned char p[8], uint64_t v);
uint64_t pframe_u64_get(const unsigned char p[8]);

#endif
