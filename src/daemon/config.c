/* config.c — the YAML configuration: one declarative option table, walked against libyaml's event
 * stream. Adding an option is one line in options[] plus its field in vigil_config. There is no
 * document tree: each event is checked against the table as it arrives, so an unknown key or a
 * wrong type stops the parse at once, nesting never goes deeper than the schema (3 levels), and
 * aliases are refused before anything could be expanded (billion laughs). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <yaml.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "common/redact.h"
#include "common/vtime.h"
#include "fields/fields.h"

#define MS USEC_PER_MSEC
#define S  USEC_PER_SEC

_Static_assert(sizeof(enum metrics_naming) == sizeof(int), "enum options are stored as int");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum options are stored as int");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum options are stored as int");

enum opt_type {
        OPT_STRING,    /* char *, owned */
        OPT_BOOL,      /* bool: true | false */
        OPT_UINT,      /* unsigned, min..max */
        OPT_DURATION,  /* int64_t usec, min..max */
        OPT_ENUM,      /* int-sized enum; the value is the index in names */
        OPT_FIELD_MAP, /* collection_field[] at offset, size_t count at count_offset */
        OPT_LABEL_MAP, /* metrics_label[] at offset, size_t count at count_offset */
        OPT_LIST,      /* char *, owned: a YAML sequence of strings (or one string), comma-joined */
        OPT_DOUBLE,    /* double, dmin..dmax */
        OPT_MAP_LIST,  /* array of item structs at offset, size_t count at count_offset: a YAML
                          list of mappings whose keys are the sub-options in items */
        OPT_SIZE,      /* uint64_t bytes, min..max; config_parse_size() reads the text */
        OPT_CHARS,     /* char[max] inside the struct (items of a module's fixed-size struct) */
        OPT_FLAGS,     /* unsigned bitmask, bit i = names[i]: a YAML list of names */
        OPT_RATE,      /* "N/DURATION": unsigned N at offset, int64_t usec at count_offset */
};

struct option;
/* Extra validation of a string option: 0, or -EINVAL with the reason (after "PATH: ") in why. */
typedef int (*option_check)(const struct option *o, const char *shown, const char *v, char *why,
                            size_t whylen);

struct option {
        const char *path;           /* dotted key path in the file */
        enum opt_type type;         /* how the value is parsed and stored */
        size_t offset;              /* of the value in vigil_config (maps: of the array) */
        size_t count_offset;        /* maps: of the size_t entry count */
        const char *def;            /* default, written as in the file; NULL for maps (empty) */
        int64_t min, max;           /* OPT_UINT: inclusive range; OPT_DURATION: usec */
        const char *const *names;   /* OPT_ENUM: accepted names, NULL-terminated */
        const int *values;          /* OPT_ENUM: the value stored for names[i]; NULL = i */
        option_check check;         /* OPT_STRING: extra validation, or NULL */
        const char *why;            /* appended to a range error: why the bound exists */
        bool secret;                /* never echoed in messages; "<redacted>" in config_to_json */
        const struct option *items; /* OPT_MAP_LIST: keys of one item (offsets in the item) */
        size_t n_items;             /* OPT_MAP_LIST: entries in items */
        size_t item_size;           /* OPT_MAP_LIST: bytes of one item; max = most items */
        bool required;              /* item key that must be given */
        double dmin, dmax;          /* OPT_DOUBLE: inclusive range */
        enum config_module mod;     /* module whose options struct the value configures */
        enum config_apply apply;    /* RELOAD: applied by a reload; RESTART: at the next start */
};

static int check_listen(const struct option *o, const char *shown, const char *v, char *why,
                        size_t whylen);
static int check_socket(const struct option *o, const char *shown, const char *v, char *why,
                        size_t whylen);
static int check_nonempty(const struct option *o, const char *shown, const char *v, char *why,
                          size_t whylen);
static int check_schedule(const struct option *o, const char *shown, const char *v, char *why,
                          size_t whylen);
static int check_jwt_secret(const struct option *o, const char *shown, const char *v, char *why,
                            size_t whylen);
static int check_cidr(const struct option *o, const char *shown, const char *v, char *why,
                      size_t whylen);
static int check_perms(const struct option *o, const char *shown, const char *v, char *why,
                       size_t whylen);
static int check_s3_endpoint(const struct option *o, const char *shown, const char *v, char *why,
                             size_t whylen);
static int check_s3_bucket(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen);
static int check_s3_prefix(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen);
static int check_no_secret(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen);

static const char *const auth_method_names[] = {"jwt", NULL};
static const char *const client_auth_names[] = {"none", "request", "require", NULL};
static const char *const web_role_names[] = {"viewer", "operator", "admin", NULL};
static const char *const naming_names[] = {"vigil", "dcgm", NULL};
static const char *const profiling_names[] = {"auto", "all", NULL};
static const char *const dcgm_compat_names[] = {"4.5", "main", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_names[] = {"text", "json", NULL};
/* logging.syslog.facility: the name, and the LOG_* value log_options wants */
static const char *const facility_names[] = {"daemon", "user",   "auth",   "syslog", "local0",
                                             "local1", "local2", "local3", "local4", "local5",
                                             "local6", "local7", NULL};
static const int facility_values[] = {LOG_DAEMON, LOG_USER,   LOG_AUTH,   LOG_SYSLOG,
                                      LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                                      LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};

static const char *const compression_names[] = {"zstd", "gzip", NULL};
static const char *const s3_addressing_names[] = {"path", "virtual", NULL};

#define OFF(m) offsetof(vigil_config, m)
/* Owner and apply flag of a table entry: M(HEALTH, RL) = health's, applied on reload;
 * M(DAEMON, RS) = the daemon's, takes effect at the next start. */
#define RL        CONFIG_APPLY_RELOAD
#define RS        CONFIG_APPLY_RESTART
#define M(m_, w_) .mod = CONFIG_MOD_##m_, .apply = w_

/* ---- health, policies, alerting: item tables and checks (docs/health.md) ---- */

struct parser;
static json_t *option_json(const struct option *o, const vigil_config *c, bool reveal);
static const char *fmt_size(uint64_t v, char *b, size_t len);
static void map_list_release(const struct option *o, char *arr, size_t n);
static int parse_map_list(struct parser *p, const struct option *o);
static json_t *map_list_json(const struct option *o, const char *arr, size_t n, bool reveal);
static int check_condition(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen);
static int check_actions(const struct option *o, const char *shown, const char *v, char *why,
                         size_t whylen);
static int check_rate_limit(const struct option *o, const char *shown, const char *v, char *why,
                            size_t whylen);
static int check_http_url(const struct option *o, const char *shown, const char *v, char *why,
                          size_t whylen);
static int check_http_urls(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen);
static int check_regexes(const struct option *o, const char *shown, const char *v, char *why,
                         size_t whylen);
static int check_kube_api_url(const struct option *o, const char *shown, const char *v, char *why,
                              size_t whylen);

/* Policies and webhooks are written straight into the health module's own item structs. */
static const char *const action_names[] = {"log",       "alert", "exec", "set_power_limit",
                                           "reset_gpu", "diag",  NULL}; /* enum health_action */
static const char *const diag_gpus_names[] = {"incident", "all", NULL};
#define POFF(m) offsetof(health_policy, m)
static const struct option policy_items[] = {
    {"condition", OPT_CHARS, POFF(condition), .def = "", .check = check_condition,
     .max = HEALTH_COND_MAX, .required = true},
    {"actions", OPT_FLAGS, POFF(actions), .def = "log", .check = check_actions,
     .names = action_names},
    {"exec", OPT_CHARS, POFF(exec), .def = "", .max = HEALTH_URL_MAX},
    {"exec_timeout", OPT_DURATION, POFF(exec_timeout_us), .def = "30s", .min = 100 * MS,
     .max = 3600 * S},
    {"power_limit_percent", OPT_UINT, POFF(power_limit_percent), .def = "80", .min = 10,
     .max = 100},
    {"dry_run", OPT_BOOL, POFF(dry_run), .def = "false"},
    {"allow_reset_on_real_gpu", OPT_BOOL, POFF(allow_reset_on_real_gpu), .def = "false"},
    {"rate_limit", OPT_RATE, POFF(rate_count), POFF(rate_window_us), .def = "1/10m",
     .check = check_rate_limit},
    {"diag_level", OPT_UINT, POFF(diag_level), .def = "1", .min = 1, .max = 3},
    {"diag_gpus", OPT_ENUM, POFF(diag_gpus), .def = "incident", .names = diag_gpus_names},
};
#define WOFF(m) offsetof(health_webhook, m)
static const struct option webhook_items[] = {
    {"url", OPT_CHARS, WOFF(url), .def = "", .check = check_http_url, .max = HEALTH_URL_MAX,
     .required = true},
    {"secret", OPT_CHARS, WOFF(secret), .def = "", .max = 256, .secret = true},
};

/* config.enforce: desired GPU settings (health/gpuconfig.h), each value checked by the module's
 * own parser so the file takes exactly what `vigil config set` takes. */
static int check_gpucfg_value(const struct option *o, const char *shown, const char *v, char *why,
                              size_t whylen)
{
        gpucfg_value val;
        char err[160];
        int s = gpucfg_setting_from_name(o->path);

        (void)shown;
        if (!*v || s < 0 || gpucfg_value_parse(s, v, &val, err, sizeof(err)) == 0)
                return 0;
        snprintf(why, whylen, "config.enforce: %s", err);
        return -EINVAL;
}

static int check_gpucfg_gpus(const struct option *o, const char *shown, const char *v, char *why,
                             size_t whylen)
{
        char err[160];

        (void)o;
        (void)shown;
        if (gpucfg_gpus_check(v, err, sizeof(err)) == 0)
                return 0;
        snprintf(why, whylen, "config.enforce: %s", err);
        return -EINVAL;
}

#define GOFF(s) (offsetof(gpucfg_desired, value) + (size_t)(s)*GPUCFG_VALUE_MAX)
#define GITEM(name, s)                                                                             \
        {                                                                                          \
                name, OPT_CHARS, GOFF(s), .def = "", .check = check_gpucfg_value,                  \
                                          .max = GPUCFG_VALUE_MAX                                  \
        }
static const struct option enforce_items[] = {
    {"gpus", OPT_CHARS, offsetof(gpucfg_desired, gpus), .def = "all", .check = check_gpucfg_gpus,
     .max = GPUCFG_GPUS_MAX},
    GITEM("power_limit", BCFG_POWER_LIMIT),
    GITEM("app_clocks", BCFG_APP_CLOCKS),
    GITEM("locked_gpu_clocks", BCFG_LOCKED_GPU_CLOCKS),
    GITEM("locked_mem_clocks", BCFG_LOCKED_MEM_CLOCKS),
    GITEM("compute_mode", BCFG_COMPUTE_MODE),
    GITEM("persistence", BCFG_PERSISTENCE),
    GITEM("ecc", BCFG_ECC),
};

/* The options, in file order. Sections (nvml, collection.tiers, ...) are implied by the paths. */
static const struct option options[] = {
    {"listen", OPT_STRING, OFF(listen), .def = "0.0.0.0:5555", .check = check_listen,
     M(DAEMON, RS)},
    {"socket", OPT_STRING, OFF(socket), .def = "/run/vigil/vigild.sock", .check = check_socket,
     M(DAEMON, RS)},
    {"data_dir", OPT_STRING, OFF(data_dir), .def = "/var/lib/vigil", .check = check_nonempty,
     M(DAEMON, RS)},
    {"nvml.library", OPT_STRING, OFF(nvml.library), .def = "libnvidia-ml.so.1",
     .check = check_nonempty, M(BACKEND, RS)},
    {"simulate.enabled", OPT_BOOL, OFF(simulate.enabled), .def = "false", M(BACKEND, RS)},
    {"simulate.scenario", OPT_STRING, OFF(simulate.scenario), .def = "", M(BACKEND, RS)},
    {"collection.tiers.fast", OPT_DURATION, OFF(collection.fast_us), .def = "1s", .min = 100 * MS,
     .max = 60 * S, M(SAMPLER, RS)},
    {"collection.tiers.slow", OPT_DURATION, OFF(collection.slow_us), .def = "10s", .min = 5 * S,
     .max = 3600 * S, .why = "energy and violation counters cost milliseconds per read",
     M(SAMPLER, RS)},
    {"collection.fields", OPT_FIELD_MAP, OFF(collection.fields), OFF(collection.n_fields),
     M(SAMPLER, RS)},
    {"collection.profiling", OPT_ENUM, OFF(collection.profiling), .def = "auto",
     .names = profiling_names, M(SAMPLER, RS)},
    {"collection.keep.max_age", OPT_DURATION, OFF(collection.max_age_us), .def = "1h", .min = 1 * S,
     .max = 30 * 86400 * S, M(SAMPLER, RS)},
    {"collection.keep.max_samples", OPT_UINT, OFF(collection.max_samples), .def = "3600", .min = 1,
     .max = 1000000, M(SAMPLER, RS)},
    {"metrics.naming", OPT_ENUM, OFF(metrics.naming), .def = "vigil", .names = naming_names,
     M(API, RL)},
    {"metrics.counters_csv", OPT_STRING, OFF(metrics.counters_csv), .def = "", M(API, RL)},
    {"metrics.extra_labels", OPT_LABEL_MAP, OFF(metrics.extra_labels), OFF(metrics.n_extra_labels),
     M(API, RL)},
    {"metrics.hostname", OPT_STRING, OFF(metrics.hostname), .def = "", M(API, RS)},
    {"metrics.dcgm_exporter_compat", OPT_ENUM, OFF(metrics.dcgm_compat), .def = "4.5",
     .names = dcgm_compat_names, M(API, RS)},
    {"http.max_connections", OPT_UINT, OFF(http.max_connections), .def = "256", .min = 1,
     .max = 10000, M(API, RS)},
    {"http.max_connections_per_ip", OPT_UINT, OFF(http.max_connections_per_ip), .def = "32",
     .min = 1, .max = 10000, M(API, RS)},
    {"http.connection_timeout", OPT_DURATION, OFF(http.connection_timeout_us), .def = "30s",
     .min = 1 * S, .max = 600 * S, M(API, RS)},
    {"http.threads", OPT_UINT, OFF(http.threads), .def = "2", .min = 1, .max = 64, M(API, RS)},
    {"http.max_request_body", OPT_UINT, OFF(http.max_request_body), .def = "65536", .min = 1024,
     .max = 16777216, M(API, RS)},
    {"logging.level", OPT_ENUM, OFF(logging.level), .def = "info", .names = level_names,
     M(LOG, RL)},
    {"logging.format", OPT_ENUM, OFF(logging.format), .def = "text", .names = format_names,
     M(LOG, RL)},
    /* logging: file, syslog, rate limit (docs/logging.md; common/log.c) */
    {"logging.file.path", OPT_STRING, OFF(logging.file_path), .def = "", M(LOG, RL)},
    {"logging.file.max_size", OPT_SIZE, OFF(logging.file_max_size), .def = "100MiB", .min = 4096,
     .max = INT64_MAX, M(LOG, RL)},
    {"logging.file.max_files", OPT_UINT, OFF(logging.file_max_files), .def = "5", .min = 0,
     .max = 1000, M(LOG, RL)},
    {"logging.syslog.enabled", OPT_BOOL, OFF(logging.syslog), .def = "false", M(LOG, RL)},
    {"logging.syslog.facility", OPT_ENUM, OFF(logging.syslog_facility), .def = "daemon",
     .names = facility_names, .values = facility_values, M(LOG, RL)},
    {"logging.rate_limit.burst", OPT_UINT, OFF(logging.rate_burst), .def = "20", .min = 0,
     .max = 1000000, M(LOG, RL)},
    {"logging.rate_limit.interval", OPT_DURATION, OFF(logging.rate_interval_us), .def = "10s",
     .min = 100 * MS, .max = 3600 * S, M(LOG, RL)},
    /* collection.adaptive (docs/self-monitoring.md; engine.c) */
    {"collection.adaptive.enabled", OPT_BOOL, OFF(collection.adaptive_enabled), .def = "true",
     M(SAMPLER, RS)},
    {"collection.adaptive.max_share", OPT_DOUBLE, OFF(collection.adaptive_max_share), .def = "0.5",
     .dmin = 0.05, .dmax = 1.0, M(SAMPLER, RS)},
    {"collection.adaptive.max_stretch", OPT_DOUBLE, OFF(collection.adaptive_max_stretch),
     .def = "4", .dmin = 1.0, .dmax = 100.0, M(SAMPLER, RS)},
    /* anomaly: (docs/self-monitoring.md; health/anomaly.c) */
    {"anomaly.enabled", OPT_BOOL, OFF(anomaly.enabled), .def = "true", M(HEALTH, RS)},
    {"anomaly.k", OPT_DOUBLE, OFF(anomaly.k), .def = "4", .dmin = 1.0, .dmax = 100.0,
     M(HEALTH, RS)},
    {"anomaly.sustain", OPT_DURATION, OFF(anomaly.sustain_us), .def = "2m", .min = 0,
     .max = 86400 * S, M(HEALTH, RS)},
    {"anomaly.window", OPT_DURATION, OFF(anomaly.window_us), .def = "1h", .min = 1 * S,
     .max = 30 * 86400 * S, M(HEALTH, RS)},
    {"anomaly.min_samples", OPT_UINT, OFF(anomaly.min_samples), .def = "300", .min = 2,
     .max = 100000000, M(HEALTH, RS)},
    {"anomaly.persist_interval", OPT_DURATION, OFF(anomaly.persist_us), .def = "5m", .min = 1 * S,
     .max = 86400 * S, M(HEALTH, RS)},
    {"anomaly.peer.enabled", OPT_BOOL, OFF(anomaly.peer_enabled), .def = "true", M(HEALTH, RS)},
    {"anomaly.peer.k", OPT_DOUBLE, OFF(anomaly.peer_k), .def = "5", .dmin = 1.0, .dmax = 100.0,
     M(HEALTH, RS)},
    {"anomaly.peer.min_gpus", OPT_UINT, OFF(anomaly.peer_min_gpus), .def = "4", .min = 3, .max = 64,
     M(HEALTH, RS)},
    {"anomaly.peer.utilization_band", OPT_UINT, OFF(anomaly.peer_band), .def = "20", .min = 1,
     .max = 100, M(HEALTH, RS)},
    {"anomaly.fields.GPU_TEMP", OPT_BOOL, OFF(anomaly.f_gpu_temp), .def = "true", M(HEALTH, RS)},
    {"anomaly.fields.POWER_USAGE", OPT_BOOL, OFF(anomaly.f_power), .def = "true", M(HEALTH, RS)},
    {"anomaly.fields.MEMORY_TEMP", OPT_BOOL, OFF(anomaly.f_mem_temp), .def = "true", M(HEALTH, RS)},
    {"anomaly.fields.GPU_UTIL", OPT_BOOL, OFF(anomaly.f_util), .def = "true", M(HEALTH, RS)},
    {"anomaly.fields.SM_CLOCK", OPT_BOOL, OFF(anomaly.f_sm_clock), .def = "false", M(HEALTH, RS)},
    /* workload.jobs: job statistics (docs/workloads.md, "Job statistics") */
    {"workload.jobs.grace", OPT_DURATION, OFF(jobs.grace_us), .def = "2m", .min = 1 * S,
     .max = 7 * 86400 * S, M(WORKLOAD, RL)},
    {"workload.jobs.retention", OPT_DURATION, OFF(jobs.retention_us), .def = "30d", .min = 1 * S,
     .max = 3650 * 86400 * S, M(WORKLOAD, RL)},
    /* backup: and security.encryption: (docs/backup.md; the store module) */
    {"backup.dir", OPT_STRING, OFF(backup.dir), .def = "", M(STORE, RS)},
    {"backup.schedule", OPT_STRING, OFF(backup.schedule), .def = "", .check = check_schedule,
     M(STORE, RS)},
    {"backup.keep.count", OPT_UINT, OFF(backup.keep_count), .def = "7", .min = 1, .max = 10000,
     M(STORE, RS)},
    {"backup.keep.max_age", OPT_DURATION, OFF(backup.keep_max_age_us), .def = "30d",
     .min = 3600 * S, .max = 3650 * 86400 * S, M(STORE, RS)},
    {"backup.hook", OPT_STRING, OFF(backup.hook), .def = "", M(STORE, RS)},
    {"backup.hook_timeout", OPT_DURATION, OFF(backup.hook_timeout_us), .def = "5m", .min = 1 * S,
     .max = 86400 * S, M(STORE, RS)},
    {"backup.restore_on_corrupt", OPT_BOOL, OFF(backup.restore_on_corrupt), .def = "true",
     M(STORE, RS)},
    {"backup.compression", OPT_ENUM, OFF(backup.compression), .def = "zstd",
     .names = compression_names, M(STORE, RS)},
    {"backup.s3.endpoint", OPT_STRING, OFF(backup.s3.endpoint), .def = "",
     .check = check_s3_endpoint, M(STORE, RS)},
    {"backup.s3.bucket", OPT_STRING, OFF(backup.s3.bucket), .def = "", .check = check_s3_bucket,
     M(STORE, RS)},
    {"backup.s3.prefix", OPT_STRING, OFF(backup.s3.prefix), .def = "", .check = check_s3_prefix,
     M(STORE, RS)},
    {"backup.s3.region", OPT_STRING, OFF(backup.s3.region), .def = "us-east-1",
     .check = check_nonempty, M(STORE, RS)},
    {"backup.s3.addressing", OPT_ENUM, OFF(backup.s3.addressing), .def = "path",
     .names = s3_addressing_names, M(STORE, RS)},
    {"backup.s3.credentials_file", OPT_STRING, OFF(backup.s3.credentials_file), .def = "",
     M(STORE, RS)},
    {"backup.s3.keep", OPT_UINT, OFF(backup.s3.keep_count), .def = "30", .min = 1, .max = 100000,
     M(STORE, RS)},
    {"backup.s3.max_age", OPT_DURATION, OFF(backup.s3.keep_max_age_us), .def = "90d",
     .min = 3600 * S, .max = 3650 * 86400 * S, M(STORE, RS)},
    {"backup.s3.timeout", OPT_DURATION, OFF(backup.s3.timeout_us), .def = "5m", .min = 1 * S,
     .max = 86400 * S, M(STORE, RS)},
    {"backup.s3.retry_max", OPT_DURATION, OFF(backup.s3.retry_max_us), .def = "5m", .min = 1 * S,
     .max = 86400 * S, M(STORE, RS)},
    {"backup.s3.secret_access_key", OPT_STRING, OFF(backup.s3.secret_access_key), .def = "",
     .check = check_no_secret, .secret = true, M(STORE, RS)},
    {"security.encryption.data_at_rest", OPT_BOOL, OFF(encryption.data_at_rest), .def = "false",
     M(STORE, RS)},
    {"security.encryption.encryption_key", OPT_STRING, OFF(encryption.encryption_key), .def = "",
     .secret = true, M(STORE, RS)},
    {"security.encryption.key_rotation_days", OPT_UINT, OFF(encryption.key_rotation_days),
     .def = "90", .min = 0, .max = 3650, M(STORE, RS)},
    /* security: (docs/security.md) */
    {"security.authentication.enabled", OPT_BOOL, OFF(security.authentication.enabled),
     .def = "false", M(SECURITY, RL)},
    {"security.authentication.method", OPT_ENUM, OFF(security.authentication.method), .def = "jwt",
     .names = auth_method_names, M(SECURITY, RL)},
    {"security.authentication.jwt_secret", OPT_STRING, OFF(security.authentication.jwt_secret),
     .def = "", .check = check_jwt_secret, .secret = true, M(SECURITY, RL)},
    {"security.authentication.token_expiry", OPT_DURATION,
     OFF(security.authentication.token_expiry_us), .def = "24h", .min = 1 * S,
     .max = 365 * 86400 * S, M(SECURITY, RL)},
    {"security.authentication.issuer", OPT_STRING, OFF(security.authentication.issuer), .def = "",
     M(SECURITY, RL)},
    {"security.authentication.audience", OPT_STRING, OFF(security.authentication.audience),
     .def = "", M(SECURITY, RL)},
    {"security.authentication.public_key_file", OPT_STRING,
     OFF(security.authentication.public_key_file), .def = "", M(SECURITY, RL)},
    {"security.authentication.leeway", OPT_DURATION, OFF(security.authentication.leeway_us),
     .def = "60s", .min = 0, .max = 300 * S, .why = "RFC 7519 leeway is a few minutes at most",
     M(SECURITY, RL)},
    {"security.authorization.enabled", OPT_BOOL, OFF(security.authorization.enabled), .def = "true",
     M(SECURITY, RL)},
    {"security.authorization.roles.admin", OPT_LIST, OFF(security.authorization.admin), .def = "*",
     .check = check_perms, M(SECURITY, RL)},
    {"security.authorization.roles.operator", OPT_LIST, OFF(security.authorization.operator_),
     .def = "read,write,execute", .check = check_perms, M(SECURITY, RL)},
    {"security.authorization.roles.viewer", OPT_LIST, OFF(security.authorization.viewer),
     .def = "read", .check = check_perms, M(SECURITY, RL)},
    {"security.authorization.unix_admin_group", OPT_STRING,
     OFF(security.authorization.unix_admin_group), .def = "vigil", M(SECURITY, RL)},
    {"security.tls.enabled", OPT_BOOL, OFF(security.tls.enabled), .def = "false", M(SECURITY, RS)},
    {"security.tls.cert_file", OPT_STRING, OFF(security.tls.cert_file), .def = "", M(SECURITY, RL)},
    {"security.tls.key_file", OPT_STRING, OFF(security.tls.key_file), .def = "", M(SECURITY, RL)},
    {"security.tls.ca_file", OPT_STRING, OFF(security.tls.ca_file), .def = "", M(SECURITY, RL)},
    {"security.tls.client_auth", OPT_ENUM, OFF(security.tls.client_auth), .def = "none",
     .names = client_auth_names, M(SECURITY, RL)},
    {"security.network.allowed_ips", OPT_LIST, OFF(security.network.allowed_ips), .def = "",
     .check = check_cidr, M(SECURITY, RL)},
    {"security.network.trusted_proxies", OPT_LIST, OFF(security.network.trusted_proxies), .def = "",
     .check = check_cidr, M(SECURITY, RL)},
    {"security.network.rate_limiting.enabled", OPT_BOOL, OFF(security.network.rl_enabled),
     .def = "false", M(SECURITY, RL)},
    {"security.network.rate_limiting.requests_per_minute", OPT_UINT,
     OFF(security.network.rl_per_minute), .def = "100", .min = 1, .max = 1000000, M(SECURITY, RL)},
    {"security.network.rate_limiting.burst", OPT_UINT, OFF(security.network.rl_burst), .def = "20",
     .min = 1, .max = 100000, M(SECURITY, RL)},
    {"security.audit.enabled", OPT_BOOL, OFF(security.audit.enabled), .def = "true",
     M(SECURITY, RL)},
    {"security.audit.retention_days", OPT_UINT, OFF(security.audit.retention_days), .def = "365",
     .min = 0, .max = 36500, M(SECURITY, RL)},
    {"security.audit.include_sensitive_data", OPT_BOOL, OFF(security.audit.include_sensitive_data),
     .def = "false", M(SECURITY, RL)},
    {"security.audit.head_export.interval", OPT_DURATION,
     OFF(security.audit.head_export.interval_us), .def = "60s", .min = 1 * S, .max = 86400 * S,
     M(SECURITY, RL)},
    {"security.audit.head_export.sidecar", OPT_BOOL, OFF(security.audit.head_export.sidecar),
     .def = "true", M(SECURITY, RL)},
    {"security.audit.head_export.syslog", OPT_BOOL, OFF(security.audit.head_export.syslog),
     .def = "false", M(SECURITY, RL)},
    {"security.audit.head_export.webhook_url", OPT_STRING,
     OFF(security.audit.head_export.webhook_url), .def = "", .check = check_http_urls,
     M(SECURITY, RL)},
    {"security.audit.head_export.webhook_timeout", OPT_DURATION,
     OFF(security.audit.head_export.webhook_timeout_us), .def = "5s", .min = 100000, .max = 60 * S,
     M(SECURITY, RL)},
    {"security.metrics_public", OPT_BOOL, OFF(security.metrics_public), .def = "true",
     M(SECURITY, RL)},
    {"security.web_config_file", OPT_STRING, OFF(security.web_config_file), .def = "",
     M(SECURITY, RL)},
    {"security.web_config_role", OPT_ENUM, OFF(security.web_config_role), .def = "viewer",
     .names = web_role_names, M(SECURITY, RL)},
    {"health.enabled", OPT_BOOL, OFF(health.enabled), .def = "true", M(HEALTH, RL)},
    {"health.expected_gpus", OPT_UINT, OFF(health.expected_gpus), .def = "0", .min = 0, .max = 64,
     M(HEALTH, RL)},
    {"health.temperature.warning", OPT_UINT, OFF(health.temp_warning), .def = "85", .min = 1,
     .max = 200, M(HEALTH, RL)},
    {"health.temperature.critical", OPT_UINT, OFF(health.temp_critical), .def = "90", .min = 1,
     .max = 200, M(HEALTH, RL)},
    {"health.temperature.hysteresis", OPT_UINT, OFF(health.temp_hysteresis), .def = "3", .min = 0,
     .max = 50, M(HEALTH, RL)},
    {"health.resolve_after", OPT_DURATION, OFF(health.resolve_after_us), .def = "60s", .min = 0,
     .max = 86400 * S, M(HEALTH, RL)},
    {"health.xid_hold", OPT_DURATION, OFF(health.xid_hold_us), .def = "10m", .min = 0,
     .max = 30 * 86400 * S, M(HEALTH, RL)},
    {"health.nvml_call_timeout", OPT_DURATION, OFF(health.nvml_call_timeout_us), .def = "5s",
     .min = 100 * MS, .max = 600 * S, M(HEALTH, RL)},
    {"health.collection_stretched_after", OPT_DURATION, OFF(health.collection_stretched_after_us),
     .def = "5m", .min = 0, .max = 86400 * S, M(HEALTH, RL)},
    {"health.throttle_sustain", OPT_DURATION, OFF(health.throttle_sustain_us), .def = "30s",
     .min = 1 * S, .max = 3600 * S, M(HEALTH, RL)},
    {"health.power.sustain", OPT_DURATION, OFF(health.power_sustain_us), .def = "0s", .min = 0,
     .max = 3600 * S, .why = "read from at most an hour of violation counter history",
     M(HEALTH, RL)},
    {"health.max_rss", OPT_SIZE, OFF(health.max_rss_bytes), .def = "256MiB", .min = 0,
     .max = INT64_MAX, M(HEALTH, RL)},
    {"health.disk_warning", OPT_UINT, OFF(health.disk_warning), .def = "90", .min = 1, .max = 100,
     M(HEALTH, RL)},
    {"health.disk_critical", OPT_UINT, OFF(health.disk_critical), .def = "97", .min = 1, .max = 100,
     M(HEALTH, RL)},
    {"health.systems.pcie", OPT_BOOL, OFF(health.systems[0]), .def = "true", M(HEALTH, RL)},
    {"health.systems.nvlink", OPT_BOOL, OFF(health.systems[1]), .def = "true", M(HEALTH, RL)},
    {"health.systems.memory", OPT_BOOL, OFF(health.systems[2]), .def = "true", M(HEALTH, RL)},
    {"health.systems.inforom", OPT_BOOL, OFF(health.systems[3]), .def = "true", M(HEALTH, RL)},
    {"health.systems.thermal", OPT_BOOL, OFF(health.systems[4]), .def = "true", M(HEALTH, RL)},
    {"health.systems.power", OPT_BOOL, OFF(health.systems[5]), .def = "true", M(HEALTH, RL)},
    {"health.systems.driver", OPT_BOOL, OFF(health.systems[6]), .def = "true", M(HEALTH, RL)},
    {"health.systems.gpu", OPT_BOOL, OFF(health.systems[7]), .def = "true", M(HEALTH, RL)},
    {"health.systems.clocks", OPT_BOOL, OFF(health.systems[8]), .def = "true", M(HEALTH, RL)},
    {"health.systems.host", OPT_BOOL, OFF(health.systems[9]), .def = "true", M(HEALTH, RL)},
    {"policies", OPT_MAP_LIST, OFF(policies), OFF(n_policies), .items = policy_items,
     .n_items = ARRAY_SIZE(policy_items), .item_size = sizeof(health_policy), .max = 64,
     M(HEALTH, RL)},
    {"alerting.alertmanagers", OPT_LIST, OFF(alerting.alertmanagers), .def = "",
     .check = check_http_urls, M(HEALTH, RL)},
    {"alerting.webhooks", OPT_MAP_LIST, OFF(alerting.webhooks), OFF(alerting.n_webhooks),
     .items = webhook_items, .n_items = ARRAY_SIZE(webhook_items),
     .item_size = sizeof(health_webhook), .max = 16, M(HEALTH, RL)},
    {"alerting.labels", OPT_LABEL_MAP, OFF(alerting.labels), OFF(alerting.n_labels), M(HEALTH, RL)},
    {"alerting.resend_interval", OPT_DURATION, OFF(health.resend_interval_us), .def = "60s",
     .min = 1 * S, .max = 86400 * S, M(HEALTH, RL)},
    {"alerting.timeout", OPT_DURATION, OFF(health.alert_timeout_us), .def = "5s", .min = 100 * MS,
     .max = 300 * S, M(HEALTH, RL)},
    /* diag: (docs/diagnostics.md; diag/diag_config.h). Thresholds at 0 are not set: the SKU or
     * PCIe specification decides. A run's --param wins over these. */
    {"diag.retention.count", OPT_UINT, OFF(diag.retention_count), .def = "1000", .min = 0,
     .max = 1000000, M(DIAG, RL)},
    {"diag.retention.max_age", OPT_DURATION, OFF(diag.retention_max_age_us), .def = "90d", .min = 0,
     .max = 3650 * 86400 * S, M(DIAG, RL)},
    {"diag.gpu_count.expected", OPT_UINT, OFF(diag.expected_gpus), .def = "0", .min = 0,
     .max = 4096, M(DIAG, RL)},
    {"diag.pcie.size_mib", OPT_UINT, OFF(diag.pcie_size_mib), .def = "64", .min = 1, .max = 4096,
     M(DIAG, RL)},
    {"diag.pcie.min_gbps", OPT_DOUBLE, OFF(diag.pcie_min_gbps), .def = "0", .dmin = 0, .dmax = 1e5,
     M(DIAG, RL)},
    {"diag.pcie.max_latency_us", OPT_DOUBLE, OFF(diag.pcie_max_latency_us), .def = "0", .dmin = 0,
     .dmax = 1e6, M(DIAG, RL)},
    {"diag.p2p.min_gbps", OPT_DOUBLE, OFF(diag.p2p_min_gbps), .def = "0", .dmin = 0, .dmax = 1e5,
     M(DIAG, RL)},
    {"diag.memory.size_mib", OPT_UINT, OFF(diag.memory_size_mib), .def = "1024", .min = 1,
     .max = 1048576, M(DIAG, RL)},
    {"diag.memtest.duration", OPT_DURATION, OFF(diag.memtest_duration_us), .def = "240s",
     .min = 1 * S, .max = 86400 * S, M(DIAG, RL)},
    {"diag.memtest.fraction", OPT_DOUBLE, OFF(diag.memtest_fraction), .def = "0.9", .dmin = 0.01,
     .dmax = 0.99, M(DIAG, RL)},
    {"diag.memory_bandwidth.duration", OPT_DURATION, OFF(diag.memory_bandwidth_duration_us),
     .def = "10s", .min = 1 * S, .max = 3600 * S, M(DIAG, RL)},
    {"diag.memory_bandwidth.min_gbps", OPT_DOUBLE, OFF(diag.memory_bandwidth_min_gbps), .def = "0",
     .dmin = 0, .dmax = 1e6, M(DIAG, RL)},
    {"diag.sm_stress.duration", OPT_DURATION, OFF(diag.sm_stress_duration_us), .def = "240s",
     .min = 1 * S, .max = 86400 * S, M(DIAG, RL)},
    {"diag.sm_stress.min_tflops", OPT_DOUBLE, OFF(diag.sm_stress_min_tflops), .def = "0", .dmin = 0,
     .dmax = 1e5, M(DIAG, RL)},
    {"diag.targeted_power.duration", OPT_DURATION, OFF(diag.targeted_power_duration_us),
     .def = "240s", .min = 1 * S, .max = 86400 * S, M(DIAG, RL)},
    {"diag.targeted_power.min_fraction", OPT_DOUBLE, OFF(diag.targeted_power_min_fraction),
     .def = "0", .dmin = 0, .dmax = 1, M(DIAG, RL)},
    {"diag.level3.parallel", OPT_BOOL, OFF(diag.level3_parallel), .def = "true", M(DIAG, RL)},
    /* workload: processes per GPU and their owners (docs/workloads.md) */
    {"workload.enabled", OPT_BOOL, OFF(workload.enabled), .def = "true", M(WORKLOAD, RS)},
    {"workload.proc_root", OPT_STRING, OFF(workload.proc_root), .def = "/proc",
     .check = check_nonempty, M(WORKLOAD, RS)},
    {"workload.interval", OPT_DURATION, OFF(workload.interval_us), .def = "0s", .min = 0,
     .max = 3600 * S, M(WORKLOAD, RS)},
    {"workload.max_processes", OPT_UINT, OFF(workload.max_processes), .def = "256", .min = 1,
     .max = 1024, M(WORKLOAD, RS)},
    {"workload.kubernetes", OPT_BOOL, OFF(workload.kubernetes), .def = "false", M(WORKLOAD, RS)},
    {"workload.kubelet_socket", OPT_STRING, OFF(workload.kubelet_socket),
     .def = "/var/lib/kubelet/pod-resources/kubelet.sock", .check = check_nonempty,
     M(WORKLOAD, RS)},
    {"workload.kubelet_timeout", OPT_DURATION, OFF(workload.kubelet_timeout_us), .def = "2s",
     .min = 100 * MS, .max = 30 * S, M(WORKLOAD, RS)},
    {"workload.container_logs_dir", OPT_STRING, OFF(workload.container_logs_dir),
     .def = "/var/log/containers", .check = check_nonempty, M(WORKLOAD, RS)},
    {"workload.pod_uid_label", OPT_BOOL, OFF(workload.pod_uid_label), .def = "false",
     M(WORKLOAD, RS)},
    {"workload.pod_labels", OPT_BOOL, OFF(workload.pod_labels), .def = "false", M(WORKLOAD, RS)},
    {"workload.pod_label_allowlist", OPT_LIST, OFF(workload.pod_label_allowlist), .def = "",
     .check = check_regexes, M(WORKLOAD, RS)},
    {"workload.kube_api_url", OPT_STRING, OFF(workload.kube_api_url), .def = "",
     .check = check_kube_api_url, M(WORKLOAD, RS)},
    {"workload.kube_token_file", OPT_STRING, OFF(workload.kube_token_file),
     .def = "/var/run/secrets/kubernetes.io/serviceaccount/token", .check = check_nonempty,
     M(WORKLOAD, RS)},
    {"workload.kube_ca_file", OPT_STRING, OFF(workload.kube_ca_file),
     .def = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", .check = check_nonempty,
     M(WORKLOAD, RS)},
    {"workload.pod_labels_refresh", OPT_DURATION, OFF(workload.pod_labels_refresh_us), .def = "5m",
     .min = 10 * S, .max = 86400 * S, M(WORKLOAD, RS)},
    {"workload.slurm", OPT_BOOL, OFF(workload.slurm), .def = "false", M(WORKLOAD, RS)},
    {"workload.process_metrics", OPT_BOOL, OFF(workload.process_metrics), .def = "true",
     M(WORKLOAD, RS)},
    {"workload.max_process_series", OPT_UINT, OFF(workload.max_process_series), .def = "256",
     .min = 0, .max = 100000, M(WORKLOAD, RS)},
    {"config.enforce", OPT_MAP_LIST, OFF(gpu_enforce), OFF(n_gpu_enforce), .items = enforce_items,
     .n_items = ARRAY_SIZE(enforce_items), .item_size = sizeof(gpucfg_desired),
     .max = GPUCFG_ENFORCE_MAX, M(HEALTH, RL)},
};

/* Pairs where the first option must not exceed the second (same unit). */
static const struct {
        const char *lo, *hi;
        const char *rel; /* how the message says it */
} ordered[] = {
    {"collection.tiers.fast", "collection.tiers.slow", "longer than"},
    {"http.max_connections_per_ip", "http.max_connections", "more than"},
    {"health.temperature.warning", "health.temperature.critical", "higher than"},
    {"health.disk_warning", "health.disk_critical", "higher than"},
};

/* Sections of DESIGN §8 that later versions add: refused, but with a message saying so. */
static const char *const unsupported[] = {
    "", /* none left today; a later section goes here */
};

/* Per-field interval bounds by the field's default tier; 0 = only "off" is accepted. */
static const struct {
        int64_t min, max; /* usec */
} tier_bounds[TIER_COUNT] = {
    [TIER_STATIC] = {0, 0},
    [TIER_FAST] = {100 * MS, 3600 * S},
    [TIER_SLOW] = {5 * S, 3600 * S},
    [TIER_EVENT] = {0, 0},
};

/* Labels every series already has, in either naming. */
static const char *const reserved_labels[] = {
    "gpu", "uuid", "UUID", "pci_bus_id", "model", "modelName", "hostname", "Hostname", "device",
};
/* Labels Vigil's own alerts carry besides those (notifier.c): refused in alerting.labels. */
static const char *const reserved_alert_labels[] = {"alertname", "severity", "condition"};

#define REDACTED     "<redacted>"
#define MAX_PATH_LEN 64 /* longest option path, with room */

static void *slot(const vigil_config *c, size_t off)
{
        return (char *)c + off;
}

static bool is_null_text(const char *s)
{
        return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
               !strcmp(s, "NULL");
}

/* Like time_format_duration, but a whole minute or less reads as seconds ("60s", not "1m"). */
static const char *fmt_duration(int64_t us, char *b, size_t len)
{
        if (us > 0 && us <= 60 * S && us % S == 0) {
                snprintf(b, len, "%llds", (long long)(us / S));
                return b;
        }
        return time_format_duration(us, b, len);
}

static void fmt_range(const struct option *o, char *b, size_t len)
{
        char x[32], y[32];

        if (o->type == OPT_DURATION)
                snprintf(b, len, "%s..%s", fmt_duration(o->min, x, sizeof(x)),
                         fmt_duration(o->max, y, sizeof(y)));
        else if (o->type == OPT_SIZE)
                snprintf(b, len, "at least %s", fmt_size((uint64_t)o->min, x, sizeof(x)));
        else if (o->type == OPT_DOUBLE)
                snprintf(b, len, "%g..%g", o->dmin, o->dmax);
        else
                snprintf(b, len, "%lld..%lld", (long long)o->min, (long long)o->max);
}

static int out_of_range(const struct option *o, const char *shown, char *why, size_t whylen)
{
        char r[80];

        fmt_range(o, r, sizeof(r));
        snprintf(why, whylen, "%s: '%s' is out of range (%s)%s%s", o->path, shown, r,
                 o->why ? ": " : "", o->why ? o->why : "");
        return -EINVAL;
}

/* What an error message may quote of value v: nothing of a secret option, and the value with its
 * credentials masked otherwise (a URL's userinfo and query, token arguments: common/redact.h),
 * since refusals are logged, audited and answered to reload requests. */
static const char *shown_value(const struct option *o, const char *v, char *buf, size_t len)
{
        if (o->secret)
                return REDACTED;
        redact_text(v, buf, len);
        return buf;
}

/* Convert text to the option's type and store it in *c. shown is what messages may quote. */
static int option_set(const struct option *o, vigil_config *c, const char *v, const char *shown,
                      char *why, size_t whylen)
{
        void *p = slot(c, o->offset);

        switch (o->type) {
        case OPT_LIST:
        case OPT_STRING: {
                char *s;
                if (o->check && o->check(o, shown, v, why, whylen) < 0)
                        return -EINVAL;
                s = strdup(v);
                if (!s) {
                        snprintf(why, whylen, "out of memory");
                        return -ENOMEM;
                }
                free(*(char **)p);
                *(char **)p = s;
                return 0;
        }
        case OPT_BOOL:
                if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
                        *(bool *)p = true;
                else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
                        *(bool *)p = false;
                else {
                        snprintf(why, whylen, "%s: '%s' is not a boolean (true or false)", o->path,
                                 shown);
                        return -EINVAL;
                }
                return 0;
        case OPT_UINT: {
                const char *d = v[0] == '-' || v[0] == '+' ? v + 1 : v;
                char *end;
                long long n;
                if (*d < '0' || *d > '9') {
                        snprintf(why, whylen, "%s: '%s' is not an integer", o->path, shown);
                        return -EINVAL;
                }
                errno = 0;
                n = strtoll(v, &end, 10);
                if (*end) {
                        snprintf(why, whylen, "%s: '%s' is not an integer", o->path, shown);
                        return -EINVAL;
                }
                if (errno == ERANGE || n < o->min || n > o->max)
                        return out_of_range(o, shown, why, whylen);
                *(unsigned *)p = (unsigned)n;
                return 0;
        }
        case OPT_DURATION: {
                int64_t us;
                int r = time_parse_duration(v, &us);
                if (r == -EINVAL) {
                        snprintf(why, whylen,
                                 "%s: '%s' is not a duration (such as 250ms, 10s, 1h30m)", o->path,
                                 shown);
                        return -EINVAL;
                }
                if (r < 0 || us < o->min || us > o->max)
                        return out_of_range(o, shown, why, whylen);
                *(int64_t *)p = us;
                return 0;
        }
        case OPT_ENUM: {
                char list[128] = "";
                for (int i = 0; o->names[i]; i++) {
                        if (!strcmp(v, o->names[i])) {
                                *(int *)p = o->values ? o->values[i] : i;
                                return 0;
                        }
                        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                                 i ? ", " : "", o->names[i]);
                }
                snprintf(why, whylen, "%s: '%s' is not one of %s", o->path, shown, list);
                return -EINVAL;
        }
        case OPT_DOUBLE: {
                char *end;
                double d;
                errno = 0;
                d = strtod(v, &end);
                if (end == v || *end || errno == ERANGE || d != d) {
                        snprintf(why, whylen, "%s: '%s' is not a number", o->path, shown);
                        return -EINVAL;
                }
                if (d < o->dmin || d > o->dmax)
                        return out_of_range(o, shown, why, whylen);
                *(double *)p = d;
                return 0;
        }
        case OPT_SIZE: {
                uint64_t n;
                int r = config_parse_size(v, &n);
                if (r == -EDOM) {
                        snprintf(why, whylen,
                                 "%s: '%s' is ambiguous: write kB, MB, GB (powers of 1000) or "
                                 "KiB, MiB, GiB (powers of 1024)",
                                 o->path, shown);
                        return -EINVAL;
                }
                if (r == -EINVAL) {
                        snprintf(why, whylen, "%s: '%s' is not a size (such as 64KiB, 100MB, 1GiB)",
                                 o->path, shown);
                        return -EINVAL;
                }
                if (r < 0 || n < (uint64_t)o->min || n > (uint64_t)o->max)
                        return out_of_range(o, shown, why, whylen);
                *(uint64_t *)p = n;
                return 0;
        }
        case OPT_CHARS:
                if (o->check && o->check(o, shown, v, why, whylen) < 0)
                        return -EINVAL;
                if (strlen(v) >= (size_t)o->max) {
                        snprintf(why, whylen, "%s: '%.64s' is too long (at most %lld bytes)",
                                 o->path, shown, (long long)o->max - 1);
                        return -EINVAL;
                }
                memcpy(p, v, strlen(v) + 1);
                return 0;
        case OPT_FLAGS: {
                unsigned m = 0;
                if (o->check && o->check(o, shown, v, why, whylen) < 0)
                        return -EINVAL;
                for (const char *x = v; *x;) {
                        const char *e = strchrnul(x, ',');
                        for (int i = 0; o->names[i]; i++)
                                if (strlen(o->names[i]) == (size_t)(e - x) &&
                                    !strncmp(o->names[i], x, (size_t)(e - x)))
                                        m |= 1u << i;
                        x = *e ? e + 1 : e;
                }
                *(unsigned *)p = m;
                return 0;
        }
        case OPT_RATE: {
                int64_t us = 0;
                unsigned n = 0;
                if (o->check && o->check(o, shown, v, why, whylen) < 0)
                        return -EINVAL;
                if (*v) {
                        n = (unsigned)strtoul(v, NULL, 10);
                        if (time_parse_duration(strchr(v, '/') + 1, &us) < 0)
                                return -EINVAL; /* checked above */
                }
                *(unsigned *)p = n;
                *(int64_t *)slot(c, o->count_offset) = us;
                return 0;
        }
        case OPT_FIELD_MAP:
        case OPT_LABEL_MAP:
        case OPT_MAP_LIST:
                break;
        }
        snprintf(why, whylen, "%s: expected a mapping", o->path);
        return -EINVAL;
}

/* backup.schedule: "" (off) or an interval of at least a minute. */
static int check_schedule(const struct option *o, const char *shown, const char *v, char *why,
                          size_t whylen)
{
        int64_t us;

        (void)shown;
        if (!*v)
                return 0;
        if (time_parse_duration(v, &us) < 0 || us < 60 * S) {
                snprintf(why, whylen,
                         "%s: '%s' is not an interval of at least 1m (or \"\" for off)", o->path,
                         v);
                return -EINVAL;
        }
        return 0;
}

/* backup.s3.endpoint: "" (AWS, from the region) or http(s)://HOST[:PORT] with no path. */
static int check_s3_endpoint(const struct option *o, const char *shown, const char *v, char *why,
                             size_t whylen)
{
        const char *hp = !strncmp(v, "https://", 8)  ? v + 8
                         : !strncmp(v, "http://", 7) ? v + 7
                                                     : NULL;
        size_t hl = hp ? strcspn(hp, "/?#@ ") : 0;

        if (!*v || (hp && hl && (!hp[hl] || !strcmp(hp + hl, "/"))))
                return 0;
        snprintf(why, whylen,
                 "%s: '%s' is not http(s)://HOST[:PORT] (no path, no user; \"\" for AWS)", o->path,
                 shown);
        return -EINVAL;
}

/* backup.s3.bucket: S3's bucket naming rules (3..63 of [a-z0-9.-], letter or digit at the ends),
 * so that path and virtual-host URLs both hold it as is; "" = no S3 copies. */
static int check_s3_bucket(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen)
{
        size_t n = strlen(v);
        bool ok = n == 0 || (n >= 3 && n <= 63);

        for (size_t i = 0; ok && i < n; i++)
                ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
                     ((v[i] == '.' || v[i] == '-') && i > 0 && i + 1 < n);
        if (ok)
                return 0;
        snprintf(why, whylen,
                 "%s: '%s' is not a bucket name (3..63 characters of a-z, 0-9, '.' and '-', "
                 "starting and ending with a letter or digit)",
                 o->path, shown);
        return -EINVAL;
}

/* backup.s3.prefix: key prefix of [A-Za-z0-9._/-], no leading '/', no "..", at most 512. */
static int check_s3_prefix(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen)
{
        bool ok = strlen(v) <= 512 && v[0] != '/' && !strstr(v, "..") && !strstr(v, "//");

        for (const char *p = v; ok && *p; p++)
                ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("._/-", *p);
        if (ok)
                return 0;
        snprintf(why, whylen,
                 "%s: '%s' is not a key prefix (at most 512 of A-Z a-z 0-9 . _ / -, not "
                 "starting with '/', no '..' or '//')",
                 o->path, shown);
        return -EINVAL;
}

/* backup.s3.secret_access_key: exists only to be refused with the way to do it right. */
static int check_no_secret(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen)
{
        (void)shown;
        if (!*v)
                return 0;
        snprintf(why, whylen,
                 "%s: the S3 secret is never read from the configuration file; set "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in vigild's environment, or "
                 "backup.s3.credentials_file (an AWS credentials file, mode 0600)",
                 o->path);
        return -EINVAL;
}

static int check_nonempty(const struct option *o, const char *shown, const char *v, char *why,
                          size_t whylen)
{
        (void)shown;
        if (*v)
                return 0;
        snprintf(why, whylen, "%s: must not be empty", o->path);
        return -EINVAL;
}

/* RFC 7518 §3.2: an HS256 key must have at least 256 bits. */
static int check_jwt_secret(const struct option *o, const char *shown, const char *v, char *why,
                            size_t whylen)
{
        (void)shown;
        if (!*v || strlen(v) >= 32)
                return 0;
        snprintf(why, whylen, "%s: the secret is %zu bytes; HS256 needs at least 32 random bytes",
                 o->path, strlen(v));
        return -EINVAL;
}

/* Each comma-separated entry is ADDR or ADDR/PREFIX, IPv4 or IPv6. */
static int check_cidr(const struct option *o, const char *shown, const char *v, char *why,
                      size_t whylen)
{
        (void)shown;
        while (*v) {
                const char *e = strchrnul(v, ',');
                char ent[128], *slash;
                unsigned char addr[16];
                int fam, maxp;
                snprintf(ent, sizeof(ent), "%.*s", (int)(e - v), v);
                slash = strchr(ent, '/');
                if (slash)
                        *slash = '\0';
                fam = strchr(ent, ':') ? AF_INET6 : AF_INET;
                maxp = fam == AF_INET6 ? 128 : 32;
                if ((size_t)(e - v) >= sizeof(ent) || inet_pton(fam, ent, addr) != 1)
                        goto bad;
                if (slash) {
                        char *end;
                        long n = strtol(slash + 1, &end, 10);
                        if (!slash[1] || *end || n < 0 || n > maxp)
                                goto bad;
                }
                v = *e ? e + 1 : e;
                continue;
        bad:
                snprintf(why, whylen, "%s: '%.*s' is not an address or CIDR (10.0.0.0/8, ::1/128)",
                         o->path, (int)(e - v), v);
                return -EINVAL;
        }
        return 0;
}

static int check_perms(const struct option *o, const char *shown, const char *v, char *why,
                       size_t whylen)
{
        static const char *const perms[] = {"*", "read", "write", "execute", "admin"};
        (void)shown;
        while (*v) {
                const char *e = strchrnul(v, ',');
                bool ok = false;
                for (size_t i = 0; i < ARRAY_SIZE(perms); i++)
                        ok |= strlen(perms[i]) == (size_t)(e - v) && !strncmp(perms[i], v, e - v);
                if (!ok) {
                        snprintf(why, whylen,
                                 "%s: '%.*s' is not a permission (read, write, execute, admin, *)",
                                 o->path, (int)(e - v), v);
                        return -EINVAL;
                }
                v = *e ? e + 1 : e;
        }
        return 0;
}

static int check_listen(const struct option *o, const char *shown, const char *v, char *why,
                        size_t whylen)
{
        char host[256];
        unsigned port;

        if (config_parse_listen(v, host, sizeof(host), &port) == 0)
                return 0;
        snprintf(why, whylen, "%s: '%s' is not ADDR:PORT (IPv6 as [ADDR]:PORT, port 0..65535)",
                 o->path, shown);
        return -EINVAL;
}

static int check_socket(const struct option *o, const char *shown, const char *v, char *why,
                        size_t whylen)
{
        size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

        if (strlen(v) <= max)
                return 0;
        snprintf(why, whylen, "%s: '%s' is too long for a unix socket path (max %zu bytes)",
                 o->path, shown, max);
        return -EINVAL;
}

static const struct option *option_find(const char *path)
{
        for (size_t i = 0; i < ARRAY_SIZE(options); i++)
                if (!strcmp(options[i].path, path))
                        return &options[i];
        return NULL;
}

/* A section is a path that is a proper prefix of some option's path. */
static bool is_section(const char *path)
{
        size_t l = strlen(path);

        for (size_t i = 0; i < ARRAY_SIZE(options); i++)
                if (!strncmp(options[i].path, path, l) && options[i].path[l] == '.')
                        return true;
        return false;
}

static bool is_unsupported(const char *path)
{
        for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
                if (!strcmp(unsupported[i], path))
                        return true;
        return false;
}

void config_init(vigil_config *c)
{
        char why[256];

        memset(c, 0, sizeof(*c));
        log_options_init(&c->logging); /* what no key sets (journald: auto) */
        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                if (!options[i].def)
                        continue;
                /* The defaults go through the same parser as the file; only OOM can fail here. */
                if (option_set(&options[i], c, options[i].def, options[i].def, why, sizeof(why)) <
                    0)
                        abort();
        }
}

void config_release(vigil_config *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const struct option *o = &options[i];
                void *p = slot(c, o->offset);
                if (o->type == OPT_STRING || o->type == OPT_LIST) {
                        free(*(char **)p);
                } else if (o->type == OPT_FIELD_MAP) {
                        free(*(collection_field **)p);
                } else if (o->type == OPT_MAP_LIST) {
                        map_list_release(o, *(char **)p, *(size_t *)slot(c, o->count_offset));
                } else if (o->type == OPT_LABEL_MAP) {
                        metrics_label *l = *(metrics_label **)p;
                        size_t n = *(size_t *)slot(c, o->count_offset);
                        for (size_t k = 0; l && k < n; k++) {
                                free(l[k].name);
                                free(l[k].value);
                        }
                        free(l);
                }
        }
        memset(c, 0, sizeof(*c));
}

/* ---- the event walker ------------------------------------------------------------------------ */

struct parser {
        yaml_parser_t yp;
        const char *text;  /* the input, to turn a reader error's offset into a line */
        size_t len;        /* bytes of text */
        const char *name;  /* file name for messages */
        char *err;         /* caller's message buffer, or NULL */
        size_t errlen;     /* bytes of err */
        vigil_config *cfg; /* the config being built */
        struct {
                char path[MAX_PATH_LEN]; /* option or section path already given */
                size_t line;             /* 1-based line where it was given */
        } seen[ARRAY_SIZE(options) * 2];
        size_t n_seen;                           /* entries in seen */
        yaml_mark_t set_at[ARRAY_SIZE(options)]; /* where each option was set */
        bool set[ARRAY_SIZE(options)];           /* whether the file set the option */
};

static void event_freep(yaml_event_t *e)
{
        yaml_event_delete(e);
}
#define _cleanup_event_ _cleanup_(event_freep)

_printf_(3, 4) static int fail(struct parser *p, yaml_mark_t m, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (!p->err || !p->errlen)
                return -EINVAL;
        n = snprintf(p->err, p->errlen, "%s:%zu:%zu: ", p->name, m.line + 1, m.column + 1);
        if (n >= 0 && (size_t)n < p->errlen) {
                va_start(ap, fmt);
                vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static int yaml_fail(struct parser *p)
{
        yaml_parser_t *y = &p->yp;
        yaml_mark_t m = y->problem_mark;

        if (y->error == YAML_MEMORY_ERROR) {
                fail(p, m, "out of memory");
                return -ENOMEM;
        }
        if (y->error == YAML_READER_ERROR) {
                /* The reader reports a byte offset, not a mark. */
                memset(&m, 0, sizeof(m));
                for (size_t i = 0; i < y->problem_offset && i < p->len; i++) {
                        if (p->text[i] == '\n') {
                                m.line++;
                                m.column = 0;
                        } else {
                                m.column++;
                        }
                }
        }
        if (y->context)
                return fail(p, m, "invalid YAML: %s %s", y->problem ? y->problem : "syntax error",
                            y->context);
        return fail(p, m, "invalid YAML: %s", y->problem ? y->problem : "syntax error");
}

static int next_event(struct parser *p, yaml_event_t *e)
{
        if (!yaml_parser_parse(&p->yp, e))
                return yaml_fail(p);
        if (e->type == YAML_ALIAS_EVENT)
                return fail(p, e->start_mark, "aliases ('*%.64s') are not supported",
                            (const char *)e->data.alias.anchor);
        return 0;
}

static const char *event_what(const yaml_event_t *e)
{
        switch (e->type) {
        case YAML_MAPPING_START_EVENT:
                return "a mapping";
        case YAML_SEQUENCE_START_EVENT:
                return "a list";
        case YAML_SCALAR_EVENT:
                return "a scalar";
        default:
                return "nothing";
        }
}

static bool event_is_null(const yaml_event_t *e)
{
        return e->type == YAML_SCALAR_EVENT && e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               is_null_text((const char *)e->data.scalar.value);
}

static bool valid_var_name(const char *s, size_t n)
{
        if (n == 0 ||
            !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                        return false;
        return true;
}

/* Expand ${VAR}, ${VAR:-default} and $$ in a scalar event's value into a new string (*ret,
 * caller frees). Any other '$' is literal. what names the value in messages. */
static int expand(struct parser *p, const yaml_event_t *e, const char *what, char **ret)
{
        const char *s = (const char *)e->data.scalar.value;
        size_t n = e->data.scalar.length, o = 0;
        _cleanup_free_ char *out = NULL;

        if (memchr(s, '\0', n))
                return fail(p, e->start_mark, "%s: value contains a NUL byte", what);
        out = malloc(CONFIG_MAX_VALUE_LEN + 1);
        if (!out) {
                fail(p, e->start_mark, "out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < n;) {
                const char *add = s + i, *close, *dflt = NULL;
                size_t addn = 1, namen;
                char var[128];

                if (s[i] == '$' && i + 1 < n && s[i + 1] == '$') {
                        i += 2;
                } else if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
                        close = memchr(s + i + 2, '}', n - i - 2);
                        if (!close)
                                return fail(p, e->start_mark, "%s: unterminated '${' in value",
                                            what);
                        namen = (size_t)(close - (s + i + 2));
                        for (size_t k = 0; k + 1 < namen; k++) {
                                if (s[i + 2 + k] == ':' && s[i + 3 + k] == '-') {
                                        dflt = s + i + 4 + k;
                                        namen = k;
                                        break;
                                }
                        }
                        if (!valid_var_name(s + i + 2, namen) || namen >= sizeof(var))
                                return fail(p, e->start_mark,
                                            "%s: '${%.*s}' is not a valid variable reference", what,
                                            (int)MIN(namen, 64), s + i + 2);
                        memcpy(var, s + i + 2, namen);
                        var[namen] = '\0';
                        add = getenv(var);
                        if (dflt && (!add || !*add)) {
                                add = dflt;
                                addn = (size_t)(close - dflt);
                        } else if (!add) {
                                return fail(p, e->start_mark,
                                            "%s: environment variable '%s' is not set", what, var);
                        } else {
                                addn = strlen(add);
                        }
                        i = (size_t)(close - s) + 1;
                } else {
                        i++;
                }
                if (addn > CONFIG_MAX_VALUE_LEN - o)
                        return fail(p, e->start_mark, "%s: value is longer than %d bytes", what,
                                    CONFIG_MAX_VALUE_LEN);
                memcpy(out + o, add, addn);
                o += addn;
        }
        out[o] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

/* Fail at e with reason; when ${...} changed the text of a non-secret value, say from what. */
static int fail_value(struct parser *p, const yaml_event_t *e, const char *v, bool secret,
                      const char *reason)
{
        if (!secret && strcmp(v, (const char *)e->data.scalar.value))
                return fail(p, e->start_mark, "%s (expanded from '%.200s')", reason,
                            (const char *)e->data.scalar.value);
        return fail(p, e->start_mark, "%s", reason);
}

/* Read one scalar value for what: refuses collections and nulls, expands ${VAR}. */
static int read_scalar(struct parser *p, const char *what, const char *expected, yaml_event_t *e,
                       char **ret)
{
        int r = next_event(p, e);

        if (r < 0)
                return r;
        if (e->type != YAML_SCALAR_EVENT)
                return fail(p, e->start_mark, "%s: expected %s, got %s", what, expected,
                            event_what(e));
        if (event_is_null(e))
                return fail(p, e->start_mark, "%s: a value is required (write \"\" for empty)",
                            what);
        return expand(p, e, what, ret);
}

static int mark_seen(struct parser *p, const char *path, yaml_mark_t m)
{
        for (size_t i = 0; i < p->n_seen; i++)
                if (!strcmp(p->seen[i].path, path))
                        return fail(p, m, "duplicate key '%s' (first given at line %zu)", path,
                                    p->seen[i].line);
        if (p->n_seen == ARRAY_SIZE(p->seen) || strlen(path) >= MAX_PATH_LEN)
                return fail(p, m, "too many keys"); /* cannot happen: paths come from the table */
        snprintf(p->seen[p->n_seen].path, MAX_PATH_LEN, "%s", path);
        p->seen[p->n_seen++].line = m.line + 1;
        return 0;
}

static const char *expected_of(const struct option *o)
{
        static const char *const e[] = {
            [OPT_STRING] = "a string",       [OPT_BOOL] = "a boolean",
            [OPT_UINT] = "an integer",       [OPT_DURATION] = "a duration",
            [OPT_ENUM] = "a name",           [OPT_FIELD_MAP] = "a mapping",
            [OPT_LABEL_MAP] = "a mapping",   [OPT_LIST] = "a list of strings",
            [OPT_DOUBLE] = "a number",       [OPT_MAP_LIST] = "a list of mappings",
            [OPT_SIZE] = "a size",           [OPT_CHARS] = "a string",
            [OPT_FLAGS] = "a list of names", [OPT_RATE] = "N/DURATION",
        };
        return e[o->type];
}

static int parse_field_map(struct parser *p, const struct option *o)
{
        collection_field **arr = slot(p->cfg, o->offset);
        size_t *n = slot(p->cfg, o->count_offset);

        for (;;) {
                _cleanup_event_ yaml_event_t k = {0}, v = {0};
                _cleanup_free_ char *val = NULL;
                char what[MAX_PATH_LEN + 80], why[512];
                const field_meta *f;
                int64_t us = 0;
                int r;

                r = next_event(p, &k);
                if (r < 0)
                        return r;
                if (k.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (k.type != YAML_SCALAR_EVENT)
                        return fail(p, k.start_mark, "%s: keys must be field names, not %s",
                                    o->path, event_what(&k));
                f = memchr(k.data.scalar.value, '\0', k.data.scalar.length)
                        ? NULL
                        : field_by_name((const char *)k.data.scalar.value);
                if (!f)
                        return fail(p, k.start_mark, "%s: unknown field '%.64s'", o->path,
                                    (const char *)k.data.scalar.value);
                snprintf(what, sizeof(what), "%s.%.64s", o->path,
                         (const char *)k.data.scalar.value);
                for (size_t i = 0; i < *n; i++)
                        if ((*arr)[i].field_id == f->id)
                                return fail(p, k.start_mark,
                                            "%s: duplicate field (%s, id %u, is already set)", what,
                                            f->sym, f->id);
                r = read_scalar(p, what, "a duration or 'off'", &v, &val);
                if (r < 0)
                        return r;
                if (strcmp(val, "off")) {
                        int64_t lo = tier_bounds[f->tier].min, hi = tier_bounds[f->tier].max;
                        char x[32], y[32];
                        if (lo == 0) {
                                snprintf(why, sizeof(why),
                                         "%s: '%s': the field is not sampled periodically "
                                         "(tier %s); only 'off' is accepted",
                                         what, val, field_tier_name(f->tier));
                                return fail_value(p, &v, val, false, why);
                        }
                        r = time_parse_duration(val, &us);
                        if (r == -EINVAL) {
                                snprintf(why, sizeof(why),
                                         "%s: '%s' is not a duration (such as 250ms, 10s) or 'off'",
                                         what, val);
                                return fail_value(p, &v, val, false, why);
                        }
                        if (r < 0 || us < lo || us > hi) {
                                snprintf(why, sizeof(why),
                                         "%s: '%s' is out of range (%s..%s) for a %s-tier field",
                                         what, val, fmt_duration(lo, x, sizeof(x)),
                                         fmt_duration(hi, y, sizeof(y)), field_tier_name(f->tier));
                                return fail_value(p, &v, val, false, why);
                        }
                }
                collection_field *na = realloc(*arr, (*n + 1) * sizeof(**arr));
                if (!na) {
                        fail(p, k.start_mark, "out of memory");
                        return -ENOMEM;
                }
                *arr = na;
                (*arr)[(*n)++] = (collection_field){.field_id = f->id, .interval_us = us};
        }
}

static bool valid_label_name(const char *s)
{
        return valid_var_name(s, strlen(s)) && strncmp(s, "__", 2) != 0;
}

static int parse_label_map(struct parser *p, const struct option *o)
{
        metrics_label **arr = slot(p->cfg, o->offset);
        size_t *n = slot(p->cfg, o->count_offset);

        for (;;) {
                _cleanup_event_ yaml_event_t k = {0}, v = {0};
                _cleanup_free_ char *name = NULL, *val = NULL;
                char what[MAX_PATH_LEN + 80];
                int r;

                r = next_event(p, &k);
                if (r < 0)
                        return r;
                if (k.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (k.type != YAML_SCALAR_EVENT)
                        return fail(p, k.start_mark, "%s: keys must be label names, not %s",
                                    o->path, event_what(&k));
                name = strndup((const char *)k.data.scalar.value, k.data.scalar.length);
                if (!name) {
                        fail(p, k.start_mark, "out of memory");
                        return -ENOMEM;
                }
                if (!valid_label_name(name) || strlen(name) != k.data.scalar.length ||
                    strlen(name) > 128)
                        return fail(p, k.start_mark,
                                    "%s: '%.64s' is not a valid label name "
                                    "([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__')",
                                    o->path, name);
                for (size_t i = 0; i < ARRAY_SIZE(reserved_labels); i++)
                        if (!strcmp(name, reserved_labels[i]))
                                return fail(p, k.start_mark,
                                            "%s: '%s' is a reserved label (Vigil sets it)", o->path,
                                            name);
                for (size_t i = 0;
                     !strncmp(o->path, "alerting.", 9) && i < ARRAY_SIZE(reserved_alert_labels);
                     i++)
                        if (!strcmp(name, reserved_alert_labels[i]))
                                return fail(p, k.start_mark,
                                            "%s: '%s' is a reserved label (Vigil's alerts set it)",
                                            o->path, name);
                for (size_t i = 0; i < *n; i++)
                        if (!strcmp((*arr)[i].name, name))
                                return fail(p, k.start_mark, "%s: duplicate label '%s'", o->path,
                                            name);
                if (*n >= CONFIG_MAX_EXTRA_LABELS)
                        return fail(p, k.start_mark, "%s: more than %d labels", o->path,
                                    CONFIG_MAX_EXTRA_LABELS);
                snprintf(what, sizeof(what), "%s.%s", o->path, name);
                r = read_scalar(p, what, "a string", &v, &val);
                if (r < 0)
                        return r;
                if (!*val)
                        return fail(p, v.start_mark,
                                    "%s: the value must not be empty (Prometheus drops empty "
                                    "labels)",
                                    what);
                metrics_label *na = realloc(*arr, (*n + 1) * sizeof(**arr));
                if (!na) {
                        fail(p, k.start_mark, "out of memory");
                        return -ENOMEM;
                }
                *arr = na;
                (*arr)[(*n)++] = (metrics_label){.name = TAKE_PTR(name), .value = TAKE_PTR(val)};
        }
}

/* A sequence of scalars (or one scalar, or []) joined with ',' into one string option. */
static int parse_list(struct parser *p, const struct option *o)
{
        _cleanup_event_ yaml_event_t e = {0};
        _cleanup_free_ char *joined = NULL;
        size_t len = 0;
        char why[512];
        int r = next_event(p, &e);

        if (r < 0)
                return r;
        if (e.type == YAML_SCALAR_EVENT) {
                _cleanup_free_ char *v = NULL;
                if (event_is_null(&e))
                        v = strdup("");
                else if ((r = expand(p, &e, o->path, &v)) < 0)
                        return r;
                if (!v)
                        return fail(p, e.start_mark, "out of memory"), -ENOMEM;
                joined = TAKE_PTR(v);
        } else if (e.type == YAML_SEQUENCE_START_EVENT) {
                joined = strdup("");
                if (!joined)
                        return fail(p, e.start_mark, "out of memory"), -ENOMEM;
                for (;;) {
                        _cleanup_event_ yaml_event_t it = {0};
                        _cleanup_free_ char *v = NULL;
                        char *nj;
                        r = next_event(p, &it);
                        if (r < 0)
                                return r;
                        if (it.type == YAML_SEQUENCE_END_EVENT)
                                break;
                        if (it.type != YAML_SCALAR_EVENT || event_is_null(&it))
                                return fail(p, it.start_mark, "%s: list entries must be strings",
                                            o->path);
                        if ((r = expand(p, &it, o->path, &v)) < 0)
                                return r;
                        if (!*v || strchr(v, ','))
                                return fail(p, it.start_mark,
                                            "%s: list entries must be non-empty and without ','",
                                            o->path);
                        if (len + strlen(v) + 2 > CONFIG_MAX_VALUE_LEN)
                                return fail(p, it.start_mark, "%s: list is too long", o->path);
                        nj = realloc(joined, len + strlen(v) + 2);
                        if (!nj)
                                return fail(p, it.start_mark, "out of memory"), -ENOMEM;
                        joined = nj;
                        len += (size_t)snprintf(joined + len, strlen(v) + 2, "%s%s", len ? "," : "",
                                                v);
                }
        } else {
                return fail(p, e.start_mark, "%s: expected a list of strings, got %s", o->path,
                            event_what(&e));
        }
        r = option_set(o, p->cfg, joined, joined, why, sizeof(why));
        if (r == -ENOMEM)
                return fail(p, e.start_mark, "out of memory"), -ENOMEM;
        if (r < 0)
                return fail(p, e.start_mark, "%s", why);
        p->set[o - options] = true;
        p->set_at[o - options] = e.start_mark;
        return 0;
}

/* ---- lists of mappings (policies, alerting.webhooks) ---- */

static void map_list_release(const struct option *o, char *arr, size_t n)
{
        for (size_t i = 0; arr && i < n; i++)
                for (size_t k = 0; k < o->n_items; k++)
                        if (o->items[k].type == OPT_STRING || o->items[k].type == OPT_LIST)
                                free(*(char **)(arr + i * o->item_size + o->items[k].offset));
        free(arr);
}

static json_t *map_list_json(const struct option *o, const char *arr, size_t n, bool reveal)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++) {
                json_t *m = json_object();
                for (size_t k = 0; m && k < o->n_items; k++) {
                        const struct option *it = &o->items[k];
                        /* option_json reads at it->offset from the item, as from a config. */
                        json_object_set_new(
                            m, it->path,
                            option_json(it, (const vigil_config *)(arr + i * o->item_size),
                                        reveal));
                }
                json_array_append_new(a, m);
        }
        return a;
}

/* One item's value: a scalar, or for an OPT_LIST key a sequence of scalars (comma-joined). */
static int parse_item_value(struct parser *p, const struct option *it, char *item, const char *what)
{
        _cleanup_event_ yaml_event_t e = {0};
        _cleanup_free_ char *v = NULL;
        char why[512], shown[512];
        int r = next_event(p, &e);

        if (r < 0)
                return r;
        if ((it->type == OPT_LIST || it->type == OPT_FLAGS) &&
            e.type == YAML_SEQUENCE_START_EVENT) {
                size_t len = 0;
                v = strdup("");
                if (!v)
                        return fail(p, e.start_mark, "out of memory"), -ENOMEM;
                for (;;) {
                        _cleanup_event_ yaml_event_t x = {0};
                        _cleanup_free_ char *xv = NULL;
                        char *nv;
                        if ((r = next_event(p, &x)) < 0)
                                return r;
                        if (x.type == YAML_SEQUENCE_END_EVENT)
                                break;
                        if (x.type != YAML_SCALAR_EVENT || event_is_null(&x))
                                return fail(p, x.start_mark, "%s: list entries must be strings",
                                            what);
                        if ((r = expand(p, &x, what, &xv)) < 0)
                                return r;
                        if (!*xv || strchr(xv, ',') || len + strlen(xv) + 2 > CONFIG_MAX_VALUE_LEN)
                                return fail(p, x.start_mark,
                                            "%s: list entries must be non-empty and without ','",
                                            what);
                        nv = realloc(v, len + strlen(xv) + 2);
                        if (!nv)
                                return fail(p, x.start_mark, "out of memory"), -ENOMEM;
                        v = nv;
                        len +=
                            (size_t)snprintf(v + len, strlen(xv) + 2, "%s%s", len ? "," : "", xv);
                }
        } else {
                if (e.type != YAML_SCALAR_EVENT)
                        return fail(p, e.start_mark, "%s: expected %s, got %s", what,
                                    expected_of(it), event_what(&e));
                if (event_is_null(&e))
                        return fail(p, e.start_mark,
                                    "%s: a value is required (write \"\" for empty)", what);
                if ((r = expand(p, &e, what, &v)) < 0)
                        return r;
        }
        r = option_set(it, (vigil_config *)item, v, shown_value(it, v, shown, sizeof(shown)), why,
                       sizeof(why));
        if (r == -ENOMEM)
                return fail(p, e.start_mark, "out of memory"), -ENOMEM;
        if (r < 0) {
                /* why starts with the item key; say which entry */
                return fail(p, e.start_mark, "%s: %s", what, why);
        }
        return 0;
}

static int parse_map_list(struct parser *p, const struct option *o)
{
        char **arr = slot(p->cfg, o->offset);
        size_t *n = slot(p->cfg, o->count_offset);
        _cleanup_event_ yaml_event_t e = {0};
        int r = next_event(p, &e);

        if (r < 0)
                return r;
        if (event_is_null(&e))
                return 0;
        if (e.type != YAML_SEQUENCE_START_EVENT)
                return fail(p, e.start_mark, "%s: expected a list of mappings, got %s", o->path,
                            event_what(&e));
        for (;;) {
                _cleanup_event_ yaml_event_t m = {0};
                bool given[16] = {false};
                char *item, *na;
                char why[256];

                if ((r = next_event(p, &m)) < 0)
                        return r;
                if (m.type == YAML_SEQUENCE_END_EVENT)
                        break;
                if (m.type != YAML_MAPPING_START_EVENT)
                        return fail(p, m.start_mark, "%s[%zu]: expected a mapping, got %s", o->path,
                                    *n, event_what(&m));
                if ((int64_t)*n >= o->max)
                        return fail(p, m.start_mark, "%s: more than %lld entries", o->path,
                                    (long long)o->max);
                na = realloc(*arr, (*n + 1) * o->item_size);
                if (!na)
                        return fail(p, m.start_mark, "out of memory"), -ENOMEM;
                *arr = na;
                item = na + *n * o->item_size;
                memset(item, 0, o->item_size);
                (*n)++;
                /* Defaults, unchecked (a required key's placeholder "" need not be valid). */
                for (size_t k = 0; k < o->n_items; k++) {
                        const struct option *it = &o->items[k];
                        bool str = it->type == OPT_STRING || it->type == OPT_LIST;
                        if (!it->def || (it->type == OPT_CHARS && !*it->def))
                                continue; /* zeroed: "" */
                        if (str ? !(*(char **)(item + it->offset) = strdup(it->def))
                                : option_set(it, (vigil_config *)item, it->def, it->def, why,
                                             sizeof(why)) < 0)
                                return fail(p, m.start_mark, "out of memory"), -ENOMEM;
                }
                for (;;) {
                        _cleanup_event_ yaml_event_t k = {0};
                        const struct option *it = NULL;
                        char what[MAX_PATH_LEN + 96];
                        size_t ki = 0;
                        if ((r = next_event(p, &k)) < 0)
                                return r;
                        if (k.type == YAML_MAPPING_END_EVENT)
                                break;
                        if (k.type != YAML_SCALAR_EVENT)
                                return fail(p, k.start_mark, "%s[%zu]: keys must be names", o->path,
                                            *n - 1);
                        for (ki = 0; ki < o->n_items; ki++)
                                if (!strcmp(o->items[ki].path, (const char *)k.data.scalar.value)) {
                                        it = &o->items[ki];
                                        break;
                                }
                        if (!it)
                                return fail(p, k.start_mark, "%s[%zu]: unknown key '%.64s'",
                                            o->path, *n - 1, (const char *)k.data.scalar.value);
                        if (given[ki])
                                return fail(p, k.start_mark, "%s[%zu]: duplicate key '%s'", o->path,
                                            *n - 1, it->path);
                        given[ki] = true;
                        snprintf(what, sizeof(what), "%s[%zu]", o->path, *n - 1);
                        if ((r = parse_item_value(p, it, item, what)) < 0)
                                return r;
                }
                for (size_t k = 0; k < o->n_items; k++)
                        if (o->items[k].required && !given[k])
                                return fail(p, m.start_mark, "%s[%zu]: '%s' is required", o->path,
                                            *n - 1, o->items[k].path);
        }
        p->set[o - options] = true;
        p->set_at[o - options] = e.start_mark;
        return 0;
}

static const char *const rule_names[] = {
#define RULE(name, ...) #name,
#include "health/rules.def"
#undef RULE
};

static int check_condition(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen)
{
        static const char *const special[] = {"*", "xid", "critical", "warning"};
        char *end;

        for (size_t i = 0; i < ARRAY_SIZE(special); i++)
                if (!strcmp(v, special[i]))
                        return 0;
        for (size_t i = 0; i < ARRAY_SIZE(rule_names); i++)
                if (!strcmp(v, rule_names[i]))
                        return 0;
        if (!strncmp(v, "xid_", 4) && v[4] >= '1' && v[4] <= '9' && strtoul(v + 4, &end, 10) &&
            !*end)
                return 0;
        if ((!strncmp(v, "anomaly_baseline_", 17) && field_by_name(v + 17)) ||
            (!strncmp(v, "anomaly_peer_", 13) && field_by_name(v + 13)))
                return 0;
        snprintf(why, whylen,
                 "%s: '%s' is not a condition (a rule name such as gpu_lost or temperature, "
                 "xid_N, xid, critical, warning or *; see docs/health.md)",
                 o->path, shown);
        return -EINVAL;
}

static int check_actions(const struct option *o, const char *shown, const char *v, char *why,
                         size_t whylen)
{
        static const char *const acts[] = {"log",       "alert", "exec", "set_power_limit",
                                           "reset_gpu", "diag"};
        const char *s = v;

        (void)shown;
        while (*s) {
                const char *e = strchrnul(s, ',');
                bool ok = false;
                for (size_t i = 0; i < ARRAY_SIZE(acts); i++)
                        if (strlen(acts[i]) == (size_t)(e - s) && !strncmp(acts[i], s, e - s))
                                ok = true;
                if (!ok) {
                        snprintf(why, whylen,
                                 "%s: '%.*s' is not an action (log, alert, exec, set_power_limit, "
                                 "reset_gpu, diag)",
                                 o->path, (int)MIN(e - s, 64), s);
                        return -EINVAL;
                }
                s = *e ? e + 1 : e;
        }
        return 0;
}

static int check_rate_limit(const struct option *o, const char *shown, const char *v, char *why,
                            size_t whylen)
{
        const char *slash = strchr(v, '/');
        char *end;
        int64_t us;
        unsigned long n;

        if (!*v)
                return 0;
        n = slash ? strtoul(v, &end, 10) : 0;
        if (!slash || end != slash || n < 1 || n > 64 || time_parse_duration(slash + 1, &us) < 0 ||
            us < S) {
                snprintf(why, whylen,
                         "%s: '%s' is not a rate limit (N/DURATION, such as 1/10m; N 1..64, "
                         "DURATION at least 1s)",
                         o->path, shown);
                return -EINVAL;
        }
        return 0;
}

int config_parse_size(const char *s, uint64_t *ret)
{
        return log_parse_size(s, ret);
}

/* Sizes read back as the largest binary unit that divides them, else decimal, else bytes, so
 * config_to_json shows "100MiB" for the default and a value always parses back to itself. */
static const char *fmt_size(uint64_t v, char *b, size_t len)
{
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {{"TiB", 1ULL << 40}, {"GiB", 1ULL << 30},      {"MiB", 1ULL << 20},
                     {"KiB", 1ULL << 10}, {"TB", 1000000000000ULL}, {"GB", 1000000000ULL},
                     {"MB", 1000000ULL},  {"kB", 1000ULL}};

        for (size_t i = 0; v && i < ARRAY_SIZE(units); i++)
                if (v % units[i].mult == 0) {
                        snprintf(b, len, "%llu%s", (unsigned long long)(v / units[i].mult),
                                 units[i].suffix);
                        return b;
                }
        snprintf(b, len, "%llu", (unsigned long long)v);
        return b;
}

static int check_http_url(const struct option *o, const char *shown, const char *v, char *why,
                          size_t whylen)
{
        if ((!strncmp(v, "http://", 7) && v[7]) || (!strncmp(v, "https://", 8) && v[8]))
                return 0;
        snprintf(why, whylen, "%s: '%s' is not an http:// or https:// URL", o->path, shown);
        return -EINVAL;
}

static int check_http_urls(const struct option *o, const char *shown, const char *v, char *why,
                           size_t whylen)
{
        const char *s = v;

        (void)shown;
        while (*s) {
                const char *e = strchrnul(s, ',');
                char one[1024], masked[1024];
                snprintf(one, sizeof(one), "%.*s", (int)(e - s), s);
                redact_text(one, masked, sizeof(masked));
                if (check_http_url(o, masked, one, why, whylen) < 0)
                        return -EINVAL;
                s = *e ? e + 1 : e;
        }
        return 0;
}

/* The API server: "" (from the environment) or https://HOST[:PORT] (the token goes only over TLS). */
static int check_kube_api_url(const struct option *o, const char *shown, const char *v, char *why,
                              size_t whylen)
{
        if (!v[0])
                return 0;
        if (strncmp(v, "https://", 8) || !v[8] || strpbrk(v, " \t\r\n?#")) {
                snprintf(why, whylen, "%s: '%s' is not an https:// URL", o->path, shown);
                return -EINVAL;
        }
        return 0;
}

/* A list of POSIX extended regexes (workload.pod_label_allowlist): each must compile. */
static int check_regexes(const struct option *o, const char *shown, const char *v, char *why,
                         size_t whylen)
{
        const char *s = v;

        (void)shown;
        while (*s) { /* the flags kubeapi.c (workload) compiles them with */
                const char *e = strchrnul(s, ',');
                char one[1024], reason[256];
                regex_t re;
                int r;
                if ((size_t)(e - s) >= sizeof(one)) {
                        snprintf(why, whylen, "%s: a regex is longer than %zu bytes", o->path,
                                 sizeof(one) - 1);
                        return -EINVAL;
                }
                snprintf(one, sizeof(one), "%.*s", (int)(e - s), s);
                r = regcomp(&re, one, REG_EXTENDED | REG_NOSUB);
                if (r != 0) {
                        regerror(r, &re, reason, sizeof(reason));
                        snprintf(why, whylen, "%s: bad regex '%s': %s", o->path, one, reason);
                        return -EINVAL;
                }
                regfree(&re);
                s = *e ? e + 1 : e;
        }
        return 0;
}

static int parse_option(struct parser *p, const struct option *o)
{
        _cleanup_event_ yaml_event_t e = {0};
        _cleanup_free_ char *v = NULL;
        char why[512], shown[512];
        int r;

        if (o->type == OPT_FIELD_MAP || o->type == OPT_LABEL_MAP) {
                r = next_event(p, &e);
                if (r < 0)
                        return r;
                if (event_is_null(&e))
                        return 0; /* "fields:" with nothing under it: no entries */
                if (e.type != YAML_MAPPING_START_EVENT)
                        return fail(p, e.start_mark, "%s: expected a mapping, got %s", o->path,
                                    event_what(&e));
                return o->type == OPT_FIELD_MAP ? parse_field_map(p, o) : parse_label_map(p, o);
        }
        if (o->type == OPT_LIST)
                return parse_list(p, o);
        if (o->type == OPT_MAP_LIST)
                return parse_map_list(p, o);
        r = read_scalar(p, o->path, expected_of(o), &e, &v);
        if (r < 0)
                return r;
        r = option_set(o, p->cfg, v, shown_value(o, v, shown, sizeof(shown)), why, sizeof(why));
        if (r == -ENOMEM)
                return fail(p, e.start_mark, "out of memory"), -ENOMEM;
        if (r < 0)
                return fail_value(p, &e, v, o->secret, why);
        p->set[o - options] = true;
        p->set_at[o - options] = e.start_mark;
        return 0;
}

static size_t edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b), d[MAX_PATH_LEN + 1];

        if (la > MAX_PATH_LEN || lb > MAX_PATH_LEN)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                d[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = d[0];
                d[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = d[j];
                        d[j] = MIN(MIN(d[j] + 1, d[j - 1] + 1), diag + (a[i - 1] != b[j - 1]));
                        diag = up;
                }
        }
        return d[lb];
}

/* The closest known key under prefix, for "did you mean"; NULL when nothing is close. */
static const char *suggest(const char *prefix, const char *key, char *buf, size_t len)
{
        size_t pl = strlen(prefix), best = 3;
        const char *ret = NULL;

        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const char *s = options[i].path, *dot;
                char cand[MAX_PATH_LEN];
                size_t d;
                if (pl) {
                        if (strncmp(s, prefix, pl) || s[pl] != '.')
                                continue;
                        s += pl + 1;
                }
                dot = strchr(s, '.');
                snprintf(cand, sizeof(cand), "%.*s", (int)(dot ? (size_t)(dot - s) : strlen(s)), s);
                d = edit_distance(key, cand);
                if (d < best) {
                        best = d;
                        snprintf(buf, len, "%s", cand);
                        ret = buf;
                }
        }
        return ret;
}

static int parse_mapping(struct parser *p, const char *prefix);

static int parse_section(struct parser *p, const char *path)
{
        _cleanup_event_ yaml_event_t e = {0};
        int r = next_event(p, &e);

        if (r < 0)
                return r;
        if (event_is_null(&e))
                return 0; /* "collection:" with nothing under it */
        if (e.type != YAML_MAPPING_START_EVENT)
                return fail(p, e.start_mark, "%s: expected a mapping, got %s", path,
                            event_what(&e));
        return parse_mapping(p, path);
}

/* Called after the MAPPING-START of the section at prefix ("" = top level). */
static int parse_mapping(struct parser *p, const char *prefix)
{
        for (;;) {
                _cleanup_event_ yaml_event_t k = {0};
                const struct option *o;
                const char *key, *hint;
                char path[MAX_PATH_LEN], sbuf[MAX_PATH_LEN];
                int r, n;

                r = next_event(p, &k);
                if (r < 0)
                        return r;
                if (k.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (k.type != YAML_SCALAR_EVENT)
                        return fail(p, k.start_mark, "%s%skeys must be names, not %s", prefix,
                                    *prefix ? ": " : "", event_what(&k));
                key = (const char *)k.data.scalar.value;
                n = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", key);
                /* A key with a dot, a NUL or too long can only be unknown. */
                if (n < 0 || (size_t)n >= sizeof(path) || strchr(key, '.') ||
                    strlen(key) != k.data.scalar.length) {
                        path[0] = '\0';
                        o = NULL;
                } else {
                        o = option_find(path);
                }
                if (o) {
                        r = mark_seen(p, path, k.start_mark);
                        if (r < 0)
                                return r;
                        r = parse_option(p, o);
                } else if (path[0] && is_section(path)) {
                        r = mark_seen(p, path, k.start_mark);
                        if (r < 0)
                                return r;
                        r = parse_section(p, path);
                } else if (path[0] && is_unsupported(path)) {
                        return fail(p, k.start_mark,
                                    "'%s': section is not supported by this version of vigil (%s)",
                                    path, VIGIL_VERSION);
                } else {
                        hint = suggest(prefix, key, sbuf, sizeof(sbuf));
                        return fail(p, k.start_mark, "unknown key '%s%s%.64s'%s%s%s", prefix,
                                    *prefix ? "." : "", key, hint ? " (did you mean '" : "",
                                    hint ? hint : "", hint ? "'?)" : "");
                }
                if (r < 0)
                        return r;
        }
}

static int64_t option_number(const struct option *o, const vigil_config *c)
{
        if (o->type == OPT_DURATION)
                return *(int64_t *)slot(c, o->offset);
        return *(unsigned *)slot(c, o->offset);
}

static void option_show(const struct option *o, const vigil_config *c, char *b, size_t len)
{
        if (o->type == OPT_DURATION)
                time_format_duration(option_number(o, c), b, len);
        else
                snprintf(b, len, "%lld", (long long)option_number(o, c));
}

/* Checks that span options, once the whole file is read. */
static int check_relations(struct parser *p)
{
        for (size_t i = 0; i < ARRAY_SIZE(ordered); i++) {
                const struct option *lo = option_find(ordered[i].lo),
                                    *hi = option_find(ordered[i].hi);
                size_t li = (size_t)(lo - options), hi_i = (size_t)(hi - options);
                char a[32], b[32];
                yaml_mark_t m;

                if (option_number(lo, p->cfg) <= option_number(hi, p->cfg))
                        continue;
                /* Point at whichever of the two the file set last. */
                m = !p->set[hi_i] || (p->set[li] && p->set_at[li].index > p->set_at[hi_i].index)
                        ? p->set_at[li]
                        : p->set_at[hi_i];
                option_show(lo, p->cfg, a, sizeof(a));
                option_show(hi, p->cfg, b, sizeof(b));
                return fail(p, m, "%s ('%s') must not be %s %s ('%s')", lo->path, a, ordered[i].rel,
                            hi->path, b);
        }
        /* pod_uid is a pod label: without workload.kubernetes there is none to add it to */
        if (p->cfg->workload.pod_uid_label && !p->cfg->workload.kubernetes) {
                const struct option *o = option_find("workload.pod_uid_label");
                return fail(p, p->set_at[(size_t)(o - options)],
                            "workload.pod_uid_label needs workload.kubernetes: true");
        }
        /* pod labels go on the pod's series and name the pod the kubelet gave: kubernetes on */
        if (p->cfg->workload.pod_labels && !p->cfg->workload.kubernetes) {
                const struct option *o = option_find("workload.pod_labels");
                return fail(p, p->set_at[(size_t)(o - options)],
                            "workload.pod_labels needs workload.kubernetes: true");
        }
        if (p->cfg->workload.pod_labels && !p->cfg->workload.kube_api_url[0] &&
            (!getenv("KUBERNETES_SERVICE_HOST") || !getenv("KUBERNETES_SERVICE_PORT"))) {
                const struct option *o = option_find("workload.pod_labels");
                return fail(p, p->set_at[(size_t)(o - options)],
                            "workload.pod_labels needs workload.kube_api_url, or "
                            "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT in the "
                            "environment (as in a pod)");
        }
        return 0;
}

static int parse_stream(struct parser *p)
{
        _cleanup_event_ yaml_event_t s = {0}, d = {0}, root = {0}, end = {0}, more = {0};
        int r;

        if ((r = next_event(p, &s)) < 0 || (r = next_event(p, &d)) < 0)
                return r;
        if (d.type == YAML_STREAM_END_EVENT)
                return 0; /* empty file: all defaults */
        if ((r = next_event(p, &root)) < 0)
                return r;
        if (root.type == YAML_MAPPING_START_EVENT)
                r = parse_mapping(p, "");
        else if (!event_is_null(&root))
                return fail(p, root.start_mark, "the top level must be a mapping, not %s",
                            event_what(&root));
        if (r < 0)
                return r;
        if ((r = next_event(p, &end)) < 0 || (r = next_event(p, &more)) < 0)
                return r;
        if (more.type != YAML_STREAM_END_EVENT)
                return fail(p, more.start_mark, "only one YAML document is allowed");
        return check_relations(p);
}

int config_parse(const char *text, size_t len, const char *name, vigil_config *c, char *err,
                 size_t errlen)
{
        _cleanup_free_ struct parser *p = NULL;
        vigil_config tmp;
        int r;

        if (err && errlen)
                err[0] = '\0';
        if (!name)
                name = "<config>";
        if (len > CONFIG_MAX_FILE_SIZE) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: config is larger than %d bytes", name,
                                 CONFIG_MAX_FILE_SIZE);
                return -E2BIG;
        }
        p = calloc(1, sizeof(*p));
        if (!p || !yaml_parser_initialize(&p->yp)) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: out of memory", name);
                return -ENOMEM;
        }
        config_init(&tmp);
        p->text = text;
        p->len = len;
        p->name = name;
        p->err = err;
        p->errlen = errlen;
        p->cfg = &tmp;
        yaml_parser_set_input_string(&p->yp, (const unsigned char *)text, len);
        r = parse_stream(p);
        yaml_parser_delete(&p->yp);
        if (r < 0) {
                config_release(&tmp);
                return r;
        }
        config_release(c);
        *c = tmp;
        return 0;
}

static int read_fail(const char *path, int r, char *err, size_t errlen)
{
        if (err && errlen) {
                snprintf(err, errlen, "cannot read '%s': %s", path,
                         r == -E2BIG ? "file is larger than 1 MiB" : strerror(-r));
                /* Messages are lowercase; strerror's are capitalised. */
                char *reason = strstr(err, "': ");
                if (reason && reason[3] >= 'A' && reason[3] <= 'Z')
                        reason[3] = (char)(reason[3] - 'A' + 'a');
        }
        return r;
}

int config_load(const char *path, vigil_config *c, char *err, size_t errlen)
{
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r = file_read_all(path, CONFIG_MAX_FILE_SIZE, &buf, &n);

        if (r == -EFBIG)
                r = -E2BIG; /* the parser's code for "over a limit" (config.h) */
        if (r < 0)
                return read_fail(path, r, err, errlen);
        return config_parse(buf, n, path, c, err, errlen);
}

/* ---- JSON view ------------------------------------------------------------------------------- */

/* json_string refuses invalid UTF-8, which an environment variable may hold. A value that is
 * not a secret key may still hold one (a token in a webhook URL, a password in an exec command):
 * redact_text hides those; reveal shows the value as it is. */
static json_t *jstrn(const char *s, size_t len, bool secret, bool reveal)
{
        _cleanup_free_ char *red = NULL;
        json_t *j;

        if (secret && !reveal && len)
                return json_string(REDACTED);
        if (!reveal) {
                _cleanup_free_ char *raw = strndup(s, len);
                size_t cap = len * 5 + 32; /* a mark per 3-byte word at most */
                red = malloc(cap);
                if (!raw || !red)
                        return NULL;
                redact_text(raw, red, cap);
                s = red;
                len = strlen(red);
        }
        j = json_stringn(s, len);
        return j ? j : json_string("<not utf-8>");
}

static json_t *jstr(const char *s, bool secret, bool reveal)
{
        return jstrn(s, strlen(s), secret, reveal);
}

/* The object for the section of path, created as needed; *leaf is the last key. */
static json_t *json_section(json_t *root, const char *path, const char **leaf)
{
        const char *s = path, *dot;
        json_t *obj = root;

        while ((dot = strchr(s, '.'))) {
                char seg[MAX_PATH_LEN];
                json_t *child;
                snprintf(seg, sizeof(seg), "%.*s", (int)(dot - s), s);
                child = json_object_get(obj, seg);
                if (!child) {
                        child = json_object();
                        if (json_object_set_new(obj, seg, child) < 0)
                                return NULL;
                }
                obj = child;
                s = dot + 1;
        }
        *leaf = s;
        return obj;
}

/* reveal: secrets as they are (only to compare two configurations, never to show). */
static json_t *option_json(const struct option *o, const vigil_config *c, bool reveal)
{
        const void *p = slot(c, o->offset);
        char b[32];

        switch (o->type) {
        case OPT_STRING:
                return jstr(*(char *const *)p, o->secret, reveal);
        case OPT_LIST: {
                const char *s = *(char *const *)p;
                json_t *a = json_array();
                while (a && *s) {
                        const char *e = strchrnul(s, ',');
                        json_array_append_new(a, jstrn(s, (size_t)(e - s), o->secret, reveal));
                        s = *e ? e + 1 : e;
                }
                return a;
        }
        case OPT_BOOL:
                return json_boolean(*(const bool *)p);
        case OPT_UINT:
                return json_integer(*(const unsigned *)p);
        case OPT_DURATION:
                return json_string(time_format_duration(*(const int64_t *)p, b, sizeof(b)));
        case OPT_ENUM:
                for (int i = 0; o->names[i]; i++)
                        if ((o->values ? o->values[i] : i) == *(const int *)p)
                                return json_string(o->names[i]);
                return json_null();
        case OPT_DOUBLE:
                return json_real(*(const double *)p);
        case OPT_SIZE:
                return json_string(fmt_size(*(const uint64_t *)p, b, sizeof(b)));
        case OPT_CHARS:
                return jstr((const char *)p, o->secret, reveal);
        case OPT_FLAGS: {
                json_t *a = json_array();
                for (int i = 0; a && o->names[i]; i++)
                        if (*(const unsigned *)p & (1u << i))
                                json_array_append_new(a, json_string(o->names[i]));
                return a;
        }
        case OPT_RATE: {
                char r[48];
                unsigned n = *(const unsigned *)p;
                if (!n)
                        return json_string("");
                snprintf(
                    r, sizeof(r), "%u/%s", n,
                    time_format_duration(*(const int64_t *)slot(c, o->count_offset), b, sizeof(b)));
                return json_string(r);
        }
        case OPT_FIELD_MAP: {
                const collection_field *f = *(collection_field *const *)p;
                size_t n = *(const size_t *)slot(c, o->count_offset);
                json_t *m = json_object();
                for (size_t i = 0; m && i < n; i++) {
                        const field_meta *fm = field_by_id(f[i].field_id);
                        char id[16];
                        snprintf(id, sizeof(id), "%u", f[i].field_id);
                        if (json_object_set_new(m, fm ? fm->sym : id,
                                                f[i].interval_us
                                                    ? json_string(time_format_duration(
                                                          f[i].interval_us, b, sizeof(b)))
                                                    : json_string("off")) < 0) {
                                json_decref(m);
                                return NULL;
                        }
                }
                return m;
        }
        case OPT_MAP_LIST:
                return map_list_json(o, *(char *const *)p,
                                     *(const size_t *)slot(c, o->count_offset), reveal);
        case OPT_LABEL_MAP: {
                const metrics_label *l = *(metrics_label *const *)p;
                size_t n = *(const size_t *)slot(c, o->count_offset);
                json_t *m = json_object();
                for (size_t i = 0; m && i < n; i++) {
                        if (json_object_set_new(m, l[i].name, jstr(l[i].value, o->secret, reveal)) <
                            0) {
                                json_decref(m);
                                return NULL;
                        }
                }
                return m;
        }
        }
        return NULL;
}

json_t *config_to_json(const vigil_config *c)
{
        json_t *root = json_object();

        if (!root)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const char *leaf;
                json_t *sec = json_section(root, options[i].path, &leaf);
                if (!sec ||
                    json_object_set_new(sec, leaf, option_json(&options[i], c, false)) < 0) {
                        json_decref(root);
                        return NULL;
                }
        }
        return root;
}

/* ---- listen address -------------------------------------------------------------------------- */

int config_parse_listen(const char *s, char *host, size_t hostlen, unsigned *port)
{
        const char *h, *ps;
        char tmp[256];
        size_t hl;
        unsigned long v = 0;

        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                struct in6_addr a6;
                if (!close || close[1] != ':')
                        return -EINVAL;
                h = s + 1;
                hl = (size_t)(close - h);
                ps = close + 2;
                if (hl == 0 || hl >= sizeof(tmp))
                        return -EINVAL;
                memcpy(tmp, h, hl);
                tmp[hl] = '\0';
                if (inet_pton(AF_INET6, tmp, &a6) != 1)
                        return -EINVAL;
        } else {
                const char *colon = strrchr(s, ':');
                bool numeric = true;
                struct in_addr a4;
                if (!colon)
                        return -EINVAL;
                h = s;
                hl = (size_t)(colon - s);
                ps = colon + 1;
                /* An empty host, a bare IPv6 address (colons) or a host name over 253 bytes. */
                if (hl == 0 || hl > 253)
                        return -EINVAL;
                for (size_t i = 0; i < hl; i++) {
                        char ch = h[i];
                        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                              (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
                                return -EINVAL;
                        if (!((ch >= '0' && ch <= '9') || ch == '.'))
                                numeric = false;
                }
                memcpy(tmp, h, hl);
                tmp[hl] = '\0';
                if (numeric && inet_pton(AF_INET, tmp, &a4) != 1)
                        return -EINVAL;
        }
        if (!*ps || strlen(ps) > 5)
                return -EINVAL;
        for (const char *q = ps; *q; q++) {
                if (*q < '0' || *q > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(*q - '0');
        }
        if (v > 65535)
                return -EINVAL;
        if (hl + 1 > hostlen)
                return -ENAMETOOLONG;
        memcpy(host, h, hl);
        host[hl] = '\0';
        *port = (unsigned)v;
        return 0;
}

/* ---- the table seen from outside: owners, apply flags, comparison ---------------------------- */

static const char *const type_names[] = {
    [OPT_STRING] = "string",       [OPT_BOOL] = "bool",
    [OPT_UINT] = "uint",           [OPT_DURATION] = "duration",
    [OPT_ENUM] = "enum",           [OPT_FIELD_MAP] = "field map",
    [OPT_LABEL_MAP] = "label map", [OPT_LIST] = "list",
    [OPT_DOUBLE] = "number",       [OPT_MAP_LIST] = "list of mappings",
    [OPT_SIZE] = "size",           [OPT_CHARS] = "string",
    [OPT_FLAGS] = "list of names", [OPT_RATE] = "rate",
};

static const char *const module_names[CONFIG_MOD_COUNT] = {
    [CONFIG_MOD_DAEMON] = "daemon",     [CONFIG_MOD_BACKEND] = "backend",
    [CONFIG_MOD_SAMPLER] = "sampler",   [CONFIG_MOD_API] = "api",
    [CONFIG_MOD_LOG] = "log",           [CONFIG_MOD_HEALTH] = "health",
    [CONFIG_MOD_SECURITY] = "security", [CONFIG_MOD_STORE] = "store",
    [CONFIG_MOD_DIAG] = "diag",         [CONFIG_MOD_WORKLOAD] = "workload",
};

const char *config_module_name(enum config_module m)
{
        return (unsigned)m < CONFIG_MOD_COUNT ? module_names[m] : "?";
}

size_t config_key_count(void)
{
        return ARRAY_SIZE(options);
}

int config_key_info_at(size_t i, config_key_info *out)
{
        if (i >= ARRAY_SIZE(options))
                return -ERANGE;
        *out = (config_key_info){
            .path = options[i].path,
            .type = type_names[options[i].type],
            .def = options[i].def,
            .mod = options[i].mod,
            .apply = options[i].apply,
            .secret = options[i].secret,
        };
        return 0;
}

int config_key_find(const char *path, config_key_info *out)
{
        const struct option *o = option_find(path);

        if (!o)
                return -ENOENT;
        return config_key_info_at((size_t)(o - options), out);
}

bool config_key_equal(size_t i, const vigil_config *a, const vigil_config *b)
{
        json_t *x, *y;
        bool eq;

        if (i >= ARRAY_SIZE(options))
                return true;
        /* The JSON form is canonical for every type (sizes and durations normalised, lists and
         * maps in file order), so one comparison serves them all. */
        x = option_json(&options[i], a, true);
        y = option_json(&options[i], b, true);
        eq = x && y && json_equal(x, y);
        json_decref(x);
        json_decref(y);
        return eq;
}

/* Bytes of the value at offset (maps: the array pointer; their count is swapped apart). */
static size_t value_size(const struct option *o)
{
        switch (o->type) {
        case OPT_BOOL:
                return sizeof(bool);
        case OPT_UINT:
                return sizeof(unsigned);
        case OPT_DURATION:
                return sizeof(int64_t);
        case OPT_ENUM:
                return sizeof(int);
        case OPT_DOUBLE:
                return sizeof(double);
        case OPT_SIZE:
                return sizeof(uint64_t);
        case OPT_STRING:
        case OPT_LIST:
        case OPT_FIELD_MAP:
        case OPT_LABEL_MAP:
        case OPT_MAP_LIST:
                return sizeof(void *);
        case OPT_CHARS:
        case OPT_FLAGS:
        case OPT_RATE:
                return 0; /* list items only: never a key of its own */
        }
        return 0;
}

static void swap_bytes(void *a, void *b, size_t n)
{
        unsigned char t[sizeof(void *) > 8 ? sizeof(void *) : 8];

        memcpy(t, a, n);
        memcpy(a, b, n);
        memcpy(b, t, n);
}

size_t config_keep_restart(vigil_config *next, vigil_config *running, const char **pending,
                           size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const struct option *o = &options[i];
                if (o->apply != CONFIG_APPLY_RESTART || config_key_equal(i, next, running))
                        continue;
                swap_bytes(slot(next, o->offset), slot(running, o->offset), value_size(o));
                if (o->type == OPT_FIELD_MAP || o->type == OPT_LABEL_MAP || o->type == OPT_MAP_LIST)
                        swap_bytes(slot(next, o->count_offset), slot(running, o->count_offset),
                                   sizeof(size_t));
                if (n < max)
                        pending[n] = o->path;
                n++;
        }
        return n;
}

size_t config_keep_module(vigil_config *next, vigil_config *running, enum config_module m)
{
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const struct option *o = &options[i];
                if (o->mod != m || value_size(o) == 0 || config_key_equal(i, next, running))
                        continue;
                swap_bytes(slot(next, o->offset), slot(running, o->offset), value_size(o));
                if (o->type == OPT_FIELD_MAP || o->type == OPT_LABEL_MAP || o->type == OPT_MAP_LIST)
                        swap_bytes(slot(next, o->count_offset), slot(running, o->count_offset),
                                   sizeof(size_t));
                n++;
        }
        return n;
}

size_t config_changed_reloadable(const vigil_config *a, const vigil_config *b, const char **out,
                                 size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                if (options[i].apply != CONFIG_APPLY_RELOAD || config_key_equal(i, a, b))
                        continue;
                if (n < max)
                        out[n] = options[i].path;
                n++;
        }
        return n;
}

json_t *config_key_json(size_t i, const vigil_config *c)
{
        if (i >= ARRAY_SIZE(options))
                return NULL;
        return option_json(&options[i], c, false);
}
