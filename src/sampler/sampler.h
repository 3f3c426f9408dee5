/* sampler.h — the sampler: discovers GPUs, runs the tiers (static on attach, fast, slow, events)
 * on their own threads, writes every reading into the cache, re-attaches lost GPUs, and publishes
 * "sweep done" after each sweep (sampler_options.on_sweep): the one event the consumers (health,
 * anomalies, the exposition snapshot) run on; none of them polls on a timer of its own. Nothing
 * here is called from the HTTP path except the read-only getters, which copy out under a lock.
 * Idle, the sampler wakes once per tier interval per tier, plus the event thread's long wait
 * (docs/internals/sampler.md, "Wake-ups"). */
#ifndef VIGIL_SAMPLER_H
#define VIGIL_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "cache/cache.h"

typedef struct sampler sampler;

typedef struct sampler_field_interval {
        uint16_t field_id;   /* DCGM id */
        int64_t interval_us; /* 0 = do not collect */
} sampler_field_interval;

/* "Sweep done": called on the sampling thread after each sweep of a tier (TIER_FAST, TIER_SLOW),
 * after the sweep's samples are in the cache, and on the event thread after each NVML event
 * (TIER_EVENT). Sweeps come at least once per slow-tier interval (stretched by adaptive
 * collection), so a consumer may advance its timers on them. Must not block: a consumer with
 * slow work signals its own thread. */
typedef void (*sampler_sweep_fn)(void *userdata, enum field_tier tier);
/* Called on the event thread for every NVML event, before on_sweep(TIER_EVENT), with the engine's
 * lock not held: kind is enum backend_event_kind, data the XID code for BEV_XID. */
typedef void (*sampler_event_fn)(void *userdata, unsigned gpu, unsigned kind, uint64_t data,
                                 int64_t ts_us);

typedef struct sampler_options {
        backend *backend;                        /* borrowed */
        cache *cache;                            /* borrowed; created with >= sampler_max_gpus() */
        int64_t fast_us;                         /* fast tier interval */
        int64_t slow_us;                         /* slow tier interval */
        const sampler_field_interval *overrides; /* per-field intervals, may be NULL */
        size_t n_overrides;
        int64_t keep_max_age_us;   /* history kept per series */
        uint32_t keep_max_samples; /* history kept per series */
        int64_t reattach_us;       /* how often to retry a lost GPU */
        /* Adaptive collection: when a tier's sweeps take more than max_share of its interval,
         * stretch that tier's interval (up to max_stretch x configured); shrink back when the
         * cost falls (hysteresis). The event thread is never stretched. */
        struct {
                bool enabled;       /* off: intervals stay as configured */
                double max_share;   /* of the interval a sweep may take (0..1] */
                double max_stretch; /* most the interval may grow, times configured (>= 1) */
        } adaptive;
        sampler_sweep_fn on_sweep; /* may be NULL */
        sampler_event_fn on_event; /* may be NULL; health is told of XIDs at once */
        void *userdata;
        /* Wall clock of the sample timestamps (usec since epoch); NULL = time_real_us. Tests set
         * the clock back with it. */
        int64_t (*clock_real_us)(void);
        /* collection.profiling: true reads every profiling field (field_is_profiling) on each
         * slow sweep; false ("auto") reads one only while it is wanted: pinned (an override in
         * overrides[], the exposition's families: sampler_profiling_pin) or asked for by a user
         * in the last SAMPLER_DEMAND_US (sampler_profiling_demand). */
        bool profiling_all;
} sampler_options;

/* Who pins profiling fields (sampler_profiling_pin); each replaces only its own set. */
enum sampler_pin {
        SAMPLER_PIN_EXPOSITION = 1, /* families /metrics exports (native default or counters) */
        SAMPLER_PIN_CONFIG = 2,     /* collection.fields overrides (set by sampler_new) */
};

/* How long a profiling field asked for by a user (API fields=, vigil dmon -e) stays read after the
 * last time it was asked for. */
#define SAMPLER_DEMAND_US (600LL * 1000000)

#define SAMPLER_MAX_GPUS     64
#define ENGINE_MAX_XID_CODES 32
#define ENGINE_HIST_BUCKETS  12

typedef struct sampler_gpu {
        unsigned index;        /* NVML index */
        gpu_identity id;       /* identity read at the last attach */
        bool up;               /* answering */
        int64_t last_seen_us;  /* last successful sweep, usec since epoch */
        int64_t lost_since_us; /* when it stopped answering, 0 when up */
        uint64_t attaches;     /* how many times it was (re)attached */
        bool stuck;            /* a sample call has not returned within the watchdog timeout */
} sampler_gpu;

typedef struct sampler_xid {
        uint32_t code;  /* XID code */
        uint64_t count; /* events since start */
        int64_t last_us;
} sampler_xid;

typedef struct sampler_tier_stats {
        int64_t interval_us;        /* effective interval (configured x stretch) */
        int64_t configured_us;      /* configured interval */
        double stretch;             /* effective / configured; 1 = not stretched */
        int64_t stretched_since_us; /* usec since epoch the tier is stretched; 0 = not */
        uint64_t sweeps;            /* completed sweeps */
        uint64_t late;              /* sweeps that started more than half an interval late */
        double last_duration_s;     /* wall time of the last sweep */
        double sum_duration_s;      /* histogram sum */
        uint64_t buckets[ENGINE_HIST_BUCKETS]; /* cumulative counts for sampler_hist_bounds[] */
        int64_t last_sweep_us;                 /* end of the last sweep, usec since epoch */
        int64_t last_abandon_us; /* the last hung call given up (the GPU marked unresponsive,
                                    the tier goes on in a new thread), usec since epoch; 0 none */
} sampler_tier_stats;

extern const double sampler_hist_bounds[ENGINE_HIST_BUCKETS]; /* seconds, le= */

typedef struct sampler_stats {
        sampler_tier_stats tier[TIER_COUNT]; /* indexed by enum field_tier (FAST, SLOW used) */
        uint64_t events;                     /* NVML events received */
        bool events_supported;               /* the event thread is running */
        uint64_t clock_steps; /* samples stored at an earlier sample's timestamp because the wall
                                 clock went back (count; vigil_sampler_clock_steps_total) */
        uint64_t push_errors; /* samples the cache refused (count; logged) */
} sampler_stats;

unsigned sampler_max_gpus(void);
/* Discovers GPUs and reads their static fields. Caller owns *ret. */
int sampler_new(const sampler_options *opt, sampler **ret);
/* Starts the sampling and event threads. */
int sampler_start(sampler *e);
/* Stops and joins the threads; safe to call twice. */
void sampler_stop(sampler *e);
sampler *sampler_free(sampler *e);

unsigned sampler_gpu_count(sampler *e);
unsigned sampler_gpus_up(sampler *e);
/* Copy out one GPU's state. -ENOENT when idx is out of range. */
int sampler_gpu_get(sampler *e, unsigned idx, sampler_gpu *out);
/* Resolve "3" or "GPU-…" to an index; -ENOENT when unknown. */
int sampler_gpu_find(sampler *e, const char *id, unsigned *idx);
bool sampler_ready(sampler *e);

/* Profiling fields in "auto" mode (sampler_options.profiling_all false). Any thread; applied from
 * the next slow sweep. pin replaces who's set with ids[0..n) (ids that are not profiling fields
 * are ignored). demand marks field_id as asked for now: read from the next slow sweep until
 * SAMPLER_DEMAND_US after the last demand. wanted tells whether field_id is collected now or
 * from the next sweep of its tier: false for a field switched off in collection.fields, or a
 * profiling field nobody wants. */
void sampler_profiling_pin(sampler *e, enum sampler_pin who, const uint16_t *ids, size_t n);
void sampler_profiling_demand(sampler *e, uint16_t field_id);
bool sampler_profiling_wanted(sampler *e, uint16_t field_id);
void sampler_get_stats(sampler *e, sampler_stats *out);
/* Per-code XID counts of one GPU (codes ascending). Returns how many were written. */
size_t sampler_xids(sampler *e, unsigned gpu, sampler_xid *out, size_t max);
/* Effective interval of a field (0 = not collected; static fields return -1). */
int64_t sampler_interval_of(sampler *e, uint16_t field_id);
/* Adaptive collection: true while the tier runs slower than configured; *since_us (may be NULL)
 * gets when that began (usec since epoch). Any thread. For the health engine: a tier stretched
 * for long is an incident (the engine only reports it). */
bool sampler_tier_stretched(sampler *e, enum field_tier tier, int64_t *since_us);
void sampler_versions(sampler *e, const char **driver, const char **nvml);

/* Staleness, defined once here and applied by every reader that shows a reading as current
 * (/metrics in both namings, the API, and through it `vigil dmon`; the health rules skip it).
 * A reading of a sampled field (fast or slow tier) is stale when
 *   - its GPU is lost (SAMPLER_LOST) or has a sample call the watchdog gave up on
 *     (SAMPLER_UNRESPONSIVE), whatever its age; or
 *   - it is older than sampler_stale_after(): SAMPLER_STALE_FACTOR x the field's effective
 *     interval (its configured interval times its tier's adaptive stretch), at least
 *     SAMPLER_STALE_MIN_US (SAMPLER_AGED).
 * Static fields (read at attach) and event fields (XIDs) are never stale by age; static fields
 * of a lost or unresponsive GPU stay current (identity and limits do not change while it hangs).
 * docs/metrics.md, "Stale readings". */
#define SAMPLER_STALE_FACTOR 3
#define SAMPLER_STALE_MIN_US (2 * INT64_C(1000000))

enum sampler_freshness {
        SAMPLER_FRESH = 0,        /* current (or a status, e.g. not supported, that is current) */
        SAMPLER_AGED = 1,         /* older than its staleness bound */
        SAMPLER_UNRESPONSIVE = 2, /* its GPU has a hung sample call */
        SAMPLER_LOST = 3,         /* its GPU is lost */
};

typedef struct sampler_reading {
        field_value v;                /* status 0: valid; -errno otherwise (-ENODATA: none yet) */
        int64_t ts_us;                /* when sampled, usec since epoch; 0 before the first */
        int64_t age_us;               /* now - ts_us, usec (>= 0); 0 without ts */
        enum sampler_freshness fresh; /* SAMPLER_FRESH unless stale */
} sampler_reading;

/* Usec after which a reading of the field is stale by age; 0 = never by age (static, event and
 * unknown fields, fields not collected). Any thread. */
int64_t sampler_stale_after(sampler *e, uint16_t field_id);
/* The latest reading of (gpu, field) and its freshness at now_us (usec since epoch; 0 = the
 * sampler's clock). Returns 0, or -ENOENT when the GPU or the field is not watched (*out
 * untouched). Any thread; copies out under the locks, never blocks on NVML. */
int sampler_latest(sampler *e, unsigned gpu, uint16_t field_id, int64_t now_us,
                   sampler_reading *out);
/* Short name of a freshness: "fresh", "aged", "unresponsive", "lost". */
const char *sampler_freshness_name(enum sampler_freshness f);

/* Watchdog on backend_sample (docs/internals/sampler.md): a thread started by sampler_start sleeps
 * until a sweep has run for timeout_us (a one-shot timer per tier, armed only while a sweep is in
 * progress), then looks at the sample call in progress on each GPU. One running longer than
 * timeout_us is given up: its tier thread is left blocked in the call (NVML calls cannot be
 * cancelled) and a fresh thread takes the tier over, skipping that GPU until the call returns;
 * the other GPUs and the other tier keep being sampled. fn(userdata, gpu, true) is called (on the
 * watchdog thread) when a GPU gets stuck, fn(userdata, gpu, false) when its last stuck call
 * returns (on the returning thread). fn must not block and must not call back into the engine.
 * timeout_us <= 0 turns the watchdog off. Any thread; fn is never called after this returns
 * with fn NULL. */
typedef void (*sampler_stuck_fn)(void *userdata, unsigned gpu, bool stuck);
void sampler_set_watchdog(sampler *e, int64_t timeout_us, sampler_stuck_fn fn, void *userdata);

#endif /* VIGIL_SAMPLER_H */
