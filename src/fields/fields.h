/* fields.h — the field catalog (fields.def) as an enum and a metadata table. Field ids are DCGM's,
 * so a dcgm-exporter counters CSV works unchanged. Read-only after start; any thread may call. */
#ifndef VIGIL_FIELDS_H
#define VIGIL_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum field_type {
        FT_I64 = 0,
        FT_F64 = 1,
        FT_STR = 2,
};

enum field_kind {
        FK_GAUGE = 0,
        FK_COUNTER = 1,
        FK_LABEL = 2,
};

enum field_tier {
        TIER_STATIC = 0,
        TIER_FAST = 1,
        TIER_SLOW = 2,
        TIER_EVENT = 3,
        TIER_COUNT = 4,
};

enum field_id {
#define FIELD(id, sym, ...) FLD_##sym = id,
#include "fields.def"
#undef FIELD
};

#define FIELD_ID_MAX 65535

typedef struct field_meta {
        uint16_t id;             /* DCGM field id */
        const char *sym;         /* short symbol, e.g. "GPU_TEMP" */
        const char *dcgm_name;   /* e.g. "DCGM_FI_DEV_GPU_TEMP" */
        const char *dcgm46_name; /* DCGM 4.6 canonical name, or NULL when unchanged */
        const char *native;      /* native family name, or NULL for label-only fields */
        enum field_type type;    /* storage type */
        enum field_kind kind;    /* gauge / counter / label */
        enum field_tier tier;    /* default sampling tier */
        const char *unit;        /* unit of the stored value (DCGM's) */
        double native_scale;     /* stored value × scale = native base unit */
        const char *help;        /* native HELP */
        const char *dcgm_help;   /* dcgm-exporter HELP, or NULL */
} field_meta;

/* One sampled value. status is 0 when the value is valid, else a negative errno that says why
 * there is none: -EOPNOTSUPP (the GPU does not support the field), -ENODEV (GPU lost),
 * -EACCES (no permission), -ENODATA (not sampled yet), -EIO/-ETIMEDOUT (the read failed).
 * Only valid values are ever exported; there are no sentinel numbers. */
typedef struct field_value {
        int32_t status; /* 0 or -errno */
        union {
                int64_t i; /* FT_I64 */
                double d;  /* FT_F64 */
        };
} field_value;

size_t field_count(void);
/* i in [0, field_count()); catalog order. */
const field_meta *field_at(size_t i);
/* NULL when the id is not in the catalog. */
const field_meta *field_by_id(unsigned id);
/* Accepts the symbol ("GPU_TEMP"), either DCGM name, the native name, or a decimal id.
 * Case-sensitive except for the symbol. NULL when unknown. */
const field_meta *field_by_name(const char *name);
/* Index of the field in catalog order, or -1. */
int field_index(unsigned id);
/* The default interval of a slow-tier field whose read costs too much for every slow sweep, in
 * microseconds; 0 for the others (their tier's interval). collection.fields overrides it. */
int64_t field_default_interval_us(unsigned id);

/* DCGM's profiling fields (DCGM_FI_PROF_*, ids 1001-1099), read through NVML GPM (PCIe 1009/1010
 * through nvmlDeviceGetPcieThroughput): the sampler reads only those something wants
 * (docs/metrics.md, "Profiling fields"). */
#define FIELD_PROF_FIRST 1001
#define FIELD_PROF_LAST  1099
static inline bool field_is_profiling(unsigned id)
{
        return id >= FIELD_PROF_FIRST && id <= FIELD_PROF_LAST;
}

const char *field_tier_name(enum field_tier t);
const char *field_kind_name(enum field_kind k);
const char *field_type_name(enum field_type t);

#endif
