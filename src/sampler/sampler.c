/* sampler.c — sampling threads. The fast and slow tiers each own a thread so that the slow tier's
 * millisecond NVML reads (energy, violation counters, PCIe replays) never delay the fast tier;
 * XID/ECC events have a third thread blocked in nvmlEventSetWait. Fields with the same tier and
 * interval form one schedule group; per GPU each group is one cache group (shared timestamps).
 * After each sweep the tier thread publishes "sweep done" (sampler_options.on_sweep): the only
 * trigger of the consumers (health, anomalies, exposition). A watchdog thread gives up on a sample
 * call that hangs (see sampler_set_watchdog): the hung tier thread is abandoned inside the call
 * and a new one takes the tier over. Idle, each thread sleeps until its next due time: no
 * periodic ticks (docs/internals/sampler.md, "Wake-ups"). */
#include "sampler.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/sparse.h"
#include "common/vtime.h"

#define MAX_GROUPS       16
#define MAX_GROUP_FIELDS 192 /* the slow tier alone holds ~100 catalog fields */
/* The event thread's wait in nvmlEventSetWait. Long: it returns at once for an event; the
 * timeout only bounds how long sampler_stop waits for it on the real NVML, which cannot be woken
 * (the fake is woken at stop, see wake_event_wait). */
#define EVENT_WAIT_MS 5000u
#define ABANDONED_WAIT_US                                                                          \
        (10 * USEC_PER_SEC) /* sampler_stop waits this long for hung calls to return */
#define BUSY_ABANDONED (-1) /* busy_since: the watchdog gave this call up */

const double sampler_hist_bounds[ENGINE_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
};

typedef struct sched_group {
        enum field_tier tier;              /* thread that runs it: FAST or SLOW */
        int64_t interval_us;               /* how often */
        int64_t next_due;                  /* monotonic usec */
        uint16_t fields[MAX_GROUP_FIELDS]; /* DCGM ids */
        size_t n;                          /* fields used */
        int cache_group[SAMPLER_MAX_GPUS]; /* per GPU */
} sched_group;

struct sampler {
        sampler_options opt; /* copy; overrides array borrowed */
        unsigned n_gpus;     /* discovered */
        char driver[96];     /* driver version */
        char nvml[96];       /* NVML version */

        pthread_mutex_t lock; /* guards gpus, xids, stats, ready flags */
        sampler_gpu gpus[SAMPLER_MAX_GPUS];
        sampler_xid xids[SAMPLER_MAX_GPUS][ENGINE_MAX_XID_CODES];
        size_t n_xids[SAMPLER_MAX_GPUS];
        uint64_t xid_total[SAMPLER_MAX_GPUS]; /* all codes */
        sampler_stats stats;
        bool fast_done, slow_done; /* first sweep of each tier completed */

        int static_group[SAMPLER_MAX_GPUS]; /* cache group of static numeric fields */
        int event_group[SAMPLER_MAX_GPUS];  /* cache group of XID_ERRORS, XID_COUNT */
        uint16_t static_fields[MAX_GROUP_FIELDS];
        size_t n_static;
        int64_t next_reattach[SAMPLER_MAX_GPUS]; /* monotonic usec; guarded by lock */

        sched_group groups[MAX_GROUPS];
        size_t n_groups;

        /* adaptive collection; each tier's entries are touched only by its own thread */
        double stretch[TIER_COUNT]; /* interval multiplier, >= 1 */
        unsigned over[TIER_COUNT];  /* consecutive sweeps over budget */
        unsigned under[TIER_COUNT]; /* consecutive sweeps well under budget */

        /* watchdog: per (tier, GPU) the monotonic usec the sample call in progress started, 0 when
         * none, BUSY_ABANDONED once given up; written by the tier thread and swapped by the
         * watchdog (compare-and-swap), no lock on the sampling path */
        _Atomic int64_t busy_since[TIER_COUNT][SAMPLER_MAX_GPUS];
        atomic_uint stuck[SAMPLER_MAX_GPUS]; /* given-up calls still running, per GPU */
        pthread_mutex_t wd_lock;             /* guards the wd_ fields and tier_thread */
        pthread_cond_t wd_cond;              /* abandoned threads signal their exit (monotonic) */
        int64_t wd_timeout_us;               /* usec; <= 0 off */
        sampler_stuck_fn wd_fn;              /* may be NULL */
        void *wd_userdata;
        unsigned abandoned;                /* tier threads left in a hung call, still alive */
        pthread_t tier_thread[TIER_COUNT]; /* FAST and SLOW: the thread that owns the tier */
        pthread_t wd_thread;
        /* The watchdog sleeps in poll() on these: one timer per tier, armed by the tier thread
         * for the length of a sweep (one-shot, timeout_us), and an eventfd for stop. No timer
         * runs between sweeps, so an idle watchdog never wakes. -1 when not created. */
        int wd_timer[TIER_COUNT];
        int wd_stop;

        /* the wall clock of the timestamps: time_real_us, or the test hook of sampler_options */
        int64_t (*now_real)(void);
        _Atomic uint64_t clamped;     /* pushes the cache clamped: the wall clock went back */
        _Atomic uint64_t push_errors; /* pushes the cache refused */
        atomic_bool clock_back;       /* inside a step-back episode (logged once per episode) */

        /* Profiling fields in "auto" mode, indexed by id - FIELD_PROF_FIRST: who pins each
         * (enum sampler_pin bits) and until when a user's demand holds (monotonic usec). */
        _Atomic uint8_t prof_pin[FIELD_PROF_LAST - FIELD_PROF_FIRST + 1];
        _Atomic int64_t prof_demand[FIELD_PROF_LAST - FIELD_PROF_FIRST + 1];
        /* per GPU, slow thread only: the last slow sweep read no profiling field, so the GPM
         * sample GPM keeps is old and the next read must start a new interval */
        bool prof_idle[SAMPLER_MAX_GPUS];

        pthread_t event_thread;
        bool started, events_running, wd_running;
        atomic_bool stopping;
        pthread_mutex_t wait_lock; /* for interruptible sleeps */
        pthread_cond_t wait_cond;  /* CLOCK_MONOTONIC */
};

unsigned sampler_max_gpus(void)
{
        return SAMPLER_MAX_GPUS;
}

/* Write one sample of a group into the cache. The cache never drops a sample for its timestamp:
 * one older than the group's newest (the wall clock stepped back) is stored at the newest ts and
 * reported here, once per episode, with the count kept for sampler_get_stats. Any other failure
 * is counted and logged (the first, then every 1000th). Sampling threads; does not allocate. */
static void push(sampler *e, int group, int64_t ts, const field_value *vals)
{
        int r = cache_group_push(e->opt.cache, group, ts, vals);

        if (r == CACHE_PUSH_CLAMPED) {
                atomic_fetch_add(&e->clamped, 1);
                if (!atomic_exchange(&e->clock_back, true))
                        log_warn("sampler",
                                 "the wall clock went back: samples are stored at the newest "
                                 "timestamp held until the clock catches up "
                                 "(vigil_sampler_clock_steps_total)");
        } else if (r == 0) {
                if (atomic_load(&e->clock_back) && atomic_exchange(&e->clock_back, false))
                        log_info("sampler", "the wall clock caught up: timestamps are exact "
                                            "again");
        } else {
                uint64_t n = atomic_fetch_add(&e->push_errors, 1);
                if (n % 1000 == 0)
                        log_error("sampler",
                                  "failed to store a sample of cache group %d: %s "
                                  "(%llu so far)",
                                  group, strerror(-r), (unsigned long long)n + 1);
        }
}

/* Field id -> catalog entry in one load for ids below META_IDS (the others scan the catalog):
 * sampler_latest runs for every rule input, anomaly field and render of every GPU each sweep. */
#define META_IDS 1024
static int16_t meta_index[META_IDS]; /* catalog index, -1 = none; filled once */
static pthread_once_t meta_once = PTHREAD_ONCE_INIT;

static void meta_fill(void)
{
        for (size_t i = 0; i < META_IDS; i++)
                meta_index[i] = -1;
        for (size_t i = 0; i < field_count(); i++)
                if (field_at(i)->id < META_IDS)
                        meta_index[field_at(i)->id] = (int16_t)i;
}

static const field_meta *meta_of(uint16_t field_id)
{
        if (field_id >= META_IDS)
                return field_by_id(field_id);
        pthread_once(&meta_once, meta_fill);
        return meta_index[field_id] < 0 ? NULL : field_at((size_t)meta_index[field_id]);
}

static int64_t field_interval(const sampler_options *o, const field_meta *m)
{
        for (size_t i = 0; i < o->n_overrides; i++)
                if (o->overrides[i].field_id == m->id)
                        return o->overrides[i].interval_us;
        switch (m->tier) {
        case TIER_FAST:
                return o->fast_us;
        case TIER_SLOW:
                /* a costly field's own default (0 for the others), never shorter than the tier */
                return MAX(field_default_interval_us(m->id), o->slow_us);
        default:
                return -1;
        }
}

static int build_groups(sampler *e)
{
        for (size_t i = 0; i < field_count(); i++) {
                const field_meta *m = field_at(i);
                int64_t iv;
                sched_group *g = NULL;

                if (m->tier == TIER_STATIC && m->type != FT_STR) {
                        if (e->n_static >= MAX_GROUP_FIELDS)
                                return -E2BIG;
                        e->static_fields[e->n_static++] = m->id;
                        continue;
                }
                if (m->tier != TIER_FAST && m->tier != TIER_SLOW)
                        continue;
                iv = field_interval(&e->opt, m);
                if (iv <= 0)
                        continue; /* switched off */
                for (size_t k = 0; k < e->n_groups; k++)
                        if (e->groups[k].tier == m->tier && e->groups[k].interval_us == iv)
                                g = &e->groups[k];
                if (!g) {
                        if (e->n_groups >= MAX_GROUPS)
                                return -E2BIG;
                        g = &e->groups[e->n_groups++];
                        g->tier = m->tier;
                        g->interval_us = iv;
                }
                if (g->n >= MAX_GROUP_FIELDS)
                        return -E2BIG;
                g->fields[g->n++] = m->id;
        }
        return 0;
}

static uint32_t samples_for(const sampler *e, int64_t interval_us)
{
        /* Enough samples to cover max_age at this interval, capped by max_samples. */
        int64_t need = interval_us > 0 ? e->opt.keep_max_age_us / interval_us + 1 : 1;

        if (need > (int64_t)e->opt.keep_max_samples)
                need = e->opt.keep_max_samples;
        return need < 2 ? 2 : (uint32_t)need;
}

/* Identity + static fields. Called at start and on re-attach (fast thread). */
static int read_static(sampler *e, unsigned idx)
{
        field_value vals[MAX_GROUP_FIELDS];
        gpu_identity id;
        int r;

        r = backend_device_info(e->opt.backend, idx, &id);
        if (r < 0)
                return r;
        r = backend_sample(e->opt.backend, idx, e->static_fields, e->n_static, vals);
        if (r < 0)
                return r;
        push(e, e->static_group[idx], e->now_real(), vals);
        pthread_mutex_lock(&e->lock);
        e->gpus[idx].id = id;
        e->gpus[idx].up = true;
        e->gpus[idx].lost_since_us = 0;
        e->gpus[idx].last_seen_us = time_real_us();
        e->gpus[idx].attaches++;
        pthread_mutex_unlock(&e->lock);
        return 0;
}

static void sampler_unmapp(sampler **p)
{
        if (*p)
                sparse_free(*p, sizeof(**p));
}

int sampler_new(const sampler_options *opt, sampler **ret)
{
        /* Sized for SAMPLER_MAX_GPUS; only the GPUs found are written (common/sparse.h). */
        __attribute__((cleanup(sampler_unmapp))) sampler *e = sparse_zalloc(sizeof(*e));
        pthread_condattr_t ca;
        unsigned count = 0;
        int r;

        if (!e)
                return -ENOMEM;
        e->opt = *opt;
        e->now_real = opt->clock_real_us ? opt->clock_real_us : time_real_us;
        e->wd_stop = -1;
        for (int t = 0; t < TIER_COUNT; t++)
                e->wd_timer[t] = -1;
        if (e->opt.reattach_us <= 0)
                e->opt.reattach_us = 5 * USEC_PER_SEC;
        pthread_mutex_init(&e->lock, NULL);
        pthread_mutex_init(&e->wait_lock, NULL);
        pthread_mutex_init(&e->wd_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->wait_cond, &ca);
        pthread_cond_init(&e->wd_cond, &ca);
        pthread_condattr_destroy(&ca);

        backend_versions(opt->backend, e->driver, sizeof(e->driver), e->nvml, sizeof(e->nvml));
        r = backend_device_count(opt->backend, &count);
        if (r < 0)
                return r;
        e->n_gpus = MIN(count, SAMPLER_MAX_GPUS);
        r = build_groups(e);
        if (r < 0)
                return r;
        for (size_t k = 0; k < opt->n_overrides; k++)
                if (opt->overrides[k].interval_us > 0 &&
                    field_is_profiling(opt->overrides[k].field_id))
                        atomic_fetch_or(&e->prof_pin[opt->overrides[k].field_id - FIELD_PROF_FIRST],
                                        (uint8_t)SAMPLER_PIN_CONFIG);
        e->stats.tier[TIER_FAST].interval_us = opt->fast_us;
        e->stats.tier[TIER_SLOW].interval_us = opt->slow_us;
        for (int t = 0; t < TIER_COUNT; t++) {
                e->stretch[t] = 1.0;
                e->stats.tier[t].stretch = 1.0;
                e->stats.tier[t].configured_us = e->stats.tier[t].interval_us;
        }

        for (unsigned i = 0; i < e->n_gpus; i++) {
                static const uint16_t ev_fields[] = {FLD_XID_ERRORS, FLD_XID_COUNT};
                field_value zero[2] = {{.status = 0, .i = 0}, {.status = 0, .i = 0}};

                e->gpus[i].index = i;
                e->gpus[i].id.minor = -1;
                r = cache_group_add(opt->cache, i, e->static_fields, e->n_static, 4, INT64_MAX / 2);
                if (r < 0)
                        return r;
                e->static_group[i] = r;
                r = cache_group_add(opt->cache, i, ev_fields, 2, 1024, opt->keep_max_age_us);
                if (r < 0)
                        return r;
                e->event_group[i] = r;
                push(e, r, e->now_real(), zero);
                for (size_t k = 0; k < e->n_groups; k++) {
                        sched_group *g = &e->groups[k];
                        r = cache_group_add(opt->cache, i, g->fields, g->n,
                                            samples_for(e, g->interval_us), opt->keep_max_age_us);
                        if (r < 0)
                                return r;
                        g->cache_group[i] = r;
                }
                r = read_static(e, i);
                if (r < 0) {
                        log_warn("sampler", "GPU %u does not answer at start: %s", i, strerror(-r));
                        e->gpus[i].lost_since_us = time_real_us();
                }
        }
        *ret = TAKE_PTR(e);
        return 0;
}

/* Sleep until the monotonic deadline (INT64_MAX: none) or until stop is requested. Returns false
 * when stopping. */
static bool wait_until(sampler *e, int64_t deadline)
{
        struct timespec ts = {.tv_sec = deadline / USEC_PER_SEC,
                              .tv_nsec = (deadline % USEC_PER_SEC) * 1000};

        pthread_mutex_lock(&e->wait_lock);
        if (deadline == INT64_MAX) /* nothing due: only stop ends the wait */
                while (!atomic_load(&e->stopping))
                        pthread_cond_wait(&e->wait_cond, &e->wait_lock);
        while (!atomic_load(&e->stopping) && time_mono_us() < deadline)
                if (pthread_cond_timedwait(&e->wait_cond, &e->wait_lock, &ts) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&e->wait_lock);
        return !atomic_load(&e->stopping);
}

static void mark_lost(sampler *e, unsigned idx)
{
        bool was_up;

        pthread_mutex_lock(&e->lock);
        was_up = e->gpus[idx].up;
        e->gpus[idx].up = false;
        e->next_reattach[idx] = time_mono_us() + e->opt.reattach_us;
        if (was_up)
                e->gpus[idx].lost_since_us = time_real_us();
        pthread_mutex_unlock(&e->lock);
        if (was_up)
                log_error("sampler", "GPU %u ('%s') stopped answering: marked lost", idx,
                          e->gpus[idx].id.uuid);
}

static bool gpu_up(sampler *e, unsigned idx)
{
        bool up;

        pthread_mutex_lock(&e->lock);
        up = e->gpus[idx].up;
        pthread_mutex_unlock(&e->lock);
        return up;
}

/* Try the lost GPUs whose re-attach is due. Returns the monotonic usec of the next try, INT64_MAX
 * when no GPU is lost (the fast tier then sleeps until its next sweep only). */
static int64_t try_reattach(sampler *e, int64_t now_mono)
{
        int64_t next = INT64_MAX;

        for (unsigned i = 0; i < e->n_gpus; i++) {
                bool due;

                pthread_mutex_lock(&e->lock);
                due = !e->gpus[i].up && now_mono >= e->next_reattach[i];
                if (due)
                        e->next_reattach[i] = now_mono + e->opt.reattach_us;
                if (!e->gpus[i].up)
                        next = MIN(next, e->next_reattach[i]);
                pthread_mutex_unlock(&e->lock);
                if (!due)
                        continue;
                if (backend_reattach(e->opt.backend, i) < 0)
                        continue;
                if (read_static(e, i) == 0)
                        log_info("sampler", "GPU %u ('%s') answers again: re-attached", i,
                                 e->gpus[i].id.uuid);
        }
        return next;
}

/* Arm (on) or disarm the watchdog's timer of a tier around one sweep: it fires only when the
 * sweep is still running timeout_us after it started. Tier thread; two syscalls a sweep, no
 * wake-up of the watchdog unless it fires. */
static void wd_arm(sampler *e, enum field_tier tier, bool on)
{
        struct itimerspec it = {0};
        int64_t timeout;

        if (e->wd_timer[tier] < 0)
                return;
        pthread_mutex_lock(&e->wd_lock);
        timeout = e->wd_timeout_us;
        pthread_mutex_unlock(&e->wd_lock);
        if (on && timeout <= 0)
                return;
        if (on) {
                it.it_value.tv_sec = timeout / USEC_PER_SEC;
                it.it_value.tv_nsec = (long)(timeout % USEC_PER_SEC) * 1000;
        }
        timerfd_settime(e->wd_timer[tier], 0, &it, NULL);
}

/* A call the watchdog gave up on has returned (on the abandoned thread): the GPU answers again
 * once no given-up call is left on it. */
static void stuck_call_returned(sampler *e, unsigned idx)
{
        if (atomic_fetch_sub(&e->stuck[idx], 1) != 1)
                return;
        log_info("sampler", "GPU %u ('%s'): the hung NVML call returned: responsive again", idx,
                 e->gpus[idx].id.uuid);
        pthread_mutex_lock(&e->wd_lock);
        if (e->wd_fn)
                e->wd_fn(e->wd_userdata, idx, false);
        pthread_mutex_unlock(&e->wd_lock);
}

/* ---- profiling fields read on demand ------------------------------------------------- */

static bool prof_wanted(sampler *e, uint16_t id, int64_t now_mono)
{
        size_t k;

        if (e->opt.profiling_all || !field_is_profiling(id))
                return true;
        k = id - FIELD_PROF_FIRST;
        return atomic_load(&e->prof_pin[k]) != 0 || atomic_load(&e->prof_demand[k]) > now_mono;
}

void sampler_profiling_pin(sampler *e, enum sampler_pin who, const uint16_t *ids, size_t n)
{
        bool want[FIELD_PROF_LAST - FIELD_PROF_FIRST + 1] = {false};

        for (size_t i = 0; i < n; i++)
                if (field_is_profiling(ids[i]))
                        want[ids[i] - FIELD_PROF_FIRST] = true;
        for (size_t k = 0; k < ARRAY_SIZE(want); k++) {
                if (want[k])
                        atomic_fetch_or(&e->prof_pin[k], (uint8_t)who);
                else
                        atomic_fetch_and(&e->prof_pin[k], (uint8_t)~who);
        }
}

void sampler_profiling_demand(sampler *e, uint16_t field_id)
{
        if (field_is_profiling(field_id))
                atomic_store(&e->prof_demand[field_id - FIELD_PROF_FIRST],
                             time_mono_us() + SAMPLER_DEMAND_US);
}

bool sampler_profiling_wanted(sampler *e, uint16_t field_id)
{
        if (!prof_wanted(e, field_id, time_mono_us()))
                return false;
        /* groups[] is fixed after sampler_new: no lock */
        for (size_t k = 0; k < e->n_groups; k++)
                for (size_t i = 0; i < e->groups[k].n; i++)
                        if (e->groups[k].fields[i] == field_id)
                                return true;
        return false;
}

/* The fields of g to read now: ids[0..*n) and, for each, its position in g->fields (pos). The
 * others get status -ENOENT ("not watched") in vals. With no profiling field in the request after
 * a sweep that had none, the backend is told to start a new GPM interval (prof_idle). */
static void group_request(sampler *e, const sched_group *g, unsigned gpu, uint16_t *ids,
                          uint8_t *pos, size_t *n, field_value *vals)
{
        int64_t now = time_mono_us();
        bool any_prof = false, skipped = false;

        *n = 0;
        for (size_t k = 0; k < g->n; k++) {
                if (!prof_wanted(e, g->fields[k], now)) {
                        vals[k] = (field_value){.status = -ENOENT};
                        skipped = true;
                        continue;
                }
                any_prof |= field_is_profiling(g->fields[k]);
                ids[*n] = g->fields[k];
                pos[(*n)++] = (uint8_t)k;
        }
        if (!skipped)
                return;
        if (any_prof && e->prof_idle[gpu])
                backend_gpm_restart(e->opt.backend, gpu);
        e->prof_idle[gpu] = !any_prof;
}

/* Sample one group on every GPU that answers. Returns true when the watchdog gave this thread up
 * during a call: the caller must leave the tier alone (another thread owns it) and exit. */
static bool run_group(sampler *e, sched_group *g)
{
        field_value vals[MAX_GROUP_FIELDS], got[MAX_GROUP_FIELDS];
        uint16_t ids[MAX_GROUP_FIELDS];
        uint8_t pos[MAX_GROUP_FIELDS];
        _Atomic int64_t *busy = e->busy_since[g->tier];

        for (unsigned i = 0; i < e->n_gpus; i++) {
                int64_t ts;
                bool abandoned;
                size_t n;
                int r;

                /* a GPU with a hung call is skipped until the call returns */
                if (!gpu_up(e, i) || atomic_load(&e->stuck[i]))
                        continue;
                group_request(e, g, i, ids, pos, &n, vals);
                ts = e->now_real();
                atomic_store(&busy[i], time_mono_us());
                if (n == g->n) {
                        r = backend_sample(e->opt.backend, i, g->fields, g->n, vals);
                } else {
                        r = n ? backend_sample(e->opt.backend, i, ids, n, got) : 0;
                        for (size_t k = 0; k < n; k++)
                                vals[pos[k]] = got[k];
                }
                abandoned = atomic_exchange(&busy[i], 0) == BUSY_ABANDONED;
                push(e, g->cache_group[i], ts, vals);
                if (r == -ENODEV) {
                        mark_lost(e, i);
                } else {
                        pthread_mutex_lock(&e->lock);
                        e->gpus[i].last_seen_us = ts;
                        pthread_mutex_unlock(&e->lock);
                }
                if (abandoned) {
                        stuck_call_returned(e, i);
                        return true;
                }
        }
        return false;
}

static void record_sweep(sampler *e, enum field_tier tier, int64_t start_mono, bool late)
{
        double dur = (double)(time_mono_us() - start_mono) / 1e6;
        sampler_tier_stats *t = &e->stats.tier[tier];

        pthread_mutex_lock(&e->lock);
        t->sweeps++;
        t->late += late;
        t->last_duration_s = dur;
        t->sum_duration_s += dur;
        for (int b = 0; b < ENGINE_HIST_BUCKETS; b++)
                if (dur <= sampler_hist_bounds[b])
                        t->buckets[b]++;
        t->last_sweep_us = time_real_us();
        if (tier == TIER_FAST)
                e->fast_done = true;
        else
                e->slow_done = true;
        pthread_mutex_unlock(&e->lock);
}

/* Adaptive collection (engine.h): called after each sweep of a FAST or SLOW tier on its thread.
 * Stretch after two sweeps in a row over budget, to what the last sweep needs plus 25 %; shrink
 * (at most halving) after three sweeps in a row under half the budget. No allocation. */
static void adapt(sampler *e, enum field_tier tier, double dur_s)
{
        const sampler_options *o = &e->opt;
        double base = (double)(tier == TIER_FAST ? o->fast_us : o->slow_us) / 1e6;
        double cur = e->stretch[tier], share = o->adaptive.max_share, next = cur, need;
        double max_stretch = o->adaptive.max_stretch;
        char ms[32], iv[32];

        if (!o->adaptive.enabled || base <= 0 || share <= 0 || max_stretch <= 1.0)
                return;
        need = dur_s / (share * base);
        if (dur_s > share * base * cur) {
                e->under[tier] = 0;
                if (++e->over[tier] >= 2 && cur < max_stretch)
                        next = MIN(max_stretch, MAX(need * 1.25, cur * 1.25));
        } else if (dur_s < 0.5 * share * base * cur && cur > 1.0) {
                e->over[tier] = 0;
                if (++e->under[tier] >= 3)
                        next = MAX(1.0, MAX(need * 1.25, cur / 2));
        } else {
                e->over[tier] = e->under[tier] = 0;
        }
        if (next < 1.05)
                next = 1.0;
        if (next == cur)
                return;
        e->over[tier] = e->under[tier] = 0;
        e->stretch[tier] = next;
        pthread_mutex_lock(&e->lock);
        e->stats.tier[tier].stretch = next;
        e->stats.tier[tier].interval_us =
            (int64_t)((double)e->stats.tier[tier].configured_us * next);
        if (next > 1.0 && !e->stats.tier[tier].stretched_since_us)
                e->stats.tier[tier].stretched_since_us = time_real_us();
        if (next == 1.0)
                e->stats.tier[tier].stretched_since_us = 0;
        pthread_mutex_unlock(&e->lock);
        snprintf(ms, sizeof(ms), "%.1f", dur_s * 1e3);
        time_format_duration((int64_t)(base * next * 1e6), iv, sizeof(iv));
        if (next > cur)
                log_msgf(LOG_LVL_WARN, "sampler",
                         (log_field[]){{"tier", tier == TIER_FAST ? "fast" : "slow"}}, 1,
                         "%s tier sweeps take %s ms, over %.0f%% of the interval: stretching "
                         "the interval to %s (x%.2f)",
                         tier == TIER_FAST ? "fast" : "slow", ms, share * 100, iv, next);
        else if (next == 1.0)
                log_msgf(LOG_LVL_INFO, "sampler",
                         (log_field[]){{"tier", tier == TIER_FAST ? "fast" : "slow"}}, 1,
                         "%s tier sweeps take %s ms again: back to the configured interval %s",
                         tier == TIER_FAST ? "fast" : "slow", ms, iv);
        else
                log_msgf(LOG_LVL_INFO, "sampler",
                         (log_field[]){{"tier", tier == TIER_FAST ? "fast" : "slow"}}, 1,
                         "%s tier sweeps take %s ms: shrinking the interval to %s (x%.2f)",
                         tier == TIER_FAST ? "fast" : "slow", ms, iv, next);
}

static void tier_loop(sampler *e, enum field_tier tier)
{
        int64_t now = time_mono_us();
        bool any_group = false;

        for (size_t k = 0; k < e->n_groups; k++)
                if (e->groups[k].tier == tier) {
                        e->groups[k].next_due = now;
                        any_group = true;
                }
        if (!any_group) {
                /* Nothing to collect on this tier: it is trivially complete. */
                pthread_mutex_lock(&e->lock);
                if (tier == TIER_FAST)
                        e->fast_done = true;
                else
                        e->slow_done = true;
                pthread_mutex_unlock(&e->lock);
        }

        while (!atomic_load(&e->stopping)) {
                int64_t start = time_mono_us(), next = INT64_MAX, reattach = INT64_MAX;
                bool ran = false, late = false;

                if (tier == TIER_FAST)
                        reattach = try_reattach(e, start);
                for (size_t k = 0; k < e->n_groups; k++) {
                        sched_group *g = &e->groups[k];
                        if (g->tier != tier)
                                continue;
                        int64_t eff = (int64_t)((double)g->interval_us * e->stretch[tier]);
                        if (start >= g->next_due) {
                                if (start - g->next_due > eff / 2)
                                        late = true;
                                if (!ran)
                                        wd_arm(e, tier, true);
                                if (run_group(e, g))
                                        return; /* given up by the watchdog: not ours now */
                                ran = true;
                                g->next_due += eff;
                                if (g->next_due <= start)
                                        g->next_due = start + eff;
                        }
                        next = MIN(next, g->next_due);
                }
                if (ran) {
                        wd_arm(e, tier, false);
                        record_sweep(e, tier, start, late);
                        adapt(e, tier, (double)(time_mono_us() - start) / 1e6);
                        /* "sweep done": the consumers' only trigger */
                        if (e->opt.on_sweep)
                                e->opt.on_sweep(e->opt.userdata, tier);
                }
                /* Sleep until the next group is due, or a lost GPU's re-attach (fast tier);
                 * with neither, until stop. */
                if (!wait_until(e, MIN(next, reattach)))
                        break;
        }
}

/* Whether the calling thread still owns the tier (false once the watchdog replaced it). */
static bool owns_tier(sampler *e, enum field_tier tier)
{
        bool own;

        pthread_mutex_lock(&e->wd_lock);
        own = pthread_equal(e->tier_thread[tier], pthread_self());
        pthread_mutex_unlock(&e->wd_lock);
        return own;
}

static void tier_main(sampler *e, enum field_tier tier)
{
        tier_loop(e, tier);
        if (!owns_tier(e, tier)) {
                /* abandoned and detached: tell sampler_stop this thread is gone */
                pthread_mutex_lock(&e->wd_lock);
                e->abandoned--;
                pthread_cond_broadcast(&e->wd_cond);
                pthread_mutex_unlock(&e->wd_lock);
        }
}

static void *fast_main(void *arg)
{
        pthread_setname_np(pthread_self(), "vg-fast");
        tier_main(arg, TIER_FAST);
        return NULL;
}

static void *slow_main(void *arg)
{
        pthread_setname_np(pthread_self(), "vg-slow");
        tier_main(arg, TIER_SLOW);
        return NULL;
}

/* Give up the call in progress on (tier, gpu): mark the GPU stuck and start a new thread for
 * the tier; the old one is detached and exits when its call returns. Watchdog thread. */
static void abandon(sampler *e, enum field_tier tier, unsigned gpu, int64_t running_us)
{
        pthread_t fresh;
        bool first = atomic_fetch_add(&e->stuck[gpu], 1) == 0;
        int r;

        pthread_mutex_lock(&e->lock); /* progress for the systemd watchdog (vigild main loop) */
        e->stats.tier[tier].last_abandon_us = time_real_us();
        pthread_mutex_unlock(&e->lock);

        log_error("sampler",
                  "GPU %u ('%s'): an NVML call on the %s tier has not returned for %.1fs: marked "
                  "unresponsive; sampling goes on without it",
                  gpu, e->gpus[gpu].id.uuid, tier == TIER_FAST ? "fast" : "slow",
                  (double)running_us / 1e6);
        pthread_mutex_lock(&e->wd_lock);
        if (first && e->wd_fn)
                e->wd_fn(e->wd_userdata, gpu, true);
        r = pthread_create(&fresh, NULL, tier == TIER_FAST ? fast_main : slow_main, e);
        if (r) {
                /* The hung thread keeps the tier; it resumes when the call returns. */
                log_error("sampler", "failed to start a new %s tier thread: %s",
                          tier == TIER_FAST ? "fast" : "slow", strerror(r));
        } else {
                pthread_detach(e->tier_thread[tier]);
                e->tier_thread[tier] = fresh;
                e->abandoned++;
        }
        pthread_mutex_unlock(&e->wd_lock);
}

/* The watchdog sleeps in poll() until a tier's timer fires (a sweep has run for timeout_us) or
 * stop. Then every call in progress on that tier older than timeout_us is given up; for one that
 * is younger the timer is armed again for the moment it would be. Idle (sweeps shorter than the
 * timeout, the normal case) it never wakes. */
static void *watchdog_main(void *arg)
{
        sampler *e = arg;
        struct pollfd pfd[TIER_COUNT + 1];
        nfds_t n = 0;
        int tier_of[TIER_COUNT + 1];

        pthread_setname_np(pthread_self(), "vg-watchdog");
        pfd[n++] = (struct pollfd){.fd = e->wd_stop, .events = POLLIN};
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                if (e->wd_timer[t] >= 0) {
                        tier_of[n] = t;
                        pfd[n++] = (struct pollfd){.fd = e->wd_timer[t], .events = POLLIN};
                }
        while (!atomic_load(&e->stopping)) {
                if (poll(pfd, n, -1) < 0 && errno != EINTR)
                        break;
                if (atomic_load(&e->stopping) || pfd[0].revents)
                        break;
                for (nfds_t k = 1; k < n; k++) {
                        int t = tier_of[k];
                        int64_t timeout, now = time_mono_us(), rearm = INT64_MAX;
                        uint64_t fired;

                        if (!(pfd[k].revents & POLLIN) ||
                            read(pfd[k].fd, &fired, sizeof(fired)) != sizeof(fired))
                                continue;
                        pthread_mutex_lock(&e->wd_lock);
                        timeout = e->wd_timeout_us;
                        pthread_mutex_unlock(&e->wd_lock);
                        if (timeout <= 0)
                                continue;
                        for (unsigned i = 0; i < e->n_gpus; i++) {
                                int64_t since = atomic_load(&e->busy_since[t][i]);
                                if (since <= 0)
                                        continue;
                                /* the swap fails when the call returned meanwhile */
                                if (now - since >= timeout &&
                                    atomic_compare_exchange_strong(&e->busy_since[t][i], &since,
                                                                   BUSY_ABANDONED))
                                        abandon(e, (enum field_tier)t, i, now - since);
                                else if (since > 0)
                                        rearm = MIN(rearm, since + timeout);
                        }
                        if (rearm != INT64_MAX) {
                                /* a call started after the timer was armed: look again when
                                 * it would be late (a disarm racing with this only costs one
                                 * wake-up that finds nothing) */
                                int64_t left = MAX(rearm - time_mono_us(), 1);
                                struct itimerspec it = {
                                    .it_value = {.tv_sec = left / USEC_PER_SEC,
                                                 .tv_nsec = (long)(left % USEC_PER_SEC) * 1000}};
                                timerfd_settime(pfd[k].fd, 0, &it, NULL);
                        }
                }
        }
        return NULL;
}

void sampler_set_watchdog(sampler *e, int64_t timeout_us, sampler_stuck_fn fn, void *userdata)
{
        pthread_mutex_lock(&e->wd_lock);
        e->wd_timeout_us = timeout_us;
        e->wd_fn = fn;
        e->wd_userdata = userdata;
        pthread_mutex_unlock(&e->wd_lock);
}

static void record_xid(sampler *e, unsigned gpu, uint32_t code, int64_t ts)
{
        size_t n, k;
        uint64_t total;
        field_value v[2];

        pthread_mutex_lock(&e->lock);
        n = e->n_xids[gpu];
        for (k = 0; k < n && e->xids[gpu][k].code != code; k++)
                ;
        if (k == n && n < ENGINE_MAX_XID_CODES) {
                /* keep codes sorted for stable output */
                size_t pos = 0;
                while (pos < n && e->xids[gpu][pos].code < code)
                        pos++;
                memmove(&e->xids[gpu][pos + 1], &e->xids[gpu][pos],
                        (n - pos) * sizeof(sampler_xid));
                e->xids[gpu][pos] = (sampler_xid){.code = code};
                e->n_xids[gpu] = ++n;
                k = pos;
        }
        if (k < n) {
                e->xids[gpu][k].count++;
                e->xids[gpu][k].last_us = ts;
        }
        total = ++e->xid_total[gpu];
        e->stats.events++;
        pthread_mutex_unlock(&e->lock);

        v[0] = (field_value){.status = 0, .i = code};
        v[1] = (field_value){.status = 0, .i = (int64_t)total};
        push(e, e->event_group[gpu], ts, v);
}

/* The event thread: blocked in nvmlEventSetWait for up to EVENT_WAIT_MS, it wakes for an event
 * (handed to on_event, then "sweep done" of TIER_EVENT) and otherwise only when the wait ends. */
static void *event_main(void *arg)
{
        sampler *e = arg;

        pthread_setname_np(pthread_self(), "vg-events");
        while (!atomic_load(&e->stopping)) {
                backend_event ev;
                char gpu[16], xid[24];
                int r = backend_wait_event(e->opt.backend, EVENT_WAIT_MS, &ev);

                if (atomic_load(&e->stopping))
                        break; /* the wake-up of wake_event_wait, or a late event: dropped */
                if (r == -ETIMEDOUT || r == -EAGAIN)
                        continue;
                if (r < 0) {
                        /* e.g. a GPU fell off: do not spin */
                        wait_until(e, time_mono_us() + 250 * USEC_PER_MSEC);
                        continue;
                }
                if (ev.gpu >= e->n_gpus)
                        continue;
                snprintf(gpu, sizeof(gpu), "%u", ev.gpu); /* journald fields GPU, UUID, XID */
                switch (ev.kind) {
                case BEV_XID:
                        snprintf(xid, sizeof(xid), "%llu", (unsigned long long)ev.data);
                        log_fields(LOG_LVL_WARN, "events",
                                   ((log_field[]){{"gpu", gpu},
                                                  {"uuid", e->gpus[ev.gpu].id.uuid},
                                                  {"xid", xid}}),
                                   "GPU %u ('%s') reported XID %llu", ev.gpu,
                                   e->gpus[ev.gpu].id.uuid, (unsigned long long)ev.data);
                        record_xid(e, ev.gpu, (uint32_t)ev.data, ev.ts_us);
                        break;
                case BEV_ECC_DBE:
                case BEV_ECC_SBE:
                        log_fields(LOG_LVL_WARN, "events",
                                   ((log_field[]){{"gpu", gpu}, {"uuid", e->gpus[ev.gpu].id.uuid}}),
                                   "GPU %u ('%s') reported a %s ECC error", ev.gpu,
                                   e->gpus[ev.gpu].id.uuid,
                                   ev.kind == BEV_ECC_DBE ? "double-bit" : "single-bit");
                        pthread_mutex_lock(&e->lock);
                        e->stats.events++;
                        pthread_mutex_unlock(&e->lock);
                        break;
                }
                if (e->opt.on_event)
                        e->opt.on_event(e->opt.userdata, ev.gpu, ev.kind, ev.data, ev.ts_us);
                if (e->opt.on_sweep)
                        e->opt.on_sweep(e->opt.userdata, TIER_EVENT);
        }
        return NULL;
}

/* End the event thread's wait in NVML for stop. The fake NVML is woken by an event the thread
 * drops (it checks stopping first): XID 0 on GPU 0, a code the driver never reports. The real
 * NVML has no way to wake nvmlEventSetWait, so sampler_stop waits for it to return: at most
 * EVENT_WAIT_MS (docs/internals/sampler.md, "Stopping"). */
static void wake_event_wait(sampler *e)
{
        backend_injection wake = {.kind = BACKEND_INJECT_XID, .gpu = 0, .count = 0};
        char err[128];

        if (backend_is_fake(e->opt.backend))
                backend_inject(e->opt.backend, &wake, err, sizeof(err));
}

int sampler_start(sampler *e)
{
        int r;
        bool events;

        atomic_store(&e->stopping, false);
        /* Events are registered before the first sweep: once sampler_ready() says ready, an XID
         * the GPU reports is delivered (NVML drops events that come before the registration). */
        events = backend_events_start(e->opt.backend) == 0;
        /* The watchdog's timers and stop event. Without them the watchdog cannot run: sampling
         * goes on, hung calls are not given up (logged). */
        if (e->wd_stop < 0)
                e->wd_stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                if (e->wd_timer[t] < 0)
                        e->wd_timer[t] =
                            timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (e->wd_stop < 0 || e->wd_timer[TIER_FAST] < 0 || e->wd_timer[TIER_SLOW] < 0)
                log_error("sampler",
                          "failed to create the watchdog's timers: %s: hung NVML "
                          "calls will not be detected",
                          strerror(errno));
        /* under wd_lock: a thread checks that it owns its tier against tier_thread */
        pthread_mutex_lock(&e->wd_lock);
        r = pthread_create(&e->tier_thread[TIER_FAST], NULL, fast_main, e);
        if (!r) {
                r = pthread_create(&e->tier_thread[TIER_SLOW], NULL, slow_main, e);
                if (r) {
                        atomic_store(&e->stopping, true);
                        pthread_mutex_unlock(&e->wd_lock);
                        pthread_join(e->tier_thread[TIER_FAST], NULL);
                        return -r;
                }
        }
        pthread_mutex_unlock(&e->wd_lock);
        if (r)
                return -r;
        r = e->wd_stop >= 0 ? pthread_create(&e->wd_thread, NULL, watchdog_main, e) : 0;
        e->wd_running = e->wd_stop >= 0 && !r;
        if (r) {
                atomic_store(&e->stopping, true);
                pthread_join(e->tier_thread[TIER_FAST], NULL);
                pthread_join(e->tier_thread[TIER_SLOW], NULL);
                return -r;
        }
        e->started = true;
        if (events && pthread_create(&e->event_thread, NULL, event_main, e) == 0) {
                e->events_running = true;
                pthread_mutex_lock(&e->lock); /* HTTP threads read stats already */
                e->stats.events_supported = true;
                pthread_mutex_unlock(&e->lock);
        } else {
                log_info("events", "NVML events are not available: XIDs are not watched");
        }
        return 0;
}

void sampler_stop(sampler *e)
{
        if (!e || !e->started)
                return;
        pthread_mutex_lock(&e->wait_lock);
        atomic_store(&e->stopping, true);
        pthread_cond_broadcast(&e->wait_cond);
        pthread_mutex_unlock(&e->wait_lock);
        /* the watchdog first: after it, tier_thread[] no longer changes */
        if (e->wd_running) {
                uint64_t one = 1;
                if (write(e->wd_stop, &one, sizeof(one)) != sizeof(one))
                        log_error("sampler", "failed to wake the watchdog: %s", strerror(errno));
                pthread_join(e->wd_thread, NULL);
                e->wd_running = false;
        }
        pthread_join(e->tier_thread[TIER_FAST], NULL);
        pthread_join(e->tier_thread[TIER_SLOW], NULL);
        if (e->events_running) {
                wake_event_wait(e);
                pthread_join(e->event_thread, NULL);
        }
        {
                /* Threads left in a hung call exit when it returns; wait for them a while. */
                int64_t deadline = time_mono_us() + ABANDONED_WAIT_US;
                struct timespec ts = {.tv_sec = deadline / USEC_PER_SEC,
                                      .tv_nsec = (deadline % USEC_PER_SEC) * 1000};
                pthread_mutex_lock(&e->wd_lock);
                while (e->abandoned &&
                       pthread_cond_timedwait(&e->wd_cond, &e->wd_lock, &ts) != ETIMEDOUT)
                        ;
                if (e->abandoned)
                        log_error("sampler",
                                  "%u sampling threads are still blocked in an NVML call",
                                  e->abandoned);
                pthread_mutex_unlock(&e->wd_lock);
        }
        e->started = false;
        e->events_running = false;
}

sampler *sampler_free(sampler *e)
{
        if (!e)
                return NULL;
        sampler_stop(e);
        if (e->abandoned)
                return NULL; /* a hung thread still uses it: leaked on purpose (at exit) */
        pthread_mutex_destroy(&e->wd_lock);
        pthread_cond_destroy(&e->wd_cond);
        pthread_mutex_destroy(&e->lock);
        pthread_mutex_destroy(&e->wait_lock);
        pthread_cond_destroy(&e->wait_cond);
        if (e->wd_stop >= 0)
                close(e->wd_stop);
        for (int t = 0; t < TIER_COUNT; t++)
                if (e->wd_timer[t] >= 0)
                        close(e->wd_timer[t]);
        sparse_free(e, sizeof(*e));
        return NULL;
}

unsigned sampler_gpu_count(sampler *e)
{
        return e->n_gpus;
}

unsigned sampler_gpus_up(sampler *e)
{
        unsigned n = 0;

        pthread_mutex_lock(&e->lock);
        for (unsigned i = 0; i < e->n_gpus; i++)
                n += e->gpus[i].up;
        pthread_mutex_unlock(&e->lock);
        return n;
}

int sampler_gpu_get(sampler *e, unsigned idx, sampler_gpu *out)
{
        if (idx >= e->n_gpus)
                return -ENOENT;
        pthread_mutex_lock(&e->lock);
        *out = e->gpus[idx];
        pthread_mutex_unlock(&e->lock);
        out->stuck = atomic_load(&e->stuck[idx]) > 0;
        return 0;
}

int sampler_gpu_find(sampler *e, const char *id, unsigned *idx)
{
        char *end;
        unsigned long v;
        int r = -ENOENT;

        if (!id || !*id)
                return -ENOENT;
        if (id[0] >= '0' && id[0] <= '9') {
                v = strtoul(id, &end, 10);
                if (*end || v >= e->n_gpus)
                        return -ENOENT;
                *idx = (unsigned)v;
                return 0;
        }
        pthread_mutex_lock(&e->lock);
        for (unsigned i = 0; i < e->n_gpus; i++)
                if (strcmp(e->gpus[i].id.uuid, id) == 0) {
                        *idx = i;
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&e->lock);
        return r;
}

bool sampler_ready(sampler *e)
{
        bool r;

        pthread_mutex_lock(&e->lock);
        r = e->fast_done && e->slow_done;
        pthread_mutex_unlock(&e->lock);
        return r;
}

void sampler_get_stats(sampler *e, sampler_stats *out)
{
        pthread_mutex_lock(&e->lock);
        *out = e->stats;
        pthread_mutex_unlock(&e->lock);
        out->clock_steps = atomic_load(&e->clamped);
        out->push_errors = atomic_load(&e->push_errors);
}

size_t sampler_xids(sampler *e, unsigned gpu, sampler_xid *out, size_t max)
{
        size_t n;

        if (gpu >= e->n_gpus)
                return 0;
        pthread_mutex_lock(&e->lock);
        n = MIN(max, e->n_xids[gpu]);
        memcpy(out, e->xids[gpu], n * sizeof(sampler_xid));
        pthread_mutex_unlock(&e->lock);
        return n;
}

int64_t sampler_interval_of(sampler *e, uint16_t field_id)
{
        const field_meta *m = meta_of(field_id);

        if (!m)
                return 0;
        if (m->tier == TIER_STATIC || m->tier == TIER_EVENT)
                return -1;
        return field_interval(&e->opt, m) > 0 ? field_interval(&e->opt, m) : 0;
}

/* The staleness bound of m's readings for a tier stretched by stretch (e->stats under e->lock). */
static int64_t stale_bound_at(const sampler *e, const field_meta *m, double stretch)
{
        int64_t iv, bound;

        if (!m || (m->tier != TIER_FAST && m->tier != TIER_SLOW))
                return 0;
        iv = field_interval(&e->opt, m);
        if (iv <= 0)
                return 0;
        bound = (int64_t)((double)iv * (stretch >= 1.0 ? stretch : 1.0)) * SAMPLER_STALE_FACTOR;
        return MAX(bound, SAMPLER_STALE_MIN_US);
}

static int64_t stale_bound(sampler *e, const field_meta *m)
{
        double stretch = 1.0;

        if (m && (m->tier == TIER_FAST || m->tier == TIER_SLOW)) {
                pthread_mutex_lock(&e->lock);
                stretch = e->stats.tier[m->tier].stretch;
                pthread_mutex_unlock(&e->lock);
        }
        return stale_bound_at(e, m, stretch);
}

int64_t sampler_stale_after(sampler *e, uint16_t field_id)
{
        return stale_bound(e, meta_of(field_id));
}

int sampler_latest(sampler *e, unsigned gpu, uint16_t field_id, int64_t now_us,
                   sampler_reading *out)
{
        const field_meta *m = meta_of(field_id);
        sampler_reading rd = {0};
        int64_t bound;
        double stretch;
        bool up;
        int r;

        if (gpu >= e->n_gpus || !m)
                return -ENOENT;
        r = cache_latest(e->opt.cache, gpu, field_id, &rd.v, &rd.ts_us);
        if (r < 0)
                return r;
        /* a profiling field not read now (or not yet since it was asked for): not watched */
        if (rd.v.status == -ENOENT ||
            (field_is_profiling(field_id) && !prof_wanted(e, field_id, time_mono_us())))
                return -ENOENT;
        if (!now_us)
                now_us = e->now_real();
        rd.age_us = rd.ts_us ? MAX(now_us - rd.ts_us, 0) : 0;
        if (m->tier == TIER_FAST || m->tier == TIER_SLOW) {
                pthread_mutex_lock(&e->lock); /* one lock for both */
                up = e->gpus[gpu].up;
                stretch = e->stats.tier[m->tier].stretch;
                pthread_mutex_unlock(&e->lock);
                bound = stale_bound_at(e, m, stretch);
                if (!up)
                        rd.fresh = SAMPLER_LOST;
                else if (atomic_load(&e->stuck[gpu]))
                        rd.fresh = SAMPLER_UNRESPONSIVE;
                else if (bound && rd.ts_us && rd.age_us > bound)
                        rd.fresh = SAMPLER_AGED;
        }
        *out = rd;
        return 0;
}

const char *sampler_freshness_name(enum sampler_freshness f)
{
        switch (f) {
        case SAMPLER_FRESH:
                return "fresh";
        case SAMPLER_AGED:
                return "aged";
        case SAMPLER_UNRESPONSIVE:
                return "unresponsive";
        case SAMPLER_LOST:
                return "lost";
        }
        return "unknown";
}

bool sampler_tier_stretched(sampler *e, enum field_tier tier, int64_t *since_us)
{
        int64_t since = 0;

        if ((unsigned)tier < TIER_COUNT) {
                pthread_mutex_lock(&e->lock);
                since = e->stats.tier[tier].stretched_since_us;
                pthread_mutex_unlock(&e->lock);
        }
        if (since_us)
                *since_us = since;
        return since != 0;
}

void sampler_versions(sampler *e, const char **driver, const char **nvml)
{
        *driver = e->driver;
        *nvml = e->nvml;
}
