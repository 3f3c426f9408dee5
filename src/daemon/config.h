/* config.h — the daemon's configuration: one YAML file (DESIGN §8) parsed into vigil_config, whose
 * sections are the modules' own options structs (log_options, health_config, security_config,
 * backup_config, metrics_config, http_config, collection_config). Every key has a default
 * (config_init); unknown keys, wrong types, duplicates and out-of-range values are refused with
 * "NAME:LINE:COL: reason". Scalar values may use ${VAR}, ${VAR:-default} and "$$". The options are
 * one declarative table in config.c: each key names its module and whether a reload applies it
 * (docs/internals/config.md); docs/configuration.md is the user reference. This module parses
 * and validates only: it opens no socket and applies nothing. Not thread-safe per object; the
 * daemon parses into a fresh struct and swaps it in. */
#ifndef VIGIL_DAEMON_CONFIG_H
#define VIGIL_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/log.h"
#include "api/api_config.h"
#include "diag/diag_config.h"
#include "health/gpuconfig.h"
#include "health/health_config.h"
#include "sampler/collection_config.h"
#include "security/security_config.h"
#include "store/backup_config.h"
#include "workload/workload_config.h"
#include "workload/jobs_config.h"

#define CONFIG_MAX_FILE_SIZE    (1024 * 1024) /* bytes; bigger files are refused */
#define CONFIG_MAX_VALUE_LEN    4096          /* bytes of one scalar after ${VAR} expansion */
#define CONFIG_MAX_EXTRA_LABELS 64            /* metrics.extra_labels entries */

/* Owns every string and array in it; release with config_release. */
typedef struct vigil_config {
        char *listen;   /* "ADDR:PORT", IPv6 as "[ADDR]:PORT"; port 0 = pick a free one */
        char *socket;   /* unix socket path; "" = no unix socket */
        char *data_dir; /* directory for the store and vigild.addr */
        struct {
                char *library; /* dlopen() name or path of libnvidia-ml */
        } nvml;
        struct {
                bool enabled;   /* load the fake NVML instead of the real one */
                char *scenario; /* scenario file; "" = built-in default scenario */
        } simulate;
        collection_config collection; /* collection: (sampler/collection_config.h) */
        metrics_config metrics;       /* metrics: (api/api_config.h) */
        http_config http;             /* http: (api/api_config.h) */
        /* logging: (docs/logging.md) in the log module's own options; file_path is owned
         * here (a char * under the const); journald is not a key (auto). */
        log_options logging;
        /* anomaly: learned per-GPU baselines and peer comparison (health/anomaly.h) */
        struct {
                bool enabled;           /* evaluate after each fast sweep */
                double k;               /* sigmas from the baseline that count as anomalous */
                int64_t sustain_us;     /* usec a deviation must last to open */
                int64_t window_us;      /* usec; EWMA time constant of the baseline */
                unsigned min_samples;   /* samples learned before judging */
                int64_t persist_us;     /* usec between writes of DATA_DIR/baselines.json */
                bool peer_enabled;      /* compare GPUs of this node with each other */
                double peer_k;          /* robust z (MAD units) that makes a peer outlier */
                unsigned peer_min_gpus; /* GPUs in a utilization band needed to compare */
                unsigned peer_band;     /* utilization band width, percent */
                bool f_gpu_temp, f_power, f_mem_temp, f_util, f_sm_clock; /* per-field switches */
        } anomaly;
        security_config security;     /* security: (security/security_config.h) */
        backup_config backup;         /* backup: (store/backup_config.h) */
        encryption_config encryption; /* security.encryption: (store/backup_config.h) */
        workload_config workload;     /* workload: (workload/workload_config.h) */
        jobs_config jobs;             /* workload.jobs: (workload/jobs_config.h) */
        /* health: (docs/health.md), in the health module's own struct; the table writes
         * its scalars and alerting.resend_interval / alerting.timeout; the list pointers stay
         * NULL here (plan.c fills them from policies and alerting below). */
        health_config health;
        health_policy *policies; /* in file order (health/health_config.h) */
        size_t n_policies;
        struct {
                char *alertmanagers;      /* comma-joined base URLs */
                health_webhook *webhooks; /* in file order (health/health_config.h) */
                size_t n_webhooks;
                metrics_label *labels; /* alerting.labels: added to every alert, in file order */
                size_t n_labels;
        } alerting;
        diag_config diag; /* diag: thresholds, durations, retention (diag/diag_config.h) */
        /* config.enforce: desired GPU settings, in file order (health/gpuconfig.h) */
        gpucfg_desired *gpu_enforce;
        size_t n_gpu_enforce;
} vigil_config;

/* The one size parser of every size key (docs/configuration.md, "Units"): "N" or "NB" bytes,
 * "NkB"/"NKB", "NMB", "NGB", "NTB" powers of 1000, "NKiB", "NMiB", "NGiB", "NTiB" powers of 1024.
 * Returns 0, -EDOM for a suffix that could mean either ("100M", "1g", "5Mi": ambiguous, refused),
 * -ERANGE on overflow or -EINVAL. *ret is untouched on failure. Same as log_parse_size(). */
int config_parse_size(const char *s, uint64_t *ret);

/* ---- the option table, as seen from outside (reload, tests, docs) ---- */

/* The module whose options struct a key configures and which applies it. */
enum config_module {
        CONFIG_MOD_DAEMON = 0, /* main.c: addresses and paths of the process itself */
        CONFIG_MOD_BACKEND,    /* backend: which NVML, simulated or real */
        CONFIG_MOD_SAMPLER,    /* sampler and cache: tiers, per-field intervals, retention */
        CONFIG_MOD_API,        /* api: HTTP limits, exposition naming, labels, counters CSV */
        CONFIG_MOD_LOG,        /* common/log: level, format, file, syslog, rate limit */
        CONFIG_MOD_HEALTH,     /* health: rules, thresholds, policies, alerting, anomalies */
        CONFIG_MOD_SECURITY,   /* security: authn, authz, network, audit, web-config, TLS */
        CONFIG_MOD_STORE,      /* store: backups and encryption at rest */
        CONFIG_MOD_DIAG,       /* diag: thresholds, durations, retention of diagnostic runs */
        CONFIG_MOD_WORKLOAD, /* workload: processes per GPU, attribution, labels, job statistics */
        CONFIG_MOD_COUNT,
};

/* When a changed key takes effect. */
enum config_apply {
        CONFIG_APPLY_RELOAD = 0,  /* SIGHUP / POST /api/v1/config/reload applies it */
        CONFIG_APPLY_RESTART = 1, /* runs with the old value until vigild restarts */
};

typedef struct config_key_info {
        const char *path;       /* dotted key path, as in the file */
        const char *type;       /* "string", "bool", "uint", "duration", "size", ... */
        const char *def;        /* default as written in the file; NULL for maps and lists */
        enum config_module mod; /* module that owns it */
        enum config_apply apply;
        bool secret; /* never shown */
} config_key_info;

/* Keys in the table (top-level keys only; list items belong to their list). */
size_t config_key_count(void);
/* Entry i (< config_key_count()); 0, or -ERANGE with *out untouched. */
int config_key_info_at(size_t i, config_key_info *out);
/* Entry by path; 0 or -ENOENT. */
int config_key_find(const char *path, config_key_info *out);
/* "daemon", "backend", "sampler", "api", "log", "health", "security", "store", "diag",
 * "workload". */
const char *config_module_name(enum config_module m);

/* Whether key i has the same value in a and b (secrets compared, never shown). */
bool config_key_equal(size_t i, const vigil_config *a, const vigil_config *b);

/* Reload support: for every restart-only key whose value differs between next (the new file)
 * and running (what the process runs), swap the two values, so next holds what keeps running
 * and running holds the new, not yet applied value. Writes up to max paths to pending and
 * returns how many keys differed (may exceed max). Reloadable keys are left as next has them. */
size_t config_keep_restart(vigil_config *next, vigil_config *running, const char **pending,
                           size_t max);
/* Like config_keep_restart for every key of module m (whatever its apply flag): when applying
 * that module's part failed, what runs stays what the configuration shows. Returns the count. */
size_t config_keep_module(vigil_config *next, vigil_config *running, enum config_module m);
/* Paths of the reloadable keys that differ between a and b (up to max; returns the count). */
size_t config_changed_reloadable(const vigil_config *a, const vigil_config *b, const char **out,
                                 size_t max);
/* The value of key i in c as JSON (secrets redacted). Caller owns the result; NULL on ENOMEM. */
json_t *config_key_json(size_t i, const vigil_config *c);

/* Fill *c with the defaults. Aborts only if a few bytes of strdup fail at start. */
void config_init(vigil_config *c);
/* Free what *c owns and zero it. NULL and a zeroed struct are fine. */
void config_release(vigil_config *c);

/* Parse YAML text (len bytes, need not be NUL-terminated); name is used in messages (the path).
 * Keys not in the text keep their defaults (not the previous values of *c).
 * On success releases the old contents of *c, replaces them and returns 0. On failure returns
 * -EINVAL (bad input), -E2BIG (text over CONFIG_MAX_FILE_SIZE) or -ENOMEM, leaves *c untouched
 * and writes "NAME:LINE:COL: reason" to err (err may be NULL). */
int config_parse(const char *text, size_t len, const char *name, vigil_config *c, char *err,
                 size_t errlen);
/* Read the file at path (at most CONFIG_MAX_FILE_SIZE bytes) and config_parse it. A read failure
 * returns -errno (-ENOENT, -EACCES, -E2BIG, ...) with "cannot read 'PATH': reason" in err. */
int config_load(const char *path, vigil_config *c, char *err, size_t errlen);

/* The effective configuration as a JSON object shaped like the YAML file; options marked secret
 * in the table show "<redacted>" (or "" when empty). Caller owns the result; NULL on ENOMEM. */
json_t *config_to_json(const vigil_config *c);

/* Split "HOST:PORT" or "[IPV6]:PORT" into host (without brackets) and port (0..65535).
 * Returns 0, -EINVAL (malformed, bad or missing port) or -ENAMETOOLONG (host does not fit in
 * hostlen). host and port are untouched on failure. Shared with vigild's --listen flag. */
int config_parse_listen(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
