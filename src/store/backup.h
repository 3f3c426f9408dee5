/* backup.h — backup archives of the store: create (online, from a running store), list, verify,
 * prune, restore (offline) and roll back a restore. One archive is a tar (zstd or gzip) holding
 * MANIFEST, vigil.db (a VACUUM INTO snapshot), the keyring when there is one, and the config
 * files under config/; when a keyring is given the whole archive is then encrypted with
 * AES-256-GCM under the master key (crypto_seal_file; name ends in .enc).
 *
 * MANIFEST is text, one field per line, then one line per member:
 *   vigil-backup 1
 *   version 0.1.0
 *   host node-17
 *   created 2026-01-31T12:00:00Z
 *   schema 2
 *   encrypted 1
 *   member <sha256 hex> <size in bytes> <name>
 *
 * Not thread-safe per call except where noted; every function returns 0 or -errno with the
 * reason in err ("archive '…' is truncated or damaged: …"). */
#ifndef VIGIL_STORE_BACKUP_H
#define VIGIL_STORE_BACKUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "store.h"

#define BACKUP_PREFIX       "vigil-backup-"
#define BACKUP_MAX_MEMBER   (UINT64_C(64) << 30) /* bytes: a bigger member is refused */
#define BACKUP_MAX_MEMBERS  64                   /* members in one archive */
#define BACKUP_MAX_TOTAL    (UINT64_C(64) << 30) /* bytes: all members of one archive together */
#define BACKUP_MAX_MANIFEST (UINT64_C(64) << 10) /* bytes of the MANIFEST member */
/* An archive may unpack to at most BACKUP_MAX_RATIO times its own size, or BACKUP_RATIO_FLOOR
 * bytes, whichever is more: a VACUUM'd SQLite file compresses far less than a bomb does. */
#define BACKUP_MAX_RATIO   200
#define BACKUP_RATIO_FLOOR (UINT64_C(256) << 20)
#define BACKUP_MAX_LIST    4096 /* archives listed in one directory */

enum backup_compression { BACKUP_ZSTD = 0, BACKUP_GZIP = 1 };

typedef struct backup_options {
        const char *dir;                     /* where archives go (created 0700) */
        const char *data_dir;                /* for the keyring file; may be NULL */
        const char *const *config_files;     /* copied under config/; may be NULL */
        size_t n_config_files;               /* entries in config_files */
        const char *hostname;                /* in the name and the manifest */
        crypto_keyring *keyring;             /* encrypt with its master key; NULL = plaintext */
        enum backup_compression compression; /* zstd (default) or gzip */
} backup_options;

typedef struct backup_result {
        char path[PATH_MAX]; /* the archive */
        uint64_t size;       /* bytes */
        char sha256[65];     /* of the archive file, hex */
        int64_t duration_us; /* usec the backup took */
} backup_result;

typedef struct backup_info {
        char host[256];   /* from the manifest */
        char created[32]; /* ISO 8601 UTC */
        char version[32]; /* vigil version that wrote it */
        int schema;       /* store schema version */
        bool encrypted;   /* the file was encrypted */
        unsigned members; /* members checked */
        uint64_t db_size; /* bytes of vigil.db */
} backup_info;

typedef struct backup_entry {
        char path[PATH_MAX]; /* the archive */
        int64_t time_us;     /* usec since epoch, from the name (mtime if unparsable) */
        uint64_t size;       /* bytes */
        bool encrypted;      /* ends in .enc */
        unsigned seq;        /* N of a "-N" suffix (several in one second), else 1 */
} backup_entry;

/* Make a consistent archive of s while it runs. Any thread but the store writer. */
int backup_create(store *s, const backup_options *o, backup_result *res, char *err, size_t errlen);

/* Check an archive: decrypt (tag), unpack to a temporary directory, hash every member against
 * the manifest, PRAGMA integrity_check on vigil.db. keyring may be NULL for plaintext archives
 * (an encrypted one then fails with "archive is encrypted: no encryption key"). */
int backup_verify(const char *archive, crypto_keyring *keyring, backup_info *info, char *err,
                  size_t errlen);
/* As backup_verify, but leave the members in dest (an empty directory that exists). */
int backup_extract(const char *archive, crypto_keyring *keyring, const char *dest,
                   backup_info *info, char *err, size_t errlen);

/* Archives in dir, newest first. *ret is malloc'd (caller frees); *n entries. An absent dir is
 * an empty list. */
int backup_list(const char *dir, backup_entry **ret, size_t *n, char *err, size_t errlen);
/* Remove archives beyond keep_count (newest kept) and older than max_age_us (0 = no age
 * limit); the newest archive is never removed by age. *removed gets the count. */
int backup_prune(const char *dir, unsigned keep_count, int64_t max_age_us, unsigned *removed,
                 char *err, size_t errlen);

typedef struct restore_options {
        const char *archive;     /* the backup to restore */
        const char *data_dir;    /* of a STOPPED vigild */
        crypto_keyring *keyring; /* for encrypted archives; may be NULL */
        bool check;              /* full integrity_check after the swap; roll back on failure */
        bool encrypted_only;     /* refuse a plaintext archive (encryption is configured: only
                                  * the master key's tag proves who made an archive) */
        int64_t not_after_us;    /* usec since epoch; refuse an archive created later (by its
                                  * name or its manifest); 0 = no limit */
} restore_options;

typedef struct restore_result {
        char previous[PATH_MAX]; /* DATA_DIR/pre-restore-STAMP: the state before */
        backup_info info;        /* of the archive */
        bool rolled_back;        /* the check failed and the previous state is back */
} restore_result;

/* verify → keep the current state in DATA_DIR/pre-restore-STAMP → atomic rename of the new
 * database (and keyring) into place → open it with the store (migrations) and record a
 * 'restore' row in store_events → optional full check with automatic roll back.
 * -EBUSY when a vigild holds DATA_DIR (its vigil.db.lock). */
int backup_restore(const restore_options *o, restore_result *res, char *err, size_t errlen);
/* Put back the newest DATA_DIR/pre-restore-* (or the given one); the state replaced goes to
 * DATA_DIR/rolled-back-STAMP. */
int backup_rollback(const char *data_dir, const char *previous, char *used, size_t usedlen,
                    char *err, size_t errlen);

/* Remove the temporary directories (.tmp-backup-PID-*) that a backup killed part-way left in
 * dir: those of processes that no longer run. Returns how many were removed. */
int backup_clean_tmp(const char *dir);

/* Hex SHA-256 of a file. */
int backup_sha256_file(const char *path, char hex[65], uint64_t *size);

/* Record an event in store_events (kind: "restore", "backup", "key_rotation", ...). */
int store_event(store *s, const char *kind, const char *detail);

#endif
