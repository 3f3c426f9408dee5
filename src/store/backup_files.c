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

#include <openssl/evp.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "backup-internal.h"

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
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(c);
                return -EIO;
        }
        while ((n = read(fd, buf, sizeof(buf))) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                EVP_DigestUpdate(c, buf, (size_t)n);
                total += (uint64_t)n;
        }
        if (r == 0 && EVP_DigestFinal_ex(c, md, &mdlen) != 1)
                r = -EIO;
        EVP_MD_CTX_free(c);
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
