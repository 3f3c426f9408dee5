/* backup_restore.c — the offline restore: verify the archive, keep the current state in
 * DATA_DIR/pre-restore-STAMP, swap the new state in with renames, and the rollback that puts a
 * kept state back. Holds the data dir's lock so that no vigild runs on it meanwhile. */
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

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "backup-internal.h"
#include "sysio.h"

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
                if (sysio.link(from, to) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(err, errlen, "cannot keep '%s' in '%s': %s", from, keep,
                                 strerror(-r));
                        return r;
                }
        }
        r = store_fsync_dir_of(to);
        if (r < 0)
                snprintf(err, errlen, "cannot make '%s' durable: %s", keep, strerror(-r));
        return r;
}

/* Put the files of src (db and keyring; a missing one is removed from live) into data_dir by
 * rename, which atomically replaces each file. The live WAL/SHM belong to the old file. */
static int swap_in(const char *src, const char *data_dir, bool with_wal, char *err, size_t errlen)
{
        char from[PATH_MAX], to[PATH_MAX];
        int r;

        for (const char *const *sfx = (const char *const[]){"-wal", "-shm", NULL}; *sfx; sfx++) {
                snprintf(to, sizeof(to), "%s/" DB_NAME "%s", data_dir, *sfx);
                if (sysio.unlink(to) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(err, errlen, "cannot remove '%s': %s", to, strerror(-r));
                        return r;
                }
        }
        if (with_wal) {
                snprintf(from, sizeof(from), "%s/" DB_NAME "-wal", src);
                snprintf(to, sizeof(to), "%s/" DB_NAME "-wal", data_dir);
                if (sysio.link(from, to) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(err, errlen, "cannot put '%s' in place: %s", to, strerror(-r));
                        return r;
                }
        }
        snprintf(from, sizeof(from), "%s/" KEYRING_NAME, src);
        snprintf(to, sizeof(to), "%s/" KEYRING_NAME, data_dir);
        if (access(from, F_OK) == 0) {
                char tmp[PATH_MAX];
                snprintf(tmp, sizeof(tmp), "%s.swap", to);
                sysio.unlink(tmp);
                if (sysio.link(from, tmp) < 0 || sysio.rename(tmp, to) < 0) {
                        r = -errno;
                        snprintf(err, errlen, "cannot put '%s' in place: %s", to, strerror(-r));
                        (void)sysio.unlink(tmp); /* a link made before the rename failed */
                        return r;
                }
                /* rename() of two links to one file (a roll back onto a state that was never
                 * swapped out) succeeds and does nothing: the .swap name would stay. */
                (void)unlink(tmp);
        }
        snprintf(from, sizeof(from), "%s/" DB_NAME, src);
        snprintf(to, sizeof(to), "%s/" DB_NAME, data_dir);
        {
                char tmp[PATH_MAX];
                snprintf(tmp, sizeof(tmp), "%s.swap", to);
                sysio.unlink(tmp);
                if (sysio.link(from, tmp) < 0 || sysio.rename(tmp, to) < 0) {
                        r = -errno;
                        snprintf(err, errlen, "cannot put '%s' in place: %s", to, strerror(-r));
                        (void)sysio.unlink(tmp); /* a link made before the rename failed */
                        return r;
                }
                /* rename() of two links to one file (a roll back onto a state that was never
                 * swapped out) succeeds and does nothing: the .swap name would stay. */
                (void)unlink(tmp);
        }
        r = store_fsync_dir_of(to);
        if (r < 0)
                snprintf(err, errlen, "cannot make '%s' durable: %s", to, strerror(-r));
        return r;
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
        backup_utc_stamp(time_real_us(), stamp, sizeof(stamp), false);
        /* 1. verify, unpacked next to the data (same filesystem: renames are atomic) */
        snprintf(stage, sizeof(stage), "%s/.restore-%s-XXXXXX", o->data_dir, stamp);
        if (!mkdtemp(stage)) {
                r = -errno;
                snprintf(err, errlen, "cannot create a directory in '%s': %s", o->data_dir,
                         strerror(-r));
                goto out;
        }
        if (o->encrypted_only && !backup_file_encrypted(o->archive)) {
                snprintf(err, errlen,
                         "archive '%s' is not encrypted but encryption is configured: refused "
                         "(anyone who can write the backup directory could have made it)",
                         o->archive);
                r = -EPERM;
                goto out;
        }
        r = backup_extract(o->archive, o->keyring, stage, &res->info, err, errlen);
        if (r < 0)
                goto out;
        if (o->not_after_us > 0) {
                struct tm tm = {0};
                const char *end = strptime(res->info.created, "%Y-%m-%dT%H:%M:%SZ", &tm);
                if (!end || (int64_t)timegm(&tm) * USEC_PER_SEC > o->not_after_us) {
                        snprintf(err, errlen,
                                 "archive '%s' says it was created at '%s', in the future: "
                                 "refused",
                                 o->archive, res->info.created);
                        r = -EBADMSG;
                        goto out;
                }
        }
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
        backup_rm_rf(stage);
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
        backup_utc_stamp(time_real_us(), stamp, sizeof(stamp), false);
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
