/* backup.c — backup archives (libarchive tar + zstd/gzip, optionally AES-256-GCM), verify,
 * list/prune and the offline restore with its roll back. See backup.h for the formats and
 * docs/backup.md for the user's view. It never writes outside the backup dir, the data dir and
 * temporary directories it creates under them. */
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

#include "archive_dl.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

#define MANIFEST_NAME "MANIFEST"
#define DB_NAME       "vigil.db"
#define KEYRING_NAME  "keyring"

/* ---- small file helpers ---- */

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

static int rm_rf(const char *path)
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
                                rm_rf(sub);
                }
                closedir(d);
                return rmdir(path) < 0 ? -errno : 0;
        }
        return unlink(path) < 0 ? -errno : 0;
}

static void utc_stamp(int64_t us, char *buf, size_t len, bool iso)
{
        time_t t = (time_t)(us / USEC_PER_SEC);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y%m%dT%H%M%SZ", &tm);
}

/* Hostnames go into file names: keep [A-Za-z0-9._-]. */
static void safe_name(const char *in, char *out, size_t len)
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

/* ---- create ---- */

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
        if (snprintf(work, sizeof(work), "%s/.tmp-backup-XXXXXX", o->dir) >= (int)sizeof(work) ||
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
                safe_name(base ? base + 1 : o->config_files[i], safe, sizeof(safe));
                snprintf(m[nm].src, sizeof(m[nm].src), "%s", o->config_files[i]);
                snprintf(m[nm].name, sizeof(m[nm].name), "config/%s", safe);
                nm++;
        }
        /* 4. the manifest */
        {
                char mpath[PATH_MAX];
                snprintf(mpath, sizeof(mpath), "%s/" MANIFEST_NAME, work);
                FILE *f = fopen(mpath, "w");
                if (!f) {
                        r = -errno;
                        snprintf(err, errlen, "cannot write '%s': %s", mpath, strerror(-r));
                        goto out;
                }
                utc_stamp(now, iso, sizeof(iso), true);
                fprintf(f,
                        "vigil-backup 1\nversion %s\nhost %s\ncreated %s\nschema %d\n"
                        "encrypted %d\n",
                        VIGIL_VERSION, o->hostname ? o->hostname : "", iso,
                        store_read(s, read_schema, NULL), o->keyring ? 1 : 0);
                for (size_t i = 0; i < nm; i++) {
                        char hex[65];
                        uint64_t size;
                        r = backup_sha256_file(m[i].src, hex, &size);
                        if (r < 0) {
                                snprintf(err, errlen, "cannot read '%s': %s", m[i].src,
                                         strerror(-r));
                                fclose(f);
                                goto out;
                        }
                        fprintf(f, "member %s %llu %s\n", hex, (unsigned long long)size, m[i].name);
                }
                if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
                        r = -errno;
                        fclose(f);
                        snprintf(err, errlen, "cannot write '%s': %s", mpath, strerror(-r));
                        goto out;
                }
                fclose(f);
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
                if (ar->write_open_filename(a, tarpath) != ARCHIVE_OK) {
                        snprintf(err, errlen, "cannot create archive '%s': %s", tarpath,
                                 ar->error_string(a));
                        ar->write_free(a);
                        r = -EIO;
                        goto out;
                }
                for (size_t i = 0; i < nm && r == 0; i++)
                        r = add_file(ar, a, m[i].src, m[i].name, err, errlen);
                if (ar->write_close(a) != ARCHIVE_OK && r == 0) {
                        snprintf(err, errlen, "cannot finish archive '%s': %s", tarpath,
                                 ar->error_string(a));
                        r = -EIO;
                }
                ar->write_free(a);
                if (r < 0)
                        goto out;
        }
        /* 6. encrypt, then move into place under its final name */
        {
                char src[PATH_MAX];
                safe_name(o->hostname, host, sizeof(host));
                utc_stamp(now, stamp, sizeof(stamp), false);
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
                        if (link(src, final) == 0) {
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
                (void)store_fsync_dir_of(final);
                snprintf(res->path, sizeof(res->path), "%s", final);
                r = backup_sha256_file(final, res->sha256, &res->size);
                if (r < 0) {
                        snprintf(err, errlen, "cannot read '%s': %s", final, strerror(-r));
                        goto out;
                }
                res->duration_us = time_mono_us() - t0;
        }
out:
        rm_rf(work);
        return r;
}

/* ---- verify / extract ---- */

struct manifest_member {
        char name[256];  /* in the archive */
        char sha256[65]; /* expected */
        uint64_t size;   /* expected bytes */
        bool seen;       /* found in the archive with that hash */
};

/* Members we accept: a fixed set, and config/<plain name>. Never a path with '/' elsewhere, '..',
 * or an absolute path: the archive may be hostile. */
static bool member_allowed(const char *name)
{
        if (!strcmp(name, MANIFEST_NAME) || !strcmp(name, DB_NAME) || !strcmp(name, KEYRING_NAME))
                return true;
        if (strncmp(name, "config/", 7) != 0)
                return false;
        const char *base = name + 7;
        if (!*base || strchr(base, '/') || !strcmp(base, ".") || !strcmp(base, ".."))
                return false;
        for (const char *p = base; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
                        return false;
        return true;
}

static int parse_manifest(const char *path, backup_info *info, struct manifest_member *mm,
                          size_t *nmm, char *err, size_t errlen)
{
        char line[1024];
        size_t n = 0;
        bool header = false;

        _cleanup_fclose_ FILE *f = fopen(path, "r");
        if (!f) {
                snprintf(err, errlen, "cannot read the manifest: %s", strerror(errno));
                return -errno;
        }
        while (fgets(line, sizeof(line), f)) {
                char hex[80], name[300];
                unsigned long long size;
                line[strcspn(line, "\n")] = 0;
                if (!strcmp(line, "vigil-backup 1")) {
                        header = true;
                } else if (!strncmp(line, "version ", 8)) {
                        snprintf(info->version, sizeof(info->version), "%s", line + 8);
                } else if (!strncmp(line, "host ", 5)) {
                        snprintf(info->host, sizeof(info->host), "%s", line + 5);
                } else if (!strncmp(line, "created ", 8)) {
                        snprintf(info->created, sizeof(info->created), "%s", line + 8);
                } else if (!strncmp(line, "schema ", 7)) {
                        info->schema = atoi(line + 7);
                } else if (!strncmp(line, "encrypted ", 10)) {
                        /* informative; the file itself says whether it is */
                } else if (sscanf(line, "member %79s %llu %299s", hex, &size, name) == 3) {
                        if (n >= BACKUP_MAX_MEMBERS || strlen(hex) != 64 || !member_allowed(name)) {
                                snprintf(err, errlen, "manifest: bad member line '%.100s'", line);
                                return -EBADMSG;
                        }
                        snprintf(mm[n].name, sizeof(mm[n].name), "%s", name);
                        snprintf(mm[n].sha256, sizeof(mm[n].sha256), "%s", hex);
                        mm[n].size = size;
                        mm[n].seen = false;
                        n++;
                } else if (line[0]) {
                        snprintf(err, errlen, "manifest: unknown line '%.100s'", line);
                        return -EBADMSG;
                }
        }
        if (!header) {
                snprintf(err, errlen, "manifest: not a vigil backup manifest");
                return -EBADMSG;
        }
        *nmm = n;
        return 0;
}

/* Unpack a plaintext tar.{zst,gz} into dest, checking names and hashes. */
static int unpack(const char *tarpath, const char *shown, const char *dest, backup_info *info,
                  char *err, size_t errlen)
{
        struct manifest_member mm[BACKUP_MAX_MEMBERS];
        size_t nmm = 0;
        struct archive_entry *e;
        bool have_manifest = false;
        char names[BACKUP_MAX_MEMBERS][256];
        size_t nnames = 0;
        const archive_dl *ar = NULL;
        int r, st;

        r = archive_dl_get(&ar, err, errlen);
        if (r < 0)
                return r;
        struct archive *a = ar->read_new();
        ar->read_support_filter_zstd(a);
        ar->read_support_filter_gzip(a);
        ar->read_support_format_tar(a);
        if (ar->read_open_filename(a, tarpath, 65536) != ARCHIVE_OK) {
                snprintf(err, errlen,
                         "archive '%s' is truncated or damaged, or not a vigil backup: %s", shown,
                         ar->error_string(a));
                ar->read_free(a);
                return -EBADMSG;
        }
        while ((st = ar->read_next_header(a, &e)) == ARCHIVE_OK) {
                const char *name = ar->entry_pathname(e);
                char out[PATH_MAX];
                if (!name || !member_allowed(name) || ar->entry_filetype(e) != AE_IFREG ||
                    ar->entry_size(e) < 0 || (uint64_t)ar->entry_size(e) > BACKUP_MAX_MEMBER) {
                        snprintf(err, errlen, "archive '%s': unexpected member '%.100s'", shown,
                                 name ? name : "?");
                        r = -EBADMSG;
                        break;
                }
                for (size_t i = 0; i < nnames; i++)
                        if (!strcmp(names[i], name)) {
                                snprintf(err, errlen, "archive '%s': member '%s' appears twice",
                                         shown, name);
                                r = -EBADMSG;
                        }
                if (r < 0 || nnames >= BACKUP_MAX_MEMBERS) {
                        r = -EBADMSG;
                        break;
                }
                snprintf(names[nnames++], 256, "%s", name);
                if (!strncmp(name, "config/", 7)) {
                        snprintf(out, sizeof(out), "%s/config", dest);
                        mkdir(out, 0700);
                }
                snprintf(out, sizeof(out), "%s/%s", dest, name);
                int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0) {
                        r = -errno;
                        snprintf(err, errlen, "cannot create '%s': %s", out, strerror(-r));
                        break;
                }
                ssize_t n;
                char buf[65536];
                while ((n = ar->read_data(a, buf, sizeof(buf))) > 0)
                        if (write(fd, buf, (size_t)n) != n) {
                                r = -errno ? -errno : -EIO;
                                break;
                        }
                if (n < 0) {
                        snprintf(err, errlen, "archive '%s' is truncated or damaged: %s", shown,
                                 ar->error_string(a));
                        r = -EBADMSG;
                }
                if (r == 0 && fsync(fd) < 0)
                        r = -errno;
                close(fd);
                if (r < 0) {
                        if (!err[0])
                                snprintf(err, errlen, "cannot write '%s': %s", out, strerror(-r));
                        break;
                }
                if (!strcmp(name, MANIFEST_NAME)) {
                        r = parse_manifest(out, info, mm, &nmm, err, errlen);
                        if (r < 0)
                                break;
                        have_manifest = true;
                }
        }
        if (r == 0 && st != ARCHIVE_EOF) {
                snprintf(err, errlen, "archive '%s' is truncated or damaged: %s", shown,
                         ar->error_string(a));
                r = -EBADMSG;
        }
        ar->read_free(a);
        if (r < 0)
                return r;
        if (!have_manifest) {
                snprintf(err, errlen, "archive '%s' has no MANIFEST: not a vigil backup", shown);
                return -EBADMSG;
        }
        /* Every member against the manifest, and nothing more or less. */
        for (size_t i = 0; i < nnames; i++) {
                char out[PATH_MAX], hex[65];
                uint64_t size;
                bool listed = false;
                if (!strcmp(names[i], MANIFEST_NAME))
                        continue;
                snprintf(out, sizeof(out), "%s/%s", dest, names[i]);
                r = backup_sha256_file(out, hex, &size);
                if (r < 0) {
                        snprintf(err, errlen, "cannot read '%s': %s", out, strerror(-r));
                        return r;
                }
                for (size_t j = 0; j < nmm; j++)
                        if (!strcmp(mm[j].name, names[i])) {
                                listed = true;
                                if (strcmp(mm[j].sha256, hex) != 0 || mm[j].size != size) {
                                        snprintf(err, errlen,
                                                 "archive '%s': member '%s' does not match the "
                                                 "manifest (sha256 %.16s…, expected %.16s…)",
                                                 shown, names[i], hex, mm[j].sha256);
                                        return -EBADMSG;
                                }
                                mm[j].seen = true;
                                if (!strcmp(names[i], DB_NAME))
                                        info->db_size = size;
                        }
                if (!listed) {
                        snprintf(err, errlen, "archive '%s': member '%s' is not in the manifest",
                                 shown, names[i]);
                        return -EBADMSG;
                }
        }
        for (size_t j = 0; j < nmm; j++)
                if (!mm[j].seen) {
                        snprintf(err, errlen, "archive '%s': member '%s' is missing", shown,
                                 mm[j].name);
                        return -EBADMSG;
                }
        info->members = (unsigned)nmm;
        char db[PATH_MAX];
        snprintf(db, sizeof(db), "%s/" DB_NAME, dest);
        if (access(db, F_OK) != 0) {
                snprintf(err, errlen, "archive '%s' has no database", shown);
                return -EBADMSG;
        }
        char why[512];
        r = store_check_file(db, true, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "archive '%s': the database fails integrity_check: %s", shown,
                         why);
                return -EBADMSG;
        }
        return 0;
}

static bool file_is_encrypted(const char *path)
{
        char magic[CRYPTO_MAGIC_LEN];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        return fd >= 0 && read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
               !memcmp(magic, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN);
}

int backup_extract(const char *archive, crypto_keyring *keyring, const char *dest,
                   backup_info *info, char *err, size_t errlen)
{
        backup_info local = {0};
        char plain[PATH_MAX];
        int r;

        err[0] = 0;
        if (access(archive, R_OK) != 0) {
                r = -errno;
                snprintf(err, errlen, "cannot read archive '%s': %s", archive, strerror(-r));
                return r;
        }
        if (file_is_encrypted(archive)) {
                local.encrypted = true;
                if (!keyring) {
                        snprintf(err, errlen,
                                 "archive '%s' is encrypted: no encryption key (set "
                                 "VIGIL_ENCRYPTION_KEY or --key-file)",
                                 archive);
                        return -ENOKEY;
                }
                snprintf(plain, sizeof(plain), "%s/.archive.tar", dest);
                r = crypto_open_file(keyring, archive, plain, err, errlen);
                if (r < 0)
                        return r;
                r = unpack(plain, archive, dest, &local, err, errlen);
                unlink(plain);
        } else {
                r = unpack(archive, archive, dest, &local, err, errlen);
        }
        if (r == 0 && info)
                *info = local;
        return r;
}

int backup_verify(const char *archive, crypto_keyring *keyring, backup_info *info, char *err,
                  size_t errlen)
{
        char tmp[PATH_MAX];
        const char *base = getenv("TMPDIR");

        snprintf(tmp, sizeof(tmp), "%s/vigil-verify-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp)) {
                int r = -errno;
                snprintf(err, errlen, "cannot create a temporary directory: %s", strerror(-r));
                return r;
        }
        int r = backup_extract(archive, keyring, tmp, info, err, errlen);
        rm_rf(tmp);
        return r;
}

/* ---- list / prune ---- */

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

/* ---- restore ---- */

struct event_arg {
        const char *kind, *detail;
};

static int insert_event(sqlite3 *db, void *ctx)
{
        struct event_arg *a = ctx;
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(
            db, "INSERT INTO store_events (ts, kind, detail) VALUES (?1, ?2, ?3)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, time_real_us());
                sqlite3_bind_text(st, 2, a->kind, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, a->detail, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int store_event(store *s, const char *kind, const char *detail)
{
        struct event_arg a = {kind, detail};
        return store_write(s, insert_event, &a);
}

/* Fold a stopped database's WAL into it, so that moving the file moves all of its state. */
static void checkpoint_offline(const char *db)
{
        sqlite3 *h = NULL;

        if (access(db, F_OK) != 0)
                return;
        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
                sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(h);
}

static int take_lock(const char *data_dir, int *fd, char *err, size_t errlen)
{
        char lock[PATH_MAX];

        snprintf(lock, sizeof(lock), "%s/" DB_NAME ".lock", data_dir);
        *fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (*fd < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot open '%s': %s", lock, strerror(-r));
                return r;
        }
        if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
                snprintf(err, errlen,
                         "vigild is running on '%s' (it holds '%s'): stop it first (systemctl "
                         "stop vigild), or restore into the --data-dir of a stopped instance",
                         data_dir, lock);
                close(*fd);
                *fd = -1;
                return -EBUSY;
        }
        return 0;
}

/* Move the live state (db, wal, keyring) of data_dir into keep (a new directory). Hard links
 * keep the live names in place until the swap, so a crash between steps loses nothing. */
static int keep_state(const char *data_dir, const char *keep, char *err, size_t errlen)
{
        static const char *const names[] = {DB_NAME, DB_NAME "-wal", KEYRING_NAME};
        char from[PATH_MAX], to[PATH_MAX];
        int r;

        if (mkdir(keep, 0700) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot create '%s': %s", keep, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                snprintf(from, sizeof(from), "%s/%s", data_dir, names[i]);
                snprintf(to, sizeof(to), "%s/%s", keep, names[i]);
                if (link(from, to) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(err, errlen, "cannot keep '%s' in '%s': %s", from, keep,
                                 strerror(-r));
                        return r;
                }
        }
        (void)store_fsync_dir_of(to);
        return 0;
}

/* Put the files of src (db and keyring; a missing one is removed from live) into data_dir by
 * rename, which atomically replaces each file. The live WAL/SHM belong to the old file. */
static int swap_in(const char *src, const char *data_dir, bool with_wal, char *err, size_t errlen)
{
        char from[PATH_MAX], to[PATH_MAX];
        int r;

        snprintf(to, sizeof(to), "%s/" DB_NAME "-wal", data_dir);
        if (unlink(to) < 0 && errno != ENOENT)
                return -errno;
        snprintf(to, sizeof(to), "%s/" DB_NAME "-shm", data_dir);
        if (unlink(to) < 0 && errno != ENOENT)
                return -errno;
        if (with_wal) {
                snprintf(from, sizeof(from), "%s/" DB_NAME "-wal", src);
                snprintf(to, sizeof(to), "%s/" DB_NAME "-wal", data_dir);
                if (link(from, to) < 0 && errno != ENOENT)
                        return -errno;
        }
        snprintf(from, sizeof(from), "%s/" KEYRING_NAME, src);
        snprintf(to, sizeof(to), "%s/" KEYRING_NAME, data_dir);
        if (access(from, F_OK) == 0) {
                char tmp[PATH_MAX];
                snprintf(tmp, sizeof(tmp), "%s.swap", to);
                unlink(tmp);
                if (link(from, tmp) < 0 || rename(tmp, to) < 0) {
                        r = -errno;
                        snprintf(err, errlen, "cannot put '%s' in place: %s", to, strerror(-r));
                        return r;
                }
        }
        snprintf(from, sizeof(from), "%s/" DB_NAME, src);
        snprintf(to, sizeof(to), "%s/" DB_NAME, data_dir);
        {
                char tmp[PATH_MAX];
                snprintf(tmp, sizeof(tmp), "%s.swap", to);
                unlink(tmp);
                if (link(from, tmp) < 0 || rename(tmp, to) < 0) {
                        r = -errno;
                        snprintf(err, errlen, "cannot put '%s' in place: %s", to, strerror(-r));
                        return r;
                }
        }
        return store_fsync_dir_of(to);
}

int backup_restore(const restore_options *o, restore_result *res, char *err, size_t errlen)
{
        char stage[PATH_MAX], db[PATH_MAX], stamp[32], detail[PATH_MAX + 256], why[1024];
        int lock_fd = -1, r;

        memset(res, 0, sizeof(*res));
        r = mkdir_p(o->data_dir, 0750, 0750);
        if (r < 0) {
                snprintf(err, errlen, "cannot create '%s': %s", o->data_dir, strerror(-r));
                return r;
        }
        r = take_lock(o->data_dir, &lock_fd, err, errlen);
        if (r < 0)
                return r;
        utc_stamp(time_real_us(), stamp, sizeof(stamp), false);
        /* 1. verify, unpacked next to the data (same filesystem: renames are atomic) */
        snprintf(stage, sizeof(stage), "%s/.restore-%s-XXXXXX", o->data_dir, stamp);
        if (!mkdtemp(stage)) {
                r = -errno;
                snprintf(err, errlen, "cannot create a directory in '%s': %s", o->data_dir,
                         strerror(-r));
                goto out;
        }
        r = backup_extract(o->archive, o->keyring, stage, &res->info, err, errlen);
        if (r < 0)
                goto out;
        /* 2. keep the current state */
        snprintf(db, sizeof(db), "%s/" DB_NAME, o->data_dir);
        checkpoint_offline(db);
        snprintf(res->previous, sizeof(res->previous), "%s/pre-restore-%s", o->data_dir, stamp);
        for (int n = 2; access(res->previous, F_OK) == 0 && n < 100; n++)
                snprintf(res->previous, sizeof(res->previous), "%s/pre-restore-%s-%d", o->data_dir,
                         stamp, n);
        r = keep_state(o->data_dir, res->previous, err, errlen);
        if (r < 0)
                goto out;
        /* 3. swap */
        r = swap_in(stage, o->data_dir, false, err, errlen);
        if (r < 0)
                goto rollback;
        /* 4. open with the store (migrations, quick_check), record the restore, check */
        {
                store *s = NULL;
                store_options so = {.path = db, .integrity_check = true};
                store_open_info oi;
                /* store_open takes the same lock: hand it over. */
                close(lock_fd);
                lock_fd = -1;
                r = store_open(&so, &s, &oi, why, sizeof(why));
                if (r == 0 && oi.moved_corrupt) {
                        snprintf(why, sizeof(why), "the restored database is corrupt");
                        r = -EBADMSG;
                }
                if (r == 0) {
                        char hex[65] = "";
                        backup_sha256_file(o->archive, hex, NULL);
                        snprintf(detail, sizeof(detail),
                                 "restored from '%s' (sha256 %s, host %s, created %s); previous "
                                 "state in '%s'",
                                 o->archive, hex, res->info.host, res->info.created, res->previous);
                        r = store_event(s, "restore", detail);
                        if (r < 0)
                                snprintf(why, sizeof(why), "cannot record the restore: %s",
                                         strerror(-r));
                }
                s = store_close(s);
                if (r == 0 && o->check)
                        r = store_check_file(db, true, why, sizeof(why));
                int lr = take_lock(o->data_dir, &lock_fd, err, errlen);
                if (r == 0 && lr < 0) {
                        r = lr;
                        goto out;
                }
                if (r < 0) {
                        snprintf(err, errlen,
                                 "the restored database failed its check (%s): "
                                 "rolled back to the previous state",
                                 why);
                        goto rollback;
                }
        }
        goto out;
rollback : {
        char e2[512];
        /* The previous state as kept: db, its WAL and keyring (a missing db stays missing). */
        snprintf(db, sizeof(db), "%s/" DB_NAME, res->previous);
        if (access(db, F_OK) == 0 && swap_in(res->previous, o->data_dir, true, e2, sizeof(e2)) == 0)
                res->rolled_back = true;
        else if (access(db, F_OK) != 0) {
                snprintf(db, sizeof(db), "%s/" DB_NAME, o->data_dir);
                unlink(db);
                res->rolled_back = true;
        }
}
out:
        rm_rf(stage);
        if (lock_fd >= 0)
                close(lock_fd);
        return r;
}

int backup_rollback(const char *data_dir, const char *previous, char *used, size_t usedlen,
                    char *err, size_t errlen)
{
        char prev[PATH_MAX], keep[PATH_MAX], stamp[32];
        int lock_fd = -1, r;

        if (previous) {
                snprintf(prev, sizeof(prev), "%s", previous);
        } else {
                /* The newest pre-restore-* by name (the stamp sorts). */
                DIR *d = opendir(data_dir);
                struct dirent *e;
                char best[256] = "";
                if (!d) {
                        r = -errno;
                        snprintf(err, errlen, "cannot read '%s': %s", data_dir, strerror(-r));
                        return r;
                }
                while ((e = readdir(d)))
                        if (!strncmp(e->d_name, "pre-restore-", 12) && strcmp(e->d_name, best) > 0)
                                snprintf(best, sizeof(best), "%s", e->d_name);
                closedir(d);
                if (!best[0]) {
                        snprintf(err, errlen,
                                 "no pre-restore-* directory in '%s': nothing to "
                                 "roll back to",
                                 data_dir);
                        return -ENOENT;
                }
                snprintf(prev, sizeof(prev), "%s/%s", data_dir, best);
        }
        r = take_lock(data_dir, &lock_fd, err, errlen);
        if (r < 0)
                return r;
        char db[PATH_MAX];
        snprintf(db, sizeof(db), "%s/" DB_NAME, data_dir);
        checkpoint_offline(db);
        utc_stamp(time_real_us(), stamp, sizeof(stamp), false);
        snprintf(keep, sizeof(keep), "%s/rolled-back-%s", data_dir, stamp);
        r = keep_state(data_dir, keep, err, errlen);
        if (r == 0)
                r = swap_in(prev, data_dir, true, err, errlen);
        if (r < 0 && !err[0])
                snprintf(err, errlen, "cannot roll back to '%s': %s", prev, strerror(-r));
        if (r == 0 && used)
                snprintf(used, usedlen, "%s", prev);
        close(lock_fd);
        return r;
}
