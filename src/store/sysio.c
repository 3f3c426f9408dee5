/* sysio.c — see sysio.h. */
#include "sysio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
