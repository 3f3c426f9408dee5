/* test_cache.c — groups, latest table, history and eviction: the H200 trace round-trips every
 * column exactly, edge values survive a group, eviction by samples and by age keeps what the
 * contract says, pushes never allocate, and writers and readers run concurrently (ASan build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "fields/fields.h"

/* Allocation counter: the test is linked with -Wl,--wrap=malloc,calloc,realloc. Only the
 * current thread counts, and only while counting is set. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static __thread bool counting;
static __thread unsigned long allocs;

void *__wrap_malloc(size_t n)
{
        if (counting)
                allocs++;
        return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
        if (counting)
                allocs++;
        return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
        if (counting)
                allocs++;
        return __real_realloc(p, n);
}

/* ---- the H200 trace ---------------------------------------------------------------------- */

enum {
        COL_T,
        COL_TEMP,
        COL_PWR,
        COL_PINST,
        COL_ENERGY,
        COL_MEMTEMP,
        COL_UTIL,
        COL_UTILMEM,
        COL_MEMUSED,
        COL_SM,
        COL_MEM,
        COL_REASONS,
        COL_TICK,
        N_COLS
};

typedef struct trace_row {
        int64_t t_us;      /* usec since epoch */
        int64_t i[N_COLS]; /* integer columns */
        double tick_us;    /* usec, one decimal */
} trace_row;

static trace_row *trace;
static size_t trace_n;

static void trace_load(void)
{
        const char *dir = getenv("VIGIL_SOURCE_DIR");
        char path[4096], line[1024];
        size_t cap = 0;
        FILE *f;

        if (trace)
                return;
        snprintf(path, sizeof(path), "%s/tests/data/h200-10hz-load.csv", dir ? dir : ".");
        f = fopen(path, "re");
        if (!f)
                fail_msg("cannot open '%s'", path);
        if (!fgets(line, sizeof(line), f))
                fail_msg("empty trace");
        while (fgets(line, sizeof(line), f)) {
                trace_row row = {0};
                char *p = line, *end;

                for (int c = 0; c < N_COLS - 1; c++) {
                        row.i[c] = strtoll(p, &end, 10);
                        assert_true(end != p && *end == ',');
                        p = end + 1;
                }
                row.t_us = row.i[COL_T];
                row.tick_us = strtod(p, &end);
                assert_true(end != p);
                if (trace_n == cap) {
                        cap = cap ? cap * 2 : 1024;
                        trace = realloc(trace, cap * sizeof(*trace));
                        assert_non_null(trace);
                }
                trace[trace_n++] = row;
        }
        fclose(f);
        assert_true(trace_n >= 900);
}

/* Column → field: power columns become watts (F64, mW / 1000.0, as the backend makes them);
 * the tick wall time rides on an F64 field with one decimal. */
static const uint16_t trace_fields[] = {
    FLD_GPU_TEMP,    FLD_POWER_USAGE, FLD_POWER_USAGE_INSTANT,  FLD_TOTAL_ENERGY_CONSUMPTION,
    FLD_MEMORY_TEMP, FLD_GPU_UTIL,    FLD_MEM_COPY_UTIL,        FLD_FB_USED,
    FLD_SM_CLOCK,    FLD_MEM_CLOCK,   FLD_CLOCKS_EVENT_REASONS, FLD_POWER_LIMIT,
};
#define TRACE_NF (sizeof(trace_fields) / sizeof(trace_fields[0]))

static void trace_values(const trace_row *r, field_value *v)
{
        memset(v, 0, TRACE_NF * sizeof(*v));
        v[0].i = r->i[COL_TEMP];
        v[1].d = (double)r->i[COL_PWR] / 1000.0;
        v[2].d = (double)r->i[COL_PINST] / 1000.0;
        v[3].i = r->i[COL_ENERGY];
        v[4].i = r->i[COL_MEMTEMP];
        v[5].i = r->i[COL_UTIL];
        v[6].i = r->i[COL_UTILMEM];
        v[7].i = r->i[COL_MEMUSED];
        v[8].i = r->i[COL_SM];
        v[9].i = r->i[COL_MEM];
        v[10].i = r->i[COL_REASONS];
        v[11].d = r->tick_us;
}

static bool fv_equal(const field_meta *f, const field_value *a, const field_value *b)
{
        if (a->status != b->status)
                return false;
        if (a->status != 0)
                return true;
        if (f->type == FT_F64)
                return memcmp(&a->d, &b->d, sizeof(double)) == 0;
        return a->i == b->i;
}

static void test_trace_roundtrip(void **state)
{
        cache *c = NULL;
        cache_point *pts;
        field_value v[TRACE_NF];
        cache_group_info gi;
        size_t n;
        int g;

        (void)state;
        trace_load();
        assert_int_equal(cache_new(8, &c), 0);
        g = cache_group_add(c, 3, trace_fields, TRACE_NF, (uint32_t)trace_n, 0);
        assert_true(g >= 0);
        for (size_t i = 0; i < trace_n; i++) {
                trace_values(&trace[i], v);
                assert_int_equal(cache_group_push(c, g, trace[i].t_us, v), 0);
        }
        pts = calloc(trace_n + 10, sizeof(*pts));
        assert_non_null(pts);
        for (size_t f = 0; f < TRACE_NF; f++) {
                const field_meta *m = field_by_id(trace_fields[f]);

                assert_int_equal(
                    cache_history(c, 3, trace_fields[f], INT64_MIN, pts, trace_n + 10, &n), 0);
                assert_int_equal(n, trace_n);
                for (size_t i = 0; i < n; i++) {
                        trace_values(&trace[i], v);
                        assert_int_equal(pts[i].ts_us, trace[i].t_us);
                        if (!fv_equal(m, &pts[i].v, &v[f]))
                                fail_msg("field %s row %zu differs", m->sym, i);
                }
        }
        assert_int_equal(cache_group_info_get(c, g, &gi), 0);
        print_message("trace 10 Hz: %zu rows x %zu fields: %llu bytes = %.3f bytes/value\n",
                      trace_n, TRACE_NF, (unsigned long long)gi.bytes_used,
                      (double)gi.bytes_used / (double)(trace_n * TRACE_NF));
        assert_int_equal(gi.early_evictions, 0);
        free(pts);
        cache_free(c);
}

static void test_args_and_errors(void **state)
{
        static const uint16_t f1[] = {FLD_GPU_TEMP, FLD_POWER_USAGE};
        static const uint16_t dup[] = {FLD_SM_CLOCK, FLD_SM_CLOCK};
        static const uint16_t str[] = {FLD_UUID};
        static const uint16_t unknown[] = {12345};
        static const uint16_t clash[] = {FLD_SM_CLOCK, FLD_GPU_TEMP};
        cache *c = NULL;
        field_value v[2] = {0}, out;
        int64_t ts = 99;
        int g;

        (void)state;
        assert_int_equal(cache_new(0, &c), -EINVAL);
        assert_null(cache_free(NULL));
        assert_int_equal(cache_new(2, &c), 0);
        assert_int_equal(cache_group_add(c, 2, f1, 2, 10, 0), -EINVAL);
        assert_int_equal(cache_group_add(c, 0, f1, 0, 10, 0), -EINVAL);
        assert_int_equal(cache_group_add(c, 0, f1, 2, 0, 0), -EINVAL);
        assert_int_equal(cache_group_add(c, 0, f1, 2, 10, -1), -EINVAL);
        assert_int_equal(cache_group_add(c, 0, dup, 2, 10, 0), -EINVAL);
        assert_int_equal(cache_group_add(c, 0, str, 1, 10, 0), -EINVAL);
        assert_int_equal(cache_group_add(c, 0, unknown, 1, 10, 0), -EINVAL);
        g = cache_group_add(c, 0, f1, 2, 10, 0);
        assert_int_equal(g, 0);
        assert_int_equal(cache_group_add(c, 0, clash, 2, 10, 0), -EEXIST);
        assert_int_equal(cache_group_add(c, 1, clash, 2, 10, 0), 1); /* other GPU: fine */
        assert_int_equal(cache_group_count(c), 2);

        /* latest: not watched / no data yet */
        assert_int_equal(cache_latest(c, 0, FLD_SM_CLOCK, &out, NULL), -ENOENT);
        assert_int_equal(cache_latest(c, 5, FLD_GPU_TEMP, &out, NULL), -ENOENT);
        assert_int_equal(cache_latest(c, 0, 12345, &out, NULL), -ENOENT);
        assert_int_equal(cache_latest(c, 0, FLD_GPU_TEMP, &out, &ts), 0);
        assert_int_equal(out.status, -ENODATA);
        assert_int_equal(ts, 0);
        size_t n = 7;
        cache_point p[4];
        assert_int_equal(cache_history(c, 0, FLD_SM_CLOCK, 0, p, 4, &n), -ENOENT);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 0, p, 4, &n), 0);
        assert_int_equal(n, 0);

        /* pushes: bad group; equal ts accepted; ts backwards clamped (test_clock_step_back) */
        assert_int_equal(cache_group_push(c, 2, 1, v), -EINVAL);
        assert_int_equal(cache_group_push(c, -1, 1, v), -EINVAL);
        v[0].i = 40;
        v[1].d = 100.5;
        assert_int_equal(cache_group_push(c, g, 1000, v), 0);
        v[0].i = 41;
        assert_int_equal(cache_group_push(c, g, 1000, v), 0);
        assert_int_equal(cache_latest(c, 0, FLD_GPU_TEMP, &out, &ts), 0);
        assert_int_equal(out.status, 0);
        assert_int_equal(out.i, 41);
        assert_int_equal(ts, 1000);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 0, p, 4, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(p[0].v.i, 40);
        assert_int_equal(p[1].v.i, 41);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 0, p, 0, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 0, NULL, 4, &n), -EINVAL);
        cache_free(c);
}

/* The wall clock steps back by an hour between two sweeps (NTP, an operator): every later
 * sample is older than the newest one held. They used to be refused (-EINVAL, ignored by the
 * sampler), so the readings froze at the last value before the step while the GPU looked up. Now
 * each is stored at the newest timestamp, the latest table moves on, the series stays ordered,
 * and the clamp is counted; it ends once the clock passes the old newest timestamp. */
static void test_clock_step_back(void **state)
{
        static const uint16_t f[] = {FLD_GPU_TEMP, FLD_POWER_USAGE};
        const int64_t t0 = INT64_C(1767225600) * 1000000, hour = INT64_C(3600) * 1000000;
        field_value v[2] = {{.status = 0, .i = 50}, {.status = 0, .d = 300.0}};
        cache_group_info gi;
        cache_stats st;
        cache_point p[16];
        field_value out;
        size_t n;
        int64_t ts;
        cache *c = NULL;
        int g;

        (void)state;
        assert_int_equal(cache_new(1, &c), 0);
        g = cache_group_add(c, 0, f, 2, 64, 0);
        assert_true(g >= 0);
        for (int i = 0; i < 3; i++) {
                v[0].i = 50 + i;
                assert_int_equal(cache_group_push(c, g, t0 + i * 1000000, v), 0);
        }
        /* the step: 60, 61, 62 come with timestamps an hour before the newest */
        for (int i = 0; i < 3; i++) {
                v[0].i = 60 + i;
                assert_int_equal(cache_group_push(c, g, t0 - hour + i * 1000000, v),
                                 CACHE_PUSH_CLAMPED);
                assert_int_equal(cache_latest(c, 0, FLD_GPU_TEMP, &out, &ts), 0);
                assert_int_equal(out.i, 60 + i); /* not frozen at 52 */
                assert_int_equal(ts, t0 + 2000000);
        }
        assert_int_equal(cache_group_info_get(c, g, &gi), 0);
        assert_int_equal(gi.clamped_pushes, 3);
        cache_get_stats(c, &st);
        assert_int_equal(st.clamped_pushes, 3);
        /* the clock catches up: ordinary pushes again */
        v[0].i = 70;
        assert_int_equal(cache_group_push(c, g, t0 + 3000000, v), 0);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 0, p, 16, &n), 0);
        assert_int_equal(n, 7);
        for (size_t i = 1; i < n; i++)
                assert_true(p[i].ts_us >= p[i - 1].ts_us);
        assert_int_equal(p[3].v.i, 60);
        assert_int_equal(p[5].v.i, 62);
        assert_int_equal(p[5].ts_us, t0 + 2000000);
        assert_int_equal(p[6].v.i, 70);
        cache_free(c);
}

/* Edge values and statuses through a group, across many chunk boundaries. */
static void test_edge_values(void **state)
{
        static const uint16_t f[] = {FLD_SM_CLOCK, FLD_TOTAL_ENERGY_CONSUMPTION, FLD_POWER_USAGE,
                                     FLD_POWER_USAGE_INSTANT};
        enum { N = 5000 };
        static field_value want[N][4];
        static int64_t tss[N];
        static cache_point p[N];
        const double dv[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 87.958, 1e-300, -1.5};
        const int64_t iv[] = {INT64_MIN, INT64_MAX, 0, -1, 1, 1LL << 62, -(1LL << 62), 77};
        uint64_t nan_payload = UINT64_C(0x7ff4000000c0ffee);
        cache *c = NULL;
        uint64_t s = 12345;
        int64_t ts = -5000000; /* negative timestamps are legal too */
        size_t n;
        int g;

        (void)state;
        assert_int_equal(cache_new(1, &c), 0);
        g = cache_group_add(c, 0, f, 4, 4 * N, 0); /* room for incompressible rows */
        assert_true(g >= 0);
        for (size_t i = 0; i < N; i++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                for (size_t k = 0; k < 4; k++) {
                        field_value *v = &want[i][k];
                        unsigned r = (unsigned)(s >> (16 + 8 * k)) & 0xff;

                        v->status = (r % 17 == 0) ? -EOPNOTSUPP : (r % 23 == 0) ? -EIO : 0;
                        if (k < 2)
                                v->i = (r & 1) ? iv[r % 8] : (int64_t)(s >> 3);
                        else if (r % 9 == 0)
                                memcpy(&v->d, &nan_payload, sizeof(double));
                        else
                                v->d = (r & 1) ? dv[r % 8] : (double)(int64_t)(s >> 40) / 1e3;
                        if (v->status)
                                v->i = 0;
                }
                /* ts: equal, small and huge forward jumps */
                ts += (s >> 60) == 0 ? 0 : (s >> 60) == 1 ? (int64_t)1 << 40 : 1000000;
                tss[i] = ts;
                assert_int_equal(cache_group_push(c, g, ts, want[i]), 0);
        }
        for (size_t k = 0; k < 4; k++) {
                const field_meta *m = field_by_id(f[k]);
                field_value lv;
                int64_t lts;

                assert_int_equal(cache_history(c, 0, f[k], INT64_MIN, p, N, &n), 0);
                assert_int_equal(n, N);
                for (size_t i = 0; i < N; i++) {
                        assert_int_equal(p[i].ts_us, tss[i]);
                        if (!fv_equal(m, &p[i].v, &want[i][k]))
                                fail_msg("field %zu row %zu differs", k, i);
                        if (p[i].v.status)
                                assert_int_equal(p[i].v.i, 0);
                }
                assert_int_equal(cache_latest(c, 0, f[k], &lv, &lts), 0);
                assert_true(fv_equal(m, &lv, &want[N - 1][k]));
                assert_int_equal(lts, tss[N - 1]);
        }
        cache_free(c);
}

static void test_evict_by_samples(void **state)
{
        static const uint16_t f[] = {FLD_GPU_TEMP, FLD_POWER_USAGE};
        static cache_point p[2000];
        cache *c = NULL;
        cache_group_info gi;
        field_value v[2] = {0};
        size_t n;
        int g;

        (void)state;
        assert_int_equal(cache_new(1, &c), 0);
        g = cache_group_add(c, 0, f, 2, 100, 0);
        for (int i = 0; i < 1000; i++) {
                v[0].i = i;
                v[1].d = i * 0.5;
                assert_int_equal(cache_group_push(c, g, 1000000LL * i, v), 0);
                assert_int_equal(cache_group_info_get(c, g, &gi), 0);
                /* never fewer than max_samples (once pushed), at most one chunk more */
                assert_true(gi.samples >= (uint64_t)(i + 1 < 100 ? i + 1 : 100));
                assert_true(gi.samples <= 100 + gi.chunk_samples);
        }
        assert_int_equal(gi.early_evictions, 0);
        /* queries are exact: the newest max_samples */
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, INT64_MIN, p, 2000, &n), 0);
        assert_int_equal(n, 100);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(p[i].v.i, 900 + (int64_t)i);

        /* max_samples = 1 */
        static const uint16_t f1[] = {FLD_SM_CLOCK};
        g = cache_group_add(c, 0, f1, 1, 1, 0);
        assert_true(g >= 0);
        for (int i = 0; i < 10; i++) {
                v[0].i = i;
                assert_int_equal(cache_group_push(c, g, i, v), 0);
                assert_int_equal(cache_history(c, 0, FLD_SM_CLOCK, INT64_MIN, p, 10, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(p[0].v.i, i);
        }
        cache_free(c);
}

static void test_evict_by_age(void **state)
{
        static const uint16_t f[] = {FLD_GPU_TEMP};
        static cache_point p[5000];
        cache *c = NULL;
        cache_group_info gi;
        field_value v = {0};
        size_t n;
        int g;

        (void)state;
        assert_int_equal(cache_new(1, &c), 0);
        /* room for 3600 samples, but only 10 s kept at 1 Hz */
        g = cache_group_add(c, 0, f, 1, 3600, 10 * 1000000LL);
        for (int i = 0; i < 3000; i++) {
                v.i = i;
                assert_int_equal(cache_group_push(c, g, 1000000LL * i, &v), 0);
        }
        assert_int_equal(cache_group_info_get(c, g, &gi), 0);
        /* chunk granularity: the live chunks cover the last 10 s plus at most one chunk */
        assert_true(gi.samples >= 11);
        assert_true(gi.samples <= 11 + 2 * gi.chunk_samples);
        assert_true(gi.samples < 3000);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, INT64_MIN, p, 5000, &n), 0);
        assert_int_equal(n, 11); /* ts in [2989 s, 2999 s] */
        assert_int_equal(p[0].v.i, 2989);
        assert_int_equal(p[10].v.i, 2999);

        /* a jump past max_age drops every old chunk but keeps the newest sample */
        v.i = 99999;
        assert_int_equal(cache_group_push(c, g, 1000000LL * 100000, &v), 0);
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, INT64_MIN, p, 5000, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(p[0].v.i, 99999);
        assert_int_equal(cache_group_info_get(c, g, &gi), 0);
        assert_true(gi.chunks_used <= 2);
        cache_free(c);
}

static void test_history_since_max(void **state)
{
        static const uint16_t f[] = {FLD_GPU_TEMP, FLD_POWER_USAGE};
        static cache_point p[1000];
        cache *c = NULL;
        field_value v[2] = {0};
        size_t n;
        int g;

        (void)state;
        assert_int_equal(cache_new(1, &c), 0);
        g = cache_group_add(c, 0, f, 2, 1000, 0);
        for (int i = 0; i < 500; i++) { /* ts 0, 10, 20, ... with pairs of equal stamps */
                v[0].i = i;
                v[1].d = i / 4.0;
                assert_int_equal(cache_group_push(c, g, (i / 2) * 10, v), 0);
        }
        /* since in the middle */
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 2000, p, 1000, &n), 0);
        assert_int_equal(n, 100);
        assert_int_equal(p[0].v.i, 400);
        assert_int_equal(p[0].ts_us, 2000);
        assert_int_equal(p[99].v.i, 499);
        /* since between stamps */
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 2001, p, 1000, &n), 0);
        assert_int_equal(n, 98);
        /* max smaller than the count: the newest max, oldest first */
        for (size_t max = 1; max <= 130; max += 7) {
                assert_int_equal(cache_history(c, 0, FLD_POWER_USAGE, 0, p, max, &n), 0);
                assert_int_equal(n, max);
                for (size_t i = 0; i < n; i++)
                        assert_true(p[i].v.d == (double)(500 - max + i) / 4.0);
        }
        /* since after the newest */
        assert_int_equal(cache_history(c, 0, FLD_GPU_TEMP, 1000000, p, 1000, &n), 0);
        assert_int_equal(n, 0);
        cache_free(c);
}

static void test_push_does_not_allocate(void **state)
{
        static uint16_t f[40];
        field_value v[40] = {0};
        cache *c = NULL;
        cache_group_info gi;
        size_t nf = 0;
        int g;

        (void)state;
        for (size_t i = 0; i < field_count() && nf < 40; i++)
                if (field_at(i)->type != FT_STR)
                        f[nf++] = field_at(i)->id;
        assert_int_equal(cache_new(1, &c), 0);
        g = cache_group_add(c, 0, f, nf, 500, 60 * 1000000LL);
        assert_true(g >= 0);

        uint64_t s = 1;
        allocs = 0;
        counting = true;
        for (int i = 0; i < 20000; i++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                for (size_t k = 0; k < nf; k++) {
                        v[k].i = (i % 1000 < 500) ? (int64_t)(s >> (k % 32)) : i;
                        v[k].status = (s >> 50) % 97 == k ? -EIO : 0;
                }
                if (cache_group_push(c, g, 1000000LL * i, v) != 0)
                        break;
        }
        counting = false;
        assert_int_equal(allocs, 0);
        assert_int_equal(cache_group_info_get(c, g, &gi), 0);
        assert_true(gi.samples >= 60); /* 60 s at 1 Hz after rollovers and evictions */
        cache_free(c);
}

/* Random bits in many F64 fields overflow chunks by bytes before their sample cap: data must
 * still round-trip, and the shortfall below max_samples is reported. */
static void test_incompressible(void **state)
{
        static const uint16_t f[] = {FLD_POWER_USAGE, FLD_POWER_USAGE_INSTANT, FLD_POWER_LIMIT,
                                     FLD_ENFORCED_POWER_LIMIT, FLD_PROF_DRAM_ACTIVE};
        enum { N = 3000 };
        static cache_point p[N];
        static uint64_t bits[N][5];
        field_value v[5] = {0};
        cache *c = NULL;
        cache_group_info gi;
        uint64_t s = 7;
        size_t n;
        int g;

        (void)state;
        assert_int_equal(cache_new(1, &c), 0);
        g = cache_group_add(c, 0, f, 5, 1000, 0);
        for (size_t i = 0; i < N; i++) {
                for (size_t k = 0; k < 5; k++) {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        bits[i][k] = s;
                        memcpy(&v[k].d, &s, sizeof(double));
                }
                assert_int_equal(cache_group_push(c, g, (int64_t)i, v), 0);
        }
        assert_int_equal(cache_group_info_get(c, g, &gi), 0);
        assert_true(gi.early_evictions > 0);
        assert_true(gi.samples < 1000);
        assert_int_equal(cache_history(c, 0, FLD_ENFORCED_POWER_LIMIT, 0, p, N, &n), 0);
        assert_int_equal(n, gi.samples);
        for (size_t i = 0; i < n; i++) {
                size_t row = N - n + i;

                assert_int_equal(p[i].ts_us, (int64_t)row);
                assert_memory_equal(&p[i].v.d, &bits[row][3], sizeof(double));
        }
        cache_free(c);
}

static void test_memory_budget(void **state)
{
        static uint16_t f[45];
        cache *c = NULL;
        cache_stats st;
        size_t nf = 0;

        (void)state;
        for (size_t i = 0; i < field_count() && nf < 45; i++)
                if (field_at(i)->type != FT_STR)
                        f[nf++] = field_at(i)->id;
        assert_int_equal(nf, 45);
        assert_int_equal(cache_new(8, &c), 0);
        for (unsigned gpu = 0; gpu < 8; gpu++)
                assert_true(cache_group_add(c, gpu, f, nf, 3600, 3600 * 1000000LL) >= 0);
        cache_get_stats(c, &st);
        print_message("8 GPUs x 45 fields x 3600 samples: %llu bytes reserved\n",
                      (unsigned long long)st.bytes);
        assert_true(st.bytes < 8u << 20); /* well under 16 MiB */
        assert_int_equal(st.samples, 0);
        cache_free(c);
}

/* ---- concurrency ------------------------------------------------------------------------- */

enum { CONC_N = 100000 };
static cache *conc_cache;
static int conc_groups[2];
static volatile int conc_done;

static const uint16_t conc_fields[] = {FLD_GPU_TEMP, FLD_POWER_USAGE, FLD_TOTAL_ENERGY_CONSUMPTION};

/* Values are a function of the timestamp, so a reader can check any point it sees. */
static void conc_values(int64_t ts, field_value *v)
{
        v[0] = (field_value){.i = ts % 97};
        v[1] = (field_value){.d = (double)(ts % 500000) / 1000.0};
        v[2] = (field_value){.i = ts * 3};
}

static void *conc_writer(void *arg)
{
        int gi = (int)(intptr_t)arg;
        field_value v[3];

        for (int64_t i = 0; i < CONC_N; i++) {
                int64_t ts = 1000 * i + gi;

                conc_values(ts, v);
                if (cache_group_push(conc_cache, conc_groups[gi], ts, v) != 0)
                        return (void *)1;
        }
        return NULL;
}

static void *conc_reader(void *arg)
{
        static __thread cache_point p[300];
        unsigned gpu_pick = (unsigned)(intptr_t)arg;
        uintptr_t bad = 0;

        while (!__atomic_load_n(&conc_done, __ATOMIC_ACQUIRE)) {
                for (unsigned gpu = 0; gpu < 2; gpu++) {
                        field_value lv, want[3];
                        int64_t ts;
                        size_t n;

                        if (cache_latest(conc_cache, gpu ^ gpu_pick, FLD_POWER_USAGE, &lv, &ts) !=
                            0)
                                bad++;
                        if (lv.status == 0) {
                                conc_values(ts, want);
                                if (memcmp(&lv.d, &want[1].d, sizeof(double)) != 0)
                                        bad++;
                        }
                        if (cache_history(conc_cache, gpu, FLD_TOTAL_ENERGY_CONSUMPTION, INT64_MIN,
                                          p, 300, &n) != 0)
                                bad++;
                        for (size_t i = 0; i < n; i++) {
                                if (p[i].v.i != p[i].ts_us * 3)
                                        bad++;
                                if (i > 0 && p[i].ts_us != p[i - 1].ts_us + 1000)
                                        bad++;
                        }
                }
        }
        return (void *)bad;
}

static void test_concurrency(void **state)
{
        pthread_t w[2], r[2];
        void *res;

        (void)state;
        assert_int_equal(cache_new(2, &conc_cache), 0);
        conc_groups[0] = cache_group_add(conc_cache, 0, conc_fields, 3, 1000, 0);
        conc_groups[1] = cache_group_add(conc_cache, 1, conc_fields, 3, 1000, 0);
        conc_done = 0;
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&r[i], NULL, conc_reader, (void *)(intptr_t)i), 0);
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&w[i], NULL, conc_writer, (void *)(intptr_t)i), 0);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(pthread_join(w[i], &res), 0);
                assert_null(res);
        }
        __atomic_store_n(&conc_done, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(pthread_join(r[i], &res), 0);
                assert_int_equal((uintptr_t)res, 0);
        }
        for (unsigned gpu = 0; gpu < 2; gpu++) {
                field_value lv;
                int64_t ts;

                assert_int_equal(cache_latest(conc_cache, gpu, FLD_GPU_TEMP, &lv, &ts), 0);
                assert_int_equal(ts, 1000 * (CONC_N - 1) + gpu);
        }
        conc_cache = cache_free(conc_cache);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_args_and_errors),   cmocka_unit_test(test_clock_step_back),
            cmocka_unit_test(test_trace_roundtrip),   cmocka_unit_test(test_edge_values),
            cmocka_unit_test(test_evict_by_samples),  cmocka_unit_test(test_evict_by_age),
            cmocka_unit_test(test_history_since_max), cmocka_unit_test(test_push_does_not_allocate),
            cmocka_unit_test(test_incompressible),    cmocka_unit_test(test_memory_budget),
            cmocka_unit_test(test_concurrency),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);

        free(trace);
        return r;
}
