/* nvml_config.c — GPU configuration through NVML: read the settings `dcgmi config --get` shows
 * (power limit and its constraints, application clocks, compute mode, persistence mode, ECC mode
 * current and pending), list the supported clocks, and apply one setting. The setters are guarded
 * like the power-limit mutator: exercised against the fake NVML only. Callers run these on a
 * worker thread (health/gpuconfig.c), never on the sampler's or an HTTP thread. */
#include "nvml-internal.h"

#include <errno.h>
#include <string.h>

#include "common/macros.h"

static int handle(backend *b, unsigned idx, nvmlDevice_t *h)
{
        int lost;

        if (idx >= b->count)
                return -EINVAL;
        *h = nvml_slot_handle(b, idx, &lost);
        return lost ? -ENODEV : 0;
}

static int st(int nvml_rc)
{
        return backend_errno_from_nvml(nvml_rc);
}

int backend_gpu_config_read(backend *b, unsigned idx, backend_gpu_config *out)
{
        backend_gpu_config c = {0};
        nvmlDevice_t h;
        nvmlEnableState_t e1 = NVML_FEATURE_DISABLED, e2 = NVML_FEATURE_DISABLED;
        nvmlComputeMode_t cm = NVML_COMPUTEMODE_DEFAULT;
        int r = handle(b, idx, &h);

        if (r < 0)
                return r;
        c.power_status = st(CALL(b, power_limit, h, &c.power_mw));
        c.constraints_status =
            st(CALL(b, power_limit_constraints, h, &c.power_min_mw, &c.power_max_mw));
        c.app_status = st(CALL(b, applications_clock, h, NVML_CLOCK_MEM, &c.app_mem_mhz));
        if (c.app_status == 0)
                c.app_status = st(CALL(b, applications_clock, h, NVML_CLOCK_SM, &c.app_sm_mhz));
        c.compute_status = st(CALL(b, compute_mode, h, &cm));
        c.compute_mode = (unsigned)cm;
        c.persistence_status = st(CALL(b, persistence_mode, h, &e1));
        c.persistence = e1 == NVML_FEATURE_ENABLED;
        e1 = NVML_FEATURE_DISABLED;
        c.ecc_status = st(CALL(b, ecc_mode, h, &e1, &e2));
        c.ecc = e1 == NVML_FEATURE_ENABLED;
        c.ecc_pending = e2 == NVML_FEATURE_ENABLED;
        /* A GPU that fell off the bus during the reads is lost, not "not supported". */
        if (c.power_status == -ENODEV || c.ecc_status == -ENODEV || c.compute_status == -ENODEV)
                return -ENODEV;
        *out = c;
        return 0;
}

/* NVML's list convention: ask with the buffer; INSUFFICIENT_SIZE gives the count needed. */
static int give(int rc, unsigned cnt, size_t max, size_t *n)
{
        if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
                *n = cnt;
                return 0; /* out holds nothing: the caller sees *n > max */
        }
        if (rc != NVML_SUCCESS)
                return st(rc);
        *n = MIN((size_t)cnt, max);
        return 0;
}

int backend_supported_mem_clocks(backend *b, unsigned idx, unsigned *out, size_t max, size_t *n)
{
        nvmlDevice_t h;
        unsigned cnt = (unsigned)MIN(max, (size_t)4096);
        int r = handle(b, idx, &h);

        if (r < 0)
                return r;
        r = CALL(b, supported_memory_clocks, h, &cnt, out);
        return give(r, cnt, max, n);
}

int backend_supported_sm_clocks(backend *b, unsigned idx, unsigned mem_mhz, unsigned *out,
                                size_t max, size_t *n)
{
        nvmlDevice_t h;
        unsigned cnt = (unsigned)MIN(max, (size_t)4096);
        int r = handle(b, idx, &h);

        if (r < 0)
                return r;
        r = CALL(b, supported_graphics_clocks, h, mem_mhz, &cnt, out);
        return give(r, cnt, max, n);
}

int backend_gpu_config_set(backend *b, unsigned idx, enum backend_cfg_setting s, unsigned a,
                           unsigned bv)
{
        nvmlDevice_t h;
        int r = handle(b, idx, &h);

        if (r < 0)
                return r;
        switch (s) {
        case BCFG_POWER_LIMIT:
                return st(CALL(b, set_power_limit, h, a));
        case BCFG_APP_CLOCKS:
                return st(a || bv ? CALL(b, set_applications_clocks, h, a, bv)
                                  : CALL(b, reset_applications_clocks, h));
        case BCFG_LOCKED_GPU_CLOCKS:
                return st(a || bv ? CALL(b, set_gpu_locked_clocks, h, a, bv)
                                  : CALL(b, reset_gpu_locked_clocks, h));
        case BCFG_LOCKED_MEM_CLOCKS:
                return st(a || bv ? CALL(b, set_memory_locked_clocks, h, a, bv)
                                  : CALL(b, reset_memory_locked_clocks, h));
        case BCFG_COMPUTE_MODE:
                return st(CALL(b, set_compute_mode, h, (nvmlComputeMode_t)a));
        case BCFG_PERSISTENCE:
                return st(CALL(b, set_persistence_mode, h,
                               a ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED));
        case BCFG_ECC:
                return st(
                    CALL(b, set_ecc_mode, h, a ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED));
        case BCFG_COUNT:
                break;
        }
        return -EINVAL;
}
