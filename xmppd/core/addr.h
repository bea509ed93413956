/* addr.h: addresses and names, one copy of each rule, for the daemon, the
 * configuration file, the node's state file and mmp-cli: host[:port] with
 * IPv4, [IPv6] and names; node ids in hex; call-bridge names; file names in
 * the node's pki directory.  Pure: no sockets, no DNS, no locale.
 *
 * The address rule (RFC 3986 §3.2.2 for the brackets):
 *
 *     host            port taken from the caller's default
 *     host:port       exactly one colon
 *     [v6]            brackets hold an IPv6 address, nothing else
 *     [v6]:port
 *     v6              two or more colons and no brackets: an IPv6 address
 *                     with no port (write [v6]:port to give one)
 *
 * A port is 1..5 decimal digits with a value of 1..65535: no sign, no
 * blank.  Which hosts are accepted besides IP addresses is the caller's
 * choice (enum addr_hosts). */
#ifndef XMPPD_ADDR_H
#define XMPPD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_HOST_MAX 253      /* a DNS name (RFC 1035 §2.3.4); IPv6 text is 45 */
#define ADDR_TEXT_MAX 263      /* "[" host "]:" 5 digits */
#define ADDR_IFACE_MAX 15      /* IFNAMSIZ - 1 */
#define ADDR_NODE_ID_HEX 16    /* a node id is 64 bits, 16 hex digits */
#define ADDR_CALLBRIDGE_MAX 63 /* a DNS label (RFC 1035 §2.3.4) */
#define ADDR_PKI_NAME_MAX 255  /* NAME_MAX */

/* Which hosts an address may name besides IPv4 and IPv6 addresses. */
enum addr_hosts {
    ADDR_HOSTS_IP,    /* numeric only: a listener must not need DNS to start */
    ADDR_HOSTS_DNS,   /* or a DNS host name (letters, digits, '-', '.') */
    ADDR_HOSTS_IFACE, /* or a network interface name (addr_iface_valid) */
};

enum addr_kind {
    ADDR_KIND_IPV4 = 1,
    ADDR_KIND_IPV6,
    ADDR_KIND_NAME, /* a DNS name or an interface name, as hosts allowed */
};

struct addr {
    char host[ADDR_HOST_MAX + 1]; /* without brackets; NUL-terminated */
    uint16_t port;                /* 1..65535 */
    enum addr_kind kind;
};

/* addr_parse reads s (borrowed, NUL-terminated) by the rule above into
 * *out.  default_port is used when s gives none; 0 makes the port
 * required.  Returns 0, or XE_INVAL (bad brackets or port, a host that is
 * empty, too long or not allowed by hosts); *out is then undefined. */
int addr_parse(const char *s, enum addr_hosts hosts, uint16_t default_port,
               struct addr *out);

/* addr_host_of copies the host of address text s (borrowed), split by
 * the rule above (no brackets, no port), into out (cap bytes), whatever
 * the host is: for addresses the node formatted itself (a connection's
 * peer, a member's address), where a rule's check would add nothing.  0,
 * or XE_INVAL (bad brackets, an empty host, or no room; out is then
 * empty). */
int addr_host_of(const char *s, char *out, size_t cap);

/* addr_format writes a as "host:port", or "[v6]:port" for IPv6, into out
 * (len bytes; ADDR_TEXT_MAX + 1 is enough).  0, or XE_INVAL when it does
 * not fit (out is then empty). */
int addr_format(const struct addr *a, char *out, size_t len);

/* addr_join writes host (borrowed, without brackets) and port as
 * "host:port", or "[host]:port" when host has a colon (IPv6), into out (len
 * bytes).  0, or XE_INVAL when it does not fit (out is then empty). */
int addr_join(const char *host, unsigned port, char *out, size_t len);

/* addr_is_ip tells whether host (borrowed) is a numeric IPv4 or IPv6
 * address (no brackets). */
bool addr_is_ip(const char *host);

/* addr_host_same tells whether hosts x and y (borrowed, as addr_parse
 * leaves them) are the same: IP addresses by value ("::1" and "0::1" are
 * one), names without regard to ASCII case (RFC 4343). */
bool addr_host_same(const char *x, const char *y);

/* addr_same tells whether x and y (borrowed address texts) name the same
 * host and port, each parsed as addr_parse(s, hosts, default_port); false
 * when either does not parse. */
bool addr_same(const char *x, const char *y, enum addr_hosts hosts,
               uint16_t default_port);

/* addr_iface_valid: 1..ADDR_IFACE_MAX ASCII letters, digits, '-', '_' or
 * '.' (a Linux interface name as `ip link` shows it). */
bool addr_iface_valid(const char *name);

/* addr_node_id_hex writes id as 16 lower-case hex digits and a NUL into
 * out (ADDR_NODE_ID_HEX + 1 bytes). */
void addr_node_id_hex(uint64_t id, char *out);

/* addr_node_id_prefix_valid: s (borrowed) is 1..ADDR_NODE_ID_HEX hex
 * digits in either case: a node id or the start of one. */
bool addr_node_id_prefix_valid(const char *s);

/* addr_callbridge_valid: the len bytes at s (borrowed, need not be
 * NUL-terminated) are 1..ADDR_CALLBRIDGE_MAX ASCII letters, digits and
 * '-' (the name becomes the DNS label of the component <name>.<domain>).
 * ASCII by byte value, whatever the locale. */
bool addr_callbridge_valid(const char *s, size_t len);

/* addr_pki_name_valid: the len bytes at s (borrowed) name a file inside
 * the node's pki directory: 1..ADDR_PKI_NAME_MAX bytes, no '/', not
 * starting with '.' (no "..", no hidden files), no control character
 * (below 0x20, or 0x7f). */
bool addr_pki_name_valid(const char *s, size_t len);

#endif
