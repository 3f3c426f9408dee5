/* test_fields.c — the catalog is consistent and covers what dcgm-exporter enables by default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fields/fields.h"

/* dcgm-exporter's default-counters.csv, enabled entries (reference/dcgm-compat.md §2.1). */
static const char *const exporter_defaults[] = {
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
    "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DRIVER_VERSION",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "DCGM_FI_PROF_PCIE_TX_BYTES",
    "DCGM_FI_PROF_PCIE_RX_BYTES",
};

static void test_exporter_defaults_present(void **state)
{
        (void)state;
        assert_int_equal(sizeof(exporter_defaults) / sizeof(exporter_defaults[0]), 26);
        for (size_t i = 0; i < sizeof(exporter_defaults) / sizeof(exporter_defaults[0]); i++) {
                const field_meta *f = field_by_name(exporter_defaults[i]);
                if (!f)
                        fail_msg("catalog lacks '%s'", exporter_defaults[i]);
                assert_string_equal(f->dcgm_name, exporter_defaults[i]);
        }
}

static void test_aliases_and_ids(void **state)
{
        (void)state;
        assert_int_equal(field_by_name("DCGM_FI_DEV_GPU_TEMP_CELSIUS")->id, 150);
        assert_int_equal(field_by_name("DCGM_FI_DEV_BOARD_POWER_WATTS")->id, 155);
        assert_int_equal(field_by_name("gpu_temp")->id, 150);
        assert_int_equal(field_by_name("150")->id, 150);
        assert_int_equal(field_by_name("vigil_gpu_power_watts")->id, 155);
        assert_null(field_by_name("DCGM_FI_DEV_NO_SUCH"));
        assert_null(field_by_name("150x"));
        assert_null(field_by_name(""));
        assert_int_equal(FLD_XID_ERRORS, 230);
}

static int valid_metric_name(const char *s)
{
        if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return 0;
        return 1;
}

/* field_index: every catalog id to its position (the table below 2048, Vigil's own table from
 * 60000 and the scan elsewhere), and -1 for every id that is not in the catalog, at the tables'
 * edges too. */
static void test_field_index(void **state)
{
        (void)state;
        for (size_t i = 0; i < field_count(); i++)
                assert_int_equal(field_index(field_at(i)->id), (int)i);
        for (unsigned id = 0; id < 70000; id++)
                if (!field_by_id(id) || field_by_id(id)->id != id) {
                        bool known = false;
                        for (size_t i = 0; i < field_count(); i++)
                                known |= field_at(i)->id == id;
                        assert_false(known);
                        assert_int_equal(field_index(id), -1);
                }
        assert_int_equal(field_index(2047), -1);
        assert_int_equal(field_index(2048), -1);
        assert_int_equal(field_index(59999), -1);
        assert_int_equal(field_index(60255), -1);
        assert_int_equal(field_index(60256), -1);
        assert_int_equal(field_index(UINT32_MAX), -1);
}

static void test_catalog_consistent(void **state)
{
        (void)state;
        for (size_t i = 0; i < field_count(); i++) {
                const field_meta *f = field_at(i);
                assert_non_null(f->help);
                assert_true(f->native_scale > 0);
                for (size_t j = i + 1; j < field_count(); j++) {
                        assert_int_not_equal(f->id, field_at(j)->id);
                        if (f->native && field_at(j)->native)
                                assert_string_not_equal(f->native, field_at(j)->native);
                }
                if (f->kind == FK_LABEL) {
                        assert_null(f->native);
                        continue;
                }
                assert_non_null(f->native);
                assert_true(valid_metric_name(f->native));
                assert_int_equal(strncmp(f->native, "vigil_", 6), 0);
                /* Prometheus conventions: counters end in _total, nothing else does. */
                size_t l = strlen(f->native);
                int total = l > 6 && strcmp(f->native + l - 6, "_total") == 0;
                assert_int_equal(total, f->kind == FK_COUNTER);
                assert_true(f->type != FT_STR);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exporter_defaults_present),
            cmocka_unit_test(test_aliases_and_ids),
            cmocka_unit_test(test_catalog_consistent),
            cmocka_unit_test(test_field_index),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
