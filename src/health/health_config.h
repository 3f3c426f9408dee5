/* health_config.h — the health module's own configuration: the health:, policies: and
 * alerting: sections of vigil.yaml as the health engine reads them. The daemon's option table
 * (src/daemon/config.c) writes the scalar keys straight into a health_config; the lists
 * (policies, Alertmanagers, webhooks) are filled in when a configuration is prepared.
 * health_new copies it; health_reconfigure applies it to a running engine. Plain data: no
 * thread rules. */
#ifndef VIGIL_HEALTH_CONFIG_H
#define VIGIL_HEALTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
        unsigned diag_level;             /* diag: level of the run, 1..3 */
        int diag_gpus;                   /* diag: 0 the incident's GPU, 1 every GPU */
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
        int64_t power_sustain_us;       /* usec a GPU may stay capped at its own power limit before
                                     power_violation opens; 0 = never */
        uint64_t max_rss_bytes;         /* bytes; 0 = do not check */
        unsigned disk_warning;          /* percent of the data dir's filesystem used */
        unsigned disk_critical;         /* percent */
        bool systems[HEALTH_SYS_COUNT]; /* per-system switch */
        const health_policy *policies;  /* borrowed during health_new; copied */
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

/* Copy src into *dst with its own arrays (free with health_config_free). 0 or -ENOMEM, *dst
 * untouched on failure. */
int health_config_copy(health_config *dst, const health_config *src);
/* Free the arrays a health_config_copy made and zero *c. */
void health_config_free(health_config *c);

#endif
