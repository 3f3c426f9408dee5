/* diag-internal.h — what the diag module's files share and nothing else sees: the SKU spec table
 * that thresholds come from when no --param is given. */
#ifndef VIGIL_DIAG_INTERNAL_H
#define VIGIL_DIAG_INTERNAL_H

typedef struct diag_sku {
        const char *match;  /* substring of the NVML product name, most specific first */
        double dram_gbps;   /* memory bandwidth from the data sheet, GB/s */
        double fp32_tflops; /* FP32 (non-tensor) peak from the data sheet, TFLOPS */
        double dram_frac;   /* default minimum = dram_gbps x this (docs/diagnostics.md) */
        double fp32_frac;   /* default minimum = fp32_tflops x this */
        const char *basis;  /* where the fractions come from: "measured on ...", "uncalibrated" */
} diag_sku;

/* PCIe copy bandwidth minimum as a fraction of the link's specification (gen x width). */
#define DIAG_PCIE_FRAC 0.75
/* Targeted power: the peak must reach this fraction of the enforced power limit. */
#define DIAG_POWER_FRAC 0.6

/* The first entry whose match is a substring of NAME, or NULL. */
const diag_sku *diag_sku_find(const char *name);

#endif
