/* cidr.c — CIDR blocks and allowlist matching. Every address is kept as 16 bytes with IPv4 in
 * its IPv4-mapped form, so one comparison serves IPv4, IPv6 and mapped peers alike. */
#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int cidr_addr_parse(const char *s, size_t len, uint8_t out[16])
{
        char b[INET6_ADDRSTRLEN + 1];
        struct in_addr a4;

        if (len == 0 || len >= sizeof(b) || memchr(s, '\0', len))
                return -EINVAL;
        memcpy(b, s, len);
        b[len] = '\0';
        if (inet_pton(AF_INET, b, &a4) == 1) {
                memcpy(out, v4mapped, 12);
                memcpy(out + 12, &a4, 4);
                return 0;
        }
        if (inet_pton(AF_INET6, b, out) == 1)
                return 0;
        return -EINVAL;
}

int cidr_parse(const char *s, size_t len, cidr *ret)
{
        const char *slash = memchr(s, '/', len);
        size_t alen = slash ? (size_t)(slash - s) : len;
        uint8_t a[16];
        unsigned prefix;
        bool v4;

        if (cidr_addr_parse(s, alen, a) < 0)
                return -EINVAL;
        v4 = memchr(s, ':', alen) == NULL;
        prefix = v4 ? 32 : 128;
        if (slash) {
                const char *p = slash + 1, *end = s + len;
                if (p == end || end - p > 3)
                        return -EINVAL;
                prefix = 0;
                for (; p < end; p++) {
                        if (*p < '0' || *p > '9')
                                return -EINVAL;
                        prefix = prefix * 10 + (unsigned)(*p - '0');
                }
                if (prefix > (v4 ? 32u : 128u))
                        return -EINVAL;
        }
        if (v4)
                prefix += 96;
        /* Store the network address: host bits cleared. */
        for (unsigned i = 0; i < 16; i++) {
                unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
                a[i] &= (uint8_t)(keep ? 0xff << (8 - keep) : 0);
        }
        memcpy(ret->addr, a, 16);
        ret->prefix = (uint8_t)prefix;
        return 0;
}

int cidr_list_parse(const char *s, cidr_list *l, char *bad, size_t badlen)
{
        l->n = 0;
        while (s && *s) {
                const char *e = strchrnul(s, ',');
                const char *a = s, *z = e;
                while (a < z && (*a == ' ' || *a == '\t'))
                        a++;
                while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
                        z--;
                if (l->n >= CIDR_MAX_ENTRIES)
                        return -E2BIG;
                if (cidr_parse(a, (size_t)(z - a), &l->e[l->n]) < 0) {
                        if (bad && badlen)
                                snprintf(bad, badlen, "%.*s", (int)(z - a), a);
                        l->n = 0;
                        return -EINVAL;
                }
                l->n++;
                s = *e ? e + 1 : e;
        }
        return 0;
}

static bool in_block(const cidr *c, const uint8_t a[16])
{
        unsigned full = c->prefix / 8, rest = c->prefix % 8;

        if (memcmp(c->addr, a, full) != 0)
                return false;
        if (rest == 0)
                return true;
        return ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool cidr_list_match(const cidr_list *l, const uint8_t addr[16])
{
        for (size_t i = 0; i < l->n; i++)
                if (in_block(&l->e[i], addr))
                        return true;
        return false;
}

int cidr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16])
{
        if (!sa)
                return -EINVAL;
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
                memcpy(out, v4mapped, 12);
                memcpy(out + 12, &in->sin_addr, 4);
                return 0;
        }
        if (sa->sa_family == AF_INET6) {
                memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
                return 0;
        }
        return -EAFNOSUPPORT;
}

const char *cidr_addr_str(const uint8_t addr[16], char *out, size_t len)
{
        if (memcmp(addr, v4mapped, 12) == 0)
                inet_ntop(AF_INET, addr + 12, out, (socklen_t)len);
        else
                inet_ntop(AF_INET6, addr, out, (socklen_t)len);
        return out;
}
