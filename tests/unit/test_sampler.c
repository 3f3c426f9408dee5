/* test_sampler.c — the sampler against the fake NVML (constant-2gpu scenario): tiers fill the
 * cache with exact values, per-field overrides switch fields off, a lost GPU is marked and comes
 * back without a restart, XID events are counted per code, stop is prompt. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "cache/cache.h"
#include "common/vtime.h"
#include "sampler/sampler.h"

static backend *be;
static cache *ca;
static _Atomic unsigned sweeps[TIER_COUNT];

static void on_sweep(void *ud, enum field_tier t)
{
        (void)ud;
        sweeps[t]++;
}

static int setup(void **state)
{
        backend_options o = {.simulate = 1};
        char err[512], scen[4096], lib[4096];
        const char *src = getenv("VIGIL_SOURCE_DIR"), *bld = getenv("VIGIL_BUILD_DIR");

        (void)state;
        snprintf(scen, sizeof(scen), "%s/tests/scenarios/constant-2gpu.yaml", src ? src : ".");
        snprintf(lib, sizeof(lib), "%s/lib/libvigil-fakenvml.so", bld ? bld : "build");
        setenv("VIGIL_FAKENVML", lib, 1);
        o.scenario = scen;
        if (backend_open(&o, &be, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        return cache_new(sampler_max_gpus(), &ca) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        (void)state;
        ca = cache_free(ca);
        be = backend_close(be);
        return 0;
}

static bool wait_ready(sampler *e, int64_t timeout_us)
{
        int64_t end = time_mono_us() + timeout_us;

        while (time_mono_us() < end) {
                if (sampler_ready(e))
                        return true;
                usleep(10000);
        }
        return false;
}

static void test_sampling_lost_and_xid(void **state)
{
        static const sampler_field_interval ov[] = {{FLD_MEMORY_TEMP, 0}, {FLD_GPU_TEMP, 200000}};
        sampler_options eo = {.backend = be,
                              .cache = ca,
                              .fast_us = 100000,
                              .slow_us = 5000000,
                              .overrides = ov,
                              .n_overrides = 2,
                              .keep_max_age_us = 60 * USEC_PER_SEC,
                              .keep_max_samples = 600,
                              .reattach_us = 100000,
                              .on_sweep = on_sweep};
        sampler *e = NULL;
        field_value v;
        sampler_gpu g;
        sampler_xid x[4];
        char err[256];
        int64_t t0;

        (void)state;
        assert_int_equal(sampler_new(&eo, &e), 0);
        assert_int_equal(sampler_gpu_count(e), 2);
        /* static fields and identity are read before the threads start */
        assert_int_equal(cache_latest(ca, 0, FLD_FB_TOTAL, &v, NULL), 0);
        assert_int_equal(v.i, 143771);
        assert_int_equal(sampler_gpu_get(e, 1, &g), 0);
        assert_string_equal(g.id.uuid, "GPU-00000000-1111-2222-3333-444444444444");
        assert_int_equal(
            sampler_gpu_find(e, "GPU-00000000-1111-2222-3333-444444444444", &(unsigned){0}), 0);
        assert_int_equal(sampler_gpu_find(e, "7", &(unsigned){0}), -ENOENT);

        assert_int_equal(sampler_start(e), 0);
        assert_true(wait_ready(e, 5 * USEC_PER_SEC));
        assert_int_equal(cache_latest(ca, 1, FLD_GPU_TEMP, &v, NULL), 0);
        assert_int_equal(v.status, 0);
        assert_int_equal(v.i, 61);
        assert_int_equal(cache_latest(ca, 0, FLD_POWER_USAGE, &v, NULL), 0);
        assert_true(v.d == 250.5);
        assert_int_equal(cache_latest(ca, 0, FLD_MEMORY_TEMP, &v, NULL), -ENOENT); /* off */
        assert_int_equal(sampler_interval_of(e, FLD_MEMORY_TEMP), 0);
        assert_int_equal(sampler_interval_of(e, FLD_GPU_TEMP), 200000);
        assert_int_equal(sampler_interval_of(e, FLD_SM_CLOCK), 100000);
        assert_true(sweeps[TIER_FAST] >= 1 && sweeps[TIER_SLOW] >= 1);
        /* the InfoROM check (~70 ms of CPU per call on a GPU) is hourly, yet read at start */
        assert_int_equal(sampler_interval_of(e, FLD_INFOROM_VALID), 3600 * USEC_PER_SEC);
        assert_int_equal(sampler_interval_of(e, FLD_APP_SM_CLOCK), 60 * USEC_PER_SEC);
        assert_int_equal(sampler_interval_of(e, FLD_POWER_LIMIT), 5 * USEC_PER_SEC);
        assert_int_equal(cache_latest(ca, 0, FLD_INFOROM_VALID, &v, NULL), 0);
        assert_int_equal(v.status, 0);
        assert_int_equal(v.i, 1);

        /* lost: marked within a few sweeps, back by itself */
        {
                backend_injection req = {.kind = BACKEND_INJECT_LOST, .gpu = 1, .count = 1};
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                t0 = time_mono_us();
                while (sampler_gpus_up(e) != 1 && time_mono_us() - t0 < 2 * USEC_PER_SEC)
                        usleep(10000);
                assert_int_equal(sampler_gpus_up(e), 1);
                sampler_gpu_get(e, 1, &g);
                assert_false(g.up);
                assert_true(g.lost_since_us > 0);
                {
                        /* a lost GPU's last reading is stale whatever its age */
                        sampler_reading rd;
                        assert_int_equal(sampler_latest(e, 1, FLD_SM_CLOCK, 0, &rd), 0);
                        assert_int_equal(rd.fresh, SAMPLER_LOST);
                        assert_int_equal(sampler_latest(e, 0, FLD_SM_CLOCK, 0, &rd), 0);
                        assert_int_equal(rd.fresh, SAMPLER_FRESH);
                }
                req.count = 0;
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                while (sampler_gpus_up(e) != 2 && time_mono_us() - t0 < 5 * USEC_PER_SEC)
                        usleep(10000);
                assert_int_equal(sampler_gpus_up(e), 2);
                sampler_gpu_get(e, 1, &g);
                assert_int_equal(g.attaches, 2);
        }

        /* XIDs counted per code, in code order */
        {
                backend_injection req = {.kind = BACKEND_INJECT_XID, .gpu = 0, .count = 79};
                size_t n = 0;
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                req.count = 13;
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                assert_int_equal(backend_inject(be, &req, err, sizeof(err)), 0);
                t0 = time_mono_us();
                while (time_mono_us() - t0 < 2 * USEC_PER_SEC) {
                        n = sampler_xids(e, 0, x, 4);
                        if (n == 2 && x[0].count == 2)
                                break;
                        usleep(5000);
                }
                assert_int_equal(n, 2);
                assert_int_equal(x[0].code, 13);
                assert_int_equal(x[0].count, 2);
                assert_int_equal(x[1].code, 79);
                assert_int_equal(x[1].count, 1);
                assert_int_equal(sampler_xids(e, 1, x, 4), 0);
                assert_int_equal(cache_latest(ca, 0, FLD_XID_COUNT, &v, NULL), 0);
                assert_int_equal(v.i, 3);
        }

        /* stop returns with a 5 s slow tier (how fast: bench/timings.py) */
        sampler_stop(e);
        e = sampler_free(e);
}

static _Atomic int stuck_state[2];   /* per GPU: 1 stuck, 0 responsive, -1 never told */
static _Atomic unsigned stuck_calls; /* callbacks received */

static void on_stuck(void *ud, unsigned gpu, bool stuck)
{
        (void)ud;
        if (gpu < 2)
                stuck_state[gpu] = stuck;
        stuck_calls++;
}

static bool wait_state(int want0, int want1, int64_t timeout_us)
{
        int64_t end = time_mono_us() + timeout_us;

        while (time_mono_us() < end) {
                if (stuck_state[0] == want0 && stuck_state[1] == want1)
                        return true;
                usleep(10000);
        }
        return false;
}

/* A hung sample call: the watchdog gives it up, the tier goes on with a new thread, the GPU is
 * reported stuck and responsive again once the call returns; nothing waits on the hung thread. */
static void test_watchdog(void **state)
{
        cache *wc = NULL; /* its own: the first case's groups are in ca */
        sampler_options eo = {.backend = be,
                              .fast_us = 100000,
                              .slow_us = 5000000,
                              .keep_max_age_us = 60 * USEC_PER_SEC,
                              .keep_max_samples = 600,
                              .on_sweep = on_sweep};
        backend_injection scale = {.kind = BACKEND_INJECT_CALL_COST, .call = "*", .count = 100};
        backend_injection cost = {.kind = BACKEND_INJECT_CALL_COST,
                                  .call = "nvmlDeviceGetTemperature",
                                  .count = 1200 * 1000000LL}; /* 1.2 s, slept (> 100 ms) */
        sampler *e = NULL;
        sampler_gpu g;
        char err[256];
        unsigned before;

        (void)state;
        stuck_state[0] = stuck_state[1] = -1;
        assert_int_equal(cache_new(sampler_max_gpus(), &wc), 0);
        eo.cache = wc;
        assert_int_equal(sampler_new(&eo, &e), 0);
        sampler_set_watchdog(e, 300000, on_stuck, NULL);
        assert_int_equal(sampler_start(e), 0);
        assert_true(wait_ready(e, 5 * USEC_PER_SEC));
        assert_int_equal(stuck_calls, 0);
        assert_int_equal(backend_inject(be, &scale, err, sizeof(err)), 0);
        assert_int_equal(backend_inject(be, &cost, err, sizeof(err)), 0);
        /* GPU 0 hangs first (the tier samples in index order), then GPU 1 under the new thread */
        assert_true(wait_state(1, -1, USEC_PER_SEC));
        assert_int_equal(sampler_gpu_get(e, 0, &g), 0);
        assert_true(g.stuck && g.up);
        assert_true(wait_state(1, 1, USEC_PER_SEC));
        /* both stuck: the fast tier keeps sweeping (skipping them) */
        before = sweeps[TIER_FAST];
        usleep(300000);
        assert_true(sweeps[TIER_FAST] > before + 1);
        cost.count = 0;
        assert_int_equal(backend_inject(be, &cost, err, sizeof(err)), 0);
        assert_true(wait_state(0, 0, 2 * USEC_PER_SEC));
        assert_int_equal(sampler_gpu_get(e, 1, &g), 0);
        assert_false(g.stuck);
        scale.count = 0; /* the scenario's */
        assert_int_equal(backend_inject(be, &scale, err, sizeof(err)), 0);
        /* off: no callback after this */
        sampler_set_watchdog(e, 0, NULL, NULL);
        sampler_stop(e);
        e = sampler_free(e);
        wc = cache_free(wc);
}

static _Atomic int64_t clock_offset_us; /* added to the wall clock the sampler sees */

static int64_t test_clock(void)
{
        return time_real_us() + clock_offset_us;
}

/* The wall clock steps back an hour while sampling: readings must keep flowing (they froze
 * before: the cache refused every older timestamp and the sampler ignored it), the step is
 * counted, and the event thread's long NVML wait still ends promptly at stop. */
static void test_clock_step_back(void **state)
{
        cache *cc = NULL;
        sampler_options eo = {.backend = be,
                              .fast_us = 50000,
                              .slow_us = 5000000,
                              .keep_max_age_us = 60 * USEC_PER_SEC,
                              .keep_max_samples = 600,
                              .clock_real_us = test_clock};
        backend_injection hot = {
            .kind = BACKEND_INJECT_FIELD, .gpu = 0, .field_id = FLD_GPU_TEMP, .value = 93};
        sampler *e = NULL;
        sampler_stats st;
        field_value v;
        int64_t ts_before, ts, t0;
        char err[256];

        (void)state;
        assert_int_equal(cache_new(sampler_max_gpus(), &cc), 0);
        eo.cache = cc;
        assert_int_equal(sampler_new(&eo, &e), 0);
        assert_int_equal(sampler_start(e), 0);
        assert_true(wait_ready(e, 5 * USEC_PER_SEC));
        assert_int_equal(cache_latest(cc, 0, FLD_GPU_TEMP, &v, &ts_before), 0);
        assert_int_equal(v.i, 45);
        clock_offset_us = -3600 * USEC_PER_SEC;
        assert_int_equal(backend_inject(be, &hot, err, sizeof(err)), 0);
        t0 = time_mono_us();
        do {
                usleep(20000);
                assert_int_equal(cache_latest(cc, 0, FLD_GPU_TEMP, &v, &ts), 0);
        } while (v.i != 93 && time_mono_us() - t0 < 2 * USEC_PER_SEC);
        assert_int_equal(v.i, 93); /* the GPU heats up: seen although its samples are "older" */
        assert_true(ts >= ts_before);
        sampler_get_stats(e, &st);
        assert_true(st.clock_steps > 0);
        assert_int_equal(st.push_errors, 0);
        hot.kind = BACKEND_INJECT_FIELD_CLEAR;
        assert_int_equal(backend_inject(be, &hot, err, sizeof(err)), 0);
        clock_offset_us = 0;
        t0 = time_mono_us();
        sampler_stop(e);
        assert_true(time_mono_us() - t0 < USEC_PER_SEC); /* the event wait was woken */
        e = sampler_free(e);
        cc = cache_free(cc);
}

/* The one definition of staleness: older than 3x the field's effective interval (at least
 * 2 s) by age; static fields never by age; a field not watched is -ENOENT. */
static void test_staleness(void **state)
{
        cache *sc = NULL;
        sampler_options eo = {.backend = be,
                              .fast_us = 100000,
                              .slow_us = 6000000,
                              .keep_max_age_us = 60 * USEC_PER_SEC,
                              .keep_max_samples = 600};
        sampler *e = NULL;
        sampler_reading rd;
        int64_t ts;

        (void)state;
        assert_int_equal(cache_new(sampler_max_gpus(), &sc), 0);
        eo.cache = sc;
        assert_int_equal(sampler_new(&eo, &e), 0);
        assert_int_equal(sampler_start(e), 0);
        assert_true(wait_ready(e, 5 * USEC_PER_SEC));
        sampler_stop(e); /* the readings stay as they are: ages are given by now_us below */

        assert_int_equal(sampler_stale_after(e, FLD_GPU_TEMP), 2 * USEC_PER_SEC); /* floor */
        assert_int_equal(sampler_stale_after(e, FLD_PERSISTENCE_MODE), 18 * USEC_PER_SEC);
        assert_int_equal(sampler_stale_after(e, FLD_FB_TOTAL), 0);   /* static */
        assert_int_equal(sampler_stale_after(e, FLD_XID_ERRORS), 0); /* event */

        assert_int_equal(sampler_latest(e, 0, FLD_GPU_TEMP, 0, &rd), 0);
        assert_int_equal(rd.v.status, 0);
        assert_int_equal(rd.v.i, 45);
        ts = rd.ts_us;
        assert_true(ts > 0);
        assert_int_equal(sampler_latest(e, 0, FLD_GPU_TEMP, ts + 1900000, &rd), 0);
        assert_int_equal(rd.fresh, SAMPLER_FRESH);
        assert_int_equal(rd.age_us, 1900000);
        assert_int_equal(sampler_latest(e, 0, FLD_GPU_TEMP, ts + 2100000, &rd), 0);
        assert_int_equal(rd.fresh, SAMPLER_AGED);
        assert_int_equal(rd.v.i, 45); /* the value is kept: the caller says it is old */

        assert_int_equal(sampler_latest(e, 0, FLD_PERSISTENCE_MODE, 0, &rd), 0);
        ts = rd.ts_us;
        assert_int_equal(sampler_latest(e, 0, FLD_PERSISTENCE_MODE, ts + 17 * USEC_PER_SEC, &rd),
                         0);
        assert_int_equal(rd.fresh, SAMPLER_FRESH);
        assert_int_equal(sampler_latest(e, 0, FLD_PERSISTENCE_MODE, ts + 19 * USEC_PER_SEC, &rd),
                         0);
        assert_int_equal(rd.fresh, SAMPLER_AGED);

        assert_int_equal(sampler_latest(e, 0, FLD_FB_TOTAL, 0, &rd), 0);
        assert_int_equal(sampler_latest(e, 0, FLD_FB_TOTAL, rd.ts_us + 3600 * USEC_PER_SEC, &rd),
                         0);
        assert_int_equal(rd.fresh, SAMPLER_FRESH);
        assert_int_equal(sampler_latest(e, 7, FLD_GPU_TEMP, 0, &rd), -ENOENT);
        assert_string_equal(sampler_freshness_name(SAMPLER_AGED), "aged");
        e = sampler_free(e);
        sc = cache_free(sc);
}

/* collection.profiling: auto reads a profiling field only while it is pinned or asked for: not
 * watched (-ENOENT) until then, read from the next slow sweep after a demand; a pin replaces
 * only its owner's set; profiling_all reads every one. */
static void test_profiling_on_demand(void **state)
{
        cache *sc = NULL;
        sampler_options eo = {.backend = be,
                              .fast_us = 100000,
                              .slow_us = 200000,
                              .keep_max_age_us = 60 * USEC_PER_SEC,
                              .keep_max_samples = 600,
                              .on_sweep = on_sweep};
        const uint16_t pin[] = {FLD_PROF_SM_OCCUPANCY, FLD_GPU_TEMP};
        sampler *e = NULL;
        sampler_reading rd;
        unsigned before;
        int64_t end;

        (void)state;
        assert_int_equal(cache_new(sampler_max_gpus(), &sc), 0);
        eo.cache = sc;
        assert_int_equal(sampler_new(&eo, &e), 0);
        assert_true(sampler_profiling_wanted(e, FLD_GPU_TEMP)); /* not a profiling field */
        assert_false(sampler_profiling_wanted(e, FLD_PROF_SM_ACTIVE));
        sampler_profiling_pin(e, SAMPLER_PIN_EXPOSITION, pin, 2);
        assert_true(sampler_profiling_wanted(e, FLD_PROF_SM_OCCUPANCY));
        assert_int_equal(sampler_start(e), 0);
        assert_true(wait_ready(e, 5 * USEC_PER_SEC));
        assert_int_equal(sampler_latest(e, 0, FLD_PROF_SM_ACTIVE, 0, &rd), -ENOENT);
        assert_int_equal(sampler_latest(e, 0, FLD_PROF_SM_OCCUPANCY, 0, &rd), 0);

        sampler_profiling_demand(e, FLD_PROF_SM_ACTIVE);
        assert_true(sampler_profiling_wanted(e, FLD_PROF_SM_ACTIVE));
        before = sweeps[TIER_SLOW];
        end = time_mono_us() + 5 * USEC_PER_SEC;
        while (sweeps[TIER_SLOW] < before + 2 && time_mono_us() < end)
                usleep(10000);
        assert_true(sweeps[TIER_SLOW] >= before + 2);
        assert_int_equal(sampler_latest(e, 0, FLD_PROF_SM_ACTIVE, 0, &rd), 0);
        assert_int_not_equal(rd.v.status, -ENOENT);

        sampler_profiling_pin(e, SAMPLER_PIN_EXPOSITION, NULL, 0);
        assert_false(sampler_profiling_wanted(e, FLD_PROF_SM_OCCUPANCY));
        assert_int_equal(sampler_latest(e, 0, FLD_PROF_SM_OCCUPANCY, 0, &rd), -ENOENT);
        sampler_stop(e);
        e = sampler_free(e);
        sc = cache_free(sc);

        eo.profiling_all = true;
        assert_int_equal(cache_new(sampler_max_gpus(), &sc), 0);
        eo.cache = sc;
        assert_int_equal(sampler_new(&eo, &e), 0);
        assert_true(sampler_profiling_wanted(e, FLD_PROF_NVDEC0_ACTIVE));
        e = sampler_free(e);
        sc = cache_free(sc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sampling_lost_and_xid), cmocka_unit_test(test_watchdog),
            cmocka_unit_test(test_clock_step_back),       cmocka_unit_test(test_staleness),
            cmocka_unit_test(test_profiling_on_demand),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
