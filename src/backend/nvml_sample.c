/* nvml_sample.c — backend_sample: DCGM field ids turned into NVML calls. Cheap counters come
 * through one batched nvmlDeviceGetFieldValues per sample, the rest through their getters, each
 * getter called at most once per sample even when it feeds several fields; the profiling fields
 * through GPM (nvml_gpm.c). What is read how is nvml/getters.def, shared with the fake NVML. */
#include "nvml-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

/* One raw result of a getter: up to four numbers (e.g. remapped rows) or a memory struct. */
/* One raw result of a getter: up to four numbers (e.g. remapped rows) or a memory struct. */
typedef struct getter_result {
        int done;                /* called during this sample */
        int err;                 /* 0 or -errno */
        unsigned long long u[6]; /* raw NVML numbers */
} getter_result;

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
                r->u[1] = pend == NVML_FEATURE_ENABLED;
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
        case G_COMPUTE_MODE: {
                nvmlComputeMode_t cm = NVML_COMPUTEMODE_DEFAULT;
                rc = CALL(b, compute_mode, h, &cm);
                r->u[0] = (unsigned)cm;
                break;
        }
        case G_APP_CLOCK_SM:
                rc = CALL(b, applications_clock, h, NVML_CLOCK_SM, &v);
                r->u[0] = v;
                break;
        case G_APP_CLOCK_MEM:
                rc = CALL(b, applications_clock, h, NVML_CLOCK_MEM, &v);
                r->u[0] = v;
                break;
        case G_INFOROM_VALID:
                /* a corrupted InfoROM is the answer, not a failed read */
                rc = CALL(b, validate_inforom, h);
                r->u[0] = rc == NVML_SUCCESS;
                if (rc == NVML_ERROR_CORRUPTED_INFOROM)
                        rc = NVML_SUCCESS;
                break;
        case G_FABRIC: {
                nvmlGpuFabricInfo_v2_t fi = {.version = nvmlGpuFabricInfo_v2};
                rc = CALL(b, gpu_fabric_info, h, &fi);
                if (rc == NVML_SUCCESS && fi.state == NVML_GPU_FABRIC_STATE_NOT_SUPPORTED)
                        rc = NVML_ERROR_NOT_SUPPORTED; /* no NVSwitch fabric: not a state */
                /* DCGM's dcgmFabricManagerStatus_t: 1 not started, 2 in progress, 3 success,
                 * 4 failure (registration completed with an error), 5 unrecognized */
                r->u[0] = fi.state == NVML_GPU_FABRIC_STATE_COMPLETED
                              ? (fi.status == NVML_SUCCESS ? 3 : 4)
                          : fi.state <= NVML_GPU_FABRIC_STATE_IN_PROGRESS ? fi.state
                                                                          : 5;
                r->u[1] = fi.healthMask;
                break;
        }
        case G_VGPU_LICENSE: {
                nvmlGridLicensableFeatures_t lf;
                unsigned enabled = 0, licensed = 0;
                memset(&lf, 0, sizeof(lf));
                rc = CALL(b, grid_licensable_features, h, &lf);
                if (rc == NVML_SUCCESS && !lf.isGridLicenseSupported)
                        rc = NVML_ERROR_NOT_SUPPORTED; /* bare metal: no vGPU licensing */
                for (unsigned i = 0;
                     rc == NVML_SUCCESS && i < MIN(lf.licensableFeaturesCount,
                                                   (unsigned)NVML_GRID_LICENSE_FEATURE_MAX_COUNT);
                     i++) {
                        const nvmlGridLicensableFeature_t *f = &lf.gridLicensableFeatures[i];
                        enabled += f->featureEnabled != 0;
                        licensed += f->featureEnabled && f->featureState;
                }
                /* DCGM: 0 not licensed, 1 licensed */
                r->u[0] = enabled && licensed == enabled;
                break;
        }
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
        case C_MIBPS:
                dv = (is_double ? dv : (double)uv) * 1048576.0;
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
        h = nvml_slot_handle(b, idx, &lost);
        if (lost) {
                for (size_t i = 0; i < n; i++)
                        out[i].status = -ENODEV;
                return -ENODEV;
        }
        memset(gr, 0, sizeof(gr));

        /* Pass 1: batch every FieldValues-capable field whose primary path is not ruled out. */
        for (size_t i = 0; i < n; i++) {
                const field_read *rd = nvml_read_for(fields[i]);
                int fi = field_index(fields[i]);
                fv_of[i] = -1;
                out[i].status = -EOPNOTSUPP;
                out[i].i = 0;
                if (!rd || fi < 0)
                        continue;
                if (rd->fv && b->api.field_values &&
                    (method_get(s, fi) == M_UNKNOWN || method_get(s, fi) == M_PRIMARY)) {
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
                const field_read *rd = nvml_read_for(fields[i]);
                int fi = field_index(fields[i]);
                const field_meta *m;
                if (!rd || fi < 0)
                        continue;
                m = field_by_id(fields[i]);
                if (method_get(s, fi) == M_UNSUPPORTED)
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
                                method_set(s, fi, M_PRIMARY);
                                continue;
                        }
                        if (fv->nvmlReturn != NVML_ERROR_NOT_SUPPORTED) {
                                out[i].status = backend_errno_from_nvml(fv->nvmlReturn);
                                continue; /* a transient failure: try again next time */
                        }
                }
                if (rd->getter == G_NONE) {
                        method_set(s, fi, M_UNSUPPORTED);
                        continue;
                }
                if (rd->getter == G_GPM_METRICS) {
                        if (ngpm < GPM_FIELDS_MAX)
                                gpm_of[ngpm++] = i;
                        continue;
                }
                if (rd->getter == G_NVLINK && !gr[G_NVLINK].done) {
                        gr[G_NVLINK].done = 1;
                        gr[G_NVLINK].err = nvml_nvlink_refresh(b, s, h, gr[G_NVLINK].u);
                }
                if (rd->getter == G_MIG && !gr[G_MIG].done) {
                        gr[G_MIG].done = 1;
                        gr[G_MIG].err = nvml_mig_refresh(b, s, h, gr[G_MIG].u);
                }
                if (!gr[rd->getter].done)
                        run_getter(b, h, rd->getter, &gr[rd->getter]);
                if (gr[rd->getter].err == -ENODEV)
                        goto lost;
                if (gr[rd->getter].err == -EOPNOTSUPP) {
                        method_set(s, fi, M_UNSUPPORTED);
                        continue;
                }
                if (gr[rd->getter].err < 0) {
                        out[i].status = gr[rd->getter].err;
                        continue;
                }
                if (gr[rd->getter].u[rd->slot] == ULLONG_MAX) { /* e.g. reserved with v1 memory */
                        method_set(s, fi, M_UNSUPPORTED);
                        continue;
                }
                store_value(m, rd->conv, 0, gr[rd->getter].u[rd->slot], 0, &out[i]);
                method_set(s, fi, rd->fv ? M_FALLBACK : M_PRIMARY);
        }
        if (ngpm > 0 && nvml_gpm_read(b, s, h, fields, gpm_of, ngpm, out) == -ENODEV)
                goto lost;
        return 0;

lost:
        nvml_mark_lost(b, idx);
        for (size_t i = 0; i < n; i++)
                out[i].status = -ENODEV;
        return -ENODEV;
}
