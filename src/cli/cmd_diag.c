/* cmd_diag.c — `vigil diag -r 1|2|3`: run the GPU diagnostics (DCGM's `dcgmi diag`) through the
 * daemon (POST /api/v1/diag, then GET /api/v1/diag/{id} until it ends), or with --local here, in
 * `vigil-diag` (found next to this binary) which runs the tests in a child process of its own.
 * Progress goes to stderr as each test ends; the result table (or --json the run) to stdout.
 * Ctrl-C cancels the run (DELETE /api/v1/diag/{id}, or the local child stops) and prints what
 * finished. Exit status: 0 every test passed or was skipped, 10 a warning, 11 a test failed,
 * 12 the run did not complete (a test hung or crashed), 130 cancelled; 2-8 as every command. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "table.h"

#define DIAG_EXIT_WARN       10
#define DIAG_EXIT_FAIL       11
#define DIAG_EXIT_INCOMPLETE 12
#define DIAG_EXIT_CANCELLED  130
#define DIAG_MAX_PARAMS      32

static const char usage[] =
    "vigil diag -r 1|2|3 [-i GPUS] [--param test.key=value]... [--force] [--no-wait] [--local "
    "[--simulate[=SCENARIO]] [--nvml-lib PATH] [--cuda-lib PATH]] [-j|--json]";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
        (void)sig;
        interrupted = 1;
}

static void help(cli_ctx *ctx)
{
        fprintf(
            ctx->out,
            "usage: %s\n\n"
            "Run the GPU diagnostics, like dcgmi diag:\n"
            "  -r 1   deployment checks (seconds): libraries, permissions, persistence, ECC,\n"
            "         row remapping, PCIe link, clock events, processes, environment\n"
            "  -r 2   + PCIe bandwidth and latency, P2P, a short memory test, every SM (~2 min)\n"
            "  -r 3   + memory test over 90%% of free memory, memory bandwidth, SM stress,\n"
            "         targeted power (~15 min; --param *.duration=SECONDS to change)\n\n"
            "  -i GPUS             comma-separated GPU indexes (default: all)\n"
            "  --param T.K=V       a test parameter (see docs/diagnostics.md), repeatable\n"
            "  --force             run on GPUs that have compute processes\n"
            "  --local             run here instead of through the daemon\n"
            "  --simulate[=FILE]   with --local: the fake NVML and CUDA (scenario FILE)\n"
            "  -j, --json          print the run as JSON\n\n"
            "Exit status: 0 passed (skips allowed), 10 warning, 11 failed, 12 the run did not\n"
            "complete (hung or crashed test), 130 cancelled; 2-8 as for every command.\n",
            usage);
}

static const char *str(const json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

/* One finished test as a progress line on stderr. */
static void progress(cli_ctx *ctx, const json_t *r)
{
        const json_t *gpu = json_object_get(r, "gpu");
        char where[16] = "system";

        if (ctx->json)
                return;
        if (json_is_integer(gpu))
                snprintf(where, sizeof(where), "GPU %lld", (long long)json_integer_value(gpu));
        fprintf(ctx->err, "  %-18s %-7s %-5s %s\n", str(r, "test") ?: "?", where,
                str(r, "result") ?: "?", str(r, "reason") ?: "");
        fflush(ctx->err);
}

int diag_run_exit_code(const json_t *run);
int diag_run_exit_code(const json_t *run)
{
        const char *status = str(run, "status");
        size_t i;
        json_t *r;
        int worst = 0;

        if (status && strcmp(status, "cancelled") == 0)
                return DIAG_EXIT_CANCELLED;
        if (status && strcmp(status, "completed") != 0)
                return DIAG_EXIT_INCOMPLETE;
        json_array_foreach(json_object_get(run, "results"), i, r)
        {
                const char *v = str(r, "result");
                if (v && strcmp(v, "fail") == 0)
                        worst = DIAG_EXIT_FAIL;
                else if (v && strcmp(v, "warn") == 0 && worst == 0)
                        worst = DIAG_EXIT_WARN;
        }
        return worst;
}

static int render(cli_ctx *ctx, const json_t *run)
{
        static const char *const hdr[] = {"TEST", "GPU", "RESULT", "VALUE", "THRESHOLD", "REASON"};
        table *t = NULL;
        buf b;
        size_t i;
        json_t *r;
        int rc;

        if (ctx->json) {
                client_print_json(ctx, run, false);
                return diag_run_exit_code(run);
        }
        buf_init(&b, 0);
        rc = table_new(ARRAY_SIZE(hdr), hdr, &t);
        if (rc < 0)
                return rc;
        json_array_foreach(json_object_get(run, "results"), i, r)
        {
                char gpu[16] = "-", val[48] = "-", thr[48] = "-";
                const json_t *g = json_object_get(r, "gpu"), *v = json_object_get(r, "value"),
                             *th = json_object_get(r, "threshold");
                const char *unit = str(r, "unit") ?: "", *src = str(r, "threshold_source");
                if (json_is_integer(g))
                        snprintf(gpu, sizeof(gpu), "%lld", (long long)json_integer_value(g));
                if (json_is_number(v))
                        snprintf(val, sizeof(val), "%.4g %s", json_number_value(v), unit);
                /* a threshold the operator set says so: "100 TFLOPS (config)" */
                bool set = src && (!strcmp(src, "config") || !strcmp(src, "param"));
                if (json_is_number(th))
                        snprintf(thr, sizeof(thr), "%.4g %s%s%s%s", json_number_value(th), unit,
                                 set ? " (" : "", set ? src : "", set ? ")" : "");
                table_add_rowv(t, str(r, "test") ?: "?", gpu, str(r, "result") ?: "?", val, thr,
                               str(r, "reason") ?: "");
        }
        table_render(t, &b);
        cli_write_buf(ctx, &b);
        buf_release(&b);
        table_free(t);
        fprintf(ctx->out, "level %lld: %s (%s)%s%s\n",
                (long long)json_integer_value(json_object_get(run, "level")),
                str(run, "result") ?: "?", str(run, "status") ?: "?",
                str(run, "reason") && *str(run, "reason") ? ": " : "", str(run, "reason") ?: "");
        return diag_run_exit_code(run);
}

/* ---- --local: vigil-diag here ---- */

static int find_vigil_diag(char *path, size_t len)
{
        const char *env = getenv("VIGIL_DIAG_WORKER");
        char exe[PATH_MAX], *slash;
        ssize_t n;

        if (env && *env) {
                snprintf(path, len, "%s", env);
                return 0;
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return -ENOENT;
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (!slash)
                return -ENOENT;
        *slash = '\0';
        static const char *const rel[] = {"/vigil-diag", "/../libexec/vigil/vigil-diag"};
        for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
                int k = snprintf(path, len, "%s%s", exe, rel[i]);
                if (k > 0 && (size_t)k < len && access(path, X_OK) == 0)
                        return 0;
        }
        return -ENOENT;
}

static int run_local(cli_ctx *ctx, const char **argv)
{
        char line[65536];
        int pipefd[2], status = 0, rc;
        pid_t pid;
        FILE *f;
        json_t *run = NULL;
        bool forwarded = false;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                dup2(pipefd[1], 1);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(pipefd[1]);
        f = fdopen(pipefd[0], "r");
        if (!f) {
                close(pipefd[0]);
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                return -ENOMEM;
        }
        for (;;) {
                json_t *ev;
                const char *kind;
                if (interrupted && !forwarded) {
                        /* the terminal sent it to vigil-diag too; not so for `kill -INT` */
                        kill(pid, SIGINT);
                        forwarded = true;
                        if (!ctx->json)
                                fprintf(ctx->err, "cancelling...\n");
                }
                if (!fgets(line, sizeof(line), f)) {
                        if (ferror(f) && errno == EINTR) {
                                clearerr(f);
                                continue;
                        }
                        break;
                }
                ev = json_loads(line, 0, NULL);
                if (!ev)
                        continue;
                kind = str(ev, "event") ?: "";
                if (strcmp(kind, "result") == 0)
                        progress(ctx, ev);
                else if (strcmp(kind, "run") == 0) {
                        json_decref(run);
                        run = json_incref(json_object_get(ev, "run"));
                }
                json_decref(ev);
        }
        fclose(f);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!run) {
                cli_error(ctx, "vigil-diag '%s' ended without a result (exit status %d)", argv[0],
                          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                return -EIO;
        }
        rc = render(ctx, run);
        json_decref(run);
        return rc;
}

/* ---- through the daemon ---- */

static int run_remote(cli_ctx *ctx, json_t *body, bool no_wait)
{
        json_t *ans = NULL, *run = NULL;
        char path[128];
        const char *id;
        size_t shown = 0;
        bool cancel_sent = false;
        int r;

        r = client_request(ctx, "POST", "/api/v1/diag", body, &ans);
        if (r < 0)
                return r;
        id = str(ans, "id");
        if (!id) {
                json_decref(ans);
                cli_error(ctx, "the daemon did not return a run id");
                return -EBADMSG;
        }
        if (no_wait) {
                /* start and return: a policy's exec hook must not wait for the run */
                if (ctx->json)
                        client_print_json(ctx, ans, true);
                else
                        fprintf(ctx->out, "%s\n", id);
                json_decref(ans);
                return 0;
        }
        snprintf(path, sizeof(path), "/api/v1/diag/%s", id);
        if (!ctx->json)
                fprintf(ctx->err, "diag run %s started (level %lld)\n", id,
                        (long long)json_integer_value(json_object_get(body, "level")));
        json_decref(ans);
        for (;;) {
                json_t *results;
                const char *status;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = 500 * 1000 * 1000};

                if (interrupted && !cancel_sent) {
                        cancel_sent = true;
                        if (!ctx->json)
                                fprintf(ctx->err, "cancelling...\n");
                        client_request(ctx, "DELETE", path, NULL, NULL);
                }
                json_decref(run);
                run = NULL;
                r = client_get(ctx, path, &run);
                if (r < 0 && r != -EINTR)
                        return r;
                if (r == -EINTR)
                        continue;
                results = json_object_get(run, "results");
                for (; shown < json_array_size(results); shown++)
                        progress(ctx, json_array_get(results, shown));
                status = str(run, "status");
                if (status && strcmp(status, "running") != 0 && strcmp(status, "queued") != 0)
                        break;
                nanosleep(&ts, NULL);
        }
        r = render(ctx, run);
        json_decref(run);
        return r;
}

enum { OPT_PARAM = 0x100, OPT_FORCE, OPT_LOCAL, OPT_SIMULATE, OPT_NVML, OPT_CUDA, OPT_NO_WAIT };

int cmd_diag(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"run", required_argument, NULL, 'r'},
            {"gpus", required_argument, NULL, 'i'},
            {"param", required_argument, NULL, OPT_PARAM},
            {"force", no_argument, NULL, OPT_FORCE},
            {"local", no_argument, NULL, OPT_LOCAL},
            {"simulate", optional_argument, NULL, OPT_SIMULATE},
            {"nvml-lib", required_argument, NULL, OPT_NVML},
            {"cuda-lib", required_argument, NULL, OPT_CUDA},
            {"no-wait", no_argument, NULL, OPT_NO_WAIT},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        const char *params[DIAG_MAX_PARAMS], *gpus = NULL, *scenario = NULL, *nvml = NULL,
                                             *cuda = NULL;
        size_t nparams = 0;
        long level = 0;
        bool force = false, local = false, simulate = false, no_wait = false;
        struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:r:i:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        if (cli_parse_long(optarg, 1, 3, &level) < 0)
                                return cli_usage_error(ctx, usage, "level '%s' is not 1, 2 or 3",
                                                       optarg);
                        break;
                case 'i':
                        if (strspn(optarg, "0123456789,") != strlen(optarg) || !*optarg)
                                return cli_usage_error(ctx, usage, "invalid GPU list '%s'", optarg);
                        gpus = optarg;
                        break;
                case OPT_PARAM:
                        if (!strchr(optarg, '=') || !strchr(optarg, '.'))
                                return cli_usage_error(
                                    ctx, usage, "parameter '%s' is not test.key=value", optarg);
                        if (nparams >= DIAG_MAX_PARAMS)
                                return cli_usage_error(ctx, usage, "too many parameters");
                        params[nparams++] = optarg;
                        break;
                case OPT_FORCE:
                        force = true;
                        break;
                case OPT_LOCAL:
                        local = true;
                        break;
                case OPT_NO_WAIT:
                        no_wait = true;
                        break;
                case OPT_SIMULATE:
                        simulate = true;
                        scenario = optarg;
                        break;
                case OPT_NVML:
                        nvml = optarg;
                        break;
                case OPT_CUDA:
                        cuda = optarg;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage, "option '%s' needs a value",
                                               argv[optind - 1]);
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind]);
        if (!level)
                return cli_usage_error(ctx, usage, "give a level with -r 1, 2 or 3");
        if (local && no_wait)
                return cli_usage_error(ctx, usage, "--no-wait needs the daemon (not --local)");
        if (!local && (simulate || nvml || cuda))
                return cli_usage_error(ctx, usage,
                                       "--simulate, --nvml-lib and --cuda-lib need --local");

        interrupted = 0;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        if (local) {
                const char *av[2 * DIAG_MAX_PARAMS + 20];
                char exe[PATH_MAX], lvl[4];
                size_t n = 0;
                if (find_vigil_diag(exe, sizeof(exe)) < 0) {
                        cli_error(ctx, "cannot find 'vigil-diag' next to this program");
                        r = -ENOENT;
                        goto out;
                }
                snprintf(lvl, sizeof(lvl), "%ld", level);
                av[n++] = exe;
                av[n++] = "-r";
                av[n++] = lvl;
                if (gpus) {
                        av[n++] = "-i";
                        av[n++] = gpus;
                }
                for (size_t i = 0; i < nparams; i++) {
                        av[n++] = "--param";
                        av[n++] = params[i];
                }
                if (force)
                        av[n++] = "--force";
                if (simulate)
                        av[n++] = "--simulate";
                if (scenario) {
                        av[n++] = "--scenario";
                        av[n++] = scenario;
                }
                if (nvml) {
                        av[n++] = "--nvml-lib";
                        av[n++] = nvml;
                }
                if (cuda) {
                        av[n++] = "--cuda-lib";
                        av[n++] = cuda;
                }
                av[n] = NULL;
                r = run_local(ctx, av);
        } else {
                json_t *body = json_pack("{s:i, s:b}", "level", (int)level, "force", force);
                json_t *pa = json_array(), *ga = json_array();
                for (size_t i = 0; i < nparams; i++)
                        json_array_append_new(pa, json_string(params[i]));
                json_object_set_new(body, "params", pa);
                for (const char *p = gpus; p && *p;) {
                        json_array_append_new(ga, json_integer(strtol(p, (char **)&p, 10)));
                        if (*p == ',')
                                p++;
                }
                if (gpus)
                        json_object_set_new(body, "gpus", ga);
                else
                        json_decref(ga);
                r = run_remote(ctx, body, no_wait);
                json_decref(body);
        }
out:
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        return r;
}
