/* fields.c — catalog lookups. The table is generated from fields.def at compile time. */
#include "fields.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define I64     FT_I64
#define F64     FT_F64
#define STR     FT_STR
#define GAUGE   FK_GAUGE
#define COUNTER FK_COUNTER
#define LABEL   FK_LABEL
#define STATIC  TIER_STATIC
#define FAST    TIER_FAST
#define SLOW    TIER_SLOW
#define EVENT   TIER_EVENT

static const field_meta catalog[] = {
#define FIELD(id_, sym_, dcgm_, dcgm46_, native_, type_, kind_, tier_, unit_, scale_, help_,       \
              dhelp_)                                                                              \
        {.id = id_,                                                                                \
         .sym = #sym_,                                                                             \
         .dcgm_name = dcgm_,                                                                       \
         .dcgm46_name = dcgm46_,                                                                   \
         .native = native_,                                                                        \
         .type = type_,                                                                            \
         .kind = kind_,                                                                            \
         .tier = tier_,                                                                            \
         .unit = unit_,                                                                            \
         .native_scale = scale_,                                                                   \
         .help = help_,                                                                            \
         .dcgm_help = dhelp_},
#include "fields.def"
#undef FIELD
};

size_t field_count(void)
{
        return sizeof(catalog) / sizeof(catalog[0]);
}

const field_meta *field_at(size_t i)
{
        return i < field_count() ? &catalog[i] : NULL;
}

/* id -> catalog index + 1 for the ids below INDEX_IDS (every DCGM id; 0 = not in the catalog),
 * filled once: the sampler, the backend and the fake look a field up per field per GPU per
 * sweep, and a scan of the ~200 entries was the largest of vigild's own costs left at 8 GPUs
 * (bench/RESULTS.md §6). Vigil's own ids (OWN_BASE and up) have a small table of their own: the
 * health rules read some of them per GPU per sweep. Any other id is scanned. */
#define INDEX_IDS 2048
#define OWN_BASE  60000
#define OWN_IDS   256
static uint16_t index1[INDEX_IDS];
static uint16_t index_own[OWN_IDS];
_Static_assert(sizeof(catalog) / sizeof(catalog[0]) < UINT16_MAX, "catalog index fits 16 bits");
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void index_fill(void)
{
        for (size_t i = 0; i < field_count(); i++)
                if (catalog[i].id < INDEX_IDS)
                        index1[catalog[i].id] = (uint16_t)(i + 1);
                else if (catalog[i].id >= OWN_BASE && catalog[i].id < OWN_BASE + OWN_IDS)
                        index_own[catalog[i].id - OWN_BASE] = (uint16_t)(i + 1);
}

int field_index(unsigned id)
{
        if (id < INDEX_IDS) {
                pthread_once(&index_once, index_fill);
                return (int)index1[id] - 1;
        }
        if (id >= OWN_BASE && id < OWN_BASE + OWN_IDS) {
                pthread_once(&index_once, index_fill);
                return (int)index_own[id - OWN_BASE] - 1;
        }
        for (size_t i = 0; i < field_count(); i++)
                if (catalog[i].id == id)
                        return (int)i;
        return -1;
}

/* Measured on an H100 (driver 580, bench/RESULTS.md §6): nvmlDeviceValidateInforom takes
 * ~70 ms of CPU per call, four times the whole rest of a slow sweep; read every slow sweep it was
 * most of vigild's CPU. The InfoROM's checksums change only when it is written or corrupted, so
 * it is read at start and then hourly (DCGM reads it when a health check asks).
 * nvmlDeviceGetApplicationsClock takes 1.0-1.6 ms per call, one call per clock: settings an
 * operator changes, read every minute (vigil config get and the enforcement read NVML itself). */
static const struct {
        unsigned id;
        int64_t us;
} costly[] = {
    {84, 3600LL * 1000000}, /* INFOROM_VALID */
    {110, 60LL * 1000000},  /* APP_SM_CLOCK */
    {111, 60LL * 1000000},  /* APP_MEM_CLOCK */
};

int64_t field_default_interval_us(unsigned id)
{
        for (size_t i = 0; i < sizeof(costly) / sizeof(costly[0]); i++)
                if (costly[i].id == id)
                        return costly[i].us;
        return 0;
}

const field_meta *field_by_id(unsigned id)
{
        int i = field_index(id);

        return i < 0 ? NULL : &catalog[i];
}

const field_meta *field_by_name(const char *name)
{
        char *end;
        unsigned long id;

        if (!name || !*name)
                return NULL;
        if (name[0] >= '0' && name[0] <= '9') {
                id = strtoul(name, &end, 10);
                return *end || id > FIELD_ID_MAX ? NULL : field_by_id((unsigned)id);
        }
        for (size_t i = 0; i < field_count(); i++) {
                const field_meta *f = &catalog[i];
                if (strcasecmp(name, f->sym) == 0 || strcmp(name, f->dcgm_name) == 0 ||
                    (f->dcgm46_name && strcmp(name, f->dcgm46_name) == 0) ||
                    (f->native && strcmp(name, f->native) == 0))
                        return f;
        }
        return NULL;
}

const char *field_tier_name(enum field_tier t)
{
        static const char *const n[] = {"static", "fast", "slow", "event"};

        return (unsigned)t < TIER_COUNT ? n[t] : "unknown";
}

const char *field_kind_name(enum field_kind k)
{
        static const char *const n[] = {"gauge", "counter", "label"};

        return (unsigned)k < 3 ? n[k] : "unknown";
}

const char *field_type_name(enum field_type t)
{
        static const char *const n[] = {"int64", "double", "string"};

        return (unsigned)t < 3 ? n[t] : "unknown";
}
