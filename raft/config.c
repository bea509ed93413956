/* config.c: cluster configurations (members keyed by node id, one address per
 * member) and their portable encoding, the data of RAFT_ENTRY_CONFIG. */
#include "raft.h"

#include <string.h>

void raft_config_init(struct raft_config *c)
{
    memset(c, 0, sizeof *c);
}

const struct raft_member *raft_config_find(const struct raft_config *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->members[i].id == id)
            return &c->members[i];
    return NULL;
}

const struct raft_member *raft_config_find_address(const struct raft_config *c,
                                                   const char *address)
{
    for (unsigned i = 0; i < c->n; i++)
        if (strcmp(c->members[i].address, address) == 0)
            return &c->members[i];
    return NULL;
}

/* Length of s, but at most max (strnlen is POSIX, not C11). */
static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}

static int check_member(uint64_t id, const char *address, enum raft_member_role role)
{
    if (id == 0 || (role != RAFT_VOTER && role != RAFT_NONVOTER))
        return RAFT_EINVAL;
    if (address == NULL)
        return RAFT_EADDR;
    size_t len = bounded_len(address, RAFT_ADDR_MAX);
    if (len == 0 || len >= RAFT_ADDR_MAX)
        return RAFT_EADDR;
    return 0;
}

int raft_config_add(struct raft_config *c, uint64_t id, const char *address,
                    enum raft_member_role role)
{
    int rc = check_member(id, address, role);
    if (rc != 0)
        return rc;
    /* Identity rules (DESIGN.md "Identity"): an id is a member at most once,
     * and an address belongs to one member only. */
    if (raft_config_find(c, id) != NULL)
        return RAFT_EDUPID;
    if (raft_config_find_address(c, address) != NULL)
        return RAFT_EDUPADDR;
    if (c->n >= RAFT_MAX_MEMBERS)
        return RAFT_ETOOMANY;
    struct raft_member *m = &c->members[c->n++];
    memset(m, 0, sizeof *m);
    m->id = id;
    memcpy(m->address, address, strlen(address) + 1);
    m->role = role;
    return 0;
}

int raft_config_remove(struct raft_config *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->members[i].id == id) {
            memmove(&c->members[i], &c->members[i + 1],
                    (c->n - i - 1) * sizeof c->members[0]);
            c->n--;
            memset(&c->members[c->n], 0, sizeof c->members[0]);
            return 0;
        }
    }
    return RAFT_ENOTFOUND;
}

int raft_config_validate(const struct raft_config *c)
{
    if (c->n > RAFT_MAX_MEMBERS)
        return RAFT_ETOOMANY;
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_member *m = &c->members[i];
        if (bounded_len(m->address, RAFT_ADDR_MAX) >= RAFT_ADDR_MAX)
            return RAFT_EADDR;
        int rc = check_member(m->id, m->address, m->role);
        if (rc != 0)
            return rc;
        for (unsigned j = 0; j < i; j++) {
            if (c->members[j].id == m->id)
                return RAFT_EDUPID;
            if (strcmp(c->members[j].address, m->address) == 0)
                return RAFT_EDUPADDR;
        }
    }
    return 0;
}

unsigned raft_config_voters(const struct raft_config *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n; i++)
        n += c->members[i].role == RAFT_VOTER;
    return n;
}

/* Format, little-endian: u8 version (1), u8 count, then per member u64 id,
 * u8 role, u8 address length, address bytes (no NUL). */
int raft_config_encode(const struct raft_config *c, void *buf, size_t cap, size_t *len)
{
    uint8_t *p = buf;
    size_t need = 2;
    for (unsigned i = 0; i < c->n; i++)
        need += 10 + strlen(c->members[i].address);
    if (need > cap)
        return RAFT_ETOOBIG;
    *p++ = 1;
    *p++ = (uint8_t)c->n;
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_member *m = &c->members[i];
        for (int b = 0; b < 8; b++)
            *p++ = (uint8_t)(m->id >> (8 * b));
        *p++ = (uint8_t)m->role;
        size_t al = strlen(m->address);
        *p++ = (uint8_t)al;
        memcpy(p, m->address, al);
        p += al;
    }
    *len = need;
    return 0;
}

int raft_config_decode(const void *buf, size_t len, struct raft_config *c)
{
    const uint8_t *p = buf, *end = p + len;
    struct raft_config d;
    int rc;

    /* Decoded into d so that c is left as it was on any error: callers keep
     * their previous configuration when a config entry does not decode. */
    raft_config_init(&d);
    if (len < 2 || p[0] != 1 || p[1] > RAFT_MAX_MEMBERS)
        return RAFT_ECORRUPT;
    unsigned n = p[1];
    p += 2;
    for (unsigned i = 0; i < n; i++) {
        if (end - p < 10)
            return RAFT_ECORRUPT;
        struct raft_member *m = &d.members[i];
        m->id = 0;
        for (int b = 0; b < 8; b++)
            m->id |= (uint64_t)p[b] << (8 * b);
        p += 8;
        m->role = (enum raft_member_role)p[0];
        size_t al = p[1];
        p += 2;
        /* A NUL inside would make the address its prefix, and the decoded
         * configuration differ from the bytes that the log holds. */
        if (al >= RAFT_ADDR_MAX || (size_t)(end - p) < al || memchr(p, '\0', al) != NULL)
            return RAFT_ECORRUPT;
        memcpy(m->address, p, al);
        m->address[al] = '\0';
        p += al;
    }
    if (p != end)
        return RAFT_ECORRUPT;
    d.n = n;
    rc = raft_config_validate(&d);
    if (rc != 0)
        return rc;
    *c = d;
    return 0;
}
