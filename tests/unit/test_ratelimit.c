/* test_ratelimit.c — token buckets: burst, refill rate, Retry-After, independent keys, bounded
 * table under many keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "security/ratelimit.h"

static void t_burst_then_refill(void **state)
{
        ratelimit *rl = NULL;
        unsigned retry = 0, ok = 0;
        int64_t t = 1000000;

        (void)state;
        assert_int_equal(ratelimit_new(60, 20, &rl), 0); /* 1 per second, burst 20 */
        for (int i = 0; i < 100; i++)
                ok += ratelimit_take(rl, "p:alice", t, &retry);
        assert_int_equal(ok, 20);
        assert_int_equal(retry, 1);
        /* 10 s later: exactly 10 more */
        ok = 0;
        for (int i = 0; i < 100; i++)
                ok += ratelimit_take(rl, "p:alice", t + 10000000, NULL);
        assert_int_equal(ok, 10);
        /* another key is independent */
        assert_true(ratelimit_take(rl, "ip:10.0.0.1", t, NULL));
        ratelimit_free(rl);
}

static void t_offered_load(void **state)
{
        /* security-reliability.md A7: 10 req/s, burst 20, 100 req/s offered for 10 s → 120 */
        ratelimit *rl = NULL;
        unsigned ok = 0;

        (void)state;
        assert_int_equal(ratelimit_new(600, 20, &rl), 0);
        for (int i = 0; i < 1000; i++)
                ok += ratelimit_take(rl, "k", (int64_t)i * 10000, NULL);
        assert_in_range(ok, 118, 121);
        ratelimit_free(rl);
}

static void t_retry_after(void **state)
{
        ratelimit *rl = NULL;
        unsigned retry = 0;

        (void)state;
        assert_int_equal(ratelimit_new(1, 1, &rl), 0); /* one per minute */
        assert_true(ratelimit_take(rl, "k", 0, &retry));
        assert_false(ratelimit_take(rl, "k", 0, &retry));
        assert_int_equal(retry, 60);
        assert_false(ratelimit_take(rl, "k", 30000000, &retry));
        assert_int_equal(retry, 30);
        assert_true(ratelimit_take(rl, "k", 60000000, &retry));
        ratelimit_free(rl);
}

static void t_many_keys_bounded(void **state)
{
        ratelimit *rl = NULL;
        char k[32];

        (void)state;
        assert_int_equal(ratelimit_new(60, 1, &rl), 0);
        for (int i = 0; i < 100000; i++) {
                snprintf(k, sizeof(k), "ip:%d", i);
                assert_true(ratelimit_take(rl, k, i, NULL)); /* new keys start full */
        }
        ratelimit_free(rl);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_burst_then_refill),
            cmocka_unit_test(t_offered_load),
            cmocka_unit_test(t_retry_after),
            cmocka_unit_test(t_many_keys_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
