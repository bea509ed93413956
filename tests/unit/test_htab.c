/* test_htab.c: the intrusive hash table (htab.c) shared by rt.c, srv.c and
 * io/conn.c.  Where the old copies differed: conn.c failed an insert when
 * the table could not double, rt.c and srv.c kept longer chains; conn.c
 * added at a chain's front, rt.c and srv.c at its end.  The table keeps
 * rt.c's and srv.c's behaviour (an add never fails; chains keep the order
 * of adding, which srv's walks over every session follow). */
#include "testlib.h"

#include "err.h"
#include "htab.h"

struct item {
    uint64_t key;
    struct hlink link;
};

static uint64_t item_hash(const struct hlink *l)
{
    return htab_hash_u64(HTAB_ENTRY(l, const struct item, link)->key);
}

static struct item *find(const struct htab *t, uint64_t key)
{
    for (struct hlink *l = htab_head(t, htab_hash_u64(key)); l != NULL; l = l->next) {
        struct item *it = HTAB_ENTRY(l, struct item, link);
        if (it->key == key)
            return it;
    }
    return NULL;
}

static void test_add_find_del(void)
{
    struct htab t;
    struct item it[1000];

    REQUIRE(htab_init(&t, 1) == 0);
    for (size_t i = 0; i < 1000; i++) {
        it[i].key = i * 7919;
        htab_add(&t, &it[i].link, htab_hash_u64(it[i].key), item_hash);
    }
    CHECK_INT(t.count, 1000);
    CHECK(t.nb >= 1000 && (t.nb & (t.nb - 1)) == 0);
    for (size_t i = 0; i < 1000; i++)
        CHECK(find(&t, i * 7919) == &it[i]);
    CHECK(find(&t, 1) == NULL);
    for (size_t i = 0; i < 1000; i += 2)
        CHECK(htab_del(&t, &it[i].link, htab_hash_u64(it[i].key)));
    CHECK(!htab_del(&t, &it[0].link, htab_hash_u64(it[0].key)));
    CHECK_INT(t.count, 500);
    for (size_t i = 0; i < 1000; i++)
        CHECK(find(&t, i * 7919) == (i % 2 ? &it[i] : NULL));
    htab_fini(&t);
    CHECK(t.b == NULL && t.nb == 0 && t.count == 0);
}

static uint64_t same_hash(const struct hlink *l)
{
    (void)l;
    return 3;
}

/* One chain keeps the order of adding, and a removal in its middle keeps
 * the rest in order. */
static void test_chain_order(void)
{
    struct htab t;
    struct item it[5];
    size_t n = 0;

    REQUIRE(htab_init(&t, 64) == 0);
    for (size_t i = 0; i < 5; i++) {
        it[i].key = i;
        htab_add(&t, &it[i].link, 3, same_hash);
    }
    CHECK(htab_del(&t, &it[2].link, 3));
    for (struct hlink *l = htab_head(&t, 3); l != NULL; l = l->next, n++) {
        static const uint64_t want[] = {0, 1, 3, 4};
        CHECK(n < 4 && HTAB_ENTRY(l, struct item, link)->key == want[n]);
    }
    CHECK_INT(n, 4);
    htab_fini(&t);
}

/* An entry added to a table that could not be made is not lost silently:
 * the caller saw XE_NOMEM from htab_init; add and del are harmless. */
static void test_no_buckets(void)
{
    struct htab t = {0};
    struct item it = {1, {NULL}};

    htab_add(&t, &it.link, 1, item_hash);
    CHECK(htab_head(&t, 1) == NULL);
    CHECK(!htab_del(&t, &it.link, 1));
    CHECK_INT(t.count, 0);
}

static size_t released;

static void count_release(struct hlink *l)
{
    released += HTAB_ENTRY(l, struct item, link)->key;
}

/* htab_release hands every entry over once, then frees the buckets. */
static void test_release(void)
{
    struct htab t;
    struct item it[100];

    REQUIRE(htab_init(&t, 4) == 0);
    for (size_t i = 0; i < 100; i++) {
        it[i].key = i + 1;
        htab_add(&t, &it[i].link, htab_hash_u64(it[i].key), item_hash);
    }
    released = 0;
    htab_release(&t, count_release);
    CHECK_INT(released, 5050);
    CHECK(t.b == NULL && t.nb == 0 && t.count == 0);
}

static void test_hashes(void)
{
    CHECK(htab_hash_str("") == 14695981039346656037ULL);
    CHECK(htab_hash_str("a") != htab_hash_str("b"));
    /* A key that is part of a string (fwd_route.c: a JID's bare part). */
    CHECK(htab_hash_mem("a@b/r", 3) == htab_hash_str("a@b"));
    CHECK(htab_hash_mem("a@b", 3) == htab_hash_str("a@b"));
    CHECK(htab_hash_mem("", 0) == htab_hash_str(""));
    CHECK(htab_hash_u64(1) != htab_hash_u64(2));
    /* A key of several pieces (node_drain.c) hashes as their concatenation. */
    CHECK(htab_hash_more(HTAB_HASH_INIT, "", 0) == htab_hash_str(""));
    CHECK(htab_hash_more(htab_hash_mem("a@", 2), "b/r", 3) == htab_hash_str("a@b/r"));
    CHECK(htab_hash_more(htab_hash_str("ab"), "", 1) != htab_hash_str("ab"));
}

TL_MAIN(T(test_add_find_del), T(test_chain_order), T(test_no_buckets), T(test_release),
        T(test_hashes))
