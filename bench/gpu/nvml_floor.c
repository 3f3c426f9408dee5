/* nvml_floor.c — the floor: a bare C loop making the same NVML calls as vigild's default tiers
 * (fast every 1 s: one FieldValues batch + the cheap getters; slow every 10 s: energy, violation
 * counters, PCIe replay/gen/width/throughput, power limits, ECC mode, persistence), with nothing
 * else: no cache, no HTTP, no exposition. Read-only. Runs for SECONDS and prints its CPU time.
 * usage: nvml_floor [SECONDS] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nvml/nvml_types.h"

#define LOAD(name) *(void **)&name = dlsym(dl, #name)

static nvmlReturn_t (*nvmlInit_v2)(void);
static nvmlReturn_t (*nvmlDeviceGetCount_v2)(unsigned *);
static nvmlReturn_t (*nvmlDeviceGetHandleByIndex_v2)(unsigned, nvmlDevice_t *);
static nvmlReturn_t (*nvmlDeviceGetFieldValues)(nvmlDevice_t, int, nvmlFieldValue_t *);
static nvmlReturn_t (*nvmlDeviceGetTemperature)(nvmlDevice_t, nvmlTemperatureSensors_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetUtilizationRates)(nvmlDevice_t, nvmlUtilization_t *);
static nvmlReturn_t (*nvmlDeviceGetMemoryInfo_v2)(nvmlDevice_t, nvmlMemory_v2_t *);
static nvmlReturn_t (*nvmlDeviceGetClockInfo)(nvmlDevice_t, nvmlClockType_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetCurrentClocksEventReasons)(nvmlDevice_t, unsigned long long *);
static nvmlReturn_t (*nvmlDeviceGetPerformanceState)(nvmlDevice_t, nvmlPstates_t *);
static nvmlReturn_t (*nvmlDeviceGetEncoderUtilization)(nvmlDevice_t, unsigned *, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetDecoderUtilization)(nvmlDevice_t, unsigned *, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetCurrPcieLinkGeneration)(nvmlDevice_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetCurrPcieLinkWidth)(nvmlDevice_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetPcieThroughput)(nvmlDevice_t, nvmlPcieUtilCounter_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetPowerManagementLimit)(nvmlDevice_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetEnforcedPowerLimit)(nvmlDevice_t, unsigned *);
static nvmlReturn_t (*nvmlDeviceGetPersistenceMode)(nvmlDevice_t, nvmlEnableState_t *);
static nvmlReturn_t (*nvmlDeviceGetEccMode)(nvmlDevice_t, nvmlEnableState_t *, nvmlEnableState_t *);

static double cpu_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
        static const unsigned fast_fv[] = {82, 185, 186, 3, 4, 142, 143, 144, 145};
        static const unsigned slow_fv[] = {83, 74, 75, 76, 77, 78, 79, 94, 5, 6, 1};
        int seconds = argc > 1 ? atoi(argv[1]) : 60;
        void *dl = dlopen("libnvidia-ml.so.1", RTLD_NOW);
        nvmlDevice_t dev[64];
        unsigned n = 0;
        struct timespec next;

        if (!dl) {
                fprintf(stderr, "no libnvidia-ml.so.1\n");
                return 77;
        }
        LOAD(nvmlInit_v2);
        LOAD(nvmlDeviceGetCount_v2);
        LOAD(nvmlDeviceGetHandleByIndex_v2);
        LOAD(nvmlDeviceGetFieldValues);
        LOAD(nvmlDeviceGetTemperature);
        LOAD(nvmlDeviceGetUtilizationRates);
        LOAD(nvmlDeviceGetMemoryInfo_v2);
        LOAD(nvmlDeviceGetClockInfo);
        LOAD(nvmlDeviceGetCurrentClocksEventReasons);
        LOAD(nvmlDeviceGetPerformanceState);
        LOAD(nvmlDeviceGetEncoderUtilization);
        LOAD(nvmlDeviceGetDecoderUtilization);
        LOAD(nvmlDeviceGetCurrPcieLinkGeneration);
        LOAD(nvmlDeviceGetCurrPcieLinkWidth);
        LOAD(nvmlDeviceGetPcieThroughput);
        LOAD(nvmlDeviceGetPowerManagementLimit);
        LOAD(nvmlDeviceGetEnforcedPowerLimit);
        LOAD(nvmlDeviceGetPersistenceMode);
        LOAD(nvmlDeviceGetEccMode);
        if (nvmlInit_v2() != NVML_SUCCESS || nvmlDeviceGetCount_v2(&n) != NVML_SUCCESS)
                return 1;
        for (unsigned i = 0; i < n && i < 64; i++)
                nvmlDeviceGetHandleByIndex_v2(i, &dev[i]);
        double c0 = cpu_s();
        clock_gettime(CLOCK_MONOTONIC, &next);
        for (int t = 0; t < seconds; t++) {
                for (unsigned i = 0; i < n; i++) {
                        nvmlFieldValue_t fv[16] = {0};
                        unsigned v, v2;
                        unsigned long long r;
                        nvmlUtilization_t u;
                        nvmlMemory_v2_t m = {.version = nvmlMemory_v2};
                        nvmlPstates_t p;
                        for (unsigned k = 0; k < sizeof(fast_fv) / sizeof(fast_fv[0]); k++)
                                fv[k].fieldId = fast_fv[k];
                        nvmlDeviceGetFieldValues(dev[i], sizeof(fast_fv) / sizeof(fast_fv[0]), fv);
                        nvmlDeviceGetTemperature(dev[i], NVML_TEMPERATURE_GPU, &v);
                        nvmlDeviceGetUtilizationRates(dev[i], &u);
                        nvmlDeviceGetMemoryInfo_v2(dev[i], &m);
                        nvmlDeviceGetClockInfo(dev[i], NVML_CLOCK_SM, &v);
                        nvmlDeviceGetClockInfo(dev[i], NVML_CLOCK_MEM, &v);
                        nvmlDeviceGetCurrentClocksEventReasons(dev[i], &r);
                        nvmlDeviceGetPerformanceState(dev[i], &p);
                        nvmlDeviceGetEncoderUtilization(dev[i], &v, &v2);
                        nvmlDeviceGetDecoderUtilization(dev[i], &v, &v2);
                        if (t % 10 == 0) {
                                nvmlEnableState_t a, b;
                                for (unsigned k = 0; k < sizeof(slow_fv) / sizeof(slow_fv[0]); k++)
                                        fv[k].fieldId = slow_fv[k];
                                nvmlDeviceGetFieldValues(dev[i],
                                                         sizeof(slow_fv) / sizeof(slow_fv[0]), fv);
                                nvmlDeviceGetCurrPcieLinkGeneration(dev[i], &v);
                                nvmlDeviceGetCurrPcieLinkWidth(dev[i], &v);
                                nvmlDeviceGetPcieThroughput(dev[i], NVML_PCIE_UTIL_TX_BYTES, &v);
                                nvmlDeviceGetPcieThroughput(dev[i], NVML_PCIE_UTIL_RX_BYTES, &v);
                                nvmlDeviceGetPowerManagementLimit(dev[i], &v);
                                nvmlDeviceGetEnforcedPowerLimit(dev[i], &v);
                                nvmlDeviceGetPersistenceMode(dev[i], &a);
                                nvmlDeviceGetEccMode(dev[i], &a, &b);
                        }
                }
                next.tv_sec += 1;
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
        printf("{\"gpus\": %u, \"seconds\": %d, \"cpu_seconds\": %.6f}\n", n, seconds,
               cpu_s() - c0);
        return 0;
}
