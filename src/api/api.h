/* api.h — the HTTP face of vigild: Prometheus /metrics (a pre-rendered snapshot), health probes
 * and the JSON REST API, on TCP and on a unix socket, served by libmicrohttpd's epoll thread pool.
 * Nothing here calls NVML: handlers read the engine's and cache's copies. */
#ifndef VIGIL_API_H
#define VIGIL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"
#include "backend/backend.h"
#include "cache/cache.h"
#include "sampler/sampler.h"

typedef struct api api;
struct counter_set;

typedef struct api_label {
        const char *name;  /* Prometheus label name */
        const char *value; /* raw value; escaped when rendered */
} api_label;

typedef struct api_options {
        sampler *sampler;              /* borrowed */
        cache *cache;                  /* borrowed */
        backend *backend;              /* borrowed; for injection */
        struct health *health;         /* borrowed; /api/v1/health, incidents; NULL = off */
        const char *listen;            /* "ADDR:PORT", "" or NULL = no TCP listener */
        const char *socket_path;       /* unix socket path, "" or NULL = none */
        const char *addr_file;         /* where to write the bound URL, may be NULL */
        const char *hostname;          /* value of the hostname label */
        const api_label *extra_labels; /* added to every per-GPU series */
        /* dcgm-exporter naming: DCGM_FI_* families and labels. counters (borrowed, must outlive
         * the api) selects the families; NULL with dcgm_naming = dcgm-exporter's default set.
         * counters set without dcgm_naming also selects dcgm naming. */
        bool dcgm_naming;
        const struct counter_set *counters;
        /* dcgm naming's host label: "Hostname" (released dcgm-exporter 4.5) or "hostname" (its
         * main branch); static storage; NULL = "Hostname". */
        const char *dcgm_host_label;
        size_t n_extra_labels;
        unsigned threads;         /* libmicrohttpd thread pool size */
        unsigned max_connections; /* total */
        unsigned max_per_ip;      /* per client address (TCP) */
        unsigned timeout_s;       /* idle connection timeout */
        size_t max_body;          /* request body cap, bytes */
        bool simulated;           /* running on the fake NVML */
        struct anomaly *anomaly;  /* borrowed; anomaly gauges and /api/v1/anomalies; may be NULL */
        struct auth_gate *gate;   /* borrowed; security gate (security/gate.h), NULL = none */
        struct tls_ctx
            *tls; /* borrowed; HTTPS on the TCP listener (security/tls.h), NULL = plain */
        /* Effective configuration for /api/v1/status; called on an HTTP thread. */
        json_t *(*config_json)(void *userdata);
        /* POST /api/v1/config/reload: run a reload and answer its outcome (*status: 200 applied,
         * 400 refused); called on an HTTP thread, blocks until done. NULL = send SIGHUP, 202. */
        json_t *(*config_reload)(void *userdata, unsigned *status);
        void *userdata;
        /* Takeover (zero-downtime upgrade): listening sockets inherited from the previous vigild,
         * served instead of binding listen / socket_path. 0 = bind our own. Owned by the api. */
        int inherit_tcp_fd;
        int inherit_unix_fd;
        /* Durable state (store.h), borrowed; NULL = none. backup: backups and keys (service.h),
         * borrowed; NULL = the backup and keys routes answer 503. */
        store *store;
        struct backup_service *backup;
        /* Diagnostic runs (diag/service.h), borrowed; NULL = the diag routes answer 503. */
        struct diag_service *diag;
        /* Processes per GPU and their owners (workload/workload.h), borrowed; NULL = the process
         * routes answer 503 and no workload labels or families. */
        struct workload *workload;
        bool workload_pod_labels;      /* pod, namespace, container on GPU series */
        bool workload_pod_uid;         /* and pod_uid */
        bool workload_hpc_job;         /* hpc_job on GPU series */
        bool workload_process_metrics; /* vigil_gpu_process_* families */
        unsigned workload_max_series;  /* per-process series per family, all GPUs */
        /* GPU configuration (health/gpuconfig.h), borrowed; NULL = the config routes answer 503. */
        struct gpuconfig *gpuconfig;
        /* Job statistics (workload/jobs.h), borrowed; NULL = the job routes answer 503. */
        struct jobs *jobs;
} api_options;

/* Caller owns *ret. Copies what it needs from opt except the borrowed pointers. */
int api_new(const api_options *opt, api **ret);
/* Bind and start serving. On success writes the TCP URL ("http://127.0.0.1:5555") into url
 * (empty when TCP is off). Errors name the address: "cannot listen on '…': address in use". */
int api_start(api *a, char *url, size_t urllen, char *err, size_t errlen);
/* Render the /metrics snapshots (text 0.0.4 and OpenMetrics) from the current cache and engine
 * state. Any thread; serialised. */
void api_render(api *a);
/* Replace the exported families and labels (a reload; main thread): counters (borrowed, must
 * outlive the api or the next call) selects dcgm-exporter's families; NULL with dcgm_naming =
 * dcgm-exporter's default set; NULL without = native names. labels are copied. The next render
 * uses them; a scrape before the next sweep renders again. The previous counters are no longer
 * read when this returns. 0 or -ENOMEM (nothing changed). */
int api_set_metrics(api *a, const struct counter_set *counters, bool dcgm_naming,
                    const api_label *labels, size_t n_labels);
void api_stop(api *a);
api *api_free(api *a);
/* The listening sockets (-1 when off), borrowed, e.g. to hand to a successor vigild. */
void api_listen_fds(api *a, int *tcp_fd, int *unix_fd);
/* Stop accepting (the listening sockets stay open until api_stop, so a successor holding them
 * keeps accepting), answer every further request with "Connection: close", and wait up to
 * timeout_us for the open connections to finish. Returns how many are still open. */
unsigned api_drain(api *a, int64_t timeout_us);
/* A successor serves the unix socket path now: api_stop must not unlink it. */
void api_handed_over(api *a);

#endif
