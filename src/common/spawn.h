/* spawn.h — run a program as a child with a deadline: fork/exec, an optional stdin payload,
 * optional capture of its output, SIGKILL at the deadline, and its exit status. The one copy
 * behind backup hooks, policy exec actions and `nvidia-smi --gpu-reset`.
 *
 * Not a shell: argv is executed as given (execvp: argv[0] is looked up in PATH). Callers that
 * want a shell pass {"/bin/sh", "-c", cmd, NULL}. */
#ifndef VIGIL_COMMON_SPAWN_H
#define VIGIL_COMMON_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct spawn_opts {
        const char *const *argv; /* NULL-terminated; argv[0] is the program */
        const char *input;       /* written to the child's stdin, then closed; NULL: see quiet */
        size_t input_len;        /* bytes of input */
        char *out;               /* captured stdout+stderr (NUL-terminated, excess dropped) */
        size_t outlen;           /* bytes of out, NUL included; 0 with out == NULL */
        int64_t timeout_us;      /* SIGKILL after this long; <= 0: no deadline */
        bool quiet;              /* stdin/stdout/stderr not given above go to /dev/null
                                  * (otherwise they are inherited) */
        bool new_pgrp;           /* child leads its own process group; the whole group is
                                  * killed at the deadline (hooks that start children) */
} spawn_opts;

/* Run the child and wait for it. Returns 0 and sets *wstatus (waitpid's status) when the child
 * ended; -ETIMEDOUT when it was killed at the deadline (and reaped); -errno when it could not be
 * started or waited for. A program that cannot be executed exits 127. The child gets an empty
 * signal mask (callers' threads often block SIGTERM/SIGHUP for a signalfd).
 * Blocks the calling thread until the child is gone; any thread. */
int spawn_run(const spawn_opts *o, int *wstatus);

/* The exit status as a shell reports it: the exit code, or 128 + signal number. */
int spawn_exit_code(int wstatus);

/* "exit status 3" / "killed by signal 9", into buf; returns buf. */
const char *spawn_describe(int wstatus, char *buf, size_t len);

#endif
