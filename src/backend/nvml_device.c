/* nvml_device.c — GPU identity and static information, attach and re-attach (by UUID, then by
 * index), and the per-GPU slot: its handle and whether the GPU is lost. */
#include "nvml-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

nvmlDevice_t nvml_slot_handle(backend *b, unsigned idx, int *lost)
{
        gpu_slot *s = &b->gpus[idx];
        nvmlDevice_t h;

        pthread_mutex_lock(&s->lock);
        h = s->handle;
        *lost = s->lost || !h;
        pthread_mutex_unlock(&s->lock);
        return h;
}

void nvml_mark_lost(backend *b, unsigned idx)
{
        gpu_slot *s = &b->gpus[idx];

        pthread_mutex_lock(&s->lock);
        s->lost = 1;
        pthread_mutex_unlock(&s->lock);
}

int nvml_attach(backend *b, unsigned idx)
{
        gpu_slot *s = &b->gpus[idx];
        nvmlDevice_t h = NULL;
        char uuid[96] = "", known[sizeof(s->uuid)];
        int rc = NVML_ERROR_NOT_FOUND;

        pthread_mutex_lock(&s->lock); /* another thread may be re-attaching the same GPU */
        memcpy(known, s->uuid, sizeof(known));
        pthread_mutex_unlock(&s->lock);
        if (known[0] && b->api.handle_by_uuid)
                rc = b->api.handle_by_uuid(known, &h);
        if (rc != NVML_SUCCESS)
                rc = b->api.handle_by_index(idx, &h);
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        rc = b->api.uuid(h, uuid, sizeof(uuid));
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        pthread_mutex_lock(&s->lock);
        s->handle = h;
        s->lost = 0;
        snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
        for (size_t fi = 0; fi < field_count(); fi++) /* tiers may be sampling: method_set() */
                method_set(s, (int)fi, M_UNKNOWN);
        pthread_mutex_unlock(&s->lock);
        nvml_gpm_attach(b, s, h);
        nvml_nvlink_attach(b, s, h); /* the links are read again by the next slow sweep */
        return 0;
}

int backend_device_count(backend *b, unsigned *count)
{
        *count = b->count;
        return 0;
}

int backend_device_info(backend *b, unsigned idx, gpu_identity *out)
{
        gpu_identity id = {.minor = -1};
        nvmlPciInfo_t pci;
        unsigned minor;
        nvmlDevice_t h;
        int lost, rc;

        if (idx >= b->count)
                return -EINVAL;
        h = nvml_slot_handle(b, idx, &lost);
        if (lost)
                return -ENODEV;
        rc = b->api.uuid(h, id.uuid, sizeof(id.uuid));
        if (rc == NVML_ERROR_GPU_IS_LOST) {
                nvml_mark_lost(b, idx);
                return -ENODEV;
        }
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        if (CALL(b, name, h, id.name, sizeof(id.name)) != NVML_SUCCESS)
                id.name[0] = '\0';
        if (CALL(b, serial, h, id.serial, sizeof(id.serial)) != NVML_SUCCESS)
                id.serial[0] = '\0';
        if (CALL(b, vbios_version, h, id.vbios, sizeof(id.vbios)) != NVML_SUCCESS)
                id.vbios[0] = '\0';
        if (CALL(b, inforom_image_version, h, id.inforom, sizeof(id.inforom)) != NVML_SUCCESS)
                id.inforom[0] = '\0';
        memset(&pci, 0, sizeof(pci));
        if (CALL(b, pci_info, h, &pci) == NVML_SUCCESS)
                snprintf(id.pci_bus_id, sizeof(id.pci_bus_id), "%.*s", (int)sizeof(pci.busId),
                         pci.busId);
        if (CALL(b, minor_number, h, &minor) == NVML_SUCCESS)
                id.minor = (int)minor;
        *out = id;
        return 0;
}

int backend_reattach(backend *b, unsigned idx)
{
        int r;

        if (idx >= b->count)
                return -EINVAL;
        r = nvml_attach(b, idx);
        if (r < 0)
                return -ENODEV;
        /* A handle can be returned while the device still fails: confirm with a cheap read. */
        {
                gpu_identity id;
                r = backend_device_info(b, idx, &id);
                if (r < 0) {
                        nvml_mark_lost(b, idx);
                        return -ENODEV;
                }
        }
        if (events_get(b) && b->api.register_events) {
                unsigned long long types = 0;
                int lost;
                nvmlDevice_t h = nvml_slot_handle(b, idx, &lost); /* under the slot's lock */
                if (CALL(b, supported_event_types, h, &types) == NVML_SUCCESS) {
                        types &= nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError |
                                 nvmlEventTypeSingleBitEccError;
                        if (types)
                                b->api.register_events(h, types, events_get(b));
                }
        }
        nvml_topo_refresh(b); /* a GPU back may sit elsewhere (or be another board) */
        return 0;
}
