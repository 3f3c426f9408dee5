/* cmd_config.c — GPU configuration like `dcgmi config`:
 *   vigil config get [-i GPUS]       the settings now (GET /api/v1/gpus/{id}/config)
 *   vigil config set -i GPUS ...     change them (POST /api/v1/gpus/{id}/config; role with write)
 *   vigil config restore -i GPUS     put back the values saved by set (…/config/restore)
 * GPUS is an index, a UUID, a comma-separated list of them, or "all". The daemon validates every
 * value against the GPU and answers what changed; this file only builds requests and prints. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

#define SAMPLER_GPUS_CLI 64 /* GPUs one command addresses */

static const char usage[] =
    "vigil config get [-i GPUS] [-j]\n"
    "       vigil config set -i GPUS [-P W] [-a MEM,SM|default] [--locked-gpu-clocks "
    "MIN,MAX|reset]\n"
    "                        [--locked-mem-clocks MIN,MAX|reset] [-c MODE] [--persistence on|off]\n"
    "                        [-e on|off] [--dry-run] [-j]\n"
    "       vigil config restore -i GPUS [--setting NAME]... [--dry-run] [-j]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Show or change each GPU's configuration (like `dcgmi config`).\n\n"
                "  -i, --gpu GPUS              index, UUID, a comma-separated list, or all\n"
                "                              (get: default every GPU; set/restore: required)\n"
                "  -P, --power-limit W         power limit in watts\n"
                "  -a, --app-clocks MEM,SM     application clocks in MHz, or default\n"
                "      --locked-gpu-clocks MIN,MAX   lock the SM clock range (MHz), or reset\n"
                "      --locked-mem-clocks MIN,MAX   lock the memory clock range (MHz), or reset\n"
                "  -c, --compute-mode MODE     default, prohibited or exclusive_process (0, 2, 3)\n"
                "      --persistence on|off    persistence mode\n"
                "  -e, --ecc on|off            ECC mode (takes effect at the next GPU reset)\n"
                "      --setting NAME          restore: only this setting (repeatable)\n"
                "      --dry-run               say what would change; change nothing\n"
                "  -j, --json                  print the answers as JSON\n"
                "  -h, --help                  show this help\n",
                usage);
}

/* A setting's current value from a GET /api/v1/gpus/{id}/config answer, as text. */
static const char *cur(const json_t *g, const char *name, const char *key)
{
        const json_t *e = json_object_get(json_object_get(g, "settings"), name);
        const char *st = json_string_value(json_object_get(e, "status")) ?: "";
        const char *v = json_string_value(json_object_get(e, key));

        if (v)
                return v;
        return !strcmp(st, "not_supported")  ? "Not Supported"
               : !strcmp(st, "not_readable") ? "Not Readable"
                                             : "N/A";
}

static const char *compute_mode(const char *v)
{
        return !strcmp(v, "default")             ? "Unrestricted"
               : !strcmp(v, "prohibited")        ? "Prohibited"
               : !strcmp(v, "exclusive_process") ? "Exclusive Process"
                                                 : v;
}

static const char *on_off(const char *v)
{
        return !strcmp(v, "enabled") ? "Enabled" : !strcmp(v, "disabled") ? "Disabled" : v;
}

/* "3201,1980" → the SM (which = 1) or memory (which = 0) part. */
static const char *clock_part(const char *v, int which, char *out, size_t len)
{
        const char *comma = strchr(v, ',');

        if (!comma || !strcmp(v, "default"))
                return v;
        if (which)
                snprintf(out, len, "%s", comma + 1);
        else
                snprintf(out, len, "%.*s", (int)(comma - v), v);
        return out;
}

static int render_gpu(buf *b, const json_t *g)
{
        static const char *const head[] = {"Configuration", "Current", "Saved", "Desired"};
        static const struct {
                const char *label, *name;
        } rows[] = {
            {"Locked GPU Clocks (MHz)", "locked_gpu_clocks"},
            {"Locked Memory Clocks (MHz)", "locked_mem_clocks"},
        };
        const json_t *set = json_object_get(g, "settings");
        char a[32], c[32], pend[96];
        table *t = NULL;
        int r;

#define SD(n)                                                                                      \
        (json_string_value(json_object_get(json_object_get(set, n), "saved")) ?: "-"),             \
            (json_string_value(json_object_get(json_object_get(set, n), "desired")) ?: "-")
        r = table_new(4, head, &t);
        if (r < 0)
                return r;
        table_set_style(t, TABLE_BOX);
        snprintf(pend, sizeof(pend), "%s (pending %s)", on_off(cur(g, "ecc", "current")),
                 on_off(cur(g, "ecc", "pending")));
        r = table_add_rowv(t, "Sync Boost", "Not Supported", "-", "-");
        r = r < 0 ? r
                  : table_add_rowv(t, "SM Application Clock (MHz)",
                                   clock_part(cur(g, "app_clocks", "current"), 1, a, sizeof(a)),
                                   SD("app_clocks"));
        r = r < 0 ? r
                  : table_add_rowv(t, "Memory Application Clock (MHz)",
                                   clock_part(cur(g, "app_clocks", "current"), 0, c, sizeof(c)),
                                   SD("app_clocks"));
        for (size_t i = 0; i < ARRAY_SIZE(rows) && r >= 0; i++)
                r = table_add_rowv(t, rows[i].label, cur(g, rows[i].name, "current"),
                                   SD(rows[i].name));
        r = r < 0 ? r : table_add_rowv(t, "ECC Mode", pend, SD("ecc"));
        r = r < 0 ? r
                  : table_add_rowv(t, "Power Limit (W)", cur(g, "power_limit", "current"),
                                   SD("power_limit"));
        r = r < 0
                ? r
                : table_add_rowv(t, "Compute Mode", compute_mode(cur(g, "compute_mode", "current")),
                                 SD("compute_mode"));
        r = r < 0 ? r
                  : table_add_rowv(t, "Persistence Mode", on_off(cur(g, "persistence", "current")),
                                   SD("persistence"));
#undef SD
        if (r >= 0) {
                buf_printf(b, "GPU %lld (%s):\n",
                           (long long)json_integer_value(json_object_get(g, "gpu")),
                           json_string_value(json_object_get(g, "uuid")) ?: "-");
                table_render(t, b);
        }
        table_free(t);
        return r;
}

/* The GPUs a -i argument names: "all" (or none) = every GPU the daemon has. Fills ids (each
 * escaped for a path: an index or a UUID). */
static int gpu_list(cli_ctx *ctx, const char *arg, char ids[][100], size_t max, size_t *n)
{
        *n = 0;
        if (!arg || !strcmp(arg, "all")) {
                json_t *list = NULL;
                int r = client_get(ctx, "/api/v1/gpus", &list);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < json_array_size(json_object_get(list, "gpus")) && *n < max;
                     i++)
                        snprintf(ids[(*n)++], 100, "%lld",
                                 (long long)json_integer_value(json_object_get(
                                     json_array_get(json_object_get(list, "gpus"), i), "index")));
                json_decref(list);
                return 0;
        }
        for (const char *x = arg; *x;) {
                const char *e = strchrnul(x, ',');
                size_t len = (size_t)(e - x);
                if (!len || len >= 100 || memchr(x, '/', len) || memchr(x, '?', len) ||
                    memchr(x, '%', len) || memchr(x, ' ', len) || *n >= max)
                        return cli_usage_error(ctx, usage,
                                               "'%s' is not a list of GPU indexes or "
                                               "UUIDs",
                                               arg);
                snprintf(ids[(*n)++], 100, "%.*s", (int)len, x);
                x = *e ? e + 1 : e;
        }
        return 0;
}

static int do_get(cli_ctx *ctx, const char *gpus)
{
        _cleanup_(buf_release) buf b = {0};
        char ids[SAMPLER_GPUS_CLI][100];
        json_t *all = json_array();
        size_t n = 0;
        int r = gpu_list(ctx, gpus, ids, SAMPLER_GPUS_CLI, &n);

        for (size_t i = 0; r >= 0 && i < n; i++) {
                char path[160];
                json_t *one = NULL;
                snprintf(path, sizeof(path), "/api/v1/gpus/%.99s/config", ids[i]);
                r = client_get(ctx, path, &one);
                if (r >= 0)
                        json_array_append_new(all, one);
        }
        if (r >= 0 && ctx->json) {
                r = client_print_json(ctx, all, false);
        } else if (r >= 0) {
                buf_init(&b, 0);
                for (size_t i = 0; i < json_array_size(all) && r >= 0; i++)
                        r = render_gpu(&b, json_array_get(all, i));
                if (r >= 0)
                        r = b.err;
                if (r >= 0)
                        cli_write_buf(ctx, &b);
        }
        json_decref(all);
        return r < 0 ? r : 0;
}

/* POST body to each GPU's path suffix; print the changes. Every GPU is tried; the first error
 * is returned. */
static int do_post(cli_ctx *ctx, const char *gpus, const char *suffix, const json_t *body)
{
        char ids[SAMPLER_GPUS_CLI][100];
        json_t *all = json_array();
        size_t n = 0;
        int r = gpu_list(ctx, gpus, ids, SAMPLER_GPUS_CLI, &n), first = 0;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                char path[180];
                json_t *ans = NULL;
                int q;
                snprintf(path, sizeof(path), "/api/v1/gpus/%.99s/config%s", ids[i], suffix);
                q = client_request(ctx, "POST", path, body, &ans);
                if (q < 0) {
                        first = first ?: q;
                        continue;
                }
                if (ctx->json) {
                        json_array_append_new(all, ans);
                        continue;
                }
                for (size_t k = 0; k < json_array_size(json_object_get(ans, "changes")); k++) {
                        const json_t *c = json_array_get(json_object_get(ans, "changes"), k);
                        fprintf(ctx->out, "GPU %lld: %s %s -> %s (%s)\n",
                                (long long)json_integer_value(json_object_get(ans, "gpu")),
                                json_string_value(json_object_get(c, "setting")) ?: "?",
                                json_string_value(json_object_get(c, "old")) ?: "?",
                                json_string_value(json_object_get(c, "new")) ?: "?",
                                json_string_value(json_object_get(c, "note")) ?: "");
                }
                json_decref(ans);
        }
        if (r >= 0 && ctx->json)
                client_print_json(ctx, all, false);
        json_decref(all);
        return r < 0 ? r : first;
}

enum { OPT_LOCKED_GPU = 1000, OPT_LOCKED_MEM, OPT_PERSISTENCE, OPT_SETTING, OPT_DRY_RUN };

int cmd_config(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"gpu", required_argument, NULL, 'i'},
            {"power-limit", required_argument, NULL, 'P'},
            {"app-clocks", required_argument, NULL, 'a'},
            {"locked-gpu-clocks", required_argument, NULL, OPT_LOCKED_GPU},
            {"locked-mem-clocks", required_argument, NULL, OPT_LOCKED_MEM},
            {"compute-mode", required_argument, NULL, 'c'},
            {"persistence", required_argument, NULL, OPT_PERSISTENCE},
            {"ecc", required_argument, NULL, 'e'},
            {"setting", required_argument, NULL, OPT_SETTING},
            {"dry-run", no_argument, NULL, OPT_DRY_RUN},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        const char *gpu = NULL, *verb;
        json_t *settings = json_object(), *names = json_array(), *body = NULL;
        bool dry_run = false;
        int c, r = 0;

        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
                help(ctx);
                goto out;
        }
        if (argc < 2 || (strcmp(argv[1], "get") != 0 && strcmp(argv[1], "set") != 0 &&
                         strcmp(argv[1], "restore") != 0)) {
                r = cli_usage_error(ctx, usage, "%s",
                                    argc < 2 ? "missing 'get', 'set' or 'restore'"
                                             : "the verb is 'get', 'set' or 'restore'");
                goto out;
        }
        verb = argv[1];
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "+i:g:P:a:c:e:jh", opts, NULL)) != -1) {
                const char *key = NULL;
                switch (c) {
                case 'i':
                case 'g':
                        gpu = optarg;
                        break;
                case 'P':
                        key = "power_limit";
                        break;
                case 'a':
                        key = "app_clocks";
                        break;
                case OPT_LOCKED_GPU:
                        key = "locked_gpu_clocks";
                        break;
                case OPT_LOCKED_MEM:
                        key = "locked_mem_clocks";
                        break;
                case 'c':
                        key = "compute_mode";
                        break;
                case OPT_PERSISTENCE:
                        key = "persistence";
                        break;
                case 'e':
                        key = "ecc";
                        break;
                case OPT_SETTING:
                        json_array_append_new(names, json_string(optarg));
                        break;
                case OPT_DRY_RUN:
                        dry_run = true;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        goto out;
                default:
                        r = cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind]);
                        goto out;
                }
                if (key)
                        json_object_set_new(settings, key, json_string(optarg));
        }
        if (optind < argc - 1) {
                r = cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind + 1]);
                goto out;
        }
        if (!strcmp(verb, "get")) {
                if (json_object_size(settings) || json_array_size(names) || dry_run)
                        r = cli_usage_error(ctx, usage, "'get' takes only -i and -j");
                else
                        r = do_get(ctx, gpu);
                goto out;
        }
        if (!gpu) {
                r = cli_usage_error(ctx, usage,
                                    "'%s' needs -i GPUS (an index, a UUID, a list or "
                                    "all)",
                                    verb);
                goto out;
        }
        if (!strcmp(verb, "set")) {
                if (!json_object_size(settings) || json_array_size(names)) {
                        r = cli_usage_error(ctx, usage,
                                            "'set' needs at least one setting (-P, -a, "
                                            "--locked-gpu-clocks, ...)");
                        goto out;
                }
                body = json_pack("{s:O, s:b}", "settings", settings, "dry_run", dry_run);
                r = do_post(ctx, gpu, "", body);
        } else {
                if (json_object_size(settings)) {
                        r = cli_usage_error(ctx, usage,
                                            "'restore' takes --setting NAME, not "
                                            "values");
                        goto out;
                }
                body = json_pack("{s:O, s:b}", "settings", names, "dry_run", dry_run);
                r = do_post(ctx, gpu, "/restore", body);
        }
out:
        json_decref(body);
        json_decref(settings);
        json_decref(names);
        return r < 0 ? r : 0;
}
