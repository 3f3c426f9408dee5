/* test_anomaly.c — the anomaly detectors on synthetic sweeps: a +15 C step opens a baseline and a
 * peer anomaly (and closes when it goes away), a GPU 12 C hotter than its peers at the same
 * utilization opens a peer anomaly only, noisy and steady GPUs open nothing, a hot GPU at a
 * different utilization is not compared, and baselines survive a save/load. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/vtime.h"
#include "fields/fields.h"
#include "health/anomaly.h"

#define NG 8

static const uint16_t fields[] = {FLD_GPU_TEMP, FLD_POWER_USAGE};

typedef struct counts {
        int opened[2], closed[2]; /* by kind */
        unsigned last_gpu;
        uint16_t last_field;
} counts;

static void listener(void *ud, const anomaly_event *ev)
{
        counts *c = ud;

        if (ev->open)
                c->opened[ev->kind]++;
        else
                c->closed[ev->kind]++;
        c->last_gpu = ev->gpu;
        c->last_field = ev->field_id;
}

/* Deterministic noise, roughly normal (sum of uniforms), stddev sd. */
static double noise(unsigned *seed, double sd)
{
        double s = 0;

        for (int i = 0; i < 12; i++)
                s += (double)rand_r(seed) / RAND_MAX;
        return (s - 6.0) * sd;
}

static anomaly *make(const char *state, counts *c)
{
        anomaly_options o = {
            .enabled = true,
            .k = 4,
            .sustain_us = 5 * USEC_PER_SEC,
            .window_us = 300 * USEC_PER_SEC,
            .min_samples = 50,
            .peer_enabled = true,
            .peer_k = 5,
            .peer_min_gpus = 4,
            .peer_band = 20,
            .fields = fields,
            .n_fields = 2,
            .state_path = state,
            .persist_us = USEC_PER_SEC,
        };
        anomaly *a = NULL;

        assert_int_equal(anomaly_new(&o, &a), 0);
        if (c)
                anomaly_set_listener(a, listener, c);
        return a;
}

static const char *uuid_of(unsigned g)
{
        static char u[NG][40];

        snprintf(u[g], sizeof(u[g]), "GPU-test-%u", g);
        return u[g];
}

/* One sweep at second t; temp[g] and util[g] given, power follows util with noise. */
static void sweep(anomaly *a, int64_t t, const double *temp, const double *util, unsigned *seed,
                  double sd)
{
        anomaly_sample s[NG];

        for (unsigned g = 0; g < NG; g++) {
                s[g] = (anomaly_sample){.up = true, .uuid = uuid_of(g), .util = util[g]};
                s[g].v[0] = temp[g] + noise(seed, sd);
                s[g].v[1] = 100 + 5 * util[g] + noise(seed, sd * 5);
        }
        anomaly_update(a, s, NG, t * USEC_PER_SEC);
}

static void test_step_opens_and_closes(void **state)
{
        counts c = {0};
        anomaly *a = make(NULL, &c);
        double temp[NG], util[NG];
        unsigned seed = 1;
        anomaly_state st[64];
        size_t n;
        bool found = false;

        (void)state;
        for (unsigned g = 0; g < NG; g++) {
                temp[g] = 50;
                util[g] = 60;
        }
        for (int t = 0; t < 120; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(c.opened[ANOMALY_BASELINE] + c.opened[ANOMALY_PEER], 0);
        temp[2] = 65; /* +15 C */
        for (int t = 120; t < 124; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(c.opened[ANOMALY_BASELINE], 0); /* not sustained yet */
        for (int t = 124; t < 130; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(c.opened[ANOMALY_BASELINE], 1);
        assert_int_equal(c.opened[ANOMALY_PEER], 1);
        assert_int_equal(c.last_gpu, 2);
        assert_int_equal(c.last_field, FLD_GPU_TEMP);
        assert_int_equal(anomaly_active_count(a), 2);
        n = anomaly_states(a, st, 64);
        for (size_t i = 0; i < n; i++)
                if (st[i].active) {
                        assert_int_equal(st[i].gpu, 2);
                        assert_string_equal(st[i].uuid, "GPU-test-2");
                        assert_string_equal(st[i].field, "GPU_TEMP");
                        assert_true(st[i].score > 4);
                        found = true;
                }
        assert_true(found);
        temp[2] = 50;
        for (int t = 130; t < 140; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(c.closed[ANOMALY_BASELINE], 1);
        assert_int_equal(c.closed[ANOMALY_PEER], 1);
        assert_int_equal(anomaly_active_count(a), 0);
        anomaly_free(a);
}

static void test_hot_peer(void **state)
{
        counts c = {0};
        anomaly *a = make(NULL, &c);
        double temp[NG], util[NG];
        unsigned seed = 2;

        (void)state;
        for (unsigned g = 0; g < NG; g++) {
                temp[g] = 55;
                util[g] = 80;
        }
        temp[5] = 67; /* 12 C hotter from the start: its own baseline finds it normal */
        for (int t = 0; t < 60; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(c.opened[ANOMALY_BASELINE], 0);
        assert_int_equal(c.opened[ANOMALY_PEER], 1);
        assert_int_equal(c.last_gpu, 5);
        anomaly_free(a);
}

static void test_hot_at_other_utilization_is_not_compared(void **state)
{
        counts c = {0};
        anomaly *a = make(NULL, &c);
        double temp[NG], util[NG];
        unsigned seed = 3;

        (void)state;
        for (unsigned g = 0; g < NG; g++) {
                temp[g] = 40;
                util[g] = 10;
        }
        temp[5] = 70; /* busy, so hot */
        util[5] = 95;
        for (int t = 0; t < 60; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(c.opened[ANOMALY_PEER], 0);
        assert_int_equal(c.opened[ANOMALY_BASELINE], 0);
        anomaly_free(a);
}

static void test_noise_and_steady_stay_quiet(void **state)
{
        counts c = {0};
        anomaly *a = make(NULL, &c);
        double temp[NG], util[NG];
        unsigned seed = 4;

        (void)state;
        for (unsigned g = 0; g < NG; g++) {
                temp[g] = 45 + g % 3; /* small spread between healthy GPUs */
                util[g] = 50;
        }
        for (int t = 0; t < 1500; t++)
                sweep(a, t, temp, util, &seed, 2.0);
        for (int t = 1500; t < 1800; t++)
                sweep(a, t, temp, util, &seed, 0.0); /* steady */
        assert_int_equal(c.opened[ANOMALY_BASELINE], 0);
        assert_int_equal(c.opened[ANOMALY_PEER], 0);
        anomaly_free(a);
}

static void test_persistence(void **state)
{
        char dir[] = "/tmp/vigil-test-anomaly-XXXXXX", path[128];
        anomaly_state st[64];
        double temp[NG], util[NG];
        unsigned seed = 5;
        anomaly *a;
        size_t n;
        counts c = {0};

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/baselines.json", dir);
        a = make(path, NULL);
        assert_int_equal(anomaly_load(a), -ENOENT);
        for (unsigned g = 0; g < NG; g++) {
                temp[g] = 50;
                util[g] = 60;
        }
        for (int t = 0; t < 100; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        assert_int_equal(anomaly_save(a), 0);
        anomaly_free(a);

        /* a restart: the baseline is judged at once, so a step fires after `sustain` only */
        a = make(path, &c);
        assert_int_equal(anomaly_load(a), 0);
        temp[1] = 66;
        for (int t = 1000; t < 1007; t++)
                sweep(a, t, temp, util, &seed, 1.0);
        n = anomaly_states(a, st, 64);
        assert_true(n > 0);
        assert_true(st[0].samples > 100);
        assert_true(fabs(st[0].expected - 50) < 2);
        assert_int_equal(c.opened[ANOMALY_BASELINE], 1);
        anomaly_free(a);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_step_opens_and_closes),
            cmocka_unit_test(test_hot_peer),
            cmocka_unit_test(test_hot_at_other_utilization_is_not_compared),
            cmocka_unit_test(test_noise_and_steady_stay_quiet),
            cmocka_unit_test(test_persistence),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
