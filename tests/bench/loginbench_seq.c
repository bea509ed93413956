/* loginbench_seq.c: losses, duplicates and reordering of numbered messages
 * (contract in loginbench.h). */
#include "loginbench.h"

#include <stdlib.h>
#include <string.h>

enum lb_seq_kind lb_seq_note(struct lb_seq *s, uint64_t seq, uint64_t sent)
{
    if (seq >= sent)
        return LB_SEQ_BAD;
    if (seq >= s->cap) {
        uint64_t cap = s->cap ? s->cap : 4096;
        while (cap <= seq)
            cap *= 2;
        unsigned char *nb = realloc(s->seen, cap / 8);
        if (nb == NULL)
            return LB_SEQ_BAD;
        memset(nb + s->cap / 8, 0, (cap - s->cap) / 8);
        s->seen = nb;
        s->cap = cap;
    }
    unsigned char bit = (unsigned char)(1u << (seq & 7));
    if (s->seen[seq / 8] & bit) {
        s->dups++;
        return LB_SEQ_DUP;
    }
    s->seen[seq / 8] |= bit;
    s->unique++;
    if (seq + 1 < s->top) {
        s->ooo++;
        return LB_SEQ_OOO;
    }
    s->top = seq + 1;
    return LB_SEQ_NEW;
}

void lb_seq_free(struct lb_seq *s)
{
    free(s->seen);
    memset(s, 0, sizeof(*s));
}
