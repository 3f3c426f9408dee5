/* test_gpuconfig.c — the text values of GPU settings (health/gpuconfig.h): what `vigil config
 * set`, the API and config.enforce accept, what they refuse with which reason, and the canonical
 * form that `config get` shows and restore applies (format ∘ parse is the identity on it). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "health/gpuconfig.h"

static const struct {
        enum backend_cfg_setting s;
        const char *in;
        int rc;
        unsigned a, b;
        const char *canon; /* format of the parsed value; NULL when rc < 0 */
} cases[] = {
    {BCFG_POWER_LIMIT, "500", 0, 500000, 0, "500"},
    {BCFG_POWER_LIMIT, "450.5", 0, 450500, 0, "450.500"},
    {BCFG_POWER_LIMIT, "0", -EINVAL, 0, 0, NULL},
    {BCFG_POWER_LIMIT, "-5", -EINVAL, 0, 0, NULL},
    {BCFG_POWER_LIMIT, "500W", -EINVAL, 0, 0, NULL},
    {BCFG_POWER_LIMIT, "nan", -EINVAL, 0, 0, NULL},
    {BCFG_POWER_LIMIT, "1e9", -EINVAL, 0, 0, NULL},
    {BCFG_APP_CLOCKS, "3201,1980", 0, 3201, 1980, "3201,1980"},
    {BCFG_APP_CLOCKS, "default", 0, 0, 0, "default"},
    {BCFG_APP_CLOCKS, "1980", -EINVAL, 0, 0, NULL},
    {BCFG_APP_CLOCKS, "3201,", -EINVAL, 0, 0, NULL},
    {BCFG_APP_CLOCKS, "3201,0", -EINVAL, 0, 0, NULL},
    {BCFG_APP_CLOCKS, "a,b", -EINVAL, 0, 0, NULL},
    {BCFG_LOCKED_GPU_CLOCKS, "1200,1800", 0, 1200, 1800, "1200,1800"},
    {BCFG_LOCKED_GPU_CLOCKS, "1500", 0, 1500, 1500, "1500,1500"},
    {BCFG_LOCKED_GPU_CLOCKS, "reset", 0, 0, 0, "reset"},
    {BCFG_LOCKED_GPU_CLOCKS, "1800,1200", -EINVAL, 0, 0, NULL},
    {BCFG_LOCKED_MEM_CLOCKS, "3201,3201", 0, 3201, 3201, "3201,3201"},
    {BCFG_LOCKED_MEM_CLOCKS, "99999999999", -EINVAL, 0, 0, NULL},
    {BCFG_COMPUTE_MODE, "exclusive_process", 0, 3, 0, "exclusive_process"},
    {BCFG_COMPUTE_MODE, "2", 0, 2, 0, "prohibited"},
    {BCFG_COMPUTE_MODE, "Default", 0, 0, 0, "default"},
    {BCFG_COMPUTE_MODE, "1", -EINVAL, 0, 0, NULL}, /* exclusive thread: gone from NVML */
    {BCFG_PERSISTENCE, "on", 0, 1, 0, "enabled"},
    {BCFG_PERSISTENCE, "false", 0, 0, 0, "disabled"},
    {BCFG_ECC, "Enabled", 0, 1, 0, "enabled"},
    {BCFG_ECC, "2", -EINVAL, 0, 0, NULL},
    {BCFG_ECC, "", -EINVAL, 0, 0, NULL},
};

static void test_parse_format(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                gpucfg_value v = {.a = 77, .b = 77}, w;
                char err[256] = "", out[GPUCFG_VALUE_MAX];
                int r = gpucfg_value_parse(cases[i].s, cases[i].in, &v, err, sizeof(err));

                if (r != cases[i].rc)
                        fail_msg("%s '%s': %d, want %d (%s)", gpucfg_setting_name(cases[i].s),
                                 cases[i].in, r, cases[i].rc, err);
                if (r < 0) {
                        /* the reason names the setting; the value is untouched */
                        assert_non_null(strstr(err, gpucfg_setting_name(cases[i].s)));
                        assert_int_equal(v.a, 77);
                        continue;
                }
                assert_true(v.set);
                assert_int_equal(v.a, cases[i].a);
                assert_int_equal(v.b, cases[i].b);
                gpucfg_value_format(cases[i].s, &v, out, sizeof(out));
                assert_string_equal(out, cases[i].canon);
                assert_int_equal(gpucfg_value_parse(cases[i].s, out, &w, err, sizeof(err)), 0);
                assert_int_equal(w.a, v.a);
                assert_int_equal(w.b, v.b);
        }
}

static void test_names(void **state)
{
        (void)state;
        for (int s = 0; s < BCFG_COUNT; s++)
                assert_int_equal(gpucfg_setting_from_name(gpucfg_setting_name(s)), s);
        assert_int_equal(gpucfg_setting_from_name("sync_boost"), -EINVAL);
        assert_int_equal(gpucfg_setting_from_name(NULL), -EINVAL);
        assert_null(gpucfg_setting_name(BCFG_COUNT));
}

static void test_gpus(void **state)
{
        static const char *const good[] = {"all", "0", "0,1,7", "GPU-f4ce0000-4d84", "1, GPU-x"};
        static const char *const bad[] = {"", "x", "64", "-1", "0,,a", "GPU-"};
        char err[256];

        (void)state;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                assert_int_equal(gpucfg_gpus_check(good[i], err, sizeof(err)), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (gpucfg_gpus_check(bad[i], err, sizeof(err)) != -EINVAL)
                        fail_msg("'%s' accepted", bad[i]);
                assert_non_null(strstr(err, "gpus"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_format),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_gpus),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
