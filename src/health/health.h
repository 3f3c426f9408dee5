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
#include "health_config.h"
#include "sampler/sampler.h"

struct store;
struct anomaly;
typedef struct health health;

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
        HEALTH_ACT_DIAG = 5,
        HEALTH_ACT_COUNT = 6,
};

/* The diag policy action: start a diagnostic run of level on gpu (-1: every GPU) for incident id
 * (condition). The daemon wires it to the diag module, which health does not see. Called on the
 * policy worker; must not block for the run (it only starts it). 0 with the run's id in id, or
 * -errno with the reason in err (-EBUSY: a run is in progress). */
typedef int (*health_diag_fn)(void *userdata, int level, int gpu, uint64_t incident,
                              const char *condition, char *id, size_t idlen, char *err,
                              size_t errlen);

typedef struct health_options {
        sampler *sampler;         /* borrowed */
        cache *cache;             /* borrowed */
        backend *backend;         /* borrowed; policy mutators */
        struct store *store;      /* borrowed; NULL = incidents live in memory only */
        const char *data_dir;     /* for the disk check */
        const char *hostname;     /* label of alerts */
        const health_config *cfg; /* copied */
        health_diag_fn diag;      /* the diag policy action; NULL = refused (not available) */
        void *diag_userdata;      /* for diag */
} health_options;

int health_new(const health_options *opt, health **ret);
/* Loads open incidents and the outbox from the store, starts the health and notifier threads. */
int health_start(health *h);
void health_stop(health *h);
health *health_free(health *h);

/* Replace the configuration (a reload; main thread): thresholds and the resend interval apply at
 * the next evaluation, the policy table to the next incident the policy worker takes, the alert
 * targets and timeout to the next send (a send in progress finishes on its old target; queued
 * alerts of a target still configured stay queued). Never waits for a policy action. 0, or
 * -errno with nothing changed. */
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
/* GET /api/v1/incidents/{id}/actions: what the policies did for incident id, oldest first
 * ([{time, action, dry_run, result, detail}], from the store's health_actions; the diag action's
 * detail names the run it started). Caller owns *ret. 0, -ENOENT without a store, or -errno. */
int health_incident_actions(health *h, uint64_t id, json_t **ret);
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
