/* expo.c — Prometheus text exposition. Rendered once per sampler sweep into a snapshot; a scrape
 * is a reference-counted hand-off of that buffer to libmicrohttpd (no copy, no NVML).
 * Only valid, current readings are written: a field a GPU does not support, and a stale reading
 * (sampler_latest: too old for its interval, or from a GPU that is lost or has a hung call) are
 * left out rather than replaced by a sentinel number or repeated as if new, so that Prometheus
 * marks the series stale (dcgm-exporter likewise skips a value DCGM no longer has).
 * Two namings (native vigil_*, or dcgm-exporter's DCGM_FI_* families chosen by a counters CSV) and
 * two formats (Prometheus text 0.0.4 and OpenMetrics 1.0.0) are rendered from the same readings:
 * both formats are pre-rendered per sweep so a scrape of either stays a hand-off. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "store/service.h"
#include "api-internal.h"
#include "health/gpuconfig.h"
#include "reply.h"
#include "selfmetrics.h"
#include "health/health.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "health/xid.h"

static void label(buf *b, const char *name, const char *value, bool first)
{
        if (!first)
                buf_puts(b, ",");
        buf_puts(b, name);
        buf_puts(b, "=\"");
        expo_escape(b, value);
        buf_puts(b, "\"");
}

/* The label set every per-GPU series carries, without braces. */
static void gpu_labels(api *a, buf *b, const sampler_gpu *g)
{
        char idx[16];

        snprintf(idx, sizeof(idx), "%u", g->index);
        label(b, "gpu", idx, true);
        label(b, "uuid", g->id.uuid, false);
        label(b, "pci_bus_id", g->id.pci_bus_id, false);
        label(b, "model", g->id.name, false);
        label(b, "hostname", a->hostname, false);
        for (size_t i = 0; i < a->n_labels; i++)
                label(b, a->labels[i].name, a->labels[i].value, false);
        expo_workload_labels(a, b, g->index); /* expo_workload.c: pod / hpc_job */
}

/* HELP text: text 0.0.4 escapes backslash and newline; OpenMetrics also the double quote. */
static void help_escape(buf *b, const char *s, bool om)
{
        for (; *s; s++) {
                if (*s == '\\')
                        buf_puts(b, "\\\\");
                else if (*s == '\n')
                        buf_puts(b, "\\n");
                else if (*s == '"' && om)
                        buf_puts(b, "\\\"");
                else
                        buf_append(b, s, 1);
        }
}

/* HELP and TYPE lines. type is "gauge", "counter", "histogram" or "untyped". In OpenMetrics a
 * counter family is named without its _total suffix (its samples keep it); a counter whose
 * samples do not end in _total (dcgm-exporter's names) cannot be an OpenMetrics counter without
 * renaming the series, so it is declared unknown and keeps its name. */
static void family(buf *b, bool om, const char *name, const char *type, const char *help)
{
        size_t nl = strlen(name);

        if (om && !strcmp(type, "counter")) {
                if (nl > 6 && !strcmp(name + nl - 6, "_total"))
                        nl -= 6;
                else
                        type = "unknown";
        } else if (om && !strcmp(type, "untyped")) {
                type = "unknown";
        }
        buf_printf(b, "# HELP %.*s ", (int)nl, name);
        help_escape(b, help, om);
        buf_printf(b, "\n# TYPE %.*s %s\n", (int)nl, name, type);
}

static void number(buf *b, double v)
{
        if (isnan(v))
                buf_puts(b, "NaN");
        else if (isinf(v))
                buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        else if (v == (double)(long long)v && fabs(v) < 1e15)
                buf_printf(b, "%lld", (long long)v);
        else
                buf_printf(b, "%.15g", v);
}

/* The latest reading of (gpu, field) when it is valid and current (sampler_latest), else false:
 * the one test every per-GPU reading of /metrics passes. */
static bool current(api *a, unsigned gpu, uint16_t field, field_value *v)
{
        sampler_reading rd;

        if (sampler_latest(a->opt.sampler, gpu, field, 0, &rd) < 0 || rd.v.status != 0 ||
            rd.fresh != SAMPLER_FRESH)
                return false;
        *v = rd.v;
        return true;
}

/* Answering: attached and without a sample call the watchdog gave up on. */
static bool answering(const sampler_gpu *g)
{
        return g->up && !g->stuck;
}

static const struct {
        unsigned long long bit; /* NVML clock event reason */
        const char *reason;     /* label value */
} clock_reasons[] = {
    {0x1, "gpu_idle"},
    {0x2, "applications_clocks_setting"},
    {0x4, "sw_power_cap"},
    {0x8, "hw_slowdown"},
    {0x10, "sync_boost"},
    {0x20, "sw_thermal_slowdown"},
    {0x40, "hw_thermal_slowdown"},
    {0x80, "hw_power_brake_slowdown"},
};

/* One sample of a hostengine family: the name, gpu_id (the seed's alerts print it), then the
 * GPU's native labels. */
static void hostengine_sample(buf *b, const char *name, const sampler_gpu *g, const buf *lab,
                              double v)
{
        buf_printf(b, "%s{gpu_id=\"%u\",%s} ", name, g->index, lab->data);
        number(b, v);
        buf_puts(b, "\n");
}

/* The families of the hostengine monitoring config that the product's seed ships (its
 * prometheus-config.yaml scrapes port 5555 as job dcgm-hostengine; dcgm-alerts.yml alerts on
 * these five expressions), so that config works against vigild unchanged (docs/metrics.md,
 * "The seed's hostengine config"). Same truthfulness rules as the native families: a stale or
 * unsupported reading is left out. */
static void render_hostengine(api *a, buf *b, bool om, const sampler_gpu *gpus, const buf *lab,
                              unsigned n)
{
        static const struct {
                const char *name;
                uint16_t field;
                const char *help;
        } gauges[] = {
            {"dcgm_gpu_temperature_celsius", FLD_GPU_TEMP,
             "GPU core temperature (vigil_gpu_temperature_celsius, hostengine name)"},
            {"dcgm_gpu_memory_usage_bytes", FLD_FB_USED,
             "Used framebuffer memory (vigil_gpu_memory_used_bytes, hostengine name)"},
            {"dcgm_gpu_memory_total_bytes", FLD_FB_TOTAL,
             "Total framebuffer memory (vigil_gpu_memory_total_bytes, hostengine name)"},
        };
        int64_t now = time_real_us();
        bool header;

        for (size_t k = 0; k < sizeof(gauges) / sizeof(gauges[0]); k++) {
                const field_meta *m = field_by_id(gauges[k].field);
                header = false;
                for (unsigned i = 0; i < n; i++) {
                        field_value v;
                        if (!gpus[i].up || !m || !current(a, i, m->id, &v))
                                continue;
                        if (!header) {
                                family(b, om, gauges[k].name, "gauge", gauges[k].help);
                                header = true;
                        }
                        hostengine_sample(b, gauges[k].name, &gpus[i], &lab[i],
                                          (m->type == FT_F64 ? v.d : (double)v.i) *
                                              m->native_scale);
                }
        }

        /* Errors: XIDs of every code plus volatile double-bit ECC errors, the sum
         * GPUErrorRateHigh uses. A GPU without ECC counts XIDs only; a DBE count that is
         * supported but stale leaves the series out, since a sum without it would read as a
         * counter reset. */
        header = false;
        for (unsigned i = 0; i < n; i++) {
                sampler_reading rd;
                field_value x;
                double sum;

                if (!gpus[i].up || !current(a, i, FLD_XID_COUNT, &x))
                        continue;
                sum = (double)x.i;
                if (sampler_latest(a->opt.sampler, i, FLD_ECC_DBE_VOL_TOTAL, 0, &rd) >= 0 &&
                    rd.v.status == 0) {
                        if (rd.fresh != SAMPLER_FRESH)
                                continue;
                        sum += (double)rd.v.i;
                }
                if (!header) {
                        family(b, om, "dcgm_gpu_errors_total", "counter",
                               "XID errors (all codes) plus volatile double-bit ECC errors");
                        header = true;
                }
                hostengine_sample(b, "dcgm_gpu_errors_total", &gpus[i], &lab[i], sum);
        }

        /* Collection latency: how old the GPU's newest reading is. About the fast interval while
         * sampling works; it grows while a call on the GPU hangs, the GPU is lost or sampling
         * stops, where the readings themselves are left out. */
        header = false;
        for (unsigned i = 0; i < n; i++) {
                if (!gpus[i].last_seen_us)
                        continue;
                if (!header) {
                        family(b, om, "dcgm_collection_latency_seconds", "gauge",
                               "Seconds since the GPU's last completed sample");
                        header = true;
                }
                hostengine_sample(
                    b, "dcgm_collection_latency_seconds", &gpus[i], &lab[i],
                    now > gpus[i].last_seen_us ? (double)(now - gpus[i].last_seen_us) / 1e6 : 0.0);
        }
}

int expo_render_native(api *a, buf *b, bool om)
{
        sampler *e = a->opt.sampler;
        unsigned n = sampler_gpu_count(e);
        sampler_gpu *gpus = calloc(n ? n : 1, sizeof(*gpus));
        buf *lab = calloc(n ? n : 1, sizeof(*lab));
        sampler_stats st;
        const char *driver, *nvml;
        static const char *const tiers[] = {[TIER_FAST] = "fast", [TIER_SLOW] = "slow"};

        if (!gpus || !lab) {
                free(gpus);
                free(lab);
                return -ENOMEM;
        }
        sampler_versions(e, &driver, &nvml);
        for (unsigned i = 0; i < n; i++) {
                sampler_gpu_get(e, i, &gpus[i]);
                buf_init(&lab[i], 4096);
                gpu_labels(a, &lab[i], &gpus[i]);
        }

        family(b, om, "vigil_build_info", "gauge", "Vigil version; always 1");
        buf_printf(b, "vigil_build_info{version=\"%s\"} 1\n", VIGIL_VERSION);
        family(b, om, "vigil_gpus", "gauge", "GPUs discovered on this node");
        buf_printf(b, "vigil_gpus %u\n", n);

        family(b, om, "vigil_gpu_info", "gauge", "GPU identity as labels; always 1");
        for (unsigned i = 0; i < n; i++) {
                buf_printf(b, "vigil_gpu_info{%s", lab[i].data);
                label(b, "serial", gpus[i].id.serial, false);
                label(b, "vbios_version", gpus[i].id.vbios, false);
                label(b, "driver_version", driver, false);
                buf_puts(b, "} 1\n");
        }
        family(
            b, om, "vigil_gpu_up", "gauge",
            "1 when the GPU answers, 0 when it is lost (fell off the bus) or a sample call on it "
            "hangs (see vigil_gpu_responsive): its readings are then not exported");
        for (unsigned i = 0; i < n; i++)
                buf_printf(b, "vigil_gpu_up{%s} %d\n", lab[i].data, answering(&gpus[i]) ? 1 : 0);

        for (size_t f = 0; f < field_count(); f++) {
                const field_meta *m = field_at(f);
                bool header = false;
                if (!m->native)
                        continue;
                for (unsigned i = 0; i < n; i++) {
                        field_value v;
                        double x;
                        if (!gpus[i].up || !current(a, i, m->id, &v))
                                continue;
                        x = m->type == FT_F64 ? v.d : (double)v.i;
                        if (!header) {
                                family(b, om, m->native,
                                       m->kind == FK_COUNTER ? "counter" : "gauge", m->help);
                                header = true;
                        }
                        buf_printf(b, "%s{%s} ", m->native, lab[i].data);
                        if (m->type == FT_I64 && m->native_scale == 1.0)
                                buf_printf(b, "%lld\n", (long long)v.i);
                        else {
                                number(b, x * m->native_scale);
                                buf_puts(b, "\n");
                        }
                }
        }

        /* Clock event reasons, one 0/1 series per reason: alertable without bit arithmetic. */
        {
                bool header = false;
                for (unsigned i = 0; i < n; i++) {
                        field_value v;
                        if (!gpus[i].up || !current(a, i, FLD_CLOCKS_EVENT_REASONS, &v))
                                continue;
                        if (!header) {
                                family(b, om, "vigil_gpu_clock_event_active", "gauge",
                                       "1 while the reason holds clocks down");
                                header = true;
                        }
                        for (size_t k = 0; k < sizeof(clock_reasons) / sizeof(clock_reasons[0]);
                             k++)
                                buf_printf(b, "vigil_gpu_clock_event_active{%s,reason=\"%s\"} %d\n",
                                           lab[i].data, clock_reasons[k].reason,
                                           ((unsigned long long)v.i & clock_reasons[k].bit) ? 1
                                                                                            : 0);
                }
        }

        /* XIDs per code: counters that only ever increase. The family is always declared so
         * dashboards and rules find it before the first XID. */
        {
                bool header = true;

                family(b, om, "vigil_gpu_xid_errors_total", "counter",
                       "XID errors reported by the driver, per XID code");
                for (unsigned i = 0; i < n; i++) {
                        sampler_xid x[ENGINE_MAX_XID_CODES];
                        size_t nx = sampler_xids(e, i, x, ENGINE_MAX_XID_CODES);
                        for (size_t k = 0; k < nx; k++) {
                                if (!header) {
                                        family(b, om, "vigil_gpu_xid_errors_total", "counter",
                                               "XID errors reported by the driver, per XID code");
                                        header = true;
                                }
                                buf_printf(b, "vigil_gpu_xid_errors_total{%s,xid=\"%u\"} %llu\n",
                                           lab[i].data, x[k].code, (unsigned long long)x[k].count);
                        }
                }
        }

        sampler_get_stats(e, &st);
        family(b, om, "vigil_collection_duration_seconds", "histogram",
               "Wall time of one sweep of a sampling tier over all GPUs");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++) {
                const sampler_tier_stats *ts = &st.tier[t];
                for (int k = 0; k < ENGINE_HIST_BUCKETS; k++)
                        buf_printf(
                            b,
                            "vigil_collection_duration_seconds_bucket{tier=\"%s\",le=\"%g\"} "
                            "%llu\n",
                            tiers[t], sampler_hist_bounds[k], (unsigned long long)ts->buckets[k]);
                buf_printf(b,
                           "vigil_collection_duration_seconds_bucket{tier=\"%s\",le=\"+Inf\"} "
                           "%llu\n",
                           tiers[t], (unsigned long long)ts->sweeps);
                buf_printf(b, "vigil_collection_duration_seconds_sum{tier=\"%s\"} %.9f\n", tiers[t],
                           ts->sum_duration_s);
                buf_printf(b, "vigil_collection_duration_seconds_count{tier=\"%s\"} %llu\n",
                           tiers[t], (unsigned long long)ts->sweeps);
        }
        family(b, om, "vigil_collection_sweeps_total", "counter", "Completed sweeps per tier");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                buf_printf(b, "vigil_collection_sweeps_total{tier=\"%s\"} %llu\n", tiers[t],
                           (unsigned long long)st.tier[t].sweeps);
        family(b, om, "vigil_collection_late_sweeps_total", "counter",
               "Sweeps that started more than half an interval late");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                buf_printf(b, "vigil_collection_late_sweeps_total{tier=\"%s\"} %llu\n", tiers[t],
                           (unsigned long long)st.tier[t].late);
        family(b, om, "vigil_collection_interval_seconds", "gauge", "Configured interval per tier");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                buf_printf(b, "vigil_collection_interval_seconds{tier=\"%s\"} %g\n", tiers[t],
                           (double)st.tier[t].interval_us / 1e6);
        family(b, om, "vigil_collection_last_sweep_timestamp_seconds", "gauge",
               "Unix time at which the last sweep of a tier completed");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                if (st.tier[t].last_sweep_us)
                        buf_printf(b,
                                   "vigil_collection_last_sweep_timestamp_seconds{tier=\"%s\"} "
                                   "%.6f\n",
                                   tiers[t], (double)st.tier[t].last_sweep_us / 1e6);
        family(b, om, "vigil_events_total", "counter", "NVML events received (XID, ECC)");
        buf_printf(b, "vigil_events_total %llu\n", (unsigned long long)st.events);
        {
                cache_stats cs;
                cache_get_stats(a->opt.cache, &cs);
                family(b, om, "vigil_cache_bytes", "gauge", "Memory reserved for sample history");
                buf_printf(b, "vigil_cache_bytes %llu\n", (unsigned long long)cs.bytes);
                family(b, om, "vigil_cache_samples", "gauge", "Samples held in history");
                buf_printf(b, "vigil_cache_samples %llu\n", (unsigned long long)cs.samples);
        }
        render_hostengine(a, b, om, gpus, lab, n);
        expo_mig_native(a, b, om);      /* expo_mig.c: MIG instances' memory */
        expo_workload_render(a, b, om); /* expo_workload.c: processes (native naming only) */
        selfmetrics_render(a, b, om);   /* selfmetrics.c: logger, NVML calls, process, HTTP, ... */
        backup_service_metrics(a->opt.backup, b, om); /* store, backups, keys (service.h) */
        expo_render_diag(a, b, om);                   /* last diagnostic run (h_diag.c) */

        if (om)
                buf_puts(b, "# EOF\n");
        for (unsigned i = 0; i < n; i++)
                buf_release(&lab[i]);
        free(lab);
        free(gpus);
        return b->err;
}

/* Value of a label-type counters entry for one GPU, or NULL when the GPU does not provide it
 * (the label is then left out). Numeric fields used as labels print their latest reading. */
static const char *label_value(api *a, const counter_entry *ce, const sampler_gpu *g,
                               const char *driver, const char *nvml, char *tmp, size_t tmplen)
{
        const char *v = NULL;
        field_value fv;

        if (ce->src != CS_FIELD)
                return NULL;
        switch (ce->field->id) {
        case FLD_DRIVER_VERSION:
                v = driver;
                break;
        case FLD_NVML_VERSION:
                v = nvml;
                break;
        case FLD_NAME:
                v = g->id.name;
                break;
        case FLD_SERIAL:
                v = g->id.serial;
                break;
        case FLD_UUID:
                v = g->id.uuid;
                break;
        case FLD_PCI_BUSID:
                v = g->id.pci_bus_id;
                break;
        case FLD_VBIOS_VERSION:
                v = g->id.vbios;
                break;
        case FLD_INFOROM_IMAGE_VER:
                v = g->id.inforom;
                break;
        case FLD_MINOR_NUMBER:
                if (g->id.minor < 0)
                        return NULL;
                snprintf(tmp, tmplen, "%d", g->id.minor);
                return tmp;
        default:
                if (ce->field->type == FT_STR || !current(a, g->index, ce->field->id, &fv))
                        return NULL;
                if (ce->field->type == FT_F64)
                        snprintf(tmp, tmplen, "%g", fv.d);
                else
                        snprintf(tmp, tmplen, "%lld", (long long)fv.i);
                return tmp;
        }
        return v && v[0] ? v : NULL;
}

/* dcgm-exporter's per-GPU label set, in its order: gpu, UUID, pci_bus_id, device, modelName,
 * Hostname (hostname with metrics.dcgm_exporter_compat: main), the CSV's label-type fields, then metrics.extra_labels. */
static void dcgm_labels(api *a, buf *b, const sampler_gpu *g, const char *driver, const char *nvml)
{
        const counter_set *cs = a->counters;
        char idx[16], dev[32], tmp[64];

        snprintf(idx, sizeof(idx), "%u", g->index);
        snprintf(dev, sizeof(dev), "nvidia%d", g->id.minor >= 0 ? g->id.minor : (int)g->index);
        label(b, "gpu", idx, true);
        label(b, cs->legacy ? "uuid" : "UUID", g->id.uuid, false); /* 1.x names: 1.x label */
        label(b, "pci_bus_id", g->id.pci_bus_id, false);
        label(b, "device", dev, false);
        label(b, "modelName", g->id.name, false);
        label(b, a->opt.dcgm_host_label ? a->opt.dcgm_host_label : "Hostname", a->hostname, false);
        for (size_t k = 0; k < cs->n; k++) {
                const counter_entry *ce = &cs->entries[k];
                const char *v;
                if (ce->type != CT_LABEL)
                        continue;
                v = label_value(a, ce, g, driver, nvml, tmp, sizeof(tmp));
                if (v)
                        label(b, ce->name, v, false);
        }
        for (size_t i = 0; i < a->n_labels; i++)
                label(b, a->labels[i].name, a->labels[i].value, false);
        expo_workload_labels(a, b, g->index); /* expo_workload.c: pod / hpc_job */
}

static const char *counter_prom_type(enum counter_type t)
{
        switch (t) {
        case CT_GAUGE:
                return "gauge";
        case CT_COUNTER:
                return "counter";
        default:
                return "untyped"; /* one value per series is not a histogram or a summary */
        }
}

/* dcgm-exporter naming: exactly the CSV's families, names, types and help, values in DCGM units
 * (the stored units). A lost or hung GPU exports no readings; an unsupported field and a stale
 * reading are left out, as dcgm-exporter skips a blank or non-OK value. */
int expo_render_dcgm(api *a, buf *b, bool om)
{
        sampler *e = a->opt.sampler;
        const counter_set *cs = a->counters;
        unsigned n = sampler_gpu_count(e);
        sampler_gpu *gpus = calloc(n ? n : 1, sizeof(*gpus));
        buf *lab = calloc(n ? n : 1, sizeof(*lab));
        const char *driver, *nvml;

        if (!gpus || !lab) {
                free(gpus);
                free(lab);
                return -ENOMEM;
        }
        sampler_versions(e, &driver, &nvml);
        for (unsigned i = 0; i < n; i++) {
                sampler_gpu_get(e, i, &gpus[i]);
                buf_init(&lab[i], 4096);
                dcgm_labels(a, &lab[i], &gpus[i], driver, nvml);
        }
        for (size_t k = 0; k < cs->n; k++) {
                const counter_entry *ce = &cs->entries[k];
                const field_meta *m = ce->field;
                bool header = false;

                if (ce->type == CT_LABEL || ce->src != CS_FIELD)
                        continue;
                for (unsigned i = 0; i < n; i++) {
                        field_value v;
                        if (!gpus[i].up || !current(a, i, m->id, &v))
                                continue;
                        if (m->type == FT_F64 && !isfinite(v.d))
                                continue;
                        if (!header) {
                                family(b, om, ce->name, counter_prom_type(ce->type), ce->help);
                                header = true;
                        }
                        buf_printf(b, "%s{%s", ce->name, lab[i].data);
                        if (m->id == FLD_XID_ERRORS) {
                                char code[24];
                                snprintf(code, sizeof(code), "%lld", (long long)v.i);
                                label(b, "err_code", code, false);
                                label(b, "err_msg",
                                      v.i < 0 || v.i > UINT32_MAX ? "Unknown Error"
                                                                  : xid_err_msg((uint32_t)v.i),
                                      false);
                        }
                        buf_puts(b, "} ");
                        if (m->type == FT_I64)
                                buf_printf(b, "%lld\n", (long long)v.i);
                        else {
                                number(b, v.d);
                                buf_puts(b, "\n");
                        }
                }
                if (header) /* expo_mig.c: the MIG instances' FB_* samples */
                        expo_mig_dcgm(a, b, m->id, ce->name, lab, n);
        }
        if (om)
                buf_puts(b, "# EOF\n");
        for (unsigned i = 0; i < n; i++)
                buf_release(&lab[i]);
        free(lab);
        free(gpus);
        return b->err;
}

/* Label sets for the health families (health_render_metrics), in the active naming. */
static void health_labels(void *userdata, unsigned gpu, buf *b)
{
        api *a = userdata;
        sampler_gpu g;
        const char *driver = "", *nvml = "";

        if (sampler_gpu_get(a->opt.sampler, gpu, &g) < 0)
                return;
        if (a->counters) {
                sampler_versions(a->opt.sampler, &driver, &nvml);
                dcgm_labels(a, b, &g, driver, nvml);
        } else {
                gpu_labels(a, b, &g);
        }
}

/* Append the health families before OpenMetrics' "# EOF". */
static int render_health(api *a, buf *b, bool om)
{
        if (!a->opt.health && !a->opt.gpuconfig)
                return 0;
        if (om && b->len >= 6 && !strcmp(b->data + b->len - 6, "# EOF\n"))
                b->data[b->len -= 6] = '\0';
        /* dcgm naming: only dcgm-exporter's opt-in DCGM_EXP_GPU_HEALTH_STATUS, when the counters
         * file lists it (as dcgm-exporter does); native naming: the vigil_* health families. */
        if (a->counters && !counters_has_health(a->counters))
                goto out;
        if (a->opt.health)
                health_render_metrics(a->opt.health, b, a->counters != NULL, om, health_labels, a);
        if (!a->counters && a->opt.gpuconfig) /* vigil_gpu_config_* (native naming only) */
                gpuconfig_render_metrics(a->opt.gpuconfig, b, om, health_labels, a);
out:
        if (om)
                buf_puts(b, "# EOF\n");
        return b->err;
}

/* Render one variant into the shared buffer and wrap a right-sized copy in a snapshot. */
static snapshot *render_one(api *a, bool om)
{
        snapshot *s = NULL;
        char *data;
        size_t len;
        int r;

        buf_reset(&a->render_buf);
        r = a->counters ? expo_render_dcgm(a, &a->render_buf, om)
                        : expo_render_native(a, &a->render_buf, om);
        if (r >= 0)
                r = render_health(a, &a->render_buf, om);
        if (r < 0) {
                log_error("http", "failed to render /metrics (%s): %s", om ? "OpenMetrics" : "text",
                          strerror(-r));
                return NULL;
        }
        /* Hand a right-sized copy to the snapshot; keep the big buffer for the next render. An
         * empty page (dcgm naming, no listed field provided yet) leaves the buffer unallocated. */
        len = a->render_buf.len;
        data = malloc(len + 1);
        if (!data)
                return NULL;
        if (len)
                memcpy(data, a->render_buf.data, len);
        data[len] = '\0';
        if (snapshot_new(data, len, time_real_us(), &s) < 0)
                return NULL;
        return s;
}

/* When /metrics is rendered. A variant (text or OpenMetrics) is rendered at most once per sweep,
 * and only for a scraper:
 *   - scrapers that come at least as often as sweeps (gap <= 2 sweeps): it is rendered right
 *     after each sweep, so their scrape is a hand-off of ready bytes;
 *   - scrapers that come less often (Prometheus every 15 s against a 1 s fast tier): the first
 *     scrape after a sweep renders it, and concurrent scrapers share that render. Rendering after
 *     every sweep would cost 15 renders for each page anyone reads;
 *   - nobody asked in RENDER_KEEP_US: nothing is rendered.
 * Either way no scrape is ever answered with a page older than the last sweep. */
#define RENDER_KEEP_US (300 * USEC_PER_SEC)

/* Whether snapshot s (NULL ok) can be served at now: rendered after the last sweep, and not long
 * ago. The second half matters when no sweep comes (sampling threads stuck): a render then drops
 * the readings that have gone stale, where the old page would serve them as current for as long
 * as the threads stay stuck. */
static bool snapshot_current(api *a, snapshot *s, int64_t now)
{
        return s && snapshot_ts(s) >= atomic_load(&a->last_sweep_us) &&
               now - snapshot_ts(s) <= SAMPLER_STALE_MIN_US / 2;
}

/* Render variant om unless a current render was published meanwhile (two scrapers racing for the
 * same sweep render once). */
static void render_variant(api *a, bool om)
{
        snapshot_slot *slot = om ? &a->metrics_om : &a->metrics;
        snapshot *s;

        pthread_mutex_lock(&a->render_lock);
        s = snapshot_slot_get(slot);
        if (snapshot_current(a, s, time_real_us())) {
                snapshot_unref(s);
                pthread_mutex_unlock(&a->render_lock);
                return;
        }
        snapshot_unref(s);
        s = render_one(a, om);
        pthread_mutex_unlock(&a->render_lock);
        if (s)
                snapshot_slot_publish(slot, s);
}

/* Once per counter set, after the first sweep that saw it: how many families the page has
 * (the count a user finds on /metrics) and which listed fields these GPUs do not provide. */
static void log_exported(api *a)
{
        const counter_set *cs;
        unsigned n;
        size_t shown = 0;
        char missing[512] = "";
        size_t ml = 0;
        sampler_stats st;

        /* both tiers must have read once, or a slow-tier field would look unsupported */
        sampler_get_stats(a->opt.sampler, &st);
        if (!st.tier[TIER_FAST].sweeps || !st.tier[TIER_SLOW].sweeps)
                return;
        pthread_mutex_lock(&a->render_lock);
        cs = a->counters;
        if (!cs || a->logged_counters == cs) {
                pthread_mutex_unlock(&a->render_lock);
                return;
        }
        a->logged_counters = cs;
        n = sampler_gpu_count(a->opt.sampler);
        for (size_t k = 0; k < cs->n; k++) {
                const counter_entry *ce = &cs->entries[k];
                bool any = false;
                if (ce->type == CT_LABEL)
                        continue;
                if (ce->src == CS_HEALTH)
                        any = a->opt.health != NULL;
                for (unsigned i = 0; ce->src == CS_FIELD && i < n && !any; i++) {
                        field_value v;
                        any = current(a, i, ce->field->id, &v);
                }
                if (any)
                        shown++;
                else if (ml + 4 < sizeof(missing))
                        ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "%s%s",
                                               ml ? ", " : "", ce->name);
        }
        pthread_mutex_unlock(&a->render_lock);
        if (ml >= sizeof(missing))
                ml = sizeof(missing) - 1;
        log_info("http", "exporting %zu dcgm-exporter families%s%s%s", shown,
                 missing[0] ? " (not provided by these GPUs: " : "", missing,
                 missing[0] ? ")" : "");
}

/* dcgm-exporter re-reads its counters file when it changes (at most every 2 s); so does this,
 * on the sweep event: a stat of the file, and a parse only when its identity changed. A file
 * that no longer parses keeps the families in use and is reported once. SIGHUP still reloads
 * the whole configuration (api_set_metrics). */
#define COUNTERS_CHECK_US (2 * USEC_PER_SEC)

static void watch_counters(api *a)
{
        int64_t now = time_mono_us();
        _cleanup_free_ char *path = NULL;
        uint64_t id = 0, fid;
        counter_set *ns = NULL, *old;
        struct stat st;
        char err[512];
        int r;

        int64_t last = atomic_load(&a->counters_checked_us);

        /* Both tiers' sweeps come here: one of them wins the check for this period. */
        if (now - last < COUNTERS_CHECK_US ||
            !atomic_compare_exchange_strong(&a->counters_checked_us, &last, now))
                return;
        pthread_mutex_lock(&a->render_lock);
        if (a->counters && a->counters->path) {
                path = strdup(a->counters->path);
                id = a->counters->file_id;
        }
        pthread_mutex_unlock(&a->render_lock);
        if (!path || stat(path, &st) < 0)
                return;
        fid = counters_file_id(&st);
        if (fid == id || fid == a->counters_bad_id)
                return;
        r = counters_load(path, &ns, err, sizeof(err));
        if (r < 0) {
                a->counters_bad_id = fid;
                log_error("http",
                          "failed to re-read the counters file: %s; keeping the families "
                          "in use",
                          err);
                return;
        }
        counters_log(ns, path);
        pthread_mutex_lock(&a->render_lock);
        old = a->own_counters;
        a->own_counters = ns;
        a->counters = ns;
        a->opt.counters = ns;
        expo_pin_profiling(ns, a->opt.sampler);
        pthread_mutex_unlock(&a->render_lock);
        counters_free(old);
        log_info("http", "counters file '%s' changed: re-read", path);
}

void api_render(api *a)
{
        int64_t now = time_real_us(), prev = atomic_exchange(&a->last_sweep_us, now);

        if (prev)
                atomic_store(&a->sweep_gap_us, now - prev);
        watch_counters(a);
        log_exported(a);
        for (int v = 0; v < 2; v++) {
                int64_t wanted = atomic_load(&a->last_wanted_us[v]);
                int64_t gap = atomic_load(&a->scrape_gap_us[v]);
                int64_t sweep = atomic_load(&a->sweep_gap_us);
                if (!wanted || now - wanted >= RENDER_KEEP_US)
                        continue; /* nobody reads this variant */
                if (gap > 0 && sweep > 0 && gap <= 2 * sweep)
                        render_variant(a, v == 1); /* frequent scraper: render ahead */
        }
}

static void unref_snapshot(void *cls)
{
        snapshot_unref(cls);
}

/* True when the Accept header asks for OpenMetrics with a q above zero. Prometheus sends
 * "application/openmetrics-text;version=1.0.0,…;q=0.75,text/plain;version=0.0.4;q=0.5,…". */
static bool wants_openmetrics(const char *accept)
{
        const char *p = accept;

        while (p && (p = strstr(p, "application/openmetrics-text"))) {
                const char *end = strchrnul(p, ',');
                const char *q = strstr(p, "q=");
                if (!q || q > end || strtod(q + 2, NULL) > 0)
                        return true;
                p = end;
        }
        return false;
}

/* True when Accept-Encoding lists gzip (or *) without q=0. */
static bool wants_gzip(const char *ae)
{
        const char *p = ae;

        while (p && *p) {
                const char *end = strchrnul(p, ',');
                const char *q;
                size_t n;
                while (*p == ' ' || *p == '\t')
                        p++;
                n = strcspn(p, " \t;,");
                if ((n == 4 && !strncasecmp(p, "gzip", 4)) || (n == 1 && *p == '*')) {
                        q = strstr(p, "q=");
                        if (!q || q > end || strtod(q + 2, NULL) > 0)
                                return true;
                }
                p = *end ? end + 1 : end;
        }
        return false;
}

/* gzip of src (a rendered page), or NULL when it cannot be compressed. Caller owns the result. */
static snapshot *gzip_of(const snapshot *src)
{
        z_stream z = {0};
        size_t cap;
        char *out;
        snapshot *s = NULL;
        int r;

        /* windowBits 15 + 16: a gzip wrapper; level 6 (zlib's default): on a /metrics page it
         * is what gzip(1) uses by default; bench/RESULTS.md has its cost per page. */
        if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                return NULL;
        cap = deflateBound(&z, snapshot_len(src)) + 64;
        out = malloc(cap);
        if (!out) {
                deflateEnd(&z);
                return NULL;
        }
        z.next_in = (Bytef *)snapshot_data(src);
        z.avail_in = (uInt)snapshot_len(src);
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        r = deflate(&z, Z_FINISH);
        deflateEnd(&z);
        if (r != Z_STREAM_END || snapshot_new(out, z.total_out, snapshot_ts(src), &s) < 0) {
                if (r != Z_STREAM_END)
                        free(out);
                return NULL;
        }
        return s;
}

/* The gzip twin of src (variant om): compressed once per rendered snapshot and shared by every
 * gzip scraper until the next render. NULL when compression fails (serve src plain). */
static snapshot *gzip_twin(api *a, bool om, const snapshot *src)
{
        snapshot *g;

        pthread_mutex_lock(&a->gzip_lock);
        g = snapshot_slot_get(&a->metrics_gz[om]);
        if (!g || snapshot_ts(g) != snapshot_ts(src)) {
                snapshot_unref(g);
                g = gzip_of(src);
                if (g) {
                        snapshot_ref(g);
                        snapshot_slot_publish(&a->metrics_gz[om], g);
                }
        }
        pthread_mutex_unlock(&a->gzip_lock);
        return g;
}

enum MHD_Result h_metrics(request *r)
{
        const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
        /* dcgm naming serves what dcgm-exporter serves, text 0.0.4 whatever Accept says: its
         * counters (DCGM_FI_PROF_PCIE_TX_BYTES …) have no _total and would turn "unknown" in
         * OpenMetrics, which breaks rate() recording rules written against dcgm-exporter. */
        bool om = !atomic_load(&r->api->dcgm) && wants_openmetrics(accept);
        snapshot_slot *slot = om ? &r->api->metrics_om : &r->api->metrics;
        snapshot *s = snapshot_slot_get(slot);
        bool gz = false;

        int64_t now = time_real_us(), prev = atomic_exchange(&r->api->last_wanted_us[om], now);

        if (prev && now > prev)
                atomic_store(&r->api->scrape_gap_us[om], now - prev);
        if (!snapshot_current(r->api, s, now)) {
                /* not rendered since the last sweep (or no sweep came for a while): render it
                 * now, once */
                snapshot_unref(s);
                render_variant(r->api, om);
                s = snapshot_slot_get(slot);
                if (!s)
                        return api_reply_errno(r, -EAGAIN, "metrics are not rendered yet");
        }
        if (wants_gzip(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept-Encoding"))) {
                snapshot *g = gzip_twin(r->api, om, s);
                if (g) {
                        snapshot_unref(s);
                        s = g;
                        gz = true;
                }
        }
        /* a hand-off of the snapshot: unref_snapshot runs when libmicrohttpd is done */
        return api_reply_static(r, 200, snapshot_data(s), snapshot_len(s),
                                om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                   : "text/plain; version=0.0.4; charset=utf-8",
                                "Accept, Accept-Encoding", gz ? "gzip" : NULL, unref_snapshot, s);
}
