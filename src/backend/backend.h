/* backend.h — the only door to GPUs. A table of operations with one real implementation, the NVML
 * backend (nvml_*.c), which also drives the fake NVML for --simulate. Everything above this layer
 * speaks DCGM field ids and negative errno; NVML return codes never leave nvml_errno.c.
 *
 * Threads: backend_sample() may be called concurrently from several threads for different field
 * sets (the fast and slow tiers); backend_wait_events() from one event thread; backend_reattach()
 * from one thread at a time. Everything else from the owner (main) thread. */
#ifndef VIGIL_BACKEND_H
#define VIGIL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "fields/fields.h"

typedef struct backend backend;

typedef struct gpu_identity {
        char uuid[96];       /* "GPU-…" */
        char name[96];       /* product name, "NVIDIA H200" */
        char serial[32];     /* board serial, "" when not available */
        char pci_bus_id[32]; /* "00000000:18:00.0" */
        char vbios[32];      /* VBIOS version, "" when not available */
        char inforom[32];    /* InfoROM image version, "" when not available */
        int minor;           /* /dev/nvidiaN minor number, -1 when unknown */
} gpu_identity;

enum backend_event_kind {
        BEV_XID = 1,     /* data = XID code */
        BEV_ECC_SBE = 2, /* single-bit ECC error event */
        BEV_ECC_DBE = 3, /* double-bit ECC error event */
};

typedef struct backend_event {
        unsigned gpu;                 /* GPU index */
        enum backend_event_kind kind; /* what happened */
        uint64_t data;                /* XID code for BEV_XID */
        int64_t ts_us;                /* usec since epoch, when received */
} backend_event;

typedef struct backend_options {
        const char *library;  /* NVML library to dlopen; NULL = "libnvidia-ml.so.1" */
        int simulate;         /* load the fake NVML instead */
        const char *scenario; /* fake NVML scenario file, NULL = built-in default */
} backend_options;

/* Open the library and initialise NVML. On failure returns -errno and writes a reason to err
 * (e.g. "cannot load 'libnvidia-ml.so.1': not found"). Caller owns *ret. */
int backend_open(const backend_options *opt, backend **ret, char *err, size_t errlen);
backend *backend_close(backend *b); /* NULL ok; returns NULL */

int backend_is_fake(const backend *b);
const char *backend_library(const backend *b); /* path actually loaded */
/* Driver and NVML versions ("" when unknown). */
void backend_versions(backend *b, char *driver, size_t dlen, char *nvml, size_t nlen);

int backend_device_count(backend *b, unsigned *count);
/* Identity of one GPU; -ENODEV when it is lost. */
int backend_device_info(backend *b, unsigned idx, gpu_identity *out);
/* Read n fields of GPU idx. Always fills out[0..n): status 0 with a value in the field's stored
 * unit, or -EOPNOTSUPP / -EACCES / -EIO / -ENODEV per field. Returns 0, or -ENODEV when the GPU
 * is lost (then every status is -ENODEV). Fields found unsupported are not asked again until the
 * GPU is re-attached. Does not allocate. */
int backend_sample(backend *b, unsigned idx, const uint16_t *fields, size_t n, field_value *out);
/* Forget GPU idx's previous GPM sample: the next profiling read takes a new one and answers
 * -ENODATA, instead of an average over however long no profiling field was read. */
void backend_gpm_restart(backend *b, unsigned idx);
/* Re-acquire a lost GPU (by UUID, then by index) and forget what was learned about it.
 * Returns 0 when it answers again, else -ENODEV. */
int backend_reattach(backend *b, unsigned idx);

/* Register for XID and ECC events on every GPU. -EOPNOTSUPP when no GPU supports them. */
int backend_events_start(backend *b);
/* Wait up to timeout_ms for one event. 0 with *ev filled, -ETIMEDOUT, or -errno. */
int backend_wait_event(backend *b, unsigned timeout_ms, backend_event *ev);

/* Guarded mutators (tested against the fake NVML only). */
int backend_set_power_limit(backend *b, unsigned idx, unsigned milliwatts);
/* Compute processes running on GPU idx now (nvmlDeviceGetComputeRunningProcesses_v3 asked with
 * an empty buffer: NVML answers INSUFFICIENT_SIZE with the count when there are any). 0 with
 * *count set, -ENODEV (lost), -EOPNOTSUPP or -errno; *count untouched on failure. Any thread. */
int backend_compute_processes(backend *b, unsigned idx, unsigned *count);
/* Reset GPU idx. Fake NVML: the fake's reset (volatile counters and pending flags cleared, the
 * reset counted). Real NVML has no public reset entry point: runs `nvidia-smi --gpu-reset -i
 * <PCI bus id>` (fork/exec, killed after 60 s) — the caller decides whether that is allowed
 * (policies[].allow_reset_on_real_gpu). 0 or -errno with a reason in err. Blocks. */
int backend_reset_gpu(backend *b, unsigned idx, char *err, size_t errlen);
/* Injection into the fake NVML (tests, POST /api/v1/inject). The backend owns this type and
 * translates it to the fake's extension ABI (nvml/fake_ext.h), so nothing above the backend
 * knows the fake's structures. */
enum backend_inject_kind {
        BACKEND_INJECT_XID = 1,         /* count = XID code */
        BACKEND_INJECT_FIELD = 2,       /* field_id, value (DCGM unit), held until FIELD_CLEAR */
        BACKEND_INJECT_FIELD_CLEAR = 3, /* field_id */
        BACKEND_INJECT_ECC_DBE = 4,     /* count = errors to add; raises the event */
        BACKEND_INJECT_ECC_SBE = 5,     /* count = errors to add; raises the event */
        BACKEND_INJECT_LOST = 6,        /* count = 1 lost, 0 back */
        BACKEND_INJECT_CALL_COST = 7,   /* call = NVML function or "*", count = ns (or % for "*") */
        BACKEND_INJECT_ADVANCE = 8,     /* count = us the fake's scenario clock moves ahead */
};

typedef struct backend_injection {
        enum backend_inject_kind kind;
        unsigned gpu;      /* GPU index (all kinds but CALL_COST) */
        unsigned field_id; /* DCGM field id */
        double value;      /* FIELD */
        long long count;   /* see the kinds */
        const char *call;  /* CALL_COST */
} backend_injection;

/* Fake NVML only: -ENOENT when the loaded library is not the fake; -EINVAL, -ENODEV with a
 * reason in err when the fake refuses. */
int backend_inject(backend *b, const backend_injection *req, char *err, size_t errlen);

/* Fake NVML only: NVML calls made and CPU burnt modelling their cost since load (the "floor" an
 * agent cannot go below). -ENOENT when the loaded library is not the fake. */
int backend_fake_stats(backend *b, unsigned long long *calls, unsigned long long *cost_ns);

/* Self-monitoring: NVML calls made by backend_sample() since start, per NVML function, and the
 * wall time spent in them. Fills up to max entries (functions never called are left out) and
 * returns how many. Process-wide counters; any thread; no allocation. */
typedef struct backend_call_stat {
        const char *call;         /* NVML function name; static string */
        unsigned long long calls; /* since start */
        unsigned long long ns;    /* wall time inside the calls, nanoseconds */
} backend_call_stat;
size_t backend_call_stats(backend_call_stat *out, size_t max);

/* NVLink, per link, as the slow tier last read it (the sweep that reads the NVLink error fields
 * 409/419/429/439 refreshes it: one batched nvmlDeviceGetFieldValues over every link, one CRC
 * data counter per link, the remote end when a link comes up). Counters are UINT64_MAX when the
 * GPU does not report them. */
#define BACKEND_NVLINK_MAX 18

enum backend_nvlink_remote {
        BNL_REMOTE_UNKNOWN = 0, /* not known (link down, or NVML does not say) */
        BNL_REMOTE_GPU = 1,     /* another GPU (direct NVLink) */
        BNL_REMOTE_SWITCH = 2,  /* an NVSwitch */
        BNL_REMOTE_OTHER = 3,   /* e.g. an IBM NPU */
};

typedef struct backend_nvlink {
        int state;                         /* 1 up, 0 down, -EOPNOTSUPP when the link is absent */
        unsigned version;                  /* NVLink version (4 on Hopper), 0 when unknown */
        enum backend_nvlink_remote remote; /* what is at the other end */
        char remote_bus_id[32];            /* PCI bus id of the other end, "" when unknown */
        unsigned remote_pci_device_id;     /* its 16-bit device << 16 | vendor, 0 when unknown */
        uint64_t crc_flit, crc_data;       /* CRC errors (flow-control digit, data) */
        uint64_t replay, recovery;         /* replay and recovery errors */
        uint64_t tx_kib, rx_kib;           /* payload sent / received, KiB, cumulative */
} backend_nvlink;

typedef struct backend_nvlink_info {
        int status;                               /* 0, -EOPNOTSUPP (no NVLink), -ENODATA (not
                                                  * read yet), -ENODEV (lost) */
        int64_t ts_us;                            /* usec since epoch of the read */
        unsigned n_links;                         /* entries of links[] the GPU reports */
        backend_nvlink links[BACKEND_NVLINK_MAX]; /* by link id */
} backend_nvlink_info;

/* Copy of the last NVLink read of GPU idx (no NVML call: safe from HTTP threads). 0, or -EINVAL
 * for a bad index; out->status says what the read gave. */
int backend_nvlink_get(backend *b, unsigned idx, backend_nvlink_info *out);

/* MIG: the instances of a GPU in MIG mode, with their memory, as the slow tier last read them
 * (it discovers them again every sweep, so a GPU switched into or out of MIG mode while vigild runs
 * is picked up within one slow interval). Read-only: Vigil never changes the mode. */
#define BACKEND_MIG_MAX 16

typedef struct backend_mig_instance {
        unsigned gpu_instance;     /* GPU instance id (GPU_I_ID) */
        unsigned compute_instance; /* compute instance id */
        char uuid[96];             /* "MIG-…" */
        char profile[32];          /* "1g.18gb" (GPU_I_PROFILE), "" when unknown */
        int mem_status;            /* 0, or -errno when memory could not be read */
        uint64_t mem_total;        /* bytes */
        uint64_t mem_used;         /* bytes */
        uint64_t mem_free;         /* bytes */
} backend_mig_instance;

typedef struct backend_mig_info {
        int status;       /* 0, -EOPNOTSUPP (no MIG), -ENODATA (not read yet), -ENODEV (lost) */
        int64_t ts_us;    /* usec since epoch of the read */
        int mode;         /* 1 enabled, 0 disabled */
        int pending_mode; /* the mode after the next reset */
        unsigned n;       /* instances in inst[] */
        backend_mig_instance inst[BACKEND_MIG_MAX];
} backend_mig_info;

/* Copy of the last MIG read of GPU idx (no NVML call). 0 or -EINVAL. */
int backend_mig_get(backend *b, unsigned idx, backend_mig_info *out);

/* Topology: how each pair of GPUs is connected on the PCIe tree and which CPUs and NUMA node are
 * near each GPU. Read when the backend opens and again when a GPU is re-attached (never on a
 * sampling or HTTP path). */
#define BACKEND_TOPO_MAX 64

enum backend_topo_level {
        BTOPO_SELF = 0,    /* the same GPU */
        BTOPO_BOARD = 1,   /* the same board (NVML INTERNAL) */
        BTOPO_PIX = 2,     /* one PCIe switch between them (SINGLE) */
        BTOPO_PXB = 3,     /* several PCIe switches, no host bridge (MULTIPLE) */
        BTOPO_PHB = 4,     /* the same PCIe host bridge (HOSTBRIDGE) */
        BTOPO_NODE = 5,    /* host bridges of one NUMA node (NODE) */
        BTOPO_SYS = 6,     /* across NUMA nodes (SYSTEM) */
        BTOPO_UNKNOWN = 7, /* NVML could not tell */
};

typedef struct backend_topology {
        unsigned n;                                              /* GPUs */
        int64_t ts_us;                                           /* usec since epoch of the read */
        unsigned char level[BACKEND_TOPO_MAX][BACKEND_TOPO_MAX]; /* enum backend_topo_level */
        int numa_node[BACKEND_TOPO_MAX];                         /* -1 when unknown */
        char cpus[BACKEND_TOPO_MAX][128];                        /* CPU list "0-55,112-167", "" */
} backend_topology;

/* Copy of the topology read at open / re-attach (no NVML call). 0 or -ENODATA (not read). */
int backend_topology_get(backend *b, backend_topology *out);
/* The short name nvidia-smi topo -m prints for a level: "X", "PIX", "SYS", … */
const char *backend_topo_level_name(enum backend_topo_level l);

/* NVML return code → negative errno (exposed for the contract test). */
int backend_errno_from_nvml(int nvml_return);

#endif
