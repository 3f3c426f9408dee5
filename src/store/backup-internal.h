/* backup-internal.h — what the backup files share: member names and the small file helpers of
 * backup_files.c. Private to src/store/; backup.h is the contract.
 *
 * The files, each calling only those above it (no call loop; tests/arch/check_cycles.py):
 *   backup_files.c    SHA-256 of a file, rm -rf, UTC stamps, safe file names
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

#endif
