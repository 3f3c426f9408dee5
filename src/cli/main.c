/* main.c — `vigil`, the command-line client of vigild: global options, then one command from the
 * table below. Adding a command is one line in `commands[]` plus its cmd_*.c file. Exit codes
 * come from src/common/errmap.h (2 usage, 3 daemon unreachable, 4 auth, 5 not found, ...). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

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
    {"ps", "processes on each GPU and who owns them (pod, Slurm job, container, unit)", cmd_ps},
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
    {"job", "job statistics: 'job start ID [-i GPUS]', stop, show, list (like dcgmi stats)",
     cmd_job},
    {"help", "show help for a command", cmd_help},
};

static const char usage[] =
    "vigil [--host URL[,URL...]] [--socket PATH] [--token TOKEN | --user NAME] [--cacert FILE] "
    "[--cert FILE [--key FILE]] [--json] [--timeout SECONDS] COMMAND [ARGS]";

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
                "  --user NAME          basic-auth user (env VIGIL_USER); the password comes\n"
                "                       from VIGIL_PASSWORD or a prompt on the terminal\n"
                "  --cacert FILE        CA certificates to verify the daemon with\n"
                "                       (env SSL_CERT_FILE; SSL_CERT_DIR for a directory)\n"
                "  --cert FILE          client certificate for mTLS (PEM)\n"
                "  --key FILE           its private key (PEM; default: inside --cert)\n"
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

/* Read a password from the controlling terminal without echo. Caller frees (and wipes). */
static int prompt_password(const char *user, char **ret)
{
        _cleanup_close_ int fd = -1;
        struct termios old, quiet;
        char line[1024];
        ssize_t n;
        size_t len = 0;
        int r = 0;

        if (!isatty(STDIN_FILENO))
                return -ENOTTY;
        fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -ENOTTY;
        if (tcgetattr(fd, &old) < 0)
                return -ENOTTY;
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ICANON;
        /* Echo off (and earlier typing dropped) before the prompt shows: an answer typed after
         * the prompt is never flushed away. */
        if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
                return -ENOTTY;
        dprintf(fd, "password for '%s': ", user);
        while (len < sizeof(line) - 1) {
                n = read(fd, line + len, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || line[len] == '\n')
                        break;
                len++;
        }
        line[len] = '\0';
        (void)tcsetattr(fd, TCSAFLUSH, &old);
        dprintf(fd, "\n");
        *ret = strdup(line);
        if (!*ret)
                r = -ENOMEM;
        explicit_bzero(line, sizeof(line));
        return r;
}

/* A file option must name a readable file now, not fail later inside the TLS handshake. */
static int set_file(cli_ctx *ctx, char **field, const char *what, const char *path)
{
        if (!path || !*path || access(path, R_OK) < 0) {
                cli_error(ctx, "cannot read %s '%s': %s", what, path ? path : "",
                          path && *path ? strerror(errno) : "empty path");
                return -EINVAL;
        }
        free(*field);
        *field = strdup(path);
        return *field ? 0 : -ENOMEM;
}

/* --cacert/--cert/--key/--user and their environment variables. */
static int setup_security(cli_ctx *ctx, const char *cacert, const char *cert, const char *key,
                          const char *user)
{
        const char *env;
        int r;

        if (!cacert && (env = getenv("SSL_CERT_FILE")) && *env)
                cacert = env;
        if (cacert && (r = set_file(ctx, &ctx->cacert, "CA file", cacert)) < 0)
                return r;
        if ((env = getenv("SSL_CERT_DIR")) && *env) {
                /* OpenSSL's convention: several directories separated by ':' are not for
                 * libcurl's CAPATH, which takes one */
                ctx->capath = strdup(env);
                if (!ctx->capath)
                        return -ENOMEM;
        }
        if (key && !cert) {
                cli_error(ctx, "option '--key' needs '--cert'");
                return -EINVAL;
        }
        if (cert && (r = set_file(ctx, &ctx->cert, "client certificate", cert)) < 0)
                return r;
        if (key && (r = set_file(ctx, &ctx->key, "client key", key)) < 0)
                return r;
        if (!user && (env = getenv("VIGIL_USER")) && *env)
                user = env;
        if (!user)
                return 0;
        if (!*user || strchr(user, ':') || strpbrk(user, "\r\n")) {
                cli_error(ctx, "invalid user name '%s' (empty, or with ':' or a line break)", user);
                return -EINVAL;
        }
        ctx->user = strdup(user);
        if (!ctx->user)
                return -ENOMEM;
        env = getenv("VIGIL_PASSWORD");
        if (env) {
                ctx->password = strdup(env);
                return ctx->password ? 0 : -ENOMEM;
        }
        r = prompt_password(user, &ctx->password);
        if (r == -ENOTTY) {
                cli_error(ctx, "no password for '%s': set VIGIL_PASSWORD (no terminal to ask on)",
                          user);
                return -EINVAL;
        }
        return r;
}

enum {
        OPT_HOST = 0x100,
        OPT_SOCKET,
        OPT_TOKEN,
        OPT_TIMEOUT,
        OPT_CACERT,
        OPT_CERT,
        OPT_KEY,
        OPT_USER,
};

static int run(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"host", required_argument, NULL, OPT_HOST},
            {"socket", required_argument, NULL, OPT_SOCKET},
            {"token", required_argument, NULL, OPT_TOKEN},
            {"timeout", required_argument, NULL, OPT_TIMEOUT},
            {"cacert", required_argument, NULL, OPT_CACERT},
            {"cert", required_argument, NULL, OPT_CERT},
            {"key", required_argument, NULL, OPT_KEY},
            {"user", required_argument, NULL, OPT_USER},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {},
        };
        const char *hosts = NULL, *sock = NULL, *token = getenv("VIGIL_TOKEN");
        const char *cacert = NULL, *cert = NULL, *key = NULL, *user = NULL;
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
                case OPT_CACERT:
                        cacert = optarg;
                        break;
                case OPT_CERT:
                        cert = optarg;
                        break;
                case OPT_KEY:
                        key = optarg;
                        break;
                case OPT_USER:
                        user = optarg;
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
        if (user && token && token != getenv("VIGIL_TOKEN"))
                return cli_usage_error(ctx, usage, "--token or --user, not both");
        if (cacert || cert) {
                bool https = false;
                for (size_t i = 0; i < ctx->n_targets; i++)
                        https |= strncasecmp(ctx->targets[i].base, "https://", 8) == 0 &&
                                 !ctx->targets[i].socket;
                if (!https)
                        return cli_usage_error(ctx, usage,
                                               "%s applies to https:// hosts, and none is given",
                                               cacert ? "--cacert" : "--cert");
        }
        r = setup_security(ctx, cacert, cert, key, user);
        if (r < 0)
                return r;
        if (ctx->user)
                token = NULL; /* basic auth asked for: an exported VIGIL_TOKEN is not sent too */
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
        /* nothing the daemon sends may reach the terminal as a control sequence */
        ctx.out = client_sanitizing_stream(stdout);
        if (ctx.out)
                ctx.raw_out = stdout;
        else
                ctx.out = stdout;
        r = run(argc, argv, &ctx);
        if (ctx.out != stdout && fclose(ctx.out) != 0 && r >= 0)
                r = 1;
        ctx.out = stdout;
        cli_ctx_release(&ctx);
        curl_global_cleanup();
        if (fflush(stdout) != 0 && r >= 0)
                r = 1;
        return r < 0 ? errmap_exit_code(r) : r;
}
