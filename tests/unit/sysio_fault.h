/* sysio_fault.h — fault injection through the store's system-call table (store/sysio.h) for the
 * unit tests: the call numbered fail_at (counted from the sysio_set) fails with EIO, every other
 * one runs for real. Counted: open, read, pread, write, pwrite, fsync, ftruncate, rename, unlink
 * and link of the store's own writers, libarchive's (through its callbacks) and SQLite's (its
 * unix VFS's system calls and xSync, while the table is set).
 *
 *   for (fail_at = 1;; fail_at++) { calls = 0; sysio_set(&faulty); …; sysio_set(NULL);
 *                                   if (calls < fail_at) break;   // nothing left to fail
 *                                   …check… }
 *
 * SYSIO_TRACE=N in the environment prints every call of the run that fails call N. */
#ifndef VIGIL_TESTS_SYSIO_FAULT_H
#define VIGIL_TESTS_SYSIO_FAULT_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sysio.h"

static unsigned calls, fail_at;
static const char *failed_op;      /* the call that was made to fail */
static char failed_path[PATH_MAX]; /* its path (open, unlink, rename: the first) */
static bool failed_dir;            /* an open of a directory */

static bool sysio_tracing(void)
{
        const char *t = getenv("SYSIO_TRACE");
        return t && fail_at == (unsigned)atoi(t);
}

static bool fault_at(const char *op, const char *path)
{
        struct stat st;

        if (sysio_tracing())
                fprintf(stderr, "sysio: call %u: %s %s\n", calls + 1, op, path ? path : "");
        if (++calls != fail_at)
                return false;
        failed_op = op;
        snprintf(failed_path, sizeof(failed_path), "%s", path ? path : "");
        failed_dir = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        errno = EIO;
        return true;
}

static int f_open(const char *p, int fl, mode_t m)
{
        return fault_at("open", p) ? -1 : sysio_default.open(p, fl, m);
}
static ssize_t f_write(int fd, const void *b, size_t n)
{
        return fault_at("write", NULL) ? -1 : sysio_default.write(fd, b, n);
}
static int f_fsync(int fd)
{
        return fault_at("fsync", NULL) ? -1 : sysio_default.fsync(fd);
}
static int f_rename(const char *a, const char *b)
{
        return fault_at("rename", a) ? -1 : sysio_default.rename(a, b);
}
static int f_unlink(const char *p)
{
        return fault_at("unlink", p) ? -1 : sysio_default.unlink(p);
}
static int f_link(const char *a, const char *b)
{
        return fault_at("link", a) ? -1 : sysio_default.link(a, b);
}
static ssize_t f_read(int fd, void *b, size_t n)
{
        return fault_at("read", NULL) ? -1 : sysio_default.read(fd, b, n);
}
static ssize_t f_pread(int fd, void *b, size_t n, off_t o)
{
        if (sysio_tracing()) {
                char l[64], t[PATH_MAX] = "";
                snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
                ssize_t k = readlink(l, t, sizeof(t) - 1);
                t[k > 0 ? k : 0] = '\0';
                fprintf(stderr, "sysio: pread %s at %lld, %zu bytes\n", t, (long long)o, n);
        }
        return fault_at("pread", NULL) ? -1 : sysio_default.pread(fd, b, n, o);
}
static ssize_t f_pwrite(int fd, const void *b, size_t n, off_t o)
{
        return fault_at("pwrite", NULL) ? -1 : sysio_default.pwrite(fd, b, n, o);
}
static int f_ftruncate(int fd, off_t n)
{
        return fault_at("ftruncate", NULL) ? -1 : sysio_default.ftruncate(fd, n);
}

static const sysio_table faulty = {
    .open = f_open,
    .write = f_write,
    .fsync = f_fsync,
    .rename = f_rename,
    .unlink = f_unlink,
    .link = f_link,
    .read = f_read,
    .pread = f_pread,
    .pwrite = f_pwrite,
    .ftruncate = f_ftruncate,
};

#endif
