/* gpuconfig_value.c — the text values of GPU settings (gpuconfig.h): parsing and the canonical
 * form, and the GPU lists of config.enforce. No state and no NVML: the configuration parser
 * (src/daemon/config.c) links this alone to check config.enforce. */
#include "gpuconfig.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/macros.h"

static const char *const setting_names[BCFG_COUNT] = {
    [BCFG_POWER_LIMIT] = "power_limit",
    [BCFG_APP_CLOCKS] = "app_clocks",
    [BCFG_LOCKED_GPU_CLOCKS] = "locked_gpu_clocks",
    [BCFG_LOCKED_MEM_CLOCKS] = "locked_mem_clocks",
    [BCFG_COMPUTE_MODE] = "compute_mode",
    [BCFG_PERSISTENCE] = "persistence",
    [BCFG_ECC] = "ecc",
};

const char *gpucfg_setting_name(enum backend_cfg_setting s)
{
        return (unsigned)s < BCFG_COUNT ? setting_names[s] : NULL;
}

int gpucfg_setting_from_name(const char *name)
{
        for (unsigned i = 0; i < BCFG_COUNT; i++)
                if (name && !strcmp(name, setting_names[i]))
                        return (int)i;
        return -EINVAL;
}

/* A whole unsigned number in 1..max. */
static int parse_uint(const char *s, unsigned max, unsigned *out)
{
        char *end;
        unsigned long v;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *out = (unsigned)v;
        return 0;
}

/* "A,B" or "A" (then B = A), each 1..max MHz. */
static int parse_pair(const char *s, unsigned max, unsigned *a, unsigned *b)
{
        char tmp[GPUCFG_VALUE_MAX];
        char *comma;

        if (strlen(s) >= sizeof(tmp))
                return -EINVAL;
        snprintf(tmp, sizeof(tmp), "%s", s);
        comma = strchr(tmp, ',');
        if (comma)
                *comma = '\0';
        if (parse_uint(tmp, max, a) < 0 || *a == 0)
                return -EINVAL;
        if (!comma) {
                *b = *a;
                return 0;
        }
        if (parse_uint(comma + 1, max, b) < 0 || *b == 0)
                return -EINVAL;
        return 0;
}

static int parse_bool(const char *s, unsigned *out)
{
        static const char *const on[] = {"enabled", "enable", "on", "true", "1"};
        static const char *const off[] = {"disabled", "disable", "off", "false", "0"};

        for (size_t i = 0; i < ARRAY_SIZE(on); i++) {
                if (!strcasecmp(s, on[i])) {
                        *out = 1;
                        return 0;
                }
                if (!strcasecmp(s, off[i])) {
                        *out = 0;
                        return 0;
                }
        }
        return -EINVAL;
}

int gpucfg_value_parse(enum backend_cfg_setting s, const char *text, gpucfg_value *out, char *err,
                       size_t errlen)
{
        gpucfg_value v = {.set = true};
        int r = -EINVAL;

        if (!text || !*text || strlen(text) >= GPUCFG_VALUE_MAX) {
                snprintf(err, errlen, "%s: empty or too long a value",
                         gpucfg_setting_name(s) ?: "?");
                return -EINVAL;
        }
        switch (s) {
        case BCFG_POWER_LIMIT: {
                char *end;
                double w;
                errno = 0;
                w = strtod(text, &end);
                if (!errno && !*end && isfinite(w) && w >= 1 && w <= 100000) {
                        v.a = (unsigned)llround(w * 1000);
                        r = 0;
                }
                if (r < 0)
                        snprintf(err, errlen,
                                 "power_limit: '%s' is not a power in watts (e.g. 500 or 450.5)",
                                 text);
                break;
        }
        case BCFG_APP_CLOCKS:
                if (!strcasecmp(text, "default") || !strcasecmp(text, "reset")) {
                        r = 0;
                        break;
                }
                r = strchr(text, ',') ? parse_pair(text, 100000, &v.a, &v.b) : -EINVAL;
                if (r < 0)
                        snprintf(err, errlen,
                                 "app_clocks: '%s' is not MEM,SM in MHz (e.g. 3201,1980) or "
                                 "'default'",
                                 text);
                break;
        case BCFG_LOCKED_GPU_CLOCKS:
        case BCFG_LOCKED_MEM_CLOCKS:
                if (!strcasecmp(text, "reset") || !strcasecmp(text, "none")) {
                        r = 0;
                        break;
                }
                r = parse_pair(text, 100000, &v.a, &v.b);
                if (r == 0 && v.a > v.b)
                        r = -EINVAL;
                if (r < 0)
                        snprintf(err, errlen,
                                 "%s: '%s' is not MIN,MAX in MHz with MIN <= MAX (e.g. 1200,1800) "
                                 "or 'reset'",
                                 gpucfg_setting_name(s), text);
                break;
        case BCFG_COMPUTE_MODE:
                if (!strcasecmp(text, "default") || !strcasecmp(text, "unrestricted") ||
                    !strcmp(text, "0"))
                        v.a = 0, r = 0;
                else if (!strcasecmp(text, "prohibited") || !strcmp(text, "2"))
                        v.a = 2, r = 0;
                else if (!strcasecmp(text, "exclusive_process") || !strcmp(text, "3"))
                        v.a = 3, r = 0;
                if (r < 0)
                        snprintf(err, errlen,
                                 "compute_mode: '%s' is not default, prohibited or "
                                 "exclusive_process",
                                 text);
                break;
        case BCFG_PERSISTENCE:
        case BCFG_ECC:
                r = parse_bool(text, &v.a);
                if (r < 0)
                        snprintf(err, errlen, "%s: '%s' is not enabled or disabled",
                                 gpucfg_setting_name(s), text);
                break;
        default:
                snprintf(err, errlen, "unknown setting %d", (int)s);
        }
        if (r == 0)
                *out = v;
        return r;
}

void gpucfg_value_format(enum backend_cfg_setting s, const gpucfg_value *v, char *out, size_t len)
{
        switch (s) {
        case BCFG_POWER_LIMIT:
                if (v->a % 1000 == 0)
                        snprintf(out, len, "%u", v->a / 1000);
                else
                        snprintf(out, len, "%.3f", v->a / 1000.0);
                break;
        case BCFG_APP_CLOCKS:
                if (!v->a && !v->b)
                        snprintf(out, len, "default");
                else
                        snprintf(out, len, "%u,%u", v->a, v->b);
                break;
        case BCFG_LOCKED_GPU_CLOCKS:
        case BCFG_LOCKED_MEM_CLOCKS:
                if (!v->a && !v->b)
                        snprintf(out, len, "reset");
                else
                        snprintf(out, len, "%u,%u", v->a, v->b);
                break;
        case BCFG_COMPUTE_MODE:
                snprintf(out, len, "%s",
                         v->a == 0   ? "default"
                         : v->a == 2 ? "prohibited"
                         : v->a == 3 ? "exclusive_process"
                                     : "exclusive_thread");
                break;
        case BCFG_PERSISTENCE:
        case BCFG_ECC:
                snprintf(out, len, "%s", v->a ? "enabled" : "disabled");
                break;
        default:
                snprintf(out, len, "?");
        }
}

bool gpucfg_gpus_match(const char *gpus, unsigned idx, const char *uuid)
{
        char tmp[GPUCFG_GPUS_MAX], *save = NULL;

        if (!strcmp(gpus, "all"))
                return true;
        snprintf(tmp, sizeof(tmp), "%s", gpus);
        for (char *t = strtok_r(tmp, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                unsigned n;
                if (!strcmp(t, uuid) || (parse_uint(t, SAMPLER_MAX_GPUS - 1, &n) == 0 && n == idx))
                        return true;
        }
        return false;
}

int gpucfg_gpus_check(const char *gpus, char *err, size_t errlen)
{
        char tmp[GPUCFG_GPUS_MAX];
        char *save = NULL;

        if (!gpus || !*gpus || strlen(gpus) >= sizeof(tmp)) {
                snprintf(err, errlen, "gpus: give 'all' or a list of GPU indexes or UUIDs");
                return -EINVAL;
        }
        if (!strcmp(gpus, "all"))
                return 0;
        snprintf(tmp, sizeof(tmp), "%s", gpus);
        for (char *t = strtok_r(tmp, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                unsigned idx;
                if (!strncmp(t, "GPU-", 4) && strlen(t) > 4)
                        continue;
                if (parse_uint(t, SAMPLER_MAX_GPUS - 1, &idx) < 0) {
                        snprintf(err, errlen,
                                 "gpus: '%s' is not a GPU index (0..%d) or a UUID (GPU-…)", t,
                                 SAMPLER_MAX_GPUS - 1);
                        return -EINVAL;
                }
        }
        return 0;
}
