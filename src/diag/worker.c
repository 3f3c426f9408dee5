/* worker.c — the diagnostic run itself, in the `vigil-diag --worker` process: level 1 software
 * checks through the backend (NVML, read-only) and the system, then the CUDA tests of levels 2
 * and 3 through backend/cuda.h and the PTX kernels of kernels.ptx. Results go out as JSON lines
 * (diag.h). This process may hang in the driver or crash: the supervisor copes, so nothing here
 * tries to be clever about it beyond saying which test it starts and how long it may take. */
#include "diag.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cuda.h"
#include "common/macros.h"
#include "diag-internal.h"

extern const unsigned char diag_kernels_ptx[];
extern const unsigned char diag_kernels_tc_ptx[];

struct dgpu {
        unsigned idx;    /* NVML index */
        gpu_identity id; /* from the backend */
        int cudev;       /* CUDA ordinal, -1 when CUDA does not see this GPU */
        CUcontext ctx;   /* primary context, NULL until set up */
        CUmodule mod;    /* kernels.ptx */
        CUmodule mod_tc; /* kernels_tc.ptx (sm_80 and later), NULL when not loaded */
        CUfunction f_smid, f_write, f_check, f_fma;
        CUfunction f_mma;    /* tensor-core load (kernels_tc.ptx), NULL: FMA load instead */
        int cc;              /* compute capability, major * 10 + minor */
        char tc_note[192];   /* why there is no tensor-core load ("" when there is one) */
        int sms;             /* multiprocessors */
        const diag_sku *sku; /* spec entry, NULL when unknown */
        bool lost;           /* fell off the bus during this run */
        char skip[160];      /* why the GPU tests are not run on it ("" = they are) */
};

struct run {
        const diag_opts *o;
        FILE *out;
        pthread_mutex_t out_lock; /* one line at a time when GPUs run in parallel */
        backend *b;
        cuda_api *cu;
        char cuda_err[256];
        struct dgpu g[DIAG_MAX_GPUS];
        size_t n;
        unsigned nvml_count;
        /* XID watcher */
        pthread_t xid_thread;
        bool xid_running;
        atomic_bool xid_stop;
        atomic_uint xids[DIAG_MAX_GPUS]; /* XIDs seen since the run began, per NVML index */
        atomic_uint last_xid[DIAG_MAX_GPUS];
};

/* ---- output ------------------------------------------------------------------------------ */

static void emit(struct run *r, json_t *o)
{
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) {
                pthread_mutex_lock(&r->out_lock);
                fprintf(r->out, "%s\n", s);
                fflush(r->out);
                pthread_mutex_unlock(&r->out_lock);
                free(s);
        }
        json_decref(o);
}

static void begin(struct run *r, const char *test, int gpu, double timeout_s)
{
        emit(r, json_pack("{s:s, s:s, s:o, s:f}", "event", "begin", "test", test, "gpu",
                          gpu < 0 ? json_null() : json_integer(gpu), "timeout_s", timeout_s));
}

static void result(struct run *r, const char *test, int gpu, enum diag_verdict v, double value,
                   const char *unit, double threshold, const char *tsrc, const char *fmt, ...)
    _printf_(9, 10);
static void result(struct run *r, const char *test, int gpu, enum diag_verdict v, double value,
                   const char *unit, double threshold, const char *tsrc, const char *fmt, ...)
{
        char reason[512];
        va_list ap;
        json_t *o;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        o = json_pack("{s:s, s:s, s:o, s:s, s:s}", "event", "result", "test", test, "gpu",
                      gpu < 0 ? json_null() : json_integer(gpu), "result", diag_verdict_name(v),
                      "reason", reason);
        json_object_set_new(o, "value", isnan(value) ? json_null() : json_real(value));
        json_object_set_new(o, "unit", unit ? json_string(unit) : json_null());
        json_object_set_new(o, "threshold", isnan(threshold) ? json_null() : json_real(threshold));
        /* tsrc is "KIND:DETAIL": KIND spec, default, config or param (docs/diagnostics.md) */
        if (tsrc && strchr(tsrc, ':')) {
                const char *colon = strchr(tsrc, ':');
                json_object_set_new(o, "threshold_source",
                                    json_stringn(tsrc, (size_t)(colon - tsrc)));
                json_object_set_new(o, "threshold_detail", json_string(colon + 1));
        } else {
                json_object_set_new(o, "threshold_source", tsrc ? json_string(tsrc) : json_null());
                json_object_set_new(o, "threshold_detail", json_null());
        }
        emit(r, o);
}

#define NONE NAN

/* ---- parameters -------------------------------------------------------------------------- */

static const char *lookup(const char *const *list, size_t n, const char *key)
{
        size_t kl = strlen(key);
        for (size_t i = 0; i < n; i++)
                if (strncmp(list[i], key, kl) == 0 && list[i][kl] == '=')
                        return list[i] + kl + 1;
        return NULL;
}

/* The value of KEY: a --param first, then the daemon's diag: configuration, else DEF. *src (when
 * given) becomes "param:--param KEY" or "config:diag KEY" for a value from either. */
static double param_d(struct run *r, const char *key, double def, const char **src)
{
        const char *s = lookup(r->o->params, r->o->nparams, key);
        const char *kind = "param:--param";
        static _Thread_local char buf[96];

        if (!s) {
                s = lookup(r->o->config, r->o->nconfig, key);
                kind = "config:diag";
        }
        if (!s)
                return def;
        if (src) {
                snprintf(buf, sizeof(buf), "%s %s", kind, key);
                *src = buf;
        }
        return strtod(s, NULL);
}

/* ---- NVML reads --------------------------------------------------------------------------- */

static int sample(struct run *r, struct dgpu *g, const uint16_t *ids, size_t n, field_value *out)
{
        return backend_sample(r->b, g->idx, ids, n, out);
}

static int64_t i64(const field_value *v, int64_t def)
{
        return v->status == 0 ? v->i : def;
}

static double f64(const field_value *v, double def)
{
        return v->status == 0 ? v->d : def;
}

static bool nvml_lost(struct run *r, struct dgpu *g)
{
        uint16_t id = FLD_GPU_TEMP;
        field_value v;
        return sample(r, g, &id, 1, &v) == -ENODEV;
}

static void *xid_watch(void *arg)
{
        struct run *r = arg;
        backend_event ev;

        while (!atomic_load(&r->xid_stop)) {
                if (backend_wait_event(r->b, 200, &ev) == 0 && ev.kind == BEV_XID &&
                    ev.gpu < DIAG_MAX_GPUS) {
                        atomic_fetch_add(&r->xids[ev.gpu], 1);
                        atomic_store(&r->last_xid[ev.gpu], (unsigned)ev.data);
                }
        }
        return NULL;
}

/* What a stress window saw: compared before/after and sampled while it ran. */
struct watch {
        int64_t dbe0, sbe0;     /* ECC volatile counts at the start */
        unsigned xid0;          /* XIDs at the start */
        int64_t max_temp;       /* C */
        int64_t slowdown_temp;  /* C, 0 unknown */
        uint64_t reasons;       /* clock-event reasons seen (OR) */
        double max_power;       /* W */
        double sum_power;       /* W, for the mean */
        unsigned power_samples; /* samples in sum_power */
};

static const uint16_t watch_ids[] = {FLD_ECC_DBE_VOL_TOTAL, FLD_ECC_SBE_VOL_TOTAL,
                                     FLD_GPU_TEMP,          FLD_CLOCKS_EVENT_REASONS,
                                     FLD_POWER_USAGE,       FLD_SLOWDOWN_TEMP};

static void watch_start(struct run *r, struct dgpu *g, struct watch *w)
{
        field_value v[ARRAY_SIZE(watch_ids)];

        memset(w, 0, sizeof(*w));
        sample(r, g, watch_ids, ARRAY_SIZE(watch_ids), v);
        w->dbe0 = i64(&v[0], 0);
        w->sbe0 = i64(&v[1], 0);
        w->slowdown_temp = i64(&v[5], 0);
        w->xid0 = atomic_load(&r->xids[g->idx]);
}

static void watch_tick(struct run *r, struct dgpu *g, struct watch *w, bool power)
{
        field_value v[ARRAY_SIZE(watch_ids)];

        sample(r, g, watch_ids, ARRAY_SIZE(watch_ids), v);
        w->max_temp = MAX(w->max_temp, i64(&v[2], 0));
        w->reasons |= (uint64_t)i64(&v[3], 0);
        if (power && v[4].status == 0) {
                w->max_power = MAX(w->max_power, v[4].d);
                w->sum_power += v[4].d;
                w->power_samples++;
        }
}

/* HW slowdown (0x8), HW thermal (0x40), HW power brake (0x80). */
#define REASONS_HW 0x00000000000000C8ull

/* After a stress window: a verdict at least as bad as *v, and the reason when it got worse.
 * Returns true when something went wrong. */
static bool watch_end(struct run *r, struct dgpu *g, struct watch *w, char *why, size_t len)
{
        field_value v[ARRAY_SIZE(watch_ids)];
        unsigned xids = atomic_load(&r->xids[g->idx]) - w->xid0;

        watch_tick(r, g, w, false);
        sample(r, g, watch_ids, ARRAY_SIZE(watch_ids), v);
        if (xids) {
                snprintf(why, len, "%u XID error(s) during the test (last XID %u)", xids,
                         atomic_load(&r->last_xid[g->idx]));
                return true;
        }
        if (i64(&v[0], 0) > w->dbe0) {
                snprintf(why, len, "%lld new double-bit ECC error(s) during the test",
                         (long long)(i64(&v[0], 0) - w->dbe0));
                return true;
        }
        if (w->reasons & REASONS_HW) {
                snprintf(why, len, "hardware clock slowdown during the test (reasons 0x%llx)",
                         (unsigned long long)w->reasons);
                return true;
        }
        if (w->slowdown_temp > 0 && w->max_temp >= w->slowdown_temp) {
                snprintf(why, len, "temperature reached %lld C (slowdown at %lld C)",
                         (long long)w->max_temp, (long long)w->slowdown_temp);
                return true;
        }
        return false;
}

/* ---- level 1 ------------------------------------------------------------------------------ */

static void t_system(struct run *r)
{
        char drv[64] = "", nvml[64] = "";
        unsigned visible = 0;
        FILE *f;
        char line[256];
        bool nouveau = false;
        const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
        const char *src = NULL;
        double expected;

        begin(r, "nvml_library", -1, 10);
        backend_versions(r->b, drv, sizeof(drv), nvml, sizeof(nvml));
        result(r, "nvml_library", -1, DIAG_PASS, r->nvml_count, "GPUs", NONE, NULL,
               "NVML %s loaded from '%s', driver %s", *nvml ? nvml : "?", backend_library(r->b),
               *drv ? drv : "?");

        begin(r, "cuda_library", -1, 30);
        if (r->cu) {
                int cnt = 0;
                r->cu->cuDeviceGetCount(&cnt);
                visible = (unsigned)cnt;
                result(r, "cuda_library", -1, DIAG_PASS, r->cu->driver_version / 1000.0, "version",
                       NONE, NULL, "CUDA driver API %d.%d loaded from '%s', %d device(s)",
                       r->cu->driver_version / 1000, (r->cu->driver_version % 1000) / 10,
                       r->cu->library, cnt);
        } else {
                result(r, "cuda_library", -1, DIAG_FAIL, NONE, NULL, NONE, NULL, "%s", r->cuda_err);
        }

        begin(r, "permissions", -1, 5);
        if (backend_is_fake(r->b)) {
                result(r, "permissions", -1, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "simulated GPUs have no /dev/nvidia* nodes");
        } else {
                char bad[256] = "";
                char path[64];
                size_t off = 0;
                const char *nodes[] = {"/dev/nvidiactl", "/dev/nvidia-uvm"};
                for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
                        if (access(nodes[i], R_OK | W_OK) < 0 && off < sizeof(bad))
                                off += (size_t)snprintf(bad + off, sizeof(bad) - off, "%s%s (%s)",
                                                        off ? ", " : "", nodes[i], strerror(errno));
                for (size_t i = 0; i < r->n; i++) {
                        if (r->g[i].id.minor < 0)
                                continue;
                        snprintf(path, sizeof(path), "/dev/nvidia%d", r->g[i].id.minor);
                        if (access(path, R_OK | W_OK) < 0 && off < sizeof(bad))
                                off += (size_t)snprintf(bad + off, sizeof(bad) - off, "%s%s (%s)",
                                                        off ? ", " : "", path, strerror(errno));
                }
                if (*bad)
                        result(r, "permissions", -1, DIAG_FAIL, NONE, NULL, NONE, NULL,
                               "cannot read and write %s", bad);
                else
                        result(r, "permissions", -1, DIAG_PASS, NONE, NULL, NONE, NULL,
                               "device nodes are readable and writable");
        }

        begin(r, "denylist", -1, 5);
        f = fopen("/proc/modules", "re");
        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, "nouveau ", 8) == 0)
                        nouveau = true;
        if (f)
                fclose(f);
        if (nouveau)
                result(r, "denylist", -1, DIAG_FAIL, NONE, NULL, NONE, NULL,
                       "the nouveau kernel module is loaded and conflicts with the NVIDIA driver");
        else
                result(r, "denylist", -1, DIAG_PASS, NONE, NULL, NONE, NULL,
                       "no conflicting kernel module (nouveau) loaded");

        begin(r, "environment", -1, 5);
        if (cvd && r->cu && visible < r->nvml_count)
                result(r, "environment", -1, DIAG_WARN, visible, "GPUs", r->nvml_count, "spec:NVML",
                       "CUDA_VISIBLE_DEVICES='%.64s' hides %u of %u GPUs from CUDA", cvd,
                       r->nvml_count - visible, r->nvml_count);
        else if (getenv("CUDA_INJECTION64_PATH"))
                result(r, "environment", -1, DIAG_WARN, NONE, NULL, NONE, NULL,
                       "CUDA_INJECTION64_PATH is set: a profiler is injected into CUDA programs");
        else
                result(r, "environment", -1, DIAG_PASS, NONE, NULL, NONE, NULL,
                       "no environment variable hides GPUs or alters CUDA");

        begin(r, "gpu_count", -1, 5);
        expected = param_d(r, "gpu_count.expected", NAN, &src);
        if (isnan(expected))
                result(r, "gpu_count", -1, DIAG_PASS, r->nvml_count, "GPUs", NONE, NULL,
                       "%u GPU(s); set --param gpu_count.expected=N to check the count",
                       r->nvml_count);
        else
                result(r, "gpu_count", -1,
                       (double)r->nvml_count == expected ? DIAG_PASS : DIAG_FAIL, r->nvml_count,
                       "GPUs", expected, src, "%u GPU(s) found, %g expected", r->nvml_count,
                       expected);
}

static const uint16_t l1_ids[] = {
    FLD_PERSISTENCE_MODE,     FLD_ECC_CURRENT,
    FLD_ECC_DBE_VOL_TOTAL,    FLD_RETIRED_PENDING,
    FLD_RETIRED_DBE,          FLD_ROW_REMAP_PENDING,
    FLD_ROW_REMAP_FAILURE,    FLD_UNCORRECTABLE_REMAPPED_ROWS,
    FLD_PCIE_LINK_GEN,        FLD_PCIE_LINK_WIDTH,
    FLD_PCIE_MAX_LINK_GEN,    FLD_PCIE_MAX_LINK_WIDTH,
    FLD_CLOCKS_EVENT_REASONS, FLD_GPU_UTIL,
};
enum {
        L_PERSIST,
        L_ECC,
        L_DBE,
        L_RPEND,
        L_RDBE,
        L_RMPEND,
        L_RMFAIL,
        L_RMUNC,
        L_GEN,
        L_WIDTH,
        L_MAXGEN,
        L_MAXWIDTH,
        L_REASONS,
        L_UTIL
};

static void t_gpu_software(struct run *r, struct dgpu *g)
{
        field_value v[ARRAY_SIZE(l1_ids)];
        int gi = (int)g->idx;
        int64_t reasons;
        unsigned procs = 0;

        begin(r, "persistence_mode", gi, 5);
        if (sample(r, g, l1_ids, ARRAY_SIZE(l1_ids), v) == -ENODEV) {
                g->lost = true;
                result(r, "persistence_mode", gi, DIAG_FAIL, NONE, NULL, NONE, NULL,
                       "GPU is lost (fell off the bus?): NVML cannot reach it");
                snprintf(g->skip, sizeof(g->skip), "GPU is lost");
                return;
        }
        if (v[L_PERSIST].status < 0)
                result(r, "persistence_mode", gi, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "persistence mode not reported: %s", strerror(-v[L_PERSIST].status));
        else
                result(r, "persistence_mode", gi, v[L_PERSIST].i ? DIAG_PASS : DIAG_WARN,
                       (double)v[L_PERSIST].i, "bool", 1, "default:DCGM deployment check",
                       v[L_PERSIST].i ? "persistence mode is on"
                                      : "persistence mode is off: the driver unloads between "
                                        "jobs and the first CUDA call is slow");

        begin(r, "inforom", gi, 5);
        if (*g->id.inforom)
                result(r, "inforom", gi, DIAG_PASS, NONE, NULL, NONE, NULL,
                       "InfoROM image %s readable", g->id.inforom);
        else
                result(r, "inforom", gi, DIAG_WARN, NONE, NULL, NONE, NULL,
                       "InfoROM image version cannot be read (corrupt or unsupported InfoROM)");

        begin(r, "page_retirement", gi, 5);
        if (i64(&v[L_RMFAIL], 0))
                result(r, "page_retirement", gi, DIAG_FAIL, 1, "bool", 0, "default:NVML",
                       "row remapping has failed: the GPU needs service");
        else if (i64(&v[L_RMPEND], 0) || i64(&v[L_RPEND], 0))
                result(r, "page_retirement", gi, DIAG_FAIL, 1, "bool", 0, "default:NVML",
                       "%s pending: reset the GPU (or reboot) to apply it",
                       i64(&v[L_RMPEND], 0) ? "a row remapping is" : "a page retirement is");
        else if (v[L_RMUNC].status < 0 && v[L_RDBE].status < 0)
                result(r, "page_retirement", gi, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "neither row remapping nor page retirement is reported");
        else
                result(r, "page_retirement", gi, DIAG_PASS,
                       (double)(i64(&v[L_RMUNC], 0) + i64(&v[L_RDBE], 0)), "rows", NONE, NULL,
                       "nothing pending; %lld row(s) remapped, %lld page(s) retired for DBE",
                       (long long)i64(&v[L_RMUNC], 0), (long long)i64(&v[L_RDBE], 0));

        begin(r, "ecc", gi, 5);
        if (v[L_ECC].status < 0)
                result(r, "ecc", gi, DIAG_SKIP, NONE, NULL, NONE, NULL, "ECC mode not reported: %s",
                       strerror(-v[L_ECC].status));
        else if (!v[L_ECC].i)
                result(r, "ecc", gi, DIAG_WARN, 0, "bool", 1, "default:DCGM deployment check",
                       "ECC is disabled");
        else if (i64(&v[L_DBE], 0) > 0)
                result(r, "ecc", gi, DIAG_FAIL, (double)v[L_DBE].i, "errors", 0, "default:NVML",
                       "%lld double-bit ECC error(s) since the driver loaded",
                       (long long)v[L_DBE].i);
        else
                result(r, "ecc", gi, DIAG_PASS, 0, "errors", 0, "default:NVML",
                       "ECC enabled, no volatile double-bit errors");

        begin(r, "pcie_link", gi, 5);
        reasons = i64(&v[L_REASONS], 0);
        if (v[L_GEN].status < 0 || v[L_MAXGEN].status < 0)
                result(r, "pcie_link", gi, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "PCIe link generation not reported");
        else if (i64(&v[L_WIDTH], 0) < i64(&v[L_MAXWIDTH], 0))
                result(r, "pcie_link", gi, DIAG_FAIL, (double)v[L_WIDTH].i, "lanes",
                       (double)v[L_MAXWIDTH].i, "spec:NVML max link width",
                       "link trained at x%lld of x%lld: a degraded slot, riser or cable",
                       (long long)v[L_WIDTH].i, (long long)v[L_MAXWIDTH].i);
        else if (v[L_GEN].i < v[L_MAXGEN].i)
                result(r, "pcie_link", gi,
                       (reasons & 0x1) || i64(&v[L_UTIL], 0) == 0 ? DIAG_PASS : DIAG_WARN,
                       (double)v[L_GEN].i, "gen", (double)v[L_MAXGEN].i, "spec:NVML max link gen",
                       "link at gen %lld of gen %lld x%lld%s", (long long)v[L_GEN].i,
                       (long long)v[L_MAXGEN].i, (long long)i64(&v[L_WIDTH], 0),
                       (reasons & 0x1) || i64(&v[L_UTIL], 0) == 0
                           ? ": an idle GPU lowers its link generation to save power (level 2 "
                             "measures the bandwidth)"
                           : " while busy");
        else
                result(r, "pcie_link", gi, DIAG_PASS, (double)v[L_GEN].i, "gen",
                       (double)v[L_MAXGEN].i, "spec:NVML max link gen",
                       "link at gen %lld x%lld (max)", (long long)v[L_GEN].i,
                       (long long)i64(&v[L_WIDTH], 0));

        begin(r, "clock_events", gi, 5);
        if (v[L_REASONS].status < 0)
                result(r, "clock_events", gi, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "clock-event reasons not reported");
        else if (reasons & REASONS_HW)
                result(r, "clock_events", gi, DIAG_FAIL, (double)reasons, "bitmask", 0, NULL,
                       "hardware clock slowdown active (reasons 0x%llx:%s%s%s)",
                       (unsigned long long)reasons, reasons & 0x8 ? " hw_slowdown" : "",
                       reasons & 0x40 ? " hw_thermal" : "",
                       reasons & 0x80 ? " hw_power_brake" : "");
        else if (reasons & 0x20)
                result(r, "clock_events", gi, DIAG_WARN, (double)reasons, "bitmask", 0, NULL,
                       "software thermal slowdown active (reasons 0x%llx)",
                       (unsigned long long)reasons);
        else
                result(r, "clock_events", gi, DIAG_PASS, (double)reasons, "bitmask", NONE, NULL,
                       "no hardware or thermal slowdown (reasons 0x%llx)",
                       (unsigned long long)reasons);

        begin(r, "compute_processes", gi, 5);
        if (backend_compute_processes(r->b, g->idx, &procs) < 0)
                result(r, "compute_processes", gi, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "running processes not reported");
        else if (procs)
                result(r, "compute_processes", gi, DIAG_WARN, procs, "processes", 0, NULL,
                       "%u compute process(es) running%s", procs,
                       r->o->level >= 2 && !r->o->force
                           ? "; GPU tests refused on this GPU (--force to run them)"
                           : "");
        else
                result(r, "compute_processes", gi, DIAG_PASS, 0, "processes", 0, NULL,
                       "no compute process running");
        if (procs && r->o->level >= 2 && !r->o->force)
                snprintf(g->skip, sizeof(g->skip),
                         "%u compute process(es) running; --force to test anyway", procs);
}

/* ---- CUDA helpers ------------------------------------------------------------------------- */

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A CUDA call failed inside TEST: report it, and say so when the GPU fell off the bus. */
static int cu_fail(struct run *r, struct dgpu *g, const char *test, CUresult cr, const char *what)
{
        char desc[192];

        cuda_describe(r->cu, cr, desc, sizeof(desc));
        if (nvml_lost(r, g)) {
                g->lost = true;
                snprintf(g->skip, sizeof(g->skip), "GPU fell off the bus during %s", test);
                result(r, test, (int)g->idx, DIAG_FAIL, NONE, NULL, NONE, NULL,
                       "GPU fell off the bus during %s: %s failed with %s; NVML reports the GPU "
                       "lost",
                       test, what, desc);
        } else {
                result(r, test, (int)g->idx, DIAG_FAIL, NONE, NULL, NONE, NULL, "%s failed: %s",
                       what, desc);
        }
        return -EIO;
}

#define CU(call, what)                                                                             \
        do {                                                                                       \
                CUresult _cr = (call);                                                             \
                if (_cr != CUDA_SUCCESS) {                                                         \
                        rc = cu_fail(r, g, test, _cr, what);                                       \
                        (void)rc;                                                                  \
                        goto out;                                                                  \
                }                                                                                  \
        } while (0)

static bool usable(struct run *r, struct dgpu *g, const char *test, double timeout)
{
        begin(r, test, (int)g->idx, timeout);
        if (*g->skip) {
                result(r, test, (int)g->idx, DIAG_SKIP, NONE, NULL, NONE, NULL, "%s", g->skip);
                return false;
        }
        CUresult cr = r->cu->cuCtxSetCurrent(g->ctx);
        if (cr != CUDA_SUCCESS) {
                cu_fail(r, g, test, cr, "cuCtxSetCurrent");
                return false;
        }
        return true;
}

/* The tensor-core kernel (kernels_tc.ptx) on a GPU of compute capability 8.0 or later. Not a
 * failure when it does not load: targeted power then uses the FMA load and says so. */
static void tc_setup(struct run *r, struct dgpu *g, CUdevice dev)
{
        int major = 0, minor = 0;
        CUresult cr;
        char desc[128];

        if (r->cu->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                        dev) != CUDA_SUCCESS ||
            r->cu->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                        dev) != CUDA_SUCCESS) {
                snprintf(g->tc_note, sizeof(g->tc_note), "compute capability unknown: FMA load");
                return;
        }
        g->cc = major * 10 + minor;
        if (major < 8) {
                snprintf(g->tc_note, sizeof(g->tc_note),
                         "no FP16 mma.sync before compute capability 8.0: FMA load");
                return;
        }
        cr = r->cu->cuModuleLoadData(&g->mod_tc, diag_kernels_tc_ptx);
        if (cr == CUDA_SUCCESS)
                cr = r->cu->cuModuleGetFunction(&g->f_mma, g->mod_tc, "vigil_mma");
        if (cr != CUDA_SUCCESS) {
                cuda_describe(r->cu, cr, desc, sizeof(desc));
                snprintf(g->tc_note, sizeof(g->tc_note),
                         "tensor-core kernel did not load (%s): FMA load", desc);
                g->f_mma = NULL;
        }
}

/* Context, module, kernels and SM count of one GPU; the result of test "cuda_context". */
static void gpu_setup(struct run *r, struct dgpu *g)
{
        const char *test = "cuda_context";
        CUdevice dev;
        int rc = 0;

        begin(r, test, (int)g->idx, 60);
        if (*g->skip) {
                result(r, test, (int)g->idx, DIAG_SKIP, NONE, NULL, NONE, NULL, "%s", g->skip);
                return;
        }
        if (!r->cu) {
                snprintf(g->skip, sizeof(g->skip), "CUDA is not available: %.120s", r->cuda_err);
                result(r, test, (int)g->idx, DIAG_FAIL, NONE, NULL, NONE, NULL, "%s", g->skip);
                return;
        }
        if (g->cudev < 0) {
                snprintf(g->skip, sizeof(g->skip),
                         "CUDA does not see this GPU (%s); CUDA_VISIBLE_DEVICES?",
                         g->id.pci_bus_id);
                result(r, test, (int)g->idx, DIAG_SKIP, NONE, NULL, NONE, NULL, "%s", g->skip);
                return;
        }
        CU(r->cu->cuDeviceGet(&dev, g->cudev), "cuDeviceGet");
        CU(r->cu->cuDeviceGetAttribute(&g->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev),
           "cuDeviceGetAttribute");
        CU(r->cu->cuDevicePrimaryCtxRetain(&g->ctx, dev), "cuDevicePrimaryCtxRetain");
        CU(r->cu->cuCtxSetCurrent(g->ctx), "cuCtxSetCurrent");
        CU(r->cu->cuModuleLoadData(&g->mod, diag_kernels_ptx), "cuModuleLoadData (PTX JIT)");
        CU(r->cu->cuModuleGetFunction(&g->f_smid, g->mod, "vigil_smid"), "cuModuleGetFunction");
        CU(r->cu->cuModuleGetFunction(&g->f_write, g->mod, "vigil_mem_write"),
           "cuModuleGetFunction");
        CU(r->cu->cuModuleGetFunction(&g->f_check, g->mod, "vigil_mem_check"),
           "cuModuleGetFunction");
        CU(r->cu->cuModuleGetFunction(&g->f_fma, g->mod, "vigil_fma"), "cuModuleGetFunction");
        tc_setup(r, g, dev);
        result(r, test, (int)g->idx, DIAG_PASS, g->sms, "SMs", NONE, NULL,
               "context created and kernels JIT-compiled on CUDA device %d (%d SMs, compute "
               "capability %d.%d%s%s)",
               g->cudev, g->sms, g->cc / 10, g->cc % 10, *g->tc_note ? "; " : ", tensor-core load",
               g->tc_note);
out:
        if (rc < 0 && !*g->skip)
                snprintf(g->skip, sizeof(g->skip), "CUDA context could not be set up");
}

/* ---- level 2 ------------------------------------------------------------------------------ */

static const double pcie_lane_gbps[] = {0, 0.25, 0.5, 0.985, 1.969, 3.938, 7.877};

/* Host<->device bandwidth with pinned memory, both directions, and small-copy latency. */
static void t_pcie(struct run *r, struct dgpu *g)
{
        const char *test = "pcie_bandwidth";
        const uint16_t ids[] = {FLD_PCIE_MAX_LINK_GEN, FLD_PCIE_MAX_LINK_WIDTH};
        size_t bytes = (size_t)param_d(r, "pcie.size_mib", 64, NULL) << 20;
        const int reps = 10;
        field_value v[2];
        void *host = NULL;
        CUdeviceptr dev = 0;
        CUevent e0 = NULL, e1 = NULL;
        float ms;
        double gbps[2], theory = NAN, min = NAN, lat_us;
        const char *src = NULL;
        char srcbuf[96];
        int rc = 0;

        if (!usable(r, g, test, 120))
                return;
        sample(r, g, ids, 2, v);
        if (v[0].status == 0 && v[1].status == 0 && v[0].i > 0 &&
            v[0].i < (int64_t)ARRAY_SIZE(pcie_lane_gbps)) {
                theory = pcie_lane_gbps[v[0].i] * (double)v[1].i;
                min = DIAG_PCIE_FRAC * theory;
                snprintf(srcbuf, sizeof(srcbuf), "spec:PCIe gen%lld x%lld %.1f GB/s x %.2f",
                         (long long)v[0].i, (long long)v[1].i, theory, DIAG_PCIE_FRAC);
                src = srcbuf;
        }
        min = param_d(r, "pcie.min_gbps", min, &src);
        CU(r->cu->cuMemAllocHost_v2(&host, bytes), "cuMemAllocHost (pinned)");
        memset(host, 0x5a, bytes);
        CU(r->cu->cuMemAlloc_v2(&dev, bytes), "cuMemAlloc");
        CU(r->cu->cuEventCreate(&e0, CU_EVENT_DEFAULT), "cuEventCreate");
        CU(r->cu->cuEventCreate(&e1, CU_EVENT_DEFAULT), "cuEventCreate");
        for (int dir = 0; dir < 2; dir++) {
                /* one copy to warm up, then reps timed */
                CU(dir == 0 ? r->cu->cuMemcpyHtoD_v2(dev, host, bytes)
                            : r->cu->cuMemcpyDtoH_v2(host, dev, bytes),
                   dir == 0 ? "cuMemcpyHtoD" : "cuMemcpyDtoH");
                CU(r->cu->cuEventRecord(e0, NULL), "cuEventRecord");
                for (int i = 0; i < reps; i++)
                        CU(dir == 0 ? r->cu->cuMemcpyHtoD_v2(dev, host, bytes)
                                    : r->cu->cuMemcpyDtoH_v2(host, dev, bytes),
                           dir == 0 ? "cuMemcpyHtoD" : "cuMemcpyDtoH");
                CU(r->cu->cuEventRecord(e1, NULL), "cuEventRecord");
                CU(r->cu->cuEventSynchronize(e1), "cuEventSynchronize");
                CU(r->cu->cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
                gbps[dir] = ms > 0 ? (double)bytes * reps / (ms * 1e-3) / 1e9 : 0;
        }
        for (int dir = 0; dir < 2; dir++) {
                const char *name = dir == 0 ? "pcie_h2d" : "pcie_d2h";
                if (isnan(min))
                        result(r, name, (int)g->idx, DIAG_PASS, gbps[dir], "GB/s", NONE, NULL,
                               "%.1f GB/s pinned; link speed unknown, no threshold", gbps[dir]);
                else
                        result(r, name, (int)g->idx, gbps[dir] >= min ? DIAG_PASS : DIAG_FAIL,
                               gbps[dir], "GB/s", min, src, "%.1f GB/s pinned %s (minimum %.1f)",
                               gbps[dir], dir == 0 ? "host to device" : "device to host", min);
        }
        /* latency: 4-byte copies one after the other */
        CU(r->cu->cuEventRecord(e0, NULL), "cuEventRecord");
        for (int i = 0; i < 100; i++)
                CU(r->cu->cuMemcpyHtoD_v2(dev, host, 4), "cuMemcpyHtoD");
        CU(r->cu->cuEventRecord(e1, NULL), "cuEventRecord");
        CU(r->cu->cuEventSynchronize(e1), "cuEventSynchronize");
        CU(r->cu->cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
        lat_us = ms * 1e3 / 100;
        src = "default:built-in 50 us";
        min = param_d(r, "pcie.max_latency_us", 50, &src);
        result(r, "pcie_latency", (int)g->idx, lat_us <= min ? DIAG_PASS : DIAG_WARN, lat_us, "us",
               min, src, "%.1f us per 4-byte host to device copy (maximum %.0f)", lat_us, min);
out:
        if (e0)
                r->cu->cuEventDestroy_v2(e0);
        if (e1)
                r->cu->cuEventDestroy_v2(e1);
        if (dev)
                r->cu->cuMemFree_v2(dev);
        if (host)
                r->cu->cuMemFreeHost(host);
}

/* Peer copies GPU i -> GPU i+1 (a ring), through NVLink or PCIe, whichever the driver takes. */
static void t_p2p(struct run *r, size_t gi)
{
        struct dgpu *g = &r->g[gi], *h = &r->g[(gi + 1) % r->n];
        const char *test = "p2p_bandwidth";
        size_t bytes = 64u << 20;
        CUdeviceptr a = 0, b = 0;
        CUevent e0 = NULL, e1 = NULL;
        float ms;
        double gbps, min;
        const char *src = NULL;
        int rc = 0;

        if (!usable(r, g, test, 60))
                return;
        if (*h->skip || !h->ctx) {
                result(r, test, (int)g->idx, DIAG_SKIP, NONE, NULL, NONE, NULL,
                       "peer GPU %u is not usable", h->idx);
                return;
        }
        CU(r->cu->cuMemAlloc_v2(&a, bytes), "cuMemAlloc");
        CU(r->cu->cuCtxSetCurrent(h->ctx), "cuCtxSetCurrent");
        CU(r->cu->cuMemAlloc_v2(&b, bytes), "cuMemAlloc (peer)");
        CU(r->cu->cuCtxSetCurrent(g->ctx), "cuCtxSetCurrent");
        CU(r->cu->cuEventCreate(&e0, 0), "cuEventCreate");
        CU(r->cu->cuEventCreate(&e1, 0), "cuEventCreate");
        CU(r->cu->cuMemcpyPeer(b, h->ctx, a, g->ctx, bytes), "cuMemcpyPeer");
        CU(r->cu->cuEventRecord(e0, NULL), "cuEventRecord");
        for (int i = 0; i < 5; i++)
                CU(r->cu->cuMemcpyPeer(b, h->ctx, a, g->ctx, bytes), "cuMemcpyPeer");
        CU(r->cu->cuEventRecord(e1, NULL), "cuEventRecord");
        CU(r->cu->cuEventSynchronize(e1), "cuEventSynchronize");
        CU(r->cu->cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
        gbps = ms > 0 ? (double)bytes * 5 / (ms * 1e-3) / 1e9 : 0;
        min = param_d(r, "p2p.min_gbps", NAN, &src);
        if (isnan(min))
                result(r, test, (int)g->idx, DIAG_PASS, gbps, "GB/s", NONE, NULL,
                       "%.1f GB/s to GPU %u; set --param p2p.min_gbps to judge", gbps, h->idx);
        else
                result(r, test, (int)g->idx, gbps >= min ? DIAG_PASS : DIAG_FAIL, gbps, "GB/s", min,
                       src, "%.1f GB/s to GPU %u (minimum %.1f)", gbps, h->idx, min);
out:
        r->cu->cuCtxSetCurrent(g->ctx);
        if (e0)
                r->cu->cuEventDestroy_v2(e0);
        if (e1)
                r->cu->cuEventDestroy_v2(e1);
        if (a)
                r->cu->cuMemFree_v2(a);
        if (b) {
                r->cu->cuCtxSetCurrent(h->ctx);
                r->cu->cuMemFree_v2(b);
                r->cu->cuCtxSetCurrent(g->ctx);
        }
}

static const char *const pattern_names[] = {"walking ones", "walking zeros", "address", "random"};

/* Write and check one pattern over [p, p+bytes). 0, or 1 with *bad / *first set when words read
 * back wrong, or -EIO after cu_fail. */
static int mem_pass(struct run *r, struct dgpu *g, const char *test, CUdeviceptr p, size_t bytes,
                    CUdeviceptr res, uint32_t pattern, uint32_t seed, uint64_t *bad,
                    uint64_t *first)
{
        uint64_t n = bytes / 8, init[2] = {0, UINT64_MAX}, got[2];
        void *wargs[] = {&p, &n, &pattern, &seed};
        void *cargs[] = {&p, &n, &pattern, &seed, &res};
        unsigned blocks = (unsigned)MAX(g->sms, 1) * 16;
        int rc = 0;

        CU(r->cu->cuMemcpyHtoD_v2(res, init, sizeof(init)), "cuMemcpyHtoD");
        CU(r->cu->cuLaunchKernel(g->f_write, blocks, 1, 1, 256, 1, 1, 0, NULL, wargs, NULL),
           "cuLaunchKernel vigil_mem_write");
        CU(r->cu->cuLaunchKernel(g->f_check, blocks, 1, 1, 256, 1, 1, 0, NULL, cargs, NULL),
           "cuLaunchKernel vigil_mem_check");
        CU(r->cu->cuCtxSynchronize(), "cuCtxSynchronize");
        CU(r->cu->cuMemcpyDtoH_v2(got, res, sizeof(got)), "cuMemcpyDtoH");
        if (got[0]) {
                *bad += got[0];
                *first = MIN(*first, got[1]);
                return 1;
        }
        return 0;
out:
        return rc;
}

/* The check kernel must see errors where there are some: write one pattern over 1 MiB and check
 * it against another, so that every word is wrong. A kernel that cannot find errors (a PTX or
 * JIT fault) would otherwise make every memory test pass. 0 when it counted every word, else
 * -EIO after a result was reported. */
static int mem_selfcheck(struct run *r, struct dgpu *g, const char *test)
{
        const size_t bytes = 1u << 20;
        uint64_t n = bytes / 8, init[2] = {0, UINT64_MAX}, got[2] = {0, 0};
        uint32_t p0 = 0, p1 = 1, seed = 0;
        CUdeviceptr buf = 0, res = 0;
        void *wargs[] = {&buf, &n, &p0, &seed};
        void *cargs[] = {&buf, &n, &p1, &seed, &res};
        int rc = 0;

        CU(r->cu->cuMemAlloc_v2(&buf, bytes), "cuMemAlloc");
        CU(r->cu->cuMemAlloc_v2(&res, 16), "cuMemAlloc");
        CU(r->cu->cuMemcpyHtoD_v2(res, init, sizeof(init)), "cuMemcpyHtoD");
        CU(r->cu->cuLaunchKernel(g->f_write, 64, 1, 1, 256, 1, 1, 0, NULL, wargs, NULL),
           "cuLaunchKernel vigil_mem_write");
        CU(r->cu->cuLaunchKernel(g->f_check, 64, 1, 1, 256, 1, 1, 0, NULL, cargs, NULL),
           "cuLaunchKernel vigil_mem_check");
        CU(r->cu->cuCtxSynchronize(), "cuCtxSynchronize");
        CU(r->cu->cuMemcpyDtoH_v2(got, res, sizeof(got)), "cuMemcpyDtoH");
        /* a real bad cell may happen to hold the other pattern: allow a few */
        if (got[0] + 16 < n || got[0] > n || got[1] < buf || got[1] >= buf + bytes) {
                result(r, test, (int)g->idx, DIAG_FAIL, (double)got[0], "words", (double)n, NULL,
                       "self-check failed: the check kernel found %llu of %llu planted errors "
                       "(lowest at 0x%llx, expected 0x%llx); the memory test cannot be trusted",
                       (unsigned long long)got[0], (unsigned long long)n,
                       (unsigned long long)got[1], (unsigned long long)buf);
                rc = -EIO;
        }
out:
        if (res)
                r->cu->cuMemFree_v2(res);
        if (buf)
                r->cu->cuMemFree_v2(buf);
        return rc;
}

/* Memory test over `fraction` of free memory in chunks, patterns cycling until `duration`
 * (at least one pass of each pattern on every chunk). Level 2 runs it short. */
static void t_memory(struct run *r, struct dgpu *g, const char *test, double fraction,
                     size_t max_bytes, double duration, unsigned npatterns)
{
        CUdeviceptr chunks[512] = {0}, res = 0;
        size_t sizes[512] = {0}, nchunks = 0, total = 0, freeb = 0, totalb = 0, target;
        const size_t chunk = 1ull << 30;
        uint64_t bad = 0, first = UINT64_MAX;
        uint32_t seed = 0;
        unsigned passes = 0;
        struct watch w;
        double t0, deadline;
        char why[256], pat[64] = "";
        int rc = 0;

        if (!usable(r, g, test, duration * 3 + 120))
                return;
        if (mem_selfcheck(r, g, test) < 0)
                return;
        watch_start(r, g, &w);
        CU(r->cu->cuMemGetInfo_v2(&freeb, &totalb), "cuMemGetInfo");
        target = MIN((size_t)((double)freeb * fraction), max_bytes) & ~(size_t)((1u << 20) - 1);
        while (total < target && nchunks < ARRAY_SIZE(chunks)) {
                size_t want = MIN(chunk, target - total);
                CUresult cr;
                /* the allocator keeps some memory of its own: back off until it fits */
                while ((cr = r->cu->cuMemAlloc_v2(&chunks[nchunks], want)) ==
                           CUDA_ERROR_OUT_OF_MEMORY &&
                       want > (64u << 20))
                        want /= 2;
                if (cr == CUDA_ERROR_OUT_OF_MEMORY)
                        break;
                CU(cr, "cuMemAlloc");
                sizes[nchunks++] = want;
                total += want;
        }
        /* the result words last, so that the chunks start at the lowest addresses */
        CU(r->cu->cuMemAlloc_v2(&res, 16), "cuMemAlloc");
        t0 = now_s();
        deadline = t0 + duration;
        do {
                for (uint32_t p = 0; p < npatterns; p++) {
                        for (size_t c = 0; c < nchunks; c++) {
                                int k = mem_pass(r, g, test, chunks[c], sizes[c], res, p, seed,
                                                 &bad, &first);
                                if (k < 0)
                                        goto out;
                                if (k > 0 && !*pat)
                                        snprintf(pat, sizeof(pat), "%s", pattern_names[p]);
                        }
                        watch_tick(r, g, &w, false);
                }
                passes++;
                seed += 0x9e3779b9u;
        } while (now_s() < deadline && !bad);
        if (bad) {
                result(r, test, (int)g->idx, DIAG_FAIL, (double)bad, "words", 0, NULL,
                       "%llu wrong read(s) (first with pattern %s), lowest bad device address "
                       "0x%llx",
                       (unsigned long long)bad, pat, (unsigned long long)first);
        } else if (watch_end(r, g, &w, why, sizeof(why))) {
                result(r, test, (int)g->idx, DIAG_FAIL, 0, "words", 0, NULL, "%s", why);
        } else {
                double pct = freeb ? 100.0 * (double)total / (double)freeb : 0;
                double want = 100 * fraction;
                bool enough = max_bytes != SIZE_MAX || pct + 0.5 >= want;
                char what[64];
                if (max_bytes != SIZE_MAX) /* level 2: a fixed size */
                        snprintf(what, sizeof(what), "%.1f GiB", (double)total / (1 << 30));
                else
                        snprintf(what, sizeof(what), "%.1f GiB (%.0f %% of free memory)",
                                 (double)total / (1 << 30), pct);
                result(r, test, (int)g->idx, enough ? DIAG_PASS : DIAG_WARN, 0, "words", 0, NULL,
                       "%s tested, %u pass(es) of %u pattern(s), no errors; ECC and XID "
                       "unchanged%s",
                       what, passes, npatterns,
                       enough ? "" : "; could not allocate the fraction asked for");
        }
out:
        for (size_t c = 0; c < nchunks; c++)
                r->cu->cuMemFree_v2(chunks[c]);
        if (res)
                r->cu->cuMemFree_v2(res);
}

/* Every SM answers: blocks spin a while and write %smid; count distinct SMs. */
static void t_sm_check(struct run *r, struct dgpu *g)
{
        const char *test = "sm_check";
        unsigned blocks = (unsigned)MAX(g->sms, 1) * 4;
        unsigned long long spin = (unsigned long long)param_d(r, "sm_check.spin_cycles", 1e7, NULL);
        _cleanup_free_ uint32_t *ids = calloc(blocks, sizeof(uint32_t));
        _cleanup_free_ bool *seen = calloc(1024, sizeof(bool));
        CUdeviceptr out = 0;
        void *args[] = {&out, &spin};
        unsigned distinct = 0;
        int rc = 0;

        if (!usable(r, g, test, 60))
                return;
        if (!ids || !seen) {
                result(r, test, (int)g->idx, DIAG_FAIL, NONE, NULL, NONE, NULL, "out of memory");
                return;
        }
        CU(r->cu->cuMemAlloc_v2(&out, blocks * sizeof(uint32_t)), "cuMemAlloc");
        CU(r->cu->cuMemsetD32_v2(out, 0xffffffffu, blocks), "cuMemsetD32");
        /* 48 KiB of dynamic shared memory a block (the most without opting in) caps how many
         * blocks one SM holds (4 on Hopper, 3 on A100), so the blocks spread over every SM */
        CU(r->cu->cuLaunchKernel(g->f_smid, blocks, 1, 1, 32, 1, 1, 48 * 1024, NULL, args, NULL),
           "cuLaunchKernel vigil_smid");
        CU(r->cu->cuCtxSynchronize(), "cuCtxSynchronize");
        CU(r->cu->cuMemcpyDtoH_v2(ids, out, blocks * sizeof(uint32_t)), "cuMemcpyDtoH");
        for (unsigned i = 0; i < blocks; i++)
                if (ids[i] < 1024 && !seen[ids[i]]) {
                        seen[ids[i]] = true;
                        distinct++;
                }
        result(r, test, (int)g->idx, distinct >= (unsigned)g->sms ? DIAG_PASS : DIAG_FAIL, distinct,
               "SMs", g->sms, "spec:cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)",
               "%u of %d SMs ran a block", distinct, g->sms);
out:
        if (out)
                r->cu->cuMemFree_v2(out);
}

/* ---- level 3 ------------------------------------------------------------------------------ */

static void t_mem_bandwidth(struct run *r, struct dgpu *g)
{
        const char *test = "memory_bandwidth";
        size_t bytes = (size_t)param_d(r, "memory_bandwidth.size_mib", 1024, NULL) << 20;
        double duration = param_d(r, "memory_bandwidth.duration", 10, NULL);
        CUdeviceptr a = 0, b = 0;
        CUevent e0 = NULL, e1 = NULL;
        double best = 0, t_end, spec = g->sku ? g->sku->dram_gbps : NAN, min = NAN;
        const char *src = NULL;
        char srcbuf[128];
        float ms;
        int rc = 0;

        if (!usable(r, g, test, duration * 3 + 60))
                return;
        if (!isnan(spec)) {
                min = g->sku->dram_frac * spec;
                snprintf(srcbuf, sizeof(srcbuf), "spec:SKU table %s %.0f GB/s x %.2f (%s)",
                         g->sku->match, spec, g->sku->dram_frac, g->sku->basis);
                src = srcbuf;
        }
        min = param_d(r, "memory_bandwidth.min_gbps", min, &src);
        CU(r->cu->cuMemAlloc_v2(&a, bytes), "cuMemAlloc");
        CU(r->cu->cuMemAlloc_v2(&b, bytes), "cuMemAlloc");
        CU(r->cu->cuEventCreate(&e0, 0), "cuEventCreate");
        CU(r->cu->cuEventCreate(&e1, 0), "cuEventCreate");
        CU(r->cu->cuMemcpyDtoD_v2(b, a, bytes), "cuMemcpyDtoD");
        t_end = now_s() + duration;
        do {
                CU(r->cu->cuEventRecord(e0, NULL), "cuEventRecord");
                for (int i = 0; i < 10; i++)
                        CU(r->cu->cuMemcpyDtoD_v2(i & 1 ? a : b, i & 1 ? b : a, bytes),
                           "cuMemcpyDtoD");
                CU(r->cu->cuEventRecord(e1, NULL), "cuEventRecord");
                CU(r->cu->cuEventSynchronize(e1), "cuEventSynchronize");
                CU(r->cu->cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
                /* a copy reads and writes each byte */
                if (ms > 0)
                        best = MAX(best, 2.0 * (double)bytes * 10 / (ms * 1e-3) / 1e9);
        } while (now_s() < t_end);
        if (isnan(min))
                result(r, test, (int)g->idx, DIAG_PASS, best, "GB/s", NONE, NULL,
                       "%.0f GB/s device copy (read + write); no spec for '%s', set --param "
                       "memory_bandwidth.min_gbps to judge",
                       best, g->id.name);
        else
                result(r, test, (int)g->idx, best >= min ? DIAG_PASS : DIAG_FAIL, best, "GB/s", min,
                       src, "%.0f GB/s device copy (read + write), minimum %.0f", best, min);
out:
        if (e0)
                r->cu->cuEventDestroy_v2(e0);
        if (e1)
                r->cu->cuEventDestroy_v2(e1);
        if (a)
                r->cu->cuMemFree_v2(a);
        if (b)
                r->cu->cuMemFree_v2(b);
}

/* FMA load held for `duration`: the SM stress (throughput judged) and targeted power (power
 * judged) share it. */
static void t_fma_load(struct run *r, struct dgpu *g, const char *test, double duration, bool power)
{
        unsigned blocks = (unsigned)MAX(g->sms, 1) * 8, threads = 256;
        /* targeted power drives the tensor cores where it can: FP32 FMA alone leaves an H100
         * near half its power limit (docs/gpu-validation.md) */
        bool tc = power && g->f_mma;
        CUfunction fn = tc ? g->f_mma : g->f_fma;
        /* flops per thread per iteration: 8 MMAs of 4096 flops a warp, or 32 FMAs */
        double per_iter = tc ? 8.0 * 4096 / 32 : 64;
        uint32_t iters = tc ? 64 : 4096;
        CUdeviceptr out = 0;
        CUevent e0 = NULL, e1 = NULL;
        void *args[] = {&out, &iters};
        double flops = 0, secs = 0, t_end, next_tick, spec = g->sku ? g->sku->fp32_tflops : NAN;
        double min = NAN, tflops;
        const uint16_t lim_ids[] = {FLD_ENFORCED_POWER_LIMIT, FLD_POWER_LIMIT};
        field_value lim[2];
        const char *src = NULL;
        char srcbuf[128], why[256];
        struct watch w;
        float ms;
        int rc = 0;

        if (!usable(r, g, test, duration * 2 + 60))
                return;
        CU(r->cu->cuMemAlloc_v2(&out, (size_t)blocks * threads * 4), "cuMemAlloc");
        CU(r->cu->cuEventCreate(&e0, 0), "cuEventCreate");
        CU(r->cu->cuEventCreate(&e1, 0), "cuEventCreate");
        watch_start(r, g, &w);
        t_end = now_s() + duration;
        next_tick = now_s() + (power ? 2 : 0.5); /* power: let it ramp first */
        while (now_s() < t_end) {
                CU(r->cu->cuEventRecord(e0, NULL), "cuEventRecord");
                CU(r->cu->cuLaunchKernel(fn, blocks, 1, 1, threads, 1, 1, 0, NULL, args, NULL),
                   tc ? "cuLaunchKernel vigil_mma" : "cuLaunchKernel vigil_fma");
                CU(r->cu->cuEventRecord(e1, NULL), "cuEventRecord");
                CU(r->cu->cuEventSynchronize(e1), "cuEventSynchronize");
                CU(r->cu->cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
                flops += (double)blocks * threads * iters * per_iter;
                secs += ms * 1e-3;
                /* aim at ~50 ms a launch so the watchdog and the monitor stay responsive */
                if (ms > 0 && ms < 25 && iters < (1u << 24))
                        iters *= 2;
                if (now_s() >= next_tick) {
                        watch_tick(r, g, &w, power);
                        next_tick = now_s() + 0.5;
                }
        }
        tflops = secs > 0 ? flops / secs / 1e12 : 0;
        if (watch_end(r, g, &w, why, sizeof(why))) {
                result(r, test, (int)g->idx, DIAG_FAIL, power ? w.max_power : tflops,
                       power ? "W" : "TFLOPS", NONE, NULL, "%s", why);
        } else if (!power) {
                if (!isnan(spec)) {
                        min = g->sku->fp32_frac * spec;
                        snprintf(srcbuf, sizeof(srcbuf),
                                 "spec:SKU table %s FP32 %.1f TFLOPS x %.2f (%s)", g->sku->match,
                                 spec, g->sku->fp32_frac, g->sku->basis);
                        src = srcbuf;
                }
                min = param_d(r, "sm_stress.min_tflops", min, &src);
                if (isnan(min))
                        result(r, test, (int)g->idx, DIAG_PASS, tflops, "TFLOPS", NONE, NULL,
                               "%.1f FP32 TFLOPS held for %.0f s; no spec for '%s'", tflops,
                               duration, g->id.name);
                else
                        result(r, test, (int)g->idx, tflops >= min ? DIAG_PASS : DIAG_FAIL, tflops,
                               "TFLOPS", min, src,
                               "%.1f FP32 TFLOPS held for %.0f s (minimum %.1f), max %lld C",
                               tflops, duration, min, (long long)w.max_temp);
        } else {
                double limit, frac;
                sample(r, g, lim_ids, 2, lim);
                limit = f64(&lim[0], f64(&lim[1], NAN));
                src = "default:enforced power limit x 0.6";
                frac = param_d(r, "targeted_power.min_fraction", DIAG_POWER_FRAC, &src);
                if (isnan(limit) || w.power_samples == 0)
                        result(r, test, (int)g->idx, DIAG_SKIP, w.max_power, "W", NONE, NULL,
                               "power or power limit not reported");
                else
                        result(r, test, (int)g->idx,
                               w.max_power >= frac * limit ? DIAG_PASS : DIAG_WARN, w.max_power,
                               "W", frac * limit, src,
                               "%.0f W peak (%.0f %% of the %.0f W limit), %.0f W mean under %s "
                               "load (%.1f TFLOPS) for %.0f s (clock reasons 0x%llx, max %lld "
                               "C)%s%s",
                               w.max_power, 100 * w.max_power / limit, limit,
                               w.sum_power / w.power_samples,
                               tc ? "tensor-core FP16 (mma.sync)" : "FP32 FMA", tflops, duration,
                               (unsigned long long)w.reasons, (long long)w.max_temp,
                               *g->tc_note ? "; " : "", g->tc_note);
        }
out:
        if (e0)
                r->cu->cuEventDestroy_v2(e0);
        if (e1)
                r->cu->cuEventDestroy_v2(e1);
        if (out)
                r->cu->cuMemFree_v2(out);
}

/* ---- level 3 on every GPU at once -------------------------------------------------------- */

enum l3_test { L3_MEMTEST, L3_BANDWIDTH, L3_STRESS, L3_POWER, L3_COUNT };

struct l3_job {
        struct run *r;
        struct dgpu *g;
        enum l3_test t;
};

static void *l3_one(void *arg)
{
        struct l3_job *j = arg;
        struct run *r = j->r;

        switch (j->t) {
        case L3_MEMTEST:
                t_memory(r, j->g, "memtest", param_d(r, "memtest.fraction", 0.9, NULL), SIZE_MAX,
                         param_d(r, "memtest.duration", 240, NULL), 4);
                break;
        case L3_BANDWIDTH:
                t_mem_bandwidth(r, j->g);
                break;
        case L3_STRESS:
                t_fma_load(r, j->g, "sm_stress", param_d(r, "sm_stress.duration", 240, NULL),
                           false);
                break;
        default:
                t_fma_load(r, j->g, "targeted_power",
                           param_d(r, "targeted_power.duration", 240, NULL), true);
                break;
        }
        return NULL;
}

static void run_l3(struct run *r, enum l3_test t, bool parallel)
{
        struct l3_job jobs[DIAG_MAX_GPUS];
        pthread_t th[DIAG_MAX_GPUS];
        bool started[DIAG_MAX_GPUS] = {false};

        for (size_t i = 0; i < r->n; i++) {
                jobs[i] = (struct l3_job){.r = r, .g = &r->g[i], .t = t};
                if (parallel && r->n > 1 && pthread_create(&th[i], NULL, l3_one, &jobs[i]) == 0)
                        started[i] = true;
                else
                        l3_one(&jobs[i]);
        }
        for (size_t i = 0; i < r->n; i++)
                if (started[i])
                        pthread_join(th[i], NULL);
}

/* ---- the run ------------------------------------------------------------------------------ */

static void find_fakecuda(char *path, size_t len)
{
        const char *env = getenv("VIGIL_FAKECUDA");
        char exe[PATH_MAX];
        ssize_t n;

        snprintf(path, len, "libvigil-fakecuda.so");
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
                        static const char *const rel[] = {"/../lib/libvigil-fakecuda.so",
                                                          "/../lib/vigil/libvigil-fakecuda.so"};
                        for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
                                int k = snprintf(path, len, "%s%s", exe, rel[i]);
                                if (k > 0 && (size_t)k < len && access(path, R_OK) == 0)
                                        return;
                        }
                        snprintf(path, len, "libvigil-fakecuda.so");
                }
        }
}

/* "00000000:18:00.0" and "0000:18:00.0" name the same device. */
static bool same_bus(const char *a, const char *b)
{
        unsigned d1, b1, v1, f1, d2, b2, v2, f2;
        if (sscanf(a, "%x:%x:%x.%x", &d1, &b1, &v1, &f1) != 4 ||
            sscanf(b, "%x:%x:%x.%x", &d2, &b2, &v2, &f2) != 4)
                return false;
        return d1 == d2 && b1 == b2 && v1 == v2 && f1 == f2;
}

int diag_worker_run(const diag_opts *o, FILE *out)
{
        struct run *r = calloc(1, sizeof(*r));
        backend_options bo = {
            .library = o->nvml_lib, .simulate = o->simulate, .scenario = o->scenario};
        char err[512], cudalib[PATH_MAX];
        const char *lib = o->cuda_lib;
        int ret;

        if (!r)
                return -ENOMEM;
        r->o = o;
        r->out = out;
        pthread_mutex_init(&r->out_lock, NULL);
        ret = backend_open(&bo, &r->b, err, sizeof(err));
        if (ret < 0) {
                emit(r, json_pack("{s:s, s:s}", "event", "error", "reason", err));
                free(r);
                return ret;
        }
        backend_device_count(r->b, &r->nvml_count);
        if (o->ngpus == 0)
                for (unsigned i = 0; i < r->nvml_count && r->n < DIAG_MAX_GPUS; i++)
                        r->g[r->n++].idx = i;
        for (size_t i = 0; i < o->ngpus; i++) {
                if (o->gpus[i] >= r->nvml_count) {
                        snprintf(err, sizeof(err), "no GPU %u (%u GPU(s) found)", o->gpus[i],
                                 r->nvml_count);
                        emit(r, json_pack("{s:s, s:s}", "event", "error", "reason", err));
                        backend_close(r->b);
                        free(r);
                        return -ENODEV;
                }
                r->g[r->n++].idx = o->gpus[i];
        }
        if (!lib && o->simulate) {
                find_fakecuda(cudalib, sizeof(cudalib));
                lib = cudalib;
        }
        if (cuda_open(lib, o->scenario, &r->cu, r->cuda_err, sizeof(r->cuda_err)) < 0)
                r->cu = NULL;
        for (size_t i = 0; i < r->n; i++) {
                struct dgpu *g = &r->g[i];
                int cnt = 0;
                g->cudev = -1;
                if (backend_device_info(r->b, g->idx, &g->id) < 0)
                        snprintf(g->skip, sizeof(g->skip), "GPU is lost");
                g->sku = diag_sku_find(g->id.name);
                if (r->cu && r->cu->cuDeviceGetCount(&cnt) == CUDA_SUCCESS)
                        for (int d = 0; d < cnt; d++) {
                                char bus[32];
                                if (r->cu->cuDeviceGetPCIBusId(bus, sizeof(bus), d) ==
                                        CUDA_SUCCESS &&
                                    same_bus(bus, g->id.pci_bus_id))
                                        g->cudev = d;
                        }
        }
        {
                json_t *gl = json_array();
                for (size_t i = 0; i < r->n; i++)
                        json_array_append_new(
                            gl, json_pack("{s:i, s:s, s:s, s:s, s:i}", "index", r->g[i].idx, "name",
                                          r->g[i].id.name, "uuid", r->g[i].id.uuid, "pci_bus_id",
                                          r->g[i].id.pci_bus_id, "cuda_device", r->g[i].cudev));
                emit(r,
                     json_pack("{s:s, s:i, s:o}", "event", "start", "level", o->level, "gpus", gl));
        }
        if (backend_events_start(r->b) == 0 &&
            pthread_create(&r->xid_thread, NULL, xid_watch, r) == 0)
                r->xid_running = true;

        t_system(r);
        for (size_t i = 0; i < r->n; i++)
                if (!*r->g[i].skip)
                        t_gpu_software(r, &r->g[i]);
        if (o->level >= 2) {
                for (size_t i = 0; i < r->n; i++)
                        gpu_setup(r, &r->g[i]);
                for (size_t i = 0; i < r->n; i++)
                        t_pcie(r, &r->g[i]);
                if (r->n > 1)
                        for (size_t i = 0; i < r->n; i++)
                                t_p2p(r, i);
                for (size_t i = 0; i < r->n; i++)
                        t_memory(r, &r->g[i], "memory", 1.0,
                                 (size_t)param_d(r, "memory.size_mib", 1024, NULL) << 20, 0, 2);
                for (size_t i = 0; i < r->n; i++)
                        t_sm_check(r, &r->g[i]);
        }
        if (o->level >= 3) {
                /* Like DCGM, the long tests load every GPU at once (a node's power and cooling
                 * are part of what is tested); --param level3.parallel=0 runs them in turn. */
                bool par = param_d(r, "level3.parallel", 1, NULL) != 0;
                for (int t = 0; t < L3_COUNT; t++)
                        run_l3(r, (enum l3_test)t, par);
        }
        emit(r, json_pack("{s:s}", "event", "end"));
        if (r->xid_running) {
                atomic_store(&r->xid_stop, true);
                pthread_join(r->xid_thread, NULL);
        }
        for (size_t i = 0; i < r->n; i++)
                if (r->g[i].ctx && r->cu) {
                        CUdevice d;
                        if (r->g[i].mod)
                                r->cu->cuModuleUnload(r->g[i].mod);
                        if (r->g[i].mod_tc)
                                r->cu->cuModuleUnload(r->g[i].mod_tc);
                        if (r->cu->cuDeviceGet(&d, r->g[i].cudev) == CUDA_SUCCESS)
                                r->cu->cuDevicePrimaryCtxRelease_v2(d);
                }
        cuda_close(r->cu);
        backend_close(r->b);
        pthread_mutex_destroy(&r->out_lock);
        free(r);
        return 0;
}
