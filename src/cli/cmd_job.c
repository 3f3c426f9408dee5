/* cmd_job.c — job statistics, like `dcgmi stats`: `vigil job start ID [-i GPUS]` (POST
 * /api/v1/jobs), `vigil job stop ID` (POST /api/v1/jobs/ID/stop), `vigil job show ID [--json]`
 * (GET /api/v1/jobs/ID, a summary per GPU like `dcgmi stats -j`), `vigil job list [--state S]
 * [--kind K] [--gpu N] [--limit N]` (GET /api/v1/jobs). */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "table.h"

static const char usage[] =
    "vigil job start ID [-i GPUS] | job stop ID | job show ID [--wait SECONDS] [-j] | job list "
    "[--state S] "
    "[--kind K] [--gpu N] [--limit N] [-j]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Job statistics, like dcgmi stats: register a job on some GPUs, stop it, and show\n"
                "per GPU what it used: energy (from the GPU's energy counter), SM and memory\n"
                "utilisation, memory, temperature, throttling, XIDs, ECC errors, remapped rows.\n"
                "Slurm jobs and pods seen on the GPUs are accounted as slurm:ID and pod:UID.\n\n"
                "  -i, --gpus LIST   GPU indices for start, e.g. 0,1 (default: every GPU)\n"
                "      --wait SECS   show: wait up to SECS for the final figures of a job that\n"
                "                    just ended (its counters' readings after the end)\n"
                "      --state S     list: running or finished\n"
                "      --kind K      list: registered, slurm or pod\n"
                "      --gpu N       list: only jobs on GPU N\n"
                "      --limit N     list: at most N jobs (1-1000, default 100)\n"
                "  -j, --json        print the daemon's JSON\n"
                "  -h, --help        show this help\n",
                usage);
}

static const char *str(const json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

/* "1.5", or "-" for null / absent */
static const char *fmt_num(const json_t *v, const char *unit, char *out, size_t len)
{
        double d;

        if (!json_is_number(v)) {
                snprintf(out, len, "-");
                return out;
        }
        d = json_number_value(v);
        if (d > -1e15 && d < 1e15 && d == (double)(long long)d) /* whole: no decimals */
                snprintf(out, len, "%.0f%s", d, unit);
        else
                snprintf(out, len, "%.2f%s", d, unit);
        return out;
}

static const json_t *get(const json_t *o, const char *a, const char *b)
{
        const json_t *v = json_object_get(o, a);
        return b ? json_object_get(v, b) : v;
}

/* "0,1,3" → JSON array; -EINVAL on anything else */
static int parse_gpus(const char *s, json_t **ret)
{
        json_t *a = json_array();
        char *copy = strdup(s), *save = NULL, *tok;
        int r = 0;

        if (!a || !copy) {
                json_decref(a);
                free(copy);
                return -ENOMEM;
        }
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                long v;
                if (cli_parse_long(tok, 0, 63, &v) < 0) {
                        r = -EINVAL;
                        break;
                }
                json_array_append_new(a, json_integer(v));
        }
        free(copy);
        if (r == 0 && json_array_size(a) == 0)
                r = -EINVAL;
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

static void row(buf *b, const char *k, const char *v)
{
        buf_printf(b, "| %-28s | %-40s |\n", k, v);
}

static void render_job(cli_ctx *ctx, const json_t *job)
{
        _cleanup_(buf_release) buf b = {0};
        char v[128], a[64], m[64];
        const json_t *g, *x, *gap;
        size_t i, k;

        buf_init(&b, 0);
        buf_printf(&b, "Job %s (%s, %s)\n", str(job, "id") ?: "?", str(job, "kind") ?: "?",
                   str(job, "state") ?: "?");
        buf_printf(&b, "  start %s, end %s, energy %s\n", str(job, "start") ?: "-",
                   str(job, "end") ?: "-",
                   fmt_num(get(job, "energy_joules", NULL), " J", v, sizeof(v)));
        json_array_foreach(json_object_get(job, "gpus"), i, g)
        {
                buf_printf(&b, "+------------------------------+-----------------------------------"
                               "-------+\n");
                buf_printf(&b, "| GPU %-24lld |                                          |\n",
                           (long long)json_integer_value(json_object_get(g, "gpu")));
                buf_printf(&b, "+==============================+==================================="
                               "=======+\n");
                row(&b, "Start time", str(g, "start") ?: "-");
                row(&b, "End time", str(g, "end") ?: "(running)");
                fmt_num(get(g, "energy_joules", NULL), " J", a, sizeof(a));
                snprintf(v, sizeof(v), "%s%s", a,
                         !strcmp(str(job, "state") ?: "", "finished") &&
                                 !json_is_true(json_object_get(job, "final"))
                             ? " (provisional)"
                             : "");
                row(&b, "Energy consumed", v);
                snprintf(v, sizeof(v), "avg %s, max %s",
                         fmt_num(get(g, "power_w", "avg"), " W", a, sizeof(a)),
                         fmt_num(get(g, "power_w", "max"), " W", m, sizeof(m)));
                row(&b, "Power", v);
                snprintf(v, sizeof(v), "avg %s, max %s",
                         fmt_num(get(g, "sm_utilization_pct", "avg"), " %", a, sizeof(a)),
                         fmt_num(get(g, "sm_utilization_pct", "max"), " %", m, sizeof(m)));
                row(&b, "SM utilization", v);
                snprintf(v, sizeof(v), "avg %s, max %s",
                         fmt_num(get(g, "memory_utilization_pct", "avg"), " %", a, sizeof(a)),
                         fmt_num(get(g, "memory_utilization_pct", "max"), " %", m, sizeof(m)));
                row(&b, "Memory utilization", v);
                row(&b, "Max memory used",
                    fmt_num(get(g, "memory_used_max_mib", NULL), " MiB", v, sizeof(v)));
                row(&b, "Max GPU temperature",
                    fmt_num(get(g, "temperature_max_c", NULL), " C", v, sizeof(v)));
                static const char *const thr[][2] = {
                    {"power", "Power violation"},
                    {"thermal", "Thermal violation"},
                    {"sync_boost", "Sync boost violation"},
                    {"board_limit", "Board limit violation"},
                    {"low_utilization", "Low utilization violation"},
                    {"reliability", "Reliability violation"}};
                for (k = 0; k < sizeof(thr) / sizeof(thr[0]); k++)
                        row(&b, thr[k][1],
                            fmt_num(get(g, "throttle_seconds", thr[k][0]), " s", v, sizeof(v)));
                v[0] = '\0';
                json_array_foreach(json_object_get(g, "xids"), k, x)
                {
                        size_t n = strlen(v);
                        snprintf(v + n, sizeof(v) - n, "%s%lld x%lld", n ? ", " : "",
                                 (long long)json_integer_value(json_object_get(x, "code")),
                                 (long long)json_integer_value(json_object_get(x, "count")));
                }
                row(&b, "XID errors", v[0] ? v : "none");
                row(&b, "Single-bit ECC errors",
                    fmt_num(get(g, "ecc_sbe", NULL), "", v, sizeof(v)));
                row(&b, "Double-bit ECC errors",
                    fmt_num(get(g, "ecc_dbe", NULL), "", v, sizeof(v)));
                snprintf(v, sizeof(v), "correctable %s, uncorrectable %s",
                         fmt_num(get(g, "remapped_rows", "correctable"), "", a, sizeof(a)),
                         fmt_num(get(g, "remapped_rows", "uncorrectable"), "", m, sizeof(m)));
                row(&b, "Remapped rows", v);
                v[0] = '\0';
                json_array_foreach(json_object_get(g, "processes"), k, x)
                {
                        size_t n = strlen(v);
                        snprintf(v + n, sizeof(v) - n, "%s%lld", n ? " " : "",
                                 (long long)json_integer_value(x));
                }
                row(&b, "Processes", v[0] ? v : "none seen");
                json_array_foreach(json_object_get(g, "gaps"), k, gap)
                {
                        const json_t *e = json_object_get(gap, "end_us");
                        double s = (double)json_integer_value(json_object_get(gap, "start_us"));
                        if (json_is_integer(e))
                                snprintf(v, sizeof(v), "%.0f s, %s",
                                         ((double)json_integer_value(e) - s) / 1e6,
                                         str(gap, "reason") ?: "?");
                        else
                                snprintf(v, sizeof(v), "open, %s", str(gap, "reason") ?: "?");
                        row(&b, "Gap (not accounted)", v);
                }
                buf_printf(&b, "+------------------------------+-----------------------------------"
                               "-------+\n");
        }
        cli_write_buf(ctx, &b);
}

static int show(cli_ctx *ctx, const char *id, long wait_s)
{
        _cleanup_free_ char *esc = client_escape(id), *path = NULL;
        json_t *res = NULL;
        int r;

        if (!esc || asprintf(&path, "/api/v1/jobs/%s", esc) < 0)
                return -ENOMEM;
        /* a job that just ended becomes final at its counters' next readings */
        for (long waited_ms = 0;; waited_ms += 500) {
                r = client_get(ctx, path, &res);
                if (r < 0)
                        return r;
                if (waited_ms >= wait_s * 1000 || json_is_true(json_object_get(res, "final")) ||
                    strcmp(str(res, "state") ?: "", "finished"))
                        break;
                json_decref(res);
                res = NULL;
                usleep(500 * 1000);
        }
        if (ctx->json)
                client_print_json(ctx, res, false);
        else
                render_job(ctx, res);
        json_decref(res);
        return 0;
}

static int start(cli_ctx *ctx, const char *id, const char *gpus)
{
        json_t *body = json_pack("{s:s}", "id", id), *res = NULL, *a = NULL;
        int r;

        if (!body)
                return -ENOMEM;
        if (gpus) {
                r = parse_gpus(gpus, &a);
                if (r < 0) {
                        json_decref(body);
                        return r == -EINVAL ? cli_usage_error(ctx, usage,
                                                              "'%s' is not a list of GPU "
                                                              "indices (e.g. 0,1)",
                                                              gpus)
                                            : r;
                }
                json_object_set_new(body, "gpus", a);
        }
        r = client_request(ctx, "POST", "/api/v1/jobs", body, &res);
        json_decref(body);
        if (r < 0)
                return r;
        if (ctx->json) {
                client_print_json(ctx, res, false);
        } else {
                const json_t *g;
                size_t i;
                fprintf(ctx->out, "job %s started on GPU", id);
                json_array_foreach(json_object_get(res, "gpus"), i, g)
                    fprintf(ctx->out, "%s%lld", i ? "," : " ",
                            (long long)json_integer_value(json_object_get(g, "gpu")));
                fprintf(ctx->out, "\n");
        }
        json_decref(res);
        return 0;
}

static int stop(cli_ctx *ctx, const char *id)
{
        _cleanup_free_ char *esc = client_escape(id), *path = NULL;
        json_t *res = NULL;
        char v[64];
        int r;

        if (!esc || asprintf(&path, "/api/v1/jobs/%s/stop", esc) < 0)
                return -ENOMEM;
        r = client_request(ctx, "POST", path, NULL, &res);
        if (r < 0)
                return r;
        if (ctx->json)
                client_print_json(ctx, res, false);
        else
                fprintf(ctx->out, "job %s stopped, energy %s%s\n", id,
                        fmt_num(json_object_get(res, "energy_joules"), " J", v, sizeof(v)),
                        json_is_true(json_object_get(res, "final"))
                            ? ""
                            : " (provisional until the readings after the end)");
        json_decref(res);
        return 0;
}

static int list(cli_ctx *ctx, const char *state, const char *kind, const char *gpu,
                const char *limit)
{
        _cleanup_(buf_release) buf q = {0};
        json_t *res = NULL;
        const json_t *jb;
        size_t i;
        int r;

        buf_init(&q, 0);
        buf_puts(&q, "/api/v1/jobs");
        const char *keys[] = {"state", "kind", "gpu", "limit"};
        const char *vals[] = {state, kind, gpu, limit};
        for (size_t k = 0, n = 0; k < 4; k++) {
                _cleanup_free_ char *e = NULL;
                if (!vals[k])
                        continue;
                e = client_escape(vals[k]);
                if (!e)
                        return -ENOMEM;
                buf_printf(&q, "%c%s=%s", n++ ? '&' : '?', keys[k], e);
        }
        r = client_get(ctx, q.data, &res);
        if (r < 0)
                return r;
        if (ctx->json) {
                client_print_json(ctx, res, false);
        } else {
                _cleanup_(buf_release) buf b = {0};
                static const char *const hdr[] = {"ID",  "KIND", "STATE", "START",
                                                  "END", "GPUS", "ENERGY"};
                table *t = NULL;
                buf_init(&b, 0);
                if (table_new(7, hdr, &t) < 0) {
                        json_decref(res);
                        return -ENOMEM;
                }
                json_array_foreach(json_object_get(res, "jobs"), i, jb)
                {
                        char gpus[256] = "", e[64];
                        const json_t *g;
                        size_t k;
                        json_array_foreach(json_object_get(jb, "gpus"), k, g)
                        {
                                size_t n = strlen(gpus);
                                snprintf(gpus + n, sizeof(gpus) - n, "%s%lld", k ? "," : "",
                                         (long long)json_integer_value(g));
                        }
                        table_add_rowv(
                            t, str(jb, "id") ?: "", str(jb, "kind") ?: "", str(jb, "state") ?: "",
                            str(jb, "start") ?: "-", str(jb, "end") ?: "-", gpus,
                            fmt_num(json_object_get(jb, "energy_joules"), " J", e, sizeof(e)));
                }
                if (table_rows(t))
                        table_render(t, &b);
                else
                        buf_puts(&b, "no jobs\n");
                table_free(t);
                cli_write_buf(ctx, &b);
        }
        json_decref(res);
        return 0;
}

int cmd_job(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"gpus", required_argument, NULL, 'i'},
            {"state", required_argument, NULL, 's'},
            {"kind", required_argument, NULL, 'k'},
            {"gpu", required_argument, NULL, 'g'},
            {"limit", required_argument, NULL, 'l'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {"wait", required_argument, NULL, 'w'},
            {NULL, 0, NULL, 0},
        };
        long wait_s = 0;
        const char *gpus = NULL, *state = NULL, *kind = NULL, *gpu = NULL, *limit = NULL, *sub;
        int c;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "i:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'i':
                        gpus = optarg;
                        break;
                case 's':
                        state = optarg;
                        break;
                case 'k':
                        kind = optarg;
                        break;
                case 'g':
                        gpu = optarg;
                        break;
                case 'l':
                        limit = optarg;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'w':
                        if (cli_parse_long(optarg, 0, 3600, &wait_s) < 0)
                                return cli_usage_error(
                                    ctx, usage, "--wait takes seconds (0-3600), not '%s'", optarg);
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                default:
                        return cli_usage_error(ctx, usage, "unknown option or missing value '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind >= argc)
                return cli_usage_error(ctx, usage, "missing subcommand (start, stop, show, list)");
        sub = argv[optind];
        if (!strcmp(sub, "list")) {
                if (optind + 1 != argc || gpus)
                        return cli_usage_error(ctx, usage, "list takes no job id and no -i");
                return list(ctx, state, kind, gpu, limit);
        }
        if (strcmp(sub, "start") && strcmp(sub, "stop") && strcmp(sub, "show"))
                return cli_usage_error(ctx, usage, "unknown subcommand '%s'", sub);
        if (optind + 2 != argc)
                return cli_usage_error(ctx, usage, "%s needs exactly one job id", sub);
        if (wait_s && strcmp(sub, "show"))
                return cli_usage_error(ctx, usage, "--wait is for show");
        if (state || kind || gpu || limit)
                return cli_usage_error(ctx, usage, "--state, --kind, --gpu, --limit are for list");
        if (gpus && strcmp(sub, "start"))
                return cli_usage_error(ctx, usage, "-i is for start");
        if (!strcmp(sub, "start"))
                return start(ctx, argv[optind + 1], gpus);
        if (!strcmp(sub, "stop"))
                return stop(ctx, argv[optind + 1]);
        return show(ctx, argv[optind + 1], wait_s);
}
