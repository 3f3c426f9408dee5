/* test_audit.c — the hash chain: intact verifies; an edited, deleted or reordered record fails;
 * pruning leaves a checkpoint and the chain still verifies. The schema comes from
 * src/store/migrations.def (the security range 20–39), applied to an in-memory database. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "security/audit.h"
#include "security/audit_export.h"
#include "security/webconfig.h"
#include "store/store.h"

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
        assert_int_equal(store_sql_functions(db), SQLITE_OK); /* vigil_seal / vigil_open */
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

static const audit_key test_key = {.set = true, .k = "0123456789abcdef0123456789abcdef"};

static void hash_of(sqlite3 *db, int64_t seq, char out[AUDIT_HASH_HEX])
{
        sqlite3_stmt *st = NULL;

        assert_int_equal(
            sqlite3_prepare_v2(db, "SELECT hash FROM audit_log WHERE seq = ?", -1, &st, NULL),
            SQLITE_OK);
        sqlite3_bind_int64(st, 1, seq);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        snprintf(out, AUDIT_HASH_HEX, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
}

/* The oldest records deleted and a checkpoint forged with the right last_hash: the chain alone
 * verifies, the key does not. A checkpoint made by pruning with the key does. */
static void t_trim_front(void **state)
{
        sqlite3 *db = fresh(10);
        audit_verify_opts o = {.key = &test_key};
        audit_key other = test_key;
        audit_verify_result res;
        audit_prune_req req = {.before = 3500000, .key = &test_key};
        char h[AUDIT_HASH_HEX], sql[256];

        (void)state;
        assert_int_equal(audit_prune_fn(db, &req), 0);
        assert_int_equal(audit_verify_ex(db, &o, &res), 0);
        assert_true(res.checkpoint_authenticated);
        other.k[0] ^= 1;
        o.key = &other;
        assert_int_equal(audit_verify_ex(db, &o, &res), -EBADMSG);
        o.key = &test_key;
        /* the forgery */
        hash_of(db, 7, h);
        assert_int_equal(sqlite3_exec(db, "DELETE FROM audit_log WHERE seq <= 7", NULL, NULL, NULL),
                         SQLITE_OK);
        snprintf(sql, sizeof(sql),
                 "UPDATE audit_checkpoint SET last_seq = 7, last_hash = '%s', mac = ''", h);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(audit_verify(db, &res), 0); /* the chain alone cannot tell */
        assert_int_equal(audit_verify_ex(db, &o, &res), -EBADMSG);
        assert_non_null(strstr(res.reason, "truncated at the start"));
        /* a key that was not there when the checkpoint was written adopts it once */
        assert_int_equal(audit_checkpoint_adopt_fn(db, (void *)&test_key), 1);
        assert_int_equal(audit_verify_ex(db, &o, &res), 0);
        sqlite3_close(db);
}

/* The newest records deleted: verify against the exported head says so. */
static void t_trim_end(void **state)
{
        sqlite3 *db = fresh(10);
        audit_head head;
        audit_verify_opts o = {.head = &head};
        audit_verify_result res;

        (void)state;
        assert_int_equal(audit_head_fn(db, &head), 0);
        assert_int_equal(head.seq, 10);
        assert_int_equal(audit_verify_ex(db, &o, &res), 0);
        assert_true(res.head_checked);
        assert_int_equal(sqlite3_exec(db, "DELETE FROM audit_log WHERE seq >= 9", NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(audit_verify(db, &res), 0);
        assert_int_equal(audit_verify_ex(db, &o, &res), -EBADMSG);
        assert_non_null(strstr(res.reason, "truncated at the end"));
        /* a head that names an existing record with another hash: rewritten */
        head.seq = 5;
        head.hash[0] = head.hash[0] == 'a' ? 'b' : 'a';
        assert_int_equal(audit_verify_ex(db, &o, &res), -EBADMSG);
        assert_int_equal(audit_head_parse("12:0123", &head), -EINVAL);
        assert_int_equal(
            audit_head_parse("12:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                             &head),
            0);
        assert_int_equal(head.seq, 12);
        sqlite3_close(db);
}

/* A request whose path is not UTF-8 is recorded, the bytes escaped; the chain verifies. */
static void t_non_utf8(void **state)
{
        sqlite3 *db = fresh(1);
        audit_record r = {.ts = 5,
                          .principal = "anonymous",
                          .role = "none",
                          .method = "GET",
                          .route = "/api/v1/gpus/\xff\xfe-probe\xc0\xaf",
                          .status = 401,
                          .event = "auth_failure:malformed",
                          .detail = "caf\xc3\xa9"};
        audit_list_req lr = {.since = 0, .limit = 10};
        audit_verify_result res;

        (void)state;
        assert_int_equal(audit_append_fn(db, &r), 0);
        assert_int_equal(audit_verify(db, &res), 0);
        assert_int_equal(res.checked, 2);
        assert_int_equal(audit_list_fn(db, &lr), 0);
        assert_int_equal(json_array_size(lr.rows), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(lr.rows, 1), "route")),
                            "/api/v1/gpus/\\xff\\xfe-probe\\xc0\\xaf");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(lr.rows, 1), "detail")),
            "caf\xc3\xa9");
        json_decref(lr.rows);
        sqlite3_close(db);
}

/* The head goes to the sidecar with its mac; the key files are created 0600 and reload. */
static void t_export_sidecar(void **state)
{
        char dir[] = "/tmp/vigil-audit-XXXXXX", path[128], err[256], mac[AUDIT_HASH_HEX],
             want[AUDIT_HASH_HEX];
        audit_head h = {.seq = 42}, back;
        audit_export_options o = {0};
        audit_key k, k2;
        bool created = false;
        struct stat st;

        (void)state;
        assert_non_null(mkdtemp(dir));
        assert_int_equal(audit_key_load(dir, NULL, false, &k, NULL, err, sizeof(err)), -ENOENT);
        assert_int_equal(audit_key_load(dir, NULL, true, &k, &created, err, sizeof(err)), 0);
        assert_true(created);
        snprintf(path, sizeof(path), "%s/" AUDIT_KEY_FILE, dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(audit_key_load(dir, NULL, true, &k2, &created, err, sizeof(err)), 0);
        assert_false(created);
        assert_memory_equal(k.k, k2.k, AUDIT_KEY_LEN);
        memset(h.hash, 'c', AUDIT_HASH_HEX - 1);
        h.hash[AUDIT_HASH_HEX - 1] = '\0';
        snprintf(path, sizeof(path), "%s/" AUDIT_HEAD_FILE, dir);
        assert_int_equal(audit_export_head(&o, &k, &h, path, err, sizeof(err)), 0);
        assert_int_equal(audit_head_read(path, &back, mac), 0);
        assert_int_equal(back.seq, 42);
        assert_string_equal(back.hash, h.hash);
        assert_int_equal(audit_mac(&k, "vigil-audit-head", 42, h.hash, want), 0);
        assert_string_equal(mac, want);
        o.webhook_url = "ftp://x";
        assert_int_equal(audit_export_options_check(&o, err, sizeof(err)), -EINVAL);
        unlink(path);
        snprintf(path, sizeof(path), "%s/" AUDIT_KEY_FILE, dir);
        unlink(path);
        rmdir(dir);
}

/* A password 70 levels deep is never recorded in clear. */
static void t_body_depth(void **state)
{
        char body[4096], out[AUDIT_BODY_MAX + 64];
        size_t n = 0;

        (void)state;
        for (int i = 0; i < 70; i++)
                n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"a\":");
        n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"password\":\"DEEP-SECRET\"}");
        for (int i = 0; i < 70; i++)
                n += (size_t)snprintf(body + n, sizeof(body) - n, "}");
        audit_body_scrub(body, n, out, sizeof(out));
        assert_null(strstr(out, "DEEP-SECRET"));
        assert_non_null(strstr(out, "not recorded"));
        /* within the limit, redacted as before */
        {
                static const char in[] = "{\"a\":{\"b\":[{\"token\":\"T\"}]},\"x\":1}";
                audit_body_scrub(in, strlen(in), out, sizeof(out));
        }
        assert_string_equal(out, "{\"a\":{\"b\":[{\"token\":\"<redacted>\"}]},\"x\":1}");
}

/* A one-shot HTTP server: accepts one request, keeps it in buf, answers 200. */
struct hook_srv {
        int fd;         /* listening socket */
        char buf[4096]; /* the request received */
};

static void *hook_main(void *arg)
{
        struct hook_srv *h = arg;
        int c = accept(h->fd, NULL, NULL);
        size_t n = 0;
        static const char ok[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

        if (c < 0)
                return NULL;
        while (n < sizeof(h->buf) - 1) {
                ssize_t r = read(c, h->buf + n, sizeof(h->buf) - 1 - n);
                if (r <= 0)
                        break;
                n += (size_t)r;
                h->buf[n] = '\0';
                char *body = strstr(h->buf, "\r\n\r\n");
                char *cl = strcasestr(h->buf, "Content-Length:");
                if (body && cl && strlen(body + 4) >= (size_t)atoi(cl + 15))
                        break;
        }
        if (write(c, ok, sizeof(ok) - 1) < 0)
                h->buf[0] = '\0';
        close(c);
        return NULL;
}

/* The head goes to a webhook as JSON with its mac. */
static void t_export_webhook(void **state)
{
        struct hook_srv h = {0};
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof(a);
        char url[64], err[256];
        audit_head head = {.seq = 7};
        audit_export_options o = {.no_sidecar = true, .webhook_timeout_ms = 5000};
        pthread_t t;

        (void)state;
        memset(head.hash, 'd', AUDIT_HASH_HEX - 1);
        h.fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(h.fd >= 0);
        assert_int_equal(bind(h.fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(h.fd, 1), 0);
        assert_int_equal(getsockname(h.fd, (struct sockaddr *)&a, &al), 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/audit", ntohs(a.sin_port));
        o.webhook_url = url;
        assert_int_equal(pthread_create(&t, NULL, hook_main, &h), 0);
        assert_int_equal(audit_export_head(&o, &test_key, &head, NULL, err, sizeof(err)), 0);
        pthread_join(t, NULL);
        close(h.fd);
        assert_non_null(strstr(h.buf, "POST /audit"));
        assert_non_null(strstr(h.buf, "\"event\":\"vigil-audit-head\""));
        assert_non_null(strstr(h.buf, "\"seq\":7"));
        assert_non_null(strstr(h.buf, "\"mac\":\""));
        /* nobody listening: the error names the webhook */
        assert_true(audit_export_head(&o, &test_key, &head, NULL, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "webhook"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_intact),           cmocka_unit_test(t_tamper_table),
            cmocka_unit_test(t_prune_checkpoint), cmocka_unit_test(t_list),
            cmocka_unit_test(t_trim_front),       cmocka_unit_test(t_trim_end),
            cmocka_unit_test(t_non_utf8),         cmocka_unit_test(t_export_sidecar),
            cmocka_unit_test(t_body_depth),       cmocka_unit_test(t_export_webhook),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
