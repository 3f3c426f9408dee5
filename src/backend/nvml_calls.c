/* nvml_calls.c — the field → NVML table (generated from nvml/getters.def, the table the fake NVML
 * answers from too) and the self-monitoring counters of NVML calls. Calls nothing of the other
 * backend files, so that they can all use it without a loop. */
#include "nvml-internal.h"

#include <string.h>

#include "common/macros.h"

/* Self-monitoring: the NVML function behind each getter; slot G_NONE counts
 * nvmlDeviceGetFieldValues. */
static const char *const getter_call[G_COUNT] = {
    [G_NONE] = "nvmlDeviceGetFieldValues",
#define NVML_GETTER(name, call) [G_##name] = call,
#include "nvml/getters.def"
};
unsigned long long nvml_call_count[G_COUNT]; /* __atomic */
unsigned long long nvml_call_ns[G_COUNT];    /* __atomic */

size_t backend_call_stats(backend_call_stat *out, size_t max)
{
        size_t n = 0;

        /* Several getters share one NVML function: merge them by name. */
        for (int g = 0; g < G_COUNT; g++) {
                unsigned long long c = __atomic_load_n(&nvml_call_count[g], __ATOMIC_RELAXED);
                unsigned long long t = __atomic_load_n(&nvml_call_ns[g], __ATOMIC_RELAXED);
                size_t k;
                if (!c || !getter_call[g])
                        continue;
                for (k = 0; k < n && strcmp(out[k].call, getter_call[g]) != 0; k++)
                        ;
                if (k == n) {
                        if (n >= max)
                                continue;
                        out[n++] = (backend_call_stat){.call = getter_call[g]};
                }
                out[k].calls += c;
                out[k].ns += t;
        }
        return n;
}

/* The field → NVML table. The FieldValues id is the primary path when present. */
static const field_read reads[] = {
#define NVML_READ(field, fi, fv_type, getter, slot, conv)                                          \
        {FLD_##field, fi, G_##getter, slot, C_##conv},
#include "nvml/getters.def"
};

const field_read *nvml_read_for(uint16_t field)
{
        for (size_t i = 0; i < ARRAY_SIZE(reads); i++)
                if (reads[i].field == field)
                        return &reads[i];
        return NULL;
}

/* Run one getter, filling r->u[]. */
