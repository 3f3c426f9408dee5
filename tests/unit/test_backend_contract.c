/* test_backend_contract.c — what the rest of Vigil relies on from the backend, checked against the
 * fake NVML in CI and against the real libnvidia-ml.so.1 on a GPU machine (read-only):
 *
 *   VIGIL_CONTRACT_NVML=real   use the real NVML; exit 77 (skipped) when there is none
 *   (default)                  use build/lib/libvigil-fakenvml.so with tests/scenarios/constant-2gpu.yaml
 *
 * On the fake, exact values from the scenario are checked too, which pins the unit conversions of
 * both sides (fake: DCGM unit → NVML unit; backend: NVML unit → DCGM unit). Never mutates a real GPU. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "nvml/nvml_reads.h"
#include "nvml/nvml_types.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int real;
static backend *be;
static unsigned ngpu;

static int setup(void **state)
{
        backend_options o = {0};
        char err[512] = "", scen[4096], lib[4096];
        const char *src = getenv("VIGIL_SOURCE_DIR"), *bld = getenv("VIGIL_BUILD_DIR");
        int r;

        (void)state;
        real = getenv("VIGIL_CONTRACT_NVML") && strcmp(getenv("VIGIL_CONTRACT_NVML"), "real") == 0;
        if (real) {
                o.library = getenv("VIGIL_NVML_LIB");
        } else {
                snprintf(scen, sizeof(scen), "%s/tests/scenarios/constant-2gpu.yaml",
                         src ? src : ".");
                snprintf(lib, sizeof(lib), "%s/lib/libvigil-fakenvml.so", bld ? bld : "build");
                setenv("VIGIL_FAKENVML", lib, 1);
                o.simulate = 1;
                o.scenario = scen;
        }
        r = backend_open(&o, &be, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "# cannot open the backend: %s\n", err);
                if (real)
                        exit(77); /* no GPU here: skipped, not failed */
                return -1;
        }
        backend_device_count(be, &ngpu);
        fprintf(stderr, "# %s NVML '%s', %u GPUs\n", real ? "real" : "fake", backend_library(be),
                ngpu);
        if (real && ngpu == 0)
                exit(77);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        be = backend_close(be);
        return 0;
}

static void test_identity(void **state)
{
        (void)state;
        assert_true(ngpu >= 1);
        for (unsigned i = 0; i < ngpu; i++) {
                gpu_identity id;
                assert_int_equal(backend_device_info(be, i, &id), 0);
                assert_memory_equal(id.uuid, "GPU-", 4);
                assert_true(strlen(id.name) > 0);
                assert_true(strlen(id.pci_bus_id) >= 12);
                fprintf(stderr, "# GPU %u: %s %s %s vbios %s minor %d\n", i, id.name, id.uuid,
                        id.pci_bus_id, id.vbios, id.minor);
        }
        assert_int_equal(backend_device_info(be, ngpu, &(gpu_identity){0}), -EINVAL);
}

/* Every catalog field: a value or an honest status, and values in physical ranges. */
static void test_every_field_sane(void **state)
{
        uint16_t ids[128];
        field_value v[128];
        size_t n = 0;

        (void)state;
        for (size_t i = 0; i < field_count(); i++)
                if (field_at(i)->type != FT_STR && field_at(i)->tier != TIER_EVENT)
                        ids[n++] = field_at(i)->id;
        for (unsigned g = 0; g < ngpu; g++) {
                assert_int_equal(backend_sample(be, g, ids, n, v), 0);
                for (size_t k = 0; k < n; k++) {
                        const field_meta *m = field_by_id(ids[k]);
                        double x = m->type == FT_F64 ? v[k].d : (double)v[k].i;
                        if (v[k].status != 0) {
                                /* only honest reasons; never a bad argument from our side */
                                assert_true(v[k].status == -EOPNOTSUPP || v[k].status == -EACCES ||
                                            v[k].status == -EIO || v[k].status == -ENODATA);
                                fprintf(stderr, "# GPU %u %-28s %s\n", g, m->sym,
                                        v[k].status == -EOPNOTSUPP ? "not supported"
                                                                   : strerror(-v[k].status));
                                continue;
                        }
                        fprintf(stderr, "# GPU %u %-28s %.6g %s\n", g, m->sym, x, m->unit);
                        assert_true(isfinite(x));
                        assert_true(x >= 0);
                        if (!strcmp(m->unit, "C"))
                                assert_true(x < 150);
                        if (!strcmp(m->unit, "%"))
                                assert_true(x <= 100);
                        if (!strcmp(m->unit, "W"))
                                assert_true(x < 5000);
                        if (!strcmp(m->unit, "bool"))
                                assert_true(x == 0 || x == 1);
                }
        }
}

static double value_of(unsigned gpu, uint16_t id)
{
        field_value v;
        const field_meta *m = field_by_id(id);

        assert_int_equal(backend_sample(be, gpu, &id, 1, &v), 0);
        assert_int_equal(v.status, 0);
        return m->type == FT_F64 ? v.d : (double)v.i;
}

static void test_memory_consistent(void **state)
{
        uint16_t ids[] = {FLD_FB_TOTAL, FLD_FB_FREE, FLD_FB_USED, FLD_FB_RESERVED};
        field_value v[4];

        (void)state;
        assert_int_equal(backend_sample(be, 0, ids, 4, v), 0);
        assert_int_equal(v[0].status, 0);
        assert_true(v[2].i <= v[0].i);
        assert_true(v[1].i <= v[0].i);
        /* total = free + used (+ reserved when NVML reports it), within MiB rounding */
        if (v[3].status == 0)
                assert_true(llabs(v[0].i - (v[1].i + v[2].i + v[3].i)) <= 3);
}

/* Exact values through the whole chain (fake only). */
static void test_exact_values_fake(void **state)
{
        (void)state;
        if (real)
                skip();
        assert_true(value_of(0, FLD_GPU_TEMP) == 45);
        assert_true(value_of(1, FLD_GPU_TEMP) == 61);
        assert_true(value_of(0, FLD_MEMORY_TEMP) == 50);
        assert_true(fabs(value_of(0, FLD_POWER_USAGE) - 250.5) < 1e-9);
        assert_true(fabs(value_of(0, FLD_POWER_USAGE_INSTANT) - 260) < 1e-9);
        assert_true(value_of(0, FLD_TOTAL_ENERGY_CONSUMPTION) >= 1000000);
        assert_true(value_of(0, FLD_FB_TOTAL) == 143771);
        assert_true(value_of(0, FLD_FB_USED) == 1024);
        assert_true(value_of(0, FLD_FB_RESERVED) == 571);
        assert_true(value_of(0, FLD_GPU_UTIL) == 75);
        assert_true(value_of(0, FLD_MEM_COPY_UTIL) == 30);
        assert_true(value_of(0, FLD_DEC_UTIL) == 5);
        assert_true(value_of(0, FLD_SM_CLOCK) == 1980);
        assert_true(value_of(0, FLD_MEM_CLOCK) == 3201);
        assert_true(value_of(0, FLD_CLOCKS_EVENT_REASONS) == 4);
        assert_true(value_of(0, FLD_ECC_SBE_VOL_TOTAL) == 2);
        assert_true(value_of(0, FLD_ECC_DBE_AGG_TOTAL) == 1);
        assert_true(value_of(0, FLD_RETIRED_SBE) == 3);
        assert_true(value_of(0, FLD_CORRECTABLE_REMAPPED_ROWS) == 4);
        assert_true(value_of(0, FLD_UNCORRECTABLE_REMAPPED_ROWS) == 1);
        assert_true(value_of(0, FLD_PCIE_REPLAY_COUNTER) == 7);
        assert_true(value_of(0, FLD_THERMAL_VIOLATION) == 123456789);
        assert_true(fabs(value_of(0, FLD_PROF_PCIE_TX_BYTES) - 1048576) < 1e-6);
}

/* Every GPM row of getters.def in one request (one SampleGet + one MetricsGet): percentages as
 * 0..1 ratios, MiB/s rates as B/s. Fake (constant-2gpu.yaml, GPU utilization 75 %): the fields the
 * scenario does not set follow utilization (SM active 0.9 x, NVLink 4e7 B/s per %), the engines it
 * does not model read 0. Real: each is a finite, non-negative number or honestly unsupported. */
static void test_gpm_all_metrics(void **state)
{
        static const struct {
                uint16_t field; /* FLD_* */
                bool gpm;       /* read through GPM */
        } rows[] = {
#define NVML_READ(fld, fi, fv_type, getter, slot, conv)                                            \
        {FLD_##fld, NVML_GETTER_##getter == NVML_GETTER_GPM_METRICS},
#include "nvml/getters.def"
        };
        uint16_t ids[NVML_GPM_ROWS];
        field_value v[NVML_GPM_ROWS];
        size_t n = 0;

        (void)state;
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
                if (rows[i].gpm && n < NVML_GPM_ROWS)
                        ids[n++] = rows[i].field;
        assert_int_equal(n, NVML_GPM_ROWS);
        assert_int_equal(n, 31); /* 1001-1008 and 1011-1033 */
        for (unsigned g = 0; g < ngpu; g++) {
                assert_int_equal(backend_reattach(be, g), 0);
                if (real)
                        usleep(300000);
                assert_int_equal(backend_sample(be, g, ids, n, v), 0);
                for (size_t k = 0; k < n; k++) {
                        const field_meta *m = field_by_id(ids[k]);
                        if (v[k].status != 0) {
                                fprintf(stderr, "# GPU %u %-30s %s\n", g, m->sym,
                                        strerror(-v[k].status));
                                assert_true(v[k].status == -EOPNOTSUPP || v[k].status == -EACCES ||
                                            v[k].status == -ENODATA ||
                                            (!real && g == 1 && ids[k] == FLD_PROF_DRAM_ACTIVE));
                                continue;
                        }
                        if (real)
                                fprintf(stderr, "# GPU %u %-30s %.4f (GPM)\n", g, m->sym, v[k].d);
                        assert_true(isfinite(v[k].d) && v[k].d >= 0);
                        if (strcmp(m->unit, "ratio") == 0)
                                assert_true(v[k].d <= 1);
                        if (real)
                                continue;
                        switch (ids[k]) {
                        case FLD_PROF_SM_ACTIVE:
                                assert_true(fabs(v[k].d - 0.675) < 1e-9);
                                break;
                        case FLD_PROF_NVLINK_TX_BYTES:
                        case FLD_PROF_NVLINK_RX_BYTES:
                                assert_true(fabs(v[k].d - 3e9) < 1e-3);
                                break;
                        case FLD_PROF_NVDEC0_ACTIVE:
                                assert_true(v[k].d == 0);
                                break;
                        default:
                                break;
                        }
                }
        }
}

/* NVLink, MIG and topology through the backend. Fake (constant-2gpu.yaml): no NVLink and no MIG,
 * reported as not supported, never as "down"; the topology of the two GPUs is read at open.
 * Real: whatever the GPU says, printed for the log; a link's counters are numbers or unknown. */
static void test_nvlink_mig_topology(void **state)
{
        static const uint16_t ids[] = {FLD_NVLINK_LINKS_UP, FLD_NVLINK_LINKS_DOWN,
                                       FLD_NVLINK_REPLAY_ERROR_COUNT_TOTAL, FLD_MIG_MODE,
                                       FLD_MIG_INSTANCES};
        backend_topology *t = calloc(1, sizeof(*t));
        field_value v[5];

        (void)state;
        assert_non_null(t);
        for (unsigned g = 0; g < ngpu; g++) {
                backend_nvlink_info nl;
                backend_mig_info mi;

                assert_int_equal(backend_sample(be, g, ids, 5, v), 0);
                assert_int_equal(backend_nvlink_get(be, g, &nl), 0);
                assert_int_equal(backend_mig_get(be, g, &mi), 0);
                fprintf(stderr,
                        "# GPU %u NVLink: %s, %u links, %lld up; MIG: %s mode %d, %u inst\n", g,
                        nl.status ? strerror(-nl.status) : "ok", nl.n_links,
                        v[0].status ? -1LL : (long long)v[0].i,
                        mi.status ? strerror(-mi.status) : "ok", mi.mode, mi.n);
                for (unsigned l = 0; real && nl.status == 0 && l < nl.n_links; l++)
                        fprintf(
                            stderr, "#   link %2u state %d v%u remote %s replay %lld crc %lld\n", l,
                            nl.links[l].state, nl.links[l].version, nl.links[l].remote_bus_id,
                            nl.links[l].replay == UINT64_MAX ? -1LL : (long long)nl.links[l].replay,
                            nl.links[l].crc_flit == UINT64_MAX ? -1LL
                                                               : (long long)nl.links[l].crc_flit);
                if (!real) {
                        assert_int_equal(v[0].status, -EOPNOTSUPP);
                        assert_int_equal(nl.status, -EOPNOTSUPP);
                        assert_int_equal(v[3].status, -EOPNOTSUPP);
                        assert_int_equal(mi.status, -EOPNOTSUPP);
                } else if (nl.status == 0) {
                        assert_int_equal(v[0].status, 0);
                        assert_true(nl.n_links <= BACKEND_NVLINK_MAX);
                }
        }
        assert_int_equal(backend_topology_get(be, t), 0);
        assert_int_equal(t->n, ngpu);
        for (unsigned i = 0; i < t->n; i++) {
                fprintf(stderr, "# GPU %u topo:", i);
                for (unsigned j = 0; j < t->n; j++)
                        fprintf(stderr, " %s",
                                backend_topo_level_name((enum backend_topo_level)t->level[i][j]));
                fprintf(stderr, "  cpus %s numa %d\n", t->cpus[i], t->numa_node[i]);
                assert_int_equal(t->level[i][i], BTOPO_SELF);
        }
        if (!real && ngpu == 2) {
                assert_int_equal(t->level[0][1], BTOPO_PIX);
                assert_string_equal(t->cpus[0], "0-15");
                assert_int_equal(t->numa_node[1], 0);
        }
        free(t);
}

/* Profiling fields through GPM. A GPM value is computed between two samples: the backend takes
 * the first at attach, so after a re-attach the first read already has one. Fake: exact values
 * (DCGM ratio x 100 in the fake, / 100 in the backend), -ENODATA when there is no previous
 * sample, per-metric NOT_SUPPORTED learned. Real: a ratio in [0, 1] or honestly unsupported. */
static void test_gpm_profiling(void **state)
{
        static const uint16_t ids[] = {FLD_PROF_GR_ENGINE_ACTIVE, FLD_PROF_PIPE_TENSOR_ACTIVE,
                                       FLD_PROF_DRAM_ACTIVE};
        field_value v[3];

        (void)state;
        for (unsigned g = 0; g < ngpu; g++) {
                assert_int_equal(backend_reattach(be, g), 0);
                if (real)
                        usleep(300000); /* H200: DRAM_BW_UTIL is NaN over < ~50 ms */
                assert_int_equal(backend_sample(be, g, ids, 3, v), 0);
                if (real) {
                        usleep(300000);
                        assert_int_equal(backend_sample(be, g, ids, 3, v), 0); /* 2nd interval */
                }
                for (size_t k = 0; k < 3; k++) {
                        const field_meta *m = field_by_id(ids[k]);
                        if (v[k].status != 0) {
                                fprintf(stderr, "# GPU %u %-28s %s\n", g, m->sym,
                                        strerror(-v[k].status));
                                assert_true(v[k].status == -EOPNOTSUPP || v[k].status == -EACCES);
                                continue;
                        }
                        fprintf(stderr, "# GPU %u %-28s %.4f (GPM)\n", g, m->sym, v[k].d);
                        assert_true(isfinite(v[k].d) && v[k].d >= 0 && v[k].d <= 1);
                }
                if (real)
                        continue;
                assert_int_equal(v[0].status, 0);
                assert_true(fabs(v[0].d - 0.75) < 1e-12);
                assert_int_equal(v[1].status, 0);
                assert_true(fabs(v[1].d - 0.375) < 1e-12);
                if (g == 0) {
                        assert_int_equal(v[2].status, 0);
                        assert_true(fabs(v[2].d - 0.25) < 1e-12);
                } else {
                        assert_int_equal(v[2].status, -EOPNOTSUPP); /* per metric, learned */
                }
                /* the next interval: still exact, and one field alone works too */
                assert_int_equal(backend_sample(be, g, &ids[1], 1, v), 0);
                assert_int_equal(v[0].status, 0);
                assert_true(fabs(v[0].d - 0.375) < 1e-12);
        }
        if (real)
                return;
        {
                /* an injected ratio goes through the fake's GPM percent and back */
                backend_injection req = {.kind = BACKEND_INJECT_FIELD,
                                         .gpu = 0,
                                         .field_id = FLD_PROF_GR_ENGINE_ACTIVE,
                                         .value = 0.5};
                char err[256];
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                assert_true(fabs(value_of(0, FLD_PROF_GR_ENGINE_ACTIVE) - 0.5) < 1e-12);
                req.kind = BACKEND_INJECT_FIELD_CLEAR;
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
        }
        {
                /* a lost GPU: no previous sample after it is back until the re-attach primes */
                backend_injection req = {.kind = BACKEND_INJECT_LOST, .gpu = 1, .count = 1};
                char err[256];
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                assert_int_equal(backend_sample(be, 1, ids, 1, v), -ENODEV);
                req.count = 0;
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                assert_int_equal(backend_reattach(be, 1), 0);
                assert_true(fabs(value_of(1, FLD_PROF_GR_ENGINE_ACTIVE) - 0.75) < 1e-12);
        }
}

static void test_injection_and_loss_fake(void **state)
{
        backend_injection req = {
            .kind = BACKEND_INJECT_FIELD, .gpu = 1, .field_id = FLD_GPU_TEMP, .value = 91};
        char err[256];
        uint16_t id = FLD_GPU_TEMP;
        field_value v;

        (void)state;
        if (real)
                skip();
        assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
        assert_true(value_of(1, FLD_GPU_TEMP) == 91);
        req.kind = BACKEND_INJECT_FIELD_CLEAR;
        assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
        assert_true(value_of(1, FLD_GPU_TEMP) == 61);

        req = (backend_injection){.kind = BACKEND_INJECT_LOST, .gpu = 1, .count = 1};
        assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
        assert_int_equal(backend_sample(be, 1, &id, 1, &v), -ENODEV);
        assert_int_equal(v.status, -ENODEV);
        assert_int_equal(backend_reattach(be, 1), -ENODEV);
        assert_true(value_of(0, FLD_GPU_TEMP) == 45); /* the others carry on */
        req.count = 0;
        assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
        assert_int_equal(backend_reattach(be, 1), 0);
        assert_true(value_of(1, FLD_GPU_TEMP) == 61);
}

static void test_events(void **state)
{
        backend_event ev;
        int r;

        (void)state;
        r = backend_events_start(be);
        if (r == -EOPNOTSUPP) {
                fprintf(stderr, "# NVML events not supported here\n");
                return;
        }
        assert_int_equal(r, 0);
        /* a quiet GPU: the wait must time out, not fail */
        if (real) {
                r = backend_wait_event(be, 50, &ev);
                assert_true(r == -ETIMEDOUT || r == 0);
                return;
        }
        assert_int_equal(backend_wait_event(be, 50, &ev), -ETIMEDOUT);
        {
                backend_injection req = {.kind = BACKEND_INJECT_XID, .gpu = 1, .count = 79};
                char err[256];
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                assert_int_equal(backend_wait_event(be, 1000, &ev), 0);
                assert_int_equal(ev.gpu, 1);
                assert_int_equal(ev.kind, BEV_XID);
                assert_int_equal(ev.data, 79);
        }
}

/* The threads of backend.h at once, on the fake: two tiers sampling the same GPU (overlapping
 * field sets, GPM and unsupported fields included, so the learned per-field state is written by
 * both), the event thread waiting, and the owner losing and re-attaching GPU 1. Checks that every
 * answer stays well-formed; under ThreadSanitizer (docs/internals/backend.md) it is the test that
 * shows the backend free of data races. */
#define STRESS_ROUNDS 300
static int stress_stop; /* __atomic */

static void *stress_sampler(void *arg)
{
        static const uint16_t f[] = {FLD_GPU_TEMP,          FLD_POWER_USAGE,
                                     FLD_FB_USED,           FLD_SM_CLOCK,
                                     FLD_ECC_DBE_VOL_TOTAL, FLD_PROF_GR_ENGINE_ACTIVE,
                                     FLD_PROF_DRAM_ACTIVE,  FLD_TOTAL_ENERGY_CONSUMPTION,
                                     FLD_ROW_REMAP_PENDING, FLD_FB_RESERVED};
        field_value out[ARRAY_LEN(f)];
        uintptr_t seed = (uintptr_t)arg;
        long bad = 0;

        for (int k = 0; k < STRESS_ROUNDS; k++) {
                unsigned gpu = (unsigned)(k + seed) % ngpu;
                size_t n = seed ? ARRAY_LEN(f) : ARRAY_LEN(f) - 3;
                int r = backend_sample(be, gpu, seed ? f : f + 3, n, out);
                if (r != 0 && r != -ENODEV)
                        bad++;
                for (size_t i = 0; i < n; i++)
                        if (out[i].status > 0)
                                bad++;
                if (r == -ENODEV)
                        backend_reattach(be, gpu); /* from the tier that saw the loss */
        }
        return (void *)bad;
}

static void *stress_events(void *arg)
{
        backend_event ev;
        (void)arg;
        while (!__atomic_load_n(&stress_stop, __ATOMIC_RELAXED))
                backend_wait_event(be, 5, &ev);
        return NULL;
}

static void test_concurrent_threads_fake(void **state)
{
        pthread_t t[3];
        void *bad[2];
        char err[256];
        (void)state;

        if (real || ngpu < 2)
                skip();
        __atomic_store_n(&stress_stop, 0, __ATOMIC_RELAXED); /* events started by test_events */
        assert_int_equal(pthread_create(&t[0], NULL, stress_sampler, (void *)0), 0);
        assert_int_equal(pthread_create(&t[1], NULL, stress_sampler, (void *)1), 0);
        assert_int_equal(pthread_create(&t[2], NULL, stress_events, NULL), 0);
        for (int k = 0; k < 20; k++) {
                backend_injection lost = {
                    .kind = BACKEND_INJECT_LOST, .gpu = 1, .count = k % 2 == 0};
                backend_injection xid = {.kind = BACKEND_INJECT_XID, .gpu = 0, .count = 13};
                gpu_identity id;
                assert_int_equal(backend_inject(be, &lost, err, sizeof(err)), 0);
                assert_int_equal(backend_inject(be, &xid, err, sizeof(err)), 0);
                backend_device_info(be, 0, &id);
                usleep(2000);
        }
        {
                backend_injection back = {.kind = BACKEND_INJECT_LOST, .gpu = 1, .count = 0};
                assert_int_equal(backend_inject(be, &back, err, sizeof(err)), 0);
        }
        pthread_join(t[0], &bad[0]);
        pthread_join(t[1], &bad[1]);
        __atomic_store_n(&stress_stop, 1, __ATOMIC_RELAXED);
        pthread_join(t[2], NULL);
        assert_int_equal((long)bad[0], 0);
        assert_int_equal((long)bad[1], 0);
        backend_reattach(be, 1);
}

static void test_errno_map(void **state)
{
        (void)state;
        assert_int_equal(backend_errno_from_nvml(NVML_SUCCESS), 0);
        assert_int_equal(backend_errno_from_nvml(NVML_ERROR_NOT_SUPPORTED), -EOPNOTSUPP);
        assert_int_equal(backend_errno_from_nvml(NVML_ERROR_GPU_IS_LOST), -ENODEV);
        assert_int_equal(backend_errno_from_nvml(NVML_ERROR_NO_PERMISSION), -EACCES);
        assert_int_equal(backend_errno_from_nvml(NVML_ERROR_TIMEOUT), -ETIMEDOUT);
        assert_int_equal(backend_errno_from_nvml(NVML_ERROR_UNKNOWN), -EIO);
        assert_int_equal(backend_errno_from_nvml(12345), -EIO);
}

/* Processes (backend_processes): real NVML — every entry sane (PID > 0, memory within the GPU,
 * utilisation in 0..100); fake (tests/scenarios/workload.yaml, its own group) — exact lists,
 * merged compute + graphics, utilisation averaged, accounting only where the mode is on, and a
 * second read sees no utilisation sample older than the first's. */
static void test_processes(void **state)
{
        backend_process *p = calloc(BACKEND_PROC_MAX, sizeof(*p));

        (void)state;
        assert_non_null(p);
        for (unsigned g = 0; g < ngpu; g++) {
                backend_proc_list l;
                uint64_t seen = 0;
                int r = backend_processes(be, g, &seen, p, BACKEND_PROC_MAX, &l);

                fprintf(stderr, "# GPU %u processes: %s, %zu listed, util %s, accounting %d\n", g,
                        r ? strerror(-r) : "ok", r ? 0 : l.n,
                        r ? "-" : (l.util_status ? strerror(-l.util_status) : "ok"),
                        r ? -1 : l.accounting);
                if (r == -EOPNOTSUPP && real)
                        continue;
                assert_int_equal(r, 0);
                for (size_t i = 0; i < l.n; i++) {
                        fprintf(stderr, "#   pid %u type %u mem %llu sm %u%% util %d acct %d\n",
                                p[i].pid, p[i].type, (unsigned long long)p[i].mem_bytes,
                                p[i].sm_pct, p[i].util_status, p[i].acct_status);
                        assert_true(p[i].pid > 0);
                        assert_true(p[i].type & (BPROC_COMPUTE | BPROC_GRAPHICS));
                        assert_true(p[i].sm_pct <= 100 && p[i].mem_pct <= 100);
                        if (!l.accounting)
                                assert_int_equal(p[i].acct_status, -EOPNOTSUPP);
                }
        }
        free(p);
}

static const backend_process *pid_in(const backend_process *p, size_t n, unsigned pid)
{
        for (size_t i = 0; i < n; i++)
                if (p[i].pid == pid)
                        return &p[i];
        return NULL;
}

static void test_processes_exact_fake(void **state)
{
        backend_process p[8];
        backend_proc_list l;
        const backend_process *q;
        uint64_t seen = 0;

        (void)state;
        assert_int_equal(ngpu, 4);
        assert_int_equal(backend_processes(be, 0, &seen, p, 8, &l), 0);
        assert_int_equal(l.n, 2);
        q = pid_in(p, l.n, 1001);
        assert_non_null(q);
        assert_int_equal(q->mem_bytes, 20480ULL << 20);
        assert_int_equal(q->type, BPROC_COMPUTE);
        assert_int_equal(q->util_status, 0);
        assert_int_equal(q->sm_pct, 80);
        assert_int_equal(q->mem_pct, 30);
        assert_int_equal(q->gpu_instance, UINT32_MAX);
        assert_int_equal(l.accounting, 0);
        assert_true(seen > 0);
        /* NVML keeps no sample newer than the one just read: NOT_FOUND -> -ENODATA, the list
         * itself still answers */
        {
                uint64_t later = UINT64_MAX - 1;
                assert_int_equal(backend_processes(be, 0, &later, p, 8, &l), 0);
                assert_int_equal(l.util_status, -ENODATA);
                assert_int_equal(pid_in(p, l.n, 1001)->util_status, -ENODATA);
        }

        /* GPU 1: 1003 is in both lists: one entry, both bits; enc/dec carried */
        seen = 0;
        assert_int_equal(backend_processes(be, 1, &seen, p, 8, &l), 0);
        assert_int_equal(l.n, 2);
        q = pid_in(p, l.n, 1003);
        assert_non_null(q);
        assert_int_equal(q->type, BPROC_COMPUTE | BPROC_GRAPHICS);
        assert_int_equal(q->enc_pct, 3);
        assert_int_equal(q->dec_pct, 7);

        /* a buffer of one: the rest are counted, never written past max */
        seen = 0;
        assert_int_equal(backend_processes(be, 1, &seen, p, 1, &l), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.dropped, 1);

        /* GPU 2: accounting mode on: stats read for every process */
        seen = 0;
        assert_int_equal(backend_processes(be, 2, &seen, p, 8, &l), 0);
        assert_int_equal(l.accounting, 1);
        q = pid_in(p, l.n, 2001);
        assert_non_null(q);
        assert_int_equal(q->acct_status, 0);
        assert_int_equal(q->acct_gpu_pct, 90);
        assert_int_equal(q->acct_max_mem, 30720ULL << 20);
        q = pid_in(p, l.n, 7007);
        assert_non_null(q);
        assert_int_equal(q->util_status, -ENODATA); /* no utilisation scripted */

        /* the fake clock moves past pid 6006's end: gone from the list */
        {
                backend_injection adv = {.kind = BACKEND_INJECT_ADVANCE, .count = 150000000};
                char err[256];
                assert_int_equal(backend_inject(be, &adv, err, sizeof(err)), 0);
                seen = 0;
                assert_int_equal(backend_processes(be, 0, &seen, p, 8, &l), 0);
                assert_int_equal(l.n, 1);
                assert_null(pid_in(p, l.n, 6006));
                adv.count = 100000000;
                assert_int_equal(backend_inject(be, &adv, err, sizeof(err)), 0);
                assert_int_equal(backend_processes(be, 0, &seen, p, 8, &l), 0);
                q = pid_in(p, l.n, 6006);
                assert_non_null(q);
                assert_int_equal(q->mem_bytes, 2048ULL << 20); /* the reused PID's process */
        }
        assert_int_equal(backend_processes(be, 9, &seen, p, 8, &l), -EINVAL);
}

static int setup_procs(void **state)
{
        backend_options o = {0};
        char err[512] = "", scen[4096], lib[4096];
        const char *src = getenv("VIGIL_SOURCE_DIR"), *bld = getenv("VIGIL_BUILD_DIR");

        (void)state;
        snprintf(scen, sizeof(scen), "%s/tests/scenarios/workload.yaml", src ? src : ".");
        snprintf(lib, sizeof(lib), "%s/lib/libvigil-fakenvml.so", bld ? bld : "build");
        setenv("VIGIL_FAKENVML", lib, 1);
        o.simulate = 1;
        o.scenario = scen;
        if (backend_open(&o, &be, err, sizeof(err)) < 0) {
                fprintf(stderr, "# cannot open the backend: %s\n", err);
                return -1;
        }
        backend_device_count(be, &ngpu);
        return 0;
}

/* GPU configuration: the reads everywhere (real NVML included: read-only), the setters with
 * NVML's checks and a reset that puts the defaults back on the fake only. */
static void test_gpu_config(void **state)
{
        (void)state;
        for (unsigned g = 0; g < ngpu; g++) {
                backend_gpu_config c;
                unsigned mem[512], sm[512];
                size_t n_mem = 0, n_sm = 0;
                int r;

                assert_int_equal(backend_gpu_config_read(be, g, &c), 0);
                const int st[] = {c.power_status,   c.constraints_status, c.app_status,
                                  c.compute_status, c.persistence_status, c.ecc_status};
                for (size_t i = 0; i < ARRAY_LEN(st); i++)
                        assert_true(st[i] == 0 || st[i] == -EOPNOTSUPP || st[i] == -EACCES);
                if (c.power_status == 0 && c.constraints_status == 0) {
                        assert_true(c.power_min_mw <= c.power_mw);
                        assert_true(c.power_mw <= c.power_max_mw);
                }
                if (c.compute_status == 0)
                        assert_true(c.compute_mode <= 3);
                r = backend_supported_mem_clocks(be, g, mem, ARRAY_LEN(mem), &n_mem);
                assert_true(r == 0 || r == -EOPNOTSUPP);
                if (r == 0 && n_mem && n_mem <= ARRAY_LEN(mem)) {
                        assert_true(mem[0] > 0);
                        r = backend_supported_sm_clocks(be, g, mem[0], sm, ARRAY_LEN(sm), &n_sm);
                        assert_true(r == 0 || r == -EOPNOTSUPP);
                        if (r == 0)
                                assert_true(n_sm > 0 && sm[0] > 0);
                }
                fprintf(stderr,
                        "# GPU %u: power %u mW (%u..%u), app %u/%u MHz, compute %u, "
                        "persistence %u, ecc %u pending %u, %zu memory clocks, %zu SM "
                        "clocks\n",
                        g, c.power_mw, c.power_min_mw, c.power_max_mw, c.app_mem_mhz, c.app_sm_mhz,
                        c.compute_mode, c.persistence, c.ecc, c.ecc_pending, n_mem, n_sm);
        }
        if (real)
                return; /* never change a real GPU */
        {
                backend_gpu_config c;
                backend_injection reset = {.kind = BACKEND_INJECT_RESET, .gpu = 1};
                unsigned mem[4], sm[200];
                size_t n_mem = 0, n_sm = 0;
                char err[256];

                assert_int_equal(backend_supported_mem_clocks(be, 1, mem, 4, &n_mem), 0);
                assert_int_equal(n_mem, 1);
                assert_int_equal(mem[0], 3201);
                assert_int_equal(backend_supported_sm_clocks(be, 1, 3201, sm, 200, &n_sm), 0);
                assert_int_equal(sm[0], 1980);
                assert_int_equal(backend_supported_sm_clocks(be, 1, 1000, sm, 200, &n_sm), -ENOENT);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_POWER_LIMIT, 500000, 0), 0);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_POWER_LIMIT, 900000, 0),
                                 -EINVAL);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_APP_CLOCKS, 3201, 1500), 0);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_APP_CLOCKS, 3201, 1501),
                                 -EINVAL);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_LOCKED_GPU_CLOCKS, 1200, 1800),
                                 0);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_LOCKED_GPU_CLOCKS, 1800, 1200),
                                 -EINVAL);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_LOCKED_MEM_CLOCKS, 0, 0), 0);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_COMPUTE_MODE, 3, 0), 0);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_COMPUTE_MODE, 1, 0), -EINVAL);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_PERSISTENCE, 0, 0), 0);
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_ECC, 0, 0), 0);
                assert_int_equal(backend_gpu_config_read(be, 1, &c), 0);
                assert_int_equal(c.power_mw, 500000);
                assert_int_equal(c.app_sm_mhz, 1500);
                assert_int_equal(c.compute_mode, 3);
                assert_int_equal(c.persistence, 0);
                assert_int_equal(c.ecc, 1); /* pending until the reset */
                assert_int_equal(c.ecc_pending, 0);
                assert_int_equal(backend_inject(be, &reset, err, sizeof(err)), 0);
                assert_int_equal(backend_gpu_config_read(be, 1, &c), 0);
                assert_int_equal(c.power_mw, 700000); /* defaults back */
                assert_int_equal(c.app_sm_mhz, 1980);
                assert_int_equal(c.compute_mode, 0);
                assert_int_equal(c.persistence, 1);
                assert_int_equal(c.ecc, 0); /* the pending mode applied */
                assert_int_equal(c.ecc_pending, 0);
                /* put ECC back for the tests after this one */
                assert_int_equal(backend_gpu_config_set(be, 1, BCFG_ECC, 1, 0), 0);
                assert_int_equal(backend_inject(be, &reset, err, sizeof(err)), 0);
                assert_int_equal(backend_gpu_config_read(be, 1, &c), 0);
                assert_int_equal(c.ecc, 1);
                assert_int_equal(backend_gpu_config_set(be, 9, BCFG_ECC, 1, 0), -EINVAL);
        }
}

static void test_wrong_library_is_refused(void **state)
{
        backend_options o = {.library = "/nonexistent/libnvidia-ml.so.1"};
        backend *b = NULL;
        char err[512] = "";

        (void)state;
        assert_int_equal(backend_open(&o, &b, err, sizeof(err)), -ELIBACC);
        assert_null(b);
        assert_non_null(strstr(err, "/nonexistent/libnvidia-ml.so.1"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_identity),
            cmocka_unit_test(test_every_field_sane),
            cmocka_unit_test(test_memory_consistent),
            cmocka_unit_test(test_exact_values_fake),
            cmocka_unit_test(test_injection_and_loss_fake),
            cmocka_unit_test(test_gpm_profiling),
            cmocka_unit_test(test_gpm_all_metrics),
            cmocka_unit_test(test_nvlink_mig_topology),
            cmocka_unit_test(test_events),
            cmocka_unit_test(test_concurrent_threads_fake),
            cmocka_unit_test(test_errno_map),
            cmocka_unit_test(test_processes),
            cmocka_unit_test(test_gpu_config),
            cmocka_unit_test(test_wrong_library_is_refused),
        };
        const struct CMUnitTest procs[] = {
            cmocka_unit_test(test_processes),
            cmocka_unit_test(test_processes_exact_fake),
        };
        int failed = cmocka_run_group_tests(tests, setup, teardown);

        if (real)
                return failed;
        return failed + cmocka_run_group_tests_name("processes (workload.yaml)", procs, setup_procs,
                                                    teardown);
}
