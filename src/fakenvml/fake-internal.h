/* fake-internal.h — private layout of the fake NVML: the parsed scenario, the value sources, the
 * replay trace and the engine (the simulated world that the NVML entry points read). Shared by the
 * files of src/fakenvml only; nothing outside this directory includes it except the fuzz target
 * and the unit tests of the core library.
 *
 * Units: every simulated value is a double in the DCGM unit of its field (fields.def `unit`);
 * conversion to NVML units happens in nvml_api.c. Scenario times are microseconds since the
 * first nvmlInit after the scenario was configured, plus the fake time that tests added with
 * vigil_fake_advance (FAKE_INJECT_ADVANCE). */
#ifndef VIGIL_FAKENVML_INTERNAL_H
#define VIGIL_FAKENVML_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvml/nvml_types.h"
#include "nvml/fake_ext.h"

#define FAKE_GPUS_MAX       64         /* simulated GPUs per scenario */
#define FAKE_FIELDS_MAX     192        /* catalog entries the value model can hold */
#define FAKE_EVENTS_MAX     4096       /* scripted events per scenario */
#define FAKE_MIG_MAX        7          /* MIG instances per GPU (H100/H200: 7) */
#define FAKE_FV_IDS         512        /* NVML field ids with their own FieldValues cost: 0..511 */
#define FAKE_SCENARIO_MAX   (1 << 20)  /* bytes of scenario YAML */
#define FAKE_TRACE_MAX      (64 << 20) /* bytes of trace CSV */
#define FAKE_TRACE_ROWS_MAX 1000000    /* rows of trace CSV */
#define FAKE_QUEUE_LEN      256        /* undelivered events per event set; oldest dropped */
#define FAKE_ADVANCE_MAX_US (366LL * 86400 * 1000000) /* one advance step: a year (us) */
#define FAKE_PROCS_MAX      64 /* scripted processes per GPU (per_gpu.processes list) */

/* One entry per NVML_FN line of nvml_syms.h: all versions of a function share one slot. */
enum fake_call {
#define NVML_FN(ret, member, req, params, ...) FAKE_CALL_##member,
#include "nvml/nvml_syms.h"
#undef NVML_FN
        FAKE_CALL_COUNT,
};

/* Slot of an NVML function name ("nvmlInit_v2" and "nvmlInit" give the same), or -1. */
int fake_call_from_name(const char *name);
/* The newest name of a slot. */
const char *fake_call_name(enum fake_call c);
/* Every exported name, NULL-terminated (for the tests). */
const char *const *fake_call_all_names(void);

/* ---- value sources (source.c) ---- */

enum fake_src_kind {
        SRC_DEFAULT =
            0, /* nothing set: the trace if it maps the field, else the built-in default */
        SRC_CONST = 1,
        SRC_RAMP = 2,
        SRC_NOISE = 3,
        SRC_STEP = 4,
        SRC_RATE = 5,
};

struct fake_source {
        enum fake_src_kind kind;
        double v0;     /* const value, ramp from, noise mean, step before, rate start */
        double v1;     /* ramp to, noise stddev, step after, rate per second */
        int64_t t_us;  /* ramp over, step at, noise period (us) */
        uint64_t seed; /* noise seed */
};

/* Columns of a trace CSV that feed a field; others (t_us, tick_wall_us, unknown) are ignored. */
enum fake_trace_col {
        TC_TEMP = 0,
        TC_POWER,
        TC_PINST,
        TC_ENERGY,
        TC_MEMTEMP,
        TC_UTIL_GPU,
        TC_UTIL_MEM,
        TC_MEM_USED,
        TC_SM_MHZ,
        TC_MEM_MHZ,
        TC_REASONS,
        TC_COUNT,
};

struct fake_trace {
        size_t rows;            /* data rows */
        int64_t *t_us;          /* row time relative to the first row (us) */
        double *col[TC_COUNT];  /* per column, in the field's DCGM unit; NULL when absent */
        int64_t length_us;      /* loop length: last row time + one median period (us) */
        double energy_per_loop; /* mJ the energy counter gains per loop (keeps it monotonic) */
};

/* The DCGM field a trace column feeds (FLD_*), or 0. */
unsigned fake_trace_col_field(enum fake_trace_col c);
/* Parse CSV text (header line with column names, then numbers). name is used in errors. */
int fake_trace_parse(const char *data, size_t len, const char *name, struct fake_trace **ret,
                     char *err, size_t errlen);
int fake_trace_load(const char *path, struct fake_trace **ret, char *err, size_t errlen);
/* The trace embedded at build time from tests/data/h200-10hz-load.csv. */
int fake_trace_builtin(struct fake_trace **ret, char *err, size_t errlen);
struct fake_trace *fake_trace_free(struct fake_trace *t);
/* Value of column c at position pos_us (>= 0) of the looping replay: the row at or before it. */
double fake_trace_value(const struct fake_trace *t, enum fake_trace_col c, int64_t pos_us);

/* Value of a source at scenario time t_us; gpu and field seed the noise. */
double fake_source_eval(const struct fake_source *s, int64_t t_us, unsigned gpu, unsigned field);

/* ---- scenario (scenario.c) ---- */

/* A scripted process on a GPU (per_gpu.processes as a list). */
struct fake_proc {
        unsigned pid;               /* process id reported */
        uint64_t mem_bytes;         /* usedGpuMemory, bytes */
        bool compute, graphics;     /* which running-process lists report it */
        bool util;                  /* has utilisation samples (any of sm/mem/enc/dec given) */
        unsigned sm, mem, enc, dec; /* utilisation, percent */
        unsigned gi, ci;            /* MIG GPU / compute instance, 0xFFFFFFFF when not MIG */
        int64_t from_us;            /* scenario time it starts (us) */
        int64_t until_us;           /* scenario time it ends (us); 0 = runs on */
};

struct fake_gpu_conf {
        char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
        char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
        char serial[NVML_DEVICE_SERIAL_BUFFER_SIZE];
        char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* "00000000:18:00.0" */
        char vbios[NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE];
        char inforom[NVML_DEVICE_INFOROM_VERSION_BUFFER_SIZE];
        unsigned pci_domain, pci_bus, pci_device; /* parsed from bus_id */
        unsigned pci_device_id;                   /* 16-bit device << 16 | vendor 0x10de */
        unsigned pci_subsystem_id;                /* subsystem device << 16 | vendor */
        bool trace;                               /* replay the scenario's trace */
        int64_t trace_offset_us;                  /* where in the trace this GPU starts (us) */
        struct fake_source src[FAKE_FIELDS_MAX];  /* by field_index() */
        bool unsupported[FAKE_FIELDS_MAX];        /* by field_index() */
        unsigned processes;                       /* compute processes the GPU reports running */
        struct fake_proc procs[FAKE_PROCS_MAX];   /* scripted processes (list form) */
        unsigned n_procs;                         /* entries of procs[]; 0: use processes */
        bool accounting;                          /* accounting mode reported on */
        uint32_t nvlink_down;                     /* bit l: NVLink l reports inactive */
        int numa_node;                            /* NUMA node of the GPU, -1 for the default */
        char mig[FAKE_MIG_MAX][16];               /* MIG instance profiles, "1g.18gb" */
        unsigned n_mig;                           /* MIG instances (0: MIG mode off) */
        int64_t mig_at_us;                        /* scenario time MIG mode turns on (us) */
};

enum fake_event_kind {
        FEV_XID = 1,
        FEV_ECC_DBE = 2,
        FEV_ECC_SBE = 3,
        FEV_LOST = 4,
};

struct fake_event_conf {
        int64_t at_us;             /* scenario time (us) */
        unsigned gpu;              /* GPU index */
        enum fake_event_kind kind; /* what happens */
        long long value;           /* XID code, ECC errors added, lost 1 / back 0 */
};

struct fake_scenario {
        char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
        char nvml_version[NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE];
        unsigned gpu_count;       /* 1..FAKE_GPUS_MAX */
        unsigned nvlink_links;    /* NVLinks per GPU (0: no NVLink, a PCIe card), <= 18 */
        unsigned nvlink_version;  /* NVLink version the links report */
        unsigned numa_nodes;      /* NUMA nodes the GPUs are spread over (>= 1) */
        unsigned cpus_per_node;   /* CPUs per NUMA node, for the CPU affinity masks */
        struct fake_trace *trace; /* owned; NULL when no GPU replays */
        struct fake_gpu_conf gpus[FAKE_GPUS_MAX];
        int64_t cost_cpu_ns[FAKE_CALL_COUNT];   /* CPU burnt per call (ns) */
        int64_t cost_sleep_ns[FAKE_CALL_COUNT]; /* extra wall sleep per call (ns) */
        int64_t fv_cost_ns[FAKE_FV_IDS];        /* extra CPU per FieldValues entry (ns); <0 unset */
        int64_t fv_cost_default_ns;             /* for ids without their own (ns) */
        unsigned cost_scale_pct;                /* multiplies every cost; 100 = as given */
        bool not_root; /* `root: false`: the configuration setters answer NO_PERMISSION */
        struct fake_event_conf *events; /* owned, sorted by at_us */
        size_t n_events;
};

/* Parse scenario YAML from memory. name labels errors ("FILE:LINE: reason"); base_dir resolves
 * relative trace paths (NULL: the working directory). Caller owns *ret (fake_scenario_free). */
int fake_scenario_parse(const char *data, size_t len, const char *name, const char *base_dir,
                        struct fake_scenario **ret, char *err, size_t errlen);
int fake_scenario_load(const char *path, struct fake_scenario **ret, char *err, size_t errlen);
/* The built-in default (tests/scenarios/default.yaml, embedded at build time). */
int fake_scenario_default(struct fake_scenario **ret, char *err, size_t errlen);
struct fake_scenario *fake_scenario_free(struct fake_scenario *s);
/* The built-in default source of a field on a GPU (never SRC_DEFAULT; unknown fields read 0). */
void fake_default_source(unsigned gpu, unsigned field, struct fake_source *out);

/* Parse "3.5ms", "700us", "20ms", "2s", "1m", bare seconds. Returns 0 or -EINVAL/-ERANGE. */
int fake_parse_duration_ns(const char *s, int64_t *ret_ns);

/* ---- engine (engine.c): the simulated world; every function is thread-safe ---- */

struct nvmlDevice_st {
        unsigned index; /* GPU index; handles are &fake_devices[index] */
};
extern struct nvmlDevice_st fake_devices[FAKE_GPUS_MAX];

int fake_engine_configure(const char *path, char *err, size_t errlen);
/* Same, from an already parsed scenario (takes ownership, also on failure). */
int fake_engine_configure_scenario(struct fake_scenario *sc, char *err, size_t errlen);
nvmlReturn_t fake_engine_init(void);
nvmlReturn_t fake_engine_shutdown(void);
/* Start of every NVML call but init/shutdown/nvmlErrorString: counts it, checks init, burns the
 * modelled cost of call c plus extra_ns. */
nvmlReturn_t fake_engine_enter(enum fake_call c, int64_t extra_ns);
/* Extra FieldValues cost for these NVML field ids (ns, before scaling). */
int64_t fake_engine_fv_cost(const nvmlFieldValue_t *values, int count);

unsigned fake_engine_gpu_count(void);
/* Scenario time (us since the scenario started). */
int64_t fake_engine_time_us(void);
/* The configuration of a GPU (immutable while initialized), or NULL. */
const struct fake_gpu_conf *fake_engine_gpu(unsigned gpu);
const struct fake_scenario *fake_engine_scenario(void);
/* Index of a handle, or -1 when it is not one of ours. */
int fake_engine_dev_index(nvmlDevice_t dev);
/* SUCCESS, INVALID_ARGUMENT (bad handle) or GPU_IS_LOST; *gpu gets the index. */
nvmlReturn_t fake_engine_dev(nvmlDevice_t dev, unsigned *gpu);
/* SUCCESS or NOT_SUPPORTED for a field on a GPU (identity checks). */
nvmlReturn_t fake_engine_supported(unsigned gpu, unsigned field);
/* Read n DCGM fields of one GPU at one instant. Returns GPU_IS_LOST, or SUCCESS with rcs[i]
 * SUCCESS / NOT_SUPPORTED per field (rcs may be NULL: then any NOT_SUPPORTED is returned). */
nvmlReturn_t fake_engine_read(unsigned gpu, const unsigned *fields, size_t n, double *vals,
                              nvmlReturn_t *rcs);
/* Scenario time now (us): real time since the first nvmlInit plus the advanced fake time. */
int64_t fake_engine_now_us(void);
/* GPU resets done through FAKE_INJECT_RESET since the scenario was configured. */
unsigned fake_engine_resets(unsigned gpu);
/* Hold a field at a value (nvmlDeviceSetPowerManagementLimit uses this). */
void fake_engine_hold(unsigned gpu, unsigned field, double value);
/* Let the field follow its source again (a reset of application clocks). */
void fake_engine_release(unsigned gpu, unsigned field);

/* What the configuration setters changed that no field holds. A GPU reset (FAKE_INJECT_RESET) or
 * a GPU coming back after it was lost restores the defaults: held power limit, application
 * clocks, compute and persistence mode are released, locked clocks cleared, and a pending ECC
 * mode becomes current. */
struct fake_cfg_state {
        bool gpu_locked;                     /* nvmlDeviceSetGpuLockedClocks in effect */
        unsigned gpu_lock_min, gpu_lock_max; /* MHz */
        bool mem_locked;                     /* nvmlDeviceSetMemoryLockedClocks in effect */
        unsigned mem_lock_min, mem_lock_max; /* MHz */
        int ecc_pending;                     /* ECC mode after the next reset, -1 = no change */
};
void fake_engine_cfg_get(unsigned gpu, struct fake_cfg_state *out);
void fake_engine_cfg_put(unsigned gpu, const struct fake_cfg_state *in);

nvmlReturn_t fake_engine_event_set_create(nvmlEventSet_t *set);
nvmlReturn_t fake_engine_event_set_free(nvmlEventSet_t set);
nvmlReturn_t fake_engine_register(unsigned gpu, unsigned long long types, nvmlEventSet_t set);
nvmlReturn_t fake_engine_wait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned timeout_ms);

#define FAKE_EVENT_TYPES                                                                           \
        (nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError |                         \
         nvmlEventTypeXidCriticalError | nvmlEventTypeClock)

int fake_engine_inject(const struct fake_inject *req, char *err, size_t errlen);
void fake_engine_stats(struct fake_stats *out);

/* Embedded files (generated at build time). */
extern const unsigned char fake_builtin_trace[];
extern const size_t fake_builtin_trace_len;
extern const unsigned char fake_builtin_scenario[];
extern const size_t fake_builtin_scenario_len;

#endif
