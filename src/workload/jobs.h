/* jobs.h — job statistics, as `dcgmi stats`: per job and GPU, from its start to its end, the energy
 * used (the difference of the GPU's energy counter, never an integral of power), average and
 * maximum SM and memory utilisation, the most memory used, the highest temperature, the time
 * clocks were held down by each reason, XIDs, ECC errors and remapped rows during the job, the
 * processes seen, and the gaps in which nothing was known (GPU lost or unresponsive, vigild not
 * running). Values come from the sampler's latest readings on each "sweep done"; a stale reading
 * is never counted.
 *
 * A job is registered (jobs_start / jobs_stop: `vigil job start|stop`, POST /api/v1/jobs) or
 * automatic (jobs_observe, called by the process attribution for every GPU and owner it sees:
 * the job starts when first seen and ends when not seen for jobs_options.grace_us). Automatic ids
 * are "slurm:ID" and "pod:UID"; a registered id has no ':' so the two never collide.
 *
 * Jobs persist in the store (table workload_jobs): running jobs after each slow sweep and at
 * every start/stop, so a job running while vigild restarts is resumed with the time vigild was
 * away marked as a gap. Finished jobs older than retention_us are deleted.
 *
 * Threads: jobs_on_sweep on the sampling thread (never blocks: it wakes the jobs thread, vg-jobs,
 * which reads the sampler and writes the store); every other function from any thread except the
 * store writer. docs/internals/workload.md, "Jobs". */
#ifndef VIGIL_WORKLOAD_JOBS_H
#define VIGIL_WORKLOAD_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fields/fields.h"

struct sampler;
struct store;

typedef struct jobs jobs;

#define JOBS_ID_MAX       128  /* bytes of a job id with its NUL ("slurm:" included) */
#define JOBS_MAX_RUNNING  256  /* jobs running at once; more are refused (-E2BIG) */
#define JOBS_MAX_GPUS     64   /* GPU indices a job may name (0..63) */
#define JOBS_MAX_GAPS     16   /* gaps recorded per job and GPU; more are counted */
#define JOBS_MAX_XIDS     16   /* XID codes recorded per job and GPU; more are counted */
#define JOBS_MAX_PIDS     64   /* processes recorded per job and GPU; more are counted */
#define JOBS_LIST_DEFAULT 100  /* jobs a list returns without a limit */
#define JOBS_LIST_MAX     1000 /* the most a list returns */

typedef struct jobs_options {
        struct sampler *sampler; /* borrowed; NULL = no thread, the caller feeds (unit tests) */
        struct store *store;     /* borrowed; NULL = nothing persisted (finished jobs are kept
                                    in memory, the last 64) */
        unsigned gpu_count;      /* GPUs a job may name when sampler is NULL */
        int64_t grace_us;        /* an automatic job ends when not seen for this long */
        int64_t retention_us;    /* finished jobs older than this are deleted; 0 = keep all */
        /* Wall clock (usec since epoch); NULL = time_real_us. Tests move it. */
        int64_t (*clock_real_us)(void);
} jobs_options;

/* Create the service: load the jobs that were running when the store was last written (each
 * resumed with a gap "vigild_not_running" from its last write until its first fresh reading),
 * and start the jobs thread when opt->sampler is set. 0 or -errno with a reason in err. Caller
 * owns *ret. */
int jobs_new(const jobs_options *opt, jobs **ret, char *err, size_t errlen);
/* Stop the thread, write the running jobs one last time (they stay running: a restart resumes
 * them) and free. NULL ok; returns NULL. */
jobs *jobs_free(jobs *j);
/* Reload: grace and retention apply from the next sweep. */
void jobs_set_limits(jobs *j, int64_t grace_us, int64_t retention_us);

/* Register a job on the GPUs of gpu_mask (bit i = GPU i; 0 = every GPU). Its counters start from
 * the latest fresh readings. 0; -EINVAL (bad id, no such GPU: reason in err), -EEXIST (a job with
 * that id exists), -E2BIG (too many running), -ENODEV (no GPU at all), -ENOSPC / -EIO (store:
 * nothing is started). */
int jobs_start(jobs *j, const char *id, uint64_t gpu_mask, char *err, size_t errlen);
/* End a job now (registered or automatic). 0, -ENOENT, -EEXIST (already ended), or a store
 * error (the job has ended in memory; the next write persists it). */
int jobs_stop(jobs *j, const char *id, char *err, size_t errlen);

/* The process attribution saw owner (kind "slurm" or "pod", id) on gpu at now_us: start the
 * automatic job "kind:id" (or resume it when it ended within retention), add the GPU, refresh
 * its last-seen time. 0, or -EINVAL (unknown kind, bad id), -E2BIG. */
int jobs_observe(jobs *j, unsigned gpu, const char *kind, const char *id, int64_t now_us);
/* A process seen on gpu: recorded in the automatic job of owner (kind, id) when given, and in
 * every registered job running on that GPU. kind/id may be NULL. */
void jobs_process_seen(jobs *j, unsigned gpu, uint32_t pid, const char *kind, const char *id);

/* "Sweep done" (sampler_options.on_sweep): wakes the jobs thread. Never blocks. */
void jobs_on_sweep(jobs *j, enum field_tier tier);

/* ---- feeding without a sampler (unit tests, and the jobs thread itself) ---- */

/* The fields a job accounts, in this order (jobs_obs.f[]). */
enum jobs_field {
        JF_ENERGY = 0,    /* TOTAL_ENERGY_CONSUMPTION, mJ, counter */
        JF_SM_UTIL,       /* GPU_UTIL, %, gauge */
        JF_MEM_UTIL,      /* MEM_COPY_UTIL, %, gauge */
        JF_FB_USED,       /* FB_USED, MiB, gauge (max) */
        JF_TEMP,          /* GPU_TEMP, C, gauge (max) */
        JF_POWER,         /* POWER_USAGE, W, gauge */
        JF_V_POWER,       /* POWER_VIOLATION, ns, counter */
        JF_V_THERMAL,     /* THERMAL_VIOLATION, ns, counter */
        JF_V_SYNC_BOOST,  /* SYNC_BOOST_VIOLATION, ns, counter */
        JF_V_BOARD_LIMIT, /* BOARD_LIMIT_VIOLATION, ns, counter */
        JF_V_LOW_UTIL,    /* LOW_UTIL_VIOLATION, ns, counter */
        JF_V_RELIABILITY, /* RELIABILITY_VIOLATION, ns, counter */
        JF_ECC_SBE,       /* ECC_SBE_VOL_TOTAL, counter */
        JF_ECC_DBE,       /* ECC_DBE_VOL_TOTAL, counter */
        JF_REMAP_CORR,    /* CORRECTABLE_REMAPPED_ROWS, counter */
        JF_REMAP_UNCORR,  /* UNCORRECTABLE_REMAPPED_ROWS, counter */
        JF_COUNT,
};
/* The DCGM field id of f. */
uint16_t jobs_field_id(enum jobs_field f);

enum jobs_gpu_state {
        JOBS_GPU_OK = 0,           /* answering: the readings below count */
        JOBS_GPU_LOST = 1,         /* fallen off the bus: a gap */
        JOBS_GPU_UNRESPONSIVE = 2, /* a sample call hangs: a gap */
};

/* What one sweep saw of one GPU. Only fresh readings may be marked valid. */
typedef struct jobs_obs {
        enum jobs_gpu_state state;
        struct {
                bool valid;    /* a fresh reading with status 0 */
                int64_t ts_us; /* when it was sampled, usec since epoch */
                double v;      /* the value in the field's DCGM unit */
        } f[JF_COUNT];
        size_t n_xids; /* entries of xid_code/xid_count */
        uint32_t xid_code[JOBS_MAX_XIDS];
        uint64_t xid_count[JOBS_MAX_XIDS]; /* events since vigild started, per code */
} jobs_obs;

/* Account one observation of gpu at now_us in every running job that covers it. */
void jobs_feed(jobs *j, unsigned gpu, const jobs_obs *o, int64_t now_us);
/* End the automatic jobs not seen for grace, write the running jobs (persist true) and apply the
 * retention. The jobs thread calls it after each slow sweep. */
void jobs_tick(jobs *j, int64_t now_us, bool persist);

/* ---- reading ---- */

/* One job as JSON (docs/api.md, GET /api/v1/jobs/{id}). 0 and *ret (caller owns), or -ENOENT. */
int jobs_get(jobs *j, const char *id, json_t **ret);

typedef struct jobs_filter {
        const char *state; /* "running", "finished" or NULL (both) */
        const char *kind;  /* "registered", "slurm", "pod" or NULL */
        int gpu;           /* only jobs on this GPU; -1 = any */
        int64_t since_us;  /* only jobs running at or after this time (usec since epoch); 0 */
        unsigned limit;    /* at most this many, newest first; 0 = JOBS_LIST_DEFAULT */
} jobs_filter;
/* {"jobs": [summary, ...]} newest start first. 0 and *ret, -EINVAL (bad filter), -EIO. */
int jobs_list(jobs *j, const jobs_filter *f, json_t **ret);

/* Whether id is a valid registered job id: 1..127 of [A-Za-z0-9._-], starting with a letter or
 * digit. */
bool jobs_id_valid(const char *id);

#endif
