/* expo_workload.c — workloads in /metrics, from the workload module's copy of its last read (no
 * NVML call, no /proc read on the render):
 *   - labels on every per-GPU series (both namings), as dcgm-exporter writes them: with
 *     workload.kubernetes, `pod`, `namespace`, `container` of the one pod on the GPU when its
 *     names are known, and `pod_uid` with workload.pod_uid_label; with workload.pod_labels the
 *     pod's Kubernetes labels (sanitised names; one that would repeat a label of the series is
 *     left out); with workload.slurm, `hpc_job`.
 *     A GPU shared by several pods or jobs carries none of them (the per-process families split
 *     it); a read that is stale carries none either;
 *   - per-process families vigil_gpu_process_* (one series per GPU x PID, bounded by
 *     workload.max_process_series per family; what the cap leaves out is counted);
 *   - the reader's own metrics (reads, duration, errors, processes left out). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "backend/backend.h"
#include "common/vtime.h"
#include "sampler/sampler.h"
#include "workload/workload.h"

static void label(buf *b, const char *name, const char *value, bool first)
{
        if (!first)
                buf_puts(b, ",");
        buf_puts(b, name);
        buf_puts(b, "=\"");
        expo_escape(b, value);
        buf_puts(b, "\"");
}

/* HELP/TYPE; OpenMetrics names a counter family without its _total (as expo.c does). Help texts
 * here hold no character that needs escaping. */
static void family(buf *b, bool om, const char *name, const char *type, const char *help)
{
        size_t nl = strlen(name);

        if (om && !strcmp(type, "counter") && nl > 6 && !strcmp(name + nl - 6, "_total"))
                nl -= 6;
        buf_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)nl, name, help, (int)nl, name, type);
}

/* Label names a series of this file or expo.c may already carry (both namings): a pod label
 * whose sanitised name is one of them, or a configured metrics.labels name, is left out. */
static bool taken(api *a, const char *name)
{
        static const char *const names[] = {"gpu",
                                            "uuid",
                                            "UUID",
                                            "pci_bus_id",
                                            "model",
                                            "modelName",
                                            "device",
                                            "hostname",
                                            "Hostname",
                                            "pod",
                                            "namespace",
                                            "container",
                                            "pod_uid",
                                            "hpc_job",
                                            "pid",
                                            "process_name",
                                            "owner_kind",
                                            "owner",
                                            "GPU_I_ID",
                                            "GPU_I_PROFILE",
                                            "mig_uuid",
                                            "gpu_instance_id",
                                            "compute_instance_id",
                                            "profile",
                                            "serial",
                                            "vbios_version",
                                            "driver_version",
                                            "err_code",
                                            "err_msg",
                                            "le",
                                            "quantile"};

        if (!strncmp(name, "__", 2) || !strncmp(name, "DCGM_FI_", 8))
                return true;
        if (a->opt.dcgm_host_label && !strcmp(name, a->opt.dcgm_host_label))
                return true;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (!strcmp(name, names[i]))
                        return true;
        for (size_t i = 0; i < a->n_labels; i++)
                if (!strcmp(name, a->labels[i].name))
                        return true;
        return false;
}

/* The owner's labels, dcgm-exporter's names; nothing for an owner they do not describe. */
static void owner_labels(api *a, buf *b, const workload_owner *o)
{
        if (o->kind == WL_OWNER_POD && a->opt.workload_pod_labels) {
                if (o->pod[0]) {
                        workload_pod_label pl[WORKLOAD_POD_LABELS_MAX];
                        size_t np =
                            workload_pod_labels(a->opt.workload, o, pl, WORKLOAD_POD_LABELS_MAX);
                        label(b, "pod", o->pod, false);
                        label(b, "namespace", o->ns, false);
                        label(b, "container", o->container, false);
                        for (size_t i = 0; i < np; i++) /* workload.pod_labels */
                                if (!taken(a, pl[i].name))
                                        label(b, pl[i].name, pl[i].value, false);
                }
                if (a->opt.workload_pod_uid)
                        label(b, "pod_uid", o->id, false);
        } else if (o->kind == WL_OWNER_SLURM && a->opt.workload_hpc_job) {
                label(b, "hpc_job", o->id, false);
        }
}

static bool fresh(api *a, int64_t ts)
{
        return time_real_us() - ts <= api_workload_stale_after(a);
}

void expo_workload_labels(api *a, buf *b, unsigned gpu)
{
        workload_owner o;
        workload_process *procs = NULL;
        size_t n = 0;
        int64_t ts = 0;

        if (!a->opt.workload || (!a->opt.workload_pod_labels && !a->opt.workload_hpc_job))
                return;
        if (workload_gpu_processes(a->opt.workload, gpu, &procs, &n, &ts) < 0)
                return;
        free(procs);
        if (!fresh(a, ts) || workload_gpu_owner(a->opt.workload, gpu, &o) < 0)
                return;
        owner_labels(a, b, &o);
}

/* The labels of one process series, without braces. */
static void process_labels(api *a, buf *b, const sampler_gpu *g, const workload_process *p)
{
        char idx[16], pid[16];

        snprintf(idx, sizeof(idx), "%u", g->index);
        snprintf(pid, sizeof(pid), "%u", p->p.pid);
        label(b, "gpu", idx, true);
        label(b, "uuid", g->id.uuid, false);
        label(b, "hostname", a->hostname, false);
        for (size_t i = 0; i < a->n_labels; i++)
                label(b, a->labels[i].name, a->labels[i].value, false);
        label(b, "pid", pid, false);
        label(b, "process_name", p->comm, false);
        label(b, "owner_kind", workload_owner_kind_name(p->owner.kind), false);
        label(b, "owner", p->owner.id, false);
        if (p->p.gpu_instance != UINT32_MAX) {
                char gi[16];
                snprintf(gi, sizeof(gi), "%u", p->p.gpu_instance);
                label(b, "GPU_I_ID", gi, false);
        }
        owner_labels(a, b, &p->owner);
}

enum { F_MEM, F_SM, F_MEMUTIL, F_ENC, F_DEC, F_COUNT };

static const struct {
        const char *name, *help;
} fam[F_COUNT] = {
    [F_MEM] = {"vigil_gpu_process_memory_bytes", "GPU memory used by a process"},
    [F_SM] = {"vigil_gpu_process_sm_utilization_ratio",
              "SM utilisation of a process (mean of the driver's samples since the last read)"},
    [F_MEMUTIL] = {"vigil_gpu_process_memory_utilization_ratio",
                   "Memory bandwidth utilisation of a process"},
    [F_ENC] = {"vigil_gpu_process_encoder_utilization_ratio", "Encoder utilisation of a process"},
    [F_DEC] = {"vigil_gpu_process_decoder_utilization_ratio", "Decoder utilisation of a process"},
};

static bool value_of(const backend_process *p, int f, double *v)
{
        if (f == F_MEM) {
                *v = (double)p->mem_bytes;
                return p->mem_bytes != UINT64_MAX;
        }
        if (p->util_status != 0)
                return false;
        *v = (f == F_SM        ? p->sm_pct
              : f == F_MEMUTIL ? p->mem_pct
              : f == F_ENC     ? p->enc_pct
                               : p->dec_pct) /
             100.0;
        return true;
}

int expo_workload_render(api *a, buf *b, bool om)
{
        unsigned n = sampler_gpu_count(a->opt.sampler);
        workload_process **procs;
        size_t *np, dropped = 0;
        sampler_gpu *gpus;
        workload_stats st;

        if (!a->opt.workload)
                return 0;
        procs = calloc(n ? n : 1, sizeof(*procs));
        np = calloc(n ? n : 1, sizeof(*np));
        gpus = calloc(n ? n : 1, sizeof(*gpus));
        if (!procs || !np || !gpus) {
                free(procs);
                free(np);
                free(gpus);
                return -ENOMEM;
        }
        family(b, om, "vigil_gpu_processes", "gauge",
               "Processes on the GPU (compute and graphics), as last read");
        for (unsigned i = 0; i < n; i++) {
                int64_t ts = 0;
                char idx[16];
                if (sampler_gpu_get(a->opt.sampler, i, &gpus[i]) < 0 ||
                    workload_gpu_processes(a->opt.workload, i, &procs[i], &np[i], &ts) < 0)
                        continue;
                if (!fresh(a, ts)) { /* never an old list as current */
                        free(procs[i]);
                        procs[i] = NULL;
                        np[i] = 0;
                        continue;
                }
                snprintf(idx, sizeof(idx), "%u", i);
                buf_puts(b, "vigil_gpu_processes{");
                label(b, "gpu", idx, true);
                label(b, "uuid", gpus[i].id.uuid, false);
                label(b, "hostname", a->hostname, false);
                for (size_t l = 0; l < a->n_labels; l++)
                        label(b, a->labels[l].name, a->labels[l].value, false);
                buf_printf(b, "} %zu\n", np[i]);
        }
        for (int f = 0; a->opt.workload_process_metrics && f < F_COUNT; f++) {
                unsigned series = 0;
                family(b, om, fam[f].name, "gauge", fam[f].help);
                for (unsigned i = 0; i < n; i++)
                        for (size_t k = 0; k < np[i]; k++) {
                                double v;
                                if (!value_of(&procs[i][k].p, f, &v))
                                        continue;
                                if (series >= a->opt.workload_max_series) {
                                        dropped++;
                                        continue;
                                }
                                series++;
                                buf_printf(b, "%s{", fam[f].name);
                                process_labels(a, b, &gpus[i], &procs[i][k]);
                                buf_printf(b, "} %.17g\n", v);
                        }
        }
        for (unsigned i = 0; i < n; i++)
                free(procs[i]);
        free(procs);
        free(np);
        free(gpus);

        workload_get_stats(a->opt.workload, &st);
        {
                workload_kubelet k;
                workload_kubelet_get(a->opt.workload, &k);
                if (k.enabled) {
                        family(b, om, "vigil_workload_kubelet_up", "gauge",
                               "1 when the kubelet's pod-resources API answered the last read");
                        buf_printf(b, "vigil_workload_kubelet_up %d\n", k.status == 0);
                }
        }
        {
                workload_kubeapi k;
                workload_kubeapi_get(a->opt.workload, &k);
                if (k.enabled && k.requests) { /* unknown (absent) until the first request */
                        family(b, om, "vigil_workload_kube_api_up", "gauge",
                               "1 when the API server answered a pod request of the last read (pod "
                               "labels)");
                        buf_printf(b, "vigil_workload_kube_api_up %d\n", k.up);
                        family(b, om, "vigil_workload_kube_api_requests_total", "counter",
                               "Pod requests to the API server (pod labels)");
                        buf_printf(b, "vigil_workload_kube_api_requests_total %llu\n",
                                   (unsigned long long)k.requests);
                        family(b, om, "vigil_workload_kube_api_errors_total", "counter",
                               "Pod requests that gave no labels (transport, TLS, HTTP "
                               "status, bad answer)");
                        buf_printf(b, "vigil_workload_kube_api_errors_total %llu\n",
                                   (unsigned long long)k.errors);
                }
        }
        family(b, om, "vigil_workload_process_series_dropped", "gauge",
               "Per-process series left out of this page by workload.max_process_series");
        buf_printf(b, "vigil_workload_process_series_dropped %zu\n", dropped);
        family(b, om, "vigil_workload_processes_dropped_total", "counter",
               "Processes left out of reads by workload.max_processes");
        buf_printf(b, "vigil_workload_processes_dropped_total %llu\n",
                   (unsigned long long)st.dropped);
        family(b, om, "vigil_workload_reads_total", "counter",
               "Reads of the processes of every GPU");
        buf_printf(b, "vigil_workload_reads_total %llu\n", (unsigned long long)st.reads);
        family(b, om, "vigil_workload_read_errors_total", "counter",
               "Per-GPU process reads that failed (lost GPUs not counted)");
        buf_printf(b, "vigil_workload_read_errors_total %llu\n", (unsigned long long)st.errors);
        family(b, om, "vigil_workload_read_duration_seconds", "gauge",
               "Wall time of the last read of every GPU's processes");
        buf_printf(b, "vigil_workload_read_duration_seconds %.6f\n", st.last_duration_s);
        return 0;
}
