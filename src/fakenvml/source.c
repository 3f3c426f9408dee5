/* source.c — value sources of the fake NVML: constant, ramp, noise, step and rate, each a pure
 * function of scenario time (so any thread may evaluate one without a lock), and the CSV trace
 * that a GPU replays in a loop. It does not know about NVML units or handles. */
#include "fakenvml/fake-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "fields/fields.h"

/* Trace columns by CSV header name, with the field each feeds and the factor from the CSV's unit
 * to the field's DCGM unit. Append a line to replay one more column. */
static const struct {
        const char *name; /* CSV header */
        unsigned field;   /* FLD_* */
        double scale;     /* CSV unit -> DCGM unit */
} trace_cols[TC_COUNT] = {
    [TC_TEMP] = {"temp_c", FLD_GPU_TEMP, 1},
    [TC_POWER] = {"power_mw", FLD_POWER_USAGE, 1e-3},
    [TC_PINST] = {"pinst_mw", FLD_POWER_USAGE_INSTANT, 1e-3},
    [TC_ENERGY] = {"energy_mj", FLD_TOTAL_ENERGY_CONSUMPTION, 1},
    [TC_MEMTEMP] = {"memtemp_c", FLD_MEMORY_TEMP, 1},
    [TC_UTIL_GPU] = {"util_gpu", FLD_GPU_UTIL, 1},
    [TC_UTIL_MEM] = {"util_mem", FLD_MEM_COPY_UTIL, 1},
    [TC_MEM_USED] = {"mem_used_b", FLD_FB_USED, 1.0 / 1048576.0},
    [TC_SM_MHZ] = {"sm_mhz", FLD_SM_CLOCK, 1},
    [TC_MEM_MHZ] = {"mem_mhz", FLD_MEM_CLOCK, 1},
    [TC_REASONS] = {"reasons", FLD_CLOCKS_EVENT_REASONS, 1},
};

#define TRACE_COLS_MAX 64 /* columns in one CSV line */

unsigned fake_trace_col_field(enum fake_trace_col c)
{
        return (unsigned)c < TC_COUNT ? trace_cols[c].field : 0;
}

struct fake_trace *fake_trace_free(struct fake_trace *t)
{
        if (!t)
                return NULL;
        free(t->t_us);
        for (int c = 0; c < TC_COUNT; c++)
                free(t->col[c]);
        free(t);
        return NULL;
}

static void trace_freep(struct fake_trace **t)
{
        fake_trace_free(*t);
}

/* Split one line in place at commas; returns the number of cells or -E2BIG. */
static int split_csv(char *line, char **cells)
{
        int n = 0;

        for (char *p = line;; p++) {
                if (n >= TRACE_COLS_MAX)
                        return -E2BIG;
                cells[n++] = p;
                p = strchr(p, ',');
                if (!p)
                        break;
                *p = '\0';
        }
        return n;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

int fake_trace_parse(const char *data, size_t len, const char *name, struct fake_trace **ret,
                     char *err, size_t errlen)
{
        _cleanup_(trace_freep) struct fake_trace *t = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ int64_t *gaps = NULL;
        int map[TRACE_COLS_MAX]; /* CSV column -> enum fake_trace_col, -1 ignored, -2 t_us */
        int ncols = 0, has_t = 0;
        size_t cap = 0, lineno = 0;
        char *save = NULL, *line;

        if (len > FAKE_TRACE_MAX) {
                snprintf(err, errlen, "%s:1: trace larger than %d bytes", name, FAKE_TRACE_MAX);
                return -E2BIG;
        }
        text = malloc(len + 1);
        t = calloc(1, sizeof(*t));
        if (!text || !t)
                return -ENOMEM;
        memcpy(text, data, len);
        text[len] = '\0';
        if (strlen(text) != len) {
                snprintf(err, errlen, "%s:1: trace contains a NUL byte", name);
                return -EINVAL;
        }

        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *cells[TRACE_COLS_MAX];
                size_t l = strlen(line);
                int n;

                lineno++;
                if (l && line[l - 1] == '\r')
                        line[l - 1] = '\0';
                if (!*line || *line == '#')
                        continue;
                n = split_csv(line, cells);
                if (n < 0) {
                        snprintf(err, errlen, "%s:%zu: more than %d columns", name, lineno,
                                 TRACE_COLS_MAX);
                        return -EINVAL;
                }
                if (!ncols) {
                        ncols = n;
                        for (int i = 0; i < n; i++) {
                                map[i] = -1;
                                if (strcmp(cells[i], "t_us") == 0) {
                                        map[i] = -2;
                                        has_t = 1;
                                }
                                for (int c = 0; c < TC_COUNT; c++)
                                        if (strcmp(cells[i], trace_cols[c].name) == 0)
                                                map[i] = c;
                        }
                        if (!has_t) {
                                snprintf(err, errlen, "%s:%zu: header lacks a 't_us' column", name,
                                         lineno);
                                return -EINVAL;
                        }
                        continue;
                }
                if (n != ncols) {
                        snprintf(err, errlen, "%s:%zu: %d columns, header has %d", name, lineno, n,
                                 ncols);
                        return -EINVAL;
                }
                if (t->rows >= FAKE_TRACE_ROWS_MAX) {
                        snprintf(err, errlen, "%s:%zu: more than %d rows", name, lineno,
                                 FAKE_TRACE_ROWS_MAX);
                        return -E2BIG;
                }
                if (t->rows == cap) {
                        size_t ncap = cap ? cap * 2 : 1024;
                        int64_t *nt = realloc(t->t_us, ncap * sizeof(*nt));

                        if (!nt)
                                return -ENOMEM;
                        t->t_us = nt;
                        for (int i = 0; i < n; i++) {
                                double *nc;

                                if (map[i] < 0)
                                        continue;
                                nc = realloc(t->col[map[i]], ncap * sizeof(*nc));
                                if (!nc)
                                        return -ENOMEM;
                                t->col[map[i]] = nc;
                        }
                        cap = ncap;
                }
                for (int i = 0; i < n; i++) {
                        char *end;
                        double v;

                        if (map[i] == -1)
                                continue;
                        errno = 0;
                        v = strtod(cells[i], &end);
                        if (end == cells[i] || *end || errno || !isfinite(v)) {
                                snprintf(err, errlen, "%s:%zu: column %d: '%.32s' is not a number",
                                         name, lineno, i + 1, cells[i]);
                                return -EINVAL;
                        }
                        if (map[i] == -2) {
                                if (fabs(v) > 9e18) {
                                        snprintf(err, errlen, "%s:%zu: t_us out of range", name,
                                                 lineno);
                                        return -ERANGE;
                                }
                                t->t_us[t->rows] = (int64_t)v;
                        } else {
                                t->col[map[i]][t->rows] = v * trace_cols[map[i]].scale;
                        }
                }
                if (t->rows && t->t_us[t->rows] <= t->t_us[t->rows - 1]) {
                        snprintf(err, errlen, "%s:%zu: t_us does not increase", name, lineno);
                        return -EINVAL;
                }
                t->rows++;
        }
        if (t->rows < 2) {
                snprintf(err, errlen, "%s:%zu: a trace needs at least two rows", name,
                         lineno ? lineno : 1);
                return -EINVAL;
        }
        /* Relative times; the loop closes one median period after the last row. */
        gaps = malloc((t->rows - 1) * sizeof(*gaps));
        if (!gaps)
                return -ENOMEM;
        for (size_t i = t->rows; i-- > 0;)
                t->t_us[i] -= t->t_us[0];
        for (size_t i = 1; i < t->rows; i++)
                gaps[i - 1] = t->t_us[i] - t->t_us[i - 1];
        qsort(gaps, t->rows - 1, sizeof(*gaps), cmp_i64);
        t->length_us = t->t_us[t->rows - 1] + gaps[(t->rows - 1) / 2];
        if (t->col[TC_ENERGY]) {
                double *e = t->col[TC_ENERGY];
                double last_step = e[t->rows - 1] - e[t->rows - 2];

                t->energy_per_loop = e[t->rows - 1] - e[0] + (last_step > 0 ? last_step : 0);
                if (t->energy_per_loop < 0)
                        t->energy_per_loop = 0;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

int fake_trace_load(const char *path, struct fake_trace **ret, char *err, size_t errlen)
{
        _cleanup_free_ char *data = NULL;
        size_t got = 0;
        int r = file_read_all(path, FAKE_TRACE_MAX, &data, &got);

        if (r == -EFBIG || r == -EISDIR) {
                snprintf(err, errlen, "%s:1: not a regular file of at most %d bytes", path,
                         FAKE_TRACE_MAX);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(err, errlen, "%s:1: cannot open trace: %s", path, strerror(-r));
                return r;
        }
        return fake_trace_parse(data, got, path, ret, err, errlen);
}

int fake_trace_builtin(struct fake_trace **ret, char *err, size_t errlen)
{
        return fake_trace_parse((const char *)fake_builtin_trace, fake_builtin_trace_len,
                                "builtin:h200-10hz-load.csv", ret, err, errlen);
}

double fake_trace_value(const struct fake_trace *t, enum fake_trace_col c, int64_t pos_us)
{
        int64_t loops, x;
        size_t lo = 0, hi;
        double v;

        if (!t->col[c])
                return 0;
        if (pos_us < 0)
                pos_us = 0;
        loops = pos_us / t->length_us;
        x = pos_us % t->length_us;
        /* Last row with t_us <= x (row 0 has t_us 0, so one exists). */
        hi = t->rows;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (t->t_us[mid] <= x)
                        lo = mid;
                else
                        hi = mid;
        }
        v = t->col[c][lo];
        if (c == TC_ENERGY)
                v += (double)loops * t->energy_per_loop;
        return v;
}

/* splitmix64: a good 64-bit mix, enough to make noise deterministic and uncorrelated. */
static uint64_t mix64(uint64_t x)
{
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
}

static double unit_uniform(uint64_t x)
{
        return ((double)(mix64(x) >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
}

double fake_source_eval(const struct fake_source *s, int64_t t_us, unsigned gpu, unsigned field)
{
        switch (s->kind) {
        case SRC_CONST:
                return s->v0;
        case SRC_RAMP:
                if (t_us >= s->t_us || s->t_us <= 0)
                        return s->v1;
                if (t_us <= 0)
                        return s->v0;
                return s->v0 + (s->v1 - s->v0) * ((double)t_us / (double)s->t_us);
        case SRC_NOISE: {
                int64_t period = s->t_us > 0 ? s->t_us : 100000;
                uint64_t slot = (uint64_t)(t_us < 0 ? 0 : t_us / period);
                uint64_t k = mix64(s->seed ^ mix64(((uint64_t)gpu << 32) | field)) ^ slot;
                double u1 = unit_uniform(k * 2), u2 = unit_uniform(k * 2 + 1);

                /* Box-Muller: one standard normal per period slot. */
                return s->v0 + s->v1 * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        }
        case SRC_STEP:
                return t_us < s->t_us ? s->v0 : s->v1;
        case SRC_RATE:
                return s->v0 + s->v1 * (double)(t_us < 0 ? 0 : t_us) / 1e6;
        case SRC_DEFAULT:
        default:
                return 0;
        }
}
