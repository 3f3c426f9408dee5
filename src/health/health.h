/* health.h — the health and fault engine: DCGM-style health watches (one declarative rule table,
 * rules.def), XID classification, host and self checks, incidents with a lifecycle (open →
 * acknowledged → resolved), policy actions and notifications (Alertmanager v2, webhooks) through a
 * durable outbox. It reads the cache and the engine's GPU registry; it never calls NVML itself
 * except through the guarded backend mutators of a policy action.
 *
 * Threads: health_new/start/stop/free from the owner (main). health_on_sweep() and
 * health_on_event() from the sampler's threads: they only mark work and signal, never block on
 * I/O. health_on_sweep, called on the sampler's "sweep done" event, is what makes the health
 * thread evaluate: it has no timer of its own (resolve timers and host checks advance on the
 * sweeps). Readers (health_json, health_incidents_json, health_render_metrics, health_ack) from
 * any thread; they copy out under the incident store's lock. Evaluation, persistence and policy
 * actions run on the health thread; sending runs on the notifier thread.
 * docs/internals/health.md has the design and the files. */
#ifndef VIGIL_HEALTH_H
#define VIGIL_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backend/backend.h"
#include "cache/cache.h"
#include "common/buf.h"
#include "sampler/sampler.h"

struct store;
struct anomaly;
typedef struct health health;

/* Health systems: DCGM's watches first, then Vigil's own. Pinned (stored and exported). */
enum health_system {
        HEALTH_SYS_PCIE = 0,
        HEALTH_SYS_NVLINK = 1,
        HEALTH_SYS_MEMORY = 2,
        HEALTH_SYS_INFOROM = 3,
        HEALTH_SYS_THERMAL = 4,
        HEALTH_SYS_POWER = 5,
        HEALTH_SYS_DRIVER = 6,
        HEALTH_SYS_GPU = 7,    /* lost, unresponsive, XIDs not mapped to a DCGM system */
        HEALTH_SYS_CLOCKS = 8, /* sustained hardware clock slowdown */
        HEALTH_SYS_HOST = 9,   /* GPU count, data-dir disk, the daemon's memory */
        HEALTH_SYS_COUNT = 10,
};

enum health_severity {
        HEALTH_PASS = 0, /* DCGM PASS (0) */
        HEALTH_WARN = 1, /* DCGM WARN (10) */
        HEALTH_FAIL = 2, /* DCGM FAIL (20) */
};

enum incident_state {
        INCIDENT_OPEN = 0,
        INCIDENT_ACKNOWLEDGED = 1,
        INCIDENT_RESOLVED = 2,
};

/* Policy actions (bit i = 1 << i). Pinned. */
enum health_action {
        HEALTH_ACT_LOG = 0,
        HEALTH_ACT_ALERT = 1,
        HEALTH_ACT_EXEC = 2,
        HEALTH_ACT_SET_POWER_LIMIT = 3,
        HEALTH_ACT_RESET_GPU = 4,
        HEALTH_ACT_COUNT = 5,
};

#define HEALTH_MAX_POLICIES  64
#define HEALTH_MAX_TARGETS   16   /* Alertmanagers + webhooks */
#define HEALTH_MAX_INCIDENTS 1024 /* incidents kept in memory (open ones first) */
#define HEALTH_URL_MAX       1024
#define HEALTH_COND_MAX      48

typedef struct health_policy {
        char condition[HEALTH_COND_MAX]; /* rule name ("temperature"), incident condition
                                            ("xid_79"), "xid", a severity ("critical",
                                            "warning") or "*" */
        unsigned actions;                /* bitmask of 1 << enum health_action */
        char exec[HEALTH_URL_MAX];       /* exec: command run with sh -c, incident JSON on stdin */
        int64_t exec_timeout_us;         /* usec; exec is killed after this */
        unsigned power_limit_percent;    /* set_power_limit: percent of the default limit */
        bool dry_run;                    /* record what would be done, do nothing */
        bool allow_reset_on_real_gpu;    /* reset_gpu may run nvidia-smi on a real GPU */
        unsigned rate_count;             /* at most rate_count runs per (policy, GPU) ... */
        int64_t rate_window_us;          /* ... per this window, usec */
} health_policy;

typedef struct health_webhook {
        char url[HEALTH_URL_MAX]; /* http(s) URL */
        char secret[256];         /* HMAC-SHA256 key; "" = unsigned */
} health_webhook;

/* The health, policies and alerting sections of the configuration, as health needs them.
 * health_new copies it. */
typedef struct health_config {
        bool enabled;                 /* evaluate rules at all */
        unsigned expected_gpus;       /* GPUs the node should have; 0 = do not check */
        unsigned temp_warning;        /* C; GPU_TEMP at or above: warning */
        unsigned temp_critical;       /* C; at or above: critical */
        unsigned temp_hysteresis;     /* C; clears only below threshold - hysteresis */
        int64_t resolve_after_us;     /* usec a condition must stay clear to resolve */
        int64_t xid_hold_us;          /* usec an XID keeps its condition active */
        int64_t nvml_call_timeout_us; /* usec; a sample call longer marks the GPU unresponsive */
        int64_t collection_stretched_after_us; /* usec a tier may stay stretched before
                                                  collection_slow opens; 0 = never */
        int64_t throttle_sustain_us;           /* usec a HW slowdown must last to count */
        uint64_t max_rss_bytes;                /* bytes; 0 = do not check */
        unsigned disk_warning;                 /* percent of the data dir's filesystem used */
        unsigned disk_critical;                /* percent */
        bool systems[HEALTH_SYS_COUNT];        /* per-system switch */
        const health_policy *policies;         /* borrowed during health_new; copied */
        size_t n_policies;
        const char *const *alertmanagers; /* base URLs ("http://am:9093"); copied */
        size_t n_alertmanagers;
        const health_webhook *webhooks; /* copied */
        size_t n_webhooks;
        int64_t resend_interval_us; /* usec between re-sends of an active alert */
        int64_t alert_timeout_us;   /* usec per HTTP attempt */
} health_config;

/* Defaults as documented in docs/configuration.md. */
void health_config_defaults(health_config *c);

typedef struct health_options {
        sampler *sampler;         /* borrowed */
        cache *cache;             /* borrowed */
        backend *backend;         /* borrowed; policy mutators */
        struct store *store;      /* borrowed; NULL = incidents live in memory only */
        const char *data_dir;     /* for the disk check */
        const char *hostname;     /* label of alerts */
        const health_config *cfg; /* copied */
} health_options;

int health_new(const health_options *opt, health **ret);
/* Loads open incidents and the outbox from the store, starts the health and notifier threads. */
int health_start(health *h);
void health_stop(health *h);
health *health_free(health *h);

/* Replace the configuration (SIGHUP). Thresholds apply at the next evaluation. */
int health_reconfigure(health *h, const health_config *cfg);

/* Sampler hooks (any sampler thread; never block). health_on_sweep: "sweep done" of tier (FAST,
 * SLOW, EVENT): asks for one evaluation. */
void health_on_sweep(health *h, enum field_tier tier);
void health_on_event(health *h, unsigned gpu, unsigned kind, uint64_t data, int64_t ts_us);

/* The engine's watchdog hook: a sample call on gpu has hung (on) or returned (off). Any thread;
 * never blocks. health_new registers it with sampler_set_watchdog. */
void health_set_unresponsive(health *h, unsigned gpu, bool on);
/* Subscribe to the anomaly detector (anomaly_set_listener): an anomaly that opens opens an
 * incident anomaly_baseline_<FIELD> / anomaly_peer_<FIELD> (warning) on its GPU, closing it
 * starts the resolve_after timer. a may be NULL. The subscription ends in health_free (or with
 * another call). */
void health_watch_anomalies(health *h, struct anomaly *a);

/* Evaluate now, on the calling thread (tests, and the health thread). */
void health_eval(health *h);

/* GET /api/v1/health. Caller owns the result; NULL on ENOMEM. */
json_t *health_json(health *h);
/* GET /api/v1/incidents; all = include resolved. */
json_t *health_incidents_json(health *h, bool all);
/* POST /api/v1/incidents/{id}/ack. 0, -ENOENT (no such id), -EALREADY (resolved). by may be NULL.
 * *out (may be NULL) receives the incident after the change (caller owns). */
int health_ack(health *h, uint64_t id, const char *by, json_t **out);
/* Overall: HEALTH_PASS, HEALTH_WARN or HEALTH_FAIL. */
enum health_severity health_overall(health *h);

/* The health families for /metrics; dcgm: DCGM_EXP_GPU_HEALTH_STATUS instead of vigil_gpu_health.
 * gpu_labels(i) writes the label set "gpu=...,UUID=..." of GPU i (without braces) into b. */
typedef void (*health_label_fn)(void *userdata, unsigned gpu, buf *b);
int health_render_metrics(health *h, buf *b, bool dcgm, bool openmetrics, health_label_fn labels,
                          void *userdata);

const char *health_system_name(enum health_system s);
const char *health_severity_name(enum health_severity s); /* "pass", "warn", "fail" */
const char *incident_state_name(enum incident_state s);
const char *health_action_name(enum health_action a);
/* Returns the action or -EINVAL. */
int health_action_from_name(const char *s);
/* True when name is a rule name, "xid", "xid_N", a severity or "*". */
bool health_condition_valid(const char *name);

#endif
