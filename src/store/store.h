/* store.h — Vigil's durable state: one SQLite database in the data directory (WAL mode,
 * synchronous=FULL), schema migrations keyed on PRAGMA user_version, and ONE writer thread that
 * batches writes from every module into transactions (group commit).
 *
 * Contract:
 *  - store_write() runs the caller's function on the writer thread inside a transaction shared with
 *    other pending writes, and returns only after that transaction has COMMITTED (fsync'd): a 0
 *    return is an acknowledged, durable write. If fn fails, only fn's own changes are rolled back
 *    (a SAVEPOINT per write); other writers in the batch are unaffected.
 *  - store_read() runs fn on a read-only connection (WAL readers never block the writer). Any thread.
 *  - Disk full: writes answer -ENOSPC (callers map it to HTTP 503); reads go on; writes work again
 *    by themselves when space returns.
 *  - A corrupt database at open is moved aside as NAME.corrupt-YYYYmmddTHHMMSS and a fresh one is
 *    created (the caller decides whether to restore a backup first: see store_options).
 *  - Never pass SQL text built from client input; bind parameters.
 * Modules add their tables by appending to migrations.def; never edit an applied migration. */
#ifndef VIGIL_STORE_H
#define VIGIL_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

typedef struct store store;

struct crypto_keyring;

/* Sealed columns (sealed.def). Every connection the store opens has two SQL functions:
 *   vigil_seal(value, 'table.column')  with store_options.seal and a keyring: the value as an
 *                                      AES-256-GCM blob (crypto.h, AAD "table.column"); else
 *                                      the value unchanged (NULL stays NULL);
 *   vigil_open(value, 'table.column')  a sealed blob → its text; anything else unchanged. A
 *                                      sealed value without the key is an SQL error ("sealed
 *                                      value: no encryption key").
 * A module writes vigil_seal(?, 'audit_log.detail') where it binds a sensitive value and reads
 * vigil_open(detail, 'audit_log.detail'); adding the column to sealed.def makes `vigil keys
 * rotate` re-encrypt it. Offline readers (store_open_ro) take the key from the environment
 * variable VIGIL_ENCRYPTION_KEY and the keyring file beside the database, at the first sealed
 * value they meet. */
/* Give a connection the store did not open (a test's in-memory database) vigil_seal and
 * vigil_open without a key: values pass through, a sealed one is an SQL error. SQLITE_OK or an
 * SQLite code. */
int store_sql_functions(sqlite3 *db);

typedef struct store_options {
        const char *path;               /* database file, e.g. DATA_DIR/vigil.db */
        struct crypto_keyring *keyring; /* borrowed, outlives the store; NULL = no key */
        bool seal;                      /* security.encryption.data_at_rest: seal new values */
        bool integrity_check;   /* run PRAGMA quick_check at open (default on in the daemon) */
        unsigned batch_max;     /* writes per transaction at most (0 = 64) */
        unsigned batch_wait_ms; /* how long the writer may wait to fill a batch (0 = none) */
} store_options;

typedef struct store_open_info {
        bool created;            /* a new database was created */
        bool moved_corrupt;      /* a corrupt database was moved aside */
        char corrupt_path[4096]; /* where it went, when moved_corrupt */
        int schema_version;      /* user_version after migrations */
        int previous_version;    /* user_version before them (added; 0 = new database) */
} store_open_info;

/* Open (or create) the database, check it, apply migrations, start the writer thread.
 * Returns 0, or -errno with a reason in err ("cannot open store '/var/lib/vigil/vigil.db': …").
 * info may be NULL. Caller owns *ret. */
int store_open(const store_options *opt, store **ret, store_open_info *info, char *err,
               size_t errlen);
/* Drain pending writes, stop the writer, checkpoint the WAL and close. NULL ok; returns NULL. */
store *store_close(store *s);

/* fn runs on the writer thread; return 0 to keep its changes or -errno to roll them back (that
 * value is returned to the caller). Returns -ENOSPC on disk full, -EIO on other SQLite failures,
 * -ESHUTDOWN after store_close began. Blocks until committed. Any thread except the writer. */
typedef int (*store_fn)(sqlite3 *db, void *ctx);
int store_write(store *s, store_fn fn, void *ctx);
/* fn runs on a read-only connection under a lock; returns fn's result. Any thread. */
int store_read(store *s, store_fn fn, void *ctx);

/* Helpers for fn bodies: prepare+bind+step of simple statements. */
/* Execute sql with no parameters (e.g. DDL); -EIO with the SQLite message logged (the error goes
 * through store_errno, so a full disk still answers -ENOSPC). */
int store_exec(sqlite3 *db, const char *sql);
/* Map a SQLite result code to -errno (SQLITE_FULL → -ENOSPC, SQLITE_CONSTRAINT → -EEXIST,
 * SQLITE_BUSY → -EBUSY, SQLITE_CORRUPT → -EBADMSG, others → -EIO). */
int store_errno(int sqlite_rc);

/* Path of the database file. */
const char *store_path(const store *s);
/* Online, consistent copy to dest (VACUUM INTO, then fsync of the file and its directory).
 * dest must not exist. Runs on the writer thread between batches. */
int store_vacuum_into(store *s, const char *dest);
/* Writes refused with -ENOSPC since open (for metrics). */
uint64_t store_write_failures(const store *s);

/* ---- Additions (the functions above are fixed; these only grow the interface) ---- */

/* Transactions committed and writes acknowledged since open (for metrics). */
uint64_t store_commits(const store *s);
uint64_t store_writes(const store *s);
/* Check a database file offline, read-only (store_open_ro): PRAGMA integrity_check (full) or
 * quick_check.
 * Returns 0, -EBADMSG (corrupt or not a database) or -EIO, with a reason in err. */
int store_check_file(const char *path, bool full, char *err, size_t errlen);
/* Check that a database file (an archive's, before it is restored) holds exactly the schema this
 * vigild's migrations create up to its user_version: the same tables, indexes and nothing else
 * (no trigger, view or table they do not make; a trigger in a restored database would run inside
 * vigild). Read-only (store_open_ro). 0; -EPROTO for a newer schema than this vigild knows;
 * -EBADMSG with the first difference in err ("trigger 'x' is not part of Vigil's schema"). */
int store_check_schema(const char *path, char *err, size_t errlen);
/* A database file opened for reading only, by a process that is not vigild (`vigil audit verify
 * --db`, checks of extracted backups): no byte of the file or of its -wal/-shm changes and no
 * file appears beside it, whether vigild runs on it, was killed, or stopped cleanly:
 *  - no -wal and no -shm (a clean stop, a copy): immutable=1, no locks, nothing created;
 *  - -wal and -shm (vigild running, or killed): mode=ro with a read-only -shm; committed
 *    records still in the WAL are read;
 *  - a -wal without its -shm (a copied or half-removed set): a private copy in a temporary
 *    directory is opened, and removed by store_close_ro. */
typedef struct store_ro {
        sqlite3 *db;             /* the connection (read-only unless it is the private copy) */
        void *seal;              /* vigil_open's key, loaded at the first sealed value; owned */
        char copy_dir[PATH_MAX]; /* the private copy's directory, "" when none */
} store_ro;
/* 0, or -errno with a reason in err ("cannot open '/x/vigil.db' read-only: …"). On success call
 * store_close_ro. */
int store_open_ro(const char *path, store_ro *ro, char *err, size_t errlen);
void store_close_ro(store_ro *ro);

/* fsync a file, or the directory that holds path. 0 or -errno. */
int store_fsync_file(const char *path);
int store_fsync_dir_of(const char *path);
/* Test hook: the next COMMIT fails as if SQLite had answered sqlite_rc (e.g. SQLITE_FULL); the
 * batch is rolled back. One shot. Tests only. */
void store_test_fail_next_commit(store *s, int sqlite_rc);

#endif
