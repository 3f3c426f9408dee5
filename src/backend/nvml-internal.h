/* nvml-internal.h — what the files of the NVML backend share: the resolved entry points, the
 * per-GPU slot, the backend object, the field → NVML table (generated from nvml/getters.def) and
 * self-monitoring counters. Private to src/backend/; backend.h is the public contract.
 *
 * The files, each calling only those above it (no call loop; tests/arch/check_cycles.py):
 *   nvml_errno.c   NVML return code → negative errno
 *   nvml_calls.c   the field → NVML table (nvml/getters.def) and the NVML call counters
 *   nvml_gpm.c     GPM profiling metrics (two samples per GPU, metrics between them)
 *   nvml_nvlink.c  NVLink per link: state, version, remote end, error and traffic counters
 *   nvml_topo.c    GPU pairs on the PCIe tree, CPU and NUMA affinity
 *   nvml_mig.c     MIG mode and instances (GPU / compute instance ids, profile, memory)
 *   nvml_device.c  device identity and static info, attach / re-attach, the slot's handle
 *   nvml_sample.c  backend_sample: batched field values, getters, unit conversion
 *   nvml_events.c  XID / ECC event registration and wait
 *   nvml_mutate.c  guarded mutators: power limit, reset, compute processes, fake injection
 *   nvml_proc.c    processes per GPU: lists, utilisation samples, accounting (read-only)
 *   nvml_load.c    dlopen, symbol resolution newest version first, backend_open/close */
#ifndef VIGIL_BACKEND_NVML_INTERNAL_H
#define VIGIL_BACKEND_NVML_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"
#include "nvml/fake_ext.h"
#include "nvml/nvml_reads.h"
#include "nvml/nvml_types.h"

#define MAX_GPUS          64
#define MAX_FIELDS_SAMPLE 192

struct nvml_api {
#define NVML_FN(ret, member, required, args, ...) ret(*member) args;
#include "nvml/nvml_syms.h"
#undef NVML_FN
};

/* What we learned about reading a field on one GPU. */
enum method_state {
        M_UNKNOWN = 0,     /* not tried yet */
        M_PRIMARY = 1,     /* the primary path works */
        M_FALLBACK = 2,    /* primary unsupported, fallback works */
        M_UNSUPPORTED = 3, /* neither works: answer -EOPNOTSUPP without calling NVML */
};

typedef struct gpu_slot {
        pthread_mutex_t lock;  /* guards handle and lost */
        nvmlDevice_t handle;   /* NULL until attached */
        char uuid[96];         /* for re-attach by UUID */
        int lost;              /* 1 after GPU_IS_LOST until re-attached */
        unsigned char *method; /* per catalog index: enum method_state; read and written by the
                                * tiers sampling concurrently and reset by attach: only
                                * through method_get()/method_set() (relaxed atomics) */
        pthread_mutex_t
            gpm_lock;           /* guards gpm, gpm_prev, gpm_supported (tiers read concurrently) */
        nvmlGpmSample_t gpm[2]; /* GPM samples, allocated at attach; NULL without GPM */
        int gpm_prev;           /* index in gpm[] of the previous sample, -1 when none */
        int gpm_supported;      /* GPM on this GPU: 1 yes, 0 no, -1 not known yet */
        pthread_mutex_t nvl_lock; /* guards nvl */
        backend_nvlink_info nvl;  /* last NVLink read (nvml_nvlink.c) */
        backend_mig_info mig;     /* last MIG read (nvml_mig.c); under nvl_lock */
        int nvl_supported;        /* NVLink on this GPU: 1 yes, 0 no, -1 not known (attach) */
} gpu_slot;

struct backend {
        void *dl;               /* dlopen handle */
        char library[PATH_MAX]; /* what was loaded */
        int fake;               /* the fake NVML is loaded */
        struct nvml_api api;    /* resolved entry points */
        int (*fake_inject)(const struct fake_inject *, char *, size_t);
        void (*fake_stats)(struct fake_stats *);
        unsigned count;            /* GPUs discovered at open */
        unsigned n_slots;          /* entries of gpus: count, at least 1 (0 before they exist) */
        gpu_slot *gpus;            /* per GPU, allocated at open for the GPUs found: a slot
                                    * is ~4.7 KiB, 300 KiB resident for MAX_GPUS of them */
        nvmlEventSet_t events;     /* NULL until backend_events_start; events_get() */
        pthread_mutex_t topo_lock; /* guards topo */
        backend_topology *topo;    /* read at open and re-attach (nvml_topo.c); NULL before */
};

/* What was learned about a field is shared by the tiers that sample the same GPU concurrently
 * (backend.h) and forgotten by attach. Relaxed atomic bytes, not the slot's lock: the hot path
 * stays lock-free, and a stale value only costs one extra NVML call or one -EOPNOTSUPP that the
 * next sample after re-attach corrects (every writer stores a verdict NVML just gave). */
static inline unsigned char method_get(const gpu_slot *s, int fi)
{
        return __atomic_load_n(&s->method[fi], __ATOMIC_RELAXED);
}

static inline void method_set(gpu_slot *s, int fi, enum method_state m)
{
        __atomic_store_n(&s->method[fi], (unsigned char)m, __ATOMIC_RELAXED);
}

/* The event set, created by backend_events_start() (owner thread) while the sampler thread may
 * re-attach a GPU and the event thread wait: published with release, read with acquire. */
static inline nvmlEventSet_t events_get(const backend *b)
{
        return __atomic_load_n(&b->events, __ATOMIC_ACQUIRE);
}

/* ---- how each field is read (nvml/getters.def) ------------------------------------------- */

/* Getters that may feed several fields; each is called at most once per backend_sample(). */
enum getter {
        G_NONE = NVML_GETTER_NONE,
#define NVML_GETTER(name, call) G_##name = NVML_GETTER_##name,
#include "nvml/getters.def"
        G_COUNT = NVML_GETTER_COUNT,
};

/* Conversion from an NVML number to the field's stored (DCGM) unit. */
enum conv {
        C_ID = NVML_CONV_ID,       /* as is */
        C_MILLI = NVML_CONV_MILLI, /* mW → W (double) */
        C_MIB = NVML_CONV_MIB,     /* bytes → MiB */
        C_KIB = NVML_CONV_KIB,     /* KB/s → B/s (double) */
        C_PCT = NVML_CONV_PCT,     /* percent → ratio (double) */
        C_MIBPS = NVML_CONV_MIBPS, /* MiB/s → B/s (double) */
};

typedef struct field_read {
        uint16_t field;     /* DCGM id */
        unsigned fv;        /* NVML_FI_* for the batched path, 0 when none */
        enum getter getter; /* fallback (or only) path */
        unsigned slot;      /* which u[] of the getter result; the metric id for G_GPM_METRICS */
        enum conv conv;     /* unit conversion */
} field_read;

#define GPM_FIELDS_MAX NVML_GPM_ROWS /* getters.def rows with GPM_METRICS */

/* The row of getters.def for a DCGM field, or NULL. */
const field_read *nvml_read_for(uint16_t field);

#define CALL(b, fn, ...)                                                                           \
        ((b)->api.fn ? (int)(b)->api.fn(__VA_ARGS__) : NVML_ERROR_FUNCTION_NOT_FOUND)

/* ---- self-monitoring (backend_call_stats) ------------------------------------------------- */

/* Per getter (slot G_NONE: nvmlDeviceGetFieldValues): calls and wall time. Relaxed atomic
 * counters: two adds per call, no allocation. Defined in nvml_sample.c. */
extern unsigned long long nvml_call_count[G_COUNT]; /* __atomic */
extern unsigned long long nvml_call_ns[G_COUNT];    /* __atomic */

static inline int64_t call_clock_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void call_account(enum getter g, int64_t start_ns)
{
        __atomic_fetch_add(&nvml_call_count[g], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&nvml_call_ns[g], (unsigned long long)(call_clock_ns() - start_ns),
                           __ATOMIC_RELAXED);
}

/* ---- shared between the files ----------------------------------------------------------- */

/* nvml_device.c: the slot's handle and whether it is lost (under the slot's lock). */
nvmlDevice_t nvml_slot_handle(backend *b, unsigned idx, int *lost);
void nvml_mark_lost(backend *b, unsigned idx);
/* Acquire GPU idx (by UUID, then index), forget what was learned about it, attach GPM. */
int nvml_attach(backend *b, unsigned idx);

/* nvml_gpm.c */
void nvml_gpm_release_locked(backend *b, gpu_slot *s);
void nvml_gpm_attach(backend *b, gpu_slot *s, nvmlDevice_t h);
/* nvml_nvlink.c: read every link of the GPU, keep the copy backend_nvlink_get() answers, and put
 * the totals over links in tot[]: CRC flit, CRC data, replay, recovery, links up, links down.
 * 0, -EOPNOTSUPP (no NVLink), -ENODEV or -errno. */
int nvml_nvlink_refresh(backend *b, gpu_slot *s, nvmlDevice_t h, unsigned long long tot[6]);
void nvml_nvlink_forget(gpu_slot *s);
/* At attach: forget the copies and ask whether the GPU has NVLink (one cheap per-link getter, not
 * the batched read), so a GPU without it costs nothing on the sampling path. */
void nvml_nvlink_attach(backend *b, gpu_slot *s, nvmlDevice_t h);
/* nvml_mig.c: discover the MIG instances of the GPU and read their memory; keep the copy
 * backend_mig_get() answers. tot[0] = mode (1/0), tot[1] = instances. 0, -EOPNOTSUPP, -ENODEV. */
int nvml_mig_refresh(backend *b, gpu_slot *s, nvmlDevice_t h, unsigned long long tot[6]);

/* nvml_topo.c: read the topology of every attached GPU and keep it for backend_topology_get().
 * Not on a sampling path (open and re-attach). */
void nvml_topo_refresh(backend *b);
void nvml_topo_free(backend *b);

int nvml_gpm_read(backend *b, gpu_slot *s, nvmlDevice_t h, const uint16_t *fields,
                  const size_t *which, size_t nw, field_value *out);

#endif
