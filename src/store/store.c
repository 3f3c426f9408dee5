/* store.c — the SQLite store: open/check/migrate, one writer thread with group commit, a
 * read-only connection for readers, and VACUUM INTO for online backups. See store.h for the
 * contract and docs/internals/store.md for the design. It is not the backup archive format
 * (backup_*.c) nor the encryption (crypto.c). */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "crypto.h"
#include "sysio.h"
#include "common/macros.h"

#define BUSY_TIMEOUT_MS   5000
#define DEFAULT_BATCH_MAX 64

/* The migration table, in the order of the file; store_open applies them sorted by version. */
static const struct migration {
        int version;        /* PRAGMA user_version once applied */
        const char *module; /* owner, for logs */
        const char *sql;    /* one or more statements */
} migrations[] = {
#define MIGRATION(v, m, s) {v, m, s},
#include "migrations.def"
#undef MIGRATION
};

/* One queued write, on the caller's stack until the writer marks it done. */
typedef struct store_req {
        store_fn fn;            /* NULL for a VACUUM INTO request */
        void *ctx;              /* fn's argument */
        const char *vacuum_dst; /* VACUUM INTO target when fn == NULL */
        int result;             /* fn's result, or the batch's failure */
        bool done;              /* set by the writer under s->lock */
        struct store_req *next; /* queue link */
} store_req;

/* What vigil_seal / vigil_open need: one per store or read-only connection, at a stable
 * address (SQLite keeps the pointer). */
struct seal_ctx {
        crypto_keyring *kr; /* the key; borrowed unless owned */
        bool owned;         /* kr was loaded here (offline reader) and is freed with the ctx */
        bool seal;          /* vigil_seal seals (data_at_rest) */
        bool tried;         /* the offline reader already looked for a key */
        char dir[PATH_MAX]; /* the database's directory: its keyring file */
        pthread_mutex_t mu; /* an offline reader's lazy load; the keyring itself is safe */
};

struct store {
        char *path;                   /* database file; owned */
        struct seal_ctx *sc;          /* vigil_seal / vigil_open; owned */
        int lock_fd;                  /* flock on PATH.lock: one process per database */
        sqlite3 *wdb;                 /* the writer connection: only the writer thread after open */
        sqlite3 *rdb;                 /* read-only connection, under rlock */
        pthread_mutex_t rlock;        /* serialises store_read */
        pthread_mutex_t lock;         /* guards the queue and the flags below */
        pthread_cond_t work;          /* the writer waits for requests */
        pthread_cond_t done;          /* callers wait for their request to be done */
        store_req *head, *tail;       /* FIFO of pending requests */
        unsigned queued;              /* length of the FIFO */
        bool stopping;                /* store_close began: refuse new writes */
        bool writer_started;          /* the thread exists and must be joined */
        pthread_t writer;             /* the writer thread */
        pthread_t writer_id;          /* to refuse store_write from the writer itself; under lock
                                       * (set by the writer as it starts) */
        unsigned batch_max;           /* writes per transaction at most */
        unsigned batch_wait_ms;       /* how long to wait to fill a batch */
        _Atomic uint64_t failures;    /* writes answered -ENOSPC */
        _Atomic uint64_t commits;     /* transactions committed */
        _Atomic uint64_t writes;      /* writes acknowledged */
        _Atomic int fail_next_commit; /* test hook: SQLite code the next COMMIT pretends to get */
};

/* SQLite's message, and for an I/O error the system call that failed and why ("disk I/O error
 * (fsync failed: Input/output error)"): SQLite's own message does not say which. */
static const char *ioerr_op(int ext)
{
        switch (ext) {
        case SQLITE_IOERR_READ:
        case SQLITE_IOERR_SHORT_READ:
                return "read";
        case SQLITE_IOERR_WRITE:
                return "write";
        case SQLITE_IOERR_FSYNC:
                return "fsync";
        case SQLITE_IOERR_DIR_FSYNC:
                return "fsync of the directory";
        case SQLITE_IOERR_TRUNCATE:
                return "ftruncate";
        case SQLITE_IOERR_FSTAT:
                return "fstat";
        case SQLITE_IOERR_DELETE:
                return "unlink";
        case SQLITE_IOERR_CLOSE:
                return "close";
        case SQLITE_IOERR_SHMOPEN:
                return "open of the -shm file";
        case SQLITE_IOERR_SHMSIZE:
                return "ftruncate of the -shm file";
        case SQLITE_IOERR_SHMMAP:
                return "mmap of the -shm file";
        case SQLITE_IOERR_LOCK:
        case SQLITE_IOERR_RDLOCK:
        case SQLITE_IOERR_UNLOCK:
                return "fcntl lock";
        case SQLITE_IOERR_ACCESS:
                return "access";
        case SQLITE_CANTOPEN:
                return "open";
        default:
                return (ext & 0xff) == SQLITE_IOERR ? "I/O" : NULL;
        }
}

static const char *sqlerr(sqlite3 *db)
{
        static _Thread_local char buf[320];
        int e = sqlite3_system_errno(db);
        const char *op = ioerr_op(sqlite3_extended_errcode(db));

        if (!op)
                return sqlite3_errmsg(db);
        snprintf(buf, sizeof(buf), "%s (%s failed: %s)", sqlite3_errmsg(db), op,
                 e ? strerror(e) : "no errno");
        return buf;
}

int store_errno(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

int store_exec(sqlite3 *db, const char *sql)
{
        char *msg = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

        if (rc != SQLITE_OK) {
                int ext = sqlite3_extended_errcode(db);
                /* A rollback of nothing is not worth an error line. */
                log_msg((rc & 0xff) == SQLITE_FULL ? LOG_LVL_WARN : LOG_LVL_ERROR, "store",
                        "failed to execute '%.80s': %s (%d)", sql, msg ? msg : sqlite3_errstr(rc),
                        ext);
                sqlite3_free(msg);
                return store_errno(rc);
        }
        return 0;
}

/* ---- open ---- */

static int fsync_path(const char *path, bool dir)
{
        return sysio_fsync_path(path, dir);
}

int store_fsync_dir_of(const char *path)
{
        return sysio_fsync_dir_of(path);
}

int store_fsync_file(const char *path)
{
        return fsync_path(path, false);
}

static void utc_stamp(char *buf, size_t len)
{
        time_t now = time(NULL);
        struct tm tm;

        gmtime_r(&now, &tm);
        strftime(buf, len, "%Y%m%dT%H%M%S", &tm);
}

/* Move PATH (and its -wal/-shm) to PATH.corrupt-STAMP[-N]; the new name goes to out. */
static int move_aside(const char *path, char *out, size_t outlen)
{
        char stamp[32], dst[PATH_MAX], from[PATH_MAX], to[PATH_MAX];

        utc_stamp(stamp, sizeof(stamp));
        for (int n = 0; n < 100; n++) {
                int w = n == 0 ? snprintf(dst, sizeof(dst), "%s.corrupt-%s", path, stamp)
                               : snprintf(dst, sizeof(dst), "%s.corrupt-%s-%d", path, stamp, n);
                if (w >= (int)sizeof(dst))
                        return -ENAMETOOLONG;
                if (access(dst, F_OK) != 0)
                        break;
        }
        if (rename(path, dst) < 0)
                return -errno;
        /* The WAL belongs to the corrupt file: keep it with it for forensics, never replay it
         * into the fresh database. The shm is a cache. */
        if (snprintf(from, sizeof(from), "%s-wal", path) >= (int)sizeof(from) ||
            snprintf(to, sizeof(to), "%s-wal", dst) >= (int)sizeof(to))
                return -ENAMETOOLONG;
        if (rename(from, to) < 0 && errno != ENOENT)
                return -errno;
        if (snprintf(from, sizeof(from), "%s-shm", path) >= (int)sizeof(from))
                return -ENAMETOOLONG;
        if (unlink(from) < 0 && errno != ENOENT)
                return -errno;
        (void)store_fsync_dir_of(path);
        snprintf(out, outlen, "%s", dst);
        return 0;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        const unsigned char *t = sqlite3_column_text(st, 0);
                        snprintf(out, outlen, "%s", t ? (const char *)t : "");
                        rc = SQLITE_OK;
                } else if (rc == SQLITE_DONE) {
                        out[0] = '\0';
                        rc = SQLITE_OK;
                }
        }
        sqlite3_finalize(st);
        return rc;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
        char buf[64];
        int rc = pragma_text(db, sql, buf, sizeof(buf));

        if (rc == SQLITE_OK)
                *out = atoi(buf);
        return rc;
}

/* Hardening common to both connections (security-reliability.md §4.1). */
static void harden(sqlite3 *db)
{
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
        sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
}

static bool is_sealed(const void *b, int n)
{
        return b && n >= (int)CRYPTO_OVERHEAD && !memcmp(b, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN);
}

static void fn_seal(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
        struct seal_ctx *sc = sqlite3_user_data(cx);
        const void *pt;
        const char *aad;
        uint8_t *blob = NULL;
        size_t len = 0;
        int n;

        (void)argc;
        if (!sc->seal || !sc->kr || sqlite3_value_type(argv[0]) == SQLITE_NULL ||
            (sqlite3_value_type(argv[0]) == SQLITE_BLOB &&
             is_sealed(sqlite3_value_blob(argv[0]), sqlite3_value_bytes(argv[0])))) {
                sqlite3_result_value(cx, argv[0]);
                return;
        }
        pt = sqlite3_value_text(argv[0]);
        n = sqlite3_value_bytes(argv[0]);
        aad = (const char *)sqlite3_value_text(argv[1]);
        if (!pt || !aad) {
                sqlite3_result_error_nomem(cx);
                return;
        }
        if (crypto_seal(sc->kr, pt, (size_t)n, aad, strlen(aad), &blob, &len) < 0) {
                sqlite3_result_error(cx, "cannot seal a value", -1);
                return;
        }
        sqlite3_result_blob64(cx, blob, len, free);
}

/* An offline reader's key: VIGIL_ENCRYPTION_KEY and DIR/keyring (data keys 2..). */
static crypto_keyring *offline_key(struct seal_ctx *sc)
{
        pthread_mutex_lock(&sc->mu);
        if (!sc->kr && !sc->tried) {
                const char *k = getenv("VIGIL_ENCRYPTION_KEY");
                char err[256], path[PATH_MAX + 16];
                crypto_keyring *kr = NULL;
                sc->tried = true;
                if (k && *k && crypto_keyring_new(k, &kr, err, sizeof(err)) == 0) {
                        snprintf(path, sizeof(path), "%s/keyring", sc->dir);
                        int r = crypto_keyring_load(kr, path, err, sizeof(err));
                        if (r < 0 && r != -ENOENT)
                                kr = crypto_keyring_free(kr);
                        sc->kr = kr;
                        sc->owned = kr != NULL;
                }
        }
        pthread_mutex_unlock(&sc->mu);
        return sc->kr;
}

static void fn_open(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
        struct seal_ctx *sc = sqlite3_user_data(cx);
        const void *b = sqlite3_value_blob(argv[0]);
        int n = sqlite3_value_bytes(argv[0]);
        const char *aad;
        crypto_keyring *kr;
        uint8_t *pt = NULL;
        size_t len = 0;

        (void)argc;
        if (sqlite3_value_type(argv[0]) != SQLITE_BLOB || !is_sealed(b, n)) {
                sqlite3_result_value(cx, argv[0]);
                return;
        }
        kr = sc->kr ? sc->kr : offline_key(sc);
        aad = (const char *)sqlite3_value_text(argv[1]);
        if (!kr) {
                sqlite3_result_error(
                    cx, "sealed value: no encryption key (set VIGIL_ENCRYPTION_KEY)", -1);
                return;
        }
        /* value_text may have moved the blob: take it again */
        b = sqlite3_value_blob(argv[0]);
        n = sqlite3_value_bytes(argv[0]);
        if (!aad || crypto_open(kr, b, (size_t)n, aad, strlen(aad), &pt, &len) < 0) {
                sqlite3_result_error(cx, "sealed value: cannot open it with any key", -1);
                return;
        }
        sqlite3_result_text64(cx, (const char *)pt, len, free, SQLITE_UTF8);
}

static struct seal_ctx *seal_ctx_new(crypto_keyring *kr, bool seal, const char *path)
{
        struct seal_ctx *sc = calloc(1, sizeof(*sc));
        const char *slash;

        if (!sc)
                return NULL;
        sc->kr = kr;
        sc->seal = seal && kr;
        slash = strrchr(path, '/');
        if (!slash)
                snprintf(sc->dir, sizeof(sc->dir), ".");
        else
                snprintf(sc->dir, sizeof(sc->dir), "%.*s", slash == path ? 1 : (int)(slash - path),
                         path);
        pthread_mutex_init(&sc->mu, NULL);
        return sc;
}

static void seal_ctx_free(struct seal_ctx *sc)
{
        if (!sc)
                return;
        if (sc->owned)
                crypto_keyring_free(sc->kr);
        pthread_mutex_destroy(&sc->mu);
        free(sc);
}

static int seal_register(sqlite3 *db, struct seal_ctx *sc)
{
        int rc = sqlite3_create_function_v2(db, "vigil_seal", 2, SQLITE_UTF8, sc, fn_seal, NULL,
                                            NULL, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_create_function_v2(db, "vigil_open", 2,
                                                SQLITE_UTF8 | SQLITE_DETERMINISTIC, sc, fn_open,
                                                NULL, NULL, NULL);
        return rc;
}

int store_sql_functions(sqlite3 *db)
{
        static struct seal_ctx none = {.tried = true, .mu = PTHREAD_MUTEX_INITIALIZER};
        return seal_register(db, &none);
}

/* Result of one attempt at opening the file. */
enum open_result { OPEN_OK, OPEN_CORRUPT, OPEN_FAILED };

static enum open_result open_writer(const char *path, bool check, sqlite3 **ret, int *err,
                                    char *why, size_t whylen)
{
        sqlite3 *db = NULL;
        char mode[32];
        int rc;

        /* Create the file ourselves so that it (and the -wal/-shm SQLite derives from it) is 0600,
         * and close our descriptor BEFORE SQLite opens it: closing any descriptor of the database
         * file drops every POSIX lock this process holds on it, SQLite's included ("How To Corrupt
         * An SQLite Database File" §2.2). Another process closing its connection would then take
         * the exclusive lock, checkpoint and delete the WAL that we still write to, and every
         * commit after that is lost at the next crash. */
        int fd = sysio.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
                *err = -errno;
                snprintf(why, whylen, "open failed: %s", strerror(errno));
                return OPEN_FAILED;
        }
        close(fd);

        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        if (rc != SQLITE_OK) {
                *err = store_errno(rc);
                snprintf(why, whylen, "%s", db ? sqlerr(db) : sqlite3_errstr(rc));
                sqlite3_close(db);
                return OPEN_FAILED;
        }
        /* SQLite falls back to a read-only descriptor when its open for writing fails (EIO,
         * ENOMEM, …): the store would start and refuse every write until the next restart.
         * We created the file read-write just above, so this is a failure to open, said now. */
        if (sqlite3_db_readonly(db, "main") == 1) {
                int e = sqlite3_system_errno(db);
                *err = -EIO;
                snprintf(why, whylen, "SQLite opened it read-only (read-write open failed: %s)",
                         e ? strerror(e) : "SQLite kept no errno");
                sqlite3_close(db);
                return OPEN_FAILED;
        }
        harden(db);
        /* The first read of the header: a file that is not a database fails here. */
        rc = pragma_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
        if (rc == SQLITE_OK && strcmp(mode, "wal") != 0) {
                snprintf(why, whylen, "cannot enable WAL (journal_mode is '%s')", mode);
                *err = -EIO;
                sqlite3_close(db);
                return OPEN_FAILED;
        }
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL,
                                  NULL);
        if (rc == SQLITE_OK && check) {
                char res[256];
                rc = pragma_text(db, "PRAGMA quick_check", res, sizeof(res));
                if (rc == SQLITE_OK && strcmp(res, "ok") != 0) {
                        for (char *c = res; *c; c++)
                                if (*c == '\n')
                                        *c = ' ';
                        snprintf(why, whylen, "quick_check: %s", res);
                        sqlite3_close(db);
                        *err = -EBADMSG;
                        return OPEN_CORRUPT;
                }
        }
        if (rc != SQLITE_OK) {
                snprintf(why, whylen, "%s", sqlerr(db));
                *err = store_errno(rc);
                sqlite3_close(db);
                return *err == -EBADMSG ? OPEN_CORRUPT : OPEN_FAILED;
        }
        *ret = db;
        return OPEN_OK;
}

static int cmp_migration(const void *a, const void *b)
{
        const struct migration *x = a, *y = b;
        return (x->version > y->version) - (x->version < y->version);
}

static int migrate(sqlite3 *db, int *before, int *version, char *why, size_t whylen)
{
        struct migration sorted[ARRAY_SIZE(migrations)];
        int cur = 0, rc;

        /* Modules own sparse version ranges and append lines in any order: apply by version. */
        memcpy(sorted, migrations, sizeof(sorted));
        qsort(sorted, ARRAY_SIZE(sorted), sizeof(sorted[0]), cmp_migration);
        for (size_t i = 1; i < ARRAY_SIZE(sorted); i++)
                if (sorted[i].version == sorted[i - 1].version) {
                        snprintf(why, whylen, "migration version %d defined twice",
                                 sorted[i].version);
                        return -EINVAL;
                }

        rc = pragma_int(db, "PRAGMA user_version", &cur);
        if (rc != SQLITE_OK) {
                snprintf(why, whylen, "cannot read user_version: %s", sqlerr(db));
                return store_errno(rc);
        }
        *before = cur;
        int newest = ARRAY_SIZE(sorted) ? sorted[ARRAY_SIZE(sorted) - 1].version : 0;
        if (cur > newest) {
                snprintf(why, whylen,
                         "database schema version %d is newer than this vigild knows (%d): "
                         "refusing to open it (downgrade)",
                         cur, newest);
                return -EPROTO;
        }
        for (size_t i = 0; i < ARRAY_SIZE(sorted); i++) {
                const struct migration *m = &sorted[i];
                char *msg = NULL, pragma[64];

                if (m->version <= cur)
                        continue;
                snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", m->version);
                rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
                if (rc == SQLITE_OK)
                        rc = sqlite3_exec(db, m->sql, NULL, NULL, &msg);
                if (rc == SQLITE_OK)
                        rc = sqlite3_exec(db, pragma, NULL, NULL, &msg);
                if (rc == SQLITE_OK)
                        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
                if (rc != SQLITE_OK) {
                        snprintf(why, whylen, "migration %d (%s) failed: %s", m->version, m->module,
                                 msg ? msg : sqlite3_errstr(rc));
                        sqlite3_free(msg);
                        if (!sqlite3_get_autocommit(db))
                                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                        return store_errno(rc);
                }
                cur = m->version;
        }
        *version = cur;
        return 0;
}

static void *writer_main(void *arg);

/* SQLite's page cache starts each connection with a bulk allocation of 20 pages (~85 KiB,
 * all of it resident) before it has read one page; with the bulk off, pages are allocated as
 * they are read, up to the same cache_size. Process-wide, so set once, before SQLite
 * initialises; if something initialised it first, the call is refused and nothing changes. */
static void sqlite_memory_config(void)
{
        int rc = sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);

        if (rc != SQLITE_OK)
                log_debug("store", "SQLite page cache left as it is: %s", sqlite3_errstr(rc));
}

int store_open(const store_options *opt, store **ret, store_open_info *info, char *err,
               size_t errlen)
{
        static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;
        store_open_info local = {0};
        char why[512] = "";
        sqlite3 *wdb = NULL;
        int r = 0;
        struct stat st;

        if (!opt || !opt->path || !opt->path[0] || !ret) {
                snprintf(err, errlen, "cannot open store: no path");
                return -EINVAL;
        }
        pthread_once(&sqlite_once, sqlite_memory_config);
        /* A shared flock says "a vigild uses this database": a restore (which takes it
         * exclusively) refuses to swap files under us. Shared, because a zero-downtime takeover
         * runs two vigilds on one data dir for a moment; SQLite serialises their writes. */
        char lockpath[PATH_MAX];
        if (snprintf(lockpath, sizeof(lockpath), "%s.lock", opt->path) >= (int)sizeof(lockpath)) {
                snprintf(err, errlen, "cannot open store '%s': path too long", opt->path);
                return -ENAMETOOLONG;
        }
        _cleanup_close_ int lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot open store '%s': cannot create '%s': %s", opt->path,
                         lockpath, strerror(-r));
                return r;
        }
        if (flock(lock_fd, LOCK_SH | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                snprintf(err, errlen,
                         "cannot open store '%s': a restore is running on it (it holds '%s')",
                         opt->path, lockpath);
                return r;
        }
        local.created = stat(opt->path, &st) < 0 || st.st_size == 0;

        enum open_result res =
            open_writer(opt->path, opt->integrity_check, &wdb, &r, why, sizeof(why));
        if (res == OPEN_CORRUPT) {
                /* SQLite reports a read that failed (EIO) inside a b-tree walk as corruption
                 * too. Moving a good database aside for that would start empty: every
                 * revocation and audit row "lost". Damage is there again on a second look; a
                 * passing I/O error is not. */
                log_warn("store", "database '%s' looks corrupt (%s): checking it again", opt->path,
                         why);
                res = open_writer(opt->path, opt->integrity_check, &wdb, &r, why, sizeof(why));
                if (res == OPEN_OK)
                        log_warn("store",
                                 "database '%s' is whole on a second look: the first was an I/O "
                                 "error, not damage; kept",
                                 opt->path);
        }
        if (res == OPEN_CORRUPT) {
                log_error("store", "database '%s' is corrupt (%s): moving it aside", opt->path,
                          why);
                r = move_aside(opt->path, local.corrupt_path, sizeof(local.corrupt_path));
                if (r < 0) {
                        snprintf(err, errlen, "cannot move corrupt store '%s' aside: %s", opt->path,
                                 strerror(-r));
                        return r;
                }
                local.moved_corrupt = true;
                local.created = true;
                res = open_writer(opt->path, opt->integrity_check, &wdb, &r, why, sizeof(why));
        }
        if (res != OPEN_OK) {
                snprintf(err, errlen, "cannot open store '%s': %s", opt->path, why);
                return r < 0 ? r : -EIO;
        }
        r = migrate(wdb, &local.previous_version, &local.schema_version, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "cannot open store '%s': %s", opt->path, why);
                sqlite3_close(wdb);
                return r;
        }
        if (local.created)
                (void)store_fsync_dir_of(opt->path);

        store *s = calloc(1, sizeof(*s));
        if (!s || !(s->path = strdup(opt->path))) {
                free(s);
                sqlite3_close(wdb);
                snprintf(err, errlen, "cannot open store '%s': out of memory", opt->path);
                return -ENOMEM;
        }
        s->wdb = wdb;
        s->lock_fd = TAKE_FD(lock_fd);
        s->sc = seal_ctx_new(opt->keyring, opt->seal, opt->path);
        if (!s->sc || seal_register(wdb, s->sc) != SQLITE_OK) {
                seal_ctx_free(s->sc);
                free(s->path);
                free(s);
                sqlite3_close(wdb);
                snprintf(err, errlen, "cannot open store '%s': out of memory", opt->path);
                return -ENOMEM;
        }
        s->batch_max = opt->batch_max ? opt->batch_max : DEFAULT_BATCH_MAX;
        s->batch_wait_ms = opt->batch_wait_ms;
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->rlock, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->done, NULL);

        int rc = sqlite3_open_v2(opt->path, &s->rdb, SQLITE_OPEN_READONLY, NULL);
        if (rc == SQLITE_OK) {
                harden(s->rdb);
                rc = seal_register(s->rdb, s->sc);
        }
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(s->rdb, "PRAGMA query_only=ON", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                snprintf(err, errlen, "cannot open store '%s' for reading: %s", opt->path,
                         s->rdb ? sqlerr(s->rdb) : sqlite3_errstr(rc));
                r = store_errno(rc);
                store_close(s);
                return r;
        }
        r = -pthread_create(&s->writer, NULL, writer_main, s);
        if (r < 0) {
                snprintf(err, errlen, "cannot start the store writer: %s", strerror(-r));
                store_close(s);
                return r;
        }
        s->writer_started = true;
        if (info)
                *info = local;
        *ret = s;
        return 0;
}

/* ---- the writer ---- */

static void run_vacuum(store *s, store_req *q)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->wdb, "VACUUM INTO ?1", -1, &st, NULL);

        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 1, q->vacuum_dst, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE && rc != SQLITE_OK) {
                log_error("store", "failed to copy the store to '%s': %s", q->vacuum_dst,
                          sqlerr(s->wdb));
                q->result = store_errno(rc);
                if (q->result == -EBUSY || q->result == -EEXIST)
                        q->result = -EIO;
                /* VACUUM INTO leaves a partial file behind on failure. */
                (void)unlink(q->vacuum_dst);
                return;
        }
        /* VACUUM INTO does not fsync its output (security-reliability.md §4.1). */
        q->result = store_fsync_file(q->vacuum_dst);
        if (q->result == 0)
                q->result = store_fsync_dir_of(q->vacuum_dst);
}

/* Run a batch of writes in one transaction; each gets its result in q->result. */
static void run_batch(store *s, store_req **batch, unsigned n)
{
        sqlite3 *db = s->wdb;
        int rc, fail = 0;

        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                fail = store_errno(rc);
                log_warn("store", "failed to begin a write transaction: %s", sqlerr(db));
                goto out;
        }
        for (unsigned i = 0; i < n; i++) {
                store_req *q = batch[i];

                rc = sqlite3_exec(db, "SAVEPOINT w", NULL, NULL, NULL);
                if (rc != SQLITE_OK) {
                        fail = store_errno(rc);
                        break;
                }
                q->result = q->fn(db, q->ctx);
                if (q->result > 0)
                        q->result = 0; /* >= 0 is success; the contract returns 0 */
                if (q->result < 0 && (sqlite3_extended_errcode(db) & 0xff) == SQLITE_IOERR)
                        log_error("store", "a write to '%s' failed: %s", s->path, sqlerr(db));
                if (sqlite3_get_autocommit(db)) {
                        /* SQLITE_FULL/IOERR/NOMEM inside fn may roll back the whole transaction:
                         * every write of this batch is lost, say so to each of them. */
                        fail = q->result < 0 ? q->result : -EIO;
                        log_warn("store", "a write aborted its batch of %u: %s", n,
                                 strerror(-fail));
                        goto out;
                }
                if (q->result == 0)
                        rc = sqlite3_exec(db, "RELEASE w", NULL, NULL, NULL);
                else
                        rc = sqlite3_exec(db, "ROLLBACK TO w; RELEASE w", NULL, NULL, NULL);
                if (rc != SQLITE_OK) {
                        fail = store_errno(rc);
                        break;
                }
        }
        if (fail == 0) {
                int injected = atomic_exchange(&s->fail_next_commit, 0);
                if (injected) {
                        rc = injected;
                        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                } else {
                        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
                }
                if (rc != SQLITE_OK) {
                        fail = store_errno(rc);
                        log_msg(fail == -ENOSPC ? LOG_LVL_WARN : LOG_LVL_ERROR, "store",
                                "failed to commit %u writes to '%s': %s", n, s->path,
                                injected ? sqlite3_errstr(rc) : sqlerr(db));
                }
        }
out:
        if (fail && !sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (!fail)
                atomic_fetch_add(&s->commits, 1);
        for (unsigned i = 0; i < n; i++) {
                store_req *q = batch[i];
                if (fail && q->result == 0)
                        q->result = fail;
                else if (fail && q->result < 0 && fail == -ENOSPC)
                        q->result = -ENOSPC;
                if (q->result == -ENOSPC)
                        atomic_fetch_add(&s->failures, 1);
                else if (q->result == 0)
                        atomic_fetch_add(&s->writes, 1);
        }
}

static void *writer_main(void *arg)
{
        store *s = arg;
        store_req *batch[1024];
        unsigned max = MIN(s->batch_max, (unsigned)ARRAY_SIZE(batch));

        pthread_mutex_lock(&s->lock);
        s->writer_id = pthread_self(); /* under lock: submit() reads it from other threads */
        for (;;) {
                while (!s->head && !s->stopping)
                        pthread_cond_wait(&s->work, &s->lock);
                if (!s->head)
                        break; /* stopping and drained */
                if (s->batch_wait_ms && s->queued < max && !s->stopping && s->head->fn) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += (long)s->batch_wait_ms * 1000000L;
                        ts.tv_sec += ts.tv_nsec / 1000000000L;
                        ts.tv_nsec %= 1000000000L;
                        while (s->queued < max && !s->stopping)
                                if (pthread_cond_timedwait(&s->work, &s->lock, &ts) == ETIMEDOUT)
                                        break;
                }
                /* A VACUUM INTO runs alone, between batches; writes stop at the next one. */
                unsigned n = 0;
                bool vacuum = s->head->fn == NULL;
                while (s->head && n < (vacuum ? 1u : max) && (vacuum || s->head->fn)) {
                        batch[n++] = s->head;
                        s->head = s->head->next;
                        s->queued--;
                }
                if (!s->head)
                        s->tail = NULL;
                pthread_mutex_unlock(&s->lock);

                if (vacuum)
                        run_vacuum(s, batch[0]);
                else
                        run_batch(s, batch, n);

                pthread_mutex_lock(&s->lock);
                for (unsigned i = 0; i < n; i++)
                        batch[i]->done = true;
                pthread_cond_broadcast(&s->done);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static int submit(store *s, store_req *q)
{
        if (!s)
                return -EINVAL;
        pthread_mutex_lock(&s->lock);
        if (s->writer_started && pthread_equal(pthread_self(), s->writer_id)) {
                pthread_mutex_unlock(&s->lock);
                return -EDEADLK;
        }
        if (s->stopping || !s->writer_started) {
                pthread_mutex_unlock(&s->lock);
                return -ESHUTDOWN;
        }
        q->next = NULL;
        q->done = false;
        if (s->tail)
                s->tail->next = q;
        else
                s->head = q;
        s->tail = q;
        s->queued++;
        pthread_cond_signal(&s->work);
        while (!q->done)
                pthread_cond_wait(&s->done, &s->lock);
        pthread_mutex_unlock(&s->lock);
        return q->result;
}

int store_write(store *s, store_fn fn, void *ctx)
{
        store_req q = {.fn = fn, .ctx = ctx};

        if (!fn)
                return -EINVAL;
        return submit(s, &q);
}

int store_vacuum_into(store *s, const char *dest)
{
        store_req q = {.vacuum_dst = dest};

        if (!dest || !dest[0])
                return -EINVAL;
        if (access(dest, F_OK) == 0)
                return -EEXIST;
        return submit(s, &q);
}

int store_read(store *s, store_fn fn, void *ctx)
{
        int r;

        if (!s || !fn)
                return -EINVAL;
        pthread_mutex_lock(&s->rlock);
        if (!s->rdb) {
                pthread_mutex_unlock(&s->rlock);
                return -ESHUTDOWN;
        }
        r = fn(s->rdb, ctx);
        /* A reader must not leave a transaction open: it would pin the WAL forever. */
        if (!sqlite3_get_autocommit(s->rdb))
                sqlite3_exec(s->rdb, "ROLLBACK", NULL, NULL, NULL);
        pthread_mutex_unlock(&s->rlock);
        return r;
}

store *store_close(store *s)
{
        if (!s)
                return NULL;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
        if (s->writer_started)
                pthread_join(s->writer, NULL);

        pthread_mutex_lock(&s->rlock);
        sqlite3_close(s->rdb);
        s->rdb = NULL;
        pthread_mutex_unlock(&s->rlock);
        if (s->wdb) {
                /* Fold the WAL into the database so the file alone is the state. */
                sqlite3_wal_checkpoint_v2(s->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
                if (sqlite3_close(s->wdb) != SQLITE_OK)
                        log_warn("store", "failed to close '%s' cleanly: %s", s->path,
                                 sqlerr(s->wdb));
        }
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->rlock);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->done);
        if (s->lock_fd >= 0)
                close(s->lock_fd); /* releases the flock */
        seal_ctx_free(s->sc);
        free(s->path);
        free(s);
        return NULL;
}

const char *store_path(const store *s)
{
        return s ? s->path : NULL;
}

uint64_t store_write_failures(const store *s)
{
        return s ? atomic_load(&((store *)s)->failures) : 0;
}

uint64_t store_commits(const store *s)
{
        return s ? atomic_load(&((store *)s)->commits) : 0;
}

uint64_t store_writes(const store *s)
{
        return s ? atomic_load(&((store *)s)->writes) : 0;
}

void store_test_fail_next_commit(store *s, int sqlite_rc)
{
        if (s)
                atomic_store(&s->fail_next_commit, sqlite_rc);
}

/* "file:" URI of path with every byte outside the unreserved set percent-encoded. */
static int file_uri(const char *path, const char *query, char *out, size_t outlen)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n = 0;

        if (outlen < 6)
                return -ENAMETOOLONG;
        memcpy(out, "file:", 5);
        n = 5;
        for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
                bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                             (*p >= '0' && *p <= '9') || strchr("/-._~", *p);
                if (n + 4 >= outlen)
                        return -ENAMETOOLONG;
                if (plain) {
                        out[n++] = (char)*p;
                } else {
                        out[n++] = '%';
                        out[n++] = hex[*p >> 4];
                        out[n++] = hex[*p & 15];
                }
        }
        if (snprintf(out + n, outlen - n, "?%s", query) >= (int)(outlen - n))
                return -ENAMETOOLONG;
        return 0;
}

static bool sidecar_exists(const char *path, const char *suffix)
{
        char p[PATH_MAX];

        return snprintf(p, sizeof(p), "%s%s", path, suffix) < (int)sizeof(p) &&
               access(p, F_OK) == 0;
}

static int copy_file(const char *from, const char *to)
{
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int out = -1;
        char buf[65536];
        ssize_t n;

        if (in < 0)
                return -errno;
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                for (ssize_t off = 0; off < n;) {
                        ssize_t w = write(out, buf + off, (size_t)(n - off));
                        if (w < 0)
                                return -errno;
                        off += w;
                }
        return n < 0 ? -errno : 0;
}

static void remove_copy(store_ro *ro)
{
        char p[PATH_MAX + 16];

        if (!ro->copy_dir[0])
                return;
        for (const char *const *sfx = (const char *const[]){"", "-wal", "-shm", NULL}; *sfx;
             sfx++) {
                snprintf(p, sizeof(p), "%s/db%s", ro->copy_dir, *sfx);
                (void)unlink(p);
        }
        (void)rmdir(ro->copy_dir);
        ro->copy_dir[0] = '\0';
}

/* A -wal without its -shm: nobody runs on it, so the pair is stable; copy it and open the copy. */
static int open_private_copy(const char *path, store_ro *ro, char *err, size_t errlen)
{
        const char *base = getenv("TMPDIR");
        char from[PATH_MAX], to[PATH_MAX + 16];
        int r;

        snprintf(ro->copy_dir, sizeof(ro->copy_dir), "%s/vigil-ro-XXXXXX",
                 base && *base ? base : "/tmp");
        if (!mkdtemp(ro->copy_dir)) {
                r = -errno;
                ro->copy_dir[0] = '\0';
                snprintf(err, errlen, "cannot open '%s' read-only: no temporary directory: %s",
                         path, strerror(-r));
                return r;
        }
        for (const char *const *sfx = (const char *const[]){"", "-wal", NULL}; *sfx; sfx++) {
                snprintf(from, sizeof(from), "%s%s", path, *sfx);
                snprintf(to, sizeof(to), "%s/db%s", ro->copy_dir, *sfx);
                r = copy_file(from, to);
                if (r < 0) {
                        snprintf(err, errlen, "cannot open '%s' read-only: cannot copy '%s': %s",
                                 path, from, strerror(-r));
                        remove_copy(ro);
                        return r;
                }
        }
        snprintf(to, sizeof(to), "%s/db", ro->copy_dir);
        r = sqlite3_open_v2(to, &ro->db, SQLITE_OPEN_READWRITE, NULL);
        if (r != SQLITE_OK) {
                snprintf(err, errlen, "cannot open a copy of '%s': %s", path,
                         ro->db ? sqlerr(ro->db) : sqlite3_errstr(r));
                sqlite3_close(ro->db);
                ro->db = NULL;
                remove_copy(ro);
                return store_errno(r);
        }
        return 0;
}

int store_open_ro(const char *path, store_ro *ro, char *err, size_t errlen)
{
        char uri[PATH_MAX * 3 + 64];
        bool wal = sidecar_exists(path, "-wal"), shm = sidecar_exists(path, "-shm");
        int rc;

        memset(ro, 0, sizeof(*ro));
        if (access(path, R_OK) != 0) {
                rc = -errno;
                snprintf(err, errlen, "cannot open '%s' read-only: %s", path, strerror(-rc));
                return rc;
        }
        if (wal && !shm)
                rc = open_private_copy(path, ro, err, errlen);
        else if (file_uri(path, wal ? "mode=ro&readonly_shm=1" : "immutable=1", uri, sizeof(uri)) <
                 0) {
                snprintf(err, errlen, "cannot open '%s' read-only: path too long", path);
                return -ENAMETOOLONG;
        } else {
                rc = sqlite3_open_v2(uri, &ro->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
                if (rc != SQLITE_OK) {
                        snprintf(err, errlen, "cannot open '%s' read-only: %s", path,
                                 ro->db ? sqlerr(ro->db) : sqlite3_errstr(rc));
                        sqlite3_close(ro->db);
                        ro->db = NULL;
                        return store_errno(rc);
                }
        }
        if (rc < 0)
                return rc;
        harden(ro->db);
        sqlite3_exec(ro->db, "PRAGMA query_only=ON", NULL, NULL, NULL);
        struct seal_ctx *sc = seal_ctx_new(NULL, false, path);
        if (!sc || seal_register(ro->db, sc) != SQLITE_OK) {
                seal_ctx_free(sc);
                store_close_ro(ro);
                snprintf(err, errlen, "cannot open '%s' read-only: out of memory", path);
                return -ENOMEM;
        }
        ro->seal = sc;
        return 0;
}

void store_close_ro(store_ro *ro)
{
        if (!ro)
                return;
        sqlite3_close(ro->db);
        ro->db = NULL;
        seal_ctx_free(ro->seal);
        ro->seal = NULL;
        remove_copy(ro);
}

int store_check_file(const char *path, bool full, char *err, size_t errlen)
{
        store_ro ro;
        char res[512] = "";
        int rc, r = store_open_ro(path, &ro, err, errlen);

        if (r < 0)
                return r == -EIO || r == -ENOENT || r == -EACCES ? -EIO : -EBADMSG;
        rc = pragma_text(ro.db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check", res,
                         sizeof(res));
        if (rc != SQLITE_OK) {
                snprintf(err, errlen, "cannot check database '%s': %s", path, sqlerr(ro.db));
                store_close_ro(&ro);
                return store_errno(rc) == -EIO ? -EIO : -EBADMSG;
        }
        store_close_ro(&ro);
        if (strcmp(res, "ok") != 0) {
                snprintf(err, errlen, "database '%s' failed %s: %s", path,
                         full ? "integrity_check" : "quick_check", res);
                return -EBADMSG;
        }
        return 0;
}

/* One schema object: what sqlite_schema says about it. */
struct schema_obj {
        char *type; /* table, index, trigger, view */
        char *name;
        char *sql; /* "" for automatic indexes */
};

static void schema_free(struct schema_obj *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].type);
                free(v[i].name);
                free(v[i].sql);
        }
        free(v);
}

/* Every object of db's schema, sorted by type and name. Bounded: a hostile file cannot make us
 * read more than SCHEMA_MAX objects. */
#define SCHEMA_MAX 4096
static int schema_read(sqlite3 *db, struct schema_obj **ret, size_t *n)
{
        sqlite3_stmt *st = NULL;
        struct schema_obj *v = calloc(SCHEMA_MAX, sizeof(*v));
        size_t cnt = 0;
        int rc;

        if (!v)
                return -ENOMEM;
        rc = sqlite3_prepare_v2(db,
                                "SELECT type, name, coalesce(sql, '') FROM sqlite_schema "
                                "ORDER BY type, name",
                                -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (cnt >= SCHEMA_MAX) {
                        rc = SQLITE_TOOBIG;
                        break;
                }
                v[cnt].type = strdup((const char *)sqlite3_column_text(st, 0));
                v[cnt].name = strdup((const char *)sqlite3_column_text(st, 1));
                v[cnt].sql = strdup((const char *)sqlite3_column_text(st, 2));
                if (!v[cnt].type || !v[cnt].name || !v[cnt].sql) {
                        cnt++;
                        rc = SQLITE_NOMEM;
                        break;
                }
                cnt++;
                rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                schema_free(v, cnt);
                return rc == SQLITE_TOOBIG ? -E2BIG : store_errno(rc);
        }
        *ret = v;
        *n = cnt;
        return 0;
}

/* A fresh in-memory database with the migrations up to version applied. */
static int schema_reference(int version, sqlite3 **ret, char *err, size_t errlen)
{
        struct migration sorted[ARRAY_SIZE(migrations)];
        sqlite3 *db = NULL;

        memcpy(sorted, migrations, sizeof(sorted));
        qsort(sorted, ARRAY_SIZE(sorted), sizeof(sorted[0]), cmp_migration);
        if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) !=
            SQLITE_OK) {
                sqlite3_close(db);
                return -ENOMEM;
        }
        harden(db);
        for (size_t i = 0; i < ARRAY_SIZE(sorted) && sorted[i].version <= version; i++) {
                char *msg = NULL;
                if (sqlite3_exec(db, sorted[i].sql, NULL, NULL, &msg) != SQLITE_OK) {
                        snprintf(err, errlen, "migration %d: %s", sorted[i].version,
                                 msg ? msg : "failed");
                        sqlite3_free(msg);
                        sqlite3_close(db);
                        return -EINVAL;
                }
        }
        *ret = db;
        return 0;
}

int store_check_schema(const char *path, char *err, size_t errlen)
{
        struct schema_obj *have = NULL, *want = NULL;
        size_t nhave = 0, nwant = 0, i = 0, j = 0;
        sqlite3 *ref = NULL;
        store_ro ro;
        int version = 0, newest = 0, r;

        err[0] = '\0';
        for (size_t k = 0; k < ARRAY_SIZE(migrations); k++)
                if (migrations[k].version > newest)
                        newest = migrations[k].version;
        r = store_open_ro(path, &ro, err, errlen);
        if (r < 0)
                return r;
        /* Nothing in the file runs while we look: no trigger, no view body is evaluated. */
        sqlite3_db_config(ro.db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        r = pragma_int(ro.db, "PRAGMA user_version", &version) == SQLITE_OK ? 0 : -EBADMSG;
        if (r == 0 && version > newest) {
                snprintf(err, errlen,
                         "database schema version %d is newer than this vigil knows (%d)", version,
                         newest);
                r = -EPROTO;
        }
        if (r == 0)
                r = schema_read(ro.db, &have, &nhave);
        if (r == 0)
                r = schema_reference(version, &ref, err, errlen);
        if (r == 0)
                r = schema_read(ref, &want, &nwant);
        if (r < 0 && !err[0])
                snprintf(err, errlen, "cannot read the schema of '%s': %s", path, strerror(-r));
        /* Both lists are sorted by (type, name): walk them together. */
        while (r == 0 && (i < nhave || j < nwant)) {
                /* The planner's statistics (ANALYZE, PRAGMA optimize) hold no code. */
                if (i < nhave && !strcmp(have[i].type, "table") &&
                    (!strcmp(have[i].name, "sqlite_stat1") ||
                     !strcmp(have[i].name, "sqlite_stat4"))) {
                        i++;
                        continue;
                }
                int c = i == nhave ? 1 : j == nwant ? -1 : strcmp(have[i].type, want[j].type);
                if (c == 0)
                        c = strcmp(have[i].name, want[j].name);
                if (c < 0) {
                        snprintf(err, errlen, "%s '%.100s' is not part of Vigil's schema (v%d)",
                                 have[i].type, have[i].name, version);
                        r = -EBADMSG;
                } else if (c > 0) {
                        snprintf(err, errlen, "%s '%.100s' of Vigil's schema (v%d) is missing",
                                 want[j].type, want[j].name, version);
                        r = -EBADMSG;
                } else if (strcmp(have[i].sql, want[j].sql) != 0) {
                        snprintf(err, errlen,
                                 "%s '%.100s' differs from Vigil's schema (v%d): '%.200s'",
                                 have[i].type, have[i].name, version, have[i].sql);
                        r = -EBADMSG;
                } else {
                        i++;
                        j++;
                }
        }
        schema_free(have, nhave);
        schema_free(want, nwant);
        sqlite3_close(ref);
        store_close_ro(&ro);
        return r;
}
