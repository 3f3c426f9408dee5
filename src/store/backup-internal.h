/* backup-internal.h — what the backup files share: member names and the small file helpers of
 * backup_files.c. Private to src/store/; backup.h is the contract.
 *
 * The files, each calling only those above it (no call loop; tests/arch/check_cycles.py):
 *   backup_files.c    SHA-256 of a file, rm -rf, UTC stamps, safe file names, libarchive on a
 *                     descriptor of the sysio table (sysio.h)
 *   backup_create.c   archive writing: an online copy of the store, the MANIFEST, tar + zstd/gzip,
 *                     optional AES-256-GCM
 *   backup_verify.c   archive reading: decrypt, unpack with hostile-archive checks, the MANIFEST's
 *                     hashes; backup_verify and backup_extract
 *   backup_prune.c    list and prune the archives of a backup dir
 *   backup_restore.c  offline restore (verify, keep the current state, atomic swap) and rollback
 * Scheduling and the hook are the backup service's (service.c). */
#ifndef VIGIL_STORE_BACKUP_INTERNAL_H
#define VIGIL_STORE_BACKUP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <limits.h>

#include "archive_dl.h"

#define MANIFEST_NAME "MANIFEST"
#define DB_NAME       "vigil.db"
#define KEYRING_NAME  "keyring"

/* The file starts with the sealed-file magic (crypto.h): an encrypted archive. */
bool backup_file_encrypted(const char *path);
/* rm -rf PATH (no symlinks followed); 0 or -errno. An absent PATH is 0. */
int backup_rm_rf(const char *path);
/* usec since epoch → "20260101T120000Z" (iso false) or "2026-01-01T12:00:00Z" (iso true). */
void backup_utc_stamp(int64_t us, char *buf, size_t len, bool iso);
/* Hostnames go into file names: keep [A-Za-z0-9._-], anything else becomes '_'. */
void backup_safe_name(const char *in, char *out, size_t len);

/* libarchive reads and writes archives through callbacks on a descriptor opened, written, read
 * and fsynced through sysio (sysio.h), so a fault injected there reaches libarchive too. A failed
 * call is set as the archive's error ("write 'PATH': Input/output error", archive_error_string)
 * and kept in err (-errno) and op ("write", "fsync", "read", "close"). */
typedef struct backup_arfd {
        const archive_dl *ar;
        int fd;
        int err;        /* -errno of the call that failed, 0 if none */
        const char *op; /* its name */
        char path[PATH_MAX];
        char buf[65536]; /* the reader's block */
} backup_arfd;

/* Create path (O_EXCL, 0600) and open the writer a on it; the close callback fsyncs and closes.
 * 0, or -errno with err set ("cannot create archive 'PATH': …"). */
int backup_ar_write_open(const archive_dl *ar, struct archive *a, backup_arfd *f, const char *path,
                         char *err, size_t errlen);
/* Open path for reading and the reader a on it. 0 or -errno (the open failed: err set; or
 * libarchive refused the start of the data: -EBADMSG, err not set, f->err says if a read failed).
 * After archive_read_free, call backup_arfd_close. */
int backup_ar_read_open(const archive_dl *ar, struct archive *a, backup_arfd *f, const char *path,
                        char *err, size_t errlen);
/* Close the descriptor if a callback has not (libarchive does not call the close callback of
 * an archive whose open failed). */
void backup_arfd_close(backup_arfd *f);

#endif
