/* plink.h: in-memory peer links for the cluster tests (tests/unit/test_fwd.c,
 * tests/xmpp/test_cluster.c).  pl[i][j] is node i's pchan to node j, the
 * bytes i wrote toward j and not yet moved, and i's frame decoder for what j
 * wrote.  Bytes move when the test says (pl_move), in any chunking; HELLO,
 * CHAN_ACK and sequencing go through the real pchan, as on the daemon's
 * peer link (xmppd/io/peer.c).
 *
 * The including file defines PLINK_NMAX (nodes are 1..PLINK_NMAX) and its
 * clock `static uint64_t now` before the include, and after it the hooks
 * declared below: what a node is and what it
 * does with a frame that pchan lets through.  Protocol errors of any side
 * are counted in proto_errors. */
#ifndef TESTS_PLINK_H
#define TESTS_PLINK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pchan.h"
#include "pframe.h"

struct plink {
    struct pchan *ch; /* this node's channel to the peer */
    struct buf out;   /* bytes written toward the peer, not yet moved */
    struct pframe_dec in;
};

static struct plink pl[PLINK_NMAX + 1][PLINK_NMAX + 1];
static int proto_errors;
/* Channel config for pl_open (NULL: pchan defaults); a test sets it for
 * small buffers and puts it back. */
static const struct pchan_config *pl_cfg;

/* Hooks the including file defines. */
static uint64_t plink_id(int i);       /* node id of slot i */
static bool plink_alive(int i);        /* whether slot i's process runs */
static void plink_reset(int j, int i); /* j learnt that i restarted */
static int plink_input(int j, int i, const struct pframe *fr); /* j got fr */
static void plink_pump(int j); /* j's channel window opened (CHAN_ACK) */
static void plink_link(int j, int i, bool up); /* j's link to i came up / went down */
static void plink_flush(int j); /* j read what came: send what it owes (ACKs) */

/* pl_open gives node i a fresh channel (incarnation inc) to j, dropping
 * what the old one held; none to itself. */
static inline void pl_open(int i, int j, uint64_t inc)
{
    struct plink *l = &pl[i][j];

    pchan_free(l->ch);
    l->ch = NULL;
    buf_free(&l->out);
    pframe_dec_free(&l->in);
    pframe_dec_init(&l->in);
    if (j != i && pchan_new(pl_cfg, inc, &l->ch) != 0)
        abort();
}

static inline void pl_free_all(void)
{
    for (int i = 1; i <= PLINK_NMAX; i++)
        for (int j = 1; j <= PLINK_NMAX; j++) {
            pchan_free(pl[i][j].ch);
            buf_free(&pl[i][j].out);
            pframe_dec_free(&pl[i][j].in);
            memset(&pl[i][j], 0, sizeof pl[i][j]);
        }
}

/* pl_drop drops the link between i and j: what was in flight is lost. */
static inline void pl_drop(int i, int j)
{
    struct plink *a = &pl[i][j], *b = &pl[j][i];

    pchan_link_down(a->ch);
    pchan_link_down(b->ch);
    buf_reset(&a->out);
    buf_reset(&b->out);
    pframe_dec_free(&a->in);
    pframe_dec_free(&b->in);
    pframe_dec_init(&a->in);
    pframe_dec_init(&b->in);
    if (a->ch != NULL && plink_alive(i))
        plink_link(i, j, false);
    if (b->ch != NULL && plink_alive(j))
        plink_link(j, i, false);
}

static inline void pl_hello(int i, int j)
{
    struct pframe f = {.type = PFRAME_HELLO};

    f.u.hello.proto = PFRAME_PROTO;
    f.u.hello.cluster_id = 7;
    f.u.hello.node_id = plink_id(i);
    f.u.hello.addr = "127.0.0.1:5224";
    pchan_hello(pl[i][j].ch, &f.u.hello);
    if (pframe_encode(&f, &pl[i][j].out) != 0)
        abort();
}

/* pl_connect drops the link between i and j and dials again: both send
 * HELLO. */
static inline void pl_connect(int i, int j)
{
    pl_drop(i, j);
    pl_hello(i, j);
    pl_hello(j, i);
}

/* pl_frame: node j got frame fr from node i (what the edge does). */
static inline void pl_frame(int j, int i, const struct pframe *fr)
{
    struct plink *l = &pl[j][i];
    enum pchan_resume how;
    bool deliver;

    if (fr->type == PFRAME_HELLO) {
        if (pchan_link_up(l->ch, &fr->u.hello, &l->out, &how) != 0) {
            proto_errors++;
            return;
        }
        if (how == PCHAN_RESET)
            plink_reset(j, i);
        plink_link(j, i, true);
        return;
    }
    if (pchan_recv(l->ch, fr, now, &l->out, &deliver) != 0) {
        proto_errors++;
        return;
    }
    if (deliver && plink_input(j, i, fr) == XE_PROTO)
        proto_errors++;
    if (fr->type == PFRAME_CHAN_ACK)
        plink_pump(j);
}

/* pl_move moves up to n bytes written by i toward j; false when none
 * moved (nothing written, or either end is down). */
static inline bool pl_move(int i, int j, size_t n)
{
    struct plink *src = &pl[i][j], *dst = &pl[j][i];
    struct pframe fr;
    int rc;

    if (n > src->out.len)
        n = src->out.len;
    if (n == 0 || !plink_alive(i) || !plink_alive(j))
        return false;
    if (pframe_dec_feed(&dst->in, src->out.data, n) != 0)
        abort();
    buf_consume(&src->out, n);
    while ((rc = pframe_dec_next(&dst->in, &fr)) == 1) {
        pl_frame(j, i, &fr);
        pframe_release(&fr);
    }
    if (rc < 0)
        proto_errors++;
    /* The end of a read, as in the edge (peer.c hk_data). */
    plink_flush(j);
    return true;
}

#endif
