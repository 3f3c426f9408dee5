/* vigil_diag.c — `vigil-diag`, the diagnostics executable. With --worker it runs the tests and
 * writes JSON lines (the child the daemon and the CLI supervise); without, it supervises a worker
 * itself and writes the same lines followed by {"event":"run","run":{...}} (what `vigil diag
 * --local` runs). SIGINT/SIGTERM cancel a supervised run. Exit status: 0 the run completed, 1 it
 * did not (cancelled, failed to start), 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "diag/diag.h"

static atomic_bool cancel;

static void on_signal(int sig)
{
        (void)sig;
        atomic_store(&cancel, true);
}

static void print_event(const json_t *ev, void *userdata)
{
        char *s = json_dumps(ev, JSON_COMPACT);
        (void)userdata;
        if (s) {
                printf("%s\n", s);
                fflush(stdout);
                free(s);
        }
}

static const char usage[] =
    "usage: vigil-diag [--worker] -r 1|2|3 [-i GPUS] [--param test.key=value]... [--force]\n"
    "                  [--simulate[=FILE]] [--scenario FILE] [--nvml-lib PATH] [--cuda-lib PATH]\n";

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"worker", no_argument, NULL, 'W'},
            {"run", required_argument, NULL, 'r'},
            {"gpus", required_argument, NULL, 'i'},
            {"param", required_argument, NULL, 'p'},
            {"config-param", required_argument, NULL, 'c'},
            {"force", no_argument, NULL, 'f'},
            {"simulate", optional_argument, NULL, 's'},
            {"scenario", required_argument, NULL, 'S'},
            {"nvml-lib", required_argument, NULL, 'N'},
            {"cuda-lib", required_argument, NULL, 'C'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        diag_opts o = {.level = 1};
        bool worker = false;
        char err[256], path[4096];
        int c, r;

        while ((c = getopt_long(argc, argv, "r:i:h", opts, NULL)) != -1) {
                switch (c) {
                case 'W':
                        worker = true;
                        break;
                case 'r':
                        o.level = atoi(optarg);
                        if (o.level < 1 || o.level > 3) {
                                fprintf(stderr, "vigil-diag: level '%s' is not 1, 2 or 3\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'i':
                        if (diag_parse_gpu_list(optarg, &o) < 0) {
                                fprintf(stderr, "vigil-diag: invalid GPU list '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'p':
                        if (diag_param_check(optarg, err, sizeof(err)) < 0) {
                                fprintf(stderr, "vigil-diag: %s\n", err);
                                return 2;
                        }
                        if (o.nparams >= DIAG_MAX_PARAMS) {
                                fprintf(stderr, "vigil-diag: too many parameters\n");
                                return 2;
                        }
                        o.params[o.nparams++] = optarg;
                        break;
                case 'c': /* the daemon's diag: section, as parameters of lower precedence */
                        if (diag_param_check(optarg, err, sizeof(err)) < 0) {
                                fprintf(stderr, "vigil-diag: %s\n", err);
                                return 2;
                        }
                        if (o.nconfig >= DIAG_MAX_PARAMS) {
                                fprintf(stderr, "vigil-diag: too many parameters\n");
                                return 2;
                        }
                        o.config[o.nconfig++] = optarg;
                        break;
                case 'f':
                        o.force = true;
                        break;
                case 's':
                        o.simulate = true;
                        if (optarg)
                                o.scenario = optarg;
                        break;
                case 'S':
                        o.scenario = optarg;
                        o.simulate = true;
                        break;
                case 'N':
                        o.nvml_lib = optarg;
                        break;
                case 'C':
                        o.cuda_lib = optarg;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                default:
                        fputs(usage, stderr);
                        return 2;
                }
        }
        if (worker)
                return diag_worker_run(&o, stdout) < 0 ? 1 : 0;

        r = diag_find_worker(path, sizeof(path));
        if (r < 0) {
                fprintf(stderr, "vigil-diag: cannot find the vigil-diag executable\n");
                return 1;
        }
        {
                struct sigaction sa = {.sa_handler = on_signal};
                json_t *run = NULL;
                diag_supervise_opts so = {
                    .worker = path, .opts = &o, .cancel = &cancel, .on_event = print_event};
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
                signal(SIGPIPE, SIG_IGN);
                r = diag_supervise(&so, &run);
                if (r < 0) {
                        fprintf(stderr, "vigil-diag: cannot start the worker: %s\n", strerror(-r));
                        return 1;
                }
                json_t *ev = json_pack("{s:s, s:o}", "event", "run", "run", run);
                print_event(ev, NULL);
                r = strcmp(json_string_value(json_object_get(run, "status")) ?: "", "cancelled") ==
                    0;
                json_decref(ev);
                return r ? 1 : 0;
        }
}
