/* spawn.c — a child process with a deadline (spawn.h). The parent polls the child's stdin and
 * output pipes until the output closes, then waits for the exit within the same deadline. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macros.h"
#include "vtime.h"

/* In the child after fork(): only async-signal-safe calls until exec. */
static _Noreturn void child(const spawn_opts *o, int in_fd, int out_fd)
{
        sigset_t none;
        int null = -1;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (o->new_pgrp)
                setpgid(0, 0);
        if (o->quiet && (in_fd < 0 || out_fd < 0))
                null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (in_fd >= 0)
                dup2(in_fd, 0);
        else if (null >= 0)
                dup2(null, 0);
        if (out_fd >= 0) {
                dup2(out_fd, 1);
                dup2(out_fd, 2);
        } else if (null >= 0) {
                dup2(null, 1);
                dup2(null, 2);
        }
        execvp(o->argv[0], (char *const *)o->argv);
        _exit(127);
}

static void kill_child(const spawn_opts *o, pid_t pid)
{
        if (o->new_pgrp)
                kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* Writing to a child that exited without reading its stdin raises SIGPIPE, which kills the process
 * unless ignored. Block it in this thread while feeding the child and swallow the one we caused
 * (the process-wide disposition is the daemon's business, not ours). */
static void sigpipe_block(sigset_t *old, bool *was_pending)
{
        sigset_t pipe_set, pending;

        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigpending(&pending);
        *was_pending = sigismember(&pending, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, old);
}

static void sigpipe_restore(const sigset_t *old, bool was_pending)
{
        sigset_t pipe_set, pending;
        struct timespec zero = {0, 0};

        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigpending(&pending);
        if (!was_pending && sigismember(&pending, SIGPIPE))
                while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

int spawn_run(const spawn_opts *o, int *wstatus)
{
        int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, status = 0, r = 0;
        int64_t deadline = o->timeout_us > 0 ? time_mono_us() + o->timeout_us : INT64_MAX;
        size_t written = 0, got = 0;
        bool pipe_pending = false;
        sigset_t old_mask;
        pid_t pid;

        if (!o->argv || !o->argv[0])
                return -EINVAL;
        if (o->out && o->outlen)
                o->out[0] = '\0';
        if (o->input && pipe2(in_pipe, O_CLOEXEC) < 0)
                return -errno;
        if (o->out && o->outlen && pipe2(out_pipe, O_CLOEXEC) < 0) {
                r = -errno;
                close_fd(&in_pipe[0]);
                close_fd(&in_pipe[1]);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close_fd(&in_pipe[0]);
                close_fd(&in_pipe[1]);
                close_fd(&out_pipe[0]);
                close_fd(&out_pipe[1]);
                return r;
        }
        if (pid == 0)
                child(o, in_pipe[0], out_pipe[1]);
        sigpipe_block(&old_mask, &pipe_pending);
        close_fd(&in_pipe[0]);
        close_fd(&out_pipe[1]);
        if (in_pipe[1] >= 0) {
                fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
                if (o->input_len == 0)
                        close_fd(&in_pipe[1]);
        }
        /* Feed stdin and drain the output until both are closed. */
        while (in_pipe[1] >= 0 || out_pipe[0] >= 0) {
                struct pollfd pf[2];
                nfds_t np = 0;
                int64_t left = deadline - time_mono_us();
                int ms = left > 1000 * 1000 ? 1000 : (int)(left / 1000 + 1);

                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                if (out_pipe[0] >= 0)
                        pf[np++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
                if (in_pipe[1] >= 0)
                        pf[np++] = (struct pollfd){.fd = in_pipe[1], .events = POLLOUT};
                if (poll(pf, np, ms) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                for (nfds_t i = 0; i < np; i++) {
                        if (!pf[i].revents)
                                continue;
                        if (pf[i].fd == in_pipe[1]) {
                                ssize_t w =
                                    write(in_pipe[1], o->input + written, o->input_len - written);
                                if (w > 0)
                                        written += (size_t)w;
                                if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
                                    written == o->input_len)
                                        close_fd(&in_pipe[1]);
                        } else {
                                char b[512];
                                ssize_t k = read(out_pipe[0], b, sizeof(b));
                                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                                        continue;
                                if (k <= 0) {
                                        close_fd(&out_pipe[0]);
                                        continue;
                                }
                                if (got + 1 < o->outlen) {
                                        size_t c = MIN((size_t)k, o->outlen - 1 - got);
                                        memcpy(o->out + got, b, c);
                                        got += c;
                                        o->out[got] = '\0';
                                }
                        }
                }
        }
        close_fd(&in_pipe[1]);
        close_fd(&out_pipe[0]);
        sigpipe_restore(&old_mask, pipe_pending);
        if (r < 0) {
                kill_child(o, pid);
                return r;
        }
        /* Output closed (or none captured): wait for the exit within the deadline. */
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        r = -errno;
                        kill_child(o, pid);
                        return r;
                }
                if (time_mono_us() >= deadline) {
                        kill_child(o, pid);
                        return -ETIMEDOUT;
                }
                usleep(w < 0 ? 0 : 10000);
        }
        *wstatus = status;
        return 0;
}

int spawn_exit_code(int wstatus)
{
        if (WIFEXITED(wstatus))
                return WEXITSTATUS(wstatus);
        if (WIFSIGNALED(wstatus))
                return 128 + WTERMSIG(wstatus);
        return -1;
}

const char *spawn_describe(int wstatus, char *buf, size_t len)
{
        if (WIFEXITED(wstatus))
                snprintf(buf, len, "exit status %d", WEXITSTATUS(wstatus));
        else if (WIFSIGNALED(wstatus))
                snprintf(buf, len, "killed by signal %d", WTERMSIG(wstatus));
        else
                snprintf(buf, len, "wait status %#x", (unsigned)wstatus);
        return buf;
}
