/* test_audit.c — the hash chain: intact verifies; an edited, deleted or reordered record fails;
 * pruning leaves a checkpoint and the chain still verifies. The schema comes from
 * src/store/migrations.def (the security range 20–39), applied to an in-memory database. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "security/audit.h"

static const struct {
        int version;
        const char *sql;
} migrations[] = {
#define MIGRATION(v, m, sql) {v, sql},
#include "store/migrations.def"
#undef MIGRATION
};

static sqlite3 *fresh(int n_records)
{
        sqlite3 *db = NULL;

        assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
        for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++)
                if (migrations[i].version >= 20 && migrations[i].version <= 39)
                        assert_int_equal(sqlite3_exec(db, migrations[i].sql, NULL, NULL, NULL),
                                         SQLITE_OK);
        for (int i = 0; i < n_records; i++) {
                char rid[32];
                audit_record r = {.ts = 1000000LL * (i + 1),
                                  .request_id = rid,
                                  .principal = "jwt:alice",
                                  .role = "admin",
                                  .source_ip = "127.0.0.1",
                                  .method = "POST",
                                  .route = "/api/v1/inject",
                                  .status = 200,
                                  .event = "request",
                                  .detail = ""};
                snprintf(rid, sizeof(rid), "req-%d", i);
                assert_int_equal(audit_append_fn(db, &r), 0);
        }
        return db;
}

static int verify(sqlite3 *db, audit_verify_result *res)
{
        return audit_verify(db, res);
}

static void t_intact(void **state)
{
        sqlite3 *db = fresh(10);
        audit_verify_result res;

        (void)state;
        assert_int_equal(verify(db, &res), 0);
        assert_int_equal(res.checked, 10);
        assert_int_equal(res.last_seq, 10);
        sqlite3_close(db);
        db = fresh(0);
        assert_int_equal(verify(db, &res), 0);
        assert_int_equal(res.checked, 0);
        sqlite3_close(db);
}

static void t_tamper_table(void **state)
{
        static const struct {
                const char *name, *sql;
                int64_t bad_seq;
        } cases[] = {
            {"edit the status", "UPDATE audit_log SET status = 403 WHERE seq = 4", 4},
            {"edit the principal and recompute nothing",
             "UPDATE audit_log SET principal = 'jwt:mallory' WHERE seq = 7", 7},
            {"delete a middle record", "DELETE FROM audit_log WHERE seq = 5", 6},
            {"delete the first record", "DELETE FROM audit_log WHERE seq = 1", 2},
            {"reorder: swap two records' seq",
             "UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE "
             "seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3",
             3},
            {"replace a hash with a recomputed-looking one",
             "UPDATE audit_log SET hash = prev_hash WHERE seq = 2", 2},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                sqlite3 *db = fresh(10);
                audit_verify_result res;
                assert_int_equal(sqlite3_exec(db, cases[i].sql, NULL, NULL, NULL), SQLITE_OK);
                if (verify(db, &res) != -EBADMSG || res.bad_seq != cases[i].bad_seq)
                        fail_msg("case '%s': verify did not fail at %lld (bad_seq %lld, %s)",
                                 cases[i].name, (long long)cases[i].bad_seq, (long long)res.bad_seq,
                                 res.reason);
                sqlite3_close(db);
        }
}

static void t_prune_checkpoint(void **state)
{
        sqlite3 *db = fresh(10);
        audit_prune_req req = {.before = 5500000}; /* ts 1..5 s go */
        audit_verify_result res;
        sqlite3_stmt *st;
        audit_record r = {.ts = 99000000, .principal = "uid:0", .role = "admin", .event = "x"};

        (void)state;
        assert_int_equal(audit_prune_fn(db, &req), 0);
        assert_int_equal(req.removed, 5);
        assert_int_equal(verify(db, &res), 0);
        assert_int_equal(res.first_seq, 6);
        assert_int_equal(res.checked, 5);
        /* appends continue the chain from the checkpointed head */
        assert_int_equal(audit_append_fn(db, &r), 0);
        assert_int_equal(verify(db, &res), 0);
        assert_int_equal(res.last_seq, 11);
        /* the checkpoint counts */
        sqlite3_prepare_v2(db, "SELECT last_seq, pruned FROM audit_checkpoint", -1, &st, NULL);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), 5);
        assert_int_equal(sqlite3_column_int64(st, 1), 5);
        sqlite3_finalize(st);
        /* pruning everything keeps the newest row as the anchor */
        req.before = INT64_MAX;
        assert_int_equal(audit_prune_fn(db, &req), 0);
        assert_int_equal(verify(db, &res), 0);
        assert_int_equal(res.checked, 1);
        /* tampering with the checkpoint is detected */
        sqlite3_exec(db, "UPDATE audit_checkpoint SET last_hash = 'x'", NULL, NULL, NULL);
        assert_int_equal(verify(db, &res), -EBADMSG);
        sqlite3_close(db);
}

static void t_list(void **state)
{
        sqlite3 *db = fresh(5);
        audit_list_req req = {.since = 3000000, .limit = 10};

        (void)state;
        assert_int_equal(audit_list_fn(db, &req), 0);
        assert_int_equal(json_array_size(req.rows), 3);
        json_decref(req.rows);
        sqlite3_close(db);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_intact),
            cmocka_unit_test(t_tamper_table),
            cmocka_unit_test(t_prune_checkpoint),
            cmocka_unit_test(t_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
