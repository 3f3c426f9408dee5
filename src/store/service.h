/* service.h — the daemon side of backups and keys: serialised backup runs (API, schedule),
 * retention after each run, the post-backup hook, key rotation with background re-encryption of
 * the columns listed in sealed.def, the key-age warning, and the metrics of all of that.
 * All functions are thread-safe. */
#ifndef VIGIL_STORE_SERVICE_H
#define VIGIL_STORE_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "backup.h"
#include "common/buf.h"
#include "s3.h"

typedef struct backup_service backup_service;

typedef struct backup_service_config {
        const char *dir;         /* archives (created 0700) */
        const char *data_dir;    /* keyring lives here */
        const char *config_file; /* copied into archives; NULL = none */
        const char *hostname;    /* in names and manifests */
        int64_t schedule_us;     /* usec between scheduled backups; 0 = off */
        unsigned keep_count;     /* archives kept */
        int64_t keep_max_age_us; /* usec; older archives pruned */
        const char *hook;        /* run with the archive path as argv[1]; NULL/"" = none */
        int64_t hook_timeout_us; /* usec; then SIGKILL */
        enum backup_compression compression;
        unsigned key_rotation_days; /* warn when the active key is older; 0 = never */
        const s3_target *s3;        /* copy every archive to this bucket; NULL = none */
        unsigned s3_keep_count;     /* archives of this host kept in the bucket */
        int64_t s3_keep_max_age_us; /* usec; older ones are deleted from the bucket */
        int64_t s3_retry_max_us;    /* usec: the longest wait between upload retries */
} backup_service_config;

/* s and keyring (may be NULL: no encryption) are borrowed and must outlive the service.
 * Strings (those of c->s3 included) are copied. With an S3 target, credentials that cannot be
 * found fail here (-ENOKEY, -EPERM…) with the reason in err. Caller owns *ret. */
int backup_service_new(const backup_service_config *c, store *s, crypto_keyring *keyring,
                       backup_service **ret, char *err, size_t errlen);
/* Start the timer thread (schedule, key age). */
int backup_service_start(backup_service *b);
/* Stop the timer and any re-encryption; NULL ok; returns NULL. */
backup_service *backup_service_free(backup_service *b);

/* Make a backup now (one at a time), prune, run the hook, and queue the archive for the upload
 * to the S3 target, which the service's timer thread makes (retried with backoff while the
 * bucket cannot be reached; the local archive stays either way). */
int backup_service_run(backup_service *b, backup_result *res, char *err, size_t errlen);
const char *backup_service_dir(const backup_service *b);
/* Add a key, save the keyring, re-encrypt sealed columns in the background. -ENOKEY when no
 * encryption key is configured. */
int backup_service_rotate_key(backup_service *b, uint32_t *new_id, char *err, size_t errlen);
crypto_keyring *backup_service_keyring(backup_service *b);
/* Rows re-encrypted since start, and whether a re-encryption is running. */
uint64_t backup_service_reencrypted(backup_service *b, bool *running);

/* Prometheus families (text 0.0.4 / OpenMetrics bodies without # EOF). */
void backup_service_metrics(backup_service *b, buf *out, bool om);

#endif
