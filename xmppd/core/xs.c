/* xs.c: the XML stream framer: expat in, stream events out (RFC 6120 §4).
 *
 * One expat parser per stream, with namespace processing.  Handlers build
 * the current top-level element as a struct stz tree and queue an event when
 * it completes.  Limits are enforced as bytes arrive: xs_feed hands expat no
 * more bytes than the current unit (the stream header, or one top-level
 * element) may still take, so expat's buffer and our tree stay bounded by
 * max_stanza_bytes even when a peer sends one endless token.  expat's own
 * allocations and the trees built from what it reports are counted against
 * one cap (max_mem_bytes): a stanza within its byte limit can still cost
 * 40 times its bytes as a tree of tiny elements.
 *
 * CPU: expat (before 2.6) rescans an unfinished token from its start on
 * every call, so a tag trickled in one byte at a time costs O(n^2).  xs_feed
 * therefore holds bytes back while expat sits in a long unfinished token,
 * until the held bytes could end that token (a small scanner tracks tags,
 * quotes, comments, PIs and CDATA sections just enough to know) or until
 * they are as many as expat already holds: each rescan then at least doubles
 * the data, O(n log n) in all, and no complete token is ever delayed.  The
 * price: an error expat would find in the middle of such a token (a bad
 * byte) shows only when later bytes release the held ones.
 *
 * Memory of idle streams: an expat parser holds some 10 KiB (its string
 * pools, hash tables and input buffer) even between stanzas, which is most
 * of what an idle connection costs (docs/benchmarks.md, "Clients").  So when
 * a feed ends exactly between top-level elements (nothing unfinished in
 * expat, nothing held, no element being built) the parser is freed ("parked").
 * The next feed makes a new one and first hands it the stream header's start
 * tag again (its bytes, kept when the root was parsed), marked so that it
 * yields no event: what follows parses in the same namespace context, and
 * </stream:stream> matches its start tag as before.  Offsets (fed, unit_start,
 * progress) count from the new parser's start.
 *
 * Received bytes: a top-level element that declares no namespace
 * of its own, is in the stream's default namespace, and uses no prefix that
 * the root declared (the root may declare only prefixes of the streams
 * namespace, and no element or attribute inside may be in it) stands alone
 * in any stream with a content namespace: its bytes, collected as expat
 * reads them, go with its tree (struct stz's raw) and the router writes
 * them as they came instead of serialising the tree again.  The bytes
 * being collected take at most max_stanza_bytes beyond the cap below.
 *
 * Lazy trees (the tree was 9,000 of 29,000 instructions per
 * stanza): of a top-level element whose bytes are collected, only the
 * element itself and its attributes are built, which is all routing reads;
 * its children are built from its bytes when something first asks for them
 * (stz_expand, stz_lazy.c).  expat still checks every byte, and the limits
 * hold as before: depth and attributes are counted as the children go by,
 * and each child and piece of text is charged to the memory cap as what its
 * tree would cost (stz_node_mem), so the same stanzas fail the cap.  A
 * child in the streams namespace (its prefix is the stream header's) makes
 * the bytes not stand alone: the children are then built at the element's
 * end, from its bytes in the context of the stream header (roottag).
 *
 * Hash salt: expat salts its hash tables against collision flooding
 * (CVE-2012-0876) with fresh random bytes for every parser it makes, one
 * getrandom system call each, and a parked stream makes a parser per burst
 * (some ten per login).  A session's stream is given a salt once
 * (xs_new_salted; sess.c draws it through the edge's env.random, the core
 * reading no randomness itself) and gives it to every parser it makes
 * (XML_SetHashSalt): as unguessable to the peer, without the system calls
 * (docs/benchmarks.md, "CPU per login"). */
#include "xs.h"

#include <assert.h>
#include <limits.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>

#include "err.h"

/* expat reports qualified names as "uri<SEP>local".  A C0 control cannot
 * occur in XML 1.0 names or URIs, not even as a character reference, so it
 * cannot be confused with content (expat >= 2.4.5 also rejects namespace
 * URIs that contain the separator). */
#define XS_NS_SEP '\x01'

/* Unfinished tokens up to this size are rescanned without deferral. */
#define XS_DEFER_MIN 1024

/* States of the token-end scanner (see the top of the file). */
enum xs_scan {
    XS_SCAN_TEXT,
    XS_SCAN_LT,        /* after '<' */
    XS_SCAN_TAG,       /* in a start or end tag */
    XS_SCAN_SQ,        /* in a '...' attribute value */
    XS_SCAN_DQ,        /* in a "..." attribute value */
    XS_SCAN_BANG,      /* after "<!", matching "[CDATA[" (scan_k bytes so far) */
    XS_SCAN_BANG_DASH, /* after "<!-" */
    XS_SCAN_COMMENT,   /* until "-->" */
    XS_SCAN_CDATA,     /* until "]]>" */
    XS_SCAN_PI,        /* until "?>" */
    XS_SCAN_DECL,      /* other "<!...": until any '>' */
};

struct xs_mem {
    size_t cur, peak;       /* expat's allocations */
    size_t tree, tree_peak; /* trees built and not pulled (stz_node_mem) */
    size_t cap;             /* on cur + tree */
    bool over;              /* an allocation was refused because of cap */
};

struct xs_evnode {
    struct xs_event ev;
    size_t mem; /* what ev.el was counted as in mem.tree */
    struct xs_evnode *next;
};

struct xs {
    struct xs_limits lim;
    XML_Parser p;
    struct xs_mem mem;
    long long fed;        /* bytes handed to this parser */
    long long unit_start; /* parser offset where the current unit began */
    long long progress;   /* parser offset where the last expat event ended */
    struct buf hold;      /* bytes received but deferred (see top of file) */
    enum xs_scan scan;    /* token-end scanner over received bytes */
    unsigned scan_k;
    unsigned char prev1, prev2; /* the last two bytes scanned in this state */
    unsigned level;             /* open elements, the stream root included */
    unsigned ns_decls;          /* xmlns declarations seen for the next start tag */
    bool opened;                /* the stream header was received */
    bool parked;                /* p was freed between elements (see top) */
    bool resuming;              /* p is parsing our own header (see top) */
    struct buf roottag;         /* the root's start tag as received (see top) */
    char *default_ns;           /* default namespace declared on the root, or NULL */
    struct stz *top;            /* the top-level element being built, or NULL */
    struct stz *cur;            /* innermost open element of top */
    size_t top_mem;             /* what top was counted as in mem.tree */
    struct xs_evnode *head, *tail;
    /* received bytes of top (see the top of the file) */
    const char *chunk;    /* the bytes expat is parsing now */
    long long chunk_off;  /* their parser offset */
    bool raw_ok;          /* top's bytes are being collected */
    bool raw_alone;       /* ... and they stand alone (raw) */
    bool lazy;            /* top's children are not built (see top of file) */
    bool lazy_kids;       /* ... and it has some */
    bool eager;           /* xs_set_eager */
    size_t lazy_text;     /* length of the open element's last text, or 0 */
    bool root_prefixed;   /* the root declared a prefix outside the streams ns */
    long long raw_start;  /* parser offset where top began */
    long long raw_next;   /* parser offset of the next byte to collect */
    struct buf raw;       /* top's bytes collected from earlier chunks */
    unsigned long salt;   /* expat's hash salt for every parser of this xs */
    bool done;            /* an ERROR or CLOSE is decided */
    bool term_pending;    /* term not yet pulled */
    struct xs_event term; /* the final ERROR or CLOSE event */
};

static const char *const xs_cond_names[] = {
#define XS_COND_STR_(name, str) str,
    XS_CONDS(XS_COND_STR_)
#undef XS_COND_STR_
};

const char *xs_cond_name(enum xs_cond cond)
{
    if ((unsigned)cond >= XS_COND_COUNT)
        return "undefined-condition";
    return xs_cond_names[cond];
}

void xs_limits_default(struct xs_limits *l)
{
    l->max_stanza_bytes = 256 * 1024;
    l->max_depth = 32;
    l->max_attrs = 64;
    l->max_mem_bytes = 0;
}

/* ---- expat memory accounting ------------------------------------------- */

/* expat's allocator has no user pointer, so the framer being driven is set
 * around every expat call that may allocate; each block remembers its
 * account, so frees are charged correctly whoever triggers them. */
static _Thread_local struct xs_mem *xs__mem_current;

union xs_memhdr {
    max_align_t align;
    struct {
        struct xs_mem *acct;
        size_t size;
    } h;
};

/* xs__room is what may still be allocated under m's cap. */
static size_t xs__room(const struct xs_mem *m)
{
    return m->cur + m->tree < m->cap ? m->cap - m->cur - m->tree : 0;
}

static void *xs__malloc(size_t n)
{
    struct xs_mem *m = xs__mem_current;
    union xs_memhdr *h;

    if (n > SIZE_MAX - sizeof *h)
        return NULL;
    if (m != NULL && n > xs__room(m)) {
        m->over = true;
        return NULL;
    }
    h = malloc(sizeof *h + n);
    if (h == NULL)
        return NULL;
    h->h.acct = m;
    h->h.size = n;
    if (m != NULL) {
        m->cur += n;
        if (m->cur > m->peak)
            m->peak = m->cur;
    }
    return h + 1;
}

static void xs__free(void *ptr)
{
    union xs_memhdr *h;

    if (ptr == NULL)
        return;
    h = (union xs_memhdr *)ptr - 1;
    if (h->h.acct != NULL)
        h->h.acct->cur -= h->h.size;
    free(h);
}

static void *xs__realloc(void *ptr, size_t n)
{
    union xs_memhdr *h, *nh;
    struct xs_mem *m;

    if (ptr == NULL)
        return xs__malloc(n);
    h = (union xs_memhdr *)ptr - 1;
    m = h->h.acct;
    if (n > SIZE_MAX - sizeof *h)
        return NULL;
    if (m != NULL && n > h->h.size && n - h->h.size > xs__room(m)) {
        m->over = true;
        return NULL;
    }
    nh = realloc(h, sizeof *nh + n);
    if (nh == NULL)
        return NULL;
    if (m != NULL) {
        m->cur = m->cur - nh->h.size + n;
        if (m->cur > m->peak)
            m->peak = m->cur;
    }
    nh->h.size = n;
    return nh + 1;
}

static const XML_Memory_Handling_Suite xs__mm = {xs__malloc, xs__realloc, xs__free};

void xs_parser_mem(const struct xs *xs, size_t *cur, size_t *peak)
{
    if (cur != NULL)
        *cur = xs->mem.cur;
    if (peak != NULL)
        *peak = xs->mem.peak;
}

void xs_tree_mem(const struct xs *xs, size_t *cur, size_t *peak)
{
    if (cur != NULL)
        *cur = xs->mem.tree;
    if (peak != NULL)
        *peak = xs->mem.tree_peak;
}

/* ---- events ------------------------------------------------------------ */

static void xs__stop(struct xs *xs)
{
    if (xs->p != NULL) /* NULL: a parked stream's parser could not be made */
        XML_StopParser(xs->p, XML_FALSE);
}

/* xs__fail decides the stream's end with an error (the first one wins),
 * drops the element being built and stops expat. */
static void xs__fail(struct xs *xs, enum xs_cond cond, const char *text)
{
    if (xs->done)
        return;
    xs->done = true;
    xs->term_pending = true;
    xs->term.kind = XS_EV_ERROR;
    xs->term.el = NULL;
    xs->term.cond = cond;
    xs->term.text = text;
    stz_free(xs->top);
    xs->top = xs->cur = NULL;
    xs->mem.tree -= xs->top_mem;
    xs->top_mem = 0;
    xs->raw_ok = xs->lazy = false;
    buf_free(&xs->raw);
    xs__stop(xs);
}

static void xs__nomem(struct xs *xs)
{
    /* RFC 6120 §4.9.3.17: the server lacks the resources to serve the
     * stream. */
    xs__fail(xs, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
}

/* xs__charge counts n more bytes of tree and fails the stream when the
 * stream's memory is over its cap.  Returns false then. */
static bool xs__charge(struct xs *xs, size_t n)
{
    xs->mem.tree += n;
    if (xs->mem.tree > xs->mem.tree_peak)
        xs->mem.tree_peak = xs->mem.tree;
    if (xs->mem.cur + xs->mem.tree <= xs->mem.cap)
        return true;
    /* RFC 6120 §4.9.3.14: a local policy (the memory of one stream) was
     * violated; the tree is dropped at once. */
    xs__fail(xs, XS_COND_POLICY_VIOLATION, "stanza memory limit");
    return false;
}

/* xs__push queues an event carrying el (taken; freed on failure), counted
 * as mem bytes in mem.tree (released when it is pulled). */
static void xs__push(struct xs *xs, enum xs_event_kind kind, struct stz *el, size_t mem)
{
    struct xs_evnode *n = calloc(1, sizeof *n);

    if (n == NULL) {
        stz_free(el);
        xs->mem.tree -= mem;
        xs__nomem(xs);
        return;
    }
    n->ev.kind = kind;
    n->ev.el = el;
    n->mem = mem;
    if (xs->tail != NULL)
        xs->tail->next = n;
    else
        xs->head = n;
    xs->tail = n;
}

static void xs__drop_queue(struct xs *xs)
{
    struct xs_evnode *n = xs->head, *next;

    while (n != NULL) {
        next = n->next;
        stz_free(n->ev.el);
        xs->mem.tree -= n->mem;
        free(n);
        n = next;
    }
    xs->head = xs->tail = NULL;
}

bool xs_next(struct xs *xs, struct xs_event *ev)
{
    struct xs_evnode *n = xs->head;

    if (n != NULL) {
        xs->head = n->next;
        if (xs->head == NULL)
            xs->tail = NULL;
        *ev = n->ev;
        xs->mem.tree -= n->mem; /* the receiver owns it now */
        free(n);
        return true;
    }
    if (xs->term_pending) {
        xs->term_pending = false;
        *ev = xs->term;
        return true;
    }
    return false;
}

/* ---- expat handlers ---------------------------------------------------- */

/* xs__unit_end marks the end of the current expat event as the start of the
 * next unit (after the stream header, a top-level element, or whitespace). */
static void xs__unit_end(struct xs *xs)
{
    xs->unit_start = XML_GetCurrentByteIndex(xs->p) + XML_GetCurrentByteCount(xs->p);
}

/* xs__progress notes that expat got as far as the end of the current event. */
static void xs__progress(struct xs *xs)
{
    xs->progress = XML_GetCurrentByteIndex(xs->p) + XML_GetCurrentByteCount(xs->p);
}

/* xs__split splits an expat name "uri<SEP>local" into an owned copy of the
 * URI (*ns, NULL when unqualified) and a borrowed local name.  0/XE_NOMEM. */
static int xs__split(const char *qname, char **ns, const char **local)
{
    const char *sep = strchr(qname, XS_NS_SEP);

    *ns = NULL;
    *local = qname;
    if (sep == NULL)
        return 0;
    *ns = strndup(qname, (size_t)(sep - qname));
    if (*ns == NULL)
        return XE_NOMEM;
    *local = sep + 1;
    return 0;
}

/* xs__name_in splits expat name qname ("uri<SEP>local" or "local") into
 * the pointers and lengths of its namespace (NULL when unqualified) and
 * local name, without copying. */
static void xs__name_in(const char *qname, const char **ns, size_t *ns_len,
                        const char **local, size_t *local_len)
{
    const char *sep = strchr(qname, XS_NS_SEP);

    *ns = NULL;
    *ns_len = 0;
    *local = qname;
    if (sep != NULL) {
        *ns = qname;
        *ns_len = (size_t)(sep - qname);
        *local = sep + 1;
    }
    *local_len = strlen(*local);
}

/* XS_INIT_ATTRS: start tags with up to this many attributes (every stanza
 * in practice) become one allocation (stz_new_init); more take one per
 * string. */
#define XS_INIT_ATTRS 16

/* xs__element makes the stz element for an expat start tag. */
static struct stz *xs__element(const char *qname, const char **atts)
{
    struct stz *el = NULL;
    const char *local;
    char *ns;
    size_t n;

    for (n = 0; atts[n] != NULL; n += 2)
        ;
    if (n / 2 <= XS_INIT_ATTRS) {
        struct stz_init_attr a[XS_INIT_ATTRS];
        const char *ens;
        size_t ens_len, local_len;

        for (size_t i = 0; i < n / 2; i++) {
            xs__name_in(atts[2 * i], &a[i].ns, &a[i].ns_len, &a[i].name, &a[i].name_len);
            a[i].value = atts[2 * i + 1];
            a[i].value_len = strlen(a[i].value);
        }
        xs__name_in(qname, &ens, &ens_len, &local, &local_len);
        return stz_new_init(local, local_len, ens, ens_len, a, n / 2);
    }
    if (xs__split(qname, &ns, &local) != 0)
        return NULL;
    el = stz_new(local, ns);
    free(ns);
    if (el == NULL)
        return NULL;
    /* one array for all (a realloc per attribute showed) */
    if (stz_reserve_attrs(el, n / 2) != 0)
        goto err;
    for (size_t i = 0; atts[i] != NULL; i += 2) {
        int rv;

        if (xs__split(atts[i], &ns, &local) != 0)
            goto err;
        rv = stz_set_attr_ns(el, ns, local, atts[i + 1]);
        free(ns);
        if (rv != 0)
            goto err;
    }
    return el;
err:
    stz_free(el);
    return NULL;
}

/* xs__keep_root copies the stream header's start tag, as received, for a
 * later resume (see the top of the file).  When expat cannot show it, the
 * copy stays empty and the stream is never parked. */
static void xs__keep_root(struct xs *xs)
{
    int off = 0, size = 0, n = XML_GetCurrentByteCount(xs->p);
    const char *ctx = XML_GetInputContext(xs->p, &off, &size);

    buf_free(&xs->roottag);
    if (ctx != NULL && n > 0 && off >= 0 && off + n <= size &&
        buf_append(&xs->roottag, ctx + off, (size_t)n) != 0)
        buf_free(&xs->roottag);
}

static void xs__on_root(struct xs *xs, const char *qname, const char **atts)
{
    struct stz *el;
    size_t mem;

    /* RFC 6120 §4.8.1: the root is <stream> in the streams namespace; any
     * other is invalid-namespace (§4.9.3.10). */
    if (strncmp(qname, STZ_NS_STREAMS, strlen(STZ_NS_STREAMS)) != 0 ||
        strcmp(qname + strlen(STZ_NS_STREAMS), "\x01stream") != 0) {
        xs__fail(xs, XS_COND_INVALID_NAMESPACE,
                 "the stream root must be {http://etherx.jabber.org/streams}stream");
        return;
    }
    el = xs__element(qname, atts);
    if (el == NULL || (xs->default_ns && stz_set_attr(el, "xmlns", xs->default_ns))) {
        stz_free(el);
        xs__nomem(xs);
        return;
    }
    mem = stz_node_mem(el);
    if (!xs__charge(xs, mem)) {
        xs->mem.tree -= mem;
        stz_free(el);
        return;
    }
    xs->opened = true;
    xs__keep_root(xs);
    xs__unit_end(xs);
    xs__push(xs, XS_EV_OPEN, el, mem);
}

/* xs__in_streams tells whether expat name qname is in the streams
 * namespace. */
static bool xs__in_streams(const char *qname)
{
    static const char pre[] = STZ_NS_STREAMS "\x01";

    return qname[0] == 'h' && strncmp(qname, pre, sizeof pre - 1) == 0;
}

/* xs__raw_streams tells whether an element inside a stanza, or one of its
 * attributes, is in the streams namespace: its prefix is the root's, so
 * its bytes do not stand alone. */
static bool xs__raw_streams(const char *qname, const char **atts)
{
    if (xs__in_streams(qname))
        return true;
    for (size_t i = 0; atts[i] != NULL; i += 2)
        if (xs__in_streams(atts[i]))
            return true;
    return false;
}

/* xs__raw_begin decides at the start tag of a top-level element (ns_decls
 * namespace declarations on it) whether its bytes are collected (see the
 * top of the file). */
static void xs__raw_begin(struct xs *xs, const char *qname, const char **atts,
                          unsigned ns_decls)
{
    size_t dlen;

    buf_reset(&xs->raw);
    xs->raw_ok = false;
    if (ns_decls != 0 || xs->root_prefixed || xs->default_ns == NULL || xs->resuming)
        return;
    /* only the content namespaces count as one another (stz_serialize) */
    if (strcmp(xs->default_ns, STZ_NS_COMPONENT) != 0 &&
        strcmp(xs->default_ns, STZ_NS_CLIENT) != 0 &&
        strcmp(xs->default_ns, STZ_NS_SERVER) != 0)
        return;
    dlen = strlen(xs->default_ns);
    if (strncmp(qname, xs->default_ns, dlen) != 0 || qname[dlen] != XS_NS_SEP ||
        xs__raw_streams(qname, atts))
        return;
    xs->raw_start = xs->raw_next = XML_GetCurrentByteIndex(xs->p);
    if (xs->raw_start < xs->chunk_off) {
        /* The start tag began in an earlier chunk: expat holds the whole
         * token, with what came before it, in its buffer. */
        int off = 0, size = 0;
        const char *ctx = XML_GetInputContext(xs->p, &off, &size);
        long long n = xs->chunk_off - xs->raw_start;

        if (ctx == NULL || off < 0 || n > XML_GetCurrentByteCount(xs->p) ||
            off + XML_GetCurrentByteCount(xs->p) > size ||
            buf_append(&xs->raw, ctx + off, (size_t)n) != 0)
            return; /* not collected: the tree is serialised as before */
        xs->raw_next = xs->chunk_off;
    }
    xs->raw_ok = xs->raw_alone = true;
    /* the roottag gives a context should the bytes not stand alone */
    xs->lazy = !xs->eager && xs->roottag.len != 0;
    xs->lazy_kids = false;
    xs->lazy_text = 0;
}

/* xs__raw_collect appends the bytes of the current chunk from raw_next up
 * to parser offset end to xs->raw.  0/XE_NOMEM. */
static int xs__raw_collect(struct xs *xs, long long end)
{
    int rc = 0;

    assert(xs->raw_next >= xs->chunk_off && end >= xs->raw_next);
    if (end > xs->raw_next)
        rc = buf_append(&xs->raw, xs->chunk + (xs->raw_next - xs->chunk_off),
                        (size_t)(end - xs->raw_next));
    xs->raw_next = end;
    return rc;
}

/* xs__raw_end gives the top-level element el, just completed, its bytes and
 * adds their memory to *mem.  0/XE_NOMEM. */
static int xs__raw_end(struct xs *xs, struct stz *el, size_t *mem)
{
    long long end = XML_GetCurrentByteIndex(xs->p) + XML_GetCurrentByteCount(xs->p);
    size_t add;
    int rc;

    assert(el->raw == NULL && !stz_is_lazy(el));
    xs->raw_ok = false;
    if (xs->raw.len == 0) {
        /* the whole element came in this chunk: one copy */
        rc = stz_set_raw(el, xs->chunk + (xs->raw_start - xs->chunk_off),
                         (size_t)(end - xs->raw_start));
    } else {
        size_t len;

        rc = xs__raw_collect(xs, end);
        len = xs->raw.len;
        if (rc == 0)
            stz_take_raw(el, buf_steal(&xs->raw), len);
        buf_free(&xs->raw);
    }
    if (rc != 0)
        return rc;
    /* what the bytes add to stz_node_mem(el) (the profile's stz_node_mem
     * was 500 instructions a stanza when computed again here) */
    add = stz_mem_block(el->raw_len + 1);
    *mem += add;
    xs->mem.tree += add;
    if (xs->mem.tree > xs->mem.tree_peak)
        xs->mem.tree_peak = xs->mem.tree;
    return 0;
}

/* xs__name_mem is what the tree spends on the name of expat name qname:
 * the local name, and the namespace ("" when none, see xs__split). */
static size_t xs__name_mem(const char *qname, bool element)
{
    const char *sep = strchr(qname, XS_NS_SEP);

    if (sep == NULL)
        return stz_mem_block(strlen(qname) + 1) + (element ? stz_mem_block(1) : 0);
    return stz_mem_block((size_t)(sep - qname) + 1) + stz_mem_block(strlen(sep + 1) + 1);
}

/* xs__lazy_elem takes note of a child of a lazy top-level element: charged
 * as the tree that stz_expand will build for it (stz_node_mem). */
static void xs__lazy_elem(struct xs *xs, const char *qname, const char **atts,
                          size_t nattrs)
{
    size_t mem = stz_mem_block(sizeof(struct stz)) + xs__name_mem(qname, true);

    if (nattrs > 0)
        mem += stz_mem_block(nattrs * sizeof(struct stz_attr));
    for (size_t i = 0; atts[i] != NULL; i += 2)
        mem += xs__name_mem(atts[i], false) + stz_mem_block(strlen(atts[i + 1]) + 1);
    xs->lazy_kids = true;
    xs->lazy_text = 0;
    xs->top_mem += mem;
    xs__charge(xs, mem); /* over the cap: the stream failed */
}

/* xs__lazy_text is xs__lazy_elem for len bytes of text: they join the open
 * element's last text node (stz_add_text) or make a new one. */
static void xs__lazy_text(struct xs *xs, size_t len)
{
    size_t node = stz_mem_block(sizeof(struct stz)), before, after;

    before = xs->lazy_text != 0 ? node + stz_mem_block(xs->lazy_text + 1) : 0;
    xs->lazy_text += len;
    after = node + stz_mem_block(xs->lazy_text + 1);
    xs->lazy_kids = true;
    xs->top_mem += after - before;
    xs__charge(xs, after - before);
}

/* xs__lazy_end makes el, a completed lazy top-level element with its
 * bytes, lazy; or builds its children now when its bytes do not stand
 * alone.  0/XE_NOMEM. */
static int xs__lazy_end(struct xs *xs, struct stz *el, size_t *mem)
{
    size_t before;
    int rc;

    xs->lazy = false;
    if (!xs->lazy_kids)
        return 0; /* nothing to build */
    stz_set_lazy(el);
    if (xs->raw_alone)
        return 0;
    before = stz_node_mem(el);
    rc = stz_expand_in(el, xs->roottag.data, xs->roottag.len);
    stz_drop_raw(el);
    /* counted as if the bytes had never been kept, as when eager */
    *mem -= before - stz_node_mem(el);
    xs->mem.tree -= before - stz_node_mem(el);
    return rc;
}

static void XMLCALL xs__on_start(void *ud, const char *qname, const char **atts)
{
    struct xs *xs = ud;
    struct stz *el;
    size_t nattrs = 0, mem;

    if (xs->done)
        return;
    xs__progress(xs);
    while (atts[nattrs * 2] != NULL)
        nattrs++;
    xs->level++;
    if (nattrs + xs->ns_decls > xs->lim.max_attrs) {
        xs__fail(xs, XS_COND_POLICY_VIOLATION, "too many attributes");
        return;
    }
    if (xs->level == 2) {
        xs__raw_begin(xs, qname, atts, xs->ns_decls);
    } else if (xs->raw_ok && xs__raw_streams(qname, atts)) {
        xs->raw_alone = false;
        xs->raw_ok = xs->lazy; /* a lazy tree still needs the bytes */
    }
    xs->ns_decls = 0;
    if (xs->level == 1 && xs->resuming) {
        /* our own header after a park: no event, the stream goes on */
        xs->resuming = false;
        xs__unit_end(xs);
        return;
    }
    if (xs->level == 1) {
        xs__on_root(xs, qname, atts);
        return;
    }
    if (xs->level - 1 > xs->lim.max_depth) {
        xs__fail(xs, XS_COND_POLICY_VIOLATION, "elements nested too deep");
        return;
    }
    if (xs->lazy && xs->level > 2) {
        xs__lazy_elem(xs, qname, atts, nattrs);
        return;
    }
    el = xs__element(qname, atts);
    if (el == NULL) {
        xs__nomem(xs);
        return;
    }
    if (xs->cur == NULL)
        xs->top = el;
    else
        stz_append(xs->cur, el);
    xs->cur = el;
    mem = stz_node_mem(el);
    xs->top_mem += mem;
    xs__charge(xs, mem); /* over the cap: the stream failed, top is gone */
}

static void XMLCALL xs__on_end(void *ud, const char *qname)
{
    struct xs *xs = ud;
    struct stz *el;

    if (xs->done)
        return;
    xs__progress(xs);
    assert(xs->level > 0);
    if (xs->level == 1) {
        /* </stream:stream>: the stream is over (RFC 6120 §4.4); whatever
         * follows it in the same chunk is ignored. */
        xs->level = 0;
        xs->done = true;
        xs->term_pending = true;
        memset(&xs->term, 0, sizeof xs->term);
        xs->term.kind = XS_EV_CLOSE;
        xs__stop(xs);
        return;
    }
    xs->level--;
    if (xs->lazy && xs->level >= 2) {
        xs->lazy_text = 0; /* the parent's last child is an element */
        return;
    }
    el = xs->cur;
    xs->cur = el->parent;
    if (xs->level == 1) {
        size_t mem = xs->top_mem;

        xs->top = xs->cur = NULL;
        xs->top_mem = 0;
        xs__unit_end(xs);
        if ((xs->raw_ok && xs__raw_end(xs, el, &mem) != 0) ||
            (xs->lazy && xs__lazy_end(xs, el, &mem) != 0)) {
            stz_free(el);
            xs->mem.tree -= mem;
            xs__nomem(xs);
            return;
        }
        xs__push(xs, XS_EV_ELEM, el, mem);
    }
}

static bool xs__is_ws(const char *s, int len)
{
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static void XMLCALL xs__on_text(void *ud, const char *s, int len)
{
    struct xs *xs = ud;

    if (xs->done)
        return;
    xs__progress(xs);
    if (xs->level >= 2 && xs->lazy) {
        xs__lazy_text(xs, (size_t)len);
        return;
    }
    if (xs->level >= 2) {
        const struct stz *last = xs->cur->last_child;
        size_t before = last != NULL && last->kind == STZ_TEXT ? stz_node_mem(last) : 0;
        size_t after;

        if (stz_add_text(xs->cur, s, (size_t)len) != 0) {
            xs__nomem(xs);
            return;
        }
        /* The text joined the last text node or made a new one. */
        after = stz_node_mem(xs->cur->last_child);
        xs->top_mem += after - before;
        xs__charge(xs, after - before);
        return;
    }
    /* Between top-level elements only whitespace may appear (RFC 6120 §11.7,
     * used for keep-alives); any other character data is XML we cannot
     * process as a stream: bad-format (§4.9.3.1). */
    if (!xs__is_ws(s, len)) {
        xs__fail(xs, XS_COND_BAD_FORMAT, "character data at stream level");
        return;
    }
    xs__unit_end(xs);
}

static void XMLCALL xs__on_ns_start(void *ud, const char *prefix, const char *uri)
{
    struct xs *xs = ud;

    if (xs->done)
        return;
    xs->ns_decls++;
    if (xs->resuming)
        return;
    if (xs->level == 0 && prefix != NULL &&
        (uri == NULL || strcmp(uri, STZ_NS_STREAMS) != 0))
        xs->root_prefixed = true;
    if (xs->level == 0 && prefix == NULL) {
        /* The root's default namespace is the stream's content namespace
         * (RFC 6120 §4.8.2). */
        free(xs->default_ns);
        xs->default_ns = strdup(uri ? uri : "");
        if (xs->default_ns == NULL)
            xs__nomem(xs);
    }
}

static void XMLCALL xs__on_xmldecl(void *ud, const char *version, const char *encoding,
                                   int standalone)
{
    struct xs *xs = ud;

    /* RFC 6120 §11.6: streams are UTF-8 only. */
    if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
        xs__fail(xs, XS_COND_UNSUPPORTED_ENCODING, "only UTF-8 is supported");
}

/* RFC 6120 §11.1: no comments, processing instructions, DTDs or entity
 * declarations (restricted-xml, §4.9.3.18).  Stopping at the DOCTYPE means
 * no entity is ever declared, so none can be expanded. */
static void XMLCALL xs__on_doctype(void *ud, const char *name, const char *sysid,
                                   const char *pubid, int has_internal_subset)
{
    xs__fail(ud, XS_COND_RESTRICTED_XML, "DTDs are not allowed");
}

static void XMLCALL xs__on_entity(void *ud, const char *name, int is_pe,
                                  const char *value, int value_len, const char *base,
                                  const char *sysid, const char *pubid,
                                  const char *notation)
{
    xs__fail(ud, XS_COND_RESTRICTED_XML, "entity declarations are not allowed");
}

static void XMLCALL xs__on_pi(void *ud, const char *target, const char *data)
{
    xs__fail(ud, XS_COND_RESTRICTED_XML, "processing instructions are not allowed");
}

static void XMLCALL xs__on_comment(void *ud, const char *data)
{
    xs__fail(ud, XS_COND_RESTRICTED_XML, "comments are not allowed");
}

static void XMLCALL xs__on_skipped(void *ud, const char *name, int is_pe)
{
    xs__fail(ud, XS_COND_RESTRICTED_XML, "entity references are not allowed");
}

static int XMLCALL xs__on_extent(XML_Parser p, const char *context, const char *base,
                                 const char *sysid, const char *pubid)
{
    /* Never load anything (XXE): refusing makes expat fail the parse. */
    return XML_STATUS_ERROR;
}

/* ---- parser lifetime --------------------------------------------------- */

/* xs__parser_open makes xs->p, counted in xs->mem as it stands. */
static int xs__parser_open(struct xs *xs)
{
    XML_Parser p;

    xs__mem_current = &xs->mem;
    p = XML_ParserCreate_MM("UTF-8", &xs__mm, "\x01");
    xs__mem_current = NULL;
    if (p == NULL)
        return XE_NOMEM;
    /* Before the first byte, as XML_SetHashSalt requires. */
    if (xs->salt != 0)
        XML_SetHashSalt(p, xs->salt); /* 0: expat draws its own */
    XML_SetUserData(p, xs);
    XML_SetElementHandler(p, xs__on_start, xs__on_end);
    XML_SetCharacterDataHandler(p, xs__on_text);
    XML_SetStartNamespaceDeclHandler(p, xs__on_ns_start);
    XML_SetXmlDeclHandler(p, xs__on_xmldecl);
    XML_SetStartDoctypeDeclHandler(p, xs__on_doctype);
    XML_SetEntityDeclHandler(p, xs__on_entity);
    XML_SetProcessingInstructionHandler(p, xs__on_pi);
    XML_SetCommentHandler(p, xs__on_comment);
    XML_SetSkippedEntityHandler(p, xs__on_skipped);
    XML_SetExternalEntityRefHandler(p, xs__on_extent);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    /* expat 2.6 may defer parsing a token until more bytes arrive; a stream
     * must deliver each stanza as soon as its last byte is in. */
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
    xs->p = p;
    return 0;
}

static int xs__parser_new(struct xs *xs)
{
    memset(&xs->mem, 0, sizeof xs->mem);
    xs->mem.cap = xs->lim.max_mem_bytes;
    return xs__parser_open(xs);
}

/* xs__park frees the parser when the stream sits exactly between top-level
 * elements (see the top of the file). */
static void xs__park(struct xs *xs)
{
    if (xs->p == NULL || xs->done || !xs->opened || xs->level != 1 || xs->top != NULL ||
        xs->hold.len != 0 || xs->scan != XS_SCAN_TEXT || xs->fed != xs->unit_start ||
        xs->roottag.len == 0)
        return;
    xs__mem_current = &xs->mem;
    XML_ParserFree(xs->p);
    xs__mem_current = NULL;
    xs->p = NULL;
    buf_free(&xs->hold);
    xs->parked = true;
}

/* xs__resume makes a new parser for a parked stream and parses our own
 * header with the root's namespace declarations.  0 or XE_NOMEM. */
static int xs__resume(struct xs *xs)
{
    enum XML_Status st;

    if (xs__parser_open(xs) != 0) {
        /* The caller's bytes are dropped: the stream must end with an
         * error event, or its peer would wait for an answer forever. */
        xs__nomem(xs);
        return XE_NOMEM;
    }
    xs->parked = false;
    xs->resuming = true;
    xs->level = 0;
    xs->ns_decls = 0;
    xs->fed = xs->unit_start = xs->progress = 0;
    xs__mem_current = &xs->mem;
    st = XML_Parse(xs->p, xs->roottag.data, (int)xs->roottag.len, XML_FALSE);
    xs__mem_current = NULL;
    xs->fed = (long long)xs->roottag.len;
    if (st == XML_STATUS_ERROR || xs->resuming || xs->done) {
        if (!xs->done && st == XML_STATUS_ERROR &&
            XML_GetErrorCode(xs->p) == XML_ERROR_NO_MEMORY)
            xs__nomem(xs);
        else if (!xs->done)
            xs__fail(xs, XS_COND_INTERNAL_SERVER_ERROR, "stream resume");
        return XE_NOMEM;
    }
    return 0;
}

/* xs__clear drops the parser and all per-stream state. */
static void xs__clear(struct xs *xs)
{
    if (xs->p != NULL) {
        xs__mem_current = &xs->mem;
        XML_ParserFree(xs->p);
        xs__mem_current = NULL;
        xs->p = NULL;
    }
    stz_free(xs->top);
    xs->top = xs->cur = NULL;
    xs->mem.tree -= xs->top_mem;
    xs->top_mem = 0;
    xs__drop_queue(xs);
    free(xs->default_ns);
    xs->default_ns = NULL;
    xs->raw_ok = xs->root_prefixed = xs->lazy = false;
    buf_free(&xs->raw);
    buf_free(&xs->roottag);
    xs->parked = xs->resuming = false;
    xs->fed = xs->unit_start = xs->progress = 0;
    buf_free(&xs->hold);
    xs->scan = XS_SCAN_TEXT;
    xs->scan_k = 0;
    xs->prev1 = xs->prev2 = 0;
    xs->level = xs->ns_decls = 0;
    xs->opened = xs->done = xs->term_pending = false;
    memset(&xs->term, 0, sizeof xs->term);
}

/* xs__limits fills out from limits (may be NULL) and the defaults. */
static void xs__limits(const struct xs_limits *limits, struct xs_limits *out)
{
    xs_limits_default(out);
    if (limits != NULL) {
        if (limits->max_stanza_bytes != 0)
            out->max_stanza_bytes = limits->max_stanza_bytes;
        if (limits->max_depth != 0)
            out->max_depth = limits->max_depth;
        if (limits->max_attrs != 0)
            out->max_attrs = limits->max_attrs;
        out->max_mem_bytes = limits->max_mem_bytes;
    }
    if (out->max_stanza_bytes > (SIZE_MAX - 64 * 1024) / 16)
        out->max_stanza_bytes = (SIZE_MAX - 64 * 1024) / 16;
    if (out->max_mem_bytes == 0)
        out->max_mem_bytes = XS_MEM_CAP(out->max_stanza_bytes);
}

void xs_set_eager(struct xs *xs, bool eager)
{
    xs->eager = eager;
}

void xs_set_limits(struct xs *xs, const struct xs_limits *limits)
{
    xs__limits(limits, &xs->lim);
    xs->mem.cap = xs->lim.max_mem_bytes;
}

int xs_new(const struct xs_limits *limits, struct xs **out)
{
    return xs_new_salted(limits, 0, out);
}

int xs_new_salted(const struct xs_limits *limits, unsigned long salt, struct xs **out)
{
    struct xs *xs;

    *out = NULL;
    xs = calloc(1, sizeof *xs);
    if (xs == NULL)
        return XE_NOMEM;
    xs__limits(limits, &xs->lim);
    xs->salt = salt;
    if (xs__parser_new(xs) != 0) {
        free(xs);
        return XE_NOMEM;
    }
    *out = xs;
    return 0;
}

void xs_free(struct xs *xs)
{
    if (xs == NULL)
        return;
    xs__clear(xs);
    free(xs);
}

int xs_reset(struct xs *xs)
{
    xs__clear(xs);
    return xs__parser_new(xs);
}

/* xs__parse_error maps an expat failure that no handler decided. */
static void xs__parse_error(struct xs *xs)
{
    enum XML_Error e = XML_GetErrorCode(xs->p);
    const char *text = XML_ErrorString(e);

    switch (e) {
    case XML_ERROR_NO_MEMORY:
        if (xs->mem.over)
            xs__fail(xs, XS_COND_POLICY_VIOLATION, "parser memory limit");
        else
            xs__nomem(xs);
        break;
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
        /* RFC 6120 §11.1: only the five predefined entities. */
        xs__fail(xs, XS_COND_RESTRICTED_XML, text);
        break;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        xs__fail(xs, XS_COND_UNSUPPORTED_ENCODING, text);
        break;
    default:
        /* §4.9.3.13: violations of XML or Namespaces in XML, invalid UTF-8
         * included. */
        xs__fail(xs, XS_COND_NOT_WELL_FORMED, text);
        break;
    }
}

/* xs__scan_byte advances the token-end scanner by one byte; true when the
 * byte may end an unfinished expat token. */
static bool xs__scan_byte(struct xs *xs, unsigned char c)
{
    bool end = false;

    switch (xs->scan) {
    case XS_SCAN_TEXT:
        if (c == '<')
            xs->scan = XS_SCAN_LT;
        break;
    case XS_SCAN_LT:
        if (c == '!') {
            xs->scan = XS_SCAN_BANG;
            xs->scan_k = 0;
        } else if (c == '?') {
            xs->scan = XS_SCAN_PI;
        } else {
            xs->scan = XS_SCAN_TAG;
            return xs__scan_byte(xs, c);
        }
        break;
    case XS_SCAN_TAG:
        if (c == '\'')
            xs->scan = XS_SCAN_SQ;
        else if (c == '"')
            xs->scan = XS_SCAN_DQ;
        else if (c == '>')
            end = true;
        break;
    case XS_SCAN_SQ:
        if (c == '\'')
            xs->scan = XS_SCAN_TAG;
        break;
    case XS_SCAN_DQ:
        if (c == '"')
            xs->scan = XS_SCAN_TAG;
        break;
    case XS_SCAN_BANG:
        if (xs->scan_k == 0 && c == '-') {
            xs->scan = XS_SCAN_BANG_DASH;
        } else if (c == (unsigned char)"[CDATA["[xs->scan_k]) {
            if (++xs->scan_k == 7)
                xs->scan = XS_SCAN_CDATA;
        } else {
            xs->scan = XS_SCAN_DECL;
            end = c == '>';
        }
        break;
    case XS_SCAN_BANG_DASH:
        xs->scan = c == '-' ? XS_SCAN_COMMENT : XS_SCAN_DECL;
        end = c == '>';
        break;
    case XS_SCAN_COMMENT:
        end = c == '>' && xs->prev1 == '-' && xs->prev2 == '-';
        break;
    case XS_SCAN_CDATA:
        end = c == '>' && xs->prev1 == ']' && xs->prev2 == ']';
        break;
    case XS_SCAN_PI:
        end = c == '>' && xs->prev1 == '?';
        break;
    case XS_SCAN_DECL:
        end = c == '>';
        break;
    }
    if (end) {
        xs->scan = XS_SCAN_TEXT;
        xs->prev1 = xs->prev2 = 0;
    } else if (xs->scan == XS_SCAN_COMMENT && xs->scan_k != 1) {
        /* entering the comment: its opening dashes do not count */
        xs->scan_k = 1;
        xs->prev1 = xs->prev2 = 0;
    } else {
        xs->prev2 = xs->prev1;
        xs->prev1 = c;
    }
    return end;
}

/* xs__skip returns how many bytes from p[0..len) leave the scanner where
 * it is: in text, in a quoted value or in a tag, up to the next byte that
 * could move it ('<'; the closing quote; a quote or '>').  It runs over
 * every byte received, so it jumps with memchr where it can (the
 * byte-by-byte scanner was 7 % of a node). */
static size_t xs__skip(const struct xs *xs, const unsigned char *p, size_t len)
{
    const unsigned char *q;
    size_t i = 0;

    switch (xs->scan) {
    case XS_SCAN_TEXT:
        q = memchr(p, '<', len);
        return q ? (size_t)(q - p) : len;
    case XS_SCAN_SQ:
        q = memchr(p, '\'', len);
        return q ? (size_t)(q - p) : len;
    case XS_SCAN_DQ:
        q = memchr(p, '"', len);
        return q ? (size_t)(q - p) : len;
    case XS_SCAN_TAG:
        while (i < len && p[i] != '\'' && p[i] != '"' && p[i] != '>')
            i++;
        return i;
    default:
        return 0;
    }
}

/* xs__scan runs the scanner over len bytes; true when any may end a token.
 * Bytes that xs__skip passes over only shift the last two bytes seen. */
static bool xs__scan(struct xs *xs, const unsigned char *p, size_t len)
{
    bool end = false;
    size_t i = 0, n;

    while (i < len) {
        n = xs__skip(xs, p + i, len - i);
        if (n >= 2) {
            xs->prev2 = p[i + n - 2];
            xs->prev1 = p[i + n - 1];
        } else if (n == 1) {
            xs->prev2 = xs->prev1;
            xs->prev1 = p[i];
        }
        i += n;
        if (i < len)
            end |= xs__scan_byte(xs, p[i++]);
    }
    return end;
}

/* xs__unit_limit is the byte budget of the current unit. */
static size_t xs__unit_limit(const struct xs *xs)
{
    size_t lim = xs->lim.max_stanza_bytes;

    if (!xs->opened && lim > XS_MAX_HEADER_BYTES)
        lim = XS_MAX_HEADER_BYTES;
    return lim;
}

/* xs__parse hands len bytes to expat, never more than the current unit may
 * still take. */
static void xs__parse(struct xs *xs, const char *p, size_t len)
{
    while (len > 0 && !xs->done) {
        size_t lim = xs__unit_limit(xs), used, n;
        enum XML_Status st;

        used = (size_t)(xs->fed - xs->unit_start);
        if (used >= lim) {
            /* The current unit already took all it may and is not complete:
             * RFC 6120 §4.9.3.14 policy-violation, before expat buffers
             * more. */
            xs__fail(xs, XS_COND_POLICY_VIOLATION,
                     xs->opened ? "stanza too large" : "stream header too large");
            break;
        }
        n = lim - used;
        if (n > len)
            n = len;
        if (n > INT_MAX / 2)
            n = INT_MAX / 2;
        xs->chunk = p;
        xs->chunk_off = xs->fed;
        xs__mem_current = &xs->mem;
        st = XML_Parse(xs->p, p, (int)n, XML_FALSE);
        xs__mem_current = NULL;
        if (xs->raw_ok && !xs->done && xs__raw_collect(xs, xs->fed + (long long)n) != 0)
            xs__nomem(xs);
        xs->chunk = NULL;
        xs->fed += (long long)n;
        p += n;
        len -= n;
        if (st == XML_STATUS_ERROR && !xs->done)
            xs__parse_error(xs);
    }
}

/* xs__defer tells whether len more bytes should be held back rather than
 * parsed now; end says whether they may end an unfinished token. */
static bool xs__defer(const struct xs *xs, bool end, size_t len)
{
    size_t pending = (size_t)(xs->fed - xs->progress);
    size_t total = (size_t)(xs->fed - xs->unit_start) + xs->hold.len + len;

    /* expat guesses the encoding from the first bytes it sees (a BOM, or
     * zero bytes suggesting UTF-16), and guesses differently from one byte
     * than from four: give it at least four, so that every chunking parses
     * alike.  No stream header is shorter. */
    if (xs->fed == 0 && xs->hold.len + len < 4)
        return true;
    /* Hold while expat sits in a long unfinished token that these bytes
     * cannot end, they are fewer than what expat holds, and the unit stays
     * within its limit (which bounds the held bytes too). */
    return !end && pending > XS_DEFER_MIN && xs->hold.len + len < pending &&
           total <= xs__unit_limit(xs);
}

int xs_feed(struct xs *xs, const void *data, size_t len)
{
    const char *nul;
    size_t ok;
    bool end;

    if (xs->done || (xs->p == NULL && !xs->parked))
        return XE_STATE;
    if (len == 0)
        return 0;
    if (xs->parked && xs__resume(xs) != 0)
        return 0; /* the stream failed: the error event tells */
    /* XML 1.0 §2.2: NUL is no character of XML, not even as a reference.
     * Checked here because expat, seeing zero bytes at the start, may take
     * the stream for UTF-16 (RFC 6120 §11.6: UTF-8 only). */
    nul = memchr(data, '\0', len);
    ok = nul ? (size_t)(nul - (const char *)data) : len;
    end = xs__scan(xs, data, ok);
    if (nul == NULL && xs__defer(xs, end, len)) {
        if (buf_append(&xs->hold, data, len) != 0)
            xs__nomem(xs);
        return 0;
    }
    if (xs->hold.len > 0) {
        xs__parse(xs, xs->hold.data, xs->hold.len);
        buf_reset(&xs->hold);
    }
    xs__parse(xs, data, ok);
    if (nul != NULL)
        xs__fail(xs, XS_COND_NOT_WELL_FORMED, "NUL byte");
    xs__park(xs);
    return 0;
}

int xs_write_error(struct buf *out, enum xs_cond cond, const char *text)
{
    size_t mark = out->len;
    struct stz *t = NULL;
    int rv;

    /* RFC 6120 §4.9.2: the condition element and the optional <text/> are in
     * the urn:ietf:params:xml:ns:xmpp-streams namespace; §4.9.1.1: the error
     * is followed by the closing stream tag. */
    if ((rv = buf_printf(out, "<stream:error><%s xmlns='%s'/>", xs_cond_name(cond),
                         STZ_NS_XSTREAMS)) != 0)
        goto err;
    if (text != NULL) {
        t = stz_new("text", STZ_NS_XSTREAMS);
        if (t == NULL || stz_add_text(t, text, strlen(text)) != 0) {
            rv = XE_NOMEM;
            goto err;
        }
        if ((rv = stz_serialize(t, "", out)) != 0)
            goto err;
        stz_free(t);
        t = NULL;
    }
    if ((rv = buf_puts(out, "</stream:error></stream:stream>")) != 0)
        goto err;
    return 0;
err:
    stz_free(t);
    out->len = mark;
    if (out->data != NULL)
        out->data[mark] = '\0';
    return rv;
}
