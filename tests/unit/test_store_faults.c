/* test_store_faults.c — the store's acknowledged writes with each file-system call failing in
 * turn, SQLite's own included (store/sysio.h routes the unix VFS's system calls and xSync through
 * the table while a test sets it): a token revocation (gate_revoke) and an audit append
 * (audit_append_fn), each from the open of the store to its close. After every run, a restart
 * (unfaulted) checks:
 *   - nothing acknowledged is lost: what was there before, and what the API answered 0 for;
 *   - the database was never moved aside as corrupt (an I/O error is not damage) and passes
 *     integrity_check; the audit chain verifies;
 *   - every failure was said, naming the system call: store_open's err, gate_new's err, or the
 *     store's log line when a write is answered with an error.
 * The backup, restore and keyring cases are in test_store.c and test_crypto.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "security/audit.h"
#include "security/gate.h"
#include "store/store.h"
#include "sysio_fault.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

static char tmpdir[256], dbpath[512], logpath[512];

static int setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-test-faults-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        snprintf(dbpath, sizeof(dbpath), "%s/data/vigil.db", tmpdir);
        snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
        return 0;
}

static int teardown(void **state)
{
        char cmd[512];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

/* stderr (the log's sink in tests) into logpath while a run is faulted. */
static int saved_stderr = -1;

static void capture_start(void)
{
        fflush(stderr);
        saved_stderr = dup(2);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0 && saved_stderr >= 0);
        dup2(fd, 2);
        close(fd);
}

static void capture_end(char *buf, size_t len)
{
        fflush(stderr);
        dup2(saved_stderr, 2);
        close(saved_stderr);
        FILE *f = fopen(logpath, "r");
        size_t n = f ? fread(buf, 1, len - 1, f) : 0;
        buf[n] = '\0';
        if (f)
                fclose(f);
        if (getenv("SYSIO_TRACE"))
                fputs(buf, stderr);
}

/* A clear error names the system call that failed, as the store and the backup files write it:
 * "… (write failed: Input/output error)", "fsync failed: …", "open of the -shm file failed: …". */
static bool names_call(const char *text)
{
        static const char *const ops[] = {"open",   "read",   "write", "fsync",     "ftruncate",
                                          "unlink", "close",  "fstat", "-shm file", "directory",
                                          "lock",   "access", "I/O"};
        char want[32];
        /* SQLite answers a failed read of a b-tree page during a write as SQLITE_CORRUPT
         * ("database disk image is malformed"), without the call: the one message that does
         * not name it, and it is still an error, never a success. */
        if (strcmp(failed_op, "pread") == 0 && strstr(text, "database disk image is malformed"))
                return true;
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
                snprintf(want, sizeof(want), "%s failed: ", ops[i]);
                if (strstr(text, want))
                        return true;
        }
        return false;
}

static void fresh_dir(void)
{
        char cmd[600], dir[560];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s/data'", tmpdir);
        assert_int_equal(system(cmd), 0);
        snprintf(dir, sizeof(dir), "%s/data", tmpdir);
        assert_int_equal(mkdir(dir, 0700), 0);
}

/* No file of the data directory was moved aside as corrupt. */
static void assert_nothing_moved(void)
{
        char dir[560];
        snprintf(dir, sizeof(dir), "%s/data", tmpdir);
        DIR *d = opendir(dir);
        struct dirent *e;
        assert_non_null(d);
        while ((e = readdir(d)))
                if (strstr(e->d_name, "corrupt"))
                        fail_msg("call %u (%s) failed: '%s' moved aside as corrupt", fail_at,
                                 failed_op, e->d_name);
        closedir(d);
}

static int integrity_fn(sqlite3 *db, void *ctx)
{
        sqlite3_stmt *st = NULL;
        char *out = ctx;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                snprintf(out, 128, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return 0;
}

/* The restart: the store opens unfaulted, as it was left, and is whole. */
static store *reopen(void)
{
        store_options o = {.path = dbpath};
        store_open_info info;
        store *s = NULL;
        char err[1024], ok[128] = "";

        if (store_open(&o, &s, &info, err, sizeof(err)) < 0)
                fail_msg("call %u (%s) failed: the store does not open after: %s", fail_at,
                         failed_op, err);
        if (info.moved_corrupt)
                fail_msg("call %u (%s) failed: the database was moved aside as corrupt", fail_at,
                         failed_op);
        assert_nothing_moved();
        assert_int_equal(store_read(s, integrity_fn, ok), 0);
        if (strcmp(ok, "ok") != 0)
                fail_msg("call %u (%s) failed: integrity_check says '%s'", fail_at, failed_op, ok);
        return s;
}

static gate_options rev_opts(store *st)
{
        gate_options o = {.authn = true, .jwt_secret = SECRET, .leeway_s = 60, .store = st};
        return o;
}

/* Revoking a token with each call failing in turn. */
static void test_revoke_faults(void **state)
{
        (void)state;
        char err[1024], log[16384];
        unsigned tried = 0;
        int64_t exp = time(NULL) + 3600;

        for (fail_at = 1;; fail_at++) {
                /* as vigild opens it: quick_check on */
                store_options o = {.path = dbpath, .integrity_check = true};
                store_open_info info = {0};
                auth_gate *g = NULL;
                store *s = NULL;
                int ro = 0, rg = 0, rr = -1;

                /* before: one revocation acknowledged */
                fresh_dir();
                assert_int_equal(store_open(&o, &s, NULL, err, sizeof(err)), 0);
                gate_options go = rev_opts(s);
                assert_int_equal(gate_new(&go, &g, err, sizeof(err)), 0);
                assert_int_equal(gate_revoke(g, "jti-before", exp, "test"), 0);
                gate_free(g);
                store_close(s);

                /* the faulted run: start, revoke, stop */
                s = NULL;
                g = NULL;
                err[0] = '\0';
                calls = 0;
                capture_start();
                sysio_set(&faulty);
                ro = store_open(&o, &s, &info, err, sizeof(err));
                if (ro == 0) {
                        go = rev_opts(s);
                        rg = gate_new(&go, &g, err, sizeof(err));
                        if (rg == 0) {
                                rr = gate_revoke(g, "jti-new", exp, "test");
                                gate_free(g);
                        }
                        store_close(s);
                }
                sysio_set(NULL);
                capture_end(log, sizeof(log));
                if (calls < fail_at) {
                        assert_int_equal(ro, 0);
                        assert_int_equal(rg, 0);
                        assert_int_equal(rr, 0);
                        break;
                }
                tried++;
                if (ro < 0 && !names_call(err))
                        fail_msg("call %u (%s) failed: store_open's error does not say which "
                                 "call: %s",
                                 fail_at, failed_op, err);
                if (ro == 0 && info.moved_corrupt)
                        fail_msg("call %u (%s) failed: the open moved the database aside as "
                                 "corrupt",
                                 fail_at, failed_op);
                if (ro == 0 && rg < 0 && !err[0])
                        fail_msg("call %u (%s) failed: gate_new failed with no reason", fail_at,
                                 failed_op);
                if (ro == 0 && rg == 0 && rr < 0 && !names_call(log))
                        fail_msg("call %u (%s) failed: the revocation was refused (%s) and no log "
                                 "line says which call failed:\n%s",
                                 fail_at, failed_op, strerror(-rr), log);

                /* the restart */
                s = reopen();
                go = rev_opts(s);
                if (gate_new(&go, &g, err, sizeof(err)) < 0)
                        fail_msg("call %u (%s) failed: the gate does not start after: %s", fail_at,
                                 failed_op, err);
                if (!gate_is_revoked(g, "jti-before"))
                        fail_msg("call %u (%s) failed: an acknowledged revocation is lost", fail_at,
                                 failed_op);
                if (rr == 0 && !gate_is_revoked(g, "jti-new"))
                        fail_msg("call %u (%s) failed: the revocation was answered done and is "
                                 "lost after a restart",
                                 fail_at, failed_op);
                gate_free(g);
                store_close(s);
        }
        print_message("%u calls failed in turn\n", tried);
        assert_true(tried >= 20);
}

struct audit_count {
        long rows;
        int verify;
        char reason[256];
};

static int audit_state_fn(sqlite3 *db, void *ctx)
{
        struct audit_count *c = ctx;
        audit_verify_result res;
        sqlite3_stmt *st = NULL;

        memset(&res, 0, sizeof(res));
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_log", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                c->rows = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        c->verify = audit_verify(db, &res);
        snprintf(c->reason, sizeof(c->reason), "%s", res.reason);
        return 0;
}

static audit_record record(const char *event)
{
        audit_record r = {.ts = (int64_t)time(NULL) * 1000000,
                          .request_id = "0123456789abcdef",
                          .principal = "uid:0",
                          .role = "admin",
                          .source_ip = "unix",
                          .method = "POST",
                          .route = "/api/v1/tokens/revoke",
                          .status = 200,
                          .event = event,
                          .detail = ""};
        return r;
}

/* An audit append with each call failing in turn. */
static void test_audit_append_faults(void **state)
{
        (void)state;
        char err[1024], log[16384];
        unsigned tried = 0;

        for (fail_at = 1;; fail_at++) {
                /* as vigild opens it: quick_check on */
                store_options o = {.path = dbpath, .integrity_check = true};
                store_open_info info = {0};
                store *s = NULL;
                int ro, ra = -1;
                audit_record before = record("before"), now = record("request");
                struct audit_count c = {0};

                fresh_dir();
                assert_int_equal(store_open(&o, &s, NULL, err, sizeof(err)), 0);
                for (int i = 0; i < 3; i++)
                        assert_int_equal(store_write(s, audit_append_fn, &before), 0);
                store_close(s);

                s = NULL;
                err[0] = '\0';
                calls = 0;
                capture_start();
                sysio_set(&faulty);
                ro = store_open(&o, &s, &info, err, sizeof(err));
                if (ro == 0) {
                        ra = store_write(s, audit_append_fn, &now);
                        store_close(s);
                }
                sysio_set(NULL);
                capture_end(log, sizeof(log));
                if (calls < fail_at) {
                        assert_int_equal(ro, 0);
                        assert_int_equal(ra, 0);
                        break;
                }
                tried++;
                if (ro < 0 && !names_call(err))
                        fail_msg("call %u (%s) failed: store_open's error does not say which "
                                 "call: %s",
                                 fail_at, failed_op, err);
                if (ro == 0 && ra < 0 && !names_call(log))
                        fail_msg("call %u (%s) failed: the append was refused (%s) and no log "
                                 "line says which call failed:\n%s",
                                 fail_at, failed_op, strerror(-ra), log);

                s = reopen();
                assert_int_equal(store_read(s, audit_state_fn, &c), 0);
                store_close(s);
                if (c.rows < 3 || c.rows > 4 || (ra == 0 && c.rows != 4))
                        fail_msg("call %u (%s) failed: %ld audit rows after (append answered %d)",
                                 fail_at, failed_op, c.rows, ra);
                if (c.verify != 0)
                        fail_msg("call %u (%s) failed: the audit chain does not verify: %s",
                                 fail_at, failed_op, c.reason);
        }
        print_message("%u calls failed in turn\n", tried);
        assert_true(tried >= 20);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_revoke_faults),
            cmocka_unit_test(test_audit_append_faults),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
