/* service.c — backups and keys inside vigild: a timer thread for scheduled backups, the key
 * age check and the uploads to the S3 target (a queue of archives, retried with backoff, so that
 * neither the HTTP thread that asked for a backup nor the sampler ever waits on the network),
 * the post-backup hook (never silent: an error line and a metric), and key rotation with a
 * background re-encryption of the sealed.def columns in small batches through the store
 * writer. */
#include "service.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/spawn.h"
#include "common/vtime.h"

#define UPLOAD_QUEUE     16                     /* archives waiting for the upload, at most */
#define UPLOAD_RETRY_MIN (INT64_C(1) * 1000000) /* usec: the first retry; then doubled */

struct upload {
        char path[PATH_MAX]; /* local archive */
        char sha256[65];     /* its SHA-256, hex; "" = compute */
        bool if_missing;     /* upload only if the bucket lacks it (the newest archive at start) */
};

static const struct sealed_column {
        const char *table;  /* SQL identifier from sealed.def (trusted, compiled in) */
        const char *column; /* likewise */
} sealed[] = {
#define SEALED(t, c) {#t, #c},
#include "sealed.def"
#undef SEALED
    {NULL, NULL},
};

struct backup_service {
        backup_service_config c;           /* strings owned */
        store *store;                      /* borrowed */
        crypto_keyring *keyring;           /* borrowed; NULL = no encryption */
        pthread_mutex_t run_lock;          /* one backup at a time */
        pthread_mutex_t lock;              /* timer state below */
        pthread_cond_t wake;               /* timer */
        bool stopping;                     /* free began */
        bool timer_started;                /* timer thread to join */
        pthread_t timer;                   /* schedule and key age */
        bool reenc_started;                /* re-encryption thread to join */
        pthread_t reenc;                   /* re-encryption */
        _Atomic bool reenc_running;        /* for status */
        _Atomic uint64_t reencrypted;      /* rows */
        _Atomic uint64_t ok;               /* backups made */
        _Atomic uint64_t failed;           /* backups that failed */
        _Atomic uint64_t hook_failed;      /* hook runs that failed or timed out */
        _Atomic int64_t last_ok_us;        /* realtime of the last good backup */
        _Atomic uint64_t last_size;        /* bytes of the last good backup */
        _Atomic int64_t last_dur_us;       /* usec the last good backup took */
        int64_t key_warned_us;             /* last key-age warning, realtime */
        bool has_s3;                       /* s3 below is configured */
        s3_target s3;                      /* strings owned */
        struct upload queue[UPLOAD_QUEUE]; /* oldest first; under lock */
        size_t nqueue;                     /* entries in queue */
        int64_t next_upload_us;            /* monotonic: the next try; under lock */
        int64_t backoff_us;                /* usec before the next retry; 0 = none failed */
        _Atomic uint64_t uploads_ok;       /* archives uploaded */
        _Atomic uint64_t upload_fail;      /* upload attempts that failed */
        _Atomic uint64_t remote_pruned;    /* objects deleted from the bucket by retention */
        _Atomic int64_t last_upload_us;    /* realtime of the last good upload; 0 = none */
};

static char *dup_or_null(const char *s)
{
        return s && *s ? strdup(s) : NULL;
}

static bool service_stopping(void *arg)
{
        backup_service *b = arg;
        pthread_mutex_lock(&b->lock);
        bool stop = b->stopping;
        pthread_mutex_unlock(&b->lock);
        return stop;
}

/* Queue an archive for the timer thread; the oldest waiting one is dropped when full. Called
 * with b->lock held. */
static void enqueue_upload(backup_service *b, const char *path, const char *sha, bool if_missing)
{
        if (b->nqueue == UPLOAD_QUEUE) {
                log_error("backup", "upload queue full: '%s' will not be uploaded",
                          b->queue[0].path);
                memmove(&b->queue[0], &b->queue[1], sizeof(b->queue[0]) * (UPLOAD_QUEUE - 1));
                b->nqueue--;
        }
        struct upload *u = &b->queue[b->nqueue++];
        snprintf(u->path, sizeof(u->path), "%s", path);
        snprintf(u->sha256, sizeof(u->sha256), "%s", sha ? sha : "");
        u->if_missing = if_missing;
        pthread_cond_broadcast(&b->wake);
}

int backup_service_new(const backup_service_config *c, store *s, crypto_keyring *keyring,
                       backup_service **ret, char *err, size_t errlen)
{
        backup_service *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->c = *c;
        b->c.dir = dup_or_null(c->dir);
        b->c.data_dir = dup_or_null(c->data_dir);
        b->c.config_file = dup_or_null(c->config_file);
        b->c.hostname = dup_or_null(c->hostname);
        b->c.hook = dup_or_null(c->hook);
        b->c.s3 = NULL;
        if (c->s3 && c->s3->bucket && c->s3->bucket[0]) {
                b->has_s3 = true;
                b->s3 = *c->s3;
                b->s3.endpoint = strdup(c->s3->endpoint ? c->s3->endpoint : "");
                b->s3.bucket = strdup(c->s3->bucket);
                b->s3.prefix = strdup(c->s3->prefix ? c->s3->prefix : "");
                b->s3.region = strdup(c->s3->region ? c->s3->region : "us-east-1");
                b->s3.credentials_file = dup_or_null(c->s3->credentials_file);
                b->s3.cancelled = service_stopping;
                b->s3.cancel_arg = b;
                if (!b->s3.endpoint || !b->s3.bucket || !b->s3.prefix || !b->s3.region) {
                        backup_service_free(b);
                        return -ENOMEM;
                }
                /* Missing or unsafe credentials refuse the start, not every upload later. */
                int r = s3_check_credentials(&b->s3, err, errlen);
                if (r < 0) {
                        backup_service_free(b);
                        return r;
                }
        }
        if (!b->c.dir) {
                snprintf(err, errlen, "no backup directory");
                backup_service_free(b);
                return -EINVAL;
        }
        b->store = s;
        b->keyring = keyring;
        pthread_mutex_init(&b->run_lock, NULL);
        pthread_mutex_init(&b->lock, NULL);
        pthread_cond_init(&b->wake, NULL);
        /* A backup killed part-way (kill -9, power loss) left its temporary directory. */
        int cleaned = backup_clean_tmp(b->c.dir);
        if (cleaned > 0)
                log_info("backup",
                         "removed %d temporary directories of interrupted backups in '%s'", cleaned,
                         b->c.dir);
        /* A restart does not reset the schedule: the newest archive tells when the last was. */
        backup_entry *v = NULL;
        size_t n = 0;
        char lerr[256];
        if (backup_list(b->c.dir, &v, &n, lerr, sizeof(lerr)) == 0 && n > 0) {
                b->last_ok_us = v[0].time_us;
                /* Its upload may have been pending when the last vigild stopped. */
                if (b->has_s3)
                        enqueue_upload(b, v[0].path, NULL, true);
        }
        free(v);
        *ret = b;
        return 0;
}

const char *backup_service_dir(const backup_service *b)
{
        return b ? b->c.dir : NULL;
}

crypto_keyring *backup_service_keyring(backup_service *b)
{
        return b ? b->keyring : NULL;
}

/* Run the hook with the archive as argv[1] in its own process group (killed with it at the
 * deadline); 0, or -errno / -ETIMEDOUT / -ECHILD (non-zero exit). */
static int run_hook(backup_service *b, const char *archive)
{
        const char *argv[] = {b->c.hook, archive, NULL};
        spawn_opts o = {.argv = argv, .timeout_us = b->c.hook_timeout_us, .new_pgrp = true};
        int status = 0, r;

        r = spawn_run(&o, &status);
        if (r < 0)
                return r;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                log_error("backup", "backup hook '%s' exited with status %d%s", b->c.hook,
                          WEXITSTATUS(status),
                          WEXITSTATUS(status) == 127 ? " (cannot execute it?)" : "");
        else if (WIFSIGNALED(status))
                log_error("backup", "backup hook '%s' was killed by signal %d", b->c.hook,
                          WTERMSIG(status));
        return -ECHILD;
}

int backup_service_run(backup_service *b, backup_result *res, char *err, size_t errlen)
{
        const char *cfg[1] = {b->c.config_file};
        backup_options o = {
            .dir = b->c.dir,
            .data_dir = b->c.data_dir,
            .config_files = cfg,
            .n_config_files = b->c.config_file ? 1 : 0,
            .hostname = b->c.hostname,
            .keyring = b->keyring,
            .compression = b->c.compression,
        };
        unsigned removed = 0;
        char perr[512];
        int r;

        pthread_mutex_lock(&b->run_lock);
        r = backup_create(b->store, &o, res, err, errlen);
        if (r < 0) {
                atomic_fetch_add(&b->failed, 1);
                log_error("backup", "backup failed: %s", err);
                pthread_mutex_unlock(&b->run_lock);
                return r;
        }
        atomic_fetch_add(&b->ok, 1);
        atomic_store(&b->last_ok_us, time_real_us());
        atomic_store(&b->last_size, res->size);
        atomic_store(&b->last_dur_us, res->duration_us);
        log_info("backup", "backup '%s' created (%llu bytes, sha256 %s, %s, %.2fs)", res->path,
                 (unsigned long long)res->size, res->sha256,
                 b->keyring ? "encrypted" : "NOT encrypted", (double)res->duration_us / 1e6);
        if (backup_prune(b->c.dir, b->c.keep_count, b->c.keep_max_age_us, &removed, perr,
                         sizeof(perr)) < 0)
                log_error("backup", "failed to prune old backups: %s", perr);
        if (b->c.hook) {
                int hr = run_hook(b, res->path);
                if (hr < 0) {
                        atomic_fetch_add(&b->hook_failed, 1);
                        log_error("backup", "backup hook '%s' failed for '%s': %s", b->c.hook,
                                  res->path,
                                  hr == -ETIMEDOUT ? "timed out (killed)"
                                  : hr == -ECHILD  ? "non-zero exit"
                                                   : strerror(-hr));
                }
        }
        if (b->has_s3) {
                pthread_mutex_lock(&b->lock);
                enqueue_upload(b, res->path, res->sha256, false);
                b->next_upload_us = 0; /* a new archive is tried at once, whatever the backoff */
                pthread_mutex_unlock(&b->lock);
        }
        pthread_mutex_unlock(&b->run_lock);
        return 0;
}

/* ---- uploads to the S3 target (timer thread only) ---- */

static const char *base_name(const char *path)
{
        const char *sl = strrchr(path, '/');
        return sl ? sl + 1 : path;
}

/* Try the oldest queued archive once. Called without b->lock. */
static void upload_next(backup_service *b)
{
        struct upload u;
        char key[S3_MAX_KEY], err[2048] = "";
        int r;

        pthread_mutex_lock(&b->lock);
        if (!b->nqueue) {
                pthread_mutex_unlock(&b->lock);
                return;
        }
        u = b->queue[0];
        pthread_mutex_unlock(&b->lock);

        snprintf(key, sizeof(key), "%s%s", b->s3.prefix, base_name(u.path));
        if (access(u.path, R_OK) < 0) {
                /* pruned locally (or removed by hand) before it could be uploaded */
                r = -errno;
                snprintf(err, sizeof(err), "the archive '%s' is gone (%s)", u.path, strerror(-r));
        } else if (u.if_missing) {
                s3_object *v = NULL;
                size_t n = 0;
                struct stat st;
                r = s3_list(&b->s3, key, &v, &n, err, sizeof(err));
                bool there = false;
                for (size_t i = 0; r == 0 && i < n && stat(u.path, &st) == 0; i++)
                        there |= !strcmp(v[i].key, key) && v[i].size == (uint64_t)st.st_size;
                free(v);
                if (r == 0 && !there)
                        r = s3_put_file(&b->s3, key, u.path, NULL, err, sizeof(err));
                else if (r == 0)
                        r = 1; /* already there */
        } else {
                r = s3_put_file(&b->s3, key, u.path, u.sha256[0] ? u.sha256 : NULL, err,
                                sizeof(err));
        }
        if (r == -ECANCELED)
                return; /* stopping: the newest archive is looked at again at the next start */

        bool gone = r < 0 && access(u.path, R_OK) < 0;
        pthread_mutex_lock(&b->lock);
        if (r >= 0 || gone) {
                /* done with it (the queue only grows at its end meanwhile) */
                if (b->nqueue && !strcmp(b->queue[0].path, u.path)) {
                        memmove(&b->queue[0], &b->queue[1], sizeof(b->queue[0]) * (b->nqueue - 1));
                        b->nqueue--;
                }
        }
        if (r >= 0) {
                b->backoff_us = 0;
                b->next_upload_us = 0;
        } else if (!gone) {
                int64_t cap = b->c.s3_retry_max_us > 0 ? b->c.s3_retry_max_us : 300 * USEC_PER_SEC;
                b->backoff_us =
                    b->backoff_us ? MIN(b->backoff_us * 2, cap) : MIN(UPLOAD_RETRY_MIN, cap);
                /* up to a quarter more, so that a fleet does not retry in step */
                int64_t jitter = (int64_t)((uint64_t)random() % (uint64_t)(b->backoff_us / 4 + 1));
                b->next_upload_us = time_mono_us() + b->backoff_us + jitter;
        }
        int64_t wait = b->backoff_us;
        pthread_mutex_unlock(&b->lock);

        if (r < 0) {
                atomic_fetch_add(&b->upload_fail, 1);
                if (gone)
                        log_error("backup", "cannot upload to s3://%s/%s: %s", b->s3.bucket, key,
                                  err);
                else
                        log_error("backup", "%s; the local archive is kept, retrying in %.0fs", err,
                                  (double)wait / 1e6);
                return;
        }
        atomic_store(&b->last_upload_us, time_real_us());
        if (r == 1) {
                log_info("backup", "'%s' is already in s3://%s/%s", u.path, b->s3.bucket, key);
                return;
        }
        atomic_fetch_add(&b->uploads_ok, 1);
        log_info("backup", "uploaded '%s' to s3://%s/%s", u.path, b->s3.bucket, key);
        unsigned removed = 0;
        if (s3_prune(&b->s3, b->c.hostname ? b->c.hostname : "", b->c.s3_keep_count,
                     b->c.s3_keep_max_age_us, &removed, err, sizeof(err)) < 0)
                log_error("backup", "failed to prune old backups in s3://%s/%s: %s", b->s3.bucket,
                          b->s3.prefix, err);
        if (removed) {
                atomic_fetch_add(&b->remote_pruned, removed);
                log_info("backup", "removed %u old archives from s3://%s/%s", removed, b->s3.bucket,
                         b->s3.prefix);
        }
}

/* ---- key rotation and re-encryption ---- */

struct reenc_row {
        int64_t rowid;  /* of the row */
        uint8_t *blob;  /* current value; owned */
        size_t len;     /* bytes */
        uint8_t *fresh; /* re-sealed; owned */
        size_t flen;    /* bytes */
};

struct reenc_batch {
        const struct sealed_column *col; /* which column */
        uint32_t active;                 /* key id sealing now */
        struct reenc_row rows[64];       /* this batch */
        size_t n;                        /* rows in it */
        int64_t after;                   /* rowid cursor */
        unsigned changed;                /* rows reenc_write re-sealed (store_write answers 0
                                          * for any success, so the count travels here) */
};

static int reenc_read(sqlite3 *db, void *ctx)
{
        struct reenc_batch *bt = ctx;
        char sql[512];
        sqlite3_stmt *st = NULL;
        uint8_t id[4] = {(uint8_t)(bt->active >> 24), (uint8_t)(bt->active >> 16),
                         (uint8_t)(bt->active >> 8), (uint8_t)bt->active};

        snprintf(sql, sizeof(sql),
                 "SELECT rowid, %s FROM %s WHERE rowid > ?1 AND typeof(%s) = 'blob' AND "
                 "substr(%s, 1, 9) = CAST('VIGILENC1' AS BLOB) AND substr(%s, 10, 4) != ?2 "
                 "ORDER BY rowid LIMIT 64",
                 bt->col->column, bt->col->table, bt->col->column, bt->col->column,
                 bt->col->column);
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_int64(st, 1, bt->after);
        sqlite3_bind_blob(st, 2, id, 4, SQLITE_STATIC);
        bt->n = 0;
        while (bt->n < ARRAY_SIZE(bt->rows) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct reenc_row *row = &bt->rows[bt->n];
                row->rowid = sqlite3_column_int64(st, 0);
                row->len = (size_t)sqlite3_column_bytes(st, 1);
                row->blob = malloc(row->len ? row->len : 1);
                row->fresh = NULL;
                if (!row->blob)
                        break;
                memcpy(row->blob, sqlite3_column_blob(st, 1), row->len);
                bt->after = row->rowid;
                bt->n++;
        }
        sqlite3_finalize(st);
        return 0;
}

static int reenc_write(sqlite3 *db, void *ctx)
{
        struct reenc_batch *bt = ctx;
        char sql[512];
        sqlite3_stmt *st = NULL;
        int changed = 0;

        /* Compare-and-swap on the old value: a row rewritten meanwhile is left alone. */
        snprintf(sql, sizeof(sql), "UPDATE %s SET %s = ?1 WHERE rowid = ?2 AND %s = ?3",
                 bt->col->table, bt->col->column, bt->col->column);
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        for (size_t i = 0; i < bt->n; i++) {
                struct reenc_row *row = &bt->rows[i];
                if (!row->fresh)
                        continue;
                sqlite3_reset(st);
                sqlite3_bind_blob(st, 1, row->fresh, (int)row->flen, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, row->rowid);
                sqlite3_bind_blob(st, 3, row->blob, (int)row->len, SQLITE_STATIC);
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE) {
                        sqlite3_finalize(st);
                        return store_errno(rc);
                }
                changed += sqlite3_changes(db);
        }
        sqlite3_finalize(st);
        bt->changed = (unsigned)changed;
        return 0;
}

static void *reenc_main(void *arg)
{
        backup_service *b = arg;
        uint64_t done = 0, bad = 0;

        for (size_t ci = 0; sealed[ci].table; ci++) {
                struct reenc_batch *bt = calloc(1, sizeof(*bt));
                char aad[256];
                if (!bt)
                        break;
                bt->col = &sealed[ci];
                bt->active = crypto_keyring_active(b->keyring);
                snprintf(aad, sizeof(aad), "%s.%s", bt->col->table, bt->col->column);
                for (;;) {
                        pthread_mutex_lock(&b->lock);
                        bool stop = b->stopping;
                        pthread_mutex_unlock(&b->lock);
                        if (stop)
                                break;
                        if (store_read(b->store, reenc_read, bt) < 0 || bt->n == 0)
                                break;
                        for (size_t i = 0; i < bt->n; i++) {
                                struct reenc_row *row = &bt->rows[i];
                                uint8_t *pt = NULL;
                                size_t pl = 0;
                                if (crypto_open(b->keyring, row->blob, row->len, aad, strlen(aad),
                                                &pt, &pl) < 0) {
                                        bad++;
                                        continue;
                                }
                                if (crypto_seal(b->keyring, pt, pl, aad, strlen(aad), &row->fresh,
                                                &row->flen) < 0)
                                        row->fresh = NULL;
                                free(pt);
                        }
                        bt->changed = 0;
                        int w = store_write(b->store, reenc_write, bt);
                        if (w == 0)
                                done += bt->changed;
                        for (size_t i = 0; i < bt->n; i++) {
                                free(bt->rows[i].blob);
                                free(bt->rows[i].fresh);
                        }
                        atomic_store(&b->reencrypted, done);
                        if (w < 0) {
                                log_error("keys", "failed to re-encrypt %s.%s: %s", bt->col->table,
                                          bt->col->column, strerror(-w));
                                break;
                        }
                }
                free(bt);
        }
        if (bad)
                log_error("keys", "re-encryption: %llu values could not be opened with any key",
                          (unsigned long long)bad);
        log_info("keys", "re-encryption done: %llu values now sealed with key %u",
                 (unsigned long long)done, crypto_keyring_active(b->keyring));
        atomic_store(&b->reenc_running, false);
        return NULL;
}

int backup_service_rotate_key(backup_service *b, uint32_t *new_id, char *err, size_t errlen)
{
        char path[4096];
        uint32_t id = 0;
        int r;

        if (!b->keyring) {
                snprintf(err, errlen,
                         "no encryption key is configured "
                         "(security.encryption.encryption_key)");
                return -ENOKEY;
        }
        if (atomic_load(&b->reenc_running)) {
                snprintf(err, errlen, "a re-encryption is still running; try again later");
                return -EBUSY;
        }
        snprintf(path, sizeof(path), "%s/keyring", b->c.data_dir ? b->c.data_dir : ".");
        /* The key is active only once the keyring file holding it is on disk: a value sealed
         * with a key the file lacks would not open after a restart. */
        r = crypto_keyring_rotate_save(b->keyring, path, &id, err, errlen);
        if (r < 0)
                return r; /* the keyring is unchanged; the error is the caller's to report */
        char detail[128];
        snprintf(detail, sizeof(detail), "key %u is now active; %u keys in the keyring", id,
                 crypto_keyring_count(b->keyring));
        (void)store_event(b->store, "key_rotation", detail);
        log_info("keys", "rotated the data key: %s", detail);
        if (b->reenc_started)
                pthread_join(b->reenc, NULL);
        atomic_store(&b->reenc_running, true);
        b->reenc_started = pthread_create(&b->reenc, NULL, reenc_main, b) == 0;
        if (!b->reenc_started)
                atomic_store(&b->reenc_running, false);
        if (new_id)
                *new_id = id;
        return 0;
}

uint64_t backup_service_reencrypted(backup_service *b, bool *running)
{
        if (running)
                *running = atomic_load(&b->reenc_running);
        return atomic_load(&b->reencrypted);
}

/* ---- timer ---- */

static void check_key_age(backup_service *b)
{
        if (!b->keyring || !b->c.key_rotation_days)
                return;
        int64_t now = time_real_us(), age = now - crypto_keyring_active_created(b->keyring);
        int64_t limit = (int64_t)b->c.key_rotation_days * 86400 * USEC_PER_SEC;
        if (age > limit && now - b->key_warned_us > 86400 * USEC_PER_SEC) {
                b->key_warned_us = now;
                log_warn("keys",
                         "the active data key %u is %lld days old (key_rotation_days: %u): run "
                         "'vigil keys rotate'",
                         crypto_keyring_active(b->keyring), (long long)(age / 86400 / USEC_PER_SEC),
                         b->c.key_rotation_days);
        }
}

static void *timer_main(void *arg)
{
        backup_service *b = arg;

        pthread_mutex_lock(&b->lock);
        while (!b->stopping) {
                int64_t now = time_real_us(), wait_us = 3600 * USEC_PER_SEC;
                if (b->c.schedule_us) {
                        int64_t due = atomic_load(&b->last_ok_us) + b->c.schedule_us;
                        if (due <= now) {
                                backup_result res;
                                char err[1024];
                                pthread_mutex_unlock(&b->lock);
                                log_info("backup", "starting the scheduled backup");
                                if (backup_service_run(b, &res, err, sizeof(err)) < 0)
                                        /* Do not hammer a full disk: retry in a tenth. */
                                        atomic_store(&b->last_ok_us, now - b->c.schedule_us +
                                                                         b->c.schedule_us / 10);
                                pthread_mutex_lock(&b->lock);
                                continue;
                        }
                        wait_us = MIN(wait_us, due - now);
                }
                if (b->nqueue) {
                        int64_t mono = time_mono_us();
                        if (b->next_upload_us <= mono) {
                                pthread_mutex_unlock(&b->lock);
                                upload_next(b);
                                pthread_mutex_lock(&b->lock);
                                continue;
                        }
                        wait_us = MIN(wait_us, b->next_upload_us - mono);
                }
                pthread_mutex_unlock(&b->lock);
                check_key_age(b);
                pthread_mutex_lock(&b->lock);
                if (b->stopping)
                        break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                int64_t abs_us = (int64_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000 + wait_us;
                ts.tv_sec = abs_us / USEC_PER_SEC;
                ts.tv_nsec = (abs_us % USEC_PER_SEC) * 1000;
                pthread_cond_timedwait(&b->wake, &b->lock, &ts);
        }
        pthread_mutex_unlock(&b->lock);
        return NULL;
}

int backup_service_start(backup_service *b)
{
        int r = -pthread_create(&b->timer, NULL, timer_main, b);
        if (r == 0)
                b->timer_started = true;
        return r;
}

backup_service *backup_service_free(backup_service *b)
{
        if (!b)
                return NULL;
        pthread_mutex_lock(&b->lock);
        b->stopping = true;
        pthread_cond_broadcast(&b->wake);
        pthread_mutex_unlock(&b->lock);
        if (b->timer_started)
                pthread_join(b->timer, NULL);
        if (b->reenc_started)
                pthread_join(b->reenc, NULL);
        pthread_mutex_destroy(&b->run_lock);
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->wake);
        free((char *)b->c.dir);
        free((char *)b->c.data_dir);
        free((char *)b->c.config_file);
        free((char *)b->c.hostname);
        free((char *)b->c.hook);
        if (b->has_s3) {
                free((char *)b->s3.endpoint);
                free((char *)b->s3.bucket);
                free((char *)b->s3.prefix);
                free((char *)b->s3.region);
                free((char *)b->s3.credentials_file);
        }
        free(b);
        return NULL;
}

static void family(buf *b, bool om, const char *name, const char *type, const char *help)
{
        const char *n = name;
        char base[128];
        /* OpenMetrics names counters without the _total suffix in TYPE/HELP. */
        if (om && !strcmp(type, "counter")) {
                size_t l = strlen(name);
                if (l > 6 && !strcmp(name + l - 6, "_total") && l - 6 < sizeof(base)) {
                        memcpy(base, name, l - 6);
                        base[l - 6] = 0;
                        n = base;
                }
        }
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", n, help, n, type);
}

void backup_service_metrics(backup_service *b, buf *out, bool om)
{
        if (!b)
                return;
        family(out, om, "vigil_store_write_failures_total", "counter",
               "Store writes refused because the disk is full");
        buf_printf(out, "vigil_store_write_failures_total %llu\n",
                   (unsigned long long)store_write_failures(b->store));
        family(out, om, "vigil_store_commits_total", "counter",
               "Store transactions committed (group commits)");
        buf_printf(out, "vigil_store_commits_total %llu\n",
                   (unsigned long long)store_commits(b->store));
        family(out, om, "vigil_backups_total", "counter", "Backups made, by result");
        buf_printf(out, "vigil_backups_total{result=\"success\"} %llu\n",
                   (unsigned long long)atomic_load(&b->ok));
        buf_printf(out, "vigil_backups_total{result=\"failure\"} %llu\n",
                   (unsigned long long)atomic_load(&b->failed));
        family(out, om, "vigil_backup_hook_failures_total", "counter",
               "Post-backup hook runs that failed or timed out");
        buf_printf(out, "vigil_backup_hook_failures_total %llu\n",
                   (unsigned long long)atomic_load(&b->hook_failed));
        int64_t last = atomic_load(&b->last_ok_us);
        if (last) {
                family(out, om, "vigil_backup_last_success_timestamp_seconds", "gauge",
                       "Unix time of the newest good backup");
                buf_printf(out, "vigil_backup_last_success_timestamp_seconds %.3f\n",
                           (double)last / 1e6);
        }
        if (atomic_load(&b->ok)) {
                family(out, om, "vigil_backup_last_size_bytes", "gauge",
                       "Size of the last backup archive");
                buf_printf(out, "vigil_backup_last_size_bytes %llu\n",
                           (unsigned long long)atomic_load(&b->last_size));
                family(out, om, "vigil_backup_last_duration_seconds", "gauge",
                       "How long the last backup took");
                buf_printf(out, "vigil_backup_last_duration_seconds %.3f\n",
                           (double)atomic_load(&b->last_dur_us) / 1e6);
        }
        if (b->has_s3) {
                family(out, om, "vigil_backup_uploads_total", "counter",
                       "Archives uploaded to the S3 target");
                buf_printf(out, "vigil_backup_uploads_total %llu\n",
                           (unsigned long long)atomic_load(&b->uploads_ok));
                family(out, om, "vigil_backup_upload_failures_total", "counter",
                       "Upload attempts to the S3 target that failed (each retry counts)");
                buf_printf(out, "vigil_backup_upload_failures_total %llu\n",
                           (unsigned long long)atomic_load(&b->upload_fail));
                pthread_mutex_lock(&b->lock);
                size_t pending = b->nqueue;
                pthread_mutex_unlock(&b->lock);
                family(out, om, "vigil_backup_uploads_pending", "gauge",
                       "Archives waiting for their upload to the S3 target");
                buf_printf(out, "vigil_backup_uploads_pending %zu\n", pending);
                family(out, om, "vigil_backup_remote_pruned_total", "counter",
                       "Archives deleted from the S3 target by retention");
                buf_printf(out, "vigil_backup_remote_pruned_total %llu\n",
                           (unsigned long long)atomic_load(&b->remote_pruned));
                int64_t up = atomic_load(&b->last_upload_us);
                if (up) {
                        family(out, om, "vigil_backup_last_upload_timestamp_seconds", "gauge",
                               "Unix time of the last archive found or put in the S3 target");
                        buf_printf(out, "vigil_backup_last_upload_timestamp_seconds %.3f\n",
                                   (double)up / 1e6);
                }
        }
        if (b->keyring) {
                family(out, om, "vigil_encryption_key_age_seconds", "gauge",
                       "Age of the active data encryption key");
                buf_printf(out, "vigil_encryption_key_age_seconds %.0f\n",
                           (double)(time_real_us() - crypto_keyring_active_created(b->keyring)) /
                               1e6);
                family(out, om, "vigil_encryption_keys", "gauge", "Data keys in the keyring");
                buf_printf(out, "vigil_encryption_keys %u\n", crypto_keyring_count(b->keyring));
        }
}
