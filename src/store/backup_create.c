/* backup_create.c — writing a backup archive: an online copy of the running store (VACUUM INTO
 * through the writer), the keyring and config files, a MANIFEST of SHA-256 hashes, tar + zstd or
 * gzip through libarchive (dlopened, archive_dl.h), then optionally sealed with AES-256-GCM. It
 * never writes outside the backup dir and the temporary directory it creates there. */
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

#include "archive_dl.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "backup-internal.h"
#include "sysio.h"

static int add_file(const archive_dl *ar, struct archive *a, const char *src, const char *name,
                    char *err, size_t errlen)
{
        struct stat st;
        char buf[65536];
        ssize_t n;

        _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot read '%s': %s", src, strerror(-r));
                return r;
        }
        struct archive_entry *e = ar->entry_new();
        ar->entry_set_pathname(e, name);
        ar->entry_set_size(e, st.st_size);
        ar->entry_set_filetype(e, AE_IFREG);
        ar->entry_set_perm(e, 0600);
        ar->entry_set_mtime(e, st.st_mtime, 0);
        if (ar->write_header(a, e) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot add '%s' to the archive: %s", name,
                         ar->error_string(a));
                ar->entry_free(e);
                return -EIO;
        }
        ar->entry_free(e);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                if (ar->write_data(a, buf, (size_t)n) != n) {
                        snprintf(err, errlen, "cannot write '%s' to the archive: %s", name,
                                 ar->error_string(a));
                        return -EIO;
                }
        if (n < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot read '%s': %s", src, strerror(-r));
                return r;
        }
        return 0;
}

struct member {
        char src[PATH_MAX]; /* file on disk */
        char name[256];     /* name in the archive */
};

static int read_schema(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        int v = -1;

        (void)ctx;
        if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return v;
}

int backup_create(store *s, const backup_options *o, backup_result *res, char *err, size_t errlen)
{
        char work[PATH_MAX], tarpath[PATH_MAX], final[PATH_MAX], host[128], stamp[32], iso[32];
        struct member m[BACKUP_MAX_MEMBERS];
        size_t nm = 0;
        int64_t t0 = time_mono_us(), now = time_real_us();
        const archive_dl *ar = NULL;
        const char *ext;
        int r;

        if (!s || !o || !o->dir || !res)
                return -EINVAL;
        /* libarchive is loaded here, at the first backup, not at startup (archive_dl.h); a
         * missing library fails before any work is done. */
        r = archive_dl_get(&ar, err, errlen);
        if (r < 0)
                return r;
        ext = o->compression == BACKUP_GZIP ? "gz" : "zst";
        r = mkdir_p(o->dir, 0750, 0700);
        if (r < 0) {
                snprintf(err, errlen, "cannot create backup directory '%s': %s", o->dir,
                         strerror(-r));
                return r;
        }
        /* The pid in the name lets the next start remove what a killed backup left
         * (backup_clean_tmp) without touching the work of another running vigild. */
        if (snprintf(work, sizeof(work), "%s/.tmp-backup-%ld-XXXXXX", o->dir, (long)getpid()) >=
                (int)sizeof(work) ||
            !mkdtemp(work)) {
                r = -errno;
                snprintf(err, errlen, "cannot create a temporary directory in '%s': %s", o->dir,
                         strerror(errno));
                return r ? r : -ENAMETOOLONG;
        }

        /* 1. the database: a consistent snapshot while writers go on */
        snprintf(m[nm].src, sizeof(m[nm].src), "%s/" DB_NAME, work);
        snprintf(m[nm].name, sizeof(m[nm].name), DB_NAME);
        r = store_vacuum_into(s, m[nm].src);
        if (r < 0) {
                snprintf(err, errlen, "cannot copy the store '%s': %s", store_path(s),
                         strerror(-r));
                goto out;
        }
        nm++;
        /* 2. the keyring (sealed by the master key already) */
        if (o->data_dir) {
                snprintf(m[nm].src, sizeof(m[nm].src), "%s/" KEYRING_NAME, o->data_dir);
                snprintf(m[nm].name, sizeof(m[nm].name), KEYRING_NAME);
                if (access(m[nm].src, R_OK) == 0)
                        nm++;
        }
        /* 3. the configuration files */
        for (size_t i = 0; i < o->n_config_files && nm < BACKUP_MAX_MEMBERS - 1; i++) {
                const char *base = strrchr(o->config_files[i], '/');
                char safe[200];
                if (!o->config_files[i] || !o->config_files[i][0])
                        continue;
                backup_safe_name(base ? base + 1 : o->config_files[i], safe, sizeof(safe));
                snprintf(m[nm].src, sizeof(m[nm].src), "%s", o->config_files[i]);
                snprintf(m[nm].name, sizeof(m[nm].name), "config/%s", safe);
                nm++;
        }
        /* 4. the manifest */
        {
                char mpath[PATH_MAX];
                snprintf(mpath, sizeof(mpath), "%s/" MANIFEST_NAME, work);
                /* Built in memory (it is small: BACKUP_MAX_MANIFEST) and written through
                 * sysio like every other file of the backup. */
                char text[BACKUP_MAX_MANIFEST];
                size_t len = 0;
                backup_utc_stamp(now, iso, sizeof(iso), true);
                len = (size_t)snprintf(text, sizeof(text),
                                       "vigil-backup 1\nversion %s\nhost %s\ncreated %s\n"
                                       "schema %d\nencrypted %d\n",
                                       VIGIL_VERSION, o->hostname ? o->hostname : "", iso,
                                       store_read(s, read_schema, NULL), o->keyring ? 1 : 0);
                for (size_t i = 0; i < nm && len < sizeof(text); i++) {
                        char hex[65];
                        uint64_t size;
                        r = backup_sha256_file(m[i].src, hex, &size);
                        if (r < 0) {
                                snprintf(err, errlen, "cannot read '%s': %s", m[i].src,
                                         strerror(-r));
                                goto out;
                        }
                        len +=
                            (size_t)snprintf(text + len, sizeof(text) - len, "member %s %llu %s\n",
                                             hex, (unsigned long long)size, m[i].name);
                }
                if (len >= sizeof(text)) {
                        snprintf(err, errlen, "the manifest is longer than %zu bytes",
                                 sizeof(text));
                        r = -E2BIG;
                        goto out;
                }
                int mfd = sysio.open(mpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                r = mfd < 0 ? -errno : sysio_write_all(mfd, text, len);
                if (r == 0 && sysio.fsync(mfd) < 0)
                        r = -errno;
                if (mfd >= 0)
                        close(mfd);
                if (r < 0) {
                        snprintf(err, errlen, "cannot write '%s': %s", mpath, strerror(-r));
                        goto out;
                }
                /* MANIFEST goes first so a reader knows what to expect. */
                memmove(&m[1], &m[0], nm * sizeof(m[0]));
                snprintf(m[0].src, sizeof(m[0].src), "%s", mpath);
                snprintf(m[0].name, sizeof(m[0].name), MANIFEST_NAME);
                nm++;
        }
        /* 5. the archive */
        snprintf(tarpath, sizeof(tarpath), "%s/archive.tar.%s", work, ext);
        {
                struct archive *a = ar->write_new();
                ar->write_set_format_pax_restricted(a);
                if (o->compression == BACKUP_GZIP)
                        ar->write_add_filter_gzip(a);
                else
                        ar->write_add_filter_zstd(a);
                _cleanup_free_ backup_arfd *f = calloc(1, sizeof(*f));
                r = f ? backup_ar_write_open(ar, a, f, tarpath, err, errlen) : -ENOMEM;
                if (r < 0) {
                        if (r == -ENOMEM)
                                snprintf(err, errlen, "out of memory");
                        ar->write_free(a);
                        goto out;
                }
                for (size_t i = 0; i < nm && r == 0; i++)
                        r = add_file(ar, a, m[i].src, m[i].name, err, errlen);
                /* libarchive ignores what the close callback returns: a failed fsync there
                 * is only in f->err. */
                if ((ar->write_close(a) != ARCHIVE_OK || f->err) && r == 0) {
                        if (f->err)
                                snprintf(err, errlen, "cannot finish archive '%s': %s failed: %s",
                                         tarpath, f->op, strerror(-f->err));
                        else
                                snprintf(err, errlen, "cannot finish archive '%s': %s", tarpath,
                                         ar->error_string(a));
                        r = f->err ? f->err : -EIO;
                }
                ar->write_free(a);
                backup_arfd_close(f);
                if (r < 0)
                        goto out;
        }
        /* 6. encrypt, then move into place under its final name */
        {
                char src[PATH_MAX];
                backup_safe_name(o->hostname, host, sizeof(host));
                backup_utc_stamp(now, stamp, sizeof(stamp), false);
                snprintf(src, sizeof(src), "%s", tarpath);
                if (o->keyring) {
                        snprintf(src, sizeof(src), "%s/archive.enc", work);
                        r = crypto_seal_file(o->keyring, tarpath, src, err, errlen);
                        if (r < 0)
                                goto out;
                } else {
                        r = store_fsync_file(src);
                        if (r < 0) {
                                snprintf(err, errlen, "cannot fsync '%s': %s", src, strerror(-r));
                                goto out;
                        }
                }
                /* Several backups in one second get -2, -3, ...: always above any archive of
                 * that second still there, so that the name orders them (a pruned plain name
                 * must not be reused for a newer archive). */
                int first = 1;
                {
                        backup_entry *v = NULL;
                        size_t nv = 0;
                        char e2[256];
                        int64_t sec = now / USEC_PER_SEC * USEC_PER_SEC;
                        if (backup_list(o->dir, &v, &nv, e2, sizeof(e2)) == 0)
                                for (size_t i = 0; i < nv; i++)
                                        if (v[i].time_us == sec && (int)v[i].seq >= first)
                                                first = (int)v[i].seq + 1;
                        free(v);
                }
                for (int n = first; n < first + 1000; n++) {
                        char suffix[16] = "";
                        if (n > 1)
                                snprintf(suffix, sizeof(suffix), "-%d", n);
                        snprintf(final, sizeof(final), "%s/" BACKUP_PREFIX "%s-%s%s.tar.%s%s",
                                 o->dir, host, stamp, suffix, ext, o->keyring ? ".enc" : "");
                        /* link() never replaces an existing archive (rename would). */
                        if (sysio.link(src, final) == 0) {
                                r = 0;
                                break;
                        }
                        r = -errno;
                        if (r != -EEXIST)
                                break;
                }
                if (r < 0) {
                        snprintf(err, errlen, "cannot create '%s': %s", final, strerror(-r));
                        goto out;
                }
                r = store_fsync_dir_of(final);
                if (r < 0) {
                        /* not durable: an archive reported made must survive a power loss */
                        snprintf(err, errlen, "cannot make '%s' durable: %s", final, strerror(-r));
                        sysio.unlink(final);
                        goto out;
                }
                snprintf(res->path, sizeof(res->path), "%s", final);
                r = backup_sha256_file(final, res->sha256, &res->size);
                if (r < 0) {
                        snprintf(err, errlen, "cannot read '%s': %s", final, strerror(-r));
                        goto out;
                }
                res->duration_us = time_mono_us() - t0;
        }
out:
        backup_rm_rf(work);
        return r;
}
