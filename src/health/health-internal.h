/* health-internal.h — what the files of the health module and its unit tests share. Not for other
 * modules. The files, lowest first; each calls only those above it in this list (check_cycles):
 *
 *   xid.c, rules.c   the XID catalog and the rule table: pure functions of a cache and a context
 *   incidents.c      the incident store: dedupe, lifecycle, persistence, names, JSON
 *   notifier.c       the durable outbox and its sender thread (reads incidents)
 *   policy.c         policy actions for a freshly opened incident (reads incidents)
 *   eval.c           rule evaluation and event inputs (XID, anomaly) into the incident store
 *   report.c         readers: /api/v1/health, /api/v1/incidents, the /metrics families
 *   health.c         the wiring and the health thread: evaluation on "sweep done", then
 *                    persistence, notifications and policies */
#ifndef VIGIL_HEALTH_INTERNAL_H
#define VIGIL_HEALTH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "health.h"
#include "health/anomaly.h"

enum rule_scope {
        RULE_SCOPE_GPU = 0,  /* evaluated per GPU */
        RULE_SCOPE_HOST = 1, /* evaluated once per node */
};

enum rule_state {
        RULE_CLEAR = 0,  /* the condition does not hold */
        RULE_FIRING = 1, /* the condition holds */
        RULE_SKIP = 2,   /* cannot tell (no data, not supported, GPU lost): keep the state */
        RULE_NOTED = 3,  /* holds as DCGM sees it (its system result is WARN) but is expected
                            (a GPU at its own power limit): state, no incident; clears one */
};

/* Node-wide facts gathered once per evaluation. */
typedef struct host_facts {
        unsigned gpu_count; /* GPUs discovered */
        int disk_pct;       /* percent used of the data dir's filesystem; -1 unknown */
        uint64_t rss_bytes; /* bytes; 0 unknown */
        int64_t os_read_us; /* usec since epoch disk_pct and rss_bytes were read; 0 unknown */
        int64_t stretched_since_us[TIER_COUNT]; /* usec since epoch each tier has been
                                                   stretched (adaptive collection); 0 = not */
} host_facts;

/* What counter_increase last computed for one (field, window) of one GPU: the windowed rules
 * read counters that change every slow sweep (10 s) but are evaluated every second, so the
 * history is decoded again only when a newer sample exists. */
#define RULE_MEMO_SLOTS 8
typedef struct counter_memo {
        uint16_t field;    /* DCGM id, 0 = free slot */
        int64_t window_us; /* window length */
        int64_t latest_ts; /* timestamp of the newest sample when computed */
        int64_t inc;       /* result: increase over the window */
        size_t npoints;    /* result: valid points */
} counter_memo;

typedef struct rule_ctx {
        cache *cache;             /* readings */
        unsigned gpu;             /* GPU index (GPU scope) */
        const sampler_gpu *g;     /* GPU state; NULL for HOST scope */
        bool unresponsive;        /* the watchdog flagged this GPU */
        const health_config *cfg; /* thresholds */
        const host_facts *host;   /* node facts */
        int64_t now_us;           /* realtime usec */
        bool active;              /* the condition is open and firing: clear thresholds apply */
        counter_memo *memo;       /* RULE_MEMO_SLOTS entries for this GPU, or NULL */
        sampler *sampler;         /* staleness of readings (sampler_latest); NULL: not checked */
} rule_ctx;

typedef struct rule_result {
        enum rule_state state;    /* verdict */
        enum health_severity sev; /* when FIRING */
        char detail[192];         /* what was seen, for the incident */
} rule_result;

typedef void (*rule_fn)(const rule_ctx *c, rule_result *out);

#define RULE_MAX_NEEDS 4 /* fields a rule may read (rules.def "needs") */

typedef struct health_rule {
        const char *name;               /* condition name */
        enum rule_scope scope;          /* GPU or HOST */
        enum health_system system;      /* health system */
        enum health_severity sev;       /* default severity when firing */
        const char *dcgm_code;          /* DCGM error code name */
        rule_fn eval;                   /* evaluator */
        const char *summary;            /* one line */
        const char *action;             /* recommended action */
        uint16_t needs[RULE_MAX_NEEDS]; /* DCGM ids the evaluator reads; 0 ends the list */
} health_rule;

extern const health_rule health_rules[];
extern const size_t health_n_rules;

/* Index of a rule by name, or -1. */
int health_rule_find(const char *name);
/* True when the rule can check something on gpu: every field it needs is collected there and
 * not refused (not supported, no permission). A missing first sample still counts as checked. */
bool health_rule_monitors(size_t rule, cache *ca, unsigned gpu);
/* Run one rule (tests drive this with a cache filled by hand). */
void health_rule_eval(size_t rule, const rule_ctx *c, rule_result *out);
/* Expected PCIe replays per minute for a link (DCGM's per-lane table, ceil). gen 1..6. */
unsigned health_pcie_replay_limit(int gen, int width);
/* The DCGM system an XID belongs to (HEALTH_SYS_GPU when DCGM maps it to none). */
enum health_system health_xid_system(uint32_t code);

#define HEALTH_COUNTER_WINDOW_US                                                                   \
        (60 * INT64_C(1000000)) /* delta window of counters (DCGM: 1 min) */

typedef struct incident {
        uint64_t id;                     /* pinned, from the store */
        int gpu;                         /* GPU index, -1 = node */
        char uuid[96];                   /* GPU UUID at open; "" for node */
        char condition[HEALTH_COND_MAX]; /* rule name or "xid_N" */
        int rule;                        /* index in health_rules, -1 for an XID */
        uint32_t xid;                    /* XID code for xid_N, else 0 */
        enum health_system system;       /* health system */
        enum health_severity severity;   /* highest seen while open */
        enum incident_state state;       /* lifecycle */
        char summary[256];               /* one line */
        char detail[192];                /* last reading that fired it */
        char action[512];                /* recommended action */
        char acked_by[64];               /* who acknowledged */
        int64_t first_us, last_us;       /* usec since epoch: first / last seen firing */
        int64_t acked_us, resolved_us;   /* usec since epoch, 0 = not yet */
        int64_t clear_since_us;          /* usec; when the condition stopped holding, 0 firing */
        uint64_t count;                  /* times it (re)fired or the XID was reported */
        bool active;                     /* the condition holds now */
        bool dirty;                      /* changed since the last store write */
        bool notify;                     /* send now (opened, escalated, resolved) */
        bool fresh;                      /* opened since the last policy pass */
        int64_t persisted_us;            /* last store write, usec */
        int64_t sent_us;                 /* last notification queued, usec */
} incident;

#define ANOMALY_PREFIX "anomaly_" /* conditions of anomaly incidents: anomaly_<kind>_<FIELD> */

/* ---- the incident store (incidents.c) ---- */

typedef struct incident_store {
        pthread_mutex_t lock;             /* guards the fields below; health.c guards its
                                               configuration and pending flag with it too (L) */
        incident v[HEALTH_MAX_INCIDENTS]; /* incidents kept in memory (L) */
        size_t n;                         /* used entries of v (L) */
        uint64_t next_id;                 /* id of the next incident (L) */
        struct store *store;              /* borrowed; NULL = memory only */
        uint32_t noted[SAMPLER_MAX_GPUS]; /* per GPU: 1 << system of rules RULE_NOTED at the
                                             last evaluation (L) */
} incident_store;

/* s must be zeroed memory (calloc, static): the store is ~1.3 MB of incident slots, and zeroing
 * it here again would make every one of its pages resident in an idle daemon. */
void incidents_init(incident_store *s, struct store *st);
void incidents_release(incident_store *s);
/* Load the incidents not resolved and the next id from the store (takes the lock). 0 without a
 * store; -errno from the store. */
int incidents_load(incident_store *s);
/* Write the dirty incidents (takes the lock to copy them out, writes outside it; a failed write
 * leaves them dirty for the next call). One caller at a time: the health thread, or stop. */
void incidents_persist(incident_store *s);
/* (L) The incident of (gpu, cond) that is not resolved, or NULL. gpu -1 = the node. */
incident *incidents_find_open(incident_store *s, int gpu, const char *cond);
/* (L) Open an incident (dirty, to notify, fresh for the policies); logged. NULL when the store is
 * full of open incidents. */
incident *incidents_open(incident_store *s, int gpu, const char *uuid, const char *cond, int rule,
                         enum health_system sys, enum health_severity sev, const char *summary,
                         const char *action, const char *detail, int64_t now);
/* (L) The condition holds at now (realtime usec); sev escalates, detail (may be NULL) replaces. */
void incident_holds(incident *in, enum health_severity sev, const char *detail, int64_t now);
/* (L) The condition stopped holding at now: the resolve_after timer starts. */
void incident_clears(incident *in, int64_t now);
/* (L) Resolve what has been clear for resolve_after; XIDs clear xid_hold after their last
 * report; incidents of rules switched off clear. */
void incidents_resolve(incident_store *s, const health_config *cfg, int64_t now);
/* Acknowledge (takes the lock): 0, -ENOENT, -EALREADY (resolved). *out as health_ack. */
int incidents_ack(incident_store *s, uint64_t id, const char *by, json_t **out);
#define INCIDENTS_ANY_GPU INT32_MIN
/* (L) Worst severity over the incidents not resolved of gpu (-1 = the node, INCIDENTS_ANY_GPU =
 * all) and system sys (-1 = all). */
enum health_severity incidents_worst(const incident_store *s, int gpu, int sys);

/* Copies of the incidents to hand on after an evaluation, taken under the lock. */
typedef struct incident_work {
        incident *fresh; /* opened since the last take: for the policies */
        size_t n_fresh;
        incident *send; /* to notify now (opened, escalated, resolved, or resend_us passed) */
        size_t n_send;
} incident_work;
/* (L) Fill w and mark the incidents taken (fresh cleared, notify cleared, sent at now). */
void incidents_take_work(incident_store *s, int64_t now, int64_t resend_us, incident_work *w);
void incident_work_release(incident_work *w);

/* The incident as JSON (API, webhooks, exec hooks). */
json_t *incident_json(const incident *in);
const char *health_system_dcgm(enum health_system s);      /* DCGM watch name or NULL */
const char *health_alert_severity(enum health_severity s); /* "critical" / "warning" */

/* ---- rule evaluation (eval.c) ---- */

/* The data directory's filesystem use and vigild's RSS, read at most every HOST_OS_FACTS_US:
 * a statvfs and a /proc read per fast sweep were a tenth of vigild's own CPU at 8 GPUs, for
 * rules (disk_usage, daemon_memory) about quantities that move over minutes. */
#define HOST_OS_FACTS_US (10 * INT64_C(1000000))
typedef struct host_os_facts {
        int64_t read_at_us;   /* monotonic usec of the last read; 0 = never */
        int64_t read_wall_us; /* the same moment, usec since epoch */
        int disk_pct;         /* as host_facts */
        uint64_t rss_bytes;   /* as host_facts */
} host_os_facts;

/* Fill f: the sampler's facts now, the OS facts from os when read less than HOST_OS_FACTS_US
 * before now_mono_us, else read again (into os as well). */
void health_host_facts(sampler *sa, const char *data_dir, host_os_facts *os, int64_t now_mono_us,
                       host_facts *f);

typedef struct eval_input {
        cache *cache;                          /* readings */
        sampler *sampler;                      /* GPU registry */
        const health_config *cfg;              /* thresholds, switches */
        const host_facts *host;                /* node facts of this evaluation */
        const atomic_bool *unresponsive;       /* [SAMPLER_MAX_GPUS] the watchdog's verdicts */
        counter_memo (*memo)[RULE_MEMO_SLOTS]; /* [SAMPLER_MAX_GPUS] windowed counter results */
        int64_t now_us;                        /* realtime usec */
} eval_input;

/* (L) Run every enabled rule on every GPU and the node; open, hold or clear their incidents. */
void health_eval_rules(incident_store *s, const eval_input *e);
/* (L) An XID from the driver: opens or holds its xid_N incident (INFO XIDs open none). */
void health_eval_xid(incident_store *s, const health_config *cfg, sampler *sa, unsigned gpu,
                     uint32_t code, int64_t ts);
/* (L) Open, hold or clear the incident of one anomaly event. */
void health_eval_anomaly(incident_store *s, const health_config *cfg, const anomaly_event *ev,
                         int64_t now);

/* The anomaly listener (health.c): health_eval_anomaly under the lock, then an evaluation.
 * Exposed for tests. */
void health_on_anomaly(void *userdata, const anomaly_event *ev);

/* ---- outbox and notifier (notifier.c) ---- */

typedef struct notifier notifier;
typedef struct notifier_stats {
        uint64_t depth;    /* entries waiting */
        uint64_t sent;     /* deliveries that succeeded */
        uint64_t failures; /* attempts that failed */
} notifier_stats;

int notifier_new(struct store *st, const health_config *cfg, const char *hostname, notifier **ret);
int notifier_start(notifier *n);
/* Replace the targets (Alertmanagers, webhooks) and the per-attempt timeout (a reload; main
 * thread). Pending entries of a target still configured stay queued for it; those of a removed
 * target are dropped from the outbox (logged); a send in progress finishes on the target it
 * started with. Starts the sender thread when the first target appears after notifier_start.
 * 0 or -errno. */
int notifier_set_targets(notifier *n, const health_config *cfg);
void notifier_stop(notifier *n);
notifier *notifier_free(notifier *n);
/* Queue the incident for every target (coalesced with a pending entry for the same pair);
 * persists before returning when a store is set. resend_us: the delay between two sends of an
 * active alert, at least the evaluation interval (firing alerts stay valid notifier_valid_for it
 * in Alertmanager). Health thread. */
int notifier_enqueue(notifier *n, const incident *in, int64_t resend_us);
/* How long a firing Alertmanager alert stays valid after a send (endsAt - send time), usec:
 * 4 x max(resend delay, evaluation interval), as Prometheus sets ValidUntil. */
int64_t notifier_valid_for(int64_t resend_us, int64_t eval_us);
void notifier_get_stats(notifier *n, notifier_stats *out);
/* Payloads (exposed for tests). Caller owns the result. */
json_t *notifier_am_payload(const incident *in, const char *hostname, int64_t now_us,
                            int64_t resend_us);
json_t *notifier_webhook_payload(const incident *in, const char *hostname);
/* "sha256=HEX" HMAC of body under secret into out (at least 72 bytes). */
int notifier_sign(const char *secret, const char *body, size_t len, char *out, size_t outlen);

/* ---- policies (policy.c) ---- */

typedef struct policy_runner policy_runner;
int policy_new(const health_config *cfg, backend *be, cache *ca, struct store *st,
               policy_runner **ret);
/* Stops the worker after the action in progress (the queue is dropped). */
policy_runner *policy_free(policy_runner *p);
/* Start the worker thread. Before it runs, policy_submit runs the actions on the caller. */
int policy_start(policy_runner *p);
/* Queue a copy of a freshly opened incident for the worker; never blocks on an action. 0, or
 * -ENOBUFS when the queue is full (logged). Health thread. */
int policy_submit(policy_runner *p, const incident *in, int64_t now_us);
/* Wait until the queue is empty and no action runs (tests, stop). */
void policy_drain(policy_runner *p);
/* Replace the policy table (a reload): the next incident taken sees it; an action in progress
 * finishes with the policy it started with. Any thread; never waits for an action. */
void policy_set(policy_runner *p, const health_policy *v, size_t n);
/* The diag action's way to the diag module (health_options.diag). Before policy_start. */
void policy_set_diag(policy_runner *p, health_diag_fn fn, void *userdata);
/* The action log of incident id from the store's health_actions, oldest first: [{time, action,
 * dry_run, result, detail}]. Caller owns *ret. 0, -ENOENT without a store, or -errno. */
int policy_actions_json(struct store *st, uint64_t incident_id, json_t **ret);
/* Run the policies matching a freshly opened incident on the calling thread (the worker; tests).
 * Blocks for exec hooks and resets; holds no lock meanwhile. */
void policy_run(policy_runner *p, const incident *in, int64_t now_us);
/* True when policy condition cond matches the incident. */
bool policy_matches(const char *cond, const incident *in);
uint64_t policy_actions_total(policy_runner *p);

/* ---- the engine (health.c; report.c reads it) ---- */

struct health {
        health_options opt;                                   /* copy; cfg points at cfg below */
        health_config cfg;                                    /* copy; arrays owned; inc.lock */
        char *data_dir, *hostname;                            /* owned */
        incident_store inc;                                   /* incidents; its lock is ours */
        counter_memo memo[SAMPLER_MAX_GPUS][RULE_MEMO_SLOTS]; /* windowed counter results */
        host_os_facts os_facts;                               /* last disk/RSS read (eval_lock) */
        pthread_cond_t wake; /* the health thread waits here for a kick (inc.lock) */
        bool pending;        /* a sweep or event asked for an evaluation (inc.lock) */
        bool stopping;       /* (inc.lock) */
        bool started;
        pthread_t thread;
        pthread_mutex_t eval_lock; /* one evaluation at a time */
        notifier *notifier;
        policy_runner *policies;
        uint64_t evaluations;                       /* count (inc.lock) */
        atomic_bool unresponsive[SAMPLER_MAX_GPUS]; /* set by the sampler's watchdog hook */
        anomaly *anomaly;                           /* subscribed to; NULL when none */
};

#endif
