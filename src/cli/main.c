/* main.c — `vigil`, the command-line client of vigild: global options, then one command from the
 * table below. Adding a command is one line in `commands[]` plus its cmd_*.c file. Exit codes
 * come from src/common/errmap.h (2 usage, 3 daemon unreachable, 4 auth, 5 not found, ...). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "commands.h"
#include "common/errmap.h"
#include "common/vtime.h"

static int cmd_help(int argc, char **argv, cli_ctx *ctx);

static const cli_command commands[] = {
    {"discovery", "list the GPUs the daemon sees (like dcgmi discovery -l)", cmd_discovery},
    {"dmon", "watch field values per GPU (like dcgmi dmon)", cmd_dmon},
    {"status", "show daemon version, uptime, GPUs and sampling tiers", cmd_status},
    {"fields", "list the fields the daemon samples", cmd_fields},
    {"nvlink", "NVLink link status (-s) or per-link errors (-e) (like dcgmi nvlink)", cmd_nvlink},
    {"topo", "GPU topology matrix with CPU and NUMA affinity (like nvidia-smi topo -m)", cmd_topo},
    {"config", "show GPU configuration, read-only: 'config get' (like dcgmi config --get)",
     cmd_config},
    {"health", "show GPU health per system; --check exits 0/1/2 (healthy/warning/critical)",
     cmd_health},
    {"incidents", "list incidents (--all with resolved ones); 'incidents ack ID'", cmd_incidents},
    {"token", "create a JWT ('token create --role R') or revoke one ('token revoke JTI')",
     cmd_token},
    {"audit", "show the audit trail; 'audit verify [--db PATH]' checks its hash chain", cmd_audit},
    {"backup", "create, list, verify, prune, restore and roll back backups", cmd_backup},
    {"keys", "show or rotate the data encryption keys", cmd_keys},
    {"diag", "run GPU diagnostics, levels 1-3 (like dcgmi diag -r)", cmd_diag},
    {"help", "show help for a command", cmd_help},
};

static const char usage[] =
    "vigil [--host URL[,URL...]] [--socket PATH] [--token TOKEN] [--json] [--timeout SECONDS] "
    "COMMAND [ARGS]";

static void print_help(FILE *f)
{
        fprintf(f,
                "usage: %s\n\n"
                "Talk to vigild, the GPU manager daemon.\n\n"
                "Commands:\n",
                usage);
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
        fprintf(f,
                "\nOptions:\n"
                "  --host URL[,URL...]  daemons to try in order, first that answers wins\n"
                "                       (env VIGIL_HOST; default: socket %s if present,\n"
                "                       else %s)\n"
                "  --socket PATH        talk over a unix socket (tried after --host)\n"
                "  --token TOKEN        bearer token (env VIGIL_TOKEN)\n"
                "  -j, --json           print JSON instead of text\n"
                "  --timeout SECONDS    whole-request timeout (default 5; also '500ms')\n"
                "  -h, --help           show this help\n"
                "  -V, --version        show the version\n"
                "\nRun 'vigil COMMAND --help' for a command's options.\n",
                CLIENT_DEFAULT_SOCKET, CLIENT_DEFAULT_URL);
}

static const cli_command *find_command(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static int cmd_help(int argc, char **argv, cli_ctx *ctx)
{
        const cli_command *c;
        char *sub[] = {NULL, (char *)"--help", NULL};

        if (argc < 2) {
                print_help(ctx->out);
                return 0;
        }
        c = find_command(argv[1]);
        if (!c || c->fn == cmd_help) {
                cli_error(ctx, "unknown command '%s'", argv[1]);
                return -EINVAL;
        }
        sub[0] = argv[1];
        return c->fn(2, sub, ctx);
}

/* Seconds as "5", "2.5" or a duration ("500ms", "1m"). */
static int parse_timeout(const char *s, int64_t *ret_us)
{
        char *end = NULL;
        double d;
        int64_t us;

        errno = 0;
        d = strtod(s, &end);
        if (end != s && *end == '\0' && errno == 0) {
                if (!(d > 0) || d > 86400)
                        return -ERANGE;
                *ret_us = (int64_t)(d * 1e6);
                return 0;
        }
        if (time_parse_duration(s, &us) < 0 || us <= 0)
                return -EINVAL;
        *ret_us = us;
        return 0;
}

static int set_token(cli_ctx *ctx, const char *tok)
{
        size_t n = strlen(tok);

        /* a newline would smuggle a second header into the request */
        if (n == 0 || n > CLIENT_MAX_TOKEN || strpbrk(tok, "\r\n"))
                return -EINVAL;
        free(ctx->token);
        ctx->token = strdup(tok);
        return ctx->token ? 0 : -ENOMEM;
}

enum {
        OPT_HOST = 0x100,
        OPT_SOCKET,
        OPT_TOKEN,
        OPT_TIMEOUT,
};

static int run(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"host", required_argument, NULL, OPT_HOST},
            {"socket", required_argument, NULL, OPT_SOCKET},
            {"token", required_argument, NULL, OPT_TOKEN},
            {"timeout", required_argument, NULL, OPT_TIMEOUT},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {},
        };
        const char *hosts = NULL, *sock = NULL, *token = getenv("VIGIL_TOKEN");
        const cli_command *cmd;
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:jhV", opts, NULL)) != -1) {
                switch (c) {
                case OPT_HOST:
                        hosts = optarg;
                        break;
                case OPT_SOCKET:
                        sock = optarg;
                        break;
                case OPT_TOKEN:
                        token = optarg;
                        break;
                case OPT_TIMEOUT:
                        if (parse_timeout(optarg, &ctx->timeout_us) < 0)
                                return cli_usage_error(ctx, usage, "invalid timeout '%s'", optarg);
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        print_help(ctx->out);
                        return 0;
                case 'V':
                        fprintf(ctx->out, "vigil %s\n", VIGIL_VERSION);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage, "option '%s' needs a value",
                                               argv[optind - 1]);
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind >= argc)
                return cli_usage_error(ctx, usage, "no command given (try 'vigil --help')");
        cmd = find_command(argv[optind]);
        if (!cmd)
                return cli_usage_error(ctx, usage, "unknown command '%s'", argv[optind]);

        if (hosts) {
                r = client_add_hosts(ctx, hosts);
                if (r < 0)
                        return cli_usage_error(ctx, usage, "invalid host list '%s'", hosts);
        }
        if (sock) {
                r = client_add_socket(ctx, sock);
                if (r < 0)
                        return cli_usage_error(ctx, usage, "invalid socket path '%s'", sock);
        }
        r = client_add_defaults(ctx);
        if (r < 0) {
                cli_error(ctx, "invalid host list '%s' in VIGIL_HOST", getenv("VIGIL_HOST"));
                return r;
        }
        if (token && *token) {
                r = set_token(ctx, token);
                if (r < 0) {
                        /* never echo the token itself */
                        cli_error(ctx, "invalid token (empty, too long or with a line break)");
                        return r;
                }
        }
        return cmd->fn(argc - optind, argv + optind, ctx);
}

int main(int argc, char **argv)
{
        cli_ctx ctx;
        int r;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "vigil: failed to initialise libcurl\n");
                return 1;
        }
        cli_ctx_init(&ctx);
        r = run(argc, argv, &ctx);
        cli_ctx_release(&ctx);
        curl_global_cleanup();
        if (fflush(stdout) != 0 && r >= 0)
                r = 1;
        return r < 0 ? errmap_exit_code(r) : r;
}
