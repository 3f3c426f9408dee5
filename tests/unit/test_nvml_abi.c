/* test_nvml_abi.c — our NVML declarations must match NVIDIA's nvml.h layout exactly: the backend
 * passes these structs to the real libnvidia-ml.so.1. Sizes and offsets below are those of the
 * published nvml.h on x86_64 (LP64). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/nvml_types.h"

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
        assert_int_equal(offsetof(nvmlProcessInfo_t, computeInstanceId), 20);
        assert_int_equal(sizeof(nvmlReturn_t), 4);
        assert_int_equal(sizeof(nvmlEnableState_t), 4);
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
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
