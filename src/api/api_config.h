/* api_config.h — the api module's own configuration: the metrics: and http: sections of
 * vigil.yaml (docs/configuration.md) as the daemon's option table (src/daemon/config.c) writes
 * them. Strings and arrays are owned by whoever owns the struct (the daemon's configuration).
 * Plain data: no thread rules. */
#ifndef VIGIL_API_CONFIG_H
#define VIGIL_API_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum metrics_naming {
        METRICS_NAMING_VIGIL = 0, /* native vigil_* families */
        METRICS_NAMING_DCGM = 1,  /* dcgm-exporter DCGM_FI_* families and labels */
};

/* Which dcgm-exporter the dcgm naming matches where its releases differ. */
enum dcgm_exporter_compat {
        DCGM_COMPAT_4_5 = 0,  /* released 4.5.x: host label "Hostname" */
        DCGM_COMPAT_MAIN = 1, /* its main branch (after #655): host label "hostname" */
};

/* One metrics.extra_labels entry. */
typedef struct metrics_label {
        char *name;  /* Prometheus label name, validated */
        char *value; /* label value, ${VAR} expanded */
} metrics_label;

typedef struct metrics_config {
        enum metrics_naming naming;            /* family and label naming */
        char *counters_csv;                    /* dcgm-exporter counters CSV path; "" = none */
        metrics_label *extra_labels;           /* added to every series, in file order */
        size_t n_extra_labels;                 /* entries in extra_labels */
        char *hostname;                        /* hostname label; "" = gethostname() */
        enum dcgm_exporter_compat dcgm_compat; /* metrics.dcgm_exporter_compat */
} metrics_config;

typedef struct http_config {
        unsigned max_connections;        /* connections (1..10000) */
        unsigned max_connections_per_ip; /* connections per client address (1..10000) */
        int64_t connection_timeout_us;   /* usec; idle connection timeout (1s..10m) */
        unsigned threads;                /* HTTP worker threads (1..64) */
        unsigned max_request_body;       /* bytes (1024..16777216) */
} http_config;

#endif
