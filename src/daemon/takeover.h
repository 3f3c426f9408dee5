/* takeover.h — zero-downtime upgrade: a new vigild takes the listening sockets of the running one.
 *
 * Every vigild listens on a control socket (SOCK_SEQPACKET, mode 0600, DATA_DIR/takeover.sock).
 * A successor started with `vigild --takeover PATH` (or spawned by the running one on SIGUSR2):
 *   1. connects; the running vigild answers "VIGIL-TAKEOVER 1 tcp=T unix=U lock=L" with its TCP
 *      and unix API listeners and its data-directory lock (DATA_DIR/vigild.lock, an flock)
 *      attached (SCM_RIGHTS). Both processes now hold the same sockets: the kernel's accept queue
 *      is shared, so no connection is refused or reset while they overlap; the flock belongs to
 *      the open file both now hold, so it stays taken when the old vigild exits and no third
 *      vigild can start on the directory in between. An older vigild sends no lock ("lock="
 *      absent);
 *   2. the successor samples until its first sweep is done, starts serving the sockets, and sends
 *      "READY <pid>";
 *   3. the running vigild answers "OK", stops accepting, answers its in-flight requests with
 *      "Connection: close", and exits. The successor binds the control socket path for the next
 *      upgrade.
 * A successor that exits or closes the connection before step 2 changes nothing: the running
 * vigild logs it and keeps serving (automatic rollback of a bad binary).
 * Not thread-safe: the main thread only. Functions return 0 or -errno. */
#ifndef VIGIL_TAKEOVER_H
#define VIGIL_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct takeover takeover;

/* The running side ------------------------------------------------------------------------- */

/* Listen on the control socket at path (a stale one is replaced). Caller owns *ret. */
int takeover_listen(const char *path, takeover **ret);
/* Fds the main loop polls for POLLIN: the listener, and the successor's connection when one is
 * connected. Returns how many were written (at most 2). */
size_t takeover_poll_fds(takeover *t, int *fds);
/* Call when a polled fd is readable. tcp_fd/unix_fd (-1 = none) are sent to a new successor.
 * Returns 1 when the successor is serving (then *successor is its pid and this vigild must drain
 * and exit), 0 otherwise. A successor that dies or gives up is logged, and we keep serving. */
int takeover_process(takeover *t, int tcp_fd, int unix_fd, pid_t *successor);
/* Monotonic usec at which takeover_process must run even when no fd is readable (a successor's
 * readiness deadline, reaping a spawned successor), or INT64_MAX when nothing is due. */
int64_t takeover_next_due_us(takeover *t);
/* The data-directory lock fd to hand to a successor (not owned; -1 = none). */
void takeover_set_lock(takeover *t, int lock_fd);
/* Start a successor: exe (the installed path, so an upgraded binary is what runs) with argv
 * (our own, minus any --takeover) plus "--takeover PATH". Signals unblocked, WATCHDOG_PID dropped
 * so its own sd_watchdog_enabled() works. */
int takeover_spawn(takeover *t, const char *exe, char *const *argv, pid_t *pid);
/* Stops listening and unlinks the path when still ours. NULL is fine; returns NULL. */
takeover *takeover_free(takeover *t);

/* The successor side ----------------------------------------------------------------------- */

/* Connect to the running vigild at path and receive its listeners and data-directory lock (-1 =
 * it had none). Caller owns the fds and *conn (the connection to keep until takeover_confirm). */
int takeover_connect(const char *path, int *conn, int *tcp_fd, int *unix_fd, int *lock_fd,
                     char *err, size_t errlen);
/* Tell the old vigild we are serving and wait (up to timeout_ms) for its "OK". Closes conn. */
int takeover_confirm(int conn, int timeout_ms);

#endif
