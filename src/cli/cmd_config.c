/* cmd_config.c — `vigil config get [-i GPU]`: the GPU configuration `dcgmi config --get` shows
 * (application clocks, ECC mode current/pending, power limit, compute mode, persistence), read-only,
 * from the fields of GET /api/v1/gpus/{id}. Nothing here changes a GPU. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

static const char usage[] = "vigil config get [-i GPU] [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Show each GPU's configuration (like `dcgmi config --get`), read-only.\n\n"
                "  -i, --gpu GPU   one GPU (index or UUID; default: every GPU)\n"
                "  -j, --json      print the values as JSON\n"
                "  -h, --help      show this help\n",
                usage);
}

/* The value of field name in a GPU object as text, "Not Supported" / "N/A" otherwise. */
static const char *fv(const json_t *gpu, const char *name, char *out, size_t len)
{
        const json_t *fields = json_object_get(gpu, "fields");

        for (size_t i = 0; i < json_array_size(fields); i++) {
                const json_t *f = json_array_get(fields, i);
                const char *st;
                const json_t *v;
                if (strcmp(json_string_value(json_object_get(f, "name")) ?: "", name) != 0)
                        continue;
                st = json_string_value(json_object_get(f, "status")) ?: "";
                v = json_object_get(f, "value");
                if (strcmp(st, "ok") != 0 || !v)
                        return !strcmp(st, "not_supported") ? "Not Supported" : "N/A";
                if (json_is_integer(v))
                        snprintf(out, len, "%lld", (long long)json_integer_value(v));
                else if (json_is_real(v))
                        snprintf(out, len, "%g", json_real_value(v));
                else
                        snprintf(out, len, "%s", json_string_value(v) ?: "?");
                return out;
        }
        return "N/A";
}

static const char *compute_mode(const char *v)
{
        return !strcmp(v, "0")   ? "Unrestricted"
               : !strcmp(v, "2") ? "Prohibited"
               : !strcmp(v, "3") ? "Exclusive Process"
                                 : v;
}

static const char *on_off(const char *v)
{
        return !strcmp(v, "1") ? "Enabled" : !strcmp(v, "0") ? "Disabled" : v;
}

static int render_gpu(buf *b, const json_t *g)
{
        static const char *const head[] = {"Configuration", "Current"};
        char a[64], c[64], d[64], e[64], f[64], h[64], k[64], pend[96];
        table *t = NULL;
        int r;

        r = table_new(2, head, &t);
        if (r < 0)
                return r;
        table_set_style(t, TABLE_BOX);
        snprintf(pend, sizeof(pend), "%s (pending %s)", on_off(fv(g, "ECC_CURRENT", d, sizeof(d))),
                 on_off(fv(g, "ECC_PENDING", e, sizeof(e))));
        r = table_add_rowv(t, "Sync Boost", "Not Supported");
        r = r < 0 ? r
                  : table_add_rowv(t, "SM Application Clock (MHz)",
                                   fv(g, "APP_SM_CLOCK", a, sizeof(a)));
        r = r < 0 ? r
                  : table_add_rowv(t, "Memory Application Clock (MHz)",
                                   fv(g, "APP_MEM_CLOCK", c, sizeof(c)));
        r = r < 0 ? r : table_add_rowv(t, "ECC Mode", pend);
        r = r < 0 ? r : table_add_rowv(t, "Power Limit (W)", fv(g, "POWER_LIMIT", f, sizeof(f)));
        r = r < 0 ? r
                  : table_add_rowv(t, "Compute Mode",
                                   compute_mode(fv(g, "COMPUTE_MODE", h, sizeof(h))));
        r = r < 0 ? r
                  : table_add_rowv(t, "Persistence Mode",
                                   on_off(fv(g, "PERSISTENCE_MODE", k, sizeof(k))));
        if (r >= 0) {
                buf_printf(b, "GPU %lld (%s):\n",
                           (long long)json_integer_value(json_object_get(g, "index")),
                           json_string_value(json_object_get(g, "uuid")) ?: "-");
                table_render(t, b);
        }
        table_free(t);
        return r;
}

int cmd_config(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"gpu", required_argument, NULL, 'i'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(buf_release) buf b = {0};
        const char *gpu = NULL;
        json_t *list = NULL, *all = NULL;
        int c, r = 0;

        if (argc < 2 || strcmp(argv[1], "get") != 0) {
                if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
                        help(ctx);
                        return 0;
                }
                return cli_usage_error(ctx, usage, "%s",
                                       argc < 2 ? "missing 'get'"
                                                : "only 'get' is available: Vigil does not change "
                                                  "GPU configuration from the CLI");
        }
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "+i:g:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'i':
                case 'g':
                        gpu = optarg;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind]);
                }
        }
        if (optind < argc - 1)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind + 1]);
        if (gpu && (strchr(gpu, '/') || strchr(gpu, '?') || strlen(gpu) > 96))
                return cli_usage_error(ctx, usage, "'%s' is not a GPU index or UUID", gpu);
        all = json_array();
        if (gpu) {
                char path[160];
                json_t *one = NULL;
                snprintf(path, sizeof(path), "/api/v1/gpus/%s", gpu);
                if ((r = client_get(ctx, path, &one)) < 0)
                        goto out;
                json_array_append_new(all, one);
        } else {
                if ((r = client_get(ctx, "/api/v1/gpus", &list)) < 0)
                        goto out;
                for (size_t i = 0; i < json_array_size(json_object_get(list, "gpus")); i++) {
                        char path[64];
                        json_t *one = NULL;
                        snprintf(path, sizeof(path), "/api/v1/gpus/%lld",
                                 (long long)json_integer_value(json_object_get(
                                     json_array_get(json_object_get(list, "gpus"), i), "index")));
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
        for (size_t i = 0; i < json_array_size(all) && r >= 0; i++)
                r = render_gpu(&b, json_array_get(all, i));
        if (r >= 0)
                r = b.err;
        if (r >= 0)
                cli_write_buf(ctx, &b);
out:
        json_decref(all);
        json_decref(list);
        return r < 0 ? r : 0;
}
