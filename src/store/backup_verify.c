/* backup_verify.c — reading a backup archive: decrypt (the GCM tag first), unpack into a
 * directory with the checks a hostile archive needs (a fixed set of member names, sizes, no links
 * or paths outside), and every member's SHA-256 against the MANIFEST. */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "archive_dl.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "backup-internal.h"
#include "sysio.h"

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

/* What the manifest allows before a byte of a member is written: the sum of the sizes it lists
 * under BACKUP_MAX_TOTAL, under the expansion limit for an archive of arsize bytes, and within
 * the free space of dest. */
static int check_total(const struct manifest_member *mm, size_t nmm, uint64_t arsize,
                       const char *shown, const char *dest, char *err, size_t errlen)
{
        uint64_t total = 0, cap = arsize * BACKUP_MAX_RATIO;
        struct statvfs vfs;

        for (size_t i = 0; i < nmm; i++) {
                if (mm[i].size > BACKUP_MAX_MEMBER || total + mm[i].size > BACKUP_MAX_TOTAL) {
                        snprintf(err, errlen,
                                 "archive '%s': the manifest lists more than %llu GiB: refused "
                                 "before unpacking",
                                 shown, (unsigned long long)(BACKUP_MAX_TOTAL >> 30));
                        return -EFBIG;
                }
                total += mm[i].size;
        }
        if (cap < BACKUP_RATIO_FLOOR)
                cap = BACKUP_RATIO_FLOOR;
        if (total > cap) {
                snprintf(err, errlen,
                         "archive '%s' (%llu bytes) would unpack to %llu bytes, more than %d "
                         "times its size: refused before unpacking (a decompression bomb?)",
                         shown, (unsigned long long)arsize, (unsigned long long)total,
                         BACKUP_MAX_RATIO);
                return -EFBIG;
        }
        if (statvfs(dest, &vfs) == 0 && total > (uint64_t)vfs.f_bavail * vfs.f_frsize) {
                snprintf(err, errlen,
                         "archive '%s' unpacks to %llu bytes but '%s' has %llu bytes free: refused "
                         "before unpacking",
                         shown, (unsigned long long)total, dest,
                         (unsigned long long)vfs.f_bavail * vfs.f_frsize);
                return -ENOSPC;
        }
        return 0;
}

/* Unpack a plaintext tar.{zst,gz} into dest, checking names and hashes. The MANIFEST must come
 * first (backup_create writes it first): every later member is checked against it — listed,
 * the size it gives in its header equal to the manifest's, and never more bytes than that while
 * streaming — and the total against check_total, all before anything of it is written. */
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
        struct stat ast;
        int r, st;

        if (stat(tarpath, &ast) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot read archive '%s': %s", shown, strerror(-r));
                return r;
        }
        r = archive_dl_get(&ar, err, errlen);
        if (r < 0)
                return r;
        struct archive *a = ar->read_new();
        ar->read_support_filter_zstd(a);
        ar->read_support_filter_gzip(a);
        ar->read_support_format_tar(a);
        _cleanup_free_ backup_arfd *f = calloc(1, sizeof(*f));
        if (!f) {
                ar->read_free(a);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        r = backup_ar_read_open(ar, a, f, tarpath, err, errlen);
        if (r < 0) {
                if (r == -EBADMSG && f->err)
                        snprintf(err, errlen, "cannot read archive '%s': %s", shown,
                                 ar->error_string(a));
                else if (r == -EBADMSG)
                        snprintf(err, errlen,
                                 "archive '%s' is truncated or damaged, or not a vigil backup: %s",
                                 shown, ar->error_string(a));
                ar->read_free(a);
                backup_arfd_close(f);
                return f->err ? f->err : r;
        }
        while ((st = ar->read_next_header(a, &e)) == ARCHIVE_OK) {
                const char *name = ar->entry_pathname(e);
                char out[PATH_MAX];
                uint64_t limit = BACKUP_MAX_MANIFEST, written = 0;
                if (!name || !member_allowed(name) || ar->entry_filetype(e) != AE_IFREG ||
                    ar->entry_size(e) < 0 || (uint64_t)ar->entry_size(e) > BACKUP_MAX_MEMBER) {
                        snprintf(err, errlen, "archive '%s': unexpected member '%.100s'", shown,
                                 name ? name : "?");
                        r = -EBADMSG;
                        break;
                }
                if (!have_manifest && strcmp(name, MANIFEST_NAME) != 0) {
                        snprintf(err, errlen,
                                 "archive '%s': member '%.100s' comes before the MANIFEST: not a "
                                 "vigil backup",
                                 shown, name);
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
                if (have_manifest) {
                        size_t j = 0;
                        while (j < nmm && strcmp(mm[j].name, name) != 0)
                                j++;
                        if (j == nmm) {
                                snprintf(err, errlen,
                                         "archive '%s': member '%s' is not in the manifest", shown,
                                         name);
                                r = -EBADMSG;
                                break;
                        }
                        limit = mm[j].size;
                }
                if ((uint64_t)ar->entry_size(e) > limit) {
                        snprintf(err, errlen,
                                 "archive '%s': member '%s' is %lld bytes, the manifest says %llu: "
                                 "refused before unpacking",
                                 shown, name, (long long)ar->entry_size(e),
                                 (unsigned long long)limit);
                        r = -EBADMSG;
                        break;
                }
                snprintf(names[nnames++], 256, "%s", name);
                if (!strncmp(name, "config/", 7)) {
                        snprintf(out, sizeof(out), "%s/config", dest);
                        mkdir(out, 0700);
                }
                snprintf(out, sizeof(out), "%s/%s", dest, name);
                int fd =
                    sysio.open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0) {
                        r = -errno;
                        snprintf(err, errlen, "cannot create '%s': %s", out, strerror(-r));
                        break;
                }
                ssize_t n;
                char buf[65536];
                while ((n = ar->read_data(a, buf, sizeof(buf))) > 0) {
                        written += (uint64_t)n;
                        if (written > limit) {
                                snprintf(err, errlen,
                                         "archive '%s': member '%s' is longer than the manifest "
                                         "says (%llu bytes)",
                                         shown, name, (unsigned long long)limit);
                                r = -EBADMSG;
                                break;
                        }
                        r = sysio_write_all(fd, buf, (size_t)n);
                        if (r < 0)
                                break;
                }
                const char *op = "write";
                if (n < 0 && f->err) {
                        snprintf(err, errlen, "cannot read archive '%s': %s", shown,
                                 ar->error_string(a));
                        r = f->err;
                } else if (n < 0) {
                        snprintf(err, errlen, "archive '%s' is truncated or damaged: %s", shown,
                                 ar->error_string(a));
                        r = -EBADMSG;
                }
                if (r == 0 && sysio.fsync(fd) < 0) {
                        r = -errno;
                        op = "fsync";
                }
                close(fd);
                if (r < 0) {
                        if (!err[0])
                                snprintf(err, errlen, "cannot write '%s': %s failed: %s", out, op,
                                         strerror(-r));
                        break;
                }
                if (!strcmp(name, MANIFEST_NAME)) {
                        r = parse_manifest(out, info, mm, &nmm, err, errlen);
                        if (r == 0)
                                r = check_total(mm, nmm, (uint64_t)ast.st_size, shown, dest, err,
                                                errlen);
                        if (r < 0)
                                break;
                        have_manifest = true;
                }
        }
        if (r == 0 && st != ARCHIVE_EOF && f->err) {
                snprintf(err, errlen, "cannot read archive '%s': %s", shown, ar->error_string(a));
                r = f->err;
        } else if (r == 0 && st != ARCHIVE_EOF) {
                snprintf(err, errlen, "archive '%s' is truncated or damaged: %s", shown,
                         ar->error_string(a));
                r = -EBADMSG;
        }
        ar->read_free(a);
        backup_arfd_close(f);
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
        /* A database is code as well as data: a trigger or view in it would run inside vigild
         * after a restore. Only the schema Vigil's migrations make is accepted. */
        why[0] = '\0';
        r = store_check_schema(db, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "archive '%s': the database is not Vigil's schema: %s", shown,
                         why);
                return r == -EPROTO ? r : -EBADMSG;
        }
        return 0;
}

bool backup_file_encrypted(const char *path)
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
        if (backup_file_encrypted(archive)) {
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
        backup_rm_rf(tmp);
        return r;
}
