/* sysio.c — see sysio.h. */
#include "sysio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
};

sysio_table sysio = {
    .open = real_open,
    .write = write,
    .fsync = fsync,
    .rename = rename,
    .unlink = unlink,
    .link = link,
};

void sysio_set(const sysio_table *t)
{
        sysio = t ? *t : sysio_default;
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
