/* bench_cache.c — compression and push cost of the cache on the recorded H200 trace.
 *
 * The trace (tests/data/h200-10hz-load.csv, 92 s at 10 Hz) is taken every 10th row for 1 Hz,
 * replayed in a loop to one hour, for 8 GPUs each starting at a different row. Each GPU has one
 * group of the 11 GPU columns as catalog fields (power as W = mW / 1000.0, memory in MiB, as the
 * backend reports them). Prints bytes per value (timestamps included), reserved bytes, and the
 * median ns per push over several runs; then the same at 10 Hz over one pass of the trace, the
 * reservation of 8 GPUs x 45 fields x 3600 samples, and the cost of a 3600-point history query.
 * Usage: bench_cache [trace.csv] */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "fields/fields.h"

#define NGPU  8
#define NF    11
#define RUNS  7
#define HOURS 3600

typedef struct row {
        int64_t t_us;  /* usec since epoch */
        int64_t c[12]; /* integer columns after t_us */
} row;

static const uint16_t fields[NF] = {
    FLD_GPU_TEMP,    FLD_POWER_USAGE, FLD_POWER_USAGE_INSTANT,  FLD_TOTAL_ENERGY_CONSUMPTION,
    FLD_MEMORY_TEMP, FLD_GPU_UTIL,    FLD_MEM_COPY_UTIL,        FLD_FB_USED,
    FLD_SM_CLOCK,    FLD_MEM_CLOCK,   FLD_CLOCKS_EVENT_REASONS,
};

static row *rows;
static size_t nrows;

static int load(const char *path)
{
        char line[1024];
        size_t cap = 0;
        FILE *f = fopen(path, "re");

        if (!f)
                return -errno;
        if (!fgets(line, sizeof(line), f)) {
                fclose(f);
                return -EINVAL;
        }
        while (fgets(line, sizeof(line), f)) {
                row r = {0};
                char *p = line, *end;

                r.t_us = strtoll(p, &end, 10);
                for (int i = 0; i < 11 && *end == ','; i++) {
                        p = end + 1;
                        r.c[i] = strtoll(p, &end, 10);
                }
                if (nrows == cap) {
                        cap = cap ? cap * 2 : 1024;
                        rows = realloc(rows, cap * sizeof(*rows));
                        if (!rows)
                                abort();
                }
                rows[nrows++] = r;
        }
        fclose(f);
        return nrows > 0 ? 0 : -EINVAL;
}

static void values(const row *r, field_value *v)
{
        memset(v, 0, NF * sizeof(*v));
        v[0].i = r->c[0];
        v[1].d = (double)r->c[1] / 1000.0;
        v[2].d = (double)r->c[2] / 1000.0;
        v[3].i = r->c[3];
        v[4].i = r->c[4];
        v[5].i = r->c[5];
        v[6].i = r->c[6];
        v[7].i = r->c[7] >> 20;
        v[8].i = r->c[8];
        v[9].i = r->c[9];
        v[10].i = r->c[10];
}

static int64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

/* One run: stride 10 = 1 Hz, nsamples sweeps per GPU. Returns ns per push; fills stats. */
static double run(size_t stride, size_t nsamples, cache_stats *st, cache **keep)
{
        size_t nsub = nrows / stride;
        int64_t span = rows[(nsub - 1) * stride].t_us - rows[0].t_us + 1000000 / (10 / stride);
        cache *c = NULL;
        int g[NGPU];
        field_value v[NF];
        int64_t t0, ns = 0;

        if (cache_new(NGPU, &c) < 0)
                abort();
        for (int gpu = 0; gpu < NGPU; gpu++) {
                g[gpu] = cache_group_add(c, (unsigned)gpu, fields, NF, (uint32_t)nsamples, 0);
                if (g[gpu] < 0)
                        abort();
        }
        for (size_t k = 0; k < nsamples; k++) {
                t0 = now_ns();
                for (int gpu = 0; gpu < NGPU; gpu++) {
                        size_t idx = k + (size_t)gpu * 11;
                        const row *r = &rows[(idx % nsub) * stride];
                        int64_t ts = r->t_us + (int64_t)(idx / nsub) * span;

                        values(r, v);
                        if (cache_group_push(c, g[gpu], ts, v) < 0)
                                abort();
                }
                ns += now_ns() - t0;
        }
        cache_get_stats(c, st);
        if (keep)
                *keep = c;
        else
                cache_free(c);
        return (double)ns / (double)(nsamples * NGPU);
}

static void report(const char *what, size_t stride, size_t nsamples)
{
        double ns[RUNS];
        cache_stats st;
        cache *c = NULL;
        cache_point *pts;
        double hq[RUNS];
        size_t n;

        for (int i = 0; i < RUNS; i++)
                ns[i] = run(stride, nsamples, &st, i == RUNS - 1 ? &c : NULL);
        qsort(ns, RUNS, sizeof(ns[0]), cmp_dbl);
        printf("%s: %d GPUs x %d fields x %zu samples\n", what, NGPU, NF, nsamples);
        printf("  values held        %llu\n", (unsigned long long)st.samples);
        printf(
            "  compressed bytes   %llu (%.3f bytes/value, %.2f bits/value, timestamps included)\n",
            (unsigned long long)st.bytes_used, (double)st.bytes_used / (double)st.samples,
            8.0 * (double)st.bytes_used / (double)st.samples);
        printf("  reserved bytes     %llu (%.1f KiB)\n", (unsigned long long)st.bytes,
               (double)st.bytes / 1024.0);
        printf("  push (%d fields)   median %.1f ns  (min %.1f, max %.1f; %.1f ns/value)\n", NF,
               ns[RUNS / 2], ns[0], ns[RUNS - 1], ns[RUNS / 2] / NF);

        pts = malloc(nsamples * sizeof(*pts));
        if (!pts)
                abort();
        for (int i = 0; i < RUNS; i++) {
                int64_t t0 = now_ns();

                if (cache_history(c, 0, FLD_POWER_USAGE, INT64_MIN, pts, nsamples, &n) < 0)
                        abort();
                hq[i] = (double)(now_ns() - t0);
        }
        qsort(hq, RUNS, sizeof(hq[0]), cmp_dbl);
        printf("  history %zu points  median %.1f us\n", n, hq[RUNS / 2] / 1000.0);
        for (int i = 0; i < RUNS; i++) {
                field_value lv;
                int64_t t0 = now_ns();

                for (int j = 0; j < 1000; j++)
                        cache_latest(c, (unsigned)(j & 7), FLD_GPU_TEMP, &lv, NULL);
                hq[i] = (double)(now_ns() - t0) / 1000.0;
        }
        qsort(hq, RUNS, sizeof(hq[0]), cmp_dbl);
        printf("  latest             median %.1f ns\n", hq[RUNS / 2]);
        free(pts);
        cache_free(c);
}

int main(int argc, char **argv)
{
        const char *path = argc > 1 ? argv[1] : "tests/data/h200-10hz-load.csv";
        uint16_t f45[45];
        size_t nf45 = 0;
        cache_stats st;
        cache *c = NULL;
        int r = load(path);

        if (r < 0) {
                fprintf(stderr, "failed to load trace '%s': %s\n", path, strerror(-r));
                return 1;
        }
        printf("trace '%s': %zu rows\n", path, nrows);
        report("1 Hz, one hour", 10, HOURS);
        report("10 Hz, one pass", 1, nrows);

        for (size_t i = 0; i < field_count() && nf45 < 45; i++)
                if (field_at(i)->type != FT_STR)
                        f45[nf45++] = field_at(i)->id;
        if (cache_new(NGPU, &c) < 0)
                return 1;
        for (unsigned gpu = 0; gpu < NGPU; gpu++)
                if (cache_group_add(c, gpu, f45, nf45, 3600, 0) < 0)
                        return 1;
        cache_get_stats(c, &st);
        printf("reservation: %d GPUs x %zu fields x 3600 samples = %llu bytes (%.2f MiB)\n", NGPU,
               nf45, (unsigned long long)st.bytes, (double)st.bytes / (1024.0 * 1024.0));
        cache_free(c);
        free(rows);
        return 0;
}
