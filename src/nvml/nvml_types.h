/* nvml_types.h — our own declarations of the NVML C ABI subset Vigil uses, so the build does not
 * depend on nvml.h. Layouts and constants follow NVIDIA's published nvml.h exactly; the contract
 * test (tests/unit/test_nvml_abi.c) pins sizes and offsets. Shared by the NVML backend (which calls
 * these through dlsym) and the fake NVML (which exports them). Append only. */
#ifndef VIGIL_BACKEND_NVML_TYPES_H
#define VIGIL_BACKEND_NVML_TYPES_H

#include <stdint.h>

typedef enum nvmlReturn_enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_ALREADY_INITIALIZED = 5,
        NVML_ERROR_NOT_FOUND = 6,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_INSUFFICIENT_POWER = 8,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_IRQ_ISSUE = 11,
        NVML_ERROR_LIBRARY_NOT_FOUND = 12,
        NVML_ERROR_FUNCTION_NOT_FOUND = 13,
        NVML_ERROR_CORRUPTED_INFOROM = 14,
        NVML_ERROR_GPU_IS_LOST = 15,
        NVML_ERROR_RESET_REQUIRED = 16,
        NVML_ERROR_OPERATING_SYSTEM = 17,
        NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
        NVML_ERROR_IN_USE = 19,
        NVML_ERROR_MEMORY = 20,
        NVML_ERROR_NO_DATA = 21,
        NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22,
        NVML_ERROR_INSUFFICIENT_RESOURCES = 23,
        NVML_ERROR_FREQ_NOT_SUPPORTED = 24,
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
        NVML_ERROR_DEPRECATED = 26,
        NVML_ERROR_NOT_READY = 27,
        NVML_ERROR_GPU_NOT_FOUND = 28,
        NVML_ERROR_INVALID_STATE = 29,
        NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlEventSet_st *nvmlEventSet_t;

typedef enum nvmlEnableState_enum {
        NVML_FEATURE_DISABLED = 0,
        NVML_FEATURE_ENABLED = 1,
} nvmlEnableState_t;

#define NVML_DEVICE_NAME_V2_BUFFER_SIZE         96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE         96
#define NVML_DEVICE_SERIAL_BUFFER_SIZE          30
#define NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE   32
#define NVML_DEVICE_INFOROM_VERSION_BUFFER_SIZE 16
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE  80
#define NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE    80
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE      32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE   16

typedef struct nvmlPciInfo_st {
        char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE]; /* legacy "dddd:bb:dd.f" */
        unsigned int domain;                                     /* PCI domain 0..0xffffffff */
        unsigned int bus;                                        /* bus 0..255 */
        unsigned int device;                                     /* device 0..31 */
        unsigned int pciDeviceId;    /* combined 16-bit device id and 16-bit vendor id */
        unsigned int pciSubSystemId; /* 16-bit subsystem device id and subsystem vendor id */
        char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* "domain:bus:device.function" */
} nvmlPciInfo_t;

typedef struct nvmlMemory_st {
        unsigned long long total; /* bytes */
        unsigned long long free;  /* bytes */
        unsigned long long used;  /* bytes */
} nvmlMemory_t;

typedef struct nvmlMemory_v2_st {
        unsigned int version;        /* nvmlMemory_v2 */
        unsigned long long total;    /* bytes */
        unsigned long long reserved; /* bytes reserved by the driver */
        unsigned long long free;     /* bytes */
        unsigned long long used;     /* bytes */
} nvmlMemory_v2_t;

#define NVML_STRUCT_VERSION(data, ver)                                                             \
        (unsigned int)(sizeof(nvml##data##_v##ver##_t) | ((ver) << 24U))
#define nvmlMemory_v2 NVML_STRUCT_VERSION(Memory, 2)

typedef struct nvmlUtilization_st {
        unsigned int gpu;    /* percent */
        unsigned int memory; /* percent */
} nvmlUtilization_t;

typedef enum nvmlTemperatureSensors_enum {
        NVML_TEMPERATURE_GPU = 0,
} nvmlTemperatureSensors_t;

typedef enum nvmlTemperatureThresholds_enum {
        NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0,
        NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1,
        NVML_TEMPERATURE_THRESHOLD_MEM_MAX = 2,
        NVML_TEMPERATURE_THRESHOLD_GPU_MAX = 3,
} nvmlTemperatureThresholds_t;

typedef enum nvmlClockType_enum {
        NVML_CLOCK_GRAPHICS = 0,
        NVML_CLOCK_SM = 1,
        NVML_CLOCK_MEM = 2,
        NVML_CLOCK_VIDEO = 3,
} nvmlClockType_t;

typedef enum nvmlPStates_enum {
        NVML_PSTATE_0 = 0,
        NVML_PSTATE_15 = 15,
        NVML_PSTATE_UNKNOWN = 32,
} nvmlPstates_t;

typedef enum nvmlMemoryErrorType_enum {
        NVML_MEMORY_ERROR_TYPE_CORRECTED = 0,
        NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1,
} nvmlMemoryErrorType_t;

typedef enum nvmlEccCounterType_enum {
        NVML_VOLATILE_ECC = 0,
        NVML_AGGREGATE_ECC = 1,
} nvmlEccCounterType_t;

typedef enum nvmlPageRetirementCause_enum {
        NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0,
        NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1,
} nvmlPageRetirementCause_t;

typedef enum nvmlPerfPolicyType_enum {
        NVML_PERF_POLICY_POWER = 0,
        NVML_PERF_POLICY_THERMAL = 1,
        NVML_PERF_POLICY_SYNC_BOOST = 2,
        NVML_PERF_POLICY_BOARD_LIMIT = 3,
        NVML_PERF_POLICY_LOW_UTILIZATION = 4,
        NVML_PERF_POLICY_RELIABILITY = 5,
        NVML_PERF_POLICY_TOTAL_APP_CLOCKS = 10,
        NVML_PERF_POLICY_TOTAL_BASE_CLOCKS = 11,
} nvmlPerfPolicyType_t;

typedef struct nvmlViolationTime_st {
        unsigned long long referenceTime; /* usec since epoch when the counter was last read */
        unsigned long long violationTime; /* ns of violation */
} nvmlViolationTime_t;

typedef enum nvmlPcieUtilCounter_enum {
        NVML_PCIE_UTIL_TX_BYTES = 0,
        NVML_PCIE_UTIL_RX_BYTES = 1,
} nvmlPcieUtilCounter_t;

typedef struct nvmlProcessInfo_st {
        unsigned int pid;                 /* process id */
        unsigned long long usedGpuMemory; /* bytes */
        unsigned int gpuInstanceId;       /* MIG GI, 0xFFFFFFFF when not MIG */
        unsigned int computeInstanceId;   /* MIG CI, 0xFFFFFFFF when not MIG */
} nvmlProcessInfo_t;

/* usedGpuMemory when the driver cannot tell (e.g. not permitted to see the process). */
#define NVML_VALUE_NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFULL

/* One sample of nvmlDeviceGetProcessUtilization. */
typedef struct nvmlProcessUtilizationSample_st {
        unsigned int pid;             /* process id */
        unsigned long long timeStamp; /* CPU timestamp, usec */
        unsigned int smUtil;          /* percent */
        unsigned int memUtil;         /* percent (frame buffer bandwidth) */
        unsigned int encUtil;         /* percent */
        unsigned int decUtil;         /* percent */
} nvmlProcessUtilizationSample_t;

/* nvmlDeviceGetAccountingStats (accounting mode on). */
typedef struct nvmlAccountingStats_st {
        unsigned int gpuUtilization;       /* percent, average over the process' life */
        unsigned int memoryUtilization;    /* percent */
        unsigned long long maxMemoryUsage; /* bytes */
        unsigned long long time;           /* ms the process ran (when it has ended) */
        unsigned long long startTime;      /* CPU timestamp, usec */
        unsigned int isRunning;            /* 1 running, 0 ended */
        unsigned int reserved[5];
} nvmlAccountingStats_t;

/* Clock event reasons (nvmlDeviceGetCurrentClocksEventReasons bitmask). */
#define nvmlClocksEventReasonGpuIdle                   0x0000000000000001ULL
#define nvmlClocksEventReasonApplicationsClocksSetting 0x0000000000000002ULL
#define nvmlClocksEventReasonSwPowerCap                0x0000000000000004ULL
#define nvmlClocksThrottleReasonHwSlowdown             0x0000000000000008ULL
#define nvmlClocksEventReasonSyncBoost                 0x0000000000000010ULL
#define nvmlClocksEventReasonSwThermalSlowdown         0x0000000000000020ULL
#define nvmlClocksThrottleReasonHwThermalSlowdown      0x0000000000000040ULL
#define nvmlClocksThrottleReasonHwPowerBrakeSlowdown   0x0000000000000080ULL
#define nvmlClocksEventReasonDisplayClockSetting       0x0000000000000100ULL

/* Field values (nvmlDeviceGetFieldValues). */
typedef enum nvmlValueType_enum {
        NVML_VALUE_TYPE_DOUBLE = 0,
        NVML_VALUE_TYPE_UNSIGNED_INT = 1,
        NVML_VALUE_TYPE_UNSIGNED_LONG = 2,
        NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3,
        NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4,
        NVML_VALUE_TYPE_SIGNED_INT = 5,
        NVML_VALUE_TYPE_UNSIGNED_SHORT = 6,
        NVML_VALUE_TYPE_COUNT = 7,
} nvmlValueType_t;

typedef union nvmlValue_st {
        double dVal;
        int siVal;
        unsigned int uiVal;
        unsigned long ulVal;
        unsigned long long ullVal;
        signed long long sllVal;
        unsigned short usVal;
} nvmlValue_t;

typedef struct nvmlFieldValue_st {
        unsigned int fieldId;      /* NVML_FI_* (set by the caller) */
        unsigned int scopeId;      /* e.g. NVLink link id; 0 for device scope */
        long long timestamp;       /* usec since epoch when the value was read */
        long long latencyUsec;     /* how long the value took to update inside NVML */
        nvmlValueType_t valueType; /* which member of value is valid */
        nvmlReturn_t nvmlReturn;   /* per-field result; value is undefined unless SUCCESS */
        nvmlValue_t value;
} nvmlFieldValue_t;

/* NVML field ids used by Vigil (NVML's numbering, not DCGM's). */
#define NVML_FI_DEV_ECC_CURRENT                 1
#define NVML_FI_DEV_ECC_SBE_VOL_TOTAL           3
#define NVML_FI_DEV_ECC_DBE_VOL_TOTAL           4
#define NVML_FI_DEV_ECC_SBE_AGG_TOTAL           5
#define NVML_FI_DEV_ECC_DBE_AGG_TOTAL           6
#define NVML_FI_DEV_RETIRED_SBE                 30
#define NVML_FI_DEV_RETIRED_DBE                 31
#define NVML_FI_DEV_RETIRED_PENDING             32
#define NVML_FI_DEV_PERF_POLICY_POWER           74
#define NVML_FI_DEV_PERF_POLICY_THERMAL         75
#define NVML_FI_DEV_PERF_POLICY_SYNC_BOOST      76
#define NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT     77
#define NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION 78
#define NVML_FI_DEV_PERF_POLICY_RELIABILITY     79
#define NVML_FI_DEV_MEMORY_TEMP                 82
#define NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION    83
#define NVML_FI_DEV_PCIE_REPLAY_COUNTER         94
#define NVML_FI_DEV_REMAPPED_COR                142
#define NVML_FI_DEV_REMAPPED_UNC                143
#define NVML_FI_DEV_REMAPPED_PENDING            144
#define NVML_FI_DEV_REMAPPED_FAILURE            145
#define NVML_FI_DEV_POWER_AVERAGE               185
#define NVML_FI_DEV_POWER_INSTANT               186
#define NVML_FI_DEV_GET_GPU_RECOVERY_ACTION     230 /* nvmlDeviceGpuRecoveryAction_t, r570+ */

/* nvmlDeviceGpuRecoveryAction_t: what the driver says the GPU needs. */
#define NVML_GPU_RECOVERY_ACTION_NONE            0
#define NVML_GPU_RECOVERY_ACTION_GPU_RESET       1
#define NVML_GPU_RECOVERY_ACTION_NODE_REBOOT     2
#define NVML_GPU_RECOVERY_ACTION_DRAIN_P2P       3
#define NVML_GPU_RECOVERY_ACTION_DRAIN_AND_RESET 4

/* NVLink (per link: scopeId = link id, 0..NVML_NVLINK_MAX_LINKS-1). */
#define NVML_FI_DEV_NVLINK_LINK_COUNT         91  /* links the device has (device scope) */
#define NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX 138 /* KiB of payload sent, cumulative */
#define NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX 139 /* KiB of payload received, cumulative */
#define NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY    161 /* replay errors */
#define NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY  162 /* recovery errors */
#define NVML_FI_DEV_NVLINK_ERROR_DL_CRC       163 /* CRC (flit) errors */
#define NVML_FI_DEV_NVLINK_GET_STATE          165 /* 1 active, 0 inactive */
#define NVML_FI_DEV_NVLINK_GET_VERSION        166 /* NVLink version of the link */

#define NVML_NVLINK_MAX_LINKS 18 /* nvml.h: links a device may have (Hopper: 18) */

typedef enum nvmlNvLinkErrorCounter_enum {
        NVML_NVLINK_ERROR_DL_REPLAY = 0,   /* data link transmit replay errors */
        NVML_NVLINK_ERROR_DL_RECOVERY = 1, /* data link transmit recovery errors */
        NVML_NVLINK_ERROR_DL_CRC_FLIT = 2, /* data link receive flow control digit CRC errors */
        NVML_NVLINK_ERROR_DL_CRC_DATA = 3, /* data link receive data CRC errors */
        NVML_NVLINK_ERROR_DL_ECC_DATA = 4, /* data link receive data ECC errors */
        NVML_NVLINK_ERROR_COUNT,
} nvmlNvLinkErrorCounter_t;

typedef enum nvmlIntNvLinkDeviceType_enum {
        NVML_NVLINK_DEVICE_TYPE_GPU = 0x00,
        NVML_NVLINK_DEVICE_TYPE_IBMNPU = 0x01,
        NVML_NVLINK_DEVICE_TYPE_SWITCH = 0x02,
        NVML_NVLINK_DEVICE_TYPE_UNKNOWN = 0xFF,
} nvmlIntNvLinkDeviceType_t;

typedef enum nvmlComputeMode_enum {
        NVML_COMPUTEMODE_DEFAULT = 0,           /* several contexts per device */
        NVML_COMPUTEMODE_EXCLUSIVE_THREAD = 1,  /* deprecated */
        NVML_COMPUTEMODE_PROHIBITED = 2,        /* no contexts */
        NVML_COMPUTEMODE_EXCLUSIVE_PROCESS = 3, /* one process at a time */
} nvmlComputeMode_t;

/* MIG. */
#define NVML_DEVICE_MIG_DISABLE 0x0
#define NVML_DEVICE_MIG_ENABLE  0x1
#define NVML_MAX_MIG_DEVICES    7 /* per GPU on Ampere/Hopper (nvmlDeviceGetMaxMigDeviceCount) */

/* Topology: how far apart two GPUs are on the PCIe tree (nvmlDeviceGetTopologyCommonAncestor). */
typedef enum nvmlGpuLevel_enum {
        NVML_TOPOLOGY_INTERNAL = 0,    /* the same board (multi-GPU card) */
        NVML_TOPOLOGY_SINGLE = 10,     /* one PCIe switch between them (PIX) */
        NVML_TOPOLOGY_MULTIPLE = 20,   /* several PCIe switches, no host bridge (PXB) */
        NVML_TOPOLOGY_HOSTBRIDGE = 30, /* the same host bridge (PHB) */
        NVML_TOPOLOGY_NODE = 40,       /* host bridges of one NUMA node (NODE) */
        NVML_TOPOLOGY_SYSTEM = 50,     /* across NUMA nodes, SMP interconnect (SYS) */
} nvmlGpuTopologyLevel_t;

/* Events. */
#define nvmlEventTypeSingleBitEccError 0x0000000000000001ULL
#define nvmlEventTypeDoubleBitEccError 0x0000000000000002ULL
#define nvmlEventTypePState            0x0000000000000004ULL
#define nvmlEventTypeXidCriticalError  0x0000000000000008ULL
#define nvmlEventTypeClock             0x0000000000000010ULL

typedef struct nvmlEventData_st {
        nvmlDevice_t device;            /* device where the event occurred */
        unsigned long long eventType;   /* nvmlEventType* bit */
        unsigned long long eventData;   /* XID code for XID events, else 0 */
        unsigned int gpuInstanceId;     /* MIG GI or 0xFFFFFFFF */
        unsigned int computeInstanceId; /* MIG CI or 0xFFFFFFFF */
} nvmlEventData_t;

/* GPM, GPU Performance Monitoring (Hopper and newer): the library computes each metric between two
 * samples the caller took; values are percentages 0.0-100.0. Layouts as in NVIDIA's nvml.h.
 *
 * NVML_GPM_METRIC_MAX sizes metrics[] and grows with the driver (98 in CUDA 12.2's nvml.h, 166 in
 * the one DCGM ships, 210 in CUDA 13.0's, the driver 580 header of our H200; 333 in NVIDIA's
 * newest nvidia-ml-py), while NVML_GPM_METRICS_GET_VERSION has stayed 1, so the library cannot
 * tell the sizes apart. We take the largest: a library built for a smaller array reads and writes
 * only the numMetrics entries we fill, never past its own end, so a larger struct is safe for
 * every version, and a smaller one would not be for a newer driver. */
typedef struct nvmlGpmSample_st *nvmlGpmSample_t; /* opaque, from nvmlGpmSampleAlloc */

typedef enum nvmlGpmMetricId_enum {
        NVML_GPM_METRIC_GRAPHICS_UTIL = 1,    /* % of time any compute/graphics app was active */
        NVML_GPM_METRIC_SM_UTIL = 2,          /* % of SMs busy */
        NVML_GPM_METRIC_SM_OCCUPANCY = 3,     /* % of warps active vs the theoretical maximum */
        NVML_GPM_METRIC_INTEGER_UTIL = 4,     /* % of time the SMs did integer operations */
        NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5,  /* % of time the SMs did any tensor operation */
        NVML_GPM_METRIC_DFMA_TENSOR_UTIL = 6, /* % of time the SMs did DFMA tensor operations */
        NVML_GPM_METRIC_HMMA_TENSOR_UTIL = 7, /* % of time the SMs did HMMA tensor operations */
        NVML_GPM_METRIC_IMMA_TENSOR_UTIL = 9, /* % of time the SMs did IMMA tensor operations */
        NVML_GPM_METRIC_DRAM_BW_UTIL = 10,    /* % of the theoretical DRAM bandwidth used */
        NVML_GPM_METRIC_FP64_UTIL = 11,       /* % of time the SMs did non-tensor FP64 math */
        NVML_GPM_METRIC_FP32_UTIL = 12,       /* % of time the SMs did non-tensor FP32 math */
        NVML_GPM_METRIC_FP16_UTIL = 13,       /* % of time the SMs did non-tensor FP16 math */
        NVML_GPM_METRIC_PCIE_TX_PER_SEC = 20, /* PCIe traffic from the GPU, MiB/s */
        NVML_GPM_METRIC_PCIE_RX_PER_SEC = 21, /* PCIe traffic to the GPU, MiB/s */
        NVML_GPM_METRIC_NVDEC_0_UTIL = 30,    /* % utilization of NVDEC 0 (1..7 follow) */
        NVML_GPM_METRIC_NVJPG_0_UTIL = 40,    /* % utilization of NVJPG 0 (1..7 follow) */
        NVML_GPM_METRIC_NVOFA_0_UTIL = 50,    /* % utilization of NVOFA 0 */
        NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC = 60, /* NVLink read bandwidth, all links, MiB/s */
        NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC = 61, /* NVLink write bandwidth, all links, MiB/s */
        NVML_GPM_METRIC_NVLINK_L0_RX_PER_SEC = 62,    /* link L: 62 + 2L rx, 63 + 2L tx, MiB/s */
        NVML_GPM_METRIC_NVLINK_L0_TX_PER_SEC = 63,
} nvmlGpmMetricId_t;

#define NVML_GPM_METRIC_MAX          333 /* entries of nvmlGpmMetricsGet_t.metrics, see above */
#define NVML_GPM_METRICS_GET_VERSION 1
#define NVML_GPM_SUPPORT_VERSION     1

typedef struct nvmlGpmMetric_st {
        unsigned int metricId;   /* IN: NVML_GPM_METRIC_* */
        nvmlReturn_t nvmlReturn; /* OUT: per-metric result; value is valid only on SUCCESS */
        double value;            /* OUT: the metric, percent for the *_UTIL ones */
        struct {
                char *shortName; /* OUT: owned by the library, may be NULL */
                char *longName;  /* OUT: owned by the library, may be NULL */
                char *unit;      /* OUT: owned by the library, may be NULL */
        } metricInfo;
} nvmlGpmMetric_t;

typedef struct nvmlGpmMetricsGet_st {
        unsigned int version;                         /* IN: NVML_GPM_METRICS_GET_VERSION */
        unsigned int numMetrics;                      /* IN: entries of metrics[] to compute */
        nvmlGpmSample_t sample1;                      /* IN: the earlier sample */
        nvmlGpmSample_t sample2;                      /* IN: the later sample */
        nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX]; /* IN metricId, OUT nvmlReturn and value */
} nvmlGpmMetricsGet_t;

/* GPU fabric (NVSwitch systems): nvmlDeviceGetGpuFabricInfoV with version 2. The struct is
 * versioned: version = sizeof | 2 << 24; state is one byte (nvmlGpuFabricState_t). */
#define NVML_GPU_FABRIC_UUID_LEN            16
#define NVML_GPU_FABRIC_STATE_NOT_SUPPORTED 0
#define NVML_GPU_FABRIC_STATE_NOT_STARTED   1
#define NVML_GPU_FABRIC_STATE_IN_PROGRESS   2
#define NVML_GPU_FABRIC_STATE_COMPLETED     3

typedef struct nvmlGpuFabricInfo_v2_st {
        unsigned int version;                                /* IN: nvmlGpuFabricInfo_v2 */
        unsigned char clusterUuid[NVML_GPU_FABRIC_UUID_LEN]; /* OUT: cluster of the GPU */
        nvmlReturn_t status;     /* OUT: registration error, valid when state is COMPLETED */
        unsigned int cliqueId;   /* OUT: fabric clique of the GPU */
        unsigned char state;     /* OUT: NVML_GPU_FABRIC_STATE_* */
        unsigned int healthMask; /* OUT: NVML_GPU_FABRIC_HEALTH_MASK_* bits */
} nvmlGpuFabricInfo_v2_t;

#define nvmlGpuFabricInfo_v2 ((unsigned int)(sizeof(nvmlGpuFabricInfo_v2_t) | (2U << 24)))

/* vGPU software licensing (nvmlDeviceGetGridLicensableFeatures_v4): the layout of nvml.h's v4
 * structs (productName, featureEnabled and licenseExpiry appended to each feature). */
#define NVML_GRID_LICENSE_BUFFER_SIZE       128
#define NVML_GRID_LICENSE_FEATURE_MAX_COUNT 3

typedef struct nvmlGridLicenseExpiry_st {
        unsigned int year;    /* expiry date and time */
        unsigned short month; /* 1..12 */
        unsigned short day;
        unsigned short hour;
        unsigned short min;
        unsigned short sec;
        unsigned char status; /* expiry status */
} nvmlGridLicenseExpiry_t;

typedef struct nvmlGridLicensableFeature_st {
        int featureCode;           /* 1 vGPU, 2 RTX virtual workstation, 3 gaming, 4 compute */
        unsigned int featureState; /* nonzero: licensed now */
        char licenseInfo[NVML_GRID_LICENSE_BUFFER_SIZE]; /* deprecated */
        char productName[NVML_GRID_LICENSE_BUFFER_SIZE]; /* feature's product name */
        unsigned int featureEnabled;                     /* nonzero: the feature is in use */
        nvmlGridLicenseExpiry_t licenseExpiry;           /* when the license expires */
} nvmlGridLicensableFeature_t;

typedef struct nvmlGridLicensableFeatures_st {
        int isGridLicenseSupported;           /* nonzero: vGPU software licensing applies */
        unsigned int licensableFeaturesCount; /* entries filled below */
        nvmlGridLicensableFeature_t gridLicensableFeatures[NVML_GRID_LICENSE_FEATURE_MAX_COUNT];
} nvmlGridLicensableFeatures_t;

typedef struct nvmlGpmSupport_st {
        unsigned int version;           /* IN: NVML_GPM_SUPPORT_VERSION */
        unsigned int isSupportedDevice; /* OUT: nonzero when the device supports GPM */
} nvmlGpmSupport_t;

#endif
