/* fakecuda.c — libvigil-fakecuda.so, a stand-in for libcuda.so.1: the CUDA driver API subset of
 * nvml/cuda_types.h, driven by the `cuda:` section of the same scenario files as the fake NVML
 * (and its `gpus`, `model` and `per_gpu.N.pci_bus_id`, so devices match the fake NVML's GPUs by
 * PCI bus id).
 *
 * Not a GPU: each device keeps a virtual clock that copies and kernels advance by the time the
 * scenario's bandwidths and throughputs give, and events read that clock, so a diagnostic measures
 * exactly the configured numbers. The diagnostics' kernels are recognised by name (the module's
 * `.entry` lines are parsed) and modelled: vigil_smid writes SM ids, vigil_mem_write/check run for
 * real on small buffers (device memory is backed by host memory up to 64 MiB an allocation;
 * larger ones are address space only), vigil_fma and vigil_mma (the tensor-core load) cost flops. Faults from the scenario: a memory
 * word that reads back wrong, a kernel that never finishes, a GPU that falls off the bus (it
 * also tells the fake NVML, when loaded, through vigil_fake_inject), dead SMs, slow links. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "common/yamldoc.h"
#include "nvml/cuda_types.h"
#include "nvml/fake_ext.h"

#define FC_EXPORT       __attribute__((visibility("default")))
#define FC_GPUS_MAX     64
#define FC_ALLOCS_MAX   4096
#define FC_BACKED_MAX   (64ull << 20) /* allocations up to this size get host memory */
#define FC_FUNCS_MAX    32
#define FC_NAME_MAX     64
#define FC_SCENARIO_MAX (4u << 20)

struct fc_gpu {
        char name[96];          /* product name */
        char bus_id[32];        /* "00000000:18:00.0" like the fake NVML's */
        unsigned sms;           /* multiprocessors */
        unsigned dead_sms;      /* SMs that never run a block */
        double mem_bytes;       /* total device memory */
        double h2d_gbps;        /* host to device copy, GB/s (1e9 B/s) */
        double d2h_gbps;        /* device to host */
        double dram_gbps;       /* device memory bandwidth (bytes read + written per second) */
        double p2p_gbps;        /* peer copy */
        double fp32_tflops;     /* FMA throughput */
        double tensor_tflops;   /* vigil_mma (FP16 mma.sync, FP32 accumulate) throughput */
        double latency_us;      /* added to every copy */
        int64_t fault_offset;   /* byte offset of a bad 64-bit word from the device's base, -1 */
        char hang[FC_NAME_MAX]; /* kernel that never finishes, "" */
        char lost[FC_NAME_MAX]; /* kernel during which the GPU falls off the bus, "" */
        /* state */
        double clock_s;  /* virtual device time, seconds */
        bool hung;       /* a hanging kernel was launched: synchronisation never returns */
        bool is_lost;    /* fell off the bus */
        uint64_t cursor; /* next free device address */
        uint64_t used;   /* bytes allocated */
};

struct fc_alloc {
        uint64_t ptr;  /* device address */
        uint64_t size; /* bytes */
        int gpu;       /* owner */
        uint8_t *host; /* backing store, NULL when larger than FC_BACKED_MAX */
        bool live;     /* not freed */
};

struct CUmod_st {
        int gpu;
        unsigned nfuncs;
        struct CUfunc_st {
                char name[FC_NAME_MAX];
                struct CUmod_st *mod;
        } funcs[FC_FUNCS_MAX];
};

struct CUevent_st {
        int gpu;    /* device of the context current at record time */
        double t_s; /* virtual time recorded */
        bool recorded;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fc_gpu gpus[FC_GPUS_MAX];
static unsigned ngpus;
static struct fc_alloc allocs[FC_ALLOCS_MAX];
static bool configured, initialized;
static __thread int current = -1; /* device of this thread's current context */

static const unsigned hgx_buses[] = {0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb};

static uint64_t dev_base(unsigned i)
{
        return (uint64_t)(i + 1) << 40;
}

static void defaults(unsigned n, const char *model)
{
        ngpus = n;
        for (unsigned i = 0; i < n; i++) {
                struct fc_gpu *g = &gpus[i];
                memset(g, 0, sizeof(*g));
                snprintf(g->name, sizeof(g->name), "%s", model);
                snprintf(g->bus_id, sizeof(g->bus_id), "%08X:%02X:00.0", 0,
                         i < ARRAY_SIZE(hgx_buses) ? hgx_buses[i] : (0xe0 + i) & 0xff);
                g->sms = 132;
                g->mem_bytes = 141.0 * (1ull << 30);
                g->h2d_gbps = 55;
                g->d2h_gbps = 55;
                g->dram_gbps = 4000;
                g->p2p_gbps = 400;
                g->fp32_tflops = 60;
                g->tensor_tflops = 500;
                g->latency_us = 2;
                g->fault_offset = -1;
                g->cursor = dev_base(i);
        }
}

/* ---- scenario ---------------------------------------------------------------------------- */

static int num(ydoc *d, const yaml_node_t *n, const char *what, double min, double max, double *out)
{
        const char *s = ydoc_scalar(n);
        char *end = NULL;
        double v;

        if (!s)
                return ydoc_fail(d, n, -EINVAL, "cuda: %s must be a number", what);
        errno = 0;
        v = strtod(s, &end);
        if (end == s || *end || errno || !(v >= min && v <= max))
                return ydoc_fail(d, n, -EINVAL, "cuda: %s: '%.32s' is not a number in [%g, %g]",
                                 what, s, min, max);
        *out = v;
        return 0;
}

static int str(ydoc *d, const yaml_node_t *n, const char *what, char *out, size_t len)
{
        const char *s = ydoc_scalar(n);

        if (!s || strlen(s) >= len)
                return ydoc_fail(d, n, -EINVAL, "cuda: %s must be a string under %zu bytes", what,
                                 len);
        snprintf(out, len, "%s", s);
        return 0;
}

/* One mapping of device settings (the `cuda:` section itself or `cuda.per_gpu.N`) applied to the
 * GPUs [from, to). */
static int parse_dev(ydoc *d, yaml_node_t *map, unsigned from, unsigned to, bool top)
{
        yaml_node_t *k, *v;
        double x;
        char s[FC_NAME_MAX];
        int r;

        if (map->type != YAML_MAPPING_NODE)
                return ydoc_fail(d, map, -EINVAL, "cuda: expected a mapping");
        YDOC_FOR_PAIRS(d, map, k, v)
        {
                const char *key = ydoc_scalar(k);
                if (!key)
                        return ydoc_fail(d, k, -EINVAL, "cuda: keys must be scalars");
                if (top && strcmp(key, "per_gpu") == 0)
                        continue;
                for (unsigned i = from; i < to; i++) {
                        struct fc_gpu *g = &gpus[i];
                        r = 0;
                        if (strcmp(key, "sms") == 0 && (r = num(d, v, key, 1, 1024, &x)) == 0)
                                g->sms = (unsigned)x;
                        else if (strcmp(key, "dead_sms") == 0 &&
                                 (r = num(d, v, key, 0, 1024, &x)) == 0)
                                g->dead_sms = (unsigned)x;
                        else if (strcmp(key, "memory_gib") == 0 &&
                                 (r = num(d, v, key, 0.001, 4096, &x)) == 0)
                                g->mem_bytes = x * (1ull << 30);
                        else if (strcmp(key, "h2d_gbps") == 0 &&
                                 (r = num(d, v, key, 0.001, 1e5, &x)) == 0)
                                g->h2d_gbps = x;
                        else if (strcmp(key, "d2h_gbps") == 0 &&
                                 (r = num(d, v, key, 0.001, 1e5, &x)) == 0)
                                g->d2h_gbps = x;
                        else if (strcmp(key, "dram_gbps") == 0 &&
                                 (r = num(d, v, key, 0.001, 1e6, &x)) == 0)
                                g->dram_gbps = x;
                        else if (strcmp(key, "p2p_gbps") == 0 &&
                                 (r = num(d, v, key, 0.001, 1e5, &x)) == 0)
                                g->p2p_gbps = x;
                        else if (strcmp(key, "fp32_tflops") == 0 &&
                                 (r = num(d, v, key, 0.001, 1e5, &x)) == 0)
                                g->fp32_tflops = x;
                        else if (strcmp(key, "tensor_tflops") == 0 &&
                                 (r = num(d, v, key, 0.001, 1e5, &x)) == 0)
                                g->tensor_tflops = x;
                        else if (strcmp(key, "latency_us") == 0 &&
                                 (r = num(d, v, key, 0, 1e6, &x)) == 0)
                                g->latency_us = x;
                        else if (strcmp(key, "memory_fault") == 0 &&
                                 (r = num(d, v, key, 0, 1e15, &x)) == 0)
                                g->fault_offset = (int64_t)x & ~(int64_t)7;
                        else if (strcmp(key, "hang") == 0 &&
                                 (r = str(d, v, key, s, sizeof(s))) == 0)
                                snprintf(g->hang, sizeof(g->hang), "%s", s);
                        else if (strcmp(key, "lost") == 0 &&
                                 (r = str(d, v, key, s, sizeof(s))) == 0)
                                snprintf(g->lost, sizeof(g->lost), "%s", s);
                        else if (r == 0 && !strstr(" sms dead_sms memory_gib h2d_gbps d2h_gbps "
                                                   "dram_gbps p2p_gbps fp32_tflops "
                                                   "tensor_tflops latency_us "
                                                   "memory_fault hang lost ",
                                                   key))
                                return ydoc_fail(d, k, -EINVAL, "cuda: unknown key '%.64s'", key);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
        ydoc d = {0};
        yaml_node_t *root, *k, *v, *cuda = NULL, *per_gpu_nvml = NULL;
        char model[96] = "NVIDIA H200";
        double n = 1;
        int r;

        r = ydoc_load(&d, text, len, name, err, errlen);
        if (r < 0)
                return r;
        root = ydoc_root(&d);
        if (root && root->type == YAML_MAPPING_NODE) {
                YDOC_FOR_PAIRS(&d, root, k, v)
                {
                        const char *key = ydoc_scalar(k);
                        if (!key)
                                continue;
                        if (strcmp(key, "gpus") == 0 &&
                            (r = num(&d, v, "gpus", 1, FC_GPUS_MAX, &n)) < 0)
                                goto out;
                        if (strcmp(key, "model") == 0 &&
                            (r = str(&d, v, "model", model, sizeof(model))) < 0)
                                goto out;
                        if (strcmp(key, "cuda") == 0)
                                cuda = v;
                        if (strcmp(key, "per_gpu") == 0 && v->type == YAML_MAPPING_NODE)
                                per_gpu_nvml = v;
                }
        }
        defaults((unsigned)n, model);
        /* PCI bus ids and names as the fake NVML gives them */
        if (per_gpu_nvml) {
                YDOC_FOR_PAIRS(&d, per_gpu_nvml, k, v)
                {
                        const char *ks = ydoc_scalar(k);
                        yaml_node_t *k2, *v2;
                        unsigned i;
                        if (!ks || sscanf(ks, "%u", &i) != 1 || i >= ngpus ||
                            v->type != YAML_MAPPING_NODE)
                                continue;
                        YDOC_FOR_PAIRS(&d, v, k2, v2)
                        {
                                const char *s = ydoc_scalar(k2), *val = ydoc_scalar(v2);
                                unsigned dom, bus, dev, fn;
                                if (!s || !val)
                                        continue;
                                if (strcmp(s, "pci_bus_id") == 0 &&
                                    sscanf(val, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4)
                                        snprintf(gpus[i].bus_id, sizeof(gpus[i].bus_id),
                                                 "%08X:%02X:%02X.%X", dom, bus, dev, fn);
                                if (strcmp(s, "name") == 0)
                                        snprintf(gpus[i].name, sizeof(gpus[i].name), "%s", val);
                        }
                }
        }
        if (cuda) {
                r = parse_dev(&d, cuda, 0, ngpus, true);
                if (r < 0)
                        goto out;
                YDOC_FOR_PAIRS(&d, cuda, k, v)
                {
                        const char *key = ydoc_scalar(k);
                        yaml_node_t *k2, *v2;
                        if (!key || strcmp(key, "per_gpu") != 0)
                                continue;
                        if (v->type != YAML_MAPPING_NODE) {
                                r = ydoc_fail(&d, v, -EINVAL, "cuda: per_gpu must be a mapping");
                                goto out;
                        }
                        YDOC_FOR_PAIRS(&d, v, k2, v2)
                        {
                                const char *ks = ydoc_scalar(k2);
                                unsigned i;
                                if (!ks || sscanf(ks, "%u", &i) != 1 || i >= ngpus) {
                                        r = ydoc_fail(&d, k2, -EINVAL,
                                                      "cuda: per_gpu: '%.16s' is not a GPU index",
                                                      ks ? ks : "?");
                                        goto out;
                                }
                                r = parse_dev(&d, v2, i, i + 1, false);
                                if (r < 0)
                                        goto out;
                        }
                }
        }
        r = 0;
out:
        ydoc_release(&d);
        return r;
}

FC_EXPORT int vigil_fakecuda_configure(const char *path, char *err, size_t errlen);
FC_EXPORT int vigil_fakecuda_configure(const char *path, char *err, size_t errlen)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        if (!path || !*path)
                path = getenv("VIGIL_FAKE_SCENARIO");
        pthread_mutex_lock(&lock);
        for (unsigned i = 0; i < FC_ALLOCS_MAX; i++) {
                free(allocs[i].host);
                memset(&allocs[i], 0, sizeof(allocs[i]));
        }
        if (!path || !*path) {
                defaults(2, "NVIDIA H200");
                r = 0;
        } else {
                r = file_read_all(path, FC_SCENARIO_MAX, &text, &len);
                if (r < 0)
                        file_read_strerror(r, "scenario", path, FC_SCENARIO_MAX, err, errlen);
                else
                        r = parse(text, len, path, err, errlen);
        }
        configured = r == 0;
        initialized = false;
        pthread_mutex_unlock(&lock);
        return r;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void sleep_s(double s)
{
        struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
        nanosleep(&ts, NULL);
}

/* A hung kernel: synchronisation never returns (the diagnostic's supervisor kills us). */
static void hang_forever(void)
{
        pthread_mutex_unlock(&lock);
        for (;;)
                sleep_s(1);
}

/* The GPU falls off the bus: CUDA fails from now on, and the fake NVML (when it is the NVML
 * loaded in this process) reports it lost. */
static void go_lost(unsigned i)
{
        void *h = dlopen("libvigil-fakenvml.so", RTLD_NOW | RTLD_NOLOAD);
        int (*inject)(const struct fake_inject *, char *, size_t);
        char err[128];

        gpus[i].is_lost = true;
        if (!h)
                return;
        *(void **)&inject = dlsym(h, "vigil_fake_inject");
        if (inject) {
                struct fake_inject req = {.kind = FAKE_INJECT_LOST, .gpu = i, .count = 1};
                inject(&req, err, sizeof(err));
        }
        dlclose(h);
}

static struct fc_alloc *find_alloc(uint64_t p)
{
        for (unsigned i = 0; i < FC_ALLOCS_MAX; i++)
                if (allocs[i].live && p >= allocs[i].ptr && p < allocs[i].ptr + allocs[i].size)
                        return &allocs[i];
        return NULL;
}

/* Host memory behind [p, p+len), or NULL when it is not backed (or out of bounds). */
static uint8_t *backing(uint64_t p, uint64_t len)
{
        struct fc_alloc *a = find_alloc(p);

        if (!a || !a->host || p + len > a->ptr + a->size)
                return NULL;
        return a->host + (p - a->ptr);
}

static CUresult cur_gpu(struct fc_gpu **g)
{
        if (!initialized)
                return CUDA_ERROR_NOT_INITIALIZED;
        if (current < 0 || (unsigned)current >= ngpus)
                return CUDA_ERROR_INVALID_CONTEXT;
        *g = &gpus[current];
        if ((*g)->is_lost)
                return CUDA_ERROR_DEVICE_UNAVAILABLE;
        return CUDA_SUCCESS;
}

static uint64_t pattern_value(uint32_t pattern, uint32_t seed, uint64_t i, uint64_t addr)
{
        uint64_t x;

        switch (pattern) {
        case 0:
                return 1ull << ((i + seed) & 63);
        case 1:
                return ~(1ull << ((i + seed) & 63));
        case 2:
                return addr ^ seed;
        default:
                x = i * 0x9E3779B97F4A7C15ull + seed;
                x ^= x >> 31;
                x *= 0xBF58476D1CE4E5B9ull;
                return x ^ (x >> 29);
        }
}

/* ---- the driver API ---------------------------------------------------------------------- */

#define CUDA_PROTO(name, ret, args) FC_EXPORT ret name args;
CUDA_FUNCS(CUDA_PROTO)
#undef CUDA_PROTO

CUresult cuInit(unsigned int flags)
{
        char err[256];

        if (flags != 0)
                return CUDA_ERROR_INVALID_VALUE;
        if (!configured && vigil_fakecuda_configure(NULL, err, sizeof(err)) < 0) {
                fprintf(stderr, "fake CUDA: %s\n", err);
                return CUDA_ERROR_INVALID_VALUE;
        }
        pthread_mutex_lock(&lock);
        initialized = true;
        pthread_mutex_unlock(&lock);
        return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v)
{
        if (!v)
                return CUDA_ERROR_INVALID_VALUE;
        *v = 13000;
        return CUDA_SUCCESS;
}

static const struct {
        CUresult r;
        const char *name, *text;
} errs[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA_ERROR_DEVICE_UNAVAILABLE",
     "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
};

CUresult cuGetErrorString(CUresult e, const char **s)
{
        for (size_t i = 0; i < ARRAY_SIZE(errs); i++)
                if (errs[i].r == e) {
                        *s = errs[i].text;
                        return CUDA_SUCCESS;
                }
        *s = NULL;
        return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorName(CUresult e, const char **s)
{
        for (size_t i = 0; i < ARRAY_SIZE(errs); i++)
                if (errs[i].r == e) {
                        *s = errs[i].name;
                        return CUDA_SUCCESS;
                }
        *s = NULL;
        return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDeviceGetCount(int *n)
{
        if (!initialized)
                return CUDA_ERROR_NOT_INITIALIZED;
        *n = (int)ngpus;
        return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *dev, int ordinal)
{
        if (!initialized)
                return CUDA_ERROR_NOT_INITIALIZED;
        if (ordinal < 0 || (unsigned)ordinal >= ngpus)
                return CUDA_ERROR_INVALID_DEVICE;
        *dev = ordinal;
        return CUDA_SUCCESS;
}

static CUresult check_dev(CUdevice d)
{
        if (!initialized)
                return CUDA_ERROR_NOT_INITIALIZED;
        if (d < 0 || (unsigned)d >= ngpus)
                return CUDA_ERROR_INVALID_DEVICE;
        return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
        CUresult r = check_dev(d);
        if (r == CUDA_SUCCESS && len > 0)
                snprintf(name, (size_t)len, "%s", gpus[d].name);
        return r;
}

CUresult cuDeviceGetAttribute(int *v, int a, CUdevice d)
{
        CUresult r = check_dev(d);
        unsigned bus = 0;

        if (r != CUDA_SUCCESS)
                return r;
        sscanf(gpus[d].bus_id, "%*x:%x", &bus);
        switch (a) {
        case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
                *v = 1024;
                break;
        case CU_DEVICE_ATTRIBUTE_CLOCK_RATE:
                *v = 1980000;
                break;
        case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
                *v = (int)gpus[d].sms;
                break;
        case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID:
                *v = (int)bus;
                break;
        case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID:
        case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID:
                *v = 0;
                break;
        case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE:
                *v = 3201000;
                break;
        case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH:
                *v = 6144;
                break;
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
                *v = 9;
                break;
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
                *v = 0;
                break;
        default:
                return CUDA_ERROR_INVALID_VALUE;
        }
        return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *busid, int len, CUdevice d)
{
        CUresult r = check_dev(d);
        if (r == CUDA_SUCCESS && len > 0)
                snprintf(busid, (size_t)len, "%s", gpus[d].bus_id);
        return r;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
        CUresult r = check_dev(d);
        if (r == CUDA_SUCCESS)
                *bytes = (size_t)gpus[d].mem_bytes;
        return r;
}

/* The primary context of device d is the pointer value d + 1. */
CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice d)
{
        CUresult r = check_dev(d);
        if (r != CUDA_SUCCESS)
                return r;
        if (gpus[d].is_lost)
                return CUDA_ERROR_DEVICE_UNAVAILABLE;
        *ctx = (CUcontext)(uintptr_t)(d + 1);
        return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
        return check_dev(d);
}

CUresult cuCtxSetCurrent(CUcontext ctx)
{
        uintptr_t v = (uintptr_t)ctx;
        if (v == 0 || v > ngpus)
                return CUDA_ERROR_INVALID_CONTEXT;
        current = (int)v - 1;
        return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        if (r == CUDA_SUCCESS && g->hung)
                hang_forever();
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuModuleLoadData(CUmodule *mod, const void *image)
{
        const char *p = image;
        struct CUmod_st *m;
        struct fc_gpu *g;
        CUresult r;

        pthread_mutex_lock(&lock);
        r = cur_gpu(&g);
        pthread_mutex_unlock(&lock);
        if (r != CUDA_SUCCESS)
                return r;
        if (!p || !strstr(p, ".version") || !strstr(p, ".target"))
                return CUDA_ERROR_INVALID_PTX;
        m = calloc(1, sizeof(*m));
        if (!m)
                return CUDA_ERROR_OUT_OF_MEMORY;
        m->gpu = current;
        /* every `.entry NAME(` */
        while ((p = strstr(p, ".entry")) && m->nfuncs < FC_FUNCS_MAX) {
                size_t n;
                p += 6;
                p += strspn(p, " \t");
                n = strcspn(p, " \t(\r\n");
                if (n == 0 || n >= FC_NAME_MAX) {
                        free(m);
                        return CUDA_ERROR_INVALID_PTX;
                }
                memcpy(m->funcs[m->nfuncs].name, p, n);
                m->funcs[m->nfuncs].mod = m;
                m->nfuncs++;
        }
        if (m->nfuncs == 0) {
                free(m);
                return CUDA_ERROR_INVALID_PTX;
        }
        *mod = m;
        return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule mod)
{
        free(mod);
        return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *fn, CUmodule mod, const char *name)
{
        if (!mod || !name)
                return CUDA_ERROR_INVALID_VALUE;
        for (unsigned i = 0; i < mod->nfuncs; i++)
                if (strcmp(mod->funcs[i].name, name) == 0) {
                        *fn = &mod->funcs[i];
                        return CUDA_SUCCESS;
                }
        return CUDA_ERROR_NOT_FOUND;
}

static void launch_mem(struct fc_gpu *g, bool check, void **params)
{
        uint64_t base = *(uint64_t *)params[0], n = *(uint64_t *)params[1];
        uint32_t pattern = *(uint32_t *)params[2], seed = *(uint32_t *)params[3];
        uint8_t *host = backing(base, n * 8);
        uint64_t *res = NULL, fault;

        g->clock_s += (double)n * 8 / (g->dram_gbps * 1e9);
        if (check) {
                uint64_t rp = *(uint64_t *)params[4];
                res = (uint64_t *)backing(rp, 16);
                if (!res)
                        return;
        }
        if (host) {
                for (uint64_t i = 0; i < n; i++) {
                        uint64_t *w = (uint64_t *)(host + i * 8);
                        uint64_t want = pattern_value(pattern, seed, i, base + i * 8);
                        if (!check) {
                                *w = want;
                        } else if (*w != want) {
                                res[0]++;
                                res[1] = MIN(res[1], base + i * 8);
                        }
                }
        }
        fault = dev_base((unsigned)(g - gpus)) + (uint64_t)g->fault_offset;
        if (check && g->fault_offset >= 0 && fault >= base && fault < base + n * 8) {
                res[0]++;
                res[1] = MIN(res[1], fault);
        }
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared_bytes, CUstream stream,
                        void **params, void **extra)
{
        struct fc_gpu *g;
        double sleep = 0;
        CUresult r;

        (void)shared_bytes;
        (void)stream;
        (void)extra;
        if (!f || !params || gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 ||
            (uint64_t)bx * by * bz > 1024)
                return CUDA_ERROR_INVALID_VALUE;
        pthread_mutex_lock(&lock);
        r = cur_gpu(&g);
        if (r != CUDA_SUCCESS)
                goto out;
        if (g->lost[0] && strcmp(f->name, g->lost) == 0) {
                go_lost((unsigned)(g - gpus));
                r = CUDA_ERROR_LAUNCH_FAILED;
                goto out;
        }
        if (g->hang[0] && strcmp(f->name, g->hang) == 0)
                g->hung = true;
        if (strcmp(f->name, "vigil_smid") == 0) {
                uint64_t out = *(uint64_t *)params[0];
                uint32_t *o = (uint32_t *)backing(out, (uint64_t)gx * 4);
                unsigned alive = g->sms > g->dead_sms ? g->sms - g->dead_sms : 1;
                for (unsigned b = 0; o && b < gx; b++)
                        o[b] = b % alive;
                g->clock_s += 1e-4;
        } else if (strcmp(f->name, "vigil_mem_write") == 0) {
                launch_mem(g, false, params);
        } else if (strcmp(f->name, "vigil_mem_check") == 0) {
                launch_mem(g, true, params);
        } else if (strcmp(f->name, "vigil_fma") == 0) {
                uint32_t iters = *(uint32_t *)params[1];
                double flops = (double)gx * bx * by * bz * iters * 64;
                double t = flops / (g->fp32_tflops * 1e12);
                g->clock_s += t;
                sleep = MIN(t, 0.002); /* keep duration-bound loops from spinning */
        } else if (strcmp(f->name, "vigil_mma") == 0) {
                /* 8 MMAs of 4096 flops per warp and iteration */
                uint32_t iters = *(uint32_t *)params[1];
                double flops = (double)gx * ((bx * by * bz + 31) / 32) * iters * 8 * 4096;
                double t = flops / (g->tensor_tflops * 1e12);
                g->clock_s += t;
                sleep = MIN(t, 0.002);
        } else {
                g->clock_s += 1e-5;
        }
out:
        pthread_mutex_unlock(&lock);
        if (sleep > 0)
                sleep_s(sleep);
        return r;
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        if (r == CUDA_SUCCESS) {
                /* the driver and context keep about 0.5 GiB */
                double fr = g->mem_bytes - (double)g->used - (512.0 * (1 << 20));
                *free_bytes = fr > 0 ? (size_t)fr : 0;
                *total = (size_t)g->mem_bytes;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        unsigned slot = FC_ALLOCS_MAX;
        uint64_t sz = ((uint64_t)bytes + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
        for (unsigned i = 0; r == CUDA_SUCCESS && i < FC_ALLOCS_MAX; i++)
                if (!allocs[i].live) {
                        slot = i;
                        break;
                }
        if (r == CUDA_SUCCESS && (bytes == 0 || slot == FC_ALLOCS_MAX ||
                                  (double)(g->used + sz) + (512.0 * (1 << 20)) > g->mem_bytes))
                r = bytes == 0 ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_OUT_OF_MEMORY;
        if (r == CUDA_SUCCESS) {
                struct fc_alloc *a = &allocs[slot];
                a->host = bytes <= FC_BACKED_MAX ? calloc(1, sz) : NULL;
                if (bytes <= FC_BACKED_MAX && !a->host) {
                        r = CUDA_ERROR_OUT_OF_MEMORY;
                } else {
                        a->ptr = g->cursor;
                        a->size = sz;
                        a->gpu = current;
                        a->live = true;
                        g->cursor += sz;
                        g->used += sz;
                        *p = a->ptr;
                }
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemFree_v2(CUdeviceptr p)
{
        pthread_mutex_lock(&lock);
        struct fc_alloc *a = find_alloc(p);
        CUresult r = CUDA_ERROR_INVALID_VALUE;
        if (a && a->ptr == p) {
                gpus[a->gpu].used -= a->size;
                /* an emptied device hands out addresses from its base again, so that
                 * a memory fault's offset means the same in every test */
                if (gpus[a->gpu].used == 0)
                        gpus[a->gpu].cursor = dev_base((unsigned)a->gpu);
                free(a->host);
                memset(a, 0, sizeof(*a));
                r = CUDA_SUCCESS;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytes)
{
        if (!initialized)
                return CUDA_ERROR_NOT_INITIALIZED;
        *pp = malloc(bytes ? bytes : 1);
        return *pp ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuMemFreeHost(void *p)
{
        free(p);
        return CUDA_SUCCESS;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        if (r == CUDA_SUCCESS && !find_alloc(dst))
                r = CUDA_ERROR_INVALID_VALUE;
        if (r == CUDA_SUCCESS) {
                uint8_t *h = backing(dst, bytes);
                if (h)
                        memcpy(h, src, bytes);
                g->clock_s += (double)bytes / (g->h2d_gbps * 1e9) + g->latency_us * 1e-6;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        if (r == CUDA_SUCCESS && g->hung)
                hang_forever();
        if (r == CUDA_SUCCESS && !find_alloc(src))
                r = CUDA_ERROR_INVALID_VALUE;
        if (r == CUDA_SUCCESS) {
                uint8_t *h = backing(src, bytes);
                if (h)
                        memcpy(dst, h, bytes);
                g->clock_s += (double)bytes / (g->d2h_gbps * 1e9) + g->latency_us * 1e-6;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        if (r == CUDA_SUCCESS && (!find_alloc(dst) || !find_alloc(src)))
                r = CUDA_ERROR_INVALID_VALUE;
        if (r == CUDA_SUCCESS) {
                uint8_t *d = backing(dst, bytes), *s = backing(src, bytes);
                if (d && s)
                        memmove(d, s, bytes);
                /* a copy reads and writes every byte */
                g->clock_s += 2.0 * (double)bytes / (g->dram_gbps * 1e9);
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx,
                      size_t bytes)
{
        pthread_mutex_lock(&lock);
        uintptr_t dv = (uintptr_t)dctx, sv = (uintptr_t)sctx;
        CUresult r = CUDA_SUCCESS;
        if (!initialized)
                r = CUDA_ERROR_NOT_INITIALIZED;
        else if (dv == 0 || dv > ngpus || sv == 0 || sv > ngpus)
                r = CUDA_ERROR_INVALID_CONTEXT;
        else if (gpus[dv - 1].is_lost || gpus[sv - 1].is_lost)
                r = CUDA_ERROR_DEVICE_UNAVAILABLE;
        else if (!find_alloc(dst) || !find_alloc(src))
                r = CUDA_ERROR_INVALID_VALUE;
        if (r == CUDA_SUCCESS) {
                struct fc_gpu *a = &gpus[sv - 1], *b = &gpus[dv - 1];
                double t = (double)bytes / (MIN(a->p2p_gbps, b->p2p_gbps) * 1e9);
                /* the copy runs in the current context's stream */
                if (current >= 0)
                        gpus[current].clock_s += t;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int value, size_t n)
{
        struct fc_gpu *g;
        pthread_mutex_lock(&lock);
        CUresult r = cur_gpu(&g);
        if (r == CUDA_SUCCESS && !find_alloc(dst))
                r = CUDA_ERROR_INVALID_VALUE;
        if (r == CUDA_SUCCESS) {
                uint32_t *h = (uint32_t *)backing(dst, (uint64_t)n * 4);
                for (size_t i = 0; h && i < n; i++)
                        h[i] = value;
                g->clock_s += (double)n * 4 / (g->dram_gbps * 1e9);
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuEventCreate(CUevent *ev, unsigned int flags)
{
        (void)flags;
        if (!initialized)
                return CUDA_ERROR_NOT_INITIALIZED;
        *ev = calloc(1, sizeof(**ev));
        return *ev ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuEventRecord(CUevent ev, CUstream stream)
{
        struct fc_gpu *g;
        (void)stream;
        pthread_mutex_lock(&lock);
        CUresult r = ev ? cur_gpu(&g) : CUDA_ERROR_INVALID_HANDLE;
        if (r == CUDA_SUCCESS) {
                ev->gpu = current;
                ev->t_s = g->clock_s;
                ev->recorded = true;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuEventSynchronize(CUevent ev)
{
        pthread_mutex_lock(&lock);
        CUresult r = ev && ev->recorded ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
        if (r == CUDA_SUCCESS && gpus[ev->gpu].is_lost)
                r = CUDA_ERROR_LAUNCH_FAILED;
        if (r == CUDA_SUCCESS && gpus[ev->gpu].hung)
                hang_forever();
        pthread_mutex_unlock(&lock);
        return r;
}

CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b)
{
        if (!a || !b || !a->recorded || !b->recorded)
                return CUDA_ERROR_INVALID_HANDLE;
        *ms = (float)((b->t_s - a->t_s) * 1e3);
        return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent ev)
{
        free(ev);
        return CUDA_SUCCESS;
}
