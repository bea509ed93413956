/* repl.h: the replicated cluster state and its state machine.
 *
 * cl_: the cluster's replicated state.  The symbols keep that prefix (cl_state,
 * cl_apply, cl_cmd_*) though the files are repl*.c; io/cluster*.c is another
 * thing, the I/O glue between Raft and the peers.
 *
 * Every configuration write of the cluster (domain, call bridges, client
 * accounts) is a command: a small binary record that becomes the data of one
 * Raft log entry (RAFT_ENTRY_NORMAL).  Once the entry is committed, every
 * node applies it with cl_apply, in log order, to its own struct cl_state, so
 * all nodes hold the same state (Raft paper §5.3, state-machine safety).
 *
 * Pure: no I/O, no clock, no randomness.  cl_apply is deterministic: the same
 * state and the same entry give the same result and the same new state on
 * every node, including for a corrupt entry (rejected, state unchanged).
 *
 * Command format, version 1 (little-endian; docs/replicated-state.md):
 *
 *   u8 version (1) | u8 type (enum cl_cmd_type) | u8 flags | payload
 *   INIT        u64 cluster_id (non-zero)
 *   SET_DOMAIN  u16 len | domain
 *   CB_SET      u8 len | name | u16 len | secret | [u64 set_at, with
 *               CL_CMD_SET_AT]             flags: CL_CMD_ADD, CL_CMD_SET_AT
 *   CB_DEL      u8 len | name
 *   USER_SET    u16 len | user | u8 mechs (1 SHA-256, 2 SHA-1, 4 created),
 *               [u64 created, when mechs has 4], then per mech present,
 *               SHA-256 first: u8 salt_len | salt | u32 iterations |
 *               StoredKey | ServerKey (32 or 20 bytes each)
 *                                           flags: CL_CMD_ADD or CL_CMD_REPLACE
 *   USER_DEL    u16 len | user
 *   USER_ITER   u32 iterations (CL_ITER_MIN..CL_ITER_MAX)
 *   ROSTER_SET, ROSTER_DEL  one change to one user's roster: the payload
 *               and its rules are roster.h's (struct roster_cmd, RFC 6121)
 *   LOGIN       u8 what (1 account, 2 address) | u8 failed (0, 1) |
 *               u16 len | name: a client login failed (or succeeded after
 *               failures) on some node; changes no state, every node
 *               counts it in its login throttle (srv_login_applied,
 *               docs/clients.md "Throttling across the cluster")
 *   PRES_LAST   u16 len | user | u16 len | resource | u64 wall_ms |
 *               u16 len | status (0..CL_STATUS_MAX): a resource of user
 *               went unavailable (RFC 6121 §4.3.2); changes no state,
 *               every node keeps it for probes (srv_lastpres_applied)
 *
 * The "created" bit of USER_SET (the wall-clock time, Unix seconds, at which
 * the node that took the admin's request made the command) is written only
 * when created is non-zero, so an account without it encodes exactly as
 * before and entries and snapshots written before it existed read as
 * created 0 ("unknown").  The time is inside the entry, never read at apply
 * time, so every node stores the same value.  CB_SET's set_at (flag
 * CL_CMD_SET_AT: the wall-clock time, Unix seconds, at which the node that
 * took the admin's request made it) is the same: written only when
 * non-zero, entries and snapshots without it read as 0 ("unknown").  A
 * build before it refuses the flag (XE_CORRUPT), so a node writes it only
 * while every member reads version 3 entries (the sessions gate,
 * rnode_sessions_on; docs/replicated-state.md).
 * Unknown versions, types, flags or mechs, bad lengths, invalid names and
 * trailing bytes are XE_UNSUPPORTED, XE_CORRUPT or XE_INVAL (see cl_cmd_decode).
 *
 * Version 2 carries a request id (a write forwarded by a follower, which may
 * send it again to a new leader after a leader change):
 *
 *   u8 version (2) | u64 origin (node id, non-zero) | u64 seq | u8 type |
 *   u8 flags | payload (as in version 1)
 *
 * cl_apply remembers the results of the last CL_SEEN_MAX requests with a
 * version 2 id; a later entry with the same (origin, seq) changes nothing
 * and returns the first result.
 *
 * Version 3 makes each origin's requests a session (the Raft thesis §6.3,
 * client sessions): the id says which start of the origin made it (boot,
 * random, non-zero) and the lowest seq of that start that the origin may
 * still send again (first, <= seq, seq - first < CL_WINDOW):
 *
 *   u8 version (3) | u64 origin | u64 boot | u64 seq | u64 first | u8 type |
 *   u8 flags | payload (as in version 1)
 *
 * cl_apply keeps per session (origin, boot) the results of its applied
 * requests at or above the highest first seen, drops those below, answers
 * a copy of a request it holds with the first result (no change), and
 * refuses a request below the mark with XE_EXPIRED (its origin had its
 * answer and moved on: a late copy, never applied a second time).  So a
 * write sent again is applied once however many other writes come
 * between.  Sessions are bounded (CL_SESSIONS_MAX, least recently used
 * dropped: a restarted node's old session and a removed member's age out,
 * by the log alone) and part of the snapshot.  LOGIN and PRES_LAST keep
 * their ids in a ring of their own (not in the snapshot).  Version 1
 * entries (no id) are read as before; cl_cmd_encode writes version 1
 * without an id, 2 with origin and seq only, 3 with a boot.
 *
 * Secrets: call-bridge secrets live in sodium_malloc memory inside the state
 * and are wiped when released; command buffers that may hold a secret are
 * released with cl_buf_free, which wipes them.  Nothing here logs.
 *
 * Requires sodium_init() to have been called (sodium_malloc). */
#ifndef XMPPD_REPL_H
#define XMPPD_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_CMD_VERSION 1
#define CL_CMD_VERSION_ID 2      /* with a request id (origin, seq) */
#define CL_CMD_VERSION_SESSION 3 /* with (origin, boot, seq, first): a session */
#define CL_SNAP_VERSION 1
#define CL_SNAP_VERSION_ID 2       /* with the results of recent request ids */
#define CL_SNAP_VERSION_ITER 3     /* and the SCRAM iteration setting */
#define CL_SNAP_VERSION_ROSTER 4   /* and the rosters (roster_db) */
#define CL_SNAP_VERSION_SESSIONS 5 /* and the origins' sessions */
#define CL_SNAP_VERSION_CB_TIME 6  /* and when each call bridge's secret was set */
#define CL_SEEN_MAX 256 /* version 2 request ids remembered (oldest dropped first) */
/* Sessions (version 3 ids, the Raft thesis §6.3): an origin never has a
 * request with seq >= first + CL_WINDOW (first: its lowest request that it
 * may still send again), so a session keeps at most CL_WINDOW results; at
 * most CL_SESSIONS_MAX sessions are kept, the least recently used (in log
 * order) dropped first. */
#define CL_WINDOW 256
#define CL_SESSIONS_MAX 64

#define CL_NAME_MAX 63     /* call-bridge name: a DNS label (RFC 1035 §2.3.4) */
#define CL_DOMAIN_MAX 1023 /* RFC 7622 §3.2: domainpart at most 1023 bytes */
#define CL_USER_MAX 1023   /* RFC 7622 §3.3: localpart at most 1023 bytes */
#define CL_SECRET_MAX 1024 /* call-bridge shared secret, bytes */
#define CL_SALT_MIN 16     /* RFC 7677 / RFC 5802 §5.1: a random salt */
#define CL_SALT_MAX 64
#define CL_ITER_MIN 4096 /* RFC 7677 §4: at least 4096 iterations */
#define CL_ITER_MAX 10000000
#define CL_ITER_DEFAULT CL_ITER_MIN /* until `xmpp user iterations` sets one */
#define CL_KEY_SHA256 32            /* StoredKey / ServerKey sizes (RFC 5802 §3) */
#define CL_KEY_SHA1 20

/* ---- Validation (one place; the shell-side handlers use the same) ---- */

/* cl_name_valid: name (NUL-terminated; NULL is invalid) is a call-bridge
 * name by addr_callbridge_valid's rule (1..CL_NAME_MAX ASCII letters,
 * digits and '-'). */
bool cl_name_valid(const char *name);

/* cl_domain_valid: a non-empty domainpart as jid_domain_valid accepts it, at
 * most CL_DOMAIN_MAX bytes. */
bool cl_domain_valid(const char *domain);

/* cl_user_valid: a prepared localpart of 1..CL_USER_MAX bytes: PRECIS
 * UsernameCaseMapped (precis_username, RFC 7622 §3.3) accepts it and gives
 * it back unchanged (so it has no space, control character or any of
 * " & ' / : < > @). */
bool cl_user_valid(const char *user);
/* cl_user_check says the same as 0 or XE_INVAL, and XE_NOMEM when PRECIS
 * ran out of memory: a replicated entry or a snapshot must not be refused
 * on one node for that (it would apply differently there). */
int cl_user_check(const char *user);

/* cl_user_explain checks a user name as an admin typed it, before it is
 * prepared (RFC 7622 §3.3: preparation maps it, these rules hold before
 * and after): 1..CL_USER_MAX bytes, no space, no control character, none
 * of " & ' / : < > @.  Returns true when they hold; otherwise writes one
 * line saying what is wrong and what to do into why (len bytes) and
 * returns false.  mmp-cli and the daemon say the same.  A name that passes
 * still has to be prepared (the daemon does it) to pass cl_user_valid. */
bool cl_user_explain(const char *user, char *why, size_t len);

/* ---- The state ---- */

struct cl_callbridge {
    char name[CL_NAME_MAX + 1];
    unsigned char *secret; /* sodium_malloc, secret_len bytes; owned by the state */
    size_t secret_len;     /* 1..CL_SECRET_MAX */
    uint64_t set_at;       /* Unix seconds the secret was set (0: unknown) */
};

/* SCRAM credentials for one mechanism (RFC 5802 §3, RFC 7677).  Never a
 * password. */
struct cl_scram {
    bool present;
    unsigned char salt[CL_SALT_MAX];
    size_t salt_len; /* CL_SALT_MIN..CL_SALT_MAX */
    uint32_t iterations;
    unsigned char stored_key[CL_KEY_SHA256]; /* CL_KEY_SHA256 or CL_KEY_SHA1 bytes */
    unsigned char server_key[CL_KEY_SHA256]; /* used, as for stored_key */
};

/* A client account.  At least sha256 is present. */
struct cl_user {
    char name[CL_USER_MAX + 1];
    struct cl_scram sha256; /* SCRAM-SHA-256: keys CL_KEY_SHA256 bytes */
    struct cl_scram sha1;   /* SCRAM-SHA-1: keys CL_KEY_SHA1 bytes (optional) */
    /* Unix seconds.  In the state: when the account was created (0: unknown,
     * made before this field existed).  In a USER_SET command: when the
     * command was made; cl_apply keeps the first value of an account that
     * already exists (a new password does not make a new account). */
    uint64_t created;
};

struct cl_state;

/* cl_state_new makes an empty state (cluster id 0, no domain, nothing else).
 * *out is owned by the caller: release with cl_state_free.  XE_NOMEM. */
int cl_state_new(struct cl_state **out);

/* cl_state_free wipes every secret and key and frees s (NULL is a no-op). */
void cl_state_free(struct cl_state *s);

/* Accessors.  Returned pointers are borrowed from s and valid until the next
 * cl_apply, cl_snapshot_decode into s, or cl_state_free. */
uint64_t cl_cluster_id(const struct cl_state *s); /* 0 before INIT */
const char *cl_domain(const struct cl_state *s);  /* "" when unset */
size_t cl_callbridge_count(const struct cl_state *s);
/* cl_callbridge_at: i in [0, count); sorted by name (strcmp). */
const struct cl_callbridge *cl_callbridge_at(const struct cl_state *s, size_t i);
const struct cl_callbridge *cl_callbridge_find(const struct cl_state *s,
                                               const char *name);
size_t cl_user_count(const struct cl_state *s);
/* cl_user_at: i in [0, count); sorted by name (strcmp). */
const struct cl_user *cl_user_at(const struct cl_state *s, size_t i);
const struct cl_user *cl_user_find(const struct cl_state *s, const char *name);
/* cl_user_iterations: the PBKDF2 iteration count for new SCRAM credentials
 * (RFC 5802 §3 "i"), as set by USER_ITER; CL_ITER_DEFAULT before. */
uint32_t cl_user_iterations(const struct cl_state *s);
/* cl_rosters: the rosters of every user (roster.h: roster_db_get), changed
 * only by ROSTER_SET / ROSTER_DEL and USER_DEL (which drops the user's
 * roster).  Never NULL. */
struct roster_db;
const struct roster_db *cl_rosters(const struct cl_state *s);

/* ---- Commands ---- */

enum cl_cmd_type {
    CL_CMD_INIT = 1,       /* set the cluster id, once */
    CL_CMD_SET_DOMAIN = 2, /* set (or change) the XMPP domain */
    CL_CMD_CB_SET = 3,     /* add a call bridge or change its secret */
    CL_CMD_CB_DEL = 4,     /* remove a call bridge */
    CL_CMD_USER_SET = 5,   /* add a client account or change its credentials */
    CL_CMD_USER_DEL = 6,   /* remove a client account */
    CL_CMD_USER_ITER = 7,  /* set the iteration count for new credentials */
    CL_CMD_ROSTER_SET = 8, /* add or replace one roster entry (roster.h) */
    CL_CMD_ROSTER_DEL = 9, /* remove one roster entry (roster.h) */
    CL_CMD_LOGIN = 10,     /* a failed (or cleared) client login: soft, no state */
    CL_CMD_PRES_LAST = 11, /* a user's last unavailable presence: soft, no state */
};

/* LOGIN: what the name is. */
enum cl_login_what {
    CL_LOGIN_ACCOUNT = 1, /* a prepared localpart (cl_user_valid) */
    CL_LOGIN_ADDRESS = 2, /* a peer's IP address, without port (1..63 bytes of
                             hex digits, '.', ':' and letters) */
};
#define CL_LOGIN_ADDR_MAX 63
#define CL_RESOURCE_MAX 1023 /* RFC 7622 §3.4: a resourcepart */
#define CL_STATUS_MAX 1024   /* PRES_LAST: status bytes */

/* flags */
#define CL_CMD_ADD 0x01    /* CB_SET, USER_SET: fail with XE_EXISTS if present */
#define CL_CMD_SET_AT 0x04 /* CB_SET: a u64 set_at follows the secret */
#define CL_CMD_REPLACE                                                                   \
    0x02 /* USER_SET: fail with XE_NOTFOUND if absent (a new                             \
            password for an account deleted meanwhile must                               \
            not bring it back) */

/* A command in decoded form.  Pointers are borrowed: on encode, from the
 * caller; after cl_cmd_decode, into the decoded buffer (name and domain are
 * copied into the arrays, NUL-terminated). */
struct cl_cmd {
    enum cl_cmd_type type;
    unsigned flags;                 /* CL_CMD_ADD */
    uint64_t cluster_id;            /* INIT */
    char domain[CL_DOMAIN_MAX + 1]; /* SET_DOMAIN */
    char name[CL_USER_MAX + 1];     /* CB_*: call-bridge name; USER_*: user */
    const unsigned char *secret;    /* CB_SET */
    size_t secret_len;
    uint64_t set_at;            /* CB_SET: Unix seconds (0: unknown; CL_CMD_SET_AT) */
    const struct cl_user *user; /* USER_SET: user->name is ignored (name
                                   above is used); decode points it at
                                   decoded_user */
    uint32_t iterations;        /* USER_ITER */
    uint8_t login_what;         /* LOGIN: enum cl_login_what */
    bool login_failed;          /* LOGIN: failed (true) or succeeded */
    char pres_resource[CL_RESOURCE_MAX + 1]; /* PRES_LAST */
    char pres_status[CL_STATUS_MAX + 1];     /* PRES_LAST ("": none) */
    uint64_t pres_wall_ms;                   /* PRES_LAST (0: unknown) */
    struct cl_user decoded_user;             /* filled by cl_cmd_decode for USER_SET */
    uint64_t req_origin; /* request id: origin node (0: none, version 1) */
    uint64_t req_seq;    /* request id: the origin's sequence number */
    uint64_t req_boot;   /* version 3: the origin's start (0: version 2) */
    uint64_t req_first;  /* version 3: its lowest seq it may send again */
};

/* Convenience constructors: fill *c (which they clear first; ~2 KB, use a
 * heap or static object in small stacks if needed).  Strings and secret are
 * borrowed (copied into c where c has arrays).  No validation here:
 * cl_cmd_encode validates. */
void cl_cmd_init(struct cl_cmd *c, uint64_t cluster_id);
void cl_cmd_set_domain(struct cl_cmd *c, const char *domain);
void cl_cmd_cb_set(struct cl_cmd *c, const char *name, const unsigned char *secret,
                   size_t secret_len, bool add);
/* cl_cmd_cb_set_at: CB_SET as cl_cmd_cb_set, with the time its secret is
 * set (Unix seconds; 0: none, as cl_cmd_cb_set). */
void cl_cmd_cb_set_at(struct cl_cmd *c, const char *name, const unsigned char *secret,
                      size_t secret_len, bool add, uint64_t set_at);
void cl_cmd_cb_del(struct cl_cmd *c, const char *name);
void cl_cmd_user_set(struct cl_cmd *c, const char *user, const struct cl_user *creds,
                     bool add);
/* cl_cmd_user_passwd: USER_SET with CL_CMD_REPLACE. */
void cl_cmd_user_passwd(struct cl_cmd *c, const char *user, const struct cl_user *creds);
void cl_cmd_user_del(struct cl_cmd *c, const char *user);
void cl_cmd_user_iter(struct cl_cmd *c, uint32_t iterations);
/* cl_cmd_login: LOGIN about name (an account or an address, by what). */
void cl_cmd_login(struct cl_cmd *c, enum cl_login_what what, const char *name,
                  bool failed);
/* cl_cmd_pres_last: PRES_LAST of user's resource (status NULL: none). */
void cl_cmd_pres_last(struct cl_cmd *c, const char *user, const char *resource,
                      const char *status, uint64_t wall_ms);

/* cl_cmd_encode validates c (borrowed) and writes it in the format above
 * into a new buffer: *out is returned owned (release with cl_buf_free(*out,
 * *len), which wipes it since it may hold a secret).  Returns 0, XE_INVAL (a
 * field fails validation: name, domain, user, secret length, salt length,
 * iteration count, unknown type or flags, INIT with id 0), XE_NOMEM. */
int cl_cmd_encode(const struct cl_cmd *c, unsigned char **out, size_t *len);

/* cl_cmd_decode parses and validates len bytes at buf into *c (pointers into
 * buf, borrowed).  A roster command (ROSTER_SET, ROSTER_DEL) is validated
 * with roster_cmd_decode; *c then holds only its type, flags, request id
 * and user (in name): read its payload with roster_cmd_decode.  Returns 0,
 * XE_UNSUPPORTED (a version above the newest this build knows, or an
 * unknown type: written by a newer xmppd; the driver stops applying rather
 * than skip it), XE_CORRUPT (version 0, unknown flag or mech, truncated,
 * trailing bytes), XE_INVAL (well-formed but a field fails validation).
 * Never reads outside buf. */
int cl_cmd_decode(const void *buf, size_t len, struct cl_cmd *c);

/* cl_cmd_with_request re-encodes the command in buf (len bytes, borrowed)
 * with the request id (origin, seq), origin non-zero: *out is returned owned
 * (release with cl_buf_free(*out, *len)).  0, XE_CORRUPT / XE_INVAL (buf does
 * not decode, or origin is 0), XE_NOMEM. */
int cl_cmd_with_request(const void *buf, size_t len, uint64_t origin, uint64_t seq,
                        unsigned char **out, size_t *outlen);

/* A request id in full (version 3 when boot is non-zero). */
struct cl_req {
    uint64_t origin, boot, seq, first;
};

/* cl_cmd_with_req is cl_cmd_with_request with the id *id (borrowed): a
 * version 3 entry when id->boot is non-zero (first <= seq < first +
 * CL_WINDOW), else version 2.  0, XE_CORRUPT / XE_INVAL, XE_NOMEM. */
int cl_cmd_with_req(const void *buf, size_t len, const struct cl_req *id,
                    unsigned char **out, size_t *outlen);

/* cl_cmd_req reads the request id of an encoded entry (either codec's)
 * into *id (all 0: none) and its type into *type (NULL: not wanted).  0,
 * or cl_cmd_decode's errors. */
int cl_cmd_req(const void *buf, size_t len, struct cl_req *id, enum cl_cmd_type *type);

/* The entry header both codecs share (this one and roster_db.c's):
 * cl_req_write writes the version and the id of (origin, boot, seq,
 * first): version 1 when origin is 0, 2 when boot is 0, else 3.
 * cl_req_read reads them into *id and returns the version (1..3),
 * XE_UNSUPPORTED (a newer version) or XE_CORRUPT; cl_req_check says
 * whether a version 3 id keeps the rules (0 or XE_CORRUPT). */
struct wr;
struct rd;
void cl_req_write(struct wr *w, const struct cl_req *id);
int cl_req_read(struct rd *r, struct cl_req *id);

/* cl_buf_free wipes len bytes at p and frees p (NULL is a no-op). */
void cl_buf_free(void *p, size_t len);

/* cl_cmd_type_name returns "init", "set-domain", "callbridge-set", ... or
 * "unknown". */
const char *cl_cmd_type_name(int type);

/* ---- Apply ---- */

enum cl_effect_kind {
    CL_EFF_NONE = 0,       /* nothing changed (error, or a no-op write) */
    CL_EFF_INIT = 1,       /* cluster id set */
    CL_EFF_DOMAIN = 2,     /* domain changed: effects.old_domain -> cl_domain() */
    CL_EFF_CB_ADDED = 3,   /* call bridge name added (effects.cb) */
    CL_EFF_CB_SECRET = 4,  /* call bridge name's secret changed (effects.cb):
                              close its session */
    CL_EFF_CB_DELETED = 5, /* call bridge name removed: close its session */
    CL_EFF_USER_ADDED = 6,
    CL_EFF_USER_CHANGED = 7, /* credentials changed */
    CL_EFF_USER_DELETED = 8, /* close the user's sessions */
    CL_EFF_USER_ITER = 9,    /* cl_user_iterations() changed */
    CL_EFF_ROSTER = 10,      /* the roster of user `name` changed, for the
                                contact `roster_jid`: push it (RFC 6121
                                §2.1.6) to the user's resources; only when
                                the item is listed before or after (an
                                entry that only keeps a pending request,
                                A.1, changes with CL_EFF_NONE) */
    CL_EFF_LOGIN = 11,       /* a LOGIN entry: effects.name, login_what,
                                login_failed; the state did not change */
    CL_EFF_PRES_LAST = 12,   /* a PRES_LAST entry: effects.name (user),
                                pres_*; the state did not change */
};

/* What one cl_apply changed, so the daemon can carry it out (srv_set_callbridge,
 * srv_del_callbridge, closing sessions).  Pointers are borrowed from the state
 * and valid until the next change to it. */
struct cl_effects {
    enum cl_effect_kind kind;
    enum cl_cmd_type type;              /* the command's type (0 if it did not decode) */
    char name[CL_USER_MAX + 1];         /* call bridge or user concerned, else "" */
    const struct cl_callbridge *cb;     /* CB_ADDED, CB_SECRET: the entry now */
    const struct cl_user *user;         /* USER_ADDED, USER_CHANGED */
    char old_domain[CL_DOMAIN_MAX + 1]; /* DOMAIN: the previous one ("" if none) */
    char roster_jid[2048];              /* ROSTER: the contact's bare JID
                                           (ROSTER_JID_MAX + 1 bytes) */
    uint8_t login_what;                 /* LOGIN: enum cl_login_what */
    bool login_failed;                  /* LOGIN: failed or succeeded */
    char pres_resource[CL_RESOURCE_MAX + 1]; /* PRES_LAST */
    char pres_status[CL_STATUS_MAX + 1];     /* PRES_LAST ("": none) */
    uint64_t pres_wall_ms;                   /* PRES_LAST */
    uint64_t origin; /* the node whose request id the entry carries (0:
                        none): LOGIN's tells a node its own entries */
};

/* cl_effect_name returns "none", "init", "domain", "callbridge-added", ... */
const char *cl_effect_name(enum cl_effect_kind k);

/* cl_apply applies one committed entry's data (borrowed) to s and fills *eff
 * (eff may be NULL).  The return value is the result for the submitter:
 *   0            applied (eff->kind says what changed; CL_EFF_NONE if the
 *                write changed nothing, e.g. the same secret again)
 *   XE_EXISTS    CB_SET / USER_SET with CL_CMD_ADD on an existing name;
 *                INIT when the cluster id is already set
 *   XE_NOTFOUND  CB_DEL / USER_DEL of an unknown name; USER_SET with
 *                CL_CMD_REPLACE of an unknown name
 *   XE_CORRUPT, XE_INVAL  the entry does not decode (state unchanged)
 *   XE_NOMEM     out of memory: state unchanged, but this node can no longer
 *                follow the log; the driver must stop (not deterministic)
 *   XE_EXPIRED   a version 3 request below its session's mark: a late
 *                copy of a request its origin settled (nothing changed)
 *   XE_LIMIT     also: ROSTER_* over a roster's bound
 * On any non-zero return s is unchanged and eff->kind is CL_EFF_NONE.
 * An entry with a request id already applied (a version 2 id among the
 * last CL_SEEN_MAX, a version 3 one held by its session) changes nothing
 * (eff->kind CL_EFF_NONE) and returns the first result. */
int cl_apply(struct cl_state *s, const void *data, size_t len, struct cl_effects *eff);

/* ---- Snapshots ---- */

/* cl_snapshot_encode writes the whole state s (borrowed) into a new buffer:
 * *out returned owned, release with cl_buf_free(*out, *len) (it holds
 * secrets).  Format (version 1): u8 version | u64 cluster_id | u16 len |
 * domain | u32 n_cb | n x (u8 len | name | u16 len | secret) | u32 n_users |
 * n x USER_SET payload (without flags).  Version 2, written only when
 * request ids were seen (so older readers read what has none), adds: u32
 * n_seen | n x (u64 origin | u64 seq | u32 rc), oldest first.  Version 3,
 * written only when USER_ITER was applied, is version 2 (with n_seen
 * possibly 0) followed by u32 iterations.  Version 4, written only when
 * some user has a roster, is version 3 with iterations possibly 0 (never
 * set), followed by u32 len | roster_db_snapshot_encode (roster.h).
 * Version 5, written only when there are sessions, is version 4 with the
 * roster part possibly empty (len 0) followed by u32 n | n x (u64 origin |
 * u64 boot | u64 mark | u32 k | k x (u64 seq | u32 rc)), least recently
 * used first, seqs ascending.  Version 6, written only when some call
 * bridge's set_at is known, is version 5 (sessions possibly none) followed
 * by n_cb x u64 set_at, in the call bridges' order (0: unknown).
 * Returns 0, XE_NOMEM. */
int cl_snapshot_encode(const struct cl_state *s, unsigned char **out, size_t *len);

/* cl_snapshot_decode parses len bytes at buf (borrowed) into a new state
 * *out (owned by the caller).  Strict like cl_cmd_decode, and names must be
 * sorted and unique.  Returns 0, XE_UNSUPPORTED (a version above the newest
 * this build knows: written by a newer xmppd), XE_CORRUPT, XE_INVAL,
 * XE_NOMEM; on error *out is NULL. */
int cl_snapshot_decode(const void *buf, size_t len, struct cl_state **out);

#endif
