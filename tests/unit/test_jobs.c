/* test_jobs.c — job statistics (src/workload/jobs*.c): aggregation of fresh readings, energy as
 * the counter's difference (with a counter reset), gaps for lost GPUs, automatic jobs that start
 * when seen and end after the grace period, the restart gap through a real store, retention, and
 * bad input. The jobs are fed directly (no sampler); the clock is the test's. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "testutil.h"
#include "workload/jobs.h"

#define S INT64_C(1000000)

static int64_t clock_now = 1700000000 * S;

static int64_t test_clock(void)
{
        return clock_now;
}

static jobs *mk(store *st, unsigned gpus, int64_t grace, int64_t retention)
{
        jobs_options o = {.store = st,
                          .gpu_count = gpus,
                          .grace_us = grace,
                          .retention_us = retention,
                          .clock_real_us = test_clock};
        jobs *j = NULL;
        char err[256] = "";

        assert_int_equal(jobs_new(&o, &j, err, sizeof(err)), 0);
        return j;
}

/* An observation with the given energy (mJ), SM utilisation (%) and temperature, sampled at ts. */
static jobs_obs obs(int64_t ts, double energy, double util, double temp)
{
        jobs_obs o = {.state = JOBS_GPU_OK};

        o.f[JF_ENERGY].valid = true;
        o.f[JF_ENERGY].ts_us = ts;
        o.f[JF_ENERGY].v = energy;
        o.f[JF_SM_UTIL].valid = true;
        o.f[JF_SM_UTIL].ts_us = ts;
        o.f[JF_SM_UTIL].v = util;
        o.f[JF_TEMP].valid = true;
        o.f[JF_TEMP].ts_us = ts;
        o.f[JF_TEMP].v = temp;
        return o;
}

static json_t *gpu_of(json_t *job, unsigned i)
{
        return json_array_get(json_object_get(job, "gpus"), i);
}

static double num(json_t *o, const char *path)
{
        char buf[128];
        char *save = NULL, *k;
        json_t *v = o;

        snprintf(buf, sizeof(buf), "%s", path);
        for (k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
                v = json_object_get(v, k);
        assert_non_null(v);
        assert_true(json_is_number(v));
        return json_number_value(v);
}

static void test_aggregation(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 2, 60 * S, 0);
        json_t *r = NULL, *g;
        jobs_obs o;
        int64_t t0 = clock_now;

        (void)state;
        assert_int_equal(jobs_start(j, "train-1", 0x1, err, sizeof(err)), 0);
        /* a reading sampled before the start is not the job's (gauges); counters start there */
        o = obs(t0 - 1 * S, 1000, 99, 90);
        jobs_feed(j, 0, &o, t0);
        o = obs(t0 + 1 * S, 1500, 40, 50);
        jobs_feed(j, 0, &o, t0 + 1 * S);
        o = obs(t0 + 1 * S, 1500, 40, 50); /* the same sample again: counted once */
        jobs_feed(j, 0, &o, t0 + 1 * S);
        o = obs(t0 + 2 * S, 2600, 80, 70);
        o.f[JF_TEMP].valid = false; /* stale: never counted */
        o.f[JF_TEMP].v = 200;
        jobs_feed(j, 0, &o, t0 + 2 * S);
        o = obs(t0 + 3 * S, 4000, 60, 60);
        jobs_feed(j, 1, &o, t0 + 3 * S); /* GPU 1 is not in the job */
        clock_now = t0 + 3 * S;
        assert_int_equal(jobs_stop(j, "train-1", err, sizeof(err)), 0);
        assert_int_equal(jobs_get(j, "train-1", &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "finished");
        assert_false(json_is_true(json_object_get(r, "final"))); /* no reading after the end yet */
        assert_int_equal(json_array_size(json_object_get(r, "gpus")), 1);
        g = gpu_of(r, 0);
        assert_int_equal((int)num(g, "gpu"), 0);
        /* the start lies halfway between the readings at t0-1s (1000) and t0+1s (1500) */
        assert_int_equal((int64_t)num(g, "energy.start_mj"), 1250);
        assert_true(
            json_is_true(json_object_get(json_object_get(g, "energy"), "start_interpolated")));
        assert_int_equal((int64_t)num(g, "energy.end_mj"), 2600);
        assert_int_equal((int64_t)num(g, "energy.used_mj"), 1350);
        json_decref(r);
        /* the first reading after the end (t0+5s): the end lies a third of the way to it */
        o = obs(t0 + 5 * S, 4600, 100, 100);
        jobs_feed(j, 0, &o, t0 + 5 * S);
        jobs_tick(j, t0 + 5 * S, false);
        assert_int_equal(jobs_get(j, "train-1", &r), 0);
        assert_true(json_is_true(json_object_get(r, "final")));
        g = gpu_of(r, 0);
        assert_int_equal((int64_t)num(g, "energy.end_mj"), 3267);
        assert_int_equal((int64_t)num(g, "energy.used_mj"), 2017);
        assert_true(
            json_is_true(json_object_get(json_object_get(g, "energy"), "end_interpolated")));
        assert_true(num(g, "energy_joules") == 2.017);
        assert_true(num(r, "energy_joules") == 2.017);
        assert_true(num(g, "sm_utilization_pct.avg") == 60.0);
        assert_true(num(g, "sm_utilization_pct.max") == 80.0);
        assert_int_equal((int)num(g, "sm_utilization_pct.samples"), 2);
        assert_true(num(g, "temperature_max_c") == 50.0);
        assert_true(json_is_null(json_object_get(g, "memory_used_max_mib")));
        assert_null(json_object_get(g, "_state")); /* internal accumulators are not shown */
        json_decref(r);
        jobs_free(j);
}

static void test_energy_counter_reset(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 1, 60 * S, 0);
        json_t *r = NULL, *g;
        jobs_obs o;
        int64_t t = clock_now;

        (void)state;
        assert_int_equal(jobs_start(j, "reset", 0, err, sizeof(err)), 0);
        const double e[] = {1000, 1500, 3000, 200, 700}; /* driver reload after 3000 */
        for (unsigned i = 0; i < 5; i++) {
                o = obs(t + (int64_t)i * S, e[i], 50, 40);
                jobs_feed(j, 0, &o, t + (int64_t)i * S);
        }
        clock_now = t + 4 * S;
        assert_int_equal(jobs_stop(j, "reset", err, sizeof(err)), 0);
        assert_int_equal(jobs_get(j, "reset", &r), 0);
        g = gpu_of(r, 0);
        /* 3000 - 1000 before the reset, then 700 counted from the reload's 0 */
        assert_int_equal((int64_t)num(g, "energy.used_mj"), 2700);
        assert_int_equal((int)num(g, "energy.counter_resets"), 1);
        json_decref(r);
        jobs_free(j);
}

static void test_gap_lost_gpu(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 1, 60 * S, 0);
        json_t *r = NULL, *gaps;
        jobs_obs o, lost = {.state = JOBS_GPU_LOST};
        int64_t t = clock_now;

        (void)state;
        assert_int_equal(jobs_start(j, "gap", 0, err, sizeof(err)), 0);
        o = obs(t + 1 * S, 100, 10, 40);
        jobs_feed(j, 0, &o, t + 1 * S);
        lost.f[JF_SM_UTIL].valid = true; /* whatever it says, a lost GPU's values do not count */
        lost.f[JF_SM_UTIL].ts_us = t + 2 * S;
        lost.f[JF_SM_UTIL].v = 100;
        jobs_feed(j, 0, &lost, t + 2 * S);
        jobs_feed(j, 0, &lost, t + 3 * S);
        assert_int_equal(jobs_get(j, "gap", &r), 0);
        gaps = json_object_get(gpu_of(r, 0), "gaps");
        assert_int_equal(json_array_size(gaps), 1);
        assert_true(json_is_null(json_object_get(json_array_get(gaps, 0), "end_us")));
        json_decref(r);
        o = obs(t + 4 * S, 300, 30, 40);
        jobs_feed(j, 0, &o, t + 4 * S);
        assert_int_equal(jobs_get(j, "gap", &r), 0);
        gaps = json_object_get(gpu_of(r, 0), "gaps");
        assert_int_equal(json_array_size(gaps), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(gaps, 0), "reason")),
                            "gpu_lost");
        assert_int_equal((int64_t)num(json_array_get(gaps, 0), "start_us"), t + 2 * S);
        assert_int_equal((int64_t)num(json_array_get(gaps, 0), "end_us"), t + 4 * S);
        assert_true(num(gpu_of(r, 0), "sm_utilization_pct.max") == 30.0);
        assert_true(num(gpu_of(r, 0), "sm_utilization_pct.avg") == 20.0);
        json_decref(r);
        jobs_free(j);
}

static void test_xids(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 1, 60 * S, 0);
        json_t *r = NULL, *x;
        jobs_obs o = obs(clock_now, 0, 0, 0);

        (void)state;
        assert_int_equal(jobs_start(j, "xid", 0, err, sizeof(err)), 0);
        o.n_xids = 1; /* before the job: XID 79 seen twice */
        o.xid_code[0] = 79;
        o.xid_count[0] = 2;
        jobs_feed(j, 0, &o, clock_now);
        o.n_xids = 2;
        o.xid_count[0] = 3; /* one more 79 */
        o.xid_code[1] = 48; /* and a new code, twice */
        o.xid_count[1] = 2;
        jobs_feed(j, 0, &o, clock_now + 1);
        assert_int_equal(jobs_get(j, "xid", &r), 0);
        x = json_object_get(gpu_of(r, 0), "xids");
        assert_int_equal(json_array_size(x), 2);
        for (size_t i = 0; i < 2; i++) {
                json_t *e = json_array_get(x, i);
                int code = (int)num(e, "code");
                assert_int_equal((int)num(e, "count"), code == 79 ? 1 : 2);
        }
        json_decref(r);
        jobs_free(j);
}

static void test_automatic_grace(void **state)
{
        jobs *j = mk(NULL, 2, 30 * S, 0);
        json_t *r = NULL, *gaps;
        int64_t t = clock_now;

        (void)state;
        assert_int_equal(jobs_observe(j, 0, "slurm", "4242", t), 0);
        assert_int_equal(jobs_observe(j, 1, "slurm", "4242", t + 1 * S), 0);
        assert_int_equal(jobs_observe(j, 0, "pod", "0f6e-aa", t), 0);
        assert_int_equal(jobs_observe(j, 0, "nobody", "1", t), -EINVAL);
        assert_int_equal(jobs_observe(j, 0, "slurm", "a/b", t), -EINVAL);
        jobs_tick(j, t + 20 * S, false);
        assert_int_equal(jobs_observe(j, 0, "slurm", "4242", t + 20 * S), 0);
        jobs_tick(j, t + 40 * S, false); /* slurm seen 20 s ago: running; pod 40 s ago: ended */
        assert_int_equal(jobs_get(j, "slurm:4242", &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "running");
        assert_string_equal(json_string_value(json_object_get(r, "kind")), "slurm");
        assert_int_equal(json_array_size(json_object_get(r, "gpus")), 2);
        json_decref(r);
        assert_int_equal(jobs_get(j, "pod:0f6e-aa", &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "finished");
        assert_int_equal((int64_t)num(r, "end_us"), t + 40 * S);
        json_decref(r);
        jobs_tick(j, t + 51 * S, false);
        assert_int_equal(jobs_get(j, "slurm:4242", &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "finished");
        json_decref(r);
        /* seen again: the same job resumes, the pause marked */
        assert_int_equal(jobs_observe(j, 0, "slurm", "4242", t + 60 * S), 0);
        assert_int_equal(jobs_get(j, "slurm:4242", &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "running");
        gaps = json_object_get(gpu_of(r, 0), "gaps");
        assert_int_equal(json_array_size(gaps), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(gaps, 0), "reason")),
                            "not_seen");
        assert_int_equal((int64_t)num(json_array_get(gaps, 0), "start_us"), t + 51 * S);
        assert_int_equal((int64_t)num(json_array_get(gaps, 0), "end_us"), t + 60 * S);
        json_decref(r);
        jobs_free(j);
}

static void test_processes(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 2, 60 * S, 0);
        json_t *r = NULL, *p;

        (void)state;
        assert_int_equal(jobs_start(j, "reg", 0x1, err, sizeof(err)), 0);
        assert_int_equal(jobs_observe(j, 0, "pod", "p1", clock_now), 0);
        assert_int_equal(jobs_observe(j, 1, "pod", "p2", clock_now), 0);
        jobs_process_seen(j, 0, 100, "pod", "p1");
        jobs_process_seen(j, 0, 100, "pod", "p1"); /* seen again: listed once */
        jobs_process_seen(j, 1, 200, "pod", "p2");
        jobs_process_seen(j, 0, 300, NULL, NULL); /* owner unknown: registered jobs only */
        for (uint32_t pid = 1000; pid < 1000 + JOBS_MAX_PIDS + 3; pid++)
                jobs_process_seen(j, 1, pid, "pod", "p2");
        assert_int_equal(jobs_get(j, "reg", &r), 0);
        p = json_object_get(gpu_of(r, 0), "processes");
        assert_int_equal(json_array_size(p), 2); /* registered on GPU 0: both PIDs there */
        json_decref(r);
        assert_int_equal(jobs_get(j, "pod:p1", &r), 0);
        p = json_object_get(gpu_of(r, 0), "processes");
        assert_int_equal(json_array_size(p), 1);
        assert_int_equal(json_integer_value(json_array_get(p, 0)), 100);
        json_decref(r);
        assert_int_equal(jobs_get(j, "pod:p2", &r), 0);
        assert_int_equal(json_array_size(json_object_get(gpu_of(r, 0), "processes")),
                         JOBS_MAX_PIDS);
        assert_int_equal((int)num(gpu_of(r, 0), "processes_not_listed"), 4);
        json_decref(r);
        jobs_free(j);
}

/* A Slurm job the prolog registered ("slurm-ID") is not recorded a second time as the automatic
 * "slurm:ID"; its processes go to the registered job. */
static void test_slurm_registered_once(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 2, 60 * S, 0);
        json_t *r = NULL;

        (void)state;
        assert_int_equal(jobs_start(j, "slurm-77", 0x3, err, sizeof(err)), 0);
        assert_int_equal(jobs_observe(j, 1, "slurm", "77", clock_now), 0);
        jobs_process_seen(j, 1, 4321, "slurm", "77");
        assert_int_equal(jobs_get(j, "slurm:77", &r), -ENOENT);
        assert_int_equal(jobs_get(j, "slurm-77", &r), 0);
        assert_int_equal(
            json_integer_value(json_array_get(json_object_get(gpu_of(r, 1), "processes"), 0)),
            4321);
        json_decref(r);
        /* another Slurm job, not registered: automatic */
        assert_int_equal(jobs_observe(j, 0, "slurm", "78", clock_now), 0);
        assert_int_equal(jobs_get(j, "slurm:78", &r), 0);
        json_decref(r);
        jobs_free(j);
}

static void test_bad_input(void **state)
{
        char err[256];
        jobs *j = mk(NULL, 2, 60 * S, 0);

        (void)state;
        assert_int_equal(jobs_start(j, "", 0, err, sizeof(err)), -EINVAL);
        assert_int_equal(jobs_start(j, "a:b", 0, err, sizeof(err)), -EINVAL);
        assert_int_equal(jobs_start(j, "-x", 0, err, sizeof(err)), -EINVAL);
        assert_int_equal(jobs_start(j, "ok", 0x4, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "no GPU 2"));
        assert_int_equal(jobs_start(j, "ok", 0x2, err, sizeof(err)), 0);
        assert_int_equal(jobs_start(j, "ok", 0x2, err, sizeof(err)), -EEXIST);
        assert_int_equal(jobs_stop(j, "nope", err, sizeof(err)), -ENOENT);
        assert_int_equal(jobs_stop(j, "ok", err, sizeof(err)), 0);
        assert_int_equal(jobs_stop(j, "ok", err, sizeof(err)), -EEXIST);
        assert_int_equal(jobs_start(j, "ok", 0, err, sizeof(err)), -EEXIST);
        jobs_filter f = {.gpu = -1, .state = "bogus"};
        json_t *l = NULL;
        assert_int_equal(jobs_list(j, &f, &l), -EINVAL);
        f.state = NULL;
        f.kind = "registered";
        assert_int_equal(jobs_list(j, &f, &l), 0);
        assert_int_equal(json_array_size(json_object_get(l, "jobs")), 1);
        json_decref(l);
        jobs_free(j);
}

static store *open_store(const char *dir)
{
        char path[4200], err[512];
        store *st = NULL;
        store_options so = {.path = path};

        snprintf(path, sizeof(path), "%s/vigil.db", dir);
        assert_int_equal(store_open(&so, &st, NULL, err, sizeof(err)), 0);
        return st;
}

static void test_restart_gap_and_retention(void **state)
{
        char dir[TEST_TMPDIR_LEN], err[256];
        store *st;
        jobs *j;
        json_t *r = NULL, *g, *gaps, *l = NULL;
        jobs_obs o;
        int64_t t = clock_now;
        jobs_filter f = {.gpu = -1};

        (void)state;
        assert_int_equal(test_tmpdir_new("test-jobs", dir, sizeof(dir)), 0);
        st = open_store(dir);
        j = mk(st, 1, 60 * S, 3600 * S);
        assert_int_equal(jobs_start(j, "long", 0, err, sizeof(err)), 0);
        assert_int_equal(jobs_start(j, "short", 0, err, sizeof(err)), 0);
        o = obs(t + 1 * S, 10000, 50, 40);
        jobs_feed(j, 0, &o, t + 1 * S);
        clock_now = t + 2 * S;
        assert_int_equal(jobs_stop(j, "short", err, sizeof(err)), 0);
        clock_now = t + 5 * S;
        jobs_free(j); /* vigild stops at t+5s: the running job is written */
        st = store_close(st);

        clock_now = t + 100 * S; /* and comes back 95 s later */
        st = open_store(dir);
        j = mk(st, 1, 60 * S, 3600 * S);
        assert_int_equal(jobs_get(j, "long", &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "running");
        json_decref(r);
        o = obs(t + 101 * S, 60000, 70, 40); /* the counter went on while vigild was away */
        jobs_feed(j, 0, &o, t + 101 * S);
        clock_now = t + 102 * S;
        assert_int_equal(jobs_stop(j, "long", err, sizeof(err)), 0);
        assert_int_equal(jobs_get(j, "long", &r), 0);
        g = gpu_of(r, 0);
        gaps = json_object_get(g, "gaps");
        assert_int_equal(json_array_size(gaps), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(gaps, 0), "reason")),
                            "vigild_not_running");
        assert_int_equal((int64_t)num(json_array_get(gaps, 0), "start_us"), t + 5 * S);
        assert_int_equal((int64_t)num(json_array_get(gaps, 0), "end_us"), t + 101 * S);
        /* energy is the counter's difference, gap included; averages only what was seen */
        assert_int_equal((int64_t)num(g, "energy.used_mj"), 50000);
        assert_true(num(g, "sm_utilization_pct.avg") == 60.0);
        json_decref(r);
        assert_int_equal(jobs_list(j, &f, &l), 0);
        assert_int_equal(json_array_size(json_object_get(l, "jobs")), 2);
        json_decref(l);

        /* retention: "short" ended at t+2s, "long" at t+100s; an hour after t+2s only one stays */
        jobs_tick(j, t + 2 * S + 3600 * S + 1, true);
        assert_int_equal(jobs_get(j, "short", &r), -ENOENT);
        assert_int_equal(jobs_get(j, "long", &r), 0);
        json_decref(r);
        assert_int_equal(jobs_list(j, &f, &l), 0);
        assert_int_equal(json_array_size(json_object_get(l, "jobs")), 1);
        json_decref(l);
        jobs_free(j);
        store_close(st);
        test_tmpdir_remove(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_aggregation),
            cmocka_unit_test(test_energy_counter_reset),
            cmocka_unit_test(test_gap_lost_gpu),
            cmocka_unit_test(test_xids),
            cmocka_unit_test(test_automatic_grace),
            cmocka_unit_test(test_processes),
            cmocka_unit_test(test_slurm_registered_once),
            cmocka_unit_test(test_bad_input),
            cmocka_unit_test(test_restart_gap_and_retention),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
