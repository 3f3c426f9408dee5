/* fakenvml.h — the extra API of libvigil-fakenvml.so, the fake NVML. These functions are absent
 * from the real libnvidia-ml.so.1: the backend resolves them with dlsym and, when they are there,
 * knows it talks to the fake (so it can pick a scenario and offer POST /api/v1/inject).
 *
 * Contract: every function is thread-safe. Errors are 0 or -errno, with a one-line reason in err
 * (NUL-terminated, truncated to errlen). Values are in the DCGM unit of the field (fields.def). */
#ifndef VIGIL_FAKENVML_H
#define VIGIL_FAKENVML_H

#include <stddef.h>

#define VIGIL_FAKE_API_VERSION 1

#ifndef FAKE_EXPORT
#define FAKE_EXPORT __attribute__((visibility("default")))
#endif

/* Choose the scenario before the first nvmlInit. path NULL = built-in default. Returns 0 or
 * -errno (-EBUSY while NVML is initialized); on failure writes "FILE:LINE: reason" into err.
 * Configuring again after the last nvmlShutdown resets the simulated world (time, counters,
 * injections). Without a call, the first nvmlInit loads $VIGIL_FAKE_SCENARIO or the default. */
FAKE_EXPORT int vigil_fake_configure(const char *scenario_path, char *err, size_t errlen);

enum fake_inject_kind {
        FAKE_INJECT_XID = 1,
        FAKE_INJECT_FIELD = 2,
        FAKE_INJECT_FIELD_CLEAR = 3,
        FAKE_INJECT_ECC_DBE = 4,
        FAKE_INJECT_ECC_SBE = 5,
        FAKE_INJECT_LOST = 6,
        FAKE_INJECT_CALL_COST = 7,
        FAKE_INJECT_RESET = 8,   /* GPU reset: volatile ECC counters and pending flags cleared */
        FAKE_INJECT_ADVANCE = 9, /* fake clock: scenario time moves count us ahead (no gpu) */
};

struct fake_inject {
        enum fake_inject_kind kind;
        unsigned gpu;      /* GPU index (all kinds but CALL_COST) */
        unsigned field_id; /* DCGM field id (FIELD, FIELD_CLEAR) */
        double value;      /* FIELD: value in the field's DCGM unit, held until FIELD_CLEAR */
        long long count;   /* XID: the code; ECC_*: errors to add (also raises the event); LOST: 1
                              lost, 0 back; CALL_COST: cost in ns; ADVANCE: us */
        const char *call;  /* CALL_COST: NVML function name, or "*" for the global scale in
                              percent (count) */
};

/* Returns 0, -EINVAL (bad kind/field/value), -ENODEV (no such GPU, or no scenario loaded);
 * err gets a reason. */
FAKE_EXPORT int vigil_fake_inject(const struct fake_inject *req, char *err, size_t errlen);

/* The fake clock. Scenario time (ramps, steps at t, noise, trace replay, events at t) is the real
 * time since the first nvmlInit plus an offset; this moves the offset us microseconds ahead
 * (0..one year per call), so a test sees a ramp's end or an event at t=300s at once. Scripted
 * events that became due are raised before it returns. Time never goes back. Returns 0,
 * -EINVAL (us out of range) or -ENODEV (no scenario loaded). Same as FAKE_INJECT_ADVANCE. */
FAKE_EXPORT int vigil_fake_advance(long long us);

struct fake_stats {
        unsigned long long calls;   /* NVML entry points called since load */
        unsigned long long cost_ns; /* CPU burnt in modelled cost (ns) */
};

FAKE_EXPORT void vigil_fake_stats(struct fake_stats *out);

#endif
