/* jobs_core.c — the job record (jobs-internal.h): accounting one observation, gaps, and the JSON
 * form. Pure data: the caller holds the service's lock. */
#include "jobs-internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"

static const struct {
        uint16_t id;      /* DCGM field id */
        bool counter;     /* counted as end - start; else a gauge */
        const char *name; /* key in "_state" */
} jf[JF_COUNT] = {
    [JF_ENERGY] = {FLD_TOTAL_ENERGY_CONSUMPTION, true, "energy"},
    [JF_SM_UTIL] = {FLD_GPU_UTIL, false, "sm_util"},
    [JF_MEM_UTIL] = {FLD_MEM_COPY_UTIL, false, "mem_util"},
    [JF_FB_USED] = {FLD_FB_USED, false, "fb_used"},
    [JF_TEMP] = {FLD_GPU_TEMP, false, "temp"},
    [JF_POWER] = {FLD_POWER_USAGE, false, "power"},
    [JF_V_POWER] = {FLD_POWER_VIOLATION, true, "v_power"},
    [JF_V_THERMAL] = {FLD_THERMAL_VIOLATION, true, "v_thermal"},
    [JF_V_SYNC_BOOST] = {FLD_SYNC_BOOST_VIOLATION, true, "v_sync_boost"},
    [JF_V_BOARD_LIMIT] = {FLD_BOARD_LIMIT_VIOLATION, true, "v_board_limit"},
    [JF_V_LOW_UTIL] = {FLD_LOW_UTIL_VIOLATION, true, "v_low_util"},
    [JF_V_RELIABILITY] = {FLD_RELIABILITY_VIOLATION, true, "v_reliability"},
    [JF_ECC_SBE] = {FLD_ECC_SBE_VOL_TOTAL, true, "ecc_sbe"},
    [JF_ECC_DBE] = {FLD_ECC_DBE_VOL_TOTAL, true, "ecc_dbe"},
    [JF_REMAP_CORR] = {FLD_CORRECTABLE_REMAPPED_ROWS, true, "remap_corr"},
    [JF_REMAP_UNCORR] = {FLD_UNCORRECTABLE_REMAPPED_ROWS, true, "remap_uncorr"},
};

/* throttle reasons as the API names them, JF_V_POWER.. in order */
static const char *const throttle_names[] = {"power",       "thermal",         "sync_boost",
                                             "board_limit", "low_utilization", "reliability"};

static const char *const kind_names[] = {"registered", "slurm", "pod"};

uint16_t jobs_field_id(enum jobs_field f)
{
        return f < JF_COUNT ? jf[f].id : 0;
}

bool jobs_field_is_counter(enum jobs_field f)
{
        return f < JF_COUNT && jf[f].counter;
}

const char *jobs_kind_name(enum jobs_kind k)
{
        return (unsigned)k < ARRAY_SIZE(kind_names) ? kind_names[k] : "unknown";
}

int jobs_kind_parse(const char *s, enum jobs_kind *ret)
{
        for (size_t i = 0; s && i < ARRAY_SIZE(kind_names); i++)
                if (!strcmp(s, kind_names[i])) {
                        *ret = (enum jobs_kind)i;
                        return 0;
                }
        return -EINVAL;
}

int job_new(const char *id, enum jobs_kind kind, int64_t now_us, job **ret)
{
        job *jb = calloc(1, sizeof(*jb));

        if (!jb)
                return -ENOMEM;
        snprintf(jb->id, sizeof(jb->id), "%s", id);
        jb->kind = kind;
        jb->running = true;
        jb->start_us = now_us;
        jb->last_seen_us = now_us;
        *ret = jb;
        return 0;
}

void job_free(job *jb)
{
        if (!jb)
                return;
        free(jb->gpu);
        free(jb);
}

jobs_gpu *job_gpu(job *jb, unsigned index)
{
        for (size_t i = 0; i < jb->n_gpus; i++)
                if (jb->gpu[i].index == index)
                        return &jb->gpu[i];
        return NULL;
}

jobs_gpu *job_add_gpu(job *jb, unsigned index, int64_t now_us)
{
        jobs_gpu *g = job_gpu(jb, index), *n;

        if (g)
                return g;
        n = realloc(jb->gpu, (jb->n_gpus + 1) * sizeof(*n));
        if (!n)
                return NULL;
        jb->gpu = n;
        g = &jb->gpu[jb->n_gpus++];
        memset(g, 0, sizeof(*g));
        g->index = index;
        g->start_us = now_us;
        return g;
}

static void counter_add(jobs_counter *c, int64_t v, int64_t ts_us)
{
        c->ts_us = ts_us;
        if (!c->have) {
                c->first = c->last = v;
                c->first_ts = ts_us;
                c->have = true;
                return;
        }
        if (v < c->last) { /* reset: the counter starts again from 0 */
                c->acc += c->last - c->first;
                c->first = 0;
                c->resets++;
        }
        c->last = v;
}

/* v at ts_us, a reading of a running job's GPU that started at start_us */
static void counter_running(jobs_counter *c, int64_t v, int64_t ts_us, int64_t start_us)
{
        bool first = !c->have;
        int64_t prev = c->last, prev_ts = c->ts_us;

        counter_add(c, v, ts_us);
        if (first) {
                if (ts_us >= start_us) /* read at or after the start: nothing to interpolate */
                        c->flags |= JC_START_DONE;
                return;
        }
        if (c->flags & JC_START_DONE || ts_us <= start_us)
                return;
        c->flags |= JC_START_DONE;
        /* the first reading after the start: the value at the start lies between the two */
        if (c->resets == 0 && v >= prev && prev_ts < start_us && prev == c->first) {
                c->first = prev + llround((double)(v - prev) * (double)(start_us - prev_ts) /
                                          (double)(ts_us - prev_ts));
                c->flags |= JC_START_INTERP;
        }
}

/* v at ts_us, after the job ended at end_us: the value at the end, once */
static void counter_ended(jobs_counter *c, int64_t v, int64_t ts_us, int64_t end_us)
{
        if (!c->have || c->flags & JC_END_DONE || ts_us <= c->ts_us || ts_us <= end_us)
                return;
        c->flags |= JC_END_DONE;
        if (v >= c->last && c->ts_us <= end_us) {
                c->last += llround((double)(v - c->last) * (double)(end_us - c->ts_us) /
                                   (double)(ts_us - c->ts_us));
                c->flags |= JC_END_INTERP;
        }
}

static int64_t counter_used(const jobs_counter *c)
{
        return c->acc + c->last - c->first;
}

static void gap_open(jobs_gpu *g, int64_t start_us, const char *reason)
{
        if (g->in_gap)
                return;
        g->in_gap = true;
        if (g->n_gaps >= JOBS_MAX_GAPS) {
                g->gaps_dropped++;
                return;
        }
        g->gaps[g->n_gaps].start_us = start_us;
        g->gaps[g->n_gaps].end_us = 0;
        snprintf(g->gaps[g->n_gaps].reason, sizeof(g->gaps[0].reason), "%s", reason);
        g->n_gaps++;
}

static void gap_close(jobs_gpu *g, int64_t end_us)
{
        if (!g->in_gap)
                return;
        g->in_gap = false;
        if (g->n_gaps && g->gaps[g->n_gaps - 1].end_us == 0)
                g->gaps[g->n_gaps - 1].end_us = MAX(end_us, g->gaps[g->n_gaps - 1].start_us);
}

static jobs_xid *xid_slot(jobs_gpu *g, uint32_t code)
{
        for (unsigned i = 0; i < g->n_xids; i++)
                if (g->xids[i].code == code)
                        return &g->xids[i];
        if (g->n_xids >= JOBS_MAX_XIDS) {
                g->xids_dropped++;
                return NULL;
        }
        g->xids[g->n_xids] = (jobs_xid){.code = code};
        return &g->xids[g->n_xids++];
}

static void feed_xids(jobs_gpu *g, const jobs_obs *o, int64_t now_us)
{
        for (size_t i = 0; i < MIN(o->n_xids, (size_t)JOBS_MAX_XIDS); i++) {
                jobs_xid *x = xid_slot(g, o->xid_code[i]);
                if (!x)
                        continue;
                if (!x->c.have && g->xid_primed) { /* a code first seen during the job */
                        x->c.have = true;
                        x->c.first = x->c.last = 0;
                }
                counter_add(&x->c, (int64_t)o->xid_count[i], now_us);
        }
        g->xid_primed = true;
}

void job_feed_gpu(jobs_gpu *g, const jobs_obs *o, int64_t now_us)
{
        if (g->end_us) { /* ended: only the first readings after the end, for the counters */
                for (unsigned f = 0; o->state == JOBS_GPU_OK && f < JF_COUNT; f++)
                        if (jf[f].counter && o->f[f].valid && isfinite(o->f[f].v))
                                counter_ended(&g->c[f], llround(o->f[f].v), o->f[f].ts_us,
                                              g->end_us);
                return;
        }
        feed_xids(g, o, now_us);
        if (o->state != JOBS_GPU_OK) {
                gap_open(g, now_us, o->state == JOBS_GPU_LOST ? "gpu_lost" : "gpu_unresponsive");
                return;
        }
        for (unsigned f = 0; f < JF_COUNT; f++) {
                const double v = o->f[f].v;
                const int64_t ts = o->f[f].ts_us;

                if (!o->f[f].valid || !isfinite(v))
                        continue;
                if (jf[f].counter) {
                        if (!g->c[f].have || ts > g->c[f].ts_us)
                                counter_running(&g->c[f], llround(v), ts, g->start_us);
                } else if (ts >= g->start_us && ts > g->g[f].ts_us) {
                        /* a reading sampled before the GPU joined is not the job's */
                        jobs_gauge *ga = &g->g[f];
                        ga->sum += v;
                        ga->max = ga->n ? MAX(ga->max, v) : v;
                        ga->n++;
                        ga->ts_us = ts;
                }
        }
        gap_close(g, now_us);
}

void job_open_gap(job *jb, int64_t start_us, const char *reason)
{
        for (size_t i = 0; i < jb->n_gpus; i++)
                gap_open(&jb->gpu[i], start_us, reason);
}

void job_gpu_add_pid(jobs_gpu *g, uint32_t pid)
{
        for (unsigned i = 0; i < g->n_pids; i++)
                if (g->pids[i] == pid)
                        return;
        if (g->n_pids >= JOBS_MAX_PIDS) {
                g->pids_dropped++;
                return;
        }
        g->pids[g->n_pids++] = pid;
}

void job_end(job *jb, int64_t now_us)
{
        jb->running = false;
        jb->end_us = now_us;
        for (size_t i = 0; i < jb->n_gpus; i++) {
                gap_close(&jb->gpu[i], now_us);
                jb->gpu[i].end_us = now_us;
        }
}

void job_resume(job *jb, int64_t now_us)
{
        int64_t paused = jb->end_us;

        jb->running = true;
        jb->end_us = 0;
        for (size_t i = 0; i < jb->n_gpus; i++) {
                jb->gpu[i].end_us = 0;
                for (unsigned f = 0; f < JF_COUNT; f++)
                        jb->gpu[i].c[f].flags &= ~(unsigned)(JC_END_DONE | JC_END_INTERP);
                gap_open(&jb->gpu[i], paused, "not_seen");
                gap_close(&jb->gpu[i], now_us);
        }
}

bool job_final(const job *jb)
{
        if (jb->running)
                return false;
        for (size_t i = 0; i < jb->n_gpus; i++)
                for (unsigned f = 0; f < JF_COUNT; f++)
                        if (jf[f].counter && jb->gpu[i].c[f].have &&
                            !(jb->gpu[i].c[f].flags & JC_END_DONE))
                                return false;
        return true;
}

int64_t job_energy_mj(const job *jb)
{
        int64_t sum = 0;
        bool any = false;

        for (size_t i = 0; i < jb->n_gpus; i++)
                if (jb->gpu[i].c[JF_ENERGY].have) {
                        sum += counter_used(&jb->gpu[i].c[JF_ENERGY]);
                        any = true;
                }
        return any ? sum : -1;
}

/* ---- JSON ---- */

static json_t *iso(int64_t us)
{
        char b[64];
        time_t t = (time_t)(us / 1000000);
        struct tm tm;

        if (us <= 0 || !gmtime_r(&t, &tm))
                return json_null();
        snprintf(b, sizeof(b), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(us % 1000000 / 1000));
        return json_string(b);
}

static json_t *counter_json(const jobs_counter *c)
{
        return c->have ? json_integer(counter_used(c)) : json_null();
}

static json_t *gauge_json(const jobs_gauge *g, bool avg)
{
        json_t *o = json_object();

        if (!o)
                return NULL;
        if (avg)
                json_object_set_new(o, "avg",
                                    g->n ? json_real(g->sum / (double)g->n) : json_null());
        json_object_set_new(o, "max", g->n ? json_real(g->max) : json_null());
        json_object_set_new(o, "samples", json_integer((json_int_t)g->n));
        return o;
}

static json_t *gpu_state_json(const jobs_gpu *g)
{
        json_t *st = json_object(), *c = json_object(), *ga = json_object(), *x = json_array();

        if (!st || !c || !ga || !x) {
                json_decref(st);
                json_decref(c);
                json_decref(ga);
                json_decref(x);
                return NULL;
        }
        for (unsigned f = 0; f < JF_COUNT; f++) {
                if (jf[f].counter) {
                        const jobs_counter *k = &g->c[f];
                        if (k->have)
                                json_object_set_new(
                                    c, jf[f].name,
                                    json_pack("[I,I,I,I,i,I,i]", (json_int_t)k->first,
                                              (json_int_t)k->last, (json_int_t)k->acc,
                                              (json_int_t)k->ts_us, (int)k->resets,
                                              (json_int_t)k->first_ts, (int)k->flags));
                } else {
                        const jobs_gauge *k = &g->g[f];
                        json_object_set_new(ga, jf[f].name,
                                            json_pack("[f,f,I,I]", k->sum, k->max, (json_int_t)k->n,
                                                      (json_int_t)k->ts_us));
                }
        }
        for (unsigned i = 0; i < g->n_xids; i++) {
                const jobs_counter *k = &g->xids[i].c;
                json_array_append_new(x, json_pack("[i,b,I,I,I,i]", (int)g->xids[i].code, k->have,
                                                   (json_int_t)k->first, (json_int_t)k->last,
                                                   (json_int_t)k->acc, (int)k->resets));
        }
        json_object_set_new(st, "c", c);
        json_object_set_new(st, "g", ga);
        json_object_set_new(st, "x", x);
        json_object_set_new(st, "in_gap", json_boolean(g->in_gap));
        json_object_set_new(st, "xid_primed", json_boolean(g->xid_primed));
        return st;
}

static json_t *gpu_json(const jobs_gpu *g, bool with_state)
{
        json_t *o = json_object(), *thr = json_object(), *xids = json_array(), *gaps = json_array(),
               *pids = json_array(), *energy;
        const jobs_counter *e = &g->c[JF_ENERGY];

        if (!o || !thr || !xids || !gaps || !pids)
                goto fail;
        json_object_set_new(o, "gpu", json_integer(g->index));
        json_object_set_new(o, "start_us", json_integer(g->start_us));
        json_object_set_new(o, "end_us", g->end_us ? json_integer(g->end_us) : json_null());
        json_object_set_new(o, "start", iso(g->start_us));
        json_object_set_new(o, "end", iso(g->end_us));
        if (g->last_seen_us)
                json_object_set_new(o, "last_seen_us", json_integer(g->last_seen_us));
        /* energy: the counter's difference, in mJ as NVML counts, and in J */
        energy =
            e->have
                ? json_pack("{s:I, s:I, s:I, s:f, s:i, s:b, s:b}", "start_mj", (json_int_t)e->first,
                            "end_mj", (json_int_t)e->last, "used_mj", (json_int_t)counter_used(e),
                            "joules", (double)counter_used(e) / 1000.0, "counter_resets",
                            (int)e->resets, "start_interpolated", (e->flags & JC_START_INTERP) != 0,
                            "end_interpolated", (e->flags & JC_END_INTERP) != 0)
                : json_null();
        json_object_set_new(o, "energy", energy);
        json_object_set_new(o, "energy_joules",
                            e->have ? json_real((double)counter_used(e) / 1000.0) : json_null());
        json_object_set_new(o, "sm_utilization_pct", gauge_json(&g->g[JF_SM_UTIL], true));
        json_object_set_new(o, "memory_utilization_pct", gauge_json(&g->g[JF_MEM_UTIL], true));
        json_object_set_new(o, "power_w", gauge_json(&g->g[JF_POWER], true));
        json_object_set_new(o, "memory_used_max_mib",
                            g->g[JF_FB_USED].n ? json_real(g->g[JF_FB_USED].max) : json_null());
        json_object_set_new(o, "temperature_max_c",
                            g->g[JF_TEMP].n ? json_real(g->g[JF_TEMP].max) : json_null());
        for (unsigned k = 0; k < ARRAY_SIZE(throttle_names); k++) {
                const jobs_counter *c = &g->c[JF_V_POWER + k];
                json_object_set_new(thr, throttle_names[k],
                                    c->have ? json_real((double)counter_used(c) / 1e9)
                                            : json_null());
        }
        json_object_set_new(o, "throttle_seconds", thr);
        for (unsigned i = 0; i < g->n_xids; i++) {
                int64_t n = g->xids[i].c.have ? counter_used(&g->xids[i].c) : 0;
                if (n > 0)
                        json_array_append_new(xids,
                                              json_pack("{s:i, s:I}", "code", (int)g->xids[i].code,
                                                        "count", (json_int_t)n));
        }
        json_object_set_new(o, "xids", xids);
        json_object_set_new(o, "ecc_sbe", counter_json(&g->c[JF_ECC_SBE]));
        json_object_set_new(o, "ecc_dbe", counter_json(&g->c[JF_ECC_DBE]));
        json_object_set_new(o, "remapped_rows",
                            json_pack("{s:o, s:o}", "correctable",
                                      counter_json(&g->c[JF_REMAP_CORR]), "uncorrectable",
                                      counter_json(&g->c[JF_REMAP_UNCORR])));
        for (unsigned i = 0; i < g->n_pids; i++)
                json_array_append_new(pids, json_integer(g->pids[i]));
        json_object_set_new(o, "processes", pids);
        if (g->pids_dropped)
                json_object_set_new(o, "processes_not_listed", json_integer(g->pids_dropped));
        for (unsigned i = 0; i < g->n_gaps; i++)
                json_array_append_new(
                    gaps,
                    json_pack("{s:I, s:o, s:s}", "start_us", (json_int_t)g->gaps[i].start_us,
                              "end_us",
                              g->gaps[i].end_us ? json_integer(g->gaps[i].end_us) : json_null(),
                              "reason", g->gaps[i].reason));
        json_object_set_new(o, "gaps", gaps);
        if (g->gaps_dropped)
                json_object_set_new(o, "gaps_not_listed", json_integer(g->gaps_dropped));
        if (with_state)
                json_object_set_new(o, "_state", gpu_state_json(g));
        return o;
fail:
        json_decref(o);
        json_decref(thr);
        json_decref(xids);
        json_decref(gaps);
        json_decref(pids);
        return NULL;
}

json_t *job_to_json(const job *jb, bool with_state)
{
        json_t *o = json_object(), *gpus = json_array();
        int64_t e = job_energy_mj(jb);

        if (!o || !gpus) {
                json_decref(o);
                json_decref(gpus);
                return NULL;
        }
        json_object_set_new(o, "id", json_string(jb->id));
        json_object_set_new(o, "kind", json_string(jobs_kind_name(jb->kind)));
        json_object_set_new(o, "state", json_string(jb->running ? "running" : "finished"));
        /* finished, and every counter has its value at the end (or nothing to wait for) */
        json_object_set_new(o, "final", json_boolean(job_final(jb)));
        json_object_set_new(o, "start_us", json_integer(jb->start_us));
        json_object_set_new(o, "end_us", jb->end_us ? json_integer(jb->end_us) : json_null());
        json_object_set_new(o, "start", iso(jb->start_us));
        json_object_set_new(o, "end", iso(jb->end_us));
        if (jb->kind != JOBS_REGISTERED)
                json_object_set_new(o, "last_seen_us", json_integer(jb->last_seen_us));
        json_object_set_new(o, "updated_us", json_integer(jb->updated_us));
        json_object_set_new(o, "seq", json_integer((json_int_t)jb->seq));
        json_object_set_new(o, "energy_joules",
                            e >= 0 ? json_real((double)e / 1000.0) : json_null());
        for (size_t i = 0; i < jb->n_gpus; i++)
                json_array_append_new(gpus, gpu_json(&jb->gpu[i], with_state));
        json_object_set_new(o, "gpus", gpus);
        return o;
}

/* ---- rebuilding from the store ---- */

static int64_t ival(const json_t *o, const char *k)
{
        return (int64_t)json_integer_value(json_object_get(o, k));
}

static int gpu_from_json(const json_t *o, jobs_gpu *g)
{
        const json_t *st = json_object_get(o, "_state"), *c, *ga, *x, *a, *v;
        size_t i;

        if (!json_is_object(st) || !json_is_integer(json_object_get(o, "gpu")))
                return -EBADMSG;
        g->index = (unsigned)ival(o, "gpu");
        g->start_us = ival(o, "start_us");
        g->end_us = ival(o, "end_us");
        g->last_seen_us = ival(o, "last_seen_us");
        c = json_object_get(st, "c");
        ga = json_object_get(st, "g");
        for (unsigned f = 0; f < JF_COUNT; f++) {
                if (jf[f].counter) {
                        json_int_t first, last, acc, ts, first_ts;
                        int resets, flags;
                        a = json_object_get(c, jf[f].name);
                        if (!a)
                                continue;
                        if (json_unpack((json_t *)a, "[I,I,I,I,i,I,i]", &first, &last, &acc, &ts,
                                        &resets, &first_ts, &flags))
                                return -EBADMSG;
                        g->c[f] = (jobs_counter){.first = first,
                                                 .last = last,
                                                 .acc = acc,
                                                 .ts_us = ts,
                                                 .first_ts = first_ts,
                                                 .resets = (uint32_t)resets,
                                                 .flags = (unsigned)flags,
                                                 .have = true};
                } else {
                        double sum, max;
                        json_int_t n, ts;
                        a = json_object_get(ga, jf[f].name);
                        if (!a)
                                continue;
                        if (json_unpack((json_t *)a, "[F,F,I,I]", &sum, &max, &n, &ts))
                                return -EBADMSG;
                        g->g[f] = (jobs_gauge){sum, max, (uint64_t)n, ts};
                }
        }
        x = json_object_get(st, "x");
        json_array_foreach(x, i, a)
        {
                int code, have, resets;
                json_int_t first, last, acc;
                if (g->n_xids >= JOBS_MAX_XIDS)
                        break;
                if (json_unpack((json_t *)a, "[i,b,I,I,I,i]", &code, &have, &first, &last, &acc,
                                &resets))
                        return -EBADMSG;
                g->xids[g->n_xids++] = (jobs_xid){(uint32_t)code,
                                                  {.first = first,
                                                   .last = last,
                                                   .acc = acc,
                                                   .resets = (uint32_t)resets,
                                                   .have = have != 0}};
        }
        g->in_gap = json_is_true(json_object_get(st, "in_gap"));
        g->xid_primed = json_is_true(json_object_get(st, "xid_primed"));
        json_array_foreach(json_object_get(o, "gaps"), i, a)
        {
                if (g->n_gaps >= JOBS_MAX_GAPS)
                        break;
                jobs_gap *gp = &g->gaps[g->n_gaps++];
                gp->start_us = ival(a, "start_us");
                gp->end_us = ival(a, "end_us");
                snprintf(gp->reason, sizeof(gp->reason), "%s",
                         json_string_value(json_object_get(a, "reason")) ?: "");
        }
        g->gaps_dropped = (uint32_t)ival(o, "gaps_not_listed");
        json_array_foreach(json_object_get(o, "processes"), i, v)
        {
                if (g->n_pids < JOBS_MAX_PIDS)
                        g->pids[g->n_pids++] = (uint32_t)json_integer_value(v);
        }
        g->pids_dropped = (uint32_t)ival(o, "processes_not_listed");
        return 0;
}

int job_from_json(const json_t *o, job **ret)
{
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *state = json_string_value(json_object_get(o, "state"));
        const json_t *gpus = json_object_get(o, "gpus"), *g;
        enum jobs_kind kind;
        job *jb = NULL;
        size_t i;
        int r;

        if (!id || strlen(id) >= JOBS_ID_MAX || !state || !json_is_array(gpus) ||
            jobs_kind_parse(json_string_value(json_object_get(o, "kind")), &kind) < 0)
                return -EBADMSG;
        r = job_new(id, kind, ival(o, "start_us"), &jb);
        if (r < 0)
                return r;
        jb->running = !strcmp(state, "running");
        jb->end_us = ival(o, "end_us");
        jb->last_seen_us = ival(o, "last_seen_us");
        jb->updated_us = ival(o, "updated_us");
        jb->seq = (uint64_t)ival(o, "seq");
        if (json_array_size(gpus)) {
                jb->gpu = calloc(json_array_size(gpus), sizeof(*jb->gpu));
                if (!jb->gpu) {
                        job_free(jb);
                        return -ENOMEM;
                }
        }
        json_array_foreach(gpus, i, g)
        {
                r = gpu_from_json(g, &jb->gpu[jb->n_gpus]);
                if (r < 0) {
                        job_free(jb);
                        return r;
                }
                jb->n_gpus++;
        }
        *ret = jb;
        return 0;
}

json_t *job_summary(const json_t *rec)
{
        json_t *s = json_object(), *gpus = json_array(), *g;
        size_t i;

        if (!s || !gpus) {
                json_decref(s);
                json_decref(gpus);
                return NULL;
        }
        static const char *const keys[] = {"id",     "kind",  "state", "final",        "start_us",
                                           "end_us", "start", "end",   "energy_joules"};
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                json_t *v = json_object_get(rec, keys[k]);
                json_object_set(s, keys[k], v ? v : json_null());
        }
        json_array_foreach(json_object_get(rec, "gpus"), i, g)
            json_array_append(gpus, json_object_get(g, "gpu"));
        json_object_set_new(s, "gpus", gpus);
        return s;
}
