/* service.h — diagnostic runs inside vigild: one run at a time, each supervised on a thread of
 * its own (the worker is a child process, diag.h), its progress readable while it runs, the last
 * DIAG_SERVICE_KEEP runs kept in memory. What POST/GET/DELETE /api/v1/diag and the
 * vigil_diag_* metrics read. Thread-safe: every function may be called from any thread. */
#ifndef VIGIL_DIAG_SERVICE_H
#define VIGIL_DIAG_SERVICE_H

#include <stddef.h>

#include <jansson.h>

struct store;

#define DIAG_SERVICE_KEEP 32

typedef struct diag_service diag_service;

typedef struct diag_service_opts {
        const char *worker;   /* vigil-diag; NULL = found next to this executable */
        const char *nvml_lib; /* as the daemon's backend: NULL = libnvidia-ml.so.1 */
        int simulate;         /* the daemon runs on the fake NVML: so does the worker */
        const char *scenario; /* fake scenario, NULL = built-in */
        struct store *store;  /* finished runs are kept there (table diag_runs); borrowed, must
                                 outlive the service; NULL = memory only */
} diag_service_opts;

/* Strings are copied. Caller owns *ret. 0 or -ENOMEM. */
int diag_service_new(const diag_service_opts *o, diag_service **ret);
/* Cancels a running run, waits for it (seconds at most), frees. NULL ok; returns NULL. */
diag_service *diag_service_free(diag_service *s);

/* Start a run from a request body {"level": 1-3, "gpus": [i...], "params": ["t.k=v"...],
 * "force": bool}. Returns 0 with the run's id in id (idlen bytes); -EINVAL with a reason in err
 * for a bad body; -EBUSY when a run is in progress (its id in err); -ENOENT when vigil-diag is
 * missing. */
int diag_service_start(diag_service *s, const json_t *body, char *id, size_t idlen, char *err,
                       size_t errlen);
/* A copy of run ID (see diag_supervise for the shape, plus "id" and "status" "running" while it
 * runs), from memory or, for an older run, the store. Caller owns *ret. 0 or -ENOENT. */
int diag_service_get(diag_service *s, const char *id, json_t **ret);
/* Ask run ID to stop; returns at once (GET shows "cancelled" within seconds). 0, -ENOENT, or
 * -EALREADY when it has ended. */
int diag_service_cancel(diag_service *s, const char *id);
/* {"runs": [{id, level, status, result, started, finished}...]} newest first. Caller owns. */
json_t *diag_service_list(diag_service *s);

/* For metrics: calls fn for each result of the last finished run, then returns its finish time
 * (seconds since the epoch) or 0 when no run has finished. */
double diag_service_last(diag_service *s,
                         void (*fn)(const char *test, int gpu, int verdict, void *ud), void *ud);

#endif
