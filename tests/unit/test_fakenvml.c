/* test_fakenvml.c — the fake NVML as the backend sees it: the test dlopens
 * build/lib/libvigil-fakenvml.so and calls the exported NVML ABI, and checks the pure parts
 * (sources, trace, parser errors) through the core library linked in. One process; each test
 * shuts NVML down to refcount 0 and configures its own scenario from tests/scenarios. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nvml/nvml_types.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "fakenvml/fake-internal.h"
#include "fields/fields.h"
#include "testutil.h"

#define NVML_FN(ret, member, req, params, ...) typedef ret(*fn_##member) params;
#include "nvml/nvml_syms.h"
#undef NVML_FN

static struct {
        void *so;
#define NVML_FN(ret, member, req, params, ...) fn_##member member;
#include "nvml/nvml_syms.h"
#undef NVML_FN
        int (*configure)(const char *, char *, size_t);
        int (*inject)(const struct fake_inject *, char *, size_t);
        void (*stats)(struct fake_stats *);
        int (*advance)(long long);
} nv;

static char src_dir[1024];

static void *sym(const char *name)
{
        void *p = dlsym(nv.so, name);

        if (!p)
                fail_msg("libvigil-fakenvml.so does not export '%s'", name);
        return p;
}

static int setup_lib(void **state)
{
        const char *b = getenv("VIGIL_BUILD_DIR"), *s = getenv("VIGIL_SOURCE_DIR");
        char path[1200];

        (void)state;
        if (!b || !s) {
                fprintf(stderr, "VIGIL_BUILD_DIR and VIGIL_SOURCE_DIR must be set\n");
                return -1;
        }
        snprintf(src_dir, sizeof(src_dir), "%s", s);
        snprintf(path, sizeof(path), "%s/lib/libvigil-fakenvml.so", b);
        nv.so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!nv.so) {
                fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
                return -1;
        }
#define NVML_FN(ret, member, req, params, first, ...) nv.member = (fn_##member)dlsym(nv.so, first);
#include "nvml/nvml_syms.h"
#undef NVML_FN
        nv.configure = (int (*)(const char *, char *, size_t))dlsym(nv.so, "vigil_fake_configure");
        nv.inject =
            (int (*)(const struct fake_inject *, char *, size_t))dlsym(nv.so, "vigil_fake_inject");
        nv.stats = (void (*)(struct fake_stats *))dlsym(nv.so, "vigil_fake_stats");
        nv.advance = (int (*)(long long))dlsym(nv.so, "vigil_fake_advance");
        return nv.configure && nv.inject && nv.stats && nv.advance ? 0 : -1;
}

static int teardown_lib(void **state)
{
        (void)state;
        while (nv.shutdown() == NVML_SUCCESS)
                ;
        dlclose(nv.so);
        return 0;
}

/* Shut down fully, configure tests/scenarios/NAME (NULL: built-in default), init. */
static void start(const char *name, int cost_scale_pct)
{
        char path[1400], err[512];
        int r;

        while (nv.shutdown() == NVML_SUCCESS)
                ;
        if (name)
                snprintf(path, sizeof(path), "%s/tests/scenarios/%s", src_dir, name);
        r = nv.configure(name ? path : NULL, err, sizeof(err));
        if (r < 0)
                fail_msg("configure %s: %s", name ? name : "default", err);
        if (cost_scale_pct >= 0) {
                struct fake_inject in = {
                    .kind = FAKE_INJECT_CALL_COST, .call = "*", .count = cost_scale_pct};
                assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        }
        assert_int_equal(nv.init(), NVML_SUCCESS);
}

static nvmlDevice_t dev(unsigned i)
{
        nvmlDevice_t d = NULL;

        assert_int_equal(nv.handle_by_index(i, &d), NVML_SUCCESS);
        return d;
}

/* ---- ABI ---- */

static void test_exports(void **state)
{
        (void)state;
        for (const char *const *n = fake_call_all_names(); *n; n++)
                sym(*n);
        sym("vigil_fake_configure");
        sym("vigil_fake_inject");
        sym("vigil_fake_stats");
        /* Internals stay hidden. */
        assert_null(dlsym(nv.so, "fake_engine_init"));
        assert_null(dlsym(nv.so, "fake_scenario_parse"));
        assert_null(dlsym(nv.so, "field_by_name"));
        assert_null(dlsym(nv.so, "log_msg"));
        /* Old names are the same functions as the new ones. */
        assert_ptr_equal(sym("nvmlInit"), sym("nvmlInit_v2"));
        assert_ptr_equal(sym("nvmlEventSetWait"), sym("nvmlEventSetWait_v2"));
}

static void test_return_codes(void **state)
{
        unsigned n = 0, v;
        char buf[128];
        nvmlDevice_t d = NULL;
        nvmlMemory_v2_t m2 = {0};
        int not_a_device = 0;

        (void)state;
        while (nv.shutdown() == NVML_SUCCESS)
                ;
        /* Before init. */
        assert_int_equal(nv.device_count(&n), NVML_ERROR_UNINITIALIZED);
        assert_int_equal(nv.handle_by_index(0, &d), NVML_ERROR_UNINITIALIZED);
        assert_int_equal(nv.shutdown(), NVML_ERROR_UNINITIALIZED);
        assert_int_equal(nv.system_driver_version(buf, sizeof(buf)), NVML_ERROR_UNINITIALIZED);

        start("constant-2gpu.yaml", -1);
        /* Reference counted. */
        assert_int_equal(nv.init(), NVML_SUCCESS);
        assert_int_equal(nv.shutdown(), NVML_SUCCESS);
        assert_int_equal(nv.device_count(&n), NVML_SUCCESS);
        assert_int_equal(n, 2);
        /* Bad arguments. */
        assert_int_equal(nv.device_count(NULL), NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.handle_by_index(2, &d), NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.handle_by_index(0, NULL), NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.temperature((nvmlDevice_t)&not_a_device, NVML_TEMPERATURE_GPU, &v),
                         NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.temperature(NULL, NVML_TEMPERATURE_GPU, &v),
                         NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, NULL),
                         NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.temperature(dev(0), (nvmlTemperatureSensors_t)7, &v),
                         NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.clock_info(dev(0), (nvmlClockType_t)9, &v),
                         NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.handle_by_uuid("GPU-nope", &d), NVML_ERROR_NOT_FOUND);
        /* Small buffers. */
        assert_int_equal(nv.name(dev(0), buf, 5), NVML_ERROR_INSUFFICIENT_SIZE);
        assert_int_equal(nv.uuid(dev(0), buf, 10), NVML_ERROR_INSUFFICIENT_SIZE);
        assert_int_equal(nv.system_driver_version(buf, 3), NVML_ERROR_INSUFFICIENT_SIZE);
        assert_int_equal(nv.name(dev(0), buf, (unsigned)strlen("NVIDIA H200") + 1), NVML_SUCCESS);
        /* Versioned struct. */
        m2.version = 1;
        assert_int_equal(nv.memory_info_v2(dev(0), &m2), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        assert_int_equal(nv.memory_info_v2(dev(0), NULL), NVML_ERROR_INVALID_ARGUMENT);
        /* Error strings. */
        assert_string_equal(nv.error_string(NVML_SUCCESS), "Success");
        assert_string_equal(nv.error_string(NVML_ERROR_GPU_IS_LOST), "GPU is lost");
        assert_string_equal(nv.error_string(NVML_ERROR_UNKNOWN), "Unknown Error");
        assert_string_equal(nv.error_string((nvmlReturn_t)12345), "Unknown Error");
        /* Unsupported policies and event types. */
        {
                nvmlViolationTime_t vt;
                nvmlEventSet_t set;
                assert_int_equal(
                    nv.violation_status(dev(0), NVML_PERF_POLICY_TOTAL_APP_CLOCKS, &vt),
                    NVML_ERROR_NOT_SUPPORTED);
                assert_int_equal(nv.event_set_create(&set), NVML_SUCCESS);
                assert_int_equal(nv.register_events(dev(0), nvmlEventTypePState, set),
                                 NVML_ERROR_NOT_SUPPORTED);
                assert_int_equal(nv.event_set_free(set), NVML_SUCCESS);
        }
        assert_int_equal(nv.shutdown(), NVML_SUCCESS);
        assert_int_equal(nv.device_count(&n), NVML_ERROR_UNINITIALIZED);
}

static void test_identity(void **state)
{
        char buf[96];
        nvmlPciInfo_t pci;
        nvmlDevice_t d;
        unsigned v;
        int brand;

        (void)state;
        start("constant-2gpu.yaml", -1);
        assert_int_equal(nv.name(dev(0), buf, sizeof(buf)), NVML_SUCCESS);
        assert_string_equal(buf, "NVIDIA H200");
        assert_int_equal(nv.uuid(dev(0), buf, sizeof(buf)), NVML_SUCCESS);
        assert_int_equal(strncmp(buf, "GPU-", 4), 0);
        assert_int_equal(strlen(buf), 40);
        assert_int_equal(nv.uuid(dev(1), buf, sizeof(buf)), NVML_SUCCESS);
        assert_string_equal(buf, "GPU-00000000-1111-2222-3333-444444444444");
        assert_int_equal(nv.handle_by_uuid(buf, &d), NVML_SUCCESS);
        assert_ptr_equal(d, dev(1));
        assert_int_equal(nv.serial(dev(1), buf, sizeof(buf)), NVML_SUCCESS);
        assert_string_equal(buf, "1654224000099");
        assert_int_equal(nv.pci_info(dev(1), &pci), NVML_SUCCESS);
        assert_string_equal(pci.busId, "00000000:2A:00.0");
        assert_string_equal(pci.busIdLegacy, "0000:2A:00.0");
        assert_int_equal(pci.bus, 0x2a);
        assert_int_equal(pci.pciDeviceId & 0xffff, 0x10de);
        assert_int_equal(nv.pci_info(dev(0), &pci), NVML_SUCCESS);
        assert_string_equal(pci.busId, "00000000:18:00.0");
        assert_int_equal(nv.minor_number(dev(1), &v), NVML_SUCCESS);
        assert_int_equal(v, 1);
        assert_int_equal(nv.brand(dev(0), &brand), NVML_SUCCESS);
        assert_int_equal(nv.system_driver_version(buf, sizeof(buf)), NVML_SUCCESS);
        assert_string_equal(buf, "580.159");
        assert_int_equal(nv.vbios_version(dev(0), buf, sizeof(buf)), NVML_SUCCESS);
        assert_int_equal(nv.inforom_image_version(dev(0), buf, sizeof(buf)), NVML_SUCCESS);
        assert_int_equal(nv.max_pcie_gen(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 5);
        assert_int_equal(nv.max_pcie_width(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 16);
        assert_int_equal(nv.power_default_limit(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 700000);
        assert_int_equal(nv.temperature_threshold(dev(0), NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &v),
                         NVML_SUCCESS);
        assert_true(v > 80 && v < 100);
}

static void test_constant_values(void **state)
{
        unsigned v, a, b, c, d4;
        unsigned long long u;
        nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
        nvmlMemory_t m1;
        nvmlUtilization_t ut;
        nvmlViolationTime_t vt;
        nvmlEnableState_t cur, pend;
        nvmlPstates_t ps;
        static const struct {
                unsigned id;
                unsigned long long want;
        } fv_want[] = {
            {NVML_FI_DEV_MEMORY_TEMP, 50},         {NVML_FI_DEV_POWER_AVERAGE, 250500},
            {NVML_FI_DEV_POWER_INSTANT, 260000},   {NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, 1000000},
            {NVML_FI_DEV_ECC_SBE_VOL_TOTAL, 2},    {NVML_FI_DEV_ECC_DBE_VOL_TOTAL, 0},
            {NVML_FI_DEV_ECC_SBE_AGG_TOTAL, 12},   {NVML_FI_DEV_ECC_DBE_AGG_TOTAL, 1},
            {NVML_FI_DEV_PCIE_REPLAY_COUNTER, 7},  {NVML_FI_DEV_REMAPPED_COR, 4},
            {NVML_FI_DEV_REMAPPED_UNC, 1},         {NVML_FI_DEV_REMAPPED_PENDING, 0},
            {NVML_FI_DEV_REMAPPED_FAILURE, 0},     {NVML_FI_DEV_PERF_POLICY_THERMAL, 123456789},
            {NVML_FI_DEV_PERF_POLICY_POWER, 1000}, {NVML_FI_DEV_ECC_CURRENT, 1},
            {NVML_FI_DEV_RETIRED_SBE, 3},          {NVML_FI_DEV_RETIRED_DBE, 1},
        };
        nvmlFieldValue_t fv[ARRAY_SIZE(fv_want) + 1];
        long long now = time_real_us();

        (void)state;
        start("constant-2gpu.yaml", -1);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 45);
        assert_int_equal(nv.temperature(dev(1), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 61);
        assert_int_equal(nv.power_usage(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 250500);
        assert_int_equal(nv.power_usage(dev(1), &v), NVML_SUCCESS);
        assert_int_equal(v, 300000);
        assert_int_equal(nv.memory_info_v2(dev(0), &m2), NVML_SUCCESS);
        assert_int_equal(m2.total, 143771ULL << 20);
        assert_int_equal(m2.reserved, 571ULL << 20);
        assert_int_equal(m2.used, 1024ULL << 20);
        assert_int_equal(m2.free, m2.total - m2.reserved - m2.used);
        assert_int_equal(nv.memory_info(dev(0), &m1), NVML_SUCCESS);
        assert_int_equal(m1.total, m2.total);
        assert_int_equal(m1.free, m2.free);
        assert_int_equal(m1.used + m1.free, m1.total);
        assert_int_equal(nv.utilization(dev(0), &ut), NVML_SUCCESS);
        assert_int_equal(ut.gpu, 75);
        assert_int_equal(ut.memory, 30);
        assert_int_equal(nv.decoder_utilization(dev(0), &v, &a), NVML_SUCCESS);
        assert_int_equal(v, 5);
        assert_true(a > 0);
        assert_int_equal(nv.clock_info(dev(0), NVML_CLOCK_SM, &v), NVML_SUCCESS);
        assert_int_equal(v, 1980);
        assert_int_equal(nv.clock_info(dev(0), NVML_CLOCK_MEM, &v), NVML_SUCCESS);
        assert_int_equal(v, 3201);
        assert_int_equal(nv.clocks_event_reasons(dev(0), &u), NVML_SUCCESS);
        assert_int_equal(u, nvmlClocksEventReasonSwPowerCap);
        assert_int_equal(nv.performance_state(dev(0), &ps), NVML_SUCCESS);
        assert_int_equal(ps, NVML_PSTATE_0);
        assert_int_equal(nv.remapped_rows(dev(0), &a, &b, &c, &d4), NVML_SUCCESS);
        assert_int_equal(a, 4);
        assert_int_equal(b, 1);
        assert_int_equal(
            nv.total_ecc_errors(dev(0), NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC, &u),
            NVML_SUCCESS);
        assert_int_equal(u, 1);
        assert_int_equal(nv.total_energy(dev(0), &u), NVML_SUCCESS);
        assert_int_equal(u, 1000000);
        assert_int_equal(nv.violation_status(dev(0), NVML_PERF_POLICY_THERMAL, &vt), NVML_SUCCESS);
        assert_int_equal(vt.violationTime, 123456789);
        assert_true((long long)vt.referenceTime >= now);
        assert_int_equal(nv.pcie_replay_counter(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 7);
        assert_int_equal(nv.pcie_throughput(dev(0), NVML_PCIE_UTIL_TX_BYTES, &v), NVML_SUCCESS);
        assert_int_equal(v, 1024);
        assert_int_equal(nv.pcie_throughput(dev(0), NVML_PCIE_UTIL_RX_BYTES, &v), NVML_SUCCESS);
        assert_int_equal(v, 2048);
        assert_int_equal(nv.ecc_mode(dev(0), &cur, &pend), NVML_SUCCESS);
        assert_int_equal(cur, NVML_FEATURE_ENABLED);
        assert_int_equal(nv.persistence_mode(dev(0), &cur), NVML_SUCCESS);
        assert_int_equal(nv.power_limit(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 700000);
        /* Retired pages: size query, then the list. */
        a = 0;
        assert_int_equal(nv.retired_pages(dev(0),
                                          NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                                          &a, NULL),
                         NVML_ERROR_INSUFFICIENT_SIZE);
        assert_int_equal(a, 3);
        {
                unsigned long long addrs[3];
                assert_int_equal(
                    nv.retired_pages(dev(0),
                                     NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS, &a,
                                     addrs),
                    NVML_SUCCESS);
        }
        a = 0;
        assert_int_equal(nv.compute_processes(dev(0), &a, NULL), NVML_SUCCESS);
        assert_int_equal(a, 0);
        /* Power limit mutator. */
        assert_int_equal(nv.set_power_limit(dev(0), 100000), NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.set_power_limit(dev(0), 500000), NVML_SUCCESS);
        assert_int_equal(nv.power_limit(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 500000);
        assert_int_equal(nv.enforced_power_limit(dev(0), &v), NVML_SUCCESS);
        assert_int_equal(v, 500000);

        /* Field values, plus one unknown id. */
        memset(fv, 0, sizeof(fv));
        for (size_t i = 0; i < ARRAY_SIZE(fv_want); i++)
                fv[i].fieldId = fv_want[i].id;
        fv[ARRAY_SIZE(fv_want)].fieldId = 9999;
        assert_int_equal(nv.field_values(dev(0), (int)ARRAY_SIZE(fv), fv), NVML_SUCCESS);
        for (size_t i = 0; i < ARRAY_SIZE(fv_want); i++) {
                unsigned long long got;
                if (fv[i].nvmlReturn != NVML_SUCCESS)
                        fail_msg("FV %u: rc %d", fv[i].fieldId, fv[i].nvmlReturn);
                got = fv[i].valueType == NVML_VALUE_TYPE_UNSIGNED_INT ? fv[i].value.uiVal
                                                                      : fv[i].value.ullVal;
                if (got != fv_want[i].want)
                        fail_msg("FV %u: got %llu want %llu", fv[i].fieldId, got, fv_want[i].want);
                assert_true(fv[i].timestamp >= now);
        }
        assert_int_equal(fv[ARRAY_SIZE(fv_want)].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.field_values(dev(0), 1, NULL), NVML_ERROR_INVALID_ARGUMENT);
}

/* ---- sources and the trace ---- */

static void test_source_eval(void **state)
{
        struct fake_source ramp = {SRC_RAMP, 30, 90, 60000000, 0};
        struct fake_source step = {SRC_STEP, 1, 2, 5000000, 0};
        struct fake_source rate = {SRC_RATE, 10, 1000, 0, 0};
        struct fake_source noise = {SRC_NOISE, 50, 2, 100000, 7};
        double sum = 0, sq = 0, a, b;
        int n = 5000;

        (void)state;
        assert_true(fabs(fake_source_eval(&ramp, 0, 0, 150) - 30) < 1e-9);
        assert_true(fabs(fake_source_eval(&ramp, 30000000, 0, 150) - 60) < 1e-9);
        assert_true(fabs(fake_source_eval(&ramp, 120000000, 0, 150) - 90) < 1e-9);
        assert_true(fake_source_eval(&step, 4999999, 0, 150) == 1);
        assert_true(fake_source_eval(&step, 5000000, 0, 150) == 2);
        assert_true(fabs(fake_source_eval(&rate, 2000000, 0, 150) - 2010) < 1e-9);
        /* Noise: deterministic per (seed, GPU, slot), different across GPUs, right moments. */
        a = fake_source_eval(&noise, 1234567, 0, 150);
        b = fake_source_eval(&noise, 1234567 + 10, 0, 150);
        assert_true(a == b);
        assert_true(a != fake_source_eval(&noise, 1234567, 1, 150));
        for (int i = 0; i < n; i++) {
                double v = fake_source_eval(&noise, (int64_t)i * 100000, 3, 140);
                sum += v;
                sq += v * v;
        }
        assert_true(fabs(sum / n - 50) < 0.2);
        assert_true(fabs(sqrt(sq / n - (sum / n) * (sum / n)) - 2) < 0.2);
}

/* Read the CSV with plain C and compare every row with the trace. */
static void test_trace_rows(void **state)
{
        struct fake_trace *t = NULL;
        char path[1200], line[512], err[256];
        FILE *f;
        size_t row = 0;
        long long t0 = 0;
        double prev_e = -1;

        (void)state;
        assert_int_equal(fake_trace_builtin(&t, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s/tests/data/h200-10hz-load.csv", src_dir);
        f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof(line), f)); /* header */
        while (fgets(line, sizeof(line), f)) {
                long long tus, temp, pw, pi, e, mt, ug, um, mu, sm, mm, rs;
                int64_t pos;
                assert_int_equal(sscanf(line,
                                        "%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,"
                                        "%lld,%lld",
                                        &tus, &temp, &pw, &pi, &e, &mt, &ug, &um, &mu, &sm, &mm,
                                        &rs),
                                 12);
                if (row == 0)
                        t0 = tus;
                pos = tus - t0;
                assert_true(fake_trace_value(t, TC_TEMP, pos) == (double)temp);
                assert_true(llround(fake_trace_value(t, TC_POWER, pos) * 1000) == pw);
                assert_true(llround(fake_trace_value(t, TC_PINST, pos) * 1000) == pi);
                assert_true(fake_trace_value(t, TC_ENERGY, pos) == (double)e);
                assert_true(fake_trace_value(t, TC_MEMTEMP, pos) == (double)mt);
                assert_true(fake_trace_value(t, TC_UTIL_GPU, pos) == (double)ug);
                assert_true(fake_trace_value(t, TC_UTIL_MEM, pos) == (double)um);
                assert_true(llround(fake_trace_value(t, TC_MEM_USED, pos) * 1048576.0) == mu);
                assert_true(fake_trace_value(t, TC_SM_MHZ, pos) == (double)sm);
                assert_true(fake_trace_value(t, TC_MEM_MHZ, pos) == (double)mm);
                assert_true(fake_trace_value(t, TC_REASONS, pos) == (double)rs);
                row++;
        }
        fclose(f);
        assert_int_equal(row, t->rows);
        /* The energy counter never goes back, across several loops. */
        for (int64_t pos = 0; pos < 4 * t->length_us; pos += 50000) {
                double e = fake_trace_value(t, TC_ENERGY, pos);
                assert_true(e >= prev_e);
                prev_e = e;
        }
        /* After a loop the other columns repeat. */
        assert_true(fake_trace_value(t, TC_TEMP, t->length_us + 5) ==
                    fake_trace_value(t, TC_TEMP, 5));
        fake_trace_free(t);
}

static void test_trace_replay(void **state)
{
        unsigned v0, v1, n;
        nvmlMemory_v2_t m = {.version = nvmlMemory_v2};
        unsigned long long e;
        bool differ = false;
        unsigned first = 0;

        (void)state;
        start("sources.yaml", -1);
        /* GPU 1 replays from the trace's first row (offset 0): within 100 ms of init. */
        assert_int_equal(nv.temperature(dev(1), NVML_TEMPERATURE_GPU, &v1), NVML_SUCCESS);
        assert_int_equal(v1, 43);
        assert_int_equal(nv.power_usage(dev(1), &v1), NVML_SUCCESS);
        assert_int_equal(v1, 87958);
        assert_int_equal(nv.total_energy(dev(1), &e), NVML_SUCCESS);
        assert_int_equal(e, 3243480);
        assert_int_equal(nv.memory_info_v2(dev(1), &m), NVML_SUCCESS);
        assert_int_equal(m.used, 1467875328ULL);
        /* GPU 0 runs its own sources. */
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v0), NVML_SUCCESS);
        assert_true(v0 >= 30 && v0 <= 31);
        assert_int_equal(nv.clock_info(dev(0), NVML_CLOCK_SM, &v0), NVML_SUCCESS);
        assert_int_equal(v0, 1500);

        /* The default scenario: 8 GPUs at different points of the trace. */
        start(NULL, 0);
        assert_int_equal(nv.device_count(&n), NVML_SUCCESS);
        assert_int_equal(n, 8);
        for (unsigned i = 0; i < n; i++) {
                unsigned p;
                assert_int_equal(nv.power_usage(dev(i), &p), NVML_SUCCESS);
                if (i == 0)
                        first = p;
                else if (p != first)
                        differ = true;
        }
        assert_true(differ);
}

static void test_not_supported(void **state)
{
        unsigned v, p;
        unsigned long long e;
        char buf[64];
        nvmlFieldValue_t fv[3] = {{.fieldId = NVML_FI_DEV_MEMORY_TEMP},
                                  {.fieldId = NVML_FI_DEV_POWER_INSTANT},
                                  {.fieldId = NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION}};

        (void)state;
        start("not-supported.yaml", -1);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(nv.encoder_utilization(dev(0), &v, &p), NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.pcie_replay_counter(dev(0), &v), NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.total_energy(dev(0), &e), NVML_SUCCESS);
        assert_int_equal(nv.total_energy(dev(1), &e), NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.temperature(dev(1), NVML_TEMPERATURE_GPU, &v),
                         NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.serial(dev(1), buf, sizeof(buf)), NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.serial(dev(0), buf, sizeof(buf)), NVML_SUCCESS);
        assert_int_equal(nv.field_values(dev(0), 3, fv), NVML_SUCCESS);
        assert_int_equal(fv[0].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(fv[1].nvmlReturn, NVML_SUCCESS);
        assert_int_equal(fv[2].nvmlReturn, NVML_SUCCESS);
        assert_int_equal(nv.field_values(dev(1), 3, fv), NVML_SUCCESS);
        assert_int_equal(fv[0].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(fv[1].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(fv[2].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
}

/* NVLink on the HGX scenario: 18 links to four NVSwitches, per-link FieldValues (scopeId), the
 * per-link getters, counters from the scenario's totals on link 0; a link past the last is an
 * invalid argument; a scenario without NVLink answers NOT_SUPPORTED. */
static void test_nvlink(void **state)
{
        nvmlFieldValue_t fv[4];
        nvmlEnableState_t st;
        nvmlPciInfo_t pci;
        nvmlIntNvLinkDeviceType_t t;
        unsigned long long v = 1;

        (void)state;
        start("hgx-h200.yaml", 0);
        memset(fv, 0, sizeof(fv));
        fv[0].fieldId = NVML_FI_DEV_NVLINK_LINK_COUNT;
        fv[1].fieldId = NVML_FI_DEV_NVLINK_GET_STATE;
        fv[1].scopeId = 17;
        fv[2].fieldId = NVML_FI_DEV_NVLINK_GET_VERSION;
        fv[2].scopeId = 3;
        fv[3].fieldId = NVML_FI_DEV_NVLINK_GET_STATE;
        fv[3].scopeId = 18;
        assert_int_equal(nv.field_values(dev(0), 4, fv), NVML_SUCCESS);
        assert_int_equal(fv[0].nvmlReturn, NVML_SUCCESS);
        assert_int_equal(fv[0].value.ullVal, 18);
        assert_int_equal(fv[1].value.ullVal, 1);
        assert_int_equal(fv[2].value.ullVal, 4);
        assert_int_equal(fv[3].nvmlReturn, NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.nvlink_state(dev(1), 0, &st), NVML_SUCCESS);
        assert_int_equal(st, NVML_FEATURE_ENABLED);
        assert_int_equal(nv.nvlink_remote_pci(dev(1), 9, &pci), NVML_SUCCESS);
        assert_string_equal(pci.busId, "00000000:07:00.0");
        assert_int_equal(nv.nvlink_remote_type(dev(1), 9, &t), NVML_SUCCESS);
        assert_int_equal(t, NVML_NVLINK_DEVICE_TYPE_SWITCH);
        assert_int_equal(nv.nvlink_error_counter(dev(1), 0, NVML_NVLINK_ERROR_DL_CRC_DATA, &v),
                         NVML_SUCCESS);
        assert_int_equal(v, 0);
        assert_int_equal(nv.nvlink_error_counter(dev(1), 0, NVML_NVLINK_ERROR_DL_ECC_DATA, &v),
                         NVML_ERROR_NOT_SUPPORTED);
        start(NULL, 0); /* the default scenario: no NVLink */
        assert_int_equal(nv.nvlink_state(dev(0), 0, &st), NVML_ERROR_NOT_SUPPORTED);
        fv[0].scopeId = 0;
        assert_int_equal(nv.field_values(dev(0), 1, fv), NVML_SUCCESS);
        assert_int_equal(fv[0].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
}

/* Topology on the HGX scenario: pairs share a PCIe switch, halves a NUMA node. */
static void test_topology(void **state)
{
        nvmlGpuTopologyLevel_t l;
        unsigned long mask[4] = {0};
        unsigned node = 9;

        (void)state;
        start("hgx-h200.yaml", 0);
        assert_int_equal(nv.topology_common_ancestor(dev(0), dev(1), &l), NVML_SUCCESS);
        assert_int_equal(l, NVML_TOPOLOGY_SINGLE);
        assert_int_equal(nv.topology_common_ancestor(dev(0), dev(3), &l), NVML_SUCCESS);
        assert_int_equal(l, NVML_TOPOLOGY_NODE);
        assert_int_equal(nv.topology_common_ancestor(dev(0), dev(7), &l), NVML_SUCCESS);
        assert_int_equal(l, NVML_TOPOLOGY_SYSTEM);
        assert_int_equal(nv.cpu_affinity(dev(5), 4, mask), NVML_SUCCESS);
        assert_true(mask[0] == 0xff00000000000000UL); /* CPUs 56..63 (node 1: 56..111) */
        assert_true(mask[1] == 0xffffffffffffUL);     /* CPUs 64..111 */
        assert_int_equal(nv.numa_node_id(dev(5), &node), NVML_SUCCESS);
        assert_int_equal(node, 1);
}

/* MIG on the MIG scenario: GPU 0 split in four, GPU 1 whole until 8 s; MIG handles answer the
 * identity and memory getters; ids as an H200 numbers them. */
static void test_mig(void **state)
{
        unsigned cur = 9, pend = 9, max = 0, gi = 99, ci = 99;
        nvmlDevice_t m = NULL;
        nvmlMemory_v2_t mem = {.version = nvmlMemory_v2};
        char name[96], uuid[96];

        (void)state;
        start("mig-h200.yaml", 0);
        assert_int_equal(nv.mig_mode(dev(0), &cur, &pend), NVML_SUCCESS);
        assert_int_equal(cur, NVML_DEVICE_MIG_ENABLE);
        assert_int_equal(nv.mig_mode(dev(1), &cur, &pend), NVML_SUCCESS);
        assert_int_equal(cur, NVML_DEVICE_MIG_DISABLE);
        assert_int_equal(pend, NVML_DEVICE_MIG_ENABLE);
        assert_int_equal(nv.max_mig_device_count(dev(0), &max), NVML_SUCCESS);
        assert_int_equal(max, 7);
        assert_int_equal(nv.mig_device_handle_by_index(dev(0), 4, &m), NVML_ERROR_NOT_FOUND);
        assert_int_equal(nv.mig_device_handle_by_index(dev(1), 0, &m), NVML_ERROR_NOT_FOUND);
        assert_int_equal(nv.mig_device_handle_by_index(dev(0), 3, &m), NVML_SUCCESS);
        assert_int_equal(nv.gpu_instance_id(m, &gi), NVML_SUCCESS);
        assert_int_equal(gi, 1); /* 3g */
        assert_int_equal(nv.compute_instance_id(m, &ci), NVML_SUCCESS);
        assert_int_equal(ci, 0);
        assert_int_equal(nv.name(m, name, sizeof(name)), NVML_SUCCESS);
        assert_string_equal(name, "NVIDIA H200 MIG 3g.71gb");
        assert_int_equal(nv.uuid(m, uuid, sizeof(uuid)), NVML_SUCCESS);
        assert_true(strncmp(uuid, "MIG-", 4) == 0);
        assert_int_equal(nv.memory_info_v2(m, &mem), NVML_SUCCESS);
        assert_int_equal(mem.total, 71000000000ULL);
        assert_true(mem.used + mem.free == mem.total);
        assert_int_equal(nv.gpu_instance_id(dev(0), &gi), NVML_ERROR_NOT_SUPPORTED);
        start(NULL, 0);
        assert_int_equal(nv.mig_mode(dev(0), &cur, &pend), NVML_ERROR_NOT_SUPPORTED);
}

/* GPM: two samples, metrics from the profiling fields as percent, NVML's argument checks,
 * per-metric NOT_SUPPORTED, and a GPU without GPM when all three fields are unsupported. */
static void test_gpm(void **state)
{
        static nvmlGpmMetricsGet_t mg; /* 13 KiB */
        nvmlGpmSupport_t sup = {.version = NVML_GPM_SUPPORT_VERSION};
        nvmlGpmSample_t a = NULL, b = NULL;
        char dir[TEST_TMPDIR_LEN], path[TEST_TMPDIR_LEN + 32], err[512];
        FILE *f;

        (void)state;
        start("constant-2gpu.yaml", 0);
        assert_int_equal(nv.gpm_query_support(dev(0), &sup), NVML_SUCCESS);
        assert_int_equal(sup.isSupportedDevice, 1);
        sup.version = 2;
        assert_int_equal(nv.gpm_query_support(dev(0), &sup), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        assert_int_equal(nv.gpm_sample_alloc(NULL), NVML_ERROR_INVALID_ARGUMENT);
        assert_int_equal(nv.gpm_sample_alloc(&a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_alloc(&b), NVML_SUCCESS);

        memset(&mg, 0, sizeof(mg));
        mg.version = NVML_GPM_METRICS_GET_VERSION;
        mg.numMetrics = 4;
        mg.sample1 = a;
        mg.sample2 = b;
        mg.metrics[0].metricId = NVML_GPM_METRIC_GRAPHICS_UTIL;
        mg.metrics[1].metricId = NVML_GPM_METRIC_ANY_TENSOR_UTIL;
        mg.metrics[2].metricId = NVML_GPM_METRIC_DRAM_BW_UTIL;
        mg.metrics[3].metricId = 8; /* no metric has this id */
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_ERROR_INVALID_ARGUMENT); /* not taken */
        assert_int_equal(nv.gpm_sample_get(dev(0), a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_get(dev(0), b), NVML_SUCCESS);
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_SUCCESS);
        assert_int_equal(mg.metrics[0].nvmlReturn, NVML_SUCCESS);
        assert_true(fabs(mg.metrics[0].value - 75) < 1e-9);
        assert_true(fabs(mg.metrics[1].value - 37.5) < 1e-9);
        assert_true(fabs(mg.metrics[2].value - 25) < 1e-9);
        assert_non_null(mg.metrics[0].metricInfo.shortName);
        assert_int_equal(mg.metrics[3].nvmlReturn, NVML_ERROR_NOT_SUPPORTED); /* not modelled */
        mg.sample1 = b;                                                       /* wrong order */
        mg.sample2 = a;
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_ERROR_INVALID_ARGUMENT);
        mg.version = 2;
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        mg.version = NVML_GPM_METRICS_GET_VERSION;
        mg.numMetrics = NVML_GPM_METRIC_MAX + 1;
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_ERROR_INVALID_ARGUMENT);
        /* GPU 1 lacks only DRAM: GPM on, that metric NOT_SUPPORTED */
        mg.numMetrics = 3;
        assert_int_equal(nv.gpm_sample_get(dev(1), a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_ERROR_INVALID_ARGUMENT); /* 2 GPUs */
        assert_int_equal(nv.gpm_sample_get(dev(1), b), NVML_SUCCESS);
        mg.sample1 = a;
        mg.sample2 = b;
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_SUCCESS);
        assert_int_equal(mg.metrics[0].nvmlReturn, NVML_SUCCESS);
        assert_int_equal(mg.metrics[2].nvmlReturn, NVML_ERROR_NOT_SUPPORTED);
        assert_int_equal(nv.gpm_sample_free(a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_free(b), NVML_SUCCESS);

        /* default scenario: the ratios follow GPU utilization (x1, x0.6, x0.5) */
        start(NULL, 0);
        assert_int_equal(nv.gpm_sample_alloc(&a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_alloc(&b), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_get(dev(3), a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_get(dev(3), b), NVML_SUCCESS);
        mg.sample1 = a;
        mg.sample2 = b;
        assert_int_equal(nv.gpm_metrics_get(&mg), NVML_SUCCESS);
        for (int k = 0; k < 3; k++) {
                assert_int_equal(mg.metrics[k].nvmlReturn, NVML_SUCCESS);
                assert_true(mg.metrics[k].value >= 0 && mg.metrics[k].value <= 100);
        }
        assert_true(fabs(mg.metrics[1].value - 0.6 * mg.metrics[0].value) < 1e-9);
        assert_true(fabs(mg.metrics[2].value - 0.5 * mg.metrics[0].value) < 1e-9);
        nv.gpm_sample_free(a);
        nv.gpm_sample_free(b);

        /* graphics activity not supported: no GPM on that GPU, like a pre-Hopper one */
        assert_int_equal(test_tmpdir_new("gpm", dir, sizeof(dir)), 0);
        snprintf(path, sizeof(path), "%s/no-gpm.yaml", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("version: 1\ngpus: 2\ncosts: {scale: 0}\nper_gpu:\n  1:\n    not_supported: "
              "[PROF_GR_ENGINE_ACTIVE, PROF_PIPE_TENSOR_ACTIVE, PROF_DRAM_ACTIVE]\n",
              f);
        fclose(f);
        while (nv.shutdown() == NVML_SUCCESS)
                ;
        assert_int_equal(nv.configure(path, err, sizeof(err)), 0);
        assert_int_equal(test_tmpdir_remove(dir), 0);
        assert_int_equal(nv.init(), NVML_SUCCESS);
        sup.version = NVML_GPM_SUPPORT_VERSION;
        assert_int_equal(nv.gpm_query_support(dev(1), &sup), NVML_SUCCESS);
        assert_int_equal(sup.isSupportedDevice, 0);
        assert_int_equal(nv.gpm_query_support(dev(0), &sup), NVML_SUCCESS);
        assert_int_equal(sup.isSupportedDevice, 1);
        assert_int_equal(nv.gpm_sample_alloc(&a), NVML_SUCCESS);
        assert_int_equal(nv.gpm_sample_get(dev(1), a), NVML_ERROR_NOT_SUPPORTED);
        nv.gpm_sample_free(a);
}

static void test_lost_and_back(void **state)
{
        nvmlDevice_t d1;
        unsigned v;
        char buf[64];
        nvmlFieldValue_t fv = {.fieldId = NVML_FI_DEV_POWER_AVERAGE};

        (void)state;
        start("gpu-lost.yaml", -1);
        d1 = dev(1);
        assert_int_equal(nv.temperature(d1, NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(nv.advance(2100000), 0); /* t >= 2.1 s: lost at 2 s */
        assert_int_equal(nv.temperature(d1, NVML_TEMPERATURE_GPU, &v), NVML_ERROR_GPU_IS_LOST);
        assert_int_equal(nv.uuid(d1, buf, sizeof(buf)), NVML_ERROR_GPU_IS_LOST);
        assert_int_equal(nv.handle_by_index(1, &d1), NVML_ERROR_GPU_IS_LOST);
        assert_int_equal(nv.field_values(d1, 1, &fv), NVML_ERROR_GPU_IS_LOST);
        assert_int_equal(fv.nvmlReturn, NVML_ERROR_GPU_IS_LOST);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(nv.advance(3000000), 0); /* t >= 5.1 s: back at 5 s */
        assert_int_equal(nv.temperature(d1, NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 50);
}

/* ---- events ---- */

struct waiter {
        nvmlEventSet_t set;
        unsigned timeout_ms;
        nvmlReturn_t rc;
        nvmlEventData_t data;
        int64_t waited_us;
};

static void *wait_thread(void *arg)
{
        struct waiter *w = arg;
        int64_t t = time_mono_us();

        w->rc = nv.event_set_wait(w->set, &w->data, w->timeout_ms);
        w->waited_us = time_mono_us() - t;
        return NULL;
}

static void test_events(void **state)
{
        nvmlEventSet_t set;
        nvmlEventData_t ev;
        unsigned long long types, u;
        char err[128];
        pthread_t th;
        struct waiter w = {0};
        struct fake_inject xid = {.kind = FAKE_INJECT_XID, .gpu = 1, .count = 43};

        (void)state;
        start("xid-ecc.yaml", -1);
        assert_int_equal(nv.supported_event_types(dev(0), &types), NVML_SUCCESS);
        assert_true(types & nvmlEventTypeXidCriticalError);
        assert_true(types & nvmlEventTypeDoubleBitEccError);
        assert_int_equal(nv.event_set_create(&set), NVML_SUCCESS);
        /* Nothing registered: a timeout (how long it takes is measured in bench/timings.py). */
        assert_int_equal(nv.event_set_wait(set, &ev, 100), NVML_ERROR_TIMEOUT);
        assert_int_equal(nv.register_events(dev(0), nvmlEventTypeXidCriticalError, set),
                         NVML_SUCCESS);
        assert_int_equal(nv.register_events(dev(1),
                                            nvmlEventTypeDoubleBitEccError |
                                                nvmlEventTypeSingleBitEccError |
                                                nvmlEventTypeXidCriticalError,
                                            set),
                         NVML_SUCCESS);
        /* Scripted: XID 79 on GPU 0 at 1 s, DBE on GPU 1 at 1.5 s, SBE on GPU 1 at 2 s; the fake
         * clock jumps there. */
        assert_int_equal(nv.advance(2000000), 0);
        assert_int_equal(nv.event_set_wait(set, &ev, 3000), NVML_SUCCESS);
        assert_ptr_equal(ev.device, dev(0));
        assert_int_equal(ev.eventType, nvmlEventTypeXidCriticalError);
        assert_int_equal(ev.eventData, 79);
        assert_int_equal(nv.event_set_wait(set, &ev, 3000), NVML_SUCCESS);
        assert_ptr_equal(ev.device, dev(1));
        assert_int_equal(ev.eventType, nvmlEventTypeDoubleBitEccError);
        assert_int_equal(
            nv.total_ecc_errors(dev(1), NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &u),
            NVML_SUCCESS);
        assert_int_equal(u, 1);
        assert_int_equal(nv.event_set_wait(set, &ev, 3000), NVML_SUCCESS);
        assert_int_equal(ev.eventType, nvmlEventTypeSingleBitEccError);
        assert_int_equal(
            nv.total_ecc_errors(dev(1), NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC, &u),
            NVML_SUCCESS);
        assert_int_equal(u, 3);

        /* Across threads: a waiter blocked for 30 s wakes on an injected XID (rc SUCCESS with
         * the XID, not TIMEOUT; the wake-up latency is measured in bench/timings.py). */
        w.set = set;
        w.timeout_ms = 30000;
        assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
        test_sleep_ms(200); /* gives the waiter time to block; passes either way */
        assert_int_equal(nv.inject(&xid, err, sizeof(err)), 0);
        pthread_join(th, NULL);
        assert_int_equal(w.rc, NVML_SUCCESS);
        assert_int_equal(w.data.eventData, 43);
        assert_ptr_equal(w.data.device, dev(1));
        /* Not registered for this GPU/type: not delivered. */
        xid.gpu = 0;
        xid.kind = FAKE_INJECT_ECC_DBE;
        xid.count = 1;
        assert_int_equal(nv.inject(&xid, err, sizeof(err)), 0);
        assert_int_equal(nv.event_set_wait(set, &ev, 50), NVML_ERROR_TIMEOUT);
        assert_int_equal(nv.event_set_free(set), NVML_SUCCESS);
}

/* ---- the fake clock ---- */

/* Scenario time = real time since init + what vigil_fake_advance added: a ramp reaches its end,
 * scripted events fire (also for a waiter already blocked), time never goes back, and a new
 * configuration starts the clock again. */
static void test_fake_clock(void **state)
{
        unsigned v;
        char err[128];
        pthread_t th;
        struct waiter w = {0};
        nvmlEventData_t ev;
        struct fake_inject adv = {.kind = FAKE_INJECT_ADVANCE, .gpu = 999, .count = 10000000};

        (void)state;
        start("sources.yaml", -1);
        /* GPU 0: GPU_TEMP ramps 30 -> 90 over 60 s. */
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_true(v < 60);
        assert_int_equal(nv.advance(30000000), 0);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_true(v >= 60 && v < 90);
        /* The injection kind does the same and needs no GPU. */
        assert_int_equal(nv.inject(&adv, err, sizeof(err)), 0);
        assert_int_equal(nv.advance(20000000), 0);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 90);
        /* Time never goes back; one step is at most a year. */
        assert_int_equal(nv.advance(-1), -EINVAL);
        adv.count = 400LL * 86400 * 1000000;
        assert_int_equal(nv.inject(&adv, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "advance"));
        assert_int_equal(nv.advance(0), 0);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 90);
        /* A new configuration starts the clock at 0 again. */
        start("sources.yaml", -1);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_true(v < 60);

        /* Events at t: nothing before, all three at once after the clock passes 2 s. */
        start("xid-ecc.yaml", -1);
        assert_int_equal(nv.event_set_create(&w.set), NVML_SUCCESS);
        assert_int_equal(nv.register_events(dev(0), nvmlEventTypeXidCriticalError, w.set),
                         NVML_SUCCESS);
        assert_int_equal(nv.event_set_wait(w.set, &ev, 0), NVML_ERROR_TIMEOUT);
        /* A waiter blocked for 30 s on the scripted XID at 1 s wakes when the clock moves. */
        w.timeout_ms = 30000;
        assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
        test_sleep_ms(100); /* gives the waiter time to block; passes either way */
        assert_int_equal(nv.advance(1000000), 0);
        pthread_join(th, NULL);
        assert_int_equal(w.rc, NVML_SUCCESS);
        assert_int_equal(w.data.eventType, nvmlEventTypeXidCriticalError);
        assert_int_equal(w.data.eventData, 79);
        /* ECC events at 1.5 s and 2 s raise the counters as soon as the clock passes them. */
        assert_int_equal(nv.advance(1000000), 0);
        {
                unsigned long long u = 0;
                assert_int_equal(nv.total_ecc_errors(dev(1), NVML_MEMORY_ERROR_TYPE_CORRECTED,
                                                     NVML_AGGREGATE_ECC, &u),
                                 NVML_SUCCESS);
                assert_int_equal(u, 3);
        }
        assert_int_equal(nv.event_set_free(w.set), NVML_SUCCESS);
}

/* ---- injection and cost ---- */

static void test_inject(void **state)
{
        char err[256];
        unsigned v;
        unsigned long long u;
        struct fake_inject in = {.kind = FAKE_INJECT_FIELD, .gpu = 0, .field_id = 150, .value = 91};

        (void)state;
        start("constant-2gpu.yaml", -1);
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 91);
        assert_int_equal(nv.temperature(dev(1), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 61);
        in.kind = FAKE_INJECT_FIELD_CLEAR;
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        assert_int_equal(v, 45);
        /* Power in W becomes mW. */
        in = (struct fake_inject){
            .kind = FAKE_INJECT_FIELD, .gpu = 1, .field_id = 155, .value = 612.25};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        assert_int_equal(nv.power_usage(dev(1), &v), NVML_SUCCESS);
        assert_int_equal(v, 612250);
        /* ECC adds to volatile and aggregate. */
        in = (struct fake_inject){.kind = FAKE_INJECT_ECC_SBE, .gpu = 0, .count = 5};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        assert_int_equal(
            nv.total_ecc_errors(dev(0), NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, &u),
            NVML_SUCCESS);
        assert_int_equal(u, 7);
        assert_int_equal(
            nv.total_ecc_errors(dev(0), NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC, &u),
            NVML_SUCCESS);
        assert_int_equal(u, 17);
        /* Lost and back. */
        in = (struct fake_inject){.kind = FAKE_INJECT_LOST, .gpu = 1, .count = 1};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        assert_int_equal(nv.power_usage(dev(0), &v), NVML_SUCCESS);
        {
                nvmlDevice_t d;
                assert_int_equal(nv.handle_by_index(1, &d), NVML_ERROR_GPU_IS_LOST);
        }
        in.count = 0;
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        assert_int_equal(nv.power_usage(dev(1), &v), NVML_SUCCESS);
        /* Errors. */
        in = (struct fake_inject){.kind = FAKE_INJECT_FIELD, .gpu = 9, .field_id = 150};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), -ENODEV);
        in.gpu = 0;
        in.field_id = 4242;
        assert_int_equal(nv.inject(&in, err, sizeof(err)), -EINVAL);
        assert_true(strlen(err) > 0);
        in.field_id = FLD_FB_FREE;
        assert_int_equal(nv.inject(&in, err, sizeof(err)), -EINVAL);
        in = (struct fake_inject){.kind = (enum fake_inject_kind)99};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), -EINVAL);
        in = (struct fake_inject){.kind = FAKE_INJECT_CALL_COST, .call = "nvmlNope", .count = 1};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), -EINVAL);
        in = (struct fake_inject){.kind = FAKE_INJECT_ECC_DBE, .gpu = 0, .count = 0};
        assert_int_equal(nv.inject(&in, err, sizeof(err)), -EINVAL);
}

static void test_call_cost(void **state)
{
        char err[128];
        unsigned v;
        struct fake_stats s0, s1;
        struct fake_inject in = {
            .kind = FAKE_INJECT_CALL_COST, .call = "nvmlDeviceGetTemperature", .count = 5000000};

        (void)state;
        start("constant-2gpu.yaml", -1);
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        in.call = "*";
        in.count = 100;
        assert_int_equal(nv.inject(&in, err, sizeof(err)), 0);
        /* The fake's own account of the CPU it burnt (the wall and CPU time a caller sees are
         * measured in bench/timings.py, not here). */
        nv.stats(&s0);
        assert_int_equal(nv.temperature(dev(0), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        nv.stats(&s1);
        assert_true(s1.calls > s0.calls);
        assert_true(s1.cost_ns - s0.cost_ns >= 5000000);
        /* The heavy scenario: PCIe throughput burns 5 ms CPU (and sleeps 50 ms of wall time). */
        start("heavy-costs.yaml", -1);
        nv.stats(&s0);
        assert_int_equal(nv.pcie_throughput(dev(0), NVML_PCIE_UTIL_TX_BYTES, &v), NVML_SUCCESS);
        nv.stats(&s1);
        assert_true(s1.cost_ns - s0.cost_ns >= 5000000);
}

/* ---- scenario errors ---- */

static void test_parse_errors(void **state)
{
        static const struct {
                const char *yaml;
                const char *want; /* prefix of the error */
        } cases[] = {
            {"gpus: 2\nbogus: 1\n", "t.yaml:2: scenario: unknown key 'bogus'"},
            {"gpus: 0\n", "t.yaml:1: gpus: at least 1"},
            {"gpus: 65\n", "t.yaml:1: gpus: '65' is not an integer"},
            {"gpus: two\n", "t.yaml:1: gpus: 'two' is not an integer"},
            {"fields:\n  GPU_TEMP: 1\n  NOPE: 2\n", "t.yaml:3: unknown field 'NOPE'"},
            {"fields:\n  GPU_TEMP: {ramp: {from: 1, to: 2}}\n", "t.yaml:2: GPU_TEMP: ramp needs"},
            {"fields:\n  GPU_TEMP: {wobble: 3}\n", "t.yaml:2: GPU_TEMP: unknown key 'wobble'"},
            {"fields:\n  GPU_TEMP: abc\n", "t.yaml:2: GPU_TEMP: 'abc' is not a finite number"},
            {"fields:\n  FB_FREE: 3\n", "t.yaml:2: FB_FREE is derived"},
            {"gpus: 2\nper_gpu:\n  2: {name: x}\n", "t.yaml:3: per_gpu: GPU 2"},
            {"gpus: 2\nper_gpu:\n  0: {colour: x}\n", "t.yaml:3: per_gpu: unknown key 'colour'"},
            {"costs:\n  calls:\n    nvmlFoo: 1ms\n", "t.yaml:3: calls: 'nvmlFoo'"},
            {"costs:\n  calls:\n    nvmlDeviceGetTemperature: fast\n",
             "t.yaml:3: nvmlDeviceGetTemperature: 'fast' is not a duration"},
            {"events:\n  - {at: 1s, gpu: 0}\n", "t.yaml:2: event needs"},
            {"events:\n  - {at: 1s, gpu: 9, xid: 3}\n", "t.yaml:2: gpu: 9 but the scenario has 8"},
            {"trace: nonexistent.csv\n", "t.yaml:1: trace 'nonexistent.csv'"},
            {"per_gpu:\n  0: {trace: on}\n", "t.yaml:2: trace: the scenario has no trace"},
            {"a: [1, 2\n", "t.yaml:2:"},
            {"- 1\n- 2\n", "t.yaml:1: the scenario must be a mapping"},
        };
        char err[512], path[1200];
        struct fake_scenario *sc;

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                sc = NULL;
                err[0] = '\0';
                if (fake_scenario_parse(cases[i].yaml, strlen(cases[i].yaml), "t.yaml", "/tmp", &sc,
                                        err, sizeof(err)) >= 0)
                        fail_msg("case %zu parsed: %s", i, cases[i].yaml);
                if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
                        fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].want);
        }
        /* Through the library: a missing file names itself, and nothing changes. */
        while (nv.shutdown() == NVML_SUCCESS)
                ;
        assert_true(nv.configure("/nonexistent/s.yaml", err, sizeof(err)) < 0);
        assert_int_equal(strncmp(err, "/nonexistent/s.yaml:1:", 22), 0);
        /* Configuring while initialized is refused. */
        start("constant-2gpu.yaml", -1);
        snprintf(path, sizeof(path), "%s/tests/scenarios/gpu-lost.yaml", src_dir);
        assert_int_equal(nv.configure(path, err, sizeof(err)), -EBUSY);
        /* Every shipped scenario parses. */
        {
                static const char *const files[] = {
                    "default.yaml", "constant-2gpu.yaml", "not-supported.yaml", "gpu-lost.yaml",
                    "xid-ecc.yaml", "heavy-costs.yaml",   "sources.yaml"};
                for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                        snprintf(path, sizeof(path), "%s/tests/scenarios/%s", src_dir, files[i]);
                        sc = NULL;
                        if (fake_scenario_load(path, &sc, err, sizeof(err)) < 0)
                                fail_msg("%s: %s", files[i], err);
                        fake_scenario_free(sc);
                }
        }
        /* The built-in default is the shipped default.yaml. */
        assert_int_equal(fake_scenario_default(&sc, err, sizeof(err)), 0);
        assert_int_equal(sc->gpu_count, 8);
        assert_non_null(sc->trace);
        assert_int_equal(
            sc->cost_cpu_ns[fake_call_from_name("nvmlDeviceGetTotalEnergyConsumption")], 3500000);
        assert_int_equal(sc->cost_sleep_ns[fake_call_from_name("nvmlDeviceGetPcieThroughput")],
                         20000000);
        assert_int_equal(sc->fv_cost_ns[83], 3500000);
        fake_scenario_free(sc);
}

static void test_durations(void **state)
{
        int64_t ns;

        (void)state;
        assert_int_equal(fake_parse_duration_ns("3.5ms", &ns), 0);
        assert_int_equal(ns, 3500000);
        assert_int_equal(fake_parse_duration_ns("700us", &ns), 0);
        assert_int_equal(ns, 700000);
        assert_int_equal(fake_parse_duration_ns("2", &ns), 0);
        assert_int_equal(ns, 2000000000);
        assert_int_equal(fake_parse_duration_ns("1m", &ns), 0);
        assert_int_equal(ns, 60000000000LL);
        assert_int_equal(fake_parse_duration_ns("-1s", &ns), -EINVAL);
        assert_int_equal(fake_parse_duration_ns("1parsec", &ns), -EINVAL);
        assert_int_equal(fake_parse_duration_ns("", &ns), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exports),       cmocka_unit_test(test_return_codes),
            cmocka_unit_test(test_identity),      cmocka_unit_test(test_constant_values),
            cmocka_unit_test(test_source_eval),   cmocka_unit_test(test_trace_rows),
            cmocka_unit_test(test_trace_replay),  cmocka_unit_test(test_not_supported),
            cmocka_unit_test(test_lost_and_back), cmocka_unit_test(test_events),
            cmocka_unit_test(test_inject),        cmocka_unit_test(test_call_cost),
            cmocka_unit_test(test_parse_errors),  cmocka_unit_test(test_durations),
            cmocka_unit_test(test_gpm),           cmocka_unit_test(test_fake_clock),
            cmocka_unit_test(test_nvlink),        cmocka_unit_test(test_topology),
            cmocka_unit_test(test_mig),
        };

        return cmocka_run_group_tests(tests, setup_lib, teardown_lib);
}
