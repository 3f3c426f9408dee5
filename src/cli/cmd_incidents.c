/* cmd_incidents.c — `vigil incidents [--all]` (GET /api/v1/incidents) and
 * `vigil incidents ack ID` (POST /api/v1/incidents/ID/ack). */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

static const char usage[] = "vigil incidents [--all] [-j|--json] | vigil incidents ack ID";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "List incidents (open and acknowledged; --all adds resolved ones), or acknowledge\n"
                "one. An acknowledged incident stays until its condition has cleared.\n\n"
                "  -a, --all    include resolved incidents\n"
                "  -j, --json   print the daemon's JSON\n"
                "  -h, --help   show this help\n",
                usage);
}

static const char *str(const json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

static int ack(cli_ctx *ctx, const char *id)
{
        char path[96];
        long v;
        json_t *res = NULL;
        int r;

        if (cli_parse_long(id, 1, 0x7fffffffffffffffL, &v) < 0)
                return cli_usage_error(ctx, usage, "'%s' is not an incident id", id);
        snprintf(path, sizeof(path), "/api/v1/incidents/%ld/ack", v);
        r = client_request(ctx, "POST", path, NULL, &res);
        if (r < 0)
                return r;
        if (ctx->json)
                client_print_json(ctx, res, false);
        else
                fprintf(ctx->out, "incident %ld acknowledged\n", v);
        json_decref(res);
        return 0;
}

int cmd_incidents(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"all", no_argument, NULL, 'a'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        bool all = false;
        json_t *res = NULL;
        int c, r;

        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        opterr = 0;
        /* no '+': options may follow "ack ID" too (vigil incidents ack 5 -j) */
        while ((c = getopt_long(argc, argv, "ajh", opts, NULL)) != -1) {
                switch (c) {
                case 'a':
                        all = true;
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
        if (optind < argc) {
                if (strcmp(argv[optind], "ack") != 0)
                        return cli_usage_error(ctx, usage, "unknown subcommand '%s'", argv[optind]);
                if (optind + 2 != argc)
                        return cli_usage_error(ctx, usage, "ack needs exactly one incident id");
                if (all)
                        return cli_usage_error(ctx, usage, "--all is for listing, not ack");
                return ack(ctx, argv[optind + 1]);
        }
        r = client_get(ctx, all ? "/api/v1/incidents?all=true" : "/api/v1/incidents", &res);
        if (r < 0)
                return r;
        if (ctx->json) {
                client_print_json(ctx, res, false);
        } else {
                _cleanup_(buf_release) buf b = {0};
                static const char *const hdr[] = {"ID",    "GPU",        "SEVERITY",  "STATE",
                                                  "COUNT", "FIRST SEEN", "CONDITION", "SUMMARY"};
                table *t = NULL;
                const json_t *in;
                size_t i;

                buf_init(&b, 0);
                if (table_new(8, hdr, &t) < 0) {
                        json_decref(res);
                        return -ENOMEM;
                }
                json_array_foreach(json_object_get(res, "incidents"), i, in)
                {
                        char id[24], gpu[16], cnt[24];
                        const json_t *g = json_object_get(in, "gpu");
                        snprintf(id, sizeof(id), "%lld",
                                 (long long)json_integer_value(json_object_get(in, "id")));
                        if (json_is_integer(g))
                                snprintf(gpu, sizeof(gpu), "%lld",
                                         (long long)json_integer_value(g));
                        else
                                snprintf(gpu, sizeof(gpu), "node");
                        snprintf(cnt, sizeof(cnt), "%lld",
                                 (long long)json_integer_value(json_object_get(in, "count")));
                        table_add_rowv(t, id, gpu, str(in, "severity") ?: "",
                                       str(in, "state") ?: "", cnt, str(in, "first_seen") ?: "",
                                       str(in, "condition") ?: "", str(in, "summary") ?: "");
                }
                if (table_rows(t))
                        table_render(t, &b);
                else
                        buf_puts(&b, all ? "no incidents\n" : "no open incidents\n");
                table_free(t);
                cli_write_buf(ctx, &b);
        }
        json_decref(res);
        return 0;
}
