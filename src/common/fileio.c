/* fileio.c — bounded whole-file reads and `mkdir -p` (fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macros.h"

int file_read_all(const char *path, size_t max, char **ret, size_t *retlen)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *b = NULL;
        struct stat st;
        size_t n = 0, cap;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
                return -EFBIG;
        /* Size the buffer from fstat for regular files, but read up to one byte past the cap in
         * any case: a file that grew (or a pipe, /proc file) must still be refused when too big. */
        cap = S_ISREG(st.st_mode) ? (size_t)st.st_size : MIN(max, (size_t)65536);
        b = malloc(cap + 2);
        if (!b)
                return -ENOMEM;
        for (;;) {
                ssize_t k;
                if (n == cap + 1) {
                        size_t ncap;
                        char *nb;
                        if (cap >= max)
                                return -EFBIG;
                        ncap = cap < max / 2 ? MAX(cap * 2, (size_t)4096) : max;
                        nb = realloc(b, ncap + 2);
                        if (!nb)
                                return -ENOMEM;
                        b = nb;
                        cap = ncap;
                }
                k = read(fd, b + n, cap + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        if (n > max)
                return -EFBIG;
        b[n] = '\0';
        *ret = TAKE_PTR(b);
        *retlen = n;
        return 0;
}

const char *file_read_strerror(int r, const char *what, const char *path, size_t max, char *buf,
                               size_t len)
{
        if (r == -EFBIG)
                snprintf(buf, len, "cannot read %s '%s': larger than %zu bytes", what, path, max);
        else
                snprintf(buf, len, "cannot read %s '%s': %s", what, path, strerror(-r));
        return buf;
}

int mkdir_p(const char *dir, mode_t parent_mode, mode_t mode)
{
        char tmp[PATH_MAX];
        struct stat st;

        if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(tmp, parent_mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(tmp, mode) < 0) {
                if (errno != EEXIST)
                        return -errno;
                if (stat(tmp, &st) == 0 && !S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        return 0;
}
