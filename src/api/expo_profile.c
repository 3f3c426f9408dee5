/* expo_profile.c — which profiling fields the exposition needs: tells the sampler, whose
 * "auto" mode reads a profiling field only while something wants it (docs/metrics.md,
 * "Profiling fields"). */
#include "api-internal.h"

#include "common/macros.h"

/* The native default profile: the profiling fields dcgm-exporter's default-counters.csv exports
 * (graphics engine, tensor pipe, DRAM active, PCIe TX/RX); the others are read when asked for. */
static const uint16_t native_profile[] = {
    FLD_PROF_GR_ENGINE_ACTIVE, FLD_PROF_PIPE_TENSOR_ACTIVE, FLD_PROF_DRAM_ACTIVE,
    FLD_PROF_PCIE_TX_BYTES,    FLD_PROF_PCIE_RX_BYTES,
};

void expo_pin_profiling(const counter_set *s, sampler *smp)
{
        uint16_t ids[COUNTERS_MAX_ENTRIES];
        size_t n = 0;

        if (!smp)
                return;
        if (!s) {
                sampler_profiling_pin(smp, SAMPLER_PIN_EXPOSITION, native_profile,
                                      ARRAY_SIZE(native_profile));
                return;
        }
        for (size_t i = 0; i < s->n && n < ARRAY_SIZE(ids); i++)
                if (s->entries[i].src == CS_FIELD && s->entries[i].field)
                        ids[n++] = s->entries[i].field->id;
        sampler_profiling_pin(smp, SAMPLER_PIN_EXPOSITION, ids, n);
}
