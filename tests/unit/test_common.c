/* test_common.c — durations, bounded buffers and the errno map. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/errmap.h"
#include "common/vtime.h"

static void test_duration_table(void **state)
{
        static const struct {
                const char *in;
                int ret;
                int64_t us;
        } cases[] = {
            {"1s", 0, 1000000},
            {"250ms", 0, 250000},
            {"10m", 0, 600000000},
            {"1h", 0, 3600000000LL},
            {"7d", 0, 604800000000LL},
            {"5", 0, 5000000},
            {"1h30m", 0, 5400000000LL},
            {"100us", 0, 100},
            {"", -EINVAL, 0},
            {"-1s", -EINVAL, 0},
            {"1x", -EINVAL, 0},
            {"s", -EINVAL, 0},
            {"1h30", -EINVAL, 0},
            {"99999999999999999999s", -ERANGE, 0},
            {"9999999999999d", -ERANGE, 0},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t us = -1;
                int r = time_parse_duration(cases[i].in, &us);
                assert_int_equal(r, cases[i].ret);
                if (r == 0)
                        assert_int_equal(us, cases[i].us);
                else
                        assert_int_equal(us, -1); /* untouched on failure */
        }
}

static void test_duration_format(void **state)
{
        char b[32];
        (void)state;
        assert_string_equal(time_format_duration(1000000, b, sizeof(b)), "1s");
        assert_string_equal(time_format_duration(250000, b, sizeof(b)), "250ms");
        assert_string_equal(time_format_duration(3600000000LL, b, sizeof(b)), "1h");
}

static void test_buf_limit(void **state)
{
        buf b;
        (void)state;
        buf_init(&b, 16);
        assert_int_equal(buf_puts(&b, "0123456789"), 0);
        assert_int_equal(buf_printf(&b, "%d", 12345), 0);
        assert_int_equal(b.len, 15);
        assert_int_equal(buf_puts(&b, "ab"), -E2BIG);
        assert_int_equal(b.len, 15);                 /* nothing partial */
        assert_int_equal(buf_puts(&b, "a"), -E2BIG); /* sticky */
        buf_reset(&b);
        assert_int_equal(buf_printf(&b, "%s-%s", "x", "y"), 0);
        assert_string_equal(b.data, "x-y");
        buf_release(&b);
}

static void test_buf_grow(void **state)
{
        buf b;
        (void)state;
        buf_init(&b, 0);
        for (int i = 0; i < 10000; i++)
                assert_int_equal(buf_printf(&b, "line %d\n", i), 0);
        assert_non_null(strstr(b.data, "line 9999\n"));
        buf_release(&b);
}

static void test_errmap(void **state)
{
        (void)state;
        assert_int_equal(errmap_http_status(0), 200);
        assert_int_equal(errmap_http_status(-ENOENT), 404);
        assert_int_equal(errmap_http_status(-EINVAL), 400);
        assert_int_equal(errmap_http_status(-EACCES), 403);
        assert_int_equal(errmap_http_status(-12345), 500);
        assert_int_equal(errmap_exit_code(-ECONNREFUSED), 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_duration_table), cmocka_unit_test(test_duration_format),
            cmocka_unit_test(test_buf_limit),      cmocka_unit_test(test_buf_grow),
            cmocka_unit_test(test_errmap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
