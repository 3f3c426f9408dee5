/* nvml_api.c — the NVML C ABI of libvigil-fakenvml.so: every function named in
 * nvml/nvml_syms.h, with the exact prototype given there (each is declared through a typedef
 * generated from that X-macro, so a mismatch does not compile), plus the vigil_fake_* extra API.
 * Each entry point checks its arguments the way NVML does, reads the DCGM field(s) it stands for
 * from the engine and converts DCGM units to NVML units (W -> mW, MiB -> bytes, B/s -> KB/s).
 * Only this file is compiled into the shared library alone; the rest lives in the core library. */
#include "fakenvml/fake-internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/vtime.h"
#include "fields/fields.h"
#include "nvml/nvml_reads.h"

/* fake_fnt_<member>: the function type of each nvml_syms.h entry. */
#define NVML_FN(ret, member, req, params, ...) typedef ret fake_fnt_##member params;
#include "nvml/nvml_syms.h"
#undef NVML_FN

#define EXPORT __attribute__((visibility("default")))
/* Define the newest name; older names of the same entry are aliases with the same type. */
#define ALIAS(member, name, target) EXPORT fake_fnt_##member name __attribute__((alias(#target)))

EXPORT fake_fnt_init nvmlInit_v2;
EXPORT fake_fnt_shutdown nvmlShutdown;
EXPORT fake_fnt_error_string nvmlErrorString;
EXPORT fake_fnt_system_driver_version nvmlSystemGetDriverVersion;
EXPORT fake_fnt_system_nvml_version nvmlSystemGetNVMLVersion;
EXPORT fake_fnt_device_count nvmlDeviceGetCount_v2;
EXPORT fake_fnt_handle_by_index nvmlDeviceGetHandleByIndex_v2;
EXPORT fake_fnt_handle_by_uuid nvmlDeviceGetHandleByUUID;
EXPORT fake_fnt_name nvmlDeviceGetName;
EXPORT fake_fnt_uuid nvmlDeviceGetUUID;
EXPORT fake_fnt_serial nvmlDeviceGetSerial;
EXPORT fake_fnt_pci_info nvmlDeviceGetPciInfo_v3;
EXPORT fake_fnt_vbios_version nvmlDeviceGetVbiosVersion;
EXPORT fake_fnt_inforom_image_version nvmlDeviceGetInforomImageVersion;
EXPORT fake_fnt_minor_number nvmlDeviceGetMinorNumber;
EXPORT fake_fnt_brand nvmlDeviceGetBrand;
EXPORT fake_fnt_temperature_threshold nvmlDeviceGetTemperatureThreshold;
EXPORT fake_fnt_power_default_limit nvmlDeviceGetPowerManagementDefaultLimit;
EXPORT fake_fnt_max_pcie_gen nvmlDeviceGetMaxPcieLinkGeneration;
EXPORT fake_fnt_max_pcie_width nvmlDeviceGetMaxPcieLinkWidth;
EXPORT fake_fnt_field_values nvmlDeviceGetFieldValues;
EXPORT fake_fnt_temperature nvmlDeviceGetTemperature;
EXPORT fake_fnt_power_usage nvmlDeviceGetPowerUsage;
EXPORT fake_fnt_utilization nvmlDeviceGetUtilizationRates;
EXPORT fake_fnt_memory_info_v2 nvmlDeviceGetMemoryInfo_v2;
EXPORT fake_fnt_memory_info nvmlDeviceGetMemoryInfo;
EXPORT fake_fnt_clock_info nvmlDeviceGetClockInfo;
EXPORT fake_fnt_clocks_event_reasons nvmlDeviceGetCurrentClocksEventReasons;
EXPORT fake_fnt_performance_state nvmlDeviceGetPerformanceState;
EXPORT fake_fnt_encoder_utilization nvmlDeviceGetEncoderUtilization;
EXPORT fake_fnt_decoder_utilization nvmlDeviceGetDecoderUtilization;
EXPORT fake_fnt_remapped_rows nvmlDeviceGetRemappedRows;
EXPORT fake_fnt_total_ecc_errors nvmlDeviceGetTotalEccErrors;
EXPORT fake_fnt_total_energy nvmlDeviceGetTotalEnergyConsumption;
EXPORT fake_fnt_violation_status nvmlDeviceGetViolationStatus;
EXPORT fake_fnt_pcie_replay_counter nvmlDeviceGetPcieReplayCounter;
EXPORT fake_fnt_curr_pcie_gen nvmlDeviceGetCurrPcieLinkGeneration;
EXPORT fake_fnt_curr_pcie_width nvmlDeviceGetCurrPcieLinkWidth;
EXPORT fake_fnt_pcie_throughput nvmlDeviceGetPcieThroughput;
EXPORT fake_fnt_power_limit nvmlDeviceGetPowerManagementLimit;
EXPORT fake_fnt_enforced_power_limit nvmlDeviceGetEnforcedPowerLimit;
EXPORT fake_fnt_persistence_mode nvmlDeviceGetPersistenceMode;
EXPORT fake_fnt_ecc_mode nvmlDeviceGetEccMode;
EXPORT fake_fnt_retired_pages nvmlDeviceGetRetiredPages;
EXPORT fake_fnt_retired_pages_pending nvmlDeviceGetRetiredPagesPendingStatus;
EXPORT fake_fnt_compute_processes nvmlDeviceGetComputeRunningProcesses_v3;
EXPORT fake_fnt_graphics_processes nvmlDeviceGetGraphicsRunningProcesses_v3;
EXPORT fake_fnt_process_utilization nvmlDeviceGetProcessUtilization;
EXPORT fake_fnt_accounting_mode nvmlDeviceGetAccountingMode;
EXPORT fake_fnt_accounting_stats nvmlDeviceGetAccountingStats;
EXPORT fake_fnt_event_set_create nvmlEventSetCreate;
EXPORT fake_fnt_supported_event_types nvmlDeviceGetSupportedEventTypes;
EXPORT fake_fnt_register_events nvmlDeviceRegisterEvents;
EXPORT fake_fnt_event_set_wait nvmlEventSetWait_v2;
EXPORT fake_fnt_event_set_free nvmlEventSetFree;
EXPORT fake_fnt_set_power_limit nvmlDeviceSetPowerManagementLimit;
EXPORT fake_fnt_gpm_query_support nvmlGpmQueryDeviceSupport;
EXPORT fake_fnt_gpm_sample_alloc nvmlGpmSampleAlloc;
EXPORT fake_fnt_gpm_sample_free nvmlGpmSampleFree;
EXPORT fake_fnt_gpm_sample_get nvmlGpmSampleGet;
EXPORT fake_fnt_gpm_metrics_get nvmlGpmMetricsGet;
EXPORT fake_fnt_nvlink_state nvmlDeviceGetNvLinkState;
EXPORT fake_fnt_nvlink_remote_pci nvmlDeviceGetNvLinkRemotePciInfo_v2;
EXPORT fake_fnt_nvlink_remote_type nvmlDeviceGetNvLinkRemoteDeviceType;
EXPORT fake_fnt_nvlink_error_counter nvmlDeviceGetNvLinkErrorCounter;
EXPORT fake_fnt_topology_common_ancestor nvmlDeviceGetTopologyCommonAncestor;
EXPORT fake_fnt_cpu_affinity nvmlDeviceGetCpuAffinity;
EXPORT fake_fnt_compute_mode nvmlDeviceGetComputeMode;
EXPORT fake_fnt_applications_clock nvmlDeviceGetApplicationsClock;
EXPORT fake_fnt_numa_node_id nvmlDeviceGetNumaNodeId;
EXPORT fake_fnt_mig_mode nvmlDeviceGetMigMode;
EXPORT fake_fnt_max_mig_device_count nvmlDeviceGetMaxMigDeviceCount;
EXPORT fake_fnt_mig_device_handle_by_index nvmlDeviceGetMigDeviceHandleByIndex;
EXPORT fake_fnt_gpu_instance_id nvmlDeviceGetGpuInstanceId;
EXPORT fake_fnt_compute_instance_id nvmlDeviceGetComputeInstanceId;
EXPORT fake_fnt_power_limit_constraints nvmlDeviceGetPowerManagementLimitConstraints;
EXPORT fake_fnt_supported_memory_clocks nvmlDeviceGetSupportedMemoryClocks;
EXPORT fake_fnt_supported_graphics_clocks nvmlDeviceGetSupportedGraphicsClocks;
EXPORT fake_fnt_set_applications_clocks nvmlDeviceSetApplicationsClocks;
EXPORT fake_fnt_reset_applications_clocks nvmlDeviceResetApplicationsClocks;
EXPORT fake_fnt_set_gpu_locked_clocks nvmlDeviceSetGpuLockedClocks;
EXPORT fake_fnt_reset_gpu_locked_clocks nvmlDeviceResetGpuLockedClocks;
EXPORT fake_fnt_set_memory_locked_clocks nvmlDeviceSetMemoryLockedClocks;
EXPORT fake_fnt_reset_memory_locked_clocks nvmlDeviceResetMemoryLockedClocks;
EXPORT fake_fnt_set_compute_mode nvmlDeviceSetComputeMode;
EXPORT fake_fnt_set_persistence_mode nvmlDeviceSetPersistenceMode;
EXPORT fake_fnt_set_ecc_mode nvmlDeviceSetEccMode;
EXPORT fake_fnt_validate_inforom nvmlDeviceValidateInforom;
EXPORT fake_fnt_gpu_fabric_info nvmlDeviceGetGpuFabricInfoV;
EXPORT fake_fnt_grid_licensable_features nvmlDeviceGetGridLicensableFeatures_v4;

#define NVML_BRAND_NVIDIA     14     /* nvmlBrandType_t of data-center Hopper boards */
#define H200_GPU_MAX_TEMP     87     /* C, NVML_TEMPERATURE_THRESHOLD_GPU_MAX */
#define H200_MEM_MAX_TEMP     95     /* C, NVML_TEMPERATURE_THRESHOLD_MEM_MAX */
#define H200_VIDEO_CLOCK      1755   /* MHz */
#define H200_POWER_MIN_W      200    /* W, lowest settable power limit */
#define H200_MEM_CLOCK        3201   /* MHz, the one supported memory clock (HBM3e) */
#define H200_SM_CLOCK_MAX     1980   /* MHz, highest supported graphics clock */
#define H200_SM_CLOCK_MIN     345    /* MHz, lowest supported graphics clock */
#define H200_SM_CLOCK_STEP    15     /* MHz between supported graphics clocks */
#define UTIL_SAMPLE_PERIOD_US 167000 /* us, encoder/decoder sampling period */

#define ENTER(member)                                                                              \
        do {                                                                                       \
                nvmlReturn_t _e = fake_engine_enter(FAKE_CALL_##member, 0);                        \
                if (_e != NVML_SUCCESS)                                                            \
                        return _e;                                                                 \
        } while (0)

/* Enter, then resolve the handle (INVALID_ARGUMENT, GPU_IS_LOST) into gpu. */
#define ENTER_DEV(member, dev, gpu)                                                                \
        do {                                                                                       \
                nvmlReturn_t _d;                                                                   \
                ENTER(member);                                                                     \
                _d = fake_engine_dev((dev), &(gpu));                                               \
                if (_d != NVML_SUCCESS)                                                            \
                        return _d;                                                                 \
        } while (0)

static unsigned to_u32(double v)
{
        if (!(v > 0))
                return 0;
        if (v >= (double)UINT_MAX)
                return UINT_MAX;
        return (unsigned)llround(v);
}

static unsigned long long to_u64(double v)
{
        if (!(v > 0))
                return 0;
        if (v >= 1.8e19)
                return ULLONG_MAX;
        return (unsigned long long)llround(v);
}

/* Read one field into *v (DCGM unit). */
static nvmlReturn_t read1(unsigned gpu, unsigned field, double *v)
{
        return fake_engine_read(gpu, &field, 1, v, NULL);
}

static nvmlReturn_t read_u32(nvmlDevice_t dev, unsigned gpu, unsigned field, double scale,
                             unsigned *out)
{
        double v;
        nvmlReturn_t r;

        (void)dev;
        if (!out)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read1(gpu, field, &v);
        if (r == NVML_SUCCESS)
                *out = to_u32(v * scale);
        return r;
}

static nvmlReturn_t copy_str(const char *s, char *buf, unsigned int length)
{
        if (!buf)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (strlen(s) + 1 > length)
                return NVML_ERROR_INSUFFICIENT_SIZE;
        memcpy(buf, s, strlen(s) + 1);
        return NVML_SUCCESS;
}

/* ---- library ---- */

nvmlReturn_t nvmlInit_v2(void)
{
        return fake_engine_init();
}
ALIAS(init, nvmlInit, nvmlInit_v2);

nvmlReturn_t nvmlShutdown(void)
{
        return fake_engine_shutdown();
}

static const char *const error_strings[] = {
    [NVML_SUCCESS] = "Success",
    [NVML_ERROR_UNINITIALIZED] = "Uninitialized",
    [NVML_ERROR_INVALID_ARGUMENT] = "Invalid Argument",
    [NVML_ERROR_NOT_SUPPORTED] = "Not Supported",
    [NVML_ERROR_NO_PERMISSION] = "Insufficient Permissions",
    [NVML_ERROR_ALREADY_INITIALIZED] = "Already Initialized",
    [NVML_ERROR_NOT_FOUND] = "Not Found",
    [NVML_ERROR_INSUFFICIENT_SIZE] = "Insufficient Size",
    [NVML_ERROR_INSUFFICIENT_POWER] = "Insufficient External Power",
    [NVML_ERROR_DRIVER_NOT_LOADED] = "Driver Not Loaded",
    [NVML_ERROR_TIMEOUT] = "Timeout",
    [NVML_ERROR_IRQ_ISSUE] = "Interrupt Request Issue",
    [NVML_ERROR_LIBRARY_NOT_FOUND] = "NVML Shared Library Not Found",
    [NVML_ERROR_FUNCTION_NOT_FOUND] = "Function Not Found",
    [NVML_ERROR_CORRUPTED_INFOROM] = "Corrupted infoROM",
    [NVML_ERROR_GPU_IS_LOST] = "GPU is lost",
    [NVML_ERROR_RESET_REQUIRED] = "GPU requires restart",
    [NVML_ERROR_OPERATING_SYSTEM] = "GPU access blocked by the operating system",
    [NVML_ERROR_LIB_RM_VERSION_MISMATCH] = "Driver/library version mismatch",
    [NVML_ERROR_IN_USE] = "In use by another client",
    [NVML_ERROR_MEMORY] = "Insufficient Memory",
    [NVML_ERROR_NO_DATA] = "No data",
    [NVML_ERROR_VGPU_ECC_NOT_SUPPORTED] = "ECC is not supported on vGPU",
    [NVML_ERROR_INSUFFICIENT_RESOURCES] = "Insufficient resources",
    [NVML_ERROR_FREQ_NOT_SUPPORTED] = "Frequency not supported",
    [NVML_ERROR_ARGUMENT_VERSION_MISMATCH] = "Argument version mismatch",
    [NVML_ERROR_DEPRECATED] = "Deprecated",
    [NVML_ERROR_NOT_READY] = "Not ready",
    [NVML_ERROR_GPU_NOT_FOUND] = "GPU not found",
    [NVML_ERROR_INVALID_STATE] = "Invalid state",
};

const char *nvmlErrorString(nvmlReturn_t result)
{
        if ((unsigned)result < ARRAY_SIZE(error_strings) && error_strings[result])
                return error_strings[result];
        return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
        ENTER(system_driver_version);
        return copy_str(fake_engine_scenario()->driver_version, version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
        ENTER(system_nvml_version);
        return copy_str(fake_engine_scenario()->nvml_version, version, length);
}

/* ---- discovery and identity ---- */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
        ENTER(device_count);
        if (!count)
                return NVML_ERROR_INVALID_ARGUMENT;
        *count = fake_engine_gpu_count();
        return NVML_SUCCESS;
}
ALIAS(device_count, nvmlDeviceGetCount, nvmlDeviceGetCount_v2);

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER(handle_by_index);
        if (!device || index >= fake_engine_gpu_count())
                return NVML_ERROR_INVALID_ARGUMENT;
        r = fake_engine_dev(&fake_devices[index], &gpu);
        if (r == NVML_SUCCESS)
                *device = &fake_devices[index];
        return r;
}
ALIAS(handle_by_index, nvmlDeviceGetHandleByIndex, nvmlDeviceGetHandleByIndex_v2);

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
        unsigned n, gpu;

        ENTER(handle_by_uuid);
        if (!uuid || !device)
                return NVML_ERROR_INVALID_ARGUMENT;
        n = fake_engine_gpu_count();
        for (unsigned i = 0; i < n; i++)
                if (strcmp(fake_engine_gpu(i)->uuid, uuid) == 0) {
                        nvmlReturn_t r = fake_engine_dev(&fake_devices[i], &gpu);
                        if (r == NVML_SUCCESS)
                                *device = &fake_devices[i];
                        return r;
                }
        return NVML_ERROR_NOT_FOUND;
}

/* ---- MIG devices (handles of their own; identity and memory getters take them) ---- */

static char mig_handles[FAKE_GPUS_MAX][FAKE_MIG_MAX]; /* their addresses are the handles */

/* The GPU and instance of a MIG handle; false for any other handle. */
static bool mig_of(nvmlDevice_t dev, unsigned *gpu, unsigned *k)
{
        uintptr_t p = (uintptr_t)dev, base = (uintptr_t)mig_handles;
        size_t i;

        if (!dev || p < base || p >= base + sizeof(mig_handles))
                return false;
        i = p - base;
        *gpu = (unsigned)(i / FAKE_MIG_MAX);
        *k = (unsigned)(i % FAKE_MIG_MAX);
        return *gpu < fake_engine_gpu_count() && *k < fake_engine_gpu(*gpu)->n_mig;
}

static bool mig_on(unsigned gpu)
{
        const struct fake_gpu_conf *g = fake_engine_gpu(gpu);
        return g->n_mig > 0 && fake_engine_time_us() >= g->mig_at_us;
}

/* GPU instance id as an H100/H200 numbers them: 7g → 0, 3g → 1.., 2g → 3.., 1g → 7.. */
static unsigned mig_gi(unsigned gpu, unsigned k)
{
        const struct fake_gpu_conf *g = fake_engine_gpu(gpu);
        unsigned sl = (unsigned)atoi(g->mig[k]), base = sl >= 7 ? 0 : sl >= 3 ? 1 : sl == 2 ? 3 : 7;
        unsigned same = 0;
        for (unsigned j = 0; j < k; j++)
                same += (unsigned)atoi(g->mig[j]) == sl;
        return base + same;
}

/* Memory of an instance: its profile's GB (decimal), used in proportion to the GPU's. */
static void mig_memory(unsigned gpu, unsigned k, unsigned long long *total,
                       unsigned long long *used)
{
        unsigned sl = 0, gb = 0;
        double fb_total = 0, fb_used = 0;

        (void)sscanf(fake_engine_gpu(gpu)->mig[k], "%ug.%ugb", &sl, &gb);
        *total = (unsigned long long)gb * 1000000000ULL;
        if (read1(gpu, FLD_FB_TOTAL, &fb_total) == NVML_SUCCESS &&
            read1(gpu, FLD_FB_USED, &fb_used) == NVML_SUCCESS && fb_total > 0)
                *used = (unsigned long long)((double)*total * (fb_used / fb_total));
        else
                *used = 0;
        if (*used > *total)
                *used = *total;
}

/* An identity string of the GPU's configuration, unless its field is not supported. */
#define IDENTITY(member, dev, field, member_str, buf, length)                                      \
        do {                                                                                       \
                unsigned _g;                                                                       \
                nvmlReturn_t _r;                                                                   \
                ENTER_DEV(member, dev, _g);                                                        \
                if (!(buf))                                                                        \
                        return NVML_ERROR_INVALID_ARGUMENT;                                        \
                _r = fake_engine_supported(_g, field);                                             \
                if (_r != NVML_SUCCESS)                                                            \
                        return _r;                                                                 \
                return copy_str(fake_engine_gpu(_g)->member_str, buf, length);                     \
        } while (0)

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
        unsigned mg, mk;

        if (mig_of(device, &mg, &mk)) {
                char n[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
                ENTER(name);
                snprintf(n, sizeof(n), "%.64s MIG %s", fake_engine_gpu(mg)->name,
                         fake_engine_gpu(mg)->mig[mk]);
                return copy_str(n, name, length);
        }
        IDENTITY(name, device, FLD_NAME, name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
        unsigned mg, mk;

        if (mig_of(device, &mg, &mk)) {
                char u[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
                ENTER(uuid);
                /* MIG-<the GPU's UUID digits with the instance in the last group> */
                snprintf(u, sizeof(u), "MIG-%.32s%04x", fake_engine_gpu(mg)->uuid + 4,
                         mig_gi(mg, mk));
                return copy_str(u, uuid, length);
        }
        IDENTITY(uuid, device, FLD_UUID, uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
        IDENTITY(serial, device, FLD_SERIAL, serial, serial, length);
}

nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length)
{
        IDENTITY(vbios_version, device, FLD_VBIOS_VERSION, vbios, version, length);
}

nvmlReturn_t nvmlDeviceGetInforomImageVersion(nvmlDevice_t device, char *version,
                                              unsigned int length)
{
        IDENTITY(inforom_image_version, device, FLD_INFOROM_IMAGE_VER, inforom, version, length);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
        const struct fake_gpu_conf *g;
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(pci_info, device, gpu);
        if (!pci)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = fake_engine_supported(gpu, FLD_PCI_BUSID);
        if (r != NVML_SUCCESS)
                return r;
        g = fake_engine_gpu(gpu);
        memset(pci, 0, sizeof(*pci));
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0",
                 g->pci_domain & 0xffff, g->pci_bus, g->pci_device);
        snprintf(pci->busId, sizeof(pci->busId), "%s", g->bus_id);
        pci->domain = g->pci_domain;
        pci->bus = g->pci_bus;
        pci->device = g->pci_device;
        pci->pciDeviceId = g->pci_device_id;
        pci->pciSubSystemId = g->pci_subsystem_id;
        return NVML_SUCCESS;
}
ALIAS(pci_info, nvmlDeviceGetPciInfo_v2, nvmlDeviceGetPciInfo_v3);

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor)
{
        unsigned gpu;

        ENTER_DEV(minor_number, device, gpu);
        return read_u32(device, gpu, FLD_MINOR_NUMBER, 1, minor);
}

nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t device, int *type)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(brand, device, gpu);
        if (!type)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = fake_engine_supported(gpu, FLD_BRAND);
        if (r == NVML_SUCCESS)
                *type = NVML_BRAND_NVIDIA;
        return r;
}

nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device,
                                               nvmlTemperatureThresholds_t type, unsigned int *temp)
{
        unsigned gpu;

        ENTER_DEV(temperature_threshold, device, gpu);
        if (!temp)
                return NVML_ERROR_INVALID_ARGUMENT;
        switch (type) {
        case NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
                return read_u32(device, gpu, FLD_SHUTDOWN_TEMP, 1, temp);
        case NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
                return read_u32(device, gpu, FLD_SLOWDOWN_TEMP, 1, temp);
        case NVML_TEMPERATURE_THRESHOLD_MEM_MAX:
                *temp = H200_MEM_MAX_TEMP;
                return NVML_SUCCESS;
        case NVML_TEMPERATURE_THRESHOLD_GPU_MAX:
                *temp = H200_GPU_MAX_TEMP;
                return NVML_SUCCESS;
        default:
                return NVML_ERROR_INVALID_ARGUMENT;
        }
}

nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, unsigned int *limit_mw)
{
        unsigned gpu;

        ENTER_DEV(power_default_limit, device, gpu);
        return read_u32(device, gpu, FLD_POWER_LIMIT_DEFAULT, 1000, limit_mw);
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen)
{
        unsigned gpu;

        ENTER_DEV(max_pcie_gen, device, gpu);
        return read_u32(device, gpu, FLD_PCIE_MAX_LINK_GEN, 1, gen);
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *width)
{
        unsigned gpu;

        ENTER_DEV(max_pcie_width, device, gpu);
        return read_u32(device, gpu, FLD_PCIE_MAX_LINK_WIDTH, 1, width);
}

/* ---- field values ---- */

/* NVML field id -> DCGM field, unit factor, and the value type NVML reports: the rows of
 * nvml/getters.def, the table the backend reads with, so that what the fake answers through
 * nvmlDeviceGetFieldValues and what the backend asks for cannot drift. Rows without a FieldValues
 * id (nvml_id 0) are never matched. */
static const struct {
        unsigned nvml_id;     /* NVML_FI_*, 0 when the field has no FieldValues id */
        unsigned field;       /* FLD_* */
        double scale;         /* DCGM unit -> NVML unit */
        nvmlValueType_t type; /* reported type */
} fv_map[] = {
#define NVML_READ(fld, fi, fv_type, getter, slot, conv)                                            \
        {fi, FLD_##fld, NVML_CONV_SCALE_##conv, NVML_VALUE_TYPE_##fv_type},
#include "nvml/getters.def"
};

static bool nvlink_field(unsigned gpu, nvmlFieldValue_t *fv);

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values)
{
        long long ts = time_real_us();
        unsigned gpu;
        nvmlReturn_t r;

        r = fake_engine_enter(FAKE_CALL_field_values,
                              count > 0 && values ? fake_engine_fv_cost(values, count) : 0);
        if (r != NVML_SUCCESS)
                return r;
        if (fake_engine_dev_index(device) < 0 || !values || count < 0)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = fake_engine_dev(device, &gpu);
        for (int i = 0; i < count; i++) {
                nvmlFieldValue_t *fv = &values[i];
                double v = 0;
                size_t m;

                fv->timestamp = ts;
                fv->latencyUsec = 0;
                memset(&fv->value, 0, sizeof(fv->value));
                if (r != NVML_SUCCESS) {
                        fv->nvmlReturn = r;
                        continue;
                }
                if (nvlink_field(gpu, fv)) /* the NVLink ids, per link (scopeId) */
                        continue;
                for (m = 0; m < ARRAY_SIZE(fv_map) &&
                            (!fv_map[m].nvml_id || fv_map[m].nvml_id != fv->fieldId);
                     m++)
                        ;
                if (m == ARRAY_SIZE(fv_map) || fv->scopeId != 0) {
                        fv->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
                        continue;
                }
                fv->nvmlReturn = read1(gpu, fv_map[m].field, &v);
                if (fv->nvmlReturn != NVML_SUCCESS)
                        continue;
                fv->valueType = fv_map[m].type;
                if (fv_map[m].type == NVML_VALUE_TYPE_UNSIGNED_INT)
                        fv->value.uiVal = to_u32(v * fv_map[m].scale);
                else
                        fv->value.ullVal = to_u64(v * fv_map[m].scale);
        }
        /* NVML reports a lost GPU for the call as a whole, and per entry. */
        return r;
}

/* ---- fast tier ---- */

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensor,
                                      unsigned int *temp)
{
        unsigned gpu;

        ENTER_DEV(temperature, device, gpu);
        if (sensor != NVML_TEMPERATURE_GPU)
                return NVML_ERROR_INVALID_ARGUMENT;
        return read_u32(device, gpu, FLD_GPU_TEMP, 1, temp);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power_mw)
{
        unsigned gpu;

        ENTER_DEV(power_usage, device, gpu);
        return read_u32(device, gpu, FLD_POWER_USAGE, 1000, power_mw);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util)
{
        static const unsigned f[] = {FLD_GPU_UTIL, FLD_MEM_COPY_UTIL};
        double v[2];
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(utilization, device, gpu);
        if (!util)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = fake_engine_read(gpu, f, 2, v, NULL);
        if (r == NVML_SUCCESS) {
                util->gpu = MIN(to_u32(v[0]), 100U);
                util->memory = MIN(to_u32(v[1]), 100U);
        }
        return r;
}

/* total, reserved, used in bytes, with free = total - reserved - used (never negative). */
static nvmlReturn_t memory(unsigned gpu, unsigned long long *total, unsigned long long *reserved,
                           unsigned long long *used, unsigned long long *free_b)
{
        static const unsigned f[] = {FLD_FB_TOTAL, FLD_FB_RESERVED, FLD_FB_USED, FLD_FB_FREE};
        double v[4];
        nvmlReturn_t r = fake_engine_read(gpu, f, 4, v, NULL);

        if (r != NVML_SUCCESS)
                return r;
        *total = to_u64(v[0] * 1048576.0);
        *reserved = MIN(to_u64(v[1] * 1048576.0), *total);
        *used = MIN(to_u64(v[2] * 1048576.0), *total - *reserved);
        *free_b = *total - *reserved - *used;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *mem)
{
        unsigned long long total, reserved, used, free_b;
        unsigned gpu, mk;
        nvmlReturn_t r;

        if (mig_of(device, &gpu, &mk)) {
                ENTER(memory_info_v2);
                if (!mem)
                        return NVML_ERROR_INVALID_ARGUMENT;
                if (mem->version != nvmlMemory_v2)
                        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
                mig_memory(gpu, mk, &total, &used);
                mem->total = total;
                mem->reserved = 0;
                mem->used = used;
                mem->free = total - used;
                return NVML_SUCCESS;
        }
        ENTER_DEV(memory_info_v2, device, gpu);
        if (!mem)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (mem->version != nvmlMemory_v2)
                return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        r = memory(gpu, &total, &reserved, &used, &free_b);
        if (r == NVML_SUCCESS) {
                mem->total = total;
                mem->reserved = reserved;
                mem->used = used;
                mem->free = free_b;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *mem)
{
        unsigned long long total, reserved, used, free_b;
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(memory_info, device, gpu);
        if (!mem)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = memory(gpu, &total, &reserved, &used, &free_b);
        if (r == NVML_SUCCESS) {
                /* v1 has no reserved: it counts as used, so used + free == total. */
                mem->total = total;
                mem->free = free_b;
                mem->used = used + reserved;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *mhz)
{
        unsigned gpu;

        ENTER_DEV(clock_info, device, gpu);
        switch (type) {
        case NVML_CLOCK_GRAPHICS:
        case NVML_CLOCK_SM:
                return read_u32(device, gpu, FLD_SM_CLOCK, 1, mhz);
        case NVML_CLOCK_MEM:
                return read_u32(device, gpu, FLD_MEM_CLOCK, 1, mhz);
        case NVML_CLOCK_VIDEO:
                if (!mhz)
                        return NVML_ERROR_INVALID_ARGUMENT;
                *mhz = H200_VIDEO_CLOCK; /* no DCGM field carries it */
                return NVML_SUCCESS;
        default:
                return NVML_ERROR_INVALID_ARGUMENT;
        }
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                    unsigned long long *reasons)
{
        unsigned gpu;
        double v;
        nvmlReturn_t r;

        ENTER_DEV(clocks_event_reasons, device, gpu);
        if (!reasons)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read1(gpu, FLD_CLOCKS_EVENT_REASONS, &v);
        if (r == NVML_SUCCESS)
                *reasons = to_u64(v);
        return r;
}
ALIAS(clocks_event_reasons, nvmlDeviceGetCurrentClocksThrottleReasons,
      nvmlDeviceGetCurrentClocksEventReasons);

nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, nvmlPstates_t *pstate)
{
        unsigned gpu, p;
        nvmlReturn_t r;

        ENTER_DEV(performance_state, device, gpu);
        if (!pstate)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read_u32(device, gpu, FLD_PSTATE, 1, &p);
        if (r == NVML_SUCCESS)
                *pstate = p <= 15 ? (nvmlPstates_t)p : NVML_PSTATE_UNKNOWN;
        return r;
}

static nvmlReturn_t codec_util(unsigned gpu, unsigned field, unsigned int *util,
                               unsigned int *period_us)
{
        nvmlReturn_t r;

        if (!util || !period_us)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read_u32(NULL, gpu, field, 1, util);
        if (r == NVML_SUCCESS) {
                *util = MIN(*util, 100U);
                *period_us = UTIL_SAMPLE_PERIOD_US;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *util,
                                             unsigned int *period_us)
{
        unsigned gpu;

        ENTER_DEV(encoder_utilization, device, gpu);
        return codec_util(gpu, FLD_ENC_UTIL, util, period_us);
}

nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *util,
                                             unsigned int *period_us)
{
        unsigned gpu;

        ENTER_DEV(decoder_utilization, device, gpu);
        return codec_util(gpu, FLD_DEC_UTIL, util, period_us);
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corr, unsigned int *unc,
                                       unsigned int *pending, unsigned int *failed)
{
        static const unsigned f[] = {FLD_CORRECTABLE_REMAPPED_ROWS, FLD_UNCORRECTABLE_REMAPPED_ROWS,
                                     FLD_ROW_REMAP_PENDING, FLD_ROW_REMAP_FAILURE};
        double v[4];
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(remapped_rows, device, gpu);
        if (!corr || !unc || !pending || !failed)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = fake_engine_read(gpu, f, 4, v, NULL);
        if (r == NVML_SUCCESS) {
                *corr = to_u32(v[0]);
                *unc = to_u32(v[1]);
                *pending = to_u32(v[2]) ? 1 : 0;
                *failed = to_u32(v[3]) ? 1 : 0;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t type,
                                         nvmlEccCounterType_t counter, unsigned long long *count)
{
        unsigned gpu, field;
        double v;
        nvmlReturn_t r;

        ENTER_DEV(total_ecc_errors, device, gpu);
        if (!count ||
            (type != NVML_MEMORY_ERROR_TYPE_CORRECTED &&
             type != NVML_MEMORY_ERROR_TYPE_UNCORRECTED) ||
            (counter != NVML_VOLATILE_ECC && counter != NVML_AGGREGATE_ECC))
                return NVML_ERROR_INVALID_ARGUMENT;
        if (type == NVML_MEMORY_ERROR_TYPE_CORRECTED)
                field =
                    counter == NVML_VOLATILE_ECC ? FLD_ECC_SBE_VOL_TOTAL : FLD_ECC_SBE_AGG_TOTAL;
        else
                field =
                    counter == NVML_VOLATILE_ECC ? FLD_ECC_DBE_VOL_TOTAL : FLD_ECC_DBE_AGG_TOTAL;
        r = read1(gpu, field, &v);
        if (r == NVML_SUCCESS)
                *count = to_u64(v);
        return r;
}

/* ---- slow tier ---- */

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy_mj)
{
        unsigned gpu;
        double v;
        nvmlReturn_t r;

        ENTER_DEV(total_energy, device, gpu);
        if (!energy_mj)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read1(gpu, FLD_TOTAL_ENERGY_CONSUMPTION, &v);
        if (r == NVML_SUCCESS)
                *energy_mj = to_u64(v);
        return r;
}

nvmlReturn_t nvmlDeviceGetViolationStatus(nvmlDevice_t device, nvmlPerfPolicyType_t policy,
                                          nvmlViolationTime_t *time)
{
        static const unsigned by_policy[] = {
            [NVML_PERF_POLICY_POWER] = FLD_POWER_VIOLATION,
            [NVML_PERF_POLICY_THERMAL] = FLD_THERMAL_VIOLATION,
            [NVML_PERF_POLICY_SYNC_BOOST] = FLD_SYNC_BOOST_VIOLATION,
            [NVML_PERF_POLICY_BOARD_LIMIT] = FLD_BOARD_LIMIT_VIOLATION,
            [NVML_PERF_POLICY_LOW_UTILIZATION] = FLD_LOW_UTIL_VIOLATION,
            [NVML_PERF_POLICY_RELIABILITY] = FLD_RELIABILITY_VIOLATION,
        };
        unsigned gpu;
        double v;
        nvmlReturn_t r;

        ENTER_DEV(violation_status, device, gpu);
        if (!time)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (policy == NVML_PERF_POLICY_TOTAL_APP_CLOCKS ||
            policy == NVML_PERF_POLICY_TOTAL_BASE_CLOCKS)
                return NVML_ERROR_NOT_SUPPORTED;
        if ((unsigned)policy >= ARRAY_SIZE(by_policy))
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read1(gpu, by_policy[policy], &v);
        if (r == NVML_SUCCESS) {
                time->referenceTime = (unsigned long long)time_real_us();
                time->violationTime = to_u64(v);
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t device, unsigned int *value)
{
        unsigned gpu;

        ENTER_DEV(pcie_replay_counter, device, gpu);
        return read_u32(device, gpu, FLD_PCIE_REPLAY_COUNTER, 1, value);
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen)
{
        unsigned gpu;

        ENTER_DEV(curr_pcie_gen, device, gpu);
        return read_u32(device, gpu, FLD_PCIE_LINK_GEN, 1, gen);
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *width)
{
        unsigned gpu;

        ENTER_DEV(curr_pcie_width, device, gpu);
        return read_u32(device, gpu, FLD_PCIE_LINK_WIDTH, 1, width);
}

nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device, nvmlPcieUtilCounter_t counter,
                                         unsigned int *kb_per_s)
{
        unsigned gpu;

        ENTER_DEV(pcie_throughput, device, gpu);
        if (counter == NVML_PCIE_UTIL_TX_BYTES)
                return read_u32(device, gpu, FLD_PROF_PCIE_TX_BYTES, 1.0 / 1024, kb_per_s);
        if (counter == NVML_PCIE_UTIL_RX_BYTES)
                return read_u32(device, gpu, FLD_PROF_PCIE_RX_BYTES, 1.0 / 1024, kb_per_s);
        return NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit_mw)
{
        unsigned gpu;

        ENTER_DEV(power_limit, device, gpu);
        return read_u32(device, gpu, FLD_POWER_LIMIT, 1000, limit_mw);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit_mw)
{
        unsigned gpu;

        ENTER_DEV(enforced_power_limit, device, gpu);
        return read_u32(device, gpu, FLD_ENFORCED_POWER_LIMIT, 1000, limit_mw);
}

static nvmlReturn_t read_state(unsigned gpu, unsigned field, nvmlEnableState_t *out)
{
        double v;
        nvmlReturn_t r;

        if (!out)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read1(gpu, field, &v);
        if (r == NVML_SUCCESS)
                *out = v >= 0.5 ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
        return r;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
        unsigned gpu;

        ENTER_DEV(persistence_mode, device, gpu);
        return read_state(gpu, FLD_PERSISTENCE_MODE, mode);
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current,
                                  nvmlEnableState_t *pending)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(ecc_mode, device, gpu);
        if (!current || !pending)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read_state(gpu, FLD_ECC_CURRENT, current);
        if (r == NVML_SUCCESS) {
                struct fake_cfg_state c;
                fake_engine_cfg_get(gpu, &c); /* nvmlDeviceSetEccMode: until the next reset */
                *pending = c.ecc_pending >= 0 ? (nvmlEnableState_t)c.ecc_pending : *current;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, nvmlComputeMode_t *mode)
{
        unsigned gpu, v = 0;
        nvmlReturn_t r;

        ENTER_DEV(compute_mode, device, gpu);
        if (!mode)
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read_u32(device, gpu, FLD_COMPUTE_MODE, 1, &v);
        if (r == NVML_SUCCESS)
                *mode = (nvmlComputeMode_t)v;
        return r;
}

nvmlReturn_t nvmlDeviceGetApplicationsClock(nvmlDevice_t device, nvmlClockType_t type,
                                            unsigned int *mhz)
{
        unsigned gpu;

        ENTER_DEV(applications_clock, device, gpu);
        if (type == NVML_CLOCK_SM)
                return read_u32(device, gpu, FLD_APP_SM_CLOCK, 1, mhz);
        if (type == NVML_CLOCK_MEM)
                return read_u32(device, gpu, FLD_APP_MEM_CLOCK, 1, mhz);
        return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, nvmlPageRetirementCause_t cause,
                                       unsigned int *count, unsigned long long *addresses)
{
        unsigned gpu, n;
        nvmlReturn_t r;

        ENTER_DEV(retired_pages, device, gpu);
        if (!count || (cause != NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS &&
                       cause != NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR))
                return NVML_ERROR_INVALID_ARGUMENT;
        r = read_u32(device, gpu,
                     cause == NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR ? FLD_RETIRED_DBE
                                                                              : FLD_RETIRED_SBE,
                     1, &n);
        if (r != NVML_SUCCESS)
                return r;
        if (*count < n) {
                *count = n; /* as NVML: the size needed */
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        if (n && !addresses)
                return NVML_ERROR_INVALID_ARGUMENT;
        /* The fake keeps counts only; addresses are plausible, distinct 2 MiB-aligned pages. */
        for (unsigned i = 0; i < n; i++)
                addresses[i] =
                    ((unsigned long long)(cause + 1) << 32) + (unsigned long long)i * 0x200000;
        *count = n;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, nvmlEnableState_t *pending)
{
        unsigned gpu;

        ENTER_DEV(retired_pages_pending, device, gpu);
        return read_state(gpu, FLD_RETIRED_PENDING, pending);
}

/* Is a scripted process running at scenario time now? */
static bool proc_alive(const struct fake_proc *fp, int64_t now)
{
        return now >= fp->from_us && (!fp->until_us || now < fp->until_us);
}

/* The running-process lists, with NVML's answers: INSUFFICIENT_SIZE and the count when the buffer
 * is too small (or NULL with processes running), no entries written then. Scripted processes
 * (per_gpu.processes as a list) or, with processes: N, N anonymous compute processes of 1 GiB. */
static nvmlReturn_t running_processes(unsigned gpu, bool graphics, unsigned int *count,
                                      nvmlProcessInfo_t *infos)
{
        const struct fake_gpu_conf *g = fake_engine_gpu(gpu);
        int64_t now = fake_engine_now_us();
        unsigned n = 0, cap;

        if (!count)
                return NVML_ERROR_INVALID_ARGUMENT;
        cap = *count;
        if (g && g->n_procs) {
                for (unsigned i = 0; i < g->n_procs; i++) {
                        const struct fake_proc *fp = &g->procs[i];
                        if (proc_alive(fp, now) && (graphics ? fp->graphics : fp->compute))
                                n++;
                }
        } else if (g && !graphics) {
                n = g->processes; /* per_gpu: {N: {processes: K}} */
        }
        *count = n;
        if (n > cap || (n && !infos))
                return NVML_ERROR_INSUFFICIENT_SIZE; /* NVML's answer: the count, no entries */
        if (g && g->n_procs) {
                unsigned k = 0;
                for (unsigned i = 0; i < g->n_procs; i++) {
                        const struct fake_proc *fp = &g->procs[i];
                        if (!proc_alive(fp, now) || !(graphics ? fp->graphics : fp->compute))
                                continue;
                        infos[k++] = (nvmlProcessInfo_t){.pid = fp->pid,
                                                         .usedGpuMemory = fp->mem_bytes,
                                                         .gpuInstanceId = fp->gi,
                                                         .computeInstanceId = fp->ci};
                }
                return NVML_SUCCESS;
        }
        for (unsigned i = 0; i < n; i++)
                infos[i] = (nvmlProcessInfo_t){.pid = 100000 + gpu * 1000 + i,
                                               .usedGpuMemory = 1ULL << 30,
                                               .gpuInstanceId = 0xFFFFFFFFu,
                                               .computeInstanceId = 0xFFFFFFFFu};
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos)
{
        unsigned gpu;

        ENTER_DEV(compute_processes, device, gpu);
        return running_processes(gpu, false, count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                      nvmlProcessInfo_t *infos)
{
        unsigned gpu;

        ENTER_DEV(graphics_processes, device, gpu);
        return running_processes(gpu, true, count, infos);
}

/* One sample per running scripted process that has utilisation, stamped now (wall clock, usec,
 * as NVML's CPU timestamps): samples not newer than lastSeen are left out, and none at all is
 * NOT_FOUND, as NVML answers. NULL utilization asks for the count (INSUFFICIENT_SIZE). */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount,
                                             unsigned long long lastSeenTimeStamp)
{
        const struct fake_gpu_conf *g;
        unsigned gpu, n = 0, cap, k = 0;
        int64_t now;
        unsigned long long ts = (unsigned long long)time_real_us();

        ENTER_DEV(process_utilization, device, gpu);
        if (!processSamplesCount)
                return NVML_ERROR_INVALID_ARGUMENT;
        g = fake_engine_gpu(gpu);
        now = fake_engine_now_us();
        for (unsigned i = 0; g && i < g->n_procs; i++)
                if (proc_alive(&g->procs[i], now) && g->procs[i].util && ts > lastSeenTimeStamp)
                        n++;
        if (!n)
                return NVML_ERROR_NOT_FOUND;
        cap = *processSamplesCount;
        *processSamplesCount = n;
        if (!utilization || n > cap)
                return NVML_ERROR_INSUFFICIENT_SIZE;
        for (unsigned i = 0; i < g->n_procs; i++) {
                const struct fake_proc *fp = &g->procs[i];
                if (!proc_alive(fp, now) || !fp->util)
                        continue;
                utilization[k++] = (nvmlProcessUtilizationSample_t){.pid = fp->pid,
                                                                    .timeStamp = ts,
                                                                    .smUtil = fp->sm,
                                                                    .memUtil = fp->mem,
                                                                    .encUtil = fp->enc,
                                                                    .decUtil = fp->dec};
        }
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetAccountingMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
        const struct fake_gpu_conf *g;
        unsigned gpu;

        ENTER_DEV(accounting_mode, device, gpu);
        if (!mode)
                return NVML_ERROR_INVALID_ARGUMENT;
        g = fake_engine_gpu(gpu);
        *mode = g && g->accounting ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
        return NVML_SUCCESS;
}

/* Accounting keeps ended processes too (isRunning 0, time = how long it ran); a PID never seen is
 * NOT_FOUND; accounting mode off is NOT_SUPPORTED, as NVML documents. */
nvmlReturn_t nvmlDeviceGetAccountingStats(nvmlDevice_t device, unsigned int pid,
                                          nvmlAccountingStats_t *stats)
{
        const struct fake_gpu_conf *g;
        const struct fake_proc *best = NULL;
        unsigned gpu;
        int64_t now, wall, start;

        ENTER_DEV(accounting_stats, device, gpu);
        if (!stats)
                return NVML_ERROR_INVALID_ARGUMENT;
        g = fake_engine_gpu(gpu);
        if (!g || !g->accounting)
                return NVML_ERROR_NOT_SUPPORTED;
        now = fake_engine_now_us();
        for (unsigned i = 0; i < g->n_procs; i++) {
                const struct fake_proc *fp = &g->procs[i];
                if (fp->pid != pid || fp->from_us > now)
                        continue;
                if (!best || fp->from_us > best->from_us)
                        best = fp; /* the latest process that had this PID */
        }
        if (!best)
                return NVML_ERROR_NOT_FOUND;
        wall = time_real_us();
        start = wall - (now - best->from_us);
        memset(stats, 0, sizeof(*stats));
        stats->gpuUtilization = best->sm;
        stats->memoryUtilization = best->mem;
        stats->maxMemoryUsage = best->mem_bytes;
        stats->startTime = (unsigned long long)(start > 0 ? start : 0);
        stats->isRunning = proc_alive(best, now);
        if (!stats->isRunning)
                stats->time = (unsigned long long)((best->until_us - best->from_us) / 1000);
        return NVML_SUCCESS;
}

/* ---- events ---- */

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set)
{
        ENTER(event_set_create);
        if (!set)
                return NVML_ERROR_INVALID_ARGUMENT;
        return fake_engine_event_set_create(set);
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types)
{
        unsigned gpu;

        ENTER_DEV(supported_event_types, device, gpu);
        if (!types)
                return NVML_ERROR_INVALID_ARGUMENT;
        *types = FAKE_EVENT_TYPES;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types,
                                      nvmlEventSet_t set)
{
        unsigned gpu;

        ENTER_DEV(register_events, device, gpu);
        if (!set)
                return NVML_ERROR_INVALID_ARGUMENT;
        return fake_engine_register(gpu, types, set);
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms)
{
        ENTER(event_set_wait);
        if (!set || !data)
                return NVML_ERROR_INVALID_ARGUMENT;
        return fake_engine_wait(set, data, timeout_ms);
}
ALIAS(event_set_wait, nvmlEventSetWait, nvmlEventSetWait_v2);

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)
{
        ENTER(event_set_free);
        if (!set)
                return NVML_ERROR_INVALID_ARGUMENT;
        return fake_engine_event_set_free(set);
}

/* ---- mutators ---- */

/* The setters check as NVML does: the handle, then support (the getter's field unsupported on
 * this GPU → NOT_SUPPORTED), then the caller's rights (`root: false` → NO_PERMISSION), then the
 * value (INVALID_ARGUMENT out of range). */
static nvmlReturn_t may_set(unsigned gpu, unsigned field)
{
        if (fake_engine_supported(gpu, field) != NVML_SUCCESS)
                return NVML_ERROR_NOT_SUPPORTED;
        if (fake_engine_scenario()->not_root)
                return NVML_ERROR_NO_PERMISSION;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceSetPowerManagementLimit(nvmlDevice_t device, unsigned int limit_mw)
{
        unsigned gpu;
        double max_w;
        nvmlReturn_t r;

        ENTER_DEV(set_power_limit, device, gpu);
        r = read1(gpu, FLD_POWER_LIMIT_DEFAULT, &max_w);
        if (r != NVML_SUCCESS)
                return r;
        if ((r = may_set(gpu, FLD_POWER_LIMIT)) != NVML_SUCCESS)
                return r;
        if (limit_mw < H200_POWER_MIN_W * 1000U || limit_mw > to_u32(max_w * 1000))
                return NVML_ERROR_INVALID_ARGUMENT;
        fake_engine_hold(gpu, FLD_POWER_LIMIT, limit_mw / 1000.0);
        fake_engine_hold(gpu, FLD_ENFORCED_POWER_LIMIT, limit_mw / 1000.0);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *min_mw,
                                                          unsigned int *max_mw)
{
        unsigned gpu, max = 0;
        nvmlReturn_t r;

        ENTER_DEV(power_limit_constraints, device, gpu);
        if (!min_mw || !max_mw)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (fake_engine_supported(gpu, FLD_POWER_LIMIT) != NVML_SUCCESS)
                return NVML_ERROR_NOT_SUPPORTED;
        r = read_u32(device, gpu, FLD_POWER_LIMIT_DEFAULT, 1000, &max);
        if (r != NVML_SUCCESS)
                return r;
        *min_mw = H200_POWER_MIN_W * 1000U;
        *max_mw = max;
        return NVML_SUCCESS;
}

/* NVML's two-call list convention: too small a buffer answers INSUFFICIENT_SIZE with the count. */
static nvmlReturn_t give_list(const unsigned *v, unsigned n, unsigned int *count, unsigned int *out)
{
        if (!count)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (*count < n || !out) {
                *count = n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        memcpy(out, v, n * sizeof(*v));
        *count = n;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedMemoryClocks(nvmlDevice_t device, unsigned int *count,
                                                unsigned int *mhz)
{
        static const unsigned mem[] = {H200_MEM_CLOCK};
        unsigned gpu;

        ENTER_DEV(supported_memory_clocks, device, gpu);
        if (fake_engine_supported(gpu, FLD_APP_MEM_CLOCK) != NVML_SUCCESS)
                return NVML_ERROR_NOT_SUPPORTED;
        return give_list(mem, ARRAY_SIZE(mem), count, mhz);
}

#define H200_SM_CLOCKS ((H200_SM_CLOCK_MAX - H200_SM_CLOCK_MIN) / H200_SM_CLOCK_STEP + 1)

nvmlReturn_t nvmlDeviceGetSupportedGraphicsClocks(nvmlDevice_t device, unsigned int mem_mhz,
                                                  unsigned int *count, unsigned int *mhz)
{
        unsigned gpu, v[H200_SM_CLOCKS];

        ENTER_DEV(supported_graphics_clocks, device, gpu);
        if (fake_engine_supported(gpu, FLD_APP_SM_CLOCK) != NVML_SUCCESS)
                return NVML_ERROR_NOT_SUPPORTED;
        if (mem_mhz != H200_MEM_CLOCK)
                return NVML_ERROR_NOT_FOUND;
        for (unsigned i = 0; i < H200_SM_CLOCKS; i++) /* highest first, as NVML lists them */
                v[i] = H200_SM_CLOCK_MAX - i * H200_SM_CLOCK_STEP;
        return give_list(v, H200_SM_CLOCKS, count, mhz);
}

static bool sm_clock_supported(unsigned mhz)
{
        return mhz >= H200_SM_CLOCK_MIN && mhz <= H200_SM_CLOCK_MAX &&
               (H200_SM_CLOCK_MAX - mhz) % H200_SM_CLOCK_STEP == 0;
}

nvmlReturn_t nvmlDeviceSetApplicationsClocks(nvmlDevice_t device, unsigned int mem_mhz,
                                             unsigned int sm_mhz)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(set_applications_clocks, device, gpu);
        if ((r = may_set(gpu, FLD_APP_SM_CLOCK)) != NVML_SUCCESS)
                return r;
        if (mem_mhz != H200_MEM_CLOCK || !sm_clock_supported(sm_mhz))
                return NVML_ERROR_INVALID_ARGUMENT;
        fake_engine_hold(gpu, FLD_APP_MEM_CLOCK, mem_mhz);
        fake_engine_hold(gpu, FLD_APP_SM_CLOCK, sm_mhz);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceResetApplicationsClocks(nvmlDevice_t device)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(reset_applications_clocks, device, gpu);
        if ((r = may_set(gpu, FLD_APP_SM_CLOCK)) != NVML_SUCCESS)
                return r;
        fake_engine_release(gpu, FLD_APP_MEM_CLOCK);
        fake_engine_release(gpu, FLD_APP_SM_CLOCK);
        return NVML_SUCCESS;
}

/* Locked clocks: min <= max, both within what the GPU supports. The fake keeps the lock; NVML
 * offers no getter for it. */
static nvmlReturn_t set_lock(nvmlDevice_t device, bool mem, bool on, unsigned lo, unsigned hi)
{
        unsigned gpu;
        struct fake_cfg_state c;
        nvmlReturn_t r;

        r = fake_engine_dev(device, &gpu);
        if (r != NVML_SUCCESS)
                return r;
        if ((r = may_set(gpu, mem ? FLD_MEM_CLOCK : FLD_SM_CLOCK)) != NVML_SUCCESS)
                return r;
        if (on && (lo > hi || (mem ? lo != H200_MEM_CLOCK || hi != H200_MEM_CLOCK
                                   : lo < H200_SM_CLOCK_MIN || hi > H200_SM_CLOCK_MAX)))
                return NVML_ERROR_INVALID_ARGUMENT;
        fake_engine_cfg_get(gpu, &c);
        if (mem) {
                c.mem_locked = on;
                c.mem_lock_min = on ? lo : 0;
                c.mem_lock_max = on ? hi : 0;
        } else {
                c.gpu_locked = on;
                c.gpu_lock_min = on ? lo : 0;
                c.gpu_lock_max = on ? hi : 0;
        }
        fake_engine_cfg_put(gpu, &c);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceSetGpuLockedClocks(nvmlDevice_t device, unsigned int min_mhz,
                                          unsigned int max_mhz)
{
        ENTER(set_gpu_locked_clocks);
        return set_lock(device, false, true, min_mhz, max_mhz);
}

nvmlReturn_t nvmlDeviceResetGpuLockedClocks(nvmlDevice_t device)
{
        ENTER(reset_gpu_locked_clocks);
        return set_lock(device, false, false, 0, 0);
}

nvmlReturn_t nvmlDeviceSetMemoryLockedClocks(nvmlDevice_t device, unsigned int min_mhz,
                                             unsigned int max_mhz)
{
        ENTER(set_memory_locked_clocks);
        return set_lock(device, true, true, min_mhz, max_mhz);
}

nvmlReturn_t nvmlDeviceResetMemoryLockedClocks(nvmlDevice_t device)
{
        ENTER(reset_memory_locked_clocks);
        return set_lock(device, true, false, 0, 0);
}

nvmlReturn_t nvmlDeviceSetComputeMode(nvmlDevice_t device, nvmlComputeMode_t mode)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(set_compute_mode, device, gpu);
        if ((r = may_set(gpu, FLD_COMPUTE_MODE)) != NVML_SUCCESS)
                return r;
        if (mode != NVML_COMPUTEMODE_DEFAULT && mode != NVML_COMPUTEMODE_PROHIBITED &&
            mode != NVML_COMPUTEMODE_EXCLUSIVE_PROCESS)
                return NVML_ERROR_INVALID_ARGUMENT;
        fake_engine_hold(gpu, FLD_COMPUTE_MODE, mode);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceSetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t mode)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(set_persistence_mode, device, gpu);
        if ((r = may_set(gpu, FLD_PERSISTENCE_MODE)) != NVML_SUCCESS)
                return r;
        if (mode != NVML_FEATURE_ENABLED && mode != NVML_FEATURE_DISABLED)
                return NVML_ERROR_INVALID_ARGUMENT;
        fake_engine_hold(gpu, FLD_PERSISTENCE_MODE, mode == NVML_FEATURE_ENABLED);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceSetEccMode(nvmlDevice_t device, nvmlEnableState_t ecc)
{
        unsigned gpu;
        struct fake_cfg_state c;
        nvmlReturn_t r;

        ENTER_DEV(set_ecc_mode, device, gpu);
        if ((r = may_set(gpu, FLD_ECC_CURRENT)) != NVML_SUCCESS)
                return r;
        if (ecc != NVML_FEATURE_ENABLED && ecc != NVML_FEATURE_DISABLED)
                return NVML_ERROR_INVALID_ARGUMENT;
        fake_engine_cfg_get(gpu, &c);
        c.ecc_pending = ecc == NVML_FEATURE_ENABLED; /* takes effect at the next reset */
        fake_engine_cfg_put(gpu, &c);
        return NVML_SUCCESS;
}

/* ---- InfoROM and fabric ---- */

/* INFOROM_VALID 1 (default) → SUCCESS, 0 → CORRUPTED_INFOROM, as NVML answers. */
nvmlReturn_t nvmlDeviceValidateInforom(nvmlDevice_t device)
{
        unsigned gpu;
        double v;
        nvmlReturn_t r;

        ENTER_DEV(validate_inforom, device, gpu);
        r = read1(gpu, FLD_INFOROM_VALID, &v);
        if (r != NVML_SUCCESS)
                return r;
        return v >= 0.5 ? NVML_SUCCESS : NVML_ERROR_CORRUPTED_INFOROM;
}

/* A GPU without NVLink (a PCIe card) has no fabric: NOT_SUPPORTED. Otherwise the state comes from
 * FABRIC_MANAGER_STATUS in DCGM's encoding (1 not started, 2 in progress, 3 success, 4 failure:
 * registration completed with an error) and the health mask from FABRIC_HEALTH_MASK. */
nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t device, nvmlGpuFabricInfo_v2_t *info)
{
        unsigned gpu;
        double st, mask;
        nvmlReturn_t r;

        ENTER_DEV(gpu_fabric_info, device, gpu);
        if (!info)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (info->version != nvmlGpuFabricInfo_v2)
                return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        if (!fake_engine_scenario()->nvlink_links)
                return NVML_ERROR_NOT_SUPPORTED;
        r = read1(gpu, FLD_FABRIC_MANAGER_STATUS, &st);
        if (r == NVML_SUCCESS)
                r = read1(gpu, FLD_FABRIC_HEALTH_MASK, &mask);
        if (r != NVML_SUCCESS)
                return r;
        memset(info->clusterUuid, 0, sizeof(info->clusterUuid));
        info->clusterUuid[0] = 0xc1;
        info->cliqueId = 1;
        info->state = st >= 3   ? NVML_GPU_FABRIC_STATE_COMPLETED
                      : st >= 2 ? NVML_GPU_FABRIC_STATE_IN_PROGRESS
                                : NVML_GPU_FABRIC_STATE_NOT_STARTED;
        info->status = st >= 4 ? NVML_ERROR_UNKNOWN : NVML_SUCCESS;
        info->healthMask = to_u32(mask);
        return NVML_SUCCESS;
}

/* A vGPU guest is what a scenario says by giving VGPU_LICENSE_STATUS a value (1 licensed, 0 not):
 * one enabled vGPU feature in that state. Without it the GPU is bare metal: licensing is not
 * supported (isGridLicenseSupported 0), as NVML answers there. */
nvmlReturn_t nvmlDeviceGetGridLicensableFeatures_v4(nvmlDevice_t device,
                                                    nvmlGridLicensableFeatures_t *features)
{
        const struct fake_gpu_conf *c;
        unsigned gpu;
        double v = 0;
        int idx = field_index(FLD_VGPU_LICENSE_STATUS);
        nvmlReturn_t r;

        ENTER_DEV(grid_licensable_features, device, gpu);
        if (!features)
                return NVML_ERROR_INVALID_ARGUMENT;
        memset(features, 0, sizeof(*features));
        c = fake_engine_gpu(gpu);
        if (!c || idx < 0 || idx >= FAKE_FIELDS_MAX || c->src[idx].kind == SRC_DEFAULT)
                return NVML_SUCCESS; /* isGridLicenseSupported = 0 */
        r = read1(gpu, FLD_VGPU_LICENSE_STATUS, &v);
        if (r != NVML_SUCCESS)
                return r;
        features->isGridLicenseSupported = 1;
        features->licensableFeaturesCount = 1;
        features->gridLicensableFeatures[0].featureCode = 1; /* vGPU */
        features->gridLicensableFeatures[0].featureEnabled = 1;
        features->gridLicensableFeatures[0].featureState = v >= 0.5;
        snprintf(features->gridLicensableFeatures[0].productName,
                 sizeof(features->gridLicensableFeatures[0].productName),
                 "NVIDIA Virtual Compute Server");
        return NVML_SUCCESS;
}

/* ---- GPM (Hopper and newer) ---- */

/* The GPM metrics the fake computes: the GPM rows of nvml/getters.def (the table the backend
 * reads with), each from the scenario source of its DCGM profiling field, converted back to GPM's
 * unit (ratio → percent, B/s → MiB/s). Rows of other getters are in the expansion with metric 0,
 * which no caller asks for; metric ids not in the table answer NOT_SUPPORTED per metric. */
static const struct {
        unsigned metric; /* NVML_GPM_METRIC_*, 0 for a row of another getter */
        unsigned field;  /* FLD_* it is read from */
        double scale;    /* DCGM unit -> GPM unit */
} gpm_rows[] = {
#define NVML_READ(fld, fi, fv_type, getter, slot, conv)                                            \
        {NVML_GETTER_##getter == NVML_GETTER_GPM_METRICS ? (unsigned)(slot) : 0U, FLD_##fld,       \
         NVML_CONV_SCALE_##conv},
#include "nvml/getters.def"
};
#define GPM_N ARRAY_SIZE(gpm_rows) /* samples are indexed by row; rows with metric 0 unused */

/* A sample: the metrics at the instant nvmlGpmSampleGet took it. */
struct nvmlGpmSample_st {
        bool taken;             /* nvmlGpmSampleGet filled it */
        unsigned gpu;           /* GPU it was taken on */
        unsigned long long seq; /* order of samples (1, 2, ...) */
        double val[GPM_N];      /* in GPM's unit, by GPM row */
        nvmlReturn_t rc[GPM_N]; /* SUCCESS or NOT_SUPPORTED, by GPM row */
};

static unsigned long long gpm_seq; /* __atomic */

/* Like NVML: GPM is a device capability. Every GPU with GPM has the graphics activity metric, so
 * a GPU supports GPM unless the scenario lists PROF_GR_ENGINE_ACTIVE as not supported (then it
 * looks like a pre-Hopper GPU); listing other profiling fields makes just those metrics answer
 * NOT_SUPPORTED. */
static bool gpm_supported(unsigned gpu)
{
        return fake_engine_supported(gpu, FLD_PROF_GR_ENGINE_ACTIVE) == NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *support)
{
        unsigned gpu;

        ENTER_DEV(gpm_query_support, device, gpu);
        if (!support)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (support->version != NVML_GPM_SUPPORT_VERSION)
                return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        support->isSupportedDevice = gpm_supported(gpu);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *sample)
{
        ENTER(gpm_sample_alloc);
        if (!sample)
                return NVML_ERROR_INVALID_ARGUMENT;
        *sample = calloc(1, sizeof(**sample));
        return *sample ? NVML_SUCCESS : NVML_ERROR_MEMORY;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample)
{
        ENTER(gpm_sample_free);
        if (!sample)
                return NVML_ERROR_INVALID_ARGUMENT;
        free(sample);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t sample)
{
        unsigned fields[GPM_N], gpu;
        size_t row[GPM_N], n = 0;
        double v[GPM_N] = {0};
        nvmlReturn_t rcs[GPM_N], r;

        ENTER_DEV(gpm_sample_get, device, gpu);
        if (!sample)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!gpm_supported(gpu))
                return NVML_ERROR_NOT_SUPPORTED;
        for (size_t k = 0; k < GPM_N; k++)
                if (gpm_rows[k].metric) {
                        row[n] = k;
                        fields[n++] = gpm_rows[k].field;
                }
        r = fake_engine_read(gpu, fields, n, v, rcs);
        if (r != NVML_SUCCESS)
                return r;
        for (size_t j = 0; j < n; j++) {
                sample->val[row[j]] = v[j] * gpm_rows[row[j]].scale;
                sample->rc[row[j]] = rcs[j];
        }
        sample->gpu = gpu;
        sample->seq = __atomic_add_fetch(&gpm_seq, 1, __ATOMIC_RELAXED);
        sample->taken = true;
        return NVML_SUCCESS;
}

/* Each metric is the value at sample2, the end of the interval (the fake's sources have no
 * counters to difference). Two samples of one GPU, sample1 taken before sample2, as NVML needs. */
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *mg)
{
        const struct nvmlGpmSample_st *s1, *s2;

        ENTER(gpm_metrics_get);
        if (!mg)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (mg->version != NVML_GPM_METRICS_GET_VERSION)
                return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        s1 = mg->sample1;
        s2 = mg->sample2;
        if (mg->numMetrics == 0 || mg->numMetrics > NVML_GPM_METRIC_MAX || !s1 || !s2 ||
            !s1->taken || !s2->taken || s1->gpu != s2->gpu || s1->seq >= s2->seq)
                return NVML_ERROR_INVALID_ARGUMENT;
        for (unsigned i = 0; i < mg->numMetrics; i++) {
                nvmlGpmMetric_t *m = &mg->metrics[i];
                size_t k;

                for (k = 0; k < GPM_N && (!m->metricId || gpm_rows[k].metric != m->metricId); k++)
                        ;
                m->value = 0;
                memset(&m->metricInfo, 0, sizeof(m->metricInfo));
                if (k == GPM_N) {
                        m->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
                        continue;
                }
                m->nvmlReturn = s2->rc[k];
                if (m->nvmlReturn == NVML_SUCCESS)
                        m->value = s2->val[k];
                /* NVML owns these strings; ours are the catalog's, as long-lived. */
                m->metricInfo.shortName = (char *)field_by_id(gpm_rows[k].field)->dcgm_name;
                m->metricInfo.longName = (char *)field_by_id(gpm_rows[k].field)->help;
                m->metricInfo.unit = gpm_rows[k].scale == NVML_CONV_SCALE_PCT ? "%" : "MiB/s";
        }
        return NVML_SUCCESS;
}

/* ---- NVLink (an HGX board: every link to an NVSwitch) ---- */

/* The four NVSwitches of an HGX H100/H200 baseboard; link l of every GPU goes to switch
 * l * 4 / links (5, 4, 5, 4 links per switch for 18 links). */
static const unsigned nvswitch_bus[] = {0x05, 0x06, 0x07, 0x08};
#define NVSWITCH_PCI_DEVICE_ID 0x22a310deU /* third-generation NVSwitch, vendor 0x10de */

static long long nvl_t0_us; /* __atomic; first NVLink traffic read, the counters' origin */

/* SUCCESS when link is one of the GPU's links, NOT_SUPPORTED on a GPU without NVLink,
 * INVALID_ARGUMENT past the last link. */
static nvmlReturn_t nvl_link_ok(unsigned gpu, unsigned link)
{
        unsigned links = fake_engine_scenario()->nvlink_links;
        (void)gpu;
        if (!links)
                return NVML_ERROR_NOT_SUPPORTED;
        return link < links ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

static bool nvl_up(unsigned gpu, unsigned link)
{
        return !(fake_engine_gpu(gpu)->nvlink_down & (1U << link));
}

/* Error counters: the scenario's (or an injected) total of the DCGM field, all on link 0, so that
 * the totals the backend sums are the values the scenario gives. */
static nvmlReturn_t nvl_errors(unsigned gpu, unsigned link, unsigned field, unsigned long long *v)
{
        double d = 0;
        nvmlReturn_t r = read1(gpu, field, &d);
        if (r == NVML_SUCCESS)
                *v = link == 0 ? to_u64(d) : 0;
        return r;
}

/* Payload KiB sent (tx) or received over one link since the first read: the GPU's NVLink rate
 * (PROF_NVLINK_TX/RX_BYTES, B/s) shared by its up links. */
static unsigned long long nvl_traffic(unsigned gpu, unsigned link, bool tx)
{
        long long now = time_real_us(), t0 = 0;
        unsigned up = 0, links = fake_engine_scenario()->nvlink_links;
        double rate = 0;

        if (!__atomic_compare_exchange_n(&nvl_t0_us, &t0, now, false, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
                now = now > t0 ? now : t0;
        else
                t0 = now;
        if (!nvl_up(gpu, link))
                return 0;
        for (unsigned l = 0; l < links; l++)
                up += nvl_up(gpu, l);
        if (read1(gpu, tx ? FLD_PROF_NVLINK_TX_BYTES : FLD_PROF_NVLINK_RX_BYTES, &rate) !=
                NVML_SUCCESS ||
            !up)
                return 0;
        return to_u64(rate / up * ((double)(now - t0) / 1e6) / 1024.0);
}

/* Answer an NVLink FieldValues entry; false when fv is not one. */
static bool nvlink_field(unsigned gpu, nvmlFieldValue_t *fv)
{
        unsigned l = fv->scopeId;
        unsigned long long v = 0;
        nvmlReturn_t r;

        switch (fv->fieldId) {
        case NVML_FI_DEV_NVLINK_LINK_COUNT:
                r = fake_engine_scenario()->nvlink_links ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
                v = fake_engine_scenario()->nvlink_links;
                break;
        case NVML_FI_DEV_NVLINK_GET_STATE:
                if ((r = nvl_link_ok(gpu, l)) == NVML_SUCCESS)
                        v = nvl_up(gpu, l);
                break;
        case NVML_FI_DEV_NVLINK_GET_VERSION:
                if ((r = nvl_link_ok(gpu, l)) == NVML_SUCCESS)
                        v = fake_engine_scenario()->nvlink_version;
                break;
        case NVML_FI_DEV_NVLINK_ERROR_DL_CRC:
                if ((r = nvl_link_ok(gpu, l)) == NVML_SUCCESS)
                        r = nvl_errors(gpu, l, FLD_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, &v);
                break;
        case NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY:
                if ((r = nvl_link_ok(gpu, l)) == NVML_SUCCESS)
                        r = nvl_errors(gpu, l, FLD_NVLINK_REPLAY_ERROR_COUNT_TOTAL, &v);
                break;
        case NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY:
                if ((r = nvl_link_ok(gpu, l)) == NVML_SUCCESS)
                        r = nvl_errors(gpu, l, FLD_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, &v);
                break;
        case NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX:
        case NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX:
                if ((r = nvl_link_ok(gpu, l)) == NVML_SUCCESS)
                        v = nvl_traffic(gpu, l,
                                        fv->fieldId == NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX);
                break;
        default:
                return false;
        }
        fv->nvmlReturn = r;
        if (r == NVML_SUCCESS) {
                fv->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
                fv->value.ullVal = v;
        }
        return true;
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
                                      nvmlEnableState_t *is_active)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(nvlink_state, device, gpu);
        if (!is_active)
                return NVML_ERROR_INVALID_ARGUMENT;
        if ((r = nvl_link_ok(gpu, link)) != NVML_SUCCESS)
                return r;
        *is_active = nvl_up(gpu, link) ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link,
                                                 nvmlPciInfo_t *pci)
{
        unsigned gpu, links, sw;
        nvmlReturn_t r;

        ENTER_DEV(nvlink_remote_pci, device, gpu);
        if (!pci)
                return NVML_ERROR_INVALID_ARGUMENT;
        if ((r = nvl_link_ok(gpu, link)) != NVML_SUCCESS)
                return r;
        links = fake_engine_scenario()->nvlink_links;
        sw = link * (unsigned)ARRAY_SIZE(nvswitch_bus) / links;
        memset(pci, 0, sizeof(*pci));
        pci->bus = nvswitch_bus[sw];
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "0000:%02X:00.0", pci->bus);
        snprintf(pci->busId, sizeof(pci->busId), "00000000:%02X:00.0", pci->bus);
        pci->pciDeviceId = NVSWITCH_PCI_DEVICE_ID;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t device, unsigned int link,
                                                 nvmlIntNvLinkDeviceType_t *type)
{
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(nvlink_remote_type, device, gpu);
        if (!type)
                return NVML_ERROR_INVALID_ARGUMENT;
        if ((r = nvl_link_ok(gpu, link)) != NVML_SUCCESS)
                return r;
        *type = NVML_NVLINK_DEVICE_TYPE_SWITCH;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link,
                                             nvmlNvLinkErrorCounter_t counter,
                                             unsigned long long *value)
{
        static const unsigned field[NVML_NVLINK_ERROR_COUNT] = {
            [NVML_NVLINK_ERROR_DL_REPLAY] = FLD_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
            [NVML_NVLINK_ERROR_DL_RECOVERY] = FLD_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
            [NVML_NVLINK_ERROR_DL_CRC_FLIT] = FLD_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
            [NVML_NVLINK_ERROR_DL_CRC_DATA] = FLD_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
        };
        unsigned gpu;
        nvmlReturn_t r;

        ENTER_DEV(nvlink_error_counter, device, gpu);
        if (!value || (unsigned)counter >= NVML_NVLINK_ERROR_COUNT)
                return NVML_ERROR_INVALID_ARGUMENT;
        if ((r = nvl_link_ok(gpu, link)) != NVML_SUCCESS)
                return r;
        if (!field[counter])
                return NVML_ERROR_NOT_SUPPORTED; /* ECC data: NVLink 5 and newer */
        return nvl_errors(gpu, link, field[counter], value);
}

/* ---- topology ---- */

static unsigned numa_of(unsigned gpu)
{
        const struct fake_scenario *sc = fake_engine_scenario();
        const struct fake_gpu_conf *g = fake_engine_gpu(gpu);
        unsigned n = fake_engine_gpu_count();

        if (g->numa_node >= 0)
                return (unsigned)g->numa_node % sc->numa_nodes;
        /* spread in order: the first half of the GPUs on node 0, ... */
        return n ? gpu * sc->numa_nodes / n : 0;
}

/* GPUs 2k and 2k+1 share a PCIe switch (as on an HGX baseboard), others share a NUMA node or
 * not. */
nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t device1, nvmlDevice_t device2,
                                                 nvmlGpuTopologyLevel_t *level)
{
        unsigned a, b;
        nvmlReturn_t r;

        ENTER_DEV(topology_common_ancestor, device1, a);
        if ((r = fake_engine_dev(device2, &b)) != NVML_SUCCESS)
                return r;
        if (!level)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (a == b)
                *level = NVML_TOPOLOGY_INTERNAL;
        else if (a / 2 == b / 2)
                *level = NVML_TOPOLOGY_SINGLE;
        else if (numa_of(a) == numa_of(b))
                *level = NVML_TOPOLOGY_NODE;
        else
                *level = NVML_TOPOLOGY_SYSTEM;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCpuAffinity(nvmlDevice_t device, unsigned int cpu_set_size,
                                      unsigned long *cpu_set)
{
        const struct fake_scenario *sc;
        unsigned gpu, first, bits = (unsigned)(sizeof(unsigned long) * 8);

        ENTER_DEV(cpu_affinity, device, gpu);
        if (!cpu_set || !cpu_set_size)
                return NVML_ERROR_INVALID_ARGUMENT;
        sc = fake_engine_scenario();
        memset(cpu_set, 0, cpu_set_size * sizeof(*cpu_set));
        first = numa_of(gpu) * sc->cpus_per_node;
        for (unsigned c = first; c < first + sc->cpus_per_node && c < cpu_set_size * bits; c++)
                cpu_set[c / bits] |= 1UL << (c % bits);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node)
{
        unsigned gpu;

        ENTER_DEV(numa_node_id, device, gpu);
        if (!node)
                return NVML_ERROR_INVALID_ARGUMENT;
        *node = numa_of(gpu);
        return NVML_SUCCESS;
}

/* ---- MIG (read-only; the fake has no way to change the mode either) ---- */

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current_mode,
                                  unsigned int *pending_mode)
{
        unsigned gpu;
        bool on;

        ENTER_DEV(mig_mode, device, gpu);
        if (!current_mode || !pending_mode)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!fake_engine_gpu(gpu)->n_mig)
                return NVML_ERROR_NOT_SUPPORTED; /* a GPU without MIG, as on a PCIe A10 */
        on = mig_on(gpu);
        *current_mode = on ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
        *pending_mode = NVML_DEVICE_MIG_ENABLE; /* turning on at mig_at, or on */
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)
{
        unsigned gpu;

        ENTER_DEV(max_mig_device_count, device, gpu);
        if (!count)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!fake_engine_gpu(gpu)->n_mig)
                return NVML_ERROR_NOT_SUPPORTED;
        *count = NVML_MAX_MIG_DEVICES;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                 nvmlDevice_t *mig_device)
{
        unsigned gpu;

        ENTER_DEV(mig_device_handle_by_index, device, gpu);
        if (!mig_device || index >= NVML_MAX_MIG_DEVICES)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!fake_engine_gpu(gpu)->n_mig)
                return NVML_ERROR_NOT_SUPPORTED;
        if (!mig_on(gpu) || index >= fake_engine_gpu(gpu)->n_mig)
                return NVML_ERROR_NOT_FOUND;
        *mig_device = (nvmlDevice_t)(void *)&mig_handles[gpu][index];
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)
{
        unsigned gpu, k;

        ENTER(gpu_instance_id);
        if (!id || !mig_of(device, &gpu, &k))
                return fake_engine_dev_index(device) >= 0 ? NVML_ERROR_NOT_SUPPORTED
                                                          : NVML_ERROR_INVALID_ARGUMENT;
        *id = mig_gi(gpu, k);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)
{
        unsigned gpu, k;

        ENTER(compute_instance_id);
        if (!id || !mig_of(device, &gpu, &k))
                return fake_engine_dev_index(device) >= 0 ? NVML_ERROR_NOT_SUPPORTED
                                                          : NVML_ERROR_INVALID_ARGUMENT;
        *id = 0; /* one compute instance per GPU instance */
        return NVML_SUCCESS;
}

/* ---- the extra API ---- */

int vigil_fake_configure(const char *scenario_path, char *err, size_t errlen)
{
        char dummy[1];

        if (!err || !errlen) {
                err = dummy;
                errlen = sizeof(dummy);
        }
        err[0] = '\0';
        return fake_engine_configure(scenario_path, err, errlen);
}

int vigil_fake_inject(const struct fake_inject *req, char *err, size_t errlen)
{
        char dummy[1];

        if (!err || !errlen) {
                err = dummy;
                errlen = sizeof(dummy);
        }
        return fake_engine_inject(req, err, errlen);
}

void vigil_fake_stats(struct fake_stats *out)
{
        fake_engine_stats(out);
}
