/* diag.h — GPU diagnostics in the manner of DCGM's `dcgmi diag -r 1|2|3`: level 1 deployment
 * checks (seconds), level 2 adds PCIe bandwidth/latency, a short memory test and an SM check
 * (~2 min), level 3 adds a long memory test, memory bandwidth, SM stress and targeted power
 * (~15 min, durations configurable). See docs/diagnostics.md for the tests and their thresholds.
 *
 * Two halves:
 *  - the worker (diag_worker_run) runs the tests in a process of its own (`vigil-diag --worker`):
 *    it opens NVML through the backend (read-only) and CUDA through backend/cuda.h, and writes
 *    one JSON object a line to a stream: {"event":"begin",...} before each test, then
 *    {"event":"result",...}, and {"event":"end"} last;
 *  - the supervisor (diag_supervise) starts the worker, reads those lines, kills it when a test
 *    overruns its timeout or the run is cancelled, and turns a crash, hang or cancel into failed
 *    tests. A hung kernel or a crash never takes the caller down.
 *
 * Results are per test and per GPU (gpu -1 for a whole-system check): pass / warn / fail / skip,
 * the measured value and its unit, the threshold and where it came from (a SKU spec table entry
 * or a --param), and a one-line reason. Nothing here changes a GPU setting. */
#ifndef VIGIL_DIAG_H
#define VIGIL_DIAG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define DIAG_MAX_GPUS   64
#define DIAG_MAX_PARAMS 32

enum diag_verdict {
        DIAG_PASS = 0,
        DIAG_SKIP = 1,
        DIAG_WARN = 2,
        DIAG_FAIL = 3,
};

const char *diag_verdict_name(enum diag_verdict v); /* "pass", "skip", "warn", "fail" */
int diag_verdict_parse(const char *s);              /* the verdict, or -EINVAL */

typedef struct diag_opts {
        int level;                           /* 1, 2 or 3 */
        unsigned gpus[DIAG_MAX_GPUS];        /* NVML indexes to test */
        size_t ngpus;                        /* 0 = every GPU */
        const char *params[DIAG_MAX_PARAMS]; /* "test.key=value", borrowed */
        size_t nparams;                      /* entries in params */
        const char *config[DIAG_MAX_PARAMS]; /* the same from the daemon's diag: section; a
                                                params entry wins; borrowed */
        size_t nconfig;                      /* entries in config */
        bool force;                          /* run on GPUs with compute processes */
        const char *nvml_lib;                /* NULL = libnvidia-ml.so.1 */
        bool simulate;                       /* fake NVML (and fake CUDA unless cuda_lib is set) */
        const char *scenario;                /* fake scenario file, NULL = built-in */
        const char *cuda_lib;                /* NULL = libcuda.so.1, or the fake when simulating */
} diag_opts;

/* Parse "-i 0,1,3" into opts->gpus. 0 or -EINVAL / -E2BIG. */
int diag_parse_gpu_list(const char *s, diag_opts *opts);
/* Check one "test.key=value" against the known parameters. 0 or -EINVAL with a reason. */
int diag_param_check(const char *kv, char *err, size_t errlen);

/* ---- worker (child process) ---- */

/* Run the tests of opts->level and write JSON lines to out (flushed after each). Returns 0 when
 * the run itself worked (whatever the verdicts), -errno when it could not start (NVML missing).
 * Blocks for the length of the run. */
int diag_worker_run(const diag_opts *opts, FILE *out);

/* ---- supervisor ---- */

/* Called with each event object as it arrives (borrowed; json_incref to keep). Any thread that
 * calls diag_supervise. */
typedef void (*diag_event_fn)(const json_t *event, void *userdata);

typedef struct diag_supervise_opts {
        const char *worker;        /* path of the vigil-diag executable */
        const diag_opts *opts;     /* what to run */
        atomic_bool *cancel;       /* set to stop the run within about a second; may be NULL */
        diag_event_fn on_event;    /* may be NULL */
        void *userdata;            /* for on_event */
        double test_timeout_scale; /* multiplies each test's own timeout; 0 = 1 */
} diag_supervise_opts;

/* Run the worker and wait for it. Returns 0 with *ret set to the whole run as JSON:
 * {"level", "result" (worst verdict), "status" ("completed", "cancelled", "failed"),
 *  "reason", "results": [...], "started", "finished", "gpus": [...]}; or -errno when the worker
 * could not be started. Caller owns *ret. Blocks. */
int diag_supervise(const diag_supervise_opts *so, json_t **ret);

/* The path of vigil-diag next to the running executable (/proc/self/exe's directory, then
 * ../libexec/vigil); into buf. 0 or -ENOENT. */
int diag_find_worker(char *buf, size_t len);

#endif
