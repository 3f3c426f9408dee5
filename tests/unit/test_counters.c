/* test_counters.c — the dcgm-exporter counters CSV parser: dcgm-exporter's own default file,
 * comments and blank lines, both DCGM name spellings, label entries, quoting, and every kind of
 * malformed record refused with FILE:LINE. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/counters.h"

/* The 26 enabled entries of dcgm-exporter's etc/default-counters.csv, in file order. */
static const struct {
        const char *name;
        enum counter_type type;
        unsigned id;
} default_enabled[] = {
    {"DCGM_FI_DEV_SM_CLOCK", CT_GAUGE, 100},
    {"DCGM_FI_DEV_MEM_CLOCK", CT_GAUGE, 101},
    {"DCGM_FI_DEV_MEMORY_TEMP", CT_GAUGE, 140},
    {"DCGM_FI_DEV_GPU_TEMP", CT_GAUGE, 150},
    {"DCGM_FI_DEV_POWER_USAGE", CT_GAUGE, 155},
    {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", CT_COUNTER, 156},
    {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", CT_COUNTER, 202},
    {"DCGM_FI_DEV_GPU_UTIL", CT_GAUGE, 203},
    {"DCGM_FI_DEV_MEM_COPY_UTIL", CT_GAUGE, 204},
    {"DCGM_FI_DEV_ENC_UTIL", CT_GAUGE, 206},
    {"DCGM_FI_DEV_DEC_UTIL", CT_GAUGE, 207},
    {"DCGM_FI_DEV_XID_ERRORS", CT_GAUGE, 230},
    {"DCGM_FI_DEV_FB_FREE", CT_GAUGE, 251},
    {"DCGM_FI_DEV_FB_USED", CT_GAUGE, 252},
    {"DCGM_FI_DEV_FB_RESERVED", CT_GAUGE, 253},
    {"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", CT_COUNTER, 449},
    {"DCGM_FI_DEV_VGPU_LICENSE_STATUS", CT_GAUGE, 526},
    {"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", CT_COUNTER, 393},
    {"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", CT_COUNTER, 394},
    {"DCGM_FI_DEV_ROW_REMAP_FAILURE", CT_GAUGE, 395},
    {"DCGM_FI_DRIVER_VERSION", CT_LABEL, 1},
    {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", CT_GAUGE, 1001},
    {"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", CT_GAUGE, 1004},
    {"DCGM_FI_PROF_DRAM_ACTIVE", CT_GAUGE, 1005},
    {"DCGM_FI_PROF_PCIE_TX_BYTES", CT_GAUGE, 1009},
    {"DCGM_FI_PROF_PCIE_RX_BYTES", CT_GAUGE, 1010},
};

static counter_set *parse_ok(const char *text)
{
        counter_set *s = NULL;
        char err[512] = "";
        int r = counters_parse(text, strlen(text), "t.csv", &s, err, sizeof(err));
        if (r < 0)
                fail_msg("expected success, got %d: %s", r, err);
        return s;
}

static void test_default_file(void **state)
{
        counter_set *s = NULL;
        char err[512] = "";
        (void)state;

        assert_int_equal(counters_default(&s, err, sizeof(err)), 0);
        assert_int_equal(s->n, 26);
        assert_int_equal(s->n_labels, 1);
        for (size_t i = 0; i < s->n; i++) {
                assert_string_equal(s->entries[i].name, default_enabled[i].name);
                assert_int_equal(s->entries[i].type, default_enabled[i].type);
                assert_int_equal(s->entries[i].src, CS_FIELD);
                assert_int_equal(s->entries[i].field->id, default_enabled[i].id);
                /* help is dcgm-exporter's text, which fields.def also records */
                if (s->entries[i].field->dcgm_help)
                        assert_string_equal(s->entries[i].help, s->entries[i].field->dcgm_help);
        }
        assert_string_equal(s->entries[0].help, "SM clock frequency (in MHz).");
        assert_int_equal(s->entries[0].line, 6);
        counters_free(s);
}

/* The built-in default is deploy/dcgm/default-counters.csv, byte for byte. */
static void test_default_matches_deploy_file(void **state)
{
        const char *src = getenv("VIGIL_SOURCE_DIR");
        char path[4096], *buf;
        size_t len, n;
        const char *text = counters_default_text(&len);
        FILE *f;
        counter_set *s = NULL;
        char err[512];
        (void)state;

        if (!src)
                skip();
        snprintf(path, sizeof(path), "%s/deploy/dcgm/default-counters.csv", src);
        f = fopen(path, "r");
        assert_non_null(f);
        buf = malloc(len + 2);
        n = fread(buf, 1, len + 1, f);
        fclose(f);
        assert_int_equal(n, len);
        assert_memory_equal(buf, text, len);
        free(buf);
        assert_int_equal(counters_load(path, &s, err, sizeof(err)), 0);
        assert_int_equal(s->n, 26);
        counters_free(s);
        assert_int_equal(counters_load("/nonexistent/x.csv", &s, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "cannot read '/nonexistent/x.csv'"));
}

static void test_spellings_labels_quotes(void **state)
{
        counter_set *s =
            parse_ok("# comment\n"
                     "\n"
                     "   \t\n"
                     "  # indented comment\n"
                     "DCGM_FI_DEV_GPU_TEMP_CELSIUS , gauge , GPU temperature (in C).\r\n"
                     "DCGM_FI_DEV_GPU_TEMP,gauge,GPU temperature (in C).\n"
                     "DCGM_FI_DEV_XID_ERROR, gauge, \"Last XID, if any\"\n"
                     "DCGM_FI_SYSTEM_DRIVER_VERSION, label, Driver Version\n"
                     "DCGM_FI_DEV_SERIAL, label, Device Serial Number\n"
                     "DCGM_FI_DEV_POWER_USAGE, histogram, \"say \"\"hi\"\"\"\n"
                     "DCGM_FI_DEV_FB_USED, summary,\n"
                     "DCGM_FI_DEV_OEM_INFOROM_VER, gauge, not collected by Vigil\n"
                     "DCGM_FI_PROF_PCIE_RX_BYTES, counter, dcp");
        (void)state;
        assert_int_equal(s->n, 8);
        assert_int_equal(s->n_families, 6);
        assert_int_equal(s->n_labels, 2);
        assert_string_equal(s->entries[0].name, "DCGM_FI_DEV_GPU_TEMP_CELSIUS");
        assert_int_equal(s->entries[0].field->id, 150);
        assert_string_equal(s->entries[0].help, "GPU temperature (in C).");
        assert_int_equal(s->entries[0].line, 5);
        assert_string_equal(s->entries[1].name, "DCGM_FI_DEV_GPU_TEMP");
        assert_int_equal(s->entries[1].field->id, 150);
        assert_string_equal(s->entries[2].name, "DCGM_FI_DEV_XID_ERROR");
        assert_int_equal(s->entries[2].field->id, 230);
        assert_string_equal(s->entries[2].help, "Last XID, if any");
        assert_int_equal(s->entries[3].type, CT_LABEL);
        assert_int_equal(s->entries[3].field->id, 1);
        assert_int_equal(s->entries[5].type, CT_HISTOGRAM);
        assert_string_equal(s->entries[5].help, "say \"hi\"");
        assert_int_equal(s->entries[6].type, CT_SUMMARY);
        assert_string_equal(s->entries[6].help, "");
        /* DCGM_FI_DEV_OEM_INFOROM_VER: a DCGM field Vigil does not collect, skipped and listed */
        assert_int_equal(s->n_skipped, 1);
        assert_string_equal(s->skipped[0].name, "DCGM_FI_DEV_OEM_INFOROM_VER");
        assert_int_equal(s->skipped[0].line, 12);
        assert_int_equal(s->entries[7].field->id, 1010);
        assert_int_equal(s->entries[7].type, CT_COUNTER);
        assert_int_equal(s->entries[7].line, 13);
        counters_free(s);

        s = parse_ok("");
        assert_int_equal(s->n, 0);
        counters_free(s);
        s = parse_ok("# only comments\n\n");
        assert_int_equal(s->n, 0);
        counters_free(s);
}

/* Rows naming what Vigil cannot read are skipped and listed (the daemon logs them by name), and
 * only the rest count as exported families. */
static void test_skipped_rows(void **state)
{
        counter_set *s = parse_ok("DCGM_FI_DEV_GPU_TEMP, gauge, t\n"
                                  "DCGM_FI_DEV_GPU_TEMP, gauge, again\n"
                                  "DCGM_FI_DEV_NOPE, gauge, x\n"
                                  "DCGM_EXP_P2P_STATUS, counter, x\n"
                                  "DCGM_EXP_XID_ERRORS_COUNT, counter, x\n"
                                  "DCGM_FI_DEV_CPU_TEMP_CURRENT, gauge, x\n"
                                  "DCGM_FI_DRIVER_VERSION, label, d\n");
        (void)state;
        assert_int_equal(s->n, 2);
        assert_int_equal(s->n_families, 1);
        assert_int_equal(s->n_skipped, 5);
        assert_string_equal(s->skipped[0].name, "DCGM_FI_DEV_GPU_TEMP");
        assert_string_equal(s->skipped[1].name, "DCGM_FI_DEV_NOPE");
        assert_int_equal(s->skipped[1].line, 3);
        assert_string_equal(s->skipped[2].name, "DCGM_EXP_P2P_STATUS");
        assert_non_null(strstr(s->skipped[2].why, "windowed"));
        assert_string_equal(s->skipped[4].name, "DCGM_FI_DEV_CPU_TEMP_CURRENT");
        counters_free(s);
}

/* dcgm-exporter's etc/1.x-compatibility-metrics.csv (copied to deploy/dcgm/): the 1.x names map
 * to field ids as go-dcgm maps them and keep their spelling. */
static void test_legacy_file(void **state)
{
        const char *src = getenv("VIGIL_SOURCE_DIR");
        counter_set *s = NULL;
        char err[512] = "", path[4096];
        (void)state;
        if (!src)
                skip();
        snprintf(path, sizeof(path), "%s/deploy/dcgm/1.x-compatibility-metrics.csv", src);
        if (counters_load(path, &s, err, sizeof(err)) != 0)
                fail_msg("%s", err);
        assert_true(s->legacy);
        assert_true(s->n_families >= 15);
        for (size_t i = 0; i < s->n; i++) {
                assert_true(s->entries[i].legacy);
                if (!strcmp(s->entries[i].name, "dcgm_sm_clock"))
                        assert_int_equal(s->entries[i].field->id, 100);
                if (!strcmp(s->entries[i].name, "dcgm_total_energy_consumption"))
                        assert_int_equal(s->entries[i].field->id, 156);
                if (!strcmp(s->entries[i].name, "dcgm_xid_errors"))
                        assert_int_equal(s->entries[i].field->id, 230);
        }
        assert_non_null(s->path);
        /* 22 rows, two of them repeats of the PCIe counters */
        assert_int_equal(s->n + s->n_skipped, 22);
        assert_string_equal(s->skipped[s->n_skipped - 1].name, "dcgm_fi_prof_pcie_rx_bytes");
        counters_free(s);
}

static void test_malformed(void **state)
{
        static const struct {
                const char *text;
                const char *err; /* substring of the message, which starts with FILE:LINE */
        } cases[] = {
            {"DCGM_FI_DEV_GPU_TEMP, gauge\n", "bad.csv:1: malformed CSV record: expected 3 fields"},
            {"# x\n\nDCGM_FI_DEV_GPU_TEMP\n", "bad.csv:3: malformed CSV record"},
            {"DCGM_FI_DEV_GPU_TEMP, gauge, a, b\n", "bad.csv:1: malformed CSV record"},
            {"DCGM_FI_DEV_GPU_TEMP, gauge, help,\n", "bad.csv:1: malformed CSV record"},
            {"DCGM_FI_DEV_GPU_TEMP, gauge, \"open\n",
             "bad.csv:1: malformed CSV record: unbalanced"},
            {"DCGM_FI_DEV_GPU_TEMP, gauge, a\"b\n", "bad.csv:1: malformed CSV record"},
            {"DCGM_FI_DEV_GPU_TEMP, Gauge, x\n", "bad.csv:1: unknown metric type 'Gauge'"},
            {"DCGM_FI_DEV_GPU_TEMP, , x\n", "bad.csv:1: unknown metric type ''"},
            {"GPU_TEMP, gauge, x\n", "bad.csv:1: unknown DCGM field 'GPU_TEMP'"},
            {"vigil_gpu_temperature_celsius, gauge, x\n", "bad.csv:1: unknown DCGM field"},
            {"150, gauge, x\n", "bad.csv:1: '150' is not a valid field name"},
            {", gauge, x\n", "bad.csv:1: '' is not a valid field name"},
            {"DCGM FI, gauge, x\n", "bad.csv:1: 'DCGM FI' is not a valid field name"},
            {"DCGM_FI_DRIVER_VERSION, gauge, x\n",
             "bad.csv:1: 'DCGM_FI_DRIVER_VERSION' is an identity"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                counter_set *s = NULL;
                char err[512] = "";
                int r = counters_parse(cases[i].text, strlen(cases[i].text), "bad.csv", &s, err,
                                       sizeof(err));
                if (r != -EINVAL || !strstr(err, cases[i].err))
                        fail_msg("case %zu: r=%d err='%s', want '%s'", i, r, err, cases[i].err);
                assert_null(s);
        }
}

/* dcgm-exporter's opt-in health family is accepted and flagged for the health engine. */
static void test_health_status_entry(void **state)
{
        static const char text[] =
            "DCGM_FI_DEV_GPU_TEMP, gauge, t\n"
            "DCGM_EXP_GPU_HEALTH_STATUS, gauge, DCGM reported health status\n";
        counter_set *s = NULL;
        char err[256] = "";

        (void)state;
        assert_int_equal(counters_parse(text, strlen(text), "h.csv", &s, err, sizeof(err)), 0);
        assert_true(counters_has_health(s));
        assert_int_equal(s->entries[1].src, CS_HEALTH);
        s = counters_free(s);
        assert_int_equal(counters_parse(text, 31, "h.csv", &s, err, sizeof(err)), 0);
        assert_false(counters_has_health(s));
        counters_free(s);
}

static void test_limits(void **state)
{
        size_t n = COUNTERS_MAX_LINE + 100;
        char *big = malloc(n + 1);
        counter_set *s = NULL;
        char err[256];
        (void)state;

        memset(big, 'A', n);
        big[n] = '\0';
        assert_int_equal(counters_parse(big, n, "big.csv", &s, err, sizeof(err)), -E2BIG);
        assert_non_null(strstr(err, "big.csv:1: record is over"));
        assert_int_equal(counters_parse(big, COUNTERS_MAX_FILE_SIZE + 1, "big.csv", &s, NULL, 0),
                         -E2BIG);
        free(big);
        assert_int_equal(counters_parse("A\0B, gauge, x", 13, "nul.csv", &s, err, sizeof(err)),
                         -EINVAL);
        assert_null(counters_free(NULL));
        assert_string_equal(counter_type_name(CT_LABEL), "label");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_default_file),
            cmocka_unit_test(test_default_matches_deploy_file),
            cmocka_unit_test(test_spellings_labels_quotes),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_skipped_rows),
            cmocka_unit_test(test_legacy_file),
            cmocka_unit_test(test_health_status_entry),
            cmocka_unit_test(test_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
