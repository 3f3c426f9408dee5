/* nvml.c — the NVML backend. dlopens libnvidia-ml.so.1 (or the fake NVML for --simulate), resolves
 * the entry points in nvml_syms.h newest version first, and turns DCGM field ids into NVML calls:
 * cheap counters through one batched nvmlDeviceGetFieldValues per sample, the rest through their
 * getters, each getter called at most once per sample even when it feeds several fields; the
 * profiling fields through GPM, one nvmlGpmMetricsGet between the previous and this sample.
 * NVML return codes become negative errno here and nowhere else. */
#include "backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "nvml/fake_ext.h"
#include "nvml/nvml_types.h"

#define MAX_GPUS          64
#define MAX_FIELDS_SAMPLE 128

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
        unsigned char *method; /* per catalog index: enum method_state */
        pthread_mutex_t
            gpm_lock;           /* guards gpm, gpm_prev, gpm_supported (tiers read concurrently) */
        nvmlGpmSample_t gpm[2]; /* GPM samples, allocated at attach; NULL without GPM */
        int gpm_prev;           /* index in gpm[] of the previous sample, -1 when none */
        int gpm_supported;      /* GPM on this GPU: 1 yes, 0 no, -1 not known yet */
} gpu_slot;

struct backend {
        void *dl;               /* dlopen handle */
        char library[PATH_MAX]; /* what was loaded */
        int fake;               /* the fake NVML is loaded */
        struct nvml_api api;    /* resolved entry points */
        int (*fake_inject)(const struct fake_inject *, char *, size_t);
        void (*fake_stats)(struct fake_stats *);
        unsigned count;          /* GPUs discovered at open */
        gpu_slot gpus[MAX_GPUS]; /* per GPU */
        nvmlEventSet_t events;   /* NULL until backend_events_start */
};

int backend_errno_from_nvml(int r)
{
        switch (r) {
        case NVML_SUCCESS:
                return 0;
        case NVML_ERROR_NOT_SUPPORTED:
        case NVML_ERROR_FUNCTION_NOT_FOUND:
        case NVML_ERROR_VGPU_ECC_NOT_SUPPORTED:
        case NVML_ERROR_FREQ_NOT_SUPPORTED:
        case NVML_ERROR_DEPRECATED:
                return -EOPNOTSUPP;
        case NVML_ERROR_NO_PERMISSION:
                return -EACCES;
        case NVML_ERROR_INVALID_ARGUMENT:
        case NVML_ERROR_UNINITIALIZED:
        case NVML_ERROR_ALREADY_INITIALIZED:
                return -EINVAL;
        case NVML_ERROR_NOT_FOUND:
                return -ENOENT;
        case NVML_ERROR_INSUFFICIENT_SIZE:
                return -ENOBUFS;
        case NVML_ERROR_INSUFFICIENT_POWER:
        case NVML_ERROR_CORRUPTED_INFOROM:
        case NVML_ERROR_IRQ_ISSUE:
        case NVML_ERROR_OPERATING_SYSTEM:
                return -EIO;
        case NVML_ERROR_DRIVER_NOT_LOADED:
                return -ENXIO;
        case NVML_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        case NVML_ERROR_LIBRARY_NOT_FOUND:
                return -ELIBACC;
        case NVML_ERROR_GPU_IS_LOST:
        case NVML_ERROR_GPU_NOT_FOUND:
        case NVML_ERROR_RESET_REQUIRED:
                return -ENODEV;
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
                return -EPROTO;
        case NVML_ERROR_IN_USE:
                return -EBUSY;
        case NVML_ERROR_MEMORY:
        case NVML_ERROR_INSUFFICIENT_RESOURCES:
                return -ENOMEM;
        case NVML_ERROR_NO_DATA:
                return -ENODATA;
        case NVML_ERROR_NOT_READY:
                return -EAGAIN;
        case NVML_ERROR_INVALID_STATE:
                return -EBADFD;
        default:
                return -EIO;
        }
}

/* ---- how each field is read ------------------------------------------------------------ */

/* Getters that may feed several fields; each is called at most once per backend_sample(). */
enum getter {
        G_NONE = 0,
        G_TEMP,
        G_POWER,
        G_UTIL,
        G_MEMORY,
        G_CLOCK_SM,
        G_CLOCK_MEM,
        G_REASONS,
        G_PSTATE,
        G_ENC,
        G_DEC,
        G_REMAP,
        G_ECC_SBE_VOL,
        G_ECC_DBE_VOL,
        G_ECC_SBE_AGG,
        G_ECC_DBE_AGG,
        G_ENERGY,
        G_VIOL_POWER,
        G_VIOL_THERMAL,
        G_VIOL_SYNC,
        G_VIOL_BOARD,
        G_VIOL_LOWUTIL,
        G_VIOL_RELIABILITY,
        G_REPLAY,
        G_PCIE_GEN,
        G_PCIE_WIDTH,
        G_PCIE_MAX_GEN,
        G_PCIE_MAX_WIDTH,
        G_PCIE_TX,
        G_PCIE_RX,
        G_POWER_LIMIT,
        G_POWER_ENFORCED,
        G_POWER_DEFAULT,
        G_PERSISTENCE,
        G_ECC_MODE,
        G_RETIRED_SBE,
        G_RETIRED_DBE,
        G_RETIRED_PENDING,
        G_TEMP_SLOWDOWN,
        G_TEMP_SHUTDOWN,
        G_MINOR,
        G_GPM_QUERY,   /* accounting only: GPM is read by gpm_read(), not run_getter() */
        G_GPM_SAMPLE,  /* accounting only */
        G_GPM_METRICS, /* accounting only; also marks the GPM fields in reads[] */
        G_COUNT,
};

/* Self-monitoring (backend_call_stats): the NVML function behind each getter; slot G_NONE counts
 * nvmlDeviceGetFieldValues. Relaxed atomic counters: two adds per call, no allocation. */
static const char *const getter_call[G_COUNT] = {
    [G_NONE] = "nvmlDeviceGetFieldValues",
    [G_TEMP] = "nvmlDeviceGetTemperature",
    [G_POWER] = "nvmlDeviceGetPowerUsage",
    [G_UTIL] = "nvmlDeviceGetUtilizationRates",
    [G_MEMORY] = "nvmlDeviceGetMemoryInfo",
    [G_CLOCK_SM] = "nvmlDeviceGetClockInfo",
    [G_CLOCK_MEM] = "nvmlDeviceGetClockInfo",
    [G_REASONS] = "nvmlDeviceGetCurrentClocksEventReasons",
    [G_PSTATE] = "nvmlDeviceGetPerformanceState",
    [G_ENC] = "nvmlDeviceGetEncoderUtilization",
    [G_DEC] = "nvmlDeviceGetDecoderUtilization",
    [G_REMAP] = "nvmlDeviceGetRemappedRows",
    [G_ECC_SBE_VOL] = "nvmlDeviceGetTotalEccErrors",
    [G_ECC_DBE_VOL] = "nvmlDeviceGetTotalEccErrors",
    [G_ECC_SBE_AGG] = "nvmlDeviceGetTotalEccErrors",
    [G_ECC_DBE_AGG] = "nvmlDeviceGetTotalEccErrors",
    [G_ENERGY] = "nvmlDeviceGetTotalEnergyConsumption",
    [G_VIOL_POWER] = "nvmlDeviceGetViolationStatus",
    [G_VIOL_THERMAL] = "nvmlDeviceGetViolationStatus",
    [G_VIOL_SYNC] = "nvmlDeviceGetViolationStatus",
    [G_VIOL_BOARD] = "nvmlDeviceGetViolationStatus",
    [G_VIOL_LOWUTIL] = "nvmlDeviceGetViolationStatus",
    [G_VIOL_RELIABILITY] = "nvmlDeviceGetViolationStatus",
    [G_REPLAY] = "nvmlDeviceGetPcieReplayCounter",
    [G_PCIE_GEN] = "nvmlDeviceGetCurrPcieLinkGeneration",
    [G_PCIE_WIDTH] = "nvmlDeviceGetCurrPcieLinkWidth",
    [G_PCIE_MAX_GEN] = "nvmlDeviceGetMaxPcieLinkGeneration",
    [G_PCIE_MAX_WIDTH] = "nvmlDeviceGetMaxPcieLinkWidth",
    [G_PCIE_TX] = "nvmlDeviceGetPcieThroughput",
    [G_PCIE_RX] = "nvmlDeviceGetPcieThroughput",
    [G_POWER_LIMIT] = "nvmlDeviceGetPowerManagementLimit",
    [G_POWER_ENFORCED] = "nvmlDeviceGetEnforcedPowerLimit",
    [G_POWER_DEFAULT] = "nvmlDeviceGetPowerManagementDefaultLimit",
    [G_PERSISTENCE] = "nvmlDeviceGetPersistenceMode",
    [G_ECC_MODE] = "nvmlDeviceGetEccMode",
    [G_RETIRED_SBE] = "nvmlDeviceGetRetiredPages",
    [G_RETIRED_DBE] = "nvmlDeviceGetRetiredPages",
    [G_RETIRED_PENDING] = "nvmlDeviceGetRetiredPagesPendingStatus",
    [G_TEMP_SLOWDOWN] = "nvmlDeviceGetTemperatureThreshold",
    [G_TEMP_SHUTDOWN] = "nvmlDeviceGetTemperatureThreshold",
    [G_MINOR] = "nvmlDeviceGetMinorNumber",
    [G_GPM_QUERY] = "nvmlGpmQueryDeviceSupport",
    [G_GPM_SAMPLE] = "nvmlGpmSampleGet",
    [G_GPM_METRICS] = "nvmlGpmMetricsGet",
};
static unsigned long long call_count[G_COUNT]; /* __atomic */
static unsigned long long call_ns[G_COUNT];    /* __atomic */

static inline int64_t call_clock_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void call_account(enum getter g, int64_t start_ns)
{
        __atomic_fetch_add(&call_count[g], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&call_ns[g], (unsigned long long)(call_clock_ns() - start_ns),
                           __ATOMIC_RELAXED);
}

size_t backend_call_stats(backend_call_stat *out, size_t max)
{
        size_t n = 0;

        /* Several getters share one NVML function: merge them by name. */
        for (int g = 0; g < G_COUNT; g++) {
                unsigned long long c = __atomic_load_n(&call_count[g], __ATOMIC_RELAXED);
                unsigned long long t = __atomic_load_n(&call_ns[g], __ATOMIC_RELAXED);
                size_t k;
                if (!c || !getter_call[g])
                        continue;
                for (k = 0; k < n && strcmp(out[k].call, getter_call[g]) != 0; k++)
                        ;
                if (k == n) {
                        if (n >= max)
                                continue;
                        out[n++] = (backend_call_stat){.call = getter_call[g]};
                }
                out[k].calls += c;
                out[k].ns += t;
        }
        return n;
}

/* One raw result of a getter: up to four numbers (e.g. remapped rows) or a memory struct. */
typedef struct getter_result {
        int done;                /* called during this sample */
        int err;                 /* 0 or -errno */
        unsigned long long u[4]; /* raw NVML numbers */
} getter_result;

/* Conversion from an NVML number to the field's stored (DCGM) unit. */
enum conv {
        C_ID = 0, /* as is */
        C_MILLI,  /* mW → W (double) */
        C_MIB,    /* bytes → MiB */
        C_KIB,    /* KB/s → B/s (double) */
        C_PCT,    /* percent → ratio (double) */
};

typedef struct field_read {
        uint16_t field;     /* DCGM id */
        unsigned fv;        /* NVML_FI_* for the batched path, 0 when none */
        enum getter getter; /* fallback (or only) path */
        unsigned slot;      /* which u[] of the getter result; the metric id for G_GPM_METRICS */
        enum conv conv;     /* unit conversion */
} field_read;

/* The field → NVML table. The FieldValues id is the primary path when present: one batched call
 * covers every cheap counter (reference/nvml-costs.md: 10 fields in ~5 µs). */
static const field_read reads[] = {
    {FLD_MEMORY_TEMP, NVML_FI_DEV_MEMORY_TEMP, G_NONE, 0, C_ID},
    {FLD_GPU_TEMP, 0, G_TEMP, 0, C_ID},
    {FLD_POWER_USAGE, NVML_FI_DEV_POWER_AVERAGE, G_POWER, 0, C_MILLI},
    {FLD_POWER_USAGE_INSTANT, NVML_FI_DEV_POWER_INSTANT, G_NONE, 0, C_MILLI},
    {FLD_GPU_UTIL, 0, G_UTIL, 0, C_ID},
    {FLD_MEM_COPY_UTIL, 0, G_UTIL, 1, C_ID},
    {FLD_FB_TOTAL, 0, G_MEMORY, 0, C_MIB},
    {FLD_FB_FREE, 0, G_MEMORY, 1, C_MIB},
    {FLD_FB_USED, 0, G_MEMORY, 2, C_MIB},
    {FLD_FB_RESERVED, 0, G_MEMORY, 3, C_MIB},
    {FLD_SM_CLOCK, 0, G_CLOCK_SM, 0, C_ID},
    {FLD_MEM_CLOCK, 0, G_CLOCK_MEM, 0, C_ID},
    {FLD_CLOCKS_EVENT_REASONS, 0, G_REASONS, 0, C_ID},
    {FLD_PSTATE, 0, G_PSTATE, 0, C_ID},
    {FLD_ENC_UTIL, 0, G_ENC, 0, C_ID},
    {FLD_DEC_UTIL, 0, G_DEC, 0, C_ID},
    {FLD_CORRECTABLE_REMAPPED_ROWS, NVML_FI_DEV_REMAPPED_COR, G_REMAP, 0, C_ID},
    {FLD_UNCORRECTABLE_REMAPPED_ROWS, NVML_FI_DEV_REMAPPED_UNC, G_REMAP, 1, C_ID},
    {FLD_ROW_REMAP_PENDING, NVML_FI_DEV_REMAPPED_PENDING, G_REMAP, 2, C_ID},
    {FLD_ROW_REMAP_FAILURE, NVML_FI_DEV_REMAPPED_FAILURE, G_REMAP, 3, C_ID},
    {FLD_ECC_SBE_VOL_TOTAL, NVML_FI_DEV_ECC_SBE_VOL_TOTAL, G_ECC_SBE_VOL, 0, C_ID},
    {FLD_ECC_DBE_VOL_TOTAL, NVML_FI_DEV_ECC_DBE_VOL_TOTAL, G_ECC_DBE_VOL, 0, C_ID},
    {FLD_ECC_SBE_AGG_TOTAL, NVML_FI_DEV_ECC_SBE_AGG_TOTAL, G_ECC_SBE_AGG, 0, C_ID},
    {FLD_ECC_DBE_AGG_TOTAL, NVML_FI_DEV_ECC_DBE_AGG_TOTAL, G_ECC_DBE_AGG, 0, C_ID},
    {FLD_TOTAL_ENERGY_CONSUMPTION, NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, G_ENERGY, 0, C_ID},
    {FLD_POWER_VIOLATION, NVML_FI_DEV_PERF_POLICY_POWER, G_VIOL_POWER, 0, C_ID},
    {FLD_THERMAL_VIOLATION, NVML_FI_DEV_PERF_POLICY_THERMAL, G_VIOL_THERMAL, 0, C_ID},
    {FLD_SYNC_BOOST_VIOLATION, NVML_FI_DEV_PERF_POLICY_SYNC_BOOST, G_VIOL_SYNC, 0, C_ID},
    {FLD_BOARD_LIMIT_VIOLATION, NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT, G_VIOL_BOARD, 0, C_ID},
    {FLD_LOW_UTIL_VIOLATION, NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION, G_VIOL_LOWUTIL, 0, C_ID},
    {FLD_RELIABILITY_VIOLATION, NVML_FI_DEV_PERF_POLICY_RELIABILITY, G_VIOL_RELIABILITY, 0, C_ID},
    {FLD_PCIE_REPLAY_COUNTER, NVML_FI_DEV_PCIE_REPLAY_COUNTER, G_REPLAY, 0, C_ID},
    {FLD_PCIE_LINK_GEN, 0, G_PCIE_GEN, 0, C_ID},
    {FLD_PCIE_LINK_WIDTH, 0, G_PCIE_WIDTH, 0, C_ID},
    {FLD_PCIE_MAX_LINK_GEN, 0, G_PCIE_MAX_GEN, 0, C_ID},
    {FLD_PCIE_MAX_LINK_WIDTH, 0, G_PCIE_MAX_WIDTH, 0, C_ID},
    {FLD_PROF_PCIE_TX_BYTES, 0, G_PCIE_TX, 0, C_KIB},
    {FLD_PROF_PCIE_RX_BYTES, 0, G_PCIE_RX, 0, C_KIB},
    {FLD_POWER_LIMIT, 0, G_POWER_LIMIT, 0, C_MILLI},
    {FLD_ENFORCED_POWER_LIMIT, 0, G_POWER_ENFORCED, 0, C_MILLI},
    {FLD_POWER_LIMIT_DEFAULT, 0, G_POWER_DEFAULT, 0, C_MILLI},
    {FLD_PERSISTENCE_MODE, 0, G_PERSISTENCE, 0, C_ID},
    {FLD_ECC_CURRENT, NVML_FI_DEV_ECC_CURRENT, G_ECC_MODE, 0, C_ID},
    {FLD_RETIRED_SBE, NVML_FI_DEV_RETIRED_SBE, G_RETIRED_SBE, 0, C_ID},
    {FLD_RETIRED_DBE, NVML_FI_DEV_RETIRED_DBE, G_RETIRED_DBE, 0, C_ID},
    {FLD_RETIRED_PENDING, NVML_FI_DEV_RETIRED_PENDING, G_RETIRED_PENDING, 0, C_ID},
    {FLD_SLOWDOWN_TEMP, 0, G_TEMP_SLOWDOWN, 0, C_ID},
    {FLD_SHUTDOWN_TEMP, 0, G_TEMP_SHUTDOWN, 0, C_ID},
    {FLD_MINOR_NUMBER, 0, G_MINOR, 0, C_ID},
    /* Profiling (DCGM's 1001/1004/1005) through GPM on Hopper and newer: see gpm_read(). */
    {FLD_PROF_GR_ENGINE_ACTIVE, 0, G_GPM_METRICS, NVML_GPM_METRIC_GRAPHICS_UTIL, C_PCT},
    {FLD_PROF_PIPE_TENSOR_ACTIVE, 0, G_GPM_METRICS, NVML_GPM_METRIC_ANY_TENSOR_UTIL, C_PCT},
    {FLD_PROF_DRAM_ACTIVE, 0, G_GPM_METRICS, NVML_GPM_METRIC_DRAM_BW_UTIL, C_PCT},
};

#define GPM_FIELDS_MAX 3 /* reads[] entries with G_GPM_METRICS */

static const field_read *read_for(uint16_t field)
{
        for (size_t i = 0; i < ARRAY_SIZE(reads); i++)
                if (reads[i].field == field)
                        return &reads[i];
        return NULL;
}

#define CALL(b, fn, ...)                                                                           \
        ((b)->api.fn ? (int)(b)->api.fn(__VA_ARGS__) : NVML_ERROR_FUNCTION_NOT_FOUND)

/* Run one getter, filling r->u[]. */
static void run_getter(backend *b, nvmlDevice_t h, enum getter g, getter_result *r)
{
        unsigned v = 0, v2 = 0, v3 = 0, v4 = 0;
        unsigned long long ull = 0;
        int64_t t0 = call_clock_ns();
        int rc;

        r->done = 1;
        memset(r->u, 0, sizeof(r->u));
        switch (g) {
        case G_TEMP:
                rc = CALL(b, temperature, h, NVML_TEMPERATURE_GPU, &v);
                r->u[0] = v;
                break;
        case G_POWER:
                rc = CALL(b, power_usage, h, &v);
                r->u[0] = v;
                break;
        case G_UTIL: {
                nvmlUtilization_t u = {0};
                rc = CALL(b, utilization, h, &u);
                r->u[0] = u.gpu;
                r->u[1] = u.memory;
                break;
        }
        case G_MEMORY: {
                nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
                rc = CALL(b, memory_info_v2, h, &m2);
                if (rc == NVML_SUCCESS) {
                        r->u[0] = m2.total;
                        r->u[1] = m2.free;
                        r->u[2] = m2.used;
                        r->u[3] = m2.reserved;
                } else {
                        nvmlMemory_t m = {0};
                        rc = CALL(b, memory_info, h, &m);
                        r->u[0] = m.total;
                        r->u[1] = m.free;
                        r->u[2] = m.used;
                        r->u[3] = ULLONG_MAX; /* reserved unknown with the v1 struct */
                }
                break;
        }
        case G_CLOCK_SM:
                rc = CALL(b, clock_info, h, NVML_CLOCK_SM, &v);
                r->u[0] = v;
                break;
        case G_CLOCK_MEM:
                rc = CALL(b, clock_info, h, NVML_CLOCK_MEM, &v);
                r->u[0] = v;
                break;
        case G_REASONS:
                rc = CALL(b, clocks_event_reasons, h, &ull);
                r->u[0] = ull;
                break;
        case G_PSTATE: {
                nvmlPstates_t p = NVML_PSTATE_UNKNOWN;
                rc = CALL(b, performance_state, h, &p);
                if (rc == NVML_SUCCESS && p == NVML_PSTATE_UNKNOWN)
                        rc = NVML_ERROR_NOT_SUPPORTED;
                r->u[0] = (unsigned)p;
                break;
        }
        case G_ENC:
                rc = CALL(b, encoder_utilization, h, &v, &v2);
                r->u[0] = v;
                break;
        case G_DEC:
                rc = CALL(b, decoder_utilization, h, &v, &v2);
                r->u[0] = v;
                break;
        case G_REMAP:
                rc = CALL(b, remapped_rows, h, &v, &v2, &v3, &v4);
                r->u[0] = v;
                r->u[1] = v2;
                r->u[2] = v3;
                r->u[3] = v4;
                break;
        case G_ECC_SBE_VOL:
                rc = CALL(b, total_ecc_errors, h, NVML_MEMORY_ERROR_TYPE_CORRECTED,
                          NVML_VOLATILE_ECC, &ull);
                r->u[0] = ull;
                break;
        case G_ECC_DBE_VOL:
                rc = CALL(b, total_ecc_errors, h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                          NVML_VOLATILE_ECC, &ull);
                r->u[0] = ull;
                break;
        case G_ECC_SBE_AGG:
                rc = CALL(b, total_ecc_errors, h, NVML_MEMORY_ERROR_TYPE_CORRECTED,
                          NVML_AGGREGATE_ECC, &ull);
                r->u[0] = ull;
                break;
        case G_ECC_DBE_AGG:
                rc = CALL(b, total_ecc_errors, h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                          NVML_AGGREGATE_ECC, &ull);
                r->u[0] = ull;
                break;
        case G_ENERGY:
                rc = CALL(b, total_energy, h, &ull);
                r->u[0] = ull;
                break;
        case G_VIOL_POWER:
        case G_VIOL_THERMAL:
        case G_VIOL_SYNC:
        case G_VIOL_BOARD:
        case G_VIOL_LOWUTIL:
        case G_VIOL_RELIABILITY: {
                static const nvmlPerfPolicyType_t pol[] = {
                    NVML_PERF_POLICY_POWER,           NVML_PERF_POLICY_THERMAL,
                    NVML_PERF_POLICY_SYNC_BOOST,      NVML_PERF_POLICY_BOARD_LIMIT,
                    NVML_PERF_POLICY_LOW_UTILIZATION, NVML_PERF_POLICY_RELIABILITY,
                };
                nvmlViolationTime_t t = {0};
                rc = CALL(b, violation_status, h, pol[g - G_VIOL_POWER], &t);
                r->u[0] = t.violationTime;
                break;
        }
        case G_REPLAY:
                rc = CALL(b, pcie_replay_counter, h, &v);
                r->u[0] = v;
                break;
        case G_PCIE_GEN:
                rc = CALL(b, curr_pcie_gen, h, &v);
                r->u[0] = v;
                break;
        case G_PCIE_WIDTH:
                rc = CALL(b, curr_pcie_width, h, &v);
                r->u[0] = v;
                break;
        case G_PCIE_MAX_GEN:
                rc = CALL(b, max_pcie_gen, h, &v);
                r->u[0] = v;
                break;
        case G_PCIE_MAX_WIDTH:
                rc = CALL(b, max_pcie_width, h, &v);
                r->u[0] = v;
                break;
        case G_PCIE_TX:
                rc = CALL(b, pcie_throughput, h, NVML_PCIE_UTIL_TX_BYTES, &v);
                r->u[0] = v;
                break;
        case G_PCIE_RX:
                rc = CALL(b, pcie_throughput, h, NVML_PCIE_UTIL_RX_BYTES, &v);
                r->u[0] = v;
                break;
        case G_POWER_LIMIT:
                rc = CALL(b, power_limit, h, &v);
                r->u[0] = v;
                break;
        case G_POWER_ENFORCED:
                rc = CALL(b, enforced_power_limit, h, &v);
                r->u[0] = v;
                break;
        case G_POWER_DEFAULT:
                rc = CALL(b, power_default_limit, h, &v);
                r->u[0] = v;
                break;
        case G_PERSISTENCE: {
                nvmlEnableState_t s = NVML_FEATURE_DISABLED;
                rc = CALL(b, persistence_mode, h, &s);
                r->u[0] = s == NVML_FEATURE_ENABLED;
                break;
        }
        case G_ECC_MODE: {
                nvmlEnableState_t cur = NVML_FEATURE_DISABLED, pend = NVML_FEATURE_DISABLED;
                rc = CALL(b, ecc_mode, h, &cur, &pend);
                r->u[0] = cur == NVML_FEATURE_ENABLED;
                break;
        }
        case G_RETIRED_SBE:
        case G_RETIRED_DBE: {
                unsigned cnt = 0;
                /* count only: a zero-sized address buffer asks for the count. */
                rc = CALL(b, retired_pages, h,
                          g == G_RETIRED_SBE
                              ? NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
                              : NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
                          &cnt, NULL);
                if (rc == NVML_ERROR_INSUFFICIENT_SIZE)
                        rc = NVML_SUCCESS;
                r->u[0] = cnt;
                break;
        }
        case G_RETIRED_PENDING: {
                nvmlEnableState_t s = NVML_FEATURE_DISABLED;
                rc = CALL(b, retired_pages_pending, h, &s);
                r->u[0] = s == NVML_FEATURE_ENABLED;
                break;
        }
        case G_TEMP_SLOWDOWN:
                rc = CALL(b, temperature_threshold, h, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &v);
                r->u[0] = v;
                break;
        case G_TEMP_SHUTDOWN:
                rc = CALL(b, temperature_threshold, h, NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, &v);
                r->u[0] = v;
                break;
        case G_MINOR:
                rc = CALL(b, minor_number, h, &v);
                r->u[0] = v;
                break;
        default:
                rc = NVML_ERROR_NOT_SUPPORTED;
                break;
        }
        r->err = backend_errno_from_nvml(rc);
        call_account(g, t0);
}

static void store_value(const field_meta *m, enum conv conv, double dv, unsigned long long uv,
                        int is_double, field_value *out)
{
        switch (conv) {
        case C_MILLI:
                dv = (is_double ? dv : (double)uv) / 1000.0;
                is_double = 1;
                break;
        case C_MIB:
                uv = (is_double ? (unsigned long long)dv : uv) >> 20;
                is_double = 0;
                break;
        case C_KIB:
                dv = (is_double ? dv : (double)uv) * 1024.0;
                is_double = 1;
                break;
        case C_PCT:
                dv = (is_double ? dv : (double)uv) / 100.0;
                is_double = 1;
                break;
        case C_ID:
                break;
        }
        out->status = 0;
        if (m->type == FT_F64)
                out->d = is_double ? dv : (double)uv;
        else
                out->i = is_double ? (int64_t)dv : (int64_t)MIN(uv, (unsigned long long)INT64_MAX);
}

static void fv_to_number(const nvmlFieldValue_t *fv, double *d, unsigned long long *u, int *is_d)
{
        *is_d = 0;
        switch (fv->valueType) {
        case NVML_VALUE_TYPE_DOUBLE:
                *d = fv->value.dVal;
                *is_d = 1;
                break;
        case NVML_VALUE_TYPE_UNSIGNED_INT:
                *u = fv->value.uiVal;
                break;
        case NVML_VALUE_TYPE_UNSIGNED_LONG:
                *u = fv->value.ulVal;
                break;
        case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
                *u = fv->value.ullVal;
                break;
        case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
                *u = fv->value.sllVal < 0 ? 0 : (unsigned long long)fv->value.sllVal;
                break;
        case NVML_VALUE_TYPE_SIGNED_INT:
                *u = fv->value.siVal < 0 ? 0 : (unsigned long long)fv->value.siVal;
                break;
        case NVML_VALUE_TYPE_UNSIGNED_SHORT:
                *u = fv->value.usVal;
                break;
        default:
                *u = fv->value.ullVal;
                break;
        }
}

static nvmlDevice_t slot_handle(backend *b, unsigned idx, int *lost)
{
        gpu_slot *s = &b->gpus[idx];
        nvmlDevice_t h;

        pthread_mutex_lock(&s->lock);
        h = s->handle;
        *lost = s->lost || !h;
        pthread_mutex_unlock(&s->lock);
        return h;
}

static void mark_lost(backend *b, unsigned idx)
{
        gpu_slot *s = &b->gpus[idx];

        pthread_mutex_lock(&s->lock);
        s->lost = 1;
        pthread_mutex_unlock(&s->lock);
}

/* ---- GPM ------------------------------------------------------------------------------ */

static int gpm_api(const backend *b)
{
        return b->api.gpm_query_support && b->api.gpm_sample_alloc && b->api.gpm_sample_free &&
               b->api.gpm_sample_get && b->api.gpm_metrics_get;
}

static void gpm_release_locked(backend *b, gpu_slot *s)
{
        for (int k = 0; k < 2; k++) {
                if (s->gpm[k] && b->api.gpm_sample_free)
                        b->api.gpm_sample_free(s->gpm[k]);
                s->gpm[k] = NULL;
        }
        s->gpm_prev = -1;
        s->gpm_supported = -1;
}

/* At attach (not on the sampling path): allocate the two samples, ask whether the GPU supports
 * GPM and, when it does, take the first sample, so that the first sweep already reports the
 * activity since attach instead of "no data". A failed query is asked again by gpm_read(). */
static void gpm_attach(backend *b, gpu_slot *s, nvmlDevice_t h)
{
        nvmlGpmSupport_t sup = {.version = NVML_GPM_SUPPORT_VERSION};
        int rc;

        pthread_mutex_lock(&s->gpm_lock);
        gpm_release_locked(b, s);
        if (!gpm_api(b)) {
                s->gpm_supported = 0;
                goto out;
        }
        rc = b->api.gpm_query_support(h, &sup);
        if (rc == NVML_SUCCESS)
                s->gpm_supported = sup.isSupportedDevice != 0;
        else if (backend_errno_from_nvml(rc) == -EOPNOTSUPP)
                s->gpm_supported = 0;
        if (s->gpm_supported == 0)
                goto out;
        if (b->api.gpm_sample_alloc(&s->gpm[0]) != NVML_SUCCESS ||
            b->api.gpm_sample_alloc(&s->gpm[1]) != NVML_SUCCESS) {
                int known = s->gpm_supported;
                gpm_release_locked(b, s); /* gpm_read() answers -ENOMEM until re-attach */
                s->gpm_supported = known;
                goto out;
        }
        if (s->gpm_supported == 1 && b->api.gpm_sample_get(h, s->gpm[0]) == NVML_SUCCESS)
                s->gpm_prev = 0;
out:
        pthread_mutex_unlock(&s->gpm_lock);
}

/* Read the GPM fields out[which[0..nw)] (fields[] gives their ids): one nvmlGpmSampleGet into
 * the spare sample, then one nvmlGpmMetricsGet for all of them between the previous sample and
 * this one; this one becomes the previous. Without a previous sample the fields answer -ENODATA
 * (never a made-up value). Learns -EOPNOTSUPP per field like the other paths. Returns 0, or
 * -ENODEV when the GPU is lost. No allocation (the request lives on the stack, ~13 KiB). */
static int gpm_read(backend *b, gpu_slot *s, nvmlDevice_t h, const uint16_t *fields,
                    const size_t *which, size_t nw, field_value *out)
{
        nvmlGpmMetricsGet_t mg;
        int err = 0, rc, cur;
        int64_t t0;

        pthread_mutex_lock(&s->gpm_lock);
        if (s->gpm_supported < 0 && gpm_api(b)) {
                nvmlGpmSupport_t sup = {.version = NVML_GPM_SUPPORT_VERSION};
                t0 = call_clock_ns();
                rc = b->api.gpm_query_support(h, &sup);
                call_account(G_GPM_QUERY, t0);
                if (rc == NVML_SUCCESS)
                        s->gpm_supported = sup.isSupportedDevice != 0;
                else if ((err = backend_errno_from_nvml(rc)) == -EOPNOTSUPP)
                        s->gpm_supported = 0;
        }
        if (!gpm_api(b) || s->gpm_supported == 0)
                err = -EOPNOTSUPP;
        else if (!err && (!s->gpm[0] || !s->gpm[1]))
                err = -ENOMEM;
        if (err)
                goto done;

        cur = s->gpm_prev == 0 ? 1 : 0;
        t0 = call_clock_ns();
        rc = b->api.gpm_sample_get(h, s->gpm[cur]);
        call_account(G_GPM_SAMPLE, t0);
        if (rc != NVML_SUCCESS) {
                err = backend_errno_from_nvml(rc);
                if (err == -EOPNOTSUPP)
                        s->gpm_supported = 0;
                goto done; /* the previous sample stays the start of the next interval */
        }
        if (s->gpm_prev < 0) {
                s->gpm_prev = cur;
                err = -ENODATA;
                goto done;
        }

        memset(&mg, 0, sizeof(mg));
        mg.version = NVML_GPM_METRICS_GET_VERSION;
        mg.numMetrics = (unsigned)nw;
        mg.sample1 = s->gpm[s->gpm_prev];
        mg.sample2 = s->gpm[cur];
        for (size_t k = 0; k < nw; k++)
                mg.metrics[k].metricId = read_for(fields[which[k]])->slot;
        t0 = call_clock_ns();
        rc = b->api.gpm_metrics_get(&mg);
        call_account(G_GPM_METRICS, t0);
        s->gpm_prev = cur; /* the next interval starts here, whatever this one gave */
        if (rc != NVML_SUCCESS) {
                err = backend_errno_from_nvml(rc);
                goto done;
        }
        pthread_mutex_unlock(&s->gpm_lock);

        for (size_t k = 0; k < nw; k++) {
                const nvmlGpmMetric_t *m = &mg.metrics[k];
                int fi = field_index(fields[which[k]]);
                field_value *o = &out[which[k]];
                double ratio;

                if (m->nvmlReturn == NVML_SUCCESS) {
                        /* An H200 (driver 580) answers SUCCESS with NaN for DRAM_BW_UTIL over
                         * intervals of a few ms to ~50 ms: no data for that interval, not a
                         * failure (the first sweep after attach can be that close). */
                        if (!isfinite(m->value)) {
                                o->status = -ENODATA;
                                continue;
                        }
                        /* Counters read at two instants can overshoot 100 % by a rounding hair;
                         * the DCGM field is a ratio of time, 0..1. */
                        ratio = m->value / 100.0;
                        o->status = 0;
                        o->d = ratio < 0 ? 0 : ratio > 1 ? 1 : ratio;
                        s->method[fi] = M_PRIMARY;
                        continue;
                }
                err = backend_errno_from_nvml(m->nvmlReturn);
                if (err == -ENODEV)
                        return -ENODEV;
                if (err == -EOPNOTSUPP)
                        s->method[fi] = M_UNSUPPORTED; /* o->status is -EOPNOTSUPP already */
                else
                        o->status = err;
        }
        return 0;

done:
        pthread_mutex_unlock(&s->gpm_lock);
        if (err == -ENODEV)
                return -ENODEV;
        for (size_t k = 0; k < nw; k++) {
                if (err == -EOPNOTSUPP)
                        s->method[field_index(fields[which[k]])] = M_UNSUPPORTED;
                else
                        out[which[k]].status = err;
        }
        return 0;
}

int backend_sample(backend *b, unsigned idx, const uint16_t *fields, size_t n, field_value *out)
{
        nvmlFieldValue_t fvs[MAX_FIELDS_SAMPLE];
        int fv_of[MAX_FIELDS_SAMPLE]; /* index into fvs for field i, or -1 */
        getter_result gr[G_COUNT];
        size_t gpm_of[GPM_FIELDS_MAX]; /* indexes in fields[] read through GPM */
        size_t ngpm = 0;
        int nfv = 0, lost;
        nvmlDevice_t h;
        gpu_slot *s;

        if (idx >= b->count || n > MAX_FIELDS_SAMPLE)
                return -EINVAL;
        s = &b->gpus[idx];
        h = slot_handle(b, idx, &lost);
        if (lost) {
                for (size_t i = 0; i < n; i++)
                        out[i].status = -ENODEV;
                return -ENODEV;
        }
        memset(gr, 0, sizeof(gr));

        /* Pass 1: batch every FieldValues-capable field whose primary path is not ruled out. */
        for (size_t i = 0; i < n; i++) {
                const field_read *rd = read_for(fields[i]);
                int fi = field_index(fields[i]);
                fv_of[i] = -1;
                out[i].status = -EOPNOTSUPP;
                out[i].i = 0;
                if (!rd || fi < 0)
                        continue;
                if (rd->fv && b->api.field_values &&
                    (s->method[fi] == M_UNKNOWN || s->method[fi] == M_PRIMARY)) {
                        memset(&fvs[nfv], 0, sizeof(fvs[nfv]));
                        fvs[nfv].fieldId = rd->fv;
                        fv_of[i] = nfv++;
                }
        }
        if (nfv > 0) {
                int64_t t0 = call_clock_ns();
                int rc = b->api.field_values(h, nfv, fvs);
                call_account(G_NONE, t0);
                if (rc == NVML_ERROR_GPU_IS_LOST)
                        goto lost;
                if (rc != NVML_SUCCESS) /* whole call failed: treat each entry as failed */
                        for (int k = 0; k < nfv; k++)
                                fvs[k].nvmlReturn = rc;
        }

        /* Pass 2: take batched results, fall back to getters, learn what works. */
        for (size_t i = 0; i < n; i++) {
                const field_read *rd = read_for(fields[i]);
                int fi = field_index(fields[i]);
                const field_meta *m;
                if (!rd || fi < 0)
                        continue;
                m = field_by_id(fields[i]);
                if (s->method[fi] == M_UNSUPPORTED)
                        continue;
                if (fv_of[i] >= 0) {
                        const nvmlFieldValue_t *fv = &fvs[fv_of[i]];
                        if (fv->nvmlReturn == NVML_ERROR_GPU_IS_LOST)
                                goto lost;
                        if (fv->nvmlReturn == NVML_SUCCESS) {
                                double d = 0;
                                unsigned long long u = 0;
                                int isd;
                                fv_to_number(fv, &d, &u, &isd);
                                store_value(m, rd->conv, d, u, isd, &out[i]);
                                s->method[fi] = M_PRIMARY;
                                continue;
                        }
                        if (fv->nvmlReturn != NVML_ERROR_NOT_SUPPORTED) {
                                out[i].status = backend_errno_from_nvml(fv->nvmlReturn);
                                continue; /* a transient failure: try again next time */
                        }
                }
                if (rd->getter == G_NONE) {
                        s->method[fi] = M_UNSUPPORTED;
                        continue;
                }
                if (rd->getter == G_GPM_METRICS) {
                        if (ngpm < GPM_FIELDS_MAX)
                                gpm_of[ngpm++] = i;
                        continue;
                }
                if (!gr[rd->getter].done)
                        run_getter(b, h, rd->getter, &gr[rd->getter]);
                if (gr[rd->getter].err == -ENODEV)
                        goto lost;
                if (gr[rd->getter].err == -EOPNOTSUPP) {
                        s->method[fi] = M_UNSUPPORTED;
                        continue;
                }
                if (gr[rd->getter].err < 0) {
                        out[i].status = gr[rd->getter].err;
                        continue;
                }
                if (gr[rd->getter].u[rd->slot] == ULLONG_MAX) { /* e.g. reserved with v1 memory */
                        s->method[fi] = M_UNSUPPORTED;
                        continue;
                }
                store_value(m, rd->conv, 0, gr[rd->getter].u[rd->slot], 0, &out[i]);
                s->method[fi] = rd->fv ? M_FALLBACK : M_PRIMARY;
        }
        if (ngpm > 0 && gpm_read(b, s, h, fields, gpm_of, ngpm, out) == -ENODEV)
                goto lost;
        return 0;

lost:
        mark_lost(b, idx);
        for (size_t i = 0; i < n; i++)
                out[i].status = -ENODEV;
        return -ENODEV;
}

/* ---- open / identity ------------------------------------------------------------------- */

static int resolve(backend *b, char *err, size_t errlen)
{
#define NVML_FN(ret, member, required, args, ...)                                                  \
        {                                                                                          \
                static const char *const names[] = {__VA_ARGS__, NULL};                            \
                b->api.member = NULL;                                                              \
                for (const char *const *nm = names; *nm && !b->api.member; nm++)                   \
                        *(void **)&b->api.member = dlsym(b->dl, *nm);                              \
                if (!b->api.member && (required)) {                                                \
                        snprintf(err, errlen, "'%s' does not export '%s'", b->library, names[0]);  \
                        return -ENOSYS;                                                            \
                }                                                                                  \
        }
#include "nvml/nvml_syms.h"
#undef NVML_FN
        return 0;
}

/* Where the fake NVML lives: $VIGIL_FAKENVML, next to our binary (../lib), the install dir. */
static void find_fake(char *path, size_t len)
{
        const char *env = getenv("VIGIL_FAKENVML");
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env) {
                snprintf(path, len, "%s", env);
                return;
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
                char *slash;
                exe[n] = '\0';
                slash = strrchr(exe, '/');
                if (slash) {
                        *slash = '\0';
                        static const char *const rel[] = {"/../lib/libvigil-fakenvml.so",
                                                          "/../lib/vigil/libvigil-fakenvml.so"};
                        for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
                                if (strlen(exe) + strlen(rel[i]) >= len)
                                        continue;
                                strcpy(path, exe);
                                strcat(path, rel[i]);
                                if (access(path, R_OK) == 0)
                                        return;
                        }
                }
        }
        snprintf(path, len, "libvigil-fakenvml.so");
}

static int attach(backend *b, unsigned idx)
{
        gpu_slot *s = &b->gpus[idx];
        nvmlDevice_t h = NULL;
        char uuid[96] = "";
        int rc = NVML_ERROR_NOT_FOUND;

        if (s->uuid[0] && b->api.handle_by_uuid)
                rc = b->api.handle_by_uuid(s->uuid, &h);
        if (rc != NVML_SUCCESS)
                rc = b->api.handle_by_index(idx, &h);
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        rc = b->api.uuid(h, uuid, sizeof(uuid));
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        pthread_mutex_lock(&s->lock);
        s->handle = h;
        s->lost = 0;
        snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
        memset(s->method, M_UNKNOWN, field_count());
        pthread_mutex_unlock(&s->lock);
        gpm_attach(b, s, h);
        return 0;
}

int backend_open(const backend_options *opt, backend **ret, char *err, size_t errlen)
{
        _cleanup_free_ backend *b = calloc(1, sizeof(*b));
        const char *lib = opt && opt->library ? opt->library : "libnvidia-ml.so.1";
        int r, rc;

        if (!b)
                return -ENOMEM;
        if (opt && opt->simulate)
                find_fake(b->library, sizeof(b->library));
        else
                snprintf(b->library, sizeof(b->library), "%s", lib);

        b->dl = dlopen(b->library, RTLD_NOW | RTLD_LOCAL);
        if (!b->dl) {
                snprintf(err, errlen, "cannot load NVML library '%s': %s", b->library, dlerror());
                return -ELIBACC;
        }
        r = resolve(b, err, errlen);
        if (r < 0)
                goto fail;

        {
                int (*configure)(const char *, char *, size_t) =
                    (int (*)(const char *, char *, size_t))dlsym(b->dl, "vigil_fake_configure");
                *(void **)&b->fake_inject = dlsym(b->dl, "vigil_fake_inject");
                *(void **)&b->fake_stats = dlsym(b->dl, "vigil_fake_stats");
                b->fake = configure != NULL;
                if (opt && opt->simulate && !configure) {
                        snprintf(err, errlen, "'%s' is not the Vigil fake NVML", b->library);
                        r = -ELIBBAD;
                        goto fail;
                }
                if (configure) {
                        r = configure(opt ? opt->scenario : NULL, err, errlen);
                        if (r < 0)
                                goto fail;
                }
        }

        rc = b->api.init();
        if (rc != NVML_SUCCESS) {
                const char *why = b->api.error_string ? b->api.error_string(rc) : "error";
                snprintf(err, errlen, "cannot initialise NVML from '%s': %s", b->library, why);
                r = backend_errno_from_nvml(rc);
                goto fail;
        }
        rc = b->api.device_count(&b->count);
        if (rc != NVML_SUCCESS) {
                snprintf(err, errlen, "cannot count GPUs: %s",
                         b->api.error_string ? b->api.error_string(rc) : "error");
                r = backend_errno_from_nvml(rc);
                b->api.shutdown();
                goto fail;
        }
        if (b->count > MAX_GPUS) {
                log_warn("backend", "found %u GPUs, watching the first %d", b->count, MAX_GPUS);
                b->count = MAX_GPUS;
        }
        for (unsigned i = 0; i < MAX_GPUS; i++) {
                pthread_mutex_init(&b->gpus[i].lock, NULL);
                pthread_mutex_init(&b->gpus[i].gpm_lock, NULL);
                b->gpus[i].gpm_prev = -1;
                b->gpus[i].gpm_supported = -1;
                b->gpus[i].method = calloc(field_count(), 1);
                if (!b->gpus[i].method) {
                        r = -ENOMEM;
                        b->api.shutdown();
                        goto fail;
                }
        }
        for (unsigned i = 0; i < b->count; i++) {
                r = attach(b, i);
                if (r < 0) {
                        log_warn("backend", "failed to attach GPU %u: %s", i, strerror(-r));
                        b->gpus[i].lost = 1;
                }
        }
        *ret = TAKE_PTR(b);
        return 0;
fail:
        for (unsigned i = 0; i < MAX_GPUS; i++)
                free(b->gpus[i].method);
        dlclose(b->dl);
        return r;
}

backend *backend_close(backend *b)
{
        if (!b)
                return NULL;
        if (b->events && b->api.event_set_free)
                b->api.event_set_free(b->events);
        for (unsigned i = 0; i < MAX_GPUS; i++) { /* GPM samples go back before shutdown */
                pthread_mutex_lock(&b->gpus[i].gpm_lock);
                gpm_release_locked(b, &b->gpus[i]);
                pthread_mutex_unlock(&b->gpus[i].gpm_lock);
        }
        b->api.shutdown();
        for (unsigned i = 0; i < MAX_GPUS; i++) {
                free(b->gpus[i].method);
                pthread_mutex_destroy(&b->gpus[i].lock);
                pthread_mutex_destroy(&b->gpus[i].gpm_lock);
        }
        dlclose(b->dl);
        free(b);
        return NULL;
}

int backend_is_fake(const backend *b)
{
        return b->fake;
}

const char *backend_library(const backend *b)
{
        return b->library;
}

void backend_versions(backend *b, char *driver, size_t dlen, char *nvml, size_t nlen)
{
        char tmp[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];

        driver[0] = nvml[0] = '\0';
        if (b->api.system_driver_version &&
            b->api.system_driver_version(tmp, sizeof(tmp)) == NVML_SUCCESS)
                snprintf(driver, dlen, "%s", tmp);
        if (b->api.system_nvml_version &&
            b->api.system_nvml_version(tmp, sizeof(tmp)) == NVML_SUCCESS)
                snprintf(nvml, nlen, "%s", tmp);
}

int backend_device_count(backend *b, unsigned *count)
{
        *count = b->count;
        return 0;
}

int backend_device_info(backend *b, unsigned idx, gpu_identity *out)
{
        gpu_identity id = {.minor = -1};
        nvmlPciInfo_t pci;
        unsigned minor;
        nvmlDevice_t h;
        int lost, rc;

        if (idx >= b->count)
                return -EINVAL;
        h = slot_handle(b, idx, &lost);
        if (lost)
                return -ENODEV;
        rc = b->api.uuid(h, id.uuid, sizeof(id.uuid));
        if (rc == NVML_ERROR_GPU_IS_LOST) {
                mark_lost(b, idx);
                return -ENODEV;
        }
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        if (CALL(b, name, h, id.name, sizeof(id.name)) != NVML_SUCCESS)
                id.name[0] = '\0';
        if (CALL(b, serial, h, id.serial, sizeof(id.serial)) != NVML_SUCCESS)
                id.serial[0] = '\0';
        if (CALL(b, vbios_version, h, id.vbios, sizeof(id.vbios)) != NVML_SUCCESS)
                id.vbios[0] = '\0';
        if (CALL(b, inforom_image_version, h, id.inforom, sizeof(id.inforom)) != NVML_SUCCESS)
                id.inforom[0] = '\0';
        memset(&pci, 0, sizeof(pci));
        if (CALL(b, pci_info, h, &pci) == NVML_SUCCESS)
                snprintf(id.pci_bus_id, sizeof(id.pci_bus_id), "%.*s", (int)sizeof(pci.busId),
                         pci.busId);
        if (CALL(b, minor_number, h, &minor) == NVML_SUCCESS)
                id.minor = (int)minor;
        *out = id;
        return 0;
}

int backend_reattach(backend *b, unsigned idx)
{
        int r;

        if (idx >= b->count)
                return -EINVAL;
        r = attach(b, idx);
        if (r < 0)
                return -ENODEV;
        /* A handle can be returned while the device still fails: confirm with a cheap read. */
        {
                gpu_identity id;
                r = backend_device_info(b, idx, &id);
                if (r < 0) {
                        mark_lost(b, idx);
                        return -ENODEV;
                }
        }
        if (b->events && b->api.register_events) {
                unsigned long long types = 0;
                nvmlDevice_t h = b->gpus[idx].handle;
                if (CALL(b, supported_event_types, h, &types) == NVML_SUCCESS) {
                        types &= nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError |
                                 nvmlEventTypeSingleBitEccError;
                        if (types)
                                b->api.register_events(h, types, b->events);
                }
        }
        return 0;
}

/* ---- events ---------------------------------------------------------------------------- */

int backend_events_start(backend *b)
{
        unsigned registered = 0;
        int rc;

        if (!b->api.event_set_create || !b->api.register_events || !b->api.event_set_wait)
                return -EOPNOTSUPP;
        rc = b->api.event_set_create(&b->events);
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        for (unsigned i = 0; i < b->count; i++) {
                unsigned long long types = nvmlEventTypeXidCriticalError |
                                           nvmlEventTypeDoubleBitEccError |
                                           nvmlEventTypeSingleBitEccError;
                unsigned long long supported = 0;
                int lost;
                nvmlDevice_t h = slot_handle(b, i, &lost);
                if (lost)
                        continue;
                if (CALL(b, supported_event_types, h, &supported) == NVML_SUCCESS)
                        types &= supported;
                if (!types)
                        continue;
                rc = b->api.register_events(h, types, b->events);
                if (rc == NVML_SUCCESS)
                        registered++;
                else
                        log_warn("backend", "failed to register events on GPU %u: %s", i,
                                 strerror(-backend_errno_from_nvml(rc)));
        }
        return registered ? 0 : -EOPNOTSUPP;
}

int backend_wait_event(backend *b, unsigned timeout_ms, backend_event *ev)
{
        nvmlEventData_t d;
        int rc;

        if (!b->events)
                return -EOPNOTSUPP;
        memset(&d, 0, sizeof(d));
        rc = b->api.event_set_wait(b->events, &d, timeout_ms);
        if (rc == NVML_ERROR_TIMEOUT)
                return -ETIMEDOUT;
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        ev->gpu = UINT32_MAX;
        for (unsigned i = 0; i < b->count; i++)
                if (b->gpus[i].handle == d.device)
                        ev->gpu = i;
        if (ev->gpu == UINT32_MAX)
                return -ENODEV;
        if (d.eventType & nvmlEventTypeXidCriticalError)
                ev->kind = BEV_XID;
        else if (d.eventType & nvmlEventTypeDoubleBitEccError)
                ev->kind = BEV_ECC_DBE;
        else if (d.eventType & nvmlEventTypeSingleBitEccError)
                ev->kind = BEV_ECC_SBE;
        else
                return -EAGAIN;
        ev->data = d.eventData;
        ev->ts_us = time_real_us();
        return 0;
}

/* ---- mutators -------------------------------------------------------------------------- */

int backend_set_power_limit(backend *b, unsigned idx, unsigned milliwatts)
{
        nvmlDevice_t h;
        int lost;

        if (idx >= b->count)
                return -EINVAL;
        h = slot_handle(b, idx, &lost);
        if (lost)
                return -ENODEV;
        return backend_errno_from_nvml(CALL(b, set_power_limit, h, milliwatts));
}

int backend_compute_processes(backend *b, unsigned idx, unsigned *count)
{
        nvmlDevice_t h;
        unsigned n = 0;
        int lost, rc;

        if (idx >= b->count)
                return -EINVAL;
        h = slot_handle(b, idx, &lost);
        if (lost)
                return -ENODEV;
        rc = CALL(b, compute_processes, h, &n, NULL);
        if (rc != NVML_SUCCESS && rc != NVML_ERROR_INSUFFICIENT_SIZE)
                return backend_errno_from_nvml(rc);
        *count = n;
        return 0;
}

#define RESET_TIMEOUT_US (60 * USEC_PER_SEC) /* nvidia-smi --gpu-reset is killed after this */

/* nvidia-smi --gpu-reset -i BUSID; output discarded, killed after RESET_TIMEOUT_US. */
static int reset_with_nvidia_smi(const char *bus_id, char *err, size_t errlen)
{
        int64_t deadline = time_mono_us() + RESET_TIMEOUT_US;
        int status = 0;
        pid_t pid = fork();

        if (pid < 0) {
                snprintf(err, errlen, "failed to start nvidia-smi: %s", strerror(errno));
                return -errno;
        }
        if (pid == 0) {
                int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (fd >= 0) {
                        dup2(fd, 0);
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execlp("nvidia-smi", "nvidia-smi", "--gpu-reset", "-i", bus_id, (char *)NULL);
                _exit(127);
        }
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        snprintf(err, errlen, "failed to wait for nvidia-smi: %s", strerror(errno));
                        return -ECHILD;
                }
                if (time_mono_us() >= deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        snprintf(err, errlen, "nvidia-smi --gpu-reset -i %s timed out", bus_id);
                        return -ETIMEDOUT;
                }
                usleep(50000);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                snprintf(err, errlen, "nvidia-smi --gpu-reset -i %s failed (%s %d)", bus_id,
                         WIFEXITED(status) ? "exit" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
        }
        return 0;
}

int backend_reset_gpu(backend *b, unsigned idx, char *err, size_t errlen)
{
        gpu_identity id;
        int r;

        if (errlen)
                err[0] = '\0';
        if (idx >= b->count) {
                snprintf(err, errlen, "no GPU %u", idx);
                return -EINVAL;
        }
        if (b->fake_inject) {
                struct fake_inject req = {.kind = FAKE_INJECT_RESET, .gpu = idx};
                return b->fake_inject(&req, err, errlen);
        }
        r = backend_device_info(b, idx, &id);
        if (r < 0) {
                snprintf(err, errlen, "failed to read the PCI bus id of GPU %u: %s", idx,
                         strerror(-r));
                return r;
        }
        return reset_with_nvidia_smi(id.pci_bus_id, err, errlen);
}

int backend_inject(backend *b, const backend_injection *req, char *err, size_t errlen)
{
        static const enum fake_inject_kind kinds[] = {
            [BACKEND_INJECT_XID] = FAKE_INJECT_XID,
            [BACKEND_INJECT_FIELD] = FAKE_INJECT_FIELD,
            [BACKEND_INJECT_FIELD_CLEAR] = FAKE_INJECT_FIELD_CLEAR,
            [BACKEND_INJECT_ECC_DBE] = FAKE_INJECT_ECC_DBE,
            [BACKEND_INJECT_ECC_SBE] = FAKE_INJECT_ECC_SBE,
            [BACKEND_INJECT_LOST] = FAKE_INJECT_LOST,
            [BACKEND_INJECT_CALL_COST] = FAKE_INJECT_CALL_COST,
            [BACKEND_INJECT_ADVANCE] = FAKE_INJECT_ADVANCE,
        };
        struct fake_inject f;

        if (!b->fake_inject) {
                snprintf(err, errlen, "injection needs the fake NVML (vigild --simulate)");
                return -ENOENT;
        }
        if ((unsigned)req->kind >= ARRAY_SIZE(kinds) || !kinds[req->kind]) {
                snprintf(err, errlen, "unknown injection kind %d", (int)req->kind);
                return -EINVAL;
        }
        f = (struct fake_inject){.kind = kinds[req->kind],
                                 .gpu = req->gpu,
                                 .field_id = req->field_id,
                                 .value = req->value,
                                 .count = req->count,
                                 .call = req->call};
        return b->fake_inject(&f, err, errlen);
}

int backend_fake_stats(backend *b, unsigned long long *calls, unsigned long long *cost_ns)
{
        struct fake_stats st = {0};

        if (!b->fake_stats)
                return -ENOENT;
        b->fake_stats(&st);
        *calls = st.calls;
        *cost_ns = st.cost_ns;
        return 0;
}
