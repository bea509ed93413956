/* test_loginbench_seq.c: the load tool's accounting of numbered messages:
 * in order, duplicated, overtaken, never sent, and past the first bitmap. */
#include "loginbench.h"
#include "testlib.h"

static void test_in_order(void)
{
    struct lb_seq s = {0};
    for (uint64_t i = 0; i < 10; i++)
        CHECK(lb_seq_note(&s, i, 10) == LB_SEQ_NEW);
    CHECK(s.unique == 10 && s.dups == 0 && s.ooo == 0);
    lb_seq_free(&s);
}

static void test_dup_and_reorder(void)
{
    struct lb_seq s = {0};
    CHECK(lb_seq_note(&s, 0, 5) == LB_SEQ_NEW);
    CHECK(lb_seq_note(&s, 2, 5) == LB_SEQ_NEW); /* 1 is late (or lost) */
    CHECK(lb_seq_note(&s, 1, 5) == LB_SEQ_OOO);
    CHECK(lb_seq_note(&s, 2, 5) == LB_SEQ_DUP);
    CHECK(lb_seq_note(&s, 0, 5) == LB_SEQ_DUP);
    CHECK(lb_seq_note(&s, 3, 5) == LB_SEQ_NEW);
    CHECK(s.unique == 4 && s.dups == 2 && s.ooo == 1);
    /* sent 5, 4 distinct arrived: one lost (4) */
    CHECK(5 - s.unique == 1);
    lb_seq_free(&s);
}

static void test_bad_and_growth(void)
{
    struct lb_seq s = {0};
    CHECK(lb_seq_note(&s, 7, 7) == LB_SEQ_BAD);
    CHECK(s.unique == 0);
    CHECK(lb_seq_note(&s, 100000, 100001) == LB_SEQ_NEW);
    CHECK(lb_seq_note(&s, 5, 100001) == LB_SEQ_OOO);
    CHECK(lb_seq_note(&s, 100000, 100001) == LB_SEQ_DUP);
    CHECK(lb_seq_note(&s, 99999, 100001) == LB_SEQ_OOO);
    CHECK(s.unique == 3 && s.dups == 1 && s.ooo == 2);
    lb_seq_free(&s);
    CHECK(lb_seq_note(&s, 0, 1) == LB_SEQ_NEW);
    lb_seq_free(&s);
}

TL_MAIN(T(test_in_order), T(test_dup_and_reorder), T(test_bad_and_growth))
