/* api-internal.h — shared between the server, the handlers and the exposition renderer. */
#ifndef VIGIL_API_INTERNAL_H
#define VIGIL_API_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>

#include "api.h"
#include "counters.h"
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
        int64_t start_us;            /* realtime at api_new */
        const counter_set *counters; /* dcgm naming: the families to export; NULL = native */
        counter_set *own_counters;   /* the built-in default set, when we loaded it */
        snapshot_slot metrics;       /* the current /metrics page, text 0.0.4 */
        snapshot_slot metrics_om;    /* the same, OpenMetrics 1.0.0 */
        pthread_mutex_t render_lock; /* one renderer at a time */
        buf render_buf;              /* reused between renders (render_lock) */
        _Atomic unsigned long long requests; /* served */
};

typedef struct request {
        api *api;
        struct MHD_Connection *conn;
        const char *method;                /* "GET", "POST", … */
        const char *path;                  /* URL path */
        const char *seg[API_MAX_SEGMENTS]; /* captured {params} */
        size_t n_seg;
        buf body;       /* request body (POST) */
        bool too_large; /* body exceeded the cap */
} request;

/* Queue a JSON response; takes ownership of body. */
enum MHD_Result api_reply_json(request *r, unsigned status, json_t *body);
/* {"error":{"code":status,"message":msg}} */
enum MHD_Result api_reply_error(request *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum MHD_Result h_metrics(request *r);
enum MHD_Result h_healthz(request *r);
enum MHD_Result h_readyz(request *r);
enum MHD_Result h_status(request *r);
enum MHD_Result h_gpus(request *r);
enum MHD_Result h_gpu(request *r);
enum MHD_Result h_history(request *r);
enum MHD_Result h_fields(request *r);
enum MHD_Result h_inject(request *r);

/* Render the native exposition into b; om: OpenMetrics 1.0.0 instead of text 0.0.4. */
int expo_render_native(api *a, buf *b, bool om);
/* Render dcgm-exporter's families (a->counters) into b. */
int expo_render_dcgm(api *a, buf *b, bool om);
/* Escape a label value into b ("\\", "\"", "\n"). */
int expo_escape(buf *b, const char *s);

#endif
