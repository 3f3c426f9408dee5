/* cmd_nvlink.c — `vigil nvlink [-i GPU] [-s | -e]`: NVLink link status per GPU (U up, D down,
 * X not supported, like `dcgmi nvlink -s`), or per-link error counters (`dcgmi nvlink -e`), from
 * GET /api/v1/gpus/{id}/nvlink. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

static const char usage[] = "vigil nvlink [-i GPU] [-s|--link-status] [-e|--errors] [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "NVLink link status or error counters per GPU (like `dcgmi nvlink`).\n\n"
                "  -i, --gpu GPU        one GPU (index or UUID; default: every GPU)\n"
                "  -s, --link-status    link status, one letter per link: U up, D down,\n"
                "                       X not supported (the default)\n"
                "  -e, --errors         per-link CRC flit/data, replay and recovery errors\n"
                "  -j, --json           print the daemon's JSON\n"
                "  -h, --help           show this help\n",
                usage);
}

static void status_line(buf *b, const json_t *nv)
{
        const json_t *links = json_object_get(nv, "links");
        const char *st = json_string_value(json_object_get(nv, "status")) ?: "?";

        buf_printf(b, "    gpuId %lld:\n        ",
                   (long long)json_integer_value(json_object_get(nv, "gpu")));
        if (strcmp(st, "ok") != 0 || json_array_size(links) == 0) {
                buf_printf(b, "%s\n",
                           !strcmp(st, "not_supported") ? "no NVLink (the GPU reports none)" : st);
                return;
        }
        for (size_t l = 0; l < json_array_size(links); l++) {
                const char *s =
                    json_string_value(json_object_get(json_array_get(links, l), "state"));
                buf_printf(b, "%s%c", l ? " " : "",
                           !s                   ? '_'
                           : !strcmp(s, "up")   ? 'U'
                           : !strcmp(s, "down") ? 'D'
                                                : 'X');
        }
        buf_printf(b, "\n");
}

static const char *num(const json_t *o, const char *k, char *out, size_t len)
{
        const json_t *v = json_object_get(o, k);
        if (!json_is_integer(v))
                return "N/A";
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
        return out;
}

static int errors_table(buf *b, const json_t *nv)
{
        const json_t *links = json_object_get(nv, "links");
        static const char *const head[] = {"Link",   "State",    "CRC Flit", "CRC Data",
                                           "Replay", "Recovery", "Remote"};
        table *t = NULL;
        int r;

        buf_printf(b, "GPU %lld:\n", (long long)json_integer_value(json_object_get(nv, "gpu")));
        if (json_array_size(links) == 0) {
                buf_printf(b, "    %s\n", json_string_value(json_object_get(nv, "status")) ?: "?");
                return 0;
        }
        r = table_new(7, head, &t);
        if (r < 0)
                return r;
        table_set_style(t, TABLE_BOX);
        for (size_t l = 0; l < json_array_size(links); l++) {
                const json_t *k = json_array_get(links, l);
                char a[24], c[24], d[24], e[24], f[24], rem[64];
                const char *bus = json_string_value(json_object_get(k, "remote_pci_bus_id"));
                snprintf(rem, sizeof(rem), "%s %s",
                         json_string_value(json_object_get(k, "remote_type")) ?: "-", bus ?: "");
                r = table_add_rowv(t, num(k, "link", a, sizeof(a)),
                                   json_string_value(json_object_get(k, "state")) ?: "-",
                                   num(k, "crc_flit_errors", c, sizeof(c)),
                                   num(k, "crc_data_errors", d, sizeof(d)),
                                   num(k, "replay_errors", e, sizeof(e)),
                                   num(k, "recovery_errors", f, sizeof(f)), rem);
                if (r < 0) {
                        table_free(t);
                        return r;
                }
        }
        table_render(t, b);
        table_free(t);
        return 0;
}

int cmd_nvlink(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"gpu", required_argument, NULL, 'i'}, {"link-status", no_argument, NULL, 's'},
            {"errors", no_argument, NULL, 'e'},    {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},      {},
        };
        _cleanup_(buf_release) buf b = {0};
        const char *gpu = NULL;
        json_t *all = NULL, *gpus = NULL;
        bool errors = false;
        int c, r = 0;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+i:g:sejh", opts, NULL)) != -1) {
                switch (c) {
                case 'i':
                case 'g':
                        gpu = optarg;
                        break;
                case 's':
                        errors = false;
                        break;
                case 'e':
                        errors = true;
                        break;
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
        if (gpu && (strchr(gpu, '/') || strchr(gpu, '?') || strlen(gpu) > 96))
                return cli_usage_error(ctx, usage, "'%s' is not a GPU index or UUID", gpu);
        all = json_array();
        if (gpu) {
                char path[160];
                json_t *one = NULL;
                snprintf(path, sizeof(path), "/api/v1/gpus/%s/nvlink", gpu);
                if ((r = client_get(ctx, path, &one)) < 0)
                        goto out;
                json_array_append_new(all, one);
        } else {
                if ((r = client_get(ctx, "/api/v1/gpus", &gpus)) < 0)
                        goto out;
                for (size_t i = 0; i < json_array_size(json_object_get(gpus, "gpus")); i++) {
                        const json_t *g = json_array_get(json_object_get(gpus, "gpus"), i);
                        char path[96];
                        json_t *one = NULL;
                        snprintf(path, sizeof(path), "/api/v1/gpus/%lld/nvlink",
                                 (long long)json_integer_value(json_object_get(g, "index")));
                        if ((r = client_get(ctx, path, &one)) < 0)
                                goto out;
                        json_array_append_new(all, one);
                }
        }
        if (ctx->json) {
                r = client_print_json(ctx, all, false);
                goto out;
        }
        buf_init(&b, 0);
        if (!errors) {
                buf_printf(&b, "+----------------------+\n"
                               "|  NvLink Link Status  |\n"
                               "+----------------------+\n"
                               "GPUs:\n");
                for (size_t i = 0; i < json_array_size(all); i++)
                        status_line(&b, json_array_get(all, i));
        } else {
                for (size_t i = 0; i < json_array_size(all) && r >= 0; i++)
                        r = errors_table(&b, json_array_get(all, i));
        }
        if (r >= 0)
                r = b.err;
        if (r >= 0)
                cli_write_buf(ctx, &b);
out:
        json_decref(all);
        json_decref(gpus);
        return r < 0 ? r : 0;
}
