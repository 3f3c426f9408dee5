/* engine.c — the simulated world behind the fake NVML: which scenario runs, scenario time, the
 * init reference count, per-GPU state that changes (lost, ECC errors added, held values),
 * scripted and injected events with their event sets, and the modelled CPU cost of each call.
 * One mutex guards it all; event waits sleep on a condition variable (CLOCK_MONOTONIC) and wake
 * for injected events at once and for scripted ones when their time comes. Values are in DCGM
 * units; the NVML entry points (nvml_api.c) convert. */
#include "fakenvml/fake-internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"
#include "common/vtime.h"
#include "fields/fields.h"

struct nvmlDevice_st fake_devices[FAKE_GPUS_MAX];

struct nvmlEventSet_st {
        struct nvmlEventSet_st *next;            /* all live sets */
        unsigned long long types[FAKE_GPUS_MAX]; /* registered nvmlEventType* bits per GPU */
        nvmlEventData_t queue[FAKE_QUEUE_LEN];   /* undelivered events, ring */
        unsigned head;                           /* index of the oldest */
        unsigned len;                            /* events queued */
};

enum { ECC_SBE_VOL, ECC_DBE_VOL, ECC_SBE_AGG, ECC_DBE_AGG, ECC_N };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_once_t cond_once = PTHREAD_ONCE_INIT;

static struct {
        struct fake_scenario *sc; /* owned; NULL until configured */
        int refcount;             /* nvmlInit minus nvmlShutdown */
        bool started;             /* t0 is set */
        int64_t t0_mono;          /* first nvmlInit (CLOCK_MONOTONIC us) */
        int64_t offset_us;        /* fake time added by vigil_fake_advance (us); scenario time is
                              real time since t0 plus this */
        size_t next_event;        /* first scripted event not yet applied */
        bool lost[FAKE_GPUS_MAX]; /* fell off the bus */
        long long ecc[FAKE_GPUS_MAX][ECC_N];             /* errors added by events and injection */
        bool held[FAKE_GPUS_MAX][FAKE_FIELDS_MAX];       /* injected value replaces the source */
        double held_val[FAKE_GPUS_MAX][FAKE_FIELDS_MAX]; /* DCGM unit */
        int64_t cost_cpu[FAKE_CALL_COUNT];               /* ns */
        int64_t cost_sleep[FAKE_CALL_COUNT];             /* ns */
        unsigned scale_pct;                              /* cost multiplier, percent */
        unsigned resets[FAKE_GPUS_MAX];                  /* FAKE_INJECT_RESET per GPU */
        struct fake_cfg_state cfg[FAKE_GPUS_MAX];        /* what the setters changed */
        struct nvmlEventSet_st *sets;                    /* live event sets */
} w;

static unsigned long long stat_calls;   /* atomic */
static unsigned long long stat_cost_ns; /* atomic */

static void cond_setup(void)
{
        pthread_condattr_t a;

        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&cond, &a);
        pthread_condattr_destroy(&a);
}

static int64_t now_t_locked(void)
{
        return (w.started ? time_mono_us() - w.t0_mono : 0) + w.offset_us;
}

int64_t fake_engine_time_us(void)
{
        int64_t t;

        pthread_mutex_lock(&lock);
        t = now_t_locked();
        pthread_mutex_unlock(&lock);
        return t;
}

static void push_locked(struct nvmlEventSet_st *s, unsigned gpu, unsigned long long type,
                        unsigned long long data)
{
        nvmlEventData_t *e;

        if (s->len == FAKE_QUEUE_LEN) { /* full: drop the oldest, as a bounded driver queue would */
                s->head = (s->head + 1) % FAKE_QUEUE_LEN;
                s->len--;
        }
        e = &s->queue[(s->head + s->len) % FAKE_QUEUE_LEN];
        *e = (nvmlEventData_t){.device = &fake_devices[gpu],
                               .eventType = type,
                               .eventData = data,
                               .gpuInstanceId = 0xFFFFFFFFU,
                               .computeInstanceId = 0xFFFFFFFFU};
        s->len++;
}

static void raise_locked(unsigned gpu, unsigned long long type, unsigned long long data)
{
        bool any = false;

        for (struct nvmlEventSet_st *s = w.sets; s; s = s->next)
                if (s->types[gpu] & type) {
                        push_locked(s, gpu, type, data);
                        any = true;
                }
        if (any)
                pthread_cond_broadcast(&cond);
}

static void ecc_add_locked(unsigned gpu, bool dbe, long long n)
{
        w.ecc[gpu][dbe ? ECC_DBE_VOL : ECC_SBE_VOL] += n;
        w.ecc[gpu][dbe ? ECC_DBE_AGG : ECC_SBE_AGG] += n;
        raise_locked(gpu, dbe ? nvmlEventTypeDoubleBitEccError : nvmlEventTypeSingleBitEccError, 0);
}

/* Apply the scripted events whose time has come. */
/* Settings that only the setters change: none at start (ECC: no change pending). */
static void cfg_clear_locked(unsigned gpu)
{
        w.cfg[gpu] = (struct fake_cfg_state){.ecc_pending = -1};
}

/* A GPU reset, or a GPU that comes back after falling off the bus (a driver reload): what the
 * setters changed goes back to the defaults (power limit, application and locked clocks,
 * compute mode, persistence mode), and a pending ECC mode becomes the current one, as on a GPU
 * whose driver state is gone. */
static void cfg_defaults_locked(unsigned gpu)
{
        static const unsigned volatile_cfg[] = {FLD_POWER_LIMIT,  FLD_ENFORCED_POWER_LIMIT,
                                                FLD_APP_SM_CLOCK, FLD_APP_MEM_CLOCK,
                                                FLD_COMPUTE_MODE, FLD_PERSISTENCE_MODE};
        int idx;

        for (size_t i = 0; i < ARRAY_SIZE(volatile_cfg); i++) {
                idx = field_index(volatile_cfg[i]);
                if (idx >= 0 && idx < FAKE_FIELDS_MAX)
                        w.held[gpu][idx] = false;
        }
        if (w.cfg[gpu].ecc_pending >= 0) {
                idx = field_index(FLD_ECC_CURRENT);
                if (idx >= 0 && idx < FAKE_FIELDS_MAX) {
                        w.held[gpu][idx] = true;
                        w.held_val[gpu][idx] = w.cfg[gpu].ecc_pending;
                }
        }
        cfg_clear_locked(gpu);
}

static void set_lost_locked(unsigned gpu, bool lost)
{
        if (w.lost[gpu] && !lost)
                cfg_defaults_locked(gpu);
        w.lost[gpu] = lost;
}

static void advance_locked(void)
{
        int64_t t;

        if (!w.sc || !w.started)
                return;
        t = now_t_locked();
        while (w.next_event < w.sc->n_events && w.sc->events[w.next_event].at_us <= t) {
                const struct fake_event_conf *e = &w.sc->events[w.next_event++];

                switch (e->kind) {
                case FEV_XID:
                        raise_locked(e->gpu, nvmlEventTypeXidCriticalError,
                                     (unsigned long long)e->value);
                        break;
                case FEV_ECC_DBE:
                case FEV_ECC_SBE:
                        ecc_add_locked(e->gpu, e->kind == FEV_ECC_DBE, e->value);
                        break;
                case FEV_LOST:
                        set_lost_locked(e->gpu, e->value != 0);
                        break;
                }
        }
}

static void reset_locked(struct fake_scenario *sc)
{
        fake_scenario_free(w.sc);
        w.sc = sc;
        w.started = false;
        w.offset_us = 0;
        w.next_event = 0;
        memset(w.lost, 0, sizeof(w.lost));
        memset(w.ecc, 0, sizeof(w.ecc));
        memset(w.held, 0, sizeof(w.held));
        memset(w.resets, 0, sizeof(w.resets));
        for (unsigned i = 0; i < FAKE_GPUS_MAX; i++)
                cfg_clear_locked(i);
        memcpy(w.cost_cpu, sc->cost_cpu_ns, sizeof(w.cost_cpu));
        memcpy(w.cost_sleep, sc->cost_sleep_ns, sizeof(w.cost_sleep));
        w.scale_pct = sc->cost_scale_pct;
        for (struct nvmlEventSet_st *s = w.sets; s; s = s->next) {
                memset(s->types, 0, sizeof(s->types));
                s->len = 0;
        }
        for (unsigned i = 0; i < FAKE_GPUS_MAX; i++)
                fake_devices[i].index = i;
}

int fake_engine_configure_scenario(struct fake_scenario *sc, char *err, size_t errlen)
{
        pthread_once(&cond_once, cond_setup);
        if (field_count() > FAKE_FIELDS_MAX) {
                snprintf(err, errlen, "field catalog has %zu entries, the fake holds %d",
                         field_count(), FAKE_FIELDS_MAX);
                fake_scenario_free(sc);
                return -E2BIG;
        }
        pthread_mutex_lock(&lock);
        if (w.refcount > 0) {
                pthread_mutex_unlock(&lock);
                snprintf(err, errlen, "cannot configure the fake NVML while it is initialized");
                fake_scenario_free(sc);
                return -EBUSY;
        }
        reset_locked(sc);
        pthread_mutex_unlock(&lock);
        return 0;
}

int fake_engine_configure(const char *path, char *err, size_t errlen)
{
        struct fake_scenario *sc = NULL;
        int r = path ? fake_scenario_load(path, &sc, err, errlen)
                     : fake_scenario_default(&sc, err, errlen);

        if (r < 0)
                return r;
        return fake_engine_configure_scenario(sc, err, errlen);
}

static int64_t thread_cpu_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define CPU_COST_MAX_NS                                                                            \
        (100 * 1000000LL) /* above this a call is modelled as hung: the rest is slept */

/* Burn CPU on this thread like NVML does inside its expensive calls, then sleep. A cost above
 * CPU_COST_MAX_NS models a call hung in the driver (waiting in the kernel, not spinning): the
 * excess is slept, so the watchdog tests hang a call for seconds without burning a core. */
static void spend(int64_t cpu_ns, int64_t sleep_ns)
{
        if (cpu_ns > CPU_COST_MAX_NS) {
                sleep_ns += cpu_ns - CPU_COST_MAX_NS;
                cpu_ns = CPU_COST_MAX_NS;
        }
        if (cpu_ns > 0) {
                int64_t start = thread_cpu_ns(), used;

                do
                        used = thread_cpu_ns() - start;
                while (used < cpu_ns);
                __atomic_fetch_add(&stat_cost_ns, (unsigned long long)used, __ATOMIC_RELAXED);
        }
        if (sleep_ns > 0) {
                struct timespec ts = {.tv_sec = sleep_ns / 1000000000,
                                      .tv_nsec = sleep_ns % 1000000000};
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
}

static void charge_locked(enum fake_call c, int64_t extra_ns, int64_t *cpu, int64_t *sleep_ns)
{
        double k = w.scale_pct / 100.0;

        *cpu = (int64_t)((double)(w.cost_cpu[c] + extra_ns) * k);
        *sleep_ns = (int64_t)((double)w.cost_sleep[c] * k);
}

nvmlReturn_t fake_engine_init(void)
{
        int64_t cpu, sleep_ns;

        pthread_once(&cond_once, cond_setup);
        __atomic_fetch_add(&stat_calls, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&lock);
        if (!w.sc) {
                /* Nobody chose: the environment, else the built-in default. */
                char err[512];
                const char *path = getenv("VIGIL_FAKE_SCENARIO");
                struct fake_scenario *sc = NULL;
                int r = path && *path ? fake_scenario_load(path, &sc, err, sizeof(err))
                                      : fake_scenario_default(&sc, err, sizeof(err));

                if (r < 0) {
                        pthread_mutex_unlock(&lock);
                        fprintf(stderr, "fakenvml: failed to load scenario: %s\n", err);
                        return NVML_ERROR_UNKNOWN;
                }
                reset_locked(sc);
        }
        if (!w.started) {
                w.started = true;
                w.t0_mono = time_mono_us();
        }
        w.refcount++;
        charge_locked(FAKE_CALL_init, 0, &cpu, &sleep_ns);
        pthread_mutex_unlock(&lock);
        spend(cpu, sleep_ns);
        return NVML_SUCCESS;
}

nvmlReturn_t fake_engine_shutdown(void)
{
        nvmlReturn_t r = NVML_SUCCESS;

        __atomic_fetch_add(&stat_calls, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&lock);
        if (w.refcount == 0)
                r = NVML_ERROR_UNINITIALIZED;
        else
                w.refcount--;
        pthread_mutex_unlock(&lock);
        return r;
}

nvmlReturn_t fake_engine_enter(enum fake_call c, int64_t extra_ns)
{
        int64_t cpu, sleep_ns;

        __atomic_fetch_add(&stat_calls, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&lock);
        if (w.refcount == 0) {
                pthread_mutex_unlock(&lock);
                return NVML_ERROR_UNINITIALIZED;
        }
        advance_locked();
        charge_locked(c, extra_ns, &cpu, &sleep_ns);
        pthread_mutex_unlock(&lock);
        spend(cpu, sleep_ns);
        return NVML_SUCCESS;
}

int64_t fake_engine_fv_cost(const nvmlFieldValue_t *values, int count)
{
        int64_t sum = 0;

        pthread_mutex_lock(&lock);
        if (w.sc && values)
                for (int i = 0; i < count; i++) {
                        unsigned id = values[i].fieldId;
                        int64_t c = id < FAKE_FV_IDS ? w.sc->fv_cost_ns[id] : -1;
                        sum += c >= 0 ? c : w.sc->fv_cost_default_ns;
                }
        pthread_mutex_unlock(&lock);
        return sum;
}

unsigned fake_engine_gpu_count(void)
{
        unsigned n;

        pthread_mutex_lock(&lock);
        n = w.sc ? w.sc->gpu_count : 0;
        pthread_mutex_unlock(&lock);
        return n;
}

const struct fake_scenario *fake_engine_scenario(void)
{
        return w.sc;
}

const struct fake_gpu_conf *fake_engine_gpu(unsigned gpu)
{
        return w.sc && gpu < w.sc->gpu_count ? &w.sc->gpus[gpu] : NULL;
}

int fake_engine_dev_index(nvmlDevice_t dev)
{
        uintptr_t p = (uintptr_t)dev, base = (uintptr_t)fake_devices;
        size_t i;

        if (!dev || p < base || (p - base) % sizeof(fake_devices[0]))
                return -1;
        i = (p - base) / sizeof(fake_devices[0]);
        return w.sc && i < w.sc->gpu_count ? (int)i : -1;
}

nvmlReturn_t fake_engine_dev(nvmlDevice_t dev, unsigned *gpu)
{
        nvmlReturn_t r = NVML_SUCCESS;
        int i;

        pthread_mutex_lock(&lock);
        i = fake_engine_dev_index(dev);
        if (i < 0)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else if (w.lost[i])
                r = NVML_ERROR_GPU_IS_LOST;
        pthread_mutex_unlock(&lock);
        if (i >= 0)
                *gpu = (unsigned)i;
        return r;
}

nvmlReturn_t fake_engine_supported(unsigned gpu, unsigned field)
{
        int idx = field_index(field);
        const struct fake_gpu_conf *g = fake_engine_gpu(gpu);

        return g && idx >= 0 && !g->unsupported[idx] ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
}

static double value_locked(unsigned gpu, unsigned field, int idx, int64_t t);

static double field_locked(unsigned gpu, unsigned field, int64_t t)
{
        int idx = field_index(field);

        return idx < 0 ? 0 : value_locked(gpu, field, idx, t);
}

/* Fields that, with no source of their own and no trace column, follow another field: the
 * profiling activities follow GPU utilization (%), so a replayed trace drives them too. */
static const struct {
        unsigned field; /* FLD_* */
        unsigned from;  /* FLD_* it follows */
        double factor;  /* field = from x factor */
} derived[] = {
    {FLD_PROF_GR_ENGINE_ACTIVE, FLD_GPU_UTIL, 0.01},    /* ratio ~ utilization */
    {FLD_PROF_PIPE_TENSOR_ACTIVE, FLD_GPU_UTIL, 0.006}, /* ratio ~ 0.6 x utilization */
    {FLD_PROF_DRAM_ACTIVE, FLD_GPU_UTIL, 0.005},        /* ratio ~ 0.5 x utilization */
    {FLD_PROF_SM_ACTIVE, FLD_GPU_UTIL, 0.009},          /* ratio ~ 0.9 x utilization */
    {FLD_PROF_SM_OCCUPANCY, FLD_GPU_UTIL, 0.004},
    {FLD_PROF_PIPE_FP64_ACTIVE, FLD_GPU_UTIL, 0.0005},
    {FLD_PROF_PIPE_FP32_ACTIVE, FLD_GPU_UTIL, 0.003},
    {FLD_PROF_PIPE_FP16_ACTIVE, FLD_GPU_UTIL, 0.002},
    {FLD_PROF_PIPE_TENSOR_HMMA_ACTIVE, FLD_GPU_UTIL, 0.006},
    {FLD_PROF_PIPE_INT_ACTIVE, FLD_GPU_UTIL, 0.002},
    {FLD_PROF_NVLINK_TX_BYTES, FLD_GPU_UTIL, 4e7}, /* B/s: 4 GB/s at 100 % */
    {FLD_PROF_NVLINK_RX_BYTES, FLD_GPU_UTIL, 4e7},
};

static double value_locked(unsigned gpu, unsigned field, int idx, int64_t t)
{
        const struct fake_gpu_conf *g = &w.sc->gpus[gpu];
        struct fake_source def;
        double v;

        if (w.held[gpu][idx])
                return w.held_val[gpu][idx];
        if (field == FLD_FB_FREE) {
                v = field_locked(gpu, FLD_FB_TOTAL, t) - field_locked(gpu, FLD_FB_RESERVED, t) -
                    field_locked(gpu, FLD_FB_USED, t);
                return v > 0 ? v : 0;
        }
        if (g->src[idx].kind != SRC_DEFAULT) {
                v = fake_source_eval(&g->src[idx], t, gpu, field);
        } else {
                int col = -1;
                size_t d;

                if (g->trace && w.sc->trace)
                        for (int c = 0; c < TC_COUNT; c++)
                                if (fake_trace_col_field((enum fake_trace_col)c) == field &&
                                    w.sc->trace->col[c])
                                        col = c;
                for (d = 0; d < ARRAY_SIZE(derived) && derived[d].field != field; d++)
                        ;
                if (col >= 0) {
                        v = fake_trace_value(w.sc->trace, (enum fake_trace_col)col,
                                             t + g->trace_offset_us);
                } else if (d < ARRAY_SIZE(derived)) {
                        v = field_locked(gpu, derived[d].from, t) * derived[d].factor;
                } else {
                        fake_default_source(gpu, field, &def);
                        v = fake_source_eval(&def, t, gpu, field);
                }
        }
        switch (field) {
        case FLD_ECC_SBE_VOL_TOTAL:
                return v + (double)w.ecc[gpu][ECC_SBE_VOL];
        case FLD_ECC_DBE_VOL_TOTAL:
                return v + (double)w.ecc[gpu][ECC_DBE_VOL];
        case FLD_ECC_SBE_AGG_TOTAL:
                return v + (double)w.ecc[gpu][ECC_SBE_AGG];
        case FLD_ECC_DBE_AGG_TOTAL:
                return v + (double)w.ecc[gpu][ECC_DBE_AGG];
        default:
                return v;
        }
}

nvmlReturn_t fake_engine_read(unsigned gpu, const unsigned *fields, size_t n, double *vals,
                              nvmlReturn_t *rcs)
{
        nvmlReturn_t r = NVML_SUCCESS;
        int64_t t;

        pthread_mutex_lock(&lock);
        if (!w.sc || gpu >= w.sc->gpu_count) {
                pthread_mutex_unlock(&lock);
                return NVML_ERROR_INVALID_ARGUMENT;
        }
        if (w.lost[gpu]) {
                pthread_mutex_unlock(&lock);
                return NVML_ERROR_GPU_IS_LOST;
        }
        t = now_t_locked();
        for (size_t i = 0; i < n; i++) {
                int idx = field_index(fields[i]);
                nvmlReturn_t fr = NVML_SUCCESS;

                if (idx < 0 || idx >= FAKE_FIELDS_MAX || w.sc->gpus[gpu].unsupported[idx])
                        fr = NVML_ERROR_NOT_SUPPORTED;
                else
                        vals[i] = value_locked(gpu, fields[i], idx, t);
                if (rcs)
                        rcs[i] = fr;
                else if (fr != NVML_SUCCESS)
                        r = fr;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

void fake_engine_hold(unsigned gpu, unsigned field, double value)
{
        int idx = field_index(field);

        pthread_mutex_lock(&lock);
        if (w.sc && gpu < w.sc->gpu_count && idx >= 0 && idx < FAKE_FIELDS_MAX) {
                w.held[gpu][idx] = true;
                w.held_val[gpu][idx] = value;
        }
        pthread_mutex_unlock(&lock);
}

void fake_engine_release(unsigned gpu, unsigned field)
{
        int idx = field_index(field);

        pthread_mutex_lock(&lock);
        if (w.sc && gpu < w.sc->gpu_count && idx >= 0 && idx < FAKE_FIELDS_MAX)
                w.held[gpu][idx] = false;
        pthread_mutex_unlock(&lock);
}

void fake_engine_cfg_get(unsigned gpu, struct fake_cfg_state *out)
{
        pthread_mutex_lock(&lock);
        *out = gpu < FAKE_GPUS_MAX ? w.cfg[gpu] : (struct fake_cfg_state){.ecc_pending = -1};
        pthread_mutex_unlock(&lock);
}

void fake_engine_cfg_put(unsigned gpu, const struct fake_cfg_state *in)
{
        pthread_mutex_lock(&lock);
        if (gpu < FAKE_GPUS_MAX)
                w.cfg[gpu] = *in;
        pthread_mutex_unlock(&lock);
}

/* ---- events ---- */

static bool set_live_locked(nvmlEventSet_t set)
{
        for (struct nvmlEventSet_st *s = w.sets; s; s = s->next)
                if (s == set)
                        return true;
        return false;
}

nvmlReturn_t fake_engine_event_set_create(nvmlEventSet_t *set)
{
        struct nvmlEventSet_st *s = calloc(1, sizeof(*s));

        if (!s)
                return NVML_ERROR_MEMORY;
        pthread_mutex_lock(&lock);
        s->next = w.sets;
        w.sets = s;
        pthread_mutex_unlock(&lock);
        *set = s;
        return NVML_SUCCESS;
}

nvmlReturn_t fake_engine_event_set_free(nvmlEventSet_t set)
{
        pthread_mutex_lock(&lock);
        for (struct nvmlEventSet_st **p = &w.sets; *p; p = &(*p)->next)
                if (*p == set) {
                        *p = set->next;
                        pthread_mutex_unlock(&lock);
                        free(set);
                        return NVML_SUCCESS;
                }
        pthread_mutex_unlock(&lock);
        return NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t fake_engine_register(unsigned gpu, unsigned long long types, nvmlEventSet_t set)
{
        nvmlReturn_t r = NVML_SUCCESS;

        pthread_mutex_lock(&lock);
        if (!set_live_locked(set) || gpu >= FAKE_GPUS_MAX)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else if (types & ~FAKE_EVENT_TYPES)
                r = NVML_ERROR_NOT_SUPPORTED;
        else
                set->types[gpu] |= types;
        pthread_mutex_unlock(&lock);
        return r;
}

static struct timespec mono_ts(int64_t us)
{
        return (struct timespec){.tv_sec = us / USEC_PER_SEC,
                                 .tv_nsec = (us % USEC_PER_SEC) * 1000};
}

nvmlReturn_t fake_engine_wait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned timeout_ms)
{
        int64_t deadline = time_mono_us() + (int64_t)timeout_ms * USEC_PER_MSEC;

        pthread_mutex_lock(&lock);
        for (;;) {
                int64_t wake = deadline, now;
                struct timespec ts;

                if (!set_live_locked(set)) {
                        pthread_mutex_unlock(&lock);
                        return NVML_ERROR_INVALID_ARGUMENT;
                }
                advance_locked();
                if (set->len) {
                        *data = set->queue[set->head];
                        set->head = (set->head + 1) % FAKE_QUEUE_LEN;
                        set->len--;
                        pthread_mutex_unlock(&lock);
                        return NVML_SUCCESS;
                }
                now = time_mono_us();
                if (now >= deadline) {
                        pthread_mutex_unlock(&lock);
                        return NVML_ERROR_TIMEOUT;
                }
                /* Sleep until the deadline, an injected event, or the next scripted one. */
                if (w.sc && w.started && w.next_event < w.sc->n_events)
                        wake =
                            MIN(wake, w.t0_mono - w.offset_us + w.sc->events[w.next_event].at_us);
                if (wake <= now)
                        continue;
                ts = mono_ts(wake);
                pthread_cond_timedwait(&cond, &lock, &ts);
        }
}

/* ---- injection and stats ---- */

int fake_engine_inject(const struct fake_inject *req, char *err, size_t errlen)
{
        const field_meta *f;
        int idx, r = 0;

        if (errlen)
                err[0] = '\0';
        if (!req) {
                snprintf(err, errlen, "no request");
                return -EINVAL;
        }
        pthread_mutex_lock(&lock);
        if (!w.sc) {
                snprintf(err, errlen, "no scenario loaded");
                r = -ENODEV;
                goto out;
        }
        if (req->kind != FAKE_INJECT_CALL_COST && req->kind != FAKE_INJECT_ADVANCE &&
            req->gpu >= w.sc->gpu_count) {
                snprintf(err, errlen, "no GPU %u (the scenario has %u)", req->gpu, w.sc->gpu_count);
                r = -ENODEV;
                goto out;
        }
        advance_locked();
        switch (req->kind) {
        case FAKE_INJECT_XID:
                if (req->count < 0 || req->count > 0xffffffffLL) {
                        snprintf(err, errlen, "xid %lld out of range", req->count);
                        r = -EINVAL;
                        break;
                }
                raise_locked(req->gpu, nvmlEventTypeXidCriticalError,
                             (unsigned long long)req->count);
                break;
        case FAKE_INJECT_FIELD:
        case FAKE_INJECT_FIELD_CLEAR:
                f = field_by_id(req->field_id);
                idx = f ? field_index(f->id) : -1;
                if (!f || idx >= FAKE_FIELDS_MAX || f->type == FT_STR || f->id == FLD_FB_FREE) {
                        snprintf(err, errlen, "field %u cannot be injected%s", req->field_id,
                                 f && f->id == FLD_FB_FREE ? " (FB_FREE is derived)" : "");
                        r = -EINVAL;
                        break;
                }
                if (req->kind == FAKE_INJECT_FIELD_CLEAR) {
                        w.held[req->gpu][idx] = false;
                        break;
                }
                if (!isfinite(req->value)) {
                        snprintf(err, errlen, "value for '%s' is not finite", f->sym);
                        r = -EINVAL;
                        break;
                }
                w.held[req->gpu][idx] = true;
                w.held_val[req->gpu][idx] = req->value;
                break;
        case FAKE_INJECT_ECC_DBE:
        case FAKE_INJECT_ECC_SBE:
                if (req->count < 1 || req->count > 1000000000LL) {
                        snprintf(err, errlen, "ecc count %lld not in 1..1000000000", req->count);
                        r = -EINVAL;
                        break;
                }
                ecc_add_locked(req->gpu, req->kind == FAKE_INJECT_ECC_DBE, req->count);
                break;
        case FAKE_INJECT_LOST:
                if (req->count != 0 && req->count != 1) {
                        snprintf(err, errlen, "lost must be 1 or 0, not %lld", req->count);
                        r = -EINVAL;
                        break;
                }
                set_lost_locked(req->gpu, req->count == 1);
                break;
        case FAKE_INJECT_RESET: {
                /* What a GPU reset clears: the volatile ECC counters and the pending row
                 * remapping / page retirement (applied by the reset). Aggregate counters stay. */
                static const unsigned pending[] = {FLD_ROW_REMAP_PENDING, FLD_RETIRED_PENDING};
                static const unsigned vol[] = {FLD_ECC_SBE_VOL_TOTAL, FLD_ECC_DBE_VOL_TOTAL};

                w.ecc[req->gpu][ECC_SBE_VOL] = 0;
                w.ecc[req->gpu][ECC_DBE_VOL] = 0;
                for (size_t i = 0; i < ARRAY_SIZE(vol); i++) {
                        idx = field_index(vol[i]);
                        if (idx >= 0 && idx < FAKE_FIELDS_MAX)
                                w.held[req->gpu][idx] = false;
                }
                for (size_t i = 0; i < ARRAY_SIZE(pending); i++) {
                        idx = field_index(pending[i]);
                        if (idx >= 0 && idx < FAKE_FIELDS_MAX) {
                                w.held[req->gpu][idx] = true;
                                w.held_val[req->gpu][idx] = 0;
                        }
                }
                cfg_defaults_locked(req->gpu);
                w.resets[req->gpu]++;
                fprintf(stderr, "fakenvml: GPU %u reset (%u so far)\n", req->gpu,
                        w.resets[req->gpu]);
                break;
        }
        case FAKE_INJECT_ADVANCE:
                if (req->count < 0 || req->count > FAKE_ADVANCE_MAX_US) {
                        snprintf(err, errlen, "advance %lld us not in 0..%lld", req->count,
                                 (long long)FAKE_ADVANCE_MAX_US);
                        r = -EINVAL;
                        break;
                }
                w.offset_us += req->count;
                advance_locked(); /* scripted events now due happen before the call returns */
                pthread_cond_broadcast(&cond); /* event waits recompute their wake-up time */
                break;
        case FAKE_INJECT_CALL_COST: {
                int c;

                if (!req->call || req->count < 0 || req->count > 60LL * 1000000000) {
                        snprintf(err, errlen, "call cost needs a call name and 0..60s in ns");
                        r = -EINVAL;
                        break;
                }
                if (strcmp(req->call, "*") == 0) {
                        if (req->count > 100000) {
                                snprintf(err, errlen, "scale %lld%% above 100000%%", req->count);
                                r = -EINVAL;
                                break;
                        }
                        w.scale_pct = (unsigned)req->count;
                        break;
                }
                c = fake_call_from_name(req->call);
                if (c < 0) {
                        snprintf(err, errlen, "'%.64s' is not an NVML function the fake exports",
                                 req->call);
                        r = -EINVAL;
                        break;
                }
                w.cost_cpu[c] = req->count;
                break;
        }
        default:
                snprintf(err, errlen, "unknown injection kind %d", (int)req->kind);
                r = -EINVAL;
        }
out:
        pthread_mutex_unlock(&lock);
        return r;
}

int vigil_fake_advance(long long us)
{
        struct fake_inject req = {.kind = FAKE_INJECT_ADVANCE, .count = us};
        char err[128];

        return fake_engine_inject(&req, err, sizeof(err));
}

int64_t fake_engine_now_us(void)
{
        int64_t t;

        pthread_mutex_lock(&lock);
        t = now_t_locked();
        pthread_mutex_unlock(&lock);
        return t;
}

unsigned fake_engine_resets(unsigned gpu)
{
        unsigned n;

        pthread_mutex_lock(&lock);
        n = gpu < FAKE_GPUS_MAX ? w.resets[gpu] : 0;
        pthread_mutex_unlock(&lock);
        return n;
}

void fake_engine_stats(struct fake_stats *out)
{
        if (!out)
                return;
        out->calls = __atomic_load_n(&stat_calls, __ATOMIC_RELAXED);
        out->cost_ns = __atomic_load_n(&stat_cost_ns, __ATOMIC_RELAXED);
}

/* dlclose (or exit): give back the scenario and the event sets, so leak checkers stay quiet. */
__attribute__((destructor)) static void engine_unload(void)
{
        pthread_mutex_lock(&lock);
        w.sc = fake_scenario_free(w.sc);
        while (w.sets) {
                struct nvmlEventSet_st *s = w.sets;
                w.sets = s->next;
                free(s);
        }
        pthread_mutex_unlock(&lock);
}
