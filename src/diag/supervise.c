/* supervise.c — the parent side of a diagnostic run: start `vigil-diag --worker` in a process
 * group of its own, read its JSON lines, enforce each test's timeout, stop it on cancel, and turn
 * a hang, crash or cancel into results. The worker may be stuck in the driver (a hung kernel):
 * SIGKILL to the group is the only way out, and it is always available. */
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macros.h"

#define LINE_MAX_BYTES (64 * 1024)

static double mono(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* argv for the worker; strings point into o or buf. */
static size_t build_argv(const diag_supervise_opts *so, const char **argv, size_t max, char *lvl,
                         size_t lvllen, char *gpus, size_t gpulen)
{
        const diag_opts *o = so->opts;
        size_t n = 0, off = 0;

        argv[n++] = so->worker;
        argv[n++] = "--worker";
        snprintf(lvl, lvllen, "%d", o->level);
        argv[n++] = "-r";
        argv[n++] = lvl;
        if (o->ngpus) {
                gpus[0] = '\0';
                for (size_t i = 0; i < o->ngpus && off < gpulen; i++)
                        off += (size_t)snprintf(gpus + off, gpulen - off, "%s%u", i ? "," : "",
                                                o->gpus[i]);
                argv[n++] = "-i";
                argv[n++] = gpus;
        }
        for (size_t i = 0; i < o->nparams && n + 2 < max - 12; i++) {
                argv[n++] = "--param";
                argv[n++] = o->params[i];
        }
        for (size_t i = 0; i < o->nconfig && n + 2 < max - 12; i++) {
                argv[n++] = "--config-param";
                argv[n++] = o->config[i];
        }
        if (o->force)
                argv[n++] = "--force";
        if (o->simulate)
                argv[n++] = "--simulate";
        if (o->scenario) {
                argv[n++] = "--scenario";
                argv[n++] = o->scenario;
        }
        if (o->nvml_lib) {
                argv[n++] = "--nvml-lib";
                argv[n++] = o->nvml_lib;
        }
        if (o->cuda_lib) {
                argv[n++] = "--cuda-lib";
                argv[n++] = o->cuda_lib;
        }
        argv[n] = NULL;
        return n;
}

/* Tests begun and not finished: several at once when GPUs are tested in parallel. */
struct open_test {
        char test[64];   /* name */
        json_t *gpu;     /* integer or null; owned */
        double deadline; /* monotonic seconds */
};

static void open_add(struct open_test *o, size_t *n, const json_t *ev, double deadline)
{
        const char *t = json_string_value(json_object_get(ev, "test"));
        json_t *g = json_object_get(ev, "gpu");

        /* the worker tests one GPU at a time in each thread: a new test on a GPU ends the last */
        for (size_t i = 0; i < *n; i++)
                if (json_equal(o[i].gpu, g ? g : json_null())) {
                        json_decref(o[i].gpu);
                        o[i] = o[--(*n)];
                        break;
                }
        if (*n >= DIAG_MAX_GPUS + 1)
                return;
        snprintf(o[*n].test, sizeof(o[*n].test), "%s", t ? t : "?");
        o[*n].gpu = g ? json_incref(g) : json_null();
        o[*n].deadline = deadline;
        (*n)++;
}

static void open_remove(struct open_test *o, size_t *n, const json_t *ev)
{
        const char *t = json_string_value(json_object_get(ev, "test"));
        json_t *g = json_object_get(ev, "gpu");

        for (size_t i = 0; t && i < *n; i++)
                if (strcmp(o[i].test, t) == 0 && json_equal(o[i].gpu, g ? g : json_null())) {
                        json_decref(o[i].gpu);
                        o[i] = o[--(*n)];
                        return;
                }
}

static void add_result(json_t *results, const char *test, json_t *gpu, const char *verdict,
                       const char *reason)
{
        json_array_append_new(results,
                              json_pack("{s:s, s:O, s:s, s:n, s:n, s:n, s:n, s:s}", "test", test,
                                        "gpu", gpu, "result", verdict, "value", "unit", "threshold",
                                        "threshold_source", "reason", reason));
}

int diag_supervise(const diag_supervise_opts *so, json_t **ret)
{
        const char *argv[4 * DIAG_MAX_PARAMS + 24];
        char lvl[8], gpus[512], reason[512] = "";
        _cleanup_free_ char *buf = malloc(LINE_MAX_BYTES);
        size_t used = 0;
        int pipefd[2], status = 0;
        pid_t pid;
        double scale = so->test_timeout_scale > 0 ? so->test_timeout_scale : 1;
        const char *env_scale = getenv("VIGIL_DIAG_TIMEOUT_SCALE");
        double cancel_at = 0;
        char cur_test[64] = "";
        struct open_test opn[DIAG_MAX_GPUS + 1];
        size_t nopen = 0;
        json_t *run, *results;
        bool ended = false, timed_out = false, cancelled = false, errored = false;
        int worst = DIAG_PASS;

        if (!buf)
                return -ENOMEM;
        /* tests shorten every test's timeout so that a hang is found in seconds */
        if (so->test_timeout_scale <= 0 && env_scale && atof(env_scale) > 0)
                scale = atof(env_scale);
        build_argv(so, argv, ARRAY_SIZE(argv), lvl, sizeof(lvl), gpus, sizeof(gpus));
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int e = -errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return e;
        }
        if (pid == 0) {
                sigset_t none;
                int devnull = open("/dev/null", O_RDONLY);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                setpgid(0, 0);
                if (devnull >= 0)
                        dup2(devnull, 0);
                dup2(pipefd[1], 1);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        setpgid(pid, pid);
        close(pipefd[1]);

        run = json_pack("{s:i, s:s, s:f}", "level", so->opts->level, "status", "running", "started",
                        wall());
        results = json_array();
        json_object_set_new(run, "results", results);
        json_object_set_new(run, "gpus", json_array());

        for (;;) {
                struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
                int k = poll(&pfd, 1, 200);
                double now = mono();

                if (k > 0) {
                        ssize_t n = read(pipefd[0], buf + used, LINE_MAX_BYTES - 1 - used);
                        if (n <= 0)
                                break; /* EOF: the worker is gone */
                        used += (size_t)n;
                        char *nl;
                        while ((nl = memchr(buf, '\n', used))) {
                                json_t *ev;
                                const char *kind;
                                *nl = '\0';
                                ev = json_loads(buf, 0, NULL);
                                used -= (size_t)(nl + 1 - buf);
                                memmove(buf, nl + 1, used);
                                if (!ev)
                                        continue;
                                kind = json_string_value(json_object_get(ev, "event"));
                                kind = kind ? kind : "";
                                if (strcmp(kind, "begin") == 0) {
                                        snprintf(cur_test, sizeof(cur_test), "%s",
                                                 json_string_value(json_object_get(ev, "test"))
                                                     ?: "?");
                                        open_add(opn, &nopen, ev,
                                                 now + scale * json_number_value(json_object_get(
                                                                   ev, "timeout_s")));
                                } else if (strcmp(kind, "result") == 0) {
                                        json_t *copy = json_deep_copy(ev);
                                        open_remove(opn, &nopen, ev);
                                        int v = diag_verdict_parse(
                                            json_string_value(json_object_get(ev, "result")));
                                        json_object_del(copy, "event");
                                        json_array_append_new(results, copy);
                                        worst = MAX(worst, v < 0            ? DIAG_FAIL
                                                           : v == DIAG_SKIP ? DIAG_PASS
                                                                            : v);
                                } else if (strcmp(kind, "start") == 0) {
                                        json_object_set(run, "gpus", json_object_get(ev, "gpus"));
                                } else if (strcmp(kind, "end") == 0) {
                                        ended = true;
                                        for (size_t i = 0; i < nopen; i++)
                                                json_decref(opn[i].gpu);
                                        nopen = 0;
                                } else if (strcmp(kind, "error") == 0) {
                                        errored = true;
                                        snprintf(reason, sizeof(reason), "%s",
                                                 json_string_value(json_object_get(ev, "reason"))
                                                     ?: "worker failed");
                                }
                                if (so->on_event)
                                        so->on_event(ev, so->userdata);
                                json_decref(ev);
                        }
                        if (used >= LINE_MAX_BYTES - 1)
                                used = 0; /* an absurd line: drop it */
                } else if (k < 0 && errno != EINTR) {
                        break;
                }
                if (!cancelled && so->cancel && atomic_load(so->cancel)) {
                        cancelled = true;
                        kill(-pid, SIGTERM);
                        cancel_at = now + 1;
                }
                if (cancelled && cancel_at && now >= cancel_at) {
                        kill(-pid, SIGKILL);
                        cancel_at = 0;
                }
                for (size_t i = 0; !cancelled && !timed_out && i < nopen; i++)
                        if (now > opn[i].deadline) {
                                timed_out = true;
                                snprintf(cur_test, sizeof(cur_test), "%s", opn[i].test);
                                kill(-pid, SIGKILL);
                        }
        }
        close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        kill(-pid, SIGKILL); /* anything the worker left in its group */

        if (cancelled) {
                for (size_t i = 0; i < nopen && !ended; i++)
                        add_result(results, opn[i].test, opn[i].gpu, "skip", "cancelled");
                json_object_set_new(run, "status", json_string("cancelled"));
                snprintf(reason, sizeof(reason), "cancelled%s%s", *cur_test ? " during " : "",
                         cur_test);
        } else if (timed_out) {
                char why[256];
                snprintf(why, sizeof(why),
                         "did not finish within its timeout (hung kernel or driver call?); the "
                         "run was stopped");
                /* the test that overran and any running beside it (other GPUs) */
                for (size_t i = 0; i < nopen; i++)
                        add_result(results, opn[i].test, opn[i].gpu, "fail", why);
                worst = DIAG_FAIL;
                json_object_set_new(run, "status", json_string("failed"));
                snprintf(reason, sizeof(reason), "test '%s' timed out", cur_test);
        } else if (errored) {
                worst = DIAG_FAIL;
                json_object_set_new(run, "status", json_string("failed"));
        } else if (!ended) {
                char why[256], st[64];
                if (WIFSIGNALED(status))
                        snprintf(st, sizeof(st), "killed by signal %d", WTERMSIG(status));
                else
                        snprintf(st, sizeof(st), "exit status %d",
                                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                snprintf(why, sizeof(why), "the test process ended unexpectedly (%s)", st);
                for (size_t i = 0; i < nopen; i++)
                        add_result(results, opn[i].test, opn[i].gpu, "fail", why);
                if (nopen == 0)
                        add_result(results, "worker", json_null(), "fail", why);
                worst = DIAG_FAIL;
                json_object_set_new(run, "status", json_string("failed"));
                snprintf(reason, sizeof(reason), "%s", why);
        } else {
                json_object_set_new(run, "status", json_string("completed"));
        }
        for (size_t i = 0; i < nopen; i++)
                json_decref(opn[i].gpu);
        json_object_set_new(run, "result", json_string(diag_verdict_name(worst)));
        json_object_set_new(run, "reason", json_string(reason));
        json_object_set_new(run, "finished", json_real(wall()));
        *ret = run;
        return 0;
}
