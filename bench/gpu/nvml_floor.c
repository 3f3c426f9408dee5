/* nvml_floor.c — the floor: a bare C loop making the same NVML calls as vigild's default tiers
 * (fast every 1 s: one FieldValues batch + the cheap getters; slow every 10 s: energy, violation
 * counters, PCIe replay/gen/width/throughput, power limits, ECC mode, persistence), with nothing
 * else: no cache, no HTTP, no exposition. On GPUs with GPM (Hopper and newer) the slow tier also
 * takes one nvmlGpmSampleGet and one nvmlGpmMetricsGet for the three default profiling metrics,
 * as vigild does. Read-only. Runs for SECONDS and prints its CPU time and resident memory.
 * usage: nvml_floor [SECONDS] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvml/fake_ext.h"
#include "nvml/nvml_types.h"

#define LOAD(name) *(void **)&name = dlsym(dl, #name)

static void (*fake_stats)(struct fake_stats *);
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

static nvmlReturn_t (*nvmlGpmQueryDeviceSupport)(nvmlDevice_t, nvmlGpmSupport_t *);
static nvmlReturn_t (*nvmlGpmSampleAlloc)(nvmlGpmSample_t *);
static nvmlReturn_t (*nvmlGpmSampleGet)(nvmlDevice_t, nvmlGpmSample_t);
static nvmlReturn_t (*nvmlGpmMetricsGet)(nvmlGpmMetricsGet_t *);

/* VmRSS and VmHWM of this process in MiB (-1 when /proc cannot be read). */
static void rss_mib(double *rss, double *hwm)
{
        char line[256];
        FILE *f = fopen("/proc/self/status", "r");

        *rss = *hwm = -1;
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                if (!strncmp(line, "VmRSS:", 6))
                        *rss = atof(line + 6) / 1024.0;
                else if (!strncmp(line, "VmHWM:", 6))
                        *hwm = atof(line + 6) / 1024.0;
        }
        fclose(f);
}

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
        static nvmlGpmSample_t gpm[64][2];
        static nvmlGpmMetricsGet_t mg; /* ~13 KiB */
        int gpm_prev[64] = {0};
        unsigned gpms = 0;
        double rss, hwm;
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
        LOAD(nvmlGpmQueryDeviceSupport);
        LOAD(nvmlGpmSampleAlloc);
        LOAD(nvmlGpmSampleGet);
        LOAD(nvmlGpmMetricsGet);
        if (nvmlInit_v2() != NVML_SUCCESS || nvmlDeviceGetCount_v2(&n) != NVML_SUCCESS)
                return 1;
        if (n > 64)
                n = 64;
        for (unsigned i = 0; i < n; i++) {
                nvmlGpmSupport_t sup = {.version = NVML_GPM_SUPPORT_VERSION};
                nvmlDeviceGetHandleByIndex_v2(i, &dev[i]);
                gpm[i][0] = gpm[i][1] = NULL;
                if (nvmlGpmQueryDeviceSupport && nvmlGpmSampleAlloc && nvmlGpmSampleGet &&
                    nvmlGpmMetricsGet && nvmlGpmQueryDeviceSupport(dev[i], &sup) == NVML_SUCCESS &&
                    sup.isSupportedDevice && nvmlGpmSampleAlloc(&gpm[i][0]) == NVML_SUCCESS &&
                    nvmlGpmSampleAlloc(&gpm[i][1]) == NVML_SUCCESS) {
                        nvmlGpmSampleGet(dev[i], gpm[i][0]);
                        gpms++;
                }
        }
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
                                if (gpm[i][1]) {
                                        int cur = !gpm_prev[i];
                                        static const unsigned ids[] = {
                                            NVML_GPM_METRIC_GRAPHICS_UTIL,
                                            NVML_GPM_METRIC_ANY_TENSOR_UTIL,
                                            NVML_GPM_METRIC_DRAM_BW_UTIL};
                                        nvmlGpmSampleGet(dev[i], gpm[i][cur]);
                                        memset(&mg, 0, sizeof(mg));
                                        mg.version = NVML_GPM_METRICS_GET_VERSION;
                                        mg.numMetrics = 3;
                                        mg.sample1 = gpm[i][gpm_prev[i]];
                                        mg.sample2 = gpm[i][cur];
                                        for (unsigned k = 0; k < 3; k++)
                                                mg.metrics[k].metricId = ids[k];
                                        nvmlGpmMetricsGet(&mg);
                                        gpm_prev[i] = cur;
                                }
                        }
                }
                next.tv_sec += 1;
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
        double cpu = cpu_s() - c0;
        rss_mib(&rss, &hwm);
        printf("{\"gpus\": %u, \"gpm_gpus\": %u, \"seconds\": %d, \"cpu_seconds\": %.6f, "
               "\"rss_mib\": %.1f, \"hwm_mib\": %.1f",
               n, gpms, seconds, cpu, rss, hwm);
        /* On Vigil's fake NVML (bench/agent_cost.py --bare-loop): its call count and modelled
         * cost since load, to compare with what vigild asked of the same fake. */
        *(void **)&fake_stats = dlsym(dl, "vigil_fake_stats");
        if (fake_stats) {
                struct fake_stats st = {0};
                fake_stats(&st);
                printf(", \"fake_calls\": %llu, \"fake_cost_seconds\": %.6f", st.calls,
                       (double)st.cost_ns / 1e9);
        }
        printf("}\n");
        return 0;
}
