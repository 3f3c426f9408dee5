/* api-internal.h — shared between the server, the handlers and the exposition renderer: the
 * api and request structs and the handler entry points. Replies are built by reply.h only. */
#ifndef VIGIL_API_INTERNAL_H
#define VIGIL_API_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>

#include "api.h"
#include "counters.h"
#include "security/gate.h"
#include "security/tls.h"
#include "cache/snapshot.h"
#include "common/buf.h"

#define API_MAX_SEGMENTS 8

struct api {
        api_options opt;   /* copy; strings below are owned */
        char *hostname;    /* owned */
        api_label *labels; /* owned copies of extra labels */
        size_t n_labels;
        struct MHD_Daemon *tcp;      /* TCP server, NULL when off */
        struct MHD_Daemon *unix_srv; /* unix socket server, NULL when off */
        char *listen;                /* owned; "" = no TCP */
        char *socket_path;           /* owned; "" = no unix socket; unlinked at stop */
        char *addr_file;             /* owned; "" = none */
        int tcp_fd, unix_fd;         /* listening sockets we created */
        bool unix_bound;             /* socket_path exists and is ours */
        bool quiesced;               /* MHD no longer accepts; we close the listeners */
        _Atomic bool draining;       /* answer with "Connection: close" (api_drain) */
        _Atomic bool dcgm; /* dcgm naming now (opt.dcgm_naming, read without render_lock) */
        int64_t start_us;  /* realtime at api_new */
        const counter_set *counters;        /* dcgm naming: the families to export; NULL = native */
        counter_set *own_counters;          /* the built-in default set, when we loaded it */
        const counter_set *logged_counters; /* the set log_exported last described */
        _Atomic int64_t counters_checked_us; /* monotonic; last stat of the counters file */
        uint64_t counters_bad_id;            /* file id that failed to parse (reported once) */
        snapshot_slot metrics;               /* the current /metrics page, text 0.0.4 */
        snapshot_slot metrics_om;            /* the same, OpenMetrics 1.0.0 */
        snapshot_slot metrics_gz[2];       /* gzip of [text, OpenMetrics], same ts as its source */
        pthread_mutex_t gzip_lock;         /* one compression per snapshot */
        _Atomic int64_t last_sweep_us;     /* realtime of the last api_render call */
        _Atomic int64_t last_wanted_us[2]; /* realtime of the last scrape of [text, OpenMetrics] */
        _Atomic int64_t scrape_gap_us[2];  /* time between the last two scrapes of each variant */
        _Atomic int64_t sweep_gap_us;      /* time between the last two api_render calls */
        pthread_mutex_t render_lock;       /* one renderer at a time */
        buf render_buf;                    /* reused between renders (render_lock) */
        _Atomic unsigned long long requests; /* served */
        struct MHD_OptionItem tls_opts[8];   /* MHD options of the TLS listener (https.c) */
};

typedef struct request {
        api *api;
        struct MHD_Connection *conn;
        const char *method;                /* "GET", "POST", … */
        const char *path;                  /* URL path */
        const char *seg[API_MAX_SEGMENTS]; /* captured {params} */
        size_t n_seg;
        buf body;             /* request body (POST) */
        bool too_large;       /* body exceeded the cap */
        gate_req sec;         /* security: request id, principal, role (security/gate.h) */
        unsigned retry_after; /* seconds, for a 429's Retry-After; 0 = none */
        bool challenge;       /* a 401 carries WWW-Authenticate: Basic (the gate's verdict) */
        const char *route;    /* matched route pattern, for self-metrics; NULL = none */
        unsigned status;      /* HTTP status queued, for self-metrics; 0 = not yet */
        bool started;         /* the first access-handler call set the fields above */
        bool bad_target;      /* the request target as sent has %00 or a broken %-escape */
        bool close;           /* answer with "Connection: close" (a refused request) */
        unsigned ordinal; /* its place on the connection (framer_request_started), 0 = unframed */
} request;

enum MHD_Result h_metrics(request *r);
enum MHD_Result h_healthz(request *r);
enum MHD_Result h_readyz(request *r);
enum MHD_Result h_dcgm_health(request *r);
enum MHD_Result h_status(request *r);
enum MHD_Result h_gpus(request *r);
enum MHD_Result h_gpu(request *r);
enum MHD_Result h_history(request *r);
enum MHD_Result h_fields(request *r);
enum MHD_Result h_inject(request *r);
enum MHD_Result h_health(request *r);        /* h_health.c */
enum MHD_Result h_incidents(request *r);     /* h_health.c */
enum MHD_Result h_incident_ack(request *r);  /* h_health.c */
enum MHD_Result h_anomalies(request *r);     /* selfmetrics.c */
enum MHD_Result h_nvlink(request *r);        /* h_topo.c */
enum MHD_Result h_topology(request *r);      /* h_topo.c */
enum MHD_Result h_mig(request *r);           /* h_topo.c */
enum MHD_Result h_gpu_processes(request *r); /* h_workload.c */
enum MHD_Result h_processes(request *r);     /* h_workload.c */
/* h_workload.c: usec after which a workload read is stale (3 x its interval, >= 2 s). */
int64_t api_workload_stale_after(api *a);
/* expo_workload.c: owner labels appended to a GPU's label set; the workload families. */
void expo_workload_labels(api *a, buf *b, unsigned gpu);
int expo_workload_render(api *a, buf *b, bool om);
/* expo_profile.c: tell the sampler which profiling fields the exported families need
 * (sampler_profiling_pin): the set's profiling rows in dcgm naming (s != NULL), else the native
 * default profile. Call whenever the exported set changes. */
void expo_pin_profiling(const counter_set *s, sampler *smp);

/* h_health.c: an incident's action log */
enum MHD_Result h_incident_actions(request *r);

/* expo_mig.c: the MIG instances' memory, native families / samples in dcgm families. */
void expo_mig_native(api *a, buf *b, bool om);
void expo_mig_dcgm(api *a, buf *b, uint16_t field, const char *name, const buf *labels, unsigned n);
/* auth_handlers.c */
enum MHD_Result h_audit(request *r);
enum MHD_Result h_audit_verify(request *r);
enum MHD_Result h_config(request *r);
enum MHD_Result h_config_reload(request *r);
enum MHD_Result h_token_revoke(request *r);
/* h_backup.c */
enum MHD_Result h_backup_create(request *r);
enum MHD_Result h_backups(request *r);
enum MHD_Result h_keys(request *r);
enum MHD_Result h_keys_rotate(request *r);
/* h_jobs.c */
enum MHD_Result h_job_start(request *r);
enum MHD_Result h_job_stop(request *r);
enum MHD_Result h_job_get(request *r);
enum MHD_Result h_jobs_list(request *r);
/* h_diag.c */
enum MHD_Result h_diag_start(request *r);
enum MHD_Result h_diag_list(request *r);
enum MHD_Result h_diag_get(request *r);
enum MHD_Result h_diag_cancel(request *r);
/* h_gpuconfig.c */
enum MHD_Result h_gpuconfig_get(request *r);
enum MHD_Result h_gpuconfig_set(request *r);
enum MHD_Result h_gpuconfig_restore(request *r);
/* The vigil_diag_* families (h_diag.c). */
int expo_render_diag(api *a, buf *b, bool om);

/* Render the native exposition into b; om: OpenMetrics 1.0.0 instead of text 0.0.4. */
int expo_render_native(api *a, buf *b, bool om);
/* Render dcgm-exporter's families (a->counters) into b. */
int expo_render_dcgm(api *a, buf *b, bool om);
/* Escape a label value into b ("\\", "\"", "\n"). escape.c, below expo and selfmetrics. */
int expo_escape(buf *b, const char *s);

#endif
