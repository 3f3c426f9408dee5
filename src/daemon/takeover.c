/* takeover.c — hand the listening sockets to a successor vigild over a unix SOCK_SEQPACKET
 * control socket (SCM_RIGHTS), as nginx and HAProxy do for binary upgrades. Seqpacket keeps
 * every message whole, so the protocol is three short lines and no framing. Not the drain itself:
 * the API stops accepting and finishes its requests (api_drain). */
#include "takeover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/vtime.h"

extern char **environ;

#define MSG_MAX        128
#define SUCCESSOR_WAIT (120 * USEC_PER_SEC) /* a successor that is not serving by then is dropped */

struct takeover {
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* control socket path */
        int listen_fd;                                          /* control listener */
        int conn_fd;        /* the successor's connection, -1 when none */
        int64_t conn_since; /* usec, monotonic: when the successor connected */
        pid_t spawned;      /* pid we started on SIGUSR2, 0 when none */
        int lock_fd;        /* the data-directory lock sent along, -1 when none; not owned */
};

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        memcpy(sa->sun_path, path, strlen(path) + 1);
        return 0;
}

int takeover_listen(const char *path, takeover **ret)
{
        struct sockaddr_un sa;
        takeover *t;
        mode_t old;
        int r;

        r = fill_addr(path, &sa);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        snprintf(t->path, sizeof(t->path), "%s", path);
        t->conn_fd = -1;
        t->lock_fd = -1;
        t->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (t->listen_fd < 0) {
                r = -errno;
                free(t);
                return r;
        }
        unlink(path);
        old = umask(0077); /* only our own user may take our sockets */
        r = bind(t->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0 || listen(t->listen_fd, 4) < 0) {
                r = -errno;
                close(t->listen_fd);
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

size_t takeover_poll_fds(takeover *t, int *fds)
{
        size_t n = 0;

        if (!t)
                return 0;
        fds[n++] = t->listen_fd;
        if (t->conn_fd >= 0)
                fds[n++] = t->conn_fd;
        return n;
}

static void drop_successor(takeover *t, const char *why)
{
        log_warn("takeover", "successor %s: still serving, nothing was handed over", why);
        close(t->conn_fd);
        t->conn_fd = -1;
}

void takeover_set_lock(takeover *t, int lock_fd)
{
        if (t)
                t->lock_fd = lock_fd;
}

static int send_fds(int conn, int tcp_fd, int unix_fd, int lock_fd)
{
        char text[MSG_MAX];
        int fds[3], n = 0;
        union {
                char buf[CMSG_SPACE(sizeof(fds))];
                struct cmsghdr align;
        } u;
        struct iovec iov;
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

        if (tcp_fd >= 0)
                fds[n++] = tcp_fd;
        if (unix_fd >= 0)
                fds[n++] = unix_fd;
        if (lock_fd >= 0)
                fds[n++] = lock_fd;
        snprintf(text, sizeof(text), "VIGIL-TAKEOVER 1 tcp=%d unix=%d lock=%d", tcp_fd >= 0,
                 unix_fd >= 0, lock_fd >= 0);
        iov.iov_base = text;
        iov.iov_len = strlen(text);
        if (n > 0) {
                struct cmsghdr *c;
                memset(&u, 0, sizeof(u));
                m.msg_control = u.buf;
                m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
                c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
        }
        return sendmsg(conn, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static void accept_successor(takeover *t, int tcp_fd, int unix_fd)
{
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        int c, r;

        c = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0)
                return;
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid()) {
                log_warn("takeover", "refused a takeover from uid %d: not our user", (int)cred.uid);
                close(c);
                return;
        }
        if (t->conn_fd >= 0) {
                log_warn("takeover",
                         "refused a takeover from pid %d: pid %d is already taking over",
                         (int)cred.pid, (int)t->spawned);
                close(c);
                return;
        }
        r = send_fds(c, tcp_fd, unix_fd, t->lock_fd);
        if (r < 0) {
                log_warn("takeover", "failed to hand the listeners to pid %d: %s", (int)cred.pid,
                         strerror(-r));
                close(c);
                return;
        }
        t->conn_fd = c;
        t->conn_since = time_mono_us();
        log_info("takeover", "handed the listeners to pid %d; serving until it is ready",
                 (int)cred.pid);
}

int64_t takeover_next_due_us(takeover *t)
{
        if (!t)
                return INT64_MAX;
        if (t->conn_fd >= 0) /* the successor's deadline */
                return t->conn_since + SUCCESSOR_WAIT + 1;
        if (t->spawned > 0) /* reap it when it dies (no SIGCHLD here): only during an upgrade */
                return time_mono_us() + USEC_PER_SEC;
        return INT64_MAX;
}

int takeover_process(takeover *t, int tcp_fd, int unix_fd, pid_t *successor)
{
        char msg[MSG_MAX];
        ssize_t n;
        long pid;

        if (!t)
                return 0;
        /* reap a successor we spawned that died (only ours: other children have other owners) */
        if (t->spawned > 0 && waitpid(t->spawned, NULL, WNOHANG) == t->spawned)
                t->spawned = 0;
        accept_successor(t, tcp_fd, unix_fd);
        if (t->conn_fd < 0)
                return 0;
        n = recv(t->conn_fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (time_mono_us() - t->conn_since > SUCCESSOR_WAIT)
                        drop_successor(t, "was not ready in time");
                return 0;
        }
        if (n <= 0) {
                drop_successor(t, "exited or gave up before it was ready");
                return 0;
        }
        msg[n] = '\0';
        if (sscanf(msg, "READY %ld", &pid) != 1 || pid <= 0) {
                drop_successor(t, "sent a message we do not understand");
                return 0;
        }
        /* Release the path first, so that the successor can bind it when it reads "OK". */
        unlink(t->path);
        if (send(t->conn_fd, "OK", 2, MSG_NOSIGNAL) < 0)
                log_warn("takeover", "failed to confirm to pid %ld: %s", pid, strerror(errno));
        close(t->conn_fd);
        t->conn_fd = -1;
        t->path[0] = '\0';
        *successor = (pid_t)pid;
        return 1;
}

int takeover_spawn(takeover *t, const char *exe, char *const *argv, pid_t *pid)
{
        posix_spawnattr_t attr;
        sigset_t none;
        size_t argc = 0, envc = 0, k = 0;
        char **args, **env;
        int r;

        if (!t || !t->path[0])
                return -ENOTCONN;
        if (t->conn_fd >= 0)
                return -EBUSY;
        while (argv[argc])
                argc++;
        while (environ[envc])
                envc++;
        args = calloc(argc + 3, sizeof(*args));
        env = calloc(envc + 1, sizeof(*env));
        if (!args || !env) {
                free(args);
                free(env);
                return -ENOMEM;
        }
        args[k++] = (char *)exe;
        for (size_t i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--takeover") == 0) {
                        i++; /* and its argument */
                        continue;
                }
                if (strncmp(argv[i], "--takeover=", 11) == 0)
                        continue;
                args[k++] = argv[i];
        }
        args[k++] = (char *)"--takeover";
        args[k++] = t->path;
        args[k] = NULL;
        k = 0;
        for (size_t i = 0; i < envc; i++)
                if (strncmp(environ[i], "WATCHDOG_PID=", 13) != 0)
                        env[k++] = environ[i];
        env[k] = NULL;
        sigemptyset(&none);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
        r = posix_spawn(pid, exe, NULL, &attr, args, env);
        posix_spawnattr_destroy(&attr);
        free(args);
        free(env);
        if (r != 0)
                return -r;
        t->spawned = *pid;
        return 0;
}

takeover *takeover_free(takeover *t)
{
        if (!t)
                return NULL;
        if (t->conn_fd >= 0)
                close(t->conn_fd);
        close(t->listen_fd);
        if (t->path[0])
                unlink(t->path);
        free(t);
        return NULL;
}

int takeover_connect(const char *path, int *conn, int *tcp_fd, int *unix_fd, int *lock_fd,
                     char *err, size_t errlen)
{
        struct sockaddr_un sa;
        struct timeval tv = {.tv_sec = 10};
        char text[MSG_MAX];
        const char *lk;
        int fds[3] = {-1, -1, -1}, has_tcp = 0, has_unix = 0, has_lock = 0, c, r, n = 0;
        union {
                char buf[CMSG_SPACE(sizeof(fds))];
                struct cmsghdr align;
        } u;
        struct iovec iov = {.iov_base = text, .iov_len = sizeof(text) - 1};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = u.buf,
                           .msg_controllen = sizeof(u.buf)};
        ssize_t got;

        r = fill_addr(path, &sa);
        if (r < 0) {
                snprintf(err, errlen, "takeover socket path '%s' is too long", path);
                return r;
        }
        c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (c < 0)
                return -errno;
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot reach the running vigild at '%s': %s", path,
                         strerror(-r));
                close(c);
                return r;
        }
        memset(&u, 0, sizeof(u));
        got = recvmsg(c, &m, MSG_CMSG_CLOEXEC);
        if (got <= 0) {
                r = got < 0 ? -errno : -ECONNRESET;
                snprintf(err, errlen, "the running vigild at '%s' sent no listeners: %s", path,
                         strerror(-r));
                close(c);
                return r;
        }
        text[got] = '\0';
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
                if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                        continue;
                n = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                if (n > 3)
                        n = 3;
                memcpy(fds, CMSG_DATA(h), sizeof(int) * (size_t)n);
        }
        /* "lock=" is absent when the running vigild predates the data-directory lock */
        lk = strstr(text, " lock=");
        if (lk && sscanf(lk, " lock=%d", &has_lock) != 1)
                has_lock = -1;
        if (sscanf(text, "VIGIL-TAKEOVER 1 tcp=%d unix=%d", &has_tcp, &has_unix) != 2 ||
            has_lock < 0 || has_tcp + has_unix + has_lock != n || (m.msg_flags & MSG_CTRUNC)) {
                snprintf(err, errlen, "the running vigild at '%s' answered '%.64s' with %d fds",
                         path, text, n);
                for (int i = 0; i < n; i++)
                        close(fds[i]);
                close(c);
                return -EPROTO;
        }
        *tcp_fd = has_tcp ? fds[0] : -1;
        *unix_fd = has_unix ? fds[has_tcp] : -1;
        *lock_fd = has_lock ? fds[has_tcp + has_unix] : -1;
        *conn = c;
        return 0;
}

int takeover_confirm(int conn, int timeout_ms)
{
        char msg[MSG_MAX], text[32];
        struct pollfd p = {.fd = conn, .events = POLLIN};
        ssize_t n;
        int r = 0;

        snprintf(text, sizeof(text), "READY %d", (int)getpid());
        if (send(conn, text, strlen(text), MSG_NOSIGNAL) < 0) {
                r = -errno;
        } else if (poll(&p, 1, timeout_ms) <= 0) {
                r = -ETIMEDOUT;
        } else {
                n = recv(conn, msg, sizeof(msg) - 1, 0);
                r = n == 2 && memcmp(msg, "OK", 2) == 0 ? 0 : -ECONNRESET;
        }
        close(conn);
        return r;
}
