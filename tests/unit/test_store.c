/* test_store.c — the SQLite store: migrations, group commit from many threads, savepoint isolation
 * of a failing write, reads while writing, a corrupt file moved aside, disk full (a real tmpfs
 * when this runs as root and mount works, else the injected commit failure) and recovery. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/macros.h"
#include "store/backup.h"
#include "store/crypto.h"
#include "store/s3.h"
#include "store/service.h"
#include "store/sysio.h"
#include "sysio_fault.h"
#include "store/store.h"

static char tmpdir[256];

static int setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-test-store-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state)
{
        char cmd[512];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static store *open_at(const char *name, store_open_info *info)
{
        char path[512], err[512] = "";
        store *s = NULL;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        store_options o = {.path = path, .integrity_check = true};
        int r = store_open(&o, &s, info, err, sizeof(err));
        if (r < 0)
                fail_msg("store_open: %d %s", r, err);
        return s;
}

static int create_t(sqlite3 *db, void *ctx)
{
        (void)ctx;
        return store_exec(db, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
}

static int insert_id(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "INSERT INTO t (id, v) VALUES (?1, 'x')", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, *(int64_t *)ctx);
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

static int count_t(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        int n = -1;
        (void)ctx;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return n;
}

static void test_open_and_migrate(void **state)
{
        store_open_info info;
        (void)state;
        store *s = open_at("m.db", &info);
        assert_true(info.created);
        assert_false(info.moved_corrupt);
        assert_true(info.schema_version >= 2);
        int v = info.schema_version;
        s = store_close(s);
        assert_null(s);

        s = open_at("m.db", &info);
        assert_false(info.created);
        assert_int_equal(info.schema_version, v);
        /* The migrated tables exist. */
        assert_int_equal(store_write(s, create_t, NULL), 0);
        store_close(s);

        /* A database from a newer vigild is refused, not downgraded. */
        char path[512], err[512];
        sqlite3 *db;
        snprintf(path, sizeof(path), "%s/m.db", tmpdir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=999999", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        store_options o = {.path = path};
        assert_int_equal(store_open(&o, &s, NULL, err, sizeof(err)), -EPROTO);
        assert_non_null(strstr(err, "newer"));
}

static void test_file_mode(void **state)
{
        struct stat st;
        char path[512];
        (void)state;
        store *s = open_at("mode.db", NULL);
        snprintf(path, sizeof(path), "%s/mode.db", tmpdir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        store_close(s);
}

struct writer_arg {
        store *s;
        int64_t base;
        int n;
        int failures;
};

static void *writer_thread(void *p)
{
        struct writer_arg *a = p;
        for (int i = 0; i < a->n; i++) {
                int64_t id = a->base + i;
                if (store_write(a->s, insert_id, &id) != 0)
                        a->failures++;
        }
        return NULL;
}

static void test_group_commit(void **state)
{
        enum { THREADS = 16, PER = 200 };
        pthread_t th[THREADS];
        struct writer_arg args[THREADS];
        (void)state;
        store *s = open_at("gc.db", NULL);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        uint64_t c0 = store_commits(s);
        for (int i = 0; i < THREADS; i++) {
                args[i] = (struct writer_arg){.s = s, .base = i * 100000, .n = PER};
                pthread_create(&th[i], NULL, writer_thread, &args[i]);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(args[i].failures, 0);
        }
        assert_int_equal(store_read(s, count_t, NULL), THREADS * PER);
        uint64_t commits = store_commits(s) - c0;
        /* Many writers share transactions: fewer commits than writes. */
        print_message("# %d writes in %llu commits\n", THREADS * PER, (unsigned long long)commits);
        assert_true(commits < (uint64_t)(THREADS * PER));
        store_close(s);
}

static int insert_then_fail(sqlite3 *db, void *ctx)
{
        int r = insert_id(db, ctx);
        assert_int_equal(r, 0);
        return -EINVAL; /* roll back my own insert only */
}

struct iso_arg {
        store *s;
        int64_t id;
        int (*fn)(sqlite3 *, void *);
        int result;
};

static void *iso_thread(void *p)
{
        struct iso_arg *a = p;
        a->result = store_write(a->s, a->fn, &a->id);
        return NULL;
}

static void test_savepoint_isolation(void **state)
{
        enum { N = 30 };
        pthread_t th[N];
        struct iso_arg a[N];
        char path[512], err[512];
        store *s = NULL;
        (void)state;
        snprintf(path, sizeof(path), "%s/iso.db", tmpdir);
        /* A batch wait so that the failing writes share transactions with good ones. */
        store_options o = {.path = path, .batch_wait_ms = 20};
        assert_int_equal(store_open(&o, &s, NULL, err, sizeof(err)), 0);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        for (int i = 0; i < N; i++) {
                a[i] = (struct iso_arg){
                    .s = s, .id = i + 1, .fn = i % 3 == 0 ? insert_then_fail : insert_id};
                pthread_create(&th[i], NULL, iso_thread, &a[i]);
        }
        int good = 0;
        for (int i = 0; i < N; i++) {
                pthread_join(th[i], NULL);
                if (i % 3 == 0) {
                        assert_int_equal(a[i].result, -EINVAL);
                } else {
                        assert_int_equal(a[i].result, 0);
                        good++;
                }
        }
        assert_int_equal(store_read(s, count_t, NULL), good);
        /* A duplicate key is -EEXIST and harms nobody. */
        int64_t dup = 2;
        assert_int_equal(store_write(s, insert_id, &dup), -EEXIST);
        assert_int_equal(store_read(s, count_t, NULL), good);
        store_close(s);
}

struct reader_arg {
        store *s;
        int stop; /* __atomic: set by the test, read by the reader */
        int reads;
        int last;
        int bad;
};

static void *reader_thread(void *p)
{
        struct reader_arg *a = p;
        while (!__atomic_load_n(&a->stop, __ATOMIC_RELAXED)) {
                int n = store_read(a->s, count_t, NULL);
                if (n < a->last)
                        a->bad++; /* a committed row vanished */
                a->last = n;
                a->reads++;
        }
        return NULL;
}

static void test_read_while_writing(void **state)
{
        pthread_t r, w;
        struct reader_arg ra = {0};
        (void)state;
        store *s = open_at("rw.db", NULL);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        ra.s = s;
        struct writer_arg wa = {.s = s, .base = 1, .n = 500};
        pthread_create(&r, NULL, reader_thread, &ra);
        pthread_create(&w, NULL, writer_thread, &wa);
        pthread_join(w, NULL);
        __atomic_store_n(&ra.stop, 1, __ATOMIC_RELAXED);
        pthread_join(r, NULL);
        assert_int_equal(wa.failures, 0);
        assert_int_equal(ra.bad, 0);
        assert_true(ra.reads > 0);
        assert_int_equal(store_read(s, count_t, NULL), 500);
        store_close(s);
}

static void test_corrupt_moved_aside(void **state)
{
        char path[512];
        store_open_info info;
        (void)state;

        /* 1. Not a database at all. */
        snprintf(path, sizeof(path), "%s/bad.db", tmpdir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        for (int i = 0; i < 1000; i++)
                fputs("this is not an SQLite database, just text\n", f);
        fclose(f);
        store *s = open_at("bad.db", &info);
        assert_true(info.moved_corrupt);
        assert_true(info.created);
        assert_non_null(strstr(info.corrupt_path, "bad.db.corrupt-"));
        assert_int_equal(access(info.corrupt_path, F_OK), 0);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        store_close(s);

        /* 2. A real database with a damaged page: quick_check fails. */
        s = open_at("pg.db", NULL);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        for (int64_t i = 1; i <= 2000; i++)
                assert_int_equal(store_write(s, insert_id, &i), 0);
        store_close(s);
        snprintf(path, sizeof(path), "%s/pg.db", tmpdir);
        int fd = open(path, O_WRONLY);
        assert_true(fd >= 0);
        char junk[4096];
        memset(junk, 0xA5, sizeof(junk));
        /* Page 3 onwards: table b-tree pages. */
        assert_int_equal(pwrite(fd, junk, sizeof(junk), 4096 * 2), (ssize_t)sizeof(junk));
        close(fd);
        s = open_at("pg.db", &info);
        assert_true(info.moved_corrupt);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        assert_int_equal(store_read(s, count_t, NULL), 0); /* fresh */
        store_close(s);

        char err[512];
        assert_int_equal(store_check_file(info.corrupt_path, true, err, sizeof(err)), -EBADMSG);
}

static void test_disk_full_injected(void **state)
{
        (void)state;
        store *s = open_at("full.db", NULL);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        int64_t id = 1;
        assert_int_equal(store_write(s, insert_id, &id), 0);
        store_test_fail_next_commit(s, SQLITE_FULL);
        id = 2;
        assert_int_equal(store_write(s, insert_id, &id), -ENOSPC);
        assert_int_equal(store_write_failures(s), 1);
        /* Reads go on, the failed write is not there, and writes work again by themselves. */
        assert_int_equal(store_read(s, count_t, NULL), 1);
        assert_int_equal(store_write(s, insert_id, &id), 0);
        assert_int_equal(store_read(s, count_t, NULL), 2);
        store_close(s);
}

static int insert_big(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        static char blob[8192];
        int rc = sqlite3_prepare_v2(db, "INSERT INTO t (id, v) VALUES (?1, ?2)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                memset(blob, 'b', sizeof(blob));
                sqlite3_bind_int64(st, 1, *(int64_t *)ctx);
                sqlite3_bind_blob(st, 2, blob, sizeof(blob), SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

/* A real full filesystem: a 2 MiB tmpfs. Needs root and a kernel that lets us mount. */
static void test_disk_full_tmpfs(void **state)
{
        char mnt[300], path[512], err[512], filler[600];
        (void)state;
        snprintf(mnt, sizeof(mnt), "%s/tmpfs", tmpdir);
        mkdir(mnt, 0700);
        if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0) {
                print_message("# skip: cannot mount a tmpfs here (%s)\n", strerror(errno));
                skip();
        }
        snprintf(path, sizeof(path), "%s/v.db", mnt);
        store *s = NULL;
        store_options o = {.path = path, .integrity_check = true};
        assert_int_equal(store_open(&o, &s, NULL, err, sizeof(err)), 0);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        int64_t id = 1, acked = 0;
        int r = 0;
        for (; id < 10000; id++) {
                r = store_write(s, insert_big, &id);
                if (r < 0)
                        break;
                acked++;
        }
        assert_int_equal(r, -ENOSPC);
        assert_true(store_write_failures(s) >= 1);
        assert_int_equal(store_read(s, count_t, NULL), acked); /* reads go on */
        /* A second full write still fails cleanly. */
        assert_int_equal(store_write(s, insert_big, &id), -ENOSPC);
        /* Make room (a filler file another program wrote? here: grow the fs) and go on. */
        snprintf(filler, sizeof(filler), "size=16m");
        assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, filler), 0);
        assert_int_equal(store_write(s, insert_big, &id), 0);
        assert_int_equal(store_read(s, count_t, NULL), acked + 1);
        store_close(s);
        assert_int_equal(store_check_file(path, true, err, sizeof(err)), 0);
        umount2(mnt, MNT_DETACH);
}

static void test_vacuum_into(void **state)
{
        char dst[512], err[512];
        (void)state;
        store *s = open_at("vac.db", NULL);
        assert_int_equal(store_write(s, create_t, NULL), 0);
        for (int64_t i = 1; i <= 100; i++)
                assert_int_equal(store_write(s, insert_id, &i), 0);
        snprintf(dst, sizeof(dst), "%s/copy.db", tmpdir);
        assert_int_equal(store_vacuum_into(s, dst), 0);
        assert_int_equal(store_vacuum_into(s, dst), -EEXIST);
        assert_int_equal(store_check_file(dst, true, err, sizeof(err)), 0);
        store_close(s);
}

static void test_errno_map(void **state)
{
        (void)state;
        assert_int_equal(store_errno(SQLITE_OK), 0);
        assert_int_equal(store_errno(SQLITE_FULL), -ENOSPC);
        assert_int_equal(store_errno(SQLITE_CONSTRAINT_UNIQUE), -EEXIST);
        assert_int_equal(store_errno(SQLITE_BUSY), -EBUSY);
        assert_int_equal(store_errno(SQLITE_CORRUPT), -EBADMSG);
        assert_int_equal(store_errno(SQLITE_NOTADB), -EBADMSG);
        assert_int_equal(store_errno(SQLITE_IOERR_WRITE), -EIO);
}

static void test_close_refuses(void **state)
{
        (void)state;
        assert_null(store_close(NULL));
        assert_int_equal(store_write(NULL, create_t, NULL), -EINVAL);
}

static int exec_sql(sqlite3 *db, void *ctx)
{
        return store_exec(db, ctx);
}

/* A database with anything Vigil's migrations do not make (a trigger, a view, a table) is not
 * Vigil's schema; a freshly migrated one is. */
static void test_check_schema(void **state)
{
        (void)state;
        static const char *const extra[] = {
            "CREATE TRIGGER vanish AFTER INSERT ON audit_log BEGIN DELETE FROM audit_log WHERE "
            "seq = new.seq; END",
            "CREATE VIEW v AS SELECT 1",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
            "CREATE INDEX audit_extra ON audit_log (principal)",
        };
        char path[512], err[512];
        store_open_info info;

        for (size_t i = 0; i <= ARRAY_SIZE(extra); i++) {
                char name[32];
                snprintf(name, sizeof(name), "schema%zu.db", i);
                store *s = open_at(name, &info);
                if (i < ARRAY_SIZE(extra))
                        assert_int_equal(store_write(s, exec_sql, (void *)extra[i]), 0);
                store_close(s);
                snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
                err[0] = '\0';
                int r = store_check_schema(path, err, sizeof(err));
                if (i < ARRAY_SIZE(extra)) {
                        assert_int_equal(r, -EBADMSG);
                        assert_non_null(strstr(err, "Vigil's schema"));
                } else if (r != 0) {
                        fail_msg("a migrated database: %d %s", r, err);
                }
        }
        /* the planner's statistics are not code */
        store *s = open_at("schema-stat.db", &info);
        assert_int_equal(store_event(s, "k", "d"), 0);
        assert_int_equal(store_write(s, exec_sql, (void *)"ANALYZE"), 0);
        store_close(s);
        snprintf(path, sizeof(path), "%s/schema-stat.db", tmpdir);
        if (store_check_schema(path, err, sizeof(err)) != 0)
                fail_msg("a database after ANALYZE: %s", err);
}

static int seal_insert(sqlite3 *db, void *ctx)
{
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO store_events (ts, kind, detail) VALUES (0, 'k', "
                 "vigil_seal('%s', 'store_events.detail'))",
                 (const char *)ctx);
        return store_exec(db, sql);
}

static int seal_read(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        char *out = ctx;
        int rc = sqlite3_prepare_v2(db,
                                    "SELECT typeof(detail), vigil_open(detail, "
                                    "'store_events.detail') FROM store_events ORDER BY id DESC "
                                    "LIMIT 1",
                                    -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
                snprintf(out, 128, "%s:%s", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1));
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? 0 : -EIO;
}

/* vigil_seal stores a blob when sealing is on, vigil_open gives the text back; without the
 * seal switch values stay text; an offline reader without the key gets an error. */
static void test_sealed_values(void **state)
{
        (void)state;
        char path[512], err[512] = "", out[128] = "";
        crypto_keyring *kr = NULL;
        store_open_info info;
        store *s = NULL;

        assert_int_equal(crypto_keyring_new("0123456789abcdef0123456789abcdef0123456789abcdef0"
                                            "123456789abcdef",
                                            &kr, err, sizeof(err)),
                         0);
        snprintf(path, sizeof(path), "%s/sealed.db", tmpdir);
        store_options o = {.path = path, .keyring = kr, .seal = true};
        assert_int_equal(store_open(&o, &s, &info, err, sizeof(err)), 0);
        assert_int_equal(store_write(s, seal_insert, "SEALED-MARKER"), 0);
        assert_int_equal(store_read(s, seal_read, out), 0);
        assert_string_equal(out, "blob:SEALED-MARKER");
        store_close(s);
        /* the key present, sealing off: new values in clear, old ones still open */
        o.seal = false;
        assert_int_equal(store_open(&o, &s, &info, err, sizeof(err)), 0);
        assert_int_equal(store_read(s, seal_read, out), 0);
        assert_string_equal(out, "blob:SEALED-MARKER");
        assert_int_equal(store_write(s, seal_insert, "CLEAR"), 0);
        assert_int_equal(store_read(s, seal_read, out), 0);
        assert_string_equal(out, "text:CLEAR");
        store_close(s);
        crypto_keyring_free(kr);
}

static int count_kind(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        long *n = ctx;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM store_events WHERE kind = ?1", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, (const char *)(n + 1), -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
                n[0] = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return 0;
}

/* Rows of kind in the database at dir/vigil.db. */
static long rows_of(const char *dir, const char *kind)
{
        char path[600], err[512];
        long n[8] = {0};
        store *s = NULL;
        store_open_info info;
        snprintf(path, sizeof(path), "%s/vigil.db", dir);
        snprintf((char *)(n + 1), sizeof(n) - sizeof(n[0]), "%s", kind);
        store_options o = {.path = path};
        if (store_open(&o, &s, &info, err, sizeof(err)) < 0)
                fail_msg("'%s' does not open: %s", path, err);
        assert_false(info.moved_corrupt);
        assert_int_equal(store_read(s, count_kind, n), 0);
        store_close(s);
        return n[0];
}

static void fresh_state(const char *dir)
{
        char cmd[600], path[600], err[512];
        store *s = NULL;
        store_open_info info;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(path, sizeof(path), "%s/vigil.db", dir);
        store_options o = {.path = path};
        assert_int_equal(store_open(&o, &s, &info, err, sizeof(err)), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(store_event(s, "live", "acknowledged before the restore"), 0);
        store_close(s);
}

/* A restore with each of its file-system calls failing in turn: every failure is an error that
 * says why, the data directory then holds either its previous state whole (every acknowledged
 * row) or the archive's, never a mix, a half-written file or nothing; no staging directory or
 * .swap file is left. */
static void test_restore_faults(void **state)
{
        (void)state;
        char src[512], bk[512], data[512], err[1024];
        backup_result res;
        store_open_info info;
        store *s = NULL;
        unsigned tried = 0;

        snprintf(src, sizeof(src), "%s/rsrc.db", tmpdir);
        snprintf(bk, sizeof(bk), "%s/rbk", tmpdir);
        snprintf(data, sizeof(data), "%s/rdata", tmpdir);
        store_options so = {.path = src};
        assert_int_equal(store_open(&so, &s, &info, err, sizeof(err)), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(store_event(s, "archived", "in the backup"), 0);
        backup_options bo = {.dir = bk, .hostname = "h", .compression = BACKUP_GZIP};
        if (backup_create(s, &bo, &res, err, sizeof(err)) < 0)
                fail_msg("backup_create: %s", err);
        store_close(s);
        for (fail_at = 1;; fail_at++) {
                restore_options ro = {.archive = res.path, .data_dir = data, .check = true};
                restore_result rr;
                fresh_state(data);
                calls = 0;
                err[0] = '\0';
                sysio_set(&faulty);
                int r = backup_restore(&ro, &rr, err, sizeof(err));
                sysio_set(NULL);
                if (calls < fail_at) {
                        assert_int_equal(r, 0);
                        break;
                }
                tried++;
                long live = rows_of(data, "live"), archived = rows_of(data, "archived");
                if (r < 0) {
                        if (!err[0])
                                fail_msg("call %u failed: restore returned %d with no reason",
                                         fail_at, r);
                        if (!(live == 5 && archived == 0))
                                fail_msg("call %u failed (%s): previous state not kept: %ld live, "
                                         "%ld archived rows",
                                         fail_at, err, live, archived);
                } else if (!(live == 0 && archived == 3)) {
                        fail_msg("call %u failed, restore said done: %ld live, %ld archived rows",
                                 fail_at, live, archived);
                }
                DIR *d = opendir(data);
                struct dirent *e;
                assert_non_null(d);
                while ((e = readdir(d)))
                        if (!strncmp(e->d_name, ".restore-", 9) || strstr(e->d_name, ".swap"))
                                fail_msg("call %u failed: '%s' left behind", fail_at, e->d_name);
                closedir(d);
        }
        print_message("%u calls failed in turn\n", tried);
        assert_true(tried >= 8);
}

/* A backup with each of its file-system calls failing in turn (encrypted: the sealing of the
 * archive is in the path): an error that says why, no archive under a final name and no
 * temporary directory left; the run with no call left to fail makes an archive that verifies. */
static void test_backup_faults(void **state)
{
        (void)state;
        char src[512], bk[512], err[1024];
        crypto_keyring *kr = NULL;
        backup_result res;
        store_open_info info;
        store *s = NULL;
        unsigned tried = 0;

        snprintf(src, sizeof(src), "%s/bsrc.db", tmpdir);
        snprintf(bk, sizeof(bk), "%s/bfault", tmpdir);
        store_options so = {.path = src};
        assert_int_equal(store_open(&so, &s, &info, err, sizeof(err)), 0);
        assert_int_equal(store_event(s, "archived", "in the backup"), 0);
        assert_int_equal(
            crypto_keyring_new("correct horse battery staple 42", &kr, err, sizeof(err)), 0);
        backup_options bo = {.dir = bk, .hostname = "h", .keyring = kr};
        for (fail_at = 1;; fail_at++) {
                calls = 0;
                err[0] = '\0';
                sysio_set(&faulty);
                int r = backup_create(s, &bo, &res, err, sizeof(err));
                sysio_set(NULL);
                if (calls < fail_at) {
                        assert_int_equal(r, 0);
                        assert_int_equal(backup_verify(res.path, kr, NULL, err, sizeof(err)), 0);
                        break;
                }
                tried++;
                if (r == 0 && !strcmp(failed_op, "open") && failed_dir) {
                        /* SQLite's open of a directory to fsync it is best effort (VACUUM INTO's
                         * copy); the store fsyncs the copy and its directory itself after. */
                        if (backup_verify(res.path, kr, NULL, err, sizeof(err)) < 0)
                                fail_msg("call %u (open of a directory) failed, the backup said "
                                         "done, and it does not verify: %s",
                                         fail_at, err);
                        assert_int_equal(unlink(res.path), 0);
                        continue;
                }
                if (r == 0)
                        fail_msg("call %u (%s) failed but the backup reported success", fail_at,
                                 failed_op);
                assert_true(err[0] != '\0');
                DIR *d = opendir(bk);
                struct dirent *e;
                assert_non_null(d);
                while ((e = readdir(d)))
                        if (e->d_name[0] != '.' || !strncmp(e->d_name, ".tmp-backup-", 12))
                                fail_msg("call %u failed (%s): '%s' left behind", fail_at, err,
                                         e->d_name);
                closedir(d);
        }
        print_message("%u calls failed in turn\n", tried);
        assert_true(tried >= 6);
        store_close(s);
        crypto_keyring_free(kr);
}

/* A key rotation (backup_service_rotate_key: add a key, save the keyring, re-encrypt) with each
 * call failing in turn, then a value sealed and acknowledged, then a restart with the keyring
 * from its file: the value opens (a key used for sealing is always one the file has), the
 * rotation either said why it failed or its key is in the file, and no keyring.tmp is left. */
static void test_rotate_faults(void **state)
{
        (void)state;
        char data[512], db[600], kpath[600], tmp[640], err[1024], out[128];
        const char *secret = "correct horse battery staple 42";
        unsigned tried = 0;

        snprintf(data, sizeof(data), "%s/rotdata", tmpdir);
        snprintf(db, sizeof(db), "%s/vigil.db", data);
        snprintf(kpath, sizeof(kpath), "%s/keyring", data);
        snprintf(tmp, sizeof(tmp), "%s.tmp", kpath);
        for (fail_at = 1;; fail_at++) {
                crypto_keyring *kr = NULL;
                backup_service *b = NULL;
                store *s = NULL;
                uint32_t id = 0, before;
                bool running = true;
                char cmd[600];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data);
                assert_int_equal(system(cmd), 0);
                assert_int_equal(mkdir(data, 0700), 0);
                assert_int_equal(crypto_keyring_new(secret, &kr, err, sizeof(err)), 0);
                assert_int_equal(crypto_keyring_save(kr, kpath, err, sizeof(err)), 0);
                before = crypto_keyring_active(kr);
                store_options so = {.path = db, .keyring = kr, .seal = true};
                assert_int_equal(store_open(&so, &s, NULL, err, sizeof(err)), 0);
                assert_int_equal(store_write(s, seal_insert, "SEALED-BEFORE"), 0);
                backup_service_config bc = {.dir = data, .data_dir = data, .hostname = "h"};
                assert_int_equal(backup_service_new(&bc, s, kr, &b, err, sizeof(err)), 0);

                calls = 0;
                err[0] = '\0';
                sysio_set(&faulty);
                int r = backup_service_rotate_key(b, &id, err, sizeof(err));
                while (backup_service_reencrypted(b, &running), running)
                        usleep(1000);
                sysio_set(NULL);
                bool done = calls < fail_at;
                /* acknowledged after the rotation answered */
                assert_int_equal(store_write(s, seal_insert, "SEALED-AFTER"), 0);
                backup_service_free(b);
                store_close(s);
                crypto_keyring_free(kr);
                if (done) {
                        assert_int_equal(r, 0);
                        break;
                }
                tried++;
                if (r < 0 && !err[0])
                        fail_msg("call %u (%s) failed: the rotation failed with no reason", fail_at,
                                 failed_op);
                if (access(tmp, F_OK) == 0)
                        fail_msg("call %u (%s) failed: '%s' left behind", fail_at, failed_op, tmp);

                /* the restart */
                kr = NULL;
                s = NULL;
                assert_int_equal(crypto_keyring_new(secret, &kr, err, sizeof(err)), 0);
                if (crypto_keyring_load(kr, kpath, err, sizeof(err)) < 0)
                        fail_msg("call %u (%s) failed: the keyring does not load: %s", fail_at,
                                 failed_op, err);
                if (r == 0 && crypto_keyring_active(kr) != id)
                        fail_msg("call %u (%s) failed: the rotation said done, the keyring file "
                                 "has key %u active, not %u",
                                 fail_at, failed_op, crypto_keyring_active(kr), id);
                /* refused: the old keyring, or (only the directory's fsync failed) the new one
                 * with a key that sealed nothing */
                if (r < 0 && crypto_keyring_active(kr) != before &&
                    crypto_keyring_active(kr) != before + 1)
                        fail_msg("call %u (%s) failed: keyring has an unknown key %u", fail_at,
                                 failed_op, crypto_keyring_active(kr));
                so.keyring = kr;
                assert_int_equal(store_open(&so, &s, NULL, err, sizeof(err)), 0);
                out[0] = '\0';
                int rr = store_read(s, seal_read, out);
                if (rr < 0 || strcmp(out, "blob:SEALED-AFTER") != 0)
                        fail_msg("call %u (%s) failed (rotation answered %d: %s): a value sealed "
                                 "after it no longer opens after a restart: '%s'",
                                 fail_at, failed_op, r, err, out);
                store_close(s);
                crypto_keyring_free(kr);
        }
        print_message("%u calls failed in turn\n", tried);
        assert_true(tried >= 4);
}

/* S3 URLs and where credentials come from: a credentials file only its owner can read, with
 * the [default] section; the environment otherwise; nothing at all is -ENOKEY. */
static void write_text(const char *path, const char *text, mode_t mode)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(chmod(path, mode), 0);
}

static void test_s3_credentials(void **state)
{
        char dir[] = "/tmp/vigil-s3-XXXXXX", path[PATH_MAX], b[64], k[S3_MAX_KEY], err[512];
        s3_target t = {.bucket = "b", .region = "us-east-1"};

        (void)state;
        assert_int_equal(
            s3_parse_url("s3://bkt/a/b.tar.zst", b, sizeof(b), k, sizeof(k), err, sizeof(err)), 0);
        assert_string_equal(b, "bkt");
        assert_string_equal(k, "a/b.tar.zst");
        assert_int_equal(s3_parse_url("s3://bkt/", b, sizeof(b), k, sizeof(k), err, sizeof(err)),
                         -EINVAL);
        assert_int_equal(s3_parse_url("/tmp/x", b, sizeof(b), k, sizeof(k), err, sizeof(err)),
                         -EINVAL);

        /* archive times from names: "-2" comes after the plain name of the same second */
        int64_t t0 = s3_backup_time("p/vigil-backup-node-1-20260101T000000Z.tar.zst.enc");
        int64_t t2 = s3_backup_time("p/vigil-backup-node-1-20260101T000000Z-2.tar.zst.enc");
        assert_int_equal(t0, INT64_C(1767225600) * 1000000 + 1);
        assert_int_equal(t2, t0 + 1);
        assert_true(s3_backup_time("vigil-backup-n-20260101T000001Z.tar.gz") > t2);
        assert_int_equal(s3_backup_time("p/notes.txt"), -1);
        assert_int_equal(s3_backup_time("vigil-backup-n-2026.tar.gz"), -1);

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/creds", dir);
        t.credentials_file = path;
        write_text(path, "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n", 0600);
        assert_int_equal(s3_check_credentials(&t, err, sizeof(err)), 0);
        chmod(path, 0640);
        assert_int_equal(s3_check_credentials(&t, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "chmod 600"));
        write_text(path, "[prod]\naws_access_key_id = AK\naws_secret_access_key = SK\n", 0600);
        assert_int_equal(s3_check_credentials(&t, err, sizeof(err)), -ENOKEY);
        unlink(path);
        assert_int_equal(s3_check_credentials(&t, err, sizeof(err)), -ENOENT);

        t.credentials_file = NULL;
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        assert_int_equal(s3_check_credentials(&t, err, sizeof(err)), -ENOKEY);
        assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
        setenv("AWS_ACCESS_KEY_ID", "AK", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
        assert_int_equal(s3_check_credentials(&t, err, sizeof(err)), 0);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_errno_map),          cmocka_unit_test(test_close_refuses),
            cmocka_unit_test(test_open_and_migrate),   cmocka_unit_test(test_file_mode),
            cmocka_unit_test(test_group_commit),       cmocka_unit_test(test_savepoint_isolation),
            cmocka_unit_test(test_read_while_writing), cmocka_unit_test(test_corrupt_moved_aside),
            cmocka_unit_test(test_disk_full_injected), cmocka_unit_test(test_disk_full_tmpfs),
            cmocka_unit_test(test_vacuum_into),        cmocka_unit_test(test_check_schema),
            cmocka_unit_test(test_sealed_values),      cmocka_unit_test(test_restore_faults),
            cmocka_unit_test(test_backup_faults),      cmocka_unit_test(test_rotate_faults),
            cmocka_unit_test(test_s3_credentials),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
