/* test_comp_robust.c: seeded random abuse of the component core: fragments
 * of valid and broken XML, flipped bytes, random chunking, clock jumps and
 * secret changes.  Checks that the core never crashes (run it under
 * ASan/UBSan), never writes to a connection it closed, closes each at most
 * once, and that every closed connection's last bytes are a stream close.
 * Seeds are 1..RUNS; a failing run prints its seed. */
#include "xmpp/fx.h"

static struct fx fx;

#define RUNS 2000

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static const char *const frags[] = {
    "<message from='cb1.example.com' to='cb2.example.com'><body>x</body></message>",
    "<message from='cb2.example.com' to='cb1.example.com' id='a'/>",
    "<iq type='get' id='p' from='cb1.example.com' to='example.com'><ping "
    "xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='get' id='d' from='cb2.example.com' to='example.com'><query "
    "xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<iq type='set' id='s' from='cb1.example.com' to='nobody.example.com'><q "
    "xmlns='x'/></iq>",
    "<presence from='cb1.example.com' to='cb2.example.com/r'/>",
    "<message from='cb9.example.com' to='cb1.example.com'/>",
    "<message to='cb1.example.com'/>",
    "<message from='cb1.example.com' to='a@b@c'/>",
    "<handshake>00</handshake>",
    "<stream:stream xmlns='jabber:component:accept' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='cb1.example.com'>",
    "</stream:stream>",
    "<!DOCTYPE x [<!ENTITY a 'b'>]>",
    "&amp;&lt;&#0;&#xD800;&unknown;",
    "<a><b><c><d><e><f><g><h><i><j><k><l><m><n><o><p><q><r><s><t><u><v><w><x><y>"
    "<z><a><b><c><d><e><f><g><h></h></g></f></e></d></c></b></a></z></y></x></w>",
    "<?pi x?><!-- c -->",
    "\xff\xfe\xc3\x28 \t\r\n",
    "<message xmlns:p='urn:p' p:from='x' from='cb1.example.com' to='cb2.example.com' "
    "xml:lang='en'><p:x/></message>",
    " ",
    "<",
    ">",
    "'\"",
};

/* one run: three connections (two authenticated), random input */
static void run(uint64_t seed)
{
    static char chunk[2048];
    struct srv_config cfg;

    rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    srv_config_default(&cfg);
    cfg.keepalive_ms = 1000;
    cfg.auth_timeout_ms = 3000;
    cfg.limits.max_stanza_bytes = 512;
    cfg.limits.max_depth = 16;
    if (fx_start(&fx, &cfg) != 0 || !fx_auth(&fx, 1, "cb1", "secret1") ||
        !fx_auth(&fx, 2, "cb2", "secret2")) {
        TL_FAIL_("seed %" PRIu64 ": setup failed", seed);
        fx_stop(&fx);
        return;
    }
    fx_open(&fx, 3);
    for (int step = 0; step < 40; step++) {
        uint32_t r = rnd() % 100;
        uint64_t conn = 1 + rnd() % 3;
        if (r < 75) {
            size_t n = 0;
            int k = 1 + (int)(rnd() % 4);
            for (int i = 0; i < k; i++) {
                const char *f = frags[rnd() % (sizeof frags / sizeof frags[0])];
                size_t fl = strlen(f);
                if (n + fl >= sizeof chunk)
                    break;
                memcpy(chunk + n, f, fl);
                n += fl;
            }
            if (n > 0 && rnd() % 4 == 0)
                chunk[rnd() % n] = (char)(rnd() & 0xff);
            for (size_t off = 0; off < n;) {
                size_t len = 1 + rnd() % 64;
                if (len > n - off)
                    len = n - off;
                srv_conn_input(fx.srv, conn, chunk + off, len, fx.now);
                off += len;
            }
        } else if (r < 90) {
            fx.now += rnd() % 1500;
            srv_tick(fx.srv, fx.now);
        } else if (r < 93) {
            srv_conn_closed(fx.srv, conn, fx.now);
        } else if (r < 96) {
            srv_set_callbridge(fx.srv, "cb2", (const unsigned char *)"other", 5);
        } else {
            srv_del_callbridge(fx.srv, "cb1");
        }
    }
    srv_shutdown(fx.srv);
    for (int i = 1; i <= 3; i++) {
        const struct buf *b = &fx.c[i].out;
        static const char end[] = "</stream:stream>";
        if (fx.c[i].closes &&
            (b->len < sizeof end - 1 ||
             memcmp(b->data + b->len - (sizeof end - 1), end, sizeof end - 1) != 0) &&
            !(b->len == 0))
            TL_FAIL_("seed %" PRIu64 ": c%d closed without a stream close", seed, i);
    }
    fx_stop(&fx);
}

static void test_random_abuse(void)
{
    int before = tl_case_failures;

    for (uint64_t seed = 1; seed <= RUNS && tl_case_failures == before; seed++)
        run(seed);
}

TL_MAIN(T(test_random_abuse))
