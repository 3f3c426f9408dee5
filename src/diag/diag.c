/* diag.c — the small shared pieces of the diag module: verdict names, GPU lists, the parameter
 * table, the SKU spec table and finding the worker executable. */
#include "diag.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "diag-internal.h"
#include "diag_config.h"

static const char *const verdicts[] = {"pass", "skip", "warn", "fail"};

const char *diag_verdict_name(enum diag_verdict v)
{
        return (unsigned)v < ARRAY_SIZE(verdicts) ? verdicts[v] : "fail";
}

int diag_verdict_parse(const char *s)
{
        for (size_t i = 0; s && i < ARRAY_SIZE(verdicts); i++)
                if (strcmp(s, verdicts[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

int diag_parse_gpu_list(const char *s, diag_opts *o)
{
        const char *p = s;

        o->ngpus = 0;
        while (p && *p) {
                char *end = NULL;
                unsigned long v;
                errno = 0;
                v = strtoul(p, &end, 10);
                if (end == p || errno || v >= 4096 || (*end && *end != ','))
                        return -EINVAL;
                if (o->ngpus >= DIAG_MAX_GPUS)
                        return -E2BIG;
                o->gpus[o->ngpus++] = (unsigned)v;
                p = *end ? end + 1 : end;
        }
        return o->ngpus ? 0 : -EINVAL;
}

/* Every parameter a run accepts (docs/diagnostics.md lists them with their defaults). */
static const char *const known_params[] = {
    "gpu_count.expected",
    "pcie.size_mib",
    "pcie.min_gbps",
    "pcie.max_latency_us",
    "p2p.min_gbps",
    "memory.size_mib",
    "sm_check.spin_cycles",
    "memtest.duration",
    "memtest.fraction",
    "memory_bandwidth.duration",
    "memory_bandwidth.size_mib",
    "memory_bandwidth.min_gbps",
    "sm_stress.duration",
    "sm_stress.min_tflops",
    "targeted_power.duration",
    "targeted_power.min_fraction",
    "level3.parallel",
};

int diag_param_check(const char *kv, char *err, size_t errlen)
{
        const char *eq = strchr(kv, '=');
        char *end = NULL;
        double v;

        if (!eq) {
                snprintf(err, errlen, "parameter '%.64s' is not test.key=value", kv);
                return -EINVAL;
        }
        for (size_t i = 0; i < ARRAY_SIZE(known_params); i++)
                if (strlen(known_params[i]) == (size_t)(eq - kv) &&
                    strncmp(kv, known_params[i], (size_t)(eq - kv)) == 0) {
                        errno = 0;
                        v = strtod(eq + 1, &end);
                        if (end == eq + 1 || *end || errno || !(v >= 0) || v > 1e9) {
                                snprintf(err, errlen, "parameter '%.64s': '%.32s' is not a number",
                                         known_params[i], eq + 1);
                                return -EINVAL;
                        }
                        return 0;
                }
        snprintf(err, errlen, "unknown parameter '%.*s'", (int)MIN(eq - kv, 64), kv);
        return -EINVAL;
}

/* Data-sheet numbers (NVIDIA product briefs; FP32 is the non-tensor peak at boost clock) and the
 * fraction of each that a healthy GPU must reach. Calibrated on an H100 SXM5 80 GB
 * (docs/gpu-validation.md, 2026-12-06): device copy 3031 GB/s = 0.905 of 3350, FP32 FMA
 * 55.5 TFLOPS = 0.83 of 67; the defaults sit about 0.1 below those ratios (0.80, 0.70), room for
 * clocks that vary with temperature and power and for memory that other contexts hold. H200 and
 * the other Hopper boards share the H100's die and kernels' efficiency: same fractions, not yet
 * measured on them. Other SKUs keep the conservative 0.5 until measured. */
#define HOPPER 0.80, 0.70, "ratio measured on H100 SXM5 (docs/gpu-validation.md) minus 0.1"
#define UNCAL  0.5, 0.5, "not calibrated: half the data sheet"
static const diag_sku skus[] = {
    {"GH200", 4000, 67, HOPPER},
    {"H200", 4800, 67, HOPPER},
    {"H100 NVL", 3900, 60, HOPPER},
    {"H100 PCIe", 2000, 51, HOPPER},
    {"H100", 3350, 67, 0.80, 0.70, "measured on H100 SXM5 (docs/gpu-validation.md) minus 0.1"},
    {"H800", 3350, 67, HOPPER},
    {"B200", 8000, 80, UNCAL},
    {"A100-SXM4-80GB", 2039, 19.5, UNCAL},
    {"A100 80GB", 1935, 19.5, UNCAL},
    {"A100", 1555, 19.5, UNCAL},
    {"A800", 2039, 19.5, UNCAL},
    {"L40S", 864, 91.6, UNCAL},
    {"L40", 864, 90.5, UNCAL},
    {"L4", 300, 30.3, UNCAL},
    {"A10", 600, 31.2, UNCAL},
};

const diag_sku *diag_sku_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(skus); i++)
                if (strstr(name, skus[i].match))
                        return &skus[i];
        return NULL;
}

int diag_find_worker(char *buf, size_t len)
{
        const char *env = getenv("VIGIL_DIAG_WORKER");
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env && access(env, X_OK) == 0) {
                snprintf(buf, len, "%s", env);
                return 0;
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return -ENOENT;
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (!slash)
                return -ENOENT;
        *slash = '\0';
        static const char *const rel[] = {"/vigil-diag", "/../libexec/vigil/vigil-diag"};
        for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
                int k = snprintf(buf, len, "%s%s", exe, rel[i]);
                if (k > 0 && (size_t)k < len && access(buf, X_OK) == 0)
                        return 0;
        }
        return -ENOENT;
}

void diag_config_defaults(diag_config *c)
{
        *c = (diag_config){
            .retention_count = 1000,
            .retention_max_age_us = 90 * 86400 * 1000000LL,
            .pcie_size_mib = 64,
            .memory_size_mib = 1024,
            .memtest_duration_us = 240 * 1000000LL,
            .memtest_fraction = 0.9,
            .memory_bandwidth_duration_us = 10 * 1000000LL,
            .sm_stress_duration_us = 240 * 1000000LL,
            .targeted_power_duration_us = 240 * 1000000LL,
            .level3_parallel = true,
        };
}

size_t diag_config_params(const diag_config *c, char (*out)[DIAG_CONFIG_PARAM_LEN], size_t max)
{
        const struct {
                const char *key;
                double v;
                bool always; /* sizes and durations; thresholds only when set */
        } kv[] = {
            {"gpu_count.expected", c->expected_gpus, false},
            {"pcie.size_mib", c->pcie_size_mib, true},
            {"pcie.min_gbps", c->pcie_min_gbps, false},
            {"pcie.max_latency_us", c->pcie_max_latency_us, false},
            {"p2p.min_gbps", c->p2p_min_gbps, false},
            {"memory.size_mib", c->memory_size_mib, true},
            {"memtest.duration", (double)c->memtest_duration_us / 1e6, true},
            {"memtest.fraction", c->memtest_fraction, true},
            {"memory_bandwidth.duration", (double)c->memory_bandwidth_duration_us / 1e6, true},
            {"memory_bandwidth.min_gbps", c->memory_bandwidth_min_gbps, false},
            {"sm_stress.duration", (double)c->sm_stress_duration_us / 1e6, true},
            {"sm_stress.min_tflops", c->sm_stress_min_tflops, false},
            {"targeted_power.duration", (double)c->targeted_power_duration_us / 1e6, true},
            {"targeted_power.min_fraction", c->targeted_power_min_fraction, false},
            {"level3.parallel", c->level3_parallel, true},
        };
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(kv) && n < max; i++)
                if (kv[i].always || kv[i].v > 0)
                        snprintf(out[n++], DIAG_CONFIG_PARAM_LEN, "%s=%.17g", kv[i].key, kv[i].v);
        return n;
}
