/* roster.h: rosters and presence subscriptions, RFC 6121 §2, §3, §4 and
 * Appendix A, as pure decisions, and their replicated form.
 *
 * Three layers, no I/O in any of them:
 *   - struct roster: the roster of one user, items sorted by contact JID
 *     (roster.c), with the roster get/set/remove rules of §2 (roster_iq.c).
 *   - the subscription state machine (roster_sub.c): a user's item state
 *     and one subscription stanza in, the item's new state and the actions
 *     the server must take out, exactly as the tables of Appendix A.
 *   - struct roster_db (roster_db.c): the rosters of all users, changed
 *     only by applying ROSTER_SET / ROSTER_DEL commands taken from the Raft
 *     log, with snapshots; deterministic like cl_apply (repl.h).
 *
 * How a session uses it: it parses a roster set with roster_parse_set,
 * asks roster_set_decide (or roster_sub_decide for a subscription stanza)
 * for a struct roster_decision, submits the decision's write as a command
 * through the log, and once it is applied carries out the actions (route,
 * deliver, push...).  A subscription stanza from alice to bob is an
 * outbound event in alice's roster and, if the outbound decision routes it,
 * an inbound event in bob's roster: two decisions, two writes, one per
 * roster.
 *
 * Not implemented (optional in RFC 6121): roster versioning (§2.6,
 * XEP-0237; no 'ver' attribute is ever sent), subscription pre-approval
 * (§3.4; an outbound "subscribed" with no pending request is dropped, never
 * remembered), directed-presence bookkeeping (§4.6). */
#ifndef XMPPD_ROSTER_H
#define XMPPD_ROSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stz.h"

#define ROSTER_NS "jabber:iq:roster"

/* Bounds (server-configured limits in the sense of RFC 6121 §2.3.3). */
#define ROSTER_ITEMS_MAX 1000   /* entries per roster, pending requests included */
#define ROSTER_PENDING_MAX 100  /* entries that are only an inbound request */
#define ROSTER_GROUPS_MAX 32    /* <group/> elements per item */
#define ROSTER_NAME_MAX 255     /* bytes of the 'name' attribute */
#define ROSTER_GROUP_MAX 255    /* bytes of one group name */
#define ROSTER_JID_MAX 2047     /* bytes of a bare JID: 1023 + '@' + 1023 */
#define ROSTER_REQUEST_MAX 4096 /* bytes of a stored inbound request stanza */

/* The 'subscription' attribute (§2.1.2.5): bit 1 "to", bit 2 "from". */
enum roster_sub {
    ROSTER_SUB_NONE = 0,
    ROSTER_SUB_TO = 1,   /* the user receives the contact's presence */
    ROSTER_SUB_FROM = 2, /* the contact receives the user's presence */
    ROSTER_SUB_BOTH = 3,
};

/* One roster entry, RFC 6121 §2.1.2: the contact's JID, an optional name,
 * groups, the subscription state and the pending sub-states.  An entry with
 * listed false is not a roster item the user sees: it only records an
 * inbound subscription request from a contact the user never added (A.1,
 * "None + Pending In": the server MUST note the request but MUST NOT create
 * a roster item).  All pointers are owned by the item. */
struct roster_item {
    char *jid;              /* prepared bare JID of the contact */
    char *name;             /* NULL when absent (never "") */
    char **groups;          /* n_groups distinct, non-empty names, in order given */
    size_t n_groups;        /* 0..ROSTER_GROUPS_MAX */
    enum roster_sub sub;    /* subscription */
    bool ask;               /* ask='subscribe': outbound request pending */
    bool pending_in;        /* inbound request awaiting the user's answer */
    bool listed;            /* a roster item (false: pending request only) */
    unsigned char *request; /* the inbound request as received, serialized
                               (§3.1.3: re-delivered at the next login);
                               NULL when none; only with pending_in */
    size_t request_len;     /* 1..ROSTER_REQUEST_MAX when request != NULL */
};

/* The roster of one user. */
struct roster {
    struct roster_item **items; /* sorted by jid (strcmp), each owned */
    size_t n, cap;
    size_t n_pending; /* entries with listed false */
};

/* ---- items and rosters (roster.c) ---- */

/* roster_jid_valid: s is a bare JID (no resource) exactly as jid_parse
 * prepares it, at most ROSTER_JID_MAX bytes.  roster_jid_check says the
 * same as 0 or XE_INVAL, and XE_NOMEM when preparing s ran out of memory:
 * what decides a replicated entry must tell the two apart, or one node
 * would refuse an entry the others apply. */
bool roster_jid_valid(const char *s);
int roster_jid_check(const char *s);
/* roster_text_valid: s is len bytes of UTF-8 XML character data (no NUL,
 * no controls but TAB, LF, CR), the content allowed in a name or group. */
bool roster_text_valid(const char *s, size_t len);
/* roster_item_valid checks every field of it against the rules above, the
 * bounds, and the states of Appendix A.1 (no "to" with ask, no "from" with
 * pending_in, an unlisted entry is exactly "None + Pending In"). */
bool roster_item_valid(const struct roster_item *it);
/* roster_item_check: the same as 0, XE_INVAL, or XE_NOMEM (as
 * roster_jid_check). */
int roster_item_check(const struct roster_item *it);
/* roster_item_copy makes dst (uninitialised) a deep copy of src (borrowed).
 * 0/XE_NOMEM (then dst is zeroed). */
int roster_item_copy(struct roster_item *dst, const struct roster_item *src);
/* roster_item_clear frees what it owns and zeroes it. */
void roster_item_clear(struct roster_item *it);
/* roster_item_equal compares every field. */
bool roster_item_equal(const struct roster_item *a, const struct roster_item *b);

/* roster_init / roster_clear: an empty roster is all zeroes; clear frees. */
void roster_init(struct roster *r);
void roster_clear(struct roster *r);
/* roster_find returns the entry for jid (borrowed from r, valid until r
 * changes), listed or not, or NULL. */
const struct roster_item *roster_find(const struct roster *r, const char *jid);
/* roster_put stores a copy of it (borrowed; must be roster_item_valid),
 * replacing the entry with the same jid.  0, XE_INVAL, XE_LIMIT (a new entry
 * beyond ROSTER_ITEMS_MAX, or an unlisted one beyond ROSTER_PENDING_MAX),
 * XE_NOMEM; r unchanged on error. */
int roster_put(struct roster *r, const struct roster_item *it);
/* roster_remove drops the entry for jid.  0 or XE_NOTFOUND. */
int roster_remove(struct roster *r, const char *jid);
/* roster_room tells whether r (NULL: no roster yet) can take a new entry,
 * listed or not.  The functions below that take a const roster accept NULL
 * as the empty roster. */
bool roster_room(const struct roster *r, bool listed);

/* ---- decisions and actions ---- */

/* The four subscription stanza types (RFC 6121 §3). */
enum roster_pres {
    ROSTER_PRES_SUBSCRIBE,
    ROSTER_PRES_SUBSCRIBED,
    ROSTER_PRES_UNSUBSCRIBE,
    ROSTER_PRES_UNSUBSCRIBED,
};

enum roster_dir {
    ROSTER_OUT, /* sent by the user (the roster's owner) to the contact */
    ROSTER_IN,  /* received for the user from the contact */
};

enum roster_act_kind {
    /* route a presence of type `type` from the user's bare JID to the
     * contact: the user's own stanza with 'from' stamped to the bare JID
     * (§3.1.2), or one the server generates for a roster remove (§2.5.2) */
    ROSTER_ACT_ROUTE,
    /* deliver the inbound stanza to the user's available resources (to all
     * of them, §3.1.3; for a subscribe, also stored, see STORE_REQUEST) */
    ROSTER_ACT_DELIVER,
    /* roster push of the decision's item to every interested resource
     * (§2.1.6); with subscription='remove' when write is ROSTER_WRITE_DEL
     * or the item is no longer listed */
    ROSTER_ACT_PUSH,
    /* send the user's current presence from each available resource to the
     * contact (after an approval, §3.1.5) */
    ROSTER_ACT_SEND_PRESENCE,
    /* send unavailable presence from each available resource to the
     * contact: before an "unsubscribed" (§3.2.2), or after the contact's
     * "unsubscribe" (§3.3.3) */
    ROSTER_ACT_SEND_UNAVAILABLE,
    /* answer the contact with a "subscribed" from the user's bare JID, on
     * the user's behalf (§3.1.3, the contact is already subscribed) */
    ROSTER_ACT_AUTO_REPLY,
    /* the inbound request is kept in the item (pending_in, request) so that
     * it is delivered again at the user's next login (§3.1.3) */
    ROSTER_ACT_STORE_REQUEST,
    /* do nothing with the stanza: drop it silently (the "MUST NOT route" /
     * "MUST silently ignore" rows of §3 and Appendix A) */
    ROSTER_ACT_DROP,
};

struct roster_action {
    enum roster_act_kind kind;
    enum roster_pres type; /* ROUTE and AUTO_REPLY: the presence type */
};

enum roster_write {
    ROSTER_WRITE_NONE, /* nothing to replicate */
    ROSTER_WRITE_SET,  /* replicate ROSTER_SET(user, item) */
    ROSTER_WRITE_DEL,  /* replicate ROSTER_DEL(user, item.jid) */
};

/* The nine states of RFC 6121 Appendix A.1. */
enum roster_state {
    ROSTER_ST_NONE,
    ROSTER_ST_NONE_PO,  /* None + Pending Out */
    ROSTER_ST_NONE_PI,  /* None + Pending In */
    ROSTER_ST_NONE_POI, /* None + Pending Out+In */
    ROSTER_ST_TO,
    ROSTER_ST_TO_PI, /* To + Pending In */
    ROSTER_ST_FROM,
    ROSTER_ST_FROM_PO, /* From + Pending Out */
    ROSTER_ST_BOTH,
};
#define ROSTER_N_STATES 9

#define ROSTER_ACTIONS_MAX 4

/* What the server must do: the actions in order, and what to write.  item
 * is the entry after the change (owned by the decision: roster_decision_
 * clear); for ROSTER_WRITE_DEL it still holds the old entry, for pushes. */
struct roster_decision {
    enum roster_state old_state, new_state;
    struct roster_action act[ROSTER_ACTIONS_MAX];
    size_t n_act;
    enum roster_write write;
    struct roster_item item;
    uint8_t base; /* roster_base_of the entry the decision was made on */
};

/* roster_decision_clear frees d's item and zeroes d. */
void roster_decision_clear(struct roster_decision *d);

/* ---- roster get, set, remove (roster_iq.c; RFC 6121 §2) ---- */

/* A parsed roster set (§2.3) or remove (§2.5). */
struct roster_set_req {
    bool remove;             /* subscription='remove' */
    struct roster_item item; /* jid, name, groups (remove: jid only); owned */
};

/* roster_parse_set reads query (borrowed), the <query xmlns='jabber:iq:roster'/>
 * of an iq of type set from the user whose prepared bare JID is user_bare.
 * On success *out is filled (release with roster_item_clear(&out->item)).
 * Errors return XE_PROTO with *cond the stanza error condition (RFC 6120
 * §8.3.3), always of type "modify":
 *   bad-request     not exactly one <item/> (§2.1.5), duplicate groups
 *                   (§2.3.3), no 'jid', a full JID as 'jid'
 *   jid-malformed   a 'jid' that is not a JID (RFC 6120 §8.3.3.8)
 *   not-acceptable  name or group over-long, empty group (§2.3.3), more than
 *                   ROSTER_GROUPS_MAX groups, or the user's own bare JID
 *                   (server policy: one is always subscribed to oneself,
 *                   §4.2.2)
 * A 'subscription' other than "remove" and any 'ask' are ignored (§2.1.2.5:
 * "the server MUST ignore any value of the 'subscription' attribute other
 * than remove"; §2.1.2.1).  XE_NOMEM. */
int roster_parse_set(const struct stz *query, const char *user_bare,
                     struct roster_set_req *out, const char **cond);

/* roster_set_decide decides a parsed set or remove (req, borrowed) against
 * r (borrowed) into *out (release with roster_decision_clear).
 *   set:    the item keeps its subscription state and takes name and groups;
 *           a new item starts at "none" (§2.3.2).  Actions: PUSH.  Write SET.
 *   remove: §2.5.2: actions PUSH (remove), then ROUTE "unsubscribe" if the
 *           user was subscribed to the contact or asked to be, then
 *           SEND_UNAVAILABLE and ROUTE "unsubscribed" if the contact was
 *           subscribed to the user or had a request pending (§3.2.2 rule
 *           3).  Write DEL.
 * Returns 0, or XE_PROTO with *cond: "item-not-found" (remove of a JID
 * that is not a roster item, §2.5.3), "not-allowed" (a new item beyond
 * ROSTER_ITEMS_MAX: RFC 6121 names no condition; this is RFC 6120
 * §8.3.3.10's "not allowed by policy"); XE_NOMEM. */
int roster_set_decide(const struct roster *r, const struct roster_set_req *req,
                      struct roster_decision *out, const char **cond);

/* roster_item_stz builds the <item/> for a roster result or push (§2.1.2):
 * jid, name, subscription ("remove" when removed), ask='subscribe',
 * <group/>s.  Returns an owned element in ROSTER_NS or NULL (no memory). */
struct stz *roster_item_stz(const struct roster_item *it, bool removed);
/* roster_query_stz builds the <query xmlns='jabber:iq:roster'/> of a roster
 * get result (§2.1.3): every listed item, none of the pending-only entries,
 * no 'ver' (versioning not implemented).  Owned element or NULL. */
struct stz *roster_query_stz(const struct roster *r);

/* ---- presence (roster.c; RFC 6121 §4) ---- */

enum roster_select {
    ROSTER_SEL_BROADCAST, /* subscription from/both: gets the user's
                             broadcast presence, §4.2.2, §4.4.2, §4.6.2 */
    ROSTER_SEL_PROBE,     /* subscription to/both: probed at login, §4.3 */
    ROSTER_SEL_PENDING,   /* inbound requests to deliver again, §3.1.3 */
};

/* roster_select returns in *out an array of the entries that qualify, in
 * JID order (*out owned, free() it; the entries are borrowed from r, valid
 * until r changes); *n their count (0 gives *out NULL).  0/XE_NOMEM. */
int roster_select(const struct roster *r, enum roster_select which,
                  const struct roster_item ***out, size_t *n);

enum roster_probe_answer {
    ROSTER_PROBE_PRESENCE,     /* send the user's current presence from each
                                  available resource (or the last unavailable
                                  if none is available), §4.3.2 */
    ROSTER_PROBE_UNSUBSCRIBED, /* the prober is not subscribed: answer
                                  presence type "unsubscribed", never the
                                  user's presence, §4.3.2 */
};

/* roster_probe_decide: how the user's server answers a probe from contact
 * (a prepared bare JID): only a contact with subscription from/both learns
 * the user's presence. */
enum roster_probe_answer roster_probe_decide(const struct roster *r, const char *contact);

/* ---- the subscription state machine (roster_sub.c; Appendix A) ---- */

/* roster_state_of maps an entry (NULL: no entry) to its Appendix A state. */
enum roster_state roster_state_of(const struct roster_item *it);
/* roster_base_of condenses an entry (NULL: none) into one byte that
 * changes whenever its subscription state or listing changes:
 * ROSTER_BASE_ABSENT, or the state | ROSTER_BASE_LISTED.  A command made
 * from a decision carries it, and applies only if the entry still has it
 * (roster_cmd_from_decision). */
#define ROSTER_BASE_ABSENT 0xff
#define ROSTER_BASE_LISTED 0x10
uint8_t roster_base_of(const struct roster_item *it);
/* roster_state_apply sets sub, ask and pending_in of it to st. */
void roster_state_apply(struct roster_item *it, enum roster_state st);
/* roster_state_name: "None", "None + Pending Out", ... as in A.1. */
const char *roster_state_name(enum roster_state st);
const char *roster_pres_name(enum roster_pres type); /* "subscribe", ... */

/* roster_sub_step is the bare table lookup of A.2 (dir ROSTER_OUT) and A.3
 * (ROSTER_IN): the new state and the table's ROUTE? / DELIVER? column. */
void roster_sub_step(enum roster_state st, enum roster_dir dir, enum roster_pres type,
                     enum roster_state *next, bool *pass);

/* roster_sub_decide decides one subscription stanza of type `type`, sent by
 * the user (ROSTER_OUT) or received for the user (ROSTER_IN), about contact
 * (prepared bare JID, borrowed), against the user's roster r (borrowed).
 * request/request_len (borrowed, may be NULL) is the serialized inbound
 * subscribe, kept with the pending request when it fits in
 * ROSTER_REQUEST_MAX (else none is kept and the session re-creates a bare
 * <presence type='subscribe'/> at login).  Fills *out (release with
 * roster_decision_clear).  Returns 0, XE_INVAL (contact not a valid bare
 * JID), XE_LIMIT (an outbound subscribe to a new contact with the roster
 * full: nothing is routed), XE_NOMEM.  The actions per table row are in
 * roster_sub.c.  The caller handles stanzas to the user's own bare JID
 * itself (one is always subscribed to oneself, §4.2.2) and never passes
 * that JID as contact. */
int roster_sub_decide(const struct roster *r, const char *contact, enum roster_dir dir,
                      enum roster_pres type, const void *request, size_t request_len,
                      struct roster_decision *out);

/* ---- replicated commands and the store of all rosters (roster_db.c) ---- */

/* Command types, numbered after repl.h's so one log carries both. */
enum roster_cmd_type {
    ROSTER_CMD_SET = 8, /* add or replace user's entry for item.jid */
    ROSTER_CMD_DEL = 9, /* remove user's entry for jid */
};

#define ROSTER_CMD_VERSION 1         /* the header of repl.h's version 1 */
#define ROSTER_CMD_VERSION_ID 2      /* repl.h's version 2: with a request id */
#define ROSTER_CMD_VERSION_SESSION 3 /* repl.h's version 3: a session's id */
#define ROSTER_SNAP_VERSION 1
#define ROSTER_USER_MAX 1023 /* a localpart, as CL_USER_MAX */

#define ROSTER_CMD_IF 0x01 /* flags: the command carries a base (below) */

/* A command in decoded form.  Format (little-endian), with repl.h's header:
 *
 *   u8 version (1) | u8 type | u8 flags | payload
 *   u8 version (2) | u64 origin | u64 seq | u8 type | u8 flags | payload
 *   u8 version (3) | u64 origin | u64 boot | u64 seq | u64 first | u8 type |
 *   u8 flags | payload
 *   SET  u16 len | user | [u8 base] | item
 *   DEL  u16 len | user | [u8 base] | u16 len | jid
 *   item u16 len | jid | u8 bits (1 ask, 2 pending_in, 4 listed) | u8 sub |
 *        u16 len | name (0: absent) | u8 n_groups | n x (u16 len | group) |
 *        u16 len | request (0: none)
 *
 * base is there when flags has ROSTER_CMD_IF: the command applies only if
 * the user's entry for the JID still has that roster_base_of, else
 * XE_STATE.  That makes each decision a compare-and-set: two decisions made
 * on the same replica state (alice's outbound stanza on one node, bob's
 * inbound one on another) cannot both apply and lose one's change; the
 * refused one is decided again on the new state and submitted again.
 *
 * Every field is checked: unknown version, type, flags or bits, a length
 * beyond its bound or beyond the buffer, trailing bytes (XE_CORRUPT), or an
 * invalid user, JID, text or state (XE_INVAL). */
struct roster_cmd {
    enum roster_cmd_type type;
    char user[ROSTER_USER_MAX + 1]; /* the roster's owner (a localpart) */
    struct roster_item item;        /* SET: the whole entry; DEL: jid only.
                                       Owned after decode: roster_cmd_clear */
    uint64_t req_origin, req_seq;   /* request id (version 2), 0: none */
    uint64_t req_boot, req_first;   /* version 3 (repl.h), 0: version 2 */
    bool has_base;                  /* ROSTER_CMD_IF */
    uint8_t base;                   /* roster_base_of the expected entry */
};

/* roster_cmd_set / roster_cmd_del fill *c for encoding; user is copied, the
 * item is a shallow copy of *it (its strings borrowed): never
 * roster_cmd_clear such a c. */
void roster_cmd_set(struct roster_cmd *c, const char *user, const struct roster_item *it);
void roster_cmd_del(struct roster_cmd *c, const char *user, const char *jid);

/* roster_cmd_from_decision fills *c with the write of d (borrowed, shallow
 * as above) for user, conditional on d->base.  XE_INVAL when d writes
 * nothing. */
int roster_cmd_from_decision(struct roster_cmd *c, const char *user,
                             const struct roster_decision *d);

/* roster_cmd_encode validates c (borrowed) and encodes it: *out is returned
 * owned (free()).  0, XE_INVAL, XE_NOMEM. */
int roster_cmd_encode(const struct roster_cmd *c, unsigned char **out, size_t *len);
/* roster_cmd_decode parses len bytes at buf into *c (fields copied, owned by
 * c; release with roster_cmd_clear, also after an error).  0, XE_CORRUPT,
 * XE_INVAL, XE_NOMEM.  Never reads outside buf. */
int roster_cmd_decode(const void *buf, size_t len, struct roster_cmd *c);
/* roster_cmd_clear frees what a decoded c owns and zeroes it. */
void roster_cmd_clear(struct roster_cmd *c);
/* roster_cmd_type_of reads the type byte of an encoded entry (either
 * header version) without decoding the rest: the dispatch for cl_apply.
 * Returns the type, or -1 when buf is too short or the version unknown. */
int roster_cmd_type_of(const void *buf, size_t len);

struct roster_db;

/* roster_db_new makes an empty store (*out owned: roster_db_free).
 * 0/XE_NOMEM. */
int roster_db_new(struct roster_db **out);
void roster_db_free(struct roster_db *db); /* NULL is a no-op */
/* roster_db_get returns user's roster (borrowed, valid until db changes) or
 * NULL when the user has no entry at all. */
const struct roster *roster_db_get(const struct roster_db *db, const char *user);
size_t roster_db_user_count(const struct roster_db *db);
/* roster_db_user_at: i in [0, count), sorted by user name (strcmp). */
const char *roster_db_user_at(const struct roster_db *db, size_t i);
/* roster_db_drop_user removes user's whole roster (an account deleted:
 * USER_DEL).  0 or XE_NOTFOUND. */
int roster_db_drop_user(struct roster_db *db, const char *user);

/* roster_db_apply applies one committed entry (borrowed) to db.  Pure and
 * deterministic: 0 (applied; a DEL of an absent entry is XE_NOTFOUND, a SET
 * equal to the entry already there changes nothing and returns 0),
 * XE_STATE (the entry no longer has the command's base), XE_LIMIT (a new
 * entry beyond the bounds), XE_CORRUPT / XE_INVAL (does not
 * decode), XE_NOMEM (not deterministic: the driver must stop).  On any
 * error db is unchanged.  A user whose roster becomes empty is dropped. */
int roster_db_apply(struct roster_db *db, const void *data, size_t len);
/* roster_db_apply_cmd is roster_db_apply for a command already decoded
 * (borrowed), for cl_apply, which decodes to find the request id. */
int roster_db_apply_cmd(struct roster_db *db, const struct roster_cmd *c);

/* roster_db_snapshot_encode writes every roster: u8 version (1) | u32 n_users
 * | n x (u16 len | user | u32 n_items | n_items x item), users and items
 * sorted.  *out owned (free()).  0/XE_NOMEM. */
int roster_db_snapshot_encode(const struct roster_db *db, unsigned char **out,
                              size_t *len);
/* roster_db_snapshot_decode reads a snapshot into a new store *out (owned).
 * Strict: sorted, unique, bounded, no trailing bytes; no empty roster.
 * 0, XE_CORRUPT, XE_INVAL, XE_NOMEM; *out NULL on error. */
int roster_db_snapshot_decode(const void *buf, size_t len, struct roster_db **out);

#endif
