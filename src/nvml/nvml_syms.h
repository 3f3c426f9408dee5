/* nvml_syms.h — every NVML entry point Vigil resolves, as an X-macro:
 *
 *   NVML_FN(return_type, member, required, (parameters), "newest_symbol", ..., "oldest_symbol")
 *
 * The backend tries the names left to right and keeps the first one the library exports, so a newer
 * driver gives us the newest ABI and an older one still works. `required` entries must resolve or
 * the backend refuses to open the library; optional ones degrade to "not supported". Every name
 * listed here is also exported by the fake NVML. Append only. */

/* Library. */
NVML_FN(nvmlReturn_t, init, 1, (void), "nvmlInit_v2", "nvmlInit")
NVML_FN(nvmlReturn_t, shutdown, 1, (void), "nvmlShutdown")
NVML_FN(const char *, error_string, 0, (nvmlReturn_t result), "nvmlErrorString")
NVML_FN(nvmlReturn_t, system_driver_version, 0, (char *version, unsigned int length),
        "nvmlSystemGetDriverVersion")
NVML_FN(nvmlReturn_t, system_nvml_version, 0, (char *version, unsigned int length),
        "nvmlSystemGetNVMLVersion")

/* Discovery and identity. */
NVML_FN(nvmlReturn_t, device_count, 1, (unsigned int *count), "nvmlDeviceGetCount_v2",
        "nvmlDeviceGetCount")
NVML_FN(nvmlReturn_t, handle_by_index, 1, (unsigned int index, nvmlDevice_t *device),
        "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")
NVML_FN(nvmlReturn_t, handle_by_uuid, 0, (const char *uuid, nvmlDevice_t *device),
        "nvmlDeviceGetHandleByUUID")
NVML_FN(nvmlReturn_t, name, 0, (nvmlDevice_t device, char *name, unsigned int length),
        "nvmlDeviceGetName")
NVML_FN(nvmlReturn_t, uuid, 1, (nvmlDevice_t device, char *uuid, unsigned int length),
        "nvmlDeviceGetUUID")
NVML_FN(nvmlReturn_t, serial, 0, (nvmlDevice_t device, char *serial, unsigned int length),
        "nvmlDeviceGetSerial")
NVML_FN(nvmlReturn_t, pci_info, 0, (nvmlDevice_t device, nvmlPciInfo_t *pci),
        "nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2")
NVML_FN(nvmlReturn_t, vbios_version, 0, (nvmlDevice_t device, char *version, unsigned int length),
        "nvmlDeviceGetVbiosVersion")
NVML_FN(nvmlReturn_t, inforom_image_version, 0,
        (nvmlDevice_t device, char *version, unsigned int length),
        "nvmlDeviceGetInforomImageVersion")
NVML_FN(nvmlReturn_t, minor_number, 0, (nvmlDevice_t device, unsigned int *minor),
        "nvmlDeviceGetMinorNumber")
NVML_FN(nvmlReturn_t, brand, 0, (nvmlDevice_t device, int *type), "nvmlDeviceGetBrand")
NVML_FN(nvmlReturn_t, temperature_threshold, 0,
        (nvmlDevice_t device, nvmlTemperatureThresholds_t type, unsigned int *temp),
        "nvmlDeviceGetTemperatureThreshold")
NVML_FN(nvmlReturn_t, power_default_limit, 0, (nvmlDevice_t device, unsigned int *limit_mw),
        "nvmlDeviceGetPowerManagementDefaultLimit")
NVML_FN(nvmlReturn_t, max_pcie_gen, 0, (nvmlDevice_t device, unsigned int *gen),
        "nvmlDeviceGetMaxPcieLinkGeneration")
NVML_FN(nvmlReturn_t, max_pcie_width, 0, (nvmlDevice_t device, unsigned int *width),
        "nvmlDeviceGetMaxPcieLinkWidth")

/* Fast tier. */
NVML_FN(nvmlReturn_t, field_values, 0, (nvmlDevice_t device, int count, nvmlFieldValue_t *values),
        "nvmlDeviceGetFieldValues")
NVML_FN(nvmlReturn_t, temperature, 0,
        (nvmlDevice_t device, nvmlTemperatureSensors_t sensor, unsigned int *temp),
        "nvmlDeviceGetTemperature")
NVML_FN(nvmlReturn_t, power_usage, 0, (nvmlDevice_t device, unsigned int *power_mw),
        "nvmlDeviceGetPowerUsage")
NVML_FN(nvmlReturn_t, utilization, 0, (nvmlDevice_t device, nvmlUtilization_t *util),
        "nvmlDeviceGetUtilizationRates")
NVML_FN(nvmlReturn_t, memory_info_v2, 0, (nvmlDevice_t device, nvmlMemory_v2_t *mem),
        "nvmlDeviceGetMemoryInfo_v2")
NVML_FN(nvmlReturn_t, memory_info, 0, (nvmlDevice_t device, nvmlMemory_t *mem),
        "nvmlDeviceGetMemoryInfo")
NVML_FN(nvmlReturn_t, clock_info, 0, (nvmlDevice_t device, nvmlClockType_t type, unsigned int *mhz),
        "nvmlDeviceGetClockInfo")
NVML_FN(nvmlReturn_t, clocks_event_reasons, 0, (nvmlDevice_t device, unsigned long long *reasons),
        "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
NVML_FN(nvmlReturn_t, performance_state, 0, (nvmlDevice_t device, nvmlPstates_t *pstate),
        "nvmlDeviceGetPerformanceState")
NVML_FN(nvmlReturn_t, encoder_utilization, 0,
        (nvmlDevice_t device, unsigned int *util, unsigned int *period_us),
        "nvmlDeviceGetEncoderUtilization")
NVML_FN(nvmlReturn_t, decoder_utilization, 0,
        (nvmlDevice_t device, unsigned int *util, unsigned int *period_us),
        "nvmlDeviceGetDecoderUtilization")
NVML_FN(nvmlReturn_t, remapped_rows, 0,
        (nvmlDevice_t device, unsigned int *corr, unsigned int *unc, unsigned int *pending,
         unsigned int *failed),
        "nvmlDeviceGetRemappedRows")
NVML_FN(nvmlReturn_t, total_ecc_errors, 0,
        (nvmlDevice_t device, nvmlMemoryErrorType_t type, nvmlEccCounterType_t counter,
         unsigned long long *count),
        "nvmlDeviceGetTotalEccErrors")

/* Slow tier. */
NVML_FN(nvmlReturn_t, total_energy, 0, (nvmlDevice_t device, unsigned long long *energy_mj),
        "nvmlDeviceGetTotalEnergyConsumption")
NVML_FN(nvmlReturn_t, violation_status, 0,
        (nvmlDevice_t device, nvmlPerfPolicyType_t policy, nvmlViolationTime_t *time),
        "nvmlDeviceGetViolationStatus")
NVML_FN(nvmlReturn_t, pcie_replay_counter, 0, (nvmlDevice_t device, unsigned int *value),
        "nvmlDeviceGetPcieReplayCounter")
NVML_FN(nvmlReturn_t, curr_pcie_gen, 0, (nvmlDevice_t device, unsigned int *gen),
        "nvmlDeviceGetCurrPcieLinkGeneration")
NVML_FN(nvmlReturn_t, curr_pcie_width, 0, (nvmlDevice_t device, unsigned int *width),
        "nvmlDeviceGetCurrPcieLinkWidth")
NVML_FN(nvmlReturn_t, pcie_throughput, 0,
        (nvmlDevice_t device, nvmlPcieUtilCounter_t counter, unsigned int *kb_per_s),
        "nvmlDeviceGetPcieThroughput")
NVML_FN(nvmlReturn_t, power_limit, 0, (nvmlDevice_t device, unsigned int *limit_mw),
        "nvmlDeviceGetPowerManagementLimit")
NVML_FN(nvmlReturn_t, enforced_power_limit, 0, (nvmlDevice_t device, unsigned int *limit_mw),
        "nvmlDeviceGetEnforcedPowerLimit")
NVML_FN(nvmlReturn_t, persistence_mode, 0, (nvmlDevice_t device, nvmlEnableState_t *mode),
        "nvmlDeviceGetPersistenceMode")
NVML_FN(nvmlReturn_t, ecc_mode, 0,
        (nvmlDevice_t device, nvmlEnableState_t *current, nvmlEnableState_t *pending),
        "nvmlDeviceGetEccMode")
NVML_FN(nvmlReturn_t, retired_pages, 0,
        (nvmlDevice_t device, nvmlPageRetirementCause_t cause, unsigned int *count,
         unsigned long long *addresses),
        "nvmlDeviceGetRetiredPages")
NVML_FN(nvmlReturn_t, retired_pages_pending, 0, (nvmlDevice_t device, nvmlEnableState_t *pending),
        "nvmlDeviceGetRetiredPagesPendingStatus")
NVML_FN(nvmlReturn_t, compute_processes, 0,
        (nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos),
        "nvmlDeviceGetComputeRunningProcesses_v3")

/* Events. */
NVML_FN(nvmlReturn_t, event_set_create, 0, (nvmlEventSet_t * set), "nvmlEventSetCreate")
NVML_FN(nvmlReturn_t, supported_event_types, 0, (nvmlDevice_t device, unsigned long long *types),
        "nvmlDeviceGetSupportedEventTypes")
NVML_FN(nvmlReturn_t, register_events, 0,
        (nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set),
        "nvmlDeviceRegisterEvents")
NVML_FN(nvmlReturn_t, event_set_wait, 0,
        (nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms), "nvmlEventSetWait_v2",
        "nvmlEventSetWait")
NVML_FN(nvmlReturn_t, event_set_free, 0, (nvmlEventSet_t set), "nvmlEventSetFree")

/* Mutators (guarded; exercised against the fake NVML only). */
NVML_FN(nvmlReturn_t, set_power_limit, 0, (nvmlDevice_t device, unsigned int limit_mw),
        "nvmlDeviceSetPowerManagementLimit")

/* GPM (Hopper and newer): the profiling fields, computed between two samples. */
NVML_FN(nvmlReturn_t, gpm_query_support, 0, (nvmlDevice_t device, nvmlGpmSupport_t *support),
        "nvmlGpmQueryDeviceSupport")
NVML_FN(nvmlReturn_t, gpm_sample_alloc, 0, (nvmlGpmSample_t * sample), "nvmlGpmSampleAlloc")
NVML_FN(nvmlReturn_t, gpm_sample_free, 0, (nvmlGpmSample_t sample), "nvmlGpmSampleFree")
NVML_FN(nvmlReturn_t, gpm_sample_get, 0, (nvmlDevice_t device, nvmlGpmSample_t sample),
        "nvmlGpmSampleGet")
NVML_FN(nvmlReturn_t, gpm_metrics_get, 0, (nvmlGpmMetricsGet_t * metrics), "nvmlGpmMetricsGet")

/* NVLink, per link (the counters come through nvmlDeviceGetFieldValues with scopeId = link). */
NVML_FN(nvmlReturn_t, nvlink_state, 0,
        (nvmlDevice_t device, unsigned int link, nvmlEnableState_t *is_active),
        "nvmlDeviceGetNvLinkState")
NVML_FN(nvmlReturn_t, nvlink_remote_pci, 0,
        (nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci),
        "nvmlDeviceGetNvLinkRemotePciInfo_v2")
NVML_FN(nvmlReturn_t, nvlink_remote_type, 0,
        (nvmlDevice_t device, unsigned int link, nvmlIntNvLinkDeviceType_t *type),
        "nvmlDeviceGetNvLinkRemoteDeviceType")
NVML_FN(nvmlReturn_t, nvlink_error_counter, 0,
        (nvmlDevice_t device, unsigned int link, nvmlNvLinkErrorCounter_t counter,
         unsigned long long *value),
        "nvmlDeviceGetNvLinkErrorCounter")

/* Topology (read at attach). */
NVML_FN(nvmlReturn_t, topology_common_ancestor, 0,
        (nvmlDevice_t device1, nvmlDevice_t device2, nvmlGpuTopologyLevel_t *level),
        "nvmlDeviceGetTopologyCommonAncestor")
NVML_FN(nvmlReturn_t, cpu_affinity, 0,
        (nvmlDevice_t device, unsigned int cpu_set_size, unsigned long *cpu_set),
        "nvmlDeviceGetCpuAffinity")
NVML_FN(nvmlReturn_t, numa_node_id, 0, (nvmlDevice_t device, unsigned int *node),
        "nvmlDeviceGetNumaNodeId")

/* MIG: discovery of the instances of a GPU in MIG mode (read-only; Vigil never changes the mode).
 * The identity and memory getters above also take a MIG device handle. */
NVML_FN(nvmlReturn_t, mig_mode, 0,
        (nvmlDevice_t device, unsigned int *current_mode, unsigned int *pending_mode),
        "nvmlDeviceGetMigMode")
NVML_FN(nvmlReturn_t, max_mig_device_count, 0, (nvmlDevice_t device, unsigned int *count),
        "nvmlDeviceGetMaxMigDeviceCount")
NVML_FN(nvmlReturn_t, mig_device_handle_by_index, 0,
        (nvmlDevice_t device, unsigned int index, nvmlDevice_t *mig_device),
        "nvmlDeviceGetMigDeviceHandleByIndex")
NVML_FN(nvmlReturn_t, gpu_instance_id, 0, (nvmlDevice_t device, unsigned int *id),
        "nvmlDeviceGetGpuInstanceId")
NVML_FN(nvmlReturn_t, compute_instance_id, 0, (nvmlDevice_t device, unsigned int *id),
        "nvmlDeviceGetComputeInstanceId")

/* Configuration, read-only (vigil config get): compute mode and application clocks. */
NVML_FN(nvmlReturn_t, compute_mode, 0, (nvmlDevice_t device, nvmlComputeMode_t *mode),
        "nvmlDeviceGetComputeMode")
NVML_FN(nvmlReturn_t, applications_clock, 0,
        (nvmlDevice_t device, nvmlClockType_t type, unsigned int *mhz),
        "nvmlDeviceGetApplicationsClock")

/* Workloads (src/workload via backend_processes): read-only; accounting is never switched on. */
NVML_FN(nvmlReturn_t, graphics_processes, 0,
        (nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos),
        "nvmlDeviceGetGraphicsRunningProcesses_v3")
NVML_FN(nvmlReturn_t, process_utilization, 0,
        (nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
         unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp),
        "nvmlDeviceGetProcessUtilization")
NVML_FN(nvmlReturn_t, accounting_mode, 0, (nvmlDevice_t device, nvmlEnableState_t *mode),
        "nvmlDeviceGetAccountingMode")
NVML_FN(nvmlReturn_t, accounting_stats, 0,
        (nvmlDevice_t device, unsigned int pid, nvmlAccountingStats_t *stats),
        "nvmlDeviceGetAccountingStats")
/* GPU configuration (vigil config set / restore, config.enforce): the constraints a value is
 * checked against and the setters (guarded; exercised against the fake NVML only). NVML has no
 * getter for locked clocks. */
NVML_FN(nvmlReturn_t, power_limit_constraints, 0,
        (nvmlDevice_t device, unsigned int *min_mw, unsigned int *max_mw),
        "nvmlDeviceGetPowerManagementLimitConstraints")
NVML_FN(nvmlReturn_t, supported_memory_clocks, 0,
        (nvmlDevice_t device, unsigned int *count, unsigned int *mhz),
        "nvmlDeviceGetSupportedMemoryClocks")
NVML_FN(nvmlReturn_t, supported_graphics_clocks, 0,
        (nvmlDevice_t device, unsigned int mem_mhz, unsigned int *count, unsigned int *mhz),
        "nvmlDeviceGetSupportedGraphicsClocks")
NVML_FN(nvmlReturn_t, set_applications_clocks, 0,
        (nvmlDevice_t device, unsigned int mem_mhz, unsigned int sm_mhz),
        "nvmlDeviceSetApplicationsClocks")
NVML_FN(nvmlReturn_t, reset_applications_clocks, 0, (nvmlDevice_t device),
        "nvmlDeviceResetApplicationsClocks")
NVML_FN(nvmlReturn_t, set_gpu_locked_clocks, 0,
        (nvmlDevice_t device, unsigned int min_mhz, unsigned int max_mhz),
        "nvmlDeviceSetGpuLockedClocks")
NVML_FN(nvmlReturn_t, reset_gpu_locked_clocks, 0, (nvmlDevice_t device),
        "nvmlDeviceResetGpuLockedClocks")
NVML_FN(nvmlReturn_t, set_memory_locked_clocks, 0,
        (nvmlDevice_t device, unsigned int min_mhz, unsigned int max_mhz),
        "nvmlDeviceSetMemoryLockedClocks")
NVML_FN(nvmlReturn_t, reset_memory_locked_clocks, 0, (nvmlDevice_t device),
        "nvmlDeviceResetMemoryLockedClocks")
NVML_FN(nvmlReturn_t, set_compute_mode, 0, (nvmlDevice_t device, nvmlComputeMode_t mode),
        "nvmlDeviceSetComputeMode")
NVML_FN(nvmlReturn_t, set_persistence_mode, 0, (nvmlDevice_t device, nvmlEnableState_t mode),
        "nvmlDeviceSetPersistenceMode")
NVML_FN(nvmlReturn_t, set_ecc_mode, 0, (nvmlDevice_t device, nvmlEnableState_t ecc),
        "nvmlDeviceSetEccMode")

/* Fields the catalog had without a reader: InfoROM validity (the `inforom` health system) and the
 * GPU fabric state on NVSwitch systems (Fabric Manager). */
NVML_FN(nvmlReturn_t, validate_inforom, 0, (nvmlDevice_t device), "nvmlDeviceValidateInforom")
NVML_FN(nvmlReturn_t, gpu_fabric_info, 0, (nvmlDevice_t device, nvmlGpuFabricInfo_v2_t *info),
        "nvmlDeviceGetGpuFabricInfoV")
NVML_FN(nvmlReturn_t, grid_licensable_features, 0,
        (nvmlDevice_t device, nvmlGridLicensableFeatures_t *features),
        "nvmlDeviceGetGridLicensableFeatures_v4")
