/* cmd_status.c — `vigil status`: a readable summary of GET /api/v1/status. Keys the daemon does
 * not send are left out rather than shown as zero. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

static const char usage[] = "vigil status [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Show the daemon's version, uptime, GPUs and sampling tiers.\n\n"
                "  -j, --json   print the daemon's JSON (GET /api/v1/status)\n"
                "  -h, --help   show this help\n",
                usage);
}

static const char *str(const json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

static void fmt_seconds(double s, char *out, size_t len)
{
        if (s >= 1.0)
                snprintf(out, len, "%.3gs", s);
        else if (s >= 0.001)
                snprintf(out, len, "%.3gms", s * 1e3);
        else
                snprintf(out, len, "%.3gus", s * 1e6);
}

static void fmt_bytes(json_int_t v, char *out, size_t len)
{
        static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        double d = (double)v;
        size_t u = 0;

        while (d >= 1024 && u + 1 < ARRAY_SIZE(units))
                d /= 1024, u++;
        if (u == 0)
                snprintf(out, len, "%lld B", (long long)v);
        else
                snprintf(out, len, "%.1f %s", d, units[u]);
}

static int render(cli_ctx *ctx, const json_t *st)
{
        _cleanup_(buf_release) buf b = {0};
        const json_t *tiers = json_object_get(st, "tiers"), *tier, *cache, *events;
        const char *name;
        char tmp[64];
        table *t = NULL;
        int r;

        buf_init(&b, 0);
        buf_printf(&b, "%-12s %s\n", "Version:", str(st, "version") ?: "unknown");
        if (str(st, "hostname"))
                buf_printf(&b, "%-12s %s (pid %lld)\n", "Host:", str(st, "hostname"),
                           (long long)json_integer_value(json_object_get(st, "pid")));
        if (json_is_number(json_object_get(st, "uptime_seconds")))
                buf_printf(
                    &b, "%-12s %s\n", "Uptime:",
                    cli_format_uptime(json_number_value(json_object_get(st, "uptime_seconds")), tmp,
                                      sizeof(tmp)));
        if (json_is_boolean(json_object_get(st, "simulated"))) {
                bool sim = json_is_true(json_object_get(st, "simulated"));
                buf_printf(&b, "%-12s %s", "Mode:", sim ? "simulated (fake NVML)" : "real NVML");
                if (str(st, "nvml_library"))
                        buf_printf(&b, ", library '%s'", str(st, "nvml_library"));
                buf_puts(&b, "\n");
        }
        if (str(st, "driver_version") || str(st, "nvml_version"))
                buf_printf(&b, "%-12s %s (NVML %s)\n", "Driver:", str(st, "driver_version") ?: "-",
                           str(st, "nvml_version") ?: "-");
        buf_printf(&b, "%-12s %lld/%lld up\n",
                   "GPUs:", (long long)json_integer_value(json_object_get(st, "gpus_up")),
                   (long long)json_integer_value(json_object_get(st, "gpu_count")));
        if (json_is_boolean(json_object_get(st, "ready")))
                buf_printf(&b, "%-12s %s\n", "Ready:",
                           json_is_true(json_object_get(st, "ready")) ? "yes"
                                                                      : "no (first sweep pending)");
        cache = json_object_get(st, "cache");
        if (cache) {
                fmt_bytes(json_integer_value(json_object_get(cache, "bytes")), tmp, sizeof(tmp));
                buf_printf(&b, "%-12s %s, %lld samples\n", "Cache:", tmp,
                           (long long)json_integer_value(json_object_get(cache, "samples")));
        }
        events = json_object_get(st, "events");
        if (events)
                buf_printf(&b, "%-12s %lld received\n", "Events:",
                           (long long)json_integer_value(json_object_get(events, "received")));
        {
                /* self-monitoring (GET /api/v1/status "self"; docs/self-monitoring.md) */
                const json_t *self = json_object_get(st, "self"), *p, *lg, *ad, *nv, *c;
                const char *k;
                if ((p = json_object_get(self, "process"))) {
                        fmt_bytes(json_integer_value(json_object_get(p, "resident_memory_bytes")),
                                  tmp, sizeof(tmp));
                        buf_printf(&b, "%-12s %.2fs CPU, %s resident, %lld open fds\n",
                                   "Process:", json_number_value(json_object_get(p, "cpu_seconds")),
                                   tmp,
                                   (long long)json_integer_value(json_object_get(p, "open_fds")));
                }
                if ((lg = json_object_get(self, "log_messages")))
                        buf_printf(&b, "%-12s %lld errors, %lld warnings, %lld dropped\n", "Log:",
                                   (long long)json_integer_value(json_object_get(lg, "error")),
                                   (long long)json_integer_value(json_object_get(lg, "warn")),
                                   (long long)json_integer_value(json_object_get(lg, "dropped")));
                if ((nv = json_object_get(self, "nvml_calls"))) {
                        long long calls = 0;
                        double secs = 0;
                        json_object_foreach((json_t *)nv, k, c)
                        {
                                calls += json_integer_value(json_object_get(c, "calls"));
                                secs += json_number_value(json_object_get(c, "seconds"));
                        }
                        fmt_seconds(secs, tmp, sizeof(tmp));
                        buf_printf(&b, "%-12s %lld calls, %s inside NVML\n", "NVML:", calls, tmp);
                }
                json_object_foreach((json_t *)json_object_get(self, "adaptive"), k,
                                    ad) if (json_is_true(json_object_get(ad, "stretched")))
                    buf_printf(&b, "%-12s %s tier stretched x%.2f (sweeps too costly)\n",
                               "Adaptive:", k, json_number_value(json_object_get(ad, "stretch")));
                if (json_is_integer(json_object_get(self, "anomalies_active")))
                        buf_printf(&b, "%-12s %lld active\n", "Anomalies:",
                                   (long long)json_integer_value(
                                       json_object_get(self, "anomalies_active")));
        }

        if (json_object_size(tiers) > 0) {
                r = table_new(
                    5, (const char *const[]){"TIER", "INTERVAL", "SWEEPS", "LATE", "LAST DURATION"},
                    &t);
                if (r < 0)
                        return r;
                for (size_t c = 1; c < 5; c++)
                        table_set_align(t, c, TABLE_RIGHT);
                json_object_foreach((json_t *)tiers, name, tier)
                {
                        char iv[32], sw[32], late[32], last[32];
                        fmt_seconds(json_number_value(json_object_get(tier, "interval_seconds")),
                                    iv, sizeof(iv));
                        snprintf(sw, sizeof(sw), "%lld",
                                 (long long)json_integer_value(json_object_get(tier, "sweeps")));
                        snprintf(
                            late, sizeof(late), "%lld",
                            (long long)json_integer_value(json_object_get(tier, "late_sweeps")));
                        fmt_seconds(
                            json_number_value(json_object_get(tier, "last_duration_seconds")), last,
                            sizeof(last));
                        r = table_add_rowv(t, name, iv, sw, late, last);
                        if (r < 0) {
                                table_free(t);
                                return r;
                        }
                }
                buf_puts(&b, "\n");
                table_render(t, &b);
                table_free(t);
        }
        if (b.err)
                return b.err;
        cli_write_buf(ctx, &b);
        return 0;
}

int cmd_status(int argc, char **argv, cli_ctx *ctx)
{
        static const cli_view view = {usage, help, "/api/v1/status", render, NULL};

        return cli_run_view(argc, argv, ctx, &view);
}
