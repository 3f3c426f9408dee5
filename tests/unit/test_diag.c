/* test_diag.c — the diag module's pure pieces (GPU lists, parameters, verdicts, SKU table) and a
 * supervised level-1 run on the fakes. The fault cases (memory fault, slow link, hang, GPU lost)
 * run end to end through the CLI in tests/integ/test_diag.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diag/diag-internal.h"
#include "diag/diag.h"

static void test_gpu_list(void **state)
{
        diag_opts o = {0};
        (void)state;
        assert_int_equal(diag_parse_gpu_list("0,2,3", &o), 0);
        assert_int_equal(o.ngpus, 3);
        assert_int_equal(o.gpus[2], 3);
        assert_int_equal(diag_parse_gpu_list("0,,1", &o), -EINVAL);
        assert_int_equal(diag_parse_gpu_list("x", &o), -EINVAL);
        assert_int_equal(diag_parse_gpu_list("", &o), -EINVAL);
}

static void test_params(void **state)
{
        char err[128];
        (void)state;
        assert_int_equal(diag_param_check("memtest.duration=30", err, sizeof(err)), 0);
        assert_int_equal(diag_param_check("memtest.duration=abc", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "not a number"));
        assert_int_equal(diag_param_check("nope.key=1", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "unknown parameter 'nope.key'"));
        assert_int_equal(diag_param_check("memtest.duration", err, sizeof(err)), -EINVAL);
}

static void test_verdicts_and_skus(void **state)
{
        (void)state;
        assert_string_equal(diag_verdict_name(DIAG_WARN), "warn");
        assert_int_equal(diag_verdict_parse("fail"), DIAG_FAIL);
        assert_int_equal(diag_verdict_parse("bogus"), -EINVAL);
        assert_string_equal(diag_sku_find("NVIDIA H100 80GB HBM3")->match, "H100");
        assert_string_equal(diag_sku_find("NVIDIA H100 PCIe")->match, "H100 PCIe");
        assert_string_equal(diag_sku_find("NVIDIA H200")->match, "H200");
        assert_null(diag_sku_find("NVIDIA GeForce GTX 1080"));
}

static const json_t *find(const json_t *run, const char *test, int gpu)
{
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(run, "results"), i, r)
        {
                json_t *g = json_object_get(r, "gpu");
                if (strcmp(json_string_value(json_object_get(r, "test")), test) == 0 &&
                    (gpu < 0 ? json_is_null(g) : json_integer_value(g) == gpu))
                        return r;
        }
        return NULL;
}

static void test_level1_on_fakes(void **state)
{
        char worker[4096], scen[4096];
        const char *build = getenv("VIGIL_BUILD_DIR"), *src = getenv("VIGIL_SOURCE_DIR");
        diag_opts o = {.level = 1, .simulate = true, .scenario = scen};
        diag_supervise_opts so = {.worker = worker, .opts = &o};
        json_t *run = NULL;
        (void)state;

        if (!build || !src)
                skip();
        snprintf(worker, sizeof(worker), "%s/bin/vigil-diag", build);
        snprintf(scen, sizeof(scen), "%s/tests/scenarios/constant-2gpu.yaml", src);
        assert_int_equal(diag_supervise(&so, &run), 0);
        assert_string_equal(json_string_value(json_object_get(run, "status")), "completed");
        assert_non_null(find(run, "nvml_library", -1));
        assert_string_equal(
            json_string_value(json_object_get(find(run, "cuda_library", -1), "result")), "pass");
        assert_non_null(find(run, "ecc", 1));
        json_decref(run);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_gpu_list),
            cmocka_unit_test(test_params),
            cmocka_unit_test(test_verdicts_and_skus),
            cmocka_unit_test(test_level1_on_fakes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
