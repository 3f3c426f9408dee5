/* nvml_mig.c — MIG discovery, read-only: the mode (current and pending), then each MIG device
 * (nvmlDeviceGetMigDeviceHandleByIndex up to nvmlDeviceGetMaxMigDeviceCount) with its GPU and
 * compute instance ids, UUID, profile (from its name, "NVIDIA H200 MIG 1g.18gb") and memory. The
 * slow tier does it every sweep through the MIG_MODE / MIG_INSTANCES fields, so a mode switch
 * while vigild runs shows up within one slow interval; the HTTP threads read the copy. Vigil never
 * changes the MIG mode. */
#include "nvml-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/vtime.h"

/* "NVIDIA H200 MIG 1g.18gb" → "1g.18gb"; "" when the name has no MIG part. */
static void profile_of(const char *name, char *out, size_t len)
{
        const char *p = strstr(name, "MIG ");

        out[0] = '\0';
        if (p)
                snprintf(out, len, "%s", p + 4);
        for (char *q = out; *q; q++)
                if (*q == ' ') {
                        *q = '\0';
                        break;
                }
}

static void read_instance(backend *b, nvmlDevice_t m, backend_mig_instance *o)
{
        nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
        char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "";
        unsigned id = 0;
        int rc;

        if (CALL(b, gpu_instance_id, m, &id) == NVML_SUCCESS)
                o->gpu_instance = id;
        id = 0;
        if (CALL(b, compute_instance_id, m, &id) == NVML_SUCCESS)
                o->compute_instance = id;
        if (CALL(b, uuid, m, o->uuid, sizeof(o->uuid)) != NVML_SUCCESS)
                o->uuid[0] = '\0';
        if (CALL(b, name, m, name, sizeof(name)) == NVML_SUCCESS)
                profile_of(name, o->profile, sizeof(o->profile));
        rc = CALL(b, memory_info_v2, m, &m2);
        if (rc == NVML_SUCCESS) {
                o->mem_total = m2.total;
                o->mem_used = m2.used;
                o->mem_free = m2.free;
        } else {
                nvmlMemory_t m1 = {0};
                rc = CALL(b, memory_info, m, &m1);
                o->mem_total = m1.total;
                o->mem_used = m1.used;
                o->mem_free = m1.free;
        }
        o->mem_status = rc == NVML_SUCCESS ? 0 : backend_errno_from_nvml(rc);
}

int nvml_mig_refresh(backend *b, gpu_slot *s, nvmlDevice_t h, unsigned long long tot[6])
{
        backend_mig_info cur;
        unsigned mode = 0, pending = 0, max = 0;
        int64_t t0 = call_clock_ns();
        int rc, err = 0;

        memset(&cur, 0, sizeof(cur));
        memset(tot, 0, 6 * sizeof(tot[0]));
        rc = CALL(b, mig_mode, h, &mode, &pending);
        if (rc != NVML_SUCCESS) {
                err = backend_errno_from_nvml(rc);
                goto out;
        }
        cur.mode = mode == NVML_DEVICE_MIG_ENABLE;
        cur.pending_mode = pending == NVML_DEVICE_MIG_ENABLE;
        if (cur.mode && CALL(b, max_mig_device_count, h, &max) == NVML_SUCCESS) {
                for (unsigned k = 0; k < max && cur.n < BACKEND_MIG_MAX; k++) {
                        nvmlDevice_t m = NULL;
                        rc = CALL(b, mig_device_handle_by_index, h, k, &m);
                        if (rc == NVML_ERROR_GPU_IS_LOST) {
                                err = -ENODEV;
                                goto out;
                        }
                        if (rc != NVML_SUCCESS || !m) /* NOT_FOUND: no instance at k */
                                continue;
                        read_instance(b, m, &cur.inst[cur.n++]);
                }
        }
        tot[0] = (unsigned long long)cur.mode;
        tot[1] = cur.n;
out:
        call_account(G_MIG, t0);
        if (err == -ENODEV)
                return err;
        cur.status = err;
        cur.ts_us = time_real_us();
        pthread_mutex_lock(&s->nvl_lock);
        s->mig = cur;
        pthread_mutex_unlock(&s->nvl_lock);
        return err;
}

int backend_mig_get(backend *b, unsigned idx, backend_mig_info *out)
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
        *out = s->mig;
        pthread_mutex_unlock(&s->nvl_lock);
        if (lost)
                out->status = -ENODEV;
        return 0;
}
