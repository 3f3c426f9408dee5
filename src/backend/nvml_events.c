/* nvml_events.c — XID and ECC events: registration on every GPU (and again on re-attach, see
 * nvml_device.c) and the wait of the event thread. */
#include "nvml-internal.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

int backend_events_start(backend *b)
{
        nvmlEventSet_t set = NULL;
        unsigned registered = 0;
        int rc;

        if (!b->api.event_set_create || !b->api.register_events || !b->api.event_set_wait)
                return -EOPNOTSUPP;
        rc = b->api.event_set_create(&set);
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        __atomic_store_n(&b->events, set, __ATOMIC_RELEASE); /* events_get() */
        for (unsigned i = 0; i < b->count; i++) {
                unsigned long long types = nvmlEventTypeXidCriticalError |
                                           nvmlEventTypeDoubleBitEccError |
                                           nvmlEventTypeSingleBitEccError;
                unsigned long long supported = 0;
                int lost;
                nvmlDevice_t h = nvml_slot_handle(b, i, &lost);
                if (lost)
                        continue;
                if (CALL(b, supported_event_types, h, &supported) == NVML_SUCCESS)
                        types &= supported;
                if (!types)
                        continue;
                rc = b->api.register_events(h, types, set);
                if (rc == NVML_SUCCESS)
                        registered++;
                else
                        log_warn("backend", "failed to register events on GPU %u: %s", i,
                                 strerror(-backend_errno_from_nvml(rc)));
        }
        return registered ? 0 : -EOPNOTSUPP;
}

int backend_wait_event(backend *b, unsigned timeout_ms, backend_event *ev)
{
        nvmlEventData_t d;
        int rc;

        nvmlEventSet_t set = events_get(b);

        if (!set)
                return -EOPNOTSUPP;
        memset(&d, 0, sizeof(d));
        rc = b->api.event_set_wait(set, &d, timeout_ms);
        if (rc == NVML_ERROR_TIMEOUT)
                return -ETIMEDOUT;
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        ev->gpu = UINT32_MAX;
        for (unsigned i = 0; i < b->count; i++) {
                /* The handle changes on re-attach (sampler thread): read it under the slot's
                 * lock. A lost GPU keeps its last handle, so its events still map to it. */
                gpu_slot *s = &b->gpus[i];
                pthread_mutex_lock(&s->lock);
                if (s->handle == d.device)
                        ev->gpu = i;
                pthread_mutex_unlock(&s->lock);
        }
        if (ev->gpu == UINT32_MAX)
                return -ENODEV;
        if (d.eventType & nvmlEventTypeXidCriticalError)
                ev->kind = BEV_XID;
        else if (d.eventType & nvmlEventTypeDoubleBitEccError)
                ev->kind = BEV_ECC_DBE;
        else if (d.eventType & nvmlEventTypeSingleBitEccError)
                ev->kind = BEV_ECC_SBE;
        else
                return -EAGAIN;
        ev->data = d.eventData;
        ev->ts_us = time_real_us();
        return 0;
}
