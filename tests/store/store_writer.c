/* store_writer.c — a test client of vigil_store for the crash and backup tests
 * (tests/integ/test_store_e2e.py). Not installed.
 *
 *   store_writer write DB [THREADS]       insert numbered rows forever from THREADS threads,
 *                                        printing "ack ID" after each acknowledged write
 *   store_writer check DB                 open (quick_check, migrations), full integrity_check,
 *                                        print "integrity ok", "count N" and "id ID" per row
 *   store_writer backup DB DIR [KEYENV]   write in the background while making a backup;
 *                                        prints "acked_before N" and "archive PATH"
 * Rows carry the marker "ROW-PLAINTEXT-MARKER" so tests can look for plaintext leaks. They go
 * into Vigil's own store_events table (kind "crash_row"): a backup holds only the schema Vigil's
 * migrations make, and a restore refuses anything else. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/backup.h"
#include "store/crypto.h"
#include "store/store.h"

static store *S;
static _Atomic long next_id;
static _Atomic long acked;
static _Atomic int stop;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int quiet;

static int create(sqlite3 *db, void *ctx)
{
        (void)ctx;
        (void)db;
        return 0; /* store_events comes with the migrations */
}

static int insert(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        int rc =
            sqlite3_prepare_v2(db,
                               "INSERT INTO store_events (id, ts, kind, detail) VALUES (?1, 0, "
                               "'crash_row', 'ROW-PLAINTEXT-MARKER')",
                               -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, *(long *)ctx);
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

static int max_id(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        (void)ctx;
        long m = 0;
        if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM store_events", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                m = (long)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return (int)m;
}

static void *writer(void *arg)
{
        (void)arg;
        while (!atomic_load(&stop)) {
                long id = atomic_fetch_add(&next_id, 1);
                int r = store_write(S, insert, &id);
                if (r == 0) {
                        atomic_fetch_add(&acked, 1);
                        if (!quiet) {
                                pthread_mutex_lock(&out_lock);
                                printf("ack %ld\n", id);
                                fflush(stdout);
                                pthread_mutex_unlock(&out_lock);
                        }
                } else if (r != -ESHUTDOWN) {
                        fprintf(stderr, "write %ld failed: %s\n", id, strerror(-r));
                }
        }
        return NULL;
}

static int open_db(const char *path)
{
        char err[1024];
        store_options o = {.path = path, .integrity_check = true};
        store_open_info info;
        int r = store_open(&o, &S, &info, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "%s\n", err);
                return r;
        }
        if (info.moved_corrupt)
                printf("moved_corrupt %s\n", info.corrupt_path);
        r = store_write(S, create, NULL);
        if (r < 0)
                fprintf(stderr, "create failed: %s\n", strerror(-r));
        return r;
}

static int print_rows(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        long n = 0;
        (void)ctx;
        if (sqlite3_prepare_v2(db,
                               "SELECT id FROM store_events WHERE kind = 'crash_row' ORDER BY id",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while (sqlite3_step(st) == SQLITE_ROW) {
                printf("id %lld\n", (long long)sqlite3_column_int64(st, 0));
                n++;
        }
        sqlite3_finalize(st);
        printf("count %ld\n", n);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr, "usage: store_writer write|check|backup DB ...\n");
                return 2;
        }
        const char *cmd = argv[1], *db = argv[2];
        if (!strcmp(cmd, "write")) {
                int n = argc > 3 ? atoi(argv[3]) : 4;
                pthread_t th[64];
                if (open_db(db) < 0)
                        return 1;
                atomic_store(&next_id, (long)store_read(S, max_id, NULL) + 1);
                for (int i = 0; i < n && i < 64; i++)
                        pthread_create(&th[i], NULL, writer, NULL);
                for (;;)
                        pause(); /* until SIGKILL */
        }
        if (!strcmp(cmd, "check")) {
                char err[1024];
                if (open_db(db) < 0)
                        return 1;
                store_read(S, print_rows, NULL);
                S = store_close(S);
                int r = store_check_file(db, true, err, sizeof(err));
                printf("integrity %s\n", r == 0 ? "ok" : err);
                return r == 0 ? 0 : 1;
        }
        if (!strcmp(cmd, "backup") && argc >= 4) {
                pthread_t th[4];
                crypto_keyring *kr = NULL;
                backup_result res;
                char err[1024];
                const char *key = argc > 4 ? getenv(argv[4]) : NULL;
                if (key && crypto_keyring_new(key, &kr, err, sizeof(err)) < 0) {
                        fprintf(stderr, "%s\n", err);
                        return 1;
                }
                if (open_db(db) < 0)
                        return 1;
                quiet = 1;
                atomic_store(&next_id, (long)store_read(S, max_id, NULL) + 1);
                for (int i = 0; i < 4; i++)
                        pthread_create(&th[i], NULL, writer, NULL);
                usleep(300000); /* writes are going on */
                long before = atomic_load(&acked);
                backup_options o = {.dir = argv[3], .hostname = "testhost", .keyring = kr};
                int r = backup_create(S, &o, &res, err, sizeof(err));
                long during = atomic_load(&acked) - before;
                atomic_store(&stop, 1);
                for (int i = 0; i < 4; i++)
                        pthread_join(th[i], NULL);
                S = store_close(S);
                crypto_keyring_free(kr);
                if (r < 0) {
                        fprintf(stderr, "backup failed: %s\n", err);
                        return 1;
                }
                printf("acked_before %ld\nacked_during %ld\narchive %s\n", before, during,
                       res.path);
                return 0;
        }
        fprintf(stderr, "unknown command '%s'\n", cmd);
        return 2;
}
