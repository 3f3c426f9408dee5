/* jobs-internal.h — the job record and its accumulators (jobs_core.c): what one job knows of one
 * GPU, how an observation is accounted, and the JSON form that is both the API's answer and what
 * the store keeps (with the accumulators under "_state", so a restart resumes them). No locks,
 * no sampler, no store: the service (jobs.c) holds its lock around every call. */
#ifndef VIGIL_WORKLOAD_JOBS_INTERNAL_H
#define VIGIL_WORKLOAD_JOBS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jobs.h"

enum jobs_kind {
        JOBS_REGISTERED = 0, /* vigil job start / POST /api/v1/jobs */
        JOBS_SLURM = 1,      /* automatic: a Slurm job seen through its processes */
        JOBS_POD = 2,        /* automatic: a Kubernetes pod seen through its processes */
};

/* A counter read during the job: used = acc + last - first. A reading below the previous one is
 * a reset (driver reload, vigild restart for XID counts): what was counted so far goes to acc and
 * counting goes on from 0, since NVML's counters count from the driver's load.
 *
 * Boundaries: the readings come every interval (the energy counter every 10 s by default), so the
 * value at the job's start is interpolated between the last reading before it and the first
 * after it, and the value at its end between the last reading before the end and the first one
 * after (the job is "final" once that reading came). */
typedef struct jobs_counter {
        int64_t first;    /* value the current stretch started from (field unit) */
        int64_t last;     /* latest reading, or the value at the end once interpolated */
        int64_t acc;      /* used in stretches before the last reset (field unit) */
        int64_t ts_us;    /* sample time of the latest reading, usec since epoch */
        int64_t first_ts; /* sample time of the first reading, usec since epoch */
        uint32_t resets;  /* readings that went backwards */
        unsigned flags;   /* JC_* */
        bool have;        /* a reading was taken */
} jobs_counter;

enum {
        JC_START_DONE = 1,   /* first is the value at the start (no more adjusting) */
        JC_START_INTERP = 2, /* ... interpolated between the readings around the start */
        JC_END_DONE = 4,     /* last is the value at the end */
        JC_END_INTERP = 8,   /* ... interpolated between the readings around the end */
};

/* A gauge over the job: average and maximum of the fresh readings sampled during it. */
typedef struct jobs_gauge {
        double sum;    /* of readings (field unit) */
        double max;    /* largest reading (field unit) */
        uint64_t n;    /* readings counted */
        int64_t ts_us; /* sample time of the latest counted reading, usec since epoch */
} jobs_gauge;

typedef struct jobs_gap {
        int64_t start_us; /* usec since epoch */
        int64_t end_us;   /* usec since epoch; 0 = still open */
        char reason[24];  /* "gpu_lost", "gpu_unresponsive", "vigild_not_running" */
} jobs_gap;

typedef struct jobs_xid {
        uint32_t code;  /* XID code */
        jobs_counter c; /* the sampler's per-code count */
} jobs_xid;

/* One GPU of a job. */
typedef struct jobs_gpu {
        unsigned index;           /* NVML index */
        int64_t start_us;         /* usec since epoch the GPU joined the job */
        int64_t end_us;           /* usec since epoch it left (the job's end); 0 = running */
        int64_t last_seen_us;     /* automatic jobs: last time the owner was seen here */
        jobs_counter c[JF_COUNT]; /* the counter fields (jobs_field_is_counter) */
        jobs_gauge g[JF_COUNT];   /* the gauge fields */
        jobs_gap gaps[JOBS_MAX_GAPS];
        unsigned n_gaps;       /* entries of gaps */
        uint32_t gaps_dropped; /* gaps not recorded (more than JOBS_MAX_GAPS) */
        bool in_gap;           /* a gap is open (the last entry, or a dropped one) */
        bool xid_primed;       /* XID counts were read once: later codes count from 0 */
        jobs_xid xids[JOBS_MAX_XIDS];
        unsigned n_xids;
        uint32_t xids_dropped; /* codes not recorded */
        uint32_t pids[JOBS_MAX_PIDS];
        unsigned n_pids;
        uint32_t pids_dropped; /* processes not recorded */
} jobs_gpu;

typedef struct job {
        char id[JOBS_ID_MAX]; /* "train-42", "slurm:1234", "pod:UID" */
        enum jobs_kind kind;
        bool running;         /* not ended */
        int64_t start_us;     /* usec since epoch */
        int64_t end_us;       /* usec since epoch; 0 while running */
        int64_t last_seen_us; /* automatic jobs: last observation of the owner */
        int64_t updated_us;   /* last time the record was built for the store */
        uint64_t seq;         /* version of the record; the store keeps the highest */
        size_t n_gpus;
        jobs_gpu *gpu; /* n_gpus entries, owned */
} job;

bool jobs_field_is_counter(enum jobs_field f);
const char *jobs_kind_name(enum jobs_kind k);
int jobs_kind_parse(const char *s, enum jobs_kind *ret);

/* 0 and *ret (caller frees with job_free), -ENOMEM. */
int job_new(const char *id, enum jobs_kind kind, int64_t now_us, job **ret);
void job_free(job *jb);
/* The job's entry for GPU index, or NULL. */
jobs_gpu *job_gpu(job *jb, unsigned index);
/* Add GPU index (or return the existing entry); NULL on ENOMEM. */
jobs_gpu *job_add_gpu(job *jb, unsigned index, int64_t now_us);
/* Account o on one GPU of a running job. */
void job_feed_gpu(jobs_gpu *g, const jobs_obs *o, int64_t now_us);
/* Open a gap on every GPU of jb from start_us (restart: the last write). */
void job_open_gap(job *jb, int64_t start_us, const char *reason);
/* Record a process. */
void job_gpu_add_pid(jobs_gpu *g, uint32_t pid);
/* End a running job at now_us (open gaps end there). */
void job_end(job *jb, int64_t now_us);
/* Resume an ended automatic job (seen again): running, with a gap "not_seen" over the pause. */
void job_resume(job *jb, int64_t now_us);

/* The job as JSON; with_state adds the accumulators ("_state") for the store. NULL on ENOMEM. */
json_t *job_to_json(const job *jb, bool with_state);
/* Rebuild a job from job_to_json(.., true). 0, -EBADMSG (not such a record), -ENOMEM. */
int job_from_json(const json_t *o, job **ret);
/* The list entry of a job record (as job_to_json gives it): id, kind, state, times, GPUs,
 * energy. NULL on ENOMEM. */
json_t *job_summary(const json_t *record);
/* Whether every counter of an ended job has its value at the end (a reading after the end came,
 * or there is none to wait for). */
bool job_final(const job *jb);
/* Energy of the job in mJ (sum over GPUs; -1 when no GPU has two readings). */
int64_t job_energy_mj(const job *jb);

#endif
