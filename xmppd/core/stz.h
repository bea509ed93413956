/* stz.h: the stanza tree: a small XML element tree with namespaces, and its
 * serializer.
 *
 * An element has a local name, a namespace URI, attributes and an ordered
 * list of children, each an element or a text node.  All strings in the tree
 * are owned by it and stored unescaped (UTF-8).  The serializer escapes and
 * emits xmlns declarations only where the namespace changes, so a stanza
 * written into a stream whose default namespace is its own carries none
 * (RFC 6120 §4.8.3).  Also here: the stanza-level helpers every session uses
 * (error replies per RFC 6120 §8.3). */
#ifndef XMPPD_STZ_H
#define XMPPD_STZ_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define STZ_NS_STREAMS "http://etherx.jabber.org/streams"
#define STZ_NS_COMPONENT "jabber:component:accept"
#define STZ_NS_CLIENT "jabber:client"
#define STZ_NS_SERVER "jabber:server"
#define STZ_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define STZ_NS_XSTREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define STZ_NS_XML "http://www.w3.org/XML/1998/namespace"

enum stz_kind { STZ_ELEMENT, STZ_TEXT };

struct stz_attr {
    char *name;  /* local name, owned */
    char *ns;    /* namespace URI, owned; NULL for unqualified attributes */
    char *value; /* unescaped, owned */
};

struct stz {
    enum stz_kind kind;
    char *name; /* STZ_ELEMENT: local name, owned */
    char *ns;   /* STZ_ELEMENT: namespace URI, owned; "" for none */
    char *text; /* STZ_TEXT: unescaped text, owned */
    size_t text_len;
    struct stz_attr *attrs; /* owned array of nattrs */
    size_t nattrs;
    size_t attrs_cap;        /* entries allocated in attrs */
    struct stz *parent;      /* borrowed back-pointer; NULL at the root */
    struct stz *first_child; /* owned list */
    struct stz *last_child;
    struct stz *next; /* next sibling, owned by the parent's list */
    /* The element's bytes as the framer received them (owned, NUL-ended),
     * or NULL: set by xs.c on a top-level element whose bytes stand alone
     * in any stream whose default namespace is a content namespace (see
     * stz_serialize); dropped by every change to the tree through this
     * API (stz__touch in stz.c), so it is always the tree's own text. */
    char *raw;
    size_t raw_len;
    /* Lazily parsed: the children are not built yet.  They are
     * those of the element in kids[0..kids_len), el's received bytes
     * (owned, NUL-ended; the same buffer as raw while raw is kept, the
     * attributes of its start tag perhaps no longer el's), and are built
     * from them on first access (stz_expand); NULL once built or when el
     * never was lazy.  Only a root (no parent) is ever lazy. */
    char *kids;
    size_t kids_len;
    /* Bytes allocated with el in one block (stz_new_init): the attribute
     * array and the strings of el's name, namespace and attributes that lie
     * in [el, el + pack) are freed with el, not on their own; 0 when el was
     * made otherwise. */
    size_t pack;
};

/* stz_new returns a new element (owned by the caller) or NULL when out of
 * memory.  ns may be NULL for "no namespace". */
struct stz *stz_new(const char *name, const char *ns);

/* One attribute given to stz_new_init: strings of the given lengths, not
 * NUL-ended necessarily. */
struct stz_init_attr {
    const char *ns; /* namespace URI; NULL (or ns_len 0) for unqualified */
    size_t ns_len;
    const char *name; /* local name */
    size_t name_len;
    const char *value; /* unescaped */
    size_t value_len;
};

/* stz_new_init returns a new element {ns}name with the n attributes of a,
 * in that order, made with one allocation for the element, its attribute
 * array and all their strings (the framer's stanzas: a malloc and a free
 * per string showed in the profile); owned by the caller, NULL when out of
 * memory.  The tree behaves as one made with stz_new and stz_set_attr_ns
 * (every function below may change or free any part; stz_node_mem counts
 * the same).  ns NULL or ns_len 0 means "no namespace".  The caller
 * vouches that no two attributes have the same namespace and name (expat
 * refuses such a start tag: Namespaces in XML 1.0 §6.3). */
struct stz *stz_new_init(const char *name, size_t name_len, const char *ns, size_t ns_len,
                         const struct stz_init_attr *a, size_t n);

/* Lazily parsed elements.  The framer (xs.c) gives a stanza
 * whose bytes it keeps only its top element and attributes; the children
 * come from those bytes when something first asks for them.  Every reader
 * and writer below does that by itself (stz_first_element, stz_child,
 * stz_text, stz_serialize, stz_add_child, ...), so a lazy tree behaves as
 * the whole one; out of memory there reads as "no child" in stz_child and
 * stz_first_element, and as the usual out-of-memory return elsewhere.
 * Code that must tell those apart (the server looking inside a stanza)
 * calls stz_expand first. */

/* stz_expand builds the children of lazily parsed root el from its bytes;
 * a no-op (0) for any other element.  el is logically const: the tree it
 * stands for does not change, only its building is done.  0, XE_NOMEM or
 * XE_INVAL (the bytes would not parse: a caller's bug), el unchanged (still
 * lazy) on failure. */
int stz_expand(const struct stz *el);

/* stz_expand_in is stz_expand for bytes that need a context: open (open_len
 * bytes) is the start tag of an element that binds every prefix el's bytes
 * use and declares el's namespace as its default (a stream header, as
 * received).  The framer uses it for a stanza whose children use the
 * stream header's prefixes. */
int stz_expand_in(const struct stz *el, const char *open, size_t open_len);

/* stz_is_lazy tells whether el's children are not built yet. */
bool stz_is_lazy(const struct stz *el);

/* stz_set_lazy makes root el (no children) lazy with its kept bytes (raw)
 * as the source of its children.  The caller vouches for them as for
 * stz_set_raw, and that el has no children built. */
void stz_set_lazy(struct stz *el);

/* stz_free frees el and everything below it.  el must not be linked into a
 * parent (use stz_unlink first).  NULL is a no-op. */
void stz_free(struct stz *el);

/* stz_copy returns a deep copy (owned, unlinked) or NULL.  A lazy el's
 * copy is lazy too (its bytes are copied, not its tree). */
struct stz *stz_copy(const struct stz *el);

/* stz_set_attr sets (replaces) the unqualified attribute name.  0/XE_NOMEM. */
int stz_set_attr(struct stz *el, const char *name, const char *value);
/* stz_set_attr_ns sets an attribute in namespace ns (e.g. xml:lang). */
int stz_set_attr_ns(struct stz *el, const char *ns, const char *name, const char *value);
/* stz_reserve_attrs makes room in el for n attributes in all, so that
 * adding that many allocates no array again (the framer knows how many a
 * start tag has).  0/XE_NOMEM. */
int stz_reserve_attrs(struct stz *el, size_t n);
/* stz_del_attr removes the unqualified attribute name if present (a lazy
 * el stays lazy: its children do not depend on its attributes). */
void stz_del_attr(struct stz *el, const char *name);
/* stz_attr returns the value of the unqualified attribute name (borrowed) or
 * NULL. */
const char *stz_attr(const struct stz *el, const char *name);

/* stz_add_child creates and appends a child element; returns it (borrowed,
 * owned by el) or NULL.  A NULL ns means "inherit el's namespace". */
struct stz *stz_add_child(struct stz *el, const char *name, const char *ns);
/* stz_append takes child (which must be unlinked) and appends it.  0, or
 * XE_NOMEM when el is lazy and its children could not be built (child not
 * taken then). */
int stz_append(struct stz *el, struct stz *child);
/* stz_add_text appends text (len bytes, unescaped); adjacent text nodes are
 * merged.  0/XE_NOMEM. */
int stz_add_text(struct stz *el, const char *text, size_t len);
/* stz_unlink removes el from its parent; the caller then owns it. */
void stz_unlink(struct stz *el);

/* stz_child returns the first child element with this name and namespace
 * (ns NULL matches any namespace), borrowed, or NULL. */
struct stz *stz_child(const struct stz *el, const char *name, const char *ns);
/* stz_first_element returns the first child element, or NULL (none, or a
 * lazy el's children could not be built: see stz_expand). */
struct stz *stz_first_element(const struct stz *el);
/* stz_next_element returns the next sibling element, or NULL. */
struct stz *stz_next_element(const struct stz *el);
/* stz_text returns the concatenated text of el's direct text children as an
 * owned string ("" when none) or NULL when out of memory. */
char *stz_text(const struct stz *el);

/* stz_node_mem estimates the heap bytes node n takes by itself (not its
 * children): the node, its name and namespace or its text, its attribute
 * array and strings, each block rounded as glibc's malloc rounds it on a
 * 64-bit host (8 bytes of header, 16-byte steps, 32 at least).  The framer
 * counts trees with it against its memory cap (xs.h). */
size_t stz_node_mem(const struct stz *n);

/* stz_mem_block is what a malloc of n bytes costs as stz_node_mem counts
 * it (the framer charges trees it leaves unbuilt with it). */
size_t stz_mem_block(size_t n);

/* stz_drop_raw forgets root el's received bytes as its text (they no longer
 * stand for it); a lazy el keeps them as the source of its children. */
void stz_drop_raw(struct stz *el);

/* stz_set_raw gives root element el (no parent) its received bytes: len
 * bytes of data, copied (see struct stz's raw).  The caller vouches that
 * they are el as it stands, with no xmlns of its own and no prefix bound
 * outside them but xml: (xs.c checks that).  0/XE_NOMEM (el unchanged). */
int stz_set_raw(struct stz *el, const char *data, size_t len);
/* stz_take_raw is stz_set_raw taking data (malloc'ed, len bytes followed by
 * a NUL) instead of copying it. */
void stz_take_raw(struct stz *el, char *data, size_t len);

/* stz_stamp_attr sets the unqualified attribute name on el like
 * stz_set_attr, but keeps el's received bytes (raw) valid where it can: a
 * value equal to the one there changes nothing, and an attribute el did
 * not have is written at the end of the raw start tag (the server stamping
 * 'from', RFC 6120 §8.1.2.1).  Replacing another value drops raw.
 * 0/XE_NOMEM. */
int stz_stamp_attr(struct stz *el, const char *name, const char *value);

/* stz_serialize appends el as XML to out.  parent_ns is the default
 * namespace in scope where el is written (e.g. STZ_NS_COMPONENT inside a
 * component stream): el gets an xmlns attribute only if its namespace
 * differs, and so on down the tree.  The content namespaces (jabber:client,
 * jabber:component:accept, jabber:server) count as one another below a
 * parent in one of them: a stanza moves between kinds of streams without
 * an xmlns (RFC 6120 §4.8.3).  Text and attribute values are escaped
 * (& < > " ').  An element with received bytes (raw) below a
 * content-namespace parent is written as those bytes, unparsed and
 * unserialised (routing on the sender's bytes).  0/XE_NOMEM. */
int stz_serialize(const struct stz *el, const char *parent_ns, struct buf *out);

/* stz_is_stanza tells whether el is message, presence or iq in ns. */
bool stz_is_stanza(const struct stz *el, const char *ns);

/* stz_error_reply builds the error reply to stanza orig per RFC 6120 §8.3:
 * same name, id and namespace, from/to swapped, type="error", the original
 * children kept (§8.3.1 allows it) and an <error type=...><condition
 * xmlns=STZ_NS_STANZAS/>[<text>]</error> child.  type is "cancel", "wait",
 * "modify", "auth" or "continue"; cond e.g. "service-unavailable".  text may
 * be NULL.  Returns an owned element or NULL when out of memory. */
struct stz *stz_error_reply(const struct stz *orig, const char *type, const char *cond,
                            const char *text);

#endif
