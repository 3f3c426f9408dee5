/* backup_config.h — the store module's own configuration: the backup: and
 * security.encryption: sections of vigil.yaml (docs/backup.md) as the daemon's option table
 * (src/daemon/config.c) writes them. Strings are owned by whoever owns the struct (the
 * daemon's configuration). Plain data: no thread rules. */
#ifndef VIGIL_STORE_BACKUP_CONFIG_H
#define VIGIL_STORE_BACKUP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct backup_config {
        char *dir;               /* archives; "" = DATA_DIR/backups */
        char *schedule;          /* interval between scheduled backups ("24h"); "" = off */
        unsigned keep_count;     /* archives kept at most (1..10000) */
        int64_t keep_max_age_us; /* usec; older archives are pruned */
        char *hook;              /* program run with the archive path; "" = none */
        int64_t hook_timeout_us; /* usec; the hook is killed after this */
        bool restore_on_corrupt; /* corrupt store at start: restore the newest backup */
        int compression;         /* 0 = zstd, 1 = gzip */
        struct {
                char *endpoint;          /* "http(s)://HOST[:PORT]"; "" = AWS for region */
                char *bucket;            /* "" = no copies off the node */
                char *prefix;            /* object key prefix ("vigil/") */
                char *region;            /* signing region */
                int addressing;          /* 0 = path style, 1 = virtual-host style */
                char *credentials_file;  /* AWS credentials file; "" = the environment */
                unsigned keep_count;     /* archives of this host kept in the bucket */
                int64_t keep_max_age_us; /* usec; older ones are deleted from the bucket */
                int64_t timeout_us;      /* usec per request */
                int64_t retry_max_us;    /* usec: longest wait between upload retries */
                char *secret_access_key; /* refused when set: never a secret in the file */
        } s3;                            /* backup.s3: (docs/backup.md) */
} backup_config;

typedef struct encryption_config {
        bool data_at_rest;          /* seal sensitive payloads and backups */
        char *encryption_key;       /* master key: passphrase or 64 hex chars; secret */
        unsigned key_rotation_days; /* warn when the active key is older; 0 = never */
} encryption_config;

#endif
