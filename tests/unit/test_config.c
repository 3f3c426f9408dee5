/* test_config.c — the YAML config: defaults, every key, refusals with FILE:LINE, ${VAR}
 * expansion, the JSON view and the listen-address parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/config.h"
#include "health/health.h"
#include "common/vtime.h"
#include "fields/fields.h"

#define S USEC_PER_SEC

static int parse(const char *text, vigil_config *c, char *err, size_t errlen)
{
        return config_parse(text, strlen(text), "t.yaml", c, err, errlen);
}

static void test_defaults(void **state)
{
        vigil_config c;
        (void)state;

        config_init(&c);
        assert_string_equal(c.listen, "0.0.0.0:5555");
        assert_string_equal(c.socket, "/run/vigil/vigild.sock");
        assert_string_equal(c.data_dir, "/var/lib/vigil");
        assert_string_equal(c.nvml.library, "libnvidia-ml.so.1");
        assert_false(c.simulate.enabled);
        assert_string_equal(c.simulate.scenario, "");
        assert_int_equal(c.collection.fast_us, 1 * S);
        assert_int_equal(c.collection.slow_us, 10 * S);
        assert_int_equal(c.collection.n_fields, 0);
        assert_int_equal(c.collection.max_age_us, 3600 * S);
        assert_int_equal(c.collection.max_samples, 3600);
        assert_int_equal(c.metrics.naming, METRICS_NAMING_VIGIL);
        assert_string_equal(c.metrics.counters_csv, "");
        assert_int_equal(c.metrics.n_extra_labels, 0);
        assert_string_equal(c.metrics.hostname, "");
        assert_int_equal(c.http.max_connections, 256);
        assert_int_equal(c.http.max_connections_per_ip, 32);
        assert_int_equal(c.http.connection_timeout_us, 30 * S);
        assert_int_equal(c.http.threads, 2);
        assert_int_equal(c.http.max_request_body, 65536);
        assert_int_equal(c.logging.level, LOG_LVL_INFO);
        assert_int_equal(c.logging.format, LOG_FMT_TEXT);
        config_release(&c);
        config_release(&c); /* zeroed: fine twice */
        config_release(NULL);
}

static void test_empty_is_defaults(void **state)
{
        static const char *const empties[] = {
            "", "\n", "# only a comment\n", "---\n", "---\n...\n", "~\n", "{}\n"};
        (void)state;

        for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
                vigil_config c;
                char err[256];
                config_init(&c);
                free(c.listen);
                c.listen = strdup("127.0.0.1:1");
                assert_int_equal(parse(empties[i], &c, err, sizeof(err)), 0);
                /* Keys the file does not set take their defaults, not the old values. */
                assert_string_equal(c.listen, "0.0.0.0:5555");
                config_release(&c);
        }
}

static const char full[] = "listen: \"[::1]:9400\"\n"
                           "socket: \"\"\n"
                           "data_dir: /tmp/vigil\n"
                           "nvml: {library: /opt/nvidia/libnvidia-ml.so}\n"
                           "simulate: {enabled: true, scenario: tests/scenarios/two.yaml}\n"
                           "collection:\n"
                           "  tiers: {fast: 250ms, slow: 1m}\n"
                           "  fields:\n"
                           "    GPU_TEMP: 500ms\n"
                           "    DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 30s\n"
                           "    \"155\": off\n"
                           "    DCGM_FI_DEV_GPU_UTIL_RATIO: 2s\n"
                           "  keep: {max_age: 2h, max_samples: 100}\n"
                           "metrics:\n"
                           "  naming: dcgm\n"
                           "  counters_csv: /etc/dcgm-exporter/default-counters.csv\n"
                           "  extra_labels: {cluster: a, rack: \"12\"}\n"
                           "  hostname: node-7\n"
                           "http:\n"
                           "  max_connections: 1000\n"
                           "  max_connections_per_ip: 10\n"
                           "  connection_timeout: 5m\n"
                           "  threads: 8\n"
                           "  max_request_body: 1024\n"
                           "logging: {level: debug, format: json}\n";

static void test_every_key(void **state)
{
        vigil_config c;
        char err[256];
        (void)state;

        config_init(&c);
        assert_int_equal(parse(full, &c, err, sizeof(err)), 0);
        assert_string_equal(c.listen, "[::1]:9400");
        assert_string_equal(c.socket, "");
        assert_string_equal(c.data_dir, "/tmp/vigil");
        assert_string_equal(c.nvml.library, "/opt/nvidia/libnvidia-ml.so");
        assert_true(c.simulate.enabled);
        assert_string_equal(c.simulate.scenario, "tests/scenarios/two.yaml");
        assert_int_equal(c.collection.fast_us, 250 * USEC_PER_MSEC);
        assert_int_equal(c.collection.slow_us, 60 * S);
        assert_int_equal(c.collection.n_fields, 4);
        assert_int_equal(c.collection.fields[0].field_id, FLD_GPU_TEMP);
        assert_int_equal(c.collection.fields[0].interval_us, 500 * USEC_PER_MSEC);
        assert_int_equal(c.collection.fields[1].field_id, FLD_TOTAL_ENERGY_CONSUMPTION);
        assert_int_equal(c.collection.fields[1].interval_us, 30 * S);
        assert_int_equal(c.collection.fields[2].field_id, 155);
        assert_int_equal(c.collection.fields[2].interval_us, 0);
        assert_int_equal(c.collection.fields[3].field_id, FLD_GPU_UTIL); /* DCGM 4.6 alias */
        assert_int_equal(c.collection.max_age_us, 7200 * S);
        assert_int_equal(c.collection.max_samples, 100);
        assert_int_equal(c.metrics.naming, METRICS_NAMING_DCGM);
        assert_string_equal(c.metrics.counters_csv, "/etc/dcgm-exporter/default-counters.csv");
        assert_int_equal(c.metrics.n_extra_labels, 2);
        assert_string_equal(c.metrics.extra_labels[0].name, "cluster");
        assert_string_equal(c.metrics.extra_labels[0].value, "a");
        assert_string_equal(c.metrics.extra_labels[1].name, "rack");
        assert_string_equal(c.metrics.extra_labels[1].value, "12");
        assert_string_equal(c.metrics.hostname, "node-7");
        assert_int_equal(c.http.max_connections, 1000);
        assert_int_equal(c.http.max_connections_per_ip, 10);
        assert_int_equal(c.http.connection_timeout_us, 300 * S);
        assert_int_equal(c.http.threads, 8);
        assert_int_equal(c.http.max_request_body, 1024);
        assert_int_equal(c.logging.level, LOG_LVL_DEBUG);
        assert_int_equal(c.logging.format, LOG_FMT_JSON);
        config_release(&c);
}

/* Each bad input: the error must be "t.yaml:LINE:" and contain the substring. */
/* health, policies and alerting: lists of mappings (OPT_MAP_LIST) with item defaults. */
static void test_health_sections(void **state)
{
        const char *text = "health:\n"
                           "  expected_gpus: 8\n"
                           "  temperature: {warning: 80, critical: 88, hysteresis: 2}\n"
                           "  max_rss: 1GiB\n"
                           "  systems: {nvlink: false}\n"
                           "policies:\n"
                           "  - condition: critical\n"
                           "    actions: [log, exec]\n"
                           "    exec: /bin/true\n"
                           "    rate_limit: 2/1h\n"
                           "  - {condition: xid_79, dry_run: true}\n"
                           "alerting:\n"
                           "  alertmanagers: [http://a:9093, https://b:9093]\n"
                           "  webhooks:\n"
                           "    - {url: https://hook.example/x, secret: s3cret}\n"
                           "  resend_interval: 30s\n";
        vigil_config c;
        char err[512];
        uint64_t b = 0;
        json_t *j;
        (void)state;

        config_init(&c);
        assert_int_equal(c.health.temp_warning, 85);
        assert_int_equal(c.n_policies, 0);
        assert_int_equal(parse(text, &c, err, sizeof(err)), 0);
        assert_int_equal(c.health.expected_gpus, 8);
        assert_int_equal(c.health.temp_critical, 88);
        assert_false(c.health.systems[1]);
        assert_true(c.health.systems[0]);
        b = c.health.max_rss_bytes;
        assert_int_equal(b, 1ULL << 30);
        assert_int_equal(c.n_policies, 2);
        /* written straight into the health module's health_policy */
        assert_int_equal(c.policies[0].actions, (1u << HEALTH_ACT_LOG) | (1u << HEALTH_ACT_EXEC));
        assert_string_equal(c.policies[0].exec, "/bin/true");
        assert_int_equal(c.policies[0].rate_count, 2);
        assert_int_equal(c.policies[0].rate_window_us, 3600 * 1000000LL);
        assert_string_equal(c.policies[1].condition, "xid_79");
        assert_int_equal(c.policies[1].actions, 1u << HEALTH_ACT_LOG); /* item default */
        assert_int_equal(c.policies[1].rate_count, 1);                 /* 1/10m */
        assert_true(c.policies[1].dry_run);
        assert_int_equal(c.policies[1].power_limit_percent, 80);
        assert_string_equal(c.alerting.alertmanagers, "http://a:9093,https://b:9093");
        assert_int_equal(c.alerting.n_webhooks, 1);
        assert_string_equal(c.alerting.webhooks[0].secret, "s3cret");
        assert_int_equal(c.health.resend_interval_us, 30 * 1000000LL);
        j = config_to_json(&c);
        assert_non_null(j);
        assert_int_equal(json_array_size(json_object_get(j, "policies")), 2);
        {
                json_t *p0 = json_array_get(json_object_get(j, "policies"), 0);
                assert_int_equal(json_array_size(json_object_get(p0, "actions")), 2);
                assert_string_equal(json_string_value(json_object_get(p0, "rate_limit")), "2/1h");
                assert_string_equal(json_string_value(json_object_get(p0, "condition")),
                                    "critical");
        }
        assert_string_equal(
            json_string_value(json_object_get(
                json_array_get(json_object_get(json_object_get(j, "alerting"), "webhooks"), 0),
                "secret")),
            "<redacted>");
        json_decref(j);
        config_release(&c);
}

/* diag: written straight into the diag module's diag_config; the diag policy action and its
 * keys; unknown keys and bad values refused with the file's line. */
static void test_diag_section(void **state)
{
        const char *text = "diag:\n"
                           "  retention: {count: 20, max_age: 7d}\n"
                           "  gpu_count: {expected: 8}\n"
                           "  pcie: {min_gbps: 40, max_latency_us: 30}\n"
                           "  memtest: {duration: 10m, fraction: 0.8}\n"
                           "  sm_stress: {min_tflops: 45.5}\n"
                           "  level3: {parallel: false}\n"
                           "policies:\n"
                           "  - {condition: xid_48, actions: [log, diag], diag_level: 2,"
                           " diag_gpus: all}\n"
                           "  - {condition: ecc_dbe_volatile, actions: [diag]}\n";
        static const struct {
                const char *text, *want;
        } bad[] = {
            {"diag:\n  memtest: {duraton: 10s}\n", "unknown key 'diag.memtest.duraton'"},
            {"diag:\n  bogus: 1\n", "unknown key 'diag.bogus'"},
            {"diag:\n  memtest: {fraction: 1.5}\n", "out of range"},
            {"diag:\n  pcie: {min_gbps: -1}\n", "diag.pcie.min_gbps"},
            {"policies:\n  - {condition: xid, actions: [diag], diag_level: 4}\n", "out of range"},
            {"policies:\n  - {condition: xid, actions: [diag], diag_gpus: some}\n", "some"},
            {"policies:\n  - {condition: xid, actions: [diagnose]}\n", "reset_gpu, diag)"},
        };
        vigil_config c;
        config_key_info ki;
        char err[512];
        (void)state;

        config_init(&c);
        assert_int_equal(c.diag.retention_count, 1000);
        assert_int_equal(c.diag.memtest_duration_us, 240 * 1000000LL);
        assert_true(c.diag.level3_parallel);
        assert_true(c.diag.pcie_min_gbps == 0); /* not set: the specification decides */
        assert_int_equal(parse(text, &c, err, sizeof(err)), 0);
        assert_int_equal(c.diag.retention_count, 20);
        assert_int_equal(c.diag.retention_max_age_us, 7 * 86400 * 1000000LL);
        assert_int_equal(c.diag.expected_gpus, 8);
        assert_true(c.diag.pcie_min_gbps == 40 && c.diag.pcie_max_latency_us == 30);
        assert_int_equal(c.diag.memtest_duration_us, 600 * 1000000LL);
        assert_true(c.diag.memtest_fraction == 0.8 && c.diag.sm_stress_min_tflops == 45.5);
        assert_false(c.diag.level3_parallel);
        assert_int_equal(c.policies[0].actions, (1u << HEALTH_ACT_LOG) | (1u << HEALTH_ACT_DIAG));
        assert_int_equal(c.policies[0].diag_level, 2);
        assert_int_equal(c.policies[0].diag_gpus, 1);
        assert_int_equal(c.policies[1].diag_level, 1); /* item defaults */
        assert_int_equal(c.policies[1].diag_gpus, 0);
        assert_int_equal(config_key_find("diag.memtest.duration", &ki), 0);
        assert_int_equal(ki.mod, CONFIG_MOD_DIAG);
        assert_int_equal(ki.apply, CONFIG_APPLY_RELOAD);
        assert_string_equal(config_module_name(CONFIG_MOD_DIAG), "diag");
        config_release(&c);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                config_init(&c);
                assert_int_equal(parse(bad[i].text, &c, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].want)) {
                        print_error("'%s': got '%s', want '%s'\n", bad[i].text, err, bad[i].want);
                        fail();
                }
                config_release(&c);
        }
}

static void test_bad_inputs(void **state)
{
        static const struct {
                const char *text;
                int line;
                const char *want;
        } cases[] = {
            {"colection: {}\n", 1, "unknown key 'colection' (did you mean 'collection'?)"},
            {"listen: \"1.2.3.4:1\"\nlisten_addr: x\n", 2, "unknown key 'listen_addr'"},
            {"collection:\n  tiers:\n    fast: 0s\n", 3,
             "collection.tiers.fast: '0s' is out of range (100ms..60s)"},
            {"collection:\n  tiers:\n    fast: 2m\n", 3, "'2m' is out of range (100ms..60s)"},
            {"collection: {tiers: {slow: 1s}}\n", 1,
             "collection.tiers.slow: '1s' is out of range (5s..1h): energy"},
            {"collection: {tiers: {fast: soon}}\n", 1,
             "collection.tiers.fast: 'soon' is not a duration"},
            {"collection: {tiers: {fast: 30s, slow: 10s}}\n", 1,
             "collection.tiers.fast ('30s') must not be longer than collection.tiers.slow "
             "('10s')"},
            {"collection:\n  tiers:\n    slow: 5s\n    fast: 6s\n", 4, "must not be longer"},
            {"collection:\n  tiers: [1s, 10s]\n", 2,
             "collection.tiers: expected a mapping, got a list"},
            {"collection: {keep: {max_age: 31d}}\n", 1, "'31d' is out of range (1s..30d)"},
            {"collection: {keep: {max_samples: 0}}\n", 1,
             "collection.keep.max_samples: '0' is out of range (1..1000000)"},
            {"collection: {keep: {max_samples: -5}}\n", 1, "'-5' is out of range"},
            {"collection: {keep: {max_samples: 1e3}}\n", 1, "'1e3' is not an integer"},
            {"collection: {keep: {max_samples: 99999999999999999999}}\n", 1, "is out of range"},
            {"collection:\n  fields:\n    NOT_A_FIELD: 1s\n", 3,
             "collection.fields: unknown field 'NOT_A_FIELD'"},
            {"collection:\n  fields:\n    GPU_TEMP: 10ms\n", 3,
             "collection.fields.GPU_TEMP: '10ms' is out of range (100ms..1h)"},
            {"collection:\n  fields:\n    TOTAL_ENERGY_CONSUMPTION: 1s\n", 3,
             "'1s' is out of range (5s..1h) for a slow-tier field"},
            {"collection:\n  fields:\n    UUID: 1s\n", 3, "only 'off' is accepted"},
            {"collection:\n  fields:\n    GPU_TEMP: sometimes\n", 3, "is not a duration"},
            {"collection:\n  fields:\n    GPU_TEMP: 1s\n    \"150\": 2s\n", 4,
             "duplicate field (GPU_TEMP, id 150"},
            {"collection:\n  fields: [GPU_TEMP]\n", 2, "expected a mapping, got a list"},
            {"collection:\n  fields:\n    GPU_TEMP: {a: 1}\n", 3,
             "expected a duration or 'off', got a mapping"},
            {"http:\n  threads: 2\n  threads: 3\n", 3,
             "duplicate key 'http.threads' (first given at line 2)"},
            {"http: {}\nlogging: {}\nhttp: {}\n", 3, "duplicate key 'http'"},
            {"http:\n  threads: 65\n", 2, "http.threads: '65' is out of range (1..64)"},
            {"http:\n  threads: many\n", 2, "http.threads: 'many' is not an integer"},
            {"http:\n  threads:\n", 2, "http.threads: a value is required"},
            {"http:\n  threads: [1]\n", 2, "expected an integer, got a list"},
            {"http: {max_request_body: 1023}\n", 1, "(1024..16777216)"},
            {"http: {connection_timeout: 11m}\n", 1, "(1s..10m)"},
            {"http: {max_connections: 10, max_connections_per_ip: 11}\n", 1,
             "http.max_connections_per_ip ('11') must not be more than "
             "http.max_connections ('10')"},
            {"http: {max_connections: 0}\n", 1, "http.max_connections: '0' is out of range"},
            {"logging:\n  level: verbose\n", 2,
             "logging.level: 'verbose' is not one of debug, info, warn, error"},
            {"logging: {format: xml}\n", 1, "'xml' is not one of text, json"},
            {"metrics: {naming: prometheus}\n", 1, "is not one of vigil, dcgm"},
            {"simulate: {enabled: yes}\n", 1,
             "simulate.enabled: 'yes' is not a boolean (true or false)"},
            {"listen: 5555\n", 1, "listen: '5555' is not ADDR:PORT"},
            {"listen: \"0.0.0.0:70000\"\n", 1, "is not ADDR:PORT"},
            {"listen: {host: a}\n", 1, "listen: expected a string, got a mapping"},
            {"data_dir: \"\"\n", 1, "data_dir: must not be empty"},
            {"socket: /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
             1, "too long for a unix socket path"},
            {"metrics:\n  extra_labels:\n    gpu: x\n", 3, "'gpu' is a reserved label"},
            {"metrics:\n  extra_labels:\n    __meta: x\n", 3, "is not a valid label name"},
            {"metrics:\n  extra_labels:\n    9lives: x\n", 3, "is not a valid label name"},
            {"metrics:\n  extra_labels:\n    a-b: x\n", 3, "is not a valid label name"},
            {"metrics:\n  extra_labels:\n    a: x\n    a: y\n", 4, "duplicate label 'a'"},
            {"metrics:\n  extra_labels:\n    a: \"\"\n", 3, "must not be empty"},
            {"metrics:\n  extra_labels: [a]\n", 2, "expected a mapping, got a list"},
            {"health:\n  temperature: {warning: 95, critical: 90}\n", 2,
             "health.temperature.warning ('95') must not be higher than"},
            {"policies:\n  - condition: temprature\n", 2, "'temprature' is not a condition"},
            {"policies:\n  - actions: [log]\n", 2, "policies[0]: 'condition' is required"},
            {"policies:\n  - {condition: xid_79, actions: [reboot]}\n", 2,
             "'reboot' is not an action"},
            {"policies:\n  - {condition: critical, rate_limit: 5}\n", 2, "is not a rate limit"},
            {"policies:\n  - {condition: critical, bogus: 1}\n", 2, "unknown key 'bogus'"},
            {"alerting:\n  webhooks: [{url: \"https://x/y\", secret: \""
             "0123456789012345678901234567890123456789012345678901234567890123456789012345678901"
             "2345678901234567890123456789012345678901234567890123456789012345678901234567890123"
             "4567890123456789012345678901234567890123456789012345678901234567890123456789012345"
             "4567890123456789012345678901234567890123456789012345678901234567890123456789012345"
             "\"}]\n",
             2, "is too long (at most 255 bytes)"},
            {"alerting:\n  alertmanagers: [ftp://x]\n", 2, "is not an http:// or https:// URL"},
            {"alerting:\n  webhooks: [{secret: s}]\n", 2, "'url' is required"},
            {"health:\n  max_rss: 12parsecs\n", 2, "is not a size"},
            {"listen: \"0.0.0.0:1\"\nsecurity: {metrics_public: maybe}\n", 2,
             "security.metrics_public: 'maybe' is not a boolean"},
            {"security:\n  authentication: {jwt_secret: short}\n", 2,
             "HS256 needs at least 32 random bytes"},
            {"security:\n  network: {allowed_ips: [\"10.0.0.0/33\"]}\n", 2,
             "'10.0.0.0/33' is not an address or CIDR"},
            {"policies: {a: 1}\n", 1, "policies: expected a list of mappings, got a mapping"},
            {"alerting: {bogus: 1}\n", 1, "unknown key 'alerting.bogus'"},
            {"backup: {schedule: 10s}\n", 1, "backup.schedule: '10s' is not an interval"},
            {"backup:\n  keep: {count: 0}\n", 2, "backup.keep.count"},
            {"backup: {compression: lz4}\n", 1, "backup.compression"},
            {"security:\n  encryption: {key_rotation_days: -1}\n", 2,
             "security.encryption.key_rotation_days"},
            {"logging:\n  file: {nope: /x}\n", 2, "unknown key 'logging.file.nope'"},
            {"a: &x 1\nb: *x\n", 1, "unknown key 'a'"},
            {"http: &h {threads: 2}\nmetrics: *h\n", 2, "aliases ('*h') are not supported"},
            {"- listen\n", 1, "the top level must be a mapping, not a list"},
            {"just a string\n", 1, "the top level must be a mapping, not a scalar"},
            {"listen: \"0.0.0.0:1\"\n---\nlisten: \"0.0.0.0:2\"\n", 2,
             "only one YAML document is allowed"},
            {"listen: \"0.0.0.0:1\n", 2, "invalid YAML: found unexpected end of stream"},
            {"http:\n  threads: 2\n bad: 1\n", 3, "invalid YAML"},
            {"? [a, b]\n: 1\n", 1, "keys must be names, not a list"},
            {"collection.tiers: {fast: 1s}\n", 1, "unknown key 'collection.tiers'"},
            {"listen: \"a\\0b:1\"\n", 1, "contains a NUL byte"},
            {"metrics: {hostname: \"${NOT_SET_VIGIL_TEST}\"}\n", 1,
             "metrics.hostname: environment variable 'NOT_SET_VIGIL_TEST' is not set"},
            {"metrics:\n  hostname: \"${1BAD}\"\n", 2, "is not a valid variable reference"},
            {"metrics:\n  hostname: \"${UNCLOSED\"\n", 2, "unterminated '${'"},
            {"collection: {tiers: {fast: \"${VIGIL_TEST_ZERO}\"}}\n", 1,
             "'0s' is out of range (100ms..60s) (expanded from '${VIGIL_TEST_ZERO}')"},
        };
        (void)state;

        setenv("VIGIL_TEST_ZERO", "0s", 1);
        unsetenv("NOT_SET_VIGIL_TEST");
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                vigil_config c;
                char err[512], prefix[32];
                int r;

                config_init(&c);
                r = parse(cases[i].text, &c, err, sizeof(err));
                if (r != -EINVAL || !strstr(err, cases[i].want)) {
                        print_error("case %zu: r=%d err='%s' want '%s'\n", i, r, err,
                                    cases[i].want);
                        fail();
                }
                snprintf(prefix, sizeof(prefix), "t.yaml:%d:", cases[i].line);
                if (strncmp(err, prefix, strlen(prefix)) != 0) {
                        print_error("case %zu: err='%s' want line %d\n", i, err, cases[i].line);
                        fail();
                }
                config_release(&c);
        }
}

static void test_env_expansion(void **state)
{
        vigil_config c;
        char err[256];
        (void)state;

        setenv("VIGIL_TEST_NODE", "gpu-node-3", 1);
        setenv("VIGIL_TEST_EMPTY", "", 1);
        setenv("VIGIL_TEST_FAST", "500ms", 1);
        setenv("VIGIL_TEST_SIM", "true", 1);
        unsetenv("VIGIL_TEST_UNSET");
        config_init(&c);
        assert_int_equal(parse("metrics:\n"
                               "  hostname: ${VIGIL_TEST_NODE}\n"
                               "  counters_csv: \"/etc/${VIGIL_TEST_NODE}/x-$$HOME.csv\"\n"
                               "  extra_labels:\n"
                               "    zone: ${VIGIL_TEST_UNSET:-eu-west-1}\n"
                               "    tier: ${VIGIL_TEST_EMPTY:-gold}\n"
                               "    price: \"$5 and $$ and $\"\n"
                               "collection: {tiers: {fast: \"${VIGIL_TEST_FAST}\"}}\n"
                               "simulate: {enabled: \"${VIGIL_TEST_SIM}\", scenario: "
                               "\"${VIGIL_TEST_EMPTY}\"}\n",
                               &c, err, sizeof(err)),
                         0);
        assert_string_equal(c.metrics.hostname, "gpu-node-3");
        assert_string_equal(c.metrics.counters_csv, "/etc/gpu-node-3/x-$HOME.csv");
        assert_string_equal(c.metrics.extra_labels[0].value, "eu-west-1");
        assert_string_equal(c.metrics.extra_labels[1].value, "gold"); /* :- also covers "" */
        assert_string_equal(c.metrics.extra_labels[2].value, "$5 and $ and $");
        assert_int_equal(c.collection.fast_us, 500 * USEC_PER_MSEC);
        assert_true(c.simulate.enabled);
        assert_string_equal(c.simulate.scenario, "");

        /* Unset: refused, naming the variable and the line; the config is untouched. */
        assert_int_equal(parse("listen: \"0.0.0.0:1\"\nmetrics:\n  hostname: ${VIGIL_TEST_UNSET}\n",
                               &c, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "t.yaml:3:13: metrics.hostname: environment variable "
                                    "'VIGIL_TEST_UNSET' is not set"));
        assert_string_equal(c.metrics.hostname, "gpu-node-3");
        config_release(&c);
}

static void test_failure_keeps_previous(void **state)
{
        vigil_config c;
        char err[256];
        (void)state;

        config_init(&c);
        assert_int_equal(parse(full, &c, err, sizeof(err)), 0);
        assert_int_equal(
            parse("http: {threads: 4}\nlogging: {level: loud}\n", &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "t.yaml:2:18: logging.level: 'loud' is not one of debug, info, "
                                 "warn, error");
        /* Still the full config, not half of the new one. */
        assert_int_equal(c.http.threads, 8);
        assert_string_equal(c.listen, "[::1]:9400");
        assert_int_equal(c.collection.n_fields, 4);
        assert_int_equal(c.metrics.n_extra_labels, 2);
        /* err may be NULL. */
        assert_int_equal(parse("nope: 1\n", &c, NULL, 0), -EINVAL);
        assert_int_equal(c.http.threads, 8);
        config_release(&c);
}

static void test_size_limit_and_load(void **state)
{
        vigil_config c;
        char err[512], path[] = "/tmp/vigil-test-config-XXXXXX";
        char *big;
        int fd;
        (void)state;

        config_init(&c);
        big = malloc(CONFIG_MAX_FILE_SIZE + 2);
        assert_non_null(big);
        memset(big, '#', CONFIG_MAX_FILE_SIZE + 1);
        big[CONFIG_MAX_FILE_SIZE + 1] = '\0';
        assert_int_equal(
            config_parse(big, CONFIG_MAX_FILE_SIZE + 1, "big.yaml", &c, err, sizeof(err)), -E2BIG);
        assert_non_null(strstr(err, "big.yaml"));

        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, big, CONFIG_MAX_FILE_SIZE + 1), CONFIG_MAX_FILE_SIZE + 1);
        assert_int_equal(config_load(path, &c, err, sizeof(err)), -E2BIG);
        assert_non_null(strstr(err, "cannot read '"));
        assert_non_null(strstr(err, "larger than 1 MiB"));

        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(pwrite(fd, "http:\n  threads: 9\n", 19, 0), 19);
        assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
        assert_int_equal(c.http.threads, 9);

        assert_int_equal(pwrite(fd, "http:\n  threads: 99\n", 20, 0), 20);
        assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
        assert_int_equal(strncmp(err, path, strlen(path)), 0);
        assert_non_null(strstr(err, ":2:12: http.threads: '99' is out of range (1..64)"));
        assert_int_equal(c.http.threads, 9);
        close(fd);
        unlink(path);

        assert_int_equal(config_load("/nonexistent/vigil.yaml", &c, err, sizeof(err)), -ENOENT);
        assert_string_equal(err,
                            "cannot read '/nonexistent/vigil.yaml': no such file or directory");
        assert_int_equal(config_load("/tmp", &c, err, sizeof(err)), -EISDIR);
        free(big);
        config_release(&c);
}

static void test_json(void **state)
{
        vigil_config a, b;
        char err[256];
        json_t *ja, *jb;
        char *text;
        (void)state;

        config_init(&a);
        assert_int_equal(parse(full, &a, err, sizeof(err)), 0);
        ja = config_to_json(&a);
        assert_non_null(ja);
        assert_string_equal(json_string_value(json_object_get(ja, "listen")), "[::1]:9400");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(ja, "nvml"), "library")),
            "/opt/nvidia/libnvidia-ml.so");
        json_t *col = json_object_get(ja, "collection");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(col, "tiers"), "fast")), "250ms");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(col, "fields"), "GPU_TEMP")),
            "500ms");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(col, "fields"), "POWER_USAGE")),
            "off");
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(col, "keep"), "max_samples")), 100);
        assert_true(json_is_true(json_object_get(json_object_get(ja, "simulate"), "enabled")));
        json_t *m = json_object_get(ja, "metrics");
        assert_string_equal(json_string_value(json_object_get(m, "naming")), "dcgm");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(m, "extra_labels"), "rack")), "12");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(ja, "logging"), "level")), "debug");
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(ja, "http"), "threads")), 8);

        /* Round trip: JSON is YAML, so the view parses back to the same config. */
        text = json_dumps(ja, JSON_INDENT(2));
        assert_non_null(text);
        config_init(&b);
        assert_int_equal(parse(text, &b, err, sizeof(err)), 0);
        jb = config_to_json(&b);
        assert_true(json_equal(ja, jb));
        assert_int_equal(b.collection.n_fields, 4);
        assert_int_equal(b.http.connection_timeout_us, 300 * S);
        free(text);
        json_decref(ja);
        json_decref(jb);
        config_release(&b);

        /* Defaults: every section is present. */
        ja = config_to_json(&a);
        config_release(&a);
        config_init(&a);
        json_decref(ja);
        ja = config_to_json(&a);
        assert_string_equal(json_string_value(json_object_get(ja, "socket")),
                            "/run/vigil/vigild.sock");
        assert_int_equal(
            json_object_size(json_object_get(json_object_get(ja, "collection"), "fields")), 0);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(ja, "http"), "connection_timeout")),
            "30s");
        json_decref(ja);
        config_release(&a);
}

/* deploy/config/vigil.yaml documents every key at its default: it must say exactly that. */
static void test_example_is_defaults(void **state)
{
        const char *src = getenv("VIGIL_SOURCE_DIR");
        vigil_config c, d;
        char path[4096], err[512];
        json_t *jc, *jd;
        (void)state;

        if (!src)
                skip(); /* run outside ctest */
        snprintf(path, sizeof(path), "%s/deploy/config/vigil.yaml", src);
        config_init(&c);
        config_init(&d);
        if (config_load(path, &c, err, sizeof(err)) < 0) {
                print_error("%s\n", err);
                fail();
        }
        jc = config_to_json(&c);
        jd = config_to_json(&d);
        assert_true(json_equal(jc, jd));
        json_decref(jc);
        json_decref(jd);
        config_release(&c);
        config_release(&d);
}

static void test_listen(void **state)
{
        static const struct {
                const char *in;
                int ret;
                const char *host;
                unsigned port;
        } cases[] = {
            {"0.0.0.0:5555", 0, "0.0.0.0", 5555},
            {"127.0.0.1:0", 0, "127.0.0.1", 0},
            {"[::1]:5555", 0, "::1", 5555},
            {"[::]:80", 0, "::", 80},
            {"[fe80::1:2]:65535", 0, "fe80::1:2", 65535},
            {"localhost:9400", 0, "localhost", 9400},
            {"gpu-node-1.example.com:1", 0, "gpu-node-1.example.com", 1},
            {"0.0.0.0", -EINVAL, NULL, 0},
            {"0.0.0.0:", -EINVAL, NULL, 0},
            {":5555", -EINVAL, NULL, 0},
            {"0.0.0.0:65536", -EINVAL, NULL, 0},
            {"0.0.0.0:99999999", -EINVAL, NULL, 0},
            {"0.0.0.0:-1", -EINVAL, NULL, 0},
            {"0.0.0.0:http", -EINVAL, NULL, 0},
            {"0.0.0.0:55 ", -EINVAL, NULL, 0},
            {"::1:5555", -EINVAL, NULL, 0},
            {"[::1]5555", -EINVAL, NULL, 0},
            {"[::1]", -EINVAL, NULL, 0},
            {"[]:1", -EINVAL, NULL, 0},
            {"[nope]:1", -EINVAL, NULL, 0},
            {"[1.2.3.4]:1", -EINVAL, NULL, 0},
            {"999.1.1.1:1", -EINVAL, NULL, 0},
            {"a b:1", -EINVAL, NULL, 0},
            {"", -EINVAL, NULL, 0},
        };
        char host[64];
        unsigned port;
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int r;
                snprintf(host, sizeof(host), "untouched");
                port = 4242;
                r = config_parse_listen(cases[i].in, host, sizeof(host), &port);
                if (r != cases[i].ret) {
                        print_error("case %zu '%s': r=%d\n", i, cases[i].in, r);
                        fail();
                }
                if (r == 0) {
                        assert_string_equal(host, cases[i].host);
                        assert_int_equal(port, cases[i].port);
                } else {
                        assert_string_equal(host, "untouched");
                        assert_int_equal(port, 4242);
                }
        }
        assert_int_equal(config_parse_listen("localhost:1", host, 5, &port), -ENAMETOOLONG);
        assert_int_equal(config_parse_listen(NULL, host, sizeof(host), &port), -EINVAL);
}

/* Every key names its module and says whether a reload applies it; the ones a running process
 * cannot change are restart-only. */
static void test_table_owners(void **state)
{
        static const struct {
                const char *path;
                enum config_module mod;
                enum config_apply apply;
        } want[] = {
            {"listen", CONFIG_MOD_DAEMON, CONFIG_APPLY_RESTART},
            {"socket", CONFIG_MOD_DAEMON, CONFIG_APPLY_RESTART},
            {"data_dir", CONFIG_MOD_DAEMON, CONFIG_APPLY_RESTART},
            {"collection.tiers.fast", CONFIG_MOD_SAMPLER, CONFIG_APPLY_RESTART},
            {"metrics.counters_csv", CONFIG_MOD_API, CONFIG_APPLY_RELOAD},
            {"metrics.naming", CONFIG_MOD_API, CONFIG_APPLY_RELOAD},
            {"metrics.hostname", CONFIG_MOD_API, CONFIG_APPLY_RESTART},
            {"policies", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"alerting.alertmanagers", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"alerting.webhooks", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"alerting.resend_interval", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"alerting.timeout", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"security.tls.enabled", CONFIG_MOD_SECURITY, CONFIG_APPLY_RESTART},
            {"security.tls.client_auth", CONFIG_MOD_SECURITY, CONFIG_APPLY_RELOAD},
            {"logging.level", CONFIG_MOD_LOG, CONFIG_APPLY_RELOAD},
            {"logging.file.max_size", CONFIG_MOD_LOG, CONFIG_APPLY_RELOAD},
            {"health.temperature.warning", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"health.max_rss", CONFIG_MOD_HEALTH, CONFIG_APPLY_RELOAD},
            {"security.network.allowed_ips", CONFIG_MOD_SECURITY, CONFIG_APPLY_RELOAD},
            {"security.tls.key_file", CONFIG_MOD_SECURITY, CONFIG_APPLY_RELOAD},
            {"security.web_config_file", CONFIG_MOD_SECURITY, CONFIG_APPLY_RELOAD},
            {"security.encryption.encryption_key", CONFIG_MOD_STORE, CONFIG_APPLY_RESTART},
            {"backup.schedule", CONFIG_MOD_STORE, CONFIG_APPLY_RESTART},
        };
        size_t n = config_key_count();
        config_key_info ki;
        (void)state;

        assert_true(n > 100);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(config_key_info_at(i, &ki), 0);
                assert_non_null(ki.path);
                assert_non_null(ki.type);
                assert_true((unsigned)ki.mod < CONFIG_MOD_COUNT);
                assert_string_not_equal(config_module_name(ki.mod), "?");
                assert_true(ki.apply == CONFIG_APPLY_RELOAD || ki.apply == CONFIG_APPLY_RESTART);
                /* a key's first segment never spans two modules' sections by accident */
                assert_int_equal(config_key_find(ki.path, &ki), 0);
        }
        assert_int_equal(config_key_info_at(n, &ki), -ERANGE);
        assert_int_equal(config_key_find("no.such.key", &ki), -ENOENT);
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                assert_int_equal(config_key_find(want[i].path, &ki), 0);
                assert_int_equal(ki.mod, want[i].mod);
                assert_int_equal(ki.apply, want[i].apply);
        }
}

/* One size parser for every size key: MB = 10^6, MiB = 2^20; "100M" is refused as ambiguous. */
static void test_units(void **state)
{
        static const struct {
                const char *s;
                int r;
                uint64_t v;
        } cases[] = {
            {"4096", 0, 4096},          {"10B", 0, 10},
            {"1kB", 0, 1000},           {"1KB", 0, 1000},
            {"100MB", 0, 100000000ULL}, {"100MiB", 0, 100ULL << 20},
            {"2GB", 0, 2000000000ULL},  {"2GiB", 0, 2ULL << 30},
            {"1TiB", 0, 1ULL << 40},    {"100M", -EDOM, 0},
            {"1g", -EDOM, 0},           {"5Mi", -EDOM, 0},
            {"12parsecs", -EINVAL, 0},  {"", -EINVAL, 0},
            {"-1MB", -EINVAL, 0},       {"99999999999999999GiB", -ERANGE, 0},
        };
        vigil_config c;
        char err[512];
        uint64_t v;
        json_t *j;
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                v = 7;
                assert_int_equal(config_parse_size(cases[i].s, &v), cases[i].r);
                assert_int_equal(v, cases[i].r == 0 ? cases[i].v : 7);
        }
        /* the same text is the same size in both size keys */
        config_init(&c);
        assert_int_equal(parse("logging:\n  file: {max_size: 100MB}\nhealth:\n  max_rss: 100MB\n",
                               &c, err, sizeof(err)),
                         0);
        assert_int_equal(c.logging.file_max_size, 100000000ULL);
        assert_int_equal(c.health.max_rss_bytes, 100000000ULL);
        j = config_to_json(&c);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "health"), "max_rss")), "100MB");
        json_decref(j);
        assert_int_equal(parse("health:\n  max_rss: 100M\n", &c, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "ambiguous"));
        assert_int_equal(parse("logging:\n  file: {max_size: 1KiB}\n", &c, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "out of range"));
        config_release(&c);
}

/* A reload keeps restart-only values running and names them; reloadable ones change. */
static void test_keep_restart(void **state)
{
        vigil_config run, next;
        const char *pending[8], *applied[8];
        char err[512];
        (void)state;

        config_init(&run);
        config_init(&next);
        assert_int_equal(
            parse("listen: \"127.0.0.1:1\"\nlogging: {level: warn}\n", &run, err, sizeof(err)), 0);
        assert_int_equal(parse("listen: \"127.0.0.1:2\"\nlogging: {level: debug}\n"
                               "health:\n  temperature: {warning: 70}\n",
                               &next, err, sizeof(err)),
                         0);
        assert_int_equal(config_changed_reloadable(&next, &run, applied, 8), 2);
        assert_string_equal(applied[0], "logging.level");
        assert_string_equal(applied[1], "health.temperature.warning");
        assert_int_equal(config_keep_restart(&next, &run, pending, 8), 1);
        assert_string_equal(pending[0], "listen");
        assert_string_equal(next.listen, "127.0.0.1:1"); /* keeps running */
        assert_string_equal(run.listen, "127.0.0.1:2");  /* the waiting value */
        assert_int_equal(next.logging.level, LOG_LVL_DEBUG);
        assert_int_equal(config_keep_restart(&next, &next, pending, 8), 0);
        /* a module whose apply failed keeps its running values */
        assert_int_equal(config_keep_module(&next, &run, CONFIG_MOD_LOG), 1);
        assert_int_equal(next.logging.level, LOG_LVL_WARN);
        assert_int_equal(next.health.temp_warning, 70);
        config_release(&run);
        config_release(&next);
}

/* docs/configuration.md tells the truth: every row of its key tables says "reload" or "restart"
 * as the table does, and every key of the table is documented. */
/* A refused value is quoted in the message (logged, audited, answered to a reload request) with
 * its credentials masked: no password, token or query string of a bad URL leaks through it. */
static void test_refusal_masks_credentials(void **state)
{
        static const char *const bad[] = {
            "alerting: {alertmanagers: ['ftp://am:PWMARK@am.example/?token=TOKMARK']}\n",
            "alerting: {webhooks: [{url: 'gopher://u:PWMARK@h/p?token=TOKMARK'}]}\n",
        };
        vigil_config c;
        char err[1024];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                config_init(&c);
                assert_int_equal(parse(bad[i], &c, err, sizeof(err)), -EINVAL);
                assert_non_null(strstr(err, "not an http"));
                assert_null(strstr(err, "PWMARK"));
                assert_null(strstr(err, "TOKMARK"));
                config_release(&c);
        }
}

static void test_docs_match_table(void **state)
{
        const char *src = getenv("VIGIL_SOURCE_DIR");
        char path[4096], line[2048];
        size_t rows = 0, n = config_key_count();
        bool *seen = calloc(n, sizeof(bool));
        FILE *f;
        (void)state;

        if (!src)
                skip(); /* run outside ctest */
        snprintf(path, sizeof(path), "%s/docs/configuration.md", src);
        f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(seen);
        while (fgets(line, sizeof(line), f)) {
                char key[128], *b, *e, *apply;
                config_key_info ki;
                if (strncmp(line, "| `", 3))
                        continue;
                b = line + 3;
                e = strchr(b, '`');
                apply = e ? strstr(e, "| ") : NULL;
                if (!e || !apply || (size_t)(e - b) >= sizeof(key))
                        continue;
                snprintf(key, sizeof(key), "%.*s", (int)(e - b), b);
                apply += 2;
                if (strncmp(apply, "reload |", 8) && strncmp(apply, "restart |", 9))
                        continue; /* another table (policies entries) */
                rows++;
                if (config_key_find(key, &ki) < 0) {
                        print_error("documented key '%s' is not in the table\n", key);
                        fail();
                }
                if ((ki.apply == CONFIG_APPLY_RELOAD) != !strncmp(apply, "reload", 6)) {
                        print_error("'%s': the docs and the table disagree on reload\n", key);
                        fail();
                }
                /* the row's other keys ("`a.b.c` / `d`", "`.E`", "`a.b.x` … `y`") share its
                 * first key's prefix: count every key under that prefix as documented */
                e = strrchr(key, '.');
                for (size_t i = 0; i < n; i++) {
                        config_key_info k;
                        config_key_info_at(i, &k);
                        if (!strcmp(k.path, key) ||
                            (e && !strncmp(k.path, key, (size_t)(e - key) + 1) &&
                             strstr(line, strrchr(k.path, '.') + 1)))
                                seen[i] = true;
                }
        }
        fclose(f);
        assert_true(rows > 60);
        for (size_t i = 0; i < n; i++) {
                config_key_info k;
                config_key_info_at(i, &k);
                if (!seen[i]) {
                        print_error("key '%s' is not documented in docs/configuration.md\n",
                                    k.path);
                        fail();
                }
        }
        free(seen);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_diag_section),
            cmocka_unit_test(test_empty_is_defaults),
            cmocka_unit_test(test_every_key),
            cmocka_unit_test(test_bad_inputs),
            cmocka_unit_test(test_health_sections),
            cmocka_unit_test(test_env_expansion),
            cmocka_unit_test(test_failure_keeps_previous),
            cmocka_unit_test(test_size_limit_and_load),
            cmocka_unit_test(test_json),
            cmocka_unit_test(test_example_is_defaults),
            cmocka_unit_test(test_listen),
            cmocka_unit_test(test_table_owners),
            cmocka_unit_test(test_units),
            cmocka_unit_test(test_keep_restart),
            cmocka_unit_test(test_docs_match_table),
            cmocka_unit_test(test_refusal_masks_credentials),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
