/* nvml_nvlink.c — NVLink per link: state, version, remote end and the error and traffic counters,
 * read by the slow tier through one batched nvmlDeviceGetFieldValues (scopeId = link) plus one
 * CRC-data counter per link, and kept per GPU for backend_nvlink_get() (which never calls NVML,
 * so the HTTP threads may use it). The remote end is asked only when a link comes up.
 *
 * A GPU without NVLink (PCIe cards, older boards) answers NOT_SUPPORTED for every link: that is
 * reported as -EOPNOTSUPP, never as "all links down". */
#include "nvml-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/vtime.h"

/* Per link, in this order, in one FieldValues request. */
static const unsigned link_fv[] = {
    NVML_FI_DEV_NVLINK_GET_STATE,          NVML_FI_DEV_NVLINK_GET_VERSION,
    NVML_FI_DEV_NVLINK_ERROR_DL_CRC,       NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY,
    NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY,  NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX,
};
enum { LF_STATE, LF_VERSION, LF_CRC_FLIT, LF_REPLAY, LF_RECOVERY, LF_TX, LF_RX, LF_N };

#define NVL_FV_MAX (1 + BACKEND_NVLINK_MAX * LF_N)

static uint64_t fv_u64(const nvmlFieldValue_t *fv)
{
        if (fv->nvmlReturn != NVML_SUCCESS)
                return UINT64_MAX;
        switch (fv->valueType) {
        case NVML_VALUE_TYPE_UNSIGNED_INT:
                return fv->value.uiVal;
        case NVML_VALUE_TYPE_UNSIGNED_LONG:
                return fv->value.ulVal;
        case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
                return fv->value.sllVal < 0 ? 0 : (uint64_t)fv->value.sllVal;
        case NVML_VALUE_TYPE_SIGNED_INT:
                return fv->value.siVal < 0 ? 0 : (uint64_t)fv->value.siVal;
        case NVML_VALUE_TYPE_DOUBLE:
                return fv->value.dVal < 0 ? 0 : (uint64_t)fv->value.dVal;
        default:
                return fv->value.ullVal;
        }
}

static enum backend_nvlink_remote remote_kind(nvmlIntNvLinkDeviceType_t t)
{
        switch (t) {
        case NVML_NVLINK_DEVICE_TYPE_GPU:
                return BNL_REMOTE_GPU;
        case NVML_NVLINK_DEVICE_TYPE_SWITCH:
                return BNL_REMOTE_SWITCH;
        case NVML_NVLINK_DEVICE_TYPE_IBMNPU:
                return BNL_REMOTE_OTHER;
        default:
                return BNL_REMOTE_UNKNOWN;
        }
}

/* The remote end of an up link: PCI identity and kind. Only when it came up (or is not known). */
static void read_remote(backend *b, nvmlDevice_t h, unsigned l, backend_nvlink *out)
{
        nvmlPciInfo_t pci;
        nvmlIntNvLinkDeviceType_t t = NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
        int64_t t0 = call_clock_ns();

        memset(&pci, 0, sizeof(pci));
        if (CALL(b, nvlink_remote_pci, h, l, &pci) == NVML_SUCCESS) {
                snprintf(out->remote_bus_id, sizeof(out->remote_bus_id), "%.*s",
                         (int)sizeof(pci.busId), pci.busId);
                out->remote_pci_device_id = pci.pciDeviceId;
        }
        if (CALL(b, nvlink_remote_type, h, l, &t) == NVML_SUCCESS)
                out->remote = remote_kind(t);
        call_account(G_NVLINK, t0);
}

int nvml_nvlink_refresh(backend *b, gpu_slot *s, nvmlDevice_t h, unsigned long long tot[6])
{
        nvmlFieldValue_t fvs[NVL_FV_MAX];
        backend_nvlink_info cur, prev;
        unsigned links = BACKEND_NVLINK_MAX, nfv = 0;
        int any = 0, rc, err = 0;
        int64_t t0;

        if (!b->api.field_values || __atomic_load_n(&s->nvl_supported, __ATOMIC_RELAXED) == 0) {
                pthread_mutex_lock(&s->nvl_lock);
                s->nvl.status = -EOPNOTSUPP;
                s->nvl.n_links = 0;
                s->nvl.ts_us = time_real_us();
                pthread_mutex_unlock(&s->nvl_lock);
                memset(tot, 0, 6 * sizeof(tot[0]));
                return -EOPNOTSUPP;
        }
        memset(fvs, 0, sizeof(fvs));
        fvs[nfv++].fieldId = NVML_FI_DEV_NVLINK_LINK_COUNT;
        for (unsigned l = 0; l < BACKEND_NVLINK_MAX; l++)
                for (unsigned k = 0; k < LF_N; k++) {
                        fvs[nfv].fieldId = link_fv[k];
                        fvs[nfv++].scopeId = l;
                }
        t0 = call_clock_ns();
        rc = b->api.field_values(h, (int)nfv, fvs);
        call_account(G_NVLINK, t0);
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        if (fvs[0].nvmlReturn == NVML_ERROR_GPU_IS_LOST)
                return -ENODEV;
        if (fvs[0].nvmlReturn == NVML_SUCCESS && fv_u64(&fvs[0]) < BACKEND_NVLINK_MAX)
                links = (unsigned)fv_u64(&fvs[0]);

        pthread_mutex_lock(&s->nvl_lock);
        prev = s->nvl;
        pthread_mutex_unlock(&s->nvl_lock);

        memset(&cur, 0, sizeof(cur));
        memset(tot, 0, 6 * sizeof(tot[0]));
        for (unsigned l = 0; l < links; l++) {
                const nvmlFieldValue_t *f = &fvs[1 + l * LF_N];
                backend_nvlink *o = &cur.links[l];
                unsigned long long crc_data = UINT64_MAX;

                if (f[LF_STATE].nvmlReturn == NVML_ERROR_GPU_IS_LOST)
                        return -ENODEV;
                if (f[LF_STATE].nvmlReturn != NVML_SUCCESS) {
                        o->state = backend_errno_from_nvml(f[LF_STATE].nvmlReturn);
                        o->crc_flit = o->crc_data = o->replay = o->recovery = UINT64_MAX;
                        o->tx_kib = o->rx_kib = UINT64_MAX;
                        continue;
                }
                any = 1;
                cur.n_links = l + 1;
                o->state = fv_u64(&f[LF_STATE]) != 0;
                o->version =
                    f[LF_VERSION].nvmlReturn == NVML_SUCCESS ? (unsigned)fv_u64(&f[LF_VERSION]) : 0;
                o->crc_flit = fv_u64(&f[LF_CRC_FLIT]);
                o->replay = fv_u64(&f[LF_REPLAY]);
                o->recovery = fv_u64(&f[LF_RECOVERY]);
                o->tx_kib = fv_u64(&f[LF_TX]);
                o->rx_kib = fv_u64(&f[LF_RX]);
                /* No FieldValues id covers data CRC beyond link 11: the per-link counter does. */
                t0 = call_clock_ns();
                if (CALL(b, nvlink_error_counter, h, l, NVML_NVLINK_ERROR_DL_CRC_DATA, &crc_data) !=
                    NVML_SUCCESS)
                        crc_data = UINT64_MAX;
                call_account(G_NVLINK, t0);
                o->crc_data = crc_data;
                if (o->state == 1) {
                        const backend_nvlink *p = &prev.links[l];
                        if (prev.status == 0 && p->state == 1 && p->remote_bus_id[0]) {
                                o->remote = p->remote;
                                memcpy(o->remote_bus_id, p->remote_bus_id,
                                       sizeof(o->remote_bus_id));
                                o->remote_pci_device_id = p->remote_pci_device_id;
                        } else {
                                read_remote(b, h, l, o);
                        }
                        tot[4]++;
                } else {
                        tot[5]++;
                }
                if (o->crc_flit != UINT64_MAX)
                        tot[0] += o->crc_flit;
                if (o->crc_data != UINT64_MAX)
                        tot[1] += o->crc_data;
                if (o->replay != UINT64_MAX)
                        tot[2] += o->replay;
                if (o->recovery != UINT64_MAX)
                        tot[3] += o->recovery;
        }
        if (!any)
                err = -EOPNOTSUPP;
        cur.status = err;
        cur.ts_us = time_real_us();
        pthread_mutex_lock(&s->nvl_lock);
        s->nvl = cur;
        pthread_mutex_unlock(&s->nvl_lock);
        return err;
}

void nvml_nvlink_forget(gpu_slot *s)
{
        pthread_mutex_lock(&s->nvl_lock);
        memset(&s->nvl, 0, sizeof(s->nvl));
        s->nvl.status = -ENODATA;
        memset(&s->mig, 0, sizeof(s->mig));
        s->mig.status = -ENODATA;
        pthread_mutex_unlock(&s->nvl_lock);
}

void nvml_nvlink_attach(backend *b, gpu_slot *s, nvmlDevice_t h)
{
        nvmlEnableState_t st = NVML_FEATURE_DISABLED;
        int rc = CALL(b, nvlink_state, h, 0, &st), known;

        nvml_nvlink_forget(s);
        known = rc == NVML_SUCCESS ? 1
                : rc == NVML_ERROR_NOT_SUPPORTED || rc == NVML_ERROR_INVALID_ARGUMENT ||
                        rc == NVML_ERROR_FUNCTION_NOT_FOUND
                    ? 0
                    : -1;
        __atomic_store_n(&s->nvl_supported, known, __ATOMIC_RELAXED);
}

int backend_nvlink_get(backend *b, unsigned idx, backend_nvlink_info *out)
{
        gpu_slot *s;
        int lost;

        if (!b || idx >= b->count || !out)
                return -EINVAL;
        s = &b->gpus[idx];
        pthread_mutex_lock(&s->lock);
        lost = s->lost;
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_lock(&s->nvl_lock);
        *out = s->nvl;
        pthread_mutex_unlock(&s->nvl_lock);
        if (lost)
                out->status = -ENODEV;
        return 0;
}
