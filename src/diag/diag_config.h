/* diag_config.h — the diag module's own configuration: the `diag:` section of vigil.yaml
 * (docs/configuration.md, docs/diagnostics.md). The daemon's option table (src/daemon/config.c)
 * writes the keys straight into a diag_config; diag_service_configure applies it to a running
 * service (a reload). Thresholds left at 0 are not set: the SKU or PCIe specification decides
 * (threshold_source "spec"). Plain data: no thread rules. */
#ifndef VIGIL_DIAG_CONFIG_H
#define VIGIL_DIAG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIAG_CONFIG_PARAM_LEN 64 /* bytes of one "test.key=value" */
#define DIAG_CONFIG_MAX       24 /* parameters a configuration can produce */

typedef struct diag_config {
        unsigned retention_count;             /* finished runs kept in the store; 0 = no limit */
        int64_t retention_max_age_us;         /* usec a finished run is kept; 0 = no limit */
        unsigned expected_gpus;               /* gpu_count.expected; 0 = not checked */
        unsigned pcie_size_mib;               /* MiB per timed copy */
        double pcie_min_gbps;                 /* GB/s; 0 = from the PCIe specification */
        double pcie_max_latency_us;           /* usec; 0 = built-in default */
        double p2p_min_gbps;                  /* GB/s; 0 = reported, not judged */
        unsigned memory_size_mib;             /* level-2 memory test size, MiB */
        int64_t memtest_duration_us;          /* usec */
        double memtest_fraction;              /* of free memory, 0..1 */
        int64_t memory_bandwidth_duration_us; /* usec */
        double memory_bandwidth_min_gbps;     /* GB/s; 0 = from the SKU specification */
        int64_t sm_stress_duration_us;        /* usec */
        double sm_stress_min_tflops;          /* TFLOPS; 0 = from the SKU specification */
        int64_t targeted_power_duration_us;   /* usec */
        double targeted_power_min_fraction;   /* of the enforced power limit; 0 = default */
        bool level3_parallel;                 /* level-3 tests on every GPU at once */
} diag_config;

/* Defaults as documented in docs/configuration.md (the option table's defaults match). */
void diag_config_defaults(diag_config *c);

/* The run parameters ("test.key=value") a configuration sets, into out (up to max). Durations
 * and sizes are always given; thresholds only when set (non-zero). Returns the count. */
size_t diag_config_params(const diag_config *c, char (*out)[DIAG_CONFIG_PARAM_LEN], size_t max);

#endif
