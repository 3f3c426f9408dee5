/* service.h — diagnostic runs inside vigild: one run at a time, each supervised on a thread of
 * its own (the worker is a child process, diag.h), its progress readable while it runs, the last
 * DIAG_SERVICE_KEEP runs kept in memory. What POST/GET/DELETE /api/v1/diag and the
 * vigil_diag_* metrics read. Thread-safe: every function may be called from any thread. */
#ifndef VIGIL_DIAG_SERVICE_H
#define VIGIL_DIAG_SERVICE_H

#include <stddef.h>

#include <jansson.h>

#include "diag_config.h"

struct store;

#define DIAG_SERVICE_KEEP 32

typedef struct diag_service diag_service;

typedef struct diag_service_opts {
        const char *worker;        /* vigil-diag; NULL = found next to this executable */
        const char *nvml_lib;      /* as the daemon's backend: NULL = libnvidia-ml.so.1 */
        int simulate;              /* the daemon runs on the fake NVML: so does the worker */
        const char *scenario;      /* fake scenario, NULL = built-in */
        struct store *store;       /* finished runs are kept there (table diag_runs); borrowed, must
                                 outlive the service; NULL = memory only */
        const diag_config *config; /* the diag: section; copied; NULL = defaults */
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
/* The same for a run another part of the daemon starts (a policy action): origin says who and
 * why ("policy: incident 12 (xid_48)"); diag_service_start records "api". */
int diag_service_start_from(diag_service *s, const json_t *body, const char *origin, char *id,
                            size_t idlen, char *err, size_t errlen);
/* Replace the configuration (a reload): the next run takes the thresholds and durations, and the
 * retention is applied to the store now. 0 (the store's error is logged by the caller's next
 * read). Any thread. */
int diag_service_configure(diag_service *s, const diag_config *c);
/* A copy of run ID (see diag_supervise for the shape, plus "id" and "status" "running" while it
 * runs), from memory or, for an older run, the store. Caller owns *ret. 0 or -ENOENT. */
int diag_service_get(diag_service *s, const char *id, json_t **ret);
/* Ask run ID to stop; returns at once (GET shows "cancelled" within seconds). 0, -ENOENT, or
 * -EALREADY when it has ended. */
int diag_service_cancel(diag_service *s, const char *id);
/* {"runs": [{id, level, status, result, started, finished, origin}...], "total", "offset",
 * "limit"}: newest first, the run in progress and then the stored runs (the in-memory ones when
 * there is no store), rows offset..offset+limit-1. Caller owns; NULL on a store error. */
json_t *diag_service_list(diag_service *s, size_t offset, size_t limit);

/* For metrics: calls fn for each result of the last finished run, then returns its finish time
 * (seconds since the epoch) or 0 when no run has finished. */
double diag_service_last(diag_service *s,
                         void (*fn)(const char *test, int gpu, int verdict, void *ud), void *ud);

#endif
