/* cmd_fields.c — `vigil fields`: the field catalog the daemon serves (GET /api/v1/fields), the
 * names dmon -e and the history API accept. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "common/vtime.h"
#include "table.h"

static const char usage[] = "vigil fields [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "List the fields vigild samples, with their DCGM and native names.\n\n"
                "  -j, --json   print the daemon's JSON (GET /api/v1/fields)\n"
                "  -h, --help   show this help\n",
                usage);
}

static const char *str(const json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));
        return s && *s ? s : "-";
}

static int render(cli_ctx *ctx, const json_t *root)
{
        const json_t *fields = json_object_get(root, "fields"), *m;
        _cleanup_(buf_release) buf b = {0};
        table *t = NULL;
        size_t i;
        int r;

        buf_init(&b, 0);
        r = table_new(7,
                      (const char *const[]){"ID", "NAME", "DCGM NAME", "NATIVE NAME", "UNIT",
                                            "TIER", "INTERVAL"},
                      &t);
        if (r < 0)
                return r;
        table_set_align(t, 0, TABLE_RIGHT);
        table_set_align(t, 6, TABLE_RIGHT);
        json_array_foreach(fields, i, m)
        {
                char id[16], iv[32];
                json_int_t us = json_integer_value(json_object_get(m, "interval_us"));

                snprintf(id, sizeof(id), "%lld",
                         (long long)json_integer_value(json_object_get(m, "id")));
                if (us > 0)
                        time_format_duration(us, iv, sizeof(iv));
                else
                        snprintf(iv, sizeof(iv), "-");
                r = table_add_rowv(t, id, str(m, "name"), str(m, "dcgm_name"), str(m, "native"),
                                   str(m, "unit"), str(m, "tier"), iv);
                if (r < 0) {
                        table_free(t);
                        return r;
                }
        }
        table_render(t, &b);
        table_free(t);
        if (b.err)
                return b.err;
        cli_write_buf(ctx, &b);
        return 0;
}

int cmd_fields(int argc, char **argv, cli_ctx *ctx)
{
        static const cli_view view = {usage, help, "/api/v1/fields", render, NULL};

        return cli_run_view(argc, argv, ctx, &view);
}
