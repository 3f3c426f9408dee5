/* test_log.c — the logger: rotation under concurrent load (no lost or split line), JSON fields,
 * the rate limiter's "suppressed N messages", redaction of secrets, reopen, syslog and journald
 * (skipped with a message where the machine has neither). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/vtime.h"
#include "testutil.h"

static char dir[TEST_TMPDIR_LEN];

static int setup(void **state)
{
        (void)state;
        return test_tmpdir_new("log", dir, sizeof(dir)) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
        (void)state;
        log_close();
        return test_tmpdir_remove(dir) == 0 ? 0 : -1;
}

/* Silence stderr while a test floods the logger; returns the saved fd. */
static int quiet(void)
{
        int saved = dup(STDERR_FILENO), nul = open("/dev/null", O_WRONLY);

        dup2(nul, STDERR_FILENO);
        close(nul);
        return saved;
}

static void loud(int saved)
{
        dup2(saved, STDERR_FILENO);
        close(saved);
}

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        char *b;
        long n;

        if (!f)
                return NULL;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        b = calloc(1, (size_t)n + 1);
        if (fread(b, 1, (size_t)n, f) != (size_t)n) {
                free(b);
                b = NULL;
        }
        fclose(f);
        return b;
}

static void configure(const char *file, enum log_format fmt, uint64_t max_size, unsigned files,
                      unsigned burst, int64_t interval_us)
{
        log_options o;
        char err[256];

        log_options_init(&o);
        o.level = LOG_LVL_DEBUG;
        o.format = fmt;
        o.file_path = file;
        o.file_max_size = max_size;
        o.file_max_files = files;
        o.rate_burst = burst;
        o.rate_interval_us = interval_us;
        o.journald = 0;
        assert_int_equal(log_configure(&o, err, sizeof(err)), 0);
}

static void test_redact_table(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"Authorization: Bearer abc.def-ghi", "Authorization: Bearer <redacted>"},
            {"authorization=Basic dXNlcjpwYXNz, next", "authorization=Basic <redacted>, next"},
            {"token=s3cr3t&x=1", "token=<redacted>&x=1"},
            {"{\"password\": \"hunter2\"}", "{\"password\": \"<redacted>\"}"},
            {"jwt_secret: 0123456789abcdef0123456789abcdef", "jwt_secret: <redacted>"},
            {"got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here", "got <redacted> here"},
            {"GPU 3 temperature 85 C", "GPU 3 temperature 85 C"},
            {"tokens: 5 buckets", "tokens: 5 buckets"},
            {"bearer", "bearer"},
        };
        char out[256];

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                log_redact(cases[i].in, out, sizeof(out));
                assert_string_equal(out, cases[i].out);
        }
        /* truncation keeps the output terminated */
        log_redact("password=abcdef", out, 8);
        assert_int_equal(strlen(out), 7);
}

static void test_size_and_facility(void **state)
{
        uint64_t v = 0;

        (void)state;
        assert_int_equal(log_parse_size("100MiB", &v), 0);
        assert_int_equal(v, 100ULL << 20);
        assert_int_equal(log_parse_size("4096", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(log_parse_size("1x", &v), -EINVAL);
        assert_int_equal(log_parse_size("", &v), -EINVAL);
        assert_int_equal(log_parse_size("99999999999999999GiB", &v), -ERANGE);
        assert_int_equal(log_syslog_facility_from_string("local3"), LOG_LOCAL3);
        assert_int_equal(log_syslog_facility_from_string("nope"), -EINVAL);
}

static void test_json_fields_and_secrets(void **state)
{
        char path[300];
        char *s;
        int saved;

        (void)state;
        snprintf(path, sizeof(path), "%s/json.log", dir);
        configure(path, LOG_FMT_JSON, 0, 0, 0, 0);
        saved = quiet();
        log_fields(LOG_LVL_WARN, "health",
                   ((log_field[]){{"gpu", "3"}, {"uuid", "GPU-abc"}, {"incident", "42"}}),
                   "opened incident on GPU %d: \"hot\"", 3);
        log_info("http", "request with Authorization: Bearer SECRETTOKEN123 refused");
        log_fields(LOG_LVL_INFO, "http", ((log_field[]){{"request_id", "r-1"}, {"token", "x"}}),
                   "password=hunter2 given");
        loud(saved);
        s = slurp(path);
        assert_non_null(s);
        assert_non_null(strstr(s, "\"level\":\"warn\",\"component\":\"health\","
                                  "\"msg\":\"opened incident on GPU 3: \\\"hot\\\"\","
                                  "\"gpu\":\"3\",\"uuid\":\"GPU-abc\",\"incident\":\"42\"}\n"));
        assert_non_null(strstr(s, "\"request_id\":\"r-1\""));
        assert_null(strstr(s, "SECRETTOKEN123"));
        assert_null(strstr(s, "hunter2"));
        assert_non_null(strstr(s, "Bearer <redacted>"));
        free(s);
}

#define THREADS    4
#define PER_THREAD 4000

static void *writer(void *arg)
{
        long t = (long)arg;

        for (int i = 0; i < PER_THREAD; i++)
                log_info("load", "line t%ld n%06d padding-padding-padding-padding-padding END", t,
                         i);
        return NULL;
}

static void test_rotation_under_load(void **state)
{
        static unsigned char seen[THREADS][PER_THREAD];
        pthread_t th[THREADS];
        char path[300], name[320];
        unsigned files = 0;
        size_t lines = 0;
        int saved;

        (void)state;
        memset(seen, 0, sizeof(seen));
        snprintf(path, sizeof(path), "%s/rot.log", dir);
        /* ~100 bytes a line, 16000 lines: ~1.6 MB over 32 KiB files; keep all of them */
        configure(path, LOG_FMT_TEXT, 32 * 1024, 200, 0, 0);
        saved = quiet();
        for (long t = 0; t < THREADS; t++)
                pthread_create(&th[t], NULL, writer, (void *)t);
        for (int t = 0; t < THREADS; t++)
                pthread_join(th[t], NULL);
        loud(saved);
        log_close();

        for (unsigned k = 0; k <= 200; k++) {
                FILE *f;
                char line[512];
                struct stat st;
                if (k == 0)
                        snprintf(name, sizeof(name), "%s", path);
                else
                        snprintf(name, sizeof(name), "%s.%u", path, k);
                f = fopen(name, "r");
                if (!f)
                        continue;
                files++;
                assert_int_equal(stat(name, &st), 0);
                assert_true(st.st_size <= 32 * 1024);
                while (fgets(line, sizeof(line), f)) {
                        long t;
                        int n;
                        const char *p = strstr(line, "load: line t");
                        size_t len = strlen(line);
                        assert_non_null(p);
                        /* whole: one message, ending with END and a newline */
                        assert_true(len > 5 && strcmp(line + len - 5, " END\n") == 0);
                        assert_int_equal(sscanf(p, "load: line t%ld n%d", &t, &n), 2);
                        assert_true(t >= 0 && t < THREADS && n >= 0 && n < PER_THREAD);
                        assert_int_equal(seen[t][n], 0);
                        seen[t][n] = 1;
                        lines++;
                }
                fclose(f);
        }
        assert_true(files > 10);
        assert_int_equal(lines, THREADS * PER_THREAD);
}

static void test_rotation_keeps_max_files(void **state)
{
        char path[300], name[320];
        int saved;

        (void)state;
        snprintf(path, sizeof(path), "%s/keep.log", dir);
        configure(path, LOG_FMT_TEXT, 1024, 2, 0, 0);
        saved = quiet();
        for (int i = 0; i < 200; i++)
                log_info("keep", "line %d of a file that rotates often", i);
        loud(saved);
        snprintf(name, sizeof(name), "%s.2", path);
        assert_int_equal(access(name, F_OK), 0);
        snprintf(name, sizeof(name), "%s.3", path);
        assert_int_equal(access(name, F_OK), -1);
}

static size_t count_of(const char *hay, const char *needle)
{
        size_t n = 0;

        for (const char *p = hay; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

static void test_flood_suppressed(void **state)
{
        char path[300];
        unsigned long long before = log_dropped();
        char *s;
        int saved;

        (void)state;
        snprintf(path, sizeof(path), "%s/flood.log", dir);
        configure(path, LOG_FMT_TEXT, 0, 0, 5, 200 * USEC_PER_MSEC);
        saved = quiet();
        for (int i = 0; i < 1000; i++)
                log_warn("storm", "GPU %d reported the same fault again", i % 8);
        log_info("calm", "a different message is not limited");
        usleep(250 * 1000);
        log_tick();
        loud(saved);
        s = slurp(path);
        assert_non_null(s);
        assert_int_equal(count_of(s, "reported the same fault again"), 5 + 1); /* +1 summary */
        assert_non_null(strstr(s, "suppressed 995 messages like 'GPU %d reported the same fault "
                                  "again'"));
        assert_non_null(strstr(s, "a different message is not limited"));
        assert_int_equal(log_dropped() - before, 995);
        free(s);
}

static void test_reopen(void **state)
{
        char path[300], moved[320];
        char *s;
        int saved;

        (void)state;
        snprintf(path, sizeof(path), "%s/re.log", dir);
        snprintf(moved, sizeof(moved), "%s/re.log.old", dir);
        configure(path, LOG_FMT_TEXT, 0, 0, 0, 0);
        saved = quiet();
        log_info("t", "before the move");
        assert_int_equal(rename(path, moved), 0);
        log_info("t", "after the move, before reopen");
        assert_int_equal(log_reopen(), 0);
        log_info("t", "after reopen");
        loud(saved);
        s = slurp(path);
        assert_non_null(s);
        assert_non_null(strstr(s, "after reopen"));
        assert_null(strstr(s, "before the move"));
        free(s);
        s = slurp(moved);
        assert_non_null(strstr(s, "after the move, before reopen"));
        free(s);
}

static void test_counts(void **state)
{
        unsigned long long w = log_count(LOG_LVL_WARN), d = log_count(LOG_LVL_DEBUG);
        int saved;

        (void)state;
        configure(NULL, LOG_FMT_TEXT, 0, 0, 0, 0);
        saved = quiet();
        log_warn("c", "one warning");
        log_set_level(LOG_LVL_INFO);
        log_debug("c", "filtered out");
        loud(saved);
        assert_int_equal(log_count(LOG_LVL_WARN), w + 1);
        assert_int_equal(log_count(LOG_LVL_DEBUG), d);
}

static void test_syslog(void **state)
{
        log_options o;
        char err[128];
        unsigned long long before;

        (void)state;
        if (access("/dev/log", W_OK) != 0) {
                print_message("no /dev/log on this machine: syslog sink not exercised\n");
                skip();
        }
        log_options_init(&o);
        o.syslog = true;
        o.syslog_facility = LOG_LOCAL0;
        o.journald = 0;
        assert_int_equal(log_configure(&o, err, sizeof(err)), 0);
        before = log_count(LOG_LVL_WARN);
        log_warn("test", "vigil syslog sink check %d", (int)getpid());
        assert_int_equal(log_count(LOG_LVL_WARN), before + 1);
}

static void test_journald(void **state)
{
        log_options o;
        char err[128];
        unsigned long long dropped;

        (void)state;
        if (access("/run/systemd/journal/socket", W_OK) != 0) {
                print_message("no journald socket on this machine: journald sink not exercised\n");
                skip();
        }
        log_options_init(&o);
        o.journald = 1;
        assert_int_equal(log_configure(&o, err, sizeof(err)), 0);
        if (!log_journald_active()) {
                print_message("built without libsystemd: journald sink not exercised\n");
                skip();
        }
        dropped = log_dropped();
        log_fields(LOG_LVL_WARN, "test", ((log_field[]){{"gpu", "1"}, {"uuid", "GPU-x"}}),
                   "vigil journald sink check");
        assert_int_equal(log_dropped(), dropped); /* sd_journal_sendv succeeded */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_redact_table),
            cmocka_unit_test(test_size_and_facility),
            cmocka_unit_test_setup_teardown(test_json_fields_and_secrets, setup, teardown),
            cmocka_unit_test_setup_teardown(test_rotation_under_load, setup, teardown),
            cmocka_unit_test_setup_teardown(test_rotation_keeps_max_files, setup, teardown),
            cmocka_unit_test_setup_teardown(test_flood_suppressed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
            cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_syslog, setup, teardown),
            cmocka_unit_test_setup_teardown(test_journald, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
