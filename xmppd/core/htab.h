/* htab.h: the intrusive chained hash table of the core and the edge (rt.c:
 * component domains; srv.c: sessions by connection id; fwd_route.c: the
 * cluster routing table; io/conn.c: connections by id).  An entry embeds a struct hlink;
 * the table owns only its bucket array, never the entries.  The caller hashes its key
 * (htab_hash_u64, htab_hash_str) and compares keys itself, so the table
 * knows nothing of them.
 *
 * Buckets are a power of two and double when the entries outnumber them;
 * a doubling that finds no memory keeps the longer chains (still correct),
 * so adding never fails.  A chain keeps the order entries were added in,
 * and a walk over the buckets in index order is deterministic for a given
 * sequence of adds and removals (transcript tests rely on it). */
#ifndef XMPPD_HTAB_H
#define XMPPD_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hlink {
    struct hlink *next; /* the chain; NULL at its end */
};

struct htab {
    struct hlink **b; /* owned: nb chain heads */
    size_t nb;        /* a power of two */
    size_t count;     /* entries */
};

/* HTAB_ENTRY returns the entry (of type type) whose member is the hlink l. */
#define HTAB_ENTRY(l, type, member) ((type *)(void *)((char *)(l)-offsetof(type, member)))

/* htab_hash_fn returns the hash an entry was added with (htab_add needs it
 * to move entries when the table doubles). */
typedef uint64_t (*htab_hash_fn)(const struct hlink *l);

/* htab_init makes t an empty table of nb buckets (a power of two, >= 1).
 * 0 or XE_NOMEM (t is then empty with no buckets; htab_fini is safe). */
int htab_init(struct htab *t, size_t nb);

/* htab_fini frees t's buckets (not the entries) and zeroes t. */
void htab_fini(struct htab *t);

/* htab_release calls release (may be NULL) on every entry, which may free
 * it, then frees t's buckets as htab_fini does. */
void htab_release(struct htab *t, void (*release)(struct hlink *l));

/* htab_head returns the first link of the chain that hash h falls in (NULL
 * when empty): walk it with ->next and compare keys. */
struct hlink *htab_head(const struct htab *t, uint64_t h);

/* htab_add appends l (borrowed: it must stay until removed) with hash h at
 * the end of its chain, and doubles the buckets when count exceeds them,
 * rehashing each entry with hash.  l must not be in a table. */
void htab_add(struct htab *t, struct hlink *l, uint64_t h, htab_hash_fn hash);

/* htab_del unlinks l, added with hash h; true when it was in t. */
bool htab_del(struct htab *t, struct hlink *l, uint64_t h);

/* htab_hash_u64 spreads an integer key (Fibonacci hashing). */
uint64_t htab_hash_u64(uint64_t key);

/* htab_hash_str hashes a NUL-terminated string (FNV-1a, 64 bits);
 * htab_hash_mem the len bytes at p the same way (a key that is part of a
 * string: htab_hash_mem(s, strlen(s)) == htab_hash_str(s)). */
uint64_t htab_hash_str(const char *s);
uint64_t htab_hash_mem(const void *p, size_t len);

/* htab_hash_more goes on hashing len more bytes at p from h, a value
 * htab_hash_mem returned (or HTAB_HASH_INIT, the hash of no bytes): a key
 * made of several pieces hashes as their concatenation. */
#define HTAB_HASH_INIT 14695981039346656037ULL
uint64_t htab_hash_more(uint64_t h, const void *p, size_t len);

#endif
