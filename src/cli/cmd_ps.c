/* cmd_ps.c — `vigil ps`: the processes on each GPU, like nvidia-smi's process list, with who owns
 * each one (pod, Slurm job, Docker container, systemd unit), from GET /api/v1/processes. -i keeps
 * the GPUs listed (indexes or UUIDs); --json prints the daemon's JSON for those GPUs. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char usage[] = "vigil ps [-i GPUS] [-j|--json]";

#define PS_MAX_SEL 64 /* GPUs in one -i list */

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Processes on each GPU (like nvidia-smi's process list) and who owns them:\n"
                "a Kubernetes pod (UID, and namespace/pod/container when known), a Slurm job,\n"
                "a Docker container or a systemd unit, from the process' cgroup.\n\n"
                "  -i, --gpu GPUS  only these GPUs: indexes or UUIDs, comma-separated (0,2)\n"
                "  -j, --json      print the daemon's JSON (GET /api/v1/processes)\n"
                "  -h, --help      show this help\n\n"
                "Type: C compute, G graphics, C+G both. SM/Mem: utilisation since the last\n"
                "read, '-' when the driver has no sample. Owner 'gone': the process ended\n"
                "between the driver's list and the read of its cgroup.\n",
                usage);
}

static bool selected(const json_t *g, char sel[][100], size_t n)
{
        char idx[16];

        if (!n)
                return true;
        snprintf(idx, sizeof(idx), "%lld",
                 (long long)json_integer_value(json_object_get(g, "gpu")));
        for (size_t i = 0; i < n; i++) {
                const char *uuid = json_string_value(json_object_get(g, "uuid"));
                if (!strcmp(sel[i], idx) || (uuid && !strcasecmp(sel[i], uuid)))
                        return true;
        }
        return false;
}

static const char *str(const json_t *o, const char *key, const char *dflt)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s && s[0] ? s : dflt;
}

static void pct(char *out, size_t len, const json_t *util, const char *key)
{
        const json_t *v = util ? json_object_get(util, key) : NULL;

        if (!json_is_number(v))
                snprintf(out, len, "-");
        else
                snprintf(out, len, "%.0f%%", json_number_value(v) * 100.0);
}

static void row(buf *b, const json_t *p)
{
        const json_t *owner = json_object_get(p, "owner"),
                     *util = json_object_get(p, "utilization");
        const json_t *mem = json_object_get(p, "memory_used_bytes");
        const json_t *gi = json_object_get(p, "gpu_instance_id");
        const json_t *ci = json_object_get(p, "compute_instance_id");
        const char *type = str(p, "type", "compute"), *kind = str(owner, "kind", "none");
        char memtxt[32], sm[8], mu[8], gitxt[8] = "N/A", citxt[8] = "N/A", where[200] = "-";

        if (json_is_integer(mem))
                snprintf(memtxt, sizeof(memtxt), "%lldMiB",
                         (long long)(json_integer_value(mem) >> 20));
        else
                snprintf(memtxt, sizeof(memtxt), "N/A");
        if (json_is_integer(gi))
                snprintf(gitxt, sizeof(gitxt), "%lld", (long long)json_integer_value(gi));
        if (json_is_integer(ci))
                snprintf(citxt, sizeof(citxt), "%lld", (long long)json_integer_value(ci));
        pct(sm, sizeof(sm), util, "sm");
        pct(mu, sizeof(mu), util, "memory");
        if (!strcmp(str(p, "owner_status", "ok"), "gone"))
                kind = "gone";
        if (!strcmp(kind, "pod") && json_string_value(json_object_get(owner, "pod")))
                snprintf(where, sizeof(where), "%s/%s/%s", str(owner, "namespace", "?"),
                         str(owner, "pod", "?"), str(owner, "container", "?"));
        else if (!strcmp(kind, "pod"))
                snprintf(where, sizeof(where), "container %.12s", str(owner, "container_id", "?"));
        else if (!strcmp(kind, "slurm") && json_string_value(json_object_get(owner, "step")))
                snprintf(where, sizeof(where), "step %s", str(owner, "step", "?"));
        buf_printf(b, "%4lld %4s %4s %9lld  %-4s %-16.16s %11s %5s %5s  %-6s %-36.36s %s\n",
                   (long long)json_integer_value(json_object_get(p, "gpu")), gitxt, citxt,
                   (long long)json_integer_value(json_object_get(p, "pid")),
                   !strcmp(type, "compute+graphics") ? "C+G"
                   : !strcmp(type, "graphics")       ? "G"
                                                     : "C",
                   str(p, "name", "?"), memtxt, sm, mu, kind, str(owner, "id", "-"), where);
}

static int render(cli_ctx *ctx, const json_t *gpus)
{
        _cleanup_(buf_release) buf b = {0};
        size_t shown = 0;

        buf_init(&b, 0);
        buf_printf(&b, "%4s %4s %4s %9s  %-4s %-16s %11s %5s %5s  %-6s %-36s %s\n", "GPU", "GI",
                   "CI", "PID", "Type", "Process name", "GPU Memory", "SM", "Mem", "Owner", "ID",
                   "Pod / container / step");
        for (size_t i = 0; i < json_array_size(gpus); i++) {
                const json_t *g = json_array_get(gpus, i), *procs = json_object_get(g, "processes");
                const char *st = str(g, "status", "?");
                if (strcmp(st, "ok")) {
                        buf_printf(&b, "%4lld  (%s)\n",
                                   (long long)json_integer_value(json_object_get(g, "gpu")), st);
                        continue;
                }
                for (size_t k = 0; k < json_array_size(procs); k++, shown++)
                        row(&b, json_array_get(procs, k));
        }
        if (!shown)
                buf_printf(&b, "No running processes found\n");
        if (b.err)
                return b.err;
        cli_write_buf(ctx, &b);
        return 0;
}

int cmd_ps(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"gpu", required_argument, NULL, 'i'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        char sel[PS_MAX_SEL][100];
        size_t nsel = 0;
        json_t *root = NULL, *keep;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+i:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'i': {
                        const char *s = optarg;
                        while (*s) {
                                size_t len = strcspn(s, ",");
                                if (!len || len >= sizeof(sel[0]) || nsel >= PS_MAX_SEL)
                                        return cli_usage_error(ctx, usage,
                                                               "'%s' is not a list of GPU "
                                                               "indexes or UUIDs",
                                                               optarg);
                                memcpy(sel[nsel], s, len);
                                sel[nsel++][len] = '\0';
                                s += len;
                                if (*s == ',')
                                        s++;
                        }
                        if (!nsel)
                                return cli_usage_error(ctx, usage, "-i needs GPU indexes or UUIDs");
                        break;
                }
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind]);
        if ((r = client_get(ctx, "/api/v1/processes", &root)) < 0)
                return r;
        keep = json_array();
        for (size_t i = 0; i < json_array_size(json_object_get(root, "gpus")); i++) {
                json_t *g = json_array_get(json_object_get(root, "gpus"), i);
                if (selected(g, sel, nsel))
                        json_array_append(keep, g);
        }
        if (nsel && !json_array_size(keep)) {
                cli_error(ctx, "no GPU '%s' on this node", sel[0]);
                json_decref(keep);
                json_decref(root);
                return -ENODEV;
        }
        json_object_set_new(root, "gpus", keep);
        if (ctx->json)
                r = client_print_json(ctx, root, false);
        else
                r = render(ctx, keep);
        json_decref(root);
        return r < 0 ? r : 0;
}
