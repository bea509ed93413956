/* test_comp_limits.c: transcripts of the framer limits on a component
 * stream: before authentication a stanza may take
 * preauth_stanza_bytes (4 KiB by default: the handshake is all a component
 * sends, XEP-0114 §3), after it limits.max_stanza_bytes; and a stanza's
 * element tree counts against the stream's memory cap, so a stanza of
 * many tiny children is refused long before its bytes run out.  Each
 * refusal is a policy-violation stream error (RFC 6120 §4.9.3.14). */
#include "xmpp/fx.h"

static struct fx fx;

/* many_children appends <message ...> followed by <a/> until b holds n
 * bytes (no end tag). */
static void many_children(struct buf *b, size_t n)
{
    buf_puts(b, "<message from='cb1.example.com' to='cb2.example.com'>");
    while (b->len < n)
        buf_puts(b, "<a/>");
}

/* fx_in_buf feeds b in reads of at most 64 KiB, as the edge reads. */
static void fx_in_buf(struct fx *f, uint64_t conn, const struct buf *b)
{
    for (size_t off = 0; off < b->len; off += 65536) {
        size_t n = b->len - off < 65536 ? b->len - off : 65536;
        srv_conn_input(f->srv, conn, b->data + off, n, f->now);
    }
}

/* Before the handshake: a stanza past 4 KiB is refused at its 4097th byte,
 * whatever it is, and nothing of it is routed. */
static void test_preauth_oversize(void)
{
    struct buf b = {0};
    struct srv_stats st;

    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    fx_open(&fx, 1);
    fx_in(&fx, 1, FX_OPEN("cb1.example.com"));
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "cb1.example.com", NULL));
    many_children(&b, 255 * 1024);
    fx_in_buf(&fx, 1, &b);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("policy-violation"));
    CHECK_INT(fx.c[1].closes, 1);
    /* 4 KiB of <a/> are some 160 KiB as a tree: the memory cap that
     * follows from the pre-auth limit (XS_MEM_CAP(4096), 128 KiB) is what
     * refuses it, before its 4 KiB are in. */
    CHECK(fx_log_has(&fx, "n1 c1 stream error policy-violation: stanza memory limit "
                          "(component cb1.example.com, peer 127.0.0.1:40001)"));
    CHECK_STR(fx_take(&fx, 2), "");
    /* Bytes alone: a long attribute value. */
    fx_open(&fx, 4);
    fx_in(&fx, 4, FX_OPEN("cb1.example.com"));
    fx_take(&fx, 4);
    buf_reset(&b);
    buf_puts(&b, "<message v='");
    while (b.len < 255 * 1024)
        buf_puts(&b, "0123456789");
    fx_in_buf(&fx, 4, &b);
    CHECK_STR(fx_take(&fx, 4), FX_ERR("policy-violation"));
    CHECK(fx_log_has(&fx, "n1 c4 stream error policy-violation: stanza too large "
                          "(component cb1.example.com, peer 127.0.0.1:40004)"));
    /* An oversized handshake too. */
    fx_open(&fx, 3);
    fx_in(&fx, 3, FX_OPEN("cb1.example.com"));
    fx_take(&fx, 3);
    buf_reset(&b);
    buf_puts(&b, "<handshake>");
    while (b.len < 5000)
        buf_puts(&b, "0123456789");
    buf_puts(&b, "</handshake>");
    fx_in_buf(&fx, 3, &b);
    CHECK_STR(fx_take(&fx, 3), FX_ERR("policy-violation"));
    CHECK_INT(fx.c[3].closes, 1);
    srv_get_stats(fx.srv, &st);
    CHECK_INT(st.conns, 1);
    CHECK_INT(st.components, 1);
    fx_stop(&fx);
    buf_free(&b);
}

/* A stream header over the pre-auth limit is refused as well. */
static void test_preauth_header(void)
{
    struct buf b = {0};
    struct srv_config cfg;

    srv_config_default(&cfg);
    cfg.preauth_stanza_bytes = 256;
    REQUIRE(fx_start(&fx, &cfg) == 0);
    fx_open(&fx, 1);
    buf_puts(&b, "<stream:stream xmlns='jabber:component:accept' "
                 "xmlns:stream='http://etherx.jabber.org/streams' x='");
    while (b.len < 300)
        buf_puts(&b, "x");
    buf_puts(&b, "' to='cb1.example.com'>");
    fx_in_buf(&fx, 1, &b);
    CHECK_STR(fx_take(&fx, 1), fx_hdr(&fx, 1, "example.com", FX_ERR("policy-violation")));
    CHECK_INT(fx.c[1].closes, 1);
    /* Within the limit, the same component authenticates. */
    REQUIRE(fx_auth(&fx, 2, "cb1", "secret1"));
    fx_stop(&fx);
    buf_free(&b);
}

/* After the handshake the limits are the authenticated ones: a 100 KiB
 * stanza of text is routed; a stanza of 255 KiB of <a/> is refused on its
 * tree's memory, not its bytes. */
static void test_after_auth(void)
{
    struct buf b = {0}, want = {0};

    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    REQUIRE(fx_auth(&fx, 2, "cb2", "secret2"));
    buf_puts(&b, "<message from='cb1.example.com' to='cb2.example.com'><body>");
    while (b.len < 100 * 1024)
        buf_puts(&b, "0123456789abcdef");
    buf_puts(&b, "</body></message>");
    buf_puts(&want, b.data);
    fx_in_buf(&fx, 1, &b);
    CHECK(fx.c[2].out.len == want.len &&
          memcmp(fx.c[2].out.data, want.data, want.len) == 0);
    buf_reset(&fx.c[2].out);
    CHECK_INT(fx.c[1].closes, 0);
    buf_reset(&b);
    many_children(&b, 255 * 1024);
    buf_puts(&b, "</message>");
    fx_in_buf(&fx, 1, &b);
    CHECK_STR(fx_take(&fx, 1), FX_ERR("policy-violation"));
    CHECK_INT(fx.c[1].closes, 1);
    CHECK(fx_log_has(&fx, "n1 c1 stream error policy-violation: stanza memory limit "
                          "(component cb1.example.com, peer 127.0.0.1:40001)"));
    CHECK_STR(fx_take(&fx, 2), "");
    fx_stop(&fx);
    buf_free(&b);
    buf_free(&want);
}

/* At max-connections the edge asks srv to make room (srv_make_room): the
 * oldest connection that has not logged in, of any kind, is closed with
 * resource-constraint (RFC 6120 §4.9.3.17), so that idle connections,
 * renewed at each auth timeout, cannot keep every newcomer out.  A
 * session that logged in is never closed so; with none left, no room. */
static void test_make_room(void)
{
    REQUIRE(fx_start(&fx, NULL) == 0);
    REQUIRE(fx_auth(&fx, 1, "cb1", "secret1"));
    fx.now += 10;
    fx_open(&fx, 2); /* idle, the oldest of those not logged in */
    fx.now += 10;
    fx_open(&fx, 3);
    fx_in(&fx, 3, FX_OPEN("cb2.example.com"));
    CHECK_STR(fx_take(&fx, 3), fx_hdr(&fx, 3, "cb2.example.com", NULL));
    fx.now += 10;
    fx_open_kind(&fx, 4, SRV_LISTENER_CLIENT);
    CHECK(srv_make_room(fx.srv, fx.now));
    /* before its header: ours first (RFC 6120 §4.9.1.2) */
    CHECK_STR(fx_take(&fx, 2),
              fx_hdr(&fx, 2, "example.com", FX_ERR("resource-constraint")));
    CHECK_INT(fx.c[2].closes, 1);
    CHECK(srv_make_room(fx.srv, fx.now));
    CHECK_STR(fx_take(&fx, 3), FX_ERR("resource-constraint"));
    CHECK(srv_make_room(fx.srv, fx.now));
    CHECK_INT(fx.c[4].closes, 1);
    /* only cb1 is left, logged in */
    CHECK(!srv_make_room(fx.srv, fx.now));
    CHECK_INT(fx.c[1].closes, 0);
    CHECK_STR(fx_take(&fx, 1), "");
    fx_stop(&fx);
}

TL_MAIN(T(test_preauth_oversize), T(test_preauth_header), T(test_after_auth),
        T(test_make_room))
