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

/* Data-sheet numbers (NVIDIA product briefs). FP32 is the non-tensor peak at boost clock. */
static const diag_sku skus[] = {
    {"GH200", 4000, 67},       {"H200", 4800, 67},
    {"H100 NVL", 3900, 60},    {"H100 PCIe", 2000, 51},
    {"H100", 3350, 67},        {"H800", 3350, 67},
    {"B200", 8000, 80},        {"A100-SXM4-80GB", 2039, 19.5},
    {"A100 80GB", 1935, 19.5}, {"A100", 1555, 19.5},
    {"A800", 2039, 19.5},      {"L40S", 864, 91.6},
    {"L40", 864, 90.5},        {"L4", 300, 30.3},
    {"A10", 600, 31.2},
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
