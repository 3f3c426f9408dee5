/* gpuconfig.h — GPU configuration like `dcgmi config`: read a GPU's settings (power limit,
 * application clocks, locked clocks, compute mode, persistence mode, ECC mode current and
 * pending), change them with the value validated against what the GPU allows, keep the value a
 * setting had before Vigil changed it (the store's gpuconfig_saved table) so that a restore puts it
 * back, and enforce the desired settings of `config.enforce`: applied at start and on reload,
 * applied again when a GPU is re-attached (a reset or a driver reload) or found out of its
 * desired configuration, as DCGM's config module does after a reset.
 *
 * Every NVML call runs on this module's own worker thread (vg-gpuconfig): the HTTP threads hand
 * it a request and wait for the answer (gpuconfig_get/set/restore block up to 30 s), the sampler
 * only signals it (gpuconfig_on_sweep). Text values are what the CLI, the API and the
 * configuration file accept (gpucfg_value_parse). docs/gpu-config.md has the user's view. */
#ifndef VIGIL_HEALTH_GPUCONFIG_H
#define VIGIL_HEALTH_GPUCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "backend/backend.h"
#include "sampler/sampler.h"

struct store;
struct buf;
typedef struct gpuconfig gpuconfig;

#define GPUCFG_VALUE_MAX   32 /* bytes of a setting's text value */
#define GPUCFG_GPUS_MAX    256
#define GPUCFG_ENFORCE_MAX 64               /* config.enforce entries */
#define GPUCFG_WAIT_US     (30 * 1000000LL) /* how long an HTTP request waits for the worker */

/* One setting's value (enum backend_cfg_setting gives the meaning of a and b). */
typedef struct gpucfg_value {
        bool set;   /* a value is given */
        unsigned a; /* see backend.h */
        unsigned b; /* see backend.h */
} gpucfg_value;

/* "power_limit", "app_clocks", "locked_gpu_clocks", "locked_mem_clocks", "compute_mode",
 * "persistence", "ecc"; NULL for a bad value. */
const char *gpucfg_setting_name(enum backend_cfg_setting s);
/* The setting of a name, or -EINVAL. */
int gpucfg_setting_from_name(const char *name);
/* Parse a text value: power_limit "500" or "450.5" (W); app_clocks "MEM,SM" (MHz) or "default";
 * locked_*_clocks "MIN,MAX" or "N" (MHz) or "reset"; compute_mode "default", "prohibited",
 * "exclusive_process" (or NVML's 0, 2, 3); persistence and ecc "enabled"/"disabled" (also
 * on/off, true/false, 1/0). 0, or -EINVAL with a reason in err. */
int gpucfg_value_parse(enum backend_cfg_setting s, const char *text, gpucfg_value *out, char *err,
                       size_t errlen);
/* The canonical text of a value (what get shows and restore takes). */
void gpucfg_value_format(enum backend_cfg_setting s, const gpucfg_value *v, char *out, size_t len);

/* One entry of config.enforce (config.c fills these): the GPUs it covers and a text value per
 * setting, "" where the entry leaves the setting alone. */
typedef struct gpucfg_desired {
        char gpus[GPUCFG_GPUS_MAX];               /* "all", or "0,2,GPU-…" */
        char value[BCFG_COUNT][GPUCFG_VALUE_MAX]; /* by enum backend_cfg_setting */
} gpucfg_desired;

/* Check the GPU list of an entry: "all" or indexes and UUIDs separated by commas. 0 or -EINVAL. */
int gpucfg_gpus_check(const char *gpus, char *err, size_t errlen);
/* Whether a GPU list names GPU idx (by index or UUID). */
bool gpucfg_gpus_match(const char *gpus, unsigned idx, const char *uuid);

/* Called for every change the module makes on its own (enforcement), on the worker thread:
 * event "gpu_config_enforce", detail "GPU 0 (GPU-…) power_limit 700 -> 500 W: applied". */
typedef void (*gpuconfig_audit_fn)(void *userdata, const char *event, const char *detail);

typedef struct gpuconfig_options {
        backend *backend;              /* borrowed */
        sampler *sampler;              /* borrowed: GPU identities and re-attach counts */
        struct store *store;           /* borrowed; NULL = restore has nothing to put back */
        const gpucfg_desired *enforce; /* copied */
        size_t n_enforce;
        gpuconfig_audit_fn audit; /* may be NULL */
        void *userdata;
} gpuconfig_options;

int gpuconfig_new(const gpuconfig_options *opt, gpuconfig **ret);
/* Starts the worker, which enforces config.enforce once at start. */
int gpuconfig_start(gpuconfig *g);
void gpuconfig_stop(gpuconfig *g);
gpuconfig *gpuconfig_free(gpuconfig *g);

/* Replace config.enforce (a reload, main thread; entries already validated) and enforce it. */
int gpuconfig_set_enforce(gpuconfig *g, const gpucfg_desired *v, size_t n);
/* The sampler's "sweep done" (any sampler thread; never blocks): a slow sweep asks the worker
 * to look for re-attached GPUs and drift from config.enforce. */
void gpuconfig_on_sweep(gpuconfig *g, enum field_tier tier);

/* GET /api/v1/gpus/{id}/config: the settings now, with what is saved and desired. Caller owns
 * *out. 0, -ENODEV (lost), -ETIMEDOUT (worker busy), -ENOMEM. */
int gpuconfig_get(gpuconfig *g, unsigned gpu, json_t **out);
/* Change settings of one GPU. values[s].set marks the settings asked for. Everything is
 * validated against the GPU before anything is changed; dry_run only says what would change.
 * A setting config.enforce governs on this GPU is refused (-EBUSY). On an NVML failure the
 * settings already changed by this call are put back. *out (caller owns) lists the changes:
 * [{"setting", "old", "new", "applied", "note"}]. 0 or -errno with err. */
int gpuconfig_set(gpuconfig *g, unsigned gpu, const gpucfg_value values[BCFG_COUNT], bool dry_run,
                  json_t **out, char *err, size_t errlen);
/* Put back the saved values (mask: bit s = setting s; 0 = every saved one), then forget them. */
int gpuconfig_restore(gpuconfig *g, unsigned gpu, unsigned mask, bool dry_run, json_t **out,
                      char *err, size_t errlen);

/* vigil_gpu_config_drift{gpu,UUID,setting} 1/0 for the settings config.enforce governs, and
 * vigil_gpu_config_enforcements_total; openmetrics: the counter's family is named without _total.
 * labels(i) writes "gpu=…,UUID=…" of GPU i. Any thread. */
typedef void (*gpuconfig_label_fn)(void *userdata, unsigned gpu, struct buf *b);
int gpuconfig_render_metrics(gpuconfig *g, struct buf *b, bool openmetrics,
                             gpuconfig_label_fn labels, void *userdata);

#endif
