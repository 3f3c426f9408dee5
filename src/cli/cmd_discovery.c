/* cmd_discovery.c — `vigil discovery -l`: the GPUs the daemon sees, laid out like
 * `dcgmi discovery -l` (count line, then a boxed table with one cell of device lines per GPU). */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

static const char usage[] = "vigil discovery [-l] [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "List the GPUs vigild sees (like `dcgmi discovery -l`).\n\n"
                "  -l, --list   list GPUs (the default)\n"
                "  -j, --json   print the daemon's JSON (GET /api/v1/gpus)\n"
                "  -h, --help   show this help\n",
                usage);
}

static int render(cli_ctx *ctx, const json_t *root)
{
        const json_t *gpus = json_object_get(root, "gpus");
        _cleanup_(buf_release) buf b = {0};
        table *t = NULL;
        size_t n = json_array_size(gpus);
        int r;

        buf_init(&b, 0);
        r = table_new(2, (const char *const[]){"GPU ID", "Device Information"}, &t);
        if (r < 0)
                return r;
        table_set_style(t, TABLE_BOX);
        table_set_min_width(t, 0, 6);
        table_set_min_width(t, 1, 68);
        for (size_t i = 0; i < n; i++) {
                const json_t *g = json_array_get(gpus, i);
                const char *state = json_string_value(json_object_get(g, "state"));
                char id[32];
                _cleanup_(buf_release) buf info = {0};

                buf_init(&info, 0);
                snprintf(id, sizeof(id), "%lld",
                         (long long)json_integer_value(json_object_get(g, "index")));
                buf_printf(&info, "Name: %s\nPCI Bus ID: %s\nDevice UUID: %s",
                           json_string_value(json_object_get(g, "name")) ?: "-",
                           json_string_value(json_object_get(g, "pci_bus_id")) ?: "-",
                           json_string_value(json_object_get(g, "uuid")) ?: "-");
                if (state && strcmp(state, "up") != 0)
                        buf_printf(&info, "\nState: %s", state);
                if (info.err) {
                        table_free(t);
                        return info.err;
                }
                r = table_add_rowv(t, id, info.data);
                if (r < 0) {
                        table_free(t);
                        return r;
                }
        }
        buf_printf(&b, "%zu GPU%s found.\n", n, n == 1 ? "" : "s");
        if (n > 0)
                table_render(t, &b);
        table_free(t);
        if (b.err)
                return b.err;
        cli_write_buf(ctx, &b);
        return 0;
}

int cmd_discovery(int argc, char **argv, cli_ctx *ctx)
{
        static const cli_view view = {usage, help, "/api/v1/gpus", render, "l"};

        return cli_run_view(argc, argv, ctx, &view);
}
