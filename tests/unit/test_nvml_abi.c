/* test_nvml_abi.c — our NVML declarations must match NVIDIA's nvml.h layout exactly: the backend
 * passes these structs to the real libnvidia-ml.so.1. Sizes and offsets below are those of the
 * published nvml.h on x86_64 (LP64). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nvml/nvml_types.h"

static void test_struct_layouts(void **state)
{
        (void)state;
        assert_int_equal(sizeof(nvmlPciInfo_t), 68);
        assert_int_equal(offsetof(nvmlPciInfo_t, domain), 16);
        assert_int_equal(offsetof(nvmlPciInfo_t, pciSubSystemId), 32);
        assert_int_equal(offsetof(nvmlPciInfo_t, busId), 36);
        assert_int_equal(sizeof(nvmlMemory_t), 24);
        assert_int_equal(sizeof(nvmlMemory_v2_t), 40);
        assert_int_equal(offsetof(nvmlMemory_v2_t, total), 8);
        assert_int_equal(offsetof(nvmlMemory_v2_t, reserved), 16);
        assert_int_equal(offsetof(nvmlMemory_v2_t, used), 32);
        assert_int_equal(nvmlMemory_v2, 0x02000028u);
        assert_int_equal(sizeof(nvmlUtilization_t), 8);
        assert_int_equal(sizeof(nvmlViolationTime_t), 16);
        assert_int_equal(sizeof(nvmlValue_t), 8);
        assert_int_equal(sizeof(nvmlFieldValue_t), 40);
        assert_int_equal(offsetof(nvmlFieldValue_t, scopeId), 4);
        assert_int_equal(offsetof(nvmlFieldValue_t, timestamp), 8);
        assert_int_equal(offsetof(nvmlFieldValue_t, latencyUsec), 16);
        assert_int_equal(offsetof(nvmlFieldValue_t, valueType), 24);
        assert_int_equal(offsetof(nvmlFieldValue_t, nvmlReturn), 28);
        assert_int_equal(offsetof(nvmlFieldValue_t, value), 32);
        assert_int_equal(sizeof(nvmlEventData_t), 32);
        assert_int_equal(offsetof(nvmlEventData_t, eventType), 8);
        assert_int_equal(offsetof(nvmlEventData_t, eventData), 16);
        assert_int_equal(offsetof(nvmlEventData_t, gpuInstanceId), 24);
        assert_int_equal(sizeof(nvmlProcessInfo_t), 24);
        assert_int_equal(offsetof(nvmlProcessInfo_t, usedGpuMemory), 8);
        assert_int_equal(sizeof(nvmlProcessUtilizationSample_t), 32);
        assert_int_equal(offsetof(nvmlProcessUtilizationSample_t, timeStamp), 8);
        assert_int_equal(offsetof(nvmlProcessUtilizationSample_t, smUtil), 16);
        assert_int_equal(offsetof(nvmlProcessUtilizationSample_t, decUtil), 28);
        assert_int_equal(sizeof(nvmlAccountingStats_t), 56);
        assert_int_equal(offsetof(nvmlAccountingStats_t, maxMemoryUsage), 8);
        assert_int_equal(offsetof(nvmlAccountingStats_t, startTime), 24);
        assert_int_equal(offsetof(nvmlAccountingStats_t, isRunning), 32);
        assert_int_equal(offsetof(nvmlProcessInfo_t, computeInstanceId), 20);
        assert_int_equal(sizeof(nvmlReturn_t), 4);
        assert_int_equal(sizeof(nvmlEnableState_t), 4);
        /* nvml.h: nvmlGpuFabricInfo_v2 is 0x02000024 (36 bytes, version 2) */
        assert_int_equal(sizeof(nvmlGpuFabricInfo_v2_t), 36);
        assert_int_equal(nvmlGpuFabricInfo_v2, 0x02000024);
        assert_int_equal(offsetof(nvmlGpuFabricInfo_v2_t, clusterUuid), 4);
        assert_int_equal(offsetof(nvmlGpuFabricInfo_v2_t, status), 20);
        assert_int_equal(offsetof(nvmlGpuFabricInfo_v2_t, cliqueId), 24);
        assert_int_equal(offsetof(nvmlGpuFabricInfo_v2_t, state), 28);
        assert_int_equal(offsetof(nvmlGpuFabricInfo_v2_t, healthMask), 32);
        /* nvml.h v4 licensing structs: 16-byte expiry, 284-byte feature, 3 features + 8 */
        assert_int_equal(sizeof(nvmlGridLicenseExpiry_t), 16);
        assert_int_equal(offsetof(nvmlGridLicenseExpiry_t, status), 14);
        assert_int_equal(sizeof(nvmlGridLicensableFeature_t), 284);
        assert_int_equal(offsetof(nvmlGridLicensableFeature_t, productName), 136);
        assert_int_equal(offsetof(nvmlGridLicensableFeature_t, featureEnabled), 264);
        assert_int_equal(offsetof(nvmlGridLicensableFeature_t, licenseExpiry), 268);
        assert_int_equal(sizeof(nvmlGridLicensableFeatures_t), 860);
}

/* GPM: nvmlGpmMetricsGet_t is passed by pointer and written by the library. The element layout
 * is the same in every nvml.h; only the array length (NVML_GPM_METRIC_MAX) grew, and we take the
 * largest published one (see nvml_types.h), so the struct is never smaller than the library's. */
static void test_gpm_layouts(void **state)
{
        (void)state;
        assert_int_equal(sizeof(nvmlGpmSample_t), 8);
        assert_int_equal(sizeof(nvmlGpmSupport_t), 8);
        assert_int_equal(offsetof(nvmlGpmSupport_t, isSupportedDevice), 4);
        assert_int_equal(sizeof(nvmlGpmMetric_t), 40);
        assert_int_equal(offsetof(nvmlGpmMetric_t, nvmlReturn), 4);
        assert_int_equal(offsetof(nvmlGpmMetric_t, value), 8);
        assert_int_equal(offsetof(nvmlGpmMetric_t, metricInfo.shortName), 16);
        assert_int_equal(offsetof(nvmlGpmMetric_t, metricInfo.longName), 24);
        assert_int_equal(offsetof(nvmlGpmMetric_t, metricInfo.unit), 32);
        assert_int_equal(offsetof(nvmlGpmMetricsGet_t, numMetrics), 4);
        assert_int_equal(offsetof(nvmlGpmMetricsGet_t, sample1), 8);
        assert_int_equal(offsetof(nvmlGpmMetricsGet_t, sample2), 16);
        assert_int_equal(offsetof(nvmlGpmMetricsGet_t, metrics), 24);
        assert_int_equal(NVML_GPM_METRIC_MAX, 333);
        assert_int_equal(sizeof(nvmlGpmMetricsGet_t), 24 + 40 * 333); /* 13344 */
        /* Never smaller than CUDA 13.0's header (driver 580: 210 entries, 8424 bytes). */
        assert_true(sizeof(nvmlGpmMetricsGet_t) >= 24 + 40 * 210);
        assert_int_equal(NVML_GPM_METRICS_GET_VERSION, 1);
        assert_int_equal(NVML_GPM_SUPPORT_VERSION, 1);
        assert_int_equal(NVML_GPM_METRIC_GRAPHICS_UTIL, 1);
        assert_int_equal(NVML_GPM_METRIC_SM_UTIL, 2);
        assert_int_equal(NVML_GPM_METRIC_ANY_TENSOR_UTIL, 5);
        assert_int_equal(NVML_GPM_METRIC_DRAM_BW_UTIL, 10);
        /* the rest of the profiling metrics (nvml.h nvmlGpmMetricId_t) */
        assert_int_equal(NVML_GPM_METRIC_SM_OCCUPANCY, 3);
        assert_int_equal(NVML_GPM_METRIC_INTEGER_UTIL, 4);
        assert_int_equal(NVML_GPM_METRIC_DFMA_TENSOR_UTIL, 6);
        assert_int_equal(NVML_GPM_METRIC_HMMA_TENSOR_UTIL, 7);
        assert_int_equal(NVML_GPM_METRIC_IMMA_TENSOR_UTIL, 9);
        assert_int_equal(NVML_GPM_METRIC_FP64_UTIL, 11);
        assert_int_equal(NVML_GPM_METRIC_FP32_UTIL, 12);
        assert_int_equal(NVML_GPM_METRIC_FP16_UTIL, 13);
        assert_int_equal(NVML_GPM_METRIC_PCIE_TX_PER_SEC, 20);
        assert_int_equal(NVML_GPM_METRIC_PCIE_RX_PER_SEC, 21);
        assert_int_equal(NVML_GPM_METRIC_NVDEC_0_UTIL, 30);
        assert_int_equal(NVML_GPM_METRIC_NVJPG_0_UTIL, 40);
        assert_int_equal(NVML_GPM_METRIC_NVOFA_0_UTIL, 50);
        assert_int_equal(NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, 60);
        assert_int_equal(NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, 61);
        assert_int_equal(NVML_GPM_METRIC_NVLINK_L0_RX_PER_SEC, 62);
        assert_int_equal(NVML_GPM_METRIC_NVLINK_L0_TX_PER_SEC, 63);
}

/* NVLink, topology and MIG: the entry points take scalars, enums and nvmlPciInfo_t (pinned above:
 * nvmlDeviceGetNvLinkRemotePciInfo_v2 fills the same struct as nvmlDeviceGetPciInfo_v3). Enums are
 * 4-byte ints whose values are pinned here against nvml.h. */
static void test_nvlink_topo_mig(void **state)
{
        (void)state;
        assert_int_equal(sizeof(nvmlNvLinkErrorCounter_t), 4);
        assert_int_equal(sizeof(nvmlIntNvLinkDeviceType_t), 4);
        assert_int_equal(sizeof(nvmlGpuTopologyLevel_t), 4);
        assert_int_equal(NVML_NVLINK_MAX_LINKS, 18);
        assert_int_equal(NVML_NVLINK_ERROR_DL_REPLAY, 0);
        assert_int_equal(NVML_NVLINK_ERROR_DL_RECOVERY, 1);
        assert_int_equal(NVML_NVLINK_ERROR_DL_CRC_FLIT, 2);
        assert_int_equal(NVML_NVLINK_ERROR_DL_CRC_DATA, 3);
        assert_int_equal(NVML_NVLINK_ERROR_DL_ECC_DATA, 4);
        assert_int_equal(NVML_NVLINK_DEVICE_TYPE_GPU, 0);
        assert_int_equal(NVML_NVLINK_DEVICE_TYPE_SWITCH, 2);
        assert_int_equal(NVML_NVLINK_DEVICE_TYPE_UNKNOWN, 0xFF);
        assert_int_equal(NVML_FI_DEV_NVLINK_LINK_COUNT, 91);
        assert_int_equal(NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 138);
        assert_int_equal(NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, 139);
        assert_int_equal(NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY, 161);
        assert_int_equal(NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY, 162);
        assert_int_equal(NVML_FI_DEV_NVLINK_ERROR_DL_CRC, 163);
        assert_int_equal(NVML_FI_DEV_NVLINK_GET_STATE, 165);
        assert_int_equal(NVML_FI_DEV_NVLINK_GET_VERSION, 166);
        assert_int_equal(NVML_TOPOLOGY_INTERNAL, 0);
        assert_int_equal(NVML_TOPOLOGY_SINGLE, 10);
        assert_int_equal(NVML_TOPOLOGY_MULTIPLE, 20);
        assert_int_equal(NVML_TOPOLOGY_HOSTBRIDGE, 30);
        assert_int_equal(NVML_TOPOLOGY_NODE, 40);
        assert_int_equal(NVML_TOPOLOGY_SYSTEM, 50);
        assert_int_equal(NVML_DEVICE_MIG_DISABLE, 0);
        assert_int_equal(NVML_DEVICE_MIG_ENABLE, 1);
        assert_int_equal(sizeof(nvmlPciInfo_t), 68); /* nvmlDeviceGetNvLinkRemotePciInfo_v2 */
        assert_int_equal(sizeof(nvmlComputeMode_t), 4);
        assert_int_equal(NVML_COMPUTEMODE_DEFAULT, 0);
        assert_int_equal(NVML_COMPUTEMODE_PROHIBITED, 2);
        assert_int_equal(NVML_COMPUTEMODE_EXCLUSIVE_PROCESS, 3);
}

static void test_constants(void **state)
{
        (void)state;
        assert_int_equal(NVML_ERROR_GPU_IS_LOST, 15);
        assert_int_equal(NVML_ERROR_NOT_SUPPORTED, 3);
        assert_int_equal(NVML_ERROR_UNKNOWN, 999);
        assert_int_equal(NVML_FI_DEV_MEMORY_TEMP, 82);
        assert_int_equal(NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, 83);
        assert_int_equal(NVML_FI_DEV_POWER_AVERAGE, 185);
        assert_int_equal(NVML_FI_DEV_POWER_INSTANT, 186);
        assert_int_equal(NVML_FI_DEV_REMAPPED_FAILURE, 145);
        assert_int_equal(nvmlEventTypeXidCriticalError, 8);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_struct_layouts),
            cmocka_unit_test(test_constants),
            cmocka_unit_test(test_gpm_layouts),
            cmocka_unit_test(test_nvlink_topo_mig),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
