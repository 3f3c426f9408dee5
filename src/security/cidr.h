/* cidr.h — IP allowlists: a parsed list of IPv4/IPv6 CIDR blocks and a match against a socket
 * address. IPv4-mapped IPv6 peers (::ffff:a.b.c.d, as a dual-stack listener reports IPv4
 * clients) match IPv4 blocks. Pure code: no allocation after cidr_list_parse, thread-safe reads. */
#ifndef VIGIL_API_CIDR_H
#define VIGIL_API_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_MAX_ENTRIES 256 /* blocks in one list */

typedef struct cidr {
        uint8_t addr[16]; /* network address; IPv4 stored as IPv4-mapped IPv6 */
        uint8_t prefix;   /* bits, 0..128 (IPv4 /n stored as /96+n) */
} cidr;

typedef struct cidr_list {
        cidr e[CIDR_MAX_ENTRIES]; /* blocks */
        size_t n;                 /* entries used; 0 = empty list */
} cidr_list;

/* Parse one "ADDR" or "ADDR/PREFIX" (len bytes, not NUL-terminated). 0 or -EINVAL. */
int cidr_parse(const char *s, size_t len, cidr *ret);
/* Parse a comma-separated list into *l (replaced). 0, -EINVAL (with the bad entry in bad) or
 * -E2BIG. */
int cidr_list_parse(const char *s, cidr_list *l, char *bad, size_t badlen);
/* Whether the 16-byte address (IPv4 as mapped) lies in any block. */
bool cidr_list_match(const cidr_list *l, const uint8_t addr[16]);
/* Address of a sockaddr as 16 bytes (IPv4 mapped). -EAFNOSUPPORT for other families. */
int cidr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16]);
/* Parse a textual address ("10.0.0.1", "::1", "::ffff:10.0.0.1") into 16 bytes. 0 or -EINVAL. */
int cidr_addr_parse(const char *s, size_t len, uint8_t out[16]);
/* Print 16 bytes as text: IPv4-mapped as dotted quad. Returns out. */
const char *cidr_addr_str(const uint8_t addr[16], char *out, size_t len);

#endif
