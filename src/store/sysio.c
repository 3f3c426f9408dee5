/* sysio.c — see sysio.h. */
#include "sysio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
        return open(path, flags, mode);
}

const sysio_table sysio_default = {
    .open = real_open,
    .write = write,
    .fsync = fsync,
    .rename = rename,
    .unlink = unlink,
    .link = link,
    .read = read,
    .pread = pread,
    .pwrite = pwrite,
    .ftruncate = ftruncate,
};

sysio_table sysio = {
    .open = real_open,
    .write = write,
    .fsync = fsync,
    .rename = rename,
    .unlink = unlink,
    .link = link,
    .read = read,
    .pread = pread,
    .pwrite = pwrite,
    .ftruncate = ftruncate,
};

static atomic_bool armed;

bool sysio_armed(void)
{
        return atomic_load(&armed);
}

/* ---- SQLite: its "unix" VFS's system calls, and a VFS whose files' xSync go through us ---- */

/* The descriptor of the last open() SQLite made in this thread through the table: the shim's
 * xOpen reads it right after the real xOpen to know its file's descriptor. */
static _Thread_local int last_open_fd = -1;

static int sq_open(const char *path, int flags, int mode)
{
        int fd = sysio.open(path, flags, (mode_t)mode);
        if (fd >= 0)
                last_open_fd = fd;
        return fd;
}
static ssize_t sq_read(int fd, void *buf, size_t len)
{
        return sysio.read(fd, buf, len);
}
static ssize_t sq_pread(int fd, void *buf, size_t len, off_t off)
{
        return sysio.pread(fd, buf, len, off);
}
static ssize_t sq_write(int fd, const void *buf, size_t len)
{
        return sysio.write(fd, buf, len);
}
static ssize_t sq_pwrite(int fd, const void *buf, size_t len, off_t off)
{
        return sysio.pwrite(fd, buf, len, off);
}
static int sq_ftruncate(int fd, off_t len)
{
        return sysio.ftruncate(fd, len);
}
static int sq_unlink(const char *path)
{
        return sysio.unlink(path);
}

/* pread64/pwrite64 take an off64_t, the same 64-bit type as off_t on the targets we build for. */
_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits for SQLite's pread64/pwrite64");

static const struct {
        const char *name;
        sqlite3_syscall_ptr fn;
} sq_calls[] = {
    {"open", (sqlite3_syscall_ptr)sq_open},       {"read", (sqlite3_syscall_ptr)sq_read},
    {"pread", (sqlite3_syscall_ptr)sq_pread},     {"pread64", (sqlite3_syscall_ptr)sq_pread},
    {"write", (sqlite3_syscall_ptr)sq_write},     {"pwrite", (sqlite3_syscall_ptr)sq_pwrite},
    {"pwrite64", (sqlite3_syscall_ptr)sq_pwrite}, {"ftruncate", (sqlite3_syscall_ptr)sq_ftruncate},
    {"unlink", (sqlite3_syscall_ptr)sq_unlink},
};

static sqlite3_vfs *unix_vfs; /* the real one */
static sqlite3_vfs shim_vfs;  /* its copy, xOpen wrapped; registered while armed */
static pthread_mutex_t shim_mu = PTHREAD_MUTEX_INITIALIZER;
/* The io methods the unix VFS gave its files (posix, nolock, dotlock, …) and their copies with
 * xSync wrapped. Never freed: files opened while armed may outlive the arming. */
static const sqlite3_io_methods *orig_methods[8];
static sqlite3_io_methods wrap_methods[8];
static unsigned nmethods;

/* A shim file is the unix file followed by its descriptor (-1 when SQLite reused one without
 * calling open: its syncs are then not routed). */
static int shim_fd(sqlite3_file *f)
{
        int fd;
        memcpy(&fd, (char *)f + unix_vfs->szOsFile, sizeof(fd));
        return fd;
}

static const sqlite3_io_methods *shim_orig(const sqlite3_io_methods *m)
{
        for (unsigned i = 0; i < nmethods; i++)
                if (m == &wrap_methods[i])
                        return orig_methods[i];
        return m;
}

static int shim_sync(sqlite3_file *f, int flags)
{
        const sqlite3_io_methods *o = shim_orig(f->pMethods);
        int fd = shim_fd(f);

        if (fd >= 0 && sysio_armed() && sysio.fsync(fd) < 0)
                return SQLITE_IOERR_FSYNC;
        return o->xSync(f, flags);
}

static const sqlite3_io_methods *shim_wrap(const sqlite3_io_methods *m)
{
        const sqlite3_io_methods *w = m;

        pthread_mutex_lock(&shim_mu);
        for (unsigned i = 0; i < nmethods; i++)
                if (orig_methods[i] == m)
                        w = &wrap_methods[i];
        if (w == m && nmethods < sizeof(orig_methods) / sizeof(orig_methods[0])) {
                orig_methods[nmethods] = m;
                wrap_methods[nmethods] = *m;
                wrap_methods[nmethods].xSync = shim_sync;
                w = &wrap_methods[nmethods++];
        }
        pthread_mutex_unlock(&shim_mu);
        return w;
}

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
        (void)vfs;
        last_open_fd = -1;
        int rc = unix_vfs->xOpen(unix_vfs, name, f, flags, out);
        int fd = last_open_fd;

        memcpy((char *)f + unix_vfs->szOsFile, &fd, sizeof(fd));
        if (f->pMethods)
                f->pMethods = shim_wrap(f->pMethods);
        return rc;
}

static void sqlite_arm(bool on)
{
        if (!unix_vfs) {
                if (sqlite3_initialize() != SQLITE_OK || !(unix_vfs = sqlite3_vfs_find("unix")))
                        return;
                shim_vfs = *unix_vfs;
                shim_vfs.zName = "vigil-sysio";
                shim_vfs.szOsFile = unix_vfs->szOsFile + (int)sizeof(int);
                shim_vfs.xOpen = shim_open;
                shim_vfs.pNext = NULL;
        }
        if (on) {
                for (size_t i = 0; i < sizeof(sq_calls) / sizeof(sq_calls[0]); i++)
                        (void)unix_vfs->xSetSystemCall(unix_vfs, sq_calls[i].name,
                                                       sq_calls[i].fn); /* NOTFOUND: not built */
                sqlite3_vfs_register(&shim_vfs, 1);
        } else {
                sqlite3_vfs_unregister(&shim_vfs);
                sqlite3_vfs_register(unix_vfs, 1);
                unix_vfs->xSetSystemCall(unix_vfs, NULL, NULL); /* every call back to its default */
        }
}

void sysio_set(const sysio_table *t)
{
        if (!t) {
                sysio = sysio_default;
                if (atomic_exchange(&armed, false))
                        sqlite_arm(false);
                return;
        }
        sysio = *t;
#define SYSIO_FILL(m)                                                                              \
        if (!sysio.m)                                                                              \
                sysio.m = sysio_default.m;
        SYSIO_FILL(open)
        SYSIO_FILL(write)
        SYSIO_FILL(fsync)
        SYSIO_FILL(rename)
        SYSIO_FILL(unlink)
        SYSIO_FILL(link)
        SYSIO_FILL(read)
        SYSIO_FILL(pread)
        SYSIO_FILL(pwrite)
        SYSIO_FILL(ftruncate)
#undef SYSIO_FILL
        if (!atomic_exchange(&armed, true))
                sqlite_arm(true);
}

int sysio_write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;

        while (len > 0) {
                ssize_t n = sysio.write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno ? -errno : -EIO;
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int sysio_fsync_path(const char *path, bool dir)
{
        int fd = sysio.open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC, 0);
        int r = 0;

        if (fd < 0)
                return -errno;
        if (sysio.fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

int sysio_fsync_dir_of(const char *path)
{
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');

        if (!slash)
                return sysio_fsync_path(".", true);
        if (snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path) >=
            (int)sizeof(dir))
                return -ENAMETOOLONG;
        return sysio_fsync_path(dir, true);
}
