/* test_codec.c: the Raft message codec (raft/raft_codec.h): a round trip of every
 * message type, every truncation of a valid encoding fails cleanly, lying
 * counts and flags are refused, and random or mutated bytes never crash
 * (run under ASan in CI: every decode reads from an exactly sized heap
 * buffer, so a read past the end is caught). */
#include "testlib.h"
#include "raft_codec.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static struct raft_entry ents[3];
static char data_a[] = "alpha", data_c[] = "config-ish-bytes";

static void fill_header(struct raft_message *m, enum raft_msg_type t)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    m->cluster_id = 0xC1C1C1C1C1C1C1C1ull;
    m->from = 0x1111222233334444ull;
    m->to = 7;
    m->term = 42;
}

/* sample fills m with a message of type t that uses every field. */
static void sample(struct raft_message *m, enum raft_msg_type t)
{
    struct raft_snapshot *s;

    fill_header(m, t);
    switch (t) {
    case RAFT_MSG_APPEND:
        ents[0] = (struct raft_entry){11, 40, RAFT_ENTRY_NORMAL, {data_a, 5}};
        ents[1] = (struct raft_entry){12, 41, RAFT_ENTRY_BARRIER, {NULL, 0}};
        ents[2] = (struct raft_entry){13, 42, RAFT_ENTRY_CONFIG, {data_c, 16}};
        m->u.append.prev_index = 10;
        m->u.append.prev_term = 39;
        m->u.append.commit = 9;
        m->u.append.entries = ents;
        m->u.append.n_entries = 3;
        break;
    case RAFT_MSG_APPEND_RESULT:
        m->u.append_result.rejected = true;
        m->u.append_result.last_index = 100;
        m->u.append_result.reject_index = 120;
        m->u.append_result.conflict_term = 17;
        m->u.append_result.conflict_index = 90;
        break;
    case RAFT_MSG_VOTE:
        m->u.vote.last_index = UINT64_MAX;
        m->u.vote.last_term = 41;
        m->u.vote.pre_vote = true;
        m->u.vote.transfer = true;
        break;
    case RAFT_MSG_VOTE_RESULT:
        m->u.vote_result.granted = true;
        m->u.vote_result.pre_vote = false;
        break;
    case RAFT_MSG_SNAPSHOT:
        s = &m->u.snapshot.snapshot;
        s->index = 500;
        s->term = 40;
        s->config_index = 480;
        raft_config_init(&s->config);
        raft_config_add(&s->config, 0x1111222233334444ull, "10.0.0.1:5224", RAFT_VOTER);
        raft_config_add(&s->config, 7, "10.0.0.2:5224", RAFT_VOTER);
        raft_config_add(&s->config, 9, "node-c.example:5224", RAFT_NONVOTER);
        s->data.base = data_c;
        s->data.len = sizeof data_c;
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
}

/* encode_heap encodes m into an exactly sized heap buffer (owned). */
static unsigned char *encode_heap(const struct raft_message *m, size_t *len)
{
    size_t n = codec_encoded_size(m);
    unsigned char *buf = malloc(n ? n : 1);

    if (buf == NULL || n == 0 || codec_encode(m, buf, n, len) != 0 || *len != n) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* decode_exact copies len bytes to an exactly sized heap buffer and decodes
 * them; *copy (owned) must outlive out. */
static int decode_exact(const unsigned char *p, size_t len, struct codec_msg *out,
                        unsigned char **copy)
{
    *copy = malloc(len ? len : 1);
    if (*copy == NULL)
        return RAFT_ENOMEM;
    if (len)
        memcpy(*copy, p, len);
    return codec_decode(*copy, len, out);
}

static const enum raft_msg_type all_types[] = {
    RAFT_MSG_APPEND,      RAFT_MSG_APPEND_RESULT, RAFT_MSG_VOTE,
    RAFT_MSG_VOTE_RESULT, RAFT_MSG_SNAPSHOT,      RAFT_MSG_TIMEOUT_NOW,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static void test_round_trip_every_type(void)
{
    for (size_t t = 0; t < N_TYPES; t++) {
        struct raft_message m;
        struct codec_msg d;
        unsigned char *buf, *copy, *again;
        size_t len, len2;

        sample(&m, all_types[t]);
        buf = encode_heap(&m, &len);
        REQUIRE(buf != NULL);
        REQUIRE(decode_exact(buf, len, &d, &copy) == 0);
        CHECK(d.msg.type == m.type);
        CHECK(d.msg.cluster_id == m.cluster_id && d.msg.from == m.from &&
              d.msg.to == m.to && d.msg.term == m.term);
        switch (m.type) {
        case RAFT_MSG_APPEND:
            CHECK(d.msg.u.append.prev_index == 10 && d.msg.u.append.prev_term == 39 &&
                  d.msg.u.append.commit == 9);
            REQUIRE(d.msg.u.append.n_entries == 3);
            for (int i = 0; i < 3; i++) {
                const struct raft_entry *e = &d.msg.u.append.entries[i];
                CHECK(e->index == ents[i].index && e->term == ents[i].term &&
                      e->type == ents[i].type && e->data.len == ents[i].data.len);
                CHECK(e->data.len == 0 ||
                      memcmp(e->data.base, ents[i].data.base, e->data.len) == 0);
            }
            break;
        case RAFT_MSG_APPEND_RESULT:
            CHECK(d.msg.u.append_result.rejected);
            CHECK(d.msg.u.append_result.last_index == 100 &&
                  d.msg.u.append_result.reject_index == 120 &&
                  d.msg.u.append_result.conflict_term == 17 &&
                  d.msg.u.append_result.conflict_index == 90);
            break;
        case RAFT_MSG_VOTE:
            CHECK(d.msg.u.vote.last_index == UINT64_MAX && d.msg.u.vote.last_term == 41);
            CHECK(d.msg.u.vote.pre_vote && d.msg.u.vote.transfer);
            break;
        case RAFT_MSG_VOTE_RESULT:
            CHECK(d.msg.u.vote_result.granted && !d.msg.u.vote_result.pre_vote);
            break;
        case RAFT_MSG_SNAPSHOT: {
            const struct raft_snapshot *s = &d.msg.u.snapshot.snapshot;
            CHECK(s->index == 500 && s->term == 40 && s->config_index == 480);
            CHECK(s->config.n == 3);
            CHECK_STR(s->config.members[2].address, "node-c.example:5224");
            CHECK(s->config.members[2].role == RAFT_NONVOTER);
            CHECK(s->data.len == sizeof data_c &&
                  memcmp(s->data.base, data_c, sizeof data_c) == 0);
            break;
        }
        case RAFT_MSG_TIMEOUT_NOW:
            break;
        }
        /* The encoding is canonical: re-encoding gives the same bytes. */
        again = encode_heap(&d.msg, &len2);
        CHECK(again != NULL && len2 == len && memcmp(again, buf, len) == 0);
        free(again);
        codec_msg_free(&d);
        free(copy);
        free(buf);
    }
}

static void test_heartbeat_and_empty_snapshot(void)
{
    struct raft_message m;
    struct codec_msg d;
    unsigned char *buf, *copy;
    size_t len;

    fill_header(&m, RAFT_MSG_APPEND);
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    CHECK_INT(len, CODEC_HEADER_SIZE + 28);
    REQUIRE(decode_exact(buf, len, &d, &copy) == 0);
    CHECK(d.msg.u.append.n_entries == 0 && d.msg.u.append.entries == NULL);
    codec_msg_free(&d);
    free(copy);
    free(buf);

    sample(&m, RAFT_MSG_SNAPSHOT);
    m.u.snapshot.snapshot.data.base = NULL;
    m.u.snapshot.snapshot.data.len = 0;
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    REQUIRE(decode_exact(buf, len, &d, &copy) == 0);
    CHECK(d.msg.u.snapshot.snapshot.data.len == 0);
    codec_msg_free(&d);
    free(copy);
    free(buf);
}

static void test_every_truncation_fails(void)
{
    for (size_t t = 0; t < N_TYPES; t++) {
        struct raft_message m;
        struct codec_msg d;
        unsigned char *buf, *copy, *longer;
        size_t len;

        sample(&m, all_types[t]);
        buf = encode_heap(&m, &len);
        REQUIRE(buf != NULL);
        for (size_t k = 0; k < len; k++) {
            int rc = decode_exact(buf, k, &d, &copy);
            if (rc == 0) {
                TL_FAIL_("type %d decoded from %zu of %zu bytes", (int)m.type, k, len);
                codec_msg_free(&d);
            }
            CHECK(rc == RAFT_EPROTO || rc == RAFT_ECORRUPT || rc == RAFT_ETOOBIG);
            CHECK(d.entries == NULL);
            free(copy);
        }
        /* A trailing byte is an error too. */
        longer = malloc(len + 1);
        REQUIRE(longer != NULL);
        memcpy(longer, buf, len);
        longer[len] = 0;
        CHECK_INT(codec_decode(longer, len + 1, &d), RAFT_EPROTO);
        free(longer);
        free(buf);
    }
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_lies_refused(void)
{
    struct raft_message m;
    struct codec_msg d;
    unsigned char *buf;
    size_t len;

    /* A huge entry count in a short message: refused without allocating. */
    fill_header(&m, RAFT_MSG_APPEND);
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    put_u32(buf + CODEC_HEADER_SIZE + 24, 0xFFFFFFFFu);
    CHECK_INT(codec_decode(buf, len, &d), RAFT_ETOOBIG);
    put_u32(buf + CODEC_HEADER_SIZE + 24, 1000);
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    free(buf);

    /* Wrong version, unknown type, zero sender. */
    sample(&m, RAFT_MSG_VOTE);
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    buf[0] = 2;
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    buf[0] = CODEC_VERSION;
    buf[1] = 99;
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    buf[1] = RAFT_MSG_VOTE;
    /* Unknown flag bits. */
    buf[len - 1] = 4;
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    buf[len - 1] = 1;
    CHECK_INT(codec_decode(buf, len, &d), 0);
    codec_msg_free(&d);
    memset(buf + 10, 0, 8); /* from = 0 */
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    free(buf);

    /* A boolean that is neither 0 nor 1. */
    sample(&m, RAFT_MSG_APPEND_RESULT);
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    buf[CODEC_HEADER_SIZE] = 2;
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    free(buf);

    /* Entries that do not follow prev_index, and a bad entry type. */
    sample(&m, RAFT_MSG_APPEND);
    m.u.append.prev_index = 11;
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    free(buf);
    sample(&m, RAFT_MSG_APPEND);
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    buf[CODEC_HEADER_SIZE + 28 + 16] = 9; /* type of entry 0 */
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EPROTO);
    free(buf);

    /* A snapshot whose configuration repeats a member id. */
    sample(&m, RAFT_MSG_SNAPSHOT);
    m.u.snapshot.snapshot.config.members[1].id =
        m.u.snapshot.snapshot.config.members[0].id;
    buf = encode_heap(&m, &len);
    REQUIRE(buf != NULL);
    CHECK_INT(codec_decode(buf, len, &d), RAFT_EDUPID);
    free(buf);

    /* The encoder refuses what it cannot represent. */
    unsigned char small[8];
    sample(&m, RAFT_MSG_VOTE);
    CHECK_INT(codec_encode(&m, small, sizeof small, &len), RAFT_ETOOBIG);
    m.type = (enum raft_msg_type)77;
    CHECK_INT(codec_encode(&m, small, sizeof small, &len), RAFT_EINVAL);
    CHECK_INT(codec_encoded_size(&m), 0);
}

/* check_garbage decodes len bytes at p; a success must re-encode. */
static void check_garbage(const unsigned char *p, size_t len)
{
    struct codec_msg d;
    unsigned char *copy, *again;
    size_t len2;

    if (decode_exact(p, len, &d, &copy) == 0) {
        again = encode_heap(&d.msg, &len2);
        CHECK(again != NULL);
        free(again);
        codec_msg_free(&d);
    }
    free(copy);
}

static void test_random_garbage(void)
{
    unsigned char buf[512];

    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rnd() % sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (unsigned char)rnd();
        /* Half the time, make the header plausible so the body parsers run. */
        if (len >= 2 && (i & 1)) {
            buf[0] = CODEC_VERSION;
            buf[1] = (unsigned char)(1 + rnd() % 6);
        }
        check_garbage(buf, len);
    }
}

static void test_mutated_encodings(void)
{
    for (size_t t = 0; t < N_TYPES; t++) {
        struct raft_message m;
        unsigned char *buf, *mut;
        size_t len;

        sample(&m, all_types[t]);
        buf = encode_heap(&m, &len);
        REQUIRE(buf != NULL);
        mut = malloc(len);
        REQUIRE(mut != NULL);
        for (int i = 0; i < 5000; i++) {
            memcpy(mut, buf, len);
            int flips = 1 + (int)(rnd() % 4);
            for (int f = 0; f < flips; f++) {
                size_t at = (size_t)(rnd() % len);
                mut[at] =
                    (rnd() & 1) ? (unsigned char)rnd() : (unsigned char)(mut[at] ^ 0xFF);
            }
            check_garbage(mut, len);
            check_garbage(mut, (size_t)(rnd() % len));
        }
        free(mut);
        free(buf);
    }
}

TL_MAIN(T(test_round_trip_every_type), T(test_heartbeat_and_empty_snapshot),
        T(test_every_truncation_fails), T(test_lies_refused), T(test_random_garbage),
        T(test_mutated_encodings))
