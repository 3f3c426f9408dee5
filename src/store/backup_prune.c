/* backup_prune.c — the archives of a backup dir: list them newest first (the stamp is in the
 * name) and prune beyond a count and an age. */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "backup-internal.h"

static int64_t stamp_from_name(const char *name, unsigned *seq)
{
        *seq = 1;
        /* ...-YYYYmmddTHHMMSSZ[-N].tar... */
        const char *tar = strstr(name, ".tar.");
        for (const char *p = name; tar && p + 16 <= tar; p++) {
                struct tm tm = {0};
                const char *end = strptime(p, "%Y%m%dT%H%M%SZ", &tm);
                if (end && end - p == 16 && (end == tar || *end == '-')) {
                        if (*end == '-')
                                *seq = (unsigned)strtoul(end + 1, NULL, 10);
                        return (int64_t)timegm(&tm) * USEC_PER_SEC;
                }
        }
        return -1;
}

static int cmp_entry(const void *a, const void *b)
{
        const backup_entry *x = a, *y = b;
        if (x->time_us != y->time_us)
                return x->time_us < y->time_us ? 1 : -1;
        if (x->seq != y->seq)
                return x->seq < y->seq ? 1 : -1; /* "-2" was made after the plain name */
        return strcmp(x->path, y->path);
}

int backup_list(const char *dir, backup_entry **ret, size_t *n, char *err, size_t errlen)
{
        size_t cap = 16, cnt = 0;
        backup_entry *v = malloc(cap * sizeof(*v));
        struct dirent *e;

        if (!v)
                return -ENOMEM;
        DIR *d = opendir(dir);
        if (!d) {
                int r = -errno;
                if (r == -ENOENT) {
                        *ret = v;
                        *n = 0;
                        return 0;
                }
                free(v);
                snprintf(err, errlen, "cannot list backup directory '%s': %s", dir, strerror(-r));
                return r;
        }
        while ((e = readdir(d)) && cnt < BACKUP_MAX_LIST) {
                struct stat st;
                if (strncmp(e->d_name, BACKUP_PREFIX, strlen(BACKUP_PREFIX)) != 0 ||
                    !strstr(e->d_name, ".tar."))
                        continue;
                if (cnt == cap) {
                        backup_entry *nv = realloc(v, 2 * cap * sizeof(*v));
                        if (!nv)
                                break;
                        v = nv;
                        cap *= 2;
                }
                snprintf(v[cnt].path, sizeof(v[cnt].path), "%s/%s", dir, e->d_name);
                if (stat(v[cnt].path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                v[cnt].size = (uint64_t)st.st_size;
                v[cnt].time_us = stamp_from_name(e->d_name, &v[cnt].seq);
                if (v[cnt].time_us < 0)
                        v[cnt].time_us = (int64_t)st.st_mtime * USEC_PER_SEC;
                size_t l = strlen(e->d_name);
                v[cnt].encrypted = l > 4 && !strcmp(e->d_name + l - 4, ".enc");
                cnt++;
        }
        closedir(d);
        qsort(v, cnt, sizeof(*v), cmp_entry);
        *ret = v;
        *n = cnt;
        return 0;
}

int backup_prune(const char *dir, unsigned keep_count, int64_t max_age_us, unsigned *removed,
                 char *err, size_t errlen)
{
        backup_entry *v = NULL;
        size_t n = 0;
        unsigned gone = 0;
        int64_t now = time_real_us();
        int r = backup_list(dir, &v, &n, err, errlen);

        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                bool too_many = keep_count && i >= keep_count;
                bool too_old = i > 0 && max_age_us > 0 && now - v[i].time_us > max_age_us;
                if (!too_many && !too_old)
                        continue;
                if (unlink(v[i].path) == 0) {
                        gone++;
                        log_info("backup", "removed old backup '%s'", v[i].path);
                } else {
                        r = -errno;
                        snprintf(err, errlen, "cannot remove '%s': %s", v[i].path, strerror(-r));
                }
        }
        if (gone)
                (void)store_fsync_dir_of(v[0].path);
        free(v);
        if (removed)
                *removed = gone;
        return r;
}

int backup_clean_tmp(const char *dir)
{
        static const char prefix[] = ".tmp-backup-";
        struct dirent *e;
        int removed = 0;
        DIR *d = opendir(dir);

        if (!d)
                return 0;
        while ((e = readdir(d))) {
                char path[PATH_MAX], *end = NULL;
                if (strncmp(e->d_name, prefix, sizeof(prefix) - 1) != 0)
                        continue;
                /* ".tmp-backup-PID-XXXXXX"; an older "-XXXXXX" without a pid is stale too */
                long pid = strtol(e->d_name + sizeof(prefix) - 1, &end, 10);
                if (end && *end == '-' && pid > 0 && pid != (long)getpid() &&
                    (kill((pid_t)pid, 0) == 0 || errno == EPERM))
                        continue;
                if (pid == (long)getpid() && end && *end == '-')
                        continue;
                if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
                        continue;
                if (backup_rm_rf(path) == 0)
                        removed++;
        }
        closedir(d);
        return removed;
}
