/* expo.c — Prometheus text exposition. Rendered once per sampler sweep into a snapshot; a scrape
 * is a reference-counted hand-off of that buffer to libmicrohttpd (no copy, no NVML).
 * Only valid readings are written: a field a GPU does not support, or any reading of a GPU that
 * stopped answering, is left out rather than replaced by a sentinel number.
 * Two namings (native vigil_*, or dcgm-exporter's DCGM_FI_* families chosen by a counters CSV) and
 * two formats (Prometheus text 0.0.4 and OpenMetrics 1.0.0) are rendered from the same readings:
 * both formats are pre-rendered per sweep so a scrape of either stays a hand-off. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "common/log.h"
#include "common/vtime.h"
#include "health/xid.h"

int expo_escape(buf *b, const char *s)
{
        const char *run = s;

        for (; *s; s++) {
                const char *rep = NULL;
                if (*s == '\\')
                        rep = "\\\\";
                else if (*s == '"')
                        rep = "\\\"";
                else if (*s == '\n')
                        rep = "\\n";
                if (!rep)
                        continue;
                buf_append(b, run, (size_t)(s - run));
                buf_puts(b, rep);
                run = s + 1;
        }
        return buf_append(b, run, (size_t)(s - run));
}

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
static void gpu_labels(api *a, buf *b, const engine_gpu *g)
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

int expo_render_native(api *a, buf *b, bool om)
{
        engine *e = a->opt.engine;
        unsigned n = engine_gpu_count(e);
        engine_gpu *gpus = calloc(n ? n : 1, sizeof(*gpus));
        buf *lab = calloc(n ? n : 1, sizeof(*lab));
        engine_stats st;
        const char *driver, *nvml;
        static const char *const tiers[] = {[TIER_FAST] = "fast", [TIER_SLOW] = "slow"};

        if (!gpus || !lab) {
                free(gpus);
                free(lab);
                return -ENOMEM;
        }
        engine_versions(e, &driver, &nvml);
        for (unsigned i = 0; i < n; i++) {
                engine_gpu_get(e, i, &gpus[i]);
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
        family(b, om, "vigil_gpu_up", "gauge",
               "1 when the GPU answers, 0 when it is lost (fell off the bus or stopped answering)");
        for (unsigned i = 0; i < n; i++)
                buf_printf(b, "vigil_gpu_up{%s} %d\n", lab[i].data, gpus[i].up ? 1 : 0);

        for (size_t f = 0; f < field_count(); f++) {
                const field_meta *m = field_at(f);
                bool header = false;
                if (!m->native)
                        continue;
                for (unsigned i = 0; i < n; i++) {
                        field_value v;
                        double x;
                        if (!gpus[i].up)
                                continue;
                        if (cache_latest(a->opt.cache, i, m->id, &v, NULL) < 0 || v.status != 0)
                                continue;
                        x = m->type == FT_F64 ? v.d : (double)v.i;
                        if (!header) {
                                family(b, om, m->native, m->kind == FK_COUNTER ? "counter" : "gauge",
                                       m->help);
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
                        if (!gpus[i].up ||
                            cache_latest(a->opt.cache, i, FLD_CLOCKS_EVENT_REASONS, &v, NULL) < 0 ||
                            v.status != 0)
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
                        engine_xid x[ENGINE_MAX_XID_CODES];
                        size_t nx = engine_xids(e, i, x, ENGINE_MAX_XID_CODES);
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

        engine_get_stats(e, &st);
        family(b, om, "vigil_collection_duration_seconds", "histogram",
               "Wall time of one sweep of a sampling tier over all GPUs");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++) {
                const engine_tier_stats *ts = &st.tier[t];
                for (int k = 0; k < ENGINE_HIST_BUCKETS; k++)
                        buf_printf(
                            b,
                            "vigil_collection_duration_seconds_bucket{tier=\"%s\",le=\"%g\"} "
                            "%llu\n",
                            tiers[t], engine_hist_bounds[k], (unsigned long long)ts->buckets[k]);
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

        if (om)
                buf_puts(b, "# EOF\n");
        for (unsigned i = 0; i < n; i++)
                buf_release(&lab[i]);
        free(lab);
        free(gpus);
        return b->err;
}

void api_render(api *a)
{
        snapshot *s = NULL;
        char *data;
        size_t len;
        int r;

        pthread_mutex_lock(&a->render_lock);
        buf_reset(&a->render_buf);
        r = expo_render_native(a, &a->render_buf);
        if (r < 0) {
                pthread_mutex_unlock(&a->render_lock);
                log_error("http", "failed to render /metrics: %s", strerror(-r));
                return;
        }
        /* Hand a right-sized copy to the snapshot; keep the big buffer for the next render. */
        len = a->render_buf.len;
        data = malloc(len + 1);
        if (data) {
                memcpy(data, a->render_buf.data, len + 1);
                if (snapshot_new(data, len, time_real_us(), &s) < 0)
                        s = NULL;
        }
        pthread_mutex_unlock(&a->render_lock);
        if (s)
                snapshot_slot_publish(&a->metrics, s);
}

static void unref_snapshot(void *cls)
{
        snapshot_unref(cls);
}

enum MHD_Result h_metrics(request *r)
{
        snapshot *s = snapshot_slot_get(&r->api->metrics);
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (!s) {
                api_render(r->api);
                s = snapshot_slot_get(&r->api->metrics);
                if (!s)
                        return api_reply_error(r, 503, "metrics are not rendered yet");
        }
        resp = MHD_create_response_from_buffer_with_free_callback_cls(
            snapshot_len(s), (void *)snapshot_data(s), unref_snapshot, s);
        if (!resp) {
                snapshot_unref(s);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        ret = MHD_queue_response(r->conn, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}
