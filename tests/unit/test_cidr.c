/* test_cidr.c — CIDR parsing and matching (IPv4, IPv6, IPv4-mapped) and the X-Forwarded-For
 * walk (rightmost untrusted hop; only from trusted proxies). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "security/gate.h"
#include "security/cidr.h"

static bool match(const char *list, const char *ip)
{
        cidr_list l;
        uint8_t a[16];

        assert_int_equal(cidr_list_parse(list, &l, NULL, 0), 0);
        assert_int_equal(cidr_addr_parse(ip, strlen(ip), a), 0);
        return cidr_list_match(&l, a);
}

static void t_match_table(void **state)
{
        static const struct {
                const char *list, *ip;
                bool want;
        } cases[] = {
            {"10.0.0.0/8", "10.1.2.3", true},
            {"10.0.0.0/8", "11.0.0.1", false},
            {"10.0.0.0/8", "::ffff:10.0.0.1", true}, /* IPv4-mapped */
            {"127.0.0.1/32", "127.0.0.1", true},
            {"127.0.0.1/32", "127.0.0.2", false},
            {"127.0.0.1", "127.0.0.1", true}, /* bare address = /32 */
            {"0.0.0.0/0", "203.0.113.9", true},
            {"0.0.0.0/0", "2001:db8::1", false}, /* IPv4 /0 is not all of IPv6 */
            {"::/0", "2001:db8::1", true},
            {"::1/128", "::1", true},
            {"::1/128", "::2", false},
            {"2001:db8::/32", "2001:db8:ffff::1", true},
            {"2001:db8::/32", "2001:db9::1", false},
            {"192.168.1.0/25", "192.168.1.127", true},
            {"192.168.1.0/25", "192.168.1.128", false},
            {"192.168.1.77/24", "192.168.1.1", true}, /* host bits ignored */
            {"10.0.0.0/8, 192.168.0.0/16", "192.168.5.5", true},
            {"", "10.0.0.1", false},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (match(cases[i].list, cases[i].ip) != cases[i].want)
                        fail_msg("'%s' vs '%s': expected %d", cases[i].list, cases[i].ip,
                                 cases[i].want);
}

static void t_parse_errors(void **state)
{
        static const char *const bad[] = {
            "10.0.0.0/33", "::/129",    "10.0.0/8",     "10.0.0.0/", "10.0.0.0/-1",   "abc",
            "10.0.0.0/8x", "1.2.3.4.5", "::ffff::1/64", "/8",        "10.0.0.0/0008",
        };
        cidr_list l;
        char b[64];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (cidr_list_parse(bad[i], &l, b, sizeof(b)) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(cidr_list_parse("10.0.0.0/8,bogus", &l, b, sizeof(b)), -EINVAL);
        assert_string_equal(b, "bogus");
}

static void t_xff(void **state)
{
        static const struct {
                const char *peer, *xff, *want;
        } cases[] = {
            /* peer is not a trusted proxy: XFF ignored (spoofing) */
            {"203.0.113.5", "10.9.9.9", "203.0.113.5"},
            /* one trusted proxy: the rightmost hop is the client */
            {"10.0.0.2", "198.51.100.7", "198.51.100.7"},
            /* client forged a left entry; rightmost untrusted wins */
            {"10.0.0.2", "1.1.1.1, 198.51.100.7", "198.51.100.7"},
            /* chain of trusted proxies */
            {"10.0.0.2", "198.51.100.7, 10.0.0.3", "198.51.100.7"},
            /* garbage stops the walk at the last good address */
            {"10.0.0.2", "198.51.100.7, junk", "10.0.0.2"},
            /* no header */
            {"10.0.0.2", NULL, "10.0.0.2"},
        };
        cidr_list proxies;

        (void)state;
        assert_int_equal(cidr_list_parse("10.0.0.0/24", &proxies, NULL, 0), 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint8_t peer[16], out[16];
                char s[64];
                cidr_addr_parse(cases[i].peer, strlen(cases[i].peer), peer);
                gate_xff_client(peer, cases[i].xff, &proxies, out);
                cidr_addr_str(out, s, sizeof(s));
                if (strcmp(s, cases[i].want) != 0)
                        fail_msg("peer %s xff '%s': got %s, want %s", cases[i].peer,
                                 cases[i].xff ? cases[i].xff : "(none)", s, cases[i].want);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_match_table),
            cmocka_unit_test(t_parse_errors),
            cmocka_unit_test(t_xff),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
