/* cmd_health.c — `vigil health [--check]`: GET /api/v1/health as a table (DCGM's PASS/WARN/FAIL
 * per GPU and system), or with --check only an exit status for scripts and probes:
 * 0 healthy, 1 warning, 2 critical, 3 the daemon cannot be reached (DESIGN §8). */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "table.h"

static const char usage[] = "vigil health [--check] [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Show the health of every GPU per system (pcie, memory, thermal, ...) and of the\n"
                "node, with DCGM's PASS/WARN/FAIL; systems nothing checks on a GPU are listed\n"
                "as not monitored, never as PASS.\n\n"
                "  --check      print one line and exit 0 healthy, 1 warning, 2 critical,\n"
                "               3 unknown: daemon unreachable or refused (with -j: the JSON, same "
                "exit status);\n"
                "               without --check the exit status is 0 when the health was shown\n"
                "  -j, --json   print the daemon's JSON (GET /api/v1/health)\n"
                "  -h, --help   show this help\n",
                usage);
}

/* PASS → 0, WARN → 1, FAIL → 2. */
int health_status_exit(const char *status);
int health_status_exit(const char *status)
{
        if (status && !strcmp(status, "FAIL"))
                return 2;
        if (status && !strcmp(status, "WARN"))
                return 1;
        return 0;
}

static const char *str(const json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

/* The systems whose status is not PASS (name=STATUS ...), or with not_monitored set the names
 * of those not monitored (a,b,...); "-" when none. */
static void systems_cell(const json_t *systems, bool not_monitored, char *out, size_t len)
{
        const char *name;
        json_t *v;
        size_t o = 0;

        out[0] = '\0';
        json_object_foreach((json_t *)systems, name, v)
        {
                const char *st = str(v, "status");
                if (not_monitored) {
                        if (st && !strcmp(st, "not_monitored"))
                                o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s",
                                                      o ? "," : "", name);
                        continue;
                }
                if (!st || !strcmp(st, "PASS") || !strcmp(st, "not_monitored"))
                        continue;
                o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s=%s", o ? " " : "", name,
                                      st);
        }
        if (!out[0])
                snprintf(out, len, "-");
}

int cmd_health(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"check", no_argument, NULL, 'c'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        bool check = false;
        json_t *h = NULL;
        int c, r, code;

        optind = 0; /* 0: GNU getopt starts over (main() parsed the global options) */
        while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        check = true;
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
        r = client_get(ctx, "/api/v1/health", &h);
        if (r < 0)
                return check ? 3 : r;
        code = health_status_exit(str(h, "status"));
        if (ctx->json) {
                client_print_json(ctx, h, false);
        } else if (check) {
                fprintf(ctx->out, "%s: %lld open incidents\n",
                        code == 2   ? "CRITICAL"
                        : code == 1 ? "WARNING"
                                    : "HEALTHY",
                        (long long)json_integer_value(json_object_get(h, "open_incidents")));
        } else {
                _cleanup_(buf_release) buf b = {0};
                static const char *const hdr[] = {
                    "GPU", "UUID", "STATUS", "SYSTEMS NOT PASSING", "INCIDENTS", "NOT MONITORED"};
                table *t = NULL;
                const json_t *g, *node = json_object_get(h, "node");
                size_t i;
                char sys[512], inc[256], nm[256];

                buf_init(&b, 0);
                buf_printf(&b, "Overall: %s (%lld open incidents)\n\n", str(h, "status") ?: "?",
                           (long long)json_integer_value(json_object_get(h, "open_incidents")));
                if (table_new(6, hdr, &t) < 0) {
                        json_decref(h);
                        return -ENOMEM;
                }
                json_array_foreach(json_object_get(h, "gpus"), i, g)
                {
                        char idx[16];
                        size_t o = 0, k;
                        const json_t *id;
                        snprintf(idx, sizeof(idx), "%lld",
                                 (long long)json_integer_value(json_object_get(g, "index")));
                        systems_cell(json_object_get(g, "systems"), false, sys, sizeof(sys));
                        systems_cell(json_object_get(g, "systems"), true, nm, sizeof(nm));
                        inc[0] = '\0';
                        json_array_foreach(json_object_get(g, "incidents"), k, id) o +=
                            (size_t)snprintf(inc + o, o < sizeof(inc) ? sizeof(inc) - o : 0,
                                             "%s%lld", o ? "," : "",
                                             (long long)json_integer_value(id));
                        table_add_rowv(t, idx, str(g, "uuid") ?: "", str(g, "status") ?: "?", sys,
                                       inc[0] ? inc : "-", nm);
                }
                if (node) {
                        systems_cell(json_object_get(node, "systems"), false, sys, sizeof(sys));
                        systems_cell(json_object_get(node, "systems"), true, nm, sizeof(nm));
                        table_add_rowv(t, "node", "", str(node, "status") ?: "?", sys, "", nm);
                }
                table_render(t, &b);
                table_free(t);
                cli_write_buf(ctx, &b);
        }
        json_decref(h);
        /* only --check turns the verdict into the exit status; showing the table (or the JSON)
         * succeeded whatever it says, as for every other command */
        return check ? code : 0;
}
