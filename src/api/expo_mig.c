/* expo_mig.c — the memory of MIG instances in /metrics, from the backend's copy of the last MIG
 * read (no NVML call). Native naming: vigil_mig_memory_{total,used,free}_bytes per instance, with
 * the GPU's labels plus gpu_instance_id, compute_instance_id, profile and mig_uuid. dcgm naming:
 * extra samples of DCGM_FI_DEV_FB_{TOTAL,USED,FREE} per instance, in MiB, with dcgm-exporter's
 * GPU_I_PROFILE and GPU_I_ID labels after modelName (the GPU's gpu, UUID and device labels, as
 * dcgm-exporter prints them for MIG entities). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "backend/backend.h"
#include "sampler/sampler.h"

static void label(buf *b, const char *name, const char *value, bool first)
{
        if (!first)
                buf_puts(b, ",");
        buf_puts(b, name);
        buf_puts(b, "=\"");
        expo_escape(b, value);
        buf_puts(b, "\"");
}

static void help_line(buf *b, bool om, const char *name, const char *help)
{
        buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
        (void)om;
}

void expo_mig_native(api *a, buf *b, bool om)
{
        static const struct {
                const char *name, *help;
        } fam[] = {
            {"vigil_mig_memory_total_bytes", "Memory of a MIG instance"},
            {"vigil_mig_memory_used_bytes", "Memory used in a MIG instance"},
            {"vigil_mig_memory_free_bytes", "Memory free in a MIG instance"},
        };
        unsigned n = sampler_gpu_count(a->opt.sampler);

        for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
                bool header = false;
                for (unsigned i = 0; i < n; i++) {
                        backend_mig_info mi;
                        sampler_gpu g;
                        char idx[16];

                        if (sampler_gpu_get(a->opt.sampler, i, &g) < 0 || !g.up ||
                            backend_mig_get(a->opt.backend, i, &mi) < 0 || mi.status != 0 ||
                            !mi.mode)
                                continue;
                        snprintf(idx, sizeof(idx), "%u", i);
                        for (unsigned k = 0; k < mi.n && k < BACKEND_MIG_MAX; k++) {
                                const backend_mig_instance *in = &mi.inst[k];
                                char gi[16], ci[16];
                                uint64_t v = f == 0   ? in->mem_total
                                             : f == 1 ? in->mem_used
                                                      : in->mem_free;
                                if (in->mem_status != 0)
                                        continue;
                                if (!header) {
                                        help_line(b, om, fam[f].name, fam[f].help);
                                        header = true;
                                }
                                snprintf(gi, sizeof(gi), "%u", in->gpu_instance);
                                snprintf(ci, sizeof(ci), "%u", in->compute_instance);
                                buf_printf(b, "%s{", fam[f].name);
                                label(b, "gpu", idx, true);
                                label(b, "uuid", g.id.uuid, false);
                                label(b, "pci_bus_id", g.id.pci_bus_id, false);
                                label(b, "model", g.id.name, false);
                                label(b, "hostname", a->hostname, false);
                                for (size_t l = 0; l < a->n_labels; l++)
                                        label(b, a->labels[l].name, a->labels[l].value, false);
                                label(b, "gpu_instance_id", gi, false);
                                label(b, "compute_instance_id", ci, false);
                                label(b, "profile", in->profile, false);
                                label(b, "mig_uuid", in->uuid, false);
                                buf_printf(b, "} %llu\n", (unsigned long long)v);
                        }
                }
        }
}

void expo_mig_dcgm(api *a, buf *b, uint16_t field, const char *name, const buf *labels, unsigned n)
{
        char hostkey[64];

        if (field != FLD_FB_TOTAL && field != FLD_FB_USED && field != FLD_FB_FREE)
                return;
        snprintf(hostkey, sizeof(hostkey), ",%s=\"",
                 a->opt.dcgm_host_label ? a->opt.dcgm_host_label : "Hostname");
        for (unsigned i = 0; i < n; i++) {
                backend_mig_info mi;
                const char *lab = labels[i].data, *host;
                sampler_gpu g;

                if (!lab || sampler_gpu_get(a->opt.sampler, i, &g) < 0 || !g.up ||
                    backend_mig_get(a->opt.backend, i, &mi) < 0 || mi.status != 0 || !mi.mode)
                        continue;
                /* dcgm-exporter's order: gpu, UUID, pci_bus_id, device, modelName, GPU_I_PROFILE,
                 * GPU_I_ID, Hostname (or hostname), ... */
                host = strstr(lab, hostkey);
                for (unsigned k = 0; k < mi.n && k < BACKEND_MIG_MAX; k++) {
                        const backend_mig_instance *in = &mi.inst[k];
                        char gi[16];
                        uint64_t v = field == FLD_FB_TOTAL  ? in->mem_total
                                     : field == FLD_FB_USED ? in->mem_used
                                                            : in->mem_free;
                        if (in->mem_status != 0)
                                continue;
                        snprintf(gi, sizeof(gi), "%u", in->gpu_instance);
                        buf_printf(b, "%s{", name);
                        buf_append(b, lab, host ? (size_t)(host - lab) : strlen(lab));
                        label(b, "GPU_I_PROFILE", in->profile, false);
                        label(b, "GPU_I_ID", gi, false);
                        if (host)
                                buf_puts(b, host);
                        buf_printf(b, "} %llu\n", (unsigned long long)(v >> 20)); /* MiB */
                }
        }
}
