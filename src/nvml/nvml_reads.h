/* nvml_reads.h — the vocabulary of getters.def (how a DCGM field is read from NVML), for the
 * backend that reads fields that way and the fake NVML that answers them. Header only. */
#ifndef VIGIL_NVML_READS_H
#define VIGIL_NVML_READS_H

#include "nvml_types.h"

/* NVML unit = DCGM unit × NVML_CONV_SCALE_<CONV> (the fake converts this way; the backend the
 * other way: NVML_CONV_* below). */
#define NVML_CONV_SCALE_ID    1.0
#define NVML_CONV_SCALE_MILLI 1000.0            /* W → mW */
#define NVML_CONV_SCALE_MIB   (1024.0 * 1024.0) /* MiB → bytes */
#define NVML_CONV_SCALE_KIB   (1.0 / 1024.0)    /* B/s → KB/s */
#define NVML_CONV_SCALE_PCT   100.0             /* ratio → percent */
#define NVML_CONV_SCALE_MIBPS (1.0 / 1048576.0) /* B/s → MiB/s (GPM's rates) */

enum nvml_conv {
        NVML_CONV_ID = 0, /* as is */
        NVML_CONV_MILLI,  /* mW → W (double) */
        NVML_CONV_MIB,    /* bytes → MiB */
        NVML_CONV_KIB,    /* KB/s → B/s (double) */
        NVML_CONV_PCT,    /* percent → ratio (double) */
        NVML_CONV_MIBPS,  /* MiB/s → B/s (double) */
};

/* FV_TYPE of rows without a FieldValues id: never reported. */
#define NVML_VALUE_TYPE_NONE NVML_VALUE_TYPE_COUNT

/* The getters of getters.def; NVML_GETTER_NONE (0) is "no getter", which self-monitoring uses
 * for nvmlDeviceGetFieldValues. */
enum nvml_getter {
        NVML_GETTER_NONE = 0,
#define NVML_GETTER(name, call) NVML_GETTER_##name,
#include "getters.def"
        NVML_GETTER_COUNT,
};

/* The number of getters.def rows read through GPM: an integer constant expression, so that the
 * backend and the fake size their per-sample arrays from the table. */
#define NVML_READ(field, fi, fv_type, getter, slot, conv)                                          \
        +(NVML_GETTER_##getter == NVML_GETTER_GPM_METRICS)
enum {
        NVML_GPM_ROWS = 0
#include "getters.def"
};

#endif
