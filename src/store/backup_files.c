/* backup_files.c — the small file helpers of the backup files: SHA-256 of a file, rm -rf, UTC
 * stamps and file-name-safe host names. Calls nothing of the other backup files. */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/ossl_dl.h"
#include "common/vtime.h"
#include "backup-internal.h"
#include "sysio.h"

int backup_sha256_file(const char *path, char hex[65], uint64_t *size)
{
        unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
        unsigned mdlen = 0;
        uint64_t total = 0;
        ssize_t n;
        int r = 0;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        const ossl_dl *o = ossl_dl_lib();
        if (!o)
                return -ELIBACC;
        EVP_MD_CTX *c = o->EVP_MD_CTX_new();
        if (!c || o->EVP_DigestInit_ex(c, o->EVP_sha256(), NULL) != 1) {
                o->EVP_MD_CTX_free(c);
                return -EIO;
        }
        while ((n = read(fd, buf, sizeof(buf))) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (o->EVP_DigestUpdate(c, buf, (size_t)n) != 1) {
                        r = -EIO;
                        break;
                }
                total += (uint64_t)n;
        }
        if (r == 0 && o->EVP_DigestFinal_ex(c, md, &mdlen) != 1)
                r = -EIO;
        o->EVP_MD_CTX_free(c);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < mdlen && i < 32; i++) {
                static const char digits[] = "0123456789abcdef";
                hex[2 * i] = digits[md[i] >> 4];
                hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[64] = 0;
        if (size)
                *size = total;
        return 0;
}

int backup_rm_rf(const char *path)
{
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISDIR(st.st_mode)) {
                DIR *d = opendir(path);
                struct dirent *e;
                if (!d)
                        return -errno;
                while ((e = readdir(d))) {
                        char sub[PATH_MAX];
                        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                                continue;
                        if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) < (int)sizeof(sub))
                                backup_rm_rf(sub);
                }
                closedir(d);
                return rmdir(path) < 0 ? -errno : 0;
        }
        return unlink(path) < 0 ? -errno : 0;
}

void backup_utc_stamp(int64_t us, char *buf, size_t len, bool iso)
{
        time_t t = (time_t)(us / USEC_PER_SEC);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y%m%dT%H%M%SZ", &tm);
}

void backup_safe_name(const char *in, char *out, size_t len)
{
        size_t j = 0;

        for (size_t i = 0; in && in[i] && j + 1 < len; i++) {
                char c = in[i];
                out[j++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'
                               ? c
                               : '_';
        }
        if (j == 0 && len > 1)
                out[j++] = 'x';
        out[j] = 0;
}

/* ---- libarchive on a sysio descriptor ---- */

static void ar_fail(backup_arfd *f, struct archive *a, const char *op, int r)
{
        f->err = r;
        f->op = op;
        f->ar->set_error(a, -r, "%s '%s': %s", op, f->path, strerror(-r));
}

static la_ssize_t ar_write_cb(struct archive *a, void *data, const void *buf, size_t len)
{
        backup_arfd *f = data;
        int r = sysio_write_all(f->fd, buf, len);

        if (r < 0) {
                ar_fail(f, a, "write", r);
                return -1;
        }
        return (la_ssize_t)len;
}

static la_ssize_t ar_read_cb(struct archive *a, void *data, const void **buf)
{
        backup_arfd *f = data;
        ssize_t n;

        do
                n = sysio.read(f->fd, f->buf, sizeof(f->buf));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                ar_fail(f, a, "read", errno ? -errno : -EIO);
                return -1;
        }
        *buf = f->buf;
        return n;
}

/* The writer's close: the archive is only complete once it is on disk. */
static int ar_close_cb(struct archive *a, void *data)
{
        backup_arfd *f = data;
        int r = 0;

        if (f->fd < 0)
                return ARCHIVE_OK;
        if (f->ar && sysio.fsync(f->fd) < 0) {
                r = -errno;
                ar_fail(f, a, "fsync", r);
        }
        if (close(f->fd) < 0 && r == 0 && errno != EINTR) {
                r = -errno;
                ar_fail(f, a, "close", r);
        }
        f->fd = -1;
        return r < 0 ? ARCHIVE_FATAL : ARCHIVE_OK;
}

static int ar_rclose_cb(struct archive *a, void *data)
{
        backup_arfd *f = data;
        (void)a;
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
        return ARCHIVE_OK;
}

static int ar_fd_open(backup_arfd *f, const archive_dl *ar, const char *path, int flags,
                      const char *what, char *err, size_t errlen)
{
        f->ar = ar;
        f->err = 0;
        f->op = NULL;
        snprintf(f->path, sizeof(f->path), "%s", path);
        f->fd = sysio.open(path, flags | O_CLOEXEC, 0600);
        if (f->fd < 0) {
                int r = errno ? -errno : -EIO;
                snprintf(err, errlen, "cannot %s archive '%s': open failed: %s", what, path,
                         strerror(-r));
                return r;
        }
        return 0;
}

int backup_ar_write_open(const archive_dl *ar, struct archive *a, backup_arfd *f, const char *path,
                         char *err, size_t errlen)
{
        int r = ar_fd_open(f, ar, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, "create", err,
                           errlen);
        if (r < 0)
                return r;
        /* A file, not a tape: no zero padding after the compressed stream (a zstd reader
         * takes it for a damaged frame), as archive_write_open_filename does for a file. */
        ar->write_set_bytes_in_last_block(a, 1);
        if (ar->write_open(a, f, NULL, ar_write_cb, ar_close_cb) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot create archive '%s': %s", path, ar->error_string(a));
                backup_arfd_close(f);
                return f->err ? f->err : -EIO;
        }
        return 0;
}

int backup_ar_read_open(const archive_dl *ar, struct archive *a, backup_arfd *f, const char *path,
                        char *err, size_t errlen)
{
        int r = ar_fd_open(f, ar, path, O_RDONLY, "read", err, errlen);
        if (r < 0)
                return r;
        if (ar->read_open(a, f, NULL, ar_read_cb, ar_rclose_cb) != ARCHIVE_OK)
                return -EBADMSG;
        return 0;
}

void backup_arfd_close(backup_arfd *f)
{
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
}
